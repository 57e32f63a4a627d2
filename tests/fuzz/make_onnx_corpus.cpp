// Writes the seed corpus of fuzz_onnx (committed under tests/fuzz/corpus/onnx/): ONNX files
// of fuzz_onnx's two networks as save_onnx writes them, one with normalisation metadata, and
// the flat one with its Flatten written as PyTorch writes x.view(x.size(0), -1) (Shape,
// Gather, Unsqueeze, Concat, Reshape), so that the shape evaluation is fuzzed from a seed.
#include <cnn/cnn.hpp>
#include <cnn/onnx.hpp>

#include <filesystem>
#include <fstream>
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

    ::onnx::ModelProto view = cnn::to_onnx(flat, {1, 8, 8});
    auto& graph = *view.mutable_graph();
    const auto constant = [&](const std::string& name, std::vector<std::int64_t> values, bool scalar = false) {
        auto& t = *graph.add_initializer();
        t.set_name(name);
        t.set_data_type(::onnx::TensorProto::INT64);
        if (!scalar) t.add_dims(static_cast<std::int64_t>(values.size()));
        for (auto v : values) t.add_int64_data(v);
    };
    constant("index", {0}, true);
    constant("axes", {0});
    constant("rest", {-1});
    ::onnx::NodeProto* flatten = nullptr;
    for (auto& node : *graph.mutable_node())
        if (node.op_type() == "Flatten") flatten = &node;
    if (flatten == nullptr) return 1;
    const std::string input = flatten->input(0);
    flatten->set_op_type("Reshape");
    flatten->clear_attribute();
    flatten->add_input("shape");
    ::onnx::GraphProto steps;
    const auto step = [&](const char* op, std::vector<std::string> inputs, const std::string& output) {
        auto& node = *steps.add_node();
        node.set_op_type(op);
        node.set_name(output);
        for (const auto& in : inputs) node.add_input(in);
        node.add_output(output);
    };
    step("Shape", {input}, "size");
    step("Gather", {"size", "index"}, "batch");
    step("Unsqueeze", {"batch", "axes"}, "batch_1");
    step("Concat", {"batch_1", "rest"}, "shape");
    steps.mutable_node(3)->add_attribute()->set_name("axis");
    steps.mutable_node(3)->mutable_attribute(0)->set_type(::onnx::AttributeProto::INT);
    steps.mutable_node(3)->mutable_attribute(0)->set_i(0);
    // The shape computation goes right before the Reshape, keeping the nodes in order.
    ::onnx::GraphProto ordered;
    for (const auto& node : graph.node()) {
        if (&node == flatten)
            for (const auto& s : steps.node()) *ordered.add_node() = s;
        *ordered.add_node() = node;
    }
    graph.mutable_node()->Swap(ordered.mutable_node());
    std::ofstream(dir / "flat_view.onnx", std::ios::binary) << view.SerializeAsString();
    return 0;
}
