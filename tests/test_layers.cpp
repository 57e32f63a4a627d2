// Layers on batches, in float and double: each sample of a batch gives what the
// reference kernel gives for that sample alone, and float agrees with double.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <random>

#include "test_support.hpp"

using cnn::Shape;
using cnn::Tensor;

namespace {

template <class T>
Tensor<T, 4> convert(const Tensor<double, 4>& source) {
    Tensor<T, 4> out(source.shape());
    std::transform(source.begin(), source.end(), out.begin(), [](double v) { return static_cast<T>(v); });
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("Parameter gradients accumulate until zeroed", "[layers]", float, double) {
    cnn::Dense<TestType> dense{3, 2};
    std::fill(dense.parameters().begin(), dense.parameters().end(), TestType{1});
    const Tensor<TestType, 4> x({1, 3, 1, 1}, {1, 2, 3});
    Tensor<TestType, 4> y({1, 2, 1, 1}), dx(x.shape());
    const Tensor<TestType, 4> dy({1, 2, 1, 1}, {1, 1});
    cnn::Scratch<TestType> scratch;
    dense.forward(x, y, scratch);
    dense.backward(x, y, dy, dx, scratch);
    dense.backward(x, y, dy, dx, scratch);
    CHECK(dense.weight_gradients()(0, 2) == 6);  // 2 x delta x_2
    CHECK(dense.bias_gradients()[1] == 2);
    CHECK(dx(0, 0, 0, 0) == 2);  // dE/dx is written, not accumulated
}

TEST_CASE("A float network of layers agrees with the same layers in double", "[layers]") {
    std::mt19937_64 rng(17);
    cnn::Conv2D<double> conv_d{2, 3, 3, {.padding = 1}};
    cnn::test::fill_uniform<double, 1>(cnn::TensorView<double, 1>(conv_d.parameters().data(), {conv_d.parameters().size()}), rng);
    cnn::Conv2D<float> conv_f{2, 3, 3, {.padding = 1}};
    std::transform(conv_d.parameters().begin(), conv_d.parameters().end(), conv_f.parameters().begin(),
                   [](double v) { return static_cast<float>(v); });
    const auto x_d = cnn::test::random_tensor<double>(Shape<4>{2, 2, 8, 8}, rng);
    const auto x_f = convert<float>(x_d);

    cnn::Scratch<double> sd;
    cnn::Scratch<float> sf;
    Tensor<double, 4> c_d(conv_d.output_shape(x_d.shape())), r_d(c_d.shape()), p_d({2, 3, 4, 4});
    Tensor<float, 4> c_f(c_d.shape()), r_f(c_d.shape()), p_f({2, 3, 4, 4});
    conv_d.forward(x_d, c_d, sd);
    conv_f.forward(x_f, c_f, sf);
    cnn::ReLU<double>{}.forward(c_d, r_d, sd);
    cnn::ReLU<float>{}.forward(c_f, r_f, sf);
    cnn::MaxPool<double>{2}.forward(r_d, p_d, sd);
    cnn::MaxPool<float>{2}.forward(r_f, p_f, sf);
    CHECK(cnn::test::max_abs_difference(p_f, p_d) <= 1e-5);
}

TEST_CASE("Results are bit-identical for any thread count", "[layers][threads]") {
    std::mt19937_64 rng(23);
    cnn::Conv2D<float> conv{3, 8, 3, {.stride = 2, .padding = 1}};
    cnn::Dense<float> dense{8 * 6 * 5, 10};
    cnn::test::fill_uniform<float, 1>(cnn::TensorView<float, 1>(conv.parameters().data(), {conv.parameters().size()}), rng);
    cnn::test::fill_uniform<float, 1>(cnn::TensorView<float, 1>(dense.parameters().data(), {dense.parameters().size()}), rng);
    const auto x = cnn::test::random_tensor<float>(Shape<4>{37, 3, 11, 9}, rng);
    const auto dz = cnn::test::random_tensor<float>(Shape<4>{37, 10, 1, 1}, rng);

    const auto run = [&](std::size_t threads) {
        cnn::set_threads(threads);
        cnn::Scratch<float> scratch;
        Tensor<float, 4> y(conv.output_shape(x.shape())), z({37, 10, 1, 1}), dy(y.shape()), dx(x.shape());
        std::fill(conv.gradients().begin(), conv.gradients().end(), 0.0f);
        std::fill(dense.gradients().begin(), dense.gradients().end(), 0.0f);
        conv.forward(x, y, scratch);
        dense.forward(y, z, scratch);
        dense.backward(y, z, dz, dy, scratch);
        conv.backward(x, y, dy, dx, scratch);
        std::vector<float> all(z.begin(), z.end());
        all.insert(all.end(), dx.begin(), dx.end());
        all.insert(all.end(), conv.gradients().begin(), conv.gradients().end());
        all.insert(all.end(), dense.gradients().begin(), dense.gradients().end());
        return all;
    };
    const auto one = run(1);
    const auto three = run(3);
    const auto two = run(2);
    cnn::set_threads(1);
    CHECK(one == two);
    CHECK(one == three);
}
