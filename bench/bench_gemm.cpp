// Our GEMM against OpenBLAS's cblas_sgemm (when built with it), single-threaded,
// on square matrices and on the products our convolution layers produce.
// Reports GFLOP/s (2 m n k per product). For OpenBLAS's best kernel, run with
// OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset and OPENBLAS_NUM_THREADS=1:
//   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 bench_gemm
#include <cnn/kernels/conv2d.hpp>
#include <cnn/kernels/gemm.hpp>

#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#if defined(CNN_BENCH_OPENBLAS)
#include <cblas.h>
#endif

namespace {

struct Product {
    const char* name;
    std::size_t m, n, k;
    bool b_transposed;
};

// Square, then the products the example networks' layers make at batch 64 (see
// cnn/kernels/conv2d.hpp): a convolution lowers `conv_chunk` samples at a time, so
// m = filters, n = chunk x output positions (for LeNet's second convolution 10 rows of
// 14, the input's width), k = channels x kernel area; weight gradients read B transposed,
// except a first layer's, whose deltas are gathered transposed (R x K = col d^T).
constexpr std::size_t chunk = cnn::kernels::conv_chunk;
const Product products[] = {
    {"square 256", 256, 256, 256, false},
    {"square 512", 512, 512, 512, false},
    {"square 1024", 1024, 1024, 1024, false},
    {"lenet conv1 forward", 6, chunk * 784, 25, false},
    {"lenet conv2 forward", 16, chunk * 140, 150, false},
    {"wide conv1 forward", 32, chunk * 784, 9, false},
    {"wide conv1 weight grad (R x K)", 9, 32, chunk * 784, false},
    {"wide conv2 forward", 64, chunk * 196, 288, false},
    {"wide conv2 input grad", 288, chunk * 196, 64, false},
    {"wide conv2 weight grad", 64, 288, chunk * 196, true},
    {"wide dense forward", 64, 128, 3136, true},
};

std::vector<float> random_matrix(std::size_t size, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> values(size);
    for (float& v : values) v = dist(rng);
    return values;
}

void report(benchmark::State& state, const Product& p) {
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(p.m * p.n * p.k) / 1e9 *
                                                       static_cast<double>(state.iterations()),
                                                   benchmark::Counter::kIsRate);
}

void ours(benchmark::State& state, const Product& p) {
    const auto a = random_matrix(p.m * p.k, 1), b = random_matrix(p.k * p.n, 2);
    std::vector<float> c(p.m * p.n);
    const auto rs_b = static_cast<std::ptrdiff_t>(p.b_transposed ? 1 : p.n);
    const auto cs_b = static_cast<std::ptrdiff_t>(p.b_transposed ? p.k : 1);
    for (auto _ : state) {
        cnn::kernels::gemm<float>(p.m, p.n, p.k, a.data(), static_cast<std::ptrdiff_t>(p.k), 1, b.data(), rs_b, cs_b,
                                  c.data(), p.n, cnn::kernels::Accumulate::no);
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    report(state, p);
    state.SetLabel(cnn::kernels::gemm_kernel_name());
}

#if defined(CNN_BENCH_OPENBLAS)
void openblas(benchmark::State& state, const Product& p) {
    const auto a = random_matrix(p.m * p.k, 1), b = random_matrix(p.k * p.n, 2);
    std::vector<float> c(p.m * p.n);
    for (auto _ : state) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, p.b_transposed ? CblasTrans : CblasNoTrans, static_cast<int>(p.m),
                    static_cast<int>(p.n), static_cast<int>(p.k), 1.0f, a.data(), static_cast<int>(p.k), b.data(),
                    static_cast<int>(p.b_transposed ? p.k : p.n), 0.0f, c.data(), static_cast<int>(p.n));
        benchmark::DoNotOptimize(c.data());
        benchmark::ClobberMemory();
    }
    report(state, p);
}
#endif

}  // namespace

// Each product in our GEMM, then at once in OpenBLAS: on a shared machine whose speed
// drifts, neighbours in time make the fairest ratio.
int main(int argc, char** argv) {
    for (const Product& p : products) {
        benchmark::RegisterBenchmark((std::string("ours/") + p.name).c_str(), ours, p);
#if defined(CNN_BENCH_OPENBLAS)
        benchmark::RegisterBenchmark((std::string("openblas/") + p.name).c_str(), openblas, p);
#endif
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
}
