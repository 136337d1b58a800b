#pragma once

// DPDK telemetry commands of ptpsec-dataplane. DPDK serves them on
// <runtime dir>/dpdk/<file-prefix>/dpdk_telemetry.v2 (/var/run/dpdk/rte/...
// for root with the default prefix); dpdk-telemetry.py and `ptpsecctl stats`
// read them:
//
//   /ptpsec/stats  per path (summed over workers): policy, rx, tx, dropped,
//                  non-PTP, signed, verified, stripped, ticket requests handed
//                  to the control plane and frames it gave back, every drop
//                  reason and malformed cause by name; the replay table's
//                  counters, size and window; per worker lcore: rx, tx,
//                  handed over, dropped
//   /ptpsec/ports  per port: name, role, driver, link, rte_eth_stats
//   /ptpsec/sa     per SA: SPP, allow_mutable, seqid_window, the key IDs it
//                  retired (removed or expired); per key: key ID, algorithm,
//                  ICV length, current, seconds of lifetime left or "never".
//                  Never key bytes.
//   /ptpsec/attest attestation (--attest): backend, signer_id,
//                  hardware_rooted, events submitted, signed and held,
//                  batches, missed (ring, overflow), sign and log failures,
//                  largest batch, last counter, event-to-token latency
//                  p50/p99/max in µs, last_error; null without --attest.
//
// The callbacks run on DPDK's telemetry threads while the workers run. They
// read counters with relaxed loads (as snapshot() does), read the SA table
// as an RCU reader of their own, and take nothing else from the fast path.

#include <dataplane/app/attest.h>
#include <dataplane/app/stats.h>
#include <dataplane/replay.h>
#include <dataplane/sa_table.h>
#include <dataplane/worker.h>

#include <cstdint>
#include <memory>
#include <span>

namespace ptpsec {

/// What the commands answer from. Everything must outlive the publication.
struct telemetry_sources {
    std::span<const path_config> paths;
    std::span<const worker_counters> workers; ///< each with one per path, summed on read
    uint16_t inside_port = 0;
    uint16_t outside_port = 1;
    /// The SAs, read as reader `sa_reader` of the table (an ID no worker
    /// uses; the commands use it one at a time).
    sa_table* sat = nullptr;
    unsigned sa_reader = 0;
    const replay_table* replay = nullptr; ///< null: no replay protection
    const attestation* attest = nullptr;  ///< null: no --attest
};

/// While it lives, the commands answer from its sources; once it is
/// destroyed they answer null. Destroy it after the workers stop and before
/// the ports are closed.
class telemetry_publication {
public:
    explicit telemetry_publication(const telemetry_sources& src);
    ~telemetry_publication();
    telemetry_publication(const telemetry_publication&) = delete;
    telemetry_publication& operator=(const telemetry_publication&) = delete;
    telemetry_publication(telemetry_publication&&) = delete;
    telemetry_publication& operator=(telemetry_publication&&) = delete;

private:
    telemetry_sources _src;
};

/// Registers the commands with DPDK (once per process) and publishes `src`.
/// A command DPDK refuses is reported on stderr and left out: the data plane
/// runs without it. With the EAL option --no-telemetry the commands are
/// registered but no socket serves them.
std::unique_ptr<telemetry_publication> publish_telemetry(const telemetry_sources& src);

} // namespace ptpsec
