#pragma once

// PTP messages (IEEE 1588-2019 clause 13): the 34-octet common header, the
// fixed body of every message type, and bounds-checked TLV iteration. Wire
// fields keep the standard's spelling. Nothing here allocates or throws; every
// read is checked against the octets the caller says are there.

#include <dataplane/ptp/error.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>

namespace ptpsec::ptp {

/// Table 36 (messageType values).
enum class message_type : uint8_t {
    sync = 0x0,
    delay_req = 0x1,
    pdelay_req = 0x2,
    pdelay_resp = 0x3,
    follow_up = 0x8,
    delay_resp = 0x9,
    pdelay_resp_follow_up = 0xA,
    announce = 0xB,
    signaling = 0xC,
    management = 0xD,
};

inline constexpr size_t message_type_space = 16;

/// "Sync", "Delay_Req", ...; "reserved(N)" style names are not produced: an
/// unknown type yields "Reserved".
std::string_view message_type_name(message_type t) noexcept;
inline size_t body_length(message_type t) noexcept;
inline bool is_known_message_type(uint8_t nibble) noexcept {
    return body_length(static_cast<message_type>(nibble & 0x0F)) != 0;
}
/// Event messages (Sync, Delay_Req, Pdelay_Req, Pdelay_Resp) go to UDP 319.
bool is_event_message(message_type t) noexcept;

inline constexpr size_t header_len = 34;
inline constexpr uint8_t ptp_version = 2;
inline constexpr size_t correction_offset = 8;
inline constexpr size_t correction_len = 8;
inline constexpr size_t source_port_identity_offset = 20;
inline constexpr size_t port_identity_len = 10;
inline constexpr size_t timestamp_len = 10;
inline constexpr size_t tlv_header_len = 4;
inline constexpr size_t max_message_len = 0xFFFF;

/// Table 52 (tlvType values).
inline constexpr uint16_t tlv_management = 0x0001;
inline constexpr uint16_t tlv_management_error_status = 0x0002;
inline constexpr uint16_t tlv_organization_extension = 0x0003;
inline constexpr uint16_t tlv_request_unicast_transmission = 0x0004;
inline constexpr uint16_t tlv_grant_unicast_transmission = 0x0005;
inline constexpr uint16_t tlv_cancel_unicast_transmission = 0x0006;
inline constexpr uint16_t tlv_acknowledge_cancel_unicast_transmission = 0x0007;
inline constexpr uint16_t tlv_path_trace = 0x0008;
inline constexpr uint16_t tlv_alternate_time_offset_indicator = 0x0009;
inline constexpr uint16_t tlv_authentication = 0x8009;
/// seeds/001 §6 defines the TICKET TLV without a tlvType. We take 0x2015 from
/// the range 1588 reserves for experimental TLVs (0x2004-0x202F) until one is
/// assigned; wire_options::ticket_tlv_type changes it.
inline constexpr uint16_t default_ticket_tlv_type = 0x2015;

/// Name of a tlvType for display ("AUTHENTICATION"); "unknown" otherwise.
std::string_view tlv_type_name(uint16_t type, uint16_t ticket_tlv_type = default_ticket_tlv_type) noexcept;

struct wire_options {
    uint16_t ticket_tlv_type = default_ticket_tlv_type;
};

struct port_identity {
    std::array<uint8_t, 8> clockIdentity{};
    uint16_t portNumber = 0;
    bool operator==(const port_identity&) const = default;
};

struct timestamp {
    uint64_t secondsField = 0; ///< UInteger48
    uint32_t nanosecondsField = 0;
    bool operator==(const timestamp&) const = default;
};

/// The common header (13.3). sdoId is majorSdoId (4 bits) || minorSdoId (8).
struct header {
    uint8_t majorSdoId = 0;
    message_type messageType = message_type::sync;
    uint8_t minorVersionPTP = 1;
    uint8_t versionPTP = ptp_version;
    uint16_t messageLength = 0;
    uint8_t domainNumber = 0;
    uint8_t minorSdoId = 0;
    uint16_t flagField = 0;
    int64_t correctionField = 0;
    uint32_t messageTypeSpecific = 0;
    port_identity sourcePortIdentity;
    uint16_t sequenceId = 0;
    uint8_t controlField = 0;
    int8_t logMessageInterval = 0;

    uint16_t sdo_id() const noexcept { return static_cast<uint16_t>((majorSdoId << 8) | minorSdoId); }
    bool operator==(const header&) const = default;
};

// Bodies (13.6 - 13.12, 15.4).
struct sync_body {
    timestamp originTimestamp;
    bool operator==(const sync_body&) const = default;
};
struct delay_req_body {
    timestamp originTimestamp;
    bool operator==(const delay_req_body&) const = default;
};
struct follow_up_body {
    timestamp preciseOriginTimestamp;
    bool operator==(const follow_up_body&) const = default;
};
struct delay_resp_body {
    timestamp receiveTimestamp;
    port_identity requestingPortIdentity;
    bool operator==(const delay_resp_body&) const = default;
};
struct pdelay_req_body {
    timestamp originTimestamp;
    std::array<uint8_t, 10> reserved{};
    bool operator==(const pdelay_req_body&) const = default;
};
struct pdelay_resp_body {
    timestamp requestReceiptTimestamp;
    port_identity requestingPortIdentity;
    bool operator==(const pdelay_resp_body&) const = default;
};
struct pdelay_resp_follow_up_body {
    timestamp responseOriginTimestamp;
    port_identity requestingPortIdentity;
    bool operator==(const pdelay_resp_follow_up_body&) const = default;
};
struct announce_body {
    timestamp originTimestamp;
    int16_t currentUtcOffset = 0;
    uint8_t grandmasterPriority1 = 128;
    uint8_t clockClass = 248;
    uint8_t clockAccuracy = 0xFE;
    uint16_t offsetScaledLogVariance = 0xFFFF;
    uint8_t grandmasterPriority2 = 128;
    std::array<uint8_t, 8> grandmasterIdentity{};
    uint16_t stepsRemoved = 0;
    uint8_t timeSource = 0xA0;
    bool operator==(const announce_body&) const = default;
};
struct signaling_body {
    port_identity targetPortIdentity;
    bool operator==(const signaling_body&) const = default;
};
struct management_body {
    port_identity targetPortIdentity;
    uint8_t startingBoundaryHops = 0;
    uint8_t boundaryHops = 0;
    uint8_t actionField = 0; ///< low nibble
    bool operator==(const management_body&) const = default;
};

using body = std::variant<sync_body, delay_req_body, pdelay_req_body, pdelay_resp_body, follow_up_body, delay_resp_body,
                          pdelay_resp_follow_up_body, announce_body, signaling_body, management_body>;

/// Octets of the fixed body after the common header (Tables 37-46); 0 for a
/// reserved type. Inline: every parsed frame asks.
inline size_t body_length(message_type t) noexcept {
    constexpr uint8_t lengths[message_type_space] = {
        10, 10, 20, 20, 0,  0,  0, 0, // Sync, Delay_Req, Pdelay_Req, Pdelay_Resp, reserved
        10, 20, 20, 30, 10, 14, 0, 0, // Follow_Up, Delay_Resp, Pdelay_Resp_Follow_Up, Announce, Signaling, Management
    };
    return lengths[static_cast<uint8_t>(t) & 0x0F];
}
message_type type_of(const body& b) noexcept;

void read_header(const uint8_t* in, header& out) noexcept; ///< in has header_len octets
void write_header(const header& h, uint8_t* out) noexcept; ///< out has header_len octets
/// Reads the body of type t from `in`, which holds body_length(t) octets.
void read_body(message_type t, const uint8_t* in, body& out) noexcept;
/// Writes the body; returns octets written (body_length of its type).
size_t write_body(const body& b, uint8_t* out) noexcept;

struct tlv_ref {
    uint16_t type = 0;
    uint16_t length = 0; ///< lengthField: octets of value
    uint16_t offset = 0; ///< of tlvType, from the start of the message
    const uint8_t* value = nullptr;
};

/// Walks the TLVs between the end of the fixed body and messageLength.
class tlv_iterator {
public:
    tlv_iterator(const uint8_t* msg, uint16_t begin, uint16_t end) noexcept : _msg(msg), _pos(begin), _end(end) {}

    /// Next TLV into `out`. Returns error::none with `done` false for a TLV,
    /// error::none with `done` true at the end, error::tlv_overrun if a TLV
    /// runs past the end.
    error next(tlv_ref& out, bool& done) noexcept {
        done = false;
        if (_pos == _end) {
            done = true;
            return error::none;
        }
        if (size_t{_end} - _pos < tlv_header_len) {
            return error::tlv_overrun;
        }
        const uint8_t* p = _msg + _pos;
        const auto len = static_cast<uint16_t>((p[2] << 8) | p[3]);
        if (size_t{_end} - _pos - tlv_header_len < len) {
            return error::tlv_overrun;
        }
        out.type = static_cast<uint16_t>((p[0] << 8) | p[1]);
        out.length = len;
        out.offset = _pos;
        out.value = p + tlv_header_len;
        _pos = static_cast<uint16_t>(_pos + tlv_header_len + len);
        return error::none;
    }

private:
    const uint8_t* _msg;
    uint16_t _pos;
    uint16_t _end;
};

/// 16.14.3 AUTHENTICATION TLV. secParamIndicator bit 1 (0x02) announces the
/// optional sequenceNo field; this implementation gives it 8 octets and uses
/// it for the AES-GMAC IV (docs/security.md). The disclosedKey (delayed
/// processing) and RES fields are not supported.
inline constexpr uint8_t sec_param_seqno_present = 0x02;
inline constexpr size_t auth_fixed_len = 6; ///< spp, secParamIndicator, keyID
inline constexpr size_t auth_seqno_len = 8;

struct auth_tlv {
    uint16_t offset = 0; ///< of tlvType within the message
    uint16_t length = 0; ///< lengthField
    uint8_t spp = 0;
    uint8_t secParamIndicator = 0;
    uint32_t keyID = 0;
    bool has_seqno = false;
    uint64_t sequenceNo = 0;
    uint16_t icv_offset = 0; ///< within the message
    uint16_t icv_len = 0;
};

/// What the fast path needs of a message: its length, where the TLVs are,
/// and where the AUTHENTICATION and TICKET TLVs sit if present. Produced by
/// scan_message(), which checks exactly what parse_message() checks but
/// decodes no header field it does not need.
struct message_scan {
    uint16_t messageLength = 0;
    uint16_t tlv_begin = 0; ///< header_len + body_length
    uint16_t tlv_count = 0;
    uint16_t ticket_offset = 0; ///< 0: none
    bool has_auth = false;
    auth_tlv auth;
};

/// A parsed message: the scan plus the decoded common header.
struct message_view : message_scan {
    const uint8_t* data = nullptr;
    header hdr;
};

/// Decodes the AUTHENTICATION TLV `t` (16.14.3) into `a`.
inline error decode_auth(const tlv_ref& t, auth_tlv& a) noexcept {
    if (t.length < auth_fixed_len) {
        return error::bad_auth_tlv;
    }
    const uint8_t* v = t.value;
    a.offset = t.offset;
    a.length = t.length;
    a.spp = v[0];
    a.secParamIndicator = v[1];
    a.keyID = (uint32_t{v[2]} << 24) | (uint32_t{v[3]} << 16) | (uint32_t{v[4]} << 8) | v[5];
    if ((a.secParamIndicator & ~sec_param_seqno_present) != 0) {
        return error::unsupported_sec_param;
    }
    size_t fixed = auth_fixed_len;
    a.has_seqno = (a.secParamIndicator & sec_param_seqno_present) != 0;
    a.sequenceNo = 0;
    if (a.has_seqno) {
        if (t.length < auth_fixed_len + auth_seqno_len) {
            return error::bad_auth_tlv;
        }
        uint64_t sn = 0;
        for (size_t i = 0; i < auth_seqno_len; ++i) {
            sn = (sn << 8) | v[auth_fixed_len + i];
        }
        a.sequenceNo = sn;
        fixed += auth_seqno_len;
    }
    // An ICV of zero octets would authenticate nothing.
    if (t.length <= fixed) {
        return error::bad_auth_tlv;
    }
    a.icv_offset = static_cast<uint16_t>(t.offset + tlv_header_len + fixed);
    a.icv_len = static_cast<uint16_t>(t.length - fixed);
    return error::none;
}

/// Checks a message of up to `avail` octets (the rest of the frame or UDP
/// payload; octets after messageLength are padding and ignored): the
/// version, the type, messageLength against the type and against `avail`,
/// every TLV's bounds, that the AUTHENTICATION TLV is last and well formed.
/// Reads only the octets it checks. Inline: it is the per-frame work of
/// sign and verify. On error only the fields scanned so far are meaningful;
/// `auth` only when `has_auth` is set.
inline error scan_message(const uint8_t* data, size_t avail, message_scan& out, const wire_options& opt = {}) noexcept {
    out.tlv_begin = 0;
    out.tlv_count = 0;
    out.ticket_offset = 0;
    out.has_auth = false;
    if (avail < header_len) {
        return error::truncated;
    }
    if ((data[1] & 0x0F) != ptp_version) {
        return error::unknown_version;
    }
    const size_t body_len = body_length(static_cast<message_type>(data[0] & 0x0F));
    if (body_len == 0) {
        return error::unknown_message_type;
    }
    const auto ml = static_cast<uint16_t>((data[2] << 8) | data[3]);
    out.messageLength = ml;
    const size_t min_len = header_len + body_len;
    if (ml < min_len) {
        return error::length_mismatch;
    }
    if (ml > avail) {
        return error::truncated;
    }
    out.tlv_begin = static_cast<uint16_t>(min_len);
    tlv_iterator it(data, out.tlv_begin, ml);
    for (;;) {
        tlv_ref t;
        bool done = false;
        if (const error e = it.next(t, done); e != error::none) {
            return e;
        }
        if (done) {
            return error::none;
        }
        if (out.has_auth) {
            // 16.14.1.1 and Figure 48: the AUTHENTICATION TLV is the last one.
            return error::tlv_after_auth;
        }
        ++out.tlv_count;
        if (t.type == tlv_authentication) {
            if (const error e = decode_auth(t, out.auth); e != error::none) {
                return e;
            }
            out.has_auth = true;
        } else if (t.type == opt.ticket_tlv_type && out.ticket_offset == 0) {
            out.ticket_offset = t.offset;
        }
    }
}

/// Whether a message that scan_message() accepted (as `sc`) carries a TLV of
/// type `type`: for what the scan does not note, such as the
/// REQUEST_UNICAST_TRANSMISSION TLV of a unicast request (16.1.4.1). Walks
/// the TLVs again; reads only within messageLength.
inline bool has_tlv(const uint8_t* data, const message_scan& sc, uint16_t type) noexcept {
    tlv_iterator it(data, sc.tlv_begin, sc.messageLength);
    for (;;) {
        tlv_ref t;
        bool done = false;
        if (it.next(t, done) != error::none || done) {
            return false;
        }
        if (t.type == type) {
            return true;
        }
    }
}

/// scan_message() plus the common header decoded into `out.hdr`, for code
/// that shows or edits header fields.
error parse_message(const uint8_t* data, size_t avail, message_view& out, const wire_options& opt = {}) noexcept;

/// Builds a message from a header, a body and TLVs given as complete octet
/// strings (tlvType, lengthField, value). Sets messageLength; returns the
/// octets written, or 0 if `cap` is too small or the message too long.
size_t build_message(header h, const body& b, std::span<const std::span<const uint8_t>> tlvs, uint8_t* out,
                     size_t cap) noexcept;

} // namespace ptpsec::ptp
