// The grouped convolution behind Conv2D with groups > 1 (FORMULAS.md section 20), by direct
// summation: a depthwise 3x3 convolution has 9 multiply-adds per output and one input channel
// per filter, too little work for a matrix product (im2col would copy each input 9 times to
// multiply it by a 1 x 9 matrix). The input plane is zero-padded and split by the stride into
// phase planes (see Phases), after which every tap of every output is one unit-stride read at
// a fixed offset, whatever the stride and dilation: a tap is a vector operation over the whole
// plane, and a run of one vector's outputs keeps its sum in a register across all the taps
// (weighted_taps), with one store at the end. The error term is the same sum over the deltas
// (a gather, again in registers) and the weight gradient a dot product per tap (tap_dots, up to
// nine taps per pass over the plane). Every element is summed in one fixed order on one thread,
// so the result is the same for any thread count. reference::conv2d_forward_general and
// conv2d_backward_general are the oracle.

namespace cnn::kernels {
namespace CNN_KERNEL_VARIANT {

/// The shapes of a grouped convolution, from its tensors: C = G Cg input channels, K = G Kg filters.
struct GroupShape {
    std::size_t batch, channels, height, width, filters, out_h, out_w, fh, fw, group_channels, group_filters;

    template <Scalar T>
    GroupShape(TensorView<const T, 4> x, TensorView<const T, 4> w, const Shape<4>& y)
        : batch(x.extent(0)), channels(x.extent(1)), height(x.extent(2)), width(x.extent(3)), filters(w.extent(0)),
          out_h(y[2]), out_w(y[3]), fh(w.extent(2)), fw(w.extent(3)), group_channels(w.extent(1)),
          group_filters(w.extent(0) / (x.extent(1) / w.extent(1))) {}

    [[nodiscard]] std::size_t taps() const noexcept { return fh * fw; }
};

inline constexpr std::size_t grouped_planes_per_task = 4;

/// The zero-padded input x~ (Hp x Wp, Hp = H + 2 Ph) split into Sh Sw phase planes: phase
/// (a, b) holds x~[r Sh + a][c Sw + b] at r Wq + c, for Hq = ceil(Hp / Sh) rows and Wq =
/// ceil(Wp / Sw) columns. Tap (m, q) of output (i, j) reads x~[i Sh + m Dh][j Sw + q Dw], which
/// is phase (m Dh mod Sh, q Dw mod Sw) at (i + floor(m Dh / Sh)) Wq + j + floor(q Dw / Sw). So
/// with the outputs laid out Wq apart too (output element e = i Wq + j; the columns j >= W2 are
/// not outputs and nobody reads them), tap (m, q) of every output e is element e + tap(m Dh, q Dw)
/// of the phase planes. With stride 1 there is one phase, the padded plane itself. `slack`
/// elements after each plane keep the reads of the last row's non-output columns inside it.
struct Phases {
    std::size_t sh, sw, rows, columns, slack;

    Phases(const GroupShape& g, const ConvSpec& s)
        : sh(s.stride_h), sw(s.stride_w), rows((g.height + 2 * s.pad_h + sh - 1) / sh),
          columns((g.width + 2 * s.pad_w + sw - 1) / sw), slack((g.fw - 1) * s.dilation_w / sw) {}

    [[nodiscard]] std::size_t plane() const noexcept { return rows * columns + slack; }
    [[nodiscard]] std::size_t planes() const noexcept { return sh * sw; }
    /// The phase planes, and with a stride above 1 one padded row for fill_phases.
    [[nodiscard]] std::size_t size() const noexcept { return planes() * plane() + (unit() ? 0 : columns * sw); }
    [[nodiscard]] bool unit() const noexcept { return sh == 1 && sw == 1; }
    /// Where in the phase planes output 0's tap reads, for a tap (m Dh, q Dw) down and right.
    [[nodiscard]] std::size_t tap(std::size_t down, std::size_t right) const noexcept {
        if (unit()) return down * columns + right;  // (no division in the common case)
        return (down % sh * sw + right % sw) * plane() + down / sh * columns + right / sw;
    }
};

/// Writes the phase planes of input plane `in` (H x W) into `to` (Phases::size() elements).
template <Scalar T>
void fill_phases(const T* in, const GroupShape& g, const ConvSpec& s, const Phases& p, T* to) {
    if (p.unit()) {  // the padded plane: zeros, each row, and zeros from its end to the next row's start
        zero_run(to, s.pad_h * p.columns + s.pad_w);
        for (std::size_t u = 0; u < g.height; ++u) {
            T* const row = to + (u + s.pad_h) * p.columns + s.pad_w;
            copy_run(in + u * g.width, g.width, row);
            if (u + 1 < g.height) zero_run(row + g.width, 2 * s.pad_w);
        }
        const std::size_t filled = (g.height - 1 + s.pad_h) * p.columns + s.pad_w + g.width;
        zero_run(to + filled, p.plane() - filled);
        return;
    }
    // Each padded row once into a row of Wq Sw values (`wide`, after the planes), then dealt
    // out to the Sw phases of its row phase; a stride of 2 as one loop the compiler vectorises.
    T* const wide = to + p.planes() * p.plane();
    const std::size_t wide_size = p.columns * p.sw;
    for (std::size_t padded_row = 0; padded_row < p.rows * p.sh; ++padded_row) {
        T* const first = to + padded_row % p.sh * p.sw * p.plane() + padded_row / p.sh * p.columns;
        if (padded_row < s.pad_h || padded_row - s.pad_h >= g.height) {
            for (std::size_t b = 0; b < p.sw; ++b) zero_run(first + b * p.plane(), p.columns);
            continue;
        }
        zero_run(wide, s.pad_w);
        copy_run(in + (padded_row - s.pad_h) * g.width, g.width, wide + s.pad_w);
        zero_run(wide + s.pad_w + g.width, wide_size - s.pad_w - g.width);
        if (p.sw == 2) {
            T* __restrict const even = first;
            T* __restrict const odd = first + p.plane();
            for (std::size_t c = 0; c < p.columns; ++c) {
                even[c] = wide[2 * c];
                odd[c] = wide[2 * c + 1];
            }
            continue;
        }
        for (std::size_t b = 0; b < p.sw; ++b)
            for (std::size_t c = 0; c < p.columns; ++c) first[b * p.plane() + c] = wide[c * p.sw + b];
    }
    for (std::size_t phase = 0; phase < p.planes(); ++phase)
        zero_run(to + phase * p.plane() + p.rows * p.columns, p.slack);
}

/// out[e] = start + sum over the taps t, in order, of weight[t] source[t][e], for e in [0, count),
/// where start is `first` or (with add) out[e]: one vector of outputs at a time, its sum in a
/// register across the taps.
template <Scalar T>
void weighted_taps(const T* const* source, const T* weight, std::size_t taps, std::size_t count, T* out, bool add,
                   T first) {
    using V = detail::Vector<T>;
    std::size_t e = 0;
    for (; e + V::lanes <= count; e += V::lanes) {
        auto sum = add ? V::loadu(out + e) : V::broadcast(&first);
        for (std::size_t t = 0; t < taps; ++t) sum = V::fma(V::broadcast(weight + t), V::loadu(source[t] + e), sum);
        V::storeu(out + e, sum);
    }
    if (e < count) {
        const std::size_t n = count - e;
        auto sum = add ? V::loadu(out + e, n) : V::broadcast(&first);
        for (std::size_t t = 0; t < taps; ++t)
            sum = V::fma(V::broadcast(weight + t), V::loadu(source[t] + e, n), sum);
        V::storeu(out + e, sum, n);
    }
}

/// weighted_taps over any number of taps, `block` at a time: a list of taps is collected with
/// add(source, weight) and summed into out by finish().
template <Scalar T>
class TapSum {
public:
    static constexpr std::size_t block = 32;

    TapSum(std::size_t count, T* out, bool add, T first) : count_(count), out_(out), add_(add), first_(first) {}
    void add(const T* source, T weight) {
        if (size_ == block) flush();
        source_[size_] = source;
        weight_[size_++] = weight;
    }
    void finish() { flush(); }

private:
    void flush() {
        weighted_taps(source_.data(), weight_.data(), size_, count_, out_, add_, first_);
        add_ = true;
        size_ = 0;
    }

    std::size_t count_;
    T* out_;
    bool add_;
    T first_;
    std::array<const T*, block> source_;  // (filled before read: no need to clear them)
    std::array<T, block> weight_;
    std::size_t size_ = 0;
};

/// sums[t][lane] += the lanes of sum over e in [0, count) of d[e] source[t][e], for Taps taps
/// in one pass over d.
template <std::size_t Taps, Scalar T>
void tap_dots(const T* d, const T* const* source, std::size_t count, T* sums) {
    using V = detail::Vector<T>;
    typename V::reg acc[Taps];
    for (std::size_t t = 0; t < Taps; ++t) acc[t] = V::loadu(sums + t * V::lanes);
    std::size_t e = 0;
    for (; e + V::lanes <= count; e += V::lanes) {
        const auto delta = V::loadu(d + e);
        for (std::size_t t = 0; t < Taps; ++t) acc[t] = V::fma(delta, V::loadu(source[t] + e), acc[t]);
    }
    if (e < count) {
        const std::size_t n = count - e;
        const auto delta = V::loadu(d + e, n);
        for (std::size_t t = 0; t < Taps; ++t) acc[t] = V::fma(delta, V::loadu(source[t] + e, n), acc[t]);
    }
    for (std::size_t t = 0; t < Taps; ++t) V::storeu(sums + t * V::lanes, acc[t]);
}

/// The memory one worker of a grouped convolution uses: the phase planes of an input plane and
/// an output plane laid out as they are (forward, weight gradient, plus the weight gradient's
/// lane sums), or the phase planes of an input gradient and the deltas laid out for the gather
/// (see grouped_input_gradient).
struct GroupedLayout {
    Phases phases;
    std::size_t outputs;                   ///< out_h Wq: an output plane laid out Wq apart
    std::size_t gather_width, top, left;  ///< Wd = Wq + left; the deltas' margins
    std::size_t deltas;                    ///< (Hq + top) Wd + left

    GroupedLayout(const GroupShape& g, const ConvSpec& s)
        : phases(g, s), outputs(g.out_h * phases.columns), gather_width(phases.columns + phases.slack),
          top((g.fh - 1) * s.dilation_h / s.stride_h), left(phases.slack),
          deltas((phases.rows + top) * gather_width + left) {}

    template <Scalar T>
    [[nodiscard]] std::size_t worker_memory(const GroupShape& g) const noexcept {
        const std::size_t forward = phases.size() + outputs + g.taps() * detail::Vector<T>::lanes;
        const std::size_t gather = phases.sh * phases.sw * phases.rows * gather_width + deltas;
        return std::max(forward, gather);
    }
};

/// One output plane (n, k): for each channel of k's group, its phase planes, then every tap.
template <Scalar T>
void grouped_plane(const GroupShape& g, const ConvSpec& s, const GroupedLayout& l, const T* x, const T* w, T bias,
                   std::size_t n, std::size_t k, T* out, T* memory) {
    const Phases& p = l.phases;
    T* const phases = memory;
    T* const sums = memory + p.size();
    const std::size_t first_channel = k / g.group_filters * g.group_channels;
    for (std::size_t c = 0; c < g.group_channels; ++c) {
        fill_phases(x + (n * g.channels + first_channel + c) * g.height * g.width, g, s, p, phases);
        const T* const taps = w + (k * g.group_channels + c) * g.taps();
        TapSum<T> sum(l.outputs, sums, c > 0, bias);
        for (std::size_t m = 0; m < g.fh; ++m)
            for (std::size_t q = 0; q < g.fw; ++q) {
                const std::size_t down = m * s.dilation_h, right = q * s.dilation_w;
                sum.add(phases + p.tap(down, right), taps[m * g.fw + q]);
            }
        sum.finish();
    }
    for (std::size_t i = 0; i < g.out_h; ++i) copy_run(sums + i * p.columns, g.out_w, out + i * g.out_w);
}

/// y[n][k] = b[k] + sum over the Cg channels c of k's group and the taps (m, q) of
/// w[k][c'][m][q] x~[n][c][i Sh + m Dh][j Sw + q Dw], for every plane (n, k) over the pool.
/// Each element is summed in the order bias, channel, tap row, tap column. When y has a shape
/// but no data, the output goes to scratch memory, and after(0, N, output) is called with it.
template <Scalar T, class After>
void grouped_conv2d_forward(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b,
                            const ConvSpec& s, TensorView<T, 4> y, Scratch<T>& scratch, const After& after) {
    const GroupShape g(x, w, y.shape());
    const GroupedLayout layout(g, s);
    const WorkerScratch<T> memory =
        scratch.per_worker(threads(), layout.worker_memory<T>(g), y.data() == nullptr ? y.size() : 0);
    if (y.data() == nullptr) y = TensorView<T, 4>{memory.shared, y.shape()};
    const std::size_t planes = g.batch * g.filters;
    const std::size_t tasks = (planes + grouped_planes_per_task - 1) / grouped_planes_per_task;
    thread_pool().parallel_for(tasks, [&](std::size_t task, std::size_t worker) {
        const std::size_t end = std::min(planes, (task + 1) * grouped_planes_per_task);
        for (std::size_t plane = task * grouped_planes_per_task; plane < end; ++plane) {
            const std::size_t n = plane / g.filters, k = plane % g.filters;
            grouped_plane(g, s, layout, x.data(), w.data(), b.empty() ? T{0} : b[k], n, k,
                          y.data() + plane * g.out_h * g.out_w, memory.worker(worker));
        }
    });
    after(std::size_t{0}, g.batch, TensorView<const T, 4>{y});
}

/// The error term of input plane (n, channel), by gathering: padded input position
/// (r Sh + a, c Sw + b) gets w[k][c'][m][q] delta[r - floor(m Dh / Sh)][c - floor(q Dw / Sw)]
/// from each filter k of the group and each tap (m, q) of phase (a, b). The deltas are laid out
/// Wd = Wq + left apart with `top` zero rows above and `left` zero columns before each row, so
/// that every tap again reads one fixed offset for the whole plane; phase (a, b)'s sums are
/// laid out Wd apart too. Only the rows of each phase that hold input positions are summed.
template <Scalar T>
void grouped_input_gradient(const GroupShape& g, const ConvSpec& s, const GroupedLayout& l, const T* dy, const T* w,
                            std::size_t n, std::size_t channel, T* grad, Accumulate accumulate, T* memory) {
    const Phases& p = l.phases;
    const std::size_t wd = l.gather_width, phase_plane = p.rows * wd;
    T* const sums = memory;
    T* const deltas = memory + p.sh * p.sw * phase_plane;
    const std::size_t group = channel / g.group_channels, c = channel % g.group_channels;
    // the rows [first_row[a], last_row[a]) of phase a hold padded rows Ph <= r Sh + a < Ph + H
    const auto first_row = [&](std::size_t a) { return a >= s.pad_h ? 0 : (s.pad_h - a + p.sh - 1) / p.sh; };
    const auto last_row = [&](std::size_t a) {
        return std::min(p.rows, s.pad_h + g.height > a ? (s.pad_h + g.height - a + p.sh - 1) / p.sh : 0);
    };
    for (std::size_t k = group * g.group_filters; k < (group + 1) * g.group_filters; ++k) {
        const T* const delta = dy + (n * g.filters + k) * g.out_h * g.out_w;
        zero_run(deltas, l.top * wd + l.left);
        for (std::size_t i = 0; i < g.out_h; ++i) {
            T* const row = deltas + (l.top + i) * wd + l.left;
            copy_run(delta + i * g.out_w, g.out_w, row);
            zero_run(row + g.out_w, wd - g.out_w);  // this row's end and the next row's margin
        }
        const std::size_t used = (l.top + g.out_h) * wd + l.left;
        zero_run(deltas + used, l.deltas - used);
        const T* const taps = w + (k * g.group_channels + c) * g.taps();
        const bool add = k > group * g.group_filters;
        for (std::size_t a = 0; a < p.sh; ++a) {
            const std::size_t r0 = first_row(a), r1 = std::max(r0, last_row(a));
            for (std::size_t b = 0; b < p.sw; ++b) {
                T* const out = sums + (a * p.sw + b) * phase_plane + r0 * wd;
                TapSum<T> sum((r1 - r0) * wd, out, add, T{0});
                for (std::size_t m = 0; m < g.fh; ++m) {
                    if (m * s.dilation_h % p.sh != a) continue;
                    for (std::size_t q = 0; q < g.fw; ++q) {
                        if (q * s.dilation_w % p.sw != b) continue;
                        const std::size_t up = m * s.dilation_h / p.sh, back = q * s.dilation_w / p.sw;
                        sum.add(deltas + (l.top - up + r0) * wd + l.left - back, taps[m * g.fw + q]);
                    }
                }
                sum.finish();
            }
        }
    }
    for (std::size_t u = 0; u < g.height; ++u) {
        const std::size_t row = u + s.pad_h;
        T* const target = grad + u * g.width;
        if (p.sw == 1) {
            const T* const from = sums + (row % p.sh) * phase_plane + row / p.sh * wd + s.pad_w;
            if (accumulate == Accumulate::no)
                copy_run(from, g.width, target);
            else
                add_run(from, g.width, target);
            continue;
        }
        for (std::size_t v = 0; v < g.width; ++v) {
            const std::size_t column = v + s.pad_w;
            const T value = sums[(row % p.sh * p.sw + column % p.sw) * phase_plane + row / p.sh * wd + column / p.sw];
            target[v] = accumulate == Accumulate::no ? value : target[v] + value;
        }
    }
}

/// dw[k][c'][m][q] += sum over the samples n and the outputs e of delta[n][k][e] times tap
/// (m, q)'s input: the deltas laid out Wq apart (zeros in the columns that are not outputs),
/// each tap a dot product with one phase plane at its offset, nine taps per pass, in lanes
/// summed over the whole batch and added up lane by lane at the end.
template <Scalar T>
void grouped_weight_gradient(const GroupShape& g, const ConvSpec& s, const GroupedLayout& l, const T* x, const T* dy,
                             std::size_t k, T* dw, T* memory) {
    using V = detail::Vector<T>;
    const Phases& p = l.phases;
    T* const phases = memory;
    T* const deltas = memory + p.size();
    T* const lanes = deltas + l.outputs;
    const std::size_t first_channel = k / g.group_filters * g.group_channels;
    std::array<const T*, 9> source{};
    for (std::size_t c = 0; c < g.group_channels; ++c) {
        std::fill_n(lanes, g.taps() * V::lanes, T{0});
        for (std::size_t n = 0; n < g.batch; ++n) {
            const T* const delta = dy + (n * g.filters + k) * g.out_h * g.out_w;
            for (std::size_t i = 0; i < g.out_h; ++i) {
                copy_run(delta + i * g.out_w, g.out_w, deltas + i * p.columns);
                zero_run(deltas + i * p.columns + g.out_w, p.columns - g.out_w);
            }
            fill_phases(x + (n * g.channels + first_channel + c) * g.height * g.width, g, s, p, phases);
            for (std::size_t t = 0; t < g.taps();) {
                const std::size_t count = g.taps() - t >= 9 ? 9 : g.taps() - t >= 3 ? 3 : 1;
                for (std::size_t u = 0; u < count; ++u) {
                    const std::size_t down = (t + u) / g.fw * s.dilation_h, right = (t + u) % g.fw * s.dilation_w;
                    source[u] = phases + p.tap(down, right);
                }
                T* const into = lanes + t * V::lanes;
                if (count == 9)
                    tap_dots<9>(deltas, source.data(), l.outputs, into);
                else if (count == 3)
                    tap_dots<3>(deltas, source.data(), l.outputs, into);
                else
                    tap_dots<1>(deltas, source.data(), l.outputs, into);
                t += count;
            }
        }
        T* const grads = dw + (k * g.group_channels + c) * g.taps();
        for (std::size_t t = 0; t < g.taps(); ++t) {
            T sum{0};
            for (std::size_t lane = 0; lane < V::lanes; ++lane) sum += lanes[t * V::lanes + lane];
            grads[t] += sum;
        }
    }
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
    const GroupedLayout layout(g, s);
    const std::size_t in_plane = g.height * g.width, out_plane = g.out_h * g.out_w;
    const WorkerScratch<T> memory =
        scratch.per_worker(threads(), layout.worker_memory<T>(g), dy.data() == nullptr ? dy.size() : 0);
    if (dy.data() == nullptr) {
        const TensorView<T, 4> part{memory.shared, dy.shape()};
        before(std::size_t{0}, g.batch, part);
        dy = part;
    }
    if (dx.data() != nullptr) {
        const std::size_t planes = g.batch * g.channels;
        const std::size_t tasks = (planes + grouped_planes_per_task - 1) / grouped_planes_per_task;
        thread_pool().parallel_for(tasks, [&](std::size_t task, std::size_t worker) {
            const std::size_t end = std::min(planes, (task + 1) * grouped_planes_per_task);
            for (std::size_t plane = task * grouped_planes_per_task; plane < end; ++plane)
                grouped_input_gradient(g, s, layout, dy.data(), w.data(), plane / g.channels, plane % g.channels,
                                       dx.data() + plane * in_plane, accumulate_dx, memory.worker(worker));
        });
    }
    thread_pool().parallel_for(g.filters, [&](std::size_t k, std::size_t worker) {
        if (!db.empty())
            for (std::size_t n = 0; n < g.batch; ++n) db[k] += sum_run(dy.data() + (n * g.filters + k) * out_plane, out_plane);
        grouped_weight_gradient(g, s, layout, x.data(), dy.data(), k, dw.data(), memory.worker(worker));
    });
}

}  // namespace CNN_KERNEL_VARIANT
}  // namespace cnn::kernels
