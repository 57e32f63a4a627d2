// Must not compile: Sequential takes layers only, and says so in one sentence.
#include <cnn/cnn.hpp>

struct NotALayer {
    using value_type = float;
};

int main() {
    auto net = cnn::Sequential{cnn::ReLU<float>{}, NotALayer{}};
    (void)net;
}
