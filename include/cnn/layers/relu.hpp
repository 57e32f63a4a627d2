// ReLU: y = max(0, x); backward dE/dx = dE/dy o f'(x) with f'(0) = 0 (FORMULAS.md section 2).
// It runs reference::relu and reference::relu_backward on blocks spread over the thread pool.
#pragma once

#include <algorithm>
#include <span>
#include <string>

#include "cnn/kernels/threads.hpp"
#include "cnn/layer.hpp"
#include "cnn/reference/activation.hpp"

namespace cnn {

template <Scalar T>
class ReLU : public detail::WithoutParameters<T> {
public:
    using value_type = T;
    /// max(0, x) never decreases: a max pool after it may run first (see graph/fuse.hpp).
    static constexpr bool monotone_non_decreasing = true;
    /// Backward reads x, never y; and in place, with y given as x, y > 0 exactly where x > 0:
    /// a network runs it on the memory of the output before it (see cnn/layer.hpp).
    static constexpr bool backward_ignores_output = true;
    static constexpr bool runs_in_place = true;

    [[nodiscard]] std::string describe() const { return "ReLU"; }
    [[nodiscard]] Shape<4> output_shape(const Shape<4>& in) const { return in; }

    void forward(TensorView<const T, 4> x, TensorView<T, 4> y, Context<T> /*context*/) const {
        detail::expect_shape(y, x.shape(), *this, "forward output");
        parallel_blocks(x.size(), block_size, [&](std::size_t begin, std::size_t end) {
            reference::relu<T, 1>(block(x.data(), begin, end), block(y.data(), begin, end));
        });
    }

    void backward(TensorView<const T, 4> x, TensorView<const T, 4> /*y*/, TensorView<const T, 4> dy,
                  TensorView<T, 4> dx, Context<T> /*context*/, Accumulate accumulate = Accumulate::no) {
        if (dx.data() == nullptr) return;
        detail::expect_shape(dy, x.shape(), *this, "output gradient");
        detail::expect_shape(dx, x.shape(), *this, "input gradient");
        // Raw pointers and a select, not a branch: the loops vectorise (a branch on the sign of
        // x mispredicts half the time on real activations and ran 30x slower).
        const T *in = x.data(), *d_out = dy.data();
        T* d_in = dx.data();
        parallel_blocks(x.size(), block_size, [=](std::size_t begin, std::size_t end) {
            const T* x_block = in + begin;
            const T* dy_block = d_out + begin;
            T* dx_block = d_in + begin;
            const std::size_t count = end - begin;
            if (accumulate == Accumulate::no)
                for (std::size_t i = 0; i < count; ++i) {
                    const T d = dy_block[i];
                    dx_block[i] = x_block[i] > T{0} ? d : T{0};
                }
            else
                for (std::size_t i = 0; i < count; ++i) {
                    const T d = dy_block[i];
                    dx_block[i] += x_block[i] > T{0} ? d : T{0};
                }
        });
    }

private:
    /// Elements [begin, end) of a tensor's data as a flat view.
    template <class U>
    static TensorView<U, 1> block(U* data, std::size_t begin, std::size_t end) {
        return {data + begin, {end - begin}};
    }

    static constexpr std::size_t block_size = 1 << 15;
};

}  // namespace cnn
