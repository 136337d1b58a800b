#pragma once

// EAL for the drivers test binary, started once by the first test that needs
// it (rte_eal_init cannot run twice in a process) and cleaned up at exit. Its
// virtual devices: two ethdev PMDs without timesync for the clock tests, and
// three software crypto devices for the cryptodev engine tests.

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_errno.h>

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace ptpsec::test {

/// EAL for this process, started once (see the top of this file).
class eal_session {
public:
    /// Empty on success, else why EAL did not start.
    static const std::string& start() {
        static const std::string failure = init();
        return failure;
    }

private:
    static std::string init() {
        // EAL pins the calling thread to its main lcore; the other suites of
        // this binary start threads of their own, so the mask is put back.
        cpu_set_t mask;
        CPU_ZERO(&mask);
        if (sched_getaffinity(0, sizeof(mask), &mask) != 0) {
            return std::string("sched_getaffinity: ") + std::strerror(errno);
        }
        int first_cpu = 0;
        while (first_cpu < CPU_SETSIZE && !CPU_ISSET(first_cpu, &mask)) {
            ++first_cpu;
        }
        parent_existed() = access("/var/run/dpdk", F_OK) == 0;
        std::vector<std::string> args = {
            "ptpsec-test-drivers",
            "--no-huge",
            "--no-pci",
            "--no-shconf",
            "--no-telemetry",
            "--file-prefix=ptpsec-drivers-test-" + std::to_string(getpid()),
            "--vdev=net_null0",
            "--vdev=net_ring0",
            "--vdev=crypto_aesni_mb0",
            "--vdev=crypto_openssl0",
            "--vdev=crypto_null0",
            "-l",
            std::to_string(first_cpu),
            "--log-level=error",
        };
        std::vector<char*> argv;
        argv.reserve(args.size() + 1);
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        const int rc = rte_eal_init(static_cast<int>(args.size()), argv.data());
        sched_setaffinity(0, sizeof(mask), &mask);
        if (rc < 0) {
            return std::string("rte_eal_init: ") + rte_strerror(rte_errno);
        }
        runtime_dir() = rte_eal_get_runtime_dir();
        std::atexit(stop);
        return {};
    }

    static void stop() {
        rte_eal_cleanup();
        // The runtime directory stays empty with --no-shconf and no
        // telemetry; remove it, and its parent if EAL made that too.
        std::error_code ec;
        namespace fs = std::filesystem;
        if (!runtime_dir().empty()) {
            fs::remove(runtime_dir(), ec);
        }
        if (!parent_existed()) {
            fs::remove("/var/run/dpdk", ec);
        }
    }

    static std::string& runtime_dir() {
        static std::string dir;
        return dir;
    }
    static bool& parent_existed() {
        static bool existed = true;
        return existed;
    }
};

} // namespace ptpsec::test
