// The loops behind BatchNorm2D and GlobalAvgPool (FORMULAS.md sections 15 and 17) on
// N x C x H x W batches, spread over the thread pool. They are bound by memory traffic,
// not arithmetic, so they are written once in portable C++ that the compiler vectorises,
// not per instruction set like the convolution's kernels.
//
// Sums over a channel run in double (GlobalAvgPool: in T) on eight fixed lanes (element k of each plane goes to
// lane k mod 8), so that they vectorise; channels are independent and each is summed by one
// thread, so the results do not depend on the thread count. cnn/reference/normalization.hpp
// sums in one lane, and so may differ in the last bits.
#pragma once

#include <array>
#include <cstddef>
#include <span>

#include "cnn/kernels/threads.hpp"
#include "cnn/tensor.hpp"

namespace cnn::kernels {

/// A sum over eight lanes in A (double for the statistics): value k of a plane goes to lane
/// k mod 8, and the lanes are added pairwise at the end.
template <class A = double>
class LaneSum {
public:
    /// Adds f(k) for k in [0, count), eight at a time.
    template <class F>
    void add(std::size_t count, const F& f) noexcept {
        std::size_t k = 0;
        for (; k + 8 <= count; k += 8)
            for (std::size_t lane = 0; lane < 8; ++lane) lanes_[lane] += f(k + lane);
        for (; k < count; ++k) lanes_[k % 8] += f(k);
    }
    [[nodiscard]] A total() const noexcept {
        return ((lanes_[0] + lanes_[1]) + (lanes_[2] + lanes_[3])) + ((lanes_[4] + lanes_[5]) + (lanes_[6] + lanes_[7]));
    }

private:
    std::array<A, 8> lanes_{};
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

/// Per channel: sum of dy, and sum of dy (x - center) scale.
template <Scalar T>
void channel_gradient_sums(const T* x, const T* dy, const Shape<4>& shape, std::span<const double> center,
                           std::span<const double> scale, std::span<double> sum_dy, std::span<double> sum_dy_x_hat) {
    parallel_blocks(shape[1], 1, [&](std::size_t begin, std::size_t end) {
        for (std::size_t c = begin; c < end; ++c) {
            LaneSum<> plain, weighted;
            const double mu = center[c], s = scale[c];
            for_each_plane_of_channel(shape, c, [&](std::size_t first, std::size_t plane) {
                const T *in = x + first, *d = dy + first;
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

/// Per-channel coefficients of an affine map of a plane: out = a (x - center) + b dy + offset.
template <Scalar T>
struct ChannelAffine {
    std::span<const T> center, a, b, offset;
};

/// out = a_c (x - center_c) + b_c dy + offset_c element by element (dy may be null when every
/// b_c is 0); out += that with Accumulate::yes. Plane by plane over the pool.
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
                if (accumulate == Accumulate::yes)
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

/// y[n][c] = the mean of plane (n, c), summed in T over eight lanes (value k to lane k mod 8).
template <Scalar T>
void global_avg_pool_forward(const T* x, const Shape<4>& shape, T* y) {
    const std::size_t plane = shape[2] * shape[3];
    const T area = static_cast<T>(plane);
    parallel_blocks(shape[0] * shape[1], std::max<std::size_t>(1, 4096 / plane), [&](std::size_t begin, std::size_t end) {
        for (std::size_t p = begin; p < end; ++p) {
            const T* in = x + p * plane;
            LaneSum<T> sum;
            sum.add(plane, [in](std::size_t k) { return in[k]; });
            y[p] = sum.total() / area;
        }
    });
}

/// dx = dy[n][c] / (H W) over plane (n, c) (dx += that with Accumulate::yes).
template <Scalar T>
void global_avg_pool_backward(const T* dy, const Shape<4>& shape, T* dx, Accumulate accumulate) {
    const std::size_t plane = shape[2] * shape[3];
    const T area = static_cast<T>(plane);
    parallel_blocks(shape[0] * shape[1], std::max<std::size_t>(1, 4096 / plane), [&](std::size_t begin, std::size_t end) {
        for (std::size_t p = begin; p < end; ++p) {
            const T d = dy[p] / area;
            T* out = dx + p * plane;
            if (accumulate == Accumulate::yes)
                for (std::size_t k = 0; k < plane; ++k) out[k] += d;
            else
                for (std::size_t k = 0; k < plane; ++k) out[k] = d;
        }
    });
}

}  // namespace cnn::kernels
