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
#include <string>
#include <string_view>

namespace ptpsec::hsm {

namespace {

using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using pkey_ctx_ptr = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;
using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;
using bn_ptr = std::unique_ptr<BIGNUM, decltype(&BN_free)>;
using md_ptr = std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)>;

/// "IDENTITY" with its terminating NUL: the label of the seed (Part 1 §24.4).
constexpr std::string_view identity_label{"IDENTITY\0", 9};

/// The SHA-256 Name the signing key has: nameAlg 0x000B || 32 octets.
constexpr size_t object_name_len = 2 + 32;

constexpr endorsement_key_profile rsa_2048{"RSA 2048", "SHA256", 32, 16};
constexpr endorsement_key_profile rsa_3072{"RSA 3072", "SHA384", 48, 32};
constexpr endorsement_key_profile rsa_4096{"RSA 4096", "SHA384", 48, 32};
constexpr endorsement_key_profile ecc_p256{"ECC NIST P-256", "SHA256", 32, 16};
constexpr endorsement_key_profile ecc_p384{"ECC NIST P-384", "SHA384", 48, 32};
constexpr endorsement_key_profile ecc_p521{"ECC NIST P-521", "SHA512", 64, 32};

/// An EK read from its SubjectPublicKeyInfo, with its profile and, for an
/// ECC key, the octets of a coordinate (the field size).
struct endorsement_key {
    pkey_ptr key{nullptr, EVP_PKEY_free};
    endorsement_key_profile profile;
    std::string group; ///< ECC: the curve's OpenSSL name
    size_t field_len = 0;
};

result<endorsement_key> read_endorsement_key(std::span<const uint8_t> spki) {
    const unsigned char* p = spki.data();
    endorsement_key ek;
    ek.key.reset(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
    if (ek.key == nullptr || p != spki.data() + spki.size()) {
        return error{"the endorsement key is not a DER SubjectPublicKeyInfo"};
    }
    if (EVP_PKEY_get_base_id(ek.key.get()) == EVP_PKEY_RSA) {
        switch (EVP_PKEY_get_bits(ek.key.get())) {
        case 2048:
            ek.profile = rsa_2048;
            return ek;
        case 3072:
            ek.profile = rsa_3072;
            return ek;
        case 4096:
            ek.profile = rsa_4096;
            return ek;
        default:
            return error{fmt::format("the endorsement key is an RSA {} key; the TCG EK templates used here have RSA "
                                     "2048, 3072 and 4096",
                                     EVP_PKEY_get_bits(ek.key.get()))};
        }
    }
    if (EVP_PKEY_get_base_id(ek.key.get()) == EVP_PKEY_EC) {
        std::array<char, 64> group{};
        size_t group_len = 0;
        if (EVP_PKEY_get_utf8_string_param(ek.key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group.data(), group.size(),
                                           &group_len) != 1) {
            return error{"the endorsement key is an EC key without a named curve"};
        }
        const std::string_view name(group.data(), group_len);
        if (name == "prime256v1") {
            ek.profile = ecc_p256;
        } else if (name == "secp384r1") {
            ek.profile = ecc_p384;
        } else if (name == "secp521r1") {
            ek.profile = ecc_p521;
        } else {
            return error{fmt::format("the endorsement key is on curve {}; the TCG EK templates used here have NIST "
                                     "P-256, P-384 and P-521",
                                     name)};
        }
        ek.group = std::string(name);
        ek.field_len = (static_cast<size_t>(EVP_PKEY_get_bits(ek.key.get())) + 7) / 8;
        return ek;
    }
    return error{"the endorsement key is neither RSA nor EC"};
}

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

/// HMAC with the EK's nameAlg.
result<std::vector<uint8_t>> hmac(const endorsement_key_profile& h, std::span<const uint8_t> key,
                                  std::span<const uint8_t> data) {
    std::vector<uint8_t> out(h.digest_len);
    size_t len = 0;
    const std::string digest(h.digest);
    if (EVP_Q_mac(nullptr, "HMAC", nullptr, digest.c_str(), nullptr, key.data(), key.size(), data.data(), data.size(),
                  out.data(), out.size(), &len) == nullptr ||
        len != out.size()) {
        return error{fmt::format("HMAC-{} failed", h.digest)};
    }
    return out;
}

/// KDFa (Part 1 §11.4.10.2) with the EK's nameAlg: the first `bits` of
/// HMAC(key, [i]32 || label || 0x00 || contextU || contextV || [bits]32)
/// for i = 1, 2, ... (contextV is empty here).
result<std::vector<uint8_t>> kdfa(const endorsement_key_profile& h, std::span<const uint8_t> key,
                                  std::string_view label, std::span<const uint8_t> context_u, uint32_t bits) {
    std::vector<uint8_t> out;
    for (uint32_t i = 1; out.size() * 8 < bits; ++i) {
        std::vector<uint8_t> in;
        put_u32(in, i);
        put(in, label);
        in.push_back(0);
        put(in, context_u);
        put_u32(in, bits);
        PTPSEC_TRY(block, hmac(h, key, in));
        put(out, *block);
    }
    out.resize(bits / 8);
    return out;
}

/// The x (or y) coordinate of an EC key, `len` octets (the field size).
result<std::vector<uint8_t>> coordinate(EVP_PKEY* key, const char* which, size_t len) {
    BIGNUM* raw = nullptr;
    if (EVP_PKEY_get_bn_param(key, which, &raw) != 1) {
        return error{"reading an EC point coordinate failed"};
    }
    bn_ptr bn(raw, BN_free);
    std::vector<uint8_t> out(len);
    if (BN_bn2binpad(bn.get(), out.data(), static_cast<int>(out.size())) != static_cast<int>(out.size())) {
        return error{"an EC point coordinate does not fit the curve's field size"};
    }
    return out;
}

struct sealed_seed {
    std::vector<uint8_t> seed;
    std::vector<uint8_t> encrypted;
};

/// RSA EK: a random seed under RSA-OAEP(nameAlg, label "IDENTITY\0").
result<sealed_seed> seal_rsa(const endorsement_key& ek) {
    sealed_seed s;
    s.seed.resize(ek.profile.digest_len);
    if (RAND_bytes(s.seed.data(), static_cast<int>(s.seed.size())) != 1) {
        return error{"the random generator failed"};
    }
    const std::string digest(ek.profile.digest);
    md_ptr md(EVP_MD_fetch(nullptr, digest.c_str(), nullptr), EVP_MD_free);
    pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, ek.key.get(), nullptr), EVP_PKEY_CTX_free);
    // OpenSSL takes ownership of the label.
    auto* label = static_cast<unsigned char*>(OPENSSL_memdup(identity_label.data(), identity_label.size()));
    if (md == nullptr || ctx == nullptr || label == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), md.get()) != 1 ||
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

/// ECC EK: one-pass ECDH with an ephemeral key on the EK's curve; the seed
/// is KDFe(nameAlg, Z, "IDENTITY\0", ephemeral.x, ek.x, |H| * 8) and the
/// encrypted secret is the ephemeral point as a TPMS_ECC_POINT.
result<sealed_seed> seal_ecc(const endorsement_key& ek) {
    pkey_ptr eph(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", ek.group.c_str()), EVP_PKEY_free);
    if (eph == nullptr) {
        return error{fmt::format("making an ephemeral {} key failed", ek.profile.kind)};
    }
    pkey_ctx_ptr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, eph.get(), nullptr), EVP_PKEY_CTX_free);
    std::vector<uint8_t> z(ek.field_len);
    size_t z_len = z.size();
    if (ctx == nullptr || EVP_PKEY_derive_init(ctx.get()) != 1 ||
        EVP_PKEY_derive_set_peer(ctx.get(), ek.key.get()) != 1 || EVP_PKEY_derive(ctx.get(), z.data(), &z_len) != 1 ||
        z_len != z.size()) {
        return error{fmt::format("ECDH with the {} endorsement key failed", ek.profile.kind)};
    }
    auto eph_x = coordinate(eph.get(), OSSL_PKEY_PARAM_EC_PUB_X, ek.field_len);
    auto eph_y = coordinate(eph.get(), OSSL_PKEY_PARAM_EC_PUB_Y, ek.field_len);
    auto ek_x = coordinate(ek.key.get(), OSSL_PKEY_PARAM_EC_PUB_X, ek.field_len);
    if (!eph_x || !eph_y || !ek_x) {
        return error{"reading the ECDH points failed"};
    }
    // KDFe (Part 1 §11.4.10.3): Hash([1]32 || Z || Use || PartyUInfo || PartyVInfo),
    // one round: the seed is one digest long.
    std::vector<uint8_t> in;
    put_u32(in, 1);
    put(in, z);
    put(in, identity_label);
    put(in, *eph_x);
    put(in, *ek_x);
    const std::string digest(ek.profile.digest);
    sealed_seed s;
    s.seed.resize(ek.profile.digest_len);
    size_t len = 0;
    if (EVP_Q_digest(nullptr, digest.c_str(), nullptr, in.data(), in.size(), s.seed.data(), &len) != 1 ||
        len != s.seed.size()) {
        return error{fmt::format("{} failed", ek.profile.digest)};
    }
    put_u16(s.encrypted, eph_x->size());
    put(s.encrypted, *eph_x);
    put_u16(s.encrypted, eph_y->size());
    put(s.encrypted, *eph_y);
    return s;
}

} // namespace

result<endorsement_key_profile> endorsement_key_profile_of(std::span<const uint8_t> ek_spki_der) {
    PTPSEC_TRY(ek, read_endorsement_key(ek_spki_der));
    return ek->profile;
}

result<tpm_credential_blob> make_credential(std::span<const uint8_t> ek_spki_der, std::span<const uint8_t> object_name,
                                            std::span<const uint8_t> credential) {
    if (credential.empty() || credential.size() > max_credential_len) {
        return error{fmt::format("a credential is 1 to {} octets, not {}", max_credential_len, credential.size())};
    }
    if (object_name.size() != object_name_len || object_name[0] != 0x00 || object_name[1] != 0x0B) {
        return error{"the object's Name is not a SHA-256 Name (0x000B || 32 octets)"};
    }
    PTPSEC_TRY(ek, read_endorsement_key(ek_spki_der));
    const endorsement_key_profile& h = ek->profile;
    auto sealed = EVP_PKEY_get_base_id(ek->key.get()) == EVP_PKEY_RSA ? seal_rsa(*ek) : seal_ecc(*ek);
    if (!sealed) {
        return sealed.err();
    }
    PTPSEC_TRY(sym_key, kdfa(h, sealed->seed, "STORAGE", object_name, static_cast<uint32_t>(h.sym_key_len * 8)));
    PTPSEC_TRY(hmac_key, kdfa(h, sealed->seed, "INTEGRITY", {}, static_cast<uint32_t>(h.digest_len * 8)));

    // encIdentity: the credential as a TPM2B_DIGEST, AES-CFB with IV 0.
    std::vector<uint8_t> plain;
    put_u16(plain, credential.size());
    put(plain, credential);
    std::vector<uint8_t> enc_identity(plain.size());
    const std::array<uint8_t, 16> iv{};
    const EVP_CIPHER* aes = h.sym_key_len == 16 ? EVP_aes_128_cfb128() : EVP_aes_256_cfb128();
    cipher_ctx_ptr c(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
    int out_len = 0;
    int final_len = 0;
    if (c == nullptr || EVP_EncryptInit_ex(c.get(), aes, nullptr, sym_key->data(), iv.data()) != 1 ||
        EVP_EncryptUpdate(c.get(), enc_identity.data(), &out_len, plain.data(), static_cast<int>(plain.size())) != 1 ||
        EVP_EncryptFinal_ex(c.get(), enc_identity.data() + out_len, &final_len) != 1 ||
        static_cast<size_t>(out_len + final_len) != plain.size()) {
        return error{fmt::format("AES-{}-CFB failed", h.sym_key_len * 8)};
    }
    std::vector<uint8_t> mac_in = enc_identity;
    put(mac_in, object_name);
    PTPSEC_TRY(outer, hmac(h, *hmac_key, mac_in));

    tpm_credential_blob out;
    put_u16(out.id_object, outer->size());
    put(out.id_object, *outer);
    put(out.id_object, enc_identity);
    out.encrypted_secret = std::move(sealed->encrypted);
    return out;
}

} // namespace ptpsec::hsm
