#pragma once

// Counters of ptpsec-dataplane for people (one block per path) and for
// programs (JSON). Each worker lcore writes its own; these read them with
// relaxed loads while they run and add them up per path.

#include <dataplane/worker.h>

#include <cstdio>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec {

/// The counters of one path, as a snapshot.
path_counters snapshot(const path_counters& c) noexcept;

/// The counters one worker writes: one per path, in the order of the paths.
struct worker_counters {
    unsigned lcore = 0;
    std::span<const path_counters> paths;
};

/// Path i's counters summed over the workers (snapshots): one per path.
std::vector<path_counters> sum_counters(std::span<const worker_counters> workers, size_t npaths);

uint64_t total_rx(std::span<const worker_counters> workers) noexcept;

/// One line per path (summed over workers); with several workers, one more
/// per worker.
void print_stats(std::FILE* out, std::span<const path_config> paths, std::span<const worker_counters> workers,
                 std::string_view label);

/// {"paths": [{"name": ..., "policy": ..., "rx": ..., "drops": {"bad_icv": ...}, "malformed": {...}}],
///  "workers": [{"lcore": 1, "rx": ..., "tx": ..., "handed_off": ..., "dropped": ...}]}
std::string stats_json(std::span<const path_config> paths, std::span<const worker_counters> workers);

} // namespace ptpsec
