// The choice of kernel variant: the best one the processor runs by default, each
// supported one selectable, and a wrong CNN_KERNELS a clear error.
#include <cnn/cnn.hpp>
#include <cnn/kernels/gemm.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <random>
#include <vector>

#include "test_support.hpp"

using cnn::kernels::Variant;

namespace {

/// Restores the variant in use when it goes out of scope.
struct KeepVariant {
    Variant saved = cnn::kernels::active_variant();
    ~KeepVariant() { cnn::kernels::use_variant(saved); }
};

}  // namespace

TEST_CASE("Without CNN_KERNELS the kernels run the best variant the processor has", "[variants]") {
    REQUIRE(std::getenv("CNN_KERNELS") == nullptr);
    CHECK(cnn::kernels::active_variant() == cnn::kernels::best_variant());
    CHECK(cnn::kernels::supported(Variant::portable));
    // A processor with AVX-512 has AVX2 as well: the variants are nested.
    if (cnn::kernels::supported(Variant::avx512)) CHECK(cnn::kernels::supported(Variant::avx2));
}

TEST_CASE("Every variant the processor runs gives the same product, to rounding", "[variants]") {
    const KeepVariant keep;
    std::mt19937_64 rng(5);
    const std::size_t m = 37, n = 70, k = 129;
    const auto a = cnn::test::random_tensor<double>(cnn::Shape<1>{m * k}, rng);
    const auto b = cnn::test::random_tensor<double>(cnn::Shape<1>{k * n}, rng);
    std::vector<double> expected(m * n, 0.0);
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j)
            for (std::size_t p = 0; p < k; ++p) expected[i * n + j] += a(i * k + p) * b(p * n + j);
    int ran = 0;
    for (const Variant v : {Variant::portable, Variant::avx2, Variant::avx512}) {
        if (!cnn::kernels::supported(v)) continue;
        INFO(cnn::kernels::name(v));
        cnn::kernels::use_variant(v);
        REQUIRE(std::string(cnn::kernels::gemm_kernel_name()) == cnn::kernels::name(v));
        std::vector<double> c(m * n, -1.0);
        cnn::kernels::gemm<double>(m, n, k, a.data(), static_cast<std::ptrdiff_t>(k), 1, b.data(),
                                   static_cast<std::ptrdiff_t>(n), 1, c.data(), n, cnn::kernels::Accumulate::no);
        double worst = 0;
        for (std::size_t i = 0; i < m * n; ++i) worst = std::max(worst, std::abs(c[i] - expected[i]));
        CHECK(worst < 1e-12);
        ++ran;
    }
    CHECK(ran >= 1);
}

TEST_CASE("CNN_KERNELS naming no variant is an error that lists the variants", "[variants][errors]") {
    REQUIRE(::setenv("CNN_KERNELS", "sse9", 1) == 0);
    CHECK_THROWS_WITH(cnn::kernels::detail::initial_variant(),
                      "CNN_KERNELS=sse9: not a kernel variant (portable, avx2 or avx512)");
    REQUIRE(::setenv("CNN_KERNELS", "portable", 1) == 0);
    CHECK(cnn::kernels::detail::initial_variant() == Variant::portable);
    REQUIRE(::unsetenv("CNN_KERNELS") == 0);
    CHECK(cnn::kernels::detail::initial_variant() == cnn::kernels::best_variant());
}
