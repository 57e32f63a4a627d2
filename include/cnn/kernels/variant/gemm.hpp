// Matrix products for the lowered convolution and dense layers:
//   C (m x n) = [C +] A (m x k) B (k x n),
// with A and B given by row and column strides (so transposes cost nothing)
// and C row-major. A packed, cache-blocked GEMM in the manner of Goto and van
// de Geijn (BLIS): B is packed in KC x NR panels that stay in L1, A in MR x KC
// panels streamed from L2, and a register-tiled micro-kernel keeps an MR x NR
// block of C in vector registers.
//
// Its tile of C is MR x NR, per variant (cnn/kernels/variant/simd.hpp):
//   AVX-512F          float MR x 32, double MR x 16   (zmm registers)
//   AVX2 + FMA        float MR x 16, double MR x 8    (ymm registers)
//   anything else     MR x 4 in portable C++
// where MR is the full height (12, 12, 6, 4) or 2/3, 1/2 or 1/3 of it, whichever
// pads m the least.
//
// Every element of C is summed in the same order (over k, in blocks of KC)
// whatever the split of m and n between calls, so results never depend on how
// the caller divides work between threads.

namespace cnn::kernels {
namespace CNN_KERNEL_VARIANT {

namespace detail {

/// Block sizes: an MR x KC panel of A and a KC x NR panel of B in L1, an MC x KC
/// block of A in L2, a KC x NC block of B in L3.
template <class T>
struct Blocking {
    static constexpr std::size_t mr = Vector<T>::rows, nr = Vector<T>::columns;
    static constexpr std::size_t kc = 256 * 4 / sizeof(T);
    static constexpr std::size_t mc = mr * (96 / mr + (96 % mr != 0));
    static constexpr std::size_t nc = nr * (2048 / nr);
};

/// Where a micro-kernel finds row p of its B panel (NR values): `stride` apart from `b`
/// (a packed panel, stride NR, or B itself when its rows are contiguous) ...
template <class T>
struct StridedRows {
    const T* b;
    std::size_t stride;
    const T* operator[](std::size_t p) const noexcept { return b + p * stride; }
};

/// ... or at b + offsets[p]: the rows of an implicit matrix, such as a convolution's input
/// planes shifted to each tap of the filter (gemm_rows).
template <class T>
struct OffsetRows {
    const T* b;
    const std::size_t* offsets;
    const T* operator[](std::size_t p) const noexcept { return b + offsets[p]; }
};

/// C (MR x Vectors lanes, leading dimension ldc) = [C +] the product of one packed A panel
/// (MR rows, column by column) and the first Vectors vectors of one B panel whose k-th row
/// starts at rows[k]. Each column of C is its own chain of multiply-adds, the same whatever
/// the width.
template <class T, std::size_t MR, std::size_t Vectors, class Rows>
void micro_kernel_of_width(std::size_t kc, const T* __restrict a, const Rows& rows, T* __restrict c, std::size_t ldc,
                           bool accumulate) {
    using V = Vector<T>;
    constexpr std::size_t vectors = Vectors;
    typename V::reg acc[MR][vectors];
#pragma GCC unroll 16
    for (std::size_t i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (std::size_t j = 0; j < vectors; ++j) acc[i][j] = V::zero();
    for (std::size_t p = 0; p < kc; ++p) {
        const T* const b = rows[p];
        typename V::reg bv[vectors];
#pragma GCC unroll 4
        for (std::size_t j = 0; j < vectors; ++j) bv[j] = V::loadu(b + j * V::lanes);
#pragma GCC unroll 16
        for (std::size_t i = 0; i < MR; ++i) {
            const typename V::reg av = V::broadcast(a + i);
#pragma GCC unroll 4
            for (std::size_t j = 0; j < vectors; ++j) acc[i][j] = V::fma(av, bv[j], acc[i][j]);
        }
        a += MR;
    }
#pragma GCC unroll 16
    for (std::size_t i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (std::size_t j = 0; j < vectors; ++j) {
            T* at = c + i * ldc + j * V::lanes;
            V::storeu(at, accumulate ? V::add(V::loadu(at), acc[i][j]) : acc[i][j]);
        }
}

/// C (MR x NR) = [C +] the product of one packed A panel and one B panel (NR values a row).
template <class T, std::size_t MR, class Rows>
void micro_kernel(std::size_t kc, const T* __restrict a, const Rows& rows, T* __restrict c, std::size_t ldc,
                  bool accumulate) {
    micro_kernel_of_width<T, MR, Vector<T>::columns / Vector<T>::lanes>(kc, a, rows, c, ldc, accumulate);
}

/// The same product for a tile of C that may be cut short (rows x cols of it are kept):
/// computed aside and the valid part copied; one vector wide where cols fit in one (a
/// product whose last panel has a few columns, such as Winograd's 196 on 7x7 planes, spent
/// a whole tile's multiply-adds on them).
template <class T, std::size_t MR, class Rows>
void edge_kernel(std::size_t kc, const T* a, const Rows& b, T* c, std::size_t ldc, bool accumulate,
                 std::size_t rows, std::size_t cols) {
    constexpr std::size_t nr = Vector<T>::columns, lanes = Vector<T>::lanes;
    if (rows == MR && cols == nr) return micro_kernel<T, MR>(kc, a, b, c, ldc, accumulate);
    alignas(64) T edge[MR * nr];
    if (cols <= lanes)
        micro_kernel_of_width<T, MR, 1>(kc, a, b, edge, nr, false);
    else
        micro_kernel<T, MR>(kc, a, b, edge, nr, false);
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < cols; ++j) c[i * ldc + j] = (accumulate ? c[i * ldc + j] : T{0}) + edge[i * nr + j];
}

/// Packs rows [0, m) x columns [0, k) of A into MR-row panels, column by column, zero-padded.
/// Rows that are contiguous in memory are transposed 16 columns at a time in registers where
/// the vector unit can (reading a column of them at a time made the compiler gather, which
/// cost more than the copy).
template <class T, std::size_t MR>
void pack_a(std::size_t m, std::size_t k, const T* a, std::ptrdiff_t rs, std::ptrdiff_t cs, T* __restrict out) {
    constexpr std::size_t mr = MR;
    for (std::size_t i0 = 0; i0 < m; i0 += mr) {
        const std::size_t rows = std::min(mr, m - i0);
        if (cs == 1) {
            const T* first = a + static_cast<std::ptrdiff_t>(i0) * rs;
            std::size_t p = 0;
            if constexpr (fast_transpose<T>)
                if (rs > 0)
                    for (; p + 16 <= k; p += 16)
                        transpose_into_panel(first + p, static_cast<std::size_t>(rs), rows, out + p * mr, mr);
            for (std::size_t i = 0; i < mr; ++i) {
                const T* row = first + static_cast<std::ptrdiff_t>(i) * rs;
                for (std::size_t q = p; q < k; ++q) out[q * mr + i] = i < rows ? row[q] : T{0};
            }
            out += k * mr;
            continue;
        }
        for (std::size_t p = 0; p < k; ++p) {
            const T* column = a + static_cast<std::ptrdiff_t>(i0) * rs + static_cast<std::ptrdiff_t>(p) * cs;
            if (rs == 1) {
                copy_run(column, rows, out);
            } else {
                for (std::size_t i = 0; i < rows; ++i) out[i] = column[static_cast<std::ptrdiff_t>(i) * rs];
            }
            for (std::size_t i = rows; i < mr; ++i) out[i] = T{0};
            out += mr;
        }
    }
}

/// Packs rows [0, k) x columns [0, n) of B into NR-column panels, row by row, zero-padded.
/// A transposed B (its columns contiguous, rs == 1) is packed by `transpose` (16 x 16 blocks
/// in registers where the vector unit has them): gathering it value by value costs more than
/// the product for the short sums of a weight gradient.
template <class T>
void pack_b(std::size_t k, std::size_t n, const T* b, std::ptrdiff_t rs, std::ptrdiff_t cs, T* __restrict out) {
    constexpr std::size_t nr = Blocking<T>::nr;
    const auto at = [&](std::size_t p, std::size_t j) -> const T& {
        return b[static_cast<std::ptrdiff_t>(p) * rs + static_cast<std::ptrdiff_t>(j) * cs];
    };
    for (std::size_t j0 = 0; j0 < n; j0 += nr, out += k * nr) {
        const std::size_t cols = std::min(nr, n - j0);
        if (cs == 1) {
            for (std::size_t p = 0; p < k; ++p) copy_run(&at(p, j0), cols, out + p * nr);
        } else if (rs == 1 && cs > 0) {
            transpose(&at(0, j0), static_cast<std::size_t>(cs), cols, k, out, nr);
        } else {
            for (std::size_t p = 0; p < k; ++p)
                for (std::size_t j = 0; j < cols; ++j) out[p * nr + j] = at(p, j0 + j);
        }
        if (cols < nr)
            for (std::size_t p = 0; p < k; ++p) zero_run(out + p * nr + cols, nr - cols);
    }
}

/// Packs rows [0, k) x columns [0, n) of a B whose columns lie anywhere in one buffer,
/// B(p, j) = b[offsets[j] + p], into NR-column panels, zero-padded (gemm_columns).
template <class T>
void pack_b_at(std::size_t k, std::size_t n, const T* b, const std::size_t* offsets, T* __restrict out) {
    constexpr std::size_t nr = Blocking<T>::nr;
    for (std::size_t j0 = 0; j0 < n; j0 += nr, out += k * nr) {
        const std::size_t cols = std::min(nr, n - j0);
        transpose_at(b, offsets + j0, cols, k, out, nr);
        if (cols < nr)
            for (std::size_t p = 0; p < k; ++p) zero_run(out + p * nr + cols, nr - cols);
    }
}

/// Per-thread packing memory for callers that bring none, allocated once per thread.
template <class T>
T* thread_pack_memory() {
    thread_local Tensor<T, 1> memory{Shape<1>{Blocking<T>::mc * Blocking<T>::kc + Blocking<T>::kc * Blocking<T>::nc}};
    return memory.data();
}

}  // namespace detail

/// Elements of packing memory one gemm call needs (see the `pack` argument of gemm).
template <Scalar T>
constexpr std::size_t gemm_pack_size() noexcept {
    using B = detail::Blocking<T>;
    return B::mc * B::kc + B::kc * B::nc;
}

namespace detail {

/// The length of the blocks k is summed in: at most KC, equal, whole multiples of 16 where
/// possible (see gemm_blocked).
template <Scalar T>
constexpr std::size_t k_step(std::size_t k) noexcept {
    const std::size_t kc = Blocking<T>::kc, blocks = (k + kc - 1) / kc;
    return std::min(kc, ((k + blocks - 1) / blocks + 15) / 16 * 16);
}

/// The blocked product with MR-row micro-tiles.
template <Scalar T, std::size_t MR>
void gemm_blocked(std::size_t m, std::size_t n, std::size_t k, const T* a, std::ptrdiff_t rs_a, std::ptrdiff_t cs_a,
                  const T* b, std::ptrdiff_t rs_b, std::ptrdiff_t cs_b, T* c, std::size_t ldc, Accumulate accumulate,
                  T* pack, const std::size_t* b_columns = nullptr) {
    using B = Blocking<T>;
    constexpr std::size_t nr = B::nr, mc_max = MR * (B::mc / MR);
    T* const packed_a = pack;
    T* const packed_b = pack + B::mc * B::kc;
    // With at most two row panels each B panel is used at most twice, and with a short k
    // (a first convolution's 9 or 25) the copy costs as much as the product: when its rows
    // are contiguous the micro-kernel then reads B in place instead of copying it first.
    // (With b_columns, B(p, j) is b[b_columns[j] + p]: always packed.)
    const bool read_b_in_place = b_columns == nullptr && cs_b == 1 && (m <= 2 * MR || k <= 32);
    // k in equal blocks of at most KC (288 = 144 + 144, not 256 + 32): a short last block
    // would cost a whole extra pass over C for little work. Blocks are whole multiples of 16
    // where possible, the height of pack_b's block transposes.
    const std::size_t kc_step = k_step<T>(k);

    for (std::size_t jc = 0; jc < n; jc += B::nc) {
        const std::size_t nc = std::min(B::nc, n - jc);
        for (std::size_t pc = 0; pc < k; pc += kc_step) {
            const std::size_t kc = std::min(kc_step, k - pc);
            const bool add = pc > 0 || accumulate == Accumulate::yes;
            const T* b_block = b + static_cast<std::ptrdiff_t>(pc) * rs_b + static_cast<std::ptrdiff_t>(jc) * cs_b;
            if (b_columns != nullptr)
                pack_b_at(kc, nc, b_block, b_columns + jc, packed_b);  // b_block = b + pc
            else if (!read_b_in_place)
                pack_b(kc, nc, b_block, rs_b, cs_b, packed_b);
            for (std::size_t ic = 0; ic < m; ic += mc_max) {
                const std::size_t mc = std::min(mc_max, m - ic);
                pack_a<T, MR>(mc, kc, a + static_cast<std::ptrdiff_t>(ic) * rs_a + static_cast<std::ptrdiff_t>(pc) * cs_a,
                              rs_a, cs_a, packed_a);
                for (std::size_t jr = 0; jr < nc; jr += nr) {
                    const std::size_t cols = std::min(nr, nc - jr);
                    // A panel of B: in place (full width only), or packed.
                    const T* pb = packed_b + jr * kc;
                    std::size_t b_stride = nr;
                    if (read_b_in_place) {
                        if (cols == nr) {
                            pb = b_block + jr;
                            b_stride = static_cast<std::size_t>(rs_b);
                        } else {
                            pack_b(kc, cols, b_block + jr, rs_b, cs_b, packed_b);
                            pb = packed_b;
                        }
                    }
                    for (std::size_t ir = 0; ir < mc; ir += MR)
                        edge_kernel<T, MR>(kc, packed_a + ir * kc, StridedRows<T>{pb, b_stride},
                                           c + (ic + ir) * ldc + jc + jr, ldc, add, std::min(MR, mc - ir), cols);
                }
            }
        }
    }
}

/// The micro-tile heights: the full MR, or 2/3, 1/2 or 1/3 of it.
template <class T>
inline constexpr std::size_t tile_heights[4] = {Blocking<T>::mr, Blocking<T>::mr * 2 / 3, Blocking<T>::mr / 2,
                                                Blocking<T>::mr / 3};

/// The tile height that pads m rows the least (the larger one on a tie): 16 filters
/// run as two tiles of 8 rows rather than 12 + 4.
template <class T>
std::size_t tile_height(std::size_t m) {
    const auto padded = [m](std::size_t h) { return (m + h - 1) / h * h; };
    std::size_t best = tile_heights<T>[0];
    for (const std::size_t h : tile_heights<T>)
        if (padded(h) < padded(best)) best = h;
    return best;
}

/// m rounded up to its product's tile height: the rows of A once packed.
template <class T>
std::size_t padded_rows(std::size_t m) {
    const std::size_t height = tile_height<T>(m);
    return (m + height - 1) / height * height;
}

/// Calls f(std::integral_constant<std::size_t, MR>) with the tile height of an m-row product.
template <class T, class F>
void with_tile_height(std::size_t m, F&& f) {
    const std::size_t height = tile_height<T>(m);
    if (height == tile_heights<T>[0])
        f(std::integral_constant<std::size_t, tile_heights<T>[0]>{});
    else if (height == tile_heights<T>[1])
        f(std::integral_constant<std::size_t, tile_heights<T>[1]>{});
    else if (height == tile_heights<T>[2])
        f(std::integral_constant<std::size_t, tile_heights<T>[2]>{});
    else
        f(std::integral_constant<std::size_t, tile_heights<T>[3]>{});
}

}  // namespace detail

namespace detail {

/// gemm and gemm_columns: B(p, j) = b[p rs_b + j cs_b], or with b_columns b[b_columns[j] + p].
template <Scalar T>
void gemm_any(std::size_t m, std::size_t n, std::size_t k, const T* a, std::ptrdiff_t rs_a, std::ptrdiff_t cs_a,
              const T* b, std::ptrdiff_t rs_b, std::ptrdiff_t cs_b, const std::size_t* b_columns, T* c,
              std::size_t ldc, Accumulate accumulate, T* pack) {
    if (m == 0 || n == 0) return;
    if (k == 0) {
        if (accumulate == Accumulate::no)
            for (std::size_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, T{0});
        return;
    }
    if (pack == nullptr) pack = thread_pack_memory<T>();
    with_tile_height<T>(m, [&](auto mr) {
        gemm_blocked<T, decltype(mr)::value>(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, c, ldc, accumulate, pack,
                                             b_columns);
    });
}

}  // namespace detail

/// C (m x n, row-major, leading dimension ldc) = [C +] A B, where A(i, p) = a[i rs_a + p cs_a]
/// and B(p, j) = b[p rs_b + j cs_b]. `pack` is gemm_pack_size<T>() elements of memory for the
/// packed panels, 64-byte aligned (when null, a buffer of the calling thread's, allocated on
/// its first use).
template <Scalar T>
void gemm(std::size_t m, std::size_t n, std::size_t k, const T* a, std::ptrdiff_t rs_a, std::ptrdiff_t cs_a, const T* b,
          std::ptrdiff_t rs_b, std::ptrdiff_t cs_b, T* c, std::size_t ldc, Accumulate accumulate, T* pack = nullptr) {
    detail::gemm_any(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, nullptr, c, ldc, accumulate, pack);
}

/// C (m x n, row-major, leading dimension ldc) = [C +] A B, where A(i, p) = a[i rs_a + p cs_a]
/// and B(p, j) = b[offsets[j] + p]: columns of B anywhere in one buffer, such as the rows of a
/// convolution's implicit im2col (its input planes shifted to each tap of the filters), which
/// are transposed into B's panels as they are packed. `pack` as for gemm; every element of C
/// is summed in the order gemm sums it.
template <Scalar T>
void gemm_columns(std::size_t m, std::size_t n, std::size_t k, const T* a, std::ptrdiff_t rs_a, std::ptrdiff_t cs_a,
                  const T* b, const std::size_t* offsets, T* c, std::size_t ldc, Accumulate accumulate,
                  T* pack = nullptr) {
    detail::gemm_any(m, n, k, a, rs_a, cs_a, b, 1, 0, offsets, c, ldc, accumulate, pack);
}

/// Elements of memory pack_whole_a needs for an m x k A: m rounded up to the tile height, times k.
template <Scalar T>
std::size_t packed_a_size(std::size_t m, std::size_t k) noexcept {
    return detail::padded_rows<T>(m) * k;
}

/// Packs all of A (m x k, A(i, p) = a[i rs + p cs]) for gemm_rows: block by block of k, each
/// block's MR-row panels, as gemm packs them one block at a time. Products that share A (a
/// convolution's filters, sample after sample) pack it once.
template <Scalar T>
void pack_whole_a(std::size_t m, std::size_t k, const T* a, std::ptrdiff_t rs, std::ptrdiff_t cs, T* out) {
    const std::size_t padded = detail::padded_rows<T>(m), step = detail::k_step<T>(k);
    detail::with_tile_height<T>(m, [&](auto mr) {
        for (std::size_t pc = 0; pc < k; pc += step)
            detail::pack_a<T, decltype(mr)::value>(m, std::min(step, k - pc), a + static_cast<std::ptrdiff_t>(pc) * cs,
                                                   rs, cs, out + padded * pc);
    });
}

/// Elements of memory gemm_rows needs for its last panel of columns.
template <Scalar T>
constexpr std::size_t gemm_rows_edge_size() noexcept {
    return detail::Blocking<T>::kc * detail::Blocking<T>::nr;
}

/// C (m x n, row-major, leading dimension ldc) = [C +] A B, where A was packed by pack_whole_a
/// and B(p, j) = b[offsets[p] + j]: rows of B anywhere in one buffer, which the micro-kernel
/// reads in place (a convolution's input planes shifted to each tap of its filters: an
/// implicit im2col). Only the last panel of columns, when n is not a whole number of panels,
/// is copied, into `edge` (gemm_rows_edge_size elements), so nothing past b[offsets[p] + n)
/// is read. Every element of C is summed in the order gemm sums it.
template <Scalar T>
void gemm_rows(std::size_t m, std::size_t n, std::size_t k, const T* packed_a, const T* b, const std::size_t* offsets,
               T* c, std::size_t ldc, Accumulate accumulate, T* edge) {
    using detail::Blocking, detail::OffsetRows, detail::StridedRows;
    constexpr std::size_t nr = Blocking<T>::nr;
    if (m == 0 || n == 0) return;
    const std::size_t padded = detail::padded_rows<T>(m), step = detail::k_step<T>(k);
    detail::with_tile_height<T>(m, [&](auto mr) {
        constexpr std::size_t MR = decltype(mr)::value;
        for (std::size_t pc = 0; pc < k; pc += step) {
            const std::size_t kc = std::min(step, k - pc);
            const bool add = pc > 0 || accumulate == Accumulate::yes;
            const T* const a_block = packed_a + padded * pc;
            for (std::size_t jr = 0; jr < n; jr += nr) {
                const std::size_t cols = std::min(nr, n - jr);
                const auto tiles = [&](const auto& rows) {
                    for (std::size_t ir = 0; ir < m; ir += MR)
                        detail::edge_kernel<T, MR>(kc, a_block + ir * kc, rows, c + ir * ldc + jr, ldc, add,
                                                   std::min(MR, m - ir), cols);
                };
                if (cols == nr) {
                    tiles(OffsetRows<T>{b + jr, offsets + pc});
                    continue;
                }
                for (std::size_t p = 0; p < kc; ++p) {
                    detail::copy_run(b + offsets[pc + p] + jr, cols, edge + p * nr);
                    detail::zero_run(edge + p * nr + cols, nr - cols);
                }
                tiles(StridedRows<T>{edge, nr});
            }
        }
    });
}

/// The fraction of the multiply-adds of an m x n product's register tiles that land in C
/// (the rest pad m up to the tile height and n up to the tile width), for callers that can
/// compute a product or its transpose.
template <Scalar T>
double gemm_tile_use(std::size_t m, std::size_t n) noexcept {
    constexpr std::size_t nr = detail::Blocking<T>::nr;
    const std::size_t h = detail::tile_height<T>(m);
    return static_cast<double>(m * n) / static_cast<double>((m + h - 1) / h * h * ((n + nr - 1) / nr * nr));
}

}  // namespace CNN_KERNEL_VARIANT
}  // namespace cnn::kernels
