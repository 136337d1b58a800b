#pragma once

// Counters of ptpsec-dataplane for people (one block per path) and for
// programs (JSON). Each worker lcore writes its own; these read them with
// relaxed loads while they run and add them up per path.

#include <dataplane/worker.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec {

/// The counters of one path, as a snapshot.
path_counters snapshot(const path_counters& c) noexcept;

/// How long SA updates took from the writer's enqueue (sa_wire::update::
/// sent_ns) to the publication of the new SA version: 1 µs buckets up to
/// 10 ms and one above. Kept by the main lcore; read by it only.
class latency_histogram {
public:
    void add(uint64_t ns) noexcept;
    uint64_t count() const noexcept { return _count; }
    uint64_t max_ns() const noexcept { return _max_ns; }
    uint64_t mean_ns() const noexcept { return _count == 0 ? 0 : _sum_ns / _count; }
    /// The smallest bucket top (µs) that at least q (0 to 1) of the samples
    /// are under; 0 without samples.
    uint64_t quantile_us(double q) const noexcept;

private:
    static constexpr size_t limit_us = 10'000;
    std::array<uint32_t, limit_us + 1> _buckets{};
    uint64_t _count = 0;
    uint64_t _sum_ns = 0;
    uint64_t _max_ns = 0;
};

/// What the data plane did with the SA channel and key lifetimes.
struct service_stats {
    uint64_t applied = 0;
    uint64_t applied_by_worker = 0; ///< of applied, by the PTP worker between its bursts (--sa-apply worker)
    /// of applied, with --sa-apply worker, by the main lcore because the PTP
    /// worker took none for 50 us while they waited
    uint64_t applied_by_main_for_worker = 0;
    uint64_t rejected = 0;
    uint64_t acks_dropped = 0;
    uint64_t keys_expired = 0;
    uint64_t retire_ring_full = 0; ///< retired keys the PTP worker was not told of (windows age out)
    uint64_t generation = 0;       ///< SA versions published
    latency_histogram apply_latency;
    std::string last_rejected; ///< "OP spp S key K: why" of the last rejected update; empty if none
};

/// "SA updates (LABEL): applied ... | apply latency p50 .. p99 .. max .. µs", then, if an update was
/// rejected, "  last rejected: OP spp S key K: why" on a line of its own
void print_service_stats(std::FILE* out, const service_stats& s, std::string_view label);

/// The counters one worker writes: one per path, in the order of the paths.
struct worker_counters {
    unsigned lcore = 0;
    std::span<const path_counters> paths;
};

/// Path i's counters summed over the workers (snapshots): one per path.
std::vector<path_counters> sum_counters(std::span<const worker_counters> workers, size_t npaths);

uint64_t total_rx(std::span<const worker_counters> workers) noexcept;

/// Event records the full ring refused, over every worker and path.
uint64_t total_events_ring_full(std::span<const worker_counters> workers) noexcept;

/// A path's counters as /ptpsec/stats and --stats-json give them: name,
/// policy, rx_port, tx_port, dropped, the exported counters
/// (path_counter_fields), "drops" by reason in drop_reasons()' order and
/// "malformed" by cause. With `every_reason`, every reason and cause, zero
/// or not (telemetry: readers see a fixed set); otherwise those that counted.
nlohmann::ordered_json path_json(const path_config& p, const path_counters& c, bool every_reason);

/// A worker's share over all its paths: rx, tx, handed_off, dropped.
nlohmann::ordered_json worker_json(const worker_counters& w);

/// One line per path (summed over workers); with several workers, one more
/// per worker: control/status_text.h's path_line and worker_line, as
/// `ptpsecctl stats` prints them.
void print_stats(std::FILE* out, std::span<const path_config> paths, std::span<const worker_counters> workers,
                 std::string_view label);

/// The replay table's counters, read with relaxed loads while the PTP
/// worker writes them; all zero (window 0) without a table
/// (--replay-window 0).
struct replay_snapshot {
    uint32_t window = 0;
    size_t capacity = 0;
    uint64_t size = 0; ///< windows in use: opened - evicted - retired
    std::array<uint64_t, replay_verdict_count> verdicts{};
    uint64_t late = 0;
    uint64_t opened = 0;
    uint64_t evicted = 0;
    uint64_t retired = 0;
};

replay_snapshot snapshot_replay(const replay_table* table) noexcept;

/// The "replay" object of /ptpsec/stats and --stats-json: window (0: off),
/// capacity, size, accepted, replayed, too_old, late, opened, evicted,
/// retired.
nlohmann::ordered_json replay_json(const replay_snapshot& r);

/// "  replay (LABEL): " and control/status_text.h's replay_line.
void print_replay_stats(std::FILE* out, const replay_snapshot& r, std::string_view label);

/// {"paths": [{"name": ..., "policy": ..., "rx": ..., "drops": {"bad_icv": ...}, "malformed": {...}}],
///  "workers": [{"lcore": 1, "rx": ..., "tx": ..., "handed_off": ..., "dropped": ...}],
///  "replay": {"window", "capacity", "size", "accepted", "replayed", "too_old", "late", "opened", "evicted",
///  "retired"}}
/// With `svc`, also "sa_updates": {"applied", "rejected", "keys_expired", "apply_latency_us": {"p50", "p99",
/// "max", "mean", "samples"}}.
std::string stats_json(std::span<const path_config> paths, std::span<const worker_counters> workers,
                       const replay_snapshot& replay, const service_stats* svc = nullptr);

} // namespace ptpsec
