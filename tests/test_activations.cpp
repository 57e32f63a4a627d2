// The activations of cnn/layers/activations.hpp and Softmax: the worked examples of
// FORMULAS.md section 14, finite differences, the fast path against the reference functions
// at 1 and 3 threads, and their errors and records. Their golden values from PyTorch are
// checked by tests/test_golden.cpp.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <vector>

#include "test_support.hpp"

using cnn::Shape;
using cnn::Tensor;

namespace {

/// y = layer(x) and dx for dy, through the layer on its own.
template <class L>
std::pair<Tensor<double, 4>, Tensor<double, 4>> run(L& layer, const Tensor<double, 4>& x, const Tensor<double, 4>& dy) {
    cnn::Scratch<double> scratch;
    Tensor<double, 4> y(x.shape()), dx(x.shape());
    layer.forward(x, y, scratch);
    layer.backward(x, y, dy, dx, scratch, cnn::Accumulate::no);
    return {std::move(y), std::move(dx)};
}

}  // namespace

TEST_CASE("Worked examples EX16 and EX17 of FORMULAS.md section 14", "[activations][worked]") {
    const Tensor<double, 4> x({1, 3, 1, 1}, {-1.0, 0.0, 2.0});
    const Tensor<double, 4> ones({1, 3, 1, 1}, 1.0);
    const auto check = [&](auto layer, std::vector<double> y_expected, std::vector<double> slope_expected) {
        INFO(layer.describe());
        const auto [y, dx] = run(layer, x, ones);
        for (std::size_t i = 0; i < 3; ++i) {
            CHECK(y.data()[i] == Approx(y_expected[i]).margin(1e-6));
            CHECK(dx.data()[i] == Approx(slope_expected[i]).margin(1e-6));
        }
    };
    check(cnn::Sigmoid<double>{}, {0.268941, 0.5, 0.880797}, {0.196612, 0.25, 0.104994});
    check(cnn::Tanh<double>{}, {-0.761594, 0, 0.964028}, {0.419974, 1, 0.070651});
    check(cnn::LeakyReLU<double>{0.1}, {-0.1, 0, 2}, {0.1, 0.1, 1});
    check(cnn::ELU<double>{1.0}, {-0.632121, 0, 2}, {0.367879, 1, 1});
    check(cnn::GELU<double>{}, {-0.158655, 0, 1.954500}, {-0.083315, 0.5, 1.085232});
    check(cnn::GELU<double>{cnn::GeluApproximation::tanh}, {-0.158808, 0, 1.954598}, {-0.082964, 0.5, 1.086099});

    cnn::Softmax<double> softmax;
    const Tensor<double, 4> logits({1, 3, 1, 1}, {1.0, 2.0, 3.0}), dy({1, 3, 1, 1}, {1.0, 0.0, 0.0});
    const auto [y, dx] = run(softmax, logits, dy);
    const std::vector<double> y_expected{0.090031, 0.244728, 0.665241}, dx_expected{0.081925, -0.022033, -0.059892};
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(y.data()[i] == Approx(y_expected[i]).margin(1e-6));
        CHECK(dx.data()[i] == Approx(dx_expected[i]).margin(1e-6));
    }
}

TEST_CASE("Activation gradients match finite differences", "[activations][gradients]") {
    std::mt19937_64 rng(44);
    const auto check = [&](auto layer, const Shape<4>& shape) { cnn::test::check_layer_gradients(layer, shape, rng); };
    for (const Shape<4>& shape : {Shape<4>{2, 3, 4, 5}, Shape<4>{1, 7, 3, 1}}) {
        check(cnn::Sigmoid<double>{}, shape);
        check(cnn::Tanh<double>{}, shape);
        check(cnn::LeakyReLU<double>{0.3}, shape);
        check(cnn::ELU<double>{0.8}, shape);
        check(cnn::GELU<double>{}, shape);
        check(cnn::GELU<double>{cnn::GeluApproximation::tanh}, shape);
        check(cnn::Softmax<double>{}, shape);
    }
}

TEMPLATE_TEST_CASE("Activations on the thread pool give the reference functions' bits at 1 and 3 threads",
                   "[activations][kernels]", float, double) {
    using T = TestType;
    std::mt19937_64 rng(45);
    const std::size_t threads_before = cnn::threads();
    const Shape<4> shape{3, 5, 61, 37};  // more than one block of the pool
    const auto x = cnn::test::random_tensor<T>(shape, rng);
    const auto dy = cnn::test::random_tensor<T>(shape, rng);
    const auto check = [&](auto layer, auto f, auto derivative) {
        INFO(layer.describe());
        for (std::size_t threads : {1, 3}) {
            cnn::set_threads(threads);
            cnn::Scratch<T> scratch;
            Tensor<T, 4> y(shape), dx(shape);
            layer.forward(x, y, scratch);
            layer.backward(x, y, dy, dx, scratch, cnn::Accumulate::no);
            bool same = true;
            for (std::size_t i = 0; i < x.size(); ++i) {
                same = same && y.data()[i] == f(x.data()[i]);
                same = same && dx.data()[i] == dy.data()[i] * derivative(x.data()[i], y.data()[i]);
            }
            CHECK(same);
        }
    };
    check(cnn::Sigmoid<T>{}, [](T v) { return cnn::reference::sigmoid(v); },
          [](T, T y) { return cnn::reference::sigmoid_derivative(y); });
    check(cnn::Tanh<T>{}, [](T v) { return std::tanh(v); }, [](T, T y) { return cnn::reference::tanh_derivative(y); });
    check(cnn::LeakyReLU<T>{0.2}, [](T v) { return cnn::reference::leaky_relu(v, T(0.2)); },
          [](T v, T) { return cnn::reference::leaky_relu_derivative(v, T(0.2)); });
    check(cnn::ELU<T>{0.5}, [](T v) { return cnn::reference::elu(v, T(0.5)); },
          [](T v, T y) { return cnn::reference::elu_derivative(v, y, T(0.5)); });
    check(cnn::GELU<T>{}, [](T v) { return cnn::reference::gelu(v); },
          [](T v, T) { return cnn::reference::gelu_derivative(v); });
    cnn::set_threads(threads_before);
}

TEST_CASE("Softmax is stable for large logits and sums to one", "[activations]") {
    cnn::Softmax<float> softmax;
    cnn::Scratch<float> scratch;
    const Tensor<float, 4> x({2, 3, 2, 1}, {1000, 999, 1001, 1002, -1000, 0, 3, 3, 3, 3, 3, 3});
    Tensor<float, 4> y(x.shape());
    softmax.forward(x, y, scratch);
    for (std::size_t n = 0; n < 2; ++n)
        for (std::size_t i = 0; i < 2; ++i) {
            float sum = 0;
            for (std::size_t c = 0; c < 3; ++c) {
                CHECK(std::isfinite(y(n, c, i, 0)));
                sum += y(n, c, i, 0);
            }
            CHECK(sum == Approx(1.0f));
        }
    CHECK(y(1, 0, 0, 0) == Approx(1.0f / 3));
}

TEST_CASE("Activation settings are checked, described and recorded", "[activations][errors]") {
    CHECK_THROWS_WITH(cnn::LeakyReLU<float>{-0.1},
                      "LeakyReLU: slope must be a finite number >= 0 (the layer then never decreases), got -0.100000");
    CHECK_THROWS_WITH(cnn::ELU<float>{std::nan("")}, Catch::StartsWith("ELU: alpha must be a finite number >= 0"));
    CHECK_THROWS_WITH(cnn::ELU<float>{1e300}, "ELU: alpha 1e+300 is too large for float");
    CHECK_THROWS_WITH((cnn::SGD<float>{{.learning_rate = 1e300}}), "SGD: learning_rate 1e+300 is too large for float");
    CHECK_NOTHROW(cnn::SGD<double>{{.learning_rate = 1e300}});
    CHECK(cnn::LeakyReLU<float>{}.describe() == "LeakyReLU(0.01)");
    CHECK(cnn::ELU<float>{}.describe() == "ELU(1)");
    CHECK(cnn::GELU<float>{cnn::GeluApproximation::tanh}.describe() == "GELU(tanh)");

    const auto dir = cnn::test::scratch_directory("activations");
    auto net = cnn::Sequential{cnn::Flatten<float>{}, cnn::Dense<float>{4, 3}, cnn::LeakyReLU<float>{0.2},
                               cnn::Dense<float>{3, 2}, cnn::ELU<float>{}};
    cnn::save_model(net, dir / "activations.cnn");
    auto same = net;
    cnn::load_model(same, dir / "activations.cnn");
    auto other = cnn::Sequential{cnn::Flatten<float>{}, cnn::Dense<float>{4, 3}, cnn::LeakyReLU<float>{0.1},
                                 cnn::Dense<float>{3, 2}, cnn::ELU<float>{}};
    CHECK_THROWS_WITH(cnn::load_model(other, dir / "activations.cnn"),
                      Catch::Contains("layer 2 is LeakyReLU(0.2) in the file and LeakyReLU(0.1) in this network"));
}

TEST_CASE("A network that ends in Softmax predicts probabilities", "[activations]") {
    auto net = cnn::Sequential{cnn::Flatten<float>{}, cnn::Dense<float>{4, 3}};
    auto probabilities = cnn::Sequential{net, cnn::Softmax<float>{}};
    decltype(net)::Workspace logits_workspace;
    decltype(probabilities)::Workspace workspace;
    const Tensor<float, 4> x({2, 1, 2, 2}, {0.1f, 0.2f, 0.3f, 0.4f, -1, 2, -3, 4});
    const auto logits = net.forward(x, logits_workspace);
    const auto p = probabilities.forward(x, workspace);
    for (std::size_t n = 0; n < 2; ++n)
        CHECK(cnn::predicted_class<float>(p, n) == cnn::predicted_class<float>(logits, n));
}
