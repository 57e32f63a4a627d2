// Reference losses, output deltas and the SGD update (FORMULAS.md section 7).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>

#include "cnn/reference/activation.hpp"
#include "cnn/tensor.hpp"

namespace cnn::reference {

// Softmax cross-entropy of one sample with logits z and true class t:
// E = log(sum_j e^{z_j}) - z_t, computed as m + log(sum_j e^{z_j - m}) with m = max_j z_j
// so that large logits give no overflow. delta_j = dE/dz_j = softmax(z)_j - [j == t].
// With label smoothing e (FORMULAS.md section 21) the target is q_j = (1 - e) [j == t] + e / K
// for K classes: E = log(sum_j e^{z_j}) - (1 - e) z_t - (e / K) sum_j z_j, delta_j = softmax(z)_j - q_j.
template <Scalar T>
T softmax_cross_entropy(std::span<const T> logits, std::size_t target, std::span<T> delta, T smoothing = T{0}) {
    const T largest = *std::max_element(logits.begin(), logits.end());
    T sum{0};
    for (T z : logits) sum += std::exp(z - largest);
    const T log_sum = largest + std::log(sum);
    if (smoothing == T{0}) {
        for (std::size_t j = 0; j < logits.size(); ++j)
            delta[j] = std::exp(logits[j] - log_sum) - (j == target ? T{1} : T{0});
        return log_sum - logits[target];
    }
    const T share = smoothing / static_cast<T>(logits.size());
    T logit_sum{0};
    for (std::size_t j = 0; j < logits.size(); ++j) {
        delta[j] = std::exp(logits[j] - log_sum) - ((j == target ? T{1} - smoothing : T{0}) + share);
        logit_sum += logits[j];
    }
    return log_sum - (T{1} - smoothing) * logits[target] - share * logit_sum;
}

// E = 1/2 sum_j (t_j - y_j)^2,   dE/dy_j = y_j - t_j
template <Scalar T>
T mean_squared_error(std::span<const T> y, std::span<const T> t, std::span<T> grad_y) {
    T loss{0};
    for (std::size_t j = 0; j < y.size(); ++j) {
        loss += (t[j] - y[j]) * (t[j] - y[j]) / T{2};
        grad_y[j] = y[j] - t[j];
    }
    return loss;
}

// Sigmoid output with E = 1/2 sum (t - y)^2:  delta_j = dE/dnet_j = -(t_j - y_j) y_j (1 - y_j)
template <Scalar T>
void sigmoid_mse_output_delta(std::span<const T> y, std::span<const T> t, std::span<T> delta) {
    for (std::size_t j = 0; j < y.size(); ++j) delta[j] = -(t[j] - y[j]) * y[j] * (T{1} - y[j]);
}

// w <- w - eta * dE/dw
template <Scalar T>
void sgd_update(std::span<T> w, std::span<const T> grad, T eta) {
    for (std::size_t i = 0; i < w.size(); ++i) w[i] -= eta * grad[i];
}

}  // namespace cnn::reference
