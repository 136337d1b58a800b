#pragma once

// ICV engine on intel-ipsec-mb. One instance per lcore (it owns its
// multi-buffer managers, which are not thread-safe). Key schedules are
// expanded in prepare()/rekey(); compute_burst() only fills jobs (HMAC,
// AES-CMAC) or calls the direct GCM function (AES-GMAC).

#include <drivers/icv/engine.h>

#include <array>
#include <cstdint>
#include <string>

struct IMB_MGR;

namespace ptpsec::icv {

/// intel-ipsec-mb code paths, named as the library names its managers.
enum class imb_arch : uint8_t { sse, avx, avx2, avx512 };

inline constexpr size_t imb_arch_count = 4;

std::string_view arch_name(imb_arch arch) noexcept;
std::optional<imb_arch> arch_from_name(std::string_view name) noexcept;

/// Which manager serves each algorithm.
using arch_plan = std::array<imb_arch, algorithm_count>;

/// The manager each algorithm runs on by default on this CPU. Measured on an
/// AMD EPYC and an Intel Xeon, both with SHA-NI, VAES and AVX-512
/// (docs/benchmarks.md): HMAC-SHA256 is fastest through the SSE manager,
/// whose SHA-NI code hashes one message at a time (about 110-140 ns single,
/// 80-90 ns in bursts), while the AVX-512 manager runs 16 lanes and costs
/// 750-1,000 ns for a lone message. AES-CMAC is as fast on SSE as on wider
/// managers at PTP sizes. AES-GMAC, which is not queued but computed through
/// the manager's direct GCM call, is fastest on the AVX-512 manager where the
/// CPU has VAES and VPCLMULQDQ (on the Xeon about 12 ns per 108-octet message
/// in bursts, 17-20 ns on the others). Without SHA-NI, HMAC moves to AVX2.
arch_plan default_arch_plan() noexcept;

/// The plan with one architecture for every algorithm (benchmarks, tests).
arch_plan uniform_arch_plan(imb_arch arch) noexcept;

/// True if this CPU can run the manager.
bool arch_supported(imb_arch arch) noexcept;

class ipsecmb_engine final : public engine {
public:
    /// Largest burst handed to the library in one call; longer bursts are
    /// split.
    static constexpr uint16_t max_burst = 64;

    explicit ipsecmb_engine(const arch_plan& plan = default_arch_plan());
    ~ipsecmb_engine() override;
    ipsecmb_engine(const ipsecmb_engine&) = delete;
    ipsecmb_engine& operator=(const ipsecmb_engine&) = delete;
    ipsecmb_engine(ipsecmb_engine&&) = delete;
    ipsecmb_engine& operator=(ipsecmb_engine&&) = delete;

    std::string_view name() const noexcept override { return _name; }
    result<key_handle> prepare(algorithm alg, std::span<const uint8_t> key) override;
    bool rekey(prepared_key& pk, std::span<const uint8_t> key) noexcept override;
    /// Allocation only: no key schedule is computed for a slot.
    result<key_handle> prepare_slot(algorithm alg) override;
    uint16_t compute_burst(const mac_request* reqs, uint16_t n) noexcept override;

    imb_arch arch_for(algorithm alg) const noexcept { return _plan[static_cast<size_t>(alg)]; }

private:
    IMB_MGR* manager_for(algorithm alg) const noexcept;
    uint16_t run_hmac(const mac_request* reqs, const uint16_t* idx, uint16_t n, algorithm alg) noexcept;
    uint16_t run_queued(IMB_MGR* mgr, const mac_request* reqs, const uint16_t* idx, uint16_t n) noexcept;

    arch_plan _plan;
    std::array<IMB_MGR*, imb_arch_count> _mgr{};
    std::string _name;
    /// Scratch job array for the synchronous hash-burst API (HMAC).
    struct job_array;
    std::unique_ptr<job_array> _jobs;
};

} // namespace ptpsec::icv
