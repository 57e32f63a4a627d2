// MaxPool and MeanPool: window nh x nw, stride S (default: the window height),
// no padding, each channel on its own (FORMULAS.md sections 5 and 9).
//   H2 = floor((H - nh) / S) + 1
//   max:  y = max over the window; backward routes each delta to the window's
//         first maximum (row-major), adding up where windows overlap.
//   mean: y = window average; backward spreads delta / (nh nw) over the window
//         (the Kronecker product delta (x) (1/n^2) when windows tile the input).
#pragma once

#include <span>
#include <string>

#include "cnn/layer.hpp"
#include "cnn/kernels/pooling.hpp"
#include "cnn/reference/pooling.hpp"

namespace cnn {

namespace detail {

enum class PoolKind { max, mean };

template <Scalar T, PoolKind Kind>
class Pool2D {
public:
    using value_type = T;

    explicit Pool2D(Extent2D window) : Pool2D(window, window.height) {}
    Pool2D(Extent2D window, std::integral auto stride)
        : window_{checked_parameter(window.height, 1, name(), "window height"),
                  checked_parameter(window.width, 1, name(), "window width")},
          stride_(checked_parameter(stride, 1, name(), "stride")) {}

    [[nodiscard]] static constexpr const char* name() noexcept { return Kind == PoolKind::max ? "MaxPool" : "MeanPool"; }
    [[nodiscard]] reference::Window window() const noexcept { return window_; }
    [[nodiscard]] std::size_t stride() const noexcept { return stride_; }

    [[nodiscard]] std::string describe() const {
        return std::string(name()) + "(" + std::to_string(window_.height) + "x" + std::to_string(window_.width) +
               ", stride " + std::to_string(stride_) + ")";
    }

    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const {
        if (window_.height > in[2] || window_.width > in[3])
            throw shape_error(describe() + ": the window is larger than the input " + to_string(in));
        return {in[0], in[1], (in[2] - window_.height) / stride_ + 1, (in[3] - window_.width) / stride_ + 1};
    }

    [[nodiscard]] std::span<T> parameters() noexcept { return {}; }
    [[nodiscard]] std::span<const T> parameters() const noexcept { return {}; }
    [[nodiscard]] std::span<T> gradients() noexcept { return {}; }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Scratch<T>& /*scratch*/) const {
        expect_shape(y, output_shape(x.shape()), *this, "forward output");
        if constexpr (Kind == PoolKind::max)
            kernels::maxpool_forward<T>(x.data(), geometry(x.shape(), y.shape()), y.data());
        else
            kernels::meanpool_forward<T>(x.data(), geometry(x.shape(), y.shape()), y.data());
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Scratch<T>& /*scratch*/) {
        if (dx.data() == nullptr) return;
        expect_shape(dy, y.shape(), *this, "output gradient");
        expect_shape(dx, x.shape(), *this, "input gradient");
        if constexpr (Kind == PoolKind::max)
            kernels::maxpool_backward<T>(x.data(), dy.data(), geometry(x.shape(), y.shape()), dx.data());
        else
            kernels::meanpool_backward<T>(dy.data(), geometry(x.shape(), y.shape()), dx.data());
    }

    /// Max pooling of ReLU(x), computed from x in one pass: max pooling commutes with ReLU.
    /// cnn::Sequential runs a ReLU followed by a MaxPool this way.
    void forward_after_relu(TensorView<const T, 4> x, TensorView<T, 4> y) const
        requires(Kind == PoolKind::max)
    {
        expect_shape(y, output_shape(x.shape()), *this, "forward output");
        kernels::maxpool_forward<T, true>(x.data(), geometry(x.shape(), y.shape()), y.data());
    }

    /// The gradient with respect to x of MaxPool(ReLU(x)), in one pass: what ReLU::backward
    /// would make of this layer's backward.
    void backward_after_relu(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                             TensorView<T, 4> dx) const
        requires(Kind == PoolKind::max)
    {
        if (dx.data() == nullptr) return;
        expect_shape(dy, y.shape(), *this, "output gradient");
        expect_shape(dx, x.shape(), *this, "input gradient");
        kernels::maxpool_backward<T, true>(x.data(), dy.data(), geometry(x.shape(), y.shape()), dx.data());
    }

private:
    [[nodiscard]] kernels::PoolGeometry geometry(const Shape<4>& in, const Shape<4>& out) const noexcept {
        return {in[0] * in[1], in[2], in[3], out[2], out[3], window_, stride_};
    }

    reference::Window window_;
    std::size_t stride_;
};

}  // namespace detail

template <Scalar T>
class MaxPool : public detail::Pool2D<T, detail::PoolKind::max> {
public:
    using detail::Pool2D<T, detail::PoolKind::max>::Pool2D;
};

template <Scalar T>
class MeanPool : public detail::Pool2D<T, detail::PoolKind::mean> {
public:
    using detail::Pool2D<T, detail::PoolKind::mean>::Pool2D;
};

}  // namespace cnn
