#include <control/tls/server.h>

#include <control/tls/file_signature.h>
#include <control/tls/framing.h>
#include <control/tls/openssl_support.h>

#include <fmt/format.h>

#include <openssl/err.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <utility>

namespace ptpsec::tls {

namespace {

using namespace std::chrono_literals;
using clock = std::chrono::steady_clock; // CLOCK_MONOTONIC on Linux
using time_point = clock::time_point;
using detail::unique_fd;

// epoll tokens: the eventfd, the listeners, then connection ids (never reused).
constexpr uint64_t wake_token = 0;
constexpr uint64_t first_listener_token = 1;
constexpr uint64_t first_connection_id = uint64_t{1} << 16;

constexpr int max_events = 64;
/// Accepts per listener wake-up: a connect flood cannot starve the
/// connections being served.
constexpr int accepts_per_wake = 64;
constexpr size_t read_chunk = size_t{16} * 1024;
/// Octets drained per wake-up after close_notify.
constexpr size_t drain_per_wake = size_t{64} * 1024;
/// How long accepting pauses when accept() runs out of descriptors or memory.
constexpr auto accept_pause = 100ms;

enum class counter : uint8_t {
    accepted,
    rate_limited,
    over_cap,
    accept_errors,
    handshakes_ok,
    resumed,
    handshakes_failed,
    protocol_refused,
    alpn_refused,
    no_client_cert,
    client_cert_expired,
    client_cert_revoked,
    client_cert_rejected,
    peer_alerts,
    handshake_other,
    handshake_timeouts,
    idle_timeouts,
    write_timeouts,
    oversize_messages,
    malformed_messages,
    requests,
    responses,
    handler_errors,
    handler_closes,
    request_cap_closes,
    closed_by_peer,
    aborted_by_peer,
    reloads_ok,
    reloads_failed,
    count_,
};

/// The name and server_stats field of each counter, in enum order, then
/// active_connections (a gauge, not counted).
constexpr std::array<server_counter, static_cast<size_t>(counter::count_) + 1> counter_table = {{
    {"accepted", &server_stats::accepted},
    {"rate_limited", &server_stats::rate_limited},
    {"over_cap", &server_stats::over_cap},
    {"accept_errors", &server_stats::accept_errors},
    {"handshakes_ok", &server_stats::handshakes_ok},
    {"resumed", &server_stats::resumed},
    {"handshakes_failed", &server_stats::handshakes_failed},
    {"protocol_refused", &server_stats::protocol_refused},
    {"alpn_refused", &server_stats::alpn_refused},
    {"no_client_cert", &server_stats::no_client_cert},
    {"client_cert_expired", &server_stats::client_cert_expired},
    {"client_cert_revoked", &server_stats::client_cert_revoked},
    {"client_cert_rejected", &server_stats::client_cert_rejected},
    {"peer_alerts", &server_stats::peer_alerts},
    {"handshake_other", &server_stats::handshake_other},
    {"handshake_timeouts", &server_stats::handshake_timeouts},
    {"idle_timeouts", &server_stats::idle_timeouts},
    {"write_timeouts", &server_stats::write_timeouts},
    {"oversize_messages", &server_stats::oversize_messages},
    {"malformed_messages", &server_stats::malformed_messages},
    {"requests", &server_stats::requests},
    {"responses", &server_stats::responses},
    {"handler_errors", &server_stats::handler_errors},
    {"handler_closes", &server_stats::handler_closes},
    {"request_cap_closes", &server_stats::request_cap_closes},
    {"closed_by_peer", &server_stats::closed_by_peer},
    {"aborted_by_peer", &server_stats::aborted_by_peer},
    {"reloads_ok", &server_stats::reloads_ok},
    {"reloads_failed", &server_stats::reloads_failed},
    {"active_connections", &server_stats::active_connections},
}};
static_assert(sizeof(server_stats) == counter_table.size() * sizeof(uint64_t), "a new counter: name it here");

std::string_view counter_name(counter c) noexcept {
    return counter_table[static_cast<size_t>(c)].name;
}

counter failure_counter(detail::handshake_failure f) {
    switch (f) {
    case detail::handshake_failure::protocol_version:
        return counter::protocol_refused;
    case detail::handshake_failure::alpn:
        return counter::alpn_refused;
    case detail::handshake_failure::no_client_cert:
        return counter::no_client_cert;
    case detail::handshake_failure::cert_expired:
        return counter::client_cert_expired;
    case detail::handshake_failure::cert_revoked:
        return counter::client_cert_revoked;
    case detail::handshake_failure::cert_rejected:
        return counter::client_cert_rejected;
    case detail::handshake_failure::peer_alert:
        return counter::peer_alerts;
    case detail::handshake_failure::other:
        break;
    }
    return counter::handshake_other;
}

enum class conn_state : uint8_t {
    handshake, ///< TLS handshake running; handshake_timeout
    reading,   ///< waiting for a complete request; idle_timeout
    writing,   ///< writing a response; idle_timeout
    closing,   ///< sending close_notify; close_timeout
    draining,  ///< write side shut, reading until EOF; close_timeout
};

struct connection {
    explicit connection(size_t max_message) : framer(max_message) {}

    uint64_t id = 0;
    unique_fd fd;
    detail::ssl_ptr ssl;
    detail::handshake_notes notes; ///< the SSL's app data
    conn_state state = conn_state::handshake;
    time_point deadline{};
    uint32_t interest = 0; ///< the epoll events registered
    sockaddr_storage remote{};
    peer from;
    std::vector<uint8_t> in; ///< the request being read, and any octets after it
    message_framer framer;
    std::vector<uint8_t> out; ///< the response being written
    size_t out_sent = 0;
    bool close_after_write = false;
    uint32_t requests = 0;
    bool finished = false; ///< to be destroyed once the current event is handled
};

struct deadline_entry {
    time_point when;
    uint64_t id;
    bool operator>(const deadline_entry& o) const noexcept { return when > o.when; }
};

/// The certificate, key, CA and CRL files, in that order.
using file_signatures = std::array<detail::file_signature, 4>;

std::string errno_text(int e) {
    return std::strerror(e);
}

int ms_until(time_point now, time_point then) {
    if (then <= now) {
        return 0;
    }
    // Rounded up: waking a little early would only spin until the deadline.
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(then - now).count();
    return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

} // namespace

struct server::impl {
    impl(server_config c, handler h) : cfg(std::move(c)), on_message(std::move(h)), limiter(cfg.rate) {}

    server_config cfg;
    handler on_message;
    unique_fd epoll_fd;
    unique_fd wake_fd;
    std::vector<unique_fd> listeners;
    uint16_t bound_port = 0;
    detail::ssl_ctx_ptr ctx;

    std::unordered_map<uint64_t, std::unique_ptr<connection>> connections;
    uint64_t next_id = first_connection_id;
    std::priority_queue<deadline_entry, std::vector<deadline_entry>, std::greater<>> deadlines;
    rate_limiter limiter;

    file_signatures seen_files{};
    time_point next_watch{};
    bool accept_paused = false;
    time_point accept_resume{};

    // Set from signal handlers: lock-free atomics and write(2) are all a
    // handler may touch.
    static_assert(std::atomic<bool>::is_always_lock_free);
    std::atomic<bool> stop_requested{false};
    std::atomic<bool> reload_requested{false};
    std::array<std::atomic<uint64_t>, static_cast<size_t>(counter::count_)> counters{};
    std::atomic<uint64_t> active{0};
    mutable std::mutex status_mutex; ///< reload_error and last_refusal, read by any thread
    std::string reload_error;
    std::optional<handshake_refusal> last_refusal;

    std::vector<uint8_t> drain_buffer = std::vector<uint8_t>(read_chunk);

    // on_refused's rate: reports in the second that ends at refusal_window_end.
    time_point refusal_window_end{};
    uint32_t refusals_in_window = 0;
    uint64_t refusals_unreported = 0;

    // Single writer (the loop thread); relaxed is enough for a counter read
    // by others.
    void count(counter c) noexcept {
        auto& a = counters[static_cast<size_t>(c)];
        a.store(a.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    detail::credential_files files() const { return {cfg.cert_file, cfg.key_file, cfg.ca_file, cfg.crl_file}; }

    file_signatures current_files() const {
        using detail::signature_of;
        return {signature_of(cfg.cert_file), signature_of(cfg.key_file), signature_of(cfg.ca_file),
                signature_of(cfg.crl_file)};
    }

    status open(); // epoll, eventfd, listeners
    status open_listener(const std::string& address, bool dual_stack);
    status reload();
    status poll_once(std::chrono::milliseconds max_wait);

    void accept_from(int listener_fd);
    void set_listeners_interest(uint32_t events);
    void on_event(uint64_t id);
    void expire(time_point now);

    void advance(connection& c);
    void handshake(connection& c);
    void serve(connection& c);
    bool read_more(connection& c);
    bool flush_response(connection& c);
    void dispatch(connection& c);
    void begin_close(connection& c);
    void shutdown_step(connection& c);
    void begin_drain(connection& c);
    void drain(connection& c);
    void finish(connection& c) noexcept { c.finished = true; }
    void destroy(uint64_t id);

    void set_deadline(connection& c, std::chrono::milliseconds span);
    void want(connection& c, uint32_t events);
    /// For SSL_ERROR_* after a read, write or shutdown: sets the interest
    /// for WANT_READ / WANT_WRITE, ends the connection otherwise.
    void on_ssl_error(connection& c, int ret);
    /// Keeps a refused handshake as the last one and hands it to on_refused,
    /// within refusal_reports_per_second; counts the rest.
    void report_refusal(const connection& c, counter which, int ssl_error);
};

status server::impl::open() {
    epoll_fd.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_fd) {
        return error{"epoll_create1: " + errno_text(errno)};
    }
    wake_fd.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!wake_fd) {
        return error{"eventfd: " + errno_text(errno)};
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = wake_token;
    if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, wake_fd.get(), &ev) != 0) {
        return error{"epoll_ctl(eventfd): " + errno_text(errno)};
    }

    bound_port = cfg.port;
    if (cfg.listen_addresses.empty()) {
        // Dual-stack "::" unless the host has no IPv6 at all.
        if (unique_fd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0)); probe) {
            return open_listener("::", true);
        }
        return open_listener("0.0.0.0", false);
    }
    for (const auto& a : cfg.listen_addresses) {
        if (auto st = open_listener(a, false); !st) {
            return st;
        }
    }
    return ok_status();
}

namespace {

/// A numeric listen address and port as a socket address.
status listen_address(const std::string& address, uint16_t port, sockaddr_storage& ss, socklen_t& len) {
    ss = sockaddr_storage{};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        len = sizeof(sockaddr_in);
    } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        len = sizeof(sockaddr_in6);
    } else {
        return error{fmt::format("listen address '{}' is not a numeric IPv4 or IPv6 address", address)};
    }
    return ok_status();
}

} // namespace

status server::impl::open_listener(const std::string& address, bool dual_stack) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (auto st = listen_address(address, bound_port, ss, len); !st) {
        return st;
    }
    const std::string where = ss.ss_family == AF_INET6 ? fmt::format("[{}]:{}", address, bound_port)
                                                       : fmt::format("{}:{}", address, bound_port);
    unique_fd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        return error{fmt::format("listening on {}: socket: {}", where, errno_text(errno))};
    }
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6) {
        const int v6only = dual_stack ? 0 : 1;
        ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0) {
        return error{fmt::format("listening on {}: bind: {}", where, errno_text(errno))};
    }
    if (::listen(fd.get(), cfg.listen_backlog) != 0) {
        return error{fmt::format("listening on {}: listen: {}", where, errno_text(errno))};
    }
    if (bound_port == 0) {
        sockaddr_storage got{};
        socklen_t got_len = sizeof(got);
        if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&got), &got_len) != 0) {
            return error{fmt::format("listening on {}: getsockname: {}", where, errno_text(errno))};
        }
        std::string ignored;
        detail::split_address(got, ignored, bound_port);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = first_listener_token + listeners.size();
    if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
        return error{fmt::format("listening on {}: epoll_ctl: {}", where, errno_text(errno))};
    }
    listeners.push_back(std::move(fd));
    return ok_status();
}

status server::impl::reload() {
    // The signatures are taken before reading: a change during the read is
    // seen by the next watch.
    seen_files = current_files();
    auto fresh = detail::server_context(files(), cfg.session_lifetime);
    status outcome = ok_status();
    if (fresh) {
        ctx = std::move(fresh).value();
        count(counter::reloads_ok);
        const std::lock_guard lock(status_mutex);
        reload_error.clear();
    } else {
        count(counter::reloads_failed);
        outcome = error{"reload kept the previous certificates: " + fresh.message()};
        const std::lock_guard lock(status_mutex);
        reload_error = outcome.message();
    }
    if (cfg.on_reload) {
        try {
            cfg.on_reload(outcome);
        } catch (...) { // the daemon's logging must not stop the loop
        }
    }
    return outcome;
}

void server::impl::set_listeners_interest(uint32_t events) {
    for (size_t i = 0; i < listeners.size(); ++i) {
        epoll_event ev{};
        ev.events = events;
        ev.data.u64 = first_listener_token + i;
        ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_MOD, listeners[i].get(), &ev);
    }
}

void server::impl::accept_from(int listener_fd) {
    for (int i = 0; i < accepts_per_wake; ++i) {
        sockaddr_storage remote{};
        socklen_t len = sizeof(remote);
        unique_fd fd(::accept4(listener_fd, reinterpret_cast<sockaddr*>(&remote), &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            const int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK) {
                return;
            }
            if (e == EINTR || e == ECONNABORTED || e == EPROTO) {
                continue; // accept(2): the pending connection is gone; try the next
            }
            count(counter::accept_errors);
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                // The listener stays readable: without a pause the loop would spin.
                accept_paused = true;
                accept_resume = clock::now() + accept_pause;
                set_listeners_interest(0);
            }
            return;
        }
        count(counter::accepted);
        const time_point now = clock::now();
        // Both refusals come before any TLS work: they cost an accept and a close.
        if (!limiter.admit(remote, now)) {
            count(counter::rate_limited);
            continue;
        }
        if (connections.size() >= cfg.max_connections) {
            count(counter::over_cap);
            continue;
        }
        auto c = std::make_unique<connection>(cfg.max_message_size);
        c->id = next_id++;
        c->remote = remote;
        ERR_clear_error();
        c->ssl.reset(SSL_new(ctx.get()));
        if (!c->ssl || !detail::attach_socket(c->ssl.get(), fd.get())) {
            ERR_clear_error();
            count(counter::accept_errors);
            continue;
        }
        SSL_set_app_data(c->ssl.get(), &c->notes);
        SSL_set_accept_state(c->ssl.get());
        const int one = 1;
        // A response and the close_notify after it go out without Nagle's wait.
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = c->id;
        if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
            count(counter::accept_errors);
            continue;
        }
        c->interest = EPOLLIN;
        c->fd = std::move(fd);
        set_deadline(*c, cfg.handshake_timeout);
        connections.emplace(c->id, std::move(c));
        active.store(connections.size(), std::memory_order_relaxed);
    }
}

void server::impl::set_deadline(connection& c, std::chrono::milliseconds span) {
    c.deadline = clock::now() + span;
    deadlines.push({c.deadline, c.id});
}

void server::impl::want(connection& c, uint32_t events) {
    if (c.interest == events) {
        return;
    }
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = c.id;
    if (::epoll_ctl(epoll_fd.get(), EPOLL_CTL_MOD, c.fd.get(), &ev) != 0) {
        finish(c);
        return;
    }
    c.interest = events;
}

void server::impl::on_ssl_error(connection& c, int ret) {
    const int e = SSL_get_error(c.ssl.get(), ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
        want(c, EPOLLIN);
        return;
    case SSL_ERROR_WANT_WRITE:
        want(c, EPOLLOUT);
        return;
    default:
        break;
    }
    ERR_clear_error();
    if (c.state == conn_state::closing) {
        // Our close_notify could not be written: nothing more to say.
        finish(c);
        return;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
        // §2.1: the client's close_notify; ours follows.
        count(counter::closed_by_peer);
        begin_close(c);
        return;
    }
    // A fatal error or a bare EOF: no close_notify may follow (SSL_shutdown
    // must not be called after SSL_ERROR_SSL / SSL_ERROR_SYSCALL).
    count(counter::aborted_by_peer);
    finish(c);
}

void server::impl::advance(connection& c) {
    switch (c.state) {
    case conn_state::handshake:
        handshake(c);
        return;
    case conn_state::reading:
    case conn_state::writing:
        serve(c);
        return;
    case conn_state::closing:
        shutdown_step(c);
        return;
    case conn_state::draining:
        drain(c);
        return;
    }
}

void server::impl::handshake(connection& c) {
    ERR_clear_error();
    const int r = SSL_do_handshake(c.ssl.get());
    if (r == 1) {
        auto who = detail::describe_peer(c.ssl.get(), c.remote);
        if (!who) {
            // Not expected with the context's settings; the peer is not served.
            count(counter::handshakes_failed);
            count(counter::handshake_other);
            ERR_clear_error();
            begin_close(c);
            return;
        }
        c.from = std::move(who).value();
        count(counter::handshakes_ok);
        if (c.from.resumed) {
            count(counter::resumed);
        }
        c.state = conn_state::reading;
        set_deadline(c, cfg.idle_timeout);
        serve(c);
        return;
    }
    const int e = SSL_get_error(c.ssl.get(), r);
    if (e == SSL_ERROR_WANT_READ) {
        want(c, EPOLLIN);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        want(c, EPOLLOUT);
        return;
    }
    const detail::handshake_failure why = detail::classify_handshake_failure(c.ssl.get(), c.notes);
    if (why != detail::handshake_failure::other) {
        report_refusal(c, failure_counter(why), e);
    }
    // Counted after the report: whoever sees the counter sees the report.
    count(counter::handshakes_failed);
    count(failure_counter(why));
    ERR_clear_error();
    // OpenSSL has written its alert; the drain lets it reach a client whose
    // next flight is already in our receive buffer instead of a TCP reset.
    begin_drain(c);
}

void server::impl::report_refusal(const connection& c, counter which, int ssl_error) {
    const time_point now = clock::now();
    if (now >= refusal_window_end) {
        refusal_window_end = now + 1s;
        refusals_in_window = 0;
    }
    if (refusals_in_window >= cfg.refusal_reports_per_second) {
        ++refusals_unreported;
        return;
    }
    ++refusals_in_window;
    handshake_refusal r;
    detail::split_address(c.remote, r.address, r.port);
    r.counter = counter_name(which);
    r.reason = detail::failure_reason(c.ssl.get(), ssl_error);
    if (c.notes.alpn_refused) {
        // OpenSSL says "callback failed" for a hello without ALPN: say what
        // the client did instead.
        r.reason = c.notes.alpn_absent ? "no application protocol: the client offered no ALPN (ntske/1 or ntstsr/1 "
                                         "is required)"
                                       : "no application protocol: the client offered neither ntske/1 nor ntstsr/1";
    }
    r.subject = c.notes.rejected_subject;
    r.unreported = std::exchange(refusals_unreported, 0);
    {
        const std::lock_guard lock(status_mutex);
        last_refusal = r;
    }
    if (cfg.on_refused) {
        try {
            cfg.on_refused(r);
        } catch (...) { // the daemon's logging must not stop the loop
        }
    }
}

void server::impl::serve(connection& c) {
    while (!c.finished) {
        if (c.state == conn_state::writing) {
            if (!flush_response(c)) {
                return;
            }
            if (c.close_after_write) {
                begin_close(c);
                return;
            }
            c.state = conn_state::reading;
            set_deadline(c, cfg.idle_timeout);
        }
        if (c.state != conn_state::reading) {
            return;
        }
        switch (c.framer.scan(c.in)) {
        case frame_state::complete:
            dispatch(c);
            continue;
        case frame_state::oversize:
            count(counter::oversize_messages);
            begin_close(c);
            return;
        case frame_state::malformed:
            count(counter::malformed_messages);
            begin_close(c);
            return;
        case frame_state::incomplete:
            break;
        }
        if (!read_more(c)) {
            return;
        }
    }
}

bool server::impl::read_more(connection& c) {
    // While incomplete, the framer guarantees in.size() < max_message_size.
    const size_t have = c.in.size();
    const size_t room = std::min(read_chunk, cfg.max_message_size - have);
    c.in.resize(have + room);
    ERR_clear_error();
    const int n = SSL_read(c.ssl.get(), c.in.data() + have, static_cast<int>(room));
    if (n > 0) {
        c.in.resize(have + static_cast<size_t>(n));
        return true;
    }
    c.in.resize(have);
    on_ssl_error(c, n);
    return false;
}

bool server::impl::flush_response(connection& c) {
    while (c.out_sent < c.out.size()) {
        ERR_clear_error();
        const size_t left = c.out.size() - c.out_sent;
        const int n =
            SSL_write(c.ssl.get(), c.out.data() + c.out_sent, static_cast<int>(std::min<size_t>(left, INT_MAX)));
        if (n <= 0) {
            on_ssl_error(c, n);
            return false;
        }
        c.out_sent += static_cast<size_t>(n);
    }
    if (!c.out.empty()) {
        count(counter::responses);
    }
    c.out.clear();
    c.out_sent = 0;
    return true;
}

void server::impl::dispatch(connection& c) {
    const size_t size = c.framer.message_size();
    count(counter::requests);
    ++c.requests;
    response r;
    try {
        r = on_message(c.from, std::span<const uint8_t>(c.in.data(), size));
    } catch (...) {
        count(counter::handler_errors);
        begin_close(c);
        return;
    }
    c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(size));
    c.framer.reset();
    c.out = std::move(r.message);
    c.out_sent = 0;
    c.close_after_write = false;
    if (r.close_after) {
        count(counter::handler_closes);
        c.close_after_write = true;
    } else if (c.requests >= cfg.max_requests_per_connection) {
        count(counter::request_cap_closes);
        c.close_after_write = true;
    }
    c.state = conn_state::writing;
    set_deadline(c, cfg.idle_timeout);
}

void server::impl::begin_close(connection& c) {
    c.state = conn_state::closing;
    c.in.clear();
    c.out.clear();
    set_deadline(c, cfg.close_timeout);
    shutdown_step(c);
}

void server::impl::shutdown_step(connection& c) {
    ERR_clear_error();
    const int r = SSL_shutdown(c.ssl.get());
    if (r >= 0) {
        // 0: our close_notify is out; the client's is not awaited (RFC 8446 §6.1).
        begin_drain(c);
        return;
    }
    on_ssl_error(c, r);
}

void server::impl::begin_drain(connection& c) {
    ::shutdown(c.fd.get(), SHUT_WR);
    c.state = conn_state::draining;
    set_deadline(c, cfg.close_timeout);
    want(c, EPOLLIN);
    drain(c);
}

void server::impl::drain(connection& c) {
    size_t drained = 0;
    while (drained < drain_per_wake) {
        const ssize_t n = ::recv(c.fd.get(), drain_buffer.data(), drain_buffer.size(), MSG_DONTWAIT);
        if (n > 0) {
            drained += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        finish(c); // EOF or error: the client has what we sent, or never will
        return;
    }
}

void server::impl::destroy(uint64_t id) {
    auto it = connections.find(id);
    if (it == connections.end()) {
        return;
    }
    ::epoll_ctl(epoll_fd.get(), EPOLL_CTL_DEL, it->second->fd.get(), nullptr);
    connections.erase(it); // SSL_free, then close
    active.store(connections.size(), std::memory_order_relaxed);
}

void server::impl::on_event(uint64_t id) {
    auto it = connections.find(id);
    if (it == connections.end()) {
        return; // destroyed earlier in this batch
    }
    connection& c = *it->second;
    advance(c);
    if (c.finished) {
        destroy(id);
    }
}

void server::impl::expire(time_point now) {
    while (!deadlines.empty() && deadlines.top().when <= now) {
        const deadline_entry due = deadlines.top();
        deadlines.pop();
        auto it = connections.find(due.id);
        if (it == connections.end() || it->second->deadline != due.when) {
            continue; // the connection is gone or has moved on to another deadline
        }
        connection& c = *it->second;
        switch (c.state) {
        case conn_state::handshake:
            count(counter::handshake_timeouts);
            finish(c);
            break;
        case conn_state::reading:
            // §2.1: the session timeout ends with our close_notify.
            count(counter::idle_timeouts);
            begin_close(c);
            break;
        case conn_state::writing:
        case conn_state::closing:
            count(counter::write_timeouts);
            finish(c);
            break;
        case conn_state::draining:
            finish(c);
            break;
        }
        if (c.finished) {
            destroy(due.id);
        }
    }
    // Stale entries pile up while connections move between states; rebuild
    // the heap from the live deadlines when they dominate it.
    if (deadlines.size() > 4 * connections.size() + 1024) {
        std::vector<deadline_entry> live;
        live.reserve(connections.size());
        for (const auto& [id, c] : connections) {
            live.push_back({c->deadline, id});
        }
        deadlines = decltype(deadlines)(std::greater<>{}, std::move(live));
    }
}

status server::impl::poll_once(std::chrono::milliseconds max_wait) {
    time_point now = clock::now();
    time_point wake = now + std::max(max_wait, std::chrono::milliseconds(0));
    if (!deadlines.empty()) {
        wake = std::min(wake, deadlines.top().when);
    }
    const bool watching = cfg.watch_interval.count() > 0;
    if (watching) {
        wake = std::min(wake, next_watch);
    }
    if (accept_paused) {
        wake = std::min(wake, accept_resume);
    }

    std::array<epoll_event, max_events> events{};
    const int n = ::epoll_wait(epoll_fd.get(), events.data(), max_events, ms_until(now, wake));
    if (n < 0 && errno != EINTR) {
        return error{"epoll_wait: " + errno_text(errno)};
    }
    for (int i = 0; i < n; ++i) {
        const uint64_t token = events[static_cast<size_t>(i)].data.u64;
        if (token == wake_token) {
            uint64_t ignored = 0;
            while (::read(wake_fd.get(), &ignored, sizeof(ignored)) > 0) {
            }
        } else if (token < first_connection_id) {
            const size_t index = token - first_listener_token;
            if (index < listeners.size()) {
                accept_from(listeners[index].get());
            }
        } else {
            on_event(token);
        }
    }

    now = clock::now();
    expire(now);
    if (accept_paused && now >= accept_resume) {
        accept_paused = false;
        set_listeners_interest(EPOLLIN);
    }
    if (reload_requested.exchange(false)) {
        (void)reload(); // outcome in stats, last_reload_error() and on_reload
    }
    if (watching && now >= next_watch) {
        next_watch = now + cfg.watch_interval;
        if (current_files() != seen_files) {
            (void)reload();
        }
    }
    return ok_status();
}

server::server(std::unique_ptr<impl> p) noexcept : _impl(std::move(p)) {}
server::server(server&&) noexcept = default;
server& server::operator=(server&&) noexcept = default;
server::~server() = default;

namespace {

status check_settings(const server_config& config) {
    if (config.handshake_timeout.count() <= 0 || config.idle_timeout.count() <= 0 ||
        config.close_timeout.count() <= 0) {
        return error{"TLS server: the handshake, idle and close timeouts must be positive"};
    }
    if (config.max_connections == 0 || config.max_requests_per_connection == 0) {
        return error{"TLS server: max_connections and max_requests_per_connection must be at least 1"};
    }
    if (config.session_lifetime < std::chrono::seconds(0) || config.session_lifetime > max_session_lifetime) {
        return error{fmt::format("TLS server: session_lifetime {} s is outside 0 to {} s (seeds/001 §2.1: at most "
                                 "24 hours)",
                                 config.session_lifetime.count(), max_session_lifetime.count())};
    }
    if (config.max_message_size < record_header_size) {
        return error{fmt::format("TLS server: max_message_size {} is below one End of Message record ({} octets)",
                                 config.max_message_size, record_header_size)};
    }
    if (config.rate.per_second > 0 && config.rate.burst < 1) {
        return error{"TLS server: a rate limit needs a burst of at least 1"};
    }
    return ok_status();
}

} // namespace

status server::check(const server_config& config) {
    try {
        PTPSEC_TRY(settings, check_settings(config));
        PTPSEC_TRY(ctx, detail::server_context({config.cert_file, config.key_file, config.ca_file, config.crl_file},
                                               config.session_lifetime));
        for (const auto& a : config.listen_addresses) {
            sockaddr_storage ss{};
            socklen_t len = 0;
            PTPSEC_TRY(parsed, listen_address(a, config.port, ss, len));
        }
        return ok_status();
    } catch (const std::exception& e) {
        return error{fmt::format("TLS server: {}", e.what())};
    }
}

result<server> server::create(server_config config, handler on_message) {
    try {
        if (!on_message) {
            return error{"TLS server: no message handler"};
        }
        if (auto st = check_settings(config); !st) {
            return st.err();
        }
        auto p = std::make_unique<impl>(std::move(config), std::move(on_message));
        p->seen_files = p->current_files();
        auto ctx = detail::server_context(p->files(), p->cfg.session_lifetime);
        if (!ctx) {
            return ctx.err();
        }
        p->ctx = std::move(ctx).value();
        if (auto st = p->open(); !st) {
            return st.err();
        }
        p->next_watch = clock::now() + p->cfg.watch_interval;
        return server(std::move(p));
    } catch (const std::exception& e) {
        return error{fmt::format("TLS server: {}", e.what())};
    }
}

uint16_t server::port() const noexcept {
    return _impl->bound_port;
}

status server::run() {
    while (!_impl->stop_requested.load(std::memory_order_acquire)) {
        if (auto st = poll_once(std::chrono::hours(1)); !st) {
            return st;
        }
    }
    _impl->stop_requested.store(false, std::memory_order_relaxed);
    return ok_status();
}

status server::poll_once(std::chrono::milliseconds max_wait) {
    try {
        return _impl->poll_once(max_wait);
    } catch (const std::exception& e) {
        return error{fmt::format("TLS server loop: {}", e.what())};
    }
}

void server::stop() noexcept {
    const int saved = errno; // a signal handler must leave errno alone
    _impl->stop_requested.store(true, std::memory_order_release);
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(_impl->wake_fd.get(), &one, sizeof(one));
    errno = saved;
}

void server::request_reload() noexcept {
    const int saved = errno;
    _impl->reload_requested.store(true, std::memory_order_release);
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(_impl->wake_fd.get(), &one, sizeof(one));
    errno = saved;
}

status server::reload() {
    try {
        return _impl->reload();
    } catch (const std::exception& e) {
        return error{fmt::format("TLS server reload: {}", e.what())};
    }
}

server_stats server::stats() const noexcept {
    server_stats s;
    for (size_t i = 0; i < _impl->counters.size(); ++i) {
        s.*counter_table[i].field = _impl->counters[i].load(std::memory_order_relaxed);
    }
    s.active_connections = _impl->active.load(std::memory_order_relaxed);
    return s;
}

std::span<const server_counter> server_counters() noexcept {
    return counter_table;
}

std::string server::last_reload_error() const {
    const std::lock_guard lock(_impl->status_mutex);
    return _impl->reload_error;
}

std::optional<handshake_refusal> server::last_refusal() const {
    const std::lock_guard lock(_impl->status_mutex);
    return _impl->last_refusal;
}

std::string to_string(const handshake_refusal& r) {
    std::string text = fmt::format("{} port {} failed ({}): {}", r.address, r.port, r.counter, r.reason);
    if (!r.subject.empty()) {
        text += fmt::format("; certificate subject \"{}\" (unverified)", r.subject);
    }
    return text;
}

} // namespace ptpsec::tls
