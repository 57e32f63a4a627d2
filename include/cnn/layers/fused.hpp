// Fused layers: two or three layers computed as one, with the same results (bit for bit)
// and less memory traffic. A Sequential picks them by itself (cnn/graph/fuse.hpp has the
// rules); a user may also write them by hand. Either way they are the layers they fuse as
// far as anyone else can tell: layers() and for_each_layer show the original layers, whose
// parameters, records and descriptions the model file and the optimizers see.
//
//   ActMaxPool<T, A>      an activation A that never decreases, then a MaxPool: the max pool
//                         runs first, on the raw inputs (max f(x) = f(max x)), and the
//                         activation on the pooled values only. For ReLU the two are one
//                         pass over the data, forward and backward (MaxPool::forward_after_relu);
//                         for other activations backward routes the deltas first and
//                         multiplies by f'(x) after, in the order the two layers would.
//   ConvActMaxPool<T, A>  a Conv2D, an activation A that never decreases and a MaxPool: each
//                         sample's convolution output is pooled right after it is computed,
//                         while it is in that core's cache, and where each window's maximum
//                         lies is recorded; backward puts each sample's convolution deltas
//                         together from those places right before the convolution reads
//                         them. Neither the convolution's output nor its deltas are ever
//                         stored for the whole batch. ReLU is folded into the pool's kernel
//                         (a window whose maximum is not positive records no winner); any
//                         other A must give its scalar function (function().value(x) and
//                         .derivative(x, y), as the library's Sigmoid, Tanh, LeakyReLU and
//                         ELU do), which runs on the pooled maxima only: y = f(max x), and
//                         backward multiplies each winner's summed deltas by f'(x, y) there.
//
//   BatchNormReLU<T>      a BatchNorm2D, then a ReLU: y = max(0, the normalised x) as one
//                         pass; backward gates dE/dy by y > 0 into dx in the normalisation's
//                         first pass (its sums), which its second (the error term) then
//                         overwrites: no pass of the ReLU's own and no tensor for its input
//                         gradient (a chain fuses the two when no MaxPool follows the ReLU,
//                         which keeps ActMaxPool's one pass there).
//
// Ties: a window whose maximum is shared goes to its first maximum in row-major order either
// way. Where f is flat (ReLU below 0, a saturated sigmoid) the pooled max of f(x) may come
// from another input than the max of x, but f' is 0 on both, so the input gradient is the
// same. (A smooth f can also round two inputs a few units in the last place apart to one
// value; then the two orders may pick different winners of a window, each with its own
// f'. Random data does not meet this; the tests check the bits on it.)
#pragma once

#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cnn/layer.hpp"
#include "cnn/layers/conv2d.hpp"
#include "cnn/layers/normalization.hpp"
#include "cnn/layers/pooling.hpp"
#include "cnn/layers/relu.hpp"

namespace cnn {

namespace detail {
/// Whether activation A has a kernel of its own inside the max pool (one pass, and inside a
/// convolution): ReLU.
template <class A, class T>
inline constexpr bool max_pool_kernel = std::is_same_v<A, ReLU<T>>;

/// Whether activation A gives its scalar function: function().value(x) and
/// function().derivative(x, y), each element on its own.
template <class A, class T>
concept PointwiseFunction = requires(const A& activation, T value) {
    { activation.function().value(value) } -> std::same_as<T>;
    { activation.function().derivative(value, value) } -> std::same_as<T>;
};

/// Whether a Conv2D, A and a MaxPool can run as one ConvActMaxPool: A never decreases, and
/// it is ReLU or gives its scalar function.
template <class A, class T>
inline constexpr bool conv_max_pool_activation =
    monotone_non_decreasing<A> && (max_pool_kernel<A, T> || PointwiseFunction<A, T>);

/// f(k, layer) for the k-th of a fused step's layers (its layers(), a tuple of references).
template <class Layers, class F>
void for_each_part(Layers layers, F& f) {
    std::apply([&f](auto&... layer) {
        std::size_t k = 0;
        (f(k++, layer), ...);
    }, layers);
}
}  // namespace detail

template <Scalar T, Layer Act>
    requires monotone_non_decreasing<Act>
class ActMaxPool {
public:
    using value_type = T;
    static constexpr bool fusion = true;

    /// What the generic path keeps: the pooled raw values (forward), and in backward the
    /// pooled gradient routed back to x's shape and the activation of x, for its derivative.
    struct State {
        Tensor<T, 4> pooled;
        Tensor<T, 4> routed;
        Tensor<T, 4> activated;
        layer_state_t<Act> activation;
    };

    ActMaxPool(Act activation, MaxPool<T> pool) : activation_(std::move(activation)), pool_(std::move(pool)) {}

    /// The layers it fuses, in data order (references; Sequential::layer reads them here).
    [[nodiscard]] auto layers() noexcept { return std::tie(activation_, pool_); }
    [[nodiscard]] auto layers() const noexcept { return std::tie(activation_, pool_); }
    template <class F>
    void for_each_layer(F&& f) {
        detail::for_each_part(layers(), f);
    }
    template <class F>
    void for_each_layer(F&& f) const {
        detail::for_each_part(layers(), f);
    }

    [[nodiscard]] std::string describe() const { return activation_.describe() + " + " + pool_.describe(); }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const {
        return pool_.output_shape(activation_.output_shape(in));
    }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state) const {
        if constexpr (detail::max_pool_kernel<Act, T>) {
            pool_.forward_after_relu(x, y);
        } else {
            state.pooled.resize(y.shape());
            pool_.forward(x, state.pooled.view(), context);
            detail::forward(activation_, state.pooled.cview(), y, context, state.activation);
        }
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Context<T> context, State& state, Accumulate accumulate) {
        if constexpr (detail::max_pool_kernel<Act, T>) {
            pool_.backward_after_relu(x, y, dy, dx, accumulate);
        } else {
            // dE/dx = f'(x) o (the pool's routing of dy), as the two layers one by one compute
            // it: where windows overlap, the deltas are summed before they are multiplied by
            // f'(x). The activation's backward runs even without dx: it may have parameters.
            state.routed.resize(x.shape());
            state.activated.resize(x.shape());
            pool_.backward(x, state.pooled.cview(), dy, state.routed.view(), context, Accumulate::no);
            detail::forward(activation_, x, state.activated.view(), context, state.activation);
            detail::backward(activation_, x, state.activated.cview(), state.routed.cview(), dx, context,
                             state.activation, accumulate);
        }
    }

private:
    Act activation_;
    MaxPool<T> pool_;
};

template <Scalar T, Layer Act>
    requires detail::conv_max_pool_activation<Act, T>
class ConvActMaxPool {
    static constexpr bool relu = detail::max_pool_kernel<Act, T>;

public:
    using value_type = T;
    static constexpr bool fusion = true;

    /// Where each window's maximum lies (or kernels::no_winner), one per output; and for an
    /// activation other than ReLU the maxima themselves (f'(x, y) needs x).
    struct State {
        std::vector<std::uint32_t> winners;
        std::vector<T> maxima;
    };

    ConvActMaxPool(Conv2D<T> conv, Act activation, MaxPool<T> pool)
        : conv_(std::move(conv)), activation_(std::move(activation)), pool_(std::move(pool)) {}

    /// The layers it fuses, in data order (references; Sequential::layer reads them here).
    [[nodiscard]] auto layers() noexcept { return std::tie(conv_, activation_, pool_); }
    [[nodiscard]] auto layers() const noexcept { return std::tie(conv_, activation_, pool_); }
    template <class F>
    void for_each_layer(F&& f) {
        detail::for_each_part(layers(), f);
    }
    template <class F>
    void for_each_layer(F&& f) const {
        detail::for_each_part(layers(), f);
    }

    [[nodiscard]] std::string describe() const {
        return conv_.describe() + " + " + activation_.describe() + " + " + pool_.describe();
    }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const {
        return pool_.output_shape(activation_.output_shape(conv_.output_shape(in)));
    }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state) const {
        detail::expect_shape(y, output_shape(x.shape()), *this, "forward output");
        state.winners.resize(y.size());
        if constexpr (!relu) state.maxima.resize(y.size());
        std::uint32_t* const winners = state.winners.data();
        T* const maxima = state.maxima.data();
        // The convolution's output is not stored: each part goes straight into the pool.
        conv_.forward(x, TensorView<T, 4>{nullptr, conv_.output_shape(x.shape())}, context,
                      [&](std::size_t begin, std::size_t end, TensorView<const T, 4> net) {
                          const auto [offset, shape] = part_of(y.shape(), begin, end);
                          const std::span part_winners{winners + offset, element_count(shape)};
                          if constexpr (relu) {
                              pool_.forward_after_relu(net, TensorView<T, 4>{y.data() + offset, shape}, part_winners);
                          } else {
                              // max f(x) = f(max x): the pool first, f on its maxima only.
                              pool_.forward_winners(net, TensorView<T, 4>{maxima + offset, shape}, part_winners);
                              const auto& f = activation_.function();
                              for (std::size_t i = offset; i < offset + part_winners.size(); ++i)
                                  y.data()[i] = f.value(maxima[i]);
                          }
                      });
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Context<T> context, State& state, Accumulate accumulate) {
        detail::expect_shape(dy, y.shape(), *this, "output gradient");
        if (state.winners.size() != y.size() || (!relu && state.maxima.size() != y.size()))
            throw shape_error(describe() + ": backward without the forward pass of this output");
        // The convolution's deltas are not stored: each part comes from the pool's winners.
        const std::uint32_t* const winners = state.winners.data();
        const T* const maxima = state.maxima.data();
        const TensorView<const T, 4> net{nullptr, conv_.output_shape(x.shape())};
        conv_.backward(x, net, net, dx, context, accumulate,
                       [&](std::size_t begin, std::size_t end, TensorView<T, 4> d_net) {
                           const auto [offset, shape] = part_of(dy.shape(), begin, end);
                           const std::span part_winners{winners + offset, element_count(shape)};
                           pool_.backward_from_winners(part_winners, TensorView<const T, 4>{dy.data() + offset, shape},
                                                       d_net);
                           if constexpr (!relu) {
                               // dE/dnet = f'(net, f(net)) o (the pool's routing of dy), the
                               // product taken after the sum, as the two layers one by one do.
                               const auto& f = activation_.function();
                               const T* const part_maxima = maxima + offset;
                               const T* const part_y = y.data() + offset;
                               T* const d = d_net.data();
                               pool_.for_each_winner(part_winners, d_net.shape(), [&](std::size_t o, std::size_t cell) {
                                   d[cell] = d[cell] * f.derivative(part_maxima[o], part_y[o]);
                               });
                           }
                       });
    }

private:
    /// Samples [first, last) of a batch of shape `shape`: where their elements start, and their shape.
    static std::pair<std::size_t, Shape<4>> part_of(const Shape<4>& shape, std::size_t first, std::size_t last) {
        return {first * shape[1] * shape[2] * shape[3], {last - first, shape[1], shape[2], shape[3]}};
    }

    Conv2D<T> conv_;
    Act activation_;
    MaxPool<T> pool_;
};

template <Scalar T>
class BatchNormReLU {
public:
    using value_type = T;
    static constexpr bool fusion = true;
    using State = typename BatchNorm2D<T>::State;

    BatchNormReLU(BatchNorm2D<T> norm, ReLU<T> relu) : norm_(std::move(norm)), relu_(relu) {}

    /// The layers it fuses, in data order (references; Sequential::layer reads them here).
    [[nodiscard]] auto layers() noexcept { return std::tie(norm_, relu_); }
    [[nodiscard]] auto layers() const noexcept { return std::tie(norm_, relu_); }
    template <class F>
    void for_each_layer(F&& f) {
        detail::for_each_part(layers(), f);
    }
    template <class F>
    void for_each_layer(F&& f) const {
        detail::for_each_part(layers(), f);
    }

    [[nodiscard]] std::string describe() const { return norm_.describe() + " + " + relu_.describe(); }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return norm_.output_shape(in); }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state) const {
        norm_.forward_with_relu(x, y, context, state);
    }
    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Context<T> context, State& state, Accumulate accumulate) {
        norm_.backward_with_relu(x, y, dy, dx, context, state, accumulate);
    }

private:
    BatchNorm2D<T> norm_;
    ReLU<T> relu_;
};

}  // namespace cnn
