// Parallel<Merge, Branches...>: every branch reads the same input, and their outputs are
// merged, by addition (Add: same shapes) or by concatenation along the channels (Concat:
// same N, H and W; channels in branch order), as in an Inception block.
//
//   Add     y = sum_j branch_j(x)                  dE/dx = sum_j branch_j'(x)^T dy
//   Concat  y[n][C_0 + ... + C_(j-1) + c] = branch_j(x)[n][c]
//           dE/dx = sum_j branch_j'(x)^T dy_j, dy_j the channels of dy branch j wrote
// The first branch writes dx (or adds into it, when the block's caller asks so), the others
// add into it: one buffer for all. Sums run in branch order, so results do not depend on
// the thread count.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cnn/error.hpp"
#include "cnn/graph/common.hpp"
#include "cnn/layer.hpp"

namespace cnn {

/// Merge the branches of a Parallel by adding their outputs.
struct Add {
    static constexpr const char* name = "Add";
};
/// Merge the branches of a Parallel by stacking their outputs' channels.
struct Concat {
    static constexpr const char* name = "Concat";
};

template <class Merge, class... Branches>
class Parallel {
    static_assert(std::is_same_v<Merge, Add> || std::is_same_v<Merge, Concat>,
                  "cnn::Parallel: the first argument says how the branches merge: cnn::Add{} or cnn::Concat{}");
    static_assert(sizeof...(Branches) > 0, "cnn::Parallel needs at least one branch");
    static_assert((Layer<Branches> && ...),
                  "cnn::Parallel: every branch must be a layer, a type that satisfies the cnn::Layer concept (see "
                  "cnn/layer.hpp)");

public:
    using value_type = typename detail::FirstValueType<Branches...>::type;
    static_assert((std::is_same_v<typename detail::LayerValueType<Branches, value_type>::type, value_type> && ...),
                  "cnn::Parallel: every branch must use the same number type (all float or all double)");
    using T = value_type;
    static constexpr std::size_t branch_count = sizeof...(Branches);

    struct State {
        std::array<Tensor<T, 4>, branch_count> outputs;
        std::array<Tensor<T, 4>, branch_count> gradients;  // Concat: each branch's channels of dy
        std::tuple<layer_state_t<Branches>...> states;
    };

    explicit Parallel(Merge /*merge*/, Branches... branches) : branches_(std::move(branches)...) {}

    template <std::size_t J>
    [[nodiscard]] auto& branch() noexcept {
        return std::get<J>(branches_);
    }
    template <std::size_t J>
    [[nodiscard]] const auto& branch() const noexcept {
        return std::get<J>(branches_);
    }

    template <class F>
    void for_each_layer(F&& f) {
        std::apply([&](auto&... branch) { std::size_t j = 0; (f(j++, branch), ...); }, branches_);
    }
    template <class F>
    void for_each_layer(F&& f) const {
        std::apply([&](const auto&... branch) { std::size_t j = 0; (f(j++, branch), ...); }, branches_);
    }
    template <class F>
    void for_each_child(const Shape<4>& input, F&& f) const {
        for_each_layer([&](std::size_t j, const auto& branch) { f(std::to_string(j), branch, input); });
    }

    [[nodiscard]] std::string describe() const {
        return std::string("Parallel(") + Merge::name + ", " + std::to_string(branch_count) + " branches)";
    }

    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const {
        std::array<Shape<4>, branch_count> shapes{};
        for_each_layer([&](std::size_t j, const auto& branch) {
            shapes[j] = detail::at_path(detail::path_step("branch " + std::to_string(j), branch, false),
                                        [&] { return branch.output_shape(in); });
        });
        Shape<4> result = shapes[0];
        for (std::size_t j = 1; j < branch_count; ++j) {
            const Shape<4>& s = shapes[j];
            if constexpr (std::is_same_v<Merge, Add>) {
                if (s != shapes[0])
                    throw shape_error(describe() + ": branch 0 gives " + to_string(shapes[0]) + " and branch " +
                                      std::to_string(j) + " gives " + to_string(s) + " for input " + to_string(in) +
                                      "; they are added, so they must have the same shape");
            } else {
                if (s[0] != shapes[0][0] || s[2] != shapes[0][2] || s[3] != shapes[0][3])
                    throw shape_error(describe() + ": branch 0 gives " + to_string(shapes[0]) + " and branch " +
                                      std::to_string(j) + " gives " + to_string(s) + " for input " + to_string(in) +
                                      "; their channels are stacked, so N, H and W must agree");
                result[1] += s[1];
            }
        }
        return result;
    }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> context, State& state) const {
        detail::expect_shape(y, output_shape(x.shape()), *this, "forward output");
        run_branches([&]<std::size_t J>(std::integral_constant<std::size_t, J>) {
            const auto& branch = std::get<J>(branches_);
            state.outputs[J].resize(branch.output_shape(x.shape()));
            detail::forward(branch, x, state.outputs[J].view(), context, std::get<J>(state.states));
        });
        if constexpr (std::is_same_v<Merge, Add>) {
            const std::size_t count = y.size();
            parallel_blocks(count, 1 << 15, [&](std::size_t begin, std::size_t end) {
                for (std::size_t i = begin; i < end; ++i) {
                    T sum = state.outputs[0].data()[i];
                    for (std::size_t j = 1; j < branch_count; ++j) sum += state.outputs[j].data()[i];
                    y.data()[i] = sum;
                }
            });
        } else {
            for_channel_blocks(y.shape(), state, [&](T* merged, const T* part, std::size_t size) {
                std::copy_n(part, size, merged);
            }, y.data());
        }
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> y, TensorView<const T, 4> dy, TensorView<T, 4> dx,
                  Context<T> context, State& state, Accumulate accumulate) {
        detail::expect_shape(dy, y.shape(), *this, "output gradient");
        if constexpr (std::is_same_v<Merge, Concat>) {
            for (std::size_t j = 0; j < branch_count; ++j) state.gradients[j].resize(state.outputs[j].shape());
            for_channel_blocks(y.shape(), state, [&](const T* merged, T* part, std::size_t size) {
                std::copy_n(merged, size, part);
            }, dy.data());
        }
        run_branches([&]<std::size_t J>(std::integral_constant<std::size_t, J>) {
            auto& branch = std::get<J>(branches_);
            TensorView<const T, 4> d_branch = dy;
            if constexpr (std::is_same_v<Merge, Concat>) d_branch = state.gradients[J].cview();
            detail::backward(branch, x, state.outputs[J].cview(), d_branch, dx, context, std::get<J>(state.states),
                             J == 0 ? accumulate : Accumulate::yes);
        });
    }

private:
    template <class F>
    static void run_branches(F&& f) {
        [&]<std::size_t... J>(std::index_sequence<J...>) {
            (f(std::integral_constant<std::size_t, J>{}), ...);
        }(std::make_index_sequence<branch_count>{});
    }

    /// For every sample and branch: f(the branch's channels in the merged tensor, the branch's
    /// own tensor, their element count), with the merged pointer of the constness `merged` has.
    template <class F, class Merged>
    static void for_channel_blocks(const Shape<4>& shape, State& state, F&& f, Merged* merged) {
        const std::size_t plane = shape[2] * shape[3];
        parallel_blocks(shape[0], 1, [&](std::size_t begin, std::size_t end) {
            for (std::size_t n = begin; n < end; ++n) {
                std::size_t channel = 0;
                for (std::size_t j = 0; j < branch_count; ++j) {
                    const std::size_t channels = state.outputs[j].shape()[1], size = channels * plane;
                    Merged* at = merged + (n * shape[1] + channel) * plane;
                    if constexpr (std::is_const_v<Merged>)
                        f(at, state.gradients[j].data() + n * size, size);
                    else
                        f(at, state.outputs[j].data() + n * size, size);
                    channel += channels;
                }
            }
        });
    }

    std::tuple<Branches...> branches_;
};

template <class Merge, class... Branches>
Parallel(Merge, Branches...) -> Parallel<Merge, Branches...>;

}  // namespace cnn
