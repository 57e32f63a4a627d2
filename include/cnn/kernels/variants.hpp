// Every kernel variant, compiled side by side in one translation unit: the files
// under cnn/kernels/variant/ are included once per variant, inside
// cnn::kernels::avx512, ::avx2 and ::portable, each between the compiler's
// per-function target options for its instruction set (GCC's `#pragma GCC target`,
// Clang's `#pragma clang attribute`). So the AVX-512 and AVX2 kernels exist in
// every program, whatever flags it is compiled with, and run only where the
// processor has them: cnn/kernels/common.hpp chooses, and the headers beside this
// one (gemm.hpp, conv2d.hpp, dense.hpp, pooling.hpp, normalization.hpp) call the chosen
// variant.
//
// Everything the variant files use is included here first, outside the target
// options: a standard or library function first seen inside them would itself be
// compiled for AVX-512, and could then not run on a processor without it.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#if CNN_KERNEL_DISPATCH
#include <immintrin.h>
#endif

#include "cnn/kernels/common.hpp"
#include "cnn/kernels/threads.hpp"
#include "cnn/scratch.hpp"
#include "cnn/reference/activation.hpp"
#include "cnn/reference/pooling.hpp"
#include "cnn/tensor.hpp"

#define CNN_KERNEL_FILES_ "cnn/kernels/variant/all.hpp"

#if CNN_KERNEL_DISPATCH

#define CNN_KERNEL_LEVEL 2
#define CNN_KERNEL_VARIANT avx512
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi,bmi2"))), \
                             apply_to = function)
#include CNN_KERNEL_FILES_
#pragma clang attribute pop
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma,bmi,bmi2")
#include CNN_KERNEL_FILES_
#pragma GCC pop_options
#endif
#undef CNN_KERNEL_VARIANT
#undef CNN_KERNEL_LEVEL

#define CNN_KERNEL_LEVEL 1
#define CNN_KERNEL_VARIANT avx2
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi,bmi2"))), apply_to = function)
#include CNN_KERNEL_FILES_
#pragma clang attribute pop
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,bmi,bmi2")
#include CNN_KERNEL_FILES_
#pragma GCC pop_options
#endif
#undef CNN_KERNEL_VARIANT
#undef CNN_KERNEL_LEVEL

#endif  // CNN_KERNEL_DISPATCH

#define CNN_KERNEL_LEVEL 0
#define CNN_KERNEL_VARIANT portable
#include CNN_KERNEL_FILES_
#undef CNN_KERNEL_VARIANT
#undef CNN_KERNEL_LEVEL

#undef CNN_KERNEL_FILES_

/// `return variant::call;` for the active variant: CNN_KERNEL_CALL(gemm<T>(m, n, ...)).
#if CNN_KERNEL_DISPATCH
#define CNN_KERNEL_CALL(...)                                                     \
    switch (::cnn::kernels::active_variant()) {                                  \
        case ::cnn::kernels::Variant::avx512: return avx512::__VA_ARGS__;        \
        case ::cnn::kernels::Variant::avx2: return avx2::__VA_ARGS__;            \
        case ::cnn::kernels::Variant::portable: break;                           \
    }                                                                            \
    return portable::__VA_ARGS__
#else
#define CNN_KERNEL_CALL(...) return portable::__VA_ARGS__
#endif
