// Tickets on the wire, data-plane side (seeds/001 §6): ptpsec-dataplane
// --tickets on two net_pcap ports hands a ticket-bearing unicast request it
// holds no SA for to the control plane on the exception channel; the test
// plays the control plane: it takes the record, installs the unicast SA on
// the SA channel, waits for the acknowledgement, gives the frame back, and
// the frame comes out verified (and stripped) on the inside port. Frames
// without a ticket, tickets in other messages, frames given back without
// their SA, replays, a full ring and frames too long for a record are
// dropped and counted, never handed over (again).

#include "../dataplane/auth_helpers.h"
#include "../linuxptp_capture.h"
#include "../pcap_files.h"
#include "../process.h"
#include "app_helpers.h"

#include "../control/test_pki.h"

#include <control/node/grantor.h>
#include <control/nts/message.h>
#include <control/sa_client.h>
#include <control/tls/client.h>
#include <dataplane/auth.h>
#include <dataplane/exception_channel.h>
#include <dataplane/sa_channel.h>
#include <dataplane/sa_update.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace ptpsec {
namespace {

using json = nlohmann::json;
using test::bytes;
using test::packet;

constexpr const char* shipped_sa_file = test::linuxptp_sa_file; // SPP 2, keys 1 to 5
constexpr uint16_t inside_port = 0;
constexpr uint16_t outside_port = 1;
/// The unicast SA of the tests: a key ID the SA file does not have in the
/// SA it does have (unknown_key), and an SA it does not have (unknown_spp).
constexpr uint8_t unicast_spp = 2;
constexpr uint32_t unicast_key = 41;
constexpr uint8_t stranger_spp = 9;
constexpr uint32_t stranger_key = 1;
constexpr auto icv_alg = icv::algorithm::hmac_sha256_128;

/// 16.1.4.1 REQUEST_UNICAST_TRANSMISSION: messageType in the upper nibble,
/// logInterMessagePeriod, durationField (here: Announce, 2 s, 300 s).
bytes request_unicast_tlv() {
    bytes v(6, 0);
    v[0] = static_cast<uint8_t>(static_cast<uint8_t>(ptp::message_type::announce) << 4);
    v[1] = 1;
    store_be32(v.data() + 2, 300);
    return test::make_tlv(ptp::tlv_request_unicast_transmission, v);
}

/// The SAs the requesters sign with (the data plane gets the first from the
/// test, as its control plane, and never the second).
std::vector<sa_config> requester_sas() {
    return {test::make_sa(unicast_spp, {test::make_key(unicast_key, icv_alg, 0x41)}),
            test::make_sa(stranger_spp, {test::make_key(stranger_key, icv_alg, 0x09)})};
}

struct request_spec {
    ptp::message_type type = ptp::message_type::signaling;
    uint16_t sequence_id = 100;
    uint8_t spp = unicast_spp;
    uint32_t key_id = unicast_key;
    bool ticket = true;
    size_t ticket_len = 80; ///< the ticket's octets: opaque to the data plane
    /// A real ticket (the TICKET TLV's value) and the requester's SA, from a
    /// KE server; otherwise a pattern and requester_sas().
    std::optional<bytes> ticket_value = std::nullopt;
    std::optional<sa_config> sa = std::nullopt;
};

/// A request over UDP/IPv4 as a requester sends it to a grantor: a
/// Signaling message with REQUEST_UNICAST_TRANSMISSION and the TICKET TLV,
/// signed (the AUTHENTICATION TLV appended last) by the data plane's own
/// signer.
bytes request(const request_spec& s) {
    std::vector<bytes> tlvs;
    if (s.type == ptp::message_type::signaling) {
        tlvs.push_back(request_unicast_tlv());
    }
    if (s.ticket) {
        tlvs.push_back(test::make_tlv(ptp::default_ticket_tlv_type,
                                      s.ticket_value ? *s.ticket_value : test::pattern(s.ticket_len, 0x5C)));
    }
    const bytes msg = test::build(test::sample_header(s.sequence_id), test::sample_body(s.type), tlvs);
    test::frame_spec spec;
    spec.tp = ptp::transport::udp_ipv4;
    test::owned_frame f(test::make_frame(msg, spec), 128);
    icv::ipsecmb_engine eng;
    auto db = test::install(eng, s.sa ? std::vector<sa_config>{*s.sa} : requester_sas());
    if (!db) {
        return {};
    }
    icv::gmac_iv_counter iv(1);
    signer sg(eng, *db, iv);
    ptp::frame_buf view = f.view();
    frame_outcome o;
    EXPECT_EQ(sg.sign_burst(&view, 1, s.spp, s.key_id, &o), 1);
    f.len = view.len;
    return f.copy();
}

/// A frame that is not PTP (ARP-sized, ethertype 0x0806).
bytes not_ptp() {
    bytes f(60, 0x11);
    store_be16(f.data() + 12, 0x0806);
    return f;
}

packet as_packet(const bytes& frame) {
    packet p{};
    p.hdr.caplen = p.hdr.len = static_cast<uint32_t>(frame.size());
    p.data = frame;
    return p;
}

/// The frame as a verify-strip path forwards it: without its TLV.
bytes stripped(const bytes& frame) {
    bytes f = frame;
    ptp::frame_buf fb{f.data(), static_cast<uint32_t>(f.size()), static_cast<uint32_t>(f.size())};
    ptp::frame_info fi;
    ptp::message_view mv;
    EXPECT_EQ(ptp::classify_frame(fb.data, fb.len, fi), ptp::error::none);
    EXPECT_EQ(ptp::parse_message(fb.data + fi.ptp_offset, fi.ptp_avail, mv), ptp::error::none);
    EXPECT_EQ(ptp::strip_auth_tlv(fb, fi, mv), ptp::error::none);
    f.resize(fb.len);
    return f;
}

/// Where the data plane runs.
struct lcores {
    std::string eal = "0"; ///< --lcores
    /// Two workers: each port gets two queues, and the frames arrive on the
    /// second (the other worker's), which hands PTP to the PTP worker.
    bool two_workers = false;
};

class ticket_exception : public testing::Test {
protected:
    void SetUp() override {
        _exe = test::program_from_env("PTPSEC_DATAPLANE");
        _ctl = test::program_from_env("PTPSECCTL");
        test::write_packets(_dir.file("empty.pcap"), DLT_EN10MB, {});
    }

    /// Starts the data plane with `outside_in` arriving on the outside port
    /// (replayed without end with `infinite`); what leaves on the inside
    /// port goes to inside_out.pcap (and inside_out_q1.pcap).
    std::unique_ptr<test::background_program> start(const std::vector<bytes>& outside_in,
                                                    const std::vector<std::string>& options, bool infinite = false,
                                                    const lcores& cores = {}) {
        std::vector<packet> pkts;
        pkts.reserve(outside_in.size());
        for (const auto& f : outside_in) {
            pkts.push_back(as_packet(f));
        }
        const std::string in = _dir.file("outside_in.pcap");
        const std::string empty = _dir.file("empty.pcap");
        test::write_packets(in, DLT_EN10MB, pkts);
        std::string inside_vdev = fmt::format("--vdev=net_pcap0,rx_pcap={},tx_pcap={}", empty, inside_out());
        std::string outside_vdev = "--vdev=net_pcap1";
        if (cores.two_workers) {
            inside_vdev += fmt::format(",rx_pcap={},tx_pcap={}", empty, inside_out_q1());
            outside_vdev += fmt::format(",rx_pcap={},tx_pcap=/dev/null", empty);
        }
        outside_vdev += fmt::format(",rx_pcap={},tx_pcap=/dev/null{}", in, infinite ? ",infinite_rx=1" : "");
        auto args =
            dataplane_command(fmt::format("--lcores={}", cores.eal), _prefix, {inside_vdev, outside_vdev},
                              {"--inside", std::to_string(inside_port), "--outside", std::to_string(outside_port),
                               "--inside-policy", "pass", "--sa-file", shipped_sa_file, "--stats-json", stats_file()});
        args.insert(args.end(), options.begin(), options.end());
        return std::make_unique<test::background_program>(_dir, _exe, args);
    }

    /// Waits for the data plane's banner: its channels are there, and it
    /// stops cleanly on SIGINT from then on.
    testing::AssertionResult up(test::background_program& dp) {
        auto r =
            wait_until([&] { return !dp.running() || dp.out().find("  SA updates on /dev/shm") != std::string::npos; },
                       std::chrono::seconds(30), "the banner");
        if (r && !dp.running()) {
            return testing::AssertionFailure() << "ptpsec-dataplane ended";
        }
        return r;
    }

    /// The outside->inside path of /ptpsec/stats, through ptpsecctl.
    json live_path() {
        const auto r =
            test::run_program(_dir, _ctl, {"stats", "--file-prefix", _prefix, "--json"}, std::chrono::seconds(30));
        if (r.exit_code != 0) {
            return json::object();
        }
        return json::parse(r.out).at("paths").at("outside_to_inside");
    }

    uint64_t live(const char* counter) {
        const json p = live_path();
        if (!p.contains(counter)) {
            return 0;
        }
        return p.at(counter).get<uint64_t>();
    }

    /// The outside->inside path of --stats-json, written at exit (its
    /// "drops" hold the reasons that are not zero).
    json exit_path() const {
        const json j = json::parse(test::read_file(stats_file()));
        for (const auto& p : j.at("paths")) {
            if (p.at("name") == "outside->inside") {
                return p;
            }
        }
        ADD_FAILURE() << "no outside->inside path in " << j.dump();
        return json::object();
    }

    std::string inside_out() const { return _dir.file("inside_out.pcap"); }
    std::string inside_out_q1() const { return _dir.file("inside_out_q1.pcap"); }
    std::string stats_file() const { return _dir.file("stats.json"); }

    /// Installs the unicast key as the control plane does after it
    /// decrypted the ticket, and waits for the acknowledgement.
    testing::AssertionResult install_unicast_key() {
        auto updates = sa_client::updates_for({requester_sas()[0]});
        if (!updates) {
            return testing::AssertionFailure() << updates.message();
        }
        auto sent = sa_client::send(_prefix, *updates);
        if (!sent) {
            return testing::AssertionFailure() << sent.message();
        }
        if (sent->size() != 1 || !sent->front().applied) {
            return testing::AssertionFailure()
                   << "add_key not applied: " << (sent->empty() ? "" : sent->front().reason);
        }
        return testing::AssertionSuccess();
    }

    test::temp_dir _dir;
    std::string _exe;
    std::string _ctl;
    // The prefix and its guards before any program: they go after it.
    std::string _prefix = fmt::format("ptpsec-tkt-{}-{}", ::getpid(), ++runs);
    runtime_dir_guard _runtime{_prefix};
    shm_guard _shm{_prefix};
    static inline int runs = 0;
};

struct placement {
    std::string name;
    std::string policy;
    std::string lcores;
    bool two_workers = false;
};

class ticket_exception_round_trip : public ticket_exception, public testing::WithParamInterface<placement> {};

TEST_P(ticket_exception_round_trip, a_request_goes_to_the_control_plane_and_comes_back_verified) {
    const std::string policy = GetParam().policy;
    const bool strip = policy == "verify-strip";
    const bool two_workers = GetParam().two_workers;
    const bytes a = request({});                                            // ticket, unknown key: handed over
    const bytes b = request({.sequence_id = 101, .ticket = false});         // no ticket: unknown_key
    const bytes c = request({.type = ptp::message_type::announce});         // ticket, not Signaling: unknown_key
    const bytes d = request({.spp = stranger_spp, .key_id = stranger_key}); // ticket, unknown SPP: handed over
    const bytes e = not_ptp();
    auto dp = start({a, b, c, d, e}, {"--outside-policy", policy, "--tickets"}, false,
                    lcores{GetParam().lcores, two_workers});
    ASSERT_TRUE(up(*dp)) << dp->err() << dp->out();
    auto attached = exception_channel::attach(_prefix);
    ASSERT_TRUE(attached) << attached.message();
    exception_channel& ch = *attached;
    ASSERT_TRUE(wait_until([&] { return ch.exceptions_waiting() >= 2; }, std::chrono::seconds(10), "two exceptions"));

    // The records hold the frames as they arrived, and where they came from.
    auto ra = std::make_unique<exception_wire::record>();
    auto rd = std::make_unique<exception_wire::record>();
    ASSERT_TRUE(ch.pop_exception(*ra));
    ASSERT_TRUE(ch.pop_exception(*rd));
    EXPECT_EQ(ch.exceptions_waiting(), 0U);
    const uint64_t now = monotonic_now_ns();
    for (const auto& [r, frame, spp, key, why, seq] :
         {std::tuple{ra.get(), &a, unicast_spp, unicast_key, exception_wire::reason::unknown_key, 1},
          std::tuple{rd.get(), &d, stranger_spp, stranger_key, exception_wire::reason::unknown_spp, 2}}) {
        EXPECT_EQ(r->magic, exception_wire::record_magic);
        EXPECT_EQ(r->port, outside_port);
        ASSERT_EQ(r->frame_len, frame->size());
        EXPECT_EQ(bytes(r->frame, r->frame + r->frame_len), *frame);
        EXPECT_TRUE(std::all_of(r->frame + r->frame_len, r->frame + exception_wire::max_frame_len,
                                [](uint8_t o) { return o == 0; }));
        EXPECT_EQ(r->sequence, static_cast<uint64_t>(seq));
        EXPECT_EQ(r->reason, static_cast<uint8_t>(why));
        EXPECT_EQ(r->spp, spp);
        EXPECT_EQ(r->key_id, key);
        EXPECT_GT(r->rx_ns, 0U);
        EXPECT_LE(r->rx_ns, now);
        EXPECT_EQ(r->flags, 0U);
        // Where the message and its TLVs are: UDP/IPv4, then header, body,
        // REQUEST_UNICAST_TRANSMISSION (10 octets), TICKET, AUTHENTICATION.
        EXPECT_EQ(r->ptp_offset, 14 + 20 + 8);
        EXPECT_EQ(r->ticket_offset, r->ptp_offset + 44 + 10);
        EXPECT_EQ(load_be16(r->frame + r->ticket_offset), ptp::default_ticket_tlv_type);
        EXPECT_EQ(r->auth_offset, r->ticket_offset + 4 + 80);
        EXPECT_EQ(load_be16(r->frame + r->auth_offset), ptp::tlv_authentication);
    }

    // The control plane: the SA first, acknowledged; then the frame back.
    // Also the other request, whose SA it does not install, and the first
    // one again (a replay).
    ASSERT_TRUE(install_unicast_key());
    ASSERT_TRUE(ch.push_reinject(*ra));
    ASSERT_TRUE(ch.push_reinject(*rd));
    ASSERT_TRUE(ch.push_reinject(*ra));
    ASSERT_TRUE(wait_until([&] { return live("reinjected") >= 3; }, std::chrono::seconds(10), "three reinjected"));
    // ptpsecctl shows them.
    const auto text = test::run_program(_dir, _ctl, {"stats", "--file-prefix", _prefix}, std::chrono::seconds(30));
    EXPECT_NE(text.out.find("tickets: handed over 2 reinjected 3"), std::string::npos) << text.out;
    const json live_now = live_path();
    EXPECT_EQ(live_now.at("ticket_exceptions"), 2) << live_now.dump();
    EXPECT_EQ(live_now.at("drops").at("exception_full"), 0) << live_now.dump();
    EXPECT_EQ(live_now.at("drops").at("exception_too_long"), 0) << live_now.dump();
    EXPECT_EQ(live_now.at("drops").at("reinject_nombuf"), 0) << live_now.dump();
    // Nothing was handed over again.
    EXPECT_EQ(ch.exceptions_waiting(), 0U);
    ASSERT_EQ(dp->stop(), 0) << dp->err();
    EXPECT_NE(dp->out().find("tickets: handed over 2 reinjected 3"), std::string::npos) << dp->out();

    const json p = exit_path();
    EXPECT_EQ(p.at("rx"), 5);
    EXPECT_EQ(p.at("non_ptp"), 1);
    EXPECT_EQ(p.at("ticket_exceptions"), 2);
    EXPECT_EQ(p.at("reinjected"), 3);
    EXPECT_EQ(p.at("verified"), 1);
    EXPECT_EQ(p.at("stripped"), strip ? 1 : 0);
    EXPECT_EQ(p.at("tx"), 2);
    const json& drops = p.at("drops");
    EXPECT_EQ(drops.at("unknown_key"), 2) << drops.dump(); // b and c
    EXPECT_EQ(drops.at("unknown_spp"), 1) << drops.dump(); // d, given back without its SA
    EXPECT_EQ(drops.at("replayed"), 1) << drops.dump();    // a, the second time
    EXPECT_EQ(drops.size(), 3U) << drops.dump();           // and nothing else
    EXPECT_EQ(p.at("dropped"), 4);
    // Every frame is accounted for: received or given back, it left, was
    // dropped, or was handed over.
    EXPECT_EQ(p.at("rx").get<uint64_t>() + p.at("reinjected").get<uint64_t>(),
              p.at("tx").get<uint64_t>() + p.at("dropped").get<uint64_t>() + p.at("ticket_exceptions").get<uint64_t>());

    std::vector<bytes> out;
    for (const auto& pk : test::read_packets(inside_out())) {
        out.push_back(pk.data);
    }
    if (two_workers) {
        // The PTP worker sent the request on its queue, the other worker
        // what is not PTP on its own.
        ASSERT_EQ(out.size(), 1U);
        const auto q1 = test::read_packets(inside_out_q1());
        ASSERT_EQ(q1.size(), 1U);
        EXPECT_EQ(q1[0].data, e);
        EXPECT_EQ(p.at("handed_off"), 4);
        out.insert(out.begin(), e);
    }
    ASSERT_EQ(out.size(), 2U);
    EXPECT_EQ(out[0], e);
    EXPECT_EQ(out[1], strip ? stripped(a) : a);
    // The channel went with the data plane.
    EXPECT_FALSE(exception_channel::attach(_prefix));
}

// One lcore (it also applies SA updates between bursts); a worker beside the
// main lcore, which applies them on another thread; two workers, the frames
// arriving at the one that hands PTP to the PTP worker.
INSTANTIATE_TEST_SUITE_P(placements, ticket_exception_round_trip,
                         testing::Values(placement{"verify", "verify", "0"},
                                         placement{"verify_strip", "verify-strip", "0"},
                                         placement{"one_worker", "verify-strip", "0@(0-1),1@(0-1)"},
                                         placement{"two_workers", "verify-strip", "0@(0-1),1@(0-1),2@(0-1)", true}),
                         [](const testing::TestParamInfo<placement>& param) { return param.param.name; });

TEST_F(ticket_exception, without_tickets_the_request_is_dropped_as_unknown_and_no_channel_is_made) {
    const bytes a = request({});
    auto dp = start({a}, {"--outside-policy", "verify-strip"});
    ASSERT_TRUE(up(*dp)) << dp->err() << dp->out();
    ASSERT_TRUE(wait_until([&] { return live("rx") >= 1; }, std::chrono::seconds(10), "the request"));
    auto none = exception_channel::attach(_prefix);
    ASSERT_FALSE(none);
    EXPECT_NE(none.message().find("no ptpsec-dataplane with --tickets running"), std::string::npos) << none.message();
    ASSERT_EQ(dp->stop(), 0) << dp->err();
    EXPECT_EQ(dp->out().find("tickets"), std::string::npos) << dp->out();
    const json p = exit_path();
    EXPECT_EQ(p.at("drops").value("unknown_key", 0), 1) << p.dump();
    EXPECT_EQ(p.at("ticket_exceptions"), 0);
    EXPECT_EQ(p.at("tx"), 0);
    EXPECT_TRUE(test::read_packets(inside_out()).empty());
}

TEST_F(ticket_exception, a_full_ring_drops_and_counts_and_a_long_frame_is_never_handed_over) {
    // Six requests for a ring of four, never drained while they arrive,
    // then one too long for a record (a ticket of 1,500 octets).
    std::vector<bytes> in;
    for (uint16_t i = 0; i < 6; ++i) {
        in.push_back(request({.sequence_id = static_cast<uint16_t>(200 + i)}));
    }
    const bytes big = request({.sequence_id = 300, .ticket_len = 1500});
    ASSERT_GT(big.size(), exception_wire::max_frame_len);
    in.push_back(big);
    auto dp = start(in, {"--outside-policy", "verify", "--tickets", "--exception-slots", "4"});
    ASSERT_TRUE(up(*dp)) << dp->err() << dp->out();
    ASSERT_TRUE(wait_until([&] { return live("rx") >= 7; }, std::chrono::seconds(10), "seven frames"));
    auto ch = exception_channel::attach(_prefix);
    ASSERT_TRUE(ch) << ch.message();
    EXPECT_EQ(ch->slots(), 4U);
    EXPECT_EQ(ch->exceptions_waiting(), 4U);
    // The first four, in order, numbered from 1.
    auto r = std::make_unique<exception_wire::record>();
    for (uint64_t seq = 1; seq <= 4; ++seq) {
        ASSERT_TRUE(ch->pop_exception(*r));
        EXPECT_EQ(r->sequence, seq);
        EXPECT_EQ(bytes(r->frame, r->frame + r->frame_len), in[seq - 1]);
    }
    EXPECT_FALSE(ch->pop_exception(*r));
    ASSERT_EQ(dp->stop(), 0) << dp->err();
    const json p = exit_path();
    EXPECT_EQ(p.at("ticket_exceptions"), 4) << p.dump();
    EXPECT_EQ(p.at("drops").value("exception_full", 0), 2) << p.dump();
    EXPECT_EQ(p.at("drops").value("exception_too_long", 0), 1) << p.dump();
    EXPECT_EQ(p.at("drops").value("unknown_key", 0), 0) << p.dump();
    EXPECT_EQ(p.at("dropped"), 3);
    EXPECT_NE(dp->out().find("exception_full 2, exception_too_long 1"), std::string::npos) << dp->out();
}

TEST_F(ticket_exception, a_flood_fills_the_ring_and_once_the_sa_is_in_only_one_copy_passes) {
    // The same request without end on the outside port, as an attacker
    // replaying a captured request would send it: before the SA it fills
    // the ring (the rest counted as exception_full); once the control plane
    // has installed the SA, one copy verifies (from the wire or the record
    // given back, whichever comes first) and every other is a replay.
    const bytes a = request({});
    auto dp = start({a}, {"--outside-policy", "verify-strip", "--tickets", "--exception-slots", "4"}, true);
    ASSERT_TRUE(up(*dp)) << dp->err() << dp->out();
    auto ch = exception_channel::attach(_prefix);
    ASSERT_TRUE(ch) << ch.message();
    ASSERT_TRUE(wait_until(
        [&] { return live_path().value("drops", json::object()).value("exception_full", uint64_t{0}) > 100; },
        std::chrono::seconds(10), "a full ring"));
    EXPECT_EQ(ch->exceptions_waiting(), 4U);
    auto r = std::make_unique<exception_wire::record>();
    ASSERT_TRUE(ch->pop_exception(*r));
    EXPECT_EQ(bytes(r->frame, r->frame + r->frame_len), a);
    ASSERT_TRUE(install_unicast_key());
    ASSERT_TRUE(ch->push_reinject(*r));
    ASSERT_TRUE(wait_until(
        [&] {
            const json p = live_path();
            return p.value("reinjected", uint64_t{0}) == 1 &&
                   p.value("drops", json::object()).value("replayed", uint64_t{0}) > 1000;
        },
        std::chrono::seconds(10), "replays"));
    ASSERT_EQ(dp->stop(), 0) << dp->err();
    const json p = exit_path();
    EXPECT_EQ(p.at("verified"), 1) << p.dump();
    EXPECT_EQ(p.at("reinjected"), 1) << p.dump();
    EXPECT_GE(p.at("ticket_exceptions").get<uint64_t>(), 4U) << p.dump();
    EXPECT_LE(p.at("ticket_exceptions").get<uint64_t>(), 5U) << p.dump();
    EXPECT_GT(p.at("drops").value("exception_full", uint64_t{0}), 100U) << p.dump();
    EXPECT_EQ(p.at("drops").value("unknown_key", 0), 0) << p.dump();
    EXPECT_EQ(p.at("rx").get<uint64_t>() + p.at("reinjected").get<uint64_t>(),
              p.at("tx").get<uint64_t>() + p.at("dropped").get<uint64_t>() + p.at("ticket_exceptions").get<uint64_t>())
        << p.dump();
    const auto out = test::read_packets(inside_out());
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].data, stripped(a));
}

TEST_F(ticket_exception, the_option_is_in_the_config_and_needs_a_verifying_path) {
    const auto printed =
        test::run_program(_dir, _exe, dataplane_command("-l0", _prefix, {"--no-telemetry"}, {"--print-config"}));
    ASSERT_EQ(printed.exit_code, 0) << printed.err;
    EXPECT_NE(printed.out.find("\ntickets=false\n"), std::string::npos) << printed.out;
    EXPECT_NE(printed.out.find("\nexception-slots=128\n"), std::string::npos) << printed.out;

    const std::string conf = _dir.file("dataplane.toml");
    test::write_file(conf, "tickets = true\nexception-slots = 8\noutside-policy = \"pass\"\n");
    auto dp = start({}, {"--config", conf});
    ASSERT_TRUE(wait_until([&] { return !dp->running(); }, std::chrono::seconds(30), "the refusal"));
    EXPECT_EQ(dp->stop(), 2);
    EXPECT_NE(dp->err().find("--tickets needs --outside-policy verify or verify-strip (it is pass)"), std::string::npos)
        << dp->err();

    test::write_file(conf, "tickets = true\nexception-slots = 8\noutside-policy = \"verify\"\n");
    auto ok = start({}, {"--config", conf});
    ASSERT_TRUE(up(*ok)) << ok->err() << ok->out();
    auto ch = exception_channel::attach(_prefix);
    ASSERT_TRUE(ch) << ch.message();
    EXPECT_EQ(ch->slots(), 8U);
    EXPECT_NE(ok->out().find(fmt::format("on /dev/shm/ptpsec-exc.{} (8 slots each way)", _prefix)), std::string::npos)
        << ok->out();
    ASSERT_EQ(ok->stop(), 0) << ok->err();
}

/// Ticket-based mode with every real part: ptpsec-controld as the KE server
/// ([unicast]) and as the grantor's node ([node.grantor]) in front of the
/// grantor's data plane (this fixture's, with --tickets).
class ticket_mode : public ticket_exception {
protected:
    void SetUp() override {
        ticket_exception::SetUp();
        _controld = test::program_from_env("PTPSEC_CONTROLD");
        const auto ca = test::make_identity({.cn = "plant CA", .ca = true});
        const auto ke = test::make_identity({.cn = "ke", .issuer = &ca, .san = "IP:127.0.0.1", .eku = "serverAuth"});
        const auto grantor = test::make_identity({.cn = "grantor1", .issuer = &ca, .eku = "clientAuth"});
        const auto requester = test::make_identity({.cn = "requester1", .issuer = &ca, .eku = "clientAuth"});
        test::write_pem_file(_dir.file("ca.pem"), test::cert_pem(ca));
        for (const auto& [name, id] :
             {std::pair{"ke", &ke}, std::pair{"grantor1", &grantor}, std::pair{"requester1", &requester}}) {
            test::write_pem_file(_dir.file(fmt::format("{}.pem", name)), test::cert_pem(*id));
            test::write_pem_file(_dir.file(fmt::format("{}.key", name)), test::key_pem(*id));
        }
    }

    /// The KE server and the grantor's node; the server's port.
    uint16_t start_server_and_grantor() {
        test::write_file(_dir.file("server.toml"), R"([admin]
enabled = false

[server]
listen = ["127.0.0.1"]
port = 0
certificate = "ke.pem"
private-key = "ke.key"
ca = "ca.pem"
state = "controld.db"

[unicast]
lifetime = 600
update-period = 60

[[client]]
subject = "CN=grantor1,O=ptpsec test"
grantor = true

[[client]]
subject = "CN=requester1,O=ptpsec test"
unicast = true
)");
        _server = std::make_unique<test::background_program>(
            _dir, _controld, std::vector<std::string>{"--config", _dir.file("server.toml")});
        uint16_t port = 0;
        EXPECT_TRUE(wait_until(
            [&] {
                std::smatch m;
                const std::string out = _server->out();
                static const std::regex banner("NTS-KE server on port ([0-9]+)");
                if (std::regex_search(out, m, banner)) {
                    port = static_cast<uint16_t>(std::stoi(m[1]));
                }
                return port != 0 || !_server->running();
            },
            std::chrono::seconds(20), "the server's banner"));
        EXPECT_NE(port, 0) << _server->err();
        write_node_config("node.toml", port, "grantor1", _prefix, R"(
[node.grantor]
port-identity = "001b21fffe000001-1"
addresses = ["10.0.0.1"]
)",
                          grantor_socket());
        _grantor_node = std::make_unique<test::background_program>(
            _dir, _controld, std::vector<std::string>{"--config", _dir.file("node.toml")});
        return port;
    }

    /// The grantor's node's admin socket (`ptpsecctl status`).
    std::string grantor_socket() const { return _dir.file("grantor.sock"); }

    /// [admin] on `admin_socket` (empty: off), [node] with certificate
    /// `cert`, `extra` after it.
    void write_node_config(const std::string& file, uint16_t port, const std::string& cert, const std::string& prefix,
                           const std::string& extra, const std::string& admin_socket = {}) {
        test::write_file(_dir.file(file),
                         fmt::format(R"([admin]
{}

[node]
server = "127.0.0.1"
port = {}
certificate = "{}.pem"
private-key = "{}.key"
ca = "ca.pem"
dataplane-prefix = "{}"
retry-min-ms = 100
retry-max-ms = 1000
{})",
                                     admin_socket.empty() ? std::string("enabled = false")
                                                          : fmt::format("socket = \"{}\"", admin_socket),
                                     port, cert, cert, prefix, extra));
    }

    std::string _controld;
    std::unique_ptr<test::background_program> _server;
    std::unique_ptr<test::background_program> _grantor_node;
};

// The requester is this test: it asks the server for a unicast key and ticket
// over TLS, signs a unicast request with them and sends it, twice, to the
// grantor's data plane. The node opens the ticket, installs the unicast SA,
// gives the frame back; it comes out verified and stripped once. The copy is
// refused.
TEST_F(ticket_mode, a_requesters_ticket_opens_the_grantors_data_plane_and_a_replay_does_not) {
    const uint16_t port = start_server_and_grantor();
    ASSERT_NE(port, 0);
    // The requester: a unicast key and ticket for the grantor at 10.0.0.1,
    // once the grantor has registered.
    const ptp::port_identity me = test::make_port_identity(0x10, 1); // sample_header's sender
    nts::key_request want;
    want.association = nts::ipv4_address{{10, 0, 0, 1}};
    want.source_port_identity = nts::port_identity{me.clockIdentity, me.portNumber};
    tls::client_config cc;
    cc.ca_file = _dir.file("ca.pem");
    cc.cert_file = _dir.file("requester1.pem");
    cc.key_file = _dir.file("requester1.key");
    std::optional<nts::key_parameters> key;
    ASSERT_TRUE(wait_until(
        [&] {
            auto c = tls::client::connect("127.0.0.1", port, cc);
            if (!c) {
                return false;
            }
            auto answer = c->request(nts::build(want));
            auto resp =
                answer ? nts::parse_key_response(*answer) : nts::parse_result<nts::key_response>(nts::bad_request(""));
            if (resp && !resp->is_error()) {
                key = std::get<nts::key_grant>(resp->outcome).current;
            }
            return key.has_value();
        },
        std::chrono::seconds(20), "a unicast key for the registered grantor"))
        << _grantor_node->out() << _grantor_node->err();
    ASSERT_TRUE(key->unicast);
    const auto alg = nts::to_icv_algorithm(key->sa.integrity_algorithm, key->sa.key.size());
    ASSERT_TRUE(alg);
    sa_config sa;
    sa.spp = key->sa.spp;
    sa.keys.push_back(key_config{key->sa.key_id, *alg, key_bytes({key->sa.key.begin(), key->sa.key.end()}), "KE"});
    const bytes req = request({.sequence_id = 500,
                               .spp = key->sa.spp,
                               .key_id = key->sa.key_id,
                               .ticket_value = node::ticket_tlv_value(key->unicast->ticket),
                               .sa = sa});
    ASSERT_FALSE(req.empty());

    // The grantor's data plane gets the request and a copy of it.
    auto dp = start({req, req}, {"--outside-policy", "verify-strip", "--tickets"});
    ASSERT_TRUE(up(*dp)) << dp->err() << dp->out();
    ASSERT_TRUE(wait_until([&] { return live("verified") >= 1 && live("ticket_exceptions") + live("replayed") >= 2; },
                           std::chrono::seconds(20), "the request verified"))
        << _grantor_node->out() << live_path().dump();
    // Give the node a moment to refuse the copy if it was handed over too.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    // The operator's view of the grantor: registered, the request opened.
    const auto status =
        test::run_program(_dir, _ctl, {"status", "--controld-socket", grantor_socket()}, std::chrono::seconds(30));
    EXPECT_EQ(status.exit_code, 0) << status.err;
    EXPECT_TRUE(std::regex_search(
        status.out,
        std::regex(R"(\n  grantor 001b21fffe000001-1: registrations [1-9][0-9]* failed 0 \(next in [0-9]+ )"
                   R"(s\) \| ticket keys held [1-9] \| heartbeats sent [0-9]+ \| TLS sessions [1-9][0-9]* \(resumed )"
                   R"([0-9]+\) \| requests handed over )"
                   R"([12]: tickets opened [12] refused 0 replays refused [01] \| unicast SAs installed 1 )"
                   R"(failed 0( \| last refusal: a unicast request seen before[^\n]*)?\n)")))
        << status.out;
    EXPECT_TRUE(std::regex_search(status.out, std::regex(R"( keys received [0-9]+ removed 0 \| )"))) << status.out;
    EXPECT_EQ(status.out.find("GROUP"), std::string::npos) << "a node without groups has no group table";
    ASSERT_EQ(dp->stop(), 0) << dp->err();
    ASSERT_EQ(_grantor_node->stop(), 0) << _grantor_node->err();
    // The daemon's log has the same line, made by the same code.
    EXPECT_TRUE(std::regex_search(
        _grantor_node->out(),
        std::regex(
            R"(\n  grantor 001b21fffe000001-1: registrations [1-9][0-9]* failed 0 \(next in [0-9]+ s\) \| )"
            R"(ticket keys held [1-9] \| heartbeats sent [0-9]+ \| TLS sessions [1-9][0-9]* \(resumed [0-9]+\) \| )"
            R"(requests handed over [12]: )")))
        << _grantor_node->out();
    ASSERT_EQ(_server->stop(), 0) << _server->err();

    const json p = exit_path();
    EXPECT_EQ(p.at("verified"), 1) << p.dump();
    EXPECT_EQ(p.at("stripped"), 1) << p.dump();
    EXPECT_EQ(p.at("tx"), 1) << p.dump();
    // The copy was either handed over too, and refused by the node as a
    // request seen before, or came after the SA and hit the replay window.
    const uint64_t handed = p.at("ticket_exceptions").get<uint64_t>();
    ASSERT_GE(handed, 1U);
    ASSERT_LE(handed, 2U);
    if (handed == 2) {
        EXPECT_NE(_grantor_node->out().find("replays refused 1"), std::string::npos) << _grantor_node->out();
    } else {
        EXPECT_EQ(p.at("drops").value("replayed", 0), 1) << p.dump();
    }
    EXPECT_NE(_grantor_node->out().find("unicast SAs installed 1"), std::string::npos) << _grantor_node->out();
    const auto out = test::read_packets(inside_out());
    ASSERT_EQ(out.size(), 1U);
    EXPECT_EQ(out[0].data, stripped(req));
}

// The whole chain: a requester's node ([[node.unicast]]) gets the unicast
// key and ticket and puts both in the requester's data plane, which signs a
// unicast request with the key and sends the ticket with it; the grantor's
// data plane, node and the server do the rest. The request leaves the
// grantor verified once; its copy does not.
TEST_F(ticket_mode, a_requester_node_and_data_plane_reach_the_grantor_through_the_key_server) {
    const uint16_t port = start_server_and_grantor();
    ASSERT_NE(port, 0);
    const std::string requester = _prefix + "-rq";
    runtime_dir_guard requester_runtime(requester);
    shm_guard requester_shm(requester);
    // sample_header's sender: the ticket must be issued to it.
    write_node_config("requester.toml", port, "requester1", requester, R"(
[[node.unicast]]
grantor = "10.0.0.1"
port-identity = "1021324354657687-1"
mac-algorithms = ["aes-gmac-256", "hmac-sha256-128"]
)");
    test::background_program requester_node(_dir, _controld, {"--config", _dir.file("requester.toml")});

    pcap_fifo fifo(_dir.file("requester_in.fifo"));
    const std::string requester_out = _dir.file("requester_out.pcap");
    // The server has no group: its unicast SPP is 1.
    auto dp = std::make_unique<test::background_program>(
        _dir, _exe,
        // Two lcores: the main lcore applies the SA updates that the worker,
        // waiting on the FIFO, cannot.
        dataplane_command(
            "--lcores=0@(0-1),1@(0-1)", requester,
            {fmt::format("--vdev=net_pcap0,rx_pcap={},tx_pcap=/dev/null", fifo.path()),
             fmt::format("--vdev=net_pcap1,rx_pcap={},tx_pcap={}", _dir.file("empty.pcap"), requester_out)},
            {"--inside", "0", "--outside", "1", "--outside-policy", "pass", "--sign", "1", "--burst", "1"}));
    close_on_exit closing(fifo);
    ASSERT_TRUE(up(*dp)) << dp->err() << dp->out();
    // The node has pushed the key, its ticket, and made it current.
    ASSERT_TRUE(wait_until(
        [&] {
            const auto r = test::run_program(_dir, _ctl, {"sa", "list", "--file-prefix", requester, "--json"},
                                             std::chrono::seconds(30));
            if (r.exit_code != 0) {
                return false;
            }
            const json sas = json::parse(r.out, nullptr, false);
            if (!sas.is_object() || !sas.contains("1")) {
                return false;
            }
            for (const auto& [id, k] : sas.at("1").at("keys").items()) {
                if (k.value("current", 0) == 1 && k.value("ticket_length", 0) > 0) {
                    return k.value("algorithm", "") == "aes-gmac-256";
                }
            }
            return false;
        },
        std::chrono::seconds(20), "the unicast key, its ticket, current"))
        << requester_node.out() << requester_node.err() << dp->out();

    // A frame that is not PTP ends the poll that began before the key came;
    // then the request, and a copy of it.
    const bytes unsigned_request = [] {
        const bytes msg = test::build(test::sample_header(700), test::sample_body(ptp::message_type::signaling),
                                      {request_unicast_tlv()});
        test::frame_spec spec;
        spec.tp = ptp::transport::udp_ipv4;
        return test::make_frame(msg, spec);
    }();
    fifo.write(not_ptp());
    fifo.write(unsigned_request);
    fifo.write(unsigned_request);
    ASSERT_TRUE(wait_until(
        [&] {
            const auto r = test::run_program(_dir, _ctl, {"stats", "--file-prefix", requester, "--json"},
                                             std::chrono::seconds(30));
            const json j = json::parse(r.out, nullptr, false);
            return j.is_object() && j["paths"]["inside_to_outside"].value("tickets_attached", uint64_t{0}) == 2;
        },
        std::chrono::seconds(10), "two tickets attached"));
    fifo.close();
    ASSERT_EQ(dp->stop(), 0) << dp->err();
    std::vector<bytes> sent;
    for (const auto& pk : test::read_packets(requester_out)) {
        if (pk.data != not_ptp()) {
            sent.push_back(pk.data);
        }
    }
    // Two signings of one request: the same sequenceId; with AES-GMAC not the
    // same octets (each has an IV of its own).
    ASSERT_EQ(sent.size(), 2U);

    // The grantor's side.
    auto grantor_dp = start(sent, {"--outside-policy", "verify-strip", "--tickets"});
    ASSERT_TRUE(up(*grantor_dp)) << grantor_dp->err() << grantor_dp->out();
    ASSERT_TRUE(wait_until([&] { return live("verified") >= 1 && live("ticket_exceptions") + live("replayed") >= 2; },
                           std::chrono::seconds(20), "the request verified"))
        << _grantor_node->out() << live_path().dump();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_EQ(grantor_dp->stop(), 0) << grantor_dp->err();
    EXPECT_EQ(requester_node.stop(), 0) << requester_node.err();
    ASSERT_EQ(_grantor_node->stop(), 0) << _grantor_node->err();
    ASSERT_EQ(_server->stop(), 0) << _server->err();
    EXPECT_NE(_server->out().find("unicast keys 1"), std::string::npos) << _server->out();

    const json p = exit_path();
    EXPECT_EQ(p.at("verified"), 1) << p.dump();
    EXPECT_EQ(p.at("tx"), 1) << p.dump();
    EXPECT_NE(_grantor_node->out().find("unicast SAs installed 1"), std::string::npos) << _grantor_node->out();
    const auto out = test::read_packets(inside_out());
    ASSERT_EQ(out.size(), 1U);
    EXPECT_TRUE(out[0].data == stripped(sent[0]) || out[0].data == stripped(sent[1]));
}

} // namespace
} // namespace ptpsec
