#include <control/ke/ke_service.h>

#include <control/nts/message.h>

#include <fmt/format.h>

#include <algorithm>

namespace ptpsec::ke {

namespace {

/// The certificate part of a rule: subject and SAN.
bool matches(const client_rule& r, const client_identity& who) {
    if (!r.subject.empty() && r.subject != who.subject) {
        return false;
    }
    if (!r.san.empty() && std::find(who.sans.begin(), who.sans.end(), r.san) == who.sans.end()) {
        return false;
    }
    return !r.subject.empty() || !r.san.empty();
}

/// The whole rule: its certificate part, and its signer when it asks for one.
bool matches(const client_rule& r, const client_identity& who, std::string_view attested) {
    return matches(r, who) && (r.attest.empty() || r.attest == attested);
}

bool has_group(const client_rule& r, const std::string& group) {
    return std::any_of(r.groups.begin(), r.groups.end(), [&](const std::string& g) { return g == "*" || g == group; });
}

nts::key_parameters to_wire(const epoch& e, const validity& v) {
    nts::key_parameters p;
    p.sa.spp = e.spp;
    p.sa.integrity_algorithm = nts::to_mac_algorithm(e.alg);
    p.sa.key_id = e.key_id;
    const auto key = e.key.span();
    p.sa.key.assign(key.begin(), key.end());
    p.validity = nts::validity_period{v.lifetime_s, v.update_period_s, v.grace_period_s};
    return p;
}

} // namespace

status validate(const client_rule& r, size_t index) {
    if (r.subject.empty() && r.san.empty()) {
        return error{fmt::format("client rule {}: names neither a subject nor a subjectAltName", index + 1)};
    }
    // identity_of() (controld) names each SAN of a certificate this way:
    // a rule without the prefix would never match.
    if (!r.san.empty() && !r.san.starts_with("DNS:") && !r.san.starts_with("IP:") && !r.san.starts_with("URI:")) {
        return error{fmt::format("client rule {}: san \"{}\": write DNS:NAME, IP:ADDRESS or URI:URI, as the "
                                 "certificate's subjectAltName has it",
                                 index + 1, r.san)};
    }
    if (r.groups.empty() && !r.grantor && !r.unicast) {
        return error{fmt::format("client rule {} ({}): allows no group, not the grantor role and not unicast",
                                 index + 1, r.subject.empty() ? r.san : r.subject)};
    }
    if (r.transparent_clock && r.grantor) {
        // seeds/001 §2.5.5.5: a transparent clock corrects and re-signs what
        // passes through it; it grants no unicast contracts.
        return error{fmt::format("client rule {} ({}): a transparent clock cannot be a grantor (it is not a time "
                                 "source); give it the groups whose traffic it corrects",
                                 index + 1, r.subject.empty() ? r.san : r.subject)};
    }
    return ok_status();
}

bool ke_service::admits(const client_identity& who, const std::string& group, std::string_view attested) const {
    return std::any_of(_rules.begin(), _rules.end(),
                       [&](const client_rule& r) { return matches(r, who, attested) && has_group(r, group); });
}

bool ke_service::allows(const client_identity& who, bool client_rule::*right, std::string_view attested) const {
    return std::any_of(_rules.begin(), _rules.end(),
                       [&](const client_rule& r) { return matches(r, who, attested) && r.*right; });
}

bool ke_service::certificate_allows(const client_identity& who, bool client_rule::*right) const {
    return std::any_of(_rules.begin(), _rules.end(), [&](const client_rule& r) { return matches(r, who) && r.*right; });
}

ke_service::attestation_outcome ke_service::check_attestation(const client_identity& who,
                                                              const std::optional<nts::platform_attestation>& shown) {
    // Only a client that a rule asks a quote of pays for checking one.
    const bool asked = std::any_of(_rules.begin(), _rules.end(),
                                   [&](const client_rule& r) { return !r.attest.empty() && matches(r, who); });
    if (!asked || !shown) {
        return {};
    }
    if (!_platform_check) {
        return {{}, "this server checks no Platform Attestation (no registrar configured)"};
    }
    if (status st = _platform_check(*shown, who.session_binding); !st) {
        ++_stats.attestations_failed;
        return {{},
                fmt::format("its Platform Attestation of signer \"{}\" failed: {}", shown->signer_id, st.message())};
    }
    ++_stats.attestations_verified;
    return {shown->signer_id, {}};
}

std::vector<uint8_t> ke_service::refuse_unauthorized(const client_identity& who,
                                                     const std::optional<nts::platform_attestation>& shown,
                                                     const attestation_outcome& a,
                                                     const std::function<bool(const client_rule&)>& may,
                                                     nts::sub_protocol protocol) {
    for (size_t i = 0; i < _rules.size(); ++i) {
        const client_rule& r = _rules[i];
        if (r.attest.empty() || !matches(r, who) || !may(r)) {
            continue;
        }
        std::string why = a.problem;
        if (why.empty()) {
            why = shown ? fmt::format("its Platform Attestation is of signer \"{}\"", shown->signer_id)
                        : std::string("its request carried no Platform Attestation");
        }
        ++_stats.refused_unattested;
        _last_attestation_refusal =
            fmt::format("{}: client rule {} admits it only with a Platform Attestation of signer \"{}\"; {}",
                        who.subject, i + 1, r.attest, why);
        break;
    }
    return refuse(nts::error_code::not_authorized, protocol);
}

std::vector<uint8_t> ke_service::refuse(nts::error_code code, nts::sub_protocol protocol) {
    const auto i = static_cast<size_t>(code);
    if (i < _stats.refused.size()) {
        ++_stats.refused[i];
    }
    return nts::build_error_response(protocol, code);
}

std::vector<uint8_t> ke_service::unicast(const client_identity& who, const nts::key_request& req) {
    if (_grantors == nullptr) {
        return refuse(nts::error_code::grantor_not_registered);
    }
    const attestation_outcome attested = check_attestation(who, req.attestation);
    if (!allows(who, &client_rule::unicast, attested.signer)) {
        return refuse_unauthorized(who, req.attestation, attested, [](const client_rule& r) { return r.unicast; });
    }
    auto granted = _grantors->grant(req);
    if (!granted) {
        return refuse(granted.err().code);
    }
    nts::key_response resp;
    resp.outcome = std::move(granted).value();
    if (!nts::validate(resp)) {
        return refuse(nts::error_code::internal_server_error);
    }
    ++_stats.granted;
    ++_stats.unicast_granted;
    if (std::get<nts::key_grant>(resp.outcome).next) {
        ++_stats.granted_with_next;
    }
    return nts::build(resp);
}

answer ke_service::handle_tsr(const client_identity& who, std::span<const uint8_t> request) {
    ++_stats.tsr_requests;
    auto refused = [&](nts::error_code code) { return answer{refuse(code, nts::sub_protocol::nts_tsr), true}; };
    auto req = nts::parse_tsr_request(request);
    if (!req) {
        return refused(req.err().code);
    }
    if (const auto* reg = std::get_if<nts::registration_request>(&*req)) {
        if (_grantors == nullptr) {
            return refused(nts::error_code::not_authorized);
        }
        const attestation_outcome attested = check_attestation(who, reg->attestation);
        if (!allows(who, &client_rule::grantor, attested.signer)) {
            return answer{refuse_unauthorized(
                              who, reg->attestation, attested, [](const client_rule& r) { return r.grantor; },
                              nts::sub_protocol::nts_tsr),
                          true};
        }
        auto granted = _grantors->register_grantor(who.subject, *reg);
        if (!granted) {
            return refused(granted.err().code);
        }
        nts::registration_response resp;
        resp.outcome = std::move(granted).value();
        if (!nts::validate(resp)) {
            return refused(nts::error_code::internal_server_error);
        }
        ++_stats.registrations;
        return answer{nts::build(resp), false};
    }
    if (const auto* rev = std::get_if<nts::registration_revoke>(&*req)) {
        if (_grantors == nullptr) {
            return refused(nts::error_code::grantor_not_registered);
        }
        // The owner's certificate, and still a grantor by the rules: one
        // whose right was taken away no longer acts for its registration.
        if (!certificate_allows(who, &client_rule::grantor)) {
            return refused(nts::error_code::not_authorized);
        }
        switch (_grantors->revoke(who.subject, rev->source_port_identity)) {
        case grantor_registry::revoke_outcome::revoked:
            ++_stats.revokes;
            return answer{{}, true};
        case grantor_registry::revoke_outcome::not_owner:
            return refused(nts::error_code::not_authorized);
        case grantor_registry::revoke_outcome::not_registered:
            break;
        }
        return refused(nts::error_code::grantor_not_registered);
    }
    // Heartbeat: no response unless the sender registered nothing or is no
    // longer a grantor by the rules (its registration then lapses).
    if (_grantors == nullptr) {
        return refused(nts::error_code::grantor_not_registered);
    }
    if (!certificate_allows(who, &client_rule::grantor)) {
        return refused(nts::error_code::not_authorized);
    }
    switch (_grantors->heartbeat(who.subject)) {
    case grantor_registry::heartbeat_outcome::accepted:
        ++_stats.heartbeats;
        return answer{};
    case grantor_registry::heartbeat_outcome::not_requested:
    case grantor_registry::heartbeat_outcome::too_frequent:
        ++_stats.heartbeats_discarded;
        return answer{};
    case grantor_registry::heartbeat_outcome::not_registered:
        break;
    }
    return refused(nts::error_code::grantor_not_registered);
}

answer ke_service::handle_key_request(const client_identity& who, std::span<const uint8_t> request) {
    const uint64_t granted = _stats.granted;
    std::vector<uint8_t> message = key_response(who, request);
    // Every grant is counted; anything else was answered with an Error record.
    return answer{std::move(message), _stats.granted == granted};
}

std::vector<uint8_t> ke_service::key_response(const client_identity& who, std::span<const uint8_t> request) {
    ++_stats.requests;
    auto req = nts::parse_key_request(request);
    if (!req) {
        return refuse(req.err().code);
    }
    if (req->is_unicast()) {
        return unicast(who, *req);
    }
    const auto& g = std::get<nts::group_number>(req->association);
    const group_id id{g.domain_number, g.sdo_id, g.sub_group};
    const group_policy* policy = nullptr;
    for (const auto& p : _keys->policies()) {
        if (p.id == id) {
            policy = &p;
        }
    }
    if (policy == nullptr) {
        return refuse(nts::error_code::not_authorized);
    }
    const attestation_outcome attested = check_attestation(who, req->attestation);
    if (!admits(who, policy->name, attested.signer)) {
        return refuse_unauthorized(who, req->attestation, attested,
                                   [&](const client_rule& r) { return has_group(r, policy->name); });
    }
    auto params = _keys->parameters(id);
    if (!params) {
        return refuse(nts::error_code::internal_server_error);
    }
    nts::key_grant grant;
    grant.current = to_wire(params->current, params->current_validity);
    if (params->next) {
        grant.next = to_wire(*params->next, params->next_validity);
    }
    nts::key_response resp;
    resp.outcome = std::move(grant);
    if (!nts::validate(resp)) {
        return refuse(nts::error_code::internal_server_error);
    }
    ++_stats.granted;
    if (params->next) {
        ++_stats.granted_with_next;
    }
    if (allows(who, &client_rule::transparent_clock, attested.signer)) {
        ++_stats.granted_to_transparent_clocks;
    }
    return nts::build(resp);
}

} // namespace ptpsec::ke
