// The convolution kernels behind the Conv2D layer: the formulas of
// FORMULAS.md 4.3 and 8.4-8.6 lowered to matrix products (im2col), batch-aware
// and spread over the thread pool. The reference kernels in
// cnn/reference/convolution.hpp are their oracle (tests/test_kernels.cpp).
//
// With R = C*Fh*Fw rows and Q = H2*W2 output positions per sample:
//   col[r][q]   = x~[c][iS+m][jS+n]           for r = (c,m,n), q = (i,j)
//   forward:      net_n (K x Q)  = W (K x R) col_n (R x Q) + b
//   input grad:   dcol (R x Q)   = W^T (R x K) delta_n (K x Q), then col2im adds
//                 each dcol[r][q] back onto x~[c][iS+m][jS+n], cropped by P
//                 (the same sums as the full convolution with rotated filters)
//   weight grad:  dW (K x R)    += delta_n (K x Q) col_n^T (Q x R)
//   bias grad:    db[k]         += sum_q delta_n[k][q]
#pragma once

#include <algorithm>
#include <span>

#include "cnn/kernels/gemm.hpp"
#include "cnn/kernels/threads.hpp"
#include "cnn/layer.hpp"
#include "cnn/tensor.hpp"

namespace cnn::kernels {

struct ConvGeometry {
    std::size_t channels, height, width;  // input, per sample
    std::size_t filters, kernel_h, kernel_w, stride, padding;
    std::size_t out_h, out_w;

    [[nodiscard]] std::size_t rows() const noexcept { return channels * kernel_h * kernel_w; }
    [[nodiscard]] std::size_t positions() const noexcept { return out_h * out_w; }
};

/// Samples per work item. Fixed, so that the weight-gradient partial sums (one
/// per chunk, added in chunk order) are the same whatever the thread count.
inline constexpr std::size_t conv_chunk = 8;

/// col[r][q] (transposed = false) or col[q][r] (transposed = true) for one sample.
template <Scalar T>
void im2col(const T* __restrict x, const ConvGeometry& g, T* __restrict col, bool transposed) {
    const std::size_t q_count = g.positions(), r_count = g.rows();
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t m = 0; m < g.kernel_h; ++m)
            for (std::size_t n = 0; n < g.kernel_w; ++n) {
                const std::size_t r = (c * g.kernel_h + m) * g.kernel_w + n;
                for (std::size_t i = 0; i < g.out_h; ++i) {
                    const std::size_t u = i * g.stride + m;  // row in the padded input
                    const bool row_inside = u >= g.padding && u - g.padding < g.height;
                    const T* x_row = x + (c * g.height + (u - g.padding)) * g.width;
                    for (std::size_t j = 0; j < g.out_w; ++j) {
                        const std::size_t v = j * g.stride + n;
                        const bool inside = row_inside && v >= g.padding && v - g.padding < g.width;
                        const T value = inside ? x_row[v - g.padding] : T{0};
                        const std::size_t q = i * g.out_w + j;
                        if (transposed)
                            col[q * r_count + r] = value;
                        else
                            col[r * q_count + q] = value;
                    }
                }
            }
}

/// dx[c][u][v] = sum of dcol[r][q] over the (r, q) that read x[c][u][v] in im2col.
template <Scalar T>
void col2im(const T* __restrict dcol, const ConvGeometry& g, T* __restrict dx) {
    std::fill_n(dx, g.channels * g.height * g.width, T{0});
    const std::size_t q_count = g.positions();
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t m = 0; m < g.kernel_h; ++m)
            for (std::size_t n = 0; n < g.kernel_w; ++n) {
                const T* row = dcol + ((c * g.kernel_h + m) * g.kernel_w + n) * q_count;
                for (std::size_t i = 0; i < g.out_h; ++i) {
                    const std::size_t u = i * g.stride + m;
                    if (u < g.padding || u - g.padding >= g.height) continue;
                    T* dx_row = dx + (c * g.height + (u - g.padding)) * g.width;
                    for (std::size_t j = 0; j < g.out_w; ++j) {
                        const std::size_t v = j * g.stride + n;
                        if (v >= g.padding && v - g.padding < g.width) dx_row[v - g.padding] += row[i * g.out_w + j];
                    }
                }
            }
}

template <Scalar T>
ConvGeometry conv_geometry(const Shape<4>& x, const Shape<4>& w, std::size_t stride, std::size_t padding,
                           const Shape<4>& y) {
    return {x[1], x[2], x[3], w[0], w[2], w[3], stride, padding, y[2], y[3]};
}

template <Scalar T>
void conv2d_forward(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b, std::size_t stride,
                    std::size_t padding, TensorView<T, 4> y, Scratch<T>& scratch) {
    const ConvGeometry g = conv_geometry<T>(x.shape(), w.shape(), stride, padding, y.shape());
    const std::size_t samples = x.extent(0), chunks = (samples + conv_chunk - 1) / conv_chunk;
    const std::size_t col_size = g.rows() * g.positions();
    T* const cols = scratch.get(threads() * col_size).data();
    thread_pool().parallel_for(chunks, [&](std::size_t chunk, std::size_t worker) {
        T* col = cols + worker * col_size;
        for (std::size_t n = chunk * conv_chunk; n < std::min(samples, (chunk + 1) * conv_chunk); ++n) {
            im2col(x[n].data(), g, col, false);
            T* out = y[n].data();
            gemm_nn<T>(g.filters, g.positions(), g.rows(), w.data(), g.rows(), col, g.positions(), out, g.positions(),
                       Accumulate::no);
            for (std::size_t k = 0; k < g.filters; ++k)
                for (std::size_t q = 0; q < g.positions(); ++q) out[k * g.positions() + q] += b[k];
        }
    });
}

/// Writes dx = dE/dx (skipped when dx is null) and adds dE/dw and dE/db.
template <Scalar T>
void conv2d_backward(TensorView<const T, 4> x, TensorView<const T, 4> dy, TensorView<const T, 4> w,
                     std::size_t stride, std::size_t padding, TensorView<T, 4> dx, TensorView<T, 4> dw,
                     std::span<T> db, Scratch<T>& scratch) {
    const ConvGeometry g = conv_geometry<T>(x.shape(), w.shape(), stride, padding, dy.shape());
    const std::size_t samples = x.extent(0), chunks = (samples + conv_chunk - 1) / conv_chunk;
    const std::size_t col_size = g.rows() * g.positions(), weight_size = g.filters * g.rows();
    // Per worker: one column buffer. Per chunk: its partial weight and bias gradients.
    const std::span<T> memory =
        scratch.get(threads() * col_size + chunks * (weight_size + g.filters));
    T* const cols = memory.data();
    T* const partials = cols + threads() * col_size;
    const bool want_dx = dx.data() != nullptr;

    thread_pool().parallel_for(chunks, [&](std::size_t chunk, std::size_t worker) {
        T* col = cols + worker * col_size;
        T* dw_part = partials + chunk * (weight_size + g.filters);
        T* db_part = dw_part + weight_size;
        std::fill_n(dw_part, weight_size + g.filters, T{0});
        for (std::size_t n = chunk * conv_chunk; n < std::min(samples, (chunk + 1) * conv_chunk); ++n) {
            const T* delta = dy[n].data();
            // dW (K x R) += delta_n (K x Q) col_n^T (Q x R)
            im2col(x[n].data(), g, col, true);
            gemm_nn<T>(g.filters, g.rows(), g.positions(), delta, g.positions(), col, g.rows(), dw_part, g.rows(),
                       Accumulate::yes);
            for (std::size_t k = 0; k < g.filters; ++k)
                for (std::size_t q = 0; q < g.positions(); ++q) db_part[k] += delta[k * g.positions() + q];
            if (want_dx) {
                // dcol (R x Q) = W^T (R x K) delta_n (K x Q), folded back onto dx
                gemm_tn<T>(g.rows(), g.positions(), g.filters, w.data(), g.rows(), delta, g.positions(), col,
                           g.positions(), Accumulate::no);
                col2im(col, g, dx[n].data());
            }
        }
    });
    // Partial sums added in chunk order: the same result for any thread count.
    for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
        const T* dw_part = partials + chunk * (weight_size + g.filters);
        for (std::size_t e = 0; e < weight_size; ++e) dw.data()[e] += dw_part[e];
        for (std::size_t k = 0; k < g.filters; ++k) db[k] += dw_part[weight_size + k];
    }
}

}  // namespace cnn::kernels
