#include <control/node/node.h>

#include <control/nts/message.h>
#include <control/sa_client.h>
#include <dataplane/sa_channel.h>
#include <dataplane/sa_update.h>
#include <drivers/base/bytes.h>

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>

namespace ptpsec::node {

namespace {

constexpr int64_t ns_per_s = 1'000'000'000LL;
constexpr int64_t ns_per_ms = 1'000'000LL;

/// The SA segment's device and inode, or empty when there is none.
std::string segment_identity(const std::string& prefix) {
    struct stat st {};
    const std::string path = "/dev/shm" + sa_channel::segment_name(prefix);
    if (::stat(path.c_str(), &st) != 0) {
        return {};
    }
    return fmt::format("{}:{}:{}", st.st_dev, st.st_ino, st.st_ctim.tv_nsec);
}

} // namespace

node::node(settings s, uint64_t seed) : _s(std::move(s)), _groups(_s.groups.size()), _rng(seed) {
    _s.tls.alpn = tls::protocol::ntske;
    if (_s.grantor) {
        grantor_settings g = *_s.grantor;
        if (_s.attestation && !g.quote) {
            g.quote = _s.attestation->quote; // the node's TPM signer quotes for its registrations too
        }
        _grantor.emplace(std::move(g), _s.server_host, _s.server_port, _s.tls, _s.retry_min, _s.retry_max, _rng());
    }
}

void node::serve_tickets(int64_t now) {
    if (!_exceptions) {
        auto ch = exception_channel::attach(_s.dataplane_prefix);
        if (!ch) {
            return; // no data plane, or one without --tickets: nothing is handed over
        }
        _exceptions.emplace(std::move(ch).value());
    }
    exception_wire::record r;
    // A bounded batch per step: the rest waits for the next one.
    for (int n = 0; n < 64 && _exceptions->pop_exception(r); ++n) {
        ++_tickets.requests;
        auto u16 = [&](size_t at) { return static_cast<uint16_t>(r.frame[at] << 8 | r.frame[at + 1]); };
        const size_t ptp = r.ptp_offset;
        const size_t t = r.ticket_offset;
        if (r.frame_len > exception_wire::max_frame_len || ptp + 34 > r.frame_len || t == 0 || t + 4 > r.frame_len ||
            t + 4 + u16(t + 2) > r.frame_len) {
            ++_tickets.refused;
            _last_ticket_error = "a handed-over frame whose offsets do not fit it";
            continue;
        }
        unicast_request req;
        req.ticket_tlv_value = std::span<const uint8_t>(r.frame + t + 4, u16(t + 2));
        std::copy_n(r.frame + ptp + 20, 8, req.source_port_identity.clock_identity.begin());
        req.source_port_identity.port_number = u16(ptp + 28);
        req.sequence_id = u16(ptp + 30);
        req.spp = r.spp;
        req.key_id = r.key_id;
        auto opened = _grantor->open_request(req, now);
        if (!opened) {
            ++_tickets.refused;
            _last_ticket_error = opened.message();
            continue;
        }
        const auto alg = nts::to_icv_algorithm(opened->sa.integrity_algorithm, opened->sa.key.size());
        if (!alg || opened->sa.key.size() > sa_wire::max_key_len) {
            ++_tickets.refused;
            _last_ticket_error =
                fmt::format("the ticket's key {} has a MAC algorithm this node cannot run", opened->sa.key_id);
            continue;
        }
        sa_wire::update u;
        u.operation = static_cast<uint8_t>(sa_wire::op::add_key);
        u.spp = opened->sa.spp;
        u.key_id = opened->sa.key_id;
        u.algorithm = static_cast<uint8_t>(*alg);
        u.key_len = static_cast<uint8_t>(opened->sa.key.size());
        std::copy_n(opened->sa.key.begin(), u.key_len, u.key);
        u.lifetime_ms = static_cast<uint64_t>(std::max<int64_t>(1, (opened->retire_ns - now) / ns_per_ms));
        std::vector<sa_wire::update> one{u};
        secure_wipe(u.key, sizeof u.key);
        auto sent = sa_client::send(_s.dataplane_prefix, one, _s.push_wait);
        const bool installed = sent && !sent->empty() &&
                               ((*sent)[0].applied || (*sent)[0].reason.find("installed already") != std::string::npos);
        if (!installed) {
            ++_tickets.failed;
            _last_ticket_error = sent ? fmt::format("the data plane refused the unicast key {}: {}", opened->sa.key_id,
                                                    sent->empty() ? "" : (*sent)[0].reason)
                                      : sent.message();
            continue;
        }
        ++_stats.updates_pushed;
        // Only now, with the SA in place, does the frame go back.
        if (!_exceptions->push_reinject(r)) {
            ++_tickets.failed;
            _last_ticket_error = "the reinject ring is full";
            continue;
        }
        ++_tickets.installed;
    }
}

void node::fail(size_t g, int64_t now, std::string why) {
    group_state& st = _groups[g];
    st.last_error = std::move(why);
    st.backoff = st.backoff.count() == 0 ? _s.retry_min : std::min(st.backoff * 2, _s.retry_max);
    // Half to all of the delay: a fleet spreads out instead of coming back at once.
    std::uniform_int_distribution<int64_t> jitter(st.backoff.count() / 2, st.backoff.count());
    st.next_fetch_ns = now + jitter(_rng) * ns_per_ms;
}

void node::schedule_renewal(size_t g, int64_t now) {
    group_state& st = _groups[g];
    st.backoff = std::chrono::milliseconds(0);
    st.last_error.clear();
    if (st.keys.empty()) {
        st.next_fetch_ns = now;
        return;
    }
    // A random point in the update period of the last key we hold.
    const held_key& last = st.keys.back();
    const int64_t up = int64_t{last.update_period_s} * ns_per_s;
    const int64_t from = std::max(now, last.end_ns - up);
    const int64_t to = std::max(from, last.end_ns - up / 10); // leave the last tenth for retries
    std::uniform_int_distribution<int64_t> at(from, to);
    st.next_fetch_ns = at(_rng);
    if (_s.refresh_interval.count() > 0) {
        const int64_t every = _s.refresh_interval.count() * ns_per_s;
        std::uniform_int_distribution<int64_t> refresh_at(now + every / 2, now + every);
        st.next_fetch_ns = std::min(st.next_fetch_ns, refresh_at(_rng));
    }
}

size_t node::refresh(const std::string& name) {
    size_t matched = 0;
    for (size_t g = 0; g < _groups.size(); ++g) {
        if (name.empty() || _s.groups[g].name == name) {
            _groups[g].next_fetch_ns = 0;
            _groups[g].backoff = std::chrono::milliseconds(0);
            ++_stats.refreshes;
            ++matched;
        }
    }
    return matched;
}

status node::fetch(size_t g, int64_t now) {
    ++_stats.fetches;
    const node_group& ng = _s.groups[g];
    if (!_client || !_client->is_open()) {
        _client.reset();
        auto c = tls::client::connect(_s.server_host, _s.server_port, _s.tls, &_ticket);
        if (!c) {
            _ticket = {};
            return c.err();
        }
        _client.emplace(std::move(c).value());
        _attestation.reset();
        ++_stats.sessions;
        if (_client->server().resumed) {
            ++_stats.sessions_resumed;
        }
    }
    if (_s.attestation && !_attestation) {
        // One quote per session: its exporter value is the session's.
        auto a = _s.attestation->quote(_client->server().session_binding);
        if (!a) {
            _client.reset();
            return error{fmt::format("group {}: quoting the platform state as signer \"{}\": {}", ng.name,
                                     _s.attestation->signer_id, a.message())};
        }
        ++_stats.quotes;
        _attestation = std::move(a).value();
    }
    nts::key_request req;
    req.attestation = _attestation;
    if (ng.unicast) {
        req.association = ng.unicast->grantor;
        req.source_port_identity = ng.unicast->me;
        req.supported_mac_algorithms = ng.unicast->mac_algorithms;
    } else {
        req.association = nts::group_number{ng.id.domain, ng.id.sdo_id, ng.id.subgroup};
    }
    auto bytes = _client->request(nts::build(req));
    if (!bytes) {
        // The next session starts in full: one that failed on a resumed
        // session says why.
        _client.reset();
        _ticket = {};
        return bytes.err();
    }
    auto resp = nts::parse_key_response(*bytes);
    if (!resp) {
        _client.reset();
        _ticket = {};
        return error{
            fmt::format("group {}: the server's answer is not a PTP Key Response: {}", ng.name, resp.err().message)};
    }
    if (resp->is_error()) {
        // The server closes the session after an Error record: the next
        // group of this step asks on a new one.
        end_session();
        return error{fmt::format("group {}: the server refused: {}", ng.name,
                                 nts::error_name(std::get<nts::error_code>(resp->outcome)))};
    }
    const auto& grant = std::get<nts::key_grant>(resp->outcome);
    group_state& st = _groups[g];
    // Holds the key `p` from `start` to `end`; returns the end it holds it to.
    auto take = [&](const nts::key_parameters& p, int64_t start, int64_t end) -> result<int64_t> {
        const auto alg = nts::to_icv_algorithm(p.sa.integrity_algorithm, p.sa.key.size());
        if (!alg) {
            return error{fmt::format("group {}: key {} has MAC algorithm {} with a {}-octet key, which this node "
                                     "cannot run",
                                     ng.name, p.sa.key_id, static_cast<unsigned>(p.sa.integrity_algorithm),
                                     p.sa.key.size())};
        }
        held_key k;
        k.spp = p.sa.spp;
        k.key_id = p.sa.key_id;
        k.alg = *alg;
        k.key.assign(p.sa.key.begin(), p.sa.key.end());
        k.start_ns = start;
        k.end_ns = end;
        k.retire_ns = end + int64_t{p.validity.grace_period} * ns_per_s;
        k.update_period_s = p.validity.update_period;
        if (ng.unicast) {
            if (!p.unicast) {
                return error{fmt::format("{}: the server's answer has no ticket", ng.name)};
            }
            if (p.unicast->ticket.source_port_identity != ng.unicast->me) {
                return error{fmt::format("{}: the ticket is issued to another PortIdentity", ng.name)};
            }
            k.ticket = ticket_tlv_value(p.unicast->ticket);
        }
        auto same = std::find_if(st.keys.begin(), st.keys.end(),
                                 [&](const held_key& h) { return h.key_id == k.key_id && h.spp == k.spp; });
        if (same == st.keys.end()) {
            st.keys.push_back(std::move(k));
            ++_stats.keys_received;
            return st.keys.back().end_ns;
        }
        // Asked again (a renewal in the update period): the times stay the
        // earliest. The server rounds a remaining lifetime up to the second
        // and never lengthens a key, so the earlier end is the truer one;
        // and the data plane was given the first retire time. A later,
        // rounded-up end would move the switch to the next key to as late as
        // the data plane's own retirement of this one.
        k.start_ns = std::min(k.start_ns, same->start_ns);
        k.end_ns = std::min(k.end_ns, same->end_ns);
        k.retire_ns = std::min(k.retire_ns, same->retire_ns);
        secure_wipe(same->key.data(), same->key.size());
        *same = std::move(k);
        return same->end_ns;
    };
    // The next key starts where the current one ends, as held.
    auto cur_end = take(grant.current, now, now + int64_t{grant.current.validity.lifetime} * ns_per_s);
    if (!cur_end) {
        return cur_end.err();
    }
    if (grant.next) {
        if (auto r = take(*grant.next, *cur_end, *cur_end + int64_t{grant.next->validity.lifetime} * ns_per_s); !r) {
            return r.err();
        }
    }
    std::sort(st.keys.begin(), st.keys.end(),
              [](const held_key& a, const held_key& b) { return a.start_ns < b.start_ns; });
    return ok_status();
}

void node::push(int64_t now) {
    const std::string seg = segment_identity(_s.dataplane_prefix);
    if (seg.empty()) {
        return; // no data plane (yet): the keys wait here
    }
    if (seg != _segment) {
        if (!_segment.empty()) {
            ++_stats.dataplane_restarts;
        }
        _segment = seg;
        for (auto& st : _groups) {
            st.pushed_keys.clear();
            st.has_pushed_current = false;
        }
        _removals.clear(); // a new data plane holds none of them
    }
    std::vector<sa_wire::update> updates;
    enum class kind { add, ticket, current, remove };
    struct marker {
        size_t group;
        uint32_t key_id;
        kind what;
    };
    std::vector<marker> marks;
    for (const removal& r : _removals) {
        updates.push_back(sa_client::remove_key(r.spp, r.key_id));
        marks.push_back({r.group, r.key_id, kind::remove});
    }
    for (size_t g = 0; g < _groups.size(); ++g) {
        group_state& st = _groups[g];
        for (const held_key& k : st.keys) {
            if (k.retire_ns <= now ||
                std::find(st.pushed_keys.begin(), st.pushed_keys.end(), k.key_id) != st.pushed_keys.end()) {
                continue;
            }
            sa_wire::update u;
            u.operation = static_cast<uint8_t>(sa_wire::op::add_key);
            u.spp = k.spp;
            u.key_id = k.key_id;
            u.algorithm = static_cast<uint8_t>(k.alg);
            u.key_len = static_cast<uint8_t>(std::min(k.key.size(), sa_wire::max_key_len));
            std::copy_n(k.key.begin(), u.key_len, u.key);
            // Until the end of its grace period: the data plane retires it then by itself.
            u.lifetime_ms = static_cast<uint64_t>((k.retire_ns - now + ns_per_ms - 1) / ns_per_ms);
            updates.push_back(u);
            marks.push_back({g, k.key_id, kind::add});
            // A unicast key's ticket, for the data plane to send with the
            // unicast requests it signs with the key (seeds/001 §6).
            if (!k.ticket.empty()) {
                auto t = sa_client::set_ticket(k.spp, k.key_id, k.ticket);
                if (t) {
                    updates.push_back(*t);
                    marks.push_back({g, k.key_id, kind::ticket});
                } else {
                    st.last_error = t.message();
                }
            }
        }
        // The key whose validity holds now signs.
        for (const held_key& k : st.keys) {
            if (k.start_ns <= now && now < k.end_ns && (!st.has_pushed_current || st.pushed_current != k.key_id)) {
                updates.push_back(sa_client::set_current(k.spp, k.key_id));
                marks.push_back({g, k.key_id, kind::current});
            }
        }
    }
    if (updates.empty()) {
        return;
    }
    auto sent = sa_client::send(_s.dataplane_prefix, updates, _s.push_wait);
    if (!sent) {
        ++_stats.push_failures;
        for (const marker& m : marks) {
            _groups[m.group].last_error = fmt::format("the data plane did not take the keys: {}", sent.message());
        }
        return; // removals stay queued for the next try
    }
    _removals.clear();
    for (size_t i = 0; i < sent->size(); ++i) {
        const auto& o = (*sent)[i];
        const marker& m = marks[i];
        group_state& st = _groups[m.group];
        // A data plane that kept a key from before (this node restarted) says
        // so: it holds the key, which is all we wanted.
        const bool held = !o.applied && o.reason.find("installed already") != std::string::npos;
        if (m.what == kind::remove) {
            // Gone already (the data plane's own lifetime ended it) is as
            // good: the data plane applies that as a no-op, with a note.
            if (o.applied) {
                ++_stats.keys_removed;
                ++_stats.updates_pushed;
            } else if (o.reason.find("has no key") == std::string::npos &&
                       o.reason.find("no SA with spp") == std::string::npos) {
                ++_stats.updates_rejected;
                st.last_error = fmt::format("the data plane refused to remove key {}: {}", m.key_id, o.reason);
            }
            continue;
        }
        if (!o.applied && !held) {
            ++_stats.updates_rejected;
            st.last_error = fmt::format("the data plane refused {} of key {}: {}", ptpsec::op_name(o.update.operation),
                                        m.key_id, o.reason);
            continue;
        }
        ++_stats.updates_pushed;
        if (m.what == kind::current) {
            st.pushed_current = m.key_id;
            st.has_pushed_current = true;
        } else if (m.what == kind::add) {
            st.pushed_keys.push_back(m.key_id);
        }
    }
}

void node::end_session() {
    // One session per step that fetches: renewals are minutes apart, and a
    // session left open that long has met the server's idle timeout, so the
    // next request on it would fail. The ticket makes the next one cheap.
    if (!_client) {
        return;
    }
    // A session not closed in good order has no ticket to keep.
    (void)_client->close();
    if (auto t = _client->ticket(); !t.empty()) {
        _ticket = std::move(t);
    }
    _client.reset();
    _attestation.reset();
}

int64_t node::step(int64_t now) {
    for (size_t g = 0; g < _groups.size(); ++g) {
        group_state& st = _groups[g];
        std::erase_if(st.keys, [&](held_key& k) {
            if (k.retire_ns > now) {
                return false;
            }
            secure_wipe(k.key.data(), k.key.size());
            if (std::erase(st.pushed_keys, k.key_id) != 0) {
                _removals.push_back({g, k.spp, k.key_id});
            }
            return true;
        });
        // No key valid now: fetch at once (the first start, or a gap).
        const bool valid = std::any_of(st.keys.begin(), st.keys.end(),
                                       [&](const held_key& k) { return k.start_ns <= now && now < k.end_ns; });
        if ((!valid && st.backoff.count() == 0) || now >= st.next_fetch_ns) {
            if (auto r = fetch(g, now); r) {
                schedule_renewal(g, now);
            } else {
                ++_stats.fetch_failures;
                fail(g, now, r.message());
            }
        }
    }
    end_session();
    push(now);
    int64_t grantor_next = INT64_MAX;
    if (_grantor) {
        grantor_next = _grantor->step(now);
        const std::string seg = segment_identity(_s.dataplane_prefix);
        if (seg.empty() || seg != _segment) {
            _exceptions.reset(); // the data plane went or restarted: attach again
        }
        serve_tickets(now);
    }
    // Look at the data plane once a second, or every 100 ms while it lacks
    // keys we hold (it is starting, or has just restarted).
    bool waiting = false;
    for (const auto& st : _groups) {
        for (const auto& k : st.keys) {
            waiting |= std::find(st.pushed_keys.begin(), st.pushed_keys.end(), k.key_id) == st.pushed_keys.end();
        }
    }
    // A grantor looks at the exception channel every 10 ms: a requester's
    // first request waits for it.
    int64_t next = now + (_grantor ? 10 : waiting ? 100 : 1000) * ns_per_ms;
    next = std::min(next, grantor_next);
    for (const auto& st : _groups) {
        next = std::min(next, st.next_fetch_ns);
        for (const auto& k : st.keys) {
            for (int64_t t : {k.start_ns, k.end_ns}) {
                if (t > now) {
                    next = std::min(next, t);
                }
            }
        }
    }
    return std::max(next, now);
}

} // namespace ptpsec::node
