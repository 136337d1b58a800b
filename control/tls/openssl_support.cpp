#include <control/tls/openssl_support.h>

#include <control/tls/server.h>

#include <fmt/format.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/tls1.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

namespace ptpsec::tls::detail {

namespace {

struct bio_free {
    void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using bio_ptr = std::unique_ptr<BIO, bio_free>;

struct general_names_free {
    void operator()(GENERAL_NAMES* n) const noexcept { GENERAL_NAMES_free(n); }
};

/// The socket BIO's write with MSG_NOSIGNAL; everything else is the socket
/// BIO's own (read, EOF tracking, ctrl).
int write_nosignal(BIO* b, const char* data, int len) {
    int fd = -1;
    BIO_get_fd(b, &fd);
    BIO_clear_retry_flags(b);
    const ssize_t n = ::send(fd, data, static_cast<size_t>(len), MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        BIO_set_retry_write(b);
    }
    return static_cast<int>(n);
}

/// Built once and never changed; OpenSSL only reads it.
const BIO_METHOD* nosignal_socket_method() {
    static const BIO_METHOD* const method = [] {
        const BIO_METHOD* base = BIO_s_socket();
        BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOCKET, "socket, MSG_NOSIGNAL");
        if (m == nullptr) {
            return static_cast<BIO_METHOD*>(nullptr);
        }
        BIO_meth_set_write(m, write_nosignal);
        BIO_meth_set_read(m, BIO_meth_get_read(base));
        BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(base));
        BIO_meth_set_create(m, BIO_meth_get_create(base));
        BIO_meth_set_destroy(m, BIO_meth_get_destroy(base));
        return m;
    }();
    return method;
}

/// RFC 7301 §3.1: the client's list is a sequence of length-prefixed IDs.
/// The first one we speak, in the client's order, wins.
int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                unsigned int in_len, void* /*arg*/) {
    size_t i = 0;
    while (i < in_len) {
        const size_t n = in[i];
        if (n == 0 || i + 1 + n > in_len) {
            break;
        }
        const std::string_view id(reinterpret_cast<const char*>(in + i + 1), n);
        if (protocol_from_alpn(id)) {
            *out = in + i + 1;
            *out_len = static_cast<unsigned char>(n);
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    if (auto* notes = static_cast<handshake_notes*>(SSL_get_app_data(ssl)); notes != nullptr) {
        notes->alpn_refused = true;
    }
    // OpenSSL answers ALERT_FATAL from this callback with no_application_protocol.
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/// The ALPN select callback is not called when the ClientHello carries no
/// ALPN extension; RFC 8915 §4 and seeds/001 §2.1 make ALPN integral, so a
/// hello without it is refused here with the same alert.
int require_alpn(SSL* ssl, int* alert, void* /*arg*/) {
    const unsigned char* ext = nullptr;
    size_t ext_len = 0;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext, &ext_len) == 1) {
        return SSL_CLIENT_HELLO_SUCCESS;
    }
    if (auto* notes = static_cast<handshake_notes*>(SSL_get_app_data(ssl)); notes != nullptr) {
        notes->alpn_refused = true;
        notes->alpn_absent = true;
    }
    *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
    return SSL_CLIENT_HELLO_ERROR;
}

/// Verify callback of the server: notes the subject of the client
/// certificate that failed, for the refusal report; the verdict stays
/// OpenSSL's.
int note_rejected_certificate(int preverify_ok, X509_STORE_CTX* store) {
    if (preverify_ok == 1) {
        return 1;
    }
    auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* notes = ssl != nullptr ? static_cast<handshake_notes*>(SSL_get_app_data(ssl)) : nullptr;
    const X509* leaf = X509_STORE_CTX_get0_cert(store);
    if (notes != nullptr && leaf != nullptr && notes->rejected_subject.empty()) {
        try {
            std::string text;
            if (subject_text(leaf, text)) {
                text.resize(std::min(text.size(), max_noted_subject));
                notes->rejected_subject = std::move(text);
            } else {
                ERR_clear_error(); // the verify failure is what is reported
            }
        } catch (...) { // a C callback: the subject is only for the log
        }
    }
    return preverify_ok;
}

/// What both ends share: TLS 1.3 and nothing older (RFC 8915 §3, seeds/001
/// §2.1), no session cache or tickets, non-blocking friendly writes.
result<ssl_ctx_ptr> new_context(const SSL_METHOD* method, std::string_view role) {
    ERR_clear_error();
    ssl_ctx_ptr ctx(SSL_CTX_new(method));
    if (!ctx) {
        return error{fmt::format("creating the TLS {} context: {}", role, openssl_reasons())};
    }
    if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1) {
        return error{fmt::format("restricting the TLS {} context to TLS 1.3: {}", role, openssl_reasons())};
    }
    // Partial writes: a response larger than the socket buffer goes out in
    // pieces without a copy. Released buffers: an idle connection holds no
    // 34 KiB of record buffers.
    // No auto chain: the chain sent is the certificate file's, not one built
    // from the CA file (which says whom we trust, not what we present).
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                    SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    return ctx;
}

status load_credentials(SSL_CTX* ctx, const credential_files& files) {
    if (files.cert_file.empty() || files.key_file.empty() || files.ca_file.empty()) {
        return error{"TLS needs a certificate file, a private key file and a CA file (seeds/001 §2.5.4)"};
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, files.cert_file.c_str()) != 1) {
        return error{fmt::format("certificate file {}: {}", files.cert_file, openssl_reasons())};
    }
    // Also checks that the key belongs to the certificate ("key values mismatch").
    if (SSL_CTX_use_PrivateKey_file(ctx, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        return error{fmt::format("private key file {} (for certificate file {}): {}", files.key_file, files.cert_file,
                                 openssl_reasons())};
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        return error{fmt::format("private key file {} does not belong to certificate file {}: {}", files.key_file,
                                 files.cert_file, openssl_reasons())};
    }
    if (SSL_CTX_load_verify_locations(ctx, files.ca_file.c_str(), nullptr) != 1) {
        return error{fmt::format("CA file {}: {}", files.ca_file, openssl_reasons())};
    }
    if (!files.crl_file.empty()) {
        // The CRLs go into the context's store with the CAs; the flag makes
        // every verification look the leaf up in its issuer's CRL (RFC 5280
        // §6.3): revoked, or no current CRL of the issuer, fails.
        X509_STORE* store = SSL_CTX_get_cert_store(ctx);
        X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
        if (lookup == nullptr || X509_load_crl_file(lookup, files.crl_file.c_str(), X509_FILETYPE_PEM) <= 0) {
            return error{fmt::format("CRL file {}: no CRL could be read: {}", files.crl_file, openssl_reasons())};
        }
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    return ok_status();
}

std::string asn1_text(const ASN1_STRING* s) {
    return {reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<size_t>(ASN1_STRING_length(s))};
}

std::string ip_text(const ASN1_OCTET_STRING* s) {
    char buf[INET6_ADDRSTRLEN] = {};
    const int len = ASN1_STRING_length(s);
    const int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : AF_UNSPEC;
    if (family == AF_UNSPEC || ::inet_ntop(family, ASN1_STRING_get0_data(s), buf, sizeof(buf)) == nullptr) {
        return fmt::format("<{}-octet address>", len);
    }
    return buf;
}

/// Seconds from now to the end of `cert`'s validity, less one so that a
/// session ending then ends before the certificate does (session times
/// count whole seconds); 0 if it cannot be read or has passed.
long seconds_left(const X509* cert) {
    int days = 0;
    int secs = 0;
    if (cert == nullptr || ASN1_TIME_diff(&days, &secs, nullptr, X509_get0_notAfter(cert)) != 1) {
        return 0;
    }
    return std::max(0L, days * 86400L + secs - 1);
}

/// A new session (a full handshake's; resumptions get none, below) ends its
/// lifetime after the handshake, or when the client's certificate ends if
/// that is sooner: the certificate was verified against the clock of the
/// handshake, and a resumption does not look at it again.
int end_session_with_certificate(SSL* ssl, void* /*arg*/) {
    SSL_SESSION* session = SSL_get_session(ssl);
    if (session == nullptr) {
        return 1;
    }
    const long left = seconds_left(SSL_SESSION_get0_peer(session));
    if (left < SSL_SESSION_get_timeout(session)) {
        SSL_SESSION_set_timeout(session, left);
    }
    return 1;
}

/// A resumed session gets no new ticket: it then ends its lifetime after the
/// full handshake that began it, however often it is resumed (seeds/001
/// §2.1), and the cache holds one session per client. The server decides on
/// tickets after the client's Finished; whether the session was resumed is
/// known once the ClientHello has been read.
void no_ticket_on_resumption(const SSL* ssl, int where, int /*ret*/) {
    if ((where & SSL_CB_ACCEPT_LOOP) != 0 && SSL_session_reused(ssl) == 1) {
        // The callback's SSL is the connection's own, not a const object.
        SSL_set_num_tickets(const_cast<SSL*>(ssl), 0);
    }
}

} // namespace

result<ssl_ctx_ptr> server_context(const credential_files& files, std::chrono::seconds session_lifetime) {
    auto ctx = new_context(TLS_server_method(), "server");
    if (!ctx) {
        return ctx;
    }
    SSL_CTX* c = ctx->get();
    if (auto st = load_credentials(c, files); !st) {
        return st.err();
    }
    // The CertificateRequest names the accepted CAs, so a client holding
    // several certificates can pick the right one.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca_file.c_str());
    if (names == nullptr) {
        return error{fmt::format("CA file {}: no CA names could be read: {}", files.ca_file, openssl_reasons())};
    }
    SSL_CTX_set_client_CA_list(c, names);
    // seeds/001 §2.1, §2.5.4: the client always authenticates with a certificate.
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, note_rejected_certificate);
    if (session_lifetime.count() <= 0) {
        // No resumption (seeds/001 §2.1 makes it optional): each connection
        // is verified in full against the CA and the clock of now.
        SSL_CTX_set_num_tickets(c, 0);
        SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
    } else {
        // Resumption (seeds/001 §2.1, RFC 8446 §2.2): one ticket per full
        // handshake. The ticket is a session ID; the session (its secret and
        // the client's certificate) stays in this context's cache, so a
        // reload (a new context) ends every session begun before it, no
        // ticket key exists to be stolen, and a resumption decodes nothing
        // (a stateless ticket carries the whole session, whose client
        // certificate OpenSSL 3.0 would parse again on each resumption).
        // psk_dhe_ke only: a resumed handshake still makes a fresh X25519
        // share. No early data.
        // Resuming a session with a verified client certificate needs a
        // session ID context, else OpenSSL refuses with an internal error.
        static constexpr unsigned char sid_context[] = "ptpsec NTS-KE";
        if (SSL_CTX_set_session_id_context(c, sid_context, sizeof(sid_context) - 1) != 1) {
            return error{"setting the TLS session ID context: " + openssl_reasons()};
        }
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(c, max_cached_sessions);
        SSL_CTX_set_options(c, SSL_OP_NO_TICKET); // TLS 1.3: stateful tickets
        SSL_CTX_set_num_tickets(c, 1);
        SSL_CTX_set_session_ticket_cb(c, end_session_with_certificate, nullptr, nullptr);
        SSL_CTX_set_info_callback(c, no_ticket_on_resumption);
        SSL_CTX_set_timeout(c, static_cast<long>(session_lifetime.count()));
        SSL_CTX_clear_options(c, SSL_OP_ALLOW_NO_DHE_KEX);
        SSL_CTX_set_max_early_data(c, 0);
    }
    SSL_CTX_set_alpn_select_cb(c, select_alpn, nullptr);
    SSL_CTX_set_client_hello_cb(c, require_alpn, nullptr);
    return ctx;
}

result<ssl_ctx_ptr> client_context(const credential_files& files) {
    auto ctx = new_context(TLS_client_method(), "client");
    if (!ctx) {
        return ctx;
    }
    if (auto st = load_credentials(ctx->get(), files); !st) {
        return st.err();
    }
    SSL_CTX_set_verify(ctx->get(), SSL_VERIFY_PEER, nullptr);
    return ctx;
}

status attach_socket(SSL* ssl, int fd) {
    const BIO_METHOD* method = nosignal_socket_method();
    if (method == nullptr) {
        return error{"creating the socket BIO method: " + openssl_reasons()};
    }
    BIO* bio = BIO_new(method);
    if (bio == nullptr) {
        return error{"creating a socket BIO: " + openssl_reasons()};
    }
    BIO_set_fd(bio, fd, BIO_NOCLOSE);
    SSL_set_bio(ssl, bio, bio); // the SSL owns it from here
    return ok_status();
}

std::string openssl_reasons() {
    std::string out;
    std::string wrappers;
    unsigned long e = 0;
    while ((e = ERR_get_error()) != 0) {
        std::string piece;
        // "we came from here" reasons ("system lib", "PEM lib") only say which
        // library passed the error up: kept only if nothing else is said.
        const bool wrapper = ERR_COMMON_ERROR(e) && (ERR_GET_REASON(e) & ((1 << ERR_RFLAGS_OFFSET) - 1)) < 256;
        if (ERR_SYSTEM_ERROR(e)) {
            piece = std::strerror(ERR_GET_REASON(e));
        } else if (const char* reason = ERR_reason_error_string(e); reason != nullptr) {
            piece = reason;
        } else {
            piece = fmt::format("OpenSSL error {:#x}", e);
        }
        std::string& into = wrapper ? wrappers : out;
        if (into.find(piece) == std::string::npos) {
            into += into.empty() ? "" : ": ";
            into += piece;
        }
    }
    if (out.empty()) {
        out = wrappers;
    }
    return out.empty() ? std::string("no reason given by OpenSSL") : out;
}

handshake_failure classify_handshake_failure(const SSL* ssl, const handshake_notes& notes) {
    if (notes.alpn_refused) {
        return handshake_failure::alpn;
    }
    const unsigned long e = ERR_peek_error();
    if (e == 0 || ERR_GET_LIB(e) != ERR_LIB_SSL) {
        return handshake_failure::other;
    }
    const int reason = ERR_GET_REASON(e);
    switch (reason) {
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
        return handshake_failure::protocol_version;
    case SSL_R_NO_APPLICATION_PROTOCOL:
        return handshake_failure::alpn;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return handshake_failure::no_client_cert;
    case SSL_R_CERTIFICATE_VERIFY_FAILED: {
        const long v = SSL_get_verify_result(ssl);
        if (v == X509_V_ERR_CERT_HAS_EXPIRED || v == X509_V_ERR_CERT_NOT_YET_VALID) {
            return handshake_failure::cert_expired;
        }
        if (v == X509_V_ERR_CERT_REVOKED) {
            return handshake_failure::cert_revoked;
        }
        return handshake_failure::cert_rejected;
    }
    default:
        break;
    }
    // Reasons from SSL_AD_REASON_OFFSET up are alerts the peer sent.
    return reason >= SSL_AD_REASON_OFFSET ? handshake_failure::peer_alert : handshake_failure::other;
}

std::string failure_reason(const SSL* ssl, int ssl_error) {
    const int saved_errno = errno;
    const unsigned long e = ERR_peek_error();
    if (e != 0) {
        const bool verify = ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED;
        const char* reason = ERR_reason_error_string(e);
        std::string text = reason != nullptr ? reason : fmt::format("OpenSSL error {:#x}", e);
        ERR_clear_error();
        if (verify) {
            text += ": ";
            text += X509_verify_cert_error_string(SSL_get_verify_result(ssl));
        }
        return text;
    }
    switch (ssl_error) {
    case SSL_ERROR_ZERO_RETURN:
        return "the peer closed the TLS session (close_notify)";
    case SSL_ERROR_SYSCALL:
        return saved_errno != 0 ? std::string(std::strerror(saved_errno))
                                : std::string("the peer closed the connection");
    default:
        return fmt::format("SSL error {}", ssl_error);
    }
}

void split_address(const sockaddr_storage& sa, std::string& address, uint16_t& port) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (sa.ss_family == AF_INET) {
        const auto& a = reinterpret_cast<const sockaddr_in&>(sa);
        ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof(buf));
        port = ntohs(a.sin_port);
    } else if (sa.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(sa);
        if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) {
            ::inet_ntop(AF_INET, &a.sin6_addr.s6_addr[12], buf, sizeof(buf));
        } else {
            ::inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof(buf));
        }
        port = ntohs(a.sin6_port);
    } else {
        port = 0;
    }
    address = buf;
}

bool subject_text(const X509* cert, std::string& out) {
    bio_ptr mem(BIO_new(BIO_s_mem()));
    if (!mem || X509_NAME_print_ex(mem.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0) {
        return false;
    }
    char* text = nullptr;
    const long text_len = BIO_get_mem_data(mem.get(), &text);
    out.assign(text, static_cast<size_t>(text_len));
    return true;
}

bool certificate_fingerprint(const X509* cert, std::array<uint8_t, 32>& out) {
    unsigned int len = 0;
    return cert != nullptr && X509_digest(cert, EVP_sha256(), out.data(), &len) == 1 && len == out.size();
}

result<peer> describe_peer(SSL* ssl, const sockaddr_storage& remote) {
    peer p;
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    const auto proto = protocol_from_alpn({reinterpret_cast<const char*>(alpn), alpn_len});
    if (!proto) {
        return error{"no ALPN protocol was agreed (ntske/1 or ntstsr/1)"};
    }
    p.alpn = *proto;
    p.resumed = SSL_session_reused(ssl) == 1;
    X509* cert = SSL_get0_peer_certificate(ssl);
    if (cert == nullptr) {
        return error{"the peer presented no certificate"};
    }

    if (!subject_text(cert, p.subject)) {
        return error{"reading the certificate subject: " + openssl_reasons()};
    }

    std::unique_ptr<GENERAL_NAMES, general_names_free> sans(
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans.get()); ++i) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
        if (gn->type == GEN_DNS) {
            p.dns_names.push_back(asn1_text(gn->d.dNSName));
        } else if (gn->type == GEN_IPADD) {
            p.ip_addresses.push_back(ip_text(gn->d.iPAddress));
        } else if (gn->type == GEN_URI) {
            p.uris.push_back(asn1_text(gn->d.uniformResourceIdentifier));
        }
    }

    if (!certificate_fingerprint(cert, p.fingerprint)) {
        return error{"computing the certificate fingerprint: " + openssl_reasons()};
    }
    const int der_len = i2d_X509(cert, nullptr);
    if (der_len <= 0) {
        return error{"encoding the certificate: " + openssl_reasons()};
    }
    p.certificate.resize(static_cast<size_t>(der_len));
    unsigned char* out = p.certificate.data();
    i2d_X509(cert, &out);

    if (SSL_export_keying_material(ssl, p.session_binding.data(), p.session_binding.size(),
                                   session_binding_label.data(), session_binding_label.size(), nullptr, 0, 0) != 1) {
        return error{"deriving the session's exporter value: " + openssl_reasons()};
    }

    split_address(remote, p.address, p.port);
    return p;
}

} // namespace ptpsec::tls::detail
