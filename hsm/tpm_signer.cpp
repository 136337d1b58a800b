#include <hsm/tpm_signer.h>

#include <drivers/base/hex.h>
#include <drivers/base/thread_name.h>

#include <hsm/signature.h>

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <optional>
#include <set>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

namespace ptpsec::hsm {

namespace {

// ---------------------------------------------------------------------------
// Errors

/// An error inside the worker: its message, and whether the connection to
/// the TPM can no longer be trusted (a TCTI or ESYS-level failure rather
/// than a TPM response code), so that it is torn down and made again.
struct tpm_failure {
    std::string message;
    bool connection_lost = false;
};

template <typename T>
using tpm_result = result<T, tpm_failure>;

/// An EK's DER SubjectPublicKeyInfo and the template it was made from.
struct endorsement_key_of_template {
    std::vector<uint8_t> der;
    ek_template from;
};

std::string rc_text(TSS2_RC rc) {
    return fmt::format("{} (0x{:08x})", Tss2_RC_Decode(rc), rc);
}

/// A response code from the TPM itself, as opposed to one made by the
/// TCTI, SAPI or ESAPI layers (TSS 2.0 TCTI spec §4.1, layer in bits 16-23).
bool from_tpm(TSS2_RC rc) {
    return (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER;
}

/// Whether the TPM answered `code`. Format-one codes carry the number of
/// the handle, session or parameter they concern in bits 6-11 (Part 2
/// §6.6.3), which are masked off here.
bool tpm_rc_is(TSS2_RC rc, TSS2_RC code) {
    if (!from_tpm(rc)) {
        return false;
    }
    if ((rc & TPM2_RC_FMT1) != 0) {
        return (rc & (TPM2_RC_FMT1 | 0x3fU)) == code;
    }
    return (rc & 0xffffU) == code;
}

// ---------------------------------------------------------------------------
// Small helpers

std::string hex(std::span<const uint8_t> b) {
    return to_hex(b);
}

std::array<uint8_t, 32> sha256(std::span<const uint8_t> data) {
    std::array<uint8_t, 32> out{};
    unsigned int len = 0;
    (void)EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
    return out;
}

/// A TPM2B's bytes left-padded to `width` octets (ECC coordinates and
/// signature halves may come back shorter than the field size).
std::optional<std::vector<uint8_t>> left_pad(std::span<const uint8_t> value, size_t width) {
    if (value.size() > width) {
        return std::nullopt;
    }
    std::vector<uint8_t> out(width - value.size(), 0);
    out.insert(out.end(), value.begin(), value.end());
    return out;
}

struct pkey_free {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct pkey_ctx_free {
    void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};
struct bn_free {
    void operator()(BIGNUM* p) const noexcept { BN_free(p); }
};
struct param_bld_free {
    void operator()(OSSL_PARAM_BLD* p) const noexcept { OSSL_PARAM_BLD_free(p); }
};
struct param_free {
    void operator()(OSSL_PARAM* p) const noexcept { OSSL_PARAM_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

result<std::vector<uint8_t>> spki_der(EVP_PKEY* key) {
    const int len = i2d_PUBKEY(key, nullptr);
    if (len <= 0) {
        return error{"the public key could not be encoded as a SubjectPublicKeyInfo"};
    }
    std::vector<uint8_t> der(static_cast<size_t>(len));
    unsigned char* out = der.data();
    (void)i2d_PUBKEY(key, &out);
    return der;
}

result<std::vector<uint8_t>> spki_from_params(const char* type, const OSSL_PARAM* params) {
    std::unique_ptr<EVP_PKEY_CTX, pkey_ctx_free> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* raw = nullptr;
    if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, const_cast<OSSL_PARAM*>(params)) != 1) {
        return error{fmt::format("the TPM's {} public key is not a valid key", type)};
    }
    pkey_ptr key(raw);
    return spki_der(key.get());
}

/// DER SubjectPublicKeyInfo of the point (x, y) on a NIST curve (SEC 1
/// §2.3.3, uncompressed). OpenSSL refuses a point that is not on the curve.
result<std::vector<uint8_t>> ecc_spki(const TPMS_ECC_POINT& point, TPMI_ECC_CURVE curve) {
    const char* group = nullptr;
    size_t width = 0;
    switch (curve) {
    case TPM2_ECC_NIST_P256:
        group = "prime256v1";
        width = 32;
        break;
    case TPM2_ECC_NIST_P384:
        group = "secp384r1";
        width = 48;
        break;
    case TPM2_ECC_NIST_P521:
        group = "secp521r1";
        width = 66;
        break;
    default:
        return error{fmt::format("the TPM's ECC key is on curve 0x{:04x}, not a NIST curve", curve)};
    }
    const auto x = left_pad({point.x.buffer, point.x.size}, width);
    const auto y = left_pad({point.y.buffer, point.y.size}, width);
    if (!x || !y) {
        return error{fmt::format("the TPM's ECC point has a coordinate longer than {} octets", width)};
    }
    std::vector<unsigned char> encoded;
    encoded.reserve(1 + 2 * width);
    encoded.push_back(0x04);
    encoded.insert(encoded.end(), x->begin(), x->end());
    encoded.insert(encoded.end(), y->begin(), y->end());
    std::string group_name(group);
    const std::array<OSSL_PARAM, 3> params{
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group_name.data(), 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, encoded.data(), encoded.size()),
        OSSL_PARAM_construct_end(),
    };
    return spki_from_params("EC", params.data());
}

/// DER SubjectPublicKeyInfo of an RSA key from its TPM public area
/// (exponent 0 means 65537, Part 2 §12.2.3.5).
result<std::vector<uint8_t>> rsa_spki(const TPMT_PUBLIC& pub) {
    std::unique_ptr<BIGNUM, bn_free> n(BN_bin2bn(pub.unique.rsa.buffer, pub.unique.rsa.size, nullptr));
    std::unique_ptr<BIGNUM, bn_free> e(BN_new());
    const uint32_t exponent = pub.parameters.rsaDetail.exponent == 0 ? 65537U : pub.parameters.rsaDetail.exponent;
    std::unique_ptr<OSSL_PARAM_BLD, param_bld_free> bld(OSSL_PARAM_BLD_new());
    if (!n || !e || !bld || BN_set_word(e.get(), exponent) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
        return error{"out of memory"};
    }
    std::unique_ptr<OSSL_PARAM, param_free> params(OSSL_PARAM_BLD_to_param(bld.get()));
    if (!params) {
        return error{"out of memory"};
    }
    return spki_from_params("RSA", params.get());
}

/// The P-256 point of a DER SubjectPublicKeyInfo, each coordinate 32 octets.
result<std::pair<std::vector<uint8_t>, std::vector<uint8_t>>> p256_point(std::span<const uint8_t> spki) {
    const unsigned char* p = spki.data();
    pkey_ptr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
    if (!key || p != spki.data() + spki.size()) {
        return error{"the expected key is not a DER SubjectPublicKeyInfo"};
    }
    if (!is_p256_key(key.get())) {
        return error{"the expected key is not an ECC P-256 key"};
    }
    BIGNUM* x_raw = nullptr;
    BIGNUM* y_raw = nullptr;
    (void)EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_X, &x_raw);
    (void)EVP_PKEY_get_bn_param(key.get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y_raw);
    std::unique_ptr<BIGNUM, bn_free> x(x_raw);
    std::unique_ptr<BIGNUM, bn_free> y(y_raw);
    std::vector<uint8_t> xs(32);
    std::vector<uint8_t> ys(32);
    if (!x || !y || BN_bn2binpad(x.get(), xs.data(), 32) != 32 || BN_bn2binpad(y.get(), ys.data(), 32) != 32) {
        return error{"the expected key's point could not be read"};
    }
    return std::pair{std::move(xs), std::move(ys)};
}

bool same_bytes(std::span<const uint8_t> a, std::span<const uint8_t> b) {
    return a.size() == b.size() && (a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0);
}

// ---------------------------------------------------------------------------
// Templates

/// The attributes that make the signing key non-exportable and ours
/// (Part 2 §8.3): fixedTPM and fixedParent (it can never be duplicated out
/// of this TPM), sensitiveDataOrigin (the TPM generated the private key, so
/// nobody else ever had it), userWithAuth (TPM2_Sign with a password session),
/// sign without decrypt, restricted, noDA (its authValue is empty: there is
/// nothing to guess, and failed attempts against it must not push the TPM
/// into lockout).
///
/// Restricted, because the same key quotes the platform state (Part 3
/// §18.4). The TPM signs outside data with a restricted key only against a
/// ticket of its own hash of that data (TPM2_Hash, Part 3 §15.4), and gives
/// no ticket for data that starts with TPM_GENERATED_VALUE (Part 1 §36.4).
/// An unrestricted key signs any digest it is given: whoever can reach the
/// TPM (a host running a changed kernel, say) could have it sign a
/// TPMS_ATTEST written to show the enrolled PCR values, and the quote would
/// prove nothing.
constexpr TPMA_OBJECT signing_key_attributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                               TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                               TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;

TPM2B_PUBLIC signing_key_template(uint32_t key_handle) {
    TPM2B_PUBLIC t{};
    t.publicArea.type = TPM2_ALG_ECC;
    t.publicArea.nameAlg = TPM2_ALG_SHA256;
    t.publicArea.objectAttributes = signing_key_attributes;
    t.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    t.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    t.publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    t.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    t.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    // The unique field of a primary's template is an input to its
    // derivation from the seed (Part 1, "Primary Keys"): a label of our own
    // keeps this key apart from a primary someone else derives from an
    // otherwise equal template, and the persistent handle (big-endian, in
    // y) gives the signers at two handles of one TPM two keys, while the
    // key at one handle is derived again, the same, if it was evicted.
    static constexpr std::string_view label = "ptpsec attestation signing key";
    std::memcpy(t.publicArea.unique.ecc.x.buffer, label.data(), label.size());
    t.publicArea.unique.ecc.x.size = static_cast<UINT16>(label.size());
    for (size_t i = 0; i < sizeof key_handle; ++i) {
        t.publicArea.unique.ecc.y.buffer[i] = static_cast<BYTE>(key_handle >> (8 * (sizeof key_handle - 1 - i)));
    }
    t.publicArea.unique.ecc.y.size = sizeof key_handle;
    return t;
}

/// The authPolicy digests of the TCG EK templates (EK Credential Profile
/// 2.x, B.3 and B.4): PolicyA = PolicySecret(TPM_RH_ENDORSEMENT) for the
/// low range; PolicyB = PolicyOR(PolicyA, PolicyC) in the template's
/// nameAlg for the high range.
constexpr std::array<uint8_t, 32> policy_a_sha256{0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC,
                                                  0x8D, 0x46, 0xA5, 0xD7, 0x24, 0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52,
                                                  0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA};
constexpr std::array<uint8_t, 32> policy_b_sha256{0xCA, 0x3D, 0x0A, 0x99, 0xA2, 0xB9, 0x39, 0x06, 0xF7, 0xA3, 0x34,
                                                  0x24, 0x14, 0xEF, 0xCF, 0xB3, 0xA3, 0x85, 0xD4, 0x4C, 0xD1, 0xFD,
                                                  0x45, 0x90, 0x89, 0xD1, 0x9B, 0x50, 0x71, 0xC0, 0xB7, 0xA0};
constexpr std::array<uint8_t, 48> policy_b_sha384{
    0xB2, 0x6E, 0x7D, 0x28, 0xD1, 0x1A, 0x50, 0xBC, 0x53, 0xD8, 0x82, 0xBC, 0xF5, 0xFD, 0x3A, 0x1A,
    0x07, 0x41, 0x48, 0xBB, 0x35, 0xD3, 0xB4, 0xE4, 0xCB, 0x1C, 0x0A, 0xD9, 0xBD, 0xE4, 0x19, 0xCA,
    0xCB, 0x47, 0xBA, 0x09, 0x69, 0x96, 0x46, 0x15, 0x0F, 0x9F, 0xC0, 0x00, 0xF3, 0xF8, 0x0E, 0x12};
constexpr std::array<uint8_t, 64> policy_b_sha512{
    0xB8, 0x22, 0x1C, 0xA6, 0x9E, 0x85, 0x50, 0xA4, 0x91, 0x4D, 0xE3, 0xFA, 0xA6, 0xA1, 0x8C, 0x07,
    0x2C, 0xC0, 0x12, 0x08, 0x07, 0x3A, 0x92, 0x8D, 0x5D, 0x66, 0xD5, 0x9E, 0xF7, 0x9E, 0x49, 0xA4,
    0x29, 0xC4, 0x1A, 0x6B, 0x26, 0x95, 0x71, 0xD5, 0x7E, 0xDB, 0x25, 0xFB, 0xDB, 0x18, 0x38, 0x42,
    0x56, 0x08, 0xB4, 0x13, 0xCD, 0x61, 0x6A, 0x5F, 0x6D, 0xB5, 0xB6, 0x07, 0x1A, 0xF9, 0x9B, 0xEA};

/// One TCG EK template: what TPM2_CreatePrimary is given, and where the
/// manufacturer keeps the certificate of the key it makes.
struct ek_template_spec {
    ek_template id;
    std::string_view name;
    std::string_view kind;
    uint32_t certificate_index;
    TPMI_ALG_PUBLIC type;
    TPMI_ALG_HASH name_alg;
    TPMI_ECC_CURVE curve; ///< ECC only
    uint16_t rsa_bits;    ///< RSA only
    uint16_t aes_bits;    ///< the storage key's AES-CFB key size
    std::span<const uint8_t> policy;
    /// High range: userWithAuth set (the EK's own empty authValue opens it)
    /// and an empty unique field; low range: neither, and a unique field of
    /// zeros as long as the key.
    bool high_range;
};

constexpr std::array<ek_template_spec, 8> ek_templates{{
    {ek_template::l1, "L-1", "RSA 2048", 0x01C00002, TPM2_ALG_RSA, TPM2_ALG_SHA256, 0, 2048, 128, policy_a_sha256,
     false},
    {ek_template::l2, "L-2", "ECC NIST P-256", 0x01C0000A, TPM2_ALG_ECC, TPM2_ALG_SHA256, TPM2_ECC_NIST_P256, 0, 128,
     policy_a_sha256, false},
    {ek_template::h1, "H-1", "RSA 2048", 0x01C00012, TPM2_ALG_RSA, TPM2_ALG_SHA256, 0, 2048, 128, policy_b_sha256,
     true},
    {ek_template::h2, "H-2", "ECC NIST P-256", 0x01C00014, TPM2_ALG_ECC, TPM2_ALG_SHA256, TPM2_ECC_NIST_P256, 0, 128,
     policy_b_sha256, true},
    {ek_template::h3, "H-3", "ECC NIST P-384", 0x01C00016, TPM2_ALG_ECC, TPM2_ALG_SHA384, TPM2_ECC_NIST_P384, 0, 256,
     policy_b_sha384, true},
    {ek_template::h4, "H-4", "ECC NIST P-521", 0x01C00018, TPM2_ALG_ECC, TPM2_ALG_SHA512, TPM2_ECC_NIST_P521, 0, 256,
     policy_b_sha512, true},
    {ek_template::h6, "H-6", "RSA 3072", 0x01C0001C, TPM2_ALG_RSA, TPM2_ALG_SHA384, 0, 3072, 256, policy_b_sha384,
     true},
    {ek_template::h7, "H-7", "RSA 4096", 0x01C0001E, TPM2_ALG_RSA, TPM2_ALG_SHA384, 0, 4096, 256, policy_b_sha384,
     true},
}};

/// The order in which ek_template::automatic looks for a certificate.
constexpr std::array<ek_template, 8> automatic_order{ek_template::l2, ek_template::l1, ek_template::h2,
                                                     ek_template::h3, ek_template::h4, ek_template::h1,
                                                     ek_template::h6, ek_template::h7};

const ek_template_spec& spec_of(ek_template t) {
    for (const auto& spec : ek_templates) {
        if (spec.id == t) {
            return spec;
        }
    }
    return ek_templates[1]; // automatic: L-2 first
}

constexpr TPMA_OBJECT ek_attributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                      TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;

/// The TPM2B_PUBLIC of a template (EK Credential Profile B.3.3-B.3.4,
/// B.4.4).
TPM2B_PUBLIC public_template(const ek_template_spec& spec) {
    TPM2B_PUBLIC t{};
    auto& a = t.publicArea;
    a.type = spec.type;
    a.nameAlg = spec.name_alg;
    a.objectAttributes = ek_attributes | (spec.high_range ? TPMA_OBJECT_USERWITHAUTH : 0);
    a.authPolicy.size = static_cast<UINT16>(spec.policy.size());
    std::copy(spec.policy.begin(), spec.policy.end(), a.authPolicy.buffer);
    TPMT_SYM_DEF_OBJECT& sym =
        spec.type == TPM2_ALG_ECC ? a.parameters.eccDetail.symmetric : a.parameters.rsaDetail.symmetric;
    sym.algorithm = TPM2_ALG_AES;
    sym.keyBits.aes = spec.aes_bits;
    sym.mode.aes = TPM2_ALG_CFB;
    if (spec.type == TPM2_ALG_ECC) {
        a.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
        a.parameters.eccDetail.curveID = spec.curve;
        a.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        if (!spec.high_range) {
            a.unique.ecc.x.size = 32;
            a.unique.ecc.y.size = 32;
        }
    } else {
        a.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
        a.parameters.rsaDetail.keyBits = spec.rsa_bits;
        a.parameters.rsaDetail.exponent = 0;
        if (!spec.high_range) {
            a.unique.rsa.size = static_cast<UINT16>(spec.rsa_bits / 8);
        }
    }
    return t;
}

/// The monotonic counter: TPM_NT_COUNTER (Part 2 §13.4), written and read
/// with the index's own (empty) authValue, so that counting needs no owner
/// authorization. Anyone with access to the TPM could advance it, which
/// only leaves a gap: the value never goes back, and deleting the index
/// takes the owner's authorization.
constexpr TPMA_NV counter_attributes = TPMA_NV_AUTHWRITE | TPMA_NV_AUTHREAD | TPMA_NV_NO_DA |
                                       (static_cast<TPMA_NV>(TPM2_NT_COUNTER) << TPMA_NV_TPM2_NT_SHIFT);

/// Checks that `p` is a non-exportable ECDSA P-256 signing key made in a
/// TPM; the precise reason when not.
status check_signing_public(const TPMT_PUBLIC& p) {
    if (p.type != TPM2_ALG_ECC) {
        return error{fmt::format("the key is not an ECC key (type 0x{:04x})", p.type)};
    }
    if (p.nameAlg != TPM2_ALG_SHA256) {
        return error{fmt::format("the key's nameAlg is 0x{:04x}, not SHA-256", p.nameAlg)};
    }
    if (p.parameters.eccDetail.curveID != TPM2_ECC_NIST_P256) {
        return error{
            fmt::format("the key is not on curve NIST P-256 (curve 0x{:04x})", p.parameters.eccDetail.curveID)};
    }
    const TPMA_OBJECT a = p.objectAttributes;
    if ((a & TPMA_OBJECT_FIXEDTPM) == 0) {
        return error{"fixedTPM is clear: the key could be duplicated out of the TPM"};
    }
    if ((a & TPMA_OBJECT_FIXEDPARENT) == 0) {
        return error{"fixedParent is clear: the key could be duplicated to another parent"};
    }
    if ((a & TPMA_OBJECT_SENSITIVEDATAORIGIN) == 0) {
        return error{"sensitiveDataOrigin is clear: the private key was not generated by the TPM"};
    }
    if ((a & TPMA_OBJECT_SIGN_ENCRYPT) == 0) {
        return error{"sign is clear: the key cannot sign"};
    }
    if ((a & TPMA_OBJECT_DECRYPT) != 0) {
        return error{"decrypt is set: the key is not a signing-only key"};
    }
    if ((a & TPMA_OBJECT_RESTRICTED) == 0) {
        return error{"restricted is clear: the TPM signs any digest with the key, so a quote by it proves nothing "
                     "(whoever reaches the TPM can have it sign a TPMS_ATTEST of their own)"};
    }
    const auto& scheme = p.parameters.eccDetail.scheme;
    if (scheme.scheme != TPM2_ALG_ECDSA || scheme.details.ecdsa.hashAlg != TPM2_ALG_SHA256) {
        return error{fmt::format("the key's scheme is 0x{:04x}/0x{:04x}, not ECDSA/SHA-256", scheme.scheme,
                                 scheme.details.ecdsa.hashAlg)};
    }
    return ok_status();
}

// ---------------------------------------------------------------------------
// RAII for ESYS and TCTI resources

struct tcti_finalize {
    void operator()(TSS2_TCTI_CONTEXT* t) const noexcept { Tss2_TctiLdr_Finalize(&t); }
};
struct esys_finalize {
    void operator()(ESYS_CONTEXT* c) const noexcept { Esys_Finalize(&c); }
};
struct esys_free {
    void operator()(void* p) const noexcept { Esys_Free(p); }
};
template <typename T>
using esys_ptr = std::unique_ptr<T, esys_free>;

/// Flushes a transient object when it goes out of scope (Part 3 §28.4).
class transient_object {
public:
    explicit transient_object(ESYS_CONTEXT* esys) : _esys(esys) {}
    ~transient_object() {
        if (_handle != ESYS_TR_NONE) {
            (void)Esys_FlushContext(_esys, _handle);
        }
    }
    transient_object(const transient_object&) = delete;
    transient_object& operator=(const transient_object&) = delete;
    transient_object(transient_object&&) = delete;
    transient_object& operator=(transient_object&&) = delete;

    ESYS_TR* out() noexcept { return &_handle; }
    ESYS_TR get() const noexcept { return _handle; }

private:
    ESYS_CONTEXT* _esys;
    ESYS_TR _handle = ESYS_TR_NONE;
};

TPM2B_AUTH make_auth(const std::string& value) {
    TPM2B_AUTH auth{};
    const size_t n = std::min(value.size(), sizeof(auth.buffer));
    std::memcpy(auth.buffer, value.data(), n);
    auth.size = static_cast<UINT16>(n);
    return auth;
}

/// A SHA-256 bank selection of `pcrs` (Part 2 §10.6.2).
TPML_PCR_SELECTION pcr_selection(std::span<const unsigned> pcrs) {
    TPML_PCR_SELECTION sel{};
    sel.count = 1;
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    for (const unsigned i : pcrs) {
        sel.pcrSelections[0].pcrSelect[i / 8] =
            static_cast<BYTE>(sel.pcrSelections[0].pcrSelect[i / 8] | (1U << (i % 8)));
    }
    return sel;
}

} // namespace

// ---------------------------------------------------------------------------
// The connection to the TPM, used only on the worker thread.

class tpm_session {
public:
    explicit tpm_session(tpm_settings settings) : _settings(std::move(settings)) {}

    /// Connects and reports the signing key.
    tpm_result<tpm_key_public> open() {
        return with_tpm<tpm_key_public>([this]() -> tpm_result<tpm_key_public> { return _key_public; });
    }

    tpm_result<std::vector<uint8_t>> sign(std::span<const uint8_t> message) {
        return with_tpm<std::vector<uint8_t>>([&]() { return sign_now(message); });
    }

    tpm_result<uint64_t> next_counter() {
        return with_tpm<uint64_t>([&]() -> tpm_result<uint64_t> {
            // Part 3 §31.8. A response lost after the TPM incremented makes
            // the retry increment again: a gap, never a repeat.
            const TSS2_RC rc =
                Esys_NV_Increment(_esys.get(), _counter, _counter, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
            if (rc != TSS2_RC_SUCCESS) {
                return failure("TPM2_NV_Increment", rc);
            }
            _counter_written = true;
            return read_counter_now();
        });
    }

    tpm_result<uint64_t> read_counter() {
        return with_tpm<uint64_t>([&]() { return read_counter_now(); });
    }

    tpm_result<endorsement_key_of_template> endorsement_key() {
        return with_tpm<endorsement_key_of_template>([&]() -> tpm_result<endorsement_key_of_template> {
            transient_object ek(_esys.get());
            esys_ptr<TPM2B_PUBLIC> pub;
            auto made = create_ek(ek, pub);
            if (!made.ok()) {
                return made.err();
            }
            const auto& area = pub->publicArea;
            auto der = area.type == TPM2_ALG_ECC ? ecc_spki(area.unique.ecc, area.parameters.eccDetail.curveID)
                                                 : rsa_spki(area);
            if (!der) {
                return tpm_failure{der.message(), false};
            }
            return endorsement_key_of_template{std::move(*der), made.value()};
        });
    }

    tpm_result<tpm_quote> quote(const std::vector<uint8_t>& nonce, const std::vector<unsigned>& pcrs) {
        return with_tpm<tpm_quote>([&]() { return quote_now(nonce, pcrs); });
    }

    tpm_result<std::vector<uint8_t>> endorsement_certificate() {
        return with_tpm<std::vector<uint8_t>>([&]() -> tpm_result<std::vector<uint8_t>> {
            auto certified = certified_template();
            if (!certified) {
                return certified.err();
            }
            if (!*certified) {
                return std::vector<uint8_t>();
            }
            return read_nv(spec_of(**certified).certificate_index);
        });
    }

    tpm_result<std::vector<uint8_t>> activate_credential(const tpm_credential_blob& blob) {
        return with_tpm<std::vector<uint8_t>>([&]() -> tpm_result<std::vector<uint8_t>> {
            TPM2B_ID_OBJECT id{};
            TPM2B_ENCRYPTED_SECRET secret{};
            if (blob.id_object.size() > sizeof(id.credential) || blob.encrypted_secret.size() > sizeof(secret.secret)) {
                return tpm_failure{"the credential blob is larger than a TPM takes", false};
            }
            id.size = static_cast<UINT16>(blob.id_object.size());
            std::copy(blob.id_object.begin(), blob.id_object.end(), id.credential);
            secret.size = static_cast<UINT16>(blob.encrypted_secret.size());
            std::copy(blob.encrypted_secret.begin(), blob.encrypted_secret.end(), secret.secret);
            transient_object ek(_esys.get());
            esys_ptr<TPM2B_PUBLIC> pub;
            auto made = create_ek(ek, pub);
            if (!made.ok()) {
                return made.err();
            }
            // A high-range EK opens with its own empty authValue
            // (userWithAuth); a low-range one only through its authPolicy,
            // PolicySecret(TPM_RH_ENDORSEMENT), in a policy session (TCG EK
            // Credential Profile B.3.3).
            transient_object session(_esys.get());
            ESYS_TR ek_auth = ESYS_TR_PASSWORD;
            if (!spec_of(made.value()).high_range) {
                const TPMT_SYM_DEF no_symmetric{.algorithm = TPM2_ALG_NULL, .keyBits = {}, .mode = {}};
                TSS2_RC rc = Esys_StartAuthSession(_esys.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                                   ESYS_TR_NONE, nullptr, TPM2_SE_POLICY, &no_symmetric,
                                                   TPM2_ALG_SHA256, session.out());
                if (rc != TSS2_RC_SUCCESS) {
                    return failure("TPM2_StartAuthSession (policy session for the EK)", rc);
                }
                TPM2B_TIMEOUT* timeout_raw = nullptr;
                TPMT_TK_AUTH* ticket_raw = nullptr;
                rc = Esys_PolicySecret(_esys.get(), ESYS_TR_RH_ENDORSEMENT, session.get(), ESYS_TR_PASSWORD,
                                       ESYS_TR_NONE, ESYS_TR_NONE, nullptr, nullptr, nullptr, 0, &timeout_raw,
                                       &ticket_raw);
                esys_ptr<TPM2B_TIMEOUT> timeout(timeout_raw);
                esys_ptr<TPMT_TK_AUTH> ticket(ticket_raw);
                if (rc != TSS2_RC_SUCCESS) {
                    return failure("TPM2_PolicySecret (endorsement hierarchy)", rc);
                }
                ek_auth = session.get();
            }
            TPM2B_DIGEST* cert_raw = nullptr;
            const TSS2_RC rc = Esys_ActivateCredential(_esys.get(), _key, ek.get(), ESYS_TR_PASSWORD, ek_auth,
                                                       ESYS_TR_NONE, &id, &secret, &cert_raw);
            esys_ptr<TPM2B_DIGEST> cert(cert_raw);
            if (rc != TSS2_RC_SUCCESS) {
                return failure("TPM2_ActivateCredential", rc);
            }
            return std::vector<uint8_t>(cert->buffer, cert->buffer + cert->size);
        });
    }

    /// Drops the ESYS context and the TCTI (in that order: ESYS uses the
    /// TCTI until it is finalized). Nothing to flush: the key is persistent.
    void disconnect() noexcept {
        _key = ESYS_TR_NONE;
        _counter = ESYS_TR_NONE;
        _counter_written = false;
        _esys.reset();
        _tcti.reset();
    }

    const tpm_settings& settings() const noexcept { return _settings; }

private:
    /// Runs `op` on a connection, connecting first when there is none. When
    /// `op` loses a connection made by an earlier call (the TPM restarted
    /// since, say), connects once more and runs it again.
    template <typename T, typename F>
    tpm_result<T> with_tpm(F&& op) {
        const bool had_connection = _esys != nullptr;
        if (!had_connection) {
            if (auto c = connect(); !c) {
                disconnect();
                return c.err();
            }
        }
        tpm_result<T> r = op();
        if (r.ok() || !r.err().connection_lost) {
            return r;
        }
        disconnect();
        if (!had_connection) {
            return r;
        }
        if (auto c = connect(); !c) {
            disconnect();
            return tpm_failure{fmt::format("{}; connecting again failed: {}", r.err().message, c.err().message), true};
        }
        r = op();
        if (!r.ok() && r.err().connection_lost) {
            disconnect();
        }
        return r;
    }

    tpm_failure failure(std::string_view command, TSS2_RC rc) const {
        return tpm_failure{fmt::format("{} on the TPM at '{}' failed: {}", command, _settings.tcti, rc_text(rc)),
                           !from_tpm(rc)};
    }

    tpm_result<ok_t> connect() {
        TSS2_TCTI_CONTEXT* tcti = nullptr;
        TSS2_RC rc = Tss2_TctiLdr_Initialize(_settings.tcti.c_str(), &tcti);
        if (rc != TSS2_RC_SUCCESS) {
            return tpm_failure{fmt::format("cannot open the TPM at TCTI '{}': {}", _settings.tcti, rc_text(rc)), true};
        }
        _tcti.reset(tcti);
        ESYS_CONTEXT* esys = nullptr;
        rc = Esys_Initialize(&esys, tcti, nullptr);
        if (rc != TSS2_RC_SUCCESS) {
            return tpm_failure{
                fmt::format("cannot start ESAPI on the TPM at TCTI '{}': {}", _settings.tcti, rc_text(rc)), true};
        }
        _esys.reset(esys);
        const TPM2B_AUTH owner = make_auth(_settings.owner_auth);
        if (rc = Esys_TR_SetAuth(_esys.get(), ESYS_TR_RH_OWNER, &owner); rc != TSS2_RC_SUCCESS) {
            return failure("setting the owner authorization", rc);
        }
        if (auto k = find_or_create_key(); !k) {
            return k.err();
        }
        return find_or_define_counter();
    }

    /// The signing key is a primary key of the owner hierarchy
    /// (TPM2_CreatePrimary, Part 3 §24.1), made persistent with
    /// TPM2_EvictControl (Part 3 §28.5) rather than a child of a storage
    /// key: one object instead of two, no storage key to keep loaded or
    /// persistent beside it, and nothing else to store. A primary is
    /// derived from the owner seed and the template (Part 1, "Primary
    /// Keys"), so if the persistent copy is ever evicted, the same template
    /// derives the very key the Registrar enrolled; a TPM2_Clear changes the
    /// owner seed, and with it the key, which is right, as the TPM then
    /// changed hands and must be enrolled again. Non-exportability is the
    /// same either way: fixedTPM, fixedParent, sensitiveDataOrigin.
    tpm_result<ok_t> find_or_create_key() {
        auto exists = handle_exists(_settings.key_handle);
        if (!exists) {
            return exists.err();
        }
        ESYS_TR key = ESYS_TR_NONE;
        TSS2_RC rc = TSS2_RC_SUCCESS;
        if (*exists) {
            rc = Esys_TR_FromTPMPublic(_esys.get(), _settings.key_handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                       &key);
            if (rc != TSS2_RC_SUCCESS) {
                return failure(fmt::format("looking up the signing key at handle 0x{:08x}", _settings.key_handle), rc);
            }
        } else if (auto c = create_key(key); !c) {
            return c.err();
        }
        TPM2B_PUBLIC* pub_raw = nullptr;
        TPM2B_NAME* name_raw = nullptr;
        rc = Esys_ReadPublic(_esys.get(), key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw, &name_raw, nullptr);
        esys_ptr<TPM2B_PUBLIC> pub(pub_raw);
        esys_ptr<TPM2B_NAME> name(name_raw);
        if (rc != TSS2_RC_SUCCESS) {
            return failure(fmt::format("TPM2_ReadPublic of the signing key at 0x{:08x}", _settings.key_handle), rc);
        }
        const TPMT_PUBLIC& p = pub->publicArea;
        status s = check_signing_public(p);
        if (s && (p.objectAttributes & TPMA_OBJECT_USERWITHAUTH) == 0) {
            s = error{"userWithAuth is clear: the key needs a policy to sign"};
        }
        if (!s) {
            return tpm_failure{fmt::format("the persistent handle 0x{:08x} on the TPM at '{}' holds an object that "
                                           "is not a usable signing key: {}; evict it (tpm2_evictcontrol -C o -c "
                                           "0x{:08x}) or configure another key handle",
                                           _settings.key_handle, _settings.tcti, s.message(), _settings.key_handle),
                               false};
        }
        std::vector<uint8_t> name_bytes(name->name, name->name + name->size);
        if (!_key_public.name.empty() && name_bytes != _key_public.name) {
            // A reconnection must find the key this signer started with:
            // anything else would sign with a key the Registrar never saw.
            return tpm_failure{fmt::format("the signing key at 0x{:08x} on the TPM at '{}' changed: name {}, was {}",
                                           _settings.key_handle, _settings.tcti, hex(name_bytes),
                                           hex(_key_public.name)),
                               false};
        }
        std::array<uint8_t, sizeof(TPM2B_PUBLIC)> buf{};
        size_t len = 0;
        if (rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub.get(), buf.data(), buf.size(), &len); rc != TSS2_RC_SUCCESS) {
            return tpm_failure{fmt::format("marshalling the signing key's public area: {}", rc_text(rc)), false};
        }
        _key_public.public_area.assign(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(len));
        _key_public.name = std::move(name_bytes);
        _key = key;
        return ok_t{};
    }

    tpm_result<ok_t> create_key(ESYS_TR& key) {
        const TPM2B_SENSITIVE_CREATE sensitive{};
        const TPM2B_PUBLIC tmpl = signing_key_template(_settings.key_handle);
        const TPM2B_DATA outside{};
        const TPML_PCR_SELECTION creation_pcrs{};
        transient_object primary(_esys.get());
        TSS2_RC rc =
            Esys_CreatePrimary(_esys.get(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                               &tmpl, &outside, &creation_pcrs, primary.out(), nullptr, nullptr, nullptr, nullptr);
        if (rc != TSS2_RC_SUCCESS) {
            return failure("TPM2_CreatePrimary of the signing key (owner hierarchy)", rc);
        }
        rc = Esys_EvictControl(_esys.get(), ESYS_TR_RH_OWNER, primary.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, _settings.key_handle, &key);
        if (rc != TSS2_RC_SUCCESS) {
            return failure(fmt::format("TPM2_EvictControl of the signing key to 0x{:08x}", _settings.key_handle), rc);
        }
        return ok_t{};
    }

    tpm_result<ok_t> find_or_define_counter() {
        auto exists = handle_exists(_settings.counter_index);
        if (!exists) {
            return exists.err();
        }
        ESYS_TR index = ESYS_TR_NONE;
        TSS2_RC rc = TSS2_RC_SUCCESS;
        if (!*exists) {
            // Part 3 §31.3.
            const TPM2B_AUTH empty{};
            TPM2B_NV_PUBLIC pub{};
            pub.nvPublic.nvIndex = _settings.counter_index;
            pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
            pub.nvPublic.attributes = counter_attributes;
            pub.nvPublic.dataSize = 8;
            rc = Esys_NV_DefineSpace(_esys.get(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                     &empty, &pub, &index);
            if (rc != TSS2_RC_SUCCESS) {
                return failure(fmt::format("TPM2_NV_DefineSpace of the counter at 0x{:08x}", _settings.counter_index),
                               rc);
            }
            _counter = index;
            _counter_written = false;
            return ok_t{};
        }
        rc = Esys_TR_FromTPMPublic(_esys.get(), _settings.counter_index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                   &index);
        if (rc != TSS2_RC_SUCCESS) {
            return failure(fmt::format("looking up the counter NV index 0x{:08x}", _settings.counter_index), rc);
        }
        TPM2B_NV_PUBLIC* pub_raw = nullptr;
        rc = Esys_NV_ReadPublic(_esys.get(), index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw, nullptr);
        esys_ptr<TPM2B_NV_PUBLIC> pub(pub_raw);
        if (rc != TSS2_RC_SUCCESS) {
            return failure(fmt::format("TPM2_NV_ReadPublic of the counter at 0x{:08x}", _settings.counter_index), rc);
        }
        const TPMA_NV a = pub->nvPublic.attributes;
        const auto type = (a & TPMA_NV_TPM2_NT_MASK) >> TPMA_NV_TPM2_NT_SHIFT;
        if (type != TPM2_NT_COUNTER || pub->nvPublic.dataSize != 8 || (a & TPMA_NV_AUTHREAD) == 0 ||
            (a & TPMA_NV_AUTHWRITE) == 0) {
            return tpm_failure{fmt::format("the NV index 0x{:08x} on the TPM at '{}' is not a counter this signer "
                                           "can use (type {}, size {}, attributes 0x{:08x}; wanted a counter of 8 "
                                           "octets with authread and authwrite); undefine it or configure another "
                                           "counter index",
                                           _settings.counter_index, _settings.tcti, type, pub->nvPublic.dataSize, a),
                               false};
        }
        _counter = index;
        _counter_written = (a & TPMA_NV_WRITTEN) != 0;
        return ok_t{};
    }

    /// Whether a persistent object or NV index exists at `handle`: the first
    /// handle at or above it that TPM2_GetCapability(TPM_CAP_HANDLES)
    /// lists (Part 3 §30.2) is itself.
    tpm_result<bool> handle_exists(TPM2_HANDLE handle) {
        TPMI_YES_NO more = TPM2_NO;
        TPMS_CAPABILITY_DATA* data_raw = nullptr;
        const TSS2_RC rc = Esys_GetCapability(_esys.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                                              handle, 1, &more, &data_raw);
        esys_ptr<TPMS_CAPABILITY_DATA> data(data_raw);
        if (rc != TSS2_RC_SUCCESS) {
            return failure(fmt::format("TPM2_GetCapability of handle 0x{:08x}", handle), rc);
        }
        return data->capability == TPM2_CAP_HANDLES && data->data.handles.count > 0 &&
               data->data.handles.handle[0] == handle;
    }

    /// Whether the counter was ever incremented (TPMA_NV_WRITTEN): reading
    /// one that was not is an error the TPM answers (and ESAPI logs).
    tpm_result<bool> counter_written() {
        if (_counter_written) {
            return true;
        }
        TPM2B_NV_PUBLIC* pub_raw = nullptr;
        const TSS2_RC rc =
            Esys_NV_ReadPublic(_esys.get(), _counter, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw, nullptr);
        esys_ptr<TPM2B_NV_PUBLIC> pub(pub_raw);
        if (rc != TSS2_RC_SUCCESS) {
            return failure("TPM2_NV_ReadPublic of the counter", rc);
        }
        _counter_written = (pub->nvPublic.attributes & TPMA_NV_WRITTEN) != 0;
        return _counter_written;
    }

    tpm_result<uint64_t> read_counter_now() {
        auto written = counter_written();
        if (!written) {
            return written.err();
        }
        if (!*written) {
            // Never incremented, so unreadable (TPM_RC_NV_UNINITIALIZED). Its
            // first TPM2_NV_Increment makes it at least 1 (a new counter
            // starts from the largest count any counter of this TPM ever
            // held: Part 1, "NV Counters"), so 0 is below every value it
            // will ever have.
            return uint64_t{0};
        }
        TPM2B_MAX_NV_BUFFER* data_raw = nullptr;
        const TSS2_RC rc = Esys_NV_Read(_esys.get(), _counter, _counter, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                        8, 0, &data_raw);
        esys_ptr<TPM2B_MAX_NV_BUFFER> data(data_raw);
        if (tpm_rc_is(rc, TPM2_RC_NV_UNINITIALIZED)) {
            _counter_written = false; // the index was replaced meanwhile; as above
            return uint64_t{0};
        }
        if (rc != TSS2_RC_SUCCESS) {
            return failure("TPM2_NV_Read of the counter", rc);
        }
        if (data->size != 8) {
            return tpm_failure{fmt::format("the counter read back {} octets, not 8", data->size), false};
        }
        uint64_t value = 0;
        for (size_t i = 0; i < 8; ++i) {
            value = (value << 8) | data->buffer[i]; // big-endian, Part 2 §13.4
        }
        return value;
    }

    /// ES256 over `message`: the TPM hashes it (TPM2_Hash, or a hash
    /// sequence past TPM2_MAX_DIGEST_BUFFER octets) and signs that digest
    /// with the ticket the hash gave, as a restricted key requires (Part 3
    /// §20.2).
    tpm_result<std::vector<uint8_t>> sign_now(std::span<const uint8_t> message) {
        if (starts_with_generated_value(message)) {
            return tpm_failure{"the message starts with TPM_GENERATED_VALUE (0xff544347): the TPM signs such octets "
                               "only as its own attestations",
                               false};
        }
        TPM2B_DIGEST* digest_raw = nullptr;
        TPMT_TK_HASHCHECK* ticket_raw = nullptr;
        if (auto h = hash_in_tpm(message, digest_raw, ticket_raw); !h) {
            return h.err();
        }
        esys_ptr<TPM2B_DIGEST> digest(digest_raw);
        esys_ptr<TPMT_TK_HASHCHECK> ticket(ticket_raw);
        TPMT_SIG_SCHEME scheme{};
        scheme.scheme = TPM2_ALG_ECDSA;
        scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
        TPMT_SIGNATURE* sig_raw = nullptr;
        const TSS2_RC rc = Esys_Sign(_esys.get(), _key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, digest.get(),
                                     &scheme, ticket.get(), &sig_raw);
        esys_ptr<TPMT_SIGNATURE> sig(sig_raw);
        if (rc != TSS2_RC_SUCCESS) {
            return failure("TPM2_Sign", rc);
        }
        return raw_signature(*sig);
    }

    static bool starts_with_generated_value(std::span<const uint8_t> message) {
        constexpr std::array<uint8_t, 4> magic = {0xff, 0x54, 0x43, 0x47}; // TPM_GENERATED_VALUE, big-endian
        return message.size() >= magic.size() && std::equal(magic.begin(), magic.end(), message.begin());
    }

    /// SHA-256 of `message` computed by the TPM, with its hash-check ticket
    /// for the owner hierarchy (the signing key's).
    tpm_result<ok_t> hash_in_tpm(std::span<const uint8_t> message, TPM2B_DIGEST*& digest, TPMT_TK_HASHCHECK*& ticket) {
        constexpr size_t piece = TPM2_MAX_DIGEST_BUFFER;
        TPM2B_MAX_BUFFER data{};
        if (message.size() <= piece) {
            data.size = static_cast<UINT16>(message.size());
            std::copy(message.begin(), message.end(), data.buffer);
            const TSS2_RC rc = Esys_Hash(_esys.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &data, TPM2_ALG_SHA256,
                                         ESYS_TR_RH_OWNER, &digest, &ticket);
            if (rc != TSS2_RC_SUCCESS) {
                return failure("TPM2_Hash", rc);
            }
            return ok_t{};
        }
        // Part 3 §17.3-17.5. The sequence object is flushed by
        // TPM2_SequenceComplete; on a failure before that, here.
        const TPM2B_AUTH auth{};
        ESYS_TR sequence = ESYS_TR_NONE;
        TSS2_RC rc = Esys_HashSequenceStart(_esys.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &auth,
                                            TPM2_ALG_SHA256, &sequence);
        if (rc != TSS2_RC_SUCCESS) {
            return failure("TPM2_HashSequenceStart", rc);
        }
        size_t at = 0;
        // The last piece goes with TPM2_SequenceComplete.
        while (message.size() - at > piece) {
            data.size = static_cast<UINT16>(piece);
            std::copy_n(message.begin() + static_cast<std::ptrdiff_t>(at), piece, data.buffer);
            rc = Esys_SequenceUpdate(_esys.get(), sequence, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &data);
            if (rc != TSS2_RC_SUCCESS) {
                (void)Esys_FlushContext(_esys.get(), sequence);
                return failure("TPM2_SequenceUpdate", rc);
            }
            at += piece;
        }
        data.size = static_cast<UINT16>(message.size() - at);
        std::copy(message.begin() + static_cast<std::ptrdiff_t>(at), message.end(), data.buffer);
        rc = Esys_SequenceComplete(_esys.get(), sequence, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &data,
                                   ESYS_TR_RH_OWNER, &digest, &ticket);
        if (rc != TSS2_RC_SUCCESS) {
            (void)Esys_FlushContext(_esys.get(), sequence);
            return failure("TPM2_SequenceComplete", rc);
        }
        return ok_t{};
    }

    static tpm_result<std::vector<uint8_t>> raw_signature(const TPMT_SIGNATURE& sig) {
        if (sig.sigAlg != TPM2_ALG_ECDSA) {
            return tpm_failure{fmt::format("the TPM signed with algorithm 0x{:04x}, not ECDSA", sig.sigAlg), false};
        }
        const auto& e = sig.signature.ecdsa;
        auto r = left_pad({e.signatureR.buffer, e.signatureR.size}, 32);
        auto s = left_pad({e.signatureS.buffer, e.signatureS.size}, 32);
        if (!r || !s) {
            return tpm_failure{"the TPM's ECDSA signature has a half longer than 32 octets", false};
        }
        r->insert(r->end(), s->begin(), s->end());
        return std::move(*r);
    }

    /// The template of the EK whose certificate enrolment reads: the one
    /// the settings name, or for automatic the first in automatic_order
    /// whose certificate the TPM holds; nullopt when that is none (or the
    /// named template's certificate is absent).
    tpm_result<std::optional<ek_template>> certified_template() {
        const bool named = _settings.ek != ek_template::automatic;
        for (const ek_template t : automatic_order) {
            if (named && t != _settings.ek) {
                continue;
            }
            auto exists = handle_exists(spec_of(t).certificate_index);
            if (!exists) {
                return exists.err();
            }
            if (*exists) {
                return std::optional<ek_template>(t);
            }
        }
        return std::optional<ek_template>();
    }

    /// The whole contents of an NV index that its own (empty) authorization
    /// reads, as the EK certificate indices are (TCG EK Credential Profile
    /// 2.x §2.2.1.5), in pieces a TPM takes (at most 512 octets each).
    tpm_result<std::vector<uint8_t>> read_nv(uint32_t index) {
        ESYS_TR nv = ESYS_TR_NONE;
        TSS2_RC rc = Esys_TR_FromTPMPublic(_esys.get(), index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
        if (rc != TSS2_RC_SUCCESS) {
            return failure(fmt::format("looking up NV index 0x{:08x}", index), rc);
        }
        struct closer {
            ESYS_CONTEXT* esys;
            ESYS_TR tr;
            ~closer() { (void)Esys_TR_Close(esys, &tr); }
        } close_nv{_esys.get(), nv};
        TPM2B_NV_PUBLIC* pub_raw = nullptr;
        rc = Esys_NV_ReadPublic(_esys.get(), nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub_raw, nullptr);
        esys_ptr<TPM2B_NV_PUBLIC> pub(pub_raw);
        if (rc != TSS2_RC_SUCCESS) {
            return failure(fmt::format("TPM2_NV_ReadPublic of 0x{:08x}", index), rc);
        }
        const size_t size = pub->nvPublic.dataSize;
        std::vector<uint8_t> out;
        out.reserve(size);
        while (out.size() < size) {
            const auto piece = static_cast<UINT16>(std::min<size_t>(512, size - out.size()));
            TPM2B_MAX_NV_BUFFER* data_raw = nullptr;
            rc = Esys_NV_Read(_esys.get(), nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, piece,
                              static_cast<UINT16>(out.size()), &data_raw);
            esys_ptr<TPM2B_MAX_NV_BUFFER> data(data_raw);
            if (rc != TSS2_RC_SUCCESS) {
                return failure(fmt::format("TPM2_NV_Read of 0x{:08x} at {}", index, out.size()), rc);
            }
            if (data->size == 0) {
                return tpm_failure{fmt::format("TPM2_NV_Read of 0x{:08x} returned nothing at {}", index, out.size()),
                                   false};
            }
            out.insert(out.end(), data->buffer, data->buffer + data->size);
        }
        return out;
    }

    /// Derives the EK under the endorsement hierarchy into `ek`, its public
    /// area into `pub`, and says from which template: the one the settings
    /// name; for automatic, the certified one (certified_template), else
    /// L-2, or L-1 when the TPM lacks ECC.
    tpm_result<ek_template> create_ek(transient_object& ek, esys_ptr<TPM2B_PUBLIC>& pub) {
        if (_settings.ek != ek_template::automatic) {
            return create_ek_from(_settings.ek, ek, pub);
        }
        auto certified = certified_template();
        if (!certified) {
            return certified.err();
        }
        if (*certified) {
            return create_ek_from(**certified, ek, pub);
        }
        auto ecc = create_ek_from(ek_template::l2, ek, pub);
        if (ecc.ok() || ecc.err().connection_lost) {
            return ecc;
        }
        auto rsa = create_ek_from(ek_template::l1, ek, pub);
        if (!rsa.ok()) {
            return tpm_failure{fmt::format("{}; the RSA 2048 EK failed too: {}", ecc.err().message, rsa.err().message),
                               rsa.err().connection_lost};
        }
        return rsa;
    }

    tpm_result<ek_template> create_ek_from(ek_template which, transient_object& ek, esys_ptr<TPM2B_PUBLIC>& pub) {
        const ek_template_spec& spec = spec_of(which);
        const TPM2B_AUTH auth = make_auth(_settings.endorsement_auth);
        TSS2_RC rc = Esys_TR_SetAuth(_esys.get(), ESYS_TR_RH_ENDORSEMENT, &auth);
        if (rc != TSS2_RC_SUCCESS) {
            return failure("setting the endorsement authorization", rc);
        }
        const TPM2B_PUBLIC tmpl = public_template(spec);
        const TPM2B_SENSITIVE_CREATE sensitive{};
        const TPM2B_DATA outside{};
        const TPML_PCR_SELECTION creation_pcrs{};
        TPM2B_PUBLIC* pub_raw = nullptr;
        rc = Esys_CreatePrimary(_esys.get(), ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                &sensitive, &tmpl, &outside, &creation_pcrs, ek.out(), &pub_raw, nullptr, nullptr,
                                nullptr);
        pub.reset(pub_raw);
        if (rc != TSS2_RC_SUCCESS) {
            return failure(fmt::format("TPM2_CreatePrimary of the {} EK, template {} (endorsement hierarchy)",
                                       spec.kind, spec.name),
                           rc);
        }
        return which;
    }

    /// TPM2_PCR_Read of the SHA-256 bank, at most eight PCRs per command
    /// (a TPML_DIGEST holds eight, Part 2 §10.9.2).
    tpm_result<pcr_values> read_pcrs(const std::vector<unsigned>& pcrs) {
        pcr_values values;
        for (size_t first = 0; first < pcrs.size(); first += 8) {
            const std::span<const unsigned> group(pcrs.data() + first, std::min<size_t>(8, pcrs.size() - first));
            const TPML_PCR_SELECTION sel = pcr_selection(group);
            UINT32 update_counter = 0;
            TPML_PCR_SELECTION* out_raw = nullptr;
            TPML_DIGEST* digests_raw = nullptr;
            const TSS2_RC rc = Esys_PCR_Read(_esys.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel,
                                             &update_counter, &out_raw, &digests_raw);
            esys_ptr<TPML_PCR_SELECTION> out(out_raw);
            esys_ptr<TPML_DIGEST> digests(digests_raw);
            if (rc != TSS2_RC_SUCCESS) {
                return failure("TPM2_PCR_Read", rc);
            }
            if (digests->count != group.size()) {
                return tpm_failure{fmt::format("TPM2_PCR_Read returned {} of {} SHA-256 PCRs (is the bank allocated?)",
                                               digests->count, group.size()),
                                   false};
            }
            // Values come in ascending PCR order (Part 3 §22.4.1).
            for (size_t i = 0; i < group.size(); ++i) {
                const auto& d = digests->digests[i];
                values[group[i]] = std::vector<uint8_t>(d.buffer, d.buffer + d.size);
            }
        }
        return values;
    }

    tpm_result<tpm_quote> quote_now(const std::vector<uint8_t>& nonce, const std::vector<unsigned>& pcrs) {
        TPM2B_DATA qualifying{};
        qualifying.size = static_cast<UINT16>(nonce.size());
        std::copy(nonce.begin(), nonce.end(), qualifying.buffer);
        TPMT_SIG_SCHEME scheme{};
        scheme.scheme = TPM2_ALG_ECDSA;
        scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
        const TPML_PCR_SELECTION sel = pcr_selection(pcrs);
        // A PCR may be extended between the read and the quote; the quote's
        // pcrDigest tells, and the pair is made again.
        for (int attempt = 0; attempt < 3; ++attempt) {
            auto values = read_pcrs(pcrs);
            if (!values) {
                return values.err();
            }
            TPM2B_ATTEST* attest_raw = nullptr;
            TPMT_SIGNATURE* sig_raw = nullptr;
            const TSS2_RC rc = Esys_Quote(_esys.get(), _key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying,
                                          &scheme, &sel, &attest_raw, &sig_raw);
            esys_ptr<TPM2B_ATTEST> attest(attest_raw);
            esys_ptr<TPMT_SIGNATURE> sig(sig_raw);
            if (rc != TSS2_RC_SUCCESS) {
                return failure("TPM2_Quote", rc);
            }
            TPMS_ATTEST parsed{};
            size_t offset = 0;
            if (Tss2_MU_TPMS_ATTEST_Unmarshal(attest->attestationData, attest->size, &offset, &parsed) !=
                TSS2_RC_SUCCESS) {
                return tpm_failure{"the TPM's quote does not unmarshal as a TPMS_ATTEST", false};
            }
            std::vector<uint8_t> concat;
            for (const auto& [index, value] : *values) {
                concat.insert(concat.end(), value.begin(), value.end());
            }
            const auto digest = sha256(concat);
            const auto& quoted = parsed.attested.quote.pcrDigest;
            if (!same_bytes({quoted.buffer, quoted.size}, digest)) {
                continue;
            }
            auto raw = raw_signature(*sig);
            if (!raw) {
                return raw.err();
            }
            return tpm_quote{std::vector<uint8_t>(attest->attestationData, attest->attestationData + attest->size),
                             std::move(*raw), std::move(*values)};
        }
        return tpm_failure{"the quoted PCRs kept changing between TPM2_PCR_Read and TPM2_Quote", false};
    }

    tpm_settings _settings;
    std::unique_ptr<TSS2_TCTI_CONTEXT, tcti_finalize> _tcti; // before _esys: destroyed after it
    std::unique_ptr<ESYS_CONTEXT, esys_finalize> _esys;
    ESYS_TR _key = ESYS_TR_NONE;
    ESYS_TR _counter = ESYS_TR_NONE;
    bool _counter_written = false;
    tpm_key_public _key_public;
};

// ---------------------------------------------------------------------------
// The worker thread: every TPM command runs there, so that a caller can give
// up on a TPM that does not answer. The TCTIs block without a limit (the
// swtpm and mssim TCTIs read their socket with no timeout; a stopped swtpm
// keeps the connection open and never answers), and ESAPI cannot cancel a
// command in flight. A caller that gives up leaves the command with the
// worker; the connection is dropped when it ends, and until then further
// calls fail at once instead of queueing behind it.

class tpm_worker {
public:
    explicit tpm_worker(tpm_settings settings) : _state(std::make_shared<shared_state>(std::move(settings))) {
        _thread = std::thread(&tpm_worker::loop, _state);
        name_thread(_thread, "tpm-esys");
    }

    ~tpm_worker() {
        std::unique_lock lock(_state->mutex);
        _state->stop = true;
        _state->cv.notify_all();
        // A command the TPM never answers would make join() wait forever:
        // leave it to the thread, which owns the shared state and ends
        // as soon as the command does.
        const bool finished = _state->cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return !_state->busy; });
        lock.unlock();
        if (finished) {
            _thread.join();
        } else {
            _thread.detach();
        }
    }

    tpm_worker(const tpm_worker&) = delete;
    tpm_worker& operator=(const tpm_worker&) = delete;
    tpm_worker(tpm_worker&&) = delete;
    tpm_worker& operator=(tpm_worker&&) = delete;

    /// Runs `op(session)` on the worker and waits at most the command
    /// timeout for it. `op` must own everything it uses: it may outlive
    /// this call.
    template <typename T, typename F>
    result<T> run(std::string_view what, F op) {
        const auto& tcti = _state->session.settings().tcti;
        const auto timeout = _state->session.settings().command_timeout;
        auto slot = std::make_shared<std::unique_ptr<tpm_result<T>>>();
        std::unique_lock lock(_state->mutex);
        if (_state->busy) {
            const auto ago =
                std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - _state->sent);
            return error{fmt::format("{}: the TPM at '{}' has still not answered a command sent {} ms ago; nothing "
                                     "more is sent to it until it does",
                                     what, tcti, ago.count())};
        }
        _state->job = [slot, op = std::move(op)](tpm_session& session) mutable {
            *slot = std::make_unique<tpm_result<T>>(op(session));
        };
        _state->busy = true;
        _state->sent = std::chrono::steady_clock::now();
        _state->cv.notify_all();
        if (!_state->cv.wait_for(lock, timeout, [&] { return !_state->busy; })) {
            _state->abandoned = true;
            return error{fmt::format("{}: the TPM at '{}' did not answer within {} ms; the connection is dropped and "
                                     "made again by a later call",
                                     what, tcti, timeout.count())};
        }
        tpm_result<T>& r = **slot;
        if (!r.ok()) {
            return error{fmt::format("{}: {}", what, r.err().message)};
        }
        return std::move(r.value());
    }

private:
    struct shared_state {
        explicit shared_state(tpm_settings settings) : session(std::move(settings)) {}
        std::mutex mutex;
        std::condition_variable cv;
        std::function<void(tpm_session&)> job;
        bool busy = false;
        bool abandoned = false;
        bool stop = false;
        std::chrono::steady_clock::time_point sent;
        tpm_session session; ///< only the worker thread touches it
    };

    static void loop(std::shared_ptr<shared_state> st) {
        // The socket TCTIs write() to their socket: a TPM that went away
        // would raise SIGPIPE, whose default action ends the process. Blocked
        // on this thread (the only one that talks to the TPM), the write
        // fails with EPIPE instead, and the pending signal is discarded.
        sigset_t pipe_signal;
        sigemptyset(&pipe_signal);
        sigaddset(&pipe_signal, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
        std::unique_lock lock(st->mutex);
        for (;;) {
            st->cv.wait(lock, [&] { return st->stop || st->job != nullptr; });
            if (st->job == nullptr) {
                break;
            }
            auto job = std::move(st->job);
            st->job = nullptr;
            lock.unlock();
            job(st->session);
            const timespec no_wait{};
            while (sigtimedwait(&pipe_signal, nullptr, &no_wait) > 0) {
            }
            lock.lock();
            if (st->abandoned) {
                // Its caller gave up: what state the TPM and ESAPI are in is
                // unknown, so start afresh.
                st->abandoned = false;
                lock.unlock();
                st->session.disconnect();
                lock.lock();
            }
            st->busy = false;
            st->cv.notify_all();
        }
        lock.unlock();
        st->session.disconnect();
    }

    std::shared_ptr<shared_state> _state;
    std::thread _thread;
};

// ---------------------------------------------------------------------------
// tpm_signer

tpm_signer::tpm_signer(tpm_settings settings) : _settings(std::move(settings)) {}

tpm_signer::~tpm_signer() = default;

result<std::unique_ptr<tpm_signer>> tpm_signer::open(tpm_settings settings) {
    if (settings.tcti.empty()) {
        return error{"no TCTI configured for the TPM signer (e.g. device:/dev/tpmrm0)"};
    }
    if ((settings.key_handle >> 24) != TPM2_HT_PERSISTENT) {
        return error{
            fmt::format("the key handle 0x{:08x} is not a persistent handle (0x81xxxxxx)", settings.key_handle)};
    }
    if ((settings.counter_index >> 24) != TPM2_HT_NV_INDEX) {
        return error{fmt::format("the counter index 0x{:08x} is not an NV index (0x01xxxxxx)", settings.counter_index)};
    }
    if (settings.owner_auth.size() > sizeof(TPMU_HA) || settings.endorsement_auth.size() > sizeof(TPMU_HA)) {
        return error{"an authorization value is longer than 64 octets"};
    }
    if (settings.command_timeout.count() <= 0) {
        return error{"the TPM command timeout must be positive"};
    }
    std::unique_ptr<tpm_signer> s(new tpm_signer(settings));
    try {
        s->_worker = std::make_unique<tpm_worker>(std::move(settings));
    } catch (const std::system_error& e) {
        return error{fmt::format("cannot start the TPM signer's thread: {}", e.what())};
    }
    auto key =
        s->_worker->run<tpm_key_public>("opening the TPM signer", [](tpm_session& session) { return session.open(); });
    if (!key) {
        return key.err();
    }
    s->_key_public = std::move(*key);
    TPM2B_PUBLIC pub{};
    size_t offset = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(s->_key_public.public_area.data(), s->_key_public.public_area.size(), &offset,
                                       &pub) != TSS2_RC_SUCCESS) {
        return error{"the signing key's public area does not unmarshal"};
    }
    auto der = ecc_spki(pub.publicArea.unique.ecc, TPM2_ECC_NIST_P256);
    if (!der) {
        return der.err();
    }
    s->_info.kind = backend_kind::tpm;
    s->_info.algorithm = signature_algorithm::es256;
    s->_info.public_key_der = std::move(*der);
    s->_info.device = fmt::format("tpm key 0x{:08x} name {}", s->_settings.key_handle, hex(s->_key_public.name));
    s->_info.hardware_rooted = true;
    return s;
}

result<uint64_t> tpm_signer::next_counter() {
    std::lock_guard lock(_call_mutex);
    return _worker->run<uint64_t>("advancing the TPM counter",
                                  [](tpm_session& session) { return session.next_counter(); });
}

result<uint64_t> tpm_signer::read_counter() {
    std::lock_guard lock(_call_mutex);
    return _worker->run<uint64_t>("reading the TPM counter",
                                  [](tpm_session& session) { return session.read_counter(); });
}

result<std::vector<uint8_t>> tpm_signer::sign(std::span<const uint8_t> message) {
    // The TPM hashes the message itself (sign_now): the operation owns a
    // copy, as it may outlive this call on a hung TPM.
    std::vector<uint8_t> copy(message.begin(), message.end());
    std::lock_guard lock(_call_mutex);
    return _worker->run<std::vector<uint8_t>>("signing with the TPM",
                                              [m = std::move(copy)](tpm_session& session) { return session.sign(m); });
}

result<std::vector<uint8_t>> tpm_signer::endorsement_key_der() {
    std::lock_guard lock(_call_mutex);
    auto ek = _worker->run<endorsement_key_of_template>("deriving the TPM's endorsement key",
                                                        [](tpm_session& session) { return session.endorsement_key(); });
    if (!ek) {
        return ek.err();
    }
    _ek_template = ek->from;
    return std::move(ek->der);
}

ek_template tpm_signer::endorsement_template() const noexcept {
    std::lock_guard lock(_call_mutex);
    return _ek_template;
}

result<std::vector<uint8_t>> tpm_signer::endorsement_certificate_der() {
    std::lock_guard lock(_call_mutex);
    return _worker->run<std::vector<uint8_t>>("reading the TPM's EK certificate",
                                              [](tpm_session& session) { return session.endorsement_certificate(); });
}

result<std::vector<uint8_t>> tpm_signer::activate_credential(const tpm_credential_blob& blob) {
    std::lock_guard lock(_call_mutex);
    return _worker->run<std::vector<uint8_t>>("activating a credential with the TPM", [blob](tpm_session& session) {
        return session.activate_credential(blob);
    });
}

result<tpm_quote> tpm_signer::quote(std::span<const uint8_t> nonce, std::span<const unsigned> pcrs) {
    if (nonce.size() > sizeof(TPMU_HA)) {
        return error{fmt::format("a quote nonce has at most {} octets, not {}", sizeof(TPMU_HA), nonce.size())};
    }
    if (pcrs.empty()) {
        return error{"a quote needs at least one PCR"};
    }
    const std::set<unsigned> unique(pcrs.begin(), pcrs.end());
    if (unique.size() != pcrs.size() || *unique.rbegin() >= pcr_count) {
        return error{fmt::format("PCR indices must be distinct and below {}", pcr_count)};
    }
    std::vector<uint8_t> n(nonce.begin(), nonce.end());
    std::vector<unsigned> sorted(unique.begin(), unique.end());
    std::lock_guard lock(_call_mutex);
    return _worker->run<tpm_quote>(
        "quoting PCRs with the TPM",
        [n = std::move(n), sorted = std::move(sorted)](tpm_session& session) { return session.quote(n, sorted); });
}

// ---------------------------------------------------------------------------
// EK templates

std::string_view ek_template_name(ek_template t) noexcept {
    return t == ek_template::automatic ? "auto" : spec_of(t).name;
}

std::string_view ek_template_kind(ek_template t) noexcept {
    return t == ek_template::automatic ? "the certified one" : spec_of(t).kind;
}

uint32_t ek_certificate_index(ek_template t) noexcept {
    return t == ek_template::automatic ? 0 : spec_of(t).certificate_index;
}

result<ek_template> parse_ek_template(std::string_view name) {
    if (name == "auto") {
        return ek_template::automatic;
    }
    std::string names = "auto";
    for (const auto& spec : ek_templates) {
        if (spec.name == name) {
            return spec.id;
        }
        names += fmt::format(", {} ({})", spec.name, spec.kind);
    }
    return error{fmt::format("'{}' is not an EK template; one of {}", name, names)};
}

// ---------------------------------------------------------------------------
// Checks without a TPM

namespace {

/// check_key_attributes(), with the area unmarshalled for check_key_public().
result<TPM2B_PUBLIC> signing_public_of(std::span<const uint8_t> public_area) {
    TPM2B_PUBLIC pub{};
    size_t offset = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(public_area.data(), public_area.size(), &offset, &pub) != TSS2_RC_SUCCESS) {
        return error{"the public area does not unmarshal as a TPM2B_PUBLIC"};
    }
    if (offset != public_area.size()) {
        return error{fmt::format("the public area has {} octets after its TPM2B_PUBLIC", public_area.size() - offset)};
    }
    if (auto s = check_signing_public(pub.publicArea); !s) {
        return s.err();
    }
    return pub;
}

} // namespace

status check_key_attributes(std::span<const uint8_t> public_area) {
    if (auto pub = signing_public_of(public_area); !pub) {
        return pub.err();
    }
    return ok_status();
}

result<std::vector<uint8_t>> check_key_public(std::span<const uint8_t> public_area,
                                              std::span<const uint8_t> expected_spki_der) {
    auto signing_public = signing_public_of(public_area);
    if (!signing_public) {
        return signing_public.err();
    }
    const TPM2B_PUBLIC& pub = *signing_public;
    auto point = p256_point(expected_spki_der);
    if (!point) {
        return point.err();
    }
    const auto& ecc = pub.publicArea.unique.ecc;
    const auto x = left_pad({ecc.x.buffer, ecc.x.size}, 32);
    const auto y = left_pad({ecc.y.buffer, ecc.y.size}, 32);
    if (!x || !y || *x != point->first || *y != point->second) {
        return error{"the public area's ECC point is not the expected key's"};
    }
    // The name: nameAlg || H_nameAlg(TPMT_PUBLIC as marshalled) (Part 1
    // §16), hashed over the octets as given, which follow the TPM2B's size.
    const auto body = public_area.subspan(2);
    const auto digest = sha256(body);
    std::vector<uint8_t> name{static_cast<uint8_t>(TPM2_ALG_SHA256 >> 8), static_cast<uint8_t>(TPM2_ALG_SHA256 & 0xff)};
    name.insert(name.end(), digest.begin(), digest.end());
    return name;
}

status check_quote(std::span<const uint8_t> attest, std::span<const uint8_t> signature,
                   std::span<const uint8_t> key_spki_der, std::span<const uint8_t> nonce, const pcr_values& expected) {
    if (auto s = verify_signature(signature_algorithm::es256, key_spki_der, attest, signature); !s) {
        return error{fmt::format("the quote's signature does not verify under the enrolled key: {}", s.message())};
    }
    TPMS_ATTEST a{};
    size_t offset = 0;
    if (Tss2_MU_TPMS_ATTEST_Unmarshal(attest.data(), attest.size(), &offset, &a) != TSS2_RC_SUCCESS ||
        offset != attest.size()) {
        return error{"the quote does not unmarshal as a TPMS_ATTEST"};
    }
    // Part 2 §10.12.12: the TPM stamps what it generates with this magic,
    // and refuses to sign outside data that starts with it.
    if (a.magic != TPM2_GENERATED_VALUE) {
        return error{fmt::format("the quote's magic is 0x{:08x}, not TPM_GENERATED_VALUE", a.magic)};
    }
    if (a.type != TPM2_ST_ATTEST_QUOTE) {
        return error{fmt::format("the attestation is of type 0x{:04x}, not a quote (TPM_ST_ATTEST_QUOTE)", a.type)};
    }
    if (!same_bytes({a.extraData.buffer, a.extraData.size}, nonce)) {
        return error{"the quote's nonce (extraData) is not the one asked for: a replayed or foreign quote"};
    }
    if (expected.empty()) {
        return error{"no expected PCR values given"};
    }
    const TPML_PCR_SELECTION& sel = a.attested.quote.pcrSelect;
    std::array<uint8_t, TPM2_PCR_SELECT_MAX> want{};
    for (const auto& [index, value] : expected) {
        if (index >= 8 * want.size()) {
            return error{fmt::format("PCR {} is out of range", index)};
        }
        want[index / 8] = static_cast<uint8_t>(want[index / 8] | (1U << (index % 8)));
    }
    bool same_selection = sel.count == 1 && sel.pcrSelections[0].hash == TPM2_ALG_SHA256 &&
                          sel.pcrSelections[0].sizeofSelect <= TPM2_PCR_SELECT_MAX;
    for (size_t i = 0; same_selection && i < want.size(); ++i) {
        const uint8_t got = i < sel.pcrSelections[0].sizeofSelect ? sel.pcrSelections[0].pcrSelect[i] : 0;
        same_selection = got == want[i];
    }
    if (!same_selection) {
        return error{"the quote covers other PCRs than the ones expected (or another bank than SHA-256)"};
    }
    std::vector<uint8_t> concat;
    for (const auto& [index, value] : expected) {
        if (value.size() != 32) {
            return error{fmt::format("the expected value of PCR {} has {} octets, not 32", index, value.size())};
        }
        concat.insert(concat.end(), value.begin(), value.end());
    }
    const auto digest = sha256(concat);
    const auto& quoted = a.attested.quote.pcrDigest;
    if (!same_bytes({quoted.buffer, quoted.size}, digest)) {
        return error{"the quote's pcrDigest does not match the expected PCR values: the platform state differs"};
    }
    return ok_status();
}

} // namespace ptpsec::hsm
