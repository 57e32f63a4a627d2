// One kernel variant: included by cnn/kernels/variants.hpp once per variant, with
// CNN_KERNEL_VARIANT (the namespace) and CNN_KERNEL_LEVEL (0 portable, 1 AVX2 + FMA,
// 2 AVX-512) set, inside that variant's target options. No include guard, on purpose;
// and no #include in these files: everything they use is included before the target
// options begin.
#include "cnn/kernels/variant/simd.hpp"
#include "cnn/kernels/variant/gemm.hpp"
#include "cnn/kernels/variant/dense.hpp"
#include "cnn/kernels/variant/conv2d.hpp"
#include "cnn/kernels/variant/winograd.hpp"
#include "cnn/kernels/variant/strided.hpp"
#include "cnn/kernels/variant/grouped.hpp"
#include "cnn/kernels/variant/pooling.hpp"
#include "cnn/kernels/variant/normalization.hpp"
