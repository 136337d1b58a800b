// control/sa_file: linuxptp's SA file format, read strictly. The shipped
// sa.conf (the one both ptp4l instances of the capture used) must come out
// exactly; every bad line must reject the whole file with FILE:LINE and
// words that name the problem.

#include <control/sa_file.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ptpsec {
namespace {

using icv::algorithm;

std::string hex_of(std::span<const uint8_t> b) {
    std::string s;
    for (const uint8_t c : b) {
        s += fmt::format("{:02x}", c);
    }
    return s;
}

std::string hex_of(std::string_view text) {
    return hex_of(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

constexpr const char* shipped_sa_file = PTPSEC_TESTDATA_DIR "/linuxptp/sa.conf";

TEST(sa_file, shipped_file_parses_exactly) {
    auto r = load_sa_file(shipped_sa_file);
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_EQ(r->size(), 1u);
    const sa_config& sa = r->front();
    EXPECT_EQ(sa.spp, 2);
    EXPECT_EQ(sa.seqid_window, 3);
    EXPECT_FALSE(sa.allow_mutable);
    EXPECT_EQ(sa.origin, std::string(shipped_sa_file) + ":3");
    ASSERT_EQ(sa.keys.size(), 5u);

    struct expected_key {
        uint32_t id;
        algorithm alg;
        std::string hex;
        int line;
    };
    const std::vector<expected_key> want = {
        {1, algorithm::hmac_sha256_128, "f8adc6b8b8e9aa709106ba42481ec9e29607334de2c3c737a11a12931db27f8c", 5},
        {2, algorithm::hmac_sha256, "ee91d469b3a8adc6ac8eb28e21794c706e08fde48863828a7b0281afca81b17d", 6},
        {3, algorithm::aes_cmac_128, "faf48eba01e7c5966a76cb787aed4e7b", 7},
        // B64:PKTF9VQz94qPaoAzW4eE3JtFoQ8Ov1OTQSojalWyMbs= (base64 -d | xxd -p).
        {4, algorithm::aes_cmac_256, "3ca4c5f55433f78a8f6a80335b8784dc9b45a10f0ebf5393412a236a55b231bb", 8},
        {5, algorithm::hmac_sha256_128, hex_of("sixteenbyteskey!"), 9},
    };
    for (size_t i = 0; i < want.size(); ++i) {
        SCOPED_TRACE(fmt::format("key {}", want[i].id));
        const key_config& k = sa.keys[i];
        EXPECT_EQ(k.key_id, want[i].id);
        EXPECT_EQ(k.alg, want[i].alg);
        EXPECT_EQ(hex_of(k.key.span()), want[i].hex);
        EXPECT_EQ(k.origin, fmt::format("{}:{}", shipped_sa_file, want[i].line));
    }
}

TEST(sa_file, value_without_prefix_is_ascii) {
    auto r =
        parse_sa_file("[security_association]\nspp 1\n7 SHA256 plain-ascii-key\n8 SHA256 6 ASCII:HEX:00\n", "t.conf");
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_EQ(r->front().keys.size(), 2u);
    EXPECT_EQ(hex_of(r->front().keys[0].key.span()), hex_of("plain-ascii-key"));
    // ASCII: takes the rest of the value literally, prefixes included.
    EXPECT_EQ(hex_of(r->front().keys[1].key.span()), hex_of("HEX:00"));
}

TEST(sa_file, gmac_key_types) {
    const std::string text = "[security_association]\n"
                             "spp 4\n"
                             "1 AES128-GMAC HEX:000102030405060708090a0b0c0d0e0f\n"
                             "2 AES192-GMAC 24 HEX:000102030405060708090a0b0c0d0e0f1011121314151617\n"
                             "3 AES256-GMAC B64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
    auto r = parse_sa_file(text, "gmac.conf");
    ASSERT_TRUE(r.ok()) << r.message();
    const auto& keys = r->front().keys;
    ASSERT_EQ(keys.size(), 3u);
    EXPECT_EQ(keys[0].alg, algorithm::aes_gmac_128);
    EXPECT_EQ(keys[1].alg, algorithm::aes_gmac_192);
    EXPECT_EQ(keys[2].alg, algorithm::aes_gmac_256);
    EXPECT_EQ(hex_of(keys[0].key.span()), "000102030405060708090a0b0c0d0e0f");
    EXPECT_EQ(hex_of(keys[1].key.span()), "000102030405060708090a0b0c0d0e0f1011121314151617");
    EXPECT_EQ(hex_of(keys[2].key.span()), "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
}

TEST(sa_file, key_type_table_lists_every_name) {
    std::vector<std::string_view> names;
    for (const auto& t : sa_file_key_types()) {
        names.push_back(t.name);
    }
    EXPECT_EQ(names, (std::vector<std::string_view>{"SHA256-128", "SHA256", "AES128", "AES256", "AES128-GMAC",
                                                    "AES192-GMAC", "AES256-GMAC"}));
}

TEST(sa_file, type_names_and_section_header_are_case_insensitive) {
    const std::string text = "[Security_Association]\n"
                             "spp 1\n"
                             "1 sha256-128 ASCII:k1\n"
                             "2 Sha256 ASCII:k2\n"
                             "3 aes128 HEX:000102030405060708090a0b0c0d0e0f\n"
                             "4 aes256-gmac HEX:000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n"
                             "[SECURITY_ASSOCIATION]\n"
                             "spp 2\n"
                             "1 aes192-GMAC HEX:000102030405060708090a0b0c0d0e0f1011121314151617\n";
    auto r = parse_sa_file(text, "t.conf");
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_EQ(r->size(), 2u);
    const auto& k = (*r)[0].keys;
    ASSERT_EQ(k.size(), 4u);
    EXPECT_EQ(k[0].alg, algorithm::hmac_sha256_128);
    EXPECT_EQ(k[1].alg, algorithm::hmac_sha256);
    EXPECT_EQ(k[2].alg, algorithm::aes_cmac_128);
    EXPECT_EQ(k[3].alg, algorithm::aes_gmac_256);
    EXPECT_EQ(hex_of(k[3].key.span()), "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    ASSERT_EQ((*r)[1].keys.size(), 1u);
    EXPECT_EQ((*r)[1].keys[0].alg, algorithm::aes_gmac_192);
}

TEST(sa_file, comments_blank_lines_and_crlf) {
    const std::string text = "# an SA file written on Windows\r\n"
                             "\r\n"
                             "   # indented comment\r\n"
                             "[security_association]\r\n"
                             "\t\r\n"
                             "spp 9\r\n"
                             "seqid_window\t5\r\n"
                             "allow_mutable 1\r\n"
                             "seqnum_length 0\r\n"
                             "res_length 0\r\n"
                             "# keys\r\n"
                             "  11\tSHA256-128  16\tASCII:sixteenbyteskey!\r\n"
                             "12 AES128 HEX:000102030405060708090a0b0c0d0e0f\r\n"
                             "13 SHA256 B64:AAEC\r\n"
                             "\r\n";
    auto r = parse_sa_file(text, "crlf.conf");
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_EQ(r->size(), 1u);
    const sa_config& sa = r->front();
    EXPECT_EQ(sa.spp, 9);
    EXPECT_EQ(sa.seqid_window, 5);
    EXPECT_TRUE(sa.allow_mutable);
    EXPECT_EQ(sa.origin, "crlf.conf:6");
    ASSERT_EQ(sa.keys.size(), 3u);
    // No '\r' may end up in a key.
    EXPECT_EQ(hex_of(sa.keys[0].key.span()), hex_of("sixteenbyteskey!"));
    EXPECT_EQ(sa.keys[0].origin, "crlf.conf:12");
    EXPECT_EQ(hex_of(sa.keys[1].key.span()), "000102030405060708090a0b0c0d0e0f");
    EXPECT_EQ(hex_of(sa.keys[2].key.span()), "000102");
}

// A '#' that begins a word starts a comment to the end of the line, on any
// line (linuxptp takes one after spp, seqid_window and allow_mutable); a '#'
// inside a key is the key's.
TEST(sa_file, comments_after_settings_and_keys) {
    const std::string text = "[security_association]   # the PTP domain's SA\n"
                             "spp 2                 # Security Parameter Pointer\n"
                             "seqid_window 5\t# replay window\n"
                             "allow_mutable 1 #transparent clocks\n"
                             "1 SHA256-128 ASCII:key#1 # a '#' inside a key\n"
                             "2 AES128 16 HEX:000102030405060708090a0b0c0d0e0f\t# with its length\n";
    auto r = parse_sa_file(text, "c.conf");
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_EQ(r->size(), 1u);
    const sa_config& sa = r->front();
    EXPECT_EQ(sa.spp, 2);
    EXPECT_EQ(sa.seqid_window, 5);
    EXPECT_TRUE(sa.allow_mutable);
    ASSERT_EQ(sa.keys.size(), 2u);
    EXPECT_EQ(hex_of(sa.keys[0].key.span()), hex_of("key#1"));
    EXPECT_EQ(hex_of(sa.keys[1].key.span()), "000102030405060708090a0b0c0d0e0f");
    // A comment is not a value: "spp # 2" has none.
    auto no_value = parse_sa_file("[security_association]\nspp # 2\n1 SHA256 ASCII:k\n", "v.conf");
    ASSERT_FALSE(no_value.ok());
    EXPECT_NE(no_value.message().find("v.conf:2: 'spp' takes one integer"), std::string::npos) << no_value.message();
}

TEST(sa_file, last_line_without_newline) {
    auto r = parse_sa_file("[security_association]\nspp 3\n1 SHA256 ASCII:abc", "t.conf");
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(hex_of(r->front().keys.at(0).key.span()), hex_of("abc"));
}

TEST(sa_file, defaults_when_settings_are_absent) {
    auto r = parse_sa_file("[security_association]\nspp 0\n4294967295 SHA256 ASCII:abc\n", "t.conf");
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->front().spp, 0);
    EXPECT_EQ(r->front().seqid_window, 3);
    EXPECT_FALSE(r->front().allow_mutable);
    EXPECT_EQ(r->front().keys.at(0).key_id, 4294967295u);
}

TEST(sa_file, several_sas_in_one_file) {
    const std::string text = "[security_association]\n"
                             "spp 1\n"
                             "seqid_window 0\n"
                             "1 SHA256-128 ASCII:one\n"
                             "[security_association]\n"
                             "spp 255\n"
                             "seqid_window 32767\n"
                             "allow_mutable 1\n"
                             "1 SHA256 ASCII:two\n"
                             "2 AES256 HEX:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
                             // A new spp line in the same section opens another SA, as in linuxptp.
                             "spp 7\n"
                             "1 AES128-GMAC HEX:000102030405060708090a0b0c0d0e0f\n";
    auto r = parse_sa_file(text, "multi.conf");
    ASSERT_TRUE(r.ok()) << r.message();
    ASSERT_EQ(r->size(), 3u);
    const auto& s = *r;
    EXPECT_EQ(s[0].spp, 1);
    EXPECT_EQ(s[0].seqid_window, 0);
    EXPECT_FALSE(s[0].allow_mutable);
    ASSERT_EQ(s[0].keys.size(), 1u);
    EXPECT_EQ(hex_of(s[0].keys[0].key.span()), hex_of("one"));
    EXPECT_EQ(s[1].spp, 255);
    EXPECT_EQ(s[1].seqid_window, 32767);
    EXPECT_TRUE(s[1].allow_mutable);
    ASSERT_EQ(s[1].keys.size(), 2u);
    EXPECT_EQ(s[1].keys[0].key_id, 1u);
    EXPECT_EQ(s[1].keys[1].alg, algorithm::aes_cmac_256);
    EXPECT_EQ(s[2].spp, 7);
    EXPECT_EQ(s[2].seqid_window, 3);
    EXPECT_FALSE(s[2].allow_mutable);
    ASSERT_EQ(s[2].keys.size(), 1u);
    EXPECT_EQ(s[2].keys[0].alg, algorithm::aes_gmac_128);
    EXPECT_EQ(s[2].origin, "multi.conf:11");
}

TEST(sa_file, same_key_id_in_two_sas_is_fine) {
    auto r = parse_sa_file("[security_association]\nspp 1\n1 SHA256 ASCII:a\n"
                           "[security_association]\nspp 2\n1 SHA256 ASCII:b\n",
                           "t.conf");
    ASSERT_TRUE(r.ok()) << r.message();
    EXPECT_EQ(r->size(), 2u);
}

// linuxptp drops an SA with a bad line and keeps the rest; we refuse the
// file, so that a typo never leaves a node running without the keys the
// operator meant it to have.
TEST(sa_file, bad_line_rejects_the_whole_file) {
    const std::string good_then_bad = "[security_association]\n"
                                      "spp 1\n"
                                      "1 SHA256-128 ASCII:good-key\n"
                                      "[security_association]\n"
                                      "spp 2\n"
                                      "1 SHA256-128 ASCII:good-key\n"
                                      "2 SHA256-128 HEX:0\n"
                                      "3 SHA256-128 ASCII:good-key\n";
    auto r = parse_sa_file(good_then_bad, "t.conf");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("t.conf:7:"), std::string::npos) << r.message();

    // The same with the bad line in the first SA.
    const std::string bad_first = "[security_association]\n"
                                  "spp 1\n"
                                  "1 SHA256-128 ASCII:good-key\n"
                                  "2 NOSUCH ASCII:good-key\n"
                                  "[security_association]\n"
                                  "spp 2\n"
                                  "1 SHA256-128 ASCII:good-key\n";
    r = parse_sa_file(bad_first, "t.conf");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.message().find("t.conf:4:"), std::string::npos) << r.message();
}

TEST(sa_file, messages_do_not_echo_key_material) {
    const std::vector<std::string> lines = {
        "1 SHA256-128 16 ASCII:do-not-print-this-secret",
        "1 AES128 ASCII:do-not-print-this-secret",
        "1 AES256-GMAC 32 HEX:d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0",
    };
    for (const auto& l : lines) {
        auto r = parse_sa_file("[security_association]\nspp 1\n" + l + "\n", "t.conf");
        ASSERT_FALSE(r.ok()) << l;
        EXPECT_EQ(r.message().find("secret"), std::string::npos) << r.message();
        EXPECT_EQ(r.message().find("d0d0"), std::string::npos) << r.message();
    }
}

// ---------------------------------------------------------------------------
// One case per error path: the text, the line the message must point at and
// the words it must contain.

struct error_case {
    const char* name;
    std::string text;
    int line;
    std::vector<std::string> words;
};

std::ostream& operator<<(std::ostream& os, const error_case& c) {
    return os << c.name;
}

/// An SA file that opens with "[security_association]" and "spp 2" (lines 1
/// and 2), then `rest`.
std::string after_spp_2(std::string_view rest) {
    return "[security_association]\nspp 2\n" + std::string(rest);
}

constexpr const char* key32_hex = "HEX:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

std::vector<error_case> error_cases() {
    return {
        {"unknown_section", "[port]\nspp 1\n", 1, {"unknown section [port]", "[security_association]"}},
        {"unknown_section_after_good_sa", after_spp_2("1 SHA256 ASCII:k\n[global]\n"), 4, {"unknown section [global]"}},
        {"setting_before_section", "# c\nspp 2\n", 2, {"outside a [security_association] section"}},
        {"key_before_section", "\n1 SHA256-128 ASCII:k\n", 2, {"outside a [security_association] section"}},
        {"setting_before_spp", "[security_association]\nseqid_window 3\n", 2, {"no 'spp' line"}},
        {"key_before_spp", "[security_association]\n1 SHA256-128 ASCII:k\n", 2, {"no 'spp' line"}},
        {"new_section_needs_its_own_spp",
         after_spp_2("1 SHA256 ASCII:k\n[security_association]\nallow_mutable 1\n"),
         5,
         {"no 'spp' line"}},
        {"spp_out_of_range", "[security_association]\nspp 256\n", 2, {"spp 256 is out of range 0 to 255"}},
        {"spp_negative", "[security_association]\nspp -1\n", 2, {"spp -1 is out of range 0 to 255"}},
        {"spp_not_a_number", "[security_association]\nspp two\n", 2, {"'spp' takes one integer"}},
        {"spp_hex_is_not_a_number", "[security_association]\nspp 0x2\n", 2, {"'spp' takes one integer"}},
        {"spp_without_value", "[security_association]\nspp\n", 2, {"'spp' takes one integer"}},
        {"spp_with_two_values", "[security_association]\nspp 1 2\n", 2, {"'spp' takes one integer"}},
        {"spp_duplicated",
         after_spp_2("1 SHA256 ASCII:k\n[security_association]\nspp 2\n"),
         5,
         {"spp 2 is already defined at t.conf:2"}},
        {"spp_duplicated_in_one_section", after_spp_2("1 SHA256 ASCII:k\nspp 2\n"), 4, {"spp 2 is already defined"}},
        {"seqid_window_out_of_range",
         after_spp_2("seqid_window 32768\n"),
         3,
         {"seqid_window 32768 is out of range 0 to 32767"}},
        {"seqid_window_negative", after_spp_2("seqid_window -1\n"), 3, {"seqid_window -1 is out of range"}},
        {"seqid_window_not_a_number", after_spp_2("seqid_window three\n"), 3, {"'seqid_window' takes one integer"}},
        {"allow_mutable_2", after_spp_2("allow_mutable 2\n"), 3, {"allow_mutable must be 0 or 1"}},
        {"allow_mutable_word", after_spp_2("allow_mutable yes\n"), 3, {"allow_mutable must be 0 or 1"}},
        {"seqnum_length_non_zero", after_spp_2("seqnum_length 8\n"), 3, {"seqnum_length must be 0"}},
        {"res_length_non_zero", after_spp_2("res_length 4\n"), 3, {"res_length must be 0"}},
        {"res_length_not_a_number", after_spp_2("res_length x\n"), 3, {"'res_length' takes one integer"}},
        {"key_line_with_two_tokens",
         after_spp_2("1 SHA256-128\n"),
         3,
         {"key 1: no value after the type", "'id type [len] value'"}},
        {"key_value_starting_with_a_comment",
         after_spp_2("1 SHA256-128 #secret\n"),
         3,
         {"key 1: no value after the type", "'#' starts a comment", "HEX: or B64:"}},
        {"key_line_with_five_tokens",
         after_spp_2("1 SHA256-128 16 ASCII:sixteenbyteskey! extra\n"),
         3,
         {"unknown setting '1'", "'id type [len] value'"}},
        {"unknown_setting", after_spp_2("sa_lifetime 3600\n"), 3, {"unknown setting 'sa_lifetime'"}},
        {"unknown_setting_three_words", after_spp_2("foo bar baz\n"), 3, {"unknown setting 'foo'", "key id"}},
        {"key_id_zero", after_spp_2("0 SHA256-128 ASCII:k\n"), 3, {"key id 0 is out of range 1 to 4294967295"}},
        {"key_id_not_a_number", after_spp_2("one SHA256-128 ASCII:k\n"), 3, {"unknown setting 'one'", "key id"}},
        {"key_id_negative", after_spp_2("-1 SHA256-128 ASCII:k\n"), 3, {"unknown setting '-1'", "key id"}},
        {"key_id_too_large", after_spp_2("4294967296 SHA256-128 ASCII:k\n"), 3, {"'4294967296'", "key id from 1 to"}},
        {"key_id_duplicate",
         after_spp_2("1 SHA256-128 ASCII:k\n# another\n1 SHA256 ASCII:l\n"),
         5,
         {"key id 1 is already defined at t.conf:3"}},
        {"unknown_key_type",
         after_spp_2("1 SHA1 ASCII:k\n"),
         3,
         {"unknown key type 'SHA1'", "SHA256-128", "AES256-GMAC"}},
        {"unknown_key_type_gmac_suffix", after_spp_2("1 AES128GMAC ASCII:k\n"), 3, {"unknown key type 'AES128GMAC'"}},
        {"declared_length_mismatch",
         after_spp_2(std::string("1 SHA256-128 16 ") + key32_hex + "\n"),
         3,
         {"key is 32 octets, the line says 16"}},
        {"declared_length_mismatch_ascii",
         after_spp_2("1 SHA256 4 ASCII:abc\n"),
         3,
         {"key is 3 octets, the line says 4"}},
        {"declared_length_zero",
         after_spp_2("1 SHA256 0 ASCII:abc\n"),
         3,
         {"key length '0' is not a positive integer"}},
        {"declared_length_not_a_number",
         after_spp_2("1 SHA256 three ASCII:abc\n"),
         3,
         {"key length 'three' is not a positive integer"}},
        {"odd_hex", after_spp_2("1 SHA256 HEX:abc\n"), 3, {"hex key has an odd number of digits (3)"}},
        {"non_hex_digit", after_spp_2("1 SHA256 HEX:00g0\n"), 3, {"hex key has a non-hex character at position 3"}},
        {"non_hex_digit_low_nibble", after_spp_2("1 SHA256 HEX:000z\n"), 3, {"non-hex character at position 4"}},
        {"bad_base64_length", after_spp_2("1 SHA256 B64:abc\n"), 3, {"Base64 key must be a non-empty multiple of 4"}},
        {"bad_base64_character", after_spp_2("1 SHA256 B64:ab!d\n"), 3, {"invalid Base64 key"}},
        {"bad_base64_padding_inside", after_spp_2("1 SHA256 B64:A=AAAAAA\n"), 3, {"invalid Base64 key"}},
        {"bad_base64_only_padding", after_spp_2("1 SHA256 B64:====\n"), 3, {"invalid Base64 key"}},
        {"bad_base64_three_padding", after_spp_2("1 SHA256 B64:A===\n"), 3, {"invalid Base64 key"}},
        {"bad_base64_trailing_dashes", after_spp_2("1 SHA256 B64:AAAA----\n"), 3, {"invalid Base64 key"}},
        {"aes128_key_of_wrong_length",
         after_spp_2("1 AES128 HEX:000102030405060708090a0b0c0d0e\n"),
         3,
         {"key type AES128", "must be 16 octets, got 15"}},
        {"aes256_key_of_wrong_length",
         after_spp_2("1 AES256 HEX:000102030405060708090a0b0c0d0e0f\n"),
         3,
         {"key type AES256", "must be 32 octets, got 16"}},
        {"aes192_gmac_key_of_wrong_length",
         after_spp_2(std::string("1 AES192-GMAC ") + key32_hex + "\n"),
         3,
         {"key type AES192-GMAC", "must be 24 octets, got 32"}},
        {"empty_ascii_key", after_spp_2("1 SHA256-128 ASCII:\n"), 3, {"key type SHA256-128", "the key is empty"}},
        {"empty_hex_key", after_spp_2("1 SHA256 HEX:\n"), 3, {"the key is empty"}},
        {"empty_base64_key", after_spp_2("1 SHA256 B64:\n"), 3, {"Base64 key must be a non-empty multiple of 4"}},
        {"hmac_key_too_long",
         after_spp_2("1 SHA256 ASCII:" + std::string(icv::max_key_len + 1, 'k') + "\n"),
         3,
         {fmt::format("key of {} octets is longer than the {} octets supported", icv::max_key_len + 1,
                      icv::max_key_len)}},
        {"sa_without_keys", "# c\n[security_association]\nspp 2\nseqid_window 3\n", 3, {"spp 2 has no keys"}},
        {"second_sa_without_keys",
         after_spp_2("1 SHA256 ASCII:k\n[security_association]\nspp 3\n"),
         5,
         {"spp 3 has no keys"}},
        {"nul_byte", after_spp_2(std::string("1 SHA256 ASCII:ab\0cd\n", 21)), 3, {"NUL character"}},
        {"nul_byte_in_comment", std::string("#\0\n", 3) + after_spp_2(""), 1, {"NUL character"}},
    };
}

class sa_file_error : public testing::TestWithParam<error_case> {};

TEST_P(sa_file_error, names_file_line_and_problem) {
    const error_case& c = GetParam();
    auto r = parse_sa_file(c.text, "t.conf");
    ASSERT_FALSE(r.ok()) << "accepted: " << c.text;
    const std::string& m = r.message();
    EXPECT_EQ(m.rfind(fmt::format("t.conf:{}: ", c.line), 0), 0u) << m;
    for (const auto& w : c.words) {
        EXPECT_NE(m.find(w), std::string::npos) << "'" << w << "' not in: " << m;
    }
}

INSTANTIATE_TEST_SUITE_P(sa_file, sa_file_error, testing::ValuesIn(error_cases()),
                         [](const testing::TestParamInfo<error_case>& i) { return std::string(i.param.name); });

TEST(sa_file, file_without_sa_is_refused) {
    for (const std::string text :
         {"", "\n\n", "# only a comment\n", "[security_association]\n", "[security_association]\n# spp 2\n"}) {
        auto r = parse_sa_file(text, "empty.conf");
        ASSERT_FALSE(r.ok()) << text;
        EXPECT_EQ(r.message().rfind("empty.conf: no security association", 0), 0u) << r.message();
    }
}

TEST(sa_file, nonexistent_file_names_the_path) {
    const std::string path = "/nonexistent-ptpsec-dir/sa.conf";
    auto r = load_sa_file(path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.message().rfind(path + ": cannot open", 0), 0u) << r.message();
    EXPECT_NE(r.message().find("No such file"), std::string::npos) << r.message();
}

TEST(sa_file, load_reports_the_path_as_origin) {
    // A directory opens but does not read as a file: it must be an error,
    // not an empty SA list.
    auto r = load_sa_file(PTPSEC_TESTDATA_DIR);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.message(), std::string(PTPSEC_TESTDATA_DIR) + ": cannot read: Is a directory");
}

TEST(sa_file, reads_a_file_of_unknown_size_through_a_pipe) {
    // A FIFO has no size to go by: the reader grows its buffer (wiping the
    // one it leaves) until the end. 20 KiB of comments, then one SA.
    char dir_template[] = "/tmp/ptpsec-sa-fifo-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    const std::string fifo = std::string(dir_template) + "/sa.conf";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::string text;
    while (text.size() < 20 * 1024) {
        text += "# a comment line that makes the file longer than one buffer\n";
    }
    text += "[security_association]\nspp 2\n1 AES128 HEX:FAF48EBA01E7C5966A76CB787AED4E7B\n";
    std::thread writer([&] {
        const int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            size_t put = 0;
            while (put < text.size()) {
                const ssize_t n = ::write(fd, text.data() + put, text.size() - put);
                if (n <= 0) {
                    break;
                }
                put += static_cast<size_t>(n);
            }
            ::close(fd);
        }
    });
    auto r = load_sa_file(fifo);
    writer.join();
    ::unlink(fifo.c_str());
    ::rmdir(dir_template);
    ASSERT_TRUE(r) << r.message();
    ASSERT_EQ(r->size(), 1U);
    EXPECT_EQ(r->front().spp, 2);
    ASSERT_EQ(r->front().keys.size(), 1U);
    EXPECT_EQ(r->front().keys.front().key_id, 1U);
}

TEST(sa_file, a_file_of_16_mib_or_more_is_refused) {
    // A sparse file of 16 MiB and one octet: the reader stops at its limit
    // rather than take in whatever a wrong path points at.
    char dir_template[] = "/tmp/ptpsec-sa-big-XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    const std::string path = std::string(dir_template) + "/sa.conf";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, (off_t{16} << 20) + 1), 0);
    ::close(fd);
    auto r = load_sa_file(path);
    ::unlink(path.c_str());
    ::rmdir(dir_template);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.message(), path + ": 16 MiB or more, not an SA file");
}

TEST(spp_key, takes_spp_and_key_id) {
    auto r = parse_spp_key("2:1", true);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->spp, 2);
    EXPECT_TRUE(r->has_key);
    EXPECT_EQ(r->key_id, 1U);
    r = parse_spp_key("255:4294967295", true);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->spp, 255);
    EXPECT_EQ(r->key_id, 4294967295U);
    r = parse_spp_key("7", false);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->spp, 7);
    EXPECT_FALSE(r->has_key);
}

TEST(spp_key, refuses_anything_else_and_says_what) {
    struct bad {
        std::string_view text;
        bool key_required;
        std::string_view says;
    };
    for (const bad& b : std::initializer_list<bad>{
             {"2", true, "\"2\": no key ID; use SPP:KEY_ID"},
             {"256:1", true, "the SPP must be a number from 0 to 255"},
             {"-1:1", true, "the SPP must be a number from 0 to 255"},
             {":1", false, "the SPP must be a number from 0 to 255"},
             {"2:", true, "the key ID must be a number from 0 to 4294967295"},
             {"2:1x", true, "the key ID must be a number"},
             {"2:-1", true, "the key ID must be a number"},
             {"2:4294967296", false, "the key ID must be a number"},
             {"2:1:3", true, "the key ID must be a number"},
             {" 2:1", true, "the SPP must be a number"},
             {"", false, "the SPP must be a number"},
         }) {
        const auto r = parse_spp_key(b.text, b.key_required);
        ASSERT_FALSE(r) << b.text;
        EXPECT_NE(r.message().find(b.says), std::string::npos) << b.text << ": " << r.message();
    }
}

} // namespace
} // namespace ptpsec
