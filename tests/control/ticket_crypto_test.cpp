// Tickets (control/ke/ticket_crypto.h): AES-SIV against RFC 5297's own
// vectors, against Nettle (the AES-SIV chrony's NTS uses, independent of
// OpenSSL) in the AEAD form with empty associated data and a 16-octet nonce,
// and tickets sealed and opened whole.

#include <control/ke/ticket_crypto.h>

#include <gtest/gtest.h>
#include <nettle/siv-cmac.h>

#include <array>
#include <string>

namespace ptpsec::ke {
namespace {

using nts::aead_algorithm;

std::vector<uint8_t> hex(std::string_view h) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < h.size(); i += 2) {
        out.push_back(static_cast<uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    }
    return out;
}

std::vector<uint8_t> counting(size_t n, uint8_t first) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>(first + i * 7);
    }
    return v;
}

// RFC 5297 Appendix A.1: deterministic, one associated-data component.
TEST(siv, rfc5297_a1_deterministic) {
    const auto key = hex("fffefdfcfbfaf9f8f7f6f5f4f3f2f1f0f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
    const auto ad = hex("101112131415161718191a1b1c1d1e1f2021222324252627");
    const auto plain = hex("112233445566778899aabbccddee");
    const auto expected = hex("85632d07c6e8f37f950acd320a2ecc93"
                              "40c02b9690c4dc04daef7f6afe5c");
    const std::span<const uint8_t> parts[] = {ad};
    auto sealed = siv_seal(aead_algorithm::aes_siv_cmac_256, key, parts, plain);
    ASSERT_TRUE(sealed) << sealed.message();
    EXPECT_EQ(*sealed, expected);
    auto opened = siv_open(aead_algorithm::aes_siv_cmac_256, key, parts, expected);
    ASSERT_TRUE(opened) << opened.message();
    EXPECT_TRUE(std::equal(opened->begin(), opened->end(), plain.begin(), plain.end()));
}

// RFC 5297 Appendix A.2: two associated-data components and a nonce.
TEST(siv, rfc5297_a2_nonce_based) {
    const auto key = hex("7f7e7d7c7b7a797877767574737271704041424344454647"
                         "48494a4b4c4d4e4f");
    const auto ad1 = hex("00112233445566778899aabbccddeeffdeaddadadeaddadaffeeddccbbaa99887766554433221100");
    const auto ad2 = hex("102030405060708090a0");
    const auto nonce = hex("09f911029d74e35bd84156c5635688c0");
    const auto plain = hex("7468697320697320736f6d6520706c61696e7465787420746f20656e6372797074207573696e67"
                           "205349562d414553");
    const auto expected = hex("7bdb6e3b432667eb06f4d14bff2fbd0f"
                              "cb900f2fddbe404326601965c889bf17dba77ceb094fa663b7a3f748ba8af829"
                              "ea64ad544a272e9c485b62a3fd5c0d");
    const std::span<const uint8_t> parts[] = {ad1, ad2, nonce};
    auto sealed = siv_seal(aead_algorithm::aes_siv_cmac_256, key, parts, plain);
    ASSERT_TRUE(sealed) << sealed.message();
    EXPECT_EQ(*sealed, expected);
    auto opened = siv_open(aead_algorithm::aes_siv_cmac_256, key, parts, expected);
    ASSERT_TRUE(opened) << opened.message();
    EXPECT_TRUE(std::equal(opened->begin(), opened->end(), plain.begin(), plain.end()));
    // The components are ordered: swapping the two AD components breaks it.
    const std::span<const uint8_t> swapped[] = {ad2, ad1, nonce};
    EXPECT_FALSE(siv_open(aead_algorithm::aes_siv_cmac_256, key, swapped, expected));
}

// The AEAD form of §5.2: A empty but still an S2V component, then N. Nettle's
// siv_cmac_*_encrypt_message is the same construction written independently.
TEST(siv, aead_form_matches_nettle) {
    for (size_t len : {1UL, 15UL, 16UL, 17UL, 41UL, 73UL}) {
        const auto nonce = counting(ticket_nonce_len, 0xa0);
        const auto plain = counting(len, 3);
        {
            const auto key = counting(32, 1);
            auto ours = aead_seal(aead_algorithm::aes_siv_cmac_256, key, nonce, plain);
            ASSERT_TRUE(ours) << ours.message();
            siv_cmac_aes128_ctx ctx{};
            siv_cmac_aes128_set_key(&ctx, key.data());
            std::vector<uint8_t> theirs(len + SIV_DIGEST_SIZE);
            siv_cmac_aes128_encrypt_message(&ctx, nonce.size(), nonce.data(), 0, nullptr, theirs.size(), theirs.data(),
                                            plain.data());
            EXPECT_EQ(*ours, theirs) << "AEAD_AES_SIV_CMAC_256, " << len << " octets";
        }
        {
            const auto key = counting(64, 9);
            auto ours = aead_seal(aead_algorithm::aes_siv_cmac_512, key, nonce, plain);
            ASSERT_TRUE(ours) << ours.message();
            siv_cmac_aes256_ctx ctx{};
            siv_cmac_aes256_set_key(&ctx, key.data());
            std::vector<uint8_t> theirs(len + SIV_DIGEST_SIZE);
            siv_cmac_aes256_encrypt_message(&ctx, nonce.size(), nonce.data(), 0, nullptr, theirs.size(), theirs.data(),
                                            plain.data());
            EXPECT_EQ(*ours, theirs) << "AEAD_AES_SIV_CMAC_512, " << len << " octets";
        }
    }
}

TEST(siv, every_algorithm_round_trips_and_refuses_tampering) {
    for (auto alg :
         {aead_algorithm::aes_siv_cmac_256, aead_algorithm::aes_siv_cmac_384, aead_algorithm::aes_siv_cmac_512}) {
        SCOPED_TRACE(aead_name(alg));
        const auto key = counting(aead_key_len(alg), 5);
        const auto nonce = counting(ticket_nonce_len, 0x40);
        const auto plain = counting(41, 11);
        auto sealed = aead_seal(alg, key, nonce, plain);
        ASSERT_TRUE(sealed) << sealed.message();
        ASSERT_EQ(sealed->size(), plain.size() + siv_tag_len);
        auto opened = aead_open(alg, key, nonce, *sealed);
        ASSERT_TRUE(opened) << opened.message();
        EXPECT_TRUE(std::equal(opened->begin(), opened->end(), plain.begin(), plain.end()));
        for (size_t i = 0; i < sealed->size(); ++i) {
            auto bad = *sealed;
            bad[i] ^= 0x01;
            auto r = aead_open(alg, key, nonce, bad);
            ASSERT_FALSE(r) << "octet " << i << " flipped";
            EXPECT_NE(r.message().find("authentication failed"), std::string::npos) << r.message();
        }
        auto other_nonce = nonce;
        other_nonce[0] ^= 0x80;
        EXPECT_FALSE(aead_open(alg, key, other_nonce, *sealed));
        auto other_key = key;
        other_key.back() ^= 0x01;
        EXPECT_FALSE(aead_open(alg, other_key, nonce, *sealed));
        const std::array<uint8_t, 3> ad{1, 2, 3};
        EXPECT_FALSE(aead_open(alg, key, nonce, *sealed, ad)) << "associated data is authenticated";
    }
}

TEST(siv, refusals_say_why) {
    const auto nonce = counting(ticket_nonce_len, 0);
    auto short_key = aead_seal(aead_algorithm::aes_siv_cmac_256, counting(16, 0), nonce, counting(4, 0));
    ASSERT_FALSE(short_key);
    EXPECT_NE(short_key.message().find("32-octet key, not 16"), std::string::npos) << short_key.message();
    auto unknown = aead_seal(static_cast<aead_algorithm>(30), counting(32, 0), nonce, counting(4, 0));
    ASSERT_FALSE(unknown);
    EXPECT_NE(unknown.message().find("not supported"), std::string::npos) << unknown.message();
    auto no_nonce = aead_seal(aead_algorithm::aes_siv_cmac_256, counting(32, 0), {}, counting(4, 0));
    ASSERT_FALSE(no_nonce);
    EXPECT_NE(no_nonce.message().find("no nonce"), std::string::npos) << no_nonce.message();
    auto empty = aead_seal(aead_algorithm::aes_siv_cmac_256, counting(32, 0), nonce, {});
    ASSERT_FALSE(empty);
    EXPECT_NE(empty.message().find("nothing to seal"), std::string::npos) << empty.message();
    auto tag_only = aead_open(aead_algorithm::aes_siv_cmac_256, counting(32, 0), nonce, counting(16, 0));
    ASSERT_FALSE(tag_only);
    EXPECT_NE(tag_only.message().find("nothing to open"), std::string::npos) << tag_only.message();
    auto too_short = aead_open(aead_algorithm::aes_siv_cmac_256, counting(32, 0), nonce, counting(15, 0));
    ASSERT_FALSE(too_short);
    EXPECT_NE(too_short.message().find("less than the 16-octet tag"), std::string::npos) << too_short.message();
    EXPECT_EQ(aead_key_len(aead_algorithm::aes_siv_cmac_384), 48U);
    EXPECT_FALSE(aead_supported(static_cast<aead_algorithm>(1)));
}

nts::security_association unicast_sa() {
    nts::security_association sa;
    sa.spp = 7;
    sa.integrity_algorithm = nts::mac_algorithm::aes_gmac_256;
    sa.key_id = 0x01020304;
    const auto key = counting(32, 0x55);
    sa.key.assign(key.begin(), key.end());
    return sa;
}

TEST(ticket, seals_the_security_association_body_for_the_requester) {
    const auto tkey = counting(32, 0x21);
    const nts::port_identity requester{{1, 2, 3, 4, 5, 6, 7, 8}, 9};
    auto t = seal_ticket(278, requester, aead_algorithm::aes_siv_cmac_256, tkey, unicast_sa());
    ASSERT_TRUE(t) << t.message();
    EXPECT_EQ(t->ticket_key_id, 278U);
    EXPECT_EQ(t->source_port_identity, requester);
    ASSERT_EQ(t->nonce.size(), ticket_nonce_len);
    // Plaintext = the record body: 9 fixed octets and the 32-octet key.
    EXPECT_EQ(t->encrypted_sa.size(), siv_tag_len + nts::security_association_fixed_size + 32);

    auto sa = open_ticket(*t, aead_algorithm::aes_siv_cmac_256, tkey);
    ASSERT_TRUE(sa) << sa.message();
    EXPECT_EQ(*sa, unicast_sa());

    // The body is exactly what append_security_association writes after its header.
    auto body = aead_open(aead_algorithm::aes_siv_cmac_256, tkey, t->nonce, t->encrypted_sa);
    ASSERT_TRUE(body);
    std::vector<uint8_t> record;
    nts::record_writer w(record);
    nts::append_security_association(w, unicast_sa());
    EXPECT_TRUE(std::equal(body->begin(), body->end(), record.begin() + 4, record.end()));

    // Every ticket has a nonce of its own.
    auto again = seal_ticket(278, requester, aead_algorithm::aes_siv_cmac_256, tkey, unicast_sa());
    ASSERT_TRUE(again);
    EXPECT_NE(again->nonce, t->nonce);
    EXPECT_NE(again->encrypted_sa, t->encrypted_sa);
}

TEST(ticket, does_not_open_under_another_key_or_algorithm) {
    const auto tkey = counting(64, 0x21);
    const nts::port_identity requester{{1, 2, 3, 4, 5, 6, 7, 8}, 9};
    auto t = seal_ticket(5, requester, aead_algorithm::aes_siv_cmac_512, tkey, unicast_sa());
    ASSERT_TRUE(t) << t.message();
    auto other = counting(64, 0x22);
    auto r = open_ticket(*t, aead_algorithm::aes_siv_cmac_512, other);
    ASSERT_FALSE(r);
    EXPECT_NE(r.message().find("ticket under ticket key 5"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("authentication failed"), std::string::npos) << r.message();
    EXPECT_FALSE(open_ticket(*t, aead_algorithm::aes_siv_cmac_256, std::span(tkey).first(32)));
}

TEST(ticket, without_a_nonce_is_refused_before_any_decryption) {
    // A Ticket record may carry Nonce Length 0 (decode_ticket takes it); the
    // AEAD needs a nonce.
    const auto tkey = counting(32, 0x21);
    const nts::port_identity requester{{1, 2, 3, 4, 5, 6, 7, 8}, 9};
    auto t = seal_ticket(5, requester, aead_algorithm::aes_siv_cmac_256, tkey, unicast_sa());
    ASSERT_TRUE(t) << t.message();
    t->nonce.clear();
    auto r = open_ticket(*t, aead_algorithm::aes_siv_cmac_256, tkey);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.message(), "ticket under ticket key 5: AEAD_AES_SIV_CMAC_256: no nonce");
    auto direct = aead_open(aead_algorithm::aes_siv_cmac_256, tkey, {}, t->encrypted_sa);
    ASSERT_FALSE(direct);
    EXPECT_EQ(direct.message(), "AEAD_AES_SIV_CMAC_256: no nonce");
}

TEST(ticket, a_sealed_body_that_is_no_security_association_is_refused_by_name) {
    const auto tkey = counting(32, 0x21);
    nts::ticket t;
    t.ticket_key_id = 1;
    t.nonce = counting(ticket_nonce_len, 1);
    // Key Length 40 with only 2 key octets behind it.
    const auto body = hex("0700050102030400280a0b");
    auto sealed = aead_seal(aead_algorithm::aes_siv_cmac_256, tkey, t.nonce, body);
    ASSERT_TRUE(sealed);
    t.encrypted_sa = *sealed;
    auto r = open_ticket(t, aead_algorithm::aes_siv_cmac_256, tkey);
    ASSERT_FALSE(r);
    EXPECT_NE(r.message().find("ticket"), std::string::npos) << r.message();
    EXPECT_NE(r.message().find("Key Length"), std::string::npos) << r.message();
}

} // namespace
} // namespace ptpsec::ke
