// libFuzzer target: the model loader on arbitrary bytes. Every input must either
// load into the network or throw cnn::model_error leaving the network untouched.
#include <cnn/cnn.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

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
    std::vector<std::uint8_t> bytes(data, data + size);
    try_load(bytes);
    // Most mutations break the checksum; with it repaired, the parser behind it is fuzzed too.
    if (bytes.size() >= 4) {
        const std::uint32_t crc = cnn::detail::crc32(bytes.data(), bytes.size() - 4);
        std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
        try_load(bytes);
    }
    return 0;
}
