// Bad input: impossible shapes throw cnn::shape_error naming the layer, its
// parameters and both shapes; invalid hyper-parameters are rejected at
// construction with a message that names the parameter and why.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

using cnn::Shape;

TEST_CASE("Conv2D rejects an input with the wrong channel count", "[errors]") {
    const cnn::Conv2D<float> conv{3, 8, 3, {.stride = 1, .padding = 1}};
    CHECK_THROWS_AS(conv.output_shape({2, 4, 10, 10}), cnn::shape_error);
    CHECK_THROWS_WITH(conv.output_shape({2, 4, 10, 10}),
                      "Conv2D(3->8, 3x3, stride 1, padding 1) expects 3 input channels, got input [2, 4, 10, 10]");
}

TEST_CASE("Conv2D rejects a kernel larger than the padded input", "[errors]") {
    const cnn::Conv2D<float> conv{1, 2, {5, 3}};
    CHECK_THROWS_WITH(conv.output_shape({1, 1, 4, 9}),
                      "Conv2D(1->2, 5x3, stride 1, padding 0): the 5x3 kernel is larger than the padded input of "
                      "input [1, 1, 4, 9] (padded 4x9)");
    const cnn::Conv2D<float> padded{1, 2, {5, 3}, {.padding = 1}};
    CHECK(padded.output_shape({1, 1, 4, 9}) == Shape<4>{1, 2, 2, 9});
}

TEST_CASE("Pooling rejects a window larger than the input", "[errors]") {
    const cnn::MaxPool<double> max_pool{3};
    CHECK_THROWS_WITH(max_pool.output_shape({1, 2, 2, 8}),
                      "MaxPool(3x3, stride 3): the window is larger than the input [1, 2, 2, 8]");
    const cnn::MeanPool<double> mean_pool{{2, 4}, 1};
    CHECK_THROWS_AS(mean_pool.output_shape({1, 2, 5, 3}), cnn::shape_error);
}

TEST_CASE("Max pooling with recorded winners rejects a winner count that does not fit the output", "[errors]") {
    const cnn::MaxPool<float> pool{2};
    cnn::Tensor<float, 4> x({3, 2, 4, 4}), y({3, 2, 2, 2});
    std::vector<std::uint32_t> winners(y.size() - 1);
    CHECK_THROWS_WITH(pool.forward_after_relu(x, y, winners),
                      "MaxPool(2x2, stride 2): 23 winners for the 24 outputs of shape [3, 2, 2, 2]");
    CHECK_THROWS_WITH(pool.backward_from_winners(winners, y, x),
                      "MaxPool(2x2, stride 2): 23 winners for the 24 outputs of shape [3, 2, 2, 2]");
    CHECK_THROWS_WITH(pool.forward_winners(x, y, winners),
                      "MaxPool(2x2, stride 2): 23 winners for the 24 outputs of shape [3, 2, 2, 2]");
    CHECK_THROWS_WITH(pool.for_each_winner(winners, x.shape(), [](std::size_t, std::size_t) {}),
                      "MaxPool(2x2, stride 2): 23 winners for the 24 outputs of shape [3, 2, 2, 2]");
    winners.push_back(0);
    CHECK_NOTHROW(pool.forward_after_relu(x, y, winners));
    CHECK_NOTHROW(pool.forward_winners(x, y, winners));
}

TEST_CASE("Dense rejects an input with the wrong feature count", "[errors]") {
    const cnn::Dense<float> dense{400, 120};
    CHECK_THROWS_WITH(dense.output_shape({64, 16, 7, 7}),
                      "Dense(400->120) expects 400 inputs, gets 784 (input [64, 16, 7, 7])");
}

TEST_CASE("Forward rejects an output buffer of the wrong shape", "[errors]") {
    const cnn::ReLU<float> relu;
    cnn::Tensor<float, 4> x({1, 2, 3, 3}), y({1, 2, 3, 4});
    cnn::Scratch<float> scratch;
    CHECK_THROWS_WITH(relu.forward(x, y, scratch), "ReLU: forward output has shape [1, 2, 3, 4], expected [1, 2, 3, 3]");
}

TEST_CASE("Invalid hyper-parameters are rejected at construction", "[errors]") {
    using Conv = cnn::Conv2D<float>;
    CHECK_THROWS_WITH((Conv{1, 2, 3, {.stride = 0}}), "Conv2D: stride must be at least 1, got 0");
    CHECK_THROWS_WITH((Conv{1, 2, 3, {.padding = -1}}), "Conv2D: padding must be at least 0, got -1");
    CHECK_THROWS_WITH((Conv{1, 0, 3}), "Conv2D: filters must be at least 1, got 0");
    CHECK_THROWS_WITH((Conv{0, 2, 3}), "Conv2D: in_channels must be at least 1, got 0");
    CHECK_THROWS_WITH((Conv{1, 2, {3, 0}}), "Conv2D: kernel width must be at least 1, got 0");
    CHECK_THROWS_WITH((Conv{1, 2, -3}), "Conv2D: kernel height must be at least 1, got -3");
    CHECK_THROWS_WITH((cnn::MaxPool<float>{0}), "MaxPool: window height must be at least 1, got 0");
    CHECK_THROWS_WITH((cnn::MeanPool<float>{2, 0}), "MeanPool: stride must be at least 1, got 0");
    CHECK_THROWS_WITH((cnn::Dense<float>{10, 0}), "Dense: out_features must be at least 1, got 0");
    CHECK_THROWS_AS((cnn::Dense<float>{-1, 3}), cnn::parameter_error);
}
