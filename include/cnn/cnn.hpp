// The whole library in one include.
#pragma once

#include "cnn/data/cifar.hpp"
#include "cnn/data/dataset.hpp"
#include "cnn/data/idx.hpp"
#include "cnn/data/source.hpp"
#include "cnn/distributed.hpp"
#if defined(CNN_WITH_STB)  // the image reader, with the cnn::images target
#include "cnn/data/image_folder.hpp"
#endif
#include "cnn/error.hpp"
#include "cnn/gradient_check.hpp"
#include "cnn/io/checkpoint.hpp"
#include "cnn/io/file.hpp"
#include "cnn/io/model.hpp"
#include "cnn/kernels/gemm.hpp"
#include "cnn/kernels/threads.hpp"
#include "cnn/context.hpp"
#include "cnn/layer.hpp"
#include "cnn/layers/activations.hpp"
#include "cnn/layers/conv2d.hpp"
#include "cnn/layers/dense.hpp"
#include "cnn/layers/flatten.hpp"
#include "cnn/layers/fused.hpp"
#include "cnn/layers/identity.hpp"
#include "cnn/layers/normalization.hpp"
#include "cnn/layers/pooling.hpp"
#include "cnn/layers/relu.hpp"
#include "cnn/loss.hpp"
#include "cnn/network.hpp"
#include "cnn/optimizer.hpp"
#include "cnn/parameters.hpp"
#include "cnn/random.hpp"
#include "cnn/reference.hpp"
#include "cnn/tensor.hpp"
#include "cnn/train.hpp"
#include "cnn/version.hpp"

namespace cnn {
static_assert(Layer<Conv2D<float>> && Layer<Conv2D<double>>);
static_assert(Layer<ReLU<float>> && Layer<MaxPool<float>> && Layer<MeanPool<float>>);
static_assert(Layer<Dense<float>> && Layer<Flatten<float>>);
}  // namespace cnn
