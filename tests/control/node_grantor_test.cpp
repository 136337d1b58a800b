// The grantor side of the node role (control/node/grantor.h) against a real
// KE server in this process: TLS 1.3 on loopback, the NTS-KE and NTS-TSR
// handlers of ke_service with a grantor registry. The grantor registers,
// sends heartbeats, and opens the tickets requesters got from the same
// server; wrong requesters, wrong keys and repeats are refused. Also the
// node's group keys against the same server: a key asked for twice keeps
// the earliest times it was given.

#include "../process.h"
#include "ke_test_support.h"
#include "test_pki.h"

#include "../hsm/tpm_fixture.h"

#include <control/ke/ke_service.h>
#include <control/ke/ticket_crypto.h>
#include <control/node/grantor.h>
#include <control/node/node.h>
#include <control/tls/server.h>
#include <control/verifier/registrar.h>
#include <hsm/tpm_signer.h>

#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <thread>

namespace ptpsec::node {
namespace {

using namespace std::chrono_literals;

int64_t mono_now() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000LL + ts.tv_nsec;
}

const nts::port_identity grantor_pid{{0, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 1}, 1};
const nts::port_identity requester_pid{{0, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 2}, 1};

class node_grantor : public testing::Test {
protected:
    void SetUp() override {
        const auto ca = test::make_identity({.cn = "CA", .ca = true});
        const auto server =
            test::make_identity({.cn = "ke", .issuer = &ca, .san = "IP:127.0.0.1", .eku = "serverAuth"});
        const auto g1 = test::make_identity({.cn = "grantor1", .issuer = &ca, .eku = "clientAuth"});
        const auto other = test::make_identity({.cn = "other", .issuer = &ca, .eku = "clientAuth"});
        test::write_pem_file(_dir.file("ca.pem"), test::cert_pem(ca));
        for (const auto& [name, id] :
             {std::pair{"server", &server}, std::pair{"grantor1", &g1}, std::pair{"other", &other}}) {
            test::write_pem_file(_dir.file(std::string(name) + ".pem"), test::cert_pem(*id));
            test::write_pem_file(_dir.file(std::string(name) + ".key"), test::key_pem(*id));
        }
        ke::group_policy g;
        g.name = "g";
        auto ks = ke::key_schedule::create({g}, nullptr);
        ASSERT_TRUE(ks) << ks.message();
        _keys = std::move(ks).value();
        ke::unicast_policy up;
        up.enabled = true;
        up.heartbeat_timeout_s = 20;
        auto reg = ke::grantor_registry::create(up, *_keys, nullptr);
        ASSERT_TRUE(reg) << reg.message();
        _registry = std::move(reg).value();
        _service = std::make_unique<ke::ke_service>(
            *_keys,
            std::vector<ke::client_rule>{{"CN=grantor1,O=ptpsec test", "", {}, true, false, false},
                                         {"CN=other,O=ptpsec test", "", {}, false, false, true}},
            _registry.get());
        tls::server_config sc;
        sc.listen_addresses = {"127.0.0.1"};
        sc.port = 0;
        sc.cert_file = _dir.file("server.pem");
        sc.key_file = _dir.file("server.key");
        sc.ca_file = _dir.file("ca.pem");
        sc.session_lifetime = session_lifetime();
        auto srv = tls::server::create(sc, [this](const tls::peer& from, std::span<const uint8_t> msg) {
            ke::client_identity who{from.subject, {}};
            who.session_binding = from.session_binding;
            const std::lock_guard lock(_mutex);
            ke::answer a = from.alpn == tls::protocol::ntske ? _service->handle_key_request(who, msg)
                                                             : _service->handle_tsr(who, msg);
            return tls::response(std::move(a.message), a.close);
        });
        ASSERT_TRUE(srv) << srv.message();
        _server.emplace(std::move(srv).value());
        _thread = std::thread([this] { (void)_server->run(); });
    }

    /// The server's: none (no tickets) unless a test's fixture says.
    virtual std::chrono::seconds session_lifetime() const { return 0s; }

    void TearDown() override {
        if (_server) {
            _server->stop();
        }
        if (_thread.joinable()) {
            _thread.join();
        }
    }

    grantor make(const std::string& who = "grantor1", decltype(grantor_settings::quote) quote = {}) {
        grantor_settings gs;
        gs.quote = std::move(quote);
        gs.time_server.addresses = {grantor_pid, nts::ipv4_address{{10, 0, 0, 1}}};
        tls::client_config cc;
        cc.ca_file = _dir.file("ca.pem");
        cc.cert_file = _dir.file(who + ".pem");
        cc.key_file = _dir.file(who + ".key");
        cc.timeout = 2s;
        return grantor(gs, "127.0.0.1", _server->port(), cc, 100ms, 1000ms, 7);
    }

    /// Registers `g`, then has it send its first heartbeat (at half the
    /// server's 20 s timeout).
    static void register_then_heartbeat(grantor& g) {
        const int64_t now = mono_now();
        g.step(now);
        ASSERT_EQ(g.stats().registrations, 1U) << g.last_error();
        g.step(now + 11LL * 1'000'000'000LL);
        ASSERT_EQ(g.stats().heartbeats_sent, 1U) << g.last_error();
    }

    /// A node of this server with the certificate of `who`, no groups, and
    /// no data plane to push to.
    settings node_settings(const std::string& who) const {
        settings s;
        s.server_host = "127.0.0.1";
        s.server_port = _server->port();
        s.tls.ca_file = _dir.file("ca.pem");
        s.tls.cert_file = _dir.file(who + ".pem");
        s.tls.key_file = _dir.file(who + ".key");
        s.dataplane_prefix = "ptpsec-node-grantor-test-none";
        return s;
    }

    /// A requester's unicast key and ticket, asked of the same server.
    nts::key_parameters unicast_key() {
        nts::key_request r;
        r.association = nts::ipv4_address{{10, 0, 0, 1}};
        r.source_port_identity = requester_pid;
        std::vector<uint8_t> bytes;
        {
            const std::lock_guard lock(_mutex);
            bytes = _service->handle_key_request({"CN=other,O=ptpsec test", {}}, nts::build(r)).message;
        }
        auto resp = nts::parse_key_response(bytes);
        EXPECT_TRUE(resp && !resp->is_error());
        return resp && !resp->is_error() ? std::get<nts::key_grant>(resp->outcome).current : nts::key_parameters{};
    }

    static unicast_request request_for(const nts::key_parameters& k, const std::vector<uint8_t>& tlv,
                                       uint16_t sequence_id) {
        unicast_request r;
        r.ticket_tlv_value = tlv;
        r.source_port_identity = requester_pid;
        r.sequence_id = sequence_id;
        r.spp = k.sa.spp;
        r.key_id = k.sa.key_id;
        return r;
    }

    test::temp_dir _dir;
    std::mutex _mutex;
    std::unique_ptr<ke::key_schedule> _keys;
    std::unique_ptr<ke::grantor_registry> _registry;
    std::unique_ptr<ke::ke_service> _service;
    std::optional<tls::server> _server;
    std::thread _thread;
};

TEST_F(node_grantor, registers_and_opens_the_tickets_issued_for_it) {
    grantor g = make();
    const int64_t now = mono_now();
    g.step(now);
    ASSERT_EQ(g.stats().registrations, 1U) << g.last_error();
    ASSERT_EQ(g.keys().size(), 1U);
    EXPECT_EQ(g.heartbeat_timeout(), 20);
    EXPECT_GT(g.next_registration_ns(), now + 3000LL * 1'000'000'000LL) << "renewal in the update period";

    const auto k = unicast_key();
    ASSERT_TRUE(k.unicast);
    const auto tlv = ticket_tlv_value(k.unicast->ticket);
    EXPECT_EQ(tlv.size() % 2, 0U) << "a PTP TLV has an even length";
    auto opened = g.open_request(request_for(k, tlv, 7), now);
    ASSERT_TRUE(opened) << opened.message();
    EXPECT_EQ(opened->sa, k.sa);
    EXPECT_GT(opened->retire_ns, now + 3500LL * 1'000'000'000LL);
    EXPECT_EQ(g.stats().tickets_opened, 1U);

    // The same request again is a replay; the next one is not.
    auto again = g.open_request(request_for(k, tlv, 7), now);
    ASSERT_FALSE(again);
    EXPECT_NE(again.message().find("replay"), std::string::npos) << again.message();
    EXPECT_EQ(g.stats().replays_refused, 1U);
    EXPECT_TRUE(g.open_request(request_for(k, tlv, 8), now));
    EXPECT_EQ(g.requests_remembered(), 2U);

    // Kept until the ticket key's grace period ends, then forgotten with it
    // (the grantor registers again then, against the server's own clock).
    g.step(opened->retire_ns - 1);
    EXPECT_EQ(g.requests_remembered(), 2U);
    g.step(opened->retire_ns);
    EXPECT_EQ(g.requests_remembered(), 0U);
}

TEST_F(node_grantor, refuses_tickets_for_someone_else_or_that_do_not_open) {
    grantor g = make();
    const int64_t now = mono_now();
    g.step(now);
    ASSERT_EQ(g.keys().size(), 1U) << g.last_error();
    const auto k = unicast_key();
    ASSERT_TRUE(k.unicast);
    const auto tlv = ticket_tlv_value(k.unicast->ticket);

    auto stranger = request_for(k, tlv, 1);
    stranger.source_port_identity.port_number = 2;
    auto r = g.open_request(stranger, now);
    ASSERT_FALSE(r);
    EXPECT_NE(r.message().find("another PortIdentity"), std::string::npos) << r.message();

    auto other_key = request_for(k, tlv, 1);
    other_key.key_id += 1;
    r = g.open_request(other_key, now);
    ASSERT_FALSE(r);
    EXPECT_NE(r.message().find("names SPP"), std::string::npos) << r.message();

    auto bent = tlv;
    bent[bent.size() / 2] ^= 0x10;
    r = g.open_request(request_for(k, bent, 1), now);
    ASSERT_FALSE(r);

    auto cut = tlv;
    cut.resize(10);
    r = g.open_request(request_for(k, cut, 1), now);
    ASSERT_FALSE(r);
    EXPECT_NE(r.message().find("octets of body"), std::string::npos) << r.message();

    nts::ticket unknown = k.unicast->ticket;
    unknown.ticket_key_id += 100;
    const auto unknown_tlv = ticket_tlv_value(unknown);
    r = g.open_request(request_for(k, unknown_tlv, 1), now);
    ASSERT_FALSE(r);
    EXPECT_NE(r.message().find("is not held"), std::string::npos) << r.message();
    EXPECT_EQ(g.stats().tickets_refused, 5U);
    EXPECT_EQ(g.stats().tickets_opened, 0U);
    // The genuine request still goes through after all that.
    EXPECT_TRUE(g.open_request(request_for(k, tlv, 1), now));
}

TEST_F(node_grantor, sends_heartbeats_at_half_the_timeout) {
    grantor g = make();
    const int64_t now = mono_now();
    g.step(now);
    ASSERT_EQ(g.stats().registrations, 1U) << g.last_error();
    g.step(now + 5LL * 1'000'000'000LL);
    EXPECT_EQ(g.stats().heartbeats_sent, 0U);
    g.step(now + 11LL * 1'000'000'000LL);
    EXPECT_EQ(g.stats().heartbeats_sent, 1U) << g.last_error();
    // The server took it (its clock is the real one: it is not too frequent,
    // the registration was the last word before it).
    for (auto deadline = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < deadline;) {
        {
            const std::lock_guard lock(_mutex);
            if (_registry->stats().heartbeats + _registry->stats().heartbeats_discarded > 0) {
                break;
            }
        }
        std::this_thread::sleep_for(10ms);
    }
    const std::lock_guard lock(_mutex);
    EXPECT_EQ(_registry->stats().heartbeats + _registry->stats().heartbeats_discarded, 1U);
}

TEST_F(node_grantor, counts_a_tls_session_per_registration_and_heartbeat) {
    grantor g = make();
    ASSERT_NO_FATAL_FAILURE(register_then_heartbeat(g));
    EXPECT_EQ(g.stats().sessions, 2U);
    EXPECT_EQ(g.stats().sessions_resumed, 0U) << "a server without a session lifetime issues no tickets";
}

class node_grantor_resuming : public node_grantor {
protected:
    std::chrono::seconds session_lifetime() const override { return 1h; }
};

TEST_F(node_grantor_resuming, resumes_its_session_for_the_heartbeat_and_counts_it) {
    grantor g = make();
    ASSERT_NO_FATAL_FAILURE(register_then_heartbeat(g));
    EXPECT_EQ(g.stats().sessions, 2U);
    EXPECT_EQ(g.stats().sessions_resumed, 1U) << "the heartbeat's session resumes the registration's";
    EXPECT_GE(_server->stats().resumed, 1U);
}

// The server gives a key's remaining lifetime in whole seconds, rounded up,
// so each answer puts its end up to a second late. The node switches its
// data plane to the next key at the end it holds, and the data plane retires
// the current key at the end the node gave it first (plus the grace period):
// a renewal that moved the end later could push the switch past that
// retirement and leave frames unsigned. A key asked for again keeps the
// earliest times.
TEST_F(node_grantor, a_renewed_key_keeps_its_earliest_end_and_the_next_key_starts_there) {
    ke::test::test_clocks clk;
    auto plant = ke::test::policy("plant", 0);
    plant.lifetime_s = 8;
    plant.update_period_s = 4;
    plant.grace_period_s = 1;
    auto ks = ke::key_schedule::create({plant}, nullptr, clk);
    ASSERT_TRUE(ks) << ks.message();
    {
        const std::lock_guard lock(_mutex);
        _service = std::make_unique<ke::ke_service>(
            **ks, std::vector<ke::client_rule>{{.subject = "CN=grantor1,O=ptpsec test", .groups = {"plant"}}});
    }
    settings s = node_settings("grantor1");
    s.groups = {node_group{"plant", plant.id, std::nullopt}};
    node n(s, 7);
    constexpr int64_t sec = 1'000'000'000LL;
    const int64_t t0 = 5'000 * sec;
    // At the key's start: 8 s left, exactly.
    n.step(t0);
    ASSERT_EQ(n.groups()[0].keys.size(), 1U) << n.groups()[0].last_error;
    EXPECT_EQ(n.groups()[0].keys[0].end_ns, t0 + 8 * sec);
    // 5.9 s later, in the update period: 2.1 s left, given as 3 s.
    clk.advance(5'900'000'000LL);
    ASSERT_EQ(n.refresh("plant"), 1U);
    n.step(t0 + 5'900'000'000LL);
    const auto& keys = n.groups()[0].keys;
    ASSERT_EQ(keys.size(), 2U) << n.groups()[0].last_error;
    EXPECT_EQ(keys[0].end_ns, t0 + 8 * sec) << "not the rounded-up t0 + 8.9 s";
    EXPECT_EQ(keys[0].retire_ns, t0 + 9 * sec);
    EXPECT_EQ(keys[1].start_ns, t0 + 8 * sec) << "the next key signs from the current one's end";
    EXPECT_EQ(keys[1].end_ns, t0 + 16 * sec);
    EXPECT_EQ(n.stats().keys_received, 2U);
}

// A node renews at a random point of the update period of the key it holds
// (seeds/001 §2.5.1), leaving the last tenth of it for retries: not at once,
// not after the key ends, and not all nodes at the same moment.
TEST_F(node_grantor, renews_at_a_random_point_of_the_update_period) {
    ke::test::test_clocks clk;
    auto plant = ke::test::policy("plant", 0); // lifetime 3600 s, update period 300 s
    auto ks = ke::key_schedule::create({plant}, nullptr, clk);
    ASSERT_TRUE(ks) << ks.message();
    {
        const std::lock_guard lock(_mutex);
        _service = std::make_unique<ke::ke_service>(
            **ks, std::vector<ke::client_rule>{{.subject = "CN=grantor1,O=ptpsec test", .groups = {"plant"}}});
    }
    constexpr int64_t sec = 1'000'000'000LL;
    const int64_t t0 = 5'000 * sec;
    std::set<int64_t> at;
    for (uint64_t seed = 1; seed <= 16; ++seed) {
        settings s = node_settings("grantor1");
        s.groups = {node_group{"plant", plant.id, std::nullopt}};
        node n(s, seed);
        n.step(t0);
        const auto& g = n.groups()[0];
        ASSERT_EQ(g.keys.size(), 1U) << g.last_error;
        const int64_t end = g.keys[0].end_ns;
        EXPECT_EQ(end, t0 + 3600 * sec);
        EXPECT_GE(g.next_fetch_ns, end - 300 * sec) << "seed " << seed << ": before the update period";
        EXPECT_LE(g.next_fetch_ns, end - 30 * sec) << "seed " << seed << ": in the last tenth, kept for retries";
        at.insert(g.next_fetch_ns);
        if (seed == 1) {
            // Nothing is fetched before that point, and the fetch comes at it.
            const uint64_t fetches = n.stats().fetches;
            n.step(g.next_fetch_ns - 1);
            EXPECT_EQ(n.stats().fetches, fetches);
            n.step(g.next_fetch_ns);
            EXPECT_EQ(n.stats().fetches, fetches + 1);
        }
    }
    EXPECT_GE(at.size(), 12U) << "sixteen nodes renew at (nearly) sixteen different moments";
    EXPECT_GT(*at.rbegin() - *at.begin(), 60 * sec) << "spread over the update period";
}

// The server closes the session after an Error record (seeds/001 §4.2.5), so
// a group it refuses must not cost the groups asked after it in the same
// step: the node asks for those on a new session.
TEST_F(node_grantor, a_refused_group_does_not_spoil_the_next_one_in_the_same_step) {
    auto plant = ke::test::policy("plant", 0);
    auto other = ke::test::policy("other", 1);
    auto ks = ke::key_schedule::create({plant, other}, nullptr);
    ASSERT_TRUE(ks) << ks.message();
    {
        const std::lock_guard lock(_mutex);
        _service = std::make_unique<ke::ke_service>(
            **ks, std::vector<ke::client_rule>{{.subject = "CN=grantor1,O=ptpsec test", .groups = {"plant"}}});
    }
    settings s = node_settings("grantor1");
    s.groups = {node_group{"other", other.id, std::nullopt}, node_group{"plant", plant.id, std::nullopt}};
    node n(s, 7);
    n.step(mono_now());
    ASSERT_EQ(n.groups().size(), 2U);
    EXPECT_TRUE(n.groups()[0].keys.empty());
    EXPECT_NE(n.groups()[0].last_error.find("Not Authorized"), std::string::npos) << n.groups()[0].last_error;
    ASSERT_EQ(n.groups()[1].keys.size(), 1U) << n.groups()[1].last_error;
    EXPECT_EQ(n.stats().sessions, 2U) << "one session per refusal, then a new one";
}

// A grantor with a TPM: a rule with `attest` registers it only when its PTP
// Registration Request carries a quote of its enrolled platform state made
// for that TLS session (swtpm, a real Registrar).
TEST_F(node_grantor, quotes_its_platform_in_the_registration_for_a_rule_with_attest) {
    if (!test::swtpm::available()) {
        GTEST_FAIL() << "swtpm is not installed (make deps installs it)";
    }
    test::swtpm tpm;
    const auto signer = test::open_tpm_signer(tpm, "gm1-tpm");
    ASSERT_NE(signer, nullptr);
    auto reg = verifier::registrar::open(_dir.file("registrar.db"));
    ASSERT_TRUE(reg) << reg.message();
    const std::vector<unsigned> pcrs{0, 7};
    ASSERT_TRUE(verifier::enrol_tpm(**reg, *signer, "gm1-tpm", test::current_pcrs(*signer, pcrs)));
    {
        const std::lock_guard lock(_mutex);
        _service = std::make_unique<ke::ke_service>(
            *_keys,
            std::vector<ke::client_rule>{
                {.subject = "CN=grantor1,O=ptpsec test", .grantor = true, .attest = "gm1-tpm"}},
            _registry.get());
        _service->set_platform_check([&](const nts::platform_attestation& a, std::span<const uint8_t> binding) {
            return (*reg)->check_platform(a.signer_id, a.attest, a.signature, binding);
        });
    }
    const auto quote = [&](std::span<const uint8_t> binding) -> result<nts::platform_attestation> {
        auto q = signer->quote(binding, pcrs);
        if (!q) {
            return q.err();
        }
        return nts::platform_attestation{"gm1-tpm", std::move(q->attest), std::move(q->signature)};
    };

    grantor plain = make();
    plain.step(mono_now());
    EXPECT_EQ(plain.stats().registrations, 0U);
    EXPECT_NE(plain.last_error().find("refused the registration: Not Authorized"), std::string::npos)
        << plain.last_error();

    grantor attested = make("grantor1", quote);
    attested.step(mono_now());
    EXPECT_EQ(attested.stats().registrations, 1U) << attested.last_error();
    EXPECT_EQ(attested.stats().quotes, 1U);
    EXPECT_EQ(attested.keys().size(), 1U);
    const std::lock_guard lock(_mutex);
    EXPECT_EQ(_service->stats().attestations_verified, 1U);
    EXPECT_EQ(_service->stats().refused_unattested, 1U);
}

TEST_F(node_grantor, a_refused_registration_backs_off_and_says_why) {
    grantor g = make("other");
    const int64_t now = mono_now();
    g.step(now);
    EXPECT_EQ(g.stats().registrations, 0U);
    EXPECT_EQ(g.stats().registration_failures, 1U);
    EXPECT_TRUE(g.keys().empty());
    EXPECT_NE(g.last_error().find("refused the registration"), std::string::npos) << g.last_error();
    EXPECT_GE(g.next_registration_ns(), now + 50 * 1'000'000LL);
    EXPECT_LE(g.next_registration_ns(), now + 100 * 1'000'000LL);
}

// The requester side: a node with [[node.unicast]] asks for a unicast key to
// the grantor and keeps the ticket with it, for its data plane to send.
TEST_F(node_grantor, a_requester_node_gets_a_unicast_key_with_its_ticket) {
    grantor g = make();
    const int64_t now = mono_now();
    g.step(now);
    ASSERT_EQ(g.keys().size(), 1U) << g.last_error();

    settings s = node_settings("other");
    node_group target;
    target.name = "unicast to 10.0.0.1";
    target.unicast = unicast_target{nts::ipv4_address{{10, 0, 0, 1}}, requester_pid,
                                    std::vector{nts::mac_algorithm::aes_gmac_256, nts::mac_algorithm::hmac_sha256_128}};
    s.groups = {target};
    node n(s, 3);
    n.step(now);
    ASSERT_EQ(n.stats().keys_received, 1U) << n.groups()[0].last_error;
    const held_key& k = n.groups()[0].keys.front();
    EXPECT_EQ(k.alg, icv::algorithm::aes_gmac_256);
    EXPECT_EQ(k.spp, _registry->spp());
    ASSERT_FALSE(k.ticket.empty());
    // What the data plane will send opens at the grantor to the same key.
    auto opened = g.open_request(unicast_request{k.ticket, requester_pid, 1, k.spp, k.key_id}, now);
    ASSERT_TRUE(opened) << opened.message();
    EXPECT_EQ(opened->sa.key_id, k.key_id);
    EXPECT_TRUE(std::equal(opened->sa.key.begin(), opened->sa.key.end(), k.key.begin(), k.key.end()));
    EXPECT_GT(n.groups()[0].next_fetch_ns, now) << "renewal scheduled";

    // A grantor nobody registered: the node says so and backs off.
    node_group nowhere = target;
    nowhere.name = "unicast to 10.9.9.9";
    nowhere.unicast->grantor = nts::ipv4_address{{10, 9, 9, 9}};
    s.groups = {nowhere};
    node lost(s, 4);
    lost.step(now);
    EXPECT_EQ(lost.stats().fetch_failures, 1U);
    EXPECT_NE(lost.groups()[0].last_error.find("Grantor not Registered"), std::string::npos)
        << lost.groups()[0].last_error;
}

TEST(ticket_tlv, is_the_ticket_record_padded_only_to_an_even_length) {
    nts::ticket t;
    t.ticket_key_id = 278;
    t.nonce.assign(16, 0xA0);
    for (size_t enc : {size_t{57}, size_t{56}}) {
        t.encrypted_sa.assign(enc, 0x42);
        const auto v = ticket_tlv_value(t);
        EXPECT_EQ(v.size() % 2, 0U);
        auto back = parse_ticket_tlv(v);
        ASSERT_TRUE(back) << back.message();
        EXPECT_EQ(*back, t);
    }
    // A record of even length (4 + 18 + 16 + 56 = 94) takes no padding octet,
    // a record of odd length at most one, and it must be zero.
    t.encrypted_sa.assign(56, 0x42);
    auto even = ticket_tlv_value(t);
    even.push_back(0);
    auto r = parse_ticket_tlv(even);
    ASSERT_FALSE(r);
    EXPECT_NE(r.message().find("when the record's length is odd"), std::string::npos) << r.message();
    t.encrypted_sa.assign(57, 0x42);
    auto odd = ticket_tlv_value(t);
    EXPECT_TRUE(parse_ticket_tlv(std::span(odd).first(odd.size() - 1))) << "unpadded is accepted";
    odd.back() = 1;
    EXPECT_FALSE(parse_ticket_tlv(odd)) << "a padding octet that is not zero";
    odd.back() = 0;
    odd.push_back(0);
    odd.push_back(0);
    EXPECT_FALSE(parse_ticket_tlv(odd)) << "more than one padding octet";
    const std::vector<uint8_t> not_a_ticket{0x84, 0x09, 0x00, 0x00};
    r = parse_ticket_tlv(not_a_ticket);
    ASSERT_FALSE(r);
    EXPECT_NE(r.message().find("record type 1033, not a Ticket"), std::string::npos) << r.message();
    for (size_t n : {0, 3}) {
        r = parse_ticket_tlv(std::span(not_a_ticket).first(n));
        ASSERT_FALSE(r) << n;
        EXPECT_EQ(r.message(), "the TICKET TLV is too short to hold a Ticket record") << n;
    }
}

} // namespace
} // namespace ptpsec::node
