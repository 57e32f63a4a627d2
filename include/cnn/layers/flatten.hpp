// Flatten: N x C x H x W -> N x (C*H*W) x 1 x 1, in [channel][row][col] order
// (FORMULAS.md section 6). Backward restores the shape.
#pragma once

#include <algorithm>
#include <span>
#include <string>

#include "cnn/layer.hpp"

namespace cnn {

template <Scalar T>
class Flatten : public detail::WithoutParameters<T> {
public:
    using value_type = T;
    /// A network reads the next layer's input from this one's input, with the new shape.
    static constexpr bool reshapes_only = true;

    [[nodiscard]] std::string describe() const { return "Flatten"; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return {in[0], in[1] * in[2] * in[3], 1, 1}; }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> /*context*/) const {
        detail::expect_shape(y, output_shape(x.shape()), *this, "forward output");
        std::copy(x.begin(), x.end(), y.begin());
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Context<T> /*context*/, Accumulate accumulate = Accumulate::no) {
        if (dx.data() == nullptr) return;
        detail::expect_shape(dy, y.shape(), *this, "output gradient");
        detail::expect_shape(dx, x.shape(), *this, "input gradient");
        detail::pass_back(dy, dx, accumulate);
    }
};

}  // namespace cnn
