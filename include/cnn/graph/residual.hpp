// Residual<Body, Shortcut>: y = body(x) + shortcut(x), the block of a ResNet. The shortcut
// is the identity by default (added without a copy), or any layer: a 1x1 convolution with
// stride 2 (and a normalisation) is the usual projection when the body changes the shape.
//
//   forward:   y = body(x) + shortcut(x)
//   backward:  dE/dx = body'(x)^T dy + shortcut'(x)^T dy   (identity: + dy)
// The body writes dx (or adds into it, when the block's own caller asks so) and the
// shortcut adds into it: one buffer, no copy. A body whose backward ignores its output
// (cnn/layer.hpp: a chain ending in a convolution or a batch normalisation) writes straight
// into y, and the shortcut's output is added there; any other body's output is kept for its
// backward, and so is a shortcut's that is not the identity.
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>

#include "cnn/error.hpp"
#include "cnn/graph/common.hpp"
#include "cnn/layer.hpp"
#include "cnn/layers/identity.hpp"

namespace cnn {

namespace detail {
template <class Body>
struct DefaultShortcut {
    using type = Identity<float>;
};
template <Layer Body>
struct DefaultShortcut<Body> {
    using type = Identity<typename Body::value_type>;
};
}  // namespace detail

template <class Body, class Shortcut = typename detail::DefaultShortcut<Body>::type>
class Residual {
    static_assert(Layer<Body> && Layer<Shortcut>,
                  "cnn::Residual: the body and the shortcut must be layers, types that satisfy the cnn::Layer "
                  "concept (see cnn/layer.hpp)");

public:
    using value_type = typename detail::FirstValueType<Body, Shortcut>::type;
    static_assert(std::is_same_v<typename detail::LayerValueType<Shortcut, value_type>::type, value_type>,
                  "cnn::Residual: the body and the shortcut must use the same number type");
    using T = value_type;
    static constexpr bool identity_shortcut = std::is_same_v<Shortcut, Identity<T>>;

    /// y is read for its shape only: a network may run an activation in place on it.
    static constexpr bool backward_ignores_output = true;

    struct State {
        Tensor<T, 4> body_output;  // not when the body ignores it in backward
        Tensor<T, 4> shortcut_output;  // not with the identity shortcut
        layer_state_t<Body> body;
        layer_state_t<Shortcut> shortcut;
    };

    explicit Residual(Body body, Shortcut shortcut = {}) : body_(std::move(body)), shortcut_(std::move(shortcut)) {}

    [[nodiscard]] Body& body() noexcept { return body_; }
    [[nodiscard]] const Body& body() const noexcept { return body_; }
    [[nodiscard]] Shortcut& shortcut() noexcept { return shortcut_; }
    [[nodiscard]] const Shortcut& shortcut() const noexcept { return shortcut_; }

    template <class F>
    void for_each_layer(F&& f) {
        f(std::size_t{0}, body_);
        f(std::size_t{1}, shortcut_);
    }
    template <class F>
    void for_each_layer(F&& f) const {
        f(std::size_t{0}, body_);
        f(std::size_t{1}, shortcut_);
    }
    template <class F>
    void for_each_child(const Shape<4>& input, F&& f) const {
        f("body", body_, input);
        f("shortcut", shortcut_, input);
    }

    [[nodiscard]] std::string describe() const { return "Residual"; }

    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const {
        const Shape<4> body = detail::at_path(detail::path_step("body", body_, false), [&] { return body_.output_shape(in); });
        const Shape<4> shortcut =
            detail::at_path(detail::path_step("shortcut", shortcut_, false), [&] { return shortcut_.output_shape(in); });
        if (body != shortcut)
            throw shape_error("Residual: the body gives " + to_string(body) + " and the shortcut " + to_string(shortcut) +
                              " for input " + to_string(in) + "; they are added, so they must have the same shape");
        return body;
    }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state) const {
        detail::expect_shape(y, output_shape(x.shape()), *this, "forward output");
        TensorView<T, 4> body_output = y;
        if constexpr (!body_writes_y) {
            state.body_output.resize(y.shape());
            body_output = state.body_output.view();
        }
        detail::forward(body_, x, body_output, context, state.body);
        const T* other = x.data();
        if constexpr (!identity_shortcut) {
            state.shortcut_output.resize(y.shape());
            detail::forward(shortcut_, x, state.shortcut_output.view(), context, state.shortcut);
            other = state.shortcut_output.data();
        }
        detail::add(body_output.data(), other, y.data(), y.size());
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy, TensorView<T, 4> dx,
                  Context<T> context, State& state, Accumulate accumulate) {
        detail::expect_shape(dy, y.shape(), *this, "output gradient");
        TensorView<const T, 4> body_output = y;  // read for its shape only
        if constexpr (!body_writes_y) {
            if (state.body_output.shape() != y.shape())
                throw shape_error("Residual: backward without the forward pass of this output");
            body_output = state.body_output.cview();
        }
        detail::backward(body_, x, body_output, dy, dx, context, state.body, accumulate);
        if constexpr (identity_shortcut) {
            if (dx.data() != nullptr) detail::add(dx.data(), dy.data(), dx.data(), dx.size());
        } else {
            detail::backward(shortcut_, x, state.shortcut_output.cview(), dy, dx, context, state.shortcut,
                             Accumulate::yes);
        }
    }

private:
    /// Whether the body writes its output into y (its backward reads no more than the shape).
    static constexpr bool body_writes_y = cnn::backward_ignores_output<Body>;

    Body body_;
    Shortcut shortcut_;
};

template <class Body>
Residual(Body) -> Residual<Body>;
template <class Body, class Shortcut>
Residual(Body, Shortcut) -> Residual<Body, Shortcut>;

}  // namespace cnn
