// signer and verifier (IEEE 1588-2019 16.14, seeds/001 §7) with both ICV
// engines and every algorithm: round trips over every transport and message
// type, cross-engine agreement, tampering, allow_mutable, every verify_status
// and sign_status, mixed bursts, and the GMAC IV and per-sender subkeys.

#include "auth_helpers.h"
#include "frame_builder.h"

#include <dataplane/auth.h>
#include <dataplane/sa_update.h>
#include <dataplane/worker.h>

#include <gtest/gtest.h>

#include <cstring>

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace ptpsec::test {
namespace {

using icv::algorithm;
using ptp::error;
using ptp::message_type;

constexpr uint8_t spp_plain = 5;
constexpr uint8_t spp_mutable = 6;
constexpr uint32_t key_main = 1;
constexpr uint32_t key_hmac = 2;
constexpr size_t headroom = 64;
constexpr uint64_t iv_start = 0x0000000100000000ULL;

/// The SAs every test starts from: spp 5 with key 1 of the algorithm under
/// test and key 2 HMAC-SHA256-128; spp 6 the same key 1 with allow_mutable.
std::vector<sa_config> standard_sas(algorithm alg) {
    return {
        make_sa(spp_plain, {make_key(key_main, alg, 0x11), make_key(key_hmac, algorithm::hmac_sha256_128, 0x22)}),
        make_sa(spp_mutable, {make_key(key_main, alg, 0x11)}, true),
    };
}

/// One engine, its SA database, a signer and a verifier.
struct side {
    icv::gmac_iv_counter iv{iv_start}; // first: it is cache-line aligned
    std::unique_ptr<icv::engine> engine;
    std::unique_ptr<sa_database> sad;
    std::unique_ptr<signer> sign;
    std::unique_ptr<verifier> verify;

    side(engine_kind k, const std::vector<sa_config>& sas, const ptp::wire_options& opt = {},
         size_t gmac_senders = default_gmac_senders)
        : engine(make_engine(k)), sad(install(*engine, sas, gmac_senders)) {
        if (sad) {
            sign = std::make_unique<signer>(*engine, *sad, iv, opt);
            verify = std::make_unique<verifier>(*engine, *sad, opt);
        }
    }
};

/// Signs every frame in one burst and expects all of them signed.
void sign_all(side& s, std::vector<owned_frame>& frames, uint8_t spp, uint32_t key_id) {
    auto v = views(frames);
    std::vector<frame_outcome> out(frames.size());
    const uint16_t n = s.sign->sign_burst(v.data(), static_cast<uint16_t>(v.size()), spp, key_id, out.data());
    take_lengths(frames, v);
    EXPECT_EQ(n, frames.size());
    for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(sign_of(out[i]), sign_status::signed_ok) << "frame " << i << " cause " << error_name(out[i].cause);
    }
}

/// Verifies every frame in one burst and returns the outcomes.
std::vector<frame_outcome> verify_all(side& s, std::vector<owned_frame>& frames, uint16_t* count = nullptr) {
    auto v = views(frames);
    std::vector<frame_outcome> out(frames.size());
    const uint16_t n = s.verify->verify_burst(v.data(), static_cast<uint16_t>(v.size()), out.data());
    if (count != nullptr) {
        *count = n;
    }
    return out;
}

verify_status verify_one(side& s, owned_frame f) {
    std::vector<owned_frame> one{std::move(f)};
    return verify_of(verify_all(s, one)[0]);
}

owned_frame signed_frame(side& s, const bytes& msg, const frame_spec& spec, uint8_t spp = spp_plain,
                         uint32_t key_id = key_main) {
    std::vector<owned_frame> one{owned_frame(make_frame(msg, spec), headroom)};
    sign_all(s, one, spp, key_id);
    return std::move(one[0]);
}

using auth_param = std::tuple<engine_kind, algorithm>;

std::string auth_param_name(const ::testing::TestParamInfo<auth_param>& i) {
    std::string n = engine_label(std::get<0>(i.param)) + "_" + std::string(icv::info(std::get<1>(i.param)).name);
    for (auto& ch : n) {
        if (ch == '-') {
            ch = '_';
        }
    }
    return n;
}

class auth : public ::testing::TestWithParam<auth_param> {
protected:
    engine_kind kind() const { return std::get<0>(GetParam()); }
    algorithm alg() const { return std::get<1>(GetParam()); }
};

TEST_P(auth, sign_then_verify_every_transport_and_type) {
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    const auto specs = transport_specs();
    std::vector<owned_frame> frames;
    std::vector<frame_spec> spec_of;
    std::vector<bytes> msg_of;
    uint16_t seq = 100;
    for (const auto& ns : specs) {
        for (const auto t : all_message_types) {
            // Every other frame arrives with Ethernet padding, which the
            // signed frame no longer carries.
            frame_spec spec = ns.spec;
            spec.trailer = seq % 2 == 0 ? 0 : 6;
            msg_of.push_back(build(t, {}, seq++));
            frames.emplace_back(make_frame(msg_of.back(), spec), headroom);
            spec_of.push_back(spec);
        }
    }
    ASSERT_GT(frames.size(), size_t{auth_max_burst}); // the burst is taken in parts
    sign_all(s, frames, spp_plain, key_main);

    const uint8_t icv_len = icv::icv_length(alg());
    const bool gmac = icv::is_gmac(alg());
    const size_t tlv = 4 + 6 + (gmac ? 8 : 0) + icv_len;
    for (size_t i = 0; i < frames.size(); ++i) {
        SCOPED_TRACE("frame " + std::to_string(i));
        EXPECT_TRUE(frame_consistent(frames[i].octets(), spec_of[i]));
        ptp::frame_info fi;
        const ptp::message_view mv = parse_signed(frames[i], fi);
        ASSERT_TRUE(mv.has_auth);
        EXPECT_EQ(mv.hdr.messageLength, msg_of[i].size() + tlv);
        EXPECT_EQ(mv.auth.spp, spp_plain);
        EXPECT_EQ(mv.auth.keyID, key_main);
        EXPECT_EQ(mv.auth.icv_len, icv_len);
        EXPECT_EQ(mv.auth.has_seqno, gmac);
        // The signed message starts with the original one (messageLength aside).
        const uint8_t* m = frames[i].buf.data() + fi.ptp_offset;
        for (size_t k = 0; k < msg_of[i].size(); ++k) {
            if (k != 2 && k != 3) {
                ASSERT_EQ(m[k], msg_of[i][k]) << "octet " << k;
            }
        }
    }

    std::vector<bytes> before;
    before.reserve(frames.size());
    for (const auto& f : frames) {
        before.push_back(f.copy());
    }
    uint16_t n = 0;
    const auto out = verify_all(s, frames, &n);
    EXPECT_EQ(n, frames.size());
    for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(verify_of(out[i]), verify_status::verified) << "frame " << i;
        EXPECT_EQ(frames[i].copy(), before[i]) << "verify changed frame " << i;
    }

    // Padding added on the way (a switch pads to 60 octets, a receiver
    // sees octets after the IP datagram) is not covered by the ICV.
    for (auto& f : frames) {
        f.buf.resize(f.len);
        f.buf.insert(f.buf.end(), 8, 0x00);
        f.len += 8;
    }
    for (const auto& o : verify_all(s, frames, &n)) {
        EXPECT_EQ(verify_of(o), verify_status::verified);
    }
    EXPECT_EQ(n, frames.size());
}

TEST_P(auth, verify_strip_gives_back_the_unsigned_frames) {
    // Sign, then verify and strip: every transport and message type comes
    // back as the frame that was signed, octet for octet (lengths and
    // checksums included). A tampered frame and an unsigned one in the same
    // burst are not stripped and not changed.
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    std::vector<owned_frame> frames;
    std::vector<bytes> original;
    uint16_t seq = 300;
    for (const auto& ns : transport_specs()) {
        for (const auto t : all_message_types) {
            original.push_back(make_frame(build(t, {}, seq++), ns.spec));
            frames.emplace_back(original.back(), headroom);
        }
    }
    sign_all(s, frames, spp_plain, key_main);
    const size_t tampered = 3;
    frames[tampered].buf[frames[tampered].len - 1] ^= 0x01; // the last ICV octet
    const bytes tampered_before = frames[tampered].copy();
    frames.emplace_back(original[5], headroom); // unsigned
    auto v = views(frames);
    std::vector<frame_outcome> out(frames.size());
    const uint16_t n = s.verify->verify_strip_burst(v.data(), static_cast<uint16_t>(v.size()), out.data());
    take_lengths(frames, v);
    EXPECT_EQ(n, frames.size() - 2);
    for (size_t i = 0; i + 1 < frames.size(); ++i) {
        SCOPED_TRACE("frame " + std::to_string(i));
        if (i == tampered) {
            EXPECT_EQ(verify_of(out[i]), verify_status::bad_icv);
            EXPECT_EQ(frames[i].copy(), tampered_before);
        } else {
            EXPECT_EQ(verify_of(out[i]), verify_status::verified);
            EXPECT_EQ(frames[i].copy(), original[i]);
        }
    }
    EXPECT_EQ(verify_of(out.back()), verify_status::unsigned_message);
    EXPECT_EQ(frames.back().copy(), original[5]);
}

TEST_P(auth, replay_table_refuses_what_it_has_seen) {
    // With a replay table, a frame whose ICV is good is accepted once: the
    // same burst again is refused as replayed, and a frame that falls
    // behind the window as too_old. A tampered replay is bad_icv (the ICV
    // is checked first), and without a table nothing is refused.
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    replay_table table(replay_config{64, 64});
    verifier guarded(*s.engine, *s.sad, {}, &table);
    std::vector<owned_frame> frames;
    for (uint16_t seq = 0; seq < 8; ++seq) {
        frames.emplace_back(
            make_frame(build(message_type::sync, {}, static_cast<uint16_t>(1000 + seq)), spec_named("udp4").spec),
            headroom);
    }
    sign_all(s, frames, spp_plain, key_main);
    auto verify_with = [&](verifier& v, std::vector<owned_frame>& fs) {
        auto views_of = views(fs);
        std::vector<frame_outcome> out(fs.size());
        v.verify_burst(views_of.data(), static_cast<uint16_t>(views_of.size()), out.data());
        std::vector<verify_status> st;
        for (const auto& o : out) {
            st.push_back(verify_of(o));
        }
        return st;
    };
    EXPECT_EQ(verify_with(guarded, frames), std::vector<verify_status>(8, verify_status::verified));
    EXPECT_EQ(verify_with(guarded, frames), std::vector<verify_status>(8, verify_status::replayed));
    EXPECT_EQ(table.counters().verdicts[static_cast<size_t>(replay_verdict::replayed)], 8U);

    // 100 sequenceIds later the first ones are behind the 64-wide window.
    std::vector<owned_frame> later{
        owned_frame(make_frame(build(message_type::sync, {}, 1100), spec_named("udp4").spec), headroom)};
    sign_all(s, later, spp_plain, key_main);
    EXPECT_EQ(verify_with(guarded, later), std::vector<verify_status>{verify_status::verified});
    std::vector<owned_frame> old_one{owned_frame(frames[0].copy(), headroom)};
    EXPECT_EQ(verify_with(guarded, old_one), std::vector<verify_status>{verify_status::too_old});

    std::vector<owned_frame> tampered{owned_frame(frames[1].copy(), headroom)};
    tampered[0].buf[tampered[0].len - 1] ^= 0x01;
    EXPECT_EQ(verify_with(guarded, tampered), std::vector<verify_status>{verify_status::bad_icv});

    // The verifier without a table has no memory.
    EXPECT_EQ(verify_with(*s.verify, frames), std::vector<verify_status>(8, verify_status::verified));
}

TEST_P(auth, icv_is_the_mac_of_the_message_up_to_the_icv) {
    // 16.14.3.6 / linuxptp: the ICV covers the message from its first octet
    // to the ICV field, with the final messageLength. Recompute it with a
    // key prepared on its own (for GMAC, the sender's subkey).
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    const owned_frame f = signed_frame(s, build(message_type::announce), frame_spec{});
    ptp::frame_info fi;
    const ptp::message_view mv = parse_signed(f, fi);
    ASSERT_TRUE(mv.has_auth);
    const uint8_t* msg = f.buf.data() + fi.ptp_offset;
    uint8_t icv[icv::max_icv_len] = {};
    const key_config kc = make_key(key_main, alg(), 0x11);
    if (icv::is_gmac(alg())) {
        auto kdf = icv::gmac_kdf::create(*s.engine, alg(), kc.key.span());
        ASSERT_TRUE(kdf) << kdf.message();
        uint8_t okm[32 + icv::gmac_salt_len];
        ASSERT_TRUE(kdf->derive(*s.engine, msg + ptp::source_port_identity_offset, okm));
        const size_t key_len = icv::info(alg()).key_len;
        auto key = s.engine->prepare(alg(), std::span<const uint8_t>(okm, key_len));
        ASSERT_TRUE(key) << key.message();
        uint8_t nonce[icv::gmac_nonce_len];
        icv::make_gmac_nonce(okm + key_len, mv.auth.sequenceNo, nonce);
        ASSERT_TRUE(s.engine->compute_one(**key, {msg, mv.auth.icv_offset}, nonce, icv));
    } else {
        auto key = s.engine->prepare(alg(), kc.key.span());
        ASSERT_TRUE(key) << key.message();
        ASSERT_TRUE(s.engine->compute_one(**key, {msg, mv.auth.icv_offset}, nullptr, icv));
    }
    EXPECT_TRUE(std::equal(icv, icv + mv.auth.icv_len, msg + mv.auth.icv_offset));
}

TEST_P(auth, signed_by_one_engine_verifies_with_the_other) {
    side a(kind(), standard_sas(alg()));
    side b(other_engine(kind()), standard_sas(alg()));
    ASSERT_NE(a.sad, nullptr);
    ASSERT_NE(b.sad, nullptr);
    std::vector<owned_frame> frames;
    for (const auto& ns : transport_specs()) {
        for (const auto t : {message_type::sync, message_type::announce, message_type::management}) {
            frames.emplace_back(make_frame(build(t), ns.spec), headroom);
        }
    }
    std::vector<owned_frame> copies = frames;
    sign_all(a, frames, spp_plain, key_main);
    sign_all(b, copies, spp_mutable, key_main);
    uint16_t n = 0;
    for (const auto& o : verify_all(b, frames, &n)) {
        EXPECT_EQ(verify_of(o), verify_status::verified);
    }
    EXPECT_EQ(n, frames.size());
    for (const auto& o : verify_all(a, copies, &n)) {
        EXPECT_EQ(verify_of(o), verify_status::verified);
    }
    EXPECT_EQ(n, copies.size());
}

/// What the verifier must say about a signed Announce (64 octets, then a
/// 24-octet TICKET TLV, then the AUTHENTICATION TLV) with bit `mask` of
/// octet `i` flipped; nullopt where any refusal will do (the parse itself
/// breaks in ways that depend on the values around).
std::optional<verify_status> expected_after_flip(size_t i, uint8_t mask, const ptp::message_view& mv) {
    const size_t ticket_at = 64;
    const size_t auth_at = mv.auth.offset;
    if (i == 0) {
        // High nibble: majorSdoId, covered by the ICV only. Low: messageType.
        return mask == 0x80 ? std::optional{verify_status::bad_icv} : std::nullopt;
    }
    if (i == 1) {
        // Low nibble versionPTP, high nibble minorVersionPTP.
        return mask == 0x01 ? verify_status::malformed : verify_status::bad_icv;
    }
    if (i == 2 || i == 3) {
        return std::nullopt; // messageLength
    }
    if (i < ticket_at + 2 || (i >= ticket_at + 4 && i < auth_at)) {
        return verify_status::bad_icv; // header, body, TICKET tlvType and value
    }
    if (i < ticket_at + 4) {
        return std::nullopt; // TICKET lengthField
    }
    if (i < auth_at + 2) {
        return verify_status::unsigned_message; // no longer an AUTHENTICATION TLV
    }
    if (i < auth_at + 4) {
        return verify_status::malformed; // lengthField
    }
    if (i == auth_at + 4) {
        return verify_status::unknown_spp;
    }
    if (i == auth_at + 5) {
        return verify_status::malformed; // secParamIndicator: disclosedKey, RES or reserved
    }
    if (i < auth_at + 10) {
        return verify_status::unknown_key;
    }
    return verify_status::bad_icv; // sequenceNo, ICV
}

TEST_P(auth, every_flipped_octet_fails) {
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    const bytes msg = build(message_type::announce, {make_tlv(ptp::default_ticket_tlv_type, pattern(20, 5))});
    const owned_frame good = signed_frame(s, msg, frame_spec{});
    ptp::frame_info fi;
    const ptp::message_view mv = parse_signed(good, fi);
    ASSERT_TRUE(mv.has_auth);
    ASSERT_EQ(verify_one(s, good), verify_status::verified);
    const size_t ml = mv.hdr.messageLength;

    std::vector<owned_frame> tampered;
    std::vector<size_t> where;
    std::vector<uint8_t> masks;
    for (size_t i = 0; i < ml; ++i) {
        for (const uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
            owned_frame f = good;
            f.buf[fi.ptp_offset + i] ^= mask;
            tampered.push_back(std::move(f));
            where.push_back(i);
            masks.push_back(mask);
        }
    }
    uint16_t n = 0;
    const auto out = verify_all(s, tampered, &n);
    EXPECT_EQ(n, 0);
    for (size_t k = 0; k < out.size(); ++k) {
        const size_t i = where[k];
        const uint8_t mask = masks[k];
        const verify_status st = verify_of(out[k]);
        EXPECT_NE(st, verify_status::verified) << "octet " << i << " mask " << int{mask};
        const auto want = expected_after_flip(i, mask, mv);
        if (want) {
            EXPECT_EQ(st, *want) << "octet " << i << " mask " << int{mask};
        }
    }
}

TEST_P(auth, allow_mutable_lets_correction_field_change) {
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    for (const auto& ns : {spec_named("l2"), spec_named("udp4"), spec_named("udp6")}) {
        SCOPED_TRACE(ns.name);
        const bytes msg = build(message_type::sync);
        const owned_frame mut = signed_frame(s, msg, ns.spec, spp_mutable);
        const owned_frame fixed = signed_frame(s, msg, ns.spec, spp_plain);
        const size_t corr = layout_of(ns.spec).ptp + ptp::correction_offset;
        // The signer puts correctionField back after computing the ICV.
        EXPECT_TRUE(std::equal(msg.begin() + 8, msg.begin() + 16, mut.buf.begin() + static_cast<ptrdiff_t>(corr)));
        EXPECT_TRUE(frame_consistent(mut.octets(), ns.spec));

        // A transparent clock adds residence time (11.5.2).
        owned_frame mut2 = mut;
        owned_frame fixed2 = fixed;
        store_be64(mut2.buf.data() + corr, 0x00000000ABCDEF00ULL);
        store_be64(fixed2.buf.data() + corr, 0x00000000ABCDEF00ULL);
        const bytes mut2_before = mut2.copy();
        EXPECT_EQ(verify_one(s, mut2), verify_status::verified);
        EXPECT_EQ(verify_one(s, fixed2), verify_status::bad_icv);
        // The verifier restores the field it zeroed.
        std::vector<owned_frame> one{mut2};
        verify_all(s, one);
        EXPECT_EQ(one[0].copy(), mut2_before);

        // Other header fields stay protected under allow_mutable.
        owned_frame seq = mut;
        seq.buf[layout_of(ns.spec).ptp + 31] ^= 1;
        EXPECT_EQ(verify_one(s, seq), verify_status::bad_icv);
    }
}

TEST_P(auth, not_ptp_and_malformed_frames_are_left_alone) {
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    struct c {
        std::string name;
        bytes frame;
        sign_status sign;
        verify_status verify;
        error cause;
    };
    const bytes sync = build(message_type::sync);
    std::vector<c> cases;
    bytes arp = make_frame(sync, frame_spec{});
    store_be16(arp.data() + 12, 0x0806);
    cases.push_back({"arp", arp, sign_status::not_ptp, verify_status::not_ptp, error::not_ptp});
    frame_spec ntp;
    ntp.tp = ptp::transport::udp_ipv4;
    ntp.udp_port = 123;
    cases.push_back({"ntp", make_frame(sync, ntp), sign_status::not_ptp, verify_status::not_ptp, error::not_ptp});
    frame_spec frag = ntp;
    frag.udp_port = 0;
    frag.ipv4_fragment_field = 0x2000;
    cases.push_back(
        {"fragment", make_frame(sync, frag), sign_status::malformed, verify_status::malformed, error::ip_fragment});
    frame_spec three;
    three.vlan_tpids = {ptp::ethertype_qinq, ptp::ethertype_vlan, ptp::ethertype_vlan};
    cases.push_back({"three_vlans", make_frame(sync, three), sign_status::malformed, verify_status::malformed,
                     error::too_many_vlans});
    bytes bad_type = make_frame(sync, frame_spec{});
    bad_type[14] = 0x05;
    cases.push_back(
        {"type_5", bad_type, sign_status::malformed, verify_status::malformed, error::unknown_message_type});
    bytes bad_version = make_frame(sync, frame_spec{});
    bad_version[15] = 0x11;
    cases.push_back(
        {"version_1", bad_version, sign_status::malformed, verify_status::malformed, error::unknown_version});
    const bytes overrun_msg = [] {
        bytes m = build(message_type::sync, {make_tlv(ptp::tlv_path_trace, pattern(8, 1))});
        store_be16(m.data() + 46, 9);
        return m;
    }();
    cases.push_back({"tlv_overrun", make_frame(overrun_msg, frame_spec{}), sign_status::malformed,
                     verify_status::malformed, error::tlv_overrun});
    bytes short_frame = make_frame(sync, frame_spec{});
    short_frame.resize(14 + 30);
    cases.push_back({"short", short_frame, sign_status::malformed, verify_status::malformed, error::truncated});
    bytes runt = make_frame(sync, frame_spec{});
    runt.resize(10);
    cases.push_back({"runt", runt, sign_status::malformed, verify_status::malformed, error::truncated_frame});
    frame_spec u4;
    u4.tp = ptp::transport::udp_ipv4;
    bytes long_ip = make_frame(sync, u4);
    store_be16(long_ip.data() + 16, 0x0400);
    cases.push_back({"ip_length", long_ip, sign_status::malformed, verify_status::malformed, error::truncated_frame});
    bytes bad_udp = make_frame(sync, u4);
    store_be16(bad_udp.data() + 34 + 4, 4);
    cases.push_back({"udp_length", bad_udp, sign_status::malformed, verify_status::malformed, error::bad_udp_length});
    const bytes bad_auth = build(message_type::sync, {make_auth_tlv(spp_plain, 0, key_main, 6)});
    cases.push_back({"bad_auth_tlv", make_frame(bad_auth, frame_spec{}), sign_status::malformed,
                     verify_status::malformed, error::bad_auth_tlv});

    std::vector<owned_frame> frames;
    frames.reserve(cases.size());
    for (const auto& k : cases) {
        frames.emplace_back(k.frame, headroom);
    }
    auto v = views(frames);
    std::vector<frame_outcome> out(frames.size());
    EXPECT_EQ(s.sign->sign_burst(v.data(), static_cast<uint16_t>(v.size()), spp_plain, key_main, out.data()), 0);
    for (size_t i = 0; i < cases.size(); ++i) {
        SCOPED_TRACE(cases[i].name);
        EXPECT_EQ(sign_of(out[i]), cases[i].sign);
        EXPECT_EQ(out[i].cause, cases[i].cause);
        // Untouched, octet for octet, and the length too.
        EXPECT_EQ(v[i].len, cases[i].frame.size());
        EXPECT_TRUE(std::equal(cases[i].frame.begin(), cases[i].frame.end(), frames[i].buf.begin()));
    }
    uint16_t n = 0;
    const auto vo = verify_all(s, frames, &n);
    EXPECT_EQ(n, 0);
    for (size_t i = 0; i < cases.size(); ++i) {
        SCOPED_TRACE(cases[i].name);
        EXPECT_EQ(verify_of(vo[i]), cases[i].verify);
        EXPECT_EQ(vo[i].cause, cases[i].cause);
    }
}

TEST_P(auth, sign_refusals) {
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    const bytes f = make_frame(build(message_type::follow_up), frame_spec{});
    // No SA or no key: no_sa, untouched.
    const std::pair<uint8_t, uint32_t> missing[] = {{99, key_main}, {spp_plain, 77}, {spp_mutable, key_hmac}};
    for (const auto& [spp, key] : missing) {
        std::vector<owned_frame> one{owned_frame(f, headroom)};
        auto v = views(one);
        frame_outcome out;
        EXPECT_EQ(s.sign->sign_burst(v.data(), 1, spp, key, &out), 0);
        EXPECT_EQ(sign_of(out), sign_status::no_sa) << int{spp} << "/" << key;
        EXPECT_EQ(v[0].len, f.size());
        EXPECT_EQ(one[0].copy(), f);
    }
    // Without a key, what is not PTP is still not_ptp (forwarded), not no_sa.
    {
        bytes arp(60, 0x11);
        store_be16(arp.data() + 12, 0x0806);
        std::vector<owned_frame> two{owned_frame(arp, headroom), owned_frame(f, headroom)};
        auto v = views(two);
        std::array<frame_outcome, 2> out{};
        EXPECT_EQ(s.sign->sign_burst(v.data(), 2, 99, key_main, out.data()), 0);
        EXPECT_EQ(sign_of(out[0]), sign_status::not_ptp);
        EXPECT_EQ(sign_of(out[1]), sign_status::no_sa);
        EXPECT_EQ(s.sign->sign_burst_current(v.data(), 2, spp_plain, out.data()), 0); // no current key named
        EXPECT_EQ(sign_of(out[0]), sign_status::not_ptp);
        EXPECT_EQ(sign_of(out[1]), sign_status::no_sa);
        EXPECT_EQ(two[0].copy(), arp);
    }
    // Empty bursts.
    EXPECT_EQ(s.sign->sign_burst(nullptr, 0, spp_plain, key_main, nullptr), 0);
    EXPECT_EQ(s.verify->verify_burst(nullptr, 0, nullptr), 0);
    // No room.
    {
        std::vector<owned_frame> one{owned_frame(f, 10)};
        auto v = views(one);
        frame_outcome out;
        EXPECT_EQ(s.sign->sign_burst(v.data(), 1, spp_plain, key_main, &out), 0);
        EXPECT_EQ(sign_of(out), sign_status::no_room);
        EXPECT_EQ(out.cause, error::no_room);
        EXPECT_EQ(v[0].len, f.size());
        EXPECT_EQ(one[0].copy(), f);
    }
    // Already signed: not signed twice.
    {
        owned_frame once = signed_frame(s, build(message_type::follow_up), frame_spec{});
        const bytes signed_bytes = once.copy();
        std::vector<owned_frame> one{std::move(once)};
        auto v = views(one);
        frame_outcome out;
        EXPECT_EQ(s.sign->sign_burst(v.data(), 1, spp_plain, key_main, &out), 0);
        EXPECT_EQ(sign_of(out), sign_status::already_signed);
        EXPECT_EQ(v[0].len, signed_bytes.size());
        EXPECT_EQ(one[0].copy(), signed_bytes);
    }
}

TEST_P(auth, verify_refusals) {
    const algorithm a = alg();
    side s(kind(), standard_sas(a));
    ASSERT_NE(s.sad, nullptr);
    const bytes msg = build(message_type::delay_req);
    const owned_frame good = signed_frame(s, msg, frame_spec{});

    // Unsigned.
    EXPECT_EQ(verify_one(s, owned_frame(make_frame(msg, frame_spec{}), 0)), verify_status::unsigned_message);

    // The verifier knows neither the SPP nor, in another database, the key.
    side no_spp(kind(), {make_sa(9, {make_key(key_main, a, 0x11)})});
    ASSERT_NE(no_spp.sad, nullptr);
    EXPECT_EQ(verify_one(no_spp, good), verify_status::unknown_spp);
    side no_key(kind(), {make_sa(spp_plain, {make_key(key_main + 10, a, 0x11)})});
    ASSERT_NE(no_key.sad, nullptr);
    EXPECT_EQ(verify_one(no_key, good), verify_status::unknown_key);

    // Same key ID, an algorithm with another ICV length.
    const algorithm other_len = icv::icv_length(a) == 32 ? algorithm::hmac_sha256_128 : algorithm::hmac_sha256;
    side wrong_len(kind(), {make_sa(spp_plain, {make_key(key_main, other_len, 0x11)})});
    ASSERT_NE(wrong_len.sad, nullptr);
    EXPECT_EQ(verify_one(wrong_len, good), verify_status::icv_length_mismatch);

    // Same key ID and ICV length, GMAC on one side only: the TLV's
    // sequenceNo presence must match the key (seeds/001 §4.2.14).
    if (icv::icv_length(a) == 16) {
        const algorithm flipped = icv::is_gmac(a) ? algorithm::aes_cmac_128 : algorithm::aes_gmac_128;
        side iv(kind(), {make_sa(spp_plain, {make_key(key_main, flipped, 0x11)})});
        ASSERT_NE(iv.sad, nullptr);
        EXPECT_EQ(verify_one(iv, good), verify_status::iv_mismatch);
    }

    // Same algorithm, another key value.
    side other_key(kind(), {make_sa(spp_plain, {make_key(key_main, a, 0x99)})});
    ASSERT_NE(other_key.sad, nullptr);
    EXPECT_EQ(verify_one(other_key, good), verify_status::bad_icv);

    // A TLV whose ICV is one octet short of the key's.
    owned_frame shorter = good;
    {
        ptp::frame_info fi;
        const ptp::message_view mv = parse_signed(shorter, fi);
        uint8_t* m = shorter.buf.data() + fi.ptp_offset;
        store_be16(m + 2, static_cast<uint16_t>(mv.hdr.messageLength - 1));
        store_be16(m + mv.auth.offset + 2, static_cast<uint16_t>(mv.auth.length - 1));
        --shorter.len;
    }
    EXPECT_EQ(verify_one(s, shorter), verify_status::icv_length_mismatch);
}

/// An add_key update carrying `k`, with a lifetime.
sa_wire::update add_key_update(uint8_t spp, const key_config& k, uint64_t lifetime_ms) {
    sa_wire::update u;
    u.operation = static_cast<uint8_t>(sa_wire::op::add_key);
    u.spp = spp;
    u.key_id = k.key_id;
    u.algorithm = static_cast<uint8_t>(k.alg);
    u.key_len = static_cast<uint8_t>(k.key.size());
    std::memcpy(u.key, k.key.span().data(), k.key.size());
    u.lifetime_ms = lifetime_ms;
    return u;
}

TEST_P(auth, verify_tells_removed_and_expired_keys_from_unknown_ones) {
    const algorithm a = alg();
    side s(kind(), {make_sa(spp_plain, {make_key(1, a, 0x11), make_key(3, a, 0x33)})});
    ASSERT_NE(s.sad, nullptr);
    // Key 2 comes by update, with a lifetime of one second from t0.
    constexpr uint64_t t0 = 5'000'000'000;
    constexpr uint64_t second = 1'000'000'000;
    auto with2 = apply_update(*s.sad, add_key_update(spp_plain, make_key(2, a, 0x22), 1000), *s.engine, t0);
    ASSERT_TRUE(with2) << with2.message();
    s.sign->use(*with2->next);
    const bytes msg = build(message_type::sync);
    std::vector<owned_frame> frames;
    for (const uint32_t key : {1U, 3U, 2U}) {
        frames.push_back(signed_frame(s, msg, frame_spec{}, spp_plain, key));
    }
    // Key 4 is one this SA never had.
    side other(kind(), {make_sa(spp_plain, {make_key(4, a, 0x44)})});
    ASSERT_NE(other.sad, nullptr);
    frames.push_back(signed_frame(other, msg, frame_spec{}, spp_plain, 4));

    // Before: all three keys verify.
    s.verify->use(*with2->next);
    uint16_t n = 0;
    auto before = verify_all(s, frames, &n);
    EXPECT_EQ(n, 3);
    EXPECT_EQ(verify_of(before[3]), verify_status::unknown_key);

    // Key 1 removed, then key 2's deadline passes.
    sa_wire::update remove;
    remove.operation = static_cast<uint8_t>(sa_wire::op::remove_key);
    remove.spp = spp_plain;
    remove.key_id = 1;
    auto without1 = apply_update(*with2->next, remove, *s.engine, t0);
    ASSERT_TRUE(without1) << without1.message();
    EXPECT_FALSE(expire_keys(*without1->next, t0 + second - 1).has_value());
    auto expired = expire_keys(*without1->next, t0 + second);
    ASSERT_TRUE(expired.has_value());
    s.verify->use(*expired->next);

    // One burst, in order: removed, kept, expired, never seen.
    auto after = verify_all(s, frames, &n);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(verify_of(after[0]), verify_status::expired_key) << "removed";
    EXPECT_EQ(verify_of(after[1]), verify_status::verified);
    EXPECT_EQ(verify_of(after[2]), verify_status::expired_key) << "expired";
    EXPECT_EQ(verify_of(after[3]), verify_status::unknown_key) << "never installed";
    // Each on its own too (no key remembered from a previous frame).
    EXPECT_EQ(verify_one(s, frames[2]), verify_status::expired_key);
    EXPECT_EQ(verify_one(s, frames[3]), verify_status::unknown_key);
}

TEST_P(auth, engine_refusal_is_crypto_failed_and_leaves_frames_alone) {
    // Keys expanded by one engine handed to the other: the engine refuses
    // the requests (a programming error). Nothing may pass as signed or
    // verified, and the frames stay as they were (auth.h, sign_burst).
    side keys(kind(), standard_sas(alg()));
    ASSERT_NE(keys.sad, nullptr);
    auto wrong = make_engine(other_engine(kind()));
    icv::gmac_iv_counter iv(1);
    signer sgn(*wrong, *keys.sad, iv);
    verifier ver(*wrong, *keys.sad);

    std::vector<bytes> originals;
    std::vector<owned_frame> frames;
    for (const auto& ns : transport_specs()) {
        originals.push_back(make_frame(build(message_type::sync), ns.spec));
        frames.emplace_back(originals.back(), headroom);
    }
    auto v = views(frames);
    std::vector<frame_outcome> out(frames.size());
    EXPECT_EQ(sgn.sign_burst(v.data(), static_cast<uint16_t>(v.size()), spp_mutable, key_main, out.data()), 0);
    take_lengths(frames, v);
    for (size_t i = 0; i < frames.size(); ++i) {
        EXPECT_EQ(sign_of(out[i]), sign_status::crypto_failed) << "frame " << i;
        EXPECT_EQ(frames[i].copy(), originals[i]) << "frame " << i << " changed although not signed";
    }

    std::vector<owned_frame> good;
    for (const auto& ns : transport_specs()) {
        good.push_back(signed_frame(keys, build(message_type::sync), ns.spec, spp_mutable));
    }
    std::vector<bytes> before;
    before.reserve(good.size());
    for (const auto& g : good) {
        before.push_back(g.copy());
    }
    auto gv = views(good);
    std::vector<frame_outcome> vout(good.size());
    EXPECT_EQ(ver.verify_burst(gv.data(), static_cast<uint16_t>(gv.size()), vout.data()), 0);
    for (size_t i = 0; i < good.size(); ++i) {
        EXPECT_EQ(verify_of(vout[i]), verify_status::crypto_failed);
        EXPECT_EQ(good[i].copy(), before[i]); // correctionField put back
    }
}

/// Frame kinds mixed into bursts, with what sign and verify make of them.
enum class kind_of_frame : uint8_t { l2, udp4, udp6, vlan, arp, ntp, bad_type, bad_ip, overrun, presigned, count };

TEST_P(auth, mixed_bursts_keep_order_and_outcomes) {
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    frame_spec l2;
    frame_spec u4;
    u4.tp = ptp::transport::udp_ipv4;
    frame_spec u6;
    u6.tp = ptp::transport::udp_ipv6;
    u6.ipv6_exts = {{0, 0, 0}};
    frame_spec vlan;
    vlan.vlan_tpids = {ptp::ethertype_vlan};
    frame_spec ntp = u4;
    ntp.udp_port = 123;

    uint32_t lcg = 12345;
    for (const uint16_t burst : std::initializer_list<uint16_t>{1, 8, 32, 64, 200}) {
        SCOPED_TRACE("burst " + std::to_string(burst));
        std::vector<owned_frame> frames;
        std::vector<kind_of_frame> kinds;
        std::vector<bytes> before;
        uint16_t want_signed = 0;
        for (uint16_t i = 0; i < burst; ++i) {
            lcg = lcg * 1103515245u + 12345u;
            auto k = static_cast<kind_of_frame>((lcg >> 16) % static_cast<uint32_t>(kind_of_frame::count));
            if (burst == 1) {
                k = kind_of_frame::l2;
            }
            const auto t = all_message_types[i % all_message_types.size()];
            const bytes msg = build(t, {}, i);
            bytes f;
            switch (k) {
            case kind_of_frame::l2:
            case kind_of_frame::presigned:
                f = make_frame(msg, l2);
                break;
            case kind_of_frame::udp4:
                f = make_frame(msg, u4);
                break;
            case kind_of_frame::udp6:
                f = make_frame(msg, u6);
                break;
            case kind_of_frame::vlan:
                f = make_frame(msg, vlan);
                break;
            case kind_of_frame::arp:
                f = make_frame(msg, l2);
                store_be16(f.data() + 12, 0x0806);
                break;
            case kind_of_frame::ntp:
                f = make_frame(msg, ntp);
                break;
            case kind_of_frame::bad_type:
                f = make_frame(msg, l2);
                f[14] = 0x0E;
                break;
            case kind_of_frame::bad_ip:
                f = make_frame(msg, u4);
                f[14] = 0x44;
                break;
            case kind_of_frame::overrun:
                f = make_frame(msg, l2);
                store_be16(f.data() + 16, static_cast<uint16_t>(msg.size() + 2));
                f.push_back(0);
                f.push_back(0);
                break;
            case kind_of_frame::count:
                break;
            }
            if (k == kind_of_frame::presigned) {
                frames.push_back(signed_frame(s, msg, l2));
            } else {
                frames.emplace_back(f, headroom);
            }
            kinds.push_back(k);
            before.push_back(frames.back().copy());
            want_signed = static_cast<uint16_t>(want_signed + (k == kind_of_frame::l2 || k == kind_of_frame::udp4 ||
                                                               k == kind_of_frame::udp6 || k == kind_of_frame::vlan));
        }

        auto v = views(frames);
        std::vector<frame_outcome> out(burst);
        EXPECT_EQ(s.sign->sign_burst(v.data(), burst, spp_plain, key_main, out.data()), want_signed);
        take_lengths(frames, v);
        for (uint16_t i = 0; i < burst; ++i) {
            SCOPED_TRACE("frame " + std::to_string(i));
            sign_status want = sign_status::signed_ok;
            error cause = error::none;
            switch (kinds[i]) {
            case kind_of_frame::arp:
            case kind_of_frame::ntp:
                want = sign_status::not_ptp;
                cause = error::not_ptp;
                break;
            case kind_of_frame::bad_type:
                want = sign_status::malformed;
                cause = error::unknown_message_type;
                break;
            case kind_of_frame::bad_ip:
                want = sign_status::malformed;
                cause = error::bad_ip_header;
                break;
            case kind_of_frame::overrun:
                want = sign_status::malformed;
                cause = error::tlv_overrun;
                break;
            case kind_of_frame::presigned:
                want = sign_status::already_signed;
                break;
            default:
                break;
            }
            EXPECT_EQ(sign_of(out[i]), want);
            EXPECT_EQ(out[i].cause, cause);
            if (want != sign_status::signed_ok) {
                EXPECT_EQ(frames[i].copy(), before[i]) << "a frame that was not signed changed";
            } else {
                // Order kept: the frame at i is still the message with sequenceId i.
                ptp::frame_info fi;
                const ptp::message_view mv = parse_signed(frames[i], fi);
                EXPECT_EQ(mv.hdr.sequenceId, i);
                EXPECT_TRUE(mv.has_auth);
            }
        }

        uint16_t n = 0;
        const auto vo = verify_all(s, frames, &n);
        uint16_t want_verified = 0;
        for (uint16_t i = 0; i < burst; ++i) {
            SCOPED_TRACE("frame " + std::to_string(i));
            verify_status want = verify_status::verified;
            switch (kinds[i]) {
            case kind_of_frame::arp:
            case kind_of_frame::ntp:
                want = verify_status::not_ptp;
                break;
            case kind_of_frame::bad_type:
            case kind_of_frame::bad_ip:
            case kind_of_frame::overrun:
                want = verify_status::malformed;
                break;
            default:
                break;
            }
            want_verified = static_cast<uint16_t>(want_verified + (want == verify_status::verified));
            EXPECT_EQ(verify_of(vo[i]), want);
            EXPECT_EQ(vo[i].cause, out[i].cause);
        }
        EXPECT_EQ(n, want_verified);
    }
}

// ---------------------------------------------------------------------------
// Tickets (seeds/001 §6): a requester's unicast requests carry the ticket of
// the key they are signed with, in a TICKET TLV before the AUTHENTICATION
// TLV, so that the ICV covers it.

/// 16.1.4.1 REQUEST_UNICAST_TRANSMISSION: Announce, 2 s, 300 s.
bytes request_unicast_tlv() {
    bytes v(6, 0);
    v[0] = static_cast<uint8_t>(static_cast<uint8_t>(message_type::announce) << 4);
    v[1] = 1;
    store_be32(v.data() + 2, 300);
    return make_tlv(ptp::tlv_request_unicast_transmission, v);
}

/// A unicast negotiation request: Signaling with REQUEST_UNICAST_TRANSMISSION
/// (and `more` TLVs after it).
bytes unicast_request(uint16_t seq, const std::vector<bytes>& more = {}) {
    std::vector<bytes> tlvs{request_unicast_tlv()};
    tlvs.insert(tlvs.end(), more.begin(), more.end());
    return build(message_type::signaling, tlvs, seq);
}

/// A TICKET TLV value: a Ticket record (type 1034) with an opaque body.
bytes ticket_value(size_t len = 96, uint8_t seed = 0x5C) {
    bytes v = pattern(len, seed);
    v[0] = 0x84;
    v[1] = 0x0A;
    return v;
}

/// Gives key `key_id` of `spp` the ticket `value`, as set_ticket leaves it.
void give_ticket(sa_database& sad, uint8_t spp, uint32_t key_id, const bytes& value) {
    key_ticket t;
    t.key_id = key_id;
    t.length = static_cast<uint8_t>(value.size());
    std::copy(value.begin(), value.end(), t.value.begin());
    sad.find(spp)->tickets.push_back(t);
}

/// The TLVs of a frame's message, in order: type and value.
std::vector<std::pair<uint16_t, bytes>> tlvs_of(const owned_frame& f, const ptp::wire_options& opt = {}) {
    ptp::frame_info fi;
    ptp::message_view mv;
    EXPECT_EQ(ptp::classify_frame(f.buf.data(), f.len, fi), error::none);
    const uint8_t* msg = f.buf.data() + fi.ptp_offset;
    EXPECT_EQ(ptp::parse_message(msg, fi.ptp_avail, mv, opt), error::none);
    std::vector<std::pair<uint16_t, bytes>> out;
    ptp::tlv_iterator it(msg, mv.tlv_begin, mv.messageLength);
    for (;;) {
        ptp::tlv_ref t;
        bool done = false;
        if (it.next(t, done) != error::none || done) {
            return out;
        }
        out.emplace_back(t.type, bytes(t.value, t.value + t.length));
    }
}

/// Signs `frames` in one burst with key `key_id` of `spp`; the outcomes.
std::vector<frame_outcome> sign_each(signer& sg, std::vector<owned_frame>& frames, uint8_t spp, uint32_t key_id) {
    auto v = views(frames);
    std::vector<frame_outcome> out(frames.size());
    sg.sign_burst(v.data(), static_cast<uint16_t>(v.size()), spp, key_id, out.data());
    take_lengths(frames, v);
    return out;
}

TEST_P(auth, a_unicast_request_carries_the_ticket_before_the_auth_tlv) {
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    const bytes ticket = ticket_value();
    give_ticket(*s.sad, spp_plain, key_main, ticket);
    give_ticket(*s.sad, spp_mutable, key_main, ticket);
    std::vector<owned_frame> frames;
    std::vector<frame_spec> spec_of;
    uint16_t seq = 1;
    for (const auto& ns : transport_specs()) {
        // Plain, with Ethernet padding, with octets after the message in
        // the UDP payload: the two checksum plans (incremental and summed
        // again) and padding dropped.
        std::vector<frame_spec> variants{ns.spec, ns.spec};
        variants[1].trailer = 6;
        if (ns.spec.tp != ptp::transport::l2) {
            variants.push_back(ns.spec);
            variants.back().udp_padding = 3;
        }
        for (const auto& spec : variants) {
            frames.emplace_back(make_frame(unicast_request(seq++), spec), 256);
            spec_of.push_back(spec);
        }
    }
    const size_t msg_len = unicast_request(0).size();
    const size_t auth_len = 4 + 6 + (icv::is_gmac(alg()) ? 8 : 0) + icv::icv_length(alg());
    for (const uint8_t spp : {spp_plain, spp_mutable}) {
        SCOPED_TRACE("spp " + std::to_string(spp));
        std::vector<owned_frame> signed_frames = frames;
        const auto out = sign_each(*s.sign, signed_frames, spp, key_main);
        for (size_t i = 0; i < signed_frames.size(); ++i) {
            SCOPED_TRACE("frame " + std::to_string(i));
            EXPECT_EQ(sign_of(out[i]), sign_status::signed_ok) << error_name(out[i].cause);
            EXPECT_TRUE(out[i].ticket_attached);
            EXPECT_TRUE(frame_consistent(signed_frames[i].octets(), spec_of[i]));
            const auto tlvs = tlvs_of(signed_frames[i]);
            ASSERT_EQ(tlvs.size(), 3U);
            EXPECT_EQ(tlvs[0].first, ptp::tlv_request_unicast_transmission);
            EXPECT_EQ(tlvs[1].first, ptp::default_ticket_tlv_type);
            EXPECT_EQ(tlvs[1].second, ticket) << "the stored octets, exactly";
            EXPECT_EQ(tlvs[2].first, ptp::tlv_authentication);
            ptp::frame_info fi;
            const ptp::message_view mv = parse_signed(signed_frames[i], fi);
            EXPECT_EQ(mv.ticket_offset, msg_len);
            EXPECT_EQ(mv.auth.offset, msg_len + 4 + ticket.size());
            EXPECT_EQ(mv.hdr.messageLength, msg_len + 4 + ticket.size() + auth_len);
        }
        uint16_t n = 0;
        for (const auto& o : verify_all(s, signed_frames, &n)) {
            EXPECT_EQ(verify_of(o), verify_status::verified);
        }
        EXPECT_EQ(n, signed_frames.size());
        // The ICV covers the ticket.
        owned_frame changed = signed_frames[0];
        ptp::frame_info fi;
        const ptp::message_view mv = parse_signed(changed, fi);
        changed.buf[fi.ptp_offset + mv.ticket_offset + 4 + 10] ^= 0x01;
        EXPECT_EQ(verify_one(s, changed), verify_status::bad_icv);
    }
}

TEST_P(auth, only_unicast_requests_without_a_ticket_get_one) {
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    const bytes ticket = ticket_value(80);
    give_ticket(*s.sad, spp_plain, key_main, ticket);
    bytes grant(8, 0);
    grant[0] = 0xB0;
    const bytes own_ticket = ticket_value(40, 0x77);
    struct case_of {
        const char* name;
        bytes msg;
        bool gets_ticket;
    };
    const std::vector<case_of> cases = {
        {"announce", build(message_type::announce), false},
        {"signaling, grant", build(message_type::signaling, {make_tlv(ptp::tlv_grant_unicast_transmission, grant)}),
         false},
        {"signaling, no TLV", build(message_type::signaling), false},
        {"unicast request", unicast_request(7), true},
        {"announce with a request TLV", build(message_type::announce, {request_unicast_tlv()}), false},
        {"unicast request with its ticket", unicast_request(8, {make_tlv(ptp::default_ticket_tlv_type, own_ticket)}),
         false},
        {"sync", build(message_type::sync), false},
        {"unicast request, request TLV second",
         build(message_type::signaling, {make_tlv(ptp::tlv_grant_unicast_transmission, grant), request_unicast_tlv()}),
         true},
    };
    for (const auto& ns : transport_specs()) {
        SCOPED_TRACE(ns.name);
        std::vector<owned_frame> frames;
        frames.reserve(cases.size());
        for (const auto& c : cases) {
            frames.emplace_back(make_frame(c.msg, ns.spec), 256);
        }
        const auto out = sign_each(*s.sign, frames, spp_plain, key_main);
        for (size_t i = 0; i < cases.size(); ++i) {
            SCOPED_TRACE(cases[i].name);
            ASSERT_EQ(sign_of(out[i]), sign_status::signed_ok) << error_name(out[i].cause);
            EXPECT_EQ(out[i].ticket_attached, cases[i].gets_ticket);
            EXPECT_TRUE(frame_consistent(frames[i].octets(), ns.spec));
            const auto tlvs = tlvs_of(frames[i]);
            const auto tickets = std::count_if(tlvs.begin(), tlvs.end(),
                                               [](const auto& t) { return t.first == ptp::default_ticket_tlv_type; });
            ASSERT_FALSE(tlvs.empty());
            EXPECT_EQ(tlvs.back().first, ptp::tlv_authentication);
            if (cases[i].gets_ticket) {
                ASSERT_GE(tlvs.size(), 2U);
                EXPECT_EQ(tlvs[tlvs.size() - 2].second, ticket);
                EXPECT_EQ(tickets, 1);
            } else if (i == 5) {
                EXPECT_EQ(tickets, 1) << "the request's own TICKET TLV, and no other";
                EXPECT_EQ(tlvs[1].second, own_ticket);
            } else {
                EXPECT_EQ(tickets, 0);
            }
        }
        for (const auto& o : verify_all(s, frames)) {
            EXPECT_EQ(verify_of(o), verify_status::verified);
        }
        // A key without a ticket adds none.
        std::vector<owned_frame> plain{owned_frame(make_frame(unicast_request(9), ns.spec), 256)};
        const auto plain_out = sign_each(*s.sign, plain, spp_plain, key_hmac);
        EXPECT_EQ(sign_of(plain_out[0]), sign_status::signed_ok);
        EXPECT_FALSE(plain_out[0].ticket_attached);
        EXPECT_EQ(tlvs_of(plain[0]).size(), 2U);
    }
}

INSTANTIATE_TEST_SUITE_P(engines_and_algorithms, auth,
                         ::testing::Combine(::testing::Values(engine_kind::ipsecmb, engine_kind::openssl),
                                            ::testing::Values(algorithm::hmac_sha256_128, algorithm::hmac_sha256,
                                                              algorithm::aes_cmac_128, algorithm::aes_cmac_256,
                                                              algorithm::aes_gmac_128, algorithm::aes_gmac_192,
                                                              algorithm::aes_gmac_256)),
                         auth_param_name);

TEST(auth_names, statuses_have_names) {
    std::set<std::string_view> s;
    for (size_t i = 0; i < sign_status_count; ++i) {
        s.insert(sign_status_name(static_cast<sign_status>(i)));
    }
    EXPECT_EQ(s.size(), sign_status_count);
    std::set<std::string_view> v;
    for (size_t i = 0; i < verify_status_count; ++i) {
        v.insert(verify_status_name(static_cast<verify_status>(i)));
    }
    EXPECT_EQ(v.size(), verify_status_count);
    EXPECT_EQ(verify_status_name(verify_status::bad_icv), "bad_icv");
    EXPECT_EQ(verify_status_name(verify_status::expired_key), "expired_key");
    EXPECT_EQ(sign_status_name(sign_status::expired_key), "expired_key_unsigned");
    EXPECT_EQ(sign_status_name(static_cast<sign_status>(sign_status_count)), "invalid");
    // Counts are derived from the last value.
    EXPECT_EQ(sign_status_name(static_cast<sign_status>(sign_status_count - 1)), "crypto_failed");
    EXPECT_EQ(verify_status_name(static_cast<verify_status>(verify_status_count - 1)), "crypto_failed");
}

TEST(auth_names, drop_reasons_have_distinct_names) {
    // Sign and verify drops share one set of counter names (JSON, telemetry):
    // a name in both lists would hide one of the counts. crypto_failed is
    // still in both (an engine refusal, a programming error).
    path_counters every;
    every.sign.fill(1);
    every.verify.fill(1);
    std::array<drop_reason, max_drop_reasons> reasons{};
    const size_t n = drop_reasons(every, reasons);
    std::multiset<std::string_view> names;
    for (size_t i = 0; i < n; ++i) {
        names.insert(reasons[i].name);
    }
    for (const auto& name : names) {
        if (name != "crypto_failed") {
            EXPECT_EQ(names.count(name), 1U) << name;
        }
    }
    EXPECT_EQ(names.count("expired_key"), 1U);
    EXPECT_EQ(names.count("expired_key_unsigned"), 1U);
}

// ---------------------------------------------------------------------------
// GMAC: IVs and per-sender subkeys (drivers/icv/gmac.h, docs/security.md).

using gmac_param = std::tuple<engine_kind, algorithm>;

class gmac : public ::testing::TestWithParam<gmac_param> {
protected:
    engine_kind kind() const { return std::get<0>(GetParam()); }
    algorithm alg() const { return std::get<1>(GetParam()); }
};

TEST_P(gmac, every_signed_frame_carries_its_own_iv) {
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    std::vector<owned_frame> frames;
    for (uint16_t i = 0; i < 100; ++i) {
        // The same message again and again: only the IV tells them apart.
        frames.emplace_back(make_frame(build(message_type::sync), frame_spec{}), headroom);
    }
    sign_all(s, frames, spp_plain, key_main);
    std::set<uint64_t> ivs;
    std::set<bytes> icvs;
    for (size_t i = 0; i < frames.size(); ++i) {
        ptp::frame_info fi;
        const ptp::message_view mv = parse_signed(frames[i], fi);
        ASSERT_TRUE(mv.auth.has_seqno);
        EXPECT_EQ(mv.auth.sequenceNo, iv_start + i); // drawn in frame order
        ivs.insert(mv.auth.sequenceNo);
        const uint8_t* icv = frames[i].buf.data() + fi.ptp_offset + mv.auth.icv_offset;
        icvs.insert(bytes(icv, icv + mv.auth.icv_len));
    }
    EXPECT_EQ(ivs.size(), frames.size());
    EXPECT_EQ(icvs.size(), frames.size());
    EXPECT_EQ(s.iv.peek(), iv_start + frames.size());
    for (const auto& o : verify_all(s, frames)) {
        EXPECT_EQ(verify_of(o), verify_status::verified);
    }
}

TEST_P(gmac, senders_get_different_subkeys) {
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    // Two signers forced onto the same IV.
    icv::gmac_iv_counter iv_a(777);
    icv::gmac_iv_counter iv_b(777);
    signer sign_a(*s.engine, *s.sad, iv_a);
    signer sign_b(*s.engine, *s.sad, iv_b);

    ptp::header h = sample_header();
    const bytes msg_a = build(h, sample_body(message_type::sync));
    h.sourcePortIdentity.portNumber = 2; // another port of the same clock
    const bytes msg_b = build(h, sample_body(message_type::sync));
    std::vector<owned_frame> a{owned_frame(make_frame(msg_a, frame_spec{}), headroom)};
    std::vector<owned_frame> b{owned_frame(make_frame(msg_b, frame_spec{}), headroom)};
    std::vector<owned_frame> a_again{a[0]};
    for (auto [sgn, frames] : {std::pair{&sign_a, &a}, std::pair{&sign_b, &b}}) {
        auto v = views(*frames);
        frame_outcome out;
        ASSERT_EQ(sgn->sign_burst(v.data(), 1, spp_plain, key_main, &out), 1);
        take_lengths(*frames, v);
    }
    ptp::frame_info fa;
    ptp::frame_info fb;
    const ptp::message_view ma = parse_signed(a[0], fa);
    const ptp::message_view mb = parse_signed(b[0], fb);
    ASSERT_EQ(ma.auth.sequenceNo, 777u);
    ASSERT_EQ(mb.auth.sequenceNo, 777u);
    const uint8_t* icv_a = a[0].buf.data() + fa.ptp_offset + ma.auth.icv_offset;
    const uint8_t* icv_b = b[0].buf.data() + fb.ptp_offset + mb.auth.icv_offset;
    EXPECT_FALSE(std::equal(icv_a, icv_a + 16, icv_b));

    // The difference is in the keys, not only in the message: the two
    // senders' subkeys give different ICVs over the same octets and nonce.
    sa_key* key = s.sad->find(spp_plain)->find_key(key_main);
    ASSERT_NE(key, nullptr);
    ASSERT_NE(key->gmac, nullptr);
    const auto* ka = key->gmac->find(msg_a.data() + ptp::source_port_identity_offset);
    const auto* kb = key->gmac->find(msg_b.data() + ptp::source_port_identity_offset);
    ASSERT_NE(ka, nullptr);
    ASSERT_NE(kb, nullptr);
    EXPECT_NE(ka->salt, kb->salt);
    const uint8_t* signed_a = a[0].buf.data() + fa.ptp_offset;
    uint8_t nonce[icv::gmac_nonce_len];
    icv::make_gmac_nonce(ka->salt.data(), 777, nonce);
    uint8_t with_a[16];
    uint8_t with_b[16];
    ASSERT_TRUE(s.engine->compute_one(*ka->key, {signed_a, ma.auth.icv_offset}, nonce, with_a));
    ASSERT_TRUE(s.engine->compute_one(*kb->key, {signed_a, ma.auth.icv_offset}, nonce, with_b));
    EXPECT_TRUE(std::equal(with_a, with_a + 16, icv_a)); // nonce = salt || IV
    EXPECT_FALSE(std::equal(with_a, with_a + 16, with_b));

    // Same sender, same IV, same message: the same ICV (the subkey is a
    // function of the group key and the sender only).
    icv::gmac_iv_counter iv_c(777);
    side other(kind(), standard_sas(alg()));
    ASSERT_NE(other.sad, nullptr);
    signer sign_c(*other.engine, *other.sad, iv_c);
    auto v = views(a_again);
    frame_outcome out;
    ASSERT_EQ(sign_c.sign_burst(v.data(), 1, spp_plain, key_main, &out), 1);
    take_lengths(a_again, v);
    EXPECT_EQ(a_again[0].copy(), a[0].copy());
}

/// One Sync from each of `count` senders: sender i has clockIdentity
/// octet i * clock_step + first and portNumber i + first.
std::vector<owned_frame> syncs_of_senders(uint16_t count, uint8_t clock_step, uint8_t first) {
    std::vector<owned_frame> frames;
    for (uint16_t i = 0; i < count; ++i) {
        ptp::header h = sample_header(i);
        h.sourcePortIdentity =
            make_port_identity(static_cast<uint8_t>(i * clock_step + first), static_cast<uint16_t>(i + first));
        frames.emplace_back(make_frame(build(h, sample_body(message_type::sync)), frame_spec{}), headroom);
    }
    return frames;
}

TEST_P(gmac, many_senders_in_one_burst) {
    // More senders than the subkey table holds (64): derivations replace
    // entries while requests of the same burst are queued.
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    std::vector<owned_frame> frames = syncs_of_senders(200, 3, 0);
    sign_all(s, frames, spp_plain, key_main);
    // A fresh verifier on another engine, so that nothing is cached.
    side b(other_engine(kind()), standard_sas(alg()));
    ASSERT_NE(b.sad, nullptr);
    uint16_t n = 0;
    const auto out = verify_all(b, frames, &n);
    EXPECT_EQ(n, frames.size());
    for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(verify_of(out[i]), verify_status::verified) << "frame " << i;
    }
    // Reversed order, against the now warm table of the signer's side.
    std::vector<owned_frame> reversed(frames.rbegin(), frames.rend());
    for (const auto& o : verify_all(s, reversed, &n)) {
        EXPECT_EQ(verify_of(o), verify_status::verified);
    }
    EXPECT_EQ(n, reversed.size());
}

TEST_P(gmac, a_subkey_table_with_room_for_every_sender_derives_each_once) {
    // 100 senders of one key: a table of 64 slots derives some of them
    // again on every round, one of 256 (--gmac-senders 256) each once.
    side s(kind(), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    std::vector<owned_frame> frames = syncs_of_senders(100, 7, 1);
    sign_all(s, frames, spp_plain, key_main);
    for (const size_t slots : {size_t{64}, size_t{256}}) {
        side b(other_engine(kind()), standard_sas(alg()), {}, slots);
        ASSERT_NE(b.sad, nullptr);
        const auto& table = *b.sad->find(spp_plain)->find_key(key_main)->gmac;
        ASSERT_EQ(table.capacity(), slots);
        for (int round = 0; round < 3; ++round) {
            uint16_t n = 0;
            (void)verify_all(b, frames, &n);
            ASSERT_EQ(n, frames.size()) << slots << " slots, round " << round;
        }
        if (slots == 64) {
            // At the start of each later round at most 64 senders (and the
            // scratch entry's) have their subkey: the other 35 derive again.
            EXPECT_GE(table.derivations(), frames.size() + 2 * (frames.size() - slots - 1))
                << "more senders than slots";
        } else {
            EXPECT_EQ(table.derivations(), frames.size());
            EXPECT_EQ(table.scratch_derivations(), 0U);
        }
    }
}

TEST_P(gmac, made_up_senders_do_not_push_out_the_ones_that_verified) {
    // A receiver derives a subkey before it can check the ICV, so anyone
    // can name made-up sourcePortIdentities. Those derivations must not
    // evict senders whose frames verified: after a flood of forged frames,
    // the real senders verify without being derived again.
    side s(kind(), standard_sas(alg()));
    side b(other_engine(kind()), standard_sas(alg()));
    ASSERT_NE(s.sad, nullptr);
    ASSERT_NE(b.sad, nullptr);
    std::vector<owned_frame> real = syncs_of_senders(40, 1, 1);
    sign_all(s, real, spp_plain, key_main);
    const auto& table = *b.sad->find(spp_plain)->find_key(key_main)->gmac;
    uint16_t n = 0;
    (void)verify_all(b, real, &n);
    ASSERT_EQ(n, real.size());
    ASSERT_EQ(table.derivations(), real.size());

    std::mt19937_64 rng(0x666c6f6f64ULL);
    std::vector<owned_frame> forged;
    for (size_t i = 0; i < 2000; ++i) {
        owned_frame f = real[i % real.size()];
        ptp::frame_info fi;
        ASSERT_EQ(ptp::classify_frame(f.buf.data(), f.len, fi), error::none);
        uint8_t* pid = f.buf.data() + fi.ptp_offset + ptp::source_port_identity_offset;
        for (size_t k = 0; k < icv::port_identity_len; ++k) {
            pid[k] = static_cast<uint8_t>(rng());
        }
        forged.push_back(std::move(f));
    }
    for (const auto& o : verify_all(b, forged, &n)) {
        ASSERT_EQ(verify_of(o), verify_status::bad_icv);
    }
    EXPECT_EQ(n, 0);
    const uint64_t after_flood = table.derivations();
    EXPECT_GE(after_flood, real.size() + forged.size());

    for (const auto& o : verify_all(b, real, &n)) {
        EXPECT_EQ(verify_of(o), verify_status::verified);
    }
    EXPECT_EQ(n, real.size());
    EXPECT_EQ(table.derivations(), after_flood) << "a real sender was pushed out by the forged frames";
}

INSTANTIATE_TEST_SUITE_P(engines_and_algorithms, gmac,
                         ::testing::Combine(::testing::Values(engine_kind::ipsecmb, engine_kind::openssl),
                                            ::testing::Values(algorithm::aes_gmac_128, algorithm::aes_gmac_192,
                                                              algorithm::aes_gmac_256)),
                         auth_param_name);

TEST(auth_options, ticket_type_follows_wire_options) {
    // A TICKET TLV with a custom type is signed and verified like any TLV.
    ptp::wire_options opt;
    opt.ticket_tlv_type = 0x2020;
    side s(engine_kind::ipsecmb, standard_sas(algorithm::hmac_sha256_128), opt);
    ASSERT_NE(s.sad, nullptr);
    const bytes msg = build(message_type::announce, {make_tlv(0x2020, pattern(30, 1))});
    const owned_frame f = signed_frame(s, msg, frame_spec{});
    ptp::frame_info fi;
    ASSERT_EQ(ptp::classify_frame(f.buf.data(), f.len, fi), error::none);
    ptp::message_view mv;
    ASSERT_EQ(ptp::parse_message(f.buf.data() + fi.ptp_offset, fi.ptp_avail, mv, opt), error::none);
    EXPECT_EQ(mv.ticket_offset, 64);
    EXPECT_TRUE(mv.has_auth);
    EXPECT_EQ(verify_one(s, f), verify_status::verified);
}

TEST(auth_tickets, no_room_for_both_tlvs_leaves_the_request_alone) {
    side s(engine_kind::ipsecmb, standard_sas(algorithm::hmac_sha256_128));
    ASSERT_NE(s.sad, nullptr);
    const bytes ticket = ticket_value();
    give_ticket(*s.sad, spp_plain, key_main, ticket);
    ptp::auth_params ap;
    ap.icv_len = 16;
    for (const auto& ns : transport_specs()) {
        SCOPED_TRACE(ns.name);
        const bytes original = make_frame(unicast_request(3), ns.spec);
        const size_t need = original.size() + 4 + ticket.size() + ptp::auth_tlv_size(ap);
        // Room for the AUTHENTICATION TLV alone, or one octet short of both.
        for (const size_t cap : {original.size() + ptp::auth_tlv_size(ap), need - 1}) {
            std::vector<owned_frame> frames{owned_frame(original, cap - original.size())};
            const auto out = sign_each(*s.sign, frames, spp_plain, key_main);
            EXPECT_EQ(sign_of(out[0]), sign_status::no_room) << "cap " << cap;
            EXPECT_FALSE(out[0].ticket_attached);
            EXPECT_EQ(frames[0].copy(), original) << "cap " << cap;
        }
        std::vector<owned_frame> exact{owned_frame(original, need - original.size())};
        const auto out = sign_each(*s.sign, exact, spp_plain, key_main);
        EXPECT_EQ(sign_of(out[0]), sign_status::signed_ok);
        EXPECT_TRUE(out[0].ticket_attached);
        EXPECT_EQ(exact[0].len, need);
    }
}

TEST(auth_tickets, an_engine_refusal_takes_the_ticket_out_too) {
    // As engine_refusal_is_crypto_failed_and_leaves_frames_alone: a request
    // that is not signed leaves as it came, without the TICKET TLV either.
    side keys(engine_kind::ipsecmb, standard_sas(algorithm::hmac_sha256_128));
    ASSERT_NE(keys.sad, nullptr);
    give_ticket(*keys.sad, spp_plain, key_main, ticket_value());
    auto wrong = make_engine(engine_kind::openssl);
    icv::gmac_iv_counter iv(1);
    signer sgn(*wrong, *keys.sad, iv);
    std::vector<bytes> originals;
    std::vector<owned_frame> frames;
    for (const auto& ns : transport_specs()) {
        originals.push_back(make_frame(unicast_request(4), ns.spec));
        frames.emplace_back(originals.back(), 256);
    }
    const auto out = sign_each(sgn, frames, spp_plain, key_main);
    for (size_t i = 0; i < frames.size(); ++i) {
        EXPECT_EQ(sign_of(out[i]), sign_status::crypto_failed) << "frame " << i;
        EXPECT_FALSE(out[i].ticket_attached);
        EXPECT_EQ(frames[i].copy(), originals[i]) << "frame " << i << " changed although not signed";
    }
}

TEST(auth_tickets, the_ticket_tlv_type_follows_wire_options) {
    ptp::wire_options opt;
    opt.ticket_tlv_type = 0x2020;
    side s(engine_kind::ipsecmb, standard_sas(algorithm::hmac_sha256_128), opt);
    ASSERT_NE(s.sad, nullptr);
    const bytes ticket = ticket_value();
    give_ticket(*s.sad, spp_plain, key_main, ticket);
    // 0x2015 is not the TICKET TLV under these options: the request still
    // needs one. One of type 0x2020 it has already.
    std::vector<owned_frame> frames{
        owned_frame(make_frame(unicast_request(5, {make_tlv(0x2015, pattern(8, 1))}), frame_spec{}), 256),
        owned_frame(make_frame(unicast_request(6, {make_tlv(0x2020, pattern(8, 1))}), frame_spec{}), 256),
    };
    const auto out = sign_each(*s.sign, frames, spp_plain, key_main);
    ASSERT_EQ(sign_of(out[0]), sign_status::signed_ok);
    EXPECT_TRUE(out[0].ticket_attached);
    const auto tlvs = tlvs_of(frames[0], opt);
    ASSERT_EQ(tlvs.size(), 4U);
    EXPECT_EQ(tlvs[2].first, 0x2020);
    EXPECT_EQ(tlvs[2].second, ticket);
    ASSERT_EQ(sign_of(out[1]), sign_status::signed_ok);
    EXPECT_FALSE(out[1].ticket_attached);
    EXPECT_EQ(tlvs_of(frames[1], opt).size(), 3U);
    for (const auto& o : verify_all(s, frames)) {
        EXPECT_EQ(verify_of(o), verify_status::verified);
    }
}

} // namespace
} // namespace ptpsec::test
