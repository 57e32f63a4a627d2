// The networks of the example programs. Each is built for the images and classes of a
// data set (a Task): the shapes in the comments are those of Fashion-MNIST, 1 x 28 x 28 and
// 10 classes; CIFAR's 3 x 32 x 32 images change the first convolution's inputs and, for
// LeNet-5 and the wide network, the first dense layer's.
#pragma once

#include <cnn/cnn.hpp>

#include <stdexcept>
#include <string>

namespace examples {

/// What a network is built for: its input images (channels x rows x cols) and its classes.
struct Task {
    std::size_t channels = 1, rows = 28, cols = 28, classes = 10;

    [[nodiscard]] std::string input_text() const {
        return std::to_string(channels) + "x" + std::to_string(rows) + "x" + std::to_string(cols);
    }
    friend bool operator==(const Task&, const Task&) = default;
};

/// The side of a feature map of `size` after a 5x5 convolution without padding and 2x2 pooling.
inline std::size_t lenet_side(std::size_t size) {
    if (size < 12) throw std::invalid_argument("LeNet-5 takes images of at least 12x12, not " + std::to_string(size));
    return (size / 2 - 4) / 2;
}

/// LeNet-5 (LeCun et al. 1998) with ReLU and max pooling.
template <class T = float>
auto make_lenet(const Task& task = {}) {
    return cnn::Sequential{cnn::Conv2D<T>{task.channels, 6, 5, {.padding = 2}},  // 6 x 28 x 28
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},                                     // 6 x 14 x 14
                           cnn::Conv2D<T>{6, 16, 5},                               // 16 x 10 x 10
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},                                     // 16 x 5 x 5
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{16 * lenet_side(task.rows) * lenet_side(task.cols), 120},
                           cnn::ReLU<T>{},
                           cnn::Dense<T>{120, 84},
                           cnn::ReLU<T>{},
                           cnn::Dense<T>{84, task.classes}};
}

/// A wider CNN: conv 32 3x3 -> pool -> conv 64 3x3 -> pool -> dense 128 -> classes.
template <class T = float>
auto make_wide(const Task& task = {}) {
    if (task.rows < 4 || task.cols < 4) throw std::invalid_argument("the wide network takes images of at least 4x4");
    return cnn::Sequential{cnn::Conv2D<T>{task.channels, 32, 3, {.padding = 1}},  // 32 x 28 x 28
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},                                      // 32 x 14 x 14
                           cnn::Conv2D<T>{32, 64, 3, {.padding = 1}},               // 64 x 14 x 14
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},                                      // 64 x 7 x 7
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{64 * (task.rows / 4) * (task.cols / 4), 128},
                           cnn::ReLU<T>{},
                           cnn::Dense<T>{128, task.classes}};
}

/// The wide network with batch normalisation after each convolution (which then needs no
/// bias) and after the hidden dense layer, and dropout: 0.25 after each pooling, 0.5 before
/// the last dense layer.
template <class T = float>
auto make_wide_bn(const Task& task = {}) {
    if (task.rows < 4 || task.cols < 4) throw std::invalid_argument("the wide network takes images of at least 4x4");
    const cnn::Conv2DOptions same{.padding = 1, .bias = false};
    return cnn::Sequential{cnn::Conv2D<T>{task.channels, 32, 3, same},  // 32 x 28 x 28
                           cnn::BatchNorm2D<T>{32},
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},                            // 32 x 14 x 14
                           cnn::Dropout<T>{0.25},
                           cnn::Conv2D<T>{32, 64, 3, same},               // 64 x 14 x 14
                           cnn::BatchNorm2D<T>{64},
                           cnn::ReLU<T>{},
                           cnn::MaxPool<T>{2},                            // 64 x 7 x 7
                           cnn::Dropout<T>{0.25},
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{64 * (task.rows / 4) * (task.cols / 4), 128},
                           cnn::BatchNorm2D<T>{128},
                           cnn::ReLU<T>{},
                           cnn::Dropout<T>{0.5},
                           cnn::Dense<T>{128, task.classes}};
}

/// A ResNet basic block (He et al. 2016): conv 3x3 (stride s), batch norm, ReLU, conv 3x3,
/// batch norm, plus the input (identity) or, when the shape changes, a 1x1 convolution with
/// stride s and batch norm (projection); then ReLU. The convolutions have no bias: the batch
/// normalisation after each shifts its output anyway.
template <class T = float>
auto basic_block(std::size_t channels) {
    const cnn::Conv2DOptions same{.padding = 1, .bias = false};
    return cnn::Sequential{cnn::Residual{cnn::Sequential{cnn::Conv2D<T>{channels, channels, 3, same},
                                                         cnn::BatchNorm2D<T>{channels},
                                                         cnn::ReLU<T>{},
                                                         cnn::Conv2D<T>{channels, channels, 3, same},
                                                         cnn::BatchNorm2D<T>{channels}}},
                           cnn::ReLU<T>{}};
}
template <class T = float>
auto projection_block(std::size_t in, std::size_t out) {
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

/// A small ResNet: a 3x3 convolution to 16 channels, three stages of two basic blocks at 16,
/// 32 and 64 channels (the second and third begin with a stride-2 projection block), global
/// average pooling and a dense layer to the classes. 14 weight layers; any image size.
template <class T = float>
auto make_resnet(const Task& task = {}) {
    return cnn::Sequential{cnn::Conv2D<T>{task.channels, 16, 3, {.padding = 1, .bias = false}},  // 16 x 28 x 28
                           cnn::BatchNorm2D<T>{16},
                           cnn::ReLU<T>{},
                           basic_block<T>(16),
                           basic_block<T>(16),
                           projection_block<T>(16, 32),                    // 32 x 14 x 14
                           basic_block<T>(32),
                           projection_block<T>(32, 64),                    // 64 x 7 x 7
                           basic_block<T>(64),
                           cnn::GlobalAvgPool<T>{},                     // 64 x 1 x 1
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{64, task.classes}};
}

/// A MobileNet block (Howard et al. 2017): a depthwise 3x3 convolution (one filter per
/// channel, stride s), batch norm, ReLU, then a pointwise 1x1 convolution to `out` channels,
/// batch norm, ReLU. Nine times fewer multiply-adds than one 3x3 convolution from `in` to `out`.
template <class T = float>
auto depthwise_block(std::size_t in, std::size_t out, std::size_t stride) {
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

/// A small MobileNet: a 3x3 convolution to 16 channels, five depthwise blocks (32 channels;
/// 64 at half the size, twice; 128 at a quarter, twice), global average pooling and a dense
/// layer to the classes. 12 weight layers; any image size.
template <class T = float>
auto make_mobilenet(const Task& task = {}) {
    return cnn::Sequential{cnn::Conv2D<T>{task.channels, 16, 3, {.padding = 1, .bias = false}},  // 16 x 28 x 28
                           cnn::BatchNorm2D<T>{16},
                           cnn::ReLU<T>{},
                           depthwise_block<T>(16, 32, 1),                  // 32 x 28 x 28
                           depthwise_block<T>(32, 64, 2),                  // 64 x 14 x 14
                           depthwise_block<T>(64, 64, 1),
                           depthwise_block<T>(64, 128, 2),                 // 128 x 7 x 7
                           depthwise_block<T>(128, 128, 1),
                           cnn::GlobalAvgPool<T>{},                     // 128 x 1 x 1
                           cnn::Flatten<T>{},
                           cnn::Dense<T>{128, task.classes}};
}

/// The example networks' names, as --net takes them.
inline const std::vector<std::string> network_names{"lenet", "wide", "wide-bn", "resnet", "mobilenet"};

/// Calls f(net) with a freshly built network named `name` (one of network_names) for `task`;
/// false if the name is unknown.
template <class F>
bool with_network(const std::string& name, const Task& task, F&& f) {
    if (name == "lenet") {
        f(make_lenet(task));
    } else if (name == "wide") {
        f(make_wide(task));
    } else if (name == "wide-bn") {
        f(make_wide_bn(task));
    } else if (name == "resnet") {
        f(make_resnet(task));
    } else if (name == "mobilenet") {
        f(make_mobilenet(task));
    } else {
        return false;
    }
    return true;
}

/// The name of the example network whose architecture a saved file fits, for `task` (read
/// from the file's metadata): `load(net)` is tried on a fresh network of each kind. When
/// none fits, the load into LeNet-5 is repeated so that its cnn::model_error, which names
/// the precise problem, reaches the caller.
template <class Load>
std::string network_for_file(const Task& task, const Load& load) {
    for (const std::string& name : network_names) {
        bool fits = false;
        with_network(name, task, [&](auto net) {
            try {
                load(net);
                fits = true;
            } catch (const cnn::model_error&) {
            }
        });
        if (fits) return name;
    }
    auto net = make_lenet(task);
    load(net);
    return "lenet";
}

}  // namespace examples
