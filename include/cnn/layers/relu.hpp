// ReLU: y = max(0, x); backward dE/dx = dE/dy o f'(x) with f'(0) = 0 (FORMULAS.md section 2).
#pragma once

#include <span>
#include <string>

#include "cnn/layer.hpp"
#include "cnn/reference/activation.hpp"

namespace cnn {

template <Scalar T>
class ReLU {
public:
    using value_type = T;

    [[nodiscard]] std::string describe() const { return "ReLU"; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return in; }
    [[nodiscard]] std::span<T> parameters() noexcept { return {}; }
    [[nodiscard]] std::span<const T> parameters() const noexcept { return {}; }
    [[nodiscard]] std::span<T> gradients() noexcept { return {}; }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Scratch<T>& /*scratch*/) const {
        detail::expect_shape(y, x.shape(), describe(), "forward output");
        reference::relu<T, 4>(x, y);
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> /*y*/, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Scratch<T>& /*scratch*/) {
        if (dx.data() == nullptr) return;
        detail::expect_shape(dy, x.shape(), describe(), "output gradient");
        detail::expect_shape(dx, x.shape(), describe(), "input gradient");
        reference::relu_backward<T, 4>(x, dy, dx);
    }
};

}  // namespace cnn
