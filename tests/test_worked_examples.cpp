// The worked examples EX01-EX13 of FORMULAS.md section 10, written out by hand:
// the formula, the numbers and the expectation in one place.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <vector>

#include "test_support.hpp"

namespace ref = cnn::reference;
using cnn::Tensor;
using cnn::test::max_abs_difference;

namespace {

// The 5x5 image and 3x3 filter of EX02 (the UFLDL example of the article's figure).
const Tensor<double, 2> ex02_image({5, 5}, {1, 1, 1, 0, 0,  //
                                            0, 1, 1, 1, 0,  //
                                            0, 0, 1, 1, 1,  //
                                            0, 0, 1, 1, 0,  //
                                            0, 1, 1, 0, 0});
const Tensor<double, 2> ex02_filter({3, 3}, {1, 0, 1,  //
                                             0, 1, 0,  //
                                             1, 0, 1});

// EX04: learn_dl init_test(), 3 x 5 x 5 input, two 3x3x3 filters, biases 1 and 0.
const Tensor<double, 3> ex04_input({3, 5, 5}, {0, 1, 1, 0, 2, 2, 2, 2, 2, 1, 1, 0, 0, 2, 0, 0, 1, 1, 0, 0, 1, 2, 0, 0, 2,
                                               1, 0, 2, 2, 0, 0, 0, 0, 2, 0, 1, 2, 1, 2, 1, 1, 0, 0, 0, 0, 1, 2, 1, 1, 1,
                                               2, 1, 2, 0, 0, 1, 0, 0, 1, 0, 0, 2, 1, 0, 1, 0, 1, 2, 2, 2, 2, 1, 0, 0, 1});
const Tensor<double, 4> ex04_filters({2, 3, 3, 3}, {-1, 1,  0, 0,  1, 0, 0, 1, 1,    // w[0][0]
                                                    -1, -1, 0, 0,  0, 0, 0, -1, 0,   // w[0][1]
                                                    0,  0, -1, 0,  1, 0, 1, -1, -1,  // w[0][2]
                                                    1,  1, -1, -1, -1, 1, 0, -1, 1,  // w[1][0]
                                                    0,  1,  0, -1, 0, -1, -1, 1, 0,  // w[1][1]
                                                    -1, 0,  0, -1, 0, 1, -1, 0, 0}); // w[1][2]
const std::vector<double> ex04_bias{1, 0};

Tensor<double, 3> as_channel(const Tensor<double, 2>& matrix) {
    return Tensor<double, 3>({1, matrix.extent(0), matrix.extent(1)}, matrix.span());
}

Tensor<double, 4> as_filter(const Tensor<double, 2>& matrix) {
    return Tensor<double, 4>({1, 1, matrix.extent(0), matrix.extent(1)}, matrix.span());
}

}  // namespace

TEST_CASE("EX01: output width W2 = (W1 - F + 2P)/S + 1", "[examples]") {
    // W1 = 5, F = 3, P = 0, S = 2: (5 - 3 + 0)/2 + 1 = 2
    CHECK(ref::output_extent(5, 3, 0, 2).extent == 2);
    CHECK(ref::output_extent(5, 3, 0, 2).exact_division);
    // CS231n demo: W1 = 5, P = 1, F = 3, S = 2: (5 - 3 + 2)/2 + 1 = 3
    CHECK(ref::output_extent(5, 3, 1, 2).extent == 3);
    // Not exact: (6 - 3)/2 floors to 1, so 2 outputs and the last input row is unused.
    CHECK(ref::output_extent(6, 3, 0, 2).extent == 2);
    CHECK_FALSE(ref::output_extent(6, 3, 0, 2).exact_division);
}

TEST_CASE("EX02: 5x5 image, 3x3 filter, stride 1, ReLU", "[examples]") {
    // a00 = relu(1+0+1+0+1+0+0+0+1+0) = 4, a01 = relu(1+0+0+0+1+0+0+0+1+0) = 3
    Tensor<double, 3> net({1, 3, 3}), a({1, 3, 3});
    const std::vector<double> bias{0};
    ref::conv2d_forward<double>(as_channel(ex02_image), as_filter(ex02_filter), bias, 1, 0, net);
    ref::relu<double, 3>(net, a);
    CHECK(a(0, 0, 0) == 4);
    CHECK(a(0, 0, 1) == 3);
    CHECK(max_abs_difference(a, Tensor<double, 3>({1, 3, 3}, {4, 3, 4, 2, 4, 3, 2, 3, 4})) == 0);
}

TEST_CASE("EX03: the same image and filter with stride 2 keep rows and columns {0, 2}", "[examples]") {
    Tensor<double, 3> net({1, 2, 2});
    const std::vector<double> bias{0};
    ref::conv2d_forward<double>(as_channel(ex02_image), as_filter(ex02_filter), bias, 2, 0, net);
    CHECK(max_abs_difference(net, Tensor<double, 3>({1, 2, 2}, {4, 4, 2, 4})) == 0);
}

TEST_CASE("EX04: depth 3, two filters, padding 1, stride 2 (learn_dl init_test), through the Conv2D layer",
          "[examples]") {
    cnn::Conv2D<double> conv{3, 2, 3, {.stride = 2, .padding = 1}};
    std::copy(ex04_filters.begin(), ex04_filters.end(), conv.weights().begin());
    std::copy(ex04_bias.begin(), ex04_bias.end(), conv.bias().begin());
    const Tensor<double, 4> x({1, 3, 5, 5}, ex04_input.span());
    Tensor<double, 4> net(conv.output_shape(x.shape()));
    REQUIRE(net.shape() == cnn::Shape<4>{1, 2, 3, 3});
    cnn::Scratch<double> scratch;
    conv.forward(x, net, scratch);
    // net_{0,0,0}: window products with w[0] sum to 4 + 0 + 1, plus bias 1 = 6
    CHECK(net(0, 0, 0, 0) == 6);
    const Tensor<double, 4> expected({1, 2, 3, 3}, {6, 7, 5, 3, -1, -1, 2, -1, 4,  //
                                                    2, -5, -8, 1, -4, -4, 0, -5, -5});
    CHECK(max_abs_difference(net, expected) == 0);
}

TEST_CASE("EX05: 2x2 max and mean pooling, stride 2 (learn_dl init_pool_test)", "[examples]") {
    const Tensor<double, 4> x({1, 2, 4, 4}, {1, 1, 2, 4, 5, 6, 7, 8, 3, 2, 1, 0, 1, 2, 3, 4,  //
                                             0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 3, 4, 5, 6});
    cnn::Scratch<double> scratch;
    cnn::MaxPool<double> max_pool{2};
    Tensor<double, 4> max_out(max_pool.output_shape(x.shape()));
    max_pool.forward(x, max_out, scratch);
    CHECK(max_abs_difference(max_out, Tensor<double, 4>({1, 2, 2, 2}, {6, 8, 3, 4, 5, 7, 9, 6})) == 0);

    cnn::MeanPool<double> mean_pool{2};
    Tensor<double, 4> mean_out(mean_pool.output_shape(x.shape()));
    mean_pool.forward(x, mean_out, scratch);
    CHECK(max_abs_difference(mean_out, Tensor<double, 4>({1, 2, 2, 2}, {3.25, 5.25, 2, 2, 2.5, 4.5, 6, 3})) == 0);
}

TEST_CASE("EX06: max-pool backprop sends each delta to its window's maximum", "[examples]") {
    const Tensor<double, 4> x({1, 2, 4, 4}, {1, 1, 2, 4, 5, 6, 7, 8, 3, 2, 1, 0, 1, 2, 3, 4,  //
                                             0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 3, 4, 5, 6});
    const Tensor<double, 4> delta({1, 2, 2, 2}, {1, 2, 2, 4, 3, 5, 8, 2});
    cnn::MaxPool<double> pool{2};
    Tensor<double, 4> y(pool.output_shape(x.shape())), dx(x.shape());
    cnn::Scratch<double> scratch;
    pool.forward(x, y, scratch);
    pool.backward(x, y, delta, dx, scratch);
    const Tensor<double, 4> expected({1, 2, 4, 4}, {0, 0, 0, 0, 0, 1, 0, 2, 2, 0, 0, 0, 0, 0, 0, 4,  //
                                                    0, 0, 0, 0, 0, 3, 0, 5, 0, 8, 0, 0, 0, 0, 0, 2});
    CHECK(max_abs_difference(dx, expected) == 0);
}

TEST_CASE("EX06 (overlap): a maximum shared by two windows receives both deltas", "[examples]") {
    // 5x5 input, window 3, stride 2: x(1,2) = 9 is the maximum of windows (0,0) and (0,1).
    Tensor<double, 3> x({1, 5, 5}, 0.0);
    x(0, 1, 2) = 9;
    x(0, 4, 0) = 5;
    x(0, 4, 4) = 6;
    const Tensor<double, 3> delta({1, 2, 2}, {1, 2, 3, 4});
    Tensor<double, 3> dx(x.shape());
    ref::maxpool_backward<double>(x, delta, {3, 3}, 2, dx);
    CHECK(dx(0, 1, 2) == 1 + 2);
    CHECK(dx(0, 4, 0) == 3);
    CHECK(dx(0, 4, 4) == 4);
}

TEST_CASE("EX07: mean-pool backprop is the Kronecker product delta (x) (1/n^2)", "[examples]") {
    const Tensor<double, 3> delta({2, 2, 2}, {1, 2, 2, 4, 3, 5, 8, 2});
    Tensor<double, 3> kron({2, 4, 4}), general({2, 4, 4});
    ref::meanpool_backward_kronecker<double>(delta, 2, kron);
    ref::meanpool_backward_general<double>(delta, {2, 2}, 2, general);
    const Tensor<double, 3> expected({2, 4, 4}, {.25, .25, .5, .5, .25, .25, .5, .5, .5, .5, 1, 1, .5, .5, 1, 1,  //
                                                 .75, .75, 1.25, 1.25, .75, .75, 1.25, 1.25, 2, 2, .5, .5, 2, 2, .5, .5});
    CHECK(max_abs_difference(kron, expected) == 0);
    CHECK(max_abs_difference(general, expected) == 0);
}

TEST_CASE("EX08: error propagation, 3x3 input, 2x2 filter, stride 1, ReLU", "[examples]") {
    const Tensor<double, 4> w({1, 1, 2, 2}, {1, 2, -1, 3});
    const Tensor<double, 3> delta({1, 2, 2}, {1, -2, 3, 1});
    const Tensor<double, 3> net_prev({1, 3, 3}, {2, -1, 3, 1, 4, -2, -3, 2, 5});
    // dE/da = delta * W (full convolution); entry (1,1) = 3 + 2 + 6 + 1 = 12
    Tensor<double, 3> grad({1, 3, 3});
    ref::conv2d_backward_input<double>(delta, w, 1, 0, grad);
    CHECK(grad(0, 1, 1) == 12);
    CHECK(max_abs_difference(grad, Tensor<double, 3>({1, 3, 3}, {1, 0, -4, 2, 12, -4, -3, 8, 3})) == 0);
    // delta^{l-1} = dE/da o f'(net^{l-1}), f' = [[1,0,1],[1,1,0],[0,1,1]]
    Tensor<double, 3> delta_prev({1, 3, 3});
    ref::relu_backward<double, 3>(net_prev, grad, delta_prev);
    CHECK(max_abs_difference(delta_prev, Tensor<double, 3>({1, 3, 3}, {1, 0, -4, 2, 12, 0, 0, 8, 3})) == 0);
}

TEST_CASE("EX09: weight and bias gradient for the same shapes", "[examples]") {
    const Tensor<double, 3> a({1, 3, 3}, {2, 0, 3, 1, 4, 0, 0, 2, 5});  // relu(net^{l-1}) of EX08
    const Tensor<double, 3> delta({1, 2, 2}, {1, -2, 3, 1});
    Tensor<double, 4> grad_w({1, 1, 2, 2});
    std::vector<double> grad_b{0};
    ref::conv2d_weight_grad<double>(a, delta, 1, 0, grad_w, grad_b);
    // (0,0) = 1*2 + (-2)*0 + 3*1 + 1*4 = 9
    CHECK(max_abs_difference(grad_w, Tensor<double, 4>({1, 1, 2, 2}, {9, 6, -5, 15})) == 0);
    CHECK(grad_b[0] == 1 - 2 + 3 + 1);
}

TEST_CASE("EX10: stride 2 dilates delta back to the stride-1 layout", "[examples]") {
    const Tensor<double, 3> delta({1, 2, 2}, {1, 2, 3, 4});
    Tensor<double, 3> expanded({1, 3, 3});
    ref::dilate_delta<double>(delta, 2, expanded);
    CHECK(max_abs_difference(expanded, Tensor<double, 3>({1, 3, 3}, {1, 0, 2, 0, 0, 0, 3, 0, 4})) == 0);

    Tensor<double, 3> grad({1, 5, 5});
    ref::conv2d_backward_input<double>(delta, as_filter(ex02_filter), 2, 0, grad);
    // x(2,2) lies in all four windows under a weight of 1: 1 + 2 + 3 + 4 = 10
    CHECK(grad(0, 2, 2) == 10);
    const Tensor<double, 3> expected({1, 5, 5}, {1, 0, 3, 0, 2, 0, 1, 0, 2, 0, 4, 0, 10, 0, 6,  //
                                                 0, 3, 0, 4, 0, 3, 0, 7, 0, 4});
    CHECK(max_abs_difference(grad, expected) == 0);

    Tensor<double, 4> grad_w({1, 1, 3, 3});
    std::vector<double> grad_b{0};
    ref::conv2d_weight_grad<double>(as_channel(ex02_image), delta, 2, 0, grad_w, grad_b);
    CHECK(max_abs_difference(grad_w, Tensor<double, 4>({1, 1, 3, 3}, {7, 5, 8, 6, 7, 4, 6, 5, 6})) == 0);
    CHECK(grad_b[0] == 10);
}

TEST_CASE("EX11: learn_dl test_bp, its SGD step and gradient_check", "[examples]") {
    cnn::Conv2D<double> conv{3, 2, 3, {.stride = 2, .padding = 1}};
    std::copy(ex04_filters.begin(), ex04_filters.end(), conv.weights().begin());
    std::copy(ex04_bias.begin(), ex04_bias.end(), conv.bias().begin());
    const Tensor<double, 4> x({1, 3, 5, 5}, ex04_input.span());
    Tensor<double, 4> y(conv.output_shape(x.shape())), dx(x.shape());
    cnn::Scratch<double> scratch;
    conv.forward(x, y, scratch);

    SECTION("test_bp: the sensitivity map b_init gives the printed gradients") {
        const Tensor<double, 4> delta({1, 2, 3, 3}, {0, 1, 1, 2, 2, 2, 1, 0, 0, 1, 0, 2, 0, 0, 0, 1, 2, 1});
        conv.backward(x, y, delta, dx, scratch);
        const Tensor<double, 4> expected({2, 3, 3, 3}, {8, 10, 9, 5, 6, 6, 6, 5, 4, 4, 1, 4, 10, 9, 12, 2, 2, 2,
                                                        2, 2,  3, 5, 8, 5, 7, 8, 7,  //
                                                        2, 2,  1, 4, 7, 3, 4, 4, 2, 0, 1, 0, 9, 5, 4, 4, 0, 0,
                                                        4, 6,  5, 2, 5, 2, 2, 1, 0});
        CHECK(max_abs_difference(conv.weight_gradients(), expected) == 0);
        CHECK(conv.bias_gradients()[0] == 9);
        CHECK(conv.bias_gradients()[1] == 7);

        // One SGD step with eta = 0.001: w <- w - eta * grad
        ref::sgd_update<double>(conv.parameters(), conv.gradients(), 0.001);
        CHECK(conv.weights()(0, 0, 0, 0) == Approx(-1.008).margin(1e-12));
        CHECK(conv.weights()(0, 0, 0, 1) == Approx(0.99).margin(1e-12));
        CHECK(conv.weights()(0, 0, 2, 2) == Approx(0.996).margin(1e-12));
        CHECK(conv.bias()[0] == Approx(0.991).margin(1e-12));
        CHECK(conv.bias()[1] == Approx(-0.007).margin(1e-12));
    }
    SECTION("gradient_check: E = sum of outputs, so delta = ones") {
        const Tensor<double, 4> ones(y.shape(), 1.0);
        conv.backward(x, y, ones, dx, scratch);
        const std::vector<double> per_filter{5, 6, 5, 5, 7, 5, 5, 6, 5, 2, 1, 2, 9, 9, 9, 2, 1, 2, 4, 5, 4, 4, 9, 4, 4, 5, 4};
        for (std::size_t k = 0; k < 2; ++k) {
            for (std::size_t i = 0; i < per_filter.size(); ++i) CHECK(conv.weight_gradients()[k].data()[i] == per_filter[i]);
            CHECK(conv.bias_gradients()[k] == 9);
        }
        // learn_dl's own check: central differences with epsilon 1e-3 on filter 0
        const auto sum_of_outputs = [&] {
            conv.forward(x, y, scratch);
            double sum = 0;
            for (double v : y) sum += v;
            return sum;
        };
        const auto result = cnn::gradient_check<double>(sum_of_outputs, conv.parameters(), conv.gradients(), 1e-3);
        CHECK(result.relative_error <= 1e-9);
    }
}

TEST_CASE("EX12: mathematical 2-D convolution A * B and the cross-correlation relation", "[examples]") {
    const Tensor<double, 2> a({2, 2}, {1, 2, 3, 4});
    const Tensor<double, 2> b({3, 3}, {1, 0, -1, 2, 1, 0, 0, 1, 1});
    Tensor<double, 2> c({4, 4});
    ref::full_convolution<double>(a, b, c);
    // C11 = A00 B11 + A01 B10 + A10 B01 + A11 B00 = 1 + 4 + 0 + 4 = 9
    CHECK(c(1, 1) == 9);
    CHECK(max_abs_difference(c, Tensor<double, 2>({4, 4}, {1, 2, -1, -2, 5, 9, -1, -4, 6, 12, 7, 2, 0, 3, 7, 4})) == 0);
    // B (cross-correlated with) A, valid, = rows and columns 1..2 of rot(A) * B
    Tensor<double, 2> valid({2, 2});
    ref::cross_correlate_valid<double>(b, a, valid);
    CHECK(max_abs_difference(valid, Tensor<double, 2>({2, 2}, {11, 1, 8, 8})) == 0);
    const Tensor<double, 2> rotated({2, 2}, {4, 3, 2, 1});
    Tensor<double, 2> full({4, 4});
    ref::full_convolution<double>(rotated, b, full);
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 2; ++j) CHECK(valid(i, j) == full(i + 1, j + 1));
}

TEST_CASE("EX13: fully connected forward and backward, through the Dense layer", "[examples]") {
    cnn::Dense<double> dense{4, 3};
    const std::vector<double> w{1, -2, 0, 3, 2, 1, -1, 0, -1, 0, 2, 1};
    std::copy(w.begin(), w.end(), dense.weights().begin());
    dense.bias()[0] = 1;
    dense.bias()[1] = -1;
    dense.bias()[2] = 0;
    cnn::Scratch<double> scratch;

    const Tensor<double, 4> x({1, 4, 1, 1}, {2, 1, -1, 3});
    Tensor<double, 4> net({1, 3, 1, 1});
    dense.forward(x, net, scratch);
    CHECK(max_abs_difference(net, Tensor<double, 4>({1, 3, 1, 1}, {10, 5, -1})) == 0);

    // net^prev = [2,-1,1,3], x = relu(net^prev) = [2,0,1,3], delta^out = [1,-2,3]
    const Tensor<double, 4> x2({1, 4, 1, 1}, {2, 0, 1, 3});
    const Tensor<double, 4> delta({1, 3, 1, 1}, {1, -2, 3});
    Tensor<double, 4> grad_x({1, 4, 1, 1});
    dense.forward(x2, net, scratch);
    dense.backward(x2, net, delta, grad_x, scratch);
    CHECK(max_abs_difference(dense.weight_gradients(),
                             Tensor<double, 2>({3, 4}, {2, 0, 1, 3, -4, 0, -2, -6, 6, 0, 3, 9})) == 0);
    CHECK(dense.bias_gradients()[0] == 1);
    CHECK(dense.bias_gradients()[1] == -2);
    CHECK(dense.bias_gradients()[2] == 3);
    CHECK(max_abs_difference(grad_x, Tensor<double, 4>({1, 4, 1, 1}, {-6, -4, 8, 6})) == 0);
    // delta^prev = W^T delta o f'(net^prev) = [-6, 0, 8, 6]
    const Tensor<double, 4> net_prev({1, 4, 1, 1}, {2, -1, 1, 3});
    Tensor<double, 4> delta_prev({1, 4, 1, 1});
    cnn::ReLU<double> relu;
    relu.backward(net_prev, x2, grad_x, delta_prev, scratch);
    CHECK(max_abs_difference(delta_prev, Tensor<double, 4>({1, 4, 1, 1}, {-6, 0, 8, 6})) == 0);
}
