#include <drivers/icv/sha256_burst.h>

#include <drivers/icv/imb_jobs.h>

#include <fmt/format.h>

namespace ptpsec::icv {

result<std::unique_ptr<sha256_burst>> sha256_burst::create(std::optional<imb_arch> arch) {
    if (!arch) {
        if (cpu_has(IMB_FEATURE_SHANI) || !arch_supported(imb_arch::avx2)) {
            arch = imb_arch::sse;
        } else {
            arch = arch_supported(imb_arch::avx512) ? imb_arch::avx512 : imb_arch::avx2;
        }
    }
    std::string why;
    IMB_MGR* m = new_manager(*arch, why);
    if (m == nullptr) {
        return error{fmt::format("SHA-256 on intel-ipsec-mb: {}", why)};
    }
    return std::unique_ptr<sha256_burst>(new sha256_burst(m, *arch));
}

sha256_burst::~sha256_burst() {
    free_mb_mgr(_mgr);
}

bool sha256_burst::hash(std::span<const sha256_input> inputs) noexcept {
    IMB_JOB* jobs[burst];
    size_t at = 0;
    while (at < inputs.size()) {
        const auto n = static_cast<uint32_t>(std::min<size_t>(burst, inputs.size() - at));
        if (!take_job_burst(_mgr, n, jobs)) {
            return false;
        }
        for (uint32_t i = 0; i < n; ++i) {
            const sha256_input& in = inputs[at + i];
            fill_hash_job(jobs[i], in.data, in.len, in.digest, sha256_digest_len, IMB_AUTH_SHA_256);
        }
        if (run_job_burst(_mgr, jobs, n) != n) {
            return false;
        }
        at += n;
    }
    return true;
}

} // namespace ptpsec::icv
