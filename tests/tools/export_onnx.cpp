// Writes ONNX files for scripts/onnx_check.py (ONNX's Python checker): the example networks,
// the network of every layer in float and double, and that network in each opset save_onnx
// writes. Usage: export_onnx DIR
#include <cnn/cnn.hpp>
#include <cnn/onnx.hpp>

#include <filesystem>
#include <iostream>

#include "../../examples/networks.hpp"
#include "../onnx_nets.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: export_onnx DIR\n";
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir);
    cnn::Random rng(1);
    const cnn::OnnxOptions options{.normalization = cnn::Normalization{0.2860, 0.3530}};
    for (const std::string& name : examples::network_names)
        examples::with_network(name, {}, [&](auto net) {
            net.initialize(rng);
            cnn::save_onnx(net, dir / (name + ".onnx"), {1, 28, 28}, options);
        });
    auto every = cnn::test::every_layer_net<float>();
    every.initialize(rng);
    for (std::int64_t opset = cnn::onnx_min_opset; opset <= cnn::onnx_max_opset; ++opset)
        cnn::save_onnx(every, dir / ("every-layer-opset" + std::to_string(opset) + ".onnx"), cnn::test::every_layer_input,
                       {.opset = opset});
    auto every_double = cnn::test::every_layer_net<double>();
    every_double.initialize(rng);
    cnn::save_onnx(every_double, dir / "every-layer-double.onnx", cnn::test::every_layer_input);
    std::cout << "export_onnx: wrote " << examples::network_names.size() + 6 << " files to " << dir << "\n";
    return 0;
}
