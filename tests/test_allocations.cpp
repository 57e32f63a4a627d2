// No heap allocation in the steady state of training: after the first steps have
// sized every workspace, scratch buffer and optimizer state, further steps must not
// allocate (a fresh page costs about 12 microseconds on the machines we measure on).
// Its own executable, because it replaces the global operator new to count calls.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::size_t> allocations{0};
}

void* operator new(std::size_t size) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void* operator new(std::size_t size, std::align_val_t alignment) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    const std::size_t align = static_cast<std::size_t>(alignment);
    if (void* p = std::aligned_alloc(align, (size + align - 1) / align * align)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

TEST_CASE("Training steps after the first allocate nothing", "[allocations]") {
    for (std::size_t threads : {1, 2}) {
        cnn::set_threads(threads);
        auto net = cnn::Sequential{cnn::Conv2D<float>{1, 6, 5, {.padding = 2}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                                   cnn::Conv2D<float>{6, 16, 5},                 cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                                   cnn::Flatten<float>{},                        cnn::Dense<float>{400, 120},
                                   cnn::ReLU<float>{},                           cnn::Dense<float>{120, 10}};
        cnn::Random rng{1};
        net.initialize(rng);
        cnn::Tensor<float, 4> x({32, 1, 28, 28});
        for (float& v : x) v = static_cast<float>(rng.uniform());
        std::vector<std::uint32_t> labels(32);
        for (auto& label : labels) label = static_cast<std::uint32_t>(rng.below(10));
        cnn::Adam<float> adam;
        const auto groups = net.parameter_groups();
        decltype(net)::Workspace workspace;
        cnn::Tensor<float, 4> delta({32, 10, 1, 1});
        const auto step = [&] {
            const auto logits = net.forward(x, workspace);
            (void)cnn::softmax_cross_entropy<float>(logits, labels, delta.view());
            net.zero_gradients();
            net.backward(delta, workspace);
            adam.step(groups);
        };
        step();
        step();
        const std::size_t before = allocations.load();
        for (int i = 0; i < 5; ++i) step();
        const std::size_t during = allocations.load() - before;  // read before INFO, which allocates
        INFO(threads << " thread(s)");
        CHECK(during == 0);
    }
    cnn::set_threads(1);
}
