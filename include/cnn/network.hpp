// Sequential<Layers...>: the layer graph. It holds its layers by value, in data
// order, and runs forward over them and backward in reverse, with no virtual
// calls. Shapes are inferred from the input shape; per-call buffers live in a
// Workspace the caller owns, so forward on a const network is thread-safe (one
// workspace per thread) and the batch size may change between calls.
//
//   cnn::Sequential net{cnn::Conv2D<float>{1, 6, 5, {.padding = 2}}, cnn::ReLU<float>{}, ...};
//   cnn::Random rng{42};
//   net.initialize(rng);                         // He (default) or Xavier/Glorot; without
//                                                // this call, He from Random{default_seed}
//   decltype(net)::Workspace ws;
//   auto logits = net.forward(x, ws);            // x: N x C x H x W
//   net.backward(d_logits, ws);                  // adds into every layer's gradients
//
// A ReLU followed by a MaxPool runs as one pass over the data, forward and
// backward (max pooling commutes with ReLU; see MaxPool::forward_after_relu),
// with the same results as the two layers one after the other. When a Conv2D
// comes before them, that pass runs inside the convolution, sample by sample,
// on the thread that computed the sample and while it is in its core's cache:
// forward pools each sample's convolution output right after it is computed and
// records where each window's maximum lies, and backward puts each sample's
// convolution deltas together from those places right before the convolution
// reads them. Neither the convolution's output nor its deltas are
// ever stored for the whole batch. A Flatten copies nothing: the next layer reads
// its input's data with the flattened shape, and writes its input gradient
// straight into the gradient of the Flatten's input. The numbers are the same;
// only the memory traffic changes.
#pragma once

#include <array>
#include <cmath>
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
#include "cnn/kernels/threads.hpp"
#include "cnn/layer.hpp"
#include "cnn/layers/conv2d.hpp"
#include "cnn/layers/flatten.hpp"
#include "cnn/layers/pooling.hpp"
#include "cnn/layers/relu.hpp"
#include "cnn/random.hpp"
#include "cnn/tensor.hpp"

namespace cnn {

enum class Init {
    he,      ///< weights ~ N(0, 2 / fan_in): for layers followed by ReLU
    xavier,  ///< weights ~ U(+-sqrt(6 / (fan_in + fan_out))): Glorot and Bengio
};

/// One layer's learnable values and their gradients, in the same order.
template <Scalar T>
struct ParameterGroup {
    std::span<T> values;
    std::span<T> gradients;
};

namespace detail {
/// The value type of the first layer when every argument is a layer, else float: the
/// static_assert in Sequential then reports the mistake once, and the rest of the class
/// still names valid types, so that no cascade of follow-up errors hides it.
template <class... Layers>
struct SequentialValueType {
    using type = float;
};
template <Layer First, Layer... Rest>
struct SequentialValueType<First, Rest...> {
    using type = typename First::value_type;
};

/// L::value_type for a layer, else Fallback.
template <class L, class Fallback>
struct LayerValueType {
    using type = Fallback;
};
template <Layer L, class Fallback>
struct LayerValueType<L, Fallback> {
    using type = typename L::value_type;
};
}  // namespace detail

template <class... Layers>
class Sequential {
    static_assert(sizeof...(Layers) > 0, "cnn::Sequential needs at least one layer");
    static_assert((Layer<Layers> && ...),
                  "cnn::Sequential: every argument must be a layer, a type that satisfies the cnn::Layer concept "
                  "(output_shape, forward, backward, parameters, gradients, describe; see cnn/layer.hpp)");

public:
    using value_type = typename detail::SequentialValueType<Layers...>::type;
    static_assert((std::is_same_v<typename detail::LayerValueType<Layers, value_type>::type, value_type> && ...),
                  "cnn::Sequential: every layer must use the same number type (all float or all double)");
    static constexpr std::size_t layer_count = sizeof...(Layers);

    /// Buffers of one forward/backward pass. Reused across calls: they grow to the
    /// largest batch seen and are never reallocated for smaller or equal ones.
    class Workspace {
    public:
        Workspace() = default;

    private:
        friend class Sequential;
        std::array<Tensor<value_type, 4>, layer_count> outputs_;
        std::array<Tensor<value_type, 4>, layer_count> gradients_;  // dE/d(input) of layer i, i >= 1
        std::array<std::vector<std::uint32_t>, layer_count> winners_;  // of a MaxPool after Conv2D and ReLU
        Scratch<value_type> scratch_;
        TensorView<const value_type, 4> input_;
        std::array<Shape<4>, layer_count + 1> shapes_{};
        bool has_shapes_ = false;
    };

    /// The seed of the initialisation a network gets when it is constructed.
    static constexpr std::uint64_t default_seed = 0;

    /// Takes the layers. Each layer that arrives with all its parameters zero (as layers are
    /// when constructed) is initialised as initialize does (He), from Random{default_seed},
    /// so that a network is never trained from all-zero weights by mistake; layers that carry
    /// values (trained, loaded or set by hand) keep them. Call initialize with your own
    /// generator to choose the seed and the scheme.
    explicit Sequential(Layers... layers) : layers_(std::move(layers)...) {
        Random rng{default_seed};
        for_each_layer([&](std::size_t, auto& layer) {
            if (std::ranges::all_of(layer.parameters(), [](value_type p) { return p == value_type{0}; }))
                Sequential::initialize_layer(layer, rng, Init::he);
        });
    }

    template <std::size_t I>
    [[nodiscard]] auto& layer() noexcept {
        return std::get<I>(layers_);
    }
    template <std::size_t I>
    [[nodiscard]] const auto& layer() const noexcept {
        return std::get<I>(layers_);
    }

    /// Calls f(index, layer) for every layer in data order.
    template <class F>
    void for_each_layer(F&& f) {
        for_each_impl(layers_, f);
    }
    template <class F>
    void for_each_layer(F&& f) const {
        for_each_impl(layers_, f);
    }

    /// The input shape followed by every layer's output shape. Throws cnn::shape_error
    /// naming the first layer (index and description) that cannot take its input.
    [[nodiscard]] std::array<Shape<4>, layer_count + 1> shapes(const Shape<4>& input) const {
        std::array<Shape<4>, layer_count + 1> result{};
        result[0] = input;
        for_each_layer([&](std::size_t index, const auto& layer) {
            try {
                result[index + 1] = layer.output_shape(result[index]);
            } catch (const shape_error& e) {
                throw shape_error("layer " + std::to_string(index) + ": " + e.what());
            }
        });
        return result;
    }

    [[nodiscard]] Shape<4> output_shape(const Shape<4>& input) const { return shapes(input)[layer_count]; }

    /// Runs every layer on x; the result stays valid until the next call with `workspace`.
    /// x must stay alive and unchanged until backward() is done with it.
    TensorView<const value_type, 4> forward(TensorView<const value_type, 4> x, Workspace& workspace) const {
        prepare(x.shape(), workspace);
        workspace.input_ = x;
        forward_layers(workspace, std::make_index_sequence<layer_count>{});
        return output_of<layer_count - 1>(workspace);
    }

    /// Back-propagates d_output = dE/d(network output) through the pass that `workspace`
    /// holds, adding every layer's parameter gradients. The first layer's input gradient
    /// is not computed.
    void backward(TensorView<const value_type, 4> d_output, Workspace& workspace) {
        if (!workspace.has_shapes_)
            throw shape_error("Sequential::backward: the workspace holds no forward pass");
        if (d_output.shape() != workspace.shapes_[layer_count])
            throw shape_error("Sequential::backward: the output gradient has shape " + to_string(d_output.shape()) +
                              ", the network's output has shape " + to_string(workspace.shapes_[layer_count]));
        // Gradient buffers are sized here, not in forward, so inference never pays for them.
        for (std::size_t i = 1; i < layer_count; ++i)
            if (!transient_outputs()[i - 1]) workspace.gradients_[i].resize(workspace.shapes_[i]);
        backward_impl<layer_count - 1>(d_output, workspace);
    }

    /// Sets every gradient to zero.
    void zero_gradients() {
        for_each_layer([](std::size_t, auto& layer) {
            const std::span<value_type> gradients = layer.gradients();
            parallel_blocks(gradients.size(), 1 << 15, [&](std::size_t begin, std::size_t end) {
                std::fill(gradients.begin() + static_cast<std::ptrdiff_t>(begin),
                          gradients.begin() + static_cast<std::ptrdiff_t>(end), value_type{0});
            });
        });
    }

    /// Every layer that has parameters, in data order.
    [[nodiscard]] std::vector<ParameterGroup<value_type>> parameter_groups() {
        std::vector<ParameterGroup<value_type>> groups;
        for_each_layer([&](std::size_t, auto& layer) {
            if (!layer.parameters().empty()) groups.push_back({layer.parameters(), layer.gradients()});
        });
        return groups;
    }

    [[nodiscard]] std::size_t parameter_count() const {
        std::size_t count = 0;
        for_each_layer([&](std::size_t, const auto& layer) { count += layer.parameters().size(); });
        return count;
    }

    /// Draws every weight from `rng` (biases start at 0).
    void initialize(Random& rng, Init scheme = Init::he) {
        for_each_layer([&](std::size_t, auto& layer) { Sequential::initialize_layer(layer, rng, scheme); });
    }

    /// A table of the layers, their output shapes and parameter counts, for input shape `input`.
    [[nodiscard]] std::string summary(const Shape<4>& input) const {
        const auto all = shapes(input);
        std::ostringstream out;
        out << std::left << std::setw(4) << "#" << std::setw(44) << "layer" << std::setw(20) << "output shape"
            << std::right << std::setw(12) << "parameters" << "\n";
        out << std::string(80, '-') << "\n";
        for_each_layer([&](std::size_t index, const auto& layer) {
            out << std::left << std::setw(4) << index << std::setw(44) << layer.describe() << std::setw(20)
                << to_string(all[index + 1]) << std::right << std::setw(12) << layer.parameters().size() << "\n";
        });
        out << std::string(80, '-') << "\n";
        out << "input " << to_string(input) << ", " << parameter_count() << " parameters\n";
        return out.str();
    }

    /// One line per layer: the architecture as the model file records it.
    [[nodiscard]] std::string architecture() const {
        std::string text;
        for_each_layer([&](std::size_t, const auto& layer) { text += layer.describe() + "\n"; });
        return text;
    }

private:
    template <class L>
    static void initialize_layer(L& layer, Random& rng, Init scheme) {
        if constexpr (requires { layer.fan_in(); layer.fan_out(); layer.bias(); }) {
            const auto fan_in = static_cast<double>(layer.fan_in());
            const auto fan_out = static_cast<double>(layer.fan_out());
            const std::span<value_type> all = layer.parameters();
            const std::size_t weight_count = all.size() - layer.bias().size();
            const double he_std = std::sqrt(2.0 / fan_in), limit = std::sqrt(6.0 / (fan_in + fan_out));
            for (std::size_t i = 0; i < weight_count; ++i)
                all[i] = static_cast<value_type>(scheme == Init::he ? he_std * rng.normal() : rng.uniform(-limit, limit));
            std::fill(all.begin() + static_cast<std::ptrdiff_t>(weight_count), all.end(), value_type{0});
        }
    }

    template <class Tuple, class F, std::size_t... I>
    static void for_each_impl(Tuple& layers, F& f, std::index_sequence<I...>) {
        (f(I, std::get<I>(layers)), ...);
    }
    template <class Tuple, class F>
    static void for_each_impl(Tuple& layers, F& f) {
        for_each_impl(layers, f, std::make_index_sequence<layer_count>{});
    }

    void prepare(const Shape<4>& input, Workspace& workspace) const {
        if (workspace.has_shapes_ && workspace.shapes_[0] == input) return;
        workspace.shapes_ = shapes(input);
        workspace.has_shapes_ = true;
        for (std::size_t i = 0; i < layer_count; ++i) {
            if (!transient_outputs()[i]) workspace.outputs_[i].resize(workspace.shapes_[i + 1]);
            if (pooled_after_conv()[i]) workspace.winners_[i].resize(element_count(workspace.shapes_[i + 1]));
        }
    }

    /// Whether layer I is a ReLU followed by a MaxPool, which runs both (the ReLU's own
    /// output and input gradient are then never stored).
    template <std::size_t I>
    static constexpr bool relu_into_maxpool() {
        if constexpr (I >= layer_count - 1) {  // also I = -1, asked for the first layer
            return false;
        } else {
            using Here = std::tuple_element_t<I, std::tuple<Layers...>>;
            using Next = std::tuple_element_t<I + 1, std::tuple<Layers...>>;
            return std::is_same_v<Here, ReLU<value_type>> && std::is_same_v<Next, MaxPool<value_type>>;
        }
    }
    /// Whether layer I only reshapes its input (a Flatten), which Sequential does without a copy.
    template <std::size_t I>
    static constexpr bool reshapes() {
        return std::is_same_v<std::tuple_element_t<I, std::tuple<Layers...>>, Flatten<value_type>>;
    }

    /// Whether layer I is a Conv2D followed by a ReLU and a MaxPool, which the convolution pools
    /// as it goes (the MaxPool's own forward and backward are then done by the Conv2D's).
    template <std::size_t I>
    static constexpr bool conv_into_pool() {
        if constexpr (layer_count < 3 || I >= layer_count - 2) {  // also I = -1, -2, asked for the first layers
            return false;
        } else {
            using Here = std::tuple_element_t<I, std::tuple<Layers...>>;
            return std::is_same_v<Here, Conv2D<value_type>> && relu_into_maxpool<I + 1>();
        }
    }
    /// Whether layer I is the MaxPool of a Conv2D -> ReLU -> MaxPool.
    template <std::size_t I>
    static constexpr bool pooled_by_conv() {
        if constexpr (I < 2)
            return false;
        else
            return conv_into_pool<I - 2>();
    }
    /// Per layer: whether its output (and so the gradient with respect to it) is never stored,
    /// because a fused pass consumes it where it is computed, or because it is its input's
    /// data with another shape.
    static constexpr std::array<bool, layer_count> transient_outputs() {
        return []<std::size_t... I>(std::index_sequence<I...>) {
            return std::array<bool, layer_count>{(relu_into_maxpool<I>() || conv_into_pool<I>() || reshapes<I>())...};
        }(std::make_index_sequence<layer_count>{});
    }
    static constexpr std::array<bool, layer_count> pooled_after_conv() {
        return []<std::size_t... I>(std::index_sequence<I...>) {
            return std::array<bool, layer_count>{pooled_by_conv<I>()...};
        }(std::make_index_sequence<layer_count>{});
    }

    /// Samples [first, last) of a batch of shape `shape`: where their elements start, and their shape.
    static std::pair<std::size_t, Shape<4>> part_of(const Shape<4>& shape, std::size_t first, std::size_t last) {
        return {first * shape[1] * shape[2] * shape[3], {last - first, shape[1], shape[2], shape[3]}};
    }

    template <std::size_t I>
    static TensorView<const value_type, 4> input_of(const Workspace& workspace) {
        if constexpr (I == 0)
            return workspace.input_;
        else
            return output_of<I - 1>(workspace);
    }

    template <std::size_t I>
    static TensorView<const value_type, 4> output_of(const Workspace& workspace) {
        if constexpr (reshapes<I>())
            return {input_of<I>(workspace).data(), workspace.shapes_[I + 1]};
        else
            return workspace.outputs_[I].view();
    }

    /// dE/d(input of layer I), where layer I - 1 writes it: none for the first layer, and
    /// after a Flatten the gradient of the Flatten's input, seen with the flattened shape.
    template <std::size_t I>
    static TensorView<value_type, 4> gradient_of(Workspace& workspace) {
        if constexpr (I == 0)
            return {};
        else if constexpr (reshapes<I - 1>())
            return {gradient_of<I - 1>(workspace).data(), workspace.shapes_[I]};
        else
            return workspace.gradients_[I].view();
    }

    template <std::size_t... I>
    void forward_layers(Workspace& workspace, std::index_sequence<I...>) const {
        (forward_layer<I>(workspace), ...);
    }

    template <std::size_t I>
    void forward_layer(Workspace& workspace) const {
        if constexpr (relu_into_maxpool<I>() || pooled_by_conv<I>() || reshapes<I>()) {
            return;  // the MaxPool after it applies it, the Conv2D before runs the MaxPool, or a reshape
        } else if constexpr (conv_into_pool<I>()) {
            // The convolution's output is not stored: each part goes straight into the pool.
            const auto& pool = std::get<I + 2>(layers_);
            const TensorView<value_type, 4> pooled = workspace.outputs_[I + 2].view();
            std::uint32_t* const winners = workspace.winners_[I + 2].data();
            std::get<I>(layers_).forward(
                input_of<I>(workspace), TensorView<value_type, 4>{nullptr, workspace.shapes_[I + 1]}, workspace.scratch_,
                [&](std::size_t begin, std::size_t end, TensorView<const value_type, 4> net) {
                    const auto [offset, shape] = part_of(pooled.shape(), begin, end);
                    pool.forward_after_relu(net, TensorView<value_type, 4>{pooled.data() + offset, shape},
                                            std::span{winners + offset, element_count(shape)});
                });
        } else if constexpr (relu_into_maxpool<I - 1>()) {
            std::get<I>(layers_).forward_after_relu(input_of<I - 1>(workspace), workspace.outputs_[I].view());
        } else {
            std::get<I>(layers_).forward(input_of<I>(workspace), workspace.outputs_[I].view(), workspace.scratch_);
        }
    }

    template <std::size_t I>
    void backward_impl(TensorView<const value_type, 4> d_output, Workspace& workspace) {
        if constexpr (reshapes<I>()) {
            // The gradient of a reshape's input is its output's, seen with the input's shape
            // (and when it is not the last layer, the next layer wrote it there already).
            if constexpr (I > 0) backward_impl<I - 1>({d_output.data(), workspace.shapes_[I]}, workspace);
        } else {
            // Layer I; or the MaxPool I with the ReLU before it, whose input gradient it writes; or
            // those two with the Conv2D before them, which has the pool write its deltas as it goes.
            constexpr bool triple = pooled_by_conv<I>();
            constexpr bool pair = relu_into_maxpool<I - 1>();
            constexpr std::size_t first = triple ? I - 2 : pair ? I - 1 : I;
            const TensorView<value_type, 4> d_input = gradient_of<first>(workspace);
            if constexpr (triple) {
                // The convolution's deltas are not stored: each part comes from the pool's winners.
                const auto& pool = std::get<I>(layers_);
                const std::uint32_t* const winners = workspace.winners_[I].data();
                const TensorView<const value_type, 4> net{nullptr, workspace.shapes_[I - 1]};
                std::get<I - 2>(layers_).backward(
                    input_of<I - 2>(workspace), net, net, d_input, workspace.scratch_,
                    [&](std::size_t begin, std::size_t end, TensorView<value_type, 4> d_net) {
                        const auto [offset, shape] = part_of(d_output.shape(), begin, end);
                        pool.backward_after_relu(std::span{winners + offset, element_count(shape)},
                                                 TensorView<const value_type, 4>{d_output.data() + offset, shape},
                                                 d_net);
                    });
            } else if constexpr (pair) {
                std::get<I>(layers_).backward_after_relu(input_of<first>(workspace), workspace.outputs_[I].view(),
                                                         d_output, d_input);
            } else {
                std::get<I>(layers_).backward(input_of<I>(workspace), workspace.outputs_[I].view(), d_output, d_input,
                                              workspace.scratch_);
            }
            if constexpr (first > 0) backward_impl<first - 1>(gradient_of<first>(workspace), workspace);
        }
    }

    std::tuple<Layers...> layers_;
};

template <class... Layers>
Sequential(Layers...) -> Sequential<Layers...>;

}  // namespace cnn
