// libFuzzer target: the model loader on arbitrary bytes. Every input must either
// load into the network or throw cnn::model_error leaving the network untouched.
#include <cnn/cnn.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "checksum.hpp"

namespace {

auto make_net() {
    return cnn::Sequential{cnn::Conv2D<float>{1, 2, 3, {.padding = 1}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                           cnn::Flatten<float>{}, cnn::Dense<float>{2 * 4 * 4, 3}};
}

}  // namespace

void try_load(const std::vector<std::uint8_t>& bytes) {
    static auto net = make_net();
    const std::vector<float> before(net.layer<0>().parameters().begin(), net.layer<0>().parameters().end());
    try {
        (void)cnn::deserialize_model(net, bytes, "fuzz input");
    } catch (const cnn::model_error&) {
        const std::vector<float> after(net.layer<0>().parameters().begin(), net.layer<0>().parameters().end());
        if (after != before) std::abort();  // a failed load changed the network
    }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fuzz::as_is_and_with_checksum_repaired(data, size, try_load);
    return 0;
}
