// Matrix products for the lowered convolution and dense layers. Row-major,
// with leading dimensions; C = A B (or C += A B). The loops keep the innermost
// index contiguous in B and C so that the compiler vectorises them, and work
// on four rows of C at a time so each loaded row of B feeds four updates.
// Every element of C is summed in the same order whatever the caller's split,
// so results do not depend on how work is divided between threads.
#pragma once

#include <algorithm>
#include <cstddef>

#include "cnn/tensor.hpp"

namespace cnn::kernels {

enum class Accumulate { no, yes };

/// C (m x n) = [C +] A (m x k) * B (k x n)
template <Scalar T>
void gemm_nn(std::size_t m, std::size_t n, std::size_t k, const T* __restrict a, std::size_t lda,
             const T* __restrict b, std::size_t ldb, T* __restrict c, std::size_t ldc, Accumulate accumulate) {
    if (accumulate == Accumulate::no)
        for (std::size_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, T{0});
    std::size_t i = 0;
    for (; i + 4 <= m; i += 4) {
        T* __restrict c0 = c + i * ldc;
        T* __restrict c1 = c0 + ldc;
        T* __restrict c2 = c1 + ldc;
        T* __restrict c3 = c2 + ldc;
        for (std::size_t p = 0; p < k; ++p) {
            const T a0 = a[i * lda + p], a1 = a[(i + 1) * lda + p], a2 = a[(i + 2) * lda + p],
                    a3 = a[(i + 3) * lda + p];
            const T* __restrict row = b + p * ldb;
            for (std::size_t j = 0; j < n; ++j) {
                const T v = row[j];
                c0[j] += a0 * v;
                c1[j] += a1 * v;
                c2[j] += a2 * v;
                c3[j] += a3 * v;
            }
        }
    }
    for (; i < m; ++i) {
        T* __restrict ci = c + i * ldc;
        for (std::size_t p = 0; p < k; ++p) {
            const T ai = a[i * lda + p];
            const T* __restrict row = b + p * ldb;
            for (std::size_t j = 0; j < n; ++j) ci[j] += ai * row[j];
        }
    }
}

/// C (m x n) = [C +] A^T * B, with A stored k x m and B stored k x n
template <Scalar T>
void gemm_tn(std::size_t m, std::size_t n, std::size_t k, const T* __restrict a, std::size_t lda,
             const T* __restrict b, std::size_t ldb, T* __restrict c, std::size_t ldc, Accumulate accumulate) {
    if (accumulate == Accumulate::no)
        for (std::size_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, T{0});
    std::size_t i = 0;
    for (; i + 4 <= m; i += 4) {
        T* __restrict c0 = c + i * ldc;
        T* __restrict c1 = c0 + ldc;
        T* __restrict c2 = c1 + ldc;
        T* __restrict c3 = c2 + ldc;
        for (std::size_t p = 0; p < k; ++p) {
            const T* ap = a + p * lda + i;
            const T a0 = ap[0], a1 = ap[1], a2 = ap[2], a3 = ap[3];
            const T* __restrict row = b + p * ldb;
            for (std::size_t j = 0; j < n; ++j) {
                const T v = row[j];
                c0[j] += a0 * v;
                c1[j] += a1 * v;
                c2[j] += a2 * v;
                c3[j] += a3 * v;
            }
        }
    }
    for (; i < m; ++i) {
        T* __restrict ci = c + i * ldc;
        for (std::size_t p = 0; p < k; ++p) {
            const T ai = a[p * lda + i];
            const T* __restrict row = b + p * ldb;
            for (std::size_t j = 0; j < n; ++j) ci[j] += ai * row[j];
        }
    }
}

/// B^T of a rows x cols matrix, written into `out` (cols x rows).
template <Scalar T>
void transpose(std::size_t rows, std::size_t cols, const T* __restrict in, T* __restrict out) {
    constexpr std::size_t tile = 32;
    for (std::size_t r0 = 0; r0 < rows; r0 += tile)
        for (std::size_t c0 = 0; c0 < cols; c0 += tile)
            for (std::size_t r = r0; r < std::min(rows, r0 + tile); ++r)
                for (std::size_t c = c0; c < std::min(cols, c0 + tile); ++c) out[c * rows + r] = in[r * cols + c];
}

}  // namespace cnn::kernels
