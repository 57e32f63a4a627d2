// Conv2D forward and backward on the LeNet-5 convolution shapes, batch 64,
// through the layer (today: the reference kernels). Reports GFLOP/s, counting
// a multiply-add as two operations.
#include <cnn/cnn.hpp>

#include <benchmark/benchmark.h>

#include <random>

namespace {

struct ConvShape {
    std::size_t channels, filters, kernel, padding, size;
};

// LeNet-5 on 28x28 inputs: conv1 1->6 5x5 pad 2 on 28x28, conv2 6->16 5x5 on 14x14.
constexpr ConvShape lenet_conv[] = {{1, 6, 5, 2, 28}, {6, 16, 5, 0, 14}};
constexpr std::size_t batch = 64;

double forward_flops(const ConvShape& s, const cnn::Shape<4>& out) {
    return 2.0 * static_cast<double>(out[0] * out[1] * out[2] * out[3] * s.channels * s.kernel * s.kernel);
}

void conv_forward_backward(benchmark::State& state) {
    const ConvShape& s = lenet_conv[state.range(0)];
    cnn::Conv2D<float> conv{s.channels, s.filters, s.kernel, {.padding = static_cast<std::ptrdiff_t>(s.padding)}};
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (float& p : conv.parameters()) p = dist(rng);
    cnn::Tensor<float, 4> x({batch, s.channels, s.size, s.size});
    for (float& v : x) v = dist(rng);
    cnn::Tensor<float, 4> y(conv.output_shape(x.shape())), dy(y.shape(), 0.01f), dx(x.shape());
    cnn::Scratch<float> scratch;
    for (auto _ : state) {
        conv.forward(x, y, scratch);
        conv.backward(x, y, dy, dx, scratch);
        benchmark::DoNotOptimize(dx.data());
        benchmark::ClobberMemory();
    }
    // forward, input gradient and weight gradient: three products of the same size
    const double gigaflops = 3.0 * forward_flops(s, y.shape()) / 1e9;
    state.counters["GFLOP/s"] =
        benchmark::Counter(gigaflops * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
    state.SetLabel(conv.describe());
}

}  // namespace

BENCHMARK(conv_forward_backward)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
