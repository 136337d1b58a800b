// The KE server's group key schedule (control/ke/group_keys.h) and its SQLite
// store (control/ke/store.h): epochs, update and grace periods, SPP and key-ID
// rules of seeds/001 §2.5.1 and §5.3, and a restart that keeps the keys.

#include "../process.h"

#include <control/ke/group_keys.h>
#include <control/ke/store.h>

#include "ke_test_support.h"

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <set>

namespace ptpsec::ke {
namespace {

using test::policy;
using test::refusing_store;
using test::s;
using test::state_holds;
using test::test_clocks;

std::unique_ptr<key_schedule> make(std::vector<group_policy> p, test_clocks& clk,
                                   std::shared_ptr<state_store> store = nullptr) {
    auto ks = key_schedule::create(std::move(p), std::move(store), clk);
    EXPECT_TRUE(ks) << ks.message();
    return ks ? std::move(ks).value() : nullptr;
}

TEST(ke_group_keys, refuses_policies_that_break_the_rules_by_name) {
    struct bad {
        group_policy p;
        std::string says;
    };
    std::vector<bad> cases;
    auto add = [&](auto change, std::string says) {
        group_policy p = policy("g", 0);
        change(p);
        cases.push_back({p, std::move(says)});
    };
    add([](group_policy& p) { p.update_period_s = 4000; }, "group g: update period 4000 s: at least 1 s and not more");
    add([](group_policy& p) { p.update_period_s = 0; }, "update period 0 s");
    add([](group_policy& p) { p.grace_period_s = 301; }, "group g: grace period 301 s is more than the update period");
    add([](group_policy& p) { p.lifetime_s = 0; }, "group g: lifetime 0 s");
    add([](group_policy& p) { p.lifetime_s = max_lifetime_s + 1; }, "(388 days)");
    add([](group_policy& p) { p.id.sdo_id = 0x1000; }, "sdoId 0x1000 is more than 12 bits");
    add([](group_policy& p) { p.name.clear(); }, "no name");
    for (const auto& c : cases) {
        const auto st = validate(c.p);
        ASSERT_FALSE(st) << c.says;
        EXPECT_NE(st.message().find(c.says), std::string::npos) << st.message();
    }
    test_clocks clk;
    auto twice = key_schedule::create({policy("a", 0), policy("a", 1)}, nullptr, clk);
    ASSERT_FALSE(twice);
    EXPECT_NE(twice.message().find("group a: the name is used twice"), std::string::npos);
    auto same_id = key_schedule::create({policy("a", 0), policy("b", 0)}, nullptr, clk);
    ASSERT_FALSE(same_id);
    EXPECT_NE(same_id.message().find("group b: domain 0 sdoId 0x100 subGroup 0 is configured twice"), std::string::npos)
        << same_id.message();
}

TEST(ke_group_keys, current_only_until_the_update_period_then_the_same_next_for_everyone) {
    test_clocks clk;
    auto ks = make({policy("g", 0)}, clk);
    ASSERT_TRUE(ks);
    auto first = ks->parameters("g");
    ASSERT_TRUE(first) << first.message();
    EXPECT_EQ(first->current_validity, (validity{3600, 300, 3}));
    EXPECT_FALSE(first->next);
    EXPECT_EQ(first->current.key.size(), 32U);

    clk.advance(1000 * s + s / 2); // 2599.5 s left: counted down, rounded up
    auto later = ks->parameters(group_id{0, 0x100, 0});
    ASSERT_TRUE(later);
    EXPECT_EQ(later->current.key_id, first->current.key_id);
    EXPECT_EQ(later->current.key, first->current.key);
    EXPECT_EQ(later->current_validity.lifetime_s, 2600U);
    EXPECT_FALSE(later->next);

    clk.advance(2300 * s); // 299.5 s left: inside the update period
    auto a = ks->parameters("g");
    ASSERT_TRUE(a);
    ASSERT_TRUE(a->next);
    EXPECT_EQ(a->current_validity.lifetime_s, 300U);
    EXPECT_EQ(a->next_validity, (validity{3600, 300, 3}));
    EXPECT_EQ(a->next->spp, a->current.spp);
    EXPECT_NE(a->next->key_id, a->current.key_id);
    EXPECT_NE(a->next->key, a->current.key);
    EXPECT_EQ(a->next->start_ns, a->current.end_ns());
    clk.advance(100 * s);
    auto b = ks->parameters("g");
    ASSERT_TRUE(b && b->next);
    EXPECT_EQ(b->next->key_id, a->next->key_id);
    EXPECT_EQ(b->next->key, a->next->key);

    // The current key ends: the next one is current, counted down from its
    // start, and the old one is kept for its grace period only.
    clk.advance(200 * s);
    auto c = ks->parameters("g");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->current.key_id, a->next->key_id);
    EXPECT_EQ(c->current_validity.lifetime_s, 3600U);
    EXPECT_FALSE(c->next);
    EXPECT_EQ(ks->expire(), 0U) << "the old key is still in its grace period";
    clk.advance(3 * s);
    EXPECT_EQ(ks->expire(), 1U);
}

TEST(ke_group_keys, every_group_has_its_own_spp_and_key_ids_are_unique_across_groups) {
    test_clocks clk;
    auto ks = make(
        {policy("a", 0), policy("b", 1, icv::algorithm::aes_cmac_128), policy("c", 2, icv::algorithm::aes_gmac_192)},
        clk);
    ASSERT_TRUE(ks);
    std::set<uint8_t> spps;
    std::set<uint32_t> ids;
    for (const char* g : {"a", "b", "c"}) {
        for (int round = 0; round < 3; ++round) {
            auto p = ks->parameters(g);
            ASSERT_TRUE(p) << p.message();
            spps.insert(p->current.spp);
            ids.insert(p->current.key_id);
            if (p->next) {
                ids.insert(p->next->key_id);
            }
        }
    }
    EXPECT_EQ(spps, (std::set<uint8_t>{1, 2, 3}));
    EXPECT_EQ(ids.size(), 3U);
    EXPECT_EQ(ks->parameters("b")->current.key.size(), 16U);
    EXPECT_EQ(ks->parameters("c")->current.key.size(), 24U);
    clk.advance(3400 * s);
    std::set<uint32_t> next_ids;
    for (const char* g : {"a", "b", "c"}) {
        auto p = ks->parameters(g);
        ASSERT_TRUE(p && p->next);
        next_ids.insert(p->next->key_id);
        EXPECT_FALSE(ids.contains(p->next->key_id));
    }
    EXPECT_EQ(next_ids.size(), 3U);
    EXPECT_EQ(ks->last_key_id(), 6U);
    EXPECT_FALSE(ks->parameters("d"));
    EXPECT_NE(ks->parameters(group_id{9, 0, 0}).message().find("no group domain 9 sdoId 0x000 subGroup 0"),
              std::string::npos);
}

TEST(ke_group_keys, a_restart_hands_out_the_same_keys_for_the_same_epochs) {
    ptpsec::test::temp_dir dir;
    const std::string path = dir.file("state.db");
    test_clocks clk;
    group_parameters before;
    {
        auto store = sqlite_store::open(path);
        ASSERT_TRUE(store) << store.message();
        auto ks = make({policy("a", 0), policy("b", 1)}, clk, *store);
        ASSERT_TRUE(ks);
        ASSERT_TRUE(ks->parameters("a"));
        ASSERT_TRUE(ks->parameters("b"));
        clk.advance(3400 * s);
        auto p = ks->parameters("a");
        ASSERT_TRUE(p && p->next);
        before = *p;
    }
    EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    // The machine rebooted: the monotonic clock starts again near zero;
    // 20 s of wall-clock time passed meanwhile.
    clk.mono = 5 * s;
    clk.wall += 20 * s;
    auto store = sqlite_store::open(path);
    ASSERT_TRUE(store) << store.message();
    auto ks = make({policy("a", 0), policy("b", 1)}, clk, *store);
    ASSERT_TRUE(ks);
    auto after = ks->parameters("a");
    ASSERT_TRUE(after && after->next) << (after ? "no next" : after.message());
    EXPECT_EQ(after->current.key_id, before.current.key_id);
    EXPECT_EQ(after->current.key, before.current.key);
    EXPECT_EQ(after->current.spp, before.current.spp);
    EXPECT_EQ(after->current_validity.lifetime_s, before.current_validity.lifetime_s - 20);
    EXPECT_EQ(after->next->key_id, before.next->key_id);
    EXPECT_EQ(after->next->key, before.next->key);
    EXPECT_EQ(ks->spp_of("b"), 2);
    // Key IDs go on from where they were: never reused.
    EXPECT_EQ(ks->last_key_id(), 3U);
    clk.advance(400 * s);
    auto third = ks->parameters("a");
    ASSERT_TRUE(third);
    EXPECT_EQ(third->current.key_id, before.next->key_id);
}

TEST(ke_group_keys, a_retired_key_is_in_neither_the_state_file_nor_its_wal_and_the_file_stays_0600) {
    ptpsec::test::temp_dir dir;
    const std::string path = dir.file("state.db");
    // A file made by someone else with a wider mode is narrowed.
    {
        auto made = sqlite_store::open(path);
        ASSERT_TRUE(made) << made.message();
    }
    std::filesystem::permissions(path, std::filesystem::perms::others_read | std::filesystem::perms::group_read,
                                 std::filesystem::perm_options::add);
    test_clocks clk;
    auto store = sqlite_store::open(path);
    ASSERT_TRUE(store) << store.message();
    EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    auto ks = make({policy("g", 0)}, clk, *store);
    ASSERT_TRUE(ks);
    auto first = ks->parameters("g");
    ASSERT_TRUE(first);
    const auto span = first->current.key.span();
    const std::vector<uint8_t> key(span.begin(), span.end());
    ASSERT_GE(key.size(), 16U);
    EXPECT_TRUE(state_holds(path, key)) << "saved before it is handed out";
    // Past its lifetime and grace period: expired, deleted, and its pages
    // zeroed and checkpointed.
    clk.advance(3600 * s + 3 * s + 1 * s);
    ASSERT_TRUE(ks->parameters("g"));
    ks->expire();
    EXPECT_FALSE(state_holds(path, key));
    auto now = ks->parameters("g");
    ASSERT_TRUE(now);
    const auto live = now->current.key.span();
    EXPECT_TRUE(state_holds(path, live)) << "the current key stays";
}

TEST(ke_group_keys, an_early_rotation_ends_the_key_sooner_hands_out_the_next_at_once_and_survives_a_restart) {
    ptpsec::test::temp_dir dir;
    const std::string path = dir.file("state.db");
    test_clocks clk;
    rotation r;
    {
        auto store = sqlite_store::open(path);
        ASSERT_TRUE(store) << store.message();
        auto ks = make({policy("g", 0), policy("other", 1)}, clk, *store);
        ASSERT_TRUE(ks);
        auto first = ks->parameters("g");
        ASSERT_TRUE(first && !first->next);
        ASSERT_TRUE(ks->parameters("other"));
        clk.advance(100 * s);
        auto done = ks->rotate("g", 120);
        ASSERT_TRUE(done) << done.message();
        r = *done;
        EXPECT_EQ(r.group, "g");
        EXPECT_EQ(r.key_id, first->current.key_id);
        EXPECT_EQ(r.old_left_s, 3500U);
        EXPECT_EQ(r.left_s, 120U);
        ASSERT_NE(r.next_key_id, 0U);
        EXPECT_NE(r.next_key_id, r.key_id);
        // Every client from now on: the same current key, ending in 120 s,
        // and the next one with its full lifetime.
        auto now = ks->parameters("g");
        ASSERT_TRUE(now && now->next);
        EXPECT_EQ(now->current.key_id, r.key_id);
        EXPECT_EQ(now->current.key, first->current.key);
        EXPECT_EQ(now->current_validity, (validity{120, 300, 3}));
        EXPECT_EQ(now->next->key_id, r.next_key_id);
        EXPECT_EQ(now->next_validity, (validity{3600, 300, 3}));
        // The other group is untouched.
        auto other = ks->parameters("other");
        ASSERT_TRUE(other);
        EXPECT_FALSE(other->next);
        EXPECT_EQ(other->current_validity.lifetime_s, 3500U);
        // Once rotating, a group is not rotated again until its next key is current.
        const auto again = ks->rotate("g", 10);
        ASSERT_FALSE(again);
        EXPECT_EQ(again.message(),
                  fmt::format("group g is rotating already: key {} ends in 120 s and key {} follows it", r.key_id,
                              r.next_key_id));
        EXPECT_EQ(ks->rotate("nope", 10).message(), "no group named nope is configured");
        EXPECT_EQ(ks->rotate("other", 0).message(),
                  "a rotation needs at least 1 s: clients must have time to fetch the next key");
        EXPECT_EQ(ks->rotate("other", 3500).message(),
                  fmt::format("group other: key {} ends in 3500 s anyway, no later than the 3500 s asked for",
                              other->current.key_id));
    }
    // A restart keeps the shorter lifetime: the same next key takes over at the same time.
    clk.advance(20 * s);
    auto store = sqlite_store::open(path);
    ASSERT_TRUE(store) << store.message();
    auto ks = make({policy("g", 0), policy("other", 1)}, clk, *store);
    ASSERT_TRUE(ks);
    auto after = ks->parameters("g");
    ASSERT_TRUE(after && after->next);
    EXPECT_EQ(after->current.key_id, r.key_id);
    EXPECT_EQ(after->current_validity.lifetime_s, 100U);
    EXPECT_EQ(after->next->key_id, r.next_key_id);
    clk.advance(100 * s);
    auto next = ks->parameters("g");
    ASSERT_TRUE(next);
    EXPECT_EQ(next->current.key_id, r.next_key_id);
    EXPECT_EQ(next->current_validity.lifetime_s, 3600U);
}

TEST(ke_group_keys, a_rotation_by_the_update_period_starts_that_period_at_once_between_whole_seconds) {
    test_clocks clk;
    auto ks = make({policy("g", 0)}, clk);
    ASSERT_TRUE(ks);
    ASSERT_TRUE(ks->parameters("g"));
    clk.advance(10 * s + s / 2);
    auto r = ks->rotate("g", 300);
    ASSERT_TRUE(r) << r.message();
    EXPECT_NE(r->next_key_id, 0U) << "the update period (300 s) has begun";
    EXPECT_EQ(r->left_s, 300U);
}

TEST(ke_group_keys, a_rotation_the_store_refuses_changes_nothing) {
    test_clocks clk;
    auto ks = make({policy("g", 0)}, clk);
    ASSERT_TRUE(ks);
    auto first = ks->parameters("g");
    ASSERT_TRUE(first);
    // Same schedule, but with a store that takes the first epoch and then refuses.
    struct refuse_lifetime final : state_store {
        result<saved> load() override { return saved{}; }
        status save_epoch(const std::string&, uint8_t, const epoch&, uint32_t) override { return ok_status(); }
        status forget_retired(int64_t) override { return ok_status(); }
        status save_key_id_ceiling(uint32_t) override { return ok_status(); }
        status save_spp(const std::string&, uint8_t) override { return ok_status(); }
        status save_lifetime(uint32_t, uint32_t) override { return error{"disk full"}; }
    };
    auto refusing = make({policy("g", 0)}, clk, std::make_shared<refuse_lifetime>());
    ASSERT_TRUE(refusing);
    auto cur = refusing->parameters("g");
    ASSERT_TRUE(cur);
    const auto r = refusing->rotate("g", 60);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.message(), fmt::format("group g: the shorter lifetime of key {} was not saved, so nothing changed: "
                                       "disk full",
                                       cur->current.key_id));
    auto same = refusing->parameters("g");
    ASSERT_TRUE(same);
    EXPECT_FALSE(same->next);
    EXPECT_EQ(same->current_validity.lifetime_s, 3600U);
}

TEST(ke_group_keys, a_server_down_for_a_whole_epoch_starts_a_new_chain_and_forgets_the_old) {
    ptpsec::test::temp_dir dir;
    const std::string path = dir.file("state.db");
    test_clocks clk;
    uint32_t old_id = 0;
    {
        auto store = sqlite_store::open(path);
        ASSERT_TRUE(store);
        auto ks = make({policy("a", 0)}, clk, *store);
        auto p = ks->parameters("a");
        ASSERT_TRUE(p);
        old_id = p->current.key_id;
    }
    clk.advance(7200 * s);
    auto store = sqlite_store::open(path);
    ASSERT_TRUE(store);
    auto ks = make({policy("a", 0)}, clk, *store);
    auto p = ks->parameters("a");
    ASSERT_TRUE(p);
    EXPECT_GT(p->current.key_id, old_id);
    EXPECT_EQ(p->current_validity.lifetime_s, 3600U);
    ks->expire();
    auto saved = (*store)->load();
    ASSERT_TRUE(saved);
    ASSERT_EQ(saved->epochs.size(), 1U) << "the retired key is gone from the file";
    EXPECT_EQ(saved->epochs[0].second.key_id, p->current.key_id);
}

TEST(ke_group_keys, a_key_that_was_not_saved_is_not_handed_out) {
    test_clocks clk;
    auto ks = make({policy("a", 0)}, clk, std::make_shared<refusing_store>());
    ASSERT_TRUE(ks);
    auto p = ks->parameters("a");
    ASSERT_FALSE(p);
    EXPECT_NE(p.message().find("group a: the new key was not saved, so it is not handed out: disk full"),
              std::string::npos)
        << p.message();
    EXPECT_EQ(ks->last_key_id(), 0U);
}

} // namespace
} // namespace ptpsec::ke
