// The loops behind BatchNorm2D and GlobalAvgPool (FORMULAS.md sections 15 and 17) on
// N x C x H x W batches, spread over the thread pool. They are bound by memory traffic, not
// arithmetic, so they are written once in portable C++ that the compiler vectorises:
// BatchNorm2D's for each instruction set (cnn/kernels/variant/normalization.hpp, in the
// variant this processor runs best; compiled for the baseline alone, its sums in double ran
// two to an SSE2 register), GlobalAvgPool's here.
//
// Sums run on fixed lanes (BatchNorm2D's in double), each channel's or plane's on one thread,
// so the results do not depend on the thread count. cnn/reference/normalization.hpp sums in
// one lane, and so may differ in the last bits.
#pragma once

#include "cnn/kernels/variants.hpp"

namespace cnn::kernels {

/// Mean and biased variance of every channel (two passes, the second about the mean).
template <Scalar T>
void channel_statistics(const T* x, const Shape<4>& shape, std::span<double> mean, std::span<double> variance) {
    CNN_KERNEL_CALL(channel_statistics<T>(x, shape, mean, variance));
}

/// Per channel: sum of dy, and sum of dy (x - center) scale; with a gate (the output of a ReLU
/// after the normalisation), of the deltas that ReLU passes back (dy where gate > 0, else 0),
/// which are written to `gated` (x's shape) on the way.
template <Scalar T>
void channel_gradient_sums(const T* x, const T* dy, const Shape<4>& shape, std::span<const double> center,
                           std::span<const double> scale, std::span<double> sum_dy, std::span<double> sum_dy_x_hat,
                           const T* gate = nullptr, T* gated = nullptr) {
    CNN_KERNEL_CALL(channel_gradient_sums<T>(x, dy, shape, center, scale, sum_dy, sum_dy_x_hat, gate, gated));
}

/// out = a_c (x - center_c) + b_c dy + offset_c element by element (dy may be null when every
/// b_c is 0), max(0, that) with f.rectify; out += that with Accumulate::yes. Plane by plane over the pool.
template <Scalar T>
void channel_affine(const T* x, const T* dy, const Shape<4>& shape, const ChannelAffine<T>& f, T* out,
                    Accumulate accumulate = Accumulate::no) {
    CNN_KERNEL_CALL(channel_affine<T>(x, dy, shape, f, out, accumulate));
}

/// y[n][c] = the mean of plane (n, c), summed in T over eight lanes (value k to lane k mod 8).
/// (Compiled for the baseline: the AVX-512 build of this loop ran 1.5 to 3 times slower.)
template <Scalar T>
void global_avg_pool_forward(const T* x, const Shape<4>& shape, T* y) {
    const std::size_t plane = shape[2] * shape[3];
    const T area = static_cast<T>(plane);
    parallel_blocks(shape[0] * shape[1], std::max<std::size_t>(1, 4096 / plane), [&](std::size_t begin, std::size_t end) {
        for (std::size_t p = begin; p < end; ++p) {
            const T* in = x + p * plane;
            std::array<T, 8> lanes{};
            std::size_t k = 0;
            for (; k + 8 <= plane; k += 8)
                for (std::size_t lane = 0; lane < 8; ++lane) lanes[lane] += in[k + lane];
            for (; k < plane; ++k) lanes[k % 8] += in[k];
            y[p] = (((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))) / area;
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
