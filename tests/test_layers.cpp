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

TEST_CASE("A convolution without a bias is one with a zero bias that never learns it", "[layers][conv]") {
    std::mt19937_64 rng(51);
    const cnn::Shape<4> shape{3, 2, 7, 6};
    const auto x = cnn::test::random_tensor<float>(shape, rng);
    cnn::Conv2D<float> plain{2, 4, {3, 2}, {.stride = 2, .padding = 2, .bias = false}};
    cnn::Conv2D<float> biased{2, 4, {3, 2}, {.stride = 2, .padding = 2}};
    cnn::test::fill_uniform<float, 1>(cnn::TensorView<float, 1>(plain.parameters().data(), {plain.parameters().size()}), rng);
    std::copy(plain.parameters().begin(), plain.parameters().end(), biased.parameters().begin());
    CHECK(plain.parameters().size() == 4 * 2 * 3 * 2);
    CHECK(biased.parameters().size() == 4 * 2 * 3 * 2 + 4);
    CHECK(plain.bias().empty());
    CHECK(cnn::detail::parameter_layout(plain).biases == 0);
    CHECK(plain.describe() == "Conv2D(2->4, 3x2, stride 2, padding 2, no bias)");

    cnn::Scratch<float> scratch;
    cnn::Tensor<float, 4> y_plain(plain.output_shape(shape)), y_biased(y_plain.shape());
    plain.forward(x, y_plain, scratch);
    biased.forward(x, y_biased, scratch);
    CHECK(cnn::test::max_abs_difference(y_plain, y_biased) == 0);
    const auto dy = cnn::test::random_tensor<float>(y_plain.shape(), rng);
    cnn::Tensor<float, 4> dx_plain(shape), dx_biased(shape);
    for (int pass = 0; pass < 2; ++pass) {  // twice: the gradients accumulate alike
        plain.backward(x, y_plain, dy, dx_plain, scratch);
        biased.backward(x, y_biased, dy, dx_biased, scratch);
    }
    CHECK(cnn::test::max_abs_difference(dx_plain, dx_biased) == 0);
    CHECK(std::equal(plain.gradients().begin(), plain.gradients().end(), biased.gradients().begin()));

    std::mt19937_64 check_rng(52);
    cnn::Conv2D<double> plain_double{2, 3, 3, {.padding = 1, .bias = false}};
    cnn::test::check_layer_gradients(plain_double, {2, 2, 5, 4}, check_rng);

    const auto dir = cnn::test::scratch_directory("conv-no-bias");
    auto net = cnn::Sequential{cnn::Conv2D<float>{1, 2, 3, {.bias = false}}, cnn::BatchNorm2D<float>{2}, cnn::Flatten<float>{},
                               cnn::Dense<float>{18, 2}};
    cnn::save_model(net, dir / "no-bias.cnn");
    auto same = cnn::Sequential{cnn::Conv2D<float>{1, 2, 3, {.bias = false}}, cnn::BatchNorm2D<float>{2},
                                cnn::Flatten<float>{}, cnn::Dense<float>{18, 2}};
    CHECK_NOTHROW(cnn::load_model(same, dir / "no-bias.cnn"));
    auto with_bias = cnn::Sequential{cnn::Conv2D<float>{1, 2, 3}, cnn::BatchNorm2D<float>{2}, cnn::Flatten<float>{},
                                     cnn::Dense<float>{18, 2}};
    CHECK_THROWS_WITH(cnn::load_model(with_bias, dir / "no-bias.cnn"),
                      Catch::Contains("layer 0 is Conv2D(1->2, 3x3, stride 1, padding 0, no bias) in the file and "
                                      "Conv2D(1->2, 3x3, stride 1, padding 0) in this network"));
}

TEST_CASE("Conv2D's per-axis stride and padding and its dilation: gradients, errors, records", "[layers][conv]") {
    std::mt19937_64 rng(53);
    cnn::Conv2D<double> dilated{2, 3, 3, {.padding = 2, .dilation = 2}};
    cnn::test::check_layer_gradients(dilated, {2, 2, 6, 5}, rng);
    cnn::Conv2D<double> uneven{3, 2, {2, 3}, {.stride = {2, 1}, .padding = {0, 3}, .dilation = {1, 2}, .bias = false}};
    cnn::test::check_layer_gradients(uneven, {2, 3, 5, 4}, rng);

    CHECK(dilated.describe() == "Conv2D(2->3, 3x3, stride 1, padding 2, dilation 2)");
    CHECK(uneven.describe() == "Conv2D(3->2, 2x3, stride 2x1, padding 0x3, dilation 1x2, no bias)");
    CHECK(dilated.output_shape({1, 2, 6, 5}) == cnn::Shape<4>{1, 3, 6, 5});  // a 3x3 filter spanning 5x5, padding 2
    CHECK_THROWS_WITH((cnn::Conv2D<float>{1, 1, 3, {.dilation = 0}}), "Conv2D: dilation must be at least 1, got 0");
    CHECK_THROWS_WITH((cnn::Conv2D<float>{1, 1, 3, {.stride = {1, 0}}}), "Conv2D: stride must be at least 1, got 0");
    CHECK_THROWS_WITH((cnn::Conv2D<float>{1, 1, 3, {.padding = {-1, 0}}}), "Conv2D: padding must be at least 0, got -1");
    CHECK_THROWS_WITH(cnn::Conv2D<float>(1, 1, 3, {.dilation = 3}).output_shape({1, 1, 6, 6}),
                      "Conv2D(1->1, 3x3, stride 1, padding 0, dilation 3): the 3x3 kernel (spanning 7x7) is larger "
                      "than the padded input of input [1, 1, 6, 6] (padded 6x6)");

    const auto dir = cnn::test::scratch_directory("conv-options");
    const auto make = [](cnn::Extent2D dilation) {
        return cnn::Sequential{cnn::Conv2D<float>{1, 2, 3, {.stride = {1, 2}, .padding = 2, .dilation = dilation}},
                               cnn::GlobalAvgPool<float>{}, cnn::Flatten<float>{}, cnn::Dense<float>{2, 2}};
    };
    auto net = make(2);
    cnn::save_model(net, dir / "dilated.cnn");
    auto same = make(2);
    CHECK_NOTHROW(cnn::load_model(same, dir / "dilated.cnn"));
    auto other = make(1);
    CHECK_THROWS_WITH(cnn::load_model(other, dir / "dilated.cnn"),
                      Catch::Contains("layer 0 is Conv2D(1->2, 3x3, stride 1x2, padding 2, dilation 2) in the file and "
                                      "Conv2D(1->2, 3x3, stride 1x2, padding 2) in this network"));
}

TEST_CASE("Worked example EX21: dilation, and stride and padding per axis", "[layers][conv][worked]") {
    const Tensor<double, 4> x({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
    cnn::Scratch<double> scratch;

    cnn::Conv2D<double> dilated{1, 1, 2, {.dilation = 2}};
    std::ranges::copy(std::vector<double>{1, 0, 0, 1, 0}, dilated.parameters().begin());
    Tensor<double, 4> y(dilated.output_shape(x.shape())), dx(x.shape());
    REQUIRE(y.shape() == Shape<4>{1, 1, 1, 1});
    dilated.forward(x, y, scratch);
    CHECK(y.data()[0] == 10);
    const Tensor<double, 4> one({1, 1, 1, 1}, 1.0);
    dilated.backward(x, y, one, dx, scratch);
    CHECK(std::vector<double>(dx.begin(), dx.end()) == std::vector<double>{1, 0, 0, 0, 0, 0, 0, 0, 1});
    CHECK(std::vector<double>(dilated.gradients().begin(), dilated.gradients().begin() + 4) ==
          std::vector<double>{1, 3, 7, 9});

    cnn::Conv2D<double> uneven{1, 1, {1, 2}, {.stride = {2, 1}, .padding = {0, 1}, .bias = false}};
    std::ranges::copy(std::vector<double>{1, 1}, uneven.parameters().begin());
    Tensor<double, 4> z(uneven.output_shape(x.shape()));
    REQUIRE(z.shape() == Shape<4>{1, 1, 2, 4});
    uneven.forward(x, z, scratch);
    CHECK(std::vector<double>(z.begin(), z.end()) == std::vector<double>{1, 3, 5, 3, 7, 15, 17, 9});
}

TEST_CASE("Worked examples EX25 and EX26: Winograd's F(2, 3) and F(4, 3) down a column", "[layers][conv][worked]") {
    // Two channels of 3x1 filters take the Winograd kernels (C Fw >= 6); only channel 0 of
    // filter 0 is non-zero, so y is one column of g = (1, 2, 3) on d = (1, 2, ...): two output
    // rows take F(2, 3), whose transforms are exact here, and four take F(4, 3), whose U holds
    // thirds and 24ths.
    cnn::Conv2D<double> conv{2, 1, {3, 1}, {.bias = false}};
    std::ranges::fill(conv.parameters(), 0.0);
    std::ranges::copy(std::vector<double>{1, 2, 3}, conv.parameters().begin());
    cnn::Scratch<double> scratch;
    for (const std::size_t rows : {4, 6}) {
        Tensor<double, 4> x({1, 2, rows, 1}, 0.0);
        for (std::size_t u = 0; u < rows; ++u) x(0, 0, u, 0) = static_cast<double>(u + 1);
        Tensor<double, 4> y(conv.output_shape(x.shape()));
        REQUIRE(y.shape() == Shape<4>{1, 1, rows - 2, 1});
        conv.forward(x, y, scratch);
        const std::vector<double> direct{14, 20, 26, 32};
        for (std::size_t t = 0; t + 2 < rows; ++t) CHECK(y(0, 0, t, 0) == Approx(direct[t]).epsilon(1e-14));
        if (rows == 4) CHECK(std::vector<double>(y.begin(), y.end()) == std::vector<double>{14, 20});
    }
}

TEST_CASE("Worked example EX27: a stride-2 convolution on the input's phases", "[layers][conv][worked]") {
    // 22 channels of 1x3 filters (66 terms a sum: the phase lowering's, FORMULAS.md section 23),
    // stride 2 and padding 1 across; only channel 0 of the input and of the filter is non-zero,
    // so y is one row of g = (1, 2, 3) on x = (1, ..., 5), and the other channels' gradients
    // are zero. All the values are small integers: exact in double.
    cnn::Conv2D<double> conv{22, 1, {1, 3}, {.stride = {1, 2}, .padding = {0, 1}, .bias = false}};
    std::ranges::fill(conv.parameters(), 0.0);
    std::ranges::copy(std::vector<double>{1, 2, 3}, conv.parameters().begin());
    Tensor<double, 4> x({1, 22, 1, 5}, 0.0);
    for (std::size_t v = 0; v < 5; ++v) x(0, 0, 0, v) = static_cast<double>(v + 1);
    Tensor<double, 4> y(conv.output_shape(x.shape()));
    REQUIRE(y.shape() == Shape<4>{1, 1, 1, 3});
    cnn::Scratch<double> scratch;
    conv.forward(x, y, scratch);
    CHECK(std::vector<double>(y.begin(), y.end()) == std::vector<double>{8, 20, 14});

    const Tensor<double, 4> delta(y.shape(), 1.0);
    Tensor<double, 4> dx(x.shape(), 7.0);
    std::ranges::fill(conv.gradients(), 0.0);
    conv.backward(x, y, delta, dx, scratch);
    const std::vector<double> channel_0(dx.begin(), dx.begin() + 5), rest(dx.begin() + 5, dx.end());
    CHECK(channel_0 == std::vector<double>{2, 4, 2, 4, 2});
    CHECK(std::ranges::all_of(rest, [](double v) { return v == 0.0; }));
    const auto dw = conv.weight_gradients();
    CHECK(std::vector<double>(dw.begin(), dw.begin() + 3) == std::vector<double>{6, 9, 6});
}

TEST_CASE("Worked example EX28: a weight gradient on Winograd's F(4, 3), transposed", "[layers][conv][worked]") {
    // 8 channels and 8 filters of 3x3, padding 1 (72 terms a sum, filters in whole vectors of
    // doubles: FORMULAS.md section 24's path), on a 4x1 input: only channel 0 of the input and
    // filter 0's deltas are non-zero, so filter 0's gradient on channel 0, middle column, is
    // EX28's (20, 30, 20), its outer columns read the padding, and every other gradient is zero.
    // 1/6 and 1/24 are not exact in binary: to 1e-12.
    cnn::Conv2D<double> conv{8, 8, {3, 3}, {.stride = 1, .padding = 1}};
    std::ranges::fill(conv.parameters(), 0.5);
    Tensor<double, 4> x({1, 8, 4, 1}, 0.0), delta({1, 8, 4, 1}, 0.0);
    for (std::size_t u = 0; u < 4; ++u) {
        x(0, 0, u, 0) = static_cast<double>(u + 1);
        delta(0, 0, u, 0) = static_cast<double>(u + 1);
    }
    Tensor<double, 4> y(conv.output_shape(x.shape())), dx(x.shape());
    REQUIRE(y.shape() == x.shape());
    cnn::Scratch<double> scratch;
    conv.forward(x, y, scratch);
    for (const bool with_dx : {true, false}) {
        INFO((with_dx ? "with" : "without") << " the input gradient");
        std::ranges::fill(conv.gradients(), 0.0);
        conv.backward(x, y, delta, with_dx ? dx.view() : cnn::TensorView<double, 4>{nullptr, x.shape()}, scratch);
        const auto dw = conv.weight_gradients();
        for (std::size_t k = 0; k < 8; ++k)
            for (std::size_t c = 0; c < 8; ++c)
                for (std::size_t m = 0; m < 3; ++m)
                    for (std::size_t n = 0; n < 3; ++n) {
                        const double expected = k == 0 && c == 0 && n == 1 ? std::array{20.0, 30.0, 20.0}[m] : 0.0;
                        CHECK(dw(k, c, m, n) == Approx(expected).margin(1e-12));
                    }
        CHECK(conv.bias_gradients()[0] == 10.0);
    }
}

TEST_CASE("Worked example EX22: pooling with padding", "[layers][pool][worked]") {
    cnn::Scratch<double> scratch;
    const Tensor<double, 4> ones({1, 1, 3, 3}, 1.0);
    const auto values = [](const Tensor<double, 4>& t) { return std::vector<double>(t.begin(), t.end()); };

    cnn::MaxPool<double> max_pool{2, {.stride = 1, .padding = 1}};
    const Tensor<double, 4> negative({1, 1, 2, 2}, {-1, -2, -3, -4});
    Tensor<double, 4> y(max_pool.output_shape(negative.shape())), dx(negative.shape());
    REQUIRE(y.shape() == Shape<4>{1, 1, 3, 3});
    max_pool.forward(negative, y, scratch);
    CHECK(values(y) == std::vector<double>{-1, -1, -2, -1, -1, -2, -3, -3, -4});  // padding never wins
    max_pool.backward(negative, y, ones, dx, scratch);
    CHECK(values(dx) == std::vector<double>{4, 2, 2, 1});

    const Tensor<double, 4> x({1, 1, 2, 2}, {1, 2, 3, 4});
    cnn::MeanPool<double> counted{2, {.stride = 1, .padding = 1}};
    counted.forward(x, y, scratch);
    CHECK(values(y) == std::vector<double>{0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1});
    counted.backward(x, y, ones, dx, scratch);
    CHECK(values(dx) == std::vector<double>{1, 1, 1, 1});

    cnn::MeanPool<double> not_counted{2, {.stride = 1, .padding = 1, .count_padding = false}};
    not_counted.forward(x, y, scratch);
    CHECK(values(y) == std::vector<double>{1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4});
    not_counted.backward(x, y, ones, dx, scratch);
    CHECK(values(dx) == std::vector<double>{2.25, 2.25, 2.25, 2.25});
}

TEST_CASE("Pooling with padding: gradients, errors, records", "[layers][pool]") {
    std::mt19937_64 rng(59);
    cnn::MaxPool<double> max_pool{{3, 2}, {.stride = 2, .padding = {1, 1}}};
    cnn::test::check_layer_gradients(max_pool, {2, 3, 7, 6}, rng);
    cnn::MeanPool<double> counted{{3, 3}, {.stride = 2, .padding = 1}};
    cnn::test::check_layer_gradients(counted, {2, 2, 6, 5}, rng);
    cnn::MeanPool<double> not_counted{{2, 3}, {.stride = 1, .padding = {1, 0}, .count_padding = false}};
    cnn::test::check_layer_gradients(not_counted, {1, 2, 4, 5}, rng);

    CHECK(max_pool.describe() == "MaxPool(3x2, stride 2, padding 1)");
    CHECK(not_counted.describe() == "MeanPool(2x3, stride 1, padding 1x0, padding not counted)");
    CHECK(max_pool.output_shape({2, 3, 7, 6}) == Shape<4>{2, 3, 4, 4});  // (7 + 2 - 3) / 2 + 1, (6 + 2 - 2) / 2 + 1
    CHECK(cnn::MeanPool<float>{2}.output_shape({1, 1, 5, 5}) == Shape<4>{1, 1, 2, 2});  // the default stride: the window
    CHECK(cnn::MaxPool<float>{3, {.padding = 1}}.output_shape({1, 1, 1, 1}) == Shape<4>{1, 1, 1, 1});
    CHECK_THROWS_WITH((cnn::MaxPool<float>{3, {.padding = 2}}),
                      "MaxPool: padding 2 in height is more than half the window's 3 (a window could then cover "
                      "padding only)");
    CHECK_THROWS_WITH((cnn::MeanPool<float>{{2, 4}, {.padding = {1, 3}}}),
                      "MeanPool: padding 3 in width is more than half the window's 4 (a window could then cover "
                      "padding only)");
    CHECK_THROWS_WITH((cnn::MeanPool<float>{2, {.padding = -1}}), "MeanPool: padding must be at least 0, got -1");
    CHECK_THROWS_WITH((cnn::MeanPool<float>{2, {.stride = 0}}), "MeanPool: stride must be at least 1, got 0");
    CHECK_THROWS_WITH((cnn::MaxPool<float>{2, {.count_padding = false}}),
                      "MaxPool: count_padding = false is a MeanPool setting (padding never wins a max)");
    CHECK_THROWS_WITH(cnn::MaxPool<float>(3, {.padding = 1}).output_shape({1, 1, 0, 4}),
                      "MaxPool(3x3, stride 3, padding 1): the window is larger than the padded input of input "
                      "[1, 1, 0, 4]");

    // The model file records the padding, and a network without it does not take the file.
    const auto dir = cnn::test::scratch_directory("pool-padding");
    const auto make = [](std::ptrdiff_t padding, bool count) {
        return cnn::Sequential{cnn::Conv2D<float>{1, 2, 3, {.padding = 1}}, cnn::ReLU<float>{},
                               cnn::MaxPool<float>{3, {.stride = 2, .padding = padding}},
                               cnn::MeanPool<float>{3, {.stride = 2, .padding = 1, .count_padding = count}},
                               cnn::Flatten<float>{}, cnn::Dense<float>{8, 2}};
    };
    auto net = make(1, false);
    cnn::save_model(net, dir / "padded.cnn");
    auto same = make(1, false);
    CHECK_NOTHROW(cnn::load_model(same, dir / "padded.cnn"));
    CHECK(std::ranges::equal(same.parameter_groups()[0].values, net.parameter_groups()[0].values));
    auto unpadded = make(0, false);
    CHECK_THROWS_WITH(cnn::load_model(unpadded, dir / "padded.cnn"),
                      Catch::Contains("MaxPool(3x3, stride 2, padding 1) in the file and MaxPool(3x3, stride 2) in "
                                      "this network"));
    auto counted_net = make(1, true);
    CHECK_THROWS_WITH(cnn::load_model(counted_net, dir / "padded.cnn"),
                      Catch::Contains("MeanPool(3x3, stride 2, padding 1, padding not counted) in the file and "
                                      "MeanPool(3x3, stride 2, padding 1) in this network"));
}

TEST_CASE("Worked example EX23: a depthwise convolution", "[layers][conv][worked]") {
    const Tensor<double, 4> x({1, 2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
    cnn::Conv2D<double> depthwise{2, 2, 2, {.bias = false, .groups = 2}};
    REQUIRE(depthwise.weights().shape() == Shape<4>{2, 1, 2, 2});
    std::ranges::copy(std::vector<double>{1, 0, 0, 1, 0, 1, 1, 0}, depthwise.parameters().begin());
    cnn::Scratch<double> scratch;
    Tensor<double, 4> y(depthwise.output_shape(x.shape())), dx(x.shape());
    REQUIRE(y.shape() == Shape<4>{1, 2, 1, 1});
    depthwise.forward(x, y, scratch);
    CHECK(std::vector<double>(y.begin(), y.end()) == std::vector<double>{5, 13});
    const Tensor<double, 4> delta({1, 2, 1, 1}, {1, 2});
    std::ranges::fill(depthwise.gradients(), 0.0);
    depthwise.backward(x, y, delta, dx, scratch);
    CHECK(std::vector<double>(dx.begin(), dx.end()) == std::vector<double>{1, 0, 0, 1, 0, 2, 2, 0});
    CHECK(std::vector<double>(depthwise.gradients().begin(), depthwise.gradients().end()) ==
          std::vector<double>{1, 2, 3, 4, 10, 12, 14, 16});
}

TEST_CASE("Grouped convolution: gradients, errors, records, fusion", "[layers][conv]") {
    std::mt19937_64 rng(61);
    cnn::Conv2D<double> grouped{4, 6, {3, 2}, {.stride = {2, 1}, .padding = 1, .groups = 2}};
    cnn::test::check_layer_gradients(grouped, {2, 4, 6, 5}, rng);
    cnn::Conv2D<double> depthwise{3, 6, 3, {.padding = 1, .dilation = 2, .bias = false, .groups = 3}};
    cnn::test::check_layer_gradients(depthwise, {2, 3, 5, 6}, rng);

    CHECK(grouped.describe() == "Conv2D(4->6, 3x2, stride 2x1, padding 1, groups 2)");
    CHECK(grouped.parameters().size() == 6 * 2 * 3 * 2 + 6);
    CHECK(grouped.fan_in() == 2 * 3 * 2);
    CHECK(depthwise.describe() == "Conv2D(3->6, 3x3, stride 1, padding 1, dilation 2, groups 3, no bias)");
    CHECK_THROWS_WITH((cnn::Conv2D<float>{4, 6, 3, {.groups = 3}}),
                      "Conv2D: groups 3 must divide the 4 input channels and the 6 filters");
    CHECK_THROWS_WITH((cnn::Conv2D<float>{4, 6, 3, {.groups = 4}}),
                      "Conv2D: groups 4 must divide the 4 input channels and the 6 filters");
    CHECK_THROWS_WITH((cnn::Conv2D<float>{4, 4, 3, {.groups = 0}}), "Conv2D: groups must be at least 1, got 0");

    const auto dir = cnn::test::scratch_directory("conv-groups");
    const auto make = [](std::ptrdiff_t groups) {
        return cnn::Sequential{cnn::Conv2D<float>{4, 4, 3, {.padding = 1, .groups = groups}}, cnn::GlobalAvgPool<float>{},
                               cnn::Flatten<float>{}, cnn::Dense<float>{4, 2}};
    };
    auto net = make(4);
    cnn::save_model(net, dir / "depthwise.cnn");
    auto same = make(4);
    CHECK_NOTHROW(cnn::load_model(same, dir / "depthwise.cnn"));
    CHECK(std::ranges::equal(same.parameter_groups()[0].values, net.parameter_groups()[0].values));
    auto dense = make(1);
    CHECK_THROWS_WITH(cnn::load_model(dense, dir / "depthwise.cnn"),
                      Catch::Contains("Conv2D(4->4, 3x3, stride 1, padding 1, groups 4) in the file and "
                                      "Conv2D(4->4, 3x3, stride 1, padding 1) in this network"));
}
