// Convolutions with strides above 1 (and no dilation) lowered on the input's phases
// (FORMULAS.md section 23), in both passes. Tap (m, n) of output (i, j) reads the padded input
// x~[i Sh + m][j Sw + n], which is phase (m mod Sh, n mod Sw) of x~ at (i + floor(m / Sh),
// j + floor(n / Sw)), where phase (a, b) holds x~[a + Sh u][b + Sw v] at (u, v). With each
// phase plane laid out `pitch` apart and the output positions too (q = i pitch + j), row
// r = (c, m, n) of im2col's col is the run of phase (m mod Sh, n mod Sw) of channel c that
// starts at floor(m / Sh) pitch + floor(n / Sw): the products read col where it lies, as the
// implicit lowering does for unit strides (conv2d_forward_implicit), and the input is copied
// once, dealt out to its phases, instead of Fh Fw / (Sh Sw) times over by im2col, which for
// a stride of 2 gathers every second value of short rows (the ResNet's 3x3 downsampling took
// longer in im2col than in its product). A chunk of samples lies one after the other in each
// phase plane, so that one product covers them all (7x7 outputs are 49 positions a sample).
//
//   forward:      net (K x columns) = W (K x R) col, read in place (gemm_rows), then each
//                 sample's output rows (plus bias) copied out of net's rows;
//   weight grad:  dW (K x R) += d~ (K x columns) col^T, col's rows transposed as the
//                 product packs them (gemm_columns), with d~ the deltas laid out as the
//                 positions are (zero at the positions that are not outputs);
//   input grad:   dcol (R x columns) = W^T (R x K) d~ (gemm_rows, d~'s rows in place), each
//                 row of dcol added back onto its run of the phase planes (col2im, where each
//                 row is one run), and the phase planes dealt back into dx;
//   bias grad:    db[k] += the sum of filter k's deltas.
// Only the phases some tap reads are kept: with a 1x1 filter and stride 2 one phase of four.

namespace cnn::kernels {
namespace CNN_KERNEL_VARIANT {

using detail::deal_pairs;
using detail::merge_pairs;

/// Where the phase lowering runs: a stride above 1 on either axis, no dilation, and sums of at
/// least 64 terms (the implicit lowering's bound; shorter sums, such as a first layer's on one
/// channel, stay on the im2col product).
inline bool phase_lowering_applies(const ConvGeometry& g) noexcept {
    return (g.stride_h > 1 || g.stride_w > 1) && g.dilation_h == 1 && g.dilation_w == 1 && g.out_h > 0 &&
           g.out_w > 0 && g.rows() >= 64;
}

struct PhaseLowering {
    std::size_t phases_h, phases_w;  // the phases some tap reads: min(S, F) per axis
    std::size_t rows, pitch;         // one sample's phase: ceil((H + 2Ph) / Sh) x ceil((W + 2Pw) / Sw)
    std::size_t block;               // rows pitch: a sample's values in a phase plane
    std::size_t chunk;               // samples per chunk
    std::size_t phase_plane;         // chunk blocks: one phase of one channel (or one filter's deltas)
    std::size_t plane;               // phases_h phases_w phase planes: one channel

    /// Where row r = (c, m, n) of col starts in the phase planes.
    [[nodiscard]] std::size_t offset(const ConvGeometry& g, std::size_t r) const noexcept {
        const std::size_t taps = g.kernel_h * g.kernel_w, c = r / taps, m = r % taps / g.kernel_w, n = r % g.kernel_w;
        return c * plane + (m % g.stride_h * phases_w + n % g.stride_w) * phase_plane + m / g.stride_h * pitch +
               n / g.stride_w;
    }
    /// Output positions of a chunk of `samples` samples: its last one, plus one.
    [[nodiscard]] std::size_t columns(const ConvGeometry& g, std::size_t samples) const noexcept {
        return (samples - 1) * block + (g.out_h - 1) * pitch + g.out_w;
    }
};

inline PhaseLowering phase_lowering(const ConvGeometry& g) noexcept {
    PhaseLowering lay{};
    lay.phases_h = std::min(g.stride_h, g.kernel_h);
    lay.phases_w = std::min(g.stride_w, g.kernel_w);
    lay.rows = (g.height + 2 * g.pad_h + g.stride_h - 1) / g.stride_h;
    lay.pitch = (g.width + 2 * g.pad_w + g.stride_w - 1) / g.stride_w;
    lay.block = lay.rows * lay.pitch;
    // At least 256 positions per product (a 15 x 15 phase: 2 samples).
    lay.chunk = std::max<std::size_t>(1, (256 + lay.block - 1) / lay.block);
    lay.phase_plane = lay.chunk * lay.block;
    lay.plane = lay.phases_h * lay.phases_w * lay.phase_plane;
    return lay;
}

/// The columns [first, last) of phase column b that hold input values: b + Sw v - Pw in [0, W).
inline std::pair<std::size_t, std::size_t> phase_columns(const ConvGeometry& g, const PhaseLowering& lay,
                                                         std::size_t b) {
    const std::size_t first = g.pad_w > b ? (g.pad_w - b + g.stride_w - 1) / g.stride_w : 0;
    const std::size_t last =
        g.width + g.pad_w > b ? std::min(lay.pitch, (g.width + g.pad_w - b + g.stride_w - 1) / g.stride_w) : 0;
    return {std::min(first, last), last};
}

/// Sample x's phases, as sample `s` of the chunk, into the phase planes `out`: phase (a, b) of
/// channel c gets x~[c][a + Sh u][b + Sw v] at s block + u pitch + v for the input values
/// only. The padding's zeros lie in the same places for every chunk, so the caller writes them
/// once, before a worker's first chunk (zero_phases_once).
template <Scalar T>
void split_phases(const T* __restrict x, const ConvGeometry& g, const PhaseLowering& lay, std::size_t s,
                  T* __restrict out) {
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t u = 0; u < g.height; ++u) {
            const std::size_t padded_row = u + g.pad_h, a = padded_row % g.stride_h;
            if (a >= lay.phases_h) continue;
            const T* const in = x + (c * g.height + u) * g.width;
            T* const row =
                out + c * lay.plane + a * lay.phases_w * lay.phase_plane + s * lay.block + padded_row / g.stride_h * lay.pitch;
            if (g.stride_w == 2 && lay.phases_w == 2) {
                // Input column v is padded column v + Pw: the even ones go to one phase, the odd
                // ones to the other.
                deal_pairs(in, g.width, row + g.pad_w % 2 * lay.phase_plane + g.pad_w / 2,
                           row + (g.pad_w + 1) % 2 * lay.phase_plane + (g.pad_w + 1) / 2);
                continue;
            }
            for (std::size_t b = 0; b < lay.phases_w; ++b) {
                const auto [first, last] = phase_columns(g, lay, b);
                if (first < last)
                    copy_strided(in + (b + g.stride_w * first - g.pad_w), last - first, g.stride_w,
                                 row + b * lay.phase_plane + first);
            }
        }
}

/// dx (C x H x W) (+)= the input values' gradients in phase planes laid out as split_phases
/// lays out sample `s` (the phases no tap reads hold zeros, and are not stored).
template <Scalar T>
void merge_phases(const T* __restrict phases, const ConvGeometry& g, const PhaseLowering& lay, std::size_t s,
                  T* __restrict dx, Accumulate accumulate) {
    const bool add = accumulate == Accumulate::yes;
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t u = 0; u < g.height; ++u) {
            T* __restrict const target = dx + (c * g.height + u) * g.width;
            const std::size_t padded_row = u + g.pad_h, a = padded_row % g.stride_h;
            if (a >= lay.phases_h) {
                if (!add) zero_run(target, g.width);
                continue;
            }
            const T* const row =
                phases + c * lay.plane + a * lay.phases_w * lay.phase_plane + s * lay.block + padded_row / g.stride_h * lay.pitch;
            if (g.stride_w == 2 && lay.phases_w == 2) {  // split_phases' deal backwards
                merge_pairs(row + g.pad_w % 2 * lay.phase_plane + g.pad_w / 2,
                            row + (g.pad_w + 1) % 2 * lay.phase_plane + (g.pad_w + 1) / 2, g.width, target, add);
                continue;
            }
            if (!add) zero_run(target, g.width);
            for (std::size_t b = 0; b < lay.phases_w; ++b) {
                // The first column v of phase column b: (v + Pw) mod Sw = b.
                const std::size_t v = (b + g.stride_w - g.pad_w % g.stride_w) % g.stride_w;
                if (v >= g.width) continue;
                add_strided(row + b * lay.phase_plane + (v + g.pad_w) / g.stride_w,
                            (g.width - v + g.stride_w - 1) / g.stride_w, g.stride_w, target + v);
            }
        }
}

/// Writes the padding's zeros into a worker's phase planes before its first chunk of a call
/// (`zeroed`, its flag in the call's shared memory, set to 0 before the chunks): split_phases
/// writes the input values only, in the same places for every chunk.
template <Scalar T>
void zero_phases_once(T& zeroed, T* phases, const ConvGeometry& g, const PhaseLowering& lay) {
    if (zeroed != T{0}) return;
    zero_run(phases, g.channels * lay.plane);
    zeroed = T{1};
}

// Forward on the phases, chunk by chunk of samples: the filters packed once for the batch; per
// chunk its samples' phases, one product, and each sample's output rows (plus bias), then
// after(n, n + 1, part) as conv2d_forward calls it.
template <Scalar T, class After>
void conv2d_forward_phases(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b,
                           const ConvGeometry& g, TensorView<T, 4> y, Scratch<T>& scratch, const After& after) {
    const PhaseLowering lay = phase_lowering(g);
    const std::size_t samples = x.extent(0), chunks = (samples + lay.chunk - 1) / lay.chunk, rows = g.rows();
    const std::size_t ld = round_up(lay.columns(g, lay.chunk)), sample_size = g.filters * g.out_h * g.out_w;
    const bool stored = y.data() != nullptr;
    const std::size_t phases_size = round_up(g.channels * lay.plane), net_size = round_up(g.filters * ld);
    const std::size_t own_output = stored ? 0 : round_up(sample_size);
    const std::size_t per_worker = phases_size + net_size + own_output + gemm_rows_edge_size<T>();
    const std::size_t packed_size = round_up(packed_a_size<T>(g.filters, rows));
    const WorkerScratch<T> memory = scratch.per_worker(threads(), per_worker, packed_size + threads());
    pack_whole_a<T>(g.filters, rows, w.data(), static_cast<std::ptrdiff_t>(rows), 1, memory.shared);
    T* const zeroed = memory.shared + packed_size;  // per worker: 1 once its planes' padding is zero
    std::fill_n(zeroed, threads(), T{0});
    thread_local std::vector<std::size_t> offset_memory;
    const std::size_t* const offsets = implicit_offsets(g, lay, offset_memory);
    thread_pool().parallel_for(chunks, [&](std::size_t chunk, std::size_t worker) {
        T* const phases = memory.worker(worker);
        T* const net = phases + phases_size;
        T* const own = net + net_size;
        T* const edge = own + own_output;
        const std::size_t first = chunk * lay.chunk, last = std::min(samples, first + lay.chunk);
        zero_phases_once(zeroed[worker], phases, g, lay);
        for (std::size_t n = first; n < last; ++n) split_phases(x[n].data(), g, lay, n - first, phases);
        gemm_rows<T>(g.filters, lay.columns(g, last - first), rows, memory.shared, phases, offsets, net, ld,
                     Accumulate::no, edge);
        for (std::size_t n = first; n < last; ++n) {
            T* const part = stored ? y.data() + n * sample_size : own;
            store_output(net + (n - first) * lay.block, ld, lay.pitch, g, b, part);
            after(n, n + 1, TensorView<const T, 4>{part, {1, g.filters, g.out_h, g.out_w}});
        }
    });
}

// Backward on the phases, chunk by chunk: per chunk its samples' phases and deltas (d~, laid
// out as the positions), the chunk's weight and bias gradients, and with dx the input
// gradient through dcol, folded back onto phase planes of its own and dealt out into dx. The
// chunks' gradients are added in chunk order, so the result is the same for any thread count.
// Deltas that dy does not hold are computed sample by sample by before(n, n + 1, part), as
// conv2d_backward's `before`.
template <Scalar T, class Before>
void conv2d_backward_phases(TensorView<const T, 4> x, TensorView<const T, 4> dy, TensorView<const T, 4> w,
                            const ConvGeometry& g, TensorView<T, 4> dx, TensorView<T, 4> dw, std::span<T> db,
                            Scratch<T>& scratch, const Before& before, Accumulate accumulate_dx) {
    const PhaseLowering lay = phase_lowering(g);
    const std::size_t samples = x.extent(0), chunks = (samples + lay.chunk - 1) / lay.chunk, rows = g.rows();
    const std::size_t kernels = g.filters, out_plane = g.out_h * g.out_w, sample_size = kernels * out_plane;
    const std::size_t ld = round_up(lay.columns(g, lay.chunk)), per_chunk = kernels * rows + kernels;
    const bool stored = dy.data() != nullptr, want_dx = dx.data() != nullptr;
    const std::size_t phases_size = round_up(g.channels * lay.plane), deltas_size = round_up(kernels * lay.phase_plane);
    const std::size_t own_deltas = stored ? 0 : round_up(sample_size), dcol_size = want_dx ? round_up(rows * ld) : 0;
    const std::size_t sums_size = want_dx ? phases_size : 0;
    const std::size_t per_worker = phases_size + deltas_size + own_deltas + dcol_size + sums_size +
                                   round_up(gemm_rows_edge_size<T>()) + gemm_pack_size<T>();
    const std::size_t partials_size = round_up(chunks * per_chunk);
    const std::size_t packed_size = want_dx ? round_up(packed_a_size<T>(rows, kernels)) : 0;
    const WorkerScratch<T> memory = scratch.per_worker(threads(), per_worker, partials_size + packed_size + threads());
    T* const partials = memory.shared;
    T* const packed = partials + partials_size;  // W^T (R x K), packed once for the batch
    if (want_dx) pack_whole_a<T>(rows, kernels, w.data(), 1, static_cast<std::ptrdiff_t>(rows), packed);
    T* const zeroed = packed + packed_size;  // per worker: 1 once its planes' padding is zero
    std::fill_n(zeroed, threads(), T{0});
    thread_local std::vector<std::size_t> input_offsets, delta_offsets;
    const std::size_t* const at_x = implicit_offsets(g, lay, input_offsets);
    delta_offsets.resize(std::max(delta_offsets.size(), kernels));
    for (std::size_t k = 0; k < kernels; ++k) delta_offsets[k] = k * lay.phase_plane;
    const std::size_t* const at_d = delta_offsets.data();

    thread_pool().parallel_for(chunks, [&](std::size_t chunk, std::size_t worker) {
        T* const phases = memory.worker(worker);
        T* const deltas = phases + phases_size;
        T* const own = deltas + deltas_size;
        T* const dcol = own + own_deltas;
        T* const sums = dcol + dcol_size;  // the input gradient's phase planes
        T* const edge = sums + sums_size;
        T* const pack = edge + round_up(gemm_rows_edge_size<T>());
        T* const dw_part = partials + chunk * per_chunk;
        T* const db_part = dw_part + kernels * rows;
        const std::size_t first = chunk * lay.chunk, last = std::min(samples, first + lay.chunk);
        zero_phases_once(zeroed[worker], phases, g, lay);
        for (std::size_t n = first; n < last; ++n) {
            split_phases(x[n].data(), g, lay, n - first, phases);
            const T* source = own;
            if (stored)
                source = dy.data() + n * sample_size;
            else
                before(n, n + 1, TensorView<T, 4>{own, {1, kernels, g.out_h, g.out_w}});
            for (std::size_t k = 0; k < kernels; ++k) {
                const T* const plane = source + k * out_plane;
                T* const block = deltas + k * lay.phase_plane + (n - first) * lay.block;
                for (std::size_t i = 0; i < g.out_h; ++i) {
                    copy_run(plane + i * g.out_w, g.out_w, block + i * lay.pitch);
                    zero_run(block + i * lay.pitch + g.out_w, lay.pitch - g.out_w);
                }
                zero_run(block + g.out_h * lay.pitch, (lay.rows - g.out_h) * lay.pitch);
                db_part[k] = (n > first ? db_part[k] : T{0}) + sum_run(plane, out_plane);
            }
        }
        const std::size_t columns = lay.columns(g, last - first);
        gemm_columns<T>(kernels, rows, columns, deltas, static_cast<std::ptrdiff_t>(lay.phase_plane), 1, phases, at_x,
                        dw_part, rows, Accumulate::no, pack);
        if (!want_dx) return;
        gemm_rows<T>(rows, columns, kernels, packed, deltas, at_d, dcol, ld, Accumulate::no, edge);
        zero_run(sums, g.channels * lay.plane);
        for (std::size_t r = 0; r < rows; ++r) add_run(dcol + r * ld, columns, sums + at_x[r]);
        for (std::size_t n = first; n < last; ++n) merge_phases(sums, g, lay, n - first, dx[n].data(), accumulate_dx);
    });
    add_chunk_gradients<T>(partials, chunks, kernels, rows, false, dw, db);
}

}  // namespace CNN_KERNEL_VARIANT
}  // namespace cnn::kernels
