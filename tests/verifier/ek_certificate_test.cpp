// The checks of a TPM's EK certificate (control/verifier/ek_certificate.h)
// on the fixtures of the EK certificate fuzz target (fuzz/ek_certificate, and
// the seeds in fuzz/corpus/ek_certificate): each verdict, each refusal with
// its message, and nothing left in OpenSSL's error queue after any of them.
// The Registrar's own tests (registrar_test.cpp) check the same function
// inside enrolment, with certificates made by the test.

#include "../process.h"

#include <control/verifier/ek_certificate.h>

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <ctime>
#include <string>
#include <vector>

namespace ptpsec::verifier {
namespace {

const std::string fuzz_dir = PTPSEC_FUZZ_DIR;
const ek_trust with_crl{fuzz_dir + "/ek_certificate/ca.pem", fuzz_dir + "/ek_certificate/crl.pem"};
const ek_trust without_crl{fuzz_dir + "/ek_certificate/ca.pem", {}};

std::vector<uint8_t> read_file(const std::string& path) {
    const std::string text = test::read_file(path);
    EXPECT_FALSE(text.empty()) << path << ": missing or empty";
    return {text.begin(), text.end()};
}

std::vector<uint8_t> seed(const std::string& name) {
    return read_file(fuzz_dir + "/corpus/ek_certificate/" + name);
}

const std::vector<uint8_t>& ek_spki() {
    static const std::vector<uint8_t> spki = read_file(fuzz_dir + "/ek_certificate/ek.spki");
    return spki;
}

/// The refusal of `der` against `trust`, or "" when it is taken; fails the
/// test when the check leaves anything in OpenSSL's error queue.
std::string refusal(const std::vector<uint8_t>& der, const ek_trust& trust) {
    ERR_clear_error();
    const status s = check_ek_certificate(der, ek_spki(), trust);
    EXPECT_EQ(ERR_peek_error(), 0UL) << "OpenSSL's error queue after " << (s ? "ok" : s.message());
    return s ? std::string() : s.message();
}

TEST(ek_certificate, the_eks_certificate_is_taken_also_with_padding_after_it) {
    EXPECT_EQ(refusal(seed("ek-valid"), with_crl), "");
    EXPECT_EQ(refusal(seed("ek-valid"), without_crl), "");
    const auto padded = seed("ek-padded");
    ASSERT_GT(padded.size(), seed("ek-valid").size());
    EXPECT_EQ(refusal(padded, with_crl), "");
}

TEST(ek_certificate, a_revoked_certificate_is_refused_with_its_date_in_the_crl) {
    const auto der = seed("ek-revoked");
    EXPECT_EQ(refusal(der, with_crl),
              "the TPM's EK certificate is revoked by its issuer's CRL in " + with_crl.crl_file);
    EXPECT_EQ(refusal(der, without_crl), "") << "without CRLs, revocation is not checked";
    const x509_ptr cert = certificate_of(der);
    ASSERT_NE(cert, nullptr);
    EXPECT_EQ(serial_of(cert.get()), "2002");
    std::tm revoked{};
    revoked.tm_year = 2024 - 1900;
    revoked.tm_mon = 5;
    revoked.tm_mday = 1;
    EXPECT_EQ(revocation_date(cert.get(), with_crl.crl_file), int64_t{timegm(&revoked)} * 1'000'000'000);
    EXPECT_EQ(revocation_date(certificate_of(seed("ek-valid")).get(), with_crl.crl_file), std::nullopt);
}

TEST(ek_certificate, every_refusal_says_why) {
    EXPECT_EQ(refusal({}, with_crl), "the TPM holds no certificate of its EK to check against " + with_crl.ca_file);
    EXPECT_EQ(refusal(seed("not-a-certificate"), with_crl), "the TPM's EK certificate is not a DER X.509 certificate");
    auto cut = seed("ek-valid");
    cut.resize(cut.size() / 2);
    EXPECT_EQ(refusal(cut, with_crl), "the TPM's EK certificate is not a DER X.509 certificate");
    EXPECT_EQ(refusal(seed("ek-other-key"), with_crl), "the TPM's EK certificate is for another key than its EK");
    EXPECT_EQ(refusal(seed("ek-other-issuer"), with_crl), "the TPM's EK certificate does not chain to " +
                                                              with_crl.ca_file +
                                                              ": unable to get local issuer certificate");

    // The EK's point with 0x05, no point form, for 0x04 (uncompressed): the
    // certificate still parses, its key does not.
    EXPECT_EQ(refusal(seed("ek-unreadable-key"), with_crl),
              "the TPM's EK certificate holds a public key that cannot be read");

    // A signature that does not verify under the CA.
    auto forged = seed("ek-valid");
    forged.back() ^= 0x01U;
    EXPECT_EQ(refusal(forged, without_crl).rfind("the TPM's EK certificate does not chain to " + with_crl.ca_file, 0),
              0U)
        << refusal(forged, without_crl);

    // Trust files that cannot be read.
    EXPECT_EQ(refusal(seed("ek-valid"), ek_trust{fuzz_dir + "/ek_certificate/missing.pem", {}}),
              "cannot read trusted EK issuers from " + fuzz_dir +
                  "/ek_certificate/missing.pem (a PEM file of CA certificates)");
    EXPECT_EQ(refusal(seed("ek-valid"), ek_trust{with_crl.ca_file, fuzz_dir + "/ek_certificate/missing.pem"}),
              "cannot read EK certificate revocation lists from " + fuzz_dir +
                  "/ek_certificate/missing.pem (a PEM file of CRLs)");
}

} // namespace
} // namespace ptpsec::verifier
