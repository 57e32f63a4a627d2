// Sequential: shape inference and its errors, workspaces, initialisation,
// the summary, and the whole LeNet-5 against finite differences in double.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <thread>

#include "test_support.hpp"

using cnn::Shape;
using cnn::Tensor;

namespace {

template <class T>
auto make_lenet() {
    return cnn::Sequential{cnn::Conv2D<T>{1, 6, 5, {.padding = 2}}, cnn::ReLU<T>{}, cnn::MaxPool<T>{2},
                           cnn::Conv2D<T>{6, 16, 5},                 cnn::ReLU<T>{}, cnn::MaxPool<T>{2},
                           cnn::Flatten<T>{},                        cnn::Dense<T>{400, 120}, cnn::ReLU<T>{},
                           cnn::Dense<T>{120, 84},                   cnn::ReLU<T>{},     cnn::Dense<T>{84, 10}};
}

}  // namespace

TEST_CASE("Sequential infers every shape from the input shape", "[network]") {
    const auto net = make_lenet<float>();
    const auto shapes = net.shapes({64, 1, 28, 28});
    CHECK(shapes[1] == Shape<4>{64, 6, 28, 28});
    CHECK(shapes[3] == Shape<4>{64, 6, 14, 14});
    CHECK(shapes[6] == Shape<4>{64, 16, 5, 5});
    CHECK(shapes[7] == Shape<4>{64, 400, 1, 1});
    CHECK(net.output_shape({3, 1, 28, 28}) == Shape<4>{3, 10, 1, 1});
    CHECK(net.parameter_count() == 156 + 2416 + 48120 + 10164 + 850);
}

TEST_CASE("A shape mismatch names the layer's index, its type and both shapes", "[network][errors]") {
    const auto net = make_lenet<float>();
    CHECK_THROWS_WITH(net.shapes({64, 1, 32, 32}),
                      "layer 7: Dense(400->120) expects 400 inputs, gets 576 (input [64, 576, 1, 1])");
    CHECK_THROWS_WITH(net.shapes({1, 3, 28, 28}),
                      "layer 0: Conv2D(1->6, 5x5, stride 1, padding 2) expects 1 input channels, got input [1, 3, 28, 28]");
    CHECK_THROWS_WITH(net.shapes({1, 1, 8, 8}),
                      "layer 3: Conv2D(6->16, 5x5, stride 1, padding 0): the 5x5 kernel is larger than the padded input "
                      "of input [1, 6, 4, 4] (padded 4x4)");
}

TEST_CASE("The summary lists layers, output shapes and parameter counts", "[network]") {
    const auto text = make_lenet<float>().summary({64, 1, 28, 28});
    CHECK_THAT(text, Catch::Contains("Conv2D(1->6, 5x5, stride 1, padding 2)"));
    CHECK_THAT(text, Catch::Contains("[64, 16, 10, 10]"));
    CHECK_THAT(text, Catch::Contains("48120"));
    CHECK_THAT(text, Catch::Contains("61706 parameters"));
}

TEST_CASE("Same seed, same weights; another seed, other weights", "[network]") {
    auto a = make_lenet<float>(), b = make_lenet<float>(), c = make_lenet<float>();
    cnn::Random ra{7}, rb{7}, rc{8};
    a.initialize(ra);
    b.initialize(rb);
    c.initialize(rc);
    CHECK(cnn::test::parameter_values(a) == cnn::test::parameter_values(b));
    CHECK(cnn::test::parameter_values(a) != cnn::test::parameter_values(c));
    // The generator is defined by the library, not the standard library: fixed values.
    cnn::Random r{42};
    const auto first = r();
    cnn::Random again{42};
    CHECK(again() == first);
}

TEST_CASE("He and Xavier initialisation have the documented spread", "[network]") {
    auto net = cnn::Sequential{cnn::Dense<double>{400, 300}};
    cnn::Random rng{3};
    const auto spread = [&] {
        double sum = 0, squares = 0, largest = 0;
        const auto w = net.layer<0>().weights();
        for (double v : w) {
            sum += v;
            squares += v * v;
            largest = std::max(largest, std::abs(v));
        }
        const double n = static_cast<double>(w.size());
        return std::array<double, 3>{sum / n, std::sqrt(squares / n), largest};
    };
    net.initialize(rng, cnn::Init::he);
    const auto he = spread();
    CHECK(std::abs(he[0]) < 0.002);
    CHECK(he[1] == Approx(std::sqrt(2.0 / 400)).epsilon(0.02));
    for (double b : net.layer<0>().bias()) CHECK(b == 0);
    net.initialize(rng, cnn::Init::xavier);
    const auto xavier = spread();
    const double limit = std::sqrt(6.0 / 700);
    CHECK(xavier[2] <= limit);
    CHECK(xavier[1] == Approx(limit / std::sqrt(3.0)).epsilon(0.02));
}

TEST_CASE("The batch size may change between calls with one workspace", "[network]") {
    auto net = make_lenet<float>();
    cnn::Random rng{1};
    net.initialize(rng);
    std::mt19937_64 values(2);
    const auto big = cnn::test::random_tensor<float>(Shape<4>{9, 1, 28, 28}, values);
    const Tensor<float, 4> small({2, 1, 28, 28}, std::span<const float>(big.data(), 2 * 28 * 28));
    decltype(net)::Workspace shared, fresh;
    const Tensor<float, 4> from_big(net.forward(big, shared));
    const Tensor<float, 4> from_small(net.forward(small, shared));
    const Tensor<float, 4> alone(net.forward(small, fresh));
    CHECK(from_small.shape() == Shape<4>{2, 10, 1, 1});
    CHECK(cnn::test::max_abs_difference(from_small, alone) == 0);
    for (std::size_t i = 0; i < from_small.size(); ++i) CHECK(from_small.data()[i] == from_big.data()[i]);
}

TEST_CASE("8 threads predicting on one const network give the serial results", "[network][threads]") {
    auto net = make_lenet<float>();
    cnn::Random rng{5};
    net.initialize(rng);
    const auto& shared = net;
    std::mt19937_64 values(3);
    std::vector<Tensor<float, 4>> inputs;
    for (int i = 0; i < 8; ++i) inputs.push_back(cnn::test::random_tensor<float>(Shape<4>{5, 1, 28, 28}, values));
    std::vector<Tensor<float, 4>> serial;
    for (const auto& x : inputs) {
        decltype(net)::Workspace ws;
        serial.emplace_back(shared.forward(x, ws));
    }
    cnn::set_threads(2);
    std::vector<Tensor<float, 4>> parallel(8);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            decltype(net)::Workspace ws;
            for (int repeat = 0; repeat < 3; ++repeat) parallel[t] = Tensor<float, 4>(shared.forward(inputs[t], ws));
        });
    for (auto& thread : threads) thread.join();
    cnn::set_threads(1);
    for (std::size_t t = 0; t < 8; ++t) CHECK(cnn::test::max_abs_difference(parallel[t], serial[t]) == 0);
}

TEST_CASE("The whole LeNet-5 in double agrees with finite differences", "[network][gradients]") {
    auto net = make_lenet<double>();
    cnn::Random rng{11};
    net.initialize(rng);
    std::mt19937_64 values(4);
    const auto x = cnn::test::random_tensor<double>(Shape<4>{2, 1, 28, 28}, values);
    const std::vector<std::uint32_t> labels{3, 7};
    decltype(net)::Workspace ws;
    Tensor<double, 4> delta({2, 10, 1, 1});
    const auto loss = [&] { return cnn::softmax_cross_entropy<double>(net.forward(x, ws), labels, delta.view()); };
    loss();
    net.zero_gradients();
    net.backward(delta, ws);

    std::size_t index = 0;
    for (auto group : net.parameter_groups()) {
        INFO("parameter group " << index++ << " of " << group.values.size() << " values");
        // Every parameter of the small layers, a seeded sample of 400 from the large ones.
        std::vector<std::size_t> sample;
        if (group.values.size() <= 1000) {
            for (std::size_t i = 0; i < group.values.size(); ++i) sample.push_back(i);
        } else {
            for (int i = 0; i < 400; ++i) sample.push_back(values() % group.values.size());
        }
        const std::vector<double> analytic(group.gradients.begin(), group.gradients.end());
        const auto result = cnn::gradient_check<double>(loss, group.values, analytic, 1e-6, sample);
        INFO("worst index " << result.worst_index << ": analytic " << result.worst_analytic << ", numeric "
                            << result.worst_numeric);
        CHECK(result.relative_error <= 1e-6);
    }
}

TEMPLATE_TEST_CASE("A Conv2D into a ReLU into a MaxPool gives what the layers give one after the other",
                   "[network][threads]", float, double) {
    // Sequential runs the ReLU and the MaxPool as one pass (MaxPool::forward_after_relu and
    // backward_after_relu), inside the Conv2D a few samples at a time; here the layers run one
    // by one by hand. Values on a coarse grid make ties and whole windows of zeros and
    // negatives, where the two could part. Batches of 3 and 9 samples make one chunk and
    // several, the last one short; the 1x1 Conv2D in front makes the fused one compute an
    // input gradient, which the fused one at the very front of the second network does not.
    using T = TestType;
    std::mt19937_64 rng(17);
    struct Pooling {
        std::size_t window, stride;
    };
    const auto round_parameters = [](auto& layer) {
        for (T& p : layer.parameters()) p = std::round(p * 4) / 4;
    };
    for (const std::size_t threads : {1, 3})
        for (const std::size_t batch : {3, 9})
            for (const auto [window, stride] : {Pooling{2, 2}, Pooling{3, 2}, Pooling{3, 3}, Pooling{2, 1}}) {
                INFO("threads " << threads << ", batch " << batch << ", window " << window << " stride " << stride);
                cnn::set_threads(threads);
                cnn::Sequential net{cnn::Conv2D<T>{2, 2, 1}, cnn::Conv2D<T>{2, 3, 3, {.padding = 1}}, cnn::ReLU<T>{},
                                    cnn::MaxPool<T>{window, stride}, cnn::Conv2D<T>{3, 2, 1}};
                cnn::Random init{3};
                net.initialize(init);
                round_parameters(net.template layer<0>());
                round_parameters(net.template layer<4>());
                auto x = cnn::test::random_tensor<T>(Shape<4>{batch, 2, 11, 11}, rng);
                for (T& v : x) v = std::round(v * 2) / 2;
                typename decltype(net)::Workspace workspace;
                const Tensor<T, 4> y(net.forward(x, workspace));
                const auto dy = cnn::test::random_tensor<T>(y.shape(), rng);
                net.zero_gradients();
                net.backward(dy, workspace);

                auto head = net.template layer<0>(), conv = net.template layer<1>(), last = net.template layer<4>();
                cnn::ReLU<T> relu;
                cnn::MaxPool<T> pool = net.template layer<3>();
                const auto shapes = net.shapes(x.shape());
                Tensor<T, 4> h(shapes[1]), a(shapes[2]), r(shapes[3]), p(shapes[4]), out(shapes[5]);
                cnn::Scratch<T> scratch;
                head.forward(x, h, scratch);
                conv.forward(h, a, scratch);
                relu.forward(a, r, scratch);
                pool.forward(r, p, scratch);
                last.forward(p, out, scratch);
                CHECK(cnn::test::max_abs_difference(y, out) == 0);

                Tensor<T, 4> dp(p.shape()), dr(r.shape()), da(a.shape()), dh(h.shape());
                for (auto* layer : {&head, &conv, &last}) std::ranges::fill(layer->gradients(), T{0});
                last.backward(p, out, dy, dp, scratch);
                pool.backward(r, p, dp, dr, scratch);
                relu.backward(a, r, dr, da, scratch);
                conv.backward(h, a, da, dh, scratch);
                head.backward(x, h, dh, {}, scratch);
                CHECK(std::ranges::equal(net.template layer<0>().gradients(), head.gradients()));
                CHECK(std::ranges::equal(net.template layer<1>().gradients(), conv.gradients()));
                CHECK(std::ranges::equal(net.template layer<4>().gradients(), last.gradients()));
                // The pooled values must have reached the gradients: not all zero.
                CHECK(std::ranges::any_of(head.gradients(), [](T g) { return g != 0; }));

                // The same three layers at the front, where no input gradient is computed.
                std::ranges::fill(conv.gradients(), T{0});
                conv.backward(h, a, da, {}, scratch);
                cnn::Sequential front{conv, relu, pool, last};
                typename decltype(front)::Workspace front_workspace;
                const Tensor<T, 4> front_y(front.forward(h, front_workspace));
                CHECK(cnn::test::max_abs_difference(front_y, out) == 0);
                front.zero_gradients();
                front.backward(dy, front_workspace);
                CHECK(std::ranges::equal(front.template layer<0>().gradients(), conv.gradients()));
                CHECK(std::ranges::equal(front.template layer<3>().gradients(), last.gradients()));
            }
    cnn::set_threads(1);
}

TEST_CASE("A ReLU into a MaxPool as the first layers computes no input gradient", "[network]") {
    cnn::Sequential net{cnn::ReLU<float>{}, cnn::MaxPool<float>{2}, cnn::Conv2D<float>{1, 2, 3}};
    cnn::Random init{5};
    net.initialize(init);
    std::mt19937_64 rng(6);
    const auto x = cnn::test::random_tensor<float>(Shape<4>{2, 1, 8, 8}, rng);
    decltype(net)::Workspace workspace;
    const Tensor<float, 4> y(net.forward(x, workspace));
    Tensor<float, 4> pooled({2, 1, 4, 4});
    cnn::Scratch<float> scratch;
    for (std::size_t i = 0; i < pooled.size(); ++i) {
        const std::size_t n = i / 16, u = (i % 16) / 4 * 2, v = i % 4 * 2;
        pooled(n, 0, (i % 16) / 4, i % 4) =
            std::max({0.0f, x(n, 0, u, v), x(n, 0, u, v + 1), x(n, 0, u + 1, v), x(n, 0, u + 1, v + 1)});
    }
    Tensor<float, 4> expected(y.shape());
    net.layer<2>().forward(pooled, expected, scratch);
    CHECK(cnn::test::max_abs_difference(y, expected) == 0);
    net.zero_gradients();
    const Tensor<float, 4> dy(y.shape(), 1.0f);
    net.backward(dy, workspace);
    CHECK(std::ranges::any_of(net.layer<2>().gradients(), [](float g) { return g != 0; }));
}

TEST_CASE("Flatten layers copy nothing, first, in the middle, twice in a row and last", "[network]") {
    // Sequential lets the layer after a Flatten read the Flatten's input with the flattened
    // shape, and write its input gradient straight into the Flatten input's gradient.
    using T = double;
    cnn::Sequential net{cnn::Flatten<T>{}, cnn::Dense<T>{12, 5},    cnn::ReLU<T>{},   cnn::Flatten<T>{},
                        cnn::Flatten<T>{}, cnn::Dense<T>{5, 3}, cnn::Flatten<T>{}};
    cnn::Random init{8};
    net.initialize(init);
    std::mt19937_64 rng(9);
    const auto x = cnn::test::random_tensor<T>(Shape<4>{4, 3, 2, 2}, rng);
    decltype(net)::Workspace workspace;
    const Tensor<T, 4> y(net.forward(x, workspace));
    REQUIRE(y.shape() == Shape<4>{4, 3, 1, 1});
    const auto dy = cnn::test::random_tensor<T>(y.shape(), rng);
    net.zero_gradients();
    net.backward(dy, workspace);

    // The same by hand, without the Flattens.
    auto first = net.layer<1>(), second = net.layer<5>();
    cnn::ReLU<T> relu;
    cnn::Scratch<T> scratch;
    Tensor<T, 4> flat(x), a({4, 5, 1, 1}), r({4, 5, 1, 1}), out({4, 3, 1, 1}), dr({4, 5, 1, 1}), da({4, 5, 1, 1}),
        dx({4, 12, 1, 1});
    flat.resize({4, 12, 1, 1});
    first.forward(flat, a, scratch);
    relu.forward(a, r, scratch);
    second.forward(r, out, scratch);
    CHECK(cnn::test::max_abs_difference(y, out) == 0);
    std::ranges::fill(first.gradients(), T{0});
    std::ranges::fill(second.gradients(), T{0});
    second.backward(r, out, dy, dr, scratch);
    relu.backward(a, r, dr, da, scratch);
    first.backward(flat, a, da, dx, scratch);
    CHECK(std::ranges::equal(net.layer<1>().gradients(), first.gradients()));
    CHECK(std::ranges::equal(net.layer<5>().gradients(), second.gradients()));
    CHECK(std::ranges::any_of(first.gradients(), [](T g) { return g != 0; }));

    // A second pass with another batch size through the same workspace.
    const auto x2 = cnn::test::random_tensor<T>(Shape<4>{2, 3, 2, 2}, rng);
    const Tensor<T, 4> y2(net.forward(x2, workspace));
    Tensor<T, 4> flat2(x2), a2({2, 5, 1, 1}), r2({2, 5, 1, 1}), out2({2, 3, 1, 1});
    flat2.resize({2, 12, 1, 1});
    first.forward(flat2, a2, scratch);
    relu.forward(a2, r2, scratch);
    second.forward(r2, out2, scratch);
    CHECK(cnn::test::max_abs_difference(y2, out2) == 0);
}

TEST_CASE("A network starts initialised: He weights from the default seed, zero biases", "[network]") {
    // A network whose initialize() is never called used to train from all-zero weights
    // (loss 2.3045, accuracy 0.1 on Fashion-MNIST) without a word.
    const auto make = [] {
        return cnn::Sequential{cnn::Conv2D<double>{1, 8, 5}, cnn::ReLU<double>{}, cnn::Flatten<double>{},
                               cnn::Dense<double>{8 * 24 * 24, 10}};
    };
    auto net = make();
    const auto& conv = net.layer<0>();
    const auto weights = conv.weights();
    double squares = 0;
    for (const double w : weights) squares += w * w;
    const double deviation = std::sqrt(squares / static_cast<double>(weights.size()));
    CHECK(deviation == Approx(std::sqrt(2.0 / 25.0)).epsilon(0.25));  // He: N(0, 2 / fan_in), 200 draws
    CHECK(std::ranges::all_of(conv.bias(), [](double b) { return b == 0; }));
    CHECK(std::ranges::any_of(net.layer<3>().parameters(), [](double p) { return p != 0; }));

    // The same every time, and the same as initialize() from the default seed.
    auto again = make();
    CHECK(std::ranges::equal(again.layer<3>().parameters(), net.layer<3>().parameters()));
    cnn::Random rng{decltype(net)::default_seed};
    again.initialize(rng);
    CHECK(std::ranges::equal(again.layer<0>().parameters(), net.layer<0>().parameters()));
    CHECK(std::ranges::equal(again.layer<3>().parameters(), net.layer<3>().parameters()));
}

TEST_CASE("A network keeps the values of layers that arrive with them", "[network]") {
    cnn::Dense<float> trained{3, 2};
    std::ranges::fill(trained.parameters(), 0.5f);
    trained.bias()[1] = 0;
    cnn::Sequential net{cnn::Dense<float>{4, 3}, cnn::ReLU<float>{}, trained};
    CHECK(std::ranges::equal(net.layer<2>().parameters(), trained.parameters()));
    CHECK(std::ranges::any_of(net.layer<0>().parameters(), [](float p) { return p != 0; }));
}
