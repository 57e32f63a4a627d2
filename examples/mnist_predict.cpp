// mnist_predict: loads a model saved by mnist_train and either reports its
// accuracy on the test set or classifies 28x28 PGM images.
#include <cnn/cnn.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "common.hpp"
#include "networks.hpp"

namespace {

const char* usage = R"(usage: mnist_predict MODEL [IMAGE.pgm ...] [--data DIR] [--threads N]

  With no image: the model's accuracy and confusion matrix on the test set in DIR
  (default /usr/share/datasets/fashion-mnist); the last line reads "test accuracy: 0.9123".
  With images: the predicted class and its probability for each 28x28 greyscale PGM
  (P2 or P5, white on black like the training images; the data set's own convention).
)";

/// A 28 x 28 greyscale PGM (P2 or P5, maxval <= 255) as bytes scaled to 0..255.
std::vector<std::uint8_t> read_pgm(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open");
    std::string magic;
    in >> magic;
    if (magic != "P5" && magic != "P2") throw std::runtime_error(path + ": not a PGM file (expected P5 or P2)");
    std::size_t header[3];
    for (std::size_t& value : header) {
        while (in >> std::ws && in.peek() == '#') in.ignore(1 << 20, '\n');
        if (!(in >> value)) throw std::runtime_error(path + ": malformed PGM header");
    }
    const auto [width, height, maxval] = header;
    if (width != 28 || height != 28)
        throw std::runtime_error(path + ": is " + std::to_string(width) + "x" + std::to_string(height) +
                                 "; the model takes 28x28 images");
    if (maxval == 0 || maxval > 255) throw std::runtime_error(path + ": maxval must be 1..255");
    std::vector<std::uint8_t> pixels(28 * 28);
    if (magic == "P5") {
        in.get();
        in.read(reinterpret_cast<char*>(pixels.data()), static_cast<std::streamsize>(pixels.size()));
        if (in.gcount() != static_cast<std::streamsize>(pixels.size())) throw std::runtime_error(path + ": truncated");
    } else {
        for (std::uint8_t& p : pixels) {
            std::size_t v;
            if (!(in >> v) || v > maxval) throw std::runtime_error(path + ": bad or missing pixel value");
            p = static_cast<std::uint8_t>(v);
        }
    }
    for (std::uint8_t& p : pixels) p = static_cast<std::uint8_t>(p * 255 / maxval);
    return pixels;
}

}  // namespace

int main(int argc, char** argv) try {
    examples::Arguments args(argc, argv, {"help"});
    if (args.flag("help") || args.positional().empty()) {
        std::cout << usage;
        return args.positional().empty() && !args.has("help") ? 2 : 0;
    }
    const std::filesystem::path data = args.text("data", examples::default_data_directory);
    cnn::set_threads(std::max<std::size_t>(1, args.count("threads", std::max(1u, std::thread::hardware_concurrency()))));
    args.reject_unknown();
    const std::filesystem::path model_path = args.positional()[0];
    const std::vector<std::string> images(args.positional().begin() + 1, args.positional().end());

    const std::string net_name =
        examples::network_for_file([&](auto& net) { (void)cnn::load_model(net, model_path); });

    int status = 0;
    examples::with_network(net_name, [&](auto net) {
        using T = typename decltype(net)::value_type;
        const auto metadata = examples::parse_metadata(cnn::load_model(net, model_path));
        const cnn::Normalization normalization{std::stod(metadata.at("normalization_mean")),
                                               std::stod(metadata.at("normalization_deviation"))};
        const auto names = examples::split(metadata.at("classes"), ',');

        if (images.empty()) {
            const cnn::Dataset test_set = examples::load_split(data, "t10k");
            const cnn::Evaluation result = cnn::evaluate(net, test_set, normalization);
            std::cout << "model " << model_path.string() << " (" << net_name << "), " << test_set.size()
                      << " test images of " << data.string() << "\n";
            examples::print_confusion(std::cout, result, names);
            std::printf("test accuracy: %.4f\n", result.accuracy);
            return;
        }
        typename decltype(net)::Workspace workspace;
        for (const std::string& path : images) {
            cnn::Dataset one{read_pgm(path), {0}, 1, 28, 28, names.size()};
            cnn::Tensor<T, 4> x(one.batch_shape(1));
            std::uint32_t label = 0;
            const std::size_t index = 0;
            one.fill_batch<T>({&index, 1}, x.view(), {&label, 1}, normalization);
            const auto logits = net.forward(x.view(), workspace);
            cnn::Tensor<T, 4> delta(logits.shape());
            const std::uint32_t predicted = cnn::predicted_class<T>(logits, 0);
            // softmax probability of the prediction: e^{-E} for E the cross-entropy of that class
            const double loss = cnn::softmax_cross_entropy<T>(logits, {&predicted, 1}, delta.view());
            std::printf("%s: %s (%.1f%%)\n", path.c_str(), names.at(predicted).c_str(), 100.0 * std::exp(-loss));
        }
    });
    return status;
} catch (const std::exception& e) {
    std::cerr << "mnist_predict: " << e.what() << "\n";
    return 1;
}
