#include <control/nts/record.h>

#include <drivers/base/bytes.h>

#include <fmt/format.h>

#include <algorithm>

namespace ptpsec::nts {

// --- Names --------------------------------------------------------------------

std::string record_name(uint16_t type) {
    switch (static_cast<record_type>(type)) {
    case record_type::end_of_message:
        return "End of Message";
    case record_type::next_protocol_negotiation:
        return "NTS Next Protocol Negotiation";
    case record_type::error:
        return "Error";
    case record_type::warning:
        return "Warning";
    case record_type::aead_algorithm_negotiation:
        return "AEAD Algorithm Negotiation";
    case record_type::new_cookie:
        return "New Cookie for NTPv4";
    case record_type::ntpv4_server_negotiation:
        return "NTPv4 Server Negotiation";
    case record_type::ntpv4_port_negotiation:
        return "NTPv4 Port Negotiation";
    case record_type::association_mode:
        return "Association Mode";
    case record_type::current_parameters:
        return "Current Parameters";
    case record_type::heartbeat_timeout:
        return "Heartbeat Timeout";
    case record_type::next_parameters:
        return "Next Parameters";
    case record_type::nts_message_type:
        return "NTS Message Type";
    case record_type::ptp_time_server:
        return "PTP Time Server";
    case record_type::security_association:
        return "Security Association";
    case record_type::source_port_identity:
        return "Source PortIdentity";
    case record_type::status:
        return "Status";
    case record_type::supported_mac_algorithms:
        return "Supported MAC Algorithms";
    case record_type::ticket:
        return "Ticket";
    case record_type::ticket_key:
        return "Ticket Key";
    case record_type::ticket_key_id:
        return "Ticket Key ID";
    case record_type::validity_period:
        return "Validity Period";
    case record_type::platform_attestation:
        return "Platform Attestation";
    }
    return fmt::format("record type {}", type);
}

bool is_known_record(uint16_t type) noexcept {
    return type <= 7 || (type >= 1024 && type <= 1037);
}

bool is_ntp_only_record(uint16_t type) noexcept {
    return type == 3 || (type >= 5 && type <= 7);
}

std::string error_name(error_code code) {
    switch (code) {
    case error_code::unrecognized_critical_record:
        return "Unrecognized Critical Record";
    case error_code::bad_request:
        return "Bad Request";
    case error_code::internal_server_error:
        return "Internal Server Error";
    case error_code::not_authorized:
        return "Not Authorized";
    case error_code::grantor_not_registered:
        return "Grantor not Registered";
    }
    return fmt::format("error code {}", static_cast<uint16_t>(code));
}

std::string message_type_name(nts_message_type type) {
    switch (type) {
    case nts_message_type::registration_request:
        return "PTP Registration Request";
    case nts_message_type::registration_response:
        return "PTP Registration Response";
    case nts_message_type::registration_revoke:
        return "PTP Registration Revoke";
    case nts_message_type::heartbeat:
        return "PTP Heartbeat";
    }
    return fmt::format("message type {}", static_cast<uint16_t>(type));
}

std::optional<size_t> aead_key_length(aead_algorithm alg) noexcept {
    // seeds/001 Table 13.
    switch (alg) {
    case aead_algorithm::aes_siv_cmac_256:
        return 32;
    case aead_algorithm::aes_siv_cmac_384:
        return 48;
    case aead_algorithm::aes_siv_cmac_512:
        return 64;
    }
    return std::nullopt;
}

std::optional<icv::algorithm> to_icv_algorithm(mac_algorithm type, size_t key_length) noexcept {
    return icv::from_mac_type(static_cast<uint16_t>(type), key_length);
}

mac_algorithm to_mac_algorithm(icv::algorithm alg) noexcept {
    return static_cast<mac_algorithm>(icv::info(alg).mac_type);
}

namespace {

std::string_view association_type_name(association_type type) {
    switch (type) {
    case association_type::group:
        return "Group";
    case association_type::ipv4:
        return "IPv4";
    case association_type::ipv6:
        return "IPv6";
    case association_type::ieee802_3:
        return "802.3";
    case association_type::port_identity:
        return "PortIdentity";
    }
    return "unknown";
}

/// "Validity Period in Current Parameters", or "Validity Period" without a place.
std::string subject(uint16_t type, std::string_view where) {
    if (where.empty()) {
        return record_name(type);
    }
    return fmt::format("{} in {}", record_name(type), where);
}

parse_error refuse(record_type type, std::string_view where, std::string_view detail) {
    return bad_request(fmt::format("{}: {}", subject(static_cast<uint16_t>(type), where), detail));
}

parse_result<ok_t> expect_size(record_type type, std::span<const uint8_t> body, size_t size, std::string_view where) {
    if (body.size() != size) {
        return refuse(type, where, fmt::format("{} octets, {} expected", body.size(), size));
    }
    return ok_t{};
}

template <typename E>
parse_result<std::vector<E>> decode_u16_list(record_type type, std::span<const uint8_t> body, std::string_view where) {
    if (body.size() % 2 != 0) {
        return refuse(type, where, fmt::format("{} octets, not a list of 16-bit numbers", body.size()));
    }
    const size_t n = body.size() / 2;
    if (n > max_list_entries) {
        return refuse(type, where, fmt::format("{} entries, at most {}", n, max_list_entries));
    }
    std::vector<E> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        out.push_back(static_cast<E>(load_be16(body.data() + 2 * i)));
    }
    return out;
}

template <typename E>
void append_u16_list(record_writer& w, record_type type, std::span<const E> list) {
    const size_t mark = w.open(type, default_critical(type));
    for (const E v : list) {
        w.put_u16(static_cast<uint16_t>(v));
    }
    w.close(mark);
}

/// The Association Value of a known type, from exactly value_size(type) octets.
association_value decode_association_value(association_type type, const uint8_t* p) {
    switch (type) {
    case association_type::group:
        return group_number{p[0], static_cast<uint16_t>(((p[1] & 0x0F) << 8) | p[2]), load_be16(p + 3)};
    case association_type::ipv4: {
        ipv4_address a;
        std::copy_n(p, a.octets.size(), a.octets.begin());
        return a;
    }
    case association_type::ipv6: {
        ipv6_address a;
        std::copy_n(p, a.octets.size(), a.octets.begin());
        return a;
    }
    case association_type::ieee802_3: {
        mac_address a;
        std::copy_n(p, a.octets.size(), a.octets.begin());
        return a;
    }
    case association_type::port_identity:
        break;
    }
    port_identity id;
    std::copy_n(p, id.clock_identity.size(), id.clock_identity.begin());
    id.port_number = load_be16(p + 8);
    return id;
}

/// One association tuple at body[off..]: Association Type, then a value of the
/// length Table 15 gives it. `label` prefixes field errors ("entry 2: ").
parse_result<association_value> read_tuple(record_type rtype, std::span<const uint8_t> body, size_t& off,
                                           std::string_view label, bool whole_body, std::string_view where) {
    if (body.size() - off < 2) {
        return refuse(rtype, where,
                      fmt::format("{}Association Type: {} octets left, 2 needed", label, body.size() - off));
    }
    const uint16_t raw_type = load_be16(body.data() + off);
    const auto type = static_cast<association_type>(raw_type);
    const std::optional<size_t> size = association_value_size(type);
    if (!size) {
        return refuse(rtype, where,
                      fmt::format("{}Association Type {} unknown (Table 15 defines 0-4)", label, raw_type));
    }
    const size_t left = body.size() - off - 2;
    if (whole_body ? left != *size : left < *size) {
        return refuse(rtype, where,
                      fmt::format("{}{} value: {} octets{}, {} expected", label, association_type_name(type), left,
                                  whole_body ? "" : " left", *size));
    }
    const uint8_t* value = body.data() + off + 2;
    if (type == association_type::group && (value[1] & 0xF0) != 0) {
        // seeds/001 §4.2.2: group number = {domainNumber || 4 bit zero padding || sdoId || subGroup}.
        return refuse(rtype, where,
                      fmt::format("{}Group value: padding bits above majorSdoId are {:#04x}, must be zero", label,
                                  value[1] & 0xF0));
    }
    off += 2 + *size;
    return decode_association_value(type, value);
}

void put_association(record_writer& w, const association_value& value) {
    w.put_u16(static_cast<uint16_t>(type_of(value)));
    std::visit(
        [&w](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, group_number>) {
                w.put_u8(v.domain_number);
                w.put_u8(static_cast<uint8_t>((v.sdo_id >> 8) & 0x0F));
                w.put_u8(static_cast<uint8_t>(v.sdo_id));
                w.put_u16(v.sub_group);
            } else if constexpr (std::is_same_v<T, port_identity>) {
                w.put_bytes(v.clock_identity);
                w.put_u16(v.port_number);
            } else {
                w.put_bytes(v.octets);
            }
        },
        value);
}

port_identity read_port_identity(const uint8_t* p) {
    port_identity id;
    std::copy_n(p, id.clock_identity.size(), id.clock_identity.begin());
    id.port_number = load_be16(p + 8);
    return id;
}

void put_port_identity(record_writer& w, const port_identity& id) {
    w.put_bytes(id.clock_identity);
    w.put_u16(id.port_number);
}

} // namespace

// --- Reader and writer -------------------------------------------------------

record_reader::record_reader(std::span<const uint8_t> bytes, std::string_view where) noexcept
    : _bytes(bytes), _where(where) {}

parse_result<record_view> record_reader::next() {
    if (remaining() < record_header_size) {
        return bad_request(fmt::format("{}: record header at offset {} cut short: {} octets left, {} needed", _where,
                                       _offset, remaining(), record_header_size));
    }
    const uint8_t* p = _bytes.data() + _offset;
    const uint16_t first = load_be16(p);
    const uint16_t length = load_be16(p + 2);
    record_view r;
    r.critical = (first & critical_bit) != 0;
    r.type = static_cast<uint16_t>(first & ~critical_bit);
    r.offset = _offset;
    if (remaining() - record_header_size < length) {
        return bad_request(fmt::format("{}: Body Length {} at offset {} runs past the end ({} octets left)",
                                       subject(r.type, _where), length, _offset, remaining() - record_header_size));
    }
    r.body = _bytes.subspan(_offset + record_header_size, length);
    _offset += record_header_size + length;
    return r;
}

void record_writer::append(uint16_t type, bool critical, std::span<const uint8_t> body) {
    const size_t mark = open(type, critical);
    put_bytes(body);
    close(mark);
}

size_t record_writer::open(uint16_t type, bool critical) {
    const size_t mark = _out.size();
    put_u16(static_cast<uint16_t>((type & ~critical_bit) | (critical ? critical_bit : 0)));
    put_u16(0); // Body Length, written by close()
    return mark;
}

void record_writer::close(size_t mark) {
    const size_t length = _out.size() - mark - record_header_size;
    // A longer body cannot be encoded; see the class comment.
    store_be16(_out.data() + mark + 2, static_cast<uint16_t>(length));
}

void record_writer::put_u16(uint16_t v) {
    const uint8_t b[2] = {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    put_bytes(b);
}

void record_writer::put_u32(uint32_t v) {
    uint8_t b[4];
    store_be32(b, v);
    put_bytes(b);
}

bool default_critical(record_type type) noexcept {
    switch (type) {
    case record_type::heartbeat_timeout:    // seeds/001 §4.2.6: SHOULD NOT be set
    case record_type::status:               // seeds/001 §4.2.13: SHOULD NOT be set
    case record_type::new_cookie:           // RFC 8915 §4.1.6: MUST NOT be set
    case record_type::platform_attestation: // ours: a server that does not check it may ignore it
        return false;
    default:
        return true;
    }
}

bool critical_required(record_type type) noexcept {
    switch (type) {
    case record_type::end_of_message:
    case record_type::next_protocol_negotiation:
    case record_type::error:
    case record_type::nts_message_type:
        return true;
    default:
        return false;
    }
}

// --- Association types -------------------------------------------------------

association_type type_of(const association_value& value) noexcept {
    return static_cast<association_type>(value.index());
}

std::optional<size_t> association_value_size(association_type type) noexcept {
    // seeds/001 Table 15.
    switch (type) {
    case association_type::group:
        return 5;
    case association_type::ipv4:
        return 4;
    case association_type::ipv6:
        return 16;
    case association_type::ieee802_3:
        return 6;
    case association_type::port_identity:
        return port_identity_size;
    }
    return std::nullopt;
}

// --- Decoders ------------------------------------------------------------------

parse_result<ok_t> decode_end_of_message(std::span<const uint8_t> body, std::string_view where) {
    return expect_size(record_type::end_of_message, body, 0, where);
}

parse_result<std::vector<next_protocol>> decode_next_protocols(std::span<const uint8_t> body, std::string_view where) {
    return decode_u16_list<next_protocol>(record_type::next_protocol_negotiation, body, where);
}

parse_result<error_code> decode_error(std::span<const uint8_t> body, std::string_view where) {
    if (auto st = expect_size(record_type::error, body, 2, where); !st) {
        return st.err();
    }
    return static_cast<error_code>(load_be16(body.data()));
}

parse_result<uint16_t> decode_warning(std::span<const uint8_t> body, std::string_view where) {
    if (auto st = expect_size(record_type::warning, body, 2, where); !st) {
        return st.err();
    }
    return load_be16(body.data());
}

parse_result<std::vector<aead_algorithm>> decode_aead_algorithms(std::span<const uint8_t> body,
                                                                 std::string_view where) {
    return decode_u16_list<aead_algorithm>(record_type::aead_algorithm_negotiation, body, where);
}

parse_result<std::vector<uint8_t>> decode_new_cookie(std::span<const uint8_t> body, std::string_view /*where*/) {
    return std::vector<uint8_t>(body.begin(), body.end());
}

parse_result<std::string> decode_ntpv4_server(std::span<const uint8_t> body, std::string_view where) {
    if (body.empty()) {
        return refuse(record_type::ntpv4_server_negotiation, where, "empty");
    }
    for (size_t i = 0; i < body.size(); ++i) {
        if (body[i] < 0x21 || body[i] > 0x7E) {
            return refuse(record_type::ntpv4_server_negotiation, where,
                          fmt::format("octet {} is {:#04x}, not printable ASCII", i, body[i]));
        }
    }
    return std::string(body.begin(), body.end());
}

parse_result<uint16_t> decode_ntpv4_port(std::span<const uint8_t> body, std::string_view where) {
    if (auto st = expect_size(record_type::ntpv4_port_negotiation, body, 2, where); !st) {
        return st.err();
    }
    return load_be16(body.data());
}

parse_result<association_value> decode_association_mode(std::span<const uint8_t> body, std::string_view where) {
    size_t off = 0;
    return read_tuple(record_type::association_mode, body, off, "", true, where);
}

parse_result<uint16_t> decode_heartbeat_timeout(std::span<const uint8_t> body, std::string_view where) {
    if (auto st = expect_size(record_type::heartbeat_timeout, body, 2, where); !st) {
        return st.err();
    }
    return load_be16(body.data());
}

parse_result<message_type_record> decode_nts_message_type(std::span<const uint8_t> body, std::string_view where) {
    if (auto st = expect_size(record_type::nts_message_type, body, 4, where); !st) {
        return st.err();
    }
    return message_type_record{static_cast<nts_message_type>(load_be16(body.data())), body[2], body[3]};
}

parse_result<ptp_time_server> decode_ptp_time_server(std::span<const uint8_t> body, std::string_view where) {
    constexpr auto rtype = record_type::ptp_time_server;
    ptp_time_server out;
    size_t off = 0;
    while (off < body.size()) {
        const std::string label = fmt::format("entry {}: ", out.addresses.size() + 1);
        PTPSEC_TRY(tuple, read_tuple(rtype, body, off, label, false, where));
        const association_type type = type_of(*tuple);
        // seeds/001 §4.2.10: MUST NOT be the association type Group.
        if (type == association_type::group) {
            return refuse(rtype, where, fmt::format("{}Association Type Group (0) is not allowed", label));
        }
        // seeds/001 §4.2.10: the list SHALL contain only one of each association type.
        for (const association_value& seen : out.addresses) {
            if (type_of(seen) == type) {
                return refuse(rtype, where,
                              fmt::format("{}Association Type {} ({}) twice", label, association_type_name(type),
                                          static_cast<uint16_t>(type)));
            }
        }
        out.addresses.push_back(*tuple);
    }
    if (out.addresses.empty()) {
        return refuse(rtype, where, "no entries; at least one is required");
    }
    return out;
}

parse_result<security_association> decode_security_association(std::span<const uint8_t> body, std::string_view where) {
    constexpr auto rtype = record_type::security_association;
    if (body.size() < security_association_fixed_size) {
        return refuse(rtype, where,
                      fmt::format("{} octets, at least {} expected", body.size(), security_association_fixed_size));
    }
    const uint16_t key_length = load_be16(body.data() + 7);
    if (key_length == 0) {
        return refuse(rtype, where, "Key Length 0");
    }
    if (body.size() - security_association_fixed_size != key_length) {
        return refuse(rtype, where,
                      fmt::format("Key Length {} but {} octets of Key follow", key_length,
                                  body.size() - security_association_fixed_size));
    }
    security_association sa;
    sa.spp = body[0];
    sa.integrity_algorithm = static_cast<mac_algorithm>(load_be16(body.data() + 1));
    sa.key_id = load_be32(body.data() + 3);
    sa.key.assign(body.begin() + security_association_fixed_size, body.end());
    return sa;
}

parse_result<port_identity> decode_source_port_identity(std::span<const uint8_t> body, std::string_view where) {
    if (auto st = expect_size(record_type::source_port_identity, body, port_identity_size, where); !st) {
        return st.err();
    }
    return read_port_identity(body.data());
}

parse_result<status_report> decode_status(std::span<const uint8_t> body, std::string_view where) {
    constexpr auto rtype = record_type::status;
    if (body.size() < 2) {
        return refuse(rtype, where, fmt::format("{} octets, at least 2 expected", body.size()));
    }
    status_report s;
    s.type = static_cast<status_type>(load_be16(body.data()));
    // seeds/001 Table 25: Status Type 0 carries one octet (grantor load).
    if (s.type == status_type::grantor_load && body.size() != 3) {
        return refuse(
            rtype, where,
            fmt::format("Status Type 0 (grantor load): {} octets of Status Data, 1 expected", body.size() - 2));
    }
    s.data.assign(body.begin() + 2, body.end());
    return s;
}

parse_result<std::vector<mac_algorithm>> decode_mac_algorithms(std::span<const uint8_t> body, std::string_view where) {
    return decode_u16_list<mac_algorithm>(record_type::supported_mac_algorithms, body, where);
}

parse_result<ticket> decode_ticket(std::span<const uint8_t> body, std::string_view where) {
    constexpr auto rtype = record_type::ticket;
    // seeds/001 Table 27: Nonce Length sits at offset 14, the Nonce at 16.
    constexpr size_t nonce_offset = 16;
    if (body.size() < ticket_fixed_size) {
        return refuse(rtype, where, fmt::format("{} octets, at least {} expected", body.size(), ticket_fixed_size));
    }
    const size_t nonce_length = load_be16(body.data() + 14);
    if (body.size() - ticket_fixed_size < nonce_length) {
        return refuse(rtype, where,
                      fmt::format("Nonce Length {} but {} octets follow it before Encrypted SA Length", nonce_length,
                                  body.size() - ticket_fixed_size));
    }
    const size_t sa_length_offset = nonce_offset + nonce_length;
    const size_t encrypted_length = load_be16(body.data() + sa_length_offset);
    if (body.size() - sa_length_offset - 2 != encrypted_length) {
        return refuse(rtype, where,
                      fmt::format("Encrypted SA Length {} but {} octets follow", encrypted_length,
                                  body.size() - sa_length_offset - 2));
    }
    ticket t;
    t.ticket_key_id = load_be32(body.data());
    t.source_port_identity = read_port_identity(body.data() + 4);
    t.nonce.assign(body.begin() + nonce_offset, body.begin() + static_cast<ptrdiff_t>(sa_length_offset));
    t.encrypted_sa.assign(body.begin() + static_cast<ptrdiff_t>(sa_length_offset + 2), body.end());
    return t;
}

parse_result<secret_bytes> decode_ticket_key(std::span<const uint8_t> body, std::string_view where) {
    if (body.empty()) {
        return refuse(record_type::ticket_key, where, "empty");
    }
    return secret_bytes(body.begin(), body.end());
}

parse_result<uint32_t> decode_ticket_key_id(std::span<const uint8_t> body, std::string_view where) {
    if (auto st = expect_size(record_type::ticket_key_id, body, 4, where); !st) {
        return st.err();
    }
    return load_be32(body.data());
}

namespace {

/// One Length (2) || Value field of a Platform Attestation body at `at`,
/// 1 to `max` octets; `at` moves past it.
parse_result<std::span<const uint8_t>> read_attestation_field(std::span<const uint8_t> body, size_t& at,
                                                              std::string_view field, size_t max,
                                                              std::string_view where) {
    constexpr auto rtype = record_type::platform_attestation;
    if (body.size() - at < 2) {
        return refuse(rtype, where, fmt::format("ends at octet {}, before {} Length", body.size(), field));
    }
    const size_t len = load_be16(body.data() + at);
    at += 2;
    if (len == 0 || len > max) {
        return refuse(rtype, where, fmt::format("{} Length {}, 1 to {} allowed", field, len, max));
    }
    if (body.size() - at < len) {
        return refuse(rtype, where, fmt::format("{} Length {} but {} octets follow", field, len, body.size() - at));
    }
    const auto value = body.subspan(at, len);
    at += len;
    return value;
}

} // namespace

parse_result<platform_attestation> decode_platform_attestation(std::span<const uint8_t> body, std::string_view where) {
    constexpr auto rtype = record_type::platform_attestation;
    size_t at = 0;
    PTPSEC_TRY(id, read_attestation_field(body, at, "Signer ID", max_attestation_signer_id, where));
    PTPSEC_TRY(attest, read_attestation_field(body, at, "Attest", max_attestation_attest, where));
    PTPSEC_TRY(sig, read_attestation_field(body, at, "Signature", max_attestation_signature, where));
    if (at != body.size()) {
        return refuse(rtype, where, fmt::format("{} octets after the Signature", body.size() - at));
    }
    for (const uint8_t c : *id) {
        if (c < 0x20 || c == 0x7F) {
            return refuse(rtype, where, fmt::format("Signer ID holds the control character 0x{:02x}", c));
        }
    }
    platform_attestation out;
    out.signer_id.assign(id->begin(), id->end());
    out.attest.assign(attest->begin(), attest->end());
    out.signature.assign(sig->begin(), sig->end());
    return out;
}

parse_result<validity_period> decode_validity_period(std::span<const uint8_t> body, std::string_view where) {
    constexpr auto rtype = record_type::validity_period;
    if (auto st = expect_size(rtype, body, validity_period_size, where); !st) {
        return st.err();
    }
    const validity_period v{load_be32(body.data()), load_be32(body.data() + 4), load_be32(body.data() + 8)};
    // seeds/001 §4.2.18: the Grace Period value MUST NOT be greater than the Update Period.
    if (v.grace_period > v.update_period) {
        return refuse(
            rtype, where,
            fmt::format("Grace Period {} s greater than Update Period {} s", v.grace_period, v.update_period));
    }
    return v;
}

// --- Encoders --------------------------------------------------------------------

void append_end_of_message(record_writer& w) {
    w.append(record_type::end_of_message, default_critical(record_type::end_of_message), {});
}

void append_next_protocols(record_writer& w, std::span<const next_protocol> protocols) {
    append_u16_list(w, record_type::next_protocol_negotiation, protocols);
}

void append_error(record_writer& w, error_code code) {
    const size_t mark = w.open(record_type::error, default_critical(record_type::error));
    w.put_u16(static_cast<uint16_t>(code));
    w.close(mark);
}

void append_warning(record_writer& w, uint16_t code) {
    const size_t mark = w.open(record_type::warning, default_critical(record_type::warning));
    w.put_u16(code);
    w.close(mark);
}

void append_aead_algorithms(record_writer& w, std::span<const aead_algorithm> algorithms) {
    append_u16_list(w, record_type::aead_algorithm_negotiation, algorithms);
}

void append_new_cookie(record_writer& w, std::span<const uint8_t> cookie) {
    w.append(record_type::new_cookie, default_critical(record_type::new_cookie), cookie);
}

void append_ntpv4_server(record_writer& w, std::string_view server) {
    w.append(record_type::ntpv4_server_negotiation, default_critical(record_type::ntpv4_server_negotiation),
             std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(server.data()), server.size()));
}

void append_ntpv4_port(record_writer& w, uint16_t port) {
    const size_t mark =
        w.open(record_type::ntpv4_port_negotiation, default_critical(record_type::ntpv4_port_negotiation));
    w.put_u16(port);
    w.close(mark);
}

void append_association_mode(record_writer& w, const association_value& value) {
    const size_t mark = w.open(record_type::association_mode, default_critical(record_type::association_mode));
    put_association(w, value);
    w.close(mark);
}

void append_heartbeat_timeout(record_writer& w, uint16_t seconds) {
    const size_t mark = w.open(record_type::heartbeat_timeout, default_critical(record_type::heartbeat_timeout));
    w.put_u16(seconds);
    w.close(mark);
}

void append_nts_message_type(record_writer& w, const message_type_record& type) {
    const size_t mark = w.open(record_type::nts_message_type, default_critical(record_type::nts_message_type));
    w.put_u16(static_cast<uint16_t>(type.type));
    w.put_u8(type.version_major);
    w.put_u8(type.version_minor);
    w.close(mark);
}

void append_ptp_time_server(record_writer& w, const ptp_time_server& server) {
    const size_t mark = w.open(record_type::ptp_time_server, default_critical(record_type::ptp_time_server));
    for (const association_value& a : server.addresses) {
        put_association(w, a);
    }
    w.close(mark);
}

void append_security_association(record_writer& w, const security_association& sa) {
    const size_t mark = w.open(record_type::security_association, default_critical(record_type::security_association));
    w.put_u8(sa.spp);
    w.put_u16(static_cast<uint16_t>(sa.integrity_algorithm));
    w.put_u32(sa.key_id);
    w.put_u16(static_cast<uint16_t>(sa.key.size()));
    w.put_bytes(sa.key);
    w.close(mark);
}

void append_source_port_identity(record_writer& w, const port_identity& id) {
    const size_t mark = w.open(record_type::source_port_identity, default_critical(record_type::source_port_identity));
    put_port_identity(w, id);
    w.close(mark);
}

void append_status(record_writer& w, const status_report& status) {
    const size_t mark = w.open(record_type::status, default_critical(record_type::status));
    w.put_u16(static_cast<uint16_t>(status.type));
    w.put_bytes(status.data);
    w.close(mark);
}

void append_mac_algorithms(record_writer& w, std::span<const mac_algorithm> algorithms) {
    append_u16_list(w, record_type::supported_mac_algorithms, algorithms);
}

void append_ticket(record_writer& w, const ticket& t) {
    const size_t mark = w.open(record_type::ticket, default_critical(record_type::ticket));
    w.put_u32(t.ticket_key_id);
    put_port_identity(w, t.source_port_identity);
    w.put_u16(static_cast<uint16_t>(t.nonce.size()));
    w.put_bytes(t.nonce);
    w.put_u16(static_cast<uint16_t>(t.encrypted_sa.size()));
    w.put_bytes(t.encrypted_sa);
    w.close(mark);
}

void append_ticket_key(record_writer& w, std::span<const uint8_t> key) {
    w.append(record_type::ticket_key, default_critical(record_type::ticket_key), key);
}

void append_ticket_key_id(record_writer& w, uint32_t id) {
    const size_t mark = w.open(record_type::ticket_key_id, default_critical(record_type::ticket_key_id));
    w.put_u32(id);
    w.close(mark);
}

void append_platform_attestation(record_writer& w, const platform_attestation& a) {
    const size_t mark = w.open(record_type::platform_attestation, default_critical(record_type::platform_attestation));
    w.put_u16(static_cast<uint16_t>(a.signer_id.size()));
    w.put_bytes({reinterpret_cast<const uint8_t*>(a.signer_id.data()), a.signer_id.size()});
    w.put_u16(static_cast<uint16_t>(a.attest.size()));
    w.put_bytes(a.attest);
    w.put_u16(static_cast<uint16_t>(a.signature.size()));
    w.put_bytes(a.signature);
    w.close(mark);
}

void append_validity_period(record_writer& w, const validity_period& v) {
    const size_t mark = w.open(record_type::validity_period, default_critical(record_type::validity_period));
    w.put_u32(v.lifetime);
    w.put_u32(v.update_period);
    w.put_u32(v.grace_period);
    w.close(mark);
}

} // namespace ptpsec::nts
