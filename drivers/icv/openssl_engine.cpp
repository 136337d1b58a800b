#include <drivers/icv/openssl_engine.h>

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace ptpsec::icv {

namespace {

const char* cipher_of(algorithm alg) noexcept {
    switch (alg) {
    case algorithm::aes_cmac_128:
        return "AES-128-CBC";
    case algorithm::aes_cmac_256:
        return "AES-256-CBC";
    case algorithm::aes_gmac_128:
        return "AES-128-GCM";
    case algorithm::aes_gmac_192:
        return "AES-192-GCM";
    case algorithm::aes_gmac_256:
        return "AES-256-GCM";
    default:
        return nullptr;
    }
}

/// An EVP_MAC_CTX keyed once; each message re-initialises it with a null key,
/// which keeps the key schedule (and, for HMAC, the inner/outer states).
class ossl_key final : public prepared_key {
public:
    ossl_key(algorithm alg, EVP_MAC_CTX* c) noexcept : prepared_key(alg, backend::openssl), ctx(c) {}
    ~ossl_key() override { EVP_MAC_CTX_free(ctx); }
    ossl_key(const ossl_key&) = delete;
    ossl_key& operator=(const ossl_key&) = delete;
    ossl_key(ossl_key&&) = delete;
    ossl_key& operator=(ossl_key&&) = delete;

    EVP_MAC_CTX* ctx;
};

std::string ossl_error() {
    const unsigned long e = ERR_get_error();
    if (e == 0) {
        return "unknown OpenSSL error";
    }
    std::array<char, 256> buf{};
    ERR_error_string_n(e, buf.data(), buf.size());
    return buf.data();
}

} // namespace

struct openssl_engine::macs {
    EVP_MAC* hmac = nullptr;
    EVP_MAC* cmac = nullptr;
    EVP_MAC* gmac = nullptr;

    macs() = default;
    macs(const macs&) = delete;
    macs& operator=(const macs&) = delete;
    macs(macs&&) = delete;
    macs& operator=(macs&&) = delete;
    ~macs() {
        EVP_MAC_free(hmac);
        EVP_MAC_free(cmac);
        EVP_MAC_free(gmac);
    }

    EVP_MAC* of(algorithm alg) const noexcept {
        switch (alg) {
        case algorithm::hmac_sha256_128:
        case algorithm::hmac_sha256:
            return hmac;
        case algorithm::aes_cmac_128:
        case algorithm::aes_cmac_256:
            return cmac;
        default:
            return gmac;
        }
    }
};

openssl_engine::openssl_engine() : _macs(std::make_unique<macs>()) {
    _macs->hmac = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
    _macs->cmac = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_CMAC, nullptr);
    _macs->gmac = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_GMAC, nullptr);
    if (_macs->hmac == nullptr || _macs->cmac == nullptr || _macs->gmac == nullptr) {
        throw std::runtime_error("OpenSSL: cannot fetch HMAC, CMAC and GMAC: " + ossl_error());
    }
}

openssl_engine::~openssl_engine() = default;

std::string_view openssl_engine::name() const noexcept {
    return OPENSSL_VERSION_TEXT;
}

result<key_handle> openssl_engine::prepare(algorithm alg, std::span<const uint8_t> key) {
    if (auto st = check_key_length(alg, key.size()); !st) {
        return st.err();
    }
    EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(_macs->of(alg));
    if (ctx == nullptr) {
        return error{"OpenSSL: EVP_MAC_CTX_new: " + ossl_error()};
    }
    auto k = std::make_unique<ossl_key>(alg, ctx);
    if (!rekey(*k, key)) {
        return error{fmt::format("OpenSSL: cannot key {}: {}", info(alg).name, ossl_error())};
    }
    return key_handle(std::move(k));
}

bool openssl_engine::rekey(prepared_key& pk, std::span<const uint8_t> key) noexcept {
    if (pk.made_by() != prepared_key::backend::openssl) {
        return false;
    }
    auto& k = static_cast<ossl_key&>(pk);
    // Checked before EVP_MAC_init: an empty key would keep the old one, and
    // a refused AES key would leave the context without a key.
    if (!key_length_fits(k.alg(), key.size())) {
        return false;
    }
    OSSL_PARAM params[2];
    if (!is_hmac(k.alg())) {
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, const_cast<char*>(cipher_of(k.alg())), 0);
    } else {
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0);
    }
    params[1] = OSSL_PARAM_construct_end();
    if (is_gmac(k.alg())) {
        // GMAC needs an IV before it accepts a key; a zero IV stands in until
        // each message sets its own.
        static const uint8_t zero_iv[gmac_nonce_len] = {};
        OSSL_PARAM gp[3] = {
            params[0],
            OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_IV, const_cast<uint8_t*>(zero_iv), sizeof(zero_iv)),
            OSSL_PARAM_construct_end()};
        return EVP_MAC_init(k.ctx, key.data(), key.size(), gp) == 1;
    }
    return EVP_MAC_init(k.ctx, key.data(), key.size(), params) == 1;
}

uint16_t openssl_engine::compute_burst(const mac_request* reqs, uint16_t n) noexcept {
    uint16_t done = 0;
    for (uint16_t i = 0; i < n; ++i) {
        const mac_request& r = reqs[i];
        if (r.key == nullptr || r.key->made_by() != prepared_key::backend::openssl) {
            continue;
        }
        const auto& k = static_cast<const ossl_key&>(*r.key);
        int ok = 0;
        if (is_gmac(k.alg())) {
            if (r.nonce == nullptr) {
                continue;
            }
            OSSL_PARAM p[2] = {
                OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_IV, const_cast<uint8_t*>(r.nonce), gmac_nonce_len),
                OSSL_PARAM_construct_end()};
            ok = EVP_MAC_init(k.ctx, nullptr, 0, p);
        } else {
            ok = EVP_MAC_init(k.ctx, nullptr, 0, nullptr);
        }
        uint8_t full[EVP_MAX_MD_SIZE];
        size_t out_len = 0;
        ok = ok && EVP_MAC_update(k.ctx, r.msg, r.len);
        ok = ok && EVP_MAC_final(k.ctx, full, &out_len, sizeof(full));
        if (ok == 1 && out_len >= k.icv_len()) {
            // HMAC-SHA256-128 is HMAC-SHA256 truncated to its first 16 octets.
            std::copy_n(full, k.icv_len(), r.icv_out);
            ++done;
        }
        OPENSSL_cleanse(full, sizeof(full));
    }
    return done;
}

} // namespace ptpsec::icv
