// Deterministic CBOR (hsm/deterministic_cbor.h): the encoder against the examples of RFC
// 8949 Appendix A and the key order of §4.2.1, and every refusal of the
// strict decoder with its message and offset.

#include <hsm/deterministic_cbor.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::hsm::cbor {
namespace {

std::vector<uint8_t> from_hex(std::string_view hex) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<uint8_t>(std::stoul(std::string(hex.substr(i, 2)), nullptr, 16)));
    }
    return out;
}

std::string to_hex(std::span<const uint8_t> b) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (const uint8_t c : b) {
        s += digits[c >> 4];
        s += digits[c & 15];
    }
    return s;
}

std::string encoded_hex(const item& it) {
    auto e = encode(it);
    EXPECT_TRUE(e) << e.message();
    return e ? to_hex(*e) : std::string();
}

// RFC 8949 Appendix A: value and its encoding (all in preferred, shortest
// form, so the deterministic encoder must produce exactly these octets).
struct appendix_a_vector {
    item value;
    const char* hex;
};

std::vector<appendix_a_vector> appendix_a() {
    item m = item::map();
    m.put(1, item::uint(2)).put(3, item::uint(4));
    item a = item::map();
    a.put(item::tstr("a"), item::uint(1)).put(item::tstr("b"), item::array({item::uint(2), item::uint(3)}));
    return {
        {item::uint(0), "00"},
        {item::uint(1), "01"},
        {item::uint(10), "0a"},
        {item::uint(23), "17"},
        {item::uint(24), "1818"},
        {item::uint(25), "1819"},
        {item::uint(100), "1864"},
        {item::uint(1000), "1903e8"},
        {item::uint(1000000), "1a000f4240"},
        {item::uint(1000000000000), "1b000000e8d4a51000"},
        {item::uint(18446744073709551615ULL), "1bffffffffffffffff"},
        {item::integer(-1), "20"},
        {item::integer(-10), "29"},
        {item::integer(-100), "3863"},
        {item::integer(-1000), "3903e7"},
        {item::boolean_value(false), "f4"},
        {item::boolean_value(true), "f5"},
        {item::null_value(), "f6"},
        {item::tagged(1, item::uint(1363896240)), "c11a514b67b0"},
        {item::bstr({}), "40"},
        {item::bstr(from_hex("01020304")), "4401020304"},
        {item::tstr(""), "60"},
        {item::tstr("a"), "6161"},
        {item::tstr("IETF"), "6449455446"},
        {item::tstr("\"\\"), "62225c"},
        {item::tstr("\xc3\xbc"), "62c3bc"},
        {item::tstr("\xe6\xb0\xb4"), "63e6b0b4"},
        {item::tstr("\xf0\x90\x85\x91"), "64f0908591"},
        {item::array(), "80"},
        {item::array({item::uint(1), item::uint(2), item::uint(3)}), "83010203"},
        {item::map(), "a0"},
        {m, "a201020304"},
        {a, "a26161016162820203"},
    };
}

TEST(cbor, encodes_the_rfc8949_appendix_a_examples_and_decodes_them_back) {
    for (const auto& v : appendix_a()) {
        EXPECT_EQ(encoded_hex(v.value), v.hex);
        auto back = decode(from_hex(v.hex));
        ASSERT_TRUE(back) << v.hex << ": " << back.message();
        EXPECT_EQ(*back, v.value) << v.hex;
    }
    // -2^64, the most negative integer CBOR has (Appendix A).
    auto most_negative = decode(from_hex("3bffffffffffffffff"));
    ASSERT_TRUE(most_negative);
    EXPECT_EQ(most_negative->kind, type::negative_integer);
    EXPECT_EQ(most_negative->number, UINT64_MAX);
    EXPECT_FALSE(most_negative->as_int64());
    EXPECT_EQ(encoded_hex(item::integer(INT64_MIN)), "3b7fffffffffffffff");
}

TEST(cbor, integer_heads_change_width_exactly_at_each_boundary) {
    const std::pair<uint64_t, size_t> cases[] = {{23, 1},         {24, 2},          {255, 2},
                                                 {256, 3},        {65535, 3},       {65536, 5},
                                                 {0xFFFFFFFF, 5}, {0x100000000, 9}, {UINT64_MAX, 9}};
    for (const auto& [v, len] : cases) {
        auto e = encode(item::uint(v));
        ASSERT_TRUE(e);
        EXPECT_EQ(e->size(), len) << v;
        auto back = decode(*e);
        ASSERT_TRUE(back);
        EXPECT_EQ(back->number, v);
    }
}

TEST(cbor, map_keys_are_sorted_by_their_encoded_octets) {
    // RFC 8949 §4.2.1's own example of the order: 10, 100, -1, "z", "aa",
    // [100], [-1], false. Put in reverse, they must come out in that order.
    item m = item::map();
    m.put(item::boolean_value(false), item::uint(7));
    m.put(item::array({item::integer(-1)}), item::uint(6));
    m.put(item::array({item::uint(100)}), item::uint(5));
    m.put(item::tstr("aa"), item::uint(4));
    m.put(item::tstr("z"), item::uint(3));
    m.put(item::integer(-1), item::uint(2));
    m.put(item::uint(100), item::uint(1));
    m.put(item::uint(10), item::uint(0));
    EXPECT_EQ(encoded_hex(m), "a8"
                              "0a00"
                              "186401"
                              "2002"
                              "617a03"
                              "62616104"
                              "81186405"
                              "812006"
                              "f407");
    auto back = decode(*encode(m));
    ASSERT_TRUE(back) << back.message();
    ASSERT_NE(back->find(-1), nullptr);
    EXPECT_EQ(back->find(-1)->number, 2U);
}

TEST(cbor, the_encoder_refuses_items_with_no_deterministic_encoding) {
    item dup = item::map();
    dup.put(1, item::uint(1)).put(1, item::uint(2));
    EXPECT_EQ(encode(dup).message(), "CBOR: a map has the same key twice");
    item odd = item::map();
    odd.elements.push_back(item::uint(1));
    EXPECT_EQ(encode(odd).message(), "CBOR: a map has a key without a value");
    item bad_tag = item::tagged(18, item::uint(1));
    bad_tag.elements.push_back(item::uint(2));
    EXPECT_EQ(encode(bad_tag).message(), "CBOR: a tag must enclose exactly one item");
    item deep = item::uint(0);
    for (size_t i = 0; i < max_depth; ++i) {
        deep = item::array({deep});
    }
    EXPECT_EQ(encode(deep).message(), "CBOR: the item nests deeper than 16 levels");
}

struct refusal {
    const char* hex;
    const char* message;
    size_t offset;
    bool truncated;
};

TEST(cbor, the_decoder_refuses_each_kind_of_bad_input_and_says_where) {
    const refusal cases[] = {
        {"", "CBOR: the input ends where an item was expected at offset 0", 0, true},
        {"19 01", "CBOR: the item needs 3 octets but only 2 remain at offset 0", 0, true},
        {"82 01", "CBOR: an array of 2 items cannot fit in the 1 octets that remain at offset 0", 0, true},
        {"83 01 02", "CBOR: an array of 3 items cannot fit in the 2 octets that remain at offset 0", 0, true},
        {"82 01 1901", "CBOR: the item needs 3 octets but only 2 remain at offset 2", 2, true},
        {"c1", "CBOR: the input ends where an item was expected at offset 1", 1, true},
        {"45 0102", "CBOR: the item needs 6 octets but only 3 remain at offset 0", 0, true},
        {"1805", "CBOR: an integer is not in its shortest form (RFC 8949 §4.2.1) at offset 0", 0, false},
        {"82 00 390001", "CBOR: an integer is not in its shortest form (RFC 8949 §4.2.1) at offset 2", 2, false},
        {"1a0000ffff", "CBOR: an integer is not in its shortest form (RFC 8949 §4.2.1) at offset 0", 0, false},
        {"5801 41", "CBOR: a length is not in its shortest form (RFC 8949 §4.2.1) at offset 0", 0, false},
        {"990000", "CBOR: a length is not in its shortest form (RFC 8949 §4.2.1) at offset 0", 0, false},
        {"d812 00", "CBOR: a tag number is not in its shortest form (RFC 8949 §4.2.1) at offset 0", 0, false},
        {"5f 4100 ff", "CBOR: indefinite length (RFC 8949 §4.2.1 needs definite lengths) at offset 0", 0, false},
        {"7f ff", "CBOR: indefinite length (RFC 8949 §4.2.1 needs definite lengths) at offset 0", 0, false},
        {"81 9f ff", "CBOR: indefinite length (RFC 8949 §4.2.1 needs definite lengths) at offset 1", 1, false},
        {"bf ff", "CBOR: indefinite length (RFC 8949 §4.2.1 needs definite lengths) at offset 0", 0, false},
        {"ff", "CBOR: a break (0xff) outside an indefinite-length item at offset 0", 0, false},
        {"f93c00", "CBOR: a floating-point value, which this format does not use at offset 0", 0, false},
        {"fb3ff0000000000000", "CBOR: a floating-point value, which this format does not use at offset 0", 0, false},
        {"f7", "CBOR: the simple value undefined, which this format does not use at offset 0", 0, false},
        {"1c", "CBOR: malformed initial byte 0x1c (reserved or unassigned) at offset 0", 0, false},
        {"a2 02 00 01 00",
         "CBOR: map keys out of order (RFC 8949 §4.2.1 sorts them by their encoded octets) at offset 3", 3, false},
        {"a2 20 00 0a 00",
         "CBOR: map keys out of order (RFC 8949 §4.2.1 sorts them by their encoded octets) at offset 3", 3, false},
        {"a2 01 00 01 00", "CBOR: a duplicate map key at offset 3", 3, false},
        {"00 00", "CBOR: 1 trailing octets after the item at offset 1", 1, false},
        {"62 c328", "CBOR: a text string that is not valid UTF-8 at offset 1", 1, false},
        {"62 c080", "CBOR: a text string that is not valid UTF-8 at offset 1", 1, false},
        {"63 eda080", "CBOR: a text string that is not valid UTF-8 at offset 1", 1, false},
        {"64 f4908080", "CBOR: a text string that is not valid UTF-8 at offset 1", 1, false},
        {"63 41e282", "CBOR: a text string that is not valid UTF-8 at offset 2", 2, false},
        {"9bffffffffffffffff 00",
         "CBOR: an array of 18446744073709551615 items cannot fit in the 1 octets that remain at offset 0", 0, true},
        {"ba00010000 0000", "CBOR: a map of 65536 pairs cannot fit in the 2 octets that remain at offset 0", 0, true},
        {"5bffffffffffffffff 00", nullptr, 0, true},
    };
    for (const auto& c : cases) {
        std::string hex;
        for (const char* p = c.hex; *p != '\0'; ++p) {
            if (*p != ' ') {
                hex += *p;
            }
        }
        auto r = decode(from_hex(hex));
        ASSERT_FALSE(r) << c.hex;
        if (c.message != nullptr) {
            EXPECT_EQ(r.message(), c.message) << c.hex;
            EXPECT_EQ(r.err().offset, c.offset) << c.hex;
        }
        EXPECT_EQ(r.err().truncated, c.truncated) << c.hex << ": " << r.message();
    }
}

TEST(cbor, every_one_octet_tag_head_decodes_including_cose_sign1s_18) {
    // libcbor 0.8 refuses 0xc6-0xd4 itself; the decoder must not.
    for (uint64_t tag = 0; tag < 24; ++tag) {
        const std::vector<uint8_t> in = {static_cast<uint8_t>(0xC0 | tag), 0x01};
        auto r = decode(in);
        ASSERT_TRUE(r) << tag << ": " << r.message();
        EXPECT_EQ(*r, item::tagged(tag, item::uint(1)));
        EXPECT_EQ(*encode(*r), in);
    }
    EXPECT_EQ(encoded_hex(item::tagged(18, item::null_value())), "d2f6");
    EXPECT_EQ(encoded_hex(item::tagged(24, item::null_value())), "d818f6");
}

TEST(cbor, nesting_is_bounded) {
    std::vector<uint8_t> ok(max_depth - 1, 0x81);
    ok.push_back(0x00);
    EXPECT_TRUE(decode(ok));
    std::vector<uint8_t> deep(max_depth, 0x81);
    deep.push_back(0x00);
    auto r = decode(deep);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.message(), "CBOR: nesting deeper than 16 levels at offset 16");
    // A long chain of tags is nesting too.
    std::vector<uint8_t> tags(200, 0xC1);
    tags.push_back(0x00);
    EXPECT_EQ(decode(tags).message(), "CBOR: nesting deeper than 16 levels at offset 16");
}

TEST(cbor, decode_prefix_reads_one_item_of_a_sequence_and_offsets_include_the_base) {
    const auto seq = from_hex("8201020304");
    auto first = decode_prefix(seq);
    ASSERT_TRUE(first);
    EXPECT_EQ(first->length, 3U);
    EXPECT_EQ(first->value.elements.size(), 2U);
    auto second = decode_prefix(std::span(seq).subspan(3), 3);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->value.number, 3U);
    EXPECT_EQ(second->value.offset, 3U);
    auto bad = decode_prefix(from_hex("a202000100"), 100);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.message(),
              "CBOR: map keys out of order (RFC 8949 §4.2.1 sorts them by their encoded octets) at offset 103");
    EXPECT_EQ(bad.err().offset, 103U);
}

TEST(cbor, decoded_items_carry_their_offsets_and_typed_accessors_work) {
    item m = item::map();
    m.put(-3, item::bstr(from_hex("aabb"))).put(2, item::tstr("x"));
    auto e = encode(m);
    ASSERT_TRUE(e);
    auto d = decode(*e);
    ASSERT_TRUE(d);
    // a2 02 61 78 22 42 aa bb: key 2 first (0x02 < 0x22).
    EXPECT_EQ(to_hex(*e), "a202617822"
                          "42aabb");
    ASSERT_NE(d->find(-3), nullptr);
    EXPECT_EQ(d->find(-3)->offset, 5U);
    EXPECT_EQ(d->find(2)->offset, 2U);
    EXPECT_EQ(d->find(7), nullptr);
    EXPECT_EQ(item::uint(5).find(1), nullptr);
    EXPECT_EQ(item::integer(-24).as_int64(), -24);
    EXPECT_FALSE(item::uint(UINT64_MAX).as_int64());
}

} // namespace
} // namespace ptpsec::hsm::cbor
