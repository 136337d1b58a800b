#pragma once

// Who is at the other end of an NTS-KE / NTS-TSR TLS connection: the
// application protocol agreed by ALPN and what the verified certificate
// says. TLS authenticates; authorization is decided from this by the layer
// above (seeds/001 §2.5.4, §2.5.5.4).

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::tls {

/// The two ALPN protocol IDs an NTS4PTP server speaks, and nothing else.
enum class protocol : uint8_t {
    ntske,  ///< "ntske/1": key establishment (seeds/001 §2.1)
    ntstsr, ///< "ntstsr/1": time server registration (seeds/001 §2.2)
};

/// The ALPN protocol ID on the wire: "ntske/1" or "ntstsr/1".
std::string_view alpn_id(protocol p) noexcept;
/// The protocol an ALPN ID names, if it is one of the two (exact match).
std::optional<protocol> protocol_from_alpn(std::string_view id) noexcept;

/// The exporter label of peer::session_binding.
inline constexpr std::string_view session_binding_label = "EXPORTER-ptpsec-platform-attestation";

struct peer {
    protocol alpn = protocol::ntske;
    /// The certificate's subject, RFC 2253 form ("CN=node-1,O=ptpsec").
    std::string subject;
    /// subjectAltName entries by kind, in certificate order.
    std::vector<std::string> dns_names;
    std::vector<std::string> ip_addresses; ///< textual ("192.0.2.1", "2001:db8::1")
    std::vector<std::string> uris;
    /// SHA-256 of the DER certificate.
    std::array<uint8_t, 32> fingerprint{};
    /// The DER certificate, for authorization data in extensions (§2.5.4).
    std::vector<uint8_t> certificate;
    /// This session's TLS exporter value (RFC 8446 §7.5) for
    /// session_binding_label, no context, 32 octets: the same at both ends
    /// of one session, unpredictable and different for any other. A TPM
    /// quote over it (nts::platform_attestation) cannot be replayed into
    /// another session.
    std::array<uint8_t, 32> session_binding{};
    /// The handshake resumed an earlier session (seeds/001 §2.1): no
    /// certificates were exchanged, the ones of the session's first
    /// handshake stand (session_binding is still this connection's own).
    bool resumed = false;
    /// Remote IP address; IPv4 clients of a dual-stack socket appear as IPv4.
    std::string address;
    uint16_t port = 0;

    /// "192.0.2.1:4460" or "[2001:db8::1]:4460".
    std::string remote() const;
};

/// Lower-case hex, no separators.
std::string to_hex(std::span<const uint8_t> bytes);

} // namespace ptpsec::tls
