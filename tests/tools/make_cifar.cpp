// Test tool: writes a small learnable data set in the published CIFAR-10 binary layout
// (data_batch_1.bin ... data_batch_5.bin, test_batch.bin, batches.meta.txt), and one test
// image of each of the first two classes as a PPM file, for the example programs' tests;
// with --folders, the same images as folders of PNG files instead (train/CLASS/N.png,
// test/CLASS/N.png) and the two test images as class0.png and class1.png; with --cifar100,
// the same images in CIFAR-100's layout (train.bin, test.bin, fine and coarse label names),
// fine label k and coarse label k / 5.
// Class k is noise with a bright 12x12 square in channel k mod 3 at one of nine places
// (class 9: the whole image tinted), jittered by up to 2 pixels.
//   make_cifar DIR [IMAGES_PER_BATCH] [--folders | --cifar100]
#include <cnn/cnn.hpp>

#include <stb/stb_image_write.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <string>

namespace {

cnn::Dataset make(std::size_t count, cnn::Random& rng) {
    cnn::Dataset data = cnn::empty_cifar_dataset(cnn::CifarFormat::cifar10());
    data.count = count;
    for (std::size_t n = 0; n < count; ++n) {
        const auto label = static_cast<std::uint8_t>(rng.below(10));
        data.labels.push_back(label);
        const std::size_t top = 9 * (label / 3) + rng.below(5), left = 9 * (label % 3) + rng.below(5);
        for (std::size_t c = 0; c < 3; ++c)
            for (std::size_t i = 0; i < 32; ++i)
                for (std::size_t j = 0; j < 32; ++j) {
                    const bool lit = label == 9 ? c == 2 : c == label % 3 && i >= top && i < top + 12 && j >= left &&
                                                               j < left + 12;
                    data.images.push_back(static_cast<std::uint8_t>(rng.below(60) + (lit ? 150 : 0)));
                }
    }
    return data;
}

/// Image `index` of `data` as interleaved RGB, as PPM and PNG files store it.
std::vector<unsigned char> interleaved(const cnn::Dataset& data, std::size_t index) {
    std::vector<unsigned char> pixels;
    for (std::size_t p = 0; p < 32 * 32; ++p)
        for (std::size_t c = 0; c < 3; ++c) pixels.push_back(data.images[(index * 3 + c) * 1024 + p]);
    return pixels;
}

void write_ppm(const std::filesystem::path& path, const cnn::Dataset& data, std::size_t index) {
    const std::vector<unsigned char> pixels = interleaved(data, index);
    std::ofstream out(path, std::ios::binary);
    out << "P6\n32 32\n255\n";
    out.write(reinterpret_cast<const char*>(pixels.data()), static_cast<std::streamsize>(pixels.size()));
}

void write_png(const std::filesystem::path& path, const cnn::Dataset& data, std::size_t index) {
    if (stbi_write_png(path.c_str(), 32, 32, 3, interleaved(data, index).data(), 32 * 3) == 0)
        throw std::runtime_error(path.string() + ": cannot be written");
}

/// The first image of class `label` in `data`, if it has one.
std::optional<std::size_t> first_of_class(const cnn::Dataset& data, std::uint8_t label) {
    for (std::size_t i = 0; i < data.count; ++i)
        if (data.labels[i] == label) return i;
    return std::nullopt;
}

const char* const class_names[] = {"top-left", "top", "top-right", "left", "centre", "right", "bottom-left", "bottom",
                                   "bottom-right", "tinted"};

void write_folders(const std::filesystem::path& dir, const cnn::Dataset& data) {
    for (const char* name : class_names) std::filesystem::create_directories(dir / name);
    for (std::size_t i = 0; i < data.count; ++i)
        write_png(dir / class_names[data.labels[i]] / (std::to_string(10000 + i) + ".png"), data, i);
}

/// `data` as a CIFAR-100 file: each record the coarse label (fine / 5), the fine label, the image.
void write_cifar100(const std::filesystem::path& path, const cnn::Dataset& data) {
    std::ofstream out(path, std::ios::binary);
    for (std::size_t i = 0; i < data.count; ++i) {
        const char labels[2] = {static_cast<char>(data.labels[i] / 5), static_cast<char>(data.labels[i])};
        out.write(labels, 2);
        out.write(reinterpret_cast<const char*>(data.images.data() + i * data.image_size()),
                  static_cast<std::streamsize>(data.image_size()));
    }
    if (!out.flush()) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace

int main(int argc, char** argv) try {
    const std::string layout = argc >= 2 && std::string(argv[argc - 1]).starts_with("--") ? argv[argc - 1] : "";
    if (!layout.empty()) --argc;
    const bool folders = layout == "--folders";
    if ((argc != 2 && argc != 3) || (!layout.empty() && !folders && layout != "--cifar100")) {
        std::cerr << "usage: make_cifar DIR [IMAGES_PER_BATCH] [--folders | --cifar100]\n";
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    const std::size_t per_batch = argc == 3 ? std::stoul(argv[2]) : 400;
    std::filesystem::create_directories(dir);
    cnn::Random rng{2026};
    if (folders) {
        cnn::Dataset train = make(per_batch * 5, rng);
        const cnn::Dataset test = make(per_batch, rng);
        write_folders(dir / "train", train);
        write_folders(dir / "test", test);
        for (std::uint8_t label : {0, 1})
            if (const auto i = first_of_class(test, label)) write_png(dir / ("class" + std::to_string(label) + ".png"), test, *i);
        return 0;
    }
    if (layout == "--cifar100") {
        write_cifar100(dir / "train.bin", make(per_batch * 5, rng));
        write_cifar100(dir / "test.bin", make(per_batch, rng));
        std::ofstream names(dir / "fine_label_names.txt");
        for (const char* name : class_names) names << name << "\n";
        for (int k = 10; k < 100; ++k) names << "unused" << k << "\n";
        std::ofstream(dir / "coarse_label_names.txt") << "upper\nlower\n";
        for (int k = 2; k < 20; ++k) std::ofstream(dir / "coarse_label_names.txt", std::ios::app) << "unused" << k << "\n";
        return 0;
    }
    for (int batch = 1; batch <= 5; ++batch)
        cnn::write_cifar(dir / ("data_batch_" + std::to_string(batch) + ".bin"), make(per_batch, rng),
                         cnn::CifarFormat::cifar10());
    const cnn::Dataset test = make(per_batch, rng);
    cnn::write_cifar(dir / "test_batch.bin", test, cnn::CifarFormat::cifar10());
    std::ofstream(dir / "batches.meta.txt") << "top-left\ntop\ntop-right\nleft\ncentre\nright\nbottom-left\nbottom\n"
                                               "bottom-right\ntinted\n\n";
    for (std::uint8_t label : {0, 1})
        if (const auto i = first_of_class(test, label)) write_ppm(dir / ("class" + std::to_string(label) + ".ppm"), test, *i);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "make_cifar: " << e.what() << "\n";
    return 1;
}
