// What every kernel variant shares, and the choice between the variants.
//
// The fast kernels exist in up to three variants, all compiled into every program
// that includes them, each for one instruction set:
//   avx512     AVX-512F (with VL, BW, DQ), 16 floats / 8 doubles per register
//   avx2       AVX2 + FMA, 8 floats / 4 doubles per register
//   portable   plain C++ for whatever the compiler targets
// The processor is asked once, at the first kernel call, which it runs, and the
// best one is used from then on, whatever flags the program was compiled with:
// a user's build without -march=native is as fast as ours. (On compilers other
// than GCC and Clang, and on processors other than x86, only the portable variant
// exists.)
//
// Each variant computes every sum in its own fixed order, so results are the same
// bits for any thread count; two variants may differ in the last bits (a fused
// multiply-add rounds once). To pin a variant, for tests or to compare:
//   cnn::kernels::use_variant(cnn::kernels::Variant::portable);
// or set CNN_KERNELS=portable (or avx2, avx512) in the environment.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>

#include "cnn/error.hpp"
#include "cnn/reference/convolution.hpp"
#include "cnn/reference/pooling.hpp"

// The variants beyond the portable one need GCC's or Clang's per-function target
// options (see cnn/kernels/variants.hpp), and an x86 processor.
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define CNN_KERNEL_DISPATCH 1
#else
#define CNN_KERNEL_DISPATCH 0
#endif

// GCC 12 warns about the deliberately undefined register inside its own AVX-512
// intrinsics (GCC bug 105593); the warning is about its header, not our code, so
// functions written in those intrinsics sit between these two.
#if defined(__GNUC__) && !defined(__clang__)
#define CNN_INTRINSICS_BEGIN                                                                            \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")               \
        _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define CNN_INTRINSICS_END _Pragma("GCC diagnostic pop")
#else
#define CNN_INTRINSICS_BEGIN
#define CNN_INTRINSICS_END
#endif

namespace cnn::kernels {

enum class Variant { portable, avx2, avx512 };

/// "portable", "avx2" or "avx512".
constexpr const char* name(Variant variant) noexcept {
    switch (variant) {
        case Variant::avx512: return "avx512";
        case Variant::avx2: return "avx2";
        case Variant::portable: break;
    }
    return "portable";
}

/// Whether this processor (and this build) can run `variant`.
inline bool supported(Variant variant) noexcept {
    if (variant == Variant::portable) return true;
#if CNN_KERNEL_DISPATCH
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                      __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    if (variant == Variant::avx2) return avx2;
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
#else
    return false;
#endif
}

/// The fastest variant this processor runs.
inline Variant best_variant() noexcept {
    if (supported(Variant::avx512)) return Variant::avx512;
    if (supported(Variant::avx2)) return Variant::avx2;
    return Variant::portable;
}

namespace detail {

inline constexpr int no_variant_yet = -1;
inline std::atomic<int> active_variant{no_variant_yet};

/// The variant named by CNN_KERNELS, or the best one when it is not set.
inline Variant initial_variant() {
    const char* wanted = std::getenv("CNN_KERNELS");
    if (wanted == nullptr || *wanted == '\0') return best_variant();
    for (const Variant v : {Variant::portable, Variant::avx2, Variant::avx512}) {
        if (std::string_view{wanted} != name(v)) continue;
        if (!supported(v))
            throw parameter_error(std::string("CNN_KERNELS=") + wanted + ": this processor cannot run the " + wanted +
                                  " kernels (the best it runs is " + name(best_variant()) + ")");
        return v;
    }
    throw parameter_error(std::string("CNN_KERNELS=") + wanted + ": not a kernel variant (portable, avx2 or avx512)");
}

}  // namespace detail

/// The variant the kernels use: the one given to use_variant, else the one CNN_KERNELS
/// names, else the best this processor runs. Throws cnn::parameter_error when CNN_KERNELS
/// names no variant this processor runs.
inline Variant active_variant() {
    int active = detail::active_variant.load(std::memory_order_relaxed);
    if (active == detail::no_variant_yet) {
        active = static_cast<int>(detail::initial_variant());
        detail::active_variant.store(active, std::memory_order_relaxed);
    }
    return static_cast<Variant>(active);
}

/// Makes the kernels use `variant` from now on (not while a kernel runs). Throws
/// cnn::parameter_error when this processor cannot run it.
inline void use_variant(Variant variant) {
    if (!supported(variant))
        throw parameter_error(std::string("use_variant: this processor cannot run the ") + name(variant) +
                              " kernels (the best it runs is " + name(best_variant()) + ")");
    detail::active_variant.store(static_cast<int>(variant), std::memory_order_relaxed);
}

// The types the kernels' arguments are made of live in a namespace of their own: were
// they declared in cnn::kernels itself, argument-dependent lookup would find the
// dispatching functions of cnn/kernels/*.hpp beside each variant's own, and a variant's
// call to its own gemm would be ambiguous.
namespace types {

using cnn::Accumulate;

/// Samples per work item of a convolution. Fixed, so that the weight-gradient partial sums
/// (one per chunk, added in chunk order) are the same whatever the thread count.
inline constexpr std::size_t conv_chunk = 4;

/// The default hook of conv2d_forward and conv2d_backward: none.
struct NoHook {
    template <class View>
    void operator()(std::size_t /*first*/, std::size_t /*last*/, const View& /*part*/) const noexcept {}
};

/// A convolution's stride, zero padding and dilation, per axis (height, width).
using ConvSpec = reference::ConvSpec;

struct PoolGeometry {
    std::size_t planes;  // N * C
    std::size_t height, width, out_h, out_w;
    reference::Window window;
    std::size_t stride;
    std::size_t pad_h = 0, pad_w = 0;  // at most half the window: every window covers an input cell
    bool count_padding = true;         // mean pooling: divide by the whole window, padding included

    [[nodiscard]] bool padded() const noexcept { return pad_h != 0 || pad_w != 0; }
    /// 2 x 2 windows with stride 2 and no padding, which the vectorised rows handle.
    [[nodiscard]] bool two_by_two() const noexcept {
        return window.height == 2 && window.width == 2 && stride == 2 && !padded();
    }
};

/// Per-channel coefficients of an affine map of a plane (BatchNorm2D's forward and error
/// term): out = a (x - center) + b dy + offset. For a ReLU after it (BatchNormReLU): with
/// `rectify`, out = max(0, that) (forward, which writes out); with a `gate` (the ReLU's output), dy counts only
/// where gate > 0, as the ReLU's backward would have passed it on (error term and sums).
template <Scalar T>
struct ChannelAffine {
    std::span<const T> center, a, b, offset;
    bool rectify = false;
};

/// A range of channel planes [begin, end): one kernel call's share of the batch.
struct Planes {
    std::size_t begin, end;
};

/// A max pool after a ReLU can remember, per output, where its delta goes: the first maximum's
/// place in the window, or no_winner where the maximum is not positive (the ReLU is off there
/// and passes nothing). Its backward then needs neither the input nor the output (see
/// maxpool_forward_winners).
inline constexpr std::uint32_t no_winner = 0xFFFFFFFFu;

/// What window_cell gives for a place outside the window or in its padding.
inline constexpr std::size_t no_cell = static_cast<std::size_t>(-1);

/// Where place `at` (row-major within the window, as the winners record it) of window (i, j)
/// lies in its input plane, u * width + v; or no_cell when `at` is outside the window or
/// in its padding (so no_winner, and any value a corrupt record holds, is no cell).
inline std::size_t window_cell(const PoolGeometry& g, std::size_t i, std::size_t j, std::uint32_t at) noexcept {
    if (at >= g.window.height * g.window.width) return no_cell;
    // In padded coordinates the place is row i S + p, column j S + q.
    const std::size_t row = i * g.stride + at / g.window.width, column = j * g.stride + at % g.window.width;
    if (row < g.pad_h || row - g.pad_h >= g.height || column < g.pad_w || column - g.pad_w >= g.width) return no_cell;
    return (row - g.pad_h) * g.width + column - g.pad_w;
}

}  // namespace types

using types::Accumulate;
using types::ChannelAffine;
using types::conv_chunk;
using types::ConvSpec;
using types::NoHook;
using types::no_cell;
using types::no_winner;
using types::Planes;
using types::PoolGeometry;
using types::window_cell;

}  // namespace cnn::kernels
