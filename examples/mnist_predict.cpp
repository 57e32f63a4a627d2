// mnist_predict: loads a model saved by mnist_train and either reports its
// accuracy on the test set or classifies 28x28 PGM images.
#include <cnn/cnn.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

#include "common.hpp"
#include "networks.hpp"

namespace {

const char* usage = R"(usage: mnist_predict MODEL [IMAGE.pgm ...] [--data DIR] [--limit N] [--threads N]

  With no image: the model's accuracy and confusion matrix on the test set in DIR
  (default /usr/share/datasets/fashion-mnist); the last line reads "test accuracy: 0.9123".
  With images: the predicted class and its probability for each 28x28 greyscale PGM
  (P2 or P5, white on black like the training images; the data set's own convention).
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

/// A 28 x 28 greyscale PGM (P2 or P5, maxval 1..255) as bytes scaled to 0..255. Every pixel
/// must be at most maxval, and nothing may follow the pixels but (for P2) white space.
std::vector<std::uint8_t> read_pgm(const std::string& path) {
    const std::vector<std::uint8_t> bytes = cnn::read_file(path, 1 << 20, "PGM image");
    if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '2'))
        throw std::runtime_error(path + ": not a PGM file (it does not start with P5 or P2)");
    const bool binary = bytes[1] == '5';
    std::size_t at = 2;
    const std::size_t width = pgm_number(bytes, at, path, "width");
    const std::size_t height = pgm_number(bytes, at, path, "height");
    const std::size_t maxval = pgm_number(bytes, at, path, "maxval");
    if (width != 28 || height != 28)
        throw std::runtime_error(path + ": is " + std::to_string(width) + "x" + std::to_string(height) +
                                 "; the model takes 28x28 images");
    if (maxval == 0 || maxval > 255) throw std::runtime_error(path + ": maxval " + std::to_string(maxval) + " is not 1..255");
    std::vector<std::size_t> values(28 * 28);
    if (binary) {
        ++at;  // the single white-space byte after maxval
        const std::size_t present = bytes.size() - std::min(at, bytes.size());
        if (present < values.size())
            throw std::runtime_error(path + ": truncated: " + std::to_string(present) + " pixel bytes, 784 needed");
        if (present > values.size())
            throw std::runtime_error(path + ": has " + std::to_string(present - values.size()) +
                                     " bytes after the 784 pixels");
        std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(at), values.size(), values.begin());
    } else {
        for (std::size_t& v : values) v = pgm_number(bytes, at, path, "pixel");
        while (at < bytes.size() && std::isspace(bytes[at])) ++at;
        if (at != bytes.size())
            throw std::runtime_error(path + ": has data after the 784 pixels (offset " + std::to_string(at) + ")");
    }
    std::vector<std::uint8_t> pixels(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (values[i] > maxval)
            throw std::runtime_error(path + ": pixel " + std::to_string(i) + " is " + std::to_string(values[i]) +
                                     ", above maxval " + std::to_string(maxval));
        pixels[i] = static_cast<std::uint8_t>(values[i] * 255 / maxval);
    }
    return pixels;
}

/// A number stored in the model's metadata; a malformed one is an error naming it.
double metadata_number(const std::map<std::string, std::string>& metadata, const std::string& key,
                       const std::filesystem::path& model) {
    const std::string& text = metadata.at(key);
    const std::optional<double> value = examples::finite_number(text);
    if (!value) throw std::runtime_error(model.string() + ": its metadata " + key + "='" + text + "' is not a number");
    return *value;
}

}  // namespace

int main(int argc, char** argv) try {
    examples::Arguments args(argc, argv, {"help"});
    if (args.flag("help") || args.positional().empty()) {
        std::cout << usage;
        return args.positional().empty() && !args.has("help") ? 2 : 0;
    }
    const std::filesystem::path data = args.text("data", examples::default_data_directory);
    const std::size_t limit = args.count("limit", 0);
    cnn::set_threads(examples::thread_count(args, "mnist_predict"));
    args.reject_unknown();
    const std::filesystem::path model_path = args.positional()[0];
    const std::vector<std::string> images(args.positional().begin() + 1, args.positional().end());
    if (!images.empty() && args.has("limit"))
        throw std::invalid_argument("--limit applies to the test set; it cannot be used with image files");

    const std::string net_name =
        examples::network_for_file([&](auto& net) { (void)cnn::load_model(net, model_path); });

    int status = 0;
    examples::with_network(net_name, [&](auto net) {
        using T = typename decltype(net)::value_type;
        const auto metadata = examples::parse_metadata(cnn::load_model(net, model_path));
        // A model saved by save_model without mnist_train's metadata still predicts: pixels
        // scaled to [0, 1] and classes by number, and it says so.
        cnn::Normalization normalization;
        if (metadata.count("normalization_mean") && metadata.count("normalization_deviation")) {
            normalization = {metadata_number(metadata, "normalization_mean", model_path),
                             metadata_number(metadata, "normalization_deviation", model_path)};
            normalization.check();
        } else {
            std::cerr << "mnist_predict: " << model_path.string()
                      << " records no input normalisation (not saved by mnist_train): pixels are scaled to [0, 1]\n";
        }
        std::vector<std::string> names;
        if (metadata.count("classes")) names = examples::split(metadata.at("classes"), ',');

        if (images.empty()) {
            const cnn::Dataset test_set = examples::load_split(data, "t10k").head(limit);
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
                pixels = read_pgm(path);
            } catch (const std::exception& e) {
                std::cerr << "mnist_predict: " << e.what() << "\n";
                ++failed;
                continue;
            }
            cnn::Dataset one{std::move(pixels), {0}, 1, 28, 28, std::max<std::size_t>(names.size(), 1), names};
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
