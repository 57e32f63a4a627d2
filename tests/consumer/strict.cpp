// A user's program built with strict warnings (-Wall -Wextra -Wpedantic -Wconversion
// -Wsign-conversion -Wshadow -Werror, see tests/CMakeLists.txt), with g++ and clang++:
// it instantiates the public templates in float and double, so that any warning inside
// the headers fails the build.
#include <cnn/cnn.hpp>
#include <cnn/kernels/gemm.hpp>

#include <cstdint>
#include <filesystem>
#include <iostream>
#include <vector>

namespace {

template <class T>
auto lenet() {
    // Every layer and composite of the library: the activations, normalisation and dropout,
    // grouped, depthwise and dilated convolutions,
    // a residual block with a projection, branches added and concatenated.
    auto block = cnn::Residual{cnn::Sequential{cnn::Conv2D<T>{6, 6, 3, {.padding = 1}}, cnn::BatchNorm2D<T>{6},
                                               cnn::ELU<T>{}, cnn::Dropout<T>{0.1},
                                               cnn::Conv2D<T>{6, 6, 3, {.padding = 1, .bias = false, .groups = 6}},
                                               cnn::Conv2D<T>{6, 6, 3, {.padding = 2, .dilation = 2,
                                                                        .groups = 3}},
                                               cnn::Conv2D<T>{6, 6, 1, {.groups = 2}}},
                               cnn::Sequential{cnn::Conv2D<T>{6, 6, 1}}};
    auto branches = cnn::Parallel{cnn::Concat{}, cnn::Conv2D<T>{6, 8, 5}, cnn::Sequential{cnn::Conv2D<T>{6, 8, 5}, cnn::Tanh<T>{}}};
    return cnn::Sequential{cnn::Conv2D<T>{1, 6, 5, {.padding = 2}}, cnn::ReLU<T>{}, cnn::MaxPool<T>{2},
                           std::move(block), cnn::Sigmoid<T>{},
                           std::move(branches), cnn::LeakyReLU<T>{0.1}, cnn::MeanPool<T>{2},
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{400, 84}, cnn::GELU<T>{cnn::GeluApproximation::tanh},
                           cnn::Parallel{cnn::Add{}, cnn::Dense<T>{84, 10},
                                         cnn::Sequential{cnn::GELU<T>{}, cnn::BatchNorm2D<T>{84}, cnn::Dense<T>{84, 10}},
                                         cnn::Sequential{cnn::Dense<T>{84, 10}, cnn::GlobalAvgPool<T>{}}}};
}

template <class T, class Optimizer>
double train_once(const cnn::Dataset& data, Optimizer optimizer, const std::filesystem::path& dir) {
    auto net = lenet<T>();
    cnn::Random rng{7};
    net.initialize(rng, cnn::Init::xavier);
    cnn::FitOptions options{
        .epochs = 1, .batch_size = 4, .schedule = cnn::Schedule::cosine(), .label_smoothing = 0.1};
    const auto history = cnn::fit(net, optimizer, data, rng, options);
    const cnn::Evaluation result = cnn::evaluate(net, data, {}, 4);
    cnn::save_model(net, dir / "model.cnn", "note=strict\n");
    cnn::load_model(net, dir / "model.cnn");
    if (history.resume) cnn::save_checkpoint(net, *history.resume, dir / "run.checkpoint");

    typename decltype(net)::Workspace workspace;
    cnn::Tensor<T, 4> x(data.batch_shape(2), T{0});
    const auto logits = net.forward(x, workspace);
    std::vector<T> point{T(1), T(2)}, analytic{T(2), T(4)};
    const auto check = cnn::gradient_check<T>(
        [&] { return static_cast<double>(point[0] * point[0] + point[1] * point[1]); }, std::span<T>{point},
        std::span<const T>{analytic});
    auto probabilities = cnn::Sequential{net, cnn::Softmax<T>{}};
    typename decltype(probabilities)::Workspace softmax_workspace;
    const auto p = probabilities.forward(x, softmax_workspace);
    std::cout << net.summary(data.batch_shape(4)) << logits.size() << " " << p.size() << " " << check.relative_error
              << "\n";
    return result.accuracy;
}

}  // namespace

int main() {
    cnn::Dataset data{std::vector<std::uint8_t>(8 * 28 * 28, 100), {0, 1, 2, 3, 4, 5, 6, 7}, 8, 28, 28, 10};
    const auto dir = std::filesystem::temp_directory_path() / "cnn-strict-consumer";
    std::filesystem::create_directories(dir);
    double accuracy = train_once<float>(data, cnn::SGD<float>{{.learning_rate = 0.01, .momentum = 0.9}}, dir);
    accuracy += train_once<double>(data, cnn::Adam<double>{{.learning_rate = 0.001}}, dir);
    // Colour data: a CIFAR file written and read back, per-channel normalisation, augmentation.
    cnn::Dataset colour{std::vector<std::uint8_t>(2 * 3072, 7), {1, 2}, 2, 32, 32, 10, {}, {}, 3};
    cnn::write_cifar(dir / "colour.bin", colour, cnn::CifarFormat::cifar10());
    const std::vector<std::filesystem::path> files{dir / "colour.bin"};
    const cnn::Dataset read = cnn::read_cifar(files, cnn::CifarFormat::cifar10());
    cnn::Tensor<float, 4> x(read.batch_shape(2));
    std::vector<std::uint32_t> labels(2);
    const std::vector<std::size_t> order{1, 0};
    cnn::Random rng{4};
    read.fill_batch<float>(order, x.view(), labels, read.pixel_statistics(),
                           {.crop_padding = 4, .horizontal_flip = true, .cutout = 8}, rng);
    accuracy += static_cast<double>(x(0, 2, 5, 5)) * 0 + static_cast<double>(labels[0]) * 0;
    std::filesystem::remove_all(dir);
    std::cout << cnn::kernels::gemm_kernel_name() << " " << accuracy << "\n";
    return 0;
}
