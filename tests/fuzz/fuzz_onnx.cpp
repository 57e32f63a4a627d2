// libFuzzer target: load_onnx on arbitrary bytes, into a flat chain and into a nest (a
// residual block and concatenated branches). Every input must either load into the
// network or throw cnn::onnx_error leaving the network untouched; nothing else may escape.
#include <cnn/cnn.hpp>
#include <cnn/onnx.hpp>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "networks.hpp"

namespace {

template <class Net>
std::vector<float> values(const Net& net) {
    std::vector<float> result;
    for (const auto& group : const_cast<Net&>(net).parameter_groups())
        result.insert(result.end(), group.values.begin(), group.values.end());
    return result;
}

template <class Net>
void try_load_into(Net& net, const std::vector<std::uint8_t>& bytes) {
    const std::vector<float> before = values(net);
    try {
        (void)cnn::onnx_into(net, bytes, "fuzz input");
    } catch (const cnn::onnx_error&) {
        if (values(net) != before) std::abort();  // a failed load changed the network
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static auto flat = fuzz::flat_network();
    static auto nested = fuzz::nested_network();
    const std::vector<std::uint8_t> bytes(data, data + size);
    try_load_into(flat, bytes);
    try_load_into(nested, bytes);
    return 0;
}
