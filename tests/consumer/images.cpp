// A user's program that links cnn::images: decodes a PGM written here (stb_image behind it).
#include <cnn/cnn.hpp>

#include <iostream>
#include <string>

int main() {
    const std::string pgm = std::string("P5\n2 1\n255\n") + '\x10' + '\x20';
    const cnn::Image image = cnn::decode_image({reinterpret_cast<const std::uint8_t*>(pgm.data()), pgm.size()}, "memory");
    if (image.channels != 1 || image.rows != 1 || image.cols != 2 || image.planes[1] != 0x20) {
        std::cerr << "consumer_images: the image decoded wrong\n";
        return 1;
    }
    std::cout << "consumer_images: decoded a 2x1 PGM through cnn::images\n";
    return 0;
}
