#pragma once

// Why a frame or message was refused. One value per cause, so that the fast
// path can count each on its own and the tools can say what was wrong.

#include <cstdint>
#include <string_view>

namespace ptpsec::ptp {

enum class error : uint8_t {
    none,
    // Framing (Ethernet, VLAN, IP, UDP).
    not_ptp,         ///< not PTP at all: forwarded untouched, never an error to count as bad
    truncated_frame, ///< a link, IP or UDP header runs past the frame
    too_many_vlans,  ///< more than two VLAN tags
    bad_ip_header,   ///< IPv4 IHL/version/total length, IPv6 payload length inconsistent
    ip_fragment,     ///< PTP in an IP fragment (cannot be checked or edited)
    bad_udp_length,  ///< UDP length shorter than its header or longer than the IP payload
    // PTP message (IEEE 1588-2019 clause 13).
    truncated,             ///< fewer octets than the common header or than messageLength says
    unknown_version,       ///< versionPTP is not 2
    unknown_message_type,  ///< a reserved messageType
    length_mismatch,       ///< messageLength shorter than the header plus the body of its type
    tlv_overrun,           ///< a TLV header or value runs past messageLength
    tlv_after_auth,        ///< a TLV follows the AUTHENTICATION TLV (16.14.1: it must be last)
    bad_auth_tlv,          ///< AUTHENTICATION TLV too short for its fields
    unsupported_sec_param, ///< secParamIndicator asks for disclosedKey or RES
    // Editing.
    already_signed,   ///< sign asked for a message that carries an AUTHENTICATION TLV
    not_signed,       ///< strip or verify asked for a message without one
    no_room,          ///< the buffer cannot hold the longer frame
    message_too_long, ///< the result would not fit messageLength or an IP length
};

inline constexpr size_t error_count = static_cast<size_t>(error::message_too_long) + 1;

/// A short, stable name ("tlv_overrun"), used as a counter name.
std::string_view error_name(error e) noexcept;

/// A sentence for people ("a TLV runs past messageLength").
std::string_view error_text(error e) noexcept;

} // namespace ptpsec::ptp
