// ptpsec-dataplane: the DPDK primary process. EAL arguments first, as with
// any DPDK application, then ours after "--":
//
//   ptpsec-dataplane -l 0-1 --vdev net_pcap0,... --vdev net_pcap1,...
//       -- --inside 0 --outside 1 --sa-file sa.conf --sign 2:1
//          --outside-policy verify-strip
//
// Frames from the inside port to the outside port are signed, frames from
// outside to inside verified (and stripped). A worker lcore polls both
// directions; the main lcore prints counters and waits for SIGINT/SIGTERM.
// Exceptions stay in this file (start-up); the fast path has none.

#include <dataplane/app/ports.h>
#include <dataplane/app/stats.h>
#include <dataplane/worker.h>

#include <control/sa_file.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

namespace ptpsec {
namespace {

constexpr int exit_ok = 0;
constexpr int exit_error = 2;

std::atomic<bool> stop_requested{false};

void on_signal(int /*sig*/) {
    stop_requested.store(true, std::memory_order_relaxed);
}

struct app_options {
    uint16_t inside = 0;
    uint16_t outside = 1;
    std::string sa_file;
    std::string sign; ///< "SPP:KEY"
    std::string inside_policy = "sign";
    std::string outside_policy = "verify";
    uint16_t burst = 32;
    double stats_interval = 0;
    uint32_t idle_exit_ms = 0;
    uint32_t replay_window = 64; ///< 0: no replay protection
    size_t replay_streams = 1024;
    std::string stats_json;
    port_options ports;
    ptp::wire_options wire;
};

std::optional<ptp_policy> policy_from(std::string_view s) {
    for (auto p : {ptp_policy::pass, ptp_policy::sign, ptp_policy::verify, ptp_policy::verify_strip}) {
        if (ptp_policy_name(p) == s) {
            return p;
        }
    }
    return std::nullopt;
}

/// What the worker lcore runs.
struct worker_launch {
    worker* w;
};

int worker_main(void* arg) {
    static_cast<worker_launch*>(arg)->w->run(stop_requested);
    return 0;
}

class app {
public:
    explicit app(app_options opt) : _opt(std::move(opt)) {}

    int run() {
        if (auto st = setup(); !st) {
            fmt::print(stderr, "ptpsec-dataplane: {}\n", st.err().message);
            return exit_error;
        }
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        print_banner();
        worker_launch launch{_worker.get()};
        const unsigned worker_lcore = rte_get_next_lcore(rte_lcore_id(), 1, 0);
        const bool own_lcore = worker_lcore < RTE_MAX_LCORE;
        if (own_lcore) {
            rte_eal_remote_launch(worker_main, &launch, worker_lcore);
            watch(nullptr);
            rte_eal_wait_lcore(worker_lcore);
        } else {
            // One lcore: poll here, and look at the clock between bursts.
            watch(_worker.get());
        }
        stop_ports(_ports);
        print_stats(stdout, _paths, _worker->counters(), "at exit");
        if (!_opt.stats_json.empty()) {
            std::ofstream out(_opt.stats_json);
            out << stats_json(_paths, _worker->counters()) << "\n";
        }
        return exit_ok;
    }

private:
    status setup() {
        auto policy_in = policy_from(_opt.inside_policy);
        auto policy_out = policy_from(_opt.outside_policy);
        if (!policy_in || (*policy_in != ptp_policy::pass && *policy_in != ptp_policy::sign)) {
            return error{fmt::format("--inside-policy {}: use pass or sign", _opt.inside_policy)};
        }
        if (!policy_out || *policy_out == ptp_policy::sign) {
            return error{fmt::format("--outside-policy {}: use pass, verify or verify-strip", _opt.outside_policy)};
        }
        uint8_t spp = 0;
        uint32_t key_id = 0;
        if (*policy_in == ptp_policy::sign) {
            unsigned s = 0;
            unsigned long k = 0;
            if (std::sscanf(_opt.sign.c_str(), "%u:%lu", &s, &k) != 2 || s > 255 || k > UINT32_MAX) {
                return error{"--inside-policy sign needs --sign SPP:KEY_ID (for example --sign 2:1)"};
            }
            spp = static_cast<uint8_t>(s);
            key_id = static_cast<uint32_t>(k);
        }
        if (_opt.inside == _opt.outside) {
            return error{fmt::format("--inside and --outside are both port {}", _opt.inside)};
        }

        _engine = std::make_unique<icv::ipsecmb_engine>(icv::default_arch_plan());
        std::vector<sa_config> sas;
        if (!_opt.sa_file.empty()) {
            auto loaded = load_sa_file(_opt.sa_file);
            if (!loaded) {
                return loaded.err();
            }
            sas = std::move(loaded).value();
        } else if (*policy_in != ptp_policy::pass || *policy_out != ptp_policy::pass) {
            return error{"--sa-file is needed to sign or verify"};
        }
        auto db = sa_database::install(*_engine, sas);
        if (!db) {
            return db.err();
        }
        _sad = std::make_unique<sa_database>(std::move(db).value());
        if (*policy_in == ptp_policy::sign) {
            security_association* sa = _sad->find(spp);
            if (sa == nullptr || sa->find_key(key_id) == nullptr) {
                return error{fmt::format("--sign {}:{}: {} has no such SPP and key", spp, key_id, _opt.sa_file)};
            }
        }

        auto ports = start_ports({_opt.inside, _opt.outside}, _opt.ports);
        if (!ports) {
            return ports.err();
        }
        _ports = std::move(ports).value();

        _paths[0] = path_config{"inside->outside", _opt.inside, 0, _opt.outside, 0, *policy_in, spp, key_id};
        _paths[1] = path_config{"outside->inside", _opt.outside, 0, _opt.inside, 0, *policy_out, 0, 0};
        _iv = std::make_unique<icv::gmac_iv_counter>(icv::gmac_iv_counter::clock_start());
        if (_opt.replay_window != 0) {
            // The SA file's seqid_window (linuxptp's) is honoured when it asks
            // for more; the window is rounded up to whole 64-bit blocks.
            replay_config rc;
            rc.window = _opt.replay_window;
            for (const auto& sa : sas) {
                rc.window = std::max<uint32_t>(rc.window, sa.seqid_window);
            }
            rc.capacity = _opt.replay_streams;
            _replay = std::make_unique<replay_table>(rc);
        }
        _worker = std::make_unique<worker>(*_engine, *_sad, *_iv, _paths, _opt.burst, _opt.wire, _replay.get());
        return ok_status();
    }

    void print_banner() const {
        fmt::print("ptpsec-dataplane: {} lcore(s), engine {}, ", rte_lcore_count(), _engine->name());
        if (_replay) {
            fmt::print("replay window {} for up to {} streams\n", _replay->window(), _replay->capacity());
        } else {
            fmt::print("no replay protection\n");
        }
        for (const auto& p : _paths) {
            fmt::print("  {}: port {} -> port {}, PTP {}", p.name, p.rx_port, p.tx_port, ptp_policy_name(p.policy));
            if (p.policy == ptp_policy::sign) {
                fmt::print(" with SPP {} key {}", p.spp, p.key_id);
            }
            fmt::print("\n");
        }
        std::fflush(stdout);
    }

    /// Until a signal (or --idle-exit): prints live counters every
    /// --stats-interval seconds. With `poll` set, polls it between looks.
    void watch(worker* poll) {
        using clock = std::chrono::steady_clock;
        const auto interval = std::chrono::duration<double>(_opt.stats_interval);
        auto next_stats = clock::now() + interval;
        auto last_rx_change = clock::now();
        uint64_t last_rx = 0;
        while (!stop_requested.load(std::memory_order_relaxed)) {
            if (poll != nullptr) {
                for (int i = 0; i < 1024 && poll->poll_once() != 0; ++i) {
                }
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            }
            const auto now = clock::now();
            if (_opt.stats_interval > 0 && now >= next_stats) {
                print_stats(stdout, _paths, _worker->counters(), "live");
                next_stats = now + interval;
            }
            if (_opt.idle_exit_ms != 0) {
                const uint64_t rx = total_rx(_worker->counters());
                if (rx != last_rx) {
                    last_rx = rx;
                    last_rx_change = now;
                } else if (rx != 0 && now - last_rx_change >= std::chrono::milliseconds(_opt.idle_exit_ms)) {
                    stop_requested.store(true, std::memory_order_relaxed);
                }
            }
        }
    }

    app_options _opt;
    std::unique_ptr<icv::ipsecmb_engine> _engine;
    std::unique_ptr<sa_database> _sad;
    std::unique_ptr<icv::gmac_iv_counter> _iv;
    std::unique_ptr<replay_table> _replay;
    std::vector<uint16_t> _ports;
    std::array<path_config, 2> _paths{};
    std::unique_ptr<worker> _worker;
};

int run(int argc, char** argv) {
    const int used = rte_eal_init(argc, argv);
    if (used < 0) {
        fmt::print(stderr, "ptpsec-dataplane: EAL: {}\n", rte_strerror(rte_errno));
        return exit_error;
    }
    argc -= used;
    argv += used;

    app_options opt;
    CLI::App cli{"ptpsec-dataplane: sign and verify PTP between an inside and an outside port.\n"
                 "Usage: ptpsec-dataplane [EAL options] -- [options]"};
    cli.add_option("--inside", opt.inside, "port ID of the inside (trusted) port")->capture_default_str();
    cli.add_option("--outside", opt.outside, "port ID of the outside (untrusted) port")->capture_default_str();
    cli.add_option("--sa-file", opt.sa_file, "SA file (linuxptp format, plus AES-GMAC types)");
    cli.add_option("--inside-policy", opt.inside_policy, "PTP from inside to outside: pass or sign")
        ->capture_default_str();
    cli.add_option("--outside-policy", opt.outside_policy, "PTP from outside to inside: pass, verify or verify-strip")
        ->capture_default_str();
    cli.add_option("--sign", opt.sign, "SPP:KEY_ID to sign with");
    cli.add_option("--burst", opt.burst, "RX burst size (1-64)")->check(CLI::Range(1, 64))->capture_default_str();
    cli.add_option("--stats-interval", opt.stats_interval, "print counters every SECONDS (0: only at exit)")
        ->capture_default_str();
    cli.add_option("--idle-exit", opt.idle_exit_ms,
                   "stop once no frame arrived for MS milliseconds after the first (offline runs on net_pcap)");
    cli.add_option("--stats-json", opt.stats_json, "write the counters at exit to FILE as JSON");
    cli.add_option("--replay-window", opt.replay_window,
                   "replay window in sequenceIds per stream (rounded up to 64-bit blocks; 0: off)")
        ->check(CLI::Range(0U, replay_table::max_window))
        ->capture_default_str();
    cli.add_option("--replay-streams", opt.replay_streams, "streams the replay table holds")
        ->check(CLI::Range(replay_table::min_capacity, replay_table::max_capacity))
        ->capture_default_str();
    cli.add_option("--rx-desc", opt.ports.rx_desc, "RX descriptors per queue")->capture_default_str();
    cli.add_option("--tx-desc", opt.ports.tx_desc, "TX descriptors per queue")->capture_default_str();
    cli.add_option("--mbufs", opt.ports.mbufs, "mbufs in the pool")->capture_default_str();
    cli.add_option("--ticket-tlv-type", opt.wire.ticket_tlv_type, "tlvType of the TICKET TLV")->capture_default_str();
    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = cli.exit(e);
        rte_eal_cleanup();
        return rc == 0 ? exit_ok : exit_error;
    }
    int rc = exit_error;
    {
        app a(std::move(opt));
        rc = a.run();
    }
    rte_eal_cleanup();
    return rc;
}

} // namespace
} // namespace ptpsec

int main(int argc, char** argv) {
    try {
        return ptpsec::run(argc, argv);
    } catch (const std::exception& e) {
        fmt::print(stderr, "ptpsec-dataplane: {}\n", e.what());
        return 2;
    }
}
