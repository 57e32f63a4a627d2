// cnn::Random: the seeded generator users own (xoshiro256**, seeded through
// splitmix64). Its numbers are defined by this file alone, not by the standard
// library's distributions, so the same seed gives the same weights and the same
// shuffles with every compiler and on every run.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace cnn {

class Random {
public:
    using result_type = std::uint64_t;

    explicit Random(std::uint64_t seed = 0) noexcept { reseed(seed); }

    void reseed(std::uint64_t seed) noexcept {
        for (std::uint64_t& word : state_) {
            seed += 0x9e3779b97f4a7c15ULL;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            word = z ^ (z >> 31);
        }
    }

    static constexpr result_type min() noexcept { return 0; }
    static constexpr result_type max() noexcept { return ~result_type{0}; }

    result_type operator()() noexcept {
        const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const std::uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    /// Uniform in [0, 1) with 53 random bits.
    double uniform() noexcept { return static_cast<double>((*this)() >> 11) * 0x1.0p-53; }

    /// Uniform in [low, high).
    double uniform(double low, double high) noexcept { return low + (high - low) * uniform(); }

    /// Uniform integer in [0, bound), without modulo bias.
    std::uint64_t below(std::uint64_t bound) noexcept {
        const std::uint64_t limit = max() - max() % bound;
        for (;;) {
            const std::uint64_t value = (*this)();
            if (value < limit) return value % bound;
        }
    }

    /// Standard normal (Box-Muller).
    double normal() noexcept {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u1 = uniform();
        while (u1 <= 0.0) u1 = uniform();
        const double u2 = uniform();
        const double radius = std::sqrt(-2.0 * std::log(u1));
        spare_ = radius * std::sin(2.0 * std::numbers::pi * u2);
        has_spare_ = true;
        return radius * std::cos(2.0 * std::numbers::pi * u2);
    }

    /// The full state, to save and restore a training run exactly.
    struct State {
        std::uint64_t words[4];
        double spare;
        bool has_spare;
    };
    [[nodiscard]] State state() const noexcept {
        return {{state_[0], state_[1], state_[2], state_[3]}, spare_, has_spare_};
    }
    void restore(const State& state) noexcept {
        for (int i = 0; i < 4; ++i) state_[i] = state.words[i];
        spare_ = state.spare;
        has_spare_ = state.has_spare;
    }

private:
    static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

    std::uint64_t state_[4]{};
    double spare_ = 0;
    bool has_spare_ = false;
};

}  // namespace cnn
