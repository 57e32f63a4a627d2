// Saving and loading models: bit-identical round trips, and a clear error (with
// the network left unchanged) for every kind of bad file.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "test_support.hpp"

namespace fs = std::filesystem;
using cnn::Shape;
using cnn::Tensor;

namespace {

template <class T>
auto make_small(std::size_t filters = 3) {
    return cnn::Sequential{cnn::Conv2D<T>{1, filters, 3, {.padding = 1}}, cnn::ReLU<T>{}, cnn::MaxPool<T>{2},
                           cnn::Flatten<T>{}, cnn::Dense<T>{filters * 16, 4}};
}

std::vector<std::uint8_t> read_all(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEMPLATE_TEST_CASE("save -> load -> predict is bit-identical", "[io]", float, double) {
    const fs::path dir = cnn::test::scratch_directory("roundtrip");
    auto net = make_small<TestType>();
    cnn::Random rng{9};
    net.initialize(rng);
    cnn::save_model(net, dir / "model.cnn", "note=hello\n");

    auto loaded = make_small<TestType>();
    CHECK(cnn::load_model(loaded, dir / "model.cnn") == "note=hello\n");
    CHECK(cnn::test::parameter_values(loaded) == cnn::test::parameter_values(net));

    std::mt19937_64 values(1);
    const auto x = cnn::test::random_tensor<TestType>(Shape<4>{5, 1, 8, 8}, values);
    typename decltype(net)::Workspace a, b;
    const Tensor<TestType, 4> expected(net.forward(x, a));
    const Tensor<TestType, 4> actual(loaded.forward(x, b));
    CHECK(std::equal(expected.begin(), expected.end(), actual.begin()));
    // Saving again gives the same bytes, and leaves no temporary file behind.
    cnn::save_model(loaded, dir / "again.cnn", "note=hello\n");
    CHECK(read_all(dir / "again.cnn") == read_all(dir / "model.cnn"));
    CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}) == 2);
}

TEST_CASE("The metadata of a model or checkpoint reads without a network, checked as a load checks", "[io]") {
    const fs::path dir = cnn::test::scratch_directory("metadata");
    auto net = make_small<float>();
    cnn::Random rng{3};
    net.initialize(rng);
    cnn::save_model(net, dir / "model.cnn", "input_shape=1x8x8\nclass_count=4\n");
    CHECK(cnn::read_model_metadata(dir / "model.cnn") == "input_shape=1x8x8\nclass_count=4\n");
    // The model file of version 1 (0.2) has no structure records; its metadata reads too.
    CHECK(cnn::read_model_metadata(fs::path(CNN_TEST_DATA_DIR) / "model_v1_small.cnn") == "written=by cnn 0.2.0\n");
    auto bytes = read_all(dir / "model.cnn");
    bytes[30] ^= 1;
    write_all(dir / "flipped.cnn", bytes);
    CHECK_THROWS_WITH(cnn::read_model_metadata(dir / "flipped.cnn"),
                      Catch::Matchers::Contains("checksum mismatch") && Catch::Matchers::Contains("flipped.cnn"));
    CHECK_THROWS_WITH(cnn::read_model_metadata(dir / "none.cnn"), (dir / "none.cnn").string() + ": no such file");

    // A checkpoint: its model's metadata, and the checkpoint's own checksum is checked.
    const cnn::Dataset data = cnn::test::make_bars(12, 1);
    auto small = cnn::Sequential{cnn::Conv2D<float>{1, 2, 3, {.padding = 1}}, cnn::ReLU<float>{}, cnn::MaxPool<float>{2},
                                 cnn::Flatten<float>{}, cnn::Dense<float>{2 * 4 * 4, 4}};
    cnn::SGD<float> sgd;
    cnn::FitOptions options{.epochs = 2, .batch_size = 4};
    std::size_t steps = 0;
    options.should_stop = [&] { return ++steps == 1; };
    const auto history = cnn::fit(small, sgd, data, rng, options);
    REQUIRE(history.interrupted);
    cnn::save_checkpoint(small, *history.resume, dir / "run.checkpoint", "setting.net=small\n");
    CHECK(cnn::read_checkpoint_metadata(dir / "run.checkpoint") == "setting.net=small\n");
    bytes = read_all(dir / "run.checkpoint");
    bytes[bytes.size() / 2] ^= 1;
    write_all(dir / "run.checkpoint", bytes);
    CHECK_THROWS_WITH(cnn::read_checkpoint_metadata(dir / "run.checkpoint"),
                      (dir / "run.checkpoint").string() + ": checksum mismatch: the checkpoint is corrupt or truncated");
    CHECK_THROWS_WITH(cnn::read_checkpoint_metadata(dir / "model.cnn"),
                      (dir / "model.cnn").string() + ": not a checkpoint file (it does not start with \"CNNCHKPT\")");
}

TEST_CASE("Saving replaces the old model whole", "[io]") {
    const fs::path dir = cnn::test::scratch_directory("replace");
    auto net = make_small<float>();
    cnn::Random rng{1};
    net.initialize(rng);
    cnn::save_model(net, dir / "model.cnn");
    net.initialize(rng);
    cnn::save_model(net, dir / "model.cnn");
    auto loaded = make_small<float>();
    (void)cnn::load_model(loaded, dir / "model.cnn");
    CHECK(cnn::test::parameter_values(loaded) == cnn::test::parameter_values(net));
    CHECK_THROWS_WITH(cnn::save_model(net, dir / "no-such-directory" / "model.cnn"),
                      Catch::Contains("cannot create") && Catch::Contains("No such file or directory"));
}

TEST_CASE("Bad model files give clear errors and leave the network unchanged", "[io][errors]") {
    const fs::path dir = cnn::test::scratch_directory("bad-models");
    auto net = make_small<float>();
    cnn::Random rng{2};
    net.initialize(rng);
    cnn::save_model(net, dir / "model.cnn");
    const auto good = read_all(dir / "model.cnn");

    auto target = make_small<float>();
    cnn::Random other{3};
    target.initialize(other);
    const auto before = cnn::test::parameter_values(target);
    const fs::path bad = dir / "bad.cnn";
    const auto expect_error = [&](const std::string& message) {
        CHECK_THROWS_WITH(cnn::load_model(target, bad), Catch::StartsWith(bad.string() + ": ") && Catch::Contains(message));
        CHECK(cnn::test::parameter_values(target) == before);
    };

    SECTION("another architecture") {
        auto wider = make_small<float>(5);
        CHECK_THROWS_WITH(cnn::load_model(wider, dir / "model.cnn"),
                          Catch::Contains("saved from another architecture: layer 0 is Conv2D(1->3, 3x3, stride 1, "
                                          "padding 1) in the file and Conv2D(1->5, 3x3, stride 1, padding 1) in this network"));
    }
    SECTION("another number type") {
        auto in_double = make_small<double>();
        CHECK_THROWS_WITH(cnn::load_model(in_double, dir / "model.cnn"),
                          Catch::Contains("holds 32-bit parameters, this network uses 64-bit ones"));
    }
    SECTION("a future format version") {
        auto bytes = good;
        bytes[8] = static_cast<std::uint8_t>(cnn::model_format_version + 1);
        write_all(bad, bytes);
        expect_error("model format version " + std::to_string(cnn::model_format_version + 1) +
                     " is newer than this library reads (" + std::to_string(cnn::model_format_version) + ")");
    }
    SECTION("not a model file") {
        write_all(bad, {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
        expect_error("not a model file");
    }
    SECTION("an empty file") {
        write_all(bad, {});
        expect_error("is empty");
    }
    SECTION("a directory") {
        CHECK_THROWS_WITH(cnn::load_model(target, dir), dir.string() + ": is a directory, not a model file");
    }
    SECTION("a missing file") {
        CHECK_THROWS_WITH(cnn::load_model(target, dir / "missing.cnn"), Catch::Contains("missing.cnn: no such file"));
    }
    SECTION("a parameter that is not a finite number") {
        auto broken = make_small<float>();
        broken.initialize(rng);
        broken.layer<4>().weights()(2, 5) = std::numeric_limits<float>::infinity();
        cnn::save_model(broken, bad);  // a valid file, checksum and all
        expect_error("parameter 101 of layer 4 (Dense(48->4)) is not a finite number");
    }
    SECTION("a structure that does not parse (its checksum repaired)") {
        // Replaces the structure (after the architecture text, whose length is at offset 16).
        const auto with_structure = [&](std::vector<std::uint8_t> structure) {
            std::uint32_t text = 0, length = 0;
            std::memcpy(&text, good.data() + 16, 4);
            const std::size_t at = 20 + text;
            std::memcpy(&length, good.data() + at, 4);
            cnn::detail::ByteWriter out;
            out.put_bytes(good.data(), at);
            out.put(static_cast<std::uint32_t>(structure.size()));
            out.put_bytes(structure.data(), structure.size());
            out.put_bytes(good.data() + at + 4 + length, good.size() - 4 - (at + 4 + length));
            out.put(cnn::detail::crc32(out.bytes().data(), out.bytes().size()));
            return out.bytes();
        };
        const auto record = [](cnn::detail::ByteWriter& out, std::string_view kind, std::uint32_t children) {
            out.put_text(kind);
            out.put_text("");
            out.put(std::uint32_t{0});
            out.put(std::uint64_t{0});
            out.put(children);
        };
        cnn::detail::ByteWriter deep;
        for (int level = 0; level < 70; ++level) record(deep, "Sequential", 1);
        write_all(bad, with_structure(deep.bytes()));
        expect_error("nests deeper than 64 levels: the file is corrupt");

        cnn::detail::ByteWriter typed;
        typed.put_text("Conv2D");
        typed.put_text("");
        typed.put(std::uint32_t{1});
        typed.put_text("stride");
        typed.put(std::uint8_t{7});
        typed.put(std::int64_t{1});
        write_all(bad, with_structure(typed.bytes()));
        expect_error("attribute type 7 at offset ");
        expect_error("is neither 0 (integer) nor 1 (float64): the file is corrupt");

        cnn::detail::ByteWriter longer;
        record(longer, "ReLU", 0);
        longer.put(std::uint32_t{0});
        write_all(bad, with_structure(longer.bytes()));
        expect_error("the structure ends at offset");
    }
    SECTION("every truncation") {
        for (std::size_t length = 0; length < good.size(); ++length) {
            write_all(bad, std::vector<std::uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(length)));
            CHECK_THROWS_AS(cnn::load_model(target, bad), cnn::model_error);
        }
        CHECK(cnn::test::parameter_values(target) == before);
    }
    SECTION("a flipped bit in every byte") {
        for (std::size_t i = 0; i < good.size(); ++i) {
            auto bytes = good;
            bytes[i] ^= 0x10;
            write_all(bad, bytes);
            INFO("byte " << i << " of " << good.size());
            CHECK_THROWS_AS(cnn::load_model(target, bad), cnn::model_error);
        }
        CHECK(cnn::test::parameter_values(target) == before);
    }
}
