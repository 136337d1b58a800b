// ptpsec-controld: the NTS4PTP control plane (seeds/001), in group-based
// mode, with two roles that a configuration file turns on:
//
//   [server]  the NTS-KE server: PTP Key Requests over TLS 1.3 (ALPN
//             ntske/1, client certificates required), answered from the
//             group key schedule, whose keys survive restarts in the state
//             file. Registrations (ALPN ntstsr/1, ticket-based mode) are
//             answered with Not Authorized: no grantor can register.
//   [node]    asks a KE server for its groups' keys and keeps the local
//             ptpsec-dataplane supplied through its SA channel
//             (control/node/node.h).
//
//   ptpsec-controld --config /etc/ptpsec/controld.toml
//
// With both roles the server runs on a thread of its own. SIGHUP reloads the
// server's certificates and keys (new connections use them); SIGINT and
// SIGTERM stop it cleanly, with its counters printed.

#include <control/controld/config.h>
#include <control/ke/ke_service.h>
#include <control/ke/store.h>
#include <control/node/node.h>
#include <control/nts/message.h>
#include <control/tls/server.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <optional>
#include <thread>

namespace ptpsec::controld {
namespace {

constexpr int exit_ok = 0;
constexpr int exit_error = 2;

tls::server* running = nullptr;
std::atomic<bool> stop_requested{false};

void on_stop(int /*sig*/) {
    stop_requested.store(true, std::memory_order_relaxed);
    if (running != nullptr) {
        running->stop();
    }
}

void on_hup(int /*sig*/) {
    if (running != nullptr) {
        running->request_reload();
    }
}

ke::client_identity identity_of(const tls::peer& p) {
    ke::client_identity id;
    id.subject = p.subject;
    for (const auto& d : p.dns_names) {
        id.sans.push_back("DNS:" + d);
    }
    for (const auto& a : p.ip_addresses) {
        id.sans.push_back("IP:" + a);
    }
    for (const auto& u : p.uris) {
        id.sans.push_back("URI:" + u);
    }
    return id;
}

void print_stats(const ke::ke_service& ke, const tls::server& srv, std::string_view label) {
    const auto& k = ke.stats();
    const auto t = srv.stats();
    fmt::print("ptpsec-controld ({}): key requests {} granted {} (with next {}) refused: not authorized {}, bad "
               "request {}, critical record {}, internal error {}, grantor not registered {}\n",
               label, k.requests, k.granted, k.granted_with_next, k.refused[3], k.refused[1], k.refused[0],
               k.refused[2], k.refused[4]);
    fmt::print("  TLS: accepted {} handshakes ok {} failed {} | rate-limited {} over cap {} | timeouts: handshake {} "
               "idle {} | oversize {} | active {}\n",
               t.accepted, t.handshakes_ok, t.handshakes_failed, t.rate_limited, t.over_cap, t.handshake_timeouts,
               t.idle_timeouts, t.oversize_messages, t.active_connections);
    std::fflush(stdout);
}

int64_t monotonic_now() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000LL + ts.tv_nsec;
}

void print_node(const node::node& n, std::string_view label) {
    const auto& c = n.stats();
    fmt::print("ptpsec-controld node ({}): fetches {} failed {} keys received {} | SA updates pushed {} rejected {} | "
               "no data plane {} | data plane restarts {}\n",
               label, c.fetches, c.fetch_failures, c.keys_received, c.updates_pushed, c.updates_rejected,
               c.push_failures, c.dataplane_restarts);
    for (size_t g = 0; g < n.groups().size(); ++g) {
        const auto& st = n.groups()[g];
        fmt::print("  group {}: {} key(s) held", n.config().groups[g].name, st.keys.size());
        if (st.has_pushed_current) {
            fmt::print(", signing with key {}", st.pushed_current);
        }
        if (!st.last_error.empty()) {
            fmt::print(" | last error: {}", st.last_error);
        }
        fmt::print("\n");
    }
    std::fflush(stdout);
}

/// The node role until a stop signal: does what is due, sleeps until the
/// next thing (at most 100 ms at a time, to notice the signal).
void run_node(node::node& n) {
    uint64_t last_changes = ~0ULL;
    while (!stop_requested.load(std::memory_order_relaxed)) {
        const int64_t now = monotonic_now();
        const int64_t next = n.step(now);
        const auto& c = n.stats();
        const uint64_t changes = c.keys_received + c.updates_pushed + c.fetch_failures + c.dataplane_restarts;
        if (changes != last_changes) {
            print_node(n, "live");
            last_changes = changes;
        }
        const int64_t wait = std::clamp<int64_t>(next - monotonic_now(), 0, 100'000'000);
        if (wait > 0) {
            timespec ts{0, static_cast<long>(wait)};
            nanosleep(&ts, nullptr);
        }
    }
}

int serve(const config& cfg) {
    std::shared_ptr<ke::sqlite_store> store;
    std::unique_ptr<ke::key_schedule> keys;
    std::unique_ptr<ke::ke_service> ke;
    std::optional<tls::server> srv;
    if (cfg.server) {
        const server_settings& s = *cfg.server;
        auto st = ke::sqlite_store::open(s.state_file);
        if (!st) {
            fmt::print(stderr, "ptpsec-controld: {}\n", st.message());
            return exit_error;
        }
        store = std::move(st).value();
        auto ks = ke::key_schedule::create(cfg.groups, store);
        if (!ks) {
            fmt::print(stderr, "ptpsec-controld: {}\n", ks.message());
            return exit_error;
        }
        keys = std::move(ks).value();
        ke = std::make_unique<ke::ke_service>(*keys, cfg.clients);
        tls::server_config tc = s.tls;
        tc.on_reload = [](const status& r) {
            if (r) {
                fmt::print("ptpsec-controld: certificates reloaded\n");
            } else {
                fmt::print(stderr, "ptpsec-controld: reload failed, the previous certificates stay: {}\n", r.message());
            }
            std::fflush(stdout);
        };
        ke::ke_service* service = ke.get();
        auto created =
            tls::server::create(tc, [service](const tls::peer& from, std::span<const uint8_t> msg) -> tls::response {
                if (from.alpn == tls::protocol::ntske) {
                    return service->handle_key_request(identity_of(from), msg);
                }
                return {nts::build_error_response(nts::sub_protocol::nts_tsr, nts::error_code::not_authorized), true};
            });
        if (!created) {
            fmt::print(stderr, "ptpsec-controld: {}\n", created.message());
            return exit_error;
        }
        srv.emplace(std::move(created).value());
        running = &*srv;
        fmt::print("ptpsec-controld: NTS-KE server on port {} for {} group(s):", srv->port(), cfg.groups.size());
        for (const auto& g : cfg.groups) {
            fmt::print(" {} ({}, SPP {}, {})", g.name, ke::to_string(g.id), keys->spp_of(g.name),
                       icv::info(g.alg).name);
        }
        fmt::print("; state in {}\n", s.state_file);
    }
    std::signal(SIGINT, on_stop);
    std::signal(SIGTERM, on_stop);
    std::signal(SIGHUP, on_hup);
    std::optional<node::node> nd;
    if (cfg.node) {
        nd.emplace(*cfg.node);
        fmt::print("ptpsec-controld: node of {} group(s), keys from {}:{}, into the data plane of file prefix {}\n",
                   cfg.node->groups.size(), cfg.node->server_host, cfg.node->server_port, cfg.node->dataplane_prefix);
    }
    std::fflush(stdout);
    status server_status = ok_status();
    if (srv && nd) {
        std::thread t([&] { server_status = srv->run(); });
        run_node(*nd);
        srv->stop();
        t.join();
    } else if (srv) {
        server_status = srv->run();
    } else {
        run_node(*nd);
    }
    running = nullptr;
    if (srv) {
        keys->expire();
        print_stats(*ke, *srv, "at exit");
    }
    if (nd) {
        print_node(*nd, "at exit");
    }
    if (!server_status) {
        fmt::print(stderr, "ptpsec-controld: {}\n", server_status.message());
        return exit_error;
    }
    return exit_ok;
}

int run(int argc, char** argv) {
    CLI::App cli{"ptpsec-controld: the NTS4PTP key server (NTS-KE, group-based mode)"};
    std::string config_file;
    bool check = false;
    cli.add_option("--config", config_file, "configuration file (TOML; see docs/operations.md)")->required();
    cli.add_flag("--check", check, "read the configuration, say what is wrong or that it is fine, and exit");
    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return cli.exit(e) == 0 ? exit_ok : exit_error;
    }
    auto cfg = load_config(config_file);
    if (!cfg) {
        fmt::print(stderr, "ptpsec-controld: {}\n", cfg.message());
        return exit_error;
    }
    if (check) {
        fmt::print("{}: {} group(s), {} client rule(s), server role {}, node role {}\n", config_file,
                   cfg->groups.size(), cfg->clients.size(), cfg->server ? "on" : "off", cfg->node ? "on" : "off");
        return exit_ok;
    }
    if (!cfg->server && !cfg->node) {
        fmt::print(stderr, "ptpsec-controld: {}: neither [server] nor [node]: nothing to run\n", config_file);
        return exit_error;
    }
    return serve(*cfg);
}

} // namespace
} // namespace ptpsec::controld

int main(int argc, char** argv) {
    try {
        return ptpsec::controld::run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ptpsec-controld: %s\n", e.what());
        return 2;
    }
}
