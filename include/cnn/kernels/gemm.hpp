// Matrix products for the lowered convolution and dense layers:
//   C (m x n) = [C +] A (m x k) B (k x n),
// with A and B given by row and column strides (so transposes cost nothing)
// and C row-major. A packed, cache-blocked GEMM in the manner of Goto and van
// de Geijn (BLIS): B is packed in KC x NR panels that stay in L1, A in MR x KC
// panels streamed from L2, and a register-tiled micro-kernel keeps an MR x NR
// block of C in vector registers.
//
// The micro-kernel is chosen at compile time from the compiler's flags:
//   AVX-512F          float 12 x 32, double 12 x 16   (zmm registers)
//   AVX2 + FMA        float  6 x 16, double  6 x 8    (ymm registers)
//   anything else     4 x 4 in portable C++
// Each variant lives in its own inline namespace, so translation units built
// with different flags never mix them up. gemm_kernel_name() tells which one a
// translation unit got.
//
// Every element of C is summed in the same order (over k, in blocks of KC)
// whatever the split of m and n between calls, so results never depend on how
// the caller divides work between threads.
#pragma once

#include <algorithm>
#include <cstddef>

#include "cnn/tensor.hpp"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace cnn::kernels {

enum class Accumulate { no, yes };

#if defined(__AVX512F__)
inline namespace avx512 {
#elif defined(__AVX2__) && defined(__FMA__)
inline namespace avx2 {
#else
inline namespace portable {
#endif

namespace detail {

/// Vector operations on `lanes` elements of T, for the micro-kernel.
template <class T>
struct Vector;

#if defined(__AVX512F__)
inline constexpr const char* kernel_name = "avx512";
template <>
struct Vector<float> {
    using reg = __m512;
    static constexpr std::size_t lanes = 16, rows = 12, columns = 32;
    static reg zero() { return _mm512_setzero_ps(); }
    static reg loadu(const float* p) { return _mm512_loadu_ps(p); }
    static reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
    static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
    static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
    static void storeu(float* p, reg r) { _mm512_storeu_ps(p, r); }
};
template <>
struct Vector<double> {
    using reg = __m512d;
    static constexpr std::size_t lanes = 8, rows = 12, columns = 16;
    static reg zero() { return _mm512_setzero_pd(); }
    static reg loadu(const double* p) { return _mm512_loadu_pd(p); }
    static reg broadcast(const double* p) { return _mm512_set1_pd(*p); }
    static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
    static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
    static void storeu(double* p, reg r) { _mm512_storeu_pd(p, r); }
};
#elif defined(__AVX2__) && defined(__FMA__)
inline constexpr const char* kernel_name = "avx2";
template <>
struct Vector<float> {
    using reg = __m256;
    static constexpr std::size_t lanes = 8, rows = 6, columns = 16;
    static reg zero() { return _mm256_setzero_ps(); }
    static reg loadu(const float* p) { return _mm256_loadu_ps(p); }
    static reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
    static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
    static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
    static void storeu(float* p, reg r) { _mm256_storeu_ps(p, r); }
};
template <>
struct Vector<double> {
    using reg = __m256d;
    static constexpr std::size_t lanes = 4, rows = 6, columns = 8;
    static reg zero() { return _mm256_setzero_pd(); }
    static reg loadu(const double* p) { return _mm256_loadu_pd(p); }
    static reg broadcast(const double* p) { return _mm256_broadcast_sd(p); }
    static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
    static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
    static void storeu(double* p, reg r) { _mm256_storeu_pd(p, r); }
};
#else
inline constexpr const char* kernel_name = "portable";
template <class T>
struct Vector {
    using reg = T;
    static constexpr std::size_t lanes = 1, rows = 4, columns = 4;
    static reg zero() { return T{0}; }
    static reg loadu(const T* p) { return *p; }
    static reg broadcast(const T* p) { return *p; }
    static reg fma(reg a, reg b, reg c) { return a * b + c; }
    static reg add(reg a, reg b) { return a + b; }
    static void storeu(T* p, reg r) { *p = r; }
};
#endif

/// Block sizes: an MR x KC panel of A and a KC x NR panel of B in L1, an MC x KC
/// block of A in L2, a KC x NC block of B in L3.
template <class T>
struct Blocking {
    static constexpr std::size_t mr = Vector<T>::rows, nr = Vector<T>::columns;
    static constexpr std::size_t kc = 256 * 4 / sizeof(T);
    static constexpr std::size_t mc = mr * (96 / mr + (96 % mr != 0));
    static constexpr std::size_t nc = nr * (2048 / nr);
};

/// C (MR x NR, leading dimension ldc) = [C +] the product of one packed A panel (MR rows,
/// column by column) and one B panel whose k-th row of NR values starts at b + k * b_stride
/// (a packed panel, b_stride = NR, or B itself when its rows are contiguous).
template <class T, std::size_t MR>
void micro_kernel(std::size_t kc, const T* __restrict a, const T* __restrict b, std::size_t b_stride,
                  T* __restrict c, std::size_t ldc, bool accumulate) {
    using V = Vector<T>;
    constexpr std::size_t vectors = V::columns / V::lanes;
    typename V::reg acc[MR][vectors];
#pragma GCC unroll 16
    for (std::size_t i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (std::size_t j = 0; j < vectors; ++j) acc[i][j] = V::zero();
    for (std::size_t p = 0; p < kc; ++p) {
        typename V::reg bv[vectors];
#pragma GCC unroll 4
        for (std::size_t j = 0; j < vectors; ++j) bv[j] = V::loadu(b + j * V::lanes);
#pragma GCC unroll 16
        for (std::size_t i = 0; i < MR; ++i) {
            const typename V::reg av = V::broadcast(a + i);
#pragma GCC unroll 4
            for (std::size_t j = 0; j < vectors; ++j) acc[i][j] = V::fma(av, bv[j], acc[i][j]);
        }
        a += MR;
        b += b_stride;
    }
#pragma GCC unroll 16
    for (std::size_t i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (std::size_t j = 0; j < vectors; ++j) {
            T* at = c + i * ldc + j * V::lanes;
            V::storeu(at, accumulate ? V::add(V::loadu(at), acc[i][j]) : acc[i][j]);
        }
}

/// Packs rows [0, m) x columns [0, k) of A into MR-row panels, column by column, zero-padded.
template <class T, std::size_t MR>
void pack_a(std::size_t m, std::size_t k, const T* a, std::ptrdiff_t rs, std::ptrdiff_t cs, T* __restrict out) {
    constexpr std::size_t mr = MR;
    for (std::size_t i0 = 0; i0 < m; i0 += mr) {
        const std::size_t rows = std::min(mr, m - i0);
        for (std::size_t p = 0; p < k; ++p) {
            for (std::size_t i = 0; i < rows; ++i)
                out[i] = a[static_cast<std::ptrdiff_t>(i0 + i) * rs + static_cast<std::ptrdiff_t>(p) * cs];
            for (std::size_t i = rows; i < mr; ++i) out[i] = T{0};
            out += mr;
        }
    }
}

/// Packs rows [0, k) x columns [0, n) of B into NR-column panels, row by row, zero-padded.
template <class T>
void pack_b(std::size_t k, std::size_t n, const T* b, std::ptrdiff_t rs, std::ptrdiff_t cs, T* __restrict out) {
    constexpr std::size_t nr = Blocking<T>::nr;
    for (std::size_t j0 = 0; j0 < n; j0 += nr) {
        const std::size_t cols = std::min(nr, n - j0);
        for (std::size_t p = 0; p < k; ++p) {
            const T* row = b + static_cast<std::ptrdiff_t>(p) * rs + static_cast<std::ptrdiff_t>(j0) * cs;
            if (cs == 1) {
                std::copy_n(row, cols, out);
            } else {
                for (std::size_t j = 0; j < cols; ++j) out[j] = row[static_cast<std::ptrdiff_t>(j) * cs];
            }
            for (std::size_t j = cols; j < nr; ++j) out[j] = T{0};
            out += nr;
        }
    }
}

/// Per-thread packing memory for callers that bring none, allocated once per thread.
template <class T>
T* thread_pack_memory() {
    thread_local Tensor<T, 1> memory{Shape<1>{Blocking<T>::mc * Blocking<T>::kc + Blocking<T>::kc * Blocking<T>::nc}};
    return memory.data();
}

}  // namespace detail

/// Which micro-kernel this translation unit uses: "avx512", "avx2" or "portable".
inline const char* gemm_kernel_name() noexcept { return detail::kernel_name; }

/// Elements of packing memory one gemm call needs (see the `pack` argument of gemm).
template <Scalar T>
constexpr std::size_t gemm_pack_size() noexcept {
    using B = detail::Blocking<T>;
    return B::mc * B::kc + B::kc * B::nc;
}

namespace detail {

/// The blocked product with MR-row micro-tiles (the full height, or half of it for short A).
template <Scalar T, std::size_t MR>
void gemm_blocked(std::size_t m, std::size_t n, std::size_t k, const T* a, std::ptrdiff_t rs_a, std::ptrdiff_t cs_a,
                  const T* b, std::ptrdiff_t rs_b, std::ptrdiff_t cs_b, T* c, std::size_t ldc, Accumulate accumulate,
                  T* pack) {
    using B = Blocking<T>;
    constexpr std::size_t nr = B::nr, mc_max = MR * (B::mc / MR);
    T* const packed_a = pack;
    T* const packed_b = pack + B::mc * B::kc;
    alignas(64) T edge[MR * nr];
    // With at most two row panels each B panel is used at most twice: when its rows are
    // contiguous the micro-kernel reads B in place instead of copying it first.
    const bool read_b_in_place = cs_b == 1 && m <= 2 * MR;

    for (std::size_t jc = 0; jc < n; jc += B::nc) {
        const std::size_t nc = std::min(B::nc, n - jc);
        for (std::size_t pc = 0; pc < k; pc += B::kc) {
            const std::size_t kc = std::min(B::kc, k - pc);
            const bool add = pc > 0 || accumulate == Accumulate::yes;
            const T* b_block = b + static_cast<std::ptrdiff_t>(pc) * rs_b + static_cast<std::ptrdiff_t>(jc) * cs_b;
            if (!read_b_in_place) pack_b(kc, nc, b_block, rs_b, cs_b, packed_b);
            for (std::size_t ic = 0; ic < m; ic += mc_max) {
                const std::size_t mc = std::min(mc_max, m - ic);
                pack_a<T, MR>(mc, kc, a + static_cast<std::ptrdiff_t>(ic) * rs_a + static_cast<std::ptrdiff_t>(pc) * cs_a,
                              rs_a, cs_a, packed_a);
                for (std::size_t jr = 0; jr < nc; jr += nr) {
                    const std::size_t cols = std::min(nr, nc - jr);
                    // A panel of B: in place (full width only), or packed.
                    const T* pb = packed_b + jr * kc;
                    std::size_t b_stride = nr;
                    if (read_b_in_place) {
                        if (cols == nr) {
                            pb = b_block + jr;
                            b_stride = static_cast<std::size_t>(rs_b);
                        } else {
                            pack_b(kc, cols, b_block + jr, rs_b, cs_b, packed_b);
                            pb = packed_b;
                        }
                    }
                    for (std::size_t ir = 0; ir < mc; ir += MR) {
                        const std::size_t rows = std::min(MR, mc - ir);
                        T* target = c + (ic + ir) * ldc + jc + jr;
                        const T* pa = packed_a + ir * kc;
                        if (rows == MR && cols == nr) {
                            micro_kernel<T, MR>(kc, pa, pb, b_stride, target, ldc, add);
                        } else {
                            // An edge tile: compute the full tile aside, keep the valid part.
                            micro_kernel<T, MR>(kc, pa, pb, b_stride, edge, nr, false);
                            for (std::size_t i = 0; i < rows; ++i)
                                for (std::size_t j = 0; j < cols; ++j)
                                    target[i * ldc + j] = (add ? target[i * ldc + j] : T{0}) + edge[i * nr + j];
                        }
                    }
                }
            }
        }
    }
}

}  // namespace detail

/// C (m x n, row-major, leading dimension ldc) = [C +] A B, where A(i, p) = a[i rs_a + p cs_a]
/// and B(p, j) = b[p rs_b + j cs_b]. `pack` is gemm_pack_size<T>() elements of memory for the
/// packed panels, 64-byte aligned (when null, a buffer of the calling thread's, allocated on
/// its first use).
template <Scalar T>
void gemm(std::size_t m, std::size_t n, std::size_t k, const T* a, std::ptrdiff_t rs_a, std::ptrdiff_t cs_a, const T* b,
          std::ptrdiff_t rs_b, std::ptrdiff_t cs_b, T* c, std::size_t ldc, Accumulate accumulate, T* pack = nullptr) {
    constexpr std::size_t mr = detail::Blocking<T>::mr;
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (accumulate == Accumulate::no)
            for (std::size_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, T{0});
        return;
    }
    if (pack == nullptr) pack = detail::thread_pack_memory<T>();
    // Short A (few filters): half-height tiles waste less of each register tile.
    if (m <= mr / 2)
        detail::gemm_blocked<T, mr / 2>(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, c, ldc, accumulate, pack);
    else
        detail::gemm_blocked<T, mr>(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, c, ldc, accumulate, pack);
}

}  // inline namespace

/// C (m x n) = [C +] A (m x k) * B (k x n), row-major with leading dimensions.
template <Scalar T>
void gemm_nn(std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t lda, const T* b, std::size_t ldb,
             T* c, std::size_t ldc, Accumulate accumulate, T* pack = nullptr) {
    gemm<T>(m, n, k, a, static_cast<std::ptrdiff_t>(lda), 1, b, static_cast<std::ptrdiff_t>(ldb), 1, c, ldc, accumulate, pack);
}

/// C (m x n) = [C +] A^T * B, with A stored k x m and B stored k x n
template <Scalar T>
void gemm_tn(std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t lda, const T* b, std::size_t ldb,
             T* c, std::size_t ldc, Accumulate accumulate, T* pack = nullptr) {
    gemm<T>(m, n, k, a, 1, static_cast<std::ptrdiff_t>(lda), b, static_cast<std::ptrdiff_t>(ldb), 1, c, ldc, accumulate, pack);
}

/// C (m x n) = [C +] A * B^T, with A stored m x k and B stored n x k
template <Scalar T>
void gemm_nt(std::size_t m, std::size_t n, std::size_t k, const T* a, std::size_t lda, const T* b, std::size_t ldb,
             T* c, std::size_t ldc, Accumulate accumulate, T* pack = nullptr) {
    gemm<T>(m, n, k, a, static_cast<std::ptrdiff_t>(lda), 1, b, 1, static_cast<std::ptrdiff_t>(ldb), c, ldc, accumulate, pack);
}

}  // namespace cnn::kernels
