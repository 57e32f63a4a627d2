// The fully connected kernels behind the Dense layer, batched as matrix products
// (FORMULAS.md sections 6 and 7), in the variant this processor runs best
// (cnn/kernels/variant/dense.hpp has the products and how they are split).
#pragma once

#include "cnn/kernels/variants.hpp"

namespace cnn::kernels {

/// Y (N x out) = X (N x in) W^T + b.
template <Scalar T>
void dense_forward(const T* x, std::size_t samples, std::size_t in, TensorView<const T, 2> w, std::span<const T> b,
                   T* y, Scratch<T>& scratch) {
    CNN_KERNEL_CALL(dense_forward<T>(x, samples, in, w, b, y, scratch));
}

/// Writes dX = dY W (adds it with Accumulate::yes; skipped when dx is null) and adds
/// dE/dW = dY^T X and dE/db.
template <Scalar T>
void dense_backward(const T* x, const T* dy, std::size_t samples, std::size_t in, TensorView<const T, 2> w, T* dx,
                    TensorView<T, 2> dw, std::span<T> db, Scratch<T>& scratch, Accumulate accumulate_dx = Accumulate::no) {
    CNN_KERNEL_CALL(dense_backward<T>(x, dy, samples, in, w, dx, dw, db, scratch, accumulate_dx));
}

}  // namespace cnn::kernels
