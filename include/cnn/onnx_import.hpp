// load_onnx: an ONNX file's weights into a network of the same structure (see cnn/onnx.hpp,
// which includes this file; include that one).
#pragma once

#include "cnn/onnx.hpp"

#if defined(CNN_WITH_ONNX)

namespace cnn {

namespace detail::onnx {

/// A difference found while the file is walked against the network; `progress` counts the
/// layers matched before it, so that of several ways tried the one that got furthest speaks.
struct Mismatch {
    std::string message;
    std::size_t progress;
};

inline std::string dims_text(const std::vector<std::int64_t>& dims) {
    std::string text = "[";
    for (std::size_t i = 0; i < dims.size(); ++i) text += (i ? ", " : "") + std::to_string(dims[i]);
    return text + "]";
}

/// The operators the reader knows; any other is refused up front.
inline bool known_operator(const std::string& op) {
    static const std::set<std::string> known{
        "Conv",    "Gemm",     "MatMul",  "Add",   "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
        "Flatten", "Reshape",  "Relu",    "Sigmoid", "Tanh",             "LeakyRelu", "Elu",       "Softmax",
        "Dropout", "Identity", "Concat",  "Div",   "Erf",                "Mul",     "Shape",       "Gather",
        "Unsqueeze", "Squeeze", "Cast",   "Constant", "Pad"};
    return known.contains(op);
}

template <class T>
class Importer {
public:
    using Next = std::function<void(const Value&)>;

    Importer(const ::onnx::GraphProto& graph, std::vector<T>& parameters) : g_(graph), parameters_(parameters) {}

    /// Checks the graph as a graph (inputs, outputs, producers, cycles, operators) and returns
    /// the data input.
    Value prepare(const Shape<4>& input_shape) {
        std::set<std::string> initializers;
        for (const auto& t : g_.initializer()) {
            if (!initializers.insert(t.name()).second) fail("initializer '" + t.name() + "' is defined twice");
            constants_[t.name()] = &t;
        }
        std::vector<std::string> inputs;
        for (const auto& i : g_.input())
            if (!initializers.contains(i.name())) inputs.push_back(i.name());
        input_ = inputs[0];
        std::set<std::string> known(initializers);
        known.insert(input_);
        const int n = g_.node_size();
        for (int i = 0; i < n; ++i) {
            const auto& node = g_.node(i);
            if (!node.domain().empty() && node.domain() != "ai.onnx")
                fail(label(i) + ": operator domain '" + node.domain() + "' is not one this library reads");
            if (!known_operator(node.op_type()))
                fail(label(i) + ": the operator " + node.op_type() + " is not one this library reads");
            for (const auto& out : node.output()) {
                if (out.empty()) continue;
                if (!known.insert(out).second) fail(label(i) + ": its output '" + out + "' is produced twice");
                producer_[out] = i;
            }
        }
        // Every input is produced by something, and the nodes form no cycle (Kahn's algorithm).
        std::vector<int> waiting(static_cast<std::size_t>(n), 0);
        std::map<std::string, std::vector<int>> readers;
        for (int i = 0; i < n; ++i)
            for (const auto& in : g_.node(i).input()) {
                if (in.empty()) continue;
                if (!known.contains(in))
                    fail(label(i) + ": its input '" + in + "' is produced by no node, initializer or graph input");
                if (producer_.contains(in)) {
                    ++waiting[static_cast<std::size_t>(i)];
                    readers[in].push_back(i);
                }
            }
        std::vector<int> ready, order;
        for (int i = 0; i < n; ++i)
            if (waiting[static_cast<std::size_t>(i)] == 0) ready.push_back(i);
        while (!ready.empty()) {
            const int i = ready.back();
            ready.pop_back();
            order.push_back(i);
            for (const auto& out : g_.node(i).output())
                for (int reader : readers[out])
                    if (--waiting[static_cast<std::size_t>(reader)] == 0) ready.push_back(reader);
        }
        if (order.size() != static_cast<std::size_t>(n)) {
            for (int i = 0; i < n; ++i)
                if (waiting[static_cast<std::size_t>(i)] != 0)
                    fail(label(i) + ": is part of a cycle (its inputs depend on its own output)");
        }
        for (const auto& out : g_.output())
            if (!known.contains(out.name())) fail("the graph's output '" + out.name() + "' is produced by nothing");
        // Constants, and Identity nodes that alias them (PyTorch shares equal initialisers so).
        claimed_.assign(static_cast<std::size_t>(n), 0);
        for (int i : order) {  // in topological order, so that an alias of an alias resolves
            const auto& node = g_.node(i);
            if (node.op_type() == "Constant") {
                constant_node(i);
                claimed_[static_cast<std::size_t>(i)] = 1;
            } else if (node.op_type() == "Identity" && node.input_size() == 1 && constants_.contains(node.input(0))) {
                if (node.output_size() >= 1) constants_[node.output(0)] = constants_[node.input(0)];
                claimed_[static_cast<std::size_t>(i)] = 1;
            }
        }
        for (int i = 0; i < n; ++i) {
            if (claimed_[static_cast<std::size_t>(i)]) continue;
            std::set<std::string> seen;
            for (const auto& in : g_.node(i).input())
                if (!in.empty() && seen.insert(in).second) consumers_[in].push_back(i);
        }
        const Value input{input_, input_shape, 4};
        values_[input_] = input;
        return input;
    }

    /// Walks `root` from `input`; on success every node of the file is claimed and the
    /// parameters are written.
    void run(const Part& root, const Value& input) {
        bool done = false;
        walk(root, input, [&](const Value& out) {
            const std::string& output = g_.output(0).name();
            if (out.name != output)
                throw Mismatch{"the network ends at '" + out.name + "', the file's output is '" + output + "'" +
                                   consumers_text(out.name),
                               progress_};
            for (int i = 0; i < g_.node_size(); ++i)
                if (!claimed_[static_cast<std::size_t>(i)])
                    throw Mismatch{label(i) + ": the network has no layer for it (every layer matched a node before it)",
                                   progress_};
            done = true;
        });
        if (!done) throw Mismatch{"the walk ended early", progress_};
    }

private:
    [[noreturn]] void fail(const std::string& message) const { throw Mismatch{message, progress_}; }
    [[noreturn]] void fail(int node, const std::string& message) const { throw Mismatch{label(node) + ": " + message, progress_}; }

    [[nodiscard]] std::string label(int i) const {
        const auto& node = g_.node(i);
        return "node " + std::to_string(i) + " '" + node.name() + "' (" + node.op_type() + ")";
    }

    /// What reads `name` in the file, for messages.
    std::string consumers_text(const std::string& name) const {
        std::string text;
        const auto it = consumers_.find(name);
        if (it != consumers_.end())
            for (int i : it->second)
                if (!claimed_[static_cast<std::size_t>(i)]) text += (text.empty() ? "" : ", ") + label(i);
        return text.empty() ? "; nothing in the file reads it" : "; the file has " + text + " reading it";
    }

    // ----- tensors and attributes

    void constant_node(int i) {
        const auto& node = g_.node(i);
        if (node.output_size() != 1 || node.attribute_size() != 1)
            fail(i, "a Constant needs one output and one attribute");
        const auto& a = node.attribute(0);
        ::onnx::TensorProto& t = made_.emplace_back();
        if (a.name() == "value" && a.has_t()) {
            t = a.t();
        } else if (a.name() == "value_float") {
            t.set_data_type(::onnx::TensorProto::FLOAT);
            t.add_float_data(a.f());
        } else if (a.name() == "value_floats") {
            t.set_data_type(::onnx::TensorProto::FLOAT);
            t.add_dims(a.floats_size());
            for (float f : a.floats()) t.add_float_data(f);
        } else if (a.name() == "value_int") {
            t.set_data_type(::onnx::TensorProto::INT64);
            t.add_int64_data(a.i());
        } else if (a.name() == "value_ints") {
            t.set_data_type(::onnx::TensorProto::INT64);
            t.add_dims(a.ints_size());
            for (auto v : a.ints()) t.add_int64_data(v);
        } else {
            fail(i, "a Constant with attribute '" + a.name() + "' is not one this library reads");
        }
        constants_[node.output(0)] = &t;
    }

    /// The values of the constant `name` as doubles (float, double, int32 and int64 tensors).
    std::vector<double> numbers(int node, const std::string& name, const char* what) const {
        const auto it = constants_.find(name);
        if (it == constants_.end()) fail(node, std::string("its ") + what + " '" + name + "' is not a constant (an initializer)");
        const ::onnx::TensorProto& t = *it->second;
        if (t.data_location() == ::onnx::TensorProto::EXTERNAL)
            fail(node, std::string("its ") + what + " '" + name + "' is stored in an external file, which this library does not read");
        std::size_t count = 1;
        for (auto d : t.dims()) {
            if (d < 0 || d > (std::int64_t{1} << 31) || count * static_cast<std::size_t>(d) > (std::size_t{1} << 31))
                fail(node, std::string("its ") + what + " '" + name + "' has dimensions " +
                               dims_text({t.dims().begin(), t.dims().end()}) + ", which no tensor has");
            count *= static_cast<std::size_t>(d);
        }
        std::vector<double> values;
        const auto from_raw = [&](auto zero) {
            using V = decltype(zero);
            if (t.raw_data().size() != count * sizeof(V)) return false;
            values.resize(count);
            for (std::size_t k = 0; k < count; ++k) {
                V v;
                std::memcpy(&v, t.raw_data().data() + k * sizeof(V), sizeof(V));
                values[k] = static_cast<double>(v);
            }
            return true;
        };
        const auto from_field = [&](const auto& field) {
            if (static_cast<std::size_t>(field.size()) != count) return false;
            values.assign(field.begin(), field.end());
            return true;
        };
        bool ok = false;
        switch (t.data_type()) {
            case ::onnx::TensorProto::FLOAT: ok = t.has_raw_data() ? from_raw(float{}) : from_field(t.float_data()); break;
            case ::onnx::TensorProto::DOUBLE: ok = t.has_raw_data() ? from_raw(double{}) : from_field(t.double_data()); break;
            case ::onnx::TensorProto::INT64: ok = t.has_raw_data() ? from_raw(std::int64_t{}) : from_field(t.int64_data()); break;
            case ::onnx::TensorProto::INT32: ok = t.has_raw_data() ? from_raw(std::int32_t{}) : from_field(t.int32_data()); break;
            default:
                fail(node, std::string("its ") + what + " '" + name + "' has element type " + std::to_string(t.data_type()) +
                               "; this library reads float, double, int32 and int64 tensors");
        }
        if (!ok)
            fail(node, std::string("its ") + what + " '" + name + "' has dimensions " +
                           dims_text({t.dims().begin(), t.dims().end()}) + " but not as many values stored");
        return values;
    }

    std::vector<std::int64_t> dims(const std::string& name) const {
        const ::onnx::TensorProto& t = *constants_.at(name);
        return {t.dims().begin(), t.dims().end()};
    }

    /// A constant with the dimensions `expected`, as values.
    std::vector<double> weights(int node, int input, const std::vector<std::int64_t>& expected, const Part& p,
                                const char* what) const {
        const auto& n = g_.node(node);
        if (input >= n.input_size() || n.input(input).empty()) fail(node, std::string("has no ") + what);
        const std::vector<double> values = numbers(node, n.input(input), what);
        const auto actual = dims(n.input(input));
        if (actual != expected)
            fail(node, std::string("its ") + what + " '" + n.input(input) + "' is " + dims_text(actual) + " in the file, " +
                           p.where() + " needs " + dims_text(expected));
        return values;
    }

    const ::onnx::AttributeProto* attribute(int node, const char* name) const {
        for (const auto& a : g_.node(node).attribute())
            if (a.name() == name) return &a;
        return nullptr;
    }
    std::vector<std::int64_t> ints(int node, const char* name, std::vector<std::int64_t> fallback) const {
        const auto* a = attribute(node, name);
        if (!a) return fallback;
        if (a->type() != ::onnx::AttributeProto::INTS) fail(node, std::string("attribute ") + name + " is not a list of integers");
        return {a->ints().begin(), a->ints().end()};
    }
    std::int64_t integer(int node, const char* name, std::int64_t fallback) const {
        const auto* a = attribute(node, name);
        if (!a) return fallback;
        if (a->type() != ::onnx::AttributeProto::INT) fail(node, std::string("attribute ") + name + " is not an integer");
        return a->i();
    }
    double real(int node, const char* name, double fallback) const {
        const auto* a = attribute(node, name);
        if (!a) return fallback;
        if (a->type() != ::onnx::AttributeProto::FLOAT) fail(node, std::string("attribute ") + name + " is not a float");
        return a->f();
    }
    std::string text(int node, const char* name, const std::string& fallback) const {
        const auto* a = attribute(node, name);
        if (!a) return fallback;
        if (a->type() != ::onnx::AttributeProto::STRING) fail(node, std::string("attribute ") + name + " is not a string");
        return a->s();
    }
    /// The file's float attribute against our double, to the precision a float holds.
    void same_real(int node, const char* name, double file, double ours, const Part& p) const {
        if (!(std::abs(file - ours) <= 1e-6 * std::max(1.0, std::abs(ours)))) {
            std::ostringstream out;
            out << std::setprecision(9) << name << " " << file << " in the file, " << p.where() << " has " << ours;
            fail(node, out.str());
        }
    }
    void no_auto_pad(int node) const {
        const std::string pad = text(node, "auto_pad", "NOTSET");
        if (pad != "NOTSET") fail(node, "auto_pad " + pad + " is not read; export with explicit pads");
    }
    /// The node's outputs after the first are read by nothing (Dropout's mask, MaxPool's indices).
    void only_first_output(int node) const {
        const auto& n = g_.node(node);
        for (int k = 1; k < n.output_size(); ++k)
            if (!n.output(k).empty() && (consumers_.contains(n.output(k)) || n.output(k) == g_.output(0).name()))
                fail(node, "its output " + std::to_string(k) + " ('" + n.output(k) + "') is used; the network has no such value");
    }

    void write(const Part& p, std::size_t at, const std::vector<double>& values) {
        for (std::size_t k = 0; k < values.size(); ++k) parameters_[p.offset + at + k] = static_cast<T>(values[k]);
    }

    // ----- choosing nodes

    std::vector<int> readers(const Value& v, std::initializer_list<const char*> ops) const {
        std::vector<int> result;
        const auto it = consumers_.find(v.name);
        if (it == consumers_.end()) return result;
        for (int i : it->second) {
            if (claimed_[static_cast<std::size_t>(i)]) continue;
            const auto& node = g_.node(i);
            if (node.input_size() == 0 || node.input(0) != v.name) continue;
            for (const char* op : ops)
                if (node.op_type() == op) result.push_back(i);
        }
        return result;
    }

    /// Tries `attempt(node)` for each unclaimed node of one of `ops` reading `v`, undoing
    /// what a failed attempt claimed; throws the failure that got furthest.
    template <class Attempt>
    void choose(const Value& v, std::initializer_list<const char*> ops, const Part& p, Attempt&& attempt) {
        const std::vector<int> candidates = readers(v, ops);
        if (candidates.empty()) {
            std::string wanted;
            for (const char* op : ops) wanted += std::string(wanted.empty() ? "" : " or ") + op;
            fail(p.where() + " expects a " + wanted + " node reading '" + v.name + "'" + consumers_text(v.name));
        }
        std::optional<Mismatch> best;
        for (int node : candidates) {
            const auto claimed = claimed_;
            const auto values = values_;
            const std::size_t progress = progress_;
            try {
                claimed_[static_cast<std::size_t>(node)] = 1;
                attempt(node);
                return;
            } catch (Mismatch& m) {
                if (!best || m.progress > best->progress) best = std::move(m);
                claimed_ = claimed;
                values_ = values;
                progress_ = progress;
            }
        }
        throw *best;
    }

    Value produce(int node, const Shape<4>& shape, int rank) {
        const auto& n = g_.node(node);
        if (n.output_size() < 1 || n.output(0).empty()) fail(node, "has no output");
        Value v{n.output(0), shape, rank};
        values_[v.name] = v;
        return v;
    }

    Shape<4> output_shape(const Part& p, const Shape<4>& in) const {
        try {
            return p.output_shape(in);
        } catch (const shape_error& e) {
            fail(p.where() + " cannot take the file's input " + to_string(in) + ": " + e.what());
        }
    }

    // ----- the walk

    void walk(const Part& p, const Value& in, const Next& next) {
        switch (p.kind) {
            case PartKind::chain:
                return chain(p, 0, in, next);
            case PartKind::residual:
                return walk(p.children[0], in, [&, in](const Value& body) {
                    if (p.identity_shortcut) return merge(p, {body, in}, next);
                    walk(p.children[1], in, [&, body](const Value& shortcut) { merge(p, {body, shortcut}, next); });
                });
            case PartKind::add:
            case PartKind::concat:
                return branches(p, 0, in, {}, next);
            case PartKind::leaf:
                return leaf(p, in, next);
        }
    }

    void chain(const Part& p, std::size_t i, const Value& in, const Next& next) {
        if (i == p.children.size()) return next(in);
        const Part& child = p.children[i];
        if (child.kind == PartKind::leaf && child.record.kind == "Conv2D" && i + 1 < p.children.size() &&
            p.children[i + 1].kind == PartKind::leaf && p.children[i + 1].record.kind == "BatchNorm2D")
            return conv(child, &p.children[i + 1], in,
                        [&, i](const Value& out, bool folded) { chain(p, i + (folded ? 2 : 1), out, next); });
        walk(child, in, [&, i](const Value& out) { chain(p, i + 1, out, next); });
    }

    void branches(const Part& p, std::size_t j, const Value& in, std::vector<Value> outputs, const Next& next) {
        if (j == p.children.size()) return merge(p, outputs, next);
        walk(p.children[j], in, [&, j, outputs](const Value& out) mutable {
            outputs.push_back(out);
            branches(p, j + 1, in, outputs, next);
        });
    }

    /// The Add nodes (pairwise, in any order) or the Concat node that join `inputs`.
    void merge(const Part& p, std::vector<Value> inputs, const Next& next) {
        // Values of different ranks in the file meet as N x C x H x W (save_onnx reshapes them).
        const bool mixed = std::any_of(inputs.begin(), inputs.end(), [&](const Value& v) { return v.rank != inputs[0].rank; });
        for (std::size_t k = 0; mixed && k < inputs.size(); ++k)
            if (inputs[k].rank == 2)
                return unflatten(p, inputs[k], [&, k, inputs](const Value& lifted) mutable {
                    inputs[k] = lifted;
                    merge(p, inputs, next);
                });
        if (p.kind == PartKind::concat) {
            for (int i : readers(inputs[0], {"Concat"})) {
                const auto& n = g_.node(i);
                if (n.input_size() != static_cast<int>(inputs.size())) continue;
                bool same = true;
                for (std::size_t k = 0; k < inputs.size(); ++k) same = same && n.input(static_cast<int>(k)) == inputs[k].name;
                if (!same) continue;
                claimed_[static_cast<std::size_t>(i)] = 1;
                const std::int64_t axis = integer(i, "axis", 1);
                if (axis != 1 && axis != 1 - inputs[0].rank)
                    fail(i, "concatenates along axis " + std::to_string(axis) + "; " + p.where() + " stacks channels (axis 1)");
                Value out = inputs[0];
                for (std::size_t k = 1; k < inputs.size(); ++k) out.shape[1] += inputs[k].shape[1];
                ++progress_;
                return next(produce(i, out.shape, out.rank));
            }
            std::string names;
            for (const auto& v : inputs) names += (names.empty() ? "'" : ", '") + v.name + "'";
            fail(p.where() + " expects a Concat of " + names + " in this order" + consumers_text(inputs[0].name));
        }
        while (inputs.size() > 1) {
            int found = -1;
            std::size_t a = 0, b = 0;
            for (std::size_t x = 0; x < inputs.size() && found < 0; ++x)
                for (int i : consumers_of(inputs[x].name, "Add")) {
                    const auto& n = g_.node(i);
                    if (n.input_size() != 2) continue;
                    for (std::size_t y = 0; y < inputs.size(); ++y)
                        if (y != x && ((n.input(0) == inputs[x].name && n.input(1) == inputs[y].name) ||
                                       (n.input(1) == inputs[x].name && n.input(0) == inputs[y].name))) {
                            found = i;
                            a = x;
                            b = y;
                        }
                    if (found >= 0) break;
                }
            if (found < 0) {
                std::string names;
                for (const auto& v : inputs) names += (names.empty() ? "'" : " and '") + v.name + "'";
                fail(p.where() + " expects an Add of " + names + consumers_text(inputs[0].name));
            }
            claimed_[static_cast<std::size_t>(found)] = 1;
            const Value sum = produce(found, inputs[a].shape, inputs[a].rank);
            inputs.erase(inputs.begin() + static_cast<std::ptrdiff_t>(std::max(a, b)));
            inputs.erase(inputs.begin() + static_cast<std::ptrdiff_t>(std::min(a, b)));
            inputs.push_back(sum);
        }
        ++progress_;
        next(inputs[0]);
    }

    std::vector<int> consumers_of(const std::string& name, const char* op) const {
        std::vector<int> result;
        const auto it = consumers_.find(name);
        if (it == consumers_.end()) return result;
        for (int i : it->second)
            if (!claimed_[static_cast<std::size_t>(i)] && g_.node(i).op_type() == op) result.push_back(i);
        return result;
    }

    void leaf(const Part& p, const Value& in, const Next& next) {
        const std::string& kind = p.record.kind;
        if (kind == "Conv2D") return conv(p, nullptr, in, [&](const Value& out, bool) { next(out); });
        if (kind == "Dense") return dense(p, in, next);
        if (kind == "BatchNorm2D") return batch_norm(p, in, next);
        if (kind == "MaxPool" || kind == "MeanPool") return pool(p, in, next);
        if (kind == "Flatten") return flatten(p, in, next);
        if (kind == "Dropout" || kind == "Identity") {
            const char* op = kind == "Dropout" ? "Dropout" : "Identity";
            if (readers(in, {op}).empty()) {
                ++progress_;
                return next(in);
            }
            return choose(in, {op}, p, [&](int node) {
                if (kind == "Dropout") {
                    only_first_output(node);
                    if (g_.node(node).input_size() > 2 && !g_.node(node).input(2).empty())
                        fail(node, "has a training_mode input; the network's Dropout is the identity in inference");
                }
                ++progress_;
                next(produce(node, in.shape, in.rank));
            });
        }
        if (kind == "GELU") return gelu(p, in, next);
        static const std::map<std::string, const char*> elementwise{
            {"ReLU", "Relu"}, {"Sigmoid", "Sigmoid"}, {"Tanh", "Tanh"}, {"LeakyReLU", "LeakyRelu"},
            {"ELU", "Elu"},   {"Softmax", "Softmax"}, {"GlobalAvgPool", "GlobalAveragePool"}};
        if (kind == "GlobalAvgPool" && in.rank == 2) return unflatten(p, in, [&](const Value& v) { leaf(p, v, next); });
        const auto it = elementwise.find(kind);
        if (it == elementwise.end()) fail(p.where() + ": a " + kind + " layer has no ONNX form in this library");
        const char* op = it->second;
        choose(in, {op}, p, [&](int node) {
            if (kind == "LeakyReLU") same_real(node, "alpha", real(node, "alpha", 0.01), detail::onnx::real(p.record, "slope", 0.01), p);
            if (kind == "ELU") same_real(node, "alpha", real(node, "alpha", 1.0), detail::onnx::real(p.record, "alpha", 1.0), p);
            if (kind == "Softmax") {
                std::int64_t axis = integer(node, "axis", -1);
                if (axis < 0) axis += in.rank;
                if (axis != 1) fail(node, "softmax over axis " + std::to_string(axis) + "; " + p.where() + " takes it over the channels (axis 1)");
            }
            ++progress_;
            next(produce(node, output_shape(p, in.shape), in.rank));
        });
    }

    using ConvNext = std::function<void(const Value&, bool)>;

    void conv(const Part& p, const Part* bn, const Value& in, const ConvNext& next) {
        if (in.rank == 2) return unflatten(p, in, [&](const Value& v) { conv(p, bn, v, next); });
        const ConvGeometry g(p.record);
        choose(in, {"Conv"}, p, [&](int node) {
            const auto& n = g_.node(node);
            if (in.rank != 4) fail(node, "reads a tensor of rank 2; " + p.where() + " needs N x C x H x W");
            no_auto_pad(node);
            if (n.input_size() < 2 || n.input(1).empty()) fail(node, "has no weight");
            const auto file_dims = constants_.contains(n.input(1)) ? dims(n.input(1)) : std::vector<std::int64_t>{};
            if (file_dims.size() == 4 && file_dims[0] != g.filters)
                fail(node, std::to_string(file_dims[0]) + " output channels in the file, " + p.where() + " has " + std::to_string(g.filters));
            const std::int64_t group = integer(node, "group", 1);
            if (group != g.groups) fail(node, "group " + std::to_string(group) + " in the file, " + p.where() + " has " + std::to_string(g.groups));
            const auto weight = weights(node, 1, {g.filters, g.channels / g.groups, g.kh, g.kw}, p, "weight");
            const auto kernel = ints(node, "kernel_shape", {g.kh, g.kw});
            if (kernel != std::vector<std::int64_t>{g.kh, g.kw})
                fail(node, "kernel_shape " + dims_text(kernel) + " in the file, " + p.where() + " has " + dims_text({g.kh, g.kw}));
            const auto strides = ints(node, "strides", {1, 1});
            if (strides != std::vector<std::int64_t>{g.stride_h, g.stride_w})
                fail(node, "strides " + dims_text(strides) + " in the file, " + p.where() + " has " + dims_text({g.stride_h, g.stride_w}));
            const auto pads = ints(node, "pads", {0, 0, 0, 0});
            if (pads != std::vector<std::int64_t>{g.pad_h, g.pad_w, g.pad_h, g.pad_w})
                fail(node, "pads " + dims_text(pads) + " in the file, " + p.where() + " has " + dims_text({g.pad_h, g.pad_w, g.pad_h, g.pad_w}));
            const auto dilations = ints(node, "dilations", {1, 1});
            if (dilations != std::vector<std::int64_t>{g.dilation_h, g.dilation_w})
                fail(node, "dilations " + dims_text(dilations) + " in the file, " + p.where() + " has " + dims_text({g.dilation_h, g.dilation_w}));
            const bool file_bias = n.input_size() > 2 && !n.input(2).empty();
            const Shape<4> shape = output_shape(p, in.shape);
            const Value out = produce(node, shape, 4);
            // An eval-mode export folds the batch normalisation after a convolution into it.
            const bool folded = bn != nullptr && consumers_of(out.name, "BatchNormalization").empty();
            if (file_bias && !g.bias && !folded) fail(node, "has a bias in the file, " + p.where() + " has none");
            if (!file_bias && g.bias) fail(node, "has no bias in the file, " + p.where() + " has one");
            std::vector<double> bias(static_cast<std::size_t>(g.filters), 0.0);
            if (file_bias) bias = weights(node, 2, {g.filters}, p, "bias");
            write(p, 0, weight);
            if (g.bias) write(p, weight.size(), bias);
            ++progress_;
            if (folded) {
                // gamma 1, beta the folded bias (unless the convolution holds it), mean 0,
                // variance 1 - epsilon: the batch normalisation passes the values through.
                const auto c = static_cast<std::size_t>(g.filters);
                const double epsilon = detail::onnx::real(bn->record, "epsilon", 1e-5);
                write(*bn, 0, std::vector<double>(c, 1.0));
                write(*bn, c, g.bias ? std::vector<double>(c, 0.0) : bias);
                write(*bn, 2 * c, std::vector<double>(c, 0.0));
                write(*bn, 3 * c, std::vector<double>(c, 1.0 - epsilon));
                ++progress_;
            }
            next(out, folded);
        });
    }

    void dense(const Part& p, const Value& in, const Next& next) {
        if (in.rank == 4)  // the file flattens first; our Dense reads N x C x H x W itself
            return flatten(p, in, [&](const Value& flat) { dense(p, flat, next); });
        const auto in_features = detail::onnx::integer(p.record, "in_features", 0);
        const auto out_features = detail::onnx::integer(p.record, "out_features", 0);
        const Shape<4> shape = output_shape(p, in.shape);
        choose(in, {"Gemm", "MatMul"}, p, [&](int node) {
            const auto& n = g_.node(node);
            std::vector<double> weight, bias(static_cast<std::size_t>(out_features), 0.0);
            const auto b_dims = n.input_size() > 1 && constants_.contains(n.input(1)) ? dims(n.input(1)) : std::vector<std::int64_t>{};
            const bool gemm = n.op_type() == "Gemm";
            const bool transposed = gemm && integer(node, "transB", 0) != 0;
            const std::int64_t file_out = b_dims.size() == 2 ? b_dims[transposed ? 0 : 1] : -1;
            if (file_out >= 0 && file_out != out_features)
                fail(node, std::to_string(file_out) + " outputs in the file, " + p.where() + " has " + std::to_string(out_features));
            if (gemm) {
                if (integer(node, "transA", 0) != 0) fail(node, "transA is 1; a dense layer reads its input untransposed");
                same_real(node, "alpha", real(node, "alpha", 1.0), 1.0, p);
                same_real(node, "beta", real(node, "beta", 1.0), 1.0, p);
            }
            const auto raw = transposed ? weights(node, 1, {out_features, in_features}, p, "weight")
                                        : weights(node, 1, {in_features, out_features}, p, "weight");
            weight = raw;
            if (!transposed)
                for (std::int64_t j = 0; j < out_features; ++j)
                    for (std::int64_t i = 0; i < in_features; ++i)
                        weight[static_cast<std::size_t>(j * in_features + i)] = raw[static_cast<std::size_t>(i * out_features + j)];
            Value out = produce(node, shape, 2);
            const auto bias_of = [&](int at, int input) {
                const auto& m = g_.node(at);
                const auto d = constants_.contains(m.input(input)) ? dims(m.input(input)) : std::vector<std::int64_t>{};
                return d == std::vector<std::int64_t>{1, out_features} ? weights(at, input, {1, out_features}, p, "bias")
                                                                       : weights(at, input, {out_features}, p, "bias");
            };
            if (gemm && n.input_size() > 2 && !n.input(2).empty()) bias = bias_of(node, 2);
            if (!gemm) {  // MatMul, then Add of the bias (either way round), or no bias
                for (int add : consumers_of(out.name, "Add")) {
                    const auto& a = g_.node(add);
                    if (a.input_size() != 2) continue;
                    const int other = a.input(0) == out.name ? 1 : 0;
                    if (!constants_.contains(a.input(other))) continue;
                    bias = bias_of(add, other);
                    claimed_[static_cast<std::size_t>(add)] = 1;
                    out = produce(add, shape, 2);
                    break;
                }
            }
            write(p, 0, weight);
            write(p, weight.size(), bias);
            ++progress_;
            next(out);
        });
    }

    void batch_norm(const Part& p, const Value& in, const Next& next) {
        const auto c = detail::onnx::integer(p.record, "channels", 0);
        choose(in, {"BatchNormalization"}, p, [&](int node) {
            if (integer(node, "training_mode", 0) != 0) fail(node, "is in training mode; export the model in eval mode");
            only_first_output(node);
            const auto& n = g_.node(node);
            if (n.input_size() != 5) fail(node, "has " + std::to_string(n.input_size()) + " inputs, not 5");
            const auto file_c = constants_.contains(n.input(1)) ? dims(n.input(1)) : std::vector<std::int64_t>{};
            if (file_c.size() == 1 && file_c[0] != c)
                fail(node, std::to_string(file_c[0]) + " channels in the file, " + p.where() + " has " + std::to_string(c));
            same_real(node, "epsilon", real(node, "epsilon", 1e-5), detail::onnx::real(p.record, "epsilon", 1e-5), p);
            same_real(node, "momentum", 1.0 - real(node, "momentum", 0.9), detail::onnx::real(p.record, "momentum", 0.1), p);
            const char* names[] = {"scale", "bias", "mean", "variance"};
            for (int k = 0; k < 4; ++k) write(p, static_cast<std::size_t>(k * c), weights(node, k + 1, {c}, p, names[k]));
            ++progress_;
            next(produce(node, output_shape(p, in.shape), in.rank));
        });
    }

    /// A pool, after a Pad of zeros when the file has one (PyTorch writes one before an
    /// AveragePool, of zeros, or of the padding when count_include_pad is set).
    void pool(const Part& p, const Value& in, const Next& next) {
        if (in.rank == 2) return unflatten(p, in, [&](const Value& v) { pool(p, v, next); });
        if (readers(in, {"Pad"}).empty()) return pool_node(p, in, 0, 0, next);
        choose(in, {"Pad"}, p, [&](int node) {
            const auto& n = g_.node(node);
            if (text(node, "mode", "constant") != "constant") fail(node, "pads by " + text(node, "mode", "") + ", not with zeros");
            if (n.input_size() < 2 || n.input(1).empty()) fail(node, "has no pads input");
            if (n.input_size() > 2 && !n.input(2).empty())
                for (double v : numbers(node, n.input(2), "constant value"))
                    if (v != 0) fail(node, "pads with " + std::to_string(v) + ", not with zeros");
            const auto pads = evaluate(n.input(1), node, 0);
            if (pads.size() != 8 || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0 || pads[2] != pads[6] ||
                pads[3] != pads[7] || pads[2] < 0 || pads[3] < 0 || pads[2] > (1 << 20) || pads[3] > (1 << 20))
                fail(node, "pads " + dims_text(pads) + "; the library pads rows and columns alike on both sides");
            Shape<4> padded = in.shape;
            padded[2] += static_cast<std::size_t>(2 * pads[2]);
            padded[3] += static_cast<std::size_t>(2 * pads[3]);
            pool_node(p, produce(node, padded, 4), pads[2], pads[3], next);
        });
    }

    /// The pool node reading `in`, which a Pad of zeros (pad_h, pad_w) may have padded.
    void pool_node(const Part& p, const Value& in, std::int64_t pad_h, std::int64_t pad_w, const Next& next) {
        const PoolGeometry g(p.record);
        const bool max = p.record.kind == "MaxPool";
        const auto attempt = [&](int node) {
            no_auto_pad(node);
            const auto kernel = ints(node, "kernel_shape", {});
            if (kernel != std::vector<std::int64_t>{g.kh, g.kw})
                fail(node, "kernel_shape " + dims_text(kernel) + " in the file, " + p.where() + " has " + dims_text({g.kh, g.kw}));
            const auto strides = ints(node, "strides", {1, 1});
            if (strides != std::vector<std::int64_t>{g.stride, g.stride})
                fail(node, "strides " + dims_text(strides) + " in the file, " + p.where() + " has " + dims_text({g.stride, g.stride}));
            auto pads = ints(node, "pads", {0, 0, 0, 0});
            if (pads.size() == 4) {
                pads[0] += pad_h;
                pads[2] += pad_h;
                pads[1] += pad_w;
                pads[3] += pad_w;
            }
            if (pads != std::vector<std::int64_t>{g.pad_h, g.pad_w, g.pad_h, g.pad_w})
                fail(node, "pads " + dims_text(pads) + (pad_h || pad_w ? " (with the Pad before it)" : "") + " in the file, " +
                               p.where() + " has " + dims_text({g.pad_h, g.pad_w, g.pad_h, g.pad_w}));
            if (integer(node, "ceil_mode", 0) != 0) fail(node, "ceil_mode is 1; the library's pools round down");
            if (ints(node, "dilations", {1, 1}) != std::vector<std::int64_t>{1, 1}) fail(node, "has dilations; the library's pools have none");
            if (max) {
                if (pad_h != 0 || pad_w != 0) fail(node, "follows a Pad of zeros, which a max pool's padding is not");
                if (integer(node, "storage_order", 0) != 0) fail(node, "storage_order is 1");
                only_first_output(node);
            } else if (g.pad_h != 0 || g.pad_w != 0) {
                // Zeros padded by a Pad node are counted like any input.
                const bool counts = integer(node, "count_include_pad", 0) != 0 || pad_h != 0 || pad_w != 0;
                if (counts != g.count_padding)
                    fail(node, std::string("count_include_pad ") + (counts ? "1" : "0") + " in the file, " + p.where() +
                                   (g.count_padding ? " counts the padding" : " does not count the padding"));
            }
            ++progress_;
            Shape<4> unpadded = in.shape;
            unpadded[2] -= static_cast<std::size_t>(2 * pad_h);
            unpadded[3] -= static_cast<std::size_t>(2 * pad_w);
            next(produce(node, output_shape(p, unpadded), 4));
        };
        if (max)
            choose(in, {"MaxPool"}, p, attempt);
        else
            choose(in, {"AveragePool"}, p, attempt);
    }

    void flatten(const Part& p, const Value& in, const Next& next) {
        const Shape<4> shape{in.shape[0], in.shape[1] * in.shape[2] * in.shape[3], 1, 1};
        const auto features = static_cast<std::int64_t>(shape[1]);
        if (in.rank == 2 && readers(in, {"Flatten", "Reshape"}).empty()) {
            ++progress_;
            return next(in);
        }
        choose(in, {"Flatten", "Reshape"}, p, [&](int node) {
            const auto& n = g_.node(node);
            if (n.op_type() == "Flatten") {
                std::int64_t axis = integer(node, "axis", 1);
                if (axis < 0) axis += in.rank;
                if (axis != 1) fail(node, "flattens from axis " + std::to_string(axis) + "; " + p.where() + " keeps the batch axis (1)");
            } else {
                if (n.input_size() != 2) fail(node, "needs a shape input");
                const std::vector<std::int64_t> from = in.rank == 4
                    ? std::vector<std::int64_t>{batch_sentinel, std::int64_t(in.shape[1]), std::int64_t(in.shape[2]), std::int64_t(in.shape[3])}
                    : std::vector<std::int64_t>{batch_sentinel, features};
                const std::vector<std::int64_t> target = reshaped(node, from);
                if (target != std::vector<std::int64_t>{batch_sentinel, features})
                    fail(node, "reshapes to " + dims_text(target) + " for a batch of " + std::to_string(batch_sentinel) + "; " +
                                   p.where() + " gives " + dims_text({batch_sentinel, features}) + " (any batch size)");
            }
            ++progress_;
            next(produce(node, shape, 2));
        });
    }

    /// The shape a Reshape node gives a value of shape `from`: its shape input evaluated, 0
    /// copying the input's dimension (unless allowzero) and -1 taking the rest.
    std::vector<std::int64_t> reshaped(int node, const std::vector<std::int64_t>& from) {
        const auto& n = g_.node(node);
        if (n.input_size() != 2) fail(node, "needs a shape input");
        std::vector<std::int64_t> target = evaluate(n.input(1), node, 0);
        const bool allowzero = integer(node, "allowzero", 0) != 0;
        std::int64_t total = 1, known = 1, free = -1;
        for (auto d : from) total *= d;
        if (target.size() > 8) fail(node, "reshapes to " + std::to_string(target.size()) + " dimensions");
        for (std::size_t k = 0; k < target.size(); ++k) {
            if (target[k] < -1) fail(node, "its shape " + dims_text(target) + " has a dimension below -1");
            if (target[k] == 0 && !allowzero && k < from.size()) target[k] = from[k];
            if (target[k] == -1) {
                if (free >= 0) fail(node, "its shape " + dims_text(target) + " has two -1");
                free = static_cast<std::int64_t>(k);
            } else {
                if (target[k] > 0 && known > std::numeric_limits<std::int64_t>::max() / target[k])
                    fail(node, "its shape " + dims_text(target) + " holds more values than any tensor");
                known *= target[k];
            }
        }
        if (free >= 0 && known > 0) target[static_cast<std::size_t>(free)] = total / known;
        return target;
    }

    /// A value the file has flattened to N x features, back to N x C x H x W by a Reshape
    /// (what save_onnx writes before a convolution or pool that follows a dense layer).
    void unflatten(const Part& p, const Value& in, const Next& next) {
        const std::vector<std::int64_t> want{batch_sentinel, std::int64_t(in.shape[1]), std::int64_t(in.shape[2]),
                                             std::int64_t(in.shape[3])};
        choose(in, {"Reshape"}, p, [&](int node) {
            const auto target = reshaped(node, {batch_sentinel, want[1] * want[2] * want[3]});
            if (target != want)
                fail(node, "reshapes to " + dims_text(target) + " for a batch of " + std::to_string(batch_sentinel) + "; " +
                               p.where() + " reads " + dims_text(want));
            next(produce(node, in.shape, 4));
        });
    }

    /// The largest dimension a shape computation may give (larger ones are no network's).
    static constexpr double max_dimension = static_cast<double>(std::int64_t{1} << 31);

    /// A batch size no file writes into a shape: a Reshape that comes out right for it keeps
    /// the batch dimension.
    static constexpr std::int64_t batch_sentinel = 1009;

    /// The integers a shape computation gives (Constant, Shape, Gather, Unsqueeze, Squeeze,
    /// Concat, Cast), with the batch dimension batch_sentinel; claims the nodes it evaluates.
    std::vector<std::int64_t> evaluate(const std::string& name, int reader, std::size_t depth) {
        if (depth > 32) fail(reader, "its shape is computed by more than 32 nodes");
        if (constants_.contains(name)) {
            std::vector<std::int64_t> result;
            for (double v : numbers(reader, name, "shape")) {
                if (!(std::abs(v) <= max_dimension) || v != std::floor(v))
                    fail(reader, "its shape input '" + name + "' holds " + std::to_string(v) + ", not a dimension");
                result.push_back(static_cast<std::int64_t>(v));
            }
            return result;
        }
        const auto producer = producer_.find(name);
        if (producer == producer_.end()) fail(reader, "its shape input '" + name + "' is computed from the graph input");
        const int node = producer->second;
        const auto& n = g_.node(node);
        const std::string& op = n.op_type();
        claimed_[static_cast<std::size_t>(node)] = 1;
        // A node of a shape computation reads its first one or two inputs; a file may give fewer.
        const auto operand = [&](int k) -> const std::string& {
            if (k >= n.input_size() || n.input(k).empty())
                fail(node, "has " + std::to_string(n.input_size()) + " input" + (n.input_size() == 1 ? "" : "s") + "; " + op + " needs " +
                               (op == "Gather" ? "2" : "1"));
            return n.input(k);
        };
        if (op == "Shape") {
            const auto source = values_.find(operand(0));
            if (source == values_.end()) fail(node, "takes the shape of '" + n.input(0) + "', which is not a value of the network's walk so far");
            const Value& v = source->second;
            std::vector<std::int64_t> shape{batch_sentinel};
            if (v.rank == 4)
                for (int d = 1; d < 4; ++d) shape.push_back(static_cast<std::int64_t>(v.shape[static_cast<std::size_t>(d)]));
            else
                shape.push_back(static_cast<std::int64_t>(v.shape[1] * v.shape[2] * v.shape[3]));
            const auto rank = static_cast<std::int64_t>(shape.size());
            std::int64_t start = integer(node, "start", 0), end = integer(node, "end", rank);
            if (start < 0) start += rank;
            if (end < 0) end += rank;
            start = std::clamp<std::int64_t>(start, 0, rank);
            end = std::clamp<std::int64_t>(end, start, rank);
            return {shape.begin() + start, shape.begin() + end};
        }
        if (op == "Gather") {
            const auto data = evaluate(operand(0), node, depth + 1);
            const auto indices = evaluate(operand(1), node, depth + 1);
            if (integer(node, "axis", 0) != 0) fail(node, "gathers along an axis other than 0 in a shape computation");
            std::vector<std::int64_t> result;
            for (auto i : indices) {
                if (i < 0) i += static_cast<std::int64_t>(data.size());
                if (i < 0 || i >= static_cast<std::int64_t>(data.size())) fail(node, "gathers index " + std::to_string(i) + " of " + std::to_string(data.size()));
                result.push_back(data[static_cast<std::size_t>(i)]);
            }
            return result;
        }
        if (op == "Unsqueeze" || op == "Squeeze" || op == "Cast" || op == "Identity") return evaluate(operand(0), node, depth + 1);
        if (op == "Concat") {
            std::vector<std::int64_t> result;
            for (const auto& in : n.input()) {
                const auto part = evaluate(in, node, depth + 1);
                result.insert(result.end(), part.begin(), part.end());
            }
            return result;
        }
        fail(node, "is part of a shape computation, which this library evaluates only from Constant, Shape, Gather, "
                   "Unsqueeze, Squeeze, Concat and Cast");
    }

    /// GELU as PyTorch writes it (exact: x/sqrt2, Erf, +1, *x, *0.5) or as save_onnx writes
    /// the tanh form (x*x*x*0.044715 + x, *sqrt(2/pi), Tanh, +1, *x, *0.5).
    void gelu(const Part& p, const Value& in, const Next& next) {
        const bool tanh_form = detail::onnx::integer(p.record, "tanh_approximation", 0) != 0;
        struct Step {
            const char* op;
            int operand;  // 0 none, 1 the input x, 2 a constant
            double constant = 0;
        };
        const std::vector<Step> steps = tanh_form
            ? std::vector<Step>{{"Mul", 1}, {"Mul", 1}, {"Mul", 2, gelu_cubic}, {"Add", 1}, {"Mul", 2, gelu_sqrt2_over_pi},
                                {"Tanh", 0}, {"Add", 2, 1.0}, {"Mul", 1}, {"Mul", 2, 0.5}}
            : std::vector<Step>{{"Div", 2, gelu_sqrt2}, {"Erf", 0}, {"Add", 2, 1.0}, {"Mul", 1}, {"Mul", 2, 0.5}};
        std::string at = in.name;
        for (std::size_t k = 0; k < steps.size(); ++k) {
            const Step& s = steps[k];
            int found = -1;
            const auto it = consumers_.find(at);
            if (it != consumers_.end())
                for (int i : it->second) {
                    if (claimed_[static_cast<std::size_t>(i)] || g_.node(i).op_type() != s.op) continue;
                    const auto& n = g_.node(i);
                    if (s.operand == 0 && n.input_size() == 1) found = i;
                    if (s.operand != 0 && n.input_size() == 2) {
                        const std::string other = n.input(0) == at ? n.input(1) : n.input(0);
                        if (k == 0 && s.operand == 1 && n.input(0) == in.name && n.input(1) == in.name) found = i;
                        else if (s.operand == 1 && other == in.name) found = i;
                        else if (s.operand == 2 && constants_.contains(other)) {
                            const auto c = numbers(i, other, "constant");
                            if (c.size() == 1 && std::abs(c[0] - s.constant) <= 1e-6 * std::abs(s.constant)) found = i;
                        }
                    }
                    if (found >= 0) break;
                }
            if (found < 0)
                fail(p.where() + " expects step " + std::to_string(k + 1) + " of GELU" + (tanh_form ? " (tanh form)" : "") +
                     ", a " + s.op + " node reading '" + at + "'" + consumers_text(at));
            claimed_[static_cast<std::size_t>(found)] = 1;
            at = produce(found, in.shape, in.rank).name;
        }
        ++progress_;
        next(values_.at(at));
    }

    const ::onnx::GraphProto& g_;
    std::vector<T>& parameters_;
    std::string input_;
    std::map<std::string, int> producer_;
    std::map<std::string, const ::onnx::TensorProto*> constants_;
    std::deque<::onnx::TensorProto> made_;
    std::map<std::string, std::vector<int>> consumers_;
    std::vector<char> claimed_;
    std::map<std::string, Value> values_;
    std::size_t progress_ = 0;
};

/// The model in `bytes`, parsed, with its opset and its one input checked; fills `info`.
inline ::onnx::ModelProto parse(const std::vector<std::uint8_t>& bytes, const std::string& name, OnnxInfo& info) {
    if (bytes.empty()) throw onnx_error(name + ": is empty; expected an ONNX model");
    ::onnx::ModelProto model;
    if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max()) ||
        !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        throw onnx_error(name + ": not an ONNX model: the protobuf does not parse (" + std::to_string(bytes.size()) +
                         " bytes; truncated or corrupt)");
    if (!model.has_graph() || model.graph().node_size() == 0)
        throw onnx_error(name + ": not an ONNX model: it has no graph, or a graph without nodes");
    info.opset = -1;
    for (const auto& o : model.opset_import())
        if (o.domain().empty() || o.domain() == "ai.onnx") info.opset = o.version();
    if (info.opset < 0) throw onnx_error(name + ": imports no opset of the default ONNX domain");
    if (info.opset < onnx_min_opset || info.opset > onnx_max_opset)
        throw onnx_error(name + ": opset " + std::to_string(info.opset) + " is not one this library reads (" +
                         std::to_string(onnx_min_opset) + " to " + std::to_string(onnx_max_opset) +
                         "); export with opset_version=13");
    info.producer = model.producer_name();
    for (const auto& p : model.metadata_props()) info.metadata[p.key()] = p.value();
    const auto normalization = info.metadata.find("cnn.normalization");
    if (normalization != info.metadata.end()) info.normalization = parse_onnx_normalization(normalization->second, name);

    const auto& graph = model.graph();
    std::set<std::string> initializers;
    for (const auto& t : graph.initializer()) initializers.insert(t.name());
    const ::onnx::ValueInfoProto* input = nullptr;
    int inputs = 0;
    for (const auto& i : graph.input())
        if (!initializers.contains(i.name())) {
            input = &i;
            ++inputs;
        }
    if (inputs != 1)
        throw onnx_error(name + ": the graph has " + std::to_string(inputs) + " inputs besides its initializers; a network has one");
    if (graph.output_size() != 1)
        throw onnx_error(name + ": the graph has " + std::to_string(graph.output_size()) + " outputs; a network has one");
    const auto& type = input->type();
    if (!type.has_tensor_type() || !type.tensor_type().has_shape() || type.tensor_type().shape().dim_size() != 4)
        throw onnx_error(name + ": the input '" + input->name() + "' is not a tensor of rank 4 (batch x C x H x W)");
    const auto element = type.tensor_type().elem_type();
    if (element != ::onnx::TensorProto::FLOAT && element != ::onnx::TensorProto::DOUBLE)
        throw onnx_error(name + ": the input '" + input->name() + "' has element type " + std::to_string(element) +
                         "; the library reads float and double models");
    std::size_t sizes[3];
    for (int d = 1; d < 4; ++d) {
        const auto& dim = type.tensor_type().shape().dim(d);
        if (!dim.has_dim_value() || dim.dim_value() <= 0 || dim.dim_value() > (1 << 24))
            throw onnx_error(name + ": the input's dimension " + std::to_string(d) + " has no fixed size (" +
                             (dim.has_dim_param() ? "'" + dim.dim_param() + "'" : std::to_string(dim.dim_value())) +
                             "); C, H and W must be numbers");
        sizes[d - 1] = static_cast<std::size_t>(dim.dim_value());
    }
    // Each size is at most 2^24, so the first product cannot overflow, nor the second after it.
    if (sizes[0] * sizes[1] > (std::size_t{1} << 31) || sizes[0] * sizes[1] * sizes[2] > (std::size_t{1} << 31))
        throw onnx_error(name + ": the input of " + std::to_string(sizes[0]) + " x " + std::to_string(sizes[1]) + " x " +
                         std::to_string(sizes[2]) + " values per sample is larger than this library reads (2^31)");
    const auto& output = graph.output(0).type();
    if (output.has_tensor_type() && output.tensor_type().has_shape() && output.tensor_type().shape().dim_size() >= 2) {
        info.outputs = 1;
        for (int d = 1; d < output.tensor_type().shape().dim_size(); ++d) {
            const auto& dim = output.tensor_type().shape().dim(d);
            const bool fixed = dim.has_dim_value() && dim.dim_value() > 0 && dim.dim_value() <= (1 << 24);
            info.outputs = fixed && info.outputs <= (std::size_t{1} << 24) ? info.outputs * static_cast<std::size_t>(dim.dim_value()) : 0;
        }
    }
    info.channels = sizes[0];
    info.rows = sizes[1];
    info.cols = sizes[2];
    return model;
}

}  // namespace detail::onnx

/// What the ONNX model in `bytes` holds besides its weights (input size, opset, producer,
/// metadata, normalisation), checked as load_onnx checks it up to the graph's structure.
inline OnnxInfo onnx_info(const std::vector<std::uint8_t>& bytes, const std::string& name) {
    OnnxInfo info;
    (void)detail::onnx::parse(bytes, name, info);
    return info;
}

/// onnx_info of the file `path`.
inline OnnxInfo read_onnx_info(const std::filesystem::path& path) {
    return onnx_info(read_file<onnx_error>(path, max_onnx_file_size, "ONNX file"), path.string());
}

/// Loads the ONNX model in `bytes` into `net` (see the top of cnn/onnx.hpp). Throws
/// onnx_error naming `name` and the first difference; `net` is then unchanged.
template <class Net>
OnnxInfo onnx_into(Net& net, const std::vector<std::uint8_t>& bytes, const std::string& name) {
    using T = typename Net::value_type;
    namespace ox = detail::onnx;
    OnnxInfo info;
    const ::onnx::ModelProto model = ox::parse(bytes, name, info);
    const ox::Part root = ox::build(net);
    std::vector<T> parameters = detail::gather_parameters(net);
    try {
        ox::Importer<T> importer(model.graph(), parameters);
        const ox::Value input = importer.prepare({1, info.channels, info.rows, info.cols});
        importer.run(root, input);
    } catch (const ox::Mismatch& m) {
        throw onnx_error(name + ": " + m.message);
    }
    detail::install_parameters<onnx_error>(net, std::span<const T>{parameters}, name);
    return info;
}

/// Loads the ONNX file `path` into `net`; returns what else the file holds.
template <class Net>
OnnxInfo load_onnx(Net& net, const std::filesystem::path& path) {
    return onnx_into(net, read_file<onnx_error>(path, max_onnx_file_size, "ONNX file"), path.string());
}

}  // namespace cnn

#endif  // CNN_WITH_ONNX
