// The pooling kernels behind MaxPool and MeanPool (FORMULAS.md sections 5, 9 and 19),
// with plain pointer arithmetic over each channel plane: on a range of planes on
// the calling thread, or on the whole batch spread over the thread pool. The
// reference kernels in cnn/reference/pooling.hpp are their oracle.

namespace cnn::kernels {
namespace CNN_KERNEL_VARIANT {

inline constexpr std::size_t pool_planes_per_task = 16;

/// Calls f(c) for every channel plane c of `planes`, on the calling thread.
template <class F>
void for_each_plane(Planes planes, const F& f) {
    for (std::size_t c = planes.begin; c < planes.end; ++c) f(c);
}

/// Calls kernel(planes) for blocks of planes that cover the batch, spread over the thread pool.
template <class Kernel>
void for_plane_blocks(const PoolGeometry& g, const Kernel& kernel) {
    parallel_blocks(g.planes, pool_planes_per_task, [&](std::size_t begin, std::size_t end) { kernel(Planes{begin, end}); });
}

/// The input cells window (i, j) covers: rows [top, bottom) and columns [left, right) of the
/// plane, which are the window's rows from p0 and columns from q0 (p0, q0 > 0 where the window
/// starts in the padding). Without padding, the whole window.
struct WindowCells {
    std::size_t top, bottom, left, right;
    std::size_t p0, q0;

    [[nodiscard]] std::size_t count() const noexcept { return (bottom - top) * (right - left); }
};

inline WindowCells window_cells(const PoolGeometry& g, std::size_t i, std::size_t j) noexcept {
    // The window spans rows i S - Ph .. i S - Ph + nh - 1 of the input, which may start above
    // row 0 and end below the last row; likewise the columns.
    const auto clip = [](std::size_t start, std::size_t pad, std::size_t extent, std::size_t size) {
        const std::size_t first = std::max(start, pad), last = std::min(start + extent, size + pad);
        return std::array<std::size_t, 3>{first - pad, std::max(first, last) - pad, first - start};
    };
    const auto [top, bottom, p0] = clip(i * g.stride, g.pad_h, g.window.height, g.height);
    const auto [left, right, q0] = clip(j * g.stride, g.pad_w, g.window.width, g.width);
    return {top, bottom, left, right, p0, q0};
}

// The first maximum of a window (row-major) is the first element equal to the window's
// maximum. Both are found without branches on the data: with random values a branch
// per comparison mispredicts about half the time, which made max-pool backward 4x slower.
// Padded cells never win: only the input cells a window covers take part.

template <Scalar T>
T window_max(const T* plane, const PoolGeometry& g, std::size_t i, std::size_t j) {
    const WindowCells w = window_cells(g, i, j);
    T best = plane[w.top * g.width + w.left];
    for (std::size_t u = w.top; u < w.bottom; ++u)
        for (std::size_t v = w.left; v < w.right; ++v) best = std::max(best, plane[u * g.width + v]);
    return best;
}

/// Where in window (i, j), whose maximum is `best`, its first maximum lies: p * window width + q.
template <Scalar T>
std::uint32_t first_maximum(const T* plane, const PoolGeometry& g, std::size_t i, std::size_t j, T best) {
    const WindowCells w = window_cells(g, i, j);
    std::size_t found = 0, at = 0;
    for (std::size_t u = w.top; u < w.bottom; ++u)
        for (std::size_t v = w.left; v < w.right; ++v) {
            const std::size_t here = static_cast<std::size_t>(plane[u * g.width + v] == best) & (found ^ 1);
            at += here * ((w.p0 + u - w.top) * g.window.width + w.q0 + v - w.left);
            found |= here;
        }
    return static_cast<std::uint32_t>(at);
}

/// Offset (within a plane) of the first maximum of window (i, j), whose maximum is `best`.
template <Scalar T>
std::size_t window_argmax(const T* plane, const PoolGeometry& g, std::size_t i, std::size_t j, T best) {
    return window_cell(g, i, j, first_maximum(plane, g, i, j, best));
}

/// The inputs of a plane that no window reaches (when the size is not a multiple of the window).
template <Scalar T>
void zero_unreached(T* grad, const PoolGeometry& g) {
    for (std::size_t u = 0; u < g.height; ++u)
        for (std::size_t v = (u < g.out_h * g.stride ? g.out_w * g.stride : 0); v < g.width; ++v)
            grad[u * g.width + v] = T{0};
}

/// Which of a 2 x 2 window's values a b / c e (row-major) is the first equal to its maximum
/// `best`: 0, 1, 2 or 3 (e when none of a, b, c is). Bit arithmetic, not && (which compiles
/// to branches).
template <Scalar T>
unsigned first_of_2x2(T a, T b, T c, T best) {
    const unsigned is_a = a == best, is_b = (b == best) & (is_a ^ 1u);
    const unsigned is_c = (c == best) & ((is_a | is_b) ^ 1u), is_e = (is_a | is_b | is_c) ^ 1u;
    return is_b + 2 * is_c + 3 * is_e;
}

/// A window's output: its maximum, or that of the ReLU of its values (relu of the maximum).
template <bool AfterReLU, Scalar T>
T pooled(T best) {
    return AfterReLU ? reference::relu(best) : best;
}

/// The delta a window passes on to its first maximum: all of it, or after a ReLU only
/// where that maximum is positive (elsewhere the winner is a ReLU that is off).
template <bool AfterReLU, Scalar T>
T passed(T delta, T best) {
    return !AfterReLU || best > T{0} ? delta : T{0};
}

CNN_INTRINSICS_BEGIN
#if CNN_KERNEL_LEVEL == 2
/// Eight 2 x 2 windows (stride 2) from column 2j of rows r0 and r1, for the AVX-512 rows
/// below: lane pairs (2w, 2w + 1) hold window w's two columns, and `best` holds its maximum
/// in both lanes of its pair. Plain loads where all 8 windows exist: the masked ones cost more.
struct WindowPairs {
    __m512 top, bottom, best;
    __mmask16 lanes;    // the lane pairs of the windows that exist
    __mmask16 windows;  // one lane per window that exists, for a row of outputs or deltas
    bool full;
};

inline WindowPairs window_pairs(const float* r0, const float* r1, std::size_t j, std::size_t windows) {
    WindowPairs w{};
    const std::size_t count = std::min<std::size_t>(8, windows - j);
    w.full = count == 8;
    w.lanes = static_cast<__mmask16>((1u << (2 * count)) - 1u);
    w.windows = static_cast<__mmask16>((1u << count) - 1u);
    w.top = w.full ? _mm512_loadu_ps(r0 + 2 * j) : _mm512_maskz_loadu_ps(w.lanes, r0 + 2 * j);
    w.bottom = w.full ? _mm512_loadu_ps(r1 + 2 * j) : _mm512_maskz_loadu_ps(w.lanes, r1 + 2 * j);
    const __m512 column_max = _mm512_max_ps(w.top, w.bottom);
    w.best = _mm512_max_ps(column_max, _mm512_permute_ps(column_max, 0xB1));  // swap lane pairs
    return w;
}
#endif

/// One row of 2 x 2 windows with stride 2: input rows r0 and r1, outputs o.
template <Scalar T, bool AfterReLU>
void maxpool2x2_forward_row(const T* __restrict r0, const T* __restrict r1, std::size_t windows, T* __restrict o) {
#if CNN_KERNEL_LEVEL == 2
    if constexpr (std::is_same_v<T, float>) {
        // 8 windows at a time, each maximum's even lane gathered into the low half.
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
        for (std::size_t j = 0; j < windows; j += 8) {
            const WindowPairs w = window_pairs(r0, r1, j, windows);
            __m512 best = _mm512_permutexvar_ps(even, w.best);
            if constexpr (AfterReLU) best = _mm512_max_ps(best, _mm512_setzero_ps());
            if (w.full)
                _mm256_storeu_ps(o + j, _mm512_castps512_ps256(best));
            else
                _mm512_mask_storeu_ps(o + j, w.windows, best);
        }
        return;
    }
#endif
    for (std::size_t j = 0; j < windows; ++j)
        o[j] = pooled<AfterReLU>(std::max(std::max(r0[2 * j], r0[2 * j + 1]), std::max(r1[2 * j], r1[2 * j + 1])));
}
CNN_INTRINSICS_END

/// y = max over each window of x, or of ReLU(x) when AfterReLU: max pooling commutes with
/// ReLU, max(relu(a), relu(b)) = relu(max(a, b)), so a ReLU before the pool costs nothing.
/// Planes `planes` only, on the calling thread.
template <Scalar T, bool AfterReLU = false>
void maxpool_forward(const T* x, const PoolGeometry& g, T* y, Planes planes) {
    const bool two_by_two = g.two_by_two();
    for_each_plane(planes, [&](std::size_t c) {
        const T* plane = x + c * g.height * g.width;
        T* out = y + c * g.out_h * g.out_w;
        for (std::size_t i = 0; i < g.out_h; ++i) {
            if (two_by_two) {  // the common case
                const T* r0 = plane + 2 * i * g.width;
                maxpool2x2_forward_row<T, AfterReLU>(r0, r0 + g.width, g.out_w, out + i * g.out_w);
                continue;
            }
            for (std::size_t j = 0; j < g.out_w; ++j) out[i * g.out_w + j] = pooled<AfterReLU>(window_max(plane, g, i, j));
        }
    });
}

CNN_INTRINSICS_BEGIN
/// One row of 2 x 2 windows with stride 2: input rows r0 and r1, deltas d, gradient rows
/// g0 and g1, which get each delta at its window's first maximum (a b / c e in row-major
/// order) and 0 elsewhere. Branch-free: with random values a branch per comparison
/// mispredicts about half the time.
template <Scalar T, bool AfterReLU>
void maxpool2x2_backward_row(const T* __restrict r0, const T* __restrict r1, const T* __restrict d,
                             std::size_t windows, T* __restrict g0, T* __restrict g1) {
#if CNN_KERNEL_LEVEL == 2
    if constexpr (std::is_same_v<T, float>) {
        // 8 windows at a time; each delta is copied to both lanes of its window's pair.
        const __m512i pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        constexpr unsigned even = 0x5555, odd = 0xAAAA;
        for (std::size_t j = 0; j < windows; j += 8) {
            const WindowPairs w = window_pairs(r0, r1, j, windows);
            const unsigned top_hit = _mm512_cmp_ps_mask(w.top, w.best, _CMP_EQ_OQ);
            const unsigned bottom_hit = _mm512_cmp_ps_mask(w.bottom, w.best, _CMP_EQ_OQ);
            const unsigned is_a = top_hit & even, is_b = top_hit & odd & ~(is_a << 1);
            const unsigned top_won = (is_a | (is_b >> 1)) & even;
            const unsigned is_c = bottom_hit & even & ~top_won, is_e = odd & ~((top_won | is_c) << 1);
            unsigned passed = 0xFFFF;
            if constexpr (AfterReLU) passed = _mm512_cmp_ps_mask(w.best, _mm512_setzero_ps(), _CMP_GT_OQ);
            const __m512 delta =
                _mm512_permutexvar_ps(pairs, _mm512_maskz_loadu_ps(w.windows, d + j));
            const __m512 top = _mm512_maskz_mov_ps(static_cast<__mmask16>((is_a | is_b) & passed), delta);
            const __m512 bottom = _mm512_maskz_mov_ps(static_cast<__mmask16>((is_c | is_e) & passed), delta);
            if (w.full) {  // plain stores where they fit, as for the loads
                _mm512_storeu_ps(g0 + 2 * j, top);
                _mm512_storeu_ps(g1 + 2 * j, bottom);
            } else {
                _mm512_mask_storeu_ps(g0 + 2 * j, w.lanes, top);
                _mm512_mask_storeu_ps(g1 + 2 * j, w.lanes, bottom);
            }
        }
        return;
    }
#endif
    for (std::size_t j = 0; j < windows; ++j) {
        const T a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], e = r1[2 * j + 1];
        const T best = std::max(std::max(a, b), std::max(c, e)), delta = passed<AfterReLU>(d[j], best);
        const unsigned at = first_of_2x2(a, b, c, best);
        g0[2 * j] = delta * static_cast<T>(at == 0);
        g0[2 * j + 1] = delta * static_cast<T>(at == 1);
        g1[2 * j] = delta * static_cast<T>(at == 2);
        g1[2 * j + 1] = delta * static_cast<T>(at == 3);
    }
}
CNN_INTRINSICS_END

/// dx = 0 (unless accumulating), then each delta added at its window's first maximum. With AfterReLU, dx is the
/// gradient with respect to the input of a ReLU before the pool: the delta goes to the
/// window's first maximum of x when that maximum is positive (where ReLU passes it on),
/// and nowhere otherwise (where the pool's winner is a ReLU that is off).
/// Planes `planes` only, on the calling thread.
template <Scalar T, bool AfterReLU = false>
void maxpool_backward(const T* x, const T* dy, const PoolGeometry& g, T* dx, Planes planes,
                      Accumulate accumulate = Accumulate::no) {
    const bool tiles = g.stride == g.window.height && g.stride == g.window.width && !g.padded();
    for_each_plane(planes, [&](std::size_t c) {
        const T* plane = x + c * g.height * g.width;
        const T* delta = dy + c * g.out_h * g.out_w;
        T* grad = dx + c * g.height * g.width;
        if (!tiles || accumulate == Accumulate::yes) {
            if (accumulate == Accumulate::no) std::fill_n(grad, g.height * g.width, T{0});
            for (std::size_t i = 0; i < g.out_h; ++i)
                for (std::size_t j = 0; j < g.out_w; ++j) {
                    const T best = window_max(plane, g, i, j);
                    grad[window_argmax(plane, g, i, j, best)] += passed<AfterReLU>(delta[i * g.out_w + j], best);
                }
            return;
        }
        // Windows that do not overlap: every input is written once, the winner with its
        // delta and the rest with 0, so there is nothing to clear and nothing to add.
        for (std::size_t i = 0; i < g.out_h; ++i) {
            if (g.stride == 2) {  // 2x2, the common case
                const T* r0 = plane + 2 * i * g.width;
                T* g0 = grad + 2 * i * g.width;
                maxpool2x2_backward_row<T, AfterReLU>(r0, r0 + g.width, delta + i * g.out_w, g.out_w, g0, g0 + g.width);
                continue;
            }
            for (std::size_t j = 0; j < g.out_w; ++j) {
                const T best = window_max(plane, g, i, j), d = passed<AfterReLU>(delta[i * g.out_w + j], best);
                const std::size_t start = i * g.stride * g.width + j * g.stride;
                unsigned found = 0;
                for (std::size_t p = 0; p < g.window.height; ++p)
                    for (std::size_t q = 0; q < g.window.width; ++q) {
                        const std::size_t at = start + p * g.width + q;
                        const unsigned here = static_cast<unsigned>(plane[at] == best) & (found ^ 1u);
                        grad[at] = d * static_cast<T>(here);
                        found |= here;
                    }
            }
        }
        zero_unreached(grad, g);
    });
}

/// What window w's sum is divided by: nh nw, or with count_padding off the input cells it covers.
template <Scalar T>
T divisor(const PoolGeometry& g, const WindowCells& w) {
    return static_cast<T>(g.count_padding ? g.window.height * g.window.width : w.count());
}

template <Scalar T>
void meanpool_forward(const T* x, const PoolGeometry& g, T* y, Planes planes) {
    for_each_plane(planes, [&](std::size_t c) {
        const T* plane = x + c * g.height * g.width;
        T* out = y + c * g.out_h * g.out_w;
        for (std::size_t i = 0; i < g.out_h; ++i)
            for (std::size_t j = 0; j < g.out_w; ++j) {
                const WindowCells w = window_cells(g, i, j);
                T sum{0};
                for (std::size_t u = w.top; u < w.bottom; ++u)
                    for (std::size_t v = w.left; v < w.right; ++v) sum += plane[u * g.width + v];
                out[i * g.out_w + j] = sum / divisor<T>(g, w);
            }
    });
}

/// dx = 0 (unless accumulating), then each window's delta / divisor added over its input cells
/// (the Kronecker product delta (x) 1/n^2 when windows tile the input).
template <Scalar T>
void meanpool_backward(const T* dy, const PoolGeometry& g, T* dx, Planes planes, Accumulate accumulate = Accumulate::no) {
    for_each_plane(planes, [&](std::size_t c) {
        const T* delta = dy + c * g.out_h * g.out_w;
        T* grad = dx + c * g.height * g.width;
        if (accumulate == Accumulate::no) std::fill_n(grad, g.height * g.width, T{0});
        for (std::size_t i = 0; i < g.out_h; ++i)
            for (std::size_t j = 0; j < g.out_w; ++j) {
                const WindowCells w = window_cells(g, i, j);
                const T share = delta[i * g.out_w + j] / divisor<T>(g, w);
                for (std::size_t u = w.top; u < w.bottom; ++u)
                    for (std::size_t v = w.left; v < w.right; ++v) grad[u * g.width + v] += share;
            }
    });
}

CNN_INTRINSICS_BEGIN
/// One row of 2 x 2 windows with stride 2 (after a ReLU when AfterReLU): input rows r0 and r1,
/// outputs o and the places of the windows' first maxima, 0 1 / 2 3 (a b / c e), or after a
/// ReLU no_winner where the maximum is not positive.
template <Scalar T, bool AfterReLU>
void maxpool2x2_winners_row(const T* __restrict r0, const T* __restrict r1, std::size_t windows, T* __restrict o,
                            std::uint32_t* __restrict winners) {
#if CNN_KERNEL_LEVEL == 2
    if constexpr (std::is_same_v<T, float>) {
        // 8 windows at a time: a, b, c and e of each gathered into the low 8 lanes.
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14);
        const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 1, 3, 5, 7, 9, 11, 13, 15);
        const __m512 zero = _mm512_setzero_ps();
        for (std::size_t j = 0; j < windows; j += 8) {
            const std::size_t count = std::min<std::size_t>(8, windows - j);
            const auto lanes = static_cast<__mmask16>((1u << (2 * count)) - 1u);
            const auto window_lanes = static_cast<__mmask16>((1u << count) - 1u);
            const __m512 top = _mm512_maskz_loadu_ps(lanes, r0 + 2 * j), bottom = _mm512_maskz_loadu_ps(lanes, r1 + 2 * j);
            const __m512 a = _mm512_permutexvar_ps(even, top), b = _mm512_permutexvar_ps(odd, top);
            const __m512 c = _mm512_permutexvar_ps(even, bottom), e = _mm512_permutexvar_ps(odd, bottom);
            const __m512 best = _mm512_max_ps(_mm512_max_ps(a, b), _mm512_max_ps(c, e));
            const unsigned is_a = _mm512_cmp_ps_mask(a, best, _CMP_EQ_OQ);
            const unsigned is_b = _mm512_cmp_ps_mask(b, best, _CMP_EQ_OQ) & ~is_a;
            const unsigned is_c = _mm512_cmp_ps_mask(c, best, _CMP_EQ_OQ) & ~(is_a | is_b);
            const unsigned is_e = ~(is_a | is_b | is_c);
            __m512i at = _mm512_maskz_mov_epi32(static_cast<__mmask16>(is_b), _mm512_set1_epi32(1));
            at = _mm512_mask_mov_epi32(at, static_cast<__mmask16>(is_c), _mm512_set1_epi32(2));
            at = _mm512_mask_mov_epi32(at, static_cast<__mmask16>(is_e), _mm512_set1_epi32(3));
            if constexpr (AfterReLU) {
                const unsigned off = ~static_cast<unsigned>(_mm512_cmp_ps_mask(best, zero, _CMP_GT_OQ));
                at = _mm512_mask_mov_epi32(at, static_cast<__mmask16>(off), _mm512_set1_epi32(-1));
            }
            _mm512_mask_storeu_ps(o + j, window_lanes, AfterReLU ? _mm512_max_ps(best, zero) : best);
            _mm512_mask_storeu_epi32(winners + j, window_lanes, at);
        }
        return;
    }
#endif
    for (std::size_t j = 0; j < windows; ++j) {
        const T a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], e = r1[2 * j + 1];
        const T best = std::max(std::max(a, b), std::max(c, e));
        o[j] = pooled<AfterReLU>(best);
        winners[j] = !AfterReLU || best > T{0} ? first_of_2x2(a, b, c, best) : no_winner;
    }
}

/// One row of 2 x 2 windows with stride 2: each delta of d to its window's place in
/// `winners` (in gradient rows g0 and g1), 0 to the other three.
template <Scalar T>
void maxpool2x2_winners_backward_row(const std::uint32_t* __restrict winners, const T* __restrict d,
                                     std::size_t windows, T* __restrict g0, T* __restrict g1) {
#if CNN_KERNEL_LEVEL == 2
    if constexpr (std::is_same_v<T, float>) {
        // 8 windows at a time; each delta and place copied to both lanes of its window's pair.
        const __m512i pairs = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        const __m512i top_places = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
        const __m512i bottom_places = _mm512_add_epi32(top_places, _mm512_set1_epi32(2));
        for (std::size_t j = 0; j < windows; j += 8) {
            const std::size_t count = std::min<std::size_t>(8, windows - j);
            const auto lanes = static_cast<__mmask16>((1u << (2 * count)) - 1u);
            const auto window_lanes = static_cast<__mmask16>((1u << count) - 1u);
            const __m512i at = _mm512_permutexvar_epi32(pairs, _mm512_maskz_loadu_epi32(window_lanes, winners + j));
            const __m512 delta = _mm512_permutexvar_ps(pairs, _mm512_maskz_loadu_ps(window_lanes, d + j));
            const __m512 top = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, top_places), delta);
            const __m512 bottom = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, bottom_places), delta);
            if (count == 8) {
                _mm512_storeu_ps(g0 + 2 * j, top);
                _mm512_storeu_ps(g1 + 2 * j, bottom);
            } else {
                _mm512_mask_storeu_ps(g0 + 2 * j, lanes, top);
                _mm512_mask_storeu_ps(g1 + 2 * j, lanes, bottom);
            }
        }
        return;
    }
#endif
    for (std::size_t j = 0; j < windows; ++j) {
        const std::uint32_t at = winners[j];
        g0[2 * j] = at == 0 ? d[j] : T{0};
        g0[2 * j + 1] = at == 1 ? d[j] : T{0};
        g1[2 * j] = at == 2 ? d[j] : T{0};
        g1[2 * j + 1] = at == 3 ? d[j] : T{0};
    }
}
CNN_INTRINSICS_END

/// y = max over each window of x, or of ReLU(x) when AfterReLU (as maxpool_forward<T,
/// AfterReLU>), and the place of each window's first maximum in `winners` (after a ReLU,
/// no_winner where the maximum is not positive), for maxpool_backward_winners. Planes
/// `planes`, on the calling thread. Windows must have fewer than no_winner elements.
template <Scalar T, bool AfterReLU = true>
void maxpool_forward_winners(const T* x, const PoolGeometry& g, T* y, std::uint32_t* winners, Planes planes) {
    const bool two_by_two = g.two_by_two();
    for_each_plane(planes, [&](std::size_t c) {
        const T* plane = x + c * g.height * g.width;
        T* out = y + c * g.out_h * g.out_w;
        std::uint32_t* places = winners + c * g.out_h * g.out_w;
        for (std::size_t i = 0; i < g.out_h; ++i) {
            if (two_by_two) {
                const T* r0 = plane + 2 * i * g.width;
                maxpool2x2_winners_row<T, AfterReLU>(r0, r0 + g.width, g.out_w, out + i * g.out_w, places + i * g.out_w);
                continue;
            }
            for (std::size_t j = 0; j < g.out_w; ++j) {
                const T best = window_max(plane, g, i, j);
                out[i * g.out_w + j] = pooled<AfterReLU>(best);
                places[i * g.out_w + j] = !AfterReLU || best > T{0} ? first_maximum(plane, g, i, j, best) : no_winner;
            }
        }
    });
}

/// dx = the gradient with respect to the input x of MaxPool(ReLU(x)), from the places
/// maxpool_forward_winners found: each delta to its window's place (added up where windows
/// overlap), 0 elsewhere. Planes `planes`, on the calling thread. A place outside the window
/// or in its padding counts as no_winner: no memory outside dx is ever written, whatever
/// `winners` holds.
template <Scalar T>
void maxpool_backward_winners(const std::uint32_t* winners, const T* dy, const PoolGeometry& g, T* dx, Planes planes) {
    const bool two_by_two = g.two_by_two();
    for_each_plane(planes, [&](std::size_t c) {
        const std::uint32_t* places = winners + c * g.out_h * g.out_w;
        const T* delta = dy + c * g.out_h * g.out_w;
        T* grad = dx + c * g.height * g.width;
        if (!two_by_two) {
            std::fill_n(grad, g.height * g.width, T{0});
            for (std::size_t i = 0; i < g.out_h; ++i)
                for (std::size_t j = 0; j < g.out_w; ++j)
                    if (const std::size_t cell = window_cell(g, i, j, places[i * g.out_w + j]); cell != no_cell)
                        grad[cell] += delta[i * g.out_w + j];
            return;
        }
        for (std::size_t i = 0; i < g.out_h; ++i) {
            T* g0 = grad + 2 * i * g.width;
            maxpool2x2_winners_backward_row<T>(places + i * g.out_w, delta + i * g.out_w, g.out_w, g0, g0 + g.width);
        }
        zero_unreached(grad, g);
    });
}

// The whole batch, spread over the thread pool.

template <Scalar T, bool AfterReLU = false>
void maxpool_forward(const T* x, const PoolGeometry& g, T* y) {
    for_plane_blocks(g, [&](Planes planes) { maxpool_forward<T, AfterReLU>(x, g, y, planes); });
}

template <Scalar T, bool AfterReLU = false>
void maxpool_backward(const T* x, const T* dy, const PoolGeometry& g, T* dx, Accumulate accumulate = Accumulate::no) {
    for_plane_blocks(g, [&](Planes planes) { maxpool_backward<T, AfterReLU>(x, dy, g, dx, planes, accumulate); });
}

template <Scalar T>
void meanpool_forward(const T* x, const PoolGeometry& g, T* y) {
    for_plane_blocks(g, [&](Planes planes) { meanpool_forward<T>(x, g, y, planes); });
}

template <Scalar T>
void meanpool_backward(const T* dy, const PoolGeometry& g, T* dx, Accumulate accumulate = Accumulate::no) {
    for_plane_blocks(g, [&](Planes planes) { meanpool_backward<T>(dy, g, dx, planes, accumulate); });
}

}  // namespace CNN_KERNEL_VARIANT
}  // namespace cnn::kernels
