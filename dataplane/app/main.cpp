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
// The counters, ports and SAs are also served through DPDK telemetry
// (telemetry.h: /ptpsec/stats, /ptpsec/ports, /ptpsec/sa).
// Exceptions stay in this file (start-up); the fast path has none.

#include <dataplane/app/ports.h>
#include <dataplane/app/stats.h>
#include <dataplane/app/telemetry.h>
#include <dataplane/sa_channel.h>
#include <dataplane/sa_table.h>
#include <dataplane/sa_update.h>
#include <dataplane/worker.h>
#include <drivers/base/bytes.h>
#include <drivers/clock/source.h>

#include <control/sa_file.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
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
    std::string events = "none"; ///< none, rx, tx, both
    std::string clock = "tai";
    unsigned event_ring = 65536;
    std::string event_dump;
    uint32_t replay_window = 64; ///< 0: no replay protection
    size_t replay_streams = 1024;
    std::string stats_json;
    port_options ports;
    ptp::wire_options wire;
};

std::optional<ptp_policy> policy_from(std::string_view s) {
    for (auto p : {ptp_policy::pass, ptp_policy::sign, ptp_policy::verify, ptp_policy::verify_strip, ptp_policy::tc}) {
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
    ~app() {
        if (_event_ring != nullptr) {
            rte_ring_free(_event_ring);
        }
    }
    app(const app&) = delete;
    app& operator=(const app&) = delete;
    app(app&&) = delete;
    app& operator=(app&&) = delete;

    int run() {
        if (auto st = setup(); !st) {
            fmt::print(stderr, "ptpsec-dataplane: {}\n", st.err().message);
            return exit_error;
        }
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        print_banner();
        _telemetry = publish_telemetry({.paths = _paths,
                                        .counters = _worker->counters(),
                                        .inside_port = _opt.inside,
                                        .outside_port = _opt.outside,
                                        .sat = _sat.get(),
                                        .sa_reader = 1,
                                        .replay = _replay.get()});
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
        _telemetry.reset(); // before the ports close: /ptpsec/ports reads them
        stop_ports(_ports);
        print_stats(stdout, _paths, _worker->counters(), "at exit");
        print_service_stats("at exit");
        drain_events();
        if (_event_dump) {
            fmt::print("  timing events written to {}: {}\n", _opt.event_dump, _events_dumped);
            _event_dump.reset();
        }
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
        if (!policy_in ||
            (*policy_in != ptp_policy::pass && *policy_in != ptp_policy::sign && *policy_in != ptp_policy::tc)) {
            return error{fmt::format("--inside-policy {}: use pass, sign or tc", _opt.inside_policy)};
        }
        if (!policy_out || *policy_out == ptp_policy::sign) {
            return error{fmt::format("--outside-policy {}: use pass, verify, verify-strip or tc", _opt.outside_policy)};
        }
        uint8_t spp = 0;
        uint32_t key_id = 0;
        bool initial_key = false;
        if (*policy_in == ptp_policy::sign) {
            unsigned s = 0;
            unsigned long k = 0;
            const int got = std::sscanf(_opt.sign.c_str(), "%u:%lu", &s, &k);
            if (got < 1 || s > 255 || k > UINT32_MAX) {
                return error{"--inside-policy sign needs --sign SPP[:KEY_ID] (for example --sign 2:1, or --sign 2 "
                             "to sign with the key the control plane names current)"};
            }
            spp = static_cast<uint8_t>(s);
            key_id = static_cast<uint32_t>(k);
            initial_key = got == 2;
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
        } else if (initial_key) {
            return error{fmt::format("--sign {} names a key, which needs --sa-file (or start with --sign {} and "
                                     "push keys with ptpsecctl sa push)",
                                     _opt.sign, spp)};
        }
        // Without an SA file the data plane starts with no SA: it drops
        // what needs one until the control plane pushes SAs.
        auto db = sa_database::install(*_engine, sas);
        if (!db) {
            return db.err();
        }
        auto initial = std::make_unique<sa_database>(std::move(db).value());
        if (initial_key) {
            security_association* sa = initial->find(spp);
            if (sa == nullptr || sa->find_key(key_id) == nullptr) {
                return error{fmt::format("--sign {}:{}: {} has no such SPP and key", spp, key_id, _opt.sa_file)};
            }
            sa->has_sign_key = true;
            sa->sign_key_id = key_id;
        }
        // Reader 0 is the worker; reader 1 is DPDK's telemetry thread.
        _sat = std::make_unique<sa_table>(std::move(initial), 2);
        // The service path expands keys with an engine of its own (same
        // plan, so the workers' engine accepts its keys).
        _service_engine = std::make_unique<icv::ipsecmb_engine>(icv::default_arch_plan());
        auto channel = sa_channel::create(file_prefix());
        if (!channel) {
            return channel.err();
        }
        _channel = std::make_unique<sa_channel>(std::move(channel).value());

        auto ports = start_ports({_opt.inside, _opt.outside}, _opt.ports);
        if (!ports) {
            return ports.err();
        }
        _ports = std::move(ports).value();

        _paths[0] = path_config{"inside->outside", _opt.inside, 0, _opt.outside, 0, *policy_in, spp, true, 0};
        _paths[1] = path_config{"outside->inside", _opt.outside, 0, _opt.inside, 0, *policy_out, 0, true, 0};
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
        event_sink sink;
        if (auto st = setup_events(sink); !st) {
            return st;
        }
        _worker =
            std::make_unique<worker>(*_engine, *_sat, 0, *_iv, _paths, _opt.burst, _opt.wire, _replay.get(), sink);
        return ok_status();
    }

    /// The timing-event ring, its recorder and clock (--events).
    status setup_events(event_sink& sink) {
        if (_opt.events == "none") {
            if (!_opt.event_dump.empty()) {
                return error{"--event-dump needs --events rx, tx or both"};
            }
            return ok_status();
        }
        if (_opt.events != "rx" && _opt.events != "tx" && _opt.events != "both") {
            return error{fmt::format("--events {}: use none, rx, tx or both", _opt.events)};
        }
        auto clk = clock::open_first_clock(_opt.clock);
        if (!clk) {
            return error{fmt::format("--clock {}: {}", _opt.clock, clk.message())};
        }
        for (const auto& why : clk->skipped) {
            fmt::print("ptpsec-dataplane: clock: {}\n", why);
        }
        _clock = std::move(clk->clock);
        auto rec = event_recorder::create();
        if (!rec) {
            return rec.err();
        }
        _recorder = std::make_unique<event_recorder>(std::move(rec).value());
        _event_ring = rte_ring_create_elem("ptpsec_events", sizeof(event_record), _opt.event_ring,
                                           static_cast<int>(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (_event_ring == nullptr) {
            return error{fmt::format("--event-ring {}: {} (a power of two is needed)", _opt.event_ring,
                                     rte_strerror(rte_errno))};
        }
        if (!_opt.event_dump.empty()) {
            _event_dump.reset(std::fopen(_opt.event_dump.c_str(), "wb"));
            if (!_event_dump) {
                return error{fmt::format("--event-dump {}: {}", _opt.event_dump, std::strerror(errno))};
            }
        }
        sink.ring = _event_ring;
        sink.recorder = _recorder.get();
        sink.clock = _clock.get();
        sink.rx = _opt.events != "tx";
        sink.tx = _opt.events != "rx";
        return ok_status();
    }

    /// With --event-dump, the records waiting on the ring go to the file
    /// (the attestation signer drains the ring in production).
    void drain_events() {
        if (_event_ring == nullptr || !_event_dump) {
            return;
        }
        std::array<event_record, 256> recs;
        unsigned n = 0;
        while ((n = rte_ring_dequeue_burst_elem(_event_ring, recs.data(), sizeof(event_record),
                                                static_cast<unsigned>(recs.size()), nullptr)) != 0) {
            _events_dumped += std::fwrite(recs.data(), sizeof(event_record), n, _event_dump.get());
        }
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
                const security_association* sa = _sat->current()->find(p.spp);
                if (sa != nullptr && sa->has_sign_key) {
                    fmt::print(" with SPP {} key {}", p.spp, sa->sign_key_id);
                } else {
                    fmt::print(" with SPP {}, key to come from the control plane", p.spp);
                }
            }
            fmt::print("\n");
        }
        fmt::print("  SA updates on /dev/shm{} ({} slots)\n", sa_channel::segment_name(file_prefix()),
                   _channel->slots());
        if (_event_ring != nullptr) {
            fmt::print("  timing events ({}) on a ring of {}, clock {}{}\n", _opt.events,
                       rte_ring_get_size(_event_ring), _clock->name(),
                       _event_dump ? fmt::format(", written to {}", _opt.event_dump) : "");
        }
        std::fflush(stdout);
    }

    /// EAL's file prefix: the last part of its runtime directory.
    static std::string file_prefix() {
        const std::string dir = rte_eal_get_runtime_dir();
        const size_t slash = dir.find_last_of('/');
        return slash == std::string::npos ? dir : dir.substr(slash + 1);
    }

    /// Applies what the control plane sent since the last look, one update
    /// at a time, each published as a new version of the SA table and
    /// acknowledged; frees versions the workers no longer hold.
    void service_sa_updates() {
        std::array<sa_wire::update, 16> batch;
        const unsigned n = _channel->pop_updates(batch.data(), static_cast<unsigned>(batch.size()));
        for (unsigned i = 0; i < n; ++i) {
            sa_wire::update& u = batch[i];
            auto r = apply_update(*_sat->current(), u, *_service_engine);
            status outcome = ok_status();
            if (r) {
                _sat->publish(std::move(r->next));
                ++_updates_applied;
            } else {
                outcome = r.err();
                ++_updates_rejected;
            }
            if (!_channel->push_ack(make_ack(u, outcome))) {
                ++_acks_dropped;
            }
            secure_wipe(u.key, sizeof(u.key));
        }
        _sat->reclaim();
    }

    void print_service_stats(std::string_view label) const {
        fmt::print("  SA updates ({}): applied {} rejected {} acks dropped {} | SA version {}\n", label,
                   _updates_applied, _updates_rejected, _acks_dropped, _sat->generation());
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
        if (poll != nullptr) {
            _sat->online(poll->reader_id());
        }
        while (!stop_requested.load(std::memory_order_relaxed)) {
            if (poll != nullptr) {
                // A few bursts between looks at the SA channel and the clock.
                for (int i = 0; i < 64 && poll->poll_once() != 0; ++i) {
                }
            } else {
                // Updates take effect within about this long of arriving.
                std::this_thread::sleep_for(std::chrono::microseconds(200));
            }
            service_sa_updates();
            drain_events();
            const auto now = clock::now();
            if (_opt.stats_interval > 0 && now >= next_stats) {
                print_stats(stdout, _paths, _worker->counters(), "live");
                print_service_stats("live");
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
        if (poll != nullptr) {
            _sat->offline(poll->reader_id());
        }
    }

    app_options _opt;
    std::unique_ptr<icv::ipsecmb_engine> _engine;
    std::unique_ptr<icv::ipsecmb_engine> _service_engine;
    std::unique_ptr<sa_table> _sat;
    std::unique_ptr<sa_channel> _channel;
    uint64_t _updates_applied = 0;
    uint64_t _updates_rejected = 0;
    uint64_t _acks_dropped = 0;
    struct file_closer {
        void operator()(std::FILE* f) const noexcept { std::fclose(f); }
    };
    std::unique_ptr<clock::source> _clock;
    std::unique_ptr<event_recorder> _recorder;
    rte_ring* _event_ring = nullptr;
    std::unique_ptr<std::FILE, file_closer> _event_dump;
    uint64_t _events_dumped = 0;
    std::unique_ptr<icv::gmac_iv_counter> _iv;
    std::unique_ptr<replay_table> _replay;
    std::vector<uint16_t> _ports;
    std::array<path_config, 2> _paths{};
    std::unique_ptr<worker> _worker;
    std::unique_ptr<telemetry_publication> _telemetry;
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
    cli.add_option("--inside-policy", opt.inside_policy,
                   "PTP from inside to outside: pass, sign, or tc (transparent clock: verify, add the residence "
                   "time, sign again)")
        ->capture_default_str();
    cli.add_option("--outside-policy", opt.outside_policy,
                   "PTP from outside to inside: pass, verify, verify-strip or tc")
        ->capture_default_str();
    cli.add_option("--sign", opt.sign,
                   "SPP[:KEY_ID] to sign with (without a key ID: the key the control plane makes current)");
    cli.add_option("--burst", opt.burst, "RX burst size (1-64)")->check(CLI::Range(1, 64))->capture_default_str();
    cli.add_option("--stats-interval", opt.stats_interval, "print counters every SECONDS (0: only at exit)")
        ->capture_default_str();
    cli.add_option("--idle-exit", opt.idle_exit_ms,
                   "stop once no frame arrived for MS milliseconds after the first (offline runs on net_pcap)");
    cli.add_option("--stats-json", opt.stats_json, "write the counters at exit to FILE as JSON");
    cli.add_option("--events", opt.events,
                   "timing-event records of forwarded PTP frames: none, rx (as they arrive), tx (as they leave) "
                   "or both")
        ->capture_default_str();
    cli.add_option("--clock", opt.clock,
                   "clock of the event timestamps, first that opens: ethdev:PORT, phc:/dev/ptpN, tai")
        ->capture_default_str();
    cli.add_option("--event-ring", opt.event_ring, "slots of the event ring (a power of two)")->capture_default_str();
    cli.add_option("--event-dump", opt.event_dump,
                   "write the event records (96 octets each, dataplane/event_record.h) to FILE");
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
