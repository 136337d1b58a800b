// COSE_Sign1 (hsm/cose.h) against the published examples: RFC 9052
// Appendix C.2.1 (ES256, kid '11', "This is the content.") and the
// cose-wg/Examples sign1-tests that share its key (sign-pass-01 .. 03);
// our own messages with the software signer, round trips and every
// refusal of the strict parser.

#include <hsm/cose.h>
#include <hsm/signature.h>
#include <hsm/software_signer.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::hsm {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> from_hex(std::string_view hex) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<uint8_t>(std::stoul(std::string(hex.substr(i, 2)), nullptr, 16)));
    }
    return out;
}

std::vector<uint8_t> concat(std::initializer_list<std::vector<uint8_t>> parts) {
    std::vector<uint8_t> out;
    for (const auto& p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

// The cose-wg example key "11" (P-256): x and y of its JWK, base64url-decoded.
const auto example_x = from_hex("bac5b11cad8f99f9c72b05cf4b9e26d244dc189f745228255a219a86d6a09eff");
const auto example_y = from_hex("20138bf82dc1b6d562be0fa54ab7804a3a64b6d72ccfed6b6fb6ed28bbfc117e");

// SubjectPublicKeyInfo of a P-256 point (RFC 5480 §2: id-ecPublicKey,
// secp256r1, uncompressed point 04 || x || y).
std::vector<uint8_t> p256_spki(const std::vector<uint8_t>& x, const std::vector<uint8_t>& y) {
    return concat({from_hex("3059301306072a8648ce3d020106082a8648ce3d030107034200"), {0x04}, x, y});
}

// RFC 9052 Appendix C.2.1: a COSE_Sign1 with ES256 in the protected header
// and kid '11' in the unprotected one - exactly the shape of our tokens.
const auto rfc9052_c21 =
    from_hex("d28443a10126a10442313154546869732069732074686520636f6e74656e742e58408eb33e4ca31d1c465ab05aac34cc6b"
             "23d58fef5c083106c4d25a91aef0b0117e2af9a291aa32e14ab834dc56ed2a223444547e01f11d3b0916e5a4c345cacb36");
// cose-wg/Examples sign1-tests/sign-pass-02.json ("External": external_aad
// 11aa22bb33cc44dd55006699) and its ToBeSign_hex.
const auto sign_pass_02 =
    from_hex("D28443A10126A10442313154546869732069732074686520636F6E74656E742E5840EAE868ECC176883766C5DC5BA5B8DCA25"
             "DAB3C2E56A551CE5705B793914348E155388B10C4F1B59A6733EAB416870A945111A4B2FBDBEF33A77234B1DEFF2F9B");
const auto sign_pass_02_tbs = from_hex("846A5369676E61747572653143A101264C11AA22BB33CC44DD5500669954546869732069732"
                                       "074686520636F6E74656E742E");
// sign-pass-01 ("Redo protected": protected h'a0', alg unprotected) and
// sign-pass-03 ("Remove CBOR Tag"): valid COSE, outside our profile.
const auto sign_pass_01 =
    from_hex("D28441A0A201260442313154546869732069732074686520636F6E74656E742E5840EAE868ECC176883766C5DC5BA5B8DCA2"
             "5DAB3C2E56A551CE5705B793914348E11A02E5F0344BF2D4EE5C7FD75A68A9F5E0B3CC1F1FC1409C189566586FF9D610");
const auto sign_pass_03 =
    from_hex("8443A10126A10442313154546869732069732074686520636F6E74656E742E5840EAE868ECC176883766C5DC5BA5B8DCA25DA"
             "B3C2E56A551CE5705B793914348E19F43D6C6BA654472DA301B645B293C9BA939295B97C4BDB847782BFF384C5794");

const std::string_view content = "This is the content.";

TEST(cose, the_rfc9052_c21_example_parses_verifies_and_encodes_back_to_the_same_octets) {
    auto msg = parse_cose_sign1(rfc9052_c21);
    ASSERT_TRUE(msg) << msg.message();
    EXPECT_EQ(msg->algorithm, signature_algorithm::es256);
    EXPECT_EQ(msg->protected_header, from_hex("a10126"));
    EXPECT_EQ(msg->kid, from_hex("3131"));
    EXPECT_EQ(std::string(msg->payload.begin(), msg->payload.end()), content);
    const auto key = p256_spki(example_x, example_y);
    EXPECT_TRUE(verify_cose_sign1(*msg, signature_algorithm::es256, key));
    auto back = encode_cose_sign1(*msg);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, rfc9052_c21);

    auto tampered = *msg;
    tampered.payload[0] ^= 0x20;
    EXPECT_EQ(verify_cose_sign1(tampered, signature_algorithm::es256, key).message(),
              "COSE_Sign1: the ECDSA signature does not verify");
    // A point that is not on the curve is no key at all.
    EXPECT_EQ(verify_cose_sign1(*msg, signature_algorithm::es256, p256_spki(example_y, example_x)).message(),
              "COSE_Sign1: the public key is not a DER SubjectPublicKeyInfo");
}

TEST(cose, sig_structure_matches_the_published_to_be_signed_octets) {
    auto msg = parse_cose_sign1(sign_pass_02);
    ASSERT_TRUE(msg) << msg.message();
    const auto aad = from_hex("11aa22bb33cc44dd55006699");
    auto tbs = sig_structure(msg->protected_header, aad, msg->payload);
    ASSERT_TRUE(tbs);
    EXPECT_EQ(*tbs, sign_pass_02_tbs);
    const auto key = p256_spki(example_x, example_y);
    EXPECT_TRUE(verify_cose_sign1(*msg, signature_algorithm::es256, key, aad));
    // Without the external data it was signed with, it does not verify.
    EXPECT_FALSE(verify_cose_sign1(*msg, signature_algorithm::es256, key));
}

TEST(cose, examples_outside_the_profile_are_refused_with_the_reason) {
    EXPECT_EQ(parse_cose_sign1(sign_pass_03).message(), "COSE_Sign1: expected tag 18 at offset 0, found an array");
    EXPECT_EQ(parse_cose_sign1(sign_pass_01).message(), "COSE_Sign1: the protected header has no algorithm (label 1)");
}

class cose_signing : public ::testing::Test {
protected:
    void SetUp() override {
        std::string tmpl = (fs::temp_directory_path() / "ptpsec-cose-XXXXXX").string();
        ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
        _dir = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(_dir, ec);
    }
    std::unique_ptr<software_signer> make(signature_algorithm alg) {
        const std::string name = alg == signature_algorithm::es256 ? "es256" : "eddsa";
        auto s = software_signer::open({_dir / (name + ".pem"), _dir / (name + ".counter"), alg});
        EXPECT_TRUE(s) << s.message();
        return s ? std::move(*s) : nullptr;
    }
    fs::path _dir;
};

TEST_F(cose_signing, our_messages_round_trip_and_verify_for_both_algorithms) {
    const std::vector<uint8_t> payload = {0xA1, 0x01, 0x02};
    const std::vector<uint8_t> kid = {'p', 't', 'p', '-', '1'};
    for (const auto alg : {signature_algorithm::es256, signature_algorithm::eddsa}) {
        auto s = make(alg);
        ASSERT_TRUE(s);
        auto msg = sign_cose_sign1(*s, kid, payload);
        ASSERT_TRUE(msg) << msg.message();
        auto encoded = encode_cose_sign1(*msg);
        ASSERT_TRUE(encoded);
        // 0xd2: tag 18; 0x84: array of 4; 0x43 a1 01 26|27: {1: -7|-8}.
        ASSERT_GT(encoded->size(), 6U);
        EXPECT_EQ((*encoded)[0], 0xD2);
        EXPECT_EQ((*encoded)[1], 0x84);
        EXPECT_EQ(std::vector<uint8_t>(encoded->begin() + 2, encoded->begin() + 6),
                  (std::vector<uint8_t>{0x43, 0xA1, 0x01,
                                        alg == signature_algorithm::es256 ? uint8_t{0x26} : uint8_t{0x27}}));
        auto parsed = parse_cose_sign1(*encoded);
        ASSERT_TRUE(parsed) << parsed.message();
        EXPECT_EQ(parsed->kid, kid);
        EXPECT_EQ(parsed->payload, payload);
        EXPECT_EQ(*encode_cose_sign1(*parsed), *encoded);
        EXPECT_TRUE(verify_cose_sign1(*parsed, alg, s->info().public_key_der));
        // The signature is over the Sig_structure, not the bare payload.
        auto tbs = sig_structure(parsed->protected_header, {}, payload);
        ASSERT_TRUE(tbs);
        EXPECT_TRUE(verify_signature(alg, s->info().public_key_der, *tbs, parsed->signature));
        EXPECT_FALSE(verify_signature(alg, s->info().public_key_der, payload, parsed->signature));
    }
}

TEST_F(cose_signing, the_algorithm_is_checked_against_the_registered_one_first) {
    auto ed = make(signature_algorithm::eddsa);
    ASSERT_TRUE(ed);
    auto msg = sign_cose_sign1(*ed, std::vector<uint8_t>{'k'}, std::vector<uint8_t>{1});
    ASSERT_TRUE(msg);
    EXPECT_EQ(verify_cose_sign1(*msg, signature_algorithm::es256, ed->info().public_key_der).message(),
              "COSE_Sign1: the message names EdDSA (-8) but the key is registered for ES256 (-7)");
    auto es = make(signature_algorithm::es256);
    ASSERT_TRUE(es);
    EXPECT_EQ(verify_cose_sign1(*msg, signature_algorithm::eddsa, es->info().public_key_der).message(),
              "COSE_Sign1: EdDSA needs an Ed25519 public key");
}

// The C.2.1 message with one part replaced, as hex pieces.
std::vector<uint8_t> with(std::string_view prot, std::string_view unprot, std::string_view payload,
                          std::string_view sig, std::string_view head = "d284") {
    return from_hex(std::string(head) + std::string(prot) + std::string(unprot) + std::string(payload) +
                    std::string(sig));
}

constexpr std::string_view good_prot = "43a10126";
constexpr std::string_view good_unprot = "a104423131";
constexpr std::string_view good_payload = "4401020304";
const std::string good_sig = "5840" + std::string(128, '0');

TEST(cose, every_refusal_of_the_parser_names_the_problem) {
    // The pieces assemble into a message that parses.
    ASSERT_TRUE(parse_cose_sign1(with(good_prot, good_unprot, good_payload, good_sig)));
    struct bad {
        std::vector<uint8_t> message;
        const char* why;
    };
    const bad cases[] = {
        {with(good_prot, good_unprot, good_payload, good_sig, "d184"),
         "COSE_Sign1: expected tag 18 at offset 0, found tag 17"},
        {with(good_prot, good_unprot, good_payload, "", "d283"),
         "COSE_Sign1: the tagged item at offset 1 is not an array of 4"},
        {with("a10126", good_unprot, good_payload, good_sig),
         "COSE_Sign1: the protected header at offset 2 is a map, not a byte string"},
        {with("4101", good_unprot, good_payload, good_sig),
         "COSE_Sign1: the protected header is an unsigned integer, not a map"},
        {with("41a0", good_unprot, good_payload, good_sig),
         "COSE_Sign1: the protected header has no algorithm (label 1)"},
        {with("45a201260300", good_unprot, good_payload, good_sig),
         "COSE_Sign1: the protected header holds more than the algorithm (label 1)"},
        {with("44a1012600", good_unprot, good_payload, good_sig),
         "COSE_Sign1: the protected header is not deterministic CBOR: CBOR: 1 trailing octets after the item at "
         "offset 3"},
        {with("44a1013800", good_unprot, good_payload, good_sig),
         "COSE_Sign1: the protected header is not deterministic CBOR: CBOR: an integer is not in its shortest "
         "form (RFC 8949 §4.2.1) at offset 2"},
        {with("44a1016145", good_unprot, good_payload, good_sig),
         "COSE_Sign1: the algorithm is a text string, not an integer"},
        {with("44a1013822", good_unprot, good_payload, good_sig),
         "COSE_Sign1: algorithm -35 is not ES256 (-7) or EdDSA (-8)"},
        {with(good_prot, "4131", good_payload, good_sig),
         "COSE_Sign1: the unprotected header at offset 6 is a byte string, not a map"},
        {with(good_prot, "a0", good_payload, good_sig),
         "COSE_Sign1: the unprotected header at offset 6 has no kid (label 4) byte string"},
        {with(good_prot, "a1046131", good_payload, good_sig),
         "COSE_Sign1: the unprotected header at offset 6 has no kid (label 4) byte string"},
        {with(good_prot, "a203000442313", good_payload, good_sig), nullptr},
        {with(good_prot,
              "a20300044231"
              "31",
              good_payload, good_sig),
         "COSE_Sign1: the unprotected header at offset 6 holds more than the kid"},
        {with(good_prot, good_unprot, "f6", good_sig),
         "COSE_Sign1: the payload at offset 11 is null, not an attached byte string"},
        {with(good_prot, good_unprot, good_payload, "5820" + std::string(64, '0')),
         "COSE_Sign1: the signature at offset 16 is not a byte string of 64 octets"},
        {with(good_prot, good_unprot, good_payload, "00"),
         "COSE_Sign1: the signature at offset 16 is not a byte string of 64 octets"},
        {from_hex("d284"), "COSE_Sign1: CBOR: an array of 4 items cannot fit in the 0 octets that remain at offset 1"},
    };
    for (const auto& c : cases) {
        auto r = parse_cose_sign1(c.message);
        ASSERT_FALSE(r) << (c.why != nullptr ? c.why : "(malformed)");
        if (c.why != nullptr) {
            EXPECT_EQ(r.message(), c.why);
        }
    }
}

} // namespace
} // namespace ptpsec::hsm
