// A user's program that includes cnn/onnx.hpp, compiled with the strict warnings of
// consumer/strict.cpp (the ONNX and protobuf headers are system headers, ours are not).
#include <cnn/cnn.hpp>
#include <cnn/onnx.hpp>
int main() {
    auto net = cnn::Sequential{cnn::Conv2D<float>{1, 2, 3}, cnn::ReLU<float>{}, cnn::Flatten<float>{}, cnn::Dense<float>{8, 3}};
    cnn::save_onnx(net, "strict.onnx", {1, 4, 4});
    return static_cast<int>(cnn::load_onnx(net, "strict.onnx").rows) - 4;
}
