#pragma once

// Test helpers for the PTP wire layer: sample messages of every type, frames
// around them (L2 behind VLAN tags, UDP over IPv4 and IPv6 with options and
// extension headers) and an independent check of every length and checksum
// on the way. The checksums here are written out from RFC 1071 and RFC 768
// on purpose, without DPDK, so that they can catch a mistake in the code
// under test rather than repeat it.

#include <dataplane/ptp/frame.h>
#include <dataplane/ptp/message.h>
#include <drivers/base/bytes.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::ptp {

// GoogleTest finds printers by this exact name (ADL): failures then show
// "tlv_overrun" rather than a raw octet.
inline void PrintTo(error e, std::ostream* os) { // NOLINT(readability-identifier-naming)
    *os << error_name(e);
}

inline void PrintTo(message_type t, std::ostream* os) { // NOLINT(readability-identifier-naming)
    *os << message_type_name(t);
}

} // namespace ptpsec::ptp

namespace ptpsec::test {

using bytes = std::vector<uint8_t>;

/// A heap copy of exactly `size()` octets. Code that reads one octet past the
/// end of a frame or message is caught by ASan in the sanitizer build; a
/// std::vector with spare capacity would hide it.
class exact_buffer {
public:
    explicit exact_buffer(std::span<const uint8_t> src)
        : _size(src.size()), _data(std::make_unique<uint8_t[]>(src.size())) {
        // Tells the compiler the copy is bounded (it cannot see that
        // make_unique would have thrown first, and warns).
        if (src.size() > static_cast<size_t>(PTRDIFF_MAX)) {
            throw std::length_error("exact_buffer");
        }
        if (!src.empty()) {
            std::memcpy(_data.get(), src.data(), src.size());
        }
    }

    uint8_t* data() noexcept { return _data.get(); }
    size_t size() const noexcept { return _size; }

private:
    size_t _size;
    std::unique_ptr<uint8_t[]> _data;
};

inline constexpr std::array<ptp::message_type, 10> all_message_types = {
    ptp::message_type::sync,
    ptp::message_type::delay_req,
    ptp::message_type::pdelay_req,
    ptp::message_type::pdelay_resp,
    ptp::message_type::follow_up,
    ptp::message_type::delay_resp,
    ptp::message_type::pdelay_resp_follow_up,
    ptp::message_type::announce,
    ptp::message_type::signaling,
    ptp::message_type::management,
};

inline ptp::port_identity make_port_identity(uint8_t seed, uint16_t port) {
    ptp::port_identity p;
    for (size_t i = 0; i < p.clockIdentity.size(); ++i) {
        p.clockIdentity[i] = static_cast<uint8_t>(seed + i * 17);
    }
    p.portNumber = port;
    return p;
}

/// A header whose every field holds a distinct, non-zero value, so that a
/// field read from the wrong offset shows.
inline ptp::header sample_header(uint16_t sequence_id = 0x1234) {
    ptp::header h;
    h.majorSdoId = 0x0;
    h.minorVersionPTP = 1;
    h.versionPTP = ptp::ptp_version;
    h.domainNumber = 24;
    h.minorSdoId = 0x00;
    h.flagField = 0x0208;
    h.correctionField = 0x0000000012345678;
    h.messageTypeSpecific = 0;
    h.sourcePortIdentity = make_port_identity(0x10, 1);
    h.sequenceId = sequence_id;
    h.controlField = 0;
    h.logMessageInterval = -3;
    return h;
}

inline ptp::timestamp sample_timestamp(uint64_t s) {
    return ptp::timestamp{0x0000123456789ABCULL + s, static_cast<uint32_t>(987654321 - s)};
}

/// A body of type t with distinct values in every field.
inline ptp::body sample_body(ptp::message_type t) {
    switch (t) {
    case ptp::message_type::sync:
        return ptp::sync_body{sample_timestamp(1)};
    case ptp::message_type::delay_req:
        return ptp::delay_req_body{sample_timestamp(2)};
    case ptp::message_type::pdelay_req: {
        ptp::pdelay_req_body b;
        b.originTimestamp = sample_timestamp(3);
        // 13.9.2: the reserved octets travel as sent; keep them non-zero to
        // prove they round-trip.
        for (size_t i = 0; i < b.reserved.size(); ++i) {
            b.reserved[i] = static_cast<uint8_t>(0xA0 + i);
        }
        return b;
    }
    case ptp::message_type::pdelay_resp:
        return ptp::pdelay_resp_body{sample_timestamp(4), make_port_identity(0x40, 4)};
    case ptp::message_type::follow_up:
        return ptp::follow_up_body{sample_timestamp(5)};
    case ptp::message_type::delay_resp:
        return ptp::delay_resp_body{sample_timestamp(6), make_port_identity(0x60, 6)};
    case ptp::message_type::pdelay_resp_follow_up:
        return ptp::pdelay_resp_follow_up_body{sample_timestamp(7), make_port_identity(0x70, 7)};
    case ptp::message_type::announce: {
        ptp::announce_body b;
        b.originTimestamp = sample_timestamp(8);
        b.currentUtcOffset = -37;
        b.grandmasterPriority1 = 11;
        b.clockClass = 6;
        b.clockAccuracy = 0x21;
        b.offsetScaledLogVariance = 0x4E5D;
        b.grandmasterPriority2 = 22;
        b.grandmasterIdentity = make_port_identity(0x80, 0).clockIdentity;
        b.stepsRemoved = 0x0102;
        b.timeSource = 0x20;
        return b;
    }
    case ptp::message_type::signaling:
        return ptp::signaling_body{make_port_identity(0x90, 9)};
    case ptp::message_type::management: {
        ptp::management_body b;
        b.targetPortIdentity = make_port_identity(0xD0, 13);
        b.startingBoundaryHops = 5;
        b.boundaryHops = 3;
        b.actionField = 2;
        return b;
    }
    }
    return ptp::sync_body{};
}

/// A complete TLV: tlvType, lengthField, value.
inline bytes make_tlv(uint16_t type, const bytes& value) {
    bytes t(ptp::tlv_header_len + value.size());
    store_be16(t.data(), type);
    store_be16(t.data() + 2, static_cast<uint16_t>(value.size()));
    std::copy(value.begin(), value.end(), t.begin() + ptp::tlv_header_len);
    return t;
}

inline bytes pattern(size_t n, uint8_t seed) {
    bytes b(n);
    for (size_t i = 0; i < n; ++i) {
        b[i] = static_cast<uint8_t>(seed + i * 7);
    }
    return b;
}

/// An AUTHENTICATION TLV as 16.14.3 lays it out, with any lengthField.
inline bytes make_auth_tlv(uint8_t spp, uint8_t sec_param, uint32_t key_id, size_t value_len) {
    bytes value = pattern(value_len, 0x33);
    if (value_len > 0) {
        value[0] = spp;
    }
    if (value_len > 1) {
        value[1] = sec_param;
    }
    if (value_len >= ptp::auth_fixed_len) {
        store_be32(value.data() + 2, key_id);
    }
    return make_tlv(ptp::tlv_authentication, value);
}

/// build_message() into a vector of exactly the message's size.
inline bytes build(const ptp::header& h, const ptp::body& b, const std::vector<bytes>& tlvs = {}) {
    std::vector<std::span<const uint8_t>> spans;
    spans.reserve(tlvs.size());
    for (const auto& t : tlvs) {
        spans.emplace_back(t);
    }
    bytes out(ptp::max_message_len);
    const size_t n = ptp::build_message(h, b, spans, out.data(), out.size());
    out.resize(n);
    return out;
}

inline bytes build(ptp::message_type t, const std::vector<bytes>& tlvs = {}, uint16_t sequence_id = 0x1234) {
    return build(sample_header(sequence_id), sample_body(t), tlvs);
}

// ---------------------------------------------------------------------------
// Frames.

struct ipv6_ext {
    uint8_t type = 0;            ///< 0 Hop-by-Hop, 43 Routing, 44 Fragment, 60 Destination Options
    uint8_t units = 0;           ///< Hdr Ext Len: (units + 1) * 8 octets; ignored for a Fragment header
    uint16_t fragment_field = 0; ///< Fragment header: offset (13 bits) || res || M
};

struct frame_spec {
    ptp::transport tp = ptp::transport::l2;
    std::vector<uint16_t> vlan_tpids;      ///< outermost first
    uint16_t udp_port = 0;                 ///< 0: 319 for event messages, 320 otherwise (Annex C.2)
    bool udp4_checksum = true;             ///< false: IPv4 UDP checksum 0, "not computed"
    uint8_t ipv4_option_words = 0;         ///< IHL = 5 + this
    uint16_t ipv4_fragment_field = 0x4000; ///< DF
    std::vector<ipv6_ext> ipv6_exts;
    size_t udp_padding = 0; ///< octets after the message inside the UDP payload
    size_t trailer = 0;     ///< Ethernet padding after the IP datagram or the message
};

/// Where the layers of a frame built from a spec start, computed from the
/// spec alone (not by classify_frame).
struct layout {
    size_t l3 = 0;
    size_t l4 = 0;
    size_t ptp = 0;
};

inline size_t ipv6_ext_len(const ipv6_ext& e) {
    return e.type == 44 ? 8 : (size_t{e.units} + 1) * 8;
}

inline layout layout_of(const frame_spec& s) {
    layout l;
    l.l3 = ptp::ethernet_header_len + ptp::vlan_tag_len * s.vlan_tpids.size();
    switch (s.tp) {
    case ptp::transport::l2:
        l.ptp = l.l3;
        l.l4 = l.l3;
        break;
    case ptp::transport::udp_ipv4:
        l.l4 = l.l3 + 20 + size_t{s.ipv4_option_words} * 4;
        l.ptp = l.l4 + ptp::udp_header_len;
        break;
    case ptp::transport::udp_ipv6: {
        l.l4 = l.l3 + ptp::ipv6_header_len;
        for (const auto& e : s.ipv6_exts) {
            l.l4 += ipv6_ext_len(e);
        }
        l.ptp = l.l4 + ptp::udp_header_len;
        break;
    }
    }
    return l;
}

/// RFC 1071 sum of 16-bit big-endian words, an odd last octet padded with a
/// zero octet, carries folded back in. Deliberately the plain loop.
inline uint32_t ones_complement_add(uint32_t sum, const uint8_t* p, size_t n) {
    uint64_t s = sum;
    for (size_t i = 0; i < n; i += 2) {
        uint32_t word = uint32_t{p[i]} << 8;
        if (i + 1 < n) {
            word |= p[i + 1];
        }
        s += word;
    }
    while (s > 0xFFFF) {
        s = (s & 0xFFFF) + (s >> 16);
    }
    return static_cast<uint32_t>(s);
}

/// RFC 791 header checksum for the IPv4 header at `ip`, the field taken as zero.
inline uint16_t reference_ipv4_checksum(const uint8_t* ip) {
    const size_t ihl = size_t{ip[0] & 0x0Fu} * 4;
    bytes h(ip, ip + ihl);
    h[10] = 0;
    h[11] = 0;
    return static_cast<uint16_t>(~ones_complement_add(0, h.data(), h.size()));
}

/// RFC 768 (IPv4) / RFC 8200 §8.1 (IPv6) UDP checksum over the pseudo header
/// and the UDP length octets at `udp`, the field taken as zero; a computed
/// zero is sent as 0xFFFF.
inline uint16_t reference_udp_checksum(const uint8_t* ip, const uint8_t* udp, bool ipv6) {
    const uint16_t udp_len = load_be16(udp + 4);
    uint8_t pseudo[40] = {};
    size_t pseudo_len = 0;
    if (ipv6) {
        std::memcpy(pseudo, ip + 8, 32); // source and destination address
        store_be32(pseudo + 32, udp_len);
        pseudo[39] = 17;
        pseudo_len = 40;
    } else {
        std::memcpy(pseudo, ip + 12, 8);
        pseudo[9] = 17;
        store_be16(pseudo + 10, udp_len);
        pseudo_len = 12;
    }
    bytes u(udp, udp + udp_len);
    u[6] = 0;
    u[7] = 0;
    uint32_t sum = ones_complement_add(0, pseudo, pseudo_len);
    sum = ones_complement_add(sum, u.data(), u.size());
    const auto ck = static_cast<uint16_t>(~sum);
    return ck == 0 ? 0xFFFF : ck;
}

inline uint16_t udp_port_for(ptp::message_type t, const frame_spec& s) {
    if (s.udp_port != 0) {
        return s.udp_port;
    }
    return ptp::is_event_message(t) ? ptp::udp_port_event : ptp::udp_port_general;
}

/// Wraps a PTP message (or any octets) into a frame as the spec says, with
/// every length and checksum right.
inline bytes make_frame(std::span<const uint8_t> msg, const frame_spec& s) {
    const layout l = layout_of(s);
    const size_t payload = msg.size() + (s.tp == ptp::transport::l2 ? 0 : s.udp_padding);
    bytes f(l.ptp + payload, 0);
    // Destination: the 1588 Annex E multicast address for L2, arbitrary otherwise.
    const uint8_t dst[6] = {0x01, 0x1B, 0x19, 0x00, 0x00, 0x00};
    const uint8_t src[6] = {0x02, 0x00, 0x5E, 0x10, 0x20, 0x30};
    std::memcpy(f.data(), dst, 6);
    std::memcpy(f.data() + 6, src, 6);
    size_t off = 12;
    for (size_t i = 0; i < s.vlan_tpids.size(); ++i) {
        store_be16(f.data() + off, s.vlan_tpids[i]);
        store_be16(f.data() + off + 2, static_cast<uint16_t>(0x6000 | (100 + i))); // PCP 3, VID 100+i
        off += ptp::vlan_tag_len;
    }
    const uint8_t first_type = msg.empty() ? 0 : msg[0];
    const auto type = static_cast<ptp::message_type>(first_type & 0x0F);
    switch (s.tp) {
    case ptp::transport::l2:
        store_be16(f.data() + off, ptp::ethertype_ptp);
        break;
    case ptp::transport::udp_ipv4: {
        store_be16(f.data() + off, ptp::ethertype_ipv4);
        uint8_t* ip = f.data() + l.l3;
        ip[0] = static_cast<uint8_t>(0x40 | (5 + s.ipv4_option_words));
        store_be16(ip + 2, static_cast<uint16_t>(f.size() - l.l3));
        store_be16(ip + 4, 0x4d2e);
        store_be16(ip + 6, s.ipv4_fragment_field);
        ip[8] = 1; // TTL 1 (Annex C.3.3 recommends 1 for multicast PTP)
        ip[9] = 17;
        const uint8_t sa[4] = {192, 0, 2, 1};
        const uint8_t da[4] = {224, 0, 1, 129};
        std::memcpy(ip + 12, sa, 4);
        std::memcpy(ip + 16, da, 4);
        // Options: NOP (1) then End of Option List (0).
        for (size_t i = 0; i < size_t{s.ipv4_option_words} * 4; ++i) {
            ip[20 + i] = static_cast<uint8_t>(i + 1 < size_t{s.ipv4_option_words} * 4 ? 1 : 0);
        }
        break;
    }
    case ptp::transport::udp_ipv6: {
        store_be16(f.data() + off, ptp::ethertype_ipv6);
        uint8_t* ip = f.data() + l.l3;
        store_be32(ip, 0x60012345); // version 6, traffic class 0, flow label
        store_be16(ip + 4, static_cast<uint16_t>(f.size() - l.l3 - ptp::ipv6_header_len));
        ip[7] = 1; // hop limit
        const uint8_t sa[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        const uint8_t da[16] = {0xff, 0x0e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x81};
        std::memcpy(ip + 8, sa, 16);
        std::memcpy(ip + 24, da, 16);
        uint8_t* next_field = ip + 6;
        size_t pos = l.l3 + ptp::ipv6_header_len;
        for (const auto& e : s.ipv6_exts) {
            *next_field = e.type;
            uint8_t* h = f.data() + pos;
            next_field = h;
            if (e.type == 44) {
                store_be16(h + 2, e.fragment_field);
                store_be32(h + 4, 0xCAFEF00D);
            } else {
                h[1] = e.units;
                // One PadN option (RFC 8200 §4.2) filling the header.
                const size_t len = ipv6_ext_len(e);
                h[2] = 1;
                h[3] = static_cast<uint8_t>(len - 4);
            }
            pos += ipv6_ext_len(e);
        }
        *next_field = 17;
        break;
    }
    }
    std::copy(msg.begin(), msg.end(), f.begin() + static_cast<ptrdiff_t>(l.ptp));
    if (s.tp != ptp::transport::l2) {
        uint8_t* udp = f.data() + l.l4;
        store_be16(udp, udp_port_for(type, s));
        store_be16(udp + 2, udp_port_for(type, s));
        store_be16(udp + 4, static_cast<uint16_t>(f.size() - l.l4));
        for (size_t i = 0; i < s.udp_padding; ++i) {
            f[l.ptp + msg.size() + i] = 0xEE;
        }
        const bool ipv6 = s.tp == ptp::transport::udp_ipv6;
        if (!ipv6) {
            store_be16(f.data() + l.l3 + 10, reference_ipv4_checksum(f.data() + l.l3));
        }
        if (ipv6 || s.udp4_checksum) {
            store_be16(udp + 6, reference_udp_checksum(f.data() + l.l3, udp, ipv6));
        }
    }
    f.insert(f.end(), s.trailer, 0x5A);
    return f;
}

/// Checks a frame built from `s` and since edited: the frame ends with the
/// message, and messageLength, the UDP length, the IP length and both
/// checksums agree with its octets. Recomputed here from the spec's layout
/// and the reference checksums.
inline ::testing::AssertionResult frame_consistent(std::span<const uint8_t> f, const frame_spec& s) {
    const layout l = layout_of(s);
    if (f.size() < l.ptp + ptp::header_len) {
        return ::testing::AssertionFailure() << "frame of " << f.size() << " octets is too short";
    }
    const size_t ml = load_be16(f.data() + l.ptp + 2);
    if (l.ptp + ml != f.size()) {
        return ::testing::AssertionFailure()
               << "frame is " << f.size() << " octets, headers " << l.ptp << " + messageLength " << ml;
    }
    if (s.tp == ptp::transport::l2) {
        return ::testing::AssertionSuccess();
    }
    const uint8_t* ip = f.data() + l.l3;
    const uint8_t* udp = f.data() + l.l4;
    const bool ipv6 = s.tp == ptp::transport::udp_ipv6;
    if (load_be16(udp + 4) != ptp::udp_header_len + ml) {
        return ::testing::AssertionFailure() << "UDP length " << load_be16(udp + 4) << " for messageLength " << ml;
    }
    if (ipv6) {
        if (load_be16(ip + 4) != f.size() - l.l3 - ptp::ipv6_header_len) {
            return ::testing::AssertionFailure() << "IPv6 payload length " << load_be16(ip + 4);
        }
    } else {
        if (load_be16(ip + 2) != f.size() - l.l3) {
            return ::testing::AssertionFailure() << "IPv4 total length " << load_be16(ip + 2);
        }
        if (load_be16(ip + 10) != reference_ipv4_checksum(ip)) {
            return ::testing::AssertionFailure() << "IPv4 header checksum " << std::hex << load_be16(ip + 10)
                                                 << ", expected " << reference_ipv4_checksum(ip);
        }
    }
    const uint16_t ck = load_be16(udp + 6);
    if (!ipv6 && !s.udp4_checksum) {
        if (ck != 0) {
            return ::testing::AssertionFailure() << "IPv4 UDP checksum was 0 (unused) and is now " << ck;
        }
    } else if (ck != reference_udp_checksum(ip, udp, ipv6)) {
        return ::testing::AssertionFailure()
               << "UDP checksum " << std::hex << ck << ", expected " << reference_udp_checksum(ip, udp, ipv6);
    }
    return ::testing::AssertionSuccess();
}

/// The transports the sign and edit tests run over, with names for output.
struct named_spec {
    std::string name;
    frame_spec spec;
};

inline std::vector<named_spec> transport_specs() {
    std::vector<named_spec> v;
    v.push_back({"l2", frame_spec{}});
    frame_spec vlan;
    vlan.vlan_tpids = {ptp::ethertype_vlan};
    v.push_back({"l2_vlan", vlan});
    frame_spec qinq;
    qinq.vlan_tpids = {ptp::ethertype_qinq, ptp::ethertype_vlan};
    v.push_back({"l2_qinq", qinq});
    frame_spec u4;
    u4.tp = ptp::transport::udp_ipv4;
    v.push_back({"udp4", u4});
    frame_spec u4z = u4;
    u4z.udp4_checksum = false;
    v.push_back({"udp4_no_checksum", u4z});
    frame_spec u4o = u4;
    u4o.ipv4_option_words = 1;
    u4o.vlan_tpids = {ptp::ethertype_vlan};
    v.push_back({"udp4_vlan_options", u4o});
    frame_spec u6;
    u6.tp = ptp::transport::udp_ipv6;
    v.push_back({"udp6", u6});
    frame_spec u6e = u6;
    u6e.ipv6_exts = {{0, 0, 0}, {60, 1, 0}};
    v.push_back({"udp6_ext", u6e});
    return v;
}

/// One of transport_specs() by name.
inline named_spec spec_named(std::string_view name) {
    for (auto& ns : transport_specs()) {
        if (ns.name == name) {
            return ns;
        }
    }
    ADD_FAILURE() << "no transport spec " << name;
    return {};
}

/// A frame and its buffer, with headroom for an AUTHENTICATION TLV.
struct owned_frame {
    bytes buf;
    uint32_t len = 0;

    owned_frame() = default;
    owned_frame(std::span<const uint8_t> f, size_t headroom)
        : buf(f.size() + headroom, 0xCC), len(static_cast<uint32_t>(f.size())) {
        std::copy(f.begin(), f.end(), buf.begin());
    }

    ptp::frame_buf view() noexcept { return ptp::frame_buf{buf.data(), len, static_cast<uint32_t>(buf.size())}; }
    std::span<const uint8_t> octets() const noexcept { return {buf.data(), len}; }
    bytes copy() const { return bytes(buf.begin(), buf.begin() + len); }
};

} // namespace ptpsec::test
