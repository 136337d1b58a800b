#pragma once

// Framing of PTP on Ethernet (IEEE 1588-2019 Annex E, ethertype 0x88F7) and
// on UDP over IPv4 (Annex C) and IPv6 (Annex D), ports 319 (event) and 320
// (general), behind up to two VLAN tags. Editing an AUTHENTICATION TLV keeps
// every length and checksum on the way consistent.

#include <dataplane/ptp/message.h>

#include <cstdint>

namespace ptpsec::ptp {

enum class transport : uint8_t { l2, udp_ipv4, udp_ipv6 };

std::string_view transport_name(transport t) noexcept;

inline constexpr uint16_t ethertype_ptp = 0x88F7;
inline constexpr uint16_t ethertype_ipv4 = 0x0800;
inline constexpr uint16_t ethertype_ipv6 = 0x86DD;
inline constexpr uint16_t ethertype_vlan = 0x8100;
inline constexpr uint16_t ethertype_qinq = 0x88A8;
inline constexpr uint16_t udp_port_event = 319;
inline constexpr uint16_t udp_port_general = 320;
inline constexpr size_t ethernet_header_len = 14;
inline constexpr size_t vlan_tag_len = 4;
inline constexpr size_t max_vlan_tags = 2;
inline constexpr size_t udp_header_len = 8;
inline constexpr size_t ipv6_header_len = 40;

/// Where the layers of a PTP frame start.
struct frame_info {
    transport tp = transport::l2;
    uint8_t vlan_count = 0;
    uint16_t l3_offset = 0;  ///< IP header (UDP transports)
    uint16_t l4_offset = 0;  ///< UDP header (UDP transports)
    uint16_t ptp_offset = 0; ///< first octet of the PTP message
    uint16_t ptp_avail = 0;  ///< octets from ptp_offset to the end of the UDP payload or frame
};

/// Finds the PTP message in a frame. Returns error::not_ptp for anything
/// that is not PTP (other ethertypes, other UDP ports, other IP protocols),
/// a framing error for a frame that claims to be PTP (or IP) but is broken,
/// error::none otherwise. Reads only within [frame, frame + len).
error classify_frame(const uint8_t* frame, size_t len, frame_info& out) noexcept;

/// A frame in a buffer that may grow up to `cap` octets.
struct frame_buf {
    uint8_t* data = nullptr;
    uint32_t len = 0;
    uint32_t cap = 0;
};

/// What to put into a new AUTHENTICATION TLV.
struct auth_params {
    uint8_t spp = 0;
    uint32_t keyID = 0;
    uint8_t icv_len = 16;
    bool with_seqno = false;
    uint64_t sequenceNo = 0;
};

/// Octets an AUTHENTICATION TLV with these parameters adds to a message.
inline size_t auth_tlv_size(const auth_params& p) noexcept {
    return tlv_header_len + auth_fixed_len + (p.with_seqno ? auth_seqno_len : 0) + p.icv_len;
}

/// Appends an AUTHENTICATION TLV after the last TLV of the message with a
/// zero ICV, drops any padding after the old messageLength, and fixes
/// messageLength and the UDP and IP lengths. Checksums are left for
/// fix_checksums(), after the ICV is in place. On success `fi` and `mv`
/// describe the new frame and message (has_auth set, auth.icv_offset where
/// the ICV goes).

error append_auth_tlv(frame_buf& f, frame_info& fi, message_view& mv, const auth_params& p) noexcept;

/// Removes the AUTHENTICATION TLV (and any padding after the message), fixes
/// messageLength, the UDP and IP lengths and the checksums. Other TLVs, a
/// TICKET TLV included, stay. `fi` and `mv` are updated.
error strip_auth_tlv(frame_buf& f, frame_info& fi, message_view& mv) noexcept;

/// Recomputes the IPv4 header checksum and the UDP checksum: always for
/// IPv6, for IPv4 only if `udp4_checksum_in_use` (a zero IPv4 UDP checksum
/// means "none" and stays zero). Nothing to do for L2.
void fix_checksums(uint8_t* frame, const frame_info& fi, bool udp4_checksum_in_use) noexcept;

/// The same result as fix_checksums() after append_auth_tlv() and the ICV,
/// computed incrementally (RFC 1624): the stored checksums are adjusted for
/// the new lengths and the appended octets instead of summing the whole
/// datagram again. Only valid when append_auth_tlv() dropped no padding (the
/// old UDP payload ended at `old_message_length`); `fi` describes the new
/// frame. A checksum that was wrong on arrival stays wrong: signing never
/// makes a corrupted frame look intact.
void update_checksums_after_append(uint8_t* frame, const frame_info& fi, uint16_t old_message_length,
                                   bool udp4_checksum_in_use) noexcept;

/// True if the frame's IPv4 UDP checksum field is non-zero (always true for
/// IPv6, where it is mandatory, and for L2 irrelevant).
bool udp_checksum_in_use(const uint8_t* frame, const frame_info& fi) noexcept;

/// True if the UDP datagram ends with the message (no octets after
/// messageLength) and the IP payload ends with the UDP datagram: the frame
/// holds nothing an edit would drop, so checksums can be updated
/// incrementally. Always true for L2 (checksums are not involved).
inline bool ends_with_message(const uint8_t* frame, const frame_info& fi, uint16_t message_length) noexcept {
    if (fi.tp == transport::l2) {
        return true;
    }
    if (fi.ptp_avail != message_length) {
        return false;
    }
    const uint8_t* ip = frame + fi.l3_offset;
    const size_t udp_end = size_t{fi.ptp_offset} + fi.ptp_avail;
    const size_t ip_end = fi.tp == transport::udp_ipv4
                              ? size_t{fi.l3_offset} + static_cast<size_t>((ip[2] << 8) | ip[3])
                              : size_t{fi.l3_offset} + ipv6_header_len + static_cast<size_t>((ip[4] << 8) | ip[5]);
    return ip_end == udp_end;
}

/// The UDP checksum field as it is in the frame.
inline uint16_t load_udp_checksum(const uint8_t* frame, const frame_info& fi) noexcept {
    return static_cast<uint16_t>((frame[fi.l4_offset + 6] << 8) | frame[fi.l4_offset + 7]);
}

/// The UDP checksum the frame should carry (for checks and tests).
uint16_t compute_udp_checksum(const uint8_t* frame, const frame_info& fi) noexcept;

} // namespace ptpsec::ptp
