#pragma once

// Internal to control/tls (server and client): owning handles for OpenSSL
// objects and sockets, the TLS profile both sides build their SSL_CTX with,
// a socket BIO that cannot raise SIGPIPE, peer descriptions and error text.
// Not an API for the layers above: include server.h or client.h.

#include <control/tls/peer.h>
#include <drivers/base/result.h>
#include <drivers/base/unique_fd.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <memory>
#include <string>

namespace ptpsec::tls::detail {

struct ssl_ctx_free {
    void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
struct ssl_free {
    void operator()(SSL* p) const noexcept { SSL_free(p); }
};
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_free>;
using ssl_ptr = std::unique_ptr<SSL, ssl_free>;

using ptpsec::unique_fd;

/// The files a TLS endpoint is configured with (PEM).
struct credential_files {
    std::string cert_file; ///< own certificate, chain allowed after it
    std::string key_file;  ///< own private key
    std::string ca_file;   ///< the CA(s) the peer's certificate must chain to
    /// CRLs (PEM) of the CAs that issue peers' certificates; empty: none
    /// checked. Given, every peer certificate is looked up in its issuer's
    /// CRL, and one whose issuer has no CRL here, or a stale one, is refused.
    std::string crl_file;
};

/// Records the server's callbacks leave on an SSL (its app data) while a
/// handshake runs.
struct handshake_notes {
    bool alpn_refused = false;
    bool alpn_absent = false; ///< refused because the ClientHello had no ALPN at all
    /// The subject of a client certificate that failed verification (OpenSSL
    /// keeps no peer certificate then), at most max_noted_subject octets.
    std::string rejected_subject;
};

/// Longest rejected_subject kept: a refused client chooses what it says.
inline constexpr size_t max_noted_subject = 256;

/// The subject of `cert`, RFC 2253 (control characters and non-ASCII
/// escaped); false if OpenSSL fails (its reason left in the queue).
bool subject_text(const X509* cert, std::string& out);

/// The server profile (seeds/001 §2.1, RFC 8915 §3): TLS 1.3 only; ALPN
/// "ntske/1" or "ntstsr/1", a ClientHello without ALPN or with neither
/// refused with no_application_protocol; a client certificate required and
/// verified against `files.ca_file` (§2.5.4). With a `session_lifetime` of
/// zero no session tickets (every connection is a full handshake, so every
/// client certificate is verified against the current CA and clock);
/// otherwise one stateful ticket per full handshake, its session kept in
/// this context's cache for that long at most (§2.1: resumption). Callbacks write to the
/// handshake_notes set as the SSL's app data. Errors name the file and the
/// OpenSSL reason.
result<ssl_ctx_ptr> server_context(const credential_files& files, std::chrono::seconds session_lifetime);

/// The client profile: TLS 1.3 only, the server verified against
/// `files.ca_file`, own certificate and key presented.
result<ssl_ctx_ptr> client_context(const credential_files& files);

/// Attaches `fd` to `ssl` through a socket BIO that writes with
/// MSG_NOSIGNAL: a peer that has gone away makes a write fail with EPIPE
/// instead of killing the process (the daemon owns signal dispositions).
status attach_socket(SSL* ssl, int fd);

/// The reasons in this thread's OpenSSL error queue, root cause first,
/// joined with ": "; empties the queue.
std::string openssl_reasons();

/// Why a handshake failed.
enum class handshake_failure : uint8_t {
    protocol_version, ///< the peer offered no TLS 1.3
    alpn,             ///< no ALPN, or neither ntske/1 nor ntstsr/1
    no_client_cert,   ///< the client sent no certificate
    cert_expired,     ///< the certificate is expired or not yet valid
    cert_revoked,     ///< the certificate is on its CA's CRL
    cert_rejected,    ///< any other verification failure (unknown CA, ...)
    peer_alert,       ///< the peer aborted with an alert (it refused us)
    other,            ///< transport closed, not TLS, internal errors
};

/// Classifies a failed handshake from the notes, the verify result and the
/// first error in the queue (which it leaves in place).
handshake_failure classify_handshake_failure(const SSL* ssl, const handshake_notes& notes);

/// "certificate verify failed: unable to get local issuer certificate",
/// "tlsv13 alert certificate required", "unexpected eof while reading";
/// empties the error queue.
std::string failure_reason(const SSL* ssl, int ssl_error);

/// Address and port of a socket address; IPv4-mapped IPv6 shown as IPv4.
void split_address(const sockaddr_storage& sa, std::string& address, uint16_t& port);

/// SHA-256 of the DER certificate into `out`; false if there is none or
/// OpenSSL fails (its reason left in the queue).
bool certificate_fingerprint(const X509* cert, std::array<uint8_t, 32>& out);

/// The peer of an established connection: ALPN, certificate, the session's
/// exporter value, remote address.
result<peer> describe_peer(SSL* ssl, const sockaddr_storage& remote);

} // namespace ptpsec::tls::detail
