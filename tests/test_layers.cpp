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
constexpr double tolerance_for() {
    return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

template <class T>
Tensor<T, 4> convert(const Tensor<double, 4>& source) {
    Tensor<T, 4> out(source.shape());
    std::transform(source.begin(), source.end(), out.begin(), [](double v) { return static_cast<T>(v); });
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("Conv2D on a batch equals the reference on each sample", "[layers]", float, double) {
    std::mt19937_64 rng(5);
    cnn::Conv2D<TestType> conv{3, 4, {3, 2}, {.stride = 2, .padding = 1}};
    cnn::test::fill_uniform<TestType, 1>(cnn::TensorView<TestType, 1>(conv.parameters().data(), {conv.parameters().size()}), rng);
    const auto x = cnn::test::random_tensor<TestType>(Shape<4>{3, 3, 7, 6}, rng);
    Tensor<TestType, 4> y(conv.output_shape(x.shape()));
    REQUIRE(y.shape() == Shape<4>{3, 4, 4, 4});
    cnn::Scratch<TestType> scratch;
    conv.forward(x, y, scratch);
    for (std::size_t n = 0; n < 3; ++n) {
        Tensor<TestType, 3> alone({4, 4, 4});
        cnn::reference::conv2d_forward<TestType>(x[n], conv.weights(), conv.bias(), 2, 1, alone);
        CHECK(cnn::test::max_abs_difference(y[n], alone) == 0);
    }

    const auto dy = cnn::test::random_tensor<TestType>(y.shape(), rng);
    Tensor<TestType, 4> dx(x.shape());
    std::fill(conv.gradients().begin(), conv.gradients().end(), TestType{0});
    conv.backward(x, y, dy, dx, scratch);
    Tensor<TestType, 4> grad_w({4, 3, 3, 2});
    std::vector<TestType> grad_b(4, TestType{0});
    for (std::size_t n = 0; n < 3; ++n) {
        Tensor<TestType, 3> alone({3, 7, 6});
        cnn::reference::conv2d_backward_input<TestType>(dy[n], conv.weights(), 2, 1, alone);
        CHECK(cnn::test::max_abs_difference(dx[n], alone) == 0);
        cnn::reference::conv2d_weight_grad<TestType>(x[n], dy[n], 2, 1, grad_w, grad_b);
    }
    CHECK(cnn::test::max_abs_difference(conv.weight_gradients(), grad_w) <= tolerance_for<TestType>());
}

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
