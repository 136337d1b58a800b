// The TPM 2.0 signer against a real TPM (swtpm): signatures that verify,
// a key that persists across re-opens and TPM restarts and cannot leave the
// TPM, a counter that only goes up, quotes and their checks with every
// refusal, the EK, and a TPM that dies or hangs under the signer.

#include <hsm/signature.h>
#include <hsm/tpm_credential.h>
#include <hsm/tpm_signer.h>

#include "../process.h"
#include "direct_tpm.h"
#include "swtpm.h"
#include "tpm_structures.h"

#include <gtest/gtest.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_tctildr.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::hsm {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using test::direct_tpm;
using test::made_up_quote;

std::vector<uint8_t> bytes(std::string_view s) {
    return {s.begin(), s.end()};
}

std::vector<uint8_t> random_bytes(size_t n) {
    std::vector<uint8_t> out(n);
    EXPECT_EQ(RAND_bytes(out.data(), static_cast<int>(n)), 1);
    return out;
}

/// The DER SubjectPublicKeyInfo of `key` (which it frees).
std::vector<uint8_t> spki_of(EVP_PKEY* key) {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k(key, EVP_PKEY_free);
    unsigned char* der = nullptr;
    const int len = k == nullptr ? 0 : i2d_PUBKEY(k.get(), &der);
    std::vector<uint8_t> out(der, der + std::max(len, 0));
    OPENSSL_free(der);
    return out;
}

std::vector<uint8_t> other_p256_spki() {
    return spki_of(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
}

double ms_since(clock_type::time_point start) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
}

class tpm_signer_test : public ::testing::Test {
protected:
    void SetUp() override {
        if (!test::swtpm::available()) {
            GTEST_FAIL() << "swtpm is not installed (make deps installs it)";
        }
        _tpm = std::make_unique<test::swtpm>();
    }

    tpm_settings settings() const {
        tpm_settings s;
        s.tcti = _tpm->tcti();
        s.signer_id = "test-signer";
        s.command_timeout = 5s;
        return s;
    }

    std::unique_ptr<tpm_signer> open(tpm_settings s) {
        auto r = tpm_signer::open(std::move(s));
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.message());
        return r.ok() ? std::move(*r) : nullptr;
    }
    std::unique_ptr<tpm_signer> open() { return open(settings()); }
    /// A signer on another TPM than the fixture's.
    std::unique_ptr<tpm_signer> open_on(const test::swtpm& tpm) {
        tpm_settings s = settings();
        s.tcti = tpm.tcti();
        return open(s);
    }

    std::unique_ptr<test::swtpm> _tpm;
};

using tpm_signer_fault_test = tpm_signer_test;

TEST_F(tpm_signer_test, signs_and_signatures_verify) {
    auto signer = open();
    ASSERT_NE(signer, nullptr);
    const auto& info = signer->info();
    EXPECT_EQ(info.kind, backend_kind::tpm);
    EXPECT_EQ(info.algorithm, signature_algorithm::es256);
    EXPECT_TRUE(info.hardware_rooted);
    EXPECT_EQ(info.device.rfind("tpm key 0x81000100 name 000b", 0), 0U) << info.device;
    EXPECT_EQ(signer->settings().signer_id, "test-signer");
    // Every TPM command runs on the signer's own thread, named for it.
    const auto threads = test::thread_names(::getpid());
    EXPECT_TRUE(std::ranges::any_of(threads, [](const auto& t) { return t.second == "tpm-esys"; }));

    const auto message = bytes("batch root 1");
    auto sig = signer->sign(message);
    ASSERT_TRUE(sig.ok()) << sig.message();
    ASSERT_EQ(sig->size(), 64U);
    EXPECT_TRUE(verify_signature(signature_algorithm::es256, info.public_key_der, message, *sig).ok());
    auto changed = message;
    changed.back() ^= 1;
    EXPECT_FALSE(verify_signature(signature_algorithm::es256, info.public_key_der, changed, *sig).ok());
    auto empty = signer->sign({});
    ASSERT_TRUE(empty.ok()) << empty.message();
    EXPECT_TRUE(verify_signature(signature_algorithm::es256, info.public_key_der, {}, *empty).ok());

    constexpr int rounds = 50;
    const auto start = clock_type::now();
    for (int i = 0; i < rounds; ++i) {
        ASSERT_TRUE(signer->sign(message).ok());
    }
    std::cout << "[ timing   ] swtpm TPM2_Sign (ECDSA P-256): " << ms_since(start) / rounds << " ms per signature\n";
}

TEST_F(tpm_signer_test, counter_starts_at_zero_and_strictly_increases) {
    auto signer = open();
    ASSERT_NE(signer, nullptr);
    auto first = signer->read_counter();
    ASSERT_TRUE(first.ok()) << first.message();
    EXPECT_EQ(*first, 0U) << "a counter never incremented reads as 0";
    uint64_t last = *first;
    constexpr int rounds = 50;
    const auto start = clock_type::now();
    for (int i = 0; i < rounds; ++i) {
        auto next = signer->next_counter();
        ASSERT_TRUE(next.ok()) << next.message();
        EXPECT_GT(*next, last);
        last = *next;
    }
    std::cout << "[ timing   ] swtpm TPM2_NV_Increment + TPM2_NV_Read: " << ms_since(start) / rounds
              << " ms per counter step\n";
    auto now = signer->read_counter();
    ASSERT_TRUE(now.ok()) << now.message();
    EXPECT_EQ(*now, last);
}

TEST_F(tpm_signer_test, key_and_counter_survive_reopen_and_tpm_restart) {
    std::vector<uint8_t> public_key;
    std::string device;
    uint64_t counter = 0;
    {
        auto signer = open();
        ASSERT_NE(signer, nullptr);
        public_key = signer->info().public_key_der;
        device = signer->info().device;
        auto c = signer->next_counter();
        ASSERT_TRUE(c.ok()) << c.message();
        counter = *c;
    }
    {
        // A new process-level open: the key is found at its handle, not made again.
        auto signer = open();
        ASSERT_NE(signer, nullptr);
        EXPECT_EQ(signer->info().public_key_der, public_key);
        EXPECT_EQ(signer->info().device, device);
        auto read = signer->read_counter();
        ASSERT_TRUE(read.ok()) << read.message();
        EXPECT_EQ(*read, counter);
        auto c = signer->next_counter();
        ASSERT_TRUE(c.ok()) << c.message();
        EXPECT_GT(*c, counter);
        counter = *c;
    }
    _tpm->stop();
    _tpm->start();
    {
        auto signer = open();
        ASSERT_NE(signer, nullptr);
        EXPECT_EQ(signer->info().public_key_der, public_key);
        auto c = signer->next_counter();
        ASSERT_TRUE(c.ok()) << c.message();
        EXPECT_GT(*c, counter);
        const auto message = bytes("after a TPM restart");
        auto sig = signer->sign(message);
        ASSERT_TRUE(sig.ok()) << sig.message();
        EXPECT_TRUE(verify_signature(signature_algorithm::es256, public_key, message, *sig).ok());
    }
}

// The key is a primary of the owner hierarchy whose template names its
// handle: two signers at two handles of one TPM have two keys (so each can
// be enrolled under its own signer_id), and a key evicted from its handle is
// derived again as the key the Registrar enrolled.
TEST_F(tpm_signer_test, each_handle_has_its_own_key_and_an_evicted_one_comes_back_the_same) {
    std::vector<uint8_t> first;
    {
        auto signer = open();
        ASSERT_NE(signer, nullptr);
        first = signer->info().public_key_der;
    }
    auto s = settings();
    s.key_handle = 0x81000101;
    s.counter_index = 0x01500101;
    {
        auto other = open(s);
        ASSERT_NE(other, nullptr);
        EXPECT_NE(other->info().public_key_der, first) << "two handles, one key";
        EXPECT_EQ(other->info().device.rfind("tpm key 0x81000101 ", 0), 0U) << other->info().device;
    }
    {
        direct_tpm direct(_tpm->tcti());
        direct.evict(0x81000100);
    }
    auto again = open();
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(again->info().public_key_der, first) << "derived again from the same template";
}

TEST_F(tpm_signer_test, key_is_not_exportable_and_its_public_area_is_checked) {
    auto signer = open();
    ASSERT_NE(signer, nullptr);
    const auto& pub = signer->key_public();
    const auto& spki = signer->info().public_key_der;
    auto name = check_key_public(pub.public_area, spki);
    ASSERT_TRUE(name.ok()) << name.message();
    EXPECT_EQ(*name, pub.name) << "the name computed in software is the TPM's";
    EXPECT_EQ(pub.name.size(), 34U);

    TPM2B_PUBLIC parsed{};
    size_t offset = 0;
    ASSERT_EQ(Tss2_MU_TPM2B_PUBLIC_Unmarshal(pub.public_area.data(), pub.public_area.size(), &offset, &parsed),
              TSS2_RC_SUCCESS);
    const TPMA_OBJECT attrs = parsed.publicArea.objectAttributes;
    EXPECT_NE(attrs & TPMA_OBJECT_FIXEDTPM, 0U);
    EXPECT_NE(attrs & TPMA_OBJECT_FIXEDPARENT, 0U);
    EXPECT_NE(attrs & TPMA_OBJECT_SENSITIVEDATAORIGIN, 0U);
    EXPECT_NE(attrs & TPMA_OBJECT_SIGN_ENCRYPT, 0U);
    EXPECT_EQ(attrs & TPMA_OBJECT_DECRYPT, 0U);

    auto doctored = [&](TPMA_OBJECT clear, TPMA_OBJECT set) {
        TPM2B_PUBLIC p = parsed;
        p.publicArea.objectAttributes = (p.publicArea.objectAttributes & ~clear) | set;
        return check_key_public(test::marshal(p), spki);
    };
    const struct {
        TPMA_OBJECT clear;
        TPMA_OBJECT set;
        const char* says;
    } cases[] = {
        {TPMA_OBJECT_FIXEDTPM, 0, "fixedTPM is clear"},
        {TPMA_OBJECT_FIXEDPARENT, 0, "fixedParent is clear"},
        {TPMA_OBJECT_SENSITIVEDATAORIGIN, 0, "sensitiveDataOrigin is clear"},
        {TPMA_OBJECT_SIGN_ENCRYPT, 0, "sign is clear"},
        {0, TPMA_OBJECT_DECRYPT, "decrypt is set"},
    };
    for (const auto& c : cases) {
        auto r = doctored(c.clear, c.set);
        ASSERT_FALSE(r.ok()) << c.says;
        EXPECT_NE(r.message().find(c.says), std::string::npos) << r.message();
    }
    auto unchanged = doctored(0, 0);
    EXPECT_TRUE(unchanged.ok()) << unchanged.message();

    auto other = check_key_public(pub.public_area, other_p256_spki());
    ASSERT_FALSE(other.ok());
    EXPECT_NE(other.message().find("not the expected key"), std::string::npos) << other.message();

    auto truncated = check_key_public(std::span(pub.public_area).first(pub.public_area.size() - 1), spki);
    ASSERT_FALSE(truncated.ok());
    EXPECT_NE(truncated.message().find("does not unmarshal"), std::string::npos) << truncated.message();

    auto trailing = pub.public_area;
    trailing.push_back(0);
    auto with_trailing = check_key_public(trailing, spki);
    ASSERT_FALSE(with_trailing.ok());
    EXPECT_NE(with_trailing.message().find("after its TPM2B_PUBLIC"), std::string::npos) << with_trailing.message();
}

TEST_F(tpm_signer_test, quote_is_checked_and_every_refusal_says_why) {
    const std::vector<unsigned> pcrs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}; // more than one TPM2_PCR_Read
    const auto nonce = random_bytes(32);
    std::vector<uint8_t> spki;
    tpm_quote q;
    {
        auto signer = open();
        ASSERT_NE(signer, nullptr);
        spki = signer->info().public_key_der;
        auto r = signer->quote(nonce, pcrs);
        ASSERT_TRUE(r.ok()) << r.message();
        q = std::move(*r);
    }
    ASSERT_EQ(q.pcrs.size(), pcrs.size());
    for (const auto& [index, value] : q.pcrs) {
        EXPECT_EQ(value.size(), 32U) << "PCR " << index;
    }
    auto good = check_quote(q.attest, q.signature, spki, nonce, q.pcrs);
    EXPECT_TRUE(good.ok()) << good.message();

    auto expect_refusal = [&](const status& s, std::string_view says) {
        ASSERT_FALSE(s.ok()) << says;
        EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
    };
    auto wrong_nonce = nonce;
    wrong_nonce[0] ^= 1;
    expect_refusal(check_quote(q.attest, q.signature, spki, wrong_nonce, q.pcrs), "nonce");

    auto altered = q.pcrs;
    altered[1][0] ^= 1;
    expect_refusal(check_quote(q.attest, q.signature, spki, nonce, altered), "pcrDigest");

    auto fewer = q.pcrs;
    fewer.erase(10);
    expect_refusal(check_quote(q.attest, q.signature, spki, nonce, fewer), "other PCRs");
    auto more = q.pcrs;
    more[16] = std::vector<uint8_t>(32, 0);
    expect_refusal(check_quote(q.attest, q.signature, spki, nonce, more), "other PCRs");

    auto flipped = q.attest;
    flipped[flipped.size() / 2] ^= 0x40;
    expect_refusal(check_quote(flipped, q.signature, spki, nonce, q.pcrs), "signature does not verify");
    expect_refusal(check_quote(q.attest, q.signature, other_p256_spki(), nonce, q.pcrs), "signature does not verify");

    // A PCR extended after the quote: the platform the verifier is told
    // about (the values read now) is not the one quoted.
    {
        direct_tpm direct(_tpm->tcti());
        direct.extend(1, random_bytes(32));
    }
    auto signer = open();
    ASSERT_NE(signer, nullptr);
    auto fresh = signer->quote(nonce, pcrs);
    ASSERT_TRUE(fresh.ok()) << fresh.message();
    EXPECT_NE(fresh->pcrs.at(1), q.pcrs.at(1));
    EXPECT_EQ(fresh->pcrs.at(2), q.pcrs.at(2));
    expect_refusal(check_quote(q.attest, q.signature, spki, nonce, fresh->pcrs), "pcrDigest");
    auto fresh_ok = check_quote(fresh->attest, fresh->signature, spki, nonce, fresh->pcrs);
    EXPECT_TRUE(fresh_ok.ok()) << fresh_ok.message();

    // Argument checks.
    EXPECT_FALSE(signer->quote(nonce, {}).ok());
    const std::vector<unsigned> out_of_range{24};
    EXPECT_FALSE(signer->quote(nonce, out_of_range).ok());
    EXPECT_FALSE(signer->quote(random_bytes(65), pcrs).ok());
}

// A quote proves the platform state only if the host cannot make the key
// sign a TPMS_ATTEST of its own: the TPM refuses to sign outside data that
// starts with TPM_GENERATED_VALUE only with a restricted key (Part 3 §20.2),
// so the signing key is restricted and signs through TPM2_Hash's ticket.
TEST_F(tpm_signer_test, a_host_cannot_have_the_key_sign_a_quote_it_made_up) {
    auto signer = open();
    ASSERT_NE(signer, nullptr);
    const std::vector<uint8_t> spki = signer->info().public_key_der; // the signer is opened again below
    const auto nonce = random_bytes(32);
    const std::vector<unsigned> indices{0, 1, 7};
    auto real = signer->quote(nonce, indices);
    ASSERT_TRUE(real.ok()) << real.message();
    ASSERT_TRUE(check_quote(real->attest, real->signature, spki, nonce, real->pcrs).ok());

    // The values an attacker wants seen: the enrolled ones (here those the
    // TPM has now), after PCR 7 was extended by what it loaded.
    {
        direct_tpm direct(_tpm->tcti());
        direct.extend(7, random_bytes(32));
    }
    const std::vector<uint8_t> forged = made_up_quote(nonce, real->pcrs);
    auto signature = signer->sign(forged);
    if (signature.ok()) {
        EXPECT_FALSE(check_quote(forged, *signature, spki, nonce, real->pcrs).ok())
            << "a quote the host made up passes for the TPM's";
    }
    ASSERT_FALSE(signature.ok()) << "the TPM signed a TPMS_ATTEST the host made up";
    EXPECT_NE(signature.message().find("TPM_GENERATED_VALUE"), std::string::npos) << signature.message();
    const uint32_t handle = settings().key_handle;
    signer.reset(); // swtpm serves one connection at a time

    // Past the signer, straight to the TPM, as a host could: the TPM itself
    // refuses, with either ticket.
    std::array<uint8_t, 32> digest{};
    unsigned digest_len = 0;
    ASSERT_EQ(EVP_Digest(forged.data(), forged.size(), digest.data(), &digest_len, EVP_sha256(), nullptr), 1);
    // A format-one response code (Part 2 §6.6) of the TPM itself, whatever
    // the parameter it names.
    const auto is_ticket_error = [](TSS2_RC rc) {
        return (rc & ~TSS2_RC_LAYER_MASK) == rc && (rc & (TPM2_RC_FMT1 | 0x3FU)) == TPM2_RC_TICKET;
    };
    {
        direct_tpm direct(_tpm->tcti());
        const TSS2_RC no_ticket = direct.sign_digest(handle, digest);
        EXPECT_TRUE(is_ticket_error(no_ticket))
            << "TPM2_Sign of a digest the host computed, without a ticket: 0x" << std::hex << no_ticket;
        const TSS2_RC hashed = direct.hash_and_sign(handle, forged);
        EXPECT_TRUE(is_ticket_error(hashed))
            << "TPM2_Hash gives no ticket for TPM_GENERATED_VALUE: 0x" << std::hex << hashed;
        // An unrestricted key, as the signer made before, signs it: the
        // reason the signer and the Registrar refuse such a key.
        constexpr uint32_t unrestricted = 0x81000201;
        direct.persist_unrestricted_signing_key(unrestricted);
        EXPECT_EQ(direct.sign_digest(unrestricted, digest), TSS2_RC_SUCCESS);
    }
    signer = open();
    ASSERT_NE(signer, nullptr);

    // Other octets still sign, through TPM2_Hash (at most 1024 octets) or a
    // hash sequence (longer), and verify as ES256 over the message.
    for (const size_t len : {size_t{0}, size_t{1}, size_t{200}, size_t{1024}, size_t{1025}, size_t{5000}}) {
        auto message = random_bytes(len);
        if (len >= 4) {
            message[0] = 0x84; // not the magic
        }
        auto sig = signer->sign(message);
        ASSERT_TRUE(sig.ok()) << len << ": " << sig.message();
        EXPECT_TRUE(verify_signature(signature_algorithm::es256, spki, message, *sig).ok()) << len;
    }
    // The magic past the first octet is nobody's concern.
    auto inner = made_up_quote(nonce, real->pcrs);
    inner.insert(inner.begin(), 0x84);
    EXPECT_TRUE(signer->sign(inner).ok());
}

TEST_F(tpm_signer_test, endorsement_key_is_a_p256_spki) {
    auto signer = open();
    ASSERT_NE(signer, nullptr);
    auto ek = signer->endorsement_key_der();
    ASSERT_TRUE(ek.ok()) << ek.message();
    const unsigned char* p = ek->data();
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(d2i_PUBKEY(nullptr, &p, static_cast<long>(ek->size())),
                                                            EVP_PKEY_free);
    ASSERT_NE(key, nullptr);
    EXPECT_TRUE(EVP_PKEY_is_a(key.get(), "EC"));
    EXPECT_EQ(EVP_PKEY_get_bits(key.get()), 256);
    EXPECT_NE(*ek, signer->info().public_key_der);
    // The EK is derived from the endorsement seed: the same key every time,
    // and the transient copy was flushed (no handle exhaustion).
    for (int i = 0; i < 5; ++i) {
        auto again = signer->endorsement_key_der();
        ASSERT_TRUE(again.ok()) << again.message();
        EXPECT_EQ(*again, *ek);
    }
}

/// A DER SubjectPublicKeyInfo of a fresh software key ("EC" P-256 or "RSA").
std::vector<uint8_t> software_spki(const char* type) {
    return spki_of(std::string_view(type) == "RSA" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048})
                                                   : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
}

TEST_F(tpm_signer_test, a_credential_made_for_the_ek_and_the_signing_key_opens_in_that_tpm_only) {
    auto signer = open();
    ASSERT_NE(signer, nullptr);
    auto ek = signer->endorsement_key_der();
    ASSERT_TRUE(ek) << ek.message();
    const std::vector<uint8_t>& name = signer->key_public().name;
    for (int round = 0; round < 3; ++round) { // the EK and the session are flushed each time
        std::vector<uint8_t> secret(32);
        ASSERT_EQ(RAND_bytes(secret.data(), static_cast<int>(secret.size())), 1);
        auto blob = make_credential(*ek, name, secret);
        ASSERT_TRUE(blob) << blob.message();
        EXPECT_EQ(blob->encrypted_secret.size(), 2U + 32U + 2U + 32U) << "the ephemeral P-256 point";
        auto opened = signer->activate_credential(*blob);
        ASSERT_TRUE(opened) << opened.message();
        EXPECT_EQ(*opened, secret);
    }
    const std::vector<uint8_t> secret(16, 0x5c);

    // Made for another object's Name: the TPM's integrity check refuses it.
    auto other_name = name;
    other_name.back() ^= 0x01;
    auto for_other = make_credential(*ek, other_name, secret);
    ASSERT_TRUE(for_other) << for_other.message();
    auto refused = signer->activate_credential(*for_other);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.message().find("TPM2_ActivateCredential"), std::string::npos) << refused.message();

    // Made for another TPM's EK (the signing key claimed to be in a TPM it
    // is not in): this TPM cannot open it.
    test::swtpm second;
    auto other_tpm = open_on(second);
    ASSERT_NE(other_tpm, nullptr);
    auto other_ek = other_tpm->endorsement_key_der();
    ASSERT_TRUE(other_ek) << other_ek.message();
    ASSERT_NE(*other_ek, *ek);
    auto wrong_ek = make_credential(*other_ek, name, secret);
    ASSERT_TRUE(wrong_ek) << wrong_ek.message();
    EXPECT_FALSE(signer->activate_credential(*wrong_ek));
    // ... and that TPM cannot open one for this TPM's key either.
    auto for_this = make_credential(*ek, name, secret);
    ASSERT_TRUE(for_this);
    EXPECT_FALSE(other_tpm->activate_credential(*for_this));
    // A tampered blob is refused too.
    auto tampered = *for_this;
    tampered.id_object.back() ^= 0x01;
    EXPECT_FALSE(signer->activate_credential(tampered));
    EXPECT_TRUE(signer->activate_credential(*for_this)) << "the untampered one still opens";
}

/// The SubjectPublicKeyInfo of a DER certificate's key; empty when it is
/// not a certificate.
std::vector<uint8_t> certificate_key(const std::vector<uint8_t>& cert_der) {
    const unsigned char* p = cert_der.data();
    std::unique_ptr<X509, decltype(&X509_free)> x(d2i_X509(nullptr, &p, static_cast<long>(cert_der.size())), X509_free);
    return x == nullptr ? std::vector<uint8_t>() : spki_of(X509_get_pubkey(x.get()));
}

/// The key type of a DER SubjectPublicKeyInfo: "RSA 2048", "EC 384", ...
std::string key_type(const std::vector<uint8_t>& spki) {
    const unsigned char* p = spki.data();
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())),
                                                            EVP_PKEY_free);
    if (key == nullptr) {
        return "not a key";
    }
    return std::string(EVP_PKEY_is_a(key.get(), "RSA") ? "RSA " : "EC ") + std::to_string(EVP_PKEY_get_bits(key.get()));
}

TEST_F(tpm_signer_test, every_ek_template_derives_its_own_key_and_opens_credentials_sealed_to_it) {
    struct want {
        const char* name;
        ek_template id;
        const char* type;
        size_t point_len; ///< TPMS_ECC_POINT of the ephemeral key; 0: RSA-OAEP of a modulus
        size_t digest_len;
    };
    const std::vector<want> templates{
        {"L-1", ek_template::l1, "RSA 2048", 0, 32},
        {"L-2", ek_template::l2, "EC 256", 2 + 32 + 2 + 32, 32},
        {"H-1", ek_template::h1, "RSA 2048", 0, 32},
        {"H-2", ek_template::h2, "EC 256", 2 + 32 + 2 + 32, 32},
        {"H-3", ek_template::h3, "EC 384", 2 + 48 + 2 + 48, 48},
        {"H-4", ek_template::h4, "EC 521", 2 + 66 + 2 + 66, 64},
        {"H-6", ek_template::h6, "RSA 3072", 0, 48},
    };
    std::set<std::vector<uint8_t>> keys;
    std::vector<uint8_t> h3_key;
    for (const auto& w : templates) {
        SCOPED_TRACE(w.name);
        auto id = parse_ek_template(w.name);
        ASSERT_TRUE(id) << id.message();
        ASSERT_EQ(*id, w.id);
        auto s = settings();
        s.ek = w.id;
        auto signer = open(s);
        ASSERT_NE(signer, nullptr);
        EXPECT_EQ(signer->endorsement_template(), ek_template::automatic) << "before the EK is derived";
        auto ek = signer->endorsement_key_der();
        ASSERT_TRUE(ek) << ek.message();
        EXPECT_EQ(signer->endorsement_template(), w.id);
        EXPECT_EQ(key_type(*ek), w.type);
        auto again = signer->endorsement_key_der();
        ASSERT_TRUE(again) << again.message();
        EXPECT_EQ(*again, *ek) << "a template derives the same key every time";
        keys.insert(*ek);
        auto profile = endorsement_key_profile_of(*ek);
        ASSERT_TRUE(profile) << profile.message();
        EXPECT_EQ(profile->kind, ek_template_kind(w.id));
        EXPECT_EQ(profile->digest_len, w.digest_len);
        // The TPM opens what the Registrar seals to this EK: the seed's
        // sealing, KDFa, KDFe, AES-CFB and the HMAC in the template's
        // nameAlg and key sizes, and the EK's authorization (a policy
        // session for the low range, its authValue for the high range).
        const auto secret = random_bytes(32);
        auto blob = make_credential(*ek, signer->key_public().name, secret);
        ASSERT_TRUE(blob) << blob.message();
        if (w.point_len != 0) {
            EXPECT_EQ(blob->encrypted_secret.size(), w.point_len);
        }
        EXPECT_EQ(blob->id_object.size(), 2 + w.digest_len + 2 + secret.size());
        auto opened = signer->activate_credential(*blob);
        ASSERT_TRUE(opened) << opened.message();
        EXPECT_EQ(*opened, secret);
        if (w.id == ek_template::h3) {
            h3_key = *ek;
        }
    }
    EXPECT_EQ(keys.size(), templates.size()) << "each template makes a key of its own";

    // A credential sealed to the H-3 EK does not open with another EK of
    // the same TPM.
    ASSERT_FALSE(h3_key.empty());
    auto s = settings();
    s.ek = ek_template::h2;
    auto signer = open(s);
    ASSERT_NE(signer, nullptr);
    auto blob = make_credential(h3_key, signer->key_public().name, random_bytes(32));
    ASSERT_TRUE(blob) << blob.message();
    EXPECT_FALSE(signer->activate_credential(*blob));

    auto bad = parse_ek_template("P-384");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.message().find("'P-384' is not an EK template; one of auto, L-1 (RSA 2048)"), std::string::npos)
        << bad.message();
    EXPECT_NE(bad.message().find("H-4 (ECC NIST P-521), H-6 (RSA 3072), H-7 (RSA 4096)"), std::string::npos)
        << bad.message();
    EXPECT_EQ(parse_ek_template("auto").value(), ek_template::automatic);
    EXPECT_EQ(ek_certificate_index(ek_template::h6), 0x01C0001CU);
    EXPECT_EQ(ek_certificate_index(ek_template::h7), 0x01C0001EU);
    EXPECT_EQ(ek_certificate_index(ek_template::h3), 0x01C00016U);
    EXPECT_EQ(ek_certificate_index(ek_template::l2), 0x01C0000AU);
}

TEST_F(tpm_signer_test, a_manufactured_tpm_gives_its_p384_ek_and_certificate_when_asked_for_template_h3) {
    // swtpm_setup --ecc certifies an ECC P-384 EK at the high-range index of
    // template H-3 (0x01C00016) besides the RSA 2048 one of L-1.
    test::swtpm made(test::swtpm::make::ek_certificates);
    auto s = settings();
    s.tcti = made.tcti();
    s.ek = ek_template::h3;
    auto signer = open(s);
    ASSERT_NE(signer, nullptr);
    auto cert = signer->endorsement_certificate_der();
    ASSERT_TRUE(cert) << cert.message();
    ASSERT_FALSE(cert->empty()) << "NV 0x01C00016 holds the P-384 EK's certificate";
    auto ek = signer->endorsement_key_der();
    ASSERT_TRUE(ek) << ek.message();
    const auto cert_key = certificate_key(*cert);
    EXPECT_EQ(key_type(*ek), "EC 384");
    EXPECT_EQ(cert_key, *ek) << "template H-3 derives the key the manufacturer certified";
    const auto secret = random_bytes(20);
    auto blob = make_credential(*ek, signer->key_public().name, secret);
    ASSERT_TRUE(blob) << blob.message();
    auto opened = signer->activate_credential(*blob);
    ASSERT_TRUE(opened) << opened.message();
    EXPECT_EQ(*opened, secret);
    signer.reset();

    // Asked for L-2, whose certificate this TPM does not hold: its P-256 EK
    // and no certificate.
    s.ek = ek_template::l2;
    auto l2 = open(s);
    ASSERT_NE(l2, nullptr);
    auto none = l2->endorsement_certificate_der();
    ASSERT_TRUE(none) << none.message();
    EXPECT_TRUE(none->empty());
    auto l2_key = l2->endorsement_key_der();
    ASSERT_TRUE(l2_key) << l2_key.message();
    EXPECT_EQ(key_type(*l2_key), "EC 256");
}

TEST_F(tpm_signer_test, a_tpm_manufactured_with_rsa_3072_gives_that_ek_and_certificate_for_template_h6) {
    // swtpm_setup --rsa-keysize 3072 certifies an RSA 3072 EK at the index
    // of template H-6 (0x01C0001C) instead of the RSA 2048 one of L-1.
    test::swtpm made(test::swtpm::make::ek_certificates_rsa3072);
    auto s = settings();
    s.tcti = made.tcti();
    s.ek = ek_template::h6;
    auto signer = open(s);
    ASSERT_NE(signer, nullptr);
    auto cert = signer->endorsement_certificate_der();
    ASSERT_TRUE(cert) << cert.message();
    ASSERT_FALSE(cert->empty()) << "NV 0x01C0001C holds the RSA 3072 EK's certificate";
    auto ek = signer->endorsement_key_der();
    ASSERT_TRUE(ek) << ek.message();
    EXPECT_EQ(key_type(*ek), "RSA 3072");
    EXPECT_EQ(certificate_key(*cert), *ek) << "template H-6 derives the key the manufacturer certified";
    const auto secret = random_bytes(32);
    auto blob = make_credential(*ek, signer->key_public().name, secret);
    ASSERT_TRUE(blob) << blob.message();
    EXPECT_EQ(blob->encrypted_secret.size(), 384U);
    auto opened = signer->activate_credential(*blob);
    ASSERT_TRUE(opened) << opened.message();
    EXPECT_EQ(*opened, secret);
    signer.reset();

    // No RSA 2048 certificate at L-1 on this TPM: asked for it, the signer
    // derives the key and says there is no certificate.
    s.ek = ek_template::l1;
    auto l1 = open(s);
    ASSERT_NE(l1, nullptr);
    auto none = l1->endorsement_certificate_der();
    ASSERT_TRUE(none) << none.message();
    EXPECT_TRUE(none->empty());
    l1.reset();

    // swtpm has no RSA 4096: template H-7 is refused by the TPM, named.
    s.ek = ek_template::h7;
    auto h7 = open(s);
    ASSERT_NE(h7, nullptr);
    auto refused = h7->endorsement_key_der();
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.message().find("H-7"), std::string::npos) << refused.message();
}

TEST_F(tpm_signer_test, a_manufactured_tpm_shows_its_ek_certificate_and_opens_credentials_with_that_ek) {
    // swtpm_setup certifies the RSA 2048 EK (template L-1) but not the ECC
    // P-256 one (L-2): the signer uses the EK the TPM vouches for.
    test::swtpm made(test::swtpm::make::ek_certificates);
    auto signer = open_on(made);
    ASSERT_NE(signer, nullptr);
    auto cert = signer->endorsement_certificate_der();
    ASSERT_TRUE(cert) << cert.message();
    ASSERT_FALSE(cert->empty());
    auto ek = signer->endorsement_key_der();
    ASSERT_TRUE(ek) << ek.message();
    const auto cert_key = certificate_key(*cert);
    ASSERT_FALSE(cert_key.empty()) << "the NV index holds a DER certificate";
    EXPECT_EQ(cert_key, *ek) << "the certificate is of the EK the signer derives";
    EXPECT_EQ(key_type(cert_key), "RSA 2048");
    EXPECT_EQ(signer->endorsement_template(), ek_template::l1) << "automatic takes the low range first";
    // The credential path through the RSA EK (RSA-OAEP with label IDENTITY).
    const std::vector<uint8_t> secret(32, 0x3c);
    auto blob = make_credential(*ek, signer->key_public().name, secret);
    ASSERT_TRUE(blob) << blob.message();
    EXPECT_EQ(blob->encrypted_secret.size(), 256U);
    auto opened = signer->activate_credential(*blob);
    ASSERT_TRUE(opened) << opened.message();
    EXPECT_EQ(*opened, secret);
    // A plain TPM holds no certificate.
    auto plain = open();
    ASSERT_NE(plain, nullptr);
    auto none = plain->endorsement_certificate_der();
    ASSERT_TRUE(none) << none.message();
    EXPECT_TRUE(none->empty());
}

/// A key on P-256's field and equation, but with 2G as the generator: a
/// curve given by explicit parameters that no curve name stands for.
EVP_PKEY* p256_with_generator_2g() {
    using group_ptr = std::unique_ptr<EC_GROUP, decltype(&EC_GROUP_free)>;
    using point_ptr = std::unique_ptr<EC_POINT, decltype(&EC_POINT_free)>;
    using bn_ptr = std::unique_ptr<BIGNUM, decltype(&BN_free)>;
    group_ptr group(EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1), EC_GROUP_free);
    point_ptr g2(EC_POINT_new(group.get()), EC_POINT_free);
    bn_ptr p(BN_new(), BN_free);
    bn_ptr a(BN_new(), BN_free);
    bn_ptr b(BN_new(), BN_free);
    std::array<uint8_t, 65> generator{};
    if (EC_POINT_dbl(group.get(), g2.get(), EC_GROUP_get0_generator(group.get()), nullptr) != 1 ||
        EC_POINT_point2oct(group.get(), g2.get(), POINT_CONVERSION_UNCOMPRESSED, generator.data(), generator.size(),
                           nullptr) != generator.size() ||
        EC_GROUP_get_curve(group.get(), p.get(), a.get(), b.get(), nullptr) != 1) {
        return nullptr;
    }
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
    const unsigned cofactor = 1;
    if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_EC_FIELD_TYPE, SN_X9_62_prime_field, 0) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_EC_P, p.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_EC_A, a.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_EC_B, b.get()) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_EC_GENERATOR, generator.data(), generator.size()) !=
            1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_EC_ORDER, EC_GROUP_get0_order(group.get())) != 1 ||
        OSSL_PARAM_BLD_push_uint(bld.get(), OSSL_PKEY_PARAM_EC_COFACTOR, cofactor) != 1) {
        return nullptr;
    }
    std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(OSSL_PARAM_BLD_to_param(bld.get()), OSSL_PARAM_free);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr),
                                                                    EVP_PKEY_CTX_free);
    EVP_PKEY* key = nullptr;
    if (params == nullptr || ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_params(ctx.get(), params.get()) != 1 || EVP_PKEY_generate(ctx.get(), &key) != 1) {
        return nullptr;
    }
    return key;
}

TEST(tpm_credential, make_credential_refuses_what_it_cannot_seal_and_seals_to_rsa_eks) {
    const std::vector<uint8_t> name = [] {
        std::vector<uint8_t> n{0x00, 0x0B};
        n.resize(34, 0xab);
        return n;
    }();
    const auto ec = software_spki("EC");
    const std::vector<uint8_t> secret(32, 0x11);
    auto expect_refused = [](const result<tpm_credential_blob>& r, std::string_view says) {
        ASSERT_FALSE(r);
        EXPECT_NE(r.message().find(says), std::string::npos) << r.message();
    };
    expect_refused(make_credential(ec, name, {}), "1 to 32 octets, not 0");
    expect_refused(make_credential(ec, name, std::vector<uint8_t>(33, 1)), "not 33");
    expect_refused(make_credential(ec, std::vector<uint8_t>(name.begin(), name.end() - 1), secret), "SHA-256 Name");
    expect_refused(make_credential(std::vector<uint8_t>{0x30, 0x00}, name, secret), "SubjectPublicKeyInfo");
    // An RSA 2048 EK (template L-1): the seed under RSA-OAEP, one modulus long.
    auto rsa = make_credential(software_spki("RSA"), name, secret);
    ASSERT_TRUE(rsa) << rsa.message();
    EXPECT_EQ(rsa->encrypted_secret.size(), 256U);
    // TPM2B_DIGEST(outerHMAC) || encIdentity (TPM2B of the 32-octet secret).
    EXPECT_EQ(rsa->id_object.size(), 2U + 32U + 2U + 32U);
    EXPECT_EQ(rsa->id_object[0], 0x00);
    EXPECT_EQ(rsa->id_object[1], 0x20);
    // Only the key types of the TCG EK templates.
    const auto p384 = spki_of(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
    auto profile = endorsement_key_profile_of(p384);
    ASSERT_TRUE(profile) << profile.message();
    EXPECT_EQ(profile->kind, "ECC NIST P-384");
    EXPECT_EQ(profile->digest, "SHA384");
    EXPECT_EQ(profile->sym_key_len, 32U);
    profile = endorsement_key_profile_of(spki_of(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521")));
    ASSERT_TRUE(profile) << profile.message();
    EXPECT_EQ(profile->digest, "SHA512");
    const auto k256 = spki_of(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp256k1"));
    expect_refused(make_credential(k256, name, secret), "on curve secp256k1");
    profile = endorsement_key_profile_of(spki_of(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{4096})));
    ASSERT_TRUE(profile) << profile.message();
    EXPECT_EQ(profile->kind, "RSA 4096");
    EXPECT_EQ(profile->digest, "SHA384");
    EXPECT_EQ(profile->sym_key_len, 32U);
    const auto rsa3072 = spki_of(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{3072}));
    auto sealed3072 = make_credential(rsa3072, name, secret);
    ASSERT_TRUE(sealed3072) << sealed3072.message();
    EXPECT_EQ(sealed3072->encrypted_secret.size(), 384U) << "RSA-OAEP under the 3072-bit modulus";
    EXPECT_EQ(sealed3072->id_object.size(), 2U + 48U + 2U + 32U) << "a SHA-384 outer HMAC";
    const auto rsa1024 = spki_of(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
    expect_refused(make_credential(rsa1024, name, secret), "an RSA 1024 key");
    expect_refused(make_credential(spki_of(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")), name, secret),
                   "neither RSA nor EC");
    // P-256 spelt out as explicit parameters is P-256 (OpenSSL finds its
    // name); with another generator it is a curve no name stands for.
    EVP_PKEY* explicit_p256 = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    ASSERT_EQ(
        EVP_PKEY_set_utf8_string_param(explicit_p256, OSSL_PKEY_PARAM_EC_ENCODING, OSSL_PKEY_EC_ENCODING_EXPLICIT), 1);
    profile = endorsement_key_profile_of(spki_of(explicit_p256));
    ASSERT_TRUE(profile) << profile.message();
    EXPECT_EQ(profile->kind, "ECC NIST P-256");
    EVP_PKEY* unnamed = p256_with_generator_2g();
    ASSERT_NE(unnamed, nullptr);
    expect_refused(make_credential(spki_of(unnamed), name, secret), "without a named curve");
    auto trailing = ec;
    trailing.push_back(0x00);
    expect_refused(make_credential(trailing, name, secret), "not a DER SubjectPublicKeyInfo");
    // Every blob is sealed afresh.
    auto again = make_credential(ec, name, secret);
    auto once = make_credential(ec, name, secret);
    ASSERT_TRUE(again && once);
    EXPECT_NE(again->id_object, once->id_object);
}

TEST_F(tpm_signer_test, refuses_what_is_not_ours_at_its_handles) {
    constexpr uint32_t foreign_key = 0x81000200;
    constexpr uint32_t foreign_index = 0x01500200;
    {
        direct_tpm direct(_tpm->tcti());
        direct.persist_storage_key(foreign_key);
        direct.define_ordinary_index(foreign_index);
    }
    auto s = settings();
    s.key_handle = foreign_key;
    auto bad_key = tpm_signer::open(s);
    ASSERT_FALSE(bad_key.ok());
    EXPECT_NE(bad_key.message().find("0x81000200"), std::string::npos) << bad_key.message();
    EXPECT_NE(bad_key.message().find("not a usable signing key"), std::string::npos) << bad_key.message();

    // A signing key in every way but restricted (its quotes would prove
    // nothing): refused, saying so.
    constexpr uint32_t unrestricted_key = 0x81000201;
    {
        direct_tpm direct(_tpm->tcti());
        direct.persist_unrestricted_signing_key(unrestricted_key);
    }
    s = settings();
    s.key_handle = unrestricted_key;
    auto unrestricted = tpm_signer::open(s);
    ASSERT_FALSE(unrestricted.ok());
    EXPECT_NE(unrestricted.message().find("0x81000201"), std::string::npos) << unrestricted.message();
    EXPECT_NE(unrestricted.message().find("restricted is clear"), std::string::npos) << unrestricted.message();
    EXPECT_NE(unrestricted.message().find("evict it"), std::string::npos) << unrestricted.message();

    s = settings();
    s.counter_index = foreign_index;
    auto bad_counter = tpm_signer::open(s);
    ASSERT_FALSE(bad_counter.ok());
    EXPECT_NE(bad_counter.message().find("0x01500200"), std::string::npos) << bad_counter.message();
    EXPECT_NE(bad_counter.message().find("not a counter"), std::string::npos) << bad_counter.message();

    s = settings();
    s.key_handle = 0x80000001;
    EXPECT_FALSE(tpm_signer::open(s).ok());
    s = settings();
    s.counter_index = 0x81000001;
    EXPECT_FALSE(tpm_signer::open(s).ok());
}

TEST_F(tpm_signer_fault_test, bad_tcti_and_closed_port_fail_clearly_at_open) {
    auto s = settings();
    s.tcti = "no-such-tcti:whatever";
    auto bad = tpm_signer::open(s);
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("no-such-tcti:whatever"), std::string::npos) << bad.message();
    EXPECT_NE(bad.message().find("0x"), std::string::npos) << bad.message();

    const std::string tcti = _tpm->tcti();
    _tpm->stop();
    s = settings();
    s.tcti = tcti;
    const auto start = clock_type::now();
    auto closed = tpm_signer::open(s);
    ASSERT_FALSE(closed.ok());
    EXPECT_LT(ms_since(start), 2000.0);
    EXPECT_NE(closed.message().find(tcti), std::string::npos) << closed.message();
    EXPECT_NE(closed.message().find("cannot open the TPM"), std::string::npos) << closed.message();

    s.tcti.clear();
    EXPECT_FALSE(tpm_signer::open(s).ok());
}

TEST_F(tpm_signer_fault_test, dead_tpm_gives_errors_and_a_restarted_one_is_reconnected) {
    auto signer = open();
    ASSERT_NE(signer, nullptr);
    const auto message = bytes("before");
    ASSERT_TRUE(signer->sign(message).ok());
    auto before = signer->next_counter();
    ASSERT_TRUE(before.ok()) << before.message();

    _tpm->stop();
    for (int i = 0; i < 3; ++i) {
        const auto start = clock_type::now();
        auto sig = signer->sign(message);
        ASSERT_FALSE(sig.ok());
        EXPECT_LT(ms_since(start), 2000.0);
        EXPECT_NE(sig.message().find(_tpm->tcti()), std::string::npos) << sig.message();
        EXPECT_NE(sig.message().find("0x000a"), std::string::npos) << "names the TCTI-layer code: " << sig.message();
        auto c = signer->next_counter();
        ASSERT_FALSE(c.ok());
        EXPECT_NE(c.message().find(_tpm->tcti()), std::string::npos) << c.message();
    }

    _tpm->start();
    auto sig = signer->sign(message);
    ASSERT_TRUE(sig.ok()) << sig.message();
    EXPECT_TRUE(verify_signature(signature_algorithm::es256, signer->info().public_key_der, message, *sig).ok());
    auto after = signer->next_counter();
    ASSERT_TRUE(after.ok()) << after.message();
    EXPECT_GT(*after, *before);

    // A restart between two calls, with no failed call in between: the
    // stale connection is noticed and replaced within the one call.
    _tpm->stop();
    _tpm->start();
    auto again = signer->next_counter();
    ASSERT_TRUE(again.ok()) << again.message();
    EXPECT_GT(*again, *after);
}

TEST_F(tpm_signer_fault_test, hung_tpm_is_bounded_by_the_command_timeout) {
    auto s = settings();
    s.command_timeout = 1s;
    auto signer = open(s);
    ASSERT_NE(signer, nullptr);
    const auto message = bytes("hung");
    auto before = signer->next_counter();
    ASSERT_TRUE(before.ok()) << before.message();

    _tpm->pause();
    auto start = clock_type::now();
    auto sig = signer->sign(message);
    ASSERT_FALSE(sig.ok());
    const double waited = ms_since(start);
    EXPECT_GE(waited, 900.0);
    EXPECT_LT(waited, 3000.0);
    EXPECT_NE(sig.message().find("did not answer within 1000 ms"), std::string::npos) << sig.message();
    EXPECT_NE(sig.message().find(_tpm->tcti()), std::string::npos) << sig.message();

    // The command is still with the TPM: the next call fails at once.
    start = clock_type::now();
    auto c = signer->next_counter();
    ASSERT_FALSE(c.ok());
    EXPECT_LT(ms_since(start), 500.0);
    EXPECT_NE(c.message().find("still not answered"), std::string::npos) << c.message();

    _tpm->resume();
    std::optional<uint64_t> after;
    const auto deadline = clock_type::now() + 10s;
    while (!after && clock_type::now() < deadline) {
        if (auto n = signer->next_counter(); n.ok()) {
            after = *n;
        } else {
            std::this_thread::sleep_for(50ms);
        }
    }
    ASSERT_TRUE(after.has_value());
    EXPECT_GT(*after, *before);
    auto sig2 = signer->sign(message);
    ASSERT_TRUE(sig2.ok()) << sig2.message();
    EXPECT_TRUE(verify_signature(signature_algorithm::es256, signer->info().public_key_der, message, *sig2).ok());
}

TEST_F(tpm_signer_fault_test, destroying_a_signer_stuck_on_a_hung_tpm_does_not_hang) {
    auto s = settings();
    s.command_timeout = 500ms;
    auto signer = open(s);
    ASSERT_NE(signer, nullptr);
    _tpm->pause();
    EXPECT_FALSE(signer->sign(bytes("x")).ok());
    const auto start = clock_type::now();
    signer.reset();
    EXPECT_LT(ms_since(start), 1000.0);
    // Stopping swtpm closes the socket the abandoned command waits on.
    _tpm->stop();
    std::this_thread::sleep_for(100ms);
}

} // namespace
} // namespace ptpsec::hsm
