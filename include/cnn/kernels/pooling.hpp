// The pooling kernels behind MaxPool and MeanPool (FORMULAS.md sections 5 and 9),
// in the variant this processor runs best: on a range of channel planes on the
// calling thread, or on the whole batch spread over the thread pool. The
// reference kernels in cnn/reference/pooling.hpp are their oracle.
#pragma once

#include "cnn/kernels/variants.hpp"

namespace cnn::kernels {

/// y = the maximum of each window (of each window after a ReLU when AfterReLU), whole batch.
template <Scalar T, bool AfterReLU = false>
void maxpool_forward(const T* x, const PoolGeometry& g, T* y) {
    CNN_KERNEL_CALL(maxpool_forward<T, AfterReLU>(x, g, y));
}

/// dx = each window's delta routed to its first maximum (added where windows overlap), or
/// dx += that with Accumulate::yes.
template <Scalar T, bool AfterReLU = false>
void maxpool_backward(const T* x, const T* dy, const PoolGeometry& g, T* dx, Accumulate accumulate = Accumulate::no) {
    CNN_KERNEL_CALL(maxpool_backward<T, AfterReLU>(x, dy, g, dx, accumulate));
}

/// y = the mean of each window.
template <Scalar T>
void meanpool_forward(const T* x, const PoolGeometry& g, T* y) {
    CNN_KERNEL_CALL(meanpool_forward<T>(x, g, y));
}

/// dx = each window's delta spread evenly over it (dx += that with Accumulate::yes).
template <Scalar T>
void meanpool_backward(const T* dy, const PoolGeometry& g, T* dx, Accumulate accumulate = Accumulate::no) {
    CNN_KERNEL_CALL(meanpool_backward<T>(dy, g, dx, accumulate));
}

/// y = max over each window of x (of ReLU(x) when AfterReLU), and each window's first
/// maximum's place in `winners` (after a ReLU, no_winner where the maximum is not positive).
/// Planes `planes`, on the calling thread.
template <Scalar T, bool AfterReLU = true>
void maxpool_forward_winners(const T* x, const PoolGeometry& g, T* y, std::uint32_t* winners, Planes planes) {
    CNN_KERNEL_CALL(maxpool_forward_winners<T, AfterReLU>(x, g, y, winners, planes));
}

/// dx from the places maxpool_forward_winners found. Planes `planes`, on the calling thread.
template <Scalar T>
void maxpool_backward_winners(const std::uint32_t* winners, const T* dy, const PoolGeometry& g, T* dx, Planes planes) {
    CNN_KERNEL_CALL(maxpool_backward_winners<T>(winners, dy, g, dx, planes));
}

}  // namespace cnn::kernels
