// The NTS-KE request handler (control/ke/ke_service.h): PTP Key Requests
// built with the codec go in, the responses are parsed with the codec, and
// the keys are checked against the key schedule.

#include <control/ke/ke_service.h>
#include <control/nts/message.h>

#include "ke_test_support.h"

#include <gtest/gtest.h>

namespace ptpsec::ke {
namespace {

using test::policy;
using test::refusing_store;
using test::s;
using test::test_clocks;

std::vector<uint8_t> group_request(uint8_t domain, uint16_t sdo_id = 0x100, uint16_t subgroup = 0) {
    nts::key_request r;
    r.association = nts::group_number{domain, sdo_id, subgroup};
    return nts::build(r);
}

class ke_service_test : public testing::Test {
protected:
    void SetUp() override {
        auto ks = key_schedule::create(
            {policy("hmac", 0, icv::algorithm::hmac_sha256_128), policy("cmac", 1, icv::algorithm::aes_cmac_128)},
            nullptr, _clk);
        ASSERT_TRUE(ks) << ks.message();
        _keys = std::move(ks).value();
        _service = std::make_unique<ke_service>(
            *_keys, std::vector<client_rule>{{"CN=node1,O=ptpsec", "", {"hmac"}, false, false},
                                             {"", "DNS:tc1.example", {"*"}, false, true}});
    }

    nts::key_response ask(const client_identity& who, std::span<const uint8_t> request) {
        const answer a = _service->handle_key_request(who, request);
        auto resp = nts::parse_key_response(a.message);
        EXPECT_TRUE(resp) << resp.err().message;
        // The session stays open after a grant and closes after an Error record.
        EXPECT_EQ(a.close, !resp || resp->is_error());
        return resp ? std::move(resp).value() : nts::key_response{};
    }

    static nts::error_code error_of(const nts::key_response& r) {
        EXPECT_TRUE(r.is_error());
        return r.is_error() ? std::get<nts::error_code>(r.outcome) : nts::error_code::internal_server_error;
    }

    test_clocks _clk;
    std::unique_ptr<key_schedule> _keys;
    std::unique_ptr<ke_service> _service;
    const client_identity _node1{"CN=node1,O=ptpsec", {"DNS:node1.example"}};
    const client_identity _tc1{"CN=tc1", {"DNS:tc1.example", "IP:10.0.0.9"}};
    const client_identity _stranger{"CN=node2,O=ptpsec", {"DNS:node2.example"}};
};

TEST_F(ke_service_test, an_admitted_client_gets_the_groups_current_key) {
    const auto resp = ask(_node1, group_request(0));
    ASSERT_FALSE(resp.is_error());
    const auto& grant = std::get<nts::key_grant>(resp.outcome);
    const auto params = _keys->parameters("hmac");
    ASSERT_TRUE(params);
    EXPECT_EQ(grant.current.sa.spp, params->current.spp);
    EXPECT_EQ(grant.current.sa.key_id, params->current.key_id);
    EXPECT_EQ(grant.current.sa.integrity_algorithm, nts::mac_algorithm::hmac_sha256_128);
    const auto key = params->current.key.span();
    EXPECT_TRUE(std::equal(grant.current.sa.key.begin(), grant.current.sa.key.end(), key.begin(), key.end()));
    EXPECT_EQ(grant.current.validity, (nts::validity_period{3600, 300, 3}));
    EXPECT_FALSE(grant.next);
    EXPECT_FALSE(grant.current.unicast);
    EXPECT_EQ(_service->stats().granted, 1U);
    EXPECT_EQ(_service->stats().granted_to_transparent_clocks, 0U);
    // The transparent clock's rule says what it is: its grants are counted apart.
    ASSERT_FALSE(ask(_tc1, group_request(0)).is_error());
    EXPECT_EQ(_service->stats().granted, 2U);
    EXPECT_EQ(_service->stats().granted_to_transparent_clocks, 1U);
}

TEST_F(ke_service_test, in_the_update_period_the_next_key_comes_too) {
    ASSERT_FALSE(ask(_tc1, group_request(1)).is_error());
    _clk.mono += 3400 * s;
    const auto resp = ask(_tc1, group_request(1));
    ASSERT_FALSE(resp.is_error());
    const auto& grant = std::get<nts::key_grant>(resp.outcome);
    ASSERT_TRUE(grant.next);
    EXPECT_EQ(grant.current.validity.lifetime, 200U);
    EXPECT_EQ(grant.next->validity, (nts::validity_period{3600, 300, 3}));
    EXPECT_EQ(grant.next->sa.spp, grant.current.sa.spp);
    EXPECT_NE(grant.next->sa.key_id, grant.current.sa.key_id);
    // AES-CMAC-128: type 2 with a 16-octet key.
    EXPECT_EQ(grant.next->sa.integrity_algorithm, nts::mac_algorithm::aes_cmac);
    EXPECT_EQ(grant.next->sa.key.size(), 16U);
    EXPECT_EQ(_service->stats().granted_with_next, 1U);
}

TEST_F(ke_service_test, refusals_carry_the_error_code_of_their_cause) {
    // A client no rule names, a group its rule does not list, a group that
    // does not exist: all Not Authorized.
    EXPECT_EQ(error_of(ask(_stranger, group_request(0))), nts::error_code::not_authorized);
    EXPECT_EQ(error_of(ask(_node1, group_request(1))), nts::error_code::not_authorized);
    EXPECT_EQ(error_of(ask(_tc1, group_request(7))), nts::error_code::not_authorized);
    // Not a PTP Key Request at all.
    const std::vector<uint8_t> junk = {0x80, 0x01, 0x00, 0x02, 0x00};
    EXPECT_EQ(error_of(ask(_node1, junk)), nts::error_code::bad_request);
    // An unknown record with the critical bit set before End of Message.
    std::vector<uint8_t> critical = group_request(0);
    critical.insert(critical.end() - 4, {0xBF, 0xFF, 0x00, 0x00});
    EXPECT_EQ(error_of(ask(_node1, critical)), nts::error_code::unrecognized_critical_record);
    // Ticket-based mode: no grantor is registered here.
    nts::key_request unicast;
    unicast.association = nts::ipv4_address{{192, 0, 2, 1}};
    unicast.source_port_identity = nts::port_identity{{1, 2, 3, 4, 5, 6, 7, 8}, 1};
    EXPECT_EQ(error_of(ask(_node1, nts::build(unicast))), nts::error_code::grantor_not_registered);
    const auto& st = _service->stats();
    EXPECT_EQ(st.refused[3], 3U);
    EXPECT_EQ(st.refused[1], 1U);
    EXPECT_EQ(st.refused[0], 1U);
    EXPECT_EQ(st.refused[4], 1U);
    EXPECT_EQ(st.granted, 0U);
}

TEST_F(ke_service_test, a_key_that_cannot_be_saved_is_an_internal_server_error) {
    auto ks = key_schedule::create({policy("hmac", 0, icv::algorithm::hmac_sha256_128)},
                                   std::make_shared<refusing_store>(), _clk);
    ASSERT_TRUE(ks);
    ke_service service(**ks, {{"CN=node1,O=ptpsec", "", {"hmac"}, false, false}});
    const answer a = service.handle_key_request(_node1, group_request(0));
    auto resp = nts::parse_key_response(a.message);
    ASSERT_TRUE(resp);
    EXPECT_TRUE(a.close);
    EXPECT_EQ(error_of(*resp), nts::error_code::internal_server_error);
}

// A Group-of-2 (seeds/001 §4.2.2: a subGroup of a group number, for two
// members): its own SPP and key, handed to the two certificates the rules
// admit and to nobody else; the group number without that subGroup is
// another group.
TEST(ke_service_go2, the_two_members_share_a_key_of_their_own) {
    test_clocks clk;
    group_policy plant = policy("plant", 0);
    group_policy pair = policy("gm1-slave7", 0);
    pair.id.subgroup = 7;
    auto ks = key_schedule::create({plant, pair}, nullptr, clk);
    ASSERT_TRUE(ks) << ks.message();
    ke_service svc(**ks, {{"CN=gm1", "", {"gm1-slave7", "plant"}, false, false, false},
                          {"CN=slave7", "", {"gm1-slave7", "plant"}, false, false, false},
                          {"CN=slave8", "", {"plant"}, false, false, false}});
    auto ask = [&](const std::string& who, uint16_t subgroup) {
        auto r = nts::parse_key_response(svc.handle_key_request({who, {}}, group_request(0, 0x100, subgroup)).message);
        EXPECT_TRUE(r) << r.err().message;
        return r ? std::move(r).value() : nts::key_response{};
    };
    const auto a = ask("CN=gm1", 7);
    const auto b = ask("CN=slave7", 7);
    ASSERT_FALSE(a.is_error());
    ASSERT_FALSE(b.is_error());
    const auto& ka = std::get<nts::key_grant>(a.outcome).current.sa;
    EXPECT_EQ(ka, std::get<nts::key_grant>(b.outcome).current.sa);
    const auto third = ask("CN=slave8", 7);
    ASSERT_TRUE(third.is_error());
    EXPECT_EQ(std::get<nts::error_code>(third.outcome), nts::error_code::not_authorized);
    const auto whole = ask("CN=slave8", 0);
    ASSERT_FALSE(whole.is_error());
    const auto& kp = std::get<nts::key_grant>(whole.outcome).current.sa;
    EXPECT_NE(kp.spp, ka.spp) << "a Group-of-2 has an SPP of its own";
    EXPECT_NE(kp.key_id, ka.key_id);
    EXPECT_NE(kp.key, ka.key);
}

TEST(ke_client_rule, a_rule_must_name_someone_and_allow_something) {
    EXPECT_TRUE(validate(client_rule{"CN=a", "", {"g"}, false, false}, 0));
    EXPECT_TRUE(validate(client_rule{"", "DNS:a", {}, true, false}, 0));
    auto st = validate(client_rule{"", "", {"g"}, false, false}, 2);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.message(), "client rule 3: names neither a subject nor a subjectAltName");
    st = validate(client_rule{"CN=a", "", {}, false, false}, 0);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.message(), "client rule 1 (CN=a): allows no group, not the grantor role and not unicast");
    EXPECT_TRUE(validate(client_rule{"CN=a", "", {}, false, false, true}, 0));
    st = validate(client_rule{"", "DNS:tc9", {"g"}, true, true}, 4);
    ASSERT_FALSE(st);
    EXPECT_EQ(st.message(), "client rule 5 (DNS:tc9): a transparent clock cannot be a grantor (it is not a time "
                            "source); give it the groups whose traffic it corrects");
}

} // namespace
} // namespace ptpsec::ke
