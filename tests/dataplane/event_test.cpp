// Timing-event records (dataplane/event.h): the SHA-256 path against the
// FIPS 180-4 examples, every record field against the message it came from,
// the digest against OpenSSL's SHA-256 of the message with correctionField
// zeroed (OpenSSL is linked here as an independent reference only; the data
// plane does not use it), the message left as it was, the type mask, and
// bursts of several sizes on every intel-ipsec-mb manager this CPU runs.
// Messages sit in heap buffers of exactly their size, so that the ASan build
// catches a read past messageLength.

#include "frame_builder.h"

#include <dataplane/event.h>
#include <drivers/base/bytes.h>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::test {
namespace {

using ptp::message_type;

std::string hex(std::span<const uint8_t> b) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (const uint8_t x : b) {
        s += digits[x >> 4];
        s += digits[x & 0x0F];
    }
    return s;
}

/// SHA-256 by OpenSSL, independent of intel-ipsec-mb.
std::string openssl_sha256(std::span<const uint8_t> m) {
    std::array<uint8_t, EVP_MAX_MD_SIZE> d{};
    unsigned int len = 0;
    EXPECT_EQ(EVP_Digest(m.data(), m.size(), d.data(), &len, EVP_sha256(), nullptr), 1);
    EXPECT_EQ(len, event_digest_len);
    return hex({d.data(), len});
}

/// What the record's digest must be: SHA-256 of the message with octets
/// 8-15 (correctionField) set to zero.
std::string reference_digest(const bytes& msg) {
    bytes z = msg;
    std::fill_n(z.begin() + ptp::correction_offset, ptp::correction_len, 0);
    return openssl_sha256(z);
}

std::vector<icv::imb_arch> supported_archs() {
    std::vector<icv::imb_arch> v;
    for (auto a : {icv::imb_arch::sse, icv::imb_arch::avx, icv::imb_arch::avx2, icv::imb_arch::avx512}) {
        if (icv::arch_supported(a)) {
            v.push_back(a);
        }
    }
    return v;
}

std::string arch_label(const testing::TestParamInfo<icv::imb_arch>& p) {
    return std::string(icv::arch_name(p.param));
}

/// A message whose header fields are all set and whose correctionField is
/// not zero; `tlv_len` octets of TLV make lengths vary across SHA-256 block
/// boundaries.
bytes make_message(message_type t, uint16_t seq, int64_t correction, size_t tlv_len = 0, uint8_t seed = 0x10) {
    ptp::header h = sample_header(seq);
    h.majorSdoId = static_cast<uint8_t>(seed & 0x0F);
    h.minorSdoId = static_cast<uint8_t>(seed * 3);
    h.domainNumber = static_cast<uint8_t>(seed + 1);
    h.correctionField = correction;
    h.sourcePortIdentity = make_port_identity(seed, static_cast<uint16_t>(0x100 + seed));
    std::vector<bytes> tlvs;
    if (tlv_len >= ptp::tlv_header_len) {
        tlvs.push_back(make_tlv(ptp::tlv_path_trace, pattern(tlv_len - ptp::tlv_header_len, seed)));
    }
    bytes m = build(h, sample_body(t), tlvs);
    EXPECT_FALSE(m.empty());
    return m;
}

/// Messages in exact heap buffers, parsed as the data plane would before it
/// records them.
struct message_set {
    std::vector<bytes> originals;
    std::vector<std::unique_ptr<exact_buffer>> buffers;

    void add(const bytes& m) {
        ptp::message_view mv;
        EXPECT_EQ(ptp::parse_message(m.data(), m.size(), mv), ptp::error::none);
        originals.push_back(m);
        buffers.push_back(std::make_unique<exact_buffer>(m));
    }

    event_input input(size_t i, event_direction dir = event_direction::rx, uint16_t port = 0, uint64_t ts = 0,
                      uint8_t flags = 0) const {
        event_input e;
        e.msg = buffers[i]->data();
        e.len = static_cast<uint16_t>(buffers[i]->size());
        e.direction = dir;
        e.port_id = port;
        e.timestamp_ns = ts;
        e.flags = flags;
        return e;
    }

    ::testing::AssertionResult unchanged() const {
        for (size_t i = 0; i < originals.size(); ++i) {
            if (!std::equal(originals[i].begin(), originals[i].end(), buffers[i]->data())) {
                return ::testing::AssertionFailure() << "message " << i << " was changed";
            }
        }
        return ::testing::AssertionSuccess();
    }
};

event_recorder make_recorder(event_mask mask = event_mask::timing()) {
    auto r = event_recorder::create(mask);
    EXPECT_TRUE(r) << r.message();
    return std::move(r).value();
}

// ---------------------------------------------------------------------------
// The SHA-256 path itself.

struct kat {
    const char* name;
    std::string message;
    const char* digest;
};

/// FIPS 180-4 example messages (NIST CSRC "Examples with intermediate
/// values", SHA256.pdf and SHA256_LongMessage), plus the empty message of the
/// NIST SHAVS short-message file (Len = 0).
std::vector<kat> fips_180_4_examples() {
    return {
        {"one block", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"two blocks", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"one million a", std::string(1'000'000, 'a'),
         "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
        {"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    };
}

class sha256_path : public testing::TestWithParam<icv::imb_arch> {};

TEST_P(sha256_path, fips_180_4_known_answers) {
    auto h = sha256_hasher::create(GetParam());
    ASSERT_TRUE(h) << h.message();
    EXPECT_EQ(h->arch(), GetParam());
    const auto kats = fips_180_4_examples();
    std::vector<std::array<uint8_t, event_digest_len>> out(kats.size());
    std::vector<sha256_request> reqs(kats.size());
    for (size_t i = 0; i < kats.size(); ++i) {
        // The empty message once with a null pointer, as callers may pass it.
        const auto* data = reinterpret_cast<const uint8_t*>(kats[i].message.data());
        reqs[i] = {.data = kats[i].message.empty() ? nullptr : data,
                   .digest = out[i].data(),
                   .len = static_cast<uint32_t>(kats[i].message.size())};
    }
    ASSERT_EQ(h->hash_burst(reqs.data(), static_cast<uint16_t>(reqs.size())), kats.size());
    for (size_t i = 0; i < kats.size(); ++i) {
        SCOPED_TRACE(kats[i].name);
        EXPECT_TRUE(reqs[i].done);
        EXPECT_EQ(hex(out[i]), kats[i].digest);
    }
    // One at a time as well: a burst of one takes the same path.
    for (size_t i = 0; i < kats.size(); ++i) {
        SCOPED_TRACE(kats[i].name);
        std::array<uint8_t, event_digest_len> one{};
        sha256_request r{.data = reinterpret_cast<const uint8_t*>(kats[i].message.data()),
                         .digest = one.data(),
                         .len = static_cast<uint32_t>(kats[i].message.size())};
        ASSERT_EQ(h->hash_burst(&r, 1), 1);
        EXPECT_EQ(hex(one), kats[i].digest);
    }
}

TEST_P(sha256_path, matches_openssl_for_every_length_around_the_block_boundaries) {
    auto h = sha256_hasher::create(GetParam());
    ASSERT_TRUE(h) << h.message();
    // 0..200 octets: every padding case of one to four blocks; 201 requests
    // also cross the 64-job split of hash_burst().
    std::vector<bytes> msgs;
    for (size_t len = 0; len <= 200; ++len) {
        msgs.push_back(pattern(len, static_cast<uint8_t>(len)));
    }
    std::vector<std::array<uint8_t, event_digest_len>> out(msgs.size());
    std::vector<sha256_request> reqs(msgs.size());
    for (size_t i = 0; i < msgs.size(); ++i) {
        reqs[i] = {.data = msgs[i].data(), .digest = out[i].data(), .len = static_cast<uint32_t>(msgs[i].size())};
    }
    ASSERT_EQ(h->hash_burst(reqs.data(), static_cast<uint16_t>(reqs.size())), msgs.size());
    for (size_t i = 0; i < msgs.size(); ++i) {
        EXPECT_EQ(hex(out[i]), openssl_sha256(msgs[i])) << "length " << i;
    }
}

TEST_P(sha256_path, messages_longer_than_a_job_may_be) {
    // intel-ipsec-mb jobs stop at 65534 octets; a PTP message may have 65535.
    auto h = sha256_hasher::create(GetParam());
    ASSERT_TRUE(h) << h.message();
    const std::array<size_t, 4> lengths = {65533, 65534, 65535, 100'000};
    std::vector<bytes> msgs;
    msgs.reserve(lengths.size() + 1);
    for (const size_t len : lengths) {
        msgs.push_back(pattern(len, static_cast<uint8_t>(len)));
    }
    msgs.push_back(pattern(60, 1)); // and a short one in the same burst
    std::vector<std::array<uint8_t, event_digest_len>> out(msgs.size());
    std::vector<sha256_request> reqs(msgs.size());
    for (size_t i = 0; i < msgs.size(); ++i) {
        reqs[i] = {.data = msgs[i].data(), .digest = out[i].data(), .len = static_cast<uint32_t>(msgs[i].size())};
    }
    ASSERT_EQ(h->hash_burst(reqs.data(), static_cast<uint16_t>(reqs.size())), msgs.size());
    for (size_t i = 0; i < msgs.size(); ++i) {
        EXPECT_TRUE(reqs[i].done);
        EXPECT_EQ(hex(out[i]), openssl_sha256(msgs[i])) << "length " << msgs[i].size();
    }
}

TEST_P(sha256_path, an_invalid_request_fails_alone) {
    auto h = sha256_hasher::create(GetParam());
    ASSERT_TRUE(h) << h.message();
    const bytes m = pattern(100, 1);
    std::array<std::array<uint8_t, event_digest_len>, 4> out{};
    std::array<sha256_request, 4> reqs = {{
        {.data = m.data(), .digest = out[0].data(), .len = 100},
        {.data = m.data(), .digest = nullptr, .len = 100},     // nowhere to put the digest
        {.data = nullptr, .digest = out[2].data(), .len = 10}, // octets that are not there
        {.data = m.data(), .digest = out[3].data(), .len = 50},
    }};
    EXPECT_EQ(h->hash_burst(reqs.data(), 4), 2);
    EXPECT_TRUE(reqs[0].done);
    EXPECT_FALSE(reqs[1].done);
    EXPECT_FALSE(reqs[2].done);
    EXPECT_TRUE(reqs[3].done);
    EXPECT_EQ(hex(out[0]), openssl_sha256(m));
    EXPECT_EQ(hex(out[3]), openssl_sha256(std::span<const uint8_t>(m.data(), 50)));
    EXPECT_EQ(hex(out[2]), std::string(64, '0'));
}

INSTANTIATE_TEST_SUITE_P(managers, sha256_path, testing::ValuesIn(supported_archs()), arch_label);

TEST(sha256_path_default, uses_the_hmac_manager_of_this_cpu) {
    auto h = sha256_hasher::create();
    ASSERT_TRUE(h) << h.message();
    EXPECT_EQ(h->arch(), icv::default_arch_plan()[static_cast<size_t>(icv::algorithm::hmac_sha256)]);
}

// ---------------------------------------------------------------------------
// The record.

TEST(event_record, octets_sit_where_the_layout_says) {
    event_record r{};
    r.version = event_record_version;
    r.direction = event_direction::tx;
    r.messageType = 0x8;
    r.domainNumber = 0x2A;
    r.sdoId = 0x0A5C;
    r.port_id = 0x0102;
    r.timestamp_ns = 0x1122334455667788ULL;
    r.correctionField = -2;
    for (size_t i = 0; i < r.sourcePortIdentity.size(); ++i) {
        r.sourcePortIdentity[i] = static_cast<uint8_t>(0xC0 + i);
    }
    r.sequenceId = 0xBEEF;
    r.messageLength = 44;
    r.flagField = 0x0208;
    r.flags = event_flag_hw_timestamp;
    for (size_t i = 0; i < r.digest.size(); ++i) {
        r.digest[i] = static_cast<uint8_t>(i);
    }
    std::array<uint8_t, sizeof(event_record)> o{};
    std::memcpy(o.data(), &r, sizeof(r));
    EXPECT_EQ(o.size(), 96U);
    EXPECT_EQ(o[0], event_record_version);
    EXPECT_EQ(o[1], 1); // tx
    EXPECT_EQ(o[2], 0x8);
    EXPECT_EQ(o[3], 0x2A);
    // Integers in host order: compare with the host's own encoding.
    auto host = [&o](size_t off, auto v) { return std::memcmp(o.data() + off, &v, sizeof(v)) == 0; };
    EXPECT_TRUE(host(4, uint16_t{0x0A5C}));
    EXPECT_TRUE(host(6, uint16_t{0x0102}));
    EXPECT_TRUE(host(8, uint64_t{0x1122334455667788ULL}));
    EXPECT_TRUE(host(16, int64_t{-2}));
    for (size_t i = 0; i < 10; ++i) {
        EXPECT_EQ(o[24 + i], 0xC0 + i);
    }
    EXPECT_TRUE(host(34, uint16_t{0xBEEF}));
    EXPECT_TRUE(host(36, uint16_t{44}));
    EXPECT_TRUE(host(38, uint16_t{0x0208}));
    EXPECT_EQ(o[40], event_flag_hw_timestamp);
    EXPECT_TRUE(std::all_of(o.begin() + 41, o.begin() + 64, [](uint8_t b) { return b == 0; }));
    for (size_t i = 0; i < 32; ++i) {
        EXPECT_EQ(o[64 + i], i);
    }
}

TEST(event_recorder, every_field_of_the_record) {
    ptp::header h = sample_header(0xBEEF);
    h.majorSdoId = 0xA;
    h.minorSdoId = 0x5C;
    h.domainNumber = 0x7F;
    h.flagField = 0x0208;
    h.correctionField = -0x123456789AB;
    h.sourcePortIdentity = make_port_identity(0x31, 0x1234);
    const bytes msg = build(h, sample_body(message_type::pdelay_resp), {make_tlv(ptp::tlv_path_trace, pattern(16, 9))});
    message_set ms;
    ms.add(msg);

    event_recorder rec = make_recorder();
    event_record out{};
    const event_input in = ms.input(0, event_direction::tx, 3, 0x1122334455667788ULL, event_flag_hw_timestamp);
    ASSERT_EQ(rec.record_burst(&in, 1, &out), 1);

    EXPECT_EQ(out.version, event_record_version);
    EXPECT_EQ(out.direction, event_direction::tx);
    EXPECT_EQ(out.messageType, static_cast<uint8_t>(message_type::pdelay_resp));
    EXPECT_EQ(out.domainNumber, 0x7F);
    EXPECT_EQ(out.sdoId, 0x0A5C);
    EXPECT_EQ(out.port_id, 3);
    EXPECT_EQ(out.timestamp_ns, 0x1122334455667788ULL);
    EXPECT_EQ(out.correctionField, -0x123456789AB);
    EXPECT_TRUE(std::equal(out.sourcePortIdentity.begin(), out.sourcePortIdentity.end(),
                           msg.begin() + ptp::source_port_identity_offset));
    EXPECT_EQ(load_be16(out.sourcePortIdentity.data() + 8), 0x1234);
    EXPECT_EQ(out.sequenceId, 0xBEEF);
    EXPECT_EQ(out.messageLength, msg.size());
    EXPECT_EQ(out.messageLength, 54U + 20U);
    EXPECT_EQ(out.flagField, 0x0208);
    EXPECT_EQ(out.flags, event_flag_hw_timestamp);
    EXPECT_TRUE(std::all_of(out.reserved.begin(), out.reserved.end(), [](uint8_t b) { return b == 0; }));
    EXPECT_EQ(hex(out.digest), reference_digest(msg));
    EXPECT_TRUE(ms.unchanged());
    EXPECT_EQ(rec.stats().recorded, 1U);
}

TEST(event_recorder, digest_leaves_out_correction_field_and_the_message_is_unchanged) {
    // A transparent clock changes correctionField in flight (a residence
    // time added): the digest must not change with it.
    const std::array<int64_t, 4> corrections = {0x0000000012345678, -1, INT64_MIN, 0x7FFFFFFFFFFFFFFF};
    message_set ms;
    for (const auto t : all_message_types) {
        for (const int64_t c : corrections) {
            ms.add(make_message(t, 7, c));
        }
    }
    event_recorder rec = make_recorder(event_mask::all());
    std::vector<event_input> in;
    for (size_t i = 0; i < ms.originals.size(); ++i) {
        in.push_back(ms.input(i));
    }
    std::vector<event_record> out(in.size());
    ASSERT_EQ(rec.record_burst(in.data(), static_cast<uint16_t>(in.size()), out.data()), in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        SCOPED_TRACE(i);
        const bytes& m = ms.originals[i];
        EXPECT_EQ(hex(out[i].digest), reference_digest(m));
        EXPECT_NE(hex(out[i].digest), openssl_sha256(m)) << "correctionField was hashed";
        EXPECT_EQ(out[i].correctionField, static_cast<int64_t>(load_be64(m.data() + ptp::correction_offset)));
        // Every correction of one message gives one digest.
        EXPECT_EQ(out[i].digest, out[i - i % corrections.size()].digest);
    }
    EXPECT_TRUE(ms.unchanged());
}

TEST(event_recorder, the_longest_messages_are_recorded) {
    // messageLength is 16 bits: 65535 octets is a valid message.
    message_set ms;
    for (const size_t total : {size_t{65534}, size_t{65535}}) {
        const size_t value_len = total - 44 - ptp::tlv_header_len; // a Sync is 44 octets
        ms.add(build(sample_header(), sample_body(message_type::sync),
                     {make_tlv(ptp::tlv_path_trace, pattern(value_len, 5))}));
        EXPECT_EQ(ms.originals.back().size(), total);
    }
    event_recorder rec = make_recorder();
    const std::array<event_input, 2> in = {ms.input(0), ms.input(1)};
    std::array<event_record, 2> out{};
    ASSERT_EQ(rec.record_burst(in.data(), 2, out.data()), 2);
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(out[i].messageLength, ms.originals[i].size());
        EXPECT_EQ(hex(out[i].digest), reference_digest(ms.originals[i]));
    }
    EXPECT_TRUE(ms.unchanged());
}

TEST(event_recorder, a_message_listed_twice_is_restored) {
    // The rx and the tx record of one forwarded frame, from one buffer.
    message_set ms;
    ms.add(make_message(message_type::sync, 1, 0x0102030405060708));
    ms.add(make_message(message_type::follow_up, 2, -77));
    event_recorder rec = make_recorder();
    const std::array<event_input, 4> in = {ms.input(0, event_direction::rx, 0), ms.input(1, event_direction::rx, 0),
                                           ms.input(0, event_direction::tx, 1), ms.input(0, event_direction::tx, 2)};
    std::array<event_record, 4> out{};
    ASSERT_EQ(rec.record_burst(in.data(), 4, out.data()), 4);
    EXPECT_TRUE(ms.unchanged());
    for (const size_t i : {size_t{0}, size_t{2}, size_t{3}}) {
        EXPECT_EQ(out[i].correctionField, 0x0102030405060708);
        EXPECT_EQ(hex(out[i].digest), reference_digest(ms.originals[0]));
    }
    EXPECT_EQ(out[1].correctionField, -77);
    EXPECT_EQ(out[2].direction, event_direction::tx);
    EXPECT_EQ(out[3].port_id, 2);
}

// ---------------------------------------------------------------------------
// The mask.

TEST(event_mask, default_selects_the_timing_messages) {
    const event_mask m = event_mask::timing();
    for (const auto t : all_message_types) {
        const bool want = t == message_type::sync || t == message_type::delay_req || t == message_type::pdelay_req ||
                          t == message_type::pdelay_resp || t == message_type::follow_up ||
                          t == message_type::pdelay_resp_follow_up;
        EXPECT_EQ(m.selects(t), want) << ptp::message_type_name(t);
    }
    EXPECT_EQ(m.bits(), 0x050F);
    EXPECT_EQ(make_recorder().mask(), m);
}

TEST(event_mask, with_without_and_the_nibble) {
    const event_mask m = event_mask().with(message_type::announce).with(message_type::sync);
    EXPECT_TRUE(m.selects(message_type::announce));
    EXPECT_TRUE(m.selects(message_type::sync));
    EXPECT_FALSE(m.selects(message_type::delay_req));
    EXPECT_FALSE(m.without(message_type::sync).selects(message_type::sync));
    EXPECT_EQ(m.without(message_type::sync).without(message_type::announce), event_mask());
    EXPECT_EQ(event_mask::from_bits(m.bits()), m);
    // Octet 0 carries majorSdoId in its high nibble: only the low one counts.
    EXPECT_TRUE(m.selects_value(0xA0 | static_cast<uint8_t>(message_type::sync)));
    EXPECT_FALSE(m.selects_value(0xA1));
    for (uint8_t v = 0; v < 16; ++v) {
        EXPECT_TRUE(event_mask::all().selects_value(v));
        EXPECT_FALSE(event_mask().selects_value(v));
    }
}

TEST(event_recorder, only_selected_types_give_records_in_input_order) {
    message_set ms;
    for (const auto t : all_message_types) {
        ms.add(make_message(t, static_cast<uint16_t>(0x100 + static_cast<uint8_t>(t)), 1000, 0, 0xA3));
    }
    std::vector<event_input> in;
    for (size_t i = 0; i < ms.originals.size(); ++i) {
        in.push_back(ms.input(i, event_direction::rx, static_cast<uint16_t>(i)));
    }
    const auto n = static_cast<uint16_t>(in.size());
    std::vector<event_record> out(in.size());

    event_recorder rec = make_recorder();
    ASSERT_EQ(rec.record_burst(in.data(), n, out.data()), 6);
    std::vector<uint8_t> types;
    for (size_t i = 0; i < 6; ++i) {
        types.push_back(out[i].messageType);
        EXPECT_EQ(out[i].sequenceId, 0x100 + out[i].messageType);
        EXPECT_EQ(hex(out[i].digest), reference_digest(ms.originals[out[i].port_id]));
        EXPECT_EQ(out[i].sdoId, 0x03 << 8 | static_cast<uint8_t>(0xA3 * 3));
    }
    EXPECT_EQ(types, (std::vector<uint8_t>{0x0, 0x1, 0x2, 0x3, 0x8, 0xA}));
    EXPECT_EQ(rec.stats().recorded, 6U);
    EXPECT_EQ(rec.stats().not_selected, 4U);

    rec.set_mask(event_mask());
    EXPECT_EQ(rec.record_burst(in.data(), n, out.data()), 0);
    EXPECT_EQ(rec.stats().not_selected, 14U);

    rec.set_mask(event_mask().with(message_type::announce).with(message_type::management));
    ASSERT_EQ(rec.record_burst(in.data(), n, out.data()), 2);
    EXPECT_EQ(out[0].messageType, static_cast<uint8_t>(message_type::announce));
    EXPECT_EQ(out[1].messageType, static_cast<uint8_t>(message_type::management));

    rec.set_mask(event_mask::all());
    EXPECT_EQ(rec.record_burst(in.data(), n, out.data()), n);
    EXPECT_EQ(rec.stats().recorded, 6U + 2U + n);
    EXPECT_TRUE(ms.unchanged());
}

TEST(event_recorder, input_that_is_not_a_message_is_counted) {
    message_set ms;
    ms.add(make_message(message_type::sync, 1, 5));
    event_recorder rec = make_recorder();
    std::array<event_input, 3> in = {ms.input(0), ms.input(0), ms.input(0)};
    in[0].msg = nullptr;
    in[1].len = ptp::header_len - 1;
    std::array<event_record, 3> out{};
    ASSERT_EQ(rec.record_burst(in.data(), 3, out.data()), 1);
    EXPECT_EQ(out[0].sequenceId, 1);
    EXPECT_EQ(rec.stats().bad_input, 2U);
    EXPECT_EQ(rec.stats().recorded, 1U);
    EXPECT_EQ(rec.stats().digest_failed, 0U);
    EXPECT_EQ(rec.record_burst(in.data(), 0, out.data()), 0);
    EXPECT_TRUE(ms.unchanged());
}

// ---------------------------------------------------------------------------
// Bursts.

using burst_param = std::tuple<icv::imb_arch, uint16_t>;

class event_burst : public testing::TestWithParam<burst_param> {};

TEST_P(event_burst, records_match_the_reference) {
    const auto [arch, n] = GetParam();
    std::mt19937_64 rng(n * 7919U + static_cast<unsigned>(arch));
    message_set ms;
    for (uint16_t i = 0; i < n; ++i) {
        const auto t = all_message_types[rng() % all_message_types.size()];
        // TLVs of 0-120 octets: lengths from 44 to 184, across 1-3 blocks.
        const size_t tlv = rng() % 4 == 0 ? 0 : 4 + rng() % 117;
        ms.add(make_message(t, static_cast<uint16_t>(rng()), static_cast<int64_t>(rng() | 1), tlv,
                            static_cast<uint8_t>(rng())));
    }
    std::vector<event_input> in;
    for (uint16_t i = 0; i < n; ++i) {
        in.push_back(ms.input(i, i % 2 == 0 ? event_direction::rx : event_direction::tx, static_cast<uint16_t>(i),
                              1'700'000'000'000'000'000ULL + i, static_cast<uint8_t>(i % 2)));
    }

    for (const event_mask mask : {event_mask::all(), event_mask::timing()}) {
        auto rec = event_recorder::create(mask, arch);
        ASSERT_TRUE(rec) << rec.message();
        EXPECT_EQ(rec->arch(), arch);
        std::vector<event_record> out(n);
        const uint16_t got = rec->record_burst(in.data(), n, out.data());
        size_t want = 0;
        for (uint16_t i = 0; i < n; ++i) {
            want += mask.selects_value(ms.originals[i][0]) ? 1 : 0;
        }
        ASSERT_EQ(got, want);
        EXPECT_EQ(rec->stats().recorded, want);
        EXPECT_EQ(rec->stats().not_selected, n - want);
        uint16_t prev = 0;
        for (uint16_t k = 0; k < got; ++k) {
            const event_record& r = out[k];
            const uint16_t i = r.port_id; // the input index, by construction
            if (k > 0) {
                EXPECT_GT(i, prev) << "records out of input order";
            }
            prev = i;
            const bytes& m = ms.originals[i];
            EXPECT_EQ(hex(r.digest), reference_digest(m)) << "input " << i;
            EXPECT_EQ(r.messageType, m[0] & 0x0F);
            EXPECT_EQ(r.sequenceId, load_be16(m.data() + 30));
            EXPECT_EQ(r.messageLength, m.size());
            EXPECT_EQ(r.timestamp_ns, 1'700'000'000'000'000'000ULL + i);
            EXPECT_EQ(r.direction, i % 2 == 0 ? event_direction::rx : event_direction::tx);
            EXPECT_EQ(r.flags, i % 2);
        }
        EXPECT_TRUE(ms.unchanged());
    }
}

std::string burst_label(const testing::TestParamInfo<burst_param>& p) {
    return std::string(icv::arch_name(std::get<0>(p.param))) + "_" + std::to_string(std::get<1>(p.param));
}

// 1, 7, 32, 64 as asked; 65 and 130 cross the 64-message split.
INSTANTIATE_TEST_SUITE_P(sizes, event_burst,
                         testing::Combine(testing::ValuesIn(supported_archs()),
                                          testing::Values<uint16_t>(1, 7, 32, 64, 65, 130)),
                         burst_label);

} // namespace
} // namespace ptpsec::test
