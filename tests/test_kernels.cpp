// The fast kernels (GEMM, convolution, dense, pooling) against plain loops and
// the reference, on random shapes. This file is built several times (see
// tests/CMakeLists.txt), once per kernel variant (AVX-512, AVX2+FMA, portable):
// each program pins its variant before any test runs and checks that the kernels
// run in it.
#include <cnn/cnn.hpp>
#include <cnn/kernels/gemm.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "test_support.hpp"

using cnn::Shape;
using cnn::Tensor;

namespace {

cnn::kernels::Variant variant_named(std::string_view name) {
    for (const auto v : {cnn::kernels::Variant::portable, cnn::kernels::Variant::avx2, cnn::kernels::Variant::avx512})
        if (name == cnn::kernels::name(v)) return v;
    throw std::invalid_argument("no kernel variant is called " + std::string(name));
}

// Before main: every test of this program runs in the variant it was built for.
const bool variant_pinned = (cnn::kernels::use_variant(variant_named(CNN_EXPECTED_KERNEL)), true);

}  // namespace

TEST_CASE("The kernels run in the variant this program pins", "[kernels]") {
    REQUIRE(variant_pinned);
    CHECK(std::string(cnn::kernels::gemm_kernel_name()) == CNN_EXPECTED_KERNEL);
    CHECK(cnn::kernels::active_variant() == variant_named(CNN_EXPECTED_KERNEL));
}

TEMPLATE_TEST_CASE("GEMM matches a plain triple loop for any shape, layout and accumulation", "[kernels]", float,
                   double) {
    std::mt19937_64 rng(31);
    const auto pick = [&](std::size_t low, std::size_t high) {
        return std::uniform_int_distribution<std::size_t>(low, high)(rng);
    };
    // {100, 40, 256} and {102, 70, 512} fill the whole block of packed A with panels 4 and 6
    // rows high, whose last transposed columns once ran past it into packed B.
    std::vector<std::array<std::size_t, 3>> shapes{{1, 1, 1},       {12, 32, 256},   {13, 33, 257},
                                                   {64, 196, 288},  {300, 70, 600},  {5, 2100, 3},
                                                   {100, 40, 256},  {102, 70, 512}};
    for (int i = 0; i < 20; ++i) shapes.push_back({pick(1, 40), pick(1, 90), pick(1, 300)});
    for (const auto& [m, n, k] : shapes) {
        for (int layout = 0; layout < 4; ++layout) {
            const bool a_transposed = layout & 1, b_transposed = layout & 2;
            INFO("m " << m << " n " << n << " k " << k << ", A" << (a_transposed ? "^T" : "") << " B"
                      << (b_transposed ? "^T" : ""));
            const auto a = cnn::test::random_tensor<TestType>(Shape<1>{m * k}, rng);
            const auto b = cnn::test::random_tensor<TestType>(Shape<1>{k * n}, rng);
            auto c = cnn::test::random_tensor<TestType>(Shape<1>{m * (n + 3)}, rng);  // ldc = n + 3
            const auto a_at = [&](std::size_t i, std::size_t p) { return a_transposed ? a(p * m + i) : a(i * k + p); };
            const auto b_at = [&](std::size_t p, std::size_t j) { return b_transposed ? b(j * k + p) : b(p * n + j); };
            Tensor<double, 1> expected({m * (n + 3)});
            const bool accumulate = (m + n + k + static_cast<std::size_t>(layout)) % 2 == 0;
            for (std::size_t i = 0; i < m; ++i)
                for (std::size_t j = 0; j < n + 3; ++j) {
                    double sum = accumulate || j >= n ? static_cast<double>(c(i * (n + 3) + j)) : 0.0;
                    if (j < n)
                        for (std::size_t p = 0; p < k; ++p) sum += static_cast<double>(a_at(i, p)) * b_at(p, j);
                    expected(i * (n + 3) + j) = sum;
                }
            cnn::kernels::gemm<TestType>(m, n, k, a.data(), a_transposed ? 1 : static_cast<std::ptrdiff_t>(k),
                                         a_transposed ? static_cast<std::ptrdiff_t>(m) : 1, b.data(),
                                         b_transposed ? 1 : static_cast<std::ptrdiff_t>(n),
                                         b_transposed ? static_cast<std::ptrdiff_t>(k) : 1, c.data(), n + 3,
                                         accumulate ? cnn::kernels::Accumulate::yes : cnn::kernels::Accumulate::no);
            // The sums have k terms of size ~1: scale the tolerance with k.
            const double tolerance = cnn::test::kernel_tolerance<TestType>() * static_cast<double>(k + 1);
            CHECK(cnn::test::max_abs_difference(c, expected) <= tolerance);
        }
    }
}

TEMPLATE_TEST_CASE("gemm_columns reads B's columns at their offsets and sums as gemm does", "[kernels]", float,
                   double) {
    std::mt19937_64 rng(37);
    const auto pick = [&](std::size_t low, std::size_t high) {
        return std::uniform_int_distribution<std::size_t>(low, high)(rng);
    };
    // The ResNet's first-stage weight gradient (16 x 144, 838 positions), then random shapes,
    // with columns that overlap as the shifted rows of an implicit im2col do.
    std::vector<std::array<std::size_t, 3>> shapes{{16, 144, 838}, {64, 576, 61}, {7, 33, 300}};
    for (int i = 0; i < 12; ++i) shapes.push_back({pick(1, 30), pick(1, 70), pick(1, 400)});
    for (const auto& [m, n, k] : shapes) {
        INFO("m " << m << " n " << n << " k " << k);
        const std::size_t room = k + pick(0, 3 * k);
        const auto buffer = cnn::test::random_tensor<TestType>(Shape<1>{room}, rng);
        std::vector<std::size_t> offsets(n);
        for (auto& o : offsets) o = pick(0, room - k);
        const auto a = cnn::test::random_tensor<TestType>(Shape<1>{m * k}, rng);
        Tensor<TestType, 1> b_transposed({n * k});  // column j of B, contiguous
        for (std::size_t j = 0; j < n; ++j)
            for (std::size_t p = 0; p < k; ++p) b_transposed(j * k + p) = buffer(offsets[j] + p);
        for (const auto accumulate : {cnn::kernels::Accumulate::no, cnn::kernels::Accumulate::yes}) {
            const auto start = cnn::test::random_tensor<TestType>(Shape<1>{m * n}, rng);
            Tensor<TestType, 1> c = start, expected = start;
            cnn::kernels::gemm_columns<TestType>(m, n, k, a.data(), static_cast<std::ptrdiff_t>(k), 1, buffer.data(),
                                                 offsets.data(), c.data(), n, accumulate);
            cnn::kernels::gemm<TestType>(m, n, k, a.data(), static_cast<std::ptrdiff_t>(k), 1, b_transposed.data(), 1,
                                         static_cast<std::ptrdiff_t>(k), expected.data(), n, accumulate);
            CHECK(std::ranges::equal(c, expected));
            double worst = 0;
            for (std::size_t i = 0; i < m; ++i)
                for (std::size_t j = 0; j < n; ++j) {
                    double sum = accumulate == cnn::kernels::Accumulate::yes ? static_cast<double>(start(i * n + j)) : 0.0;
                    for (std::size_t p = 0; p < k; ++p)
                        sum += static_cast<double>(a(i * k + p)) * static_cast<double>(buffer(offsets[j] + p));
                    worst = std::max(worst, std::abs(sum - static_cast<double>(c(i * n + j))));
                }
            CHECK(worst <= cnn::test::kernel_tolerance<TestType>() * static_cast<double>(k + 1));
        }
    }
}

namespace {

struct ConvCase {
    std::size_t channels, filters, fh, fw, stride, padding, batch, height, width;
};

// One convolution on a batch against the reference, sample by sample: forward, input
// gradient, and the weight and bias gradients summed over the batch.
template <class T>
void check_conv_against_reference(const ConvCase& s, std::mt19937_64& rng) {
    cnn::Conv2D<T> conv{s.channels, s.filters, {s.fh, s.fw},
                        {.stride = static_cast<std::ptrdiff_t>(s.stride), .padding = static_cast<std::ptrdiff_t>(s.padding)}};
    INFO(conv.describe() << " on a batch of " << s.batch << " x " << s.height << "x" << s.width);
    cnn::test::fill_uniform<T, 1>(cnn::TensorView<T, 1>(conv.parameters().data(), {conv.parameters().size()}), rng);
    const auto x = cnn::test::random_tensor<T>(Shape<4>{s.batch, s.channels, s.height, s.width}, rng);
    Tensor<T, 4> y(conv.output_shape(x.shape()));
    cnn::Scratch<T> scratch;
    conv.forward(x, y, scratch);

    const auto dy = cnn::test::random_tensor<T>(y.shape(), rng);
    Tensor<T, 4> dx(x.shape());
    std::fill(conv.gradients().begin(), conv.gradients().end(), T{0});
    conv.backward(x, y, dy, dx, scratch);

    Tensor<T, 4> grad_w(conv.weights().shape());
    std::vector<T> grad_b(s.filters, T{0});
    for (std::size_t n = 0; n < s.batch; ++n) {
        Tensor<T, 3> alone(y[n].shape());
        cnn::reference::conv2d_forward<T>(x[n], conv.weights(), conv.bias(), s.stride, s.padding, alone);
        CHECK(cnn::test::max_relative_difference(y[n], alone) <= cnn::test::kernel_tolerance<T>());
        Tensor<T, 3> grad_x(x[n].shape());
        cnn::reference::conv2d_backward_input<T>(dy[n], conv.weights(), s.stride, s.padding, grad_x);
        CHECK(cnn::test::max_relative_difference(dx[n], grad_x) <= cnn::test::kernel_tolerance<T>());
        cnn::reference::conv2d_weight_grad<T>(x[n], dy[n], s.stride, s.padding, grad_w, grad_b);
    }
    CHECK(cnn::test::max_relative_difference(conv.weight_gradients(), grad_w) <= cnn::test::kernel_tolerance<T>());
    const Tensor<T, 1> bias_grad({s.filters}, std::span<const T>(grad_b));
    const Tensor<T, 1> fast_bias_grad({s.filters}, std::span<const T>(conv.bias_gradients()));
    CHECK(cnn::test::max_relative_difference(fast_bias_grad, bias_grad) <= cnn::test::kernel_tolerance<T>());

    // Without an input gradient (as for a network's first layer) the parameter gradients
    // take another path for some shapes; they must be the same.
    std::fill(conv.gradients().begin(), conv.gradients().end(), T{0});
    conv.backward(x, y, dy, {}, scratch);
    CHECK(cnn::test::max_relative_difference(conv.weight_gradients(), grad_w) <= cnn::test::kernel_tolerance<T>());
    const Tensor<T, 1> first_layer_bias_grad({s.filters}, std::span<const T>(conv.bias_gradients()));
    CHECK(cnn::test::max_relative_difference(first_layer_bias_grad, bias_grad) <= cnn::test::kernel_tolerance<T>());
}

}  // namespace

TEMPLATE_TEST_CASE("Conv2D's fast kernels match the reference on random shapes", "[layers][kernels]", float, double) {
    std::mt19937_64 rng(5);
    const auto pick = [&](std::size_t low, std::size_t high) {
        return std::uniform_int_distribution<std::size_t>(low, high)(rng);
    };
    // The example networks' convolutions, on batches that end in a partial chunk of samples.
    for (const ConvCase& s : {ConvCase{1, 6, 5, 5, 1, 2, 9, 28, 28}, ConvCase{6, 16, 5, 5, 1, 0, 10, 14, 14},
                              ConvCase{1, 32, 3, 3, 1, 1, 9, 28, 28}, ConvCase{32, 64, 3, 3, 1, 1, 9, 14, 14}})
        check_conv_against_reference<TestType>(s, rng);
    // Small random shapes: every stride, padding wider than the kernel, non-square everything.
    for (int trial = 0; trial < 25; ++trial) {
        ConvCase s{pick(1, 5), pick(1, 7), pick(1, 5), pick(1, 5), pick(1, 3), pick(0, 3), pick(1, 19), 0, 0};
        s.height = pick(std::max<std::size_t>(1, s.fh), 13);
        s.width = pick(std::max<std::size_t>(1, s.fw), 13);
        check_conv_against_reference<TestType>(s, rng);
    }
    // Larger random shapes: more channels and filters than a register tile, odd sizes.
    for (int trial = 0; trial < 8; ++trial) {
        ConvCase s{pick(1, 24), pick(1, 40), pick(1, 5), pick(1, 5), pick(1, 2), pick(0, 2), pick(1, 12), 0, 0};
        s.height = pick(std::max<std::size_t>(1, s.fh), 31);
        s.width = pick(std::max<std::size_t>(1, s.fw), 31);
        check_conv_against_reference<TestType>(s, rng);
    }
    // Stride 2, whose rows im2col gathers and col2im adds back every second value (by
    // permutations with AVX-512): the ResNet's downsampling 3x3 and its 1x1 shortcut (28x28 to
    // 14x14, rows reading 27 values: two vectors of floats), rows of 20 outputs (a whole vector
    // of floats and part of one) and 2x2 filters on an odd width (the last value of a row read).
    for (const ConvCase& s : {ConvCase{16, 32, 3, 3, 2, 1, 3, 28, 28}, ConvCase{16, 32, 1, 1, 2, 0, 3, 28, 28},
                              ConvCase{3, 5, 3, 3, 2, 1, 3, 9, 40}, ConvCase{2, 4, 2, 2, 2, 0, 2, 5, 37}})
        check_conv_against_reference<TestType>(s, rng);
    // Strides above 1 on at least 64 terms a sum, lowered on the input's phases in both passes
    // (FORMULAS.md section 23): the ResNet's second downsampling (7x7 outputs: chunks of four
    // samples, the last one part-full), no padding on a width whose last column no output reads,
    // stride 3 with a 4x4 filter (three phases per axis, one tap of four in the second), a 1x1
    // filter (one phase of four) on 70 channels, a 5x5 filter with padding 3 (past its half), 2x2
    // filters (a phase per tap) on odd sizes, and a first ResNet layer's shape just below 64
    // terms (a 3x3 on 7 channels: 63) on the im2col product.
    for (const ConvCase& s : {ConvCase{32, 64, 3, 3, 2, 1, 5, 14, 14}, ConvCase{8, 12, 3, 3, 2, 0, 4, 13, 12},
                              ConvCase{10, 7, 4, 4, 3, 2, 3, 17, 10}, ConvCase{70, 5, 1, 1, 2, 0, 3, 9, 9},
                              ConvCase{7, 9, 5, 5, 2, 3, 2, 9, 16}, ConvCase{16, 16, 2, 2, 2, 0, 3, 9, 7},
                              ConvCase{7, 8, 3, 3, 2, 1, 3, 10, 11}})
        check_conv_against_reference<TestType>(s, rng);
    // "Same" convolutions that run on the implicit lowering in both passes: the ResNet's three
    // stages, a 1x1 on 64 channels, a 5x5 on a non-square plane; and one just below the
    // threshold (a 3x3 on 7 channels: 63 terms a sum), on the im2col product.
    for (const ConvCase& s : {ConvCase{16, 16, 3, 3, 1, 1, 5, 28, 28}, ConvCase{32, 32, 3, 3, 1, 1, 5, 14, 14},
                              ConvCase{64, 64, 3, 3, 1, 1, 6, 7, 7}, ConvCase{64, 80, 1, 1, 1, 0, 5, 9, 11},
                              ConvCase{12, 8, 5, 5, 1, 2, 6, 11, 17}, ConvCase{7, 9, 3, 3, 1, 1, 5, 10, 12}})
        check_conv_against_reference<TestType>(s, rng);
    // The weight gradient by broadcasts from x~ (weight_gradient_by_taps: "same" filters three
    // columns wide, filters in whole vectors): blocks of filters of every width (80 filters: one
    // block of 4 vectors and one of 1 with AVX-512; 48: one of 3), and tiles of row groups cut
    // short (21 and 9 row groups).
    for (const ConvCase& s : {ConvCase{5, 80, 3, 3, 1, 1, 5, 9, 13}, ConvCase{7, 48, 3, 3, 1, 1, 3, 6, 11},
                              ConvCase{3, 16, 3, 3, 1, 1, 4, 15, 4}, ConvCase{2, 32, 3, 3, 1, 1, 2, 1, 1}})
        check_conv_against_reference<TestType>(s, rng);
    // The weight gradient on F(4, 3) transposed (FORMULAS.md section 24: 3x3 "same" filters on
    // 8 channels or more, filters in whole vectors, output heights of 3, 4 or from 7 rows): last
    // tiles with 3, 2, 1 and 4 rows of outputs (7, 10, 9 and 12 rows), a single tile (4 and 3
    // rows), blocks of filters of every width (16, 48, 80: one vector; three; four and one), and
    // batches that end in a part-full chunk of samples.
    for (const ConvCase& s : {ConvCase{8, 16, 3, 3, 1, 1, 5, 7, 9}, ConvCase{9, 48, 3, 3, 1, 1, 3, 10, 6},
                              ConvCase{8, 80, 3, 3, 1, 1, 2, 9, 5}, ConvCase{16, 64, 3, 3, 1, 1, 6, 12, 12},
                              ConvCase{12, 32, 3, 3, 1, 1, 6, 4, 17}, ConvCase{10, 16, 3, 3, 1, 1, 3, 3, 3}})
        check_conv_against_reference<TestType>(s, rng);
    // Winograd's F(4, 3) and F(2, 3) down the rows (FORMULAS.md section 22), in the forward pass
    // and (onto 8 channels or more) the input gradient: chunks of several samples
    // (7x7 planes) that end part-full; output heights of every remainder by 4 (7, 8, 15, 5, 14);
    // no padding, padding 2 (past the filter's half); 3x1, 3x3 and 3x5 filters; and output
    // heights of 5, 1 and 2, which take F(2, 3) (a 1x1 plane: all rows of its tile but one padding).
    for (const ConvCase& s : {ConvCase{16, 16, 3, 3, 1, 1, 19, 7, 7}, ConvCase{16, 20, 3, 3, 1, 0, 11, 9, 12},
                              ConvCase{48, 12, 3, 1, 1, 2, 3, 6, 5}, ConvCase{10, 24, 3, 5, 1, 2, 4, 13, 9},
                              ConvCase{16, 16, 3, 3, 1, 1, 3, 5, 6}, ConvCase{24, 48, 3, 3, 1, 1, 3, 14, 10},
                              ConvCase{16, 16, 3, 3, 1, 1, 3, 1, 1}, ConvCase{16, 16, 3, 3, 1, 0, 4, 4, 6}})
        check_conv_against_reference<TestType>(s, rng);
}

TEMPLATE_TEST_CASE("Conv2D with per-axis stride and padding, dilation, groups and no bias matches the general reference",
                   "[layers][kernels]", float, double) {
    using T = TestType;
    std::mt19937_64 rng(6);
    const auto pick = [&](std::size_t low, std::size_t high) {
        return std::uniform_int_distribution<std::size_t>(low, high)(rng);
    };
    const std::size_t threads_before = cnn::threads();
    for (int trial = 0; trial < 90; ++trial) {
        // Half the trials grouped: G groups of up to 3 channels and filters, or depthwise
        // (G = C, one or two filters per channel); the others ordinary.
        std::size_t groups = 1, channels = pick(1, 6), filters = pick(1, 9);
        if (trial % 4 == 1) {
            groups = pick(2, 4);
            channels = groups * pick(1, 3);
            filters = groups * pick(1, 3);
        } else if (trial % 4 == 3) {
            groups = channels = pick(2, 12);
            filters = channels * pick(1, 2);
        }
        if (trial >= 60 && trial < 70) {  // depthwise on whole and partial blocks of channels (channels last)
            groups = channels = filters = pick(13, 40);
        }
        // Trials 70 to 73: ordinary "same" convolutions with a 3 x 5 filter (padding 1 and 2), or
        // 5 x 3 (padding 2 and 1), on 8 channels or more, whose passes both run on the implicit
        // lowering.
        const bool implicit = trial >= 70;
        if (implicit) {
            groups = 1;
            channels = pick(8, 11);
            filters = pick(9, 12);
        }
        // Every tenth trial a large filter (up to 7x7 = 49 taps: more than one pass of the grouped
        // kernel's 32 taps in registers, and more than its 9 taps per weight-gradient pass).
        const std::size_t largest = trial % 10 == 5 ? 7 : 4;
        std::size_t fh = pick(1, largest), fw = pick(largest == 7 ? 5 : 1, largest);
        if (trial >= 64 && trial < 70) fh = fw = 3;  // the depthwise kernels' own loops for 3 x 3 filters
        cnn::reference::ConvSpec spec{pick(1, 3), pick(1, 3), pick(0, 4), pick(0, 4), pick(1, 3), pick(1, 3)};
        if (implicit) {
            fh = 3;
            fw = 5;
            spec = {1, 1, 1, 2, 1, 1};
            if (trial >= 72) {  // 5 x 3 and 16 filters: the weight gradient by broadcasts from x~
                fh = 5;
                fw = 3;
                spec = {1, 1, 2, 1, 1, 1};
                filters = 16;
            }
        }
        // The last four: 3-row filters with unit strides on 8 channels or more, whose forward pass
        // and input gradient run Winograd's F(4, 3) or F(2, 3) down the rows (FORMULAS.md section
        // 22; the input gradient only where the padding is under the filter's size), with per-axis
        // padding up to 3 (wider than the filter's half), in the last of them a height padding of
        // 7 to 9 (taller than a first tile's rows, F(4, 3)'s 6 or F(2, 3)'s 4), and odd and even
        // output heights. (Earlier trials with 3-row filters and unit strides on two channels or
        // more take it too.)
        if (trial >= 74 && trial < 78) {
            groups = 1;
            fh = 3;
            fw = pick(1, 5);
            channels = std::max<std::size_t>(pick(8, 20), (48 + fw - 1) / fw);
            filters = pick(9, 20);
            spec = {1, 1, trial == 77 ? pick(7, 9) : pick(0, 3), pick(0, 3), 1, 1};
        }
        // The last six: ordinary convolutions with per-axis strides (one of them at least 2) on
        // 64 terms a sum or more, lowered on the input's phases (FORMULAS.md section 23), with
        // padding up to 4 (past the filter's half).
        const bool phases = trial >= 78 && trial < 84;
        if (phases) {
            groups = 1;
            spec.dilation_h = spec.dilation_w = 1;
            fh = pick(1, 5);
            fw = pick(1, 5);
            channels = std::max<std::size_t>(pick(3, 12), (64 + fh * fw - 1) / (fh * fw));
            spec.stride_h = pick(1, 3);
            spec.stride_w = spec.stride_h == 1 ? pick(2, 3) : pick(1, 3);
        }
        // The last six: 3x3 "same" convolutions on 8 channels or more with filters in whole
        // vectors (16 to 80, up to five vectors of floats), whose weight gradient runs on F(4, 3)
        // transposed (FORMULAS.md section 24) on output heights of every remainder by 4.
        const bool winograd_gradient = trial >= 84;
        if (winograd_gradient) {
            groups = 1;
            fh = fw = 3;
            spec = {1, 1, 1, 1, 1, 1};
            channels = pick(8, 14);
            filters = 16 * pick(1, 5);
        }
        const bool bias = trial % 3 != 0;
        const std::size_t span_h = (fh - 1) * spec.dilation_h + 1, span_w = (fw - 1) * spec.dilation_w + 1;
        const std::size_t lowest_h = span_h > 2 * spec.pad_h ? span_h - 2 * spec.pad_h : 1;
        const std::size_t lowest_w = span_w > 2 * spec.pad_w ? span_w - 2 * spec.pad_w : 1;
        // Trials 68 and 69: depthwise on planes larger than 32 x 32, which run channels first.
        const bool large_depthwise = trial >= 68 && trial < 70;
        const std::size_t largest_plane = large_depthwise ? 40 : 15;
        // (Heights from 7: F(4, 3) down the rows; below, 3 and 4 take it too, the others F(2, 3).)
        const std::size_t height = large_depthwise      ? 33
                                   : winograd_gradient ? pick(7, 16)
                                                       : pick(lowest_h, std::max<std::size_t>(lowest_h, largest_plane));
        const std::size_t width = pick(large_depthwise ? 32 : lowest_w, std::max<std::size_t>(lowest_w, largest_plane));
        const std::size_t batch = pick(1, 9);
        cnn::Conv2D<T> conv{channels, filters, {fh, fw},
                            {.stride = {spec.stride_h, spec.stride_w},
                             .padding = {spec.pad_h, spec.pad_w},
                             .dilation = {spec.dilation_h, spec.dilation_w},
                             .bias = bias,
                             .groups = static_cast<std::ptrdiff_t>(groups)}};
        INFO(conv.describe() << " on a batch of " << batch << " x " << height << "x" << width);
        cnn::test::fill_uniform<T, 1>(cnn::TensorView<T, 1>(conv.parameters().data(), {conv.parameters().size()}), rng);
        const auto x = cnn::test::random_tensor<T>(Shape<4>{batch, channels, height, width}, rng);
        const Shape<4> out = conv.output_shape(x.shape());
        const auto dy = cnn::test::random_tensor<T>(out, rng);

        // the reference, sample by sample
        Tensor<T, 4> y_ref(out), dx_ref(x.shape()), dw_ref(conv.weights().shape());
        std::vector<T> db_ref(bias ? filters : 0, T{0});
        for (std::size_t n = 0; n < batch; ++n) {
            cnn::reference::conv2d_forward_general<T>(x[n], conv.weights(), conv.bias(), spec, y_ref[n]);
            cnn::reference::conv2d_backward_general<T>(x[n], dy[n], conv.weights(), spec, dx_ref[n], dw_ref, db_ref);
        }
        std::vector<std::vector<T>> results;
        for (const std::size_t threads : {1, 3}) {
            cnn::set_threads(threads);
            auto layer = conv;
            Tensor<T, 4> y(out), dx(x.shape());
            cnn::Scratch<T> scratch;
            // Scratch memory as another layer leaves it: a kernel must not read what it did not write.
            std::ranges::fill(scratch.get(std::size_t{1} << 20), std::numeric_limits<T>::quiet_NaN());
            layer.forward(x, y, scratch);
            std::fill(layer.gradients().begin(), layer.gradients().end(), T{0});
            layer.backward(x, y, dy, dx, scratch);
            CHECK(cnn::test::max_relative_difference(y, y_ref) <= cnn::test::kernel_tolerance<T>());
            CHECK(cnn::test::max_relative_difference(dx, dx_ref) <= cnn::test::kernel_tolerance<T>());
            CHECK(cnn::test::max_relative_difference(layer.weight_gradients(), dw_ref) <= cnn::test::kernel_tolerance<T>());
            for (std::size_t k = 0; k < db_ref.size(); ++k)
                CHECK(layer.bias_gradients()[k] == Approx(db_ref[k]).epsilon(cnn::test::kernel_tolerance<T>() * 10));
            std::vector<T> all(y.begin(), y.end());
            all.insert(all.end(), dx.begin(), dx.end());
            all.insert(all.end(), layer.gradients().begin(), layer.gradients().end());
            results.push_back(std::move(all));
            // The error term added to what dx holds (a branch of a graph), and no error term
            // at all (the first layer): the grouped kernel's, the implicit lowering's, the phase
            // lowering's and Winograd's parameter gradients are the same bits either way. (The im2col product's may differ in the
            // last bits: its weight gradient is summed in another order when there is no error
            // term to compute.)
            if (groups == 1 && !implicit && !phases && !winograd_gradient) continue;
            const std::vector<T> gradients(layer.gradients().begin(), layer.gradients().end());
            std::ranges::fill(dx, T{1});
            std::ranges::fill(layer.gradients(), T{0});
            layer.backward(x, y, dy, dx, scratch, cnn::Accumulate::yes);
            for (T& v : dx) v -= T{1};
            CHECK(cnn::test::max_relative_difference(dx, dx_ref) <= cnn::test::kernel_tolerance<T>() * 10);
            CHECK(std::ranges::equal(layer.gradients(), gradients));
            std::ranges::fill(layer.gradients(), T{0});
            layer.backward(x, y, dy, cnn::TensorView<T, 4>{nullptr, x.shape()}, scratch);
            CHECK(std::ranges::equal(layer.gradients(), gradients));
        }
        CHECK(results[0] == results[1]);
    }
    cnn::set_threads(threads_before);
}

TEST_CASE("The general reference convolution is the specification's when the axes agree", "[kernels]") {
    std::mt19937_64 rng(7);
    for (std::size_t stride : {1, 2, 3})
        for (std::size_t padding : {0, 1, 3}) {
            const auto x = cnn::test::random_tensor<double>(Shape<3>{2, 7, 6}, rng);
            const auto w = cnn::test::random_tensor<double>(Shape<4>{3, 2, 3, 2}, rng);
            const std::vector<double> b{0.5, -1, 2};
            const cnn::reference::ConvSpec spec{stride, stride, padding, padding, 1, 1};
            const std::size_t out_h = cnn::reference::output_extent(7, 3, padding, stride).extent;
            const std::size_t out_w = cnn::reference::output_extent(6, 2, padding, stride).extent;
            Tensor<double, 3> general({3, out_h, out_w}), literal({3, out_h, out_w});
            cnn::reference::conv2d_forward_general<double>(x, w, b, spec, general);
            cnn::reference::conv2d_forward<double>(x, w, b, stride, padding, literal);
            CHECK(cnn::test::max_abs_difference(general, literal) <= 1e-12);
            const auto delta = cnn::test::random_tensor<double>(general.shape(), rng);
            Tensor<double, 3> dx_general(x.shape()), dx_literal(x.shape());
            Tensor<double, 4> dw_general(w.shape()), dw_literal(w.shape());
            std::vector<double> db_general(3), db_literal(3);
            cnn::reference::conv2d_backward_general<double>(x, delta, w, spec, dx_general, dw_general, db_general);
            cnn::reference::conv2d_backward_input<double>(delta, w, stride, padding, dx_literal);
            cnn::reference::conv2d_weight_grad<double>(x, delta, stride, padding, dw_literal, db_literal);
            CHECK(cnn::test::max_abs_difference(dx_general, dx_literal) <= 1e-12);
            CHECK(cnn::test::max_abs_difference(dw_general, dw_literal) <= 1e-12);
            for (std::size_t k = 0; k < 3; ++k) CHECK(db_general[k] == Approx(db_literal[k]).margin(1e-12));
        }
}

TEMPLATE_TEST_CASE("Dense's batched kernels match the reference", "[layers][kernels]", float, double) {
    std::mt19937_64 rng(8);
    for (const auto [batch, in, out] : {std::array<std::size_t, 3>{1, 1, 1}, {5, 7, 3}, {33, 40, 17}, {64, 100, 10}, {64, 400, 120}, {19, 3136, 128}}) {
        cnn::Dense<TestType> dense{in, out};
        cnn::test::fill_uniform<TestType, 1>(cnn::TensorView<TestType, 1>(dense.parameters().data(), {dense.parameters().size()}), rng);
        const auto x = cnn::test::random_tensor<TestType>(Shape<4>{batch, in, 1, 1}, rng);
        const auto dy = cnn::test::random_tensor<TestType>(Shape<4>{batch, out, 1, 1}, rng);
        Tensor<TestType, 4> y({batch, out, 1, 1}), dx(x.shape());
        cnn::Scratch<TestType> scratch;
        dense.forward(x, y, scratch);
        std::fill(dense.gradients().begin(), dense.gradients().end(), TestType{0});
        dense.backward(x, y, dy, dx, scratch);
        Tensor<TestType, 2> grad_w({out, in});
        std::vector<TestType> grad_b(out, TestType{0});
        for (std::size_t n = 0; n < batch; ++n) {
            Tensor<TestType, 1> net({out}), grad_x({in});
            cnn::reference::dense_forward<TestType>(dense.weights(), dense.bias(), x[n].span(), net.span());
            CHECK(cnn::test::max_relative_difference(y[n].reshape(Shape<1>{out}), net) <= cnn::test::kernel_tolerance<TestType>());
            cnn::reference::dense_backward<TestType>(dense.weights(), x[n].span(), dy[n].span(), grad_w, grad_b, grad_x.span());
            CHECK(cnn::test::max_relative_difference(dx[n].reshape(Shape<1>{in}), grad_x) <= cnn::test::kernel_tolerance<TestType>());
        }
        CHECK(cnn::test::max_relative_difference(dense.weight_gradients(), grad_w) <= cnn::test::kernel_tolerance<TestType>());
    }
}

TEMPLATE_TEST_CASE("Pooling kernels match the reference on random shapes", "[kernels]", float, double) {
    std::mt19937_64 rng(41);
    const auto pick = [&](std::size_t low, std::size_t high) {
        return std::uniform_int_distribution<std::size_t>(low, high)(rng);
    };
    for (int trial = 0; trial < 90; ++trial) {
        const std::size_t wh = trial % 3 == 0 ? 2 : pick(1, 4), ww = trial % 3 == 0 ? 2 : pick(1, 4);
        const std::size_t stride = trial % 3 == 0 ? 2 : pick(1, 4);
        // Every fifth trial without padding; the others up to half the window (PyTorch's limit).
        const bool padded = trial % 5 != 0;
        const std::size_t pad_h = padded ? pick(0, wh / 2) : 0, pad_w = padded ? pick(0, ww / 2) : 0;
        const bool count_padding = pick(0, 1) == 1;
        const cnn::reference::PoolSpec spec{{wh, ww}, stride, pad_h, pad_w, count_padding};
        // Up to 40 wide: the vector kernels take 8 windows at a time, plus a tail.
        const Shape<4> shape{pick(1, 5), pick(1, 4), pick(wh, 12), pick(ww, trial % 2 == 0 ? 40 : 12)};
        auto x = cnn::test::random_tensor<TestType>(shape, rng);
        // Every other trial on a coarse grid of values, so windows hold ties (as after ReLU):
        // the first maximum in row-major order must win.
        if (trial % 2 == 1)
            for (TestType& v : x) v = std::round(v * 2) / 2;
        cnn::Scratch<TestType> scratch;
        cnn::MaxPool<TestType> max_pool{{wh, ww}, {.stride = stride, .padding = {pad_h, pad_w}}};
        cnn::MeanPool<TestType> mean_pool{{wh, ww}, {.stride = stride, .padding = {pad_h, pad_w}, .count_padding = count_padding}};
        Tensor<TestType, 4> y(max_pool.output_shape(shape)), dx(shape), mean_y(y.shape()), mean_dx(shape);
        Tensor<TestType, 4> relu_y(y.shape()), relu_dx(shape), winners_y(y.shape()), winners_dx(shape);
        std::vector<std::uint32_t> winners(y.size());
        const auto dy = cnn::test::random_tensor<TestType>(y.shape(), rng);
        max_pool.forward(x, y, scratch);
        max_pool.backward(x, y, dy, dx, scratch);
        max_pool.forward_after_relu(x, relu_y);
        max_pool.backward_after_relu(x, relu_y, dy, relu_dx);
        // As Sequential runs it after a convolution: the places of the maxima recorded, then used.
        std::ranges::fill(winners_dx, TestType{7});  // every element must be written
        max_pool.forward_after_relu(x, winners_y, winners);
        max_pool.backward_from_winners(winners, dy, winners_dx);
        // The same without the ReLU: the max pool's own forward and backward.
        Tensor<TestType, 4> raw_y(y.shape()), raw_dx(shape);
        std::ranges::fill(raw_dx, TestType{7});
        max_pool.forward_winners(x, raw_y, winners);
        max_pool.backward_from_winners(winners, dy, raw_dx);
        mean_pool.forward(x, mean_y, scratch);
        mean_pool.backward(x, mean_y, dy, mean_dx, scratch);
        INFO(mean_pool.describe() << " input " << cnn::to_string(shape));
        {  // the same bits on 3 threads
            const std::size_t threads_before = cnn::threads();
            cnn::set_threads(3);
            Tensor<TestType, 4> y3(y.shape()), dx3(shape), mean_y3(y.shape()), mean_dx3(shape);
            Tensor<TestType, 4> relu_y3(y.shape()), relu_dx3(shape);
            max_pool.forward(x, y3, scratch);
            max_pool.backward(x, y3, dy, dx3, scratch);
            max_pool.forward_after_relu(x, relu_y3);
            max_pool.backward_after_relu(x, relu_y3, dy, relu_dx3);
            mean_pool.forward(x, mean_y3, scratch);
            mean_pool.backward(x, mean_y3, dy, mean_dx3, scratch);
            cnn::set_threads(threads_before);
            CHECK(cnn::test::max_abs_difference(y3, y) == 0);
            CHECK(cnn::test::max_abs_difference(dx3, dx) == 0);
            CHECK(cnn::test::max_abs_difference(relu_y3, relu_y) == 0);
            CHECK(cnn::test::max_abs_difference(relu_dx3, relu_dx) == 0);
            CHECK(cnn::test::max_abs_difference(mean_y3, mean_y) == 0);
            CHECK(cnn::test::max_abs_difference(mean_dx3, mean_dx) == 0);
        }
        for (std::size_t n = 0; n < shape[0]; ++n) {
            Tensor<TestType, 3> ry(y[n].shape()), rdx(x[n].shape()), rmy(y[n].shape()), rmdx(x[n].shape());
            cnn::reference::maxpool_forward<TestType>(x[n], spec, ry);
            cnn::reference::maxpool_backward<TestType>(x[n], dy[n], spec, rdx);
            cnn::reference::meanpool_forward<TestType>(x[n], spec, rmy);
            cnn::reference::meanpool_backward<TestType>(dy[n], spec, rmdx);
            if (!padded) {  // the padded reference is the spec's section-5/9 reference without padding
                Tensor<TestType, 3> sy(y[n].shape()), sdx(x[n].shape()), smy(y[n].shape()), smdx(x[n].shape());
                cnn::reference::maxpool_forward<TestType>(x[n], {wh, ww}, stride, sy);
                cnn::reference::maxpool_backward<TestType>(x[n], dy[n], {wh, ww}, stride, sdx);
                cnn::reference::meanpool_forward<TestType>(x[n], {wh, ww}, stride, smy);
                cnn::reference::meanpool_backward<TestType>(dy[n], {wh, ww}, stride, smdx);
                CHECK(cnn::test::max_abs_difference(ry, sy) == 0);
                CHECK(cnn::test::max_abs_difference(rdx, sdx) == 0);
                CHECK(cnn::test::max_relative_difference(rmy, smy) <= cnn::test::kernel_tolerance<TestType>());
                CHECK(cnn::test::max_relative_difference(rmdx, smdx) <= cnn::test::kernel_tolerance<TestType>());
            }
            CHECK(cnn::test::max_abs_difference(y[n], ry) == 0);
            CHECK(cnn::test::max_abs_difference(dx[n], rdx) == 0);
            CHECK(cnn::test::max_abs_difference(raw_y[n], ry) == 0);
            CHECK(cnn::test::max_abs_difference(raw_dx[n], rdx) == 0);
            CHECK(cnn::test::max_relative_difference(mean_y[n], rmy) <= cnn::test::kernel_tolerance<TestType>());
            CHECK(cnn::test::max_relative_difference(mean_dx[n], rmdx) <= cnn::test::kernel_tolerance<TestType>());
            // ReLU then max pooling, as Sequential runs the pair: the reference layers one by one.
            Tensor<TestType, 3> r(x[n].shape()), rry(y[n].shape()), rrdx(x[n].shape()), rrx(x[n].shape());
            cnn::reference::relu<TestType, 3>(x[n], r);
            cnn::reference::maxpool_forward<TestType>(r, spec, rry);
            cnn::reference::maxpool_backward<TestType>(r, dy[n], spec, rrdx);
            cnn::reference::relu_backward<TestType, 3>(x[n], rrdx, rrx);
            CHECK(cnn::test::max_abs_difference(relu_y[n], rry) == 0);
            CHECK(cnn::test::max_abs_difference(relu_dx[n], rrx) == 0);
            CHECK(cnn::test::max_abs_difference(winners_y[n], rry) == 0);
            CHECK(cnn::test::max_abs_difference(winners_dx[n], rrx) == 0);
        }
    }
}
