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

error classify_frame_general(const uint8_t* frame, size_t len, frame_info& out) noexcept {
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

uint16_t stored(const uint8_t* p) noexcept {
    uint16_t v = 0;
    std::memcpy(&v, p, sizeof(v));
    return v;
}

void store(uint8_t* p, uint16_t v) noexcept {
    std::memcpy(p, &v, sizeof(v));
}

/// RFC 1624 eqn. 3 (HC' = ~(~HC + ~m + m')): the field at `p` changes to
/// `new_v` (host order); the sum works on words in memory order, which
/// gives the same checksum on either byte order (RFC 1071 §2(B)).
uint32_t replace_field(uint32_t sum, const uint8_t* p, uint16_t new_v) noexcept {
    return sum + static_cast<uint16_t>(~stored(p)) + rte_cpu_to_be_16(new_v);
}

/// A 16-bit value as the word it is in memory (big-endian), for sums.
uint32_t be_word(uint16_t v) noexcept {
    return rte_cpu_to_be_16(v);
}

/// Sum of `words` 16-bit words from an even offset, memory order.
uint32_t sum_words(const uint8_t* p, size_t words) noexcept {
    uint32_t sum = 0;
    for (size_t i = 0; i < words; ++i) {
        sum += stored(p + 2 * i);
    }
    return sum;
}

uint16_t finish_sum(uint32_t sum) noexcept {
    uint16_t ck = static_cast<uint16_t>(~fold(sum));
    if (ck == 0) {
        ck = 0xFFFF; // RFC 768: a computed zero is sent as all ones
    }
    return ck;
}

/// The part of appending a TLV to a message of `message_length` octets
/// (growing to `new_ml`) below the PTP message: checks that the UDP and IP
/// lengths can grow, sets them (dropping any padding after the message) and
/// the IPv4 header checksum (RFC 1624), and picks how the UDP checksum is
/// completed. For the incremental plan `sum` is the ones' complement sum of
/// the new checksum so far: the old one taken out, the lengths and
/// messageLength (which the caller writes) replaced; the caller adds the
/// TLV's words. `odd_tlv` (a TLV of odd length, whose octets would not pair
/// up into the sum's words) asks for the full plan. Nothing to do for L2.
error grow_udp_ip(uint8_t* frame, const frame_info& in, uint16_t message_length, size_t new_ml, bool odd_tlv,
                  checksum_plan& plan, uint32_t& sum) noexcept {
    plan = checksum_plan::none;
    sum = 0;
    if (in.tp == transport::l2) {
        return error::none;
    }
    uint8_t* ip = frame + in.l3_offset;
    uint8_t* udp = frame + in.l4_offset;
    const uint8_t* msg = frame + in.ptp_offset;
    const bool ipv4 = in.tp == transport::udp_ipv4;
    const size_t udp_len = udp_header_len + new_ml;
    const size_t ip_len = size_t{in.l4_offset} - in.l3_offset + udp_len - (ipv4 ? 0 : ipv6_header_len);
    if (udp_len > 0xFFFF || ip_len > 0xFFFF) {
        return error::message_too_long;
    }
    const uint16_t ck = stored(udp + 6);
    if (ipv4 && ck == 0) {
        plan = checksum_plan::none; // RFC 768: no checksum, and it stays so
    } else if (!ends_with_message(frame, in, message_length) || (message_length & 1U) != 0 || odd_tlv || ck == 0) {
        plan = checksum_plan::full;
    } else {
        // The UDP length appears twice in the sum (pseudo header and UDP
        // header); messageLength once; the TLV's octets are the caller's
        // (an ICV's by finish_auth_tlv()).
        plan = checksum_plan::incremental;
        const uint16_t old_udp_len = stored(udp + 4);
        sum = static_cast<uint16_t>(~ck) + 2U * static_cast<uint16_t>(~old_udp_len) +
              2U * be_word(static_cast<uint16_t>(udp_len)) + static_cast<uint16_t>(~stored(msg + 2)) +
              be_word(static_cast<uint16_t>(new_ml));
    }
    uint8_t* ip_len_field = ip + (ipv4 ? 2 : 4);
    if (ipv4) {
        const uint32_t ip_sum =
            replace_field(static_cast<uint16_t>(~stored(ip + 10)), ip_len_field, static_cast<uint16_t>(ip_len));
        store(ip + 10, static_cast<uint16_t>(~fold(ip_sum)));
    }
    store_be16(udp + 4, static_cast<uint16_t>(udp_len));
    store_be16(ip_len_field, static_cast<uint16_t>(ip_len));
    return error::none;
}

} // namespace

error append_tlv(frame_buf& f, frame_info& fi, uint16_t message_length, uint16_t type,
                 std::span<const uint8_t> value) noexcept {
    const frame_info in = fi;
    const size_t new_ml = size_t{message_length} + tlv_header_len + value.size();
    if (new_ml > max_message_len) {
        return error::message_too_long;
    }
    const size_t new_len = size_t{in.ptp_offset} + new_ml;
    if (new_len > f.cap) {
        return error::no_room;
    }
    uint8_t* frame = f.data;
    uint8_t* msg = frame + in.ptp_offset;
    checksum_plan plan = checksum_plan::none;
    uint32_t sum = 0;
    if (const error e = grow_udp_ip(frame, in, message_length, new_ml, (value.size() & 1U) != 0, plan, sum);
        e != error::none) {
        return e;
    }
    store_be16(msg + 2, static_cast<uint16_t>(new_ml));
    uint8_t* t = msg + message_length;
    store_be16(t, type);
    store_be16(t + 2, static_cast<uint16_t>(value.size()));
    if (!value.empty()) {
        std::memcpy(t + tlv_header_len, value.data(), value.size());
    }
    f.len = static_cast<uint32_t>(new_len);
    fi.ptp_avail = static_cast<uint16_t>(new_ml);
    switch (plan) {
    case checksum_plan::none:
        break;
    case checksum_plan::incremental:
        // The TLV starts at an even offset and is of even length: its words
        // are the words of the sum. Summed from the source, not read back.
        sum += be_word(type) + be_word(static_cast<uint16_t>(value.size())) + rte_raw_cksum(value.data(), value.size());
        store(frame + in.l4_offset + 6, finish_sum(sum));
        break;
    case checksum_plan::full:
        // udp_checksum_in_use() is true here: IPv6, or a non-zero IPv4 one.
        fix_checksums(frame, fi, true);
        break;
    }
    return error::none;
}

auth_tlv_template make_auth_tlv_template(const auth_params& p) noexcept {
    auth_tlv_template t;
    t.add = static_cast<uint16_t>(auth_tlv_size(p));
    t.icv_at = static_cast<uint16_t>(tlv_header_len + auth_fixed_len + (p.with_seqno ? auth_seqno_len : 0));
    t.icv_len = p.icv_len;
    t.with_seqno = p.with_seqno;
    const auto value_len = static_cast<uint16_t>(t.add - tlv_header_len);
    const uint8_t spi = p.with_seqno ? sec_param_seqno_present : 0;
    uint8_t* h = t.head.data();
    store_be16(h, tlv_authentication);
    store_be16(h + 2, value_len);
    h[4] = p.spp;
    h[5] = spi;
    store_be32(h + 6, p.keyID);
    uint32_t sum = 3U * t.add;
    for (size_t i = 0; i < t.head.size(); i += 2) {
        sum += load_be16(h + i);
    }
    t.udp_sum = sum;
    return t;
}

namespace {

/// The four 16-bit words of sequenceNo as numbers, summed.
uint32_t seqno_sum(uint64_t q) noexcept {
    return static_cast<uint32_t>((q >> 48) + ((q >> 32) & 0xFFFFU) + ((q >> 16) & 0xFFFFU) + (q & 0xFFFFU));
}

/// append_auth_tlv() for every frame: VLAN tags, IPv4 options, IPv6, L2,
/// padding after the message, odd lengths, and every error.
[[gnu::noinline]] error append_auth_tlv_general(frame_buf& f, frame_info& fi, uint16_t message_length,
                                                const auth_tlv_template& tpl, uint64_t sequence_no,
                                                pending_auth& out) noexcept {
    const frame_info in = fi;
    const size_t new_ml = size_t{message_length} + tpl.add;
    if (new_ml > max_message_len) {
        return error::message_too_long;
    }
    const size_t new_len = size_t{in.ptp_offset} + new_ml;
    if (new_len > f.cap) {
        return error::no_room;
    }
    uint8_t* frame = f.data;
    uint8_t* msg = frame + in.ptp_offset;
    checksum_plan plan = checksum_plan::none;
    uint32_t sum = 0;
    if (const error e = grow_udp_ip(frame, in, message_length, new_ml, false, plan, sum); e != error::none) {
        return e;
    }
    store_be16(msg + 2, static_cast<uint16_t>(new_ml));
    uint8_t* t = msg + message_length;
    std::memcpy(t, tpl.head.data(), tpl.head.size());
    if (tpl.with_seqno) {
        store_be64(t + tpl.head.size(), sequence_no);
    }
    // The ICV octets are the engine's to write: not cleared here (a memset
    // of a run-time length costs more than the rest of the append).
    if (plan == checksum_plan::incremental) {
        // grow_udp_ip() summed in memory order; a folded sum of numbers is
        // that sum byte-swapped (RFC 1071 §2(B)). The lengths are already
        // in `sum`: take the template's 3 x add back out.
        const uint32_t words = tpl.udp_sum - 3U * tpl.add + (tpl.with_seqno ? seqno_sum(sequence_no) : 0U);
        sum += rte_cpu_to_be_16(fold(words));
    }
    out.icv_offset = static_cast<uint16_t>(message_length + tpl.icv_at);
    out.icv_len = tpl.icv_len;
    out.plan = plan;
    out.udp_sum = sum;
    f.len = static_cast<uint32_t>(new_len);
    fi.ptp_avail = static_cast<uint16_t>(new_ml);
    return error::none;
}

} // namespace

error append_auth_tlv(frame_buf& f, frame_info& fi, uint16_t message_length, const auth_tlv_template& tpl,
                      uint64_t sequence_no, pending_auth& out) noexcept {
    // The frame most PTP over UDP is: untagged IPv4 without options (which
    // classify_frame() decides inline), the message ending the datagram and
    // the packet, of even length. Each of the three lengths grows by
    // tpl.add, so the checksums change by that much per length (RFC 1624
    // eqn. 3: ~m + m' is m' - m), whatever the lengths were: nothing but
    // the two checksums is read.
    constexpr size_t ip_at = ethernet_header_len;
    constexpr size_t udp_at = ip_at + 20;
    constexpr size_t ptp_at = udp_at + udp_header_len;
    constexpr size_t ip_udp_headers = ptp_at - ip_at;
    const size_t new_ml = size_t{message_length} + tpl.add;
    uint8_t* frame = f.data;
    if (fi.tp != transport::udp_ipv4 || fi.l3_offset != ip_at || fi.l4_offset != udp_at || fi.ptp_offset != ptp_at ||
        fi.ptp_avail != message_length || (message_length & 1U) != 0 || ptp_at + new_ml > f.cap ||
        ip_udp_headers + new_ml > 0xFFFF || load_be16(frame + ip_at + 2) != ip_udp_headers + message_length) {
        return append_auth_tlv_general(f, fi, message_length, tpl, sequence_no, out);
    }
    uint8_t* ip = frame + ip_at;
    uint8_t* udp = frame + udp_at;
    uint8_t* msg = frame + ptp_at;
    const uint32_t ip_sum = static_cast<uint16_t>(~load_be16(ip + 10)) + uint32_t{tpl.add};
    store_be16(ip + 10, static_cast<uint16_t>(~fold(ip_sum)));
    store_be16(ip + 2, static_cast<uint16_t>(ip_udp_headers + new_ml));
    store_be16(udp + 4, static_cast<uint16_t>(udp_header_len + new_ml));
    store_be16(msg + 2, static_cast<uint16_t>(new_ml));
    uint8_t* t = msg + message_length;
    std::memcpy(t, tpl.head.data(), tpl.head.size());
    const uint16_t ck = load_be16(udp + 6);
    uint32_t sum = static_cast<uint16_t>(~ck) + tpl.udp_sum;
    if (tpl.with_seqno) {
        store_be64(t + tpl.head.size(), sequence_no);
        sum += seqno_sum(sequence_no);
    }
    out.icv_offset = static_cast<uint16_t>(message_length + tpl.icv_at);
    out.icv_len = tpl.icv_len;
    // RFC 768: an IPv4 UDP checksum of zero is "none" and stays so.
    out.plan = ck != 0 ? checksum_plan::incremental : checksum_plan::none;
    out.udp_sum = rte_cpu_to_be_16(fold(sum)); // memory order, as finish_auth_tlv() adds
    f.len = static_cast<uint32_t>(ptp_at + new_ml);
    fi.ptp_avail = static_cast<uint16_t>(new_ml);
    return error::none;
}

error append_auth_tlv(frame_buf& f, frame_info& fi, uint16_t message_length, const auth_params& p,
                      pending_auth& out) noexcept {
    return append_auth_tlv(f, fi, message_length, make_auth_tlv_template(p), p.sequenceNo, out);
}

void finish_auth_tlv(uint8_t* frame, const frame_info& fi, const pending_auth& a) noexcept {
    switch (a.plan) {
    case checksum_plan::none:
        return;
    case checksum_plan::incremental: {
        // The ICV starts at an even offset: the message length was even.
        const uint32_t sum = a.udp_sum + sum_words(frame + fi.ptp_offset + a.icv_offset, a.icv_len / 2U);
        store(frame + fi.l4_offset + 6, finish_sum(sum));
        return;
    }
    case checksum_plan::full:
        // udp_checksum_in_use() is true here: IPv6, or a non-zero IPv4 one.
        fix_checksums(frame, fi, true);
        return;
    }
}

error append_auth_tlv(frame_buf& f, frame_info& fi, message_view& mv, const auth_params& p) noexcept {
    if (mv.has_auth) {
        return error::already_signed;
    }
    const uint16_t old_ml = mv.hdr.messageLength;
    pending_auth pa;
    if (const error e = append_auth_tlv(f, fi, old_ml, p, pa); e != error::none) {
        return e;
    }
    std::memset(f.data + fi.ptp_offset + pa.icv_offset, 0, p.icv_len);
    mv.hdr.messageLength = fi.ptp_avail;
    mv.messageLength = fi.ptp_avail;
    mv.has_auth = true;
    ++mv.tlv_count;
    mv.auth = auth_tlv{};
    mv.auth.offset = old_ml;
    mv.auth.length = static_cast<uint16_t>(fi.ptp_avail - old_ml - tlv_header_len);
    mv.auth.spp = p.spp;
    mv.auth.secParamIndicator = p.with_seqno ? sec_param_seqno_present : 0;
    mv.auth.keyID = p.keyID;
    mv.auth.has_seqno = p.with_seqno;
    mv.auth.sequenceNo = p.with_seqno ? p.sequenceNo : 0;
    mv.auth.icv_offset = pa.icv_offset;
    mv.auth.icv_len = p.icv_len;
    return error::none;
}

error strip_auth_tlv(frame_buf& f, frame_info& fi, uint16_t auth_offset) noexcept {
    const bool udp_ck = udp_checksum_in_use(f.data, fi);
    if (const error e = set_lengths(f.data, fi, auth_offset); e != error::none) {
        return e;
    }
    f.len = static_cast<uint32_t>(size_t{fi.ptp_offset} + auth_offset);
    fix_checksums(f.data, fi, udp_ck);
    return error::none;
}

error strip_auth_tlv(frame_buf& f, frame_info& fi, message_view& mv) noexcept {
    if (!mv.has_auth) {
        return error::not_signed;
    }
    // The AUTHENTICATION TLV is last: the message ends where it starts.
    if (const error e = strip_auth_tlv(f, fi, mv.auth.offset); e != error::none) {
        return e;
    }
    mv.hdr.messageLength = mv.auth.offset;
    mv.messageLength = mv.auth.offset;
    mv.has_auth = false;
    mv.auth = auth_tlv{};
    --mv.tlv_count;
    return error::none;
}

} // namespace ptpsec::ptp
