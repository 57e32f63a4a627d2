// The per-call context of forward and backward: the scratch memory, the mode
// (training or inference) and the random stream of stochastic layers. It is made
// by the caller for each call and holds nothing of its own, so a layer keeps no
// per-call state and a const network runs forward on many threads at once.
#pragma once

#include "cnn/error.hpp"
#include "cnn/random.hpp"
#include "cnn/scratch.hpp"

namespace cnn {

/// Training: batch statistics, dropout on. Inference: running statistics, dropout off.
enum class Mode { inference, training };

template <Scalar T>
class Context {
public:
    /// Implicit from a Scratch, so that a layer can be called on its own as
    /// `layer.forward(x, y, scratch)`: inference, no random stream.
    Context(Scratch<T>& scratch, Mode mode = Mode::inference, Random* random = nullptr) noexcept  // NOLINT
        : scratch_(&scratch), random_(random), mode_(mode) {}

    [[nodiscard]] Scratch<T>& scratch() const noexcept { return *scratch_; }
    [[nodiscard]] Mode mode() const noexcept { return mode_; }
    [[nodiscard]] bool training() const noexcept { return mode_ == Mode::training; }
    [[nodiscard]] bool has_random() const noexcept { return random_ != nullptr; }
    /// The random stream; a stochastic layer in training calls this, and gets a
    /// cnn::parameter_error when the caller gave none.
    [[nodiscard]] Random& random(const char* who) const {
        if (random_ == nullptr)
            throw parameter_error(std::string(who) + " draws random numbers in training: pass a cnn::Random to forward");
        return *random_;
    }

private:
    Scratch<T>* scratch_;
    Random* random_;
    Mode mode_;
};

}  // namespace cnn
