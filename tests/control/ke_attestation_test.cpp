// Platform Attestation at the KE server (control/ke/ke_service.h): a rule
// with `attest` releases keys only to a client whose PTP Key Request carries
// a quote of its enrolled TPM signer, of the enrolled PCR profile, over the
// client's own TLS session; for the grantor right, the PTP Registration
// Request carries it. The quotes come from a real TPM (swtpm) and are
// checked by a real Registrar, as ptpsec-controld wires them.

#include <control/ke/grantors.h>
#include <control/ke/ke_service.h>
#include <control/nts/message.h>
#include <control/verifier/registrar.h>
#include <hsm/tpm_signer.h>

#include "../hsm/tpm_fixture.h"
#include "../process.h"
#include "ke_test_support.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace ptpsec::ke {
namespace {

using test::policy;
using test::test_clocks;

class ke_attestation : public testing::Test {
protected:
    void SetUp() override {
        if (!ptpsec::test::swtpm::available()) {
            GTEST_FAIL() << "swtpm is not installed (make deps installs it)";
        }
        _tpm = std::make_unique<ptpsec::test::swtpm>();
        _signer = ptpsec::test::open_tpm_signer(*_tpm, "node1-tpm");
        ASSERT_NE(_signer, nullptr);
        auto reg = verifier::registrar::open(_dir.file("registrar.db"));
        ASSERT_TRUE(reg) << reg.message();
        _registrar = std::move(reg).value();
        ASSERT_TRUE(
            verifier::enrol_tpm(*_registrar, *_signer, "node1-tpm", ptpsec::test::current_pcrs(*_signer, _pcrs)));

        auto ks = key_schedule::create({policy("plant", 0)}, nullptr, _clk);
        ASSERT_TRUE(ks) << ks.message();
        _keys = std::move(ks).value();
        _service = std::make_unique<ke_service>(
            *_keys, std::vector<client_rule>{{.subject = "CN=node1", .groups = {"plant"}, .attest = "node1-tpm"},
                                             {.subject = "CN=node2", .groups = {"plant"}}});
        _service->set_platform_check([this](const nts::platform_attestation& a, std::span<const uint8_t> binding) {
            return _registrar->check_platform(a.signer_id, a.attest, a.signature, binding);
        });
        _node1.session_binding.fill(0x11);
        _node2.session_binding.fill(0x22);
    }

    /// A PTP Key Request for the group, with a quote over `binding` when set.
    nts::key_request request(std::optional<std::array<uint8_t, 32>> binding,
                             const std::string& signer_id = "node1-tpm") {
        nts::key_request r;
        r.association = nts::group_number{0, 0x100, 0};
        if (binding) {
            auto q = _signer->quote(*binding, _pcrs);
            EXPECT_TRUE(q) << q.message();
            if (q) {
                r.attestation = nts::platform_attestation{signer_id, q->attest, q->signature};
            }
        }
        return r;
    }

    nts::key_response ask(const client_identity& who, const nts::key_request& r) {
        auto resp = nts::parse_key_response(_service->handle_key_request(who, nts::build(r)).message);
        EXPECT_TRUE(resp) << resp.err().message;
        return resp ? std::move(resp).value() : nts::key_response{};
    }

    void expect_withheld(const nts::key_response& r, std::string_view because) {
        ASSERT_TRUE(r.is_error());
        EXPECT_EQ(std::get<nts::error_code>(r.outcome), nts::error_code::not_authorized);
        EXPECT_NE(_service->last_attestation_refusal().find(because), std::string::npos)
            << _service->last_attestation_refusal();
    }

    ptpsec::test::temp_dir _dir;
    std::unique_ptr<ptpsec::test::swtpm> _tpm;
    std::unique_ptr<hsm::tpm_signer> _signer;
    std::unique_ptr<verifier::registrar> _registrar;
    const std::vector<unsigned> _pcrs{0, 7};
    test_clocks _clk;
    std::unique_ptr<key_schedule> _keys;
    std::unique_ptr<ke_service> _service;
    client_identity _node1{"CN=node1", {}};
    client_identity _node2{"CN=node2", {}};
};

TEST_F(ke_attestation, keys_go_only_to_a_quote_of_the_enrolled_state_made_for_this_session) {
    // A quote for this session: granted.
    const auto granted = ask(_node1, request(_node1.session_binding));
    ASSERT_FALSE(granted.is_error());
    EXPECT_EQ(_service->stats().granted, 1U);
    EXPECT_EQ(_service->stats().attestations_verified, 1U);

    // No quote at all.
    expect_withheld(ask(_node1, request(std::nullopt)),
                    "CN=node1: client rule 1 admits it only with a Platform Attestation of signer \"node1-tpm\"; "
                    "its request carried no Platform Attestation");
    // The quote of another session (node2's exporter value), replayed here.
    expect_withheld(ask(_node1, request(_node2.session_binding)),
                    "its Platform Attestation of signer \"node1-tpm\" failed: signer \"node1-tpm\": the quote's "
                    "nonce (extraData) is not the one asked for");
    // Shown as a signer the Registrar does not know.
    expect_withheld(ask(_node1, request(_node1.session_binding, "node9-tpm")),
                    "signer \"node9-tpm\" is not enrolled in the Registrar");
    EXPECT_EQ(_service->stats().attestations_failed, 2U);
    EXPECT_EQ(_service->stats().refused_unattested, 3U);
    EXPECT_EQ(_service->stats().refused[3], 3U);

    // The signer revoked: what passed a moment ago is refused.
    ASSERT_TRUE(_registrar->revoke("node1-tpm", "platform rebuilt", 1));
    expect_withheld(ask(_node1, request(_node1.session_binding)), "signer \"node1-tpm\" is revoked (platform rebuilt)");
    EXPECT_EQ(_service->stats().granted, 1U);
}

TEST_F(ke_attestation, a_rule_without_attest_is_not_asked_and_its_quotes_are_not_checked) {
    ASSERT_FALSE(ask(_node2, request(std::nullopt)).is_error());
    // A quote it sends anyway (here one that would fail) is not looked at.
    ASSERT_FALSE(ask(_node2, request(_node1.session_binding)).is_error());
    EXPECT_EQ(_service->stats().attestations_verified + _service->stats().attestations_failed, 0U);
    EXPECT_EQ(_service->stats().granted, 2U);
    // A stranger is Not Authorized for the usual reason, not counted as unattested.
    const client_identity stranger{"CN=node3", {}};
    ASSERT_TRUE(ask(stranger, request(std::nullopt)).is_error());
    EXPECT_EQ(_service->stats().refused_unattested, 0U);
}

TEST_F(ke_attestation, without_a_platform_check_a_rule_with_attest_admits_nobody) {
    ke_service bare(*_keys, {{.subject = "CN=node1", .groups = {"plant"}, .attest = "node1-tpm"}});
    auto resp =
        nts::parse_key_response(bare.handle_key_request(_node1, nts::build(request(_node1.session_binding))).message);
    ASSERT_TRUE(resp && resp->is_error());
    EXPECT_NE(bare.last_attestation_refusal().find("this server checks no Platform Attestation"), std::string::npos)
        << bare.last_attestation_refusal();
}

// The grantor right with `attest`: the PTP Registration Request over
// NTS-TSR carries the quote, and the refusal is an NTS-TSR error.
TEST_F(ke_attestation, a_grantor_registers_only_with_a_quote_of_the_enrolled_state_made_for_this_session) {
    ASSERT_TRUE(validate(client_rule{.subject = "CN=gm1", .grantor = true, .attest = "node1-tpm"}, 0));
    unicast_policy up;
    up.enabled = true;
    auto grantors = grantor_registry::create(up, *_keys, nullptr, _clk);
    ASSERT_TRUE(grantors) << grantors.message();
    ke_service service(*_keys, {{.subject = "CN=gm1", .grantor = true, .attest = "node1-tpm"}}, grantors->get());
    service.set_platform_check([this](const nts::platform_attestation& a, std::span<const uint8_t> binding) {
        return _registrar->check_platform(a.signer_id, a.attest, a.signature, binding);
    });
    client_identity gm1{"CN=gm1", {}};
    gm1.session_binding.fill(0x33);
    const auto registration = [&](std::optional<std::array<uint8_t, 32>> binding) {
        nts::registration_request r;
        r.time_server.addresses = {nts::port_identity{{0x00, 0x1b, 0x21, 0xff, 0xfe, 0x00, 0x00, 0x01}, 1}};
        if (binding) {
            auto q = _signer->quote(*binding, _pcrs);
            EXPECT_TRUE(q) << q.message();
            if (q) {
                r.attestation = nts::platform_attestation{"node1-tpm", q->attest, q->signature};
            }
        }
        return service.handle_tsr(gm1, nts::build(r));
    };
    const auto expect_refused = [&](const answer& a, std::string_view because) {
        EXPECT_TRUE(a.close);
        auto resp = nts::parse_registration_response(a.message);
        ASSERT_TRUE(resp) << resp.err().message;
        ASSERT_TRUE(resp->is_error());
        EXPECT_EQ(std::get<nts::error_code>(resp->outcome), nts::error_code::not_authorized);
        EXPECT_NE(service.last_attestation_refusal().find(because), std::string::npos)
            << service.last_attestation_refusal();
    };

    expect_refused(registration(std::nullopt),
                   "CN=gm1: client rule 1 admits it only with a Platform Attestation of signer \"node1-tpm\"; its "
                   "request carried no Platform Attestation");
    expect_refused(registration(_node2.session_binding), "the quote's nonce (extraData) is not the one asked for");
    EXPECT_EQ(service.stats().registrations, 0U);
    EXPECT_EQ(service.stats().refused_unattested, 2U);

    const answer ok = registration(gm1.session_binding);
    auto resp = nts::parse_registration_response(ok.message);
    ASSERT_TRUE(resp) << resp.err().message;
    ASSERT_FALSE(resp->is_error());
    EXPECT_EQ(service.stats().registrations, 1U);
    EXPECT_EQ(service.stats().attestations_verified, 1U);
    EXPECT_EQ(service.stats().attestations_failed, 1U);
}

} // namespace
} // namespace ptpsec::ke
