#include <control/tls/peer.h>

#include <fmt/format.h>

namespace ptpsec::tls {

std::string_view alpn_id(protocol p) noexcept {
    switch (p) {
    case protocol::ntske:
        return "ntske/1";
    case protocol::ntstsr:
        return "ntstsr/1";
    }
    return "ntske/1";
}

std::optional<protocol> protocol_from_alpn(std::string_view id) noexcept {
    if (id == alpn_id(protocol::ntske)) {
        return protocol::ntske;
    }
    if (id == alpn_id(protocol::ntstsr)) {
        return protocol::ntstsr;
    }
    return std::nullopt;
}

std::string peer::remote() const {
    if (address.find(':') != std::string::npos) {
        return fmt::format("[{}]:{}", address, port);
    }
    return fmt::format("{}:{}", address, port);
}

std::string to_hex(std::span<const uint8_t> bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (uint8_t b : bytes) {
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0x0f]);
    }
    return out;
}

} // namespace ptpsec::tls
