// The convolution kernels behind the Conv2D layer: the formulas of
// FORMULAS.md 4.3 and 8.4-8.6 lowered to matrix products (im2col), batch-aware
// and spread over the thread pool. The reference kernels in
// cnn/reference/convolution.hpp are their oracle (tests/test_layers.cpp).
//
// With R = C*Fh*Fw rows and Q = H2*W2 output positions per sample:
//   col[r][q]   = x~[c][iS+m][jS+n]           for r = (c,m,n), q = (i,j)
//   forward:      net_n (K x Q)  = W (K x R) col_n (R x Q) + b
//   input grad:   dcol (R x Q)   = W^T (R x K) delta_n (K x Q), then col2im adds
//                 each dcol[r][q] back onto x~[c][iS+m][jS+n], cropped by P
//                 (the same sums as the full convolution with rotated filters)
//   weight grad:  dW (K x R)    += delta_n (K x Q) col_n^T (Q x R)
//   bias grad:    db[k]         += sum_q delta_n[k][q]
// Up to 8 samples are lowered side by side, so each product is 8 times wider
// and the filters are packed once per 8 samples.
#pragma once

#include <algorithm>
#include <span>
#include <utility>

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

/// The output columns j whose input column j S + n - P lies inside [0, W): [first, last).
inline std::pair<std::size_t, std::size_t> valid_columns(const ConvGeometry& g, std::size_t n) {
    const std::size_t first = n >= g.padding ? 0 : (g.padding - n + g.stride - 1) / g.stride;
    const std::size_t reach = g.width + g.padding;  // v = j S + n - P < W  <=>  j S + n < W + P
    const std::size_t last = n >= reach ? 0 : std::min(g.out_w, (reach - n + g.stride - 1) / g.stride);
    return {std::min(first, last), last};
}

/// col[r][offset + q] for one sample, in a column buffer whose rows hold `ld` values.
template <Scalar T>
void im2col(const T* __restrict x, const ConvGeometry& g, T* __restrict col, std::size_t ld, std::size_t offset) {
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t m = 0; m < g.kernel_h; ++m)
            for (std::size_t n = 0; n < g.kernel_w; ++n) {
                T* row = col + ((c * g.kernel_h + m) * g.kernel_w + n) * ld + offset;
                const auto [first, last] = valid_columns(g, n);
                for (std::size_t i = 0; i < g.out_h; ++i) {
                    const std::size_t u = i * g.stride + m;  // row in the padded input
                    T* out = row + i * g.out_w;
                    if (u < g.padding || u - g.padding >= g.height) {
                        std::fill_n(out, g.out_w, T{0});
                        continue;
                    }
                    // Columns [first, last) read x[u - P][j S + n - P]; the others are padding.
                    std::fill_n(out, first, T{0});
                    if (first < last) {
                        const T* source =
                            x + (c * g.height + (u - g.padding)) * g.width + (first * g.stride + n - g.padding);
                        if (g.stride == 1) {
                            std::copy_n(source, last - first, out + first);
                        } else {
                            for (std::size_t j = first; j < last; ++j) out[j] = source[(j - first) * g.stride];
                        }
                    }
                    std::fill(out + std::max(first, last), out + g.out_w, T{0});
                }
            }
}

/// dx[c][u][v] = sum of dcol[r][offset + q] over the (r, q) that read x[c][u][v] in im2col.
template <Scalar T>
void col2im(const T* __restrict dcol, std::size_t ld, std::size_t offset, const ConvGeometry& g, T* __restrict dx) {
    std::fill_n(dx, g.channels * g.height * g.width, T{0});
    for (std::size_t c = 0; c < g.channels; ++c)
        for (std::size_t m = 0; m < g.kernel_h; ++m)
            for (std::size_t n = 0; n < g.kernel_w; ++n) {
                const T* row = dcol + ((c * g.kernel_h + m) * g.kernel_w + n) * ld + offset;
                const auto [first, last] = valid_columns(g, n);
                for (std::size_t i = 0; i < g.out_h; ++i) {
                    const std::size_t u = i * g.stride + m;
                    if (u < g.padding || u - g.padding >= g.height) continue;
                    if (first >= last) continue;
                    T* target = dx + (c * g.height + (u - g.padding)) * g.width + (first * g.stride + n - g.padding);
                    const T* in = row + i * g.out_w;
                    for (std::size_t j = first; j < last; ++j) target[(j - first) * g.stride] += in[j];
                }
            }
}

template <Scalar T>
ConvGeometry conv_geometry(const Shape<4>& x, const Shape<4>& w, std::size_t stride, std::size_t padding,
                           const Shape<4>& y) {
    return {x[1], x[2], x[3], w[0], w[2], w[3], stride, padding, y[2], y[3]};
}

/// `count` rounded up to a whole number of 64-byte lines of floats, so that the regions
/// carved out of one scratch buffer stay aligned.
constexpr std::size_t round_up(std::size_t count) noexcept { return (count + 15) / 16 * 16; }

/// The samples [first, last) of chunk `chunk`.
inline std::pair<std::size_t, std::size_t> chunk_samples(std::size_t chunk, std::size_t samples) {
    return {chunk * conv_chunk, std::min(samples, (chunk + 1) * conv_chunk)};
}

// Forward, per chunk of up to 8 samples: the chunk's columns side by side,
// col (R x 8Q), one product net (K x 8Q) = W col, then each sample's K x Q block
// (plus bias) copied to its place in y.
template <Scalar T>
void conv2d_forward(TensorView<const T, 4> x, TensorView<const T, 4> w, std::span<const T> b, std::size_t stride,
                    std::size_t padding, TensorView<T, 4> y, Scratch<T>& scratch) {
    const ConvGeometry g = conv_geometry<T>(x.shape(), w.shape(), stride, padding, y.shape());
    const std::size_t samples = x.extent(0), chunks = (samples + conv_chunk - 1) / conv_chunk;
    const std::size_t q = g.positions(), ld = conv_chunk * q;
    const std::size_t per_worker = round_up((g.rows() + g.filters) * ld) + gemm_pack_size<T>();
    T* const memory = scratch.get(threads() * per_worker).data();
    thread_pool().parallel_for(chunks, [&](std::size_t chunk, std::size_t worker) {
        T* col = memory + worker * per_worker;
        T* net = col + g.rows() * ld;
        T* pack = col + round_up((g.rows() + g.filters) * ld);
        const auto [first, last] = chunk_samples(chunk, samples);
        for (std::size_t n = first; n < last; ++n) im2col(x[n].data(), g, col, ld, (n - first) * q);
        const std::size_t columns = (last - first) * q;
        gemm<T>(g.filters, columns, g.rows(), w.data(), static_cast<std::ptrdiff_t>(g.rows()), 1, col,
                static_cast<std::ptrdiff_t>(ld), 1, net, ld, Accumulate::no, pack);
        for (std::size_t n = first; n < last; ++n) {
            T* out = y[n].data();
            for (std::size_t k = 0; k < g.filters; ++k) {
                const T* source = net + k * ld + (n - first) * q;
                for (std::size_t p = 0; p < q; ++p) out[k * q + p] = source[p] + b[k];
            }
        }
    });
}

// Backward, per chunk: the chunk's deltas side by side, d (K x 8Q), and its columns, col (R x 8Q);
//   dW_chunk = d col^T,   db_chunk = row sums of d,   dcol = W^T d, folded back by col2im.
// The chunks' weight and bias gradients are added in chunk order: the same result for any thread count.
template <Scalar T>
void conv2d_backward(TensorView<const T, 4> x, TensorView<const T, 4> dy, TensorView<const T, 4> w,
                     std::size_t stride, std::size_t padding, TensorView<T, 4> dx, TensorView<T, 4> dw,
                     std::span<T> db, Scratch<T>& scratch) {
    const ConvGeometry g = conv_geometry<T>(x.shape(), w.shape(), stride, padding, dy.shape());
    const std::size_t samples = x.extent(0), chunks = (samples + conv_chunk - 1) / conv_chunk;
    const std::size_t q = g.positions(), ld = conv_chunk * q, weight_size = g.filters * g.rows();
    const std::size_t per_worker = round_up((2 * g.rows() + g.filters) * ld) + gemm_pack_size<T>();
    const std::size_t per_chunk = weight_size + g.filters;
    T* const memory = scratch.get(threads() * per_worker + chunks * per_chunk).data();
    T* const partials = memory + threads() * per_worker;
    const bool want_dx = dx.data() != nullptr;

    thread_pool().parallel_for(chunks, [&](std::size_t chunk, std::size_t worker) {
        T* col = memory + worker * per_worker;
        T* dcol = col + g.rows() * ld;
        T* delta = dcol + g.rows() * ld;
        T* pack = col + round_up((2 * g.rows() + g.filters) * ld);
        T* dw_part = partials + chunk * per_chunk;
        T* db_part = dw_part + weight_size;
        const auto [first, last] = chunk_samples(chunk, samples);
        const std::size_t columns = (last - first) * q;
        for (std::size_t n = first; n < last; ++n) {
            im2col(x[n].data(), g, col, ld, (n - first) * q);
            for (std::size_t k = 0; k < g.filters; ++k)
                std::copy_n(dy[n].data() + k * q, q, delta + k * ld + (n - first) * q);
        }
        // dW (K x R) = d (K x 8Q) col^T (8Q x R)
        gemm<T>(g.filters, g.rows(), columns, delta, static_cast<std::ptrdiff_t>(ld), 1, col, 1,
                static_cast<std::ptrdiff_t>(ld), dw_part, g.rows(), Accumulate::no, pack);
        for (std::size_t k = 0; k < g.filters; ++k) {
            T sum{0};
            for (std::size_t p = 0; p < columns; ++p) sum += delta[k * ld + p];
            db_part[k] = sum;
        }
        if (want_dx) {
            // dcol (R x 8Q) = W^T (R x K) d (K x 8Q)
            gemm<T>(g.rows(), columns, g.filters, w.data(), 1, static_cast<std::ptrdiff_t>(g.rows()), delta,
                    static_cast<std::ptrdiff_t>(ld), 1, dcol, ld, Accumulate::no, pack);
            for (std::size_t n = first; n < last; ++n) col2im(dcol, ld, (n - first) * q, g, dx[n].data());
        }
    });
    for (std::size_t chunk = 0; chunk < chunks; ++chunk) {
        const T* dw_part = partials + chunk * per_chunk;
        for (std::size_t e = 0; e < weight_size; ++e) dw.data()[e] += dw_part[e];
        for (std::size_t k = 0; k < g.filters; ++k) db[k] += dw_part[weight_size + k];
    }
}

}  // namespace cnn::kernels
