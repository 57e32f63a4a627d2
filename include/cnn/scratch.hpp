// Scratch memory: one growable buffer, reused from call to call, that kernels and
// layers borrow for their temporaries (im2col columns, packed GEMM panels, partial
// sums). It belongs to the caller (inside a network's Workspace), never to a layer,
// so a const network runs on many threads, each with its own.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>

#include "cnn/tensor.hpp"

namespace cnn {

/// Scratch memory of a kernel run by several workers (see Scratch::per_worker).
template <Scalar T>
struct WorkerScratch {
    T* first;            ///< worker 0's memory
    std::size_t stride;  ///< from one worker's memory to the next
    T* shared;           ///< memory for all workers, after theirs

    [[nodiscard]] T* worker(std::size_t w) const noexcept { return first + w * stride; }
};

/// A growable scratch buffer reused between calls; it allocates only when a
/// request is larger than anything asked for before.
template <Scalar T>
class Scratch {
public:
    /// `count` elements of uninitialised scratch memory, valid until the next call.
    std::span<T> get(std::size_t count) {
        if (count > buffer_.size()) buffer_ = Tensor<T, 1>({count});
        return {buffer_.data(), count};
    }

    /// `per_worker` elements for each of `workers` workers and `shared` elements for all,
    /// uninitialised, valid until the next call. Each worker's memory starts at the same
    /// place for every kernel that asks (the stride only grows, to the largest request), so
    /// what one kernel's worker w leaves in its core's cache is what the next kernel's
    /// worker w writes: no cache line moves between cores from one kernel to the next.
    WorkerScratch<T> per_worker(std::size_t workers, std::size_t per_worker, std::size_t shared = 0) {
        constexpr std::size_t line = tensor_alignment / sizeof(T);
        stride_ = std::max(stride_, (per_worker + line - 1) / line * line);
        T* const first = get(workers * stride_ + shared).data();
        return {first, stride_, first + workers * stride_};
    }

private:
    Tensor<T, 1> buffer_;
    std::size_t stride_ = 0;
};

}  // namespace cnn
