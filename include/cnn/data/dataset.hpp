// Image classification data sets: IDX (MNIST style), CIFAR (data/cifar.hpp), any bytes
// the application fills in. Images stay as bytes, count x channels x rows x cols (60,000
// 28x28 images cost 47 MB, not 188 MB as float), and are converted per batch: scaled to
// [0, 1], or standardised with a mean and deviation per channel, optionally augmented.
#pragma once

#include <algorithm>
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

/// How bytes become network inputs: x = (byte / 255 - mean) / deviation, the same for every
/// channel, or per channel with `means` and `deviations` (one entry per channel; when they are
/// set, mean and deviation are not used). The default (0, 1) scales to [0, 1].
struct Normalization {
    double mean = 0.0;
    double deviation = 1.0;
    std::vector<double> means = {};
    std::vector<double> deviations = {};

    [[nodiscard]] double mean_of(std::size_t channel) const { return means.empty() ? mean : means[channel]; }
    [[nodiscard]] double deviation_of(std::size_t channel) const {
        return deviations.empty() ? deviation : deviations[channel];
    }

    /// Throws cnn::parameter_error unless every mean is finite and every deviation finite and
    /// above 0 (anything else would feed NaN or infinity into the network), and unless the
    /// per-channel values, when set, are one per channel of images with `channels` channels
    /// (0: any number).
    void check(std::size_t channels = 0) const {
        // `channel` < 0: the one mean and deviation for all channels.
        const auto check_pair = [](double m, double d, std::ptrdiff_t channel) {
            if (!std::isfinite(m) || !std::isfinite(d) || !(d > 0))
                throw parameter_error("Normalization: " +
                                      (channel < 0 ? std::string() : "channel " + std::to_string(channel) + ": ") +
                                      "mean " + std::to_string(m) + " and deviation " + std::to_string(d) +
                                      " must be finite, with the deviation above 0");
        };
        if (means.size() != deviations.size())
            throw parameter_error("Normalization: " + std::to_string(means.size()) + " channel means but " +
                                  std::to_string(deviations.size()) + " channel deviations");
        if (means.empty()) return check_pair(mean, deviation, -1);
        if (channels != 0 && means.size() != channels)
            throw parameter_error("Normalization: " + std::to_string(means.size()) +
                                  " channel means and deviations for images of " + std::to_string(channels) +
                                  " channels");
        for (std::size_t c = 0; c < means.size(); ++c)
            check_pair(means[c], deviations[c], static_cast<std::ptrdiff_t>(c));
    }
};

/// Random changes to each training image, drawn per batch from fit's random stream (the same
/// for a seed whatever the thread count). Applied in this order, to the image as bytes:
/// crop, flip, then cutout on the normalised image.
struct Augmentation {
    /// Random crop: the image, with this many zero bytes added on every side, is cut back to
    /// its size at a random offset (each of the 2P + 1 offsets per axis equally likely). 0: off.
    std::size_t crop_padding = 0;
    /// Mirror left to right with probability 1/2.
    bool horizontal_flip = false;
    /// Cutout (random erasing): a square of this side centred on a random pixel, clipped at
    /// the border, set to 0 after normalisation (the mean pixel). 0: off.
    std::size_t cutout = 0;

    [[nodiscard]] bool enabled() const noexcept { return crop_padding != 0 || horizontal_flip || cutout != 0; }

    /// Throws cnn::parameter_error when a crop padding or cutout does not fit rows x cols images.
    void check(std::size_t rows, std::size_t cols) const {
        if (crop_padding > std::min(rows, cols))
            throw parameter_error("Augmentation: a crop padding of " + std::to_string(crop_padding) +
                                  " is larger than the " + std::to_string(rows) + "x" + std::to_string(cols) +
                                  " images (a crop could hold no pixel of the image)");
        if (cutout > std::max(rows, cols))
            throw parameter_error("Augmentation: a cutout of " + std::to_string(cutout) + " is larger than the " +
                                  std::to_string(rows) + "x" + std::to_string(cols) + " images");
    }
};

/// Writes one image, `image` (channels x rows x cols bytes, the shape of x's samples), into
/// sample `b` of x: x = (byte / 255 - mean) / deviation, and, when `rng` is given and the
/// augmentation is on, augmented with draws from rng in a fixed order per image (crop offsets,
/// flip, cutout centre, each only when on). Dataset::fill_batch is this for each index; a
/// batch source of one's own (a BatchSource) can call it for bytes it read elsewhere.
/// Throws cnn::shape_error when the sizes disagree, cnn::parameter_error for a normalisation
/// or augmentation that does not fit the image.
template <Scalar T>
void write_image(std::span<const std::uint8_t> image, TensorView<T, 4> x, std::size_t b,
                 const Normalization& normalization, const Augmentation& augmentation, Random* rng) {
    const auto [batch, channels, rows, cols] = x.shape();
    const std::size_t plane = rows * cols;
    if (b >= batch || image.size() != channels * plane)
        throw shape_error("write_image: an image of " + std::to_string(image.size()) + " bytes as sample " +
                          std::to_string(b) + " of a tensor of shape " + to_string(x.shape()));
    normalization.check(channels);
    const bool augment = rng != nullptr && augmentation.enabled();
    if (augment) augmentation.check(rows, cols);
    // The draws of this image, in a fixed order (see Augmentation).
    const auto pad = static_cast<std::ptrdiff_t>(augmentation.crop_padding);
    std::ptrdiff_t top = 0, left = 0;
    bool flip = false;
    std::size_t centre_row = 0, centre_col = 0;
    if (augment) {
        if (pad != 0) {
            top = static_cast<std::ptrdiff_t>(rng->below(2 * augmentation.crop_padding + 1)) - pad;
            left = static_cast<std::ptrdiff_t>(rng->below(2 * augmentation.crop_padding + 1)) - pad;
        }
        if (augmentation.horizontal_flip) flip = rng->below(2) == 1;
        if (augmentation.cutout != 0) {
            centre_row = rng->below(rows);
            centre_col = rng->below(cols);
        }
    }
    for (std::size_t c = 0; c < channels; ++c) {
        const double deviation = normalization.deviation_of(c);
        const T scale = static_cast<T>(1.0 / (255.0 * deviation));
        const T shift = static_cast<T>(normalization.mean_of(c) / deviation);
        const std::uint8_t* in_plane = image.data() + c * plane;
        T* out = x.data() + (b * channels + c) * plane;
        if (!augment) {
            for (std::size_t p = 0; p < plane; ++p) out[p] = static_cast<T>(in_plane[p]) * scale - shift;
            continue;
        }
        // Output (i, j) is input (i + top, j + left) of the zero-padded image, read from
        // column cols - 1 - j when flipped (crop, then flip).
        const T zero = -shift;  // a padded byte 0, normalised
        for (std::size_t i = 0; i < rows; ++i) {
            T* row = out + i * cols;
            const std::ptrdiff_t source = static_cast<std::ptrdiff_t>(i) + top;
            if (source < 0 || source >= static_cast<std::ptrdiff_t>(rows)) {
                std::fill_n(row, cols, zero);
                continue;
            }
            const std::uint8_t* in = in_plane + static_cast<std::size_t>(source) * cols;
            for (std::size_t j = 0; j < cols; ++j) {
                const std::ptrdiff_t column = static_cast<std::ptrdiff_t>(flip ? cols - 1 - j : j) + left;
                row[j] = column < 0 || column >= static_cast<std::ptrdiff_t>(cols)
                             ? zero
                             : static_cast<T>(in[column]) * scale - shift;
            }
        }
        if (augmentation.cutout != 0) {
            const std::size_t half = augmentation.cutout / 2;
            const std::size_t r0 = centre_row > half ? centre_row - half : 0;
            const std::size_t c0 = centre_col > half ? centre_col - half : 0;
            const std::size_t r1 = std::min(rows, centre_row + augmentation.cutout - half);
            const std::size_t c1 = std::min(cols, centre_col + augmentation.cutout - half);
            for (std::size_t i = r0; i < r1; ++i) std::fill(out + i * cols + c0, out + i * cols + c1, T{0});
        }
    }
}

/// Throws cnn::shape_error unless a batch of `indices` fits x (of shape `expected`) and
/// `labels`; for the fill_batch of a batch source, `who` names it.
template <Scalar T>
void check_batch(std::size_t indices, TensorView<T, 4> x, std::size_t labels, Shape<4> expected, const char* who) {
    if (x.shape() != expected)
        throw shape_error(std::string(who) + ": " + std::to_string(indices) + " images of " +
                          std::to_string(expected[1]) + "x" + std::to_string(expected[2]) + "x" +
                          std::to_string(expected[3]) + " do not fill a tensor of shape " + to_string(x.shape()));
    if (labels < indices)
        throw shape_error(std::string(who) + ": " + std::to_string(indices) + " images but room for " +
                          std::to_string(labels) + " labels");
}

struct Dataset {
    std::vector<std::uint8_t> images;  ///< count x channels x rows x cols, row-major
    std::vector<std::uint8_t> labels;  ///< count, each below classes
    std::size_t count = 0, rows = 0, cols = 0, classes = 0;
    std::vector<std::string> class_names = {};  ///< one per class when known (load_mnist: classes.txt), else empty
    std::vector<std::filesystem::path> files = {};  ///< the files it was read from
    /// Colour planes per image (1 for IDX, 3 for CIFAR). Last, so that a data set built
    /// field by field as {images, labels, count, rows, cols, classes} stays greyscale.
    std::size_t channels = 1;

    /// Bytes per image: channels x rows x cols.
    [[nodiscard]] std::size_t image_size() const noexcept { return channels * rows * cols; }

    /// Throws cnn::data_error unless the fields agree: images holds count x channels x rows x
    /// cols bytes, labels count labels, each below classes (a hand-built data set that does
    /// not would make batches read past its memory).
    void check(const char* who) const {
        const std::string where = std::string(who) + ": the data set ";
        if (channels == 0 || rows == 0 || cols == 0 || classes == 0)
            throw data_error(where + "has " + std::to_string(channels) + "x" + std::to_string(rows) + "x" +
                             std::to_string(cols) + " images of " + std::to_string(classes) +
                             " classes; none may be 0");
        constexpr std::size_t most = std::numeric_limits<std::size_t>::max();
        const bool fits = cols <= most / rows && channels <= most / (rows * cols) && count <= most / image_size();
        if (!fits || images.size() != count * image_size())
            throw data_error(where + "holds " + std::to_string(images.size()) + " image bytes, but " +
                             std::to_string(count) + " images of " + std::to_string(channels) + "x" +
                             std::to_string(rows) + "x" + std::to_string(cols) + " need " +
                             std::to_string(count * image_size()));
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
    [[nodiscard]] std::size_t class_count() const noexcept { return classes; }
    [[nodiscard]] Shape<4> batch_shape(std::size_t batch) const noexcept { return {batch, channels, rows, cols}; }

    /// The mean and standard deviation of the pixels (as byte / 255): the standardisation to
    /// use for this set and everything evaluated with a model trained on it. Over all pixels
    /// for one channel; per channel (means, deviations) for more.
    [[nodiscard]] Normalization pixel_statistics() const {
        const std::size_t plane = rows * cols;
        std::vector<double> sums(channels, 0.0), squares(channels, 0.0);
        for (std::size_t i = 0; i < count; ++i)
            for (std::size_t c = 0; c < channels; ++c) {
                // Whole numbers below 2^53: exact in any order.
                std::uint64_t sum = 0, square = 0;
                const std::uint8_t* pixels = images.data() + (i * channels + c) * plane;
                for (std::size_t p = 0; p < plane; ++p) {
                    sum += pixels[p];
                    square += std::uint64_t{pixels[p]} * pixels[p];
                }
                sums[c] += static_cast<double>(sum);
                squares[c] += static_cast<double>(square);
            }
        const auto statistics = [](double sum, double square, double n) {
            const double mean = sum / n / 255.0;
            return std::pair{mean, std::sqrt(std::max(square / n / (255.0 * 255.0) - mean * mean, 1e-12))};
        };
        const double n = static_cast<double>(count * plane);
        const auto [mean, deviation] = statistics(std::accumulate(sums.begin(), sums.end(), 0.0),
                                                  std::accumulate(squares.begin(), squares.end(), 0.0),
                                                  n * static_cast<double>(channels));
        Normalization result{mean, deviation};
        if (channels > 1)
            for (std::size_t c = 0; c < channels; ++c) {
                const auto [m, d] = statistics(sums[c], squares[c], n);
                result.means.push_back(m);
                result.deviations.push_back(d);
            }
        return result;
    }

    /// Writes the images `indices` into x (batch x channels x rows x cols) and their labels.
    template <Scalar T>
    void fill_batch(std::span<const std::size_t> indices, TensorView<T, 4> x, std::span<std::uint32_t> batch_labels,
                    const Normalization& normalization = {}) const {
        fill_batch<T>(indices, x, batch_labels, normalization, Augmentation{}, nullptr);
    }

    /// The same with `augmentation`, its random draws taken from `rng` (sample by sample:
    /// crop offsets, flip, cutout centre, each only when that augmentation is on).
    template <Scalar T>
    void fill_batch(std::span<const std::size_t> indices, TensorView<T, 4> x, std::span<std::uint32_t> batch_labels,
                    const Normalization& normalization, const Augmentation& augmentation, Random& rng) const {
        fill_batch<T>(indices, x, batch_labels, normalization, augmentation, &rng);
    }

    /// The samples `indices`, copied into a data set of their own.
    [[nodiscard]] Dataset subset(std::span<const std::size_t> indices) const {
        Dataset part{{}, {}, indices.size(), rows, cols, classes, class_names, files, channels};
        const std::size_t bytes = image_size();
        part.images.reserve(indices.size() * bytes);
        for (std::size_t index : indices) {
            part.images.insert(part.images.end(), images.begin() + static_cast<std::ptrdiff_t>(index * bytes),
                               images.begin() + static_cast<std::ptrdiff_t>((index + 1) * bytes));
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
            images.resize(limit * image_size());
            images.shrink_to_fit();
            labels.resize(limit);
            count = limit;
        }
        return std::move(*this);
    }

private:
    template <Scalar T>
    void fill_batch(std::span<const std::size_t> indices, TensorView<T, 4> x, std::span<std::uint32_t> batch_labels,
                    const Normalization& normalization, const Augmentation& augmentation, Random* rng) const {
        check_batch(indices.size(), x, batch_labels.size(), batch_shape(indices.size()), "Dataset::fill_batch");
        const std::size_t bytes = image_size();
        for (std::size_t b = 0; b < indices.size(); ++b) {
            if (indices[b] >= count)
                throw parameter_error("Dataset::fill_batch: sample " + std::to_string(indices[b]) +
                                      " of a data set of " + std::to_string(count));
            write_image<T>({images.data() + indices[b] * bytes, bytes}, x, b, normalization, augmentation, rng);
            batch_labels[b] = labels[indices[b]];
        }
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
namespace detail {

/// Throws cnn::data_error "DIR: no such directory" unless `directory` is one (every reader of
/// a data-set directory checks this first).
inline void require_directory(const std::filesystem::path& directory) {
    std::error_code error;
    if (!std::filesystem::is_directory(directory, error)) throw data_error(directory.string() + ": no such directory");
}

}  // namespace detail

inline std::filesystem::path find_idx_file(const std::filesystem::path& directory, const std::string& stem) {
    detail::require_directory(directory);
    std::error_code error;
    for (const std::string& name : {stem, stem + ".gz"})
        if (std::filesystem::exists(directory / name, error)) return directory / name;
    throw data_error(directory.string() + ": has neither " + stem + " nor " + stem + ".gz");
}

namespace detail {

/// The class names in `path`, one per line ('\r' before the newline dropped): exactly
/// `classes`, none empty, none with a comma. With `blank_tail`, blank lines at the end of the
/// file and spaces at the ends of lines are skipped, as in the CIFAR archives' name files; a
/// blank line between names is still an error. Throws cnn::data_error naming the line.
inline std::vector<std::string> read_name_lines(const std::filesystem::path& path, std::size_t classes,
                                                bool blank_tail) {
    std::ifstream file(path);
    if (!file) throw data_error(path.string() + ": cannot open: " + std::strerror(errno));
    std::vector<std::string> names;
    std::string line;
    std::size_t number = 0, first_blank = 0;  // first_blank: a blank line that may end the file
    while (std::getline(file, line)) {
        ++number;
        while (!line.empty() && (line.back() == '\r' || (blank_tail && line.back() == ' '))) line.pop_back();
        if (blank_tail && line.empty()) {
            if (first_blank == 0) first_blank = number;
            continue;
        }
        const std::size_t at = first_blank != 0 ? first_blank : number;
        if (first_blank != 0 || line.empty() || line.find(',') != std::string::npos)
            throw data_error(path.string() + ": line " + std::to_string(at) +
                             ": a class name must be non-empty and without commas");
        if (names.size() == classes)
            throw data_error(path.string() + ": names more than the " + std::to_string(classes) + " classes");
        names.push_back(line);
    }
    if (names.size() != classes)
        throw data_error(path.string() + ": names " + std::to_string(names.size()) + " classes, the data set has " +
                         std::to_string(classes));
    return names;
}

}  // namespace detail

/// The class names in `path`, one per line (a classes.txt beside the IDX files): exactly
/// `classes` lines, none empty, none with a comma. Throws cnn::data_error naming the line.
inline std::vector<std::string> read_class_names(const std::filesystem::path& path, std::size_t classes) {
    return detail::read_name_lines(path, classes, false);
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
