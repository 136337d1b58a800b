#include <dataplane/ptp/frame.h>

#include <drivers/base/bytes.h>

#include <rte_byteorder.h>
#include <rte_ip.h>

#include <algorithm>
#include <cstring>

namespace ptpsec::ptp {

namespace {

constexpr uint8_t ip_proto_udp = 17;
constexpr uint8_t ip6_hop_by_hop = 0;
constexpr uint8_t ip6_routing = 43;
constexpr uint8_t ip6_fragment = 44;
constexpr uint8_t ip6_destination = 60;
constexpr size_t ipv4_min_header = 20;
constexpr size_t max_ip6_extensions = 8;
constexpr uint16_t ipv4_more_fragments = 0x2000;
constexpr uint16_t ipv4_offset_mask = 0x1FFF;

bool is_ptp_port(uint16_t port) noexcept {
    return port == udp_port_event || port == udp_port_general;
}

/// The UDP part of classification, shared by IPv4 and IPv6: `udp` is the
/// offset of the UDP header, `end` where the IP payload ends.
error classify_udp(const uint8_t* frame, size_t udp, size_t end, bool fragment, frame_info& out) noexcept {
    if (end - udp < udp_header_len) {
        // Too short for the ports: we cannot tell whether it is PTP.
        return error::not_ptp;
    }
    if (!is_ptp_port(load_be16(frame + udp + 2))) {
        return error::not_ptp;
    }
    if (fragment) {
        return error::ip_fragment;
    }
    const uint16_t ulen = load_be16(frame + udp + 4);
    if (ulen < udp_header_len || ulen > end - udp) {
        return error::bad_udp_length;
    }
    out.l4_offset = static_cast<uint16_t>(udp);
    out.ptp_offset = static_cast<uint16_t>(udp + udp_header_len);
    out.ptp_avail = static_cast<uint16_t>(ulen - udp_header_len);
    return error::none;
}

error classify_ipv4(const uint8_t* frame, size_t len, size_t off, frame_info& out) noexcept {
    if (len - off < ipv4_min_header) {
        return error::truncated_frame;
    }
    const uint8_t* ip = frame + off;
    const size_t ihl = size_t{ip[0] & 0x0Fu} * 4;
    if ((ip[0] >> 4) != 4 || ihl < ipv4_min_header) {
        return error::bad_ip_header;
    }
    const size_t total = load_be16(ip + 2);
    if (total < ihl) {
        return error::bad_ip_header;
    }
    if (total > len - off) {
        return error::truncated_frame;
    }
    if (ip[9] != ip_proto_udp) {
        return error::not_ptp;
    }
    const uint16_t frag = load_be16(ip + 6);
    if ((frag & ipv4_offset_mask) != 0) {
        // A later fragment: no UDP header to look at.
        return error::not_ptp;
    }
    out.tp = transport::udp_ipv4;
    out.l3_offset = static_cast<uint16_t>(off);
    return classify_udp(frame, off + ihl, off + total, (frag & ipv4_more_fragments) != 0, out);
}

error classify_ipv6(const uint8_t* frame, size_t len, size_t off, frame_info& out) noexcept {
    if (len - off < ipv6_header_len) {
        return error::truncated_frame;
    }
    const uint8_t* ip = frame + off;
    if ((ip[0] >> 4) != 6) {
        return error::bad_ip_header;
    }
    const size_t end = off + ipv6_header_len + load_be16(ip + 4);
    if (end > len) {
        return error::truncated_frame;
    }
    uint8_t next = ip[6];
    size_t pos = off + ipv6_header_len;
    bool fragment = false;
    // RFC 8200 §4: walk the extension headers that may precede UDP.
    for (size_t n = 0; next != ip_proto_udp; ++n) {
        if (n == max_ip6_extensions) {
            return error::bad_ip_header;
        }
        if (next == ip6_hop_by_hop || next == ip6_routing || next == ip6_destination) {
            if (end - pos < 8) {
                return error::bad_ip_header;
            }
            const size_t ext_len = (size_t{frame[pos + 1]} + 1) * 8;
            if (end - pos < ext_len) {
                return error::bad_ip_header;
            }
            next = frame[pos];
            pos += ext_len;
        } else if (next == ip6_fragment) {
            if (end - pos < 8) {
                return error::bad_ip_header;
            }
            const uint16_t field = load_be16(frame + pos + 2);
            if ((field & 0xFFF8) != 0) {
                return error::not_ptp; // a later fragment
            }
            // RFC 6946: an atomic fragment (offset 0, M clear) is a whole
            // packet and is processed as one.
            fragment = (field & 0x0001) != 0;
            next = frame[pos];
            pos += 8;
        } else {
            return error::not_ptp;
        }
    }
    out.tp = transport::udp_ipv6;
    out.l3_offset = static_cast<uint16_t>(off);
    return classify_udp(frame, pos, end, fragment, out);
}

/// Sets messageLength and the UDP and IP lengths for a message of `ml` octets.
error set_lengths(uint8_t* frame, frame_info& fi, size_t ml) noexcept {
    if (ml > max_message_len) {
        return error::message_too_long;
    }
    if (fi.tp != transport::l2) {
        const size_t udp_len = udp_header_len + ml;
        const size_t ip_len =
            size_t{fi.l4_offset} - fi.l3_offset + udp_len - (fi.tp == transport::udp_ipv6 ? ipv6_header_len : 0);
        if (udp_len > 0xFFFF || ip_len > 0xFFFF) {
            return error::message_too_long;
        }
        store_be16(frame + fi.l4_offset + 4, static_cast<uint16_t>(udp_len));
        store_be16(frame + fi.l3_offset + (fi.tp == transport::udp_ipv4 ? 2 : 4), static_cast<uint16_t>(ip_len));
    }
    store_be16(frame + fi.ptp_offset + 2, static_cast<uint16_t>(ml));
    fi.ptp_avail = static_cast<uint16_t>(ml);
    return error::none;
}

uint16_t fold(uint32_t sum) noexcept {
    sum = (sum & 0xFFFF) + (sum >> 16);
    sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

/// The UDP checksum in memory order, computed with the field taken as zero.
uint16_t udp_checksum_raw(const uint8_t* frame, const frame_info& fi) noexcept {
    const uint8_t* ip = frame + fi.l3_offset;
    const uint8_t* udp = frame + fi.l4_offset;
    const uint16_t udp_len = load_be16(udp + 4);
    uint32_t sum = 0;
    if (fi.tp == transport::udp_ipv4) {
        sum += rte_raw_cksum(ip + 12, 8); // source and destination address
    } else {
        sum += rte_raw_cksum(ip + 8, 32);
    }
    sum += rte_cpu_to_be_16(ip_proto_udp);
    sum += rte_cpu_to_be_16(udp_len);
    sum += rte_raw_cksum(udp, udp_len);
    uint16_t field = 0;
    std::memcpy(&field, udp + 6, sizeof(field));
    // Take the stored checksum back out: ones' complement subtraction.
    sum += static_cast<uint16_t>(~field);
    uint16_t ck = static_cast<uint16_t>(~fold(sum));
    if (ck == 0) {
        ck = 0xFFFF; // RFC 768: a computed zero is sent as all ones
    }
    return ck;
}

} // namespace

std::string_view transport_name(transport t) noexcept {
    switch (t) {
    case transport::l2:
        return "L2";
    case transport::udp_ipv4:
        return "UDPv4";
    case transport::udp_ipv6:
        return "UDPv6";
    }
    return "?";
}

error classify_frame(const uint8_t* frame, size_t len, frame_info& out) noexcept {
    out = frame_info{};
    if (len < ethernet_header_len) {
        return error::truncated_frame;
    }
    len = std::min<size_t>(len, 0xFFFF);
    size_t off = 12;
    uint16_t ethertype = load_be16(frame + off);
    off += 2;
    while (ethertype == ethertype_vlan || ethertype == ethertype_qinq) {
        if (out.vlan_count == max_vlan_tags) {
            return error::too_many_vlans;
        }
        if (len - off < vlan_tag_len) {
            return error::truncated_frame;
        }
        ethertype = load_be16(frame + off + 2);
        off += vlan_tag_len;
        ++out.vlan_count;
    }
    switch (ethertype) {
    case ethertype_ptp:
        out.tp = transport::l2;
        out.ptp_offset = static_cast<uint16_t>(off);
        out.ptp_avail = static_cast<uint16_t>(len - off);
        return error::none;
    case ethertype_ipv4:
        return classify_ipv4(frame, len, off, out);
    case ethertype_ipv6:
        return classify_ipv6(frame, len, off, out);
    default:
        return error::not_ptp;
    }
}

bool udp_checksum_in_use(const uint8_t* frame, const frame_info& fi) noexcept {
    if (fi.tp != transport::udp_ipv4) {
        return true;
    }
    return load_be16(frame + fi.l4_offset + 6) != 0;
}

uint16_t compute_udp_checksum(const uint8_t* frame, const frame_info& fi) noexcept {
    if (fi.tp == transport::l2) {
        return 0;
    }
    return rte_be_to_cpu_16(udp_checksum_raw(frame, fi));
}

void fix_checksums(uint8_t* frame, const frame_info& fi, bool udp4_checksum_in_use) noexcept {
    if (fi.tp == transport::l2) {
        return;
    }
    if (fi.tp == transport::udp_ipv4) {
        uint8_t* ip = frame + fi.l3_offset;
        ip[10] = 0;
        ip[11] = 0;
        const size_t ihl = size_t{ip[0] & 0x0Fu} * 4;
        const uint16_t ck = static_cast<uint16_t>(~rte_raw_cksum(ip, ihl));
        std::memcpy(ip + 10, &ck, sizeof(ck));
        if (!udp4_checksum_in_use) {
            return;
        }
    }
    const uint16_t ck = udp_checksum_raw(frame, fi);
    std::memcpy(frame + fi.l4_offset + 6, &ck, sizeof(ck));
}

namespace {

/// Ones' complement addition of a 16-bit word to a running sum.
uint32_t add_word(uint32_t sum, uint16_t w) noexcept {
    return sum + w;
}

/// Replaces the 16-bit field value `old_v` by `new_v` in a sum (RFC 1624
/// eqn. 3: ~m + m'), both given in host order of the big-endian field.
uint32_t replace_word(uint32_t sum, uint16_t old_v, uint16_t new_v) noexcept {
    return add_word(add_word(sum, static_cast<uint16_t>(~rte_cpu_to_be_16(old_v))), rte_cpu_to_be_16(new_v));
}

uint16_t stored(const uint8_t* p) noexcept {
    uint16_t v = 0;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

void store(uint8_t* p, uint16_t v) noexcept {
    std::memcpy(p, &v, sizeof(v));
}

} // namespace

void update_checksums_after_append(uint8_t* frame, const frame_info& fi, uint16_t old_message_length,
                                   bool udp4_checksum_in_use) noexcept {
    if (fi.tp == transport::l2) {
        return;
    }
    const uint16_t new_ml = load_be16(frame + fi.ptp_offset + 2);
    const uint16_t added = static_cast<uint16_t>(new_ml - old_message_length);
    if (fi.tp == transport::udp_ipv4) {
        uint8_t* ip = frame + fi.l3_offset;
        const uint16_t total = load_be16(ip + 2);
        uint32_t sum = static_cast<uint16_t>(~stored(ip + 10));
        sum = replace_word(sum, static_cast<uint16_t>(total - added), total);
        store(ip + 10, static_cast<uint16_t>(~fold(sum)));
        if (!udp4_checksum_in_use) {
            return;
        }
    }
    uint8_t* udp = frame + fi.l4_offset;
    const uint16_t ulen = load_be16(udp + 4);
    const uint16_t old_ulen = static_cast<uint16_t>(ulen - added);
    uint32_t sum = static_cast<uint16_t>(~stored(udp + 6));
    sum = replace_word(sum, old_ulen, ulen); // the pseudo header's UDP length
    sum = replace_word(sum, old_ulen, ulen); // the UDP header's
    sum = replace_word(sum, old_message_length, new_ml);
    // The appended octets start at UDP offset old_ulen; from an odd offset
    // their words are the byte-swapped sum (RFC 1071 §2).
    uint16_t appended = rte_raw_cksum(udp + old_ulen, added);
    if ((old_ulen & 1U) != 0) {
        appended = rte_bswap16(appended);
    }
    sum = add_word(sum, appended);
    uint16_t ck = static_cast<uint16_t>(~fold(sum));
    if (ck == 0) {
        ck = 0xFFFF; // RFC 768
    }
    store(udp + 6, ck);
}

error append_auth_tlv(frame_buf& f, frame_info& fi, message_view& mv, const auth_params& p) noexcept {
    if (mv.has_auth) {
        return error::already_signed;
    }
    const size_t old_ml = mv.hdr.messageLength;
    const size_t add = auth_tlv_size(p);
    const size_t new_ml = old_ml + add;
    const size_t new_len = size_t{fi.ptp_offset} + new_ml;
    if (new_ml > max_message_len) {
        return error::message_too_long;
    }
    if (new_len > f.cap) {
        return error::no_room;
    }
    uint8_t* msg = f.data + fi.ptp_offset;
    frame_info nfi = fi;
    if (const error e = set_lengths(f.data, nfi, new_ml); e != error::none) {
        return e;
    }
    uint8_t* t = msg + old_ml;
    store_be16(t, tlv_authentication);
    store_be16(t + 2, static_cast<uint16_t>(add - tlv_header_len));
    t[4] = p.spp;
    t[5] = p.with_seqno ? sec_param_seqno_present : 0;
    store_be32(t + 6, p.keyID);
    size_t icv_at = tlv_header_len + auth_fixed_len;
    if (p.with_seqno) {
        store_be64(t + icv_at, p.sequenceNo);
        icv_at += auth_seqno_len;
    }
    std::memset(t + icv_at, 0, p.icv_len);
    f.len = static_cast<uint32_t>(new_len);
    fi = nfi;

    mv.hdr.messageLength = static_cast<uint16_t>(new_ml);
    mv.has_auth = true;
    ++mv.tlv_count;
    mv.auth = auth_tlv{};
    mv.auth.offset = static_cast<uint16_t>(old_ml);
    mv.auth.length = static_cast<uint16_t>(add - tlv_header_len);
    mv.auth.spp = p.spp;
    mv.auth.secParamIndicator = p.with_seqno ? sec_param_seqno_present : 0;
    mv.auth.keyID = p.keyID;
    mv.auth.has_seqno = p.with_seqno;
    mv.auth.sequenceNo = p.with_seqno ? p.sequenceNo : 0;
    mv.auth.icv_offset = static_cast<uint16_t>(old_ml + icv_at);
    mv.auth.icv_len = p.icv_len;
    return error::none;
}

error strip_auth_tlv(frame_buf& f, frame_info& fi, message_view& mv) noexcept {
    if (!mv.has_auth) {
        return error::not_signed;
    }
    const bool udp_ck = udp_checksum_in_use(f.data, fi);
    const size_t new_ml = mv.auth.offset; // the AUTHENTICATION TLV is last
    if (const error e = set_lengths(f.data, fi, new_ml); e != error::none) {
        return e;
    }
    f.len = static_cast<uint32_t>(size_t{fi.ptp_offset} + new_ml);
    fix_checksums(f.data, fi, udp_ck);
    mv.hdr.messageLength = static_cast<uint16_t>(new_ml);
    mv.has_auth = false;
    mv.auth = auth_tlv{};
    --mv.tlv_count;
    return error::none;
}

} // namespace ptpsec::ptp
