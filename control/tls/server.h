#pragma once

// The TLS transport of the NTS-KE / NTS-TSR server (seeds/001 §2.1, §2.2,
// §2.5.4): TLS 1.3 connections with a verified client certificate, framed
// into NTS messages and handed to one handler; what the messages mean is
// the business of the layer above.
//
// Event model. One thread runs run() (or poll_once()): an epoll loop over
// non-blocking sockets, the listening sockets, and an eventfd that stop()
// and request_reload() write to. Each connection is a state machine,
//
//   handshake -> reading <-> writing -> closing -> draining -> closed
//
// driven by non-blocking SSL_* calls: SSL_ERROR_WANT_READ / WANT_WRITE set
// the connection's epoll interest (EPOLLIN or EPOLLOUT, level-triggered) and
// the loop comes back when the socket is ready. After a write completes the
// connection reads again at once, because OpenSSL may already hold decrypted
// octets that epoll cannot see. Each state has a deadline on the monotonic
// clock (std::chrono::steady_clock, CLOCK_MONOTONIC); deadlines sit in a
// min-heap (stale entries are skipped when they surface) and epoll_wait
// sleeps until the earliest one. The handler runs on the loop thread between
// reading a request and writing its response: it must be quick (it computes
// keys; it does not block on I/O).
//
// Framing (framing.h): records are read until a top-level End of Message;
// the header walk alone decides, no record is decoded. The complete message
// goes to the handler with the peer (ALPN, certificate subject, SANs,
// SHA-256 fingerprint, remote address); the response is written; the
// connection then waits for the next request (§2.1: the session stays open
// until a short timeout or the client's close_notify), and is ended with a
// close_notify of ours, a half-close of the socket and a short drain, so the
// last response is not destroyed by a TCP reset. Octets after a message are
// kept as the start of the next one (requests may be pipelined).
//
// Limits, each with a counter in server_stats, and what each protects:
//   - handshake_timeout, from accept() to a finished handshake, not
//     extended by arriving octets: a client that trickles its ClientHello
//     (slowloris) is dropped at the deadline.
//   - idle_timeout, from the end of the handshake or of the last response to
//     the last octet of the next request, not extended by arriving octets:
//     a client cannot hold a connection by sending a request slowly, or by
//     sending nothing (this is also the §2.1 session timeout). The same span
//     bounds writing a response to a client that does not read, and
//     close_timeout bounds sending close_notify and draining after it
//     (write_timeouts).
//   - max_connections: file descriptors and memory are bounded. The
//     connection over the cap is accepted and closed at once, before any
//     TLS (over_cap): the client sees the connection end and retries later,
//     while the listen backlog is never clogged with connections the server
//     will not serve, and the connections already open are unaffected.
//   - rate (rate_limiter.h): new connections per source address; over it the
//     connection is closed at once, before any TLS (rate_limited): a single
//     client cannot use the cap up or spend the server's CPU on handshakes.
//   - max_message_size: a request longer than this is refused as soon as a
//     record header shows it, before its body arrives (oversize_messages),
//     so a connection holds at most this much input.
//   - max_requests_per_connection: the response to the last allowed request
//     is followed by close_notify (request_cap_closes), so one connection
//     cannot stay forever by keeping busy.
// A refused or failed connection is counted, never logged: a flood must not
// fill a disk.
//
// Certificates and keys: reload() reads the certificate, key and CA files
// into a new SSL_CTX for the connections accepted from then on; connections
// already open keep the context they started with. A file that fails to
// load keeps the old context and the error names the file and the OpenSSL
// reason. request_reload() is safe in a signal handler (the daemon owns
// signal setup and calls it on SIGHUP); with watch_interval set, the loop
// also reloads when a file's mtime, size or inode changes.
//
// Threads: everything but stop(), request_reload(), stats(),
// last_reload_error() and last_refusal() is for the loop thread (or any one thread while the
// loop is not running). No exception leaves the API; a handler that throws
// has its connection closed (handler_errors).

#include <control/tls/peer.h>
#include <control/tls/rate_limiter.h>
#include <drivers/base/result.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::tls {

/// The NTS TCP port (seeds/001 §2.1).
inline constexpr uint16_t nts_ke_port = 4460;

/// The longest session_lifetime (seeds/001 §2.1: "max. 24 hrs").
inline constexpr std::chrono::seconds max_session_lifetime{24 * 60 * 60};

/// Sessions the server keeps for resumption (one per client that took a
/// ticket, a few KiB each). When it is full, the session that would end
/// first goes; its client's next connection is a full handshake.
inline constexpr long max_cached_sessions = 20480;

/// A handshake the server refused, for the daemon's log.
struct handshake_refusal {
    std::string address; ///< the client's (IPv4-mapped IPv6 shown as IPv4)
    uint16_t port = 0;
    /// The counter it went into, as server_counters() names it
    /// ("client_cert_revoked", "no_client_cert", "alpn_refused", ...).
    std::string_view counter;
    /// OpenSSL's reason: "certificate verify failed: certificate revoked".
    std::string reason;
    /// The subject a client certificate that failed verification claims
    /// (RFC 2253, control characters escaped): unverified, the client's
    /// word only. Empty when no certificate failed verification.
    std::string subject;
    /// Refusals since the previous report that were over the report rate
    /// and not reported (they are counted all the same).
    uint64_t unreported = 0;
};

/// "192.0.2.31 port 40712 failed (client_cert_revoked): certificate verify
/// failed: certificate revoked; certificate subject "CN=node-7" (unverified)";
/// `unreported` is left to the caller.
std::string to_string(const handshake_refusal& r);

struct server_config {
    /// Numeric addresses to listen on, each on its own socket with the same
    /// port. Empty: one dual-stack socket on "::" (IPv4 clients appear as
    /// IPv4), or "0.0.0.0" on a host without IPv6. A listed "::" is
    /// IPv6-only, so it can be combined with "0.0.0.0".
    std::vector<std::string> listen_addresses;
    /// 0: an ephemeral port; server::port() tells which.
    uint16_t port = nts_ke_port;
    int listen_backlog = 128;

    /// Server certificate (PEM), then any intermediates: exactly what is
    /// sent (no chain is built from ca_file).
    std::string cert_file;
    std::string key_file; ///< its private key (PEM)
    std::string ca_file;  ///< CA(s) client certificates must chain to (PEM)
    /// CRLs (PEM) of the CAs in ca_file that issue client certificates;
    /// empty: none checked. Given, a client certificate on its CA's CRL is
    /// refused, and so is one whose CA has no CRL in the file or one past
    /// its nextUpdate (refresh the file before then: it is watched and
    /// reloaded like the certificates).
    std::string crl_file;

    std::chrono::milliseconds handshake_timeout{5000};
    std::chrono::milliseconds idle_timeout{10000};
    /// Sending close_notify and draining the socket after it.
    std::chrono::milliseconds close_timeout{1000};
    size_t max_connections = 256;
    tls::rate_limit rate{};
    /// Octets of one request, End of Message included.
    size_t max_message_size = size_t{64} * 1024;
    uint32_t max_requests_per_connection = 64;
    /// TLS session resumption (seeds/001 §2.1): how long a session ticket
    /// lets a client skip the certificate exchange. 0 (the default): no
    /// tickets, every connection a full handshake. At most 24 hours (§2.1).
    /// The server keeps the sessions (at most max_cached_sessions); a
    /// session ends this long after its full handshake, or earlier when the
    /// client's certificate does, and a reload ends every session.
    std::chrono::seconds session_lifetime{0};
    /// Poll the files (the CRL file too) this often and reload when one changed; 0: only
    /// reload() and request_reload().
    std::chrono::milliseconds watch_interval{0};
    /// Called on the loop thread after each reload, with its outcome (for
    /// the daemon's log).
    std::function<void(const status&)> on_reload;
    /// Called on the loop thread for each refused handshake (every class of
    /// handshakes_failed but handshake_other, which port probes and
    /// connections closed mid-handshake make), for the daemon's log: at most
    /// refusal_reports_per_second calls a second, so that a hostile client
    /// cannot flood the log; the rest go into the next call's `unreported`.
    std::function<void(const handshake_refusal&)> on_refused;
    uint32_t refusal_reports_per_second = 10;
};

/// Counters since create(); monotonic except active_connections.
struct server_stats {
    uint64_t accepted = 0;      ///< TCP connections accepted, refused ones included
    uint64_t rate_limited = 0;  ///< closed before TLS: source over its rate
    uint64_t over_cap = 0;      ///< closed before TLS: max_connections reached
    uint64_t accept_errors = 0; ///< accept() failed (EMFILE, ...): accepting pauses 100 ms

    uint64_t handshakes_ok = 0;
    uint64_t resumed = 0; ///< of handshakes_ok, those that resumed a session
    /// Failed handshakes, the sum of the classes below (timeouts are not in it).
    uint64_t handshakes_failed = 0;
    uint64_t protocol_refused = 0;     ///< the client offered no TLS 1.3
    uint64_t alpn_refused = 0;         ///< no ALPN, or neither ntske/1 nor ntstsr/1
    uint64_t no_client_cert = 0;       ///< the client sent no certificate
    uint64_t client_cert_expired = 0;  ///< expired or not yet valid: a clock problem on one side? (§2.5.4)
    uint64_t client_cert_revoked = 0;  ///< on its CA's CRL (crl_file)
    uint64_t client_cert_rejected = 0; ///< any other verification failure (unknown CA, bad signature)
    uint64_t peer_alerts = 0;          ///< the client aborted with an alert (it refused our certificate)
    uint64_t handshake_other = 0;      ///< closed mid-handshake, not TLS, internal errors

    uint64_t handshake_timeouts = 0;
    uint64_t idle_timeouts = 0;  ///< no complete request within idle_timeout
    uint64_t write_timeouts = 0; ///< a response or close_notify not taken within its time

    uint64_t oversize_messages = 0;  ///< over max_message_size; connection closed
    uint64_t malformed_messages = 0; ///< End of Message with a body; connection closed
    uint64_t requests = 0;           ///< complete messages handed to the handler
    uint64_t responses = 0;          ///< responses written in full
    uint64_t handler_errors = 0;     ///< the handler threw; connection closed
    uint64_t handler_closes = 0;     ///< closed after a response, as the handler asked
    uint64_t request_cap_closes = 0; ///< closed after max_requests_per_connection

    uint64_t closed_by_peer = 0;  ///< the client sent close_notify
    uint64_t aborted_by_peer = 0; ///< the connection ended without close_notify after the handshake

    uint64_t reloads_ok = 0;
    uint64_t reloads_failed = 0;

    uint64_t active_connections = 0; ///< open now, in any state
};

/// A counter of server_stats and its name (as `ptpsecctl status` shows it).
struct server_counter {
    std::string_view name;
    uint64_t server_stats::*field;
};

/// Every counter of server_stats, active_connections last.
std::span<const server_counter> server_counters() noexcept;

/// What the handler returns. Built implicitly from the response octets, so
/// a handler may return std::vector<uint8_t>.
struct response {
    std::vector<uint8_t> message; ///< one NTS message; empty: nothing is sent
    bool close_after = false;     ///< close_notify after sending it (e.g. after an Error record)

    response() = default;
    response(std::vector<uint8_t> m, bool close = false) : message(std::move(m)), close_after(close) {}
};

/// Called on the loop thread with each complete request (End of Message
/// included). `message` is valid until the handler returns.
using handler = std::function<response(const peer& from, std::span<const uint8_t> message)>;

class server {
public:
    /// Loads the files, opens the listening sockets and the loop's epoll;
    /// nothing runs until run() or poll_once().
    static result<server> create(server_config config, handler on_message);
    /// What create() would refuse in `config` without binding a port: the
    /// certificate, key, CA and CRL files read as create() reads them, and
    /// each listen address parsed (`ptpsec-controld --check`).
    static status check(const server_config& config);

    server(server&&) noexcept;
    server& operator=(server&&) noexcept;
    server(const server&) = delete;
    server& operator=(const server&) = delete;
    /// Closes every connection and socket (without close_notify).
    ~server();

    /// The bound port (the ephemeral one when configured with 0).
    uint16_t port() const noexcept;

    /// Serves until stop(); an error if the loop itself fails (epoll).
    status run();
    /// One loop iteration: waits up to `max_wait` for events, then serves
    /// them and the deadlines that are due.
    status poll_once(std::chrono::milliseconds max_wait);

    /// Makes run() return soon. Thread-safe and async-signal-safe; a stop
    /// requested before run() makes the next run() return at once.
    void stop() noexcept;
    /// Asks the loop to reload(). Thread-safe and async-signal-safe.
    void request_reload() noexcept;
    /// Reads the files into a new context for new connections; on
    /// error keeps the current one. Loop thread only.
    status reload();

    /// A snapshot; any thread.
    server_stats stats() const noexcept;
    /// Empty after a successful reload; otherwise why the last one failed.
    /// Any thread.
    std::string last_reload_error() const;
    /// The last refused handshake within the report rate (what on_refused
    /// was, or would have been, called with); none before the first. Any
    /// thread.
    std::optional<handshake_refusal> last_refusal() const;

private:
    struct impl;
    explicit server(std::unique_ptr<impl> p) noexcept;
    std::unique_ptr<impl> _impl;
};

} // namespace ptpsec::tls
