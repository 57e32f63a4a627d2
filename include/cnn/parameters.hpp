// What a layer's parameters are, for the code that treats every layer alike:
// optimizers, initialisation, serialisation, early stopping.
//
// A layer keeps all its values in one flat span, in this order: weights, then
// biases, then buffers.
//   weights  learned, and decayed by weight decay;
//   biases   learned, never decayed;
//   buffers  not learned (running statistics): saved, loaded, checkpointed and restored
//            like the others, but never touched by an optimizer.
// A layer says how many of each it has with parameter_layout(); one that does not say
// has weights only.
#pragma once

#include <cstddef>
#include <span>

#include "cnn/tensor.hpp"

namespace cnn {

enum class Role { weight, bias, buffer };

/// How many of a layer's values are weights, biases and buffers (in that order).
struct ParameterLayout {
    std::size_t weights = 0;
    std::size_t biases = 0;
    std::size_t buffers = 0;

    [[nodiscard]] constexpr std::size_t size() const noexcept { return weights + biases + buffers; }
    /// The values an optimizer updates: the weights and biases.
    [[nodiscard]] constexpr std::size_t learned() const noexcept { return weights + biases; }
    [[nodiscard]] constexpr Role role(std::size_t index) const noexcept {
        return index < weights ? Role::weight : index < learned() ? Role::bias : Role::buffer;
    }
};

/// One layer's values and their gradients, in the same order, and which are which.
template <Scalar T>
struct ParameterGroup {
    std::span<T> values;
    std::span<T> gradients;
    ParameterLayout layout{values.size(), 0, 0};
};

/// How a layer draws its weights (Layer::initialize).
enum class Init {
    he,      ///< weights ~ N(0, 2 / fan_in): for layers followed by ReLU
    xavier,  ///< weights ~ U(+-sqrt(6 / (fan_in + fan_out))): Glorot and Bengio
};

}  // namespace cnn
