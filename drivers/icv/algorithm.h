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
    /// Short name used by benchmarks and the CLI: "hmac-sha256-128", ...
    std::string_view name;
    /// MAC Algorithm Type of seeds/001 Table 26.
    uint16_t mac_type;
    algorithm alg;
    /// ICV octets on the wire.
    uint8_t icv_len;
    /// Required key length in octets; 0 means any non-zero length (HMAC).
    uint8_t key_len;
    /// GMAC needs a never-repeating IV per message.
    bool needs_iv;
};

namespace detail {
// seeds/001 Table 26 lists ICV lengths of 24 and 32 octets for AES-GMAC-192
// and -256. GMAC produces a GHASH-based tag of at most 16 octets whatever the
// key size (RFC 4543 §3.2, NIST SP 800-38D §5.2.1.2), so every GMAC variant
// carries a 16-octet ICV here. docs/security.md records this deviation.
inline constexpr algorithm_info algorithm_table[algorithm_count] = {
    {"hmac-sha256-128", 0, algorithm::hmac_sha256_128, 16, 0, false},
    {"hmac-sha256", 1, algorithm::hmac_sha256, 32, 0, false},
    {"aes-cmac-128", 2, algorithm::aes_cmac_128, 16, 16, false},
    {"aes-cmac-256", 2, algorithm::aes_cmac_256, 16, 32, false},
    {"aes-gmac-128", 3, algorithm::aes_gmac_128, 16, 16, true},
    {"aes-gmac-192", 4, algorithm::aes_gmac_192, 16, 24, true},
    {"aes-gmac-256", 5, algorithm::aes_gmac_256, 16, 32, true},
};
} // namespace detail

/// Table of every algorithm, indexed by the enum value.
inline std::span<const algorithm_info> all_algorithms() noexcept {
    return detail::algorithm_table;
}

inline const algorithm_info& info(algorithm alg) noexcept {
    return detail::algorithm_table[static_cast<size_t>(alg)];
}

inline uint8_t icv_length(algorithm alg) noexcept {
    return info(alg).icv_len;
}

inline bool is_gmac(algorithm alg) noexcept {
    return info(alg).needs_iv;
}

inline bool is_hmac(algorithm alg) noexcept {
    return alg == algorithm::hmac_sha256_128 || alg == algorithm::hmac_sha256;
}

/// Looks an algorithm up by its short name ("aes-gmac-256").
std::optional<algorithm> from_name(std::string_view name) noexcept;

/// Maps a Table 26 MAC Algorithm Type and a key length to an algorithm. Table
/// 26 has a single AES-CMAC entry; the key length selects 128 or 256 bits.
std::optional<algorithm> from_mac_type(uint16_t mac_type, size_t key_len) noexcept;

} // namespace ptpsec::icv
