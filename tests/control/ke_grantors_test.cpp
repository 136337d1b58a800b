// Ticket-based mode on the KE server (control/ke/grantors.h, the NTS-TSR side
// of control/ke/ke_service.h): registrations and their ticket keys, AEAD and
// MAC negotiation, unicast keys whose tickets the grantor opens with the key
// it was given, heartbeats, revokes, expiry, and the state across a restart.
// Requests are built and responses parsed with the codec, as on the wire.

#include "../process.h"

#include <control/ke/grantors.h>
#include <control/ke/ke_service.h>
#include <control/ke/store.h>
#include <control/ke/ticket_crypto.h>
#include <control/nts/message.h>

#include "ke_test_support.h"

#include <gtest/gtest.h>

#include <set>

namespace ptpsec::ke {
namespace {

using nts::aead_algorithm;
using nts::mac_algorithm;
using test::policy;
using test::s;
using test::state_holds;
using test::test_clocks;

const nts::port_identity grantor_pid{{0x00, 0x1b, 0x21, 0xff, 0xfe, 0x00, 0x00, 0x01}, 1};
const nts::port_identity requester_pid{{0x00, 0x1b, 0x21, 0xff, 0xfe, 0x00, 0x00, 0x02}, 1};
const nts::ipv4_address grantor_ip{{10, 0, 0, 1}};
const nts::ipv6_address grantor_ip6{{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
const nts::mac_address grantor_mac{{0x02, 0, 0, 0, 0, 1}};

nts::registration_request registration(std::vector<aead_algorithm> aead = {aead_algorithm::aes_siv_cmac_256},
                                       std::vector<mac_algorithm> macs = {mac_algorithm::hmac_sha256_128,
                                                                          mac_algorithm::aes_gmac_256}) {
    nts::registration_request r;
    r.time_server.addresses = {grantor_pid, grantor_ip, grantor_ip6, grantor_mac};
    r.aead_algorithms = std::move(aead);
    r.supported_mac_algorithms = std::move(macs);
    return r;
}

nts::key_request unicast_request(nts::association_value to = grantor_ip,
                                 std::optional<std::vector<mac_algorithm>> macs = std::nullopt) {
    nts::key_request r;
    r.association = to;
    r.source_port_identity = requester_pid;
    r.supported_mac_algorithms = std::move(macs);
    return r;
}

unicast_policy ticket_policy() {
    unicast_policy p;
    p.enabled = true;
    p.lifetime_s = 3600;
    p.update_period_s = 300;
    p.grace_period_s = 3;
    return p;
}

class grantors_test : public testing::Test {
protected:
    void start(unicast_policy p = ticket_policy(), std::shared_ptr<sqlite_store> store = nullptr) {
        _reg.reset();
        auto ks = key_schedule::create({policy("plant", 0)}, store, _clk);
        ASSERT_TRUE(ks) << ks.message();
        _keys = std::move(ks).value();
        auto r = grantor_registry::create(std::move(p), *_keys, store, _clk);
        ASSERT_TRUE(r) << r.message();
        _reg = std::move(r).value();
    }
    void SetUp() override { start(); }

    nts::registration_grant register_ok(const std::string& owner = "CN=grantor1",
                                        nts::registration_request req = registration()) {
        auto g = _reg->register_grantor(owner, req);
        EXPECT_TRUE(g) << g.err().message;
        if (!g) {
            return {};
        }
        // What goes on the wire must survive the codec.
        nts::registration_response resp{*g};
        EXPECT_TRUE(nts::validate(resp));
        return *g;
    }

    test_clocks _clk;
    std::unique_ptr<key_schedule> _keys;
    std::unique_ptr<grantor_registry> _reg;
};

TEST_F(grantors_test, a_registration_gets_a_ticket_key_of_the_chosen_aead_for_the_current_period) {
    const auto g = register_ok();
    EXPECT_EQ(g.current.aead, aead_algorithm::aes_siv_cmac_256);
    EXPECT_EQ(g.current.ticket_key.size(), 32U);
    EXPECT_EQ(g.current.validity, (nts::validity_period{3600, 300, 3}));
    EXPECT_FALSE(g.next) << "outside the update period";
    EXPECT_FALSE(g.heartbeat_timeout) << "not configured";
    EXPECT_EQ(_reg->grantors().size(), 1U);
    EXPECT_EQ(_reg->stats().registrations, 1U);
    // The unicast SPP is not the group's.
    EXPECT_NE(_reg->spp(), _keys->spp_of("plant"));
}

TEST_F(grantors_test, aead_negotiation_takes_the_grantors_first_choice_the_server_offers) {
    auto g =
        register_ok("CN=grantor1", registration({aead_algorithm::aes_siv_cmac_512, aead_algorithm::aes_siv_cmac_256}));
    EXPECT_EQ(g.current.aead, aead_algorithm::aes_siv_cmac_512);
    EXPECT_EQ(g.current.ticket_key.size(), 64U);

    auto p = ticket_policy();
    p.aead_algorithms = {aead_algorithm::aes_siv_cmac_256};
    start(p);
    g = register_ok("CN=grantor1", registration({aead_algorithm::aes_siv_cmac_512, aead_algorithm::aes_siv_cmac_256}));
    EXPECT_EQ(g.current.aead, aead_algorithm::aes_siv_cmac_256);

    // The codec insists on AES-SIV-CMAC-256 in a request; a request built
    // past it with only an algorithm the server does not offer is refused.
    nts::registration_request odd = registration({aead_algorithm::aes_siv_cmac_384});
    odd.time_server.addresses = {nts::port_identity{{9, 9, 9, 9, 9, 9, 9, 9}, 1}};
    auto r = _reg->register_grantor("CN=grantor2", odd);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, nts::error_code::bad_request);
    EXPECT_NE(r.err().message.find("AEAD"), std::string::npos) << r.err().message;
}

TEST_F(grantors_test, a_unicast_key_comes_with_a_ticket_only_the_grantor_can_open) {
    const auto reg = register_ok();
    auto g = _reg->grant(unicast_request());
    ASSERT_TRUE(g) << g.err().message;
    ASSERT_TRUE(nts::validate(nts::key_response{{nts::next_protocol::ptpv2_1}, *g}));
    const auto& cur = g->current;
    EXPECT_EQ(cur.sa.spp, _reg->spp());
    EXPECT_EQ(cur.sa.integrity_algorithm, mac_algorithm::hmac_sha256_128) << "no list: the default";
    EXPECT_EQ(cur.sa.key.size(), 32U);
    EXPECT_EQ(cur.validity, (nts::validity_period{3600, 300, 3}));
    ASSERT_TRUE(cur.unicast);
    EXPECT_EQ(cur.unicast->time_server, registration().time_server);
    const auto& t = cur.unicast->ticket;
    EXPECT_EQ(t.ticket_key_id, reg.current.ticket_key_id);
    EXPECT_EQ(t.source_port_identity, requester_pid);
    EXPECT_EQ(t.nonce.size(), ticket_nonce_len);
    // The grantor's view: its ticket key opens the ticket to the same SA.
    auto inside = open_ticket(t, reg.current.aead, reg.current.ticket_key);
    ASSERT_TRUE(inside) << inside.message();
    EXPECT_EQ(*inside, cur.sa);
    // Another key does not.
    auto wrong = reg.current.ticket_key;
    wrong[0] ^= 1;
    EXPECT_FALSE(open_ticket(t, reg.current.aead, wrong));
    EXPECT_FALSE(g->next);
    EXPECT_EQ(_reg->stats().unicast_keys, 1U);
}

TEST_F(grantors_test, every_request_gets_a_key_of_its_own_with_a_never_used_key_id) {
    register_ok();
    auto group = _keys->parameters("plant");
    ASSERT_TRUE(group);
    std::set<uint32_t> ids{group->current.key_id};
    std::set<std::vector<uint8_t>> keys;
    for (const nts::association_value& to :
         {nts::association_value{grantor_ip}, nts::association_value{grantor_ip6}, nts::association_value{grantor_mac},
          nts::association_value{grantor_pid}}) {
        auto g = _reg->grant(unicast_request(to));
        ASSERT_TRUE(g) << g.err().message;
        EXPECT_TRUE(ids.insert(g->current.sa.key_id).second);
        EXPECT_TRUE(keys.insert({g->current.sa.key.begin(), g->current.sa.key.end()}).second);
    }
    auto next_group = _keys->parameters("plant");
    ASSERT_TRUE(next_group);
    EXPECT_EQ(next_group->current.key_id, group->current.key_id);
}

TEST_F(grantors_test, unknown_grantors_and_self_requests_are_refused) {
    auto none = _reg->grant(unicast_request());
    ASSERT_FALSE(none);
    EXPECT_EQ(none.err().code, nts::error_code::grantor_not_registered);
    register_ok();
    auto other = _reg->grant(unicast_request(nts::ipv4_address{{10, 0, 0, 99}}));
    ASSERT_FALSE(other);
    EXPECT_EQ(other.err().code, nts::error_code::grantor_not_registered);
    auto self = unicast_request();
    self.source_port_identity = grantor_pid;
    auto r = _reg->grant(self);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, nts::error_code::bad_request);
}

TEST_F(grantors_test, mac_negotiation_follows_the_requesters_order_within_what_the_grantor_runs) {
    register_ok();
    auto g = _reg->grant(unicast_request(grantor_ip, {{mac_algorithm::aes_gmac_256, mac_algorithm::hmac_sha256_128}}));
    ASSERT_TRUE(g) << g.err().message;
    EXPECT_EQ(g->current.sa.integrity_algorithm, mac_algorithm::aes_gmac_256);
    EXPECT_EQ(g->current.sa.key.size(), 32U);
    // The grantor does not run AES-CMAC: the next one in the list.
    g = _reg->grant(unicast_request(grantor_ip, {{mac_algorithm::aes_cmac, mac_algorithm::hmac_sha256_128}}));
    ASSERT_TRUE(g) << g.err().message;
    EXPECT_EQ(g->current.sa.integrity_algorithm, mac_algorithm::hmac_sha256_128);

    // Nothing in common (a list without HMAC-SHA256-128 gets past the codec
    // only by hand).
    nts::key_request odd = unicast_request(grantor_ip, {{mac_algorithm::aes_cmac}});
    auto r = _reg->grant(odd);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, nts::error_code::bad_request);

    // The policy can forbid an algorithm both sides run.
    auto p = ticket_policy();
    p.mac_algorithms = {mac_algorithm::hmac_sha256_128};
    start(p);
    register_ok();
    g = _reg->grant(unicast_request(grantor_ip, {{mac_algorithm::aes_gmac_256, mac_algorithm::hmac_sha256_128}}));
    ASSERT_TRUE(g) << g.err().message;
    EXPECT_EQ(g->current.sa.integrity_algorithm, mac_algorithm::hmac_sha256_128);
}

TEST_F(grantors_test, next_parameters_appear_in_the_update_period_once_the_grantor_renewed) {
    const auto first = register_ok();
    _clk.advance(3400 * s); // 200 s left: inside the 300 s update period
    auto g = _reg->grant(unicast_request());
    ASSERT_TRUE(g) << g.err().message;
    EXPECT_FALSE(g->next) << "the grantor holds no next ticket key yet";
    EXPECT_EQ(g->current.validity.lifetime, 200U);

    const auto renewed = register_ok();
    EXPECT_EQ(renewed.current.ticket_key_id, first.current.ticket_key_id);
    EXPECT_EQ(renewed.current.ticket_key, first.current.ticket_key);
    EXPECT_EQ(renewed.current.validity.lifetime, 200U);
    ASSERT_TRUE(renewed.next);
    EXPECT_NE(renewed.next->ticket_key_id, first.current.ticket_key_id);
    EXPECT_NE(renewed.next->ticket_key, first.current.ticket_key);
    EXPECT_EQ(renewed.next->validity, (nts::validity_period{3600, 300, 3}));
    EXPECT_EQ(_reg->stats().renewals, 1U);

    g = _reg->grant(unicast_request());
    ASSERT_TRUE(g) << g.err().message;
    ASSERT_TRUE(g->next);
    EXPECT_NE(g->next->sa.key_id, g->current.sa.key_id);
    EXPECT_EQ(g->next->validity.lifetime, 3600U);
    EXPECT_EQ(g->next->unicast->ticket.ticket_key_id, renewed.next->ticket_key_id);
    auto inside = open_ticket(g->next->unicast->ticket, renewed.next->aead, renewed.next->ticket_key);
    ASSERT_TRUE(inside) << inside.message();
    EXPECT_EQ(*inside, g->next->sa);

    // Past the end the next period is the current one.
    _clk.advance(201 * s);
    g = _reg->grant(unicast_request());
    ASSERT_TRUE(g) << g.err().message;
    EXPECT_EQ(g->current.unicast->ticket.ticket_key_id, renewed.next->ticket_key_id);
    EXPECT_EQ(g->current.validity.lifetime, 3599U);
}

TEST_F(grantors_test, a_grantor_that_does_not_renew_is_forgotten_after_its_grace_period) {
    register_ok();
    _clk.advance(3600 * s + 2 * s);
    EXPECT_EQ(_reg->expire(), 0U) << "still in its grace period";
    auto g = _reg->grant(unicast_request());
    ASSERT_FALSE(g) << "no ticket key covers now";
    EXPECT_EQ(g.err().code, nts::error_code::grantor_not_registered);
    _clk.advance(2 * s);
    EXPECT_EQ(_reg->expire(), 1U);
    EXPECT_TRUE(_reg->grantors().empty());
    EXPECT_EQ(_reg->stats().dropped_expired, 1U);
}

TEST_F(grantors_test, heartbeats_are_taken_when_asked_for_and_their_absence_drops_the_grantor) {
    EXPECT_EQ(_reg->heartbeat("CN=grantor1"), grantor_registry::heartbeat_outcome::not_registered);
    register_ok();
    EXPECT_EQ(_reg->heartbeat("CN=grantor1"), grantor_registry::heartbeat_outcome::not_requested);

    auto p = ticket_policy();
    p.heartbeat_timeout_s = 20;
    p.missed_heartbeats = 2;
    start(p);
    const auto g = register_ok();
    ASSERT_TRUE(g.heartbeat_timeout);
    EXPECT_EQ(*g.heartbeat_timeout, 20);
    _clk.advance(15 * s);
    EXPECT_EQ(_reg->heartbeat("CN=grantor1"), grantor_registry::heartbeat_outcome::accepted);
    _clk.advance(1 * s);
    EXPECT_EQ(_reg->heartbeat("CN=grantor1"), grantor_registry::heartbeat_outcome::too_frequent)
        << "closer than a quarter of the timeout";
    _clk.advance(5 * s);
    EXPECT_EQ(_reg->heartbeat("CN=grantor1"), grantor_registry::heartbeat_outcome::accepted);
    EXPECT_EQ(_reg->heartbeat("CN=someone-else"), grantor_registry::heartbeat_outcome::not_registered);
    _clk.advance(39 * s);
    EXPECT_EQ(_reg->expire(), 0U) << "two timeouts are allowed to pass";
    _clk.advance(2 * s);
    EXPECT_EQ(_reg->expire(), 1U);
    EXPECT_EQ(_reg->stats().dropped_heartbeat, 1U);
    EXPECT_EQ(_reg->stats().heartbeats, 2U);
    auto r = _reg->grant(unicast_request());
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, nts::error_code::grantor_not_registered);
}

TEST_F(grantors_test, only_the_owner_revokes_and_registers_again) {
    register_ok();
    EXPECT_EQ(_reg->revoke("CN=intruder", grantor_pid), grantor_registry::revoke_outcome::not_owner);
    auto stolen = _reg->register_grantor("CN=intruder", registration());
    ASSERT_FALSE(stolen);
    EXPECT_EQ(stolen.err().code, nts::error_code::not_authorized);
    // Another grantor may not claim its addresses either.
    auto clash = registration();
    clash.time_server.addresses = {nts::port_identity{{7, 7, 7, 7, 7, 7, 7, 7}, 1}, grantor_ip};
    auto r = _reg->register_grantor("CN=grantor2", clash);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.err().code, nts::error_code::not_authorized);
    EXPECT_NE(r.err().message.find("belongs to grantor"), std::string::npos) << r.err().message;
    ASSERT_TRUE(_reg->grant(unicast_request()));

    EXPECT_EQ(_reg->revoke("CN=grantor1", grantor_pid), grantor_registry::revoke_outcome::revoked);
    EXPECT_EQ(_reg->revoke("CN=grantor1", grantor_pid), grantor_registry::revoke_outcome::not_registered);
    auto g = _reg->grant(unicast_request());
    ASSERT_FALSE(g);
    EXPECT_EQ(g.err().code, nts::error_code::grantor_not_registered);
}

TEST_F(grantors_test, a_restart_keeps_registrations_ticket_keys_and_never_reuses_a_key_id) {
    ptpsec::test::temp_dir dir;
    const std::string path = dir.file("state.db");
    nts::registration_grant before;
    uint8_t spp = 0;
    uint32_t last_unicast_id = 0;
    {
        auto store = sqlite_store::open(path);
        ASSERT_TRUE(store) << store.message();
        start(ticket_policy(), *store);
        before = register_ok();
        spp = _reg->spp();
        auto g = _reg->grant(unicast_request());
        ASSERT_TRUE(g);
        last_unicast_id = g->current.sa.key_id;
    }
    _clk.mono = 7 * s; // a reboot; 30 s of wall-clock time went by
    _clk.wall += 30 * s;
    auto store = sqlite_store::open(path);
    ASSERT_TRUE(store) << store.message();
    start(ticket_policy(), *store);
    EXPECT_EQ(_reg->spp(), spp);
    ASSERT_EQ(_reg->grantors().size(), 1U);
    const grantor_record& g = *_reg->grantors().front();
    EXPECT_EQ(g.owner, "CN=grantor1");
    EXPECT_EQ(g.time_server, registration().time_server);
    ASSERT_EQ(g.epochs.size(), 1U);
    EXPECT_EQ(g.epochs[0].ticket_key_id, before.current.ticket_key_id);
    EXPECT_TRUE(std::equal(g.epochs[0].key.span().begin(), g.epochs[0].key.span().end(),
                           before.current.ticket_key.begin(), before.current.ticket_key.end()));

    auto k = _reg->grant(unicast_request());
    ASSERT_TRUE(k) << k.err().message;
    EXPECT_GT(k->current.sa.key_id, last_unicast_id);
    EXPECT_EQ(k->current.validity.lifetime, 3600U - 30U);
    auto inside = open_ticket(k->current.unicast->ticket, before.current.aead, before.current.ticket_key);
    ASSERT_TRUE(inside) << "the grantor's ticket key from before the restart opens it: " << inside.message();
    // The group's next key does not take an ID handed out before.
    auto grp = _keys->parameters("plant");
    ASSERT_TRUE(grp);
    EXPECT_GT(grp->current.key_id, last_unicast_id);

    // A revoke is durable too.
    EXPECT_EQ(_reg->revoke("CN=grantor1", grantor_pid), grantor_registry::revoke_outcome::revoked);
    start(ticket_policy(), *store);
    EXPECT_TRUE(_reg->grantors().empty());
}

// A grantor's ticket key leaves the state file (and its write-ahead log)
// with the grantor: revoked, or forgotten after its grace period.
TEST_F(grantors_test, a_revoked_or_forgotten_grantors_ticket_key_is_in_neither_the_state_file_nor_its_wal) {
    ptpsec::test::temp_dir dir;
    const std::string path = dir.file("state.db");
    auto store = sqlite_store::open(path);
    ASSERT_TRUE(store) << store.message();
    start(ticket_policy(), *store);
    const nts::registration_grant revoked = register_ok();
    const std::vector<uint8_t> revoked_key(revoked.current.ticket_key.begin(), revoked.current.ticket_key.end());
    ASSERT_GE(revoked_key.size(), 32U);
    EXPECT_TRUE(state_holds(path, revoked_key)) << "saved before it is handed out";
    EXPECT_EQ(_reg->revoke("CN=grantor1", grantor_pid), grantor_registry::revoke_outcome::revoked);
    EXPECT_FALSE(state_holds(path, revoked_key));

    const nts::registration_grant forgotten = register_ok();
    const std::vector<uint8_t> forgotten_key(forgotten.current.ticket_key.begin(), forgotten.current.ticket_key.end());
    EXPECT_NE(forgotten_key, revoked_key);
    EXPECT_TRUE(state_holds(path, forgotten_key));
    _clk.advance(3600 * s + 4 * s); // past its lifetime and grace period, not renewed
    EXPECT_EQ(_reg->expire(), 1U);
    EXPECT_FALSE(state_holds(path, forgotten_key));
}

TEST(unicast_policy, refuses_what_cannot_work) {
    auto p = ticket_policy();
    EXPECT_TRUE(validate(p));
    p.aead_algorithms = {aead_algorithm::aes_siv_cmac_512};
    EXPECT_NE(validate(p).message().find("AEAD_AES_SIV_CMAC_256"), std::string::npos);
    p = ticket_policy();
    p.mac_algorithms = {mac_algorithm::aes_gmac_256};
    EXPECT_NE(validate(p).message().find("HMAC-SHA256-128"), std::string::npos);
    p = ticket_policy();
    p.grace_period_s = 400;
    EXPECT_NE(validate(p).message().find("grace period"), std::string::npos);
    p = ticket_policy();
    p.missed_heartbeats = 0;
    EXPECT_NE(validate(p).message().find("missed-heartbeats"), std::string::npos);
}

// --- Through ke_service, as bytes ------------------------------------------------

class tsr_service_test : public grantors_test {
protected:
    void SetUp() override {
        auto p = ticket_policy();
        p.heartbeat_timeout_s = 60;
        start(p);
        _service =
            std::make_unique<ke_service>(*_keys,
                                         std::vector<client_rule>{{"CN=grantor1", "", {}, true, false, false},
                                                                  {"CN=grantor2", "", {}, true, false, false},
                                                                  {"CN=node1", "", {"plant"}, false, false, true},
                                                                  {"CN=node2", "", {"plant"}, false, false, false}},
                                         _reg.get());
    }

    static nts::error_code error_of(const std::vector<uint8_t>& bytes) {
        auto r = nts::parse_registration_response(bytes);
        EXPECT_TRUE(r && r->is_error());
        return r && r->is_error() ? std::get<nts::error_code>(r->outcome) : nts::error_code{999};
    }
    static nts::error_code key_error_of(const std::vector<uint8_t>& bytes) {
        auto r = nts::parse_key_response(bytes);
        EXPECT_TRUE(r && r->is_error());
        return r && r->is_error() ? std::get<nts::error_code>(r->outcome) : nts::error_code{999};
    }

    std::unique_ptr<ke_service> _service;
};

TEST_F(tsr_service_test, registration_revoke_and_heartbeat_on_the_wire) {
    const client_identity g1{"CN=grantor1", {}};
    auto a = _service->handle_tsr(g1, nts::build(registration()));
    EXPECT_FALSE(a.close);
    auto resp = nts::parse_registration_response(a.message);
    ASSERT_TRUE(resp) << resp.err().message;
    ASSERT_FALSE(resp->is_error());
    EXPECT_EQ(std::get<nts::registration_grant>(resp->outcome).heartbeat_timeout, 60);

    _clk.advance(30 * s);
    auto hb = _service->handle_tsr(g1, nts::build(nts::heartbeat{}));
    EXPECT_TRUE(hb.message.empty()) << "a heartbeat has no response";
    EXPECT_FALSE(hb.close);
    EXPECT_EQ(_service->stats().heartbeats, 1U);
    hb = _service->handle_tsr(g1, nts::build(nts::heartbeat{}));
    EXPECT_TRUE(hb.message.empty());
    EXPECT_EQ(_service->stats().heartbeats_discarded, 1U);

    // Someone else's registration is not the second grantor's to revoke.
    auto not_yours = _service->handle_tsr({"CN=grantor2", {}}, nts::build(nts::registration_revoke{grantor_pid}));
    EXPECT_TRUE(not_yours.close);
    EXPECT_EQ(error_of(not_yours.message), nts::error_code::not_authorized);
    auto rev = _service->handle_tsr(g1, nts::build(nts::registration_revoke{grantor_pid}));
    EXPECT_TRUE(rev.message.empty());
    EXPECT_TRUE(rev.close);
    EXPECT_EQ(_service->stats().revokes, 1U);
    auto again = _service->handle_tsr(g1, nts::build(nts::registration_revoke{grantor_pid}));
    EXPECT_EQ(error_of(again.message), nts::error_code::grantor_not_registered);
    auto late = _service->handle_tsr(g1, nts::build(nts::heartbeat{}));
    EXPECT_TRUE(late.close);
    EXPECT_EQ(error_of(late.message), nts::error_code::grantor_not_registered);
}

// A grantor whose right the rules took away (a new configuration over the
// kept state) can neither revoke its registration nor keep it alive with
// heartbeats: Not Authorized, the registry as it was.
TEST_F(tsr_service_test, revoke_and_heartbeat_need_the_grantor_right_still) {
    const client_identity g1{"CN=grantor1", {}};
    ASSERT_FALSE(_service->handle_tsr(g1, nts::build(registration())).close);
    ASSERT_EQ(_reg->grantors().size(), 1U);
    ke_service without(*_keys, std::vector<client_rule>{{"CN=grantor1", "", {"plant"}, false, false, false}},
                       _reg.get());
    _clk.advance(30 * s);
    auto hb = without.handle_tsr(g1, nts::build(nts::heartbeat{}));
    EXPECT_TRUE(hb.close);
    EXPECT_EQ(error_of(hb.message), nts::error_code::not_authorized);
    EXPECT_EQ(without.stats().heartbeats, 0U);
    auto rev = without.handle_tsr(g1, nts::build(nts::registration_revoke{grantor_pid}));
    EXPECT_TRUE(rev.close);
    EXPECT_EQ(error_of(rev.message), nts::error_code::not_authorized);
    EXPECT_EQ(without.stats().revokes, 0U);
    EXPECT_EQ(_reg->grantors().size(), 1U);
    EXPECT_EQ(_reg->stats().heartbeats, 0U);
    // The rules that grant it: both go through.
    EXPECT_TRUE(_service->handle_tsr(g1, nts::build(nts::heartbeat{})).message.empty());
    EXPECT_EQ(_service->stats().heartbeats, 1U);
    EXPECT_TRUE(_service->handle_tsr(g1, nts::build(nts::registration_revoke{grantor_pid})).message.empty());
    EXPECT_TRUE(_reg->grantors().empty());
}

TEST_F(tsr_service_test, refusals_leave_the_registry_as_it_was) {
    // No grantor right.
    auto a = _service->handle_tsr({"CN=node1", {}}, nts::build(registration()));
    EXPECT_TRUE(a.close);
    EXPECT_EQ(error_of(a.message), nts::error_code::not_authorized);
    // Bytes that are no NTS-TSR message.
    auto b = _service->handle_tsr({"CN=grantor1", {}}, nts::build(unicast_request()));
    EXPECT_TRUE(b.close);
    EXPECT_EQ(error_of(b.message), nts::error_code::bad_request);
    EXPECT_TRUE(_reg->grantors().empty());
    EXPECT_EQ(_service->stats().refused[3], 1U);
    EXPECT_EQ(_service->stats().refused[1], 1U);
}

TEST_F(tsr_service_test, unicast_keys_need_the_unicast_right) {
    ASSERT_FALSE(_service->handle_tsr({"CN=grantor1", {}}, nts::build(registration())).close);
    auto denied = _service->handle_key_request({"CN=node2", {}}, nts::build(unicast_request()));
    EXPECT_EQ(key_error_of(denied.message), nts::error_code::not_authorized);
    EXPECT_TRUE(denied.close);
    auto ok = _service->handle_key_request({"CN=node1", {}}, nts::build(unicast_request()));
    EXPECT_FALSE(ok.close);
    auto resp = nts::parse_key_response(ok.message);
    ASSERT_TRUE(resp) << resp.err().message;
    ASSERT_FALSE(resp->is_error());
    EXPECT_TRUE(std::get<nts::key_grant>(resp->outcome).current.unicast);
    EXPECT_EQ(_service->stats().unicast_granted, 1U);
    auto nobody =
        _service->handle_key_request({"CN=node1", {}}, nts::build(unicast_request(nts::ipv4_address{{192, 0, 2, 1}})));
    EXPECT_EQ(key_error_of(nobody.message), nts::error_code::grantor_not_registered);
    EXPECT_TRUE(nobody.close);
}

TEST(ke_service_without_tickets, answers_grantor_not_registered_and_not_authorized) {
    test_clocks clk;
    auto ks = key_schedule::create({policy("plant", 0)}, nullptr, clk);
    ASSERT_TRUE(ks);
    ke_service svc(**ks, {{"CN=g", "", {}, true, false, true}});
    auto k = nts::parse_key_response(svc.handle_key_request({"CN=g", {}}, nts::build(unicast_request())).message);
    ASSERT_TRUE(k && k->is_error());
    EXPECT_EQ(std::get<nts::error_code>(k->outcome), nts::error_code::grantor_not_registered);
    auto a = svc.handle_tsr({"CN=g", {}}, nts::build(registration()));
    auto r = nts::parse_registration_response(a.message);
    ASSERT_TRUE(r && r->is_error());
    EXPECT_EQ(std::get<nts::error_code>(r->outcome), nts::error_code::not_authorized);
}

} // namespace
} // namespace ptpsec::ke
