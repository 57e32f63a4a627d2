// A user's program that links cnn::onnx: writes a small network as ONNX to the path it is
// given (each consumer test passes its own, so the tests may run side by side) and loads it back.
#include <cnn/cnn.hpp>
#include <cnn/onnx.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: consumer_onnx FILE.onnx\n";
        return 2;
    }
    using T = float;
    auto make = [] { return cnn::Sequential{cnn::Conv2D<T>{1, 2, 3}, cnn::ReLU<T>{}, cnn::Flatten<T>{}, cnn::Dense<T>{8, 3}}; };
    auto net = make();
    cnn::Random rng(1);
    net.initialize(rng);
    const std::filesystem::path path = argv[1];
    cnn::save_onnx(net, path, {1, 4, 4});
    auto other = make();
    const cnn::OnnxInfo info = cnn::load_onnx(other, path);
    std::filesystem::remove(path);
    const auto a = net.parameter_groups(), b = other.parameter_groups();
    bool same = a.size() == b.size();
    for (std::size_t g = 0; same && g < a.size(); ++g)
        same = std::equal(a[g].values.begin(), a[g].values.end(), b[g].values.begin(), b[g].values.end());
    if (info.rows != 4 || !same) {
        std::cerr << "consumer_onnx: the network did not come back\n";
        return 1;
    }
    std::cout << "consumer_onnx: wrote and read an ONNX file through cnn::onnx\n";
    return 0;
}
