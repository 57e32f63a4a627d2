// The CIFAR-10 and CIFAR-100 binary formats, exactly as their authors publish them
// (https://www.cs.toronto.edu/~kriz/cifar.html, "binary version"):
//
//   CIFAR-10   cifar-10-batches-bin/data_batch_1.bin ... data_batch_5.bin (training),
//              test_batch.bin; batches.meta.txt: the 10 class names, one per line.
//              Each record: 1 label byte (0..9), then 3072 pixel bytes.
//   CIFAR-100  cifar-100-binary/train.bin, test.bin; coarse_label_names.txt (20 names),
//              fine_label_names.txt (100 names). Each record: 1 coarse label byte
//              (0..19), 1 fine label byte (0..99), then 3072 pixel bytes.
//
// The 3072 pixel bytes are a 32 x 32 image as three planes, red, green, blue, each row-major:
// exactly the channels x rows x cols layout of a Dataset, so records are copied as they are.
// Every file is checked before anything is allocated for it (its size must be a whole
// number of records) and every label against its classes; problems are cnn::data_error
// naming the file, the record and its offset.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "cnn/data/dataset.hpp"
#include "cnn/error.hpp"
#include "cnn/io/file.hpp"

namespace cnn {

/// Which labels a CIFAR-100 data set is read with.
enum class CifarLabels {
    fine,   ///< the 100 classes
    coarse  ///< the 20 superclasses
};

/// The layout of one CIFAR binary format.
struct CifarFormat {
    std::size_t label_bytes;  ///< label bytes before each image: 1 (CIFAR-10) or 2 (CIFAR-100)
    std::size_t label_index;  ///< which of them is the label
    std::size_t classes;
    static constexpr std::size_t channels = 3, rows = 32, cols = 32, image_bytes = channels * rows * cols;

    [[nodiscard]] std::size_t record_bytes() const noexcept { return label_bytes + image_bytes; }

    static constexpr CifarFormat cifar10() noexcept { return {1, 0, 10}; }
    static constexpr CifarFormat cifar100(CifarLabels labels = CifarLabels::fine) noexcept {
        return labels == CifarLabels::fine ? CifarFormat{2, 1, 100} : CifarFormat{2, 0, 20};
    }
};

/// The largest CIFAR file read (a published batch holds 10,000 records, 30.7 MB; train.bin of
/// CIFAR-100 50,000, 153.7 MB): 1 GiB, so that a wrong path fails fast instead of filling memory.
inline constexpr std::uint64_t max_cifar_file_size = std::uint64_t{1} << 30;

/// Appends the records of one CIFAR file, already in memory, to `data` (whose channels,
/// rows, cols and classes must be the format's). `name` is used in error messages.
inline void append_cifar_records(Dataset& data, std::span<const std::uint8_t> bytes, const CifarFormat& format,
                                 const std::string& name) {
    const std::size_t record = format.record_bytes();
    if (bytes.empty()) throw data_error(name + ": is empty; expected CIFAR records of " + std::to_string(record) + " bytes");
    if (bytes.size() % record != 0)
        throw data_error(name + ": is " + std::to_string(bytes.size()) + " bytes, not a whole number of " +
                         std::to_string(record) + "-byte CIFAR records (" + std::to_string(format.label_bytes) +
                         " label byte" + (format.label_bytes == 1 ? "" : "s") + " + 3072 pixels); the last record, at offset " +
                         std::to_string(bytes.size() / record * record) + ", is cut short");
    const std::size_t records = bytes.size() / record;
    for (std::size_t i = 0; i < records; ++i)
        for (std::size_t l = 0; l < format.label_bytes; ++l) {
            const std::size_t offset = i * record + l;
            // CIFAR-100's other label (coarse beside fine) is checked too: a byte out of
            // range in either means the file is not what it claims.
            const std::size_t limit = format.label_bytes == 1 ? format.classes : (l == 0 ? 20 : 100);
            const char* kind = format.label_bytes == 1 ? "label" : (l == 0 ? "coarse label" : "fine label");
            if (bytes[offset] >= limit)
                throw data_error(name + ": record " + std::to_string(i) + " (offset " + std::to_string(offset) +
                                 ") has " + kind + " " + std::to_string(bytes[offset]) + ", not below " +
                                 std::to_string(limit));
        }
    data.images.reserve(data.images.size() + records * format.image_bytes);
    data.labels.reserve(data.labels.size() + records);
    for (std::size_t i = 0; i < records; ++i) {
        const std::uint8_t* start = bytes.data() + i * record;
        data.labels.push_back(start[format.label_index]);
        data.images.insert(data.images.end(), start + format.label_bytes, start + record);
    }
    data.count += records;
}

/// A data set of the format's shape and no images yet.
inline Dataset empty_cifar_dataset(const CifarFormat& format) {
    Dataset data;
    data.rows = format.rows;
    data.cols = format.cols;
    data.channels = format.channels;
    data.classes = format.classes;
    return data;
}

/// Reads CIFAR binary files (as published, or any number of records of the same layout)
/// into one data set, in the order given.
inline Dataset read_cifar(std::span<const std::filesystem::path> files, const CifarFormat& format) {
    Dataset data = empty_cifar_dataset(format);
    for (const std::filesystem::path& file : files) {
        const std::vector<std::uint8_t> bytes = read_file<data_error>(file, max_cifar_file_size, "CIFAR file");
        append_cifar_records(data, bytes, format, file.string());
        data.files.push_back(file);
    }
    return data;
}

/// CIFAR-10 from the directory the archive unpacks to (cifar-10-batches-bin): `split`
/// "train" reads data_batch_1.bin to data_batch_5.bin (50,000 images), "test" test_batch.bin
/// (10,000); the class names come from batches.meta.txt when it is there.
inline Dataset load_cifar10(const std::filesystem::path& directory, const std::string& split) {
    if (split != "train" && split != "test")
        throw parameter_error("load_cifar10: split '" + split + "' is neither \"train\" nor \"test\"");
    detail::require_directory(directory);
    std::vector<std::filesystem::path> files;
    if (split == "train")
        for (int i = 1; i <= 5; ++i) files.push_back(directory / ("data_batch_" + std::to_string(i) + ".bin"));
    else
        files.push_back(directory / "test_batch.bin");
    Dataset data = read_cifar(files, CifarFormat::cifar10());
    std::error_code error;
    if (std::filesystem::exists(directory / "batches.meta.txt", error))
        data.class_names = detail::read_name_lines(directory / "batches.meta.txt", 10, true);
    return data;
}

/// CIFAR-100 from the directory the archive unpacks to (cifar-100-binary): `split` "train"
/// reads train.bin (50,000 images), "test" test.bin (10,000), with the 100 fine labels or the
/// 20 coarse ones; the class names come from fine_label_names.txt or coarse_label_names.txt
/// when it is there.
inline Dataset load_cifar100(const std::filesystem::path& directory, const std::string& split,
                             CifarLabels labels = CifarLabels::fine) {
    if (split != "train" && split != "test")
        throw parameter_error("load_cifar100: split '" + split + "' is neither \"train\" nor \"test\"");
    detail::require_directory(directory);
    const std::filesystem::path file = directory / (split + ".bin");
    const CifarFormat format = CifarFormat::cifar100(labels);
    Dataset data = read_cifar(std::span{&file, 1}, format);
    const std::filesystem::path names =
        directory / (labels == CifarLabels::fine ? "fine_label_names.txt" : "coarse_label_names.txt");
    std::error_code error;
    if (std::filesystem::exists(names, error)) data.class_names = detail::read_name_lines(names, format.classes, true);
    return data;
}

/// Writes `data` (3 x 32 x 32 images) as one CIFAR binary file of `format` (for tests and
/// tools; CIFAR-100's other label byte is written as 0).
inline void write_cifar(const std::filesystem::path& path, const Dataset& data, const CifarFormat& format) {
    data.check("write_cifar");
    if (data.channels != format.channels || data.rows != format.rows || data.cols != format.cols)
        throw data_error("write_cifar: CIFAR images are 3x32x32, the data set's " + std::to_string(data.channels) +
                         "x" + std::to_string(data.rows) + "x" + std::to_string(data.cols));
    std::vector<std::uint8_t> bytes(data.count * format.record_bytes(), 0);
    for (std::size_t i = 0; i < data.count; ++i) {
        std::uint8_t* record = bytes.data() + i * format.record_bytes();
        record[format.label_index] = data.labels[i];
        std::memcpy(record + format.label_bytes, data.images.data() + i * format.image_bytes, format.image_bytes);
    }
    write_file_atomically<data_error>(path, bytes);
}

}  // namespace cnn
