#pragma once

// Framing of PTP on Ethernet (IEEE 1588-2019 Annex E, ethertype 0x88F7) and
// on UDP over IPv4 (Annex C) and IPv6 (Annex D), ports 319 (event) and 320
// (general), behind up to two VLAN tags. Editing an AUTHENTICATION TLV keeps
// every length and checksum on the way consistent.

#include <dataplane/ptp/message.h>

#include <array>
#include <cstdint>
#include <span>

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

/// classify_frame() for every frame: VLAN tags, IPv4 options, IPv6
/// extension headers, and every error.
error classify_frame_general(const uint8_t* frame, size_t len, frame_info& out) noexcept;

/// Finds the PTP message in a frame. Returns error::not_ptp for anything
/// that is not PTP (other ethertypes, other UDP ports, other IP protocols),
/// a framing error for a frame that claims to be PTP (or IP) but is broken,
/// error::none otherwise. Reads only within [frame, frame + len).
///
/// Inline for the frames PTP sends most, untagged UDP over IPv4 without
/// options, whole, to port 319 or 320, and L2: the fast path decides those
/// with a handful of compares, anything else (and every error) goes to
/// classify_frame_general(), which gives the same answer for these too.
inline error classify_frame(const uint8_t* frame, size_t len, frame_info& out) noexcept {
    constexpr size_t ip_at = ethernet_header_len;
    constexpr size_t udp_at = ip_at + 20;
    constexpr size_t ptp_at = udp_at + udp_header_len;
    if (len >= ptp_at && len <= 0xFFFF) {
        const auto ethertype = static_cast<uint16_t>((frame[12] << 8) | frame[13]);
        if (ethertype == ethertype_ipv4) {
            const uint8_t* ip = frame + ip_at;
            const auto total = static_cast<size_t>((ip[2] << 8) | ip[3]);
            const uint8_t* udp = frame + udp_at;
            const auto dport = static_cast<uint16_t>((udp[2] << 8) | udp[3]);
            const auto ulen = static_cast<size_t>((udp[4] << 8) | udp[5]);
            // Version 4, IHL 5; no fragment bits but DF; UDP; the datagram
            // inside the packet, the packet inside the frame.
            if (ip[0] == 0x45 && (ip[6] & 0xBF) == 0 && ip[7] == 0 && ip[9] == 17 &&
                (dport == udp_port_event || dport == udp_port_general) && total <= len - ip_at &&
                ulen >= udp_header_len && ulen <= total - 20 && total >= 20 + udp_header_len) {
                out.tp = transport::udp_ipv4;
                out.vlan_count = 0;
                out.l3_offset = static_cast<uint16_t>(ip_at);
                out.l4_offset = static_cast<uint16_t>(udp_at);
                out.ptp_offset = static_cast<uint16_t>(ptp_at);
                out.ptp_avail = static_cast<uint16_t>(ulen - udp_header_len);
                return error::none;
            }
        } else if (ethertype == ethertype_ptp) {
            out.tp = transport::l2;
            out.vlan_count = 0;
            out.l3_offset = 0;
            out.l4_offset = 0;
            out.ptp_offset = static_cast<uint16_t>(ethernet_header_len);
            out.ptp_avail = static_cast<uint16_t>(len - ethernet_header_len);
            return error::none;
        }
    }
    return classify_frame_general(frame, len, out);
}

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

/// How the UDP checksum of a frame is completed once the ICV is in place.
enum class checksum_plan : uint8_t {
    none,        ///< L2, or an IPv4 UDP checksum of zero ("none", stays zero)
    incremental, ///< RFC 1624: the stored checksum adjusted for what changed
    full,        ///< summed again: padding was dropped, or the message length
                 ///< is odd, or an IPv6 UDP checksum of zero (forbidden) is replaced
};

/// An AUTHENTICATION TLV appended with room for its ICV; finish_auth_tlv()
/// completes the UDP checksum once the ICV is written.
struct pending_auth {
    uint16_t icv_offset = 0; ///< of the ICV within the message
    uint8_t icv_len = 0;
    checksum_plan plan = checksum_plan::none;
    /// incremental: the ones' complement sum of the new UDP checksum, all
    /// but the ICV (memory order, not folded)
    uint32_t udp_sum = 0;
};

/// What an AUTHENTICATION TLV holds that is the same for every frame signed
/// with one key: made once per burst, so that appending the TLV to a frame
/// writes prepared octets and adds a prepared sum.
struct auth_tlv_template {
    /// tlvType, lengthField, spp, secParamIndicator, keyID as they go on
    /// the wire.
    std::array<uint8_t, tlv_header_len + auth_fixed_len> head{};
    uint16_t add = 0;    ///< octets the TLV adds to a message
    uint16_t icv_at = 0; ///< of the ICV within the TLV
    uint8_t icv_len = 0;
    bool with_seqno = false;
    /// Ones' complement sum (16-bit big-endian words as numbers, not
    /// folded) of `head`, plus 3 x `add`: what appending adds to a UDP
    /// checksum besides sequenceNo and the ICV, where the message ends the
    /// datagram (the UDP length counts twice, in the pseudo header and the
    /// UDP header, and messageLength once, each grown by `add`).
    uint32_t udp_sum = 0;
};

/// The template for `p` (its sequenceNo is not part of it).
auth_tlv_template make_auth_tlv_template(const auth_params& p) noexcept;

/// Appends an AUTHENTICATION TLV after the last TLV of a
/// message of `message_length` octets (as scan_message() found it), drops
/// any padding after it, and fixes messageLength, the UDP and IP lengths and
/// the IPv4 header checksum; `fi.ptp_avail` becomes the new messageLength.
/// The frame must already be known to hold no AUTHENTICATION TLV. The ICV
/// octets are left for the MAC engine to write; once it has,
/// finish_auth_tlv() completes the UDP checksum. `sequence_no` goes into
/// the TLV when the template says it has one.
error append_auth_tlv(frame_buf& f, frame_info& fi, uint16_t message_length, const auth_tlv_template& t,
                      uint64_t sequence_no, pending_auth& out) noexcept;

/// The same with the parameters given as such (the template made here).
error append_auth_tlv(frame_buf& f, frame_info& fi, uint16_t message_length, const auth_params& p,
                      pending_auth& out) noexcept;

/// Appends a TLV (tlvType `type`, lengthField the size of `value`) after the
/// last TLV of a message of `message_length` octets (as scan_message() found
/// it), drops any padding after it, and fixes messageLength, the UDP and IP
/// lengths and both checksums; `fi.ptp_avail` becomes the new messageLength.
/// A TLV the AUTHENTICATION TLV is to cover (the TICKET TLV, seeds/001 §6)
/// is appended first, then append_auth_tlv() with the new length. The value
/// should have even length, as every PTP TLV; an odd one is written as
/// given, with the checksums summed again. Where the frame allows, the UDP
/// checksum is updated for what changed (RFC 1624), so one that was wrong on
/// arrival stays wrong. error::no_room when the buffer cannot hold the
/// longer frame, message_too_long past 65535 octets; the frame is unchanged
/// then. Copies `value`; allocates nothing.
error append_tlv(frame_buf& f, frame_info& fi, uint16_t message_length, uint16_t type,
                 std::span<const uint8_t> value) noexcept;

/// Completes the UDP checksum after append_auth_tlv() once the ICV is in
/// place. A checksum that was wrong on arrival stays wrong (incremental
/// plan): signing never makes a corrupted frame look intact.
void finish_auth_tlv(uint8_t* frame, const frame_info& fi, const pending_auth& a) noexcept;

/// append_auth_tlv() for a parsed message, with a zero ICV: `mv` describes
/// the new message afterwards (has_auth set, auth.icv_offset where the ICV
/// goes). The UDP checksum is left for fix_checksums() after the ICV is in
/// place.
error append_auth_tlv(frame_buf& f, frame_info& fi, message_view& mv, const auth_params& p) noexcept;

/// Removes the AUTHENTICATION TLV (and any padding after the message), fixes
/// messageLength, the UDP and IP lengths and the checksums. Other TLVs, a
/// TICKET TLV included, stay. `fi` and `mv` are updated.
error strip_auth_tlv(frame_buf& f, frame_info& fi, message_view& mv) noexcept;

/// strip_auth_tlv() for a message scanned before, whose AUTHENTICATION TLV
/// (the last TLV) starts at `auth_offset` within the message.
error strip_auth_tlv(frame_buf& f, frame_info& fi, uint16_t auth_offset) noexcept;

/// Recomputes the IPv4 header checksum and the UDP checksum: always for
/// IPv6, for IPv4 only if `udp4_checksum_in_use` (a zero IPv4 UDP checksum
/// means "none" and stays zero). Nothing to do for L2.
void fix_checksums(uint8_t* frame, const frame_info& fi, bool udp4_checksum_in_use) noexcept;

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
