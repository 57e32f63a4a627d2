// BatchNorm2D, Dropout and GlobalAvgPool (cnn/layers/normalization.hpp): the worked examples
// of FORMULAS.md sections 15 to 17, finite differences in both modes, the fast paths against
// the reference loops of cnn/reference/normalization.hpp at 1 and 3 threads, dropout's masks,
// the errors, the model file and training. PyTorch's golden values: tests/test_golden.cpp.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

using cnn::Mode;
using cnn::Shape;
using cnn::Tensor;

namespace {

/// One forward and backward of `layer` in `mode`: y and dx.
template <class L, class T = typename L::value_type>
std::pair<Tensor<T, 4>, Tensor<T, 4>> run(L& layer, const Tensor<T, 4>& x, const Tensor<T, 4>& dy, Mode mode,
                                          std::uint64_t seed = 1) {
    cnn::Scratch<T> scratch;
    cnn::Random random{seed};
    cnn::layer_state_t<L> state{};
    Tensor<T, 4> y(layer.output_shape(x.shape())), dx(x.shape());
    cnn::detail::forward(layer, x, y, cnn::Context<T>(scratch, mode, &random), state);
    cnn::detail::backward(layer, x, y, dy, dx, cnn::Context<T>(scratch, mode), state, cnn::Accumulate::no);
    return {std::move(y), std::move(dx)};
}

template <class Span>
auto values(const Span& s) {
    return std::vector<std::remove_cv_t<typename Span::element_type>>(s.begin(), s.end());
}

}  // namespace

TEST_CASE("Worked example EX18: batch normalisation in training and in inference", "[normalization][worked]") {
    // one channel, N = 2, 1 x 2 each: x = (1, 2 | 3, 6), gamma 2, beta 1, epsilon 0.5
    cnn::BatchNorm2D<double> bn{1, {.momentum = 0.1, .epsilon = 0.5}};
    bn.gamma()[0] = 2;
    bn.beta()[0] = 1;
    const Tensor<double, 4> x({2, 1, 1, 2}, {1, 2, 3, 6}), dy({2, 1, 1, 2}, {1, 0, 0, 1});

    const auto [y, dx] = run(bn, x, dy, Mode::training);
    const std::vector<double> y_expected{-1, 0, 1, 4}, dx_expected{0.625, -0.4375, -0.5, 0.3125};
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(y.data()[i] == Approx(y_expected[i]).margin(1e-12));
        CHECK(dx.data()[i] == Approx(dx_expected[i]).margin(1e-12));
    }
    CHECK(bn.gamma_gradients()[0] == Approx(0.5));
    CHECK(bn.beta_gradients()[0] == Approx(2));
    CHECK(bn.running_mean()[0] == Approx(0.3));
    CHECK(bn.running_variance()[0] == Approx(0.9 + 0.1 * 3.5 * 4 / 3));

    // inference with the batch's statistics as running statistics: the same y, but dE/dx
    // is dy gamma / sqrt(var + eps) = dy, the statistics being constants
    bn.running_mean()[0] = 3;
    bn.running_variance()[0] = 3.5;
    std::ranges::fill(bn.gradients(), 0.0);
    const auto [y2, dx2] = run(bn, x, dy, Mode::inference);
    for (std::size_t i = 0; i < 4; ++i) {
        CHECK(y2.data()[i] == Approx(y_expected[i]).margin(1e-12));
        CHECK(dx2.data()[i] == Approx(dy.data()[i]).margin(1e-12));
    }
    CHECK(bn.gamma_gradients()[0] == Approx(0.5));
    CHECK(bn.running_mean()[0] == 3);  // inference leaves the running statistics alone
    CHECK(bn.running_variance()[0] == 3.5);
}

TEST_CASE("Worked examples EX19 and EX20: dropout with a given mask, global average pooling",
          "[normalization][worked]") {
    const Tensor<double, 4> x({1, 4, 1, 1}, {1, 2, 3, 4});
    Tensor<double, 4> y(x.shape());
    const std::vector<unsigned char> mask{1, 0, 0, 1};
    cnn::reference::dropout<double>(x, mask, 0.5, y);
    CHECK(std::vector<double>(y.begin(), y.end()) == std::vector<double>{2, 0, 0, 8});

    cnn::GlobalAvgPool<double> pool;
    const Tensor<double, 4> plane({1, 1, 2, 3}, {1, 2, 3, 4, 5, 9}), dy({1, 1, 1, 1}, {6});
    const auto [mean, dx] = run(pool, plane, dy, Mode::inference);
    CHECK(mean.shape() == Shape<4>{1, 1, 1, 1});
    CHECK(mean.data()[0] == 4);
    CHECK(std::vector<double>(dx.begin(), dx.end()) == std::vector<double>(6, 1.0));
}

TEST_CASE("Normalisation gradients match finite differences in both modes", "[normalization][gradients]") {
    std::mt19937_64 rng(46);
    for (const Shape<4>& shape : {Shape<4>{2, 3, 4, 5}, Shape<4>{5, 4, 1, 1}, Shape<4>{1, 2, 3, 3}}) {
        for (const Mode mode : {Mode::training, Mode::inference}) {
            cnn::BatchNorm2D<double> bn{shape[1], {.momentum = 0.2, .epsilon = 1e-3}};
            for (std::size_t c = 0; c < shape[1]; ++c) {
                bn.running_mean()[c] = 0.1 * static_cast<double>(c) - 0.2;
                bn.running_variance()[c] = 0.5 + 0.3 * static_cast<double>(c);
            }
            cnn::test::check_layer_gradients(bn, shape, rng, mode);
            cnn::Dropout<double> dropout{0.4};
            cnn::test::check_layer_gradients(dropout, shape, rng, mode);
        }
        cnn::GlobalAvgPool<double> pool;
        cnn::test::check_layer_gradients(pool, shape, rng);
    }
}

TEMPLATE_TEST_CASE("BatchNorm2D's fast path matches the reference loops and gives the same bits at 1 and 3 threads",
                   "[normalization][kernels]", float, double) {
    using T = TestType;
    std::mt19937_64 rng(47);
    const std::size_t threads_before = cnn::threads();
    std::uniform_int_distribution<std::size_t> extent(1, 9), channels(1, 7);
    for (int trial = 0; trial < 12; ++trial) {
        const Shape<4> shape{extent(rng), channels(rng), extent(rng), extent(rng) + 1};
        INFO("input " << cnn::to_string(shape));
        const auto x = cnn::test::random_tensor<T>(shape, rng);
        const auto dy = cnn::test::random_tensor<T>(shape, rng);
        cnn::BatchNorm2D<T> bn{shape[1], {.momentum = 0.25, .epsilon = 1e-4}};
        cnn::test::fill_uniform<T, 1>(cnn::TensorView<T, 1>(bn.parameters().data(), {2 * shape[1]}), rng, 0.5, 1.5);
        for (T& v : bn.running_variance()) v = T(1.5);
        const std::size_t c = shape[1];

        for (const Mode mode : {Mode::training, Mode::inference}) {
            // the reference
            Tensor<T, 4> y_ref(shape), dx_ref(shape);
            std::vector<T> gamma_gradient(c), beta_gradient(c), running_mean = values(bn.running_mean()),
                                              running_variance = values(bn.running_variance());
            if (mode == Mode::training) {
                std::vector<cnn::reference::ChannelStatistics> statistics(c);
                cnn::reference::batchnorm_forward_training<T>(x, bn.gamma(), bn.beta(), bn.epsilon(), y_ref, statistics);
                cnn::reference::batchnorm_backward_training<T>(x, dy, bn.gamma(), bn.epsilon(), statistics, dx_ref,
                                                               gamma_gradient, beta_gradient);
                cnn::reference::batchnorm_update_running<T>(statistics, bn.momentum(), shape[0] * shape[2] * shape[3],
                                                            running_mean, running_variance);
            } else {
                cnn::reference::batchnorm_forward_inference<T>(x, bn.gamma(), bn.beta(), bn.running_mean(),
                                                               bn.running_variance(), bn.epsilon(), y_ref);
                cnn::reference::batchnorm_backward_inference<T>(x, dy, bn.gamma(), bn.running_mean(),
                                                                bn.running_variance(), bn.epsilon(), dx_ref,
                                                                gamma_gradient, beta_gradient);
            }
            // the layer, at 1 and 3 threads
            std::vector<std::vector<T>> outputs;
            for (const std::size_t threads : {1, 3}) {
                cnn::set_threads(threads);
                auto layer = bn;
                std::ranges::fill(layer.gradients(), T{0});
                const auto [y, dx] = run(layer, x, dy, mode);
                INFO((mode == Mode::training ? "training" : "inference") << ", " << threads << " threads");
                CHECK(cnn::test::max_relative_difference(y, y_ref) <= cnn::test::kernel_tolerance<T>());
                CHECK(cnn::test::max_relative_difference(dx, dx_ref) <= cnn::test::kernel_tolerance<T>() * 10);
                for (std::size_t k = 0; k < c; ++k) {
                    CHECK(layer.gamma_gradients()[k] == Approx(gamma_gradient[k]).epsilon(1e-4).margin(1e-4));
                    CHECK(layer.beta_gradients()[k] == Approx(beta_gradient[k]).epsilon(1e-4).margin(1e-4));
                    CHECK(layer.running_mean()[k] == Approx(running_mean[k]).epsilon(1e-6));
                    CHECK(layer.running_variance()[k] == Approx(running_variance[k]).epsilon(1e-6));
                }
                std::vector<T> all(y.begin(), y.end());
                all.insert(all.end(), dx.begin(), dx.end());
                all.insert(all.end(), layer.parameters().begin(), layer.parameters().end());
                all.insert(all.end(), layer.gradients().begin(), layer.gradients().end());
                outputs.push_back(std::move(all));
            }
            CHECK(outputs[0] == outputs[1]);
        }
    }
    cnn::set_threads(threads_before);
}

TEMPLATE_TEST_CASE("GlobalAvgPool and Dropout match the reference loops and give the same bits at 1 and 3 threads",
                   "[normalization][kernels]", float, double) {
    using T = TestType;
    std::mt19937_64 rng(48);
    const std::size_t threads_before = cnn::threads();
    for (const Shape<4>& shape : {Shape<4>{3, 5, 61, 37}, Shape<4>{2, 3, 1, 1}, Shape<4>{7, 2, 3, 4}}) {
        INFO("input " << cnn::to_string(shape));
        const auto x = cnn::test::random_tensor<T>(shape, rng);
        const Shape<4> pooled{shape[0], shape[1], 1, 1};
        const auto dy_pooled = cnn::test::random_tensor<T>(pooled, rng);
        const auto dy = cnn::test::random_tensor<T>(shape, rng);
        Tensor<T, 4> y_ref(pooled), dx_ref(shape);
        cnn::reference::global_avg_pool_forward<T>(x, y_ref);
        cnn::reference::global_avg_pool_backward<T>(dy_pooled, dx_ref);
        std::vector<Tensor<T, 4>> masks, averages;
        for (const std::size_t threads : {1, 3}) {
            cnn::set_threads(threads);
            cnn::GlobalAvgPool<T> pool;
            const auto [y, dx] = run(pool, x, dy_pooled, Mode::training);
            CHECK(cnn::test::max_relative_difference(y, y_ref) <= cnn::test::kernel_tolerance<T>());
            CHECK(cnn::test::max_abs_difference(dx, dx_ref) == 0);
            averages.push_back(y);

            // dropout: y = reference::dropout(x) with the mask the layer drew, dx = the same of dy
            cnn::Dropout<T> dropout{0.3};
            auto [y_drop, dx_drop] = run(dropout, x, dy, Mode::training, 99);
            std::vector<unsigned char> mask(x.size());
            for (std::size_t e = 0; e < x.size(); ++e) mask[e] = y_drop.data()[e] != T{0} || x.data()[e] == T{0};
            Tensor<T, 4> y_drop_ref(shape), dx_drop_ref(shape);
            cnn::reference::dropout<T>(x, mask, 0.3, y_drop_ref);
            cnn::reference::dropout<T>(dy, mask, 0.3, dx_drop_ref);
            CHECK(cnn::test::max_relative_difference(y_drop, y_drop_ref) <= cnn::test::kernel_tolerance<T>());
            CHECK(cnn::test::max_relative_difference(dx_drop, dx_drop_ref) <= cnn::test::kernel_tolerance<T>());
            masks.push_back(std::move(y_drop));
        }
        CHECK(cnn::test::max_abs_difference(masks[0], masks[1]) == 0);
        CHECK(cnn::test::max_abs_difference(averages[0], averages[1]) == 0);
    }
    cnn::set_threads(threads_before);
}

TEST_CASE("Dropout keeps 1 - rate of the values, reproducibly, and is the identity in inference",
          "[normalization][dropout]") {
    const Shape<4> shape{4, 8, 50, 50};  // 80,000 values
    const Tensor<float, 4> x(shape, 1.0f);
    cnn::Dropout<float> dropout{0.3};
    const auto kept_fraction = [&](const Tensor<float, 4>& y) {
        std::size_t kept = 0;
        for (float v : y) {
            CHECK((v == 0.0f || v == Approx(1 / 0.7f)));
            kept += v != 0.0f;
        }
        return static_cast<double>(kept) / static_cast<double>(y.size());
    };
    const auto [a, da] = run(dropout, x, x, Mode::training, 5);
    const auto [b, db] = run(dropout, x, x, Mode::training, 5);
    const auto [c, dc] = run(dropout, x, x, Mode::training, 6);
    // binomial: standard deviation sqrt(0.21 / 80000) = 0.0016; 0.01 is six of them
    CHECK(kept_fraction(a) == Approx(0.7).margin(0.01));
    CHECK(cnn::test::max_abs_difference(a, b) == 0);   // same seed, same mask
    CHECK(cnn::test::max_abs_difference(a, c) > 0);    // another seed, another mask
    CHECK(cnn::test::max_abs_difference(da, a) == 0);  // dE/dx = dy mask / (1 - p)

    const auto [identity, d_identity] = run(dropout, x, x, Mode::inference);
    CHECK(cnn::test::max_abs_difference(identity, x) == 0);
    CHECK(cnn::test::max_abs_difference(d_identity, x) == 0);

    // rate 0 draws nothing; training without a random stream is a clear error
    cnn::Dropout<float> none{0.0};
    cnn::Random random{3};
    const auto before = random.state();
    cnn::Scratch<float> scratch;
    cnn::Dropout<float>::State state;
    Tensor<float, 4> y(shape);
    none.forward(x, y, cnn::Context<float>(scratch, Mode::training, &random), state);
    CHECK(random.state().words[0] == before.words[0]);
    CHECK(cnn::test::max_abs_difference(y, x) == 0);
    CHECK_THROWS_WITH(dropout.forward(x, y, cnn::Context<float>(scratch, Mode::training), state),
                      "Dropout draws random numbers in training: pass a cnn::Random to forward");
}

TEST_CASE("Backward adds into dx on request", "[normalization]") {
    std::mt19937_64 rng(49);
    const Shape<4> shape{3, 2, 4, 3};
    const auto x = cnn::test::random_tensor<double>(shape, rng);
    const auto dy = cnn::test::random_tensor<double>(shape, rng);
    const auto check = [&](auto layer, Mode mode) {
        INFO(layer.describe());
        using L = decltype(layer);
        cnn::Scratch<double> scratch;
        cnn::Random random{2};
        cnn::layer_state_t<L> state{};
        Tensor<double, 4> y(layer.output_shape(shape)), dx(shape), sum(shape, 1.0);
        const Tensor<double, 4> dy_out = cnn::test::random_tensor<double>(y.shape(), rng);
        cnn::detail::forward(layer, x, y, cnn::Context<double>(scratch, mode, &random), state);
        auto copy = layer;
        auto copy_state = state;
        cnn::detail::backward(layer, x, y, dy_out, dx, cnn::Context<double>(scratch, mode), state, cnn::Accumulate::no);
        cnn::detail::backward(copy, x, y, dy_out, sum, cnn::Context<double>(scratch, mode), copy_state,
                              cnn::Accumulate::yes);
        double worst = 0;
        for (std::size_t i = 0; i < dx.size(); ++i) worst = std::max(worst, std::abs(sum.data()[i] - 1 - dx.data()[i]));
        CHECK(worst <= 1e-14);
    };
    (void)dy;
    for (const Mode mode : {Mode::training, Mode::inference}) {
        check(cnn::BatchNorm2D<double>{2}, mode);
        check(cnn::Dropout<double>{0.5}, mode);
        check(cnn::GlobalAvgPool<double>{}, mode);
    }
}

TEST_CASE("Normalisation settings are checked, described and recorded", "[normalization][errors]") {
    CHECK_THROWS_WITH(cnn::BatchNorm2D<float>{0}, "BatchNorm2D: channels must be at least 1, got 0");
    CHECK_THROWS_WITH((cnn::BatchNorm2D<float>{4, {.epsilon = 0}}), "BatchNorm2D: epsilon must be > 0, got 0");
    CHECK_THROWS_WITH((cnn::BatchNorm2D<float>{4, {.epsilon = -1e-5}}), "BatchNorm2D: epsilon must be > 0, got -1e-05");
    CHECK_THROWS_WITH((cnn::BatchNorm2D<float>{4, {.epsilon = 1e-60}}), "BatchNorm2D: epsilon 1e-60 is too small for float");
    CHECK_NOTHROW(cnn::BatchNorm2D<double>{4, {.epsilon = 1e-60}});
    CHECK_THROWS_WITH((cnn::BatchNorm2D<float>{4, {.momentum = 1.5}}),
                      "BatchNorm2D: momentum must be >= 0 and <= 1, got 1.5");
    CHECK_THROWS_WITH((cnn::BatchNorm2D<float>{4, {.momentum = std::nan("")}}),
                      "BatchNorm2D: momentum must be >= 0 and <= 1, got nan");
    CHECK_THROWS_WITH(cnn::Dropout<float>{-0.1}, "Dropout: rate must be >= 0 and <= 1, got -0.1");
    CHECK_THROWS_WITH(cnn::Dropout<float>{1.0}, "Dropout: rate must be < 1 (rate 1 drops every value), got 1");
    CHECK_THROWS_WITH(cnn::Dropout<float>{INFINITY}, "Dropout: rate must be >= 0 and <= 1, got inf");

    CHECK(cnn::BatchNorm2D<float>{16}.describe() == "BatchNorm2D(16)");
    CHECK((cnn::BatchNorm2D<float>{16, {.momentum = 0.01, .epsilon = 1e-3}}.describe()) ==
          "BatchNorm2D(16, momentum 0.01, epsilon 0.001)");
    CHECK(cnn::Dropout<float>{0.25}.describe() == "Dropout(0.25)");

    // the shape and the batch of one
    cnn::BatchNorm2D<float> bn{3};
    CHECK_THROWS_WITH(bn.output_shape({2, 4, 5, 5}), "BatchNorm2D(3) expects 3 channels, got input [2, 4, 5, 5]");
    const Tensor<float, 4> one({1, 3, 1, 1}, 1.0f);
    Tensor<float, 4> y(one.shape());
    cnn::Scratch<float> scratch;
    cnn::BatchNorm2D<float>::State state;
    CHECK_THROWS_WITH(bn.forward(one, y, cnn::Context<float>(scratch, Mode::training), state),
                      "BatchNorm2D(3): training normalises each channel by the statistics of the batch, which needs "
                      "more than one value per channel; got input [1, 3, 1, 1] (train with batches of 2 or more, or "
                      "run in Mode::inference)");
    CHECK_NOTHROW(bn.forward(one, y, cnn::Context<float>(scratch, Mode::inference), state));
    cnn::BatchNorm2D<float>::State fresh;
    CHECK_THROWS_WITH(bn.backward(one, y, y, y, scratch, fresh),
                      "BatchNorm2D(3): backward for input [1, 3, 1, 1] without the forward pass of that input");
}

TEST_CASE("Batch normalisation's running statistics are saved, loaded and never decayed", "[normalization][files]") {
    const auto make = [] {
        return cnn::Sequential{cnn::Conv2D<float>{1, 4, 3, {.padding = 1}}, cnn::BatchNorm2D<float>{4},
                               cnn::ReLU<float>{}, cnn::Dropout<float>{0.2}, cnn::GlobalAvgPool<float>{},
                               cnn::Flatten<float>{}, cnn::Dense<float>{4, 4}, cnn::BatchNorm2D<float>{4}};
    };
    auto net = make();
    const auto data = cnn::test::make_bars(101, 3);  // batches of 10: the last one would hold one sample
    cnn::Random rng{4};
    cnn::SGD<float> sgd{{.learning_rate = 0.05, .momentum = 0.9, .weight_decay = 0.5}};
    std::size_t seen = 0;
    const auto history = cnn::fit(net, sgd, data, rng,
                                  {.epochs = 2, .batch_size = 10, .on_batch = [&](const cnn::BatchReport& r) {
                                       seen = r.images;
                                   }});
    CHECK(seen == 100);  // the lone 101st sample is left out of each epoch
    CHECK(history.epochs.size() == 2);
    auto& bn = net.layer<1>();
    // 2 epochs x 10 steps moved the running statistics away from (0, 1); the weight decay of 0.5
    // would have pulled a decayed buffer towards 0 by far more than momentum 0.1 moves it
    CHECK(std::ranges::any_of(bn.running_mean(), [](float v) { return v != 0.0f; }));
    CHECK(std::ranges::all_of(bn.running_variance(), [](float v) { return v > 0.0f && v != 1.0f; }));

    const auto dir = cnn::test::scratch_directory("normalization");
    cnn::save_model(net, dir / "bn.cnn");
    auto loaded = make();
    cnn::load_model(loaded, dir / "bn.cnn");
    CHECK(values(loaded.layer<1>().running_mean()) == values(bn.running_mean()));
    CHECK(values(loaded.layer<1>().running_variance()) == values(bn.running_variance()));
    CHECK(values(loaded.layer<7>().parameters()) == values(net.layer<7>().parameters()));
    CHECK(cnn::evaluate(loaded, data).accuracy == cnn::evaluate(net, data).accuracy);

    auto other = cnn::Sequential{cnn::Conv2D<float>{1, 4, 3, {.padding = 1}},
                                 cnn::BatchNorm2D<float>{4, {.momentum = 0.01}},
                                 cnn::ReLU<float>{},
                                 cnn::Dropout<float>{0.2},
                                 cnn::GlobalAvgPool<float>{},
                                 cnn::Flatten<float>{},
                                 cnn::Dense<float>{4, 4},
                                 cnn::BatchNorm2D<float>{4}};
    CHECK_THROWS_WITH(cnn::load_model(other, dir / "bn.cnn"),
                      Catch::Contains("layer 1 is BatchNorm2D(4) in the file and BatchNorm2D(4, momentum 0.01) in "
                                      "this network"));
}
