// The grouped convolution behind Conv2D with groups > 1 (FORMULAS.md section 20), by direct
// summation over each output plane: a depthwise 3x3 convolution has 9 multiply-adds per
// output and one input channel per filter, too little work for a matrix product (im2col
// would copy each input 9 times to multiply it by a 1 x 9 matrix). Each tap is a row
// operation, out_row[j] += w * in_row[j Sw + offset] over the columns it reaches. When output
// and input rows line up (stride 1, "same" width: MobileNet's depthwise step), a tap is one
// long loop over the whole plane, out[e] += w * in[e + offset], and the few border columns,
// where that loop wraps into the neighbouring row, are computed again exactly. Every element
// is summed in one fixed order (channel, tap row, tap column) on one thread, so the result is
// the same for any thread count. reference::conv2d_forward_general and
// conv2d_backward_general are the oracle.

namespace cnn::kernels {
namespace CNN_KERNEL_VARIANT {

/// The outputs [first, last) along one axis whose tap at `offset` (m D for tap m) reads the
/// input, 0 <= o S + offset - P < size: the range the row loops run over without a test.
struct TapRange {
    std::size_t first, last;
};

inline TapRange tap_range(std::size_t outputs, std::size_t size, std::size_t stride, std::size_t offset,
                          std::size_t pad) {
    // o S + offset >= P  <=>  o >= ceil((P - offset) / S) when offset < P
    const std::size_t first = offset >= pad ? 0 : (pad - offset + stride - 1) / stride;
    // o S + offset - P <= size - 1  <=>  o <= (size - 1 + P - offset) / S
    if (size + pad <= offset) return {0, 0};
    const std::size_t last = std::min(outputs, (size - 1 + pad - offset) / stride + 1);
    return {std::min(first, last), last};
}

/// The shapes of a grouped convolution, from its tensors: C = G Cg input channels, K = G Kg filters.
struct GroupShape {
    std::size_t batch, channels, height, width, filters, out_h, out_w, fh, fw, group_channels, group_filters;

    template <Scalar T>
    GroupShape(TensorView<const T, 4> x, TensorView<const T, 4> w, const Shape<4>& y)
        : batch(x.extent(0)), channels(x.extent(1)), height(x.extent(2)), width(x.extent(3)), filters(w.extent(0)),
          out_h(y[2]), out_w(y[3]), fh(w.extent(2)), fw(w.extent(3)), group_channels(w.extent(1)),
          group_filters(w.extent(0) / (x.extent(1) / w.extent(1))) {}
};

inline constexpr std::size_t grouped_planes_per_task = 4;

/// The stride-1 path works on zero-padded copies of the planes, Hp x Wp (Hp = H + 2 Ph, Wp =
/// W + 2 Pw), with the output rows Wp apart too: then tap (m, q) of output element e = i Wp + j
/// reads padded element e + m Dh Wp + q Dw, and a tap is one loop over the whole plane with no
/// test and no border, out[e] += w * in[e + offset]. The Wp - W2 extra columns of each output
/// row take values nobody reads. `slack` elements after each buffer keep the last row's reads
/// inside it.
struct PaddedPlanes {
    std::size_t padded_h, padded_w, slack;

    PaddedPlanes(const GroupShape& g, const ConvSpec& s)
        : padded_h(g.height + 2 * s.pad_h), padded_w(g.width + 2 * s.pad_w), slack((g.fw - 1) * s.dilation_w + 1) {}
    [[nodiscard]] std::size_t size() const noexcept { return padded_h * padded_w + slack; }
};

inline bool unit_stride(const ConvSpec& s) { return s.stride_h == 1 && s.stride_w == 1; }

/// Copies plane `from` (height x width) into the middle of the zeroed padded buffer `to`.
template <Scalar T>
void pad_plane(const T* from, std::size_t height, std::size_t width, const ConvSpec& s, const PaddedPlanes& p, T* to) {
    std::fill_n(to, p.size(), T{0});
    for (std::size_t u = 0; u < height; ++u)
        std::copy_n(from + u * width, width, to + (u + s.pad_h) * p.padded_w + s.pad_w);
}

/// sum_e a[e] b[e] in eight running lanes (then the lanes in order, then the tail): a fixed
/// order, so the same on every thread, that the compiler can vectorise.
template <Scalar T>
struct LaneDot {
    T lanes[8]{};
    T tail{};

    void add(const T* __restrict a, const T* __restrict b, std::size_t count) {
        std::size_t e = 0;
        for (; e + 8 <= count; e += 8)
            for (std::size_t l = 0; l < 8; ++l) lanes[l] += a[e + l] * b[e + l];
        for (; e < count; ++e) tail += a[e] * b[e];
    }
    [[nodiscard]] T total() const {
        T sum = tail;
        for (const T lane : lanes) sum += lane;
        return sum;
    }
};

/// The scratch memory a grouped convolution asks for: per worker, a padded input plane and a
/// padded output (or gradient) plane for the stride-1 path.
inline std::size_t grouped_worker_memory(const GroupShape& g, const ConvSpec& s) {
    return unit_stride(s) ? 2 * PaddedPlanes(g, s).size() : 0;
}

/// One output plane (n, k), stride 1 on both axes: on padded copies (see PaddedPlanes).
template <Scalar T>
void grouped_plane_unit_stride(const GroupShape& g, const ConvSpec& s, const T* x, const T* w, T bias, std::size_t n,
                               std::size_t k, T* out, T* memory) {
    const PaddedPlanes p(g, s);
    T* const padded = memory;
    T* __restrict const sums = memory + p.size();
    const std::size_t count = g.out_h * p.padded_w;  // output elements, rows Wp apart
    std::fill_n(sums, count, bias);
    const std::size_t first_channel = k / g.group_filters * g.group_channels;
    for (std::size_t c = 0; c < g.group_channels; ++c) {
        pad_plane(x + (n * g.channels + first_channel + c) * g.height * g.width, g.height, g.width, s, p, padded);
        const T* const taps = w + (k * g.group_channels + c) * g.fh * g.fw;
        for (std::size_t m = 0; m < g.fh; ++m)
            for (std::size_t q = 0; q < g.fw; ++q) {
                const T weight = taps[m * g.fw + q];
                const T* __restrict const in = padded + m * s.dilation_h * p.padded_w + q * s.dilation_w;
                for (std::size_t e = 0; e < count; ++e) sums[e] += weight * in[e];
            }
    }
    for (std::size_t i = 0; i < g.out_h; ++i) std::copy_n(sums + i * p.padded_w, g.out_w, out + i * g.out_w);
}

/// One output plane (n, k), any stride: each tap a loop over the output columns it reaches.
template <Scalar T>
void grouped_plane(const GroupShape& g, const ConvSpec& s, const T* x, const T* w, T bias, std::size_t n,
                   std::size_t k, T* out) {
    std::fill_n(out, g.out_h * g.out_w, bias);
    const std::size_t first_channel = k / g.group_filters * g.group_channels;
    for (std::size_t c = 0; c < g.group_channels; ++c) {
        const T* const in = x + (n * g.channels + first_channel + c) * g.height * g.width;
        const T* const taps = w + (k * g.group_channels + c) * g.fh * g.fw;
        for (std::size_t m = 0; m < g.fh; ++m) {
            const TapRange rows = tap_range(g.out_h, g.height, s.stride_h, m * s.dilation_h, s.pad_h);
            for (std::size_t q = 0; q < g.fw; ++q) {
                const TapRange cols = tap_range(g.out_w, g.width, s.stride_w, q * s.dilation_w, s.pad_w);
                const T weight = taps[m * g.fw + q];
                const std::size_t shift = q * s.dilation_w;
                for (std::size_t i = rows.first; i < rows.last; ++i) {
                    T* __restrict const o = out + i * g.out_w;
                    // input row u = i Sh + m Dh - Ph, column v = j Sw + q Dw - Pw
                    const T* __restrict const row = in + (i * s.stride_h + m * s.dilation_h - s.pad_h) * g.width;
                    for (std::size_t j = cols.first; j < cols.last; ++j)
                        o[j] += weight * row[j * s.stride_w + shift - s.pad_w];
                }
            }
        }
    }
}

/// y[n][k] = b[k] + sum over the Cg channels c of k's group and the taps (m, q) of
/// w[k][c'][m][q] x~[n][c][i Sh + m Dh][j Sw + q Dw], for every plane (n, k) over the pool.
/// Each element is summed in the order bias, channel, tap row, tap column. When y has a shape
/// but no data, the output goes to scratch memory, and after(0, N, output) is called with it.
template <Scalar T, class After>
void grouped_conv2d_forward(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b,
                            const ConvSpec& s, TensorView<T, 4> y, Scratch<T>& scratch, const After& after) {
    const GroupShape g(x, w, y.shape());
    const WorkerScratch<T> memory =
        scratch.per_worker(threads(), grouped_worker_memory(g, s), y.data() == nullptr ? y.size() : 0);
    if (y.data() == nullptr) y = TensorView<T, 4>{memory.shared, y.shape()};
    const std::size_t planes = g.batch * g.filters;
    const std::size_t tasks = (planes + grouped_planes_per_task - 1) / grouped_planes_per_task;
    thread_pool().parallel_for(tasks, [&](std::size_t task, std::size_t worker) {
        const std::size_t end = std::min(planes, (task + 1) * grouped_planes_per_task);
        for (std::size_t plane = task * grouped_planes_per_task; plane < end; ++plane) {
            const std::size_t n = plane / g.filters, k = plane % g.filters;
            T* const out = y.data() + plane * g.out_h * g.out_w;
            const T bias = b.empty() ? T{0} : b[k];
            if (unit_stride(s))
                grouped_plane_unit_stride(g, s, x.data(), w.data(), bias, n, k, out, memory.worker(worker));
            else
                grouped_plane(g, s, x.data(), w.data(), bias, n, k, out);
        }
    });
    after(std::size_t{0}, g.batch, TensorView<const T, 4>{y});
}

/// dx[n][c] = sum over the filters k of c's group and their taps of w[k][c'][m][q] times the
/// deltas of plane (n, k) placed where that tap read (written, or added with Accumulate::yes;
/// skipped when dx is null); dw[k] += sum over samples and positions of delta x~, db[k] += sum
/// of delta (one task per filter, the samples in order: the same sums for any thread count).
/// When dy has a shape but no data, before(0, N, part) first writes the deltas into scratch memory.
template <Scalar T, class Before>
void grouped_conv2d_backward(TensorView<const T, 4> x, TensorView<const T, 4> dy, TensorView<const T, 4> w,
                             const ConvSpec& s, TensorView<T, 4> dx, TensorView<T, 4> dw, std::span<T> db,
                             Scratch<T>& scratch, const Before& before, Accumulate accumulate_dx) {
    const GroupShape g(x, w, dy.shape());
    const std::size_t in_plane = g.height * g.width, out_plane = g.out_h * g.out_w;
    const WorkerScratch<T> memory =
        scratch.per_worker(threads(), grouped_worker_memory(g, s), dy.data() == nullptr ? dy.size() : 0);
    if (dy.data() == nullptr) {
        const TensorView<T, 4> part{memory.shared, dy.shape()};
        before(std::size_t{0}, g.batch, part);
        dy = part;
    }
    const PaddedPlanes p(g, s);
    if (dx.data() != nullptr) {
        const std::size_t planes = g.batch * g.channels;
        const std::size_t tasks = (planes + grouped_planes_per_task - 1) / grouped_planes_per_task;
        thread_pool().parallel_for(tasks, [&](std::size_t task, std::size_t worker) {
            const std::size_t end = std::min(planes, (task + 1) * grouped_planes_per_task);
            for (std::size_t plane = task * grouped_planes_per_task; plane < end; ++plane) {
                const std::size_t n = plane / g.channels, channel = plane % g.channels;
                const std::size_t group = channel / g.group_channels, c = channel % g.group_channels;
                T* const grad = dx.data() + plane * in_plane;
                if (unit_stride(s)) {
                    // The padded gradient gets each delta (rows Wp apart, the extra columns 0)
                    // through each tap; its middle is dx.
                    T* const deltas = memory.worker(worker);
                    T* __restrict const sums = deltas + p.size();
                    const std::size_t count = g.out_h * p.padded_w;
                    std::fill_n(sums, p.size(), T{0});
                    for (std::size_t k = group * g.group_filters; k < (group + 1) * g.group_filters; ++k) {
                        std::fill_n(deltas, p.size(), T{0});
                        const T* const delta = dy.data() + (n * g.filters + k) * out_plane;
                        for (std::size_t i = 0; i < g.out_h; ++i)
                            std::copy_n(delta + i * g.out_w, g.out_w, deltas + i * p.padded_w);
                        const T* const taps = w.data() + (k * g.group_channels + c) * g.fh * g.fw;
                        for (std::size_t m = 0; m < g.fh; ++m)
                            for (std::size_t q = 0; q < g.fw; ++q) {
                                const T weight = taps[m * g.fw + q];
                                T* __restrict const to = sums + m * s.dilation_h * p.padded_w + q * s.dilation_w;
                                const T* __restrict const from = deltas;
                                for (std::size_t e = 0; e < count; ++e) to[e] += weight * from[e];
                            }
                    }
                    for (std::size_t u = 0; u < g.height; ++u) {
                        const T* const row = sums + (u + s.pad_h) * p.padded_w + s.pad_w;
                        T* const target = grad + u * g.width;
                        if (accumulate_dx == Accumulate::no)
                            std::copy_n(row, g.width, target);
                        else
                            for (std::size_t v = 0; v < g.width; ++v) target[v] += row[v];
                    }
                    continue;
                }
                if (accumulate_dx == Accumulate::no) std::fill_n(grad, in_plane, T{0});
                for (std::size_t k = group * g.group_filters; k < (group + 1) * g.group_filters; ++k) {
                    const T* const delta = dy.data() + (n * g.filters + k) * out_plane;
                    const T* const taps = w.data() + (k * g.group_channels + c) * g.fh * g.fw;
                    for (std::size_t m = 0; m < g.fh; ++m) {
                        const TapRange rows = tap_range(g.out_h, g.height, s.stride_h, m * s.dilation_h, s.pad_h);
                        for (std::size_t q = 0; q < g.fw; ++q) {
                            const TapRange cols = tap_range(g.out_w, g.width, s.stride_w, q * s.dilation_w, s.pad_w);
                            const T weight = taps[m * g.fw + q];
                            const std::size_t shift = q * s.dilation_w;
                            for (std::size_t i = rows.first; i < rows.last; ++i) {
                                const T* __restrict const d = delta + i * g.out_w;
                                T* __restrict const row = grad + (i * s.stride_h + m * s.dilation_h - s.pad_h) * g.width;
                                for (std::size_t j = cols.first; j < cols.last; ++j)
                                    row[j * s.stride_w + shift - s.pad_w] += weight * d[j];
                            }
                        }
                    }
                }
            }
        });
    }
    thread_pool().parallel_for(g.filters, [&](std::size_t k, std::size_t worker) {
        const std::size_t first_channel = k / g.group_filters * g.group_channels;
        T* const padded = memory.worker(worker);
        for (std::size_t n = 0; n < g.batch; ++n) {
            const T* const delta = dy.data() + (n * g.filters + k) * out_plane;
            if (!db.empty()) {
                T sum{0};
                for (std::size_t e = 0; e < out_plane; ++e) sum += delta[e];
                db[k] += sum;
            }
            for (std::size_t c = 0; c < g.group_channels; ++c) {
                const T* const in = x.data() + (n * g.channels + first_channel + c) * in_plane;
                T* const grads = dw.data() + (k * g.group_channels + c) * g.fh * g.fw;
                if (unit_stride(s)) {  // each tap a dot product of the deltas with a window of the padded input
                    pad_plane(in, g.height, g.width, s, p, padded);
                    for (std::size_t m = 0; m < g.fh; ++m)
                        for (std::size_t q = 0; q < g.fw; ++q) {
                            LaneDot<T> dot;
                            for (std::size_t i = 0; i < g.out_h; ++i)
                                dot.add(delta + i * g.out_w, padded + (i + m * s.dilation_h) * p.padded_w + q * s.dilation_w,
                                        g.out_w);
                            grads[m * g.fw + q] += dot.total();
                        }
                    continue;
                }
                for (std::size_t m = 0; m < g.fh; ++m) {
                    const TapRange rows = tap_range(g.out_h, g.height, s.stride_h, m * s.dilation_h, s.pad_h);
                    for (std::size_t q = 0; q < g.fw; ++q) {
                        const TapRange cols = tap_range(g.out_w, g.width, s.stride_w, q * s.dilation_w, s.pad_w);
                        const std::size_t shift = q * s.dilation_w;
                        T sum{0};
                        for (std::size_t i = rows.first; i < rows.last; ++i) {
                            const T* __restrict const d = delta + i * g.out_w;
                            const T* __restrict const row = in + (i * s.stride_h + m * s.dilation_h - s.pad_h) * g.width;
                            for (std::size_t j = cols.first; j < cols.last; ++j)
                                sum += d[j] * row[j * s.stride_w + shift - s.pad_w];
                        }
                        grads[m * g.fw + q] += sum;
                    }
                }
            }
        }
    });
}

}  // namespace CNN_KERNEL_VARIANT
}  // namespace cnn::kernels
