// What the model and checkpoint fuzz targets share: most mutations break a file's
// CRC-32, so each input is tried as it is and once more with its checksum repaired,
// which lets the fuzzer reach the parser behind the checksum.
#pragma once

#include <cnn/io/model.hpp>

#include <cstdint>
#include <cstring>
#include <vector>

namespace fuzz {

template <class Try>
void as_is_and_with_checksum_repaired(const std::uint8_t* data, std::size_t size, const Try& try_bytes) {
    std::vector<std::uint8_t> bytes(data, data + size);
    try_bytes(bytes);
    if (bytes.size() >= 4) {
        const std::uint32_t crc = cnn::detail::crc32(bytes.data(), bytes.size() - 4);
        std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
        try_bytes(bytes);
    }
}

}  // namespace fuzz
