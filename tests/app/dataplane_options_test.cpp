// ptpsec-dataplane's options read from a --config file's text
// (dataplane/app/options.h), without EAL: the shipped example, what
// --print-config prints reading back, and a refusal per kind of mistake.
// The same refusals from the program itself: dataplane_app_test.cpp.

#include <dataplane/app/options.h>
#include <dataplane/replay.h>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace ptpsec {
namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// What --print-config prints after reading `text`.
std::string printout(std::string_view text) {
    auto p = parse_options_text(text, "dp.toml");
    EXPECT_TRUE(p) << p.message();
    return p ? p->printed : std::string();
}

TEST(dataplane_options, the_shipped_example_reads_and_checks) {
    const std::string path = std::string(PTPSEC_CONFIG_DIR) + "/dataplane.toml";
    const auto r = read_options_text(read_text(path), path);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->options.sa_file, "/etc/ptpsec/sa.conf");
    EXPECT_EQ(r->checked.inside, ptp_policy::sign);
    EXPECT_EQ(r->checked.spp, 2);
    EXPECT_FALSE(r->checked.initial_key) << "sign = \"2\": the key the control plane makes current";
    EXPECT_EQ(r->checked.outside, ptp_policy::verify_strip);
    EXPECT_EQ(r->checked.steering, steering_mode::automatic);
    EXPECT_EQ(r->options.events, "both");
    EXPECT_EQ(r->options.replay_streams, 4096U);
    EXPECT_EQ(r->checked.event_types, event_mask::timing());
}

TEST(dataplane_options, what_print_config_prints_reads_back_to_the_same_options) {
    const std::string text = "sa-file = \"sa.conf\"\nsign = \"2:1\"\nburst = 16\nevents = \"rx\"\n"
                             "event-types = \"Sync,announce,delay-req\"\nattest-threads = 3\n";
    const auto r = read_options_text(text, "dp.toml");
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->checked.key_id, 1U);
    EXPECT_TRUE(r->checked.initial_key);
    EXPECT_EQ(r->checked.event_types, event_mask{}
                                          .with(ptp::message_type::sync)
                                          .with(ptp::message_type::announce)
                                          .with(ptp::message_type::delay_req));
    const std::string printed = printout(text);
    EXPECT_NE(printed.find("\nburst=16\n"), std::string::npos) << printed;
    EXPECT_NE(printed.find("\nattest-threads=3\n"), std::string::npos) << printed;
    // The options only a command line has are left out with their descriptions.
    for (const char* gone : {"print-config", "print the options in effect", "read options from FILE", "help="}) {
        EXPECT_EQ(printed.find(gone), std::string::npos) << gone << "\n" << printed;
    }
    const auto again = read_options_text(printed, "printed.toml");
    ASSERT_TRUE(again) << again.message();
    EXPECT_EQ(again->options.burst, 16);
    EXPECT_EQ(again->options.attest.builder_threads, 3U);
    EXPECT_EQ(again->checked.event_types, r->checked.event_types);
    EXPECT_EQ(printout(printed), printed);
}

TEST(dataplane_options, a_comment_after_a_quoted_value_is_a_comment) {
    const auto r = read_options_text("sign = \"2\"\nattest-signer-id = \"gm-1\" # the lab's grandmaster\n"
                                     "stats-interval = 0.5\n",
                                     "dp.toml");
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->options.attest.signer_id, "gm-1");
    EXPECT_EQ(r->options.stats_interval, 0.5);
}

TEST(dataplane_options, the_bounds_themselves_are_taken) {
    const auto r = read_options_text("sign = \"2\"\nmbufs = 384\nattest-log-max-mb = 4096\nattest-max-held = 16777216\n"
                                     "attest-batch-events = 16777216\nattest-batch-ms = 3600000\nburst = 0064\n",
                                     "dp.toml");
    ASSERT_FALSE(r) << "leading zeros are refused even where the value would fit";
    EXPECT_EQ(r.message(), "dp.toml: --burst: 0064: write the number without leading zeros (they would read as octal)");
    const auto ok = read_options_text("sign = \"2\"\nmbufs = 384\nattest-log-max-mb = 4096\n"
                                      "attest-max-held = 16777216\nattest-batch-events = 16777216\n"
                                      "attest-batch-ms = 0x36EE80\nburst = 64\nreplay-window = 0\n"
                                      "replay-streams = 1048576\n",
                                      "dp.toml");
    ASSERT_TRUE(ok) << ok.message();
    EXPECT_EQ(ok->options.ports.mbufs, 384U);
    EXPECT_EQ(ok->options.attest.log_max_mb, 4096U);
    EXPECT_EQ(ok->options.attest.max_held, size_t{1} << 24);
    EXPECT_EQ(ok->options.attest.batch_ms, 3'600'000U);
    EXPECT_EQ(ok->options.burst, 64);
    const auto longest =
        read_options_text("sign = \"2\"\nattest-signer-id = \"" + std::string(127, 'g') + "\"\n", "dp.toml");
    EXPECT_TRUE(longest) << longest.message();
    // The largest window with as many streams as fit in the limit (twice as
    // many would not).
    const auto wide = read_options_text("sign = \"2\"\nreplay-window = 32704\nreplay-streams = 131072\n", "dp.toml");
    ASSERT_TRUE(wide) << wide.message();
    EXPECT_LE(replay_table::state_bytes({32704, 131072}), replay_table::max_state_bytes);
    EXPECT_GT(replay_table::state_bytes({32704, 262144}), replay_table::max_state_bytes);
}

TEST(dataplane_options, every_refusal_names_the_file_and_the_mistake) {
    struct bad_file {
        std::string text;
        std::string says;
    };
    const std::vector<bad_file> cases = {
        // what CLI11 refuses
        {"sign = \"2\"\ninside-polcy = \"sign\"\n", "unknown key \"inside-polcy\" (--print-config lists every key)"},
        {"sign = \"2\"\nburst = 100\n", "--burst: Value 100 not in range 1 to 64"},
        {"sign = \"2\"\nburst = \"many\"\n", "--burst"},
        {"sign = \"2\"\nreplay-streams = 1\n", "--replay-streams"},
        {"sign = \"2\"\n[ports]\nrx-desc = 64\n", "table [ports]: the keys are the long option names, with no tables"},
        // what would not read back from --print-config's printout
        {"sign = \"2\"\nattest = [none\n#x]\n", "key \"attest\": a list, but every option takes one value"},
        {"sign = [2\nburst = 16\n", "key \"sign\": a list"},
        {"sign = \"2\"\nsa-file = \" 1024\"\n", "--sa-file: the value \" 1024\" would not read back"},
        {"sign = \"2\"\nsa-file = \"sa\x01.conf\"\n", "--sa-file: the value holds a control character (0x01)"},
        // what CLI11's reader would cut short at the '#' and take as "gm
        {"sign = \"2\"\nattest-signer-id = \"gm#1\"\n", "key \"attest-signer-id\": the value holds '#'"},
        {"sign = \"2\"\nsa-file = 'a#b'\n", "key \"sa-file\": the value holds '#'"},
        {"sign = \"2\"\nsa-file = \"sa.conf\n", "key \"sa-file\": the value has no closing double quote"},
        {"sign = \"2\"\nburst 32\n", "\"burst 32\" is no KEY = VALUE line"},
        {"sign = \"2\"\nburst = 4\nburst = 8\n", "--burst: given more than once"},
        {"sign = \"2\"\nstats-interval = -1\n", "--stats-interval: -1 is not a number of seconds from 0 to 86400"},
        {"sign = \"2\"\nhandoff-ring = 1000\n", "--handoff-ring: 1000 is not a power of two from 2 to 2^30"},
        {"sign = \"2\"\nevent-ring = 1\n", "--event-ring: 1 is not a power of two"},
        {"sign = \"2\"\nticket-tlv-type = 70000\n", "--ticket-tlv-type: Value 70000 not in range 0 to 65535"},
        {"sign = \"2\"\nrx-desc = 0\n", "--rx-desc: Value 0 not in range 1 to 65535"},
        // whole numbers are decimal, or hex after 0x: CLI11 alone would take
        // 010 as 8, and -1 or too large a number for a 64-bit count as its
        // largest value
        {"sign = \"2\"\nburst = 010\n", "--burst: 010: write the number without leading zeros"},
        {"sign = \"2\"\nburst = 0x\n", "--burst: 0x is not a whole number (decimal digits, or hex digits after 0x)"},
        {"sign = \"2\"\nburst = 1e1\n", "--burst: 1e1 is not a whole number"},
        {"sign = \"2\"\nburst = 0100\n", "--burst: 0100: write the number without leading zeros"},
        {"sign = \"2\"\nburst = 0x41\n", "--burst: Value 0x41 not in range 1 to 64"},
        {"sign = \"2\"\nattest-max-held = -1\n", "--attest-max-held: -1 is negative: the value is 0 or more"},
        {"sign = \"2\"\nattest-max-held = 99999999999999999999\n",
         "--attest-max-held: 99999999999999999999 is out of range"},
        {"sign = \"2\"\nattest-max-held = 0x10000000000000000\n",
         "--attest-max-held: 0x10000000000000000 is out of range"},
        {"sign = \"2\"\nattest-log-max-mb = +5\n", "--attest-log-max-mb: +5 is not a whole number"},
        // what our checks refuse
        {"inside-policy = \"verify\"\n", "--inside-policy verify: use pass, sign or tc"},
        {"", "--inside-policy sign needs --sign SPP"},
        {"sign = \"2:1\"\n", "--sign 2:1 names a key, which needs --sa-file"},
        {"sign = \"2\"\nevents = \"rx\"\nevent-types = \"sync,fast\"\n", "\"fast\" is not a PTP messageType"},
        {"sign = \"2\"\nevents = \"rx\"\nrx-timestamps = \"port\"\n",
         "--rx-timestamps port: use clock, port-ns or port-us"},
        {"sign = \"2\"\nevents = \"tx\"\nrx-timestamps = \"port-us\"\n",
         "--rx-timestamps port-us stamps RX timing events: it needs --events rx or both"},
        {"sign = \"2\"\nrx-timestamps = \"port-ns\"\n", "it needs --events rx or both"},
        {"sign = \"2\"\ngmac-senders = 100\n", "--gmac-senders 100: a power of two from 8 to 1024"},
        {"sign = \"2\"\ngmac-senders = 2048\n", "--gmac-senders 2048: a power of two from 8 to 1024"},
        {"sign = \"2\"\ngmac-senders = 4\n", "--gmac-senders 4: a power of two from 8 to 1024"},
        {"sign = \"2\"\nattest = \"software\"\nevents = \"rx\"\nevent-dump = \"e.bin\"\n",
         "--attest and --event-dump both take the event records"},
        {"sign = \"2\"\nmbufs = 383\n", "--mbufs 383: use at least 384 (DPDK's mempool wants one and a half times"},
        {"sign = \"2\"\nreplay-window = 32704\nreplay-streams = 1048576\n",
         "--replay-window 32704 with --replay-streams 1048576 needs 4148 MiB of replay state, more than the 1024 MiB "
         "a table may take: lower one of them"},
        {"sign = \"2\"\nattest-log-max-mb = 0\n", "--attest-log-max-mb 0: use 1 to 4096 (a verifier reads a log "
                                                  "file whole)"},
        {"sign = \"2\"\nattest-log-max-mb = 4097\n", "--attest-log-max-mb 4097: use 1 to 4096"},
        {"sign = \"2\"\nattest-log-max-mb = 17592186044417\n", "--attest-log-max-mb 17592186044417: use 1 to 4096"},
        {"sign = \"2\"\nattest-max-held = 0\n", "--attest-max-held 0: use 1 to 16777216"},
        {"sign = \"2\"\nattest-max-held = 16777217\n",
         "--attest-max-held 16777217: use 1 to 16777216 (about 100 octets of memory each)"},
        {"sign = \"2\"\nattest-batch-events = 0\n", "--attest-batch-events 0: a batch closes at 1 event or more"},
        {"sign = \"2\"\nattest-max-held = 1000\nattest-batch-events = 1001\n",
         "--attest-batch-events 1001 is more than --attest-max-held 1000: a batch must fit in the events held"},
        // the default batch (4096 events) names itself when held events are fewer
        {"sign = \"2\"\nattest-max-held = 1000\n",
         "--attest-batch-events 4096 is more than --attest-max-held 1000: a batch must fit in the events held while "
         "the signer is busy (lower the first or raise the second)"},
        {"sign = \"2\"\nattest-batch-ms = 0\n", "--attest-batch-ms 0: use 1 to 3600000 (an hour)"},
        {"sign = \"2\"\nattest-signer-id = \"" + std::string(128, 'g') + "\"\n",
         "--attest-signer-id: 128 octets; at most 127 (DPDK telemetry's /ptpsec/attest carries it as a string of that "
         "size)"},
        {"sign = \"2\"\nattest-batch-ms = 3600001\n", "--attest-batch-ms 3600001: use 1 to 3600000"},
    };
    for (const auto& c : cases) {
        const auto r = read_options_text(c.text, "dp.toml");
        ASSERT_FALSE(r) << c.text;
        EXPECT_TRUE(r.message().starts_with("dp.toml: ")) << r.message();
        EXPECT_NE(r.message().find(c.says), std::string::npos) << r.message();
    }
}

} // namespace
} // namespace ptpsec
