// ptpsec-dataplane, the real binary (PTPSEC_DATAPLANE, set by meson test),
// on DPDK net_pcap ports: captures in, captures out, counters at exit. The
// linuxptp capture, stripped, must come out signed exactly as ptp4l signed
// it; tampered, wrong-key, wrong-SPP, truncated, unsigned and replayed frames
// must be dropped with their own counter, and everything else must come out
// intact.

#include "../linuxptp_capture.h"
#include "../pcap_files.h"
#include "../process.h"
#include "app_helpers.h"

#include <dataplane/event.h>
#include <dataplane/ptp/frame.h>
#include <drivers/base/bytes.h>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace ptpsec {
namespace {

using test::packet;
using test::read_packets;
using test::temp_dir;
using test::write_packets;

constexpr const char* capture = test::linuxptp_capture;
constexpr const char* shipped_sa_file = test::linuxptp_sa_file;
constexpr size_t capture_frames = test::linuxptp_capture_frames;
constexpr size_t capture_ptp_frames = test::linuxptp_capture_ptp_frames;
constexpr int exit_error = 2;

/// The frame without its AUTHENTICATION TLV (unchanged if it has none or is
/// not PTP), made with the wire layer the data plane uses.
std::vector<uint8_t> stripped(const std::vector<uint8_t>& frame) {
    std::vector<uint8_t> f = frame;
    ptp::frame_buf fb{f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size())};
    ptp::frame_info fi;
    ptp::message_view mv;
    if (ptp::classify_frame(fb.data, fb.len, fi) == ptp::error::none &&
        ptp::parse_message(fb.data + fi.ptp_offset, fi.ptp_avail, mv) == ptp::error::none && mv.has_auth) {
        EXPECT_EQ(ptp::strip_auth_tlv(fb, fi, mv), ptp::error::none);
        f.resize(fb.len);
    }
    return f;
}

/// Every frame of a capture through stripped(), lengths in the record
/// headers to match.
std::vector<packet> stripped(const std::vector<packet>& pkts) {
    std::vector<packet> out = pkts;
    for (auto& p : out) {
        p.data = stripped(p.data);
        p.hdr.caplen = p.hdr.len = static_cast<uint32_t>(p.data.size());
    }
    return out;
}

/// Two workers (three lcores on whatever CPUs there are): net_pcap has no
/// rte_flow, so the second worker hands the PTP of its queue to the first.
constexpr const char* two_workers = "0@(0-1),1@(0-1),2@(0-1)";

class dataplane_app : public testing::Test {
protected:
    void SetUp() override {
        _capture = read_packets(capture);
        ASSERT_EQ(_capture.size(), capture_frames);
        _exe = test::program_from_env("PTPSEC_DATAPLANE");
        write_packets(_dir.file("empty.pcap"), DLT_EN10MB, {});
    }

    /// Runs the data plane with `inside_in` arriving on the inside port
    /// and `outside_in` on the outside port until both are consumed; the
    /// frames sent out go to inside_out.pcap and outside_out.pcap.
    test::run_result run(const std::string& inside_in, const std::string& outside_in,
                         const std::vector<std::string>& options) {
        return run_queues({inside_in}, {outside_in}, "0", options);
    }

    /// run() with one RX and one TX queue per file on each port (net_pcap
    /// reads queue k from file k) and the EAL option --lcores `lcores`. TX
    /// queue k > 0 writes inside_out_qK.pcap and outside_out_qK.pcap.
    test::run_result run_queues(const std::vector<std::string>& inside_in, const std::vector<std::string>& outside_in,
                                const std::string& lcores, const std::vector<std::string>& options) {
        static int runs = 0;
        ++runs;
        auto vdev = [&](int n, std::string_view side, const std::vector<std::string>& in) {
            std::string v = fmt::format("--vdev=net_pcap{}", n);
            for (size_t q = 0; q < in.size(); ++q) {
                v += fmt::format(",rx_pcap={},tx_pcap={}", in[q], out_file(side, q));
            }
            return v;
        };
        const std::string prefix = fmt::format("ptpsec-app-{}-{}", ::getpid(), runs);
        runtime_dir_guard runtime(prefix);
        std::vector<std::string> devices = {vdev(0, "inside", inside_in), vdev(1, "outside", outside_in)};
        devices.insert(devices.end(), _eal_extra.begin(), _eal_extra.end());
        auto args = dataplane_command(fmt::format("--lcores={}", lcores), prefix, devices,
                                      {"--idle-exit", "300", "--stats-json", _dir.file("stats.json")});
        args.insert(args.end(), options.begin(), options.end());
        return test::run_program(_dir, _exe, args, std::chrono::seconds(60));
    }

    /// What TX queue `q` of the inside or outside port wrote.
    std::string out_file(std::string_view side, size_t q) const {
        return q == 0 ? _dir.file(fmt::format("{}_out.pcap", side))
                      : _dir.file(fmt::format("{}_out_q{}.pcap", side, q));
    }

    /// The counters of one path from --stats-json.
    nlohmann::json path_stats(std::string_view name) const {
        const auto j = nlohmann::json::parse(test::read_file(_dir.file("stats.json")));
        for (const auto& p : j.at("paths")) {
            if (p.at("name") == name) {
                return p;
            }
        }
        ADD_FAILURE() << "no path " << name;
        return {};
    }

    /// `frames` dealt frame by frame to two files, NAME-q0.pcap and
    /// NAME-q1.pcap (for the two RX queues of one port); their paths.
    std::vector<std::string> deal_to_two_queues(const std::vector<packet>& frames, std::string_view name) const {
        std::array<std::vector<packet>, 2> half;
        for (size_t i = 0; i < frames.size(); ++i) {
            half[i % 2].push_back(frames[i]);
        }
        std::vector<std::string> paths;
        for (size_t q = 0; q < 2; ++q) {
            paths.push_back(_dir.file(fmt::format("{}-q{}.pcap", name, q)));
            write_packets(paths.back(), DLT_EN10MB, half[q]);
        }
        return paths;
    }

    std::vector<packet> _capture;
    std::string _exe;
    temp_dir _dir;
    std::vector<std::string> _eal_extra; ///< more EAL options for run()
};

TEST_F(dataplane_app, signs_the_stripped_linuxptp_capture_exactly_as_ptp4l) {
    const std::vector<packet> in = stripped(_capture);
    const std::string in_path = _dir.file("stripped.pcap");
    write_packets(in_path, DLT_EN10MB, in);
    const auto r = run(in_path, _dir.file("empty.pcap"), {"--sa-file", shipped_sa_file, "--sign", "2:1"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    ASSERT_FALSE(r.timed_out);
    EXPECT_NE(r.out.find("inside->outside [sign]: rx 210 tx 210 dropped 0"), std::string::npos) << r.out;

    const auto out = read_packets(_dir.file("outside_out.pcap"));
    ASSERT_EQ(out.size(), capture_frames);
    for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].data, _capture[i].data) << "frame " << i;
    }
    const auto s = path_stats("inside->outside");
    EXPECT_EQ(s.at("signed"), capture_ptp_frames);
    EXPECT_EQ(s.at("non_ptp"), capture_frames - capture_ptp_frames);
    EXPECT_EQ(s.at("dropped"), 0);
    EXPECT_TRUE(read_packets(_dir.file("inside_out.pcap")).empty());
}

TEST_F(dataplane_app, a_port_for_ptp_alone_drops_and_counts_what_is_not_ptp) {
    // The capture has 4 frames that are not PTP (ICMPv6 and the like).
    const std::vector<packet> in = stripped(_capture);
    const std::string in_path = _dir.file("stripped.pcap");
    write_packets(in_path, DLT_EN10MB, in);
    write_packets(_dir.file("outside_in.pcap"), DLT_EN10MB, _capture);
    const auto r = run(in_path, _dir.file("outside_in.pcap"),
                       {"--sa-file", shipped_sa_file, "--sign", "2:1", "--inside-non-ptp", "drop", "--outside-policy",
                        "verify", "--outside-non-ptp", "drop"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    constexpr size_t non_ptp = capture_frames - capture_ptp_frames;
    EXPECT_NE(r.out.find(fmt::format("inside->outside [sign]: rx 210 tx 206 dropped {}", non_ptp)), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find(fmt::format("dropped: non_ptp_dropped {}", non_ptp)), std::string::npos) << r.out;
    // What leaves is the capture without those frames, signed as ptp4l signs.
    std::vector<packet> want;
    for (const auto& p : _capture) {
        if (locate(p.data).auth != 0) {
            want.push_back(p);
        }
    }
    ASSERT_EQ(want.size(), capture_ptp_frames);
    const auto out = read_packets(_dir.file("outside_out.pcap"));
    ASSERT_EQ(out.size(), want.size());
    for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].data, want[i].data) << "frame " << i;
    }
    for (const auto* name : {"inside->outside", "outside->inside"}) {
        const auto s = path_stats(name);
        EXPECT_EQ(s.at("non_ptp"), 0) << name;
        EXPECT_EQ(s.at("drops").at("non_ptp_dropped"), non_ptp) << name;
        EXPECT_EQ(s.at("dropped"), non_ptp) << name;
    }
    EXPECT_EQ(path_stats("outside->inside").at("verified"), capture_ptp_frames);
    EXPECT_EQ(read_packets(_dir.file("inside_out.pcap")).size(), capture_ptp_frames);
    // Anything but forward or drop is refused before EAL starts.
    const auto bad = run(in_path, _dir.file("empty.pcap"), {"--inside-non-ptp", "block"});
    EXPECT_EQ(bad.exit_code, exit_error);
    EXPECT_NE(bad.err.find("--inside-non-ptp block: use forward or drop"), std::string::npos) << bad.err;
}

/// The capture followed by one frame of each kind the verifier must drop.
struct bad_input {
    std::vector<packet> frames;
    size_t good = 0; ///< the first `good` frames are the capture
};

bad_input capture_with_bad_frames(const std::vector<packet>& capture_pkts) {
    bad_input b;
    b.frames = capture_pkts;
    b.good = b.frames.size();
    // A signed PTP frame to spoil in several ways.
    size_t k = 0;
    while (locate(capture_pkts[k].data).auth == 0) {
        ++k;
    }
    const packet base = capture_pkts[k];
    const located l = locate(base.data);
    auto add = [&](std::vector<uint8_t> d) {
        packet p = base;
        p.data = std::move(d);
        p.hdr.caplen = p.hdr.len = static_cast<uint32_t>(p.data.size());
        b.frames.push_back(std::move(p));
    };
    std::vector<uint8_t> tampered = base.data;
    tampered[l.ptp + 30] ^= 0x01; // sequenceId
    add(tampered);
    std::vector<uint8_t> wrong_key = base.data;
    store_be32(wrong_key.data() + l.auth + 6, 99); // keyID
    add(wrong_key);
    std::vector<uint8_t> wrong_spp = base.data;
    wrong_spp[l.auth + 4] = 7; // spp
    add(wrong_spp);
    std::vector<uint8_t> truncated = base.data;
    truncated.resize(truncated.size() - 10);
    add(truncated);
    add(stripped(base.data)); // unsigned
    // A replay of the last signed frame: good ICV, seen before.
    size_t last = capture_pkts.size() - 1;
    while (locate(capture_pkts[last].data).auth == 0) {
        --last;
    }
    add(capture_pkts[last].data);
    return b;
}

/// Frames a path's replay windows refused (--stats-json path counters).
uint64_t refused_as_replays(const nlohmann::json& s) {
    const auto& d = s.at("drops");
    return d.value("replayed", uint64_t{0}) + d.value("too_old", uint64_t{0});
}

void expect_bad_frames_dropped(const nlohmann::json& s) {
    EXPECT_EQ(s.at("verified"), capture_ptp_frames);
    EXPECT_EQ(s.at("non_ptp"), capture_frames - capture_ptp_frames);
    EXPECT_EQ(s.at("dropped"), 6);
    const auto& d = s.at("drops");
    EXPECT_EQ(d.at("replayed"), 1);
    EXPECT_EQ(d.at("bad_icv"), 1);
    EXPECT_EQ(d.at("unknown_key"), 1);
    EXPECT_EQ(d.at("unknown_spp"), 1);
    EXPECT_EQ(d.at("malformed"), 1);
    EXPECT_EQ(d.at("unsigned"), 1);
    EXPECT_EQ(s.at("malformed").at("truncated"), 1);
}

TEST_F(dataplane_app, verify_strip_forwards_good_frames_stripped_and_counts_every_drop) {
    const bad_input b = capture_with_bad_frames(_capture);
    const std::string in_path = _dir.file("outside_in.pcap");
    write_packets(in_path, DLT_EN10MB, b.frames);
    const auto r = run(_dir.file("empty.pcap"), in_path,
                       {"--sa-file", shipped_sa_file, "--sign", "2:1", "--outside-policy", "verify-strip"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto out = read_packets(_dir.file("inside_out.pcap"));
    ASSERT_EQ(out.size(), b.good); // only the capture's frames come out, in order
    for (size_t i = 0; i < out.size(); ++i) {
        // PTP without its TLV; the ICMPv6 frames octet for octet.
        EXPECT_EQ(out[i].data, stripped(_capture[i].data)) << "frame " << i;
    }
    const auto s = path_stats("outside->inside");
    expect_bad_frames_dropped(s);
    EXPECT_EQ(s.at("stripped"), capture_ptp_frames);
    EXPECT_NE(r.out.find("bad_icv 1"), std::string::npos) << r.out;
    // The replay table: every verified frame new, the one replay refused,
    // in --stats-json and on the exit line.
    const auto replay = nlohmann::json::parse(test::read_file(_dir.file("stats.json"))).at("replay");
    EXPECT_EQ(replay.at("accepted"), capture_ptp_frames) << replay;
    EXPECT_EQ(replay.at("replayed"), 1) << replay;
    EXPECT_EQ(replay.at("too_old"), 0) << replay;
    EXPECT_GT(replay.at("opened").get<uint64_t>(), 0U) << replay;
    EXPECT_EQ(replay.at("size"), replay.at("opened")) << replay;
    EXPECT_EQ(replay.at("evicted"), 0) << replay;
    EXPECT_NE(r.out.find(fmt::format("replay (at exit): window {}, {} of {} streams | accepted {} (late {}) replayed 1 "
                                     "too_old 0 | opened {} evicted 0 retired 0\n",
                                     replay.at("window").get<uint64_t>(), replay.at("size").get<uint64_t>(),
                                     replay.at("capacity").get<uint64_t>(), capture_ptp_frames,
                                     replay.at("late").get<uint64_t>(), replay.at("opened").get<uint64_t>())),
              std::string::npos)
        << r.out;

    // Without replay protection: off, and window 0 in --stats-json.
    const auto off = run(
        _dir.file("empty.pcap"), in_path,
        {"--sa-file", shipped_sa_file, "--sign", "2:1", "--outside-policy", "verify-strip", "--replay-window", "0"});
    ASSERT_EQ(off.exit_code, 0) << off.err << off.out;
    EXPECT_NE(off.out.find("replay (at exit): off\n"), std::string::npos) << off.out;
    const auto none = nlohmann::json::parse(test::read_file(_dir.file("stats.json"))).at("replay");
    EXPECT_EQ(none.at("window"), 0) << none;
    EXPECT_EQ(none.at("accepted"), 0) << none;
}

// seeds/003's replays, as docs/security.md answers them. A time
// transmitter goes silent and its recorded messages are played back
// (the dead node): while this data plane holds the streams' windows, every
// copy is refused. After a restart it holds none, and the same recording
// verifies once (the start-up problem, which only the key's end stops:
// "cannot stop" within a key's lifetime), then is refused again.
TEST_F(dataplane_app, a_dead_nodes_recording_is_refused_while_its_windows_are_held_and_accepted_once_after_a_restart) {
    std::vector<packet> twice = _capture;
    twice.insert(twice.end(), _capture.begin(), _capture.end());
    const std::string twice_path = _dir.file("twice.pcap");
    write_packets(twice_path, DLT_EN10MB, twice);
    const std::vector<std::string> verify = {"--sa-file", shipped_sa_file,    "--sign",
                                             "2:1",       "--outside-policy", "verify-strip"};
    const auto held = run(_dir.file("empty.pcap"), twice_path, verify);
    ASSERT_EQ(held.exit_code, 0) << held.err << held.out;
    auto s = path_stats("outside->inside");
    EXPECT_EQ(s.at("verified"), capture_ptp_frames);
    EXPECT_EQ(refused_as_replays(s), capture_ptp_frames) << "every copy, though its ICV is good: " << s.dump();
    EXPECT_EQ(s.at("dropped"), capture_ptp_frames) << s.dump();
    EXPECT_EQ(read_packets(_dir.file("inside_out.pcap")).size(), capture_frames + (capture_frames - capture_ptp_frames))
        << "the recording's PTP frames do not come out";

    // Restarted, the data plane takes the recording that it refused before.
    const auto restarted = run(_dir.file("empty.pcap"), capture, verify);
    ASSERT_EQ(restarted.exit_code, 0) << restarted.err << restarted.out;
    s = path_stats("outside->inside");
    EXPECT_EQ(s.at("verified"), capture_ptp_frames);
    EXPECT_EQ(s.at("dropped"), 0) << s.dump();
    EXPECT_EQ(read_packets(_dir.file("inside_out.pcap")).size(), capture_frames);
}

TEST_F(dataplane_app, on_a_crypto_device_signs_as_ptp4l_and_verifies_every_frame) {
    // The ICVs on DPDK's crypto_openssl PMD (cryptodev) instead of
    // intel-ipsec-mb: both directions at once, the same frames out.
    _eal_extra = {"--vdev=crypto_openssl0"};
    const std::string inside_in = _dir.file("stripped.pcap");
    write_packets(inside_in, DLT_EN10MB, stripped(_capture));
    const bad_input b = capture_with_bad_frames(_capture);
    const std::string outside_in = _dir.file("outside_in.pcap");
    write_packets(outside_in, DLT_EN10MB, b.frames);
    const auto r = run(inside_in, outside_in,
                       {"--sa-file", shipped_sa_file, "--sign", "2:1", "--outside-policy", "verify-strip",
                        "--crypto-dev", "crypto_openssl0"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("engine cryptodev crypto_openssl0 (crypto_openssl) qp 0"), std::string::npos) << r.out;
    const auto signed_out = read_packets(_dir.file("outside_out.pcap"));
    ASSERT_EQ(signed_out.size(), capture_frames);
    for (size_t i = 0; i < signed_out.size(); ++i) {
        EXPECT_EQ(signed_out[i].data, _capture[i].data) << "frame " << i;
    }
    const auto stripped_out = read_packets(_dir.file("inside_out.pcap"));
    ASSERT_EQ(stripped_out.size(), b.good);
    for (size_t i = 0; i < stripped_out.size(); ++i) {
        EXPECT_EQ(stripped_out[i].data, stripped(_capture[i].data)) << "frame " << i;
    }
    EXPECT_EQ(path_stats("inside->outside").at("signed"), capture_ptp_frames);
    const auto v = path_stats("outside->inside");
    expect_bad_frames_dropped(v); // and nothing else: no crypto_failed
}

TEST_F(dataplane_app, a_crypto_device_that_lacks_a_key_s_algorithm_is_refused_at_start) {
    // crypto_aesni_mb has no AES-CMAC-256, which the shipped SA file's
    // key 2 uses: refused, naming the file line, the device and the limit.
    _eal_extra = {"--vdev=crypto_aesni_mb0"};
    const auto lacks = run(_dir.file("empty.pcap"), _dir.file("empty.pcap"),
                           {"--sa-file", shipped_sa_file, "--sign", "2:1", "--crypto-dev", "crypto_aesni_mb0"});
    EXPECT_EQ(lacks.exit_code, exit_error) << lacks.out;
    EXPECT_NE(lacks.err.find("sa.conf:8: crypto device crypto_aesni_mb0 (crypto_aesni_mb) does not do aes-cmac-256 "
                             "with a 32-octet key"),
              std::string::npos)
        << lacks.err;
    const auto missing = run(_dir.file("empty.pcap"), _dir.file("empty.pcap"),
                             {"--sa-file", shipped_sa_file, "--sign", "2:1", "--crypto-dev", "crypto_aesni_mb1"});
    EXPECT_EQ(missing.exit_code, exit_error) << missing.out;
    EXPECT_NE(missing.err.find("--crypto-dev: no crypto device named crypto_aesni_mb1: create a software one with "
                               "EAL's --vdev"),
              std::string::npos)
        << missing.err;
}

TEST_F(dataplane_app, verify_keeps_the_tlv_and_the_frames_unchanged) {
    const bad_input b = capture_with_bad_frames(_capture);
    const std::string in_path = _dir.file("outside_in.pcap");
    write_packets(in_path, DLT_EN10MB, b.frames);
    const auto r = run(_dir.file("empty.pcap"), in_path, {"--sa-file", shipped_sa_file, "--inside-policy", "pass"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto out = read_packets(_dir.file("inside_out.pcap"));
    ASSERT_EQ(out.size(), b.good);
    for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].data, _capture[i].data) << "frame " << i;
    }
    const auto s = path_stats("outside->inside");
    expect_bad_frames_dropped(s);
    EXPECT_EQ(s.at("stripped"), 0);
}

TEST_F(dataplane_app, pass_both_ways_forwards_everything_unchanged) {
    const auto r = run(capture, capture, {"--inside-policy", "pass", "--outside-policy", "pass"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    for (const char* name : {"inside_out.pcap", "outside_out.pcap"}) {
        const auto out = read_packets(_dir.file(name));
        ASSERT_EQ(out.size(), capture_frames) << name;
        for (size_t i = 0; i < out.size(); ++i) {
            EXPECT_EQ(out[i].data, _capture[i].data) << name << " frame " << i;
        }
    }
    const auto s = path_stats("inside->outside");
    EXPECT_EQ(s.at("ptp_passed"), capture_ptp_frames);
    EXPECT_EQ(s.at("non_ptp"), capture_frames - capture_ptp_frames);
}

/// SHA-256 of a PTP message with correctionField (octets 8-15) taken as zero.
std::array<uint8_t, event_digest_len> event_digest_of(const uint8_t* msg, size_t len) {
    std::vector<uint8_t> m(msg, msg + len);
    std::fill(m.begin() + 8, m.begin() + 16, 0);
    std::array<uint8_t, event_digest_len> d{};
    SHA256(m.data(), m.size(), d.data());
    return d;
}

/// The event records of an --event-dump file.
std::vector<event_record> read_event_dump(const std::string& path) {
    const std::string bytes = test::read_file(path);
    EXPECT_EQ(bytes.size() % sizeof(event_record), 0U);
    std::vector<event_record> recs(bytes.size() / sizeof(event_record));
    std::memcpy(recs.data(), bytes.data(), recs.size() * sizeof(event_record));
    return recs;
}

TEST_F(dataplane_app, timing_events_record_each_forwarded_frame_as_it_arrived_and_left) {
    // Verify and strip the capture with --events both: every forwarded
    // Sync, Follow_Up and Delay_Req gives an rx record (the signed message,
    // on the outside port) and a tx record (the stripped one, on the inside
    // port), with digests over the octets each one carried.
    const std::string in_path = _dir.file("outside_in.pcap");
    write_packets(in_path, DLT_EN10MB, capture_with_bad_frames(_capture).frames);
    const std::string dump = _dir.file("events.bin");
    const uint64_t before = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    const auto r = run(_dir.file("empty.pcap"), in_path,
                       {"--sa-file", shipped_sa_file, "--inside-policy", "pass", "--outside-policy", "verify-strip",
                        "--events", "both", "--event-dump", dump});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const std::vector<event_record> recs = read_event_dump(dump);

    // What should be there: the capture's selected messages, in order.
    std::vector<std::pair<std::array<uint8_t, event_digest_len>, std::array<uint8_t, event_digest_len>>> want;
    for (const auto& p : _capture) {
        const located l = locate(p.data);
        if (l.auth == 0) {
            continue;
        }
        const uint8_t type = p.data[l.ptp] & 0x0F;
        if (!event_mask::timing().selects_value(type)) {
            continue;
        }
        const std::vector<uint8_t> out = stripped(p.data);
        want.emplace_back(event_digest_of(p.data.data() + l.ptp, p.data.size() - l.ptp),
                          event_digest_of(out.data() + l.ptp, out.size() - l.ptp));
    }
    ASSERT_GT(want.size(), 100U);
    ASSERT_EQ(recs.size(), 2 * want.size()) << "one rx and one tx record per forwarded timing message";
    // Per burst the rx records come first, then the tx records of the same
    // frames: match each kind in order.
    size_t rx = 0;
    size_t tx = 0;
    for (const auto& e : recs) {
        EXPECT_EQ(e.version, event_record_version);
        EXPECT_GE(e.timestamp_ns + 60'000'000'000ULL, before) << "a CLOCK_TAI reading of this run";
        EXPECT_EQ(e.flags, 0) << "read in software, not stamped by the port";
        if (e.direction == event_direction::rx) {
            ASSERT_LT(rx, want.size());
            EXPECT_EQ(e.port_id, 1) << "received on the outside port";
            EXPECT_EQ(e.digest, want[rx].first) << "rx record " << rx;
            ++rx;
        } else {
            ASSERT_LT(tx, want.size());
            EXPECT_EQ(e.port_id, 0) << "sent on the inside port";
            EXPECT_EQ(e.digest, want[tx].second) << "tx record " << tx;
            ++tx;
        }
    }
    EXPECT_EQ(rx, want.size());
    EXPECT_EQ(tx, want.size());
    const auto st = path_stats("outside->inside");
    EXPECT_EQ(st.at("events"), recs.size());
    EXPECT_EQ(st.at("events_ring_full"), 0);
    EXPECT_EQ(st.at("events_port_stamped"), 0);
    EXPECT_NE(r.out.find(fmt::format("timing events written to {}: {}", dump, recs.size())), std::string::npos)
        << r.out;
}

TEST_F(dataplane_app, rx_timestamps_port_us_stamps_each_rx_event_with_the_time_the_port_gave_its_frame) {
    // net_pcap gives every frame it reads the time of its capture header,
    // in microseconds: with --rx-timestamps port-us each RX event carries
    // that time, flagged as the port's, also for frames the second worker
    // received and handed to the PTP worker. TX events keep the clock's.
    std::map<std::array<uint8_t, event_digest_len>, uint64_t> captured_ns;
    for (const auto& p : _capture) {
        const located l = locate(p.data);
        if (l.auth == 0 || !event_mask::timing().selects_value(p.data[l.ptp] & 0x0F)) {
            continue;
        }
        const uint64_t ns = static_cast<uint64_t>(p.hdr.ts.tv_sec) * 1'000'000'000ULL +
                            static_cast<uint64_t>(p.hdr.ts.tv_usec) * 1000ULL;
        ASSERT_TRUE(captured_ns.emplace(event_digest_of(p.data.data() + l.ptp, p.data.size() - l.ptp), ns).second);
    }
    ASSERT_GT(captured_ns.size(), 100U);
    auto check = [&](const std::vector<event_record>& recs, const std::string& run) {
        size_t rx = 0;
        for (const auto& e : recs) {
            if (e.direction == event_direction::tx) {
                EXPECT_EQ(e.flags, 0) << run << ": a TX event read in software";
                continue;
            }
            ++rx;
            const auto it = captured_ns.find(e.digest);
            ASSERT_NE(it, captured_ns.end()) << run << ": an RX event of no frame of the capture";
            EXPECT_EQ(e.timestamp_ns, it->second) << run << ": seq " << e.sequenceId;
            EXPECT_EQ(e.flags, event_flag_hw_timestamp) << run << ": seq " << e.sequenceId;
        }
        EXPECT_EQ(rx, captured_ns.size()) << run;
    };

    const std::string dump = _dir.file("events.bin");
    auto r = run(_dir.file("empty.pcap"), capture,
                 {"--sa-file", shipped_sa_file, "--inside-policy", "pass", "--events", "both", "--rx-timestamps",
                  "port-us", "--event-dump", dump});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("RX stamped by the port where it gives a time (port-us)"), std::string::npos) << r.out;
    check(read_event_dump(dump), "one worker");
    EXPECT_EQ(path_stats("outside->inside").at("events_port_stamped"), captured_ns.size());
    EXPECT_NE(r.out.find(fmt::format("port-stamped {}", captured_ns.size())), std::string::npos) << r.out;

    const std::string empty = _dir.file("empty.pcap");
    r = run_queues({empty, empty}, deal_to_two_queues(_capture, "ts"), two_workers,
                   {"--sa-file", shipped_sa_file, "--inside-policy", "pass", "--events", "rx", "--rx-timestamps",
                    "port-us", "--event-dump", dump});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_GT(path_stats("outside->inside").at("handed_off").get<uint64_t>(), 100U);
    EXPECT_EQ(path_stats("outside->inside").at("events_port_stamped"), captured_ns.size());
    check(read_event_dump(dump), "two workers");
}

TEST(dataplane_app_ports, rx_timestamps_from_ports_that_give_none_is_refused_at_start) {
    // net_ring ports stamp nothing: --rx-timestamps port-ns would leave
    // every event on the clock's time while saying otherwise.
    test::temp_dir dir;
    const std::string prefix = fmt::format("ptpsec-app-ring-{}", ::getpid());
    runtime_dir_guard runtime(prefix);
    const auto r = test::run_program(
        dir, test::program_from_env("PTPSEC_DATAPLANE"),
        dataplane_command("-l0", prefix, {"--vdev=net_ring0", "--vdev=net_ring1"},
                          {"--inside-policy", "pass", "--events", "rx", "--rx-timestamps", "port-ns"}),
        std::chrono::seconds(60));
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE(r.err.find("--rx-timestamps port-ns: neither port's PMD gives RX timestamps (port 0 (net_ring) and "
                         "port 1 (net_ring) offer no RTE_ETH_RX_OFFLOAD_TIMESTAMP); use --rx-timestamps clock"),
              std::string::npos)
        << r.err << r.out;
}

TEST_F(dataplane_app, event_types_choose_which_messages_give_records) {
    // Only Sync and Announce, as they arrive: one record per such frame of the capture.
    const std::string dump = _dir.file("events.bin");
    const auto r = run(_dir.file("empty.pcap"), capture,
                       {"--sa-file", shipped_sa_file, "--inside-policy", "pass", "--events", "rx", "--event-types",
                        "Sync,announce", "--event-dump", dump});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const std::vector<event_record> recs = read_event_dump(dump);
    size_t want = 0;
    for (const auto& p : _capture) {
        const located l = locate(p.data);
        const uint8_t type = p.data[l.ptp] & 0x0F;
        want += l.auth != 0 && (type == 0x0 || type == 0xB) ? 1 : 0;
    }
    ASSERT_GT(want, 10U);
    EXPECT_EQ(recs.size(), want);
    size_t announces = 0;
    for (const auto& e : recs) {
        EXPECT_TRUE(e.messageType == 0x0 || e.messageType == 0xB) << int{e.messageType};
        announces += e.messageType == 0xB ? 1 : 0;
    }
    EXPECT_GT(announces, 0U);
}

TEST_F(dataplane_app, a_full_event_ring_is_counted_not_waited_on) {
    // A ring of 16 with nobody draining it: the first 15 records fit
    // (rte_ring keeps a slot free), every later one is counted, and every
    // frame still goes through.
    const auto r =
        run(_dir.file("empty.pcap"), capture,
            {"--sa-file", shipped_sa_file, "--inside-policy", "pass", "--events", "rx", "--event-ring", "16"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto st = path_stats("outside->inside");
    EXPECT_EQ(st.at("events"), 15);
    EXPECT_GT(st.at("events_ring_full").get<uint64_t>(), 100U);
    EXPECT_EQ(st.at("tx"), capture_frames);
    EXPECT_EQ(st.at("dropped"), 0);
}

/// correctionField of the PTP message of a frame.
int64_t correction_of(const std::vector<uint8_t>& frame, size_t ptp) {
    return static_cast<int64_t>(load_be64(frame.data() + ptp + 8));
}

/// The capture stripped, then signed by ptpsecctl with key `key_id` of
/// SPP 2 from `sa_text` (an SA file); returns the signed frames.
std::vector<packet> resigned_capture(const temp_dir& dir, const std::vector<packet>& capture_pkts,
                                     const std::string& sa_text, const std::string& key_id) {
    const std::vector<packet> in = stripped(capture_pkts);
    write_packets(dir.file("tc-stripped.pcap"), DLT_EN10MB, in);
    test::write_file(dir.file("tc-sa.conf"), sa_text);
    const auto r = test::run_program(dir, test::program_from_env("PTPSECCTL"),
                                     {"pcap", "sign", "--sa-file", dir.file("tc-sa.conf"), "--spp", "2", "--key-id",
                                      key_id, dir.file("tc-stripped.pcap"), dir.file("tc-signed.pcap")});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return read_packets(dir.file("tc-signed.pcap"));
}

class transparent_clock : public dataplane_app {
protected:
    std::vector<packet> run_tc(const std::vector<packet>& in, const std::string& sa_file) {
        const std::string in_path = _dir.file("tc-in.pcap");
        write_packets(in_path, DLT_EN10MB, in);
        _last = run(_dir.file("empty.pcap"), in_path,
                    {"--sa-file", sa_file, "--inside-policy", "tc", "--outside-policy", "tc"});
        EXPECT_EQ(_last.exit_code, 0) << _last.err << _last.out;
        return read_packets(_dir.file("inside_out.pcap"));
    }

    /// Every frame of `out` against `in`: event messages with a larger
    /// correctionField (by less than a second) and otherwise `same_tlv` or a
    /// new ICV, everything else octet for octet. Returns the event messages.
    size_t expect_corrected(const std::vector<packet>& in, const std::vector<packet>& out, bool same_tlv) {
        EXPECT_EQ(out.size(), in.size());
        size_t events = 0;
        for (size_t i = 0; i < std::min(in.size(), out.size()); ++i) {
            const located l = locate(in[i].data);
            const bool event = l.auth != 0 && (in[i].data[l.ptp] & 0x0F) < 8;
            if (!event) {
                EXPECT_EQ(out[i].data, in[i].data) << "frame " << i << " is not an event message";
                continue;
            }
            ++events;
            EXPECT_EQ(out[i].data.size(), in[i].data.size()) << "frame " << i;
            if (out[i].data.size() != in[i].data.size()) {
                continue;
            }
            const int64_t added = correction_of(out[i].data, l.ptp) - correction_of(in[i].data, l.ptp);
            EXPECT_GT(added, 0) << "frame " << i;
            EXPECT_LT(added >> 16, 1'000'000'000) << "frame " << i << ": residence under a second";
            std::vector<uint8_t> a = in[i].data;
            std::vector<uint8_t> b = out[i].data;
            std::fill(a.begin() + static_cast<long>(l.ptp) + 8, a.begin() + static_cast<long>(l.ptp) + 16, 0);
            std::fill(b.begin() + static_cast<long>(l.ptp) + 8, b.begin() + static_cast<long>(l.ptp) + 16, 0);
            // The UDP checksum (none here: L2) and, when signed again, the ICV change.
            const size_t icv_at = l.auth + 10;
            EXPECT_TRUE(std::equal(a.begin(), a.begin() + static_cast<long>(icv_at), b.begin())) << "frame " << i;
            EXPECT_EQ(std::equal(a.begin() + static_cast<long>(icv_at), a.end(), b.begin() + static_cast<long>(icv_at)),
                      same_tlv)
                << "frame " << i;
        }
        return events;
    }

    test::run_result _last;
};

TEST_F(transparent_clock, adds_residence_and_signs_again_with_the_key_the_frame_carried) {
    // The linuxptp capture (HMAC-SHA256-128, allow_mutable 0): Sync and
    // Delay_Req come out with their residence time added and a new ICV made
    // with SPP 2 key 1; every other frame as it came; all of it verifies.
    const auto out = run_tc(_capture, shipped_sa_file);
    const size_t events = expect_corrected(_capture, out, false);
    EXPECT_GT(events, 50U);
    const auto s = path_stats("outside->inside");
    EXPECT_EQ(s.at("tc_corrected"), events);
    EXPECT_EQ(s.at("tc_resigned"), events);
    EXPECT_EQ(s.at("dropped"), 0);
    write_packets(_dir.file("tc-out.pcap"), DLT_EN10MB, out);
    const auto v = test::run_program(_dir, test::program_from_env("PTPSECCTL"),
                                     {"pcap", "verify", "--sa-file", shipped_sa_file, _dir.file("tc-out.pcap")});
    EXPECT_EQ(v.exit_code, 0) << v.out;
    EXPECT_NE(v.out.find("206 verified, 0 failed, 0 unsigned"), std::string::npos);
}

TEST_F(transparent_clock, a_tampered_or_replayed_frame_is_dropped_not_signed_again) {
    // The first event message with one octet of its body changed, then the
    // next event message twice: the TC verifies before it corrects, so the
    // changed copy and the second copy never get a fresh ICV.
    // The index of the first signed event message at or after `from`.
    const auto next_event = [&](size_t from) {
        while (from < _capture.size()) {
            const located l = locate(_capture[from].data);
            if (l.auth != 0 && (_capture[from].data[l.ptp] & 0x0F) < 8) {
                break;
            }
            ++from;
        }
        return from;
    };
    std::vector<packet> in;
    const size_t first = next_event(0);
    ASSERT_LT(first, _capture.size());
    const size_t second = next_event(first + 1);
    ASSERT_LT(second, _capture.size());
    packet tampered = _capture[first];
    tampered.data[locate(tampered.data).ptp + 34] ^= 0x01; // the first octet of the body
    in.push_back(tampered);
    in.push_back(_capture[second]);
    in.push_back(_capture[second]);
    const auto out = run_tc(in, shipped_sa_file);
    ASSERT_EQ(out.size(), 1U) << "only the first copy of the good frame passes";
    const auto s = path_stats("outside->inside");
    EXPECT_EQ(s.at("dropped"), 2);
    EXPECT_EQ(s.at("drops").value("bad_icv", 0), 1) << s.dump();
    EXPECT_EQ(s.at("drops").value("replayed", 0), 1) << s.dump();
    EXPECT_EQ(s.at("tc_resigned"), 1);
    EXPECT_EQ(s.at("tc_corrected"), 1);
}

TEST_F(transparent_clock, allow_mutable_keeps_the_tlv) {
    // correctionField is outside the ICV: the TLV comes out unchanged.
    const std::string sa =
        "[security_association]\nspp 2\nallow_mutable 1\n1 AES128 HEX:FAF48EBA01E7C5966A76CB787AED4E7B\n";
    const auto in = resigned_capture(_dir, _capture, sa, "1");
    ASSERT_EQ(in.size(), capture_frames);
    const auto out = run_tc(in, _dir.file("tc-sa.conf"));
    const size_t events = expect_corrected(in, out, true);
    const auto s = path_stats("outside->inside");
    EXPECT_EQ(s.at("tc_corrected"), events);
    EXPECT_EQ(s.at("tc_resigned"), 0);
}

TEST_F(transparent_clock, never_signs_again_under_a_gmac_sender_subkey) {
    // AES-GMAC without allow_mutable: signing again would take an IV from
    // this data plane under the sender's subkey. The frames pass as they
    // came, counted as not corrected.
    const std::string sa = "[security_association]\nspp 2\n1 AES128-GMAC HEX:000102030405060708090a0b0c0d0e0f\n";
    const auto in = resigned_capture(_dir, _capture, sa, "1");
    const auto out = run_tc(in, _dir.file("tc-sa.conf"));
    ASSERT_EQ(out.size(), in.size());
    for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].data, in[i].data) << "frame " << i;
    }
    const auto s = path_stats("outside->inside");
    EXPECT_EQ(s.at("tc_corrected"), 0);
    EXPECT_GT(s.at("tc_uncorrected").get<uint64_t>(), 50U);
}

/// Frames in a canonical order, to compare what several queues wrote as
/// multisets.
std::vector<std::vector<uint8_t>> sorted_frames(const std::vector<packet>& pkts) {
    std::vector<std::vector<uint8_t>> out;
    for (const auto& p : pkts) {
        out.push_back(p.data);
    }
    std::sort(out.begin(), out.end());
    return out;
}

bool is_ptp(const std::vector<uint8_t>& frame) {
    ptp::frame_info fi;
    return ptp::classify_frame(frame.data(), frame.size(), fi) != ptp::error::not_ptp;
}

TEST_F(dataplane_app, two_workers_sign_every_ptp_frame_whichever_queue_it_arrives_on) {
    // The stripped capture dealt to two queues, frame by frame.
    const std::string empty = _dir.file("empty.pcap");
    const auto r = run_queues(deal_to_two_queues(stripped(_capture), "in"), {empty, empty}, two_workers,
                              {"--sa-file", shipped_sa_file, "--sign", "2:1", "--steering", "auto"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("2 worker(s)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("from the other workers over rings"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("refuses rte_flow rule"), std::string::npos) << r.out;

    // Every PTP frame leaves on the PTP worker's queue, signed exactly as
    // ptp4l signed it; what is not PTP leaves on the queue it came in on.
    const auto out0 = read_packets(out_file("outside", 0));
    const auto out1 = read_packets(out_file("outside", 1));
    std::vector<packet> want0;
    std::vector<packet> want1;
    size_t handed = 0;
    for (size_t i = 0; i < _capture.size(); ++i) {
        if (is_ptp(_capture[i].data)) {
            want0.push_back(_capture[i]);
            handed += i % 2;
        } else {
            (i % 2 == 0 ? want0 : want1).push_back(_capture[i]);
        }
    }
    EXPECT_EQ(sorted_frames(out0), sorted_frames(want0));
    EXPECT_EQ(sorted_frames(out1), sorted_frames(want1));
    for (const auto& p : out1) {
        EXPECT_FALSE(is_ptp(p.data)) << "PTP left on the second worker's queue";
    }
    const auto s = path_stats("inside->outside");
    EXPECT_EQ(s.at("rx"), capture_frames);
    EXPECT_EQ(s.at("tx"), capture_frames);
    EXPECT_EQ(s.at("signed"), capture_ptp_frames);
    EXPECT_EQ(s.at("handed_off"), handed);
    EXPECT_EQ(s.at("dropped"), 0);
    const auto j = nlohmann::json::parse(test::read_file(_dir.file("stats.json")));
    ASSERT_EQ(j.at("workers").size(), 2U);
    EXPECT_EQ(j.at("workers")[0].at("rx").get<uint64_t>() + j.at("workers")[1].at("rx").get<uint64_t>(),
              capture_frames);
    EXPECT_EQ(j.at("workers")[1].at("handed_off"), handed);
}

TEST_F(dataplane_app, a_full_handoff_ring_drops_and_counts_never_waits) {
    // The stripped capture on the second worker's queue only, and a handoff
    // ring of one slot: most of its PTP cannot be handed over.
    const std::string q1 = _dir.file("in-q1.pcap");
    write_packets(q1, DLT_EN10MB, stripped(_capture));
    const std::string empty = _dir.file("empty.pcap");
    const auto r = run_queues({empty, q1}, {empty, empty}, two_workers,
                              {"--sa-file", shipped_sa_file, "--sign", "2:1", "--handoff-ring", "2"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto s = path_stats("inside->outside");
    const uint64_t full = s.at("drops").value("handoff_full", uint64_t{0});
    EXPECT_GT(full, 0U) << s.dump();
    EXPECT_EQ(s.at("dropped"), full);
    EXPECT_EQ(s.at("handed_off").get<uint64_t>() + full, capture_ptp_frames);
    EXPECT_EQ(s.at("signed"), s.at("handed_off"));
    EXPECT_EQ(s.at("tx").get<uint64_t>() + full, capture_frames);
    EXPECT_NE(r.out.find("handoff_full"), std::string::npos) << r.out;
}

TEST_F(dataplane_app, a_worker_that_hands_ptp_over_drops_what_is_not_ptp_on_a_port_for_ptp_alone) {
    // The stripped capture on the second worker's queue: that worker hands
    // its PTP to the PTP worker and drops the rest itself.
    const std::string q1 = _dir.file("in-q1.pcap");
    write_packets(q1, DLT_EN10MB, stripped(_capture));
    const std::string empty = _dir.file("empty.pcap");
    const auto r = run_queues({empty, q1}, {empty, empty}, two_workers,
                              {"--sa-file", shipped_sa_file, "--sign", "2:1", "--inside-non-ptp", "drop"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto s = path_stats("inside->outside");
    EXPECT_EQ(s.at("drops").at("non_ptp_dropped"), capture_frames - capture_ptp_frames) << s.dump();
    EXPECT_EQ(s.at("non_ptp"), 0);
    EXPECT_EQ(s.at("signed"), capture_ptp_frames);
    EXPECT_EQ(s.at("tx"), capture_ptp_frames);
}

TEST_F(dataplane_app, a_replay_on_another_queue_meets_the_same_replay_window) {
    // The signed capture on queue 0; copies of its first ten PTP frames on
    // queue 1. Whichever copy arrives first is accepted, the other refused:
    // one replay window for every queue.
    std::vector<packet> replays;
    for (const auto& p : _capture) {
        if (replays.size() < 10 && locate(p.data).auth != 0) {
            replays.push_back(p);
        }
    }
    const std::string q1 = _dir.file("replays.pcap");
    write_packets(q1, DLT_EN10MB, replays);
    const std::string empty = _dir.file("empty.pcap");
    const auto r = run_queues({empty, empty}, {capture, q1}, two_workers,
                              {"--sa-file", shipped_sa_file, "--inside-policy", "pass", "--outside-policy", "verify"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto s = path_stats("outside->inside");
    EXPECT_EQ(s.at("verified"), capture_ptp_frames);
    EXPECT_EQ(s.at("handed_off"), replays.size());
    EXPECT_EQ(refused_as_replays(s), replays.size()) << s.dump();
    EXPECT_EQ(s.at("dropped"), replays.size());
    EXPECT_EQ(read_packets(out_file("inside", 0)).size(), capture_frames);
    EXPECT_TRUE(read_packets(out_file("inside", 1)).empty());
}

TEST_F(transparent_clock, two_workers_count_residence_from_arrival_on_either_queue) {
    // The signed capture dealt to two queues of the outside port: the
    // second worker hands its PTP over with the TSC of its arrival, and the
    // PTP worker adds the residence time from then.
    const std::string empty = _dir.file("empty.pcap");
    const auto r = run_queues({empty, empty}, deal_to_two_queues(_capture, "tc"), two_workers,
                              {"--sa-file", shipped_sa_file, "--inside-policy", "tc", "--outside-policy", "tc"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    size_t events = 0;
    size_t handed = 0;
    // Each frame with its correctionField and ICV blanked: what must not change.
    auto blanked = [](std::vector<uint8_t> f) {
        const located l = locate(f);
        if (l.auth != 0) {
            std::fill(f.begin() + static_cast<long>(l.ptp) + 8, f.begin() + static_cast<long>(l.ptp) + 16, 0);
            std::fill(f.begin() + static_cast<long>(l.auth) + 10, f.end(), 0);
        }
        return f;
    };
    std::vector<std::vector<uint8_t>> want;
    for (size_t i = 0; i < _capture.size(); ++i) {
        const located l = locate(_capture[i].data);
        events += l.auth != 0 && (_capture[i].data[l.ptp] & 0x0F) < 8 ? 1 : 0;
        handed += i % 2 == 1 && is_ptp(_capture[i].data) ? 1 : 0;
        want.push_back(blanked(_capture[i].data));
    }
    std::vector<std::vector<uint8_t>> got;
    for (size_t q = 0; q < 2; ++q) {
        for (const auto& p : read_packets(out_file("inside", q))) {
            const located l = locate(p.data);
            if (l.auth != 0 && (p.data[l.ptp] & 0x0F) < 8) {
                EXPECT_GT(correction_of(p.data, l.ptp), 0) << "queue " << q;
            }
            got.push_back(blanked(p.data));
        }
    }
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, want);
    const auto s = path_stats("outside->inside");
    EXPECT_EQ(s.at("verified"), capture_ptp_frames);
    EXPECT_EQ(s.at("tc_corrected"), events);
    EXPECT_EQ(s.at("tc_resigned"), events);
    EXPECT_EQ(s.at("handed_off"), handed);
    EXPECT_EQ(s.at("dropped"), 0);
}

TEST_F(dataplane_app, an_sa_file_window_past_the_largest_is_capped_and_said) {
    std::string sa_text = test::read_file(shipped_sa_file);
    const size_t at = sa_text.find("seqid_window 3\n");
    ASSERT_NE(at, std::string::npos);
    sa_text.replace(at, std::strlen("seqid_window 3"), "seqid_window 32767");
    const std::string sa = _dir.file("wide-sa.conf");
    test::write_file(sa, sa_text);
    const std::string empty = _dir.file("empty.pcap");
    auto r = run(empty, capture, {"--sa-file", sa, "--inside-policy", "pass"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.err.find(sa + ": seqid_window 32767 is more than the largest replay window, 32704"), std::string::npos)
        << r.err;
    EXPECT_NE(r.out.find("replay window 32704 "), std::string::npos) << r.out;
    EXPECT_EQ(path_stats("outside->inside").at("verified"), capture_ptp_frames);
    // The window the SA file asks for, with as many streams as the options
    // take, would need more memory than a table may have: refused by name.
    r = run(empty, capture, {"--sa-file", sa, "--inside-policy", "pass", "--replay-streams", "1048576"});
    EXPECT_EQ(r.exit_code, exit_error) << r.err << r.out;
    EXPECT_NE(r.err.find(sa + ": seqid_window 32767 with --replay-streams 1048576 needs 4148 MiB of replay state, "
                              "more than the 1024 MiB a table may take: lower --replay-streams"),
              std::string::npos)
        << r.err;
    // Within the largest: taken as it is (rounded up to whole blocks), and nothing said.
    sa_text.replace(sa_text.find("seqid_window 32767"), std::strlen("seqid_window 32767"), "seqid_window 1000");
    test::write_file(sa, sa_text);
    r = run(empty, capture, {"--sa-file", sa, "--inside-policy", "pass"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_EQ(r.err.find("seqid_window"), std::string::npos) << r.err;
    EXPECT_NE(r.out.find("replay window 1984 "), std::string::npos) << r.out;
}

TEST_F(dataplane_app, several_workers_refuse_to_start_with_a_clear_reason) {
    const std::string empty = _dir.file("empty.pcap");
    // rte_flow asked for on a PMD without it.
    auto r = run_queues({empty, empty}, {empty, empty}, two_workers,
                        {"--sa-file", shipped_sa_file, "--sign", "2:1", "--steering", "flow"});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_NE(r.err.find("--steering flow: port 0 (net_pcap0) refuses rte_flow rule"), std::string::npos) << r.err;
    // With one worker there is nothing to steer: it starts, and says so.
    r = run(empty, empty, {"--sa-file", shipped_sa_file, "--sign", "2:1", "--steering", "flow"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("  steering: one worker, one queue per port: --steering flow has nothing to steer"),
              std::string::npos)
        << r.out;
    // Two workers, one queue.
    r = run_queues({empty}, {empty}, two_workers, {"--sa-file", shipped_sa_file, "--sign", "2:1"});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_NE(r.err.find("2 workers need 2 RX and TX queues, the port has at most 1 RX and 1 TX"), std::string::npos)
        << r.err;
    r = run_queues({empty, empty}, {empty, empty}, two_workers,
                   {"--sa-file", shipped_sa_file, "--sign", "2:1", "--steering", "sometimes"});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_NE(r.err.find("--steering sometimes: use auto, flow or software"), std::string::npos) << r.err;
    r = run_queues({empty, empty}, {empty, empty}, two_workers,
                   {"--sa-file", shipped_sa_file, "--sign", "2:1", "--handoff-ring", "1000"});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_NE(r.err.find("--handoff-ring: 1000 is not a power of two"), std::string::npos) << r.err;
    // Refused before EAL starts, with one worker too (where no handoff ring is made).
    r = run(empty, empty, {"--sa-file", shipped_sa_file, "--sign", "2:1", "--handoff-ring", "1000"});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_NE(r.err.find("--handoff-ring: 1000 is not a power of two"), std::string::npos) << r.err;
}

TEST_F(dataplane_app, reads_its_options_from_a_config_file) {
    const std::vector<packet> in = stripped(_capture);
    const std::string in_path = _dir.file("stripped.pcap");
    write_packets(in_path, DLT_EN10MB, in);
    const std::string conf = _dir.file("dataplane.toml");
    test::write_file(conf, fmt::format("# the sign test's options\nsa-file = \"{}\"\ninside-policy = \"sign\"\n"
                                       "sign = \"2:1\"\nburst = 16\n",
                                       shipped_sa_file));
    auto r = run(in_path, _dir.file("empty.pcap"), {"--config", conf});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const auto out = read_packets(_dir.file("outside_out.pcap"));
    ASSERT_EQ(out.size(), capture_frames);
    for (size_t i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].data, _capture[i].data) << "frame " << i;
    }
    // The command line wins over the file.
    r = run(in_path, _dir.file("empty.pcap"), {"--config", conf, "--inside-policy", "pass"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_EQ(path_stats("inside->outside").at("ptp_passed"), capture_ptp_frames);

    struct bad_file {
        std::string text;
        std::string says;
    };
    const std::vector<bad_file> cases = {
        {"inside-polcy = \"sign\"\n", "unknown key \"inside-polcy\""},
        {"burst = 100\n", "--burst: Value 100 not in range 1 to 64"},
        {"inside-policy = \"pass\"\nsteering = \"sometimes\"\n", "--steering sometimes: use auto, flow or software"},
        // What CLI11 alone reports without the file's name, read on its own first.
        {"inside-policy = \"pass\"\nstats-interval = \"abc\"\n",
         "--config " + conf + ": --stats-interval: abc is not a number of seconds"},
        {"inside-policy = \"pass\"\nattest-signer-id = \"gm#1\"\n",
         "--config " + conf + ": key \"attest-signer-id\": the value holds '#'"},
    };
    for (const auto& c : cases) {
        test::write_file(conf, c.text);
        r = run(_dir.file("empty.pcap"), _dir.file("empty.pcap"), {"--config", conf});
        EXPECT_EQ(r.exit_code, exit_error) << c.says;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << "stderr: " << r.err;
    }
    r = run(_dir.file("empty.pcap"), _dir.file("empty.pcap"), {"--config", _dir.file("missing.toml")});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_NE(r.err.find("--config " + _dir.file("missing.toml") + ": cannot read it: No such file or directory"),
              std::string::npos)
        << r.err;
    // The same written as --config=FILE.
    r = run(_dir.file("empty.pcap"), _dir.file("empty.pcap"), {"--config=" + _dir.file("missing.toml")});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_NE(r.err.find("--config " + _dir.file("missing.toml") + ": cannot read it: No such file or directory"),
              std::string::npos)
        << r.err;
    // A directory opens but does not read.
    r = run(_dir.file("empty.pcap"), _dir.file("empty.pcap"), {"--config", _dir.path().string()});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_NE(r.err.find("--config " + _dir.path().string() + ": cannot read it: Is a directory"), std::string::npos)
        << r.err;
    // A file without end is read up to a limit.
    r = run(_dir.file("empty.pcap"), _dir.file("empty.pcap"), {"--config", "/dev/zero"});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_NE(r.err.find("--config /dev/zero: more than 16777216 octets, too large for this file"), std::string::npos)
        << r.err;
}

// Our options are read before EAL starts: --help, --print-config and a
// mistyped option are answered without hugepages or devices. The EAL
// option before `--` is one EAL would refuse, so an answer proves EAL never
// ran; EAL's own --help points at ours.
TEST_F(dataplane_app, our_help_and_option_errors_come_before_eal_starts) {
    const std::vector<std::string> eal_would_refuse{"--no-such-eal-option"};
    const auto with = [&](std::vector<std::string> ours) {
        std::vector<std::string> args = eal_would_refuse;
        args.emplace_back("--");
        args.insert(args.end(), ours.begin(), ours.end());
        return test::run_program(_dir, _exe, args, std::chrono::seconds(60));
    };
    const auto help = with({"--help"});
    EXPECT_EQ(help.exit_code, 0) << help.err;
    EXPECT_NE(help.out.find("Usage: ptpsec-dataplane [EAL options] -- [options]"), std::string::npos) << help.out;
    EXPECT_NE(help.out.find("--inside-policy"), std::string::npos) << help.out;
    const auto printed = with({"--print-config"});
    EXPECT_EQ(printed.exit_code, 0) << printed.err;
    EXPECT_NE(printed.out.find("\ninside-policy=\"sign\"\n"), std::string::npos) << printed.out;
    const auto typo = with({"--inside-polcy", "sign"});
    EXPECT_EQ(typo.exit_code, exit_error);
    EXPECT_NE(typo.err.find("--inside-polcy"), std::string::npos) << typo.err;
    const auto version = with({"--version"});
    EXPECT_EQ(version.exit_code, 0) << version.err;
    EXPECT_TRUE(version.out.starts_with("ptpsec-dataplane 0.")) << version.out;
    EXPECT_NE(version.out.find(" (DPDK "), std::string::npos) << version.out;
    EXPECT_EQ(test::run_program(_dir, _exe, {"--version"}).out, version.out) << "before `--` too";
    for (const auto* r : {&help, &printed, &typo, &version}) {
        EXPECT_EQ(r->err.find("EAL:"), std::string::npos) << r->err;
        EXPECT_EQ(r->out.find("EAL:"), std::string::npos) << r->out;
    }
    // Values that are wrong on their own, or together, are refused before
    // EAL too (those that need a port or the SA file's keys come after).
    const std::vector<std::pair<std::vector<std::string>, std::string>> refused = {
        {{"--inside-policy", "verify"}, "--inside-policy verify: use pass, sign or tc"},
        {{"--outside-policy", "sign"}, "--outside-policy sign: use pass, verify"},
        {{}, "--inside-policy sign needs --sign SPP"},
        {{"--sign", "2:1x"}, "--sign \"2:1x\": the key ID must be a number"},
        {{"--sign", "2:1"}, "--sign 2:1 names a key, which needs --sa-file"},
        {{"--sign", "2", "--inside", "1"}, "--inside and --outside are both port 1"},
        {{"--sign", "2", "--steering", "rss"}, "--steering rss: use auto, flow or software"},
        {{"--sign", "2", "--outside-policy", "pass", "--tickets"}, "--tickets needs --outside-policy verify"},
        {{"--sign", "2", "--events", "sometimes"}, "--events sometimes: use none"},
        {{"--sign", "2", "--sa-file", "keys#1.conf"}, "--sa-file: the value holds '#'"},
        {{"--sign", "2", "--event-dump", "x.bin"}, "--event-dump needs --events"},
        {{"--sign", "2", "--events", "rx", "--event-types", "sync,fast"},
         "--event-types sync,fast: \"fast\" is not a PTP messageType"},
    };
    for (const auto& [ours, says] : refused) {
        const auto r = with(ours);
        EXPECT_EQ(r.exit_code, exit_error) << says;
        EXPECT_NE(r.err.find("ptpsec-dataplane: " + says.substr(0, says.find(' '))), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find("EAL"), std::string::npos) << r.err;
    }
    // Whole numbers are decimal (or hex after 0x): others are refused by
    // CLI11 with the option's name.
    for (const auto& [value, says] : {std::pair{"010", "--burst: 010: write the number without leading zeros"},
                                      std::pair{"-1", "--burst: -1 is negative: the value is 0 or more"}}) {
        const auto r = with({"--sign", "2", "--burst", value});
        EXPECT_EQ(r.exit_code, exit_error) << says;
        EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find("EAL"), std::string::npos) << r.err;
    }
    // With valid options of ours, EAL is reached and refuses its option.
    const auto eal = with({"--sign", "2"});
    EXPECT_EQ(eal.exit_code, exit_error);
    EXPECT_NE(eal.err.find("ptpsec-dataplane: EAL: "), std::string::npos) << eal.err;
    const auto eal_help = test::run_program(_dir, _exe, {"--help"}, std::chrono::seconds(60));
    EXPECT_EQ(eal_help.exit_code, 0) << eal_help.err;
    EXPECT_NE(eal_help.out.find("EAL common options:"), std::string::npos) << eal_help.out;
    EXPECT_NE(eal_help.out.find("ptpsec-dataplane options follow `--`: "), std::string::npos) << eal_help.out;
}

TEST_F(dataplane_app, the_shipped_example_config_reads_back_as_it_says) {
    const std::string example = std::string(PTPSEC_CONFIG_DIR) + "/dataplane.toml";
    const auto r = run(_dir.file("empty.pcap"), _dir.file("empty.pcap"), {"--config", example, "--print-config"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const char* line : {"sign=2", "outside-policy=\"verify-strip\"", "replay-streams=4096", "events=\"both\"",
                             "clock=\"ethdev:1,tai\"", "steering=\"auto\""}) {
        EXPECT_NE(r.out.find(std::string("\n") + line + "\n"), std::string::npos) << line << "\n" << r.out;
    }
    // What --print-config prints is a config file itself.
    const std::string printed = _dir.file("printed.toml");
    test::write_file(printed, r.out);
    const auto again = run(_dir.file("empty.pcap"), _dir.file("empty.pcap"), {"--config", printed, "--print-config"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(again.out, r.out);
}

TEST_F(dataplane_app, refuses_to_start_with_a_clear_reason) {
    struct bad_start {
        std::vector<std::string> options;
        std::string says;
    };
    const std::vector<bad_start> cases = {
        {{"--sign", "2:1"}, "--sign 2:1 names a key, which needs --sa-file"},
        {{"--sa-file", shipped_sa_file, "--sign", "9:1"}, "--sign 9:1:"},
        {{"--sa-file", shipped_sa_file, "--sign", "2:1x"}, "--sign \"2:1x\": the key ID must be a number"},
        {{"--sa-file", shipped_sa_file}, "--inside-policy sign needs --sign SPP"},
        {{"--sa-file", shipped_sa_file, "--sign", "2:1", "--outside", "5"}, "port 5 does not exist"},
        {{"--sa-file", shipped_sa_file, "--sign", "2:1", "--outside-policy", "sign"}, "--outside-policy sign:"},
        {{"--sa-file", _dir.file("missing.conf"), "--sign", "2:1"}, "missing.conf"},
        {{"--sa-file", shipped_sa_file, "--sign", "2:1", "--events", "sometimes"}, "--events sometimes: use none"},
        {{"--sa-file", shipped_sa_file, "--sign", "2:1", "--event-dump", "x.bin"}, "--event-dump needs --events"},
        {{"--sa-file", shipped_sa_file, "--sign", "2:1", "--events", "rx", "--clock", "phc:/dev/null"},
         "--clock phc:/dev/null:"},
        {{"--sa-file", shipped_sa_file, "--sign", "2:1", "--events", "rx", "--event-ring", "1000"},
         "--event-ring: 1000 is not a power of two from 2 to 2^30"},
        {{"--sa-file", shipped_sa_file, "--sign", "2:1", "--events", "rx", "--event-types", "sync,fast"},
         "--event-types sync,fast: \"fast\" is not a PTP messageType"},
    };
    for (const auto& c : cases) {
        const auto r = run(_dir.file("empty.pcap"), _dir.file("empty.pcap"), c.options);
        EXPECT_EQ(r.exit_code, exit_error) << c.says;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << "stderr: " << r.err;
        EXPECT_FALSE(r.timed_out);
    }
}

} // namespace
} // namespace ptpsec
