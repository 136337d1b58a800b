// ptpsec-dataplane: the DPDK primary process. EAL arguments first, as with
// any DPDK application, then ours after "--":
//
//   ptpsec-dataplane -l 0-1 --vdev net_pcap0,... --vdev net_pcap1,...
//       -- --inside 0 --outside 1 --sa-file sa.conf --sign 2:1
//          --outside-policy verify-strip
//
// Frames from the inside port to the outside port are signed, frames from
// outside to inside verified (and stripped). Every lcore but the main one is
// a worker with its own RX and TX queue on each port and polls both
// directions; the first is the PTP worker, to which the others hand PTP
// (steering.h, worker.h). With one lcore, the main lcore polls. The main
// lcore applies SA updates, prints counters and waits for SIGINT/SIGTERM.
// The options may also come from a file (--config, TOML: the long option
// names as keys). With --tickets, ticket-bearing unicast requests that no SA
// verifies yet go to the control plane on the exception channel
// (dataplane/exception_channel.h) and come back from it once it has
// installed their SA.
// The counters, ports and SAs are also served through DPDK telemetry
// (telemetry.h: /ptpsec/stats, /ptpsec/ports, /ptpsec/sa).
// Exceptions stay in this file (start-up); the fast path has none.

#include <dataplane/app/attest.h>
#include <dataplane/app/options.h>
#include <dataplane/app/ports.h>
#include <dataplane/app/stats.h>
#include <dataplane/app/steering.h>
#include <dataplane/app/telemetry.h>
#include <dataplane/exception_channel.h>
#include <dataplane/sa_channel.h>
#include <dataplane/sa_table.h>
#include <dataplane/sa_update.h>
#include <dataplane/worker.h>
#include <drivers/base/bytes.h>
#include <drivers/clock/source.h>

#include <control/sa_file.h>
#include <drivers/icv/cryptodev_engine.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf_dyn.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <rte_version.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string_view>
#include <thread>
#include <vector>

#ifndef PTPSEC_VERSION
#define PTPSEC_VERSION "unknown"
#endif

namespace ptpsec {
namespace {

constexpr int exit_ok = 0;
constexpr int exit_error = 2;

std::atomic<bool> stop_requested{false};

void on_signal(int /*sig*/) {
    stop_requested.store(true, std::memory_order_relaxed);
}

int worker_main(void* arg) {
    static_cast<worker*>(arg)->run(stop_requested);
    return 0;
}

/// What one worker lcore needs: its paths (its own queues), engine and
/// counters' owner.
struct worker_slot {
    unsigned lcore = 0;
    std::array<path_config, 2> paths{};
    std::unique_ptr<icv::engine> engine;
    std::unique_ptr<worker> w;
};

class app {
public:
    app(app_options opt, const checked_options& chk) : _opt(std::move(opt)), _chk(chk) {}
    ~app() {
        _attest.reset(); // its drain thread reads the ring
        if (_event_ring != nullptr) {
            rte_ring_free(_event_ring);
        }
        for (rte_ring* r : _handoff) {
            if (r != nullptr) {
                rte_ring_free(r);
            }
        }
        if (_retired_keys != nullptr) {
            rte_ring_free(_retired_keys);
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
        _telemetry = publish_telemetry({.paths = paths(),
                                        .workers = _worker_counters,
                                        .inside_port = _opt.inside,
                                        .outside_port = _opt.outside,
                                        .sat = _sat.get(),
                                        .sa_reader = static_cast<unsigned>(_workers.size()),
                                        .replay = _replay.get(),
                                        .attest = _attest.get()});
        if (_workers.front().lcore != rte_lcore_id()) {
            for (auto& slot : _workers) {
                rte_eal_remote_launch(worker_main, slot.w.get(), slot.lcore);
            }
            watch(nullptr);
            rte_eal_mp_wait_lcore();
        } else {
            // One lcore: poll here, and look at the clock between bursts.
            watch(_workers.front().w.get());
        }
        _telemetry.reset(); // before the ports close: /ptpsec/ports reads them
        unsteer_ptp(_steered);
        stop_ports(_ports);
        print_stats(stdout, paths(), _worker_counters, "at exit");
        print_replay_stats(stdout, snapshot_replay(_replay.get()), "at exit");
        print_service_stats("at exit");
        if (_attest) {
            // The workers have stopped: what is left on the ring is signed now.
            const hsm::batcher_stop_report r = _attest->stop();
            _attest->print(stdout, "at exit");
            if (r.events_unsigned != 0 || r.trailing_missed != 0) {
                fmt::print("  attestation: {} event(s) could not be signed before stopping, {} missed after the last "
                           "batch{}{}\n",
                           r.events_unsigned, r.trailing_missed, r.last_error.empty() ? "" : ": ", r.last_error);
            }
        }
        drain_events();
        if (_event_dump) {
            fmt::print("  timing events written to {}: {}\n", _opt.event_dump, _events_dumped);
            _event_dump.reset();
        }
        if (!_opt.stats_json.empty()) {
            std::ofstream out(_opt.stats_json);
            _svc.generation = _sat->generation();
            out << stats_json(paths(), _worker_counters, snapshot_replay(_replay.get()), &_svc) << "\n";
        }
        return exit_ok;
    }

private:
    /// The paths as every worker has them, but for their queues.
    std::span<const path_config> paths() const noexcept { return _workers.front().paths; }

    status setup() {
        const uint8_t spp = _chk.spp;
        const uint32_t key_id = _chk.key_id;
        const bool initial_key = _chk.initial_key;
        const steering_mode steering = _chk.steering;
        // Every lcore but the main one polls; with none, the main one does.
        unsigned lcore = 0;
        RTE_LCORE_FOREACH_WORKER(lcore) {
            _workers.emplace_back().lcore = lcore;
        }
        if (_workers.empty()) {
            _workers.emplace_back().lcore = rte_lcore_id();
        }

        // ICVs on a crypto device: a queue pair for each worker and one for
        // the service path.
        if (!_opt.crypto_dev.empty()) {
            icv::crypto_device::options co;
            co.queue_pairs = static_cast<uint16_t>(_workers.size() + 1);
            auto dev = icv::crypto_device::open(_opt.crypto_dev, co);
            if (!dev) {
                return error{"--crypto-dev: " + dev.message()};
            }
            _crypto = std::move(dev).value();
        }
        auto first = make_engine(0);
        if (!first) {
            return first.err();
        }
        _engine = std::move(first).value();
        std::vector<sa_config> sas;
        if (!_opt.sa_file.empty()) {
            auto loaded = load_sa_file(_opt.sa_file);
            if (!loaded) {
                return loaded.err();
            }
            sas = std::move(loaded).value();
        }
        // Without an SA file the data plane starts with no SA: it drops
        // what needs one until the control plane pushes SAs.
        auto db = sa_database::install(*_engine, sas, _opt.gmac_senders);
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
        // Readers 0..N-1 are the workers; reader N is DPDK's telemetry thread.
        _sat = std::make_unique<sa_table>(std::move(initial), static_cast<unsigned>(_workers.size() + 1));
        // The service path expands keys with an engine of its own (same
        // plan, or the same crypto device, so the workers' engines accept
        // its keys).
        auto service = make_engine(static_cast<uint16_t>(_workers.size()));
        if (!service) {
            return service.err();
        }
        _service_engine = std::move(service).value();
        auto channel = sa_channel::create(file_prefix());
        if (!channel) {
            return channel.err();
        }
        _channel = std::make_unique<sa_channel>(std::move(channel).value());
        if (_opt.tickets) {
            auto tickets = exception_channel::create(file_prefix(), _opt.exception_slots);
            if (!tickets) {
                return tickets.err();
            }
            _tickets = std::make_unique<exception_channel>(std::move(tickets).value());
        }

        const auto queues = static_cast<uint16_t>(_workers.size());
        _opt.ports.rx_timestamp = _chk.rx_timestamp_ns_per_unit != 0;
        auto ports = start_ports({_opt.inside, _opt.outside}, _opt.ports, queues);
        if (!ports) {
            return ports.err();
        }
        _ports = std::move(ports).value();
        if (auto st = find_rx_timestamps(); !st) {
            return st;
        }
        rte_mempool* pool = rte_mempool_lookup(mbuf_pool_name);
        if (_tickets && pool == nullptr) {
            return error{fmt::format("--tickets: no mbuf pool {} to take reinjected frames from", mbuf_pool_name)};
        }
        if (queues > 1) {
            if (auto st = setup_handoff(steering); !st) {
                return st;
            }
        }
        for (size_t k = 0; k < _workers.size(); ++k) {
            const auto q = static_cast<uint16_t>(k);
            auto& paths = _workers[k].paths;
            paths[0] = path_config{"inside->outside", _opt.inside, q, _opt.outside, q, _chk.inside, spp, true, 0};
            paths[1] = path_config{"outside->inside", _opt.outside, q, _opt.inside, q, _chk.outside, 0, true, 0};
            paths[0].drop_non_ptp = _chk.inside_drop_non_ptp;
            paths[1].drop_non_ptp = _chk.outside_drop_non_ptp;
            for (size_t i = 0; i < paths.size() && queues > 1; ++i) {
                // The first worker is the PTP worker; the others hand PTP to it.
                (k == 0 ? paths[i].handin : paths[i].handoff) = _handoff[i];
            }
        }
        _iv = std::make_unique<icv::gmac_iv_counter>(icv::gmac_iv_counter::clock_start());
        if (_opt.replay_window != 0) {
            // The SA file's seqid_window (linuxptp's) is honoured when it asks
            // for more; the window is rounded up to whole 64-bit blocks.
            replay_config rc;
            rc.window = _opt.replay_window;
            uint32_t asked = 0;
            for (const auto& sa : sas) {
                asked = std::max<uint32_t>(asked, sa.seqid_window);
            }
            rc.window = std::max(rc.window, std::min(asked, replay_table::max_window));
            if (asked > replay_table::max_window) {
                fmt::print(stderr,
                           "ptpsec-dataplane: {}: seqid_window {} is more than the largest replay window, {} "
                           "(the extended sequence number looks back less than 2^15): {} it is\n",
                           _opt.sa_file, asked, replay_table::max_window, replay_table::max_window);
            }
            rc.capacity = _opt.replay_streams;
            if (const auto excess = replay_state_excess(rc)) {
                return error{fmt::format("{}: seqid_window {} with --replay-streams {} {}: lower --replay-streams",
                                         _opt.sa_file, asked, rc.capacity, *excess)};
            }
            _replay = std::make_unique<replay_table>(rc);
        }
        event_sink sink;
        if (auto st = setup_events(sink); !st) {
            return st;
        }
        if (_replay) {
            _retired_keys = rte_ring_create_elem("ptpsec_retired_keys", sizeof(retired_key_ring_entry), 1024,
                                                 static_cast<int>(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (_retired_keys == nullptr) {
                return error{fmt::format("ring of retired keys: {}", rte_strerror(rte_errno))};
            }
        }
        worker_options wo;
        wo.burst = _opt.burst;
        wo.tx_retry = _opt.tx_retry;
        wo.rx_tsc_offset = _rx_tsc_offset;
        if (_clock && _clock->latch_port() >= 0 && sink.rx) {
            // --clock ethdev:PORT: the NIC latches the time of the PTP
            // frames it recognises, on that clock.
            _rx_stamps.latched = _clock.get();
            _rx_stamps.latched_port = static_cast<uint16_t>(_clock->latch_port());
        }
        wo.rx_stamps = _rx_stamps;
        wo.retired_keys = _retired_keys;
        wo.wire = _opt.wire;
        for (size_t k = 0; k < _workers.size(); ++k) {
            worker_slot& slot = _workers[k];
            // Only the PTP worker signs and verifies (and records events, and
            // hands ticket requests over); each worker still has an engine of
            // its own.
            worker_options own = wo;
            if (k == 0 && _tickets) {
                own.tickets = _tickets.get();
                own.reinject_pool = pool;
            }
            if (k == 0 && worker_applies_updates()) {
                own.between_bursts = &app::apply_between_bursts;
                own.between_bursts_ctx = this;
            }
            if (k == 0) {
                slot.engine = std::move(_engine);
            } else {
                auto e = make_engine(static_cast<uint16_t>(k));
                if (!e) {
                    return e.err();
                }
                slot.engine = std::move(e).value();
            }
            slot.w = std::make_unique<worker>(*slot.engine, *_sat, static_cast<unsigned>(k), *_iv, slot.paths, own,
                                              k == 0 ? _replay.get() : nullptr, k == 0 ? sink : event_sink{});
            _worker_counters.push_back(worker_counters{slot.lcore, slot.w->counters()});
        }
        if (_opt.attest.backend != "none") {
            auto a = attestation::start(_opt.attest, _event_ring, _worker_counters);
            if (!a) {
                return a.err();
            }
            _attest = std::move(a).value();
        }
        return ok_status();
    }

    /// Several workers: the rings on which they hand PTP to the first, the
    /// mbuf field that carries each frame's arrival with it, and the
    /// rte_flow rules that spare them the trouble where the NIC can.
    status setup_handoff(steering_mode mode) {
        static const rte_mbuf_dynfield rx_tsc_field = {
            .name = "ptpsec_dynfield_rx_tsc", .size = sizeof(uint64_t), .align = alignof(uint64_t), .flags = 0};
        _rx_tsc_offset = rte_mbuf_dynfield_register(&rx_tsc_field);
        if (_rx_tsc_offset < 0) {
            return error{fmt::format("mbuf field for arrival times: {}", rte_strerror(rte_errno))};
        }
        for (size_t i = 0; i < _handoff.size(); ++i) {
            _handoff[i] = rte_ring_create(fmt::format("ptpsec_handoff{}", i).c_str(), _opt.handoff_ring,
                                          static_cast<int>(rte_socket_id()), RING_F_SC_DEQ);
            if (_handoff[i] == nullptr) {
                return error{fmt::format("--handoff-ring {}: cannot make the ring: {}", _opt.handoff_ring,
                                         rte_strerror(rte_errno))};
            }
        }
        auto steered = steer_ptp(_ports, 0, mode);
        if (!steered) {
            return steered.err();
        }
        if (steered->flow) {
            _steered = _ports;
        }
        _steering_notes = std::move(steered->notes);
        return ok_status();
    }

    /// --rx-timestamps port-ns|port-us: the mbuf field and flag of the
    /// PMDs' RX timestamps, registered by a PMD that gives them (at probe or
    /// when the offload is configured). None registered: nothing would ever
    /// be stamped, which the operator should hear of at start.
    status find_rx_timestamps() {
        if (_chk.rx_timestamp_ns_per_unit == 0) {
            return ok_status();
        }
        const int offset = rte_mbuf_dynfield_lookup(RTE_MBUF_DYNFIELD_TIMESTAMP_NAME, nullptr);
        const int bit = rte_mbuf_dynflag_lookup(RTE_MBUF_DYNFLAG_RX_TIMESTAMP_NAME, nullptr);
        if (offset < 0 || bit < 0) {
            return error{fmt::format("--rx-timestamps {}: neither port's PMD gives RX timestamps ({} and {} offer no "
                                     "RTE_ETH_RX_OFFLOAD_TIMESTAMP); use --rx-timestamps clock",
                                     _opt.rx_timestamps, port_label(_opt.inside), port_label(_opt.outside))};
        }
        _rx_stamps.dynfield_offset = offset;
        _rx_stamps.dynflag = 1ULL << static_cast<unsigned>(bit);
        _rx_stamps.ns_per_unit = _chk.rx_timestamp_ns_per_unit;
        return ok_status();
    }

    /// The timing-event ring, its recorder and clock (--events).
    status setup_events(event_sink& sink) {
        if (_opt.events == "none") {
            return ok_status();
        }
        auto clk = clock::open_first_clock(_opt.clock);
        if (!clk) {
            return error{fmt::format("--clock {}: {}", _opt.clock, clk.message())};
        }
        for (const auto& why : clk->skipped) {
            fmt::print("ptpsec-dataplane: clock: {}\n", why);
        }
        _clock = std::move(clk->clock);
        auto rec = event_recorder::create(_chk.event_types);
        if (!rec) {
            return rec.err();
        }
        _recorder = std::make_unique<event_recorder>(std::move(rec).value());
        _event_ring = rte_ring_create_elem("ptpsec_events", sizeof(event_record), _opt.event_ring,
                                           static_cast<int>(rte_socket_id()), RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (_event_ring == nullptr) {
            return error{
                fmt::format("--event-ring {}: cannot make the ring: {}", _opt.event_ring, rte_strerror(rte_errno))};
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
        fmt::print("ptpsec-dataplane: {} lcore(s), {} worker(s), engine {}, ", rte_lcore_count(), _workers.size(),
                   _workers.front().engine->name());
        if (_replay) {
            fmt::print("replay window {} for up to {} streams\n", _replay->window(), _replay->capacity());
        } else {
            fmt::print("no replay protection\n");
        }
        if (_workers.size() > 1) {
            fmt::print("  PTP worker lcore {}; PTP reaches it {}\n", _workers.front().lcore,
                       _steered.empty() ? "from the other workers over rings" : "by rte_flow rules (queue 0)");
            for (const auto& why : _steering_notes) {
                fmt::print("  steering: {}\n", why);
            }
        } else if (_chk.steering != steering_mode::automatic) {
            // Asked for, but one lcore polls the one queue of each port.
            fmt::print("  steering: one worker, one queue per port: --steering {} has nothing to steer\n",
                       steering_mode_name(_chk.steering));
        }
        for (const auto& p : paths()) {
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
        fmt::print("  SA updates on /dev/shm{} ({} slots), applied {}\n", sa_channel::segment_name(file_prefix()),
                   _channel->slots(),
                   _workers.front().lcore == rte_lcore_id() ? "between bursts"
                   : worker_applies_updates()               ? "by the PTP worker between its bursts"
                                                            : "by the main lcore");
        if (_attest) {
            fmt::print("  attestation: {} signer {}{}, batches of up to {} events or {} ms, evidence log {}\n",
                       hsm::to_string(_attest->signer_info().kind), _attest->signer_id(),
                       _attest->signer_info().hardware_rooted ? "" : " (software key: NOT hardware-rooted)",
                       _opt.attest.batch_events, _opt.attest.batch_ms, _attest->log_path());
            if (!_attest->recovery_note().empty()) {
                fmt::print("  attestation: {}\n", _attest->recovery_note());
            }
        }
        if (_tickets) {
            fmt::print("  ticket requests without an SA go to the control plane on /dev/shm{} ({} slots each way)\n",
                       _tickets->name(), _tickets->slots());
        }
        if (_event_ring != nullptr) {
            std::string rx_stamps;
            if (_rx_stamps.dynfield_offset >= 0) {
                rx_stamps = fmt::format(", RX stamped by the port where it gives a time ({})", _opt.rx_timestamps);
            }
            if (_rx_stamps.latched != nullptr) {
                rx_stamps += fmt::format(", RX of PTP frames port {} latches (IEEE 1588) at the time it latched",
                                         _rx_stamps.latched_port);
            }
            fmt::print("  timing events ({}) on a ring of {}, clock {}{}{}\n", _opt.events,
                       rte_ring_get_size(_event_ring), _clock->name(), rx_stamps,
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

    /// --sa-apply worker with workers on other lcores: the PTP worker
    /// applies SA updates between its bursts, and the main lcore does the
    /// rest of the service work (verifier nonces, key lifetimes, freeing old
    /// versions).
    bool worker_applies_updates() const noexcept {
        return _opt.sa_apply == "worker" && _workers.front().lcore != rte_lcore_id();
    }

    // The SA table's service side and _svc have one user at a time: with
    // --sa-apply worker, the PTP worker and the main lcore take turns with
    // this flag. The worker only tries it, and looks again after its next
    // burst; the main lcore waits for it, at most one batch of updates.
    bool try_service() noexcept { return !_service_busy.exchange(true, std::memory_order_acquire); }
    void take_service() noexcept {
        while (!try_service()) {
            rte_pause();
        }
    }
    void end_service() noexcept { _service_busy.store(false, std::memory_order_release); }

    static bool is_nonce(const sa_wire::update& u) noexcept {
        return u.magic == sa_wire::update_magic && u.operation == static_cast<uint8_t>(sa_wire::op::attest_nonce);
    }
    static bool is_not_nonce(const sa_wire::update& u) noexcept { return !is_nonce(u); }

    /// The PTP worker's look between bursts (worker_options::between_bursts):
    /// the SA updates at the head of the ring, if the main lcore is not
    /// servicing. A verifier nonce stops it: setting one takes the
    /// attestation signer's lock, which a worker never waits on, so the
    /// main lcore takes it (service()) and the worker goes on after it.
    static void apply_between_bursts(void* ctx) noexcept {
        auto* self = static_cast<app*>(ctx);
        if (!self->_channel->updates_waiting() || !self->try_service()) {
            return;
        }
        const uint64_t before = self->_svc.applied;
        self->apply_updates(&app::is_not_nonce);
        self->_svc.applied_by_worker += self->_svc.applied - before;
        self->end_service();
    }

    /// With --sa-apply worker: how long updates may wait with the PTP
    /// worker taking none (about seven bursts at line rate) before the main
    /// lcore takes the one at the head: a verifier nonce, or any update when
    /// the worker is held up (preempted, or in an RX burst that waits, as
    /// net_pcap does on a FIFO).
    static constexpr std::chrono::microseconds worker_stall{50};

    /// The main lcore's look: the updates (with --sa-apply worker, only what
    /// the PTP worker leaves), key lifetimes, old versions.
    void service() {
        if (!worker_applies_updates()) {
            apply_updates(nullptr);
            expire_and_reclaim();
            return;
        }
        // Without the turn unless there is something to do, so that the
        // worker's tries between bursts find it free.
        const uint64_t now = monotonic_now_ns();
        const bool stalled = worker_stalled(now);
        if (!stalled && now < _next_housekeeping_ns) {
            return;
        }
        take_service();
        if (stalled) {
            const uint64_t before = _svc.applied;
            // A nonce at the head is the main lcore's anyway; otherwise the
            // worker is held up and the main lcore applies what waits.
            if (apply_updates(&app::is_nonce) == 0) {
                apply_updates(&app::is_not_nonce);
                _svc.applied_by_main_for_worker += _svc.applied - before;
            }
        }
        expire_and_reclaim();
        end_service();
        const auto housekeeping = std::max<uint64_t>(_opt.service_interval_us, 100) * 1000;
        _next_housekeeping_ns = now + housekeeping;
    }

    /// Updates have waited worker_stall with none taken meanwhile.
    bool worker_stalled(uint64_t now_ns) noexcept {
        const uint64_t taken = _updates_taken.load(std::memory_order_relaxed);
        if (!_channel->updates_waiting() || taken != _stall.taken) {
            _stall = {.since_ns = now_ns, .taken = taken};
            return false;
        }
        return now_ns - _stall.since_ns >= static_cast<uint64_t>(worker_stall.count()) * 1000;
    }

    /// Applies what the control plane sent since the last look (the updates
    /// at the head of the ring that `take` accepts; null: all), one update
    /// at a time, each published as a new version of the SA table and
    /// acknowledged. Returns how many it took off the ring.
    unsigned apply_updates(bool (*take)(const sa_wire::update&) noexcept) {
        std::array<sa_wire::update, 16> batch;
        const unsigned n = _channel->pop_updates(batch.data(), static_cast<unsigned>(batch.size()), take);
        _updates_taken.fetch_add(n, std::memory_order_relaxed);
        for (unsigned i = 0; i < n; ++i) {
            sa_wire::update& u = batch[i];
            status outcome = ok_status();
            if (u.magic == sa_wire::update_magic && u.operation == static_cast<uint8_t>(sa_wire::op::attest_nonce)) {
                // Not an SA: the verifier nonce for the attestation signer.
                if (!_attest) {
                    outcome = error{"attestation is off (start the data plane with --attest)"};
                } else if (u.key_len > sa_wire::max_nonce_len) {
                    outcome = error{fmt::format("a nonce is {} to {} octets, not {}", sa_wire::min_nonce_len,
                                                sa_wire::max_nonce_len, u.key_len)};
                } else {
                    outcome = _attest->set_nonce(std::span<const uint8_t>(u.key, u.key_len));
                }
                if (outcome) {
                    ++_svc.applied;
                } else {
                    ++_svc.rejected;
                    _svc.last_rejected = fmt::format("{}: {}", op_name(u.operation), outcome.err().message);
                }
                if (!_channel->push_ack(make_ack(u, outcome))) {
                    ++_svc.acks_dropped;
                }
                continue;
            }
            auto r = apply_update(*_sat->current(), u, *_service_engine);
            std::string note;
            if (r) {
                if (r->next != nullptr) {
                    _sat->publish(std::move(r->next));
                    retire_windows(r->retired);
                }
                note = std::move(r->note);
                ++_svc.applied;
                // Workers read the new version from their next burst on.
                // set_ticket's value covers sent_ns: sent_ns_of() gives 0.
                if (const uint64_t sent = sa_wire::sent_ns_of(u), now = monotonic_now_ns(); sent != 0 && now >= sent) {
                    _svc.apply_latency.add(now - sent);
                }
            } else {
                outcome = r.err();
                ++_svc.rejected;
                _svc.last_rejected =
                    fmt::format("{} spp {} key {}: {}", op_name(u.operation), u.spp, u.key_id, outcome.err().message);
            }
            if (!_channel->push_ack(make_ack(u, outcome, note))) {
                ++_svc.acks_dropped;
            }
            secure_wipe(u.key, sizeof(u.key));
        }
        return n;
    }

    /// Frees versions the workers no longer hold, after removing the keys
    /// whose lifetime ended.
    void expire_and_reclaim() {
        // Keys whose lifetime ended go as if the control plane had removed
        // them: frames naming them count as expired_key, and an SA whose
        // current key went stops signing (fail closed).
        const uint64_t now = monotonic_now_ns();
        if (const uint64_t due = next_expiry(*_sat->current()); due != 0 && due <= now) {
            if (auto r = expire_keys(*_sat->current(), now)) {
                _sat->publish(std::move(r->next));
                retire_windows(r->retired);
                _svc.keys_expired += r->retired.size();
            }
        }
        _sat->reclaim();
    }

    /// Tells the PTP worker which keys went, after the version without them
    /// was published, so that it drops their replay windows.
    void retire_windows(const std::vector<retired_key>& keys) {
        if (_retired_keys == nullptr) {
            return;
        }
        for (const auto& k : keys) {
            retired_key_ring_entry e{k.key_id, k.spp, {}};
            if (rte_ring_sp_enqueue_elem(_retired_keys, &e, sizeof(e)) != 0) {
                ++_svc.retire_ring_full; // the windows age out of the table instead
            }
        }
    }

    void print_service_stats(std::string_view label) {
        // A copy taken in turn with the PTP worker, printed outside the turn.
        const bool shared = worker_applies_updates();
        if (shared) {
            take_service();
        }
        _svc.generation = _sat->generation();
        const auto copy = std::make_unique<service_stats>(_svc);
        if (shared) {
            end_service();
        }
        ptpsec::print_service_stats(stdout, *copy, label);
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
                // A few bursts between looks at the clock and the event
                // ring; an SA update is taken after the burst it arrived in.
                for (int i = 0; i < 64 && poll->poll_once() != 0 && !_channel->updates_waiting(); ++i) {
                }
            } else if (_opt.service_interval_us != 0) {
                // Sleeps this long between looks at the event ring and the
                // clock, and wakes at once when a writer pushes an update.
                // With --sa-apply worker, updates that wait are the PTP
                // worker's: the main lcore looks again within worker_stall,
                // in case it has to step in.
                const std::chrono::microseconds sleep(_opt.service_interval_us);
                if (!worker_applies_updates()) {
                    _channel->wait_for_update(sleep);
                } else {
                    _channel->wait_for_push(_channel->updates_waiting() ? std::min(sleep, worker_stall) : sleep);
                }
            } else {
                rte_pause(); // a main lcore of its own: look again at once
            }
            service();
            drain_events();
            const auto now = clock::now();
            if (_opt.stats_interval > 0 && now >= next_stats) {
                print_stats(stdout, paths(), _worker_counters, "live");
                print_replay_stats(stdout, snapshot_replay(_replay.get()), "live");
                print_service_stats("live");
                if (_attest) {
                    _attest->print(stdout, "live");
                }
                next_stats = now + interval;
            }
            if (_opt.idle_exit_ms != 0) {
                const uint64_t rx = total_rx(_worker_counters);
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

    /// An engine on intel-ipsec-mb, or on queue pair `qp` of --crypto-dev.
    result<std::unique_ptr<icv::engine>> make_engine(uint16_t qp) {
        if (!_crypto) {
            return std::unique_ptr<icv::engine>(std::make_unique<icv::ipsecmb_engine>(icv::default_arch_plan()));
        }
        auto e = icv::cryptodev_engine::create(_crypto, qp);
        if (!e) {
            return error{"--crypto-dev: " + e.message()};
        }
        return std::unique_ptr<icv::engine>(std::move(e).value());
    }

    app_options _opt;
    checked_options _chk;
    std::shared_ptr<icv::crypto_device> _crypto; ///< --crypto-dev; keys and engines hold it too
    std::unique_ptr<icv::engine> _engine;
    std::unique_ptr<icv::engine> _service_engine;
    std::unique_ptr<sa_table> _sat;
    std::unique_ptr<sa_channel> _channel;
    std::unique_ptr<exception_channel> _tickets; ///< --tickets; the workers that use it stop first
    service_stats _svc;
    std::atomic<bool> _service_busy{false}; ///< try_service(), take_service()
    struct {
        uint64_t since_ns = 0; ///< when updates were first seen waiting with this many taken
        uint64_t taken = 0;    ///< updates taken (applied or rejected) then
    } _stall;                  ///< worker_stalled()
    /// Updates taken off the ring (applied or rejected), by whoever: read
    /// without the turn by the main lcore to see a stalled worker.
    std::atomic<uint64_t> _updates_taken{0};
    uint64_t _next_housekeeping_ns = 0; ///< --sa-apply worker: the main lcore's next look at lifetimes and versions
    struct file_closer {
        void operator()(std::FILE* f) const noexcept { std::fclose(f); }
    };
    std::unique_ptr<clock::source> _clock;
    std::unique_ptr<event_recorder> _recorder;
    rte_ring* _event_ring = nullptr;
    std::unique_ptr<std::FILE, file_closer> _event_dump;
    std::unique_ptr<attestation> _attest;
    uint64_t _events_dumped = 0;
    std::unique_ptr<icv::gmac_iv_counter> _iv;
    std::unique_ptr<replay_table> _replay;
    std::vector<uint16_t> _ports;
    std::vector<uint16_t> _steered; ///< ports with rte_flow rules
    std::vector<std::string> _steering_notes;
    std::array<rte_ring*, 2> _handoff{}; ///< per path, several workers only
    int _rx_tsc_offset = -1;
    port_rx_stamps _rx_stamps;         ///< where ports give RX events their time (the workers' copy)
    rte_ring* _retired_keys = nullptr; ///< to the PTP worker, with replay protection on
    std::vector<worker_slot> _workers;
    std::vector<worker_counters> _worker_counters;
    std::unique_ptr<telemetry_publication> _telemetry;
};

/// EAL's --help ends with this: where ours are.
void usage_after_eal(const char* prgname) {
    std::printf("\nptpsec-dataplane options follow `--`: %s -- --help\n", prgname);
}

/// Our options are parsed before EAL starts, so that --help, --print-config
/// and a mistyped option are answered without hugepages, devices or a
/// runtime directory: EAL gets the arguments before the first `--`, we get
/// the ones after it (DPDK's convention; without `--` they are all EAL's).
int run(int argc, char** argv) {
    const char* const prgname = argc > 0 ? argv[0] : "ptpsec-dataplane";
    // Before or after `--`: EAL has no --version of its own.
    if (std::any_of(argv + std::min(argc, 1), argv + argc,
                    [](const char* a) { return std::string_view(a) == "--version"; })) {
        fmt::print("ptpsec-dataplane {} ({})\n", PTPSEC_VERSION, rte_version());
        return exit_ok;
    }
    std::vector<char*> eal_args{argv, argv + argc};
    std::vector<char*> our_args{const_cast<char*>(prgname)};
    for (int i = 1; i < argc; ++i) {
        if (std::string_view(argv[i]) == "--") {
            eal_args.assign(argv, argv + i);
            our_args.insert(our_args.end(), argv + i + 1, argv + argc);
            break;
        }
    }

    app_options opt;
    CLI::App cli{"ptpsec-dataplane: sign and verify PTP between an inside and an outside port.\n"
                 "Usage: ptpsec-dataplane [EAL options] -- [options]"};
    // A file may hold every option below (TOML, the long names as keys:
    // inside-policy = "sign"); the command line overrides it. A key that
    // is no option is an error, not a silent default (add_options).
    cli.set_config("--config", "", "read options from FILE (TOML; keys are the long option names)")->type_name("FILE");
    bool print_config = false;
    cli.add_flag("--print-config", print_config,
                 "print the options in effect as a --config file (defaults included) and exit");
    add_options(cli, opt);
    if (auto file = check_config_file(std::span(our_args).subspan(1)); !file) {
        fmt::print(stderr, "ptpsec-dataplane: {}\n", file.message());
        return exit_error;
    }
    try {
        cli.parse(static_cast<int>(our_args.size()), our_args.data());
    } catch (const CLI::ConfigError& e) {
        const std::string file = cli.get_config_ptr() != nullptr ? cli.get_config_ptr()->as<std::string>() : "";
        fmt::print(stderr, "ptpsec-dataplane: --config {}: {}\n", file, config_error_text(e));
        return exit_error;
    } catch (const CLI::ParseError& e) {
        return cli.exit(e) == 0 ? exit_ok : exit_error;
    }
    if (auto values = check_option_values(cli); !values) {
        fmt::print(stderr, "ptpsec-dataplane: {}\n", values.message());
        return exit_error;
    }
    if (print_config) {
        fmt::print("{}", config_file_text(cli));
        return exit_ok;
    }

    // EAL's own --help prints its usage and ours and exits inside
    // rte_eal_init(): the defaults need not make a valid start for that.
    const bool eal_help = std::any_of(eal_args.begin() + 1, eal_args.end(), [](const char* a) {
        return std::string_view(a) == "-h" || std::string_view(a) == "--help";
    });
    auto checked = check_options(opt);
    if (!checked && !eal_help) {
        fmt::print(stderr, "ptpsec-dataplane: {}\n", checked.message());
        return exit_error;
    }

    keep_freed_key_memory();
    rte_set_application_usage_hook(usage_after_eal);
    if (rte_eal_init(static_cast<int>(eal_args.size()), eal_args.data()) < 0) {
        fmt::print(stderr, "ptpsec-dataplane: EAL: {}\n", rte_strerror(rte_errno));
        return exit_error;
    }
    int rc = exit_error;
    {
        app a(std::move(opt), checked ? *checked : checked_options{});
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
