// The fully connected kernels behind the Dense layer, batched as matrix
// products (FORMULAS.md sections 6 and 7 for a batch of N rows):
//   forward:      Y (N x out)   = X (N x in) W^T (in x out) + b
//   input grad:   dX (N x in)   = dY (N x out) W (out x in)
//   weight grad:  dW (out x in) += dY^T (out x N) X (N x in),   db += column sums of dY
// Work is split by columns of the result, which never changes a sum: the results
// are the same for any thread count.



namespace cnn::kernels {
namespace CNN_KERNEL_VARIANT {

/// Products are split between threads by columns of the result, in one part per thread
/// cut at multiples of this many columns: each part then packs only its own columns of
/// the large operand (splitting by rows made every part pack all of W).
inline constexpr std::size_t dense_column_grain = 32;

/// The columns [first, last) of part `part` of `parts` over n columns.
inline std::pair<std::size_t, std::size_t> column_part(std::size_t n, std::size_t part, std::size_t parts) {
    const std::size_t grains = (n + dense_column_grain - 1) / dense_column_grain;
    const auto at = [&](std::size_t p) { return std::min(n, grains * p / parts * dense_column_grain); };
    return {at(part), at(part + 1)};
}

/// Parts for n columns: `per_thread` per thread on more than one thread (one on one
/// thread), no more than there are grains.
inline std::size_t column_parts(std::size_t n, std::size_t per_thread = 1) {
    const std::size_t wanted = threads() == 1 ? 1 : threads() * per_thread;
    return std::max<std::size_t>(1, std::min(wanted, (n + dense_column_grain - 1) / dense_column_grain));
}

template <Scalar T>
void dense_forward(const T* x, std::size_t samples, std::size_t in, TensorView<const T, 2> w, std::span<const T> b,
                   T* y, Scratch<T>& scratch) {
    const std::size_t out = w.extent(0), parts = column_parts(out);
    const WorkerScratch<T> packs = scratch.per_worker(threads(), gemm_pack_size<T>());
    thread_pool().parallel_for(parts, [&](std::size_t part, std::size_t worker) {
        const auto [first, last] = column_part(out, part, parts);
        for (std::size_t n = 0; n < samples; ++n) std::copy(b.data() + first, b.data() + last, y + n * out + first);
        // Y[:, first:last] += X (N x in) W[first:last]^T (in x cols)
        gemm<T>(samples, last - first, in, x, static_cast<std::ptrdiff_t>(in), 1, w.data() + first * in, 1,
                static_cast<std::ptrdiff_t>(in), y + first, out, Accumulate::yes, packs.worker(worker));
    });
}

/// Writes (or adds into) dx, skipped when null, and adds dE/dW and dE/db.
template <Scalar T>
void dense_backward(const T* x, const T* dy, std::size_t samples, std::size_t in, TensorView<const T, 2> w, T* dx,
                    TensorView<T, 2> dw, std::span<T> db, Scratch<T>& scratch, Accumulate accumulate_dx = Accumulate::no) {
    // Four parts per thread: the parts pack only the small dY besides their own columns,
    // and smaller parts let a faster core take more of them (cores of a virtual machine,
    // or a hybrid processor's, need not run at the same speed).
    const std::size_t out = w.extent(0), parts = column_parts(in, 4);
    const WorkerScratch<T> packs = scratch.per_worker(threads(), gemm_pack_size<T>());
    thread_pool().parallel_for(dx ? 2 * parts : parts, [&](std::size_t task, std::size_t worker) {
        T* const pack = packs.worker(worker);
        const auto [first, last] = column_part(in, task % parts, parts);
        if (task < parts) {
            // dW[:, first:last] += dY^T (out x N) X[:, first:last]
            gemm<T>(out, last - first, samples, dy, 1, static_cast<std::ptrdiff_t>(out), x + first,
                    static_cast<std::ptrdiff_t>(in), 1, dw.data() + first, in, Accumulate::yes, pack);
            if (task == 0)
                for (std::size_t n = 0; n < samples; ++n)
                    for (std::size_t j = 0; j < out; ++j) db[j] += dy[n * out + j];
        } else {
            // dX[:, first:last] (+)= dY (N x out) W[:, first:last]
            gemm<T>(samples, last - first, out, dy, static_cast<std::ptrdiff_t>(out), 1, w.data() + first,
                    static_cast<std::ptrdiff_t>(in), 1, dx + first, in, accumulate_dx, pack);
        }
    });
}

}  // namespace CNN_KERNEL_VARIANT
}  // namespace cnn::kernels
