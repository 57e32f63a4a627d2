// Dense (fully connected): net = W x + b, W stored [out][in] (FORMULAS.md sections 6 and 7).
// Takes N x C x H x W with C*H*W == in (the [channel][row][col] flattening of
// section 6) and gives N x out x 1 x 1.
//   dE/dW += delta x^T,   dE/db += delta,   dE/dx = W^T delta
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>

#include "cnn/layer.hpp"
#include "cnn/kernels/dense.hpp"

namespace cnn {

template <Scalar T>
class Dense {
public:
    using value_type = T;
    /// Backward reads only the output's shape: a network keeps no copy of the output for it.
    static constexpr bool backward_ignores_output = true;

    Dense(std::integral auto in_features, std::integral auto out_features)
        : in_(detail::checked_parameter(in_features, 1, "Dense", "in_features")),
          out_(detail::checked_parameter(out_features, 1, "Dense", "out_features")),
          parameters_({in_ * out_ + out_}),
          gradients_({in_ * out_ + out_}) {}

    [[nodiscard]] std::size_t in_features() const noexcept { return in_; }
    [[nodiscard]] std::size_t out_features() const noexcept { return out_; }
    /// Inputs and outputs each weight connects, for weight initialisation.
    [[nodiscard]] std::size_t fan_in() const noexcept { return in_; }
    [[nodiscard]] std::size_t fan_out() const noexcept { return out_; }

    /// Weights drawn by `scheme` (row by row), biases 0.
    void initialize(Random& rng, Init scheme = Init::he) {
        detail::draw_weights(parameters().first(in_ * out_), in_, out_, rng, scheme);
        std::ranges::fill(bias(), T{0});
    }
    [[nodiscard]] ParameterLayout parameter_layout() const noexcept { return {in_ * out_, out_, 0}; }
    [[nodiscard]] LayerRecord record() const {
        return {"Dense", {{"in_features", std::int64_t(in_)}, {"out_features", std::int64_t(out_)}}, parameters_.size(), {}, {}};
    }

    [[nodiscard]] std::string describe() const {
        return "Dense(" + std::to_string(in_) + "->" + std::to_string(out_) + ")";
    }

    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const {
        const std::size_t features = in[1] * in[2] * in[3];
        if (features != in_)
            throw shape_error(describe() + " expects " + std::to_string(in_) + " inputs, gets " +
                              std::to_string(features) + " (input " + to_string(in) + ")");
        return {in[0], out_, 1, 1};
    }

    /// Weights, out x in, and biases, out.
    [[nodiscard]] TensorView<T, 2> weights() noexcept { return {parameters_.data(), {out_, in_}}; }
    [[nodiscard]] TensorView<const T, 2> weights() const noexcept { return {parameters_.data(), {out_, in_}}; }
    [[nodiscard]] std::span<T> bias() noexcept { return parameters().subspan(in_ * out_); }
    [[nodiscard]] std::span<const T> bias() const noexcept { return parameters_.span().subspan(in_ * out_); }
    [[nodiscard]] TensorView<T, 2> weight_gradients() noexcept { return {gradients_.data(), {out_, in_}}; }
    [[nodiscard]] std::span<T> bias_gradients() noexcept { return gradients().subspan(in_ * out_); }

    [[nodiscard]] std::span<T> parameters() noexcept { return parameters_.span(); }
    [[nodiscard]] std::span<T> gradients() noexcept { return gradients_.span(); }
    [[nodiscard]] std::span<const T> parameters() const noexcept { return parameters_.span(); }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context) const {
        detail::expect_shape(y, output_shape(x.shape()), *this, "forward output");
        kernels::dense_forward<T>(x.data(), x.extent(0), in_, weights(), bias(), y.data(), context.scratch());
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Context<T> context, Accumulate accumulate = Accumulate::no) {
        // A null dx (the first layer of a network) skips the input gradient.
        detail::expect_shape(dy, y.shape(), *this, "output gradient");
        if (dx.data() != nullptr) detail::expect_shape(dx, x.shape(), *this, "input gradient");
        kernels::dense_backward<T>(x.data(), dy.data(), x.extent(0), in_, weights(), dx.data(), weight_gradients(),
                                   bias_gradients(), context.scratch(), accumulate);
    }

private:
    std::size_t in_, out_;
    Tensor<T, 1> parameters_;
    Tensor<T, 1> gradients_;
};

}  // namespace cnn
