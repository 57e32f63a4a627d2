// The pooling kernels behind MaxPool and MeanPool (FORMULAS.md sections 5 and 9)
// on whole batches, with plain pointer arithmetic over each channel plane; the
// reference kernels in cnn/reference/pooling.hpp are their oracle.
#pragma once

#include <algorithm>
#include <cstddef>

#include "cnn/kernels/simd.hpp"
#include "cnn/kernels/threads.hpp"
#include "cnn/reference/pooling.hpp"
#include "cnn/tensor.hpp"

namespace cnn::kernels {
inline namespace CNN_KERNEL_VARIANT {

struct PoolGeometry {
    std::size_t planes;  // N * C
    std::size_t height, width, out_h, out_w;
    reference::Window window;
    std::size_t stride;
};

inline constexpr std::size_t pool_planes_per_task = 16;

/// Calls f(c) for every channel plane c, in blocks of planes spread over the thread pool.
template <class F>
void for_each_plane(const PoolGeometry& g, const F& f) {
    thread_pool().parallel_for((g.planes + pool_planes_per_task - 1) / pool_planes_per_task, [&](std::size_t task, std::size_t) {
        for (std::size_t c = task * pool_planes_per_task; c < std::min(g.planes, (task + 1) * pool_planes_per_task); ++c) f(c);
    });
}

// The first maximum of a window (row-major) is the first element equal to the window's
// maximum. Both are found without branches on the data: with random values a branch
// per comparison mispredicts about half the time, which made max-pool backward 4x slower.

template <Scalar T>
T window_max(const T* plane, const PoolGeometry& g, std::size_t i, std::size_t j) {
    const T* corner = plane + i * g.stride * g.width + j * g.stride;
    T best = corner[0];
    for (std::size_t p = 0; p < g.window.height; ++p)
        for (std::size_t q = 0; q < g.window.width; ++q) best = std::max(best, corner[p * g.width + q]);
    return best;
}

/// Offset (within a plane) of the first maximum of window (i, j).
template <Scalar T>
std::size_t window_argmax(const T* plane, const PoolGeometry& g, std::size_t i, std::size_t j) {
    const T best = window_max(plane, g, i, j);
    const std::size_t start = i * g.stride * g.width + j * g.stride;
    std::size_t found = 0, offset = 0;
    for (std::size_t p = 0; p < g.window.height; ++p)
        for (std::size_t q = 0; q < g.window.width; ++q) {
            const std::size_t here = static_cast<std::size_t>(plane[start + p * g.width + q] == best) & (found ^ 1);
            offset += here * (p * g.width + q);
            found |= here;
        }
    return start + offset;
}

template <Scalar T>
void maxpool_forward(const T* x, const PoolGeometry& g, T* y) {
    const bool two_by_two = g.window.height == 2 && g.window.width == 2 && g.stride == 2;
    for_each_plane(g, [&](std::size_t c) {
        const T* plane = x + c * g.height * g.width;
        T* out = y + c * g.out_h * g.out_w;
        for (std::size_t i = 0; i < g.out_h; ++i) {
            if (two_by_two) {  // the common case, in a form the compiler vectorises
                const T* __restrict r0 = plane + 2 * i * g.width;
                const T* __restrict r1 = r0 + g.width;
                T* __restrict o = out + i * g.out_w;
                for (std::size_t j = 0; j < g.out_w; ++j)
                    o[j] = std::max(std::max(r0[2 * j], r0[2 * j + 1]), std::max(r1[2 * j], r1[2 * j + 1]));
                continue;
            }
            for (std::size_t j = 0; j < g.out_w; ++j) out[i * g.out_w + j] = window_max(plane, g, i, j);
        }
    });
}

/// dx = 0, then each delta added at its window's first maximum.
template <Scalar T>
void maxpool_backward(const T* x, const T* dy, const PoolGeometry& g, T* dx) {
    const bool tiles = g.stride == g.window.height && g.stride == g.window.width;
    for_each_plane(g, [&](std::size_t c) {
        const T* plane = x + c * g.height * g.width;
        const T* delta = dy + c * g.out_h * g.out_w;
        T* grad = dx + c * g.height * g.width;
        if (!tiles) {
            std::fill_n(grad, g.height * g.width, T{0});
            for (std::size_t i = 0; i < g.out_h; ++i)
                for (std::size_t j = 0; j < g.out_w; ++j) grad[window_argmax(plane, g, i, j)] += delta[i * g.out_w + j];
            return;
        }
        // Windows that do not overlap: every input is written once, the winner with its
        // delta and the rest with 0, so there is nothing to clear and nothing to add.
        for (std::size_t i = 0; i < g.out_h; ++i) {
            if (g.stride == 2) {  // 2x2, the common case, in a form the compiler vectorises
                const T* __restrict r0 = plane + 2 * i * g.width;
                const T* __restrict r1 = r0 + g.width;
                T* __restrict g0 = grad + 2 * i * g.width;
                T* __restrict g1 = g0 + g.width;
                const T* __restrict d = delta + i * g.out_w;
                for (std::size_t j = 0; j < g.out_w; ++j) {
                    const T a = r0[2 * j], b = r0[2 * j + 1], c2 = r1[2 * j], e = r1[2 * j + 1];
                    const T best = std::max(std::max(a, b), std::max(c2, e));
                    // Bit arithmetic, not && (which compiles to branches).
                    const unsigned is_a = a == best, is_b = (b == best) & (is_a ^ 1u);
                    const unsigned is_c = (c2 == best) & ((is_a | is_b) ^ 1u), is_e = (is_a | is_b | is_c) ^ 1u;
                    g0[2 * j] = d[j] * static_cast<T>(is_a);
                    g0[2 * j + 1] = d[j] * static_cast<T>(is_b);
                    g1[2 * j] = d[j] * static_cast<T>(is_c);
                    g1[2 * j + 1] = d[j] * static_cast<T>(is_e);
                }
                continue;
            }
            for (std::size_t j = 0; j < g.out_w; ++j) {
                const T best = window_max(plane, g, i, j), d = delta[i * g.out_w + j];
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
        // Rows and columns no window reaches (when the size is not a multiple of the window).
        for (std::size_t u = 0; u < g.height; ++u)
            for (std::size_t v = (u < g.out_h * g.stride ? g.out_w * g.stride : 0); v < g.width; ++v)
                grad[u * g.width + v] = T{0};
    });
}

template <Scalar T>
void meanpool_forward(const T* x, const PoolGeometry& g, T* y) {
    const T area = static_cast<T>(g.window.height * g.window.width);
    for_each_plane(g, [&](std::size_t c) {
        const T* plane = x + c * g.height * g.width;
        T* out = y + c * g.out_h * g.out_w;
        for (std::size_t i = 0; i < g.out_h; ++i)
            for (std::size_t j = 0; j < g.out_w; ++j) {
                T sum{0};
                for (std::size_t p = 0; p < g.window.height; ++p)
                    for (std::size_t q = 0; q < g.window.width; ++q)
                        sum += plane[(i * g.stride + p) * g.width + j * g.stride + q];
                out[i * g.out_w + j] = sum / area;
            }
    });
}

/// dx = 0, then delta / (nh nw) added over each window (the Kronecker product when windows tile the input).
template <Scalar T>
void meanpool_backward(const T* dy, const PoolGeometry& g, T* dx) {
    const T area = static_cast<T>(g.window.height * g.window.width);
    for_each_plane(g, [&](std::size_t c) {
        const T* delta = dy + c * g.out_h * g.out_w;
        T* grad = dx + c * g.height * g.width;
        std::fill_n(grad, g.height * g.width, T{0});
        for (std::size_t i = 0; i < g.out_h; ++i)
            for (std::size_t j = 0; j < g.out_w; ++j) {
                const T share = delta[i * g.out_w + j] / area;
                for (std::size_t p = 0; p < g.window.height; ++p)
                    for (std::size_t q = 0; q < g.window.width; ++q)
                        grad[(i * g.stride + p) * g.width + j * g.stride + q] += share;
            }
    });
}

}  // inline namespace
}  // namespace cnn::kernels
