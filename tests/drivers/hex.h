#pragma once

// Hex strings to octets for the known-answer tests, as RFCs and NIST files
// print them (white space between octets is allowed).

#include <gtest/gtest.h>

#include <cstdint>
#include <string_view>
#include <vector>

namespace ptpsec::icv::test {

using bytes = std::vector<uint8_t>;

inline bytes from_hex(std::string_view hex) {
    bytes out;
    int hi = -1;
    for (const char c : hex) {
        int v = -1;
        if (c >= '0' && c <= '9') {
            v = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            v = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            v = c - 'A' + 10;
        } else {
            continue; // spaces group the octets as the sources print them
        }
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back(static_cast<uint8_t>(hi << 4 | v));
            hi = -1;
        }
    }
    EXPECT_EQ(hi, -1) << "odd number of hex digits in " << hex;
    return out;
}

} // namespace ptpsec::icv::test
