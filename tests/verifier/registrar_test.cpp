// The Registrar: software enrolment only when allowed, a signer_id bound to
// one key for life (same key again is a no-op, another key is refused, a
// revoked signer_id is never reused, one key one signer_id), revocation,
// a PCR profile replaced only by values the TPM quotes,
// the file's mode; PKCS#11 enrolment from a real SoftHSM2 token and the
// refusal of keys that are not always_sensitive / never_extractable; TPM
// enrolment against swtpm with the quote round trip and every refusal, and
// the end-to-end case: a TPM signer enrolled, its batches signed and
// verified as hardware-rooted.

#include "../hsm/direct_tpm.h"
#include "../hsm/softhsm.h"
#include "../hsm/tpm_fixture.h"
#include "../hsm/tpm_structures.h"
#include "helpers.h"

#include <control/verifier/audit_store.h>
#include <control/verifier/sql.h>
#include <control/verifier/verifier.h>
#include <drivers/base/hex.h>
#include <hsm/pkcs11_signer.h>
#include <hsm/tpm_signer.h>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include <sys/stat.h>

#include <ctime>
#include <map>

namespace ptpsec::verifier {
namespace {

using namespace test;
using ptpsec::test::current_pcrs;
using ptpsec::test::open_tpm_signer;

template <typename Result>
void expect_refused(const Result& s, std::string_view says) {
    ASSERT_FALSE(s.ok()) << "expected a refusal saying " << says;
    EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
}

TEST(registrar, a_software_signer_is_enrolled_only_when_allowed_and_never_as_hardware_rooted) {
    temp_dir dir;
    auto reg = open_registrar(dir);
    auto s = software(dir, "dev");
    const auto& key = s->info().public_key_der;
    expect_refused(reg->enrol_software("dev", s->info().algorithm, key, "dev.pem", false), "not hardware-rooted");
    EXPECT_FALSE(*reg->lookup("dev"));
    ASSERT_TRUE(reg->enrol_software("dev", s->info().algorithm, key, "dev.pem", true));
    auto found = reg->lookup("dev");
    ASSERT_TRUE(found && *found);
    EXPECT_EQ((*found)->backend, hsm::backend_kind::software);
    EXPECT_FALSE((*found)->hardware_rooted);
    EXPECT_EQ((*found)->public_key_der, key);
    EXPECT_EQ((*found)->key_file, "dev.pem");
    EXPECT_EQ((*found)->device(), "software key dev.pem");
    // A key of the other algorithm's type is refused.
    expect_refused(reg->enrol_software("dev2", hsm::signature_algorithm::es256, key, "dev.pem", true),
                   "not a P-256 key");
    expect_refused(reg->enrol_software("", s->info().algorithm, key, "dev.pem", true), "1 to 255 octets");

    struct stat st {};
    ASSERT_EQ(::stat(dir.file("registrar.db").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600U);
}

TEST(registrar, a_signer_id_is_bound_to_one_key_for_life) {
    temp_dir dir;
    auto reg = open_registrar(dir);
    auto a = software(dir, "a");
    auto b = software(dir, "b");
    const auto alg = a->info().algorithm;
    ASSERT_TRUE(reg->enrol_software("gm", alg, a->info().public_key_der, "a.pem", true));
    EXPECT_TRUE(reg->enrol_software("gm", alg, a->info().public_key_der, "a.pem", true)) << "same key again";
    expect_refused(reg->enrol_software("gm", alg, b->info().public_key_der, "b.pem", true), "revoke it first");
    expect_refused(reg->enrol_software("gm-alias", alg, a->info().public_key_der, "a.pem", true),
                   "already enrolled as signer \"gm\"");
    expect_refused(reg->revoke("nobody", "x", 1), "not enrolled");
    ASSERT_TRUE(reg->revoke("gm", "key compromised", 42));
    expect_refused(reg->revoke("gm", "again", 43), "already revoked");
    expect_refused(reg->enrol_software("gm", alg, b->info().public_key_der, "b.pem", true), "never enrolled again");
    expect_refused(reg->enrol_software("gm", alg, a->info().public_key_der, "a.pem", true), "never enrolled again");
    auto found = reg->lookup("gm");
    ASSERT_TRUE(found && *found);
    EXPECT_EQ((*found)->revoked_at_ns, 42);
    EXPECT_EQ((*found)->revocation_reason, "key compromised");
    ASSERT_TRUE(reg->enrol_software("gm-2", alg, b->info().public_key_der, "b.pem", true));
    auto all = reg->list();
    ASSERT_TRUE(all);
    ASSERT_EQ(all->size(), 2U);
    EXPECT_EQ((*all)[0].signer_id, "gm");
    EXPECT_EQ((*all)[1].signer_id, "gm-2");

    // Reopened: the same records.
    reg.reset();
    auto again = open_registrar(dir);
    auto gm = again->lookup("gm");
    ASSERT_TRUE(gm && *gm);
    EXPECT_TRUE((*gm)->revoked_at_ns.has_value());
}

TEST(registrar, a_registry_file_others_can_read_is_refused) {
    temp_dir dir;
    { auto reg = open_registrar(dir); }
    ASSERT_EQ(::chmod(dir.file("registrar.db").c_str(), 0644), 0);
    auto r = registrar::open(dir.file("registrar.db"));
    ASSERT_FALSE(r);
    EXPECT_NE(r.message().find("chmod 600"), std::string::npos) << r.message();
}

TEST(registrar, pkcs11_keys_from_a_token_are_enrolled_and_extractable_ones_refused) {
    if (!ptpsec::test::softhsm_available()) {
        GTEST_FAIL() << "SoftHSM2 is not installed (make deps installs it)";
    }
    temp_dir dir;
    auto reg = open_registrar(dir);
    ptpsec::test::softhsm_token token;
    hsm::pkcs11_enrolment e;
    {
        hsm::pkcs11_settings s;
        s.module_path = ptpsec::test::softhsm_module;
        s.token_label = token.label();
        s.user_pin = token.user_pin();
        s.key_label = "batch-signer";
        s.algorithm = hsm::signature_algorithm::es256;
        s.counter_path = token.file("batch-signer.counter");
        s.signer_id = "observer-1";
        auto signer = hsm::pkcs11_signer::open(s);
        ASSERT_TRUE(signer) << signer.message();
        e = (*signer)->enrolment();
    }
    EXPECT_TRUE(e.always_sensitive);
    EXPECT_TRUE(e.never_extractable);

    // The token's flags doctored: what a key imported from outside, or once
    // exported, would report (SoftHSM2 makes none such through the signer,
    // which refuses extractable keys itself).
    auto imported = e;
    imported.always_sensitive = false;
    expect_refused(reg->enrol_pkcs11(imported), "not always_sensitive");
    auto exported = e;
    exported.never_extractable = false;
    expect_refused(reg->enrol_pkcs11(exported), "not never_extractable");
    EXPECT_FALSE(*reg->lookup("observer-1"));

    ASSERT_TRUE(reg->enrol_pkcs11(e));
    auto found = reg->lookup("observer-1");
    ASSERT_TRUE(found && *found);
    EXPECT_EQ((*found)->backend, hsm::backend_kind::pkcs11);
    EXPECT_TRUE((*found)->hardware_rooted);
    EXPECT_EQ((*found)->pkcs11.token_serial, e.token_serial);
    EXPECT_EQ((*found)->pkcs11.token_label, token.label());
    EXPECT_EQ((*found)->pkcs11.key_label, "batch-signer");
    EXPECT_EQ((*found)->pkcs11.key_id, e.key_id);
    EXPECT_EQ((*found)->public_key_der, e.public_key_der);
}

class registrar_tpm : public ::testing::Test {
protected:
    void SetUp() override {
        if (!ptpsec::test::swtpm::available()) {
            GTEST_FAIL() << "swtpm is not installed (make deps installs it)";
        }
        _tpm = std::make_unique<ptpsec::test::swtpm>();
        _signer = open_tpm_signer(*_tpm, "gm-tpm");
        ASSERT_NE(_signer, nullptr);
        _registrar = open_registrar(_dir);
    }

    /// A CA certificate of another vendor than the TPMs' (openssl), as an
    /// EK issuer that must not be trusted for them.
    std::string other_vendor_ca() {
        const std::string ca = _dir.file("other-ca.pem");
        const auto made = ptpsec::test::run_program(_dir, "/usr/bin/openssl",
                                                    {"req", "-x509", "-newkey", "ec", "-pkeyopt",
                                                     "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=other vendor",
                                                     "-days", "2", "-keyout", _dir.file("other.key"), "-out", ca});
        EXPECT_EQ(made.exit_code, 0) << made.err;
        return ca;
    }

    /// The material of an enrolment of the fixture's signer as "gm-tpm",
    /// gathered by hand: a quote of `pcrs` for `nonce`, the EK, and
    /// `credential` sealed to the EK for the key's Name and opened by this
    /// TPM. Refusals of the Registrar are tested by changing a part.
    tpm_enrolment material(const std::vector<unsigned>& pcrs, const hsm::pcr_values& expected,
                           std::span<const uint8_t> nonce, std::span<const uint8_t> credential) {
        tpm_enrolment e;
        auto q = _signer->quote(nonce, pcrs);
        EXPECT_TRUE(q) << q.message();
        auto ek = _signer->endorsement_key_der();
        EXPECT_TRUE(ek) << ek.message();
        if (!q || !ek) {
            return e;
        }
        auto blob = hsm::make_credential(*ek, _signer->key_public().name, credential);
        EXPECT_TRUE(blob) << blob.message();
        auto opened = blob ? _signer->activate_credential(*blob) : result<std::vector<uint8_t>>(error{"no blob"});
        EXPECT_TRUE(opened) << opened.message();
        e.signer_id = "gm-tpm";
        e.public_key_der = _signer->info().public_key_der;
        e.key_public_area = _signer->key_public().public_area;
        e.ek_public_der = *ek;
        e.quote = *q;
        e.expected_pcrs = expected;
        e.activated_credential = opened ? *opened : std::vector<uint8_t>{};
        return e;
    }

    temp_dir _dir;
    std::unique_ptr<ptpsec::test::swtpm> _tpm;
    std::unique_ptr<hsm::tpm_signer> _signer;
    std::unique_ptr<registrar> _registrar;
};

TEST_F(registrar_tpm, the_ek_certificate_must_chain_to_the_trusted_issuers_and_not_be_revoked_when_they_are_given) {
    const std::vector<unsigned> pcrs{0, 7};
    // This fixture's TPM has no EK certificate: asked for one, refused.
    const auto expected = current_pcrs(*_signer, pcrs);
    expect_refused(enrol_tpm(*_registrar, *_signer, "gm-plain", expected, ek_trust{_dir.file("none.pem"), {}}),
                   "holds no certificate of its EK (template L-2, ECC NIST P-256; NV index 0x01c0000a)");

    // A manufactured TPM: its certificate chains to its vendor's CA.
    ptpsec::test::swtpm made(ptpsec::test::swtpm::make::ek_certificates);
    auto signer = open_tpm_signer(made, "gm-made");
    ASSERT_NE(signer, nullptr);
    auto q = signer->quote(std::vector<uint8_t>(16, 1), pcrs);
    ASSERT_TRUE(q) << q.message();
    // Another CA (not the TPM's vendor): refused, saying why.
    expect_refused(enrol_tpm(*_registrar, *signer, "gm-made", q->pcrs, ek_trust{other_vendor_ca(), {}}),
                   "does not chain to");
    expect_refused(enrol_tpm(*_registrar, *signer, "gm-made", q->pcrs, ek_trust{_dir.file("missing.pem"), {}}),
                   "cannot read trusted EK issuers");
    EXPECT_FALSE(*_registrar->lookup("gm-made"));

    // Revocation, with the issuer's CRLs: a CRL that lists the certificate,
    // one that has expired, one from another key, none for this issuer.
    auto cert = signer->endorsement_certificate_der();
    ASSERT_TRUE(cert && !cert->empty());
    made.write_ek_crl(_dir.file("revoked.crl"), {*cert}, std::chrono::hours(24));
    const ek_trust revoked{made.ek_ca_file(), _dir.file("revoked.crl")};
    expect_refused(enrol_tpm(*_registrar, *signer, "gm-made", q->pcrs, revoked),
                   "EK certificate is revoked by its issuer's CRL in " + revoked.crl_file);
    made.write_ek_crl(_dir.file("expired.crl"), {}, -std::chrono::hours(1));
    expect_refused(
        enrol_tpm(*_registrar, *signer, "gm-made", q->pcrs, ek_trust{made.ek_ca_file(), _dir.file("expired.crl")}),
        "cannot be checked against the CRLs in " + _dir.file("expired.crl") + ": CRL has expired");
    expect_refused(
        enrol_tpm(*_registrar, *signer, "gm-made", q->pcrs, ek_trust{made.ek_ca_file(), _dir.file("other-ca.pem")}),
        "unable to get certificate CRL");
    expect_refused(
        enrol_tpm(*_registrar, *signer, "gm-made", q->pcrs, ek_trust{made.ek_ca_file(), _dir.file("no.crl")}),
        "cannot read EK certificate revocation lists from " + _dir.file("no.crl"));
    EXPECT_FALSE(*_registrar->lookup("gm-made"));

    // A current CRL that lists another certificate: enrolled.
    made.write_ek_crl(_dir.file("current.crl"), {}, std::chrono::hours(24));
    const auto ok =
        enrol_tpm(*_registrar, *signer, "gm-made", q->pcrs, ek_trust{made.ek_ca_file(), _dir.file("current.crl")});
    ASSERT_TRUE(ok) << ok.message();
    EXPECT_TRUE(*_registrar->lookup("gm-made"));

    // The certificate of one EK presented for another EK.
    auto plain_ek = _signer->endorsement_key_der();
    ASSERT_TRUE(plain_ek);
    expect_refused(check_ek_certificate(*cert, *plain_ek, ek_trust{made.ek_ca_file(), {}}),
                   "for another key than its EK");
    expect_refused(check_ek_certificate(std::vector<uint8_t>{0x30, 0x03, 0x02, 0x01, 0x00}, *plain_ek,
                                        ek_trust{made.ek_ca_file(), {}}),
                   "not a DER X.509 certificate");
}

TEST_F(registrar_tpm, a_p384_ek_of_high_range_template_h3_is_enrolled_with_its_certificate_and_revoked_with_it) {
    const std::vector<unsigned> pcrs{0, 7};
    ptpsec::test::swtpm made(ptpsec::test::swtpm::make::ek_certificates);
    const auto opened = open_tpm_signer(made, "gm-p384", hsm::ek_template::h3);
    ASSERT_NE(opened, nullptr);
    auto& signer = *opened;
    auto q = signer.quote(std::vector<uint8_t>(16, 1), pcrs);
    ASSERT_TRUE(q) << q.message();
    made.write_ek_crl(_dir.file("current.crl"), {}, std::chrono::hours(24));
    const ek_trust current{made.ek_ca_file(), _dir.file("current.crl")};
    const auto ok = enrol_tpm(*_registrar, signer, "gm-p384", q->pcrs, current);
    ASSERT_TRUE(ok) << ok.message();
    EXPECT_EQ(signer.endorsement_template(), hsm::ek_template::h3);
    auto recorded = _registrar->lookup("gm-p384");
    ASSERT_TRUE(recorded && *recorded);
    auto profile = hsm::endorsement_key_profile_of((*recorded)->tpm.ek_public_der);
    ASSERT_TRUE(profile) << profile.message();
    EXPECT_EQ(profile->kind, "ECC NIST P-384");
    auto cert = signer.endorsement_certificate_der();
    ASSERT_TRUE(cert && !cert->empty());
    EXPECT_EQ((*recorded)->tpm.ek_certificate_der, *cert) << "the H-3 certificate, NV 0x01C00016";

    // The vendor revokes that certificate later: the signer is revoked.
    made.write_ek_crl(_dir.file("revoked.crl"), {*cert}, std::chrono::hours(24));
    auto checked = _registrar->check_ek_revocations(ek_trust{made.ek_ca_file(), _dir.file("revoked.crl")});
    ASSERT_TRUE(checked) << checked.message();
    ASSERT_EQ(checked->size(), 1U);
    EXPECT_EQ(checked->front().result, ek_revocation_check::outcome::revoked) << checked->front().detail;
    recorded = _registrar->lookup("gm-p384");
    ASSERT_TRUE(recorded && *recorded);
    EXPECT_TRUE((*recorded)->revoked_at_ns.has_value());
}

TEST_F(registrar_tpm, an_rsa_3072_ek_of_template_h6_is_enrolled_with_its_certificate_and_refused_under_another_ca) {
    const std::vector<unsigned> pcrs{0, 7};
    ptpsec::test::swtpm made(ptpsec::test::swtpm::make::ek_certificates_rsa3072);
    const auto opened = open_tpm_signer(made, "gm-rsa3072", hsm::ek_template::h6);
    ASSERT_NE(opened, nullptr);
    auto& signer = *opened;
    auto q = signer.quote(std::vector<uint8_t>(16, 1), pcrs);
    ASSERT_TRUE(q) << q.message();
    expect_refused(enrol_tpm(*_registrar, signer, "gm-rsa3072", q->pcrs, ek_trust{other_vendor_ca(), {}}),
                   "does not chain to");
    EXPECT_FALSE(*_registrar->lookup("gm-rsa3072"));
    made.write_ek_crl(_dir.file("current.crl"), {}, std::chrono::hours(24));
    const auto ok =
        enrol_tpm(*_registrar, signer, "gm-rsa3072", q->pcrs, ek_trust{made.ek_ca_file(), _dir.file("current.crl")});
    ASSERT_TRUE(ok) << ok.message();
    EXPECT_EQ(signer.endorsement_template(), hsm::ek_template::h6);
    auto recorded = _registrar->lookup("gm-rsa3072");
    ASSERT_TRUE(recorded && *recorded);
    auto profile = hsm::endorsement_key_profile_of((*recorded)->tpm.ek_public_der);
    ASSERT_TRUE(profile) << profile.message();
    EXPECT_EQ(profile->kind, "RSA 3072");
    EXPECT_EQ(profile->digest, "SHA384");
    auto cert = signer.endorsement_certificate_der();
    ASSERT_TRUE(cert && !cert->empty());
    EXPECT_EQ((*recorded)->tpm.ek_certificate_der, *cert) << "the H-6 certificate, NV 0x01C0001C";
}

TEST_F(registrar_tpm, a_vendor_revoking_an_ek_certificate_after_enrolment_revokes_the_signer_from_that_date) {
    const std::vector<unsigned> pcrs{0, 7};
    ptpsec::test::swtpm made(ptpsec::test::swtpm::make::ek_certificates);
    auto signer = open_tpm_signer(made, "gm-made");
    ASSERT_NE(signer, nullptr);
    auto q = signer->quote(std::vector<uint8_t>(16, 1), pcrs);
    ASSERT_TRUE(q) << q.message();
    made.write_ek_crl(_dir.file("current.crl"), {}, std::chrono::hours(24));
    const ek_trust current{made.ek_ca_file(), _dir.file("current.crl")};
    ASSERT_TRUE(enrol_tpm(*_registrar, *signer, "gm-made", q->pcrs, current));
    // A TPM without an EK certificate, and a software signer (not checked).
    ASSERT_TRUE(enrol_tpm(*_registrar, *_signer, "gm-plain", current_pcrs(*_signer, pcrs)));
    auto sw = software(_dir, "sw");
    ASSERT_NE(sw, nullptr);
    enrol(*_registrar, *sw, "gm-software");
    auto cert = signer->endorsement_certificate_der();
    ASSERT_TRUE(cert && !cert->empty());
    auto recorded = _registrar->lookup("gm-made");
    ASSERT_TRUE(recorded && *recorded);
    EXPECT_EQ((*recorded)->tpm.ek_certificate_der, *cert);

    using outcome = ek_revocation_check::outcome;
    const auto outcomes = [](const std::vector<ek_revocation_check>& checks) {
        std::map<std::string, outcome> m;
        for (const auto& c : checks) {
            m[c.signer_id] = c.result;
        }
        return m;
    };
    auto checked = _registrar->check_ek_revocations(current);
    ASSERT_TRUE(checked) << checked.message();
    EXPECT_EQ(outcomes(*checked),
              (std::map<std::string, outcome>{{"gm-made", outcome::valid}, {"gm-plain", outcome::no_certificate}}));
    const auto no_crl = _registrar->check_ek_revocations(ek_trust{made.ek_ca_file(), {}});
    ASSERT_FALSE(no_crl);
    EXPECT_NE(no_crl.message().find("needs the trusted EK issuers"), std::string::npos) << no_crl.message();

    // No verdict (an expired CRL, none for the issuer): nothing changes.
    made.write_ek_crl(_dir.file("expired.crl"), {*cert}, -std::chrono::hours(1));
    for (const auto& crl : {_dir.file("expired.crl"), _dir.file("missing.crl")}) {
        checked = _registrar->check_ek_revocations(ek_trust{made.ek_ca_file(), crl});
        ASSERT_TRUE(checked) << checked.message();
        ASSERT_EQ(checked->size(), 2U);
        EXPECT_EQ(checked->front().result, outcome::cannot_check) << crl;
        EXPECT_NE(checked->front().detail.find("nothing changed"), std::string::npos) << checked->front().detail;
    }
    EXPECT_FALSE((*_registrar->lookup("gm-made"))->revoked_at_ns);

    // The vendor revokes the certificate as of an hour ago.
    const time_t revoked_at = ::time(nullptr) - 3600;
    made.write_ek_crl(_dir.file("revoked.crl"), {*cert}, std::chrono::hours(24), revoked_at);
    checked = _registrar->check_ek_revocations(ek_trust{made.ek_ca_file(), _dir.file("revoked.crl")});
    ASSERT_TRUE(checked) << checked.message();
    ASSERT_EQ(checked->size(), 2U);
    const ek_revocation_check& r = checked->front();
    EXPECT_EQ(r.signer_id, "gm-made");
    ASSERT_EQ(r.result, outcome::revoked) << r.detail;
    ASSERT_TRUE(r.revoked_at_ns);
    EXPECT_EQ(*r.revoked_at_ns, int64_t{revoked_at} * 1'000'000'000);
    EXPECT_NE(r.detail.find("revoked by its issuer's CRL in " + _dir.file("revoked.crl")), std::string::npos)
        << r.detail;
    auto after = _registrar->lookup("gm-made");
    ASSERT_TRUE(after && *after);
    EXPECT_EQ((*after)->revoked_at_ns, r.revoked_at_ns);
    EXPECT_EQ((*after)->revocation_reason, r.detail);
    EXPECT_FALSE((*_registrar->lookup("gm-plain"))->revoked_at_ns);
    EXPECT_FALSE((*_registrar->lookup("gm-software"))->revoked_at_ns);
    // Checked once: a revoked signer is not listed again.
    checked = _registrar->check_ek_revocations(ek_trust{made.ek_ca_file(), _dir.file("revoked.crl")});
    ASSERT_TRUE(checked);
    EXPECT_EQ(outcomes(*checked), (std::map<std::string, outcome>{{"gm-plain", outcome::no_certificate}}));

    // Its batch from before the revocation date is warned about, the one
    // after is refused.
    const uint64_t at_ns = static_cast<uint64_t>(revoked_at) * 1'000'000'000ULL;
    chain c(*signer, "gm-made");
    const auto before = c.next(2, std::nullopt, at_ns - 600'000'000'000ULL);
    const auto later = c.next(2, std::nullopt, at_ns + 600'000'000'000ULL);
    verifier v(*_registrar, nullptr);
    verify_report rep;
    v.verify_log("gm-made.log", make_log({before, later}).bytes, rep);
    ASSERT_EQ(rep.failures.size(), 1U);
    EXPECT_EQ(rep.failures[0].check, "signer revoked");
    EXPECT_EQ(rep.failures[0].counter, later.payload.counter);
    ASSERT_FALSE(rep.warnings.empty());
}

TEST(registrar, a_registry_without_the_ek_certificate_column_gets_it_when_opened) {
    temp_dir dir;
    {
        auto reg = open_registrar(dir);
        ASSERT_NE(reg, nullptr);
        auto s = software(dir, "dev");
        ASSERT_NE(s, nullptr);
        enrol(*reg, *s, "dev");
    }
    {
        auto db = sql::open_sqlite(dir.file("registrar.db"), true);
        ASSERT_TRUE(db) << db.message();
        ASSERT_TRUE((*db)->script("ALTER TABLE signers DROP COLUMN ek_certificate;"));
    }
    auto reg = open_registrar(dir);
    ASSERT_NE(reg, nullptr);
    auto found = reg->lookup("dev");
    ASSERT_TRUE(found && *found) << found.message();
    EXPECT_TRUE((*found)->tpm.ek_certificate_der.empty());
}

TEST_F(registrar_tpm, enrolment_refuses_a_wrong_profile_a_wrong_nonce_and_a_doctored_key_then_batches_verify) {
    const std::vector<unsigned> pcrs{0, 1, 7};
    const auto expected = current_pcrs(*_signer, pcrs);
    ASSERT_EQ(expected.size(), 3U);

    // A profile that does not match the platform.
    auto wrong = expected;
    wrong[7][0] ^= 0x01;
    const auto refused = enrol_tpm(*_registrar, *_signer, "gm-tpm", wrong);
    expect_refused(refused, "pcrDigest");
    expect_refused(refused, "PCR 7 reads");

    // A quote made for another nonce (a replayed quote).
    auto nonce = make_nonce();
    auto credential = make_nonce();
    ASSERT_TRUE(nonce && credential);
    const tpm_enrolment e = material(pcrs, expected, *nonce, *credential);
    ASSERT_FALSE(e.activated_credential.empty());
    const std::vector<uint8_t> ek = e.ek_public_der;
    auto other_nonce = make_nonce();
    expect_refused(_registrar->enrol_tpm(e, *other_nonce, *credential), "nonce");

    // The public area tampered with, or another key claimed.
    auto doctored = e;
    doctored.key_public_area[doctored.key_public_area.size() / 2] ^= 0x01;
    expect_refused(_registrar->enrol_tpm(doctored, *nonce, *credential), "public area");
    auto other_key = e;
    auto soft = software(_dir, "other", hsm::signature_algorithm::es256);
    other_key.public_key_der = soft->info().public_key_der;
    expect_refused(_registrar->enrol_tpm(other_key, *nonce, *credential), "not the expected key");
    auto no_ek = e;
    no_ek.ek_public_der = {0x30, 0x00};
    expect_refused(_registrar->enrol_tpm(no_ek, *nonce, *credential), "endorsement key");
    // An EK of no TCG template: a key on secp256k1.
    {
        std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp256k1"),
                                                              EVP_PKEY_free);
        unsigned char* der = nullptr;
        const int len = i2d_PUBKEY(k.get(), &der);
        no_ek.ek_public_der.assign(der, der + std::max(len, 0));
        OPENSSL_free(der);
    }
    expect_refused(_registrar->enrol_tpm(no_ek, *nonce, *credential),
                   "the endorsement key is on curve secp256k1; the TCG EK templates used here have NIST P-256");
    // A credential that did not come back: the key is not shown to be in
    // the TPM of that EK.
    auto other_credential = make_nonce();
    ASSERT_TRUE(other_credential);
    expect_refused(_registrar->enrol_tpm(e, *nonce, *other_credential), "not shown to be in the TPM of that EK");
    expect_refused(_registrar->enrol_tpm(e, *nonce, {}), "no credential was sealed");
    EXPECT_FALSE(*_registrar->lookup("gm-tpm"));

    // The material itself passes.
    ASSERT_TRUE(_registrar->enrol_tpm(e, *nonce, *credential));
    auto found = _registrar->lookup("gm-tpm");
    ASSERT_TRUE(found && *found);
    EXPECT_EQ((*found)->backend, hsm::backend_kind::tpm);
    EXPECT_TRUE((*found)->hardware_rooted);
    EXPECT_EQ((*found)->expected_pcrs, expected);
    EXPECT_EQ((*found)->tpm.key_name, _signer->key_public().name);
    EXPECT_EQ((*found)->tpm.ek_public_der, ek);
    EXPECT_NE((*found)->device().find("tpm EK sha256:"), std::string::npos);
    // The whole round trip again: the same key, nothing changes.
    const auto again = enrol_tpm(*_registrar, *_signer, "gm-tpm", expected);
    EXPECT_TRUE(again) << again.message();

    // End to end: the TPM signs batches, the Verifier accepts them as
    // hardware-rooted, without warnings.
    chain c(*_signer, "gm-tpm");
    const auto log = make_log({c.next(3), c.next(2), c.next(4)});
    auto store = audit_store::open("sqlite:" + _dir.file("audit.db"));
    ASSERT_TRUE(store) << store.message();
    verifier v(*_registrar, store->get());
    verify_report r;
    v.verify_log("tpm.log", log.bytes, r);
    EXPECT_TRUE(r.ok()) << (r.failures.empty() ? "" : r.failures[0].message);
    EXPECT_TRUE(r.warnings.empty()) << r.warnings[0].check;
    EXPECT_EQ(r.batches_verified, 3U);
    auto rows = (*store)->batches("gm-tpm");
    ASSERT_TRUE(rows);
    ASSERT_EQ(rows->size(), 3U);
    for (const auto& b : *rows) {
        EXPECT_TRUE(b.hardware_rooted);
        EXPECT_EQ(b.backend, hsm::backend_kind::tpm);
        EXPECT_EQ(b.status, "verified");
    }
    EXPECT_EQ((*rows)[0].chain, "first");
    EXPECT_EQ((*rows)[2].chain, "linked");
}

// What the KE server asks of a node before it releases keys (Platform
// Attestation): a quote by the enrolled key, of the enrolled PCR profile,
// over this TLS session's exporter value.
TEST_F(registrar_tpm, a_platform_quote_passes_only_for_its_session_its_signer_and_the_enrolled_pcrs) {
    const std::vector<unsigned> pcrs{0, 7};
    ASSERT_TRUE(enrol_tpm(*_registrar, *_signer, "gm-tpm", current_pcrs(*_signer, pcrs)));
    const std::vector<uint8_t> session(32, 0x5a);
    auto q = _signer->quote(session, pcrs);
    ASSERT_TRUE(q) << q.message();
    EXPECT_TRUE(_registrar->check_platform("gm-tpm", q->attest, q->signature, session));

    // Shown in another session: its exporter value differs.
    const std::vector<uint8_t> other_session(32, 0xa5);
    expect_refused(_registrar->check_platform("gm-tpm", q->attest, q->signature, other_session),
                   "signer \"gm-tpm\": the quote's nonce (extraData) is not the one asked for");
    // Claimed for a signer not enrolled, and for one whose key did not sign it.
    expect_refused(_registrar->check_platform("gm-other", q->attest, q->signature, session),
                   "signer \"gm-other\" is not enrolled in the Registrar");
    auto soft = software(_dir, "dev", hsm::signature_algorithm::es256);
    ASSERT_TRUE(
        _registrar->enrol_software("dev", soft->info().algorithm, soft->info().public_key_der, "dev.pem", true));
    expect_refused(_registrar->check_platform("dev", q->attest, q->signature, session),
                   "signer \"dev\" is a software signer: only a TPM signer quotes its platform state");
    auto doctored = q->attest;
    doctored.back() ^= 0x01;
    expect_refused(_registrar->check_platform("gm-tpm", doctored, q->signature, session),
                   "the quote's signature does not verify under the enrolled key");

    // The platform changed after enrolment: PCR 7 extended.
    _signer.reset();
    {
        ptpsec::test::direct_tpm direct(_tpm->tcti());
        direct.extend(7, std::vector<uint8_t>(32, 0x07));
    }
    _signer = open_tpm_signer(*_tpm, "gm-tpm");
    ASSERT_TRUE(_signer);
    auto changed = _signer->quote(session, pcrs);
    ASSERT_TRUE(changed) << changed.message();
    expect_refused(_registrar->check_platform("gm-tpm", changed->attest, changed->signature, session),
                   "the quote's pcrDigest does not match the expected PCR values: the platform state differs");

    // Revoked: refused whatever it shows.
    ASSERT_TRUE(_registrar->revoke("gm-tpm", "decommissioned", 1));
    expect_refused(_registrar->check_platform("gm-tpm", q->attest, q->signature, session),
                   "signer \"gm-tpm\" is revoked (decommissioned)");
}

/// `public_area` (a marshalled TPM2B_PUBLIC) with restricted cleared: the
/// same key point, as an unrestricted key would show it.
std::vector<uint8_t> without_restricted(const std::vector<uint8_t>& public_area) {
    TPM2B_PUBLIC p{};
    size_t offset = 0;
    EXPECT_EQ(Tss2_MU_TPM2B_PUBLIC_Unmarshal(public_area.data(), public_area.size(), &offset, &p), TSS2_RC_SUCCESS);
    p.publicArea.objectAttributes &= ~TPMA_OBJECT_RESTRICTED;
    return ptpsec::test::marshal(p);
}

// The TPM signs any digest with an unrestricted key, so a quote by one
// proves nothing: such a key is not enrolled, and a signer recorded with one
// (a registry from before keys were restricted) vouches for no platform and
// has no profile replaced until it is enrolled again.
TEST_F(registrar_tpm, a_signer_with_an_unrestricted_key_is_not_enrolled_and_its_quotes_count_for_nothing) {
    const std::vector<unsigned> pcrs{0, 7};
    const auto expected = current_pcrs(*_signer, pcrs);
    auto nonce = make_nonce();
    auto credential = make_nonce();
    ASSERT_TRUE(nonce && credential);
    tpm_enrolment e = material(pcrs, expected, *nonce, *credential);
    ASSERT_FALSE(e.activated_credential.empty());
    e.key_public_area = without_restricted(e.key_public_area);
    expect_refused(_registrar->enrol_tpm(e, *nonce, *credential),
                   "the signing key's public area: restricted is clear: the TPM signs any digest with the key");
    EXPECT_FALSE(*_registrar->lookup("gm-tpm"));

    // Enrolled as it is, then recorded as an unrestricted key would be.
    ASSERT_TRUE(enrol_tpm(*_registrar, *_signer, "gm-tpm", expected));
    const std::vector<uint8_t> session(32, 0x5a);
    auto shown = _signer->quote(session, pcrs);
    ASSERT_TRUE(shown) << shown.message();
    ASSERT_TRUE(_registrar->check_platform("gm-tpm", shown->attest, shown->signature, session));
    _registrar.reset();
    {
        auto db = sql::open_sqlite(_dir.file("registrar.db"), true);
        ASSERT_TRUE(db) << db.message();
        const std::array<sql::value, 1> area{without_restricted(_signer->key_public().public_area)};
        ASSERT_TRUE((*db)->query("UPDATE signers SET key_public_area = $1 WHERE signer_id = 'gm-tpm';", area));
    }
    _registrar = open_registrar(_dir);
    ASSERT_NE(_registrar, nullptr);
    expect_refused(_registrar->check_platform("gm-tpm", shown->attest, shown->signature, session),
                   "signer \"gm-tpm\": its quotes cannot be trusted: the enrolled key's public area: restricted is "
                   "clear");
    auto fresh = make_nonce();
    ASSERT_TRUE(fresh);
    auto requoted = _signer->quote(*fresh, pcrs);
    ASSERT_TRUE(requoted) << requoted.message();
    expect_refused(_registrar->update_profile("gm-tpm", *requoted, *fresh, expected, "firmware 2.1"),
                   "its quotes cannot be trusted");
}

// A firmware update changes the platform's PCRs: the operator replaces the
// profile once the signer's TPM quotes the new values, the platform check
// passes again, and the profile it replaced is kept with the reason.
TEST_F(registrar_tpm, a_profile_is_replaced_only_by_values_its_tpm_quotes_and_the_old_one_is_kept) {
    const std::vector<unsigned> pcrs{0, 7};
    const auto before = current_pcrs(*_signer, pcrs);
    ASSERT_TRUE(enrol_tpm(*_registrar, *_signer, "gm-tpm", before));
    auto same = update_profile_tpm(*_registrar, *_signer, "gm-tpm", before, "checked after a reboot");
    ASSERT_TRUE(same) << same.message();
    EXPECT_FALSE(*same) << "the same values change nothing";

    // The update: PCR 7 measures something new.
    _signer.reset();
    {
        ptpsec::test::direct_tpm direct(_tpm->tcti());
        direct.extend(7, std::vector<uint8_t>(32, 0x07));
    }
    _signer = open_tpm_signer(*_tpm, "gm-tpm");
    ASSERT_TRUE(_signer);
    const auto after = current_pcrs(*_signer, pcrs);
    ASSERT_NE(after, before);
    const std::vector<uint8_t> session(32, 0x5a);
    auto q = _signer->quote(session, pcrs);
    ASSERT_TRUE(q) << q.message();
    expect_refused(_registrar->check_platform("gm-tpm", q->attest, q->signature, session), "pcrDigest does not match");

    expect_refused(update_profile_tpm(*_registrar, *_signer, "gm-tpm", after, ""), "no reason given");
    expect_refused(update_profile_tpm(*_registrar, *_signer, "gm-tpm", {}, "update"), "no expected PCR values");
    // Values the platform does not have now (the old ones, a rollback).
    const auto rollback = update_profile_tpm(*_registrar, *_signer, "gm-tpm", before, "rollback");
    expect_refused(rollback, "the quote's pcrDigest does not match the expected PCR values");
    expect_refused(rollback, "PCR 7 reads " + to_hex(after.at(7)));
    expect_refused(update_profile_tpm(*_registrar, *_signer, "gm-other", after, "update"),
                   "signer \"gm-other\" refused: it is not enrolled");
    // A quote not made for this update (another nonce: a replayed one).
    const std::vector<uint8_t> issued(32, 0x11);
    expect_refused(_registrar->update_profile("gm-tpm", *q, issued, after, "update"),
                   "the quote's nonce (extraData) is not the one asked for");
    // Another TPM's key (a node swapped, or the wrong --tpm): not the enrolled one.
    {
        ptpsec::test::swtpm other_tpm;
        auto other = open_tpm_signer(other_tpm, "gm-tpm");
        ASSERT_TRUE(other);
        expect_refused(update_profile_tpm(*_registrar, *other, "gm-tpm", after, "update"),
                       "the TPM's key at handle 0x81000100 is not the key enrolled for it");
    }
    auto soft = software(_dir, "dev", hsm::signature_algorithm::es256);
    ASSERT_TRUE(
        _registrar->enrol_software("dev", soft->info().algorithm, soft->info().public_key_der, "dev.pem", true));
    expect_refused(_registrar->update_profile("dev", *q, session, after, "update"),
                   "it is a software signer; only a TPM signer has a PCR profile");
    auto unchanged = _registrar->lookup("gm-tpm");
    ASSERT_TRUE(unchanged && *unchanged);
    EXPECT_EQ((*unchanged)->expected_pcrs, before) << "every refusal leaves the profile as it was";
    EXPECT_TRUE((*unchanged)->profile_changes.empty());

    auto done = update_profile_tpm(*_registrar, *_signer, "gm-tpm", after, "firmware 1.2 to 1.3");
    ASSERT_TRUE(done) << done.message();
    EXPECT_TRUE(*done);
    EXPECT_TRUE(_registrar->check_platform("gm-tpm", q->attest, q->signature, session));

    // As a second process sees the file.
    auto reopened = open_registrar(_dir);
    auto found = reopened->lookup("gm-tpm");
    ASSERT_TRUE(found && *found);
    EXPECT_EQ((*found)->expected_pcrs, after);
    ASSERT_EQ((*found)->profile_changes.size(), 1U);
    EXPECT_EQ((*found)->profile_changes[0].previous, before);
    EXPECT_EQ((*found)->profile_changes[0].reason, "firmware 1.2 to 1.3");
    EXPECT_GT((*found)->profile_changes[0].replaced_at_ns, (*found)->enrolled_at_ns);

    ASSERT_TRUE(_registrar->revoke("gm-tpm", "decommissioned", 1));
    expect_refused(update_profile_tpm(*_registrar, *_signer, "gm-tpm", after, "update"),
                   "it is revoked (decommissioned)");
}

} // namespace
} // namespace ptpsec::verifier
