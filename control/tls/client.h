#pragma once

// The client side of an NTS-KE / NTS-TSR TLS connection, for the node role
// (a PTP instance asking for keys, a grantor registering; seeds/001 §2.1,
// §2.2) and for tests: blocking calls, each bounded by a deadline. TLS 1.3
// only, one ALPN protocol offered, the client certificate presented, the
// server verified against a CA and an expected name. Requests and responses
// are NTS messages framed as the server frames them (framing.h); the
// connection is reused for further requests until close() or the server's
// close_notify (§2.1).

#include <control/tls/file_signature.h>
#include <control/tls/peer.h>
#include <drivers/base/result.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

// OpenSSL's SSL_SESSION, without its headers.
struct ssl_session_st;

namespace ptpsec::tls {

struct client_config {
    std::string ca_file;   ///< CA(s) the server certificate must chain to (PEM)
    std::string cert_file; ///< own certificate (PEM), chain allowed
    std::string key_file;  ///< own private key (PEM)
    /// CRLs (PEM) of the CAs in ca_file that issue server certificates;
    /// empty: none checked. Given, a server certificate on its CA's CRL is
    /// refused ("certificate revoked"), and so is one whose CA has no CRL in
    /// the file or one past its nextUpdate. Read at every connect(), like
    /// the other files.
    std::string crl_file;
    protocol alpn = protocol::ntske;
    /// The name the server certificate must carry: a DNS name (checked
    /// against its SANs, and sent as SNI) or an IP address literal (checked
    /// against its IP SANs). Empty: the host given to connect().
    std::string server_name;
    /// Bounds connect() (resolution excepted: give numeric hosts where that
    /// matters), each request() and close().
    std::chrono::milliseconds timeout{5000};
    /// Octets of one response, End of Message included.
    size_t max_message_size = size_t{64} * 1024;
};

/// The CA and CRL files of a client_config, in that order.
using trust_files_signatures = std::array<detail::file_signature, 2>;

/// A session the server issued a ticket for (seeds/001 §2.1, RFC 8446
/// §4.6.1), to offer on the next connect() to the same server: the server
/// may then skip the certificate exchange. Copies share it. Offered only
/// to the endpoint and ALPN protocol it came from, with the own
/// certificate it was made with, while the CA and CRL files are those its
/// server certificate was verified against (a new CRL makes the next
/// connection a full handshake that checks it); a server that no longer
/// takes it (expired, reloaded) answers with a full handshake.
class session_ticket {
public:
    session_ticket() = default;
    bool empty() const noexcept { return !_session; }

private:
    friend class client;
    std::shared_ptr<ssl_session_st> _session;
    std::string _endpoint;
    protocol _alpn = protocol::ntske;
    std::array<uint8_t, 32> _own_certificate{}; ///< SHA-256 of the client certificate
    /// The CA and CRL files the server certificate was verified against:
    /// changed files make the next connect() verify again.
    trust_files_signatures _trust_files{};
};

class client {
public:
    /// TCP connect to each address of `host` in turn, then the TLS handshake.
    /// Errors name the endpoint and what failed: "TLS handshake with
    /// 127.0.0.1:4460: certificate verify failed: unable to get local issuer
    /// certificate". In TLS 1.3 the server verifies the client certificate
    /// after the client has finished, so a server refusing it shows as an
    /// error of the first request ("... the server ended the session:
    /// tlsv13 alert certificate required").
    ///
    /// `resume`: a session_ticket() of an earlier connection, offered if it
    /// fits (server().resumed tells whether the server took it).
    static result<client> connect(std::string_view host, uint16_t port, const client_config& config,
                                  const session_ticket* resume = nullptr);
    /// The files of `config` read as connect() reads them, without
    /// connecting (`ptpsec-controld --check`).
    static status check(const client_config& config);

    client(client&&) noexcept;
    client& operator=(client&&) noexcept;
    client(const client&) = delete;
    client& operator=(const client&) = delete;
    /// Sends close_notify if still open (without waiting) and closes.
    ~client();

    /// Sends one NTS message (it must be exactly one: records ending with End
    /// of Message) and reads one response. Any error closes the connection.
    result<std::vector<uint8_t>> request(std::span<const uint8_t> message);

    /// The two halves of request(), for messages that have no response of
    /// their own (seeds/001 §3.5 Registration Revoke, §3.6 Heartbeat): send
    /// one message; read one message (an Error the server sent instead, or
    /// the end of the session). Errors close the connection.
    status send(std::span<const uint8_t> message);
    result<std::vector<uint8_t>> receive();

    /// close_notify, then the server's close_notify or end of stream, within
    /// the timeout. The socket is closed in any case.
    status close();

    bool is_open() const noexcept;
    /// The server, as verified in the handshake.
    const peer& server() const noexcept;
    /// The session to offer on a later connect(): empty until the server
    /// has sent a ticket (it does after the handshake, so ask after a
    /// response), and from a server that issues none.
    session_ticket ticket() const;
    /// "127.0.0.1:4460", "[::1]:4460" or "host:port" as given.
    const std::string& endpoint() const noexcept;

private:
    struct state;
    explicit client(std::unique_ptr<state> s) noexcept;
    std::unique_ptr<state> _s;
};

} // namespace ptpsec::tls
