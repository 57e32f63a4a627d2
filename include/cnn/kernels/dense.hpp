// The fully connected kernels behind the Dense layer, batched as matrix
// products (FORMULAS.md sections 6 and 7 for a batch of N rows):
//   forward:      Y (N x out)   = X (N x in) W^T (in x out) + b
//   input grad:   dX (N x in)   = dY (N x out) W (out x in)
//   weight grad:  dW (out x in) += dY^T (out x N) X (N x in),   db += column sums of dY
// Work is split by rows of the result, so the thread count never changes a sum.
#pragma once

#include <algorithm>
#include <span>

#include "cnn/kernels/gemm.hpp"
#include "cnn/kernels/threads.hpp"
#include "cnn/layer.hpp"

namespace cnn::kernels {
inline namespace CNN_KERNEL_VARIANT {

inline constexpr std::size_t dense_rows_per_task = 16;

template <Scalar T>
void dense_forward(const T* x, std::size_t samples, std::size_t in, TensorView<const T, 2> w, std::span<const T> b,
                   T* y, Scratch<T>& scratch) {
    const std::size_t out = w.extent(0);
    const std::size_t tasks = (samples + dense_rows_per_task - 1) / dense_rows_per_task;
    T* const packs = scratch.get(threads() * gemm_pack_size<T>()).data();
    thread_pool().parallel_for(tasks, [&](std::size_t task, std::size_t worker) {
        const std::size_t first = task * dense_rows_per_task;
        const std::size_t rows = std::min(samples, first + dense_rows_per_task) - first;
        for (std::size_t n = first; n < first + rows; ++n) std::copy(b.begin(), b.end(), y + n * out);
        gemm_nt<T>(rows, out, in, x + first * in, in, w.data(), in, y + first * out, out, Accumulate::yes,
                   packs + worker * gemm_pack_size<T>());
    });
}

/// Writes dx (skipped when null) and adds dE/dW and dE/db.
template <Scalar T>
void dense_backward(const T* x, const T* dy, std::size_t samples, std::size_t in, TensorView<const T, 2> w, T* dx,
                    TensorView<T, 2> dw, std::span<T> db, Scratch<T>& scratch) {
    const std::size_t out = w.extent(0);
    const std::size_t row_tasks = (samples + dense_rows_per_task - 1) / dense_rows_per_task;
    const std::size_t weight_tasks = (out + dense_rows_per_task - 1) / dense_rows_per_task;
    T* const packs = scratch.get(threads() * gemm_pack_size<T>()).data();
    thread_pool().parallel_for(weight_tasks + (dx ? row_tasks : 0), [&](std::size_t task, std::size_t worker) {
        T* const pack = packs + worker * gemm_pack_size<T>();
        if (task < weight_tasks) {
            const std::size_t first = task * dense_rows_per_task;
            const std::size_t rows = std::min(out, first + dense_rows_per_task) - first;
            gemm_tn<T>(rows, in, samples, dy + first, out, x, in, dw.data() + first * in, in, Accumulate::yes, pack);
            for (std::size_t j = first; j < first + rows; ++j)
                for (std::size_t n = 0; n < samples; ++n) db[j] += dy[n * out + j];
        } else {
            const std::size_t first = (task - weight_tasks) * dense_rows_per_task;
            const std::size_t rows = std::min(samples, first + dense_rows_per_task) - first;
            gemm_nn<T>(rows, in, out, dy + first * out, out, w.data(), in, dx + first * in, in, Accumulate::no, pack);
        }
    });
}

}  // inline namespace
}  // namespace cnn::kernels
