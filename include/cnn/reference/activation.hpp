// Reference activations (FORMULAS.md section 2 and 7), written literally.
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
