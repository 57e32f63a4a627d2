// One variant of the loops behind BatchNorm2D (FORMULAS.md section 15): included by
// cnn/kernels/variants.hpp once per instruction set, so that the compiler vectorises the same
// portable C++ with AVX-512 or AVX2 where the processor has them (compiled for the baseline
// alone, the sums in double ran two to an SSE2 register). See cnn/kernels/normalization.hpp
// for what each computes. Channels are independent and each is summed by one thread, so the
// results do not depend on the thread count.

namespace cnn::kernels {
namespace CNN_KERNEL_VARIANT {

/// A sum in A (double for the statistics) over 32 fixed lanes, so that the additions form
/// independent chains: with one register of lanes, every vector add waited for the last
/// (4 cycles for 8 values), slower than memory. Of a run of `count` values, value k goes to
/// lane k mod 32 while 32 remain, then to lane k mod 8 while 8 remain, and the last few to
/// tail lane k mod 8 one by one (apart, so that the vector lanes stay in registers from run
/// to run: a scalar add into them cost a failed store forwarding per 7 x 7 plane). At the end
/// tail lane i is added to lane i, and the lanes pairwise. The same values in the same runs
/// give the same bits, on any thread count.
template <class A = double>
class LaneSum {
public:
    static constexpr std::size_t width = 32;

    /// Adds f(k) for k in [0, count).
    template <class F>
    void add(std::size_t count, const F& f) noexcept {
        std::size_t k = 0;
        for (; k + width <= count; k += width)
            for (std::size_t lane = 0; lane < width; ++lane) lanes_[lane] += f(k + lane);
        for (; k + 8 <= count; k += 8)
            for (std::size_t lane = 0; lane < 8; ++lane) lanes_[lane] += f(k + lane);
        for (; k < count; ++k) tail_[k % 8] += f(k);
    }
    [[nodiscard]] A total() const noexcept {
        std::array<A, width> sums = lanes_;
        for (std::size_t lane = 0; lane < 8; ++lane) sums[lane] += tail_[lane];
        for (std::size_t half = width / 2; half > 0; half /= 2)
            for (std::size_t lane = 0; lane < half; ++lane) sums[lane] += sums[lane + half];
        return sums[0];
    }

private:
    std::array<A, width> lanes_{};
    std::array<A, 8> tail_{};
};

/// f(first element, plane size) for each plane (n, c) of channel c: its N planes, in order.
template <class F>
void for_each_plane_of_channel(const Shape<4>& shape, std::size_t c, const F& f) {
    const std::size_t plane = shape[2] * shape[3];
    for (std::size_t n = 0; n < shape[0]; ++n) f((n * shape[1] + c) * plane, plane);
}

/// Mean and biased variance of every channel (two passes, the second about the mean).
template <Scalar T>
void channel_statistics(const T* x, const Shape<4>& shape, std::span<double> mean, std::span<double> variance) {
    const double m = static_cast<double>(shape[0] * shape[2] * shape[3]);
    parallel_blocks(shape[1], 1, [&](std::size_t begin, std::size_t end) {
        for (std::size_t c = begin; c < end; ++c) {
            LaneSum<> sum;
            for_each_plane_of_channel(shape, c, [&](std::size_t first, std::size_t plane) {
                const T* in = x + first;
                sum.add(plane, [in](std::size_t k) { return static_cast<double>(in[k]); });
            });
            const double mu = sum.total() / m;
            LaneSum<> squares;
            for_each_plane_of_channel(shape, c, [&](std::size_t first, std::size_t plane) {
                const T* in = x + first;
                squares.add(plane, [in, mu](std::size_t k) {
                    const double d = static_cast<double>(in[k]) - mu;
                    return d * d;
                });
            });
            mean[c] = mu;
            variance[c] = squares.total() / m;
        }
    });
}

/// The deltas a ReLU passes back: out[k] = gate[k] > 0 ? dy[k] : 0 for k < n (dy read whatever
/// the gate says, then selected: a load only where gate > 0 does not vectorise).
template <Scalar T>
void gated_deltas(const T* __restrict dy, const T* __restrict gate, std::size_t n, T* __restrict out) {
    for (std::size_t k = 0; k < n; ++k) {
        const T d = dy[k];
        out[k] = gate[k] > T{0} ? d : T{0};
    }
}

/// out[k] = max(0, a (x[k] - center) + offset) for k < n, max as ReLU's forward takes it
/// (y > 0 ? y : 0). Its own function, with out and x apart: inline in channel_affine the loop
/// ran one value at a time.
template <Scalar T>
void rectified_affine(const T* __restrict x, std::size_t n, T a, T center, T offset, T* __restrict out) {
    for (std::size_t k = 0; k < n; ++k) {
        const T y = a * (x[k] - center) + offset;
        out[k] = y > T{0} ? y : T{0};
    }
}

/// Per channel: sum of dy, and sum of dy (x - center) scale. With a gate (the output of a ReLU
/// after the normalisation), the deltas that ReLU passes back (dy where gate > 0, else 0) are
/// written to `gated` (x's shape) plane by plane and summed from there: the sums the two layers
/// one after the other give, and `gated` is then the dy of the error term.
template <Scalar T>
void channel_gradient_sums(const T* x, const T* dy, const Shape<4>& shape, std::span<const double> center,
                           std::span<const double> scale, std::span<double> sum_dy, std::span<double> sum_dy_x_hat,
                           const T* gate = nullptr, T* gated = nullptr) {
    parallel_blocks(shape[1], 1, [&](std::size_t begin, std::size_t end) {
        for (std::size_t c = begin; c < end; ++c) {
            LaneSum<> plain, weighted;
            const double mu = center[c], s = scale[c];
            for_each_plane_of_channel(shape, c, [&](std::size_t first, std::size_t plane) {
                const T* d = dy + first;
                if (gate != nullptr) {
                    gated_deltas(d, gate + first, plane, gated + first);
                    d = gated + first;
                }
                const T* in = x + first;
                plain.add(plane, [d](std::size_t k) { return static_cast<double>(d[k]); });
                weighted.add(plane, [in, d, mu, s](std::size_t k) {
                    return static_cast<double>(d[k]) * ((static_cast<double>(in[k]) - mu) * s);
                });
            });
            sum_dy[c] = plain.total();
            sum_dy_x_hat[c] = weighted.total();
        }
    });
}

/// out = a_c (x - center_c) + b_c dy + offset_c element by element (dy may be null when every
/// b_c is 0), max(0, that) with f.rectify; out += that with Accumulate::yes. Plane by plane
/// over the pool.
template <Scalar T>
void channel_affine(const T* x, const T* dy, const Shape<4>& shape, const ChannelAffine<T>& f, T* out,
                    Accumulate accumulate = Accumulate::no) {
    const std::size_t plane = shape[2] * shape[3], channels = shape[1];
    const std::size_t planes_per_task = std::max<std::size_t>(1, (std::size_t{1} << 14) / std::max<std::size_t>(plane, 1));
    parallel_blocks(shape[0] * channels, planes_per_task, [&](std::size_t begin, std::size_t end) {
        for (std::size_t p = begin; p < end; ++p) {
            const std::size_t c = p % channels, first = p * plane;
            const T center = f.center[c], a = f.a[c], b = f.b[c], offset = f.offset[c];
            const T* in = x + first;
            T* o = out + first;
            if (dy == nullptr) {
                if (f.rectify)
                    rectified_affine(in, plane, a, center, offset, o);
                else if (accumulate == Accumulate::yes)
                    for (std::size_t k = 0; k < plane; ++k) o[k] += a * (in[k] - center) + offset;
                else
                    for (std::size_t k = 0; k < plane; ++k) o[k] = a * (in[k] - center) + offset;
            } else {
                const T* d = dy + first;
                if (accumulate == Accumulate::yes)
                    for (std::size_t k = 0; k < plane; ++k) o[k] += a * (in[k] - center) + b * d[k] + offset;
                else
                    for (std::size_t k = 0; k < plane; ++k) o[k] = a * (in[k] - center) + b * d[k] + offset;
            }
        }
    });
}

}  // namespace CNN_KERNEL_VARIANT
}  // namespace cnn::kernels
