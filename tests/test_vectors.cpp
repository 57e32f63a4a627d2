// Every case of tests/data/vectors.json (a copy of the spec's vectors) against
// the reference kernels, in double, to the spec's absolute tolerance 1e-9.
#include <cnn/reference.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

#include "test_support.hpp"

using nlohmann::json;
using cnn::Shape;
using cnn::Tensor;

namespace {

constexpr double tolerance = 1e-9;

json load_cases() {
    const std::string path = std::string(CNN_TEST_DATA_DIR) + "/vectors.json";
    std::ifstream file(path);
    if (!file) throw std::runtime_error("cannot open " + path);
    return json::parse(file).at("cases");
}

template <std::size_t Rank>
void collect(const json& node, std::size_t depth, Shape<Rank>& shape, std::vector<double>& values) {
    if constexpr (Rank == 0) {
        values.push_back(node.get<double>());
    } else {
        if (depth == Rank) {
            values.push_back(node.get<double>());
            return;
        }
        if (!node.is_array()) throw std::runtime_error("expected a nested list of rank " + std::to_string(Rank));
        if (values.empty() && shape[depth] == 0) shape[depth] = node.size();
        if (node.size() != shape[depth]) throw std::runtime_error("ragged nested list");
        for (const json& child : node) collect<Rank>(child, depth + 1, shape, values);
    }
}

/// A nested JSON list of rank Rank as a tensor.
template <std::size_t Rank>
Tensor<double, Rank> tensor_from(const json& node) {
    Shape<Rank> shape{};
    std::vector<double> values;
    collect<Rank>(node, 0, shape, values);
    return Tensor<double, Rank>(shape, std::span<const double>(values));
}

std::vector<double> vector_from(const json& node) { return node.get<std::vector<double>>(); }

template <class A, class B>
    requires requires(const A& a) { a.shape(); }
void check_close(const A& actual, const B& expected, const std::string& what) {
    INFO(what << ": actual shape " << cnn::to_string(actual.shape()) << ", expected "
              << cnn::to_string(expected.shape()));
    CHECK(cnn::test::max_abs_difference(actual, expected) <= tolerance);
}

void check_close(std::span<const double> actual, const std::vector<double>& expected, const std::string& what) {
    INFO(what);
    REQUIRE(actual.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) CHECK(std::abs(actual[i] - expected[i]) <= tolerance);
}

double activation_derivative(const std::string& name, double net) {
    if (name == "relu") return cnn::reference::relu_derivative(net);
    if (name == "identity") return 1.0;
    throw std::runtime_error("unknown activation " + name);
}

void run_case(const json& c) {
    namespace ref = cnn::reference;
    const std::string op = c.at("op");
    const json& in = c.at("inputs");
    const json& ex = c.at("expected");
    const json params = c.value("params", json::object());

    if (op == "output_size") {
        const auto h = ref::output_extent(in.at("H1"), in.at("Fh"), in.at("P"), in.at("S"));
        const auto w = ref::output_extent(in.at("W1"), in.at("Fw"), in.at("P"), in.at("S"));
        CHECK(h.extent == ex.at("H2").get<std::size_t>());
        CHECK(w.extent == ex.at("W2").get<std::size_t>());
        CHECK((h.exact_division && w.exact_division) == ex.at("exact_division").get<bool>());
    } else if (op == "relu") {
        const auto x = tensor_from<2>(in.at("x"));
        Tensor<double, 2> f(x.shape()), f_prime(x.shape());
        for (std::size_t i = 0; i < x.size(); ++i) {
            f.data()[i] = ref::relu(x.data()[i]);
            f_prime.data()[i] = ref::relu_derivative(x.data()[i]);
        }
        check_close(f, tensor_from<2>(ex.at("f")), "f");
        check_close(f_prime, tensor_from<2>(ex.at("f_prime")), "f_prime");
    } else if (op == "conv2d_full_math") {
        const auto a = tensor_from<2>(in.at("A"));
        const auto b = tensor_from<2>(in.at("B"));
        Tensor<double, 2> out({a.extent(0) + b.extent(0) - 1, a.extent(1) + b.extent(1) - 1});
        ref::full_convolution<double>(a, b, out);
        check_close(out, tensor_from<2>(ex.at("C")), "C");
    } else if (op == "conv2d_forward") {
        const auto x = tensor_from<3>(in.at("x"));
        const auto w = tensor_from<4>(in.at("w"));
        const auto b = vector_from(in.at("b"));
        const std::size_t stride = params.at("stride"), padding = params.at("padding");
        Tensor<double, 3> net({w.extent(0), ref::output_extent(x.extent(1), w.extent(2), padding, stride).extent,
                               ref::output_extent(x.extent(2), w.extent(3), padding, stride).extent});
        ref::conv2d_forward<double>(x, w, b, stride, padding, net);
        check_close(net, tensor_from<3>(ex.at("net")), "net");
        Tensor<double, 3> out(net.shape());
        if (params.at("activation") == "relu")
            ref::relu<double, 3>(net, out);
        else
            out = net;
        check_close(out, tensor_from<3>(ex.at("out")), "out");
    } else if (op == "conv2d_backward_delta") {
        const auto delta = tensor_from<3>(in.at("delta_out"));
        const auto w = tensor_from<4>(in.at("w"));
        const auto net_in = tensor_from<3>(in.at("net_in"));
        const std::size_t stride = params.at("stride"), padding = params.at("padding");
        Tensor<double, 3> grad(net_in.shape()), direct(net_in.shape());
        ref::conv2d_backward_input<double>(delta, w, stride, padding, grad);
        check_close(grad, tensor_from<3>(ex.at("grad_a_in")), "grad_a_in (flipped-filter full convolution)");
        ref::conv2d_backward_input_direct<double>(delta, w, stride, padding, direct);
        check_close(direct, tensor_from<3>(ex.at("grad_a_in")), "grad_a_in (direct chain rule)");
        Tensor<double, 3> delta_in(net_in.shape());
        const std::string activation = params.at("activation_prev");
        for (std::size_t i = 0; i < grad.size(); ++i)
            delta_in.data()[i] = grad.data()[i] * activation_derivative(activation, net_in.data()[i]);
        check_close(delta_in, tensor_from<3>(ex.at("delta_in")), "delta_in");
    } else if (op == "conv2d_weight_grad") {
        const auto a = tensor_from<3>(in.at("a_in"));
        const auto delta = tensor_from<3>(in.at("delta_out"));
        const std::size_t stride = params.at("stride"), padding = params.at("padding");
        Tensor<double, 4> grad_w({delta.extent(0), a.extent(0), params.at("filter_h"), params.at("filter_w")});
        std::vector<double> grad_b(delta.extent(0), 0.0);
        ref::conv2d_weight_grad<double>(a, delta, stride, padding, grad_w, grad_b);
        check_close(grad_w, tensor_from<4>(ex.at("grad_w")), "grad_w");
        check_close(grad_b, vector_from(ex.at("grad_b")), "grad_b");
    } else if (op == "conv2d_bias_grad") {
        const auto delta = tensor_from<3>(in.at("delta_out"));
        std::vector<double> grad_b(delta.extent(0), 0.0);
        ref::conv2d_bias_grad<double>(delta, grad_b);
        check_close(grad_b, vector_from(ex.at("grad_b")), "grad_b");
    } else if (op == "dilate_delta") {
        const auto delta = tensor_from<3>(in.at("delta_out"));
        const std::size_t in_h = params.at("in_h"), in_w = params.at("in_w"), fh = params.at("filter_h"),
                          fw = params.at("filter_w"), stride = params.at("stride"), padding = params.at("padding");
        Tensor<double, 3> expanded({delta.extent(0), in_h + 2 * padding - fh + 1, in_w + 2 * padding - fw + 1});
        ref::dilate_delta<double>(delta, stride, expanded);
        check_close(expanded, tensor_from<3>(ex.at("expanded")), "expanded");
    } else if (op == "maxpool_forward" || op == "meanpool_forward") {
        const auto x = tensor_from<3>(in.at("x"));
        const std::size_t window = params.at("window"), stride = params.at("stride");
        Tensor<double, 3> out({x.extent(0), (x.extent(1) - window) / stride + 1, (x.extent(2) - window) / stride + 1});
        if (op == "maxpool_forward") {
            ref::maxpool_forward<double>(x, {window, window}, stride, out);
            const auto argmax = tensor_from<4>(ex.at("argmax"));
            for (std::size_t ch = 0; ch < out.extent(0); ++ch)
                for (std::size_t i = 0; i < out.extent(1); ++i)
                    for (std::size_t j = 0; j < out.extent(2); ++j) {
                        const auto [u, v] = ref::window_argmax<double>(x, ch, i, j, {window, window}, stride);
                        CHECK(static_cast<double>(u) == argmax(ch, i, j, 0));
                        CHECK(static_cast<double>(v) == argmax(ch, i, j, 1));
                    }
        } else {
            ref::meanpool_forward<double>(x, {window, window}, stride, out);
        }
        check_close(out, tensor_from<3>(ex.at("out")), "out");
    } else if (op == "maxpool_backward") {
        const auto x = tensor_from<3>(in.at("x"));
        const auto delta = tensor_from<3>(in.at("delta_out"));
        const std::size_t window = params.at("window"), stride = params.at("stride");
        Tensor<double, 3> grad(x.shape());
        ref::maxpool_backward<double>(x, delta, {window, window}, stride, grad);
        check_close(grad, tensor_from<3>(ex.at("delta_in")), "delta_in");
    } else if (op == "meanpool_backward") {
        const auto delta = tensor_from<3>(in.at("delta_out"));
        const auto shape = in.at("in_shape").get<std::vector<std::size_t>>();
        REQUIRE(shape.size() == 3);
        const std::size_t window = params.at("window"), stride = params.at("stride");
        Tensor<double, 3> grad({shape[0], shape[1], shape[2]});
        ref::meanpool_backward<double>(delta, {window, window}, stride, grad);
        check_close(grad, tensor_from<3>(ex.at("delta_in")), "delta_in");
        Tensor<double, 3> general(grad.shape());
        ref::meanpool_backward_general<double>(delta, {window, window}, stride, general);
        check_close(general, tensor_from<3>(ex.at("delta_in")), "delta_in (general form)");
    } else if (op == "fc_forward") {
        const auto w = tensor_from<2>(in.at("W"));
        const auto b = vector_from(in.at("b"));
        const auto x = vector_from(in.at("x"));
        std::vector<double> net(w.extent(0)), out;
        ref::dense_forward<double>(w, b, x, net);
        check_close(net, vector_from(ex.at("net")), "net");
        for (double v : net) out.push_back(params.at("activation") == "relu" ? ref::relu(v) : v);
        check_close(out, vector_from(ex.at("out")), "out");
    } else if (op == "fc_backward") {
        const auto w = tensor_from<2>(in.at("W"));
        const auto x = vector_from(in.at("x"));
        const auto delta = vector_from(in.at("delta_out"));
        const auto net_in = vector_from(in.at("net_in"));
        Tensor<double, 2> grad_w(w.shape());
        std::vector<double> grad_b(w.extent(0), 0.0), grad_x(w.extent(1)), delta_in;
        ref::dense_backward<double>(w, x, delta, grad_w, grad_b, grad_x);
        check_close(grad_w, tensor_from<2>(ex.at("grad_W")), "grad_W");
        check_close(grad_b, vector_from(ex.at("grad_b")), "grad_b");
        check_close(grad_x, vector_from(ex.at("grad_x")), "grad_x");
        for (std::size_t i = 0; i < grad_x.size(); ++i)
            delta_in.push_back(grad_x[i] * activation_derivative(params.at("activation_prev"), net_in[i]));
        check_close(delta_in, vector_from(ex.at("delta_in")), "delta_in");
    } else if (op == "sgd_update") {
        auto w = tensor_from<3>(in.at("w"));
        const auto grad = tensor_from<3>(in.at("grad"));
        ref::sgd_update<double>(w.span(), grad.span(), params.at("eta").get<double>());
        check_close(w, tensor_from<3>(ex.at("w_new")), "w_new");
    } else if (op == "output_delta_sigmoid_mse") {
        const auto y = vector_from(in.at("y"));
        const auto t = vector_from(in.at("t"));
        std::vector<double> delta(y.size());
        ref::sigmoid_mse_output_delta<double>(y, t, delta);
        check_close(delta, vector_from(ex.at("delta")), "delta");
    } else {
        FAIL("vectors.json has an op the suite does not know: " << op);
    }
}

}  // namespace

TEST_CASE("every case of vectors.json matches the reference kernels", "[vectors]") {
    const json cases = load_cases();
    REQUIRE(cases.size() == 39);
    for (const json& c : cases) {
        const std::string id = c.at("id");
        DYNAMIC_SECTION(id) {
            INFO("vector " << id << " (" << c.at("op").get<std::string>() << ")");
            run_case(c);
        }
    }
}
