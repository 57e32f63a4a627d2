// Builds a small network's layers from the installed headers and runs a forward pass.
#include <cnn/cnn.hpp>

#include <iostream>

int main() {
    cnn::Conv2D<float> conv{1, 2, 3, {.padding = 1}};
    cnn::ReLU<float> relu;
    cnn::Tensor<float, 4> x({1, 1, 4, 4}, 1.0f);
    cnn::Tensor<float, 4> y(conv.output_shape(x.shape()));
    cnn::Tensor<float, 4> z(y.shape());
    cnn::Scratch<float> scratch;
    conv.bias()[0] = 0.5f;
    conv.forward(x, y, scratch);
    relu.forward(y, z, scratch);
    std::cout << conv.describe() << " -> " << cnn::to_string(z.shape()) << "\n";
    return z(0, 0, 1, 1) == 0.5f && z.shape() == cnn::Shape<4>{1, 2, 4, 4} ? 0 : 1;
}
