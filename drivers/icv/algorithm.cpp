#include <drivers/icv/algorithm.h>

#include <array>

namespace ptpsec::icv {

namespace {

// seeds/001 Table 26 lists ICV lengths of 24 and 32 octets for AES-GMAC-192
// and -256. GMAC produces a GHASH-based tag of at most 16 octets whatever the
// key size (RFC 4543 §3.2, NIST SP 800-38D §5.2.1.2), so every GMAC variant
// carries a 16-octet ICV here. docs/security.md records this deviation.
constexpr std::array<algorithm_info, algorithm_count> table = {{
    {algorithm::hmac_sha256_128, "hmac-sha256-128", 0, 16, 0, false},
    {algorithm::hmac_sha256, "hmac-sha256", 1, 32, 0, false},
    {algorithm::aes_cmac_128, "aes-cmac-128", 2, 16, 16, false},
    {algorithm::aes_cmac_256, "aes-cmac-256", 2, 16, 32, false},
    {algorithm::aes_gmac_128, "aes-gmac-128", 3, 16, 16, true},
    {algorithm::aes_gmac_192, "aes-gmac-192", 4, 16, 24, true},
    {algorithm::aes_gmac_256, "aes-gmac-256", 5, 16, 32, true},
}};

} // namespace

std::span<const algorithm_info> all_algorithms() noexcept {
    return table;
}

const algorithm_info& info(algorithm alg) noexcept {
    return table[static_cast<size_t>(alg)];
}

std::optional<algorithm> from_name(std::string_view name) noexcept {
    for (const auto& a : table) {
        if (a.name == name) {
            return a.alg;
        }
    }
    return std::nullopt;
}

std::optional<algorithm> from_mac_type(uint16_t mac_type, size_t key_len) noexcept {
    switch (mac_type) {
    case 0:
        return algorithm::hmac_sha256_128;
    case 1:
        return algorithm::hmac_sha256;
    case 2:
        if (key_len == 16) {
            return algorithm::aes_cmac_128;
        }
        if (key_len == 32) {
            return algorithm::aes_cmac_256;
        }
        return std::nullopt;
    case 3:
        return algorithm::aes_gmac_128;
    case 4:
        return algorithm::aes_gmac_192;
    case 5:
        return algorithm::aes_gmac_256;
    default:
        return std::nullopt;
    }
}

} // namespace ptpsec::icv
