// Image classification data sets in the MNIST style. Images stay as bytes
// (60,000 28x28 images cost 47 MB, not 188 MB as float) and are converted per
// batch: scaled to [0, 1], or standardised with a mean and deviation.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "cnn/data/idx.hpp"
#include "cnn/random.hpp"
#include "cnn/tensor.hpp"

namespace cnn {

/// How bytes become network inputs: x = (byte / 255 - mean) / deviation.
/// The default (0, 1) scales to [0, 1].
struct Normalization {
    double mean = 0.0;
    double deviation = 1.0;

    /// Throws cnn::parameter_error unless mean is finite and deviation finite and above 0
    /// (anything else would feed NaN or infinity into the network).
    void check() const {
        if (!std::isfinite(mean) || !std::isfinite(deviation) || !(deviation > 0))
            throw parameter_error("Normalization: mean " + std::to_string(mean) + " and deviation " +
                                  std::to_string(deviation) + " must be finite, with the deviation above 0");
    }
};

struct Dataset {
    std::vector<std::uint8_t> images;  ///< count x rows x cols, row-major
    std::vector<std::uint8_t> labels;  ///< count, each below classes
    std::size_t count = 0, rows = 0, cols = 0, classes = 0;
    std::vector<std::string> class_names = {};  ///< one per class when known (load_mnist: classes.txt), else empty
    std::vector<std::filesystem::path> files = {};  ///< the files it was read from

    /// Throws cnn::data_error unless the fields agree: images holds count x rows x cols bytes,
    /// labels count labels, each below classes (a hand-built data set that does not would
    /// make batches read past its memory).
    void check(const char* who) const {
        const std::string where = std::string(who) + ": the data set ";
        if (rows == 0 || cols == 0 || classes == 0)
            throw data_error(where + "has " + std::to_string(rows) + "x" + std::to_string(cols) + " images of " +
                             std::to_string(classes) + " classes; none may be 0");
        constexpr std::size_t most = std::numeric_limits<std::size_t>::max();
        const bool fits = cols <= most / rows && count <= most / (rows * cols);
        if (!fits || images.size() != count * rows * cols)
            throw data_error(where + "holds " + std::to_string(images.size()) + " image bytes, but " +
                             std::to_string(count) + " images of " + std::to_string(rows) + "x" + std::to_string(cols) +
                             " need " + std::to_string(count * rows * cols));
        if (labels.size() != count)
            throw data_error(where + "holds " + std::to_string(labels.size()) + " labels for " + std::to_string(count) +
                             " images");
        for (std::size_t i = 0; i < count; ++i)
            if (labels[i] >= classes)
                throw data_error(where + "labels sample " + std::to_string(i) + " " + std::to_string(labels[i]) +
                                 ", not below its " + std::to_string(classes) + " classes");
    }

    /// Class `label`'s name, or its number when the names are not known.
    [[nodiscard]] std::string class_name(std::size_t label) const {
        return label < class_names.size() ? class_names[label] : std::to_string(label);
    }

    [[nodiscard]] std::size_t size() const noexcept { return count; }
    [[nodiscard]] Shape<4> batch_shape(std::size_t batch) const noexcept { return {batch, 1, rows, cols}; }

    /// The mean and standard deviation of all pixels (as byte / 255): the standardisation
    /// to use for this set and everything evaluated with a model trained on it.
    [[nodiscard]] Normalization pixel_statistics() const {
        double sum = 0, squares = 0;
        for (std::uint8_t byte : images) {
            const double value = byte / 255.0;
            sum += value;
            squares += value * value;
        }
        const double n = static_cast<double>(images.size());
        const double mean = sum / n;
        return {mean, std::sqrt(std::max(squares / n - mean * mean, 1e-12))};
    }

    /// Writes the images `indices` into x (batch x 1 x rows x cols) and their labels.
    template <Scalar T>
    void fill_batch(std::span<const std::size_t> indices, TensorView<T, 4> x, std::span<std::uint32_t> batch_labels,
                    Normalization normalization = {}) const {
        normalization.check();
        const std::size_t pixels = rows * cols;
        const T scale = static_cast<T>(1.0 / (255.0 * normalization.deviation));
        const T shift = static_cast<T>(normalization.mean / normalization.deviation);
        for (std::size_t b = 0; b < indices.size(); ++b) {
            const std::uint8_t* image = images.data() + indices[b] * pixels;
            T* out = x.data() + b * pixels;
            for (std::size_t p = 0; p < pixels; ++p) out[p] = static_cast<T>(image[p]) * scale - shift;
            batch_labels[b] = labels[indices[b]];
        }
    }

    /// The samples `indices`, copied into a data set of their own.
    [[nodiscard]] Dataset subset(std::span<const std::size_t> indices) const {
        Dataset part{{}, {}, indices.size(), rows, cols, classes, class_names, files};
        const std::size_t pixels = rows * cols;
        part.images.reserve(indices.size() * pixels);
        for (std::size_t index : indices) {
            part.images.insert(part.images.end(), images.begin() + static_cast<std::ptrdiff_t>(index * pixels),
                               images.begin() + static_cast<std::ptrdiff_t>((index + 1) * pixels));
            part.labels.push_back(labels[index]);
        }
        return part;
    }

    /// The first `limit` samples (all of them when limit is 0 or larger than the set).
    [[nodiscard]] Dataset head(std::size_t limit) const& {
        if (limit == 0 || limit >= count) return *this;
        std::vector<std::size_t> indices(limit);
        std::iota(indices.begin(), indices.end(), std::size_t{0});
        return subset(indices);
    }
    /// The same for a data set about to be dropped: shrinks it in place instead of copying.
    [[nodiscard]] Dataset head(std::size_t limit) && {
        if (limit != 0 && limit < count) {
            images.resize(limit * rows * cols);
            images.shrink_to_fit();
            labels.resize(limit);
            count = limit;
        }
        return std::move(*this);
    }
};

/// Loads an image file (rank 3: count x rows x cols) and a label file (rank 1: count).
/// Checks that the counts agree and every label is below `classes`.
inline Dataset load_idx_dataset(const std::filesystem::path& image_path, const std::filesystem::path& label_path,
                                std::size_t classes = 10) {
    IdxArray image_file = read_idx(image_path, 3);
    IdxArray label_file = read_idx(label_path, 1);
    Dataset data;
    data.count = image_file.dimensions[0];
    data.rows = image_file.dimensions[1];
    data.cols = image_file.dimensions[2];
    data.classes = classes;
    data.files = {image_path, label_path};
    if (label_file.dimensions[0] != data.count)
        throw data_error(label_path.string() + ": holds " + std::to_string(label_file.dimensions[0]) + " labels, but " +
                         image_path.string() + " holds " + std::to_string(data.count) + " images");
    for (std::size_t i = 0; i < label_file.values.size(); ++i)
        if (label_file.values[i] >= classes)
            throw data_error(label_path.string() + ": label " + std::to_string(label_file.values[i]) + " of sample " +
                             std::to_string(i) + " (offset " + std::to_string(8 + i) + ") is not below the " +
                             std::to_string(classes) + " classes");
    data.images = std::move(image_file.values);
    data.labels = std::move(label_file.values);
    return data;
}

/// The file `stem` in `directory`: the raw file when it exists, else `stem`.gz (when both
/// exist the raw one is read; Dataset::files says which). Throws cnn::data_error naming the
/// missing directory, or both names when neither file is there.
inline std::filesystem::path find_idx_file(const std::filesystem::path& directory, const std::string& stem) {
    std::error_code error;
    if (!std::filesystem::is_directory(directory, error))
        throw data_error(directory.string() + ": no such directory");
    for (const std::string& name : {stem, stem + ".gz"})
        if (std::filesystem::exists(directory / name, error)) return directory / name;
    throw data_error(directory.string() + ": has neither " + stem + " nor " + stem + ".gz");
}

/// The class names in `path`, one per line (a classes.txt beside the IDX files): exactly
/// `classes` lines, none empty, none with a comma. Throws cnn::data_error naming the line.
inline std::vector<std::string> read_class_names(const std::filesystem::path& path, std::size_t classes) {
    std::ifstream file(path);
    if (!file) throw data_error(path.string() + ": cannot open: " + std::strerror(errno));
    std::vector<std::string> names;
    std::string line;
    while (std::getline(file, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const std::string where = path.string() + ": line " + std::to_string(names.size() + 1);
        if (line.empty() || line.find(',') != std::string::npos)
            throw data_error(where + ": a class name must be non-empty and without commas");
        if (names.size() == classes)
            throw data_error(path.string() + ": names more than the " + std::to_string(classes) + " classes");
        names.push_back(line);
    }
    if (names.size() != classes)
        throw data_error(path.string() + ": names " + std::to_string(names.size()) + " classes, the data set has " +
                         std::to_string(classes));
    return names;
}

/// Loads the MNIST layout of `directory`: `prefix`-images-idx3-ubyte and `prefix`-labels-idx1-ubyte,
/// raw or gzip, with prefix "train" or "t10k", and the class names from `directory`/classes.txt
/// when it exists (one per line).
inline Dataset load_mnist(const std::filesystem::path& directory, const std::string& prefix, std::size_t classes = 10) {
    const std::filesystem::path images = find_idx_file(directory, prefix + "-images-idx3-ubyte");
    const std::filesystem::path labels = find_idx_file(directory, prefix + "-labels-idx1-ubyte");
    Dataset data = load_idx_dataset(images, labels, classes);
    std::error_code error;
    if (std::filesystem::exists(directory / "classes.txt", error))
        data.class_names = read_class_names(directory / "classes.txt", classes);
    return data;
}

/// Writes an IDX file of unsigned bytes (used by tests and tools to make data sets).
inline void write_idx(const std::filesystem::path& path, const std::vector<std::size_t>& dimensions,
                      std::span<const std::uint8_t> values) {
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    if (!file) throw data_error(path.string() + ": cannot create: " + std::strerror(errno));
    const std::uint8_t magic[4] = {0, 0, 0x08, static_cast<std::uint8_t>(dimensions.size())};
    file.write(reinterpret_cast<const char*>(magic), 4);
    for (std::size_t extent : dimensions) {
        const std::uint8_t bytes[4] = {static_cast<std::uint8_t>(extent >> 24), static_cast<std::uint8_t>(extent >> 16),
                                       static_cast<std::uint8_t>(extent >> 8), static_cast<std::uint8_t>(extent)};
        file.write(reinterpret_cast<const char*>(bytes), 4);
    }
    file.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size()));
    if (!file) throw data_error(path.string() + ": write failed");
}

}  // namespace cnn
