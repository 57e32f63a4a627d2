// The pooling kernels behind MaxPool and MeanPool (FORMULAS.md sections 5 and 9)
// on whole batches, with plain pointer arithmetic over each channel plane; the
// reference kernels in cnn/reference/pooling.hpp are their oracle.
#pragma once

#include <algorithm>
#include <cstddef>

#include "cnn/kernels/threads.hpp"
#include "cnn/reference/pooling.hpp"
#include "cnn/tensor.hpp"

namespace cnn::kernels {

struct PoolGeometry {
    std::size_t planes;  // N * C
    std::size_t height, width, out_h, out_w;
    reference::Window window;
    std::size_t stride;
};

inline constexpr std::size_t pool_planes_per_task = 16;

/// Offset (within a plane) of the first maximum of window (i, j), in row-major order.
template <Scalar T>
std::size_t window_argmax(const T* plane, const PoolGeometry& g, std::size_t i, std::size_t j) {
    std::size_t best = i * g.stride * g.width + j * g.stride;
    for (std::size_t p = 0; p < g.window.height; ++p) {
        const std::size_t row = (i * g.stride + p) * g.width + j * g.stride;
        for (std::size_t q = 0; q < g.window.width; ++q)
            if (plane[row + q] > plane[best]) best = row + q;
    }
    return best;
}

template <Scalar T>
void maxpool_forward(const T* x, const PoolGeometry& g, T* y) {
    thread_pool().parallel_for((g.planes + pool_planes_per_task - 1) / pool_planes_per_task, [&](std::size_t task, std::size_t) {
        for (std::size_t c = task * pool_planes_per_task; c < std::min(g.planes, (task + 1) * pool_planes_per_task); ++c) {
            const T* plane = x + c * g.height * g.width;
            T* out = y + c * g.out_h * g.out_w;
            for (std::size_t i = 0; i < g.out_h; ++i)
                for (std::size_t j = 0; j < g.out_w; ++j) out[i * g.out_w + j] = plane[window_argmax(plane, g, i, j)];
        }
    });
}

/// dx = 0, then each delta added at its window's first maximum.
template <Scalar T>
void maxpool_backward(const T* x, const T* dy, const PoolGeometry& g, T* dx) {
    thread_pool().parallel_for((g.planes + pool_planes_per_task - 1) / pool_planes_per_task, [&](std::size_t task, std::size_t) {
        for (std::size_t c = task * pool_planes_per_task; c < std::min(g.planes, (task + 1) * pool_planes_per_task); ++c) {
            const T* plane = x + c * g.height * g.width;
            const T* delta = dy + c * g.out_h * g.out_w;
            T* grad = dx + c * g.height * g.width;
            std::fill_n(grad, g.height * g.width, T{0});
            for (std::size_t i = 0; i < g.out_h; ++i)
                for (std::size_t j = 0; j < g.out_w; ++j) grad[window_argmax(plane, g, i, j)] += delta[i * g.out_w + j];
        }
    });
}

template <Scalar T>
void meanpool_forward(const T* x, const PoolGeometry& g, T* y) {
    const T area = static_cast<T>(g.window.height * g.window.width);
    thread_pool().parallel_for((g.planes + pool_planes_per_task - 1) / pool_planes_per_task, [&](std::size_t task, std::size_t) {
        for (std::size_t c = task * pool_planes_per_task; c < std::min(g.planes, (task + 1) * pool_planes_per_task); ++c) {
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
        }
    });
}

/// dx = 0, then delta / (nh nw) added over each window (the Kronecker product when windows tile the input).
template <Scalar T>
void meanpool_backward(const T* dy, const PoolGeometry& g, T* dx) {
    const T area = static_cast<T>(g.window.height * g.window.width);
    thread_pool().parallel_for((g.planes + pool_planes_per_task - 1) / pool_planes_per_task, [&](std::size_t task, std::size_t) {
        for (std::size_t c = task * pool_planes_per_task; c < std::min(g.planes, (task + 1) * pool_planes_per_task); ++c) {
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
        }
    });
}

}  // namespace cnn::kernels
