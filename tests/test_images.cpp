// Image files and folders (cnn/data/image_folder.hpp, the cnn::images target): PNG and JPEG
// written by stb_image_write, PGM and PPM by hand, decoded into planes; folder data sets
// with classes in name order; sizes rejected or resized; every bad file named.
#include <cnn/cnn.hpp>
#include <cnn/data/image_folder.hpp>

#include <stb/stb_image_write.h>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "test_support.hpp"

namespace fs = std::filesystem;

namespace {

/// Interleaved RGB pixels of a w x h image: (x * 20 + c * 7, y * 30 + c, 100 + c * 50).
std::vector<unsigned char> rgb(int w, int h) {
    std::vector<unsigned char> pixels;
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            pixels.push_back(static_cast<unsigned char>(x * 20));
            pixels.push_back(static_cast<unsigned char>(y * 30 + 1));
            pixels.push_back(static_cast<unsigned char>(100 + x + y));
        }
    return pixels;
}

void write_png(const fs::path& path, int w, int h, int channels, const std::vector<unsigned char>& pixels) {
    REQUIRE(stbi_write_png(path.c_str(), w, h, channels, pixels.data(), w * channels) != 0);
}

void write_text(const fs::path& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

}  // namespace

TEST_CASE("PNG, PGM and PPM images decode to planes, the same pixels whatever the format", "[data][images]") {
    const fs::path dir = cnn::test::scratch_directory("images");
    const std::vector<unsigned char> pixels = rgb(4, 3);
    write_png(dir / "a.png", 4, 3, 3, pixels);
    std::string ppm = "P6\n4 3\n255\n";
    ppm.append(pixels.begin(), pixels.end());
    write_text(dir / "a.ppm", ppm);

    for (const char* name : {"a.png", "a.ppm"}) {
        const cnn::Image image = cnn::read_image(dir / name);
        REQUIRE(image.channels == 3);
        REQUIRE(image.rows == 3);
        REQUIRE(image.cols == 4);
        for (std::size_t c = 0; c < 3; ++c)
            for (std::size_t p = 0; p < 12; ++p) CHECK(image.planes[c * 12 + p] == pixels[p * 3 + c]);
    }
    // A greyscale PGM stays one channel; asked for three, its plane is copied into each.
    write_text(dir / "g.pgm", std::string("P5\n2 2\n255\n") + '\x00' + '\x40' + '\x80' + '\xff');
    const cnn::Image grey = cnn::read_image(dir / "g.pgm");
    CHECK(grey.channels == 1);
    CHECK(grey.planes == std::vector<std::uint8_t>{0x00, 0x40, 0x80, 0xff});
    const cnn::Image three = cnn::read_image(dir / "g.pgm", {.channels = 3});
    CHECK(three.planes == std::vector<std::uint8_t>{0, 0x40, 0x80, 0xff, 0, 0x40, 0x80, 0xff, 0, 0x40, 0x80, 0xff});
    // A JPEG is lossy: a flat colour comes back within a few levels.
    std::vector<unsigned char> flat(8 * 8 * 3);
    for (std::size_t i = 0; i < flat.size(); ++i) flat[i] = static_cast<unsigned char>(i % 3 == 0 ? 200 : 40);
    REQUIRE(stbi_write_jpg((dir / "flat.jpg").c_str(), 8, 8, 3, flat.data(), 95) != 0);
    const cnn::Image jpeg = cnn::read_image(dir / "flat.jpg");
    REQUIRE(jpeg.channels == 3);
    for (std::size_t p = 0; p < 64; ++p) {
        CHECK(std::abs(int{jpeg.planes[p]} - 200) <= 4);
        CHECK(std::abs(int{jpeg.planes[64 + p]} - 40) <= 4);
    }
}

TEST_CASE("A folder of class subfolders loads in name order, sizes rejected or resized", "[data][images]") {
    const fs::path root = cnn::test::scratch_directory("image-folder");
    for (const char* name : {"cat", "dog", "bird"}) fs::create_directories(root / name);
    write_png(root / "dog" / "2.png", 4, 3, 3, rgb(4, 3));
    write_png(root / "dog" / "1.png", 4, 3, 3, std::vector<unsigned char>(36, 9));
    write_png(root / "cat" / "x.png", 4, 3, 3, std::vector<unsigned char>(36, 7));
    write_png(root / "bird" / "only.png", 4, 3, 3, std::vector<unsigned char>(36, 5));
    write_text(root / "dog" / ".hidden", "not an image, and skipped");

    const cnn::Dataset data = cnn::load_image_folder(root);
    data.check("test");
    CHECK(data.class_names == std::vector<std::string>{"bird", "cat", "dog"});
    CHECK(data.labels == std::vector<std::uint8_t>{0, 1, 2, 2});
    CHECK(data.channels == 3);
    CHECK(data.rows == 3);
    CHECK(data.cols == 4);
    CHECK(data.images[0] == 5);
    CHECK(data.images[36] == 7);
    CHECK(data.images[2 * 36] == 9);                   // dog/1.png before dog/2.png
    CHECK(data.images[3 * 36 + 12 + 5] == 1 * 30 + 1);  // dog/2.png, green plane, pixel (1, 1)

    // Asked for greyscale: one channel, by luminance.
    const cnn::Dataset grey = cnn::load_image_folder(root, {.channels = 1});
    CHECK(grey.channels == 1);
    CHECK(grey.images.size() == 4 * 12);

    // An image of another size: an error naming it, unless resizing is chosen.
    write_png(root / "cat" / "y.png", 8, 6, 3, std::vector<unsigned char>(8 * 6 * 3, 7));
    CHECK_THROWS_WITH(cnn::load_image_folder(root),
                      (root / "cat" / "y.png").string() +
                          ": is 8x6 (width x height), the data set's images 4x3; resize them, or choose "
                          "SizeMismatch::resize");
    const cnn::Dataset resized = cnn::load_image_folder(root, {.sizes = cnn::SizeMismatch::resize});
    CHECK(resized.count == 5);
    CHECK(resized.images[2 * 36] == 7);  // a flat image resizes to the same flat colour
    // Or every image resized to a size of the caller's.
    const cnn::Dataset small = cnn::load_image_folder(root, {.rows = 2, .cols = 2, .sizes = cnn::SizeMismatch::resize});
    CHECK(small.rows == 2);
    CHECK(small.images.size() == 5 * 3 * 4);
}

TEST_CASE("Bad image files and folders name the file and the problem", "[data][images][errors]") {
    const fs::path root = cnn::test::scratch_directory("image-folder-bad");
    fs::create_directories(root / "a");
    CHECK_THROWS_WITH(cnn::load_image_folder(root / "nowhere"), (root / "nowhere").string() + ": no such directory");
    CHECK_THROWS_WITH(cnn::load_image_folder(root), (root / "a").string() + ": holds no images for class 'a'");
    write_text(root / "a" / "notes.txt", "hello");
    CHECK_THROWS_WITH(cnn::load_image_folder(root),
                      (root / "a" / "notes.txt").string() +
                          ": not an image file name (.png, .jpg, .jpeg, .pgm, .ppm or .pnm); move it out of the data set");
    fs::remove(root / "a" / "notes.txt");
    write_text(root / "a" / "broken.png", "\x89PNG\r\n\x1a\n but then nothing");
    CHECK_THROWS_WITH(cnn::load_image_folder(root),
                      Catch::Matchers::StartsWith((root / "a" / "broken.png").string() +
                                                  ": not a PNG, JPEG, PGM or PPM image stb_image can read ("));
    write_text(root / "a" / "broken.png", "");
    CHECK_THROWS_WITH(cnn::load_image_folder(root),
                      (root / "a" / "broken.png").string() + ": is empty; expected a PNG, JPEG, PGM or PPM image");
    // A header that claims a huge image is refused before anything is decoded.
    write_text(root / "a" / "broken.png", "P5\n100000 100000\n255\n");
    CHECK_THROWS_WITH(cnn::load_image_folder(root),
                      (root / "a" / "broken.png").string() + ": is 100000x100000, more than 16777216 pixels "
                                                             "(ImageOptions::max_pixels)");
    // A truncated PGM or PPM (stb_image would fill in the missing pixels), and one with bytes after them.
    write_text(root / "a" / "broken.png", "P5\n4 4\n255\nabc");
    CHECK_THROWS_WITH(cnn::load_image_folder(root),
                      (root / "a" / "broken.png").string() + ": truncated: 3 bytes of pixels at offset 11, 16 needed");
    write_text(root / "a" / "broken.png", "P6 # a comment\n1 1\n65535\n0123456789");
    CHECK_THROWS_WITH(cnn::load_image_folder(root),
                      (root / "a" / "broken.png").string() + ": has 4 bytes after the 6 bytes of pixels at offset 25");
    // A PNG chunk whose length claims more than the file holds (the fuzzer's 46 bytes, whose
    // IDAT asked stb_image for 859 MB), and a PNG cut short after a whole chunk.
    const std::string png_start("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x03\0\0\0\x03\x08\x02\0\0\0\xd9\x4a\x30\x30", 33);
    write_text(root / "a" / "broken.png", png_start + std::string("333%IDAT\x9c\x63\x42\x60\x82", 13));
    CHECK_THROWS_WITH(cnn::load_image_folder(root),
                      (root / "a" / "broken.png").string() + ": PNG chunk 'IDAT' at offset 33 claims 858993445 bytes "
                                                             "of data; the file has 1 after its header and CRC");
    write_text(root / "a" / "broken.png", png_start);
    CHECK_THROWS_WITH(cnn::load_image_folder(root),
                      (root / "a" / "broken.png").string() + ": truncated PNG: 0 bytes at offset 33, where a chunk "
                                                             "(at least 12 bytes) or IEND should be");
    CHECK_THROWS_WITH(cnn::read_image(root / "a" / "broken.png", {.channels = 2}),
                      "ImageOptions: channels 2 is not 1 (greyscale), 3 (RGB) or 0 (the file's)");
    fs::remove(root / "a" / "broken.png");
    fs::remove(root / "a");
    CHECK_THROWS_WITH(cnn::load_image_folder(root), root.string() + ": has no subfolders, one per class, of images");
}
