// Key rotation while traffic flows: ptpsec-dataplane signs the stripped
// linuxptp capture, replayed without end from a net_pcap port, onto a
// net_ring port that loops every frame back, and verifies what comes back.
// Meanwhile the test rotates the signing key 1,000 times through the SA
// channel, over every algorithm (add the next key, make it current, remove
// the key from two rotations back once its grace has passed). Mixed into
// the load are frames that must never verify: they name the SA's keys, past,
// present and future, with ICVs that are not theirs, a tampered message, or
// an unknown SPP. The signing path forwards them as they are (they carry a
// TLV already), so they reach the verifying path among the good frames.
// Not one good frame may be dropped and not one bad frame accepted, and
// every update must be applied.
//
// Replay protection is off here on purpose: the generator replays the same
// 206 sequenceIds again and again, which replay protection would (rightly)
// drop; the other tests cover it.

#include "../linuxptp_capture.h"
#include "../pcap_files.h"
#include "../process.h"
#include "app_helpers.h"

#include <control/sa_client.h>
#include <dataplane/sa_channel.h>
#include <drivers/base/bytes.h>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace ptpsec {
namespace {

using json = nlohmann::json;

constexpr const char* capture = test::linuxptp_capture;
constexpr const char* shipped_sa_file = test::linuxptp_sa_file;
constexpr int rotations = 1000;
/// Frames the loop-back ring may still hold when the data plane stops: sent
/// by the signing path, not yet received by the verifying one.
constexpr uint64_t ring_slack = 2048;

/// The key lengths of each algorithm, in icv::algorithm order.
constexpr uint8_t key_len_of[] = {32, 32, 16, 32, 16, 24, 32};

sa_wire::update add_key(uint8_t spp, uint32_t key_id, std::mt19937& rng) {
    const auto alg = static_cast<uint8_t>(key_id % std::size(key_len_of));
    sa_wire::update u;
    u.operation = static_cast<uint8_t>(sa_wire::op::add_key);
    u.spp = spp;
    u.key_id = key_id;
    u.algorithm = alg;
    u.key_len = key_len_of[alg];
    for (uint8_t i = 0; i < u.key_len; ++i) {
        u.key[i] = static_cast<uint8_t>(rng());
    }
    return u;
}

/// Waits until the data plane's SA channel is there.
testing::AssertionResult channel_up(const std::string& prefix, test::background_program& dp) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
        if (!dp.running()) {
            return testing::AssertionFailure() << "ptpsec-dataplane ended:\n" << dp.err() << dp.out();
        }
        if (sa_channel::attach(prefix)) {
            return testing::AssertionSuccess();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return testing::AssertionFailure() << "no SA channel within 30 s";
}

/// The linuxptp capture with its AUTHENTICATION TLVs stripped, for the
/// data plane to sign again, into `path` in `dir`.
testing::AssertionResult strip_capture(const test::temp_dir& dir, const std::string& path) {
    const auto strip = test::run_program(dir, test::program_from_env("PTPSECCTL"), {"pcap", "strip", capture, path});
    if (strip.exit_code != 0) {
        return testing::AssertionFailure() << "ptpsecctl pcap strip: " << strip.err;
    }
    return testing::AssertionSuccess();
}

/// The load the rotations run under: the stripped capture replayed without
/// end from a net_pcap port, signed with SPP 2 key 1 onto a net_ring port
/// that loops every frame back to be verified, on `lcores` (an EAL
/// option); counters to `stats_file`; then `more` options.
std::vector<std::string> looped_dataplane_args(const std::string& prefix, const std::string& stripped,
                                               const std::string& stats_file, const std::string& lcores,
                                               const std::vector<std::string>& more = {}) {
    auto args = dataplane_command(
        lcores, prefix,
        {fmt::format("--vdev=net_pcap0,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null", stripped), "--vdev=net_ring0"},
        {"--sa-file", shipped_sa_file, "--sign", "2:1", "--replay-window", "0", "--stats-json", stats_file});
    args.insert(args.end(), more.begin(), more.end());
    return args;
}

/// The stripped capture with frames that must never verify dealt in among
/// its frames, and which frames of it are bad.
struct mixed_load {
    std::vector<test::packet> frames;
    std::vector<bool> bad;
    size_t bad_count() const { return static_cast<size_t>(std::count(bad.begin(), bad.end(), true)); }
    /// Bad frames among the first `n` of the file replayed without end.
    uint64_t bad_in_first(uint64_t n) const {
        const uint64_t per_pass = bad_count();
        uint64_t total = n / frames.size() * per_pass;
        for (uint64_t i = 0; i < n % frames.size(); ++i) {
            total += bad[i] ? 1 : 0;
        }
        return total;
    }
};

/// Bad frames made from the capture's signed ones: for every fifth key ID
/// the rotations will install (first_key to last_key), a frame naming SPP 2
/// and that key with the ICV key 1 made; ten whose sequenceId was changed
/// after signing; ten naming SPP 77, which never exists.
mixed_load load_with_bad_frames(const std::string& stripped, uint32_t first_key, uint32_t last_key) {
    mixed_load m;
    std::vector<test::packet> signed_frames;
    for (auto& p : test::read_packets(capture)) {
        if (locate(p.data).auth != 0) {
            signed_frames.push_back(std::move(p));
        }
    }
    std::vector<test::packet> bad;
    auto spoil = [&](size_t i, auto&& change) {
        test::packet p = signed_frames[i % signed_frames.size()];
        const located l = locate(p.data);
        change(p.data.data() + l.ptp, p.data.data() + l.auth);
        bad.push_back(std::move(p));
    };
    for (uint32_t key = first_key; key <= last_key; key += 5) {
        spoil(key, [key](uint8_t*, uint8_t* tlv) { store_be32(tlv + 6, key); }); // keyID
    }
    for (size_t i = 0; i < 10; ++i) {
        spoil(i * 7, [](uint8_t* msg, uint8_t*) { msg[31] ^= 0x40; }); // sequenceId
        spoil(i * 11, [](uint8_t*, uint8_t* tlv) { tlv[4] = 77; });    // spp
    }
    // One bad frame after each good one until they run out.
    const auto good = test::read_packets(stripped);
    for (size_t i = 0; i < std::max(good.size(), bad.size()); ++i) {
        if (i < good.size()) {
            m.frames.push_back(good[i]);
            m.bad.push_back(false);
        }
        if (i < bad.size()) {
            m.frames.push_back(bad[i]);
            m.bad.push_back(true);
        }
    }
    return m;
}

TEST(rotation, a_thousand_rotations_under_load_drop_nothing) {
    test::temp_dir dir;
    const std::string stripped = dir.file("stripped.pcap");
    ASSERT_TRUE(strip_capture(dir, stripped));
    // The keys the rotations install are 101 to 100 + rotations.
    const mixed_load load = load_with_bad_frames(stripped, 101, 100 + rotations);
    ASSERT_GE(load.bad_count(), 200U);
    const std::string mixed = dir.file("mixed.pcap");
    test::write_packets(mixed, DLT_EN10MB, load.frames);

    const std::string prefix = fmt::format("ptpsec-rot-{}", ::getpid());
    const std::string stats_file = dir.file("stats.json");
    runtime_dir_guard runtime(prefix);
    test::background_program dp(dir, test::program_from_env("PTPSEC_DATAPLANE"),
                                looped_dataplane_args(prefix, mixed, stats_file, "--lcores=0"));
    ASSERT_TRUE(channel_up(prefix, dp));

    std::mt19937 rng(2024);
    const auto started = std::chrono::steady_clock::now();
    for (int i = 1; i <= rotations; ++i) {
        const auto key = static_cast<uint32_t>(100 + i);
        std::vector<sa_wire::update> batch = {add_key(2, key, rng), sa_client::set_current(2, key)};
        // The key current two rotations ago has had a whole rotation of grace.
        if (i >= 3) {
            batch.push_back(sa_client::remove_key(2, key - 2));
        } else if (i == 2) {
            batch.push_back(sa_client::remove_key(2, 1)); // the SA file's key signed at start
        }
        auto sent = sa_client::send(prefix, batch);
        ASSERT_TRUE(sent) << "rotation " << i << ": " << sent.message();
        for (const auto& o : *sent) {
            ASSERT_TRUE(o.applied) << "rotation " << i << ": " << o.reason;
        }
    }
    const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ASSERT_EQ(dp.stop(), 0) << dp.err();

    const json stats = json::parse(test::read_file(stats_file));
    json out;
    json back;
    for (const auto& p : stats.at("paths")) {
        (p.at("name") == "inside->outside" ? out : back) = p;
    }
    const uint64_t sent_out = out.at("tx");
    const uint64_t came_back = back.at("rx");
    RecordProperty("rotations_per_second", fmt::format("{:.0f}", rotations / took));
    RecordProperty("frames_signed", std::to_string(out.at("signed").get<uint64_t>()));
    EXPECT_EQ(out.at("dropped"), 0) << out.dump();
    EXPECT_EQ(out.at("rx"), out.at("tx"));
    EXPECT_GT(out.at("signed").get<uint64_t>(), 100000U) << "traffic flowed the whole time";
    EXPECT_EQ(out.at("already_signed"), load.bad_in_first(out.at("rx"))) << "the bad frames went out as they were";
    EXPECT_LE(came_back, sent_out);
    EXPECT_LE(sent_out - came_back, ring_slack) << "frames went missing in the loop";
    // The frames come back in the order they were read, so the bad ones
    // among them are known exactly: all of them dropped, nothing else.
    const uint64_t bad_back = load.bad_in_first(came_back);
    EXPECT_GT(bad_back, 10000U);
    EXPECT_EQ(back.at("dropped"), bad_back) << back.dump();
    EXPECT_EQ(back.at("rx").get<uint64_t>() - bad_back, back.at("tx")) << back.dump();
    EXPECT_EQ(back.at("verified").get<uint64_t>() + back.at("non_ptp").get<uint64_t>() + bad_back, came_back)
        << back.dump();
    // Refused for what they are: those naming an installed key for their
    // ICV (or for an ICV or IV that does not fit its algorithm), a removed
    // key as expired, a key still to come as unknown.
    const json& drops = back.at("drops");
    EXPECT_GT(drops.at("bad_icv").get<uint64_t>(), 0U) << back.dump();
    EXPECT_GT(drops.at("expired_key").get<uint64_t>(), 0U) << back.dump();
    EXPECT_GT(drops.at("unknown_key").get<uint64_t>(), 0U) << back.dump();
    EXPECT_GT(drops.at("unknown_spp").get<uint64_t>(), 0U) << back.dump();
    RecordProperty("bad_frames_dropped", std::to_string(bad_back));
    const std::string log = dp.out();
    EXPECT_NE(log.find(fmt::format("applied {} rejected 0", 3 * rotations - 1)), std::string::npos) << log;
    // Every update carried the time it was sent: each one's apply latency
    // was measured (the figures go to the test report, not into a verdict).
    const json& lat = stats.at("sa_updates").at("apply_latency_us");
    EXPECT_EQ(lat.at("samples"), 3 * rotations - 1) << lat.dump();
    EXPECT_LE(lat.at("p50").get<uint64_t>(), lat.at("p99").get<uint64_t>());
    EXPECT_LE(lat.at("p99").get<uint64_t>(), lat.at("max").get<uint64_t>());
    RecordProperty("apply_latency_p50_us", std::to_string(lat.at("p50").get<uint64_t>()));
    RecordProperty("apply_latency_p99_us", std::to_string(lat.at("p99").get<uint64_t>()));
    RecordProperty("apply_latency_max_us", std::to_string(lat.at("max").get<uint64_t>()));
}

/// A verifier nonce for the attestation signer.
sa_wire::update a_nonce(uint8_t seed) {
    const std::array<uint8_t, 16> nonce{seed, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    auto u = sa_client::attest_nonce(nonce);
    EXPECT_TRUE(u) << u.message();
    return u ? *u : sa_wire::update{};
}

/// With a worker lcore beside the main lcore, --sa-apply says who applies SA
/// updates: the PTP worker between two of its bursts (the default), or the
/// main lcore. Either way, under load: every update applied in order, a
/// verifier nonce among them left to the main lcore (it takes the signer's
/// lock) without holding up the updates after it, and no frame lost.
class sa_apply_placement : public testing::TestWithParam<std::string> {};

TEST_P(sa_apply_placement, every_update_is_applied_in_order_by_the_lcore_it_names_and_nothing_drops) {
    test::temp_dir dir;
    const std::string stripped = dir.file("stripped.pcap");
    ASSERT_TRUE(strip_capture(dir, stripped));
    const std::string prefix = fmt::format("ptpsec-rotapply-{}-{}", ::getpid(), GetParam());
    const std::string stats_file = dir.file("stats.json");
    runtime_dir_guard runtime(prefix);
    // A software attestation signer on the Announce messages (a few a
    // second), for the nonces to go to.
    std::filesystem::create_directory(dir.file("evidence"));
    test::background_program dp(
        dir, test::program_from_env("PTPSEC_DATAPLANE"),
        looped_dataplane_args(prefix, stripped, stats_file, "--lcores=0@(0-1),1@(0-1)",
                              {"--sa-apply", GetParam(), "--events", "rx", "--event-types", "announce", "--attest",
                               "software", "--attest-key", dir.file("k.pem"), "--attest-counter", dir.file("counter"),
                               "--attest-log", dir.file("evidence")}));
    ASSERT_TRUE(channel_up(prefix, dp));

    constexpr int turns = 100;
    std::mt19937 rng(7);
    for (int i = 1; i <= turns; ++i) {
        const auto key = static_cast<uint32_t>(100 + i);
        std::vector<sa_wire::update> batch = {add_key(2, key, rng), a_nonce(static_cast<uint8_t>(i)),
                                              sa_client::set_current(2, key),
                                              sa_client::remove_key(2, i == 1 ? 1 : key - 1)};
        auto sent = sa_client::send(prefix, batch);
        ASSERT_TRUE(sent) << "turn " << i << ": " << sent.message();
        ASSERT_EQ(sent->size(), 4U);
        for (size_t k = 0; k < sent->size(); ++k) {
            ASSERT_TRUE((*sent)[k].applied) << "turn " << i << ", update " << k << ": " << (*sent)[k].reason;
        }
    }
    ASSERT_EQ(dp.stop(), 0) << dp.err();

    const std::string log = dp.out();
    const json stats = json::parse(test::read_file(stats_file));
    const json& svc = stats.at("sa_updates");
    EXPECT_EQ(svc.at("applied"), 4 * turns) << svc.dump();
    EXPECT_EQ(svc.at("rejected"), 0) << svc.dump();
    const uint64_t by_worker = svc.at("applied_by_worker");
    const uint64_t for_worker = svc.at("applied_by_main_for_worker");
    if (GetParam() == "worker") {
        EXPECT_NE(log.find("applied by the PTP worker between its bursts"), std::string::npos) << log;
        // Every SA update, and none of the nonces, by the worker or for it.
        EXPECT_EQ(by_worker + for_worker, 3U * turns) << svc.dump();
        // The main lcore steps in only for a worker held up for 50 us,
        // which a worker whose lcore shares a busy CPU may be often.
        EXPECT_GT(by_worker, 0U) << svc.dump();
    } else {
        EXPECT_NE(log.find("applied by the main lcore"), std::string::npos) << log;
        EXPECT_EQ(by_worker, 0U) << svc.dump();
        EXPECT_EQ(for_worker, 0U) << svc.dump();
    }
    for (const auto& p : stats.at("paths")) {
        EXPECT_EQ(p.at("dropped"), 0) << p.dump();
        EXPECT_EQ(p.at("rx"), p.at("tx")) << p.dump();
        EXPECT_GT(p.at("rx").get<uint64_t>(), 1000U) << p.dump();
    }
}

INSTANTIATE_TEST_SUITE_P(rotation, sa_apply_placement, testing::Values("worker", "main"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });

// A PTP worker that never comes back from its RX burst (net_pcap reading a
// FIFO nobody writes to waits in read()) cannot apply updates: the main
// lcore sees them wait without progress and applies them.
TEST(rotation, updates_a_ptp_worker_held_in_its_rx_burst_cannot_take_are_applied_by_the_main_lcore) {
    test::temp_dir dir;
    const std::string prefix = fmt::format("ptpsec-rotstall-{}", ::getpid());
    const std::string stats_file = dir.file("stats.json");
    runtime_dir_guard runtime(prefix);
    pcap_fifo fifo(dir.file("in.fifo"));
    test::background_program dp(
        dir, test::program_from_env("PTPSEC_DATAPLANE"),
        dataplane_command(
            "--lcores=0@(0-1),1@(0-1)", prefix,
            {fmt::format("--vdev=net_pcap0,rx_pcap={},tx_pcap=/dev/null", fifo.path()), "--vdev=net_ring0"},
            {"--sa-file", shipped_sa_file, "--sign", "2:1", "--stats-json", stats_file}));
    close_on_exit closing(fifo);
    ASSERT_TRUE(channel_up(prefix, dp));
    std::mt19937 rng(11);
    for (uint32_t key = 200; key < 210; ++key) {
        std::vector<sa_wire::update> batch = {add_key(2, key, rng), sa_client::set_current(2, key)};
        auto sent = sa_client::send(prefix, batch);
        ASSERT_TRUE(sent) << sent.message();
        for (const auto& o : *sent) {
            ASSERT_TRUE(o.applied) << o.reason;
        }
    }
    fifo.close(); // the worker's read ends, and with it the worker
    ASSERT_EQ(dp.stop(), 0) << dp.err();
    const json stats = json::parse(test::read_file(stats_file));
    const json& svc = stats.at("sa_updates");
    EXPECT_EQ(svc.at("applied"), 20) << svc.dump();
    EXPECT_EQ(svc.at("applied_by_worker"), 0) << svc.dump();
    EXPECT_EQ(svc.at("applied_by_main_for_worker"), 20) << svc.dump();
}

TEST(rotation, ptpsecctl_sa_commands_change_a_running_dataplane) {
    test::temp_dir dir;
    const std::string ctl = test::program_from_env("PTPSECCTL");
    const std::string prefix = fmt::format("ptpsec-rotctl-{}", ::getpid());
    auto run_ctl = [&](std::vector<std::string> args) {
        args.insert(args.end(), {"--file-prefix", prefix});
        return test::run_program(dir, ctl, args, std::chrono::seconds(30));
    };
    // Nothing to talk to yet.
    const auto none = run_ctl({"sa", "current", "--spp", "2", "--key-id", "1"});
    EXPECT_EQ(none.exit_code, 2);
    EXPECT_NE(none.err.find("no ptpsec-dataplane running with file prefix " + prefix), std::string::npos) << none.err;

    runtime_dir_guard runtime(prefix);
    test::background_program dp(
        dir, test::program_from_env("PTPSEC_DATAPLANE"),
        dataplane_command(
            "-l0", prefix,
            {fmt::format("--vdev=net_pcap0,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null", capture), "--vdev=net_ring0"},
            {"--sign", "2", "--replay-window", "0"}));
    ASSERT_TRUE(channel_up(prefix, dp));

    const std::string sa_file = dir.file("next.conf");
    test::write_file(sa_file, "[security_association]\nspp 2\n7 AES128-GMAC HEX:000102030405060708090a0b0c0d0e0f\n"
                              "8 SHA256-128 ASCII:a-key-for-rotation\n");
    const auto pushed = run_ctl({"sa", "push", "--sa-file", sa_file, "--current", "2:7", "--lifetime", "3600"});
    EXPECT_EQ(pushed.exit_code, 0) << pushed.err;
    EXPECT_EQ(pushed.out, "add_key spp 2 key 7: applied\nadd_key spp 2 key 8: applied\n"
                          "set_current spp 2 key 7: applied\n3 applied, 0 rejected\n");
    const auto again = run_ctl({"sa", "push", "--sa-file", sa_file, "--json"});
    EXPECT_EQ(again.exit_code, 1);
    const json rejected = json::parse(again.out);
    ASSERT_EQ(rejected.size(), 2U);
    EXPECT_FALSE(rejected[0].at("applied").get<bool>());
    EXPECT_NE(rejected[0].at("reason").get<std::string>().find("key 7 of spp 2 is installed already"),
              std::string::npos);
    const std::string later_file = dir.file("later.conf");
    test::write_file(later_file, "[security_association]\nspp 2\n10 SHA256-128 ASCII:a-key-that-stays\n");
    EXPECT_EQ(run_ctl({"sa", "push", "--sa-file", later_file}).exit_code, 0);

    const auto listed = run_ctl({"sa", "list", "--json"});
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    const json sas = json::parse(listed.out);
    const json& keys = sas.at("2").at("keys");
    EXPECT_EQ(keys.at("7").at("current"), 1);
    EXPECT_EQ(keys.at("8").at("current"), 0);
    // --lifetime 3600: counted down from when the data plane installed them.
    for (const char* id : {"7", "8"}) {
        const json& left = keys.at(id).at("remaining_lifetime_s");
        ASSERT_TRUE(left.is_number_unsigned()) << id << ": " << left.dump();
        EXPECT_LE(left.get<uint64_t>(), 3600U) << id;
        EXPECT_GE(left.get<uint64_t>(), 3500U) << id;
    }
    EXPECT_EQ(keys.at("10").at("remaining_lifetime_s"), "never");
    EXPECT_EQ(sas.at("2").at("retired_key_ids"), json::array());

    EXPECT_EQ(run_ctl({"sa", "current", "--spp", "2", "--key-id", "8"}).exit_code, 0);
    const auto gone = run_ctl({"sa", "remove", "--spp", "2", "--key-id", "9"});
    EXPECT_EQ(gone.exit_code, 1);
    EXPECT_NE(gone.out.find("REJECTED: spp 2 has no key 9"), std::string::npos) << gone.out;
    EXPECT_EQ(run_ctl({"sa", "remove", "--spp", "2", "--key-id", "7"}).exit_code, 0);
    // Removing it again finds it gone, as asked: applied, with a note.
    const auto twice = run_ctl({"sa", "remove", "--spp", "2", "--key-id", "7"});
    EXPECT_EQ(twice.exit_code, 0) << twice.out;
    EXPECT_EQ(twice.out, "remove_key spp 2 key 7: applied: key 7 of spp 2 was removed or expired already\n"
                         "1 applied, 0 rejected\n");

    // The SA remembers what it retired, and refuses the ID again
    // (seeds/001 §5.3).
    const auto retired = run_ctl({"sa", "list", "--json"});
    ASSERT_EQ(retired.exit_code, 0) << retired.err;
    EXPECT_EQ(json::parse(retired.out).at("2").at("retired_key_ids"), json::array({7})) << retired.out;
    const auto table = run_ctl({"sa", "list"});
    EXPECT_NE(table.out.find("retired key IDs (removed or expired, oldest first):\n  spp 2: 7\n"), std::string::npos)
        << table.out;
    EXPECT_NE(table.out.find("2     8          hmac-sha256-128  16   current  3             no             "),
              std::string::npos)
        << table.out;
    const auto reused = run_ctl({"sa", "push", "--sa-file", sa_file});
    EXPECT_EQ(reused.exit_code, 1);
    EXPECT_NE(reused.out.find("add_key spp 2 key 7: REJECTED: key 7 of spp 2 was removed or expired; key IDs are "
                              "not reused (seeds/001 §5.3)"),
              std::string::npos)
        << reused.out;

    // A verifier nonce is for the attestation signer, which this data
    // plane does not run: refused, and the SAs are untouched.
    const auto no_attest = run_ctl({"attest", "nonce", "00112233445566778899"});
    EXPECT_EQ(no_attest.exit_code, 1);
    EXPECT_NE(no_attest.out.find("attest_nonce: REJECTED: attestation is off (start the data plane with --attest)"),
              std::string::npos)
        << no_attest.out;
    EXPECT_EQ(json::parse(run_ctl({"sa", "list", "--json"}).out).at("2").at("retired_key_ids"), json::array({7}));

    EXPECT_EQ(run_ctl({"sa", "flush"}).exit_code, 0);
    const auto empty = run_ctl({"sa", "list", "--json"});
    EXPECT_EQ(json::parse(empty.out).size(), 0U) << empty.out;
    // flush forgot the SA and the IDs it retired.
    const auto fresh = run_ctl({"sa", "push", "--sa-file", sa_file});
    EXPECT_EQ(fresh.exit_code, 0) << fresh.out;
    // A key ID is a 32-bit number, in decimal or in hex after 0x; what is
    // neither is refused before anything is sent.
    for (const auto& [key_id, says] :
         {std::pair{"010", "--key-id: 010: write the number without leading zeros (they would read as octal)"},
          std::pair{"-1", "--key-id: -1 is negative: the value is 0 or more"},
          std::pair{"4294967296", "--key-id: Value 4294967296 not in range 0 to 4294967295"}}) {
        const auto refused = run_ctl({"sa", "current", "--spp", "2", "--key-id", key_id});
        EXPECT_EQ(refused.exit_code, 2) << key_id;
        EXPECT_NE(refused.err.find(says), std::string::npos) << refused.err;
    }
    const auto hex = run_ctl({"sa", "current", "--spp", "0x2", "--key-id", "0x8"});
    EXPECT_EQ(hex.out, "set_current spp 2 key 8: applied\n1 applied, 0 rejected\n") << hex.err;
    // Without --key-id, remove takes the whole SA.
    const auto whole = run_ctl({"sa", "remove", "--spp", "2"});
    EXPECT_EQ(whole.exit_code, 0) << whole.out << whole.err;
    EXPECT_TRUE(whole.out.starts_with("remove_sa spp 2 key 0: applied")) << whole.out;
    EXPECT_EQ(json::parse(run_ctl({"sa", "list", "--json"}).out).size(), 0U);
    ASSERT_EQ(dp.stop(), 0) << dp.err();
    EXPECT_NE(dp.out().find("applied 12 rejected 6"), std::string::npos)
        << dp.out() << "the refused nonce is counted with the refused SA updates";
    // The last refusal is named (the nonce: the last update refused).
    EXPECT_NE(dp.out().find("\n    last rejected: attest_nonce: attestation is off (start the data plane with "
                            "--attest)\n"),
              std::string::npos)
        << dp.out();
}

TEST(rotation, a_key_whose_lifetime_ends_goes_and_its_frames_count_as_expired) {
    // Signed and unsigned traffic without end, one key pushed with a
    // lifetime of one second and no control plane to renew it: after a
    // second the data plane retires the key by itself, stops signing
    // (fail closed) and drops frames that still carry it as expired_key.
    test::temp_dir dir;
    const std::string ctl = test::program_from_env("PTPSECCTL");
    const std::string stripped = dir.file("stripped.pcap");
    ASSERT_EQ(test::run_program(dir, ctl, {"pcap", "strip", capture, stripped}).exit_code, 0);
    const std::string prefix = fmt::format("ptpsec-expiry-{}", ::getpid());
    auto run_ctl = [&](std::vector<std::string> args) {
        args.insert(args.end(), {"--file-prefix", prefix, "--json"});
        return test::run_program(dir, ctl, args, std::chrono::seconds(30));
    };
    runtime_dir_guard runtime(prefix);
    test::background_program dp(
        dir, test::program_from_env("PTPSEC_DATAPLANE"),
        dataplane_command("-l0", prefix,
                          {fmt::format("--vdev=net_pcap0,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null", stripped),
                           fmt::format("--vdev=net_pcap1,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null", capture)},
                          {"--sign", "2", "--replay-window", "0"}));
    ASSERT_TRUE(channel_up(prefix, dp));
    const auto pushed = run_ctl({"sa", "push", "--sa-file", shipped_sa_file, "--current", "2:1", "--lifetime", "1"});
    ASSERT_EQ(pushed.exit_code, 0) << pushed.err << pushed.out;
    const auto pushed_at = std::chrono::steady_clock::now();

    auto path = [&](const char* name) {
        const auto st = run_ctl({"stats"});
        EXPECT_EQ(st.exit_code, 0) << st.err;
        return json::parse(st.out).at("paths").at(name);
    };
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const json signing = path("inside_to_outside");
    const json verifying = path("outside_to_inside");
    EXPECT_GT(signing.at("signed").get<uint64_t>(), 0U) << signing.dump();
    EXPECT_GT(verifying.at("verified").get<uint64_t>(), 0U) << verifying.dump();
    ASSERT_LT(std::chrono::steady_clock::now() - pushed_at, std::chrono::milliseconds(900))
        << "too slow to see the key alive; the rest would prove nothing";

    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    const json listed = json::parse(run_ctl({"sa", "list"}).out);
    EXPECT_EQ(listed.at("2").at("keys").size(), 0U) << listed.dump();
    // Every key of the file went (it has five, all pushed with the lifetime).
    EXPECT_EQ(listed.at("2").at("retired_key_ids"), json::array({1, 2, 3, 4, 5})) << listed.dump();
    const json signed_before = path("inside_to_outside");
    const json verified_before = path("outside_to_inside");
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const json signed_after = path("inside_to_outside");
    const json verified_after = path("outside_to_inside");
    // Nothing signed or verified any more; everything PTP is refused as expired.
    EXPECT_EQ(signed_after.at("signed"), signed_before.at("signed"));
    EXPECT_EQ(verified_after.at("verified"), verified_before.at("verified"));
    EXPECT_GT(signed_after.at("drops").at("expired_key_unsigned").get<uint64_t>(),
              signed_before.at("drops").at("expired_key_unsigned").get<uint64_t>());
    EXPECT_GT(verified_after.at("drops").at("expired_key").get<uint64_t>(),
              verified_before.at("drops").at("expired_key").get<uint64_t>());
    EXPECT_EQ(verified_after.at("drops").at("unknown_key"), 0);
    ASSERT_EQ(dp.stop(), 0) << dp.err();
    EXPECT_NE(dp.out().find("keys expired 5"), std::string::npos) << dp.out();
}

TEST(rotation, a_removed_key_takes_its_replay_windows_with_it) {
    // The signed capture without end into the verifying path, replay
    // protection on: the capture's streams open windows under key 1 (the
    // repeats are refused as replays). Removing key 1 must drop them.
    test::temp_dir dir;
    const std::string ctl = test::program_from_env("PTPSECCTL");
    const std::string prefix = fmt::format("ptpsec-retire-{}", ::getpid());
    auto run_ctl = [&](std::vector<std::string> args) {
        args.insert(args.end(), {"--file-prefix", prefix, "--json"});
        return test::run_program(dir, ctl, args, std::chrono::seconds(30));
    };
    runtime_dir_guard runtime(prefix);
    test::background_program dp(
        dir, test::program_from_env("PTPSEC_DATAPLANE"),
        dataplane_command(
            "-l0", prefix,
            {"--vdev=net_ring0", fmt::format("--vdev=net_pcap0,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null", capture)},
            {"--sa-file", shipped_sa_file, "--inside-policy", "pass", "--outside-policy", "verify"}));
    ASSERT_TRUE(channel_up(prefix, dp));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto replay = [&] {
        // Telemetry answers a moment after the SA channel is there.
        auto st = run_ctl({"stats"});
        while (st.exit_code != 0 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            st = run_ctl({"stats"});
        }
        EXPECT_EQ(st.exit_code, 0) << st.err;
        return st.exit_code == 0 ? json::parse(st.out).at("replay") : json{{"size", 0}, {"retired", 0}};
    };
    json before = replay();
    while (before.at("size").get<uint64_t>() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        before = replay();
    }
    ASSERT_GT(before.at("size").get<uint64_t>(), 0U) << before.dump();
    EXPECT_EQ(before.at("retired"), 0);
    ASSERT_EQ(run_ctl({"sa", "remove", "--spp", "2", "--key-id", "1"}).exit_code, 0);
    json after = replay();
    while (after.at("retired").get<uint64_t>() == 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        after = replay();
    }
    // Every window the capture opened was key 1's.
    EXPECT_EQ(after.at("retired"), before.at("size")) << after.dump();
    EXPECT_EQ(after.at("size"), 0) << after.dump();
    ASSERT_EQ(dp.stop(), 0) << dp.err();
}

} // namespace
} // namespace ptpsec
