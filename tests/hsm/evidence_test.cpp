// The evidence format (hsm/evidence.h): claims, batch payloads, event
// evidence and log records made with the software signer, checked end to
// end, every decoder refusal with its message, the chain rules, the log
// reader on truncated and corrupt logs, the batch builder's in-place log
// record, and a second implementation
// (tests/hsm/independent_check.py, cbor2 + cryptography) on our output.

#include <hsm/batch_builder.h>
#include <hsm/evidence.h>
#include <hsm/software_signer.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace ptpsec::hsm {
namespace {

namespace fs = std::filesystem;

event_record make_record(uint16_t seq, uint8_t message_type = 0, event_direction dir = event_direction::rx) {
    event_record r{};
    r.version = event_record_version;
    r.direction = dir;
    r.messageType = message_type;
    r.domainNumber = 24;
    r.sdoId = 0x100;
    r.port_id = 1;
    r.timestamp_ns = 1'700'000'000'000'000'000ULL + seq * 125'000'000ULL;
    r.correctionField = -(int64_t{seq} << 16);
    r.sourcePortIdentity = {0x00, 0x1b, 0x21, 0xff, 0xfe, 0x01, 0x02, 0x03, 0x00, 0x01};
    r.sequenceId = seq;
    r.messageLength = 44;
    r.flagField = 0x0200;
    r.flags = event_flag_hw_timestamp;
    for (size_t i = 0; i < r.digest.size(); ++i) {
        r.digest[i] = static_cast<uint8_t>(size_t{seq} * 7 + i);
    }
    return r;
}

class evidence : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "ptpsec-evidence-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        _dir = tmpl;
        _signer = open_signer(signature_algorithm::es256);
        ASSERT_TRUE(_signer);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(_dir, ec);
    }

    std::unique_ptr<software_signer> open_signer(signature_algorithm alg) {
        const std::string name = alg == signature_algorithm::es256 ? "es256" : "eddsa";
        auto s = software_signer::open({_dir / (name + ".pem"), _dir / (name + ".counter"), alg});
        EXPECT_TRUE(s) << s.message();
        return s ? std::move(*s) : nullptr;
    }

    static batch_request request(size_t n, uint64_t first_index, const digest& previous, uint64_t missed,
                                 uint64_t index_step = 1) {
        batch_request req;
        req.signer_id = "gm-a.example";
        req.batch_time_ns = 1'700'000'001'000'000'000ULL + first_index;
        for (size_t i = 0; i < n; ++i) {
            req.events.push_back({make_record(static_cast<uint16_t>(first_index + i), static_cast<uint8_t>(i % 4),
                                              i % 2 == 0 ? event_direction::rx : event_direction::tx),
                                  first_index + i * index_step});
        }
        req.previous_root = previous;
        req.missed_events = missed;
        return req;
    }

    batch_record sign(signer& s, const batch_request& req) {
        auto r = sign_batch(s, req);
        EXPECT_TRUE(r) << r.message();
        return r ? std::move(*r) : batch_record{};
    }

    // Signs an arbitrary payload over arbitrary leaves: for records whose
    // leaves disagree with their payload.
    batch_record forge(const batch_payload& p, std::vector<std::vector<uint8_t>> leaves) {
        batch_record r;
        r.payload = p;
        r.leaves = std::move(leaves);
        auto payload = encode_batch_payload(p);
        EXPECT_TRUE(payload) << payload.message();
        const std::vector<uint8_t> kid(p.signer_id.begin(), p.signer_id.end());
        auto token = sign_cose_sign1(*_signer, kid, *payload);
        EXPECT_TRUE(token);
        r.token = std::move(*token);
        return r;
    }

    const std::vector<uint8_t>& key() const { return _signer->info().public_key_der; }

    fs::path _dir;
    std::unique_ptr<software_signer> _signer;
};

// Where `key` and then `value` sit in `encoded`, found by searching the
// octets (not through the decoder whose offsets are under test): the
// offset of the key, and of the value.
std::pair<size_t, size_t> key_value_offsets(const std::vector<uint8_t>& encoded, int64_t key, const cbor::item& value) {
    const auto k = *cbor::encode(cbor::item::integer(key));
    auto kv = k;
    const auto v = *cbor::encode(value);
    kv.insert(kv.end(), v.begin(), v.end());
    const auto at = std::search(encoded.begin(), encoded.end(), kv.begin(), kv.end());
    EXPECT_NE(at, encoded.end());
    const auto pos = static_cast<size_t>(at - encoded.begin());
    return {pos, pos + k.size()};
}

// `why` with "@" replaced by `offset`.
std::string at(std::string why, size_t offset) {
    const auto p = why.find('@');
    if (p != std::string::npos) {
        why.replace(p, 1, std::to_string(offset));
    }
    return why;
}

struct map_refusal {
    int64_t key;
    std::optional<cbor::item> value; ///< absent: the key is removed
    std::string why;                 ///< "@": the value's offset (the key's for an unknown key)
};

event_claims sample_claims() {
    auto c = claims_from_record(make_record(77, 9, event_direction::tx), 123, 5, "gm-a.example",
                                std::vector<uint8_t>(16, 0xAB), std::vector<uint8_t>(32, 0xCD));
    EXPECT_TRUE(c) << c.message();
    return *c;
}

// A claims map with one key replaced (or removed when `value` is absent).
std::vector<uint8_t> claims_with(int64_t key, std::optional<cbor::item> value) {
    auto enc = encode_claims(sample_claims());
    auto m = cbor::decode(*enc);
    EXPECT_TRUE(m);
    cbor::item out = cbor::item::map();
    for (size_t i = 0; i < m->elements.size(); i += 2) {
        if (m->elements[i].as_int64() != key) {
            out.put(m->elements[i], m->elements[i + 1]);
        }
    }
    if (value) {
        out.put(cbor::item::integer(key), *value);
    }
    return *cbor::encode(out);
}

TEST(evidence_claims, event_type_encodes_message_type_and_direction) {
    EXPECT_EQ(event_type_of(event_direction::rx, 0), 0U);   // Sync received
    EXPECT_EQ(event_type_of(event_direction::rx, 9), 9U);   // Delay_Resp received
    EXPECT_EQ(event_type_of(event_direction::tx, 0), 16U);  // Sync sent
    EXPECT_EQ(event_type_of(event_direction::tx, 15), 31U); // the largest
}

TEST(evidence_claims, claims_from_a_record_round_trip_with_every_field) {
    const event_claims c = sample_claims();
    EXPECT_EQ(c.direction, event_direction::tx);
    EXPECT_EQ(c.message_type, 9);
    EXPECT_EQ(c.sequence_id, 77);
    EXPECT_EQ(c.event_index, 123U);
    EXPECT_EQ(c.monotonic_counter, 5U);
    EXPECT_EQ(c.correction_field, -(int64_t{77} << 16));
    EXPECT_EQ(c.flags, event_flag_hw_timestamp);
    auto enc = encode_claims(c);
    ASSERT_TRUE(enc);
    auto m = cbor::decode(*enc);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->map_size(), 18U);
    EXPECT_EQ(m->find(claim_key::event_type)->number, 25U);
    EXPECT_EQ(m->find(claim_key::correction_field)->kind, cbor::type::negative_integer);
    auto back = decode_claims(*enc);
    ASSERT_TRUE(back) << back.message();
    EXPECT_EQ(*back, c);
    // Absent nonce and PCR summary are null, not missing.
    event_claims bare = c;
    bare.nonce.reset();
    bare.pcr_summary.reset();
    auto bare_enc = encode_claims(bare);
    ASSERT_TRUE(bare_enc);
    auto bare_map = cbor::decode(*bare_enc);
    EXPECT_EQ(bare_map->find(claim_key::nonce)->kind, cbor::type::null);
    EXPECT_EQ(bare_map->find(claim_key::pcr_summary)->kind, cbor::type::null);
    EXPECT_EQ(*decode_claims(*bare_enc), bare);
}

TEST(evidence_claims, records_that_cannot_be_claimed_are_refused) {
    event_record r = make_record(1);
    r.version = 2;
    EXPECT_EQ(claims_from_record(r, 0, 1, "x", {}, {}).message(), "event record version 2 is not 1");
    r = make_record(1);
    r.direction = static_cast<event_direction>(2);
    EXPECT_EQ(claims_from_record(r, 0, 1, "x", {}, {}).message(), "event record direction 2 is not rx (0) or tx (1)");
    r = make_record(1);
    r.messageType = 16;
    EXPECT_EQ(claims_from_record(r, 0, 1, "x", {}, {}).message(), "event record messageType 16 does not fit a nibble");
}

TEST(evidence_claims, every_claims_refusal_names_the_key_and_the_problem) {
    using cbor::item;
    EXPECT_EQ(decode_claims(*cbor::encode(item::array())).message(),
              "claims: expected a map at offset 0, found an array");
    EXPECT_EQ(decode_claims(std::vector<uint8_t>{0xA1, 0x01}).message(),
              "claims: CBOR: a map of 1 pairs cannot fit in the 1 octets that remain at offset 0");
    const map_refusal cases[] = {
        {42, item::uint(0), "claims: unknown key 42 at offset @"},
        {claim_key::ptp_seq, std::nullopt, "claims: key 3 (ptp_seq) is missing from the map at offset 0"},
        {claim_key::version, item::uint(2), "claims: version 2 is not 1"},
        {claim_key::event_type, item::uint(32), "claims: key 2 (event_type) at offset @ is 32, above its maximum 31"},
        {claim_key::ptp_seq, item::uint(65536),
         "claims: key 3 (ptp_seq) at offset @ is 65536, above its maximum 65535"},
        {claim_key::ptp_seq, item::tstr("7"),
         "claims: key 3 (ptp_seq) at offset @ is a text string, not an unsigned integer"},
        {claim_key::phc_timestamp_ns, item::integer(-1),
         "claims: key 4 (phc_timestamp_ns) at offset @ is a negative integer, not an unsigned integer"},
        {claim_key::event_digest, item::bstr(std::vector<uint8_t>(31)),
         "claims: key 5 (event_digest) at offset @ is 31 octets long, not 32"},
        {claim_key::nonce, item::bstr(std::vector<uint8_t>(7)),
         "claims: key 6 (nonce) at offset @ is 7 octets long, not 8 to 64"},
        {claim_key::nonce, item::boolean_value(false),
         "claims: key 6 (nonce) at offset @ is a boolean, not a byte string"},
        {claim_key::monotonic_counter, item::null_value(),
         "claims: key 7 (monotonic_counter) at offset @ is null, not an unsigned integer"},
        {claim_key::signer_id, item::tstr(""), "claims: key 8 (signer_id) at offset @ is 0 octets long, not 1 to 255"},
        {claim_key::pcr_summary, item::bstr(std::vector<uint8_t>(65)),
         "claims: key 9 (pcr_summary) at offset @ is 65 octets long, not 1 to 64"},
        {claim_key::domain_number, item::uint(256),
         "claims: key -1 (domainNumber) at offset @ is 256, above its maximum 255"},
        {claim_key::sdo_id, item::uint(0x1000), "claims: key -2 (sdoId) at offset @ is 4096, above its maximum 4095"},
        {claim_key::source_port_identity, item::bstr(std::vector<uint8_t>(9)),
         "claims: key -3 (sourcePortIdentity) at offset @ is 9 octets long, not 10"},
        {claim_key::port_id, item::uint(65536),
         "claims: key -4 (port_id) at offset @ is 65536, above its maximum 65535"},
        {claim_key::correction_field, item::uint(UINT64_MAX),
         "claims: key -5 (correctionField) at offset @ is an unsigned integer, not an integer in the int64 range"},
        {claim_key::flags, item::uint(256), "claims: key -6 (flags) at offset @ is 256, above its maximum 255"},
        {claim_key::event_index, item::tstr("0"),
         "claims: key -7 (event_index) at offset @ is a text string, not an unsigned integer"},
        {claim_key::flag_field, item::uint(65536),
         "claims: key -8 (flagField) at offset @ is 65536, above its maximum 65535"},
        {claim_key::message_length, std::nullopt, "claims: key -9 (messageLength) is missing from the map at offset 0"},
    };
    for (const auto& c : cases) {
        const auto encoded = claims_with(c.key, c.value);
        size_t offset = 0;
        if (c.value) {
            const auto [key_at, value_at] = key_value_offsets(encoded, c.key, *c.value);
            offset = c.why.find("unknown key") != std::string::npos ? key_at : value_at;
        }
        auto r = decode_claims(encoded);
        ASSERT_FALSE(r) << c.why;
        EXPECT_EQ(r.message(), at(c.why, offset));
    }
    // A text key.
    cbor::item m = *cbor::decode(*encode_claims(sample_claims()));
    m.put(item::tstr("x"), item::uint(1));
    auto text_key = decode_claims(*cbor::encode(m));
    ASSERT_FALSE(text_key);
    EXPECT_EQ(text_key.message().rfind("claims: the key at offset ", 0), 0U) << text_key.message();
    EXPECT_NE(text_key.message().find("is a text string, not an integer key of this map"), std::string::npos);
}

batch_payload sample_payload() {
    batch_payload p;
    p.signer_id = "gm-a.example";
    p.backend = backend_kind::tpm;
    p.hardware_rooted = true;
    p.counter = 7;
    p.batch_time_ns = 1'700'000'000'123'456'789ULL;
    p.merkle_root.fill(0x11);
    p.event_count = 3;
    p.first_event_index = 10;
    p.last_event_index = 13;
    p.previous_root.fill(0x22);
    p.missed_events = 1;
    p.nonce = std::vector<uint8_t>(8, 0x33);
    return p;
}

std::vector<uint8_t> payload_with(int64_t key, std::optional<cbor::item> value) {
    auto m = cbor::decode(*encode_batch_payload(sample_payload()));
    cbor::item out = cbor::item::map();
    for (size_t i = 0; i < m->elements.size(); i += 2) {
        if (m->elements[i].as_int64() != key) {
            out.put(m->elements[i], m->elements[i + 1]);
        }
    }
    if (value) {
        out.put(cbor::item::integer(key), *value);
    }
    return *cbor::encode(out);
}

TEST(evidence_payload, round_trips_and_the_nonce_is_absent_when_not_given) {
    const batch_payload p = sample_payload();
    auto enc = encode_batch_payload(p);
    ASSERT_TRUE(enc);
    EXPECT_EQ(*decode_batch_payload(*enc), p);
    batch_payload no_nonce = p;
    no_nonce.nonce.reset();
    auto enc2 = encode_batch_payload(no_nonce);
    auto m = cbor::decode(*enc2);
    EXPECT_EQ(m->find(payload_key::nonce), nullptr);
    EXPECT_EQ(m->map_size(), 12U);
    EXPECT_EQ(*decode_batch_payload(*enc2), no_nonce);
    EXPECT_EQ(m->find(payload_key::backend)->text, "tpm");
}

TEST(evidence_payload, every_payload_refusal_names_the_problem) {
    using cbor::item;
    EXPECT_EQ(decode_batch_payload(std::vector<uint8_t>{0x01}).message(),
              "batch payload: expected a map at offset 0, found an unsigned integer");
    const map_refusal cases[] = {
        {99, item::uint(1), "batch payload: unknown key 99 at offset @"},
        {payload_key::counter, std::nullopt, "batch payload: key 5 (counter) is missing from the map at offset 0"},
        {payload_key::version, item::uint(0), "batch payload: version 0 is not 1"},
        {payload_key::signer_id, item::bstr(std::vector<uint8_t>(2)),
         "batch payload: key 2 (signer_id) at offset @ is a byte string, not a text string"},
        {payload_key::backend, item::tstr("hsm"), "batch payload: backend \"hsm\" is not tpm, pkcs11 or software"},
        {payload_key::backend, item::tstr("software"), "batch payload: a software signer claims to be hardware-rooted"},
        {payload_key::hardware_rooted, item::uint(1),
         "batch payload: key 4 (hardware_rooted) at offset @ is an unsigned integer, not a boolean"},
        {payload_key::counter, item::uint(0), "batch payload: counter 0 is never signed (next_counter starts at 1)"},
        {payload_key::batch_time_ns, item::tstr("now"),
         "batch payload: key 6 (batch_time_ns) at offset @ is a text string, not an unsigned integer"},
        {payload_key::merkle_root, item::bstr(std::vector<uint8_t>(33)),
         "batch payload: key 7 (merkle_root) at offset @ is 33 octets long, not 32"},
        {payload_key::event_count, item::uint(0), "batch payload: event_count is 0; a batch has at least one event"},
        {payload_key::event_count, item::uint(5), "batch payload: events 10..13 cannot hold 5 distinct event indexes"},
        {payload_key::last_event_index, item::uint(9),
         "batch payload: events 10..9 cannot hold 3 distinct event indexes"},
        {payload_key::first_event_index, std::nullopt,
         "batch payload: key 9 (first_event_index) is missing from the map at offset 0"},
        {payload_key::previous_root, item::null_value(),
         "batch payload: key 11 (previous_root) at offset @ is null, not a byte string"},
        {payload_key::missed_events, item::integer(-1),
         "batch payload: key 12 (missed_events) at offset @ is a negative integer, not an unsigned integer"},
        {payload_key::nonce, item::bstr(std::vector<uint8_t>(65)),
         "batch payload: key 13 (nonce) at offset @ is 65 octets long, not 8 to 64"},
        {payload_key::nonce, item::null_value(),
         "batch payload: key 13 (nonce) at offset @ is null, not a byte string"},
    };
    for (const auto& c : cases) {
        const auto encoded = payload_with(c.key, c.value);
        size_t offset = 0;
        if (c.value) {
            const auto [key_at, value_at] = key_value_offsets(encoded, c.key, *c.value);
            offset = c.why.find("unknown key") != std::string::npos ? key_at : value_at;
        }
        auto r = decode_batch_payload(encoded);
        ASSERT_FALSE(r) << c.why;
        EXPECT_EQ(r.message(), at(c.why, offset));
    }
}

TEST_F(evidence, a_signed_batch_checks_and_every_event_evidence_checks_alone) {
    for (const size_t n : {size_t{1}, size_t{2}, size_t{7}, size_t{33}}) {
        auto req = request(n, 100, first_batch_previous_root, 100);
        req.nonce = std::vector<uint8_t>(16, 0x4E);
        req.pcr_summary = std::vector<uint8_t>(32, 0x50);
        const batch_record rec = sign(*_signer, req);
        ASSERT_EQ(rec.leaves.size(), n);
        EXPECT_EQ(rec.payload.backend, backend_kind::software);
        EXPECT_FALSE(rec.payload.hardware_rooted);
        EXPECT_EQ(rec.payload.event_count, n);
        EXPECT_EQ(rec.payload.first_event_index, 100U);
        EXPECT_EQ(rec.payload.last_event_index, 100U + n - 1);
        EXPECT_EQ(rec.payload.merkle_root, *merkle_tree_hash(rec.leaves));
        auto checked = check_batch_record(rec, signature_algorithm::es256, key());
        ASSERT_TRUE(checked) << checked.message();
        EXPECT_EQ(*checked, rec.payload);
        for (size_t i = 0; i < n; ++i) {
            auto ev = derive_event_evidence(rec, i);
            ASSERT_TRUE(ev) << ev.message();
            auto enc = encode_event_evidence(*ev);
            ASSERT_TRUE(enc);
            auto dec = decode_event_evidence(*enc);
            ASSERT_TRUE(dec) << dec.message();
            EXPECT_EQ(*dec, *ev);
            EXPECT_EQ(*encode_event_evidence(*dec), *enc);
            auto v = check_event_evidence(*dec, signature_algorithm::es256, key());
            ASSERT_TRUE(v) << v.message();
            EXPECT_EQ(v->claims.event_index, 100 + i);
            EXPECT_EQ(v->claims.sequence_id, 100 + i);
            EXPECT_EQ(v->claims.monotonic_counter, rec.payload.counter);
            EXPECT_EQ(v->claims.nonce, req.nonce);
            EXPECT_EQ(v->claims.pcr_summary, req.pcr_summary);
            EXPECT_EQ(v->batch, rec.payload);
        }
        EXPECT_FALSE(derive_event_evidence(rec, n));
    }
}

// The leaves and log records are written straight into buffers (one per
// event, a million per batch); they must be the octets cbor::encode gives for
// the same maps, with and without nonce and pcr_summary, for extreme values.
TEST_F(evidence, leaves_and_log_records_written_directly_are_the_deterministic_encoding) {
    auto reference_claims = [](const event_claims& c) {
        auto bytes_or_null = [](const std::optional<std::vector<uint8_t>>& v) {
            return v ? cbor::item::bstr(*v) : cbor::item::null_value();
        };
        cbor::item m = cbor::item::map();
        m.put(claim_key::version, cbor::item::uint(c.version));
        m.put(claim_key::event_type, cbor::item::uint(event_type_of(c.direction, c.message_type)));
        m.put(claim_key::ptp_seq, cbor::item::uint(c.sequence_id));
        m.put(claim_key::phc_timestamp_ns, cbor::item::uint(c.phc_timestamp_ns));
        m.put(claim_key::event_digest, cbor::item::bstr(c.event_digest));
        m.put(claim_key::nonce, bytes_or_null(c.nonce));
        m.put(claim_key::monotonic_counter, cbor::item::uint(c.monotonic_counter));
        m.put(claim_key::signer_id, cbor::item::tstr(c.signer_id));
        m.put(claim_key::pcr_summary, bytes_or_null(c.pcr_summary));
        m.put(claim_key::domain_number, cbor::item::uint(c.domain_number));
        m.put(claim_key::sdo_id, cbor::item::uint(c.sdo_id));
        m.put(claim_key::source_port_identity, cbor::item::bstr(c.source_port_identity));
        m.put(claim_key::port_id, cbor::item::uint(c.port_id));
        m.put(claim_key::correction_field, cbor::item::integer(c.correction_field));
        m.put(claim_key::flags, cbor::item::uint(c.flags));
        m.put(claim_key::event_index, cbor::item::uint(c.event_index));
        m.put(claim_key::flag_field, cbor::item::uint(c.flag_field));
        m.put(claim_key::message_length, cbor::item::uint(c.message_length));
        return cbor::encode(m);
    };
    const std::vector<int64_t> corrections = {0, 1, -1, 23, 24, -24, -25, 255, 256, 65535, 65536, INT64_MAX, INT64_MIN};
    const std::vector<uint64_t> indexes = {0, 23, 24, 255, 256, 65535, 65536, 4294967295ULL, 4294967296ULL, UINT64_MAX};
    for (size_t i = 0; i < corrections.size(); ++i) {
        event_record r = make_record(static_cast<uint16_t>(i * 9000), static_cast<uint8_t>(i % 16),
                                     i % 2 == 0 ? event_direction::rx : event_direction::tx);
        r.correctionField = corrections[i];
        r.timestamp_ns = i == 0 ? 0 : UINT64_MAX - i;
        for (const bool extras : {false, true}) {
            std::optional<std::vector<uint8_t>> nonce;
            std::optional<std::vector<uint8_t>> pcr;
            if (extras) {
                nonce = std::vector<uint8_t>(64, 0xA5);
                pcr = std::vector<uint8_t>(24, 0x5A);
            }
            const uint64_t index = indexes[i % indexes.size()];
            auto c = claims_from_record(r, index, 1000 + i, "observer-with-a-longer-name-than-23", nonce, pcr);
            ASSERT_TRUE(c) << c.message();
            auto direct = encode_claims(*c);
            auto reference = reference_claims(*c);
            ASSERT_TRUE(direct && reference);
            EXPECT_EQ(*direct, *reference) << "correction " << corrections[i] << " index " << index;
        }
    }
    // sign_batch writes its leaves from the records: the same octets, and
    // the log record the same as encoding its item.
    auto req = request(40, 65530, first_batch_previous_root, 0);
    req.nonce = std::vector<uint8_t>(8, 0x11);
    const batch_record rec = sign(*_signer, req);
    for (size_t i = 0; i < req.events.size(); ++i) {
        auto c = claims_from_record(req.events[i].record, req.events[i].event_index, rec.payload.counter, req.signer_id,
                                    req.nonce, req.pcr_summary);
        ASSERT_TRUE(c);
        EXPECT_EQ(rec.leaves[i], *encode_claims(*c)) << "leaf " << i;
    }
    auto direct = encode_log_record(rec);
    auto reference = cbor::encode(to_item(rec));
    ASSERT_TRUE(direct && reference);
    EXPECT_EQ(*direct, *reference);
}

TEST_F(evidence, the_batch_builder_writes_the_log_record_in_place_for_batches_of_every_size) {
    // A signer_id long enough that the claims of the smallest events fit
    // a byte string with a one-octet length (up to 255) and those of the
    // largest do not: the leaves of one batch have heads of two lengths.
    const auto leaf_len = [](const batch_request& req, size_t i) {
        auto c = claims_from_record(req.events[i].record, req.events[i].event_index, 1, req.signer_id, req.nonce,
                                    req.pcr_summary);
        return c ? encode_claims(*c)->size() : 0;
    };
    auto probe = request(300, 0, first_batch_previous_root, 0);
    probe.nonce = std::vector<uint8_t>(32, 0x5c);
    probe.signer_id = std::string(100, 's');
    const size_t smallest = leaf_len(probe, 0);
    const size_t largest = leaf_len(probe, 299);
    ASSERT_LT(smallest, largest);
    ASSERT_LE(smallest, 255U + 100U - 1U);
    const std::string straddling(100 + 255 - smallest, 's');

    auto builder = batch_builder::create();
    ASSERT_TRUE(builder) << builder.message();
    EXPECT_FALSE((*builder)->holds_batch());
    digest previous = first_batch_previous_root;
    uint64_t next_index = 0;
    // Large before small, so that octets kept from a larger batch must not
    // show in a smaller one.
    for (const size_t n : {size_t{300}, size_t{1}, size_t{40}, size_t{7}}) {
        auto req = request(n, next_index, previous, 0);
        req.nonce = std::vector<uint8_t>(32, static_cast<uint8_t>(n));
        req.signer_id = straddling;
        if (n == 40) {
            req.pcr_summary = std::vector<uint8_t>(32, 0xa5);
            req.signer_id = "gm-a.example";
        }
        ASSERT_TRUE((*builder)->sign(*_signer, req));
        ASSERT_TRUE((*builder)->holds_batch());
        ASSERT_EQ((*builder)->leaf_count(), n);

        std::vector<uint8_t> written;
        for (const auto& part : (*builder)->log_record()) {
            written.insert(written.end(), part.begin(), part.end());
        }
        const batch_record rec = (*builder)->to_record();
        EXPECT_EQ(written, *encode_log_record(rec)) << n << " events";
        auto decoded = decode_log_record(written);
        ASSERT_TRUE(decoded) << decoded.message();
        auto checked = check_batch_record(*decoded, signature_algorithm::es256, key());
        ASSERT_TRUE(checked) << checked.message();
        EXPECT_EQ(*checked, (*builder)->payload());
        size_t shortest = SIZE_MAX;
        size_t longest = 0;
        for (size_t i = 0; i < n; ++i) {
            auto c = claims_from_record(req.events[i].record, req.events[i].event_index, rec.payload.counter,
                                        req.signer_id, req.nonce, req.pcr_summary);
            ASSERT_TRUE(c);
            const auto leaf = (*builder)->leaf(i);
            ASSERT_EQ(std::vector<uint8_t>(leaf.begin(), leaf.end()), *encode_claims(*c)) << "leaf " << i;
            shortest = std::min(shortest, leaf.size());
            longest = std::max(longest, leaf.size());
        }
        if (n == 300) {
            EXPECT_LE(shortest, 255U);
            EXPECT_GT(longest, 255U);
        }
        previous = rec.payload.merkle_root;
        next_index += n;
    }

    // A request it refuses leaves nothing behind.
    auto unordered = request(3, next_index, previous, 0);
    unordered.events[2].event_index = unordered.events[1].event_index;
    EXPECT_FALSE((*builder)->sign(*_signer, unordered));
    EXPECT_FALSE((*builder)->holds_batch());
}

TEST_F(evidence, a_batch_built_in_parts_by_several_threads_is_the_same_batch) {
    // Parts of 2^k leaves, the last shorter, each hashed by its own thread;
    // the root must be the one tree over all leaves, and the record the one
    // encode_log_record() writes.
    for (const unsigned threads : {2U, 3U, 4U}) {
        auto builder = batch_builder::create(threads);
        ASSERT_TRUE(builder) << builder.message();
        EXPECT_EQ((*builder)->threads(), threads);
        digest previous = first_batch_previous_root;
        uint64_t next_index = 0;
        for (const size_t n : {size_t{9000}, size_t{1}, size_t{1025}, size_t{4096}, size_t{5000}}) {
            auto req = request(n, next_index, previous, 0);
            ASSERT_TRUE((*builder)->sign(*_signer, req));
            const size_t wanted = threads * 4;
            const size_t part = std::max(batch_builder::min_part_leaves, std::bit_ceil((n + wanted - 1) / wanted));
            EXPECT_EQ((*builder)->log_record().size(), 1 + (n + part - 1) / part) << threads << " threads, " << n;

            std::vector<uint8_t> written;
            for (const auto& run : (*builder)->log_record()) {
                written.insert(written.end(), run.begin(), run.end());
            }
            const batch_record rec = (*builder)->to_record();
            ASSERT_EQ(written, *encode_log_record(rec)) << threads << " threads, " << n << " events";
            auto tree = merkle_tree::build(rec.leaves);
            ASSERT_TRUE(tree);
            ASSERT_EQ(rec.payload.merkle_root, tree->root()) << threads << " threads, " << n << " events";
            auto checked = check_batch_record(*decode_log_record(written), signature_algorithm::es256, key());
            ASSERT_TRUE(checked) << checked.message();
            for (size_t i = 0; i < n; i += 97) {
                auto c = claims_from_record(req.events[i].record, req.events[i].event_index, rec.payload.counter,
                                            req.signer_id, req.nonce, req.pcr_summary);
                ASSERT_TRUE(c);
                ASSERT_EQ(rec.leaves[i], *encode_claims(*c)) << "leaf " << i;
            }
            previous = rec.payload.merkle_root;
            next_index += n;
        }
    }
    EXPECT_EQ(batch_builder::create(0).message(), "batch builder: 1 to 16 threads, not 0");
    EXPECT_EQ(batch_builder::create(17).message(), "batch builder: 1 to 16 threads, not 17");
}

// Builders used in turn can share one pool of helpers (the batcher's three
// slots do): each still builds its own batches right, the helpers do the
// work (their CPU time moves), and two threads whose builders share the pool
// take turns at it. A pool of the wrong size is refused.
TEST_F(evidence, builders_that_share_a_helper_pool_build_their_batches_right_and_take_turns_at_it) {
    auto pool = helper_pool::create(2);
    ASSERT_TRUE(pool) << pool.message();
    std::vector<std::unique_ptr<batch_builder>> builders;
    for (int i = 0; i < 3; ++i) {
        auto b = batch_builder::create(3, *pool);
        ASSERT_TRUE(b) << b.message();
        EXPECT_EQ((*b)->threads(), 3U);
        builders.push_back(std::move(*b));
    }
    EXPECT_EQ(batch_builder::create(2, *pool).message(), "batch builder: 2 threads need a pool of 1 helpers, not 2");
    EXPECT_EQ(helper_pool::create(0).message(), "helper pool: at least one helper");

    // Checks a built batch against the tree over its leaves and the claims
    // of its events.
    const auto built_right = [](const batch_builder& b, const batch_request& req) {
        const batch_record rec = b.to_record();
        auto tree = merkle_tree::build(rec.leaves);
        if (!tree || rec.payload.merkle_root != tree->root() || rec.leaves.size() != req.events.size()) {
            return testing::AssertionFailure() << "root or leaf count";
        }
        for (size_t i = 0; i < req.events.size(); i += 61) {
            auto c = claims_from_record(req.events[i].record, req.events[i].event_index, rec.payload.counter,
                                        req.signer_id, req.nonce, req.pcr_summary);
            if (!c || rec.leaves[i] != *encode_claims(*c)) {
                return testing::AssertionFailure() << "leaf " << i;
            }
        }
        return testing::AssertionSuccess();
    };

    // In turn, from one thread, as the batcher's builder thread does.
    digest previous = first_batch_previous_root;
    uint64_t next_index = 0;
    std::chrono::nanoseconds helpers_before = (*pool)->cpu();
    for (size_t k = 0; k < 6; ++k) {
        batch_builder& b = *builders[k % 3];
        auto req = request(9000 + k, next_index, previous, 0);
        ASSERT_TRUE(b.sign(*_signer, req));
        ASSERT_TRUE(built_right(b, req)) << "batch " << k;
        EXPECT_GT(b.log_record().size(), 2U) << "cut into parts for the three threads";
        auto checked = check_batch_record(b.to_record(), signature_algorithm::es256, key());
        ASSERT_TRUE(checked) << checked.message();
        previous = b.payload().merkle_root;
        next_index += req.events.size();
    }
    EXPECT_GT((*pool)->cpu(), helpers_before) << "the helpers hashed";

    // Two threads at once, each with its own signer and builder: the pool
    // runs one builder's parts at a time, and both come out right.
    auto other = open_signer(signature_algorithm::eddsa);
    ASSERT_TRUE(other);
    std::array<bool, 2> right{};
    std::array<std::thread, 2> threads;
    for (size_t t = 0; t < 2; ++t) {
        threads[t] = std::thread([&, t] {
            signer& s = t == 0 ? static_cast<signer&>(*_signer) : *other;
            digest prev = first_batch_previous_root;
            bool ok = true;
            for (uint64_t k = 0, index = 0; k < 5 && ok; ++k) {
                auto req = request(5000 + 3 * k, index, prev, 0);
                ok = builders[t]->sign(s, req) && built_right(*builders[t], req);
                prev = builders[t]->payload().merkle_root;
                index += req.events.size();
            }
            right[t] = ok;
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_TRUE(right[0]);
    EXPECT_TRUE(right[1]);
}

TEST_F(evidence, a_batch_built_while_it_grows_is_the_batch_built_at_once) {
    // The batcher adds the open batch's leaves in parts of part_leaves as
    // they arrive, then finishes with the rest: the leaves, the root, the
    // payload and the record's octets must be those of the same batch built
    // in one go, whatever the arrival steps and threads.
    constexpr size_t p = batch_builder::part_leaves;
    for (const unsigned threads : {1U, 2U}) {
        auto grown = batch_builder::create(threads);
        auto whole = batch_builder::create(threads);
        ASSERT_TRUE(grown && whole);
        uint64_t next_index = 0;
        uint64_t counter = 41;
        for (const size_t n : {3 * p + 17, p, p - 1, 2 * p, 1UL}) {
            auto full = request(n, next_index, first_batch_previous_root, 0, 2);
            full.nonce = std::vector<uint8_t>(16, static_cast<uint8_t>(n));
            batch_request req = full;
            req.events.clear();
            ASSERT_TRUE((*grown)->begin(++counter, req));
            // Arrivals in uneven steps, each followed by add().
            size_t at = 0;
            for (size_t step = 1; at < n; step = step * 3 + 101) {
                const size_t take = std::min(step, n - at);
                req.events.insert(req.events.end(), full.events.begin() + static_cast<ptrdiff_t>(at),
                                  full.events.begin() + static_cast<ptrdiff_t>(at + take));
                at += take;
                ASSERT_TRUE((*grown)->add(req));
                EXPECT_EQ((*grown)->leaves_added(), at / p * p);
                EXPECT_TRUE((*grown)->begun());
            }
            ASSERT_TRUE((*grown)->finish(_signer->info(), req));
            EXPECT_FALSE((*grown)->begun());
            EXPECT_FALSE((*grown)->holds_batch());
            ASSERT_TRUE((*grown)->seal(*_signer));
            ASSERT_TRUE((*grown)->holds_batch());
            EXPECT_EQ((*grown)->payload().counter, counter);
            // Parts of part_leaves once one was added; else cut for the threads.
            const size_t part = n >= p || threads == 1 ? p
                                                       : std::max(batch_builder::min_part_leaves,
                                                                  std::bit_ceil((n + 4 * threads - 1) / (4 * threads)));
            EXPECT_EQ((*grown)->log_record().size(), 1 + (n + part - 1) / part) << n;

            ASSERT_TRUE((*whole)->begin(counter, full));
            ASSERT_TRUE((*whole)->finish(_signer->info(), full));
            ASSERT_TRUE((*whole)->seal(*_signer));

            const batch_record a = (*grown)->to_record();
            const batch_record b = (*whole)->to_record();
            ASSERT_EQ(a.leaves, b.leaves) << threads << " threads, " << n << " events";
            EXPECT_EQ(a.payload, b.payload);
            auto tree = merkle_tree::build(a.leaves);
            ASSERT_TRUE(tree);
            EXPECT_EQ(a.payload.merkle_root, tree->root());
            std::vector<uint8_t> written;
            for (const auto& run : (*grown)->log_record()) {
                written.insert(written.end(), run.begin(), run.end());
            }
            ASSERT_EQ(written, *encode_log_record(a));
            auto checked = check_batch_record(*decode_log_record(written), signature_algorithm::es256, key());
            ASSERT_TRUE(checked) << checked.message();
            next_index += 2 * n;
        }
    }
}

TEST_F(evidence, each_step_of_a_growing_batch_refuses_what_is_out_of_turn_and_drops_what_was_begun) {
    auto builder = batch_builder::create();
    ASSERT_TRUE(builder);
    auto req = request(batch_builder::part_leaves + 3, 0, first_batch_previous_root, 0);
    EXPECT_EQ((*builder)->add(req).message(), "batch: add() before begin()");
    EXPECT_EQ((*builder)->finish(_signer->info(), req).message(), "batch: finish() before begin()");
    EXPECT_EQ((*builder)->seal(*_signer).message(), "batch: seal() before finish()");

    auto bad = req;
    bad.signer_id.clear();
    EXPECT_EQ((*builder)->begin(1, bad).message(), "batch: a signer_id is 1 to 255 octets");
    EXPECT_FALSE((*builder)->begun());

    // An event out of order in the part being added: nothing stays begun.
    ASSERT_TRUE((*builder)->begin(1, req));
    std::swap(req.events[10].event_index, req.events[11].event_index);
    EXPECT_EQ((*builder)->add(req).message(), "batch: event 11 has index 10, not above the previous 11");
    EXPECT_FALSE((*builder)->begun());
    EXPECT_EQ((*builder)->finish(_signer->info(), req).message(), "batch: finish() before begin()");
    std::swap(req.events[10].event_index, req.events[11].event_index);

    // A part added, then the rest refused at finish.
    ASSERT_TRUE((*builder)->begin(2, req));
    ASSERT_TRUE((*builder)->add(req));
    EXPECT_EQ((*builder)->leaves_added(), batch_builder::part_leaves);
    req.events.back().record.version = 9;
    EXPECT_FALSE((*builder)->finish(_signer->info(), req));
    EXPECT_FALSE((*builder)->begun());
    req.events.back().record.version = event_record_version;

    // begin() again drops the parts added: the batch is the one built anew.
    ASSERT_TRUE((*builder)->begin(3, req));
    ASSERT_TRUE((*builder)->add(req));
    req.nonce = std::vector<uint8_t>(8, 0x77);
    ASSERT_TRUE((*builder)->begin(3, req));
    EXPECT_EQ((*builder)->leaves_added(), 0U);
    ASSERT_TRUE((*builder)->finish(_signer->info(), req));
    ASSERT_TRUE((*builder)->seal(*_signer));
    const batch_record rec = (*builder)->to_record();
    auto c = claims_from_record(req.events[5].record, req.events[5].event_index, 3, req.signer_id, req.nonce,
                                req.pcr_summary);
    ASSERT_TRUE(c);
    EXPECT_EQ(rec.leaves[5], *encode_claims(*c));
    EXPECT_EQ(rec.payload.counter, 3U);
    EXPECT_EQ(rec.payload.merkle_root, merkle_tree::build(rec.leaves)->root());
}

TEST_F(evidence, the_in_place_claims_reader_agrees_with_the_general_decoder_or_leaves_it_the_input) {
    // Claims at the edges of every field, in the form a signer writes them.
    std::vector<event_claims> cases;
    for (const int64_t correction : {int64_t{0}, int64_t{-1}, int64_t{23}, int64_t{-24}, INT64_MIN, INT64_MAX}) {
        auto c = claims_from_record(make_record(7, 9, event_direction::tx), 0, 1, "a", std::nullopt, std::nullopt);
        ASSERT_TRUE(c);
        c->correction_field = correction;
        cases.push_back(*c);
    }
    {
        auto c = claims_from_record(make_record(65535, 15), UINT64_MAX, UINT64_MAX, std::string(255, '~'),
                                    std::vector<uint8_t>(64, 0xff), std::vector<uint8_t>(64, 0));
        ASSERT_TRUE(c);
        c->phc_timestamp_ns = UINT64_MAX;
        c->domain_number = 255;
        c->sdo_id = 0xFFF;
        c->port_id = 0xFFFF;
        c->flags = 0xFF;
        c->flag_field = 0xFFFF;
        c->message_length = 0xFFFF;
        cases.push_back(*c);
        c->nonce = std::vector<uint8_t>(8, 1);
        c->pcr_summary = std::vector<uint8_t>(1, 2);
        cases.push_back(*c);
    }
    for (const event_claims& c : cases) {
        const auto enc = *encode_claims(c);
        auto fast = decode_canonical_claims(enc);
        ASSERT_TRUE(fast);
        EXPECT_EQ(*fast, c);
        EXPECT_EQ(*decode_claims_generally(enc), c);
        // Every truncation is refused by both (the general decoder says why).
        for (size_t len = 0; len < enc.size(); ++len) {
            const std::span<const uint8_t> cut(enc.data(), len);
            EXPECT_FALSE(decode_canonical_claims(cut)) << len;
            EXPECT_FALSE(decode_claims(cut)) << len;
        }
        // An octet after the map.
        auto longer = enc;
        longer.push_back(0x00);
        EXPECT_FALSE(decode_canonical_claims(longer));
        EXPECT_FALSE(decode_claims(longer));
    }

    // Valid claims in another form go to the general decoder: a signer_id
    // outside printable ASCII.
    auto utf8 = cases[0];
    utf8.signer_id = "observateur-\xc3\xa9t\xc3\xa9";
    const auto enc = *encode_claims(utf8);
    EXPECT_FALSE(decode_canonical_claims(enc));
    auto general = decode_claims(enc);
    ASSERT_TRUE(general) << general.message();
    EXPECT_EQ(*general, utf8);

    // Not deterministic (version 1 in two octets), a value above its field
    // (sdoId 0x1000), a wrong version: refused by both, with the general
    // decoder's message.
    auto long_head = *encode_claims(cases[0]);
    ASSERT_EQ(long_head[2], 0x01);
    long_head.insert(long_head.begin() + 2, 0x18);
    EXPECT_FALSE(decode_canonical_claims(long_head));
    EXPECT_FALSE(decode_claims(long_head));
    auto big_sdo = cases[0];
    big_sdo.sdo_id = 0x1000;
    EXPECT_FALSE(decode_canonical_claims(*encode_claims(big_sdo)));
    EXPECT_EQ(decode_claims(*encode_claims(big_sdo)).message(),
              decode_claims_generally(*encode_claims(big_sdo)).message());
    EXPECT_NE(decode_claims(*encode_claims(big_sdo)).message().find("above its maximum 4095"), std::string::npos);
    auto v2 = cases[0];
    v2.version = 2;
    EXPECT_FALSE(decode_canonical_claims(*encode_claims(v2)));
    EXPECT_EQ(decode_claims(*encode_claims(v2)).message(), "claims: version 2 is not 1");
}

TEST_F(evidence, eddsa_batches_check_too) {
    auto ed = open_signer(signature_algorithm::eddsa);
    ASSERT_TRUE(ed);
    const batch_record rec = sign(*ed, request(5, 0, first_batch_previous_root, 0));
    EXPECT_TRUE(check_batch_record(rec, signature_algorithm::eddsa, ed->info().public_key_der));
    auto ev = derive_event_evidence(rec, 3);
    ASSERT_TRUE(ev);
    EXPECT_TRUE(check_event_evidence(*ev, signature_algorithm::eddsa, ed->info().public_key_der));
    EXPECT_EQ(check_event_evidence(*ev, signature_algorithm::es256, key()).message(),
              "COSE_Sign1: the message names EdDSA (-8) but the key is registered for ES256 (-7)");
}

TEST_F(evidence, each_tampering_with_event_evidence_is_caught_by_the_right_check) {
    const batch_record rec = sign(*_signer, request(6, 0, first_batch_previous_root, 0));
    const event_evidence good = *derive_event_evidence(rec, 2);
    ASSERT_TRUE(check_event_evidence(good, signature_algorithm::es256, key()));

    event_evidence e = good;
    e.claims[e.claims.size() - 1] ^= 0x01; // the last claim's value
    EXPECT_EQ(check_event_evidence(e, signature_algorithm::es256, key()).message(),
              "event evidence: the inclusion path does not lead to the signed root");
    e = good;
    e.inclusion_path[1][5] ^= 0x01;
    EXPECT_EQ(check_event_evidence(e, signature_algorithm::es256, key()).message(),
              "event evidence: the inclusion path does not lead to the signed root");
    e = good;
    e.leaf_index = 3;
    EXPECT_EQ(check_event_evidence(e, signature_algorithm::es256, key()).message(),
              "event evidence: the inclusion path does not lead to the signed root");
    e = good;
    e.tree_size = 7;
    EXPECT_EQ(check_event_evidence(e, signature_algorithm::es256, key()).message(),
              "event evidence: tree_size 7 is not the batch's event_count 6");
    e = good;
    e.token.payload[4] ^= 0x01;
    EXPECT_EQ(check_event_evidence(e, signature_algorithm::es256, key()).message(),
              "COSE_Sign1: the ECDSA signature does not verify");
    e = good;
    e.token.kid = {'o', 't', 'h', 'e', 'r'};
    EXPECT_EQ(check_event_evidence(e, signature_algorithm::es256, key()).message(),
              "event evidence: the token's kid is not the payload's signer_id \"gm-a.example\"");
    // Another key of the same algorithm.
    fs::create_directory(_dir / "other");
    auto other = software_signer::open({_dir / "other" / "k.pem", _dir / "other" / "c", signature_algorithm::es256});
    ASSERT_TRUE(other);
    EXPECT_EQ(check_event_evidence(good, signature_algorithm::es256, (*other)->info().public_key_der).message(),
              "COSE_Sign1: the ECDSA signature does not verify");
}

TEST_F(evidence, claims_that_disagree_with_their_signed_batch_are_refused) {
    // Leaves made for one batch, a payload that says something else, signed
    // correctly: the signature and the inclusion proof hold, the
    // consistency checks must not.
    auto make = [&](auto change_claims, auto change_payload) {
        std::vector<std::vector<uint8_t>> leaves;
        for (uint64_t i = 0; i < 3; ++i) {
            event_claims c = *claims_from_record(make_record(static_cast<uint16_t>(i)), 20 + i, 9, "gm-a.example",
                                                 std::nullopt, std::nullopt);
            change_claims(c, i);
            leaves.push_back(*encode_claims(c));
        }
        batch_payload p = sample_payload();
        p.backend = backend_kind::software;
        p.hardware_rooted = false;
        p.counter = 9;
        p.event_count = 3;
        p.first_event_index = 20;
        p.last_event_index = 22;
        p.nonce.reset();
        p.merkle_root = *merkle_tree_hash(leaves);
        change_payload(p);
        return forge(p, std::move(leaves));
    };
    auto same_claims = [](event_claims&, uint64_t) {};
    auto same_payload = [](batch_payload&) {};
    const batch_record fine = make(same_claims, same_payload);
    ASSERT_TRUE(check_batch_record(fine, signature_algorithm::es256, key()));

    struct case_t {
        batch_record rec;
        std::string batch_why;
        std::string event_why; // for leaf 1
    };
    const case_t cases[] = {
        {make([](event_claims& c, uint64_t) { c.monotonic_counter = 8; }, same_payload),
         "batch: leaf 0: the claims' monotonic_counter 8 is not the batch counter 9",
         "event evidence: the claims' monotonic_counter 8 is not the batch counter 9"},
        {make([](event_claims& c, uint64_t) { c.signer_id = "gm-b.example"; }, same_payload),
         "batch: leaf 0: the claims' signer_id \"gm-b.example\" is not the batch's \"gm-a.example\"",
         "event evidence: the claims' signer_id \"gm-b.example\" is not the batch's \"gm-a.example\""},
        {make(same_claims, [](batch_payload& p) { p.nonce = std::vector<uint8_t>(8, 1); }),
         "batch: leaf 0: the claims' nonce is not the batch's verifier nonce",
         "event evidence: the claims' nonce is not the batch's verifier nonce"},
        {make([](event_claims& c, uint64_t i) { c.event_index = 30 + i; }, same_payload),
         "batch: leaf 0: event index 30 is outside the batch's 20..22",
         "event evidence: event index 31 is outside the batch's 20..22"},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(check_batch_record(c.rec, signature_algorithm::es256, key()).message(), c.batch_why);
        auto ev = derive_event_evidence(c.rec, 1);
        ASSERT_TRUE(ev);
        EXPECT_EQ(check_event_evidence(*ev, signature_algorithm::es256, key()).message(), c.event_why);
    }

    // Rules only a whole batch can break.
    EXPECT_EQ(check_batch_record(make([](event_claims& c, uint64_t i) { c.event_index = 22 - i; }, same_payload),
                                 signature_algorithm::es256, key())
                  .message(),
              "batch: the first leaf's event index 22 is not first_event_index 20");
    EXPECT_EQ(check_batch_record(
                  make([](event_claims& c, uint64_t i) { c.event_index = i == 2 ? 21 : 20 + i; }, same_payload),
                  signature_algorithm::es256, key())
                  .message(),
              "batch: leaf 2 has event index 21, not above the previous leaf's 21");
    EXPECT_EQ(check_batch_record(make(same_claims, [](batch_payload& p) { p.last_event_index = 23; }),
                                 signature_algorithm::es256, key())
                  .message(),
              "batch: the last leaf's event index 22 is not last_event_index 23");
    EXPECT_EQ(check_batch_record(make(same_claims, [](batch_payload& p) { p.merkle_root[0] ^= 1; }),
                                 signature_algorithm::es256, key())
                  .message(),
              "batch: the Merkle root of the leaves is not the signed merkle_root");
    batch_record missing = fine;
    missing.leaves.pop_back();
    EXPECT_EQ(check_batch_record(missing, signature_algorithm::es256, key()).message(),
              "batch: 2 leaves but the payload's event_count is 3");
    batch_record other_kid = fine;
    other_kid.token.kid = {'x'};
    // The kid is unprotected (not signed): it must still name the signer.
    EXPECT_EQ(check_batch_record(other_kid, signature_algorithm::es256, key()).message(),
              "batch: the token's kid is not the payload's signer_id \"gm-a.example\"");
}

TEST_F(evidence, sign_batch_refuses_requests_it_cannot_sign_and_does_not_advance_the_counter) {
    const uint64_t before = *_signer->read_counter();
    batch_request empty = request(0, 0, first_batch_previous_root, 0);
    EXPECT_EQ(sign_batch(*_signer, empty).message(), "batch: no events to sign");
    batch_request unordered = request(3, 0, first_batch_previous_root, 0);
    unordered.events[2].event_index = 1;
    EXPECT_EQ(sign_batch(*_signer, unordered).message(), "batch: event 2 has index 1, not above the previous 1");
    batch_request short_nonce = request(1, 0, first_batch_previous_root, 0);
    short_nonce.nonce = std::vector<uint8_t>(4);
    EXPECT_EQ(sign_batch(*_signer, short_nonce).message(), "batch: a nonce is 8 to 64 octets, not 4");
    batch_request no_id = request(1, 0, first_batch_previous_root, 0);
    no_id.signer_id.clear();
    EXPECT_EQ(sign_batch(*_signer, no_id).message(), "batch: a signer_id is 1 to 255 octets");
    batch_request big_pcr = request(1, 0, first_batch_previous_root, 0);
    big_pcr.pcr_summary = std::vector<uint8_t>(65);
    EXPECT_EQ(sign_batch(*_signer, big_pcr).message(), "batch: a pcr_summary is 1 to 64 octets");
    EXPECT_EQ(*_signer->read_counter(), before);
}

TEST_F(evidence, the_chain_rules_hold_for_consecutive_batches_and_each_break_is_named) {
    // Batches 0..3 (4 events), 6..7 (indexes 4, 5 dropped), 8..10.
    const batch_record b1 = sign(*_signer, request(4, 0, first_batch_previous_root, 0));
    const batch_record b2 = sign(*_signer, request(2, 6, b1.payload.merkle_root, 2));
    const batch_record b3 = sign(*_signer, request(3, 8, b2.payload.merkle_root, 0));
    EXPECT_TRUE(check_chain(nullptr, b1.payload));
    EXPECT_TRUE(check_chain(&b1.payload, b2.payload));
    EXPECT_TRUE(check_chain(&b2.payload, b3.payload));
    EXPECT_LT(b1.payload.counter, b2.payload.counter);

    EXPECT_EQ(check_chain(nullptr, b2.payload).message(),
              "chain: a first batch has a previous_root that is not all zero");
    EXPECT_EQ(check_chain(&b1.payload, b3.payload).message(),
              "chain: batch " + std::to_string(b3.payload.counter) +
                  " does not name the previous batch's root (a batch is missing or was replaced)");
    EXPECT_EQ(check_chain(&b2.payload, b1.payload).message(),
              "chain: counter " + std::to_string(b1.payload.counter) + " does not increase from " +
                  std::to_string(b2.payload.counter) + " (replayed or reordered batch)");
    batch_payload p = b2.payload;
    p.missed_events = 0;
    EXPECT_EQ(check_chain(&b1.payload, p).message(),
              "chain: batch " + std::to_string(p.counter) + " reports 0 missed events but its indexes show 2");
    p = b2.payload;
    p.first_event_index = 3;
    EXPECT_EQ(check_chain(&b1.payload, p).message(), "chain: batch " + std::to_string(p.counter) +
                                                         " starts at event 3, not after the previous batch's last 3");
    p = b2.payload;
    p.signer_id = "gm-b.example";
    EXPECT_EQ(check_chain(&b1.payload, p).message(), "chain: signer_id \"gm-b.example\" follows \"gm-a.example\"");
    p = b1.payload;
    p.missed_events = 1;
    EXPECT_EQ(check_chain(nullptr, p).message(),
              "chain: the first batch reports 1 missed events but its indexes 0..3 hold 4 events");
    // Gaps inside a batch count as missed too.
    const batch_record gappy = sign(*_signer, request(3, 11, b3.payload.merkle_root, 2, 2));
    EXPECT_EQ(gappy.payload.last_event_index, 15U);
    EXPECT_TRUE(check_chain(&b3.payload, gappy.payload));
    EXPECT_TRUE(check_batch_record(gappy, signature_algorithm::es256, key()));
}

// With batch 2 missing, batch 3 cannot be linked to batch 1, but its event
// indexes must still go forward, and what lies between the two must leave
// room for the misses it reports.
TEST_F(evidence, after_a_missing_batch_the_event_indexes_still_go_forward) {
    // Batches 0..3, 4..5 (the missing one) and 6..8.
    const batch_record b1 = sign(*_signer, request(4, 0, first_batch_previous_root, 0));
    const batch_record b2 = sign(*_signer, request(2, 4, b1.payload.merkle_root, 0));
    const batch_record b3 = sign(*_signer, request(3, 6, b2.payload.merkle_root, 0));
    EXPECT_TRUE(check_chain_after_gap(b1.payload, b3.payload));
    // Batch 2's two events could have been misses of batch 3's instead.
    batch_payload p = b3.payload;
    p.missed_events = 2;
    EXPECT_TRUE(check_chain_after_gap(b1.payload, p));
    p.missed_events = 3;
    EXPECT_EQ(check_chain_after_gap(b1.payload, p).message(),
              "chain: batch " + std::to_string(p.counter) + " reports 3 missed events but only 2 indexes lie " +
                  "between it and batch " + std::to_string(b1.payload.counter));
    p = b3.payload;
    p.first_event_index = 3;
    EXPECT_EQ(check_chain_after_gap(b1.payload, p).message(),
              "chain: batch " + std::to_string(p.counter) + " starts at event 3, not after 3, the last of batch " +
                  std::to_string(b1.payload.counter));
    p.first_event_index = 0;
    EXPECT_FALSE(check_chain_after_gap(b1.payload, p));
}

std::vector<uint8_t> concat_records(const std::vector<batch_record>& recs) {
    std::vector<uint8_t> log;
    for (const auto& r : recs) {
        auto enc = encode_log_record(r);
        EXPECT_TRUE(enc);
        log.insert(log.end(), enc->begin(), enc->end());
    }
    return log;
}

TEST_F(evidence, log_records_round_trip_and_the_reader_walks_a_sequence) {
    const batch_record b1 = sign(*_signer, request(3, 0, first_batch_previous_root, 0));
    const batch_record b2 = sign(*_signer, request(5, 3, b1.payload.merkle_root, 0));
    auto enc1 = encode_log_record(b1);
    ASSERT_TRUE(enc1);
    auto dec1 = decode_log_record(*enc1);
    ASSERT_TRUE(dec1) << dec1.message();
    EXPECT_EQ(dec1->leaves, b1.leaves);
    EXPECT_EQ(dec1->payload, b1.payload);
    EXPECT_EQ(*encode_log_record(*dec1), *enc1);

    const auto log = concat_records({b1, b2});
    const log_contents all = read_log(log);
    EXPECT_FALSE(all.problem) << all.problem->message;
    ASSERT_EQ(all.records.size(), 2U);
    EXPECT_EQ(all.records[0].offset, 0U);
    EXPECT_EQ(all.records[0].length, enc1->size());
    EXPECT_EQ(all.records[1].offset, enc1->size());
    EXPECT_EQ(all.records[1].offset + all.records[1].length, log.size());
    EXPECT_EQ(all.records[1].record.payload, b2.payload);
    EXPECT_TRUE(check_batch_record(all.records[1].record, signature_algorithm::es256, key()));

    const log_contents none = read_log({});
    EXPECT_TRUE(none.records.empty());
    EXPECT_FALSE(none.problem);
}

TEST_F(evidence, a_truncated_log_keeps_its_whole_records_and_says_where_it_ends) {
    const batch_record b1 = sign(*_signer, request(3, 0, first_batch_previous_root, 0));
    const batch_record b2 = sign(*_signer, request(4, 3, b1.payload.merkle_root, 0));
    const auto log = concat_records({b1, b2});
    const size_t second = encode_log_record(b1)->size();
    // Every cut inside the second record.
    for (size_t cut = second + 1; cut < log.size(); ++cut) {
        const log_contents c = read_log(std::span(log).first(cut));
        ASSERT_EQ(c.records.size(), 1U) << cut;
        ASSERT_TRUE(c.problem) << cut;
        EXPECT_TRUE(c.problem->truncated) << cut << ": " << c.problem->message;
        EXPECT_GE(c.problem->offset, second);
        EXPECT_LE(c.problem->offset, cut);
        EXPECT_EQ(c.problem->message.rfind("log record at offset " + std::to_string(second) + ": CBOR: ", 0), 0U)
            << c.problem->message;
    }
}

TEST_F(evidence, a_corrupt_log_stops_at_the_bad_record_with_the_reason) {
    const batch_record b1 = sign(*_signer, request(2, 0, first_batch_previous_root, 0));
    const batch_record b2 = sign(*_signer, request(2, 2, b1.payload.merkle_root, 0));
    auto log = concat_records({b1, b2});
    const size_t second = encode_log_record(b1)->size();
    // An indefinite-length map where the second record starts.
    auto bad = log;
    bad[second] = 0xBF;
    log_contents c = read_log(bad);
    ASSERT_EQ(c.records.size(), 1U);
    ASSERT_TRUE(c.problem);
    EXPECT_FALSE(c.problem->truncated);
    EXPECT_EQ(c.problem->offset, second);
    EXPECT_EQ(c.problem->message, "log record at offset " + std::to_string(second) +
                                      ": CBOR: indefinite length (RFC 8949 §4.2.1 needs definite lengths) at offset " +
                                      std::to_string(second));
    // Garbage after the last record.
    bad = log;
    bad.push_back(0xFF);
    c = read_log(bad);
    EXPECT_EQ(c.records.size(), 2U);
    ASSERT_TRUE(c.problem);
    EXPECT_EQ(c.problem->offset, log.size());
    EXPECT_FALSE(c.problem->truncated);
    // A record of an unknown type, well-formed CBOR.
    cbor::item odd = to_item(b2);
    odd.elements[1] = cbor::item::uint(2);
    auto odd_enc = cbor::encode(odd);
    bad.assign(log.begin(), log.begin() + static_cast<std::ptrdiff_t>(second));
    bad.insert(bad.end(), odd_enc->begin(), odd_enc->end());
    c = read_log(bad);
    EXPECT_EQ(c.records.size(), 1U);
    ASSERT_TRUE(c.problem);
    EXPECT_EQ(c.problem->offset, second);
    EXPECT_EQ(c.problem->message, "log record at offset " + std::to_string(second) +
                                      ": log record: record type 2 at offset " + std::to_string(second) +
                                      " is not known (1 is a batch)");
}

TEST_F(evidence, every_log_record_refusal_names_the_problem) {
    const batch_record b = sign(*_signer, request(2, 0, first_batch_previous_root, 0));
    const cbor::item good = to_item(b);
    auto with_value = [&](int64_t key, cbor::item v) {
        cbor::item m = cbor::item::map();
        for (size_t i = 0; i < good.elements.size(); i += 2) {
            if (good.elements[i].as_int64() != key) {
                m.put(good.elements[i], good.elements[i + 1]);
            }
        }
        m.put(key, std::move(v));
        return *cbor::encode(m);
    };
    auto without = [&](int64_t key) {
        cbor::item m = cbor::item::map();
        for (size_t i = 0; i < good.elements.size(); i += 2) {
            if (good.elements[i].as_int64() != key) {
                m.put(good.elements[i], good.elements[i + 1]);
            }
        }
        return *cbor::encode(m);
    };
    cbor::item with_text_key = good;
    with_text_key.put(cbor::item::tstr("x"), cbor::item::uint(0));
    cbor::item three = cbor::item::array();
    for (int i = 0; i < 3; ++i) {
        three.elements.push_back(cbor::item::bstr(b.leaves[0]));
    }
    cbor::item bad_leaf =
        cbor::item::array({cbor::item::bstr(b.leaves[0]), cbor::item::bstr(std::vector<uint8_t>{0xA0})});
    cbor::item text_leaf = cbor::item::array({cbor::item::bstr(b.leaves[0]), cbor::item::tstr("x")});
    cose_sign1 bad_payload_token = b.token;
    bad_payload_token.payload = {0xA0};
    const std::pair<std::vector<uint8_t>, std::string> cases[] = {
        {{0x80}, "log record: expected a map at offset 0, found an array"},
        {with_value(record_key::type, cbor::item::uint(9)),
         "log record: record type 9 at offset 0 is not known (1 is a batch)"},
        {with_value(4, cbor::item::uint(0)), "log record: unknown key 4 at offset "},
        {with_value(record_key::leaves, three), "log record: 3 leaves at offset "},
        {with_value(record_key::leaves, cbor::item::uint(2)), "log record: key 3 (leaves) at offset "},
        {with_value(record_key::leaves, bad_leaf), "log record: the leaf at offset "},
        {with_value(record_key::leaves, text_leaf), "log record: the leaf at offset "},
        {with_value(record_key::token, cbor::item::uint(18)),
         "log record: COSE_Sign1: expected tag 18 at offset 4, found an unsigned integer"},
        {with_value(record_key::token, to_item(bad_payload_token)), "log record at offset 0: batch payload: key 1"},
        {without(record_key::type), "log record: key 1 (type) is missing from the map at offset 0"},
        {without(record_key::token), "log record: key 2 (token) is missing from the map at offset 0"},
        {without(record_key::leaves), "log record: key 3 (leaves) is missing from the map at offset 0"},
        {with_value(record_key::type, cbor::item::tstr("1")), "log record: key 1 (type) at offset "},
        {*cbor::encode(with_text_key), "log record: the key at offset "},
    };
    for (const auto& [encoded, why] : cases) {
        auto r = decode_log_record(encoded);
        ASSERT_FALSE(r) << why;
        EXPECT_EQ(r.message().rfind(why, 0), 0U) << r.message();
    }
    // The offsets point at the item: the leaves of this record follow the
    // type (1 octet + key) and the token.
    const size_t leaves_at = 1 + 2 + 1 + cbor::encode(to_item(b.token))->size() + 1;
    EXPECT_EQ(decode_log_record(with_value(record_key::leaves, cbor::item::uint(2))).message(),
              "log record: key 3 (leaves) at offset " + std::to_string(leaves_at) +
                  " is an unsigned integer, not an array");
    const std::string type_as_text = decode_log_record(with_value(record_key::type, cbor::item::tstr("1"))).message();
    EXPECT_TRUE(type_as_text.ends_with(" is a text string, not an unsigned integer")) << type_as_text;
    const std::string text_key = decode_log_record(*cbor::encode(with_text_key)).message();
    EXPECT_TRUE(text_key.ends_with(" is a text string, not an integer key of this map")) << text_key;
    const std::string text_in_leaves = decode_log_record(with_value(record_key::leaves, text_leaf)).message();
    EXPECT_TRUE(text_in_leaves.ends_with(" is a text string, not a byte string")) << text_in_leaves;
    EXPECT_EQ(decode_log_record(with_value(record_key::leaves, bad_leaf)).message(),
              "log record: the leaf at offset " + std::to_string(leaves_at + 1 + 2 + b.leaves[0].size()) +
                  ": claims: key 1 (version) is missing from the map at offset 0 (offsets within the leaf)");
}

TEST(evidence_decode, every_event_evidence_refusal_names_the_problem) {
    // Built around a structurally valid token (signature not checked here).
    batch_payload p = sample_payload();
    p.backend = backend_kind::software;
    p.hardware_rooted = false;
    cose_sign1 token;
    token.protected_header = {0xA1, 0x01, 0x26};
    token.kid = {'g'};
    token.payload = *encode_batch_payload(p);
    token.signature.assign(64, 0);
    const auto claims = *encode_claims(sample_claims());
    auto build = [&](const std::function<void(cbor::item&)>& change) {
        cbor::item m = cbor::item::map();
        m.put(evidence_key::claims, cbor::item::bstr(claims));
        m.put(evidence_key::leaf_index, cbor::item::uint(1));
        m.put(evidence_key::tree_size, cbor::item::uint(3));
        m.put(evidence_key::inclusion_path,
              cbor::item::array({cbor::item::bstr(digest{}), cbor::item::bstr(digest{})}));
        m.put(evidence_key::token, to_item(token));
        change(m);
        return *cbor::encode(m);
    };
    auto set = [](int64_t key, const cbor::item& v) {
        return [key, v](cbor::item& m) {
            for (size_t i = 0; i < m.elements.size(); i += 2) {
                if (m.elements[i].as_int64() == key) {
                    m.elements[i + 1] = v;
                    return;
                }
            }
            m.put(key, v);
        };
    };
    ASSERT_TRUE(decode_event_evidence(build([](cbor::item&) {})));
    std::vector<cbor::item> long_path(65, cbor::item::bstr(digest{}));
    cose_sign1 bad_token = token;
    bad_token.payload = {0x01};
    const std::pair<std::vector<uint8_t>, std::string> cases[] = {
        {{0xF6}, "event evidence: expected a map at offset 0, found null"},
        {{0x00, 0x00}, "event evidence: CBOR: 1 trailing octets after the item at offset 1"},
        {build(set(6, cbor::item::uint(0))), "event evidence: unknown key 6 at offset "},
        {build(set(evidence_key::claims, cbor::item::bstr(std::vector<uint8_t>{0xA0}))),
         "event evidence: claims: key 1 (version) is missing from the map at offset 0 (offsets within the claims)"},
        {build(set(evidence_key::leaf_index, cbor::item::uint(3))),
         "event evidence: leaf_index 3 is not below tree_size 3"},
        {build(set(evidence_key::tree_size, cbor::item::tstr("3"))), "event evidence: key 3 (tree_size) at offset "},
        {build(set(evidence_key::inclusion_path, cbor::item::array(long_path))),
         "event evidence: the inclusion path at offset "},
        {build(set(evidence_key::inclusion_path, cbor::item::array({cbor::item::bstr(std::vector<uint8_t>(31))}))),
         "event evidence: the inclusion path hash at offset "},
        {build(set(evidence_key::inclusion_path, cbor::item::bstr(digest{}))),
         "event evidence: key 4 (inclusion_path) at offset "},
        {build(set(evidence_key::token, cbor::item::array())),
         "event evidence: COSE_Sign1: expected tag 18 at offset "},
        {build(set(evidence_key::token, to_item(bad_token))),
         "event evidence: batch payload: expected a map at offset 0, found an unsigned integer (offsets within the "
         "payload)"},
        {build([](cbor::item& m) { m.elements.erase(m.elements.begin(), m.elements.begin() + 2); }),
         "event evidence: key 1 (claims) is missing from the map at offset 0"},
    };
    for (const auto& [encoded, why] : cases) {
        auto r = decode_event_evidence(encoded);
        ASSERT_FALSE(r) << why;
        EXPECT_EQ(r.message().rfind(why, 0), 0U) << r.message();
    }
}

// The second implementation: tests/hsm/independent_check.py.

fs::path find_independent_check() {
    std::vector<fs::path> candidates;
    if (const char* src = std::getenv("PTPSEC_SOURCE_DIR")) {
        candidates.push_back(fs::path(src) / "tests" / "hsm" / "independent_check.py");
    }
    const fs::path here = fs::path(__FILE__).parent_path();
    candidates.push_back(here / "independent_check.py");
    // __FILE__ is relative to the build directory in a meson build; the
    // test binary sits in <build>/tests/hsm.
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        candidates.push_back(exe.parent_path().parent_path().parent_path() / here / "independent_check.py");
    }
    for (const auto& c : candidates) {
        if (fs::exists(c, ec)) {
            return c;
        }
    }
    return {};
}

struct run_result {
    int exit_code = -1;
    std::string output;
};

run_result run(const std::string& command) {
    run_result r;
    FILE* p = ::popen((command + " 2>&1").c_str(), "r");
    if (p == nullptr) {
        return r;
    }
    char buf[512];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) {
        r.output.append(buf, n);
    }
    const int status = ::pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

// python3 from PATH when it has cbor2 and cryptography; Debian's
// /usr/bin/python3 (python3-cbor2, python3-cryptography) otherwise.
std::string find_python() {
    for (const char* py : {"python3", "/usr/bin/python3"}) {
        if (run(std::string(py) + " -c 'import cbor2, cryptography'").exit_code == 0) {
            return py;
        }
    }
    return {};
}

void write_bytes(const fs::path& p, std::span<const uint8_t> b) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

TEST_F(evidence, an_independent_python_implementation_accepts_our_log_and_refuses_a_tampered_one) {
    const fs::path script = find_independent_check();
    ASSERT_FALSE(script.empty()) << "tests/hsm/independent_check.py not found (set PTPSEC_SOURCE_DIR)";
    const std::string python = find_python();
    if (python.empty()) {
        GTEST_FAIL() << "no python3 with cbor2 and cryptography (make deps installs python3-cbor2 and "
                        "python3-cryptography)";
    }
    const std::vector<uint8_t> es256_key = key();
    for (const auto alg : {signature_algorithm::es256, signature_algorithm::eddsa}) {
        auto s = alg == signature_algorithm::es256 ? std::move(_signer) : open_signer(alg);
        ASSERT_TRUE(s);
        const batch_record b1 = sign(*s, request(5, 0, first_batch_previous_root, 0));
        auto req2 = request(8, 7, b1.payload.merkle_root, 2);
        req2.nonce = std::vector<uint8_t>(12, 0x77);
        const batch_record b2 = sign(*s, req2);
        const batch_record b3 = sign(*s, request(1, 15, b2.payload.merkle_root, 0));
        const auto log = concat_records({b1, b2, b3});
        ASSERT_FALSE(read_log(log).problem);
        const fs::path log_file = _dir / "evidence.log";
        const fs::path key_file = _dir / "signer.der";
        write_bytes(log_file, log);
        write_bytes(key_file, s->info().public_key_der);
        const std::string cmd =
            python + " " + script.string() + " --log " + log_file.string() + " --public-key " + key_file.string();
        const run_result ok = run(cmd);
        EXPECT_EQ(ok.exit_code, 0) << ok.output;
        EXPECT_EQ(ok.output.rfind("OK: 3 batches, 14 events, signer 'gm-a.example' (software)", 0), 0U) << ok.output;

        // One octet of one claim in the middle batch: the root no longer matches.
        const size_t leaf_at = encode_log_record(b1)->size() + encode_log_record(b2)->size() - 3;
        auto tampered = log;
        tampered[leaf_at] ^= 0x01;
        write_bytes(log_file, tampered);
        const run_result bad = run(cmd);
        EXPECT_EQ(bad.exit_code, 1) << bad.output;
        EXPECT_NE(bad.output.find("FAIL: "), std::string::npos) << bad.output;
        // A batch dropped from the middle breaks the chain.
        auto dropped = concat_records({b1, b3});
        write_bytes(log_file, dropped);
        const run_result gap = run(cmd);
        EXPECT_EQ(gap.exit_code, 1) << gap.output;
        EXPECT_NE(gap.output.find("previous_root is not the previous batch's root"), std::string::npos) << gap.output;
        // The EdDSA log checked with the ES256 key.
        if (alg == signature_algorithm::eddsa) {
            write_bytes(log_file, log);
            write_bytes(key_file, es256_key);
            const run_result wrong = run(cmd);
            EXPECT_EQ(wrong.exit_code, 1) << wrong.output;
            EXPECT_NE(wrong.output.find("EdDSA token but the key is not Ed25519"), std::string::npos) << wrong.output;
        }
        if (alg == signature_algorithm::es256) {
            _signer = std::move(s);
        }
    }
}

} // namespace
} // namespace ptpsec::hsm
