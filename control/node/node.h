#pragma once

// The node role of ptpsec-controld (seeds/001 §2.3, §2.5.1): ask the KE
// server for the keys of this node's groups and keep the local data plane
// supplied through the SA channel (dataplane/sa_channel.h).
//
// For each group:
//   * fetch: a PTP Key Request over TLS; the response's Current Parameters
//     (and Next, in the update period) are remembered with their deadlines
//     on CLOCK_MONOTONIC;
//   * push: add_key for each key the data plane does not hold yet, with a
//     lifetime of its remaining validity plus the grace period (so that a
//     data plane whose node has gone stops using it then: fail closed),
//     set_ticket for a unicast key's ticket, and set_current for the key
//     whose validity period holds now;
//   * renew at a random point of the update period (§2.5.1: clients spread
//     their requests), or at once when the data plane has no key; with a
//     refresh interval, also every half to whole interval, so that an early
//     rotation ordered at the server (`ptpsecctl rotate`) reaches the node
//     without an operator at the node; refresh() fetches at once;
//   * remove a key from the data plane at the end of its grace period as
//     the node knows it (a rotation may have moved it earlier than the
//     lifetime the data plane was given);
//   * on failure retry after a delay that doubles from retry_min up to
//     retry_max, with jitter (half to all of it), so that a fleet whose
//     server was down does not come back all at once.
// A data plane that restarts makes a new SA segment; the node sees the new
// segment and pushes everything again. A node that restarts fetches again;
// meanwhile the data plane keeps the keys it holds until they expire.
//
// With `grantor` set the node is also a grantor of ticket-based mode
// (grantor.h): it registers with the KE server, and serves the data plane's
// exception channel (dataplane/exception_channel.h, --tickets): each unicast
// request handed over has its ticket opened; the unicast SA it carries is
// installed (add_key, acknowledged) with a lifetime up to the ticket key's
// grace period end, then the frame goes back to the data plane to be
// verified and delivered. A request whose ticket does not open, or that was
// seen before, is dropped and counted.

#include <control/ke/group_keys.h>
#include <control/node/grantor.h>
#include <control/tls/client.h>
#include <dataplane/exception_channel.h>
#include <drivers/base/result.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace ptpsec::node {

/// Ticket-based mode as a requester: a unicast key and ticket for one grantor.
struct unicast_target {
    nts::association_value grantor; ///< its IPv4, IPv6, MAC address or PortIdentity
    nts::port_identity me;          ///< this requester's PortIdentity: the ticket is issued to it
    /// Descending priority; nullopt: the server picks HMAC-SHA256-128.
    std::optional<std::vector<nts::mac_algorithm>> mac_algorithms;
};

struct node_group {
    std::string name; ///< for messages
    ke::group_id id;
    /// Set: not a group but a unicast association (PTP Key Request naming a grantor).
    std::optional<unicast_target> unicast;
};

/// The node proves its platform state to the KE server (BRIEF "Attestation",
/// seeds/004): every PTP Key Request (and, as a grantor, every PTP
/// Registration Request) carries a Platform Attestation record, a TPM quote
/// whose qualifyingData is the TLS session's exporter value
/// (tls::peer::session_binding), made once per session.
struct attestation_settings {
    std::string signer_id; ///< as enrolled in the Registrar
    /// Quotes the enrolled PCR profile with `session_binding` as
    /// qualifyingData, signed by the signer's TPM key.
    std::function<result<nts::platform_attestation>(std::span<const uint8_t> session_binding)> quote;
};

struct settings {
    std::string server_host;
    uint16_t server_port = 4460;
    tls::client_config tls; ///< ALPN is set to ntske/1
    std::vector<node_group> groups;
    /// EAL file prefix of the local data plane ("rte" by default).
    std::string dataplane_prefix = "rte";
    std::chrono::milliseconds retry_min{1000};
    std::chrono::milliseconds retry_max{300'000};
    /// How long an SA update may wait for its acknowledgement.
    std::chrono::milliseconds push_wait{2000};
    /// Ask the server again at least this often (at a random point of the
    /// second half of the interval); 0: only in the update period.
    std::chrono::seconds refresh_interval{0};
    /// Ticket-based mode: this node is a grantor.
    std::optional<grantor_settings> grantor;
    /// Set: each PTP Key Request carries a Platform Attestation, and so does
    /// the grantor's Registration Request (unless grantor->quote is set).
    std::optional<attestation_settings> attestation;
};

/// One key as the node holds it.
struct held_key {
    uint8_t spp = 0;
    uint32_t key_id = 0;
    icv::algorithm alg = icv::algorithm::hmac_sha256_128;
    std::vector<uint8_t> key;
    int64_t start_ns = 0;  ///< CLOCK_MONOTONIC: when it becomes current
    int64_t end_ns = 0;    ///< end of its validity
    int64_t retire_ns = 0; ///< end of its grace period
    uint32_t update_period_s = 0;
    /// Unicast keys: the TICKET TLV value the data plane sends with the requests.
    std::vector<uint8_t> ticket;
};

struct group_state {
    std::vector<held_key> keys; ///< in start order
    int64_t next_fetch_ns = 0;
    std::chrono::milliseconds backoff{0};
    /// Pushed to the data plane whose segment is `pushed_segment`.
    std::vector<uint32_t> pushed_keys;
    uint32_t pushed_current = 0;
    bool has_pushed_current = false;
    std::string last_error;
};

struct counters {
    uint64_t fetches = 0;
    uint64_t fetch_failures = 0;
    uint64_t keys_received = 0;
    uint64_t updates_pushed = 0;
    uint64_t updates_rejected = 0;
    uint64_t push_failures = 0; ///< no data plane answered
    uint64_t dataplane_restarts = 0;
    uint64_t refreshes = 0;        ///< fetches asked for by refresh()
    uint64_t keys_removed = 0;     ///< keys taken out of the data plane at the end of their grace period
    uint64_t quotes = 0;           ///< Platform Attestations made (one per TLS session)
    uint64_t sessions = 0;         ///< TLS sessions with the KE server (one per step that fetches)
    uint64_t sessions_resumed = 0; ///< of those, resumed from the previous one's ticket (seeds/001 §2.1)
};

/// The exception channel's side of the grantor.
struct ticket_counters {
    uint64_t requests = 0;  ///< handed over by the data plane
    uint64_t installed = 0; ///< SA installed and the frame sent back
    uint64_t refused = 0;   ///< ticket did not open, wrong requester, replay
    uint64_t failed = 0;    ///< SA not installed or reinject ring full
};

class node {
public:
    explicit node(settings s, uint64_t seed = std::random_device{}());

    /// Does what is due at `now_ns` (CLOCK_MONOTONIC): fetches, pushes.
    /// Returns when it next has something to do.
    int64_t step(int64_t now_ns);

    /// Makes the group named `name` (every group and unicast association
    /// when empty) fetch at the next step, whatever its schedule or backoff.
    /// Returns how many it matched.
    size_t refresh(const std::string& name);

    const std::vector<group_state>& groups() const noexcept { return _groups; }
    const counters& stats() const noexcept { return _stats; }
    const settings& config() const noexcept { return _s; }
    /// Null unless `grantor` is configured.
    const class grantor* grantor_role() const noexcept { return _grantor ? &*_grantor : nullptr; }
    const ticket_counters& ticket_stats() const noexcept { return _tickets; }
    const std::string& last_ticket_error() const noexcept { return _last_ticket_error; }

private:
    status fetch(size_t g, int64_t now);
    /// Closes the KE server session of this step, keeping its ticket.
    void end_session();
    void push(int64_t now);
    void schedule_renewal(size_t g, int64_t now);
    void fail(size_t g, int64_t now, std::string why);
    void serve_tickets(int64_t now);

    /// A key pushed to the data plane whose grace period has ended here.
    struct removal {
        size_t group;
        uint8_t spp;
        uint32_t key_id;
    };
    std::vector<removal> _removals;

    settings _s;
    std::vector<group_state> _groups;
    counters _stats;
    std::mt19937_64 _rng;
    std::optional<tls::client> _client;
    /// The KE server's ticket from the last session, offered on the next.
    tls::session_ticket _ticket;
    /// The Platform Attestation made for _client's session.
    std::optional<nts::platform_attestation> _attestation;
    /// Identity of the data plane's SA segment (device and inode): a new one
    /// means the data plane restarted and holds nothing of ours.
    std::string _segment;
    std::optional<class grantor> _grantor;
    std::optional<exception_channel> _exceptions;
    ticket_counters _tickets;
    std::string _last_ticket_error;
};

} // namespace ptpsec::node
