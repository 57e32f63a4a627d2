// Tensor and TensorView: layout, alignment, views, copies, bounds checks and shape printing.
#include <cnn/tensor.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <sstream>

TEMPLATE_TEST_CASE("Tensor is contiguous, row-major and 64-byte aligned", "[tensor]", float, double) {
    cnn::Tensor<TestType, 4> t({2, 3, 4, 5});
    CHECK(t.size() == 120);
    CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
    for (TestType v : t) CHECK(v == 0);  // zero-initialised
    t(1, 2, 3, 4) = 7;
    CHECK(t.data()[((1 * 3 + 2) * 4 + 3) * 5 + 4] == 7);
    CHECK(t[1][2][3].data()[4] == 7);
    CHECK(t[1].shape() == cnn::Shape<3>{3, 4, 5});
}

TEMPLATE_TEST_CASE("Tensor copies deeply and moves cheaply", "[tensor]", float, double) {
    cnn::Tensor<TestType, 2> a({2, 2}, {1, 2, 3, 4});
    cnn::Tensor<TestType, 2> b = a;
    b(0, 0) = 9;
    CHECK(a(0, 0) == 1);
    const TestType* storage = b.data();
    cnn::Tensor<TestType, 2> c = std::move(b);
    CHECK(c.data() == storage);
    CHECK(c(0, 0) == 9);
    a = c;
    CHECK(a(0, 0) == 9);
    CHECK(a.data() != c.data());
}

TEMPLATE_TEST_CASE("Views share storage and mutable views convert to const views", "[tensor]", float, double) {
    cnn::Tensor<TestType, 3> t({2, 2, 3}, TestType{1});
    cnn::TensorView<TestType, 3> view = t;
    view(1, 1, 2) = 5;
    CHECK(t(1, 1, 2) == 5);
    cnn::TensorView<const TestType, 3> read_only = view;
    CHECK(read_only(1, 1, 2) == 5);
    const auto flat = read_only.reshape(cnn::Shape<1>{12});
    CHECK(flat(11) == 5);
    CHECK_THROWS_AS(read_only.reshape(cnn::Shape<2>{5, 2}), cnn::shape_error);
}

TEST_CASE("resize keeps the storage when the tensor does not grow", "[tensor]") {
    cnn::Tensor<float, 4> t({64, 6, 28, 28});
    const float* storage = t.data();
    t.resize({32, 6, 28, 28});
    CHECK(t.data() == storage);
    CHECK(t.shape() == cnn::Shape<4>{32, 6, 28, 28});
    t.resize({128, 6, 28, 28});
    CHECK(t.size() == 128 * 6 * 28 * 28);
}

TEST_CASE("Shapes print as [64, 6, 28, 28]", "[tensor]") {
    CHECK(cnn::to_string(cnn::Shape<4>{64, 6, 28, 28}) == "[64, 6, 28, 28]");
    std::ostringstream out;
    out << cnn::Tensor<double, 2>({3, 4});
    CHECK(out.str() == "Tensor[3, 4]");
}

TEST_CASE("A tensor built from values checks their count", "[tensor]") {
    CHECK_THROWS_WITH((cnn::Tensor<double, 2>({2, 2}, {1, 2, 3})),
                      "a tensor of shape [2, 2] needs 4 values, got 3");
}

#if CNN_BOUNDS_CHECK
TEST_CASE("Element access is bounds-checked in debug builds", "[tensor]") {
    cnn::Tensor<float, 3> t({2, 3, 4});
    CHECK_THROWS_WITH(t(0, 3, 0), "index [0, 3, 0] out of range for a tensor of shape [2, 3, 4]");
    CHECK_THROWS_AS(t[2], std::out_of_range);
    CHECK_NOTHROW(t(1, 2, 3));
}
#endif
