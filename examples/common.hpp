// Helpers shared by the example programs: command-line flags, the data-set
// location, class names and the model metadata.
#pragma once

#include <cnn/cnn.hpp>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <thread>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(CNN_WITH_STB)
#include <cnn/data/image_folder.hpp>
#endif

#include "networks.hpp"

namespace examples {

inline const char* default_data_directory = "/usr/share/datasets/fashion-mnist";

/// `text` as a whole number, when it is decimal digits only (no sign, no space) of a number
/// at most `maximum`.
inline std::optional<std::size_t> whole_number(const std::string& text, std::size_t maximum) {
    std::size_t result = 0;
    const auto [end, status] = std::from_chars(text.data(), text.data() + text.size(), result);
    const bool digits =
        !text.empty() && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits || status != std::errc{} || end != text.data() + text.size() || result > maximum) return std::nullopt;
    return result;
}

/// "--name value" (or "--name=value") flags and positional arguments, parsed strictly:
/// an empty value, a flag given twice, a number that is not plain decimal, and a flag the
/// program does not take are errors, never a silent default.
class Arguments {
public:
    Arguments(int argc, char** argv, const std::vector<std::string>& switches = {}) {
        for (int i = 1; i < argc; ++i) {
            const std::string arg = argv[i];
            if (arg.rfind("--", 0) != 0) {
                positional_.push_back(arg);
                continue;
            }
            std::string name = arg.substr(2), value;
            if (const auto equals = name.find('='); equals != std::string::npos) {
                value = name.substr(equals + 1);
                name.resize(equals);
            } else if (std::find(switches.begin(), switches.end(), name) != switches.end()) {
                value = "1";
            } else {
                if (i + 1 >= argc) throw std::invalid_argument("--" + name + " needs a value");
                value = argv[++i];
            }
            if (value.empty()) throw std::invalid_argument("--" + name + " needs a value, got an empty one");
            if (!values_.emplace(name, value).second) throw std::invalid_argument("--" + name + " is given twice");
        }
    }

    [[nodiscard]] bool has(const std::string& name) const { return values_.count(name) != 0; }
    [[nodiscard]] std::string text(const std::string& name, const std::string& fallback) {
        used_.push_back(name);
        return has(name) ? values_.at(name) : fallback;
    }
    /// A decimal number: digits with an optional sign, point and exponent (no hex, no inf, no nan).
    [[nodiscard]] double number(const std::string& name, double fallback) {
        used_.push_back(name);
        if (!has(name)) return fallback;
        const std::string& value = values_.at(name);
        double result = 0;
        const bool decimal = is_decimal(value);
        if (decimal) {
            try {
                result = std::stod(value);
            } catch (const std::out_of_range&) {
                result = INFINITY;
            }
        }
        if (!decimal || !std::isfinite(result))
            throw std::invalid_argument("--" + name + " takes a finite decimal number, got '" + value + "'");
        return result;
    }
    /// A whole number written in decimal digits, at most `maximum`.
    [[nodiscard]] std::size_t count(const std::string& name, std::size_t fallback,
                                    std::size_t maximum = std::numeric_limits<std::uint32_t>::max()) {
        used_.push_back(name);
        if (!has(name)) return fallback;
        const std::string& value = values_.at(name);
        const std::optional<std::size_t> result = whole_number(value, maximum);
        if (!result)
            throw std::invalid_argument("--" + name + " takes a whole number from 0 to " + std::to_string(maximum) +
                                        ", got '" + value + "'");
        return *result;
    }
    [[nodiscard]] bool flag(const std::string& name) {
        used_.push_back(name);
        return has(name);
    }
    [[nodiscard]] const std::vector<std::string>& positional() const { return positional_; }

    /// Throws for a flag no one asked about (a typo should not be silently ignored). `why` says
    /// why a known flag was not asked about (with --resume, the settings come from the checkpoint).
    void reject_unknown(const std::vector<std::string>& known = {}, const std::string& why = "") const {
        for (const auto& [name, value] : values_) {
            if (std::find(used_.begin(), used_.end(), name) != used_.end()) continue;
            if (std::find(known.begin(), known.end(), name) != known.end())
                throw std::invalid_argument("--" + name + " cannot be used here: " + why);
            throw std::invalid_argument("unknown flag --" + name + " (see --help)");
        }
    }

private:
    /// [+-] digits [. digits] [e [+-] digits], with a digit before or after the point.
    static bool is_decimal(const std::string& text) {
        std::size_t i = 0;
        const auto digits = [&] {
            const std::size_t start = i;
            while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
            return i - start;
        };
        if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
        std::size_t mantissa = digits();
        if (i < text.size() && text[i] == '.') {
            ++i;
            mantissa += digits();
        }
        if (mantissa == 0) return false;
        if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
            ++i;
            if (i < text.size() && (text[i] == '+' || text[i] == '-')) ++i;
            if (digits() == 0) return false;
        }
        return i == text.size();
    }

    std::map<std::string, std::string> values_;
    std::vector<std::string> positional_;
    std::vector<std::string> used_;
};

/// The kernel threads for --threads N: 0 means every hardware thread. More than the
/// hardware has only slows training down, so it gets a warning; cnn::max_threads is the limit.
inline std::size_t thread_count(Arguments& args, const char* program) {
    const std::size_t hardware = std::max(1u, std::thread::hardware_concurrency());
    std::size_t threads = args.count("threads", 0, cnn::max_threads);
    if (threads == 0) threads = std::min(hardware, cnn::max_threads);
    if (threads > hardware)
        std::cerr << program << ": warning: " << threads << " threads on " << hardware
                  << " hardware threads will be slower than " << hardware << "\n";
    return threads;
}

/// Fashion-MNIST's class names, in label order, as its authors publish them.
inline const std::vector<std::string> fashion_mnist_classes{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/// The class names to show and store: from --classes FILE, else the data set's own
/// (DIR/classes.txt), else Fashion-MNIST's for the default data set, else the class numbers.
/// Never guessed from a path.
inline std::vector<std::string> class_names(const cnn::Dataset& data, const std::filesystem::path& classes_file,
                                            bool default_data) {
    if (!classes_file.empty()) return cnn::read_class_names(classes_file, data.classes);
    if (!data.class_names.empty()) return data.class_names;
    if (default_data && data.classes == fashion_mnist_classes.size()) return fashion_mnist_classes;
    std::vector<std::string> numbers;
    for (std::size_t i = 0; i < data.classes; ++i) numbers.push_back(std::to_string(i));
    return numbers;
}

/// Where the trainer writes the training curves for model file `model`: beside it, as .svg.
inline std::filesystem::path curves_path(const std::filesystem::path& model) {
    return std::filesystem::path(model).replace_extension(".svg");
}

inline std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, separator)) parts.push_back(part);
    return parts;
}

/// The data-set formats the examples read, by what a directory holds.
enum class DataFormat { idx, cifar10, cifar100, folders };

/// Whether these programs were built with the image reader (cnn::images, stb).
#if defined(CNN_WITH_STB)
inline constexpr bool with_images = true;
#else
inline constexpr bool with_images = false;
#endif

/// What `directory` holds: the MNIST layout of IDX files (train-images-idx3-ubyte, raw or
/// .gz), CIFAR-10's binary batches (data_batch_1.bin ...) or CIFAR-100's (train.bin,
/// test.bin). Throws naming the directory and what it looked for.
inline DataFormat detect_format(const std::filesystem::path& directory) {
    std::error_code error;
    if (!std::filesystem::is_directory(directory, error)) {
        std::string message = "--data " + directory.string() + ": no such directory";
        if (directory == default_data_directory)
            message += " (Debian installs Fashion-MNIST there: sudo apt-get install dataset-fashion-mnist)";
        throw std::runtime_error(message);
    }
    const auto has = [&](const char* name) { return std::filesystem::exists(directory / name, error); };
    if (has("train-images-idx3-ubyte") || has("train-images-idx3-ubyte.gz") || has("t10k-images-idx3-ubyte") ||
        has("t10k-images-idx3-ubyte.gz"))
        return DataFormat::idx;
    if (has("data_batch_1.bin") || has("test_batch.bin")) return DataFormat::cifar10;
    if (has("train.bin") || has("test.bin")) return DataFormat::cifar100;
    if (std::filesystem::is_directory(directory / "train", error) || std::filesystem::is_directory(directory / "test", error)) {
        if (!with_images)
            throw std::runtime_error("--data " + directory.string() +
                                     ": folders of images need the image reader, and this program was built without "
                                     "stb (install libstb-dev and rebuild)");
        return DataFormat::folders;
    }
    throw std::runtime_error("--data " + directory.string() +
                             ": has neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz (IDX), "
                             "data_batch_1.bin (CIFAR-10), train.bin (CIFAR-100) nor train/ and test/ folders of "
                             "class folders of images");
}

/// How to read a data set beyond its format. For folders of images, the image size: 0 x 0
/// takes the first image's; images of another size are resized to it when `resize` is set,
/// else an error names them. For CIFAR-100, which of its two labels to learn.
struct ImageSize {
    std::size_t rows = 0, cols = 0;
    bool resize = false;
    std::size_t channels = 0;  ///< 1 or 3 to convert every image to; 0: the first image's
    cnn::CifarLabels cifar100_labels = cnn::CifarLabels::fine;
};

/// Loads `split` ("train" or "test") from the directory, in the format it holds, or explains
/// how to get the data. Folders of images are DIR/train and DIR/test, one subfolder per class;
/// `like`, when given, is the training set whose channels, size and classes the test set must have.
inline cnn::Dataset load_split(const std::filesystem::path& directory, const std::string& split, ImageSize size = {},
                               [[maybe_unused]] const cnn::Dataset* like = nullptr) {
    switch (detect_format(directory)) {
        case DataFormat::cifar10: return cnn::load_cifar10(directory, split);
        case DataFormat::cifar100: return cnn::load_cifar100(directory, split, size.cifar100_labels);
        case DataFormat::folders: {
#if defined(CNN_WITH_STB)
            cnn::ImageOptions options;
            options.rows = size.rows;
            options.cols = size.cols;
            options.sizes = size.resize ? cnn::SizeMismatch::resize : cnn::SizeMismatch::reject;
            options.channels = size.channels;
            if (like != nullptr) {
                options.channels = like->channels;
                options.rows = like->rows;
                options.cols = like->cols;
            }
            if (!std::filesystem::is_directory(directory / split))
                throw std::runtime_error("--data " + directory.string() + ": has no " + split +
                                         "/ folder beside its " + (split == "train" ? "test/" : "train/") + " folder");
            cnn::Dataset data = cnn::load_image_folder(directory / split, options);
            if (like != nullptr && data.class_names != like->class_names)
                throw std::runtime_error((directory / split).string() + ": its class folders are not those of " +
                                         (directory / "train").string() + " (the same names, the same order)");
            return data;
#else
            break;
#endif
        }
        default: break;
    }
    return cnn::load_mnist(directory, split == "test" ? "t10k" : split);
}

/// The task a network is built for to learn `data`.
inline Task task_of(const cnn::Dataset& data) { return {data.channels, data.rows, data.cols, data.classes}; }

/// The task a saved model was built for, from its metadata: input_shape=CxHxW and
/// class_count=K, written by mnist_train since 0.3; files without them (older ones) are
/// Fashion-MNIST's 1x28x28 and 10 classes. A malformed value is an error naming it.
inline Task task_from_metadata(const std::map<std::string, std::string>& metadata, const std::filesystem::path& file) {
    Task task;
    const auto whole = [&](const std::string& text, const std::string& key) {
        const std::optional<std::size_t> value = whole_number(text, 65536);
        if (!value || *value == 0)
            throw std::runtime_error(file.string() + ": its metadata " + key + "='" + metadata.at(key) +
                                     "' is not what mnist_train writes");
        return *value;
    };
    if (const auto it = metadata.find("input_shape"); it != metadata.end()) {
        const std::vector<std::string> parts = split(it->second, 'x');
        if (parts.size() != 3)
            throw std::runtime_error(file.string() + ": its metadata input_shape='" + it->second +
                                     "' is not channels x rows x cols");
        task.channels = whole(parts[0], "input_shape");
        task.rows = whole(parts[1], "input_shape");
        task.cols = whole(parts[2], "input_shape");
    }
    if (const auto it = metadata.find("class_count"); it != metadata.end()) task.classes = whole(it->second, "class_count");
    return task;
}

/// The metadata lines that record `normalization` (per channel too, when it has channels).
inline std::string normalization_metadata(const cnn::Normalization& normalization) {
    std::ostringstream out;
    out << std::setprecision(17) << "normalization_mean=" << normalization.mean
        << "\nnormalization_deviation=" << normalization.deviation << "\n";
    if (!normalization.means.empty()) {
        out << "normalization_means=";
        for (std::size_t c = 0; c < normalization.means.size(); ++c) out << (c ? "," : "") << normalization.means[c];
        out << "\nnormalization_deviations=";
        for (std::size_t c = 0; c < normalization.deviations.size(); ++c)
            out << (c ? "," : "") << normalization.deviations[c];
        out << "\n";
    }
    return out.str();
}

/// `text` as a finite number, when all of it is one (as std::stod reads numbers).
inline std::optional<double> finite_number(const std::string& text) {
    std::size_t end = 0;
    double value = NAN;
    try {
        value = std::stod(text, &end);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    if (end != text.size() || !std::isfinite(value)) return std::nullopt;
    return value;
}

/// key=value lines, as stored in the model file's metadata.
inline std::map<std::string, std::string> parse_metadata(const std::string& text) {
    std::map<std::string, std::string> entries;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        const auto equals = line.find('=');
        if (equals != std::string::npos) entries[line.substr(0, equals)] = line.substr(equals + 1);
    }
    return entries;
}

inline void print_confusion(std::ostream& out, const cnn::Evaluation& result, const std::vector<std::string>& names) {
    out << "confusion matrix (rows: true class, columns: predicted)\n";
    out << std::string(14, ' ');
    for (std::size_t j = 0; j < result.classes; ++j) out << std::setw(6) << j;
    out << "   recall\n";
    for (std::size_t i = 0; i < result.classes; ++i) {
        std::size_t row_total = 0;
        for (std::size_t j = 0; j < result.classes; ++j) row_total += result.count(i, j);
        const std::string name = i < names.size() ? names[i] : std::to_string(i);
        out << std::setw(2) << i << " " << std::left << std::setw(11) << name.substr(0, 11) << std::right;
        for (std::size_t j = 0; j < result.classes; ++j) out << std::setw(6) << result.count(i, j);
        out << std::setw(9) << std::fixed << std::setprecision(3)
            << (row_total ? static_cast<double>(result.count(i, i)) / static_cast<double>(row_total) : 0.0) << "\n";
    }
    out.unsetf(std::ios::fixed);
}

}  // namespace examples
