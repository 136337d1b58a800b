#pragma once

// The MAC algorithms an AUTHENTICATION TLV can carry (seeds/001 Table 26),
// plus AES-CMAC with a 256-bit key, which linuxptp calls AES256.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace ptpsec::icv {

enum class algorithm : uint8_t {
    hmac_sha256_128,
    hmac_sha256,
    aes_cmac_128,
    aes_cmac_256,
    aes_gmac_128,
    aes_gmac_192,
    aes_gmac_256,
};

inline constexpr size_t algorithm_count = 7;
inline constexpr size_t max_icv_len = 32;
/// RFC 4543 §3.1: the per-packet IV is 8 octets; the nonce is salt (4) || IV (8).
inline constexpr size_t gmac_iv_len = 8;
inline constexpr size_t gmac_salt_len = 4;
inline constexpr size_t gmac_nonce_len = gmac_salt_len + gmac_iv_len;
/// HMAC keys longer than the SHA-256 block are hashed first (FIPS 198-1), so
/// any length works; 256 admits RFC 4231's 131-octet test keys with room.
inline constexpr size_t max_key_len = 256;

struct algorithm_info {
    algorithm alg;
    /// Short name used by benchmarks and the CLI: "hmac-sha256-128", ...
    std::string_view name;
    /// MAC Algorithm Type of seeds/001 Table 26.
    uint16_t mac_type;
    /// ICV octets on the wire.
    uint8_t icv_len;
    /// Required key length in octets; 0 means any non-zero length (HMAC).
    uint8_t key_len;
    /// GMAC needs a never-repeating IV per message.
    bool needs_iv;
};

/// Table of every algorithm, indexed by the enum value.
std::span<const algorithm_info> all_algorithms() noexcept;

const algorithm_info& info(algorithm alg) noexcept;

inline uint8_t icv_length(algorithm alg) noexcept {
    return info(alg).icv_len;
}

inline bool is_gmac(algorithm alg) noexcept {
    return info(alg).needs_iv;
}

/// Looks an algorithm up by its short name ("aes-gmac-256").
std::optional<algorithm> from_name(std::string_view name) noexcept;

/// Maps a Table 26 MAC Algorithm Type and a key length to an algorithm. Table
/// 26 has a single AES-CMAC entry; the key length selects 128 or 256 bits.
std::optional<algorithm> from_mac_type(uint16_t mac_type, size_t key_len) noexcept;

} // namespace ptpsec::icv
