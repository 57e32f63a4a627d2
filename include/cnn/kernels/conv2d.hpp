// The seam where convolution kernels plug into the Conv2D layer: batch-aware
// entry points that, for now, run the reference kernels sample by sample.
#pragma once

#include <span>

#include "cnn/layer.hpp"
#include "cnn/reference/convolution.hpp"
#include "cnn/tensor.hpp"

namespace cnn::kernels {

template <Scalar T>
void conv2d_forward(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b, std::size_t stride,
                    std::size_t padding, TensorView<T, 4> y, Scratch<T>& /*scratch*/) {
    for (std::size_t n = 0; n < x.extent(0); ++n) reference::conv2d_forward<T>(x[n], w, b, stride, padding, y[n]);
}

/// Writes dx = dE/dx and adds dE/dw and dE/db. A null dx skips the input gradient.
template <Scalar T>
void conv2d_backward(TensorView<const T, 4> x, TensorView<const T, 4> dy, TensorView<const T, 4> w,
                     std::size_t stride, std::size_t padding, TensorView<T, 4> dx, TensorView<T, 4> dw,
                     std::span<T> db, Scratch<T>& /*scratch*/) {
    for (std::size_t n = 0; n < x.extent(0); ++n) {
        if (dx.data() != nullptr) reference::conv2d_backward_input<T>(dy[n], w, stride, padding, dx[n]);
        reference::conv2d_weight_grad<T>(x[n], dy[n], stride, padding, dw, db);
    }
}

}  // namespace cnn::kernels
