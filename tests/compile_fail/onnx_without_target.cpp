// Includes cnn/onnx.hpp as a program that does not link cnn::onnx would: one error, which
// names the target to link.
#include <cnn/onnx.hpp>

int main() { return 0; }
