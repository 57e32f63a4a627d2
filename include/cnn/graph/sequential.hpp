// Sequential<Layers...>: a chain of layers, run in data order forward and in reverse
// backward, with no virtual calls. It is a layer itself, so chains nest inside chains,
// residual blocks and parallel branches to any depth; the outermost one is the network
// users train. Shapes are inferred from the input shape; per-call buffers live in a
// Workspace the caller owns, so forward on a const network is thread-safe (one
// workspace per thread) and the batch size may change between calls.
//
//   cnn::Sequential net{cnn::Conv2D<float>{1, 6, 5, {.padding = 2}}, cnn::ReLU<float>{}, ...};
//   cnn::Random rng{42};
//   net.initialize(rng);                         // He (default) or Xavier/Glorot; without
//                                                // this call, He from Random{default_seed}
//   decltype(net)::Workspace ws;
//   auto logits = net.forward(x, ws);            // x: N x C x H x W; inference
//   net.forward(x, ws, cnn::Mode::training, &rng);  // training: batch statistics, dropout
//   net.backward(d_logits, ws);                  // adds into every layer's gradients
//
// The chain runs the steps of a compile-time rewrite of its layers (cnn/graph/fuse.hpp):
// a Conv2D, a monotone activation and a MaxPool run as one ConvActMaxPool, an activation and
// a MaxPool as one ActMaxPool, and a Flatten as a view of its input. Everyone else sees the layers as
// written: layer<I>(), for_each_layer, the parameters and the model file.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "cnn/error.hpp"
#include "cnn/graph/common.hpp"
#include "cnn/graph/fuse.hpp"
#include "cnn/kernels/threads.hpp"
#include "cnn/layer.hpp"
#include "cnn/layers/identity.hpp"
#include "cnn/random.hpp"
#include "cnn/tensor.hpp"

namespace cnn {

template <class... Layers>
class Sequential {
    static_assert(sizeof...(Layers) > 0, "cnn::Sequential needs at least one layer");
    static_assert((Layer<Layers> && ...),
                  "cnn::Sequential: every argument must be a layer, a type that satisfies the cnn::Layer concept "
                  "(output_shape, forward, backward, parameters and gradients or for_each_layer, describe; see "
                  "cnn/layer.hpp)");

public:
    using value_type = typename detail::FirstValueType<Layers...>::type;
    static_assert((std::is_same_v<typename detail::LayerValueType<Layers, value_type>::type, value_type> && ...),
                  "cnn::Sequential: every layer must use the same number type (all float or all double)");
    static constexpr std::size_t layer_count = sizeof...(Layers);

private:
    // With a stray argument, a plan of one Identity: the static_assert above is then the only error.
    using Plan = std::conditional_t<(Layer<Layers> && ...), detail::ChainPlan<value_type, Layers...>,
                                    detail::ChainPlan<value_type, Identity<value_type>>>;
    using Steps = typename Plan::Steps;
    static constexpr std::size_t step_count = Plan::step_count;
    template <std::size_t S>
    using step_type = std::tuple_element_t<S, Steps>;
    using T = value_type;

    template <std::size_t... S>
    static std::tuple<layer_state_t<step_type<S>>...> states_of(std::index_sequence<S...>);  // for its type

public:
    /// What a forward pass leaves for backward: every step's output (but the last's, which is
    /// the chain's output, a view's, and one an in-place step overwrites), the memory of the
    /// gradients of the steps' inputs, and the states the steps declare. Buffers grow to the
    /// largest batch seen and are reused after that.
    ///
    /// A step's input gradient is needed only until the step before has read it, so the
    /// chain keeps two gradient buffers, not one per step: the steps that have a gradient
    /// buffer (all but the first and those after a view) take the two in turn, so that each
    /// step writes dE/d(its input) into one while it reads dE/d(its output) from the other,
    /// and the step after it in backward order overwrites what it read. (Every layer's
    /// backward writes the whole of its input gradient unless told to add into it, so no
    /// step sees another's values.)
    struct State {
        std::array<Tensor<T, 4>, step_count> outputs;
        std::array<Tensor<T, 1>, 2> gradients;  // see gradient_buffer()
        decltype(states_of(std::make_index_sequence<step_count>{})) states;
        std::array<Shape<4>, step_count + 1> shapes{};  // the input of each step, then the output
        bool has_shapes = false;
    };

    /// The buffers of one forward/backward pass of the whole network, for the caller to keep.
    class Workspace {
    public:
        Workspace() = default;

    private:
        friend class Sequential;
        State state_;
        Tensor<T, 4> output_;
        Scratch<T> scratch_;
        TensorView<const T, 4> input_;
        Mode mode_ = Mode::inference;
        Random* random_ = nullptr;
        bool has_pass_ = false;
    };

    /// The seed of the initialisation a network gets when it is constructed.
    static constexpr std::uint64_t default_seed = 0;

    /// Takes the layers. Each layer that arrives with all its parameters zero (as layers are
    /// when constructed) is initialised as initialize does (He), from Random{default_seed},
    /// so that a network is never trained from all-zero weights by mistake; a chain nested
    /// inside that still holds the values its own constructor drew is drawn again from the
    /// same stream, so that blocks built alike start apart. Layers that carry values
    /// (trained, loaded or set by hand) keep them. Call initialize with your own generator
    /// to choose the seed and the scheme.
    explicit Sequential(Layers... layers)
        : Sequential(std::tuple<Layers...>(std::move(layers)...), std::make_index_sequence<step_count>{}) {}

    /// Layer I, counted as written (a fused step's parts each have their own index).
    template <std::size_t I>
    [[nodiscard]] auto& layer() noexcept {
        return part<I>(*this);
    }
    template <std::size_t I>
    [[nodiscard]] const auto& layer() const noexcept {
        return part<I>(*this);
    }

    /// Calls f(index, layer) for every layer as written, in data order.
    template <class F>
    void for_each_layer(F&& f) {
        visit_layers(*this, f, std::make_index_sequence<step_count>{});
    }
    template <class F>
    void for_each_layer(F&& f) const {
        visit_layers(*this, f, std::make_index_sequence<step_count>{});
    }

    /// Calls f(name, layer, input shape) for every layer, for summaries.
    template <class F>
    void for_each_child(const Shape<4>& input, F&& f) const {
        const auto all = shapes(input);
        for_each_layer([&](std::size_t index, const auto& layer) { f(std::to_string(index), layer, all[index]); });
    }

    [[nodiscard]] std::string describe() const { return "Sequential"; }

    /// The input shape followed by every layer's output shape. Throws cnn::shape_error
    /// naming the path to the first layer that cannot take its input, e.g.
    /// "layer 3 (Residual) > body > layer 1: Conv2D(16->32, ...) expects 16 input channels, ...".
    [[nodiscard]] std::array<Shape<4>, layer_count + 1> shapes(const Shape<4>& input) const {
        std::array<Shape<4>, layer_count + 1> result{};
        result[0] = input;
        for_each_layer([&](std::size_t index, const auto& layer) {
            result[index + 1] = detail::at_path(detail::path_step("layer " + std::to_string(index), layer),
                                                [&] { return layer.output_shape(result[index]); });
        });
        return result;
    }

    [[nodiscard]] Shape<4> output_shape(const Shape<4>& input) const { return shapes(input)[layer_count]; }

    /// Runs every layer on x, in inference mode unless told otherwise (a stochastic layer in
    /// training needs `random`); the result stays valid until the next call with `workspace`.
    /// x must stay alive and unchanged until backward() is done with it.
    TensorView<const T, 4> forward(TensorView<const T, 4> x, Workspace& workspace, Mode mode = Mode::inference,
                                   Random* random = nullptr) const {
        workspace.has_pass_ = false;
        workspace.output_.resize(prepare(x.shape(), workspace.state_));
        workspace.input_ = x;
        workspace.mode_ = mode;
        workspace.random_ = random;
        forward(x, workspace.output_.view(), Context<T>{workspace.scratch_, mode, random}, workspace.state_);
        workspace.has_pass_ = true;
        return workspace.output_.cview();
    }

    /// Back-propagates d_output = dE/d(network output) through the pass that `workspace`
    /// holds (in its mode), adding every layer's parameter gradients. The first layer's input
    /// gradient is not computed.
    void backward(TensorView<const T, 4> d_output, Workspace& workspace) {
        if (!workspace.has_pass_) throw shape_error("Sequential::backward: the workspace holds no forward pass");
        if (d_output.shape() != workspace.output_.shape())
            throw shape_error("Sequential::backward: the output gradient has shape " + to_string(d_output.shape()) +
                              ", the network's output has shape " + to_string(workspace.output_.shape()));
        backward(workspace.input_, workspace.output_.cview(), d_output, TensorView<T, 4>{},
                 Context<T>{workspace.scratch_, workspace.mode_, workspace.random_}, workspace.state_, Accumulate::no);
    }

    /// As a layer inside another: writes the chain's output into y.
    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state) const {
        if (y.shape() != prepare(x.shape(), state))
            throw shape_error("Sequential: forward output has shape " + to_string(y.shape()) + ", expected " +
                              to_string(state.shapes[step_count]));
        forward_steps(x, y, context, state, std::make_index_sequence<step_count>{});
    }

    /// As a layer inside another: writes (or adds into) dx, adds the parameter gradients.
    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy, TensorView<T, 4> dx,
                  Context<T> context, State& state, Accumulate accumulate) {
        if (!state.has_shapes || state.shapes[0] != x.shape() || dy.shape() != state.shapes[step_count])
            throw shape_error("Sequential::backward: no forward pass of input " + to_string(x.shape()) +
                              " and output gradient " + to_string(dy.shape()) + " in this state");
        // Gradient buffers are sized here, not in forward, so inference never pays for them.
        std::array<std::size_t, 2> sizes{};
        [&]<std::size_t... S>(std::index_sequence<S...>) {
            ((has_gradient_buffer<S>() ? void(sizes[gradient_buffer<S>()] =
                                                  std::max(sizes[gradient_buffer<S>()], element_count(state.shapes[S])))
                                       : void()),
             ...);
        }(std::make_index_sequence<step_count>{});
        for (std::size_t b = 0; b < 2; ++b) state.gradients[b].resize(Shape<1>{sizes[b]});  // keeps its memory
        backward_step<step_count - 1>(x, y, dy, dx, context, state, accumulate);
    }

    /// Sets every gradient to zero.
    void zero_gradients() {
        detail::for_each_leaf(*this, [](auto& leaf) {
            const std::span<T> gradients = leaf.gradients();
            parallel_blocks(gradients.size(), 1 << 15, [&](std::size_t begin, std::size_t end) {
                std::fill(gradients.begin() + static_cast<std::ptrdiff_t>(begin),
                          gradients.begin() + static_cast<std::ptrdiff_t>(end), T{0});
            });
        });
    }

    /// Every layer that has parameters, in data order, with the role of each value.
    [[nodiscard]] std::vector<ParameterGroup<T>> parameter_groups() {
        std::vector<ParameterGroup<T>> groups;
        detail::for_each_leaf(*this, [&](auto& leaf) {
            if (!leaf.parameters().empty())
                groups.push_back({leaf.parameters(), leaf.gradients(), detail::parameter_layout(leaf)});
        });
        return groups;
    }

    [[nodiscard]] std::size_t parameter_count() const { return detail::parameter_count(*this); }

    /// Draws every layer's parameters from `rng` (each layer its own way: weights by
    /// `scheme`, biases 0).
    void initialize(Random& rng, Init scheme = Init::he) { detail::initialize_leaves(*this, rng, scheme); }

    /// A table of the layers (nested ones indented), their output shapes and parameter counts,
    /// for input shape `input`.
    [[nodiscard]] std::string summary(const Shape<4>& input) const {
        std::vector<detail::SummaryRow> rows;
        for_each_child(input, [&](const std::string& name, const auto& layer, const Shape<4>& in) {
            detail::summary_rows(layer, name, 0, in, rows);
        });
        std::ostringstream out;
        out << std::left << std::setw(12) << "#" << std::setw(44) << "layer" << std::setw(20) << "output shape"
            << std::right << std::setw(12) << "parameters" << "\n";
        out << std::string(88, '-') << "\n";
        for (const auto& row : rows)
            out << std::left << std::setw(12) << row.index << std::setw(44) << (std::string(2 * row.depth, ' ') + row.layer)
                << std::setw(20) << to_string(row.output) << std::right << std::setw(12) << row.parameters << "\n";
        out << std::string(88, '-') << "\n";
        out << "input " << to_string(input) << ", " << parameter_count() << " parameters\n";
        return out.str();
    }

    /// One line per leaf layer: the architecture as model files of version 1 recorded it.
    [[nodiscard]] std::string architecture() const {
        std::string text;
        detail::for_each_leaf(*this, [&](const auto& leaf) { text += leaf.describe() + "\n"; });
        return text;
    }

private:
    template <class Tuple, std::size_t... S>
    Sequential(Tuple layers, std::index_sequence<S...>) : steps_(Plan::template make_step<S>(layers)...) {
        Random rng{default_seed};
        detail::initialize_children(*this, rng);
    }

    template <std::size_t I, class Self>
    static auto& part(Self& self) noexcept {
        constexpr std::size_t s = Plan::step_of[I];
        auto& step = std::get<s>(self.steps_);
        if constexpr (Plan::sizes[Plan::first[s]] == 1)
            return step;
        else
            return std::get<I - Plan::first[s]>(step.layers());
    }

    template <class Self, class F, std::size_t... S>
    static void visit_layers(Self& self, F& f, std::index_sequence<S...>) {
        (visit_step<S>(self, f), ...);
    }
    template <std::size_t S, class Self, class F>
    static void visit_step(Self& self, F& f) {
        auto& step = std::get<S>(self.steps_);
        if constexpr (Plan::sizes[Plan::first[S]] == 1)
            f(Plan::first[S], step);
        else
            step.for_each_layer([&](std::size_t k, auto& layer) { f(Plan::first[S] + k, layer); });
    }

    /// Whether step S is a reshape run as a view of its input (never the last step, whose
    /// output is the chain's).
    template <std::size_t S>
    static constexpr bool is_view() {
        return S + 1 < step_count && reshapes_only<step_type<S>>;
    }

    /// Whether step S's output has a buffer of its own: not the last step's (the chain's y), a
    /// view's, nor one that an in-place step after it overwrites (that step's memory holds it).
    template <std::size_t S>
    static constexpr bool has_output_buffer() {
        if constexpr (S + 1 == step_count)
            return false;
        else
            return !is_view<S>() && !in_place_step<S + 1>();
    }

    /// Whether the gradient of step S's input has a buffer of its own: not for the first step
    /// (the chain's dx) nor after a view (the view's input gradient, reshaped).
    template <std::size_t S>
    static constexpr bool has_gradient_buffer() {
        if constexpr (S == 0)
            return false;
        else
            return !is_view<S - 1>();
    }

    /// Which of the two gradient buffers holds the gradient of step S's input (a step with a
    /// buffer of its own): the steps with buffers alternate, so step S - 1 (or, after views,
    /// the step before them), which writes into the last buffer before S's, never writes
    /// into the one it reads.
    template <std::size_t S>
    static constexpr std::size_t gradient_buffer() {
        return []<std::size_t... s>(std::index_sequence<s...>) {
            return ((has_gradient_buffer<s>() ? std::size_t{1} : std::size_t{0}) + ... + std::size_t{0});
        }(std::make_index_sequence<S>{}) % 2;
    }

    /// Computes the shapes for input shape `input` (unless known) and sizes the outputs;
    /// returns the output shape.
    Shape<4> prepare(const Shape<4>& input, State& state) const {
        if (state.has_shapes && state.shapes[0] == input) return state.shapes[step_count];
        state.has_shapes = false;
        const auto all = shapes(input);
        for (std::size_t s = 0; s < step_count; ++s) state.shapes[s] = all[Plan::first[s]];
        state.shapes[step_count] = all[layer_count];
        [&]<std::size_t... S>(std::index_sequence<S...>) {
            ((has_output_buffer<S>() ? state.outputs[S].resize(state.shapes[S + 1]) : void()), ...);
        }(std::make_index_sequence<step_count>{});
        state.has_shapes = true;
        return state.shapes[step_count];
    }

    template <std::size_t S>
    static TensorView<const T, 4> input_of(TensorView<const T, 4> x, TensorView<const T, 4> y, const State& state) {
        if constexpr (S == 0)
            return x;
        else
            return output_of<S - 1>(x, y, state);
    }
    template <std::size_t S>
    static TensorView<const T, 4> output_of(TensorView<const T, 4> x, TensorView<const T, 4> y, const State& state) {
        if constexpr (S + 1 == step_count)
            return y;
        else if constexpr (is_view<S>())
            return {input_of<S>(x, y, state).data(), state.shapes[S + 1]};
        else
            return output_memory<S>(y, state);
    }
    /// Where step S (not a view) writes its output: the chain's y for the last step, the
    /// memory of an in-place step after it, else its own buffer. Writable through a writable
    /// y and State, read-only through const ones.
    template <std::size_t S, class View, class Chain>
    static View output_memory(View y, Chain& state) {
        if constexpr (S + 1 == step_count)
            return y;
        else if constexpr (in_place_step<S + 1>())
            return {output_memory<S + 1>(y, state).data(), state.shapes[S + 1]};
        else
            return state.outputs[S].view();
    }
    /// dE/d(output of step S): the chain's dy for the last step, else where step S + 1 wrote
    /// its input gradient.
    template <std::size_t S>
    static TensorView<const T, 4> d_output_of(TensorView<const T, 4> dy, State& state) {
        if constexpr (S + 1 == step_count)
            return dy;
        else
            return d_input_of<S + 1>(TensorView<T, 4>{}, Accumulate::no, state).first;
    }
    /// dE/d(input of step S), and whether step S adds into it: the chain's dx (and its
    /// accumulate flag) for the first step; before a view, the view's own.
    template <std::size_t S>
    static std::pair<TensorView<T, 4>, Accumulate> d_input_of(TensorView<T, 4> dx, Accumulate accumulate,
                                                              State& state) {
        if constexpr (S == 0) {
            return {dx, accumulate};
        } else if constexpr (is_view<S - 1>()) {
            const auto [before, mode] = d_input_of<S - 1>(dx, accumulate, state);
            return {TensorView<T, 4>{before.data(), state.shapes[S]}, mode};
        } else {
            return {TensorView<T, 4>{state.gradients[gradient_buffer<S>()].data(), state.shapes[S]}, Accumulate::no};
        }
    }

    template <std::size_t... S>
    void forward_steps(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state,
                       std::index_sequence<S...>) const {
        (forward_step<S>(x, y, context, state), ...);
    }
    template <std::size_t S>
    void forward_step(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state) const {
        if constexpr (!is_view<S>())
            detail::forward(std::get<S>(steps_), input_of<S>(x, y, state), output_memory<S>(y, state), context,
                            std::get<S>(state.states));
    }

    template <std::size_t S>
    void backward_step(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy,
                       TensorView<T, 4> dx, Context<T> context, State& state, Accumulate accumulate) {
        if constexpr (!is_view<S>()) {
            const auto [d_input, mode] = d_input_of<S>(dx, accumulate, state);
            detail::backward(std::get<S>(steps_), input_of<S>(x, y, state), output_of<S>(x, y, state),
                             d_output_of<S>(dy, state), d_input, context, std::get<S>(state.states), mode);
        }
        if constexpr (S > 0) backward_step<S - 1>(x, y, dy, dx, context, state, accumulate);
    }

    /// Whether step S runs on the memory of step S - 1's output (see cnn/layer.hpp): an
    /// activation that may (runs_in_place) after a step whose backward reads no more than the
    /// shape of its output and which does not itself run in place (the input of an in-place
    /// step is its own output).
    template <std::size_t S>
    static constexpr bool in_place_step() {
        if constexpr (S == 0)
            return false;  // the chain's input is never overwritten
        else
            return cnn::runs_in_place<step_type<S>> && !is_view<S - 1>() &&
                   cnn::backward_ignores_output<step_type<S - 1>> && !in_place_step<S - 1>();
    }

    Steps steps_;

public:
    /// Its backward reads the chain's output when its last step does (or runs in place).
    static constexpr bool backward_ignores_output =
        cnn::backward_ignores_output<step_type<step_count - 1>> && !in_place_step<step_count - 1>();
};

template <class... Layers>
Sequential(Layers...) -> Sequential<Layers...>;

}  // namespace cnn
