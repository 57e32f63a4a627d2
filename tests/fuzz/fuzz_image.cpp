// libFuzzer target: the image decoder (stb_image behind cnn::decode_image) on arbitrary
// bytes, as the file's own channels, as greyscale, and resized to 8x8. Every input must
// either decode into planes of the size it reports or throw cnn::data_error; anything else
// (a crash, a sanitizer report, another exception, an allocation beyond -malloc_limit_mb)
// is a finding. Images are capped at 2^20 pixels here so that a large valid header is not
// mistaken for a finding.
#include <cnn/data/image_folder.hpp>

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> bytes(data, size);
    const std::size_t cap = std::size_t{1} << 20;
    for (const cnn::ImageOptions& options :
         {cnn::ImageOptions{.max_pixels = cap}, cnn::ImageOptions{.channels = 1, .max_pixels = cap},
          cnn::ImageOptions{.rows = 8, .cols = 8, .sizes = cnn::SizeMismatch::resize, .max_pixels = cap}}) {
        try {
            const cnn::Image image = cnn::decode_image(bytes, "fuzz input", options);
            if (image.planes.size() != image.channels * image.rows * image.cols) std::abort();
            if (options.rows != 0 && (image.rows != 8 || image.cols != 8)) std::abort();
        } catch (const cnn::data_error&) {
        }
    }
    return 0;
}
