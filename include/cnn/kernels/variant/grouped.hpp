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
// so the result is the same for any thread count. A depthwise convolution on planes of up to
// 32 x 32 runs on channels last instead (ChannelsLast, below): a vector holds one position of
// as many channels as it has lanes, so that no lane is wasted on a plane's padding or tail.
// reference::conv2d_forward_general and conv2d_backward_general are the oracle.

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

/// A depthwise convolution (one channel per group, one filter per channel) on channels last:
/// a block of `lanes` channels of one sample is transposed into a zero-padded tile of Hp x Wp
/// positions, each position a vector of the block's channels, so that every output position is
/// one vector of sums with a weight vector per tap, whatever the plane's size: no lane wasted
/// on a plane's padding or tail (a 7 x 7 plane fills a 16-lane vector four times with 49
/// outputs on channels first). The forward sums are those of grouped_plane, term by term in
/// the same order (bias, then the taps row by row), so the bits are too. The backward pass
/// puts the block's deltas on channels last too: the weight and bias gradients are one vector
/// of sums per tap over the sample's outputs, and the error term is scattered tap by tap into
/// a zeroed tile, whose inside goes back to channels first.
struct ChannelsLast {
    std::size_t lanes, padded_h, padded_w;

    ChannelsLast(const GroupShape& g, const ConvSpec& s, std::size_t vector_lanes)
        : lanes(vector_lanes), padded_h(g.height + 2 * s.pad_h), padded_w(g.width + 2 * s.pad_w) {}

    [[nodiscard]] std::size_t tile() const noexcept { return padded_h * padded_w * lanes; }
    [[nodiscard]] std::size_t outputs(const GroupShape& g) const noexcept { return g.out_h * g.out_w * lanes; }
    /// The input tile, the outputs (or deltas), and a vector per tap and for the bias.
    [[nodiscard]] std::size_t worker_memory(const GroupShape& g) const noexcept {
        return tile() + outputs(g) + (g.taps() + 1) * lanes;
    }
    /// That, a second tile for the error term, the inside of that tile (H x W vectors), and a
    /// lanes x lanes block for channels_first.
    [[nodiscard]] std::size_t backward_memory(const GroupShape& g) const noexcept {
        return worker_memory(g) + tile() + g.height * g.width * lanes + lanes * lanes;
    }
    [[nodiscard]] std::size_t blocks(const GroupShape& g) const noexcept { return (g.channels + lanes - 1) / lanes; }
    /// Channels [first(b), first(b) + count(b)) of C form block b.
    [[nodiscard]] std::size_t first(std::size_t block) const noexcept { return block * lanes; }
    [[nodiscard]] std::size_t count(const GroupShape& g, std::size_t block) const noexcept {
        return std::min(lanes, g.channels - block * lanes);
    }
    /// Tap t's offset in the tile from an output's corner, and that corner for output (i, j).
    [[nodiscard]] std::size_t tap(const GroupShape& g, const ConvSpec& s, std::size_t t) const noexcept {
        return (t / g.fw * s.dilation_h * padded_w + t % g.fw * s.dilation_w) * lanes;
    }
    [[nodiscard]] std::size_t corner(const ConvSpec& s, std::size_t i, std::size_t j) const noexcept {
        return (i * s.stride_h * padded_w + j * s.stride_w) * lanes;
    }
};

/// Whether a grouped convolution runs on channels last: depthwise, with vectors of several
/// lanes, at most 32 taps (one register each), on planes of at most 32 x 32 (a tile and its
/// error term stay in the core's caches; measured up to 28 x 28, where at batch 64 it took
/// 0.49 ms forward and 0.91 backward against the planes kernel's 0.59 and 1.39).
template <Scalar T>
bool channels_last(const GroupShape& g) {
    constexpr std::size_t lanes = detail::Vector<T>::lanes;
    return g.group_channels == 1 && g.group_filters == 1 && lanes > 1 && g.taps() <= 32 && g.height * g.width <= 32 * 32;
}

/// The zero-padded tile of block `block` of sample n's planes (rows of `planes`, `rows` x
/// `columns` each, with `pad_h` and `pad_w` zero positions around): all lanes of every position
/// written, zeros past the block's channels.
template <Scalar T>
void fill_tile(const ChannelsLast& cl, const T* planes, std::size_t count, std::size_t rows, std::size_t columns,
               std::size_t pad_h, std::size_t pad_w, T* tile) {
    const std::size_t lanes = cl.lanes, row = cl.padded_w * lanes, plane = rows * columns;
    zero_run(tile, pad_h * row);
    zero_run(tile + (pad_h + rows) * row, (cl.padded_h - pad_h - rows) * row);
    for (std::size_t u = 0; u < rows; ++u) {
        T* const into = tile + (pad_h + u) * row;
        zero_run(into, pad_w * lanes);
        zero_run(into + (pad_w + columns) * lanes, (cl.padded_w - pad_w - columns) * lanes);
    }
    // `lanes` positions of the plane at a time, whatever rows they are on.
    for (std::size_t p = 0; p < plane; p += lanes) {
        const auto place = [&](std::size_t c) {
            const std::size_t at = p + c;
            return tile + ((pad_h + at / columns) * cl.padded_w + pad_w + at % columns) * lanes;
        };
        detail::transpose_block(planes + p, plane, count, std::min(lanes, plane - p), place, true);
    }
}

/// Planes of `count` channels (`plane` values each, at `to`) from the same `plane` positions
/// on channels last (`from`, a vector each), written, or added with Accumulate::yes.
template <Scalar T>
void channels_first(const T* from, std::size_t lanes, std::size_t count, std::size_t plane, T* to,
                    Accumulate accumulate, T* block) {
    for (std::size_t p = 0; p < plane; p += lanes) {
        const std::size_t positions = std::min(lanes, plane - p);
        if (accumulate == Accumulate::no) {
            detail::transpose_block(from + p * lanes, lanes, positions, count,
                                    [&](std::size_t c) { return to + c * plane + p; }, false);
            continue;
        }
        detail::transpose_block(from + p * lanes, lanes, positions, count, [&](std::size_t c) { return block + c * lanes; },
                                false);
        for (std::size_t c = 0; c < count; ++c) add_run(block + c * lanes, positions, to + c * plane + p);
    }
}

/// f(std::integral_constant<std::size_t, 9>) for 3 x 3 filters, else f with 0: the loops
/// below with the tap count known when compiled keep every weight and sum in a register
/// (with a count known only at run time they lived on the stack, a load and a store per tap).
template <class F>
void with_taps(std::size_t taps, const F& f) {
    if (taps == 9)
        f(std::integral_constant<std::size_t, 9>{});
    else
        f(std::integral_constant<std::size_t, 0>{});
}

/// A vector per tap of the block's filters (Taps of them, or with Taps = 0 the filters' count,
/// at most 32): loaded from `from` (a vector per tap) or zero when that is null; and each tap's
/// offset in the tile from an output's corner.
template <std::size_t Taps, Scalar T>
struct TapVectors {
    using V = detail::Vector<T>;
    static constexpr std::size_t capacity = Taps != 0 ? Taps : 32;
    std::size_t count;
    std::size_t offset[capacity];
    typename V::reg vector[capacity];

    TapVectors(const GroupShape& g, const ConvSpec& s, const ChannelsLast& cl, const T* from)
        : count(Taps != 0 ? Taps : g.taps()) {
        for (std::size_t t = 0; t < count; ++t) {
            offset[t] = cl.tap(g, s, t);
            vector[t] = from != nullptr ? V::loadu(from + t * cl.lanes) : V::zero();
        }
    }
};

/// out[e] = bias + sum over the taps of weight t times the tile at output e's tap t, for
/// every output e (weights: a vector per tap, then the bias).
template <std::size_t Taps, Scalar T>
void depthwise_sums(const GroupShape& g, const ConvSpec& s, const ChannelsLast& cl, const T* tile, const T* weights, T* out) {
    using V = detail::Vector<T>;
    const TapVectors<Taps, T> tap(g, s, cl, weights);
    const auto bias = V::loadu(weights + tap.count * cl.lanes);
    for (std::size_t i = 0; i < g.out_h; ++i)
        for (std::size_t j = 0; j < g.out_w; ++j) {
            const T* const corner = tile + cl.corner(s, i, j);
            auto sum = bias;
            for (std::size_t t = 0; t < tap.count; ++t) sum = V::fma(tap.vector[t], V::loadu(corner + tap.offset[t]), sum);
            V::storeu(out + (i * g.out_w + j) * cl.lanes, sum);
        }
}

/// partial = per tap, the sum over the outputs e (in order) of delta[e] times the tile at
/// e's tap; then the sum of the deltas.
template <std::size_t Taps, Scalar T>
void depthwise_gradient_sums(const GroupShape& g, const ConvSpec& s, const ChannelsLast& cl, const T* tile, const T* deltas,
                             T* partial) {
    using V = detail::Vector<T>;
    TapVectors<Taps, T> sums(g, s, cl, nullptr);
    auto bias = V::zero();
    for (std::size_t i = 0; i < g.out_h; ++i)
        for (std::size_t j = 0; j < g.out_w; ++j) {
            const T* const corner = tile + cl.corner(s, i, j);
            const auto delta = V::loadu(deltas + (i * g.out_w + j) * cl.lanes);
            bias = V::add(bias, delta);
            for (std::size_t t = 0; t < sums.count; ++t)
                sums.vector[t] = V::fma(delta, V::loadu(corner + sums.offset[t]), sums.vector[t]);
        }
    for (std::size_t t = 0; t < sums.count; ++t) V::storeu(partial + t * cl.lanes, sums.vector[t]);
    V::storeu(partial + sums.count * cl.lanes, bias);
}

/// errors at output e's tap t += weight t times delta[e], for every output and tap.
template <std::size_t Taps, Scalar T>
void depthwise_scatter(const GroupShape& g, const ConvSpec& s, const ChannelsLast& cl, const T* deltas, const T* weights,
                       T* errors) {
    using V = detail::Vector<T>;
    const TapVectors<Taps, T> tap(g, s, cl, weights);
    for (std::size_t i = 0; i < g.out_h; ++i)
        for (std::size_t j = 0; j < g.out_w; ++j) {
            T* const corner = errors + cl.corner(s, i, j);
            const auto delta = V::loadu(deltas + (i * g.out_w + j) * cl.lanes);
            for (std::size_t t = 0; t < tap.count; ++t)
                V::storeu(corner + tap.offset[t], V::fma(tap.vector[t], delta, V::loadu(corner + tap.offset[t])));
        }
}

/// y[n][c0 + l] for the channels c0 + l < C of block `block` of sample n, on channels last.
template <Scalar T>
void depthwise_block(const GroupShape& g, const ConvSpec& s, const ChannelsLast& cl, const T* x, const T* w,
                     std::span<const T> b, std::size_t n, std::size_t block, T* y, T* memory) {
    const std::size_t lanes = cl.lanes, c0 = cl.first(block), count = cl.count(g, block);
    const std::size_t out_plane = g.out_h * g.out_w, taps = g.taps();
    T* const tile = memory;
    T* const out = tile + cl.tile();
    T* const weights = out + cl.outputs(g);  // taps vectors, then the bias vector
    for (std::size_t l = 0; l < lanes; ++l) {
        for (std::size_t t = 0; t < taps; ++t) weights[t * lanes + l] = l < count ? w[(c0 + l) * taps + t] : T{0};
        weights[taps * lanes + l] = l < count && !b.empty() ? b[c0 + l] : T{0};
    }
    fill_tile(cl, x + (n * g.channels + c0) * g.height * g.width, count, g.height, g.width, s.pad_h, s.pad_w, tile);
    with_taps(taps, [&](auto fixed) { depthwise_sums<fixed()>(g, s, cl, tile, weights, out); });
    channels_first(out, lanes, count, out_plane, y + (n * g.channels + c0) * out_plane, Accumulate::no, tile);
}

/// The backward pass of block `block` of sample n on channels last: this sample's share of
/// the block's weight and bias gradients into `partial` (a vector per tap, then one for the
/// bias: sums over the outputs in order), and, unless dx is null, its error term (written,
/// or added with Accumulate::yes).
template <Scalar T>
void depthwise_block_backward(const GroupShape& g, const ConvSpec& s, const ChannelsLast& cl, const T* x, const T* dy,
                              const T* w, std::size_t n, std::size_t block, T* dx, Accumulate accumulate, T* partial,
                              T* memory) {
    const std::size_t lanes = cl.lanes, c0 = cl.first(block), count = cl.count(g, block);
    const std::size_t in_plane = g.height * g.width, out_plane = g.out_h * g.out_w, taps = g.taps();
    T* const tile = memory;
    T* const deltas = tile + cl.tile();
    T* const weights = deltas + cl.outputs(g);
    T* const errors = weights + (taps + 1) * lanes;  // the error term's tile
    T* const inside = errors + cl.tile();            // its H x W positions, one after another
    fill_tile(cl, x + (n * g.channels + c0) * in_plane, count, g.height, g.width, s.pad_h, s.pad_w, tile);
    const T* const planes = dy + (n * g.filters + c0) * out_plane;
    for (std::size_t p = 0; p < out_plane; p += lanes)
        detail::transpose_block(planes + p, out_plane, count, std::min(lanes, out_plane - p),
                                [&](std::size_t c) { return deltas + (p + c) * lanes; }, true);
    with_taps(taps, [&](auto fixed) { depthwise_gradient_sums<fixed()>(g, s, cl, tile, deltas, partial); });
    if (dx == nullptr) return;

    for (std::size_t l = 0; l < lanes; ++l)
        for (std::size_t t = 0; t < taps; ++t) weights[t * lanes + l] = l < count ? w[(c0 + l) * taps + t] : T{0};
    zero_run(errors, cl.tile());
    with_taps(taps, [&](auto fixed) { depthwise_scatter<fixed()>(g, s, cl, deltas, weights, errors); });
    for (std::size_t u = 0; u < g.height; ++u)
        copy_run(errors + ((s.pad_h + u) * cl.padded_w + s.pad_w) * lanes, g.width * lanes, inside + u * g.width * lanes);
    channels_first(inside, lanes, count, in_plane, dx + (n * g.channels + c0) * in_plane, accumulate,
                   inside + in_plane * lanes);
}

/// y[n][k] = b[k] + sum over the Cg channels c of k's group and the taps (m, q) of
/// w[k][c'][m][q] x~[n][c][i Sh + m Dh][j Sw + q Dw], for every plane (n, k) over the pool.
/// Each element is summed in the order bias, channel, tap row, tap column. When y has a shape
/// but no data, the output goes to scratch memory, and after(0, N, output) is called with it.
template <Scalar T, class After>
void grouped_conv2d_forward(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b,
                            const ConvSpec& s, TensorView<T, 4> y, Scratch<T>& scratch, const After& after) {
    const GroupShape g(x, w, y.shape());
    if (channels_last<T>(g)) {
        const ChannelsLast cl(g, s, detail::Vector<T>::lanes);
        const WorkerScratch<T> memory =
            scratch.per_worker(threads(), cl.worker_memory(g), y.data() == nullptr ? y.size() : 0);
        if (y.data() == nullptr) y = TensorView<T, 4>{memory.shared, y.shape()};
        const std::size_t blocks = cl.blocks(g);
        thread_pool().parallel_for(g.batch * blocks, [&](std::size_t task, std::size_t worker) {
            depthwise_block(g, s, cl, x.data(), w.data(), b, task / blocks, task % blocks, y.data(), memory.worker(worker));
        });
        after(std::size_t{0}, g.batch, TensorView<const T, 4>{y});
        return;
    }
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
    if (channels_last<T>(g)) {
        // Each task (sample, block) leaves its share of the gradients in `partial`; then each
        // channel adds them up sample by sample: the same sums for any thread count.
        const ChannelsLast cl(g, s, detail::Vector<T>::lanes);
        const std::size_t blocks = cl.blocks(g), vectors = (g.taps() + 1) * cl.lanes;
        const std::size_t deltas = dy.data() == nullptr ? dy.size() : 0;
        const WorkerScratch<T> memory = scratch.per_worker(threads(), cl.backward_memory(g), deltas + g.batch * blocks * vectors);
        T* const partial = memory.shared + deltas;
        if (dy.data() == nullptr) {
            const TensorView<T, 4> part{memory.shared, dy.shape()};
            before(std::size_t{0}, g.batch, part);
            dy = part;
        }
        thread_pool().parallel_for(g.batch * blocks, [&](std::size_t task, std::size_t worker) {
            depthwise_block_backward(g, s, cl, x.data(), dy.data(), w.data(), task / blocks, task % blocks, dx.data(),
                                     accumulate_dx, partial + task * vectors, memory.worker(worker));
        });
        thread_pool().parallel_for(blocks, [&](std::size_t block, std::size_t) {
            for (std::size_t l = 0; l < cl.count(g, block); ++l) {
                const std::size_t c = cl.first(block) + l;
                for (std::size_t t = 0; t <= g.taps(); ++t) {
                    if (t == g.taps() && db.empty()) break;
                    T sum{0};
                    for (std::size_t n = 0; n < g.batch; ++n) sum += partial[(n * blocks + block) * vectors + t * cl.lanes + l];
                    (t < g.taps() ? dw.data()[c * g.taps() + t] : db[c]) += sum;
                }
            }
        });
        return;
    }
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
