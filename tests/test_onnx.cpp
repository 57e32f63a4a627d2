// ONNX files (cnn/onnx.hpp): PyTorch's exports load and compute PyTorch's outputs, our exports
// pass ONNX's checker and shape inference and load back bit for bit, and bad files give an
// onnx_error that names the node and the problem, leaving the network as it was.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cnn/cnn.hpp>
#include <cnn/onnx.hpp>

#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <fstream>
#include <random>

#include "../examples/networks.hpp"
#include "onnx_nets.hpp"
#include "test_support.hpp"

using cnn::Shape;
using cnn::Tensor;

namespace {

const std::filesystem::path fixtures = std::filesystem::path(CNN_TEST_DATA_DIR) / "onnx";

/// Calls f(net) with the example network `name` in number type T.
template <class T, class F>
void with_example(const std::string& name, F&& f) {
    if (name == "lenet") f(examples::make_lenet<T>());
    else if (name == "wide") f(examples::make_wide<T>());
    else if (name == "wide-bn") f(examples::make_wide_bn<T>());
    else if (name == "resnet") f(examples::make_resnet<T>());
    else if (name == "mobilenet") f(examples::make_mobilenet<T>());
    else if (name == "every-layer") f(cnn::test::every_layer_net<T>());
    else FAIL("no example network " << name);
}


using cnn::detail::gather_parameters;

/// Random parameters, and batch-normalisation statistics away from their start.
template <class Net>
void randomize(Net& net, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> uniform(0.5, 1.5);
    cnn::detail::for_each_leaf(net, [&](auto& layer) {
        for (auto& v : layer.parameters()) v = static_cast<typename Net::value_type>(uniform(rng) - 1.0);
        if constexpr (requires { layer.running_variance(); })
            for (auto& v : layer.running_variance()) v = static_cast<typename Net::value_type>(uniform(rng));
    });
}

template <class Net>
Tensor<typename Net::value_type, 4> predict(const Net& net, const Tensor<typename Net::value_type, 4>& x) {
    typename Net::Workspace workspace;
    const auto y = net.forward(x, workspace);
    Tensor<typename Net::value_type, 4> result(y.shape());
    std::copy(y.begin(), y.end(), result.begin());
    return result;
}

std::vector<std::uint8_t> bytes_of(const ::onnx::ModelProto& model) {
    const std::string text = model.SerializeAsString();
    return {text.begin(), text.end()};
}

/// The message of the onnx_error that loading `model` into `net` throws ("" if none); checks
/// that the network is unchanged.
template <class Net>
std::string load_error(Net& net, const std::vector<std::uint8_t>& bytes) {
    const auto before = gather_parameters(net);
    try {
        cnn::onnx_into(net, bytes, "case.onnx");
    } catch (const cnn::onnx_error& e) {
        CHECK(gather_parameters(net) == before);
        return e.what();
    }
    return "";
}

::onnx::NodeProto* find_node(::onnx::ModelProto& model, const std::string& op, int which = 0) {
    for (auto& node : *model.mutable_graph()->mutable_node())
        if (node.op_type() == op && which-- == 0) return &node;
    FAIL("no " << op << " node");
    return nullptr;
}

}  // namespace

TEST_CASE("load_onnx reads PyTorch's exports and computes PyTorch's outputs", "[onnx]") {
    std::ifstream in(fixtures / "pytorch_outputs.json");
    REQUIRE(in);
    const auto record = nlohmann::json::parse(in);
    REQUIRE(record["cases"].size() == 10);
    for (const auto& c : record["cases"]) {
        // The example networks' cases share the record's images; the network of every layer has its own.
        const auto& inputs = c.contains("input") ? c : record;
        const auto input_shape = inputs["input_shape"].get<std::vector<std::size_t>>();
        const auto input = inputs["input"].get<std::vector<double>>();
        const std::string file = c["file"];
        const bool float64 = c["float64"];
        const auto expected = c["output"].get<std::vector<double>>();
        DYNAMIC_SECTION(file) {
            const auto check = [&](auto net) {
                using T = typename decltype(net)::value_type;
                randomize(net, 7);
                const cnn::OnnxInfo info = cnn::load_onnx(net, fixtures / file);
                CHECK(info.producer == "pytorch");
                CHECK((info.channels == input_shape[1] && info.rows == input_shape[2] && info.cols == input_shape[3]));
                CHECK(!info.normalization);  // PyTorch's files: pixels in [0, 1]
                Tensor<T, 4> x({input_shape[0], input_shape[1], input_shape[2], input_shape[3]});
                for (std::size_t i = 0; i < input.size(); ++i) x.data()[i] = static_cast<T>(input[i]);
                const auto y = predict(net, x);
                REQUIRE(y.size() == expected.size());
                double worst = 0;
                for (std::size_t i = 0; i < expected.size(); ++i)
                    worst = std::max(worst, std::abs(double(y.data()[i]) - expected[i]) / std::max(1.0, std::abs(expected[i])));
                INFO("worst relative difference " << worst);
                CHECK(worst <= (float64 ? 1e-12 : 1e-5));
            };
            if (float64)
                with_example<double>(c["network"], check);
            else
                with_example<float>(c["network"], check);
        }
    }
}

TEST_CASE("an eval-mode export folds batch norms into the convolutions; the loaded ones are then the identity", "[onnx]") {
    auto folded = examples::make_resnet<float>(), kept = examples::make_resnet<float>();
    randomize(folded, 1);
    randomize(kept, 2);
    cnn::load_onnx(folded, fixtures / "resnet.onnx");
    cnn::load_onnx(kept, fixtures / "resnet_bn.onnx");
    std::size_t identities = 0, with_statistics = 0, batch_norms = 0;
    cnn::detail::for_each_leaf(folded, [&](const auto& layer) {
        if constexpr (requires { layer.running_mean(); }) {
            ++batch_norms;
            bool identity = true;
            for (float g : layer.gamma()) identity = identity && g == 1.0f;
            for (float m : layer.running_mean()) identity = identity && m == 0.0f;
            for (float v : layer.running_variance()) identity = identity && v == static_cast<float>(1.0 - 1e-5);
            identities += identity;
        }
    });
    cnn::detail::for_each_leaf(kept, [&](const auto& layer) {
        if constexpr (requires { layer.running_mean(); })
            with_statistics += std::any_of(layer.running_mean().begin(), layer.running_mean().end(), [](float m) { return m != 0.0f; });
    });
    CHECK(batch_norms == 15);
    CHECK(identities == batch_norms);
    CHECK(with_statistics == batch_norms);
}

TEST_CASE("save_onnx writes what ONNX's checker and shape inference accept, and it loads back bit for bit", "[onnx]") {
    const auto dir = cnn::test::scratch_directory("onnx_round_trip");
    const auto round_trip = [&](auto net, const Shape<3>& input, const std::string& name) {
        using Net = decltype(net);
        using T = typename Net::value_type;
        randomize(net, 11);
        const auto path = dir / (name + ".onnx");
        cnn::save_onnx(net, path, input, {.normalization = cnn::Normalization{0.25, 0.5}, .metadata = {{"classes", "a,b"}}});

        ::onnx::ModelProto model = cnn::to_onnx(net, input);
        CHECK_NOTHROW(::onnx::checker::check_model(model));
        ::onnx::ShapeInferenceOptions options{true, 1, false};
        CHECK_NOTHROW(::onnx::shape_inference::InferShapes(model, ::onnx::OpSchemaRegistry::Instance(), options));
        // Every node's output got a full shape from the inference, and the output is N x classes.
        std::set<std::string> shaped;
        for (const auto& info : model.graph().value_info()) shaped.insert(info.name());
        for (const auto& node : model.graph().node())
            for (const auto& out : node.output())
                if (out != "output") CHECK(shaped.contains(out));

        Net other = net;
        randomize(other, 12);
        REQUIRE(gather_parameters(other) != gather_parameters(net));
        const cnn::OnnxInfo info = cnn::load_onnx(other, path);
        CHECK(gather_parameters(other) == gather_parameters(net));
        REQUIRE(info.normalization);
        CHECK(info.normalization->mean == 0.25);
        CHECK(info.normalization->deviation == 0.5);
        CHECK(info.metadata.at("classes") == "a,b");
        CHECK(info.producer == "cnn");
        CHECK(info.opset == 13);
        CHECK((info.channels == input[0] && info.rows == input[1] && info.cols == input[2]));
        std::mt19937_64 rng(5);
        const auto x = cnn::test::random_tensor<T>(Shape<4>{2, input[0], input[1], input[2]}, rng);
        const auto a = predict(net, x), b = predict(other, x);
        CHECK(std::equal(a.begin(), a.end(), b.begin(), b.end()));
    };
    for (const std::string name : {"lenet", "wide", "wide-bn", "resnet", "mobilenet"})
        with_example<float>(name, [&](auto net) { round_trip(net, {1, 28, 28}, name); });
    round_trip(examples::make_resnet<double>(), {1, 28, 28}, "resnet-double");
    round_trip(cnn::test::every_layer_net<double>(), cnn::test::every_layer_input, "every-layer-double");
    round_trip(cnn::test::every_layer_net<float>(), cnn::test::every_layer_input, "every-layer-float");
}

TEST_CASE("save_onnx writes each opset from 13 to 17, and refuses others", "[onnx]") {
    auto net = cnn::test::every_layer_net<float>();
    for (std::int64_t opset = cnn::onnx_min_opset; opset <= cnn::onnx_max_opset; ++opset) {
        ::onnx::ModelProto model = cnn::to_onnx(net, cnn::test::every_layer_input, {.opset = opset});
        CHECK_NOTHROW(::onnx::checker::check_model(model));
        auto other = cnn::test::every_layer_net<float>();
        CHECK(cnn::onnx_into(other, bytes_of(model), "opset").opset == opset);
    }
    CHECK_THROWS_AS(cnn::to_onnx(net, cnn::test::every_layer_input, {.opset = 12}), cnn::parameter_error);
    CHECK_THROWS_AS(cnn::to_onnx(net, cnn::test::every_layer_input, {.opset = 18}), cnn::parameter_error);
    CHECK_THROWS_AS(cnn::to_onnx(net, {3, 2, 2}), cnn::shape_error);
}

TEST_CASE("load_onnx names the node and the layer where the file and the network differ", "[onnx]") {
    const auto lenet_file = fixtures / "lenet.onnx";
    SECTION("another number of filters") {
        auto net = cnn::Sequential{cnn::Conv2D<float>{1, 8, 5, {.padding = 2}}, cnn::ReLU<float>{}};
        try {
            cnn::load_onnx(net, lenet_file);
            FAIL("no error");
        } catch (const cnn::onnx_error& e) {
            CHECK_THAT(e.what(), Catch::Contains("node 0 '/0/Conv' (Conv): 6 output channels in the file, layer 0 "
                                                 "(Conv2D(1->8, 5x5, stride 1, padding 2)) has 8"));
        }
    }
    SECTION("a nested layer's path") {
        auto net = examples::make_resnet<float>();
        auto model = cnn::to_onnx(net, {1, 28, 28});
        auto& dims = *find_node(model, "Conv", 1);  // layer 3 > body: the first block's first convolution
        for (auto& t : *model.mutable_graph()->mutable_initializer())
            if (t.name() == dims.input(1)) t.set_dims(0, 8);
        CHECK_THAT(load_error(net, bytes_of(model)),
                   Catch::Contains("case.onnx: node 3 '/3/0/body/0/Conv' (Conv): 8 output channels in the file, layer 3 > layer 0 > body > layer 0 "
                                   "(Conv2D(16->16, 3x3, stride 1, padding 1, no bias)) has 16"));
    }
    SECTION("a layer more in the file") {
        auto net = cnn::Sequential{cnn::Conv2D<float>{1, 6, 5, {.padding = 2}}, cnn::ReLU<float>{}};
        CHECK_THAT(load_error(net, cnn::read_file(lenet_file, cnn::max_onnx_file_size, "ONNX file")),
                   Catch::Contains("the network ends at '/1/Relu_output_0', the file's output is 'output'"));
    }
    SECTION("a layer of another kind") {
        auto net = examples::make_lenet<float>();
        auto model = cnn::to_onnx(net, {1, 28, 28});
        find_node(model, "Relu")->set_op_type("Sigmoid");
        CHECK_THAT(load_error(net, bytes_of(model)),
                   Catch::Contains("layer 1 (ReLU) expects a Relu node reading '/0/Conv_output'; the file has node 1 "
                                   "'/1/Relu' (Sigmoid) reading it"));
    }
    SECTION("an attribute") {
        auto net = examples::make_lenet<float>();
        auto model = cnn::to_onnx(net, {1, 28, 28});
        for (auto& a : *find_node(model, "MaxPool")->mutable_attribute())
            if (a.name() == "strides") a.set_ints(0, 1);
        CHECK_THAT(load_error(net, bytes_of(model)),
                   Catch::Contains("node 2 '/2/MaxPool' (MaxPool): strides [1, 2] in the file, layer 2 (MaxPool(2x2, stride 2)) has [2, 2]"));
    }
    SECTION("an initialiser's shape") {
        auto net = examples::make_lenet<float>();
        auto model = cnn::to_onnx(net, {1, 28, 28});
        for (auto& t : *model.mutable_graph()->mutable_initializer())
            if (t.name() == "/7.weight") t.set_dims(1, 401);
        CHECK_THAT(load_error(net, bytes_of(model)), Catch::Contains("its weight '/7.weight' has dimensions [120, 401] but not as many values stored"));
    }
    SECTION("a convolution's bias that the network does not have, with no batch norm to fold it into") {
        auto net = cnn::Sequential{cnn::Conv2D<float>{1, 6, 5, {.padding = 2, .bias = false}}, cnn::ReLU<float>{}};
        auto model = cnn::to_onnx(cnn::Sequential{cnn::Conv2D<float>{1, 6, 5, {.padding = 2}}, cnn::ReLU<float>{}}, {1, 28, 28});
        CHECK_THAT(load_error(net, bytes_of(model)), Catch::Contains("(Conv): has a bias in the file, layer 0"));
    }
    SECTION("an epsilon") {
        auto net = examples::make_wide_bn<float>();
        auto model = cnn::to_onnx(examples::make_wide_bn<float>(), {1, 28, 28});
        for (auto& a : *find_node(model, "BatchNormalization")->mutable_attribute())
            if (a.name() == "epsilon") a.set_f(1e-3f);
        CHECK_THAT(load_error(net, bytes_of(model)), Catch::Contains("epsilon 0.00100000005 in the file, layer 1 (BatchNorm2D(32)) has 1e-05"));
    }
    SECTION("another input size") {
        auto net = examples::make_lenet<float>();
        auto model = cnn::to_onnx(examples::make_lenet<float>({.rows = 32, .cols = 32}), {1, 32, 32});
        CHECK_THAT(load_error(net, bytes_of(model)),
                   Catch::Contains("layer 7 (Dense(400->120)) cannot take the file's input [1, 576, 1, 1]: Dense(400->120) "
                                   "expects 400 inputs, gets 576"));
    }
}

TEST_CASE("load_onnx refuses broken files with an onnx_error, never a crash", "[onnx]") {
    auto net = examples::make_lenet<float>();
    randomize(net, 1);
    const ::onnx::ModelProto good = cnn::to_onnx(net, {1, 28, 28});
    const auto broken = [&](auto&& change) {
        ::onnx::ModelProto model = good;
        change(model);
        return load_error(net, bytes_of(model));
    };
    const auto bytes = bytes_of(good);
    CHECK_THAT(load_error(net, {}), Catch::Contains("case.onnx: is empty"));
    CHECK_THAT(load_error(net, {bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(bytes.size() / 2)}),
               Catch::Contains("case.onnx: not an ONNX model: the protobuf does not parse"));
    std::vector<std::uint8_t> garbage(1000);
    std::mt19937_64 rng(3);
    for (auto& b : garbage) b = static_cast<std::uint8_t>(rng());
    CHECK(!load_error(net, garbage).empty());
    CHECK_THAT(load_error(net, {'h', 'e', 'l', 'l', 'o'}), Catch::Contains("not an ONNX model"));

    CHECK_THAT(broken([](auto& m) { m.mutable_opset_import(0)->set_version(11); }),
               Catch::Contains("opset 11 is not one this library reads (13 to 17)"));
    CHECK_THAT(broken([](auto& m) { m.mutable_opset_import(0)->set_domain("com.example"); }),
               Catch::Contains("imports no opset of the default ONNX domain"));
    CHECK_THAT(broken([](auto& m) { find_node(m, "Relu")->set_op_type("LSTM"); }),
               Catch::Contains("node 1 '/1/Relu' (LSTM): the operator LSTM is not one this library reads"));
    CHECK_THAT(broken([](auto& m) { find_node(m, "MaxPool")->set_input(0, "nowhere"); }),
               Catch::Contains("node 2 '/2/MaxPool' (MaxPool): its input 'nowhere' is produced by no node, initializer or graph input"));
    CHECK_THAT(broken([](auto& m) { find_node(m, "Conv")->set_input(0, find_node(m, "MaxPool")->output(0)); }),
               Catch::Contains("case.onnx: node 0 '/0/Conv' (Conv): is part of a cycle (its inputs depend on its own output)"));
    CHECK_THAT(broken([](auto& m) { find_node(m, "Relu", 1)->set_output(0, find_node(m, "Relu", 0)->output(0)); }),
               Catch::Contains("case.onnx: node 4 '/4/Relu' (Relu): its output '/1/Relu_output' is produced twice"));
    CHECK_THAT(broken([](auto& m) {
                   for (auto& t : *m.mutable_graph()->mutable_initializer())
                       if (t.name() == "/0.weight") t.mutable_raw_data()->resize(12);
               }),
               Catch::Contains("its weight '/0.weight' has dimensions [6, 1, 5, 5] but not as many values stored"));
    CHECK_THAT(broken([](auto& m) {
                   for (auto& t : *m.mutable_graph()->mutable_initializer())
                       if (t.name() == "/0.bias") {
                           const float nan = std::numeric_limits<float>::quiet_NaN();
                           t.mutable_raw_data()->replace(0, 4, reinterpret_cast<const char*>(&nan), 4);
                       }
               }),
               Catch::Contains("parameter 150 of layer 0 (Conv2D(1->6, 5x5, stride 1, padding 2)) is not a finite number"));
    CHECK_THAT(broken([](auto& m) {
                   for (auto& t : *m.mutable_graph()->mutable_initializer())
                       if (t.name() == "/0.weight") t.set_data_location(::onnx::TensorProto::EXTERNAL);
               }),
               Catch::Contains("is stored in an external file"));
    CHECK_THAT(broken([](auto& m) { m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(2)->set_dim_param("height"); }),
               Catch::Contains("the input's dimension 2 has no fixed size ('height')"));
    CHECK_THAT(broken([](auto& m) {
                   auto& shape = *m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
                   shape.mutable_dim(2)->set_dim_value(65536);
                   shape.mutable_dim(3)->set_dim_value(65536);
               }),
               Catch::Contains("case.onnx: the input of 1 x 65536 x 65536 values per sample is larger than this library reads (2^31)"));
    CHECK_THAT(broken([](auto& m) { m.mutable_graph()->add_input()->set_name("second"); }),
               Catch::Contains("the graph has 2 inputs besides its initializers"));
    CHECK_THAT(broken([](auto& m) {
                   auto* p = m.add_metadata_props();
                   p->set_key("cnn.normalization");
                   p->set_value("0.5;2");
               }),
               Catch::Contains("metadata cnn.normalization is \"0.5;2\""));
    CHECK_THAT(broken([](auto& m) {
                   for (auto& a : *find_node(m, "Conv")->mutable_attribute())
                       if (a.name() == "pads") a.set_type(::onnx::AttributeProto::FLOAT);
               }),
               Catch::Contains("attribute pads is not a list of integers"));
    CHECK_THROWS_AS(cnn::load_onnx(net, "/nonexistent/model.onnx"), cnn::onnx_error);
}

TEST_CASE("load_onnx reads a dense layer written as MatMul and Add, and a Reshape with a constant shape", "[onnx]") {
    // What other exporters write for x.reshape(-1, 400) @ W + b.
    auto net = examples::make_lenet<double>();
    randomize(net, 21);
    ::onnx::ModelProto model = cnn::to_onnx(net, {1, 28, 28});
    auto& graph = *model.mutable_graph();
    auto* flatten = find_node(model, "Flatten");
    flatten->set_op_type("Reshape");
    flatten->clear_attribute();
    flatten->add_input("shape");
    auto& shape = *graph.add_initializer();
    shape.set_name("shape");
    shape.set_data_type(::onnx::TensorProto::INT64);
    shape.add_dims(2);
    shape.add_int64_data(-1);
    shape.add_int64_data(400);
    // The first dense layer: Gemm(x, W, b, transB) becomes Add(MatMul(x, W^T), b).
    auto* gemm = find_node(model, "Gemm");
    const std::string weight = gemm->input(1), bias = gemm->input(2), out = gemm->output(0);
    for (auto& t : *graph.mutable_initializer())
        if (t.name() == weight) {
            std::vector<double> w(t.raw_data().size() / 8), transposed(w.size());
            std::memcpy(w.data(), t.raw_data().data(), t.raw_data().size());
            for (std::size_t j = 0; j < 120; ++j)
                for (std::size_t i = 0; i < 400; ++i) transposed[i * 120 + j] = w[j * 400 + i];
            t.set_raw_data(std::string(reinterpret_cast<const char*>(transposed.data()), transposed.size() * 8));
            t.set_dims(0, 400);
            t.set_dims(1, 120);
        }
    gemm->set_op_type("MatMul");
    gemm->clear_attribute();
    gemm->mutable_input()->RemoveLast();
    gemm->set_output(0, "product");
    auto& add = *graph.add_node();
    add.set_op_type("Add");
    add.set_name("bias");
    add.add_input(bias);
    add.add_input("product");
    add.add_output(out);
    // Nodes stay in topological order: the Add goes right after the MatMul.
    for (int i = graph.node_size() - 1; i > 0 && graph.node(i - 1).output(0) != "product"; --i)
        graph.mutable_node()->SwapElements(i, i - 1);
    CHECK_NOTHROW(::onnx::checker::check_model(model));

    auto other = examples::make_lenet<double>();
    randomize(other, 22);
    cnn::onnx_into(other, bytes_of(model), "matmul.onnx");
    CHECK(gather_parameters(other) == gather_parameters(net));

    SECTION("a Reshape to a negative or enormous dimension is refused") {
        shape.set_int64_data(0, -5);
        CHECK_THAT(load_error(other, bytes_of(model)), Catch::Contains("(Reshape): its shape [-5, 400] has a dimension below -1"));
        shape.set_int64_data(0, std::int64_t{1} << 62);
        CHECK_THAT(load_error(other, bytes_of(model)),
                   Catch::Contains("(Reshape): its shape input 'shape' holds 4611686018427387904.000000, not a dimension"));
    }
    SECTION("a shape computed by a node that lacks an input is refused") {
        // The fuzzer's find: a Shape or Gather with fewer inputs than its operator reads.
        graph.mutable_initializer()->RemoveLast();  // the constant "shape"
        auto& gather = *graph.add_node();
        gather.set_op_type("Gather");
        gather.set_name("gather");
        gather.add_input("dims");
        gather.add_output("shape");
        auto& dims = *graph.add_node();
        dims.set_op_type("Shape");
        dims.set_name("dims");
        dims.add_output("dims");
        CHECK_THAT(load_error(other, bytes_of(model)), Catch::Contains("'dims' (Shape): has 0 inputs; Shape needs 1"));
        dims.add_input(flatten->input(0));
        CHECK_THAT(load_error(other, bytes_of(model)), Catch::Contains("'gather' (Gather): has 1 input; Gather needs 2"));
    }
    SECTION("a Reshape that keeps the batch size of the export is refused") {
        shape.set_int64_data(0, 1);
        CHECK_THAT(load_error(other, bytes_of(model)),
                   Catch::Contains("(Reshape): reshapes to [1, 400] for a batch of 1009; layer 6 (Flatten) gives [1009, 400] (any batch size)"));
    }
}

/// A layer of the user's own, which the library cannot write as ONNX.
template <cnn::Scalar T>
struct Doubler : cnn::detail::WithoutParameters<T> {
    using value_type = T;
    [[nodiscard]] std::string describe() const { return "Doubler"; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return in; }
    void forward(cnn::TensorView<const T, 4> x, cnn::TensorView<T, 4> y, cnn::Context<T>) const {
        std::transform(x.begin(), x.end(), y.begin(), [](T v) { return 2 * v; });
    }
    void backward(cnn::TensorView<const T, 4>, cnn::TensorView<const T, 4>, cnn::TensorView<const T, 4> dy,
                  cnn::TensorView<T, 4> dx, cnn::Context<T>, cnn::Accumulate) {
        std::transform(dy.begin(), dy.end(), dx.begin(), [](T v) { return 2 * v; });
    }
};

TEST_CASE("save_onnx refuses a layer that has no ONNX form, and writes atomically", "[onnx]") {
    const auto dir = cnn::test::scratch_directory("onnx_save");
    const auto path = dir / "model.onnx";
    auto custom = cnn::Sequential{cnn::Conv2D<float>{1, 2, 3}, cnn::Residual{cnn::Sequential{Doubler<float>{}}}};
    try {
        cnn::save_onnx(custom, path, {1, 5, 5});
        FAIL("no error");
    } catch (const cnn::onnx_error& e) {
        CHECK_THAT(e.what(), Catch::Contains("layer 1 > body > layer 0 (Doubler): a Doubler layer has no ONNX form"));
    }
    CHECK(!std::filesystem::exists(path));

    auto net = examples::make_lenet<float>();
    cnn::save_onnx(net, path, {1, 28, 28});
    const auto before = cnn::read_file(path, cnn::max_onnx_file_size, "ONNX file");
    // A failed save (into a directory that is a file) changes nothing and leaves nothing.
    CHECK_THROWS_AS(cnn::save_onnx(net, path / "inside.onnx", {1, 28, 28}), cnn::onnx_error);
    CHECK(cnn::read_file(path, cnn::max_onnx_file_size, "ONNX file") == before);
    CHECK(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()) == 1);
}
