// SA updates (dataplane/sa_update.h) and the SA channel (dataplane/sa_channel.h):
// every operation, every refusal with its reason, versions that share what
// they do not change, and the shared-memory rings between two processes.

#include "auth_helpers.h"

#include <dataplane/sa_channel.h>
#include <dataplane/sa_update.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace ptpsec {
namespace {

using sa_wire::op;

sa_wire::update add(uint8_t spp, uint32_t key_id, icv::algorithm alg = icv::algorithm::hmac_sha256_128,
                    uint8_t key_len = 32, uint8_t fill = 0x11) {
    sa_wire::update u;
    u.operation = static_cast<uint8_t>(op::add_key);
    u.spp = spp;
    u.key_id = key_id;
    u.algorithm = static_cast<uint8_t>(alg);
    u.key_len = key_len;
    std::memset(u.key, fill, key_len);
    return u;
}

sa_wire::update add_for(uint8_t spp, uint32_t key_id, uint64_t lifetime_ms) {
    sa_wire::update u = add(spp, key_id);
    u.lifetime_ms = lifetime_ms;
    return u;
}

sa_wire::update simple(op o, uint8_t spp = 0, uint32_t key_id = 0) {
    sa_wire::update u;
    u.operation = static_cast<uint8_t>(o);
    u.spp = spp;
    u.key_id = key_id;
    return u;
}

/// A set_ticket update carrying `value` (sa_update_wire.h: from octet 24).
sa_wire::update ticket(uint8_t spp, uint32_t key_id, const test::bytes& value) {
    sa_wire::update u = simple(op::set_ticket, spp, key_id);
    sa_wire::put_ticket_value(u, value.data(), value.size());
    return u;
}

/// A TICKET TLV value as a requester holds it: a Ticket record (type 1034),
/// here with an opaque body, padded to even length.
test::bytes ticket_value(size_t len, uint8_t seed) {
    test::bytes v = test::pattern(len, seed);
    if (len >= 2) {
        v[0] = 0x84; // critical bit, type 1034 (0x040A)
        v[1] = 0x0A;
    }
    return v;
}

/// A time on the monotonic clock for the tests that set it themselves.
constexpr uint64_t t0 = 1'000'000'000'000; // 1000 s after boot
constexpr uint64_t ms = 1'000'000;

class sa_updates : public testing::Test {
protected:
    /// Applies u to the current version at `now` (a real monotonic reading by
    /// default); on success the new version becomes current.
    status apply(const sa_wire::update& u, uint64_t now = 0) {
        auto r = now == 0 ? apply_update(*_db, u, _engine) : apply_update(*_db, u, _engine, now);
        if (!r) {
            return r.err();
        }
        _retired = std::move(r->retired);
        _note = std::move(r->note);
        if (r->next != nullptr) {
            _db = std::move(r->next);
        }
        return ok_status();
    }

    /// expire_keys() at `now`; true (and the new version current) if a key expired.
    bool expire(uint64_t now) {
        auto r = expire_keys(*_db, now);
        if (!r) {
            return false;
        }
        EXPECT_NE(r->next, nullptr);
        _retired = std::move(r->retired);
        _db = std::move(r->next);
        return true;
    }

    void expect_refused(const sa_wire::update& u, std::string_view says) { expect_refused_at(u, 0, says); }

    void expect_refused_at(const sa_wire::update& u, uint64_t now, std::string_view says) {
        const sa_database* before = _db.get();
        const status st = apply(u, now);
        ASSERT_FALSE(st) << "accepted: " << op_name(u.operation);
        EXPECT_NE(st.err().message.find(says), std::string::npos) << st.err().message;
        EXPECT_EQ(_db.get(), before) << "a refused update changed the database";
    }

    icv::ipsecmb_engine _engine{icv::default_arch_plan()};
    std::unique_ptr<sa_database> _db = std::make_unique<sa_database>();
    std::vector<retired_key> _retired;
    std::string _note; ///< of the last update applied
};

TEST_F(sa_updates, add_creates_the_sa_then_more_keys) {
    sa_wire::update u = add(2, 1);
    u.seqid_window = 9;
    u.allow_mutable = 1;
    ASSERT_TRUE(apply(u));
    const security_association* sa = _db->find(2);
    ASSERT_NE(sa, nullptr);
    EXPECT_EQ(sa->seqid_window, 9);
    EXPECT_TRUE(sa->allow_mutable);
    EXPECT_FALSE(sa->has_sign_key);
    ASSERT_NE(sa->find_key(1), nullptr);
    EXPECT_EQ(sa->find_key(1)->alg, icv::algorithm::hmac_sha256_128);

    sa_wire::update g = add(2, 2, icv::algorithm::aes_gmac_256, 32);
    g.allow_mutable = 1;
    ASSERT_TRUE(apply(g));
    ASSERT_NE(_db->find(2)->find_key(2), nullptr);
    EXPECT_NE(_db->find(2)->find_key(2)->gmac, nullptr);
    EXPECT_EQ(_db->find(2)->keys.size(), 2U);
}

TEST_F(sa_updates, aes_gmac_keys_added_later_get_the_subkey_table_size_the_database_was_installed_with) {
    // --gmac-senders sizes the table of every AES-GMAC key, the SA file's
    // and those the control plane pushes later, through every version and
    // a flush.
    auto installed = sa_database::install(_engine, {}, 256);
    ASSERT_TRUE(installed) << installed.message();
    _db = std::make_unique<sa_database>(std::move(installed).value());
    ASSERT_TRUE(apply(add(2, 1, icv::algorithm::aes_gmac_128, 16)));
    ASSERT_TRUE(apply(add(2, 2)));
    ASSERT_TRUE(apply(add(2, 3, icv::algorithm::aes_gmac_256, 32)));
    EXPECT_EQ(_db->gmac_senders(), 256U);
    EXPECT_EQ(_db->find(2)->find_key(1)->gmac->capacity(), 256U);
    EXPECT_EQ(_db->find(2)->find_key(3)->gmac->capacity(), 256U);
    ASSERT_TRUE(apply(simple(op::flush)));
    ASSERT_TRUE(apply(add(4, 1, icv::algorithm::aes_gmac_192, 24)));
    EXPECT_EQ(_db->find(4)->find_key(1)->gmac->capacity(), 256U);

    // The default.
    _db = std::make_unique<sa_database>();
    ASSERT_TRUE(apply(add(2, 1, icv::algorithm::aes_gmac_128, 16)));
    EXPECT_EQ(_db->find(2)->find_key(1)->gmac->capacity(), default_gmac_senders);
}

TEST_F(sa_updates, a_new_version_shares_what_it_does_not_change) {
    ASSERT_TRUE(apply(add(2, 1)));
    ASSERT_TRUE(apply(add(3, 1)));
    const sa_database* v1 = _db.get();
    const sa_key* k21 = v1->find(2)->find_key(1);
    auto r = apply_update(*_db, add(2, 2), _engine);
    ASSERT_TRUE(r);
    const sa_database& v2 = *r->next;
    EXPECT_EQ(v2.find(3), v1->find(3)) << "an SA that did not change is the same object";
    EXPECT_NE(v2.find(2), v1->find(2)) << "the changed SA is a new object";
    EXPECT_EQ(v2.find(2)->find_key(1), k21) << "keys are shared, not expanded again";
    EXPECT_EQ(v1->find(2)->find_key(2), nullptr) << "the old version is untouched";
}

TEST_F(sa_updates, set_current_and_remove_key) {
    ASSERT_TRUE(apply(add(2, 1)));
    ASSERT_TRUE(apply(add(2, 2)));
    ASSERT_TRUE(apply(simple(op::set_current, 2, 2)));
    EXPECT_TRUE(_db->find(2)->has_sign_key);
    EXPECT_EQ(_db->find(2)->sign_key_id, 2U);

    ASSERT_TRUE(apply(simple(op::remove_key, 2, 1)));
    EXPECT_EQ(_db->find(2)->find_key(1), nullptr);
    EXPECT_TRUE(_db->find(2)->has_sign_key) << "removing another key keeps the current one";
    ASSERT_EQ(_retired.size(), 1U);
    EXPECT_EQ(_retired[0].spp, 2);
    EXPECT_EQ(_retired[0].key_id, 1U);

    ASSERT_TRUE(apply(simple(op::remove_key, 2, 2)));
    // The SA stays without keys, to remember what it retired, until
    // remove_sa or flush.
    ASSERT_NE(_db->find(2), nullptr);
    EXPECT_TRUE(_db->find(2)->keys.empty());
    EXPECT_FALSE(_db->find(2)->has_sign_key);
    EXPECT_TRUE(_db->find(2)->sign_key_retired);
    ASSERT_EQ(_db->find(2)->retired_ids.size(), 2U);
    EXPECT_EQ(_db->find(2)->retired_ids.ids()[0], 1U);
    EXPECT_EQ(_db->find(2)->retired_ids.ids()[1], 2U);
}

TEST_F(sa_updates, removing_the_current_key_stops_signing) {
    ASSERT_TRUE(apply(add(2, 1)));
    ASSERT_TRUE(apply(add(2, 2)));
    ASSERT_TRUE(apply(simple(op::set_current, 2, 1)));
    ASSERT_TRUE(apply(simple(op::remove_key, 2, 1)));
    EXPECT_FALSE(_db->find(2)->has_sign_key);
    EXPECT_TRUE(_db->find(2)->sign_key_retired);
    ASSERT_TRUE(apply(simple(op::set_current, 2, 2)));
    EXPECT_TRUE(_db->find(2)->has_sign_key);
    EXPECT_FALSE(_db->find(2)->sign_key_retired) << "naming the next key resumes signing";
}

// Key lifetimes (sa_update_wire.h): deadlines on CLOCK_MONOTONIC.

TEST_F(sa_updates, a_lifetime_becomes_a_deadline_when_applied) {
    ASSERT_TRUE(apply(add_for(2, 1, 5000), t0));
    ASSERT_TRUE(apply(add_for(2, 2, 0), t0));
    ASSERT_TRUE(apply(add_for(3, 1, 2000), t0 + 100 * ms));
    EXPECT_EQ(_db->find(2)->find_key(1)->expires_ns, t0 + 5000 * ms);
    EXPECT_EQ(_db->find(2)->find_key(2)->expires_ns, 0U) << "0: never";
    EXPECT_EQ(_db->find(3)->find_key(1)->expires_ns, t0 + 2100 * ms);
    EXPECT_EQ(next_expiry(*_db), t0 + 2100 * ms) << "the earliest over every SA";

    // Without a time of its own, apply_update reads CLOCK_MONOTONIC.
    const uint64_t before = monotonic_now_ns();
    ASSERT_TRUE(apply(add_for(4, 1, 60'000)));
    const uint64_t after = monotonic_now_ns();
    const uint64_t deadline = _db->find(4)->find_key(1)->expires_ns;
    EXPECT_GE(deadline, before + 60'000 * ms);
    EXPECT_LE(deadline, after + 60'000 * ms);
}

TEST_F(sa_updates, expiry_makes_a_version_without_the_key_and_retires_it) {
    ASSERT_TRUE(apply(add_for(2, 1, 1000), t0));
    ASSERT_TRUE(apply(add(2, 2), t0));
    ASSERT_TRUE(apply(add(5, 7), t0));
    const sa_database* before = _db.get();
    const security_association* sa5 = _db->find(5);

    EXPECT_FALSE(expire(t0 + 999 * ms)) << "nothing is due yet: no new version";
    EXPECT_EQ(_db.get(), before);

    auto r = expire_keys(*_db, t0 + 1000 * ms);
    ASSERT_TRUE(r.has_value()) << "due at its deadline";
    const sa_database& next = *r->next;
    EXPECT_EQ(next.find(2)->find_key(1), nullptr);
    EXPECT_NE(next.find(2)->find_key(2), nullptr);
    EXPECT_TRUE(next.find(2)->retired_ids.contains(1));
    EXPECT_EQ(next.find(5), sa5) << "an SA without expired keys is shared";
    ASSERT_EQ(r->retired.size(), 1U);
    EXPECT_EQ(r->retired[0].spp, 2);
    EXPECT_EQ(r->retired[0].key_id, 1U);
    EXPECT_NE(before->find(2)->find_key(1), nullptr) << "the old version is untouched";
    EXPECT_EQ(next_expiry(next), 0U);
    EXPECT_FALSE(expire_keys(next, t0 + 10'000 * ms).has_value()) << "expired once only";
}

TEST_F(sa_updates, a_key_without_lifetime_never_expires) {
    ASSERT_TRUE(apply(add(2, 1), t0));
    ASSERT_TRUE(apply(add_for(2, 2, 0), t0));
    EXPECT_EQ(next_expiry(*_db), 0U);
    EXPECT_FALSE(expire(UINT64_MAX));
    EXPECT_NE(_db->find(2)->find_key(1), nullptr);
    EXPECT_NE(_db->find(2)->find_key(2), nullptr);
}

TEST_F(sa_updates, keys_due_together_expire_in_one_version) {
    ASSERT_TRUE(apply(add_for(2, 1, 1000), t0));
    ASSERT_TRUE(apply(add_for(2, 2, 1000), t0));
    ASSERT_TRUE(apply(add_for(3, 9, 500), t0));
    ASSERT_TRUE(apply(add_for(3, 10, 3000), t0));
    ASSERT_TRUE(expire(t0 + 1500 * ms));
    EXPECT_EQ(_retired.size(), 3U);
    ASSERT_NE(_db->find(2), nullptr) << "an SA whose last key expired stays";
    EXPECT_TRUE(_db->find(2)->keys.empty());
    EXPECT_TRUE(_db->find(2)->retired_ids.contains(1));
    EXPECT_TRUE(_db->find(2)->retired_ids.contains(2));
    EXPECT_EQ(_db->find(3)->find_key(9), nullptr);
    EXPECT_NE(_db->find(3)->find_key(10), nullptr);
    EXPECT_EQ(next_expiry(*_db), t0 + 3000 * ms);
}

TEST_F(sa_updates, expiry_of_the_current_key_stops_signing) {
    ASSERT_TRUE(apply(add_for(2, 1, 1000), t0));
    ASSERT_TRUE(apply(add(2, 2), t0));
    ASSERT_TRUE(apply(simple(op::set_current, 2, 1), t0));
    ASSERT_TRUE(expire(t0 + 1000 * ms));
    const security_association* sa = _db->find(2);
    EXPECT_FALSE(sa->has_sign_key);
    EXPECT_TRUE(sa->sign_key_retired);

    icv::gmac_iv_counter iv(1);
    signer s(_engine, *_db, iv);
    std::vector<test::owned_frame> frames;
    frames.emplace_back(test::make_frame(test::build(ptp::message_type::sync), test::spec_named("udp4").spec), 64);
    auto views = test::views(frames);
    const uint32_t len = views[0].len;
    frame_outcome o;
    // Fail closed: the SA signs with nothing rather than with the old key.
    EXPECT_EQ(s.sign_burst_current(views.data(), 1, 2, &o), 0);
    EXPECT_EQ(test::sign_of(o), sign_status::expired_key);
    EXPECT_EQ(views[0].len, len) << "the frame is left as it came";
    EXPECT_EQ(s.sign_burst(views.data(), 1, 2, 1, &o), 0);
    EXPECT_EQ(test::sign_of(o), sign_status::expired_key) << "named explicitly";
    EXPECT_EQ(s.sign_burst(views.data(), 1, 2, 3, &o), 0);
    EXPECT_EQ(test::sign_of(o), sign_status::no_sa) << "a key it never had";

    // A key made current after its deadline is refused.
    ASSERT_TRUE(apply(add_for(2, 5, 10), t0 + 1000 * ms));
    expect_refused_at(simple(op::set_current, 2, 5), t0 + 1010 * ms, "key 5 of spp 2 has expired");

    // The control plane names the next key: signing resumes.
    ASSERT_TRUE(apply(simple(op::set_current, 2, 2), t0 + 1000 * ms));
    s.use(*_db);
    EXPECT_EQ(s.sign_burst_current(views.data(), 1, 2, &o), 1);
    EXPECT_EQ(test::sign_of(o), sign_status::signed_ok);
}

TEST_F(sa_updates, add_key_of_a_retired_id_is_refused) {
    ASSERT_TRUE(apply(add(2, 1), t0));
    ASSERT_TRUE(apply(add_for(2, 2, 1000), t0));
    ASSERT_TRUE(apply(add(2, 3), t0));
    ASSERT_TRUE(apply(simple(op::remove_key, 2, 1), t0));
    ASSERT_TRUE(expire(t0 + 1000 * ms));
    // seeds/001 §5.3: key IDs are not reused, removed or expired.
    expect_refused(add(2, 1), "key 1 of spp 2 was removed or expired; key IDs are not reused (seeds/001 §5.3)");
    expect_refused(add(2, 2), "key 2 of spp 2 was removed or expired; key IDs are not reused (seeds/001 §5.3)");
    expect_refused(simple(op::set_current, 2, 1), "spp 2 has no key 1: it was removed or expired");
    // Removing a key that is gone already (the control plane's removal at
    // the end of its life races the data plane's expiry) changes nothing,
    // and is acknowledged as done, with a note.
    for (const uint32_t id : {1U, 2U}) {
        const sa_database* before = _db.get();
        const sa_wire::update gone = simple(op::remove_key, 2, id);
        ASSERT_TRUE(apply(gone, t0 + 1000 * ms)) << id;
        EXPECT_EQ(_db.get(), before) << id;
        EXPECT_TRUE(_retired.empty()) << id;
        const std::string note = fmt::format("key {} of spp 2 was removed or expired already", id);
        EXPECT_EQ(_note, note);
        const sa_wire::ack a = make_ack(gone, ok_status(), _note);
        EXPECT_EQ(a.result, static_cast<uint8_t>(sa_wire::status::applied));
        EXPECT_EQ(std::string(a.reason), note);
    }
    // One it never had is still refused.
    expect_refused(simple(op::remove_key, 2, 6), "spp 2 has no key 6");
    // The same ID in another SA is another key.
    EXPECT_TRUE(apply(add(4, 1), t0));
    // The reason fits the acknowledgement whole, even with the widest numbers.
    ASSERT_TRUE(apply(add(255, UINT32_MAX), t0));
    ASSERT_TRUE(apply(add(255, 1), t0));
    ASSERT_TRUE(apply(simple(op::remove_key, 255, UINT32_MAX), t0));
    const sa_wire::update again = add(255, UINT32_MAX);
    const status st = apply(again, t0);
    ASSERT_FALSE(st);
    EXPECT_EQ(std::string(make_ack(again, st).reason), st.err().message);
}

TEST_F(sa_updates, flush_and_remove_sa_forget_the_retired_ids) {
    ASSERT_TRUE(apply(add(2, 1)));
    ASSERT_TRUE(apply(add(2, 2)));
    ASSERT_TRUE(apply(simple(op::remove_key, 2, 1)));
    ASSERT_TRUE(apply(add(5, 7)));
    ASSERT_TRUE(apply(simple(op::remove_key, 5, 7)));
    ASSERT_NE(_db->find(5), nullptr) << "kept for its retired IDs";
    ASSERT_TRUE(apply(simple(op::remove_sa, 5)));
    EXPECT_EQ(_db->find(5), nullptr);
    ASSERT_TRUE(apply(add(5, 7))) << "remove_sa forgot the SA and what it retired";
    EXPECT_TRUE(_db->find(5)->retired_ids.empty());
    ASSERT_TRUE(apply(simple(op::flush)));
    ASSERT_TRUE(apply(add(2, 1))) << "flush forgot every retired ID";
    EXPECT_TRUE(_db->find(2)->retired_ids.empty());
    EXPECT_FALSE(_db->find(2)->sign_key_retired);
}

TEST_F(sa_updates, an_sa_remembers_its_last_16_retired_ids) {
    ASSERT_TRUE(apply(add(2, 1000)));
    for (uint32_t id = 1; id <= 20; ++id) {
        ASSERT_TRUE(apply(add(2, id)));
        ASSERT_TRUE(apply(simple(op::remove_key, 2, id)));
    }
    const retired_key_ids& r = _db->find(2)->retired_ids;
    ASSERT_EQ(r.size(), retired_key_ids::capacity);
    EXPECT_EQ(r.ids().front(), 5U) << "the oldest made room";
    EXPECT_EQ(r.ids().back(), 20U);
    EXPECT_FALSE(r.contains(4));
    EXPECT_TRUE(r.contains(5));
    expect_refused(add(2, 5), "key IDs are not reused");
    EXPECT_TRUE(apply(add(2, 4))) << "beyond the last 16, an ID is no longer remembered";
}

TEST_F(sa_updates, a_lifetime_beyond_388_days_is_refused) {
    expect_refused(add_for(2, 1, sa_wire::max_lifetime_ms + 1), "lifetime_ms 33523200001 is above 33523200000");
    EXPECT_TRUE(apply(add_for(2, 1, sa_wire::max_lifetime_ms), t0));
    EXPECT_EQ(_db->find(2)->find_key(1)->expires_ns, t0 + sa_wire::max_lifetime_ms * ms);
}

TEST_F(sa_updates, remove_sa_and_flush_retire_every_key) {
    ASSERT_TRUE(apply(add(2, 1)));
    ASSERT_TRUE(apply(add(2, 2)));
    ASSERT_TRUE(apply(add(5, 7)));
    ASSERT_TRUE(apply(simple(op::remove_sa, 2)));
    EXPECT_EQ(_db->find(2), nullptr);
    EXPECT_EQ(_retired.size(), 2U);
    EXPECT_NE(_db->find(5), nullptr);
    ASSERT_TRUE(apply(simple(op::flush)));
    EXPECT_EQ(_db->size(), 0U);
    ASSERT_EQ(_retired.size(), 1U);
    EXPECT_EQ(_retired[0].key_id, 7U);
}

TEST_F(sa_updates, every_refusal_names_its_reason_and_changes_nothing) {
    ASSERT_TRUE(apply(add(2, 1)));
    sa_wire::update bad_magic = add(3, 1);
    bad_magic.magic = 0x12345678;
    expect_refused(bad_magic, "magic 0x12345678");
    expect_refused(simple(static_cast<op>(99), 2, 1), "unknown operation 99");
    // The data plane hands nonces to its attestation before apply_update;
    // one that reaches it changes no SA.
    expect_refused(simple(op::attest_nonce, 2, 1),
                   "attest_nonce is not an SA operation: the data plane's attestation takes it");
    sa_wire::update bad_alg = add(3, 1);
    bad_alg.algorithm = 7;
    expect_refused(bad_alg, "algorithm 7 is not one of 0-6");
    expect_refused(add(3, 1, icv::algorithm::hmac_sha256_128, 0), "key_len 0");
    expect_refused(add(3, 1, icv::algorithm::hmac_sha256_128, 65), "key_len 65");
    expect_refused(add(3, 1, icv::algorithm::aes_cmac_128, 20),
                   "key 1 of spp 3: aes-cmac-128: key must be 16 octets, got 20");
    expect_refused(add(3, 1, icv::algorithm::aes_gmac_192, 16),
                   "key 1 of spp 3: aes-gmac-192: key must be 24 octets, got 16");
    sa_wire::update zero_window = add(3, 1);
    zero_window.seqid_window = 0;
    expect_refused(zero_window, "seqid_window 0");
    sa_wire::update bad_mutable = add(3, 1);
    bad_mutable.allow_mutable = 2;
    expect_refused(bad_mutable, "allow_mutable 2");
    expect_refused(add(2, 1), "installed already");
    sa_wire::update other_mutable = add(2, 2);
    other_mutable.allow_mutable = 1;
    expect_refused(other_mutable, "allow_mutable 1 differs");
    expect_refused(simple(op::set_current, 9, 1), "no SA with spp 9");
    expect_refused(simple(op::set_current, 2, 9), "spp 2 has no key 9");
    expect_refused(simple(op::remove_key, 9, 1), "no SA with spp 9");
    expect_refused(simple(op::remove_key, 2, 9), "spp 2 has no key 9");
    expect_refused(simple(op::remove_sa, 9), "no SA with spp 9");
}

TEST_F(sa_updates, acks_carry_the_sequence_and_the_reason) {
    sa_wire::update u = simple(op::remove_sa, 9);
    u.sequence = 4242;
    const status st = apply(u);
    const sa_wire::ack a = make_ack(u, st);
    EXPECT_EQ(a.magic, sa_wire::ack_magic);
    EXPECT_EQ(a.sequence, 4242U);
    EXPECT_EQ(a.result, static_cast<uint8_t>(sa_wire::status::rejected));
    EXPECT_NE(std::string(a.reason).find("no SA with spp 9"), std::string::npos);
    EXPECT_LT(std::strlen(a.reason), sa_wire::reason_len);

    sa_wire::update ok = add(2, 1);
    ok.sequence = 7;
    const sa_wire::ack b = make_ack(ok, apply(ok));
    EXPECT_EQ(b.result, static_cast<uint8_t>(sa_wire::status::applied));
    EXPECT_EQ(b.sequence, 7U);
    EXPECT_STREQ(b.reason, "");
}

TEST_F(sa_updates, signing_follows_the_installed_key) {
    // A key added by update signs and verifies like one from an SA file.
    ASSERT_TRUE(apply(add(2, 1, icv::algorithm::aes_cmac_128, 16, 0x42)));
    icv::gmac_iv_counter iv(1);
    signer s(_engine, *_db, iv);
    verifier v(_engine, *_db);
    std::vector<test::owned_frame> frames;
    frames.emplace_back(test::make_frame(test::build(ptp::message_type::sync), test::spec_named("udp4").spec), 64);
    auto views = test::views(frames);
    frame_outcome o;
    ASSERT_EQ(s.sign_burst(views.data(), 1, 2, 1, &o), 1);
    EXPECT_EQ(v.verify_burst(views.data(), 1, &o), 1);
}

// set_ticket (seeds/001 §6): a TICKET TLV value on an installed key.

TEST_F(sa_updates, set_ticket_attaches_the_value_to_its_key_in_a_new_version) {
    ASSERT_TRUE(apply(add(2, 1)));
    ASSERT_TRUE(apply(add(2, 2)));
    ASSERT_TRUE(apply(add(3, 1)));
    const sa_database* v1 = _db.get();
    const sa_key* k21 = v1->find(2)->find_key(1);
    const test::bytes t = ticket_value(96, 0x30);
    auto r = apply_update(*_db, ticket(2, 1, t), _engine);
    ASSERT_TRUE(r) << r.message();
    EXPECT_TRUE(r->retired.empty());
    const sa_database& v2 = *r->next;
    const key_ticket* kt = v2.find(2)->find_ticket(1);
    ASSERT_NE(kt, nullptr);
    EXPECT_EQ(kt->key_id, 1U);
    EXPECT_EQ(test::bytes(kt->bytes().begin(), kt->bytes().end()), t);
    EXPECT_EQ(v2.find(2)->find_ticket(2), nullptr) << "the other key has none";
    EXPECT_EQ(v2.find(3)->find_ticket(1), nullptr) << "the same key ID in another SA has none";
    EXPECT_EQ(v2.find(3), v1->find(3)) << "an SA that did not change is the same object";
    EXPECT_EQ(v2.find(2)->find_key(1), k21) << "the key is shared, not expanded again";
    EXPECT_EQ(v1->find(2)->find_ticket(1), nullptr) << "the old version is untouched";
    EXPECT_EQ(op_name(static_cast<uint8_t>(op::set_ticket)), "set_ticket");
}

TEST_F(sa_updates, set_ticket_takes_the_whole_rest_of_the_record_and_replaces) {
    // 104 octets: the value runs over key, lifetime_ms, sent_ns and padding,
    // none of which is read for set_ticket.
    ASSERT_TRUE(apply(add(2, 1)));
    const test::bytes longest = ticket_value(sa_wire::max_ticket_len, 0x51);
    sa_wire::update u = ticket(2, 1, longest);
    EXPECT_NE(u.lifetime_ms, 0U);
    EXPECT_NE(u.sent_ns, 0U);
    EXPECT_EQ(sa_wire::sent_ns_of(u), 0U);
    EXPECT_EQ(u.padding[23], longest.back());
    ASSERT_TRUE(apply(u, t0));
    const key_ticket* kt = _db->find(2)->find_ticket(1);
    ASSERT_NE(kt, nullptr);
    EXPECT_EQ(test::bytes(kt->bytes().begin(), kt->bytes().end()), longest);
    EXPECT_EQ(_db->find(2)->find_key(1)->expires_ns, 0U) << "lifetime_ms is not read";

    // A second set_ticket replaces the first; the key keeps one ticket.
    const test::bytes shorter = ticket_value(2, 0x07);
    ASSERT_TRUE(apply(ticket(2, 1, shorter)));
    ASSERT_EQ(_db->find(2)->tickets.size(), 1U);
    EXPECT_EQ(test::bytes(_db->find(2)->tickets[0].bytes().begin(), _db->find(2)->tickets[0].bytes().end()), shorter);
}

TEST_F(sa_updates, set_ticket_refusals_name_the_reason_and_change_nothing) {
    ASSERT_TRUE(apply(add(2, 1)));
    ASSERT_TRUE(apply(add(2, 2)));
    ASSERT_TRUE(apply(simple(op::remove_key, 2, 2)));
    const test::bytes t = ticket_value(96, 0x30);
    expect_refused(ticket(9, 1, t), "no SA with spp 9; add its key first");
    expect_refused(ticket(2, 7, t), "spp 2 has no key 7; add it first");
    expect_refused(ticket(2, 2, t), "spp 2 has no key 2: it was removed or expired");
    expect_refused(ticket(2, 1, ticket_value(95, 0x30)), "ticket length 95 is odd");
    expect_refused(ticket(2, 1, ticket_value(1, 0x30)), "ticket length 1 is odd");
    for (const uint8_t len : {uint8_t{105}, uint8_t{106}, uint8_t{255}}) {
        sa_wire::update too_long = ticket(2, 1, t);
        too_long.key_len = len;
        expect_refused(too_long, fmt::format("ticket length {} is above 104", len));
    }
    EXPECT_EQ(_db->find(2)->find_ticket(1), nullptr);
    // The reason fits the acknowledgement whole.
    const sa_wire::update odd = ticket(255, UINT32_MAX, ticket_value(103, 1));
    ASSERT_TRUE(apply(add(255, UINT32_MAX)));
    const status st = apply(odd);
    ASSERT_FALSE(st);
    EXPECT_EQ(std::string(make_ack(odd, st).reason), st.err().message);
}

TEST_F(sa_updates, set_ticket_of_length_0_takes_the_ticket_away) {
    ASSERT_TRUE(apply(add(2, 1)));
    ASSERT_TRUE(apply(add(2, 2)));
    ASSERT_TRUE(apply(ticket(2, 1, ticket_value(80, 1))));
    ASSERT_TRUE(apply(ticket(2, 2, ticket_value(96, 2))));
    ASSERT_TRUE(apply(ticket(2, 1, {})));
    EXPECT_EQ(_db->find(2)->find_ticket(1), nullptr);
    ASSERT_NE(_db->find(2)->find_ticket(2), nullptr) << "the other key keeps its ticket";
    EXPECT_EQ(_db->find(2)->find_ticket(2)->length, 96);
    EXPECT_NE(_db->find(2)->find_key(1), nullptr) << "the key stays";
    // Nothing to take away: applied all the same.
    EXPECT_TRUE(apply(ticket(2, 1, {})));
}

TEST_F(sa_updates, the_ticket_goes_with_its_key) {
    ASSERT_TRUE(apply(add(2, 1), t0));
    ASSERT_TRUE(apply(add_for(2, 2, 1000), t0));
    ASSERT_TRUE(apply(add(2, 3), t0));
    for (uint32_t id = 1; id <= 3; ++id) {
        ASSERT_TRUE(apply(ticket(2, id, ticket_value(80, static_cast<uint8_t>(id))), t0));
    }
    ASSERT_TRUE(apply(simple(op::remove_key, 2, 1), t0));
    EXPECT_EQ(_db->find(2)->find_ticket(1), nullptr) << "remove_key";
    ASSERT_TRUE(expire(t0 + 1000 * ms));
    EXPECT_EQ(_db->find(2)->find_ticket(2), nullptr) << "expiry";
    ASSERT_NE(_db->find(2)->find_ticket(3), nullptr);
    ASSERT_EQ(_db->find(2)->tickets.size(), 1U);
    ASSERT_TRUE(apply(simple(op::remove_sa, 2), t0));
    ASSERT_TRUE(apply(add(2, 3), t0));
    EXPECT_EQ(_db->find(2)->find_ticket(3), nullptr) << "remove_sa";
    ASSERT_TRUE(apply(ticket(2, 3, ticket_value(80, 3)), t0));
    ASSERT_TRUE(apply(simple(op::flush), t0));
    ASSERT_TRUE(apply(add(2, 3), t0));
    EXPECT_EQ(_db->find(2)->find_ticket(3), nullptr) << "flush";
}

TEST_F(sa_updates, a_ticket_set_by_update_goes_into_the_unicast_requests_signed_with_its_key) {
    ASSERT_TRUE(apply(add(2, 1, icv::algorithm::hmac_sha256_128, 32, 0x42)));
    ASSERT_TRUE(apply(simple(op::set_current, 2, 1)));
    const test::bytes t = ticket_value(96, 0x30);
    ASSERT_TRUE(apply(ticket(2, 1, t)));
    icv::gmac_iv_counter iv(1);
    signer s(_engine, *_db, iv);
    verifier v(_engine, *_db);
    test::bytes request_unicast(6, 0);
    request_unicast[0] = static_cast<uint8_t>(static_cast<uint8_t>(ptp::message_type::announce) << 4);
    const test::bytes msg = test::build(ptp::message_type::signaling,
                                        {test::make_tlv(ptp::tlv_request_unicast_transmission, request_unicast)});
    std::vector<test::owned_frame> frames;
    frames.emplace_back(test::make_frame(msg, test::spec_named("udp4").spec), 256);
    auto views = test::views(frames);
    frame_outcome o;
    ASSERT_EQ(s.sign_burst_current(views.data(), 1, 2, &o), 1);
    EXPECT_TRUE(o.ticket_attached);
    test::take_lengths(frames, views);
    ptp::frame_info fi;
    const ptp::message_view mv = test::parse_signed(frames[0], fi);
    ASSERT_EQ(mv.ticket_offset, msg.size());
    const uint8_t* tlv = frames[0].buf.data() + fi.ptp_offset + mv.ticket_offset;
    EXPECT_EQ(load_be16(tlv), ptp::default_ticket_tlv_type);
    ASSERT_EQ(load_be16(tlv + 2), t.size());
    EXPECT_EQ(test::bytes(tlv + 4, tlv + 4 + t.size()), t);
    EXPECT_EQ(mv.auth.offset, msg.size() + 4 + t.size());
    EXPECT_EQ(v.verify_burst(views.data(), 1, &o), 1);

    // Taken away: the next request goes without.
    ASSERT_TRUE(apply(ticket(2, 1, {})));
    s.use(*_db);
    std::vector<test::owned_frame> again;
    again.emplace_back(test::make_frame(msg, test::spec_named("udp4").spec), 256);
    auto again_views = test::views(again);
    ASSERT_EQ(s.sign_burst_current(again_views.data(), 1, 2, &o), 1);
    EXPECT_FALSE(o.ticket_attached);
    test::take_lengths(again, again_views);
    EXPECT_EQ(test::parse_signed(again[0], fi).ticket_offset, 0);
}

// The channel.

std::string unique_prefix(const char* what) {
    return fmt::format("test-{}-{}", what, ::getpid());
}

TEST(sa_channel_test, updates_and_acks_round_trip_in_order_across_the_wrap) {
    auto created = sa_channel::create(unique_prefix("rt"), 4);
    ASSERT_TRUE(created) << created.message();
    sa_channel& dp = *created;
    EXPECT_EQ(dp.slots(), 4U);
    auto attached = sa_channel::attach(unique_prefix("rt"));
    ASSERT_TRUE(attached) << attached.message();
    sa_channel& ctl = *attached;
    uint64_t next = 1;
    for (int round = 0; round < 10; ++round) {
        for (int i = 0; i < 3; ++i) {
            sa_wire::update u = add(2, static_cast<uint32_t>(next));
            u.sequence = next++;
            ASSERT_TRUE(ctl.push_update(u));
        }
        sa_wire::update got[8];
        const unsigned n = dp.pop_updates(got, 8);
        ASSERT_EQ(n, 3U);
        for (unsigned i = 0; i < n; ++i) {
            EXPECT_EQ(got[i].sequence, next - 3 + i);
            EXPECT_EQ(got[i].key[0], 0x11);
            ASSERT_TRUE(dp.push_ack(make_ack(got[i], ok_status())));
        }
        for (unsigned i = 0; i < n; ++i) {
            sa_wire::ack a;
            ASSERT_TRUE(ctl.pop_ack(a));
            EXPECT_EQ(a.sequence, next - 3 + i);
        }
        sa_wire::ack none;
        EXPECT_FALSE(ctl.pop_ack(none));
    }
}

TEST(sa_channel_test, a_full_ring_refuses_instead_of_waiting) {
    auto dp = sa_channel::create(unique_prefix("full"), 2);
    ASSERT_TRUE(dp);
    auto ctl = sa_channel::attach(unique_prefix("full"));
    ASSERT_TRUE(ctl);
    // rte_ring keeps one slot free: a ring of 2 holds 1.
    EXPECT_TRUE(ctl->push_update(add(2, 1)));
    EXPECT_FALSE(ctl->push_update(add(2, 2)));
    sa_wire::update got[2];
    EXPECT_EQ(dp->pop_updates(got, 2), 1U);
    EXPECT_TRUE(ctl->push_update(add(2, 3)));
}

// Two threads taking turns at the ring (the PTP worker and the main lcore)
// each take the leading updates they may: a pop stops at the first one its
// filter refuses, which stays at the head, octets intact, for the other;
// also across the end of the ring.
TEST(sa_channel_test, a_filtered_pop_takes_the_leading_updates_it_may_and_leaves_the_rest_in_order) {
    const std::string prefix = unique_prefix("filter");
    auto dp = sa_channel::create(prefix, 8);
    ASSERT_TRUE(dp);
    auto ctl = sa_channel::attach(prefix);
    ASSERT_TRUE(ctl);
    const auto odd = [](const sa_wire::update& u) noexcept { return u.key_id % 2 == 1; };
    const auto even = [](const sa_wire::update& u) noexcept { return u.key_id % 2 == 0; };
    sa_wire::update got[8];
    // Five rounds of five on a ring of eight (seven slots): the later rounds
    // start near its end and wrap.
    for (uint32_t round = 0; round < 5; ++round) {
        const uint32_t base = 10 * round;
        for (uint32_t id : {base + 1, base + 3, base + 4, base + 5, base + 6}) {
            ASSERT_TRUE(ctl->push_update(add(2, id, icv::algorithm::hmac_sha256_128, 32, static_cast<uint8_t>(id))));
        }
        ASSERT_EQ(dp->pop_updates(got, 8, odd), 2U) << "round " << round;
        EXPECT_EQ(got[0].key_id, base + 1);
        EXPECT_EQ(got[1].key_id, base + 3);
        EXPECT_EQ(dp->pop_updates(got, 8, odd), 0U) << "an even one is at the head";
        EXPECT_TRUE(dp->updates_waiting());
        ASSERT_EQ(dp->pop_updates(got, 8, even), 1U);
        EXPECT_EQ(got[0].key_id, base + 4);
        EXPECT_EQ(got[0].key[31], static_cast<uint8_t>(base + 4)) << "left in its slot untouched";
        ASSERT_EQ(dp->pop_updates(got, 1, odd), 1U) << "n bounds it too";
        EXPECT_EQ(got[0].key_id, base + 5);
        ASSERT_EQ(dp->pop_updates(got, 8), 1U);
        EXPECT_EQ(got[0].key_id, base + 6);
        EXPECT_FALSE(dp->updates_waiting());
    }
}

TEST(sa_channel_test, key_octets_do_not_stay_in_the_segment) {
    const std::string prefix = unique_prefix("wipe");
    auto dp = sa_channel::create(prefix, 4);
    ASSERT_TRUE(dp);
    auto ctl = sa_channel::attach(prefix);
    ASSERT_TRUE(ctl);
    ASSERT_TRUE(ctl->push_update(add(2, 1, icv::algorithm::hmac_sha256_128, 32, 0xA7)));
    sa_wire::update got[1];
    ASSERT_EQ(dp->pop_updates(got, 1), 1U);
    EXPECT_EQ(got[0].key[31], 0xA7);
    // Read the whole segment through a third mapping: no run of key octets.
    const int fd = ::shm_open(sa_channel::segment_name(prefix).c_str(), O_RDONLY, 0);
    ASSERT_GE(fd, 0);
    struct stat st {};
    ASSERT_EQ(::fstat(fd, &st), 0);
    const auto* p = static_cast<const uint8_t*>(::mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd, 0));
    ASSERT_NE(p, MAP_FAILED);
    const std::vector<uint8_t> key(32, 0xA7);
    const auto* end = p + st.st_size;
    EXPECT_EQ(std::search(p, end, key.begin(), key.end()), end);
    ::munmap(const_cast<uint8_t*>(p), st.st_size);
    ::close(fd);
}

TEST(sa_channel_test, attach_says_what_is_wrong) {
    auto none = sa_channel::attach(unique_prefix("absent"));
    ASSERT_FALSE(none);
    EXPECT_NE(none.message().find("no ptpsec-dataplane running with file prefix"), std::string::npos) << none.message();

    // A segment of another layout version.
    const std::string prefix = unique_prefix("version");
    {
        auto dp = sa_channel::create(prefix, 4);
        ASSERT_TRUE(dp);
        const int fd = ::shm_open(sa_channel::segment_name(prefix).c_str(), O_RDWR, 0);
        ASSERT_GE(fd, 0);
        auto* p = static_cast<uint32_t*>(::mmap(nullptr, 64, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        ASSERT_NE(p, MAP_FAILED);
        p[1] = 99; // version
        ::munmap(p, 64);
        ::close(fd);
        auto other = sa_channel::attach(prefix);
        ASSERT_FALSE(other);
        EXPECT_NE(other.message().find("layout version 99"), std::string::npos) << other.message();
    }
    // The creator removed it.
    auto gone = sa_channel::attach(prefix);
    ASSERT_FALSE(gone);
    EXPECT_NE(gone.message().find("no ptpsec-dataplane running"), std::string::npos);
}

/// Runs `writer` in a child process attached to the channel of `prefix`
/// (the control side: no EAL there either); its return value is the
/// child's exit status, 3 when it cannot attach.
pid_t fork_writer(const std::string& prefix, const std::function<int(sa_channel&)>& writer) {
    const pid_t child = ::fork();
    if (child == 0) {
        auto ctl = sa_channel::attach(prefix);
        ::_exit(ctl ? writer(*ctl) : 3);
    }
    return child;
}

void expect_clean_exit(pid_t child) {
    int ws = 0;
    ASSERT_EQ(::waitpid(child, &ws, 0), child);
    EXPECT_TRUE(WIFEXITED(ws));
    EXPECT_EQ(WEXITSTATUS(ws), 0);
}

TEST(sa_channel_test, works_between_two_processes) {
    // The control side in a child process (no EAL there either): it pushes
    // 100 updates under the writer lock and waits for each acknowledgement.
    const std::string prefix = unique_prefix("fork");
    auto dp = sa_channel::create(prefix, 8);
    ASSERT_TRUE(dp);
    const pid_t child = fork_writer(prefix, [](sa_channel& ctl) {
        sa_channel::writer_lock lock(ctl);
        for (uint64_t seq = 1; seq <= 100; ++seq) {
            sa_wire::update u = add(2, static_cast<uint32_t>(seq));
            u.sequence = seq;
            while (!ctl.push_update(u)) {
                ::usleep(100);
            }
            sa_wire::ack a;
            while (!ctl.pop_ack(a)) {
                ::usleep(100);
            }
            if (a.sequence != seq) {
                return 4;
            }
        }
        return 0;
    });
    ASSERT_GE(child, 0);
    uint64_t expected = 1;
    for (int spins = 0; expected <= 100 && spins < 2000000; ++spins) {
        sa_wire::update got[4];
        const unsigned n = dp->pop_updates(got, 4);
        for (unsigned i = 0; i < n; ++i) {
            EXPECT_EQ(got[i].sequence, expected);
            ++expected;
            ASSERT_TRUE(dp->push_ack(make_ack(got[i], ok_status())));
        }
        if (n == 0) {
            ::usleep(50);
        }
    }
    expect_clean_exit(child);
    EXPECT_EQ(expected, 101U);
}

TEST(sa_channel_test, a_push_from_another_process_wakes_a_reader_sleeping_on_the_doorbell) {
    const std::string prefix = unique_prefix("bell");
    auto dp = sa_channel::create(prefix, 8);
    ASSERT_TRUE(dp);
    using clock = std::chrono::steady_clock;
    // Nothing pushed: the wait ends at its limit, with nothing waiting.
    auto since = clock::now();
    EXPECT_FALSE(dp->wait_for_update(std::chrono::milliseconds(30)));
    EXPECT_GE(clock::now() - since, std::chrono::milliseconds(30));

    // The writer in a child process pushes 10 updates, 20 ms apart, so
    // that the reader is asleep when each arrives. Each wait has a 5 s
    // limit: a bell that did not ring would show as a wait that long.
    const pid_t child = fork_writer(prefix, [](sa_channel& ctl) {
        for (uint64_t seq = 1; seq <= 10; ++seq) {
            ::usleep(20000);
            sa_wire::update u = add(2, static_cast<uint32_t>(seq));
            u.sequence = seq;
            if (!ctl.push_update(u)) {
                return 4;
            }
        }
        return 0;
    });
    ASSERT_GE(child, 0);
    for (uint64_t seq = 1; seq <= 10; ++seq) {
        since = clock::now();
        ASSERT_TRUE(dp->wait_for_update(std::chrono::seconds(5))) << "update " << seq;
        EXPECT_LT(clock::now() - since, std::chrono::seconds(4)) << "update " << seq << " did not ring the bell";
        sa_wire::update got[1];
        ASSERT_EQ(dp->pop_updates(got, 1), 1U);
        EXPECT_EQ(got[0].sequence, seq);
    }
    expect_clean_exit(child);

    // An update already waiting: no sleep at all.
    auto ctl = sa_channel::attach(prefix);
    ASSERT_TRUE(ctl);
    ASSERT_TRUE(ctl->push_update(add(2, 11)));
    since = clock::now();
    EXPECT_TRUE(dp->wait_for_update(std::chrono::seconds(5)));
    EXPECT_LT(clock::now() - since, std::chrono::seconds(4));
}

} // namespace
} // namespace ptpsec
