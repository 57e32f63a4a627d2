// One full training step (forward, loss, backward, SGD with momentum) of
// LeNet-5 and the wide CNN at batch 64, in images per second, on 1 and 2 threads; and of
// LeNet-5 with tanh (LeCun's activation) as the chain fuses it (each convolution, tanh and
// max pool one ConvActMaxPool) beside the same layers with an Identity after each
// convolution, which keeps the convolution apart (tanh and the pool still run as one
// ActMaxPool).
#include <cnn/cnn.hpp>

#include <benchmark/benchmark.h>

#include "../examples/networks.hpp"

namespace {

template <class Net>
void training_step(benchmark::State& state, Net net) {
    cnn::set_threads(static_cast<std::size_t>(state.range(0)));
    constexpr std::size_t batch = 64;
    cnn::Random rng{1};
    net.initialize(rng);
    cnn::Tensor<float, 4> x({batch, 1, 28, 28});
    for (float& v : x) v = static_cast<float>(rng.uniform());
    std::vector<std::uint32_t> labels(batch);
    for (auto& label : labels) label = static_cast<std::uint32_t>(rng.below(10));
    cnn::SGD<float> sgd{{.learning_rate = 0.01, .momentum = 0.9}};
    const auto groups = net.parameter_groups();
    typename Net::Workspace workspace;
    cnn::Tensor<float, 4> delta({batch, 10, 1, 1});
    for (auto _ : state) {
        const auto logits = net.forward(x, workspace);
        benchmark::DoNotOptimize(cnn::softmax_cross_entropy<float>(logits, labels, delta.view()));
        net.zero_gradients();
        net.backward(delta, workspace);
        sgd.step(groups);
    }
    state.counters["images/s"] =
        benchmark::Counter(static_cast<double>(batch * state.iterations()), benchmark::Counter::kIsRate);
}

void lenet(benchmark::State& state) { training_step(state, examples::make_lenet()); }

/// LeNet-5 with Tanh, and with an Identity after each convolution when `Apart`.
template <bool Apart>
auto lenet_tanh() {
    using T = float;
    using cnn::Conv2D, cnn::Tanh, cnn::MaxPool, cnn::Flatten, cnn::Dense, cnn::Identity;
    if constexpr (Apart)
        return cnn::Sequential{Conv2D<T>{1, 6, 5, {.padding = 2}}, Identity<T>{}, Tanh<T>{}, MaxPool<T>{2},
                               Conv2D<T>{6, 16, 5}, Identity<T>{}, Tanh<T>{}, MaxPool<T>{2},
                               Flatten<T>{}, Dense<T>{400, 120}, Tanh<T>{}, Dense<T>{120, 84}, Tanh<T>{}, Dense<T>{84, 10}};
    else
        return cnn::Sequential{Conv2D<T>{1, 6, 5, {.padding = 2}}, Tanh<T>{}, MaxPool<T>{2},
                               Conv2D<T>{6, 16, 5}, Tanh<T>{}, MaxPool<T>{2},
                               Flatten<T>{}, Dense<T>{400, 120}, Tanh<T>{}, Dense<T>{120, 84}, Tanh<T>{}, Dense<T>{84, 10}};
}
void lenet_tanh_fused(benchmark::State& state) { training_step(state, lenet_tanh<false>()); }
void lenet_tanh_apart(benchmark::State& state) { training_step(state, lenet_tanh<true>()); }
void wide(benchmark::State& state) { training_step(state, examples::make_wide()); }

}  // namespace

BENCHMARK(lenet)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(wide)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(lenet_tanh_fused)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(lenet_tanh_apart)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
