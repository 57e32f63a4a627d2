// The networks fuzz_model loads into and make_corpus writes seed files of: a flat chain and
// a nest (a residual block and concatenated branches), so that the structure records of
// composites are fuzzed too.
#pragma once

#include <cnn/cnn.hpp>

namespace fuzz {

inline auto flat_network() {
    return cnn::Sequential{cnn::Conv2D<float>{1, 2, 3, {.padding = 1}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                           cnn::Flatten<float>{}, cnn::Dense<float>{2 * 4 * 4, 3}};
}

inline auto nested_network() {
    return cnn::Sequential{
        cnn::Conv2D<float>{1, 2, 3, {.padding = 1}},
        cnn::Residual{cnn::Sequential{cnn::ReLU<float>{}, cnn::Conv2D<float>{2, 2, 3, {.padding = 1}}}},
        cnn::Parallel{cnn::Concat{}, cnn::Conv2D<float>{2, 1, 1}, cnn::Sequential{cnn::MaxPool<float>{1}}},
        cnn::Flatten<float>{}, cnn::Dense<float>{3 * 8 * 8, 3}};
}

}  // namespace fuzz
