// Reading and writing whole files (cnn/io/file.hpp): only regular files are read or
// replaced, symbolic links are followed, permission bits survive a save, and what a
// killed save left behind is cleaned up.
#include <cnn/cnn.hpp>

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

std::string contents(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("Readers refuse what is not a regular file instead of blocking or growing without bound", "[files][errors]") {
    const fs::path dir = cnn::test::scratch_directory("files-read");
    REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
    cnn::Sequential net{cnn::Dense<float>{2, 2}};
    CHECK_THROWS_WITH(cnn::load_model(net, dir / "fifo"), (dir / "fifo").string() + ": is a FIFO, not a model file");
    CHECK_THROWS_WITH(cnn::load_checkpoint(net, dir / "fifo"), (dir / "fifo").string() + ": is a FIFO, not a checkpoint");
    CHECK_THROWS_WITH(cnn::load_model(net, "/dev/zero"), "/dev/zero: is a character device, not a model file");
    CHECK_THROWS_WITH(cnn::read_file(dir, 100), dir.string() + ": is a directory, not a file");
    // A file that starts like a checkpoint but is too short for one (it said it did not start so).
    std::ofstream(dir / "short.checkpoint") << std::string("CNNCHKPT\x01\x00\x00\x00", 12);
    CHECK_THROWS_WITH(cnn::load_checkpoint(net, dir / "short.checkpoint"),
                      (dir / "short.checkpoint").string() +
                          ": truncated: 12 bytes, too short for a checkpoint's header and checksum");
    std::ofstream(dir / "big") << std::string(101, 'x');
    CHECK_THROWS_WITH(cnn::read_file(dir / "big", 100, "picture"),
                      (dir / "big").string() + ": is 101 bytes, more than a picture can be (100)");
    // A symbolic link loop is the library's error, naming the file, not a std::filesystem_error.
    fs::create_symlink("loop-b", dir / "loop-a");
    fs::create_symlink("loop-a", dir / "loop-b");
    CHECK_THROWS_AS(cnn::load_model(net, dir / "loop-a"), cnn::model_error);
    CHECK_THROWS_WITH(cnn::load_model(net, dir / "loop-a"), Catch::StartsWith((dir / "loop-a").string() + ": "));
}

TEST_CASE("Saving replaces only a regular file, follows links and keeps permission bits", "[files]") {
    const fs::path dir = cnn::test::scratch_directory("files-write");
    SECTION("a device or a FIFO is never replaced") {
        REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
        CHECK_THROWS_WITH(cnn::write_file_atomically(dir / "fifo", "x"),
                          (dir / "fifo").string() + ": is a FIFO; only a regular file is replaced by a save");
        CHECK(fs::is_fifo(dir / "fifo"));
        CHECK_THROWS_WITH(cnn::check_writable("/dev/null"),
                          "/dev/null: is a character device; only a regular file is replaced by a save");
        CHECK(fs::is_character_file("/dev/null"));
    }
    SECTION("a symbolic link is followed: the file it points to is replaced, the link stays") {
        fs::create_directories(dir / "real");
        std::ofstream(dir / "real" / "model.cnn") << "old";
        fs::create_symlink("real/model.cnn", dir / "link.cnn");
        cnn::write_file_atomically(dir / "link.cnn", "new");
        CHECK(fs::is_symlink(dir / "link.cnn"));
        CHECK(contents(dir / "real" / "model.cnn") == "new");
    }
    SECTION("the replaced file's permission bits are kept") {
        std::ofstream(dir / "shared.cnn") << "old";
        fs::permissions(dir / "shared.cnn", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                                fs::perms::others_read);
        cnn::write_file_atomically(dir / "shared.cnn", "new");
        CHECK(fs::status(dir / "shared.cnn").permissions() ==
              (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read));
        CHECK(contents(dir / "shared.cnn") == "new");
    }
    SECTION("temporaries of killed saves are removed; a running process's is left alone") {
        // PID 2^22 + 1 is above Linux's largest PID, so no process has it.
        std::ofstream(dir / "m.cnn.tmp.4194305") << "half";
        const std::string running = "m.cnn.tmp." + std::to_string(::getppid());
        std::ofstream(dir / running) << "in progress";
        std::ofstream(dir / "m.cnn.tmp.notapid") << "someone else's";
        cnn::write_file_atomically(dir / "m.cnn", "model");
        CHECK_FALSE(fs::exists(dir / "m.cnn.tmp.4194305"));
        CHECK(fs::exists(dir / running));
        CHECK(fs::exists(dir / "m.cnn.tmp.notapid"));
        CHECK(contents(dir / "m.cnn") == "model");
    }
    SECTION("check_writable says so before any work when the directory is missing") {
        CHECK_THROWS_WITH(cnn::check_writable(dir / "missing" / "m.cnn"),
                          Catch::StartsWith((dir / "missing" / "m.cnn").string() + ": cannot be written"));
        CHECK_NOTHROW(cnn::check_writable(dir / "m.cnn"));
        CHECK(fs::is_empty(dir));
    }
}
