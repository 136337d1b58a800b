#include <control/ke/grantors.h>

#include <control/ke/ticket_crypto.h>

#include <fmt/format.h>
#include <openssl/rand.h>

#include <algorithm>

namespace ptpsec::ke {

namespace {

constexpr int64_t ns_per_s = 1'000'000'000LL;

uint32_t seconds_until(int64_t end, int64_t now) {
    const int64_t left = end - now;
    return left <= 0 ? 0 : static_cast<uint32_t>((left + ns_per_s - 1) / ns_per_s);
}

template <typename T>
bool contains(const std::vector<T>& v, T x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

/// Key octets of a unicast key for a Table 26 algorithm (AES-CMAC: 128 bits).
size_t unicast_key_len(nts::mac_algorithm m) noexcept {
    switch (m) {
    case nts::mac_algorithm::hmac_sha256_128:
    case nts::mac_algorithm::hmac_sha256:
        return 32;
    case nts::mac_algorithm::aes_cmac:
    case nts::mac_algorithm::aes_gmac_128:
        return 16;
    case nts::mac_algorithm::aes_gmac_192:
        return 24;
    case nts::mac_algorithm::aes_gmac_256:
        return 32;
    }
    return 0;
}

const nts::port_identity* port_identity_of(const nts::ptp_time_server& ts) {
    for (const auto& a : ts.addresses) {
        if (const auto* p = std::get_if<nts::port_identity>(&a)) {
            return p;
        }
    }
    return nullptr;
}

nts::parse_error refusal(nts::error_code code, std::string why) {
    return nts::parse_error{code, std::move(why)};
}

} // namespace

port_key key_of(const nts::port_identity& p) noexcept {
    port_key k{};
    std::copy(p.clock_identity.begin(), p.clock_identity.end(), k.begin());
    k[8] = static_cast<uint8_t>(p.port_number >> 8);
    k[9] = static_cast<uint8_t>(p.port_number);
    return k;
}

std::string to_string(const nts::port_identity& p) {
    std::string s;
    for (uint8_t b : p.clock_identity) {
        s += fmt::format("{:02x}", b);
    }
    return fmt::format("{}-{}", s, p.port_number);
}

status validate(const unicast_policy& p) {
    group_policy periods;
    periods.name = "[unicast]";
    periods.lifetime_s = p.lifetime_s;
    periods.update_period_s = p.update_period_s;
    periods.grace_period_s = p.grace_period_s;
    if (auto st = validate(periods); !st) {
        return st;
    }
    if (!contains(p.aead_algorithms, nts::aead_algorithm::aes_siv_cmac_256)) {
        return error{"[unicast]: the AEAD algorithms must include AEAD_AES_SIV_CMAC_256 (seeds/001 §4.2.1)"};
    }
    for (auto a : p.aead_algorithms) {
        if (!aead_supported(a)) {
            return error{fmt::format("[unicast]: AEAD algorithm {} is not supported", static_cast<unsigned>(a))};
        }
    }
    if (!contains(p.mac_algorithms, nts::mac_algorithm::hmac_sha256_128)) {
        return error{"[unicast]: the MAC algorithms must include HMAC-SHA256-128 (seeds/001 §4.2.14)"};
    }
    for (auto m : p.mac_algorithms) {
        if (unicast_key_len(m) == 0) {
            return error{fmt::format("[unicast]: MAC algorithm {} is not supported", static_cast<unsigned>(m))};
        }
    }
    if (p.missed_heartbeats == 0) {
        return error{"[unicast]: missed-heartbeats must be at least 1"};
    }
    return ok_status();
}

result<std::unique_ptr<grantor_registry>> grantor_registry::create(unicast_policy policy, key_schedule& keys,
                                                                   std::shared_ptr<grantor_store> store,
                                                                   const clocks& clk) {
    if (auto st = validate(policy); !st) {
        return st.err();
    }
    std::unique_ptr<grantor_registry> r(new grantor_registry(std::move(policy), keys, std::move(store), clk));
    PTPSEC_TRY(spp, keys.reserve_spp("@unicast"));
    r->_spp = *spp;
    if (r->_store) {
        PTPSEC_TRY(saved, r->_store->load_grantors());
        r->_last_ticket_key_id = saved->last_ticket_key_id;
        const int64_t mono = clk.monotonic_ns();
        const int64_t wall = clk.wall_ns();
        for (auto& g : saved->grantors) {
            for (auto& e : g.epochs) {
                e.start_ns = mono - (wall - e.start_ns);
                r->_last_ticket_key_id = std::max(r->_last_ticket_key_id, e.ticket_key_id);
            }
            std::erase_if(g.epochs, [&](const ticket_epoch& e) { return e.retire_ns() <= mono; });
            // A restart gives every grantor a full heartbeat timeout.
            g.heartbeat_ns = mono;
            const port_key k = key_of(g.id);
            if (g.epochs.empty()) {
                (void)r->_store->remove_grantor(g.id);
            } else {
                r->_grantors.emplace(k, std::move(g));
            }
        }
    }
    return r;
}

result<ticket_epoch> grantor_registry::make_epoch(nts::aead_algorithm aead, int64_t start_ns) {
    if (_last_ticket_key_id == UINT32_MAX) {
        return error{"every ticket key ID is used up; start a new server state"};
    }
    ticket_epoch e;
    e.ticket_key_id = ++_last_ticket_key_id;
    e.aead = aead;
    e.start_ns = start_ns;
    e.lifetime_s = _policy.lifetime_s;
    e.update_period_s = _policy.update_period_s;
    e.grace_period_s = _policy.grace_period_s;
    std::vector<uint8_t> key(aead_key_len(aead));
    if (RAND_priv_bytes(key.data(), static_cast<int>(key.size())) != 1) {
        return error{"the CSPRNG failed to make a ticket key"};
    }
    e.key = key_bytes(std::move(key));
    return e;
}

status grantor_registry::save(const grantor_record& g) {
    if (!_store) {
        return ok_status();
    }
    grantor_record wall = g;
    const int64_t shift = _clk->wall_ns() - _clk->monotonic_ns();
    for (auto& e : wall.epochs) {
        e.start_ns += shift;
    }
    return _store->save_grantor(wall, _last_ticket_key_id);
}

result<std::pair<const ticket_epoch*, const ticket_epoch*>>
grantor_registry::epochs_of(grantor_record& g, std::optional<nts::aead_algorithm> extend_with) {
    const int64_t now = _clk->monotonic_ns();
    std::erase_if(g.epochs, [&](const ticket_epoch& e) { return e.retire_ns() <= now; });
    auto covering = [&](int64_t t) -> ticket_epoch* {
        for (auto it = g.epochs.rbegin(); it != g.epochs.rend(); ++it) {
            if (it->start_ns <= t && t < it->end_ns()) {
                return &*it;
            }
        }
        return nullptr;
    };
    ticket_epoch* cur = covering(now);
    if (cur == nullptr) {
        if (!extend_with) {
            return std::pair<const ticket_epoch*, const ticket_epoch*>{nullptr, nullptr};
        }
        // First registration, or none covers now: a new chain from now.
        PTPSEC_TRY(e, make_epoch(*extend_with, now));
        g.epochs.push_back(std::move(e).value());
        cur = &g.epochs.back();
    }
    const ticket_epoch* next = nullptr;
    if (now >= cur->end_ns() - int64_t{cur->update_period_s} * ns_per_s) {
        const int64_t next_start = cur->end_ns();
        for (const auto& e : g.epochs) {
            if (e.start_ns == next_start) {
                next = &e;
            }
        }
        if (next == nullptr && extend_with) {
            const size_t cur_index = static_cast<size_t>(cur - g.epochs.data());
            PTPSEC_TRY(e, make_epoch(*extend_with, next_start));
            g.epochs.push_back(std::move(e).value());
            cur = &g.epochs[cur_index];
            next = &g.epochs.back();
        }
    }
    return std::pair<const ticket_epoch*, const ticket_epoch*>{cur, next};
}

registration_result grantor_registry::register_grantor(const std::string& owner, const nts::registration_request& req) {
    const nts::port_identity* pid = port_identity_of(req.time_server);
    if (pid == nullptr) {
        return refusal(nts::error_code::bad_request, "the PTP Time Server record carries no PortIdentity");
    }
    // Addresses are the grantor's own: none may belong to another grantor.
    for (const auto& [k, other] : _grantors) {
        if (other.id == *pid) {
            if (other.owner != owner) {
                return refusal(
                    nts::error_code::not_authorized,
                    fmt::format("grantor {} is registered by another certificate ({})", to_string(*pid), other.owner));
            }
            continue;
        }
        for (const auto& a : req.time_server.addresses) {
            if (contains(other.time_server.addresses, a)) {
                return refusal(nts::error_code::not_authorized,
                               fmt::format("an address of grantor {} belongs to grantor {}", to_string(*pid),
                                           to_string(other.id)));
            }
        }
    }
    // The grantor's first choice the server offers (§4.2.1: its list is in
    // descending priority).
    std::optional<nts::aead_algorithm> aead;
    for (auto a : req.aead_algorithms) {
        if (contains(_policy.aead_algorithms, a)) {
            aead = a;
            break;
        }
    }
    if (!aead) {
        return refusal(nts::error_code::bad_request,
                       "no AEAD algorithm of the request is offered by this server (AEAD_AES_SIV_CMAC_256 is)");
    }
    const port_key k = key_of(*pid);
    auto it = _grantors.find(k);
    const bool renewal = it != _grantors.end();
    grantor_record updated = renewal ? it->second : grantor_record{};
    updated.id = *pid;
    updated.owner = owner;
    updated.time_server = req.time_server;
    updated.aead_algorithms = req.aead_algorithms;
    updated.mac_algorithms = req.supported_mac_algorithms;
    updated.heartbeat_ns = _clk->monotonic_ns();
    // Ticket keys under another algorithm than the one chosen now are
    // dropped (the grantor may no longer open those tickets): the chain
    // starts again.
    std::erase_if(updated.epochs, [&](const ticket_epoch& e) { return e.aead != *aead; });
    auto eps = epochs_of(updated, *aead);
    if (!eps) {
        return refusal(nts::error_code::internal_server_error, eps.message());
    }
    if (auto st = save(updated); !st) {
        return refusal(nts::error_code::internal_server_error,
                       fmt::format("the registration was not saved, so it is not answered: {}", st.message()));
    }
    const auto [cur, next] = *eps;
    const int64_t now = _clk->monotonic_ns();
    auto to_wire = [](const ticket_epoch& e, uint32_t lifetime) {
        nts::registration_parameters p;
        p.aead = e.aead;
        p.validity = nts::validity_period{lifetime, e.update_period_s, e.grace_period_s};
        p.ticket_key_id = e.ticket_key_id;
        const auto key = e.key.span();
        p.ticket_key.assign(key.begin(), key.end());
        return p;
    };
    nts::registration_grant grant;
    grant.current = to_wire(*cur, seconds_until(cur->end_ns(), now));
    if (next != nullptr) {
        grant.next = to_wire(*next, next->lifetime_s);
    }
    if (_policy.heartbeat_timeout_s != 0) {
        grant.heartbeat_timeout = _policy.heartbeat_timeout_s;
    }
    _grantors[k] = std::move(updated);
    ++(renewal ? _stats.renewals : _stats.registrations);
    return grant;
}

grantor_registry::heartbeat_outcome grantor_registry::heartbeat(const std::string& owner) {
    const int64_t now = _clk->monotonic_ns();
    bool owns = false;
    bool accepted = false;
    for (auto& [k, g] : _grantors) {
        if (g.owner != owner) {
            continue;
        }
        owns = true;
        if (_policy.heartbeat_timeout_s == 0) {
            continue;
        }
        const int64_t min_gap = int64_t{_policy.heartbeat_timeout_s} * ns_per_s / 4;
        if (g.heartbeats != 0 && now - g.heartbeat_ns < min_gap) {
            continue;
        }
        g.heartbeat_ns = now;
        ++g.heartbeats;
        accepted = true;
    }
    if (!owns) {
        ++_stats.heartbeats_discarded;
        return heartbeat_outcome::not_registered;
    }
    if (_policy.heartbeat_timeout_s == 0) {
        ++_stats.heartbeats_discarded;
        return heartbeat_outcome::not_requested;
    }
    if (!accepted) {
        ++_stats.heartbeats_discarded;
        return heartbeat_outcome::too_frequent;
    }
    ++_stats.heartbeats;
    return heartbeat_outcome::accepted;
}

void grantor_registry::drop(std::map<port_key, grantor_record>::iterator it) {
    if (_store) {
        (void)_store->remove_grantor(it->second.id);
    }
    _grantors.erase(it);
}

grantor_registry::revoke_outcome grantor_registry::revoke(const std::string& owner, const nts::port_identity& id) {
    auto it = _grantors.find(key_of(id));
    if (it == _grantors.end()) {
        return revoke_outcome::not_registered;
    }
    if (it->second.owner != owner) {
        return revoke_outcome::not_owner;
    }
    drop(it);
    ++_stats.revoked;
    return revoke_outcome::revoked;
}

size_t grantor_registry::expire() {
    const int64_t now = _clk->monotonic_ns();
    size_t gone = 0;
    for (auto it = _grantors.begin(); it != _grantors.end();) {
        grantor_record& g = it->second;
        std::erase_if(g.epochs, [&](const ticket_epoch& e) { return e.retire_ns() <= now; });
        const bool silent = _policy.heartbeat_timeout_s != 0 &&
                            now - g.heartbeat_ns > int64_t{_policy.heartbeat_timeout_s} * ns_per_s *
                                                       static_cast<int64_t>(_policy.missed_heartbeats);
        if (silent || g.epochs.empty()) {
            ++(silent ? _stats.dropped_heartbeat : _stats.dropped_expired);
            drop(it++);
            ++gone;
        } else {
            ++it;
        }
    }
    return gone;
}

grantor_record* grantor_registry::find(const nts::association_value& address) {
    for (auto& [k, g] : _grantors) {
        if (contains(g.time_server.addresses, address)) {
            return &g;
        }
        if (const auto* p = std::get_if<nts::port_identity>(&address); p != nullptr && g.id == *p) {
            return &g;
        }
    }
    return nullptr;
}

unicast_result grantor_registry::grant(const nts::key_request& req) {
    expire();
    grantor_record* g = find(req.association);
    if (g == nullptr) {
        return refusal(nts::error_code::grantor_not_registered, "no registered grantor has that address");
    }
    if (!req.source_port_identity) {
        return refusal(nts::error_code::bad_request, "a unicast request without Source PortIdentity");
    }
    if (*req.source_port_identity == g->id) {
        return refusal(nts::error_code::bad_request, "the requester asks for a key to itself");
    }
    // §4.2.14: the requester's order; HMAC-SHA256-128 when it lists none.
    const std::vector<nts::mac_algorithm> wanted =
        req.supported_mac_algorithms.value_or(std::vector<nts::mac_algorithm>{nts::mac_algorithm::hmac_sha256_128});
    std::optional<nts::mac_algorithm> mac;
    for (auto m : wanted) {
        if (contains(g->mac_algorithms, m) && contains(_policy.mac_algorithms, m)) {
            mac = m;
            break;
        }
    }
    if (!mac) {
        return refusal(
            nts::error_code::bad_request,
            fmt::format("no MAC algorithm of the request is run by grantor {} and allowed here", to_string(g->id)));
    }
    auto eps = epochs_of(*g, std::nullopt);
    if (!eps || eps->first == nullptr) {
        return refusal(nts::error_code::grantor_not_registered,
                       fmt::format("grantor {} holds no ticket key for now", to_string(g->id)));
    }
    const int64_t now = _clk->monotonic_ns();
    auto one = [&](const ticket_epoch& e, uint32_t lifetime) -> result<nts::key_parameters> {
        PTPSEC_TRY(key_id, _keys->allocate_key_id());
        nts::key_parameters p;
        p.sa.spp = _spp;
        p.sa.integrity_algorithm = *mac;
        p.sa.key_id = *key_id;
        p.sa.key.resize(unicast_key_len(*mac));
        if (RAND_priv_bytes(p.sa.key.data(), static_cast<int>(p.sa.key.size())) != 1) {
            return error{"the CSPRNG failed to make a unicast key"};
        }
        p.validity = nts::validity_period{lifetime, e.update_period_s, e.grace_period_s};
        PTPSEC_TRY(t, seal_ticket(e.ticket_key_id, *req.source_port_identity, e.aead, e.key.span(), p.sa));
        p.unicast = nts::unicast_parameters{g->time_server, std::move(t).value()};
        return p;
    };
    auto cur = one(*eps->first, seconds_until(eps->first->end_ns(), now));
    if (!cur) {
        return refusal(nts::error_code::internal_server_error, cur.message());
    }
    nts::key_grant grant;
    grant.current = std::move(cur).value();
    if (eps->second != nullptr) {
        auto next = one(*eps->second, eps->second->lifetime_s);
        if (!next) {
            return refusal(nts::error_code::internal_server_error, next.message());
        }
        grant.next = std::move(next).value();
        ++_stats.unicast_keys_with_next;
    }
    ++_stats.unicast_keys;
    return grant;
}

std::vector<const grantor_record*> grantor_registry::grantors() const {
    std::vector<const grantor_record*> out;
    for (const auto& [k, g] : _grantors) {
        out.push_back(&g);
    }
    return out;
}

} // namespace ptpsec::ke
