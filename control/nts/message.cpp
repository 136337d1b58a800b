#include <control/nts/message.h>

#include <drivers/base/bytes.h>

#include <fmt/format.h>

#include <algorithm>

namespace ptpsec::nts {

namespace {

constexpr std::string_view key_request_name = "PTP Key Request";
constexpr std::string_view key_response_name = "PTP Key Response";
constexpr std::string_view registration_request_name = "PTP Registration Request";
constexpr std::string_view registration_response_name = "PTP Registration Response";
constexpr std::string_view registration_revoke_name = "PTP Registration Revoke";
constexpr std::string_view heartbeat_name = "PTP Heartbeat";
constexpr std::string_view tsr_request_name = "NTS-TSR request";
constexpr std::string_view current_name = "Current Parameters";
constexpr std::string_view next_name = "Next Parameters";

/// "Validity Period in Current Parameters".
std::string subject(record_type type, std::string_view where) {
    return fmt::format("{} in {}", record_name(type), where);
}

parse_error refuse(record_type type, std::string_view where, std::string_view detail) {
    return bad_request(fmt::format("{}: {}", subject(type, where), detail));
}

/// The section that says "the Critical Bit MUST be set".
std::string_view critical_clause(record_type type) {
    switch (type) {
    case record_type::end_of_message:
        return "§4.2.4";
    case record_type::error:
        return "§4.2.5";
    case record_type::next_protocol_negotiation:
        return "§4.2.8";
    default:
        return "§4.2.9";
    }
}

parse_result<ok_t> check_critical(const record_view& r, std::string_view where) {
    const auto type = static_cast<record_type>(r.type);
    if (critical_required(type) && !r.critical) {
        return refuse(type, where, fmt::format("Critical Bit not set (MUST be set, {})", critical_clause(type)));
    }
    return ok_t{};
}

/// Counts every record of a message, contained ones included (max_records).
class record_budget {
public:
    parse_result<ok_t> take(std::string_view where) {
        if (++_used > max_records) {
            return bad_request(fmt::format("{}: more than {} records in the message", where, max_records));
        }
        return ok_t{};
    }

private:
    size_t _used = 0;
};

/// The records of a message before End of Message, which is checked: present,
/// last, empty, critical.
parse_result<std::vector<record_view>> read_message(std::span<const uint8_t> message, std::string_view where,
                                                    record_budget& budget) {
    if (message.size() > max_message_size) {
        return bad_request(
            fmt::format("{}: {} octets, more than the {} accepted", where, message.size(), max_message_size));
    }
    record_reader reader(message, where);
    std::vector<record_view> records;
    while (!reader.at_end()) {
        PTPSEC_TRY(r, reader.next());
        if (auto st = budget.take(where); !st) {
            return st.err();
        }
        if (r->type != static_cast<uint16_t>(record_type::end_of_message)) {
            records.push_back(*r);
            continue;
        }
        if (auto st = decode_end_of_message(r->body, where); !st) {
            return st.err();
        }
        if (auto st = check_critical(*r, where); !st) {
            return st.err();
        }
        if (!reader.at_end()) {
            // seeds/001 §4.2.4: End of Message is the final record. What follows
            // is not read as a second message: one message per parse.
            return refuse(
                record_type::end_of_message, where,
                fmt::format("at offset {} is not the last record: {} octets follow", r->offset, reader.remaining()));
        }
        return records;
    }
    return bad_request(fmt::format("{}: End of Message missing (the last record must be one, §4.2.4)", where));
}

/// Keeps the records `allowed` in this place, skips unknown and NTP-only
/// records that are not critical, refuses the rest (see message.h).
parse_result<std::vector<record_view>> keep_allowed(std::span<const record_view> records,
                                                    std::span<const record_type> allowed, std::string_view where,
                                                    bool in_container) {
    std::vector<record_view> kept;
    for (const record_view& r : records) {
        const auto type = static_cast<record_type>(r.type);
        if (std::find(allowed.begin(), allowed.end(), type) != allowed.end()) {
            if (auto st = check_critical(r, where); !st) {
                return st.err();
            }
            kept.push_back(r);
        } else if (in_container && (type == record_type::current_parameters || type == record_type::next_parameters)) {
            return refuse(type, where, "containers do not nest");
        } else if (is_ntp_only_record(r.type)) {
            if (r.critical) {
                return refuse(type, where, "not used for PTP (Table 12), and its Critical Bit is set");
            }
        } else if (is_known_record(r.type)) {
            return bad_request(fmt::format("{} is not allowed in {}", record_name(r.type), where));
        } else if (r.critical) {
            // RFC 8915 §4: a critical record the recipient does not understand.
            return parse_error{error_code::unrecognized_critical_record,
                               fmt::format("{}: unknown record type {} at offset {} has its Critical Bit set", where,
                                           r.type, r.offset)};
        }
    }
    return kept;
}

/// The records of one place (a message or a container), by type.
class record_set {
public:
    record_set(std::vector<record_view> records, std::string_view where)
        : _records(std::move(records)), _where(where) {}

    std::vector<record_view> all(record_type type) const {
        std::vector<record_view> out;
        for (const record_view& r : _records) {
            if (r.type == static_cast<uint16_t>(type)) {
                out.push_back(r);
            }
        }
        return out;
    }

    bool has(record_type type) const { return !all(type).empty(); }

    parse_result<std::optional<record_view>> at_most_once(record_type type) const {
        const auto found = all(type);
        if (found.size() > 1) {
            return refuse(type, _where, fmt::format("{} records, at most one allowed", found.size()));
        }
        if (found.empty()) {
            return std::optional<record_view>{};
        }
        return std::optional<record_view>{found.front()};
    }

    parse_result<record_view> exactly_once(record_type type) const {
        const auto found = all(type);
        if (found.empty()) {
            return bad_request(fmt::format("{} missing from {} (mandatory)", record_name(type), _where));
        }
        if (found.size() > 1) {
            return refuse(type, _where, fmt::format("{} records, exactly one allowed", found.size()));
        }
        return found.front();
    }

private:
    std::vector<record_view> _records;
    std::string_view _where;
};

/// The records of a container, End of Message dropped (§4.2.3: MUST be ignored).
parse_result<record_set> read_container(const record_view& container, std::span<const record_type> allowed,
                                        std::string_view where, record_budget& budget) {
    record_reader reader(container.body, where);
    std::vector<record_view> records;
    while (!reader.at_end()) {
        PTPSEC_TRY(r, reader.next());
        if (auto st = budget.take(where); !st) {
            return st.err();
        }
        if (r->type == static_cast<uint16_t>(record_type::end_of_message)) {
            if (auto st = decode_end_of_message(r->body, where); !st) {
                return st.err();
            }
            continue;
        }
        records.push_back(*r);
    }
    PTPSEC_TRY(kept, keep_allowed(records, allowed, where, true));
    return record_set(std::move(*kept), where);
}

template <typename E>
bool contains(const std::vector<E>& list, E value) {
    return std::find(list.begin(), list.end(), value) != list.end();
}

/// Update Period <= full Lifetime, checked where the Lifetime is the full one.
parse_result<validity_period> read_validity(const record_set& set, std::string_view where, bool next) {
    PTPSEC_TRY(r, set.exactly_once(record_type::validity_period));
    PTPSEC_TRY(v, decode_validity_period(r->body, where));
    // seeds/001 §4.2.18: the Update Period value MUST NOT be greater than the full Lifetime.
    if (next && v->update_period > v->lifetime) {
        return refuse(
            record_type::validity_period, where,
            fmt::format("Update Period {} s greater than the full Lifetime {} s", v->update_period, v->lifetime));
    }
    return *v;
}

parse_result<key_parameters> read_key_parameters(const record_view& container, std::string_view where, bool next,
                                                 record_budget& budget) {
    // seeds/001 Table 5 / Table 17.
    static constexpr record_type allowed[] = {record_type::security_association, record_type::validity_period,
                                              record_type::ptp_time_server, record_type::ticket};
    PTPSEC_TRY(set, read_container(container, allowed, where, budget));
    key_parameters out;
    PTPSEC_TRY(sa, set->exactly_once(record_type::security_association));
    PTPSEC_TRY(sa_body, decode_security_association(sa->body, where));
    out.sa = std::move(*sa_body);
    PTPSEC_TRY(validity, read_validity(*set, where, next));
    out.validity = *validity;

    PTPSEC_TRY(server, set->at_most_once(record_type::ptp_time_server));
    PTPSEC_TRY(tk, set->at_most_once(record_type::ticket));
    // §4.2.3: PTP Time Server and Ticket exactly once in TiM, not at all in GrM.
    if (server->has_value() != tk->has_value()) {
        const record_type missing = server->has_value() ? record_type::ticket : record_type::ptp_time_server;
        const record_type present = server->has_value() ? record_type::ptp_time_server : record_type::ticket;
        return bad_request(fmt::format("{} missing from {}: TiM needs it with {}, GrM neither", record_name(missing),
                                       where, record_name(present)));
    }
    if (server->has_value()) {
        PTPSEC_TRY(addresses, decode_ptp_time_server((*server)->body, where));
        PTPSEC_TRY(ticket_body, decode_ticket((*tk)->body, where));
        out.unicast = unicast_parameters{std::move(*addresses), std::move(*ticket_body)};
    }
    return out;
}

parse_result<registration_parameters> read_registration_parameters(const record_view& container, std::string_view where,
                                                                   bool next, record_budget& budget) {
    // seeds/001 Table 9 / Table 18.
    static constexpr record_type allowed[] = {record_type::aead_algorithm_negotiation, record_type::validity_period,
                                              record_type::ticket_key_id, record_type::ticket_key};
    PTPSEC_TRY(set, read_container(container, allowed, where, budget));
    registration_parameters out;
    PTPSEC_TRY(aead, set->exactly_once(record_type::aead_algorithm_negotiation));
    PTPSEC_TRY(algorithms, decode_aead_algorithms(aead->body, where));
    // §4.2.1: in a PTP Registration Response this record MUST contain exactly one AEAD algorithm.
    if (algorithms->size() != 1) {
        return refuse(record_type::aead_algorithm_negotiation, where,
                      fmt::format("{} algorithms, exactly one in a response", algorithms->size()));
    }
    out.aead = algorithms->front();
    PTPSEC_TRY(validity, read_validity(*set, where, next));
    out.validity = *validity;
    PTPSEC_TRY(key_id, set->exactly_once(record_type::ticket_key_id));
    PTPSEC_TRY(key_id_value, decode_ticket_key_id(key_id->body, where));
    out.ticket_key_id = *key_id_value;
    PTPSEC_TRY(key, set->exactly_once(record_type::ticket_key));
    PTPSEC_TRY(key_bytes, decode_ticket_key(key->body, where));
    // §4.2.16: the key length MUST meet the requirements of the AEAD algorithm.
    if (const auto want = aead_key_length(out.aead); want && key_bytes->size() != *want) {
        return refuse(record_type::ticket_key, where,
                      fmt::format("{} octets, {} expected for AEAD algorithm {}", key_bytes->size(), *want,
                                  static_cast<uint16_t>(out.aead)));
    }
    out.ticket_key = std::move(*key_bytes);
    return out;
}

/// The one NTS Message Type record of an NTS-TSR message (§4.2.9), checked for
/// the Critical Bit and version 1.0. Looked for among all top-level records,
/// before anything else, so that a message of the wrong type says so.
parse_result<nts_message_type> read_message_type(std::span<const record_view> records, std::string_view where) {
    constexpr auto rtype = record_type::nts_message_type;
    const record_view* found = nullptr;
    size_t count = 0;
    for (const record_view& r : records) {
        if (r.type == static_cast<uint16_t>(rtype)) {
            found = &r;
            ++count;
        }
    }
    if (count == 0) {
        return bad_request(
            fmt::format("{} missing from {} (mandatory in every NTS-TSR message)", record_name(rtype), where));
    }
    if (count > 1) {
        return refuse(rtype, where, fmt::format("{} records, exactly one allowed", count));
    }
    if (auto st = check_critical(*found, where); !st) {
        return st.err();
    }
    PTPSEC_TRY(type, decode_nts_message_type(found->body, where));
    // §4.2.9: the Message Version MUST match 0100h.
    if (type->version_major != 1 || type->version_minor != 0) {
        return refuse(rtype, where,
                      fmt::format("version {}.{}, 1.0 expected", type->version_major, type->version_minor));
    }
    return type->type;
}

parse_result<ok_t> expect_message_type(std::span<const record_view> records, std::string_view where,
                                       nts_message_type expected) {
    PTPSEC_TRY(type, read_message_type(records, where));
    if (*type != expected) {
        return refuse(record_type::nts_message_type, where,
                      fmt::format("{} ({}), {} ({}) expected", message_type_name(*type), static_cast<uint16_t>(*type),
                                  message_type_name(expected), static_cast<uint16_t>(expected)));
    }
    return ok_t{};
}

/// read_message + keep_allowed for the top level of a message.
parse_result<record_set> read_top_level(std::span<const record_view> records, std::span<const record_type> allowed,
                                        std::string_view where) {
    PTPSEC_TRY(kept, keep_allowed(records, allowed, where, false));
    return record_set(std::move(*kept), where);
}

/// ptpsec's Platform Attestation, where a request allows it: at most once.
parse_result<std::optional<platform_attestation>> read_attestation(const record_set& set, std::string_view where) {
    PTPSEC_TRY(found, set.at_most_once(record_type::platform_attestation));
    if (!found->has_value()) {
        return std::optional<platform_attestation>{};
    }
    PTPSEC_TRY(a, decode_platform_attestation((*found)->body, where));
    return std::optional<platform_attestation>(std::move(*a));
}

/// Appends the Platform Attestation when there is one.
void append_attestation(record_writer& w, const std::optional<platform_attestation>& a) {
    if (a) {
        append_platform_attestation(w, *a);
    }
}

void open_container(record_writer& w, record_type type, const auto& put_body) {
    const size_t mark = w.open(type, default_critical(type));
    put_body();
    w.close(mark);
}

void put_key_parameters(record_writer& w, record_type container, const key_parameters& p) {
    open_container(w, container, [&] {
        append_security_association(w, p.sa);
        append_validity_period(w, p.validity);
        if (p.unicast) {
            append_ptp_time_server(w, p.unicast->time_server);
            append_ticket(w, p.unicast->ticket);
        }
    });
}

void put_registration_parameters(record_writer& w, record_type container, const registration_parameters& p) {
    open_container(w, container, [&] {
        const aead_algorithm chosen[] = {p.aead};
        append_aead_algorithms(w, chosen);
        append_validity_period(w, p.validity);
        append_ticket_key_id(w, p.ticket_key_id);
        append_ticket_key(w, p.ticket_key);
    });
}

void put_message_type(record_writer& w, nts_message_type type) {
    append_nts_message_type(w, message_type_record{type, 1, 0});
}

template <typename M, typename Parse>
parse_result<ok_t> round_trip(const M& message, Parse parse, std::string_view where) {
    std::vector<uint8_t> bytes = build(message);
    auto parsed = parse(bytes);
    secure_wipe(bytes.data(), bytes.size()); // it may hold keys
    if (!parsed) {
        return parse_error{error_code::internal_server_error, parsed.message()};
    }
    if (!(*parsed == message)) {
        return parse_error{error_code::internal_server_error,
                           fmt::format("{}: does not read back as built (a value the parser drops)", where)};
    }
    return ok_t{};
}

} // namespace

// --- NTS-KE ---------------------------------------------------------------------

parse_result<key_request> parse_key_request(std::span<const uint8_t> message) {
    constexpr std::string_view where = key_request_name;
    record_budget budget;
    PTPSEC_TRY(records, read_message(message, where, budget));
    // seeds/001 Table 2.
    static constexpr record_type allowed[] = {record_type::next_protocol_negotiation, record_type::association_mode,
                                              record_type::supported_mac_algorithms, record_type::source_port_identity,
                                              record_type::platform_attestation};
    PTPSEC_TRY(set, read_top_level(*records, allowed, where));
    key_request out;
    PTPSEC_TRY(attestation, read_attestation(*set, where));
    out.attestation = std::move(*attestation);
    PTPSEC_TRY(npn, set->exactly_once(record_type::next_protocol_negotiation));
    PTPSEC_TRY(protocols, decode_next_protocols(npn->body, where));
    // RFC 8915 §4.1.2: the request MUST list at least one protocol; seeds/001 §4.2.8: PTPv2.1.
    if (!contains(*protocols, next_protocol::ptpv2_1)) {
        return refuse(record_type::next_protocol_negotiation, where, "PTPv2.1 (1) not listed");
    }
    out.next_protocols = std::move(*protocols);

    PTPSEC_TRY(am, set->exactly_once(record_type::association_mode));
    PTPSEC_TRY(association, decode_association_mode(am->body, where));
    out.association = *association;

    PTPSEC_TRY(source, set->at_most_once(record_type::source_port_identity));
    if (out.is_unicast()) {
        // §4.2.12: exactly once if the client intends a unicast request in TiM.
        if (!source->has_value()) {
            return bad_request(fmt::format("{} missing from {} (mandatory in TiM)",
                                           record_name(record_type::source_port_identity), where));
        }
        PTPSEC_TRY(id, decode_source_port_identity((*source)->body, where));
        out.source_port_identity = *id;

        PTPSEC_TRY(macs, set->at_most_once(record_type::supported_mac_algorithms));
        if (macs->has_value()) {
            PTPSEC_TRY(list, decode_mac_algorithms((*macs)->body, where));
            // §4.2.14: if this record is present, at least HMAC-SHA256-128 MUST be included.
            if (!contains(*list, mac_algorithm::hmac_sha256_128)) {
                return refuse(record_type::supported_mac_algorithms, where, "HMAC-SHA256-128 (0) not listed");
            }
            out.supported_mac_algorithms = std::move(*list);
        }
    } else {
        // §4.2.12: MUST NOT be included if the client intends to join a group (GrM).
        if (source->has_value()) {
            return refuse(record_type::source_port_identity, where, "not allowed with Association Type Group (GrM)");
        }
        // §4.2.14: the server MUST ignore Supported MAC Algorithms with Association Type 0.
    }
    return out;
}

parse_result<key_response> parse_key_response(std::span<const uint8_t> message) {
    constexpr std::string_view where = key_response_name;
    record_budget budget;
    PTPSEC_TRY(records, read_message(message, where, budget));
    // seeds/001 Tables 3 and 4.
    static constexpr record_type allowed[] = {record_type::next_protocol_negotiation, record_type::current_parameters,
                                              record_type::next_parameters, record_type::error};
    PTPSEC_TRY(set, read_top_level(*records, allowed, where));
    key_response out;
    PTPSEC_TRY(npn, set->exactly_once(record_type::next_protocol_negotiation));
    PTPSEC_TRY(protocols, decode_next_protocols(npn->body, where));
    out.next_protocols = std::move(*protocols);

    PTPSEC_TRY(error, set->at_most_once(record_type::error));
    if (error->has_value()) {
        // Table 4: "both parameters container records are removed and a single error record is inserted".
        if (set->has(record_type::current_parameters) || set->has(record_type::next_parameters)) {
            return refuse(record_type::error, where, "with Current or Next Parameters (the error form has neither)");
        }
        PTPSEC_TRY(code, decode_error((*error)->body, where));
        out.outcome = *code;
        return out;
    }
    if (!contains(out.next_protocols, next_protocol::ptpv2_1)) {
        return refuse(record_type::next_protocol_negotiation, where, "PTPv2.1 (1) not listed");
    }
    PTPSEC_TRY(current, set->exactly_once(record_type::current_parameters));
    key_grant grant;
    PTPSEC_TRY(current_params, read_key_parameters(*current, current_name, false, budget));
    grant.current = std::move(*current_params);
    PTPSEC_TRY(next, set->at_most_once(record_type::next_parameters));
    if (next->has_value()) {
        PTPSEC_TRY(next_params, read_key_parameters(**next, next_name, true, budget));
        // §3.2: Next Parameters "follows the same composition as the Current Parameters".
        if (next_params->unicast.has_value() != grant.current.unicast.has_value()) {
            return refuse(record_type::next_parameters, where,
                          fmt::format("{} but Current Parameters {} (TiM has PTP Time Server and Ticket in both)",
                                      next_params->unicast ? "TiM" : "GrM", grant.current.unicast ? "TiM" : "GrM"));
        }
        grant.next = std::move(*next_params);
    }
    out.outcome = std::move(grant);
    return out;
}

// --- NTS-TSR --------------------------------------------------------------------

parse_result<registration_request> parse_registration_request(std::span<const uint8_t> message) {
    constexpr std::string_view where = registration_request_name;
    record_budget budget;
    PTPSEC_TRY(records, read_message(message, where, budget));
    if (auto st = expect_message_type(*records, where, nts_message_type::registration_request); !st) {
        return st.err();
    }
    // seeds/001 Table 6.
    static constexpr record_type allowed[] = {record_type::nts_message_type, record_type::ptp_time_server,
                                              record_type::aead_algorithm_negotiation,
                                              record_type::supported_mac_algorithms, record_type::platform_attestation};
    PTPSEC_TRY(set, read_top_level(*records, allowed, where));
    registration_request out;
    PTPSEC_TRY(attestation, read_attestation(*set, where));
    out.attestation = std::move(*attestation);
    PTPSEC_TRY(server, set->exactly_once(record_type::ptp_time_server));
    PTPSEC_TRY(addresses, decode_ptp_time_server(server->body, where));
    // §4.2.10: in a PTP Registration Request the list MUST contain at least the PortIdentity.
    if (std::none_of(addresses->addresses.begin(), addresses->addresses.end(),
                     [](const association_value& a) { return type_of(a) == association_type::port_identity; })) {
        return refuse(record_type::ptp_time_server, where, "no PortIdentity entry (the grantor's is mandatory)");
    }
    out.time_server = std::move(*addresses);

    PTPSEC_TRY(aead, set->exactly_once(record_type::aead_algorithm_negotiation));
    PTPSEC_TRY(algorithms, decode_aead_algorithms(aead->body, where));
    // §4.2.1: at least the AEAD_AES_SIV_CMAC_256 algorithm MUST be included.
    if (!contains(*algorithms, aead_algorithm::aes_siv_cmac_256)) {
        return refuse(record_type::aead_algorithm_negotiation, where, "AEAD_AES_SIV_CMAC_256 (15) not listed");
    }
    out.aead_algorithms = std::move(*algorithms);

    PTPSEC_TRY(macs, set->exactly_once(record_type::supported_mac_algorithms));
    PTPSEC_TRY(list, decode_mac_algorithms(macs->body, where));
    // §4.2.14: each PTP node MUST support HMAC-SHA256-128, and the grantor lists all it supports.
    if (!contains(*list, mac_algorithm::hmac_sha256_128)) {
        return refuse(record_type::supported_mac_algorithms, where, "HMAC-SHA256-128 (0) not listed");
    }
    out.supported_mac_algorithms = std::move(*list);
    return out;
}

parse_result<registration_response> parse_registration_response(std::span<const uint8_t> message) {
    constexpr std::string_view where = registration_response_name;
    record_budget budget;
    PTPSEC_TRY(records, read_message(message, where, budget));
    if (auto st = expect_message_type(*records, where, nts_message_type::registration_response); !st) {
        return st.err();
    }
    // seeds/001 Tables 7 and 8.
    static constexpr record_type allowed[] = {record_type::nts_message_type, record_type::current_parameters,
                                              record_type::next_parameters, record_type::heartbeat_timeout,
                                              record_type::error};
    PTPSEC_TRY(set, read_top_level(*records, allowed, where));
    registration_response out;
    PTPSEC_TRY(error, set->at_most_once(record_type::error));
    if (error->has_value()) {
        // Table 8: NTS Message Type, Error, End of Message.
        if (set->has(record_type::current_parameters) || set->has(record_type::next_parameters) ||
            set->has(record_type::heartbeat_timeout)) {
            return refuse(record_type::error, where,
                          "with Current Parameters, Next Parameters or Heartbeat Timeout (the error form has none)");
        }
        PTPSEC_TRY(code, decode_error((*error)->body, where));
        out.outcome = *code;
        return out;
    }
    registration_grant grant;
    PTPSEC_TRY(current, set->exactly_once(record_type::current_parameters));
    PTPSEC_TRY(current_params, read_registration_parameters(*current, current_name, false, budget));
    grant.current = std::move(*current_params);
    PTPSEC_TRY(next, set->at_most_once(record_type::next_parameters));
    if (next->has_value()) {
        PTPSEC_TRY(next_params, read_registration_parameters(**next, next_name, true, budget));
        grant.next = std::move(*next_params);
    }
    PTPSEC_TRY(timeout, set->at_most_once(record_type::heartbeat_timeout));
    if (timeout->has_value()) {
        PTPSEC_TRY(seconds, decode_heartbeat_timeout((*timeout)->body, where));
        // §4.2.6: a grantor that receives an invalid value (less than 1 s) MUST ignore this record.
        if (*seconds >= 1) {
            grant.heartbeat_timeout = *seconds;
        }
    }
    out.outcome = std::move(grant);
    return out;
}

parse_result<registration_revoke> parse_registration_revoke(std::span<const uint8_t> message) {
    constexpr std::string_view where = registration_revoke_name;
    record_budget budget;
    PTPSEC_TRY(records, read_message(message, where, budget));
    if (auto st = expect_message_type(*records, where, nts_message_type::registration_revoke); !st) {
        return st.err();
    }
    // seeds/001 Table 10.
    static constexpr record_type allowed[] = {record_type::nts_message_type, record_type::source_port_identity};
    PTPSEC_TRY(set, read_top_level(*records, allowed, where));
    PTPSEC_TRY(source, set->exactly_once(record_type::source_port_identity));
    PTPSEC_TRY(id, decode_source_port_identity(source->body, where));
    return registration_revoke{*id};
}

parse_result<heartbeat> parse_heartbeat(std::span<const uint8_t> message) {
    constexpr std::string_view where = heartbeat_name;
    record_budget budget;
    PTPSEC_TRY(records, read_message(message, where, budget));
    if (auto st = expect_message_type(*records, where, nts_message_type::heartbeat); !st) {
        return st.err();
    }
    // seeds/001 Table 11.
    static constexpr record_type allowed[] = {record_type::nts_message_type, record_type::status};
    PTPSEC_TRY(set, read_top_level(*records, allowed, where));
    heartbeat out;
    for (const record_view& r : set->all(record_type::status)) {
        PTPSEC_TRY(status, decode_status(r.body, where));
        // §4.2.13: if multiple status records are included, the status type MUST NOT occur twice.
        for (const status_report& seen : out.statuses) {
            if (seen.type == status->type) {
                return refuse(record_type::status, where,
                              fmt::format("Status Type {} twice", static_cast<uint16_t>(status->type)));
            }
        }
        out.statuses.push_back(std::move(*status));
    }
    return out;
}

parse_result<tsr_request> parse_tsr_request(std::span<const uint8_t> message) {
    // A first pass finds the NTS Message Type; the parser of that type then
    // reads the message again from the start (messages are a few hundred
    // octets, so the second walk costs less than sharing state would).
    record_budget budget;
    PTPSEC_TRY(records, read_message(message, tsr_request_name, budget));
    PTPSEC_TRY(type, read_message_type(*records, tsr_request_name));
    switch (*type) {
    case nts_message_type::registration_request: {
        PTPSEC_TRY(r, parse_registration_request(message));
        return tsr_request{std::move(*r)};
    }
    case nts_message_type::registration_revoke: {
        PTPSEC_TRY(r, parse_registration_revoke(message));
        return tsr_request{*r};
    }
    case nts_message_type::heartbeat: {
        PTPSEC_TRY(r, parse_heartbeat(message));
        return tsr_request{std::move(*r)};
    }
    case nts_message_type::registration_response:
        break;
    }
    return refuse(
        record_type::nts_message_type, tsr_request_name,
        fmt::format("{} ({}) is not a grantor's request", message_type_name(*type), static_cast<uint16_t>(*type)));
}

parse_result<std::optional<size_t>> find_message_end(std::span<const uint8_t> stream) {
    size_t offset = 0;
    size_t records = 0;
    while (true) {
        if (stream.size() - offset < record_header_size) {
            return std::optional<size_t>{};
        }
        const auto type = static_cast<uint16_t>(load_be16(stream.data() + offset) & ~critical_bit);
        const size_t end = offset + record_header_size + load_be16(stream.data() + offset + 2);
        if (end > max_message_size) {
            return bad_request(fmt::format("NTS message: longer than {} octets (record at offset {} ends at {})",
                                           max_message_size, offset, end));
        }
        if (++records > max_records) {
            return bad_request(fmt::format("NTS message: more than {} records", max_records));
        }
        if (stream.size() < end) {
            return std::optional<size_t>{};
        }
        if (type == static_cast<uint16_t>(record_type::end_of_message)) {
            return std::optional<size_t>{end};
        }
        offset = end;
    }
}

// --- Building -----------------------------------------------------------------------

std::vector<uint8_t> build(const key_request& message) {
    std::vector<uint8_t> out;
    record_writer w(out);
    append_next_protocols(w, message.next_protocols);
    append_association_mode(w, message.association);
    // §4.2.14: SHOULD NOT be included in GrM (and is ignored there).
    if (message.is_unicast() && message.supported_mac_algorithms) {
        append_mac_algorithms(w, *message.supported_mac_algorithms);
    }
    if (message.source_port_identity) {
        append_source_port_identity(w, *message.source_port_identity);
    }
    append_attestation(w, message.attestation);
    append_end_of_message(w);
    return out;
}

std::vector<uint8_t> build(const key_response& message) {
    std::vector<uint8_t> out;
    record_writer w(out);
    append_next_protocols(w, message.next_protocols);
    if (const auto* grant = std::get_if<key_grant>(&message.outcome)) {
        put_key_parameters(w, record_type::current_parameters, grant->current);
        if (grant->next) {
            put_key_parameters(w, record_type::next_parameters, *grant->next);
        }
    } else {
        append_error(w, std::get<error_code>(message.outcome));
    }
    append_end_of_message(w);
    return out;
}

std::vector<uint8_t> build(const registration_request& message) {
    std::vector<uint8_t> out;
    record_writer w(out);
    put_message_type(w, nts_message_type::registration_request);
    append_ptp_time_server(w, message.time_server);
    append_aead_algorithms(w, message.aead_algorithms);
    append_mac_algorithms(w, message.supported_mac_algorithms);
    append_attestation(w, message.attestation);
    append_end_of_message(w);
    return out;
}

std::vector<uint8_t> build(const registration_response& message) {
    std::vector<uint8_t> out;
    record_writer w(out);
    put_message_type(w, nts_message_type::registration_response);
    if (const auto* grant = std::get_if<registration_grant>(&message.outcome)) {
        put_registration_parameters(w, record_type::current_parameters, grant->current);
        if (grant->next) {
            put_registration_parameters(w, record_type::next_parameters, *grant->next);
        }
        if (grant->heartbeat_timeout) {
            append_heartbeat_timeout(w, *grant->heartbeat_timeout);
        }
    } else {
        append_error(w, std::get<error_code>(message.outcome));
    }
    append_end_of_message(w);
    return out;
}

std::vector<uint8_t> build(const registration_revoke& message) {
    std::vector<uint8_t> out;
    record_writer w(out);
    put_message_type(w, nts_message_type::registration_revoke);
    append_source_port_identity(w, message.source_port_identity);
    append_end_of_message(w);
    return out;
}

std::vector<uint8_t> build(const heartbeat& message) {
    std::vector<uint8_t> out;
    record_writer w(out);
    put_message_type(w, nts_message_type::heartbeat);
    for (const status_report& s : message.statuses) {
        append_status(w, s);
    }
    append_end_of_message(w);
    return out;
}

parse_result<ok_t> validate(const key_request& message) {
    if (!message.is_unicast() && message.supported_mac_algorithms) {
        return parse_error{error_code::internal_server_error,
                           fmt::format("{}: not sent with Association Type Group (§4.2.14)",
                                       subject(record_type::supported_mac_algorithms, key_request_name))};
    }
    return round_trip(message, parse_key_request, key_request_name);
}

parse_result<ok_t> validate(const key_response& message) {
    return round_trip(message, parse_key_response, key_response_name);
}

parse_result<ok_t> validate(const registration_request& message) {
    return round_trip(message, parse_registration_request, registration_request_name);
}

parse_result<ok_t> validate(const registration_response& message) {
    if (const auto* grant = std::get_if<registration_grant>(&message.outcome);
        grant && grant->heartbeat_timeout == uint16_t{0}) {
        return parse_error{error_code::internal_server_error,
                           fmt::format("{}: 0 s, at least 1 s (§4.2.6)",
                                       subject(record_type::heartbeat_timeout, registration_response_name))};
    }
    return round_trip(message, parse_registration_response, registration_response_name);
}

parse_result<ok_t> validate(const registration_revoke& message) {
    return round_trip(message, parse_registration_revoke, registration_revoke_name);
}

parse_result<ok_t> validate(const heartbeat& message) {
    return round_trip(message, parse_heartbeat, heartbeat_name);
}

std::vector<uint8_t> build_error_response(sub_protocol protocol, error_code code) {
    if (protocol == sub_protocol::nts_ke) {
        return build(key_response{{next_protocol::ptpv2_1}, code});
    }
    return build(registration_response{code});
}

} // namespace ptpsec::nts
