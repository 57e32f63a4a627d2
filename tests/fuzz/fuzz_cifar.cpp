// libFuzzer target: the CIFAR-10 and CIFAR-100 (fine and coarse) record readers on arbitrary
// bytes. Every input must either load, as a consistent data set of one image per record, or
// throw cnn::data_error; anything else (a crash, a sanitizer report, another exception, an
// allocation beyond -malloc_limit_mb) is a finding.
#include <cnn/data/cifar.hpp>

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> bytes(data, size);
    for (const cnn::CifarFormat format : {cnn::CifarFormat::cifar10(), cnn::CifarFormat::cifar100(),
                                          cnn::CifarFormat::cifar100(cnn::CifarLabels::coarse)}) {
        try {
            cnn::Dataset set = cnn::empty_cifar_dataset(format);
            cnn::append_cifar_records(set, bytes, format, "fuzz input");
            set.check("fuzz_cifar");
            if (set.count * format.record_bytes() != size || set.images.size() != set.count * 3072) std::abort();
        } catch (const cnn::data_error&) {
        }
    }
    return 0;
}
