// Golden values from an independent implementation: tests/data/golden_layers.json, written by
// scripts/golden.py with PyTorch in float64. For every case the layer runs forward and
// backward on the recorded x and dy (in the recorded mode, from the recorded parameters) and
// must give PyTorch's y, dx, parameter gradients and parameters after the pass (batch
// normalisation's running statistics) to 1e-10. The file is committed, so this needs no PyTorch.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "test_support.hpp"

using cnn::Shape;
using cnn::Tensor;
using nlohmann::json;

namespace {

/// Calls f(layer) with the layer a golden case names.
template <class F>
void with_layer(const json& c, const Shape<4>& shape, F&& f) {
    const std::string name = c.at("layer");
    const json& settings = c.at("settings");
    if (name == "Sigmoid") {
        cnn::Sigmoid<double> layer;
        f(layer);
    } else if (name == "Tanh") {
        cnn::Tanh<double> layer;
        f(layer);
    } else if (name == "LeakyReLU") {
        cnn::LeakyReLU<double> layer{settings.at("slope").get<double>()};
        f(layer);
    } else if (name == "ELU") {
        cnn::ELU<double> layer{settings.at("alpha").get<double>()};
        f(layer);
    } else if (name == "GELU") {
        cnn::GELU<double> layer{settings.at("approximation") == "tanh" ? cnn::GeluApproximation::tanh
                                                                       : cnn::GeluApproximation::none};
        f(layer);
    } else if (name == "Softmax") {
        cnn::Softmax<double> layer;
        f(layer);
    } else if (name == "BatchNorm2D") {
        cnn::BatchNorm2D<double> layer{shape[1], {.momentum = settings.at("momentum").get<double>(),
                                                  .epsilon = settings.at("epsilon").get<double>()}};
        f(layer);
    } else if (name == "Dropout") {
        cnn::Dropout<double> layer{settings.at("rate").get<double>()};
        f(layer);
    } else if (name == "Conv2D") {
        const auto extent = [&](const char* key) {
            const auto v = settings.at(key).get<std::vector<std::size_t>>();
            return cnn::Extent2D{v.at(0), v.at(1)};
        };
        cnn::Conv2D<double> layer{settings.at("in_channels").get<std::size_t>(), settings.at("filters").get<std::size_t>(),
                                  extent("kernel"),
                                  {.stride = extent("stride"),
                                   .padding = extent("padding"),
                                   .dilation = extent("dilation"),
                                   .bias = settings.at("bias").get<bool>(),
                                   .groups = settings.value("groups", std::ptrdiff_t{1})}};
        f(layer);
    } else if (name == "MaxPool" || name == "MeanPool") {
        const auto extent = [&](const char* key) {
            const auto v = settings.at(key).get<std::vector<std::size_t>>();
            return cnn::Extent2D{v.at(0), v.at(1)};
        };
        const cnn::PoolOptions options{.stride = settings.at("stride").get<std::size_t>(),
                                       .padding = extent("padding"),
                                       .count_padding = settings.at("count_padding").get<bool>()};
        if (name == "MaxPool") {
            cnn::MaxPool<double> layer{extent("window"), options};
            f(layer);
        } else {
            cnn::MeanPool<double> layer{extent("window"), options};
            f(layer);
        }
    } else if (name == "GlobalAvgPool") {
        cnn::GlobalAvgPool<double> layer;
        f(layer);
    } else {
        FAIL("a golden case of an unknown layer: " << name);
    }
}

Shape<4> shape_of(const json& values) {
    const auto v = values.get<std::vector<std::size_t>>();
    REQUIRE(v.size() == 4);
    return {v[0], v[1], v[2], v[3]};
}

Tensor<double, 4> tensor_of(const json& values, const Shape<4>& shape) {
    Tensor<double, 4> t(shape);
    const auto v = values.get<std::vector<double>>();
    REQUIRE(v.size() == t.size());
    std::copy(v.begin(), v.end(), t.begin());
    return t;
}

double max_difference(std::span<const double> a, const std::vector<double>& b) {
    if (a.size() != b.size()) return INFINITY;
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    return worst;
}

}  // namespace

TEST_CASE("Layers match PyTorch's float64 golden values to 1e-10", "[golden]") {
    std::ifstream file(std::string(CNN_TEST_DATA_DIR) + "/golden_layers.json");
    REQUIRE(file.good());
    const json document = json::parse(file);
    std::size_t checked = 0;
    std::set<std::string> layers;
    for (const json& c : document.at("cases")) {
        const Shape<4> shape = shape_of(c.at("shape"));
        const Shape<4> out_shape = c.contains("output_shape") ? shape_of(c.at("output_shape")) : shape;
        const auto x = tensor_of(c.at("x"), shape), dy = tensor_of(c.at("dy"), out_shape);
        const auto y_expected = tensor_of(c.at("y"), out_shape), dx_expected = tensor_of(c.at("dx"), shape);
        const cnn::Mode mode = c.value("mode", "inference") == "training" ? cnn::Mode::training : cnn::Mode::inference;
        if (c.at("layer") == "CrossEntropy") {  // the loss: y is its value, dx its gradient
            const auto labels = c.at("labels").get<std::vector<std::uint32_t>>();
            const double smoothing = c.at("settings").at("label_smoothing").get<double>();
            INFO("softmax_cross_entropy on " << cnn::to_string(shape) << ", label smoothing " << smoothing);
            Tensor<double, 4> delta(shape);
            const double loss = cnn::softmax_cross_entropy<double>(x, labels, delta.view(), smoothing);
            CHECK(std::abs(loss - y_expected.data()[0]) <= 1e-10);
            CHECK(cnn::test::max_abs_difference(delta, dx_expected) <= 1e-10);
            layers.insert("CrossEntropy");
            ++checked;
            continue;
        }
        with_layer(c, shape, [&](auto& layer) {
            INFO(layer.describe() << " on " << cnn::to_string(shape) << " in " << c.value("mode", "inference"));
            const auto layout = cnn::detail::parameter_layout(layer);
            if (c.contains("parameters")) {
                const auto values = c.at("parameters").get<std::vector<double>>();
                REQUIRE(values.size() == layer.parameters().size());
                std::ranges::copy(values, layer.parameters().begin());
            }
            CHECK(layer.output_shape(shape) == out_shape);
            cnn::Scratch<double> scratch;
            cnn::Random random{1};
            cnn::layer_state_t<std::remove_cvref_t<decltype(layer)>> state{};
            Tensor<double, 4> y(out_shape), dx(shape);
            std::ranges::fill(layer.gradients(), 0.0);
            cnn::detail::forward(layer, x, y, cnn::Context<double>(scratch, mode, &random), state);
            cnn::detail::backward(layer, x, y, dy, dx, cnn::Context<double>(scratch, mode, &random), state,
                                  cnn::Accumulate::no);
            CHECK(cnn::test::max_abs_difference(y, y_expected) <= 1e-10);
            CHECK(cnn::test::max_abs_difference(dx, dx_expected) <= 1e-10);
            if (c.contains("parameters")) {
                CHECK(max_difference(layer.gradients().subspan(0, layout.learned()),
                                     c.at("parameter_gradients").get<std::vector<double>>()) <= 1e-10);
                CHECK(max_difference(layer.parameters(), c.at("parameters_after").get<std::vector<double>>()) <= 1e-10);
            } else {
                CHECK(layer.parameters().empty());
            }
            layers.insert(c.at("layer").get<std::string>());
            ++checked;
        });
    }
    CHECK(checked == document.at("cases").size());
    // every layer added since 0.3 has its golden cases (and Conv2D and the pools, for their options)
    for (const char* name : {"Sigmoid", "Tanh", "LeakyReLU", "ELU", "GELU", "Softmax", "BatchNorm2D", "Dropout",
                             "GlobalAvgPool", "Conv2D", "MaxPool", "MeanPool", "CrossEntropy"}) {
        INFO(name);
        CHECK(layers.count(name) == 1);
    }
}
