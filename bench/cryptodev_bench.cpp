// The ICV engine on DPDK crypto devices (drivers/icv/cryptodev_engine.h),
// beside the intel-ipsec-mb engine's engine/ cells:
//
//   cryptodev-aesni_mb/ALG/90/BURST  on crypto_aesni_mb (intel-ipsec-mb
//                                    behind the cryptodev API)
//   cryptodev-openssl/ALG/90/BURST   on crypto_openssl
//
// Both are software PMDs: they show what the cryptodev path itself costs
// (copying each message into DPDK memory, building, enqueueing and
// dequeueing operations) on top of the same crypto, which a hardware device
// would replace with its own. EAL starts on the first such cell, without
// hugepages, on the CPU the benchmark runs on.

#include <bench/bench.h>

#include <drivers/icv/cryptodev_engine.h>

#include <fmt/format.h>
#include <rte_eal.h>
#include <rte_errno.h>

#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ptpsec::bench {
namespace {

struct crypto_pmd {
    const char* family;
    const char* device;
};

constexpr std::array<crypto_pmd, 2> pmds = {
    {{"cryptodev-aesni_mb", "crypto_aesni_mb0"}, {"cryptodev-openssl", "crypto_openssl0"}}};

std::string& eal_runtime_dir() {
    static std::string dir;
    return dir;
}

void eal_stop() {
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all(eal_runtime_dir(), ec);
}

/// Empty once EAL is up with the crypto vdevs, else why not.
const std::string& eal_started() {
    static const std::string failure = [] {
        cpu_set_t mask;
        CPU_ZERO(&mask);
        sched_getaffinity(0, sizeof(mask), &mask);
        int cpu = 0;
        while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &mask)) {
            ++cpu;
        }
        std::vector<std::string> args = {"ptpsec-bench",
                                         "--no-huge",
                                         "-m",
                                         "512",
                                         "--no-pci",
                                         "--no-shconf",
                                         "--no-telemetry",
                                         fmt::format("--file-prefix=ptpsec-bench-{}", getpid()),
                                         "-l",
                                         std::to_string(cpu),
                                         "--log-level=error"};
        for (const auto& p : pmds) {
            args.push_back(fmt::format("--vdev={}", p.device));
        }
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        const int rc = rte_eal_init(static_cast<int>(args.size()), argv.data());
        sched_setaffinity(0, sizeof(mask), &mask); // EAL pinned this thread to one CPU
        if (rc < 0) {
            return std::string("rte_eal_init: ") + rte_strerror(rte_errno);
        }
        eal_runtime_dir() = rte_eal_get_runtime_dir();
        std::atexit(eal_stop);
        return std::string();
    }();
    return failure;
}

/// Each device opened once for the whole run.
result<std::shared_ptr<icv::crypto_device>> device(const char* name) {
    static std::map<std::string, std::shared_ptr<icv::crypto_device>> open;
    if (auto it = open.find(name); it != open.end()) {
        return it->second;
    }
    auto d = icv::crypto_device::open(name, {});
    if (!d) {
        return d.err();
    }
    open[name] = *d;
    return *d;
}

void bm_cryptodev(benchmark::State& state, const char* name, icv::algorithm alg, uint16_t burst) {
    if (const std::string& why = eal_started(); !why.empty()) {
        state.SkipWithError(why.c_str());
        return;
    }
    auto dev = device(name);
    if (!dev) {
        state.SkipWithError(dev.message().c_str());
        return;
    }
    if (auto st = (*dev)->supports(alg, test_key(alg).size()); !st) {
        state.SkipWithError(st.message().c_str());
        return;
    }
    auto eng = icv::cryptodev_engine::create(*dev, 0);
    if (!eng) {
        state.SkipWithError(eng.message().c_str());
        return;
    }
    run_engine_cell(state, **eng, alg, arch_message_length, burst);
}

} // namespace

void register_cryptodev_benchmarks() {
    for (const auto& p : pmds) {
        for (const auto& ai : icv::all_algorithms()) {
            for (const uint16_t burst : arch_bursts) {
                benchmark::RegisterBenchmark(cell_name(p.family, ai.alg, arch_message_length, burst).c_str(),
                                             [=](benchmark::State& s) { bm_cryptodev(s, p.device, ai.alg, burst); })
                    ->Unit(benchmark::kNanosecond);
            }
        }
    }
}

} // namespace ptpsec::bench
