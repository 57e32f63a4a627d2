// Optimizers. An optimizer updates the weights and biases of every ParameterGroup
// from their gradients, and never touches buffers (running statistics); weight decay
// applies to weights only, not to biases. Its state (velocities, moments) is sized on
// the first step and reused after that.
//
// SGD (PyTorch's convention), with g = dE/dw + weight_decay * w (weights) or dE/dw (biases):
//   plain:     w <- w - lr g                       (FORMULAS.md section 7)
//   momentum:  v <- mu v + g;   w <- w - lr v
//   Nesterov:  v <- mu v + g;   w <- w - lr (g + mu v)
// Adam (Kingma and Ba), with t the step count:
//   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
//   w <- w - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstddef>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "cnn/error.hpp"
#include "cnn/kernels/threads.hpp"
#include "cnn/parameters.hpp"

namespace cnn {

/// Everything an optimizer carries from step to step, for checkpoints.
template <Scalar T>
struct OptimizerState {
    std::vector<std::vector<T>> buffers;  ///< one per parameter group (Adam: first moments, then second)
    std::uint64_t steps = 0;
};

struct SGDOptions {
    double learning_rate = 0.01;
    double momentum = 0.0;
    bool nesterov = false;
    double weight_decay = 0.0;
};

struct AdamOptions {
    double learning_rate = 0.001;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double epsilon = 1e-8;
    double weight_decay = 0.0;
};

namespace detail {
/// Parameters per task of an update step, which the thread pool spreads.
inline constexpr std::size_t update_block = 1 << 14;

/// Runs update(begin, end, decay) over the learned values [0, learned) of a group on the
/// thread pool: with `decay` on the weights [0, weights), with 0 on the biases after them.
template <Scalar T, class Update>
void update_blocks(std::size_t weights, std::size_t learned, T decay, const Update& update) {
    parallel_blocks(learned, update_block, [&](std::size_t begin, std::size_t end) {
        if (begin < weights) update(begin, std::min(end, weights), decay);
        if (end > weights) update(std::max(begin, weights), end, T{0});
    });
}

/// Throws unless `value` is a finite number >= 0 that T holds (the update computes in T).
template <Scalar T>
void check_rate(double value, const char* optimizer, const char* what) {
    if (!(value >= 0.0) || !std::isfinite(value))
        throw parameter_error(std::string(optimizer) + ": " + what + " must be a finite number >= 0, got " +
                              std::to_string(value));
    if (value > static_cast<double>(std::numeric_limits<T>::max())) {
        std::ostringstream message;
        message << optimizer << ": " << what << " " << value << " is too large for "
                << (sizeof(T) == 4 ? "float" : "this number type");
        throw parameter_error(message.str());
    }
}

/// Throws cnn::parameter_error unless `state` (when not empty) has a buffer of the right
/// size for every group.
template <Scalar T>
void check_state(const std::vector<std::vector<T>>& state, std::span<const ParameterGroup<T>> groups,
                 const char* who) {
    if (state.empty()) return;
    if (state.size() != groups.size())
        throw parameter_error(std::string(who) + ": its state has " + std::to_string(state.size()) +
                              " buffers for " + std::to_string(groups.size()) +
                              " parameter groups (another network's optimizer, or another run's checkpoint?)");
    for (std::size_t g = 0; g < groups.size(); ++g)
        if (state[g].size() != groups[g].values.size())
            throw parameter_error(std::string(who) + ": its state for parameter group " + std::to_string(g) + " has " +
                                  std::to_string(state[g].size()) + " values, the group " +
                                  std::to_string(groups[g].values.size()) +
                                  " (another network's optimizer, or another run's checkpoint?)");
}

/// Gives state one zeroed buffer per group the first time; after that, throws
/// cnn::parameter_error unless the groups are the ones it was made for (one optimizer stepping
/// two networks would otherwise read and write past the buffers).
template <Scalar T>
void size_state(std::vector<std::vector<T>>& state, std::span<const ParameterGroup<T>> groups, const char* who) {
    if (state.empty()) {
        for (const auto& group : groups) state.emplace_back(group.values.size(), T{0});
        return;
    }
    check_state(state, groups, who);
}
}  // namespace detail

template <Scalar T>
class SGD {
public:
    explicit SGD(SGDOptions options = {}) : options_(options) {
        detail::check_rate<T>(options.learning_rate, "SGD", "learning_rate");
        detail::check_rate<T>(options.momentum, "SGD", "momentum");
        detail::check_rate<T>(options.weight_decay, "SGD", "weight_decay");
        if (options.nesterov && options.momentum == 0.0)
            throw parameter_error("SGD: Nesterov momentum needs a momentum above 0");
    }

    [[nodiscard]] double learning_rate() const noexcept { return options_.learning_rate; }
    void set_learning_rate(double rate) {
        detail::check_rate<T>(rate, "SGD", "learning_rate");
        options_.learning_rate = rate;
    }
    [[nodiscard]] const SGDOptions& options() const noexcept { return options_; }

    void step(std::span<const ParameterGroup<T>> groups) {
        const T lr = static_cast<T>(options_.learning_rate), mu = static_cast<T>(options_.momentum),
                decay = static_cast<T>(options_.weight_decay);
        if (options_.momentum != 0.0) detail::size_state(velocity_, groups, "SGD::step");
        for (std::size_t g = 0; g < groups.size(); ++g) {
            const std::span<T> w = groups[g].values;
            const std::span<const T> grad = groups[g].gradients;
            const std::size_t weights = groups[g].layout.weights, learned = groups[g].layout.learned();
            if (options_.momentum == 0.0) {
                detail::update_blocks(weights, learned, decay, [&](std::size_t begin, std::size_t end, T d) {
                    for (std::size_t i = begin; i < end; ++i) w[i] -= lr * (grad[i] + d * w[i]);
                });
                continue;
            }
            T* v = velocity_[g].data();
            const bool nesterov = options_.nesterov;
            detail::update_blocks(weights, learned, decay, [&](std::size_t begin, std::size_t end, T d) {
                for (std::size_t i = begin; i < end; ++i) {
                    const T gi = grad[i] + d * w[i];
                    v[i] = mu * v[i] + gi;
                    w[i] -= lr * (nesterov ? gi + mu * v[i] : v[i]);
                }
            });
        }
    }

    /// The velocities, for checkpoints.
    [[nodiscard]] OptimizerState<T> state() const { return {velocity_, 0}; }
    void restore(OptimizerState<T> state) { velocity_ = std::move(state.buffers); }
    /// Throws cnn::parameter_error unless the state fits `groups` (see detail::check_state).
    void check_state(std::span<const ParameterGroup<T>> groups) const { detail::check_state(velocity_, groups, "SGD"); }

private:
    SGDOptions options_;
    std::vector<std::vector<T>> velocity_;
};

template <Scalar T>
class Adam {
public:
    explicit Adam(AdamOptions options = {}) : options_(options) {
        detail::check_rate<T>(options.learning_rate, "Adam", "learning_rate");
        detail::check_rate<T>(options.weight_decay, "Adam", "weight_decay");
        if (!(options.beta1 >= 0 && options.beta1 < 1) || !(options.beta2 >= 0 && options.beta2 < 1))
            throw parameter_error("Adam: beta1 and beta2 must lie in [0, 1)");
        if (!(options.epsilon > 0)) throw parameter_error("Adam: epsilon must be above 0");
    }

    [[nodiscard]] double learning_rate() const noexcept { return options_.learning_rate; }
    void set_learning_rate(double rate) {
        detail::check_rate<T>(rate, "Adam", "learning_rate");
        options_.learning_rate = rate;
    }
    [[nodiscard]] const AdamOptions& options() const noexcept { return options_; }

    void step(std::span<const ParameterGroup<T>> groups) {
        detail::size_state(first_, groups, "Adam::step");
        detail::size_state(second_, groups, "Adam::step");
        ++steps_;
        const double correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(steps_));
        const double correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(steps_));
        const T step_size = static_cast<T>(options_.learning_rate / correction1);
        const T root_correction2 = static_cast<T>(std::sqrt(correction2));
        const T b1 = static_cast<T>(options_.beta1), b2 = static_cast<T>(options_.beta2),
                eps = static_cast<T>(options_.epsilon), decay = static_cast<T>(options_.weight_decay);
        for (std::size_t g = 0; g < groups.size(); ++g) {
            const std::span<T> w = groups[g].values;
            const std::span<const T> grad = groups[g].gradients;
            const std::size_t weights = groups[g].layout.weights, learned = groups[g].layout.learned();
            T* m = first_[g].data();
            T* v = second_[g].data();
            detail::update_blocks(weights, learned, decay, [&](std::size_t begin, std::size_t end, T d) {
                for (std::size_t i = begin; i < end; ++i) {
                    const T gi = grad[i] + d * w[i];
                    m[i] = b1 * m[i] + (T{1} - b1) * gi;
                    v[i] = b2 * v[i] + (T{1} - b2) * gi * gi;
                    w[i] -= step_size * m[i] / (std::sqrt(v[i]) / root_correction2 + eps);
                }
            });
        }
    }

    /// The moments (first, then second, per group) and the step count, for checkpoints.
    [[nodiscard]] OptimizerState<T> state() const {
        OptimizerState<T> state{first_, steps_};
        state.buffers.insert(state.buffers.end(), second_.begin(), second_.end());
        return state;
    }
    void restore(OptimizerState<T> state) {
        if (state.buffers.size() % 2 != 0)
            throw parameter_error("Adam: a saved state has " + std::to_string(state.buffers.size()) +
                                  " buffers; Adam keeps two per parameter group");
        const auto half = static_cast<std::ptrdiff_t>(state.buffers.size() / 2);
        first_.assign(state.buffers.begin(), state.buffers.begin() + half);
        second_.assign(state.buffers.begin() + half, state.buffers.end());
        steps_ = state.steps;
    }
    /// Throws cnn::parameter_error unless the state fits `groups` (see detail::check_state).
    void check_state(std::span<const ParameterGroup<T>> groups) const {
        detail::check_state(first_, groups, "Adam");
        detail::check_state(second_, groups, "Adam");
    }

private:
    AdamOptions options_;
    std::vector<std::vector<T>> first_, second_;
    std::uint64_t steps_ = 0;
};

}  // namespace cnn
