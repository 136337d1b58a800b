// control/tls: the NTS-KE / NTS-TSR TLS server and client over real TLS on
// loopback (seeds/001 §2.1, §2.2, §2.5.4). The certificates are made here
// with the OpenSSL 3 API (EC P-256, X.509 v3 built in code) into a
// temporary directory: a CA, server certificates with DNS:localhost and
// IP:127.0.0.1, client certificates (good, from another CA, expired).
// Odd clients (TLS 1.2 only, ALPN h2 or none, no certificate, octet-wise
// writes, slowloris) are driven with OpenSSL directly. Timing: short
// timeouts are waited for and their counters asserted; nothing asserts how
// fast something happened.

#include <control/tls/client.h>
#include <control/tls/framing.h>
#include <control/tls/openssl_support.h>
#include <control/tls/server.h>

#include "test_pki.h"

#include <gtest/gtest.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

namespace ptpsec::tls {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using detail::unique_fd;

// ---------------------------------------------------------------- test PKI

using test::cert_pem;
using test::cert_spec;
using test::fingerprint;
using test::identity;
using test::key_pem;
using test::make_identity;

void write_file(const fs::path& path, const std::string& content) {
    test::write_pem_file(path, content);
}

/// Everything a test needs, made once for the suite.
struct test_pki {
    fs::path dir;
    identity ca, other_ca, server_a, server_b, client_good, client_other_ca, client_expired;

    fs::path file(const std::string& name) const { return dir / name; }

    void make() {
        char tmpl[] = "/tmp/ptpsec-tls-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir = tmpl;
        ca = make_identity({.cn = "ptpsec test CA", .ca = true});
        other_ca = make_identity({.cn = "another CA", .ca = true});
        const std::string server_san = "DNS:localhost,IP:127.0.0.1,IP:::1";
        server_a = make_identity({.cn = "ke-a", .issuer = &ca, .san = server_san, .eku = "serverAuth"});
        server_b = make_identity({.cn = "ke-b", .issuer = &ca, .san = server_san, .eku = "serverAuth"});
        client_good = make_identity({.cn = "node-1",
                                     .issuer = &ca,
                                     .san = "DNS:node-1.ptp.test,IP:192.0.2.10,URI:urn:ptp:node-1",
                                     .eku = "clientAuth"});
        client_other_ca = make_identity({.cn = "stranger", .issuer = &other_ca, .eku = "clientAuth"});
        client_expired = make_identity({.cn = "node-old",
                                        .issuer = &ca,
                                        .eku = "clientAuth",
                                        .not_before = -2L * 24 * 3600,
                                        .not_after = -24L * 3600});
        write_file(file("ca.pem"), cert_pem(ca));
        write_file(file("other_ca.pem"), cert_pem(other_ca));
        for (const auto& [name, id] :
             {std::pair{"server_a", &server_a}, std::pair{"server_b", &server_b},
              std::pair{"client_good", &client_good}, std::pair{"client_other_ca", &client_other_ca},
              std::pair{"client_expired", &client_expired}}) {
            write_file(file(std::string(name) + ".pem"), cert_pem(*id));
            write_file(file(std::string(name) + ".key"), key_pem(*id));
        }
    }
};

// ---------------------------------------------------------------- messages

void append_record(std::vector<uint8_t>& out, uint16_t type, std::span<const uint8_t> body) {
    const auto t = static_cast<uint16_t>(type | 0x8000);
    out.push_back(static_cast<uint8_t>(t >> 8));
    out.push_back(static_cast<uint8_t>(t));
    out.push_back(static_cast<uint8_t>(body.size() >> 8));
    out.push_back(static_cast<uint8_t>(body.size()));
    out.insert(out.end(), body.begin(), body.end());
}

std::vector<uint8_t> with_end(std::vector<uint8_t> m) {
    m.insert(m.end(), end_of_message, end_of_message + record_header_size);
    return m;
}

/// NTS Message Type (seeds/001 §4.2.9) with `value`, then End of Message.
std::vector<uint8_t> simple_request(uint8_t value) {
    std::vector<uint8_t> m;
    const std::vector<uint8_t> body = {0x00, value};
    append_record(m, 1028, body);
    return with_end(m);
}

/// The handler's answer: a private-use record (seeds/001 Table 12) with the
/// ALPN ID, another with the request, then End of Message.
std::vector<uint8_t> reply_for(protocol p, std::span<const uint8_t> request) {
    std::vector<uint8_t> m;
    const std::string_view id = alpn_id(p);
    append_record(m, 0x4001, std::span(reinterpret_cast<const uint8_t*>(id.data()), id.size()));
    append_record(m, 0x4002, request);
    return with_end(m);
}

/// The handler the tests serve with: answers reply_for() and keeps what it saw.
struct recorder {
    std::mutex mutex;
    std::vector<peer> peers;
    std::vector<std::vector<uint8_t>> messages;
    std::atomic<bool> close_after{false};
    std::atomic<bool> throw_next{false};

    handler make() {
        return [this](const peer& from, std::span<const uint8_t> message) -> response {
            {
                const std::lock_guard lock(mutex);
                peers.push_back(from);
                messages.emplace_back(message.begin(), message.end());
            }
            if (throw_next.exchange(false)) {
                throw std::runtime_error("handler failure");
            }
            return {reply_for(from.alpn, message), close_after.load()};
        };
    }

    size_t count() {
        const std::lock_guard lock(mutex);
        return messages.size();
    }
    std::optional<peer> last_peer() {
        const std::lock_guard lock(mutex);
        return peers.empty() ? std::nullopt : std::optional<peer>(peers.back());
    }
    std::vector<uint8_t> last_message() {
        const std::lock_guard lock(mutex);
        return messages.empty() ? std::vector<uint8_t>{} : messages.back();
    }

    /// What on_refused reported, the counter name copied (it is a view).
    struct refusal {
        handshake_refusal r;
        std::string counter;
    };
    std::vector<refusal> refusals;

    std::function<void(const handshake_refusal&)> refusal_hook() {
        return [this](const handshake_refusal& r) {
            const std::lock_guard lock(mutex);
            refusals.push_back({r, std::string(r.counter)});
        };
    }
    std::vector<refusal> refused() {
        const std::lock_guard lock(mutex);
        return refusals;
    }
};

// ---------------------------------------------------------------- harness

/// The server's loop on its own thread; stopped and joined on every exit.
class running_server {
public:
    explicit running_server(server s) : _server(std::move(s)), _thread([this] { _status = _server.run(); }) {}
    running_server(const running_server&) = delete;
    running_server& operator=(const running_server&) = delete;
    running_server(running_server&&) = delete;
    running_server& operator=(running_server&&) = delete;
    ~running_server() {
        _server.stop();
        _thread.join();
        EXPECT_TRUE(_status.ok()) << _status.message();
    }

    server& get() { return _server; }
    uint16_t port() const { return _server.port(); }
    server_stats stats() const { return _server.stats(); }

private:
    server _server;
    status _status = ok_status();
    std::thread _thread;
};

/// Polls the counters until `done` holds or 10 s pass; returns the last
/// snapshot for the caller to assert on.
template <typename Pred>
server_stats wait_for(const running_server& s, Pred done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    server_stats st = s.stats();
    while (!done(st) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(2ms);
        st = s.stats();
    }
    return st;
}

unique_fd tcp_connect(uint16_t port, const char* source = nullptr) {
    unique_fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_TRUE(fd);
    timeval tv{5, 0}; // no test hangs on a read or write
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (source != nullptr) {
        sockaddr_in src{};
        src.sin_family = AF_INET;
        ::inet_pton(AF_INET, source, &src.sin_addr);
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) {
            return {};
        }
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
        ADD_FAILURE() << "connect: " << std::strerror(errno);
        return {};
    }
    return fd;
}

struct raw_options {
    int max_version = TLS1_3_VERSION;
    std::vector<std::string> alpn = {"ntske/1"};
    std::string cert_file; ///< empty: no client certificate
    std::string key_file;
    SSL_SESSION* resume = nullptr; ///< a session() of an earlier client, offered
};

/// A TLS client with whatever the test asks for, driven with OpenSSL
/// directly on a blocking socket (5 s timeouts); it does not verify the server.
class raw_tls_client {
public:
    raw_tls_client(uint16_t port, const raw_options& o) : _fd(tcp_connect(port)) {
        _ctx.reset(SSL_CTX_new(TLS_client_method()));
        SSL_CTX_set_min_proto_version(_ctx.get(), TLS1_2_VERSION);
        SSL_CTX_set_max_proto_version(_ctx.get(), o.max_version);
        if (!o.cert_file.empty()) {
            EXPECT_EQ(SSL_CTX_use_certificate_chain_file(_ctx.get(), o.cert_file.c_str()), 1);
            EXPECT_EQ(SSL_CTX_use_PrivateKey_file(_ctx.get(), o.key_file.c_str(), SSL_FILETYPE_PEM), 1);
        }
        SSL_CTX_set_verify(_ctx.get(), SSL_VERIFY_NONE, nullptr);
        _ssl.reset(SSL_new(_ctx.get()));
        EXPECT_TRUE(detail::attach_socket(_ssl.get(), _fd.get()).ok());
        if (!o.alpn.empty()) {
            std::vector<uint8_t> wire;
            for (const auto& id : o.alpn) {
                wire.push_back(static_cast<uint8_t>(id.size()));
                wire.insert(wire.end(), id.begin(), id.end());
            }
            EXPECT_EQ(SSL_set_alpn_protos(_ssl.get(), wire.data(), static_cast<unsigned>(wire.size())), 0);
        }
        if (o.resume != nullptr) {
            EXPECT_EQ(SSL_set_session(_ssl.get(), o.resume), 1);
        }
        ERR_clear_error();
        const int r = SSL_connect(_ssl.get());
        if (r != 1) {
            _handshake_error = detail::failure_reason(_ssl.get(), SSL_get_error(_ssl.get(), r));
        }
    }

    bool handshake_ok() const { return _handshake_error.empty(); }
    bool resumed() const { return SSL_session_reused(_ssl.get()) == 1; }
    /// The session as it stands (with a ticket once one has been read).
    std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)> session() const {
        return {SSL_get1_session(_ssl.get()), SSL_SESSION_free};
    }
    const std::string& handshake_error() const { return _handshake_error; }
    std::string alpn() const {
        const unsigned char* p = nullptr;
        unsigned int n = 0;
        SSL_get0_alpn_selected(_ssl.get(), &p, &n);
        return {reinterpret_cast<const char*>(p), n};
    }

    bool write(std::span<const uint8_t> bytes) {
        size_t sent = 0;
        while (sent < bytes.size()) {
            ERR_clear_error();
            const int n = SSL_write(_ssl.get(), bytes.data() + sent, static_cast<int>(bytes.size() - sent));
            if (n <= 0) {
                ERR_clear_error();
                return false;
            }
            sent += static_cast<size_t>(n);
        }
        return true;
    }

    struct outcome {
        std::vector<uint8_t> message; ///< a complete message, or empty
        std::string ended;            ///< why no message: "close_notify", an alert, "eof"
    };

    /// Reads until one complete message or the end of the session.
    outcome read_message() {
        outcome o;
        message_framer f(size_t{1} << 20);
        for (;;) {
            if (f.scan(_in) == frame_state::complete) {
                const auto size = static_cast<std::ptrdiff_t>(f.message_size());
                o.message.assign(_in.begin(), _in.begin() + size);
                _in.erase(_in.begin(), _in.begin() + size);
                return o;
            }
            uint8_t buf[4096];
            ERR_clear_error();
            const int n = SSL_read(_ssl.get(), buf, sizeof(buf));
            if (n > 0) {
                _in.insert(_in.end(), buf, buf + n);
                continue;
            }
            const int e = SSL_get_error(_ssl.get(), n);
            o.ended = e == SSL_ERROR_ZERO_RETURN ? std::string("close_notify") : detail::failure_reason(_ssl.get(), e);
            return o;
        }
    }

private:
    unique_fd _fd;
    detail::ssl_ctx_ptr _ctx;
    detail::ssl_ptr _ssl;
    std::string _handshake_error;
    std::vector<uint8_t> _in;
};

class tls_server : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        pki = std::make_unique<test_pki>();
        pki->make();
    }
    static void TearDownTestSuite() {
        std::error_code ignored;
        fs::remove_all(pki->dir, ignored);
        pki.reset();
    }

    void SetUp() override {
        ASSERT_TRUE(pki && !pki->dir.empty());
        // Each test has its own server files: reload tests rewrite them.
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        test_dir = pki->dir / info->name();
        fs::create_directories(test_dir);
        write_file(test_dir / "server.pem", cert_pem(pki->server_a));
        write_file(test_dir / "server.key", key_pem(pki->server_a));
    }

    server_config config() const {
        server_config c;
        c.listen_addresses = {"127.0.0.1"};
        c.port = 0;
        c.cert_file = test_dir / "server.pem";
        c.key_file = test_dir / "server.key";
        c.ca_file = pki->file("ca.pem");
        c.rate.per_second = 0; // tests connect in quick succession; the rate test sets it
        return c;
    }

    std::unique_ptr<running_server> start(server_config c) {
        auto s = server::create(std::move(c), calls.make());
        if (!s) {
            ADD_FAILURE() << s.message();
            return nullptr;
        }
        return std::make_unique<running_server>(std::move(s).value());
    }

    static client_config client_as(const std::string& who, protocol p = protocol::ntske) {
        client_config c;
        c.ca_file = pki->file("ca.pem");
        c.cert_file = pki->file(who + ".pem");
        c.key_file = pki->file(who + ".key");
        c.alpn = p;
        return c;
    }

    /// A server that issues session tickets valid for `lifetime`.
    std::unique_ptr<running_server> start_resuming(std::chrono::seconds lifetime) {
        auto c = config();
        c.session_lifetime = lifetime;
        return start(std::move(c));
    }

    /// client_as() with the certificate of `id`, its files written to the
    /// test's directory as NAME.pem and NAME.key.
    client_config client_with(const identity& id, const std::string& name) const {
        write_file(test_dir / (name + ".pem"), cert_pem(id));
        write_file(test_dir / (name + ".key"), key_pem(id));
        auto c = client_as("client_good");
        c.cert_file = test_dir / (name + ".pem");
        c.key_file = test_dir / (name + ".key");
        return c;
    }

    raw_options raw_as(const std::string& who) const {
        raw_options o;
        o.cert_file = pki->file(who + ".pem");
        o.key_file = pki->file(who + ".key");
        return o;
    }

    static inline std::unique_ptr<test_pki> pki;
    fs::path test_dir;
    recorder calls;
};

// ---------------------------------------------------------------- tests

TEST_F(tls_server, round_trip_on_both_alpns_with_the_peer_described) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    for (protocol p : {protocol::ntske, protocol::ntstsr}) {
        SCOPED_TRACE(std::string(alpn_id(p)));
        auto c = client::connect("127.0.0.1", srv->port(), client_as("client_good", p));
        ASSERT_TRUE(c) << c.message();
        EXPECT_EQ(c->server().alpn, p);
        EXPECT_EQ(c->server().fingerprint, fingerprint(pki->server_a));
        EXPECT_EQ(c->server().subject, "CN=ke-a,O=ptpsec test");
        EXPECT_EQ(c->server().dns_names, std::vector<std::string>{"localhost"});
        EXPECT_EQ(c->server().ip_addresses, (std::vector<std::string>{"127.0.0.1", "::1"}));
        EXPECT_EQ(c->endpoint(), "127.0.0.1:" + std::to_string(srv->port()));

        const auto request = simple_request(0);
        auto r = c->request(request);
        ASSERT_TRUE(r) << r.message();
        EXPECT_EQ(*r, reply_for(p, request));
        EXPECT_EQ(calls.last_message(), request);

        const auto who = calls.last_peer();
        ASSERT_TRUE(who);
        EXPECT_EQ(who->alpn, p);
        EXPECT_EQ(who->subject, "CN=node-1,O=ptpsec test");
        EXPECT_EQ(who->dns_names, std::vector<std::string>{"node-1.ptp.test"});
        EXPECT_EQ(who->ip_addresses, std::vector<std::string>{"192.0.2.10"});
        EXPECT_EQ(who->uris, std::vector<std::string>{"urn:ptp:node-1"});
        EXPECT_EQ(who->fingerprint, fingerprint(pki->client_good));
        EXPECT_EQ(to_hex(who->fingerprint).size(), 64U);
        EXPECT_FALSE(who->certificate.empty());
        EXPECT_EQ(who->address, "127.0.0.1");
        EXPECT_NE(who->port, 0);
        EXPECT_EQ(who->remote(), "127.0.0.1:" + std::to_string(who->port));
        EXPECT_TRUE(c->close().ok());
    }
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.closed_by_peer == 2; });
    EXPECT_EQ(st.handshakes_ok, 2U);
    EXPECT_EQ(st.handshakes_failed, 0U);
    EXPECT_EQ(st.requests, 2U);
    EXPECT_EQ(st.responses, 2U);
    EXPECT_EQ(st.closed_by_peer, 2U) << "close() sends close_notify";
}

TEST_F(tls_server, the_client_verifies_the_name_as_dns_or_ip) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    auto by_dns = client_as("client_good");
    by_dns.server_name = "localhost";
    auto c = client::connect("127.0.0.1", srv->port(), by_dns);
    ASSERT_TRUE(c) << c.message();

    auto wrong = client_as("client_good");
    wrong.server_name = "ke.example.org";
    auto w = client::connect("127.0.0.1", srv->port(), wrong);
    ASSERT_FALSE(w);
    EXPECT_EQ(w.message(), "TLS handshake with 127.0.0.1:" + std::to_string(srv->port()) +
                               ": certificate verify failed: hostname mismatch");
}

TEST_F(tls_server, a_server_from_an_unknown_ca_is_refused_by_the_client_with_the_reason) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    auto cfg = client_as("client_good");
    cfg.ca_file = pki->file("other_ca.pem");
    auto c = client::connect("127.0.0.1", srv->port(), cfg);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.message(), "TLS handshake with 127.0.0.1:" + std::to_string(srv->port()) +
                               ": certificate verify failed: unable to get local issuer certificate");
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.handshakes_failed == 1; });
    EXPECT_EQ(st.peer_alerts, 1U) << "the client's unknown_ca alert";
    EXPECT_EQ(st.handshakes_ok, 0U);
}

TEST_F(tls_server, the_client_refuses_a_server_certificate_its_cas_crl_revokes_or_has_no_current_crl_for) {
    auto server_cfg = config();
    server_cfg.on_refused = calls.refusal_hook();
    auto srv = start(server_cfg);
    ASSERT_TRUE(srv);
    const std::string to = "TLS handshake with 127.0.0.1:" + std::to_string(srv->port()) + ": ";
    auto cfg = client_as("client_good");
    cfg.crl_file = test_dir / "client-side.crl";

    write_file(cfg.crl_file, test::crl_pem(pki->ca, {&pki->server_b}));
    auto c = client::connect("127.0.0.1", srv->port(), cfg);
    EXPECT_TRUE(c) << "another certificate on the CRL: " << c.message();

    write_file(cfg.crl_file, test::crl_pem(pki->ca, {&pki->server_a}));
    c = client::connect("127.0.0.1", srv->port(), cfg);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.message(), to + "certificate verify failed: certificate revoked");
    // The server reports the client's alert.
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.peer_alerts == 1; });
    ASSERT_EQ(st.peer_alerts, 1U);
    const auto reports = calls.refused();
    ASSERT_EQ(reports.size(), 1U);
    EXPECT_EQ(reports[0].counter, "peer_alerts");
    EXPECT_EQ(reports[0].r.reason, "sslv3 alert certificate revoked");
    EXPECT_EQ(reports[0].r.subject, "");

    write_file(cfg.crl_file, test::crl_pem(pki->other_ca, {}));
    c = client::connect("127.0.0.1", srv->port(), cfg);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.message(), to + "certificate verify failed: unable to get certificate CRL");

    write_file(cfg.crl_file, test::crl_pem(pki->ca, {}, -60, -7200));
    c = client::connect("127.0.0.1", srv->port(), cfg);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.message(), to + "certificate verify failed: CRL has expired");

    write_file(cfg.crl_file, cert_pem(pki->ca));
    c = client::connect("127.0.0.1", srv->port(), cfg);
    ASSERT_FALSE(c);
    EXPECT_NE(c.message().find("CRL file " + cfg.crl_file + ": no CRL could be read"), std::string::npos)
        << c.message();
}

TEST_F(tls_server, client_files_that_do_not_load_are_named) {
    auto cfg = client_as("client_good");
    cfg.cert_file = (test_dir / "missing.pem").string();
    auto c = client::connect("127.0.0.1", 1, cfg);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.message(), "certificate file " + cfg.cert_file + ": No such file or directory");

    auto mismatched = client_as("client_good");
    mismatched.key_file = pki->file("client_expired.key");
    auto m = client::connect("127.0.0.1", 1, mismatched);
    ASSERT_FALSE(m);
    EXPECT_NE(m.message().find("private key file " + mismatched.key_file + " (for certificate file " +
                               mismatched.cert_file + "): key values mismatch"),
              std::string::npos)
        << m.message();
}

TEST_F(tls_server, a_client_offering_only_tls_1_2_is_refused) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    auto o = raw_as("client_good");
    o.max_version = TLS1_2_VERSION;
    raw_tls_client c(srv->port(), o);
    EXPECT_FALSE(c.handshake_ok());
    EXPECT_NE(c.handshake_error().find("protocol version"), std::string::npos) << c.handshake_error();
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.handshakes_failed == 1; });
    EXPECT_EQ(st.protocol_refused, 1U);
    EXPECT_EQ(st.handshakes_ok, 0U);
}

TEST_F(tls_server, alpn_h2_or_none_is_refused_with_no_application_protocol) {
    auto cfg = config();
    cfg.on_refused = calls.refusal_hook();
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    for (const std::vector<std::string>& offer : {std::vector<std::string>{"h2"}, std::vector<std::string>{},
                                                  std::vector<std::string>{"ntske/2", "http/1.1"}}) {
        auto o = raw_as("client_good");
        o.alpn = offer;
        raw_tls_client c(srv->port(), o);
        EXPECT_FALSE(c.handshake_ok()) << offer.size() << " protocols offered";
        EXPECT_NE(c.handshake_error().find("no application protocol"), std::string::npos) << c.handshake_error();
    }
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.handshakes_failed == 3; });
    EXPECT_EQ(st.alpn_refused, 3U);
    EXPECT_EQ(st.handshakes_ok, 0U);
    EXPECT_EQ(calls.count(), 0U);
    // The report says what the client offered (OpenSSL itself says
    // "callback failed" for a hello without ALPN).
    const auto reports = calls.refused();
    ASSERT_EQ(reports.size(), 3U);
    const char* const said[] = {"the client offered neither ntske/1 nor ntstsr/1",
                                "the client offered no ALPN (ntske/1 or ntstsr/1 is required)",
                                "the client offered neither ntske/1 nor ntstsr/1"};
    for (size_t i = 0; i < reports.size(); ++i) {
        EXPECT_EQ(reports[i].counter, "alpn_refused");
        EXPECT_EQ(reports[i].r.reason, std::string("no application protocol: ") + said[i]);
    }
}

TEST_F(tls_server, one_of_ours_in_the_alpn_list_is_selected) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    auto o = raw_as("client_good");
    o.alpn = {"h2", "ntstsr/1", "ntske/1"};
    raw_tls_client c(srv->port(), o);
    ASSERT_TRUE(c.handshake_ok()) << c.handshake_error();
    EXPECT_EQ(c.alpn(), "ntstsr/1") << "the first one we speak, in the client's order";
    ASSERT_TRUE(c.write(simple_request(3)));
    const auto r = c.read_message();
    EXPECT_EQ(r.message, reply_for(protocol::ntstsr, simple_request(3))) << r.ended;
}

TEST_F(tls_server, a_client_without_a_certificate_is_refused) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    raw_options o; // no certificate
    raw_tls_client c(srv->port(), o);
    // TLS 1.3: the client has finished before the server sees no certificate.
    if (c.handshake_ok()) {
        c.write(simple_request(0));
        const auto r = c.read_message();
        EXPECT_TRUE(r.message.empty());
        EXPECT_NE(r.ended.find("certificate required"), std::string::npos) << r.ended;
    }
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.handshakes_failed == 1; });
    EXPECT_EQ(st.no_client_cert, 1U);
    EXPECT_EQ(st.handshakes_ok, 0U);
    EXPECT_EQ(calls.count(), 0U);
    // Kept for the status without an on_refused hook too.
    auto last = srv->get().last_refusal();
    for (auto deadline = std::chrono::steady_clock::now() + 10s; !last && std::chrono::steady_clock::now() < deadline;
         last = srv->get().last_refusal()) {
        std::this_thread::sleep_for(2ms);
    }
    ASSERT_TRUE(last);
    EXPECT_EQ(last->counter, "no_client_cert");
}

TEST_F(tls_server, a_client_certificate_from_another_ca_is_refused) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    auto c = client::connect("127.0.0.1", srv->port(), client_as("client_other_ca"));
    if (c) {
        auto r = c->request(simple_request(0));
        ASSERT_FALSE(r);
        EXPECT_NE(r.message().find("the server ended the session: tlsv1 alert unknown ca"), std::string::npos)
            << r.message();
        EXPECT_FALSE(c->is_open());
    }
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.handshakes_failed == 1; });
    EXPECT_EQ(st.client_cert_rejected, 1U);
    EXPECT_EQ(st.handshakes_ok, 0U);
    EXPECT_EQ(calls.count(), 0U);
}

TEST_F(tls_server, an_expired_client_certificate_is_refused_and_counted_as_such) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    auto c = client::connect("127.0.0.1", srv->port(), client_as("client_expired"));
    if (c) {
        auto r = c->request(simple_request(0));
        ASSERT_FALSE(r);
        EXPECT_NE(r.message().find("certificate expired"), std::string::npos) << r.message();
    }
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.handshakes_failed == 1; });
    EXPECT_EQ(st.client_cert_expired, 1U);
    EXPECT_EQ(st.client_cert_rejected, 0U);
    EXPECT_EQ(calls.count(), 0U);
}

TEST_F(tls_server, an_oversize_message_is_refused_from_its_header_and_counted) {
    auto cfg = config();
    cfg.max_message_size = 256;
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    raw_tls_client c(srv->port(), raw_as("client_good"));
    ASSERT_TRUE(c.handshake_ok()) << c.handshake_error();
    // One record header announcing 300 octets of body; the body never comes.
    const std::vector<uint8_t> header = {0x84, 0x0a, 0x01, 0x2c};
    ASSERT_TRUE(c.write(header));
    const auto r = c.read_message();
    EXPECT_TRUE(r.message.empty());
    EXPECT_EQ(r.ended, "close_notify");
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.oversize_messages == 1; });
    EXPECT_EQ(st.oversize_messages, 1U);
    EXPECT_EQ(st.requests, 0U);
    EXPECT_EQ(calls.count(), 0U);

    // A message of exactly the limit is served.
    std::vector<uint8_t> fits;
    append_record(fits, 1034, std::vector<uint8_t>(256 - 8));
    fits = with_end(fits);
    ASSERT_EQ(fits.size(), 256U);
    auto ok = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(ok) << ok.message();
    auto resp = ok->request(fits);
    ASSERT_TRUE(resp) << resp.message();
    EXPECT_EQ(calls.last_message(), fits);
}

TEST_F(tls_server, an_end_of_message_with_a_body_closes_the_connection) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    raw_tls_client c(srv->port(), raw_as("client_good"));
    ASSERT_TRUE(c.handshake_ok()) << c.handshake_error();
    ASSERT_TRUE(c.write(std::vector<uint8_t>{0x80, 0x00, 0x00, 0x01, 0x00}));
    const auto r = c.read_message();
    EXPECT_EQ(r.ended, "close_notify");
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.malformed_messages == 1; });
    EXPECT_EQ(st.malformed_messages, 1U);
    EXPECT_EQ(calls.count(), 0U);
}

TEST_F(tls_server, a_message_written_one_octet_at_a_time_is_framed_right) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    raw_tls_client c(srv->port(), raw_as("client_good"));
    ASSERT_TRUE(c.handshake_ok()) << c.handshake_error();
    // A container whose body holds an End of Message (ignored there, §4.2.4),
    // then a record, then the real End of Message.
    std::vector<uint8_t> inner;
    append_record(inner, 1033, std::vector<uint8_t>{0x00, 0x00});
    inner.insert(inner.end(), end_of_message, end_of_message + record_header_size);
    std::vector<uint8_t> m;
    append_record(m, 1025, inner);
    append_record(m, 1028, std::vector<uint8_t>{0x00, 0x01});
    m = with_end(m);
    for (uint8_t octet : m) {
        ASSERT_TRUE(c.write(std::span(&octet, 1))); // one TLS record each
    }
    const auto r = c.read_message();
    EXPECT_EQ(r.message, reply_for(protocol::ntske, m)) << r.ended;
    EXPECT_EQ(calls.last_message(), m);

    // Two messages in one write (pipelined) give two responses, in order.
    auto two = simple_request(1);
    const auto second = simple_request(2);
    two.insert(two.end(), second.begin(), second.end());
    ASSERT_TRUE(c.write(two));
    EXPECT_EQ(c.read_message().message, reply_for(protocol::ntske, simple_request(1)));
    EXPECT_EQ(c.read_message().message, reply_for(protocol::ntske, simple_request(2)));
    EXPECT_EQ(srv->stats().requests, 3U);
}

TEST_F(tls_server, two_requests_on_one_connection) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    auto c = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(c) << c.message();
    for (uint8_t i = 0; i < 2; ++i) {
        auto r = c->request(simple_request(i));
        ASSERT_TRUE(r) << r.message();
        EXPECT_EQ(*r, reply_for(protocol::ntske, simple_request(i)));
    }
    EXPECT_TRUE(c->close().ok());
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.closed_by_peer == 1; });
    EXPECT_EQ(st.handshakes_ok, 1U) << "one handshake for both";
    EXPECT_EQ(st.requests, 2U);
    EXPECT_EQ(st.responses, 2U);
}

TEST_F(tls_server, the_client_refuses_to_send_what_is_not_one_message) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    auto c = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(c) << c.message();
    const std::vector<uint8_t> no_end = {0x84, 0x04, 0x00, 0x00};
    auto r = c->request(no_end);
    ASSERT_FALSE(r);
    EXPECT_NE(r.message().find("not one NTS message"), std::string::npos) << r.message();
    auto two = simple_request(1);
    const auto more = simple_request(2);
    two.insert(two.end(), more.begin(), more.end());
    EXPECT_FALSE(c->request(two));
    EXPECT_TRUE(c->is_open()) << "nothing was sent; the connection stays usable";
    EXPECT_TRUE(c->request(simple_request(3)));
}

TEST_F(tls_server, an_idle_connection_is_closed_at_the_idle_timeout) {
    auto cfg = config();
    cfg.idle_timeout = 200ms;
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    auto c = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(c) << c.message();
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.idle_timeouts == 1; });
    EXPECT_EQ(st.idle_timeouts, 1U);
    auto r = c->request(simple_request(0));
    ASSERT_FALSE(r) << "the server has sent close_notify";
    EXPECT_NE(r.message().find("close_notify"), std::string::npos) << r.message();
    EXPECT_EQ(wait_for(*srv, [](const server_stats& s) { return s.active_connections == 0; }).active_connections, 0U);
}

TEST_F(tls_server, a_request_sent_slowly_is_cut_at_the_idle_timeout) {
    auto cfg = config();
    cfg.idle_timeout = 300ms;
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    raw_tls_client c(srv->port(), raw_as("client_good"));
    ASSERT_TRUE(c.handshake_ok()) << c.handshake_error();
    // A record of 100 octets, sent one octet every 50 ms: arriving octets do
    // not extend the deadline.
    ASSERT_TRUE(c.write(std::vector<uint8_t>{0x84, 0x0a, 0x00, 100}));
    for (int i = 0; i < 100 && srv->stats().idle_timeouts == 0; ++i) {
        const uint8_t octet = 0;
        if (!c.write(std::span(&octet, 1))) {
            break;
        }
        std::this_thread::sleep_for(50ms);
    }
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.idle_timeouts == 1; });
    EXPECT_EQ(st.idle_timeouts, 1U);
    EXPECT_EQ(st.requests, 0U);
    EXPECT_EQ(c.read_message().ended, "close_notify");
}

TEST_F(tls_server, a_slowloris_handshake_is_dropped_while_a_good_client_is_served) {
    auto cfg = config();
    cfg.handshake_timeout = 300ms;
    auto srv = start(cfg);
    ASSERT_TRUE(srv);

    unique_fd slow = tcp_connect(srv->port());
    ASSERT_TRUE(slow);
    std::atomic<int> sent{0};
    std::atomic<bool> dropped{false};
    std::jthread trickle([&](const std::stop_token& stop) {
        // The start of a ClientHello record announcing 512 octets, one octet
        // every 50 ms, then zeros; never complete.
        const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};
        for (size_t i = 0; !stop.stop_requested(); ++i) {
            const uint8_t octet = i < sizeof(hello) ? hello[i] : 0;
            if (::send(slow.get(), &octet, 1, MSG_NOSIGNAL) != 1) {
                dropped = true;
                return;
            }
            ++sent;
            pollfd p{slow.get(), POLLIN, 0};
            if (::poll(&p, 1, 50) > 0) {
                char buf[64];
                if (::recv(slow.get(), buf, sizeof(buf), MSG_DONTWAIT) <= 0) {
                    dropped = true;
                    return;
                }
            }
        }
    });

    auto good = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(good) << good.message();
    auto r = good->request(simple_request(0));
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(*r, reply_for(protocol::ntske, simple_request(0)));

    const auto st = wait_for(*srv, [](const server_stats& s) { return s.handshake_timeouts == 1; });
    EXPECT_EQ(st.handshake_timeouts, 1U);
    EXPECT_EQ(st.handshakes_ok, 1U);
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!dropped && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(dropped) << "the server closed the slow connection";
    EXPECT_GT(sent.load(), 1) << "it was trickling, not silent";
    EXPECT_TRUE(good->is_open()) << "the good client keeps its connection";
    EXPECT_TRUE(good->request(simple_request(1)));
}

TEST_F(tls_server, the_connection_over_the_cap_is_closed_before_tls) {
    auto cfg = config();
    cfg.max_connections = 2;
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    unique_fd a = tcp_connect(srv->port());
    unique_fd b = tcp_connect(srv->port());
    ASSERT_TRUE(a && b);
    auto st = wait_for(*srv, [](const server_stats& s) { return s.active_connections == 2; });
    ASSERT_EQ(st.active_connections, 2U);

    auto over = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    EXPECT_FALSE(over);
    if (!over) {
        EXPECT_EQ(over.message().rfind("TLS handshake with 127.0.0.1:", 0), 0U) << over.message();
    }
    st = wait_for(*srv, [](const server_stats& s) { return s.over_cap == 1; });
    EXPECT_EQ(st.over_cap, 1U);
    EXPECT_EQ(st.accepted, 3U);

    a.reset(); // a slot frees when the server sees it go
    st = wait_for(*srv, [](const server_stats& s) { return s.active_connections == 1; });
    ASSERT_EQ(st.active_connections, 1U);
    auto in = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(in) << in.message();
    EXPECT_TRUE(in->request(simple_request(0)));
    EXPECT_EQ(srv->stats().over_cap, 1U);
}

TEST_F(tls_server, a_source_over_its_rate_is_closed_before_tls) {
    auto cfg = config();
    cfg.rate = {.per_second = 0.001, .burst = 3, .max_sources = 16};
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    for (int i = 0; i < 3; ++i) {
        auto c = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
        ASSERT_TRUE(c) << i << ": " << c.message();
        EXPECT_TRUE(c->request(simple_request(0)));
    }
    auto limited = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    EXPECT_FALSE(limited);
    auto st = wait_for(*srv, [](const server_stats& s) { return s.rate_limited == 1; });
    EXPECT_EQ(st.rate_limited, 1U);
    EXPECT_EQ(st.handshakes_ok, 3U);

    // Another source address has its own bucket.
    unique_fd other = tcp_connect(srv->port(), "127.0.0.2");
    if (!other) {
        GTEST_SKIP() << "cannot bind 127.0.0.2 here";
    }
    st = wait_for(*srv, [](const server_stats& s) { return s.accepted == 5 && s.active_connections == 1; });
    EXPECT_EQ(st.accepted, 5U);
    EXPECT_EQ(st.active_connections, 1U) << "held in its handshake, not refused";
    EXPECT_EQ(st.rate_limited, 1U);
}

TEST_F(tls_server, the_handler_can_close_after_its_response) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    calls.close_after = true;
    auto c = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(c) << c.message();
    auto r = c->request(simple_request(0));
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(*r, reply_for(protocol::ntske, simple_request(0))) << "the response arrives before the close";
    auto again = c->request(simple_request(1));
    ASSERT_FALSE(again);
    EXPECT_NE(again.message().find("close_notify"), std::string::npos) << again.message();
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.active_connections == 0; });
    EXPECT_EQ(st.handler_closes, 1U);
    EXPECT_EQ(st.requests, 1U);
    EXPECT_EQ(st.responses, 1U);
}

TEST_F(tls_server, a_handler_that_throws_costs_its_connection_only) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    calls.throw_next = true;
    auto c = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(c) << c.message();
    EXPECT_FALSE(c->request(simple_request(0)));
    auto next = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(next) << next.message();
    EXPECT_TRUE(next->request(simple_request(1)));
    EXPECT_EQ(srv->stats().handler_errors, 1U);
}

TEST_F(tls_server, the_request_cap_closes_after_the_last_allowed_response) {
    auto cfg = config();
    cfg.max_requests_per_connection = 2;
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    auto c = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(c) << c.message();
    EXPECT_TRUE(c->request(simple_request(0)));
    EXPECT_TRUE(c->request(simple_request(1)));
    EXPECT_FALSE(c->request(simple_request(2)));
    const auto st = srv->stats();
    EXPECT_EQ(st.request_cap_closes, 1U);
    EXPECT_EQ(st.requests, 2U);
}

TEST_F(tls_server, reload_serves_the_new_certificate_to_new_connections_and_keeps_the_old_on_a_bad_file) {
    auto cfg = config();
    std::mutex m;
    std::vector<std::string> outcomes;
    cfg.on_reload = [&](const status& st) {
        const std::lock_guard lock(m);
        outcomes.push_back(st.ok() ? "ok" : st.message());
    };
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    auto before = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(before) << before.message();
    EXPECT_EQ(before->server().fingerprint, fingerprint(pki->server_a));

    write_file(test_dir / "server.pem", cert_pem(pki->server_b));
    write_file(test_dir / "server.key", key_pem(pki->server_b));
    srv->get().request_reload();
    auto st = wait_for(*srv, [](const server_stats& s) { return s.reloads_ok == 1; });
    ASSERT_EQ(st.reloads_ok, 1U);
    EXPECT_EQ(srv->get().last_reload_error(), "");

    auto after = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(after) << after.message();
    EXPECT_EQ(after->server().fingerprint, fingerprint(pki->server_b));
    auto r = before->request(simple_request(0));
    EXPECT_TRUE(r) << "a connection made before the reload goes on: " << r.message();

    write_file(test_dir / "server.pem", "not a certificate\n");
    srv->get().request_reload();
    st = wait_for(*srv, [](const server_stats& s) { return s.reloads_failed == 1; });
    ASSERT_EQ(st.reloads_failed, 1U);
    const std::string why = srv->get().last_reload_error();
    EXPECT_NE(why.find((test_dir / "server.pem").string()), std::string::npos) << why;
    EXPECT_NE(why.find("no start line"), std::string::npos) << "the OpenSSL reason: " << why;

    {
        const std::lock_guard lock(m);
        ASSERT_EQ(outcomes.size(), 2U);
        EXPECT_EQ(outcomes[0], "ok");
        EXPECT_EQ(outcomes[1], why);
    }
    auto still = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(still) << still.message();
    EXPECT_EQ(still->server().fingerprint, fingerprint(pki->server_b)) << "the last good context serves on";
}

TEST_F(tls_server, a_changed_file_is_reloaded_by_the_watch) {
    auto cfg = config();
    cfg.watch_interval = 20ms;
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    auto before = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(before) << before.message();
    EXPECT_EQ(before->server().fingerprint, fingerprint(pki->server_a));

    // Certificate first, key second: a watch between the two sees a pair that
    // does not match (a failed reload), the one after the key the new pair.
    write_file(test_dir / "server.pem", cert_pem(pki->server_b));
    write_file(test_dir / "server.key", key_pem(pki->server_b));
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.reloads_ok >= 1; });
    ASSERT_GE(st.reloads_ok, 1U);
    auto after = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(after) << after.message();
    EXPECT_EQ(after->server().fingerprint, fingerprint(pki->server_b));
}

TEST_F(tls_server, reload_called_directly_reports_the_file_and_keeps_serving) {
    auto s = server::create(config(), calls.make());
    ASSERT_TRUE(s) << s.message();
    write_file(test_dir / "server.key", key_pem(pki->server_b)); // not the key of server.pem
    auto st = s->reload();
    ASSERT_FALSE(st);
    EXPECT_NE(st.message().find("server.key (for certificate file "), std::string::npos) << st.message();
    EXPECT_NE(st.message().find("key values mismatch"), std::string::npos) << st.message();
    EXPECT_EQ(s->stats().reloads_failed, 1U);
    EXPECT_EQ(s->last_reload_error(), st.message());

    write_file(test_dir / "server.key", key_pem(pki->server_a));
    EXPECT_TRUE(s->reload().ok());
    EXPECT_EQ(s->last_reload_error(), "");
    EXPECT_EQ(s->stats().reloads_ok, 1U);
}

TEST_F(tls_server, create_names_what_is_wrong) {
    auto cfg = config();
    cfg.ca_file = (test_dir / "no-ca.pem").string();
    auto s = server::create(cfg, calls.make());
    ASSERT_FALSE(s);
    EXPECT_EQ(s.message().rfind("CA file " + cfg.ca_file + ": No such file or directory", 0), 0U) << s.message();

    auto bad_addr = config();
    bad_addr.listen_addresses = {"localhost"};
    auto a = server::create(bad_addr, calls.make());
    ASSERT_FALSE(a);
    EXPECT_NE(a.message().find("not a numeric"), std::string::npos) << a.message();

    auto no_room = config();
    no_room.max_message_size = 3;
    EXPECT_FALSE(server::create(no_room, calls.make()));

    auto too_long = config();
    too_long.session_lifetime = max_session_lifetime + 1s;
    auto t = server::create(too_long, calls.make());
    ASSERT_FALSE(t);
    EXPECT_EQ(t.message(), "TLS server: session_lifetime 86401 s is outside 0 to 86400 s (seeds/001 §2.1: at most 24 "
                           "hours)");
    EXPECT_FALSE(server::create(config(), handler{}));
}

// ------------------------------------------------ session resumption (§2.1)

/// One exchange on a new connection, offering `resume`; the connection's
/// server view and its ticket once closed.
struct exchange_result {
    peer server;
    session_ticket ticket;
};

std::optional<exchange_result> exchange(uint16_t port, const client_config& cfg, const session_ticket* resume) {
    auto c = client::connect("127.0.0.1", port, cfg, resume);
    if (!c) {
        ADD_FAILURE() << c.message();
        return std::nullopt;
    }
    const auto request = simple_request(1);
    auto r = c->request(request);
    if (!r) {
        ADD_FAILURE() << r.message();
        return std::nullopt;
    }
    EXPECT_EQ(*r, reply_for(cfg.alpn, request));
    EXPECT_TRUE(c->close().ok());
    return exchange_result{c->server(), c->ticket()};
}

/// exchange() without a session to offer, from a server that issues
/// tickets: a full handshake that brings one.
/// Whether `cfg`'s client gets an answer; the error of its request if not.
std::optional<std::string> refusal_of(uint16_t port, const client_config& cfg, const session_ticket* resume = nullptr) {
    auto c = client::connect("127.0.0.1", port, cfg, resume);
    if (!c) {
        return c.message();
    }
    // TLS 1.3: the client finishes first; a refusal shows on the first request.
    auto r = c->request(simple_request(7));
    return r ? std::nullopt : std::optional<std::string>(r.message());
}

std::optional<exchange_result> first_exchange(uint16_t port, const client_config& cfg) {
    auto r = exchange(port, cfg, nullptr);
    if (r) {
        EXPECT_FALSE(r->server.resumed);
        EXPECT_FALSE(r->ticket.empty()) << "no session ticket from a server with a session lifetime";
    }
    return r;
}

TEST_F(tls_server, without_a_session_lifetime_no_ticket_is_issued) {
    auto srv = start(config());
    ASSERT_TRUE(srv);
    const auto first = exchange(srv->port(), client_as("client_good"), nullptr);
    ASSERT_TRUE(first);
    EXPECT_FALSE(first->server.resumed);
    EXPECT_TRUE(first->ticket.empty()) << "the server sent a session ticket";
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.closed_by_peer == 1; });
    EXPECT_EQ(st.resumed, 0U);
}

TEST_F(tls_server, a_ticket_resumes_the_session_with_its_first_certificate_and_a_binding_of_its_own) {
    auto srv = start_resuming(60s);
    ASSERT_TRUE(srv);
    const auto first = first_exchange(srv->port(), client_as("client_good"));
    ASSERT_TRUE(first && !first->ticket.empty());

    const auto second = exchange(srv->port(), client_as("client_good"), &first->ticket);
    ASSERT_TRUE(second);
    EXPECT_TRUE(second->server.resumed);
    EXPECT_EQ(second->server.fingerprint, fingerprint(pki->server_a)) << "the server's certificate from the session";
    EXPECT_NE(second->server.session_binding, first->server.session_binding)
        << "a resumed connection exports a value of its own (platform attestation binds to it)";
    const auto who = calls.last_peer();
    ASSERT_TRUE(who);
    EXPECT_TRUE(who->resumed);
    EXPECT_EQ(who->subject, "CN=node-1,O=ptpsec test");
    EXPECT_EQ(who->fingerprint, fingerprint(pki->client_good));
    EXPECT_EQ(who->session_binding, second->server.session_binding);

    // Offered only where it came from: not to the other protocol, not with
    // another certificate of our own.
    auto tsr = exchange(srv->port(), client_as("client_good", protocol::ntstsr), &second->ticket);
    ASSERT_TRUE(tsr);
    EXPECT_FALSE(tsr->server.resumed);
    const auto as_other =
        client_with(make_identity({.cn = "node-2", .issuer = &pki->ca, .eku = "clientAuth"}), "node2");
    const auto third = exchange(srv->port(), as_other, &second->ticket);
    ASSERT_TRUE(third);
    EXPECT_FALSE(third->server.resumed);
    EXPECT_EQ(calls.last_peer()->subject, "CN=node-2,O=ptpsec test") << "the certificate sent, not the session's";

    const auto st = wait_for(*srv, [](const server_stats& s) { return s.closed_by_peer == 4; });
    EXPECT_EQ(st.handshakes_ok, 4U);
    EXPECT_EQ(st.resumed, 1U);
}

TEST_F(tls_server, a_ticket_opens_nothing_on_a_restarted_server_with_the_same_files) {
    // Stateful tickets: a ticket names a session kept in the memory of the
    // server that issued it, so there is no ticket key to steal or to carry
    // over. The same server started again on the same port, with the same
    // certificate and key (so that the client offers the ticket), resumes
    // none of the sessions of the one before.
    auto before = start_resuming(60s);
    ASSERT_TRUE(before);
    const uint16_t port = before->port();
    const auto first = first_exchange(port, client_as("client_good"));
    ASSERT_TRUE(first && !first->ticket.empty());
    const auto resumed = exchange(port, client_as("client_good"), &first->ticket);
    ASSERT_TRUE(resumed);
    ASSERT_TRUE(resumed->server.resumed) << "the ticket is offered and good where it came from";
    before.reset();
    auto c = config();
    c.session_lifetime = 60s;
    c.port = port;
    auto after = start(std::move(c));
    ASSERT_TRUE(after);
    ASSERT_EQ(after->port(), port);
    const auto again = exchange(port, client_as("client_good"), &resumed->ticket);
    ASSERT_TRUE(again);
    EXPECT_FALSE(again->server.resumed) << "a restarted server opened a ticket it never issued";
}

TEST_F(tls_server, a_reload_ends_the_sessions_issued_before_it) {
    auto srv = start_resuming(60s);
    ASSERT_TRUE(srv);
    const auto first = first_exchange(srv->port(), client_as("client_good"));
    ASSERT_TRUE(first && !first->ticket.empty());
    ASSERT_TRUE(srv->get().reload().ok());
    const auto second = exchange(srv->port(), client_as("client_good"), &first->ticket);
    ASSERT_TRUE(second);
    EXPECT_FALSE(second->server.resumed) << "a session begun before the reload was resumed";
    const auto third = exchange(srv->port(), client_as("client_good"), &second->ticket);
    ASSERT_TRUE(third);
    EXPECT_TRUE(third->server.resumed) << "the reloaded server's own tickets work";
}

TEST_F(tls_server, a_session_ends_its_lifetime_after_its_full_handshake_however_often_resumed) {
    auto srv = start_resuming(2s);
    ASSERT_TRUE(srv);
    const auto began = std::chrono::steady_clock::now();
    const auto first = first_exchange(srv->port(), client_as("client_good"));
    ASSERT_TRUE(first && !first->ticket.empty());
    std::this_thread::sleep_for(1s);
    const auto second = exchange(srv->port(), client_as("client_good"), &first->ticket);
    ASSERT_TRUE(second);
    EXPECT_TRUE(second->server.resumed);
    ASSERT_FALSE(second->ticket.empty()) << "the resumed session is offered again";
    std::this_thread::sleep_until(began + 3s);
    const auto third = exchange(srv->port(), client_as("client_good"), &second->ticket);
    ASSERT_TRUE(third);
    EXPECT_FALSE(third->server.resumed) << "a resumption renewed the session past its lifetime";
    EXPECT_FALSE(third->ticket.empty()) << "a full handshake brings a new ticket";
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.closed_by_peer == 3; });
    EXPECT_EQ(st.resumed, 1U);
}

TEST_F(tls_server, the_server_ends_a_session_at_its_lifetime_whatever_the_client_believes) {
    // A client that offers a ticket past its lifetime (OpenSSL's own client
    // would not: it reads the lifetime from the ticket; this one is told the
    // ticket is new) gets a full handshake: the server keeps the time itself.
    auto srv = start_resuming(1s);
    ASSERT_TRUE(srv);
    raw_options o = raw_as("client_good");
    raw_tls_client first(srv->port(), o);
    ASSERT_TRUE(first.handshake_ok()) << first.handshake_error();
    ASSERT_TRUE(first.write(simple_request(0)));
    ASSERT_FALSE(first.read_message().message.empty());
    const auto session = first.session(); // the ticket came before the response
    ASSERT_TRUE(session && SSL_SESSION_is_resumable(session.get()) == 1);

    // Within the lifetime the re-timed session resumes: the test's client
    // does offer it.
    SSL_SESSION_set_time(session.get(), std::time(nullptr));
    o.resume = session.get();
    raw_tls_client soon(srv->port(), o);
    ASSERT_TRUE(soon.handshake_ok()) << soon.handshake_error();
    EXPECT_TRUE(soon.resumed());

    std::this_thread::sleep_for(2500ms); // session times are whole seconds
    SSL_SESSION_set_time(session.get(), std::time(nullptr));
    raw_tls_client late(srv->port(), o);
    ASSERT_TRUE(late.handshake_ok()) << late.handshake_error();
    EXPECT_FALSE(late.resumed()) << "a session past its lifetime was resumed";
    ASSERT_TRUE(late.write(simple_request(1)));
    EXPECT_FALSE(late.read_message().message.empty()) << "the full handshake serves as usual";
}

TEST_F(tls_server, a_resumed_session_whose_client_certificate_has_expired_since_is_refused) {
    auto srv = start_resuming(60s);
    ASSERT_TRUE(srv);
    const auto as_brief = client_with(
        make_identity({.cn = "node-brief", .issuer = &pki->ca, .eku = "clientAuth", .not_after = 2}), "brief");
    const auto first = first_exchange(srv->port(), as_brief);
    ASSERT_TRUE(first && !first->ticket.empty());
    std::this_thread::sleep_for(3500ms); // past notAfter

    EXPECT_TRUE(refusal_of(srv->port(), as_brief, &first->ticket))
        << "the server answered a client whose certificate has expired";
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.client_cert_expired == 1; });
    EXPECT_EQ(st.client_cert_expired, 1U);
    EXPECT_EQ(st.resumed, 0U);
    EXPECT_EQ(st.requests, 1U) << "only the first connection's request reached the handler";
}

// ------------------------------------ certificate revocation lists (crl_file)

TEST_F(tls_server, a_client_with_a_new_crl_verifies_the_server_again_instead_of_resuming) {
    auto srv = start_resuming(1h);
    ASSERT_TRUE(srv);
    auto cfg = client_as("client_good");
    cfg.crl_file = test_dir / "client-side.crl";
    write_file(cfg.crl_file, test::crl_pem(pki->ca, {}));
    const auto first = first_exchange(srv->port(), cfg);
    ASSERT_TRUE(first);
    const auto again = exchange(srv->port(), cfg, &first->ticket);
    ASSERT_TRUE(again);
    EXPECT_TRUE(again->server.resumed) << "the same files: the session is offered";

    // The server's certificate revoked: the session made before is not
    // offered, and the full handshake finds the certificate on the CRL.
    write_file(cfg.crl_file, test::crl_pem(pki->ca, {&pki->server_a}));
    auto c = client::connect("127.0.0.1", srv->port(), cfg, &first->ticket);
    ASSERT_FALSE(c) << "resumed a session with a server whose certificate is revoked";
    EXPECT_NE(c.message().find("certificate revoked"), std::string::npos) << c.message();
}

TEST_F(tls_server, a_client_certificate_on_its_cas_crl_is_refused_and_counted_as_revoked) {
    const auto revoked = make_identity({.cn = "node-revoked", .issuer = &pki->ca, .eku = "clientAuth"});
    write_file(test_dir / "ca.crl", test::crl_pem(pki->ca, {&revoked}));
    auto cfg = config();
    cfg.crl_file = test_dir / "ca.crl";
    auto srv = start(cfg);
    ASSERT_TRUE(srv);

    const auto refused = refusal_of(srv->port(), client_with(revoked, "revoked"));
    ASSERT_TRUE(refused) << "the server answered a revoked certificate";
    EXPECT_NE(refused->find("certificate revoked"), std::string::npos) << *refused;
    EXPECT_EQ(refusal_of(srv->port(), client_as("client_good")), std::nullopt) << "a certificate not on the CRL";

    const auto st = wait_for(*srv, [](const server_stats& s) { return s.handshakes_failed == 1; });
    EXPECT_EQ(st.client_cert_revoked, 1U);
    EXPECT_EQ(st.client_cert_rejected, 0U);
    EXPECT_EQ(calls.count(), 1U) << "only the good client reached the handler";
}

TEST_F(tls_server, a_client_whose_ca_has_no_current_crl_is_refused) {
    // RFC 5280 §6.3.3: no CRL of the issuer, or one past its nextUpdate,
    // gives no answer on revocation; the server refuses rather than guess.
    for (const auto& [what, crl] : {std::pair{"a CRL past its nextUpdate", test::crl_pem(pki->ca, {}, -60, -7200)},
                                    std::pair{"only another CA's CRL", test::crl_pem(pki->other_ca, {})}}) {
        SCOPED_TRACE(what);
        write_file(test_dir / "ca.crl", crl);
        auto cfg = config();
        cfg.crl_file = test_dir / "ca.crl";
        auto srv = start(cfg);
        ASSERT_TRUE(srv);
        EXPECT_TRUE(refusal_of(srv->port(), client_as("client_good")));
        const auto st = wait_for(*srv, [](const server_stats& s) { return s.handshakes_failed == 1; });
        EXPECT_EQ(st.client_cert_rejected, 1U);
        EXPECT_EQ(st.client_cert_revoked, 0U);
    }
    EXPECT_EQ(calls.count(), 0U);
}

TEST_F(tls_server, a_new_crl_is_taken_by_the_watch_and_ends_the_sessions_begun_before_it) {
    write_file(test_dir / "ca.crl", test::crl_pem(pki->ca, {}));
    auto cfg = config();
    cfg.crl_file = test_dir / "ca.crl";
    cfg.session_lifetime = 60s;
    cfg.watch_interval = 20ms;
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    const auto first = first_exchange(srv->port(), client_as("client_good"));
    ASSERT_TRUE(first && !first->ticket.empty());

    write_file(test_dir / "ca.crl", test::crl_pem(pki->ca, {&pki->client_good}));
    const auto reloaded = wait_for(*srv, [](const server_stats& s) { return s.reloads_ok == 1; });
    ASSERT_EQ(reloaded.reloads_ok, 1U);
    const auto refused = refusal_of(srv->port(), client_as("client_good"), &first->ticket);
    ASSERT_TRUE(refused) << "a session begun before the certificate was revoked went on";
    EXPECT_NE(refused->find("certificate revoked"), std::string::npos) << *refused;
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.client_cert_revoked == 1; });
    EXPECT_EQ(st.client_cert_revoked, 1U);
    EXPECT_EQ(st.resumed, 0U);
}

TEST_F(tls_server, a_crl_file_without_a_crl_is_refused_with_its_name) {
    for (const auto& [what, content] :
         {std::pair{"missing", std::string()}, std::pair{"a certificate, no CRL", cert_pem(pki->ca)}}) {
        SCOPED_TRACE(what);
        const fs::path crl = test_dir / "ca.crl";
        fs::remove(crl);
        if (!content.empty()) {
            write_file(crl, content);
        }
        auto cfg = config();
        cfg.crl_file = crl;
        auto s = server::create(cfg, calls.make());
        ASSERT_FALSE(s);
        EXPECT_EQ(s.message().rfind("CRL file " + crl.string() + ": no CRL could be read", 0), 0U) << s.message();
    }
}

TEST_F(tls_server, each_refused_handshake_is_reported_with_the_client_the_counter_and_the_reason) {
    const auto revoked = make_identity({.cn = "node-revoked", .issuer = &pki->ca, .eku = "clientAuth"});
    write_file(test_dir / "ca.crl", test::crl_pem(pki->ca, {&revoked}));
    auto cfg = config();
    cfg.crl_file = test_dir / "ca.crl";
    cfg.on_refused = calls.refusal_hook();
    auto srv = start(cfg);
    ASSERT_TRUE(srv);

    EXPECT_TRUE(refusal_of(srv->port(), client_with(revoked, "revoked")));
    EXPECT_TRUE(refusal_of(srv->port(), client_as("client_other_ca")));
    EXPECT_TRUE(refusal_of(srv->port(), client_as("client_expired")));
    {
        raw_tls_client no_cert(srv->port(), raw_options{}); // no certificate
        if (no_cert.handshake_ok()) {
            no_cert.write(simple_request(0));
            (void)no_cert.read_message();
        }
    }
    {
        auto o = raw_as("client_good");
        o.alpn = {"h2"};
        raw_tls_client h2(srv->port(), o);
        EXPECT_FALSE(h2.handshake_ok());
    }
    EXPECT_EQ(refusal_of(srv->port(), client_as("client_good")), std::nullopt);
    {
        // Connected and gone without a word: counted, not reported (port
        // probes do this).
        const unique_fd probe = tcp_connect(srv->port());
    }
    const auto st = wait_for(*srv, [](const server_stats& s) { return s.handshakes_failed == 6; });
    ASSERT_EQ(st.handshakes_failed, 6U);
    EXPECT_EQ(st.handshake_other, 1U);

    const auto reports = calls.refused();
    ASSERT_EQ(reports.size(), 5U);
    struct expected {
        const char* counter;
        const char* reason;
        const char* subject; ///< a part of it; "" for none
    };
    const expected want[] = {
        {"client_cert_revoked", "certificate verify failed: certificate revoked", "CN=node-revoked"},
        {"client_cert_rejected", "certificate verify failed: unable to get local issuer certificate", "CN=stranger"},
        {"client_cert_expired", "certificate verify failed: certificate has expired", "CN=node-old"},
        {"no_client_cert", "peer did not return a certificate", ""},
        {"alpn_refused", "no application protocol", ""},
    };
    for (size_t i = 0; i < reports.size(); ++i) {
        SCOPED_TRACE(want[i].counter);
        const auto& [r, counter] = reports[i];
        EXPECT_EQ(counter, want[i].counter);
        EXPECT_EQ(r.address, "127.0.0.1");
        EXPECT_NE(r.port, 0);
        EXPECT_NE(r.reason.find(want[i].reason), std::string::npos) << r.reason;
        if (*want[i].subject == '\0') {
            EXPECT_EQ(r.subject, "");
        } else {
            EXPECT_NE(r.subject.find(want[i].subject), std::string::npos) << r.subject;
        }
        EXPECT_EQ(r.unreported, 0U);
    }
    EXPECT_EQ(to_string(reports[0].r),
              "127.0.0.1 port " + std::to_string(reports[0].r.port) +
                  " failed (client_cert_revoked): certificate verify failed: certificate revoked; certificate subject "
                  "\"CN=node-revoked,O=ptpsec test\" (unverified)");
    EXPECT_EQ(to_string(reports[3].r), "127.0.0.1 port " + std::to_string(reports[3].r.port) +
                                           " failed (no_client_cert): peer did not return a certificate");
    const auto last = srv->get().last_refusal();
    ASSERT_TRUE(last);
    EXPECT_EQ(last->counter, "alpn_refused");
    EXPECT_EQ(last->port, reports.back().r.port);
    EXPECT_EQ(calls.count(), 1U) << "only the good client reached the handler";
}

TEST_F(tls_server, refusal_reports_keep_to_their_rate_and_count_the_rest) {
    auto cfg = config();
    cfg.on_refused = calls.refusal_hook();
    cfg.refusal_reports_per_second = 2;
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    const auto refuse = [&] { EXPECT_TRUE(refusal_of(srv->port(), client_as("client_other_ca"))); };
    for (int i = 0; i < 5; ++i) {
        refuse();
    }
    auto st = wait_for(*srv, [](const server_stats& s) { return s.handshakes_failed == 5; });
    ASSERT_EQ(st.client_cert_rejected, 5U);
    const size_t first_reports = calls.refused().size();
    // Five refusals within well under a second (a handshake takes
    // milliseconds), two reports a second.
    EXPECT_EQ(first_reports, 2U);

    std::this_thread::sleep_for(1100ms); // a new second
    refuse();
    st = wait_for(*srv, [](const server_stats& s) { return s.handshakes_failed == 6; });
    ASSERT_EQ(st.client_cert_rejected, 6U);
    const auto reports = calls.refused();
    ASSERT_EQ(reports.size(), first_reports + 1);
    uint64_t accounted = 0;
    for (const auto& [r, counter] : reports) {
        accounted += 1 + r.unreported;
    }
    EXPECT_EQ(accounted, 6U) << "each refusal reported or counted in a later report";
    EXPECT_EQ(reports.back().r.unreported, 5U - first_reports);
}

TEST_F(tls_server, a_stop_before_run_makes_run_return) {
    auto s = server::create(config(), calls.make());
    ASSERT_TRUE(s) << s.message();
    s->stop();
    EXPECT_TRUE(s->run().ok());
}

TEST_F(tls_server, the_default_listener_is_dual_stack) {
    auto cfg = config();
    cfg.listen_addresses.clear();
    auto srv = start(cfg);
    ASSERT_TRUE(srv);
    auto v4 = client::connect("127.0.0.1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(v4) << v4.message();
    ASSERT_TRUE(v4->request(simple_request(0)));
    ASSERT_TRUE(calls.last_peer());
    EXPECT_EQ(calls.last_peer()->address, "127.0.0.1") << "IPv4-mapped shown as IPv4";

    unique_fd probe(::socket(AF_INET6, SOCK_STREAM, 0));
    sockaddr_in6 lo{};
    lo.sin6_family = AF_INET6;
    lo.sin6_addr = in6addr_loopback;
    if (!probe || ::bind(probe.get(), reinterpret_cast<sockaddr*>(&lo), sizeof(lo)) != 0) {
        GTEST_SKIP() << "no IPv6 loopback here";
    }
    auto v6 = client::connect("::1", srv->port(), client_as("client_good"));
    ASSERT_TRUE(v6) << v6.message();
    EXPECT_EQ(v6->endpoint(), "[::1]:" + std::to_string(srv->port()));
    ASSERT_TRUE(v6->request(simple_request(0)));
    EXPECT_EQ(calls.last_peer()->address, "::1");
    EXPECT_EQ(calls.last_peer()->remote().rfind("[::1]:", 0), 0U);
}

} // namespace
} // namespace ptpsec::tls
