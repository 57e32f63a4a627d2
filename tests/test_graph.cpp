// The layer graph, second edition: residual blocks and parallel branches nested in chains,
// backward that adds into dx, errors that name the path to the failing layer, summaries of
// nests, parameter roles, and a layer defined only in this file that joins a network and
// trains with no change to the library (the proof that the graph is open).
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

using cnn::Shape;
using cnn::Tensor;

namespace {

/// y[n][c] = s[c] x[n][c]: a learnable per-channel scale, written against the layer contract
/// only. dE/ds[c] = sum over n, i, j of dy x; dE/dx = s dy.
template <cnn::Scalar T>
class ChannelScale {
public:
    using value_type = T;

    explicit ChannelScale(std::size_t channels) : scale_({channels}), gradient_({channels}) {}

    [[nodiscard]] std::string describe() const { return "ChannelScale(" + std::to_string(scale_.size()) + ")"; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const {
        if (in[1] != scale_.size())
            throw cnn::shape_error(describe() + " expects " + std::to_string(scale_.size()) + " channels, got input " +
                                   cnn::to_string(in));
        return in;
    }
    [[nodiscard]] std::span<T> parameters() noexcept { return scale_.span(); }
    [[nodiscard]] std::span<const T> parameters() const noexcept { return scale_.span(); }
    [[nodiscard]] std::span<T> gradients() noexcept { return gradient_.span(); }
    void initialize(cnn::Random& /*rng*/, cnn::Init /*scheme*/) { scale_.fill(T{1}); }

    void forward(cnn::TensorView<const T, 4> x, cnn::TensorView<T, 4> y, cnn::Context<T> /*context*/) const {
        for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = scale_.data()[channel(x.shape(), i)] * x.data()[i];
    }
    void backward(cnn::TensorView<const T, 4> x, cnn::TensorView<const T, 4> /*y*/, cnn::TensorView<const T, 4> dy,
                  cnn::TensorView<T, 4> dx, cnn::Context<T> /*context*/, cnn::Accumulate accumulate) {
        for (std::size_t i = 0; i < x.size(); ++i) {
            const std::size_t c = channel(x.shape(), i);
            gradient_.data()[c] += dy.data()[i] * x.data()[i];
            if (dx.data() == nullptr) continue;
            const T value = scale_.data()[c] * dy.data()[i];
            dx.data()[i] = accumulate == cnn::Accumulate::yes ? dx.data()[i] + value : value;
        }
    }

private:
    static std::size_t channel(const Shape<4>& shape, std::size_t i) { return i / (shape[2] * shape[3]) % shape[1]; }

    Tensor<T, 1> scale_;
    Tensor<T, 1> gradient_;
};

/// y = x + noise in training (uniform in [0, 1) from the context's random stream), y = x in
/// inference: a stochastic layer, to see that the mode and the stream reach every depth.
template <cnn::Scalar T>
class Jitter {
public:
    using value_type = T;
    [[nodiscard]] std::string describe() const { return "Jitter"; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return in; }
    [[nodiscard]] std::span<T> parameters() noexcept { return {}; }
    [[nodiscard]] std::span<const T> parameters() const noexcept { return {}; }
    [[nodiscard]] std::span<T> gradients() noexcept { return {}; }
    void forward(cnn::TensorView<const T, 4> x, cnn::TensorView<T, 4> y, cnn::Context<T> context) const {
        for (std::size_t i = 0; i < x.size(); ++i)
            y.data()[i] = x.data()[i] + (context.training() ? static_cast<T>(context.random("Jitter").uniform()) : T{0});
    }
    void backward(cnn::TensorView<const T, 4>, cnn::TensorView<const T, 4>, cnn::TensorView<const T, 4> dy,
                  cnn::TensorView<T, 4> dx, cnn::Context<T>, cnn::Accumulate accumulate) {
        if (dx.data() == nullptr) return;
        for (std::size_t i = 0; i < dy.size(); ++i)
            dx.data()[i] = (accumulate == cnn::Accumulate::yes ? dx.data()[i] : T{0}) + dy.data()[i];
    }
};

/// y = s x with one learned scale s (a weight) and one buffer: the number of backward passes
/// it has seen, which backward updates (as a normalisation updates its running statistics)
/// and whose "gradient" it sets to a large number that an optimizer would notice.
template <cnn::Scalar T>
class CountingScale {
public:
    using value_type = T;
    CountingScale() : values_({2}), gradients_({2}) { values_.data()[0] = T{1}; }

    [[nodiscard]] std::string describe() const { return "CountingScale"; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return in; }
    [[nodiscard]] std::span<T> parameters() noexcept { return values_.span(); }
    [[nodiscard]] std::span<const T> parameters() const noexcept { return values_.span(); }
    [[nodiscard]] std::span<T> gradients() noexcept { return gradients_.span(); }
    [[nodiscard]] cnn::ParameterLayout parameter_layout() const noexcept { return {1, 0, 1}; }
    [[nodiscard]] T count() const noexcept { return values_.data()[1]; }

    void forward(cnn::TensorView<const T, 4> x, cnn::TensorView<T, 4> y, cnn::Context<T>) const {
        for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = values_.data()[0] * x.data()[i];
    }
    void backward(cnn::TensorView<const T, 4> x, cnn::TensorView<const T, 4>, cnn::TensorView<const T, 4> dy,
                  cnn::TensorView<T, 4> dx, cnn::Context<T>, cnn::Accumulate accumulate) {
        for (std::size_t i = 0; i < x.size(); ++i) {
            gradients_.data()[0] += dy.data()[i] * x.data()[i];
            if (dx.data() != nullptr)
                dx.data()[i] = (accumulate == cnn::Accumulate::yes ? dx.data()[i] : T{0}) + values_.data()[0] * dy.data()[i];
        }
        values_.data()[1] += T{1};
        gradients_.data()[1] = T{1000};
    }

private:
    Tensor<T, 1> values_, gradients_;
};

template <class T>
using Conv = cnn::Conv2D<T>;

/// A ResNet basic block: conv 3x3 (stride s), ReLU, conv 3x3, plus the input (identity) or
/// a 1x1 convolution with stride s (projection), then ReLU.
template <class T>
auto identity_block(std::size_t channels) {
    return cnn::Sequential{cnn::Residual{cnn::Sequential{Conv<T>{channels, channels, 3, {.padding = 1}},
                                                         cnn::ReLU<T>{},
                                                         Conv<T>{channels, channels, 3, {.padding = 1}}}},
                           cnn::ReLU<T>{}};
}
template <class T>
auto projection_block(std::size_t in, std::size_t out) {
    return cnn::Sequential{
        cnn::Residual{cnn::Sequential{Conv<T>{in, out, 3, {.stride = 2, .padding = 1}}, cnn::ReLU<T>{},
                                      Conv<T>{out, out, 3, {.padding = 1}}},
                      cnn::Sequential{Conv<T>{in, out, 1, {.stride = 2}}}},
        cnn::ReLU<T>{}};
}
/// An Inception-style block: 1x1; 1x1 then 3x3; and a residual 3x3 then 1x1, concatenated.
template <class T>
auto inception_block(std::size_t in) {
    return cnn::Parallel{cnn::Concat{}, cnn::Sequential{Conv<T>{in, 2, 1}},
                         cnn::Sequential{Conv<T>{in, 2, 1}, cnn::ReLU<T>{}, Conv<T>{2, 3, 3, {.padding = 1}}},
                         cnn::Sequential{cnn::Residual{cnn::Sequential{Conv<T>{in, in, 3, {.padding = 1}}, cnn::ReLU<T>{}}},
                                         Conv<T>{in, 1, 1}}};
}

/// Residual > Sequential > Parallel > Sequential > Residual: nested three composites deep
/// and more, with both kinds of shortcut, both merges, a custom layer and the fusions.
template <class T>
auto nested_network() {
    return cnn::Sequential{Conv<T>{2, 4, 3, {.padding = 1}},
                           cnn::ReLU<T>{},
                           identity_block<T>(4),
                           projection_block<T>(4, 6),
                           cnn::Residual{cnn::Sequential{inception_block<T>(6), cnn::ReLU<T>{}, Conv<T>{6, 6, 1}},
                                         cnn::Sequential{ChannelScale<T>{6}}},
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{24, 3}};
}

/// Sets every parameter of `net` to a value drawn uniformly from [-0.5, 0.5).
template <class Net>
void randomize(Net& net, std::mt19937_64& rng) {
    for (const auto& group : net.parameter_groups())
        cnn::test::fill_uniform<typename Net::value_type, 1>({group.values.data(), {group.values.size()}}, rng, -0.5, 0.5);
}

/// E = sum(R o f(x)) through the layer interface of `net` (which a network uses for nested
/// chains), and its gradients with respect to x and to every parameter; then the same by
/// finite differences.
template <class Net>
void check_gradients(Net& net, const Shape<4>& input, std::mt19937_64& rng) {
    using T = typename Net::value_type;
    cnn::Scratch<T> scratch;
    typename Net::State state;
    auto x = cnn::test::random_tensor<T>(input, rng);
    Tensor<T, 4> y(net.output_shape(input));
    const auto weights = cnn::test::random_tensor<T>(y.shape(), rng);
    const auto loss = [&] {
        net.forward(x, y, scratch, state);
        double sum = 0;
        for (std::size_t i = 0; i < y.size(); ++i) sum += weights.data()[i] * y.data()[i];
        return sum;
    };
    loss();
    Tensor<T, 4> dx(input);
    net.zero_gradients();
    net.backward(x, y, weights, dx, scratch, state, cnn::Accumulate::no);

    const auto input_check = cnn::gradient_check<T>(loss, x.span(), dx.span());
    INFO("input gradient: worst index " << input_check.worst_index << ", analytic " << input_check.worst_analytic
                                        << ", numeric " << input_check.worst_numeric);
    CHECK(input_check.relative_error <= 1e-6);
    std::size_t group_index = 0;
    for (const auto& group : net.parameter_groups()) {
        const std::vector<T> analytic(group.gradients.begin(), group.gradients.end());
        const auto check = cnn::gradient_check<T>(loss, group.values, std::span<const T>(analytic));
        INFO("parameter group " << group_index << ": worst index " << check.worst_index << ", analytic "
                                << check.worst_analytic << ", numeric " << check.worst_numeric);
        CHECK(check.relative_error <= 1e-6);
        ++group_index;
    }
}

/// Loss on one fixed batch before and after `steps` SGD steps.
template <class Net>
std::pair<double, double> train_steps(Net& net, const Shape<4>& input, std::size_t steps) {
    using T = typename Net::value_type;
    std::mt19937_64 rng(5);
    const auto x = cnn::test::random_tensor<T>(input, rng);
    std::vector<std::uint32_t> labels(input[0]);
    for (std::size_t n = 0; n < labels.size(); ++n) labels[n] = static_cast<std::uint32_t>(n % 3);
    typename Net::Workspace workspace;
    cnn::SGD<T> sgd{{.learning_rate = 0.05, .momentum = 0.9}};
    cnn::Random random{1};
    double first = 0, last = 0;
    for (std::size_t step = 0; step <= steps; ++step) {
        const auto output = net.forward(x, workspace, cnn::Mode::training, &random);
        Tensor<T, 4> delta(output.shape());
        const double loss = cnn::softmax_cross_entropy<T>(output, labels, delta.view());
        (step == 0 ? first : last) = loss;
        if (step == steps) break;
        net.zero_gradients();
        net.backward(delta, workspace);
        sgd.step(net.parameter_groups());
    }
    return {first, last};
}

}  // namespace

TEST_CASE("ResNet and Inception blocks nested three levels deep pass a float64 finite-difference check",
          "[graph][gradients]") {
    std::mt19937_64 rng(13);
    SECTION("the whole nest") {
        auto net = nested_network<double>();
        randomize(net, rng);
        check_gradients(net, {2, 2, 8, 8}, rng);
    }
    SECTION("an identity block") {
        auto block = identity_block<double>(3);
        randomize(block, rng);
        check_gradients(block, {2, 3, 5, 4}, rng);
    }
    SECTION("a projection block with stride 2, odd sizes") {
        auto block = projection_block<double>(3, 5);
        randomize(block, rng);
        check_gradients(block, {2, 3, 7, 5}, rng);
    }
    SECTION("an Inception block") {
        auto block = cnn::Sequential{inception_block<double>(3)};
        randomize(block, rng);
        check_gradients(block, {2, 3, 6, 5}, rng);
    }
    SECTION("parallel branches added") {
        auto block = cnn::Parallel{cnn::Add{}, Conv<double>{3, 4, 3, {.padding = 1}}, Conv<double>{3, 4, 1},
                                   cnn::Sequential{cnn::ReLU<double>{}, Conv<double>{3, 4, 1}}};
        auto net = cnn::Sequential{std::move(block)};
        randomize(net, rng);
        check_gradients(net, {2, 3, 4, 6}, rng);
    }
}

TEST_CASE("Worked examples EX14 and EX15 of FORMULAS.md section 13: a residual block and a concatenation",
          "[graph][worked]") {
    const Tensor<double, 4> x({1, 1, 1, 2}, {1.0, -3.0});
    const auto conv = [] {
        Conv<double> c{1, 1, 1};
        c.parameters()[0] = 2.0;  // w
        c.parameters()[1] = 0.5;  // b
        return c;
    };
    cnn::Scratch<double> scratch;
    SECTION("EX14") {
        auto block = cnn::Residual{conv()};
        decltype(block)::State state;
        Tensor<double, 4> y({1, 1, 1, 2}), dx({1, 1, 1, 2});
        block.forward(x, y, scratch, state);
        CHECK(std::vector<double>(y.begin(), y.end()) == std::vector<double>{3.5, -8.5});
        const Tensor<double, 4> dy({1, 1, 1, 2}, {1.0, 1.0});
        block.backward(x, y, dy, dx, scratch, state, cnn::Accumulate::no);
        CHECK(std::vector<double>(dx.begin(), dx.end()) == std::vector<double>{3.0, 3.0});
        CHECK(block.body().gradients()[0] == -2.0);
        CHECK(block.body().gradients()[1] == 2.0);
    }
    SECTION("EX15") {
        auto block = cnn::Parallel{cnn::Concat{}, cnn::Identity<double>{}, conv()};
        decltype(block)::State state;
        Tensor<double, 4> y({1, 2, 1, 2}), dx({1, 1, 1, 2});
        block.forward(x, y, scratch, state);
        CHECK(std::vector<double>(y.begin(), y.end()) == std::vector<double>{1.0, -3.0, 2.5, -5.5});
        const Tensor<double, 4> dy({1, 2, 1, 2}, {1.0, 2.0, 3.0, 4.0});
        block.backward(x, y, dy, dx, scratch, state, cnn::Accumulate::no);
        CHECK(std::vector<double>(dx.begin(), dx.end()) == std::vector<double>{7.0, 10.0});
        CHECK(block.branch<1>().gradients()[0] == -9.0);
        CHECK(block.branch<1>().gradients()[1] == 7.0);
    }
}

TEST_CASE("The nested blocks train: a few SGD steps lower the loss on a fixed batch", "[graph][training]") {
    SECTION("float") {
        auto net = nested_network<float>();
        const auto [before, after] = train_steps(net, {6, 2, 8, 8}, 30);
        CHECK(after < 0.5 * before);
    }
    SECTION("double") {
        auto net = nested_network<double>();
        const auto [before, after] = train_steps(net, {6, 2, 8, 8}, 30);
        CHECK(after < 0.5 * before);
    }
}

TEST_CASE("Blocks built alike start apart; a block given values keeps them", "[graph][initialisation]") {
    auto net = cnn::Sequential{Conv<float>{1, 3, 3, {.padding = 1}}, identity_block<float>(3), identity_block<float>(3)};
    const auto first = net.layer<1>().layer<0>().body().layer<0>().parameters();
    const auto second = net.layer<2>().layer<0>().body().layer<0>().parameters();
    CHECK_FALSE(std::ranges::equal(first, second));
    // The same network twice: the same values (the default seed).
    auto again = cnn::Sequential{Conv<float>{1, 3, 3, {.padding = 1}}, identity_block<float>(3), identity_block<float>(3)};
    CHECK(std::ranges::equal(again.layer<2>().layer<0>().body().layer<0>().parameters(), second));
    // A block that was given values keeps them.
    auto trained = identity_block<float>(3);
    std::ranges::fill(trained.layer<0>().body().layer<0>().parameters(), 0.25f);
    auto kept = cnn::Sequential{Conv<float>{1, 3, 3, {.padding = 1}}, std::move(trained)};
    CHECK(std::ranges::all_of(kept.layer<1>().layer<0>().body().layer<0>().parameters(),
                              [](float w) { return w == 0.25f; }));
}

TEST_CASE("A layer defined only in a test joins a network, trains, and saves and loads", "[graph][custom]") {
    auto net = cnn::Sequential{Conv<float>{1, 3, 3, {.padding = 1}}, ChannelScale<float>{3}, cnn::ReLU<float>{},
                               cnn::Flatten<float>{}, cnn::Dense<float>{48, 3}};
    // Constructed with zero parameters, it was initialised by its own initialize (to ones).
    CHECK(std::ranges::all_of(net.layer<1>().parameters(), [](float s) { return s == 1.0f; }));
    const auto [before, after] = train_steps(net, {6, 1, 4, 4}, 30);
    CHECK(after < 0.5 * before);
    CHECK(std::ranges::any_of(net.layer<1>().parameters(), [](float s) { return s != 1.0f; }));

    const auto dir = cnn::test::scratch_directory("custom_layer");
    cnn::save_model(net, dir / "custom.cnn");
    auto loaded = cnn::Sequential{Conv<float>{1, 3, 3, {.padding = 1}}, ChannelScale<float>{3}, cnn::ReLU<float>{},
                                  cnn::Flatten<float>{}, cnn::Dense<float>{48, 3}};
    cnn::load_model(loaded, dir / "custom.cnn");
    CHECK(std::ranges::equal(loaded.layer<1>().parameters(), net.layer<1>().parameters()));
    auto other = cnn::Sequential{Conv<float>{1, 3, 3, {.padding = 1}}, ChannelScale<float>{3}, ChannelScale<float>{3},
                                 cnn::Flatten<float>{}, cnn::Dense<float>{48, 3}};
    CHECK_THROWS_WITH(cnn::load_model(other, dir / "custom.cnn"),
                      Catch::Contains("layer 2 is ReLU in the file and ChannelScale(3) in this network"));
}

TEST_CASE("backward with Accumulate::yes adds dE/dx to what dx holds, for every layer and composite",
          "[graph][accumulate]") {
    std::mt19937_64 rng(21);
    const auto check = [&](auto layer, const Shape<4>& input) {
        using T = typename decltype(layer)::value_type;
        INFO(layer.describe() << " on input " << cnn::to_string(input));
        cnn::Scratch<T> scratch;
        cnn::layer_state_t<decltype(layer)> state{};
        const auto x = cnn::test::random_tensor<T>(input, rng);
        Tensor<T, 4> y(layer.output_shape(input));
        cnn::detail::forward(layer, x.view(), y.view(), scratch, state);
        const auto dy = cnn::test::random_tensor<T>(y.shape(), rng);
        Tensor<T, 4> written(input);
        written.fill(T{7});  // whatever dx held before is overwritten
        cnn::detail::backward(layer, x.view(), y.view(), dy.view(), written.view(), scratch, state, cnn::Accumulate::no);
        const auto before = cnn::test::random_tensor<T>(input, rng);
        Tensor<T, 4> added = before;
        cnn::detail::backward(layer, x.view(), y.view(), dy.view(), added.view(), scratch, state, cnn::Accumulate::yes);
        // The same sum up to rounding: where several contributions meet (overlapping windows,
        // a convolution's taps) they are added to dx one by one instead of to each other first.
        for (std::size_t i = 0; i < added.size(); ++i)
            REQUIRE(added.data()[i] == Approx(before.data()[i] + written.data()[i]).epsilon(1e-12).margin(1e-15));
    };
    check(Conv<double>{3, 4, 3, {.stride = 2, .padding = 1}}, {3, 3, 7, 6});
    check(Conv<double>{4, 4, 3, {.padding = 1, .groups = 4}}, {2, 4, 6, 5});  // depthwise
    check(Conv<double>{4, 8, 3, {.stride = 2, .padding = 2, .dilation = 2, .groups = 2}}, {2, 4, 7, 6});
    check(Conv<double>{3, 6, {2, 3}, {.stride = {3, 2}, .padding = {1, 0}, .groups = 3}}, {2, 3, 8, 7});
    check(cnn::Dense<double>{12, 5}, {3, 3, 2, 2});
    check(cnn::ReLU<double>{}, {2, 3, 4, 5});
    check(cnn::MaxPool<double>{2}, {2, 3, 4, 6});
    check(cnn::MaxPool<double>{{3, 2}, 1}, {2, 3, 5, 6});
    check(cnn::MeanPool<double>{2}, {2, 3, 5, 4});
    check(cnn::Flatten<double>{}, {2, 3, 2, 2});
    check(cnn::Identity<double>{}, {2, 3, 2, 2});
    check(cnn::ActMaxPool<double, cnn::ReLU<double>>{{}, cnn::MaxPool<double>{2}}, {2, 3, 4, 4});
    check(cnn::ConvActMaxPool<double, cnn::ReLU<double>>{Conv<double>{2, 3, 3, {.padding = 1}}, {}, cnn::MaxPool<double>{2}},
          {5, 2, 6, 6});
    check(identity_block<double>(3), {2, 3, 4, 4});
    check(projection_block<double>(3, 4), {2, 3, 5, 5});
    check(inception_block<double>(3), {2, 3, 4, 4});
    check(cnn::Parallel{cnn::Add{}, cnn::ReLU<double>{}, cnn::Identity<double>{}}, {2, 3, 4, 4});
    // Windows and strides that leave input cells out of every window: their gradient is zero,
    // and must be written as zero (a chain hands each step memory another step wrote).
    check(cnn::MaxPool<double>{2, 3}, {2, 3, 8, 7});
    check(cnn::MeanPool<double>{2, 3}, {2, 3, 8, 7});
    check(cnn::ActMaxPool<double, cnn::ReLU<double>>{{}, cnn::MaxPool<double>{2, 3}}, {2, 3, 8, 8});
    check(Conv<double>{3, 4, 1, {.stride = 2}}, {2, 3, 7, 6});
    check(Conv<double>{4, 4, 1, {.stride = 3, .groups = 4}}, {2, 4, 7, 8});  // depthwise, gaps
    check(Conv<double>{16, 16, 3, {.stride = 4, .padding = 1, .groups = 16}}, {2, 16, 9, 12});
    check(cnn::ConvActMaxPool<double, cnn::ReLU<double>>{Conv<double>{2, 3, 3, {.padding = 1}}, {}, cnn::MaxPool<double>{2, 3}},
          {3, 2, 8, 8});
    check(cnn::BatchNorm2D<double>{3}, {2, 3, 4, 5});
    check(cnn::Dropout<double>{0.3}, {2, 3, 4, 5});
    check(cnn::GlobalAvgPool<double>{}, {2, 3, 4, 5});
    check(cnn::Tanh<double>{}, {2, 3, 4, 5});
    check(cnn::GELU<double>{}, {2, 3, 4, 5});
    check(cnn::Softmax<double>{}, {2, 3, 4, 5});
}

TEST_CASE("A chain's steps share two gradient buffers and run ReLU in place, with the gradients of separate buffers",
          "[graph][memory]") {
    // The chain writes each step's input gradient into one of two buffers, over what an
    // earlier step of the same backward pass left there; it runs a ReLU after a convolution in
    // place, on the convolution's output, and a residual block's body writes the block's
    // output. Here every layer's gradients, computed layer by layer into fresh buffers, must
    // come out bit for bit the same, through gaps (stride 3 pools, a 1x1 stride-2
    // convolution), views (Flatten, here with two steps after it, which take turns with the
    // step before it) and blocks.
    std::mt19937_64 rng(23);
    using T = double;
    auto chain = cnn::Sequential{Conv<T>{2, 4, 3, {.padding = 1}}, cnn::BatchNorm2D<T>{4}, cnn::ReLU<T>{},
                                 cnn::MaxPool<T>{2, 3},  // 12x11 -> 4x4: a third of the cells in no window
                                 identity_block<T>(4),
                                 Conv<T>{4, 6, 1, {.stride = 2}},  // 4x4 -> 2x2: three quarters skipped
                                 cnn::ReLU<T>{},                   // in place, on the convolution's output
                                 cnn::MeanPool<T>{1, 2},  // and again
                                 cnn::Flatten<T>{}, cnn::Dense<T>{6, 5}, cnn::ReLU<T>{}, cnn::Dense<T>{5, 3}};
    const Shape<4> input{3, 2, 12, 11};
    const auto x = cnn::test::random_tensor<T>(input, rng);
    const auto dy = cnn::test::random_tensor<T>(chain.output_shape(input), rng);

    // The chain, twice (the second pass reads buffers the first left full).
    std::vector<T> chained;
    decltype(chain)::Workspace workspace;
    for (int pass = 0; pass < 2; ++pass) {
        chain.zero_gradients();
        chain.forward(x.view(), workspace, cnn::Mode::training);
        chain.backward(dy.view(), workspace);
        chained = cnn::test::parameter_gradients(chain);
    }

    // Layer by layer, each input gradient in a buffer of its own.
    chain.zero_gradients();
    const auto shapes = chain.shapes(input);
    std::vector<Tensor<T, 4>> outputs, gradients;
    cnn::Scratch<T> scratch;
    std::vector<std::function<void()>> backward;
    outputs.reserve(shapes.size());  // the closures below index it; it never moves
    outputs.emplace_back(input);
    std::copy(x.begin(), x.end(), outputs[0].begin());
    for (std::size_t i = 0; i < shapes.size(); ++i) gradients.emplace_back(shapes[i]);
    std::copy(dy.begin(), dy.end(), gradients.back().begin());
    chain.for_each_layer([&](std::size_t i, auto& layer) {
        outputs.emplace_back(shapes[i + 1]);
        auto state = std::make_shared<cnn::layer_state_t<std::remove_cvref_t<decltype(layer)>>>();
        cnn::detail::forward(layer, outputs[i].cview(), outputs[i + 1].view(),
                             cnn::Context<T>{scratch, cnn::Mode::training}, *state);
        backward.emplace_back([&, at = &layer, i, state] {
            cnn::detail::backward(*at, outputs[i].cview(), outputs[i + 1].cview(), gradients[i + 1].cview(),
                                  i == 0 ? cnn::TensorView<T, 4>{} : gradients[i].view(),
                                  cnn::Context<T>{scratch, cnn::Mode::training}, *state, cnn::Accumulate::no);
        });
    });
    for (auto step = backward.rbegin(); step != backward.rend(); ++step) (*step)();
    const std::vector<T> separate = cnn::test::parameter_gradients(chain);

    REQUIRE(chained.size() == separate.size());
    for (std::size_t i = 0; i < separate.size(); ++i) {
        INFO("gradient value " << i);
        REQUIRE(std::isfinite(chained[i]));
        REQUIRE(chained[i] == separate[i]);
    }
}

TEST_CASE("The mode and the random stream reach every layer of a nest", "[graph][context]") {
    auto net = cnn::Sequential{cnn::Residual{cnn::Sequential{cnn::Parallel{cnn::Add{}, Jitter<double>{}, Jitter<double>{}}}},
                               cnn::Flatten<double>{}};
    decltype(net)::Workspace workspace;
    const Tensor<double, 4> x({2, 1, 2, 2}, 1.0);
    const auto inference = net.forward(x, workspace);
    CHECK(std::ranges::all_of(inference, [](double v) { return v == 3.0; }));  // x + (x + x)

    CHECK_THROWS_WITH(net.forward(x, workspace, cnn::Mode::training),
                      "Jitter draws random numbers in training: pass a cnn::Random to forward");
    cnn::Random a{5}, b{5};
    const std::vector<double> first = [&] {
        const auto y = net.forward(x, workspace, cnn::Mode::training, &a);
        return std::vector<double>(y.begin(), y.end());
    }();
    CHECK(std::ranges::all_of(first, [](double v) { return v > 3.0 && v < 5.0; }));
    const auto again = net.forward(x, workspace, cnn::Mode::training, &b);
    CHECK(std::ranges::equal(again, first));  // the same seed, the same draws
}

TEST_CASE("Shape errors name the path to the failing layer, and a merge of disagreeing branches both shapes",
          "[graph][errors]") {
    SECTION("a layer inside a residual body") {
        auto net = cnn::Sequential{Conv<float>{1, 8, 3, {.padding = 1}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                                   cnn::Residual{cnn::Sequential{cnn::ReLU<float>{}, Conv<float>{16, 32, 3}}}};
        CHECK_THROWS_WITH(net.output_shape({1, 1, 8, 8}),
                          "layer 3 (Residual) > body > layer 1: Conv2D(16->32, 3x3, stride 1, padding 0) expects 16 "
                          "input channels, got input [1, 8, 4, 4]");
    }
    SECTION("a body and a shortcut that disagree") {
        auto block = cnn::Residual{cnn::Sequential{Conv<float>{2, 4, 3, {.stride = 2, .padding = 1}}}};
        CHECK_THROWS_WITH(cnn::Sequential{std::move(block)}.output_shape({1, 2, 6, 6}),
                          "layer 0 (Residual) > Residual: the body gives [1, 4, 3, 3] and the shortcut [1, 2, 6, 6] "
                          "for input [1, 2, 6, 6]; they are added, so they must have the same shape");
    }
    SECTION("added branches that disagree") {
        auto net = cnn::Sequential{cnn::Parallel{cnn::Add{}, Conv<float>{2, 4, 1}, Conv<float>{2, 4, 3}}};
        CHECK_THROWS_WITH(net.output_shape({1, 2, 5, 5}),
                          Catch::Contains("branch 0 gives [1, 4, 5, 5] and branch 1 gives [1, 4, 3, 3]"));
    }
    SECTION("concatenated branches that disagree") {
        auto net = cnn::Sequential{cnn::Parallel{cnn::Concat{}, Conv<float>{2, 4, 1}, Conv<float>{2, 1, 3}}};
        CHECK_THROWS_WITH(net.output_shape({1, 2, 5, 5}),
                          Catch::Contains("branch 0 gives [1, 4, 5, 5] and branch 1 gives [1, 1, 3, 3]") &&
                              Catch::Contains("N, H and W must agree"));
    }
    SECTION("deep inside a branch") {
        auto net = cnn::Sequential{cnn::Parallel{cnn::Concat{}, Conv<float>{2, 4, 1},
                                                 cnn::Sequential{cnn::ReLU<float>{}, cnn::Dense<float>{3, 1}}}};
        CHECK_THROWS_WITH(net.output_shape({1, 2, 5, 5}),
                          Catch::StartsWith("layer 0 (Parallel(Concat, 2 branches)) > branch 1 > layer 1: Dense(3->1)"));
    }
}

TEST_CASE("A summary shows the nest, and counts parameters at every level", "[graph][summary]") {
    auto net = nested_network<float>();
    const std::string text = net.summary({1, 2, 8, 8});
    INFO(text);
    CHECK_THAT(text, Catch::Contains("3.0.body.0 "));  // projection block > residual > body > conv
    CHECK_THAT(text, Catch::Contains("4.body.0.2.0.body.0"));  // the residual inside the third Inception branch
    CHECK_THAT(text, Catch::Contains("Parallel(Concat, 3 branches)"));
    CHECK_THAT(text, Catch::Contains(std::to_string(net.parameter_count()) + " parameters"));
}

TEST_CASE("Optimizers update weights and biases, decay weights only and never touch buffers", "[graph][roles]") {
    const auto run = [](auto optimizer) {
        std::vector<float> values{1, 2, 3, 4, 5}, gradients{0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
        const cnn::ParameterGroup<float> group{values, gradients, {.weights = 2, .biases = 2, .buffers = 1}};
        optimizer.step(std::span{&group, 1});
        return values;
    };
    SECTION("SGD") {
        const auto after = run(cnn::SGD<float>{{.learning_rate = 0.1, .weight_decay = 0.5}});
        CHECK(after[0] == Approx(1 - 0.1 * (0.5 + 0.5 * 1)));
        CHECK(after[1] == Approx(2 - 0.1 * (0.5 + 0.5 * 2)));
        CHECK(after[2] == Approx(3 - 0.1 * 0.5));  // a bias: no decay
        CHECK(after[3] == Approx(4 - 0.1 * 0.5));
        CHECK(after[4] == 5);  // a buffer: untouched
    }
    SECTION("SGD with momentum") {
        const auto after = run(cnn::SGD<float>{{.learning_rate = 0.1, .momentum = 0.9, .weight_decay = 0.5}});
        CHECK(after[2] == Approx(3 - 0.1 * 0.5));
        CHECK(after[4] == 5);
    }
    SECTION("Adam") {
        const auto after = run(cnn::Adam<float>{{.learning_rate = 0.1, .weight_decay = 0.5}});
        CHECK(after[0] == Approx(1 - 0.1));  // the first Adam step moves by lr whatever the gradient
        CHECK(after[2] == Approx(3 - 0.1));
        CHECK(after[4] == 5);
    }
    SECTION("the roles the library's layers declare") {
        auto net = cnn::Sequential{Conv<float>{1, 2, 3}, cnn::ReLU<float>{}, cnn::Flatten<float>{}, cnn::Dense<float>{2, 3}};
        const auto groups = net.parameter_groups();
        REQUIRE(groups.size() == 2);
        CHECK(groups[0].layout.weights == 18);
        CHECK(groups[0].layout.biases == 2);
        CHECK(groups[1].layout.weights == 6);
        CHECK(groups[1].layout.biases == 3);
        CHECK(groups[1].layout.buffers == 0);
    }
}

TEST_CASE("Buffers are saved, loaded, checkpointed and restored by early stopping, never touched by an optimizer",
          "[graph][roles]") {
    const auto make = [] {
        return cnn::Sequential{cnn::Flatten<double>{}, CountingScale<double>{}, cnn::Dense<double>{64, 4}};
    };
    const cnn::Dataset data = cnn::test::make_bars(96, 3);
    auto net = make();
    cnn::Random rng{8};
    net.initialize(rng);
    cnn::SGD<double> sgd{{.learning_rate = 2.0, .momentum = 0.9, .weight_decay = 0.1}};
    std::vector<double> counts;  // the buffer after each epoch
    cnn::FitOptions options{.epochs = 40, .batch_size = 16, .validation_fraction = 0.25, .early_stopping_patience = 1};
    options.on_epoch = [&](const cnn::EpochReport&) { counts.push_back(net.layer<1>().count()); };
    const auto history = cnn::fit(net, sgd, data, rng, options);
    // 72 training samples in batches of 16: 5 backward passes an epoch; the optimizer, with a
    // gradient of 1000 and weight decay, left the count alone.
    REQUIRE(history.stopped_early);
    REQUIRE(history.best_epoch < counts.size());
    CHECK(counts[0] == 5.0);
    CHECK(net.layer<1>().count() == counts[history.best_epoch - 1]);  // restored with the best weights

    const auto dir = cnn::test::scratch_directory("buffers");
    cnn::save_model(net, dir / "counting.cnn");
    auto loaded = make();
    cnn::load_model(loaded, dir / "counting.cnn");
    CHECK(loaded.layer<1>().count() == net.layer<1>().count());

    auto interrupted = make();
    interrupted.initialize(rng);
    std::size_t steps = 0;
    cnn::FitOptions stop{.epochs = 2, .batch_size = 16};
    stop.should_stop = [&] { return ++steps == 7; };
    const auto partial = cnn::fit(interrupted, sgd, data, rng, stop);
    REQUIRE(partial.interrupted);
    cnn::save_checkpoint(interrupted, *partial.resume, dir / "counting.checkpoint");
    auto resumed = make();
    (void)cnn::load_checkpoint(resumed, dir / "counting.checkpoint");
    CHECK(interrupted.layer<1>().count() > 0.0);
    CHECK(resumed.layer<1>().count() == interrupted.layer<1>().count());
}

TEST_CASE("Nested networks save and load; another nest is refused naming the path", "[graph][model]") {
    const auto dir = cnn::test::scratch_directory("nested_model");
    auto net = nested_network<float>();
    cnn::Random rng{4};
    net.initialize(rng);
    cnn::save_model(net, dir / "nested.cnn");
    auto loaded = nested_network<float>();
    cnn::load_model(loaded, dir / "nested.cnn");
    CHECK(cnn::test::parameter_values(loaded) == cnn::test::parameter_values(net));

    SECTION("a different layer deep inside") {
        auto other = cnn::Sequential{Conv<float>{2, 4, 3, {.padding = 1}}, cnn::ReLU<float>{}, identity_block<float>(4),
                                     projection_block<float>(4, 5)};
        CHECK_THROWS_WITH(cnn::load_model(other, dir / "nested.cnn"),
                          Catch::Contains("saved from another architecture: the network has 9 layers in the file and "
                                          "4 layers in this network"));
        auto deeper = cnn::Sequential{Conv<float>{2, 4, 3, {.padding = 1}},
                                      cnn::ReLU<float>{},
                                      identity_block<float>(4),
                                      projection_block<float>(4, 5),
                                      cnn::ReLU<float>{},
                                      cnn::ReLU<float>{},
                                      cnn::MaxPool<float>{2},
                                      cnn::Flatten<float>{},
                                      cnn::Dense<float>{20, 3}};
        CHECK_THROWS_WITH(cnn::load_model(deeper, dir / "nested.cnn"),
                          Catch::Contains("saved from another architecture: layer 3 (Sequential) > layer 0 (Residual) > "
                                          "body > layer 0 is Conv2D(4->6, 3x3, stride 2, padding 1) in the file and "
                                          "Conv2D(4->5, 3x3, stride 2, padding 1) in this network"));
    }
}

TEST_CASE("A model file of version 1 (the library's 0.2) still loads", "[graph][model]") {
    // tests/data/model_v1_small.cnn was written by cnn 0.2.0 from this network, initialised
    // with Random{20261130}; the initialisation draws the same values today.
    auto net = cnn::Sequential{Conv<float>{1, 3, 3, {.padding = 1}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                               cnn::Flatten<float>{}, cnn::Dense<float>{48, 4}};
    const std::string metadata = cnn::load_model(net, std::string(CNN_TEST_DATA_DIR) + "/model_v1_small.cnn");
    CHECK(metadata == "written=by cnn 0.2.0\n");
    auto expected = cnn::Sequential{Conv<float>{1, 3, 3, {.padding = 1}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                                    cnn::Flatten<float>{}, cnn::Dense<float>{48, 4}};
    cnn::Random rng{20261130};
    expected.initialize(rng);
    CHECK(std::ranges::equal(net.layer<0>().parameters(), expected.layer<0>().parameters()));
    CHECK(std::ranges::equal(net.layer<4>().parameters(), expected.layer<4>().parameters()));

    auto other = cnn::Sequential{Conv<float>{1, 5, 3, {.padding = 1}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                                 cnn::Flatten<float>{}, cnn::Dense<float>{80, 4}};
    CHECK_THROWS_WITH(cnn::load_model(other, std::string(CNN_TEST_DATA_DIR) + "/model_v1_small.cnn"),
                      Catch::Contains("saved from another architecture: layer 0 is Conv2D(1->3, 3x3, stride 1, padding 1) "
                                      "in the file and Conv2D(1->5, 3x3, stride 1, padding 1) in this network"));
}
