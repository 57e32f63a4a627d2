// Batch sources other than an in-memory Dataset: a source that reads every batch's images from
// a file on disk trains to the same bits as the Dataset holding the same images; SubsetSource
// and SourceRef adapt sources and refuse what they cannot serve.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

/// The kind of source a user writes for data that does not fit in memory: the images stay in
/// a file of raw bytes (one image after the other) and each batch reads its own; only the
/// labels are in memory. It normalises and augments through cnn::write_image, as Dataset does.
class StreamedImages {
public:
    StreamedImages(const fs::path& file, std::vector<std::uint8_t> labels, std::size_t rows, std::size_t cols,
                   std::size_t classes)
        : in_(file, std::ios::binary), labels_(std::move(labels)), rows_(rows), cols_(cols), classes_(classes),
          bytes_(rows * cols) {}

    [[nodiscard]] std::size_t size() const noexcept { return labels_.size(); }
    [[nodiscard]] std::size_t class_count() const noexcept { return classes_; }
    [[nodiscard]] cnn::Shape<4> batch_shape(std::size_t n) const noexcept { return {n, 1, rows_, cols_}; }
    void check(const char* who) const {
        if (!in_) throw cnn::data_error(std::string(who) + ": the image file cannot be read");
    }
    template <cnn::Scalar T>
    void fill_batch(std::span<const std::size_t> indices, cnn::TensorView<T, 4> x, std::span<std::uint32_t> labels,
                    const cnn::Normalization& normalization) const {
        fill<T>(indices, x, labels, normalization, {}, nullptr);
    }
    template <cnn::Scalar T>
    void fill_batch(std::span<const std::size_t> indices, cnn::TensorView<T, 4> x, std::span<std::uint32_t> labels,
                    const cnn::Normalization& normalization, const cnn::Augmentation& augmentation,
                    cnn::Random& rng) const {
        fill<T>(indices, x, labels, normalization, augmentation, &rng);
    }

    mutable std::size_t reads = 0;  ///< images read from the file so far

private:
    template <cnn::Scalar T>
    void fill(std::span<const std::size_t> indices, cnn::TensorView<T, 4> x, std::span<std::uint32_t> labels,
              const cnn::Normalization& normalization, const cnn::Augmentation& augmentation, cnn::Random* rng) const {
        cnn::check_batch(indices.size(), x, labels.size(), batch_shape(indices.size()), "StreamedImages");
        buffer_.resize(bytes_);
        for (std::size_t b = 0; b < indices.size(); ++b) {
            in_.seekg(static_cast<std::streamoff>(indices[b] * bytes_));
            in_.read(reinterpret_cast<char*>(buffer_.data()), static_cast<std::streamsize>(bytes_));
            if (!in_) throw cnn::data_error("StreamedImages: image " + std::to_string(indices[b]) + " cannot be read");
            ++reads;
            cnn::write_image<T>(buffer_, x, b, normalization, augmentation, rng);
            labels[b] = labels_[indices[b]];
        }
    }

    mutable std::ifstream in_;
    std::vector<std::uint8_t> labels_;
    std::size_t rows_, cols_, classes_, bytes_;
    mutable std::vector<std::uint8_t> buffer_;
};

static_assert(cnn::BatchSource<StreamedImages> && cnn::BatchSource<StreamedImages, double>);
static_assert(!cnn::BatchSource<int> && !cnn::BatchSource<std::vector<std::uint8_t>>);

/// A network small enough for 8x8 bars, its result as a model file.
auto make_net() {
    return cnn::Sequential{cnn::Conv2D<float>{1, 4, 3, {.padding = 1}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                           cnn::Flatten<float>{}, cnn::Dense<float>{64, 16}, cnn::ReLU<float>{},
                           cnn::Dense<float>{16, 4}};
}

template <class Source>
std::pair<std::vector<std::uint8_t>, cnn::History<float>> train_on(const Source& train, cnn::SourceRef monitor) {
    auto net = make_net();
    cnn::Random rng{21};
    net.initialize(rng);
    cnn::SGD<float> sgd{{.learning_rate = 0.05, .momentum = 0.9}};
    cnn::FitOptions options;
    options.epochs = 3;
    options.batch_size = 16;
    options.validation_fraction = 0.2;
    options.augmentation = {.crop_padding = 1, .horizontal_flip = true, .cutout = 2};
    options.normalization = {0.2, 0.3};
    options.monitor_data = monitor;
    auto history = cnn::fit(net, sgd, train, rng, options);
    return {cnn::serialize_model(net), std::move(history)};
}

}  // namespace

TEST_CASE("A source that streams its images from disk trains to the bits of the in-memory data set",
          "[data][source]") {
    const fs::path dir = cnn::test::scratch_directory("streamed");
    const cnn::Dataset train = cnn::test::make_bars(150, 31), test = cnn::test::make_bars(60, 32);
    for (const auto& [data, name] : {std::pair{&train, "train.bytes"}, std::pair{&test, "test.bytes"}}) {
        std::ofstream out(dir / name, std::ios::binary);
        out.write(reinterpret_cast<const char*>(data->images.data()), static_cast<std::streamsize>(data->images.size()));
    }
    const StreamedImages streamed_train(dir / "train.bytes", train.labels, 8, 8, 4);
    const StreamedImages streamed_test(dir / "test.bytes", test.labels, 8, 8, 4);

    const auto [in_memory, memory_history] = train_on(train, &test);
    const auto [from_disk, disk_history] = train_on(streamed_train, &streamed_test);
    CHECK(in_memory == from_disk);
    // Every epoch read its training images, the validation split and the monitor data from disk.
    CHECK(streamed_train.reads == 3 * 150);
    CHECK(streamed_test.reads == 3 * 60);
    REQUIRE(disk_history.epochs.size() == 3);
    for (std::size_t e = 0; e < 3; ++e) {
        const auto& memory = memory_history.epochs[e];
        const auto& disk = disk_history.epochs[e];
        CHECK(memory.train_loss == disk.train_loss);
        CHECK(memory.validation->loss == disk.validation->loss);
        CHECK(memory.validation->confusion == disk.validation->confusion);
        CHECK(memory.monitor->confusion == disk.monitor->confusion);
    }

    // evaluate reads any source too, and counts the same.
    auto net = make_net();
    cnn::Random rng{3};
    net.initialize(rng);
    const auto a = cnn::evaluate(net, test), b = cnn::evaluate(net, streamed_test);
    CHECK(a.loss == b.loss);
    CHECK(a.confusion == b.confusion);

    // A broken source says so through fit and evaluate.
    const StreamedImages missing(dir / "no-such-file", train.labels, 8, 8, 4);
    cnn::SGD<float> sgd;
    CHECK_THROWS_WITH(cnn::fit(net, sgd, missing, rng, {}), "fit: the image file cannot be read");
    CHECK_THROWS_WITH(cnn::evaluate(net, missing), "evaluate: the image file cannot be read");
}

TEST_CASE("SubsetSource serves a source's samples at its indices, without copying them", "[data][source]") {
    const cnn::Dataset data = cnn::test::make_bars(30, 33);
    const std::vector<std::size_t> picked{29, 0, 7, 7, 12};
    const cnn::SubsetSource subset(data, picked);
    const cnn::Dataset copy = data.subset(picked);
    REQUIRE(subset.size() == 5);
    CHECK(subset.class_count() == 4);
    CHECK(subset.batch_shape(2) == cnn::Shape<4>{2, 1, 8, 8});

    const std::vector<std::size_t> batch{4, 1, 3};
    cnn::Tensor<float, 4> x(subset.batch_shape(3)), y(copy.batch_shape(3));
    std::vector<std::uint32_t> x_labels(3), y_labels(3);
    subset.fill_batch<float>(batch, x.view(), x_labels, {});
    copy.fill_batch<float>(batch, y.view(), y_labels, {});
    CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
    CHECK(x_labels == y_labels);
    CHECK(x_labels[0] == data.labels[12]);

    CHECK_THROWS_WITH(cnn::SubsetSource(data, {3, 30}), "SubsetSource: sample 30 of a source of 30");
    const std::vector<std::size_t> past{5};
    cnn::Tensor<float, 4> one(subset.batch_shape(1));
    CHECK_THROWS_WITH(subset.fill_batch<float>(past, one.view(), x_labels, {}),
                      "SubsetSource: sample 5 of a subset of 5");
}

TEST_CASE("Dataset::fill_batch and write_image refuse what does not fit", "[data][source][errors]") {
    const cnn::Dataset data = cnn::test::make_bars(10, 34);
    cnn::Tensor<float, 4> x(data.batch_shape(2));
    std::vector<std::uint32_t> labels(2);
    const std::vector<std::size_t> past{1, 10};
    CHECK_THROWS_WITH(data.fill_batch<float>(past, x.view(), labels, {}),
                      "Dataset::fill_batch: sample 10 of a data set of 10");
    std::vector<std::uint32_t> too_few(1);
    const std::vector<std::size_t> two{0, 1};
    CHECK_THROWS_WITH(data.fill_batch<float>(two, x.view(), too_few, {}),
                      "Dataset::fill_batch: 2 images but room for 1 labels");
    const std::vector<std::uint8_t> small(63);
    CHECK_THROWS_WITH(cnn::write_image<float>(small, x.view(), 0, {}, {}, nullptr),
                      "write_image: an image of 63 bytes as sample 0 of a tensor of shape [2, 1, 8, 8]");
    const std::vector<std::uint8_t> image(64);
    CHECK_THROWS_WITH(cnn::write_image<float>(image, x.view(), 2, {}, {}, nullptr),
                      "write_image: an image of 64 bytes as sample 2 of a tensor of shape [2, 1, 8, 8]");
}

TEST_CASE("SourceRef points at any source, and a null one is refused", "[data][source][errors]") {
    const cnn::Dataset data = cnn::test::make_bars(12, 35);
    const cnn::SourceRef ref = &data;
    CHECK(static_cast<bool>(ref));
    CHECK(ref.size() == 12);
    CHECK(ref.class_count() == 4);
    CHECK(ref.batch_shape(3) == cnn::Shape<4>{3, 1, 8, 8});
    cnn::Tensor<double, 4> x(ref.batch_shape(2));
    std::vector<std::uint32_t> labels(2);
    const std::vector<std::size_t> batch{11, 2};
    ref.fill_batch<double>(batch, x.view(), labels, {});
    CHECK(labels[0] == data.labels[11]);
    CHECK(x(0, 0, 3, 4) == data.images[11 * 64 + 3 * 8 + 4] * (1.0 / 255.0));

    const cnn::SourceRef none;
    CHECK_FALSE(static_cast<bool>(none));
    CHECK(none == nullptr);
    CHECK(ref != nullptr);
    CHECK_THROWS_WITH(none.size(), "SourceRef: used without a data source");
    CHECK_THROWS_WITH(none.check("evaluate"), "evaluate: the data source is null");
    auto net = make_net();
    CHECK_THROWS_WITH(cnn::evaluate(net, none), "evaluate: the data source is null");
}
