#pragma once

// NTS records (RFC 8915 §4, seeds/001 §4): a bounded reader that walks a
// sequence of records without ever reading past its span, a writer that
// appends records to a std::vector, and the typed body of every record of
// seeds/001 Table 12.
//
//    0                   1                   2                   3
//   |C|         Record Type         |          Body Length          |
//   |                          Record Body ...                      |
//
// The decode_* functions check everything a body says about itself (its
// length, the length of each field, list structure, the rules of the record's
// own subsection that hold wherever it appears). Rules that depend on the
// message (exactly once, mandatory, "at least HMAC-SHA256-128", ...) live in
// message.h. Every refusal is a Bad Request whose message names the record,
// the place (`where`: "PTP Key Request", "Current Parameters") and the field:
// "Validity Period in Current Parameters: 10 octets, 12 expected".
//
// The append_* functions write a record with the critical bit the codec's
// policy gives it (default_critical): set where seeds/001 says MUST or MAY,
// clear where it says SHOULD NOT (Heartbeat Timeout, Status). A peer that
// does not know a PTP record then answers "Unrecognized Critical Record"
// instead of silently ignoring it.

#include <control/nts/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ptpsec::nts {

inline constexpr size_t record_header_size = 4;
inline constexpr uint16_t critical_bit = 0x8000;
inline constexpr size_t max_body_length = 0xFFFF;

/// One record as found on the wire. `body` points into the reader's span.
struct record_view {
    bool critical = false;
    uint16_t type = 0;
    std::span<const uint8_t> body;
    /// Offset of the record header in the span being read.
    size_t offset = 0;
};

/// Walks a sequence of records (a message, or a container's body). Never reads
/// past the span: a header or body that would overrun it is a Bad Request.
class record_reader {
public:
    /// `where` names the sequence in error messages; it must outlive the reader.
    record_reader(std::span<const uint8_t> bytes, std::string_view where) noexcept;

    bool at_end() const noexcept { return _offset == _bytes.size(); }
    size_t offset() const noexcept { return _offset; }
    size_t remaining() const noexcept { return _bytes.size() - _offset; }

    /// The next record; at_end() must be false.
    parse_result<record_view> next();

private:
    std::span<const uint8_t> _bytes;
    size_t _offset = 0;
    std::string_view _where;
};

/// Appends records to a byte vector (the control plane may allocate).
/// A body longer than 65535 octets cannot be encoded: its Body Length is
/// truncated, which the message validate() functions report.
class record_writer {
public:
    explicit record_writer(std::vector<uint8_t>& out) noexcept : _out(out) {}

    /// A whole record.
    void append(uint16_t type, bool critical, std::span<const uint8_t> body);
    void append(record_type type, bool critical, std::span<const uint8_t> body) {
        append(static_cast<uint16_t>(type), critical, body);
    }

    /// Starts a record whose body is then written with put_*; close() with the
    /// returned mark writes its Body Length. Containers nest records this way.
    size_t open(uint16_t type, bool critical);
    size_t open(record_type type, bool critical) { return open(static_cast<uint16_t>(type), critical); }
    void close(size_t mark);

    void put_u8(uint8_t v) { _out.push_back(v); }
    void put_u16(uint16_t v);
    void put_u32(uint32_t v);
    void put_bytes(std::span<const uint8_t> bytes) { _out.insert(_out.end(), bytes.begin(), bytes.end()); }

    std::vector<uint8_t>& bytes() noexcept { return _out; }

private:
    std::vector<uint8_t>& _out;
};

/// The critical bit append_* gives each record type (see the header comment).
bool default_critical(record_type type) noexcept;

/// seeds/001 says "the Critical Bit MUST be set" for End of Message (§4.2.4),
/// Error (§4.2.5), NTS Next Protocol Negotiation (§4.2.8) and NTS Message
/// Type (§4.2.9). The message parsers refuse these records without it.
bool critical_required(record_type type) noexcept;

// --- Record bodies ------------------------------------------------------------

/// PTP PortIdentity = {clockIdentity (8) || portNumber (2)}, IEEE 1588-2019 §5.3.5.
struct port_identity {
    std::array<uint8_t, 8> clock_identity{};
    uint16_t port_number = 0;
    bool operator==(const port_identity&) const = default;
};
inline constexpr size_t port_identity_size = 10;

/// Association Value of type Group (§4.2.2, Table 16), 5 octets:
///   octet 0     domainNumber
///   octet 1     4 bits zero padding || majorSdoId (4 bits)
///   octet 2     minorSdoId
///   octets 3-4  subGroup
/// Table 16 gives the subGroup octets offsets 4 and 5, which contradicts
/// Table 15 (5 octets) and the formula {domainNumber || 4 bit zero padding ||
/// sdoId || subGroup} (8 + 4 + 12 + 16 bits); we follow the latter two.
struct group_number {
    uint8_t domain_number = 0;
    /// 12 bits: majorSdoId (high 4) || minorSdoId (low 8). Decoded values are
    /// below 4096; encoding keeps the low 12 bits.
    uint16_t sdo_id = 0;
    /// 0 when no subgroups are used; a Group-of-2 otherwise.
    uint16_t sub_group = 0;
    bool operator==(const group_number&) const = default;
};

struct ipv4_address {
    std::array<uint8_t, 4> octets{};
    bool operator==(const ipv4_address&) const = default;
};

struct ipv6_address {
    std::array<uint8_t, 16> octets{};
    bool operator==(const ipv6_address&) const = default;
};

/// IEEE 802.3 MAC address (Association Type 3).
struct mac_address {
    std::array<uint8_t, 6> octets{};
    bool operator==(const mac_address&) const = default;
};

/// An association tuple (Association Type || Association Value). The variant
/// index is the Association Type number of Table 15.
using association_value = std::variant<group_number, ipv4_address, ipv6_address, mac_address, port_identity>;

association_type type_of(const association_value& value) noexcept;

/// Octets of the Association Value of a Table 15 type; nullopt for other numbers.
std::optional<size_t> association_value_size(association_type type) noexcept;

/// PTP Time Server (§4.2.10): the grantor's addresses, at least one, no Group,
/// no Association Type twice.
struct ptp_time_server {
    std::vector<association_value> addresses;
    bool operator==(const ptp_time_server&) const = default;
};

/// NTS Message Type (§4.2.9, Table 21).
struct message_type_record {
    nts_message_type type = nts_message_type::registration_request;
    uint8_t version_major = 1;
    uint8_t version_minor = 0;
    bool operator==(const message_type_record&) const = default;
};

/// Security Association (§4.2.11, Table 23): SPP (1) || Integrity Algorithm
/// Type (2) || Key ID (4) || Key Length (2) || Key.
struct security_association {
    uint8_t spp = 0;
    mac_algorithm integrity_algorithm = mac_algorithm::hmac_sha256_128;
    uint32_t key_id = 0;
    secret_bytes key;
    bool operator==(const security_association&) const = default;
};
inline constexpr size_t security_association_fixed_size = 9;

/// Status (§4.2.13, Table 24): Status Type (2) || Status Data.
struct status_report {
    status_type type = status_type::grantor_load;
    std::vector<uint8_t> data;
    bool operator==(const status_report&) const = default;
};

/// Ticket (§4.2.15, Table 27): Ticket Key ID (4) || Source PortIdentity (10) ||
/// Nonce Length (2) || Nonce || Encrypted SA Length (2) || Encrypted SA.
/// The codec does not decrypt: encrypted_sa is the AEAD "Ciphertext" (§5.2),
/// tag and ciphertext, whose plaintext is a Security Association body.
struct ticket {
    uint32_t ticket_key_id = 0;
    port_identity source_port_identity;
    std::vector<uint8_t> nonce;
    std::vector<uint8_t> encrypted_sa;
    bool operator==(const ticket&) const = default;
};
inline constexpr size_t ticket_fixed_size = 18;

/// Validity Period (§4.2.18, Table 28), seconds.
struct validity_period {
    uint32_t lifetime = 0;
    uint32_t update_period = 0;
    uint32_t grace_period = 0;
    bool operator==(const validity_period&) const = default;
};
inline constexpr size_t validity_period_size = 12;

/// Platform Attestation (ptpsec's record 0x5041, types.h; optional in a PTP
/// Key Request and a PTP Registration Request, at most once): the client's
/// TPM quote of its platform state,
/// made with the signing key the Registrar enrolled for `signer_id`, whose
/// qualifyingData is this TLS session's exporter value (tls/peer.h,
/// session_binding). The KE server checks it against the Registrar
/// (verifier::registrar::check_platform, through ke::platform_check) before
/// it releases keys to a rule that asks for it.
///   Signer ID Length (2) || Signer ID (UTF-8, no control characters) ||
///   Attest Length (2) || Attest (TPMS_ATTEST, TPM 2.0 Part 2 §10.12.12) ||
///   Signature Length (2) || Signature (ECDSA P-256 r || s)
/// Each length 1 up to the limit below; the three fields fill the body.
struct platform_attestation {
    std::string signer_id;
    std::vector<uint8_t> attest;
    std::vector<uint8_t> signature;
    bool operator==(const platform_attestation&) const = default;
};
inline constexpr size_t max_attestation_signer_id = 255;
inline constexpr size_t max_attestation_attest = 1024;
inline constexpr size_t max_attestation_signature = 512;

// --- Decoders: one per record of Table 12 --------------------------------------
// `where` names the sequence the record was found in; empty for none.

/// Type 0: empty body (§4.2.4).
parse_result<ok_t> decode_end_of_message(std::span<const uint8_t> body, std::string_view where = {});
/// Type 1: list of 16-bit Protocol IDs (§4.2.8), at most max_list_entries.
parse_result<std::vector<next_protocol>> decode_next_protocols(std::span<const uint8_t> body,
                                                               std::string_view where = {});
/// Type 2: one 16-bit error code (§4.2.5); any number is accepted.
parse_result<error_code> decode_error(std::span<const uint8_t> body, std::string_view where = {});
/// Type 3 (NTP only): one 16-bit warning code (RFC 8915 §4.1.4).
parse_result<uint16_t> decode_warning(std::span<const uint8_t> body, std::string_view where = {});
/// Type 4: list of 16-bit AEAD algorithm numbers (§4.2.1), at most max_list_entries.
parse_result<std::vector<aead_algorithm>> decode_aead_algorithms(std::span<const uint8_t> body,
                                                                 std::string_view where = {});
/// Type 5 (NTP only): an opaque cookie (RFC 8915 §4.1.6).
parse_result<std::vector<uint8_t>> decode_new_cookie(std::span<const uint8_t> body, std::string_view where = {});
/// Type 6 (NTP only): a non-empty printable ASCII host name or address (RFC 8915 §4.1.7).
parse_result<std::string> decode_ntpv4_server(std::span<const uint8_t> body, std::string_view where = {});
/// Type 7 (NTP only): a 16-bit UDP port (RFC 8915 §4.1.8).
parse_result<uint16_t> decode_ntpv4_port(std::span<const uint8_t> body, std::string_view where = {});
/// Type 1024: one association tuple (§4.2.2). Unknown Association Types are
/// refused (their value length is not known), as are Group values whose
/// padding bits are not zero.
parse_result<association_value> decode_association_mode(std::span<const uint8_t> body, std::string_view where = {});
/// Type 1026: 16-bit timeout in seconds (§4.2.6). 0 decodes; the message
/// parser ignores the record then, as §4.2.6 tells a grantor to.
parse_result<uint16_t> decode_heartbeat_timeout(std::span<const uint8_t> body, std::string_view where = {});
/// Type 1028: message type and version (§4.2.9). Type and version are
/// checked by the message parsers.
parse_result<message_type_record> decode_nts_message_type(std::span<const uint8_t> body, std::string_view where = {});
/// Type 1029: list of association tuples (§4.2.10): at least one, none of type
/// Group, no type twice.
parse_result<ptp_time_server> decode_ptp_time_server(std::span<const uint8_t> body, std::string_view where = {});
/// Type 1030 (§4.2.11): Key Length not 0 and equal to the octets that follow.
/// Any Integrity Algorithm Type is accepted (the private range exists); the KE
/// server or PTP instance decides whether it can run it (to_icv_algorithm).
parse_result<security_association> decode_security_association(std::span<const uint8_t> body,
                                                               std::string_view where = {});
/// Type 1031: a PortIdentity, 10 octets (§4.2.12).
parse_result<port_identity> decode_source_port_identity(std::span<const uint8_t> body, std::string_view where = {});
/// Type 1032 (§4.2.13): Status Type 0 carries exactly one octet (values above
/// 100 decode; §4.2.13 has the server ignore them); other types any octets.
parse_result<status_report> decode_status(std::span<const uint8_t> body, std::string_view where = {});
/// Type 1033: list of 16-bit MAC Algorithm Types (§4.2.14), at most max_list_entries.
parse_result<std::vector<mac_algorithm>> decode_mac_algorithms(std::span<const uint8_t> body,
                                                               std::string_view where = {});
/// Type 1034 (§4.2.15): the two length fields must account for the body exactly.
parse_result<ticket> decode_ticket(std::span<const uint8_t> body, std::string_view where = {});
/// Type 1035: the ticket key, not empty (§4.2.16).
parse_result<secret_bytes> decode_ticket_key(std::span<const uint8_t> body, std::string_view where = {});
/// Type 1036: 32-bit ticket key ID (§4.2.17).
parse_result<uint32_t> decode_ticket_key_id(std::span<const uint8_t> body, std::string_view where = {});
/// Type 1037 (§4.2.18): 12 octets; Grace Period not greater than Update
/// Period. "Update Period not greater than the full Lifetime" is checked by
/// the message parsers in Next Parameters only: in Current Parameters the
/// Lifetime is what remains, and Update Period > Lifetime there just means the
/// update period has begun (§4.2.18).
parse_result<validity_period> decode_validity_period(std::span<const uint8_t> body, std::string_view where = {});
/// Type 0x5041 (ptpsec): the three length-prefixed fields of
/// platform_attestation, each within its limit, and nothing after them.
parse_result<platform_attestation> decode_platform_attestation(std::span<const uint8_t> body,
                                                               std::string_view where = {});

// --- Encoders -------------------------------------------------------------------

void append_end_of_message(record_writer& w);
void append_next_protocols(record_writer& w, std::span<const next_protocol> protocols);
void append_error(record_writer& w, error_code code);
void append_warning(record_writer& w, uint16_t code);
void append_aead_algorithms(record_writer& w, std::span<const aead_algorithm> algorithms);
void append_new_cookie(record_writer& w, std::span<const uint8_t> cookie);
void append_ntpv4_server(record_writer& w, std::string_view server);
void append_ntpv4_port(record_writer& w, uint16_t port);
void append_association_mode(record_writer& w, const association_value& value);
void append_heartbeat_timeout(record_writer& w, uint16_t seconds);
void append_nts_message_type(record_writer& w, const message_type_record& type);
void append_ptp_time_server(record_writer& w, const ptp_time_server& server);
void append_security_association(record_writer& w, const security_association& sa);
void append_source_port_identity(record_writer& w, const port_identity& id);
void append_status(record_writer& w, const status_report& status);
void append_mac_algorithms(record_writer& w, std::span<const mac_algorithm> algorithms);
void append_ticket(record_writer& w, const ticket& t);
void append_ticket_key(record_writer& w, std::span<const uint8_t> key);
void append_ticket_key_id(record_writer& w, uint32_t id);
void append_validity_period(record_writer& w, const validity_period& v);
void append_platform_attestation(record_writer& w, const platform_attestation& a);

} // namespace ptpsec::nts
