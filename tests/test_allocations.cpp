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
// GCC 12 takes the free() below for a mismatch with the operator new it inlines into
// callers (its -Wmismatched-new-delete does not know that these replace both).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

/// Allocations during five training steps of `net` on random inputs of `input` shape and
/// 10 classes, after two steps that size every buffer.
template <class Net, class Optimizer>
std::size_t steady_state_allocations(Net& net, Optimizer& optimizer, const cnn::Shape<4>& input, cnn::Mode mode) {
    cnn::Random rng{1};
    cnn::Tensor<float, 4> x(input);
    for (float& v : x) v = static_cast<float>(rng.uniform());
    std::vector<std::uint32_t> labels(input[0]);
    for (auto& label : labels) label = static_cast<std::uint32_t>(rng.below(10));
    const auto groups = net.parameter_groups();
    typename Net::Workspace workspace;
    cnn::Tensor<float, 4> delta({input[0], 10, 1, 1});
    const auto step = [&] {
        const auto logits = net.forward(x, workspace, mode, &rng);
        (void)cnn::softmax_cross_entropy<float>(logits, labels, delta.view());
        net.zero_gradients();
        net.backward(delta, workspace);
        optimizer.step(groups);
    };
    step();
    step();
    const std::size_t before = allocations.load();
    for (int i = 0; i < 5; ++i) step();
    return allocations.load() - before;
}

}  // namespace

TEST_CASE("Training steps after the first allocate nothing", "[allocations]") {
    for (std::size_t threads : {1, 2}) {
        cnn::set_threads(threads);
        auto net = cnn::Sequential{cnn::Conv2D<float>{1, 6, 5, {.padding = 2}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                                   cnn::Conv2D<float>{6, 16, 5},                 cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                                   cnn::Flatten<float>{},                        cnn::Dense<float>{400, 120},
                                   cnn::ReLU<float>{},                           cnn::Dense<float>{120, 10}};
        cnn::Random rng{1};
        net.initialize(rng);
        cnn::Adam<float> adam;
        const std::size_t during = steady_state_allocations(net, adam, {32, 1, 28, 28}, cnn::Mode::inference);
        INFO(threads << " thread(s)");  // after the count: INFO allocates
        CHECK(during == 0);
    }
    cnn::set_threads(1);
}

TEST_CASE("Training steps with other activations fused into the convolution allocate nothing after the first",
          "[allocations]") {
    for (std::size_t threads : {1, 2}) {
        cnn::set_threads(threads);
        // Conv2D, Tanh, MaxPool and Conv2D, ELU, MaxPool each run as one ConvActMaxPool.
        auto net = cnn::Sequential{cnn::Conv2D<float>{1, 6, 5, {.padding = 2}}, cnn::Tanh<float>{}, cnn::MaxPool<float>{2},
                                   cnn::Conv2D<float>{6, 16, 5},                 cnn::ELU<float>{},  cnn::MaxPool<float>{2},
                                   cnn::Flatten<float>{},                        cnn::Dense<float>{400, 10}};
        cnn::Random rng{1};
        net.initialize(rng);
        cnn::SGD<float> sgd{{.learning_rate = 0.01, .momentum = 0.9}};
        const std::size_t during = steady_state_allocations(net, sgd, {32, 1, 28, 28}, cnn::Mode::training);
        INFO(threads << " thread(s)");
        CHECK(during == 0);
    }
    cnn::set_threads(1);
}

TEST_CASE("Training steps with batch normalisation, dropout and a residual block allocate nothing after the first",
          "[allocations]") {
    for (std::size_t threads : {1, 2}) {
        cnn::set_threads(threads);
        auto net = cnn::Sequential{
            cnn::Conv2D<float>{1, 8, 3, {.padding = 1}}, cnn::BatchNorm2D<float>{8}, cnn::ReLU<float>{},
            cnn::Residual{cnn::Sequential{cnn::Conv2D<float>{8, 8, 3, {.padding = 1}}, cnn::BatchNorm2D<float>{8},
                                          cnn::ReLU<float>{}, cnn::Conv2D<float>{8, 8, 3, {.padding = 1}},
                                          cnn::BatchNorm2D<float>{8}}},
            cnn::ReLU<float>{},
            cnn::GlobalAvgPool<float>{},
            cnn::Flatten<float>{},
            cnn::Dropout<float>{0.3},
            cnn::Dense<float>{8, 10}};
        cnn::SGD<float> sgd{{.learning_rate = 0.01, .momentum = 0.9, .weight_decay = 1e-4}};
        const std::size_t during = steady_state_allocations(net, sgd, {16, 1, 12, 12}, cnn::Mode::training);
        INFO(threads << " thread(s)");
        CHECK(during == 0);
    }
    cnn::set_threads(1);
}

TEST_CASE("Augmented colour batches are filled without allocating", "[allocations][augment]") {
    cnn::Dataset data{{}, {}, 40, 32, 32, 10, {}, {}, 3};
    cnn::Random rng{3};
    for (std::size_t i = 0; i < 40 * 3 * 32 * 32; ++i) data.images.push_back(static_cast<std::uint8_t>(rng.below(256)));
    for (std::size_t i = 0; i < 40; ++i) data.labels.push_back(static_cast<std::uint8_t>(i % 10));
    const cnn::Normalization normalization = data.pixel_statistics();
    const cnn::Augmentation augmentation{.crop_padding = 4, .horizontal_flip = true, .cutout = 8};
    cnn::Tensor<float, 4> x(data.batch_shape(16));
    std::vector<std::uint32_t> labels(16);
    std::vector<std::size_t> indices(16);
    for (std::size_t i = 0; i < 16; ++i) indices[i] = (i * 7) % 40;
    const std::size_t before = allocations.load();
    for (int step = 0; step < 5; ++step) data.fill_batch<float>(indices, x, labels, normalization, augmentation, rng);
    const std::size_t during = allocations.load() - before;
    CHECK(during == 0);
}

TEST_CASE("fit in gradient shards allocates nothing after the first steps", "[allocations][distributed]") {
    cnn::Dataset data{{}, {}, 200, 12, 12, 10};
    cnn::Random rng{4};
    for (std::size_t i = 0; i < 200 * 144; ++i) data.images.push_back(static_cast<std::uint8_t>(rng.below(256)));
    for (std::size_t i = 0; i < 200; ++i) data.labels.push_back(static_cast<std::uint8_t>(i % 10));
    auto net = cnn::Sequential{cnn::Conv2D<float>{1, 4, 3, {.padding = 1}}, cnn::BatchNorm2D<float>{4},
                               cnn::ReLU<float>{},  cnn::GlobalAvgPool<float>{},
                               cnn::Flatten<float>{}, cnn::Dropout<float>{0.2},
                               cnn::Dense<float>{4, 10}};
    net.initialize(rng);
    cnn::SGD<float> sgd{{.learning_rate = 0.01, .momentum = 0.9}};
    cnn::FitOptions options;
    options.epochs = 1;
    options.batch_size = 20;  // 10 steps
    options.gradient_shards = 3;
    options.augmentation = {.crop_padding = 2, .horizontal_flip = true};
    std::size_t at_third = 0, at_ninth = 0;
    options.on_batch = [&](const cnn::BatchReport& report) {
        if (report.step == 3) at_third = allocations.load();
        if (report.step == 9) at_ninth = allocations.load();
    };
    (void)cnn::fit(net, sgd, data, rng, options);
    CHECK(at_ninth - at_third == 0);
}
