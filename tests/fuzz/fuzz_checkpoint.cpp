// libFuzzer target: the checkpoint loader on arbitrary bytes, and what it accepts handed
// to fit. Every input must either load or throw cnn::model_error leaving the network
// untouched; a state that loads must then resume training or be refused by fit with
// cnn::parameter_error (never read past memory: the checks live in fit and the optimizer).
#include <cnn/cnn.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "checksum.hpp"

namespace {

auto make_net() {
    return cnn::Sequential{cnn::Conv2D<float>{1, 2, 3, {.padding = 1}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                           cnn::Flatten<float>{}, cnn::Dense<float>{2 * 2 * 2, 3}};
}

const cnn::Dataset& data() {
    static const cnn::Dataset set = [] {
        cnn::Dataset d{std::vector<std::uint8_t>(12 * 16), std::vector<std::uint8_t>(12), 12, 4, 4, 3};
        for (std::size_t i = 0; i < d.images.size(); ++i) d.images[i] = static_cast<std::uint8_t>(i * 37);
        for (std::size_t i = 0; i < d.labels.size(); ++i) d.labels[i] = static_cast<std::uint8_t>(i % 3);
        return d;
    }();
    return set;
}

void try_load(const std::vector<std::uint8_t>& bytes) {
    auto net = make_net();
    const std::vector<float> before(net.layer<0>().parameters().begin(), net.layer<0>().parameters().end());
    cnn::TrainingState<float> state;
    try {
        state = cnn::deserialize_checkpoint(net, bytes, "fuzz input");
    } catch (const cnn::model_error&) {
        const std::vector<float> after(net.layer<0>().parameters().begin(), net.layer<0>().parameters().end());
        if (after != before) std::abort();  // a failed load changed the network
        return;
    }
    cnn::SGD<float> sgd{{.learning_rate = 0.01, .momentum = 0.9}};
    cnn::Random rng{1};
    try {
        (void)cnn::fit(net, sgd, data(), rng, {.epochs = 2, .batch_size = 4, .validation_fraction = 0.25,
                                               .early_stopping_patience = 1}, &state);
    } catch (const cnn::parameter_error&) {
    } catch (const cnn::training_error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data_bytes, std::size_t size) {
    fuzz::as_is_and_with_checksum_repaired(data_bytes, size, try_load);
    return 0;
}
