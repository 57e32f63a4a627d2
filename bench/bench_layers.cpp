// The layers bound by memory traffic, beside a copy of the same bytes in the same process:
// BatchNorm2D (training and inference, forward and backward; and with a ReLU after it, as two
// layers and fused), Dropout (training),
// GlobalAvgPool and the depthwise 3x3 convolution (stride 1, padding 1: MobileNet's step; forward
// reads x and writes y, backward reads x and dy and writes dx), on the activations of the small
// ResNet's three stages at batch 64.
// GB/s counts the bytes a pass must move at least (BatchNorm2D forward: read x, write y;
// backward: read x and dy, write dx), so a layer at the copy's GB/s runs as fast as memory
// allows; the copy moves x to y. Argument 0 is the stage, argument 1 the thread count.
#include <cnn/cnn.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <string>

namespace {

struct Stage {
    const char* name;
    std::size_t channels, size;
};
constexpr Stage stages[] = {{"16x28x28", 16, 28}, {"32x14x14", 32, 14}, {"64x7x7", 64, 7}};
constexpr std::size_t batch = 64;

struct Setup {
    cnn::Tensor<float, 4> x, y, dy, dx;
    cnn::Scratch<float> scratch;
    cnn::Random random{1};
    explicit Setup(const Stage& s) : x({batch, s.channels, s.size, s.size}), y(x.shape()), dy(x.shape()), dx(x.shape()) {
        std::mt19937 rng(1);
        std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
        for (float& v : x) v = dist(rng);
        for (float& v : dy) v = dist(rng);
    }
    [[nodiscard]] double bytes() const { return static_cast<double>(x.size() * sizeof(float)); }
};

/// Runs `pass` per iteration (after `prepare` once) and reports `tensors` tensors' bytes per
/// pass as GB/s.
template <class Pass, class Prepare = decltype([](Setup&) {})>
void measure(benchmark::State& state, const char* what, double tensors, Pass&& pass, Prepare&& prepare = {}) {
    cnn::set_threads(static_cast<std::size_t>(state.range(1)));
    Setup s(stages[state.range(0)]);
    prepare(s);
    pass(s);  // sizes what the pass keeps
    for (auto _ : state) {
        pass(s);
        benchmark::ClobberMemory();
    }
    state.counters["GB/s"] = benchmark::Counter(tensors * s.bytes() * static_cast<double>(state.iterations()),
                                                benchmark::Counter::kIsRate);
    state.SetLabel(std::string(what) + " " + stages[state.range(0)].name);
}

void copy(benchmark::State& state) {
    measure(state, "copy", 2, [](Setup& s) { std::copy(s.x.begin(), s.x.end(), s.y.begin()); });
}

void batchnorm_forward_training(benchmark::State& state) {
    cnn::BatchNorm2D<float> bn{stages[state.range(0)].channels};
    cnn::BatchNorm2D<float>::State bn_state;
    measure(state, "BatchNorm2D forward, training", 2, [&](Setup& s) {
        bn.forward(s.x, s.y, cnn::Context<float>(s.scratch, cnn::Mode::training), bn_state);
    });
}

void batchnorm_backward_training(benchmark::State& state) {
    cnn::BatchNorm2D<float> bn{stages[state.range(0)].channels};
    cnn::BatchNorm2D<float>::State bn_state;
    measure(
        state, "BatchNorm2D backward, training", 3,
        [&](Setup& s) { bn.backward(s.x, s.y, s.dy, s.dx, s.scratch, bn_state); },
        [&](Setup& s) { bn.forward(s.x, s.y, cnn::Context<float>(s.scratch, cnn::Mode::training), bn_state); });
}

// BatchNorm2D then ReLU, as two layers (the ReLU in place, as a chain runs it) and fused
// (BatchNormReLU, what a chain runs): forward reads x and writes y; backward reads x, y (the
// ReLU's gate) and dy and writes dx.
void batchnorm_relu_forward_training(benchmark::State& state) {
    cnn::BatchNorm2D<float> bn{stages[state.range(0)].channels};
    cnn::BatchNorm2D<float>::State bn_state;
    const cnn::ReLU<float> relu;
    measure(state, "BatchNorm2D, ReLU forward, training", 2, [&](Setup& s) {
        bn.forward(s.x, s.y, cnn::Context<float>(s.scratch, cnn::Mode::training), bn_state);
        relu.forward(s.y, s.y, s.scratch);
    });
}

void batchnorm_relu_backward_training(benchmark::State& state) {
    cnn::BatchNorm2D<float> bn{stages[state.range(0)].channels};
    cnn::BatchNorm2D<float>::State bn_state;
    cnn::ReLU<float> relu;
    cnn::Tensor<float, 4> gated;
    measure(
        state, "BatchNorm2D, ReLU backward, training", 4,
        [&](Setup& s) {
            relu.backward(s.y, s.y, s.dy, gated, s.scratch);
            bn.backward(s.x, s.y, gated, s.dx, s.scratch, bn_state);
        },
        [&](Setup& s) {
            gated.resize(s.x.shape());
            bn.forward(s.x, s.y, cnn::Context<float>(s.scratch, cnn::Mode::training), bn_state);
            relu.forward(s.y, s.y, s.scratch);
        });
}

void fused_batchnorm_relu_forward_training(benchmark::State& state) {
    cnn::BatchNormReLU<float> fused{cnn::BatchNorm2D<float>{stages[state.range(0)].channels}, cnn::ReLU<float>{}};
    cnn::BatchNormReLU<float>::State fused_state;
    measure(state, "BatchNormReLU forward, training", 2, [&](Setup& s) {
        fused.forward(s.x, s.y, cnn::Context<float>(s.scratch, cnn::Mode::training), fused_state);
    });
}

void fused_batchnorm_relu_backward_training(benchmark::State& state) {
    cnn::BatchNormReLU<float> fused{cnn::BatchNorm2D<float>{stages[state.range(0)].channels}, cnn::ReLU<float>{}};
    cnn::BatchNormReLU<float>::State fused_state;
    measure(
        state, "BatchNormReLU backward, training", 4,
        [&](Setup& s) { fused.backward(s.x, s.y, s.dy, s.dx, s.scratch, fused_state, cnn::Accumulate::no); },
        [&](Setup& s) { fused.forward(s.x, s.y, cnn::Context<float>(s.scratch, cnn::Mode::training), fused_state); });
}

void batchnorm_forward_inference(benchmark::State& state) {
    cnn::BatchNorm2D<float> bn{stages[state.range(0)].channels};
    cnn::BatchNorm2D<float>::State bn_state;
    measure(state, "BatchNorm2D forward, inference", 2, [&](Setup& s) {
        bn.forward(s.x, s.y, cnn::Context<float>(s.scratch, cnn::Mode::inference), bn_state);
    });
}

void dropout_forward_training(benchmark::State& state) {
    cnn::Dropout<float> dropout{0.3};
    cnn::Dropout<float>::State dropout_state;
    measure(state, "Dropout forward, training", 2, [&](Setup& s) {
        dropout.forward(s.x, s.y, cnn::Context<float>(s.scratch, cnn::Mode::training, &s.random), dropout_state);
    });
}

void global_avg_pool_forward(benchmark::State& state) {
    cnn::GlobalAvgPool<float> pool;
    cnn::Tensor<float, 4> pooled;
    measure(state, "GlobalAvgPool forward", 1, [&](Setup& s) {
        pooled.resize(pool.output_shape(s.x.shape()));
        pool.forward(s.x, pooled, s.scratch);
    });
}

void depthwise_forward(benchmark::State& state) {
    const std::size_t channels = stages[state.range(0)].channels;
    cnn::Conv2D<float> conv{channels, channels, 3, {.padding = 1, .groups = static_cast<std::ptrdiff_t>(channels)}};
    measure(state, "depthwise 3x3 forward", 2, [&](Setup& s) { conv.forward(s.x, s.y, s.scratch); });
}

void depthwise_backward(benchmark::State& state) {
    const std::size_t channels = stages[state.range(0)].channels;
    cnn::Conv2D<float> conv{channels, channels, 3, {.padding = 1, .groups = static_cast<std::ptrdiff_t>(channels)}};
    measure(state, "depthwise 3x3 backward", 3, [&](Setup& s) { conv.backward(s.x, s.y, s.dy, s.dx, s.scratch); });
}

}  // namespace

BENCHMARK(copy)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(batchnorm_forward_training)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(batchnorm_backward_training)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(batchnorm_relu_forward_training)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(fused_batchnorm_relu_forward_training)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(batchnorm_relu_backward_training)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(fused_batchnorm_relu_backward_training)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(batchnorm_forward_inference)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(dropout_forward_training)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(global_avg_pool_forward)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(depthwise_forward)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK(depthwise_backward)->ArgsProduct({{0, 1, 2}, {1, 2}})->UseRealTime();
BENCHMARK_MAIN();
