// Conv2D: C input channels, K filters of Fh x Fw, stride S, zero padding P, bias (or none);
// stride, padding and dilation D may differ between the axes (FORMULAS.md section 18); with G
// groups each filter sees the C / G channels of its group (section 20; depthwise: G = C).
//
// Forward (FORMULAS.md 4.3), per sample:
//   net[k][i][j] = sum_c sum_m sum_n w[k][c][m][n] * x~[c][iSh+mDh][jSw+nDw] + b[k]
// Backward (FORMULAS.md 8.2 to 8.6), per sample:
//   dE/dx_c  = crop_P( sum_k dilate_S(delta_k) * W_{k,c} )      (full convolution, rotated filters)
//   dE/dw    += x~_c (cross-correlated with) dilate_S(delta_k)
//   dE/db_k  += sum_{i,j} delta[k][i][j]
// The activation is a layer of its own (ReLU), which applies f'(net).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>

#include "cnn/kernels/conv2d.hpp"
#include "cnn/layer.hpp"
#include "cnn/reference/convolution.hpp"
#include "cnn/tensor.hpp"

namespace cnn {

struct Conv2DOptions {
    Extent2D stride = 1;    ///< 2, or {2, 1} (height, width)
    Extent2D padding = 0;   ///< zeros around the input: 1, or {1, 0}
    Extent2D dilation = 1;  ///< the filter's taps D apart (2: a 3x3 filter spans 5x5)
    /// false: no bias (a convolution followed by batch normalisation, whose shift does its work)
    bool bias = true;
    /// G: channels and filters split into G groups, each filter seeing its group's channels only.
    /// Must divide both; G = in_channels is a depthwise convolution (MobileNet's 3x3 step).
    std::ptrdiff_t groups = 1;
};

template <Scalar T>
class Conv2D {
public:
    using value_type = T;
    /// Backward reads only the output's shape: a network keeps no copy of the output for it.
    static constexpr bool backward_ignores_output = true;

    Conv2D(std::integral auto in_channels, std::integral auto filters, Extent2D kernel, Conv2DOptions options = {})
        : channels_(detail::checked_parameter(in_channels, 1, "Conv2D", "in_channels")),
          filters_(detail::checked_parameter(filters, 1, "Conv2D", "filters")),
          kernel_h_(detail::checked_parameter(kernel.height, 1, "Conv2D", "kernel height")),
          kernel_w_(detail::checked_parameter(kernel.width, 1, "Conv2D", "kernel width")),
          spec_{detail::checked_parameter(options.stride.height, 1, "Conv2D", "stride"),
                detail::checked_parameter(options.stride.width, 1, "Conv2D", "stride"),
                detail::checked_parameter(options.padding.height, 0, "Conv2D", "padding"),
                detail::checked_parameter(options.padding.width, 0, "Conv2D", "padding"),
                detail::checked_parameter(options.dilation.height, 1, "Conv2D", "dilation"),
                detail::checked_parameter(options.dilation.width, 1, "Conv2D", "dilation")},
          has_bias_(options.bias),
          groups_(checked_groups(options.groups, channels_, filters_)),
          parameters_({weight_count() + bias_count()}),
          gradients_({weight_count() + bias_count()}),
          no_bias_({has_bias_ ? 0 : filters_}),
          bias_sink_({has_bias_ ? 0 : filters_}) {}

    [[nodiscard]] std::size_t in_channels() const noexcept { return channels_; }
    [[nodiscard]] std::size_t filters() const noexcept { return filters_; }
    [[nodiscard]] std::size_t kernel_height() const noexcept { return kernel_h_; }
    [[nodiscard]] std::size_t kernel_width() const noexcept { return kernel_w_; }
    /// Stride, padding and dilation per axis.
    [[nodiscard]] const kernels::ConvSpec& spec() const noexcept { return spec_; }
    [[nodiscard]] bool has_bias() const noexcept { return has_bias_; }
    [[nodiscard]] std::size_t groups() const noexcept { return groups_; }
    /// Inputs and outputs each weight connects, for weight initialisation (per group).
    [[nodiscard]] std::size_t fan_in() const noexcept { return channels_ / groups_ * kernel_h_ * kernel_w_; }
    [[nodiscard]] std::size_t fan_out() const noexcept { return filters_ / groups_ * kernel_h_ * kernel_w_; }

    /// Weights drawn by `scheme` (in K, C, Fh, Fw order), biases 0.
    void initialize(Random& rng, Init scheme = Init::he) {
        detail::draw_weights(weights().span(), fan_in(), fan_out(), rng, scheme);
        std::ranges::fill(bias(), T{0});
    }
    [[nodiscard]] ParameterLayout parameter_layout() const noexcept { return {weight_count(), bias_count(), 0}; }
    [[nodiscard]] LayerRecord record() const {
        LayerRecord result{"Conv2D",
                           {{"in_channels", std::int64_t(channels_)},
                            {"filters", std::int64_t(filters_)},
                            {"kernel_height", std::int64_t(kernel_h_)},
                            {"kernel_width", std::int64_t(kernel_w_)},
                            {"stride", std::int64_t(spec_.stride_h)},
                            {"padding", std::int64_t(spec_.pad_h)}},
                           parameters_.size(),
                           {},
                           {}};
        // Options beyond the 0.2 layer are recorded only when used, so that earlier files load.
        const auto extra = [&](const char* name, std::size_t value, std::size_t usual) {
            if (value != usual) result.attributes.emplace_back(name, static_cast<std::int64_t>(value));
        };
        extra("stride_width", spec_.stride_w, spec_.stride_h);
        extra("padding_width", spec_.pad_w, spec_.pad_h);
        extra("dilation", spec_.dilation_h, 1);
        extra("dilation_width", spec_.dilation_w, spec_.dilation_h);
        if (!has_bias_) result.attributes.emplace_back("bias", std::int64_t{0});
        extra("groups", groups_, 1);
        return result;
    }

    [[nodiscard]] std::string describe() const {
        const auto pair = [](std::size_t h, std::size_t w) {
            return h == w ? std::to_string(h) : std::to_string(h) + "x" + std::to_string(w);
        };
        std::string text = "Conv2D(" + std::to_string(channels_) + "->" + std::to_string(filters_) + ", " +
                           std::to_string(kernel_h_) + "x" + std::to_string(kernel_w_) + ", stride " +
                           pair(spec_.stride_h, spec_.stride_w) + ", padding " + pair(spec_.pad_h, spec_.pad_w);
        if (spec_.dilation_h != 1 || spec_.dilation_w != 1)
            text += ", dilation " + pair(spec_.dilation_h, spec_.dilation_w);
        if (groups_ != 1) text += ", groups " + std::to_string(groups_);
        return text + (has_bias_ ? "" : ", no bias") + ")";
    }

    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const {
        if (in[1] != channels_)
            throw shape_error(describe() + " expects " + std::to_string(channels_) + " input channels, got input " +
                              to_string(in));
        const std::size_t span_h = (kernel_h_ - 1) * spec_.dilation_h + 1, span_w = (kernel_w_ - 1) * spec_.dilation_w + 1;
        if (span_h > in[2] + 2 * spec_.pad_h || span_w > in[3] + 2 * spec_.pad_w)
            throw shape_error(describe() + ": the " + std::to_string(kernel_h_) + "x" + std::to_string(kernel_w_) +
                              " kernel" +
                              (span_h != kernel_h_ || span_w != kernel_w_
                                   ? " (spanning " + std::to_string(span_h) + "x" + std::to_string(span_w) + ")"
                                   : std::string()) +
                              " is larger than the padded input of input " + to_string(in) + " (padded " +
                              std::to_string(in[2] + 2 * spec_.pad_h) + "x" + std::to_string(in[3] + 2 * spec_.pad_w) +
                              ")");
        return {in[0], filters_, reference::output_extent(in[2], span_h, spec_.pad_h, spec_.stride_h).extent,
                reference::output_extent(in[3], span_w, spec_.pad_w, spec_.stride_w).extent};
    }

    /// Weights, K x C/G x Fh x Fw, and biases, K (none without a bias).
    [[nodiscard]] TensorView<T, 4> weights() noexcept { return {parameters_.data(), weight_shape()}; }
    [[nodiscard]] TensorView<const T, 4> weights() const noexcept { return {parameters_.data(), weight_shape()}; }
    [[nodiscard]] std::span<T> bias() noexcept { return parameters().subspan(weight_count()); }
    [[nodiscard]] std::span<const T> bias() const noexcept { return parameters_.span().subspan(weight_count()); }
    [[nodiscard]] TensorView<T, 4> weight_gradients() noexcept { return {gradients_.data(), weight_shape()}; }
    [[nodiscard]] std::span<T> bias_gradients() noexcept { return gradients().subspan(weight_count()); }

    [[nodiscard]] std::span<T> parameters() noexcept { return parameters_.span(); }
    [[nodiscard]] std::span<T> gradients() noexcept { return gradients_.span(); }
    [[nodiscard]] std::span<const T> parameters() const noexcept { return parameters_.span(); }

    /// y = the convolution of x. When `after` is given, after(first, last, part) is called as
    /// soon as samples [first, last) are computed, with `part` their output, on the thread that
    /// computed them: ConvActMaxPool pools them there, while they are in that core's cache. y
    /// may have a shape but no data: the output is then handed to `after` and never stored.
    template <class After = kernels::NoHook>
    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, const After& after = {}) const {
        detail::expect_shape(y, output_shape(x.shape()), *this, "forward output");
        if (groups_ == 1) {
            kernels::conv2d_forward<T>(x, weights(), has_bias_ ? bias() : no_bias_.span(), spec_, y,
                                       context.scratch(), after);
            return;
        }
        // Grouped: the whole batch at once, then `after` on it.
        kernels::grouped_conv2d_forward<T>(x, weights(), has_bias_ ? bias() : std::span<const T>{}, spec_, y,
                                           context.scratch(), after);
    }

    /// Adds the weight and bias gradients and writes (or adds into) dx; a null dx (the first
    /// layer of a network) is skipped. dy may have a shape but no data: before(first, last,
    /// part) is then called on the thread that needs the deltas of samples [first, last), just
    /// before it reads them, and writes them into `part`, so that they are never stored for
    /// the whole batch.
    template <class Before = kernels::NoHook>
    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Context<T> context, Accumulate accumulate = Accumulate::no,
                  const Before& before = {}) {
        detail::expect_shape(dy, y.shape(), *this, "output gradient");
        if (dx.data() != nullptr) detail::expect_shape(dx, x.shape(), *this, "input gradient");
        // Without a bias the kernel's bias gradient goes to a sink, cleared so that it never overflows.
        if (!has_bias_) std::ranges::fill(bias_sink_.span(), T{0});
        if (groups_ == 1) {
            kernels::conv2d_backward<T>(x, dy, weights(), spec_, dx, weight_gradients(),
                                        has_bias_ ? bias_gradients() : bias_sink_.span(), context.scratch(), before,
                                        accumulate);
            return;
        }
        // Grouped: the deltas of the whole batch first (from `before` when dy has no data).
        kernels::grouped_conv2d_backward<T>(x, dy, weights(), spec_, dx, weight_gradients(),
                                            has_bias_ ? bias_gradients() : std::span<T>{}, context.scratch(), before,
                                            accumulate);
    }

private:
    static std::size_t checked_groups(std::ptrdiff_t groups, std::size_t channels, std::size_t filters) {
        const std::size_t g = detail::checked_parameter(groups, 1, "Conv2D", "groups");
        if (channels % g != 0 || filters % g != 0)
            throw parameter_error("Conv2D: groups " + std::to_string(g) + " must divide the " +
                                  std::to_string(channels) + " input channels and the " + std::to_string(filters) +
                                  " filters");
        return g;
    }

    [[nodiscard]] Shape<4> weight_shape() const noexcept {
        return {filters_, channels_ / groups_, kernel_h_, kernel_w_};
    }
    [[nodiscard]] std::size_t weight_count() const noexcept { return element_count(weight_shape()); }
    [[nodiscard]] std::size_t bias_count() const noexcept { return has_bias_ ? filters_ : 0; }

    std::size_t channels_, filters_, kernel_h_, kernel_w_;
    kernels::ConvSpec spec_;
    bool has_bias_;
    std::size_t groups_;
    Tensor<T, 1> parameters_;
    Tensor<T, 1> gradients_;
    Tensor<T, 1> no_bias_;    ///< zeros, the kernel's bias when the layer has none
    Tensor<T, 1> bias_sink_;  ///< the kernel's bias gradient when the layer has none
};

}  // namespace cnn
