// What the composites (Sequential, Residual, Parallel) share: walking the leaves of a
// nest, counting and initialising their parameters, the rows of a summary, and adding
// tensors on the thread pool in a fixed order.
#pragma once

#include <algorithm>
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

/// Initialises every leaf that can and whose parameters are all zero (as constructed).
template <class L>
void initialize_zero_leaves(L& layer, Random& rng) {
    for_each_leaf(layer, [&](auto& leaf) {
        if constexpr (requires { leaf.initialize(rng, Init::he); }) {
            using T = typename std::remove_cvref_t<decltype(leaf)>::value_type;
            if (std::ranges::all_of(leaf.parameters(), [](T p) { return p == T{0}; })) leaf.initialize(rng, Init::he);
        }
    });
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
