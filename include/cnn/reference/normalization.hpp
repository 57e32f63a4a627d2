// Reference batch normalisation, dropout and global average pooling (FORMULAS.md
// sections 15 to 17), written literally, one element at a time, on N x C x H x W
// tensors. The layers' fast paths (cnn/layers/normalization.hpp) are tested against these.
#pragma once

#include <cmath>
#include <cstddef>
#include <span>

#include "cnn/tensor.hpp"

namespace cnn::reference {

/// One channel's batch statistics: mean and biased variance over N, H and W.
struct ChannelStatistics {
    double mean;
    double variance;
};

// mu_c = 1/m sum_{n,i,j} x[n][c][i][j],  var_c = 1/m sum (x - mu_c)^2,  m = N H W
template <Scalar T>
ChannelStatistics channel_statistics(TensorView<const T, 4> x, std::size_t c) {
    const double m = static_cast<double>(x.extent(0) * x.extent(2) * x.extent(3));
    double sum = 0;
    for (std::size_t n = 0; n < x.extent(0); ++n)
        for (std::size_t i = 0; i < x.extent(2); ++i)
            for (std::size_t j = 0; j < x.extent(3); ++j) sum += static_cast<double>(x(n, c, i, j));
    const double mean = sum / m;
    double squares = 0;
    for (std::size_t n = 0; n < x.extent(0); ++n)
        for (std::size_t i = 0; i < x.extent(2); ++i)
            for (std::size_t j = 0; j < x.extent(3); ++j) {
                const double d = static_cast<double>(x(n, c, i, j)) - mean;
                squares += d * d;
            }
    return {mean, squares / m};
}

// Training: y = gamma_c (x - mu_c) / sqrt(var_c + eps) + beta_c, with the batch's mu_c and var_c
// (written to `statistics`, one per channel).
template <Scalar T>
void batchnorm_forward_training(TensorView<const T, 4> x, std::span<const T> gamma, std::span<const T> beta,
                                double epsilon, TensorView<T, 4> y, std::span<ChannelStatistics> statistics) {
    for (std::size_t c = 0; c < x.extent(1); ++c) {
        statistics[c] = channel_statistics(x, c);
        const double inv_std = 1.0 / std::sqrt(statistics[c].variance + epsilon);
        for (std::size_t n = 0; n < x.extent(0); ++n)
            for (std::size_t i = 0; i < x.extent(2); ++i)
                for (std::size_t j = 0; j < x.extent(3); ++j) {
                    const double x_hat = (static_cast<double>(x(n, c, i, j)) - statistics[c].mean) * inv_std;
                    y(n, c, i, j) = static_cast<T>(gamma[c] * x_hat + beta[c]);
                }
    }
}

// Training, backward (the batch statistics depend on x):
//   dE/dgamma_c += sum dy x^,  dE/dbeta_c += sum dy,
//   dE/dx = gamma_c / sqrt(var_c + eps) (dy - 1/m sum dy - x^ 1/m sum dy x^)
template <Scalar T>
void batchnorm_backward_training(TensorView<const T, 4> x, TensorView<const T, 4> dy, std::span<const T> gamma,
                                 double epsilon, std::span<const ChannelStatistics> statistics, TensorView<T, 4> dx,
                                 std::span<T> gamma_gradient, std::span<T> beta_gradient) {
    const double m = static_cast<double>(x.extent(0) * x.extent(2) * x.extent(3));
    for (std::size_t c = 0; c < x.extent(1); ++c) {
        const double inv_std = 1.0 / std::sqrt(statistics[c].variance + epsilon);
        const auto x_hat = [&](std::size_t n, std::size_t i, std::size_t j) {
            return (static_cast<double>(x(n, c, i, j)) - statistics[c].mean) * inv_std;
        };
        double sum_dy = 0, sum_dy_x_hat = 0;
        for (std::size_t n = 0; n < x.extent(0); ++n)
            for (std::size_t i = 0; i < x.extent(2); ++i)
                for (std::size_t j = 0; j < x.extent(3); ++j) {
                    sum_dy += static_cast<double>(dy(n, c, i, j));
                    sum_dy_x_hat += static_cast<double>(dy(n, c, i, j)) * x_hat(n, i, j);
                }
        gamma_gradient[c] += static_cast<T>(sum_dy_x_hat);
        beta_gradient[c] += static_cast<T>(sum_dy);
        for (std::size_t n = 0; n < x.extent(0); ++n)
            for (std::size_t i = 0; i < x.extent(2); ++i)
                for (std::size_t j = 0; j < x.extent(3); ++j)
                    dx(n, c, i, j) = static_cast<T>(gamma[c] * inv_std *
                                                    (dy(n, c, i, j) - sum_dy / m - x_hat(n, i, j) * sum_dy_x_hat / m));
    }
}

// running <- (1 - momentum) running + momentum batch, with the unbiased variance var m / (m - 1)
template <Scalar T>
void batchnorm_update_running(std::span<const ChannelStatistics> statistics, double momentum, std::size_t m,
                              std::span<T> running_mean, std::span<T> running_variance) {
    const double unbiased = static_cast<double>(m) / static_cast<double>(m - 1);
    for (std::size_t c = 0; c < statistics.size(); ++c) {
        running_mean[c] = static_cast<T>((1 - momentum) * running_mean[c] + momentum * statistics[c].mean);
        running_variance[c] =
            static_cast<T>((1 - momentum) * running_variance[c] + momentum * statistics[c].variance * unbiased);
    }
}

// Inference: y = gamma_c (x - running_mean_c) / sqrt(running_var_c + eps) + beta_c
template <Scalar T>
void batchnorm_forward_inference(TensorView<const T, 4> x, std::span<const T> gamma, std::span<const T> beta,
                                 std::span<const T> running_mean, std::span<const T> running_variance, double epsilon,
                                 TensorView<T, 4> y) {
    for (std::size_t n = 0; n < x.extent(0); ++n)
        for (std::size_t c = 0; c < x.extent(1); ++c)
            for (std::size_t i = 0; i < x.extent(2); ++i)
                for (std::size_t j = 0; j < x.extent(3); ++j) {
                    const double x_hat = (static_cast<double>(x(n, c, i, j)) - running_mean[c]) /
                                         std::sqrt(static_cast<double>(running_variance[c]) + epsilon);
                    y(n, c, i, j) = static_cast<T>(gamma[c] * x_hat + beta[c]);
                }
}

// Inference, backward (the statistics are constants):
//   dE/dx = dy gamma_c / sqrt(running_var_c + eps),  dE/dgamma_c += sum dy x^,  dE/dbeta_c += sum dy
template <Scalar T>
void batchnorm_backward_inference(TensorView<const T, 4> x, TensorView<const T, 4> dy, std::span<const T> gamma,
                                  std::span<const T> running_mean, std::span<const T> running_variance,
                                  double epsilon, TensorView<T, 4> dx, std::span<T> gamma_gradient,
                                  std::span<T> beta_gradient) {
    for (std::size_t c = 0; c < x.extent(1); ++c) {
        const double inv_std = 1.0 / std::sqrt(static_cast<double>(running_variance[c]) + epsilon);
        double sum_dy = 0, sum_dy_x_hat = 0;
        for (std::size_t n = 0; n < x.extent(0); ++n)
            for (std::size_t i = 0; i < x.extent(2); ++i)
                for (std::size_t j = 0; j < x.extent(3); ++j) {
                    const double x_hat = (static_cast<double>(x(n, c, i, j)) - running_mean[c]) * inv_std;
                    sum_dy += static_cast<double>(dy(n, c, i, j));
                    sum_dy_x_hat += static_cast<double>(dy(n, c, i, j)) * x_hat;
                    dx(n, c, i, j) = static_cast<T>(dy(n, c, i, j) * gamma[c] * inv_std);
                }
        gamma_gradient[c] += static_cast<T>(sum_dy_x_hat);
        beta_gradient[c] += static_cast<T>(sum_dy);
    }
}

// Inverted dropout with a given mask (1 = kept): y = x mask / (1 - p), dE/dx = dy mask / (1 - p)
template <Scalar T>
void dropout(TensorView<const T, 4> x, std::span<const unsigned char> mask, double rate, TensorView<T, 4> y) {
    for (std::size_t e = 0; e < x.size(); ++e)
        y.data()[e] = mask[e] ? static_cast<T>(static_cast<double>(x.data()[e]) / (1 - rate)) : T{0};
}

// y[n][c] = 1/(H W) sum_{i,j} x[n][c][i][j]
template <Scalar T>
void global_avg_pool_forward(TensorView<const T, 4> x, TensorView<T, 4> y) {
    const T area = static_cast<T>(x.extent(2) * x.extent(3));
    for (std::size_t n = 0; n < x.extent(0); ++n)
        for (std::size_t c = 0; c < x.extent(1); ++c) {
            T sum{0};
            for (std::size_t i = 0; i < x.extent(2); ++i)
                for (std::size_t j = 0; j < x.extent(3); ++j) sum += x(n, c, i, j);
            y(n, c, 0, 0) = sum / area;
        }
}

// dE/dx[n][c][i][j] = dy[n][c] / (H W)
template <Scalar T>
void global_avg_pool_backward(TensorView<const T, 4> dy, TensorView<T, 4> dx) {
    const T area = static_cast<T>(dx.extent(2) * dx.extent(3));
    for (std::size_t n = 0; n < dx.extent(0); ++n)
        for (std::size_t c = 0; c < dx.extent(1); ++c)
            for (std::size_t i = 0; i < dx.extent(2); ++i)
                for (std::size_t j = 0; j < dx.extent(3); ++j) dx(n, c, i, j) = dy(n, c, 0, 0) / area;
}

}  // namespace cnn::reference
