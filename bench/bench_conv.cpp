// Every convolution of LeNet-5 and the wide CNN, the 3x3 ones of the ResNet's three stages
// and a pointwise (1x1) one of the MobileNet, at batch 64, forward and
// backward (input and weight gradients) separately, in GFLOP/s counting a
// multiply-add as two operations. Argument 1 is the thread count.
#include <cnn/cnn.hpp>

#include <benchmark/benchmark.h>

#include <random>

namespace {

struct ConvShape {
    const char* name;
    std::size_t channels, filters, kernel, padding, size, stride = 1;
};

constexpr ConvShape shapes[] = {
    {"lenet conv1", 1, 6, 5, 2, 28},
    {"lenet conv2", 6, 16, 5, 0, 14},
    {"wide conv1", 1, 32, 3, 1, 28},
    {"wide conv2", 32, 64, 3, 1, 14},
    {"resnet stage 1", 16, 16, 3, 1, 28},
    {"resnet stage 2", 32, 32, 3, 1, 14},
    {"resnet stage 3", 64, 64, 3, 1, 7},
    {"mobilenet pointwise", 32, 64, 1, 0, 14},
    {"resnet downsample", 16, 32, 3, 1, 28, 2},  // stride 2: on the input's phases (strided.hpp)
    {"resnet shortcut", 16, 32, 1, 0, 28, 2},     // 16 terms a sum: im2col's every-second rows
    {"resnet downsample 2", 32, 64, 3, 1, 14, 2},  // 7x7 outputs: four samples a product
};
constexpr std::size_t batch = 64;

struct Setup {
    cnn::Conv2D<float> conv;
    cnn::Tensor<float, 4> x, y, dy, dx;
    cnn::Scratch<float> scratch;
    double gigaflops;  // of one product (forward); each gradient costs the same

    explicit Setup(const ConvShape& s)
        : conv{s.channels, s.filters, s.kernel,
               {.stride = static_cast<std::ptrdiff_t>(s.stride), .padding = static_cast<std::ptrdiff_t>(s.padding)}},
          x({batch, s.channels, s.size, s.size}) {
        std::mt19937 rng(1);
        std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
        for (float& p : conv.parameters()) p = dist(rng);
        for (float& v : x) v = dist(rng);
        y = cnn::Tensor<float, 4>(conv.output_shape(x.shape()));
        dy = cnn::Tensor<float, 4>(y.shape(), 0.01f);
        dx = cnn::Tensor<float, 4>(x.shape());
        gigaflops = 2.0 * static_cast<double>(y.size() * s.channels * s.kernel * s.kernel) / 1e9;
    }
};

void forward(benchmark::State& state) {
    cnn::set_threads(static_cast<std::size_t>(state.range(1)));
    Setup s(shapes[state.range(0)]);
    for (auto _ : state) {
        s.conv.forward(s.x, s.y, s.scratch);
        benchmark::ClobberMemory();
    }
    state.counters["GFLOP/s"] = benchmark::Counter(s.gigaflops * static_cast<double>(state.iterations()),
                                                   benchmark::Counter::kIsRate);
    state.SetLabel(std::string(shapes[state.range(0)].name) + " " + s.conv.describe());
}

void backward(benchmark::State& state) {
    cnn::set_threads(static_cast<std::size_t>(state.range(1)));
    Setup s(shapes[state.range(0)]);
    s.conv.forward(s.x, s.y, s.scratch);
    for (auto _ : state) {
        s.conv.backward(s.x, s.y, s.dy, s.dx, s.scratch);
        benchmark::ClobberMemory();
    }
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * s.gigaflops * static_cast<double>(state.iterations()),
                                                   benchmark::Counter::kIsRate);
    state.SetLabel(std::string(shapes[state.range(0)].name) + " " + s.conv.describe());
}

}  // namespace

BENCHMARK(forward)->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {1, 2}})->Unit(benchmark::kMillisecond);
BENCHMARK(backward)->ArgsProduct({{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {1, 2}})->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
