// `ptpsecctl pcap`: the real binary (PTPSECCTL, set by meson test) run on the
// linuxptp capture. Verifying every frame that ptp4l signed, and signing the
// stripped capture back to the same bytes, is the interoperability proof
// that ../shared/testdata/linuxptp/README.md asks for.

#include <dataplane/ptp/frame.h>

#include <control/pcap_handles.h>

#include "../dataplane/frame_builder.h"
#include "../linuxptp_capture.h"
#include "../pcap_files.h"
#include "../process.h"

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <pcap/pcap.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ptpsec {
namespace {

namespace fs = std::filesystem;

constexpr const char* capture = test::linuxptp_capture;
constexpr const char* capture_ng = PTPSEC_TEST_DATA_DIR "/l2-hmac-sha256-128.pcapng";
constexpr const char* shipped_sa_file = test::linuxptp_sa_file;

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_error = 2;
constexpr size_t capture_frames = test::linuxptp_capture_frames;
constexpr size_t capture_ptp_frames = test::linuxptp_capture_ptp_frames;

using test::read_file;
using test::run_result;
using test::temp_dir;
using test::write_file;

/// Runs ptpsecctl (PTPSECCTL, set by meson test) with `args`.
run_result run_ctl(const temp_dir& dir, const std::vector<std::string>& args) {
    return test::run_program(dir, test::program_from_env("PTPSECCTL"), args);
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) {
        out.push_back(l);
    }
    return out;
}

bool contains(const std::string& s, std::string_view w) {
    return s.find(w) != std::string::npos;
}

bool starts_with(const std::string& s, std::string_view w) {
    return s.rfind(w, 0) == 0;
}

size_t count_lines_with(const std::string& text, std::string_view w) {
    size_t n = 0;
    for (const auto& l : lines_of(text)) {
        n += contains(l, w) ? 1 : 0;
    }
    return n;
}

/// The verdict lines of `pcap verify` ("#N ...: verdict").
std::vector<std::string> verdict_lines(const std::string& out) {
    std::vector<std::string> v;
    for (const auto& l : lines_of(out)) {
        if (starts_with(l, "#")) {
            v.push_back(l);
        }
    }
    return v;
}

std::string last_line(const std::string& out) {
    const auto l = lines_of(out);
    return l.empty() ? std::string() : l.back();
}

std::string verdict_summary(size_t verified, size_t failed, size_t unsigned_frames) {
    return fmt::format("{} verified, {} failed, {} unsigned", verified, failed, unsigned_frames);
}

/// Checks the output of a verify run: one verdict line per PTP frame and
/// the summary as the last line.
void expect_verify_output(const run_result& r, size_t verified, size_t failed, size_t unsigned_frames) {
    EXPECT_EQ(verdict_lines(r.out).size(), capture_ptp_frames) << r.out;
    EXPECT_EQ(count_lines_with(r.out, ": verified"), verified);
    EXPECT_EQ(count_lines_with(r.out, ": FAILED"), failed);
    EXPECT_EQ(count_lines_with(r.out, ": unsigned"), unsigned_frames);
    EXPECT_EQ(last_line(r.out), verdict_summary(verified, failed, unsigned_frames));
    ASSERT_FALSE(r.out.empty());
    EXPECT_EQ(r.out.back(), '\n');
}

using test::packet;
using test::read_packets;
using test::write_packets;

/// Runs ptpsecctl; every test gets its own temp directory for outputs.
class ptpsecctl_pcap : public testing::Test {
protected:
    void SetUp() override {
        if (std::getenv("PTPSECCTL") == nullptr) {
            GTEST_FAIL() << "PTPSECCTL is not set: run these tests with meson test";
        }
    }

    run_result run(const std::vector<std::string>& args) { return run_ctl(_dir, args); }

    /// `pcap strip` of the capture into the temp dir.
    std::string stripped_capture() {
        std::string out = _dir.file("stripped.pcap");
        const auto r = run({"pcap", "strip", capture, out});
        EXPECT_EQ(r.exit_code, exit_ok) << r.err;
        EXPECT_EQ(r.out, fmt::format("210 frames, 206 PTP, 206 stripped, 0 not stripped -> {}\n", out));
        return out;
    }

    temp_dir _dir;
};

TEST_F(ptpsecctl_pcap, version_says_which) {
    const auto r = run({"--version"});
    EXPECT_EQ(r.exit_code, exit_ok) << r.err;
    EXPECT_TRUE(r.out.starts_with("ptpsecctl 0.")) << r.out;
}

TEST_F(ptpsecctl_pcap, verify_linuxptp_capture) {
    const auto r = run({"pcap", "verify", "--sa-file", shipped_sa_file, capture});
    EXPECT_EQ(r.exit_code, exit_ok) << r.err;
    EXPECT_EQ(r.err, "");
    expect_verify_output(r, capture_ptp_frames, 0, 0);
    const auto v = verdict_lines(r.out);
    ASSERT_FALSE(v.empty());
    EXPECT_EQ(v.front(), "#1 L2 Announce seq 0 src 22d81afffebc61ed-1 spp 2 key 1: verified");
    // Frame 5 is ICMPv6: not PTP, no verdict line.
    EXPECT_TRUE(starts_with(v[4], "#6 ")) << v[4];
}

TEST_F(ptpsecctl_pcap, verify_with_openssl_engine_gives_the_same) {
    const auto a = run({"pcap", "verify", "--sa-file", shipped_sa_file, capture});
    const auto b = run({"pcap", "--engine", "openssl", "verify", "--sa-file", shipped_sa_file, capture});
    const auto c = run({"pcap", "verify", "--engine", "openssl", "--sa-file", shipped_sa_file, capture});
    EXPECT_EQ(b.exit_code, exit_ok) << b.err;
    EXPECT_EQ(c.exit_code, exit_ok) << c.err;
    expect_verify_output(b, capture_ptp_frames, 0, 0);
    EXPECT_EQ(a.out, b.out);
    EXPECT_EQ(a.out, c.out);
}

TEST_F(ptpsecctl_pcap, verify_pcapng_copy) {
    const auto r = run({"pcap", "verify", "--sa-file", shipped_sa_file, capture_ng});
    EXPECT_EQ(r.exit_code, exit_ok) << r.err;
    expect_verify_output(r, capture_ptp_frames, 0, 0);
    const auto pcap_run = run({"pcap", "verify", "--sa-file", shipped_sa_file, capture});
    EXPECT_EQ(r.out, pcap_run.out);
}

TEST_F(ptpsecctl_pcap, strip_then_sign_restores_the_capture_byte_for_byte) {
    const std::string stripped = stripped_capture();
    const std::string resigned = _dir.file("resigned.pcap");
    const auto r =
        run({"pcap", "sign", "--sa-file", shipped_sa_file, "--spp", "2", "--key-id", "1", stripped, resigned});
    EXPECT_EQ(r.exit_code, exit_ok) << r.err;
    EXPECT_EQ(r.out, fmt::format("210 frames, 206 PTP, 206 signed, 0 not signed -> {}\n", resigned));
    const std::string original = read_file(capture);
    ASSERT_EQ(original.size(), 22208u);
    const std::string again = read_file(resigned);
    EXPECT_EQ(again.size(), original.size());
    EXPECT_TRUE(again == original) << "re-signed capture differs from the linuxptp capture";
    // The stripped capture is a different file: the TLVs really went.
    EXPECT_LT(read_file(stripped).size(), original.size());
}

TEST_F(ptpsecctl_pcap, nanosecond_capture_keeps_its_time_stamps) {
    // The capture again, as a nanosecond pcap with sub-microsecond digits
    // that a microsecond writer would lose.
    auto pkts = read_packets(capture);
    const std::string nano = _dir.file("nano.pcap");
    {
        pcap_ptr dead(pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 262144, PCAP_TSTAMP_PRECISION_NANO));
        dumper_ptr d(pcap_dump_open(dead.get(), nano.c_str()));
        ASSERT_TRUE(d) << pcap_geterr(dead.get());
        for (auto& p : pkts) {
            p.hdr.ts.tv_usec = p.hdr.ts.tv_usec * 1000 + 123;
            pcap_dump(reinterpret_cast<u_char*>(d.get()), &p.hdr, p.data.data());
        }
    }
    const std::string stripped = _dir.file("nano-stripped.pcap");
    const std::string resigned = _dir.file("nano-resigned.pcap");
    EXPECT_EQ(run({"pcap", "strip", nano, stripped}).exit_code, exit_ok);
    const auto r =
        run({"pcap", "sign", "--sa-file", shipped_sa_file, "--spp", "2", "--key-id", "1", stripped, resigned});
    EXPECT_EQ(r.exit_code, exit_ok) << r.err;
    EXPECT_TRUE(read_file(resigned) == read_file(nano)) << "nanosecond time stamps or frames changed";
}

TEST_F(ptpsecctl_pcap, stripped_capture_is_all_unsigned) {
    const std::string stripped = stripped_capture();
    const auto r = run({"pcap", "verify", "--sa-file", shipped_sa_file, stripped});
    EXPECT_EQ(r.exit_code, exit_ok) << r.err;
    expect_verify_output(r, 0, 0, capture_ptp_frames);
    // Nothing left to strip the second time; the file does not change.
    const std::string twice = _dir.file("twice.pcap");
    const auto s = run({"pcap", "strip", stripped, twice});
    EXPECT_EQ(s.exit_code, exit_ok) << s.err;
    EXPECT_EQ(s.out, fmt::format("210 frames, 206 PTP, 0 stripped, 0 not stripped, 206 without an AUTHENTICATION "
                                 "TLV (copied unchanged) -> {}\n",
                                 twice));
    EXPECT_TRUE(read_file(twice) == read_file(stripped));
}

TEST_F(ptpsecctl_pcap, signing_a_signed_capture_changes_nothing) {
    const std::string out = _dir.file("out.pcap");
    const auto r = run({"pcap", "sign", "--sa-file", shipped_sa_file, "--spp", "2", "--key-id", "2", capture, out});
    EXPECT_EQ(r.exit_code, exit_ok) << r.err;
    EXPECT_EQ(
        r.out,
        fmt::format("210 frames, 206 PTP, 0 signed, 0 not signed, 206 signed already (copied unchanged) -> {}\n", out));
    EXPECT_TRUE(read_file(out) == read_file(capture));
}

/// Flips one ICV octet of frame `frame_no` (1-based) and writes the capture
/// with libpcap.
std::string tampered_capture(const temp_dir& dir, size_t frame_no) {
    auto pkts = read_packets(capture);
    EXPECT_EQ(pkts.size(), capture_frames);
    packet& p = pkts.at(frame_no - 1);
    ptp::frame_info fi;
    ptp::message_view mv;
    EXPECT_EQ(ptp::classify_frame(p.data.data(), p.data.size(), fi), ptp::error::none);
    EXPECT_EQ(ptp::parse_message(p.data.data() + fi.ptp_offset, fi.ptp_avail, mv), ptp::error::none);
    EXPECT_TRUE(mv.has_auth);
    p.data.at(fi.ptp_offset + mv.auth.icv_offset + 3) ^= 0x01;
    std::string path = dir.file(fmt::format("tampered-{}.pcap", frame_no));
    write_packets(path, DLT_EN10MB, pkts);
    return path;
}

TEST_F(ptpsecctl_pcap, tampered_icv_fails_and_names_the_frame) {
    const std::string bad = tampered_capture(_dir, 10);
    for (const std::string engine : {"ipsec-mb", "openssl"}) {
        SCOPED_TRACE(engine);
        const auto r = run({"pcap", "--engine", engine, "verify", "--sa-file", shipped_sa_file, bad});
        EXPECT_EQ(r.exit_code, exit_failed) << r.err;
        expect_verify_output(r, capture_ptp_frames - 1, 1, 0);
        std::vector<std::string> failed;
        for (const auto& l : verdict_lines(r.out)) {
            if (contains(l, "FAILED")) {
                failed.push_back(l);
            }
        }
        ASSERT_EQ(failed.size(), 1u) << r.out;
        EXPECT_TRUE(starts_with(failed[0], "#10 L2 ")) << failed[0];
        EXPECT_TRUE(contains(failed[0], "spp 2 key 1: FAILED bad_icv")) << failed[0];
    }
}

TEST_F(ptpsecctl_pcap, tampered_message_body_fails) {
    // A changed field under the ICV (the sequenceId of frame 1) must fail too.
    auto pkts = read_packets(capture);
    pkts.at(0).data.at(14 + 30) ^= 0x80;
    const std::string bad = _dir.file("seq.pcap");
    write_packets(bad, DLT_EN10MB, pkts);
    const auto r = run({"pcap", "verify", "--sa-file", shipped_sa_file, bad});
    EXPECT_EQ(r.exit_code, exit_failed);
    EXPECT_EQ(last_line(r.out), verdict_summary(205, 1, 0));
    EXPECT_TRUE(starts_with(verdict_lines(r.out).at(0), "#1 L2 Announce seq 32768")) << r.out;
}

// A test SA file with every key type, and an allow_mutable SA.
constexpr std::string_view all_types_sa_file =
    "# every key type ptpsec knows\n"
    "[security_association]\n"
    "spp 7\n"
    "seqid_window 3\n"
    "1 SHA256-128 32 HEX:F8ADC6B8B8E9AA709106BA42481EC9E29607334DE2C3C737A11A12931DB27F8C\n"
    "2 SHA256 ASCII:a-longer-hmac-key-of-any-length\n"
    "3 AES128 HEX:FAF48EBA01E7C5966A76CB787AED4E7B\n"
    "4 AES256 B64:PKTF9VQz94qPaoAzW4eE3JtFoQ8Ov1OTQSojalWyMbs=\n"
    "5 AES128-GMAC HEX:000102030405060708090a0b0c0d0e0f\n"
    "6 AES192-GMAC HEX:000102030405060708090a0b0c0d0e0f1011121314151617\n"
    "7 AES256-GMAC 32 HEX:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
    "[security_association]\n"
    "spp 9\n"
    "allow_mutable 1\n"
    "1 SHA256-128 ASCII:sixteenbyteskey!\n"
    "2 AES256-GMAC HEX:1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100\n";

TEST_F(ptpsecctl_pcap, sign_with_every_key_type_then_verify) {
    const std::string sa = _dir.file("all.conf");
    write_file(sa, all_types_sa_file);
    const std::string stripped = stripped_capture();
    struct key_ref {
        int spp;
        int key_id;
    };
    const std::vector<key_ref> keys = {{7, 1}, {7, 2}, {7, 3}, {7, 4}, {7, 5}, {7, 6}, {7, 7}, {9, 1}, {9, 2}};
    for (const auto& k : keys) {
        SCOPED_TRACE(fmt::format("spp {} key {}", k.spp, k.key_id));
        const std::string out = _dir.file(fmt::format("signed-{}-{}.pcap", k.spp, k.key_id));
        const auto s = run({"pcap", "sign", "--sa-file", sa, "--spp", std::to_string(k.spp), "--key-id",
                            std::to_string(k.key_id), stripped, out});
        EXPECT_EQ(s.exit_code, exit_ok) << s.err;
        EXPECT_EQ(s.out, fmt::format("210 frames, 206 PTP, 206 signed, 0 not signed -> {}\n", out));
        // Signed by intel-ipsec-mb, checked by both engines.
        for (const std::string engine : {"ipsec-mb", "openssl"}) {
            SCOPED_TRACE(engine);
            const auto v = run({"pcap", "verify", "--engine", engine, "--sa-file", sa, out});
            EXPECT_EQ(v.exit_code, exit_ok) << v.err << v.out;
            expect_verify_output(v, capture_ptp_frames, 0, 0);
            EXPECT_EQ(count_lines_with(v.out, fmt::format(" spp {} key {}: verified", k.spp, k.key_id)),
                      capture_ptp_frames);
        }
    }
}

TEST_F(ptpsecctl_pcap, gmac_signed_frames_show_their_iv) {
    const std::string sa = _dir.file("all.conf");
    write_file(sa, all_types_sa_file);
    const std::string stripped = stripped_capture();
    const std::string out = _dir.file("gmac.pcap");
    ASSERT_EQ(run({"pcap", "sign", "--sa-file", sa, "--spp", "7", "--key-id", "5", stripped, out}).exit_code, exit_ok);
    const auto r = run({"pcap", "show", out});
    EXPECT_EQ(r.exit_code, exit_ok) << r.err;
    // 16.14.3 with secParamIndicator bit 1: the 8-octet sequenceNo carries the IV.
    EXPECT_EQ(count_lines_with(r.out, "spp 7 secParamIndicator 0x02 keyID 5 sequenceNo "), capture_ptp_frames);
    EXPECT_EQ(count_lines_with(r.out, "TLV AUTHENTICATION (0x8009) length 30:"), capture_ptp_frames);
}

TEST_F(ptpsecctl_pcap, frames_signed_with_another_sa_fail_against_sa_conf) {
    const std::string sa = _dir.file("all.conf");
    write_file(sa, all_types_sa_file);
    const std::string stripped = stripped_capture();
    const std::string out = _dir.file("spp7.pcap");
    ASSERT_EQ(run({"pcap", "sign", "--sa-file", sa, "--spp", "7", "--key-id", "1", stripped, out}).exit_code, exit_ok);
    const auto r = run({"pcap", "verify", "--sa-file", shipped_sa_file, out});
    EXPECT_EQ(r.exit_code, exit_failed);
    expect_verify_output(r, 0, capture_ptp_frames, 0);
    EXPECT_EQ(count_lines_with(r.out, ": FAILED unknown_spp"), capture_ptp_frames);
}

TEST_F(ptpsecctl_pcap, sign_with_unknown_spp_or_key_id) {
    const std::string stripped = stripped_capture();
    const std::string out = _dir.file("never.pcap");
    const auto a = run({"pcap", "sign", "--sa-file", shipped_sa_file, "--spp", "3", "--key-id", "1", stripped, out});
    EXPECT_EQ(a.exit_code, exit_error);
    EXPECT_EQ(a.out, "");
    EXPECT_TRUE(contains(a.err, "no security association with spp 3")) << a.err;
    EXPECT_TRUE(contains(a.err, shipped_sa_file)) << a.err;

    const auto b = run({"pcap", "sign", "--sa-file", shipped_sa_file, "--spp", "2", "--key-id", "6", stripped, out});
    EXPECT_EQ(b.exit_code, exit_error);
    EXPECT_TRUE(contains(b.err, "spp 2 has no key with id 6")) << b.err;

    // No output file is left behind when nothing could be signed.
    EXPECT_FALSE(fs::exists(out));

    const auto c = run({"pcap", "sign", "--sa-file", shipped_sa_file, "--spp", "256", "--key-id", "1", stripped, out});
    EXPECT_EQ(c.exit_code, exit_error);
    EXPECT_TRUE(contains(c.err, "--spp")) << c.err;
}

TEST_F(ptpsecctl_pcap, bad_sa_file_names_file_and_line) {
    const std::string sa = _dir.file("bad.conf");
    write_file(sa, "[security_association]\nspp 2\n1 SHA256-128 HEX:abc\n");
    const std::string out = _dir.file("never.pcap");
    const std::vector<std::vector<std::string>> cmds = {
        {"pcap", "verify", "--sa-file", sa, capture},
        {"pcap", "sign", "--sa-file", sa, "--spp", "2", "--key-id", "1", capture, out},
    };
    for (const auto& cmd : cmds) {
        SCOPED_TRACE(cmd[1]);
        const auto r = run(cmd);
        EXPECT_EQ(r.exit_code, exit_error);
        EXPECT_EQ(r.out, "");
        EXPECT_TRUE(starts_with(r.err, fmt::format("ptpsecctl: {}:3: hex key has an odd number", sa))) << r.err;
    }
    EXPECT_FALSE(fs::exists(out));

    const auto missing = run({"pcap", "verify", "--sa-file", _dir.file("missing.conf"), capture});
    EXPECT_EQ(missing.exit_code, exit_error);
    EXPECT_TRUE(contains(missing.err, _dir.file("missing.conf") + ": cannot open")) << missing.err;
}

/// show, verify, sign and strip of one input (the last two writing `out`).
std::vector<std::vector<std::string>> every_pcap_command(const std::string& in, const std::string& out) {
    return {
        {"pcap", "show", in},
        {"pcap", "verify", "--sa-file", shipped_sa_file, in},
        {"pcap", "sign", "--sa-file", shipped_sa_file, "--spp", "2", "--key-id", "1", in, out},
        {"pcap", "strip", in, out},
    };
}

TEST_F(ptpsecctl_pcap, nonexistent_input_names_the_file) {
    const std::string in = _dir.file("no-such-capture.pcap");
    const std::string out = _dir.file("never.pcap");
    const auto cmds = every_pcap_command(in, out);
    for (const auto& cmd : cmds) {
        SCOPED_TRACE(cmd[1]);
        const auto r = run(cmd);
        EXPECT_EQ(r.exit_code, exit_error);
        EXPECT_EQ(r.out, "");
        EXPECT_TRUE(starts_with(r.err, "ptpsecctl: " + in + ":")) << r.err;
        EXPECT_TRUE(contains(r.err, "No such file")) << r.err;
        // The path once, not twice (libpcap's message already names it).
        EXPECT_EQ(r.err.find(in), r.err.rfind(in)) << r.err;
    }
    EXPECT_FALSE(fs::exists(out));
}

TEST_F(ptpsecctl_pcap, input_that_is_not_a_capture) {
    const std::string in = _dir.file("text.pcap");
    write_file(in, "this is not a capture file, just some text\n");
    const auto r = run({"pcap", "show", in});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_TRUE(starts_with(r.err, "ptpsecctl: " + in + ":")) << r.err;
}

TEST_F(ptpsecctl_pcap, unwritable_output_names_the_file) {
    const std::string out = _dir.file("no-such-dir/out.pcap");
    const auto r = run({"pcap", "strip", capture, out});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_TRUE(starts_with(r.err, "ptpsecctl: " + out + ":")) << r.err;
}

TEST_F(ptpsecctl_pcap, non_ethernet_link_type_is_refused) {
    // One raw IPv4 packet (DLT_RAW): no Ethernet header to find PTP behind.
    packet p{};
    p.hdr.caplen = 28;
    p.hdr.len = 28;
    p.data.assign(28, 0);
    p.data[0] = 0x45;
    const std::string in = _dir.file("raw.pcap");
    write_packets(in, DLT_RAW, {p});
    const std::string out = _dir.file("never.pcap");
    const auto cmds = every_pcap_command(in, out);
    for (const auto& cmd : cmds) {
        SCOPED_TRACE(cmd[1]);
        const auto r = run(cmd);
        EXPECT_EQ(r.exit_code, exit_error);
        EXPECT_EQ(r.out, "");
        EXPECT_EQ(r.err, fmt::format("ptpsecctl: {}: link type RAW is not Ethernet; only Ethernet captures are "
                                     "supported\n",
                                     in));
    }
    EXPECT_FALSE(fs::exists(out));
}

TEST_F(ptpsecctl_pcap, malformed_ptp_frames_are_named_and_counted_by_every_command) {
    // Frame 1 claims PTP version 3; frame 2 ends inside its header. Both are
    // PTP frames (ethertype 0x88F7) that no command may change.
    auto pkts = read_packets(capture);
    pkts.at(0).data.at(14 + 1) = 0x03;
    pkts.at(1).data.resize(14 + 20);
    pkts.at(1).hdr.caplen = 14 + 20;
    pkts.at(1).hdr.len = 14 + 20;
    const std::string bad = _dir.file("malformed.pcap");
    write_packets(bad, DLT_EN10MB, pkts);

    const auto shown = run({"pcap", "show", bad});
    EXPECT_EQ(shown.exit_code, exit_ok) << shown.err;
    EXPECT_TRUE(starts_with(shown.out, "#1 L2 malformed PTP message: ")) << shown.out.substr(0, 300);
    EXPECT_EQ(count_lines_with(shown.out, "malformed"), 2U) << shown.out.substr(0, 600);
    EXPECT_EQ(count_lines_with(shown.out, "TLV AUTHENTICATION"), capture_ptp_frames - 2);

    const auto verified = run({"pcap", "verify", "--sa-file", shipped_sa_file, bad});
    EXPECT_EQ(verified.exit_code, exit_failed) << verified.err;
    EXPECT_EQ(last_line(verified.out), verdict_summary(capture_ptp_frames - 2, 2, 0));
    const auto v = verdict_lines(verified.out);
    ASSERT_GE(v.size(), 2U);
    EXPECT_TRUE(starts_with(v[0], "#1: FAILED malformed: ")) << v[0];
    EXPECT_TRUE(starts_with(v[1], "#2: FAILED malformed: ")) << v[1];

    const std::string stripped = _dir.file("stripped.pcap");
    const auto strip = run({"pcap", "strip", bad, stripped});
    EXPECT_EQ(strip.exit_code, exit_failed) << strip.err;
    EXPECT_NE(strip.out.find("210 frames, 206 PTP, 204 stripped, 2 not stripped"), std::string::npos) << strip.out;
    EXPECT_EQ(count_lines_with(strip.err, ": not stripped: "), 2U) << strip.err;
    // The two go out as they came.
    const auto out_pkts = read_packets(stripped);
    ASSERT_EQ(out_pkts.size(), pkts.size());
    EXPECT_EQ(out_pkts[0].data, pkts[0].data);
    EXPECT_EQ(out_pkts[1].data, pkts[1].data);

    const std::string resigned = _dir.file("resigned.pcap");
    const auto sign =
        run({"pcap", "sign", "--sa-file", shipped_sa_file, "--spp", "2", "--key-id", "1", stripped, resigned});
    EXPECT_EQ(sign.exit_code, exit_failed) << sign.err;
    EXPECT_NE(sign.out.find("210 frames, 206 PTP, 204 signed, 2 not signed"), std::string::npos) << sign.out;
    EXPECT_EQ(count_lines_with(sign.err, ": not signed: malformed ("), 2U) << sign.err;
    const auto signed_pkts = read_packets(resigned);
    ASSERT_EQ(signed_pkts.size(), pkts.size());
    EXPECT_EQ(signed_pkts[0].data, pkts[0].data);
    EXPECT_EQ(signed_pkts[1].data, pkts[1].data);
}

TEST_F(ptpsecctl_pcap, udp_and_vlan_captures_sign_verify_and_strip_back) {
    // The capture's 206 unsigned messages again, over UDPv4 behind one VLAN
    // tag and over UDPv6 behind two, alternately: sign, verify, strip
    // through the command line. Every signed frame's lengths and checksums
    // are checked by the tests' own computation, and strip gives back the
    // unsigned capture octet for octet.
    const auto plain = read_packets(stripped_capture());
    std::array<test::frame_spec, 2> specs{};
    specs[0].tp = ptp::transport::udp_ipv4;
    specs[0].vlan_tpids = {0x8100};
    specs[1].tp = ptp::transport::udp_ipv6;
    specs[1].vlan_tpids = {0x88a8, 0x8100};
    std::vector<packet> udp;
    std::vector<size_t> spec_of;
    for (const auto& p : plain) {
        ptp::frame_info fi;
        if (ptp::classify_frame(p.data.data(), static_cast<uint32_t>(p.data.size()), fi) != ptp::error::none) {
            continue;
        }
        const uint8_t* msg = p.data.data() + fi.ptp_offset;
        const size_t ml = load_be16(msg + 2);
        packet q = p;
        spec_of.push_back(udp.size() % 2);
        q.data = test::make_frame(std::span<const uint8_t>(msg, ml), specs[spec_of.back()]);
        q.hdr.caplen = static_cast<uint32_t>(q.data.size());
        q.hdr.len = q.hdr.caplen;
        udp.push_back(std::move(q));
    }
    ASSERT_EQ(udp.size(), capture_ptp_frames);
    const std::string in = _dir.file("udp.pcap");
    write_packets(in, DLT_EN10MB, udp);

    const std::string signed_path = _dir.file("udp-signed.pcap");
    const auto sign =
        run({"pcap", "sign", "--sa-file", shipped_sa_file, "--spp", "2", "--key-id", "1", in, signed_path});
    ASSERT_EQ(sign.exit_code, exit_ok) << sign.err;
    EXPECT_EQ(sign.out, fmt::format("206 frames, 206 PTP, 206 signed, 0 not signed -> {}\n", signed_path));
    const auto signed_pkts = read_packets(signed_path);
    ASSERT_EQ(signed_pkts.size(), udp.size());
    for (size_t i = 0; i < signed_pkts.size(); ++i) {
        EXPECT_GT(signed_pkts[i].data.size(), udp[i].data.size()) << "frame " << i + 1;
        EXPECT_TRUE(test::frame_consistent(signed_pkts[i].data, specs[spec_of[i]])) << "frame " << i + 1;
    }

    const auto verified = run({"pcap", "verify", "--sa-file", shipped_sa_file, signed_path});
    EXPECT_EQ(verified.exit_code, exit_ok) << verified.err;
    EXPECT_EQ(last_line(verified.out), verdict_summary(capture_ptp_frames, 0, 0));
    EXPECT_EQ(count_lines_with(verified.out, " UDPv4 "), capture_ptp_frames / 2);
    EXPECT_EQ(count_lines_with(verified.out, " UDPv6 "), capture_ptp_frames / 2);

    const std::string back = _dir.file("udp-back.pcap");
    const auto strip = run({"pcap", "strip", signed_path, back});
    ASSERT_EQ(strip.exit_code, exit_ok) << strip.err;
    EXPECT_TRUE(read_file(back) == read_file(in)) << "strip did not give back the unsigned UDP capture";
}

TEST_F(ptpsecctl_pcap, show_decodes_the_first_announce) {
    const auto r = run({"pcap", "show", capture});
    EXPECT_EQ(r.exit_code, exit_ok) << r.err;
    const std::string first = r.out.substr(0, r.out.find("\n#2 "));
    EXPECT_TRUE(starts_with(first, "#1 L2 Announce seq 0 ")) << first;
    for (const std::string_view w : {"Announce", "seq 0", "spp 2", "keyID 1", "47cbd76143d147a625772ebebf5cb48f"}) {
        EXPECT_TRUE(contains(first, w)) << "'" << w << "' not in:\n" << first;
    }
    EXPECT_TRUE(contains(first, "TLV AUTHENTICATION (0x8009) length 22: spp 2 secParamIndicator 0x00 keyID 1 ICV "
                                "47cbd76143d147a625772ebebf5cb48f"))
        << first;
    EXPECT_EQ(count_lines_with(r.out, "not PTP"), capture_frames - capture_ptp_frames);
    EXPECT_EQ(count_lines_with(r.out, "TLV AUTHENTICATION"), capture_ptp_frames);
}

// `ptpsecctl sa push`: what it refuses before it looks for a data plane.
using ptpsecctl_sa_push = ptpsecctl_pcap;

constexpr std::string_view no_dataplane = "no ptpsec-dataplane running with file prefix";

std::string absent_prefix() {
    return fmt::format("ptpsec-ctl-none-{}", ::getpid());
}

TEST_F(ptpsecctl_sa_push, lifetime_is_accepted_in_seconds) {
    const std::string sa = _dir.file("sa.conf");
    write_file(sa, "[security_association]\nspp 2\n7 SHA256-128 ASCII:a-key-for-rotation\n");
    for (const char* seconds : {"3600", "0", "33523200", "0xE10"}) {
        // Parsed, so it goes on to the data plane, of which there is none.
        const auto r = run({"sa", "push", "--sa-file", sa, "--lifetime", seconds, "--file-prefix", absent_prefix()});
        EXPECT_EQ(r.exit_code, exit_error) << seconds;
        EXPECT_TRUE(contains(r.err, no_dataplane)) << seconds << ": " << r.err;
    }
}

TEST_F(ptpsecctl_sa_push, bad_lifetime_is_refused_naming_the_option) {
    const std::string sa = _dir.file("sa.conf");
    write_file(sa, "[security_association]\nspp 2\n7 SHA256-128 ASCII:a-key-for-rotation\n");
    // Negative, beyond 388 days (seeds/001 §2.5.1), garbage, fractional,
    // octal-looking (which CLI11 alone would read as 8).
    const std::pair<const char*, const char*> refused[] = {
        {"-5", "--lifetime: -5 is not a whole number of seconds from 0 to 33523200"},
        {"33523201", "--lifetime: 33523201 is not a whole number of seconds from 0 to 33523200"},
        {"0xFFFFFFFF", "--lifetime: 0xFFFFFFFF is not a whole number of seconds from 0 to 33523200"},
        {"soon", "--lifetime: soon is not a whole number (decimal digits, or hex digits after 0x)"},
        {"1.5", "--lifetime: 1.5 is not a whole number"},
        {"010", "--lifetime: 010: write the number without leading zeros (they would read as octal)"},
    };
    for (const auto& [seconds, says] : refused) {
        const auto r = run({"sa", "push", "--sa-file", sa, "--lifetime", seconds, "--file-prefix", absent_prefix()});
        EXPECT_EQ(r.exit_code, exit_error) << seconds;
        EXPECT_TRUE(contains(r.err, says)) << seconds << ": " << r.err;
        EXPECT_FALSE(contains(r.err, no_dataplane)) << seconds << ": refused before sending: " << r.err;
    }
}

TEST_F(ptpsecctl_sa_push, a_key_longer_than_the_record_is_refused_before_sending) {
    const std::string sa = _dir.file("long.conf");
    write_file(sa, "[security_association]\nspp 3\n7 SHA256 ASCII:" + std::string(65, 'k') + "\n");
    const auto r = run({"sa", "push", "--sa-file", sa, "--file-prefix", absent_prefix()});
    EXPECT_EQ(r.exit_code, exit_error);
    EXPECT_TRUE(contains(r.err, "long.conf:3: spp 3 key 7: the key is 65 octets; an SA update carries at most 64 "
                                "octets"))
        << r.err;
    EXPECT_FALSE(contains(r.err, no_dataplane)) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST_F(ptpsecctl_pcap, usage_errors_exit_2) {
    EXPECT_EQ(run({}).exit_code, exit_error);
    EXPECT_EQ(run({"pcap"}).exit_code, exit_error);
    EXPECT_EQ(run({"pcap", "verify", capture}).exit_code, exit_error); // --sa-file is required
    const auto e = run({"pcap", "--engine", "nosuch", "verify", "--sa-file", shipped_sa_file, capture});
    EXPECT_EQ(e.exit_code, exit_error);
    EXPECT_TRUE(contains(e.err, "nosuch")) << e.err;
    EXPECT_EQ(run({"--help"}).exit_code, exit_ok);
}

// `ptpsecctl status|groups|grantors` without a ptpsec-controld to ask
// (tests/control/controld_test.cpp asks a running one).
using ptpsecctl_controld = ptpsecctl_pcap;

TEST_F(ptpsecctl_controld, no_daemon_on_the_socket_exits_2_and_says_what_to_check) {
    const std::string missing = _dir.file("controld.sock");
    // A socket file with nothing listening on it, as a killed daemon leaves.
    const std::string stale = _dir.file("stale.sock");
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, stale.c_str(), sizeof(a.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
    ::close(fd);
    for (const std::string& path : {missing, stale}) {
        for (const char* command : {"status", "groups"}) {
            for (const bool json : {false, true}) {
                std::vector<std::string> args{command, "--controld-socket", path};
                if (json) {
                    args.emplace_back("--json");
                }
                const auto r = run(args);
                EXPECT_EQ(r.exit_code, exit_error) << command << " " << path;
                EXPECT_EQ(r.err, fmt::format("ptpsecctl: no ptpsec-controld answers on {}: is it running, and is "
                                             "[admin] socket in its configuration the same?\n",
                                             path))
                    << command;
                EXPECT_TRUE(r.out.empty()) << r.out;
            }
        }
    }
    const auto too_long = run({"status", "--controld-socket", "/" + std::string(120, 'x')});
    EXPECT_EQ(too_long.exit_code, exit_error);
    EXPECT_TRUE(contains(too_long.err, "a Unix socket path has 1 to 107 characters")) << too_long.err;
}

TEST_F(ptpsecctl_controld, every_controld_command_is_listed_and_asks_the_socket) {
    const std::string missing = _dir.file("controld.sock");
    const auto r = run({"grantors", "--controld-socket", missing});
    EXPECT_EQ(r.exit_code, exit_error) << r.err;
    EXPECT_TRUE(contains(r.err, "no ptpsec-controld answers on")) << r.err;
    // The data plane's counters keep their name.
    const auto help = run({"--help"});
    EXPECT_EQ(help.exit_code, exit_ok);
    for (const char* w : {"stats", "status", "groups", "grantors", "rotate", "revoke"}) {
        EXPECT_TRUE(contains(help.out, w)) << w << ": " << help.out;
    }
    EXPECT_TRUE(contains(run({"status", "--help"}).out, "/run/ptpsec/controld.sock"));
    // rotate and sa list --controld ask the same socket, and say so when nothing answers.
    const std::vector<std::vector<std::string>> asking = {{"rotate", "plant-a", "--controld-socket", missing},
                                                          {"sa", "list", "--controld", "--controld-socket", missing}};
    for (const auto& args : asking) {
        const auto none = run(args);
        EXPECT_EQ(none.exit_code, exit_error) << args[0];
        EXPECT_TRUE(contains(none.err, "no ptpsec-controld answers on")) << none.err;
    }
    const auto too_soon = run({"rotate", "plant-a", "--in", "0", "--controld-socket", missing});
    EXPECT_EQ(too_soon.exit_code, exit_error);
    EXPECT_TRUE(contains(too_soon.err, "--in")) << too_soon.err;
}

} // namespace
} // namespace ptpsec
