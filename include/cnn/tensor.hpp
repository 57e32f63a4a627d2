// Tensor<T, Rank>: an owning, contiguous, row-major, 64-byte aligned array, and
// TensorView<T, Rank>: its cheap non-owning counterpart (mutable or const).
//
// Element access through operator() is bounds-checked when NDEBUG is not
// defined (or CNN_BOUNDS_CHECK is defined) and costs nothing otherwise.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <numeric>
#include <ostream>
#include <span>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "cnn/error.hpp"

#if !defined(NDEBUG) && !defined(CNN_BOUNDS_CHECK)
#define CNN_BOUNDS_CHECK 1
#endif

namespace cnn {

template <std::size_t Rank>
using Shape = std::array<std::size_t, Rank>;

/// "[64, 6, 28, 28]"
template <std::size_t Rank>
std::string to_string(const Shape<Rank>& shape) {
    std::string text = "[";
    for (std::size_t i = 0; i < Rank; ++i) {
        if (i != 0) text += ", ";
        text += std::to_string(shape[i]);
    }
    return text + "]";
}

template <std::size_t Rank>
constexpr std::size_t element_count(const Shape<Rank>& shape) noexcept {
    std::size_t count = 1;
    for (std::size_t extent : shape) count *= extent;
    return count;
}

/// The element types a tensor may hold: any floating-point type (const-qualified for views).
template <class T>
concept Scalar = std::floating_point<std::remove_const_t<T>>;

inline constexpr std::size_t tensor_alignment = 64;

/// How a result goes into a tensor: written over what it holds, or added to it (the gradient of
/// a tensor that two branches of a network read is the sum of what each passes back).
enum class Accumulate { no, yes };

template <Scalar T, std::size_t Rank>
class TensorView {
public:
    using value_type = std::remove_const_t<T>;
    using element_type = T;
    static constexpr std::size_t rank = Rank;

    constexpr TensorView() noexcept = default;
    constexpr TensorView(T* data, const Shape<Rank>& shape) noexcept : data_(data), shape_(shape) {}

    /// A mutable view converts to a const one.
    template <class U>
        requires(std::is_const_v<T> && std::same_as<U, value_type>)
    constexpr TensorView(const TensorView<U, Rank>& other) noexcept  // NOLINT(google-explicit-constructor)
        : data_(other.data()), shape_(other.shape()) {}

    [[nodiscard]] constexpr T* data() const noexcept { return data_; }
    [[nodiscard]] constexpr const Shape<Rank>& shape() const noexcept { return shape_; }
    [[nodiscard]] constexpr std::size_t extent(std::size_t axis) const noexcept { return shape_[axis]; }
    [[nodiscard]] constexpr std::size_t size() const noexcept { return element_count(shape_); }
    [[nodiscard]] constexpr bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] constexpr T* begin() const noexcept { return data_; }
    [[nodiscard]] constexpr T* end() const noexcept { return data_ + size(); }
    [[nodiscard]] constexpr std::span<T> span() const noexcept { return {data_, size()}; }

    template <std::integral... Index>
        requires(sizeof...(Index) == Rank)
    constexpr T& operator()(Index... index) const {
        const std::array<std::size_t, Rank> at{static_cast<std::size_t>(index)...};
#if CNN_BOUNDS_CHECK
        check_bounds(at);
#endif
        std::size_t offset = 0;
        for (std::size_t axis = 0; axis < Rank; ++axis) offset = offset * shape_[axis] + at[axis];
        return data_[offset];
    }

    /// The sub-tensor at position `index` of the first axis (sample n of a batch, channel c of a sample).
    [[nodiscard]] constexpr TensorView<T, Rank - 1> operator[](std::size_t index) const
        requires(Rank > 1)
    {
#if CNN_BOUNDS_CHECK
        if (index >= shape_[0])
            throw std::out_of_range("index " + std::to_string(index) + " out of range for axis 0 of a tensor of shape " +
                                    to_string(shape_));
#endif
        Shape<Rank - 1> inner{};
        std::copy(shape_.begin() + 1, shape_.end(), inner.begin());
        return {data_ + index * element_count(inner), inner};
    }

    /// The same elements seen with another shape of equal element count.
    template <std::size_t NewRank>
    [[nodiscard]] TensorView<T, NewRank> reshape(const Shape<NewRank>& shape) const {
        if (element_count(shape) != size())
            throw shape_error("cannot reshape a tensor of shape " + to_string(shape_) + " (" + std::to_string(size()) +
                              " elements) to " + to_string(shape) + " (" + std::to_string(element_count(shape)) +
                              " elements)");
        return {data_, shape};
    }

private:
#if CNN_BOUNDS_CHECK
    void check_bounds(const std::array<std::size_t, Rank>& at) const {
        for (std::size_t axis = 0; axis < Rank; ++axis) {
            if (at[axis] >= shape_[axis]) {
                throw std::out_of_range("index " + to_string(at) + " out of range for a tensor of shape " +
                                        to_string(shape_));
            }
        }
    }
#endif

    T* data_ = nullptr;
    Shape<Rank> shape_{};
};

template <Scalar T, std::size_t Rank>
std::ostream& operator<<(std::ostream& out, const TensorView<T, Rank>& view) {
    return out << "Tensor" << to_string(view.shape());
}

namespace detail {
struct AlignedDelete {
    void operator()(void* pointer) const noexcept { ::operator delete(pointer, std::align_val_t{tensor_alignment}); }
};
}  // namespace detail

template <Scalar T, std::size_t Rank>
    requires(!std::is_const_v<T>)
class Tensor {
public:
    using value_type = T;
    static constexpr std::size_t rank = Rank;

    Tensor() = default;

    /// A zero-filled tensor of the given shape.
    explicit Tensor(const Shape<Rank>& shape) : Tensor(shape, T{0}) {}

    /// The element count of `shape`; throws cnn::shape_error when it, or its size in bytes,
    /// does not fit in a std::size_t (a wrapped count would pass every bounds check).
    static std::size_t checked_count(const Shape<Rank>& shape) {
        constexpr std::size_t most = std::numeric_limits<std::size_t>::max() / sizeof(T);
        if (std::find(shape.begin(), shape.end(), std::size_t{0}) != shape.end()) return 0;
        std::size_t count = 1;
        bool overflow = false;
        for (std::size_t extent : shape) {
            overflow = overflow || (extent != 0 && count > most / extent);
            count *= extent;
        }
        if (overflow)
            throw shape_error("Tensor: the shape " + to_string(shape) + " has more elements than memory can address");
        return count;
    }

    Tensor(const Shape<Rank>& shape, T value) : shape_(shape), storage_(allocate(checked_count(shape))) {
        std::fill_n(storage_.get(), size(), value);
    }

    /// A tensor holding `values` (row-major); their count must match the shape.
    Tensor(const Shape<Rank>& shape, std::span<const T> values) : shape_(shape), storage_(allocate(values.size())) {
        if (values.size() != checked_count(shape))
            throw shape_error("a tensor of shape " + to_string(shape) + " needs " +
                              std::to_string(element_count(shape)) + " values, got " + std::to_string(values.size()));
        std::copy(values.begin(), values.end(), storage_.get());
    }
    Tensor(const Shape<Rank>& shape, std::initializer_list<T> values)
        : Tensor(shape, std::span<const T>(values.begin(), values.size())) {}

    explicit Tensor(TensorView<const T, Rank> view) : Tensor(view.shape(), view.span()) {}

    Tensor(const Tensor& other) : Tensor(other.view()) {}
    Tensor(Tensor&& other) noexcept
        : shape_(std::exchange(other.shape_, Shape<Rank>{})),
          capacity_(std::exchange(other.capacity_, 0)),
          storage_(std::move(other.storage_)) {}
    Tensor& operator=(const Tensor& other) {
        if (this != &other) {
            if (other.size() > capacity_) storage_ = allocate(other.size());
            shape_ = other.shape_;
            std::copy(other.begin(), other.end(), storage_.get());
        }
        return *this;
    }
    Tensor& operator=(Tensor&& other) noexcept {
        shape_ = std::exchange(other.shape_, Shape<Rank>{});
        capacity_ = std::exchange(other.capacity_, 0);
        storage_ = std::move(other.storage_);
        return *this;
    }
    ~Tensor() = default;

    [[nodiscard]] TensorView<T, Rank> view() noexcept { return {storage_.get(), shape_}; }
    [[nodiscard]] TensorView<const T, Rank> view() const noexcept { return {storage_.get(), shape_}; }
    [[nodiscard]] TensorView<const T, Rank> cview() const noexcept { return {storage_.get(), shape_}; }
    operator TensorView<T, Rank>() noexcept { return view(); }  // NOLINT(google-explicit-constructor)
    operator TensorView<const T, Rank>() const noexcept { return view(); }  // NOLINT(google-explicit-constructor)

    [[nodiscard]] T* data() noexcept { return storage_.get(); }
    [[nodiscard]] const T* data() const noexcept { return storage_.get(); }
    [[nodiscard]] const Shape<Rank>& shape() const noexcept { return shape_; }
    [[nodiscard]] std::size_t extent(std::size_t axis) const noexcept { return shape_[axis]; }
    [[nodiscard]] std::size_t size() const noexcept { return element_count(shape_); }
    [[nodiscard]] bool empty() const noexcept { return size() == 0; }
    [[nodiscard]] T* begin() noexcept { return data(); }
    [[nodiscard]] T* end() noexcept { return data() + size(); }
    [[nodiscard]] const T* begin() const noexcept { return data(); }
    [[nodiscard]] const T* end() const noexcept { return data() + size(); }
    [[nodiscard]] std::span<T> span() noexcept { return {data(), size()}; }
    [[nodiscard]] std::span<const T> span() const noexcept { return {data(), size()}; }

    template <std::integral... Index>
        requires(sizeof...(Index) == Rank)
    T& operator()(Index... index) {
        return view()(index...);
    }
    template <std::integral... Index>
        requires(sizeof...(Index) == Rank)
    const T& operator()(Index... index) const {
        return view()(index...);
    }
    [[nodiscard]] TensorView<T, Rank - 1> operator[](std::size_t index)
        requires(Rank > 1)
    {
        return view()[index];
    }
    [[nodiscard]] TensorView<const T, Rank - 1> operator[](std::size_t index) const
        requires(Rank > 1)
    {
        return view()[index];
    }

    void fill(T value) noexcept { std::fill(begin(), end(), value); }

    /// Gives the tensor a new shape. Keeps (and does not clear) the storage when
    /// the element count does not grow, so a buffer reused across batches is
    /// allocated once.
    void resize(const Shape<Rank>& shape) {
        if (checked_count(shape) > capacity_) {
            storage_ = allocate(element_count(shape));
            std::fill_n(storage_.get(), element_count(shape), T{0});
        }
        shape_ = shape;
    }

private:
    using Storage = std::unique_ptr<T[], detail::AlignedDelete>;

    Storage allocate(std::size_t count) {
        capacity_ = count;
        if (count == 0) return Storage{};
        void* memory = ::operator new(count * sizeof(T), std::align_val_t{tensor_alignment});
        return Storage{static_cast<T*>(memory)};
    }

    Shape<Rank> shape_{};
    std::size_t capacity_ = 0;
    Storage storage_;
};

template <Scalar T, std::size_t Rank>
std::ostream& operator<<(std::ostream& out, const Tensor<T, Rank>& tensor) {
    return out << tensor.view();
}

}  // namespace cnn
