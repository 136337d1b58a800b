// ptpsec-dataplane's DPDK telemetry, read while it runs: the real binary
// (PTPSEC_DATAPLANE) on net_pcap ports replaying the linuxptp capture without
// end (infinite_rx=1), queried with `ptpsecctl stats`, `ptpsecctl sa list`
// (PTPSECCTL) and DPDK's own dpdk-telemetry.py. The data plane is stopped by
// PID and its EAL runtime directory removed whichever way a test ends.

#include "../linuxptp_capture.h"
#include "../pcap_files.h"
#include "../process.h"
#include "app_helpers.h"

#include <control/telemetry_client.h>
#include <dataplane/ptp/frame.h>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace ptpsec {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::background_program;
using test::run_result;
using test::temp_dir;

constexpr const char* capture = test::linuxptp_capture;
constexpr const char* shipped_sa_file = test::linuxptp_sa_file;
constexpr const char* dpdk_telemetry_py = "/usr/bin/dpdk-telemetry.py";
constexpr uint64_t capture_ptp_frames = test::linuxptp_capture_ptp_frames;
constexpr int exit_ok = 0;
constexpr int exit_error = 2;
constexpr auto start_limit = std::chrono::seconds(30);

/// A data plane signing the stripped capture from the inside port and
/// verifying the capture from the outside port, both replayed without end.
struct running_dataplane {
    running_dataplane(const temp_dir& dir, const std::string& exe, const std::string& file_prefix,
                      const std::string& stripped, const std::vector<std::string>& eal_extra)
        : prefix(file_prefix), runtime(file_prefix), program(dir, exe, args(stripped, eal_extra)) {}
    /// One on these `devices` (--vdev ...) with these options of ours.
    running_dataplane(const temp_dir& dir, const std::string& exe, const std::string& file_prefix,
                      const std::vector<std::string>& devices, const std::vector<std::string>& options,
                      const std::string& cores = "-l0")
        : prefix(file_prefix), runtime(file_prefix),
          program(dir, exe, dataplane_command(cores, file_prefix, devices, options)) {}

    std::vector<std::string> args(const std::string& stripped, const std::vector<std::string>& eal_extra) const {
        std::vector<std::string> devices = {
            fmt::format("--vdev=net_pcap0,rx_pcap={},tx_pcap=/dev/null,infinite_rx=1", stripped),
            fmt::format("--vdev=net_pcap1,rx_pcap={},tx_pcap=/dev/null,infinite_rx=1", capture),
        };
        devices.insert(devices.end(), eal_extra.begin(), eal_extra.end());
        return dataplane_command("-l0", prefix, devices, {"--sa-file", shipped_sa_file, "--sign", "2:1"});
    }

    std::string prefix;
    runtime_dir_guard runtime;
    background_program program;
};

/// The key material of an SA file ("HEX:...", "B64:...", "ASCII:..."), to
/// look for in what is printed.
std::vector<std::string> key_strings(const std::string& sa_file_text) {
    std::vector<std::string> out;
    std::istringstream in(sa_file_text);
    for (std::string word; in >> word;) {
        for (const char* kind : {"HEX:", "B64:", "ASCII:"}) {
            if (word.rfind(kind, 0) == 0) {
                std::string value = word.substr(std::string_view(kind).size());
                out.push_back(value);
                std::transform(value.begin(), value.end(), value.begin(),
                               [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
                out.push_back(value);
            }
        }
    }
    return out;
}

class telemetry : public testing::Test {
protected:
    void SetUp() override {
        _dataplane = test::program_from_env("PTPSEC_DATAPLANE");
        _ctl = test::program_from_env("PTPSECCTL");
        _stripped = _dir.file("stripped.pcap");
        const auto r = ctl({"pcap", "strip", capture, _stripped});
        ASSERT_EQ(r.exit_code, exit_ok) << r.err;
    }

    run_result ctl(const std::vector<std::string>& args) const {
        return test::run_program(_dir, _ctl, args, std::chrono::seconds(30));
    }

    /// An EAL file prefix of its own for each data plane the tests start.
    static std::string next_prefix() {
        static int runs = 0;
        return fmt::format("ptpsec-tele-{}-{}", ::getpid(), ++runs);
    }

    std::unique_ptr<running_dataplane> start(const std::vector<std::string>& eal_extra = {}) {
        return std::make_unique<running_dataplane>(_dir, _dataplane, next_prefix(), _stripped, eal_extra);
    }

    /// Waits until `ptpsecctl stats` gets an answer from the data plane.
    testing::AssertionResult serving(running_dataplane& dp) const {
        const auto deadline = std::chrono::steady_clock::now() + start_limit;
        run_result r;
        while (std::chrono::steady_clock::now() < deadline) {
            if (!dp.program.running()) {
                return testing::AssertionFailure() << "ptpsec-dataplane ended (exit " << dp.program.stop() << "):\n"
                                                   << dp.program.err() << dp.program.out();
            }
            r = ctl({"stats", "--file-prefix", dp.prefix, "--json"});
            if (r.exit_code == exit_ok) {
                return testing::AssertionSuccess();
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return testing::AssertionFailure() << "no telemetry answer within the limit; last: " << r.err;
    }

    /// `ptpsecctl stats --json`, parsed.
    json stats(const running_dataplane& dp) const {
        const auto r = ctl({"stats", "--file-prefix", dp.prefix, "--json"});
        EXPECT_EQ(r.exit_code, exit_ok) << r.err;
        return json::parse(r.out);
    }

    /// stats() every 100 ms until `ready` says yes of one, or `limit` has
    /// passed (a loaded machine); the last one.
    template <typename F>
    json stats_until(const running_dataplane& dp, F ready, std::chrono::seconds limit) const {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        json j;
        do {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            j = stats(dp);
        } while (!ready(j) && std::chrono::steady_clock::now() < deadline);
        return j;
    }

    temp_dir _dir;
    std::string _dataplane;
    std::string _ctl;
    std::string _stripped;
};

TEST_F(telemetry, stats_count_both_paths_and_grow_while_traffic_flows) {
    fs::path runtime;
    {
        auto dp = start();
        runtime = dp->runtime.path();
        ASSERT_TRUE(serving(*dp));
        EXPECT_TRUE(fs::exists(telemetry_socket_path(dp->prefix)));

        const json first = stats(*dp);
        const json& sign = first.at("paths").at("inside_to_outside");
        EXPECT_EQ(sign.at("name"), "inside->outside");
        EXPECT_EQ(sign.at("policy"), "sign");
        EXPECT_GT(sign.at("rx").get<uint64_t>(), 0U);
        EXPECT_GT(sign.at("signed").get<uint64_t>(), 0U);
        EXPECT_GT(sign.at("non_ptp").get<uint64_t>(), 0U);
        EXPECT_EQ(sign.at("dropped"), 0);
        // Every reason and cause is there, zero or not.
        EXPECT_EQ(sign.at("drops").at("bad_icv"), 0);
        EXPECT_EQ(sign.at("drops").at("no_room"), 0);
        EXPECT_EQ(sign.at("malformed").at("truncated"), 0);
        // One worker: its share is the sum of both paths' rx.
        const json& workers = first.at("workers");
        ASSERT_EQ(workers.size(), 1U) << workers.dump();
        EXPECT_GE(workers.begin().value().at("rx").get<uint64_t>(), sign.at("rx").get<uint64_t>());
        EXPECT_EQ(workers.begin().value().at("handed_off"), 0);
        EXPECT_EQ(sign.at("handed_off"), 0);
        EXPECT_EQ(sign.at("drops").at("handoff_full"), 0);

        // Counters grow between two queries (the capture is replayed
        // without end); allow a loaded machine some time.
        auto rx_of = [](const json& j, const char* path) { return j.at("paths").at(path).at("rx").get<uint64_t>(); };
        const json second = stats_until(
            *dp,
            [&](const json& s) {
                return rx_of(s, "inside_to_outside") > rx_of(first, "inside_to_outside") &&
                       rx_of(s, "outside_to_inside") > rx_of(first, "outside_to_inside");
            },
            std::chrono::seconds(10));
        EXPECT_GT(rx_of(second, "inside_to_outside"), rx_of(first, "inside_to_outside"));
        EXPECT_GT(rx_of(second, "outside_to_inside"), rx_of(first, "outside_to_inside"));
        EXPECT_GT(second.at("paths").at("inside_to_outside").at("signed").get<uint64_t>(),
                  sign.at("signed").get<uint64_t>());

        // The verifying path: the capture verifies once, then every replay
        // of it is refused as a replay.
        const json& verify = second.at("paths").at("outside_to_inside");
        EXPECT_EQ(verify.at("policy"), "verify");
        EXPECT_EQ(verify.at("verified"), capture_ptp_frames);
        const json& drops = verify.at("drops");
        EXPECT_GT(drops.at("replayed").get<uint64_t>(), 0U);
        EXPECT_EQ(verify.at("dropped").get<uint64_t>(),
                  drops.at("replayed").get<uint64_t>() + drops.at("too_old").get<uint64_t>());
        const json& replay = second.at("replay");
        EXPECT_EQ(replay.at("window"), 64);
        EXPECT_EQ(replay.at("capacity"), 1024);
        EXPECT_GT(replay.at("size").get<uint64_t>(), 0U);
        EXPECT_EQ(replay.at("accepted"), capture_ptp_frames);

        // Ports, as ethdev counts them.
        const json& ports = second.at("ports");
        ASSERT_EQ(ports.size(), 2U);
        EXPECT_EQ(ports.at("0").at("role"), "inside");
        EXPECT_EQ(ports.at("1").at("role"), "outside");
        for (const char* id : {"0", "1"}) {
            const json& p = ports.at(id);
            EXPECT_EQ(p.at("driver"), "net_pcap") << id;
            EXPECT_EQ(p.at("link_status"), "up") << id;
            EXPECT_GT(p.at("ipackets").get<uint64_t>(), 0U) << id;
            EXPECT_GT(p.at("opackets").get<uint64_t>(), 0U) << id;
            EXPECT_EQ(p.at("rx_nombuf"), 0) << id;
        }

        // For people: the data plane's own counter lines.
        const auto table = ctl({"stats", "--file-prefix", dp->prefix});
        EXPECT_EQ(table.exit_code, exit_ok) << table.err;
        EXPECT_NE(table.out.find("  inside->outside [sign]: rx "), std::string::npos) << table.out;
        EXPECT_NE(table.out.find(" dropped 0 | non-PTP "), std::string::npos) << table.out;
        EXPECT_NE(table.out.find("  outside->inside [verify]: rx "), std::string::npos) << table.out;
        EXPECT_NE(table.out.find(fmt::format("verified {} stripped 0 | dropped: replayed ", capture_ptp_frames)),
                  std::string::npos)
            << table.out;
        // Accepted and the streams stay; the replays keep coming.
        EXPECT_TRUE(std::regex_search(
            table.out,
            std::regex(fmt::format(R"(\n  replay: window 64, {} of 1024 streams \| accepted {} \(late [0-9]+\) )"
                                   R"(replayed [0-9]+ too_old [0-9]+ \| opened {} evicted 0 retired 0\n)",
                                   replay.at("size").get<uint64_t>(), capture_ptp_frames,
                                   replay.at("opened").get<uint64_t>()))))
            << table.out;
        EXPECT_NE(table.out.find("  port 0 net_pcap0 (inside, net_pcap, link up): ipackets "), std::string::npos)
            << table.out;

        // SIGINT stops it cleanly, with its counters.
        EXPECT_EQ(dp->program.stop(), exit_ok) << dp->program.err();
        EXPECT_NE(dp->program.out().find("counters (at exit):"), std::string::npos) << dp->program.out();
    }
    EXPECT_FALSE(fs::exists(runtime)) << runtime;
}

// Two workers, each port with two queues replaying the capture without end,
// timing events on: `ptpsecctl stats` shows what the data plane's own lines
// show, a line per worker and the events part included.
TEST_F(telemetry, stats_show_each_worker_the_events_and_replay_off_as_the_data_plane_does) {
    const std::string devices_fmt = "--vdev=net_pcap{},rx_pcap={},rx_pcap={},tx_pcap=/dev/null,tx_pcap=/dev/null,"
                                    "infinite_rx=1";
    const std::vector<std::string> devices = {fmt::format(fmt::runtime(devices_fmt), 0, _stripped, _stripped),
                                              fmt::format(fmt::runtime(devices_fmt), 1, capture, capture)};
    running_dataplane dp(_dir, _dataplane, next_prefix(), devices,
                         {"--sa-file", shipped_sa_file, "--sign", "2:1", "--events", "rx", "--steering", "software",
                          "--replay-window", "0"},
                         "--lcores=0@(0-1),1@(0-1),2@(0-1)");
    ASSERT_TRUE(serving(dp));
    // Until both workers and both paths have counted something.
    auto ready = [](const json& s) {
        const json& w = s.at("workers");
        return w.size() == 2 && std::all_of(w.begin(), w.end(), [](const json& x) { return x.at("rx") > 0; }) &&
               s.at("paths").at("inside_to_outside").at("events") > 0 &&
               s.at("paths").at("outside_to_inside").at("events") > 0;
    };
    const json j = stats_until(dp, ready, std::chrono::seconds(20));
    ASSERT_TRUE(ready(j)) << j.dump();
    const auto table = ctl({"stats", "--file-prefix", dp.prefix});
    ASSERT_EQ(table.exit_code, exit_ok) << table.err;
    EXPECT_TRUE(std::regex_search(
        table.out, std::regex(R"(\n  inside->outside \[sign\]: rx [0-9]+ tx [0-9]+ dropped [0-9]+ \| non-PTP [0-9]+ )"
                              R"(signed [0-9]+ already signed 0 \| events [0-9]+ ring full [0-9]+[ \n])")))
        << table.out;
    EXPECT_TRUE(std::regex_search(table.out, std::regex(R"(\n  outside->inside \[verify\]: .* \| events [0-9]+ )")))
        << table.out;
    // No replay table (--replay-window 0): every member of "replay" zero,
    // as in --stats-json, and "off" for people.
    const json& replay = j.at("replay");
    // window, capacity, size, three verdicts, late, opened, evicted, retired
    EXPECT_EQ(replay.size(), 10U) << replay.dump();
    for (const auto& [name, value] : replay.items()) {
        EXPECT_EQ(value, 0) << name;
    }
    EXPECT_NE(table.out.find("\n  replay: off\n"), std::string::npos) << table.out;
    for (const auto& [key, w] : j.at("workers").items()) {
        ASSERT_TRUE(key.starts_with("lcore_")) << key;
        EXPECT_TRUE(std::regex_search(
            table.out, std::regex(fmt::format(R"(\n  worker lcore {}: rx [0-9]+ tx [0-9]+ handed to the PTP worker )"
                                              R"([0-9]+ dropped [0-9]+\n)",
                                              key.substr(6)))))
            << table.out;
    }
    EXPECT_EQ(dp.program.stop(), exit_ok) << dp.program.err();
    // Its own lines at exit have the same shape.
    EXPECT_TRUE(
        std::regex_search(dp.program.out(), std::regex(R"(\n  worker lcore [0-9]+: rx [0-9]+ tx [0-9]+ handed )")))
        << dp.program.out();
    EXPECT_NE(dp.program.out().find("\n  replay (at exit): off\n"), std::string::npos) << dp.program.out();
}

// A transparent clock: `ptpsecctl stats` shows its own counters, as the
// data plane's lines do.
TEST_F(telemetry, stats_show_a_transparent_clocks_counters) {
    const std::vector<std::string> devices = {
        fmt::format("--vdev=net_pcap0,rx_pcap={},tx_pcap=/dev/null,infinite_rx=1", capture),
        fmt::format("--vdev=net_pcap1,rx_pcap={},tx_pcap=/dev/null,infinite_rx=1", capture)};
    running_dataplane dp(_dir, _dataplane, next_prefix(), devices,
                         {"--sa-file", shipped_sa_file, "--inside-policy", "tc", "--outside-policy", "tc"});
    ASSERT_TRUE(serving(dp));
    auto corrected = [](const json& s) {
        return s.at("paths").at("inside_to_outside").at("tc_corrected").get<uint64_t>();
    };
    const json j = stats_until(
        dp, [&](const json& s) { return corrected(s) != 0; }, std::chrono::seconds(20));
    ASSERT_GT(corrected(j), 0U) << j.dump();
    const auto table = ctl({"stats", "--file-prefix", dp.prefix});
    ASSERT_EQ(table.exit_code, exit_ok) << table.err;
    for (const char* path : {"inside->outside", "outside->inside"}) {
        EXPECT_TRUE(std::regex_search(
            table.out, std::regex(fmt::format(R"(\n  {} \[tc\]: rx [0-9]+ tx [0-9]+ dropped [0-9]+ \| non-PTP [0-9]+ )"
                                              R"(verified [0-9]+ corrected [0-9]+ signed again [0-9]+ not )"
                                              R"(corrected [0-9]+[ \n])",
                                              path))))
            << table.out;
    }
    // Counters only grow: the corrections seen above are in the table.
    EXPECT_TRUE(std::regex_search(
        table.out, std::regex(R"(\n  inside->outside \[tc\]: .* corrected [1-9][0-9]* signed again [1-9])")))
        << table.out;
    EXPECT_EQ(dp.program.stop(), exit_ok) << dp.program.err();
}

TEST_F(telemetry, sa_list_counts_the_sender_subkeys_an_aes_gmac_key_derived) {
    // The capture signed under an AES-GMAC key (each sender with its own
    // subkey), replayed without end into a verifying data plane: one
    // derivation per sender however often its frames come round, none
    // outside the table.
    const std::string sa_file = _dir.file("gmac.conf");
    test::write_file(sa_file, "[security_association]\nspp 3\n9 AES128-GMAC HEX:000102030405060708090a0b0c0d0e0f\n");
    const std::string gmac = _dir.file("gmac.pcap");
    const auto signed_run = ctl({"pcap", "sign", "--sa-file", sa_file, "--spp", "3", "--key-id", "9", _stripped, gmac});
    ASSERT_EQ(signed_run.exit_code, exit_ok) << signed_run.err;
    std::set<std::vector<uint8_t>> senders;
    for (const auto& p : test::read_packets(gmac)) {
        ptp::frame_info fi;
        if (ptp::classify_frame(p.data.data(), p.data.size(), fi) == ptp::error::none &&
            fi.ptp_avail >= ptp::header_len) {
            const auto* pid = p.data.data() + fi.ptp_offset + 20; // sourcePortIdentity
            senders.emplace(pid, pid + 10);
        }
    }
    ASSERT_GE(senders.size(), 2U) << "a master and a slave";

    running_dataplane dp(
        _dir, _dataplane, next_prefix(),
        {fmt::format("--vdev=net_pcap0,rx_pcap={},tx_pcap=/dev/null", _stripped),
         fmt::format("--vdev=net_pcap1,rx_pcap={},tx_pcap=/dev/null,infinite_rx=1", gmac)},
        {"--sa-file", sa_file, "--inside-policy", "pass", "--outside-policy", "verify", "--gmac-senders", "128"});
    ASSERT_TRUE(serving(dp));
    ASSERT_TRUE(wait_until(
        [&] {
            return stats(dp).at("paths").at("outside_to_inside").at("rx").get<uint64_t>() >
                   3 * test::linuxptp_capture_frames;
        },
        std::chrono::seconds(30), "the capture to come round three times"));
    const auto r = ctl({"sa", "list", "--file-prefix", dp.prefix, "--json"});
    ASSERT_EQ(r.exit_code, exit_ok) << r.err;
    const json key = json::parse(r.out).at("3").at("keys").at("9");
    EXPECT_EQ(key.at("algorithm"), "aes-gmac-128");
    EXPECT_EQ(key.at("gmac_sender_slots"), 128) << "--gmac-senders";
    EXPECT_EQ(key.at("gmac_derivations"), senders.size()) << key.dump();
    EXPECT_EQ(key.at("gmac_scratch_derivations"), 0) << key.dump();
    EXPECT_GT(stats(dp).at("paths").at("outside_to_inside").at("verified").get<uint64_t>(), 0U);

    const auto table = ctl({"sa", "list", "--file-prefix", dp.prefix});
    ASSERT_EQ(table.exit_code, exit_ok) << table.err;
    EXPECT_NE(table.out.find(fmt::format("AES-GMAC sender subkeys:\n  spp 3 key 9: {} derived, 0 of them outside the "
                                         "table of 128\n",
                                         senders.size())),
              std::string::npos)
        << table.out;
    EXPECT_EQ(dp.program.stop(), exit_ok) << dp.program.err();
}

TEST_F(telemetry, sa_list_names_keys_and_algorithms_never_key_bytes) {
    auto dp = start();
    ASSERT_TRUE(serving(*dp));

    const auto r = ctl({"sa", "list", "--file-prefix", dp->prefix, "--json"});
    ASSERT_EQ(r.exit_code, exit_ok) << r.err;
    const json sas = json::parse(r.out);
    ASSERT_EQ(sas.size(), 1U) << r.out;
    const json& sa = sas.at("2");
    EXPECT_EQ(sa.at("spp"), 2);
    EXPECT_EQ(sa.at("seqid_window"), 3);
    EXPECT_EQ(sa.at("allow_mutable"), 0);
    const json& keys = sa.at("keys");
    ASSERT_EQ(keys.size(), 5U) << r.out;
    EXPECT_EQ(keys.at("1").at("key_id"), 1);
    EXPECT_EQ(keys.at("1").at("algorithm"), "hmac-sha256-128");
    EXPECT_EQ(keys.at("1").at("icv_length"), 16);
    EXPECT_EQ(keys.at("2").at("algorithm"), "hmac-sha256");
    EXPECT_EQ(keys.at("2").at("icv_length"), 32);
    EXPECT_EQ(keys.at("4").at("algorithm"), "aes-cmac-256");
    for (const auto& [id, k] : keys.items()) {
        // A key says what it is, whether it signs, how long it lives, how
        // long its ticket is, and nothing more.
        EXPECT_EQ(k.size(), 6U) << id << ": " << k.dump();
        EXPECT_EQ(k.at("current"), id == "1" ? 1 : 0) << id; // --sign 2:1
        EXPECT_EQ(k.at("ticket_length"), 0) << id;
        // Keys from the SA file do not expire.
        EXPECT_EQ(k.at("remaining_lifetime_s"), "never") << id;
    }
    EXPECT_EQ(sa.at("retired_key_ids"), json::array()) << r.out;

    const auto table = ctl({"sa", "list", "--file-prefix", dp->prefix});
    ASSERT_EQ(table.exit_code, exit_ok) << table.err;
    EXPECT_NE(table.out.find("ALGORITHM"), std::string::npos) << table.out;
    EXPECT_NE(table.out.find("2     1          hmac-sha256-128  16   current  3             no             never     "
                             "     -\n"),
              std::string::npos)
        << table.out;

    const auto secrets = key_strings(test::read_file(shipped_sa_file));
    ASSERT_EQ(secrets.size(), 10U);
    for (const auto& s : secrets) {
        EXPECT_EQ(r.out.find(s), std::string::npos) << s;
        EXPECT_EQ(table.out.find(s), std::string::npos) << s;
    }

    // SIGTERM (systemd's stop) is as clean a stop as SIGINT: counters, exit 0.
    EXPECT_EQ(dp->program.stop(SIGTERM), exit_ok) << dp->program.err();
    EXPECT_NE(dp->program.out().find("counters (at exit):"), std::string::npos) << dp->program.out();
}

TEST_F(telemetry, dpdk_telemetry_py_reads_every_command) {
    if (!fs::exists(dpdk_telemetry_py)) {
        GTEST_SKIP() << dpdk_telemetry_py << " is not installed (Debian package dpdk)";
    }
    auto dp = start();
    ASSERT_TRUE(serving(*dp));

    // It reads commands from stdin and prints one JSON reply per line.
    const auto r = test::run_program(_dir, dpdk_telemetry_py, {"-f", dp->prefix}, std::chrono::seconds(30),
                                     std::string("/ptpsec/stats\n/ptpsec/ports\n/ptpsec/sa\n"));
    ASSERT_EQ(r.exit_code, exit_ok) << r.err;
    std::vector<json> replies;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
        replies.push_back(json::parse(line));
    }
    ASSERT_EQ(replies.size(), 3U) << r.out;
    const json& s = replies[0].at("/ptpsec/stats");
    EXPECT_GT(s.at("paths").at("inside_to_outside").at("signed").get<uint64_t>(), 0U);
    EXPECT_GT(s.at("paths").at("outside_to_inside").at("verified").get<uint64_t>(), 0U);
    EXPECT_TRUE(s.at("replay").contains("replayed"));
    const json& p = replies[1].at("/ptpsec/ports");
    EXPECT_EQ(p.at("0").at("name"), "net_pcap0");
    EXPECT_EQ(p.at("1").at("name"), "net_pcap1");
    const json& sa = replies[2].at("/ptpsec/sa");
    EXPECT_EQ(sa.at("2").at("keys").at("1").at("algorithm"), "hmac-sha256-128");
    for (const auto& secret : key_strings(test::read_file(shipped_sa_file))) {
        EXPECT_EQ(r.out.find(secret), std::string::npos) << secret;
    }
}

TEST_F(telemetry, says_when_no_dataplane_runs_with_that_prefix) {
    const std::string prefix = fmt::format("ptpsec-tele-{}-none", ::getpid());
    const std::string expected =
        fmt::format("ptpsecctl: no ptpsec-dataplane running with file prefix {} (looked for {})", prefix,
                    telemetry_socket_path(prefix));
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"stats", "--file-prefix", prefix},
             {"stats", "--file-prefix", prefix, "--json"},
             {"sa", "list", "--file-prefix", prefix},
         }) {
        const auto r = ctl(args);
        EXPECT_EQ(r.exit_code, exit_error) << args[0];
        EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
        EXPECT_TRUE(r.out.empty()) << r.out;
    }
}

TEST_F(telemetry, runs_without_telemetry_when_told) {
    auto dp = start({"--no-telemetry"});
    // Running once the banner is out.
    const auto deadline = std::chrono::steady_clock::now() + start_limit;
    while (dp->program.out().find("inside->outside: port 0 -> port 1") == std::string::npos && dp->program.running() &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(dp->program.running()) << dp->program.err();
    EXPECT_FALSE(fs::exists(telemetry_socket_path(dp->prefix)));
    const auto r = ctl({"stats", "--file-prefix", dp->prefix});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_NE(r.err.find("no ptpsec-dataplane running with file prefix"), std::string::npos) << r.err;
    EXPECT_EQ(dp->program.stop(), exit_ok) << dp->program.err();
    EXPECT_EQ(dp->program.err().find("warning"), std::string::npos) << dp->program.err();
}

} // namespace
} // namespace ptpsec
