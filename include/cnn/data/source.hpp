// Where fit and evaluate read their samples from. A BatchSource is anything that can fill a
// batch tensor and its labels for a list of sample indices: a Dataset (every image in memory,
// as bytes) is one, and so is a type of the user's that reads the images of each batch from
// disk, a database or a generator, for data that does not fit in memory. Two adaptors:
// SourceRef points at any source without its type (FitOptions::monitor_data is one), and
// SubsetSource is a source's samples at some indices, without copying them (fit's
// validation split).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "cnn/data/dataset.hpp"
#include "cnn/error.hpp"
#include "cnn/random.hpp"
#include "cnn/tensor.hpp"

namespace cnn {

/// What fit and evaluate need of their data, for inputs of scalar type T:
///   size()                     the number of samples, indexed 0 to size() - 1
///   class_count()              the number of classes; every label is below it
///   batch_shape(n)             {n, channels, rows, cols}, the input tensor of n samples
///   check(who)                 throws (naming `who`) when the source cannot be read as it says
///   fill_batch<T>(indices, x, labels, normalization)
///   fill_batch<T>(indices, x, labels, normalization, augmentation, rng)
///                              write the samples `indices`, in that order, into x (of
///                              batch_shape(indices.size())) and their labels into labels,
///                              the second augmenting with draws from rng (write_image does
///                              the normalisation and augmentation of one image of bytes)
/// fill_batch is called from one thread at a time. For the same seed, fit's result depends
/// only on what fill_batch writes, never on where the bytes came from.
template <class S, class T = float>
concept BatchSource =
    Scalar<T> && requires(const S& source, std::size_t n, std::span<const std::size_t> indices, TensorView<T, 4> x,
                          std::span<std::uint32_t> labels, const Normalization& normalization,
                          const Augmentation& augmentation, Random& rng, const char* who) {
        { source.size() } -> std::convertible_to<std::size_t>;
        { source.class_count() } -> std::convertible_to<std::size_t>;
        { source.batch_shape(n) } -> std::convertible_to<Shape<4>>;
        source.check(who);
        source.template fill_batch<T>(indices, x, labels, normalization);
        source.template fill_batch<T>(indices, x, labels, normalization, augmentation, rng);
    };

/// A non-owning pointer to a batch source of any type (filling float and double batches), itself
/// a BatchSource. It converts from a pointer to the source, so `options.monitor_data = &test;`
/// works for a Dataset and for a source of one's own alike; the source must outlive its use.
class SourceRef {
public:
    SourceRef() noexcept = default;
    SourceRef(std::nullptr_t) noexcept {}  // NOLINT: implicit, like a pointer
    template <class S>
        requires BatchSource<S, float> && BatchSource<S, double>
    SourceRef(const S* source) noexcept  // NOLINT: implicit, like a pointer
        : source_(source), table_(source == nullptr ? nullptr : &table_of<S>) {}

    explicit operator bool() const noexcept { return source_ != nullptr; }
    /// `options.monitor_data == nullptr` (and `!=`) as for the pointer it replaced.
    friend bool operator==(const SourceRef& ref, std::nullptr_t) noexcept { return ref.source_ == nullptr; }

    [[nodiscard]] std::size_t size() const { return table().size(source_); }
    [[nodiscard]] std::size_t class_count() const { return table().class_count(source_); }
    [[nodiscard]] Shape<4> batch_shape(std::size_t n) const { return table().batch_shape(source_, n); }
    void check(const char* who) const {
        if (source_ == nullptr) throw parameter_error(std::string(who) + ": the data source is null");
        table().check(source_, who);
    }
    template <Scalar T>
    void fill_batch(std::span<const std::size_t> indices, TensorView<T, 4> x, std::span<std::uint32_t> labels,
                    const Normalization& normalization) const {
        fill<T>(indices, x, labels, normalization, Augmentation{}, nullptr);
    }
    template <Scalar T>
    void fill_batch(std::span<const std::size_t> indices, TensorView<T, 4> x, std::span<std::uint32_t> labels,
                    const Normalization& normalization, const Augmentation& augmentation, Random& rng) const {
        fill<T>(indices, x, labels, normalization, augmentation, &rng);
    }

private:
    template <Scalar T>
    using Fill = void (*)(const void*, std::span<const std::size_t>, TensorView<T, 4>, std::span<std::uint32_t>,
                          const Normalization&, const Augmentation&, Random*);
    struct Table {
        std::size_t (*size)(const void*);
        std::size_t (*class_count)(const void*);
        Shape<4> (*batch_shape)(const void*, std::size_t);
        void (*check)(const void*, const char*);
        Fill<float> fill_float;
        Fill<double> fill_double;
    };

    template <class S, Scalar T>
    static void fill_of(const void* source, std::span<const std::size_t> indices, TensorView<T, 4> x,
                        std::span<std::uint32_t> labels, const Normalization& normalization,
                        const Augmentation& augmentation, Random* rng) {
        const S& s = *static_cast<const S*>(source);
        if (rng == nullptr)
            s.template fill_batch<T>(indices, x, labels, normalization);
        else
            s.template fill_batch<T>(indices, x, labels, normalization, augmentation, *rng);
    }

    template <class S>
    static constexpr Table table_of{
        [](const void* s) -> std::size_t { return static_cast<const S*>(s)->size(); },
        [](const void* s) -> std::size_t { return static_cast<const S*>(s)->class_count(); },
        [](const void* s, std::size_t n) -> Shape<4> { return static_cast<const S*>(s)->batch_shape(n); },
        [](const void* s, const char* who) { static_cast<const S*>(s)->check(who); },
        &fill_of<S, float>,
        &fill_of<S, double>};

    [[nodiscard]] const Table& table() const {
        if (table_ == nullptr) throw parameter_error("SourceRef: used without a data source");
        return *table_;
    }
    template <Scalar T>
    void fill(std::span<const std::size_t> indices, TensorView<T, 4> x, std::span<std::uint32_t> labels,
              const Normalization& normalization, const Augmentation& augmentation, Random* rng) const {
        if constexpr (std::same_as<T, float>)
            table().fill_float(source_, indices, x, labels, normalization, augmentation, rng);
        else
            table().fill_double(source_, indices, x, labels, normalization, augmentation, rng);
    }

    const void* source_ = nullptr;
    const Table* table_ = nullptr;
};

/// The samples of `source` at `indices` (sample i of the subset is sample indices[i] of the
/// source), without copying them; the source must outlive the subset. Its fill_batch uses a
/// buffer of its own: one thread at a time, as for any source.
template <class S>
class SubsetSource {
public:
    /// Throws cnn::parameter_error for an index past the end of the source.
    SubsetSource(const S& source, std::vector<std::size_t> indices) : source_(&source), indices_(std::move(indices)) {
        const std::size_t count = source.size();
        for (const std::size_t index : indices_)
            if (index >= count)
                throw parameter_error("SubsetSource: sample " + std::to_string(index) + " of a source of " +
                                      std::to_string(count));
        mapped_.reserve(indices_.size());  // fill_batch never allocates
    }

    [[nodiscard]] std::size_t size() const noexcept { return indices_.size(); }
    [[nodiscard]] std::size_t class_count() const { return source_->class_count(); }
    [[nodiscard]] Shape<4> batch_shape(std::size_t n) const { return source_->batch_shape(n); }
    void check(const char* who) const { source_->check(who); }
    [[nodiscard]] std::span<const std::size_t> indices() const noexcept { return indices_; }

    template <Scalar T>
    void fill_batch(std::span<const std::size_t> indices, TensorView<T, 4> x, std::span<std::uint32_t> labels,
                    const Normalization& normalization) const {
        source_->template fill_batch<T>(map(indices), x, labels, normalization);
    }
    template <Scalar T>
    void fill_batch(std::span<const std::size_t> indices, TensorView<T, 4> x, std::span<std::uint32_t> labels,
                    const Normalization& normalization, const Augmentation& augmentation, Random& rng) const {
        source_->template fill_batch<T>(map(indices), x, labels, normalization, augmentation, rng);
    }

private:
    std::span<const std::size_t> map(std::span<const std::size_t> indices) const {
        if (indices.size() > indices_.size())
            throw parameter_error("SubsetSource: a batch of " + std::to_string(indices.size()) +
                                  " samples from a subset of " + std::to_string(indices_.size()));
        mapped_.resize(indices.size());
        for (std::size_t i = 0; i < indices.size(); ++i) {
            if (indices[i] >= indices_.size())
                throw parameter_error("SubsetSource: sample " + std::to_string(indices[i]) + " of a subset of " +
                                      std::to_string(indices_.size()));
            mapped_[i] = indices_[indices[i]];
        }
        return mapped_;
    }

    const S* source_;
    std::vector<std::size_t> indices_;
    mutable std::vector<std::size_t> mapped_;
};

static_assert(BatchSource<Dataset> && BatchSource<Dataset, double>);
static_assert(BatchSource<SourceRef> && BatchSource<SubsetSource<Dataset>>);

}  // namespace cnn
