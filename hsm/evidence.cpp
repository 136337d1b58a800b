#include <hsm/evidence.h>

#include <hsm/batch_builder.h>
#include <hsm/leaf_writer.h>

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <string_view>

namespace ptpsec::hsm {

namespace {

struct key_name {
    int64_t key;
    const char* name;
};

constexpr key_name claim_names[] = {
    {claim_key::version, "version"},
    {claim_key::event_type, "event_type"},
    {claim_key::ptp_seq, "ptp_seq"},
    {claim_key::phc_timestamp_ns, "phc_timestamp_ns"},
    {claim_key::event_digest, "event_digest"},
    {claim_key::nonce, "nonce"},
    {claim_key::monotonic_counter, "monotonic_counter"},
    {claim_key::signer_id, "signer_id"},
    {claim_key::pcr_summary, "pcr_summary"},
    {claim_key::domain_number, "domainNumber"},
    {claim_key::sdo_id, "sdoId"},
    {claim_key::source_port_identity, "sourcePortIdentity"},
    {claim_key::port_id, "port_id"},
    {claim_key::correction_field, "correctionField"},
    {claim_key::flags, "flags"},
    {claim_key::event_index, "event_index"},
    {claim_key::flag_field, "flagField"},
    {claim_key::message_length, "messageLength"},
};

constexpr key_name payload_names[] = {
    {payload_key::version, "version"},
    {payload_key::signer_id, "signer_id"},
    {payload_key::backend, "backend"},
    {payload_key::hardware_rooted, "hardware_rooted"},
    {payload_key::counter, "counter"},
    {payload_key::batch_time_ns, "batch_time_ns"},
    {payload_key::merkle_root, "merkle_root"},
    {payload_key::event_count, "event_count"},
    {payload_key::first_event_index, "first_event_index"},
    {payload_key::last_event_index, "last_event_index"},
    {payload_key::previous_root, "previous_root"},
    {payload_key::missed_events, "missed_events"},
    {payload_key::nonce, "nonce"},
};

constexpr key_name evidence_names[] = {
    {evidence_key::claims, "claims"},       {evidence_key::leaf_index, "leaf_index"},
    {evidence_key::tree_size, "tree_size"}, {evidence_key::inclusion_path, "inclusion_path"},
    {evidence_key::token, "token"},
};

constexpr key_name record_names[] = {
    {record_key::type, "type"},
    {record_key::token, "token"},
    {record_key::leaves, "leaves"},
};

// Reads a decoded map against a fixed key set: every key an integer the
// set names, typed getters that say which key, what it is and where.
class map_reader {
public:
    map_reader(const cbor::item& m, std::string_view what, std::span<const key_name> names)
        : _m(m), _what(what), _names(names) {}

    status check_keys() const {
        if (_m.kind != cbor::type::map) {
            return error{
                fmt::format("{}: expected a map at offset {}, found {}", _what, _m.offset, cbor::to_string(_m.kind))};
        }
        for (size_t i = 0; i < _m.elements.size(); i += 2) {
            const cbor::item& k = _m.elements[i];
            const auto v = k.as_int64();
            if (!k.is_integer() || !v) {
                return error{fmt::format("{}: the key at offset {} is {}, not an integer key of this map", _what,
                                         k.offset, cbor::to_string(k.kind))};
            }
            if (name_of(*v) == nullptr) {
                return error{fmt::format("{}: unknown key {} at offset {}", _what, *v, k.offset)};
            }
        }
        return ok_status();
    }

    bool has(int64_t key) const noexcept { return _m.find(key) != nullptr; }

    result<const cbor::item*> get(int64_t key) const {
        const cbor::item* v = _m.find(key);
        if (v == nullptr) {
            return error{fmt::format("{}: key {} ({}) is missing from the map at offset {}", _what, key, name_of(key),
                                     _m.offset)};
        }
        return v;
    }

    result<uint64_t> uint(int64_t key, uint64_t max = std::numeric_limits<uint64_t>::max()) const {
        PTPSEC_TRY(v, get(key));
        if ((*v)->kind != cbor::type::unsigned_integer) {
            return wrong_type(key, **v, "an unsigned integer");
        }
        if ((*v)->number > max) {
            return error{fmt::format("{}: key {} ({}) at offset {} is {}, above its maximum {}", _what, key,
                                     name_of(key), (*v)->offset, (*v)->number, max)};
        }
        return (*v)->number;
    }

    result<int64_t> int64(int64_t key) const {
        PTPSEC_TRY(v, get(key));
        const auto n = (*v)->as_int64();
        if (!(*v)->is_integer() || !n) {
            return wrong_type(key, **v, "an integer in the int64 range");
        }
        return *n;
    }

    result<std::vector<uint8_t>> bytes(int64_t key, size_t min, size_t max) const {
        PTPSEC_TRY(v, get(key));
        return bytes_of(key, **v, min, max);
    }

    /// A byte string, or null for "none".
    result<std::optional<std::vector<uint8_t>>> bytes_or_null(int64_t key, size_t min, size_t max) const {
        PTPSEC_TRY(v, get(key));
        if ((*v)->kind == cbor::type::null) {
            return std::optional<std::vector<uint8_t>>{};
        }
        PTPSEC_TRY(b, bytes_of(key, **v, min, max));
        return std::optional<std::vector<uint8_t>>{std::move(*b)};
    }

    result<digest> hash(int64_t key) const {
        PTPSEC_TRY(b, bytes(key, sha256_len, sha256_len));
        digest d{};
        std::copy(b->begin(), b->end(), d.begin());
        return d;
    }

    result<std::string> text(int64_t key, size_t min, size_t max) const {
        PTPSEC_TRY(v, get(key));
        if ((*v)->kind != cbor::type::text_string) {
            return wrong_type(key, **v, "a text string");
        }
        if ((*v)->text.size() < min || (*v)->text.size() > max) {
            return error{fmt::format("{}: key {} ({}) at offset {} is {} octets long, not {} to {}", _what, key,
                                     name_of(key), (*v)->offset, (*v)->text.size(), min, max)};
        }
        return (*v)->text;
    }

    result<bool> boolean(int64_t key) const {
        PTPSEC_TRY(v, get(key));
        if ((*v)->kind != cbor::type::boolean) {
            return wrong_type(key, **v, "a boolean");
        }
        return (*v)->number != 0;
    }

    const char* name_of(int64_t key) const noexcept {
        for (const key_name& n : _names) {
            if (n.key == key) {
                return n.name;
            }
        }
        return nullptr;
    }

    error wrong_type(int64_t key, const cbor::item& v, std::string_view wanted) const {
        return error{fmt::format("{}: key {} ({}) at offset {} is {}, not {}", _what, key, name_of(key), v.offset,
                                 cbor::to_string(v.kind), wanted)};
    }

private:
    result<std::vector<uint8_t>> bytes_of(int64_t key, const cbor::item& v, size_t min, size_t max) const {
        if (v.kind != cbor::type::byte_string) {
            return wrong_type(key, v, "a byte string");
        }
        if (v.bytes.size() < min || v.bytes.size() > max) {
            return error{fmt::format("{}: key {} ({}) at offset {} is {} octets long, not {}", _what, key, name_of(key),
                                     v.offset, v.bytes.size(),
                                     min == max ? fmt::format("{}", min) : fmt::format("{} to {}", min, max))};
        }
        return v.bytes;
    }

    const cbor::item& _m;
    std::string_view _what;
    std::span<const key_name> _names;
};

result<cbor::item> decode_item(std::span<const uint8_t> encoded, std::string_view what) {
    auto it = cbor::decode(encoded);
    if (!it) {
        return error{fmt::format("{}: {}", what, it.message())};
    }
    return std::move(*it);
}

std::string_view as_text(std::span<const uint8_t> b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
}

result<event_claims> claims_from_item(const cbor::item& m) {
    constexpr std::string_view what = "claims";
    map_reader r(m, what, claim_names);
    PTPSEC_TRY(keys, r.check_keys());
    event_claims c;
    PTPSEC_TRY(version, r.uint(claim_key::version));
    if (*version != evidence_version) {
        return error{fmt::format("claims: version {} is not {}", *version, evidence_version)};
    }
    c.version = *version;
    PTPSEC_TRY(event_type, r.uint(claim_key::event_type, event_type_of(event_direction::tx, 15)));
    c.direction = *event_type >= 16 ? event_direction::tx : event_direction::rx;
    c.message_type = static_cast<uint8_t>(*event_type % 16);
    PTPSEC_TRY(seq, r.uint(claim_key::ptp_seq, 0xFFFF));
    c.sequence_id = static_cast<uint16_t>(*seq);
    PTPSEC_TRY(ts, r.uint(claim_key::phc_timestamp_ns));
    c.phc_timestamp_ns = *ts;
    PTPSEC_TRY(d, r.hash(claim_key::event_digest));
    c.event_digest = *d;
    PTPSEC_TRY(nonce, r.bytes_or_null(claim_key::nonce, min_nonce_len, max_nonce_len));
    c.nonce = std::move(*nonce);
    PTPSEC_TRY(counter, r.uint(claim_key::monotonic_counter));
    c.monotonic_counter = *counter;
    PTPSEC_TRY(signer_id, r.text(claim_key::signer_id, 1, max_signer_id_len));
    c.signer_id = std::move(*signer_id);
    PTPSEC_TRY(pcr, r.bytes_or_null(claim_key::pcr_summary, 1, max_pcr_summary_len));
    c.pcr_summary = std::move(*pcr);
    PTPSEC_TRY(domain, r.uint(claim_key::domain_number, 0xFF));
    c.domain_number = static_cast<uint8_t>(*domain);
    PTPSEC_TRY(sdo, r.uint(claim_key::sdo_id, 0xFFF)); // 4-bit major, 8-bit minor
    c.sdo_id = static_cast<uint16_t>(*sdo);
    PTPSEC_TRY(spi, r.bytes(claim_key::source_port_identity, 10, 10));
    std::copy(spi->begin(), spi->end(), c.source_port_identity.begin());
    PTPSEC_TRY(port, r.uint(claim_key::port_id, 0xFFFF));
    c.port_id = static_cast<uint16_t>(*port);
    PTPSEC_TRY(correction, r.int64(claim_key::correction_field));
    c.correction_field = *correction;
    PTPSEC_TRY(flags, r.uint(claim_key::flags, 0xFF));
    c.flags = static_cast<uint8_t>(*flags);
    PTPSEC_TRY(index, r.uint(claim_key::event_index));
    c.event_index = *index;
    PTPSEC_TRY(flag_field, r.uint(claim_key::flag_field, 0xFFFF));
    c.flag_field = static_cast<uint16_t>(*flag_field);
    PTPSEC_TRY(length, r.uint(claim_key::message_length, 0xFFFF));
    c.message_length = static_cast<uint16_t>(*length);
    return c;
}

result<backend_kind> backend_from_text(std::string_view s) {
    for (const backend_kind k : {backend_kind::tpm, backend_kind::pkcs11, backend_kind::software}) {
        if (s == to_string(k)) {
            return k;
        }
    }
    return error{fmt::format("batch payload: backend \"{}\" is not tpm, pkcs11 or software", s)};
}

result<std::vector<digest>> path_from_item(const cbor::item& v, const map_reader& r) {
    if (v.kind != cbor::type::array) {
        return r.wrong_type(evidence_key::inclusion_path, v, "an array");
    }
    if (v.elements.size() > max_inclusion_path_len) {
        return error{fmt::format("event evidence: the inclusion path at offset {} has {} hashes, more than {}",
                                 v.offset, v.elements.size(), max_inclusion_path_len)};
    }
    std::vector<digest> path;
    path.reserve(v.elements.size());
    for (const cbor::item& h : v.elements) {
        if (h.kind != cbor::type::byte_string || h.bytes.size() != sha256_len) {
            return error{fmt::format("event evidence: the inclusion path hash at offset {} is not a byte string "
                                     "of {} octets",
                                     h.offset, sha256_len)};
        }
        digest d{};
        std::copy(h.bytes.begin(), h.bytes.end(), d.begin());
        path.push_back(d);
    }
    return path;
}

// The claims of one leaf against its batch's payload.
/// `what` names the evidence in a message; with `leaf`, followed by the
/// leaf's number (formatted only when something is wrong).
status check_claims_against_payload(const event_claims& c, const batch_payload& p, std::string_view what,
                                    std::optional<size_t> leaf = std::nullopt) {
    const auto where = [&] { return leaf ? fmt::format("{} {}", what, *leaf) : std::string(what); };
    if (c.monotonic_counter != p.counter) {
        return error{fmt::format("{}: the claims' monotonic_counter {} is not the batch counter {}", where(),
                                 c.monotonic_counter, p.counter)};
    }
    if (c.signer_id != p.signer_id) {
        return error{fmt::format("{}: the claims' signer_id \"{}\" is not the batch's \"{}\"", where(), c.signer_id,
                                 p.signer_id)};
    }
    if (c.nonce != p.nonce) {
        return error{fmt::format("{}: the claims' nonce is not the batch's verifier nonce", where())};
    }
    if (c.event_index < p.first_event_index || c.event_index > p.last_event_index) {
        return error{fmt::format("{}: event index {} is outside the batch's {}..{}", where(), c.event_index,
                                 p.first_event_index, p.last_event_index)};
    }
    return ok_status();
}

} // namespace

status check_nonce_length(const std::optional<std::vector<uint8_t>>& nonce, std::string_view what) {
    if (nonce && (nonce->size() < min_nonce_len || nonce->size() > max_nonce_len)) {
        return error{
            fmt::format("{}: a nonce is {} to {} octets, not {}", what, min_nonce_len, max_nonce_len, nonce->size())};
    }
    return ok_status();
}

result<event_claims> claims_from_record(const event_record& rec, uint64_t event_index, uint64_t counter,
                                        std::string_view signer_id, const std::optional<std::vector<uint8_t>>& nonce,
                                        const std::optional<std::vector<uint8_t>>& pcr_summary) {
    if (rec.version != event_record_version) {
        return error{fmt::format("event record version {} is not {}", rec.version, event_record_version)};
    }
    if (rec.direction != event_direction::rx && rec.direction != event_direction::tx) {
        return error{
            fmt::format("event record direction {} is not rx (0) or tx (1)", static_cast<unsigned>(rec.direction))};
    }
    if (rec.messageType > 15) {
        return error{fmt::format("event record messageType {} does not fit a nibble", rec.messageType)};
    }
    event_claims c;
    c.direction = rec.direction;
    c.message_type = rec.messageType;
    c.sequence_id = rec.sequenceId;
    c.phc_timestamp_ns = rec.timestamp_ns;
    std::copy(rec.digest.begin(), rec.digest.end(), c.event_digest.begin());
    c.nonce = nonce;
    c.monotonic_counter = counter;
    c.signer_id = std::string(signer_id);
    c.pcr_summary = pcr_summary;
    c.domain_number = rec.domainNumber;
    c.sdo_id = rec.sdoId;
    c.source_port_identity = rec.sourcePortIdentity;
    c.port_id = rec.port_id;
    c.correction_field = rec.correctionField;
    c.flags = rec.flags;
    c.event_index = event_index;
    c.flag_field = rec.flagField;
    c.message_length = rec.messageLength;
    return c;
}

result<std::vector<uint8_t>> encode_claims(const event_claims& c) {
    leaf_fields f;
    f.version = c.version;
    f.event_type = event_type_of(c.direction, c.message_type);
    f.sequence_id = c.sequence_id;
    f.phc_timestamp_ns = c.phc_timestamp_ns;
    f.event_digest = c.event_digest.data();
    f.domain_number = c.domain_number;
    f.sdo_id = c.sdo_id;
    f.source_port_identity = c.source_port_identity.data();
    f.port_id = c.port_id;
    f.correction_field = c.correction_field;
    f.flags = c.flags;
    f.event_index = c.event_index;
    f.flag_field = c.flag_field;
    f.message_length = c.message_length;
    const std::vector<uint8_t> batch_part =
        encode_batch_claims(c.nonce, c.monotonic_counter, c.signer_id, c.pcr_summary);
    std::vector<uint8_t> out(max_claims_len_besides_batch_part + batch_part.size());
    out.resize(static_cast<size_t>(put_claims(out.data(), f, batch_part) - out.data()));
    return out;
}

namespace {

/// Reads the claims as put_claims() writes them, octet by octet: a cursor
/// that fails (returns false) at the first octet outside that form.
class claims_cursor {
public:
    explicit claims_cursor(std::span<const uint8_t> in) noexcept : _p(in.data()), _end(in.data() + in.size()) {}

    bool at_end() const noexcept { return _p == _end; }

    bool octet(uint8_t want) noexcept {
        if (_p == _end || *_p != want) {
            return false;
        }
        ++_p;
        return true;
    }

    /// A head of `major` in its shortest form; its argument.
    bool head(uint8_t major, uint64_t& arg) noexcept {
        if (_p == _end || (*_p >> 5) != major) {
            return false;
        }
        const uint8_t additional = *_p & 0x1F;
        ++_p;
        if (additional < 24) {
            arg = additional;
            return true;
        }
        if (additional > 27) {
            return false;
        }
        const size_t len = size_t{1} << (additional - 24);
        if (static_cast<size_t>(_end - _p) < len) {
            return false;
        }
        arg = 0;
        for (size_t i = 0; i < len; ++i) {
            arg = (arg << 8) | _p[i];
        }
        _p += len;
        return cbor::shortest_head_length(arg) == 1 + len;
    }

    bool uint(uint64_t& v, uint64_t max = std::numeric_limits<uint64_t>::max()) noexcept {
        return head(0, v) && v <= max;
    }

    bool int64(int64_t& v) noexcept {
        if (_p == _end) {
            return false;
        }
        const bool negative = (*_p >> 5) == 1;
        uint64_t arg = 0;
        if (!head(negative ? 1 : 0, arg) || arg > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            return false;
        }
        v = negative ? -1 - static_cast<int64_t>(arg) : static_cast<int64_t>(arg);
        return true;
    }

    /// A byte string of min..max octets, viewed in place.
    bool bytes(std::span<const uint8_t>& out, size_t min, size_t max) noexcept {
        uint64_t len = 0;
        if (!head(2, len) || len < min || len > max || static_cast<uint64_t>(_end - _p) < len) {
            return false;
        }
        out = {_p, static_cast<size_t>(len)};
        _p += len;
        return true;
    }

    /// Null, or a byte string of min..max octets.
    bool bytes_or_null(std::optional<std::vector<uint8_t>>& out, size_t min, size_t max) {
        if (octet(null_octet)) {
            out.reset();
            return true;
        }
        std::span<const uint8_t> b;
        if (!bytes(b, min, max)) {
            return false;
        }
        out.emplace(b.begin(), b.end());
        return true;
    }

    /// A text string of min..max printable ASCII characters (any other text
    /// is left to the general decoder, which checks UTF-8).
    bool ascii_text(std::string& out, size_t min, size_t max) {
        uint64_t len = 0;
        if (!head(3, len) || len < min || len > max || static_cast<uint64_t>(_end - _p) < len) {
            return false;
        }
        for (uint64_t i = 0; i < len; ++i) {
            if (_p[i] < 0x20 || _p[i] > 0x7E) {
                return false;
            }
        }
        out.assign(reinterpret_cast<const char*>(_p), static_cast<size_t>(len));
        _p += len;
        return true;
    }

private:
    static constexpr uint8_t null_octet = 0xF6;
    const uint8_t* _p;
    const uint8_t* _end;
};

/// The one-octet encoding of a claim key (0x01-0x09 for 1-9, 0x20-0x28
/// for -1..-9).
constexpr uint8_t key_octet(int64_t key) noexcept {
    const cbor::integer_head h = cbor::head_of_integer(key);
    return static_cast<uint8_t>(h.major << 5 | h.argument);
}

} // namespace

std::optional<event_claims> decode_canonical_claims(std::span<const uint8_t> encoded) {
    claims_cursor c(encoded);
    event_claims out;
    uint64_t v = 0;
    std::span<const uint8_t> b;
    constexpr uint8_t map_of_18 = 0xA0 | 18;
    if (!c.octet(map_of_18) || !c.octet(key_octet(claim_key::version)) || !c.uint(v) || v != evidence_version) {
        return std::nullopt;
    }
    out.version = v;
    if (!c.octet(key_octet(claim_key::event_type)) || !c.uint(v, event_type_of(event_direction::tx, 15))) {
        return std::nullopt;
    }
    out.direction = v >= 16 ? event_direction::tx : event_direction::rx;
    out.message_type = static_cast<uint8_t>(v % 16);
    if (!c.octet(key_octet(claim_key::ptp_seq)) || !c.uint(v, 0xFFFF)) {
        return std::nullopt;
    }
    out.sequence_id = static_cast<uint16_t>(v);
    if (!c.octet(key_octet(claim_key::phc_timestamp_ns)) || !c.uint(out.phc_timestamp_ns)) {
        return std::nullopt;
    }
    if (!c.octet(key_octet(claim_key::event_digest)) || !c.bytes(b, sha256_len, sha256_len)) {
        return std::nullopt;
    }
    std::copy(b.begin(), b.end(), out.event_digest.begin());
    if (!c.octet(key_octet(claim_key::nonce)) || !c.bytes_or_null(out.nonce, min_nonce_len, max_nonce_len) ||
        !c.octet(key_octet(claim_key::monotonic_counter)) || !c.uint(out.monotonic_counter) ||
        !c.octet(key_octet(claim_key::signer_id)) || !c.ascii_text(out.signer_id, 1, max_signer_id_len) ||
        !c.octet(key_octet(claim_key::pcr_summary)) || !c.bytes_or_null(out.pcr_summary, 1, max_pcr_summary_len)) {
        return std::nullopt;
    }
    if (!c.octet(key_octet(claim_key::domain_number)) || !c.uint(v, 0xFF)) {
        return std::nullopt;
    }
    out.domain_number = static_cast<uint8_t>(v);
    if (!c.octet(key_octet(claim_key::sdo_id)) || !c.uint(v, 0xFFF)) {
        return std::nullopt;
    }
    out.sdo_id = static_cast<uint16_t>(v);
    if (!c.octet(key_octet(claim_key::source_port_identity)) || !c.bytes(b, 10, 10)) {
        return std::nullopt;
    }
    std::copy(b.begin(), b.end(), out.source_port_identity.begin());
    if (!c.octet(key_octet(claim_key::port_id)) || !c.uint(v, 0xFFFF)) {
        return std::nullopt;
    }
    out.port_id = static_cast<uint16_t>(v);
    if (!c.octet(key_octet(claim_key::correction_field)) || !c.int64(out.correction_field)) {
        return std::nullopt;
    }
    if (!c.octet(key_octet(claim_key::flags)) || !c.uint(v, 0xFF)) {
        return std::nullopt;
    }
    out.flags = static_cast<uint8_t>(v);
    if (!c.octet(key_octet(claim_key::event_index)) || !c.uint(out.event_index)) {
        return std::nullopt;
    }
    if (!c.octet(key_octet(claim_key::flag_field)) || !c.uint(v, 0xFFFF)) {
        return std::nullopt;
    }
    out.flag_field = static_cast<uint16_t>(v);
    if (!c.octet(key_octet(claim_key::message_length)) || !c.uint(v, 0xFFFF) || !c.at_end()) {
        return std::nullopt;
    }
    out.message_length = static_cast<uint16_t>(v);
    return out;
}

result<event_claims> decode_claims(std::span<const uint8_t> encoded) {
    // A leaf is nearly always in the one form a signer writes; anything else
    // goes through the general decoder, which says what is wrong with it.
    if (auto fast = decode_canonical_claims(encoded)) {
        return std::move(*fast);
    }
    return decode_claims_generally(encoded);
}

result<event_claims> decode_claims_generally(std::span<const uint8_t> encoded) {
    PTPSEC_TRY(m, decode_item(encoded, "claims"));
    return claims_from_item(*m);
}

result<std::vector<uint8_t>> encode_batch_payload(const batch_payload& p) {
    cbor::item m = cbor::item::map();
    m.put(payload_key::version, cbor::item::uint(p.version));
    m.put(payload_key::signer_id, cbor::item::tstr(p.signer_id));
    m.put(payload_key::backend, cbor::item::tstr(to_string(p.backend)));
    m.put(payload_key::hardware_rooted, cbor::item::boolean_value(p.hardware_rooted));
    m.put(payload_key::counter, cbor::item::uint(p.counter));
    m.put(payload_key::batch_time_ns, cbor::item::uint(p.batch_time_ns));
    m.put(payload_key::merkle_root, cbor::item::bstr(p.merkle_root));
    m.put(payload_key::event_count, cbor::item::uint(p.event_count));
    m.put(payload_key::first_event_index, cbor::item::uint(p.first_event_index));
    m.put(payload_key::last_event_index, cbor::item::uint(p.last_event_index));
    m.put(payload_key::previous_root, cbor::item::bstr(p.previous_root));
    m.put(payload_key::missed_events, cbor::item::uint(p.missed_events));
    if (p.nonce) {
        m.put(payload_key::nonce, cbor::item::bstr(*p.nonce));
    }
    return cbor::encode(m);
}

result<batch_payload> decode_batch_payload(std::span<const uint8_t> encoded) {
    constexpr std::string_view what = "batch payload";
    PTPSEC_TRY(m, decode_item(encoded, what));
    map_reader r(*m, what, payload_names);
    PTPSEC_TRY(keys, r.check_keys());
    batch_payload p;
    PTPSEC_TRY(version, r.uint(payload_key::version));
    if (*version != evidence_version) {
        return error{fmt::format("batch payload: version {} is not {}", *version, evidence_version)};
    }
    p.version = *version;
    PTPSEC_TRY(signer_id, r.text(payload_key::signer_id, 1, max_signer_id_len));
    p.signer_id = std::move(*signer_id);
    PTPSEC_TRY(backend_text, r.text(payload_key::backend, 1, 16));
    PTPSEC_TRY(backend, backend_from_text(*backend_text));
    p.backend = *backend;
    PTPSEC_TRY(hw, r.boolean(payload_key::hardware_rooted));
    p.hardware_rooted = *hw;
    if (p.backend == backend_kind::software && p.hardware_rooted) {
        return error{"batch payload: a software signer claims to be hardware-rooted"};
    }
    PTPSEC_TRY(counter, r.uint(payload_key::counter));
    if (*counter == 0) {
        return error{"batch payload: counter 0 is never signed (next_counter starts at 1)"};
    }
    p.counter = *counter;
    PTPSEC_TRY(time, r.uint(payload_key::batch_time_ns));
    p.batch_time_ns = *time;
    PTPSEC_TRY(root, r.hash(payload_key::merkle_root));
    p.merkle_root = *root;
    PTPSEC_TRY(count, r.uint(payload_key::event_count));
    if (*count == 0) {
        return error{"batch payload: event_count is 0; a batch has at least one event"};
    }
    p.event_count = *count;
    PTPSEC_TRY(first, r.uint(payload_key::first_event_index));
    PTPSEC_TRY(last, r.uint(payload_key::last_event_index));
    if (*last < *first || *last - *first >= std::numeric_limits<uint64_t>::max() ||
        *last - *first + 1 < p.event_count) {
        return error{fmt::format("batch payload: events {}..{} cannot hold {} distinct event indexes", *first, *last,
                                 p.event_count)};
    }
    p.first_event_index = *first;
    p.last_event_index = *last;
    PTPSEC_TRY(previous, r.hash(payload_key::previous_root));
    p.previous_root = *previous;
    PTPSEC_TRY(missed, r.uint(payload_key::missed_events));
    p.missed_events = *missed;
    if (r.has(payload_key::nonce)) {
        PTPSEC_TRY(nonce, r.bytes(payload_key::nonce, min_nonce_len, max_nonce_len));
        p.nonce = std::move(*nonce);
    }
    return p;
}

cbor::item to_item(const batch_record& r) {
    cbor::item m = cbor::item::map();
    m.put(record_key::type, cbor::item::uint(record_type_batch));
    m.put(record_key::token, to_item(r.token));
    cbor::item leaves = cbor::item::array();
    leaves.elements.reserve(r.leaves.size());
    for (const auto& leaf : r.leaves) {
        leaves.elements.push_back(cbor::item::bstr(leaf));
    }
    m.put(record_key::leaves, std::move(leaves));
    return m;
}

void write_log_record_head(std::vector<uint8_t>& out, std::span<const uint8_t> token, size_t leaves) {
    cbor::writer w(out);
    w.map_head(3);
    w.uint(record_key::type);
    w.uint(record_type_batch);
    w.uint(record_key::token);
    w.raw(token);
    w.uint(record_key::leaves);
    w.array_head(leaves);
}

result<std::vector<uint8_t>> encode_log_record(const batch_record& r) {
    // The same octets as cbor::encode(to_item(r)) (keys 1, 2, 3 in order),
    // without an item per leaf: a batch may hold a million of them.
    PTPSEC_TRY(token, cbor::encode(to_item(r.token)));
    size_t size = token->size() + 32;
    for (const auto& leaf : r.leaves) {
        size += leaf.size() + 3;
    }
    std::vector<uint8_t> out;
    out.reserve(size);
    write_log_record_head(out, *token, r.leaves.size());
    cbor::writer w(out);
    for (const auto& leaf : r.leaves) {
        w.bytes(leaf);
    }
    return out;
}

result<batch_record> decode_log_record(const cbor::item& it) {
    constexpr std::string_view what = "log record";
    map_reader r(it, what, record_names);
    PTPSEC_TRY(keys, r.check_keys());
    PTPSEC_TRY(type, r.uint(record_key::type));
    if (*type != record_type_batch) {
        return error{
            fmt::format("log record: record type {} at offset {} is not known (1 is a batch)", *type, it.offset)};
    }
    PTPSEC_TRY(token_item, r.get(record_key::token));
    batch_record rec;
    auto token = parse_cose_sign1(**token_item);
    if (!token) {
        return error{fmt::format("log record: {}", token.message())};
    }
    rec.token = std::move(*token);
    auto payload = decode_batch_payload(rec.token.payload);
    if (!payload) {
        return error{
            fmt::format("log record at offset {}: {} (offsets within the payload)", it.offset, payload.message())};
    }
    rec.payload = std::move(*payload);
    PTPSEC_TRY(leaves, r.get(record_key::leaves));
    if ((*leaves)->kind != cbor::type::array) {
        return r.wrong_type(record_key::leaves, **leaves, "an array");
    }
    if ((*leaves)->elements.size() != rec.payload.event_count) {
        return error{fmt::format("log record: {} leaves at offset {} but the payload's event_count is {}",
                                 (*leaves)->elements.size(), (*leaves)->offset, rec.payload.event_count)};
    }
    rec.leaves.reserve((*leaves)->elements.size());
    for (const cbor::item& leaf : (*leaves)->elements) {
        if (leaf.kind != cbor::type::byte_string) {
            return error{fmt::format("log record: the leaf at offset {} is {}, not a byte string", leaf.offset,
                                     cbor::to_string(leaf.kind))};
        }
        auto claims = decode_claims(leaf.bytes);
        if (!claims) {
            return error{fmt::format("log record: the leaf at offset {}: {} (offsets within the leaf)", leaf.offset,
                                     claims.message())};
        }
        rec.leaves.push_back(leaf.bytes);
    }
    return rec;
}

result<batch_record> decode_log_record(std::span<const uint8_t> encoded) {
    PTPSEC_TRY(it, decode_item(encoded, "log record"));
    return decode_log_record(*it);
}

result<std::vector<uint8_t>> encode_event_evidence(const event_evidence& e) {
    cbor::item m = cbor::item::map();
    m.put(evidence_key::claims, cbor::item::bstr(e.claims));
    m.put(evidence_key::leaf_index, cbor::item::uint(e.leaf_index));
    m.put(evidence_key::tree_size, cbor::item::uint(e.tree_size));
    cbor::item path = cbor::item::array();
    for (const digest& d : e.inclusion_path) {
        path.elements.push_back(cbor::item::bstr(d));
    }
    m.put(evidence_key::inclusion_path, std::move(path));
    m.put(evidence_key::token, to_item(e.token));
    return cbor::encode(m);
}

result<event_evidence> decode_event_evidence(std::span<const uint8_t> encoded) {
    constexpr std::string_view what = "event evidence";
    PTPSEC_TRY(m, decode_item(encoded, what));
    map_reader r(*m, what, evidence_names);
    PTPSEC_TRY(keys, r.check_keys());
    event_evidence e;
    PTPSEC_TRY(claims, r.bytes(evidence_key::claims, 1, encoded.size()));
    auto decoded_claims = decode_claims(*claims);
    if (!decoded_claims) {
        return error{fmt::format("event evidence: {} (offsets within the claims)", decoded_claims.message())};
    }
    e.claims = std::move(*claims);
    PTPSEC_TRY(index, r.uint(evidence_key::leaf_index));
    PTPSEC_TRY(size, r.uint(evidence_key::tree_size));
    if (*index >= *size) {
        return error{fmt::format("event evidence: leaf_index {} is not below tree_size {}", *index, *size)};
    }
    e.leaf_index = *index;
    e.tree_size = *size;
    PTPSEC_TRY(path_item, r.get(evidence_key::inclusion_path));
    PTPSEC_TRY(path, path_from_item(**path_item, r));
    e.inclusion_path = std::move(*path);
    PTPSEC_TRY(token_item, r.get(evidence_key::token));
    auto token = parse_cose_sign1(**token_item);
    if (!token) {
        return error{fmt::format("event evidence: {}", token.message())};
    }
    auto payload = decode_batch_payload(token->payload);
    if (!payload) {
        return error{fmt::format("event evidence: {} (offsets within the payload)", payload.message())};
    }
    e.token = std::move(*token);
    return e;
}

result<verified_event> check_event_evidence(const event_evidence& e, signature_algorithm alg,
                                            std::span<const uint8_t> public_key_der) {
    // Nothing in the payload is believed before the signature over it holds.
    PTPSEC_TRY(signed_ok, verify_cose_sign1(e.token, alg, public_key_der));
    PTPSEC_TRY(payload, decode_batch_payload(e.token.payload));
    if (as_text(e.token.kid) != payload->signer_id) {
        return error{
            fmt::format("event evidence: the token's kid is not the payload's signer_id \"{}\"", payload->signer_id)};
    }
    if (e.tree_size != payload->event_count) {
        return error{fmt::format("event evidence: tree_size {} is not the batch's event_count {}", e.tree_size,
                                 payload->event_count)};
    }
    PTPSEC_TRY(leaf, merkle_leaf_hash(e.claims));
    auto included = verify_inclusion(*leaf, e.leaf_index, e.tree_size, e.inclusion_path, payload->merkle_root);
    if (!included) {
        return error{fmt::format("event evidence: {}", included.message())};
    }
    PTPSEC_TRY(claims, decode_claims(e.claims));
    PTPSEC_TRY(consistent, check_claims_against_payload(*claims, *payload, "event evidence"));
    return verified_event{std::move(*claims), std::move(*payload)};
}

result<batch_payload> check_batch_record(const batch_record& r, signature_algorithm alg,
                                         std::span<const uint8_t> public_key_der) {
    PTPSEC_TRY(signed_ok, verify_cose_sign1(r.token, alg, public_key_der));
    PTPSEC_TRY(payload, decode_batch_payload(r.token.payload));
    PTPSEC_TRY(leaves, check_batch_leaves(r, *payload));
    return std::move(*payload);
}

result<std::vector<event_claims>> check_batch_leaves(const batch_record& r, const batch_payload& payload) {
    if (as_text(r.token.kid) != payload.signer_id) {
        return error{fmt::format("batch: the token's kid is not the payload's signer_id \"{}\"", payload.signer_id)};
    }
    if (r.leaves.size() != payload.event_count) {
        return error{
            fmt::format("batch: {} leaves but the payload's event_count is {}", r.leaves.size(), payload.event_count)};
    }
    PTPSEC_TRY(root, merkle_tree_hash(r.leaves));
    if (*root != payload.merkle_root) {
        return error{"batch: the Merkle root of the leaves is not the signed merkle_root"};
    }
    std::vector<event_claims> out;
    out.reserve(r.leaves.size());
    uint64_t previous_index = 0;
    for (size_t i = 0; i < r.leaves.size(); ++i) {
        auto claims = decode_claims(r.leaves[i]);
        if (!claims) {
            return error{fmt::format("batch: leaf {}: {}", i, claims.message())};
        }
        PTPSEC_TRY(consistent, check_claims_against_payload(*claims, payload, "batch: leaf", i));
        if (i == 0 && claims->event_index != payload.first_event_index) {
            return error{fmt::format("batch: the first leaf's event index {} is not first_event_index {}",
                                     claims->event_index, payload.first_event_index)};
        }
        if (i > 0 && claims->event_index <= previous_index) {
            return error{fmt::format("batch: leaf {} has event index {}, not above the previous leaf's {}", i,
                                     claims->event_index, previous_index)};
        }
        previous_index = claims->event_index;
        out.push_back(std::move(*claims));
    }
    if (previous_index != payload.last_event_index) {
        return error{fmt::format("batch: the last leaf's event index {} is not last_event_index {}", previous_index,
                                 payload.last_event_index)};
    }
    return out;
}

result<event_evidence> derive_event_evidence(const batch_record& r, size_t leaf_index) {
    PTPSEC_TRY(tree, merkle_tree::build(r.leaves));
    PTPSEC_TRY(path, tree->inclusion_path(leaf_index));
    event_evidence e;
    e.claims = r.leaves[leaf_index];
    e.leaf_index = leaf_index;
    e.tree_size = r.leaves.size();
    e.inclusion_path = std::move(*path);
    e.token = r.token;
    return e;
}

status check_chain(const batch_payload* previous, const batch_payload& current) {
    if (previous == nullptr) {
        if (current.previous_root != first_batch_previous_root) {
            return error{"chain: a first batch has a previous_root that is not all zero"};
        }
        if (current.missed_events != current.last_event_index + 1 - current.event_count) {
            return error{fmt::format("chain: the first batch reports {} missed events but its indexes 0..{} "
                                     "hold {} events",
                                     current.missed_events, current.last_event_index, current.event_count)};
        }
        return ok_status();
    }
    if (current.signer_id != previous->signer_id) {
        return error{fmt::format("chain: signer_id \"{}\" follows \"{}\"", current.signer_id, previous->signer_id)};
    }
    if (current.counter <= previous->counter) {
        return error{fmt::format("chain: counter {} does not increase from {} (replayed or reordered batch)",
                                 current.counter, previous->counter)};
    }
    if (current.previous_root != previous->merkle_root) {
        return error{fmt::format("chain: batch {} does not name the previous batch's root (a batch is missing "
                                 "or was replaced)",
                                 current.counter)};
    }
    if (current.first_event_index <= previous->last_event_index) {
        return error{fmt::format("chain: batch {} starts at event {}, not after the previous batch's last {}",
                                 current.counter, current.first_event_index, previous->last_event_index)};
    }
    const uint64_t span = current.last_event_index - previous->last_event_index;
    if (current.missed_events != span - current.event_count) {
        return error{fmt::format("chain: batch {} reports {} missed events but its indexes show {}", current.counter,
                                 current.missed_events, span - current.event_count)};
    }
    return ok_status();
}

status check_chain_after_gap(const batch_payload& previous, const batch_payload& current) {
    if (current.first_event_index <= previous.last_event_index) {
        return error{fmt::format("chain: batch {} starts at event {}, not after {}, the last of batch {}",
                                 current.counter, current.first_event_index, previous.last_event_index,
                                 previous.counter)};
    }
    const uint64_t between = current.last_event_index - previous.last_event_index - current.event_count;
    if (current.missed_events > between) {
        return error{fmt::format("chain: batch {} reports {} missed events but only {} indexes lie between it and "
                                 "batch {}",
                                 current.counter, current.missed_events, between, previous.counter)};
    }
    return ok_status();
}

result<batch_record> sign_batch(signer& s, const batch_request& req) {
    PTPSEC_TRY(builder, batch_builder::create());
    PTPSEC_TRY(signed_batch, (*builder)->sign(s, req));
    return (*builder)->to_record();
}

log_contents read_log(std::span<const uint8_t> log) {
    log_contents out;
    size_t pos = 0;
    while (pos < log.size()) {
        auto item = cbor::decode_prefix(log.subspan(pos), pos);
        if (!item) {
            out.problem = log_problem{item.err().offset, item.err().truncated,
                                      fmt::format("log record at offset {}: {}", pos, item.message())};
            return out;
        }
        auto rec = decode_log_record(item->value);
        if (!rec) {
            out.problem = log_problem{pos, false, fmt::format("log record at offset {}: {}", pos, rec.message())};
            return out;
        }
        out.records.push_back(log_entry{pos, item->length, std::move(*rec)});
        pos += item->length;
    }
    return out;
}

} // namespace ptpsec::hsm
