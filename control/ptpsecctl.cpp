// ptpsecctl: the operator's command line. It carries the offline capture
// tools, reads a running ptpsec-dataplane through DPDK telemetry (stats,
// sa list) and changes its SAs, and reads ptpsec-controld through its admin
// socket (status, groups; control/controld/admin.h).

#include <control/controld/admin.h>
#include <control/pcap_tool.h>
#include <control/sa_client.h>
#include <control/sa_file.h>
#include <control/status_text.h>
#include <control/telemetry_client.h>
#include <control/verifier/cli.h>
#include <control/verifier/registrar.h>
#include <dataplane/sa_update.h>
#include <drivers/base/cli_numbers.h>
#include <drivers/base/hex.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#ifndef PTPSEC_VERSION
#define PTPSEC_VERSION "unknown"
#endif

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1; ///< the command ran and found failures
constexpr int exit_error = 2;  ///< the command could not run

int report(const ptpsec::error& e) {
    fmt::print(stderr, "ptpsecctl: {}\n", e.message);
    return exit_error;
}

using ordered_json = nlohmann::ordered_json;

using ptpsec::count_of;

void print_port(const ordered_json& p) {
    fmt::print("  port {} {} ({}, {}, link {}): ipackets {} opackets {} imissed {} ierrors {} oerrors {} "
               "rx_nombuf {}\n",
               count_of(p, "port_id"), p.value("name", "?"), p.value("role", "?"), p.value("driver", "?"),
               p.value("link_status", "?"), count_of(p, "ipackets"), count_of(p, "opackets"), count_of(p, "imissed"),
               count_of(p, "ierrors"), count_of(p, "oerrors"), count_of(p, "rx_nombuf"));
}

/// `ptpsecctl stats`: /ptpsec/stats, with /ptpsec/ports under "ports".
int show_stats(const std::string& prefix, bool json) {
    auto client = ptpsec::telemetry_client::connect(prefix);
    if (!client) {
        return report(client.err());
    }
    auto stats = client->query("/ptpsec/stats");
    if (!stats) {
        return report(stats.err());
    }
    auto ports = client->query("/ptpsec/ports");
    if (!ports) {
        return report(ports.err());
    }
    ordered_json& s = *stats;
    s["ports"] = std::move(*ports);
    if (json) {
        fmt::print("{}\n", s.dump());
        return exit_ok;
    }
    fmt::print("counters (ptpsec-dataplane {}, file prefix {}):\n", client->pid(), prefix);
    const ordered_json paths = s.value("paths", ordered_json::object());
    for (const auto& [key, p] : paths.items()) {
        fmt::print("  {}\n", ptpsec::path_line(p));
    }
    // With several workers, a line per worker, as the data plane prints them.
    const ordered_json workers = s.value("workers", ordered_json::object());
    if (workers.size() > 1) {
        for (const auto& [key, w] : workers.items()) {
            const std::string_view lcore = std::string_view(key).substr(key.starts_with("lcore_") ? 6 : 0);
            fmt::print("  {}\n", ptpsec::worker_line(lcore, w));
        }
    }
    fmt::print("  replay: {}\n", ptpsec::replay_line(s.value("replay", ordered_json::object())));
    for (const auto& [key, p] : s["ports"].items()) {
        print_port(p);
    }
    return exit_ok;
}

/// "never", or the seconds left of a key's lifetime ("remaining_lifetime_s").
std::string remaining_lifetime(const ordered_json& k) {
    const auto it = k.find("remaining_lifetime_s");
    if (it == k.end() || !it->is_number_unsigned()) {
        return "never";
    }
    return fmt::format("{} s", it->get<uint64_t>());
}

/// "-", or the length of the TICKET TLV value the key's unicast requests
/// carry ("ticket_length"; the octets are never shown).
std::string ticket_of(const ordered_json& k) {
    const uint64_t len = count_of(k, "ticket_length");
    return len == 0 ? std::string("-") : fmt::format("{} octets", len);
}

/// `ptpsecctl sa list`: /ptpsec/sa, one row per key (a row of dashes for an
/// SA whose keys have all gone), then the key IDs each SA retired.
int list_sas(const std::string& prefix, bool json) {
    auto client = ptpsec::telemetry_client::connect(prefix);
    if (!client) {
        return report(client.err());
    }
    auto sas = client->query("/ptpsec/sa");
    if (!sas) {
        return report(sas.err());
    }
    if (json) {
        fmt::print("{}\n", sas->dump());
        return exit_ok;
    }
    if (sas->empty()) {
        fmt::print("no SAs installed (ptpsec-dataplane {}, file prefix {})\n", client->pid(), prefix);
        return exit_ok;
    }
    fmt::print("{:<5} {:<10} {:<16} {:<4} {:<8} {:<13} {:<14} {:<14} {}\n", "SPP", "KEY", "ALGORITHM", "ICV", "SIGNS",
               "SEQID_WINDOW", "ALLOW_MUTABLE", "LIFETIME_LEFT", "TICKET");
    std::vector<std::string> retired_lines;
    std::vector<std::string> gmac_lines;
    for (const auto& [spp, sa] : sas->items()) {
        const ordered_json keys = sa.value("keys", ordered_json::object());
        const char* allow_mutable = count_of(sa, "allow_mutable") != 0 ? "yes" : "no";
        for (const auto& [id, k] : keys.items()) {
            fmt::print("{:<5} {:<10} {:<16} {:<4} {:<8} {:<13} {:<14} {:<14} {}\n", count_of(sa, "spp"),
                       count_of(k, "key_id"), k.value("algorithm", "?"), count_of(k, "icv_length"),
                       count_of(k, "current") != 0 ? "current" : "", count_of(sa, "seqid_window"), allow_mutable,
                       remaining_lifetime(k), ticket_of(k));
            if (k.contains("gmac_derivations")) {
                gmac_lines.push_back(
                    fmt::format("spp {} key {}: {} derived, {} of them outside the table of {}", count_of(sa, "spp"),
                                count_of(k, "key_id"), count_of(k, "gmac_derivations"),
                                count_of(k, "gmac_scratch_derivations"), count_of(k, "gmac_sender_slots")));
            }
        }
        if (keys.empty()) {
            fmt::print("{:<5} {:<10} {:<16} {:<4} {:<8} {:<13} {:<14} {:<14} {}\n", count_of(sa, "spp"), "-", "-", "-",
                       "", count_of(sa, "seqid_window"), allow_mutable, "-", "-");
        }
        const ordered_json retired = sa.value("retired_key_ids", ordered_json::array());
        if (retired.is_array() && !retired.empty()) {
            std::vector<uint64_t> ids;
            for (const auto& id : retired) {
                ids.push_back(id.get<uint64_t>());
            }
            retired_lines.push_back(fmt::format("spp {}: {}", count_of(sa, "spp"), fmt::join(ids, " ")));
        }
    }
    if (!gmac_lines.empty()) {
        // Rising with a steady set of senders: made-up senders, or more
        // senders than slots (docs/security.md, "Made-up senders").
        fmt::print("AES-GMAC sender subkeys:\n");
        for (const auto& l : gmac_lines) {
            fmt::print("  {}\n", l);
        }
    }
    if (!retired_lines.empty()) {
        // Frames still carrying these are dropped as expired_key; the IDs are
        // not installed again (seeds/001 §5.3).
        fmt::print("retired key IDs (removed or expired, oldest first):\n");
        for (const auto& l : retired_lines) {
            fmt::print("  {}\n", l);
        }
    }
    return exit_ok;
}

/// `ptpsecctl sa push|current|remove|flush`: updates through the SA
/// channel, one line per acknowledgement; exit 1 if any was rejected.
int send_updates(const std::string& prefix, std::vector<ptpsec::sa_wire::update> updates, bool json) {
    auto r = ptpsec::sa_client::send(prefix, updates);
    if (!r) {
        return report(r.err());
    }
    size_t rejected = 0;
    ordered_json out = ordered_json::array();
    for (const auto& o : *r) {
        rejected += o.applied ? 0 : 1;
        if (json) {
            out.push_back({{"operation", ptpsec::op_name(o.update.operation)},
                           {"spp", o.update.spp},
                           {"key_id", o.update.key_id},
                           {"applied", o.applied},
                           {"reason", o.reason}});
        } else if (o.applied) {
            fmt::print("{} spp {} key {}: applied{}{}\n", ptpsec::op_name(o.update.operation), o.update.spp,
                       o.update.key_id, o.reason.empty() ? "" : ": ", o.reason);
        } else {
            fmt::print("{} spp {} key {}: REJECTED: {}\n", ptpsec::op_name(o.update.operation), o.update.spp,
                       o.update.key_id, o.reason);
        }
    }
    if (json) {
        fmt::print("{}\n", out.dump());
    } else {
        fmt::print("{} applied, {} rejected\n", r->size() - rejected, rejected);
    }
    return rejected == 0 ? exit_ok : exit_failed;
}

/// `ptpsecctl attest nonce`: sends the nonce (given, drawn, or none with
/// `clear`) and says what the data plane made of it.
int set_attest_nonce(const std::string& prefix, const std::string& hex, bool clear, bool json) {
    std::vector<uint8_t> nonce;
    if (!hex.empty()) {
        auto n = ptpsec::from_hex(hex);
        if (!n) {
            return report(ptpsec::error{fmt::format("NONCE {}: not hex digits", hex)});
        }
        nonce = std::move(*n);
    } else if (!clear) {
        auto n = ptpsec::verifier::make_nonce();
        if (!n) {
            return report(n.err());
        }
        nonce = std::move(*n);
    }
    auto u = ptpsec::sa_client::attest_nonce(nonce);
    if (!u) {
        return report(ptpsec::error{fmt::format("NONCE {}: {}", hex, u.message())});
    }
    std::vector<ptpsec::sa_wire::update> updates{*u};
    auto r = ptpsec::sa_client::send(prefix, updates);
    if (!r) {
        return report(r.err());
    }
    const auto& o = r->at(0);
    const std::string text = ptpsec::to_hex(nonce);
    if (json) {
        fmt::print("{}\n", ordered_json{{"nonce", nonce.empty() ? ordered_json(nullptr) : ordered_json(text)},
                                        {"applied", o.applied},
                                        {"reason", o.reason}}
                               .dump());
    } else if (!o.applied) {
        fmt::print("attest_nonce: REJECTED: {}\n", o.reason);
    } else if (nonce.empty()) {
        fmt::print("attest_nonce: applied: batches carry no nonce from now on\n");
    } else {
        fmt::print("attest_nonce: applied: every batch from now on carries nonce {}\n", text);
    }
    return o.applied ? exit_ok : exit_failed;
}

/// A socket closed on every exit path.
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

/// What ptpsec-controld said: its reply, or the refusal it sent instead
/// ({"error": ...}, exit 1). Failing to talk to it at all is a result error
/// (exit 2).
struct controld_reply {
    ordered_json body;
    std::string refusal;
};

/// One request on ptpsec-controld's admin socket (control/controld/admin.h):
/// a JSON line out, a JSON line back.
ptpsec::result<controld_reply> ask_controld(const std::string& path, std::string_view command,
                                            const ordered_json& args = ordered_json::object()) {
    const std::string no_daemon = fmt::format(
        "no ptpsec-controld answers on {}: is it running, and is [admin] socket in its configuration the same?", path);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
        return ptpsec::error{fmt::format("--controld-socket {}: a Unix socket path has 1 to {} characters", path,
                                         sizeof(addr.sun_path) - 1)};
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    const socket_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        return ptpsec::error{fmt::format("socket: {}", std::system_category().message(errno))};
    }
    // `groups` may save a new key first (an fsync); well under this.
    const timeval tv{10, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        const int e = errno;
        switch (e) {
        case ENOENT:
        case ENOTDIR:
        case ECONNREFUSED:
            return ptpsec::error{no_daemon};
        case EACCES:
        case EPERM:
            return ptpsec::error{fmt::format("{}: permission denied: the admin socket is mode 0600; run as the user "
                                             "that runs ptpsec-controld (root)",
                                             path)};
        default:
            return ptpsec::error{fmt::format("connect {}: {}", path, std::system_category().message(e))};
        }
    }
    ordered_json req{{"command", command}};
    for (const auto& [k, v] : args.items()) {
        req[k] = v;
    }
    const std::string request = req.dump() + "\n";
    if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
        return ptpsec::error{fmt::format("{}: send: {}", path, std::system_category().message(errno))};
    }
    // A status of many groups is a few KiB; this is only a bound.
    constexpr size_t max_reply = size_t{4} << 20;
    std::string reply;
    std::vector<char> buf(size_t{64} * 1024);
    while (reply.find('\n') == std::string::npos) {
        const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return ptpsec::error{fmt::format("{}: ptpsec-controld did not answer within 10 s", path)};
            }
            return ptpsec::error{fmt::format("{}: {}", path, std::system_category().message(errno))};
        }
        reply.append(buf.data(), static_cast<size_t>(n));
        if (reply.size() > max_reply) {
            return ptpsec::error{fmt::format("{}: a reply of more than {} octets", path, max_reply)};
        }
    }
    auto j = ordered_json::parse(reply, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        return ptpsec::error{
            fmt::format("{}: the reply is not a JSON object: is this ptpsec-controld's admin socket?", path)};
    }
    std::string refusal;
    if (const auto it = j.find("error"); it != j.end() && it->is_string()) {
        refusal = it->get<std::string>();
    }
    return controld_reply{std::move(j), std::move(refusal)};
}

/// "handshakes_ok" -> "handshakes ok".
std::string spoken(std::string name) {
    std::replace(name.begin(), name.end(), '_', ' ');
    return name;
}

/// "label: name N, name N, ..." with every member of `counters`, wrapped
/// before 120 columns.
void print_counter_list(std::string_view label, const ordered_json& counters) {
    std::string line = fmt::format("{}:", label);
    bool first = true;
    for (const auto& [name, n] : counters.items()) {
        const std::string item = fmt::format("{} {}", spoken(name), n.dump());
        if (!first && line.size() + 2 + item.size() > 118) {
            fmt::print("{},\n", line);
            line = "    " + item;
        } else {
            line += (first ? " " : ", ") + item;
        }
        first = false;
    }
    fmt::print("{}\n", line);
}

std::string id_list(const ordered_json& ids) {
    std::vector<uint64_t> v;
    for (const auto& id : ids) {
        v.push_back(id.get<uint64_t>());
    }
    return v.empty() ? "-" : fmt::format("{}", fmt::join(v, ","));
}

/// The daemon's reply on stdout: as it came (--json), or as `print` shows
/// it. A refusal is exit 1; not reaching the daemon, exit 2.
template <typename Print>
int show_controld(const std::string& socket, std::string_view command, bool json, Print print,
                  const ordered_json& args = ordered_json::object()) {
    auto r = ask_controld(socket, command, args);
    if (!r) {
        return report(r.err());
    }
    if (!r->refusal.empty()) {
        fmt::print(stderr, "ptpsecctl: ptpsec-controld on {}: {}\n", socket, r->refusal);
        return exit_failed;
    }
    if (json) {
        fmt::print("{}\n", r->body.dump());
        return exit_ok;
    }
    print(r->body);
    return exit_ok;
}

/// `ptpsecctl status`: what ptpsec-controld runs and its counters.
void print_status(const ordered_json& s) {
    const ordered_json roles = s.value("roles", ordered_json::object());
    fmt::print("ptpsec-controld {}, pid {}, up {} s, config {}\n", s.value("version", "?"), count_of(s, "pid"),
               count_of(s, "uptime_s"), s.value("config", "?"));
    const ordered_json server = s.value("server", ordered_json::object());
    std::string server_role = "off";
    if (roles.value("server", false)) {
        server_role = fmt::format("on (NTS-KE port {}, {} group(s), state {})", count_of(server, "port"),
                                  count_of(server, "groups"), server.value("state", "?"));
    }
    fmt::print("roles: server {}, node {}, verifier {}\n", server_role, roles.value("node", false) ? "on" : "off",
               roles.value("verifier", false) ? "on" : "off");
    if (roles.value("server", false)) {
        const ordered_json ke = server.value("ke", ordered_json::object());
        std::vector<std::string> refused;
        const ordered_json by_code = ke.value("refused", ordered_json::object());
        for (const auto& [code, n] : by_code.items()) {
            refused.push_back(fmt::format("{} {}", spoken(code), n.dump()));
        }
        fmt::print("key requests {}: granted {} (with next {}, to transparent clocks {}) | refused: {}\n",
                   count_of(ke, "requests"), count_of(ke, "granted"), count_of(ke, "granted_with_next"),
                   count_of(ke, "granted_to_transparent_clocks"), fmt::join(refused, ", "));
        if (const std::string reg = server.value("registrar", ""); !reg.empty()) {
            const std::string last = server.value("last_attestation_refusal", "");
            fmt::print(
                "platform attestations (registrar {}): verified {} failed {} | keys withheld for want of one {}{}{}\n",
                reg, count_of(ke, "attestations_verified"), count_of(ke, "attestations_failed"),
                count_of(ke, "refused_unattested"), last.empty() ? "" : " | last: ", last);
        }
        print_counter_list("TLS", server.value("tls", ordered_json::object()));
        if (const std::string f = server.value("last_handshake_failure", ""); !f.empty()) {
            fmt::print("last failed TLS handshake: {}\n", f);
        }
        if (const std::string e = server.value("last_reload_error", ""); !e.empty()) {
            fmt::print("certificates: the last reload failed, the previous ones stay: {}\n", e);
        }
    }
    if (roles.value("node", false)) {
        const ordered_json node = s.value("node", ordered_json::object());
        const ordered_json c = node.value("counters", ordered_json::object());
        fmt::print("node: keys from {} into the data plane of file prefix {}: fetches {} failed {} keys received {} "
                   "removed {} | TLS sessions {} (resumed {}) | SA updates pushed {} rejected {} | no data plane {} | "
                   "data plane restarts {}\n",
                   node.value("server", "?"), node.value("dataplane_prefix", "?"), count_of(c, "fetches"),
                   count_of(c, "fetch_failures"), count_of(c, "keys_received"), count_of(c, "keys_removed"),
                   count_of(c, "sessions"), count_of(c, "sessions_resumed"), count_of(c, "updates_pushed"),
                   count_of(c, "updates_rejected"), count_of(c, "push_failures"), count_of(c, "dataplane_restarts"));
        if (count_of(c, "quotes") > 0) {
            fmt::print("  platform quotes made for the KE server: {}\n", count_of(c, "quotes"));
        }
        if (const ordered_json g = node.value("grantor", ordered_json()); g.is_object()) {
            fmt::print("{}\n", ptpsec::grantor_status_line(g));
        }
        const ordered_json groups = node.value("groups", ordered_json::array());
        size_t width = 5;
        for (const auto& g : groups) {
            width = std::max(width, g.value("name", "").size());
        }
        if (!groups.empty()) {
            fmt::print("  {:<{}}  {:<6}  {:<6}  {:<8}  {:<4}  {:<12}  {:<7}  {:<10}  {}\n", "GROUP", width, "DOMAIN",
                       "SDO_ID", "SUBGROUP", "KEYS", "KEY_IDS", "SIGNING", "NEXT_FETCH", "LAST_ERROR");
        }
        for (const auto& g : groups) {
            const auto signing = g.find("signing_key_id");
            const std::string error = g.value("last_error", "");
            fmt::print("  {:<{}}  {:<6}  {:<6}  {:<8}  {:<4}  {:<12}  {:<7}  {:<10}  {}\n", g.value("name", "?"), width,
                       count_of(g, "domain"), fmt::format("{:#05x}", count_of(g, "sdo_id")), count_of(g, "subgroup"),
                       count_of(g, "keys_held"), id_list(g.value("key_ids", ordered_json::array())),
                       signing != g.end() && signing->is_number() ? signing->dump() : "-",
                       fmt::format("{} s", count_of(g, "next_fetch_in_s")), error.empty() ? "-" : error);
        }
    }
    if (roles.value("verifier", false)) {
        const ordered_json v = s.value("verifier", ordered_json::object());
        fmt::print("verifier: batches accepted {} (verified {}) events {} | failures {} warnings {} store errors {}\n",
                   count_of(v, "batches_accepted"), count_of(v, "batches_verified"), count_of(v, "events"),
                   count_of(v, "failures"), count_of(v, "warnings"), count_of(v, "store_errors"));
        for (const auto& c : v.value("challenges", ordered_json::array())) {
            const std::string err = c.value("last_error", "");
            const std::string configured = c.value("configured_signer_id", "");
            fmt::print(
                "  challenges to data plane {} (signer {}{}): nonces given {} acknowledged {} failures {}{}{}{}{}\n",
                c.value("dataplane", "?"), c.value("signer_id", "?"),
                configured.empty() ? "" : fmt::format(", configured {}", configured), count_of(c, "nonces_given"),
                count_of(c, "nonces_acknowledged"), count_of(c, "failures"),
                count_of(c, "rounds_not_running") == 0
                    ? ""
                    : fmt::format(" not running {} round(s)", count_of(c, "rounds_not_running")),
                count_of(c, "signer_mismatches") == 0
                    ? ""
                    : fmt::format(" signer mismatches {}", count_of(c, "signer_mismatches")),
                err.empty() ? "" : " | last error: ", err);
        }
        if (const auto ek = v.value("ek_check", ordered_json()); ek.is_object()) {
            if (ek.contains("error")) {
                fmt::print("  EK certificates against {} at {}: check failed: {}\n", ek.value("crl", "?"),
                           ek.value("at", "?"), ek.value("error", "?"));
            } else {
                fmt::print(
                    "  EK certificates against {} at {}: valid {} revoked {} cannot check {} no certificate {}\n",
                    ek.value("crl", "?"), ek.value("at", "?"), count_of(ek, "valid"), count_of(ek, "revoked"),
                    count_of(ek, "cannot_check"), count_of(ek, "no_certificate"));
            }
            for (const auto& c : ek.value("signers", ordered_json::array())) {
                fmt::print("    {}: {}: {}\n", c.value("signer_id", "?"), c.value("result", "?"),
                           c.value("detail", ""));
            }
        }
        for (const auto& f : v.value("recent_failures", ordered_json::array())) {
            fmt::print("  {}\n", f.is_string() ? f.get<std::string>() : f.dump());
        }
    }
    const ordered_json admin = s.value("admin", ordered_json::object());
    fmt::print("admin socket {}: answered {} refused {} timeouts {}\n", admin.value("socket", "?"),
               count_of(admin, "answered"), count_of(admin, "refused"), count_of(admin, "timeouts"));
}

/// `ptpsecctl groups`: one row per configured group with its current key
/// (and the next, in the update period): IDs and lifetimes, never key bytes.
void print_groups(const ordered_json& reply) {
    const ordered_json groups = reply.value("groups", ordered_json::array());
    size_t width = 5;
    for (const auto& g : groups) {
        width = std::max(width, g.value("name", "").size());
    }
    const auto row = [](const auto&... columns) {
        fmt::print("{:<{}}  {:<3}  {:<6}  {:<6}  {:<8}  {:<15}  {:<8}  {:<6}  {:<5}  {:<10}  {:<13}  {}\n", columns...);
    };
    row("GROUP", width, "SPP", "DOMAIN", "SDO_ID", "SUBGROUP", "ALGORITHM", "LIFETIME", "UPDATE", "GRACE", "KEY",
        "LIFETIME_LEFT", "NEXT_KEY");
    std::vector<std::string> errors;
    for (const auto& g : groups) {
        const ordered_json current = g.value("current", ordered_json::object());
        const auto next = g.find("next");
        const bool has_key = current.contains("key_id");
        row(g.value("name", "?"), width, count_of(g, "spp"), count_of(g, "domain"),
            fmt::format("{:#05x}", count_of(g, "sdo_id")), count_of(g, "subgroup"), g.value("algorithm", "?"),
            fmt::format("{} s", count_of(g, "lifetime_s")), fmt::format("{} s", count_of(g, "update_period_s")),
            fmt::format("{} s", count_of(g, "grace_period_s")),
            has_key ? std::to_string(count_of(current, "key_id")) : "-",
            has_key ? fmt::format("{} s", count_of(current, "remaining_lifetime_s")) : "-",
            next != g.end() && next->is_object() ? std::to_string(count_of(*next, "key_id")) : "-");
        if (const std::string e = g.value("error", ""); !e.empty()) {
            errors.push_back(fmt::format("{}: {}", g.value("name", "?"), e));
        }
    }
    for (const auto& e : errors) {
        fmt::print("error: {}\n", e);
    }
}

/// `ptpsecctl grantors`: the grantors registered for ticket-based mode, with
/// their addresses and ticket key IDs (never a key).
void print_grantors(const ordered_json& reply) {
    fmt::print("unicast SPP {}, lifetime {} s, update period {} s, grace period {} s, heartbeat timeout {}\n",
               count_of(reply, "unicast_spp"), count_of(reply, "lifetime_s"), count_of(reply, "update_period_s"),
               count_of(reply, "grace_period_s"),
               count_of(reply, "heartbeat_timeout_s") == 0
                   ? std::string("none")
                   : fmt::format("{} s", count_of(reply, "heartbeat_timeout_s")));
    const ordered_json list = reply.value("grantors", ordered_json::array());
    if (list.empty()) {
        fmt::print("no grantor is registered\n");
        return;
    }
    const auto row = [](const auto&... columns) {
        fmt::print("{:<21}  {:<24}  {:<24}  {:<24}  {:<10}  {}\n", columns...);
    };
    row("PORT_IDENTITY", "OWNER", "TICKET_KEYS", "LIFETIME_LEFT", "HEARTBEATS", "ADDRESSES");
    for (const auto& g : list) {
        std::vector<std::string> ids;
        std::vector<std::string> left;
        for (const auto& k : g.value("ticket_keys", ordered_json::array())) {
            ids.push_back(fmt::format("{} ({})", count_of(k, "ticket_key_id"), k.value("aead", "?")));
            left.push_back(count_of(k, "starts_in_s") > 0 ? fmt::format("next in {} s", count_of(k, "starts_in_s"))
                                                          : fmt::format("{} s", count_of(k, "remaining_lifetime_s")));
        }
        std::vector<std::string> addresses;
        for (const auto& a : g.value("addresses", ordered_json::array())) {
            addresses.push_back(a.is_string() ? a.get<std::string>() : a.dump());
        }
        const auto last = g.find("last_heartbeat_s_ago");
        const std::string hb = last != g.end() && last->is_number()
                                   ? fmt::format("{} ({} s ago)", count_of(g, "heartbeats"), last->dump())
                                   : "-";
        row(g.value("port_identity", "?"), g.value("owner", "?"), fmt::format("{}", fmt::join(ids, ", ")),
            fmt::format("{}", fmt::join(left, ", ")), hb, fmt::format("{}", fmt::join(addresses, " ")));
    }
}

/// One table of keys (`sa list --controld`, `rotate` on a node): IDs,
/// algorithms and times, never key bytes.
void print_key_groups(std::string_view label, const ordered_json& groups) {
    for (const auto& g : groups) {
        fmt::print("{} {} {}:\n", label, g.value("kind", "group"), g.value("name", "?"));
        const ordered_json keys = g.value("keys", ordered_json::array());
        if (keys.empty()) {
            fmt::print("  no key\n");
        } else {
            const bool node = keys.front().contains("in_dataplane");
            fmt::print("  {:<3}  {:<10}  {:<15}  {:<7}  {:<9}  {:<9}  {:<10}{}\n", "SPP", "KEY_ID", "ALGORITHM",
                       "STATE", "STARTS_IN", "ENDS_IN", "RETIRES_IN", node ? "  DATA_PLANE" : "");
            for (const auto& k : keys) {
                std::string dp;
                if (node) {
                    dp = fmt::format("  {}{}{}", k.value("in_dataplane", false) ? "installed" : "not yet",
                                     k.value("signing", false) ? ", signing" : "",
                                     k.value("ticket", false) ? ", ticket" : "");
                }
                fmt::print("  {:<3}  {:<10}  {:<15}  {:<7}  {:<9}  {:<9}  {:<10}{}\n", count_of(k, "spp"),
                           count_of(k, "key_id"), k.value("algorithm", "?"), k.value("state", "?"),
                           fmt::format("{} s", count_of(k, "starts_in_s")),
                           fmt::format("{} s", count_of(k, "ends_in_s")),
                           fmt::format("{} s", count_of(k, "retires_in_s")), dp);
            }
        }
        if (const std::string e = g.value("last_error", ""); !e.empty()) {
            fmt::print("  last error: {}\n", e);
        }
    }
}

/// `ptpsecctl sa list --controld`.
void print_controld_sas(const ordered_json& reply) {
    if (const auto server = reply.find("server"); server != reply.end()) {
        print_key_groups("server", server->value("groups", ordered_json::array()));
    }
    if (const auto node = reply.find("node"); node != reply.end()) {
        print_key_groups("node", node->value("groups", ordered_json::array()));
    }
}

/// A group the server did not rotate, or a node that did not fetch.
bool rotation_failed(const ordered_json& reply) {
    for (const auto& g : reply.value("server", ordered_json::array())) {
        if (g.contains("error")) {
            return true;
        }
    }
    if (const auto node = reply.find("node"); node != reply.end()) {
        if (node->contains("error")) {
            return true;
        }
        for (const auto& g : node->value("groups", ordered_json::array())) {
            if (!g.value("last_error", "").empty()) {
                return true;
            }
        }
    }
    return false;
}

/// `ptpsecctl rotate`: what the server rotated, and what the node fetched.
void print_rotation(const ordered_json& reply) {
    for (const auto& g : reply.value("server", ordered_json::array())) {
        if (const std::string e = g.value("error", ""); !e.empty()) {
            fmt::print("group {}: not rotated: {}\n", g.value("group", "?"), e);
            continue;
        }
        const auto next = g.find("next_key_id");
        fmt::print("group {}: key {} ends in {} s instead of {} s; {}\n", g.value("group", "?"), count_of(g, "key_id"),
                   count_of(g, "ends_in_s"), count_of(g, "was_ending_in_s"),
                   next != g.end() && next->is_number()
                       ? fmt::format("key {} is handed out from now on and takes over then", next->dump())
                       : std::string("its next key is handed out once its update period begins"));
    }
    if (const auto node = reply.find("node"); node != reply.end()) {
        if (const std::string e = node->value("error", ""); !e.empty()) {
            fmt::print("node: {}\n", e);
        } else {
            fmt::print("node: fetched {} group(s) now\n", count_of(*node, "fetched"));
            print_key_groups("node", node->value("groups", ordered_json::array()));
        }
    }
}

/// --lifetime: whole seconds, 0 up to sa_client::max_lifetime, read as the
/// option reads it (check_whole_numbers has refused all but decimal and 0x
/// hex before).
CLI::Validator lifetime_seconds() {
    const int64_t max = std::chrono::duration_cast<std::chrono::seconds>(ptpsec::sa_client::max_lifetime).count();
    return CLI::Validator(
        [max](std::string& v) -> std::string {
            int64_t n = -1;
            if (!CLI::detail::lexical_cast(v, n) || n < 0 || n > max) {
                return fmt::format("{} is not a whole number of seconds from 0 to {} (388 days, seeds/001 §2.5.1)", v,
                                   max);
            }
            return {};
        },
        fmt::format("SECONDS:0-{}", max));
}

int run(int argc, char** argv) {
    CLI::App app{"ptpsecctl: operate ptpsec (offline PTP capture tools, data-plane counters and SAs, key server, "
                 "attestation evidence and registrar)"};
    app.set_version_flag("--version", std::string("ptpsecctl ") + PTPSEC_VERSION);
    app.require_subcommand(1);

    ptpsec::pcap_tool::options opt;
    std::string in;
    std::string out;
    std::string sa_file;
    int spp = -1;
    uint32_t key_id = 0;
    // A key ID is 32 bits (the AUTHENTICATION TLV's keyID); the range reads
    // the text as 64 bits, so that a larger number is refused by it.
    const CLI::Range key_id_range(uint64_t{0}, uint64_t{UINT32_MAX});

    auto* pcap = app.add_subcommand("pcap", "Show, verify, sign or strip PTP frames in a capture file");
    pcap->require_subcommand(1);
    pcap->add_option("--ticket-tlv-type", opt.wire.ticket_tlv_type,
                     "tlvType of the TICKET TLV (seeds/001 §6; default 0x2015, experimental range)")
        ->capture_default_str();
    pcap->add_option("--engine", opt.engine, "ICV engine: ipsec-mb or openssl")
        ->check(CLI::IsMember({"ipsec-mb", "openssl"}))
        ->capture_default_str();

    auto* show = pcap->add_subcommand("show", "Decode every frame");
    show->fallthrough();
    show->add_option("IN", in, "capture file (pcap or pcapng)")->required();

    auto* verify = pcap->add_subcommand("verify", "Verify the AUTHENTICATION TLV of every PTP frame");
    verify->fallthrough();
    verify->add_option("--sa-file", sa_file, "SA file (linuxptp format)")->required();
    verify->add_option("IN", in, "capture file")->required();

    auto* sign = pcap->add_subcommand("sign", "Add an AUTHENTICATION TLV to every PTP frame that has none");
    sign->fallthrough();
    sign->add_option("--sa-file", sa_file, "SA file (linuxptp format)")->required();
    sign->add_option("--spp", spp, "security parameter pointer of the SA to sign with")
        ->required()
        ->check(CLI::Range(0, 255));
    sign->add_option("--key-id", key_id, "key ID within the SA")->required()->check(key_id_range);
    sign->add_option("IN", in, "capture file")->required();
    sign->add_option("OUT", out, "output pcap file")->required();

    auto* strip = pcap->add_subcommand("strip", "Remove AUTHENTICATION TLVs, fixing lengths and checksums");
    strip->fallthrough();
    strip->add_option("IN", in, "capture file")->required();
    strip->add_option("OUT", out, "output pcap file")->required();

    // Read a running ptpsec-dataplane through DPDK telemetry.
    std::string file_prefix(ptpsec::default_file_prefix);
    bool json = false;
    auto add_telemetry_options = [&](CLI::App* cmd) {
        cmd->add_option("--file-prefix", file_prefix, "EAL --file-prefix of the ptpsec-dataplane to read")
            ->capture_default_str();
        cmd->add_flag("--json", json, "print the reply as JSON");
    };
    auto* stats = app.add_subcommand("stats", "Counters of a running ptpsec-dataplane (per path, replay, ports)");
    add_telemetry_options(stats);
    auto* sa = app.add_subcommand("sa", "Security associations of a running ptpsec-dataplane");
    sa->require_subcommand(1);
    auto* sa_list = sa->add_subcommand("list", "SAs and their keys: IDs and algorithms, never key bytes");
    add_telemetry_options(sa_list);
    bool from_controld = false;
    sa_list->add_flag("--controld", from_controld,
                      "list the keys ptpsec-controld holds instead: a server's group keys, a node's fetched keys "
                      "and whether its data plane has them");

    // Change the SAs of a running ptpsec-dataplane through its SA channel.
    std::string current;
    int sa_spp = -1;
    uint32_t sa_key = 0;
    int64_t lifetime_s = 0;
    auto* sa_push = sa->add_subcommand("push", "Install every key of an SA file (receivers accept them at once)");
    add_telemetry_options(sa_push);
    sa_push->add_option("--sa-file", sa_file, "SA file (linuxptp format)")->required();
    sa_push->add_option("--current", current, "then sign with SPP:KEY_ID");
    sa_push
        ->add_option("--lifetime", lifetime_s,
                     "the data plane forgets each pushed key this many seconds after installing it, as `sa remove` "
                     "would: its remaining lifetime plus grace period (seeds/001 §2.5.1); 0: never")
        ->check(lifetime_seconds());
    auto* sa_current = sa->add_subcommand("current", "Sign with this key of the SA from now on");
    add_telemetry_options(sa_current);
    sa_current->add_option("--spp", sa_spp, "SPP")->required()->check(CLI::Range(0, 255));
    sa_current->add_option("--key-id", sa_key, "key ID")->required()->check(key_id_range);
    auto* sa_remove = sa->add_subcommand("remove", "Remove a key (end of its grace period), or the whole SA");
    add_telemetry_options(sa_remove);
    sa_remove->add_option("--spp", sa_spp, "SPP")->required()->check(CLI::Range(0, 255));
    auto* remove_key =
        sa_remove->add_option("--key-id", sa_key, "key ID; without it the whole SA")->check(key_id_range);
    auto* sa_flush = sa->add_subcommand("flush", "Remove every SA");
    add_telemetry_options(sa_flush);

    // Read a running ptpsec-controld through its admin socket.
    std::string controld_socket(ptpsec::controld::admin::default_socket);
    auto add_controld_options = [&](CLI::App* cmd) {
        cmd->add_option("--controld-socket", controld_socket,
                        "admin socket of the ptpsec-controld to read ([admin] socket in its configuration)")
            ->capture_default_str();
        cmd->add_flag("--json", json, "print the reply as JSON");
    };
    sa_list
        ->add_option("--controld-socket", controld_socket,
                     "with --controld: admin socket of the ptpsec-controld to read ([admin] socket)")
        ->capture_default_str();
    auto* controld_status = app.add_subcommand(
        "status", "What a running ptpsec-controld runs, and its counters (key requests, TLS, node, per group)");
    add_controld_options(controld_status);
    auto* controld_groups = app.add_subcommand(
        "groups", "The groups a ptpsec-controld serves: SPP, algorithm, periods, current and next key IDs");
    add_controld_options(controld_groups);
    auto* grantors = app.add_subcommand("grantors", "Grantors registered with ptpsec-controld (ticket-based mode)");
    add_controld_options(grantors);
    std::string revoke_grantor;
    auto* revoke =
        app.add_subcommand("revoke", "End a grantor's registration with ptpsec-controld (ticket-based mode)");
    revoke->add_option("GRANTOR", revoke_grantor, "the grantor's PortIdentity, as `ptpsecctl grantors` shows it")
        ->required();
    add_controld_options(revoke);
    std::string rotate_group;
    uint32_t rotate_in_s = 0;
    auto* rotate = app.add_subcommand(
        "rotate", "Rotate a group's key early: on a KE server the current key ends sooner and the next is handed out "
                  "at once; on a node the keys are fetched now (run it on the server, then on each node)");
    auto* rotate_group_arg =
        rotate->add_option("GROUP", rotate_group, "the group's name ([[group]] name); every group when left out");
    rotate
        ->add_option("--in", rotate_in_s,
                     "on a server: the current key ends this many seconds from now (default: the group's update "
                     "period, so that every node has the whole period to fetch the next key)")
        ->check(CLI::Range(1U, 388U * 24 * 3600));
    add_controld_options(rotate);

    // The verifier nonce of a running ptpsec-dataplane's attestation signer.
    auto* attest = app.add_subcommand("attest", "The attestation signer of a running ptpsec-dataplane");
    attest->require_subcommand(1);
    std::string nonce_hex;
    bool nonce_clear = false;
    auto* attest_nonce = attest->add_subcommand(
        "nonce", "Give the signer a verifier nonce: every batch it signs from now on carries it, until the next "
                 "(check with `ptpsecctl evidence verify --nonce HEX`)");
    add_telemetry_options(attest_nonce);
    auto* nonce_value = attest_nonce->add_option("NONCE", nonce_hex,
                                                 "the nonce, 8-64 octets of hex (default: 32 random octets, printed)");
    attest_nonce->add_flag("--clear", nonce_clear, "withdraw the nonce: batches carry none")->excludes(nonce_value);

    // Attestation: `evidence verify|query` and `registrar enrol|revoke|list`.
    ptpsec::verifier::cli_commands attestation_cli(app);
    ptpsec::check_whole_numbers(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? exit_ok : exit_error;
    }

    {
        if (auto rc = attestation_cli.run()) {
            return *rc;
        }
        if (show->parsed()) {
            auto r = ptpsec::pcap_tool::show(in, std::cout, opt);
            return r ? exit_ok : report(r.err());
        }
        if (verify->parsed()) {
            auto r = ptpsec::pcap_tool::verify(sa_file, in, std::cout, opt);
            if (!r) {
                return report(r.err());
            }
            return r->failed == 0 ? exit_ok : exit_failed;
        }
        if (sign->parsed()) {
            auto r = ptpsec::pcap_tool::sign(sa_file, static_cast<uint8_t>(spp), key_id, in, out, std::cerr, opt);
            if (!r) {
                return report(r.err());
            }
            fmt::print(
                "{} frames, {} PTP, {} signed, {} not signed{} -> {}\n", r->frames, r->ptp, r->changed, r->failed,
                r->unchanged != 0 ? fmt::format(", {} signed already (copied unchanged)", r->unchanged) : "", out);
            return r->failed == 0 ? exit_ok : exit_failed;
        }
        if (controld_status->parsed()) {
            return show_controld(controld_socket, "status", json, print_status);
        }
        if (controld_groups->parsed()) {
            return show_controld(controld_socket, "groups", json, print_groups);
        }
        if (grantors->parsed()) {
            return show_controld(controld_socket, "grantors", json, print_grantors);
        }
        if (revoke->parsed()) {
            return show_controld(
                controld_socket, "revoke", json,
                [](const ordered_json& r) {
                    fmt::print("grantor {} (registered by {}) is revoked: requesters now get Grantor not Registered "
                               "for it\n",
                               r.value("revoked", "?"), r.value("owner", "?"));
                },
                ordered_json{{"grantor", revoke_grantor}});
        }
        if (rotate->parsed()) {
            ordered_json args = ordered_json::object();
            // Given, even empty ("$GROUP" unset): the server refuses an empty
            // name rather than rotate every group.
            if (rotate_group_arg->count() != 0) {
                args["group"] = rotate_group;
            }
            if (rotate_in_s != 0) {
                args["in_s"] = rotate_in_s;
            }
            auto r = ask_controld(controld_socket, "rotate", args);
            if (!r) {
                return report(r.err());
            }
            if (!r->refusal.empty()) {
                fmt::print(stderr, "ptpsecctl: ptpsec-controld on {}: {}\n", controld_socket, r->refusal);
                return exit_failed;
            }
            if (json) {
                fmt::print("{}\n", r->body.dump());
                return rotation_failed(r->body) ? exit_failed : exit_ok;
            }
            print_rotation(r->body);
            return rotation_failed(r->body) ? exit_failed : exit_ok;
        }
        if (stats->parsed()) {
            return show_stats(file_prefix, json);
        }
        if (sa_list->parsed()) {
            if (from_controld) {
                return show_controld(controld_socket, "sa", json, print_controld_sas);
            }
            return list_sas(file_prefix, json);
        }
        if (sa_push->parsed()) {
            auto sas = ptpsec::load_sa_file(sa_file);
            if (!sas) {
                return report(sas.err());
            }
            auto made = ptpsec::sa_client::updates_for(*sas, std::chrono::seconds(lifetime_s));
            if (!made) {
                return report(made.err());
            }
            std::vector<ptpsec::sa_wire::update> updates = std::move(made).value();
            if (!current.empty()) {
                auto sk = ptpsec::parse_spp_key(current, true);
                if (!sk) {
                    return report(ptpsec::error{fmt::format("--current {}", sk.message())});
                }
                updates.push_back(ptpsec::sa_client::set_current(sk->spp, sk->key_id));
            }
            return send_updates(file_prefix, std::move(updates), json);
        }
        if (sa_current->parsed()) {
            return send_updates(file_prefix, {ptpsec::sa_client::set_current(static_cast<uint8_t>(sa_spp), sa_key)},
                                json);
        }
        if (sa_remove->parsed()) {
            const auto u = remove_key->count() == 0
                               ? ptpsec::sa_client::remove_sa(static_cast<uint8_t>(sa_spp))
                               : ptpsec::sa_client::remove_key(static_cast<uint8_t>(sa_spp), sa_key);
            return send_updates(file_prefix, {u}, json);
        }
        if (attest_nonce->parsed()) {
            return set_attest_nonce(file_prefix, nonce_hex, nonce_clear, json);
        }
        if (sa_flush->parsed()) {
            return send_updates(file_prefix, {ptpsec::sa_client::flush()}, json);
        }
        if (strip->parsed()) {
            auto r = ptpsec::pcap_tool::strip(in, out, std::cerr, opt);
            if (!r) {
                return report(r.err());
            }
            fmt::print(
                "{} frames, {} PTP, {} stripped, {} not stripped{} -> {}\n", r->frames, r->ptp, r->changed, r->failed,
                r->unchanged != 0 ? fmt::format(", {} without an AUTHENTICATION TLV (copied unchanged)", r->unchanged)
                                  : "",
                out);
            return r->failed == 0 ? exit_ok : exit_failed;
        }
    }
    return exit_error;
}

} // namespace

int main(int argc, char** argv) {
    // Exceptions stay at the top of the program: start-up and library
    // failures that throw (allocation, a CPU without the needed instructions)
    // end here with a message.
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fputs("ptpsecctl: ", stderr);
        std::fputs(e.what(), stderr);
        std::fputs("\n", stderr);
    } catch (...) {
        std::fputs("ptpsecctl: unexpected error\n", stderr);
    }
    return exit_error;
}
