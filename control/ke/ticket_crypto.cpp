#include <control/ke/ticket_crypto.h>

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>

namespace ptpsec::ke {

namespace {

const char* cipher_name(nts::aead_algorithm alg) noexcept {
    switch (alg) {
    case nts::aead_algorithm::aes_siv_cmac_256:
        return "AES-128-SIV";
    case nts::aead_algorithm::aes_siv_cmac_384:
        return "AES-192-SIV";
    case nts::aead_algorithm::aes_siv_cmac_512:
        return "AES-256-SIV";
    }
    return nullptr;
}

struct cipher_free {
    void operator()(EVP_CIPHER* c) const noexcept { EVP_CIPHER_free(c); }
};
struct ctx_free {
    void operator()(EVP_CIPHER_CTX* c) const noexcept { EVP_CIPHER_CTX_free(c); }
};

/// The fetched cipher and a context initialised with the key, or why not.
struct siv {
    std::unique_ptr<EVP_CIPHER, cipher_free> cipher;
    std::unique_ptr<EVP_CIPHER_CTX, ctx_free> ctx;
};

result<siv> start(nts::aead_algorithm alg, std::span<const uint8_t> key, bool encrypt) {
    const char* name = cipher_name(alg);
    if (name == nullptr) {
        return error{fmt::format("AEAD algorithm {} is not supported", static_cast<unsigned>(alg))};
    }
    if (key.size() != aead_key_len(alg)) {
        return error{fmt::format("{} takes a {}-octet key, not {}", aead_name(alg), aead_key_len(alg), key.size())};
    }
    siv s;
    s.cipher.reset(EVP_CIPHER_fetch(nullptr, name, nullptr));
    s.ctx.reset(EVP_CIPHER_CTX_new());
    if (!s.cipher || !s.ctx) {
        return error{fmt::format("OpenSSL has no {}", name)};
    }
    const int ok = encrypt ? EVP_EncryptInit_ex2(s.ctx.get(), s.cipher.get(), key.data(), nullptr, nullptr)
                           : EVP_DecryptInit_ex2(s.ctx.get(), s.cipher.get(), key.data(), nullptr, nullptr);
    if (ok != 1) {
        return error{fmt::format("{}: key setup failed", name)};
    }
    return s;
}

/// Feeds the S2V components before the plaintext, an empty one included.
bool add_components(EVP_CIPHER_CTX* ctx, std::span<const std::span<const uint8_t>> components) {
    static const uint8_t none = 0;
    int len = 0;
    for (const auto& part : components) {
        if (EVP_CipherUpdate(ctx, nullptr, &len, part.empty() ? &none : part.data(), static_cast<int>(part.size())) !=
            1) {
            return false;
        }
    }
    return true;
}

} // namespace

size_t aead_key_len(nts::aead_algorithm alg) noexcept {
    switch (alg) {
    case nts::aead_algorithm::aes_siv_cmac_256:
        return 32;
    case nts::aead_algorithm::aes_siv_cmac_384:
        return 48;
    case nts::aead_algorithm::aes_siv_cmac_512:
        return 64;
    }
    return 0;
}

std::string aead_name(nts::aead_algorithm alg) {
    switch (alg) {
    case nts::aead_algorithm::aes_siv_cmac_256:
        return "AEAD_AES_SIV_CMAC_256";
    case nts::aead_algorithm::aes_siv_cmac_384:
        return "AEAD_AES_SIV_CMAC_384";
    case nts::aead_algorithm::aes_siv_cmac_512:
        return "AEAD_AES_SIV_CMAC_512";
    }
    return fmt::format("AEAD algorithm {}", static_cast<unsigned>(alg));
}

result<std::vector<uint8_t>> siv_seal(nts::aead_algorithm alg, std::span<const uint8_t> key,
                                      std::span<const std::span<const uint8_t>> components,
                                      std::span<const uint8_t> plaintext) {
    PTPSEC_TRY(s, start(alg, key, true));
    if (plaintext.empty()) {
        // OpenSSL's SIV computes the tag only with data; tickets always have some.
        return error{fmt::format("{}: nothing to seal", aead_name(alg))};
    }
    std::vector<uint8_t> out(siv_tag_len + plaintext.size());
    int len = 0;
    if (!add_components(s->ctx.get(), components) ||
        EVP_EncryptUpdate(s->ctx.get(), out.data() + siv_tag_len, &len, plaintext.data(),
                          static_cast<int>(plaintext.size())) != 1 ||
        EVP_EncryptFinal_ex(s->ctx.get(), out.data() + siv_tag_len + len, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(s->ctx.get(), EVP_CTRL_AEAD_GET_TAG, static_cast<int>(siv_tag_len), out.data()) != 1) {
        return error{fmt::format("{}: sealing failed", aead_name(alg))};
    }
    return out;
}

result<nts::secret_bytes> siv_open(nts::aead_algorithm alg, std::span<const uint8_t> key,
                                   std::span<const std::span<const uint8_t>> components,
                                   std::span<const uint8_t> ciphertext) {
    PTPSEC_TRY(s, start(alg, key, false));
    if (ciphertext.size() < siv_tag_len) {
        return error{fmt::format("{}: the ciphertext has {} octets, less than the {}-octet tag", aead_name(alg),
                                 ciphertext.size(), siv_tag_len)};
    }
    if (ciphertext.size() == siv_tag_len) {
        return error{fmt::format("{}: nothing to open (a tag and no ciphertext)", aead_name(alg))};
    }
    // The tag is the SIV: it goes in before any data.
    std::vector<uint8_t> tag(ciphertext.begin(), ciphertext.begin() + siv_tag_len);
    const auto body = ciphertext.subspan(siv_tag_len);
    nts::secret_bytes out(body.size());
    int len = 0;
    if (EVP_CIPHER_CTX_ctrl(s->ctx.get(), EVP_CTRL_AEAD_SET_TAG, static_cast<int>(siv_tag_len), tag.data()) != 1 ||
        !add_components(s->ctx.get(), components) ||
        EVP_DecryptUpdate(s->ctx.get(), out.data(), &len, body.data(), static_cast<int>(body.size())) != 1 ||
        EVP_DecryptFinal_ex(s->ctx.get(), out.data() + len, &len) != 1) {
        return error{fmt::format("{}: authentication failed", aead_name(alg))};
    }
    return out;
}

result<std::vector<uint8_t>> aead_seal(nts::aead_algorithm alg, std::span<const uint8_t> key,
                                       std::span<const uint8_t> nonce, std::span<const uint8_t> plaintext,
                                       std::span<const uint8_t> ad) {
    if (nonce.empty()) {
        return error{fmt::format("{}: no nonce", aead_name(alg))};
    }
    const std::span<const uint8_t> parts[] = {ad, nonce};
    return siv_seal(alg, key, parts, plaintext);
}

result<nts::secret_bytes> aead_open(nts::aead_algorithm alg, std::span<const uint8_t> key,
                                    std::span<const uint8_t> nonce, std::span<const uint8_t> ciphertext,
                                    std::span<const uint8_t> ad) {
    if (nonce.empty()) {
        return error{fmt::format("{}: no nonce", aead_name(alg))};
    }
    const std::span<const uint8_t> parts[] = {ad, nonce};
    return siv_open(alg, key, parts, ciphertext);
}

result<nts::ticket> seal_ticket(uint32_t ticket_key_id, const nts::port_identity& requester, nts::aead_algorithm alg,
                                std::span<const uint8_t> ticket_key, const nts::security_association& sa) {
    // The plaintext is the record body: the record as append writes it, less
    // its four-octet header.
    nts::secret_bytes record_bytes;
    {
        std::vector<uint8_t> tmp;
        nts::record_writer w(tmp);
        nts::append_security_association(w, sa);
        record_bytes.assign(tmp.begin() + 4, tmp.end());
        std::fill(tmp.begin(), tmp.end(), uint8_t{0});
    }
    nts::ticket t;
    t.ticket_key_id = ticket_key_id;
    t.source_port_identity = requester;
    t.nonce.resize(ticket_nonce_len);
    if (RAND_bytes(t.nonce.data(), static_cast<int>(t.nonce.size())) != 1) {
        return error{"the CSPRNG failed to make a ticket nonce"};
    }
    PTPSEC_TRY(sealed, aead_seal(alg, ticket_key, t.nonce, record_bytes));
    t.encrypted_sa = std::move(sealed).value();
    return t;
}

result<nts::security_association> open_ticket(const nts::ticket& t, nts::aead_algorithm alg,
                                              std::span<const uint8_t> ticket_key) {
    auto plain = aead_open(alg, ticket_key, t.nonce, t.encrypted_sa);
    if (!plain) {
        return error{fmt::format("ticket under ticket key {}: {}", t.ticket_key_id, plain.message())};
    }
    auto sa = nts::decode_security_association(*plain, "ticket");
    if (!sa) {
        return error{fmt::format("ticket under ticket key {}: {}", t.ticket_key_id, sa.err().message)};
    }
    return std::move(sa).value();
}

} // namespace ptpsec::ke
