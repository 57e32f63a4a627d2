// What the composites (Sequential, Residual, Parallel) share: walking the leaves of a
// nest, counting and initialising their parameters, the rows of a summary, and adding
// tensors on the thread pool in a fixed order.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "cnn/kernels/threads.hpp"
#include "cnn/layer.hpp"
#include "cnn/random.hpp"

namespace cnn::detail {

/// The value type of the first layer when every argument is a layer, else float: the
/// static_assert of a composite then reports the mistake once, and the rest of the class
/// still names valid types, so that no cascade of follow-up errors hides it.
template <class... Layers>
struct FirstValueType {
    using type = float;
};
template <Layer First, class... Rest>
struct FirstValueType<First, Rest...> {
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

template <class L>
std::size_t parameter_count(const L& layer) {
    std::size_t count = 0;
    for_each_leaf(layer, [&](const auto& leaf) { count += leaf.parameters().size(); });
    return count;
}

/// Draws the parameters of every leaf that can initialise itself.
template <class L>
void initialize_leaves(L& layer, Random& rng, Init scheme) {
    for_each_leaf(layer, [&](auto& leaf) {
        if constexpr (requires { leaf.initialize(rng, scheme); }) leaf.initialize(rng, scheme);
    });
}

/// Whether `layer` is a Sequential (the composite that initialises its layers when built).
template <class L>
inline constexpr bool is_chain = requires { L::default_seed; };

template <class L>
void initialize_defaults(L& layer, Random& rng);

/// What a chain's constructor does with `rng`: initialise each of its layers that arrived
/// without values (see initialize_defaults).
template <class Chain>
void initialize_children(Chain& chain, Random& rng) {
    chain.for_each_layer([&](std::size_t, auto& child) { initialize_defaults(child, rng); });
}

/// Whether `chain` holds exactly the values its constructor drew for layers that all arrived
/// zero: then it was built just before, inside the chain being built now, and was never
/// given values of its own (trained, loaded, set by hand).
template <class Chain>
bool holds_default_values(const Chain& chain) {
    if constexpr (!std::copy_constructible<Chain>) {
        return false;
    } else {
        using T = typename Chain::value_type;
        Chain probe = chain;
        for_each_leaf(probe, [](auto& leaf) { std::ranges::fill(leaf.parameters(), T{0}); });
        Random rng{Chain::default_seed};
        initialize_children(probe, rng);
        std::vector<std::span<const T>> values;
        for_each_leaf(chain, [&](const auto& leaf) { values.push_back(leaf.parameters()); });
        std::size_t index = 0;
        bool same = true;
        for_each_leaf(probe, [&](const auto& leaf) { same = same && std::ranges::equal(leaf.parameters(), values[index++]); });
        return same;
    }
}

/// The initialisation a layer gets when a chain is built around it: a leaf whose parameters
/// are all zero (as constructed) initialises itself (He) from `rng`; a chain that still holds
/// its own default values is drawn again from `rng`, so that two blocks built alike do not
/// start alike; other composites are searched for both. Layers that carry values keep them.
template <class L>
void initialize_defaults(L& layer, Random& rng) {
    if constexpr (is_chain<L>) {
        if (holds_default_values(layer))
            initialize_leaves(layer, rng, Init::he);
        else
            initialize_children(layer, rng);
    } else if constexpr (Composite<L>) {
        layer.for_each_layer([&](std::size_t, auto& child) { initialize_defaults(child, rng); });
    } else if constexpr (requires { layer.initialize(rng, Init::he); }) {
        using T = typename L::value_type;
        if (std::ranges::all_of(layer.parameters(), [](T p) { return p == T{0}; })) layer.initialize(rng, Init::he);
    }
}

/// One row of a summary: a layer at a place in the nest.
struct SummaryRow {
    std::string index;  ///< "3", "3.body.1", ...
    std::size_t depth;
    std::string layer;
    Shape<4> output;
    std::size_t parameters;
};

template <class L>
void summary_rows(const L& layer, const std::string& index, std::size_t depth, const Shape<4>& input,
                  std::vector<SummaryRow>& rows) {
    rows.push_back({index, depth, layer.describe(), layer.output_shape(input), parameter_count(layer)});
    if constexpr (requires { layer.for_each_child(input, [](const std::string&, const auto&, const Shape<4>&) {}); })
        layer.for_each_child(input, [&](const std::string& name, const auto& child, const Shape<4>& child_input) {
            summary_rows(child, index + "." + name, depth + 1, child_input, rows);
        });
}

/// out = a + b, elementwise, on the thread pool (each element's sum is the same whoever computes it).
template <Scalar T>
void add(const T* a, const T* b, T* out, std::size_t count) {
    parallel_blocks(count, 1 << 15, [&](std::size_t begin, std::size_t end) {
        for (std::size_t i = begin; i < end; ++i) out[i] = a[i] + b[i];
    });
}

}  // namespace cnn::detail
