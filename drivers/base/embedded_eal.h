#pragma once

// EAL inside a program that is not a DPDK application (the test binaries,
// the benchmarks): started once per process, without hugepages, PCI,
// shared config or telemetry, with the virtual devices asked for, on the
// first CPU the calling thread may run on; stopped at exit, its runtime
// directory removed.

#include <string>
#include <vector>

namespace ptpsec {

struct embedded_eal_options {
    /// argv[0]; the file prefix is this and the process ID.
    std::string program;
    /// --vdev values ("crypto_aesni_mb0", "net_ring0").
    std::vector<std::string> vdevs;
    /// Any other EAL arguments ("-m", "512").
    std::vector<std::string> extra;
};

/// Starts EAL with `options` on the first call; every later call returns
/// the first call's outcome whatever its options (EAL starts once in a
/// process). The calling thread's CPU mask is put back afterwards (EAL pins
/// its main lcore). Empty on success, else why EAL did not start.
const std::string& start_embedded_eal(const embedded_eal_options& options);

} // namespace ptpsec
