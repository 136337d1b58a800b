// ptpsec-controld: the NTS4PTP control plane (seeds/001) and the online
// attestation Verifier, with roles that a configuration file turns on:
//
//   [server]  the NTS-KE server: PTP Key Requests over TLS 1.3 (ALPN
//             ntske/1, client certificates required), answered from the
//             group key schedule, whose keys survive restarts in the state
//             file; with [unicast] also ticket-based mode: grantors register
//             over ntstsr/1 (control/ke/grantors.h) and requesters get
//             unicast keys and tickets.
//   [node]    asks a KE server for its groups' keys and keeps the local
//             ptpsec-dataplane supplied through its SA channel
//             (control/node/node.h).
//   [verifier] watches data planes' evidence log directories and verifies
//             every batch soon after it is written, against the Registrar,
//             into the audit store (control/verifier/watcher.h).
//
//   ptpsec-controld --config /etc/ptpsec/controld.toml
//
// With both roles the server runs on a thread of its own. The admin socket
// ([admin], admin.h: `ptpsecctl status`, `groups`, `grantors`) is answered on
// another. SIGHUP reloads the server's certificates and keys (new
// connections use them); SIGINT and SIGTERM stop it cleanly, with its
// counters printed, and remove the admin socket.
//
// Threads and what they share: the key schedule, the grantor registry and the KE service belong to
// the TLS loop thread, and the admin thread reads them under one mutex, held
// for one call at a time (a key request, a copy of the counters, one group's
// parameters). The node runs on the main thread and publishes a copy of its
// state (key IDs, never key bytes) after each step, under a mutex of its
// own. The TLS server's counters are a thread-safe snapshot already.

#include <control/controld/admin.h>
#include <control/controld/admin_request.h>
#include <control/controld/challenger.h>
#include <control/controld/config.h>
#include <control/ke/ke_service.h>
#include <control/ke/store.h>
#include <control/node/node.h>
#include <control/nts/message.h>
#include <control/status_text.h>
#include <control/tls/server.h>
#include <control/verifier/audit_store.h>
#include <control/verifier/registrar.h>
#include <control/verifier/watcher.h>
#include <drivers/base/thread_name.h>

#include <CLI/CLI.hpp>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#ifndef PTPSEC_VERSION
#define PTPSEC_VERSION "unknown"
#endif

namespace ptpsec::controld {
namespace {

constexpr int exit_ok = 0;
constexpr int exit_error = 2;

tls::server* running = nullptr;
std::atomic<bool> stop_requested{false};

void on_stop(int /*sig*/) {
    stop_requested.store(true, std::memory_order_relaxed);
    if (running != nullptr) {
        running->stop();
    }
}

void on_hup(int /*sig*/) {
    if (running != nullptr) {
        running->request_reload();
    }
}

ke::client_identity identity_of(const tls::peer& p) {
    ke::client_identity id;
    id.subject = p.subject;
    for (const auto& d : p.dns_names) {
        id.sans.push_back("DNS:" + d);
    }
    for (const auto& a : p.ip_addresses) {
        id.sans.push_back("IP:" + a);
    }
    for (const auto& u : p.uris) {
        id.sans.push_back("URI:" + u);
    }
    id.session_binding = p.session_binding;
    return id;
}

/// The node's Platform Attestation from its TPM signer. The TPM is opened
/// for each quote (one per TLS session with the KE server) and let go
/// again, so that a TPM reached over one connection at a time (swtpm) stays
/// free for the data plane's signer; a TPM that cannot be reached fails
/// that fetch, which is retried like any other.
node::attestation_settings tpm_attestation(const node_attestation_settings& a) {
    node::attestation_settings out;
    out.signer_id = a.tpm.signer_id;
    out.quote = [a](std::span<const uint8_t> binding) -> result<nts::platform_attestation> {
        auto signer = hsm::tpm_signer::open(a.tpm);
        if (!signer) {
            return error{fmt::format("TPM at {}: {}", a.tpm.tcti, signer.message())};
        }
        auto q = (*signer)->quote(binding, a.pcrs);
        if (!q) {
            return q.err();
        }
        return nts::platform_attestation{a.tpm.signer_id, std::move(q->attest), std::move(q->signature)};
    };
    return out;
}

void print_stats(const ke::ke_service& ke, const ke::grantor_registry* grantors, const tls::server& srv,
                 std::string_view label) {
    const auto& k = ke.stats();
    const auto t = srv.stats();
    fmt::print("ptpsec-controld ({}): key requests {} granted {} (with next {}) refused: not authorized {}, bad "
               "request {}, critical record {}, internal error {}, grantor not registered {}\n",
               label, k.requests, k.granted, k.granted_with_next, k.refused[3], k.refused[1], k.refused[0],
               k.refused[2], k.refused[4]);
    if (k.attestations_verified + k.attestations_failed + k.refused_unattested > 0) {
        fmt::print("  platform attestations: verified {} failed {} | refused for want of one {}\n",
                   k.attestations_verified, k.attestations_failed, k.refused_unattested);
    }
    if (grantors != nullptr) {
        const auto& g = grantors->stats();
        fmt::print("  tickets: registrations {} renewals {} revoked {} dropped (no heartbeat {}, not renewed {}) | "
                   "heartbeats {} discarded {} | unicast keys {} (with next {})\n",
                   g.registrations, g.renewals, g.revoked, g.dropped_heartbeat, g.dropped_expired, g.heartbeats,
                   g.heartbeats_discarded, g.unicast_keys, g.unicast_keys_with_next);
    }
    fmt::print("  TLS: accepted {} handshakes ok {} (resumed {}) failed {} | rate-limited {} over cap {} | timeouts: "
               "handshake {} idle {} | oversize {} | active {}\n",
               t.accepted, t.handshakes_ok, t.resumed, t.handshakes_failed, t.rate_limited, t.over_cap,
               t.handshake_timeouts, t.idle_timeouts, t.oversize_messages, t.active_connections);
    std::fflush(stdout);
}

int64_t monotonic_now() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000LL + ts.tv_nsec;
}

/// The node's grantor role as the admin socket shows it (`ptpsecctl status
/// --json`, node.grantor); null without one. `now` on the monotonic clock.
nlohmann::ordered_json grantor_status(const node::node& n, int64_t now) {
    using json = nlohmann::ordered_json;
    const node::grantor* g = n.grantor_role();
    if (g == nullptr) {
        return nullptr;
    }
    json keys = json::array();
    for (const auto& k : g->keys()) {
        keys.push_back({{"ticket_key_id", k.id},
                        {"starts_in_s", std::max<int64_t>(0, (k.start_ns - now) / 1'000'000'000LL)},
                        {"remaining_lifetime_s", std::max<int64_t>(0, (k.end_ns - now) / 1'000'000'000LL)}});
    }
    const auto& gc = g->stats();
    const auto& tc = n.ticket_stats();
    return {{"port_identity", ke::to_string(std::get<nts::port_identity>(g->config().time_server.addresses.front()))},
            {"ticket_keys", std::move(keys)},
            {"heartbeat_timeout_s", g->heartbeat_timeout() ? json(*g->heartbeat_timeout()) : json(nullptr)},
            {"next_registration_in_s", std::max<int64_t>(0, (g->next_registration_ns() - now) / 1'000'000'000LL)},
            {"counters",
             {{"registrations", gc.registrations},
              {"registration_failures", gc.registration_failures},
              {"heartbeats_sent", gc.heartbeats_sent},
              {"tickets_opened", gc.tickets_opened},
              {"tickets_refused", gc.tickets_refused},
              {"replays_refused", gc.replays_refused},
              {"quotes", gc.quotes},
              {"sessions", gc.sessions},
              {"sessions_resumed", gc.sessions_resumed},
              {"requests_handed_over", tc.requests},
              {"unicast_sas_installed", tc.installed},
              {"requests_refused", tc.refused},
              {"requests_failed", tc.failed}}},
            {"last_error", g->last_error()},
            {"last_ticket_error", n.last_ticket_error()}};
}

void print_node(const node::node& n, std::string_view label) {
    const auto& c = n.stats();
    fmt::print("ptpsec-controld node ({}): fetches {} failed {} keys received {} removed {} | TLS sessions {} "
               "(resumed {}) | SA updates pushed {} rejected {} | no data plane {} | data plane restarts {}{}\n",
               label, c.fetches, c.fetch_failures, c.keys_received, c.keys_removed, c.sessions, c.sessions_resumed,
               c.updates_pushed, c.updates_rejected, c.push_failures, c.dataplane_restarts,
               n.config().attestation ? fmt::format(" | platform quotes {} (as signer \"{}\")", c.quotes,
                                                    n.config().attestation->signer_id)
                                      : std::string());
    if (const auto g = grantor_status(n, monotonic_now()); !g.is_null()) {
        fmt::print("{}\n", grantor_status_line(g));
    }
    for (size_t g = 0; g < n.groups().size(); ++g) {
        const auto& st = n.groups()[g];
        fmt::print("  group {}: {} key(s) held", n.config().groups[g].name, st.keys.size());
        if (st.has_pushed_current) {
            fmt::print(", signing with key {}", st.pushed_current);
        }
        if (!st.last_error.empty()) {
            fmt::print(" | last error: {}", st.last_error);
        }
        fmt::print("\n");
    }
    std::fflush(stdout);
}

using json = nlohmann::ordered_json;

/// Whole seconds from `now` to `t` (CLOCK_MONOTONIC ns), 0 when past.
int64_t seconds_from(int64_t now, int64_t t) {
    return std::max<int64_t>(0, (t - now) / 1'000'000'000LL);
}

/// One group of the node role as the admin thread sees it: key IDs, never
/// key bytes.
struct node_key_view {
    uint8_t spp = 0;
    uint32_t key_id = 0;
    icv::algorithm alg = icv::algorithm::hmac_sha256_128;
    int64_t start_ns = 0;
    int64_t end_ns = 0;
    int64_t retire_ns = 0;
    bool pushed = false;
    bool ticket = false;
};

struct node_group_view {
    std::string name;
    ke::group_id id;
    bool unicast = false;
    std::vector<uint32_t> key_ids;
    std::vector<node_key_view> keys;
    std::optional<uint32_t> signing_key_id;
    int64_t next_fetch_in_ms = 0;
    std::string last_error;
};

/// The node role runs on the main thread; after each step it publishes a
/// copy of what the admin thread may show.
class node_board {
public:
    void publish(const node::node& n, int64_t now) {
        std::vector<node_group_view> groups;
        groups.reserve(n.groups().size());
        for (size_t g = 0; g < n.groups().size(); ++g) {
            const auto& st = n.groups()[g];
            node_group_view v;
            v.name = n.config().groups[g].name;
            v.id = n.config().groups[g].id;
            v.unicast = n.config().groups[g].unicast.has_value();
            for (const auto& k : st.keys) {
                v.key_ids.push_back(k.key_id);
                v.keys.push_back(
                    {k.spp, k.key_id, k.alg, k.start_ns, k.end_ns, k.retire_ns,
                     std::find(st.pushed_keys.begin(), st.pushed_keys.end(), k.key_id) != st.pushed_keys.end(),
                     !k.ticket.empty()});
            }
            if (st.has_pushed_current) {
                v.signing_key_id = st.pushed_current;
            }
            v.next_fetch_in_ms = std::max<int64_t>(0, (st.next_fetch_ns - now) / 1'000'000);
            v.last_error = st.last_error;
            groups.push_back(std::move(v));
        }
        json grantor = grantor_status(n, now);
        const std::lock_guard lock(_mutex);
        _counters = n.stats();
        _groups = std::move(groups);
        _grantor = std::move(grantor);
        _published_ns = now;
    }

    /// Admin thread: has the node thread fetch `group` (every group when
    /// empty) now, and waits until the fetch is done or `wait` has passed.
    /// The groups matched, or nullopt when the node did not get to it in time.
    std::optional<size_t> refresh(const std::string& group, std::chrono::milliseconds wait) {
        std::unique_lock lock(_mutex);
        const uint64_t ticket = ++_requested;
        _pending.push_back({ticket, group});
        if (!_done.wait_for(lock, wait, [&] { return _served >= ticket; })) {
            return std::nullopt;
        }
        return _matched.at(ticket);
    }

    /// Node thread, before a step: hands the node the refreshes asked for.
    void take_requests(node::node& n) {
        const std::lock_guard lock(_mutex);
        for (const auto& r : _pending) {
            _matched[r.ticket] = n.refresh(r.group);
            _taken = r.ticket;
        }
        _pending.clear();
    }

    /// Node thread, after the step and publish(): the refreshes taken are done.
    void requests_done() {
        {
            const std::lock_guard lock(_mutex);
            _served = _taken;
        }
        _done.notify_all();
    }

    /// The node's keys per group, for `sa list`: IDs, algorithms and times, never key bytes.
    json sa_json() const {
        const std::lock_guard lock(_mutex);
        json out = json::array();
        for (const auto& g : _groups) {
            json keys = json::array();
            for (const auto& k : g.keys) {
                const char* state = k.start_ns > _published_ns ? "next"
                                    : k.end_ns > _published_ns ? "current"
                                                               : "grace";
                keys.push_back({{"spp", k.spp},
                                {"key_id", k.key_id},
                                {"algorithm", icv::info(k.alg).name},
                                {"state", state},
                                {"signing", g.signing_key_id == k.key_id},
                                {"in_dataplane", k.pushed},
                                {"ticket", k.ticket},
                                {"starts_in_s", seconds_from(_published_ns, k.start_ns)},
                                {"ends_in_s", seconds_from(_published_ns, k.end_ns)},
                                {"retires_in_s", seconds_from(_published_ns, k.retire_ns)}});
            }
            out.push_back({{"name", g.name},
                           {"kind", g.unicast ? "unicast" : "group"},
                           {"keys", std::move(keys)},
                           {"last_error", g.last_error}});
        }
        return out;
    }

    json to_json() const {
        const std::lock_guard lock(_mutex);
        static_assert(sizeof(node::counters) == 12 * sizeof(uint64_t), "a new node counter: show it here");
        json out;
        out["counters"] = {{"fetches", _counters.fetches},
                           {"refreshes", _counters.refreshes},
                           {"keys_removed", _counters.keys_removed},
                           {"fetch_failures", _counters.fetch_failures},
                           {"keys_received", _counters.keys_received},
                           {"updates_pushed", _counters.updates_pushed},
                           {"updates_rejected", _counters.updates_rejected},
                           {"push_failures", _counters.push_failures},
                           {"dataplane_restarts", _counters.dataplane_restarts},
                           {"quotes", _counters.quotes},
                           {"sessions", _counters.sessions},
                           {"sessions_resumed", _counters.sessions_resumed}};
        out["grantor"] = _grantor;
        out["groups"] = json::array();
        for (const auto& g : _groups) {
            out["groups"].push_back({{"name", g.name},
                                     {"domain", g.id.domain},
                                     {"sdo_id", g.id.sdo_id},
                                     {"subgroup", g.id.subgroup},
                                     {"keys_held", g.key_ids.size()},
                                     {"key_ids", g.key_ids},
                                     {"signing_key_id", g.signing_key_id ? json(*g.signing_key_id) : json(nullptr)},
                                     {"next_fetch_in_s", (g.next_fetch_in_ms + 999) / 1000},
                                     {"last_error", g.last_error}});
        }
        return out;
    }

private:
    struct request {
        uint64_t ticket;
        std::string group;
    };
    mutable std::mutex _mutex;
    std::condition_variable _done;
    node::counters _counters;
    json _grantor;
    std::vector<node_group_view> _groups;
    int64_t _published_ns = 0;
    std::vector<request> _pending;
    std::map<uint64_t, size_t> _matched;
    uint64_t _requested = 0;
    uint64_t _taken = 0;
    uint64_t _served = 0;
};

/// The node role until a stop signal: does what is due, sleeps until the
/// next thing (at most 100 ms at a time, to notice the signal).
void run_node(node::node& n, node_board& board) {
    uint64_t last_changes = ~0ULL;
    while (!stop_requested.load(std::memory_order_relaxed)) {
        const int64_t now = monotonic_now();
        board.take_requests(n);
        const int64_t next = n.step(now);
        board.publish(n, monotonic_now());
        board.requests_done();
        const auto& c = n.stats();
        uint64_t changes = c.keys_received + c.updates_pushed + c.fetch_failures + c.dataplane_restarts;
        if (const node::grantor* gr = n.grantor_role()) {
            changes += gr->stats().registrations + gr->stats().registration_failures + n.ticket_stats().requests;
        }
        if (changes != last_changes) {
            print_node(n, "live");
            last_changes = changes;
        }
        const int64_t wait = std::clamp<int64_t>(next - monotonic_now(), 0, 100'000'000);
        if (wait > 0) {
            timespec ts{0, static_cast<long>(wait)};
            nanosleep(&ts, nullptr);
        }
    }
}

/// What the online Verifier found so far, for `ptpsecctl status`.
class verifier_board {
public:
    void add(const verifier::verify_report& r) {
        const std::lock_guard lock(_mutex);
        ++_polls;
        _total.records += r.records;
        _total.batches_accepted += r.batches_accepted;
        _total.batches_verified += r.batches_verified;
        _total.events += r.events;
        _failures += r.failures.size();
        _warnings += r.warnings.size();
        _store_errors += r.store_errors.size();
        for (const auto& f : r.failures) {
            _recent.push_back(describe(f));
        }
        for (const auto& e : r.store_errors) {
            _recent.push_back("store: " + e);
        }
        while (_recent.size() > 10) {
            _recent.erase(_recent.begin());
        }
    }

    static std::string describe(const verifier::finding& f) {
        return fmt::format("{} offset {}{}: {}: {}", f.file, f.offset,
                           f.counter ? fmt::format(" counter {}", *f.counter) : std::string(), f.check, f.message);
    }

    /// The challenger's state after its last step.
    void set_challenges(json challenges, std::string summary) {
        const std::lock_guard lock(_mutex);
        _challenges = std::move(challenges);
        _challenge_summary = std::move(summary);
    }

    /// The outcome of a check of the EK certificates against the CRLs.
    void set_ek_check(json check) {
        const std::lock_guard lock(_mutex);
        _ek_check = std::move(check);
    }

    json to_json(const config& cfg) const {
        const std::lock_guard lock(_mutex);
        return {{"logs", cfg.verifier->logs},
                {"challenges", _challenges},
                {"ek_check", _ek_check},
                {"polls", _polls},
                {"records", _total.records},
                {"batches_accepted", _total.batches_accepted},
                {"batches_verified", _total.batches_verified},
                {"events", _total.events},
                {"failures", _failures},
                {"warnings", _warnings},
                {"store_errors", _store_errors},
                {"recent_failures", _recent}};
    }

    void print(std::string_view label) const {
        const std::lock_guard lock(_mutex);
        fmt::print("ptpsec-controld verifier ({}): batches accepted {} (verified {}) events {} | failures {} warnings "
                   "{} store errors {}{}{}\n",
                   label, _total.batches_accepted, _total.batches_verified, _total.events, _failures, _warnings,
                   _store_errors, _challenge_summary.empty() ? "" : " | ", _challenge_summary);
        std::fflush(stdout);
    }

private:
    mutable std::mutex _mutex;
    verifier::verify_report _total;
    uint64_t _polls = 0;
    uint64_t _failures = 0;
    uint64_t _warnings = 0;
    uint64_t _store_errors = 0;
    std::vector<std::string> _recent;
    json _challenges = json::array();
    std::string _challenge_summary;
    json _ek_check = nullptr;
};

/// [verifier] ek-ca/ek-crl: the enrolled TPM signers' EK certificates
/// against the vendors' CRLs; a listed one revokes its signer. Each
/// revocation and each signer that could not be checked is printed.
void check_eks(verifier::registrar& reg, const verifier_settings& s, verifier_board& board) {
    const auto now = std::chrono::system_clock::now();
    auto checks = reg.check_ek_revocations(verifier::ek_trust{s.ek_ca, s.ek_crl});
    json j = json::object();
    j["at"] = fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", fmt::gmtime(std::chrono::system_clock::to_time_t(now)));
    j["crl"] = s.ek_crl;
    if (!checks) {
        fmt::print("ptpsec-controld verifier: EK certificate check failed: {}\n", checks.message());
        j["error"] = checks.message();
        board.set_ek_check(std::move(j));
        return;
    }
    std::map<std::string, uint64_t> counts{{"valid", 0}, {"revoked", 0}, {"cannot_check", 0}, {"no_certificate", 0}};
    json problems = json::array();
    for (const auto& c : *checks) {
        ++counts[verifier::to_string(c.result)];
        if (c.result == verifier::ek_revocation_check::outcome::revoked) {
            fmt::print("ptpsec-controld verifier: signer \"{}\" REVOKED from {} ns: {}\n", c.signer_id,
                       *c.revoked_at_ns, c.detail);
        } else if (c.result == verifier::ek_revocation_check::outcome::cannot_check) {
            fmt::print("ptpsec-controld verifier: signer \"{}\": {}\n", c.signer_id, c.detail);
        }
        if (c.result != verifier::ek_revocation_check::outcome::valid) {
            problems.push_back(
                {{"signer_id", c.signer_id}, {"result", verifier::to_string(c.result)}, {"detail", c.detail}});
        }
    }
    for (const auto& [k, n] : counts) {
        j[k] = n;
    }
    j["signers"] = std::move(problems);
    std::fflush(stdout);
    board.set_ek_check(std::move(j));
}

/// The verifier role until a stop signal: a poll every poll_ms; each failure
/// is printed as it is found.
void run_verifier(verifier::watcher& w, verifier::registrar& reg, controld::challenger* ch, const verifier_settings& s,
                  verifier_board& board) {
    auto next_ek_check = std::chrono::steady_clock::now();
    while (!stop_requested.load(std::memory_order_relaxed)) {
        if (!s.ek_crl.empty() && std::chrono::steady_clock::now() >= next_ek_check) {
            check_eks(reg, s, board);
            next_ek_check = std::chrono::steady_clock::now() + std::chrono::seconds(s.ek_check_interval_s);
        }
        if (ch != nullptr) {
            ch->step();
            board.set_challenges(ch->to_json(), ch->summary());
        }
        verifier::verify_report r;
        w.poll(r);
        for (const auto& f : r.failures) {
            fmt::print("ptpsec-controld verifier: FAILED {}\n", verifier_board::describe(f));
        }
        for (const auto& e : r.store_errors) {
            fmt::print("ptpsec-controld verifier: {}\n", e);
        }
        board.add(r);
        if (r.batches_accepted != 0 || !r.failures.empty()) {
            board.print("live");
        }
        for (uint32_t waited = 0; waited < s.poll_ms && !stop_requested.load(std::memory_order_relaxed); waited += 50) {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::min<uint32_t>(50, s.poll_ms - waited)));
        }
    }
}

/// The names of seeds/001 Table 19's error codes 0-4, as JSON keys.
constexpr std::array<const char*, 5> refusal_names = {
    "unrecognized_critical_record", "bad_request", "internal_server_error", "not_authorized", "grantor_not_registered"};

json ke_json(const ke::ke_service::counters& k) {
    json refused = json::object();
    for (size_t code = 0; code < refusal_names.size(); ++code) {
        refused[refusal_names[code]] = k.refused[code];
    }
    return {{"requests", k.requests},
            {"granted", k.granted},
            {"granted_with_next", k.granted_with_next},
            {"granted_to_transparent_clocks", k.granted_to_transparent_clocks},
            {"unicast_granted", k.unicast_granted},
            {"tsr_requests", k.tsr_requests},
            {"registrations", k.registrations},
            {"revokes", k.revokes},
            {"heartbeats", k.heartbeats},
            {"heartbeats_discarded", k.heartbeats_discarded},
            {"attestations_verified", k.attestations_verified},
            {"attestations_failed", k.attestations_failed},
            {"refused_unattested", k.refused_unattested},
            {"refused", std::move(refused)}};
}

json tls_json(const tls::server_stats& t) {
    json j = json::object();
    for (const auto& c : tls::server_counters()) {
        j[std::string(c.name)] = t.*c.field;
    }
    return j;
}

/// What the admin thread may look at. The schedule and the service only
/// under `ke_mutex`.
struct daemon_view {
    const config* cfg = nullptr;
    std::string config_file;
    int64_t started_ns = 0;
    std::mutex* ke_mutex = nullptr;
    ke::key_schedule* keys = nullptr;         ///< null without the server role
    ke::grantor_registry* grantors = nullptr; ///< null without [unicast]
    const ke::ke_service* ke = nullptr;
    const tls::server* tls = nullptr;
    uint16_t port = 0;
    node_board* node = nullptr;               ///< null without the node role
    const verifier_board* verifier = nullptr; ///< null without the verifier role
    const admin::server* admin = nullptr;
};

json status_reply(const daemon_view& d) {
    json out;
    out["daemon"] = "ptpsec-controld";
    out["version"] = PTPSEC_VERSION;
    out["pid"] = ::getpid();
    out["uptime_s"] = (monotonic_now() - d.started_ns) / 1'000'000'000LL;
    out["config"] = d.config_file;
    out["roles"] = {{"server", d.keys != nullptr}, {"node", d.node != nullptr}, {"verifier", d.verifier != nullptr}};
    if (d.keys != nullptr) {
        ke::ke_service::counters k;
        std::string attestation_refusal;
        {
            const std::lock_guard lock(*d.ke_mutex);
            k = d.ke->stats();
            attestation_refusal = d.ke->last_attestation_refusal();
        }
        out["server"] = {{"port", d.port},
                         {"groups", d.cfg->groups.size()},
                         {"state", d.cfg->server->state_file},
                         {"registrar", d.cfg->server->registrar},
                         {"ke", ke_json(k)},
                         {"last_attestation_refusal", attestation_refusal},
                         {"tls", tls_json(d.tls->stats())},
                         {"last_reload_error", d.tls->last_reload_error()}};
        const auto refusal = d.tls->last_refusal();
        out["server"]["last_handshake_failure"] = refusal ? tls::to_string(*refusal) : std::string();
    }
    if (d.node != nullptr) {
        json n = {{"server", fmt::format("{}:{}", d.cfg->node->server_host, d.cfg->node->server_port)},
                  {"dataplane_prefix", d.cfg->node->dataplane_prefix}};
        n.update(d.node->to_json());
        out["node"] = std::move(n);
    }
    if (d.verifier != nullptr) {
        out["verifier"] = d.verifier->to_json(*d.cfg);
    }
    const admin::counters a = d.admin->stats();
    out["admin"] = {
        {"socket", d.admin->path()}, {"answered", a.answered}, {"refused", a.refused}, {"timeouts", a.timeouts}};
    return out;
}

/// Each configured group with its current key's ID and remaining lifetime,
/// and the next key's ID in the update period. Asking makes the epochs a
/// key request at this moment would make (key_schedule::parameters), so a
/// later request gets the same keys.
json groups_reply(const daemon_view& d) {
    if (d.keys == nullptr) {
        return {{"error", "this ptpsec-controld has no [server] role, so it hands out no group keys; `ptpsecctl "
                          "status` shows the keys its node holds"}};
    }
    json groups = json::array();
    for (const auto& p : d.cfg->groups) {
        json g = {{"name", p.name},
                  {"domain", p.id.domain},
                  {"sdo_id", p.id.sdo_id},
                  {"subgroup", p.id.subgroup},
                  {"algorithm", icv::info(p.alg).name},
                  {"lifetime_s", p.lifetime_s},
                  {"update_period_s", p.update_period_s},
                  {"grace_period_s", p.grace_period_s}};
        std::optional<result<ke::group_parameters>> now;
        {
            const std::lock_guard lock(*d.ke_mutex);
            g["spp"] = d.keys->spp_of(p.name);
            now.emplace(d.keys->parameters(p.name));
        }
        if (!*now) {
            g["error"] = now->message();
        } else {
            const ke::group_parameters& k = **now;
            g["current"] = {{"key_id", k.current.key_id}, {"remaining_lifetime_s", k.current_validity.lifetime_s}};
            g["next"] =
                k.next ? json{{"key_id", k.next->key_id}, {"lifetime_s", k.next_validity.lifetime_s}} : json(nullptr);
        }
        groups.push_back(std::move(g));
    }
    return {{"groups", std::move(groups)}};
}

std::string address_label(const nts::association_value& a) {
    if (const auto* v4 = std::get_if<nts::ipv4_address>(&a)) {
        return fmt::format("{}.{}.{}.{}", v4->octets[0], v4->octets[1], v4->octets[2], v4->octets[3]);
    }
    if (const auto* v6 = std::get_if<nts::ipv6_address>(&a)) {
        char buf[INET6_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET6, v6->octets.data(), buf, sizeof buf);
        return buf;
    }
    if (const auto* mac = std::get_if<nts::mac_address>(&a)) {
        const auto& o = mac->octets;
        return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3], o[4], o[5]);
    }
    if (const auto* pid = std::get_if<nts::port_identity>(&a)) {
        return ke::to_string(*pid);
    }
    return "group";
}

std::string aead_label(nts::aead_algorithm a) {
    switch (a) {
    case nts::aead_algorithm::aes_siv_cmac_256:
        return "aes-siv-cmac-256";
    case nts::aead_algorithm::aes_siv_cmac_384:
        return "aes-siv-cmac-384";
    case nts::aead_algorithm::aes_siv_cmac_512:
        return "aes-siv-cmac-512";
    }
    return std::to_string(static_cast<unsigned>(a));
}

/// The registered grantors: PortIdentity, addresses, owner, AEAD algorithm,
/// ticket key IDs and lifetimes, heartbeats. Never a key.
json grantors_reply(const daemon_view& d) {
    if (d.keys == nullptr) {
        return {{"error", "this ptpsec-controld has no [server] role, so no grantor registers with it"}};
    }
    if (d.grantors == nullptr) {
        return {{"error", "ticket-based mode is off on this server: no grantor can register (add [unicast] to "
                          "the configuration to turn it on)"}};
    }
    const std::lock_guard lock(*d.ke_mutex);
    d.grantors->expire();
    const int64_t now = d.grantors->clock().monotonic_ns();
    const auto& pol = d.grantors->policy();
    json list = json::array();
    for (const ke::grantor_record* g : d.grantors->grantors()) {
        json addresses = json::array();
        for (const auto& a : g->time_server.addresses) {
            addresses.push_back(address_label(a));
        }
        json keys = json::array();
        for (const auto& e : g->epochs) {
            keys.push_back({{"ticket_key_id", e.ticket_key_id},
                            {"aead", aead_label(e.aead)},
                            {"starts_in_s", std::max<int64_t>(0, (e.start_ns - now) / 1'000'000'000LL)},
                            {"remaining_lifetime_s", std::max<int64_t>(0, (e.end_ns() - now) / 1'000'000'000LL)}});
        }
        json item = {{"port_identity", ke::to_string(g->id)},
                     {"owner", g->owner},
                     {"addresses", std::move(addresses)},
                     {"ticket_keys", std::move(keys)},
                     {"heartbeats", g->heartbeats}};
        item["last_heartbeat_s_ago"] =
            pol.heartbeat_timeout_s != 0 ? json((now - g->heartbeat_ns) / 1'000'000'000LL) : json(nullptr);
        list.push_back(std::move(item));
    }
    return {{"unicast_spp", d.grantors->spp()},
            {"lifetime_s", pol.lifetime_s},
            {"update_period_s", pol.update_period_s},
            {"grace_period_s", pol.grace_period_s},
            {"heartbeat_timeout_s", pol.heartbeat_timeout_s},
            {"grantors", std::move(list)}};
}

/// `revoke`: the operator ends a grantor's registration (as the grantor's own
/// Registration Revoke would); requesters get Grantor not Registered for it.
json revoke_reply(const daemon_view& d, const nlohmann::json& request) {
    if (d.grantors == nullptr) {
        return {{"error", "ticket-based mode is off on this server: there is no grantor to revoke"}};
    }
    const auto named = admin::parse_revoke(request);
    if (!named) {
        return {{"error", named.message()}};
    }
    const std::string& name = *named;
    const std::lock_guard lock(*d.ke_mutex);
    for (const ke::grantor_record* g : d.grantors->grantors()) {
        if (ke::to_string(g->id) == name) {
            const std::string owner = g->owner;
            const nts::port_identity id = g->id;
            (void)d.grantors->revoke(owner, id);
            return {{"revoked", name}, {"owner", owner}};
        }
    }
    return {{"error", fmt::format("no grantor {} is registered (`ptpsecctl grantors` lists them)", name)}};
}

/// `rotate`: an early rotation. On a server, the group's current key (every
/// group's, without "group") ends "in_s" seconds from now (default: the
/// group's update period) and its next key is handed out from now on
/// (key_schedule::rotate). On a node, the group (every group) is fetched at
/// once, so that the node learns of a rotation without waiting for its
/// schedule; the reply comes once the fetch is done.
json rotate_reply(const daemon_view& d, const nlohmann::json& request) {
    const auto args = admin::parse_rotate(request);
    if (!args) {
        return {{"error", args.message()}};
    }
    const std::string& group = args->group;
    const std::optional<uint32_t> in_s = args->in_s;
    json out = json::object();
    bool known = false;
    if (d.keys != nullptr) {
        json rotated = json::array();
        for (const auto& p : d.cfg->groups) {
            if (!group.empty() && p.name != group) {
                continue;
            }
            known = true;
            result<ke::rotation> r = error{""};
            {
                const std::lock_guard lock(*d.ke_mutex);
                r = d.keys->rotate(p.name, in_s.value_or(p.update_period_s));
            }
            if (r) {
                rotated.push_back({{"group", p.name},
                                   {"key_id", r->key_id},
                                   {"was_ending_in_s", r->old_left_s},
                                   {"ends_in_s", r->left_s},
                                   {"next_key_id", r->next_key_id != 0 ? json(r->next_key_id) : json(nullptr)}});
            } else {
                rotated.push_back({{"group", p.name}, {"error", r.message()}});
            }
        }
        out["server"] = std::move(rotated);
    }
    if (d.node != nullptr) {
        const auto matched = d.node->refresh(group, std::chrono::seconds(15));
        if (!matched) {
            out["node"] = {{"error", "the node did not finish fetching within 15 s; `ptpsecctl status` shows how it "
                                     "went"}};
        } else {
            known = known || *matched > 0;
            json groups = json::array();
            for (auto& g : d.node->sa_json()) {
                if (group.empty() || g.at("name") == group) {
                    groups.push_back(std::move(g));
                }
            }
            out["node"] = {{"fetched", *matched}, {"groups", std::move(groups)}};
        }
    }
    if (!known && !group.empty()) {
        return {{"error", fmt::format("no group {} here: `ptpsecctl groups` lists a server's groups, `ptpsecctl "
                                      "status` a node's",
                                      group)}};
    }
    return out;
}

/// `sa`: the keys this daemon holds, never their bytes. A server: every
/// group's live epochs; a node: what it fetched and whether the data plane has it.
json sa_reply(const daemon_view& d) {
    json out = json::object();
    if (d.keys != nullptr) {
        std::vector<ke::key_schedule::key_summary> keys;
        int64_t now = 0;
        {
            const std::lock_guard lock(*d.ke_mutex);
            keys = d.keys->live_keys();
            now = monotonic_now();
        }
        json groups = json::array();
        for (const auto& p : d.cfg->groups) {
            json list = json::array();
            for (const auto& k : keys) {
                if (k.group != p.name) {
                    continue;
                }
                const char* state = k.start_ns > now ? "next" : k.end_ns > now ? "current" : "grace";
                list.push_back({{"spp", k.spp},
                                {"key_id", k.key_id},
                                {"algorithm", icv::info(k.alg).name},
                                {"state", state},
                                {"starts_in_s", seconds_from(now, k.start_ns)},
                                {"ends_in_s", seconds_from(now, k.end_ns)},
                                {"retires_in_s", seconds_from(now, k.retire_ns)}});
            }
            groups.push_back({{"name", p.name}, {"kind", "group"}, {"keys", std::move(list)}});
        }
        out["server"] = {{"groups", std::move(groups)}};
    }
    if (d.node != nullptr) {
        out["node"] = {{"dataplane_prefix", d.cfg->node->dataplane_prefix}, {"groups", d.node->sa_json()}};
    }
    return out;
}

json answer(const daemon_view& d, const std::string& command, const nlohmann::json& request) {
    if (command == "status") {
        return status_reply(d);
    }
    if (command == "groups") {
        return groups_reply(d);
    }
    if (command == "grantors") {
        return grantors_reply(d);
    }
    if (command == "revoke") {
        return revoke_reply(d, request);
    }
    if (command == "rotate") {
        return rotate_reply(d, request);
    }
    if (command == "sa") {
        return sa_reply(d);
    }
    return {{"error", fmt::format("unknown command \"{}\": ptpsec-controld answers status, groups, grantors, sa, "
                                  "rotate and revoke",
                                  command)}};
}

/// The admin socket, or null: off in the configuration, or the default path
/// could not be had (said on stderr). `failed` when a configured one could
/// not be opened: the daemon stops.
std::unique_ptr<admin::server> open_admin(const admin_settings& a, bool& failed) {
    failed = false;
    if (!a.enabled) {
        return nullptr;
    }
    auto opened = admin::server::open(a.socket);
    if (opened) {
        return std::move(opened).value();
    }
    if (a.configured) {
        fmt::print(stderr, "ptpsec-controld: {}\n", opened.message());
        failed = true;
    } else {
        fmt::print(stderr,
                   "ptpsec-controld: {}; running without an admin socket (give this daemon its own with [admin] "
                   "socket = \"PATH\")\n",
                   opened.message());
    }
    return nullptr;
}

/// What serve() would refuse that reading the file cannot see, checked
/// without binding a port or opening a database: the TLS files of the
/// server and of the node as they would be loaded, the listen addresses,
/// that each Registrar database exists (opening one that is not there makes
/// an empty one, which knows no signer), and the EK CA and CRL files.
status preflight(const config& cfg) {
    auto exists = [](const std::string& path) {
        std::error_code ec;
        return std::filesystem::exists(path, ec);
    };
    if (cfg.server) {
        if (auto st = tls::server::check(cfg.server->tls); !st) {
            return error{fmt::format("[server]: {}", st.message())};
        }
        if (!cfg.server->registrar.empty() && !exists(cfg.server->registrar)) {
            return error{fmt::format("server.registrar {}: no such file (enrol the nodes' TPM signers with ptpsecctl "
                                     "registrar enrol first)",
                                     cfg.server->registrar)};
        }
    }
    if (cfg.node) {
        if (auto st = tls::client::check(cfg.node->tls); !st) {
            return error{fmt::format("[node]: {}", st.message())};
        }
    }
    if (cfg.verifier) {
        const verifier_settings& v = *cfg.verifier;
        if (!exists(v.registrar)) {
            return error{fmt::format("verifier.registrar {}: no such file (enrol the signers with ptpsecctl "
                                     "registrar enrol first)",
                                     v.registrar)};
        }
        for (const std::string* f : {&v.ek_ca, &v.ek_crl}) {
            if (!f->empty() && !exists(*f)) {
                return error{fmt::format("verifier.{} {}: no such file", f == &v.ek_ca ? "ek-ca" : "ek-crl", *f)};
            }
        }
    }
    return ok_status();
}

int serve(const config& cfg, const std::string& config_file) {
    daemon_view view;
    view.cfg = &cfg;
    std::error_code ec;
    view.config_file = std::filesystem::absolute(config_file, ec).string();
    view.started_ns = monotonic_now();
    // First, so that a second daemon on the same admin socket is refused
    // before it touches the state file or the port.
    bool admin_failed = false;
    std::unique_ptr<admin::server> adm = open_admin(cfg.admin, admin_failed);
    if (admin_failed) {
        return exit_error;
    }
    std::mutex ke_mutex;
    std::shared_ptr<ke::sqlite_store> store;
    std::unique_ptr<ke::key_schedule> keys;
    std::unique_ptr<ke::grantor_registry> grantors;
    std::unique_ptr<ke::ke_service> ke;
    std::optional<tls::server> srv;
    if (cfg.server) {
        const server_settings& s = *cfg.server;
        auto st = ke::sqlite_store::open(s.state_file);
        if (!st) {
            fmt::print(stderr, "ptpsec-controld: {}\n", st.message());
            return exit_error;
        }
        store = std::move(st).value();
        auto ks = ke::key_schedule::create(cfg.groups, store);
        if (!ks) {
            fmt::print(stderr, "ptpsec-controld: {}\n", ks.message());
            return exit_error;
        }
        keys = std::move(ks).value();
        if (cfg.unicast && cfg.unicast->enabled) {
            auto reg = ke::grantor_registry::create(*cfg.unicast, *keys, store);
            if (!reg) {
                fmt::print(stderr, "ptpsec-controld: {}\n", reg.message());
                return exit_error;
            }
            grantors = std::move(reg).value();
        }
        ke = std::make_unique<ke::ke_service>(*keys, cfg.clients, grantors.get());
        if (!s.registrar.empty()) {
            // Read on the server's thread only, under ke_mutex; enrolments and
            // revocations made meanwhile count from the next request.
            auto reg = verifier::registrar::open(s.registrar);
            if (!reg) {
                fmt::print(stderr, "ptpsec-controld: server.registrar: {}\n", reg.message());
                return exit_error;
            }
            ke->set_platform_check([r = std::shared_ptr<verifier::registrar>(std::move(reg).value())](
                                       const nts::platform_attestation& a, std::span<const uint8_t> binding) {
                return r->check_platform(a.signer_id, a.attest, a.signature, binding);
            });
        }
        tls::server_config tc = s.tls;
        tc.on_reload = [](const status& r) {
            if (r) {
                fmt::print("ptpsec-controld: certificates reloaded\n");
            } else {
                fmt::print(stderr, "ptpsec-controld: reload failed, the previous certificates stay: {}\n", r.message());
            }
            std::fflush(stdout);
        };
        tc.on_refused = [](const tls::handshake_refusal& r) {
            std::string line = "ptpsec-controld: TLS handshake with " + tls::to_string(r);
            if (r.unreported != 0) {
                line += fmt::format("; {} more failed since the last report, not shown", r.unreported);
            }
            fmt::print(stderr, "{}\n", line);
        };
        ke::ke_service* service = ke.get();
        auto created = tls::server::create(
            tc, [service, &ke_mutex](const tls::peer& from, std::span<const uint8_t> msg) -> tls::response {
                const ke::client_identity who = identity_of(from);
                const std::lock_guard lock(ke_mutex);
                const uint64_t unattested = service->stats().refused_unattested;
                tls::response reply;
                ke::answer a = from.alpn == tls::protocol::ntske ? service->handle_key_request(who, msg)
                                                                 : service->handle_tsr(who, msg);
                reply = tls::response(std::move(a.message), a.close);
                // A refusal for want of a Platform Attestation, in either
                // protocol (a key request, a grantor's registration).
                if (service->stats().refused_unattested != unattested) {
                    fmt::print(stderr, "ptpsec-controld: keys withheld from {}\n", service->last_attestation_refusal());
                }
                return reply;
            });
        if (!created) {
            fmt::print(stderr, "ptpsec-controld: {}\n", created.message());
            return exit_error;
        }
        srv.emplace(std::move(created).value());
        running = &*srv;
        fmt::print("ptpsec-controld: NTS-KE server on port {} for {} group(s):", srv->port(), cfg.groups.size());
        for (const auto& g : cfg.groups) {
            fmt::print(" {} ({}, SPP {}, {})", g.name, ke::to_string(g.id), keys->spp_of(g.name),
                       icv::info(g.alg).name);
        }
        if (grantors) {
            fmt::print("; ticket-based mode on (unicast SPP {}, {} grantor(s) registered)", grantors->spp(),
                       grantors->grantors().size());
        }
        fmt::print("; state in {}\n", s.state_file);
        view.ke_mutex = &ke_mutex;
        view.keys = keys.get();
        view.ke = ke.get();
        view.grantors = grantors.get();
        view.tls = &*srv;
        view.port = srv->port();
    }
    std::unique_ptr<verifier::registrar> registrar;
    std::unique_ptr<verifier::audit_store> audit;
    std::optional<verifier::nonce_book> nonces;
    std::optional<controld::challenger> challenges;
    std::optional<verifier::watcher> watcher;
    verifier_board verifier_totals;
    if (cfg.verifier) {
        auto reg = verifier::registrar::open(cfg.verifier->registrar);
        if (!reg) {
            fmt::print(stderr, "ptpsec-controld: [verifier] registrar: {}\n", reg.message());
            return exit_error;
        }
        registrar = std::move(reg).value();
        auto opened = verifier::audit_store::open(cfg.verifier->audit);
        if (!opened) {
            fmt::print(stderr, "ptpsec-controld: [verifier] audit: {}\n", opened.message());
            return exit_error;
        }
        audit = std::move(opened).value();
        verifier::verifier_options options;
        if (!cfg.verifier->challenge.empty()) {
            nonces.emplace(std::chrono::seconds(cfg.verifier->nonce_ttl_s));
            challenges.emplace(cfg.verifier->challenge, cfg.verifier->challenge_signers,
                               std::chrono::seconds(cfg.verifier->nonce_interval_s), *nonces);
            options.challenges = &*nonces;
        }
        watcher.emplace(*registrar, *audit, verifier::watch_settings{cfg.verifier->logs, cfg.verifier->log_name},
                        options);
        view.verifier = &verifier_totals;
        fmt::print("ptpsec-controld: verifier of the evidence logs in {}, every {} ms, registrar {}, audit {}\n",
                   fmt::join(cfg.verifier->logs, ", "), cfg.verifier->poll_ms, cfg.verifier->registrar,
                   cfg.verifier->audit);
        if (!cfg.verifier->ek_crl.empty()) {
            fmt::print("ptpsec-controld: verifier checks the TPM signers' EK certificates against {} (issuers {}) "
                       "every {} s\n",
                       cfg.verifier->ek_crl, cfg.verifier->ek_ca, cfg.verifier->ek_check_interval_s);
        }
        if (challenges) {
            fmt::print("ptpsec-controld: verifier nonces to the data planes {} every {} s, valid {} s\n",
                       fmt::join(cfg.verifier->challenge, ", "), cfg.verifier->nonce_interval_s,
                       cfg.verifier->nonce_ttl_s);
        }
    }
    std::signal(SIGINT, on_stop);
    std::signal(SIGTERM, on_stop);
    std::signal(SIGHUP, on_hup);
    std::optional<node::node> nd;
    node_board board;
    if (cfg.node) {
        node::settings ns = *cfg.node;
        if (cfg.node_attestation) {
            ns.attestation = tpm_attestation(*cfg.node_attestation);
        }
        nd.emplace(std::move(ns));
        board.publish(*nd, monotonic_now());
        view.node = &board;
        fmt::print("ptpsec-controld: node of {} group(s), keys from {}:{}, into the data plane of file prefix {}\n",
                   cfg.node->groups.size(), cfg.node->server_host, cfg.node->server_port, cfg.node->dataplane_prefix);
    }
    if (adm) {
        view.admin = adm.get();
        adm->start([&view](const std::string& command, const nlohmann::json& request) {
            return answer(view, command, request);
        });
        fmt::print("ptpsec-controld: admin socket {} (ptpsecctl status, ptpsecctl groups)\n", adm->path());
    }
    std::fflush(stdout);
    status server_status = ok_status();
    std::thread verifier_thread;
    if (watcher && (srv || nd)) {
        verifier_thread = std::thread([&] {
            run_verifier(*watcher, *registrar, challenges ? &*challenges : nullptr, *cfg.verifier, verifier_totals);
        });
        name_thread(verifier_thread, "ctld-verifier");
    }
    if (watcher && !srv && !nd) {
        run_verifier(*watcher, *registrar, challenges ? &*challenges : nullptr, *cfg.verifier, verifier_totals);
    } else if (srv && nd) {
        std::thread t([&] { server_status = srv->run(); });
        name_thread(t, "ctld-ke-server");
        run_node(*nd, board);
        srv->stop();
        t.join();
    } else if (srv) {
        server_status = srv->run();
    } else {
        run_node(*nd, board);
    }
    stop_requested.store(true, std::memory_order_relaxed);
    if (verifier_thread.joinable()) {
        verifier_thread.join();
    }
    running = nullptr;
    adm.reset();
    if (srv) {
        keys->expire();
        print_stats(*ke, grantors.get(), *srv, "at exit");
    }
    if (nd) {
        print_node(*nd, "at exit");
    }
    if (watcher) {
        verifier_totals.print("at exit");
    }
    if (!server_status) {
        fmt::print(stderr, "ptpsec-controld: {}\n", server_status.message());
        return exit_error;
    }
    return exit_ok;
}

int run(int argc, char** argv) {
    CLI::App cli{"ptpsec-controld: the NTS4PTP key server (NTS-KE and NTS-TSR) and node"};
    cli.set_version_flag("--version", std::string("ptpsec-controld ") + PTPSEC_VERSION);
    std::string config_file;
    bool check = false;
    cli.add_option("--config", config_file, "configuration file (TOML; see docs/operations.md)")->required();
    cli.add_flag("--check", check, "read the configuration, say what is wrong or that it is fine, and exit");
    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return cli.exit(e) == 0 ? exit_ok : exit_error;
    }
    auto cfg = load_config(config_file);
    if (!cfg) {
        fmt::print(stderr, "ptpsec-controld: {}\n", cfg.message());
        return exit_error;
    }
    if (auto st = preflight(*cfg); !st) {
        fmt::print(stderr, "ptpsec-controld: {}: {}\n", config_file, st.message());
        return exit_error;
    }
    // Refused by --check as by the start.
    if (!cfg->server && !cfg->node && !cfg->verifier) {
        fmt::print(stderr, "ptpsec-controld: {}: neither [server], [node] nor [verifier]: nothing to run\n",
                   config_file);
        return exit_error;
    }
    if (check) {
        fmt::print("{}: {} group(s), {} client rule(s), server role {}, ticket-based mode {}, node role {}, verifier "
                   "role {}, admin socket {}\n",
                   config_file, cfg->groups.size(), cfg->clients.size(), cfg->server ? "on" : "off",
                   cfg->unicast && cfg->unicast->enabled ? "on" : "off", cfg->node ? "on" : "off",
                   cfg->verifier ? "on" : "off", cfg->admin.enabled ? cfg->admin.socket : "off");
        return exit_ok;
    }
    return serve(*cfg, config_file);
}

} // namespace
} // namespace ptpsec::controld

int main(int argc, char** argv) {
    try {
        return ptpsec::controld::run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ptpsec-controld: %s\n", e.what());
        return 2;
    }
}
