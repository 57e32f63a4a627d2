// Reference pooling (FORMULAS.md sections 5 and 9), written literally.
// Window nh x nw, stride S (both axes), no padding, each channel on its own:
// H2 = floor((H1 - nh) / S) + 1.
#pragma once

#include <array>
#include <cstddef>

#include "cnn/tensor.hpp"

namespace cnn::reference {

struct Window {
    std::size_t height;
    std::size_t width;
};

// The first maximum of window (c, i, j) in row-major scan order (strict >, as learn_dl).
template <Scalar T>
std::array<std::size_t, 2> window_argmax(TensorView<const T, 3> x, std::size_t c, std::size_t i, std::size_t j,
                                         Window window, std::size_t stride) {
    std::array<std::size_t, 2> best{i * stride, j * stride};
    for (std::size_t p = 0; p < window.height; ++p)
        for (std::size_t q = 0; q < window.width; ++q)
            if (x(c, i * stride + p, j * stride + q) > x(c, best[0], best[1])) best = {i * stride + p, j * stride + q};
    return best;
}

// y[c][i][j] = max_{p,q} x[c][iS+p][jS+q]
template <Scalar T>
void maxpool_forward(TensorView<const T, 3> x, Window window, std::size_t stride, TensorView<T, 3> out) {
    for (std::size_t c = 0; c < out.extent(0); ++c)
        for (std::size_t i = 0; i < out.extent(1); ++i)
            for (std::size_t j = 0; j < out.extent(2); ++j) {
                const auto [u, v] = window_argmax(x, c, i, j, window, stride);
                out(c, i, j) = x(c, u, v);
            }
}

// dE/dx[c][u][v] = sum over windows (i,j) whose first maximum is (u,v) of delta[c][i][j]
// (each delta goes to its window's winner; overlapping windows add up)
template <Scalar T>
void maxpool_backward(TensorView<const T, 3> x, TensorView<const T, 3> delta, Window window, std::size_t stride,
                      TensorView<T, 3> grad_input) {
    std::fill(grad_input.begin(), grad_input.end(), T{0});
    for (std::size_t c = 0; c < delta.extent(0); ++c)
        for (std::size_t i = 0; i < delta.extent(1); ++i)
            for (std::size_t j = 0; j < delta.extent(2); ++j) {
                const auto [u, v] = window_argmax(x, c, i, j, window, stride);
                grad_input(c, u, v) += delta(c, i, j);
            }
}

// y[c][i][j] = 1/(nh nw) sum_{p,q} x[c][iS+p][jS+q]
template <Scalar T>
void meanpool_forward(TensorView<const T, 3> x, Window window, std::size_t stride, TensorView<T, 3> out) {
    const T area = static_cast<T>(window.height * window.width);
    for (std::size_t c = 0; c < out.extent(0); ++c)
        for (std::size_t i = 0; i < out.extent(1); ++i)
            for (std::size_t j = 0; j < out.extent(2); ++j) {
                T sum{0};
                for (std::size_t p = 0; p < window.height; ++p)
                    for (std::size_t q = 0; q < window.width; ++q) sum += x(c, i * stride + p, j * stride + q);
                out(c, i, j) = sum / area;
            }
}

// Non-overlapping windows that tile the input exactly (S = nh = nw, H and W divisible):
// delta^{l-1}_c = delta^l_c (Kronecker) (1/n^2)_{n x n}
template <Scalar T>
void meanpool_backward_kronecker(TensorView<const T, 3> delta, std::size_t n, TensorView<T, 3> grad_input) {
    const T share = T{1} / static_cast<T>(n * n);
    for (std::size_t c = 0; c < delta.extent(0); ++c)
        for (std::size_t u = 0; u < grad_input.extent(1); ++u)
            for (std::size_t v = 0; v < grad_input.extent(2); ++v) grad_input(c, u, v) = delta(c, u / n, v / n) * share;
}

// General form: dE/dx[c][u][v] = sum over windows (i,j) containing (u,v) of delta[c][i][j] / (nh nw)
template <Scalar T>
void meanpool_backward_general(TensorView<const T, 3> delta, Window window, std::size_t stride,
                               TensorView<T, 3> grad_input) {
    const T area = static_cast<T>(window.height * window.width);
    std::fill(grad_input.begin(), grad_input.end(), T{0});
    for (std::size_t c = 0; c < delta.extent(0); ++c)
        for (std::size_t i = 0; i < delta.extent(1); ++i)
            for (std::size_t j = 0; j < delta.extent(2); ++j)
                for (std::size_t p = 0; p < window.height; ++p)
                    for (std::size_t q = 0; q < window.width; ++q)
                        grad_input(c, i * stride + p, j * stride + q) += delta(c, i, j) / area;
}

// Mean-pool backward: the Kronecker form where it applies, the general form otherwise.
template <Scalar T>
void meanpool_backward(TensorView<const T, 3> delta, Window window, std::size_t stride, TensorView<T, 3> grad_input) {
    const bool tiles_exactly = window.height == window.width && stride == window.height &&
                               grad_input.extent(1) == delta.extent(1) * stride &&
                               grad_input.extent(2) == delta.extent(2) * stride;
    if (tiles_exactly)
        meanpool_backward_kronecker(delta, stride, grad_input);
    else
        meanpool_backward_general(delta, window, stride, grad_input);
}

}  // namespace cnn::reference
