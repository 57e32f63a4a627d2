// Image files and folders of them: PNG, JPEG, PGM and PPM (binary: P5, P6), decoded by
// stb_image (Debian: libstb-dev). Needs the CMake target cnn::images, which links it; the
// rest of the library has no such dependency.
//
// A folder data set has one subfolder per class, named after it:
//
//   ROOT/cat/0001.png, ROOT/cat/0002.jpg, ..., ROOT/dog/0001.png, ...
//
// Classes are the subfolders in name order (label 0 is the first); images are read in name
// order within each. Hidden files (a name starting with '.') are skipped; any other file
// that is not .png, .jpg, .jpeg, .pgm, .ppm or .pnm is an error, as is a file that does not
// decode. Every image must have the size of the first (or of ImageFolderOptions::rows x
// cols): one that differs is an error naming it, unless the options say to resize.
#pragma once

#if !defined(CNN_WITH_STB)
#error "cnn/data/image_folder.hpp decodes images with stb_image: link the CMake target cnn::images (Debian: apt-get install libstb-dev)"
#endif

#if __has_include(<stb/stb_image.h>)
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#else
#include <stb_image.h>
#include <stb_image_resize.h>
#endif

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cnn/data/dataset.hpp"
#include "cnn/error.hpp"
#include "cnn/io/file.hpp"

namespace cnn {

/// How images of another size than the data set's are treated.
enum class SizeMismatch {
    reject,  ///< a data_error naming the image and both sizes
    resize   ///< resampled to the data set's size (stb_image_resize's default filter)
};

struct ImageOptions {
    /// 1 (greyscale) or 3 (RGB); 0: what the first image has (grey, grey + alpha: 1; else 3).
    /// Images are converted to it (RGB to grey by luminance, grey to RGB by copying; alpha
    /// is dropped).
    std::size_t channels = 0;
    /// The image size; 0: the first image's.
    std::size_t rows = 0, cols = 0;
    SizeMismatch sizes = SizeMismatch::reject;
    /// The largest image decoded, in pixels (width x height), checked from the file's header
    /// before decoding: a small file can claim an image of gigabytes.
    std::size_t max_pixels = std::size_t{1} << 24;
    /// The largest image file read.
    std::uint64_t max_file_size = std::uint64_t{1} << 28;
};

/// One decoded image: channels x rows x cols bytes, planes as in a Dataset.
struct Image {
    std::vector<std::uint8_t> planes;
    std::size_t channels = 0, rows = 0, cols = 0;
};

namespace detail {

struct StbFree {
    void operator()(unsigned char* pixels) const noexcept { stbi_image_free(pixels); }
};

/// Interleaved pixels (what stb returns) to planes.
inline std::vector<std::uint8_t> to_planes(const unsigned char* pixels, std::size_t channels, std::size_t count) {
    std::vector<std::uint8_t> planes(channels * count);
    for (std::size_t p = 0; p < count; ++p)
        for (std::size_t c = 0; c < channels; ++c) planes[c * count + p] = pixels[p * channels + c];
    return planes;
}

inline bool is_image_name(const std::filesystem::path& path) {
    std::string extension = path.extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return extension == ".png" || extension == ".jpg" || extension == ".jpeg" || extension == ".pgm" ||
           extension == ".ppm" || extension == ".pnm";
}

/// The entries of `directory` in name order, hidden ones (a name starting with '.') left out:
/// its subfolders when `folders`, else everything else in it.
inline std::vector<std::filesystem::path> visible_entries(const std::filesystem::path& directory, bool folders) {
    std::vector<std::filesystem::path> entries;
    std::error_code error;
    for (std::filesystem::directory_iterator it(directory, error), end; !error && it != end; it.increment(error))
        if (it->path().filename().string().front() != '.' && it->is_directory(error) == folders)
            entries.push_back(it->path());
    if (error) throw data_error(directory.string() + ": cannot be listed: " + error.message());
    std::sort(entries.begin(), entries.end());
    return entries;
}

/// stb_image decodes a binary PGM or PPM (P5, P6) whose pixels are cut short without a word;
/// this checks that exactly width x height x channels samples follow the header.
inline void check_pnm_size(std::span<const std::uint8_t> bytes, const std::string& name) {
    if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '6')) return;
    std::size_t at = 2, numbers[3] = {0, 0, 0};
    for (std::size_t& number : numbers) {
        while (at < bytes.size() && (std::isspace(bytes[at]) || bytes[at] == '#')) {
            if (bytes[at] == '#')
                while (at < bytes.size() && bytes[at] != '\n') ++at;
            else
                ++at;
        }
        const std::size_t start = at;
        while (at < bytes.size() && at - start < 9 && bytes[at] >= '0' && bytes[at] <= '9')
            number = number * 10 + (bytes[at++] - '0');
        if (at == start) return;  // not a header stb_image reads either: it reports it
    }
    ++at;  // the one white-space byte after maxval
    const std::size_t expected = numbers[0] * numbers[1] * (bytes[1] == '6' ? 3 : 1) * (numbers[2] > 255 ? 2 : 1);
    const std::size_t present = bytes.size() - std::min(at, bytes.size());
    if (present < expected)
        throw data_error(name + ": truncated: " + std::to_string(present) + " bytes of pixels at offset " +
                         std::to_string(at) + ", " + std::to_string(expected) + " needed");
    if (present > expected)
        throw data_error(name + ": has " + std::to_string(present - expected) + " bytes after the " +
                         std::to_string(expected) + " bytes of pixels at offset " + std::to_string(at));
}

/// stb_image allocates what a PNG chunk's length field claims before it reads the chunk (a
/// 46-byte file can ask for 859 MB); this checks that every chunk up to IEND lies within the
/// file, so that nothing larger than the file is allocated for its data.
inline void check_png_chunks(std::span<const std::uint8_t> bytes, const std::string& name) {
    static constexpr std::uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (bytes.size() < 8 || !std::equal(signature, signature + 8, bytes.begin())) return;
    std::size_t at = 8;
    while (true) {
        if (bytes.size() - at < 12)
            throw data_error(name + ": truncated PNG: " + std::to_string(bytes.size() - at) +
                             " bytes at offset " + std::to_string(at) + ", where a chunk (at least 12 bytes) or IEND "
                             "should be");
        const std::size_t length = std::size_t{bytes[at]} << 24 | std::size_t{bytes[at + 1]} << 16 |
                                   std::size_t{bytes[at + 2]} << 8 | std::size_t{bytes[at + 3]};
        std::string type;
        for (std::size_t i = 4; i < 8; ++i)
            type += std::isalpha(bytes[at + i]) ? static_cast<char>(bytes[at + i]) : '?';
        if (length > bytes.size() - at - 12)
            throw data_error(name + ": PNG chunk '" + type + "' at offset " + std::to_string(at) + " claims " +
                             std::to_string(length) + " bytes of data; the file has " +
                             std::to_string(bytes.size() - at - 12) + " after its header and CRC");
        if (type == "IEND") return;
        at += length + 12;
    }
}

}  // namespace detail

/// Decodes the image file in `bytes` (`name` for messages) with `options`: its channels
/// (0: the file's), and, when rows and cols are set, that size (resized or rejected as
/// options.sizes says). Throws cnn::data_error naming the file and the problem.
inline Image decode_image(std::span<const std::uint8_t> bytes, const std::string& name, const ImageOptions& options = {}) {
    if (options.channels != 0 && options.channels != 1 && options.channels != 3)
        throw parameter_error("ImageOptions: channels " + std::to_string(options.channels) +
                              " is not 1 (greyscale), 3 (RGB) or 0 (the file's)");
    if (bytes.empty()) throw data_error(name + ": is empty; expected a PNG, JPEG, PGM or PPM image");
    if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()))
        throw data_error(name + ": is " + std::to_string(bytes.size()) + " bytes, more than an image file can be");
    const auto size = static_cast<int>(bytes.size());
    int width = 0, height = 0, file_channels = 0;
    if (!stbi_info_from_memory(bytes.data(), size, &width, &height, &file_channels))
        throw data_error(name + ": not a PNG, JPEG, PGM or PPM image stb_image can read (" + stbi_failure_reason() +
                         ")");
    if (width <= 0 || height <= 0 ||
        static_cast<std::size_t>(width) > options.max_pixels / static_cast<std::size_t>(height))
        throw data_error(name + ": is " + std::to_string(width) + "x" + std::to_string(height) + ", more than " +
                         std::to_string(options.max_pixels) + " pixels (ImageOptions::max_pixels)");
    detail::check_pnm_size(bytes, name);
    detail::check_png_chunks(bytes, name);
    const std::size_t channels = options.channels != 0 ? options.channels : (file_channels <= 2 ? 1 : 3);
    int w = 0, h = 0, n = 0;
    const std::unique_ptr<unsigned char, detail::StbFree> pixels(
        stbi_load_from_memory(bytes.data(), size, &w, &h, &n, static_cast<int>(channels)));
    if (!pixels) throw data_error(name + ": cannot be decoded: " + stbi_failure_reason());
    Image image{{}, channels, static_cast<std::size_t>(h), static_cast<std::size_t>(w)};
    const std::size_t rows = options.rows != 0 ? options.rows : image.rows;
    const std::size_t cols = options.cols != 0 ? options.cols : image.cols;
    if (rows == image.rows && cols == image.cols) {
        image.planes = detail::to_planes(pixels.get(), channels, rows * cols);
        return image;
    }
    if (options.sizes == SizeMismatch::reject)
        throw data_error(name + ": is " + std::to_string(image.cols) + "x" + std::to_string(image.rows) +
                         " (width x height), the data set's images " + std::to_string(cols) + "x" +
                         std::to_string(rows) + "; resize them, or choose SizeMismatch::resize");
    std::vector<unsigned char> resized(rows * cols * channels);
    if (!stbir_resize_uint8(pixels.get(), w, h, 0, resized.data(), static_cast<int>(cols), static_cast<int>(rows), 0,
                            static_cast<int>(channels)))
        throw data_error(name + ": cannot be resized to " + std::to_string(cols) + "x" + std::to_string(rows));
    image.rows = rows;
    image.cols = cols;
    image.planes = detail::to_planes(resized.data(), channels, rows * cols);
    return image;
}

/// Reads and decodes the image file `path` (see decode_image).
inline Image read_image(const std::filesystem::path& path, const ImageOptions& options = {}) {
    const std::vector<std::uint8_t> bytes = read_file<data_error>(path, options.max_file_size, "image file");
    return decode_image(bytes, path.string(), options);
}

/// Loads the folder data set under `root` (see the top of this file). The channels and size
/// are those of options, or of the first image where options leave them 0.
inline Dataset load_image_folder(const std::filesystem::path& root, ImageOptions options = {}) {
    detail::require_directory(root);
    const std::vector<std::filesystem::path> classes = detail::visible_entries(root, true);
    if (classes.empty()) throw data_error(root.string() + ": has no subfolders, one per class, of images");
    if (classes.size() > 256)
        throw data_error(root.string() + ": has " + std::to_string(classes.size()) +
                         " subfolders; a data set holds at most 256 classes (labels are bytes)");

    Dataset data;
    data.classes = classes.size();
    for (std::size_t label = 0; label < classes.size(); ++label) {
        data.class_names.push_back(classes[label].filename().string());
        if (data.class_names.back().find(',') != std::string::npos)
            throw data_error(classes[label].string() + ": a class name must be without commas");
        const std::vector<std::filesystem::path> files = detail::visible_entries(classes[label], false);
        for (const std::filesystem::path& file : files)
            if (!detail::is_image_name(file))
                throw data_error(file.string() +
                                 ": not an image file name (.png, .jpg, .jpeg, .pgm, .ppm or .pnm); move it out of "
                                 "the data set");
        if (files.empty()) throw data_error(classes[label].string() + ": holds no images for class '" +
                                            data.class_names.back() + "'");
        for (const std::filesystem::path& file : files) {
            Image image = read_image(file, options);
            if (data.count == 0) {  // the first image fixes what options left open
                options.channels = image.channels;
                options.rows = image.rows;
                options.cols = image.cols;
            }
            data.images.insert(data.images.end(), image.planes.begin(), image.planes.end());
            data.labels.push_back(static_cast<std::uint8_t>(label));
            ++data.count;
        }
    }
    data.channels = options.channels;
    data.rows = options.rows;
    data.cols = options.cols;
    data.files = {root};
    return data;
}

}  // namespace cnn
