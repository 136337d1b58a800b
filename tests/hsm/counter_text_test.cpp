// The text of the signers' counter files (hsm/counter_text.h): each format
// reads back what it writes, has one spelling per value, and every refusal
// says what is wrong.

#include <hsm/counter_text.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace ptpsec::hsm {
namespace {

const std::string key_a(64, 'a');
const std::string magic = "ptpsec pkcs11 counter 1\n";

std::string pkcs11_text(const std::string& key_line, const std::string& counter_line) {
    return magic + key_line + "\n" + counter_line + "\n";
}

TEST(counter_text, the_software_counter_reads_back_what_it_writes) {
    for (const uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{9}, uint64_t{10}, uint64_t{4096},
                             uint64_t{10000000000000000000U}, UINT64_MAX - 1, UINT64_MAX}) {
        const std::string text = format_software_counter(v);
        EXPECT_EQ(text, std::to_string(v) + "\n");
        const auto back = parse_software_counter(text);
        ASSERT_TRUE(back) << text << ": " << back.message();
        EXPECT_EQ(*back, v);
    }
    EXPECT_EQ(format_software_counter(UINT64_MAX).size(), software_counter_max_size);
}

TEST(counter_text, a_software_counter_of_another_spelling_is_refused) {
    for (const char* bad :
         {"", "\n", "12", "01\n", "00\n", "1x\n", "-1\n", "+1\n", " 1\n", "1 \n", "1\r\n", "0x10\n",
          "18446744073709551616\n", "99999999999999999999\n", "000000000000000000001\n", "1\n2\n", "1\n\n"}) {
        const auto r = parse_software_counter(bad);
        ASSERT_FALSE(r) << '"' << bad << '"';
        EXPECT_EQ(r.message(), "expected a decimal number and a newline");
    }
}

TEST(counter_text, the_pkcs11_counter_reads_back_what_it_writes) {
    const std::string key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    for (const uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{1234567}, UINT64_MAX}) {
        const std::string text = format_pkcs11_counter(key, v);
        EXPECT_EQ(text, magic + "key-spki-sha256 " + key + "\ncounter " + std::to_string(v) + "\n");
        const auto back = parse_pkcs11_counter(text);
        ASSERT_TRUE(back) << text << ": " << back.message();
        EXPECT_EQ(back->key_hash, key);
        EXPECT_EQ(back->value, v);
    }
}

TEST(counter_text, every_refusal_of_a_pkcs11_counter_says_what_is_wrong) {
    const std::string key_line = "key-spki-sha256 " + key_a;
    const std::string not_decimal =
        "its counter is not a decimal number (digits, no leading zero, at most 18446744073709551615)";
    const struct {
        std::string text;
        std::string why;
    } cases[] = {
        {"", "it is cut short"},
        {magic, "it is cut short"},
        {magic + key_line + "\ncounter 1", "it is cut short"},
        {pkcs11_text(key_line, "counter 1") + "\n", "there is more after the counter"},
        {pkcs11_text(key_line, "counter 1") + "counter 2\n", "there is more after the counter"},
        {"ptpsec pkcs11 counter 2\n" + key_line + "\ncounter 1\n", "its first line is not \"ptpsec pkcs11 counter 1\""},
        {"ptpsec pkcs11 counter 1\r\n" + key_line + "\ncounter 1\n",
         "its first line is not \"ptpsec pkcs11 counter 1\""},
        {pkcs11_text("garbage", "counter 1"), "it names no key"},
        {pkcs11_text("key-spki-sha256 " + std::string(63, 'a'), "counter 1"), "its key hash is not 64 hex digits"},
        {pkcs11_text("key-spki-sha256 " + std::string(65, 'a'), "counter 1"), "its key hash is not 64 hex digits"},
        {pkcs11_text("key-spki-sha256 " + std::string(64, 'A'), "counter 1"), "its key hash is not 64 hex digits"},
        {pkcs11_text("key-spki-sha256 " + std::string(63, 'a') + "g", "counter 1"),
         "its key hash is not 64 hex digits"},
        {pkcs11_text(key_line, "value 1"), "it holds no counter"},
        {pkcs11_text(key_line, "counter"), "it holds no counter"},
        {pkcs11_text(key_line, "counter "), not_decimal},
        {pkcs11_text(key_line, "counter 12x"), not_decimal},
        {pkcs11_text(key_line, "counter  1"), not_decimal},
        {pkcs11_text(key_line, "counter -1"), not_decimal},
        {pkcs11_text(key_line, "counter +1"), not_decimal},
        {pkcs11_text(key_line, "counter 007"), not_decimal},
        {pkcs11_text(key_line, "counter 18446744073709551616"), not_decimal},
        {pkcs11_text(key_line, "counter 99999999999999999999999"), not_decimal},
        {std::string(pkcs11_counter_max_size + 1, 'x'), "it is far longer than a counter file"},
    };
    for (const auto& c : cases) {
        const auto r = parse_pkcs11_counter(c.text);
        ASSERT_FALSE(r) << c.text;
        EXPECT_EQ(r.message(), c.why) << c.text;
    }
}

} // namespace
} // namespace ptpsec::hsm
