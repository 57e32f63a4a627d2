// Writes the seed corpus of the fuzz targets (committed under tests/fuzz/corpus/):
// small valid IDX files, raw and gzip, CIFAR files, valid model files of fuzz_model's networks and a
// checkpoint of fuzz_checkpoint's.
#include <cnn/cnn.hpp>

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "networks.hpp"

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: make_corpus DIR\n";
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir / "idx");
    std::filesystem::create_directories(dir / "model");
    std::filesystem::create_directories(dir / "checkpoint");
    std::filesystem::create_directories(dir / "cifar");
    std::vector<std::uint8_t> pixels(3 * 4 * 4);
    for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 5);
    cnn::write_idx(dir / "idx" / "images-3x4x4", {3, 4, 4}, pixels);
    cnn::write_idx(dir / "idx" / "labels-5", {5}, std::vector<std::uint8_t>{1, 0, 4, 9, 2});
    {
        std::ifstream in(dir / "idx" / "images-3x4x4", std::ios::binary);
        const std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        gzFile out = gzopen((dir / "idx" / "images-3x4x4.gz").c_str(), "wb9");
        gzwrite(out, raw.data(), static_cast<unsigned>(raw.size()));
        gzclose(out);
    }
    // Two CIFAR-10 records and two CIFAR-100 records (coarse, fine).
    cnn::Dataset colour = cnn::empty_cifar_dataset(cnn::CifarFormat::cifar10());
    colour.count = 2;
    colour.labels = {3, 7};
    colour.images.resize(2 * 3072);
    for (std::size_t i = 0; i < colour.images.size(); ++i) colour.images[i] = static_cast<std::uint8_t>(i * 11);
    cnn::write_cifar(dir / "cifar" / "cifar10-2.bin", colour, cnn::CifarFormat::cifar10());
    colour.classes = 100;
    colour.labels = {42, 99};
    cnn::write_cifar(dir / "cifar" / "cifar100-2.bin", colour, cnn::CifarFormat::cifar100());

    auto net = fuzz::flat_network();
    cnn::Random rng{1};
    net.initialize(rng);
    cnn::save_model(net, dir / "model" / "small.cnn", "net=fuzz\n");
    auto nested = fuzz::nested_network();
    nested.initialize(rng);
    cnn::save_model(nested, dir / "model" / "nested.cnn", "net=fuzz\n");
    // (corpus/model/version1.cnn is tests/data/model_v1_small.cnn, written by 0.2.0: this
    // library writes version 2 only.)

    // fuzz_checkpoint's network, interrupted after its third step on fuzz_checkpoint's data.
    auto small = cnn::Sequential{cnn::Conv2D<float>{1, 2, 3, {.padding = 1}}, cnn::ReLU<float>{},
                                 cnn::MaxPool<float>{2}, cnn::Flatten<float>{}, cnn::Dense<float>{2 * 2 * 2, 3}};
    cnn::Dataset data{std::vector<std::uint8_t>(12 * 16), std::vector<std::uint8_t>(12), 12, 4, 4, 3};
    for (std::size_t i = 0; i < data.images.size(); ++i) data.images[i] = static_cast<std::uint8_t>(i * 37);
    for (std::size_t i = 0; i < data.labels.size(); ++i) data.labels[i] = static_cast<std::uint8_t>(i % 3);
    cnn::SGD<float> sgd{{.learning_rate = 0.01, .momentum = 0.9}};
    std::size_t steps = 0;
    cnn::FitOptions options{.epochs = 2, .batch_size = 4, .validation_fraction = 0.25, .early_stopping_patience = 1};
    options.should_stop = [&] { return ++steps == 1; };
    const auto history = cnn::fit(small, sgd, data, rng, options);
    cnn::save_checkpoint(small, *history.resume, dir / "checkpoint" / "small.checkpoint", "net=fuzz\n");
    return 0;
}
