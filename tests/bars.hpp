// The toy data set of the training tests, without Catch2, so that test programs of their own
// (tests/mpi/train_ranks.cpp) use the very images the unit tests do.
#pragma once

#include <cnn/data/dataset.hpp>
#include <cnn/random.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cnn::test {

/// 8x8 images of four classes, a bright horizontal bar in one of four bands on faint
/// noise: separable, but only by looking at where the bar is.
inline Dataset make_bars(std::size_t count, std::uint64_t seed) {
    Random rng{seed};
    Dataset data{std::vector<std::uint8_t>(count * 64), std::vector<std::uint8_t>(count), count, 8, 8, 4};
    for (std::size_t n = 0; n < count; ++n) {
        data.labels[n] = static_cast<std::uint8_t>(rng.below(4));
        for (std::size_t p = 0; p < 64; ++p) data.images[n * 64 + p] = static_cast<std::uint8_t>(rng.below(60));
        const std::size_t row = 2 * data.labels[n] + rng.below(2);
        for (std::size_t col = rng.below(3); col < 8; ++col) data.images[n * 64 + row * 8 + col] = 200;
    }
    return data;
}

}  // namespace cnn::test
