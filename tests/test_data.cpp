// The IDX reader and data sets, on files the tests write themselves. The bad-file
// cases each check that the error names the file and what was wrong.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

void write_bytes(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gzip(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
    gzFile file = gzopen(path.c_str(), "wb");
    REQUIRE(file != nullptr);
    REQUIRE(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) == static_cast<int>(bytes.size()));
    gzclose(file);
}

/// An IDX header of unsigned bytes followed by `payload` bytes.
std::vector<std::uint8_t> idx_bytes(std::vector<std::uint32_t> dims, std::size_t payload, std::uint8_t type = 0x08) {
    std::vector<std::uint8_t> bytes{0, 0, type, static_cast<std::uint8_t>(dims.size())};
    for (std::uint32_t d : dims) {
        bytes.push_back(static_cast<std::uint8_t>(d >> 24));
        bytes.push_back(static_cast<std::uint8_t>(d >> 16));
        bytes.push_back(static_cast<std::uint8_t>(d >> 8));
        bytes.push_back(static_cast<std::uint8_t>(d));
    }
    for (std::size_t i = 0; i < payload; ++i) bytes.push_back(static_cast<std::uint8_t>(i * 7));
    return bytes;
}

}  // namespace

TEST_CASE("IDX files load raw and gzip-compressed, with the same contents", "[data]") {
    const fs::path dir = cnn::test::scratch_directory("idx-good");
    const auto bytes = idx_bytes({3, 4, 5}, 60);
    write_bytes(dir / "raw", bytes);
    write_gzip(dir / "packed.gz", bytes);
    const cnn::IdxArray raw = cnn::read_idx(dir / "raw", 3);
    const cnn::IdxArray packed = cnn::read_idx(dir / "packed.gz", 3);
    CHECK(raw.dimensions == std::vector<std::size_t>{3, 4, 5});
    CHECK(raw.values.size() == 60);
    CHECK(raw.values[59] == static_cast<std::uint8_t>(59 * 7));
    CHECK(packed.dimensions == raw.dimensions);
    CHECK(packed.values == raw.values);
}

TEST_CASE("Bad IDX files give errors that name the file and the problem", "[data][errors]") {
    const fs::path dir = cnn::test::scratch_directory("idx-bad");
    struct Case {
        const char* what;
        std::vector<std::uint8_t> bytes;
        std::size_t rank;
        const char* message;
    };
    auto truncated = idx_bytes({10, 2, 2}, 39);
    auto trailing = idx_bytes({10}, 11);
    auto wrong_magic = idx_bytes({2}, 2);
    wrong_magic[0] = 0x50;
    const std::vector<Case> cases{
        {"empty file", {}, 1, "is empty; expected an IDX header"},
        {"short header", {0, 0}, 1, "ends after 2 bytes; an IDX header has at least 4"},
        {"wrong magic", wrong_magic, 1, "not an IDX file: the first two bytes are 80 0, expected 0 0"},
        {"wrong element type", idx_bytes({2}, 8, 0x0D), 1, "element type 0x0d (float) at offset 2; expected 0x08"},
        {"wrong rank", idx_bytes({2, 2}, 4), 3, "rank 2 at offset 3; expected 3"},
        {"dimension zero", idx_bytes({5, 0, 3}, 0), 3, "dimension 1 (offset 8) is 0"},
        {"header ends early", {0, 0, 8, 3, 0, 0, 0, 9, 0, 0}, 3, "ends inside the header, in dimension 1 at offset 8"},
        {"dimensions overflow", idx_bytes({0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, 0), 3,
         "the dimensions overflow when multiplied"},
        {"2^32 images claimed", idx_bytes({0xFFFFFFFF, 28, 28}, 100), 3,
         "the header claims 3367254359280 bytes of data, the file holds 100 (truncated)"},
        {"truncated payload", truncated, 3, "the header claims 40 bytes of data, the file holds 39 (truncated)"},
        {"data after the payload", trailing, 1, "the header claims 10 bytes of data, the file holds 11"},
    };
    for (const Case& c : cases) {
        DYNAMIC_SECTION(c.what) {
            const fs::path path = dir / "file";
            write_bytes(path, c.bytes);
            try {
                (void)cnn::read_idx(path, c.rank);
                FAIL("no error for " << c.what);
            } catch (const cnn::data_error& e) {
                CHECK_THAT(e.what(), Catch::StartsWith(path.string() + ": "));
                CHECK_THAT(e.what(), Catch::Contains(c.message));
            }
        }
    }
}

TEST_CASE("Bad gzip IDX files are caught before a large allocation", "[data][errors]") {
    const fs::path dir = cnn::test::scratch_directory("idx-gzip-bad");
    SECTION("a header that claims more than the compressed file can hold") {
        write_gzip(dir / "huge.gz", idx_bytes({0xFFFFFFFF, 28, 28}, 10));
        CHECK_THROWS_WITH(cnn::read_idx(dir / "huge.gz", 3),
                          Catch::Contains("claims 3367254359280 bytes of data, more than a") &&
                              Catch::Contains("-byte gzip file can hold"));
    }
    SECTION("a payload that ends early") {
        write_gzip(dir / "short.gz", idx_bytes({10, 2, 2}, 30));
        CHECK_THROWS_WITH(cnn::read_idx(dir / "short.gz", 3),
                          Catch::Contains("ends after 30 of the 40 data bytes the header claims (after decompression)"));
    }
    SECTION("a corrupt compressed stream") {
        write_gzip(dir / "good.gz", idx_bytes({100, 10, 10}, 10000));
        std::ifstream in(dir / "good.gz", std::ios::binary);
        std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        for (std::size_t i = 20; i < bytes.size() - 8; i += 3) bytes[i] ^= 0x5A;
        write_bytes(dir / "corrupt.gz", bytes);
        CHECK_THROWS_AS(cnn::read_idx(dir / "corrupt.gz", 3), cnn::data_error);
    }
    // A complete payload is not enough: the stream must end with its trailer (whose CRC-32 is
    // the only check on the data), and nothing may follow it.
    write_gzip(dir / "whole.gz", idx_bytes({100, 10, 10}, 10000));
    std::ifstream in(dir / "whole.gz", std::ios::binary);
    const std::vector<std::uint8_t> whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    REQUIRE(cnn::read_idx(dir / "whole.gz", 3).values.size() == 10000);
    SECTION("a stream without its 8-byte trailer") {
        write_bytes(dir / "no-trailer.gz", {whole.begin(), whole.end() - 8});
        CHECK_THROWS_WITH(cnn::read_idx(dir / "no-trailer.gz", 3),
                          Catch::Contains("without its 8-byte trailer (truncated), so its checksum cannot be checked"));
    }
    SECTION("bytes after the stream") {
        auto longer = whole;
        longer.insert(longer.end(), {1, 2, 3});
        write_bytes(dir / "longer.gz", longer);
        CHECK_THROWS_WITH(cnn::read_idx(dir / "longer.gz", 3),
                          Catch::Contains("has 3 bytes after the end of its gzip stream (at offset " +
                                          std::to_string(whole.size()) + ")"));
    }
    SECTION("a wrong checksum is reported where the stream ends, not at its start") {
        auto wrong = whole;
        wrong[wrong.size() - 8] ^= 0xFF;  // the CRC-32 of the trailer
        write_bytes(dir / "wrong-crc.gz", wrong);
        CHECK_THROWS_WITH(cnn::read_idx(dir / "wrong-crc.gz", 3),
                          Catch::Contains("corrupt gzip stream after 10016 uncompressed bytes (incorrect data check)"));
    }
}

TEST_CASE("Missing files, directories and unreadable files are reported", "[data][errors]") {
    const fs::path dir = cnn::test::scratch_directory("idx-files");
    CHECK_THROWS_WITH(cnn::read_idx(dir / "nothing", 1), (dir / "nothing").string() + ": no such file");
    CHECK_THROWS_WITH(cnn::read_idx(dir, 1), dir.string() + ": is a directory, not an IDX file");
    write_bytes(dir / "locked", idx_bytes({2}, 2));
    fs::permissions(dir / "locked", fs::perms::none);
    // Root reads any file, so the reader runs in a child process that gives up root first.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        if (::getuid() == 0 && ::setuid(65534) != 0) ::_exit(3);
        try {
            (void)cnn::read_idx(dir / "locked", 1);
            ::_exit(1);
        } catch (const cnn::data_error& e) {
            const std::string expected = (dir / "locked").string() + ": cannot open: Permission denied";
            ::_exit(expected == e.what() ? 0 : 2);
        }
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);  // 1: read without error, 2: another message, 3: could not drop root
}

TEST_CASE("A data set checks its labels against its images", "[data][errors]") {
    const fs::path dir = cnn::test::scratch_directory("dataset");
    write_bytes(dir / "images", idx_bytes({4, 2, 3}, 24));
    write_bytes(dir / "labels", {0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 3, 9});
    const cnn::Dataset data = cnn::load_idx_dataset(dir / "images", dir / "labels", 10);
    CHECK(data.count == 4);
    CHECK(data.rows == 2);
    CHECK(data.cols == 3);
    CHECK(data.images.size() == 24);  // kept as bytes
    CHECK(data.labels == std::vector<std::uint8_t>{1, 2, 3, 9});

    write_bytes(dir / "bad-labels", {0, 0, 8, 1, 0, 0, 0, 4, 1, 2, 11, 3});
    CHECK_THROWS_WITH(cnn::load_idx_dataset(dir / "images", dir / "bad-labels", 10),
                      (dir / "bad-labels").string() + ": label 11 of sample 2 (offset 10) is not below the 10 classes");
    write_bytes(dir / "few-labels", {0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3});
    CHECK_THROWS_WITH(cnn::load_idx_dataset(dir / "images", dir / "few-labels", 10),
                      (dir / "few-labels").string() + ": holds 3 labels, but " + (dir / "images").string() +
                          " holds 4 images");
}

TEST_CASE("Batches are converted from bytes with the chosen normalisation", "[data]") {
    cnn::Dataset data{{0, 255, 51, 102}, {1, 0}, 2, 1, 2, 2};
    cnn::Tensor<double, 4> x(data.batch_shape(2));
    std::vector<std::uint32_t> labels(2);
    const std::vector<std::size_t> order{1, 0};
    data.fill_batch<double>(order, x, labels);
    CHECK(x(0, 0, 0, 0) == Approx(0.2));
    CHECK(x(0, 0, 0, 1) == Approx(0.4));
    CHECK(x(1, 0, 0, 1) == Approx(1.0));
    CHECK(labels == std::vector<std::uint32_t>{0, 1});
    const cnn::Normalization stats = data.pixel_statistics();
    data.fill_batch<double>(order, x, labels, stats);
    double sum = 0, squares = 0;
    for (double v : x) {
        sum += v;
        squares += v * v;
    }
    CHECK(sum / 4 == Approx(0.0).margin(1e-12));
    CHECK(squares / 4 == Approx(1.0));
}

TEST_CASE("load_mnist names the files it read and the classes from classes.txt", "[data]") {
    const fs::path dir = cnn::test::scratch_directory("mnist-classes");
    const std::vector<std::uint8_t> pixels(3 * 2 * 2, 7), labels{0, 2, 1};
    cnn::write_idx(dir / "t10k-images-idx3-ubyte", {3, 2, 2}, pixels);
    cnn::write_idx(dir / "t10k-labels-idx1-ubyte", {3}, labels);
    // Both the raw and a .gz file: the raw one is read, and the data set says so.
    write_gzip(dir / "t10k-images-idx3-ubyte.gz", idx_bytes({1, 1, 1}, 1));
    cnn::Dataset data = cnn::load_mnist(dir, "t10k", 3);
    CHECK(data.files == std::vector<fs::path>{dir / "t10k-images-idx3-ubyte", dir / "t10k-labels-idx1-ubyte"});
    CHECK(data.class_names.empty());
    CHECK(data.class_name(2) == "2");

    std::ofstream(dir / "classes.txt") << "cat\ndog\r\nbird\n";
    data = cnn::load_mnist(dir, "t10k", 3);
    CHECK(data.class_names == std::vector<std::string>{"cat", "dog", "bird"});
    CHECK(data.class_name(1) == "dog");
    std::ofstream(dir / "classes.txt") << "cat\ndog\n";
    CHECK_THROWS_WITH(cnn::load_mnist(dir, "t10k", 3),
                      (dir / "classes.txt").string() + ": names 2 classes, the data set has 3");
    std::ofstream(dir / "classes.txt") << "cat\nbig, dog\nbird\n";
    CHECK_THROWS_WITH(cnn::load_mnist(dir, "t10k", 3),
                      (dir / "classes.txt").string() + ": line 2: a class name must be non-empty and without commas");
    CHECK_THROWS_WITH(cnn::load_mnist(dir, "train", 3),
                      dir.string() + ": has neither train-images-idx3-ubyte nor train-images-idx3-ubyte.gz");
    CHECK_THROWS_WITH(cnn::load_mnist(dir / "nowhere", "t10k", 3), (dir / "nowhere").string() + ": no such directory");
}

TEST_CASE("An IDX reader given a FIFO refuses it instead of blocking", "[data][errors]") {
    const fs::path dir = cnn::test::scratch_directory("idx-fifo");
    REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
    CHECK_THROWS_WITH(cnn::read_idx(dir / "fifo", 1), (dir / "fifo").string() + ": is a FIFO, not an IDX file");
}
