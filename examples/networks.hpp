// The networks of the MNIST-style examples, for 1 x 28 x 28 inputs and 10 classes.
#pragma once

#include <cnn/cnn.hpp>

#include <string>

namespace examples {

/// LeNet-5 (LeCun et al. 1998) with ReLU and max pooling.
inline auto make_lenet() {
    using T = float;
    return cnn::Sequential{cnn::Conv2D<T>{1, 6, 5, {.padding = 2}},  // 6 x 28 x 28
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},                        // 6 x 14 x 14
                           cnn::Conv2D<T>{6, 16, 5},                  // 16 x 10 x 10
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},                        // 16 x 5 x 5
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{400, 120},
                           cnn::ReLU<T>{},
                           cnn::Dense<T>{120, 84},
                           cnn::ReLU<T>{},
                           cnn::Dense<T>{84, 10}};
}

/// A wider CNN: conv 32 3x3 -> pool -> conv 64 3x3 -> pool -> dense 128 -> 10.
inline auto make_wide() {
    using T = float;
    return cnn::Sequential{cnn::Conv2D<T>{1, 32, 3, {.padding = 1}},  // 32 x 28 x 28
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},                         // 32 x 14 x 14
                           cnn::Conv2D<T>{32, 64, 3, {.padding = 1}},  // 64 x 14 x 14
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},                         // 64 x 7 x 7
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{64 * 7 * 7, 128},
                           cnn::ReLU<T>{},
                           cnn::Dense<T>{128, 10}};
}

/// A ResNet basic block (He et al. 2016): conv 3x3 (stride s), batch norm, ReLU, conv 3x3,
/// batch norm, plus the input (identity) or, when the shape changes, a 1x1 convolution with
/// stride s and batch norm (projection); then ReLU. The convolutions have no bias: the batch
/// normalisation after each shifts its output anyway.
inline auto basic_block(std::size_t channels) {
    using T = float;
    const cnn::Conv2DOptions same{.padding = 1, .bias = false};
    return cnn::Sequential{cnn::Residual{cnn::Sequential{cnn::Conv2D<T>{channels, channels, 3, same},
                                                         cnn::BatchNorm2D<T>{channels},
                                                         cnn::ReLU<T>{},
                                                         cnn::Conv2D<T>{channels, channels, 3, same},
                                                         cnn::BatchNorm2D<T>{channels}}},
                           cnn::ReLU<T>{}};
}
inline auto projection_block(std::size_t in, std::size_t out) {
    using T = float;
    const cnn::Conv2DOptions same{.padding = 1, .bias = false}, halve{.stride = 2, .padding = 1, .bias = false};
    return cnn::Sequential{cnn::Residual{cnn::Sequential{cnn::Conv2D<T>{in, out, 3, halve},
                                                         cnn::BatchNorm2D<T>{out},
                                                         cnn::ReLU<T>{},
                                                         cnn::Conv2D<T>{out, out, 3, same},
                                                         cnn::BatchNorm2D<T>{out}},
                                         cnn::Sequential{cnn::Conv2D<T>{in, out, 1, {.stride = 2, .bias = false}},
                                                         cnn::BatchNorm2D<T>{out}}},
                           cnn::ReLU<T>{}};
}

/// A small ResNet for 28 x 28 inputs: a 3x3 convolution to 16 channels, three stages of two
/// basic blocks at 16, 32 and 64 channels (the second and third begin with a stride-2
/// projection block), global average pooling and a dense layer to 10 classes. 14 weight layers.
inline auto make_resnet() {
    using T = float;
    return cnn::Sequential{cnn::Conv2D<T>{1, 16, 3, {.padding = 1, .bias = false}},  // 16 x 28 x 28
                           cnn::BatchNorm2D<T>{16},
                           cnn::ReLU<T>{},
                           basic_block(16),
                           basic_block(16),
                           projection_block(16, 32),                    // 32 x 14 x 14
                           basic_block(32),
                           projection_block(32, 64),                    // 64 x 7 x 7
                           basic_block(64),
                           cnn::GlobalAvgPool<T>{},                     // 64 x 1 x 1
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{64, 10}};
}

/// A MobileNet block (Howard et al. 2017): a depthwise 3x3 convolution (one filter per
/// channel, stride s), batch norm, ReLU, then a pointwise 1x1 convolution to `out` channels,
/// batch norm, ReLU. Nine times fewer multiply-adds than one 3x3 convolution from `in` to `out`.
inline auto depthwise_block(std::size_t in, std::size_t out, std::size_t stride) {
    using T = float;
    return cnn::Sequential{cnn::Conv2D<T>{in, in, 3,
                                          {.stride = stride,
                                           .padding = 1,
                                           .bias = false,
                                           .groups = static_cast<std::ptrdiff_t>(in)}},
                           cnn::BatchNorm2D<T>{in},
                           cnn::ReLU<T>{},
                           cnn::Conv2D<T>{in, out, 1, {.bias = false}},
                           cnn::BatchNorm2D<T>{out},
                           cnn::ReLU<T>{}};
}

/// A small MobileNet for 28 x 28 inputs: a 3x3 convolution to 16 channels, five depthwise
/// blocks (32 channels; 64 at 14 x 14, twice; 128 at 7 x 7, twice), global average pooling
/// and a dense layer to 10 classes. 12 weight layers.
inline auto make_mobilenet() {
    using T = float;
    return cnn::Sequential{cnn::Conv2D<T>{1, 16, 3, {.padding = 1, .bias = false}},  // 16 x 28 x 28
                           cnn::BatchNorm2D<T>{16},
                           cnn::ReLU<T>{},
                           depthwise_block(16, 32, 1),                  // 32 x 28 x 28
                           depthwise_block(32, 64, 2),                  // 64 x 14 x 14
                           depthwise_block(64, 64, 1),
                           depthwise_block(64, 128, 2),                 // 128 x 7 x 7
                           depthwise_block(128, 128, 1),
                           cnn::GlobalAvgPool<T>{},                     // 128 x 1 x 1
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{128, 10}};
}

/// Calls f(net) with a freshly built network named `name` ("lenet", "wide", "resnet" or "mobilenet");
/// false if unknown.
template <class F>
bool with_network(const std::string& name, F&& f) {
    if (name == "lenet") {
        f(make_lenet());
        return true;
    }
    if (name == "wide") {
        f(make_wide());
        return true;
    }
    if (name == "resnet") {
        f(make_resnet());
        return true;
    }
    if (name == "mobilenet") {
        f(make_mobilenet());
        return true;
    }
    return false;
}

/// The name of the example network whose architecture a saved file fits: `load(net)` is
/// tried on a fresh network of each kind. When none fits, the load into LeNet-5 is
/// repeated so that its cnn::model_error, which names the precise problem, reaches the caller.
template <class Load>
std::string network_for_file(const Load& load) {
    for (const std::string name : {"lenet", "wide", "resnet", "mobilenet"}) {
        bool fits = false;
        with_network(name, [&](auto net) {
            try {
                load(net);
                fits = true;
            } catch (const cnn::model_error&) {
            }
        });
        if (fits) return name;
    }
    auto net = make_lenet();
    load(net);
    return "lenet";
}

}  // namespace examples
