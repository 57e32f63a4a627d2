// Saving and loading trained models.
//
// Model file format, version 2 (all integers little-endian):
//
//   offset  size  field
//   0       8     magic "CNNMODEL"
//   8       4     format version (2)
//   12      4     bytes per parameter: 4 (float) or 8 (double)
//   16      4     A, the length of the architecture text
//   20      A     architecture: one line per layer, its describe() text, for people
//                 ("Conv2D(1->6, 5x5, stride 1, padding 2)\nReLU\n..."); never compared
//   20+A    4     R, the length of the structure
//   24+A    R     structure: the network's record (what the loader compares), recursively:
//                   kind         u32 length + bytes ("Sequential", "Conv2D", "Residual", ...)
//                   description  u32 length + bytes (describe(), for messages)
//                   attributes   u32 count, each: u32 length + name, u8 type (0 int64,
//                                1 float64), 8 bytes value
//                   parameters   u64: how many values the layer holds itself
//                   children     u32 count, each a record (a composite's layers, in order)
//   24+A+R  4     M, the length of the metadata text
//   28+A+R  M     metadata: "key=value" lines the application chooses (normalisation, class names)
//   28+A+R+M 8    P, the parameter count
//   36+A+R+M P*s  the parameters, leaf layer by leaf layer in data order, each layer's
//                 parameters() span as it is in memory (IEEE 754, little-endian)
//   end-4   4     CRC-32 (IEEE, as zlib's crc32) of every byte before it
//
// Version 1 (the library's 0.1 and 0.2) had no structure: its architecture text was what
// the loader compared. Files of version 1 still load, into networks whose leaf layers
// describe themselves as the file's lines do.
//
// save_model writes a temporary file next to the target, flushes it to disk and
// renames it over the target, so a crash leaves either the old model or the new
// one, never half of one. load_model checks everything before it changes the
// network: a file of another architecture (the message names the first differing
// layer by its path), a truncated file, a flipped byte or a newer format version gives
// a cnn::model_error and leaves the network as it was.
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
#include <variant>
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

inline constexpr std::uint32_t model_format_version = 2;
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

inline void put_record(ByteWriter& out, const LayerRecord& record) {
    out.put_text(record.kind);
    out.put_text(record.description);
    out.put(static_cast<std::uint32_t>(record.attributes.size()));
    for (const auto& [name, value] : record.attributes) {
        out.put_text(name);
        out.put(static_cast<std::uint8_t>(value.index()));
        std::visit([&](auto v) { out.put(v); }, value);
    }
    out.put(static_cast<std::uint64_t>(record.parameters));
    out.put(static_cast<std::uint32_t>(record.children.size()));
    for (const auto& child : record.children) put_record(out, child);
}

/// Records nest no deeper than this in a file (a network 64 composites deep is not one of ours).
inline constexpr std::size_t max_record_depth = 64;

inline LayerRecord get_record(ByteReader& in, const std::string& name, std::size_t depth = 0) {
    if (depth > max_record_depth)
        throw model_error(name + ": the structure at offset " + std::to_string(in.offset()) + " nests deeper than " +
                          std::to_string(max_record_depth) + " levels: the file is corrupt");
    LayerRecord record;
    record.kind = in.text("layer kind");
    record.description = in.text("layer description");
    const auto attributes = in.get<std::uint32_t>("attribute count");
    for (std::uint32_t a = 0; a < attributes; ++a) {
        std::string key = in.text("attribute name");
        const std::size_t at = in.offset();
        const auto type = in.get<std::uint8_t>("attribute type");
        if (type == 0)
            record.attributes.emplace_back(std::move(key), in.get<std::int64_t>("attribute value"));
        else if (type == 1)
            record.attributes.emplace_back(std::move(key), in.get<double>("attribute value"));
        else
            throw model_error(name + ": attribute type " + std::to_string(type) + " at offset " + std::to_string(at) +
                              " is neither 0 (integer) nor 1 (float64): the file is corrupt");
    }
    record.parameters = in.get<std::uint64_t>("layer parameter count");
    const auto children = in.get<std::uint32_t>("child count");
    for (std::uint32_t c = 0; c < children; ++c) record.children.push_back(get_record(in, name, depth + 1));
    return record;
}

/// "Conv2D(...)" or, where a layer's description does not show a difference, its kind and attributes.
inline std::string record_text(const LayerRecord& record, bool with_attributes) {
    if (!with_attributes) return record.description.empty() ? record.kind : record.description;
    std::string text = record.kind + "(";
    for (std::size_t a = 0; a < record.attributes.size(); ++a) {
        if (a != 0) text += ", ";
        text += record.attributes[a].first + "=";
        std::visit([&](auto v) { text += std::to_string(v); }, record.attributes[a].second);
    }
    return text + ")";
}

/// The name of child `index` of a composite of kind `kind` in an error's path.
inline std::string child_name(const std::string& kind, std::size_t index) {
    if (kind == "Residual") return index == 0 ? "body" : "shortcut";
    if (kind.starts_with("Parallel")) return "branch " + std::to_string(index);
    return "layer " + std::to_string(index);
}

/// Empty when the two records describe the same network (descriptions aside); else where and
/// how they first differ, e.g. "layer 3 (Residual) > body > layer 1 is Conv2D(16->32, ...) in
/// the file and Conv2D(16->64, ...) in this network".
inline std::string first_difference(const LayerRecord& saved, const LayerRecord& ours, const std::string& path) {
    const bool same_layer =
        saved.kind == ours.kind && saved.attributes == ours.attributes && saved.parameters == ours.parameters;
    if (same_layer && saved.children.size() == ours.children.size()) {
        for (std::size_t c = 0; c < ours.children.size(); ++c) {
            // In a chain, a composite's kind goes into the path ("layer 3 (Residual)"); a body,
            // shortcut or branch is named by its place alone.
            const std::string step = child_name(ours.kind, c);
            const bool in_chain = step.starts_with("layer ");
            const std::string inner =
                path + step + (in_chain && !ours.children[c].children.empty() ? " (" + ours.children[c].kind + ")" : "");
            if (std::string found = first_difference(saved.children[c], ours.children[c], inner + " > "); !found.empty())
                return found;
        }
        return {};
    }
    const std::string where = path.empty() ? std::string("the network") : path.substr(0, path.size() - 3);
    if (same_layer) {
        const auto layers = [](std::size_t n) { return std::to_string(n) + (n == 1 ? " layer" : " layers"); };
        return where + " has " + layers(saved.children.size()) + " in the file and " + layers(ours.children.size()) +
               " in this network";
    }
    const bool described_apart = record_text(saved, false) != record_text(ours, false);
    return where + " is " + record_text(saved, !described_apart) + " in the file and " +
           record_text(ours, !described_apart) + " in this network";
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
    detail::ByteWriter structure;
    detail::put_record(structure, detail::record(net));
    out.put(static_cast<std::uint32_t>(structure.bytes().size()));
    out.put_bytes(structure.bytes().data(), structure.bytes().size());
    out.put_text(metadata);
    out.put(static_cast<std::uint64_t>(net.parameter_count()));
    detail::for_each_leaf(net, [&](const auto& layer) {
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

namespace detail {

/// Checks what every model file has around its contents (magic, format version, size,
/// checksum); returns the format version.
inline std::uint32_t check_model_envelope(const std::vector<std::uint8_t>& bytes, const std::string& name) {
    if (bytes.empty()) throw model_error(name + ": is empty; expected a model file");
    if (bytes.size() < model_magic.size() ||
        std::memcmp(bytes.data(), model_magic.data(), model_magic.size()) != 0)
        throw model_error(name + ": not a model file (it does not start with \"CNNMODEL\")");
    ByteReader header(bytes, bytes.size(), name);
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
    const std::uint32_t actual_crc = crc32(bytes.data(), body);
    if (stored_crc != actual_crc)
        throw model_error(name + ": checksum mismatch (stored " + std::to_string(stored_crc) + ", computed " +
                          std::to_string(actual_crc) + "): the file is corrupt or truncated");
    return version;
}

}  // namespace detail

/// The metadata text of a model file in memory, read without a network (to decide which
/// network to build for it). The file is checked as load_model checks it, up to the metadata.
inline std::string model_metadata(const std::vector<std::uint8_t>& bytes, const std::string& name) {
    const std::uint32_t version = detail::check_model_envelope(bytes, name);
    detail::ByteReader in(bytes, bytes.size() - 4, name);
    in.take(model_magic.size() + 4, "header");
    (void)in.get<std::uint32_t>("parameter size");
    (void)in.text("architecture");
    if (version >= 2) in.take(in.get<std::uint32_t>("structure length"), "structure");
    return in.text("metadata");
}

/// Loads parameters saved from a network of the same architecture and number type into
/// `net`; returns the metadata text. `name` is used in error messages.
template <class Net>
std::string deserialize_model(Net& net, const std::vector<std::uint8_t>& bytes, const std::string& name) {
    using T = typename Net::value_type;
    const std::uint32_t version = detail::check_model_envelope(bytes, name);
    const std::size_t body = bytes.size() - 4;
    detail::ByteReader in(bytes, body, name);
    in.take(model_magic.size() + 4, "header");
    const auto scalar = in.get<std::uint32_t>("parameter size");
    if (scalar != sizeof(T))
        throw model_error(name + ": holds " + std::to_string(scalar * 8) + "-bit parameters, this network uses " +
                          std::to_string(sizeof(T) * 8) + "-bit ones");
    const std::string architecture = in.text("architecture");
    if (version >= 2) {
        const auto size = in.get<std::uint32_t>("structure length");
        const std::size_t start = in.offset();
        in.take(size, "structure");
        detail::ByteReader structure(bytes, start + size, name);
        structure.take(start, "structure");
        const LayerRecord saved = detail::get_record(structure, name);
        if (structure.offset() != start + size)
            throw model_error(name + ": the structure ends at offset " + std::to_string(structure.offset()) +
                              ", its length says " + std::to_string(start + size) + ": the file is corrupt");
        if (const std::string difference = detail::first_difference(saved, detail::record(net), ""); !difference.empty())
            throw model_error(name + ": saved from another architecture: " + difference);
    }
    const std::string metadata = in.text("metadata");
    const std::string expected = net.architecture();
    if (version == 1 && architecture != expected) {
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
    detail::install_parameters<model_error>(net, std::span<const T>{parameters}, name);
    return metadata;
}

/// The metadata text of the model file `path`, read without a network (see model_metadata).
inline std::string read_model_metadata(const std::filesystem::path& path) {
    return model_metadata(read_file<model_error>(path, max_model_file_size, "model file"), path.string());
}

/// Loads `path` into `net` (see deserialize_model); returns the metadata text.
template <class Net>
std::string load_model(Net& net, const std::filesystem::path& path) {
    const std::string name = path.string();
    const std::vector<std::uint8_t> bytes = read_file<model_error>(path, max_model_file_size, "model file");
    return deserialize_model(net, bytes, name);
}

}  // namespace cnn
