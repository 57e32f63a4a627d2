// MaxPool and MeanPool: window nh x nw, stride S (default: the window height), padding
// Ph x Pw (default none, at most half the window), each channel on its own (FORMULAS.md
// sections 5, 9 and 19).
//   H2 = floor((H + 2 Ph - nh) / S) + 1
//   max:  y = max over the window's input cells (padding never wins); backward routes each
//         delta to the window's first maximum (row-major), adding up where windows overlap.
//   mean: y = the window's sum / nh nw (count_padding, PyTorch's count_include_pad) or / the
//         number of input cells it covers; backward spreads delta / that over those cells
//         (the Kronecker product delta (x) (1/n^2) when windows tile the input).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "cnn/layer.hpp"
#include "cnn/kernels/pooling.hpp"
#include "cnn/reference/pooling.hpp"

namespace cnn {

/// A pooling window's stride and padding: MaxPool<float>{3, {.stride = 2, .padding = 1}}.
struct PoolOptions {
    std::optional<std::size_t> stride = std::nullopt;  ///< default: the window height
    Extent2D padding = 0;               ///< at most half the window (as PyTorch): 1, or {1, 0}
    /// MeanPool: divide by the whole window, padding included (PyTorch's count_include_pad), or
    /// (false) only by the input cells the window covers. MaxPool: must stay true.
    bool count_padding = true;
};

namespace detail {

enum class PoolKind { max, mean };

template <Scalar T, PoolKind Kind>
class Pool2D : public WithoutParameters<T> {
public:
    using value_type = T;

    explicit Pool2D(Extent2D window, PoolOptions options = {})
        : window_{checked_parameter(window.height, 1, name(), "window height"),
                  checked_parameter(window.width, 1, name(), "window width")},
          stride_(options.stride ? checked_parameter(*options.stride, 1, name(), "stride") : window_.height),
          pad_h_(checked_padding(options.padding.height, window_.height, "height")),
          pad_w_(checked_padding(options.padding.width, window_.width, "width")),
          count_padding_(options.count_padding) {
        if (Kind == PoolKind::max && !count_padding_)
            throw parameter_error("MaxPool: count_padding = false is a MeanPool setting (padding never wins a max)");
    }
    Pool2D(Extent2D window, std::integral auto stride)
        : Pool2D(window, PoolOptions{.stride = checked_parameter(stride, 1, name(), "stride")}) {}

    [[nodiscard]] static constexpr const char* name() noexcept { return Kind == PoolKind::max ? "MaxPool" : "MeanPool"; }
    [[nodiscard]] reference::Window window() const noexcept { return window_; }
    [[nodiscard]] std::size_t stride() const noexcept { return stride_; }
    /// The zero padding above and below, left and right.
    [[nodiscard]] std::size_t padding_height() const noexcept { return pad_h_; }
    [[nodiscard]] std::size_t padding_width() const noexcept { return pad_w_; }
    [[nodiscard]] bool count_padding() const noexcept { return count_padding_; }
    /// Window, stride and padding, as the reference kernels take them.
    [[nodiscard]] reference::PoolSpec spec() const noexcept {
        return {window_, stride_, pad_h_, pad_w_, count_padding_};
    }

    [[nodiscard]] std::string describe() const {
        std::string text = std::string(name()) + "(" + std::to_string(window_.height) + "x" +
                           std::to_string(window_.width) + ", stride " + std::to_string(stride_);
        if (pad_h_ != 0 || pad_w_ != 0)
            text += ", padding " + (pad_h_ == pad_w_ ? std::to_string(pad_h_)
                                                     : std::to_string(pad_h_) + "x" + std::to_string(pad_w_));
        if (!count_padding_) text += ", padding not counted";
        return text + ")";
    }

    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const {
        if (window_.height > in[2] + 2 * pad_h_ || window_.width > in[3] + 2 * pad_w_)
            throw shape_error(describe() + ": the window is larger than the " +
                              (pad_h_ != 0 || pad_w_ != 0 ? "padded input of input " : "input ") + to_string(in));
        return {in[0], in[1], (in[2] + 2 * pad_h_ - window_.height) / stride_ + 1,
                (in[3] + 2 * pad_w_ - window_.width) / stride_ + 1};
    }

    [[nodiscard]] LayerRecord record() const {
        LayerRecord result{name(),
                           {{"window_height", std::int64_t(window_.height)},
                            {"window_width", std::int64_t(window_.width)},
                            {"stride", std::int64_t(stride_)}},
                           0,
                           {},
                           {}};
        // Recorded only when used, so that files of layers without padding read as before.
        if (pad_h_ != 0 || pad_w_ != 0) result.attributes.emplace_back("padding", std::int64_t(pad_h_));
        if (pad_w_ != pad_h_) result.attributes.emplace_back("padding_width", std::int64_t(pad_w_));
        if (!count_padding_) result.attributes.emplace_back("count_padding", std::int64_t{0});
        return result;
    }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> /*context*/) const {
        expect_shape(y, output_shape(x.shape()), *this, "forward output");
        if constexpr (Kind == PoolKind::max)
            kernels::maxpool_forward<T>(x.data(), geometry(x.shape(), y.shape()), y.data());
        else
            kernels::meanpool_forward<T>(x.data(), geometry(x.shape(), y.shape()), y.data());
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Context<T> /*context*/, Accumulate accumulate = Accumulate::no) {
        if (dx.data() == nullptr) return;
        expect_shape(dy, y.shape(), *this, "output gradient");
        expect_shape(dx, x.shape(), *this, "input gradient");
        if constexpr (Kind == PoolKind::max)
            kernels::maxpool_backward<T>(x.data(), dy.data(), geometry(x.shape(), y.shape()), dx.data(), accumulate);
        else
            kernels::meanpool_backward<T>(dy.data(), geometry(x.shape(), y.shape()), dx.data(), accumulate);
    }

    /// Max pooling of ReLU(x), computed from x in one pass: max pooling commutes with ReLU.
    /// cnn::ActMaxPool (cnn/graph/fuse.hpp) runs a ReLU followed by a MaxPool this way.
    void forward_after_relu(TensorView<const T, 4> x, TensorView<T, 4> y) const
        requires(Kind == PoolKind::max)
    {
        expect_shape(y, output_shape(x.shape()), *this, "forward output");
        kernels::maxpool_forward<T, true>(x.data(), geometry(x.shape(), y.shape()), y.data());
    }

    /// The same, and where each window's delta will go, one place per output in `winners`
    /// (none where the maximum is not positive: the ReLU passes nothing there); then
    /// backward_from_winners needs neither x nor y. On the calling thread. ConvActMaxPool
    /// pools a convolution's output this way, sample by sample, right after computing it,
    /// and stores neither that output nor its gradient.
    void forward_after_relu(TensorView<const T, 4> x, TensorView<T, 4> y, std::span<std::uint32_t> winners) const
        requires(Kind == PoolKind::max)
    {
        pool_with_winners<true>(x, y, winners);
    }

    /// forward(x, y), and the place of each window's first maximum, one per output in
    /// `winners`, for backward_from_winners. On the calling thread.
    void forward_winners(TensorView<const T, 4> x, TensorView<T, 4> y, std::span<std::uint32_t> winners) const
        requires(Kind == PoolKind::max)
    {
        pool_with_winners<false>(x, y, winners);
    }

    /// The gradient with respect to x of MaxPool(ReLU(x)), in one pass: what ReLU::backward
    /// would make of this layer's backward.
    void backward_after_relu(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                             TensorView<T, 4> dx, Accumulate accumulate = Accumulate::no) const
        requires(Kind == PoolKind::max)
    {
        if (dx.data() == nullptr) return;
        expect_shape(dy, y.shape(), *this, "output gradient");
        expect_shape(dx, x.shape(), *this, "input gradient");
        kernels::maxpool_backward<T, true>(x.data(), dy.data(), geometry(x.shape(), y.shape()), dx.data(), accumulate);
    }

    /// dx from the places forward_after_relu(x, y, winners) or forward_winners found: each
    /// delta to its window's place, added up where windows overlap, 0 elsewhere. That is
    /// backward_after_relu or backward, without x or y. On the calling thread.
    void backward_from_winners(std::span<const std::uint32_t> winners, TensorView<const T, 4> dy,
                               TensorView<T, 4> dx) const
        requires(Kind == PoolKind::max)
    {
        expect_shape(dy, output_shape(dx.shape()), *this, "output gradient");
        const kernels::PoolGeometry g = winners_geometry(dx.shape(), dy.shape(), winners.size());
        kernels::maxpool_backward_winners<T>(winners.data(), dy.data(), g, dx.data(), {0, g.planes});
    }

    /// Calls f(output, cell) once for every input cell that `winners` (recorded for an input
    /// of shape `in`) names, with the index of the first output, in row-major order, whose
    /// window's maximum it is (where windows overlap, a cell may win several), and the cell's
    /// index in the input. backward_from_winners added each window's delta at that cell;
    /// ConvActMaxPool then multiplies the sum by the activation's derivative there, once.
    template <class F>
    void for_each_winner(std::span<const std::uint32_t> winners, const Shape<4>& in, F&& f) const
        requires(Kind == PoolKind::max)
    {
        const kernels::PoolGeometry g = winners_geometry(in, output_shape(in), winners.size());
        // A window reaches back this many windows up and to each side to one that overlaps it.
        const std::size_t reach_h = (g.window.height - 1) / g.stride, reach_w = (g.window.width - 1) / g.stride;
        const std::size_t outputs = g.out_h * g.out_w;
        for (std::size_t c = 0; c < g.planes; ++c) {
            const std::uint32_t* places = winners.data() + c * outputs;
            const auto won_before = [&](std::size_t i, std::size_t j, std::size_t cell) {
                for (std::size_t u = i - std::min(i, reach_h); u <= i; ++u) {
                    const std::size_t last = u == i ? j : std::min(g.out_w, j + reach_w + 1);
                    for (std::size_t v = j - std::min(j, reach_w); v < last; ++v)
                        if (kernels::window_cell(g, u, v, places[u * g.out_w + v]) == cell) return true;
                }
                return false;
            };
            for (std::size_t i = 0; i < g.out_h; ++i)
                for (std::size_t j = 0; j < g.out_w; ++j) {
                    const std::size_t cell = kernels::window_cell(g, i, j, places[i * g.out_w + j]);
                    if (cell == kernels::no_cell || ((reach_h != 0 || reach_w != 0) && won_before(i, j, cell))) continue;
                    f(c * outputs + i * g.out_w + j, c * g.height * g.width + cell);
                }
        }
    }

private:
    template <bool AfterReLU>
    void pool_with_winners(TensorView<const T, 4> x, TensorView<T, 4> y, std::span<std::uint32_t> winners) const {
        expect_shape(y, output_shape(x.shape()), *this, "forward output");
        const kernels::PoolGeometry g = winners_geometry(x.shape(), y.shape(), winners.size());
        kernels::maxpool_forward_winners<T, AfterReLU>(x.data(), g, y.data(), winners.data(), {0, g.planes});
    }

    /// The geometry, checked for `count` winners (one per output, each fitting an uint32).
    [[nodiscard]] kernels::PoolGeometry winners_geometry(const Shape<4>& in, const Shape<4>& out,
                                                         std::size_t count) const {
        if (count != element_count(out))
            throw shape_error(describe() + ": " + std::to_string(count) + " winners for the " +
                              std::to_string(element_count(out)) + " outputs of shape " + to_string(out));
        if (window_.height * window_.width >= kernels::no_winner)
            throw shape_error(describe() + ": the window is too large to record its maxima in 32 bits");
        return geometry(in, out);
    }

    [[nodiscard]] kernels::PoolGeometry geometry(const Shape<4>& in, const Shape<4>& out) const noexcept {
        return {in[0] * in[1], in[2], in[3], out[2], out[3], window_, stride_, pad_h_, pad_w_, count_padding_};
    }

    /// Padding of at most half the window, as PyTorch requires: then every window covers an
    /// input cell (a max over padding alone would be -inf, a mean of nothing 0/0).
    static std::size_t checked_padding(std::ptrdiff_t padding, std::size_t window, const char* axis) {
        const std::size_t pad = checked_parameter(padding, 0, name(), "padding");
        if (pad > window / 2)
            throw parameter_error(std::string(name()) + ": padding " + std::to_string(pad) + " in " + axis +
                                  " is more than half the window's " + std::to_string(window) +
                                  " (a window could then cover padding only)");
        return pad;
    }

    reference::Window window_;
    std::size_t stride_;
    std::size_t pad_h_, pad_w_;
    bool count_padding_;
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
