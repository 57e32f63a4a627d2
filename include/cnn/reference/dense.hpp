// Reference fully connected layer (FORMULAS.md sections 6 and 7), written literally.
// W is stored [out][in].
#pragma once

#include <cstddef>
#include <span>

#include "cnn/tensor.hpp"

namespace cnn::reference {

// net_j = sum_i W[j][i] x_i + b_j
template <Scalar T>
void dense_forward(TensorView<const T, 2> w, std::span<const T> b, std::span<const T> x, std::span<T> net) {
    for (std::size_t j = 0; j < w.extent(0); ++j) {
        T sum = b[j];
        for (std::size_t i = 0; i < w.extent(1); ++i) sum += w(j, i) * x[i];
        net[j] = sum;
    }
}

// dE/dW[j][i] += delta_j x_i,   dE/db_j += delta_j,   dE/dx_i = sum_j W[j][i] delta_j  (= W^T delta)
template <Scalar T>
void dense_backward(TensorView<const T, 2> w, std::span<const T> x, std::span<const T> delta,
                    TensorView<T, 2> grad_w, std::span<T> grad_b, std::span<T> grad_x) {
    for (std::size_t i = 0; i < w.extent(1); ++i) grad_x[i] = T{0};
    for (std::size_t j = 0; j < w.extent(0); ++j) {
        grad_b[j] += delta[j];
        for (std::size_t i = 0; i < w.extent(1); ++i) {
            grad_w(j, i) += delta[j] * x[i];
            grad_x[i] += w(j, i) * delta[j];
        }
    }
}

}  // namespace cnn::reference
