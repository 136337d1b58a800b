#include <control/node/grantor.h>

#include <control/ke/ticket_crypto.h>
#include <drivers/base/bytes.h>

#include <fmt/format.h>

#include <algorithm>

namespace ptpsec::node {

namespace {

constexpr int64_t ns_per_s = 1'000'000'000LL;
constexpr int64_t ns_per_ms = 1'000'000LL;

} // namespace

std::vector<uint8_t> ticket_tlv_value(const nts::ticket& t) {
    std::vector<uint8_t> out;
    nts::record_writer w(out);
    nts::append_ticket(w, t);
    if (out.size() % 2 != 0) {
        out.push_back(0);
    }
    return out;
}

result<nts::ticket> parse_ticket_tlv(std::span<const uint8_t> v) {
    if (v.size() < 4) {
        return error{"the TICKET TLV is too short to hold a Ticket record"};
    }
    const auto type = static_cast<uint16_t>((v[0] & 0x7F) << 8 | v[1]);
    const size_t len = static_cast<size_t>(v[2]) << 8 | v[3];
    if (type != static_cast<uint16_t>(nts::record_type::ticket)) {
        return error{fmt::format("the TICKET TLV holds record type {}, not a Ticket (1034)", type)};
    }
    // The record, then one zero octet only when the record's length is odd.
    const size_t padded = (4 + len) % 2 == 0 ? 4 + len : 4 + len + 1;
    if (4 + len > v.size() || (v.size() != 4 + len && v.size() != padded) || (v.size() > 4 + len && v.back() != 0)) {
        return error{fmt::format("the TICKET TLV's Ticket record says {} octets of body, the TLV has {} (and one "
                                 "zero octet of padding when the record's length is odd)",
                                 len, v.size() - 4)};
    }
    auto t = nts::decode_ticket(v.subspan(4, len), "TICKET TLV");
    if (!t) {
        return error{t.err().message};
    }
    return std::move(t).value();
}

grantor::grantor(grantor_settings s, std::string server_host, uint16_t server_port, tls::client_config tls,
                 std::chrono::milliseconds retry_min, std::chrono::milliseconds retry_max, uint64_t seed)
    : _s(std::move(s)), _host(std::move(server_host)), _port(server_port), _tls(std::move(tls)), _retry_min(retry_min),
      _retry_max(retry_max), _rng(seed) {
    _tls.alpn = tls::protocol::ntstsr;
}

status grantor::ensure_connected() {
    // A fresh session each time: registrations and heartbeats are minutes
    // apart, and a session left open that long has met the server's idle
    // timeout, after which a heartbeat written to it would be lost unseen.
    end_session(true);
    auto c = tls::client::connect(_host, _port, _tls, &_ticket);
    if (!c) {
        _ticket = {};
        return c.err();
    }
    _client.emplace(std::move(c).value());
    ++_stats.sessions;
    if (_client->server().resumed) {
        ++_stats.sessions_resumed;
    }
    return ok_status();
}

void grantor::end_session(bool keep_ticket) {
    if (!_client) {
        return;
    }
    // A session not closed in good order has no ticket to keep.
    (void)_client->close();
    if (!keep_ticket) {
        // The next session starts in full: one that failed on a resumed
        // session says why.
        _ticket = {};
    } else if (auto t = _client->ticket(); !t.empty()) {
        _ticket = std::move(t);
    }
    _client.reset();
}

void grantor::fail(int64_t now, std::string why) {
    ++_stats.registration_failures;
    _last_error = std::move(why);
    _backoff = _backoff.count() == 0 ? _retry_min : std::min(_backoff * 2, _retry_max);
    std::uniform_int_distribution<int64_t> jitter(_backoff.count() / 2, _backoff.count());
    _next_register_ns = now + jitter(_rng) * ns_per_ms;
}

void grantor::schedule(int64_t now) {
    _backoff = std::chrono::milliseconds(0);
    _last_error.clear();
    if (_keys.empty()) {
        _next_register_ns = now;
        return;
    }
    // A random point in the update period of the last ticket key held.
    const ticket_key& last = _keys.back();
    const int64_t up = int64_t{last.update_period_s} * ns_per_s;
    const int64_t from = std::max(now, last.end_ns - up);
    const int64_t to = std::max(from, last.end_ns - up / 10);
    std::uniform_int_distribution<int64_t> at(from, to);
    _next_register_ns = at(_rng);
}

status grantor::register_now(int64_t now) {
    if (auto st = ensure_connected(); !st) {
        return st;
    }
    nts::registration_request req;
    req.time_server = _s.time_server;
    req.aead_algorithms = _s.aead_algorithms;
    req.supported_mac_algorithms = _s.mac_algorithms;
    if (_s.quote) {
        // A registration is one TLS session: one quote for its exporter value.
        auto a = _s.quote(_client->server().session_binding);
        if (!a) {
            end_session(true);
            return error{fmt::format("quoting the platform state for the registration: {}", a.message())};
        }
        ++_stats.quotes;
        req.attestation = std::move(a).value();
    }
    auto bytes = _client->request(nts::build(req));
    end_session(static_cast<bool>(bytes));
    if (!bytes) {
        return bytes.err();
    }
    auto resp = nts::parse_registration_response(*bytes);
    if (!resp) {
        return error{fmt::format("the server's answer is not a PTP Registration Response: {}", resp.err().message)};
    }
    if (resp->is_error()) {
        return error{fmt::format("the server refused the registration: {}",
                                 nts::error_name(std::get<nts::error_code>(resp->outcome)))};
    }
    const auto& grant = std::get<nts::registration_grant>(resp->outcome);
    auto take = [&](const nts::registration_parameters& p, int64_t start, int64_t end) {
        ticket_key k;
        k.id = p.ticket_key_id;
        k.aead = p.aead;
        k.key.assign(p.ticket_key.begin(), p.ticket_key.end());
        k.start_ns = start;
        k.end_ns = end;
        k.retire_ns = end + int64_t{p.validity.grace_period} * ns_per_s;
        k.update_period_s = p.validity.update_period;
        auto same = std::find_if(_keys.begin(), _keys.end(), [&](const ticket_key& h) { return h.id == k.id; });
        if (same == _keys.end()) {
            _keys.push_back(std::move(k));
        } else {
            secure_wipe(same->key.data(), same->key.size());
            *same = std::move(k);
        }
    };
    const int64_t cur_end = now + int64_t{grant.current.validity.lifetime} * ns_per_s;
    take(grant.current, now, cur_end);
    if (grant.next) {
        take(*grant.next, cur_end, cur_end + int64_t{grant.next->validity.lifetime} * ns_per_s);
    }
    std::sort(_keys.begin(), _keys.end(),
              [](const ticket_key& a, const ticket_key& b) { return a.start_ns < b.start_ns; });
    _heartbeat_timeout = grant.heartbeat_timeout;
    if (_heartbeat_timeout) {
        _next_heartbeat_ns = now + int64_t{*_heartbeat_timeout} * ns_per_s / 2;
    }
    ++_stats.registrations;
    return ok_status();
}

int64_t grantor::step(int64_t now) {
    std::erase_if(_keys, [&](ticket_key& k) {
        if (k.retire_ns > now) {
            return false;
        }
        secure_wipe(k.key.data(), k.key.size());
        return true;
    });
    std::erase_if(_seen, [&](const auto& e) { return e.second <= now; });
    const bool valid = std::any_of(_keys.begin(), _keys.end(),
                                   [&](const ticket_key& k) { return k.start_ns <= now && now < k.end_ns; });
    if ((!valid && _backoff.count() == 0) || now >= _next_register_ns) {
        if (auto st = register_now(now); st) {
            schedule(now);
        } else {
            fail(now, st.message());
        }
    } else if (_heartbeat_timeout && now >= _next_heartbeat_ns) {
        // No answer on success (§3.6). The session is closed after it: a
        // refusal (Grantor not Registered) would come before the server's
        // close_notify and is not read; the next registration, in the update
        // period, puts a dropped registration right.
        status st = ensure_connected();
        if (st) {
            st = _client->send(nts::build(nts::heartbeat{}));
            end_session(static_cast<bool>(st));
        }
        if (st) {
            ++_stats.heartbeats_sent;
            _next_heartbeat_ns = now + int64_t{*_heartbeat_timeout} * ns_per_s / 2;
        } else {
            _client.reset();
            _last_error = fmt::format("heartbeat: {}", st.message());
            _next_heartbeat_ns = now + int64_t{*_heartbeat_timeout} * ns_per_s / 8;
        }
    }
    int64_t next = _next_register_ns;
    if (_heartbeat_timeout) {
        next = std::min(next, _next_heartbeat_ns);
    }
    for (const auto& k : _keys) {
        if (k.end_ns > now) {
            next = std::min(next, k.end_ns);
        }
    }
    return std::max(next, now);
}

result<opened_ticket> grantor::open_request(const unicast_request& req, int64_t now) {
    auto refused = [&](std::string why) -> error {
        ++_stats.tickets_refused;
        return error{std::move(why)};
    };
    auto t = parse_ticket_tlv(req.ticket_tlv_value);
    if (!t) {
        return refused(t.message());
    }
    auto key = std::find_if(_keys.begin(), _keys.end(), [&](const ticket_key& k) { return k.id == t->ticket_key_id; });
    if (key == _keys.end() || key->retire_ns <= now) {
        return refused(
            fmt::format("ticket key {} is not held (not registered for that period, or expired)", t->ticket_key_id));
    }
    auto sa = ke::open_ticket(*t, key->aead, key->key);
    if (!sa) {
        return refused(sa.message());
    }
    if (t->source_port_identity != req.source_port_identity) {
        return refused("the ticket was issued to another PortIdentity than the request's sourcePortIdentity");
    }
    if (sa->spp != req.spp || sa->key_id != req.key_id) {
        return refused(fmt::format("the ticket carries SPP {} key {}, the AUTHENTICATION TLV names SPP {} key {}",
                                   sa->spp, sa->key_id, req.spp, req.key_id));
    }
    // The ticket's nonce and the sequenceId, as one string.
    std::string seen_key(t->nonce.begin(), t->nonce.end());
    seen_key.push_back(static_cast<char>(req.sequence_id >> 8));
    seen_key.push_back(static_cast<char>(req.sequence_id & 0xFF));
    if (_seen.contains(seen_key)) {
        ++_stats.replays_refused;
        return error{"a unicast request seen before (same ticket, same sequenceId): a replay"};
    }
    _seen.emplace(seen_key, key->retire_ns);
    ++_stats.tickets_opened;
    return opened_ticket{std::move(sa).value(), key->retire_ns};
}

} // namespace ptpsec::node
