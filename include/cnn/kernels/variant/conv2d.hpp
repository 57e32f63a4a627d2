// The convolution kernels behind the Conv2D layer: the formulas of
// FORMULAS.md 4.3 and 8.4-8.6 lowered to matrix products (im2col), batch-aware
// and spread over the thread pool. The reference kernels in
// cnn/reference/convolution.hpp are their oracle (tests/test_kernels.cpp).
//
// With R = C*Fh*Fw rows and Q = H2*W2 output positions per sample:
//   col[r][q]   = x~[c][iSh+mDh][jSw+nDw]     for r = (c,m,n), q = (i,j)
// (S the stride, D the dilation, x~ the input padded by Ph rows and Pw columns; the
// formulas of the spec have S = Sh = Sw, P = Ph = Pw and D = 1)
//   forward:      net_n (K x Q)  = W (K x R) col_n (R x Q) + b
//   input grad:   dcol (R x Q)   = W^T (R x K) delta_n (K x Q), then col2im adds
//                 each dcol[r][q] back onto x~[c][iSh+mDh][jSw+nDw], cropped by the padding
//                 (the same sums as the full convolution with rotated filters)
//   weight grad:  dW (K x R)    += delta_n (K x Q) col_n^T (Q x R)
//                 (or its transpose, col_n delta_n^T, when that fills the
//                 GEMM's register tiles better: 32 filters of 3x3 on one channel)
//   bias grad:    db[k]         += sum_q delta_n[k][q]
// A chunk of up to 4 samples is lowered side by side (4Q columns), so each
// product is 4 times wider and the filters are packed once per chunk, while the
// chunk's columns still fit in L2 (with 8 samples the wide CNN's second
// convolution spilled to L3, and a step took about 25 % longer).
//
// The forward pass of a convolution with unit strides and no dilation builds no col at all
// (conv2d_forward_implicit, below): the product reads each row of col where it already is,
// in the zero-padded input. With "same" padding the backward pass builds neither col nor
// dcol (conv2d_backward_implicit): the weight gradient's product transposes the rows of col
// out of the padded input as it packs them (or, for filters three columns wide, broadcasts
// them from it, weight_gradient_by_taps), and the input gradient is the full convolution
// of the padded deltas with the rotated filters, read in place like the forward pass's input.
// Before either, a convolution with 3-row filters and unit strides takes Winograd's minimal
// filtering down the rows (winograd.hpp), in the forward pass and for the input gradient; its
// weight gradient takes the paths below, as do the other filter shapes. A convolution with a
// stride above 1, no dilation and sums of at least 64 terms (the ResNet's 3x3 downsampling)
// is lowered on its input's phases in both passes (strided.hpp): its input is split once into
// the planes of every second (third, ...) row and column, in which each row of col is a run.
// Otherwise, how a row of col is built depends on the geometry (ConvGeometry::lowering):
//  - shifted planes (stride 1, no dilation, output as wide as the input, i.e.
//    "same" padding): the row for (c, m, n) is the input plane shifted by
//    (m - Ph, n - Pw): one contiguous copy per row of col.
//  - input rows (stride 1, no padding, no dilation, narrower output): the positions are
//    laid out W apart instead of W2 (Q = H2 * W, the last W - W2 columns of
//    each output row unused), so that again each row of col is one contiguous
//    run of the input. The unused columns are never copied to y, and their
//    deltas are zero, so they add nothing to any gradient.
//  - otherwise, output row by output row.
// Each output row otherwise costs a short copy of its own, which for LeNet's
// second convolution took longer than the product.

namespace cnn::kernels {
namespace CNN_KERNEL_VARIANT {

using detail::add_every_second;
using detail::add_run;
using detail::copy_every_second;
using detail::copy_run;
using detail::sum_run;
using detail::transpose;
using detail::zero_run;

enum class Lowering { by_rows, shifted_planes, input_rows };

struct ConvGeometry {
    std::size_t channels, height, width;  // input, per sample
    std::size_t filters, kernel_h, kernel_w;
    std::size_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
    std::size_t out_h, out_w;
    Lowering lowering;
    std::size_t pitch;  // distance between output rows in the lowered matrices: W2, or W for input rows

    [[nodiscard]] std::size_t rows() const noexcept { return channels * kernel_h * kernel_w; }
    [[nodiscard]] std::size_t positions() const noexcept { return out_h * pitch; }
};

inline ConvGeometry conv_geometry(const Shape<4>& x, const Shape<4>& w, const ConvSpec& s, const Shape<4>& y) {
    ConvGeometry g{x[1],       x[2],       x[3],         w[0],         w[2],  w[3], s.stride_h,         s.stride_w,
                   s.pad_h,    s.pad_w,    s.dilation_h, s.dilation_w, y[2],  y[3], Lowering::by_rows, y[3]};
    const bool unit = s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 && s.dilation_w == 1;
    if (unit && g.out_w == g.width) {
        g.lowering = Lowering::shifted_planes;
    } else if (unit && s.pad_h == 0 && s.pad_w == 0) {
        g.lowering = Lowering::input_rows;
        g.pitch = g.width;
    }
    return g;
}

/// The output columns j whose input column j Sw + n Dw - Pw lies inside [0, W): [first, last).
inline std::pair<std::size_t, std::size_t> valid_columns(const ConvGeometry& g, std::size_t n) {
    const std::size_t offset = n * g.dilation_w;
    const std::size_t first = offset >= g.pad_w ? 0 : (g.pad_w - offset + g.stride_w - 1) / g.stride_w;
    const std::size_t reach = g.width + g.pad_w;  // v = j Sw + n Dw - Pw < W  <=>  j Sw + n Dw < W + Pw
    const std::size_t last = offset >= reach ? 0 : std::min(g.out_w, (reach - offset + g.stride_w - 1) / g.stride_w);
    return {std::min(first, last), last};
}

/// Whether output row i of filter row m reads an input row, and which: u = i Sh + m Dh - Ph.
inline bool input_row(const ConvGeometry& g, std::size_t i, std::size_t m, std::size_t& u) {
    u = i * g.stride_h + m * g.dilation_h;
    if (u < g.pad_h || u - g.pad_h >= g.height) return false;
    u -= g.pad_h;
    return true;
}

/// Where output column `first` of filter column n reads in its input row: first Sw + n Dw - Pw.
inline std::size_t input_column(const ConvGeometry& g, std::size_t first, std::size_t n) {
    return first * g.stride_w + n * g.dilation_w - g.pad_w;
}

/// A row of col as one run of its input plane: col row [start, start + length) holds
/// plane[source, source + length), and the row's other values are zero, except the
/// `wrap` values from column `wrap_column` of each output row in [i0, i1), which a
/// shifted plane brings in from the neighbouring input row and which are padding.
struct PlaneRun {
    std::size_t start, length, source;
    std::size_t i0, i1, wrap_column, wrap;
    bool usable;
};

inline PlaneRun plane_run(const ConvGeometry& g, std::size_t m, std::size_t n) {
    PlaneRun run{};
    const std::size_t w = g.width, plane = g.height * w;
    if (g.lowering == Lowering::input_rows) {
        // Positions i W + j read plane[(i + m) W + j + n]: all in one run, up to the plane's end.
        run.source = m * w + n;
        run.length = std::min(g.positions(), plane - std::min(plane, run.source));
        run.usable = true;
        return run;
    }
    if (g.lowering != Lowering::shifted_planes || n >= w + g.pad_w || n + w <= g.pad_w) return run;
    // Output rows [i0, i1) read input rows i + m - Ph inside [0, H); columns shift by n - Pw.
    const auto du = static_cast<std::ptrdiff_t>(m) - static_cast<std::ptrdiff_t>(g.pad_h);
    const auto dv = static_cast<std::ptrdiff_t>(n) - static_cast<std::ptrdiff_t>(g.pad_w);
    const auto h = static_cast<std::ptrdiff_t>(g.height), out_h = static_cast<std::ptrdiff_t>(g.out_h);
    run.i0 = static_cast<std::size_t>(std::clamp<std::ptrdiff_t>(-du, 0, out_h));
    run.i1 = std::max(run.i0, static_cast<std::size_t>(std::clamp<std::ptrdiff_t>(h - du, 0, out_h)));
    run.wrap = static_cast<std::size_t>(dv < 0 ? -dv : dv);
    run.wrap_column = dv > 0 ? w - run.wrap : 0;
    run.usable = true;
    if (run.i1 == run.i0) return run;
    // Destination [i0 W + max(0, -dv), i1 W - max(0, dv)) reads the plane from
    // (i0 + du) W + max(0, dv): never outside the plane.
    run.start = run.i0 * w + (dv < 0 ? run.wrap : 0);
    run.length = (run.i1 - run.i0) * w - run.wrap;
    run.source = static_cast<std::size_t>(static_cast<std::ptrdiff_t>(run.i0) + du) * w + (dv > 0 ? run.wrap : 0);
    return run;
}

/// dst[j] = src[j stride] for j < n (im2col's rows, split_phases' columns).
template <Scalar T>
void copy_strided(const T* __restrict src, std::size_t n, std::size_t stride, T* __restrict dst) {
    if (stride == 1) return copy_run(src, n, dst);
    if (stride == 2) return copy_every_second(src, n, dst);
    for (std::size_t j = 0; j < n; ++j) dst[j] = src[j * stride];
}

/// dst[j stride] += src[j] for j < n (col2im's rows, merge_phases' columns).
template <Scalar T>
void add_strided(const T* __restrict src, std::size_t n, std::size_t stride, T* __restrict dst) {
    if (stride == 1) return add_run(src, n, dst);
    if (stride == 2) return add_every_second(src, n, dst);
    for (std::size_t j = 0; j < n; ++j) dst[j * stride] += src[j];
}

/// col[r][offset + q] for one sample, in a column buffer whose rows hold `ld` values.
template <Scalar T>
void im2col(const T* __restrict x, const ConvGeometry& g, T* __restrict col, std::size_t ld, std::size_t offset) {
    const std::size_t q = g.positions();
    for (std::size_t c = 0; c < g.channels; ++c) {
        const T* plane = x + c * g.height * g.width;
        for (std::size_t m = 0; m < g.kernel_h; ++m)
            for (std::size_t n = 0; n < g.kernel_w; ++n) {
                T* row = col + ((c * g.kernel_h + m) * g.kernel_w + n) * ld + offset;
                if (const PlaneRun run = plane_run(g, m, n); run.usable) {
                    zero_run(row, run.start);
                    copy_run(plane + run.source, run.length, row + run.start);
                    zero_run(row + run.start + run.length, q - run.start - run.length);
                    for (std::size_t i = run.i0; i < run.i1; ++i) zero_run(row + i * g.width + run.wrap_column, run.wrap);
                    continue;
                }
                const auto [first, last] = valid_columns(g, n);
                for (std::size_t i = 0; i < g.out_h; ++i) {
                    T* out = row + i * g.out_w;
                    std::size_t u = 0;
                    if (!input_row(g, i, m, u) || first >= last) {
                        zero_run(out, g.out_w);
                        continue;
                    }
                    // Columns [first, last) read x[u][j Sw + n Dw - Pw]; the others are padding.
                    const T* source = plane + u * g.width + input_column(g, first, n);
                    zero_run(out, first);
                    copy_strided(source, last - first, g.stride_w, out + first);
                    zero_run(out + last, g.out_w - last);
                }
            }
    }
}

/// dx[c][u][v] (+)= sum of dcol[r][offset + q] over the (r, q) that read x[c][u][v] in im2col.
/// The wrapped-around values of a shifted plane's rows are cleared in dcol first (they are
/// padding), so that each row of dcol is added in one run.
template <Scalar T>
void col2im(T* __restrict dcol, std::size_t ld, std::size_t offset, const ConvGeometry& g, T* __restrict dx,
            Accumulate accumulate) {
    if (accumulate == Accumulate::no) zero_run(dx, g.channels * g.height * g.width);
    for (std::size_t c = 0; c < g.channels; ++c) {
        T* plane = dx + c * g.height * g.width;
        for (std::size_t m = 0; m < g.kernel_h; ++m)
            for (std::size_t n = 0; n < g.kernel_w; ++n) {
                T* row = dcol + ((c * g.kernel_h + m) * g.kernel_w + n) * ld + offset;
                if (const PlaneRun run = plane_run(g, m, n); run.usable) {
                    for (std::size_t i = run.i0; i < run.i1; ++i) zero_run(row + i * g.width + run.wrap_column, run.wrap);
                    add_run(row + run.start, run.length, plane + run.source);
                    continue;
                }
                const auto [first, last] = valid_columns(g, n);
                if (first >= last) continue;
                for (std::size_t i = 0; i < g.out_h; ++i) {
                    std::size_t u = 0;
                    if (!input_row(g, i, m, u)) continue;
                    add_strided(row + i * g.out_w + first, last - first, g.stride_w,
                                plane + u * g.width + input_column(g, first, n));
                }
            }
    }
}

/// `count` rounded up to a whole number of 64-byte lines of floats, so that the regions
/// carved out of one scratch buffer stay aligned.
constexpr std::size_t round_up(std::size_t count) noexcept { return (count + 15) / 16 * 16; }

/// One sample's output, y[k][i][j] = net[k ld + i pitch + j] + b[k]: the product's rows hold
/// the output rows `pitch` apart.
template <Scalar T>
void store_output(const T* net, std::size_t ld, std::size_t pitch, const ConvGeometry& g, std::span<const T> b,
                  T* y) {
    const std::size_t out_plane = g.out_h * g.out_w;
    for (std::size_t k = 0; k < g.filters; ++k) {
        const T* source = net + k * ld;
        T* out = y + k * out_plane;
        const T bias = b[k];
        if (pitch == g.out_w) {
            for (std::size_t p = 0; p < out_plane; ++p) out[p] = source[p] + bias;
        } else {
            for (std::size_t i = 0; i < g.out_h; ++i)
                for (std::size_t j = 0; j < g.out_w; ++j) out[i * g.out_w + j] = source[i * pitch + j] + bias;
        }
    }
}

// The implicit lowering, for unit strides and no dilation (where implicit_lowering_applies:
// sums of 64 terms or more, such as 1x1 convolutions on 64 channels, 5x5 ones on 3; the 3x3
// ones take Winograd's minimal filtering instead, but for their weight gradient). Output position (i, j) of
// filter tap r = (c, m, n) reads x~[c][i + m][j + n]. With the padded input x~ laid out in
// planes of Hp = H + 2Ph rows of `pitch` = W + 2Pw values, and the output positions laid out
// `pitch` apart too (q = i pitch + j), row r of col is the run of x~ that starts at
//   offsets[r] = c Hp pitch + m pitch + n,
// so the product reads the rows of col where they already are (gemm_rows) and col is never
// built. The last Fw - 1 positions of each output row (j >= W2) are computed and dropped:
// for a 3x3 filter, 2 of every 30 columns on a 28x28 plane and 2 of 9 on a 7x7 one. That
// costs less than copying Fh Fw shifted copies of the input: the padded copy is one copy,
// and without padding (a 1x1 convolution) there is none at all.
struct ImplicitLowering {
    bool padded;         // whether x~ is a padded copy of the input (else the input itself)
    std::size_t pitch;   // W + 2 Pw
    std::size_t plane;   // (H + 2 Ph) pitch
    std::size_t columns; // (H2 - 1) pitch + W2: the last output position, plus one

    [[nodiscard]] std::size_t offset(const ConvGeometry& g, std::size_t r) const noexcept {
        const std::size_t taps = g.kernel_h * g.kernel_w, c = r / taps, m = r % taps / g.kernel_w, n = r % g.kernel_w;
        return c * plane + m * pitch + n;
    }
};

/// Where the implicit lowering runs: unit strides, no dilation, and sums of at least 64
/// terms. For the short sums of a first layer (a 3x3 filter on one channel: 9 terms) each
/// tile of the product is mostly its fixed cost, and the chunked im2col product, 4 samples
/// wide, was faster (bench_conv: 0.32 ms against 0.46-0.58 ms for the wide CNN's first layer).
inline bool implicit_lowering_applies(const ConvGeometry& g) noexcept {
    return g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 && g.dilation_w == 1 && g.out_h > 0 &&
           g.out_w > 0 && g.rows() >= 64;
}

inline ImplicitLowering implicit_lowering(const ConvGeometry& g) noexcept {
    const std::size_t pitch = g.width + 2 * g.pad_w;
    return {g.pad_h != 0 || g.pad_w != 0, pitch, (g.height + 2 * g.pad_h) * pitch, (g.out_h - 1) * pitch + g.out_w};
}

/// x~: one sample's channels, each in the middle of a zero-filled (H + 2Ph) x pitch plane.
template <Scalar T>
void pad_planes(const T* __restrict x, const ConvGeometry& g, const ImplicitLowering& lay, T* __restrict out) {
    const std::size_t top = g.pad_h * lay.pitch;
    for (std::size_t c = 0; c < g.channels; ++c, out += lay.plane) {
        const T* plane = x + c * g.height * g.width;
        zero_run(out, top + g.pad_w);
        for (std::size_t u = 0; u < g.height; ++u) {
            T* row = out + top + u * lay.pitch + g.pad_w;
            copy_run(plane + u * g.width, g.width, row);
            zero_run(row + g.width, u + 1 < g.height ? 2 * g.pad_w : g.pad_w);
        }
        zero_run(out + top + g.height * lay.pitch, top);
    }
}

/// The offsets of the rows of col in x~ (or, with a PhaseLowering, in the phase planes), in
/// `offsets` (the caller's, kept for its next call: it only grows).
template <class Layout>
const std::size_t* implicit_offsets(const ConvGeometry& g, const Layout& lay, std::vector<std::size_t>& offsets) {
    offsets.resize(std::max(offsets.size(), g.rows()));
    for (std::size_t r = 0; r < g.rows(); ++r) offsets[r] = lay.offset(g, r);
    return offsets.data();
}

// Forward with the implicit lowering, sample by sample: the filters packed once for the
// whole batch, then per sample x~ (when padded), net (K x columns) = W col, read in place,
// and the output rows (plus bias) copied out of net's rows.
template <Scalar T, class After>
void conv2d_forward_implicit(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b,
                             const ConvGeometry& g, TensorView<T, 4> y, Scratch<T>& scratch, const After& after) {
    const ImplicitLowering lay = implicit_lowering(g);
    const std::size_t samples = x.extent(0), rows = g.rows(), ld = round_up(lay.columns);
    const std::size_t sample_size = g.filters * g.out_h * g.out_w;
    const bool stored = y.data() != nullptr;
    const std::size_t padded = lay.padded ? round_up(g.channels * lay.plane) : 0;
    const std::size_t own_output = stored ? 0 : round_up(sample_size);
    const std::size_t per_worker = padded + round_up(g.filters * ld) + own_output + gemm_rows_edge_size<T>();
    const WorkerScratch<T> memory = scratch.per_worker(threads(), per_worker, packed_a_size<T>(g.filters, rows));
    pack_whole_a<T>(g.filters, rows, w.data(), static_cast<std::ptrdiff_t>(rows), 1, memory.shared);
    thread_local std::vector<std::size_t> offset_memory;
    const std::size_t* const offsets = implicit_offsets(g, lay, offset_memory);
    thread_pool().parallel_for(samples, [&](std::size_t n, std::size_t worker) {
        T* const input = memory.worker(worker);
        T* const net = input + padded;
        T* const own = net + round_up(g.filters * ld);
        T* const edge = own + own_output;
        const T* source = x[n].data();
        if (lay.padded) {
            pad_planes(source, g, lay, input);
            source = input;
        }
        gemm_rows<T>(g.filters, lay.columns, rows, memory.shared, source, offsets, net, ld, Accumulate::no, edge);
        T* const part = stored ? y.data() + n * sample_size : own;
        store_output(net, ld, lay.pitch, g, b, part);
        after(n, n + 1, TensorView<const T, 4>{part, {1, g.filters, g.out_h, g.out_w}});
    });
}

// Winograd's minimal filtering down the rows (winograd.hpp, included after this file, whose
// ConvGeometry and helpers it uses).
inline bool winograd_applies(const ConvGeometry& g) noexcept;
template <Scalar T, class After, class Before>
void winograd_convolution(TensorView<const T, 4> x, const T* w, bool rotated, std::span<const T> b,
                          const ConvGeometry& g, TensorView<T, 4> y, Accumulate accumulate, Scratch<T>& scratch,
                          const After& after, const Before& before);

// The weight gradient on F(4, 3) transposed (winograd.hpp).
template <Scalar T>
bool winograd_weight_gradient_applies(const ConvGeometry& g) noexcept;
template <Scalar T, class Before>
void winograd_weight_gradient(TensorView<const T, 4> x, TensorView<const T, 4> dy, const ConvGeometry& g,
                              TensorView<T, 4> dw, std::span<T> db, Scratch<T>& scratch, const Before& before);

// Strided convolutions lowered on the input's phases (strided.hpp, included after this file).
inline bool phase_lowering_applies(const ConvGeometry& g) noexcept;
template <Scalar T, class After>
void conv2d_forward_phases(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b,
                           const ConvGeometry& g, TensorView<T, 4> y, Scratch<T>& scratch, const After& after);
template <Scalar T, class Before>
void conv2d_backward_phases(TensorView<const T, 4> x, TensorView<const T, 4> dy, TensorView<const T, 4> w,
                            const ConvGeometry& g, TensorView<T, 4> dx, TensorView<T, 4> dw, std::span<T> db,
                            Scratch<T>& scratch, const Before& before, Accumulate accumulate_dx);

/// The samples [first, last) of chunk `chunk`.
inline std::pair<std::size_t, std::size_t> chunk_samples(std::size_t chunk, std::size_t samples) {
    return {chunk * conv_chunk, std::min(samples, (chunk + 1) * conv_chunk)};
}

// Forward, per chunk of up to 4 samples: the chunk's columns side by side,
// col (R x 4Q), one product net (K x 4Q) = W col, then each sample's K x H2 x W2 block
// (plus bias) copied to its place in y.
// After each sample n's copy, after(n, n + 1, part) is called on the same thread, with
// `part` that sample's output, still in this core's cache: a layer after the
// convolution (a pool: ConvActMaxPool, cnn/layers/fused.hpp) consumes it there. When y
// has a shape but no data, the output is not stored at all: each sample's goes to its
// worker's scratch memory (one sample's worth, so that the chunk's working set stays in
// L2), for `after` alone.
template <Scalar T, class After = NoHook>
void conv2d_forward(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b, const ConvSpec& spec,
                    TensorView<T, 4> y, Scratch<T>& scratch, const After& after = {}) {
    const ConvGeometry g = conv_geometry(x.shape(), w.shape(), spec, y.shape());
    if (winograd_applies(g))
        return winograd_convolution(x, w.data(), false, b, g, y, Accumulate::no, scratch, after, NoHook{});
    if (implicit_lowering_applies(g)) return conv2d_forward_implicit(x, w, b, g, y, scratch, after);
    if (phase_lowering_applies(g)) return conv2d_forward_phases(x, w, b, g, y, scratch, after);
    const std::size_t samples = x.extent(0), chunks = (samples + conv_chunk - 1) / conv_chunk;
    const std::size_t q = g.positions(), ld = conv_chunk * q;
    const std::size_t sample_size = g.filters * g.out_h * g.out_w;
    const bool stored = y.data() != nullptr;
    const std::size_t own_output = stored ? 0 : round_up(sample_size);
    const std::size_t per_worker = round_up((g.rows() + g.filters) * ld) + own_output + gemm_pack_size<T>();
    const WorkerScratch<T> memory = scratch.per_worker(threads(), per_worker);
    thread_pool().parallel_for(chunks, [&](std::size_t chunk, std::size_t worker) {
        T* col = memory.worker(worker);
        T* net = col + g.rows() * ld;
        T* own = col + round_up((g.rows() + g.filters) * ld);
        T* pack = own + own_output;
        const auto [first, last] = chunk_samples(chunk, samples);
        for (std::size_t n = first; n < last; ++n) im2col(x[n].data(), g, col, ld, (n - first) * q);
        const std::size_t columns = (last - first) * q;
        gemm<T>(g.filters, columns, g.rows(), w.data(), static_cast<std::ptrdiff_t>(g.rows()), 1, col,
                static_cast<std::ptrdiff_t>(ld), 1, net, ld, Accumulate::no, pack);
        for (std::size_t n = first; n < last; ++n) {
            T* const part = stored ? y.data() + n * sample_size : own;
            store_output(net + (n - first) * q, ld, g.pitch, g, b, part);
            after(n, n + 1, TensorView<const T, 4>{part, {1, g.filters, g.out_h, g.out_w}});
        }
    });
}

/// dW and db (+)= the chunks' partial gradients (chunk after chunk, each K x R values, or R x K
/// with `transposed`, then K), added in chunk order; the gradients are spread over the
/// threads (each one's sum is the same whoever computes it). Transposed partials are summed
/// into the first chunk's, whole vectors at a time, and that sum is added into dW once, value
/// by value (with dW zero, the same bits as adding each chunk's into dW in turn).
template <Scalar T>
void add_chunk_gradients(T* partials, std::size_t chunks, std::size_t kernels, std::size_t rows, bool transposed,
                         TensorView<T, 4> dw, std::span<T> db) {
    const std::size_t weight_size = kernels * rows, per_chunk = weight_size + kernels;
    T* const weights = dw.data();
    if (transposed) {
        parallel_blocks(rows, std::max<std::size_t>(1, 4096 / kernels), [&](std::size_t begin, std::size_t end) {
            T* const sum = partials + begin * kernels;  // partial r K + k holds dW[k][r]
            for (std::size_t chunk = 1; chunk < chunks; ++chunk)
                add_run(sum + chunk * per_chunk, (end - begin) * kernels, sum);
            for (std::size_t r = begin; r < end; ++r)
                for (std::size_t k = 0; k < kernels; ++k) weights[k * rows + r] += sum[(r - begin) * kernels + k];
        });
        for (std::size_t chunk = 0; chunk < chunks; ++chunk)
            add_run(partials + chunk * per_chunk + weight_size, kernels, db.data());
        return;
    }
    parallel_blocks(per_chunk, 4096, [&](std::size_t begin, std::size_t end) {
        const std::size_t split = std::clamp(weight_size, begin, end);  // weights [begin, split), biases after
        for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
            const T* part = partials + chunk * per_chunk;
            if (begin < split) add_run(part + begin, split - begin, weights + begin);
            if (split < end) add_run(part + split, end - split, db.data() + (split - weight_size));
        }
    });
}

/// Where the backward pass runs on the implicit lowering too: where the forward pass does,
/// with "same" padding (Fh = 2 Ph + 1 and Fw = 2 Pw + 1: the output as large as the input) and
/// input-gradient sums of at least 64 terms. The deltas padded for the input gradient's full
/// convolution (by Fh - 1 - Ph = Ph rows and Pw columns) then lie exactly as x~ does, and one
/// padded copy of them serves both gradients.
inline bool implicit_backward_applies(const ConvGeometry& g) noexcept {
    return implicit_lowering_applies(g) && g.kernel_h == 2 * g.pad_h + 1 && g.kernel_w == 2 * g.pad_w + 1 &&
           g.filters * g.kernel_h * g.kernel_w >= 64;
}

/// Where the implicit backward pass computes the weight gradient by broadcasts from x~
/// (weight_gradient_by_taps) instead of the product with col^T, whose packing transposes every
/// row of col (R values per position, where the deltas have K): filters three columns wide, and
/// filters that fill whole vectors. bench_conv, backward, 1 thread, batch 64, against the
/// product (docs/PERFORMANCE.md): the ResNet's stages (16, 32 and 64 filters) 2.48-2.59 against
/// 3.22-3.91 ms, 2.70-3.24 against 2.91-3.10 and 3.15-3.23 against 3.20-3.37; but with a first
/// version, which also took filters in part vectors, 8 filters (half a vector) on 64 channels
/// of 14x14 took 2.34 ms against 2.17, and 24 (one and a half) 2.37 against 2.33.
template <Scalar T>
bool weight_gradient_by_taps_applies(const ConvGeometry& g) noexcept {
    return g.kernel_w == 3 && g.filters % detail::Vector<T>::lanes == 0;
}

/// Filters per block of weight_gradient_by_taps, in vectors (4 with AVX-512, 2 with AVX2), and
/// row groups (3 rows of dW^T each) per weight_gradient_tile with KV vectors of filters. With
/// one vector, 3 Groups accumulators, the 3 vectors of deltas they multiply and a broadcast
/// take 28 of AVX-512's 32 registers (13 of AVX2's 16; V::rows x V::columns of the GEMM's
/// register tile is three quarters of them); with more, 3 Groups KV accumulators fill the
/// GEMM's tile.
template <Scalar T>
constexpr std::size_t weight_gradient_registers() {
    using V = detail::Vector<T>;
    return V::rows * V::columns / V::lanes * 4 / 3;
}
template <Scalar T>
constexpr std::size_t weight_gradient_vectors() {
    return weight_gradient_registers<T>() / 8;
}
template <Scalar T, std::size_t KV>
constexpr std::size_t weight_gradient_groups() {
    constexpr std::size_t registers = weight_gradient_registers<T>();
    if constexpr (KV == 1) return (registers - 4) / 3 - 1;
    return std::max<std::size_t>(1, registers * 3 / 4 / (3 * KV));
}

/// One tile of dW^T (rows (c, m, n) of `used` <= Groups row groups, by KV vectors of filters)
/// for one sample: for row group gi = c Fh + m at taps[gi] = x~ + c plane + m pitch,
///   out[3 gi + n][k] (+)= sum over positions p of x~[taps[gi] + p + n] dT[p][k]
///                       = sum over q of x~[taps[gi] + q] dT[q - n][k]
/// (FORMULAS.md 8.5 on the implicit lowering's positions; dT is zero at the positions past an
/// output row's end, and at the two before its first and after its last). Each value of x~ is
/// broadcast from where it lies and each vector of dT serves 3 Groups products, so neither
/// operand is packed. With one vector of filters, the second form: it broadcasts each x~ once
/// for 3 products (the first, three times for one each, and the broadcasts are its bound); with
/// more, the first, whose accumulators leave no registers for dT's three rows. The row groups
/// past `used` repeat group 0 and are dropped.
template <Scalar T, std::size_t KV>
void weight_gradient_tile(const T* const* taps, std::size_t used, const T* __restrict dt, std::size_t ldt,
                          std::size_t positions, T* __restrict out, std::size_t ldo, bool add) {
    using V = detail::Vector<T>;
    constexpr std::size_t groups = weight_gradient_groups<T, KV>();
    const T* row[groups];
    for (std::size_t gi = 0; gi < groups; ++gi) row[gi] = taps[gi < used ? gi : 0];
    // Every loop over acc is unrolled, with constant indices, so that acc stays in registers;
    // the loops over positions are not (unrolled, they spilled).
    typename V::reg acc[groups * 3][KV];
#pragma GCC unroll 24
    for (std::size_t i = 0; i < groups * 3; ++i)
#pragma GCC unroll 4
        for (std::size_t v = 0; v < KV; ++v) acc[i][v] = V::zero();
    if constexpr (KV == 1) {
#pragma GCC unroll 1
        for (std::size_t q = 0; q < positions + 2; ++q) {
            const auto d0 = V::loadu(dt + q * ldt), d1 = V::loadu(dt + q * ldt - ldt),
                       d2 = V::loadu(dt + q * ldt - 2 * ldt);
#pragma GCC unroll 16
            for (std::size_t gi = 0; gi < groups; ++gi) {
                const auto x = V::broadcast(row[gi] + q);
                acc[3 * gi][0] = V::fma(x, d0, acc[3 * gi][0]);
                acc[3 * gi + 1][0] = V::fma(x, d1, acc[3 * gi + 1][0]);
                acc[3 * gi + 2][0] = V::fma(x, d2, acc[3 * gi + 2][0]);
            }
        }
    } else {
#pragma GCC unroll 1
        for (std::size_t p = 0; p < positions; ++p) {
            typename V::reg d[KV];
#pragma GCC unroll 4
            for (std::size_t v = 0; v < KV; ++v) d[v] = V::loadu(dt + p * ldt + v * V::lanes);
#pragma GCC unroll 24
            for (std::size_t i = 0; i < groups * 3; ++i) {
                const auto x = V::broadcast(row[i / 3] + p + i % 3);
#pragma GCC unroll 4
                for (std::size_t v = 0; v < KV; ++v) acc[i][v] = V::fma(x, d[v], acc[i][v]);
            }
        }
    }
#pragma GCC unroll 24
    for (std::size_t i = 0; i < groups * 3; ++i)
#pragma GCC unroll 4
        for (std::size_t v = 0; v < KV; ++v) {
            if (i >= used * 3) continue;
            T* const at = out + i * ldo + v * V::lanes;
            V::storeu(at, add ? V::add(acc[i][v], V::loadu(at)) : acc[i][v]);
        }
}

/// dW^T (R x K, ld K) (+)= one sample's weight gradient, where weight_gradient_by_taps_applies:
/// x~ its padded input (the implicit lowering's layout), dt its deltas transposed
/// (transpose_deltas). By blocks of vectors of filters (4 with AVX-512, 2 with AVX2, and one
/// shorter block last), each by tiles of row groups (weight_gradient_tile).
template <Scalar T>
void weight_gradient_by_taps(const T* x, const ConvGeometry& g, const ImplicitLowering& lay, const T* dt, T* out,
                             bool add) {
    constexpr std::size_t lanes = detail::Vector<T>::lanes;
    const std::size_t kernels = g.filters, row_groups = g.channels * g.kernel_h;
    const auto block = [&]<std::size_t KV>(std::size_t k0) {
        constexpr std::size_t groups = weight_gradient_groups<T, KV>();
        const T* taps[groups];
        for (std::size_t g0 = 0; g0 < row_groups; g0 += groups) {
            const std::size_t used = std::min(groups, row_groups - g0);
            for (std::size_t gi = 0; gi < used; ++gi) {
                const std::size_t c = (g0 + gi) / g.kernel_h, m = (g0 + gi) % g.kernel_h;
                taps[gi] = x + c * lay.plane + m * lay.pitch;
            }
            weight_gradient_tile<T, KV>(taps, used, dt + k0, kernels, lay.columns, out + 3 * g0 * kernels + k0,
                                        kernels, add);
        }
    };
    constexpr std::size_t most = weight_gradient_vectors<T>();
    std::size_t k0 = 0;
    for (; k0 + most * lanes <= kernels; k0 += most * lanes) block.template operator()<most>(k0);
    switch ((kernels - k0) / lanes) {
        case 1: block.template operator()<1>(k0); break;
        case 2: if constexpr (most > 2) block.template operator()<2>(k0); break;
        case 3: if constexpr (most > 3) block.template operator()<3>(k0); break;
        default: break;
    }
}

/// dT (lay.columns x K, from dt): one sample's deltas (K x H2 x W2) transposed, position by
/// position, zero at the pitch - W2 positions past each output row's end and at the two
/// positions before dt and after its last (2 K values each side, which dt has room for).
template <Scalar T>
void transpose_deltas(const T* deltas, const ConvGeometry& g, const ImplicitLowering& lay, T* dt) {
    const std::size_t kernels = g.filters, out_plane = g.out_h * g.out_w;
    zero_run(dt - 2 * kernels, 2 * kernels);
    for (std::size_t i = 0; i < g.out_h; ++i) {
        T* const row = dt + i * lay.pitch * kernels;
        transpose(deltas + i * g.out_w, out_plane, kernels, g.out_w, row, kernels);
        if (i + 1 < g.out_h) zero_run(row + g.out_w * kernels, (lay.pitch - g.out_w) * kernels);
    }
    zero_run(dt + lay.columns * kernels, 2 * kernels);
}

// Backward with the implicit lowering, per chunk of up to 4 samples, sample by sample, with
// x~ as in the forward pass and d~ the deltas padded in the same layout (K planes, zeros
// around each, and so also in the Fw - 1 positions past each output row's end, which the
// forward product computed and dropped):
//   weight grad:  dW (K x R) += d~' (K x columns) col^T (columns x R) (FORMULAS.md 8.5),
//                 where row k of d~' starts at output position (0, 0) of d~'s plane k, and
//                 column r of col^T is row r of col, read from x~ at offsets[r] and transposed
//                 as the product packs it (gemm_columns); or, for filters three columns
//                 wide and filters in whole vectors, dW^T (R x K) += col dT (columns x K) by
//                 broadcasts from x~ with the deltas transposed (weight_gradient_by_taps),
//                 which needs no d~ when the input gradient is not computed here;
//   input grad:   the full convolution of the deltas with the filters rotated by 180
//                 degrees, channels and filters swapped (FORMULAS.md 8.3 and 8.4),
//                   dx[c][u][v] = sum over k, m, n of W[k][c][Fh-1-m][Fw-1-n] d~[k][u+m][v+n],
//                 the forward pass's product with d~ for x~ (gemm_rows);
//   bias grad:    db[k] += the sum of filter k's deltas.
// No col, no dcol and no col2im: the input and the deltas are each copied once, padded (and
// the deltas once transposed, for the weight gradient by broadcasts).
template <Scalar T, class Before>
void conv2d_backward_implicit(TensorView<const T, 4> x, TensorView<const T, 4> dy, TensorView<const T, 4> w,
                              const ConvGeometry& g, TensorView<T, 4> dx, TensorView<T, 4> dw, std::span<T> db,
                              Scratch<T>& scratch, const Before& before, Accumulate accumulate_dx) {
    const ImplicitLowering lay = implicit_lowering(g);
    const std::size_t samples = x.extent(0), chunks = (samples + conv_chunk - 1) / conv_chunk;
    const std::size_t kernels = g.filters, rows = g.rows(), taps = g.kernel_h * g.kernel_w;
    const std::size_t out_plane = g.out_h * g.out_w, sample_size = kernels * out_plane;
    const std::size_t per_chunk = kernels * rows + kernels, ld = round_up(lay.columns);
    const std::size_t lead = g.pad_h * lay.pitch + g.pad_w;  // output position (0, 0) in a plane of d~
    // The input gradient's full convolution: the deltas for input, C filters of K Fh Fw taps,
    // padding Fh - 1 - Ph = Ph and Fw - 1 - Pw = Pw.
    const ConvGeometry full{kernels, g.out_h, g.out_w, g.channels, g.kernel_h, g.kernel_w, 1,                 1,
                            g.pad_h, g.pad_w, 1,       1,          g.height,   g.width,    Lowering::by_rows, g.width};
    const bool stored = dy.data() != nullptr, want_dx = dx.data() != nullptr;
    const bool by_taps = weight_gradient_by_taps_applies<T>(g);  // else by the product with col^T
    const std::size_t padded_x = lay.padded ? round_up(g.channels * lay.plane) : 0;
    const std::size_t padded_d = lay.padded && (want_dx || !by_taps) ? round_up(kernels * lay.plane) : 0;
    const std::size_t transposed_d = by_taps ? round_up((lay.columns + 4) * kernels) : 0;
    const std::size_t own_deltas = stored ? 0 : round_up(sample_size);
    const std::size_t net_size = want_dx ? round_up(g.channels * ld) : 0;
    const std::size_t edge_size = round_up(gemm_rows_edge_size<T>());
    const std::size_t pack_size = by_taps ? 0 : gemm_pack_size<T>();  // gemm_columns' panels
    const std::size_t per_worker =
        padded_x + padded_d + transposed_d + own_deltas + net_size + edge_size + pack_size;
    const std::size_t partials_size = round_up(chunks * per_chunk);
    const std::size_t packed_size = want_dx ? round_up(packed_a_size<T>(g.channels, full.rows())) : 0;
    const std::size_t staging_size = want_dx ? g.channels * full.rows() : 0;
    const WorkerScratch<T> memory = scratch.per_worker(threads(), per_worker, partials_size + packed_size + staging_size);
    T* const partials = memory.shared;
    T* const rotated = partials + partials_size;
    if (want_dx) {
        // W' (C x K Fh Fw): W'[c][k][m][n] = W[k][c][Fh-1-m][Fw-1-n], packed once for the batch.
        T* const staging = rotated + packed_size;
        const T* const weights = w.data();
        for (std::size_t c = 0; c < g.channels; ++c)
            for (std::size_t k = 0; k < kernels; ++k) {
                const T* filter = weights + (k * g.channels + c) * taps;
                T* flipped = staging + (c * kernels + k) * taps;
                for (std::size_t t = 0; t < taps; ++t) flipped[t] = filter[taps - 1 - t];
            }
        pack_whole_a<T>(g.channels, full.rows(), staging, static_cast<std::ptrdiff_t>(full.rows()), 1, rotated);
    }
    thread_local std::vector<std::size_t> input_offsets, delta_offsets;
    const std::size_t* const at_x = by_taps ? nullptr : implicit_offsets(g, lay, input_offsets);
    const std::size_t* const at_d = want_dx ? implicit_offsets(full, lay, delta_offsets) : nullptr;

    thread_pool().parallel_for(chunks, [&](std::size_t chunk, std::size_t worker) {
        T* const input = memory.worker(worker);
        T* const deltas_padded = input + padded_x;
        T* const dt = deltas_padded + padded_d;
        T* const own = dt + transposed_d;
        T* const net = own + own_deltas;
        T* const edge = net + net_size;
        T* const pack = edge + edge_size;
        T* const dw_part = partials + chunk * per_chunk;
        T* const db_part = dw_part + kernels * rows;
        const auto [first, last] = chunk_samples(chunk, samples);
        for (std::size_t n = first; n < last; ++n) {
            const T* xs = x[n].data();
            const T* deltas = own;
            if (stored)
                deltas = dy.data() + n * sample_size;
            else
                before(n, n + 1, TensorView<T, 4>{own, {1, kernels, g.out_h, g.out_w}});
            const T* ds = deltas;
            if (lay.padded) {
                pad_planes(xs, g, lay, input);
                xs = input;
                if (padded_d != 0) {
                    pad_planes(deltas, full, lay, deltas_padded);
                    ds = deltas_padded;
                }
            }
            const Accumulate add = n > first ? Accumulate::yes : Accumulate::no;
            if (by_taps) {
                transpose_deltas(deltas, g, lay, dt + 2 * kernels);
                weight_gradient_by_taps(xs, g, lay, dt + 2 * kernels, dw_part, add == Accumulate::yes);
            } else {
                gemm_columns<T>(kernels, rows, lay.columns, ds + lead, static_cast<std::ptrdiff_t>(lay.plane), 1, xs,
                                at_x, dw_part, rows, add, pack);
            }
            for (std::size_t k = 0; k < kernels; ++k)
                db_part[k] = (add == Accumulate::yes ? db_part[k] : T{0}) + sum_run(deltas + k * out_plane, out_plane);
            if (!want_dx) continue;
            gemm_rows<T>(g.channels, lay.columns, full.rows(), rotated, ds, at_d, net, ld, Accumulate::no, edge);
            T* const sample = dx[n].data();
            for (std::size_t c = 0; c < g.channels; ++c)
                for (std::size_t u = 0; u < g.height; ++u) {
                    const T* source = net + c * ld + u * lay.pitch;
                    T* target = sample + (c * g.height + u) * g.width;
                    if (accumulate_dx == Accumulate::yes)
                        add_run(source, g.width, target);
                    else
                        copy_run(source, g.width, target);
                }
        }
    });
    add_chunk_gradients<T>(partials, chunks, kernels, rows, by_taps, dw, db);
}

// Backward, per chunk: the chunk's deltas side by side, d (K x 4Q), and its columns, col (R x 4Q);
//   dW_chunk = d col^T (or its transpose),   db_chunk = row sums of d,
//   dcol = W^T d, folded back by col2im.
// The chunks' weight and bias gradients are added in chunk order: the same result for any thread count.
// When dy has a shape but no data, the deltas were never stored: for each sample n the
// chunk calls before(n, n + 1, part) on its own thread, which writes that sample's
// deltas into `part`, one sample's worth of its worker's scratch memory (the layer
// after the convolution computes them there, see ConvActMaxPool), and they are read
// from this core's cache right after.
template <Scalar T, class Before = NoHook>
void conv2d_backward(TensorView<const T, 4> x, TensorView<const T, 4> dy, TensorView<const T, 4> w,
                     const ConvSpec& spec, TensorView<T, 4> dx, TensorView<T, 4> dw, std::span<T> db,
                     Scratch<T>& scratch, const Before& before = {}, Accumulate accumulate_dx = Accumulate::no) {
    const ConvGeometry g = conv_geometry(x.shape(), w.shape(), spec, dy.shape());
    // The input gradient by Winograd's minimal filtering when it applies, after the parameter
    // gradients (FORMULAS.md 8.4 and section 22): with unit strides and no dilation it is a
    // convolution of the deltas with the rotated filters, padded by Fh - 1 - Ph rows and
    // Fw - 1 - Pw columns, as large as the input. Deltas computed sample by sample by `before`
    // are computed once for each of the two passes. Only for 8 input channels or more: with
    // fewer the products have too few rows for the transforms of K planes of deltas to pay
    // (bench_conv, 16 filters of 3x3 on 28x28, the backward pass: on 1 channel 1.10 ms against
    // 0.54, on 2 1.10 against 0.78, on 4 1.62 against 1.53, on 8 2.21 against 2.22).
    // (winograd_applies checks the unit strides and no dilation, which `full` keeps from g.)
    if (dx.data() != nullptr && g.channels >= 8 && g.pad_h < g.kernel_h && g.pad_w < g.kernel_w) {
        ConvGeometry full = g;  // the deltas for input, C filters of K channels each, x's size out
        full.channels = g.filters;
        full.height = g.out_h;
        full.width = g.out_w;
        full.filters = g.channels;
        full.pad_h = g.kernel_h - 1 - g.pad_h;
        full.pad_w = g.kernel_w - 1 - g.pad_w;
        full.out_h = g.height;
        full.out_w = g.width;
        if (winograd_applies(full)) {
            conv2d_backward(x, dy, w, spec, TensorView<T, 4>{nullptr, dx.shape()}, dw, db, scratch, before);
            return winograd_convolution(dy, w.data(), true, std::span<const T>{}, full, dx, accumulate_dx, scratch,
                                        NoHook{}, before);
        }
    }
    if (dx.data() == nullptr && winograd_weight_gradient_applies<T>(g))
        return winograd_weight_gradient(x, dy, g, dw, db, scratch, before);
    if (implicit_backward_applies(g))
        return conv2d_backward_implicit(x, dy, w, g, dx, dw, db, scratch, before, accumulate_dx);
    if (phase_lowering_applies(g))
        return conv2d_backward_phases(x, dy, w, g, dx, dw, db, scratch, before, accumulate_dx);
    const std::size_t samples = x.extent(0), chunks = (samples + conv_chunk - 1) / conv_chunk;
    const std::size_t q = g.positions(), ld = conv_chunk * q, out_plane = g.out_h * g.out_w;
    const std::size_t kernels = g.filters, rows = g.rows(), weight_size = kernels * rows;
    const std::size_t sample_size = kernels * out_plane;
    const bool stored = dy.data() != nullptr;
    const std::size_t own_deltas = stored ? 0 : round_up(sample_size);
    const std::size_t per_worker = round_up((2 * rows + kernels) * ld) + own_deltas + gemm_pack_size<T>();
    const std::size_t per_chunk = weight_size + kernels;
    const WorkerScratch<T> memory = scratch.per_worker(threads(), per_worker, chunks * per_chunk);
    T* const partials = memory.shared;
    const bool want_dx = dx.data() != nullptr;
    // The weight gradient as R x K (col d^T) when that wastes less of the register tiles.
    const bool transposed = gemm_tile_use<T>(rows, kernels) > gemm_tile_use<T>(kernels, rows);
    // Without an input gradient (a first layer) and with the transposed weight gradient, the
    // deltas are laid out transposed (4Q x K) as they are gathered, so that the product reads
    // them in place instead of transposing them again in its packing. (Not with positions W
    // apart, whose unused columns would need zero deltas.)
    const bool transposed_deltas = transposed && !want_dx && g.pitch == g.out_w;

    thread_pool().parallel_for(chunks, [&](std::size_t chunk, std::size_t worker) {
        T* col = memory.worker(worker);
        T* dcol = col + rows * ld;
        T* delta = dcol + rows * ld;
        T* own = col + round_up((2 * rows + kernels) * ld);
        T* pack = own + own_deltas;
        T* dw_part = partials + chunk * per_chunk;
        T* db_part = dw_part + weight_size;
        const auto [first, last] = chunk_samples(chunk, samples);
        // Sample n's deltas: in dy, or computed into `own` now.
        const auto deltas_of = [&](std::size_t n) -> const T* {
            if (stored) return dy.data() + n * sample_size;
            before(n, n + 1, TensorView<T, 4>{own, {1, kernels, g.out_h, g.out_w}});
            return own;
        };
        const std::size_t columns = (last - first) * q;
        const auto lda = static_cast<std::ptrdiff_t>(ld);
        if (transposed_deltas) {
            // d^T (4Q x K), transposed while copied: the B of dW^T = col d^T, read in place.
            for (std::size_t n = first; n < last; ++n) {
                im2col(x[n].data(), g, col, ld, (n - first) * q);
                transpose(deltas_of(n), q, kernels, q, delta + (n - first) * q * kernels, kernels);
            }
            gemm<T>(rows, kernels, columns, col, lda, 1, delta, static_cast<std::ptrdiff_t>(kernels), 1, dw_part,
                    kernels, Accumulate::no, pack);
            std::fill_n(db_part, kernels, T{0});
            for (std::size_t p = 0; p < columns; ++p) add_run(delta + p * kernels, kernels, db_part);
            return;
        }
        for (std::size_t n = first; n < last; ++n) {
            im2col(x[n].data(), g, col, ld, (n - first) * q);
            const T* const deltas = deltas_of(n);
            for (std::size_t k = 0; k < kernels; ++k) {
                const T* source = deltas + k * out_plane;
                T* target = delta + k * ld + (n - first) * q;
                if (g.pitch == g.out_w) {
                    copy_run(source, out_plane, target);
                } else {
                    for (std::size_t i = 0; i < g.out_h; ++i) {
                        copy_run(source + i * g.out_w, g.out_w, target + i * g.pitch);
                        zero_run(target + i * g.pitch + g.out_w, g.pitch - g.out_w);
                    }
                }
            }
        }
        if (transposed)  // dW^T (R x K) = col (R x 4Q) d^T (4Q x K)
            gemm<T>(rows, kernels, columns, col, lda, 1, delta, 1, lda, dw_part, kernels, Accumulate::no, pack);
        else  // dW (K x R) = d (K x 4Q) col^T (4Q x R)
            gemm<T>(kernels, rows, columns, delta, lda, 1, col, 1, lda, dw_part, rows, Accumulate::no, pack);
        for (std::size_t k = 0; k < kernels; ++k) db_part[k] = sum_run(delta + k * ld, columns);
        if (want_dx) {
            // dcol (R x 4Q) = W^T (R x K) d (K x 4Q)
            gemm<T>(rows, columns, kernels, w.data(), 1, static_cast<std::ptrdiff_t>(rows), delta, lda, 1, dcol, ld,
                    Accumulate::no, pack);
            for (std::size_t n = first; n < last; ++n) col2im(dcol, ld, (n - first) * q, g, dx[n].data(), accumulate_dx);
        }
    });
    add_chunk_gradients<T>(partials, chunks, kernels, rows, transposed, dw, db);
}

}  // namespace CNN_KERNEL_VARIANT
}  // namespace cnn::kernels
