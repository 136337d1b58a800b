// PTP messages (IEEE 1588-2019 clause 13): header and body layout, TLV
// iteration, the TICKET TLV and every error parse_message() can return. Every
// parse of bad input runs over a heap buffer of exactly the input's size, so
// that the ASan build catches a read past the end.

#include "frame_builder.h"

#include <dataplane/ptp/error.h>
#include <dataplane/ptp/message.h>

#include <gtest/gtest.h>

#include <initializer_list>
#include <limits>
#include <set>
#include <string>

namespace ptpsec::test {
namespace {

using ptp::error;
using ptp::message_type;

/// parse_message() over an exact copy of the first `avail` octets of `msg`.
error parse_exact(const bytes& msg, ptp::message_view& mv, size_t avail, const ptp::wire_options& opt = {}) {
    exact_buffer buf(std::span<const uint8_t>(msg.data(), avail));
    const error e = ptp::parse_message(buf.data(), buf.size(), mv, opt);
    // The view points into the buffer, which goes away: keep only the values.
    mv.data = nullptr;
    return e;
}

error parse_exact(const bytes& msg, const ptp::wire_options& opt = {}) {
    ptp::message_view mv;
    return parse_exact(msg, mv, msg.size(), opt);
}

/// Total message length of each type without TLVs (13.5-13.12, 15.4).
size_t expected_total(message_type t) {
    switch (t) {
    case message_type::sync:
    case message_type::delay_req:
    case message_type::follow_up:
    case message_type::signaling:
        return 44;
    case message_type::pdelay_req:
    case message_type::pdelay_resp:
    case message_type::delay_resp:
    case message_type::pdelay_resp_follow_up:
        return 54;
    case message_type::announce:
        return 64;
    case message_type::management:
        return 48;
    }
    return 0;
}

std::string type_name(const ::testing::TestParamInfo<message_type>& info) {
    return std::string(ptp::message_type_name(info.param));
}

class message_round_trip : public ::testing::TestWithParam<message_type> {};

TEST_P(message_round_trip, build_parse_read_gives_the_input_back) {
    const message_type t = GetParam();
    ptp::header h = sample_header(0xBEEF);
    // Values that need every bit of their field: a sdoId with both parts,
    // a negative correction, a negative interval.
    h.majorSdoId = 0xA;
    h.minorSdoId = 0x5C;
    h.correctionField = -0x123456789AB;
    h.logMessageInterval = -7;
    const ptp::body b = sample_body(t);
    const bytes msg = build(h, b);
    ASSERT_EQ(msg.size(), expected_total(t));
    EXPECT_EQ(ptp::header_len + ptp::body_length(t), expected_total(t));

    ptp::message_view mv;
    exact_buffer buf(msg);
    ASSERT_EQ(ptp::parse_message(buf.data(), buf.size(), mv), error::none);
    ptp::header want = h;
    want.messageType = t;
    want.messageLength = static_cast<uint16_t>(msg.size());
    EXPECT_EQ(mv.hdr, want);
    EXPECT_EQ(mv.hdr.sdo_id(), 0xA5C);
    EXPECT_EQ(mv.tlv_begin, expected_total(t));
    EXPECT_EQ(mv.tlv_count, 0);
    EXPECT_FALSE(mv.has_auth);
    EXPECT_EQ(mv.ticket_offset, 0);

    ptp::body got;
    ptp::read_body(t, buf.data() + ptp::header_len, got);
    EXPECT_EQ(got.index(), b.index());
    EXPECT_TRUE(got == b) << ptp::message_type_name(t) << " body differs after the round trip";
    EXPECT_EQ(ptp::type_of(got), t);

    // write_header/read_header on their own.
    uint8_t raw[ptp::header_len];
    ptp::write_header(want, raw);
    ptp::header back;
    ptp::read_header(raw, back);
    EXPECT_EQ(back, want);
    EXPECT_TRUE(std::equal(raw, raw + ptp::header_len, msg.begin()));
}

TEST_P(message_round_trip, build_refuses_a_short_buffer) {
    const message_type t = GetParam();
    bytes out(expected_total(t));
    const ptp::body b = sample_body(t);
    EXPECT_EQ(ptp::build_message(sample_header(), b, {}, out.data(), out.size() - 1), 0u);
    EXPECT_EQ(ptp::build_message(sample_header(), b, {}, out.data(), out.size()), out.size());
}

TEST_P(message_round_trip, one_octet_short_of_message_length_is_truncated) {
    const message_type t = GetParam();
    const bytes msg = build(t);
    ptp::message_view mv;
    EXPECT_EQ(parse_exact(msg, mv, msg.size() - 1), error::truncated);
    // messageLength one short of the fixed body.
    bytes short_len = msg;
    store_be16(short_len.data() + 2, static_cast<uint16_t>(msg.size() - 1));
    EXPECT_EQ(parse_exact(short_len), error::length_mismatch);
}

INSTANTIATE_TEST_SUITE_P(every_type, message_round_trip, ::testing::ValuesIn(all_message_types), type_name);

// Table 35: the common header, octet by octet.
TEST(header_layout, fields_sit_at_table_35_offsets) {
    ptp::header h;
    h.majorSdoId = 0xA;
    h.minorVersionPTP = 1;
    h.versionPTP = 2;
    h.domainNumber = 0x7E;
    h.minorSdoId = 0x5C;
    h.flagField = 0x0208;
    h.correctionField = 0x0102030405060708;
    h.messageTypeSpecific = 0xDEADBEEF;
    h.sourcePortIdentity = make_port_identity(0x10, 0x0A0B);
    h.sequenceId = 0xBEEF;
    h.controlField = 0x05;
    h.logMessageInterval = -3;
    ptp::sync_body b;
    b.originTimestamp = ptp::timestamp{0x0000A1A2A3A4A5A6ULL, 0xB1B2B3B4};
    const bytes m = build(h, b);
    ASSERT_EQ(m.size(), 44u);

    EXPECT_EQ(m[0], 0xA0); // majorSdoId (high nibble) || messageType Sync
    EXPECT_EQ(m[1], 0x12); // minorVersionPTP 1 || versionPTP 2
    EXPECT_EQ(m[2], 0x00); // messageLength 44
    EXPECT_EQ(m[3], 44);
    EXPECT_EQ(m[4], 0x7E); // domainNumber
    EXPECT_EQ(m[5], 0x5C); // minorSdoId
    EXPECT_EQ(m[6], 0x02); // flagField
    EXPECT_EQ(m[7], 0x08);
    for (size_t i = 0; i < 8; ++i) {
        EXPECT_EQ(m[8 + i], i + 1) << "correctionField octet " << i;
    }
    EXPECT_EQ(load_be32(m.data() + 16), 0xDEADBEEFu); // messageTypeSpecific
    for (size_t i = 0; i < 8; ++i) {
        EXPECT_EQ(m[20 + i], h.sourcePortIdentity.clockIdentity[i]);
    }
    EXPECT_EQ(m[28], 0x0A); // portNumber
    EXPECT_EQ(m[29], 0x0B);
    EXPECT_EQ(m[30], 0xBE); // sequenceId at 30
    EXPECT_EQ(m[31], 0xEF);
    EXPECT_EQ(m[32], 0x05); // controlField
    EXPECT_EQ(m[33], 0xFD); // logMessageInterval -3, two's complement
    // 13.6: originTimestamp, secondsField UInteger48 then nanosecondsField.
    const uint8_t ts[10] = {0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xB1, 0xB2, 0xB3, 0xB4};
    EXPECT_TRUE(std::equal(ts, ts + 10, m.begin() + 34));
}

TEST(header_layout, sdo_id_nibble_split) {
    // 13.3.2.3: sdoId is 12 bits, majorSdoId the high nibble of octet 0 and
    // minorSdoId all of octet 5. The messageType nibble must not leak into it.
    bytes m = build(message_type::announce);
    m[0] = static_cast<uint8_t>(0xF0 | static_cast<uint8_t>(message_type::announce));
    m[5] = 0x81;
    ptp::header h;
    ptp::read_header(m.data(), h);
    EXPECT_EQ(h.majorSdoId, 0xF);
    EXPECT_EQ(h.minorSdoId, 0x81);
    EXPECT_EQ(h.messageType, message_type::announce);
    EXPECT_EQ(h.sdo_id(), 0xF81);
    // Likewise minorVersionPTP and versionPTP share octet 1.
    m[1] = 0xF2;
    ptp::read_header(m.data(), h);
    EXPECT_EQ(h.minorVersionPTP, 0xF);
    EXPECT_EQ(h.versionPTP, 2);
    ptp::message_view mv;
    EXPECT_EQ(parse_exact(m, mv, m.size()), error::none);
}

TEST(header_layout, signed_fields_keep_their_sign) {
    // correctionField is Integer64 and logMessageInterval Integer8 (Table 35).
    struct c {
        int64_t correction;
        int8_t interval;
        uint8_t first_octet;
        uint8_t interval_octet;
    };
    const c cases[] = {
        {-1, -1, 0xFF, 0xFF},
        {std::numeric_limits<int64_t>::min(), std::numeric_limits<int8_t>::min(), 0x80, 0x80},
        {std::numeric_limits<int64_t>::max(), std::numeric_limits<int8_t>::max(), 0x7F, 0x7F},
        {-(int64_t{1} << 16), 0, 0xFF, 0x00},
    };
    for (const auto& k : cases) {
        ptp::header h = sample_header();
        h.correctionField = k.correction;
        h.logMessageInterval = k.interval;
        const bytes m = build(h, ptp::sync_body{});
        EXPECT_EQ(m[8], k.first_octet);
        EXPECT_EQ(m[33], k.interval_octet);
        EXPECT_EQ(static_cast<int64_t>(load_be64(m.data() + 8)), k.correction);
        ptp::header back;
        ptp::read_header(m.data(), back);
        EXPECT_EQ(back.correctionField, k.correction);
        EXPECT_EQ(back.logMessageInterval, k.interval);
    }
}

TEST(body_layout, announce_fields_at_their_offsets) {
    // 13.5.1 Announce message fields, offsets from the start of the message.
    const auto b = std::get<ptp::announce_body>(sample_body(message_type::announce));
    const bytes m = build(message_type::announce);
    ASSERT_EQ(m.size(), 64u);
    EXPECT_EQ(load_be48(m.data() + 34), b.originTimestamp.secondsField);
    EXPECT_EQ(load_be32(m.data() + 40), b.originTimestamp.nanosecondsField);
    EXPECT_EQ(static_cast<int16_t>(load_be16(m.data() + 44)), -37);
    EXPECT_EQ(m[46], 0); // reserved
    EXPECT_EQ(m[47], b.grandmasterPriority1);
    EXPECT_EQ(m[48], b.clockClass);
    EXPECT_EQ(m[49], b.clockAccuracy);
    EXPECT_EQ(load_be16(m.data() + 50), b.offsetScaledLogVariance);
    EXPECT_EQ(m[52], b.grandmasterPriority2);
    EXPECT_TRUE(std::equal(b.grandmasterIdentity.begin(), b.grandmasterIdentity.end(), m.begin() + 53));
    EXPECT_EQ(load_be16(m.data() + 61), b.stepsRemoved);
    EXPECT_EQ(m[63], b.timeSource);
}

TEST(body_layout, port_identity_bodies_and_management) {
    // 13.8 Delay_Resp: receiveTimestamp at 34, requestingPortIdentity at 44.
    const auto d = std::get<ptp::delay_resp_body>(sample_body(message_type::delay_resp));
    const bytes dm = build(message_type::delay_resp);
    EXPECT_EQ(load_be48(dm.data() + 34), d.receiveTimestamp.secondsField);
    EXPECT_TRUE(std::equal(d.requestingPortIdentity.clockIdentity.begin(), d.requestingPortIdentity.clockIdentity.end(),
                           dm.begin() + 44));
    EXPECT_EQ(load_be16(dm.data() + 52), d.requestingPortIdentity.portNumber);

    // 13.12 Signaling: targetPortIdentity at 34.
    const auto s = std::get<ptp::signaling_body>(sample_body(message_type::signaling));
    const bytes sm = build(message_type::signaling);
    EXPECT_EQ(load_be16(sm.data() + 42), s.targetPortIdentity.portNumber);

    // 15.4.1 Management: targetPortIdentity, startingBoundaryHops at 44,
    // boundaryHops at 45, actionField the low nibble of 46, 47 reserved.
    const auto g = std::get<ptp::management_body>(sample_body(message_type::management));
    const bytes mm = build(message_type::management);
    ASSERT_EQ(mm.size(), 48u);
    EXPECT_EQ(load_be16(mm.data() + 42), g.targetPortIdentity.portNumber);
    EXPECT_EQ(mm[44], g.startingBoundaryHops);
    EXPECT_EQ(mm[45], g.boundaryHops);
    EXPECT_EQ(mm[46], g.actionField);
    EXPECT_EQ(mm[47], 0);
    // The reserved high nibble of octet 46 is not part of actionField.
    bytes mm2 = mm;
    mm2[46] = static_cast<uint8_t>(0xF0 | g.actionField);
    ptp::body got;
    ptp::read_body(message_type::management, mm2.data() + ptp::header_len, got);
    EXPECT_EQ(std::get<ptp::management_body>(got).actionField, g.actionField);

    // 13.9.1 Pdelay_Req: originTimestamp then 10 reserved octets, kept.
    const auto p = std::get<ptp::pdelay_req_body>(sample_body(message_type::pdelay_req));
    const bytes pm = build(message_type::pdelay_req);
    EXPECT_TRUE(std::equal(p.reserved.begin(), p.reserved.end(), pm.begin() + 44));
}

TEST(message_types, known_types_event_types_and_names) {
    // Table 36: 0x4-0x7 and 0xE-0xF are reserved.
    std::set<uint8_t> known;
    for (const auto t : all_message_types) {
        known.insert(static_cast<uint8_t>(t));
    }
    for (uint8_t n = 0; n < 16; ++n) {
        EXPECT_EQ(ptp::is_known_message_type(n), known.count(n) == 1) << int{n};
        // The majorSdoId nibble does not change the type.
        EXPECT_EQ(ptp::is_known_message_type(static_cast<uint8_t>(0xF0 | n)), known.count(n) == 1) << int{n};
    }
    EXPECT_TRUE(ptp::is_event_message(message_type::sync));
    EXPECT_TRUE(ptp::is_event_message(message_type::delay_req));
    EXPECT_TRUE(ptp::is_event_message(message_type::pdelay_req));
    EXPECT_TRUE(ptp::is_event_message(message_type::pdelay_resp));
    EXPECT_FALSE(ptp::is_event_message(message_type::follow_up));
    EXPECT_FALSE(ptp::is_event_message(message_type::announce));
    EXPECT_FALSE(ptp::is_event_message(message_type::management));
    EXPECT_EQ(ptp::message_type_name(message_type::pdelay_resp_follow_up), "Pdelay_Resp_Follow_Up");
    EXPECT_EQ(ptp::message_type_name(static_cast<message_type>(5)), "Reserved");
    EXPECT_EQ(ptp::body_length(static_cast<message_type>(0xE)), 0u);
    EXPECT_EQ(ptp::tlv_type_name(ptp::tlv_authentication), "AUTHENTICATION");
    EXPECT_EQ(ptp::tlv_type_name(ptp::default_ticket_tlv_type), "TICKET");
    EXPECT_EQ(ptp::tlv_type_name(0x2020, 0x2020), "TICKET");
    EXPECT_EQ(ptp::tlv_type_name(0x2015, 0x2020), "unknown");
}

TEST(errors, every_error_has_its_own_name_and_text) {
    std::set<std::string_view> names;
    std::set<std::string_view> texts;
    for (size_t i = 0; i < ptp::error_count; ++i) {
        const auto e = static_cast<error>(i);
        EXPECT_NE(ptp::error_name(e), "invalid");
        names.insert(ptp::error_name(e));
        texts.insert(ptp::error_text(e));
    }
    EXPECT_EQ(names.size(), ptp::error_count);
    EXPECT_EQ(texts.size(), ptp::error_count);
    EXPECT_EQ(ptp::error_name(error::tlv_overrun), "tlv_overrun");
    EXPECT_EQ(ptp::error_name(static_cast<error>(ptp::error_count)), "invalid");
}

// ---------------------------------------------------------------------------
// TLVs (14.1, Figure 42).

TEST(tlv_iteration, several_tlvs_with_zero_length_ones) {
    const bytes path_trace = make_tlv(ptp::tlv_path_trace, pattern(16, 1));
    const bytes empty_a = make_tlv(0x2004, {});
    const bytes org = make_tlv(ptp::tlv_organization_extension, pattern(6, 2));
    const bytes empty_b = make_tlv(0x7FFF, {});
    const bytes msg = build(message_type::announce, {path_trace, empty_a, org, empty_b});
    ASSERT_EQ(msg.size(), 64u + 20 + 4 + 10 + 4);

    exact_buffer buf(msg);
    ptp::message_view mv;
    ASSERT_EQ(ptp::parse_message(buf.data(), buf.size(), mv), error::none);
    EXPECT_EQ(mv.tlv_count, 4);
    EXPECT_EQ(mv.tlv_begin, 64);
    EXPECT_FALSE(mv.has_auth);

    struct want {
        uint16_t type;
        uint16_t length;
        uint16_t offset;
    };
    const want w[] = {
        {ptp::tlv_path_trace, 16, 64},
        {0x2004, 0, 84},
        {ptp::tlv_organization_extension, 6, 88},
        {0x7FFF, 0, 98},
    };
    ptp::tlv_iterator it(buf.data(), mv.tlv_begin, mv.hdr.messageLength);
    for (const auto& x : w) {
        ptp::tlv_ref t;
        bool done = true;
        ASSERT_EQ(it.next(t, done), error::none);
        ASSERT_FALSE(done);
        EXPECT_EQ(t.type, x.type);
        EXPECT_EQ(t.length, x.length);
        EXPECT_EQ(t.offset, x.offset);
        EXPECT_EQ(t.value, buf.data() + x.offset + ptp::tlv_header_len);
    }
    ptp::tlv_ref t;
    bool done = false;
    EXPECT_EQ(it.next(t, done), error::none);
    EXPECT_TRUE(done);
    // Once done, it stays done.
    EXPECT_EQ(it.next(t, done), error::none);
    EXPECT_TRUE(done);
}

TEST(tlv_iteration, iterator_stops_at_a_partial_header_or_value) {
    const bytes tlv = make_tlv(ptp::tlv_path_trace, pattern(8, 3));
    for (size_t end = 1; end < tlv.size(); ++end) {
        exact_buffer buf(std::span<const uint8_t>(tlv.data(), end));
        ptp::tlv_iterator it(buf.data(), 0, static_cast<uint16_t>(end));
        ptp::tlv_ref t;
        bool done = false;
        EXPECT_EQ(it.next(t, done), error::tlv_overrun) << "end " << end;
        EXPECT_FALSE(done);
    }
}

TEST(tlv_iteration, messages_ending_with_zero_length_tlv_or_padding) {
    // Octets after messageLength are padding (13.3.2.4) and never parsed,
    // even if they look like a broken TLV.
    bytes msg = build(message_type::sync, {make_tlv(0x2004, {})});
    msg.push_back(0xFF);
    msg.push_back(0xFF);
    msg.push_back(0xFF);
    ptp::message_view mv;
    EXPECT_EQ(parse_exact(msg, mv, msg.size()), error::none);
    EXPECT_EQ(mv.tlv_count, 1);
    EXPECT_EQ(mv.hdr.messageLength, 48);
}

// ---------------------------------------------------------------------------
// parse_message errors, one test per cause.

TEST(parse_errors, fewer_octets_than_the_header_is_truncated) {
    const bytes msg = build(message_type::sync);
    for (size_t n = 0; n < ptp::header_len; ++n) {
        ptp::message_view mv;
        EXPECT_EQ(parse_exact(msg, mv, n), error::truncated) << n << " octets";
    }
}

TEST(parse_errors, message_length_past_the_available_octets_is_truncated) {
    // One TLV, cut anywhere between the end of the body and messageLength.
    const bytes msg = build(message_type::follow_up, {make_tlv(ptp::tlv_path_trace, pattern(8, 4))});
    for (size_t n = ptp::header_len; n < msg.size(); ++n) {
        ptp::message_view mv;
        EXPECT_EQ(parse_exact(msg, mv, n), error::truncated) << n << " octets";
    }
}

TEST(parse_errors, version_other_than_2) {
    bytes msg = build(message_type::sync);
    for (uint8_t v = 0; v < 16; ++v) {
        msg[1] = static_cast<uint8_t>(0x10 | v);
        EXPECT_EQ(parse_exact(msg), v == 2 ? error::none : error::unknown_version) << "versionPTP " << int{v};
    }
    // 13.3.2.4: minorVersionPTP does not make a message unparseable.
    for (uint8_t minor = 0; minor < 16; ++minor) {
        msg[1] = static_cast<uint8_t>(minor << 4 | 2);
        EXPECT_EQ(parse_exact(msg), error::none) << "minorVersionPTP " << int{minor};
    }
}

TEST(parse_errors, reserved_message_types) {
    bytes msg = build(message_type::announce);
    for (const uint8_t t : std::initializer_list<uint8_t>{0x4, 0x5, 0x6, 0x7, 0xE, 0xF}) {
        msg[0] = t;
        EXPECT_EQ(parse_exact(msg), error::unknown_message_type) << "messageType " << int{t};
        msg[0] = static_cast<uint8_t>(0x30 | t); // with a majorSdoId
        EXPECT_EQ(parse_exact(msg), error::unknown_message_type) << "messageType " << int{t};
    }
}

TEST(parse_errors, message_length_below_header_and_body) {
    for (const auto t : all_message_types) {
        bytes msg = build(t);
        // Room for the real body is there: only messageLength is wrong.
        for (const size_t ml : {size_t{0}, size_t{1}, ptp::header_len, expected_total(t) - 1}) {
            store_be16(msg.data() + 2, static_cast<uint16_t>(ml));
            EXPECT_EQ(parse_exact(msg), error::length_mismatch) << ptp::message_type_name(t) << " messageLength " << ml;
        }
    }
}

TEST(parse_errors, partial_tlv_header_overruns) {
    // 1, 2 or 3 octets after the body: not even a TLV header.
    for (size_t extra = 1; extra < ptp::tlv_header_len; ++extra) {
        bytes msg = build(message_type::sync);
        msg.insert(msg.end(), extra, 0x00);
        store_be16(msg.data() + 2, static_cast<uint16_t>(msg.size()));
        EXPECT_EQ(parse_exact(msg), error::tlv_overrun) << extra << " octets";
        // A partial header after a complete TLV as well.
        bytes msg2 = build(message_type::sync, {make_tlv(ptp::tlv_path_trace, pattern(8, 5))});
        msg2.insert(msg2.end(), extra, 0x00);
        store_be16(msg2.data() + 2, static_cast<uint16_t>(msg2.size()));
        EXPECT_EQ(parse_exact(msg2), error::tlv_overrun) << extra << " octets after a TLV";
    }
}

TEST(parse_errors, tlv_value_past_message_length_overruns) {
    bytes msg = build(message_type::delay_req, {make_tlv(ptp::tlv_path_trace, pattern(8, 6))});
    const size_t len_at = 44 + 2;
    for (const uint16_t claimed : {uint16_t{9}, uint16_t{10}, uint16_t{0xFFFF}}) {
        store_be16(msg.data() + len_at, claimed);
        EXPECT_EQ(parse_exact(msg), error::tlv_overrun) << "lengthField " << claimed;
    }
    // The value would fit in the buffer (padding follows) but not within
    // messageLength: still an overrun, messageLength is what counts.
    bytes padded = msg;
    store_be16(padded.data() + len_at, 10);
    padded.insert(padded.end(), 16, 0x00);
    EXPECT_EQ(parse_exact(padded), error::tlv_overrun);
    // An overrun of the AUTHENTICATION TLV itself.
    bytes auth = build(message_type::sync, {make_auth_tlv(1, 0, 1, 6 + 16)});
    store_be16(auth.data() + 44 + 2, 6 + 17);
    EXPECT_EQ(parse_exact(auth), error::tlv_overrun);
}

TEST(parse_errors, any_tlv_after_authentication) {
    // 16.14.1: the AUTHENTICATION TLV is the last TLV of a message.
    const bytes auth = make_auth_tlv(1, 0, 7, 6 + 16);
    const std::vector<bytes> after = {
        make_tlv(ptp::tlv_path_trace, pattern(8, 7)),
        make_tlv(0x2004, {}),
        make_auth_tlv(1, 0, 7, 6 + 16),
        make_tlv(ptp::default_ticket_tlv_type, pattern(12, 8)),
    };
    for (const auto& a : after) {
        const bytes msg = build(message_type::sync, {auth, a});
        EXPECT_EQ(parse_exact(msg), error::tlv_after_auth) << "tlvType " << load_be16(a.data());
    }
}

TEST(parse_errors, authentication_tlv_too_short) {
    // lengthField below spp + secParamIndicator + keyID.
    for (size_t len = 0; len < ptp::auth_fixed_len; ++len) {
        const bytes msg = build(message_type::sync, {make_auth_tlv(1, 0, 7, len)});
        EXPECT_EQ(parse_exact(msg), error::bad_auth_tlv) << "lengthField " << len;
    }
    // sequenceNo announced but no room for its 8 octets.
    for (size_t len = ptp::auth_fixed_len; len < ptp::auth_fixed_len + ptp::auth_seqno_len; ++len) {
        const bytes msg = build(message_type::sync, {make_auth_tlv(1, ptp::sec_param_seqno_present, 7, len)});
        EXPECT_EQ(parse_exact(msg), error::bad_auth_tlv) << "lengthField " << len << " with sequenceNo";
    }
    // Zero-length ICV, with and without sequenceNo.
    EXPECT_EQ(parse_exact(build(message_type::sync, {make_auth_tlv(1, 0, 7, 6)})), error::bad_auth_tlv);
    EXPECT_EQ(parse_exact(build(message_type::sync, {make_auth_tlv(1, ptp::sec_param_seqno_present, 7, 14)})),
              error::bad_auth_tlv);
    // One octet of ICV is well formed (the verifier refuses its length).
    EXPECT_EQ(parse_exact(build(message_type::sync, {make_auth_tlv(1, 0, 7, 7)})), error::none);
}

TEST(parse_errors, disclosed_key_and_res_are_unsupported) {
    // 16.14.3.3: bit 0 announces delayed processing (disclosedKey), bit 2
    // the RES field; the other bits are reserved.
    for (const uint8_t spi : std::initializer_list<uint8_t>{0x01, 0x03, 0x04, 0x06, 0x80, 0xFF}) {
        const bytes msg = build(message_type::sync, {make_auth_tlv(1, spi, 7, 6 + 8 + 16)});
        EXPECT_EQ(parse_exact(msg), error::unsupported_sec_param) << "secParamIndicator " << int{spi};
    }
}

TEST(authentication_tlv, fields_are_decoded) {
    const bytes plain = build(
        message_type::sync, {make_tlv(ptp::tlv_path_trace, pattern(8, 9)), make_auth_tlv(0x42, 0, 0x01020304, 6 + 32)});
    ptp::message_view mv;
    ASSERT_EQ(parse_exact(plain, mv, plain.size()), error::none);
    ASSERT_TRUE(mv.has_auth);
    EXPECT_EQ(mv.tlv_count, 2);
    EXPECT_EQ(mv.auth.offset, 56);
    EXPECT_EQ(mv.auth.length, 38);
    EXPECT_EQ(mv.auth.spp, 0x42);
    EXPECT_EQ(mv.auth.secParamIndicator, 0);
    EXPECT_EQ(mv.auth.keyID, 0x01020304u);
    EXPECT_FALSE(mv.auth.has_seqno);
    EXPECT_EQ(mv.auth.icv_offset, 56 + 4 + 6);
    EXPECT_EQ(mv.auth.icv_len, 32);

    bytes tlv = make_auth_tlv(9, ptp::sec_param_seqno_present, 0xFFFFFFFE, 6 + 8 + 16);
    store_be64(tlv.data() + 10, 0x1122334455667788ULL);
    const bytes seq = build(message_type::follow_up, {tlv});
    ASSERT_EQ(parse_exact(seq, mv, seq.size()), error::none);
    ASSERT_TRUE(mv.has_auth);
    EXPECT_TRUE(mv.auth.has_seqno);
    EXPECT_EQ(mv.auth.sequenceNo, 0x1122334455667788ULL);
    EXPECT_EQ(mv.auth.keyID, 0xFFFFFFFEu);
    EXPECT_EQ(mv.auth.icv_offset, 44 + 4 + 6 + 8);
    EXPECT_EQ(mv.auth.icv_len, 16);
}

// ---------------------------------------------------------------------------
// TICKET TLV (seeds/001 §6).

TEST(ticket_tlv, found_with_the_default_type) {
    const bytes path_trace = make_tlv(ptp::tlv_path_trace, pattern(8, 10));
    const bytes ticket = make_tlv(ptp::default_ticket_tlv_type, pattern(40, 11));
    const bytes msg = build(message_type::announce, {path_trace, ticket, make_auth_tlv(2, 0, 1, 6 + 16)});
    ptp::message_view mv;
    ASSERT_EQ(parse_exact(msg, mv, msg.size()), error::none);
    EXPECT_EQ(mv.ticket_offset, 64 + path_trace.size());
    EXPECT_TRUE(mv.has_auth); // TICKET before AUTHENTICATION is fine
    EXPECT_EQ(mv.tlv_count, 3);
    EXPECT_EQ(mv.auth.offset, 64 + path_trace.size() + ticket.size());

    // Without AUTHENTICATION, and as the only TLV.
    const bytes alone = build(message_type::sync, {ticket});
    ASSERT_EQ(parse_exact(alone, mv, alone.size()), error::none);
    EXPECT_EQ(mv.ticket_offset, 44);
    EXPECT_FALSE(mv.has_auth);
}

TEST(ticket_tlv, found_with_a_custom_type_only) {
    ptp::wire_options opt;
    opt.ticket_tlv_type = 0x2020;
    const bytes default_typed = make_tlv(ptp::default_ticket_tlv_type, pattern(8, 12));
    const bytes custom = make_tlv(0x2020, pattern(24, 13));
    const bytes msg = build(message_type::delay_resp, {default_typed, custom, make_auth_tlv(2, 0, 1, 6 + 16)});
    ptp::message_view mv;
    ASSERT_EQ(parse_exact(msg, mv, msg.size(), opt), error::none);
    EXPECT_EQ(mv.ticket_offset, 54 + default_typed.size());
    EXPECT_TRUE(mv.has_auth);
    // With the default options the first TLV is the TICKET.
    ASSERT_EQ(parse_exact(msg, mv, msg.size()), error::none);
    EXPECT_EQ(mv.ticket_offset, 54);
}

TEST(ticket_tlv, first_of_two_is_taken) {
    const bytes t1 = make_tlv(ptp::default_ticket_tlv_type, pattern(8, 14));
    const bytes t2 = make_tlv(ptp::default_ticket_tlv_type, pattern(8, 15));
    const bytes msg = build(message_type::sync, {t1, t2});
    ptp::message_view mv;
    ASSERT_EQ(parse_exact(msg, mv, msg.size()), error::none);
    EXPECT_EQ(mv.ticket_offset, 44);
    EXPECT_EQ(mv.tlv_count, 2);
}

TEST(ticket_tlv, after_authentication_is_rejected) {
    const bytes ticket = make_tlv(0x2020, pattern(8, 16));
    const bytes msg = build(message_type::sync, {make_auth_tlv(2, 0, 1, 6 + 16), ticket});
    ptp::wire_options opt;
    opt.ticket_tlv_type = 0x2020;
    EXPECT_EQ(parse_exact(msg, opt), error::tlv_after_auth);
    EXPECT_EQ(parse_exact(msg), error::tlv_after_auth);
}

TEST(ticket_tlv, no_ticket_means_offset_zero) {
    const bytes msg = build(message_type::sync, {make_tlv(ptp::tlv_path_trace, pattern(8, 17))});
    ptp::message_view mv;
    ASSERT_EQ(parse_exact(msg, mv, msg.size()), error::none);
    EXPECT_EQ(mv.ticket_offset, 0);
}

} // namespace
} // namespace ptpsec::test
