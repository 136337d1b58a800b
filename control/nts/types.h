#pragma once

// NTS4PTP numbers (seeds/001 = draft-ietf-ntp-nts-for-ptp-00, on top of
// RFC 8915 §4) and the result type of the NTS codec: a value, or a parse error
// that carries both the NTS error code to answer with (seeds/001 Table 19) and
// a message for the operator that names the record and the field.
//
// Every registry number is an enum class over uint16_t: an enum class can hold
// any value of its underlying type, so numbers this code does not know (the
// unassigned and private ranges) travel through the codec unchanged.

#include <drivers/base/bytes.h>
#include <drivers/base/result.h>
#include <drivers/icv/algorithm.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace ptpsec::nts {

/// Record types, seeds/001 Table 12 (0-7 from RFC 8915 §7.6).
enum class record_type : uint16_t {
    end_of_message = 0,
    next_protocol_negotiation = 1,
    error = 2,
    warning = 3, // NTP only: "not used for PTP"
    aead_algorithm_negotiation = 4,
    new_cookie = 5,               // NTP only
    ntpv4_server_negotiation = 6, // NTP only
    ntpv4_port_negotiation = 7,   // NTP only
    association_mode = 1024,
    current_parameters = 1025,
    heartbeat_timeout = 1026,
    next_parameters = 1027,
    nts_message_type = 1028,
    ptp_time_server = 1029,
    security_association = 1030,
    source_port_identity = 1031,
    status = 1032,
    supported_mac_algorithms = 1033,
    ticket = 1034,
    ticket_key = 1035,
    ticket_key_id = 1036,
    validity_period = 1037,
    /// ptpsec's extension, in RFC 8915's Private or Experimental Use range
    /// (16384-32767; 0x5041, "PA"): a TPM quote of the client's platform
    /// state bound to this TLS session (record.h, platform_attestation).
    /// Not in Table 12: is_known_record() is false for it, so a message that
    /// does not allow it skips it when not critical, like any unknown record.
    platform_attestation = 0x5041,
};

/// The record's name as Table 12 spells it ("Validity Period"), or
/// "record type N" for a number Table 12 does not list.
std::string record_name(uint16_t type);
inline std::string record_name(record_type type) {
    return record_name(static_cast<uint16_t>(type));
}

/// True for the numbers of Table 12 (types 0-7 and 1024-1037).
bool is_known_record(uint16_t type) noexcept;

/// Types 3, 5, 6, 7: recognised (RFC 8915) but "not used for PTP" (Table 12).
bool is_ntp_only_record(uint16_t type) noexcept;

/// Error codes, seeds/001 Table 19 (0-2 from RFC 8915 §4.1.3).
enum class error_code : uint16_t {
    unrecognized_critical_record = 0,
    bad_request = 1,
    internal_server_error = 2,
    not_authorized = 3,
    grantor_not_registered = 4,
};

/// "Bad Request", or "error code N" for a number Table 19 does not name.
std::string error_name(error_code code);

/// Protocol IDs of the NTS Next Protocol Negotiation record, Table 20.
enum class next_protocol : uint16_t {
    ntpv4 = 0,
    ptpv2_1 = 1,
};

/// AEAD algorithm numbers (IANA AEAD registry, RFC 5297), Table 13.
enum class aead_algorithm : uint16_t {
    aes_siv_cmac_256 = 15,
    aes_siv_cmac_384 = 16,
    aes_siv_cmac_512 = 17,
};

/// Key length of a Table 13 algorithm in octets; nullopt for any other number.
std::optional<size_t> aead_key_length(aead_algorithm alg) noexcept;

/// MAC Algorithm Types, seeds/001 Table 26 (§4.2.14).
enum class mac_algorithm : uint16_t {
    hmac_sha256_128 = 0,
    hmac_sha256 = 1,
    aes_cmac = 2,
    aes_gmac_128 = 3,
    aes_gmac_192 = 4,
    aes_gmac_256 = 5,
};

/// Every algorithm of Table 13, strongest first, and of Table 26: what a
/// grantor offers and a server allows unless configured otherwise.
inline constexpr std::array<aead_algorithm, 3> all_aead_algorithms{
    aead_algorithm::aes_siv_cmac_512, aead_algorithm::aes_siv_cmac_384, aead_algorithm::aes_siv_cmac_256};
inline constexpr std::array<mac_algorithm, 6> all_mac_algorithms{
    mac_algorithm::hmac_sha256_128, mac_algorithm::hmac_sha256,  mac_algorithm::aes_cmac,
    mac_algorithm::aes_gmac_128,    mac_algorithm::aes_gmac_192, mac_algorithm::aes_gmac_256};

/// The ICV algorithm of a Security Association record: its Integrity
/// Algorithm Type and its Key Length. Table 26 has one AES-CMAC entry (2) and
/// no number for AES-CMAC with a 256-bit key; like drivers/icv
/// (icv::from_mac_type) we do not invent a private-range number for it: type 2
/// with a 16-octet key is AES-CMAC-128 (RFC 4493), with a 32-octet key
/// AES-CMAC-256. nullopt when the pair names nothing we can run.
std::optional<icv::algorithm> to_icv_algorithm(mac_algorithm type, size_t key_length) noexcept;

/// The Table 26 number to put in Integrity Algorithm Type for an ICV algorithm
/// (AES-CMAC-128 and AES-CMAC-256 both give 2; the key length tells them apart).
mac_algorithm to_mac_algorithm(icv::algorithm alg) noexcept;

/// Association Types, seeds/001 Table 15.
enum class association_type : uint16_t {
    group = 0,
    ipv4 = 1,
    ipv6 = 2,
    ieee802_3 = 3,
    port_identity = 4,
};

/// NTS Message Types of the NTS-TSR protocol, seeds/001 Table 22.
enum class nts_message_type : uint16_t {
    registration_request = 0,
    registration_response = 1,
    registration_revoke = 2,
    heartbeat = 3,
};

/// "PTP Registration Request", or "message type N".
std::string message_type_name(nts_message_type type);

/// Status Types of the Status record, seeds/001 Table 25.
enum class status_type : uint16_t {
    grantor_load = 0,
};

/// The two sub-protocols, told apart by ALPN: "ntske/1" and "ntstsr/1" (§2.1, §2.2).
enum class sub_protocol : uint8_t {
    nts_ke,
    nts_tsr,
};

// --- Limits ----------------------------------------------------------------
// Exceeding any of them is a Bad Request whose message names the limit.

/// Largest message accepted, End of Message included: the plaintext of one TLS
/// record (RFC 8446 §5.1, 2^14 octets). The largest message this codec builds
/// from realistic data (a TiM PTP Key Response with both containers, 64-octet
/// keys and four grantor addresses) is under 700 octets.
inline constexpr size_t max_message_size = 16384;
/// Records per message, counting the records inside containers and the
/// unknown records that are skipped. A TiM Key Response with both containers has 12.
inline constexpr size_t max_records = 64;
/// Containers (Current/Next Parameters) hold records; they never hold
/// containers (§4.2.3 lists what they may contain).
inline constexpr size_t max_container_depth = 1;
/// Entries of a list of 16-bit numbers (Next Protocols, AEAD and MAC
/// algorithms). The registries hold 2, 3 and 6 numbers.
inline constexpr size_t max_list_entries = 32;

// --- Keys ------------------------------------------------------------------

/// Key material: Security Association keys and Ticket Keys.
using secret_bytes = std::vector<uint8_t, wiping_allocator<uint8_t>>;

// --- Parse results -----------------------------------------------------------

/// Why a message (or a record) was refused: the code to put in the Error
/// record of the answer, and a message naming record and field, e.g.
/// "Validity Period in Current Parameters: 10 octets, 12 expected".
struct parse_error {
    error_code code = error_code::bad_request;
    std::string message;
};

/// ptpsec::result with a parse_error instead of a plain error.
template <typename T>
class [[nodiscard]] parse_result : public result<T, parse_error> {
public:
    using result<T, parse_error>::result;

    error_code code() const { return this->err().code; }
    /// The error as a ptpsec::error (message only), for callers that log it.
    ptpsec::error to_error() const { return ptpsec::error{this->message()}; }
};

/// A Bad Request with the given message.
inline parse_error bad_request(std::string message) {
    return parse_error{error_code::bad_request, std::move(message)};
}

} // namespace ptpsec::nts
