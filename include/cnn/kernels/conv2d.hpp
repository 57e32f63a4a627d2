// The convolution kernels behind the Conv2D layer (FORMULAS.md 4.3 and 8.4-8.6,
// lowered to matrix products), in the variant this processor runs best.
// cnn/kernels/variant/conv2d.hpp has the lowering and the hooks; the reference
// kernels in cnn/reference/convolution.hpp are their oracle (tests/test_kernels.cpp).
#pragma once

#include "cnn/kernels/variants.hpp"

namespace cnn::kernels {

/// y = the cross-correlation of x with w (strides, zero padding and dilation per axis), plus b. after(first, last, part) is called on the
/// thread that computed samples [first, last), with their output (see the variant file).
template <Scalar T, class After = NoHook>
void conv2d_forward(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b, const ConvSpec& spec,
                    TensorView<T, 4> y, Scratch<T>& scratch, const After& after = {}) {
    CNN_KERNEL_CALL(conv2d_forward<T, After>(x, w, b, spec, y, scratch, after));
}

/// Adds dE/dw and dE/db, and writes dx (adds into it with Accumulate::yes; skipped when null).
/// before(first, last, part) writes the deltas of samples [first, last) when dy has a shape
/// but no data.
template <Scalar T, class Before = NoHook>
void conv2d_backward(TensorView<const T, 4> x, TensorView<const T, 4> dy, TensorView<const T, 4> w,
                     const ConvSpec& spec, TensorView<T, 4> dx, TensorView<T, 4> dw, std::span<T> db,
                     Scratch<T>& scratch, const Before& before = {}, Accumulate accumulate_dx = Accumulate::no) {
    CNN_KERNEL_CALL(conv2d_backward<T, Before>(x, dy, w, spec, dx, dw, db, scratch, before, accumulate_dx));
}

/// The same for a grouped convolution (C = G Cg channels, K = G Kg filters; w is K x Cg x
/// Fh x Fw), by direct summation over each plane (cnn/kernels/variant/grouped.hpp). The hooks
/// see the whole batch at once, on the calling thread.
template <Scalar T, class After = NoHook>
void grouped_conv2d_forward(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b,
                            const ConvSpec& spec, TensorView<T, 4> y, Scratch<T>& scratch, const After& after = {}) {
    CNN_KERNEL_CALL(grouped_conv2d_forward<T, After>(x, w, b, spec, y, scratch, after));
}

/// Adds dE/dw and dE/db, and writes dx (adds into it with Accumulate::yes; skipped when null).
template <Scalar T, class Before = NoHook>
void grouped_conv2d_backward(TensorView<const T, 4> x, TensorView<const T, 4> dy, TensorView<const T, 4> w,
                             const ConvSpec& spec, TensorView<T, 4> dx, TensorView<T, 4> dw, std::span<T> db,
                             Scratch<T>& scratch, const Before& before = {}, Accumulate accumulate_dx = Accumulate::no) {
    CNN_KERNEL_CALL(grouped_conv2d_backward<T, Before>(x, dy, w, spec, dx, dw, db, scratch, before, accumulate_dx));
}

}  // namespace cnn::kernels
