// mnist_predict: loads a model saved by mnist_train (or an ONNX file of one of its networks)
// and either reports its accuracy on the test set or classifies PGM (greyscale) or PPM
// (colour) images.
#include <cnn/cnn.hpp>
#if defined(CNN_WITH_ONNX)
#include <cnn/onnx.hpp>
#endif

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

#include "common.hpp"
#include "networks.hpp"

namespace {

const char* usage = R"(usage: mnist_predict MODEL [IMAGE ...] [--data DIR] [--limit N] [--resize] [--threads N]

  MODEL: a model file of mnist_train, or an ONNX file (.onnx) of one of its networks:
  written by mnist_train --export-onnx, or by PyTorch's torch.onnx.export (pixels are then
  scaled to [0, 1], as PyTorch's ToTensor does, unless the file records cnn.normalization).
  With no image: the model's accuracy and confusion matrix on the test set in DIR
  (default /usr/share/datasets/fashion-mnist; IDX, CIFAR-10 or CIFAR-100 as for mnist_train);
  the last line reads "test accuracy: 0.9123".
  With images: the predicted class and its probability for each image of the model's size:
  PGM (P2 or P5) for a model of greyscale images (for Fashion-MNIST 28x28, white on black
  like the training images), PPM (P3 or P6) for a model of colour images (CIFAR: 32x32);
  PNG and JPEG too when built with stb (libstb-dev).
  --resize: resize images (files, or a test set of image folders) of another size to the
  model's (default: an error names them).
  An image that cannot be read is reported and skipped; the exit status is then 1.
  --limit N: only the first N test images (quick runs; 0 or unset: all).
  --threads N: kernel threads; 0 or unset: every hardware thread.
)";

/// A whole number of a PGM header or a P2 pixel: decimal digits after white space and
/// comments ('#' to the end of the line). Throws naming the field and its offset.
std::size_t pgm_number(const std::vector<std::uint8_t>& bytes, std::size_t& at, const std::string& path,
                       const char* field) {
    while (at < bytes.size()) {
        if (bytes[at] == '#') {
            while (at < bytes.size() && bytes[at] != '\n') ++at;
        } else if (std::isspace(bytes[at])) {
            ++at;
        } else {
            break;
        }
    }
    const std::size_t start = at;
    std::size_t value = 0;
    while (at < bytes.size() && bytes[at] >= '0' && bytes[at] <= '9' && at - start < 9)
        value = value * 10 + (bytes[at++] - '0');
    if (at == start || (at < bytes.size() && !std::isspace(bytes[at]) && bytes[at] != '#'))
        throw std::runtime_error(path + ": the " + field + " at offset " + std::to_string(start) +
                                 " is not a whole number of at most 9 digits");
    return value;
}

/// A PGM (P2, P5: one channel) or PPM (P3, P6: three) image of the model's channels and size,
/// maxval 1..255, as planes of bytes scaled to 0..255. Every sample must be at most maxval,
/// and nothing may follow the samples but (for P2 and P3) white space.
std::vector<std::uint8_t> read_netpbm(const std::string& path, const examples::Task& task) {
    const std::vector<std::uint8_t> bytes = cnn::read_file(path, 1 << 26, "PGM or PPM image");
    if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '2' && bytes[1] != '6' && bytes[1] != '3'))
        throw std::runtime_error(path + ": not a PGM or PPM file (it does not start with P5, P2, P6 or P3)");
    const bool binary = bytes[1] == '5' || bytes[1] == '6';
    const std::size_t channels = bytes[1] == '5' || bytes[1] == '2' ? 1 : 3;
    std::size_t at = 2;
    const std::size_t width = pgm_number(bytes, at, path, "width");
    const std::size_t height = pgm_number(bytes, at, path, "height");
    const std::size_t maxval = pgm_number(bytes, at, path, "maxval");
    if (channels != task.channels)
        throw std::runtime_error(path + ": is a " + (channels == 1 ? "greyscale PGM" : "colour PPM") +
                                 " image; the model takes images of " + std::to_string(task.channels) + " channel" +
                                 (task.channels == 1 ? " (PGM)" : "s (PPM)"));
    if (width != task.cols || height != task.rows)
        throw std::runtime_error(path + ": is " + std::to_string(width) + "x" + std::to_string(height) +
                                 "; the model takes " + std::to_string(task.cols) + "x" + std::to_string(task.rows) +
                                 " images");
    if (maxval == 0 || maxval > 255) throw std::runtime_error(path + ": maxval " + std::to_string(maxval) + " is not 1..255");
    const std::size_t count = channels * width * height;
    const std::string samples = channels == 1 ? " pixels" : " samples";
    std::vector<std::size_t> values(count);  // as in the file: pixel by pixel, channels interleaved
    if (binary) {
        ++at;  // the single white-space byte after maxval
        const std::size_t present = bytes.size() - std::min(at, bytes.size());
        if (present < count)
            throw std::runtime_error(path + ": truncated: " + std::to_string(present) + samples + ", " +
                                     std::to_string(count) + " needed");
        if (present > count)
            throw std::runtime_error(path + ": has " + std::to_string(present - count) + " bytes after the " +
                                     std::to_string(count) + samples);
        std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(at), count, values.begin());
    } else {
        for (std::size_t& v : values) v = pgm_number(bytes, at, path, "pixel");
        while (at < bytes.size() && std::isspace(bytes[at])) ++at;
        if (at != bytes.size())
            throw std::runtime_error(path + ": has data after the " + std::to_string(count) + samples + " (offset " +
                                     std::to_string(at) + ")");
    }
    std::vector<std::uint8_t> planes(count);
    const std::size_t plane = width * height;
    for (std::size_t i = 0; i < count; ++i) {
        if (values[i] > maxval)
            throw std::runtime_error(path + ": " + (channels == 1 ? "pixel " : "sample ") + std::to_string(i) + " is " +
                                     std::to_string(values[i]) + ", above maxval " + std::to_string(maxval));
        planes[(i % channels) * plane + i / channels] = static_cast<std::uint8_t>(values[i] * 255 / maxval);
    }
    return planes;
}

/// An image file of the model's channels and size: PGM and PPM (ASCII or binary) by read_netpbm
/// above, PNG and JPEG by stb_image when the program has it (resized to the model's size
/// with --resize, else rejected when the size differs).
std::vector<std::uint8_t> read_any_image(const std::string& path, const examples::Task& task, [[maybe_unused]] bool resize) {
    std::string extension = std::filesystem::path(path).extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (extension != ".png" && extension != ".jpg" && extension != ".jpeg") return read_netpbm(path, task);
#if defined(CNN_WITH_STB)
    cnn::Image image = cnn::read_image(path, {.rows = task.rows,
                                              .cols = task.cols,
                                              .sizes = resize ? cnn::SizeMismatch::resize : cnn::SizeMismatch::reject});
    if (image.channels != task.channels)
        throw std::runtime_error(path + ": has " + std::to_string(image.channels) + " channel" +
                                 (image.channels == 1 ? "" : "s") + "; the model takes images of " +
                                 std::to_string(task.channels));
    return std::move(image.planes);
#else
    throw std::runtime_error(path + ": PNG and JPEG images need the image reader, and this program was built without "
                             "stb (install libstb-dev and rebuild)");
#endif
}

/// Numbers separated by commas in the model's metadata (per-channel normalisation).
std::vector<double> metadata_numbers(const std::map<std::string, std::string>& metadata, const std::string& key,
                                     const std::filesystem::path& model) {
    std::vector<double> numbers;
    for (const std::string& part : examples::split(metadata.at(key), ',')) {
        const std::optional<double> value = examples::finite_number(part);
        if (!value)
            throw std::runtime_error(model.string() + ": its metadata " + key + "='" + metadata.at(key) +
                                     "' is not a list of numbers");
        numbers.push_back(*value);
    }
    return numbers;
}

/// A number stored in the model's metadata; a malformed one is an error naming it.
double metadata_number(const std::map<std::string, std::string>& metadata, const std::string& key,
                       const std::filesystem::path& model) {
    const std::string& text = metadata.at(key);
    const std::optional<double> value = examples::finite_number(text);
    if (!value) throw std::runtime_error(model.string() + ": its metadata " + key + "='" + text + "' is not a number");
    return *value;
}

/// What a model file says besides its weights: its metadata, and the input normalisation
/// it records (none: pixels scaled to [0, 1]).
struct Stored {
    std::map<std::string, std::string> metadata;
    std::optional<cnn::Normalization> normalization;
};

bool is_onnx(const std::filesystem::path& path) {
    std::string extension = path.extension().string();
    std::transform(extension.begin(), extension.end(), extension.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return extension == ".onnx";
}

[[noreturn, maybe_unused]] void without_onnx(const std::filesystem::path& path) {
    throw std::runtime_error(path.string() + ": ONNX files need a build with ONNX (install libonnx-dev and "
                                             "libprotobuf-dev and rebuild)");
}

/// The image size and classes of the model in `path`, read without a network.
examples::Task task_of_file(const std::filesystem::path& path) {
    if (!is_onnx(path)) return examples::task_from_metadata(examples::parse_metadata(cnn::read_model_metadata(path)), path);
#if defined(CNN_WITH_ONNX)
    const cnn::OnnxInfo info = cnn::read_onnx_info(path);
    if (info.outputs == 0)
        throw std::runtime_error(path.string() + ": the output's size (the number of classes) is not fixed in the file");
    return {info.channels, info.rows, info.cols, info.outputs};
#else
    without_onnx(path);
#endif
}

/// Loads `path` into `net`: a model file, or an ONNX file.
template <class Net>
Stored load_any(Net& net, const std::filesystem::path& path) {
    Stored stored;
    if (is_onnx(path)) {
#if defined(CNN_WITH_ONNX)
        const cnn::OnnxInfo info = cnn::load_onnx(net, path);
        stored.metadata = info.metadata;
        stored.normalization = info.normalization;
        return stored;
#else
        without_onnx(path);
#endif
    }
    const auto metadata = examples::parse_metadata(cnn::load_model(net, path));
    stored.metadata = {metadata.begin(), metadata.end()};
    if (metadata.count("normalization_mean") && metadata.count("normalization_deviation")) {
        cnn::Normalization normalization{metadata_number(stored.metadata, "normalization_mean", path),
                                         metadata_number(stored.metadata, "normalization_deviation", path)};
        if (metadata.count("normalization_means") && metadata.count("normalization_deviations")) {
            normalization.means = metadata_numbers(stored.metadata, "normalization_means", path);
            normalization.deviations = metadata_numbers(stored.metadata, "normalization_deviations", path);
        }
        stored.normalization = normalization;
    }
    return stored;
}

}  // namespace

int main(int argc, char** argv) try {
    examples::Arguments args(argc, argv, {"help", "resize"});
    if (args.flag("help") || args.positional().empty()) {
        std::cout << usage;
        return args.positional().empty() && !args.has("help") ? 2 : 0;
    }
    const std::filesystem::path data = args.text("data", examples::default_data_directory);
    const std::size_t limit = args.count("limit", 0);
    const bool resize = args.flag("resize");
    cnn::set_threads(examples::thread_count(args, "mnist_predict"));
    args.reject_unknown();
    const std::filesystem::path model_path = args.positional()[0];
    const std::vector<std::string> images(args.positional().begin() + 1, args.positional().end());
    if (!images.empty() && args.has("limit"))
        throw std::invalid_argument("--limit applies to the test set; it cannot be used with image files");

    // The file says what the model takes; the architecture is then found by trying each network.
    const examples::Task task = task_of_file(model_path);
    const std::string net_name = examples::network_for_file(task, [&](auto& net) { (void)load_any(net, model_path); });

    int status = 0;
    examples::with_network(net_name, task, [&](auto net) {
        using T = typename decltype(net)::value_type;
        const Stored stored = load_any(net, model_path);
        const auto& metadata = stored.metadata;
        // A model saved without mnist_train's metadata (save_model's, PyTorch's ONNX file) still
        // predicts: pixels scaled to [0, 1] and classes by number, and it says so.
        cnn::Normalization normalization;
        if (stored.normalization) {
            normalization = *stored.normalization;
            normalization.check(task.channels);
        } else {
            std::cerr << "mnist_predict: " << model_path.string()
                      << " records no input normalisation (not written by mnist_train): pixels are scaled to [0, 1]\n";
        }
        std::vector<std::string> names;
        if (metadata.count("classes")) names = examples::split(metadata.at("classes"), ',');

        if (images.empty()) {
            // A model of CIFAR-100's 20 superclasses was trained with --labels coarse.
            const cnn::CifarLabels cifar100_labels = task.classes == 20 ? cnn::CifarLabels::coarse
                                                                        : cnn::CifarLabels::fine;
            const cnn::Dataset test_set =
                examples::load_split(data, "test", {task.rows, task.cols, resize, task.channels, cifar100_labels})
                    .head(limit);
            if (examples::task_of(test_set) != task)
                throw std::runtime_error("the model takes " + task.input_text() + " images of " +
                                         std::to_string(task.classes) + " classes; the test set in " + data.string() +
                                         " has " + examples::task_of(test_set).input_text() + " images of " +
                                         std::to_string(test_set.classes));
            const cnn::Evaluation result = cnn::evaluate(net, test_set, normalization);
            std::cout << "model " << model_path.string() << " (" << net_name << "), " << test_set.size()
                      << " test images of " << test_set.files.at(0).string() << "\n";
            examples::print_confusion(std::cout, result, names);
            std::printf("test accuracy: %.4f\n", result.accuracy);
            return;
        }
        // Every image is tried; one that cannot be read is reported and the rest go on.
        typename decltype(net)::Workspace workspace;
        std::size_t failed = 0;
        for (const std::string& path : images) {
            std::vector<std::uint8_t> pixels;
            try {
                pixels = read_any_image(path, task, resize);
            } catch (const std::exception& e) {
                std::cerr << "mnist_predict: " << e.what() << "\n";
                ++failed;
                continue;
            }
            cnn::Dataset one{std::move(pixels), {0}, 1, task.rows, task.cols, task.classes, names, {}, task.channels};
            cnn::Tensor<T, 4> x(one.batch_shape(1));
            std::uint32_t label = 0;
            const std::size_t index = 0;
            one.fill_batch<T>({&index, 1}, x.view(), {&label, 1}, normalization);
            const auto logits = net.forward(x.view(), workspace);
            cnn::Tensor<T, 4> delta(logits.shape());
            const std::uint32_t predicted = cnn::predicted_class<T>(logits, 0);
            // softmax probability of the prediction: e^{-E} for E the cross-entropy of that class
            const double loss = cnn::softmax_cross_entropy<T>(logits, {&predicted, 1}, delta.view());
            std::printf("%s: %s (%.1f%%)\n", path.c_str(), one.class_name(predicted).c_str(), 100.0 * std::exp(-loss));
        }
        if (failed != 0) {
            std::cerr << "mnist_predict: " << failed << " of " << images.size() << " images could not be classified\n";
            status = 1;
        }
    });
    return status;
} catch (const std::exception& e) {
    std::cerr << "mnist_predict: " << e.what() << "\n";
    return 1;
}
