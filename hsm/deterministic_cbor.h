#pragma once

// Deterministic CBOR (RFC 8949) for the attestation evidence: claims, batch
// payloads, COSE_Sign1 and log records are all made of the items here.
//
// Encoding follows the core deterministic encoding requirements of RFC 8949
// §4.2.1: every integer, length and tag number in its shortest form, only
// definite lengths, map keys sorted by the bytewise lexicographic order of
// their encodings, no duplicate keys. The same item therefore always encodes
// to the same octets, which is what lets a signature or a Merkle leaf cover
// the encoding and lets a second implementation rebuild it.
//
// Decoding (through libcbor's streaming decoder, one head at a time) is
// strict: it accepts exactly the encodings the encoder produces and refuses
// everything else with a message that names the problem and its byte offset.
// The profile is the part of CBOR the evidence uses: integers, byte and text
// strings, arrays, maps, tags, false, true and null. Floating-point values,
// undefined and other simple values are refused; so are indefinite lengths,
// non-shortest forms, unsorted or duplicate map keys, invalid UTF-8 in text
// strings, nesting deeper than max_depth, lengths beyond the input and
// trailing octets. Input is never read past its end.

#include <drivers/base/result.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::hsm::cbor {

/// Arrays, maps and tags nest at most this deep (the outermost item is at
/// depth 1). The evidence needs 4; the margin is for later record types.
inline constexpr size_t max_depth = 16;

enum class type : uint8_t {
    unsigned_integer, ///< major type 0; `number` is the value
    negative_integer, ///< major type 1; the value is -1 - `number`
    byte_string,      ///< major type 2; `bytes`
    text_string,      ///< major type 3; `text` (UTF-8)
    array,            ///< major type 4; `elements`
    map,              ///< major type 5; `elements` holds key, value, key, value...
    tag,              ///< major type 6; `number` is the tag, `elements` its one item
    boolean,          ///< simple values 20, 21; `number` is 0 or 1
    null,             ///< simple value 22
};

const char* to_string(type t) noexcept;

/// One CBOR data item. Build with the static functions; read the fields.
struct item {
    type kind = type::null;
    uint64_t number = 0;
    std::vector<uint8_t> bytes;
    std::string text;
    std::vector<item> elements;
    /// Where the item's head starts in the decoded input (for messages); 0
    /// for items that were built, ignored by the encoder and by ==.
    size_t offset = 0;

    static item uint(uint64_t v);
    /// A signed integer: major type 0 when v >= 0, major type 1 otherwise.
    static item integer(int64_t v);
    static item bstr(std::span<const uint8_t> b);
    static item tstr(std::string_view s);
    static item array(std::vector<item> elements = {});
    static item map();
    static item tagged(uint64_t tag, item content);
    static item boolean_value(bool b);
    static item null_value();

    /// Map only: appends a key and its value (the encoder sorts the keys and
    /// refuses duplicates).
    item& put(item key, item value);
    item& put(int64_t key, item value) { return put(integer(key), std::move(value)); }

    /// Map only: the value of integer key `key`, or nullptr.
    const item* find(int64_t key) const noexcept;
    /// Map only: the number of key/value pairs.
    size_t map_size() const noexcept { return elements.size() / 2; }

    bool is_integer() const noexcept { return kind == type::unsigned_integer || kind == type::negative_integer; }
    /// The integer's value when it fits an int64_t.
    std::optional<int64_t> as_int64() const noexcept;

    friend bool operator==(const item& a, const item& b) noexcept;
};

/// The deterministic encoding of `it` (RFC 8949 §4.2.1). Fails only for an
/// item that has no such encoding: a map with two equal keys, a tag without
/// exactly one item, a map with an odd element count, or nesting deeper
/// than max_depth.
result<std::vector<uint8_t>> encode(const item& it);

/// Appends the encoding of `it` to `out`.
status encode_to(const item& it, std::vector<uint8_t>& out);

// RFC 8949 §4.2.1: "0 to 23 and -1 to -24 must be expressed in the same byte
// as the major type; 24 to 255 ... only with an additional uint8_t", and so on.
constexpr size_t shortest_head_length(uint64_t argument) noexcept {
    if (argument < 24) {
        return 1;
    }
    if (argument <= 0xFF) {
        return 2;
    }
    if (argument <= 0xFFFF) {
        return 3;
    }
    if (argument <= 0xFFFFFFFFULL) {
        return 5;
    }
    return 9;
}

/// Writes the shortest head of (major type, argument) at `out`, which has
/// room for shortest_head_length(argument) octets (at most 9); returns the
/// octet after it. For encoders that write into memory they sized
/// themselves (the signer's leaves).
inline uint8_t* put_head(uint8_t* out, uint8_t major, uint64_t argument) noexcept {
    const auto initial = static_cast<uint8_t>(major << 5);
    const size_t len = shortest_head_length(argument);
    if (len == 1) {
        *out = static_cast<uint8_t>(initial | argument);
        return out + 1;
    }
    constexpr uint8_t additional[] = {0, 0, 24, 25, 0, 26, 0, 0, 0, 27};
    out[0] = static_cast<uint8_t>(initial | additional[len]);
    for (size_t i = 1; i < len; ++i) {
        out[i] = static_cast<uint8_t>(argument >> (8 * (len - 1 - i)));
    }
    return out + len;
}

/// The head of integer `v`: major type 0 with v, or major type 1 with
/// -1 - v for a negative v (RFC 8949 §3.1).
struct integer_head {
    uint8_t major;
    uint64_t argument;
};
constexpr integer_head head_of_integer(int64_t v) noexcept {
    return v >= 0 ? integer_head{0, static_cast<uint64_t>(v)} : integer_head{1, static_cast<uint64_t>(-(v + 1))};
}

/// put_head() of an integer.
inline uint8_t* put_integer(uint8_t* out, int64_t v) noexcept {
    const integer_head h = head_of_integer(v);
    return put_head(out, h.major, h.argument);
}

/// Writes CBOR straight into a buffer, for encodings made in bulk (one per
/// timing event) where building an item tree would cost more than the
/// encoding: every head in its shortest form (RFC 8949 §4.2.1). The caller
/// writes map keys in their deterministic order (sorted by encoded octets:
/// 0, 1, ..., 23, then -1, -2, ...) and the right element counts; the tests
/// check each use against encode() of the same item.
class writer {
public:
    explicit writer(std::vector<uint8_t>& out) noexcept : _out(&out) {}
    void map_head(uint64_t pairs) { head(5, pairs); }
    void array_head(uint64_t elements) { head(4, elements); }
    void uint(uint64_t v) { head(0, v); }
    void integer(int64_t v) {
        const integer_head h = head_of_integer(v);
        head(h.major, h.argument);
    }
    void bytes(std::span<const uint8_t> b) {
        head(2, b.size());
        _out->insert(_out->end(), b.begin(), b.end());
    }
    void text(std::string_view t) {
        head(3, t.size());
        _out->insert(_out->end(), t.begin(), t.end());
    }
    void null() { _out->push_back(0xF6); }
    void boolean(bool v) { _out->push_back(v ? 0xF5 : 0xF4); }
    /// Octets already encoded (an item made elsewhere).
    void raw(std::span<const uint8_t> encoded) { _out->insert(_out->end(), encoded.begin(), encoded.end()); }

private:
    void head(uint8_t major, uint64_t argument);
    std::vector<uint8_t>* _out;
};

/// Why decoding failed: `message` names the problem and its offset;
/// `offset` is where in the input (plus the caller's base offset) the bad
/// item or octet is; `truncated` is set when the input ended inside an item
/// (more octets would have been needed), as opposed to octets that no
/// amount of further input can make valid.
struct decode_error {
    std::string message;
    size_t offset = 0;
    bool truncated = false;
};

/// Decodes exactly one item that spans all of `in` (no trailing octets).
result<item, decode_error> decode(std::span<const uint8_t> in);

struct prefix_item {
    item value;
    size_t length = 0; ///< octets the item's encoding took
};

/// Decodes the one item at the start of `in` and says how long it was, for
/// CBOR sequences (RFC 8742). `base_offset` is added to the offsets in
/// error messages so that they point into the caller's whole buffer.
result<prefix_item, decode_error> decode_prefix(std::span<const uint8_t> in, size_t base_offset = 0);

} // namespace ptpsec::hsm::cbor
