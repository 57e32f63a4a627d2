// The matrix product the lowered convolution and dense layers run on:
//   C (m x n) = [C +] A (m x k) B (k x n),
// a packed, cache-blocked GEMM with a register-tiled micro-kernel per kernel variant
// (cnn/kernels/variant/gemm.hpp), called in the variant this processor runs best
// (cnn/kernels/common.hpp).
#pragma once

#include "cnn/kernels/variants.hpp"

namespace cnn::kernels {

/// C (m x n, row-major, leading dimension ldc) = [C +] A B, where A(i, p) = a[i rs_a + p cs_a]
/// and B(p, j) = b[p rs_b + j cs_b]. `pack` is gemm_pack_size<T>() elements of memory for the
/// packed panels, 64-byte aligned (when null, a buffer of the calling thread's, allocated on
/// its first use). Every element of C is summed in the same order whatever the split of m
/// and n between calls.
template <Scalar T>
void gemm(std::size_t m, std::size_t n, std::size_t k, const T* a, std::ptrdiff_t rs_a, std::ptrdiff_t cs_a, const T* b,
          std::ptrdiff_t rs_b, std::ptrdiff_t cs_b, T* c, std::size_t ldc, Accumulate accumulate, T* pack = nullptr) {
    CNN_KERNEL_CALL(gemm<T>(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, c, ldc, accumulate, pack));
}

/// C (m x n, row-major, leading dimension ldc) = [C +] A B as gemm computes it, where
/// B(p, j) = b[offsets[j] + p]: B's columns anywhere in one buffer (a convolution's input
/// planes shifted to each filter tap), transposed as they are packed. Same summation order.
template <Scalar T>
void gemm_columns(std::size_t m, std::size_t n, std::size_t k, const T* a, std::ptrdiff_t rs_a, std::ptrdiff_t cs_a,
                  const T* b, const std::size_t* offsets, T* c, std::size_t ldc, Accumulate accumulate,
                  T* pack = nullptr) {
    CNN_KERNEL_CALL(gemm_columns<T>(m, n, k, a, rs_a, cs_a, b, offsets, c, ldc, accumulate, pack));
}

/// Elements of packing memory one gemm call needs in the active variant.
template <Scalar T>
std::size_t gemm_pack_size() {
    CNN_KERNEL_CALL(gemm_pack_size<T>());
}

/// Which micro-kernel the products run on: "avx512", "avx2" or "portable".
inline const char* gemm_kernel_name() { return name(active_variant()); }

}  // namespace cnn::kernels
