// Built without zlib (its own executable, so no other file sees a different
// IDX reader): raw IDX files still load, and a gzip file gets an error that
// says zlib is needed.
#include <cnn/data/dataset.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <unistd.h>

static_assert(!cnn::idx_gzip_supported());

TEST_CASE("Without zlib, raw files load and .gz files are refused with a reason", "[data][errors]") {
    const auto dir = std::filesystem::temp_directory_path() / ("cnn-nozlib-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::vector<std::uint8_t> values{1, 2, 3};
    cnn::write_idx(dir / "raw", {3}, values);
    CHECK(cnn::read_idx(dir / "raw", 1).values == values);

    std::ofstream(dir / "data.gz", std::ios::binary) << "\x1f\x8b\x08\x00 the rest does not matter";
    CHECK_THROWS_WITH(cnn::read_idx(dir / "data.gz", 1),
                      (dir / "data.gz").string() +
                          ": is gzip-compressed, and this program was built without zlib; decompress it (gunzip) or "
                          "build with zlib (CMake target cnn::gzip)");
    std::filesystem::remove_all(dir);
}
