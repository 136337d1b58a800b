#include <hsm/signature.h>

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <array>
#include <memory>
#include <string_view>

namespace ptpsec::hsm {

namespace {

struct pkey_free {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct md_ctx_free {
    void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
struct sig_free {
    void operator()(ECDSA_SIG* p) const noexcept { ECDSA_SIG_free(p); }
};

} // namespace

const char* to_string(backend_kind k) noexcept {
    switch (k) {
    case backend_kind::tpm:
        return "tpm";
    case backend_kind::pkcs11:
        return "pkcs11";
    case backend_kind::software:
        return "software";
    }
    return "unknown";
}

result<std::vector<uint8_t>> ecdsa_der_to_raw(std::span<const uint8_t> der, size_t half) {
    const unsigned char* p = der.data();
    std::unique_ptr<ECDSA_SIG, sig_free> sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
    if (!sig || p != der.data() + der.size()) {
        return error{"the signature is not a DER ECDSA-Sig-Value"};
    }
    std::vector<uint8_t> raw(2 * half);
    if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), raw.data(), static_cast<int>(half)) < 0 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), raw.data() + half, static_cast<int>(half)) < 0) {
        return error{fmt::format("an ECDSA signature value is longer than {} octets", half)};
    }
    return raw;
}

result<std::vector<uint8_t>> ecdsa_raw_to_der(std::span<const uint8_t> raw) {
    if (raw.empty() || raw.size() % 2 != 0) {
        return error{fmt::format("an r || s signature has an even length, not {}", raw.size())};
    }
    const size_t half = raw.size() / 2;
    std::unique_ptr<ECDSA_SIG, sig_free> sig(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(raw.data(), static_cast<int>(half), nullptr);
    BIGNUM* s = BN_bin2bn(raw.data() + half, static_cast<int>(half), nullptr);
    if (!sig || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        return error{"out of memory"};
    }
    const int len = i2d_ECDSA_SIG(sig.get(), nullptr);
    if (len <= 0) {
        return error{"the signature could not be DER-encoded"};
    }
    std::vector<uint8_t> der(static_cast<size_t>(len));
    unsigned char* out = der.data();
    (void)i2d_ECDSA_SIG(sig.get(), &out);
    return der;
}

bool is_p256_key(EVP_PKEY* key) noexcept {
    std::array<char, 32> group{};
    size_t len = 0;
    return EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
           EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group.data(), group.size(), &len) == 1 &&
           std::string_view(group.data(), len) == "prime256v1";
}

status verify_signature(signature_algorithm alg, std::span<const uint8_t> public_key_der,
                        std::span<const uint8_t> message, std::span<const uint8_t> signature) {
    const unsigned char* p = public_key_der.data();
    std::unique_ptr<EVP_PKEY, pkey_free> key(d2i_PUBKEY(nullptr, &p, static_cast<long>(public_key_der.size())));
    if (!key || p != public_key_der.data() + public_key_der.size()) {
        return error{"the public key is not a DER SubjectPublicKeyInfo"};
    }
    std::unique_ptr<EVP_MD_CTX, md_ctx_free> ctx(EVP_MD_CTX_new());
    if (!ctx) {
        return error{"out of memory"};
    }
    if (signature.size() != 64) {
        return error{fmt::format("{} signature is 64 octets, not {}",
                                 alg == signature_algorithm::es256 ? "an ES256" : "an EdDSA", signature.size())};
    }
    if (alg == signature_algorithm::es256) {
        if (!is_p256_key(key.get())) {
            return error{"ES256 needs a P-256 public key"};
        }
        PTPSEC_TRY(der, ecdsa_raw_to_der(signature));
        if (EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1) {
            return error{"OpenSSL could not set up ECDSA verification"};
        }
        if (EVP_DigestVerify(ctx.get(), der->data(), der->size(), message.data(), message.size()) != 1) {
            return error{"the ECDSA signature does not verify"};
        }
        return ok_status();
    }
    if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_ED25519) {
        return error{"EdDSA needs an Ed25519 public key"};
    }
    if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
        return error{"OpenSSL could not set up Ed25519 verification"};
    }
    if (EVP_DigestVerify(ctx.get(), signature.data(), signature.size(), message.data(), message.size()) != 1) {
        return error{"the Ed25519 signature does not verify"};
    }
    return ok_status();
}

} // namespace ptpsec::hsm
