// Batch losses. Each returns the mean loss over the batch and writes
// delta = dE/d(network output) for E = that mean (so each sample's delta is
// divided by the batch size N). Outputs are N x K x 1 x 1 (or any N x ...).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "cnn/error.hpp"
#include "cnn/reference/loss.hpp"
#include "cnn/tensor.hpp"

namespace cnn {

/// Softmax cross-entropy: E_n = log sum_j e^{z_j} - z_{t_n}, computed stably (large logits
/// give neither inf nor NaN); delta = (softmax(z) - onehot(t)) / N. The mean over the batch.
/// With `label_smoothing` e in [0, 1] (PyTorch's CrossEntropyLoss(label_smoothing=e)) the
/// target is (1 - e) onehot(t) + e / K instead of onehot(t) (FORMULAS.md section 21); other
/// values are a cnn::parameter_error.
template <Scalar T>
double softmax_cross_entropy(TensorView<const T, 4> logits, std::span<const std::uint32_t> labels,
                             TensorView<T, 4> delta, double label_smoothing = 0.0) {
    if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0))
        throw parameter_error("softmax_cross_entropy: label smoothing " + std::to_string(label_smoothing) +
                              " is not in [0, 1]");
    const std::size_t samples = logits.extent(0), classes = logits.size() / std::max<std::size_t>(samples, 1);
    if (labels.size() != samples)
        throw shape_error("softmax_cross_entropy: " + std::to_string(samples) + " outputs but " +
                          std::to_string(labels.size()) + " labels");
    if (delta.shape() != logits.shape())
        throw shape_error("softmax_cross_entropy: delta has shape " + to_string(delta.shape()) + ", logits " +
                          to_string(logits.shape()));
    double total = 0;
    for (std::size_t n = 0; n < samples; ++n) {
        if (labels[n] >= classes)
            throw shape_error("softmax_cross_entropy: label " + std::to_string(labels[n]) + " of sample " +
                              std::to_string(n) + " is not below the " + std::to_string(classes) + " classes");
        const std::span<const T> z(logits.data() + n * classes, classes);
        const std::span<T> d(delta.data() + n * classes, classes);
        total += static_cast<double>(reference::softmax_cross_entropy<T>(z, labels[n], d, static_cast<T>(label_smoothing)));
        for (T& value : d) value /= static_cast<T>(samples);
    }
    return total / static_cast<double>(samples);
}

/// Mean squared error: E_n = 1/2 sum_j (t_j - y_j)^2; delta = (y - t) / N.
template <Scalar T>
double mean_squared_error(TensorView<const T, 4> outputs, TensorView<const T, 4> targets, TensorView<T, 4> delta) {
    if (targets.shape() != outputs.shape() || delta.shape() != outputs.shape())
        throw shape_error("mean_squared_error: outputs " + to_string(outputs.shape()) + ", targets " +
                          to_string(targets.shape()) + " and delta " + to_string(delta.shape()) + " differ");
    const std::size_t samples = outputs.extent(0);
    const double total = static_cast<double>(reference::mean_squared_error<T>(outputs.span(), targets.span(), delta.span()));
    for (T& value : delta) value /= static_cast<T>(samples);
    return total / static_cast<double>(samples);
}

/// Index of the largest output of sample n (the predicted class; the first on ties).
template <Scalar T>
std::uint32_t predicted_class(TensorView<const T, 4> outputs, std::size_t n) {
    const std::size_t classes = outputs.size() / outputs.extent(0);
    const T* row = outputs.data() + n * classes;
    std::size_t best = 0;
    for (std::size_t j = 1; j < classes; ++j)
        if (row[j] > row[best]) best = j;
    return static_cast<std::uint32_t>(best);
}

}  // namespace cnn
