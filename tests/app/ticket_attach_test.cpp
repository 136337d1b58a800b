// Tickets on the wire, requester side (seeds/001 §6): ptpsec-dataplane signs
// what its inside port sends; the test, as its control plane, pushes a
// unicast key, the key's ticket (set_ticket) and makes the key current on the
// SA channel. A unicast request (Signaling with REQUEST_UNICAST_TRANSMISSION)
// then leaves the outside port with the TICKET TLV, holding exactly the
// ticket, before an AUTHENTICATION TLV that verifies with the key; other
// messages, and a request that carries a TICKET TLV already, leave signed as
// before. The frames reach the data plane through a FIFO read as its pcap
// input, so that they arrive once the SA is in place. The requests are then
// given to a second data plane, a grantor with --tickets, which hands them
// to the control plane (the test again) and, once their SA is installed,
// lets them through verified.

#include "../dataplane/auth_helpers.h"
#include "../pcap_files.h"
#include "../process.h"
#include "app_helpers.h"

#include <control/node/grantor.h>
#include <control/nts/record.h>
#include <control/sa_client.h>
#include <dataplane/auth.h>
#include <dataplane/exception_channel.h>
#include <dataplane/sa_channel.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <pcap/pcap.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace ptpsec {
namespace {

using json = nlohmann::json;
using test::bytes;

constexpr uint16_t inside_port = 0;
constexpr uint16_t outside_port = 1;
constexpr uint8_t unicast_spp = 2;
constexpr uint32_t unicast_key = 41;
constexpr auto icv_alg = icv::algorithm::hmac_sha256_128;

/// The requester's unicast SA, as the KE server gave it.
sa_config unicast_sa() {
    return test::make_sa(unicast_spp, {test::make_key(unicast_key, icv_alg, 0x41)});
}

/// A ticket as the KE server issues one (seeds/001 §4.2.15): a 16-octet
/// nonce and the SA sealed with AES-SIV (here opaque octets of the length a
/// 32-octet key gives).
nts::ticket sample_ticket() {
    nts::ticket t;
    t.ticket_key_id = 7;
    const ptp::port_identity me = test::make_port_identity(0x10, 1); // sample_header's sender
    t.source_port_identity = nts::port_identity{me.clockIdentity, me.portNumber};
    t.nonce = test::pattern(16, 0x21);
    t.encrypted_sa = test::pattern(57, 0x35);
    return t;
}

/// 16.1.4.1 REQUEST_UNICAST_TRANSMISSION: Announce, 2 s, 300 s.
bytes request_unicast_tlv() {
    bytes v(6, 0);
    v[0] = static_cast<uint8_t>(static_cast<uint8_t>(ptp::message_type::announce) << 4);
    v[1] = 1;
    store_be32(v.data() + 2, 300);
    return test::make_tlv(ptp::tlv_request_unicast_transmission, v);
}

test::frame_spec spec_of(ptp::transport tp) {
    test::frame_spec s;
    s.tp = tp;
    return s;
}

/// A frame that is not PTP (ARP-sized, ethertype 0x0806).
bytes not_ptp() {
    bytes f(60, 0x11);
    store_be16(f.data() + 12, 0x0806);
    return f;
}

/// What the inside port sends, unsigned, and what should leave.
struct sent_frame {
    const char* name;
    bytes frame;
    test::frame_spec spec;
    bool gets_ticket;
};

std::vector<sent_frame> inside_frames() {
    const auto request = [](uint16_t seq, const std::vector<bytes>& more = {}) {
        std::vector<bytes> tlvs{request_unicast_tlv()};
        tlvs.insert(tlvs.end(), more.begin(), more.end());
        return test::build(ptp::message_type::signaling, tlvs, seq);
    };
    const auto udp4 = spec_of(ptp::transport::udp_ipv4);
    const auto udp6 = spec_of(ptp::transport::udp_ipv6);
    const auto l2 = spec_of(ptp::transport::l2);
    return {
        {"UDPv4 request", test::make_frame(request(100), udp4), udp4, true},
        {"Announce", test::make_frame(test::build(ptp::message_type::announce, {}, 101), udp4), udp4, false},
        {"L2 request", test::make_frame(request(102), l2), l2, true},
        {"UDPv6 request", test::make_frame(request(103), udp6), udp6, true},
        {"request with its own ticket",
         test::make_frame(request(104, {test::make_tlv(ptp::default_ticket_tlv_type, test::pattern(40, 9))}), udp4),
         udp4, false},
        {"Signaling without a request", test::make_frame(test::build(ptp::message_type::signaling, {}, 105), udp4),
         udp4, false},
    };
}

/// The TLVs of a frame's message, in order: type and value.
std::vector<std::pair<uint16_t, bytes>> tlvs_of(const bytes& frame) {
    ptp::frame_info fi;
    ptp::message_view mv;
    EXPECT_EQ(ptp::classify_frame(frame.data(), frame.size(), fi), ptp::error::none);
    const uint8_t* msg = frame.data() + fi.ptp_offset;
    EXPECT_EQ(ptp::parse_message(msg, fi.ptp_avail, mv), ptp::error::none);
    std::vector<std::pair<uint16_t, bytes>> out;
    ptp::tlv_iterator it(msg, mv.tlv_begin, mv.messageLength);
    for (;;) {
        ptp::tlv_ref t;
        bool done = false;
        if (it.next(t, done) != ptp::error::none || done) {
            return out;
        }
        out.emplace_back(t.type, bytes(t.value, t.value + t.length));
    }
}

/// The frame as a verify-strip path forwards it: without its AUTHENTICATION TLV.
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

class ticket_attach : public testing::Test {
protected:
    void SetUp() override {
        _exe = test::program_from_env("PTPSEC_DATAPLANE");
        _ctl = test::program_from_env("PTPSECCTL");
        test::write_packets(_dir.file("empty.pcap"), DLT_EN10MB, {});
    }

    /// A data plane on two net_pcap ports: `inside_rx` (a file or a FIFO)
    /// arrives on the inside port, `outside_rx` on the outside port; what
    /// leaves goes to inside_out.pcap and outside_out.pcap. A main lcore for
    /// the SA channel and a worker, which may wait on the FIFO.
    std::unique_ptr<test::background_program> start(const std::string& prefix, const std::string& inside_rx,
                                                    const std::string& outside_rx,
                                                    const std::vector<std::string>& options) {
        auto args =
            dataplane_command("--lcores=0@(0-1),1@(0-1)", prefix,
                              {fmt::format("--vdev=net_pcap0,rx_pcap={},tx_pcap={}", inside_rx, inside_out(prefix)),
                               fmt::format("--vdev=net_pcap1,rx_pcap={},tx_pcap={}", outside_rx, outside_out(prefix))},
                              {"--inside", std::to_string(inside_port), "--outside", std::to_string(outside_port),
                               "--stats-json", stats_file(prefix)});
        args.insert(args.end(), options.begin(), options.end());
        return std::make_unique<test::background_program>(_dir, _exe, args);
    }

    /// Waits for the data plane's banner: its channels are there.
    testing::AssertionResult up(test::background_program& dp) {
        auto r =
            wait_until([&] { return !dp.running() || dp.out().find("  SA updates on /dev/shm") != std::string::npos; },
                       std::chrono::seconds(30), "the banner");
        if (r && !dp.running()) {
            return testing::AssertionFailure() << "ptpsec-dataplane ended: " << dp.err();
        }
        return r;
    }

    /// A path of /ptpsec/stats, through ptpsecctl.
    json live_path(const std::string& prefix, const char* path) {
        const auto r =
            test::run_program(_dir, _ctl, {"stats", "--file-prefix", prefix, "--json"}, std::chrono::seconds(30));
        if (r.exit_code != 0) {
            return json::object();
        }
        return json::parse(r.out).at("paths").at(path);
    }

    /// A path of --stats-json, written at exit.
    json exit_path(const std::string& prefix, const char* name) const {
        const json j = json::parse(test::read_file(stats_file(prefix)));
        for (const auto& p : j.at("paths")) {
            if (p.at("name") == name) {
                return p;
            }
        }
        ADD_FAILURE() << "no path " << name << " in " << j.dump();
        return json::object();
    }

    /// Sends `updates` to the data plane of `prefix`; the outcomes, or a
    /// failure if it did not answer.
    static std::vector<sa_client::outcome> send(const std::string& prefix, std::vector<sa_wire::update> updates) {
        auto sent = sa_client::send(prefix, updates);
        EXPECT_TRUE(sent) << (sent ? "" : sent.message());
        return sent ? std::move(sent).value() : std::vector<sa_client::outcome>{};
    }

    /// The requester: runs a data plane signing with SPP 2 (the key to come
    /// from the control plane), gives it the unicast key, its ticket and
    /// makes it current, then sends `frames` through its inside port and
    /// returns what left the outside port. Checks the channel's answers,
    /// `sa list` and the counters on the way.
    std::vector<bytes> run_requester(const std::vector<sent_frame>& frames, const bytes& ticket) {
        pcap_fifo fifo(_dir.file("requester_in.fifo"));
        // --burst 1: a read of the FIFO returns one frame (a burst waits
        // for all of its frames, and is processed with the SA version of
        // when its poll began).
        auto dp = start(_requester, fifo.path(), _dir.file("empty.pcap"),
                        {"--sign", std::to_string(unicast_spp), "--burst", "1"});
        close_on_exit closing(fifo);
        if (!up(*dp)) {
            ADD_FAILURE() << "the requester's data plane did not start: " << dp->out() << dp->err();
            return {};
        }
        auto add = sa_client::updates_for({unicast_sa()});
        EXPECT_TRUE(add) << (add ? "" : add.message());
        auto set = sa_client::set_ticket(unicast_spp, unicast_key, ticket);
        EXPECT_TRUE(set) << (set ? "" : set.message());
        if (!add || !set) {
            return {};
        }
        // Refused: a key the SA does not have, and a value of odd length
        // (built by hand: sa_client refuses it before sending).
        auto unknown = sa_client::set_ticket(unicast_spp, 9, ticket);
        sa_wire::update odd = *set;
        odd.key_len = static_cast<uint8_t>(ticket.size() - 1);
        std::vector<sa_wire::update> updates = *add;
        updates.insert(updates.end(), {*set, *unknown, odd, sa_client::set_current(unicast_spp, unicast_key)});
        const auto outcomes = send(_requester, updates);
        EXPECT_EQ(outcomes.size(), 5U);
        if (outcomes.size() != 5U) {
            return {};
        }
        EXPECT_TRUE(outcomes[0].applied) << outcomes[0].reason;
        EXPECT_TRUE(outcomes[1].applied) << outcomes[1].reason;
        EXPECT_FALSE(outcomes[2].applied);
        EXPECT_EQ(outcomes[2].reason, "spp 2 has no key 9; add it first");
        EXPECT_FALSE(outcomes[3].applied);
        EXPECT_NE(outcomes[3].reason.find("ticket length 95 is odd"), std::string::npos) << outcomes[3].reason;
        EXPECT_TRUE(outcomes[4].applied) << outcomes[4].reason;

        // sa list: the ticket's length, never its octets.
        const auto listed = test::run_program(_dir, _ctl, {"sa", "list", "--file-prefix", _requester, "--json"},
                                              std::chrono::seconds(30));
        EXPECT_EQ(listed.exit_code, 0) << listed.err;
        if (listed.exit_code == 0) {
            const json key = json::parse(listed.out).at("2").at("keys").at("41");
            EXPECT_EQ(key.at("ticket_length"), ticket.size()) << key.dump();
            EXPECT_EQ(key.at("current"), 1) << key.dump();
        }
        const auto text =
            test::run_program(_dir, _ctl, {"sa", "list", "--file-prefix", _requester}, std::chrono::seconds(30));
        EXPECT_NE(text.out.find("TICKET"), std::string::npos) << text.out;
        EXPECT_NE(text.out.find(fmt::format("{} octets", ticket.size())), std::string::npos) << text.out;

        // The worker has waited on the FIFO since it started, in a poll
        // that holds the SA version without the key: a frame that is not
        // PTP ends that poll (and leaves, unchanged), and the next poll
        // reads the version with the key, ticket and current key.
        fifo.write(not_ptp());
        for (const auto& f : frames) {
            fifo.write(f.frame);
        }
        const size_t requests = static_cast<size_t>(
            std::count_if(frames.begin(), frames.end(), [](const sent_frame& f) { return f.gets_ticket; }));
        EXPECT_TRUE(wait_until(
            [&] { return live_path(_requester, "inside_to_outside").value("signed", size_t{0}) >= frames.size(); },
            std::chrono::seconds(10), "every frame signed"));
        const auto stats =
            test::run_program(_dir, _ctl, {"stats", "--file-prefix", _requester}, std::chrono::seconds(30));
        EXPECT_NE(stats.out.find(fmt::format("| tickets attached {}", requests)), std::string::npos) << stats.out;
        EXPECT_EQ(live_path(_requester, "inside_to_outside").value("tickets_attached", size_t{0}), requests);

        fifo.close();
        EXPECT_EQ(dp->stop(), 0) << dp->err();
        EXPECT_NE(dp->out().find(fmt::format("| tickets attached {}", requests)), std::string::npos) << dp->out();
        const json p = exit_path(_requester, "inside->outside");
        EXPECT_EQ(p.at("rx"), frames.size() + 1) << p.dump();
        EXPECT_EQ(p.at("non_ptp"), 1) << p.dump();
        EXPECT_EQ(p.at("signed"), frames.size()) << p.dump();
        EXPECT_EQ(p.at("tickets_attached"), requests) << p.dump();
        EXPECT_EQ(p.at("tx"), frames.size() + 1) << p.dump();
        EXPECT_EQ(p.at("dropped"), 0) << p.dump();

        const auto sent = test::read_packets(outside_out(_requester));
        EXPECT_FALSE(sent.empty());
        if (sent.empty()) {
            return {};
        }
        EXPECT_EQ(sent[0].data, not_ptp());
        std::vector<bytes> out;
        for (size_t i = 1; i < sent.size(); ++i) {
            out.push_back(sent[i].data);
        }
        return out;
    }

    std::string inside_out(const std::string& prefix) const { return _dir.file(prefix + "_inside_out.pcap"); }
    std::string outside_out(const std::string& prefix) const { return _dir.file(prefix + "_outside_out.pcap"); }
    std::string stats_file(const std::string& prefix) const { return _dir.file(prefix + "_stats.json"); }

    test::temp_dir _dir;
    std::string _exe;
    std::string _ctl;
    // The prefixes and their guards before any program: they go after it.
    std::string _requester = fmt::format("ptpsec-tka-{}-{}", ::getpid(), ++runs);
    std::string _grantor = fmt::format("ptpsec-tkg-{}-{}", ::getpid(), runs);
    runtime_dir_guard _requester_runtime{_requester};
    runtime_dir_guard _grantor_runtime{_grantor};
    shm_guard _requester_shm{_requester};
    shm_guard _grantor_shm{_grantor};
    static inline int runs = 0;
};

TEST_F(ticket_attach, a_unicast_request_leaves_with_the_ticket_before_a_valid_authentication_tlv) {
    const bytes ticket = node::ticket_tlv_value(sample_ticket());
    ASSERT_EQ(ticket.size(), 96U); // 95 octets of record, one of padding
    const auto frames = inside_frames();
    const auto out = run_requester(frames, ticket);
    ASSERT_EQ(out.size(), frames.size());

    icv::ipsecmb_engine eng;
    auto db = test::install(eng, {unicast_sa()});
    ASSERT_NE(db, nullptr);
    verifier ver(eng, *db);
    for (size_t i = 0; i < frames.size(); ++i) {
        SCOPED_TRACE(frames[i].name);
        EXPECT_TRUE(test::frame_consistent(out[i], frames[i].spec));
        const auto tlvs = tlvs_of(out[i]);
        const auto sent = tlvs_of(frames[i].frame);
        // The message's own TLVs, then the TICKET TLV (requests), then the
        // AUTHENTICATION TLV.
        ASSERT_EQ(tlvs.size(), sent.size() + (frames[i].gets_ticket ? 2 : 1));
        EXPECT_TRUE(std::equal(sent.begin(), sent.end(), tlvs.begin()));
        EXPECT_EQ(tlvs.back().first, ptp::tlv_authentication);
        if (frames[i].gets_ticket) {
            EXPECT_EQ(tlvs[sent.size()].first, ptp::default_ticket_tlv_type);
            EXPECT_EQ(tlvs[sent.size()].second, ticket) << "the ticket, octet for octet";
            // The grantor's control plane reads the same ticket out of it.
            auto opened = node::parse_ticket_tlv(tlvs[sent.size()].second);
            ASSERT_TRUE(opened) << opened.message();
            EXPECT_EQ(*opened, sample_ticket());
        }
        bytes copy = out[i];
        ptp::frame_buf fb{copy.data(), static_cast<uint32_t>(copy.size()), static_cast<uint32_t>(copy.size())};
        frame_outcome o;
        EXPECT_EQ(ver.verify_burst(&fb, 1, &o), 1);
        EXPECT_EQ(test::verify_of(o), verify_status::verified);
    }
}

TEST_F(ticket_attach, the_grantors_data_plane_takes_the_request_to_its_control_plane_and_lets_it_through) {
    // The chain: the requester's output is the grantor's input. The grantor
    // has no SA for the unicast key, so each ticket-bearing request goes to
    // its control plane (the test), which finds the ticket where the
    // requester put it, installs the key and gives the frame back.
    const bytes ticket = node::ticket_tlv_value(sample_ticket());
    const auto frames = inside_frames();
    const auto out = run_requester(frames, ticket);
    ASSERT_EQ(out.size(), frames.size());
    std::vector<test::packet> pkts;
    for (const auto& f : out) {
        test::packet p{};
        p.hdr.caplen = p.hdr.len = static_cast<uint32_t>(f.size());
        p.data = f;
        pkts.push_back(p);
    }
    const std::string grantor_in = _dir.file("grantor_in.pcap");
    test::write_packets(grantor_in, DLT_EN10MB, pkts);

    auto dp = start(_grantor, _dir.file("empty.pcap"), grantor_in,
                    {"--inside-policy", "pass", "--outside-policy", "verify-strip", "--tickets"});
    ASSERT_TRUE(up(*dp)) << dp->out() << dp->err();
    auto attached = exception_channel::attach(_grantor);
    ASSERT_TRUE(attached) << attached.message();
    exception_channel& ch = *attached;
    // The three requests with the requester's ticket, and the one that came
    // with its own: Signaling with a TICKET TLV before the AUTHENTICATION TLV.
    ASSERT_TRUE(wait_until([&] { return ch.exceptions_waiting() >= 4; }, std::chrono::seconds(10), "four requests"));
    std::vector<std::unique_ptr<exception_wire::record>> records;
    for (int i = 0; i < 4; ++i) {
        records.push_back(std::make_unique<exception_wire::record>());
        ASSERT_TRUE(ch.pop_exception(*records.back()));
    }
    const std::vector<size_t> handed = {0, 2, 3, 4}; // indices in frames
    for (size_t r = 0; r < records.size(); ++r) {
        const exception_wire::record& rec = *records[r];
        SCOPED_TRACE(frames[handed[r]].name);
        ASSERT_EQ(bytes(rec.frame, rec.frame + rec.frame_len), out[handed[r]]);
        EXPECT_EQ(rec.spp, unicast_spp);
        EXPECT_EQ(rec.key_id, unicast_key);
        EXPECT_EQ(load_be16(rec.frame + rec.ticket_offset), ptp::default_ticket_tlv_type);
        EXPECT_EQ(rec.auth_offset, rec.ticket_offset + 4 + load_be16(rec.frame + rec.ticket_offset + 2));
        if (frames[handed[r]].gets_ticket) {
            const bytes value(rec.frame + rec.ticket_offset + 4, rec.frame + rec.auth_offset);
            EXPECT_EQ(value, ticket);
        }
    }
    auto add = sa_client::updates_for({unicast_sa()});
    ASSERT_TRUE(add) << add.message();
    const auto installed = send(_grantor, *add);
    ASSERT_EQ(installed.size(), 1U);
    ASSERT_TRUE(installed[0].applied) << installed[0].reason;
    for (const auto& rec : records) {
        ASSERT_TRUE(ch.push_reinject(*rec));
    }
    ASSERT_TRUE(wait_until([&] { return live_path(_grantor, "outside_to_inside").value("verified", 0) >= 4; },
                           std::chrono::seconds(10), "four verified"));
    ASSERT_EQ(dp->stop(), 0) << dp->err();

    const json p = exit_path(_grantor, "outside->inside");
    EXPECT_EQ(p.at("rx"), frames.size()) << p.dump();
    EXPECT_EQ(p.at("ticket_exceptions"), 4) << p.dump();
    EXPECT_EQ(p.at("reinjected"), 4) << p.dump();
    EXPECT_EQ(p.at("verified"), 4) << p.dump();
    EXPECT_EQ(p.at("drops").value("unknown_spp", 0), 2) << p.dump(); // the Announce and the plain Signaling
    const auto inside = test::read_packets(inside_out(_grantor));
    ASSERT_EQ(inside.size(), 4U);
    for (size_t r = 0; r < handed.size(); ++r) {
        // Stripped of its AUTHENTICATION TLV; the TICKET TLV stays.
        EXPECT_EQ(inside[r].data, stripped(out[handed[r]])) << frames[handed[r]].name;
    }
}

} // namespace
} // namespace ptpsec
