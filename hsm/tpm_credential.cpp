#include <hsm/tpm_credential.h>

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <cstring>
#include <memory>
#include <string_view>

namespace ptpsec::hsm {

namespace {

using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;
using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
using bn_ptr = std::unique_ptr<BIGNUM, decltype(&BN_free)>;

constexpr size_t digest_len = 32;  // SHA-256, the EK's nameAlg
constexpr size_t sym_key_len = 16; // AES-128
/// "IDENTITY" with its terminating NUL: the label of the seed (Part 1 §24.4).
constexpr std::string_view identity_label{"IDENTITY\0", 9};

void put_u16(std::vector<uint8_t>& out, size_t v) {
    out.push_back(static_cast<uint8_t>(v >> 8));
    out.push_back(static_cast<uint8_t>(v));
}

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        out.push_back(static_cast<uint8_t>(v >> shift));
    }
}

// resize and memcpy rather than insert: GCC 12 at -O3 reports a false
// -Wstringop-overflow for vector::insert of a few octets.
void put(std::vector<uint8_t>& out, const void* data, size_t n) {
    const size_t at = out.size();
    out.resize(at + n);
    if (n != 0) {
        std::memcpy(out.data() + at, data, n);
    }
}

void put(std::vector<uint8_t>& out, std::span<const uint8_t> bytes) {
    put(out, bytes.data(), bytes.size());
}

void put(std::vector<uint8_t>& out, std::string_view text) {
    put(out, text.data(), text.size());
}

result<std::array<uint8_t, digest_len>> hmac_sha256(std::span<const uint8_t> key, std::span<const uint8_t> data) {
    std::array<uint8_t, digest_len> out{};
    size_t len = 0;
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(), data.data(), data.size(),
                  out.data(), out.size(), &len) == nullptr ||
        len != out.size()) {
        return error{"HMAC-SHA256 failed"};
    }
    return out;
}

/// KDFa (Part 1 §11.4.10.2) with SHA-256, for at most 256 bits (one round):
/// HMAC(key, [1]32 || label || 0x00 || contextU || contextV || [bits]32).
result<std::array<uint8_t, digest_len>> kdfa(std::span<const uint8_t> key, std::string_view label,
                                             std::span<const uint8_t> context_u, uint32_t bits) {
    std::vector<uint8_t> in;
    put_u32(in, 1);
    put(in, label);
    in.push_back(0);
    put(in, context_u);
    put_u32(in, bits);
    return hmac_sha256(key, in);
}

/// The x (or y) coordinate of an EC key, 32 octets.
result<std::array<uint8_t, 32>> coordinate(EVP_PKEY* key, const char* which) {
    BIGNUM* raw = nullptr;
    if (EVP_PKEY_get_bn_param(key, which, &raw) != 1) {
        return error{"reading an EC point coordinate failed"};
    }
    bn_ptr bn(raw, BN_free);
    std::array<uint8_t, 32> out{};
    if (BN_bn2binpad(bn.get(), out.data(), static_cast<int>(out.size())) != static_cast<int>(out.size())) {
        return error{"an EC point coordinate does not fit 32 octets"};
    }
    return out;
}

struct sealed_seed {
    std::vector<uint8_t> seed;
    std::vector<uint8_t> encrypted;
};

/// RSA EK: a random seed under RSA-OAEP(SHA-256, label "IDENTITY\0").
result<sealed_seed> seal_rsa(EVP_PKEY* ek) {
    sealed_seed s;
    s.seed.resize(digest_len);
    if (RAND_bytes(s.seed.data(), static_cast<int>(s.seed.size())) != 1) {
        return error{"the random generator failed"};
    }
    pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek, nullptr), EVP_PKEY_CTX_free);
    // OpenSSL takes ownership of the label.
    auto* label = static_cast<unsigned char*>(OPENSSL_memdup(identity_label.data(), identity_label.size()));
    if (ctx == nullptr || label == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set0_rsa_oaep_label(ctx.get(), label, static_cast<int>(identity_label.size())) != 1) {
        OPENSSL_free(label);
        return error{"setting up RSA-OAEP to the endorsement key failed"};
    }
    size_t len = 0;
    if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, s.seed.data(), s.seed.size()) != 1) {
        return error{"RSA-OAEP to the endorsement key failed"};
    }
    s.encrypted.resize(len);
    if (EVP_PKEY_encrypt(ctx.get(), s.encrypted.data(), &len, s.seed.data(), s.seed.size()) != 1) {
        return error{"RSA-OAEP to the endorsement key failed"};
    }
    s.encrypted.resize(len);
    return s;
}

/// ECC EK: one-pass ECDH with an ephemeral P-256 key; the seed is
/// KDFe(SHA-256, Z, "IDENTITY\0", ephemeral.x, ek.x, 256) and the encrypted
/// secret is the ephemeral point as a TPMS_ECC_POINT.
result<sealed_seed> seal_ecc(EVP_PKEY* ek) {
    pkey_ptr eph(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
    if (eph == nullptr) {
        return error{"making an ephemeral P-256 key failed"};
    }
    pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, eph.get(), nullptr), EVP_PKEY_CTX_free);
    std::array<uint8_t, 32> z{};
    size_t z_len = z.size();
    if (ctx == nullptr || EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_derive_set_peer(ctx.get(), ek) != 1 ||
        EVP_PKEY_derive(ctx.get(), z.data(), &z_len) != 1 || z_len != z.size()) {
        return error{"ECDH with the endorsement key failed (is it a P-256 key?)"};
    }
    auto eph_x = coordinate(eph.get(), OSSL_PKEY_PARAM_EC_PUB_X);
    auto eph_y = coordinate(eph.get(), OSSL_PKEY_PARAM_EC_PUB_Y);
    auto ek_x = coordinate(ek, OSSL_PKEY_PARAM_EC_PUB_X);
    if (!eph_x || !eph_y || !ek_x) {
        return error{"reading the ECDH points failed"};
    }
    // KDFe (Part 1 §11.4.10.3): Hash([1]32 || Z || Use || PartyUInfo || PartyVInfo).
    std::vector<uint8_t> in;
    put_u32(in, 1);
    put(in, z);
    put(in, identity_label);
    put(in, *eph_x);
    put(in, *ek_x);
    sealed_seed s;
    s.seed.resize(digest_len);
    unsigned int len = 0;
    if (EVP_Digest(in.data(), in.size(), s.seed.data(), &len, EVP_sha256(), nullptr) != 1 || len != digest_len) {
        return error{"SHA-256 failed"};
    }
    put_u16(s.encrypted, eph_x->size());
    put(s.encrypted, *eph_x);
    put_u16(s.encrypted, eph_y->size());
    put(s.encrypted, *eph_y);
    return s;
}

} // namespace

result<tpm_credential_blob> make_credential(std::span<const uint8_t> ek_spki_der, std::span<const uint8_t> object_name,
                                            std::span<const uint8_t> credential) {
    if (credential.empty() || credential.size() > max_credential_len) {
        return error{fmt::format("a credential is 1 to {} octets, not {}", max_credential_len, credential.size())};
    }
    if (object_name.size() != 2 + digest_len || object_name[0] != 0x00 || object_name[1] != 0x0B) {
        return error{"the object's Name is not a SHA-256 Name (0x000B || 32 octets)"};
    }
    const unsigned char* p = ek_spki_der.data();
    pkey_ptr ek(d2i_PUBKEY(nullptr, &p, static_cast<long>(ek_spki_der.size())), EVP_PKEY_free);
    if (ek == nullptr || p != ek_spki_der.data() + ek_spki_der.size()) {
        return error{"the endorsement key is not a DER SubjectPublicKeyInfo"};
    }
    result<sealed_seed> sealed = error{"the endorsement key is neither RSA nor EC"};
    if (EVP_PKEY_get_base_id(ek.get()) == EVP_PKEY_RSA) {
        sealed = seal_rsa(ek.get());
    } else if (EVP_PKEY_get_base_id(ek.get()) == EVP_PKEY_EC) {
        sealed = seal_ecc(ek.get());
    }
    if (!sealed) {
        return sealed.err();
    }
    PTPSEC_TRY(sym_key, kdfa(sealed->seed, "STORAGE", object_name, sym_key_len * 8));
    PTPSEC_TRY(hmac_key, kdfa(sealed->seed, "INTEGRITY", {}, digest_len * 8));

    // encIdentity: the credential as a TPM2B_DIGEST, AES-128-CFB with IV 0.
    std::vector<uint8_t> plain;
    put_u16(plain, credential.size());
    put(plain, credential);
    std::vector<uint8_t> enc_identity(plain.size());
    const std::array<uint8_t, 16> iv{};
    cipher_ctx_ptr c(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    int out_len = 0;
    int final_len = 0;
    if (c == nullptr || EVP_EncryptInit_ex(c.get(), EVP_aes_128_cfb128(), nullptr, sym_key->data(), iv.data()) != 1 ||
        EVP_EncryptUpdate(c.get(), enc_identity.data(), &out_len, plain.data(), static_cast<int>(plain.size())) != 1 ||
        EVP_EncryptFinal_ex(c.get(), enc_identity.data() + out_len, &final_len) != 1 ||
        static_cast<size_t>(out_len + final_len) != plain.size()) {
        return error{"AES-128-CFB failed"};
    }
    std::vector<uint8_t> mac_in = enc_identity;
    put(mac_in, object_name);
    PTPSEC_TRY(outer, hmac_sha256(*hmac_key, mac_in));

    tpm_credential_blob out;
    put_u16(out.id_object, outer->size());
    put(out.id_object, *outer);
    put(out.id_object, enc_identity);
    out.encrypted_secret = std::move(sealed->encrypted);
    return out;
}

} // namespace ptpsec::hsm
