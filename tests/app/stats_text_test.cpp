// ptpsec-dataplane's counters as programs read them (path_json,
// worker_json: /ptpsec/stats and --stats-json) and as people read them
// (path_line, worker_line: its console and `ptpsecctl stats`), without EAL.
// The programs themselves print them in telemetry_test.cpp.

#include <control/status_text.h>
#include <dataplane/app/stats.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace ptpsec {
namespace {

using ordered_json = nlohmann::ordered_json;

size_t at(verify_status s) {
    return static_cast<size_t>(s);
}

/// A verifying path that dropped frames for three reasons and saw one
/// malformed frame.
path_counters verify_counters() {
    path_counters c;
    c.rx = 20;
    c.tx = 12;
    c.non_ptp = 4;
    c.verified = 8;
    c.stripped = 8;
    c.verify[at(verify_status::malformed)] = 1;
    c.malformed[static_cast<size_t>(ptp::error::truncated)] = 1;
    c.verify[at(verify_status::bad_icv)] = 3;
    c.verify[at(verify_status::replayed)] = 2;
    c.non_ptp_dropped = 2;
    return c;
}

std::vector<std::string> keys(const ordered_json& j) {
    std::vector<std::string> out;
    for (const auto& [k, v] : j.items()) {
        out.push_back(k);
    }
    return out;
}

TEST(stats_text, path_json_lists_the_reasons_that_counted_in_drop_reasons_order) {
    const path_config p{.name = "outside->inside", .rx_port = 1, .tx_port = 0, .policy = ptp_policy::verify_strip};
    const path_counters c = verify_counters();
    const ordered_json j = path_json(p, c, false);
    EXPECT_EQ(j.at("name"), "outside->inside");
    EXPECT_EQ(j.at("policy"), "verify-strip");
    EXPECT_EQ(j.at("rx_port"), 1);
    EXPECT_EQ(j.at("dropped"), 8U);
    EXPECT_EQ(j.at("dropped"), c.dropped());
    EXPECT_EQ(j.at("verified"), 8U);
    EXPECT_FALSE(j.contains("non_ptp_dropped")) << "a drop reason, not a counter of its own: " << j.dump();
    EXPECT_EQ(keys(j.at("drops")), (std::vector<std::string>{"malformed", "bad_icv", "replayed", "non_ptp_dropped"}))
        << j.dump();
    EXPECT_EQ(j.at("drops").at("bad_icv"), 3U);
    EXPECT_EQ(j.at("malformed"), (ordered_json{{"truncated", 1U}}));
}

TEST(stats_text, path_json_for_telemetry_has_every_reason_and_cause_in_the_same_order) {
    const path_config p{.name = "outside->inside", .policy = ptp_policy::verify};
    const path_counters c = verify_counters();
    const ordered_json some = path_json(p, c, false);
    const ordered_json every = path_json(p, c, true);
    const ordered_json none = path_json(p, path_counters{}, true);
    EXPECT_EQ(keys(every.at("drops")), keys(none.at("drops"))) << "a fixed set, whatever counted";
    EXPECT_GT(every.at("drops").size(), some.at("drops").size());
    for (const char* reason :
         {"unknown_key", "expired_key", "malformed_unsigned", "no_sa", "tx_full", "reinject_invalid"}) {
        EXPECT_TRUE(every.at("drops").contains(reason)) << reason << ": " << every.dump();
    }
    EXPECT_EQ(every.at("malformed").size(), ptp::error_count - 2) << "all causes but none and not_ptp";
    EXPECT_FALSE(every.at("malformed").contains("none"));
    // The reasons that counted keep their order among all of them.
    std::vector<std::string> counted;
    for (const auto& [reason, n] : every.at("drops").items()) {
        EXPECT_EQ(n, some.at("drops").value(reason, uint64_t{0})) << reason;
        if (n != 0) {
            counted.push_back(reason);
        }
    }
    EXPECT_EQ(counted, keys(some.at("drops")));
    // The line is the same from both: ptpsecctl reads every reason, the
    // data plane's console the ones that counted.
    EXPECT_EQ(path_line(every), path_line(some));
}

TEST(stats_text, path_line_names_the_policy_counters_then_the_drops) {
    const path_config p{.name = "outside->inside", .policy = ptp_policy::verify_strip};
    EXPECT_EQ(path_line(path_json(p, verify_counters(), false)),
              "outside->inside [verify-strip]: rx 20 tx 12 dropped 8 | non-PTP 4 verified 8 stripped 8 | dropped: "
              "malformed 1, bad_icv 3, replayed 2, non_ptp_dropped 2 [truncated 1]");

    path_counters s;
    s.rx = 5;
    s.tx = 5;
    s.signed_ok = 4;
    s.already_signed = 1;
    s.events = 4;
    const path_config sign{.name = "inside->outside", .policy = ptp_policy::sign};
    EXPECT_EQ(
        path_line(path_json(sign, s, true)),
        "inside->outside [sign]: rx 5 tx 5 dropped 0 | non-PTP 0 signed 4 already signed 1 | events 4 ring full 0");

    path_counters t;
    t.rx = 3;
    t.tx = 3;
    t.verified = 3;
    t.tc_corrected = 3;
    t.tc_resigned = 2;
    t.tc_uncorrected = 0;
    t.ticket_exceptions = 1;
    t.reinjected = 1;
    const path_config tc{.name = "inside->outside", .policy = ptp_policy::tc};
    EXPECT_EQ(path_line(path_json(tc, t, false)),
              "inside->outside [tc]: rx 3 tx 3 dropped 0 | non-PTP 0 verified 3 corrected 3 signed again 2 not "
              "corrected 0 | tickets: handed over 1 reinjected 1");

    path_counters pass;
    pass.rx = 2;
    pass.tx = 2;
    pass.ptp_passed = 2;
    const path_config pp{.name = "inside->outside", .policy = ptp_policy::pass};
    EXPECT_EQ(path_line(path_json(pp, pass, false)),
              "inside->outside [pass]: rx 2 tx 2 dropped 0 | non-PTP 0 PTP passed 2");
}

TEST(stats_text, workers_are_summed_over_their_paths_and_printed_as_ptpsecctl_prints_them) {
    std::vector<path_counters> first(2);
    first[0].rx = 10;
    first[0].tx = 7;
    first[0].handed_off = 3;
    first[1].rx = 1;
    first[1].verify[at(verify_status::bad_icv)] = 1;
    std::vector<path_counters> ptp(2);
    ptp[0].tx = 3;
    const std::vector<worker_counters> workers = {{.lcore = 1, .paths = first}, {.lcore = 2, .paths = ptp}};
    const ordered_json w = worker_json(workers[0]);
    EXPECT_EQ(w, (ordered_json{{"rx", 11U}, {"tx", 7U}, {"handed_off", 3U}, {"dropped", 1U}}));
    EXPECT_EQ(worker_line("1", w), "worker lcore 1: rx 11 tx 7 handed to the PTP worker 3 dropped 1");

    // The console block: a line per path from path_json, one per worker.
    const std::vector<path_config> paths = {{.name = "inside->outside", .policy = ptp_policy::pass},
                                            {.name = "outside->inside", .policy = ptp_policy::verify}};
    std::FILE* f = std::tmpfile();
    ASSERT_NE(f, nullptr);
    print_stats(f, paths, workers, "at exit");
    std::rewind(f);
    std::string text(4096, '\0');
    text.resize(std::fread(text.data(), 1, text.size(), f));
    std::fclose(f);
    const std::vector<path_counters> sums = sum_counters(workers, paths.size());
    EXPECT_EQ(text, "counters (at exit):\n  " + path_line(path_json(paths[0], sums[0], false)) + "\n  " +
                        path_line(path_json(paths[1], sums[1], false)) + "\n  " + worker_line("1", w) + "\n  " +
                        worker_line("2", worker_json(workers[1])) + "\n");
    EXPECT_NE(text.find("outside->inside [verify]: rx 1 tx 0 dropped 1 | non-PTP 0 verified 0 stripped 0 | dropped: "
                        "bad_icv 1\n"),
              std::string::npos)
        << text;
}

} // namespace
} // namespace ptpsec
