// Finite-difference gradient checks (cnn::gradient_check, in double) on every
// layer's input gradient and parameter gradients, over random shapes that
// include strides 2 and 3, padding 1 and 2, non-square inputs and filters,
// exact and inexact divisions and overlapping pools.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <random>

#include "test_support.hpp"

using cnn::Shape;
using cnn::Tensor;

namespace {

std::size_t pick(std::mt19937_64& rng, std::size_t low, std::size_t high) {
    return std::uniform_int_distribution<std::size_t>(low, high)(rng);
}

struct ConvCase {
    std::size_t channels, filters, kernel_h, kernel_w, stride, padding, height, width;
};

}  // namespace

TEST_CASE("gradient_check catches a wrong gradient", "[gradients]") {
    std::vector<double> point{1.0, 2.0, 3.0};
    const auto loss = [&] { return point[0] * point[0] + 3 * point[1] + point[2] * point[1]; };
    const std::vector<double> right{2.0, 3.0 + 3.0, 2.0};
    const std::vector<double> wrong{2.0, 3.0 + 3.0, 2.5};
    CHECK(cnn::gradient_check<double>(loss, point, right).relative_error <= 1e-9);
    const auto result = cnn::gradient_check<double>(loss, point, wrong);
    CHECK(result.relative_error > 0.05);
    CHECK(result.worst_index == 2);
    CHECK(point == std::vector<double>{1.0, 2.0, 3.0});  // restored
}

TEST_CASE("Conv2D gradients match finite differences", "[gradients][conv]") {
    std::mt19937_64 rng(2024);
    // Hand-picked shapes first: each names what it covers.
    std::vector<ConvCase> cases{
        {1, 1, 3, 3, 1, 0, 5, 5},  // the article's simplest case
        {2, 3, 3, 3, 2, 1, 7, 9},  // stride 2, padding 1, non-square input
        {3, 2, 3, 2, 3, 2, 8, 7},  // stride 3, padding 2, non-square filter, inexact division
        {2, 2, 2, 4, 2, 0, 6, 9},  // inexact division in both axes
        {1, 2, 2, 2, 1, 2, 3, 3},  // padding larger than F - 1
        {3, 4, 5, 5, 1, 2, 6, 6},  // "same" padding
        {2, 1, 1, 1, 2, 0, 5, 4},  // 1x1 filter with stride
    };
    for (int i = 0; i < 12; ++i) {  // and random ones
        ConvCase c{pick(rng, 1, 3), pick(rng, 1, 4), pick(rng, 1, 4), pick(rng, 1, 4), pick(rng, 1, 3),
                   pick(rng, 0, 2), 0, 0};
        c.height = pick(rng, std::max<std::size_t>(1, c.kernel_h), 9);
        c.width = pick(rng, std::max<std::size_t>(1, c.kernel_w), 9);
        cases.push_back(c);
    }
    for (const ConvCase& c : cases) {
        cnn::Conv2D<double> conv{c.channels, c.filters, {c.kernel_h, c.kernel_w},
                                 {.stride = static_cast<std::ptrdiff_t>(c.stride), .padding = static_cast<std::ptrdiff_t>(c.padding)}};
        cnn::test::check_layer_gradients(conv, {2, c.channels, c.height, c.width}, rng);
    }
}

TEST_CASE("Dense gradients match finite differences", "[gradients][dense]") {
    std::mt19937_64 rng(7);
    cnn::Dense<double> flat{13, 5};
    cnn::test::check_layer_gradients(flat, {3, 13, 1, 1}, rng);
    cnn::Dense<double> from_maps{2 * 3 * 4, 6};  // takes a C x H x W input directly
    cnn::test::check_layer_gradients(from_maps, {2, 2, 3, 4}, rng);
}

TEST_CASE("ReLU, Flatten and pooling input gradients match finite differences", "[gradients][pool]") {
    std::mt19937_64 rng(11);
    cnn::ReLU<double> relu;
    cnn::test::check_layer_gradients(relu, {2, 3, 5, 7}, rng);
    cnn::Flatten<double> flatten;
    cnn::test::check_layer_gradients(flatten, {2, 3, 4, 5}, rng);

    struct PoolCase {
        std::ptrdiff_t window_h, window_w, stride;
        std::size_t height, width;
    };
    const std::vector<PoolCase> pools{
        {2, 2, 2, 8, 8},  // the classic non-overlapping case
        {3, 3, 2, 7, 9},  // overlapping windows
        {3, 3, 3, 8, 7},  // inexact division: trailing rows and columns unused
        {2, 3, 1, 5, 6},  // non-square window, stride 1
        {3, 2, 2, 6, 5},
    };
    for (const PoolCase& p : pools) {
        cnn::MaxPool<double> max_pool{{p.window_h, p.window_w}, p.stride};
        cnn::test::check_layer_gradients(max_pool, {2, 2, p.height, p.width}, rng);
        cnn::MeanPool<double> mean_pool{{p.window_h, p.window_w}, p.stride};
        cnn::test::check_layer_gradients(mean_pool, {2, 2, p.height, p.width}, rng);
    }
}

TEST_CASE("The flipped-filter full convolution and the direct chain-rule sum agree", "[gradients][conv]") {
    std::mt19937_64 rng(99);
    for (int trial = 0; trial < 40; ++trial) {
        const std::size_t channels = pick(rng, 1, 3), filters = pick(rng, 1, 3), fh = pick(rng, 1, 5),
                          fw = pick(rng, 1, 5), stride = pick(rng, 1, 3), padding = pick(rng, 0, 3);
        const std::size_t height = pick(rng, std::max<std::size_t>(1, fh), 10);
        const std::size_t width = pick(rng, std::max<std::size_t>(1, fw), 10);
        const std::size_t out_h = cnn::reference::output_extent(height, fh, padding, stride).extent;
        const std::size_t out_w = cnn::reference::output_extent(width, fw, padding, stride).extent;
        const auto w = cnn::test::random_tensor<double>(Shape<4>{filters, channels, fh, fw}, rng);
        const auto delta = cnn::test::random_tensor<double>(Shape<3>{filters, out_h, out_w}, rng);
        Tensor<double, 3> flipped({channels, height, width}), direct({channels, height, width});
        cnn::reference::conv2d_backward_input<double>(delta, w, stride, padding, flipped);
        cnn::reference::conv2d_backward_input_direct<double>(delta, w, stride, padding, direct);
        INFO("C=" << channels << " K=" << filters << " F=" << fh << "x" << fw << " S=" << stride << " P=" << padding
                  << " input " << height << "x" << width);
        CHECK(cnn::test::max_abs_difference(flipped, direct) <= 1e-12);
    }
}
