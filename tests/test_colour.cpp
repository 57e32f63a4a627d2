// Colour data: the CIFAR-10 and CIFAR-100 readers on files the tests write in the published
// formats, per-channel normalisation, and the augmentations (crop, flip, cutout).
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

/// One CIFAR record as the format has it: label bytes, then 3072 pixels; pixel (c, i, j) of
/// record `r` is (r * 31 + c * 7 + i * 3 + j) mod 256.
std::vector<std::uint8_t> cifar_record(std::vector<std::uint8_t> labels, std::size_t r) {
    std::vector<std::uint8_t> bytes = std::move(labels);
    for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t i = 0; i < 32; ++i)
            for (std::size_t j = 0; j < 32; ++j) bytes.push_back(static_cast<std::uint8_t>(r * 31 + c * 7 + i * 3 + j));
    return bytes;
}

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::uint8_t pixel(std::size_t r, std::size_t c, std::size_t i, std::size_t j) {
    return static_cast<std::uint8_t>(r * 31 + c * 7 + i * 3 + j);
}

/// A CIFAR-10 directory as the archive unpacks: five training batches (2 records each here),
/// the test batch (3 records) and batches.meta.txt with its trailing blank line.
fs::path write_cifar10(const std::string& name) {
    const fs::path dir = cnn::test::scratch_directory(name);
    std::size_t r = 0;
    for (int batch = 1; batch <= 5; ++batch) {
        std::vector<std::uint8_t> bytes;
        for (int k = 0; k < 2; ++k, ++r) {
            const auto record = cifar_record({static_cast<std::uint8_t>(r % 10)}, r);
            bytes.insert(bytes.end(), record.begin(), record.end());
        }
        write_bytes(dir / ("data_batch_" + std::to_string(batch) + ".bin"), bytes);
    }
    std::vector<std::uint8_t> test;
    for (std::size_t k = 0; k < 3; ++k) {
        const auto record = cifar_record({static_cast<std::uint8_t>(9 - k)}, 100 + k);
        test.insert(test.end(), record.begin(), record.end());
    }
    write_bytes(dir / "test_batch.bin", test);
    std::ofstream(dir / "batches.meta.txt")
        << "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    return dir;
}

}  // namespace

TEST_CASE("CIFAR-10's binary batches load as 3 x 32 x 32 images with their labels and names", "[data][cifar]") {
    const fs::path dir = write_cifar10("cifar10");
    const cnn::Dataset train = cnn::load_cifar10(dir, "train");
    CHECK(train.count == 10);
    CHECK(train.channels == 3);
    CHECK(train.rows == 32);
    CHECK(train.cols == 32);
    CHECK(train.classes == 10);
    CHECK(train.files.size() == 5);
    CHECK(train.files.back() == dir / "data_batch_5.bin");
    CHECK(train.class_names.size() == 10);
    CHECK(train.class_name(9) == "truck");
    for (std::size_t r = 0; r < 10; ++r) CHECK(train.labels[r] == r % 10);
    // Records are copied in file order, planes as published: red, green, blue, row-major.
    for (std::size_t r : {0, 3, 9})
        for (std::size_t c = 0; c < 3; ++c)
            for (std::size_t i : {0, 17, 31})
                for (std::size_t j : {0, 5, 31})
                    CHECK(train.images[((r * 3 + c) * 32 + i) * 32 + j] == pixel(r, c, i, j));
    train.check("test");

    const cnn::Dataset test = cnn::load_cifar10(dir, "test");
    CHECK(test.count == 3);
    CHECK(test.labels == std::vector<std::uint8_t>{9, 8, 7});
    CHECK(test.images[2 * 3072 + 1024 + 32 + 1] == pixel(102, 1, 1, 1));
    CHECK(test.batch_shape(4) == cnn::Shape<4>{4, 3, 32, 32});
}

TEST_CASE("CIFAR-100 loads with its fine or its coarse labels", "[data][cifar]") {
    const fs::path dir = cnn::test::scratch_directory("cifar100");
    std::vector<std::uint8_t> bytes;
    for (std::size_t r = 0; r < 4; ++r) {
        const auto record = cifar_record({static_cast<std::uint8_t>(19 - r), static_cast<std::uint8_t>(99 - 5 * r)}, r);
        bytes.insert(bytes.end(), record.begin(), record.end());
    }
    write_bytes(dir / "train.bin", bytes);
    std::ofstream names(dir / "coarse_label_names.txt");
    for (int i = 0; i < 20; ++i) names << "super" << i << "\n";
    names.close();

    const cnn::Dataset fine = cnn::load_cifar100(dir, "train");
    CHECK(fine.classes == 100);
    CHECK(fine.labels == std::vector<std::uint8_t>{99, 94, 89, 84});
    CHECK(fine.class_names.empty());  // no fine_label_names.txt here
    CHECK(fine.images[3 * 3072 + 2 * 1024 + 31 * 32 + 30] == pixel(3, 2, 31, 30));
    const cnn::Dataset coarse = cnn::load_cifar100(dir, "train", cnn::CifarLabels::coarse);
    CHECK(coarse.classes == 20);
    CHECK(coarse.labels == std::vector<std::uint8_t>{19, 18, 17, 16});
    CHECK(coarse.class_name(17) == "super17");
    CHECK(coarse.images == fine.images);

    // Written back by write_cifar, read again: the same data set.
    cnn::write_cifar(dir / "copy.bin", coarse, cnn::CifarFormat::cifar100(cnn::CifarLabels::coarse));
    const std::vector<fs::path> copy{dir / "copy.bin"};
    const cnn::Dataset again = cnn::read_cifar(copy, cnn::CifarFormat::cifar100(cnn::CifarLabels::coarse));
    CHECK(again.labels == coarse.labels);
    CHECK(again.images == coarse.images);
}

TEST_CASE("Bad CIFAR files name the file, the record and the offset", "[data][cifar][errors]") {
    const fs::path dir = write_cifar10("cifar-bad");
    // A batch cut short by a few bytes.
    auto bytes = cifar_record({1}, 0);
    const auto second = cifar_record({2}, 1);
    bytes.insert(bytes.end(), second.begin(), second.end() - 5);
    write_bytes(dir / "data_batch_3.bin", bytes);
    CHECK_THROWS_WITH(cnn::load_cifar10(dir, "train"),
                      (dir / "data_batch_3.bin").string() +
                          ": is 6141 bytes, not a whole number of 3073-byte CIFAR records (1 label byte + 3072 "
                          "pixels); the last record, at offset 3073, is cut short");
    // A label byte past the classes: record 1, offset 3073.
    bytes = cifar_record({1}, 0);
    const auto bad = cifar_record({10}, 1);
    bytes.insert(bytes.end(), bad.begin(), bad.end());
    write_bytes(dir / "data_batch_3.bin", bytes);
    CHECK_THROWS_WITH(cnn::load_cifar10(dir, "train"),
                      (dir / "data_batch_3.bin").string() + ": record 1 (offset 3073) has label 10, not below 10");
    // CIFAR-10's records read as CIFAR-100's (a wrong format is not silently accepted).
    write_bytes(dir / "train.bin", cifar_record({1}, 0));
    CHECK_THROWS_WITH(cnn::load_cifar100(dir, "train"),
                      (dir / "train.bin").string() +
                          ": is 3073 bytes, not a whole number of 3074-byte CIFAR records (2 label bytes + 3072 "
                          "pixels); the last record, at offset 0, is cut short");
    auto two = cifar_record({4, 100}, 0);
    write_bytes(dir / "test.bin", two);
    CHECK_THROWS_WITH(cnn::load_cifar100(dir, "test"),
                      (dir / "test.bin").string() + ": record 0 (offset 1) has fine label 100, not below 100");
    write_bytes(dir / "test.bin", {});
    CHECK_THROWS_WITH(cnn::load_cifar100(dir, "test"),
                      (dir / "test.bin").string() + ": is empty; expected CIFAR records of 3074 bytes");

    write_bytes(dir / "data_batch_3.bin", cifar_record({1}, 0));
    fs::remove(dir / "data_batch_4.bin");
    CHECK_THROWS_WITH(cnn::load_cifar10(dir, "train"), (dir / "data_batch_4.bin").string() + ": no such file");
    CHECK_THROWS_WITH(cnn::load_cifar10(dir, "validation"),
                      "load_cifar10: split 'validation' is neither \"train\" nor \"test\"");
    CHECK_THROWS_WITH(cnn::load_cifar10(dir / "nowhere", "test"), (dir / "nowhere").string() + ": no such directory");
    std::ofstream(dir / "batches.meta.txt") << "airplane\n\nbird\n";
    CHECK_THROWS_WITH(cnn::load_cifar10(dir, "test"),
                      (dir / "batches.meta.txt").string() + ": line 2: a class name must be non-empty and without commas");
    std::ofstream(dir / "batches.meta.txt") << "airplane\nbird\n";
    CHECK_THROWS_WITH(cnn::load_cifar10(dir, "test"),
                      (dir / "batches.meta.txt").string() + ": names 2 classes, the data set has 10");
}

TEST_CASE("Colour batches are normalised channel by channel", "[data]") {
    // Two 2-channel 1x2 images: channel 0 holds 0, 51, 102, 153; channel 1 holds 255 throughout.
    cnn::Dataset data{{0, 51, 255, 255, 102, 153, 255, 255}, {1, 0}, 2, 1, 2, 2, {}, {}, 2};
    data.check("test");
    const cnn::Normalization stats = data.pixel_statistics();
    REQUIRE(stats.means.size() == 2);
    CHECK(stats.means[0] == Approx(0.3));
    CHECK(stats.means[1] == Approx(1.0));
    CHECK(stats.deviations[0] == Approx(std::sqrt(0.05)));  // values 0, .2, .4, .6 about .3
    CHECK(stats.deviations[1] == Approx(1e-6));             // a constant channel: the floor, not 0
    CHECK(stats.mean == Approx(0.65));

    cnn::Tensor<double, 4> x(data.batch_shape(2));
    std::vector<std::uint32_t> labels(2);
    const std::vector<std::size_t> order{1, 0};
    const cnn::Normalization chosen{0, 1, {0.2, 0.5}, {0.1, 2.0}};
    data.fill_batch<double>(order, x, labels, chosen);
    CHECK(x(0, 0, 0, 0) == Approx((0.4 - 0.2) / 0.1));
    CHECK(x(0, 0, 0, 1) == Approx((0.6 - 0.2) / 0.1));
    CHECK(x(0, 1, 0, 1) == Approx((1.0 - 0.5) / 2.0));
    CHECK(x(1, 0, 0, 1) == Approx((0.2 - 0.2) / 0.1).margin(1e-12));
    CHECK(labels == std::vector<std::uint32_t>{0, 1});

    CHECK_THROWS_WITH(data.fill_batch<double>(order, x, labels, cnn::Normalization{0, 1, {0.5}, {1.0}}),
                      "Normalization: 1 channel means and deviations for images of 2 channels");
    CHECK_THROWS_WITH(data.fill_batch<double>(order, x, labels, cnn::Normalization{0, 1, {0.5, 0.5}, {1.0, 0.0}}),
                      "Normalization: channel 1: mean 0.500000 and deviation 0.000000 must be finite, with the "
                      "deviation above 0");
    cnn::Tensor<double, 4> wrong({2, 1, 1, 2});
    CHECK_THROWS_WITH(data.fill_batch<double>(order, wrong, labels),
                      "Dataset::fill_batch: 2 images of 2x1x2 do not fill a tensor of shape [2, 1, 1, 2]");
    data.images.pop_back();
    CHECK_THROWS_WITH(data.check("test"),
                      "test: the data set holds 7 image bytes, but 2 images of 2x1x2 need 8");
}

namespace {

/// One 3-channel 5x6 image whose bytes are all different and above 0, as the data set of one.
cnn::Dataset distinct_image() {
    cnn::Dataset data{{}, {2}, 1, 5, 6, 3, {}, {}, 3};
    for (std::size_t i = 0; i < 3 * 5 * 6; ++i) data.images.push_back(static_cast<std::uint8_t>(10 + i));
    return data;
}

/// The image of `data` augmented once, as bytes (normalisation (0, 1/255) keeps byte values).
std::vector<double> augmented(const cnn::Dataset& data, const cnn::Augmentation& augmentation, cnn::Random& rng) {
    cnn::Tensor<double, 4> x(data.batch_shape(1));
    std::uint32_t label = 0;
    const std::size_t index = 0;
    data.fill_batch<double>({&index, 1}, x, {&label, 1}, cnn::Normalization{0, 1.0 / 255}, augmentation, rng);
    CHECK(label == 2);
    return {x.begin(), x.end()};
}

}  // namespace

TEST_CASE("Random crops are the zero-padded image shifted by each offset, all of them drawn", "[data][augment]") {
    const cnn::Dataset data = distinct_image();
    cnn::Random rng{7};
    std::set<std::pair<int, int>> offsets;
    for (int draw = 0; draw < 300; ++draw) {
        const std::vector<double> out = augmented(data, {.crop_padding = 2}, rng);
        // Which shift (dy, dx) is it? The output's pixel must be the input's (i + dy, j + dx), or 0 outside.
        int found = 0;
        for (int dy = -2; dy <= 2; ++dy)
            for (int dx = -2; dx <= 2; ++dx) {
                bool same = true;
                for (std::size_t c = 0; c < 3; ++c)
                    for (int i = 0; i < 5; ++i)
                        for (int j = 0; j < 6; ++j) {
                            const int si = i + dy, sj = j + dx;
                            const double expected = si < 0 || si >= 5 || sj < 0 || sj >= 6
                                                        ? 0.0
                                                        : data.images[(c * 5 + static_cast<std::size_t>(si)) * 6 +
                                                                      static_cast<std::size_t>(sj)];
                            same = same && out[(c * 5 + static_cast<std::size_t>(i)) * 6 + static_cast<std::size_t>(j)] ==
                                               Approx(expected);
                        }
                if (same) {
                    ++found;
                    offsets.insert({dy, dx});
                }
            }
        REQUIRE(found == 1);
    }
    CHECK(offsets.size() == 25);
}

TEST_CASE("Horizontal flips mirror every row of every channel, about half of the time", "[data][augment]") {
    const cnn::Dataset data = distinct_image();
    cnn::Random rng{3};
    int flipped = 0;
    for (int draw = 0; draw < 200; ++draw) {
        const std::vector<double> out = augmented(data, {.horizontal_flip = true}, rng);
        bool mirror = true, same = true;
        for (std::size_t p = 0; p < out.size(); ++p) {
            const std::size_t j = p % 6, row = p / 6;
            same = same && out[p] == Approx(data.images[p]);
            mirror = mirror && out[p] == Approx(data.images[row * 6 + 5 - j]);
        }
        REQUIRE(mirror != same);
        flipped += mirror;
    }
    CHECK(flipped > 70);
    CHECK(flipped < 130);
}

TEST_CASE("Cutout zeroes one clipped square in every channel, centred anywhere", "[data][augment]") {
    const cnn::Dataset data = distinct_image();
    cnn::Random rng{11};
    std::set<std::size_t> sizes;
    for (int draw = 0; draw < 300; ++draw) {
        const std::vector<double> out = augmented(data, {.cutout = 3}, rng);
        // The zeroed cells: the same rectangle in each channel, at most 3x3, the rest untouched.
        std::size_t top = 5, bottom = 0, left = 6, right = 0, zeros = 0;
        for (std::size_t p = 0; p < 30; ++p)
            if (out[p] == 0) {
                ++zeros;
                top = std::min(top, p / 6);
                bottom = std::max(bottom, p / 6);
                left = std::min(left, p % 6);
                right = std::max(right, p % 6);
            } else {
                REQUIRE(out[p] == Approx(data.images[p]));
            }
        REQUIRE(zeros > 0);
        REQUIRE(zeros == (bottom - top + 1) * (right - left + 1));
        REQUIRE(bottom - top < 3);
        REQUIRE(right - left < 3);
        for (std::size_t c = 1; c < 3; ++c)
            for (std::size_t p = 0; p < 30; ++p) REQUIRE((out[c * 30 + p] == 0) == (out[p] == 0));
        sizes.insert(zeros);
    }
    CHECK(sizes == std::set<std::size_t>{4, 6, 9});  // corners, edges and inside
}

TEST_CASE("Augmentation draws the same for a seed, and nothing when it is off", "[data][augment]") {
    const cnn::Dataset data = distinct_image();
    const cnn::Augmentation all{.crop_padding = 1, .horizontal_flip = true, .cutout = 2};
    cnn::Random a{5}, b{5};
    for (int draw = 0; draw < 20; ++draw) CHECK(augmented(data, all, a) == augmented(data, all, b));
    cnn::Random untouched = b;
    const std::vector<double> plain = augmented(data, {}, b);
    CHECK(b() == untouched());  // no draw
    for (std::size_t p = 0; p < plain.size(); ++p) CHECK(plain[p] == Approx(data.images[p]));

    cnn::Random rng{1};
    CHECK_THROWS_WITH(augmented(data, {.crop_padding = 6}, rng),
                      "Augmentation: a crop padding of 6 is larger than the 5x6 images (a crop could hold no pixel "
                      "of the image)");
    CHECK_THROWS_WITH(augmented(data, {.cutout = 7}, rng), "Augmentation: a cutout of 7 is larger than the 5x6 images");
}
