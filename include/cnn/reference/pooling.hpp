// Reference pooling (FORMULAS.md sections 5, 9 and 19), written literally.
// Window nh x nw, stride S (both axes), each channel on its own:
// H2 = floor((H1 - nh) / S) + 1 without padding, floor((H1 + 2 Ph - nh) / S) + 1 with
// padding Ph above and below (Pw left and right).
#pragma once

#include <array>
#include <cstddef>
#include <optional>

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

// With padding (FORMULAS.md section 19). Padded cells never win a maximum (they are -inf);
// in a mean they are zeros, and the divisor is the whole window (count_padding) or only the
// cells of the input it covers.
struct PoolSpec {
    Window window;
    std::size_t stride;
    std::size_t pad_h = 0, pad_w = 0;
    bool count_padding = true;
};

// Input cell (u, v) of window (i, j) at offset (p, q), or nothing where that is padding.
inline std::optional<std::array<std::size_t, 2>> pool_tap(const PoolSpec& s, std::size_t height, std::size_t width,
                                                          std::size_t i, std::size_t j, std::size_t p, std::size_t q) {
    const auto u = static_cast<std::ptrdiff_t>(i * s.stride + p) - static_cast<std::ptrdiff_t>(s.pad_h);
    const auto v = static_cast<std::ptrdiff_t>(j * s.stride + q) - static_cast<std::ptrdiff_t>(s.pad_w);
    if (u < 0 || v < 0 || u >= static_cast<std::ptrdiff_t>(height) || v >= static_cast<std::ptrdiff_t>(width))
        return std::nullopt;
    return std::array{static_cast<std::size_t>(u), static_cast<std::size_t>(v)};
}

// The first maximum of window (c, i, j) over the input cells it covers, row-major, strict >.
template <Scalar T>
std::array<std::size_t, 2> window_argmax(TensorView<const T, 3> x, std::size_t c, std::size_t i, std::size_t j,
                                         const PoolSpec& s) {
    std::optional<std::array<std::size_t, 2>> best;
    for (std::size_t p = 0; p < s.window.height; ++p)
        for (std::size_t q = 0; q < s.window.width; ++q)
            if (const auto at = pool_tap(s, x.extent(1), x.extent(2), i, j, p, q))
                if (!best || x(c, (*at)[0], (*at)[1]) > x(c, (*best)[0], (*best)[1])) best = at;
    return best.value();  // every window covers an input cell when padding <= half the window
}

// y[c][i][j] = max over the window's input cells of x~[c][iS+p-Ph][jS+q-Pw]
template <Scalar T>
void maxpool_forward(TensorView<const T, 3> x, const PoolSpec& s, TensorView<T, 3> out) {
    for (std::size_t c = 0; c < out.extent(0); ++c)
        for (std::size_t i = 0; i < out.extent(1); ++i)
            for (std::size_t j = 0; j < out.extent(2); ++j) {
                const auto [u, v] = window_argmax(x, c, i, j, s);
                out(c, i, j) = x(c, u, v);
            }
}

// dE/dx[c][u][v] = sum over windows whose first maximum is (u, v) of delta[c][i][j]
template <Scalar T>
void maxpool_backward(TensorView<const T, 3> x, TensorView<const T, 3> delta, const PoolSpec& s,
                      TensorView<T, 3> grad_input) {
    std::fill(grad_input.begin(), grad_input.end(), T{0});
    for (std::size_t c = 0; c < delta.extent(0); ++c)
        for (std::size_t i = 0; i < delta.extent(1); ++i)
            for (std::size_t j = 0; j < delta.extent(2); ++j) {
                const auto [u, v] = window_argmax(x, c, i, j, s);
                grad_input(c, u, v) += delta(c, i, j);
            }
}

// The divisor of window (i, j): nh nw, or the number of input cells it covers.
inline std::size_t pool_divisor(const PoolSpec& s, std::size_t height, std::size_t width, std::size_t i,
                                std::size_t j) {
    if (s.count_padding) return s.window.height * s.window.width;
    std::size_t cells = 0;
    for (std::size_t p = 0; p < s.window.height; ++p)
        for (std::size_t q = 0; q < s.window.width; ++q) cells += pool_tap(s, height, width, i, j, p, q) ? 1u : 0u;
    return cells;
}

// y[c][i][j] = (sum over the window's input cells of x) / divisor
template <Scalar T>
void meanpool_forward(TensorView<const T, 3> x, const PoolSpec& s, TensorView<T, 3> out) {
    for (std::size_t c = 0; c < out.extent(0); ++c)
        for (std::size_t i = 0; i < out.extent(1); ++i)
            for (std::size_t j = 0; j < out.extent(2); ++j) {
                T sum{0};
                for (std::size_t p = 0; p < s.window.height; ++p)
                    for (std::size_t q = 0; q < s.window.width; ++q)
                        if (const auto at = pool_tap(s, x.extent(1), x.extent(2), i, j, p, q))
                            sum += x(c, (*at)[0], (*at)[1]);
                out(c, i, j) = sum / static_cast<T>(pool_divisor(s, x.extent(1), x.extent(2), i, j));
            }
}

// dE/dx[c][u][v] = sum over windows (i, j) covering (u, v) of delta[c][i][j] / divisor(i, j)
template <Scalar T>
void meanpool_backward(TensorView<const T, 3> delta, const PoolSpec& s, TensorView<T, 3> grad_input) {
    std::fill(grad_input.begin(), grad_input.end(), T{0});
    for (std::size_t c = 0; c < delta.extent(0); ++c)
        for (std::size_t i = 0; i < delta.extent(1); ++i)
            for (std::size_t j = 0; j < delta.extent(2); ++j) {
                const T divisor = static_cast<T>(pool_divisor(s, grad_input.extent(1), grad_input.extent(2), i, j));
                for (std::size_t p = 0; p < s.window.height; ++p)
                    for (std::size_t q = 0; q < s.window.width; ++q)
                        if (const auto at = pool_tap(s, grad_input.extent(1), grad_input.extent(2), i, j, p, q))
                            grad_input(c, (*at)[0], (*at)[1]) += delta(c, i, j) / divisor;
            }
}

}  // namespace cnn::reference
