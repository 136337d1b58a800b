#pragma once

// Octets as lowercase hex, for messages, logs and tables (not the fast path).

#include <cstdint>
#include <span>
#include <string>

namespace ptpsec {

inline std::string to_hex(std::span<const uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * bytes.size());
    for (const uint8_t b : bytes) {
        out += digits[b >> 4];
        out += digits[b & 0x0F];
    }
    return out;
}

} // namespace ptpsec
