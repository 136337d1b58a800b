// ptpsec-ke-bench: TLS 1.3 handshakes per second against an NTS-KE server.
// Each iteration is one whole exchange on a new connection: TCP connect, a
// full TLS 1.3 handshake (no session cache, no tickets, no resumption: every
// SSL starts without a session), one request, the whole response,
// close_notify and close. CONCURRENCY threads do this in a loop, each with
// one connection at a time and blocking sockets. With --resume each thread
// offers the session of its previous exchange instead (seeds/001 §2.1): a
// server that issues tickets then skips the certificates and signatures.
//
//   --protocol ptp   a PTP Key Request in group mode (seeds/001 §3.1), sent
//                    with a client certificate (ptpsec-controld refuses a
//                    client without one); the PTP Key Response is parsed and
//                    its error form counts as a failure.
//   --protocol ntp   the RFC 8915 §4 NTS-KE request of an NTPv4 client: NTS
//                    Next Protocol Negotiation (critical, NTPv4), AEAD
//                    Algorithm Negotiation (AEAD_AES_SIV_CMAC_256), End of
//                    Message (critical); the response is read to its End of
//                    Message and succeeds when it carries New Cookie records
//                    and no Error.
//
// --accept-error-response counts a well-formed response that carries an
// Error record as a completed exchange: the cost of refusing a client (one
// without a certificate, or not authorized) can be timed too.
//
// Threads run a warm-up first, then the measured window (--duration seconds
// or --count exchanges). Only exchanges that end inside the window count.
// Given --cpu-pid (repeatable), the CPU time (utime + stime from
// /proc/PID/stat, all threads) of those processes over the window is
// reported too, so that a server that is not saturated can be compared per
// core-second. Prints one JSON object (and writes it to --json).

#include <control/nts/message.h>
#include <drivers/base/result.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/err.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

constexpr int exit_ok = 0;
constexpr int exit_error = 2;

enum class request_kind { ptp, ntp };

// RFC 8915 §4: record types and the values an NTPv4 client sends.
constexpr uint16_t record_end_of_message = 0;
constexpr uint16_t record_next_protocol = 1;
constexpr uint16_t record_error = 2;
constexpr uint16_t record_aead_algorithm = 4;
constexpr uint16_t record_new_cookie = 5;
constexpr uint16_t critical_bit = 0x8000;
constexpr uint16_t protocol_ntpv4 = 0;
constexpr uint16_t aead_aes_siv_cmac_256 = 15; // RFC 8915 §5.1, IANA AEAD registry

/// The NTS-KE request of an NTPv4 client (RFC 8915 §4.1).
std::vector<uint8_t> ntp_request() {
    std::vector<uint8_t> out;
    const auto record = [&out](uint16_t type, std::initializer_list<uint16_t> body) {
        const auto put16 = [&out](uint16_t v) {
            out.push_back(static_cast<uint8_t>(v >> 8));
            out.push_back(static_cast<uint8_t>(v & 0xff));
        };
        put16(type);
        put16(static_cast<uint16_t>(body.size() * 2));
        for (const uint16_t v : body) {
            put16(v);
        }
    };
    record(critical_bit | record_next_protocol, {protocol_ntpv4});
    record(record_aead_algorithm, {aead_aes_siv_cmac_256});
    record(critical_bit | record_end_of_message, {});
    return out;
}

/// What an NTS-KE response of either kind says, once complete.
struct response_check {
    bool complete = false;       ///< its End of Message has been read
    size_t length = 0;           ///< octets through End of Message
    std::string failure;         ///< empty: a success
    uint32_t cookies = 0;        ///< ntp: New Cookie records
    bool error_response = false; ///< a well-formed response carrying an Error record
};

/// RFC 8915 §4 framing: records until the first End of Message. Decides
/// whether `in` holds a whole response and whether it is a success.
response_check check_ntp_response(std::span<const uint8_t> in) {
    response_check r;
    size_t at = 0;
    bool error_seen = false;
    while (at + 4 <= in.size()) {
        const auto type = static_cast<uint16_t>(((in[at] << 8) | in[at + 1]) & ~critical_bit);
        const size_t len = static_cast<size_t>((in[at + 2] << 8) | in[at + 3]);
        if (at + 4 + len > in.size()) {
            return r;
        }
        if (type == record_error) {
            error_seen = true;
            r.error_response = true;
            r.failure = len >= 2 ? fmt::format("Error record, code {}", (in[at + 4] << 8) | in[at + 5])
                                 : std::string("Error record");
        } else if (type == record_new_cookie) {
            ++r.cookies;
        }
        at += 4 + len;
        if (type == record_end_of_message) {
            r.complete = true;
            r.length = at;
            if (!error_seen && r.cookies == 0) {
                r.failure = "no New Cookie record";
            }
            return r;
        }
    }
    return r;
}

response_check check_ptp_response(std::span<const uint8_t> in) {
    response_check r;
    auto end = ptpsec::nts::find_message_end(in);
    if (!end) {
        r.complete = true;
        r.failure = "framing: " + end.message();
        return r;
    }
    if (!end->has_value()) {
        return r;
    }
    r.complete = true;
    r.length = **end;
    auto parsed = ptpsec::nts::parse_key_response(in.first(r.length));
    if (!parsed) {
        r.failure = "PTP Key Response: " + parsed.message();
    } else if (parsed->is_error()) {
        r.error_response = true;
        r.failure = "PTP Key Response with Error: " +
                    ptpsec::nts::error_name(std::get<ptpsec::nts::error_code>(parsed->outcome));
    }
    return r;
}

struct ssl_ctx_free {
    void operator()(SSL_CTX* p) const noexcept { SSL_CTX_free(p); }
};
struct ssl_free {
    void operator()(SSL* p) const noexcept { SSL_free(p); }
};
using ssl_ctx_ptr = std::unique_ptr<SSL_CTX, ssl_ctx_free>;
using ssl_ptr = std::unique_ptr<SSL, ssl_free>;

/// Closes the socket on every exit path.
class socket_fd {
public:
    explicit socket_fd(int fd) noexcept : _fd(fd) {}
    socket_fd(const socket_fd&) = delete;
    socket_fd& operator=(const socket_fd&) = delete;
    socket_fd(socket_fd&&) = delete;
    socket_fd& operator=(socket_fd&&) = delete;
    ~socket_fd() {
        if (_fd >= 0) {
            ::close(_fd);
        }
    }
    int get() const noexcept { return _fd; }

private:
    int _fd;
};

std::string openssl_errors() {
    std::string out;
    unsigned long e = 0;
    while ((e = ERR_get_error()) != 0) {
        std::array<char, 256> buf{};
        ERR_error_string_n(e, buf.data(), buf.size());
        out += out.empty() ? "" : "; ";
        out += buf.data();
    }
    return out.empty() ? "no OpenSSL reason" : out;
}

struct options {
    std::string host = "127.0.0.1";
    uint16_t port = 4460;
    std::string server_name; ///< empty: host
    std::string ca_file, cert_file, key_file;
    bool verify_server = true;
    std::string kex_groups; ///< TLS key exchange groups, OpenSSL syntax; empty: OpenSSL's default
    request_kind kind = request_kind::ptp;
    std::string protocol_name = "ptp";
    uint8_t domain = 0;
    uint16_t sdo_id = 0;
    uint16_t sub_group = 0;
    double duration_s = 10;
    uint64_t count = 0; ///< > 0: measure this many exchanges instead of a duration
    double warmup_s = 1;
    unsigned concurrency = 8;
    int timeout_ms = 5000;
    bool accept_error_response = false;
    bool resume = false; ///< offer each thread's last session (TLS 1.3 resumption)
    std::vector<int> cpu_pids;
    std::string json_file;
};

/// Everything a thread's exchanges share, read-only once the threads run.
struct exchange_setup {
    SSL_CTX* ctx = nullptr;
    sockaddr_storage addr{};
    socklen_t addr_len = 0;
    std::string server_name;
    bool name_is_ip = false;
    std::vector<uint8_t> request;
    request_kind kind = request_kind::ptp;
    int timeout_ms = 5000;
    bool accept_error_response = false;
};

struct ssl_session_free {
    void operator()(SSL_SESSION* p) const noexcept { SSL_SESSION_free(p); }
};
using session_ptr = std::unique_ptr<SSL_SESSION, ssl_session_free>;

/// What one exchange observed on success (kept from the first one).
struct session_facts {
    std::string version, cipher, group, alpn;
    size_t response_octets = 0;
    uint32_t cookies = 0;
};

/// One whole exchange; the error says what failed. `resume` (--resume):
/// the session offered, replaced by the one the server sent a ticket for;
/// `resumed` tells whether the server took the offer.
ptpsec::status exchange(const exchange_setup& s, session_facts* facts, session_ptr* resume, bool& resumed) {
    resumed = false;
    socket_fd fd(::socket(s.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        return ptpsec::error{fmt::format("socket: {}", std::strerror(errno))};
    }
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    timeval tv{s.timeout_ms / 1000, static_cast<suseconds_t>((s.timeout_ms % 1000) * 1000)};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&s.addr), s.addr_len) != 0) {
        return ptpsec::error{fmt::format("connect: {}", std::strerror(errno))};
    }
    ERR_clear_error();
    ssl_ptr ssl(SSL_new(s.ctx));
    if (!ssl || SSL_set_fd(ssl.get(), fd.get()) != 1) {
        return ptpsec::error{"SSL_new: " + openssl_errors()};
    }
    static constexpr std::array<unsigned char, 8> alpn = {7, 'n', 't', 's', 'k', 'e', '/', '1'};
    SSL_set_alpn_protos(ssl.get(), alpn.data(), static_cast<unsigned>(alpn.size()));
    if (s.name_is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), s.server_name.c_str());
    } else {
        SSL_set_tlsext_host_name(ssl.get(), s.server_name.c_str());
        SSL_set1_host(ssl.get(), s.server_name.c_str());
    }
    if (resume != nullptr && *resume) {
        SSL_set_session(ssl.get(), resume->get());
    }
    if (const int r = SSL_connect(ssl.get()); r != 1) {
        const int e = SSL_get_error(ssl.get(), r);
        if (e == SSL_ERROR_SYSCALL) {
            return ptpsec::error{fmt::format("handshake: {}", errno != 0 ? std::strerror(errno) : "connection closed")};
        }
        return ptpsec::error{"handshake: " + openssl_errors()};
    }
    const unsigned char* chosen = nullptr;
    unsigned chosen_len = 0;
    SSL_get0_alpn_selected(ssl.get(), &chosen, &chosen_len);
    if (chosen_len != alpn.size() - 1 || std::memcmp(chosen, alpn.data() + 1, chosen_len) != 0) {
        return ptpsec::error{"the server did not select ALPN ntske/1"};
    }
    if (SSL_write(ssl.get(), s.request.data(), static_cast<int>(s.request.size())) <= 0) {
        return ptpsec::error{"writing the request: " + openssl_errors()};
    }
    std::array<uint8_t, 4096> chunk{};
    std::vector<uint8_t> in;
    response_check checked;
    while (!checked.complete) {
        const int n = SSL_read(ssl.get(), chunk.data(), static_cast<int>(chunk.size()));
        if (n <= 0) {
            const int e = SSL_get_error(ssl.get(), n);
            if (e == SSL_ERROR_ZERO_RETURN) {
                return ptpsec::error{"the server closed before a whole response"};
            }
            if (e == SSL_ERROR_SYSCALL) {
                return ptpsec::error{
                    fmt::format("reading the response: {}", errno != 0 ? std::strerror(errno) : "connection closed")};
            }
            return ptpsec::error{"reading the response: " + openssl_errors()};
        }
        in.insert(in.end(), chunk.begin(), chunk.begin() + n);
        checked = s.kind == request_kind::ptp ? check_ptp_response(in) : check_ntp_response(in);
    }
    if (!checked.failure.empty() && !(s.accept_error_response && checked.error_response)) {
        return ptpsec::error{checked.failure};
    }
    resumed = SSL_session_reused(ssl.get()) == 1;
    if (resume != nullptr) {
        // The ticket came before the response (TLS 1.3: after the handshake).
        session_ptr next(SSL_get1_session(ssl.get()));
        if (next && SSL_SESSION_is_resumable(next.get()) == 1) {
            *resume = std::move(next);
        } else {
            resume->reset();
        }
    }
    if (facts != nullptr) {
        facts->version = SSL_get_version(ssl.get());
        facts->cipher = SSL_get_cipher_name(ssl.get());
        const auto group = static_cast<int>(SSL_get_negotiated_group(ssl.get()));
        const char* group_name = group != 0 ? OBJ_nid2sn(group & ~TLSEXT_nid_unknown) : nullptr;
        facts->group = group_name != nullptr ? group_name : fmt::format("{:#x}", group);
        facts->alpn.assign(reinterpret_cast<const char*>(chosen), chosen_len);
        facts->response_octets = checked.length;
        facts->cookies = checked.cookies;
    }
    // close_notify without waiting for the server's: the exchange is over.
    SSL_shutdown(ssl.get());
    return ptpsec::ok_status();
}

/// What the main thread tells the threads: where the measured window is.
struct window {
    /// 0 before the window, 1 inside it, 2 after it.
    std::atomic<int> phase{0};
    /// --count: exchanges still to start inside the window.
    std::atomic<int64_t> tickets{0};
};

struct thread_result {
    uint64_t ok = 0;
    uint64_t resumed = 0; ///< of ok, those that resumed a session
    uint64_t failed = 0;
    uint64_t warmup_ok = 0;
    uint64_t warmup_failed = 0;
    std::vector<uint32_t> latency_us;
    std::map<std::string, uint64_t> failures;
    session_facts facts;
};

void run_thread(const exchange_setup& setup, window& w, bool counted, bool resume, thread_result& out) {
    bool have_facts = false;
    session_ptr session;
    for (;;) {
        int p = w.phase.load(std::memory_order_acquire);
        if (p == 2) {
            return;
        }
        if (counted && p == 1 && w.tickets.fetch_sub(1, std::memory_order_relaxed) <= 0) {
            return;
        }
        const auto started = steady::now();
        bool resumed = false;
        const ptpsec::status done =
            exchange(setup, have_facts ? nullptr : &out.facts, resume ? &session : nullptr, resumed);
        const std::string failure = done ? std::string() : done.message();
        const auto ended = steady::now();
        // Counted in the window it ended in; with --count, by its ticket.
        p = counted ? p : w.phase.load(std::memory_order_acquire);
        if (failure.empty()) {
            have_facts = true;
        }
        if (p == 0) {
            ++(failure.empty() ? out.warmup_ok : out.warmup_failed);
        } else if (p == 1) {
            if (failure.empty()) {
                ++out.ok;
                out.resumed += resumed ? 1 : 0;
                const auto us = std::chrono::duration_cast<std::chrono::microseconds>(ended - started).count();
                out.latency_us.push_back(static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
            } else {
                ++out.failed;
                ++out.failures[failure];
            }
        }
        if (!failure.empty()) {
            // A refused connection must not become a busy loop.
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
}

/// utime + stime of a process (all its threads), in clock ticks.
int64_t process_ticks(int pid) {
    std::ifstream in(fmt::format("/proc/{}/stat", pid));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // The command name (field 2) may hold spaces; fields count from after it.
    const auto close = text.rfind(')');
    if (close == std::string::npos) {
        return -1;
    }
    std::istringstream rest(text.substr(close + 2));
    std::string field;
    int64_t utime = 0;
    int64_t stime = 0;
    // Fields 3.. : state(3) ... utime(14) stime(15).
    for (int i = 3; i <= 15 && rest >> field; ++i) {
        if (i == 14) {
            utime = std::stoll(field);
        } else if (i == 15) {
            stime = std::stoll(field);
        }
    }
    return utime + stime;
}

struct cpu_snapshot {
    steady::time_point at;
    std::vector<int64_t> server_ticks;
    double self_cpu_s = 0;
};

cpu_snapshot snapshot(const std::vector<int>& pids) {
    cpu_snapshot s;
    s.at = steady::now();
    for (const int pid : pids) {
        s.server_ticks.push_back(process_ticks(pid));
    }
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    s.self_cpu_s = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                   static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    return s;
}

uint32_t percentile(std::vector<uint32_t>& v, double q) {
    if (v.empty()) {
        return 0;
    }
    const auto k = static_cast<size_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

bool is_ip_literal(const std::string& name) {
    std::array<uint8_t, 16> buf{};
    return ::inet_pton(AF_INET, name.c_str(), buf.data()) == 1 || ::inet_pton(AF_INET6, name.c_str(), buf.data()) == 1;
}

int run(const options& opt) {
    ssl_ctx_ptr ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx || SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1) {
        fmt::print(stderr, "ptpsec-ke-bench: TLS context: {}\n", openssl_errors());
        return exit_error;
    }
    // Without --resume every handshake is full: no session kept, none
    // offered, no tickets asked for. With it, each thread offers the session
    // of its last exchange (kept by the thread, not OpenSSL's cache).
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    if (!opt.resume) {
        SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
    }
    if (!opt.kex_groups.empty() && SSL_CTX_set1_groups_list(ctx.get(), opt.kex_groups.c_str()) != 1) {
        fmt::print(stderr, "ptpsec-ke-bench: --kex-groups {}: {}\n", opt.kex_groups, openssl_errors());
        return exit_error;
    }
    if (opt.verify_server) {
        if (opt.ca_file.empty() || SSL_CTX_load_verify_locations(ctx.get(), opt.ca_file.c_str(), nullptr) != 1) {
            fmt::print(stderr, "ptpsec-ke-bench: CA file \"{}\": {} (or give --no-verify)\n", opt.ca_file,
                       openssl_errors());
            return exit_error;
        }
        SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    }
    if (!opt.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx.get(), opt.cert_file.c_str()) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx.get(), opt.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
            fmt::print(stderr, "ptpsec-ke-bench: certificate {} / key {}: {}\n", opt.cert_file, opt.key_file,
                       openssl_errors());
            return exit_error;
        }
    } else if (opt.kind == request_kind::ptp) {
        fmt::print(stderr, "ptpsec-ke-bench: --protocol ptp needs --cert and --key (the server asks for them)\n");
        return exit_error;
    }

    exchange_setup setup;
    setup.ctx = ctx.get();
    setup.kind = opt.kind;
    setup.timeout_ms = opt.timeout_ms;
    setup.accept_error_response = opt.accept_error_response;
    setup.server_name = opt.server_name.empty() ? opt.host : opt.server_name;
    setup.name_is_ip = is_ip_literal(setup.server_name);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (const int r = ::getaddrinfo(opt.host.c_str(), std::to_string(opt.port).c_str(), &hints, &found); r != 0) {
        fmt::print(stderr, "ptpsec-ke-bench: resolving {}: {}\n", opt.host, ::gai_strerror(r));
        return exit_error;
    }
    std::memcpy(&setup.addr, found->ai_addr, found->ai_addrlen);
    setup.addr_len = found->ai_addrlen;
    ::freeaddrinfo(found);
    if (opt.kind == request_kind::ptp) {
        ptpsec::nts::key_request req;
        req.association = ptpsec::nts::group_number{opt.domain, opt.sdo_id, opt.sub_group};
        setup.request = ptpsec::nts::build(req);
    } else {
        setup.request = ntp_request();
    }

    // One exchange first: a set-up that cannot work says why at once.
    session_facts first;
    bool first_resumed = false;
    if (const ptpsec::status st = exchange(setup, &first, nullptr, first_resumed); !st) {
        fmt::print(stderr, "ptpsec-ke-bench: the first exchange with {}:{} failed: {}\n", opt.host, opt.port,
                   st.message());
        return exit_error;
    }

    const bool counted = opt.count > 0;
    window w;
    w.tickets.store(static_cast<int64_t>(opt.count));
    std::vector<thread_result> results(opt.concurrency);
    std::vector<std::thread> threads;
    threads.reserve(opt.concurrency);
    for (unsigned i = 0; i < opt.concurrency; ++i) {
        results[i].latency_us.reserve(1 << 16);
        threads.emplace_back(run_thread, std::cref(setup), std::ref(w), counted, opt.resume, std::ref(results[i]));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(opt.warmup_s));
    const cpu_snapshot before = snapshot(opt.cpu_pids);
    w.phase.store(1, std::memory_order_release);
    cpu_snapshot after;
    if (counted) {
        for (auto& t : threads) {
            t.join();
        }
        after = snapshot(opt.cpu_pids);
    } else {
        std::this_thread::sleep_for(std::chrono::duration<double>(opt.duration_s));
        w.phase.store(2, std::memory_order_release);
        after = snapshot(opt.cpu_pids);
        for (auto& t : threads) {
            t.join();
        }
    }

    uint64_t ok = 0;
    uint64_t resumed = 0;
    uint64_t failed = 0;
    uint64_t warmup_ok = 0;
    uint64_t warmup_failed = 0;
    std::vector<uint32_t> latency;
    std::map<std::string, uint64_t> failures;
    for (auto& r : results) {
        ok += r.ok;
        resumed += r.resumed;
        failed += r.failed;
        warmup_ok += r.warmup_ok;
        warmup_failed += r.warmup_failed;
        latency.insert(latency.end(), r.latency_us.begin(), r.latency_us.end());
        for (const auto& [why, n] : r.failures) {
            failures[why] += n;
        }
    }
    const double window_s = std::chrono::duration<double>(after.at - before.at).count();
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    double server_cpu_s = 0;
    bool server_cpu_known = !opt.cpu_pids.empty();
    for (size_t i = 0; i < opt.cpu_pids.size(); ++i) {
        if (before.server_ticks[i] < 0 || after.server_ticks[i] < 0) {
            server_cpu_known = false;
        } else {
            server_cpu_s += static_cast<double>(after.server_ticks[i] - before.server_ticks[i]) / tick;
        }
    }
    uint64_t latency_sum = 0;
    for (const uint32_t us : latency) {
        latency_sum += us;
    }
    const double rate = window_s > 0 ? static_cast<double>(ok) / window_s : 0;

    json out;
    out["protocol"] = opt.protocol_name;
    out["host"] = opt.host;
    out["port"] = opt.port;
    out["server_name"] = setup.server_name;
    out["verify_server"] = opt.verify_server;
    out["client_certificate"] = !opt.cert_file.empty();
    out["accept_error_response"] = opt.accept_error_response;
    out["concurrency"] = opt.concurrency;
    out["warmup_s"] = opt.warmup_s;
    out["window_s"] = window_s;
    out["handshakes"] = ok;
    out["resume_offered"] = opt.resume;
    out["resumed"] = resumed;
    out["failures"] = failed;
    out["warmup_handshakes"] = warmup_ok;
    out["warmup_failures"] = warmup_failed;
    out["handshakes_per_s"] = rate;
    json lat;
    lat["p50"] = percentile(latency, 0.50);
    lat["p90"] = percentile(latency, 0.90);
    lat["p99"] = percentile(latency, 0.99);
    lat["max"] = latency.empty() ? 0 : *std::max_element(latency.begin(), latency.end());
    lat["mean"] = latency.empty() ? 0.0 : static_cast<double>(latency_sum) / static_cast<double>(latency.size());
    out["latency_us"] = std::move(lat);
    if (server_cpu_known) {
        out["server_pids"] = opt.cpu_pids;
        out["server_cpu_s"] = server_cpu_s;
        out["server_cpu_fraction"] = window_s > 0 ? server_cpu_s / window_s : 0;
        out["handshakes_per_server_cpu_s"] = server_cpu_s > 0 ? static_cast<double>(ok) / server_cpu_s : 0;
    }
    out["client_cpu_fraction"] = window_s > 0 ? (after.self_cpu_s - before.self_cpu_s) / window_s : 0;
    out["tls"] = {{"version", first.version},
                  {"cipher", first.cipher},
                  {"group", first.group},
                  {"alpn", first.alpn},
                  {"response_octets", first.response_octets}};
    if (opt.kind == request_kind::ntp) {
        out["cookies"] = first.cookies;
    }
    json why = json::object();
    for (const auto& [text, n] : failures) {
        why[text] = n;
    }
    out["failure_reasons"] = std::move(why);
    out["openssl"] = OPENSSL_VERSION_TEXT;
    const std::string text = out.dump(1);
    fmt::print("{}\n", text);
    if (!opt.json_file.empty()) {
        std::ofstream f(opt.json_file, std::ios::trunc);
        f << text << "\n";
        if (!f.good()) {
            fmt::print(stderr, "ptpsec-ke-bench: cannot write {}\n", opt.json_file);
            return exit_error;
        }
    }
    return exit_ok;
}

int parse_and_run(int argc, char** argv) {
    CLI::App cli{"ptpsec-ke-bench: full TLS 1.3 handshakes + one NTS-KE request per connection, per second"};
    options opt;
    std::string protocol = "ptp";
    std::string group = "0/0/0";
    cli.add_option("--host", opt.host, "server address or name")->capture_default_str();
    cli.add_option("--port", opt.port, "NTS-KE port")->capture_default_str();
    cli.add_option("--server-name", opt.server_name,
                   "name the server certificate must carry, sent as SNI "
                   "(default: --host)");
    cli.add_option("--ca", opt.ca_file, "CA the server certificate must chain to (PEM)");
    cli.add_option("--cert", opt.cert_file, "client certificate (PEM); required for ptp");
    cli.add_option("--key", opt.key_file, "client private key (PEM)");
    bool no_verify = false;
    cli.add_flag("--no-verify", no_verify, "do not verify the server certificate (a lighter load generator)");
    cli.add_option("--kex-groups", opt.kex_groups,
                   "TLS key exchange groups, e.g. X25519 or P-256 "
                   "(default: OpenSSL's list)");
    cli.add_option("--protocol", protocol, "ptp: PTP Key Request (group mode); ntp: RFC 8915 NTPv4 request")
        ->check(CLI::IsMember({"ptp", "ntp"}))
        ->capture_default_str();
    cli.add_option("--group", group, "ptp: the group asked for, DOMAIN/SDOID/SUBGROUP")->capture_default_str();
    cli.add_option("--duration", opt.duration_s, "seconds measured")->capture_default_str();
    cli.add_option("--count", opt.count, "measure this many exchanges instead of --duration");
    cli.add_option("--warmup", opt.warmup_s, "seconds of exchanges before the measurement")->capture_default_str();
    cli.add_option("--concurrency", opt.concurrency, "connections at a time (one thread each)")
        ->check(CLI::Range(1U, 4096U))
        ->capture_default_str();
    cli.add_option("--timeout-ms", opt.timeout_ms, "bound of each blocking socket call")->capture_default_str();
    cli.add_option("--cpu-pid", opt.cpu_pids,
                   "a server process whose CPU time over the window to report "
                   "(repeatable)");
    cli.add_flag("--resume", opt.resume,
                 "offer each connection the session of the one before it on the same thread (TLS 1.3 resumption, "
                 "seeds/001 §2.1); the JSON counts the handshakes that resumed");
    cli.add_flag("--accept-error-response", opt.accept_error_response,
                 "count a well-formed response with an Error record as a completed exchange (the cost of "
                 "refusing a client)");
    cli.add_option("--json", opt.json_file, "also write the result here");
    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return cli.exit(e) == 0 ? exit_ok : exit_error;
    }
    opt.verify_server = !no_verify;
    opt.protocol_name = protocol;
    opt.kind = protocol == "ptp" ? request_kind::ptp : request_kind::ntp;
    unsigned domain = 0;
    unsigned sdo = 0;
    unsigned sub = 0;
    if (std::sscanf(group.c_str(), "%u/%u/%u", &domain, &sdo, &sub) != 3 || domain > 255 || sdo > 0xfff ||
        sub > 0xffff) {
        fmt::print(stderr, "ptpsec-ke-bench: --group {}: use DOMAIN/SDOID/SUBGROUP, e.g. 0/0/0\n", group);
        return exit_error;
    }
    opt.domain = static_cast<uint8_t>(domain);
    opt.sdo_id = static_cast<uint16_t>(sdo);
    opt.sub_group = static_cast<uint16_t>(sub);
    // A server that resets a connection must not kill the load generator.
    std::signal(SIGPIPE, SIG_IGN);
    return run(opt);
}

} // namespace

int main(int argc, char** argv) {
    try {
        return parse_and_run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ptpsec-ke-bench: %s\n", e.what());
        return exit_error;
    }
}
