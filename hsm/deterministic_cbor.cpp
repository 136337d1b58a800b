#include <hsm/deterministic_cbor.h>

// libcbor's umbrella <cbor.h> would resolve to this folder's cbor.h (the
// build puts hsm/ on the include path): name its parts instead.
#include <cbor/callbacks.h>
#include <cbor/data.h>
#include <cbor/streaming.h>
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <utility>

namespace ptpsec::hsm::cbor {

// Why a small encoder of our own rather than libcbor's serializer: libcbor
// writes an integer or a length with the width its item was built with and a
// map in the order its pairs were added, so deterministic output would rest on
// every caller choosing widths and ordering keys by hand. Here the encoder
// picks the shortest head for every value and sorts map keys by their encoded
// octets itself (RFC 8949 §4.2.1), so no caller can get it wrong. Decoding
// goes through libcbor's streaming decoder.

namespace {

enum major_type : uint8_t {
    major_unsigned = 0,
    major_negative = 1,
    major_bytes = 2,
    major_text = 3,
    major_array = 4,
    major_map = 5,
    major_tag = 6,
    major_simple = 7,
};

constexpr uint8_t simple_false = 0xF4;
constexpr uint8_t simple_true = 0xF5;
constexpr uint8_t simple_null = 0xF6;

void encode_head(uint8_t major, uint64_t argument, std::vector<uint8_t>& out) {
    // The head in one piece: a batch writes some twenty per event.
    const size_t at = out.size();
    out.resize(at + shortest_head_length(argument));
    put_head(out.data() + at, major, argument);
}

status encode_item(const item& it, std::vector<uint8_t>& out, size_t depth) {
    if (depth > max_depth) {
        return error{fmt::format("CBOR: the item nests deeper than {} levels", max_depth)};
    }
    switch (it.kind) {
    case type::unsigned_integer:
        encode_head(major_unsigned, it.number, out);
        return ok_status();
    case type::negative_integer:
        encode_head(major_negative, it.number, out);
        return ok_status();
    case type::byte_string:
        encode_head(major_bytes, it.bytes.size(), out);
        out.insert(out.end(), it.bytes.begin(), it.bytes.end());
        return ok_status();
    case type::text_string:
        encode_head(major_text, it.text.size(), out);
        out.insert(out.end(), it.text.begin(), it.text.end());
        return ok_status();
    case type::array:
        encode_head(major_array, it.elements.size(), out);
        for (const item& e : it.elements) {
            PTPSEC_TRY(done, encode_item(e, out, depth + 1));
        }
        return ok_status();
    case type::map: {
        if (it.elements.size() % 2 != 0) {
            return error{"CBOR: a map has a key without a value"};
        }
        // RFC 8949 §4.2.1: keys sorted by the bytewise lexicographic order
        // of their deterministic encodings.
        std::vector<std::pair<std::vector<uint8_t>, size_t>> keys;
        keys.reserve(it.map_size());
        for (size_t i = 0; i < it.elements.size(); i += 2) {
            std::vector<uint8_t> k;
            PTPSEC_TRY(done, encode_item(it.elements[i], k, depth + 1));
            keys.emplace_back(std::move(k), i);
        }
        // Byte by byte: std::vector's operator< compiles to a memcmp whose
        // bound GCC 12 at -O3 cannot prove in range (-Wstringop-overread).
        const auto encoded_order = [](const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
            const size_t n = std::min(a.size(), b.size());
            for (size_t i = 0; i < n; ++i) {
                if (a[i] != b[i]) {
                    return a[i] < b[i] ? -1 : 1;
                }
            }
            return a.size() == b.size() ? 0 : (a.size() < b.size() ? -1 : 1);
        };
        std::sort(keys.begin(), keys.end(),
                  [&](const auto& a, const auto& b) { return encoded_order(a.first, b.first) < 0; });
        for (size_t i = 1; i < keys.size(); ++i) {
            if (encoded_order(keys[i].first, keys[i - 1].first) == 0) {
                return error{"CBOR: a map has the same key twice"};
            }
        }
        encode_head(major_map, keys.size(), out);
        for (const auto& [k, index] : keys) {
            out.insert(out.end(), k.begin(), k.end());
            PTPSEC_TRY(done, encode_item(it.elements[index + 1], out, depth + 1));
        }
        return ok_status();
    }
    case type::tag:
        if (it.elements.size() != 1) {
            return error{"CBOR: a tag must enclose exactly one item"};
        }
        encode_head(major_tag, it.number, out);
        return encode_item(it.elements[0], out, depth + 1);
    case type::boolean:
        out.push_back(it.number != 0 ? simple_true : simple_false);
        return ok_status();
    case type::null:
        out.push_back(simple_null);
        return ok_status();
    }
    return error{"CBOR: an item of unknown type"};
}

// RFC 3629 §4: well-formed UTF-8 (no overlong forms, no surrogates, nothing
// above U+10FFFF). Returns the index of the first bad octet, or npos.
size_t invalid_utf8_at(std::span<const uint8_t> s) noexcept {
    size_t i = 0;
    while (i < s.size()) {
        const uint8_t c = s[i];
        size_t n = 0;
        uint32_t cp = 0;
        uint32_t min = 0;
        if (c < 0x80) {
            ++i;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1Fu;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0Fu;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07u;
            min = 0x10000;
        } else {
            return i;
        }
        if (s.size() - i <= n) {
            return i;
        }
        for (size_t k = 1; k <= n; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return i;
            }
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return i;
        }
        i += n + 1;
    }
    return std::string_view::npos;
}

// What libcbor's streaming decoder reported for one head.
struct head {
    enum class what : uint8_t {
        none,
        unsigned_integer,
        negative_integer,
        byte_string,
        text_string,
        array,
        map,
        tag,
        boolean,
        null,
        indefinite_byte_string,
        indefinite_text_string,
        indefinite_array,
        indefinite_map,
        floating_point,
        undefined,
        indefinite_break,
    };
    what kind = what::none;
    uint64_t argument = 0;
    const uint8_t* data = nullptr;
};

head& as_head(void* ctx) noexcept {
    return *static_cast<head*>(ctx);
}

void on_unsigned(void* ctx, uint64_t v) noexcept {
    as_head(ctx) = head{head::what::unsigned_integer, v, nullptr};
}
void on_negative(void* ctx, uint64_t v) noexcept {
    as_head(ctx) = head{head::what::negative_integer, v, nullptr};
}

const cbor_callbacks& head_callbacks() noexcept {
    static const cbor_callbacks callbacks = [] {
        cbor_callbacks c = cbor_empty_callbacks;
        c.uint8 = [](void* ctx, uint8_t v) { on_unsigned(ctx, v); };
        c.uint16 = [](void* ctx, uint16_t v) { on_unsigned(ctx, v); };
        c.uint32 = [](void* ctx, uint32_t v) { on_unsigned(ctx, v); };
        c.uint64 = [](void* ctx, uint64_t v) { on_unsigned(ctx, v); };
        c.negint8 = [](void* ctx, uint8_t v) { on_negative(ctx, v); };
        c.negint16 = [](void* ctx, uint16_t v) { on_negative(ctx, v); };
        c.negint32 = [](void* ctx, uint32_t v) { on_negative(ctx, v); };
        c.negint64 = [](void* ctx, uint64_t v) { on_negative(ctx, v); };
        // libcbor 0.8 names these the other way round in its comments:
        // byte_string carries a definite string, byte_string_start opens an
        // indefinite one; likewise string/string_start.
        c.byte_string = [](void* ctx, cbor_data d, size_t n) { as_head(ctx) = head{head::what::byte_string, n, d}; };
        c.byte_string_start = [](void* ctx) { as_head(ctx) = head{head::what::indefinite_byte_string, 0, nullptr}; };
        c.string = [](void* ctx, cbor_data d, size_t n) { as_head(ctx) = head{head::what::text_string, n, d}; };
        c.string_start = [](void* ctx) { as_head(ctx) = head{head::what::indefinite_text_string, 0, nullptr}; };
        c.array_start = [](void* ctx, size_t n) { as_head(ctx) = head{head::what::array, n, nullptr}; };
        c.indef_array_start = [](void* ctx) { as_head(ctx) = head{head::what::indefinite_array, 0, nullptr}; };
        c.map_start = [](void* ctx, size_t n) { as_head(ctx) = head{head::what::map, n, nullptr}; };
        c.indef_map_start = [](void* ctx) { as_head(ctx) = head{head::what::indefinite_map, 0, nullptr}; };
        c.tag = [](void* ctx, uint64_t v) { as_head(ctx) = head{head::what::tag, v, nullptr}; };
        c.float2 = [](void* ctx, float) { as_head(ctx) = head{head::what::floating_point, 0, nullptr}; };
        c.float4 = [](void* ctx, float) { as_head(ctx) = head{head::what::floating_point, 0, nullptr}; };
        c.float8 = [](void* ctx, double) { as_head(ctx) = head{head::what::floating_point, 0, nullptr}; };
        c.undefined = [](void* ctx) { as_head(ctx) = head{head::what::undefined, 0, nullptr}; };
        c.null = [](void* ctx) { as_head(ctx) = head{head::what::null, 0, nullptr}; };
        c.boolean = [](void* ctx, bool b) { as_head(ctx) = head{head::what::boolean, b ? 1U : 0U, nullptr}; };
        c.indef_break = [](void* ctx) { as_head(ctx) = head{head::what::indefinite_break, 0, nullptr}; };
        return c;
    }();
    return callbacks;
}

class decoder {
public:
    decoder(std::span<const uint8_t> in, size_t base) : _in(in), _base(base) {}

    result<item, decode_error> parse(size_t& pos, size_t depth) {
        const size_t at = pos;
        if (depth > max_depth) {
            return fail(at, fmt::format("nesting deeper than {} levels", max_depth));
        }
        if (pos >= _in.size()) {
            return fail(at, "the input ends where an item was expected", true);
        }
        head h;
        const size_t remaining = _in.size() - pos;
        cbor_decoder_result r = cbor_stream_decode(_in.data() + pos, remaining, &head_callbacks(), &h);
        if (r.status == CBOR_DECODER_ERROR && _in[pos] >= 0xC6 && _in[pos] <= 0xD4) {
            // libcbor 0.8's streaming decoder reports the one-octet tag heads
            // 0xc6-0xd4 (tags 6 to 20) as errors because it has no name for
            // them, yet RFC 8949 §3.4 makes every tag number well-formed and
            // COSE_Sign1 is tag 18 (0xd2). The head is the one octet; its
            // low five bits are the tag number.
            h = head{head::what::tag, static_cast<uint64_t>(_in[pos] & 0x1F), nullptr};
            r.status = CBOR_DECODER_FINISHED;
            r.read = 1;
        }
        if (r.status == CBOR_DECODER_NEDATA) {
            return fail(at,
                        fmt::format("the item needs {} octets but only {} remain", std::max(r.required, remaining + 1),
                                    remaining),
                        true);
        }
        if (r.status != CBOR_DECODER_FINISHED || h.kind == head::what::none || r.read == 0 || r.read > remaining) {
            return fail(at, fmt::format("malformed initial byte 0x{:02x} (reserved or unassigned)", _in[pos]));
        }
        const uint8_t major = static_cast<uint8_t>(_in[pos] >> 5);
        switch (h.kind) {
        case head::what::indefinite_byte_string:
        case head::what::indefinite_text_string:
        case head::what::indefinite_array:
        case head::what::indefinite_map:
            return fail(at, "indefinite length (RFC 8949 §4.2.1 needs definite lengths)");
        case head::what::indefinite_break:
            return fail(at, "a break (0xff) outside an indefinite-length item");
        case head::what::floating_point:
            return fail(at, "a floating-point value, which this format does not use");
        case head::what::undefined:
            return fail(at, "the simple value undefined, which this format does not use");
        default:
            break;
        }
        size_t data_len = 0;
        if (h.kind == head::what::byte_string || h.kind == head::what::text_string) {
            data_len = static_cast<size_t>(h.argument);
        }
        const size_t head_len = r.read - data_len;
        if (h.kind == head::what::boolean || h.kind == head::what::null) {
            if (head_len != 1) {
                return fail(at, "a simple value not in its one-octet form");
            }
        } else if (head_len != shortest_head_length(h.argument)) {
            return fail(at, fmt::format("{} is not in its shortest form (RFC 8949 §4.2.1)",
                                        major == major_tag        ? "a tag number"
                                        : major <= major_negative ? "an integer"
                                                                  : "a length"));
        }
        pos += r.read;
        item it;
        it.offset = _base + at;
        switch (h.kind) {
        case head::what::unsigned_integer:
            it.kind = type::unsigned_integer;
            it.number = h.argument;
            return it;
        case head::what::negative_integer:
            it.kind = type::negative_integer;
            it.number = h.argument;
            return it;
        case head::what::byte_string:
            it.kind = type::byte_string;
            it.bytes.assign(h.data, h.data + data_len);
            return it;
        case head::what::text_string: {
            const size_t bad = invalid_utf8_at({h.data, data_len});
            if (bad != std::string_view::npos) {
                return fail(at + head_len + bad, "a text string that is not valid UTF-8");
            }
            it.kind = type::text_string;
            it.text.assign(reinterpret_cast<const char*>(h.data), data_len);
            return it;
        }
        case head::what::boolean:
            it.kind = type::boolean;
            it.number = h.argument;
            return it;
        case head::what::null:
            it.kind = type::null;
            return it;
        case head::what::tag: {
            it.kind = type::tag;
            it.number = h.argument;
            auto content = parse(pos, depth + 1);
            if (!content) {
                return content.err();
            }
            it.elements.push_back(std::move(*content));
            return it;
        }
        case head::what::array:
            return parse_array(std::move(it), h.argument, pos, depth);
        case head::what::map:
            return parse_map(std::move(it), h.argument, pos, depth);
        default:
            return fail(at, "an item of unknown type");
        }
    }

private:
    result<item, decode_error> parse_array(item it, uint64_t count, size_t& pos, size_t depth) {
        const size_t at = it.offset - _base;
        // Every item takes at least one octet: a count the rest of the input
        // cannot hold is refused before anything is reserved for it.
        if (count > _in.size() - pos) {
            return fail(
                at,
                fmt::format("an array of {} items cannot fit in the {} octets that remain", count, _in.size() - pos),
                true);
        }
        it.kind = type::array;
        it.elements.reserve(static_cast<size_t>(count));
        for (uint64_t i = 0; i < count; ++i) {
            auto e = parse(pos, depth + 1);
            if (!e) {
                return e.err();
            }
            it.elements.push_back(std::move(*e));
        }
        return it;
    }

    result<item, decode_error> parse_map(item it, uint64_t count, size_t& pos, size_t depth) {
        const size_t at = it.offset - _base;
        if (count > (_in.size() - pos) / 2) {
            return fail(
                at, fmt::format("a map of {} pairs cannot fit in the {} octets that remain", count, _in.size() - pos),
                true);
        }
        it.kind = type::map;
        it.elements.reserve(static_cast<size_t>(2 * count));
        std::span<const uint8_t> previous_key;
        for (uint64_t i = 0; i < count; ++i) {
            const size_t key_at = pos;
            auto k = parse(pos, depth + 1);
            if (!k) {
                return k.err();
            }
            const std::span<const uint8_t> key = _in.subspan(key_at, pos - key_at);
            if (i > 0) {
                // RFC 8949 §4.2.1: keys in the bytewise lexicographic order
                // of their encodings; equal encodings are a duplicate key.
                if (std::equal(key.begin(), key.end(), previous_key.begin(), previous_key.end())) {
                    return fail(key_at, "a duplicate map key");
                }
                if (std::lexicographical_compare(key.begin(), key.end(), previous_key.begin(), previous_key.end())) {
                    return fail(key_at, "map keys out of order (RFC 8949 §4.2.1 sorts them by their encoded octets)");
                }
            }
            previous_key = key;
            auto v = parse(pos, depth + 1);
            if (!v) {
                return v.err();
            }
            it.elements.push_back(std::move(*k));
            it.elements.push_back(std::move(*v));
        }
        return it;
    }

    decode_error fail(size_t at, std::string_view what, bool truncated = false) const {
        return decode_error{fmt::format("CBOR: {} at offset {}", what, _base + at), _base + at, truncated};
    }

    std::span<const uint8_t> _in;
    size_t _base;
};

} // namespace

const char* to_string(type t) noexcept {
    switch (t) {
    case type::unsigned_integer:
        return "an unsigned integer";
    case type::negative_integer:
        return "a negative integer";
    case type::byte_string:
        return "a byte string";
    case type::text_string:
        return "a text string";
    case type::array:
        return "an array";
    case type::map:
        return "a map";
    case type::tag:
        return "a tag";
    case type::boolean:
        return "a boolean";
    case type::null:
        return "null";
    }
    return "an unknown type";
}

item item::uint(uint64_t v) {
    item it;
    it.kind = type::unsigned_integer;
    it.number = v;
    return it;
}

item item::integer(int64_t v) {
    if (v >= 0) {
        return uint(static_cast<uint64_t>(v));
    }
    item it;
    it.kind = type::negative_integer;
    // -1 - v without overflow for INT64_MIN.
    it.number = static_cast<uint64_t>(-(v + 1));
    return it;
}

item item::bstr(std::span<const uint8_t> b) {
    item it;
    it.kind = type::byte_string;
    it.bytes.assign(b.begin(), b.end());
    return it;
}

item item::tstr(std::string_view s) {
    item it;
    it.kind = type::text_string;
    it.text.assign(s);
    return it;
}

item item::array(std::vector<item> elements) {
    item it;
    it.kind = type::array;
    it.elements = std::move(elements);
    return it;
}

item item::map() {
    item it;
    it.kind = type::map;
    return it;
}

item item::tagged(uint64_t tag, item content) {
    item it;
    it.kind = type::tag;
    it.number = tag;
    it.elements.push_back(std::move(content));
    return it;
}

item item::boolean_value(bool b) {
    item it;
    it.kind = type::boolean;
    it.number = b ? 1 : 0;
    return it;
}

item item::null_value() {
    return item{};
}

item& item::put(item key, item value) {
    elements.push_back(std::move(key));
    elements.push_back(std::move(value));
    return *this;
}

const item* item::find(int64_t key) const noexcept {
    if (kind != type::map) {
        return nullptr;
    }
    // The key as CBOR holds it (major type and argument), compared field by
    // field: maps of claims are searched 18 times per event by the Verifier.
    const type want_kind = key >= 0 ? type::unsigned_integer : type::negative_integer;
    const uint64_t want_number = key >= 0 ? static_cast<uint64_t>(key) : static_cast<uint64_t>(-(key + 1));
    for (size_t i = 0; i + 1 < elements.size(); i += 2) {
        if (elements[i].kind == want_kind && elements[i].number == want_number) {
            return &elements[i + 1];
        }
    }
    return nullptr;
}

std::optional<int64_t> item::as_int64() const noexcept {
    constexpr auto max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    if (kind == type::unsigned_integer && number <= max) {
        return static_cast<int64_t>(number);
    }
    if (kind == type::negative_integer && number <= max) {
        return -1 - static_cast<int64_t>(number);
    }
    return std::nullopt;
}

bool operator==(const item& a, const item& b) noexcept {
    return a.kind == b.kind && a.number == b.number && a.bytes == b.bytes && a.text == b.text &&
           a.elements == b.elements;
}

status encode_to(const item& it, std::vector<uint8_t>& out) {
    return encode_item(it, out, 1);
}

result<std::vector<uint8_t>> encode(const item& it) {
    std::vector<uint8_t> out;
    PTPSEC_TRY(done, encode_item(it, out, 1));
    return out;
}

result<prefix_item, decode_error> decode_prefix(std::span<const uint8_t> in, size_t base_offset) {
    decoder d(in, base_offset);
    size_t pos = 0;
    auto it = d.parse(pos, 1);
    if (!it) {
        return it.err();
    }
    return prefix_item{std::move(*it), pos};
}

result<item, decode_error> decode(std::span<const uint8_t> in) {
    auto p = decode_prefix(in);
    if (!p) {
        return p.err();
    }
    if (p->length != in.size()) {
        return decode_error{
            fmt::format("CBOR: {} trailing octets after the item at offset {}", in.size() - p->length, p->length),
            p->length, false};
    }
    return std::move(p->value);
}

void writer::head(uint8_t major, uint64_t argument) {
    encode_head(major, argument, *_out);
}

} // namespace ptpsec::hsm::cbor
