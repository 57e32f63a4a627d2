// The layer contract, second edition, written once as a concept.
//
// A layer works on batches N x C x H x W. It holds its parameters only: what one call
// needs (scratch memory, the mode, a random stream) comes in a Context, and what forward
// leaves for backward (a max pool's winners, a dropout mask) lives in the layer's State,
// which the caller keeps (a network keeps it in its Workspace). So a const layer may be
// used by many threads at once, each with its own Context and State.
//
//   output_shape(in)   the shape forward writes for input shape `in`, or throws
//                      cnn::shape_error naming the layer, its parameters and both shapes.
//   forward(x, y, ctx[, state])
//                      requires y.shape() == output_shape(x.shape()); writes y. const.
//   backward(x, y, dy, dx, ctx[, state], accumulate)
//                      x, y: the input and output of the forward call (with the same state);
//                      dy = dE/dy. Writes dx = dE/dx (Accumulate::no) or adds it to dx
//                      (Accumulate::yes: two branches that read one tensor sum their
//                      gradients there); a null dx (a network's first layer) skips it.
//                      ADDS dE/d(parameters) into gradients(), so they accumulate until zeroed.
//   describe()         a short text naming the layer and its hyper-parameters,
//                      e.g. "Conv2D(1->6, 5x5, stride 1, padding 2)".
// and either, for a layer of its own (a leaf):
//   parameters(), gradients()
//                      every value as one flat span, and its gradient in the same order
//                      (empty for layers without parameters): weights, then biases, then
//                      buffers (see cnn/parameters.hpp), so that optimizers and serialisers
//                      need no special cases.
// or, for a layer made of layers (a composite: Sequential, Residual, Parallel, a fusion):
//   for_each_layer(f)  calls f(index, layer) for each layer it holds, in data order.
//
// Optional members, found by the code that uses them:
//   using State = ...;            what forward saves for backward (default: nothing)
//   parameter_layout()            how many weights, biases and buffers (default: all weights)
//   initialize(Random&, Init)     draws the layer's parameters (default: left as they are)
//   record()                      the layer's kind and hyper-parameters as data, for the model
//                                 file (default: its describe() text)
//   static constexpr bool monotone_non_decreasing = true;
//                                 an activation that commutes with max pooling (see graph/fuse.hpp)
//   function()                    an activation's scalar function, with value(x) and
//                                 derivative(x, y): then it runs inside a convolution and
//                                 max pool (ConvActMaxPool) on the pooled maxima only
//   static constexpr bool reshapes_only = true;
//                                 output = input's data with another shape (a network then
//                                 copies nothing)
//   static constexpr bool backward_ignores_output = true;
//                                 backward reads no more of y than its shape, so a network may
//                                 overwrite the output once the layers after it have read it
//                                 (an in-place activation, a residual sum): it then keeps no
//                                 copy of it
//   static constexpr bool runs_in_place = true;
//                                 forward may write y over x (the same memory), and backward,
//                                 given that memory as x, still computes dE/dx: an activation
//                                 whose derivative its output tells (ReLU, as PyTorch's
//                                 inplace=True). A network runs it in place after a layer whose
//                                 backward ignores its output.
#pragma once

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "cnn/context.hpp"
#include "cnn/error.hpp"
#include "cnn/geometry.hpp"
#include "cnn/parameters.hpp"
#include "cnn/scratch.hpp"
#include "cnn/tensor.hpp"

namespace cnn {

/// A type whose value_type is float or double. Checked before the requirements below, which
/// would otherwise fail on their parameter types with errors of their own (GCC).
template <class L>
concept HasScalarValueType = requires { typename L::value_type; } && Scalar<typename L::value_type>;

/// What forward saves for backward: L::State, or nothing.
template <class L>
struct layer_state {
    using type = std::monostate;
};
template <class L>
    requires requires { typename L::State; }
struct layer_state<L> {
    using type = typename L::State;
};
template <class L>
using layer_state_t = typename layer_state<L>::type;

namespace detail {
/// A visitor that accepts any layer, to ask whether a type has for_each_layer.
struct AnyLayerVisitor {
    template <class L>
    void operator()(std::size_t, L&) const noexcept {}
};

template <class L, class T = typename L::value_type>
concept HasPasses = requires(const L& const_layer, L& layer, TensorView<const T, 4> in, TensorView<T, 4> out,
                             Context<T> context, layer_state_t<L>& state, Accumulate accumulate) {
    const_layer.forward(in, out, context, state);
    layer.backward(in, in, in, out, context, state, accumulate);
} || requires(const L& const_layer, L& layer, TensorView<const T, 4> in, TensorView<T, 4> out, Context<T> context,
              Accumulate accumulate) {
    const_layer.forward(in, out, context);
    layer.backward(in, in, in, out, context, accumulate);
};

template <class L, class T = typename L::value_type>
concept HasParameters = requires(L& layer, const L& const_layer) {
    { layer.parameters() } -> std::same_as<std::span<T>>;
    { const_layer.parameters() } -> std::same_as<std::span<const T>>;
    { layer.gradients() } -> std::same_as<std::span<T>>;
};
}  // namespace detail

/// A layer made of layers: it has for_each_layer.
template <class L>
concept Composite = requires(L& layer, const L& const_layer, detail::AnyLayerVisitor visit) {
    layer.for_each_layer(visit);
    const_layer.for_each_layer(visit);
};

template <class L>
concept Layer = HasScalarValueType<L> && requires(const L& const_layer, const Shape<4>& shape) {
    { const_layer.output_shape(shape) } -> std::same_as<Shape<4>>;
    { const_layer.describe() } -> std::convertible_to<std::string>;
} && detail::HasPasses<L> && (detail::HasParameters<L> || Composite<L>);

/// An activation f with f(max(a, b)) = max(f(a), f(b)), which a max pool commutes with.
template <class L>
inline constexpr bool monotone_non_decreasing = requires {
    requires L::monotone_non_decreasing;
};

/// A layer whose output is its input's data with another shape (Flatten).
template <class L>
inline constexpr bool reshapes_only = requires {
    requires L::reshapes_only;
};

/// A layer whose backward reads only the shape of its output (see the top of this file).
template <class L>
inline constexpr bool backward_ignores_output = requires {
    requires L::backward_ignores_output;
};

/// A layer that may run with its output written over its input (see the top of this file).
template <class L>
inline constexpr bool runs_in_place = requires {
    requires L::runs_in_place;
};

/// A layer's kind and hyper-parameters as data: what the model file records.
struct LayerRecord {
    using Value = std::variant<std::int64_t, double>;
    std::string kind;                                        ///< "Conv2D", "Residual", ...
    std::vector<std::pair<std::string, Value>> attributes;  ///< hyper-parameters, by name
    std::uint64_t parameters = 0;                            ///< how many values it holds itself
    std::vector<LayerRecord> children;                       ///< a composite's layers, in order
    std::string description;  ///< describe(), for messages only: never compared
};

// Calling a layer whatever optional members it has.
namespace detail {

template <class L, class T = typename L::value_type>
void forward(const L& layer, std::type_identity_t<TensorView<const T, 4>> x, std::type_identity_t<TensorView<T, 4>> y,
             std::type_identity_t<Context<T>> context, layer_state_t<L>& state) {
    if constexpr (requires { typename L::State; })
        layer.forward(x, y, context, state);
    else
        layer.forward(x, y, context);
}

template <class L, class T = typename L::value_type>
void backward(L& layer, std::type_identity_t<TensorView<const T, 4>> x, std::type_identity_t<TensorView<const T, 4>> y,
              std::type_identity_t<TensorView<const T, 4>> dy, std::type_identity_t<TensorView<T, 4>> dx,
              std::type_identity_t<Context<T>> context, layer_state_t<L>& state, Accumulate accumulate) {
    if constexpr (requires { typename L::State; })
        layer.backward(x, y, dy, dx, context, state, accumulate);
    else
        layer.backward(x, y, dy, dx, context, accumulate);
}

/// f(leaf) for every leaf layer inside `layer` (itself, when it is one), in data order.
template <class L, class F>
void for_each_leaf(L& layer, F&& f) {
    if constexpr (Composite<std::remove_const_t<L>>)
        layer.for_each_layer([&](std::size_t, auto& inner) { detail::for_each_leaf(inner, f); });
    else
        f(layer);
}

/// Every parameter of `net`'s leaf layers, in data order (what a model file stores).
template <class Net>
std::vector<typename Net::value_type> gather_parameters(const Net& net) {
    std::vector<typename Net::value_type> values;
    for_each_leaf(net, [&](const auto& layer) {
        const auto span = layer.parameters();
        values.insert(values.end(), span.begin(), span.end());
    });
    return values;
}

/// Copies `values` (as gather_parameters orders them, as many) into `net`'s parameters, after
/// checking that each is finite: otherwise throws Error("<name>: parameter k of layer i (...)
/// is not a finite number") and leaves the network as it was.
template <class Error, class Net>
void install_parameters(Net& net, std::span<const typename Net::value_type> values, const std::string& name) {
    std::size_t offset = 0, index = 0;
    for_each_leaf(std::as_const(net), [&](const auto& layer) {
        const std::size_t count = layer.parameters().size();
        for (std::size_t k = 0; k < count; ++k)
            if (!std::isfinite(values[offset + k]))
                throw Error(name + ": parameter " + std::to_string(k) + " of layer " + std::to_string(index) + " (" +
                            layer.describe() + ") is not a finite number");
        offset += count;
        ++index;
    });
    offset = 0;
    for_each_leaf(net, [&](auto& layer) {
        const auto target = layer.parameters();
        std::copy_n(values.begin() + static_cast<std::ptrdiff_t>(offset), target.size(), target.begin());
        offset += target.size();
    });
}

template <class L>
ParameterLayout parameter_layout(const L& layer) {
    if constexpr (requires { { layer.parameter_layout() } -> std::same_as<ParameterLayout>; })
        return layer.parameter_layout();
    else
        return {layer.parameters().size(), 0, 0};
}

template <class L>
LayerRecord record(const L& layer) {
    LayerRecord result;
    if constexpr (requires { { layer.record() } -> std::same_as<LayerRecord>; }) {
        result = layer.record();
    } else if constexpr (Composite<L>) {
        result.kind = layer.describe();
        layer.for_each_layer([&](std::size_t, const auto& inner) { result.children.push_back(detail::record(inner)); });
    } else {
        result = {layer.describe(), {}, layer.parameters().size(), {}, {}};
    }
    result.description = layer.describe();
    return result;
}

/// The parameters() and gradients() of a layer that has none (a leaf layer derives from it).
template <Scalar T>
struct WithoutParameters {
    [[nodiscard]] std::span<T> parameters() noexcept { return {}; }
    [[nodiscard]] std::span<const T> parameters() const noexcept { return {}; }
    [[nodiscard]] std::span<T> gradients() noexcept { return {}; }
};

/// dx = dy's elements (Accumulate::no) or dx += them (::yes): the input gradient of a layer
/// whose output is its input's values (Identity, Flatten).
template <Scalar T>
void pass_back(TensorView<const T, 4> dy, TensorView<T, 4> dx, Accumulate accumulate) {
    if (accumulate == Accumulate::yes)
        std::transform(dy.begin(), dy.end(), dx.begin(), dx.begin(), std::plus<>{});
    else
        std::copy(dy.begin(), dy.end(), dx.begin());
}

/// Runs f; a cnn::shape_error it throws gets `where` in front: the path to the failing layer.
template <class F>
decltype(auto) at_path(const std::string& where, F&& f) {
    try {
        return f();
    } catch (const shape_error& e) {
        throw shape_error(where + e.what());
    }
}

/// A step of an error's path: "layer 3: " before a leaf, "layer 3 (Residual) > " before a
/// composite ("body > " when the composite's kind goes without saying).
template <class L>
std::string path_step(const std::string& name, const L& layer, bool with_kind = true) {
    if constexpr (Composite<L>)
        return with_kind ? name + " (" + layer.describe() + ") > " : name + " > ";
    else
        return name + ": ";
}

/// Converts a user-given hyper-parameter to a size, rejecting values below `minimum`.
template <std::integral I>
std::size_t checked_parameter(I value, std::ptrdiff_t minimum, const std::string& layer, const char* what) {
    if (std::cmp_less(value, minimum)) {
        throw parameter_error(layer + ": " + what + " must be at least " + std::to_string(minimum) + ", got " +
                              std::to_string(value));
    }
    if (std::cmp_greater(value, std::numeric_limits<std::ptrdiff_t>::max() / 2)) {
        throw parameter_error(layer + ": " + what + " " + std::to_string(value) + " is unreasonably large");
    }
    return static_cast<std::size_t>(value);
}

/// Checks that a view has the shape the layer expects (a programming error in the caller otherwise).
/// The layer's description is built only for the error, so the check costs no allocation.
template <class View, std::size_t Rank, class L>
void expect_shape(const View& view, const Shape<Rank>& expected, const L& layer, const char* what) {
    if (view.shape() != expected)
        throw shape_error(layer.describe() + ": " + what + " has shape " + to_string(view.shape()) + ", expected " +
                          to_string(expected));
}

/// Draws weights for a layer with `fan_in` inputs and `fan_out` outputs per weight.
template <Scalar T>
void draw_weights(std::span<T> weights, std::size_t fan_in, std::size_t fan_out, Random& rng, Init scheme) {
    const auto in = static_cast<double>(fan_in), out = static_cast<double>(fan_out);
    const double he_std = std::sqrt(2.0 / in), limit = std::sqrt(6.0 / (in + out));
    for (T& w : weights) w = static_cast<T>(scheme == Init::he ? he_std * rng.normal() : rng.uniform(-limit, limit));
}

}  // namespace detail
}  // namespace cnn
