// The sizes users give layers: a filter, kernel or pool window, one number for a
// square or height and width.
#pragma once

#include <concepts>
#include <cstddef>

namespace cnn {

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

}  // namespace cnn
