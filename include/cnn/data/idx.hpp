// Reading IDX files, the format of MNIST and Fashion-MNIST, raw or gzip-compressed.
//
//   bytes 0-1   0x00 0x00
//   byte  2     element type: 0x08 unsigned byte (the only type this reader takes)
//   byte  3     rank r
//   then        r dimensions, 32-bit big-endian, then the elements, row-major.
//
// The header is checked against the file before anything large is allocated:
// a truncated or corrupt file, or a header that claims more data than the file
// can hold, gives a cnn::data_error naming the file and what was expected.
// Gzip needs zlib: define CNN_WITH_ZLIB and link zlib (CMake: link cnn::gzip).
// Without it raw files still load and a .gz file gets an error saying so.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "cnn/error.hpp"
#include "cnn/io/file.hpp"

#if defined(CNN_WITH_ZLIB)
#include <zlib.h>
#endif

namespace cnn {

/// A data file that cannot be read: the message names the file and what was wrong.
struct data_error : error {
    using error::error;
};

struct IdxArray {
    std::vector<std::size_t> dimensions;
    std::vector<std::uint8_t> values;  ///< row-major
};

/// True when this build can read gzip-compressed files.
constexpr bool idx_gzip_supported() noexcept {
#if defined(CNN_WITH_ZLIB)
    return true;
#else
    return false;
#endif
}

namespace detail {

/// Deflate cannot compress better than about 1032:1, so a gzip file of n bytes
/// holds at most this many bytes; a header claiming more is corrupt.
inline std::uint64_t gzip_capacity(std::uint64_t compressed_size) { return compressed_size * 1032 + 4096; }

class ByteSource {
public:
    virtual ~ByteSource() = default;
    /// Reads up to `count` bytes; returns how many were read (fewer only at the end).
    virtual std::size_t read(std::uint8_t* out, std::size_t count) = 0;
    /// Called once all data has been read: throws if the container around it is incomplete.
    virtual void finish() {}
};

class RawSource final : public ByteSource {
public:
    explicit RawSource(const std::filesystem::path& path) : file_(path, std::ios::binary) {}
    [[nodiscard]] bool is_open() const { return file_.is_open(); }
    std::size_t read(std::uint8_t* out, std::size_t count) override {
        file_.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(count));
        return static_cast<std::size_t>(file_.gcount());
    }

private:
    std::ifstream file_;
};

#if defined(CNN_WITH_ZLIB)
/// Inflates a gzip stream held in memory.
class GzipMemorySource final : public ByteSource {
public:
    GzipMemorySource(std::span<const std::uint8_t> bytes, const std::string& name) : name_(name) {
        stream_.next_in = const_cast<Bytef*>(bytes.data());
        stream_.avail_in = static_cast<uInt>(bytes.size());
        if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK) throw data_error(name_ + ": cannot start zlib");
    }
    ~GzipMemorySource() override { inflateEnd(&stream_); }
    GzipMemorySource(const GzipMemorySource&) = delete;
    GzipMemorySource& operator=(const GzipMemorySource&) = delete;

    std::size_t read(std::uint8_t* out, std::size_t count) override {
        std::size_t done = 0;
        while (done < count && !finished_) {
            stream_.next_out = out + done;
            stream_.avail_out = static_cast<uInt>(std::min<std::size_t>(count - done, 1u << 30));
            const uInt before = stream_.avail_out;
            const int status = inflate(&stream_, Z_NO_FLUSH);
            done += before - stream_.avail_out;
            if (status == Z_STREAM_END) {
                finished_ = complete_ = true;
            } else if (status != Z_OK) {
                if (status == Z_BUF_ERROR && stream_.avail_in == 0) {
                    finished_ = true;  // the compressed data ends early: a truncated stream
                } else {
                    throw data_error(name_ + ": corrupt gzip stream after " + std::to_string(stream_.total_out) +
                                     " uncompressed bytes (" + (stream_.msg ? stream_.msg : "zlib error") + ")");
                }
            }
        }
        return done;
    }

    /// The stream must have ended with its trailer (whose CRC-32 zlib then checked), and
    /// nothing may follow it.
    void finish() override {
        if (!complete_)
            throw data_error(name_ + ": the gzip stream ends after " + std::to_string(stream_.total_in) +
                             " compressed bytes without its 8-byte trailer (truncated), so its checksum cannot be "
                             "checked");
        if (stream_.avail_in != 0)
            throw data_error(name_ + ": has " + std::to_string(stream_.avail_in) +
                             " bytes after the end of its gzip stream (at offset " + std::to_string(stream_.total_in) +
                             ")");
    }

private:
    std::string name_;
    z_stream stream_{};
    bool finished_ = false;
    bool complete_ = false;
};
#endif

class MemorySource final : public ByteSource {
public:
    explicit MemorySource(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}
    std::size_t read(std::uint8_t* out, std::size_t count) override {
        const std::size_t n = std::min(count, bytes_.size() - offset_);
        std::copy_n(bytes_.data() + offset_, n, out);
        offset_ += n;
        return n;
    }

private:
    std::span<const std::uint8_t> bytes_;
    std::size_t offset_ = 0;
};

inline std::string hex_byte(std::uint8_t byte) {
    char text[5];
    std::snprintf(text, sizeof text, "0x%02x", byte);
    return text;
}

inline std::string element_type_name(std::uint8_t code) {
    switch (code) {
        case 0x08: return "unsigned byte";
        case 0x09: return "signed byte";
        case 0x0B: return "16-bit integer";
        case 0x0C: return "32-bit integer";
        case 0x0D: return "float";
        case 0x0E: return "double";
        default: return "unknown";
    }
}

}  // namespace detail

namespace detail {

inline void no_zlib(const std::string& name) {
    throw data_error(name + ": is gzip-compressed, and this program was built without zlib; "
                            "decompress it (gunzip) or build with zlib (CMake target cnn::gzip)");
}

/// Parses an IDX stream of `stored_size` bytes (compressed size for gzip) from `source`.
inline IdxArray parse_idx(ByteSource& source, std::uint64_t stored_size, bool gzip, const std::string& name,
                          std::size_t expected_rank) {
    const std::uint64_t file_size = stored_size;
    const std::string what = gzip ? " (after decompression)" : "";

    std::array<std::uint8_t, 4> magic{};
    const std::size_t got = source.read(magic.data(), 4);
    if (got == 0) throw data_error(name + ": is empty; expected an IDX header");
    if (got < 4) throw data_error(name + ": ends after " + std::to_string(got) + " bytes; an IDX header has at least 4");
    if (magic[0] != 0 || magic[1] != 0)
        throw data_error(name + ": not an IDX file: the first two bytes" + what + " are " + std::to_string(magic[0]) +
                         " " + std::to_string(magic[1]) + ", expected 0 0");
    if (magic[2] != 0x08)
        throw data_error(name + ": element type " + detail::hex_byte(magic[2]) + " (" +
                         detail::element_type_name(magic[2]) + ") at offset 2; expected 0x08 (unsigned byte)");
    if (magic[3] != expected_rank)
        throw data_error(name + ": rank " + std::to_string(magic[3]) + " at offset 3; expected " +
                         std::to_string(expected_rank));

    IdxArray array;
    std::uint64_t count = 1;
    for (std::size_t axis = 0; axis < expected_rank; ++axis) {
        std::array<std::uint8_t, 4> bytes{};
        if (source.read(bytes.data(), 4) < 4)
            throw data_error(name + ": ends inside the header, in dimension " + std::to_string(axis) + " at offset " +
                             std::to_string(4 + 4 * axis) + what);
        const std::uint64_t extent = (std::uint64_t{bytes[0]} << 24) | (std::uint64_t{bytes[1]} << 16) |
                                     (std::uint64_t{bytes[2]} << 8) | std::uint64_t{bytes[3]};
        if (extent == 0)
            throw data_error(name + ": dimension " + std::to_string(axis) + " (offset " + std::to_string(4 + 4 * axis) +
                             ") is 0");
        if (count > std::numeric_limits<std::uint64_t>::max() / extent)
            throw data_error(name + ": the dimensions overflow when multiplied");
        count *= extent;
        array.dimensions.push_back(static_cast<std::size_t>(extent));
    }
    const std::uint64_t header = 4 + 4 * expected_rank;
    if (!gzip && file_size - header != count)
        throw data_error(name + ": the header claims " + std::to_string(count) + " bytes of data, the file holds " +
                         std::to_string(file_size - header) + (file_size - header < count ? " (truncated)" : ""));
    if (gzip && count > detail::gzip_capacity(file_size))
        throw data_error(name + ": the header claims " + std::to_string(count) + " bytes of data, more than a " +
                         std::to_string(file_size) + "-byte gzip file can hold");
    if (count > std::numeric_limits<std::size_t>::max() / 2)
        throw data_error(name + ": the header claims " + std::to_string(count) + " bytes, too many to hold");

    array.values.resize(static_cast<std::size_t>(count));
    const std::size_t read = source.read(array.values.data(), array.values.size());
    if (read < count)
        throw data_error(name + ": ends after " + std::to_string(read) + " of the " + std::to_string(count) +
                         " data bytes the header claims" + what + " (truncated)");
    std::uint8_t extra = 0;
    if (source.read(&extra, 1) != 0)
        throw data_error(name + ": has data after the " + std::to_string(count) + " bytes the header claims" + what);
    source.finish();
    return array;
}

}  // namespace detail

/// Reads an IDX file of unsigned bytes, raw or gzip, whose rank must be `expected_rank`.
/// A gzip file is read whole and must be one complete gzip stream (trailer and checksum
/// included) with nothing after it.
inline IdxArray read_idx(const std::filesystem::path& path, std::size_t expected_rank) {
    const std::string name = path.string();
    const std::filesystem::file_status status = detail::file_status<data_error>(path);
    if (status.type() == std::filesystem::file_type::not_found) throw data_error(name + ": no such file");
    if (status.type() != std::filesystem::file_type::regular)
        throw data_error(name + ": is " + detail::type_name(status.type()) + ", not an IDX file");
    std::error_code status_error;
    const std::uint64_t file_size = std::filesystem::file_size(path, status_error);
    if (status_error) throw data_error(name + ": cannot read its size: " + status_error.message());

    detail::RawSource raw(path);
    if (!raw.is_open()) throw data_error(name + ": cannot open: " + std::strerror(errno));
    std::array<std::uint8_t, 2> signature{};
    const bool gzip = raw.read(signature.data(), 2) == 2 && signature[0] == 0x1f && signature[1] == 0x8b;
    if (!gzip) {
        detail::RawSource source(path);
        return detail::parse_idx(source, file_size, false, name, expected_rank);
    }
#if defined(CNN_WITH_ZLIB)
    const std::vector<std::uint8_t> bytes = read_file<data_error>(path, std::uint64_t{1} << 32, "gzip IDX file");
    detail::GzipMemorySource source(bytes, name);
    return detail::parse_idx(source, bytes.size(), true, name, expected_rank);
#else
    detail::no_zlib(name);
    return {};
#endif
}

/// The same for an IDX file already in memory; `name` is used in error messages.
inline IdxArray read_idx(std::span<const std::uint8_t> bytes, const std::string& name, std::size_t expected_rank) {
    const bool gzip = bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
    if (!gzip) {
        detail::MemorySource source(bytes);
        return detail::parse_idx(source, bytes.size(), false, name, expected_rank);
    }
#if defined(CNN_WITH_ZLIB)
    detail::GzipMemorySource source(bytes, name);
    return detail::parse_idx(source, bytes.size(), true, name, expected_rank);
#else
    detail::no_zlib(name);
    return {};
#endif
}

}  // namespace cnn
