// A 30-layer residual network, as a compile-cost probe (bench/compile_cost.sh times it):
// a stem convolution, 14 basic blocks of two 3x3 convolutions each (identity shortcuts,
// and 1x1 projections where the width doubles and the size halves), global pooling by a
// mean pool, and a dense layer: 30 layers deep (32 with the projections), 44 composites,
// every pass instantiated (forward, backward, fit, evaluate, save, load, summary).
#include <cnn/cnn.hpp>

#include <iostream>

namespace {

using T = float;

auto body(std::size_t in, std::size_t out, std::ptrdiff_t stride) {
    return cnn::Sequential{cnn::Conv2D<T>{in, out, 3, {.stride = stride, .padding = 1}}, cnn::ReLU<T>{},
                           cnn::Conv2D<T>{out, out, 3, {.padding = 1}}};
}
auto same(std::size_t channels) {
    return cnn::Sequential{cnn::Residual{body(channels, channels, 1)}, cnn::ReLU<T>{}};
}
auto down(std::size_t in, std::size_t out) {
    return cnn::Sequential{
        cnn::Residual{body(in, out, 2), cnn::Sequential{cnn::Conv2D<T>{in, out, 1, {.stride = 2}}}}, cnn::ReLU<T>{}};
}

}  // namespace

int main() {
    auto net = cnn::Sequential{cnn::Conv2D<T>{1, 8, 3, {.padding = 1}}, cnn::ReLU<T>{},
                               same(8), same(8), same(8), same(8), same(8),
                               down(8, 16), same(16), same(16), same(16), same(16),
                               down(16, 32), same(32), same(32), same(32),
                               cnn::MeanPool<T>{7}, cnn::Flatten<T>{}, cnn::Dense<T>{32, 10}};
    std::cout << net.summary({1, 1, 28, 28});
    cnn::Dataset data{std::vector<std::uint8_t>(16 * 28 * 28, 100), std::vector<std::uint8_t>(16, 1), 16, 28, 28, 10};
    cnn::Random rng{1};
    cnn::SGD<T> sgd{{.learning_rate = 0.01, .momentum = 0.9}};
    cnn::fit(net, sgd, data, rng, {.epochs = 1, .batch_size = 8});
    std::cout << "accuracy " << cnn::evaluate(net, data).accuracy << "\n";
    cnn::save_model(net, "resnet30.cnn");
    cnn::load_model(net, "resnet30.cnn");
}
