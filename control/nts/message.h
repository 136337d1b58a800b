#pragma once

// The six NTS4PTP messages (seeds/001 §3, Tables 2-11): a struct per message,
// a strict parser and a builder for each, the error forms, and the answer to a
// request that does not parse.
//
//   NTS-KE  (ALPN "ntske/1"):  PTP Key Request -> PTP Key Response
//   NTS-TSR (ALPN "ntstsr/1"): PTP Registration Request -> PTP Registration Response,
//                              PTP Registration Revoke, PTP Heartbeat
//
// What a KE server does with a connection: find_message_end() on the bytes
// read so far until a whole message is there; parse_key_request() (NTS-KE) or
// parse_tsr_request() (NTS-TSR) on exactly those bytes; on failure send
// build_error_response(protocol, error.code) and log error.message; on success
// decide, fill a key_response / registration_response, validate() it
// (a failure is an Internal Server Error) and send build() of it.
//
// Parsing rules (all refusals are Bad Request unless said otherwise):
// - Records: RFC 8915 §4 framing through record.h; every record of Table 12
//   is decoded with the checks listed there.
// - End of Message exactly once and last (§4.2.4), with an empty body and the
//   Critical Bit. A parse function takes exactly one message: octets after End
//   of Message are refused (one message per parse; a stream is split with
//   find_message_end()).
// - Records of Table 12 that a message's table (Tables 2-11) does not list are
//   refused by name: Error in a request, NTS Next Protocol Negotiation in an
//   NTS-TSR message, NTS Message Type in an NTS-KE message, Next Parameters in
//   a request, containers inside containers, Heartbeat Timeout in a Key
//   Response, ...
// - Unknown record types (8-1023, 1038-65535): skipped when not critical, and
//   "Unrecognized Critical Record" (code 0) when critical (RFC 8915 §4).
// - The NTP-only records of Table 12 (3 Warning, 5 New Cookie, 6 NTPv4
//   Server, 7 NTPv4 Port: "not used for PTP") are recognised, so a critical
//   one is not code 0 but a Bad Request ("not used for PTP"); a non-critical
//   one is skipped like an unknown record (RFC 8915 lets a recipient ignore a
//   non-critical record, and §4.2.8 forbids mixing NTP and PTP records in one
//   exchange).
// - "Mandatory", "exactly once" and "MUST NOT be included" of Tables 2-11 and
//   §4.2 are enforced; an "optional" record may appear at most once, except
//   Status, which may repeat with distinct Status Types (§4.2.13).
// - Critical Bit: seeds/001 says MUST be set for End of Message, Error, NTS
//   Next Protocol Negotiation and NTS Message Type; these are refused without
//   it. The Critical Bit of the other records is read but not kept (it only
//   matters for records a recipient does not know); build() sets it on every
//   record except Heartbeat Timeout, Status (SHOULD NOT) and ptpsec's
//   Platform Attestation.
// - Platform Attestation (ptpsec's record 0x5041, record.h): optional in a
//   PTP Key Request (either mode) and a PTP Registration Request, at most
//   once; elsewhere it is an unknown record (skipped when not critical, code 0 when critical).
// - Containers (Current/Next Parameters, §4.2.3, §4.2.7) hold the records of
//   Table 5 (Key Response) or Table 9 (Registration Response); an End of
//   Message inside one is ignored (it must still have an empty body); a
//   container inside a container is refused (max_container_depth = 1).
// - NTS Message Type (NTS-TSR): exactly once, the type of the message being
//   parsed, version 1.0 (§4.2.9: "MUST match 0100h"); checked before the other
//   records so that a message of the wrong type says so.
// - Limits (types.h): max_message_size, max_records, max_list_entries.
//
// Decisions where seeds/001 is silent, ambiguous or leaves a choice:
// - Key Request in GrM (Association Type Group): a Supported MAC Algorithms
//   record is skipped unread (§4.2.14: the server MUST ignore it), and build()
//   does not write one (SHOULD NOT be included). Source PortIdentity is
//   refused in GrM and required otherwise (§4.2.12).
// - Key Request: the NTS Next Protocol list must name PTPv2.1 (1); other IDs
//   are kept (§4.2.8 says only PTPv2.1 SHOULD be listed). Key Response: the
//   list must name PTPv2.1 unless it is the error form (RFC 8915 §4.1.2 lets a
//   response list be empty).
// - Key Response containers: PTP Time Server and Ticket both (TiM) or neither
//   (GrM), and Next Parameters in the same mode as Current Parameters ("its
//   structure follows the same composition"). Whether the mode matches the
//   request, and the Ticket's Source PortIdentity the requester's, is for the
//   client to check.
// - Validity Period: Grace Period <= Update Period everywhere; Update Period <=
//   Lifetime only in Next Parameters, where the Lifetime is the full one
//   (§4.2.18). Whether Next Parameters may be present (only during the update
//   period) depends on the server's clock and is not checked.
// - Heartbeat Timeout 0 is parsed as absent: §4.2.6 tells the grantor to
//   ignore an invalid value. validate() refuses a response that carries 0.
// - Registration Response: the Ticket Key must have the key length of its
//   container's AEAD algorithm when that is one of Table 13.
// - The error forms (Tables 4 and 8) carry nothing but NTS Next Protocol
//   Negotiation / NTS Message Type, Error and End of Message; any Error code
//   number is accepted in a response.
// - Association Types outside Table 15 are refused (their value length is not
//   known). The Group value is 5 octets (see record.h on Table 16).
// - AES-CMAC with a 256-bit key is MAC Algorithm Type 2 with a 32-octet key
//   (types.h, to_icv_algorithm), as drivers/icv does; no private number.

#include <control/nts/record.h>
#include <control/nts/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <variant>
#include <vector>

namespace ptpsec::nts {

// --- NTS-KE ----------------------------------------------------------------------

/// PTP Key Request (§3.1, Table 2).
struct key_request {
    /// NTS Next Protocol Negotiation; must name PTPv2.1.
    std::vector<next_protocol> next_protocols{next_protocol::ptpv2_1};
    /// Association Mode: a Group (GrM) or the grantor's address (TiM).
    association_value association;
    /// TiM only, optional; when present it lists HMAC-SHA256-128.
    std::optional<std::vector<mac_algorithm>> supported_mac_algorithms;
    /// Mandatory in TiM, not allowed in GrM.
    std::optional<port_identity> source_port_identity;
    /// ptpsec's extension, optional in both modes: the client's platform
    /// state, quoted by its TPM for this TLS session (record.h).
    std::optional<platform_attestation> attestation;

    bool is_unicast() const noexcept { return type_of(association) != association_type::group; }
    bool operator==(const key_request&) const = default;
};

/// PTP Time Server and Ticket of a TiM container (Table 5).
struct unicast_parameters {
    ptp_time_server time_server;
    nts::ticket ticket;
    bool operator==(const unicast_parameters&) const = default;
};

/// Current or Next Parameters of a PTP Key Response (Table 5, Table 17).
struct key_parameters {
    security_association sa;
    validity_period validity;
    /// TiM: PTP Time Server and Ticket; GrM: none.
    std::optional<unicast_parameters> unicast;
    bool operator==(const key_parameters&) const = default;
};

struct key_grant {
    key_parameters current;
    /// Only during the update period (§4.2.7).
    std::optional<key_parameters> next;
    bool operator==(const key_grant&) const = default;
};

/// PTP Key Response (§3.2, Table 3), or its error form (Table 4).
struct key_response {
    std::vector<next_protocol> next_protocols{next_protocol::ptpv2_1};
    std::variant<key_grant, error_code> outcome;

    bool is_error() const noexcept { return outcome.index() == 1; }
    bool operator==(const key_response&) const = default;
};

// --- NTS-TSR -----------------------------------------------------------------------

/// PTP Registration Request (§3.3, Table 6).
struct registration_request {
    /// Must include the grantor's PortIdentity (§4.2.10).
    ptp_time_server time_server;
    /// Descending priority; must include AEAD_AES_SIV_CMAC_256 (§4.2.1).
    std::vector<aead_algorithm> aead_algorithms{aead_algorithm::aes_siv_cmac_256};
    /// Every MAC algorithm the grantor supports; must include HMAC-SHA256-128.
    std::vector<mac_algorithm> supported_mac_algorithms{mac_algorithm::hmac_sha256_128};
    /// ptpsec's extension, optional: the grantor's platform state, quoted by
    /// its TPM for this TLS session (record.h).
    std::optional<platform_attestation> attestation;
    bool operator==(const registration_request&) const = default;
};

/// Current or Next Parameters of a PTP Registration Response (Table 9, Table 18).
struct registration_parameters {
    /// The one AEAD algorithm chosen (§4.2.1).
    aead_algorithm aead = aead_algorithm::aes_siv_cmac_256;
    validity_period validity;
    uint32_t ticket_key_id = 0;
    secret_bytes ticket_key;
    bool operator==(const registration_parameters&) const = default;
};

struct registration_grant {
    registration_parameters current;
    std::optional<registration_parameters> next;
    /// Seconds, at least 1 (§4.2.6).
    std::optional<uint16_t> heartbeat_timeout;
    bool operator==(const registration_grant&) const = default;
};

/// PTP Registration Response (§3.4, Table 7), or its error form (Table 8).
struct registration_response {
    std::variant<registration_grant, error_code> outcome;

    bool is_error() const noexcept { return outcome.index() == 1; }
    bool operator==(const registration_response&) const = default;
};

/// PTP Registration Revoke (§3.5, Table 10).
struct registration_revoke {
    port_identity source_port_identity;
    bool operator==(const registration_revoke&) const = default;
};

/// PTP Heartbeat (§3.6, Table 11).
struct heartbeat {
    /// No Status Type twice (§4.2.13).
    std::vector<status_report> statuses;
    bool operator==(const heartbeat&) const = default;
};

/// What a grantor sends on an NTS-TSR connection.
using tsr_request = std::variant<registration_request, registration_revoke, heartbeat>;

// --- Parsing ---------------------------------------------------------------------------
// Each takes exactly one message, End of Message included. On failure the
// error's code is the one to answer with (Table 19) and its message names the
// record and field.

parse_result<key_request> parse_key_request(std::span<const uint8_t> message);
parse_result<key_response> parse_key_response(std::span<const uint8_t> message);
parse_result<registration_request> parse_registration_request(std::span<const uint8_t> message);
parse_result<registration_response> parse_registration_response(std::span<const uint8_t> message);
parse_result<registration_revoke> parse_registration_revoke(std::span<const uint8_t> message);
parse_result<heartbeat> parse_heartbeat(std::span<const uint8_t> message);

/// An NTS-TSR request of whichever type its NTS Message Type record says.
parse_result<tsr_request> parse_tsr_request(std::span<const uint8_t> message);

/// Splits a byte stream into messages: the length of the first message
/// (through its top-level End of Message) once all of it is in `stream`,
/// nullopt while more octets are needed. Only record headers are read (a
/// container is one record), so a container's End of Message does not end the
/// message. Refuses (Bad Request) a message that would exceed max_message_size
/// or max_records top-level records.
parse_result<std::optional<size_t>> find_message_end(std::span<const uint8_t> stream);

// --- Building --------------------------------------------------------------------------
// Records in the order of the message's table, critical bits as described
// above. Precondition: the message passes validate(); otherwise the bytes may
// be refused by the parser (a body over 65535 octets cannot even be encoded).

std::vector<uint8_t> build(const key_request& message);
std::vector<uint8_t> build(const key_response& message);
std::vector<uint8_t> build(const registration_request& message);
std::vector<uint8_t> build(const registration_response& message);
std::vector<uint8_t> build(const registration_revoke& message);
std::vector<uint8_t> build(const heartbeat& message);

/// Checks that build() of the message parses back to the same message: every
/// rule the parser enforces, applied before sending. Failures carry
/// error_code::internal_server_error (a server that built a message it would
/// refuse answers with that) and the parser's message.
parse_result<ok_t> validate(const key_request& message);
parse_result<ok_t> validate(const key_response& message);
parse_result<ok_t> validate(const registration_request& message);
parse_result<ok_t> validate(const registration_response& message);
parse_result<ok_t> validate(const registration_revoke& message);
parse_result<ok_t> validate(const heartbeat& message);

/// The answer to a request that failed to parse (or that the server refuses):
/// NTS-KE: a PTP Key Response with NTS Next Protocol Negotiation {PTPv2.1},
/// Error and End of Message (Table 4); NTS-TSR: a PTP Registration Response
/// with NTS Message Type {Registration Response, 1.0}, Error and End of
/// Message (Table 8).
std::vector<uint8_t> build_error_response(sub_protocol protocol, error_code code);
inline std::vector<uint8_t> build_error_response(sub_protocol protocol, const parse_error& why) {
    return build_error_response(protocol, why.code);
}

} // namespace ptpsec::nts
