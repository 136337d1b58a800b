// hsm::check_quote and hsm::check_key_public without a TPM: structures
// written in software (tpm_structures.h) and signed with an OpenSSL key,
// one case per refusal, each named by its message. The same checks on a
// real TPM's output are in tpm_signer_test.cpp.

#include "tpm_structures.h"

#include <hsm/tpm_signer.h>

#include <gtest/gtest.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::hsm {
namespace {

using test::marshal;
using test::p256_key;
using test::quote_attest;

void expect_refusal(const status& s, std::string_view says) {
    ASSERT_FALSE(s.ok()) << "expected a refusal saying " << says;
    EXPECT_NE(s.message().find(says), std::string::npos) << s.message() << " (expected: " << says << ")";
}

class tpm_checks : public ::testing::Test {
protected:
    tpm_checks() {
        for (const unsigned index : {0U, 2U, 7U, 16U}) {
            _pcrs[index] = std::vector<uint8_t>(32, static_cast<uint8_t>(index + 1));
        }
    }

    /// check_quote of `a` signed by the key, against the fixture's nonce
    /// and PCR values unless others are given.
    status check(const TPMS_ATTEST& a) const { return check(marshal(a), _pcrs); }
    status check(const std::vector<uint8_t>& attest, const pcr_values& expected) const {
        return check_quote(attest, _key.sign(attest), _key.spki(), _nonce, expected);
    }

    p256_key _key;
    std::vector<uint8_t> _nonce = std::vector<uint8_t>(32, 0x5a);
    pcr_values _pcrs;
};

TEST_F(tpm_checks, a_quote_passes_only_as_the_tpm_makes_it_and_each_refusal_says_why) {
    const TPMS_ATTEST good = quote_attest(_nonce, _pcrs);
    ASSERT_TRUE(check(good).ok()) << check(good).message();

    TPMS_ATTEST a = good;
    a.magic = 0xff544348;
    expect_refusal(check(a), "the quote's magic is 0xff544348, not TPM_GENERATED_VALUE");

    a = good;
    a.type = TPM2_ST_ATTEST_TIME;
    a.attested.time = {};
    expect_refusal(check(a), "the attestation is of type 0x8019, not a quote (TPM_ST_ATTEST_QUOTE)");

    a = good;
    a.extraData.size = 31;
    expect_refusal(check(a), "the quote's nonce (extraData) is not the one asked for");

    a = good;
    a.attested.quote.pcrSelect.pcrSelections[0].hash = TPM2_ALG_SHA1;
    expect_refusal(check(a), "the quote covers other PCRs than the ones expected (or another bank than SHA-256)");
    a = good;
    a.attested.quote.pcrSelect.count = 2;
    a.attested.quote.pcrSelect.pcrSelections[1] = a.attested.quote.pcrSelect.pcrSelections[0];
    a.attested.quote.pcrSelect.pcrSelections[1].hash = TPM2_ALG_SHA384;
    expect_refusal(check(a), "other PCRs than the ones expected");
    a = good;
    a.attested.quote.pcrSelect.pcrSelections[0].pcrSelect[0] ^= 0x02; // PCR 1 as well
    expect_refusal(check(a), "other PCRs than the ones expected");
    a = good;
    a.attested.quote.pcrSelect.pcrSelections[0].sizeofSelect = 2; // PCR 16 left out
    expect_refusal(check(a), "other PCRs than the ones expected");

    a = good;
    a.attested.quote.pcrDigest.buffer[0] ^= 0x01;
    expect_refusal(check(a), "the quote's pcrDigest does not match the expected PCR values");

    // The octets themselves: cut short, or with more after the structure.
    const std::vector<uint8_t> bytes = marshal(good);
    expect_refusal(check(std::vector<uint8_t>(bytes.begin(), bytes.end() - 1), _pcrs),
                   "the quote does not unmarshal as a TPMS_ATTEST");
    auto longer = bytes;
    longer.push_back(0);
    expect_refusal(check(longer, _pcrs), "the quote does not unmarshal as a TPMS_ATTEST");

    // Signed by another key, or not signed at all.
    const p256_key other;
    expect_refusal(check_quote(bytes, other.sign(bytes), _key.spki(), _nonce, _pcrs),
                   "the quote's signature does not verify under the enrolled key");
    expect_refusal(check_quote(bytes, {}, _key.spki(), _nonce, _pcrs),
                   "the quote's signature does not verify under the enrolled key");

    // What the verifier expects must make sense.
    expect_refusal(check(bytes, {}), "no expected PCR values given");
    auto out_of_range = _pcrs;
    out_of_range[TPM2_PCR_SELECT_MAX * 8] = std::vector<uint8_t>(32, 0);
    expect_refusal(check(bytes, out_of_range), "PCR 32 is out of range");
    auto short_value = _pcrs;
    short_value[7].resize(20);
    const auto with_short = marshal(quote_attest(_nonce, short_value));
    expect_refusal(check(with_short, short_value), "the expected value of PCR 7 has 20 octets, not 32");
}

TEST_F(tpm_checks, a_key_public_area_passes_only_for_a_restricted_p256_signing_key_and_each_refusal_says_why) {
    const TPM2B_PUBLIC good = _key.tpm_public();
    const std::vector<uint8_t> bytes = marshal(good);
    auto name = check_key_public(bytes, _key.spki());
    ASSERT_TRUE(name.ok()) << name.message();
    // nameAlg || SHA-256 of the TPMT_PUBLIC (Part 1 §16).
    std::vector<uint8_t> want{0x00, 0x0b};
    const auto digest = test::sha256_of(std::span(bytes).subspan(2));
    want.insert(want.end(), digest.begin(), digest.end());
    EXPECT_EQ(*name, want);

    const auto refused = [&](const TPM2B_PUBLIC& p, std::string_view says) {
        const auto r = check_key_public(marshal(p), _key.spki());
        ASSERT_FALSE(r.ok()) << says;
        EXPECT_NE(r.message().find(says), std::string::npos) << r.message();
    };
    TPM2B_PUBLIC p = good;
    p.publicArea.type = TPM2_ALG_RSA;
    p.publicArea.parameters.rsaDetail = {};
    p.publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p.publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p.publicArea.parameters.rsaDetail.keyBits = 2048;
    p.publicArea.unique.rsa.size = 0;
    refused(p, "the key is not an ECC key (type 0x0001)");
    p = good;
    p.publicArea.nameAlg = TPM2_ALG_SHA384;
    refused(p, "the key's nameAlg is 0x000c, not SHA-256");
    p = good;
    p.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
    refused(p, "the key is not on curve NIST P-256 (curve 0x0004)");
    p = good;
    p.publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA384;
    refused(p, "the key's scheme is 0x0018/0x000c, not ECDSA/SHA-256");
    p = good;
    p.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECSCHNORR;
    refused(p, "the key's scheme is 0x001c/0x000b, not ECDSA/SHA-256");
    const struct {
        TPMA_OBJECT clear;
        TPMA_OBJECT set;
        const char* says;
    } attributes[] = {
        {TPMA_OBJECT_FIXEDTPM, 0, "fixedTPM is clear"},
        {TPMA_OBJECT_FIXEDPARENT, 0, "fixedParent is clear"},
        {TPMA_OBJECT_SENSITIVEDATAORIGIN, 0, "sensitiveDataOrigin is clear"},
        {TPMA_OBJECT_SIGN_ENCRYPT, 0, "sign is clear"},
        {0, TPMA_OBJECT_DECRYPT, "decrypt is set"},
        {TPMA_OBJECT_RESTRICTED, 0, "restricted is clear: the TPM signs any digest with the key"},
    };
    for (const auto& c : attributes) {
        p = good;
        p.publicArea.objectAttributes = (p.publicArea.objectAttributes & ~c.clear) | c.set;
        refused(p, c.says);
    }
    p = good;
    p.publicArea.unique.ecc.y.buffer[31] ^= 0x01;
    refused(p, "the public area's ECC point is not the expected key's");
    p = good;
    p.publicArea.unique.ecc.x.size = 33; // a 33-octet coordinate that is not a padded 32-octet one
    p.publicArea.unique.ecc.x.buffer[32] = 0;
    refused(p, "the public area's ECC point is not the expected key's");

    // Without a key to compare the point with: the attributes alone.
    EXPECT_TRUE(check_key_attributes(bytes).ok());
    p = good;
    p.publicArea.unique.ecc.y.buffer[31] ^= 0x01;
    EXPECT_TRUE(check_key_attributes(marshal(p)).ok()) << "check_key_attributes compares no point";
    p = good;
    p.publicArea.objectAttributes &= ~TPMA_OBJECT_RESTRICTED;
    expect_refusal(check_key_attributes(marshal(p)), "restricted is clear");
    expect_refusal(check_key_attributes(std::span(bytes).first(bytes.size() - 1)),
                   "does not unmarshal as a TPM2B_PUBLIC");

    const p256_key other;
    const auto not_ours = check_key_public(bytes, other.spki());
    ASSERT_FALSE(not_ours.ok());
    EXPECT_NE(not_ours.message().find("the public area's ECC point is not the expected key's"), std::string::npos)
        << not_ours.message();
    const auto cut = check_key_public(std::span(bytes).first(bytes.size() - 1), _key.spki());
    ASSERT_FALSE(cut.ok());
    EXPECT_NE(cut.message().find("does not unmarshal as a TPM2B_PUBLIC"), std::string::npos) << cut.message();

    // The expected key itself: DER of a whole SubjectPublicKeyInfo, and a
    // P-256 key by curve name.
    std::vector<uint8_t> trailing = _key.spki();
    trailing.push_back(0);
    for (const std::vector<uint8_t>& not_der : {trailing, std::vector<uint8_t>{0x30, 0x03, 0x02, 0x01, 0x00}}) {
        const auto r = check_key_public(bytes, not_der);
        ASSERT_FALSE(r.ok());
        EXPECT_EQ(r.message(), "the expected key is not a DER SubjectPublicKeyInfo");
    }
    for (const char* curve : {"secp384r1", "secp256k1"}) {
        std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve),
                                                              EVP_PKEY_free);
        ASSERT_TRUE(k) << curve;
        unsigned char* der = nullptr;
        const int len = i2d_PUBKEY(k.get(), &der);
        ASSERT_GT(len, 0) << curve;
        const std::vector<uint8_t> spki(der, der + len);
        OPENSSL_free(der);
        const auto r = check_key_public(bytes, spki);
        ASSERT_FALSE(r.ok()) << curve;
        EXPECT_EQ(r.message(), "the expected key is not an ECC P-256 key") << curve;
    }
}

} // namespace
} // namespace ptpsec::hsm
