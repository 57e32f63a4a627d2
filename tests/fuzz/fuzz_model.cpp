// libFuzzer target: the model loader on arbitrary bytes, into a flat chain and into a
// nest. Every input must either load into the network or throw cnn::model_error leaving
// the network untouched.
#include <cnn/cnn.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "checksum.hpp"
#include "networks.hpp"

namespace {

template <class Net>
void try_load_into(Net& net, const std::vector<std::uint8_t>& bytes) {
    const std::vector<float> before(net.template layer<0>().parameters().begin(),
                                    net.template layer<0>().parameters().end());
    try {
        (void)cnn::deserialize_model(net, bytes, "fuzz input");
    } catch (const cnn::model_error&) {
        const std::vector<float> after(net.template layer<0>().parameters().begin(),
                                       net.template layer<0>().parameters().end());
        if (after != before) std::abort();  // a failed load changed the network
    }
}

}  // namespace

void try_load(const std::vector<std::uint8_t>& bytes) {
    static auto flat = fuzz::flat_network();
    static auto nested = fuzz::nested_network();
    try_load_into(flat, bytes);
    try_load_into(nested, bytes);
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::as_is_and_with_checksum_repaired(data, size, try_load);
    return 0;
}
