// BatchNorm2D, Dropout and GlobalAvgPool (FORMULAS.md sections 15 to 17).
//
// BatchNorm2D, per channel c over N, H and W (m = N H W values):
//   training   y = gamma_c (x - mu_c) / sqrt(var_c + eps) + beta_c, mu_c, var_c of the batch;
//              dE/dx = gamma_c / sqrt(var_c + eps) (dy - mean(dy) - x^ mean(dy x^))
//   inference  the same with the running mean and variance, which are constants
//   running <- (1 - momentum) running + momentum batch (the variance unbiased, times m/(m-1)),
//              as PyTorch's, done by backward after a training forward (a training step is a
//              forward and a backward, so a step leaves them as PyTorch's step does).
// Dropout (inverted): training y = x mask / (1 - p), mask_e = 1 with probability 1 - p;
//   inference y = x.
// GlobalAvgPool: y[n][c] = the mean of x[n][c] over H and W.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "cnn/kernels/normalization.hpp"
#include "cnn/layer.hpp"
#include "cnn/layers/activations.hpp"
#include "cnn/reference/normalization.hpp"

namespace cnn {

namespace detail {
/// A hyper-parameter that must be a finite number in [low, high] (or (low, high] when
/// `open_low`), representable in T.
template <Scalar T>
double checked_range(double value, double low, double high, bool open_low, const std::string& layer, const char* what) {
    const bool below = open_low ? !(value > low) : !(value >= low);
    if (below || !(value <= high) || !std::isfinite(value)) {
        std::ostringstream message;
        message << layer << ": " << what << " must be " << (open_low ? "> " : ">= ") << number(low);
        if (high < std::numeric_limits<double>::max()) message << " and <= " << number(high);
        message << ", got " << value;
        throw parameter_error(message.str());
    }
    if (value > 0 && value < static_cast<double>(std::numeric_limits<T>::min())) {
        std::ostringstream message;
        message << layer << ": " << what << " " << value << " is too small for "
                << (sizeof(T) == 4 ? "float" : "this number type");
        throw parameter_error(message.str());
    }
    return value;
}
}  // namespace detail

struct BatchNormOptions {
    double momentum = 0.1;   ///< the weight of a batch in the running statistics (PyTorch's default)
    double epsilon = 1e-5;   ///< added to the variance before the square root (PyTorch's default)
};

/// Batch normalisation of each of `channels` channels, for convolution features (N x C x H x W)
/// and dense features alike (N x C x 1 x 1, as PyTorch's BatchNorm1d). Its values, in order:
/// gamma (weights, start 1), beta (biases, start 0), running mean (buffer, start 0), running
/// variance (buffer, start 1). Training needs more than one value per channel (N H W > 1).
template <Scalar T>
class BatchNorm2D {
public:
    using value_type = T;
    /// Backward reads only the output's shape: a network keeps no copy of the output for it.
    static constexpr bool backward_ignores_output = true;
    /// The network must not hand it a batch of one sample in training (see cnn::fit).
    static constexpr bool batch_statistics = true;

    /// What a training forward leaves for backward; also holds the per-channel coefficients.
    struct State {
        std::vector<double> mean, variance, inv_std, sum_dy, sum_dy_x_hat;
        std::vector<T> center, a, b, offset;
        Shape<4> shape{};
        bool from_training = false;   ///< the forward used the batch's statistics
        bool update_pending = false;  ///< and the running statistics have not yet moved towards them
    };

    explicit BatchNorm2D(std::integral auto channels, BatchNormOptions options = {})
        : channels_(detail::checked_parameter(channels, 1, "BatchNorm2D", "channels")),
          momentum_(detail::checked_range<T>(options.momentum, 0, 1, false, "BatchNorm2D", "momentum")),
          epsilon_(detail::checked_range<T>(options.epsilon, 0, std::numeric_limits<double>::max(), true,
                                            "BatchNorm2D", "epsilon")),
          values_({4 * channels_}),
          gradients_({4 * channels_}) {
        reset();
    }

    [[nodiscard]] std::size_t channels() const noexcept { return channels_; }
    [[nodiscard]] double momentum() const noexcept { return momentum_; }
    [[nodiscard]] double epsilon() const noexcept { return epsilon_; }

    [[nodiscard]] std::span<T> gamma() noexcept { return part(0); }
    [[nodiscard]] std::span<T> beta() noexcept { return part(1); }
    [[nodiscard]] std::span<T> running_mean() noexcept { return part(2); }
    [[nodiscard]] std::span<T> running_variance() noexcept { return part(3); }
    [[nodiscard]] std::span<const T> gamma() const noexcept { return part(0); }
    [[nodiscard]] std::span<const T> beta() const noexcept { return part(1); }
    [[nodiscard]] std::span<const T> running_mean() const noexcept { return part(2); }
    [[nodiscard]] std::span<const T> running_variance() const noexcept { return part(3); }
    [[nodiscard]] std::span<T> gamma_gradients() noexcept { return gradients().subspan(0, channels_); }
    [[nodiscard]] std::span<T> beta_gradients() noexcept { return gradients().subspan(channels_, channels_); }

    [[nodiscard]] std::span<T> parameters() noexcept { return values_.span(); }
    [[nodiscard]] std::span<const T> parameters() const noexcept { return values_.span(); }
    [[nodiscard]] std::span<T> gradients() noexcept { return gradients_.span(); }
    [[nodiscard]] ParameterLayout parameter_layout() const noexcept { return {channels_, channels_, 2 * channels_}; }

    /// gamma 1, beta 0, running mean 0, running variance 1 (draws nothing).
    void initialize(Random& /*rng*/, Init /*scheme*/ = Init::he) { reset(); }

    [[nodiscard]] std::string describe() const {
        std::string text = "BatchNorm2D(" + std::to_string(channels_);
        if (momentum_ != BatchNormOptions{}.momentum) text += ", momentum " + detail::number(momentum_);
        if (epsilon_ != BatchNormOptions{}.epsilon) {
            std::ostringstream eps;
            eps << epsilon_;
            text += ", epsilon " + eps.str();
        }
        return text + ")";
    }
    [[nodiscard]] LayerRecord record() const {
        return {"BatchNorm2D",
                {{"channels", std::int64_t(channels_)}, {"momentum", momentum_}, {"epsilon", epsilon_}},
                values_.size(),
                {},
                {}};
    }

    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const {
        if (in[1] != channels_)
            throw shape_error(describe() + " expects " + std::to_string(channels_) + " channels, got input " +
                              to_string(in));
        return in;
    }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state) const {
        normalize(x, y, context, state, false);
    }

    /// This layer and a ReLU after it as one pass (BatchNormReLU): y = max(0, the
    /// normalised x), the bits the two layers give one after the other.
    void forward_with_relu(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state) const {
        normalize(x, y, context, state, true);
    }

    /// Adds dE/dgamma and dE/dbeta, writes (or adds) dE/dx, and after a training forward moves
    /// the running statistics towards the batch's.
    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy, TensorView<T, 4> dx,
                  Context<T> /*context*/, State& state, Accumulate accumulate = Accumulate::no) {
        detail::expect_shape(dy, y.shape(), *this, "output gradient");
        backpropagate(x, nullptr, nullptr, dy, dx, state, accumulate);
    }

    /// backward for forward_with_relu: y is the ReLU's output and dy = dE/dy; the deltas pass
    /// where y > 0 only, as the ReLU's backward would have passed them on. Those deltas are
    /// kept between the two passes in dx (or the context's scratch memory when dx is added to
    /// or not wanted).
    void backward_with_relu(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                            TensorView<T, 4> dx, Context<T> context, State& state, Accumulate accumulate = Accumulate::no) {
        detail::expect_shape(dy, y.shape(), *this, "output gradient");
        detail::expect_shape(y, x.shape(), *this, "forward output");
        T* const gated = dx.data() != nullptr && accumulate == Accumulate::no
                             ? dx.data()
                             : context.scratch().per_worker(1, 0, x.size()).shared;
        backpropagate(x, y.data(), gated, dy, dx, state, accumulate);
    }

private:
    void normalize(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state, bool relu) const {
        detail::expect_shape(y, output_shape(x.shape()), *this, "forward output");
        const Shape<4>& s = x.shape();
        size(state, s);
        state.from_training = context.training();
        state.update_pending = context.training();
        if (context.training()) {
            if (s[0] * s[2] * s[3] < 2)
                throw shape_error(describe() + ": training normalises each channel by the statistics of the batch, "
                                               "which needs more than one value per channel; got input " +
                                  to_string(s) + " (train with batches of 2 or more, or run in Mode::inference)");
            kernels::channel_statistics(x.data(), s, std::span(state.mean), std::span(state.variance));
            for (std::size_t c = 0; c < channels_; ++c) {
                state.inv_std[c] = 1.0 / std::sqrt(state.variance[c] + epsilon_);
                state.center[c] = static_cast<T>(state.mean[c]);
            }
        } else {
            inference_coefficients(state);
        }
        // y = gamma inv_std (x - center) + beta, with the batch's or the running statistics
        for (std::size_t c = 0; c < channels_; ++c) {
            state.a[c] = static_cast<T>(static_cast<double>(gamma()[c]) * state.inv_std[c]);
            state.offset[c] = beta()[c];
        }
        std::ranges::fill(state.b, T{0});
        kernels::ChannelAffine<T> affine = coefficients(state);
        affine.rectify = relu;
        kernels::channel_affine<T>(x.data(), nullptr, s, affine, y.data());
    }

    /// backward, with dy passed where gate > 0 only when there is a gate (a ReLU's output): those
    /// deltas are written to `gated` (x's size) and read from there by the error term.
    void backpropagate(TensorView<const T, 4> x, const T* gate, T* gated, TensorView<const T, 4> dy,
                       TensorView<T, 4> dx, State& state, Accumulate accumulate) {
        if (state.shape != x.shape() || state.mean.size() != channels_)
            throw shape_error(describe() + ": backward for input " + to_string(x.shape()) +
                              " without the forward pass of that input");
        // before anything is written: the gated deltas may go to dx
        if (dx.data() != nullptr) detail::expect_shape(dx, x.shape(), *this, "input gradient");
        const Shape<4>& s = x.shape();
        const double m = static_cast<double>(s[0] * s[2] * s[3]);
        kernels::channel_gradient_sums(x.data(), dy.data(), s, std::span<const double>(state.mean),
                                       std::span<const double>(state.inv_std), std::span(state.sum_dy),
                                       std::span(state.sum_dy_x_hat), gate, gated);
        for (std::size_t c = 0; c < channels_; ++c) {
            gamma_gradients()[c] += static_cast<T>(state.sum_dy_x_hat[c]);
            beta_gradients()[c] += static_cast<T>(state.sum_dy[c]);
            const double scale = static_cast<double>(gamma()[c]) * state.inv_std[c];
            state.b[c] = static_cast<T>(scale);
            if (state.from_training) {
                // dx = scale (dy - mean(dy) - x^ mean(dy x^)), x^ = (x - mu) inv_std
                state.a[c] = static_cast<T>(-scale * state.inv_std[c] * state.sum_dy_x_hat[c] / m);
                state.offset[c] = static_cast<T>(-scale * state.sum_dy[c] / m);
            } else {
                state.a[c] = T{0};
                state.offset[c] = T{0};
            }
        }
        if (dx.data() != nullptr)
            kernels::channel_affine<T>(x.data(), gate == nullptr ? dy.data() : gated, s, coefficients(state), dx.data(),
                                       accumulate);
        if (state.update_pending) {
            const double unbiased = m / (m - 1);
            for (std::size_t c = 0; c < channels_; ++c) {
                running_mean()[c] = static_cast<T>((1 - momentum_) * static_cast<double>(running_mean()[c]) +
                                                   momentum_ * state.mean[c]);
                running_variance()[c] = static_cast<T>((1 - momentum_) * static_cast<double>(running_variance()[c]) +
                                                       momentum_ * state.variance[c] * unbiased);
            }
            state.update_pending = false;  // one update per training forward
        }
    }

    [[nodiscard]] std::span<T> part(std::size_t index) noexcept { return values_.span().subspan(index * channels_, channels_); }
    [[nodiscard]] std::span<const T> part(std::size_t index) const noexcept {
        return values_.span().subspan(index * channels_, channels_);
    }

    void reset() {
        std::ranges::fill(gamma(), T{1});
        std::ranges::fill(beta(), T{0});
        std::ranges::fill(running_mean(), T{0});
        std::ranges::fill(running_variance(), T{1});
    }

    void size(State& state, const Shape<4>& shape) const {
        for (auto* v : {&state.mean, &state.variance, &state.inv_std, &state.sum_dy, &state.sum_dy_x_hat})
            v->resize(channels_);
        for (auto* v : {&state.center, &state.a, &state.b, &state.offset}) v->resize(channels_);
        state.shape = shape;
    }

    void inference_coefficients(State& state) const {
        for (std::size_t c = 0; c < channels_; ++c) {
            state.mean[c] = static_cast<double>(running_mean()[c]);
            state.inv_std[c] = 1.0 / std::sqrt(static_cast<double>(running_variance()[c]) + epsilon_);
            state.center[c] = running_mean()[c];
        }
    }

    [[nodiscard]] static kernels::ChannelAffine<T> coefficients(const State& state) noexcept {
        return {state.center, state.a, state.b, state.offset};
    }

    std::size_t channels_;
    double momentum_, epsilon_;
    Tensor<T, 1> values_, gradients_;
};

/// Inverted dropout: in training each value is kept with probability 1 - rate and scaled by
/// 1 / (1 - rate), else set to 0; in inference the layer is the identity. The mask is drawn
/// from the context's random stream in element order, so a seed gives the same masks with any
/// thread count. rate in [0, 1).
template <Scalar T>
class Dropout : public detail::WithoutParameters<T> {
public:
    using value_type = T;
    /// Backward reads only the output's shape: a network keeps no copy of the output for it.
    static constexpr bool backward_ignores_output = true;

    /// The mask of the last training forward, as the factor each value was multiplied by.
    struct State {
        std::vector<T> factor;
        bool from_training = false;
    };

    explicit Dropout(double rate = 0.5)
        : rate_(detail::checked_range<T>(rate, 0, 1, false, "Dropout", "rate")) {
        if (rate_ == 1) throw parameter_error("Dropout: rate must be < 1 (rate 1 drops every value), got 1");
        // keep a value when a 32-bit draw is >= threshold: probability 1 - threshold / 2^32
        threshold_ = static_cast<std::uint64_t>(std::llround(rate_ * 4294967296.0));
        threshold_ = std::min<std::uint64_t>(threshold_, 0xffffffffULL);
    }

    [[nodiscard]] double rate() const noexcept { return rate_; }
    [[nodiscard]] std::string describe() const { return "Dropout(" + detail::number(rate_) + ")"; }
    [[nodiscard]] LayerRecord record() const { return {"Dropout", {{"rate", rate_}}, 0, {}, {}}; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return in; }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state) const {
        detail::expect_shape(y, x.shape(), *this, "forward output");
        state.from_training = context.training() && rate_ > 0;
        if (!state.from_training) {
            std::copy(x.begin(), x.end(), y.begin());
            return;
        }
        Random& rng = context.random("Dropout");
        const T factors[2] = {T{0}, static_cast<T>(1 / (1 - rate_))};
        state.factor.resize(x.size());
        // one pass on the calling thread: the draws are sequential anyway, and the mask and the
        // output are written while x is read once
        const T* in = x.data();
        T* f = state.factor.data();
        T* out = y.data();
        const std::size_t count = x.size();
        std::size_t e = 0;
        for (; e + 2 <= count; e += 2) {
            const std::uint64_t bits = rng();
            f[e] = factors[(bits & 0xffffffffULL) >= threshold_];
            f[e + 1] = factors[(bits >> 32) >= threshold_];
            out[e] = in[e] * f[e];
            out[e + 1] = in[e + 1] * f[e + 1];
        }
        if (e < count) {
            f[e] = factors[(rng() & 0xffffffffULL) >= threshold_];
            out[e] = in[e] * f[e];
        }
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> /*y*/, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Context<T> /*context*/, State& state, Accumulate accumulate = Accumulate::no) {
        if (dx.data() == nullptr) return;
        detail::expect_shape(dy, x.shape(), *this, "output gradient");
        detail::expect_shape(dx, x.shape(), *this, "input gradient");
        if (!state.from_training) {
            detail::pass_back(dy, dx, accumulate);
            return;
        }
        if (state.factor.size() != x.size())
            throw shape_error(describe() + ": backward for input " + to_string(x.shape()) +
                              " without the forward pass of that input");
        const T* d = dy.data();
        const T* f = state.factor.data();
        T* out = dx.data();
        parallel_blocks(x.size(), block_size, [&](std::size_t begin, std::size_t end) {
            if (accumulate == Accumulate::yes)
                for (std::size_t e = begin; e < end; ++e) out[e] += d[e] * f[e];
            else
                for (std::size_t e = begin; e < end; ++e) out[e] = d[e] * f[e];
        });
    }

private:
    static constexpr std::size_t block_size = 1 << 15;
    double rate_;
    std::uint64_t threshold_ = 0;
};

/// The mean of each channel over H and W: N x C x H x W to N x C x 1 x 1.
template <Scalar T>
class GlobalAvgPool : public detail::WithoutParameters<T> {
public:
    using value_type = T;
    /// Backward reads only the output's shape: a network keeps no copy of the output for it.
    static constexpr bool backward_ignores_output = true;

    [[nodiscard]] std::string describe() const { return "GlobalAvgPool"; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return {in[0], in[1], 1, 1}; }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> /*context*/) const {
        detail::expect_shape(y, output_shape(x.shape()), *this, "forward output");
        kernels::global_avg_pool_forward(x.data(), x.shape(), y.data());
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> /*y*/, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Context<T> /*context*/, Accumulate accumulate = Accumulate::no) {
        if (dx.data() == nullptr) return;
        detail::expect_shape(dy, output_shape(x.shape()), *this, "output gradient");
        detail::expect_shape(dx, x.shape(), *this, "input gradient");
        kernels::global_avg_pool_backward(dy.data(), x.shape(), dx.data(), accumulate);
    }
};

}  // namespace cnn
