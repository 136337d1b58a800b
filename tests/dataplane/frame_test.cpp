// Framing of PTP (IEEE 1588-2019 Annex C UDP/IPv4, Annex D UDP/IPv6, Annex E
// IEEE 802.3) and the AUTHENTICATION TLV edits that keep every length and
// checksum on the way right. Lengths and checksums are checked against the
// reference implementation in frame_builder.h, not against DPDK's.

#include "frame_builder.h"

#include <dataplane/ptp/frame.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <initializer_list>
#include <random>
#include <string>

namespace ptpsec::test {
namespace {

using ptp::error;
using ptp::message_type;
using ptp::transport;

/// classify_frame() over an exact heap copy of the first `len` octets.
error classify_exact(const bytes& f, ptp::frame_info& fi, size_t len) {
    exact_buffer buf(std::span<const uint8_t>(f.data(), len));
    return ptp::classify_frame(buf.data(), buf.size(), fi);
}

error classify_exact(const bytes& f, ptp::frame_info& fi) {
    return classify_exact(f, fi, f.size());
}

error classify_exact(const bytes& f) {
    ptp::frame_info fi;
    return classify_exact(f, fi, f.size());
}

frame_spec udp4_spec() {
    frame_spec s;
    s.tp = transport::udp_ipv4;
    return s;
}

frame_spec udp6_spec(std::vector<ipv6_ext> exts = {}) {
    frame_spec s;
    s.tp = transport::udp_ipv6;
    s.ipv6_exts = std::move(exts);
    return s;
}

// ---------------------------------------------------------------------------
// classify_frame

TEST(classify, l2_untagged) {
    const bytes msg = build(message_type::sync);
    const bytes f = make_frame(msg, frame_spec{});
    ptp::frame_info fi;
    ASSERT_EQ(classify_exact(f, fi), error::none);
    EXPECT_EQ(fi.tp, transport::l2);
    EXPECT_EQ(fi.vlan_count, 0);
    EXPECT_EQ(fi.ptp_offset, 14);
    EXPECT_EQ(fi.ptp_avail, 44);
    // Ethernet pads a 58-octet frame to 60: the padding is available octets,
    // parse_message ignores it.
    frame_spec padded;
    padded.trailer = 2;
    const bytes p = make_frame(msg, padded);
    ASSERT_EQ(classify_exact(p, fi), error::none);
    EXPECT_EQ(fi.ptp_avail, 46);
}

TEST(classify, l2_one_and_two_vlan_tags) {
    const bytes msg = build(message_type::announce);
    frame_spec one;
    one.vlan_tpids = {ptp::ethertype_vlan};
    ptp::frame_info fi;
    ASSERT_EQ(classify_exact(make_frame(msg, one), fi), error::none);
    EXPECT_EQ(fi.tp, transport::l2);
    EXPECT_EQ(fi.vlan_count, 1);
    EXPECT_EQ(fi.ptp_offset, 18);
    EXPECT_EQ(fi.ptp_avail, 64);

    // IEEE 802.1ad: S-tag (0x88A8) outside a C-tag (0x8100).
    frame_spec two;
    two.vlan_tpids = {ptp::ethertype_qinq, ptp::ethertype_vlan};
    ASSERT_EQ(classify_exact(make_frame(msg, two), fi), error::none);
    EXPECT_EQ(fi.vlan_count, 2);
    EXPECT_EQ(fi.ptp_offset, 22);

    frame_spec three;
    three.vlan_tpids = {ptp::ethertype_qinq, ptp::ethertype_vlan, ptp::ethertype_vlan};
    EXPECT_EQ(classify_exact(make_frame(msg, three)), error::too_many_vlans);
    // A third tag in front of IPv4 as well.
    frame_spec three_ip = three;
    three_ip.tp = transport::udp_ipv4;
    EXPECT_EQ(classify_exact(make_frame(msg, three_ip)), error::too_many_vlans);
}

TEST(classify, udp4_event_and_general_ports) {
    ptp::frame_info fi;
    const bytes sync = build(message_type::sync);
    ASSERT_EQ(classify_exact(make_frame(sync, udp4_spec()), fi), error::none);
    EXPECT_EQ(fi.tp, transport::udp_ipv4);
    EXPECT_EQ(fi.l3_offset, 14);
    EXPECT_EQ(fi.l4_offset, 34);
    EXPECT_EQ(fi.ptp_offset, 42);
    EXPECT_EQ(fi.ptp_avail, 44);
    const bytes f = make_frame(sync, udp4_spec());
    EXPECT_EQ(load_be16(f.data() + 36), 319);

    const bytes follow_up = build(message_type::follow_up);
    const bytes g = make_frame(follow_up, udp4_spec());
    EXPECT_EQ(load_be16(g.data() + 36), 320);
    ASSERT_EQ(classify_exact(g, fi), error::none);
    EXPECT_EQ(fi.ptp_offset, 42);

    // Trailing Ethernet padding after the IP datagram is not UDP payload.
    frame_spec trailer = udp4_spec();
    trailer.trailer = 7;
    ASSERT_EQ(classify_exact(make_frame(sync, trailer), fi), error::none);
    EXPECT_EQ(fi.ptp_avail, 44);
}

TEST(classify, not_ptp) {
    const bytes msg = build(message_type::sync);
    frame_spec other_port = udp4_spec();
    other_port.udp_port = 123;
    EXPECT_EQ(classify_exact(make_frame(msg, other_port)), error::not_ptp);
    frame_spec other_port6 = udp6_spec();
    other_port6.udp_port = 5353;
    EXPECT_EQ(classify_exact(make_frame(msg, other_port6)), error::not_ptp);

    // ARP, and an ethertype next to PTP's.
    for (const uint16_t et : {uint16_t{0x0806}, uint16_t{0x88F8}, uint16_t{0x88F6}}) {
        bytes f = make_frame(msg, frame_spec{});
        store_be16(f.data() + 12, et);
        EXPECT_EQ(classify_exact(f), error::not_ptp) << std::hex << et;
    }
    // Other ethertype behind a VLAN tag.
    frame_spec vlan;
    vlan.vlan_tpids = {ptp::ethertype_vlan};
    bytes fv = make_frame(msg, vlan);
    store_be16(fv.data() + 16, 0x0806);
    EXPECT_EQ(classify_exact(fv), error::not_ptp);

    // TCP in IPv4, ICMPv6 and "no next header" in IPv6.
    bytes tcp = make_frame(msg, udp4_spec());
    tcp[14 + 9] = 6;
    EXPECT_EQ(classify_exact(tcp), error::not_ptp);
    for (const uint8_t nh : {uint8_t{58}, uint8_t{59}, uint8_t{6}}) {
        bytes f = make_frame(msg, udp6_spec());
        f[14 + 6] = nh;
        EXPECT_EQ(classify_exact(f), error::not_ptp) << int{nh};
    }
    // The UDP header does not fit into the IP payload: no ports to look at.
    bytes shortudp = make_frame(msg, udp4_spec());
    store_be16(shortudp.data() + 14 + 2, 20 + 4);
    EXPECT_EQ(classify_exact(shortudp), error::not_ptp);
}

TEST(classify, ipv4_options) {
    frame_spec s = udp4_spec();
    s.ipv4_option_words = 1; // IHL 6
    const bytes f = make_frame(build(message_type::delay_req), s);
    EXPECT_EQ(f[14], 0x46);
    ptp::frame_info fi;
    ASSERT_EQ(classify_exact(f, fi), error::none);
    EXPECT_EQ(fi.l4_offset, 38);
    EXPECT_EQ(fi.ptp_offset, 46);
    EXPECT_EQ(fi.ptp_avail, 44);

    s.ipv4_option_words = 10; // IHL 15, the largest
    ASSERT_EQ(classify_exact(make_frame(build(message_type::delay_req), s), fi), error::none);
    EXPECT_EQ(fi.l4_offset, 14 + 60);
}

TEST(classify, bad_ipv4_header) {
    const bytes good = make_frame(build(message_type::sync), udp4_spec());
    for (const uint8_t ihl : std::initializer_list<uint8_t>{0, 1, 4}) {
        bytes f = good;
        f[14] = static_cast<uint8_t>(0x40 | ihl);
        EXPECT_EQ(classify_exact(f), error::bad_ip_header) << "IHL " << int{ihl};
    }
    for (const uint8_t version : std::initializer_list<uint8_t>{0, 5, 6, 15}) {
        bytes f = good;
        f[14] = static_cast<uint8_t>(version << 4 | 5);
        EXPECT_EQ(classify_exact(f), error::bad_ip_header) << "version " << int{version};
    }
    // Total length shorter than the header.
    bytes f = good;
    store_be16(f.data() + 16, 19);
    EXPECT_EQ(classify_exact(f), error::bad_ip_header);
    // IHL 15 needs 60 octets; the datagram is only 20 + 8 + 44 long but the
    // total length says less than the header.
    bytes g = good;
    g[14] = 0x4F;
    store_be16(g.data() + 16, 40);
    EXPECT_EQ(classify_exact(g), error::bad_ip_header);
}

TEST(classify, ipv4_fragments) {
    const bytes msg = build(message_type::sync);
    // First fragment (MF set, offset 0) to port 319: PTP we cannot check.
    frame_spec first = udp4_spec();
    first.ipv4_fragment_field = 0x2000;
    EXPECT_EQ(classify_exact(make_frame(msg, first)), error::ip_fragment);
    // Same on a port that is not PTP: not ours.
    frame_spec first_other = first;
    first_other.udp_port = 4000;
    EXPECT_EQ(classify_exact(make_frame(msg, first_other)), error::not_ptp);
    // Later fragments (offset non-zero, MF set or not) carry no UDP header.
    for (const uint16_t field : {uint16_t{0x0001}, uint16_t{0x2001}, uint16_t{0x1FFF}, uint16_t{0x4010}}) {
        frame_spec later = udp4_spec();
        later.ipv4_fragment_field = field;
        EXPECT_EQ(classify_exact(make_frame(msg, later)), error::not_ptp) << std::hex << field;
    }
    // DF alone is not a fragment.
    EXPECT_EQ(classify_exact(make_frame(msg, udp4_spec())), error::none);
}

TEST(classify, ipv4_total_length_past_the_frame) {
    bytes f = make_frame(build(message_type::sync), udp4_spec());
    store_be16(f.data() + 16, static_cast<uint16_t>(f.size() - 14 + 1));
    EXPECT_EQ(classify_exact(f), error::truncated_frame);
    store_be16(f.data() + 16, 0xFFFF);
    EXPECT_EQ(classify_exact(f), error::truncated_frame);
}

TEST(classify, bad_udp_length) {
    for (const auto& spec : {udp4_spec(), udp6_spec()}) {
        const bytes good = make_frame(build(message_type::sync), spec);
        const size_t l4 = layout_of(spec).l4;
        for (const uint16_t ulen : {uint16_t{0}, uint16_t{7}, uint16_t{8 + 44 + 1}, uint16_t{0xFFFF}}) {
            bytes f = good;
            store_be16(f.data() + l4 + 4, ulen);
            EXPECT_EQ(classify_exact(f), error::bad_udp_length) << "UDP length " << ulen;
        }
        // Shorter than the IP payload is framing-wise fine: the message then
        // does not fit, which parse_message() reports.
        bytes f = good;
        store_be16(f.data() + l4 + 4, 8 + 40);
        ptp::frame_info fi;
        ASSERT_EQ(classify_exact(f, fi), error::none);
        EXPECT_EQ(fi.ptp_avail, 40);
        ptp::message_view mv;
        EXPECT_EQ(ptp::parse_message(f.data() + fi.ptp_offset, fi.ptp_avail, mv), error::truncated);
    }
}

TEST(classify, ipv6_plain_and_with_extension_headers) {
    const bytes msg = build(message_type::pdelay_resp);
    ptp::frame_info fi;
    ASSERT_EQ(classify_exact(make_frame(msg, udp6_spec()), fi), error::none);
    EXPECT_EQ(fi.tp, transport::udp_ipv6);
    EXPECT_EQ(fi.l3_offset, 14);
    EXPECT_EQ(fi.l4_offset, 54);
    EXPECT_EQ(fi.ptp_offset, 62);
    EXPECT_EQ(fi.ptp_avail, 54);

    // RFC 8200 §4.1 order: Hop-by-Hop, Destination Options, Routing, then UDP.
    const bytes e = make_frame(msg, udp6_spec({{0, 0, 0}, {60, 1, 0}, {43, 0, 0}}));
    EXPECT_EQ(e[14 + 6], 0);
    ASSERT_EQ(classify_exact(e, fi), error::none);
    EXPECT_EQ(fi.l4_offset, 54 + 8 + 16 + 8);
    EXPECT_EQ(fi.ptp_offset, 54 + 32 + 8);

    frame_spec vlan = udp6_spec({{0, 0, 0}, {60, 0, 0}});
    vlan.vlan_tpids = {ptp::ethertype_qinq, ptp::ethertype_vlan};
    ASSERT_EQ(classify_exact(make_frame(msg, vlan), fi), error::none);
    EXPECT_EQ(fi.l3_offset, 22);
    EXPECT_EQ(fi.l4_offset, 22 + 40 + 16);
}

TEST(classify, ipv6_extension_header_limits) {
    const bytes msg = build(message_type::sync);
    // Eight extension headers are walked, a ninth is refused.
    std::vector<ipv6_ext> eight(8, ipv6_ext{60, 0, 0});
    EXPECT_EQ(classify_exact(make_frame(msg, udp6_spec(eight))), error::none);
    std::vector<ipv6_ext> nine(9, ipv6_ext{60, 0, 0});
    EXPECT_EQ(classify_exact(make_frame(msg, udp6_spec(nine))), error::bad_ip_header);
    // An extension header longer than the payload.
    bytes f = make_frame(msg, udp6_spec({{0, 0, 0}}));
    f[54 + 1] = 200;
    EXPECT_EQ(classify_exact(f), error::bad_ip_header);
    // Payload length too short for the extension header itself.
    bytes g = make_frame(msg, udp6_spec({{60, 0, 0}}));
    store_be16(g.data() + 14 + 4, 4);
    EXPECT_EQ(classify_exact(g), error::bad_ip_header);
    // Payload length past the frame.
    bytes h = make_frame(msg, udp6_spec());
    store_be16(h.data() + 14 + 4, static_cast<uint16_t>(h.size() - 54 + 1));
    EXPECT_EQ(classify_exact(h), error::truncated_frame);
    // Version other than 6.
    bytes v = make_frame(msg, udp6_spec());
    v[14] = 0x40;
    EXPECT_EQ(classify_exact(v), error::bad_ip_header);
}

TEST(classify, ipv6_fragment_header) {
    const bytes msg = build(message_type::sync);
    // First fragment (offset 0, M set).
    EXPECT_EQ(classify_exact(make_frame(msg, udp6_spec({{44, 0, 0x0001}}))), error::ip_fragment);
    // Behind a Hop-by-Hop header.
    EXPECT_EQ(classify_exact(make_frame(msg, udp6_spec({{0, 0, 0}, {44, 0, 0x0001}}))), error::ip_fragment);
    // Later fragments: offset in 8-octet units in the top 13 bits.
    EXPECT_EQ(classify_exact(make_frame(msg, udp6_spec({{44, 0, 0x0008}}))), error::not_ptp);
    EXPECT_EQ(classify_exact(make_frame(msg, udp6_spec({{44, 0, 0xFFF9}}))), error::not_ptp);
    // RFC 6946 atomic fragment (offset 0, M clear): a whole packet.
    EXPECT_EQ(classify_exact(make_frame(msg, udp6_spec({{44, 0, 0x0000}}))), error::none);
    // First fragment to a port that is not PTP.
    frame_spec other = udp6_spec({{44, 0, 0x0001}});
    other.udp_port = 53;
    EXPECT_EQ(classify_exact(make_frame(msg, other)), error::not_ptp);
}

/// Every prefix of a valid frame gives a defined result and reads nothing
/// past its end (exact heap buffers); the expected error is known for each.
void check_every_prefix(const bytes& f, const frame_spec& s, const std::string& name) {
    const layout l = layout_of(s);
    const size_t full = f.size() - s.trailer;
    for (size_t len = 0; len <= f.size(); ++len) {
        ptp::frame_info fi;
        const error e = classify_exact(f, fi, len);
        ASSERT_LT(static_cast<size_t>(e), ptp::error_count);
        if (s.tp == transport::l2) {
            if (len < l.ptp) {
                EXPECT_EQ(e, error::truncated_frame) << name << " prefix " << len;
                continue;
            }
            ASSERT_EQ(e, error::none) << name << " prefix " << len;
            EXPECT_EQ(fi.ptp_avail, len - l.ptp);
        } else {
            if (len < full) {
                EXPECT_EQ(e, error::truncated_frame) << name << " prefix " << len;
                continue;
            }
            ASSERT_EQ(e, error::none) << name << " prefix " << len;
            EXPECT_EQ(fi.ptp_avail, full - l.ptp);
        }
        EXPECT_EQ(fi.ptp_offset, l.ptp);
        EXPECT_LE(size_t{fi.ptp_offset} + fi.ptp_avail, len);
        // The message inside: truncated until all of messageLength is there.
        exact_buffer buf(std::span<const uint8_t>(f.data(), len));
        ptp::message_view mv;
        const error pe = ptp::parse_message(buf.data() + fi.ptp_offset, fi.ptp_avail, mv);
        const size_t ml = load_be16(f.data() + l.ptp + 2);
        EXPECT_EQ(pe, fi.ptp_avail >= ml ? error::none : error::truncated) << name << " prefix " << len;
    }
}

TEST(classify, every_prefix_of_a_valid_frame) {
    const bytes msg = build(message_type::announce, {make_tlv(ptp::tlv_path_trace, pattern(8, 1)),
                                                     make_auth_tlv(1, ptp::sec_param_seqno_present, 2, 6 + 8 + 16)});
    for (auto [name, spec] : transport_specs()) {
        check_every_prefix(make_frame(msg, spec), spec, name);
        spec.trailer = 5;
        check_every_prefix(make_frame(msg, spec), spec, name + "+trailer");
    }
}

TEST(classify, every_cut_with_the_ip_length_fixed_up) {
    // Cutting a frame and setting the IP length to match lets the cut reach
    // the checks inside the IP payload (extension headers, UDP header, UDP
    // length) rather than stopping at the IP length.
    const bytes msg = build(message_type::sync);
    auto specs = transport_specs();
    // An atomic fragment header behind Hop-by-Hop: cut inside it too.
    specs.push_back({"udp6_atomic_fragment", udp6_spec({{0, 0, 0}, {44, 0, 0x0000}})});
    for (const auto& [name, spec] : specs) {
        if (spec.tp == transport::l2) {
            continue;
        }
        const bool v6 = spec.tp == transport::udp_ipv6;
        const bytes f = make_frame(msg, spec);
        const layout l = layout_of(spec);
        for (size_t len = l.l3 + (v6 ? 40 : 20); len <= f.size(); ++len) {
            bytes g(f.begin(), f.begin() + static_cast<ptrdiff_t>(len));
            if (v6) {
                store_be16(g.data() + l.l3 + 4, static_cast<uint16_t>(len - l.l3 - 40));
            } else {
                store_be16(g.data() + l.l3 + 2, static_cast<uint16_t>(len - l.l3));
            }
            error want = error::none;
            if (len < l.l4) {
                want = error::bad_ip_header; // IPv4 options or IPv6 extension headers cut
            } else if (len - l.l4 < ptp::udp_header_len) {
                want = error::not_ptp; // no ports to look at
            } else if (len < f.size()) {
                want = error::bad_udp_length;
            }
            ptp::frame_info fi;
            EXPECT_EQ(classify_exact(g, fi), want) << name << " cut at " << len;
        }
    }
}

TEST(classify, every_prefix_of_unusual_frames_is_defined) {
    // Frames that end in an error or not_ptp: every prefix still gives one
    // of the defined errors without reading past the end.
    const bytes msg = build(message_type::sync);
    std::vector<bytes> frames;
    frame_spec frag4 = udp4_spec();
    frag4.ipv4_fragment_field = 0x2000;
    frames.push_back(make_frame(msg, frag4));
    frames.push_back(make_frame(msg, udp6_spec({{0, 0, 0}, {44, 0, 0x0001}})));
    frames.push_back(make_frame(msg, udp6_spec(std::vector<ipv6_ext>(9, ipv6_ext{60, 0, 0}))));
    frame_spec three;
    three.vlan_tpids = {ptp::ethertype_qinq, ptp::ethertype_vlan, ptp::ethertype_vlan};
    frames.push_back(make_frame(msg, three));
    frame_spec opts = udp4_spec();
    opts.ipv4_option_words = 10;
    frames.push_back(make_frame(msg, opts));
    for (const auto& f : frames) {
        for (size_t len = 0; len <= f.size(); ++len) {
            ptp::frame_info fi;
            const error e = classify_exact(f, fi, len);
            ASSERT_LT(static_cast<size_t>(e), ptp::error_count);
            if (e == error::none) {
                EXPECT_LE(size_t{fi.ptp_offset} + fi.ptp_avail, len);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// append_auth_tlv / strip_auth_tlv

struct edit_case {
    std::string name;
    bytes msg;
};

std::vector<edit_case> edit_messages() {
    std::vector<edit_case> v;
    v.push_back({"sync", build(message_type::sync)});
    v.push_back(
        {"announce_ticket", build(message_type::announce, {make_tlv(ptp::default_ticket_tlv_type, pattern(40, 2))})});
    // An odd messageLength: the UDP checksum then sums a padded last octet.
    v.push_back({"odd_length", build(message_type::delay_resp, {make_tlv(0x2004, pattern(3, 3))})});
    return v;
}

/// A frame parsed into the state the editing calls take.
struct parsed {
    ptp::frame_info fi;
    ptp::message_view mv;
};

parsed parse_frame(ptp::frame_buf f) {
    parsed p;
    EXPECT_EQ(ptp::classify_frame(f.data, f.len, p.fi), error::none);
    EXPECT_EQ(ptp::parse_message(f.data + p.fi.ptp_offset, p.fi.ptp_avail, p.mv), error::none);
    return p;
}

void append_then_strip(const frame_spec& spec, const edit_case& c, const ptp::auth_params& ap) {
    SCOPED_TRACE(c.name);
    const bytes original = make_frame(c.msg, spec);
    frame_spec clean = spec;
    clean.trailer = 0;
    clean.udp_padding = 0;
    const bytes without_padding = make_frame(c.msg, clean);
    ASSERT_TRUE(frame_consistent(without_padding, clean));

    owned_frame of(original, 64);
    ptp::frame_buf fb = of.view();
    parsed p = parse_frame(fb);
    const bool udp_ck = ptp::udp_checksum_in_use(fb.data, p.fi);
    EXPECT_EQ(udp_ck, spec.tp != transport::udp_ipv4 || spec.udp4_checksum);

    const size_t old_ml = c.msg.size();
    const size_t tlv_size = ptp::auth_tlv_size(ap);
    ASSERT_EQ(ptp::append_auth_tlv(fb, p.fi, p.mv, ap), error::none);
    const layout l = layout_of(spec);
    ASSERT_EQ(fb.len, l.ptp + old_ml + tlv_size); // padding dropped
    EXPECT_EQ(p.fi.ptp_avail, old_ml + tlv_size);
    EXPECT_EQ(p.mv.hdr.messageLength, old_ml + tlv_size);
    ASSERT_TRUE(p.mv.has_auth);
    EXPECT_EQ(p.mv.auth.offset, old_ml);
    EXPECT_EQ(p.mv.auth.spp, ap.spp);
    EXPECT_EQ(p.mv.auth.keyID, ap.keyID);
    EXPECT_EQ(p.mv.auth.has_seqno, ap.with_seqno);
    EXPECT_EQ(p.mv.auth.icv_len, ap.icv_len);
    const size_t icv_at = old_ml + 4 + 6 + (ap.with_seqno ? 8 : 0);
    EXPECT_EQ(p.mv.auth.icv_offset, icv_at);

    // The TLV on the wire (16.14.3).
    uint8_t* msg = fb.data + l.ptp;
    EXPECT_EQ(load_be16(msg + old_ml), ptp::tlv_authentication);
    EXPECT_EQ(load_be16(msg + old_ml + 2), tlv_size - 4);
    EXPECT_EQ(msg[old_ml + 4], ap.spp);
    EXPECT_EQ(msg[old_ml + 5], ap.with_seqno ? 0x02 : 0x00);
    EXPECT_EQ(load_be32(msg + old_ml + 6), ap.keyID);
    if (ap.with_seqno) {
        EXPECT_EQ(load_be64(msg + old_ml + 10), ap.sequenceNo);
    }
    for (size_t i = 0; i < ap.icv_len; ++i) {
        EXPECT_EQ(msg[icv_at + i], 0) << "ICV octet " << i << " is not zeroed";
    }
    // The message before the TLV is untouched but for messageLength.
    for (size_t i = 0; i < old_ml; ++i) {
        if (i != 2 && i != 3) {
            EXPECT_EQ(msg[i], c.msg[i]) << "message octet " << i;
        }
    }

    // As the signer does: ICV in place, then checksums.
    for (size_t i = 0; i < ap.icv_len; ++i) {
        msg[icv_at + i] = static_cast<uint8_t>(0xF0 ^ i);
    }
    ptp::fix_checksums(fb.data, p.fi, udp_ck);
    EXPECT_TRUE(frame_consistent({fb.data, fb.len}, clean));
    if (spec.tp != transport::l2) {
        EXPECT_EQ(ptp::compute_udp_checksum(fb.data, p.fi),
                  reference_udp_checksum(fb.data + l.l3, fb.data + l.l4, spec.tp == transport::udp_ipv6));
    }

    // The new frame parses to the same TLV.
    parsed again = parse_frame(fb);
    ASSERT_TRUE(again.mv.has_auth);
    EXPECT_EQ(again.mv.auth.icv_offset, icv_at);
    EXPECT_EQ(again.mv.auth.sequenceNo, ap.with_seqno ? ap.sequenceNo : 0);
    EXPECT_EQ(again.fi.ptp_avail, p.fi.ptp_avail);

    // Strip: back to the original frame without padding, octet for octet.
    EXPECT_EQ(ptp::append_auth_tlv(fb, again.fi, again.mv, ap), error::already_signed);
    ASSERT_EQ(ptp::strip_auth_tlv(fb, again.fi, again.mv), error::none);
    EXPECT_FALSE(again.mv.has_auth);
    EXPECT_EQ(again.mv.hdr.messageLength, old_ml);
    EXPECT_EQ(again.fi.ptp_avail, old_ml);
    EXPECT_TRUE(frame_consistent({fb.data, fb.len}, clean));
    ASSERT_EQ(fb.len, without_padding.size());
    EXPECT_TRUE(std::equal(without_padding.begin(), without_padding.end(), fb.data));
    EXPECT_EQ(ptp::strip_auth_tlv(fb, again.fi, again.mv), error::not_signed);
    EXPECT_TRUE(std::equal(without_padding.begin(), without_padding.end(), fb.data));
}

class edit : public ::testing::TestWithParam<named_spec> {};

TEST_P(edit, append_then_strip_keeps_lengths_and_checksums) {
    const frame_spec base = GetParam().spec;
    ptp::auth_params hmac;
    hmac.spp = 7;
    hmac.keyID = 0x0A0B0C0D;
    hmac.icv_len = 16;
    ptp::auth_params wide = hmac;
    wide.icv_len = 32;
    ptp::auth_params gmac = hmac;
    gmac.with_seqno = true;
    gmac.sequenceNo = 0x0102030405060708ULL;
    for (const auto& c : edit_messages()) {
        for (const auto& ap : {hmac, wide, gmac}) {
            append_then_strip(base, c, ap);
            frame_spec padded = base;
            padded.trailer = 6;
            append_then_strip(padded, c, ap);
            if (base.tp != transport::l2) {
                frame_spec udp_padded = base;
                udp_padded.udp_padding = 3;
                append_then_strip(udp_padded, c, ap);
            }
        }
    }
}

TEST_P(edit, no_room_leaves_the_frame_alone) {
    const frame_spec spec = GetParam().spec;
    const bytes original = make_frame(build(message_type::follow_up), spec);
    ptp::auth_params ap;
    ap.icv_len = 16;
    const size_t need = original.size() + ptp::auth_tlv_size(ap);
    for (const size_t cap : {original.size(), need - 1}) {
        owned_frame of(original, cap - original.size());
        ptp::frame_buf fb = of.view();
        parsed p = parse_frame(fb);
        const ptp::frame_info fi_before = p.fi;
        EXPECT_EQ(ptp::append_auth_tlv(fb, p.fi, p.mv, ap), error::no_room) << "cap " << cap;
        EXPECT_EQ(fb.len, original.size());
        EXPECT_TRUE(std::equal(original.begin(), original.end(), fb.data));
        EXPECT_EQ(p.fi.ptp_avail, fi_before.ptp_avail);
        EXPECT_FALSE(p.mv.has_auth);
    }
    owned_frame exact(original, need - original.size());
    ptp::frame_buf fb = exact.view();
    parsed p = parse_frame(fb);
    EXPECT_EQ(ptp::append_auth_tlv(fb, p.fi, p.mv, ap), error::none);
    EXPECT_EQ(fb.len, need);
}

INSTANTIATE_TEST_SUITE_P(transports, edit, ::testing::ValuesIn(transport_specs()),
                         [](const ::testing::TestParamInfo<named_spec>& i) { return i.param.name; });

TEST(classify, fast_path_answers_as_the_general_path) {
    // classify_frame() decides untagged IPv4 without options and L2 inline;
    // over every transport, and every single-octet change of the first 64
    // octets of each frame, it must give the verdict and layout of
    // classify_frame_general().
    std::mt19937 rng(11);
    size_t fast_cases = 0;
    for (const auto& [name, spec] : transport_specs()) {
        const bytes base = make_frame(build(message_type::sync), spec);
        for (size_t at = 0; at < std::min<size_t>(base.size(), 64); ++at) {
            for (int round = 0; round < 4; ++round) {
                bytes f = base;
                f[at] = round == 0 ? f[at] : static_cast<uint8_t>(rng());
                for (size_t len : {f.size(), f.size() - 1, size_t{42}, size_t{41}, size_t{14}}) {
                    ptp::frame_info a;
                    ptp::frame_info b;
                    const error ea = ptp::classify_frame(f.data(), len, a);
                    const error eb = ptp::classify_frame_general(f.data(), len, b);
                    ASSERT_EQ(ea, eb) << name << " octet " << at << " len " << len;
                    if (ea == error::none) {
                        EXPECT_EQ(a.tp, b.tp);
                        EXPECT_EQ(a.vlan_count, b.vlan_count);
                        EXPECT_EQ(a.l3_offset, b.l3_offset);
                        EXPECT_EQ(a.l4_offset, b.l4_offset);
                        EXPECT_EQ(a.ptp_offset, b.ptp_offset);
                        EXPECT_EQ(a.ptp_avail, b.ptp_avail);
                        fast_cases += a.vlan_count == 0 && (a.tp == transport::l2 || a.l4_offset == 34);
                    }
                }
            }
        }
    }
    EXPECT_GT(fast_cases, 1000U); // the fast path was exercised, not only the fallback
}

TEST(edit_limits, zero_ipv4_udp_checksum_stays_zero) {
    frame_spec s = udp4_spec();
    s.udp4_checksum = false;
    owned_frame of(make_frame(build(message_type::sync), s), 64);
    ptp::frame_buf fb = of.view();
    parsed p = parse_frame(fb);
    EXPECT_FALSE(ptp::udp_checksum_in_use(fb.data, p.fi));
    ptp::auth_params ap;
    ASSERT_EQ(ptp::append_auth_tlv(fb, p.fi, p.mv, ap), error::none);
    ptp::fix_checksums(fb.data, p.fi, false);
    EXPECT_EQ(load_be16(fb.data + 34 + 6), 0);
    EXPECT_TRUE(frame_consistent({fb.data, fb.len}, s)); // IPv4 header checksum fixed nonetheless
    ASSERT_EQ(ptp::strip_auth_tlv(fb, p.fi, p.mv), error::none);
    EXPECT_EQ(load_be16(fb.data + 34 + 6), 0);
    EXPECT_TRUE(frame_consistent({fb.data, fb.len}, s));
}

TEST(edit_limits, ipv6_udp_checksum_is_always_computed) {
    // RFC 8200 §8.1: a zero UDP checksum is not allowed over IPv6; a frame
    // that arrives with one leaves with a correct one.
    bytes f = make_frame(build(message_type::sync), udp6_spec());
    store_be16(f.data() + 54 + 6, 0);
    owned_frame of(f, 64);
    ptp::frame_buf fb = of.view();
    parsed p = parse_frame(fb);
    EXPECT_TRUE(ptp::udp_checksum_in_use(fb.data, p.fi));
    ptp::auth_params ap;
    ASSERT_EQ(ptp::append_auth_tlv(fb, p.fi, p.mv, ap), error::none);
    ptp::fix_checksums(fb.data, p.fi, true);
    EXPECT_TRUE(frame_consistent({fb.data, fb.len}, udp6_spec()));
}

TEST(edit_limits, computed_zero_udp_checksum_is_sent_as_all_ones) {
    // RFC 768: a checksum that computes to zero is sent as 0xFFFF (zero
    // means "none" over IPv4, and is forbidden over IPv6). Choose two ICV
    // octets so that the sum comes out at exactly that case.
    for (const auto& spec : {udp4_spec(), udp6_spec()}) {
        owned_frame of(make_frame(build(message_type::sync), spec), 64);
        ptp::frame_buf fb = of.view();
        parsed p = parse_frame(fb);
        ptp::auth_params ap;
        ASSERT_EQ(ptp::append_auth_tlv(fb, p.fi, p.mv, ap), error::none);
        const layout l = layout_of(spec);
        uint8_t* icv = fb.data + l.ptp + p.mv.auth.icv_offset;
        ASSERT_EQ((icv - (fb.data + l.l4)) % 2, 0); // a 16-bit word of the sum
        for (size_t i = 0; i < ap.icv_len; ++i) {
            icv[i] = static_cast<uint8_t>(0x3C + i);
        }
        store_be16(icv, 0);
        // reference = ~S (S the sum with the word zero); a word of ~S makes
        // the sum 0xFFFF, whose complement is 0.
        const bool ipv6 = spec.tp == transport::udp_ipv6;
        const uint16_t s0 = static_cast<uint16_t>(~reference_udp_checksum(fb.data + l.l3, fb.data + l.l4, ipv6));
        store_be16(icv, static_cast<uint16_t>(~s0));
        ptp::fix_checksums(fb.data, p.fi, true);
        EXPECT_EQ(load_be16(fb.data + l.l4 + 6), 0xFFFF) << (ipv6 ? "IPv6" : "IPv4");
        EXPECT_TRUE(frame_consistent({fb.data, fb.len}, spec));
    }
}

TEST(edit_limits, strip_drops_padding_after_a_signed_message) {
    // Received frames carry Ethernet padding after the IP datagram or the
    // L2 message, and may carry octets after messageLength in UDP; the
    // stripped frame ends with the message.
    const bytes plain = build(message_type::follow_up, {make_tlv(ptp::default_ticket_tlv_type, pattern(9, 1))});
    const bytes signed_msg = build(message_type::follow_up, {make_tlv(ptp::default_ticket_tlv_type, pattern(9, 1)),
                                                             make_auth_tlv(4, 0, 9, 6 + 16)});
    for (const auto& [name, spec] : transport_specs()) {
        SCOPED_TRACE(name);
        frame_spec padded = spec;
        padded.trailer = 9;
        padded.udp_padding = spec.tp == transport::l2 ? 0 : 5;
        owned_frame of(make_frame(signed_msg, padded), 0);
        ptp::frame_buf fb = of.view();
        parsed p = parse_frame(fb);
        ASSERT_TRUE(p.mv.has_auth);
        ASSERT_EQ(ptp::strip_auth_tlv(fb, p.fi, p.mv), error::none);
        const bytes want = make_frame(plain, spec);
        ASSERT_EQ(fb.len, want.size());
        EXPECT_TRUE(std::equal(want.begin(), want.end(), fb.data));
        EXPECT_TRUE(frame_consistent({fb.data, fb.len}, spec));
    }
}

TEST(edit_limits, already_signed_and_not_signed) {
    const bytes signed_msg = build(message_type::sync, {make_auth_tlv(1, 0, 2, 6 + 16)});
    owned_frame a(make_frame(signed_msg, udp4_spec()), 64);
    ptp::frame_buf fa = a.view();
    parsed pa = parse_frame(fa);
    ptp::auth_params ap;
    EXPECT_EQ(ptp::append_auth_tlv(fa, pa.fi, pa.mv, ap), error::already_signed);
    EXPECT_EQ(fa.len, a.len);
    EXPECT_TRUE(std::equal(a.buf.begin(), a.buf.begin() + a.len, make_frame(signed_msg, udp4_spec()).begin()));

    const bytes plain = make_frame(build(message_type::sync), udp4_spec());
    owned_frame b(plain, 64);
    ptp::frame_buf fbuf = b.view();
    parsed pb = parse_frame(fbuf);
    EXPECT_EQ(ptp::strip_auth_tlv(fbuf, pb.fi, pb.mv), error::not_signed);
    EXPECT_EQ(fbuf.len, plain.size());
    EXPECT_TRUE(std::equal(plain.begin(), plain.end(), fbuf.data));
}

/// A message of exactly `ml` octets: a Sync with one filler TLV.
bytes message_of_length(size_t ml) {
    return build(message_type::sync, {make_tlv(0x2004, bytes(ml - 44 - 4, 0x11))});
}

TEST(edit_limits, message_too_long_near_65535) {
    ptp::auth_params ap; // 26 octets
    struct c {
        std::string name;
        frame_spec spec;
        size_t largest_ok; ///< the largest messageLength that can still be signed
    };
    // L2: messageLength itself (UInteger16). UDPv4: IPv4 total length =
    // 20 + 8 + messageLength.
    const c cases[] = {
        {"l2", frame_spec{}, 0xFFFF - 26},
        {"udp4", udp4_spec(), 0xFFFF - 26 - 28},
    };
    for (const auto& k : cases) {
        for (const size_t ml : {k.largest_ok, k.largest_ok + 1}) {
            const bytes msg = message_of_length(ml);
            ASSERT_EQ(msg.size(), ml);
            const bytes f = make_frame(msg, k.spec);
            owned_frame of(f, 64);
            ptp::frame_buf fb = of.view();
            parsed p = parse_frame(fb);
            const error e = ptp::append_auth_tlv(fb, p.fi, p.mv, ap);
            if (ml == k.largest_ok) {
                EXPECT_EQ(e, error::none) << k.name;
                EXPECT_EQ(load_be16(fb.data + layout_of(k.spec).ptp + 2), 0xFFFF - (k.name == "l2" ? 0 : 28));
            } else {
                EXPECT_EQ(e, error::message_too_long) << k.name;
                EXPECT_EQ(fb.len, f.size());
                EXPECT_TRUE(std::equal(f.begin(), f.end(), fb.data)) << k.name << ": frame changed on failure";
                EXPECT_FALSE(p.mv.has_auth);
            }
        }
    }
}

TEST(edit_limits, checksum_helpers_agree_with_the_reference) {
    for (const auto& [name, spec] : transport_specs()) {
        if (spec.tp == transport::l2) {
            continue;
        }
        for (const auto& c : edit_messages()) {
            const bytes f = make_frame(c.msg, spec);
            ptp::frame_info fi;
            ASSERT_EQ(classify_exact(f, fi), error::none);
            const layout l = layout_of(spec);
            EXPECT_EQ(ptp::compute_udp_checksum(f.data(), fi),
                      reference_udp_checksum(f.data() + l.l3, f.data() + l.l4, spec.tp == transport::udp_ipv6))
                << name << " " << c.name;
            // fix_checksums on a correct frame changes nothing.
            bytes g = f;
            ptp::fix_checksums(g.data(), fi, ptp::udp_checksum_in_use(g.data(), fi));
            EXPECT_EQ(g, f) << name << " " << c.name;
        }
    }
}
TEST(edit_limits, incremental_update_keeps_a_wrong_checksum_wrong) {
    // A frame corrupted before it reached the signer must not leave with
    // checksums that make it look intact.
    for (const auto& spec : {udp4_spec(), udp6_spec()}) {
        owned_frame of(make_frame(build(message_type::sync), spec), 64);
        ptp::frame_buf fb = of.view();
        parsed p = parse_frame(fb);
        const layout l = layout_of(spec);
        fb.data[l.ptp + 40] ^= 0x01; // a body octet, after the checksums were made
        const uint16_t old_ml = p.mv.hdr.messageLength;
        ASSERT_TRUE(ptp::ends_with_message(fb.data, p.fi, old_ml));
        ptp::auth_params ap;
        ptp::pending_auth pa;
        ASSERT_EQ(ptp::append_auth_tlv(fb, p.fi, old_ml, ap, pa), error::none);
        ASSERT_EQ(pa.plan, ptp::checksum_plan::incremental);
        ptp::finish_auth_tlv(fb.data, p.fi, pa);
        const bool ipv6 = spec.tp == transport::udp_ipv6;
        EXPECT_NE(load_be16(fb.data + l.l4 + 6), reference_udp_checksum(fb.data + l.l3, fb.data + l.l4, ipv6));
        fb.data[l.ptp + 40] ^= 0x01; // undo the corruption: now it adds up
        EXPECT_TRUE(frame_consistent({fb.data, fb.len}, spec));
    }
}

TEST(edit_limits, octets_after_the_udp_datagram_force_a_full_sum) {
    // An IP payload longer than its UDP datagram, or a UDP payload longer
    // than messageLength: an edit drops those octets, so the incremental
    // update does not apply.
    const bytes msg = build(message_type::sync);
    bytes f = make_frame(msg, udp4_spec());
    const layout l = layout_of(udp4_spec());
    ptp::frame_info fi;
    ASSERT_EQ(ptp::classify_frame(f.data(), f.size(), fi), error::none);
    EXPECT_TRUE(ptp::ends_with_message(f.data(), fi, static_cast<uint16_t>(msg.size())));
    f.push_back(0);
    f.push_back(0);
    store_be16(f.data() + l.l3 + 2, static_cast<uint16_t>(load_be16(f.data() + l.l3 + 2) + 2));
    ASSERT_EQ(ptp::classify_frame(f.data(), f.size(), fi), error::none);
    EXPECT_FALSE(ptp::ends_with_message(f.data(), fi, static_cast<uint16_t>(msg.size())));
    EXPECT_FALSE(ptp::ends_with_message(f.data(), fi, static_cast<uint16_t>(msg.size() - 2)));
}

TEST(edit_limits, incremental_checksums_match_the_reference) {
    // append_auth_tlv() + finish_auth_tlv() adjust the stored checksums (RFC
    // 1624) when they can, and sum again when they cannot (an odd message
    // length puts the TLV at an odd UDP offset). Over every transport, odd
    // and even message lengths and random ICVs, the result must equal the
    // reference sums and fix_checksums().
    std::mt19937 rng(7);
    for (const auto& [name, spec] : transport_specs()) {
        for (size_t extra = 0; extra < 6; ++extra) {
            SCOPED_TRACE(name + " extra " + std::to_string(extra));
            const bytes msg = build(message_type::signaling, {make_tlv(0x2004, pattern(extra, 3))});
            owned_frame of(make_frame(msg, spec), 64);
            ptp::frame_buf fb = of.view();
            parsed p = parse_frame(fb);
            const bool udp_ck = ptp::udp_checksum_in_use(fb.data, p.fi);
            const uint16_t old_ml = p.mv.hdr.messageLength;
            for (bool with_seqno : {false, true}) {
                owned_frame copy(bytes(fb.data, fb.data + fb.len), 64);
                ptp::frame_buf cb = copy.view();
                parsed cp = parse_frame(cb);
                ptp::auth_params ap;
                ap.with_seqno = with_seqno;
                ap.sequenceNo = rng();
                ptp::pending_auth pa;
                ASSERT_EQ(ptp::append_auth_tlv(cb, cp.fi, old_ml, ap, pa), error::none);
                const ptp::checksum_plan want = spec.tp == transport::l2 || !udp_ck ? ptp::checksum_plan::none
                                                : old_ml % 2 != 0                   ? ptp::checksum_plan::full
                                                                                    : ptp::checksum_plan::incremental;
                EXPECT_EQ(pa.plan, want);
                EXPECT_EQ(cp.fi.ptp_avail, old_ml + ptp::auth_tlv_size(ap));
                for (size_t i = 0; i < ap.icv_len; ++i) {
                    cb.data[cp.fi.ptp_offset + pa.icv_offset + i] = static_cast<uint8_t>(rng());
                }
                bytes full(cb.data, cb.data + cb.len);
                ptp::fix_checksums(full.data(), cp.fi, udp_ck);
                ptp::finish_auth_tlv(cb.data, cp.fi, pa);
                EXPECT_TRUE(frame_consistent({cb.data, cb.len}, spec));
                EXPECT_TRUE(std::equal(full.begin(), full.end(), cb.data));
            }
        }
    }
}

TEST(edit_limits, common_frame_path_matches_the_general_one) {
    // append_auth_tlv() has a short path for untagged IPv4 without options
    // (the lengths' changes are added to the checksums, nothing else is
    // read) and a general one for the rest. The same IPv4 packet behind a
    // VLAN tag takes the general path: after the tag the two frames must be
    // the same, octet for octet, whatever the stored checksums were (right,
    // wrong, 0xFFFF, zero: "none"), the message length, the key and the
    // sequenceNo; and the result must be what the parameters' overload gives.
    std::mt19937 rng(11);
    frame_spec tagged = udp4_spec();
    tagged.vlan_tpids = {ptp::ethertype_vlan};
    const uint16_t stored_checksums[] = {0x0000, 0x0001, 0xFFFE, 0xFFFF, 0x8000};
    for (int round = 0; round < 400; ++round) {
        SCOPED_TRACE(round);
        const size_t extra = 2 * (rng() % 40); // an even message length: the short path's case
        const bytes msg =
            build(message_type::signaling, {make_tlv(0x2004, pattern(extra, static_cast<uint8_t>(round)))});
        bytes plain = make_frame(msg, udp4_spec());
        bytes vlan = make_frame(msg, tagged);
        // Every fourth round the checksums the frame was built with, every
        // other a special value for the UDP one, else random (wrong) ones.
        const bool correct = round % 4 == 0;
        const uint16_t udp_ck = correct          ? load_be16(plain.data() + 34 + 6)
                                : round % 2 != 0 ? stored_checksums[rng() % std::size(stored_checksums)]
                                                 : static_cast<uint16_t>(rng());
        const uint16_t ip_ck = correct ? load_be16(plain.data() + 14 + 10) : static_cast<uint16_t>(rng());
        for (bytes* f : {&plain, &vlan}) {
            const size_t at = f == &vlan ? 4 : 0;
            store_be16(f->data() + at + 14 + 10, ip_ck);
            store_be16(f->data() + at + 34 + 6, udp_ck);
        }
        ptp::auth_params ap;
        ap.spp = static_cast<uint8_t>(rng());
        ap.keyID = static_cast<uint32_t>(rng());
        ap.icv_len = rng() % 2 == 0 ? 16 : 32;
        ap.with_seqno = rng() % 2 == 0;
        ap.sequenceNo = (uint64_t{rng()} << 32) | rng();
        const ptp::auth_tlv_template tpl = ptp::make_auth_tlv_template(ap);
        std::vector<uint8_t> icv(ap.icv_len);
        for (auto& b : icv) {
            b = static_cast<uint8_t>(rng());
        }
        auto sign = [&](const bytes& in, bool with_template) {
            owned_frame of(in, 64);
            ptp::frame_buf fb = of.view();
            parsed p = parse_frame(fb);
            ptp::pending_auth pa;
            const error e = with_template
                                ? ptp::append_auth_tlv(fb, p.fi, p.mv.hdr.messageLength, tpl, ap.sequenceNo, pa)
                                : ptp::append_auth_tlv(fb, p.fi, p.mv.hdr.messageLength, ap, pa);
            EXPECT_EQ(e, error::none);
            EXPECT_EQ(pa.plan, udp_ck == 0 ? ptp::checksum_plan::none : ptp::checksum_plan::incremental);
            std::copy(icv.begin(), icv.end(), fb.data + p.fi.ptp_offset + pa.icv_offset);
            ptp::finish_auth_tlv(fb.data, p.fi, pa);
            return bytes(fb.data, fb.data + fb.len);
        };
        const bytes short_path = sign(plain, true);
        bytes general = sign(vlan, true);
        ASSERT_EQ(general.size(), short_path.size() + 4);
        general.erase(general.begin() + 12, general.begin() + 16); // the tag
        EXPECT_EQ(short_path, general);
        EXPECT_EQ(sign(plain, false), short_path);
        if (correct) {
            EXPECT_TRUE(frame_consistent({short_path.data(), short_path.size()}, udp4_spec()));
        }
    }
}

TEST(edit_limits, checksum_plan_follows_the_frame) {
    // Padding after the message is dropped by the edit: the UDP checksum is
    // summed again, except a zero IPv4 one, which means "none" and stays
    // zero. An IPv6 UDP checksum of zero is forbidden and is replaced.
    struct want_plan {
        const char* name;
        frame_spec spec;
        bool zero_checksum;
        ptp::checksum_plan plan;
    };
    frame_spec padded4 = udp4_spec();
    padded4.udp_padding = 4;
    frame_spec padded4_none = padded4;
    padded4_none.udp4_checksum = false;
    frame_spec trailer6 = udp6_spec();
    trailer6.trailer = 6;
    const std::array<want_plan, 5> cases = {{
        {"udp4", udp4_spec(), false, ptp::checksum_plan::incremental},
        {"udp4 padded", padded4, false, ptp::checksum_plan::full},
        {"udp4 padded, no checksum", padded4_none, false, ptp::checksum_plan::none},
        {"udp6 zero checksum", udp6_spec(), true, ptp::checksum_plan::full},
        {"udp6 Ethernet trailer", trailer6, false, ptp::checksum_plan::incremental},
    }};
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        bytes f = make_frame(build(message_type::sync), c.spec);
        const layout l = layout_of(c.spec);
        if (c.zero_checksum) {
            store_be16(f.data() + l.l4 + 6, 0);
        }
        owned_frame of(f, 64);
        ptp::frame_buf fb = of.view();
        parsed p = parse_frame(fb);
        ptp::auth_params ap;
        ptp::pending_auth pa;
        ASSERT_EQ(ptp::append_auth_tlv(fb, p.fi, p.mv.hdr.messageLength, ap, pa), error::none);
        EXPECT_EQ(pa.plan, c.plan);
        ptp::finish_auth_tlv(fb.data, p.fi, pa);
        frame_spec after = c.spec;
        after.udp_padding = 0;
        after.trailer = 0;
        EXPECT_TRUE(frame_consistent({fb.data, fb.len}, after));
        if (c.spec.tp == transport::udp_ipv4 && !c.spec.udp4_checksum) {
            EXPECT_EQ(load_be16(fb.data + l.l4 + 6), 0);
        } else {
            EXPECT_NE(load_be16(fb.data + l.l4 + 6), 0);
        }
    }
}

// ---------------------------------------------------------------------------
// append_tlv: a TLV before the AUTHENTICATION TLV (the TICKET TLV, seeds/001 §6)

TEST_P(edit, append_tlv_keeps_lengths_and_checksums) {
    // Every edit message (an odd messageLength among them), plain, with an
    // Ethernet trailer and with octets after the message in the UDP payload;
    // values of 0 to 104 octets, and one of odd length (summed again). Then
    // the AUTHENTICATION TLV after it, as the signer appends it.
    const frame_spec base = GetParam().spec;
    std::vector<frame_spec> specs{base, base};
    specs[1].trailer = 6;
    if (base.tp != transport::l2) {
        specs.push_back(base);
        specs.back().udp_padding = 3;
    }
    for (const auto& c : edit_messages()) {
        for (const auto& spec : specs) {
            for (const size_t len : {size_t{0}, size_t{2}, size_t{96}, size_t{104}, size_t{5}}) {
                SCOPED_TRACE(c.name + " value " + std::to_string(len) + " trailer " + std::to_string(spec.trailer) +
                             " udp padding " + std::to_string(spec.udp_padding));
                frame_spec clean = spec;
                clean.trailer = 0;
                clean.udp_padding = 0;
                const bytes value = pattern(len, 0x61);
                owned_frame of(make_frame(c.msg, spec), 256);
                ptp::frame_buf fb = of.view();
                parsed p = parse_frame(fb);
                const uint16_t old_ml = p.mv.hdr.messageLength;
                ASSERT_EQ(ptp::append_tlv(fb, p.fi, old_ml, 0x2015, value), error::none);
                EXPECT_EQ(p.fi.ptp_avail, old_ml + 4 + len);
                EXPECT_TRUE(frame_consistent({fb.data, fb.len}, clean));
                const uint8_t* msg = fb.data + p.fi.ptp_offset;
                EXPECT_TRUE(std::equal(c.msg.begin() + 4, c.msg.end(), msg + 4)) << "the message before it";
                EXPECT_EQ(load_be16(msg + old_ml), 0x2015);
                EXPECT_EQ(load_be16(msg + old_ml + 2), len);
                EXPECT_TRUE(std::equal(value.begin(), value.end(), msg + old_ml + 4));
                parsed again = parse_frame(fb);
                EXPECT_EQ(again.mv.ticket_offset, p.mv.ticket_offset != 0 ? p.mv.ticket_offset : old_ml);
                EXPECT_EQ(again.mv.tlv_count, p.mv.tlv_count + 1);

                ptp::auth_params ap;
                ptp::pending_auth pa;
                ASSERT_EQ(ptp::append_auth_tlv(fb, p.fi, p.fi.ptp_avail, ap, pa), error::none);
                for (size_t i = 0; i < ap.icv_len; ++i) {
                    fb.data[p.fi.ptp_offset + pa.icv_offset + i] = static_cast<uint8_t>(0xA0 + i);
                }
                ptp::finish_auth_tlv(fb.data, p.fi, pa);
                EXPECT_TRUE(frame_consistent({fb.data, fb.len}, clean));
                parsed both = parse_frame(fb);
                EXPECT_TRUE(both.mv.has_auth);
                EXPECT_EQ(both.mv.auth.offset, old_ml + 4 + len);
            }
        }
    }
}

TEST_P(edit, append_tlv_without_room_leaves_the_frame_alone) {
    const frame_spec spec = GetParam().spec;
    const bytes original = make_frame(build(message_type::signaling), spec);
    const bytes value = pattern(96, 3);
    const size_t need = original.size() + 4 + value.size();
    for (const size_t cap : {original.size(), need - 1}) {
        owned_frame of(original, cap - original.size());
        ptp::frame_buf fb = of.view();
        parsed p = parse_frame(fb);
        const ptp::frame_info fi_before = p.fi;
        EXPECT_EQ(ptp::append_tlv(fb, p.fi, p.mv.hdr.messageLength, 0x2015, value), error::no_room) << "cap " << cap;
        EXPECT_EQ(fb.len, original.size());
        EXPECT_TRUE(std::equal(original.begin(), original.end(), fb.data));
        EXPECT_EQ(p.fi.ptp_avail, fi_before.ptp_avail);
    }
    owned_frame exact(original, need - original.size());
    ptp::frame_buf fb = exact.view();
    parsed p = parse_frame(fb);
    EXPECT_EQ(ptp::append_tlv(fb, p.fi, p.mv.hdr.messageLength, 0x2015, value), error::none);
    EXPECT_EQ(fb.len, need);
}

TEST(edit_limits, append_tlv_keeps_a_wrong_checksum_wrong_and_a_zero_one_zero) {
    const bytes value = pattern(96, 9);
    for (const auto& spec : {udp4_spec(), udp6_spec()}) {
        owned_frame of(make_frame(build(message_type::signaling), spec), 256);
        ptp::frame_buf fb = of.view();
        parsed p = parse_frame(fb);
        const layout l = layout_of(spec);
        fb.data[l.ptp + 40] ^= 0x01; // a body octet, after the checksums were made
        ASSERT_EQ(ptp::append_tlv(fb, p.fi, p.mv.hdr.messageLength, 0x2015, value), error::none);
        const bool ipv6 = spec.tp == transport::udp_ipv6;
        EXPECT_NE(load_be16(fb.data + l.l4 + 6), reference_udp_checksum(fb.data + l.l3, fb.data + l.l4, ipv6));
        fb.data[l.ptp + 40] ^= 0x01; // undo the corruption: now it adds up
        EXPECT_TRUE(frame_consistent({fb.data, fb.len}, spec));
    }
    frame_spec none = udp4_spec();
    none.udp4_checksum = false;
    owned_frame of(make_frame(build(message_type::signaling), none), 256);
    ptp::frame_buf fb = of.view();
    parsed p = parse_frame(fb);
    ASSERT_EQ(ptp::append_tlv(fb, p.fi, p.mv.hdr.messageLength, 0x2015, value), error::none);
    EXPECT_EQ(load_be16(fb.data + layout_of(none).l4 + 6), 0);
    EXPECT_TRUE(frame_consistent({fb.data, fb.len}, none));
    // An IPv6 UDP checksum of zero (forbidden) is replaced.
    frame_spec six = udp6_spec();
    bytes f = make_frame(build(message_type::signaling), six);
    store_be16(f.data() + layout_of(six).l4 + 6, 0);
    owned_frame zero(f, 256);
    ptp::frame_buf zb = zero.view();
    parsed zp = parse_frame(zb);
    ASSERT_EQ(ptp::append_tlv(zb, zp.fi, zp.mv.hdr.messageLength, 0x2015, value), error::none);
    EXPECT_TRUE(frame_consistent({zb.data, zb.len}, six));
}

TEST(edit_limits, append_tlv_near_65535_is_message_too_long) {
    // A message whose TLV would take messageLength past 65535: refused,
    // the frame unchanged.
    const bytes msg = build(message_type::signaling, {make_tlv(0x2004, pattern(65000, 1))});
    const bytes original = make_frame(msg, frame_spec{});
    owned_frame of(original, 1024);
    ptp::frame_buf fb = of.view();
    parsed p = parse_frame(fb);
    const bytes value = pattern(600, 2);
    EXPECT_EQ(ptp::append_tlv(fb, p.fi, p.mv.hdr.messageLength, 0x2015, value), error::message_too_long);
    EXPECT_EQ(fb.len, original.size());
    EXPECT_TRUE(std::equal(original.begin(), original.end(), fb.data));
}

} // namespace
} // namespace ptpsec::test
