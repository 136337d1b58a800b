// The PKCS#11 signer against a real SoftHSM2 token: ES256 and Ed25519
// signatures that verify, the key found again on re-opening, the counter
// file (fsynced, renamed, bound to its key, never reset), the key's
// protection as the token reports it, the operator's mistakes (PIN, module,
// token label) and a session killed under the signer.

#include <hsm/pkcs11_signer.h>
#include <hsm/signature.h>

#include "softhsm.h"

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <p11-kit/pkcs11.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::hsm {
namespace {

using test::pkcs11_direct;
using test::read_file;
using test::softhsm_token;
using test::write_file;

std::vector<uint8_t> bytes(std::string_view s) {
    return std::vector<uint8_t>(s.begin(), s.end());
}

pkcs11_settings settings_for(const softhsm_token& token, signature_algorithm alg = signature_algorithm::es256,
                             std::string key_label = "batch-signer") {
    pkcs11_settings s;
    s.module_path = test::softhsm_module;
    s.token_label = token.label();
    s.user_pin = token.user_pin();
    s.key_label = std::move(key_label);
    s.algorithm = alg;
    s.counter_path = token.file(s.key_label + ".counter");
    s.signer_id = "observer-1";
    return s;
}

/// The counter the file says, after checking the whole file's form.
uint64_t counter_in_file(const std::string& path) {
    const std::string text = read_file(path);
    const size_t at = text.find("\ncounter ");
    EXPECT_TRUE(text.starts_with("ptpsec pkcs11 counter 1\nkey-spki-sha256 ")) << text;
    EXPECT_NE(at, std::string::npos) << text;
    if (at == std::string::npos) {
        return 0;
    }
    return std::stoull(text.substr(at + 9));
}

#define FAIL_WITHOUT_SOFTHSM()                                                                                         \
    if (!test::softhsm_available()) {                                                                                  \
        GTEST_FAIL() << "SoftHSM2 is not installed (make deps installs it)";                                           \
    }

void signs_and_verifies(signature_algorithm alg) {
    softhsm_token token;
    auto opened = pkcs11_signer::open(settings_for(token, alg));
    ASSERT_TRUE(opened) << opened.message();
    pkcs11_signer& signer = **opened;

    const signer_info& info = signer.info();
    EXPECT_EQ(info.kind, backend_kind::pkcs11);
    EXPECT_EQ(info.algorithm, alg);
    EXPECT_TRUE(info.hardware_rooted);
    const pkcs11_enrolment& e = signer.enrolment();
    EXPECT_EQ(info.device,
              fmt::format("pkcs11 token {} serial {} (SoftHSM v2) key batch-signer", token.label(), e.token_serial));
    EXPECT_EQ(e.token_label, token.label());
    EXPECT_EQ(e.token_manufacturer, "SoftHSM project");
    EXPECT_EQ(e.token_model, "SoftHSM v2");
    EXPECT_EQ(e.token_serial.size(), 16U);
    EXPECT_EQ(e.signer_id, "observer-1");
    EXPECT_EQ(e.key_label, "batch-signer");
    EXPECT_EQ(e.key_id.size(), 16U);
    EXPECT_EQ(e.public_key_der, info.public_key_der);
    EXPECT_TRUE(e.always_sensitive);
    EXPECT_TRUE(e.never_extractable);

    const auto message = bytes("Sig_structure of batch 1");
    auto sig = signer.sign(message);
    ASSERT_TRUE(sig) << sig.message();
    EXPECT_EQ(sig->size(), 64U);
    auto good = verify_signature(alg, info.public_key_der, message, *sig);
    EXPECT_TRUE(good) << good.message();

    auto changed = message;
    changed.back() ^= 0x01;
    EXPECT_FALSE(verify_signature(alg, info.public_key_der, changed, *sig));
    auto flipped = *sig;
    flipped[10] ^= 0x80;
    EXPECT_FALSE(verify_signature(alg, info.public_key_der, message, flipped));

    // An empty message and a long one sign too.
    for (const size_t size : {size_t{0}, size_t{100000}}) {
        const std::vector<uint8_t> m(size, 0x5a);
        auto s = signer.sign(m);
        ASSERT_TRUE(s) << s.message();
        EXPECT_TRUE(verify_signature(alg, info.public_key_der, m, *s));
    }
}

TEST(pkcs11_signer, es256_signatures_verify_and_a_changed_message_does_not) {
    FAIL_WITHOUT_SOFTHSM();
    signs_and_verifies(signature_algorithm::es256);
}

TEST(pkcs11_signer, eddsa_signatures_verify_and_a_changed_message_does_not) {
    FAIL_WITHOUT_SOFTHSM();
    signs_and_verifies(signature_algorithm::eddsa);
}

TEST(pkcs11_signer, eddsa_on_a_token_without_ed25519_says_so) {
    FAIL_WITHOUT_SOFTHSM();
    // SoftHSM2 can hide mechanisms from a slot (softhsm2.conf(5)). 2.6.1
    // reads the first name of a "-" list with its minus sign, so that one
    // (CKM_MD5) only fills that first place and hides nothing.
    softhsm_token token("no-ed25519", "slots.mechanisms = -CKM_MD5,CKM_EDDSA,CKM_EC_EDWARDS_KEY_PAIR_GEN");
    auto opened = pkcs11_signer::open(settings_for(token, signature_algorithm::eddsa));
    ASSERT_FALSE(opened);
    EXPECT_NE(opened.message().find("token \"no-ed25519\" has no Ed25519 mechanism (CKM_EDDSA)"), std::string::npos)
        << opened.message();
    // ES256 on the same token still works.
    auto es = pkcs11_signer::open(settings_for(token, signature_algorithm::es256));
    ASSERT_TRUE(es) << es.message();
}

TEST(pkcs11_signer, reopening_finds_the_same_key_and_the_counter_continues) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    const auto settings = settings_for(token);
    std::vector<uint8_t> public_key;
    std::vector<uint8_t> key_id;
    {
        auto opened = pkcs11_signer::open(settings);
        ASSERT_TRUE(opened) << opened.message();
        public_key = (*opened)->info().public_key_der;
        key_id = (*opened)->enrolment().key_id;
        auto c0 = (*opened)->read_counter();
        ASSERT_TRUE(c0) << c0.message();
        EXPECT_EQ(*c0, 0U);
        for (uint64_t want = 1; want <= 3; ++want) {
            auto c = (*opened)->next_counter();
            ASSERT_TRUE(c) << c.message();
            EXPECT_EQ(*c, want);
        }
    }
    {
        auto opened = pkcs11_signer::open(settings);
        ASSERT_TRUE(opened) << opened.message();
        EXPECT_EQ((*opened)->info().public_key_der, public_key);
        EXPECT_EQ((*opened)->enrolment().key_id, key_id);
        auto c = (*opened)->read_counter();
        ASSERT_TRUE(c) << c.message();
        EXPECT_EQ(*c, 3U);
        auto next = (*opened)->next_counter();
        ASSERT_TRUE(next) << next.message();
        EXPECT_EQ(*next, 4U);
        const auto message = bytes("after a restart");
        auto sig = (*opened)->sign(message);
        ASSERT_TRUE(sig) << sig.message();
        EXPECT_TRUE(verify_signature(signature_algorithm::es256, public_key, message, *sig));
    }
    // A provisioned token: no generation allowed, the key is there.
    auto strict = settings;
    strict.generate_key = false;
    auto opened = pkcs11_signer::open(strict);
    ASSERT_TRUE(opened) << opened.message();
    EXPECT_EQ((*opened)->info().public_key_der, public_key);
}

TEST(pkcs11_signer, a_missing_key_is_not_generated_when_generation_is_off) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    auto settings = settings_for(token);
    settings.generate_key = false;
    auto opened = pkcs11_signer::open(settings);
    ASSERT_FALSE(opened);
    EXPECT_NE(opened.message().find("no private key labelled \"batch-signer\""), std::string::npos) << opened.message();
}

TEST(pkcs11_signer, the_counter_file_is_replaced_durably_on_every_call_and_increases_across_reopens) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    const auto settings = settings_for(token);
    const std::string& path = settings.counter_path;
    uint64_t last = 0;
    for (int round = 0; round < 3; ++round) {
        auto opened = pkcs11_signer::open(settings);
        ASSERT_TRUE(opened) << opened.message();
        for (int i = 0; i < 5; ++i) {
            struct stat before {};
            const bool existed = ::stat(path.c_str(), &before) == 0;
            auto c = (*opened)->next_counter();
            ASSERT_TRUE(c) << c.message();
            EXPECT_GT(*c, last);
            EXPECT_EQ(*c, last + 1);
            last = *c;
            // The new value is in the file when next_counter returns, the
            // file is a new one (renamed over the old: a new inode), and no
            // temporary file is left.
            EXPECT_EQ(counter_in_file(path), *c);
            struct stat after {};
            ASSERT_EQ(::stat(path.c_str(), &after), 0);
            if (existed) {
                EXPECT_NE(after.st_ino, before.st_ino);
            }
            EXPECT_EQ(after.st_mode & 0777, 0600U);
            EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
            auto r = (*opened)->read_counter();
            ASSERT_TRUE(r) << r.message();
            EXPECT_EQ(*r, *c);
        }
    }
    EXPECT_EQ(last, 15U);
}

TEST(pkcs11_signer, a_corrupt_counter_file_is_refused_and_left_alone) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    const auto settings = settings_for(token);
    {
        auto opened = pkcs11_signer::open(settings);
        ASSERT_TRUE(opened) << opened.message();
        ASSERT_TRUE((*opened)->next_counter());
        ASSERT_TRUE((*opened)->next_counter());

        // Corrupted while the signer runs: both calls refuse, nothing is reset.
        write_file(settings.counter_path, "ptpsec pkcs11 counter 1\ngarbage\n");
        auto next = (*opened)->next_counter();
        ASSERT_FALSE(next);
        EXPECT_NE(next.message().find(fmt::format("counter file {} is corrupt", settings.counter_path)),
                  std::string::npos)
            << next.message();
        EXPECT_NE(next.message().find("refusing to reset"), std::string::npos) << next.message();
        auto read = (*opened)->read_counter();
        ASSERT_FALSE(read);
        EXPECT_NE(read.message().find("is corrupt"), std::string::npos) << read.message();
        EXPECT_EQ(read_file(settings.counter_path), "ptpsec pkcs11 counter 1\ngarbage\n");
    }
    // Each of these is refused at open, naming the file.
    for (const std::string& text : {
             std::string("ptpsec pkcs11 counter 1\n"),
             std::string("hello\n"),
             std::string("ptpsec pkcs11 counter 1\nkey-spki-sha256 ") + std::string(64, 'a') + "\ncounter 12x\n",
             std::string("ptpsec pkcs11 counter 1\nkey-spki-sha256 ") + std::string(64, 'a') +
                 "\ncounter 99999999999999999999999\n",
             std::string("ptpsec pkcs11 counter 1\nkey-spki-sha256 ") + std::string(63, 'a') + "\ncounter 1\n",
             std::string(),
         }) {
        write_file(settings.counter_path, text);
        auto opened = pkcs11_signer::open(settings);
        ASSERT_FALSE(opened) << text;
        EXPECT_NE(opened.message().find(fmt::format("counter file {} is corrupt", settings.counter_path)),
                  std::string::npos)
            << opened.message();
        EXPECT_EQ(read_file(settings.counter_path), text);
    }
}

TEST(pkcs11_signer, the_counter_file_of_another_key_is_refused) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    const auto first = settings_for(token, signature_algorithm::es256, "first-key");
    const auto second = settings_for(token, signature_algorithm::es256, "second-key");
    {
        auto a = pkcs11_signer::open(first);
        ASSERT_TRUE(a) << a.message();
        ASSERT_TRUE((*a)->next_counter());
        auto b = pkcs11_signer::open(second);
        ASSERT_TRUE(b) << b.message();
        for (int i = 0; i < 5; ++i) {
            ASSERT_TRUE((*b)->next_counter());
        }
        // The first key's (lower) counter file copied over the second's,
        // while the second signer runs: refused, not used.
        std::filesystem::copy_file(first.counter_path, second.counter_path,
                                   std::filesystem::copy_options::overwrite_existing);
        auto next = (*b)->next_counter();
        ASSERT_FALSE(next);
        EXPECT_NE(next.message().find(fmt::format("counter file {} belongs to another key", second.counter_path)),
                  std::string::npos)
            << next.message();
        EXPECT_EQ(counter_in_file(second.counter_path), 1U);
    }
    // And at open.
    auto opened = pkcs11_signer::open(second);
    ASSERT_FALSE(opened);
    EXPECT_NE(opened.message().find("belongs to another key"), std::string::npos) << opened.message();
}

TEST(pkcs11_signer, two_signers_cannot_share_a_counter_file) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    const auto settings = settings_for(token);
    auto a = pkcs11_signer::open(settings);
    ASSERT_TRUE(a) << a.message();
    auto b = pkcs11_signer::open(settings);
    ASSERT_FALSE(b);
    EXPECT_NE(b.message().find("is in use by another signer"), std::string::npos) << b.message();
}

TEST(pkcs11_signer, the_private_key_is_sensitive_and_not_extractable_on_the_token) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    for (const auto alg : {signature_algorithm::es256, signature_algorithm::eddsa}) {
        const std::string label = alg == signature_algorithm::es256 ? "p256-key" : "ed25519-key";
        auto opened = pkcs11_signer::open(settings_for(token, alg, label));
        ASSERT_TRUE(opened) << opened.message();

        pkcs11_direct direct;
        CK_FUNCTION_LIST* f = direct.functions();
        const CK_SESSION_HANDLE s = direct.user_session(token.label(), token.user_pin());
        CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
        std::string l = label;
        CK_ATTRIBUTE templ[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, l.data(), l.size()}};
        ASSERT_EQ(f->C_FindObjectsInit(s, templ, 2), CKR_OK);
        CK_OBJECT_HANDLE keys[4];
        CK_ULONG n = 0;
        ASSERT_EQ(f->C_FindObjects(s, keys, 4, &n), CKR_OK);
        ASSERT_EQ(f->C_FindObjectsFinal(s), CKR_OK);
        ASSERT_EQ(n, 1U);

        CK_BBOOL token_obj = CK_FALSE, priv = CK_FALSE, sensitive = CK_FALSE, extractable = CK_TRUE,
                 always_sensitive = CK_FALSE, never_extractable = CK_FALSE, sign = CK_FALSE, derive = CK_TRUE;
        CK_ATTRIBUTE attrs[] = {
            {CKA_TOKEN, &token_obj, 1},
            {CKA_PRIVATE, &priv, 1},
            {CKA_SENSITIVE, &sensitive, 1},
            {CKA_EXTRACTABLE, &extractable, 1},
            {CKA_ALWAYS_SENSITIVE, &always_sensitive, 1},
            {CKA_NEVER_EXTRACTABLE, &never_extractable, 1},
            {CKA_SIGN, &sign, 1},
            {CKA_DERIVE, &derive, 1},
        };
        ASSERT_EQ(f->C_GetAttributeValue(s, keys[0], attrs, 8), CKR_OK);
        EXPECT_EQ(token_obj, CK_TRUE);
        EXPECT_EQ(priv, CK_TRUE);
        EXPECT_EQ(sensitive, CK_TRUE);
        EXPECT_EQ(extractable, CK_FALSE);
        EXPECT_EQ(always_sensitive, CK_TRUE);
        EXPECT_EQ(never_extractable, CK_TRUE);
        EXPECT_EQ(sign, CK_TRUE);
        EXPECT_EQ(derive, CK_FALSE);

        // PKCS#11 v2.40 §5.7: the private value of a sensitive key is not
        // given out, whatever the buffer.
        CK_ATTRIBUTE value{CKA_VALUE, nullptr, 0};
        EXPECT_EQ(f->C_GetAttributeValue(s, keys[0], &value, 1), CKR_ATTRIBUTE_SENSITIVE);
        std::vector<uint8_t> buf(512);
        CK_ATTRIBUTE value2{CKA_VALUE, buf.data(), buf.size()};
        EXPECT_EQ(f->C_GetAttributeValue(s, keys[0], &value2, 1), CKR_ATTRIBUTE_SENSITIVE);
        // Nor may it be flipped to extractable (v2.40 §4.9: CKA_EXTRACTABLE
        // can only go from true to false).
        CK_BBOOL yes = CK_TRUE;
        CK_ATTRIBUTE make_extractable{CKA_EXTRACTABLE, &yes, 1};
        EXPECT_NE(f->C_SetAttributeValue(s, keys[0], &make_extractable, 1), CKR_OK);
    }
}

TEST(pkcs11_signer, an_extractable_or_unsensitive_key_is_refused) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    {
        pkcs11_direct direct;
        CK_FUNCTION_LIST* f = direct.functions();
        const CK_SESSION_HANDLE s = direct.user_session(token.label(), token.user_pin());
        unsigned char p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
        CK_BBOOL yes = CK_TRUE;
        CK_BBOOL no = CK_FALSE;
        const struct {
            const char* label;
            CK_BBOOL sensitive;
            CK_BBOOL extractable;
        } weak[] = {{"extractable-key", CK_TRUE, CK_TRUE}, {"unsensitive-key", CK_FALSE, CK_FALSE}};
        for (const auto& w : weak) {
            std::string label = w.label;
            CK_BBOOL sensitive = w.sensitive;
            CK_BBOOL extractable = w.extractable;
            CK_ATTRIBUTE pub[] = {{CKA_TOKEN, &yes, 1},
                                  {CKA_VERIFY, &yes, 1},
                                  {CKA_EC_PARAMS, p256, sizeof p256},
                                  {CKA_LABEL, label.data(), label.size()}};
            CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &yes, 1},
                                   {CKA_PRIVATE, &yes, 1},
                                   {CKA_SIGN, &yes, 1},
                                   {CKA_SENSITIVE, &sensitive, 1},
                                   {CKA_EXTRACTABLE, &extractable, 1},
                                   {CKA_LABEL, label.data(), label.size()},
                                   {CKA_DERIVE, &no, 1}};
            CK_MECHANISM mech{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
            CK_OBJECT_HANDLE hp = 0, hk = 0;
            ASSERT_EQ(f->C_GenerateKeyPair(s, &mech, pub, 4, priv, 7, &hp, &hk), CKR_OK);
        }
    }
    auto extractable = pkcs11_signer::open(settings_for(token, signature_algorithm::es256, "extractable-key"));
    ASSERT_FALSE(extractable);
    EXPECT_NE(extractable.message().find("key \"extractable-key\" on token \"ptpsec-test\" is extractable"),
              std::string::npos)
        << extractable.message();
    auto unsensitive = pkcs11_signer::open(settings_for(token, signature_algorithm::es256, "unsensitive-key"));
    ASSERT_FALSE(unsensitive);
    EXPECT_NE(unsensitive.message().find("is not sensitive"), std::string::npos) << unsensitive.message();
}

TEST(pkcs11_signer, a_key_of_the_other_algorithm_is_refused) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    {
        auto es = pkcs11_signer::open(settings_for(token, signature_algorithm::es256, "the-key"));
        ASSERT_TRUE(es) << es.message();
    }
    auto settings = settings_for(token, signature_algorithm::eddsa, "the-key");
    settings.counter_path = token.file("other.counter");
    auto ed = pkcs11_signer::open(settings);
    ASSERT_FALSE(ed);
    EXPECT_NE(ed.message().find("is not an Ed25519 (CKK_EC_EDWARDS) key"), std::string::npos) << ed.message();
}

TEST(pkcs11_signer, operator_mistakes_are_named) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;

    auto wrong_pin = settings_for(token);
    wrong_pin.user_pin = "not-the-pin";
    auto a = pkcs11_signer::open(wrong_pin);
    ASSERT_FALSE(a);
    EXPECT_NE(a.message().find("token \"ptpsec-test\": C_Login as user: CKR_PIN_INCORRECT"), std::string::npos)
        << a.message();

    auto no_module = settings_for(token);
    no_module.module_path = token.file("no-such-module.so");
    auto b = pkcs11_signer::open(no_module);
    ASSERT_FALSE(b);
    EXPECT_NE(b.message().find(fmt::format("PKCS#11 module {}: No such file or directory", no_module.module_path)),
              std::string::npos)
        << b.message();

    auto not_a_module = settings_for(token);
    not_a_module.module_path = token.conf();
    auto c = pkcs11_signer::open(not_a_module);
    ASSERT_FALSE(c);
    EXPECT_NE(c.message().find(fmt::format("PKCS#11 module {} could not be loaded", token.conf())), std::string::npos)
        << c.message();

    auto unknown_token = settings_for(token);
    unknown_token.token_label = "no-such-token";
    auto d = pkcs11_signer::open(unknown_token);
    ASSERT_FALSE(d);
    EXPECT_NE(d.message().find("no token labelled \"no-such-token\" (tokens present: \"ptpsec-test\")"),
              std::string::npos)
        << d.message();

    auto two_pins = settings_for(token);
    two_pins.user_pin_file = token.file("pin");
    auto e = pkcs11_signer::open(two_pins);
    ASSERT_FALSE(e);
    EXPECT_NE(e.message().find("exactly one of the user PIN and the user PIN file"), std::string::npos) << e.message();
}

TEST(pkcs11_signer, the_pin_can_come_from_a_file_that_only_its_owner_reads) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    auto settings = settings_for(token);
    settings.user_pin.clear();
    settings.user_pin_file = token.file("user.pin");
    write_file(settings.user_pin_file, token.user_pin() + "\n");
    ASSERT_EQ(::chmod(settings.user_pin_file.c_str(), 0600), 0);
    {
        auto opened = pkcs11_signer::open(settings);
        ASSERT_TRUE(opened) << opened.message();
        EXPECT_TRUE((*opened)->sign(bytes("x")));
    }
    ASSERT_EQ(::chmod(settings.user_pin_file.c_str(), 0644), 0);
    auto readable = pkcs11_signer::open(settings);
    ASSERT_FALSE(readable);
    EXPECT_NE(readable.message().find("can be read or written by anyone"), std::string::npos) << readable.message();

    settings.user_pin_file = token.file("missing.pin");
    auto missing = pkcs11_signer::open(settings);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.message().find(fmt::format("PIN file {}: No such file", settings.user_pin_file)),
              std::string::npos)
        << missing.message();
}

TEST(pkcs11_signer, a_session_closed_under_the_signer_fails_or_recovers_and_the_next_sign_works) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    for (const auto alg : {signature_algorithm::es256, signature_algorithm::eddsa}) {
        auto settings = settings_for(token, alg, alg == signature_algorithm::es256 ? "p256" : "ed25519");
        auto opened = pkcs11_signer::open(settings);
        ASSERT_TRUE(opened) << opened.message();
        pkcs11_signer& signer = **opened;
        const auto message = bytes("batch");
        ASSERT_TRUE(signer.sign(message));
        EXPECT_EQ(signer.session_reopens(), 0U);

        for (int round = 1; round <= 3; ++round) {
            pkcs11_direct direct;
            // Every session of the process on the slot ends, the signer's
            // too, and with the last one the login (PKCS#11 v2.40 §5.6).
            ASSERT_EQ(direct.functions()->C_CloseAllSessions(direct.slot(token.label())), CKR_OK);

            auto after = signer.sign(message);
            if (!after) {
                EXPECT_NE(after.message().find("CKR_SESSION_HANDLE_INVALID"), std::string::npos) << after.message();
            } else {
                EXPECT_TRUE(verify_signature(alg, signer.info().public_key_der, message, *after));
            }
            auto next = signer.sign(message);
            ASSERT_TRUE(next) << next.message();
            EXPECT_TRUE(verify_signature(alg, signer.info().public_key_der, message, *next));
            EXPECT_EQ(signer.session_reopens(), static_cast<uint64_t>(round));
        }
        // The counter never touched the token and carries on.
        auto c = signer.next_counter();
        ASSERT_TRUE(c) << c.message();
        EXPECT_EQ(*c, 1U);
    }
}

TEST(pkcs11_signer, a_module_finalised_under_the_signer_is_initialised_again) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    auto opened = pkcs11_signer::open(settings_for(token));
    ASSERT_TRUE(opened) << opened.message();
    pkcs11_signer& signer = **opened;
    const auto message = bytes("batch");
    ASSERT_TRUE(signer.sign(message));
    {
        pkcs11_direct direct;
        // Another user of the module in the process finalises it behind
        // p11-kit's back: SoftHSM2 forgets every session and login.
        ASSERT_EQ(direct.functions()->C_Finalize(nullptr), CKR_OK);
    }
    auto after = signer.sign(message);
    if (!after) {
        EXPECT_NE(after.message().find("CKR_CRYPTOKI_NOT_INITIALIZED"), std::string::npos) << after.message();
    }
    auto next = signer.sign(message);
    ASSERT_TRUE(next) << next.message();
    EXPECT_TRUE(verify_signature(signature_algorithm::es256, signer.info().public_key_der, message, *next));
    EXPECT_EQ(signer.session_reopens(), 1U);
}

TEST(pkcs11_signer, time_per_signature_and_per_counter) {
    FAIL_WITHOUT_SOFTHSM();
    softhsm_token token;
    for (const auto alg : {signature_algorithm::es256, signature_algorithm::eddsa}) {
        auto opened = pkcs11_signer::open(settings_for(token, alg, alg == signature_algorithm::es256 ? "p" : "e"));
        ASSERT_TRUE(opened) << opened.message();
        const std::vector<uint8_t> message(200, 0xa5); // about a batch token's Sig_structure
        constexpr int n = 100;
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i) {
            ASSERT_TRUE((*opened)->sign(message));
        }
        const auto sign_us =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / n;
        // What the check of each signature against the public key costs.
        auto sig = (*opened)->sign(message);
        ASSERT_TRUE(sig);
        start = std::chrono::steady_clock::now();
        for (int i = 0; i < n; ++i) {
            ASSERT_TRUE(verify_signature(alg, (*opened)->info().public_key_der, message, *sig));
        }
        const auto verify_us =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / n;
        start = std::chrono::steady_clock::now();
        constexpr int counters = 20;
        for (int i = 0; i < counters; ++i) {
            ASSERT_TRUE((*opened)->next_counter());
        }
        const auto counter_us =
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / counters;
        std::printf("[ pkcs11   ] %s on SoftHSM2: %.0f us per signature (of which %.0f us checking it), %.0f us "
                    "per next_counter\n",
                    alg == signature_algorithm::es256 ? "ES256" : "EdDSA", sign_us, verify_us, counter_us);
    }
}

} // namespace
} // namespace ptpsec::hsm
