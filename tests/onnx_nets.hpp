// The network of every layer and composite save_onnx writes, shared by tests/test_onnx.cpp
// and tests/tools/export_onnx.cpp (whose files ONNX's Python checker reads). Its PyTorch twin
// is scripts/onnx_fixtures.py's EveryLayer, whose exports the tests load.
#pragma once

#include <cnn/cnn.hpp>

namespace cnn::test {

/// A network of every layer and composite save_onnx writes, with every option that changes
/// the ONNX attributes: per-axis stride, padding and dilation, groups, no bias, padded pools,
/// mean pooling without the padding, both GELUs, both merges, a batch norm of dense features,
/// a convolution after a dense layer, and a merge of a flattened and an unflattened branch.
/// Input 3 x 11 x 9.
template <class T>
auto every_layer_net() {
    return cnn::Sequential{
        cnn::Conv2D<T>{3, 8, {3, 2}, {.stride = {2, 1}, .padding = {2, 1}, .dilation = {1, 2}}},  // 8 x 7 x 9
        cnn::BatchNorm2D<T>{8, {.momentum = 0.2, .epsilon = 1e-3}},
        cnn::LeakyReLU<T>{0.1},
        cnn::Conv2D<T>{8, 8, 3, {.padding = 1, .bias = false, .groups = 4}},
        cnn::ELU<T>{0.5},
        cnn::MaxPool<T>{3, {.stride = 2, .padding = 1}},  // 8 x 4 x 5
        cnn::Residual{cnn::Sequential{cnn::Conv2D<T>{8, 8, 3, {.padding = 1}}, cnn::Tanh<T>{}}},
        cnn::Parallel{cnn::Concat{}, cnn::Sequential{cnn::Conv2D<T>{8, 4, 1}, cnn::Sigmoid<T>{}},
                      cnn::Sequential{cnn::MeanPool<T>{3, {.stride = 1, .padding = 1, .count_padding = false}},
                                      cnn::GELU<T>{cnn::GeluApproximation::tanh}}},  // 12 x 4 x 5
        cnn::Parallel{cnn::Add{}, cnn::GELU<T>{}, cnn::Identity<T>{}, cnn::ReLU<T>{}},
        cnn::MeanPool<T>{3, {.stride = 2, .padding = 1}},  // 12 x 2 x 3, the padding counted
        cnn::MeanPool<T>{1},
        cnn::Dropout<T>{0.3},
        cnn::Flatten<T>{},
        cnn::Dense<T>{72, 16},
        cnn::BatchNorm2D<T>{16},
        cnn::Conv2D<T>{16, 16, 1},                                     // after a dense layer: N x 16 x 1 x 1
        cnn::Parallel{cnn::Add{}, cnn::Flatten<T>{}, cnn::Identity<T>{}},  // branches of two ranks in the file
        cnn::Dense<T>{16, 5},
        cnn::Softmax<T>{}};
}
inline const cnn::Shape<3> every_layer_input{3, 11, 9};

}  // namespace cnn::test
