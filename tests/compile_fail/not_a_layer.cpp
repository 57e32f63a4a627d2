// Must not compile: Sequential, Residual and Parallel take layers only, and say so in one
// sentence, whatever the stray argument is and wherever it stands in a nest; and fit
// refuses a network that ends in Softmax in one sentence (case 9)
// (tests/compile_fail/one_error.cmake compiles each NOT_A_LAYER_CASE with g++ and
// clang++ and counts the errors).
#include <cnn/cnn.hpp>

#include <string>

struct NoValueType {};
struct IntegerValueType {
    using value_type = int;
};
struct NotALayer {
    using value_type = float;
};

int main() {
#if NOT_A_LAYER_CASE == 1
    auto net = cnn::Sequential{cnn::ReLU<float>{}, NotALayer{}};
#elif NOT_A_LAYER_CASE == 2
    auto net = cnn::Sequential{NoValueType{}, cnn::ReLU<float>{}};
#elif NOT_A_LAYER_CASE == 3
    auto net = cnn::Sequential{cnn::ReLU<float>{}, 42, cnn::ReLU<float>{}};
#elif NOT_A_LAYER_CASE == 4
    auto net = cnn::Sequential{cnn::ReLU<float>{}, IntegerValueType{}};
#elif NOT_A_LAYER_CASE == 5
    auto net = cnn::Sequential{cnn::ReLU<float>{}, std::string{}};
#elif NOT_A_LAYER_CASE == 6
    // three levels down: a chain in a residual body in a chain
    auto net = cnn::Sequential{cnn::ReLU<float>{},
                               cnn::Residual{cnn::Sequential{cnn::ReLU<float>{}, cnn::Sequential{NotALayer{}}}}};
#elif NOT_A_LAYER_CASE == 7
    auto net = cnn::Sequential{cnn::ReLU<float>{}, cnn::Residual{cnn::ReLU<float>{}, NotALayer{}}};
#elif NOT_A_LAYER_CASE == 8
    auto net = cnn::Sequential{cnn::Parallel{cnn::Concat{}, cnn::ReLU<float>{}, 42}};
#else
    auto net = cnn::Sequential{cnn::Flatten<float>{}, cnn::Dense<float>{4, 2}, cnn::Softmax<float>{}};
    cnn::SGD<float> sgd;
    cnn::Random rng;
    (void)cnn::fit(net, sgd, cnn::Dataset{}, rng, {});
#endif
    (void)net;
}
