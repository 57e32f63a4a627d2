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
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace examples {

inline const char* default_data_directory = "/usr/share/datasets/fashion-mnist";

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
        std::size_t result = 0;
        const auto [end, status] = std::from_chars(value.data(), value.data() + value.size(), result);
        const bool digits = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
            return c >= '0' && c <= '9';
        });
        if (!digits || status != std::errc{} || end != value.data() + value.size() || result > maximum)
            throw std::invalid_argument("--" + name + " takes a whole number from 0 to " + std::to_string(maximum) +
                                        ", got '" + value + "'");
        return result;
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

/// Loads `prefix` ("train" or "t10k") from the directory, or explains how to get the data.
inline cnn::Dataset load_split(const std::filesystem::path& directory, const std::string& prefix) {
    std::error_code error;
    if (!std::filesystem::is_directory(directory, error)) {
        std::string message = "--data " + directory.string() + ": no such directory";
        if (directory == default_data_directory)
            message += " (Debian installs Fashion-MNIST there: sudo apt-get install dataset-fashion-mnist)";
        throw std::runtime_error(message);
    }
    return cnn::load_mnist(directory, prefix);
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

inline std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, separator)) parts.push_back(part);
    return parts;
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
