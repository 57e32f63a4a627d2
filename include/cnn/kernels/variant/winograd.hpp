// Convolutions with 3-row filters and unit strides by Winograd's minimal filtering down the
// rows (FORMULAS.md section 22): F(4, 3) computes 4 output rows of a filter from 6 input rows
// with 6 products per tap of a filter row where the direct sum takes 12, F(2, 3) (for outputs
// of 1 or 2 rows) 2 rows with 4 where it takes 6. Down column n of filter (k, c), g = (g_0,
// g_1, g_2), and down column j + n of the padded input's rows d_m = x~[c][tile i + m], the
// planes' products M_a = U_a V_a are summed over (c, n), and the tile's output rows are sums
// of them (the transforms are listed at winograd_filters, winograd_inputs and
// winograd_outputs). Each of those sums over (c, n) is a matrix product,
//   M_a (K x Q) = U_a (K x C Fw) V_a (C Fw x Q),
// whose B is implicit as in conv2d_forward_implicit: row (c, n) of it is the plane V_a[c], its
// rows of tiles laid out `pitch` apart, read from column n on. So the products run
// through gemm_rows in place, and every transform is additions of whole rows, in vector
// registers, with no shuffles. That is why only the height is transformed: F(4x4, 3x3) would
// take 36 products per 16 outputs where this takes 72, but along a row its tiles overlap by
// two columns, and gathering them costs shuffles and a copy of every value per tile.
//
// The output positions are q = t pitch + j for tile row t of the chunk (t = s tiles_h + i for
// its sample s). The rows share their padding: the Pw zeros after a row's W values are the
// Pw before the next row's, so pitch = W + Pw, not W + 2Pw (or W2 where that is more: a
// padding wider than Fw - 1). Each row of tiles computes pitch - W2 positions past W2 (1 for
// a 3x3 "same" convolution) and drops them; they read the next row's first values (or, for
// the chunk's last row, values inside its plane) but land in no output.
//
// The same kernel computes a "same"-shaped input gradient: the full convolution of the deltas
// with the rotated filters (FORMULAS.md 8.4) is such a convolution too (conv2d_backward).

namespace cnn::kernels {
namespace CNN_KERNEL_VARIANT {

using detail::load_n;
using detail::store_n;

/// Where a convolution runs on Winograd's F(4, 3) or F(2, 3) down the rows: 3-row filters, unit
/// strides, no dilation, and products of at least 6 terms (two channels of 3x3 filters). On one
/// channel (3 terms) the transforms cost more than they save (bench_conv, the wide CNN's first
/// layer, 1 -> 32 on 28x28: 0.37 ms against the im2col product's 0.30); from two channels on
/// they pay (2 -> 16: 0.25 against 0.27 ms; 4 -> 8: 0.22 against 0.30; 8 -> 8: 0.37 against
/// 0.44 on the implicit lowering).
inline bool winograd_applies(const ConvGeometry& g) noexcept {
    return g.kernel_h == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 && g.dilation_w == 1 &&
           g.out_h > 0 && g.out_w > 0 && g.channels * g.kernel_w >= 6;
}

struct WinogradLayout {
    std::size_t tile;     // output rows per tile: 2 (F(2, 3)) or 4 (F(4, 3))
    std::size_t planes;   // products per tile: tile + 2
    std::size_t tiles_h;  // tiles per sample: ceil(H2 / tile)
    std::size_t pitch;    // max(W + Pw, W2): the padded input's rows, and V's and M's rows of tiles
    std::size_t chunk;    // samples per chunk
    std::size_t plane;    // values of one channel's V_a (one filter's M_a) per chunk, with slack, rounded up

    /// Output positions of a chunk of `samples` samples: its last one, plus one.
    [[nodiscard]] std::size_t columns(const ConvGeometry& g, std::size_t samples) const noexcept {
        return (samples * tiles_h - 1) * pitch + g.out_w;
    }
};

/// With `chunk` samples per chunk; 0: as many as give each product at least 512 positions.
inline WinogradLayout winograd_layout(const ConvGeometry& g, std::size_t chunk = 0) noexcept {
    WinogradLayout lay{};
    // The tile with fewer products for H2 rows: F(4, 3), 6 per 4 rows, or F(2, 3), 4 per 2 rows,
    // which rounds less, on a tie: F(2, 3) for 1, 2, 5 and 6 rows.
    const std::size_t two = 4 * ((g.out_h + 1) / 2), four = 6 * ((g.out_h + 3) / 4);
    lay.tile = four < two ? 4 : 2;
    lay.planes = lay.tile + 2;
    lay.tiles_h = (g.out_h + lay.tile - 1) / lay.tile;
    // Rows sharing their padding. (The 64 -> 64 7x7 products compute 8 positions a row where
    // W + 2Pw took 9, the 14x14 ones 15 for 16, the 28x28 ones 29 for 30.)
    lay.pitch = std::max(g.width + g.pad_w, g.out_w);
    // At least 512 positions per product: a 7x7 plane has 18 to 36, too few for the GEMM's
    // tiles of 32 columns to be mostly full, and each product's packed filters and call are
    // shared by more columns. (bench_conv, ResNet stages 1-3 at batch 64, best of three
    // against 256: forward 0.867 / 0.927 / 1.06 ms against 0.888 / 0.940 / 1.07 at 1 thread,
    // 0.442 / 0.470 / 0.536 against 0.456 / 0.503 / 0.593 at 2, backward 1 to 4 % faster;
    // 768 and 1024 were no faster at 1 thread and slower at 2. V and M then take 0.25 MB
    // each per worker on stage 1 (3 samples) to 0.8 MB on stage 3 at 1 thread (32 samples).)
    const std::size_t per_sample = lay.tiles_h * lay.pitch;
    lay.chunk = chunk != 0 ? chunk : std::max<std::size_t>(1, (512 + per_sample - 1) / per_sample);
    // Slack past the chunk's last row for its stores' overrun (winograd_inputs): its next
    // row's left padding and the rest of a vector (of floats, as many lanes as doubles or more).
    lay.plane = round_up(lay.chunk * per_sample + g.pad_w + detail::Vector<float>::lanes);
    // An odd number of 16-value blocks, so that the product's rows (the planes of the
    // channels, one plane apart) fall in different sets of the L1 cache: 512 floats (8 chunks
    // of 8 samples on 14x14 planes at 2 threads) put all 96 rows of a 32 -> 32 product in 2
    // of the 64 sets, and its forward pass took 0.595 ms instead of 0.50.
    if (lay.plane / 16 % 2 == 0) lay.plane += 16;
    return lay;
}

/// winograd_layout's, with its chunks shrunk where that spreads `samples` samples evenly over
/// the threads: a batch of 64 on 14x14 planes makes 8 chunks of 9 samples (the last of 1),
/// 36 samples for one of 2 workers and 28 for the other, and 8 chunks of 8 give each 32.
/// Each sample's output is the same whatever its chunk (its own columns of the products).
inline WinogradLayout winograd_balanced_layout(const ConvGeometry& g, std::size_t samples) {
    const WinogradLayout lay = winograd_layout(g);
    const std::size_t workers = threads();
    if (workers == 1 || samples == 0) return lay;
    const std::size_t chunks = ((samples + lay.chunk - 1) / lay.chunk + workers - 1) / workers * workers;
    const std::size_t even = (samples + chunks - 1) / chunks;
    return even < lay.chunk ? winograd_layout(g, even) : lay;
}

/// G of the filter transform U = G g (FORMULAS.md section 22) for F(2, 3) and F(4, 3): row a
/// gives plane a's U_a from a filter column's 3 taps.
inline constexpr double winograd_g2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
inline constexpr double winograd_g4[6][3] = {{1.0 / 4, 0, 0},
                                             {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                             {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                             {1.0 / 24, 2.0 / 24, 4.0 / 24},
                                             {1.0 / 24, -2.0 / 24, 4.0 / 24},
                                             {0, 0, 1}};

namespace detail {
/// winograd_filters' loops, with `rotated` and (Fw > 0) the filters' width known to the
/// compiler: a 3x3 filter's taps then lie at constant offsets and no value branches on the
/// direction (with both at run time, the loop took 1.2 % of a 1-thread ResNet epoch's
/// profile; with them known, 0.9 %).
template <bool Rotated, std::size_t Fw, Scalar T>
void winograd_filters_of(const T* __restrict w, const ConvGeometry& g, const double (&row)[3], T* __restrict u) {
    const std::size_t fw = Fw != 0 ? Fw : g.kernel_w, size = 3 * fw;
    const double g0 = row[0], g1 = row[1], g2 = row[2];
    for (std::size_t k = 0; k < g.filters; ++k)
        for (std::size_t c = 0; c < g.channels; ++c) {
            const T* const f = w + (Rotated ? c * g.filters + k : k * g.channels + c) * size;
            T* const out = u + (k * g.channels + c) * fw;
            for (std::size_t n = 0; n < fw; ++n) {
                const auto tap = [&](std::size_t m) {
                    return static_cast<double>(Rotated ? f[size - 1 - m * fw - n] : f[m * fw + n]);
                };
                out[n] = static_cast<T>(g0 * tap(0) + g1 * tap(1) + g2 * tap(2));
            }
        }
}
}  // namespace detail

/// U_a (K x C Fw, row-major) of plane a from the filters w (K x C x 3 x Fw), or with `rotated`
/// from the filters of the convolution this one is the input gradient of: filter k of channel
/// c is then w's filter c of channel k turned by 180 degrees (FORMULAS.md 8.4). Each value
/// sum_m G[a][m] g_m in double, rounded once:
///   F(2, 3): U = (g_0, (g_0 + g_1 + g_2) / 2, (g_0 - g_1 + g_2) / 2, g_2)
///   F(4, 3): U = (g_0 / 4, -(g_0 + g_1 + g_2) / 6, -(g_0 - g_1 + g_2) / 6,
///                 (g_0 + 2 g_1 + 4 g_2) / 24, (g_0 - 2 g_1 + 4 g_2) / 24, g_2)
template <Scalar T>
void winograd_filters(const T* __restrict w, const ConvGeometry& g, const WinogradLayout& lay, bool rotated,
                      std::size_t a, T* __restrict u) {
    const double(&row)[3] = lay.tile == 2 ? winograd_g2[a] : winograd_g4[a];
    if (g.kernel_w == 3)
        rotated ? detail::winograd_filters_of<true, 3>(w, g, row, u) : detail::winograd_filters_of<false, 3>(w, g, row, u);
    else
        rotated ? detail::winograd_filters_of<true, 0>(w, g, row, u) : detail::winograd_filters_of<false, 0>(w, g, row, u);
}

namespace detail {
/// f(j, n, values) for columns j .. j + n - 1 of `width` columns of N rows, values[a] the
/// vector of row a there: whole vectors (n = lanes) first, then the masked rest (lanes past
/// the width load as zeros). A transform's rows are one or two vectors on 7 to 28 columns;
/// with N and the whole vectors known to the compiler, the loads stay in registers.
template <std::size_t N, Scalar T, class F>
void for_each_column_vector(const T* const (&rows)[N], std::size_t width, const F& f) {
    using V = Vector<T>;
    typename V::reg values[N];
    const std::size_t full = width / V::lanes * V::lanes;
    for (std::size_t j = 0; j < full; j += V::lanes) {
        for (std::size_t a = 0; a < N; ++a) values[a] = V::loadu(rows[a] + j);
        f(j, V::lanes, values);
    }
    if (full == width) return;
    for (std::size_t a = 0; a < N; ++a) values[a] = V::loadu(rows[a] + full, width - full);
    f(full, width - full, values);
}

/// winograd_inputs for F(Tile, 3): the planes' count known to the compiler, so that the row
/// pointers stay in registers and the loops over the planes unroll.
template <std::size_t Tile, Scalar T>
void winograd_inputs_tiled(const T* __restrict x, const ConvGeometry& g, const WinogradLayout& lay, std::size_t t0,
                           T* __restrict v, const T* __restrict zeros) {
    using V = detail::Vector<T>;
    using reg = typename V::reg;
    constexpr std::size_t planes = Tile + 2;
    // gap: the zeros between a row's values and the next row's, its right padding and the
    // next row's left padding at once (WinogradLayout::pitch)
    const std::size_t width = g.width, left = g.pad_w, gap = lay.pitch - width;
    const std::size_t channel_plane = g.height * width, a_plane = g.channels * lay.plane;
    const T two_ = 2, four_ = 4, minus_four_ = -4, minus_five_ = -5;
    const auto two = V::broadcast(&two_), four = V::broadcast(&four_), minus_four = V::broadcast(&minus_four_),
               minus_five = V::broadcast(&minus_five_);
    // Every store is a whole vector from the row's first data column on: lanes past the row's
    // end load as zeros, so its last vector writes the gap's zeros and on into the next row's
    // values, and whole zero vectors follow until the gap is covered. The next row's values
    // are stored after, and the plane's slack (WinogradLayout::plane) takes the last row's
    // overrun. Only a chunk's first row has its left padding stored on its own.
    const std::size_t covered = (width + V::lanes - 1) / V::lanes * V::lanes;
    StreamPrefetch<false> prefetch(x, x + g.channels * channel_plane);
    for (std::size_t c = 0; c < g.channels; ++c) {
        const T* const in = x + c * channel_plane;
        // Plane 0's row of tiles t0 for channel c (plane a's is a_plane values on), after its
        // left padding; only a chunk's first row has that padding stored on its own.
        T* const first = v + c * lay.plane + t0 * lay.pitch;
        if (t0 == 0)
            for (std::size_t a = 0; a < planes; ++a) zero_run(first + a * a_plane, left);
        for (std::size_t i = 0; i < lay.tiles_h; ++i) {
            // Up to the end of the tile's last row (its channel's first row, for a tile whose
            // rows all lie in the top padding).
            const std::size_t end = std::min(Tile * i + planes, g.height + g.pad_h);
            prefetch.upto(in + (end > g.pad_h ? end - g.pad_h : 0) * width);
            // The padded input's rows Tile i .. Tile i + planes - 1: a run of the input's rows
            // for every tile that lies inside it (no branch per row), else row by row.
            const T* d[planes];
            const std::size_t top = Tile * i;
            if (top >= g.pad_h && top - g.pad_h + planes <= g.height) {
                const T* const rows = in + (top - g.pad_h) * width;
                for (std::size_t a = 0; a < planes; ++a) d[a] = rows + a * width;
            } else {
                for (std::size_t a = 0; a < planes; ++a) {
                    const std::size_t u = top + a;
                    d[a] = u < g.pad_h || u - g.pad_h >= g.height ? zeros : in + (u - g.pad_h) * width;
                }
            }
            T* const out = first + i * lay.pitch + left;
            const auto put = [&](std::size_t a, std::size_t j, reg value) { V::storeu(out + a * a_plane + j, value); };
            // The planes' whole vectors at column j from the rows' values r there.
            for_each_column_vector(d, width, [&](std::size_t j, std::size_t, const reg* r) {
                if constexpr (Tile == 2) {
                    put(0, j, V::sub(r[0], r[2]));
                    put(1, j, V::add(r[1], r[2]));
                    put(2, j, V::sub(r[2], r[1]));
                    put(3, j, V::sub(r[1], r[3]));
                } else {
                    const auto d42 = V::sub(r[4], r[2]);
                    put(0, j, V::fma(four, r[0], V::fma(minus_five, r[2], r[4])));
                    put(1, j, V::fma(minus_four, V::add(r[1], r[2]), V::add(r[3], r[4])));
                    put(2, j, V::fma(four, V::sub(r[1], r[2]), V::sub(r[4], r[3])));
                    put(3, j, V::fma(two, V::sub(r[3], r[1]), d42));
                    put(4, j, V::fma(two, V::sub(r[1], r[3]), d42));
                    put(5, j, V::fma(four, r[1], V::fma(minus_five, r[3], r[5])));
                }
            });
            for (std::size_t j = covered; j < width + gap; j += V::lanes)
                for (std::size_t a = 0; a < planes; ++a) put(a, j, V::zero());
        }
    }
}
}  // namespace detail

/// V_a[c][t pitch + v] for one sample's rows of tiles t = t0 .. t0 + tiles_h - 1: the padded
/// input's rows tile i .. tile i + planes - 1 combined, each zero where it lies in the padding
/// (from `zeros`, W zeros):
///   F(2, 3): V = (d_0 - d_2, d_1 + d_2, d_2 - d_1, d_1 - d_3)
///   F(4, 3): V = (4 d_0 - 5 d_2 + d_4, -4 (d_1 + d_2) + d_3 + d_4, 4 (d_1 - d_2) - d_3 + d_4,
///                 2 (d_3 - d_1) + d_4 - d_2, 2 (d_1 - d_3) + d_4 - d_2, 4 d_1 - 5 d_3 + d_5)
template <Scalar T>
void winograd_inputs(const T* __restrict x, const ConvGeometry& g, const WinogradLayout& lay, std::size_t t0,
                     T* __restrict v, const T* __restrict zeros) {
    if (lay.tile == 2)
        detail::winograd_inputs_tiled<2>(x, g, lay, t0, v, zeros);
    else
        detail::winograd_inputs_tiled<4>(x, g, lay, t0, v, zeros);
}

namespace detail {
/// winograd_outputs for F(Tile, 3), stored (Add false) or added to y (Add true).
template <std::size_t Tile, bool Add, Scalar T>
void winograd_outputs_tiled(const T* __restrict m, const ConvGeometry& g, const WinogradLayout& lay, std::size_t t0,
                            std::span<const T> bias, T* __restrict y) {
    using V = detail::Vector<T>;
    using reg = typename V::reg;
    constexpr std::size_t planes = Tile + 2;
    const std::size_t a_plane = g.filters * lay.plane, width = g.out_w;
    const T zero{0}, two_ = 2, four_ = 4, eight_ = 8;
    const auto two = V::broadcast(&two_), four = V::broadcast(&four_), eight = V::broadcast(&eight_);
    StreamPrefetch<true> prefetch(y, y + g.filters * g.out_h * width);
    for (std::size_t k = 0; k < g.filters; ++k) {
        T* const out = y + k * g.out_h * width;
        const reg bk = V::broadcast(bias.empty() ? &zero : &bias[k]);
        for (std::size_t i = 0; i < lay.tiles_h; ++i) {
            const std::size_t rows = std::min(Tile, g.out_h - Tile * i);
            T* const top = out + Tile * i * width;
            prefetch.upto(top + rows * width);
            const T* r[planes];
            const T* const plane0 = m + k * lay.plane + (t0 + i) * lay.pitch;
            for (std::size_t a = 0; a < planes; ++a) r[a] = plane0 + a * a_plane;
            // The tile's rows at columns j .. j + n - 1 from its planes' values mv there.
            for_each_column_vector(r, width, [&](std::size_t j, std::size_t n, const reg* mv) {
                const auto put = [&](std::size_t row, reg value) {
                    T* const at = top + row * width + j;
                    store_n(at, V::add(value, Add ? load_n(at, n) : bk), n);
                };
                if constexpr (Tile == 2) {
                    put(0, V::add(V::add(mv[0], mv[1]), mv[2]));
                    if (rows > 1) put(1, V::sub(V::sub(mv[1], mv[2]), mv[3]));
                } else {
                    const auto s = V::add(mv[1], mv[2]), d = V::sub(mv[1], mv[2]);
                    const auto s2 = V::add(mv[3], mv[4]), d2 = V::sub(mv[3], mv[4]);
                    put(0, V::add(V::add(mv[0], s), s2));
                    if (rows > 1) put(1, V::fma(two, d2, d));
                    if (rows > 2) put(2, V::fma(four, s2, s));
                    if (rows > 3) put(3, V::add(V::fma(eight, d2, d), mv[5]));
                }
            });
        }
    }
}
}  // namespace detail

/// One sample's output from M (its rows of tiles from t0), plus b[k] (none when b is empty),
/// stored or, with Accumulate::yes, added to y; rows past H2 of the last tile are dropped.
///   F(2, 3): rows M_0 + M_1 + M_2 and M_1 - M_2 - M_3;
///   F(4, 3): with s = M_1 + M_2, d = M_1 - M_2, S = M_3 + M_4, D = M_3 - M_4:
///            rows M_0 + s + S, d + 2D, s + 4S and d + 8D + M_5.
template <Scalar T>
void winograd_outputs(const T* __restrict m, const ConvGeometry& g, const WinogradLayout& lay, std::size_t t0,
                      std::span<const T> bias, T* __restrict y, Accumulate accumulate) {
    const bool add = accumulate == Accumulate::yes;
    if (lay.tile == 2)
        add ? detail::winograd_outputs_tiled<2, true>(m, g, lay, t0, bias, y)
            : detail::winograd_outputs_tiled<2, false>(m, g, lay, t0, bias, y);
    else
        add ? detail::winograd_outputs_tiled<4, true>(m, g, lay, t0, bias, y)
            : detail::winograd_outputs_tiled<4, false>(m, g, lay, t0, bias, y);
}

// Winograd down the rows, chunk by chunk of samples: the filters transformed and packed once
// for the batch; per chunk V for its samples, the products M_a = U_a V_a, then each sample's
// output from M, and after(n, n + 1, part) as conv2d_forward calls it. The forward pass (y =
// the convolution of x with w, plus b), and the input gradient of a convolution with unit
// strides (x the deltas, w rotated, no bias, y = dx, accumulated or not: conv2d_backward).
// When x has a shape but no data, before(n, n + 1, part) writes sample n's input into `part`,
// one sample's worth of the worker's scratch memory (the deltas of a convolution fused with
// the layer after it, as conv2d_backward's `before`).
template <Scalar T, class After, class Before>
void winograd_convolution(TensorView<const T, 4> x, const T* w, bool rotated, std::span<const T> b,
                          const ConvGeometry& g, TensorView<T, 4> y, Accumulate accumulate, Scratch<T>& scratch,
                          const After& after, const Before& before) {
    const std::size_t samples = x.extent(0);
    const WinogradLayout lay = winograd_balanced_layout(g, samples);
    const std::size_t chunks = (samples + lay.chunk - 1) / lay.chunk;
    const std::size_t depth = g.channels * g.kernel_w, sample_size = g.filters * g.out_h * g.out_w;
    const bool stored = y.data() != nullptr, given = x.data() != nullptr;
    const std::size_t v_size = lay.planes * g.channels * lay.plane, m_size = lay.planes * g.filters * lay.plane;
    const std::size_t own_output = stored ? 0 : round_up(sample_size);
    const std::size_t own_input = given ? 0 : round_up(g.channels * g.height * g.width);
    const std::size_t zeros_size = round_up(g.width);
    const std::size_t per_worker =
        v_size + m_size + zeros_size + own_output + own_input + gemm_rows_edge_size<T>();
    const std::size_t packed = round_up(packed_a_size<T>(g.filters, depth)), u_size = lay.planes * g.filters * depth;
    const WorkerScratch<T> memory = scratch.per_worker(threads(), per_worker, lay.planes * packed + u_size);
    // The filters' planes U_a, transformed and packed plane by plane over the pool, so that
    // no worker waits while one thread transforms all six.
    T* const u = memory.shared + lay.planes * packed;
    thread_pool().parallel_for(lay.planes, [&](std::size_t a, std::size_t) {
        T* const u_a = u + a * g.filters * depth;
        winograd_filters(w, g, lay, rotated, a, u_a);
        pack_whole_a<T>(g.filters, depth, u_a, static_cast<std::ptrdiff_t>(depth), 1, memory.shared + a * packed);
    });
    thread_local std::vector<std::size_t> offset_memory;
    offset_memory.resize(std::max(offset_memory.size(), depth));
    for (std::size_t r = 0; r < depth; ++r) offset_memory[r] = r / g.kernel_w * lay.plane + r % g.kernel_w;
    const std::size_t* const offsets = offset_memory.data();
    thread_pool().parallel_for(chunks, [&](std::size_t chunk, std::size_t worker) {
        T* const v = memory.worker(worker);
        T* const m = v + v_size;
        T* const zeros = m + m_size;
        T* const own = zeros + zeros_size;
        T* const input = own + own_output;
        T* const edge = input + own_input;
        zero_run(zeros, g.width);
        const std::size_t first = chunk * lay.chunk, last = std::min(samples, first + lay.chunk);
        for (std::size_t n = first; n < last; ++n) {
            if (!given) before(n, n + 1, TensorView<T, 4>{input, {1, g.channels, g.height, g.width}});
            winograd_inputs(given ? x[n].data() : input, g, lay, (n - first) * lay.tiles_h, v, zeros);
        }
        const std::size_t columns = lay.columns(g, last - first);
        for (std::size_t a = 0; a < lay.planes; ++a)
            gemm_rows<T>(g.filters, columns, depth, memory.shared + a * packed, v + a * g.channels * lay.plane,
                         offsets, m + a * g.filters * lay.plane, lay.plane, Accumulate::no, edge);
        for (std::size_t n = first; n < last; ++n) {
            T* const part = stored ? y.data() + n * sample_size : own;
            winograd_outputs(m, g, lay, (n - first) * lay.tiles_h, b, part, stored ? accumulate : Accumulate::no);
            after(n, n + 1, TensorView<const T, 4>{part, {1, g.filters, g.out_h, g.out_w}});
        }
    });
}

// The weight gradient by F(4, 3) transposed (FORMULAS.md section 24). Down column n of filter
// (k, c), the gradient of tap row m is a sum over output rows i of d_i x~_{i + m}, d the deltas
// and x~ the padded input; F(4, 3)'s identity y_i = sum_a A^T[i][a] (G g)_a (B^T x~)_a, read
// the other way round, gives per tile of 4 output rows
//   dW_m = sum_a G[a][m] (A d)_a (B^T x~)_a,
// 6 products per 3 taps where the direct sum takes 12. So per sample: x~'s planes V_a = B^T x~
// (winograd_inputs), the deltas' planes (A d)_a transposed (winograd_deltas), and per plane
// a the products M_a[(c, n)][k] = sum over positions q of V_a[c][q + n] (A d)_a[q][k]: one row
// of 3 taps by broadcasts (weight_gradient_by_taps on a 1-row filter). Each chunk's M_a are
// summed over its samples and turned into its dW^T rows (c, m, n) = sum_a G[a][m] M_a[(c, n)]
// once, in double.

/// Where it applies: where the implicit backward pass takes the weight gradient by taps, with
/// 3-row filters, no dilation, unit strides, and output heights the forward pass runs on
/// F(4, 3) (winograd_layout's tile 4: 3, 4 and from 7 rows on).
template <Scalar T>
bool winograd_weight_gradient_applies(const ConvGeometry& g) noexcept {
    return implicit_backward_applies(g) && weight_gradient_by_taps_applies<T>(g) && winograd_applies(g) &&
           winograd_layout(g).tile == 4;
}

/// dT_a (positions x K, position q = t pitch + j for tile row t; one plane every `stride`
/// values from dt) from one sample's deltas (K x H2 x W2): (A d)_a of its tile's rows d_0 .. d_3
/// (zero past H2), position by position,
///   A d = (d_0, d_0 + d_1 + d_2 + d_3, d_0 - d_1 + d_2 - d_3, d_0 + 2 d_1 + 4 d_2 + 8 d_3,
///          d_0 - 2 d_1 + 4 d_2 - 8 d_3, d_3),
/// zero at the pitch - W2 positions past each row's end, at the two before the first and at
/// the two after the last row of tiles (2 K values each side, which the planes have room
/// for): weight_gradient_tile reads dT up to two positions past the last output, which with
/// rows sharing their padding (pitch - W2 = 1 for a 3x3 "same" filter) lies past that row.
/// The deltas are first transposed into `rows` (4 tiles_h pitch K values: output row i at
/// i pitch K, zero past each row's W2 positions and in the rows past H2), so that each tile
/// row of each plane is a combination of four whole runs of it.
template <Scalar T>
void winograd_deltas(const T* __restrict deltas, const ConvGeometry& g, const WinogradLayout& lay, T* __restrict dt,
                     std::size_t stride, T* __restrict rows) {
    using V = detail::Vector<T>;
    const std::size_t kernels = g.filters, width = g.out_w, out_plane = g.out_h * width;
    const std::size_t run = lay.pitch * kernels;
    for (std::size_t i = 0; i < g.out_h; ++i) {
        transpose(deltas + i * width, out_plane, kernels, width, rows + i * run, kernels);
        zero_run(rows + i * run + width * kernels, (lay.pitch - width) * kernels);
    }
    zero_run(rows + g.out_h * run, (4 * lay.tiles_h - g.out_h) * run);
    for (std::size_t a = 0; a < 6; ++a) {
        zero_run(dt + a * stride - 2 * kernels, 2 * kernels);
        zero_run(dt + a * stride + lay.tiles_h * run, 2 * kernels);
    }
    const T four_ = 4, eight_ = 8;
    const auto four = V::broadcast(&four_), eight = V::broadcast(&eight_);
    for (std::size_t t = 0; t < lay.tiles_h; ++t) {
        const T* const d = rows + 4 * t * run;
        T* const out = dt + t * run;
        for (std::size_t e = 0; e < run; e += V::lanes) {
            const std::size_t n = std::min(V::lanes, run - e);
            const auto d0 = load_n(d + e, n), d1 = load_n(d + run + e, n), d2 = load_n(d + 2 * run + e, n),
                       d3 = load_n(d + 3 * run + e, n);
            const auto s02 = V::add(d0, d2), s13 = V::add(d1, d3), f02 = V::fma(four, d2, d0),
                       f13 = V::fma(eight, d3, V::add(d1, d1));
            store_n(out + e, d0, n);
            store_n(out + stride + e, V::add(s02, s13), n);
            store_n(out + 2 * stride + e, V::sub(s02, s13), n);
            store_n(out + 3 * stride + e, V::add(f02, f13), n);
            store_n(out + 4 * stride + e, V::sub(f02, f13), n);
            store_n(out + 5 * stride + e, d3, n);
        }
    }
}

/// dW and db (added to), where winograd_weight_gradient_applies, as conv2d_backward_implicit
/// computes them without an input gradient (the same chunks of samples, partials and `before`).
template <Scalar T, class Before>
void winograd_weight_gradient(TensorView<const T, 4> x, TensorView<const T, 4> dy, const ConvGeometry& g,
                              TensorView<T, 4> dw, std::span<T> db, Scratch<T>& scratch, const Before& before) {
    const WinogradLayout lay = winograd_layout(g, 1);  // one sample's rows of tiles a plane
    const std::size_t samples = x.extent(0), chunks = (samples + conv_chunk - 1) / conv_chunk;
    const std::size_t kernels = g.filters, channels = g.channels, rows = g.rows();
    const std::size_t out_plane = g.out_h * g.out_w, sample_size = kernels * out_plane;
    const std::size_t columns = lay.columns(g, 1), per_chunk = kernels * rows + kernels;
    const bool stored = dy.data() != nullptr;
    const std::size_t v_size = 6 * channels * lay.plane, stride = round_up((lay.tiles_h * lay.pitch + 4) * kernels);
    const std::size_t m_part = 3 * channels * kernels, m_size = 6 * m_part;
    const std::size_t rows_size = round_up(4 * lay.tiles_h * lay.pitch * kernels), zeros_size = round_up(g.width);
    const std::size_t own_deltas = stored ? 0 : round_up(sample_size);
    const std::size_t per_worker = v_size + 6 * stride + m_size + rows_size + zeros_size + own_deltas;
    const WorkerScratch<T> memory = scratch.per_worker(threads(), per_worker, round_up(chunks * per_chunk));
    T* const partials = memory.shared;
    // The products as weight_gradient_by_taps takes them: a filter of one row on the planes.
    ConvGeometry row_filter = g;
    row_filter.kernel_h = 1;
    const ImplicitLowering planes{true, lay.pitch, lay.plane, columns};
    thread_pool().parallel_for(chunks, [&](std::size_t chunk, std::size_t worker) {
        T* const v = memory.worker(worker);
        T* const dt = v + v_size;
        T* const m = dt + 6 * stride;
        T* const transposed = m + m_size;  // winograd_deltas' `rows`
        T* const zeros = transposed + rows_size;
        T* const own = zeros + zeros_size;
        T* const dw_part = partials + chunk * per_chunk;
        T* const db_part = dw_part + kernels * rows;
        zero_run(zeros, g.width);
        const auto [first, last] = chunk_samples(chunk, samples);
        for (std::size_t n = first; n < last; ++n) {
            const T* deltas = own;
            if (stored)
                deltas = dy.data() + n * sample_size;
            else
                before(n, n + 1, TensorView<T, 4>{own, {1, kernels, g.out_h, g.out_w}});
            winograd_inputs(x[n].data(), g, lay, 0, v, zeros);
            winograd_deltas(deltas, g, lay, dt + 2 * kernels, stride, transposed);
            for (std::size_t a = 0; a < 6; ++a)
                weight_gradient_by_taps(v + a * channels * lay.plane, row_filter, planes, dt + a * stride + 2 * kernels,
                                        m + a * m_part, n > first);
            for (std::size_t k = 0; k < kernels; ++k)
                db_part[k] = (n > first ? db_part[k] : T{0}) + sum_run(deltas + k * out_plane, out_plane);
        }
        // dW^T row (c, r, n), r the filter row: sum over a of G[a][r] M_a[(c, n)] (G: winograd_g4).
        for (std::size_t c = 0; c < channels; ++c)
            for (std::size_t r = 0; r < 3; ++r)
                for (std::size_t n = 0; n < 3; ++n) {
                    T* const out = dw_part + ((c * 3 + r) * 3 + n) * kernels;
                    const std::size_t at = (c * 3 + n) * kernels;
                    for (std::size_t k = 0; k < kernels; ++k) {
                        double sum = 0;
                        for (std::size_t a = 0; a < 6; ++a)
                            sum += winograd_g4[a][r] * static_cast<double>(m[a * m_part + at + k]);
                        out[k] = static_cast<T>(sum);
                    }
                }
    });
    add_chunk_gradients<T>(partials, chunks, kernels, rows, true, dw, db);
}

}  // namespace CNN_KERNEL_VARIANT
}  // namespace cnn::kernels
