#pragma once

// The text of the two signers' counter files, apart from their I/O, so that
// each reading can be tested and fuzzed on its own.
//
//   * software signer: the counter in decimal and a newline ("17\n"); 1 to
//     20 digits, no leading zero but for "0".
//   * PKCS#11 signer: three lines binding the counter to one key:
//
//       ptpsec pkcs11 counter 1
//       key-spki-sha256 <64 lower-case hex digits>
//       counter <decimal, no leading zero but for 0>
//
// Each format has one spelling per value: what a parse accepts is exactly
// what the matching format function writes. A refusal says what is wrong;
// the signer adds the file's name and refuses to reset the counter.

#include <drivers/base/result.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ptpsec::hsm {

/// The software signer's counter file. Refused: "expected a decimal number
/// and a newline".
result<uint64_t> parse_software_counter(std::string_view text);
std::string format_software_counter(uint64_t value);

/// A software counter file is never longer than this (20 digits and '\n').
inline constexpr size_t software_counter_max_size = 21;

struct pkcs11_counter {
    std::string key_hash; ///< SHA-256 of the key's SubjectPublicKeyInfo, hex
    uint64_t value = 0;
};

/// The PKCS#11 signer's counter file. A refusal names what is wrong ("it is
/// cut short", "its key hash is not 64 hex digits", ...). The key hash is
/// returned as found: comparing it with the signer's key is the caller's.
result<pkcs11_counter> parse_pkcs11_counter(std::string_view text);
std::string format_pkcs11_counter(std::string_view key_hash, uint64_t value);

/// Longer than this is refused unread ("it is far longer than a counter
/// file"): the file is about 130 octets.
inline constexpr size_t pkcs11_counter_max_size = 4096;

} // namespace ptpsec::hsm
