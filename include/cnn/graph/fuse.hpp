// Fusions as a compile-time rewrite of a chain. Sequential<L0, ..., Ln> runs the steps
// this plan makes of its layers, left to right, each rule taking the first match:
//
//   Conv2D<T>, A, MaxPool<T>  ->  ConvActMaxPool<T, A>   when A is monotone non-decreasing and
//                                                       ReLU or gives its scalar function
//   A, MaxPool<T>             ->  ActMaxPool<T, A>       when A is monotone non-decreasing
//   BatchNorm2D<T>, ReLU<T>   ->  BatchNormReLU<T>       when no MaxPool follows (the rule
//                                                       above then takes the ReLU)
//   L                         ->  L
//
// and runs a layer that only reshapes (Flatten) as a view of its input. The rules are keyed
// on traits (cnn::monotone_non_decreasing, cnn::reshapes_only), so a new activation that
// declares the trait is fused with no change here. The plan changes how the layers run,
// never which layers there are: Sequential::for_each_layer, the parameters and the model
// file see the layers as written (tests/test_fusion.cpp checks that fused and unfused give
// the same bits).
#pragma once

#include <array>
#include <cstddef>
#include <tuple>
#include <type_traits>

#include "cnn/layer.hpp"
#include "cnn/layers/conv2d.hpp"
#include "cnn/layers/fused.hpp"
#include "cnn/layers/pooling.hpp"

namespace cnn::detail {

template <class T, class... Layers>
struct ChainPlan {
    static constexpr std::size_t layer_count = sizeof...(Layers);
    template <std::size_t I>
    using layer_type = std::tuple_element_t<I, std::tuple<Layers...>>;

    template <std::size_t I>
    static constexpr bool is_max_pool() {
        if constexpr (I < layer_count)
            return std::is_same_v<layer_type<I>, MaxPool<T>>;
        else
            return false;
    }
    /// Whether layers I, I + 1 are an activation that commutes with max pooling and a MaxPool.
    template <std::size_t I>
    static constexpr bool act_max_pool() {
        if constexpr (I + 1 < layer_count)
            return monotone_non_decreasing<layer_type<I>> && is_max_pool<I + 1>();
        else
            return false;
    }
    /// Whether layers I, I + 1 are a BatchNorm2D and a ReLU that no MaxPool follows.
    template <std::size_t I>
    static constexpr bool norm_relu() {
        if constexpr (I + 1 < layer_count)
            return std::is_same_v<layer_type<I>, BatchNorm2D<T>> && std::is_same_v<layer_type<I + 1>, ReLU<T>> &&
                   !is_max_pool<I + 2>();
        else
            return false;
    }
    /// Whether layers I, I + 1, I + 2 are a Conv2D, an activation ConvActMaxPool takes, a MaxPool.
    template <std::size_t I>
    static constexpr bool conv_act_max_pool() {
        if constexpr (I + 2 < layer_count)
            return std::is_same_v<layer_type<I>, Conv2D<T>> && conv_max_pool_activation<layer_type<I + 1>, T> &&
                   is_max_pool<I + 2>();
        else
            return false;
    }

    /// Per layer: how many layers the step that starts there covers (0 inside a step).
    static constexpr std::array<std::size_t, layer_count> sizes = [] {
        constexpr std::array<bool, layer_count> triple = []<std::size_t... I>(std::index_sequence<I...>) {
            return std::array<bool, layer_count>{conv_act_max_pool<I>()...};
        }(std::make_index_sequence<layer_count>{});
        constexpr std::array<bool, layer_count> pair = []<std::size_t... I>(std::index_sequence<I...>) {
            return std::array<bool, layer_count>{(act_max_pool<I>() || norm_relu<I>())...};
        }(std::make_index_sequence<layer_count>{});
        std::array<std::size_t, layer_count> result{};
        for (std::size_t i = 0; i < layer_count;) {
            result[i] = triple[i] ? 3 : pair[i] ? 2 : 1;
            i += result[i];
        }
        return result;
    }();

    static constexpr std::size_t step_count = [] {
        std::size_t count = 0;
        for (std::size_t size : sizes) count += size != 0;
        return count;
    }();

    /// Per step: its first layer.
    static constexpr std::array<std::size_t, step_count> first = [] {
        std::array<std::size_t, step_count> result{};
        for (std::size_t i = 0, s = 0; i < layer_count; ++i)
            if (sizes[i] != 0) result[s++] = i;
        return result;
    }();

    /// Per layer: its step, and its place in that step.
    static constexpr std::array<std::size_t, layer_count> step_of = [] {
        std::array<std::size_t, layer_count> result{};
        for (std::size_t i = 0, s = 0; i < layer_count; ++i) {
            if (sizes[i] != 0 && i != 0) ++s;
            result[i] = s;
        }
        return result;
    }();

    template <std::size_t S>
    static auto step_identity() {
        constexpr std::size_t at = first[S];
        if constexpr (sizes[at] == 3)
            return std::type_identity<ConvActMaxPool<T, layer_type<at + 1>>>{};
        else if constexpr (sizes[at] == 2 && norm_relu<at>())
            return std::type_identity<BatchNormReLU<T>>{};
        else if constexpr (sizes[at] == 2)
            return std::type_identity<ActMaxPool<T, layer_type<at>>>{};
        else
            return std::type_identity<layer_type<at>>{};
    }
    template <std::size_t S>
    using step_type = typename decltype(step_identity<S>())::type;

    /// Step S made of the layers in `layers` (moved from).
    template <std::size_t S, class Tuple>
    static step_type<S> make_step(Tuple& layers) {
        constexpr std::size_t at = first[S];
        if constexpr (sizes[at] == 3)
            return {std::move(std::get<at>(layers)), std::move(std::get<at + 1>(layers)),
                    std::move(std::get<at + 2>(layers))};
        else if constexpr (sizes[at] == 2)
            return {std::move(std::get<at>(layers)), std::move(std::get<at + 1>(layers))};
        else
            return std::move(std::get<at>(layers));
    }

    template <std::size_t... S>
    static std::tuple<step_type<S>...> steps_of(std::index_sequence<S...>);  // declared for its type
    using Steps = decltype(steps_of(std::make_index_sequence<step_count>{}));
};

}  // namespace cnn::detail
