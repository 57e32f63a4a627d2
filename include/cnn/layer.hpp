// The layer contract, written once as a concept.
//
// A layer works on batches N x C x H x W and holds its parameters only; per-call
// buffers come from a Scratch the caller owns, so a const layer may be used by
// many threads at once.
//
//   output_shape(in)   the shape forward writes for input shape `in`, or throws
//                      cnn::shape_error naming the layer, its parameters and both shapes.
//   forward(x, y, s)   requires y.shape() == output_shape(x.shape()); writes y. const.
//   backward(x, y, dy, dx, s)
//                      x, y: the input and output of the forward call; dy = dE/dy.
//                      Writes dx = dE/dx (same shape as x) and ADDS dE/d(parameters)
//                      into gradients(), so gradients accumulate until zeroed.
//   parameters(), gradients()
//                      every learnable value as one flat span, and its gradient in the same
//                      order (empty for layers without parameters), so optimizers and
//                      serializers need no special cases.
//   describe()         a short text naming the layer and its hyper-parameters,
//                      e.g. "Conv2D(1->6, 5x5, stride 1, padding 2)".
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "cnn/error.hpp"
#include "cnn/tensor.hpp"

namespace cnn {

/// Scratch memory of a kernel run by several workers (see Scratch::per_worker).
template <Scalar T>
struct WorkerScratch {
    T* first;            ///< worker 0's memory
    std::size_t stride;  ///< from one worker's memory to the next
    T* shared;           ///< memory for all workers, after theirs

    [[nodiscard]] T* worker(std::size_t w) const noexcept { return first + w * stride; }
};

/// A growable scratch buffer reused between calls; it allocates only when a
/// request is larger than anything asked for before.
template <Scalar T>
class Scratch {
public:
    /// `count` elements of uninitialised scratch memory, valid until the next call.
    std::span<T> get(std::size_t count) {
        if (count > buffer_.size()) buffer_ = Tensor<T, 1>({count});
        return {buffer_.data(), count};
    }

    /// `per_worker` elements for each of `workers` workers and `shared` elements for all,
    /// uninitialised, valid until the next call. Each worker's memory starts at the same
    /// place for every kernel that asks (the stride only grows, to the largest request), so
    /// what one kernel's worker w leaves in its core's cache is what the next kernel's
    /// worker w writes: no cache line moves between cores from one kernel to the next.
    WorkerScratch<T> per_worker(std::size_t workers, std::size_t per_worker, std::size_t shared = 0) {
        constexpr std::size_t line = tensor_alignment / sizeof(T);
        stride_ = std::max(stride_, (per_worker + line - 1) / line * line);
        T* const first = get(workers * stride_ + shared).data();
        return {first, stride_, first + workers * stride_};
    }

private:
    Tensor<T, 1> buffer_;
    std::size_t stride_ = 0;
};

/// A type whose value_type is float or double. Checked before the requirements below, which
/// would otherwise fail on their parameter types with errors of their own (GCC).
template <class L>
concept HasScalarValueType = requires { typename L::value_type; } && Scalar<typename L::value_type>;

template <class L>
concept Layer = HasScalarValueType<L> && requires(L& layer, const L& const_layer, const Shape<4>& shape,
                         TensorView<const typename L::value_type, 4> in,
                         TensorView<typename L::value_type, 4> out,
                         Scratch<typename L::value_type>& scratch) {
    { const_layer.output_shape(shape) } -> std::same_as<Shape<4>>;
    const_layer.forward(in, out, scratch);
    layer.backward(in, in, in, out, scratch);
    { layer.parameters() } -> std::same_as<std::span<typename L::value_type>>;
    { const_layer.parameters() } -> std::same_as<std::span<const typename L::value_type>>;
    { layer.gradients() } -> std::same_as<std::span<typename L::value_type>>;
    { const_layer.describe() } -> std::convertible_to<std::string>;
};

/// A filter, kernel or pool window size: one number for a square, or height and width.
struct Extent2D {
    std::ptrdiff_t height;
    std::ptrdiff_t width;
    template <std::integral I>
    constexpr Extent2D(I size) noexcept  // NOLINT(google-explicit-constructor)
        : height(static_cast<std::ptrdiff_t>(size)), width(static_cast<std::ptrdiff_t>(size)) {}
    template <std::integral H, std::integral W>
    constexpr Extent2D(H h, W w) noexcept : height(static_cast<std::ptrdiff_t>(h)), width(static_cast<std::ptrdiff_t>(w)) {}
};

namespace detail {

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

}  // namespace detail
}  // namespace cnn
