// Writes the seed corpus of fuzz_onnx (committed under tests/fuzz/corpus/onnx/): ONNX files
// of fuzz_onnx's two networks as save_onnx writes them, one with normalisation metadata.
#include <cnn/cnn.hpp>
#include <cnn/onnx.hpp>

#include <filesystem>
#include <iostream>

#include "networks.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: make_onnx_corpus DIR\n";
        return 2;
    }
    const std::filesystem::path dir = std::filesystem::path(argv[1]) / "onnx";
    std::filesystem::create_directories(dir);
    cnn::Random rng(1);
    auto flat = fuzz::flat_network();
    flat.initialize(rng);
    auto nested = fuzz::nested_network();
    nested.initialize(rng);
    cnn::save_onnx(flat, dir / "flat.onnx", {1, 8, 8});
    cnn::save_onnx(nested, dir / "nested.onnx", {1, 8, 8},
                   {.opset = 17, .normalization = cnn::Normalization{0.5, 0.25}, .metadata = {{"classes", "a,b,c"}}});
    return 0;
}
