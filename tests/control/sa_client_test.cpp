// control/sa_client: the add_key records an SA file becomes, with the key
// lifetime, and what is refused before anything reaches the SA channel.

#include <control/sa_client.h>
#include <control/sa_file.h>

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace ptpsec {
namespace {

using namespace std::chrono_literals;

std::vector<sa_config> parsed(std::string_view text) {
    auto r = parse_sa_file(text, "t.conf");
    EXPECT_TRUE(r.ok()) << r.message();
    return r.ok() ? std::move(r).value() : std::vector<sa_config>{};
}

TEST(sa_client, updates_carry_every_key_and_the_lifetime) {
    const auto sas = parsed("[security_association]\nspp 2\nseqid_window 9\nallow_mutable 1\n"
                            "1 AES128 HEX:000102030405060708090a0b0c0d0e0f\n"
                            "2 SHA256-128 ASCII:a-key\n");
    auto r = sa_client::updates_for(sas, 90s);
    ASSERT_TRUE(r) << r.message();
    ASSERT_EQ(r->size(), 2U);
    const sa_wire::update& u = (*r)[0];
    EXPECT_EQ(u.operation, static_cast<uint8_t>(sa_wire::op::add_key));
    EXPECT_EQ(u.spp, 2);
    EXPECT_EQ(u.key_id, 1U);
    EXPECT_EQ(u.algorithm, static_cast<uint8_t>(icv::algorithm::aes_cmac_128));
    EXPECT_EQ(u.key_len, 16);
    EXPECT_EQ(u.key[15], 0x0f);
    EXPECT_EQ(u.seqid_window, 9);
    EXPECT_EQ(u.allow_mutable, 1);
    EXPECT_EQ(u.lifetime_ms, 90'000U);
    EXPECT_EQ((*r)[1].key_len, 5);
    EXPECT_EQ((*r)[1].lifetime_ms, 90'000U);

    auto never = sa_client::updates_for(sas);
    ASSERT_TRUE(never) << never.message();
    EXPECT_EQ((*never)[0].lifetime_ms, 0U) << "no lifetime: the key never expires by itself";
}

TEST(sa_client, a_key_longer_than_the_record_is_refused_before_sending) {
    // SA files allow HMAC keys of up to 256 octets; the SA update record
    // carries 64.
    const std::string fits(64, 'k');
    const std::string too_long(65, 'k');
    const auto ok = parsed("[security_association]\nspp 3\n4 SHA256 ASCII:" + fits + "\n");
    auto r = sa_client::updates_for(ok);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ((*r)[0].key_len, 64);

    const auto sas =
        parsed("[security_association]\nspp 3\n4 SHA256 ASCII:" + fits + "\n7 SHA256 ASCII:" + too_long + "\n");
    auto refused = sa_client::updates_for(sas);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.message(),
              "t.conf:4: spp 3 key 7: the key is 65 octets; an SA update carries at most 64 octets (shorten the "
              "HMAC key)");
}

TEST(sa_client, a_lifetime_out_of_range_is_refused) {
    const auto sas = parsed("[security_association]\nspp 2\n1 SHA256 ASCII:a-key\n");
    auto negative = sa_client::updates_for(sas, -1s);
    ASSERT_FALSE(negative);
    EXPECT_NE(negative.message().find("lifetime -1000 ms is not 0-33523200000 ms"), std::string::npos)
        << negative.message();
    EXPECT_FALSE(sa_client::updates_for(sas, sa_client::max_lifetime + 1ms));
    auto longest = sa_client::updates_for(sas, sa_client::max_lifetime);
    ASSERT_TRUE(longest) << longest.message();
    EXPECT_EQ((*longest)[0].lifetime_ms, sa_wire::max_lifetime_ms);
}

} // namespace
} // namespace ptpsec
