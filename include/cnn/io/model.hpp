// Saving and loading trained models.
//
// Model file format, version 1 (all integers little-endian):
//
//   offset  size  field
//   0       8     magic "CNNMODEL"
//   8       4     format version (1)
//   12      4     bytes per parameter: 4 (float) or 8 (double)
//   16      4     A, the length of the architecture text
//   20      A     architecture: one line per layer, its describe() text, e.g.
//                 "Conv2D(1->6, 5x5, stride 1, padding 2)\nReLU\n..."
//   20+A    4     M, the length of the metadata text
//   24+A    M     metadata: "key=value" lines the application chooses (normalisation, class names)
//   24+A+M  8     P, the parameter count
//   32+A+M  P*s   the parameters, layer by layer in data order, each layer's parameters()
//                 span as it is in memory (IEEE 754, little-endian)
//   end-4   4     CRC-32 (IEEE, as zlib's crc32) of every byte before it
//
// save_model writes a temporary file next to the target, flushes it to disk and
// renames it over the target, so a crash leaves either the old model or the new
// one, never half of one. load_model checks everything before it changes the
// network: a file of another architecture, a truncated file, a flipped byte or a
// newer format version gives a cnn::model_error and leaves the network as it was.
#pragma once

#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "cnn/error.hpp"
#include "cnn/io/file.hpp"
#include "cnn/network.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#endif

namespace cnn {

/// A model file that cannot be saved or loaded: the message names the file and the problem.
struct model_error : error {
    using error::error;
};

inline constexpr std::uint32_t model_format_version = 1;
inline constexpr std::string_view model_magic = "CNNMODEL";
/// The largest model file load_model reads (16 GiB): anything larger is not one of ours.
inline constexpr std::uint64_t max_model_file_size = std::uint64_t{1} << 34;

static_assert(std::endian::native == std::endian::little, "the model format is written for little-endian machines");

namespace detail {

inline std::uint32_t crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0) {
    static const auto table = [] {
        std::array<std::uint32_t, 256> entries{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            entries[i] = c;
        }
        return entries;
    }();
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

class ByteWriter {
public:
    template <class V>
    void put(const V& value) {
        const auto* bytes = reinterpret_cast<const std::uint8_t*>(&value);
        data_.insert(data_.end(), bytes, bytes + sizeof(V));
    }
    void put_bytes(const void* bytes, std::size_t size) {
        const auto* begin = static_cast<const std::uint8_t*>(bytes);
        data_.insert(data_.end(), begin, begin + size);
    }
    void put_text(std::string_view text) {
        put(static_cast<std::uint32_t>(text.size()));
        put_bytes(text.data(), text.size());
    }
    std::vector<std::uint8_t>& bytes() { return data_; }

private:
    std::vector<std::uint8_t> data_;
};

class ByteReader {
public:
    ByteReader(const std::vector<std::uint8_t>& data, std::size_t end, const std::string& name)
        : data_(data), end_(end), name_(name) {}

    template <class V>
    V get(const char* field) {
        V value;
        std::memcpy(&value, take(sizeof(V), field), sizeof(V));
        return value;
    }
    const std::uint8_t* take(std::size_t size, const char* field) {
        if (size > end_ - offset_)
            throw model_error(name_ + ": truncated: the " + field + " at offset " + std::to_string(offset_) + " needs " +
                              std::to_string(size) + " bytes, " + std::to_string(end_ - offset_) + " remain");
        const std::uint8_t* at = data_.data() + offset_;
        offset_ += size;
        return at;
    }
    std::string text(const char* field) {
        const auto size = get<std::uint32_t>(field);
        const auto* bytes = take(size, field);
        return {reinterpret_cast<const char*>(bytes), size};
    }
    [[nodiscard]] std::size_t offset() const noexcept { return offset_; }

private:
    const std::vector<std::uint8_t>& data_;
    std::size_t end_;
    std::size_t offset_ = 0;
    const std::string& name_;
};

inline std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::size_t start = 0;
    while (start < text.size()) {
        const std::size_t end = text.find('\n', start);
        lines.push_back(text.substr(start, end - start));
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return lines;
}

}  // namespace detail

/// The model file as bytes (what save_model writes).
template <class Net>
std::vector<std::uint8_t> serialize_model(const Net& net, std::string_view metadata = {}) {
    using T = typename Net::value_type;
    detail::ByteWriter out;
    out.put_bytes(model_magic.data(), model_magic.size());
    out.put(model_format_version);
    out.put(static_cast<std::uint32_t>(sizeof(T)));
    out.put_text(net.architecture());
    out.put_text(metadata);
    out.put(static_cast<std::uint64_t>(net.parameter_count()));
    net.for_each_layer([&](std::size_t, const auto& layer) {
        const std::span<const T> values = layer.parameters();
        out.put_bytes(values.data(), values.size_bytes());
    });
    out.put(detail::crc32(out.bytes().data(), out.bytes().size()));
    return std::move(out.bytes());
}

/// Saves the architecture and parameters of `net` (and the application's metadata) to `path`.
template <class Net>
void save_model(const Net& net, const std::filesystem::path& path, std::string_view metadata = {}) {
    write_file_atomically<model_error>(path, serialize_model(net, metadata));
}

/// Loads parameters saved from a network of the same architecture and number type into
/// `net`; returns the metadata text. `name` is used in error messages.
template <class Net>
std::string deserialize_model(Net& net, const std::vector<std::uint8_t>& bytes, const std::string& name) {
    using T = typename Net::value_type;
    if (bytes.empty()) throw model_error(name + ": is empty; expected a model file");
    if (bytes.size() < model_magic.size() ||
        std::memcmp(bytes.data(), model_magic.data(), model_magic.size()) != 0)
        throw model_error(name + ": not a model file (it does not start with \"CNNMODEL\")");
    detail::ByteReader header(bytes, bytes.size(), name);
    header.take(model_magic.size(), "magic");
    const auto version = header.get<std::uint32_t>("format version");
    if (version > model_format_version)
        throw model_error(name + ": model format version " + std::to_string(version) +
                          " is newer than this library reads (" + std::to_string(model_format_version) +
                          "); update the library");
    if (version == 0) throw model_error(name + ": format version 0 at offset 8: the file is corrupt");
    if (bytes.size() < model_magic.size() + 4 + 4)
        throw model_error(name + ": truncated: " + std::to_string(bytes.size()) + " bytes");

    const std::size_t body = bytes.size() - 4;
    std::uint32_t stored_crc;
    std::memcpy(&stored_crc, bytes.data() + body, 4);
    const std::uint32_t actual_crc = detail::crc32(bytes.data(), body);
    if (stored_crc != actual_crc)
        throw model_error(name + ": checksum mismatch (stored " + std::to_string(stored_crc) + ", computed " +
                          std::to_string(actual_crc) + "): the file is corrupt or truncated");

    detail::ByteReader in(bytes, body, name);
    in.take(model_magic.size() + 4, "header");
    const auto scalar = in.get<std::uint32_t>("parameter size");
    if (scalar != sizeof(T))
        throw model_error(name + ": holds " + std::to_string(scalar * 8) + "-bit parameters, this network uses " +
                          std::to_string(sizeof(T) * 8) + "-bit ones");
    const std::string architecture = in.text("architecture");
    const std::string metadata = in.text("metadata");
    const std::string expected = net.architecture();
    if (architecture != expected) {
        const auto saved = detail::split_lines(architecture), ours = detail::split_lines(expected);
        std::size_t layer = 0;
        while (layer < saved.size() && layer < ours.size() && saved[layer] == ours[layer]) ++layer;
        const std::string saved_layer = layer < saved.size() ? saved[layer] : "(no layer)";
        const std::string our_layer = layer < ours.size() ? ours[layer] : "(no layer)";
        throw model_error(name + ": saved from another architecture: layer " + std::to_string(layer) + " is " +
                          saved_layer + " in the file and " + our_layer + " in this network");
    }
    const auto count = in.get<std::uint64_t>("parameter count");
    if (count != net.parameter_count())
        throw model_error(name + ": holds " + std::to_string(count) + " parameters, the network has " +
                          std::to_string(net.parameter_count()));
    const std::uint8_t* values = in.take(count * sizeof(T), "parameters");
    if (in.offset() != body)
        throw model_error(name + ": " + std::to_string(body - in.offset()) + " unexpected bytes after the parameters");

    // Every check passed; only now is the network changed.
    std::vector<T> parameters(count);
    if (count != 0) std::memcpy(parameters.data(), values, count * sizeof(T));
    std::size_t offset = 0;
    net.for_each_layer([&](std::size_t index, const auto& layer) {
        for (std::size_t i = 0; i < layer.parameters().size(); ++i)
            if (!std::isfinite(parameters[offset + i]))
                throw model_error(name + ": parameter " + std::to_string(i) + " of layer " + std::to_string(index) +
                                  " (" + layer.describe() + ") is not a finite number");
        offset += layer.parameters().size();
    });
    offset = 0;
    net.for_each_layer([&](std::size_t, auto& layer) {
        const std::span<T> target = layer.parameters();
        std::copy_n(parameters.begin() + static_cast<std::ptrdiff_t>(offset), target.size(), target.begin());
        offset += target.size();
    });
    return metadata;
}

/// Loads `path` into `net` (see deserialize_model); returns the metadata text.
template <class Net>
std::string load_model(Net& net, const std::filesystem::path& path) {
    const std::string name = path.string();
    const std::vector<std::uint8_t> bytes = read_file<model_error>(path, max_model_file_size, "model file");
    return deserialize_model(net, bytes, name);
}

}  // namespace cnn
