#pragma once

// Octets as lowercase hex and back, for messages, logs, tables and command
// lines (not the fast path).

#include <charconv>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

/// Hex digits (either case, an optional 0x in front) as octets; nullopt when
/// `s` is not an even number of hex digits.
inline std::optional<std::vector<uint8_t>> from_hex(std::string_view s) {
    if (s.starts_with("0x") || s.starts_with("0X")) {
        s.remove_prefix(2);
    }
    if (s.size() % 2 != 0) {
        return std::nullopt;
    }
    std::vector<uint8_t> out(s.size() / 2);
    for (size_t i = 0; i < out.size(); ++i) {
        const char* first = s.data() + 2 * i;
        const auto [p, ec] = std::from_chars(first, first + 2, out[i], 16);
        if (ec != std::errc{} || p != first + 2) {
            return std::nullopt;
        }
    }
    return out;
}

} // namespace ptpsec
