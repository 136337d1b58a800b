#include <drivers/icv/algorithm.h>

namespace ptpsec::icv {

std::optional<algorithm> from_name(std::string_view name) noexcept {
    for (const auto& a : detail::algorithm_table) {
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
