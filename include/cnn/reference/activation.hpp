// Reference activations (FORMULAS.md sections 2, 7 and 14), written literally.
#pragma once

#include <cmath>
#include <cstddef>

#include "cnn/tensor.hpp"

namespace cnn::reference {

// f(x) = max(0, x)
template <Scalar T>
constexpr T relu(T x) noexcept {
    return x > T{0} ? x : T{0};
}

// f'(x) = 1 if x > 0, 0 if x <= 0 (f'(0) = 0 by convention)
template <Scalar T>
constexpr T relu_derivative(T x) noexcept {
    return x > T{0} ? T{1} : T{0};
}

// sigma(x) = 1 / (1 + e^-x)
template <Scalar T>
T sigmoid(T x) noexcept {
    return T{1} / (T{1} + std::exp(-x));
}

// sigma'(x) = sigma(x) (1 - sigma(x)) = y (1 - y)
template <Scalar T>
T sigmoid_derivative(T y) noexcept {
    return y * (T{1} - y);
}

// tanh'(x) = 1 - tanh(x)^2 = 1 - y^2
template <Scalar T>
T tanh_derivative(T y) noexcept {
    return T{1} - y * y;
}

// f(x) = x for x > 0, a x otherwise (a >= 0);  f'(x) = 1 for x > 0, a otherwise
template <Scalar T>
T leaky_relu(T x, T slope) noexcept {
    return x > T{0} ? x : slope * x;
}
template <Scalar T>
T leaky_relu_derivative(T x, T slope) noexcept {
    return x > T{0} ? T{1} : slope;
}

// f(x) = x for x > 0, a (e^x - 1) otherwise;  f'(x) = 1 for x > 0, a e^x = y + a otherwise
template <Scalar T>
T elu(T x, T alpha) noexcept {
    return x > T{0} ? x : alpha * std::expm1(x);
}
template <Scalar T>
T elu_derivative(T x, T y, T alpha) noexcept {
    return x > T{0} ? T{1} : y + alpha;
}

// GELU, exact: f(x) = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2;  f'(x) = Phi(x) + x phi(x)
template <Scalar T>
T gelu(T x) noexcept {
    return x * (T{1} + std::erf(x * T(0.70710678118654752440))) / T{2};
}
template <Scalar T>
T gelu_derivative(T x) noexcept {
    const T cdf = (T{1} + std::erf(x * T(0.70710678118654752440))) / T{2};
    const T pdf = std::exp(-x * x / T{2}) * T(0.39894228040143267794);  // 1 / sqrt(2 pi)
    return cdf + x * pdf;
}

// GELU, tanh approximation: f(x) = x (1 + tanh(u)) / 2 with u = sqrt(2/pi) (x + 0.044715 x^3);
// f'(x) = (1 + tanh u) / 2 + x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2) / 2
template <Scalar T>
T gelu_tanh(T x) noexcept {
    const T u = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    return x * (T{1} + std::tanh(u)) / T{2};
}
template <Scalar T>
T gelu_tanh_derivative(T x) noexcept {
    const T u = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    const T t = std::tanh(u);
    return (T{1} + t) / T{2} + x * (T{1} - t * t) * T(0.79788456080286535588) * (T{1} + T(3 * 0.044715) * x * x) / T{2};
}

template <Scalar T, std::size_t Rank>
void relu(TensorView<const T, Rank> x, TensorView<T, Rank> out) {
    for (std::size_t i = 0; i < x.size(); ++i) out.data()[i] = relu(x.data()[i]);
}

// delta^{l-1} = dE/da^{l-1} o f'(net^{l-1})
template <Scalar T, std::size_t Rank>
void relu_backward(TensorView<const T, Rank> net, TensorView<const T, Rank> grad_out, TensorView<T, Rank> grad_in) {
    for (std::size_t i = 0; i < net.size(); ++i) grad_in.data()[i] = grad_out.data()[i] * relu_derivative(net.data()[i]);
}

}  // namespace cnn::reference
