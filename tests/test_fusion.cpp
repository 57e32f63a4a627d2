// One property for every fusion rule of cnn/graph/fuse.hpp: a Sequential, which runs the
// fused steps, gives the same bits as its layers run one by one (forward output, input
// gradient, every parameter gradient, the buffers a training step moves), on random shapes,
// at 1 and 3 threads; and a fusion never changes the parameters or the model file.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <random>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "test_support.hpp"

using cnn::Shape;
using cnn::Tensor;

namespace {

/// f(x) = x for x > 0, x / 8 otherwise: monotone non-decreasing, and not ReLU, so that the
/// generic ActMaxPool (pool first, then the activation on the pooled values) runs for it.
template <cnn::Scalar T>
class GentleSlope {
public:
    using value_type = T;
    static constexpr bool monotone_non_decreasing = true;

    [[nodiscard]] std::string describe() const { return "GentleSlope"; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return in; }
    [[nodiscard]] std::span<T> parameters() noexcept { return {}; }
    [[nodiscard]] std::span<const T> parameters() const noexcept { return {}; }
    [[nodiscard]] std::span<T> gradients() noexcept { return {}; }
    void forward(cnn::TensorView<const T, 4> x, cnn::TensorView<T, 4> y, cnn::Context<T> /*context*/) const {
        for (std::size_t i = 0; i < x.size(); ++i) y.data()[i] = x.data()[i] > 0 ? x.data()[i] : x.data()[i] / 8;
    }
    void backward(cnn::TensorView<const T, 4> x, cnn::TensorView<const T, 4> /*y*/, cnn::TensorView<const T, 4> dy,
                  cnn::TensorView<T, 4> dx, cnn::Context<T> /*context*/, cnn::Accumulate accumulate) {
        if (dx.data() == nullptr) return;
        for (std::size_t i = 0; i < x.size(); ++i) {
            const T d = x.data()[i] > 0 ? dy.data()[i] : dy.data()[i] / 8;
            dx.data()[i] = accumulate == cnn::Accumulate::yes ? dx.data()[i] + d : d;
        }
    }
};

std::size_t pick(std::mt19937_64& rng, std::size_t low, std::size_t high) {
    return std::uniform_int_distribution<std::size_t>(low, high)(rng);
}

/// A max pool of window h x w, stride 1 to 3, and padding of up to half the window.
template <class T>
cnn::MaxPool<T> random_pool(std::mt19937_64& rng, std::size_t h, std::size_t w) {
    const std::size_t stride = pick(rng, 1, 3), pad_h = pick(rng, 0, h / 2), pad_w = pick(rng, 0, w / 2);
    return cnn::MaxPool<T>{{h, w}, {.stride = stride, .padding = {pad_h, pad_w}}};
}

/// What a pass gives: the output, the input gradient and all parameter gradients.
template <class T>
struct Pass {
    std::vector<T> output, input_gradient, parameter_gradients;
};

/// The layers of `net` one at a time, each with its own buffers and state (no fusion anywhere).
template <class Net>
Pass<typename Net::value_type> unfused(Net& net, const Tensor<typename Net::value_type, 4>& x,
                                       const Tensor<typename Net::value_type, 4>& dy, cnn::Mode mode) {
    using T = typename Net::value_type;
    cnn::Scratch<T> scratch;
    const cnn::Context<T> context{scratch, mode};
    const auto shapes = net.shapes(x.shape());
    std::vector<Tensor<T, 4>> outputs, gradients;
    for (std::size_t i = 0; i < Net::layer_count; ++i) {
        outputs.emplace_back(shapes[i + 1]);
        gradients.emplace_back(shapes[i]);
    }
    net.zero_gradients();
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        std::tuple<cnn::layer_state_t<std::remove_cvref_t<decltype(net.template layer<I>())>>...> states;
        ((cnn::detail::forward(net.template layer<I>(), I == 0 ? x.view() : outputs[I == 0 ? 0 : I - 1].cview(),
                               outputs[I].view(), context, std::get<I>(states))),
         ...);
        // Backward in reverse: layer i writes dE/d(its input) into gradients[i].
        constexpr std::size_t last = Net::layer_count - 1;
        (
            [&] {
                constexpr std::size_t i = last - I;
                const auto in = i == 0 ? x.view() : outputs[i == 0 ? 0 : i - 1].cview();
                const auto d_out = i == last ? dy.view() : gradients[i == last ? 0 : i + 1].cview();
                cnn::detail::backward(net.template layer<i>(), in, outputs[i].cview(), d_out, gradients[i].view(),
                                      context, std::get<i>(states), cnn::Accumulate::no);
            }(),
            ...);
    }(std::make_index_sequence<Net::layer_count>{});
    Pass<T> pass;
    pass.output.assign(outputs.back().begin(), outputs.back().end());
    pass.input_gradient.assign(gradients[0].begin(), gradients[0].end());
    pass.parameter_gradients = cnn::test::parameter_gradients(net);
    return pass;
}

/// The network as a whole, through its layer interface (fused steps, views).
template <class Net>
Pass<typename Net::value_type> fused(Net& net, const Tensor<typename Net::value_type, 4>& x,
                                     const Tensor<typename Net::value_type, 4>& dy, cnn::Mode mode) {
    using T = typename Net::value_type;
    cnn::Scratch<T> scratch;
    typename Net::State state;
    Tensor<T, 4> y(net.output_shape(x.shape())), dx(x.shape());
    net.zero_gradients();
    net.forward(x.view(), y.view(), {scratch, mode}, state);
    net.backward(x.view(), y.cview(), dy.view(), dx.view(), {scratch, mode}, state, cnn::Accumulate::no);
    Pass<T> pass;
    pass.output.assign(y.begin(), y.end());
    pass.input_gradient.assign(dx.begin(), dx.end());
    pass.parameter_gradients = cnn::test::parameter_gradients(net);
    return pass;
}

/// The property, for networks made by make(rng) (random hyper-parameters) on inputs of
/// shape input(rng).
template <class Make, class Input>
void check_rule(const char* rule, Make make, Input input, cnn::Mode mode = cnn::Mode::inference) {
    std::mt19937_64 rng(31);
    const std::size_t threads_before = cnn::threads();
    for (int round = 0; round < 6; ++round) {
        for (std::size_t threads : {1, 3}) {
            cnn::set_threads(threads);
            std::mt19937_64 case_rng(static_cast<std::uint64_t>(round) * 1000 + 7);
            auto net = make(case_rng);
            using T = typename decltype(net)::value_type;
            const Shape<4> shape = input(case_rng, net);
            INFO(rule << ", round " << round << ", " << threads << " threads, input " << cnn::to_string(shape)
                      << (mode == cnn::Mode::training ? ", training" : ", inference"));
            // Weights and biases in [-0.5, 0.5); buffers (BatchNorm2D's running mean and
            // variance) in [0.5, 1.5), a variance having to be positive.
            for (const auto& group : net.parameter_groups()) {
                const std::size_t learned = group.layout.learned();
                cnn::test::fill_uniform<T, 1>({group.values.data(), {learned}}, rng, -0.5, 0.5);
                cnn::test::fill_uniform<T, 1>({group.values.data() + learned, {group.values.size() - learned}}, rng,
                                              0.5, 1.5);
            }
            const auto x = cnn::test::random_tensor<T>(shape, rng);
            const auto dy = cnn::test::random_tensor<T>(net.output_shape(shape), rng);
            // Training moves BatchNorm2D's running statistics (buffers): both passes start from
            // the same values and must leave the same values.
            const std::vector<T> start = cnn::test::parameter_values(net);
            const Pass<T> one_by_one = unfused(net, x, dy, mode);
            const std::vector<T> after_one_by_one = cnn::test::parameter_values(net);
            cnn::test::set_parameter_values(net, start);
            const Pass<T> as_one = fused(net, x, dy, mode);
            CHECK(as_one.output == one_by_one.output);
            CHECK(as_one.input_gradient == one_by_one.input_gradient);
            CHECK(as_one.parameter_gradients == one_by_one.parameter_gradients);
            CHECK(cnn::test::parameter_values(net) == after_one_by_one);
        }
    }
    cnn::set_threads(threads_before);
}

}  // namespace

// Which steps a chain makes: the library's monotone activations join the convolution before
// a max pool; an activation that does not give its scalar function joins the pool only.
template <class A>
using ConvActPoolPlan = cnn::detail::ChainPlan<float, cnn::Conv2D<float>, A, cnn::MaxPool<float>>;
static_assert(std::is_same_v<ConvActPoolPlan<cnn::ReLU<float>>::step_type<0>, cnn::ConvActMaxPool<float, cnn::ReLU<float>>>);
static_assert(std::is_same_v<ConvActPoolPlan<cnn::Sigmoid<float>>::step_type<0>,
                             cnn::ConvActMaxPool<float, cnn::Sigmoid<float>>>);
static_assert(std::is_same_v<ConvActPoolPlan<cnn::Tanh<float>>::step_type<0>, cnn::ConvActMaxPool<float, cnn::Tanh<float>>>);
static_assert(std::is_same_v<ConvActPoolPlan<cnn::LeakyReLU<float>>::step_type<0>,
                             cnn::ConvActMaxPool<float, cnn::LeakyReLU<float>>>);
static_assert(std::is_same_v<ConvActPoolPlan<cnn::ELU<float>>::step_type<0>, cnn::ConvActMaxPool<float, cnn::ELU<float>>>);
static_assert(ConvActPoolPlan<cnn::GELU<float>>::step_count == 3);  // GELU dips: no fusion at all
static_assert(std::is_same_v<ConvActPoolPlan<GentleSlope<float>>::step_type<1>,
                             cnn::ActMaxPool<float, GentleSlope<float>>>);
// A batch normalisation and a ReLU become one step, unless a MaxPool follows the ReLU (which
// then joins it); another activation stays on its own.
using NormPlan = cnn::detail::ChainPlan<float, cnn::Conv2D<float>, cnn::BatchNorm2D<float>, cnn::ReLU<float>>;
static_assert(NormPlan::step_count == 2 && std::is_same_v<NormPlan::step_type<1>, cnn::BatchNormReLU<float>>);
using NormPoolPlan =
    cnn::detail::ChainPlan<float, cnn::BatchNorm2D<float>, cnn::ReLU<float>, cnn::MaxPool<float>>;
static_assert(std::is_same_v<NormPoolPlan::step_type<1>, cnn::ActMaxPool<float, cnn::ReLU<float>>>);
static_assert(cnn::detail::ChainPlan<float, cnn::BatchNorm2D<float>, cnn::Tanh<float>>::step_count == 2);
// Fused or not, layer<I>() is the I-th layer as written (a fused step's layers() in order).
using FusedChain = cnn::Sequential<cnn::Conv2D<float>, cnn::ReLU<float>, cnn::MaxPool<float>, cnn::BatchNorm2D<float>,
                                   cnn::ReLU<float>, cnn::Tanh<float>, cnn::MaxPool<float>>;
template <std::size_t I>
using LayerOf = std::remove_cvref_t<decltype(std::declval<FusedChain&>().template layer<I>())>;
static_assert(std::is_same_v<LayerOf<0>, cnn::Conv2D<float>> && std::is_same_v<LayerOf<1>, cnn::ReLU<float>> &&
              std::is_same_v<LayerOf<2>, cnn::MaxPool<float>> && std::is_same_v<LayerOf<3>, cnn::BatchNorm2D<float>> &&
              std::is_same_v<LayerOf<4>, cnn::ReLU<float>> && std::is_same_v<LayerOf<5>, cnn::Tanh<float>> &&
              std::is_same_v<LayerOf<6>, cnn::MaxPool<float>>);

// A network always hands BatchNormReLU a dx to write, where it keeps the gated deltas between
// its two passes; called by hand it may be asked to add into dx, or for no dx at all, and then
// keeps them in the context's scratch memory.
TEMPLATE_TEST_CASE("BatchNormReLU adds into dx, or gives parameter gradients only, as its two layers do",
                   "[fusion]", float, double) {
    using T = TestType;
    std::mt19937_64 rng(41);
    const std::size_t threads_before = cnn::threads();
    for (const std::size_t threads : {std::size_t{1}, std::size_t{3}}) {
        cnn::set_threads(threads);
        const Shape<4> shape{pick(rng, 2, 5), pick(rng, 1, 6), pick(rng, 1, 9), pick(rng, 1, 40)};
        const auto x = cnn::test::random_tensor<T>(shape, rng), dy = cnn::test::random_tensor<T>(shape, rng);
        const auto dx_before = cnn::test::random_tensor<T>(shape, rng);
        cnn::BatchNorm2D<T> norm{shape[1]};
        std::uniform_real_distribution<double> value(-1.0, 1.0);
        for (std::size_t c = 0; c < shape[1]; ++c) {
            norm.gamma()[c] = static_cast<T>(1.0 + value(rng) / 2);
            norm.beta()[c] = static_cast<T>(value(rng));
        }
        cnn::BatchNormReLU<T> fused{norm, cnn::ReLU<T>{}};
        cnn::ReLU<T> relu;
        for (const bool want_dx : {true, false}) {
            CAPTURE(threads, shape, want_dx);
            cnn::Scratch<T> scratch;
            const cnn::Context<T> context{scratch, cnn::Mode::training};
            // the two layers: dE/dy through the ReLU into a tensor of its own, then the normalisation
            typename cnn::BatchNorm2D<T>::State norm_state;
            Tensor<T, 4> normalised(shape), y(shape), gated(shape), dx = dx_before;
            std::ranges::fill(norm.gradients(), T{0});
            norm.forward(x.view(), normalised.view(), context, norm_state);
            relu.forward(normalised.cview(), y.view(), context);
            relu.backward(normalised.cview(), y.cview(), dy.view(), gated.view(), context);
            norm.backward(x.view(), normalised.cview(), gated.cview(), want_dx ? dx.view() : cnn::TensorView<T, 4>{},
                          context, norm_state, cnn::Accumulate::yes);
            // fused
            typename cnn::BatchNormReLU<T>::State fused_state;
            Tensor<T, 4> fused_y(shape), fused_dx = dx_before;
            auto& fused_norm = std::get<0>(fused.layers());
            std::ranges::fill(fused_norm.gradients(), T{0});
            fused.forward(x.view(), fused_y.view(), context, fused_state);
            fused.backward(x.view(), fused_y.cview(), dy.view(), want_dx ? fused_dx.view() : cnn::TensorView<T, 4>{},
                           context, fused_state, cnn::Accumulate::yes);
            CHECK(std::ranges::equal(fused_y, y));
            CHECK(std::ranges::equal(fused_dx, dx));  // dx_before + dE/dx, or dx_before untouched
            CHECK(std::ranges::equal(fused_norm.gradients(), norm.gradients()));
            CHECK(std::ranges::equal(fused_norm.parameters(), norm.parameters()));  // the running statistics
            if (want_dx) CHECK_FALSE(std::ranges::equal(dx, dx_before));
        }
    }
    cnn::set_threads(threads_before);
}

// The fused backward writes the gated deltas into dx in its first pass, so dx's shape is
// checked before anything is written or added.
TEST_CASE("BatchNormReLU refuses an input gradient of the wrong shape before it writes anything", "[fusion]") {
    std::mt19937_64 rng(43);
    const Shape<4> shape{3, 2, 4, 5};
    const auto x = cnn::test::random_tensor<float>(shape, rng), dy = cnn::test::random_tensor<float>(shape, rng);
    cnn::BatchNormReLU<float> fused{cnn::BatchNorm2D<float>{2}, cnn::ReLU<float>{}};
    cnn::Scratch<float> scratch;
    const cnn::Context<float> context{scratch, cnn::Mode::training};
    typename cnn::BatchNormReLU<float>::State state;
    Tensor<float, 4> y(shape);
    fused.forward(x.view(), y.view(), context, state);
    Tensor<float, 4> small({3, 2, 4, 4}, 0.5f);
    const auto& norm = std::get<0>(fused.layers());
    const std::vector<float> parameters(norm.parameters().begin(), norm.parameters().end());
    CHECK_THROWS_WITH(fused.backward(x.view(), y.cview(), dy.view(), small.view(), context, state, cnn::Accumulate::no),
                      Catch::Contains("input gradient") && Catch::Contains("[3, 2, 4, 4]"));
    CHECK(std::ranges::all_of(small, [](float v) { return v == 0.5f; }));
    CHECK(std::ranges::all_of(std::get<0>(fused.layers()).gradients(), [](float g) { return g == 0.0f; }));
    CHECK(std::ranges::equal(norm.parameters(), parameters));  // the running statistics did not move
}

TEMPLATE_TEST_CASE("Every fusion gives the bits of its layers run one by one", "[fusion]", float, double) {
    using T = TestType;
    SECTION("Conv2D, a monotone activation, MaxPool -> ConvActMaxPool") {
        // Windows of 2 or 3 with stride 1 to the window, so that some overlap: a cell that
        // wins two windows gets the sum of their deltas, multiplied by f' once.
        const auto conv_act_pool = [](const char* rule, auto activation) {
            check_rule(
                rule,
                [&](std::mt19937_64& rng) {
                    // every other round depthwise (the grouped kernel, whole batch at once)
                    const std::size_t c = pick(rng, 1, 3), groups = pick(rng, 0, 1) == 1 ? c : 1;
                    const std::size_t k = groups == 1 ? pick(rng, 1, 5) : c * pick(rng, 1, 2), f = pick(rng, 1, 3);
                    const std::size_t window = pick(rng, 2, 3), stride = pick(rng, 1, window), pad = pick(rng, 0, 1);
                    return cnn::Sequential{
                        cnn::Conv2D<T>{c, k, f, {.stride = static_cast<std::ptrdiff_t>(pick(rng, 1, 2)),
                                                 .padding = static_cast<std::ptrdiff_t>(pick(rng, 0, 1)),
                                                 .groups = static_cast<std::ptrdiff_t>(groups)}},
                        activation, cnn::MaxPool<T>{window, {.stride = stride, .padding = pad}}, cnn::Flatten<T>{}};
                },
                [](std::mt19937_64& rng, const auto& net) {
                    return Shape<4>{pick(rng, 1, 9), net.template layer<0>().in_channels(), pick(rng, 7, 12),
                                    pick(rng, 7, 12)};
                });
        };
        conv_act_pool("ConvActMaxPool<ReLU>", cnn::ReLU<T>{});
        conv_act_pool("ConvActMaxPool<Sigmoid>", cnn::Sigmoid<T>{});
        conv_act_pool("ConvActMaxPool<Tanh>", cnn::Tanh<T>{});
        conv_act_pool("ConvActMaxPool<LeakyReLU>", cnn::LeakyReLU<T>{0.1});
        conv_act_pool("ConvActMaxPool<ELU>", cnn::ELU<T>{0.5});
        // A "same" 3x3 convolution on 8 channels or more, whose passes run on the implicit
        // lowering (the deltas computed into the backward pass's own memory, sample by sample).
        check_rule(
            "ConvActMaxPool<ReLU>, implicit lowering",
            [](std::mt19937_64& rng) {
                return cnn::Sequential{cnn::Conv2D<T>{pick(rng, 8, 12), pick(rng, 8, 12), 3, {.padding = 1}},
                                       cnn::ReLU<T>{}, cnn::MaxPool<T>{2}, cnn::Flatten<T>{}};
            },
            [](std::mt19937_64& rng, const auto& net) {
                return Shape<4>{pick(rng, 1, 9), net.template layer<0>().in_channels(), pick(rng, 7, 12),
                                pick(rng, 7, 12)};
            });
    }
    SECTION("ReLU, MaxPool -> ActMaxPool (the one-pass kernel)") {
        check_rule(
            "ActMaxPool<ReLU>",
            [](std::mt19937_64& rng) {
                const std::size_t window = pick(rng, 1, 3);
                return cnn::Sequential{cnn::ReLU<T>{}, random_pool<T>(rng, window, pick(rng, 1, 3))};
            },
            [](std::mt19937_64& rng, const auto&) {
                return Shape<4>{pick(rng, 1, 4), pick(rng, 1, 5), pick(rng, 3, 9), pick(rng, 3, 9)};
            });
    }
    SECTION("another monotone activation, MaxPool -> ActMaxPool (generic)") {
        check_rule(
            "ActMaxPool<GentleSlope>",
            [](std::mt19937_64& rng) {
                const std::size_t h = pick(rng, 1, 3), w = pick(rng, 1, 3);
                return cnn::Sequential{GentleSlope<T>{}, random_pool<T>(rng, h, w)};
            },
            [](std::mt19937_64& rng, const auto&) {
                return Shape<4>{pick(rng, 1, 4), pick(rng, 1, 5), pick(rng, 3, 9), pick(rng, 3, 9)};
            });
    }
    SECTION("the library's monotone activations, MaxPool -> ActMaxPool (generic)") {
        const auto input = [](std::mt19937_64& rng, const auto&) {
            return Shape<4>{pick(rng, 1, 4), pick(rng, 1, 5), pick(rng, 3, 9), pick(rng, 3, 9)};
        };
        const auto pool = [](std::mt19937_64& rng) {
            const std::size_t h = pick(rng, 1, 3), w = pick(rng, 1, 3);
            return random_pool<T>(rng, h, w);
        };
        check_rule("ActMaxPool<Sigmoid>", [&](std::mt19937_64& rng) { return cnn::Sequential{cnn::Sigmoid<T>{}, pool(rng)}; },
                   input);
        check_rule("ActMaxPool<Tanh>", [&](std::mt19937_64& rng) { return cnn::Sequential{cnn::Tanh<T>{}, pool(rng)}; }, input);
        check_rule("ActMaxPool<LeakyReLU>",
                   [&](std::mt19937_64& rng) { return cnn::Sequential{cnn::LeakyReLU<T>{0.1}, pool(rng)}; }, input);
        check_rule("ActMaxPool<ELU>", [&](std::mt19937_64& rng) { return cnn::Sequential{cnn::ELU<T>{}, pool(rng)}; }, input);
    }
    SECTION("BatchNorm2D, ReLU -> BatchNormReLU, in training and in inference") {
        // After a convolution (its outputs straddle 0), on planes and on dense features
        // (N x C x 1 x 1); the chain's input gradient goes through the fused step.
        for (const cnn::Mode mode : {cnn::Mode::training, cnn::Mode::inference}) {
            check_rule(
                "BatchNormReLU",
                [](std::mt19937_64& rng) {
                    const std::size_t c = pick(rng, 1, 3), k = pick(rng, 1, 6);
                    return cnn::Sequential{cnn::Conv2D<T>{c, k, pick(rng, 1, 3), {.padding = 1}},
                                           cnn::BatchNorm2D<T>{k, {.momentum = 0.3}}, cnn::ReLU<T>{},
                                           cnn::Flatten<T>{}};
                },
                [](std::mt19937_64& rng, const auto& net) {
                    return Shape<4>{pick(rng, 2, 6), net.template layer<0>().in_channels(), pick(rng, 1, 9),
                                    pick(rng, 1, 9)};
                },
                mode);
            check_rule(
                "BatchNormReLU, dense features",
                [](std::mt19937_64& rng) {
                    const std::size_t features = pick(rng, 1, 9);
                    return cnn::Sequential{cnn::BatchNorm2D<T>{features}, cnn::ReLU<T>{},
                                           cnn::Dense<T>{features, pick(rng, 1, 4)}};
                },
                [](std::mt19937_64& rng, const auto& net) {
                    return Shape<4>{pick(rng, 2, 9), net.template layer<0>().channels(), 1, 1};
                },
                mode);
        }
    }
    SECTION("Flatten -> a view, in the middle and at the end of a chain") {
        check_rule(
            "Flatten",
            [](std::mt19937_64& rng) {
                const std::size_t c = pick(rng, 1, 3), out = pick(rng, 1, 4);
                return cnn::Sequential{cnn::Flatten<T>{}, cnn::Dense<T>{c * 16, out}, cnn::Flatten<T>{}};
            },
            [](std::mt19937_64& rng, const auto& net) {
                return Shape<4>{pick(rng, 1, 5), net.template layer<1>().in_features() / 16, 4, 4};
            });
    }
}

TEST_CASE("A fusion changes neither the parameters nor the model file", "[fusion][model]") {
    const auto dir = cnn::test::scratch_directory("fusion_file");
    // The same layers, fused by the chain and kept apart by Identity layers between them.
    auto fused_net = cnn::Sequential{cnn::Conv2D<float>{1, 2, 3}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2}};
    auto apart = cnn::Sequential{cnn::Conv2D<float>{1, 2, 3}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2}};
    cnn::Random a{3}, b{3};
    fused_net.initialize(a);
    apart.initialize(b);
    CHECK(std::ranges::equal(fused_net.layer<0>().parameters(), apart.layer<0>().parameters()));
    cnn::save_model(fused_net, dir / "fused.cnn");
    // A hand-written fusion holds the same layers; its parameters are the same values in the same order.
    auto by_hand = cnn::Sequential{cnn::ConvActMaxPool<float, cnn::ReLU<float>>{
        apart.layer<0>(), cnn::ReLU<float>{}, cnn::MaxPool<float>{2}}};
    CHECK(by_hand.parameter_count() == fused_net.parameter_count());
    CHECK(std::ranges::equal(by_hand.parameter_groups()[0].values, fused_net.parameter_groups()[0].values));
    // The file lists the three layers as written.
    std::ifstream in(dir / "fused.cnn", std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    CHECK_THAT(bytes, Catch::Contains("Conv2D(1->2, 3x3, stride 1, padding 0)\nReLU\nMaxPool(2x2, stride 2)\n"));
    auto loaded = cnn::Sequential{cnn::Conv2D<float>{1, 2, 3}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2}};
    cnn::load_model(loaded, dir / "fused.cnn");
    CHECK(std::ranges::equal(loaded.layer<0>().parameters(), fused_net.layer<0>().parameters()));
}
