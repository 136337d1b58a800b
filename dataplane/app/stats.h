#pragma once

// Counters of ptpsec-dataplane for people (one block per path) and for
// programs (JSON). The worker lcore writes them; these read them with
// relaxed loads while it runs.

#include <dataplane/worker.h>

#include <cstdio>
#include <span>
#include <string>
#include <string_view>

namespace ptpsec {

/// The counters of one path, as a snapshot.
path_counters snapshot(const path_counters& c) noexcept;

uint64_t total_rx(std::span<const path_counters> counters) noexcept;

void print_stats(std::FILE* out, std::span<const path_config> paths, std::span<const path_counters> counters,
                 std::string_view label);

/// {"paths": [{"name": ..., "policy": ..., "rx": ..., "drops": {"bad_icv": ...}, "malformed": {...}}]}
std::string stats_json(std::span<const path_config> paths, std::span<const path_counters> counters);

} // namespace ptpsec
