// Helpers shared by the test files.
#pragma once

#include <cnn/data/dataset.hpp>
#include <cnn/gradient_check.hpp>
#include <cnn/layer.hpp>
#include <cnn/random.hpp>
#include <cnn/scratch.hpp>
#include <cnn/tensor.hpp>

#include <catch2/catch.hpp>

#include "bars.hpp"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace cnn::test {

/// Fills a tensor with uniform values in [low, high) from a seeded generator.
template <Scalar T, std::size_t Rank>
void fill_uniform(TensorView<T, Rank> tensor, std::mt19937_64& rng, double low = -1.0, double high = 1.0) {
    std::uniform_real_distribution<double> dist(low, high);
    for (T& value : tensor) value = static_cast<T>(dist(rng));
}

/// Every parameter gradient of a network, in data order, as one vector.
template <class Net>
std::vector<typename Net::value_type> parameter_gradients(Net& net) {
    std::vector<typename Net::value_type> values;
    for (const auto& group : net.parameter_groups()) values.insert(values.end(), group.gradients.begin(), group.gradients.end());
    return values;
}

/// Every value of a network (parameters and buffers), in data order, as one vector; and
/// back from one.
template <class Net>
std::vector<typename Net::value_type> parameter_values(Net& net) {
    std::vector<typename Net::value_type> values;
    for (const auto& group : net.parameter_groups()) values.insert(values.end(), group.values.begin(), group.values.end());
    return values;
}
template <class Net>
void set_parameter_values(Net& net, const std::vector<typename Net::value_type>& values) {
    auto from = values.begin();
    for (const auto& group : net.parameter_groups())
        for (auto& value : group.values) value = *from++;
}

template <Scalar T, std::size_t Rank>
Tensor<T, Rank> random_tensor(const Shape<Rank>& shape, std::mt19937_64& rng) {
    Tensor<T, Rank> tensor(shape);
    fill_uniform<T, Rank>(tensor, rng);
    return tensor;
}

/// The largest |a_i - b_i| over two equally shaped tensors (infinity when shapes differ).
template <class A, class B>
double max_abs_difference(const A& a, const B& b) {
    if (a.shape() != b.shape()) return INFINITY;
    double worst = 0;
    auto bi = b.begin();
    for (auto ai = a.begin(); ai != a.end(); ++ai, ++bi)
        worst = std::max(worst, std::abs(static_cast<double>(*ai) - static_cast<double>(*bi)));
    return worst;
}

/// max |a_i - b_i| / max |b_i|: the difference relative to the size of the reference b.
template <class A, class B>
double max_relative_difference(const A& a, const B& b) {
    double scale = 0;
    for (auto v : b) scale = std::max(scale, std::abs(static_cast<double>(v)));
    const double difference = max_abs_difference(a, b);
    return scale > 0 ? difference / scale : difference;
}

/// How closely a fast kernel must match its reference twin: 1e-5 relative in float, 1e-12 in double.
template <class T>
constexpr double kernel_tolerance() {
    return std::is_same_v<T, float> ? 1e-5 : 1e-12;
}

/// Checks dE/dx and dE/d(weights and biases) of `layer` against central finite differences
/// (relative error at most 1e-6, in double) for E = sum(R o y) with a random R, in `mode`.
/// Every forward of the check draws from the same random stream state (the same dropout
/// mask); buffers (running statistics) are not learned and not checked.
template <class L>
void check_layer_gradients(L& layer, const Shape<4>& input_shape, std::mt19937_64& rng,
                           Mode mode = Mode::inference) {
    INFO(layer.describe() << " on input " << to_string(input_shape)
                          << (mode == Mode::training ? " in training" : " in inference"));
    Scratch<double> scratch;
    layer_state_t<L> state{};
    auto x = random_tensor<double>(input_shape, rng);
    const std::size_t learned = detail::parameter_layout(layer).learned();
    const std::span<double> values = layer.parameters().subspan(0, learned);
    fill_uniform<double, 1>(TensorView<double, 1>(values.data(), {values.size()}), rng);
    Tensor<double, 4> y(layer.output_shape(input_shape));
    const auto weights = random_tensor<double>(y.shape(), rng);
    const auto loss = [&] {
        Random stream{7};
        detail::forward(layer, x, y, Context<double>(scratch, mode, &stream), state);
        double sum = 0;
        for (std::size_t i = 0; i < y.size(); ++i) sum += weights.data()[i] * y.data()[i];
        return sum;
    };

    loss();
    Tensor<double, 4> dx(input_shape);
    std::fill(layer.gradients().begin(), layer.gradients().end(), 0.0);
    detail::backward(layer, x, y, weights, dx, Context<double>(scratch, mode), state, Accumulate::no);
    const std::vector<double> analytic(layer.gradients().begin(), layer.gradients().begin() + static_cast<std::ptrdiff_t>(learned));

    const auto input_check = gradient_check<double>(loss, x.span(), dx.span());
    INFO("input gradient: worst index " << input_check.worst_index << ", analytic " << input_check.worst_analytic
                                        << ", numeric " << input_check.worst_numeric);
    CHECK(input_check.relative_error <= 1e-6);

    if (learned > 0) {
        const auto parameter_check = gradient_check<double>(loss, values, std::span<const double>(analytic));
        INFO("parameter gradient: worst index " << parameter_check.worst_index << ", analytic "
                                                << parameter_check.worst_analytic << ", numeric "
                                                << parameter_check.worst_numeric);
        CHECK(parameter_check.relative_error <= 1e-6);
    }
}

/// A fresh, empty directory for one test's files (under the system's temporary directory).
inline std::filesystem::path scratch_directory(const std::string& name) {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / ("cnn-tests-" + std::to_string(::getpid())) / name;
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

}  // namespace cnn::test
