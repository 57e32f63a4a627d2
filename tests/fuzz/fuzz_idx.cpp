// libFuzzer target: the IDX reader on arbitrary bytes, raw or gzip (the first
// two bytes decide, as for a file). Every input must either load, with the
// dimensions matching the data, or throw cnn::data_error; anything else (a
// crash, a sanitizer report, another exception, an allocation beyond
// -malloc_limit_mb) is a finding.
#include <cnn/data/idx.hpp>

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> bytes(data, size);
    for (std::size_t rank : {1, 3}) {
        try {
            const cnn::IdxArray array = cnn::read_idx(bytes, "fuzz input", rank);
            std::size_t count = 1;
            for (std::size_t extent : array.dimensions) count *= extent;
            if (array.dimensions.size() != rank || count != array.values.size()) std::abort();
        } catch (const cnn::data_error&) {
        }
    }
    return 0;
}
