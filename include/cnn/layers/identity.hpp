// Identity: y = x, dE/dx = dE/dy. The default shortcut of a Residual (which adds it
// without copying), and a branch of a Parallel that passes its input through.
#pragma once

#include <algorithm>
#include <span>
#include <string>

#include "cnn/layer.hpp"

namespace cnn {

template <Scalar T>
class Identity : public detail::WithoutParameters<T> {
public:
    using value_type = T;

    [[nodiscard]] std::string describe() const { return "Identity"; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return in; }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> /*context*/) const {
        detail::expect_shape(y, x.shape(), *this, "forward output");
        std::copy(x.begin(), x.end(), y.begin());
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> /*y*/, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Context<T> /*context*/, Accumulate accumulate = Accumulate::no) {
        if (dx.data() == nullptr) return;
        detail::expect_shape(dy, x.shape(), *this, "output gradient");
        detail::expect_shape(dx, x.shape(), *this, "input gradient");
        detail::pass_back(dy, dx, accumulate);
    }
};

}  // namespace cnn
