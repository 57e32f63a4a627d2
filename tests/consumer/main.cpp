// Builds a small network's layers from the installed headers, runs a forward pass and
// reads a gzip IDX file, as a user's program would.
#include <cnn/cnn.hpp>

#include <cstring>
#include <iostream>

int main(int argc, char** argv) {
    cnn::Conv2D<float> conv{1, 2, 3, {.padding = 1}};
    cnn::ReLU<float> relu;
    cnn::Tensor<float, 4> x({1, 1, 4, 4}, 1.0f);
    cnn::Tensor<float, 4> y(conv.output_shape(x.shape()));
    cnn::Tensor<float, 4> z(y.shape());
    cnn::Scratch<float> scratch;
    std::fill(conv.parameters().begin(), conv.parameters().end(), 0.0f);
    conv.bias()[0] = 0.5f;
    conv.forward(x, y, scratch);
    relu.forward(y, z, scratch);
    std::cout << "cnn " << CNN_VERSION_STRING << ": " << conv.describe() << " -> " << cnn::to_string(z.shape())
              << ", kernels " << cnn::kernels::gemm_kernel_name() << "\n";
    if (std::strcmp(CNN_VERSION_STRING, CNN_PACKAGE_VERSION) != 0) {
        std::cerr << "headers say " << CNN_VERSION_STRING << ", the package " << CNN_PACKAGE_VERSION << "\n";
        return 1;
    }
    if (argc > 1) {  // a gzip IDX file of labels: needs cnn::gzip
        const cnn::IdxArray labels = cnn::read_idx(argv[1], 1);
        std::cout << argv[1] << ": " << labels.values.size() << " labels\n";
    }
    return z(0, 0, 1, 1) == 0.5f && z.shape() == cnn::Shape<4>{1, 2, 4, 4} ? 0 : 1;
}
