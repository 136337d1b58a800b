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

#include <drivers/base/embedded_eal.h>
#include <drivers/icv/cryptodev_engine.h>

#include <array>
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

/// Empty once EAL is up with the crypto vdevs, else why not.
const std::string& eal_started() {
    embedded_eal_options o{.program = "ptpsec-bench", .vdevs = {}, .extra = {"-m", "512"}};
    for (const auto& p : pmds) {
        o.vdevs.emplace_back(p.device);
    }
    return start_embedded_eal(o);
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
