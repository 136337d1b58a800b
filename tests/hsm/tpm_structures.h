#pragma once

// TPM 2.0 structures written in software, for the checks that take them
// from a device or a node (hsm::check_quote, hsm::check_key_public): a
// quote's TPMS_ATTEST as anyone could write it, a P-256 key of OpenSSL's to
// sign it with, and a TPM2B_PUBLIC for that key's point.

#include <hsm/signature.h>
#include <hsm/tpm_signer.h>

#include <gtest/gtest.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include <algorithm>
#include <array>
#include <memory>
#include <span>
#include <vector>

namespace ptpsec::test {

inline std::array<uint8_t, 32> sha256_of(std::span<const uint8_t> data) {
    std::array<uint8_t, 32> out{};
    unsigned len = 0;
    EXPECT_EQ(EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr), 1);
    return out;
}

/// The TPMS_ATTEST of a quote (TPM 2.0 Part 2 §10.12.12): the magic, the
/// nonce as extraData, one SHA-256 selection of `pcrs`' indices and the
/// digest of their values in index order.
inline TPMS_ATTEST quote_attest(std::span<const uint8_t> nonce, const hsm::pcr_values& pcrs) {
    TPMS_ATTEST a{};
    a.magic = TPM2_GENERATED_VALUE;
    a.type = TPM2_ST_ATTEST_QUOTE;
    a.extraData.size = static_cast<UINT16>(nonce.size());
    std::copy(nonce.begin(), nonce.end(), a.extraData.buffer);
    auto& sel = a.attested.quote.pcrSelect;
    sel.count = 1;
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    std::vector<uint8_t> concat;
    for (const auto& [index, value] : pcrs) {
        sel.pcrSelections[0].pcrSelect[index / 8] |= static_cast<uint8_t>(1U << (index % 8));
        concat.insert(concat.end(), value.begin(), value.end());
    }
    const auto digest = sha256_of(concat);
    a.attested.quote.pcrDigest.size = static_cast<UINT16>(digest.size());
    std::copy(digest.begin(), digest.end(), a.attested.quote.pcrDigest.buffer);
    return a;
}

inline std::vector<uint8_t> marshal(const TPMS_ATTEST& a) {
    std::vector<uint8_t> out(sizeof(TPMS_ATTEST));
    size_t n = 0;
    EXPECT_EQ(Tss2_MU_TPMS_ATTEST_Marshal(&a, out.data(), out.size(), &n), TSS2_RC_SUCCESS);
    out.resize(n);
    return out;
}

inline std::vector<uint8_t> marshal(const TPM2B_PUBLIC& p) {
    std::vector<uint8_t> out(sizeof(TPM2B_PUBLIC));
    size_t n = 0;
    EXPECT_EQ(Tss2_MU_TPM2B_PUBLIC_Marshal(&p, out.data(), out.size(), &n), TSS2_RC_SUCCESS);
    out.resize(n);
    return out;
}

/// A TPMS_ATTEST of a quote, marshalled.
inline std::vector<uint8_t> made_up_quote(std::span<const uint8_t> nonce, const hsm::pcr_values& pcrs) {
    return marshal(quote_attest(nonce, pcrs));
}

/// A P-256 key pair of OpenSSL's.
class p256_key {
public:
    p256_key() : _key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free) {}

    std::vector<uint8_t> spki() const {
        unsigned char* der = nullptr;
        const int len = i2d_PUBKEY(_key.get(), &der);
        std::vector<uint8_t> out(der, der + std::max(len, 0));
        OPENSSL_free(der);
        return out;
    }

    /// ES256 over `message`, as r || s (the form check_quote takes).
    std::vector<uint8_t> sign(std::span<const uint8_t> message) const {
        std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
        size_t len = 0;
        EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, _key.get()), 1);
        EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()), 1);
        std::vector<uint8_t> der(len);
        EXPECT_EQ(EVP_DigestSign(ctx.get(), der.data(), &len, message.data(), message.size()), 1);
        der.resize(len);
        auto raw = hsm::ecdsa_der_to_raw(der);
        EXPECT_TRUE(raw.ok());
        return raw.ok() ? *raw : std::vector<uint8_t>{};
    }

    /// A TPM2B_PUBLIC for this key's point as the signer's template makes
    /// it: ECDSA/SHA-256 on P-256, nameAlg SHA-256, fixedTPM, fixedParent,
    /// sensitiveDataOrigin, userWithAuth, noDA, restricted, sign.
    TPM2B_PUBLIC tpm_public() const {
        std::array<uint8_t, 65> point{};
        size_t len = 0;
        EXPECT_EQ(EVP_PKEY_get_octet_string_param(_key.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(),
                                                  point.size(), &len),
                  1);
        EXPECT_EQ(len, point.size());
        TPM2B_PUBLIC p{};
        auto& a = p.publicArea;
        a.type = TPM2_ALG_ECC;
        a.nameAlg = TPM2_ALG_SHA256;
        a.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                             TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED |
                             TPMA_OBJECT_SIGN_ENCRYPT;
        a.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
        a.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
        a.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
        a.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
        a.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        a.unique.ecc.x.size = 32;
        std::copy_n(point.begin() + 1, 32, a.unique.ecc.x.buffer);
        a.unique.ecc.y.size = 32;
        std::copy_n(point.begin() + 33, 32, a.unique.ecc.y.buffer);
        return p;
    }

private:
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> _key;
};

} // namespace ptpsec::test
