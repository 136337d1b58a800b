// The signature helpers every backend and the Verifier lean on: ECDSA P-256
// and Ed25519 signatures made with OpenSSL here, checked in COSE form, and
// the r || s <-> DER conversions, with their refusals.

#include <hsm/signature.h>

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>
#include <string_view>
#include <vector>

namespace ptpsec::hsm {
namespace {

struct pkey_free {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

pkey_ptr make_key(bool ed25519) {
    return pkey_ptr(ed25519 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                            : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
}

std::vector<uint8_t> spki(EVP_PKEY* k) {
    const int len = i2d_PUBKEY(k, nullptr);
    std::vector<uint8_t> der(static_cast<size_t>(len));
    unsigned char* p = der.data();
    i2d_PUBKEY(k, &p);
    return der;
}

std::vector<uint8_t> openssl_sign(EVP_PKEY* k, bool ed25519, std::span<const uint8_t> msg) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EXPECT_EQ(EVP_DigestSignInit(ctx.get(), nullptr, ed25519 ? nullptr : EVP_sha256(), nullptr, k), 1);
    size_t len = 0;
    EXPECT_EQ(EVP_DigestSign(ctx.get(), nullptr, &len, msg.data(), msg.size()), 1);
    std::vector<uint8_t> sig(len);
    EXPECT_EQ(EVP_DigestSign(ctx.get(), sig.data(), &len, msg.data(), msg.size()), 1);
    sig.resize(len);
    return sig;
}

const std::vector<uint8_t> message = {'b', 'a', 't', 'c', 'h', ' ', 'r', 'o', 'o', 't'};

TEST(signature, es256_in_cose_form_verifies_and_a_flipped_bit_does_not) {
    auto key = make_key(false);
    const auto der_sig = openssl_sign(key.get(), false, message);
    auto raw = ecdsa_der_to_raw(der_sig);
    ASSERT_TRUE(raw) << raw.message();
    ASSERT_EQ(raw->size(), 64U);
    EXPECT_TRUE(verify_signature(signature_algorithm::es256, spki(key.get()), message, *raw));
    auto back = ecdsa_raw_to_der(*raw);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, der_sig);

    auto bad = *raw;
    bad[10] ^= 0x01;
    const auto refused = verify_signature(signature_algorithm::es256, spki(key.get()), message, bad);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.message(), "the ECDSA signature does not verify");
    auto other = message;
    other[0] = 'B';
    EXPECT_FALSE(verify_signature(signature_algorithm::es256, spki(key.get()), other, *raw));
}

TEST(signature, eddsa_verifies_and_the_wrong_key_type_is_named) {
    auto ed = make_key(true);
    const auto sig = openssl_sign(ed.get(), true, message);
    EXPECT_TRUE(verify_signature(signature_algorithm::eddsa, spki(ed.get()), message, sig));
    const auto crossed = verify_signature(signature_algorithm::es256, spki(ed.get()), message, sig);
    ASSERT_FALSE(crossed);
    EXPECT_EQ(crossed.message(), "ES256 needs a P-256 public key");
    auto ec = make_key(false);
    EXPECT_EQ(verify_signature(signature_algorithm::eddsa, spki(ec.get()), message, sig).message(),
              "EdDSA needs an Ed25519 public key");
}

TEST(signature, es256_takes_p256_only_not_another_256_bit_curve) {
    for (const char* curve : {"secp256k1", "brainpoolP256r1"}) {
        SCOPED_TRACE(curve);
        pkey_ptr other(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
        ASSERT_NE(other, nullptr);
        ASSERT_EQ(EVP_PKEY_get_bits(other.get()), 256);
        const auto raw = ecdsa_der_to_raw(openssl_sign(other.get(), false, message));
        ASSERT_TRUE(raw) << raw.message();
        const auto refused = verify_signature(signature_algorithm::es256, spki(other.get()), message, *raw);
        ASSERT_FALSE(refused) << "a good signature, but not on P-256";
        EXPECT_EQ(refused.message(), "ES256 needs a P-256 public key");
    }
}

TEST(signature, malformed_inputs_are_refused_with_their_reason) {
    auto key = make_key(false);
    const auto pub = spki(key.get());
    const std::vector<uint8_t> short_sig(63, 1);
    EXPECT_EQ(verify_signature(signature_algorithm::es256, pub, message, short_sig).message(),
              "an ES256 signature is 64 octets, not 63");
    std::vector<uint8_t> truncated(pub.begin(), pub.end() - 1);
    EXPECT_EQ(verify_signature(signature_algorithm::es256, truncated, message, std::vector<uint8_t>(64, 1)).message(),
              "the public key is not a DER SubjectPublicKeyInfo");
    EXPECT_EQ(ecdsa_der_to_raw(std::vector<uint8_t>{0x30, 0x03, 0x02, 0x01}).message(),
              "the signature is not a DER ECDSA-Sig-Value");
    EXPECT_FALSE(ecdsa_raw_to_der(std::vector<uint8_t>(63, 1)));
    // A 33-octet r does not fit P-256's 32.
    std::vector<uint8_t> long_r = {0x30, 0x26, 0x02, 0x21, 0x01};
    long_r.insert(long_r.end(), 32, 0x11);
    long_r.insert(long_r.end(), {0x02, 0x01, 0x01});
    EXPECT_EQ(ecdsa_der_to_raw(long_r).message(), "an ECDSA signature value is longer than 32 octets");
}

} // namespace
} // namespace ptpsec::hsm
