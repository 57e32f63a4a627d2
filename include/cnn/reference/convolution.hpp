// Reference convolution (FORMULAS.md sections 3, 4 and 8), written literally as
// loops: slow, obvious, and the oracle every fast kernel is tested against.
//
// Layout (FORMULAS.md section 1): activations C x H x W, filters K x C x Fh x Fw,
// one bias per filter. Stride S and zero padding P apply to both axes; the general
// convolution at the end (section 18) takes them per axis, with dilation.
// Parameter gradients are *added* into their outputs (the layer contract);
// everything else is written.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>

#include "cnn/error.hpp"
#include "cnn/tensor.hpp"

namespace cnn::reference {

struct OutputExtent {
    std::size_t extent;
    bool exact_division;  // whether (input - filter + 2P) is a multiple of S
};

// H2 = floor((H1 - F + 2P) / S) + 1   (article eqs. 2 and 3, with the floor of section 4.2)
inline OutputExtent output_extent(std::size_t input, std::size_t filter, std::size_t padding, std::size_t stride) {
    if (stride == 0) throw parameter_error("output_extent: stride must be at least 1");
    if (filter == 0) throw parameter_error("output_extent: filter size must be at least 1");
    if (filter > input + 2 * padding)
        throw shape_error("output_extent: filter " + std::to_string(filter) + " is larger than the padded input " +
                          std::to_string(input) + " + 2*" + std::to_string(padding));
    const std::size_t span = input + 2 * padding - filter;
    return {span / stride + 1, span % stride == 0};
}

// Full 2-D convolution, C = A * B, of size (ma + mb - 1) x (na + nb - 1):
// C[s][t] = sum_m sum_n A[m][n] * B[s-m][t-n]   (B outside its range counts as 0)
template <Scalar T>
void full_convolution(TensorView<const T, 2> a, TensorView<const T, 2> b, TensorView<T, 2> c) {
    const std::size_t ma = a.extent(0), na = a.extent(1), mb = b.extent(0), nb = b.extent(1);
    for (std::size_t s = 0; s < ma + mb - 1; ++s) {
        for (std::size_t t = 0; t < na + nb - 1; ++t) {
            T sum{0};
            for (std::size_t m = 0; m < ma; ++m) {
                for (std::size_t n = 0; n < na; ++n) {
                    if (s >= m && s - m < mb && t >= n && t - n < nb) sum += a(m, n) * b(s - m, t - n);
                }
            }
            c(s, t) = sum;
        }
    }
}

// Valid cross-correlation, output (H - Fh + 1) x (W - Fw + 1):
// (X * W)[i][j] = sum_m sum_n W[m][n] * X[i+m][j+n]
template <Scalar T>
void cross_correlate_valid(TensorView<const T, 2> x, TensorView<const T, 2> kernel, TensorView<T, 2> out) {
    const std::size_t fh = kernel.extent(0), fw = kernel.extent(1);
    for (std::size_t i = 0; i + fh <= x.extent(0); ++i) {
        for (std::size_t j = 0; j + fw <= x.extent(1); ++j) {
            T sum{0};
            for (std::size_t m = 0; m < fh; ++m)
                for (std::size_t n = 0; n < fw; ++n) sum += kernel(m, n) * x(i + m, j + n);
            out(i, j) = sum;
        }
    }
}

// x~[c][u][v] = x[c][u-P][v-P] inside the input, 0 in the P rings of padding.
template <Scalar T>
void zero_pad(TensorView<const T, 3> x, std::size_t padding, TensorView<T, 3> padded) {
    for (std::size_t c = 0; c < padded.extent(0); ++c)
        for (std::size_t u = 0; u < padded.extent(1); ++u)
            for (std::size_t v = 0; v < padded.extent(2); ++v) {
                const bool inside =
                    u >= padding && u - padding < x.extent(1) && v >= padding && v - padding < x.extent(2);
                padded(c, u, v) = inside ? x(c, u - padding, v - padding) : T{0};
            }
}

// net[k][i][j] = sum_c sum_m sum_n w[k][c][m][n] * x~[c][iS+m][jS+n] + b[k]   (section 4.3)
template <Scalar T>
void conv2d_forward(TensorView<const T, 3> x, TensorView<const T, 4> w, std::span<const T> b, std::size_t stride,
                    std::size_t padding, TensorView<T, 3> net) {
    const std::size_t channels = x.extent(0), height = x.extent(1), width = x.extent(2);
    const std::size_t fh = w.extent(2), fw = w.extent(3);
    for (std::size_t k = 0; k < net.extent(0); ++k) {
        for (std::size_t i = 0; i < net.extent(1); ++i) {
            for (std::size_t j = 0; j < net.extent(2); ++j) {
                T sum = b[k];
                for (std::size_t c = 0; c < channels; ++c) {
                    for (std::size_t m = 0; m < fh; ++m) {
                        for (std::size_t n = 0; n < fw; ++n) {
                            // x~ at (iS+m, jS+n) is x at (iS+m-P, jS+n-P), or a padding zero.
                            const std::size_t u = i * stride + m, v = j * stride + n;
                            if (u < padding || u - padding >= height || v < padding || v - padding >= width) continue;
                            sum += w(k, c, m, n) * x(c, u - padding, v - padding);
                        }
                    }
                }
                net(k, i, j) = sum;
            }
        }
    }
}

// The stride-1 layout of delta (section 8.2), of size He x We with
// He = H + 2P - Fh + 1, We = W + 2P - Fw + 1:
// d^[k][iS][jS] = delta[k][i][j], and 0 everywhere else.
template <Scalar T>
void dilate_delta(TensorView<const T, 3> delta, std::size_t stride, TensorView<T, 3> expanded) {
    std::fill(expanded.begin(), expanded.end(), T{0});
    for (std::size_t k = 0; k < delta.extent(0); ++k)
        for (std::size_t i = 0; i < delta.extent(1); ++i)
            for (std::size_t j = 0; j < delta.extent(2); ++j) expanded(k, i * stride, j * stride) = delta(k, i, j);
}

// dE/da^{l-1}_c = crop_P( sum_k d^_k * W_{k,c} )   (sections 8.1 to 8.4)
// The full convolution of the dilated delta with each filter channel (the same
// as cross-correlating the (F-1)-padded delta with the 180-degree rotated
// filter) gives the gradient for the padded input; the P padding rings are cut
// off. The caller multiplies by f'(net^{l-1}) to get delta^{l-1}.
template <Scalar T>
void conv2d_backward_input(TensorView<const T, 3> delta, TensorView<const T, 4> w, std::size_t stride,
                           std::size_t padding, TensorView<T, 3> grad_input) {
    const std::size_t filters = w.extent(0), channels = w.extent(1), fh = w.extent(2), fw = w.extent(3);
    const std::size_t height = grad_input.extent(1), width = grad_input.extent(2);
    const std::size_t expanded_h = height + 2 * padding - fh + 1, expanded_w = width + 2 * padding - fw + 1;

    Tensor<T, 3> expanded({filters, expanded_h, expanded_w});
    dilate_delta<T>(delta, stride, expanded);

    Tensor<T, 2> sum({height + 2 * padding, width + 2 * padding});
    Tensor<T, 2> partial({height + 2 * padding, width + 2 * padding});
    for (std::size_t c = 0; c < channels; ++c) {
        sum.fill(T{0});
        for (std::size_t k = 0; k < filters; ++k) {
            full_convolution<T>(expanded[k], w[k][c], partial);
            for (std::size_t e = 0; e < sum.size(); ++e) sum.data()[e] += partial.data()[e];
        }
        for (std::size_t u = 0; u < height; ++u)
            for (std::size_t v = 0; v < width; ++v) grad_input(c, u, v) = sum(u + padding, v + padding);
    }
}

// The same gradient by the direct chain rule (section 8.4):
// dE/da^{l-1}[c][u][v] = sum_k sum_{i,j} delta[k][i][j] * w[k][c][u+P-iS][v+P-jS]
// (terms whose weight index falls outside [0,Fh) x [0,Fw) are left out)
template <Scalar T>
void conv2d_backward_input_direct(TensorView<const T, 3> delta, TensorView<const T, 4> w, std::size_t stride,
                                  std::size_t padding, TensorView<T, 3> grad_input) {
    const std::size_t fh = w.extent(2), fw = w.extent(3);
    for (std::size_t c = 0; c < grad_input.extent(0); ++c) {
        for (std::size_t u = 0; u < grad_input.extent(1); ++u) {
            for (std::size_t v = 0; v < grad_input.extent(2); ++v) {
                T sum{0};
                for (std::size_t k = 0; k < delta.extent(0); ++k) {
                    for (std::size_t i = 0; i < delta.extent(1); ++i) {
                        for (std::size_t j = 0; j < delta.extent(2); ++j) {
                            const std::size_t row = u + padding, col = v + padding;
                            if (row < i * stride || col < j * stride) continue;
                            const std::size_t m = row - i * stride, n = col - j * stride;
                            if (m < fh && n < fw) sum += delta(k, i, j) * w(k, c, m, n);
                        }
                    }
                }
                grad_input(c, u, v) = sum;
            }
        }
    }
}

// dE/db[k] += sum_{i,j} delta[k][i][j]   (section 8.6)
template <Scalar T>
void conv2d_bias_grad(TensorView<const T, 3> delta, std::span<T> grad_b) {
    for (std::size_t k = 0; k < delta.extent(0); ++k)
        for (std::size_t i = 0; i < delta.extent(1); ++i)
            for (std::size_t j = 0; j < delta.extent(2); ++j) grad_b[k] += delta(k, i, j);
}

// dE/dw[k][c][m][n] += (a~_c * d^_k)[m][n] = sum_{i,j} delta[k][i][j] * a~[c][iS+m][jS+n]   (section 8.5)
// and the bias gradient of section 8.6.
// a~ is the input padded by P; the dilated delta acts as the kernel of a valid
// cross-correlation, which yields exactly Fh x Fw values.
template <Scalar T>
void conv2d_weight_grad(TensorView<const T, 3> input, TensorView<const T, 3> delta, std::size_t stride,
                        std::size_t padding, TensorView<T, 4> grad_w, std::span<T> grad_b) {
    const std::size_t filters = grad_w.extent(0), channels = grad_w.extent(1);
    const std::size_t fh = grad_w.extent(2), fw = grad_w.extent(3);
    const std::size_t padded_h = input.extent(1) + 2 * padding, padded_w = input.extent(2) + 2 * padding;

    Tensor<T, 3> padded({channels, padded_h, padded_w});
    zero_pad<T>(input, padding, padded);
    Tensor<T, 3> expanded({filters, padded_h - fh + 1, padded_w - fw + 1});
    dilate_delta<T>(delta, stride, expanded);

    Tensor<T, 2> partial({fh, fw});
    for (std::size_t k = 0; k < filters; ++k) {
        for (std::size_t c = 0; c < channels; ++c) {
            cross_correlate_valid<T>(padded[c], expanded[k], partial);
            for (std::size_t m = 0; m < fh; ++m)
                for (std::size_t n = 0; n < fw; ++n) grad_w(k, c, m, n) += partial(m, n);
        }
    }
    conv2d_bias_grad<T>(delta, grad_b);
}

/// A convolution's stride, zero padding and dilation per axis (FORMULAS.md section 18).
struct ConvSpec {
    std::size_t stride_h = 1, stride_w = 1;
    std::size_t pad_h = 0, pad_w = 0;
    std::size_t dilation_h = 1, dilation_w = 1;
};

/// Whether input position (u, v) of x~ (the input padded by the spec) for output (i, j) and tap
/// (m, n) lies inside x, and where: u = i Sh + m Dh - Ph, v = j Sw + n Dw - Pw.
inline bool tap(const ConvSpec& s, std::size_t height, std::size_t width, std::size_t i, std::size_t j, std::size_t m,
                std::size_t n, std::size_t& u, std::size_t& v) {
    u = i * s.stride_h + m * s.dilation_h;
    v = j * s.stride_w + n * s.dilation_w;
    if (u < s.pad_h || v < s.pad_w || u - s.pad_h >= height || v - s.pad_w >= width) return false;
    u -= s.pad_h;
    v -= s.pad_w;
    return true;
}

// Groups (FORMULAS.md section 20) are read from the shapes: with C input channels and w of
// K x Cg x Fh x Fw there are G = C / Cg groups, and filter k sees the Cg channels of its group
// g(k) = k / (K / G), channel c of w being input channel g(k) Cg + c. G = 1 is the ordinary
// convolution.
inline std::size_t group_channel(std::size_t channels, std::size_t filters, std::size_t group_channels,
                                 std::size_t k, std::size_t c) {
    const std::size_t groups = channels / group_channels;
    return k / (filters / groups) * group_channels + c;
}

// The general convolution, forward, by direct summation:
//   y[k][i][j] = b[k] + sum_{c,m,n} w[k][c][m][n] x~[g(k) Cg + c][i Sh + m Dh][j Sw + n Dw]
template <Scalar T>
void conv2d_forward_general(TensorView<const T, 3> x, TensorView<const T, 4> w, std::span<const T> b,
                            const ConvSpec& s, TensorView<T, 3> y) {
    const auto channel = [&](std::size_t k, std::size_t c) {
        return group_channel(x.extent(0), w.extent(0), w.extent(1), k, c);
    };
    for (std::size_t k = 0; k < y.extent(0); ++k)
        for (std::size_t i = 0; i < y.extent(1); ++i)
            for (std::size_t j = 0; j < y.extent(2); ++j) {
                T sum = b.empty() ? T{0} : b[k];
                for (std::size_t c = 0; c < w.extent(1); ++c)
                    for (std::size_t m = 0; m < w.extent(2); ++m)
                        for (std::size_t n = 0; n < w.extent(3); ++n) {
                            std::size_t u = 0, v = 0;
                            if (tap(s, x.extent(1), x.extent(2), i, j, m, n, u, v))
                                sum += w(k, c, m, n) * x(channel(k, c), u, v);
                        }
                y(k, i, j) = sum;
            }
}

// Its backward pass, each term of the forward sum differentiated where it stands:
//   dE/dx[g(k) Cg + c][u][v] = sum over (k, i, j, m, n) reading it of delta[k][i][j] w[k][c][m][n]  (written)
//   dE/dw[k][c][m][n] += sum_{i,j} delta[k][i][j] x~[g(k) Cg + c][i Sh + m Dh][j Sw + n Dw]
//   dE/db[k] += sum_{i,j} delta[k][i][j]                                       (when grad_b is not empty)
template <Scalar T>
void conv2d_backward_general(TensorView<const T, 3> x, TensorView<const T, 3> delta, TensorView<const T, 4> w,
                             const ConvSpec& s, TensorView<T, 3> grad_x, TensorView<T, 4> grad_w, std::span<T> grad_b) {
    const auto channel = [&](std::size_t k, std::size_t c) {
        return group_channel(x.extent(0), w.extent(0), w.extent(1), k, c);
    };
    std::fill(grad_x.begin(), grad_x.end(), T{0});
    for (std::size_t k = 0; k < delta.extent(0); ++k)
        for (std::size_t i = 0; i < delta.extent(1); ++i)
            for (std::size_t j = 0; j < delta.extent(2); ++j) {
                const T d = delta(k, i, j);
                if (!grad_b.empty()) grad_b[k] += d;
                for (std::size_t c = 0; c < w.extent(1); ++c)
                    for (std::size_t m = 0; m < w.extent(2); ++m)
                        for (std::size_t n = 0; n < w.extent(3); ++n) {
                            std::size_t u = 0, v = 0;
                            if (!tap(s, x.extent(1), x.extent(2), i, j, m, n, u, v)) continue;
                            grad_x(channel(k, c), u, v) += d * w(k, c, m, n);
                            grad_w(k, c, m, n) += d * x(channel(k, c), u, v);
                        }
            }
}

}  // namespace cnn::reference
