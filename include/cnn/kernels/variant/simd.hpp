// The vector operations the fast kernels are written in, one set per variant
// (CNN_KERNEL_LEVEL, set by cnn/kernels/variants.hpp, which includes this file
// once per variant inside that variant's target options):
//   2  avx512     AVX-512F          16 floats / 8 doubles per register
//   1  avx2       AVX2 + FMA         8 floats / 4 doubles
//   0  portable   plain C++, one value at a time
//
// Besides whole registers, the kernels move short runs of values (a 14-wide
// output row of a convolution, say): copy_run, add_run and zero_run do those
// with masked loads and stores instead of a call to memcpy per row, which cost
// more than the copying itself.

namespace cnn::kernels {
namespace CNN_KERNEL_VARIANT {

namespace detail {

/// Vector operations on `lanes` elements of T. `rows` x `columns` is the GEMM
/// micro-tile of C held in registers.
template <class T>
struct Vector;

#if CNN_KERNEL_LEVEL == 2
template <>
struct Vector<float> {
    using reg = __m512;
    static constexpr std::size_t lanes = 16, rows = 12, columns = 32;
    static reg zero() { return _mm512_setzero_ps(); }
    static reg loadu(const float* p) { return _mm512_loadu_ps(p); }
    static reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
    static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
    static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
    static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
    static void storeu(float* p, reg r) { _mm512_storeu_ps(p, r); }
    static __mmask16 mask(std::size_t n) { return static_cast<__mmask16>((1u << n) - 1u); }
    static reg loadu(const float* p, std::size_t n) { return _mm512_maskz_loadu_ps(mask(n), p); }
    static void storeu(float* p, reg r, std::size_t n) { _mm512_mask_storeu_ps(p, mask(n), r); }
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
    static reg sub(reg a, reg b) { return _mm512_sub_pd(a, b); }
    static void storeu(double* p, reg r) { _mm512_storeu_pd(p, r); }
    static __mmask8 mask(std::size_t n) { return static_cast<__mmask8>((1u << n) - 1u); }
    static reg loadu(const double* p, std::size_t n) { return _mm512_maskz_loadu_pd(mask(n), p); }
    static void storeu(double* p, reg r, std::size_t n) { _mm512_mask_storeu_pd(p, mask(n), r); }
};
#elif CNN_KERNEL_LEVEL == 1
template <>
struct Vector<float> {
    using reg = __m256;
    static constexpr std::size_t lanes = 8, rows = 6, columns = 16;
    static reg zero() { return _mm256_setzero_ps(); }
    static reg loadu(const float* p) { return _mm256_loadu_ps(p); }
    static reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
    static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
    static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
    static reg sub(reg a, reg b) { return _mm256_sub_ps(a, b); }
    static void storeu(float* p, reg r) { _mm256_storeu_ps(p, r); }
    static __m256i mask(std::size_t n) {
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static reg loadu(const float* p, std::size_t n) { return _mm256_maskload_ps(p, mask(n)); }
    static void storeu(float* p, reg r, std::size_t n) { _mm256_maskstore_ps(p, mask(n), r); }
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
    static reg sub(reg a, reg b) { return _mm256_sub_pd(a, b); }
    static void storeu(double* p, reg r) { _mm256_storeu_pd(p, r); }
    static __m256i mask(std::size_t n) {
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(n)), _mm256_setr_epi64x(0, 1, 2, 3));
    }
    static reg loadu(const double* p, std::size_t n) { return _mm256_maskload_pd(p, mask(n)); }
    static void storeu(double* p, reg r, std::size_t n) { _mm256_maskstore_pd(p, mask(n), r); }
};
#else
template <class T>
struct Vector {
    using reg = T;
    static constexpr std::size_t lanes = 1, rows = 4, columns = 4;
    static reg zero() { return T{0}; }
    static reg loadu(const T* p) { return *p; }
    static reg broadcast(const T* p) { return *p; }
    static reg fma(reg a, reg b, reg c) { return a * b + c; }
    static reg add(reg a, reg b) { return a + b; }
    static reg sub(reg a, reg b) { return a - b; }
    static void storeu(T* p, reg r) { *p = r; }
    // A run shorter than one lane is empty.
    static reg loadu(const T*, std::size_t) { return T{0}; }
    static void storeu(T*, reg, std::size_t) {}
};
#endif

/// dst[0, n) = src[0, n)
template <class T>
inline void copy_run(const T* __restrict src, std::size_t n, T* __restrict dst) {
    using V = Vector<T>;
    std::size_t i = 0;
    for (; i + V::lanes <= n; i += V::lanes) V::storeu(dst + i, V::loadu(src + i));
    if (i < n) V::storeu(dst + i, V::loadu(src + i, n - i), n - i);
}

/// dst[0, n) += src[0, n)
template <class T>
inline void add_run(const T* __restrict src, std::size_t n, T* __restrict dst) {
    using V = Vector<T>;
    std::size_t i = 0;
    for (; i + V::lanes <= n; i += V::lanes) V::storeu(dst + i, V::add(V::loadu(dst + i), V::loadu(src + i)));
    if (i < n) V::storeu(dst + i, V::add(V::loadu(dst + i, n - i), V::loadu(src + i, n - i)), n - i);
}

/// dst[0, n) = 0
template <class T>
inline void zero_run(T* dst, std::size_t n) {
    using V = Vector<T>;
    std::size_t i = 0;
    for (; i + V::lanes <= n; i += V::lanes) V::storeu(dst + i, V::zero());
    if (i < n) V::storeu(dst + i, V::zero(), n - i);
}

/// n <= lanes values from p: a whole vector, or the first n of one (the rest zero).
template <class T>
typename Vector<T>::reg load_n(const T* p, std::size_t n) {
    using V = Vector<T>;
    return n == V::lanes ? V::loadu(p) : V::loadu(p, n);
}

/// The first n <= lanes values of r, to p.
template <class T>
void store_n(T* p, typename Vector<T>::reg r, std::size_t n) {
    using V = Vector<T>;
    if (n == V::lanes)
        V::storeu(p, r);
    else
        V::storeu(p, r, n);
}

/// Software prefetching of a stream that a kernel walks front to back but not in one run:
/// the Winograd transforms read (and write) a channel's rows tile by tile, each tile's rows
/// overlapping the last one's, and on a batch's activations (megabytes, out of L2) the
/// hardware's prefetcher left them waiting on memory. upto(p), p inside the stream or at its
/// end, asks for every cache line from the last one asked for up to `Distance` bytes past p,
/// none past the stream's end (offsets, so that no pointer leaves the stream).
template <bool Write, std::size_t Distance = 1024>
class StreamPrefetch {
public:
    StreamPrefetch(const void* begin, const void* end) noexcept
        : base_(static_cast<const char*>(begin)),
          size_(static_cast<std::size_t>(static_cast<const char*>(end) - static_cast<const char*>(begin))) {}
    void upto(const void* p) noexcept {
        const std::size_t want = std::min(size_, static_cast<std::size_t>(static_cast<const char*>(p) - base_) + Distance);
        for (; next_ < want; next_ += 64) __builtin_prefetch(base_ + next_, Write ? 1 : 0, 3);
    }

private:
    const char* base_;
    std::size_t size_;
    std::size_t next_ = 0;
};

/// dst[j] = src[2 j] for j < n (copy_every_second), and dst[2 j] += src[j] for j < n
/// (add_every_second): the rows of a convolution with stride 2 as im2col gathers them and
/// col2im adds them back. With AVX-512, two vectors of src (of dst) a step, whose even lanes
/// one permutation picks (fills); neither reads past src[2 n - 2] (dst[2 n - 2]), and the odd
/// lanes of dst are never written. Elsewhere value by value.
#if CNN_KERNEL_LEVEL == 2
CNN_INTRINSICS_BEGIN
/// The even lanes of lo, then those of hi; and the lower (upper) half of r in the even lanes
/// of a register, zeros in the odd ones.
inline __m512 even_lanes(__m512 lo, __m512 hi) {
    return _mm512_permutex2var_ps(lo, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), hi);
}
inline __m512d even_lanes(__m512d lo, __m512d hi) {
    return _mm512_permutex2var_pd(lo, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), hi);
}
inline __m512 odd_lanes(__m512 lo, __m512 hi) {
    return _mm512_permutex2var_ps(lo, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), hi);
}
inline __m512d odd_lanes(__m512d lo, __m512d hi) {
    return _mm512_permutex2var_pd(lo, _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), hi);
}
/// The lower (upper) halves of even and odd, lane by lane in turn: even[0], odd[0], even[1], ...
inline __m512 interleave_half(__m512 even, __m512 odd, bool upper) {
    const __m512i lower = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    return _mm512_permutex2var_ps(even, upper ? _mm512_add_epi32(lower, _mm512_set1_epi32(8)) : lower, odd);
}
inline __m512d interleave_half(__m512d even, __m512d odd, bool upper) {
    const __m512i lower = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    return _mm512_permutex2var_pd(even, upper ? _mm512_add_epi64(lower, _mm512_set1_epi64(4)) : lower, odd);
}
inline __m512 spread_half(__m512 r, bool upper) {
    const __m512i lower = _mm512_setr_epi32(0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0);
    const __m512i index = upper ? _mm512_add_epi32(lower, _mm512_set1_epi32(8)) : lower;
    return _mm512_maskz_permutexvar_ps(0x5555, index, r);
}
inline __m512d spread_half(__m512d r, bool upper) {
    const __m512i lower = _mm512_setr_epi64(0, 0, 1, 0, 2, 0, 3, 0);
    const __m512i index = upper ? _mm512_add_epi64(lower, _mm512_set1_epi64(4)) : lower;
    return _mm512_maskz_permutexvar_pd(0x55, index, r);
}
inline void mask_store_even(float* p, __m512 r, std::size_t n) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>(Vector<float>::mask(n) & 0x5555u), r);
}
inline void mask_store_even(double* p, __m512d r, std::size_t n) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>(Vector<double>::mask(n) & 0x55u), r);
}
CNN_INTRINSICS_END
#endif

template <class T>
inline void copy_every_second(const T* __restrict src, std::size_t n, T* __restrict dst) {
#if CNN_KERNEL_LEVEL == 2
    using V = Vector<T>;
    constexpr std::size_t lanes = V::lanes;
    for (std::size_t j = 0; j < n; j += lanes) {
        const std::size_t outputs = std::min(lanes, n - j), reads = 2 * outputs - 1;
        const T* from = src + 2 * j;
        const auto lo = load_n(from, std::min(lanes, reads));
        const auto hi = reads > lanes ? V::loadu(from + lanes, reads - lanes) : V::zero();
        store_n(dst + j, even_lanes(lo, hi), outputs);
    }
#else
    for (std::size_t j = 0; j < n; ++j) dst[j] = src[2 * j];
#endif
}

template <class T>
inline void add_every_second(const T* __restrict src, std::size_t n, T* __restrict dst) {
#if CNN_KERNEL_LEVEL == 2
    using V = Vector<T>;
    constexpr std::size_t lanes = V::lanes;
    for (std::size_t j = 0; j < n; j += lanes) {
        const std::size_t inputs = std::min(lanes, n - j), touched = 2 * inputs - 1;
        const auto values = load_n(src + j, inputs);
        T* to = dst + 2 * j;
        const std::size_t low = std::min(lanes, touched);
        mask_store_even(to, V::add(V::loadu(to, low), spread_half(values, false)), low);
        if (touched > lanes)
            mask_store_even(to + lanes, V::add(V::loadu(to + lanes, touched - lanes), spread_half(values, true)),
                            touched - lanes);
    }
#else
    for (std::size_t j = 0; j < n; ++j) dst[2 * j] += src[j];
#endif
}

/// A row split into its two column phases, as a convolution with stride 2 lowers its input
/// (strided.hpp): even[j] = src[2 j] for 2 j < n and odd[j] = src[2 j + 1] for 2 j + 1 < n
/// (deal_pairs); and back, dst[2 j] (+)= even[j] and dst[2 j + 1] (+)= odd[j] for the same j
/// (merge_pairs). With AVX-512, two vectors of the row a step, each phase's vector one
/// permutation of them; elsewhere value by value.
template <class T>
inline void deal_pairs(const T* __restrict src, std::size_t n, T* __restrict even, T* __restrict odd) {
#if CNN_KERNEL_LEVEL == 2
    using V = Vector<T>;
    constexpr std::size_t lanes = V::lanes;
    for (std::size_t i = 0; i < n; i += 2 * lanes) {
        const std::size_t count = std::min(2 * lanes, n - i);
        const auto lo = load_n(src + i, std::min(lanes, count));
        const auto hi = count > lanes ? load_n(src + i + lanes, count - lanes) : V::zero();
        store_n(even + i / 2, even_lanes(lo, hi), (count + 1) / 2);
        if (count > 1) store_n(odd + i / 2, odd_lanes(lo, hi), count / 2);
    }
#else
    for (std::size_t j = 0; 2 * j < n; ++j) even[j] = src[2 * j];
    for (std::size_t j = 0; 2 * j + 1 < n; ++j) odd[j] = src[2 * j + 1];
#endif
}

template <class T>
inline void merge_pairs(const T* __restrict even, const T* __restrict odd, std::size_t n, T* __restrict dst,
                        bool add) {
#if CNN_KERNEL_LEVEL == 2
    using V = Vector<T>;
    constexpr std::size_t lanes = V::lanes;
    for (std::size_t i = 0; i < n; i += 2 * lanes) {
        const std::size_t count = std::min(2 * lanes, n - i), low = std::min(lanes, count);
        const auto e = load_n(even + i / 2, (count + 1) / 2);
        const auto o = count > 1 ? load_n(odd + i / 2, count / 2) : V::zero();
        const auto lo = interleave_half(e, o, false);
        store_n(dst + i, add ? V::add(lo, load_n(dst + i, low)) : lo, low);
        if (count > lanes) {
            const auto hi = interleave_half(e, o, true);
            store_n(dst + i + lanes, add ? V::add(hi, load_n(dst + i + lanes, count - lanes)) : hi, count - lanes);
        }
    }
#else
    for (std::size_t j = 0; 2 * j < n; ++j) dst[2 * j] = (add ? dst[2 * j] : T{0}) + even[j];
    for (std::size_t j = 0; 2 * j + 1 < n; ++j) dst[2 * j + 1] = (add ? dst[2 * j + 1] : T{0}) + odd[j];
#endif
}

/// src[0] + ... + src[n - 1], in vector-wide partial sums (a sum of independent
/// additions instead of one chain of n dependent ones).
template <class T>
inline T sum_run(const T* src, std::size_t n) {
    using V = Vector<T>;
    constexpr std::size_t lanes = V::lanes;
    typename V::reg acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    std::size_t i = 0;
    for (; i + 4 * lanes <= n; i += 4 * lanes)
        for (std::size_t a = 0; a < 4; ++a) acc[a] = V::add(acc[a], V::loadu(src + i + a * lanes));
    for (; i + lanes <= n; i += lanes) acc[0] = V::add(acc[0], V::loadu(src + i));
    if (i < n) acc[1] = V::add(acc[1], V::loadu(src + i, n - i));
    T lane[4 * lanes];
    for (std::size_t a = 0; a < 4; ++a) V::storeu(lane + a * lanes, acc[a]);
    T sum{0};
    for (const T v : lane) sum += v;
    return sum;
}

/// Whether transpose_16x16 below has a vector version for T (else it is plain loops).
template <class T>
inline constexpr bool fast_transpose =
#if CNN_KERNEL_LEVEL == 2
    std::is_same_v<T, float>;
#else
    false;
#endif

/// out[j * ldo + i] = row(i)[j] for a 16 x 16 block of floats whose row i starts at row(i)
/// (transpose_16x16), and out[j * width + i] = in[i * ldi + j] for the first `rows` rows of one
/// into a GEMM panel of `width` <= 16 columns (transpose_into_panel: rows past `rows` are zero,
/// and out's rows hold `width` values).
#if CNN_KERNEL_LEVEL == 2
CNN_INTRINSICS_BEGIN
inline void transpose_registers(__m512 (&r)[16]) {
    __m512 t[16];
    // Interleave pairs of rows, then pairs of pairs, then 128-bit quarters twice.
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 16; i += 8)
        for (int j = 0; j < 4; ++j) {
            t[i + j] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0x88);
            t[i + j + 4] = _mm512_shuffle_f32x4(r[i + j], r[i + j + 4], 0xdd);
        }
    for (int j = 0; j < 8; ++j) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0x88);
        r[j + 8] = _mm512_shuffle_f32x4(t[j], t[j + 8], 0xdd);
    }
}

template <class Row>
inline void transpose_16x16(const Row& row, float* out, std::size_t ldo) {
    __m512 r[16];
    for (std::size_t i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(row(i));
    transpose_registers(r);
    for (std::size_t j = 0; j < 16; ++j) _mm512_storeu_ps(out + j * ldo, r[j]);
}

inline void transpose_into_panel(const float* in, std::size_t ldi, std::size_t rows, float* out, std::size_t width) {
    __m512 r[16];
    for (std::size_t i = 0; i < 16; ++i) r[i] = i < rows ? _mm512_loadu_ps(in + i * ldi) : _mm512_setzero_ps();
    transpose_registers(r);
    // Whole-register stores run over into the next row, which the next store rewrites; the
    // stores that would reach past the block's 16 x width values are masked (with a width under
    // 8, the last few: an unmasked one wrote up to 12 floats past the panel).
    for (std::size_t j = 0; j < 16; ++j) {
        const std::size_t room = (16 - j) * width;
        if (room >= 16)
            _mm512_storeu_ps(out + j * width, r[j]);
        else
            _mm512_mask_storeu_ps(out + j * width, static_cast<__mmask16>((1u << room) - 1u), r[j]);
    }
}
CNN_INTRINSICS_END
#endif

/// out[j * ldo + i] = row(i)[j] for i < rows, j < columns, where row(i) points at row i of
/// the matrix: 16 x 16 blocks in registers where the vector unit has them, value by value at
/// the edges.
template <class T, class Row>
void transpose_rows(const Row& row, std::size_t rows, std::size_t columns, T* out, std::size_t ldo) {
    std::size_t i0 = 0;
    if constexpr (fast_transpose<T>)
        for (; i0 + 16 <= rows; i0 += 16) {
            std::size_t j0 = 0;
            for (; j0 + 16 <= columns; j0 += 16)
                transpose_16x16([&](std::size_t i) { return row(i0 + i) + j0; }, out + j0 * ldo + i0, ldo);
            for (std::size_t i = i0; i < i0 + 16; ++i)
                for (std::size_t j = j0; j < columns; ++j) out[j * ldo + i] = row(i)[j];
        }
    for (std::size_t i = i0; i < rows; ++i)
        for (std::size_t j = 0; j < columns; ++j) out[j * ldo + i] = row(i)[j];
}

/// out[j * ldo + i] = in[i * ldi + j] for i < rows, j < columns.
template <class T>
void transpose(const T* in, std::size_t ldi, std::size_t rows, std::size_t columns, T* out, std::size_t ldo) {
    transpose_rows([&](std::size_t i) { return in + i * ldi; }, rows, columns, out, ldo);
}

/// out[j * ldo + i] = base[offsets[i] + j] for i < rows, j < columns: the transpose of a
/// matrix whose rows lie anywhere in one buffer (a convolution's input planes shifted to
/// each tap of its filters).
template <class T>
void transpose_at(const T* base, const std::size_t* offsets, std::size_t rows, std::size_t columns, T* out,
                  std::size_t ldo) {
    transpose_rows([&](std::size_t i) { return base + offsets[i]; }, rows, columns, out, ldo);
}

#if CNN_KERNEL_LEVEL == 2
CNN_INTRINSICS_BEGIN
/// transpose_registers for an 8 x 8 matrix of doubles: pairs of rows interleaved, then two
/// rounds of 128-bit quarter shuffles.
inline void transpose_registers(__m512d (&r)[8]) {
    __m512d t[8];
    for (int i = 0; i < 4; ++i) {  // quarter k of t[2i + j]: column 2k + j, rows 2i and 2i + 1
        t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
    }
    for (int j = 0; j < 2; ++j) {
        const __m512d a = _mm512_shuffle_f64x2(t[j], t[2 + j], 0x88), b = _mm512_shuffle_f64x2(t[j], t[2 + j], 0xDD);
        const __m512d c = _mm512_shuffle_f64x2(t[4 + j], t[6 + j], 0x88), d = _mm512_shuffle_f64x2(t[4 + j], t[6 + j], 0xDD);
        r[j] = _mm512_shuffle_f64x2(a, c, 0x88);
        r[4 + j] = _mm512_shuffle_f64x2(a, c, 0xDD);
        r[2 + j] = _mm512_shuffle_f64x2(b, d, 0x88);
        r[6 + j] = _mm512_shuffle_f64x2(b, d, 0xDD);
    }
}
CNN_INTRINSICS_END
#endif

/// *row(c) + r = src[r src_stride + c] for r < rows and c < columns, both at most
/// Vector<T>::lanes: one block, transposed in registers where the vector unit can, its c-th
/// row stored at row(c). With `whole_rows`, each row is written in all its lanes (zeros past
/// `rows`).
template <class T, class Row>
inline void transpose_block(const T* src, std::size_t src_stride, std::size_t rows, std::size_t columns, const Row& row,
                            bool whole_rows) {
#if CNN_KERNEL_LEVEL == 2
    using V = Vector<T>;
    constexpr std::size_t lanes = V::lanes;
    typename V::reg r[lanes];
    for (std::size_t i = 0; i < lanes; ++i)
        r[i] = i >= rows          ? V::zero()
               : columns == lanes ? V::loadu(src + i * src_stride)
                                  : V::loadu(src + i * src_stride, columns);
    transpose_registers(r);
    for (std::size_t c = 0; c < columns; ++c) {
        if (whole_rows || rows == lanes)
            V::storeu(row(c), r[c]);
        else
            V::storeu(row(c), r[c], rows);
    }
#else
    for (std::size_t c = 0; c < columns; ++c) {
        T* const to = row(c);
        for (std::size_t r = 0; r < rows; ++r) to[r] = src[r * src_stride + c];
        if (whole_rows)
            for (std::size_t r = rows; r < Vector<T>::lanes; ++r) to[r] = T{0};
    }
#endif
}

}  // namespace detail
}  // namespace CNN_KERNEL_VARIANT
}  // namespace cnn::kernels
