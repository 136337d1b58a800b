#include <control/tls/client.h>

#include <control/tls/framing.h>
#include <control/tls/openssl_support.h>

#include <fmt/format.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

namespace ptpsec::tls {

namespace {

using clock = std::chrono::steady_clock;
using time_point = clock::time_point;
using detail::unique_fd;

constexpr size_t read_chunk = size_t{16} * 1024;

bool is_ip_literal(const std::string& name) {
    std::array<uint8_t, 16> buf{};
    return ::inet_pton(AF_INET, name.c_str(), buf.data()) == 1 || ::inet_pton(AF_INET6, name.c_str(), buf.data()) == 1;
}

/// Waits until `fd` is ready for `events` or the deadline passes.
status wait_for(int fd, short events, time_point deadline, std::chrono::milliseconds timeout) {
    for (;;) {
        const time_point now = clock::now();
        if (now >= deadline) {
            return error{fmt::format("timed out after {} ms", timeout.count())};
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
        pollfd p{fd, events, 0};
        const int r = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, INT_MAX)));
        if (r > 0) {
            return ok_status(); // ready, or an error the next call reports
        }
        if (r < 0 && errno != EINTR) {
            return error{fmt::format("poll: {}", std::strerror(errno))};
        }
    }
}

/// Waits as an SSL_* call that returned `ret` asks; an error says why not.
status wait_for_ssl(SSL* ssl, int fd, int ret, time_point deadline, std::chrono::milliseconds timeout) {
    const int e = SSL_get_error(ssl, ret);
    if (e == SSL_ERROR_WANT_READ) {
        return wait_for(fd, POLLIN, deadline, timeout);
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        return wait_for(fd, POLLOUT, deadline, timeout);
    }
    return error{detail::failure_reason(ssl, e)};
}

result<unique_fd> connect_tcp(const std::string& host, uint16_t port, const std::string& endpoint, time_point deadline,
                              std::chrono::milliseconds timeout, sockaddr_storage& remote) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    if (const int r = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); r != 0) {
        return error{fmt::format("resolving {}: {}", host, ::gai_strerror(r))};
    }
    const std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, ::freeaddrinfo);
    std::string last = "no address";
    for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
        unique_fd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd) {
            last = std::strerror(errno);
            continue;
        }
        if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                last = std::strerror(errno);
                continue;
            }
            if (auto st = wait_for(fd.get(), POLLOUT, deadline, timeout); !st) {
                return error{fmt::format("connecting to {}: {}", endpoint, st.message())};
            }
            int so_error = 0;
            socklen_t len = sizeof(so_error);
            ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len);
            if (so_error != 0) {
                last = std::strerror(so_error);
                continue;
            }
        }
        std::memcpy(&remote, ai->ai_addr, std::min<size_t>(ai->ai_addrlen, sizeof(remote)));
        const int one = 1;
        ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return fd;
    }
    return error{fmt::format("connecting to {}: {}", endpoint, last)};
}

/// The session of `ssl` if the server sent a ticket for it, else empty.
std::shared_ptr<ssl_session_st> resumable_session(SSL* ssl) {
    std::shared_ptr<ssl_session_st> p(SSL_get1_session(ssl), SSL_SESSION_free);
    if (p && SSL_SESSION_is_resumable(p.get()) == 1) {
        return p;
    }
    return nullptr;
}

} // namespace

struct client::state {
    unique_fd fd;
    detail::ssl_ptr ssl;
    std::string endpoint;
    std::array<uint8_t, 32> own_certificate{}; ///< SHA-256 of the one presented (zeros if unreadable)
    trust_files_signatures trust_files{};      ///< the CA and CRL files when the context was made
    std::chrono::milliseconds timeout{};
    size_t max_message = 0;
    std::vector<uint8_t> in; ///< octets read past the last response
    peer server;
    /// The session of a connection closed in good order, for ticket().
    std::shared_ptr<ssl_session_st> closed_session;

    bool open() const noexcept { return static_cast<bool>(ssl); }

    void drop() noexcept {
        ssl.reset();
        fd.reset();
        in.clear();
    }

    /// Closes and returns the error, naming the endpoint.
    error fail(std::string_view what, const std::string& why) {
        drop();
        ERR_clear_error();
        return error{fmt::format("{} {}: {}", what, endpoint, why)};
    }
};

client::client(std::unique_ptr<state> s) noexcept : _s(std::move(s)) {}
client::client(client&&) noexcept = default;
client& client::operator=(client&&) noexcept = default;

client::~client() {
    if (_s && _s->open()) {
        ERR_clear_error();
        SSL_shutdown(_s->ssl.get()); // best effort, non-blocking
        ERR_clear_error();
    }
}

status client::check(const client_config& config) {
    try {
        PTPSEC_TRY(ctx, detail::client_context({config.cert_file, config.key_file, config.ca_file, config.crl_file}));
        return ok_status();
    } catch (const std::exception& e) {
        return error{fmt::format("TLS client: {}", e.what())};
    }
}

result<client> client::connect(std::string_view host_view, uint16_t port, const client_config& config,
                               const session_ticket* resume) {
    try {
        const std::string host(host_view);
        auto s = std::make_unique<state>();
        s->endpoint =
            host.find(':') != std::string::npos ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
        s->timeout = config.timeout;
        s->max_message = config.max_message_size;
        const time_point deadline = clock::now() + config.timeout;

        // Taken before the files are read: a change during the read shows
        // as a change at the next connect().
        s->trust_files = {detail::signature_of(config.ca_file), detail::signature_of(config.crl_file)};
        auto ctx = detail::client_context({config.cert_file, config.key_file, config.ca_file, config.crl_file});
        if (!ctx) {
            return ctx.err();
        }
        sockaddr_storage remote{};
        auto fd = connect_tcp(host, port, s->endpoint, deadline, config.timeout, remote);
        if (!fd) {
            return fd.err();
        }
        s->fd = std::move(fd).value();

        ERR_clear_error();
        s->ssl.reset(SSL_new(ctx->get()));
        if (!s->ssl) {
            return s->fail("TLS handshake with", detail::openssl_reasons());
        }
        if (auto st = detail::attach_socket(s->ssl.get(), s->fd.get()); !st) {
            return s->fail("TLS handshake with", st.message());
        }
        if (!detail::certificate_fingerprint(SSL_CTX_get0_certificate(ctx->get()), s->own_certificate)) {
            s->own_certificate.fill(0);
            ERR_clear_error();
        }
        if (resume != nullptr && !resume->empty() && resume->_endpoint == s->endpoint && resume->_alpn == config.alpn &&
            resume->_own_certificate == s->own_certificate && resume->_trust_files == s->trust_files &&
            SSL_set_session(s->ssl.get(), resume->_session.get()) != 1) {
            ERR_clear_error(); // not offered: a full handshake
        }
        const std::string_view id = alpn_id(config.alpn);
        // RFC 7301 §3.1: one length-prefixed protocol ID.
        std::string alpn_list(1, static_cast<char>(id.size()));
        alpn_list += id;
        // SSL_set_alpn_protos returns 0 on success.
        if (SSL_set_alpn_protos(s->ssl.get(), reinterpret_cast<const unsigned char*>(alpn_list.data()),
                                static_cast<unsigned>(alpn_list.size())) != 0) {
            return s->fail("TLS handshake with", "setting ALPN: " + detail::openssl_reasons());
        }
        const std::string name = config.server_name.empty() ? host : config.server_name;
        if (is_ip_literal(name)) {
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl.get()), name.c_str()) != 1) {
                return s->fail("TLS handshake with", "expected IP " + name + ": " + detail::openssl_reasons());
            }
        } else {
            SSL_set_hostflags(s->ssl.get(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (SSL_set1_host(s->ssl.get(), name.c_str()) != 1 ||
                SSL_set_tlsext_host_name(s->ssl.get(), name.c_str()) != 1) {
                return s->fail("TLS handshake with", "expected name " + name + ": " + detail::openssl_reasons());
            }
        }
        SSL_set_connect_state(s->ssl.get());
        for (;;) {
            ERR_clear_error();
            const int r = SSL_connect(s->ssl.get());
            if (r == 1) {
                break;
            }
            if (auto st = wait_for_ssl(s->ssl.get(), s->fd.get(), r, deadline, config.timeout); !st) {
                return s->fail("TLS handshake with", st.message());
            }
        }
        auto who = detail::describe_peer(s->ssl.get(), remote);
        if (!who) {
            return s->fail("TLS handshake with", who.message());
        }
        if (who->alpn != config.alpn) {
            return s->fail("TLS handshake with",
                           fmt::format("the server agreed to {}, not {}", alpn_id(who->alpn), alpn_id(config.alpn)));
        }
        s->server = std::move(who).value();
        return client(std::move(s));
    } catch (const std::exception& e) {
        return error{fmt::format("TLS client: {}", e.what())};
    }
}

status client::send(std::span<const uint8_t> message) {
    if (!_s || !_s->open()) {
        return error{fmt::format("request to {}: the connection is closed", _s ? _s->endpoint : "?")};
    }
    state& s = *_s;
    message_framer check(message.size());
    if (check.scan(message) != frame_state::complete || check.message_size() != message.size()) {
        return error{fmt::format("request to {}: not one NTS message (records ending with End of Message, "
                                 "seeds/001 §4); nothing sent",
                                 s.endpoint)};
    }
    try {
        const time_point deadline = clock::now() + s.timeout;
        size_t sent = 0;
        while (sent < message.size()) {
            ERR_clear_error();
            const size_t left = message.size() - sent;
            const int n =
                SSL_write(s.ssl.get(), message.data() + sent, static_cast<int>(std::min<size_t>(left, INT_MAX)));
            if (n > 0) {
                sent += static_cast<size_t>(n);
                continue;
            }
            if (auto st = wait_for_ssl(s.ssl.get(), s.fd.get(), n, deadline, s.timeout); !st) {
                return s.fail("sending a request to", st.message());
            }
        }
    } catch (const std::exception& e) {
        return s.fail("request to", e.what());
    }
    return ok_status();
}

result<std::vector<uint8_t>> client::request(std::span<const uint8_t> message) {
    if (auto st = send(message); !st) {
        return st.err();
    }
    return receive();
}

result<std::vector<uint8_t>> client::receive() {
    if (!_s || !_s->open()) {
        return error{fmt::format("response from {}: the connection is closed", _s ? _s->endpoint : "?")};
    }
    state& s = *_s;
    try {
        const time_point deadline = clock::now() + s.timeout;
        message_framer framer(s.max_message);
        for (;;) {
            switch (framer.scan(s.in)) {
            case frame_state::complete: {
                const auto size = static_cast<std::ptrdiff_t>(framer.message_size());
                std::vector<uint8_t> out(s.in.begin(), s.in.begin() + size);
                s.in.erase(s.in.begin(), s.in.begin() + size);
                return out;
            }
            case frame_state::oversize:
                return s.fail("response from", fmt::format("over {} octets", s.max_message));
            case frame_state::malformed:
                return s.fail("response from", "End of Message with a body (seeds/001 §4.2.4)");
            case frame_state::incomplete:
                break;
            }
            const size_t have = s.in.size();
            const size_t room = std::min(read_chunk, s.max_message - have);
            s.in.resize(have + room);
            ERR_clear_error();
            const int n = SSL_read(s.ssl.get(), s.in.data() + have, static_cast<int>(room));
            if (n > 0) {
                s.in.resize(have + static_cast<size_t>(n));
                continue;
            }
            s.in.resize(have);
            const int e = SSL_get_error(s.ssl.get(), n);
            if (e == SSL_ERROR_ZERO_RETURN) {
                return s.fail("request to", "the server closed the session (close_notify) without a response");
            }
            if (e == SSL_ERROR_SSL) {
                const unsigned long first = ERR_peek_error();
                if (ERR_GET_LIB(first) == ERR_LIB_SSL && ERR_GET_REASON(first) >= SSL_AD_REASON_OFFSET) {
                    return s.fail("request to",
                                  "the server ended the session: " + detail::failure_reason(s.ssl.get(), e));
                }
            }
            if (auto st = wait_for_ssl(s.ssl.get(), s.fd.get(), n, deadline, s.timeout); !st) {
                return s.fail("request to", st.message());
            }
        }
    } catch (const std::exception& e) {
        return s.fail("request to", e.what());
    }
}

status client::close() {
    if (!_s || !_s->open()) {
        return ok_status();
    }
    state& s = *_s;
    const time_point deadline = clock::now() + s.timeout;
    for (;;) {
        ERR_clear_error();
        const int r = SSL_shutdown(s.ssl.get());
        if (r == 1) {
            s.closed_session = resumable_session(s.ssl.get());
            s.drop();
            return ok_status();
        }
        if (r == 0) {
            break; // ours is out; wait for the server's
        }
        if (auto st = wait_for_ssl(s.ssl.get(), s.fd.get(), r, deadline, s.timeout); !st) {
            return s.fail("closing the session with", st.message());
        }
    }
    std::array<uint8_t, 1024> discard{};
    for (;;) {
        ERR_clear_error();
        const int n = SSL_read(s.ssl.get(), discard.data(), static_cast<int>(discard.size()));
        if (n > 0) {
            continue; // a response nobody asked for any more
        }
        const int e = SSL_get_error(s.ssl.get(), n);
        if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
            s.closed_session = resumable_session(s.ssl.get());
            s.drop(); // the server's close_notify, or its end of stream
            return ok_status();
        }
        if (auto st = wait_for_ssl(s.ssl.get(), s.fd.get(), n, deadline, s.timeout); !st) {
            return s.fail("closing the session with", st.message());
        }
    }
}

bool client::is_open() const noexcept {
    return _s && _s->open();
}

const peer& client::server() const noexcept {
    return _s->server;
}

session_ticket client::ticket() const {
    session_ticket t;
    if (!_s) {
        return t;
    }
    t._session = _s->open() ? resumable_session(_s->ssl.get()) : _s->closed_session;
    if (t._session) {
        t._endpoint = _s->endpoint;
        t._alpn = _s->server.alpn; // the one asked for: connect() checks
        t._own_certificate = _s->own_certificate;
        t._trust_files = _s->trust_files;
    }
    return t;
}

const std::string& client::endpoint() const noexcept {
    return _s->endpoint;
}

} // namespace ptpsec::tls
