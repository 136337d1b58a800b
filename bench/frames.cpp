#include <bench/frames.h>

#include <drivers/base/bytes.h>

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <span>

namespace ptpsec::bench {

namespace {

constexpr size_t ipv4_header_len = 20;
constexpr size_t sync_message_len = ptp::header_len + 10;      // 13.6: originTimestamp
constexpr size_t signaling_message_len = ptp::header_len + 10; // 13.12: targetPortIdentity
/// ORGANIZATION_EXTENSION (14.3): organizationId (3) and organizationSubType (3)
/// come before any data.
constexpr size_t org_tlv_min_value = 6;

/// 224.0.1.129, the PTP primary multicast address (Annex C), and its MAC.
constexpr std::array<uint8_t, 4> ptp_primary_ip = {224, 0, 1, 129};
constexpr std::array<uint8_t, 6> ptp_primary_mac = {0x01, 0x00, 0x5E, 0x00, 0x01, 0x81};
constexpr std::array<uint8_t, 6> source_mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
constexpr std::array<uint8_t, 4> source_ip = {192, 0, 2, 1}; // RFC 5737 TEST-NET-1

ptp::header make_header(uint16_t sequence_id) {
    ptp::header h;
    h.domainNumber = 0;
    h.flagField = 0x0200; // twoStepFlag (Table 37)
    h.correctionField = 0x12345;
    h.sourcePortIdentity.clockIdentity = {0x00, 0x1B, 0x19, 0xFF, 0xFE, 0x00, 0x00, 0x01};
    h.sourcePortIdentity.portNumber = 1;
    h.sequenceId = sequence_id;
    h.logMessageInterval = -3;
    return h;
}

} // namespace

size_t build_udp4_ptp_frame(uint16_t message_len, uint16_t sequence_id, uint8_t* out, size_t cap, std::string& why) {
    const size_t ptp_at = ptp::ethernet_header_len + ipv4_header_len + ptp::udp_header_len;
    if (cap < ptp_at + message_len) {
        why = fmt::format("a {}-octet message does not fit a {}-octet buffer", message_len, cap);
        return 0;
    }
    const ptp::header h = make_header(sequence_id);
    size_t ml = 0;
    uint16_t port = ptp::udp_port_general;
    if (message_len == sync_message_len) {
        ptp::sync_body b;
        b.originTimestamp = {1700000000, 123456789};
        ml = ptp::build_message(h, b, {}, out + ptp_at, cap - ptp_at);
        port = ptp::udp_port_event;
    } else {
        // 14.1.1: lengthField is even, so only even message lengths can be
        // made up with one TLV.
        if (message_len < signaling_message_len + ptp::tlv_header_len + org_tlv_min_value || message_len % 2 != 0) {
            why = fmt::format("no Signaling message is {} octets long", message_len);
            return 0;
        }
        const size_t value_len = message_len - signaling_message_len - ptp::tlv_header_len;
        std::vector<uint8_t> tlv(ptp::tlv_header_len + value_len);
        store_be16(tlv.data(), ptp::tlv_organization_extension);
        store_be16(tlv.data() + 2, static_cast<uint16_t>(value_len));
        const std::array<uint8_t, org_tlv_min_value> org = {0x00, 0x1B, 0x19, 0x00, 0x00, 0x01};
        std::memcpy(tlv.data() + ptp::tlv_header_len, org.data(), org.size());
        for (size_t i = org.size(); i < value_len; ++i) {
            tlv[ptp::tlv_header_len + i] = static_cast<uint8_t>(i * 7 + 1);
        }
        ptp::signaling_body b;
        b.targetPortIdentity.clockIdentity.fill(0xFF);
        b.targetPortIdentity.portNumber = 0xFFFF;
        const std::array<std::span<const uint8_t>, 1> tlvs = {std::span<const uint8_t>(tlv)};
        ml = ptp::build_message(h, b, tlvs, out + ptp_at, cap - ptp_at);
    }
    if (ml != message_len) {
        why = fmt::format("built a {}-octet message, wanted {}", ml, message_len);
        return 0;
    }

    uint8_t* eth = out;
    std::memcpy(eth, ptp_primary_mac.data(), ptp_primary_mac.size());
    std::memcpy(eth + 6, source_mac.data(), source_mac.size());
    store_be16(eth + 12, ptp::ethertype_ipv4);

    uint8_t* ip = out + ptp::ethernet_header_len;
    ip[0] = 0x45; // version 4, IHL 5
    ip[1] = 0;
    store_be16(ip + 2, static_cast<uint16_t>(ipv4_header_len + ptp::udp_header_len + ml));
    store_be16(ip + 4, sequence_id); // identification
    store_be16(ip + 6, 0x4000);      // don't fragment
    ip[8] = 1;                       // TTL: PTP multicast stays on the link
    ip[9] = 17;                      // UDP
    store_be16(ip + 10, 0);
    std::memcpy(ip + 12, source_ip.data(), source_ip.size());
    std::memcpy(ip + 16, ptp_primary_ip.data(), ptp_primary_ip.size());

    uint8_t* udp = ip + ipv4_header_len;
    store_be16(udp, port);
    store_be16(udp + 2, port);
    store_be16(udp + 4, static_cast<uint16_t>(ptp::udp_header_len + ml));
    store_be16(udp + 6, 1); // any non-zero value: "checksum in use"

    const size_t len = ptp_at + ml;
    ptp::frame_info fi;
    if (const ptp::error e = ptp::classify_frame(out, len, fi); e != ptp::error::none) {
        why = fmt::format("built frame does not classify: {}", ptp::error_text(e));
        return 0;
    }
    ptp::fix_checksums(out, fi, true);
    ptp::message_view mv;
    if (const ptp::error e = ptp::parse_message(out + fi.ptp_offset, fi.ptp_avail, mv); e != ptp::error::none) {
        why = fmt::format("built message does not parse: {}", ptp::error_text(e));
        return 0;
    }
    if (fi.tp != ptp::transport::udp_ipv4 || mv.hdr.messageLength != message_len || mv.has_auth ||
        !ptp::udp_checksum_in_use(out, fi) || ptp::compute_udp_checksum(out, fi) != load_be16(udp + 6)) {
        why = "built frame is not the unsigned UDPv4 frame intended";
        return 0;
    }
    return len;
}

frame_burst::frame_burst(uint16_t message_len, uint16_t burst)
    : _templates(burst), _slots(burst), _template_len(burst), _frames(burst) {
    for (uint16_t i = 0; i < burst; ++i) {
        const size_t len = build_udp4_ptp_frame(message_len, static_cast<uint16_t>(1000 + i), _templates[i].bytes,
                                                frame_slot_size, _error);
        if (len == 0) {
            return;
        }
        _template_len[i] = static_cast<uint32_t>(len);
        _frames[i] = ptp::frame_buf{_slots[i].bytes, static_cast<uint32_t>(len), frame_slot_size};
    }
    copy_templates();
}

} // namespace ptpsec::bench
