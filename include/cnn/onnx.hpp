// ONNX files: export any network of the library's layers, and load the weights of a
// network trained elsewhere (PyTorch's torch.onnx.export) into a network of ours.
//
// Link the CMake target cnn::onnx, which adds ONNX's protobuf classes (Debian: libonnx-dev,
// libprotobuf-dev); the core headers need neither.
//
//   save_onnx(net, "model.onnx", {1, 28, 28}, {.normalization = normalization});
//   const cnn::OnnxInfo info = cnn::load_onnx(net, "model.onnx");
//
// Export writes one ONNX node (or a few) per layer, in opset 13 unless asked otherwise:
//
//   Conv2D        Conv (kernel_shape, strides, pads, dilations, group; bias when it has one)
//   Dense         Gemm (transB = 1), after a Flatten when its input is still N x C x H x W
//   BatchNorm2D   BatchNormalization with the running statistics (momentum = 1 - ours)
//   MaxPool       MaxPool (pads);  MeanPool: AveragePool (pads, count_include_pad)
//   GlobalAvgPool GlobalAveragePool;  Flatten: Flatten (axis 1)
//   ReLU, Sigmoid, Tanh, LeakyReLU, ELU, Softmax (axis 1): the ONNX operator of that name;
//   GELU: x/sqrt(2) -> Erf -> +1 -> *x -> *0.5 (tanh form: its polynomial), as PyTorch writes it
//   Dropout, Identity: nothing (an inference graph)
//   Residual      the body, the shortcut, then Add;  Parallel: Add (pairwise) or Concat (axis 1)
//
// The input is "input" (batch x C x H x W, the batch dimension named "batch", so any batch
// size runs), the output "output"; initialisers are named after the layer's path
// ("/3/body/0.weight"). ONNX has no place for the input normalisation, so it goes into the
// metadata as cnn.normalization = "mean,deviation" (per channel: "m0 m1 m2,d0 d1 d2"). The
// file is written like a model file: to a temporary file, then renamed over the target.
//
// Import walks the file's graph against the network's structure, layer by layer from the
// input, and accepts what PyTorch 1.13 writes for each layer: Gemm, or MatMul then Add, for
// a dense layer; Flatten, or Reshape to N x features (a constant shape, or one computed from
// Shape, Gather, Unsqueeze and Concat); batch normalisation kept as a node or folded into the
// convolution before it (an eval-mode export: the convolution then takes the folded weights,
// and the batch normalisation becomes the identity plus the folded bias); Identity nodes that
// alias initialisers; Dropout nodes. Every attribute and initialiser shape is checked; the first
// mismatch is a cnn::onnx_error naming the file, the node and what differs:
//
//   model.onnx: node 4 '/3/Conv' (Conv): 16 output channels in the file, layer 3 > body > layer 0 has 32
//
// The network changes only when the whole file matched.
#pragma once

#if !defined(CNN_WITH_ONNX)
#error "cnn/onnx.hpp needs ONNX's protobuf classes: link the CMake target cnn::onnx (Debian: libonnx-dev libprotobuf-dev)"
#else

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <iomanip>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <onnx/onnx_pb.h>

#include "cnn/data/dataset.hpp"
#include "cnn/error.hpp"
#include "cnn/graph/parallel.hpp"
#include "cnn/graph/residual.hpp"
#include "cnn/io/file.hpp"
#include "cnn/io/model.hpp"
#include "cnn/layer.hpp"
#include "cnn/version.hpp"

namespace cnn {

/// An ONNX file that cannot be written or read into a network: the message names the file,
/// and the node and layer where they differ. A model_error, so code that handles unreadable
/// model files handles these too.
struct onnx_error : model_error {
    using model_error::model_error;
};

/// The opsets save_onnx writes and load_onnx reads (the default domain's version).
inline constexpr std::int64_t onnx_min_opset = 13;
inline constexpr std::int64_t onnx_max_opset = 17;
/// The largest ONNX file load_onnx reads: protobuf's own limit.
inline constexpr std::uint64_t max_onnx_file_size = (std::uint64_t{1} << 31) - 1;

struct OnnxOptions {
    std::int64_t opset = 13;  ///< onnx_min_opset to onnx_max_opset
    /// Written as the metadata cnn.normalization, which load_onnx returns.
    std::optional<Normalization> normalization = std::nullopt;
    /// More metadata_props (key, value), e.g. class names.
    std::vector<std::pair<std::string, std::string>> metadata = {};
};

/// What load_onnx found in a file besides the weights.
struct OnnxInfo {
    std::size_t channels = 0, rows = 0, cols = 0;  ///< the input of one sample
    std::size_t outputs = 0;  ///< values per sample in the output (classes); 0: not fixed in the file
    std::int64_t opset = 0;
    std::string producer;                          ///< producer_name ("pytorch", "cnn")
    std::map<std::string, std::string> metadata;   ///< metadata_props
    /// From cnn.normalization; a file without it (PyTorch's) gets none: pixels in [0, 1].
    std::optional<Normalization> normalization;
};

/// cnn.normalization's text for `normalization`: "mean,deviation", or per channel
/// "m0 m1 m2,d0 d1 d2".
inline std::string onnx_normalization_text(const Normalization& normalization) {
    std::ostringstream out;
    out << std::setprecision(17);
    const auto list = [&](const std::vector<double>& values, double single) {
        if (values.empty()) {
            out << single;
            return;
        }
        for (std::size_t c = 0; c < values.size(); ++c) out << (c ? " " : "") << values[c];
    };
    list(normalization.means, normalization.mean);
    out << ",";
    list(normalization.deviations, normalization.deviation);
    return out.str();
}

/// The Normalization that cnn.normalization's `text` describes; throws onnx_error (naming
/// `name`) when it is not two lists of numbers of one length with deviations above 0.
inline Normalization parse_onnx_normalization(const std::string& text, const std::string& name) {
    const auto fail = [&] {
        return onnx_error(name + ": metadata cnn.normalization is \"" + text +
                          "\"; expected \"mean,deviation\" or per channel \"m0 m1 m2,d0 d1 d2\"");
    };
    const std::size_t comma = text.find(',');
    if (comma == std::string::npos || text.find(',', comma + 1) != std::string::npos) throw fail();
    const auto numbers = [&](const std::string& part) {
        std::istringstream in(part);
        in.imbue(std::locale::classic());
        std::vector<double> values;
        double value;
        while (in >> value) values.push_back(value);
        if (!in.eof() || values.empty()) throw fail();
        return values;
    };
    const std::vector<double> means = numbers(text.substr(0, comma)), deviations = numbers(text.substr(comma + 1));
    if (means.size() != deviations.size()) throw fail();
    Normalization result;
    if (means.size() == 1) {
        result.mean = means[0];
        result.deviation = deviations[0];
    } else {
        result.means = means;
        result.deviations = deviations;
        result.mean = means[0];
        result.deviation = deviations[0];
    }
    try {
        result.check();
    } catch (const parameter_error& e) {
        throw onnx_error(name + ": metadata cnn.normalization: " + e.what());
    }
    return result;
}

namespace detail::onnx {

// ---------------------------------------------------------------------------------------
// The network as a tree of parts: what export and import walk.

template <class L>
struct ResidualTraits : std::false_type {};
template <class B, class S>
struct ResidualTraits<Residual<B, S>> : std::true_type {
    static constexpr bool identity = Residual<B, S>::identity_shortcut;
};
template <class L>
struct ParallelTraits : std::false_type {};
template <class Merge, class... B>
struct ParallelTraits<Parallel<Merge, B...>> : std::true_type {
    static constexpr bool concat = std::is_same_v<Merge, Concat>;
};

enum class PartKind { leaf, chain, residual, add, concat };

struct Part {
    PartKind kind = PartKind::leaf;
    std::string path;  ///< for messages: "layer 3 > body > layer 0"
    std::string name;  ///< for the file: "/3/body/0"
    LayerRecord record;
    std::string description;
    std::size_t offset = 0, count = 0;  ///< a leaf's parameters in the network's flat vector
    bool identity_shortcut = false;
    std::function<Shape<4>(const Shape<4>&)> output_shape;
    std::vector<Part> children;

    [[nodiscard]] std::string where() const { return path + " (" + description + ")"; }
};

inline std::string join(const std::string& parent, const std::string& step, const char* separator) {
    return parent.empty() ? step : parent + separator + step;
}

template <class L>
Part build(const L& layer, std::size_t& offset, const std::string& path, const std::string& name) {
    Part part;
    part.path = path.empty() ? "the network" : path;
    part.name = name;
    part.description = layer.describe();
    part.output_shape = [&layer](const Shape<4>& in) { return layer.output_shape(in); };
    const auto child = [&](const std::string& step, const std::string& name_step, const auto& inner) {
        part.children.push_back(build(inner, offset, join(path, step, " > "), name + "/" + name_step));
    };
    if constexpr (ResidualTraits<L>::value) {
        part.kind = PartKind::residual;
        part.identity_shortcut = ResidualTraits<L>::identity;
        child("body", "body", layer.body());
        child("shortcut", "shortcut", layer.shortcut());
    } else if constexpr (ParallelTraits<L>::value) {
        part.kind = ParallelTraits<L>::concat ? PartKind::concat : PartKind::add;
        layer.for_each_layer([&](std::size_t j, const auto& branch) {
            child("branch " + std::to_string(j), std::to_string(j), branch);
        });
    } else if constexpr (Composite<L>) {
        part.kind = PartKind::chain;
        layer.for_each_layer([&](std::size_t i, const auto& inner) {
            child("layer " + std::to_string(i), std::to_string(i), inner);
        });
    } else {
        part.record = detail::record(layer);
        part.offset = offset;
        part.count = layer.parameters().size();
        offset += part.count;
    }
    return part;
}

template <class Net>
Part build(const Net& net) {
    std::size_t offset = 0;
    return build(net, offset, "", "");
}

/// An attribute of a leaf's record, or `fallback` when the record leaves it out.
inline std::int64_t integer(const LayerRecord& record, const std::string& key, std::int64_t fallback) {
    for (const auto& [name, value] : record.attributes)
        if (name == key) return std::holds_alternative<std::int64_t>(value) ? std::get<std::int64_t>(value)
                                                                             : static_cast<std::int64_t>(std::get<double>(value));
    return fallback;
}
inline double real(const LayerRecord& record, const std::string& key, double fallback) {
    for (const auto& [name, value] : record.attributes)
        if (name == key) return std::holds_alternative<double>(value) ? std::get<double>(value)
                                                                      : static_cast<double>(std::get<std::int64_t>(value));
    return fallback;
}

/// A convolution's hyper-parameters, from its record.
struct ConvGeometry {
    std::int64_t channels, filters, kh, kw, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups;
    bool bias;
    explicit ConvGeometry(const LayerRecord& r)
        : channels(integer(r, "in_channels", 0)),
          filters(integer(r, "filters", 0)),
          kh(integer(r, "kernel_height", 0)),
          kw(integer(r, "kernel_width", 0)),
          stride_h(integer(r, "stride", 1)),
          stride_w(integer(r, "stride_width", stride_h)),
          pad_h(integer(r, "padding", 0)),
          pad_w(integer(r, "padding_width", pad_h)),
          dilation_h(integer(r, "dilation", 1)),
          dilation_w(integer(r, "dilation_width", dilation_h)),
          groups(integer(r, "groups", 1)),
          bias(integer(r, "bias", 1) != 0) {}
    [[nodiscard]] std::size_t weight_count() const {
        return static_cast<std::size_t>(filters * (channels / groups) * kh * kw);
    }
};

struct PoolGeometry {
    std::int64_t kh, kw, stride, pad_h, pad_w;
    bool count_padding;
    explicit PoolGeometry(const LayerRecord& r)
        : kh(integer(r, "window_height", 1)),
          kw(integer(r, "window_width", 1)),
          stride(integer(r, "stride", 1)),
          pad_h(integer(r, "padding", 0)),
          pad_w(integer(r, "padding_width", pad_h)),
          count_padding(integer(r, "count_padding", 1) != 0) {}
};

inline constexpr double gelu_sqrt2 = 1.4142135623730951;         // sqrt(2)
inline constexpr double gelu_sqrt2_over_pi = 0.7978845608028654;  // sqrt(2 / pi)
inline constexpr double gelu_cubic = 0.044715;

template <class T>
constexpr int element_type() {
    return std::is_same_v<T, double> ? ::onnx::TensorProto::DOUBLE : ::onnx::TensorProto::FLOAT;
}

// ---------------------------------------------------------------------------------------
// Export.

/// A value flowing through the graph: its name, our 4-D shape, and its rank in the file
/// (4, or 2 after Flatten and Gemm).
struct Value {
    std::string name;
    Shape<4> shape{};
    int rank = 4;
};

template <class T>
class Exporter {
public:
    Exporter(::onnx::GraphProto& graph, const std::vector<T>& parameters) : graph_(graph), parameters_(parameters) {}

    Value part(const Part& p, const Value& in) {
        switch (p.kind) {
            case PartKind::chain: {
                Value value = in;
                for (const Part& child : p.children) value = part(child, value);
                return value;
            }
            case PartKind::residual: {
                const Value body = part(p.children[0], in);
                const Value shortcut = p.identity_shortcut ? in : part(p.children[1], in);
                return merge(p, "Add", {body, shortcut});
            }
            case PartKind::add:
            case PartKind::concat: {
                std::vector<Value> branches;
                for (const Part& child : p.children) branches.push_back(part(child, in));
                if (p.kind == PartKind::concat) return merge(p, "Concat", branches);
                Value sum = branches[0];
                for (std::size_t j = 1; j < branches.size(); ++j) sum = merge(p, "Add", {sum, branches[j]}, j);
                return sum;
            }
            case PartKind::leaf:
                return leaf(p, in);
        }
        return in;
    }

private:
    ::onnx::NodeProto& node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs,
                           const std::string& output) {
        ::onnx::NodeProto& n = *graph_.add_node();
        n.set_op_type(op);
        n.set_name(name);
        for (const auto& input : inputs) n.add_input(input);
        n.add_output(output);
        return n;
    }
    static void ints(::onnx::NodeProto& n, const char* name, std::initializer_list<std::int64_t> values) {
        auto& a = *n.add_attribute();
        a.set_name(name);
        a.set_type(::onnx::AttributeProto::INTS);
        for (auto v : values) a.add_ints(v);
    }
    static void integer_attribute(::onnx::NodeProto& n, const char* name, std::int64_t value) {
        auto& a = *n.add_attribute();
        a.set_name(name);
        a.set_type(::onnx::AttributeProto::INT);
        a.set_i(value);
    }
    static void float_attribute(::onnx::NodeProto& n, const char* name, double value) {
        auto& a = *n.add_attribute();
        a.set_name(name);
        a.set_type(::onnx::AttributeProto::FLOAT);
        a.set_f(static_cast<float>(value));
    }
    /// An initialiser of `values` (the network's own, or constants), of the network's type.
    std::string initializer(const std::string& name, std::initializer_list<std::int64_t> dims, const T* values) {
        auto& t = *graph_.add_initializer();
        t.set_name(name);
        t.set_data_type(element_type<T>());
        std::size_t count = 1;
        for (auto d : dims) {
            t.add_dims(d);
            count *= static_cast<std::size_t>(d);
        }
        t.set_raw_data(std::string(reinterpret_cast<const char*>(values), count * sizeof(T)));
        return name;
    }
    std::string scalar(const std::string& name, double value) {
        const T v = static_cast<T>(value);
        return initializer(name, {}, &v);
    }
    std::string output_of(const std::string& name, const std::string& op) { return name + "/" + op + "_output"; }

    /// The value as N x C x H x W (a Reshape when it is N x features).
    Value four(const Part& p, const Value& in) {
        if (in.rank == 4) return in;
        const std::string name = p.name + "/unflatten" + (unflattened_ ? "_" + std::to_string(unflattened_) : "");
        ++unflattened_;
        auto& t = *graph_.add_initializer();
        t.set_name(name + ".shape");
        t.set_data_type(::onnx::TensorProto::INT64);
        t.add_dims(4);
        for (std::int64_t d : {std::int64_t{-1}, std::int64_t(in.shape[1]), std::int64_t(in.shape[2]),
                               std::int64_t(in.shape[3])})
            t.add_int64_data(d);
        const std::string out = output_of(name, "Reshape");
        node("Reshape", name, {in.name, t.name()}, out);
        return {out, in.shape, 4};
    }
    Value two(const Part& p, const Value& in) {
        if (in.rank == 2) return in;
        const std::string out = output_of(p.name + "/flatten", "Flatten");
        integer_attribute(node("Flatten", p.name + "/flatten", {in.name}, out), "axis", 1);
        return {out, in.shape, 2};
    }

    Value merge(const Part& p, const char* op, std::vector<Value> inputs, std::size_t step = 0) {
        // Inputs of different ranks (a rare branch that flattens) meet as N x C x H x W.
        const bool mixed = std::any_of(inputs.begin(), inputs.end(), [&](const Value& v) { return v.rank != inputs[0].rank; });
        std::vector<std::string> names;
        for (Value& v : inputs) {
            if (mixed) v = four(p, v);
            names.push_back(v.name);
        }
        const std::string name = p.name + "/" + op + (step > 1 ? "_" + std::to_string(step) : "");
        const std::string out = output_of(name, op);
        auto& n = node(op, name, names, out);
        Value result = inputs[0];
        if (std::string_view(op) == "Concat") {
            integer_attribute(n, "axis", 1);
            for (std::size_t j = 1; j < inputs.size(); ++j) result.shape[1] += inputs[j].shape[1];
        }
        result.name = out;
        return result;
    }

    Value leaf(const Part& p, const Value& in) {
        const LayerRecord& r = p.record;
        const std::string& kind = r.kind;
        const T* values = parameters_.data() + p.offset;
        Shape<4> shape = p.output_shape(in.shape);
        const auto simple = [&](const char* op, const Value& from) {
            const std::string out = output_of(p.name, op);
            auto& n = node(op, p.name + "/" + op, {from.name}, out);
            return std::pair<::onnx::NodeProto*, Value>{&n, Value{out, shape, from.rank}};
        };
        if (kind == "Conv2D") {
            const ConvGeometry g(r);
            const Value x = four(p, in);
            std::vector<std::string> inputs{x.name, initializer(p.name + ".weight", {g.filters, g.channels / g.groups, g.kh, g.kw}, values)};
            if (g.bias) inputs.push_back(initializer(p.name + ".bias", {g.filters}, values + g.weight_count()));
            const std::string out = output_of(p.name, "Conv");
            auto& n = node("Conv", p.name + "/Conv", inputs, out);
            ints(n, "kernel_shape", {g.kh, g.kw});
            ints(n, "strides", {g.stride_h, g.stride_w});
            ints(n, "pads", {g.pad_h, g.pad_w, g.pad_h, g.pad_w});
            ints(n, "dilations", {g.dilation_h, g.dilation_w});
            integer_attribute(n, "group", g.groups);
            return {out, shape, 4};
        }
        if (kind == "Dense") {
            const auto in_features = integer(r, "in_features", 0), out_features = integer(r, "out_features", 0);
            const Value x = two(p, in);
            const std::string out = output_of(p.name, "Gemm");
            auto& n = node("Gemm", p.name + "/Gemm",
                           {x.name, initializer(p.name + ".weight", {out_features, in_features}, values),
                            initializer(p.name + ".bias", {out_features}, values + out_features * in_features)},
                           out);
            float_attribute(n, "alpha", 1.0);
            float_attribute(n, "beta", 1.0);
            integer_attribute(n, "transB", 1);
            return {out, shape, 2};
        }
        if (kind == "BatchNorm2D") {
            const auto c = integer(r, "channels", 0);
            const std::string out = output_of(p.name, "BatchNormalization");
            auto& n = node("BatchNormalization", p.name + "/BatchNormalization",
                           {in.name, initializer(p.name + ".weight", {c}, values), initializer(p.name + ".bias", {c}, values + c),
                            initializer(p.name + ".running_mean", {c}, values + 2 * c),
                            initializer(p.name + ".running_var", {c}, values + 3 * c)},
                           out);
            float_attribute(n, "epsilon", real(r, "epsilon", 1e-5));
            float_attribute(n, "momentum", 1.0 - real(r, "momentum", 0.1));
            return {out, shape, in.rank};
        }
        if (kind == "MaxPool" || kind == "MeanPool") {
            const PoolGeometry g(r);
            const bool max = kind == "MaxPool";
            const char* op = max ? "MaxPool" : "AveragePool";
            auto [n, out] = simple(op, four(p, in));
            ints(*n, "kernel_shape", {g.kh, g.kw});
            ints(*n, "strides", {g.stride, g.stride});
            ints(*n, "pads", {g.pad_h, g.pad_w, g.pad_h, g.pad_w});
            if (!max) integer_attribute(*n, "count_include_pad", g.count_padding ? 1 : 0);
            out.rank = 4;
            return out;
        }
        if (kind == "GlobalAvgPool") {
            auto [n, out] = simple("GlobalAveragePool", four(p, in));
            out.rank = 4;
            return out;
        }
        if (kind == "Flatten") {
            auto [n, out] = simple("Flatten", in);
            integer_attribute(*n, "axis", 1);
            out.rank = 2;
            return out;
        }
        if (kind == "ReLU") return simple("Relu", in).second;
        if (kind == "Sigmoid") return simple("Sigmoid", in).second;
        if (kind == "Tanh") return simple("Tanh", in).second;
        if (kind == "LeakyReLU") {
            auto [n, out] = simple("LeakyRelu", in);
            float_attribute(*n, "alpha", real(r, "slope", 0.01));
            return out;
        }
        if (kind == "ELU") {
            auto [n, out] = simple("Elu", in);
            float_attribute(*n, "alpha", real(r, "alpha", 1.0));
            return out;
        }
        if (kind == "Softmax") {
            auto [n, out] = simple("Softmax", in);
            integer_attribute(*n, "axis", 1);
            return out;
        }
        if (kind == "GELU") return gelu(p, in, shape, integer(r, "tanh_approximation", 0) != 0);
        if (kind == "Dropout" || kind == "Identity") return in;
        throw onnx_error(p.where() + ": a " + kind + " layer has no ONNX form in this library");
    }

    /// GELU from ONNX operators (opsets 13 to 17 have no Gelu), as PyTorch writes the exact form.
    Value gelu(const Part& p, const Value& in, const Shape<4>& shape, bool tanh_form) {
        std::string at = in.name;
        int step = 0;
        const auto op = [&](const char* type, const std::vector<std::string>& inputs) {
            const std::string name = p.name + "/" + type + "_" + std::to_string(step++);
            const std::string out = output_of(name, type);
            node(type, name, inputs, out);
            at = out;
        };
        const auto constant = [&](const char* what, double value) { return scalar(p.name + "." + what, value); };
        if (tanh_form) {
            op("Mul", {in.name, in.name});
            op("Mul", {at, in.name});
            op("Mul", {at, constant("cubic", gelu_cubic)});
            op("Add", {in.name, at});
            op("Mul", {at, constant("sqrt_2_over_pi", gelu_sqrt2_over_pi)});
            op("Tanh", {at});
        } else {
            op("Div", {in.name, constant("sqrt_2", gelu_sqrt2)});
            op("Erf", {at});
        }
        op("Add", {at, constant("one", 1.0)});
        op("Mul", {in.name, at});
        op("Mul", {at, constant("half", 0.5)});
        return {at, shape, in.rank};
    }

    ::onnx::GraphProto& graph_;
    const std::vector<T>& parameters_;
    std::size_t unflattened_ = 0;  ///< Reshapes back to N x C x H x W so far (their names)
};

inline void describe_value(::onnx::ValueInfoProto& info, const std::string& name, int element, const Value& value) {
    info.set_name(name);
    auto& tensor = *info.mutable_type()->mutable_tensor_type();
    tensor.set_elem_type(element);
    auto& shape = *tensor.mutable_shape();
    shape.add_dim()->set_dim_param("batch");
    if (value.rank == 2) {
        shape.add_dim()->set_dim_value(static_cast<std::int64_t>(value.shape[1] * value.shape[2] * value.shape[3]));
    } else {
        for (std::size_t d = 1; d < 4; ++d) shape.add_dim()->set_dim_value(static_cast<std::int64_t>(value.shape[d]));
    }
}

/// The IR version that goes with an opset (ONNX's table: opset 13 and 14 are IR 7, 15 to 17 IR 8).
inline std::int64_t ir_version(std::int64_t opset) { return opset <= 14 ? 7 : 8; }

}  // namespace detail::onnx

/// The ONNX model of `net` for inputs of one sample `input` (channels, rows, cols); see the
/// top of this file. Throws onnx_error for a layer that has no ONNX form, shape_error when the
/// network cannot take `input`, parameter_error for an opset outside 13 to 17.
template <class Net>
::onnx::ModelProto to_onnx(const Net& net, const Shape<3>& input, const OnnxOptions& options = {}) {
    using T = typename Net::value_type;
    namespace ox = detail::onnx;
    if (options.opset < onnx_min_opset || options.opset > onnx_max_opset)
        throw parameter_error("save_onnx: opset " + std::to_string(options.opset) + " is not one this library writes (" +
                              std::to_string(onnx_min_opset) + " to " + std::to_string(onnx_max_opset) + ")");
    const Shape<4> in{1, input[0], input[1], input[2]};
    (void)net.output_shape(in);  // a shape_error naming the layer, before anything is written
    const ox::Part root = ox::build(net);
    const std::vector<T> parameters = detail::gather_parameters(net);

    ::onnx::ModelProto model;
    model.set_ir_version(ox::ir_version(options.opset));
    model.set_producer_name("cnn");
    model.set_producer_version(CNN_VERSION_STRING);
    auto& opset = *model.add_opset_import();
    opset.set_domain("");
    opset.set_version(options.opset);
    auto& graph = *model.mutable_graph();
    graph.set_name("cnn");
    ox::Exporter<T> exporter(graph, parameters);
    const ox::Value x{"input", in, 4};
    ox::Value y = exporter.part(root, x);
    if (y.name == x.name) {  // a network of identities: the output must still be a node's
        auto& n = *graph.add_node();
        n.set_op_type("Identity");
        n.set_name("/Identity");
        n.add_input(x.name);
        n.add_output("output");
        y.name = "output";
    } else {
        // The last node's output is the graph's "output".
        for (auto& n : *graph.mutable_node())
            for (auto& name : *n.mutable_input())
                if (name == y.name) name = "output";
        for (auto& n : *graph.mutable_node())
            for (auto& name : *n.mutable_output())
                if (name == y.name) name = "output";
        y.name = "output";
    }
    ox::describe_value(*graph.add_input(), "input", ox::element_type<T>(), x);
    ox::describe_value(*graph.add_output(), "output", ox::element_type<T>(), y);
    if (options.normalization) {
        auto& p = *model.add_metadata_props();
        p.set_key("cnn.normalization");
        p.set_value(onnx_normalization_text(*options.normalization));
    }
    for (const auto& [key, value] : options.metadata) {
        if (key == "cnn.normalization")
            throw parameter_error("save_onnx: metadata key cnn.normalization is written from options.normalization");
        auto& p = *model.add_metadata_props();
        p.set_key(key);
        p.set_value(value);
    }
    return model;
}

/// Writes `net` to the ONNX file `path` (see to_onnx) through a temporary file and a rename,
/// so that a crash leaves the old file or the new one.
template <class Net>
void save_onnx(const Net& net, const std::filesystem::path& path, const Shape<3>& input, const OnnxOptions& options = {}) {
    const ::onnx::ModelProto model = to_onnx(net, input, options);
    std::string bytes;
    if (!model.SerializeToString(&bytes))
        throw onnx_error(path.string() + ": the model is larger than protobuf writes (2 GiB)");
    write_file_atomically<onnx_error>(path, std::string_view(bytes));
}

}  // namespace cnn

#include "cnn/onnx_import.hpp"

#endif  // CNN_WITH_ONNX
