// Activations applied element by element (FORMULAS.md section 14):
//
//   Sigmoid     y = 1 / (1 + e^-x)                         f' = y (1 - y)
//   Tanh        y = tanh x                                 f' = 1 - y^2
//   LeakyReLU   y = x (x > 0), a x otherwise (a >= 0)      f' = 1 (x > 0), a otherwise
//   ELU         y = x (x > 0), a (e^x - 1) otherwise       f' = 1 (x > 0), y + a otherwise
//   GELU        y = x Phi(x) (exact), or PyTorch's tanh approximation
//
// and Softmax over the channels of each position, for a network's inference output:
//   y_c = e^{x_c} / sum_k e^{x_k}                          dE/dx = y o (dy - sum_c dy_c y_c)
//
// Forward y = f(x); backward dE/dx = dE/dy o f'(x) (written or added into dx). Each runs
// the scalar function of cnn/reference/activation.hpp on blocks spread over the thread pool
// (each element on its own, so the result is the same for any thread count). Sigmoid, Tanh,
// LeakyReLU and ELU never decrease: a max pool after one runs first (cnn/graph/fuse.hpp);
// their derivatives are written in terms of y where the function saturates, so that the
// inputs a saturated window ties on get the same (zero) gradient whichever wins.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <sstream>
#include <string>

#include "cnn/kernels/threads.hpp"
#include "cnn/layer.hpp"
#include "cnn/reference/activation.hpp"

namespace cnn {

namespace detail {

/// A hyper-parameter as people write it: 0.01, not 0.010000.
inline std::string number(double value) {
    std::string text = std::to_string(value);
    while (text.size() > 1 && text.back() == '0') text.pop_back();
    if (!text.empty() && text.back() == '.') text.pop_back();
    return text;
}

/// A hyper-parameter that must be a finite number >= 0 that T can hold.
template <Scalar T>
T checked_non_negative(double value, const char* layer, const char* what) {
    if (!(value >= 0) || !std::isfinite(value))
        throw parameter_error(std::string(layer) + ": " + what + " must be a finite number >= 0 (the layer then never "
                                                                 "decreases), got " +
                              std::to_string(value));
    if (value > static_cast<double>(std::numeric_limits<T>::max())) {
        std::ostringstream message;
        message << layer << ": " << what << " " << value << " is too large for "
                << (sizeof(T) == 4 ? "float" : "this number type");
        throw parameter_error(message.str());
    }
    return static_cast<T>(value);
}

/// y = f(x) and dE/dx = dE/dy f'(x, y), element by element, for a Function with value(x),
/// derivative(x, y), describe() and record().
template <Scalar T, class Function>
class Elementwise : public WithoutParameters<T> {
public:
    using value_type = T;

    [[nodiscard]] std::string describe() const { return function_.describe(); }
    [[nodiscard]] LayerRecord record() const { return function_.record(); }
    /// The scalar function, value(x) and derivative(x, y): a fused layer applies it where
    /// it has the values (cnn::ConvActMaxPool, to the pooled maxima only).
    [[nodiscard]] const Function& function() const noexcept { return function_; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return in; }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> /*context*/) const {
        expect_shape(y, x.shape(), *this, "forward output");
        const T* in = x.data();
        T* out = y.data();
        parallel_blocks(x.size(), block_size, [&](std::size_t begin, std::size_t end) {
            for (std::size_t i = begin; i < end; ++i) out[i] = function_.value(in[i]);
        });
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy, TensorView<T, 4> dx,
                  Context<T> /*context*/, Accumulate accumulate = Accumulate::no) {
        if (dx.data() == nullptr) return;
        expect_shape(dy, x.shape(), *this, "output gradient");
        expect_shape(y, x.shape(), *this, "forward output");
        expect_shape(dx, x.shape(), *this, "input gradient");
        const T *in = x.data(), *out = y.data(), *d_out = dy.data();
        T* d_in = dx.data();
        parallel_blocks(x.size(), block_size, [&](std::size_t begin, std::size_t end) {
            for (std::size_t i = begin; i < end; ++i) {
                const T d = d_out[i] * function_.derivative(in[i], out[i]);
                d_in[i] = accumulate == Accumulate::yes ? d_in[i] + d : d;
            }
        });
    }

protected:
    explicit Elementwise(Function function = {}) : function_(function) {}
    Function function_;

private:
    static constexpr std::size_t block_size = 1 << 14;
};

template <Scalar T>
struct SigmoidFunction {
    T value(T x) const noexcept { return reference::sigmoid(x); }
    T derivative(T /*x*/, T y) const noexcept { return reference::sigmoid_derivative(y); }
    [[nodiscard]] std::string describe() const { return "Sigmoid"; }
    [[nodiscard]] LayerRecord record() const { return {"Sigmoid", {}, 0, {}, {}}; }
};

template <Scalar T>
struct TanhFunction {
    T value(T x) const noexcept { return std::tanh(x); }
    T derivative(T /*x*/, T y) const noexcept { return reference::tanh_derivative(y); }
    [[nodiscard]] std::string describe() const { return "Tanh"; }
    [[nodiscard]] LayerRecord record() const { return {"Tanh", {}, 0, {}, {}}; }
};

template <Scalar T>
struct LeakyReLUFunction {
    T slope;
    T value(T x) const noexcept { return reference::leaky_relu(x, slope); }
    T derivative(T x, T /*y*/) const noexcept { return reference::leaky_relu_derivative(x, slope); }
    [[nodiscard]] std::string describe() const { return "LeakyReLU(" + number(slope) + ")"; }
    [[nodiscard]] LayerRecord record() const { return {"LeakyReLU", {{"slope", double(slope)}}, 0, {}, {}}; }
};

template <Scalar T>
struct ELUFunction {
    T alpha;
    T value(T x) const noexcept { return reference::elu(x, alpha); }
    T derivative(T x, T y) const noexcept { return reference::elu_derivative(x, y, alpha); }
    [[nodiscard]] std::string describe() const { return "ELU(" + number(alpha) + ")"; }
    [[nodiscard]] LayerRecord record() const { return {"ELU", {{"alpha", double(alpha)}}, 0, {}, {}}; }
};

}  // namespace detail

/// PyTorch's names for GELU's two forms: `none` (exact, x Phi(x)) and `tanh`.
enum class GeluApproximation { none, tanh };

namespace detail {
template <Scalar T>
struct GELUFunction {
    GeluApproximation approximation;
    T value(T x) const noexcept {
        return approximation == GeluApproximation::none ? reference::gelu(x) : reference::gelu_tanh(x);
    }
    T derivative(T x, T /*y*/) const noexcept {
        return approximation == GeluApproximation::none ? reference::gelu_derivative(x)
                                                        : reference::gelu_tanh_derivative(x);
    }
    [[nodiscard]] std::string describe() const {
        return approximation == GeluApproximation::none ? "GELU" : "GELU(tanh)";
    }
    [[nodiscard]] LayerRecord record() const {
        return {"GELU", {{"tanh_approximation", std::int64_t(approximation == GeluApproximation::tanh)}}, 0, {}, {}};
    }
};
}  // namespace detail

template <Scalar T>
class Sigmoid : public detail::Elementwise<T, detail::SigmoidFunction<T>> {
public:
    static constexpr bool monotone_non_decreasing = true;
    Sigmoid() = default;
};

template <Scalar T>
class Tanh : public detail::Elementwise<T, detail::TanhFunction<T>> {
public:
    static constexpr bool monotone_non_decreasing = true;
    Tanh() = default;
};

/// slope: the gradient for x <= 0 (PyTorch's negative_slope, 0.01 by default), at least 0.
template <Scalar T>
class LeakyReLU : public detail::Elementwise<T, detail::LeakyReLUFunction<T>> {
public:
    static constexpr bool monotone_non_decreasing = true;
    explicit LeakyReLU(double slope = 0.01)
        : detail::Elementwise<T, detail::LeakyReLUFunction<T>>(
              {detail::checked_non_negative<T>(slope, "LeakyReLU", "slope")}) {}
    [[nodiscard]] T slope() const noexcept { return this->function_.slope; }
};

/// alpha: the value approached for x -> -infinity is -alpha (PyTorch's default 1), at least 0.
template <Scalar T>
class ELU : public detail::Elementwise<T, detail::ELUFunction<T>> {
public:
    static constexpr bool monotone_non_decreasing = true;
    explicit ELU(double alpha = 1.0)
        : detail::Elementwise<T, detail::ELUFunction<T>>(
              {detail::checked_non_negative<T>(alpha, "ELU", "alpha")}) {}
    [[nodiscard]] T alpha() const noexcept { return this->function_.alpha; }
};

/// x Phi(x), exact or with PyTorch's tanh approximation. Not monotone (it dips below 0).
template <Scalar T>
class GELU : public detail::Elementwise<T, detail::GELUFunction<T>> {
public:
    explicit GELU(GeluApproximation approximation = GeluApproximation::none)
        : detail::Elementwise<T, detail::GELUFunction<T>>({approximation}) {}
    [[nodiscard]] GeluApproximation approximation() const noexcept { return this->function_.approximation; }
};

/// Softmax over the channels of each sample and position: N x C x H x W, each (n, i, j) a
/// distribution over c. For inference outputs: cnn::fit trains with softmax_cross_entropy,
/// which applies softmax itself, and refuses a network that ends in Softmax at compile time
/// (the outputs would be squashed twice, and the loss's gradient would pass through a second
/// softmax that flattens it).
template <Scalar T>
class Softmax : public detail::WithoutParameters<T> {
public:
    using value_type = T;
    static constexpr bool is_softmax = true;

    [[nodiscard]] std::string describe() const { return "Softmax"; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return in; }

    // y_c = e^{x_c - m} / sum_k e^{x_k - m}, m = max_k x_k (the same value, without overflow)
    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> /*context*/) const {
        detail::expect_shape(y, x.shape(), *this, "forward output");
        for_each_position(x.shape(), [&](std::size_t first, std::size_t stride, std::size_t channels) {
            T largest = x.data()[first];
            for (std::size_t c = 1; c < channels; ++c) largest = std::max(largest, x.data()[first + c * stride]);
            T sum{0};
            for (std::size_t c = 0; c < channels; ++c) {
                const T e = std::exp(x.data()[first + c * stride] - largest);
                y.data()[first + c * stride] = e;
                sum += e;
            }
            for (std::size_t c = 0; c < channels; ++c) y.data()[first + c * stride] /= sum;
        });
    }

    // dE/dx_c = y_c (dy_c - sum_k dy_k y_k)
    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy, TensorView<T, 4> dx,
                  Context<T> /*context*/, Accumulate accumulate = Accumulate::no) {
        if (dx.data() == nullptr) return;
        detail::expect_shape(dy, x.shape(), *this, "output gradient");
        detail::expect_shape(dx, x.shape(), *this, "input gradient");
        for_each_position(x.shape(), [&](std::size_t first, std::size_t stride, std::size_t channels) {
            T dot{0};
            for (std::size_t c = 0; c < channels; ++c) dot += dy.data()[first + c * stride] * y.data()[first + c * stride];
            for (std::size_t c = 0; c < channels; ++c) {
                const std::size_t at = first + c * stride;
                const T d = y.data()[at] * (dy.data()[at] - dot);
                dx.data()[at] = accumulate == Accumulate::yes ? dx.data()[at] + d : d;
            }
        });
    }

private:
    /// f(first element, distance between channels, channel count) for every (n, i, j), spread
    /// over the thread pool by sample.
    template <class F>
    static void for_each_position(const Shape<4>& shape, const F& f) {
        const std::size_t plane = shape[2] * shape[3];
        parallel_blocks(shape[0], 1, [&](std::size_t begin, std::size_t end) {
            for (std::size_t n = begin; n < end; ++n)
                for (std::size_t p = 0; p < plane; ++p) f(n * shape[1] * plane + p, plane, shape[1]);
        });
    }
};

}  // namespace cnn
