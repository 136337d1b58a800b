#pragma once

// What every user of intel-ipsec-mb's job API here shares: filling a job
// that only hashes (a MAC or a digest, no cipher) and taking a burst of jobs
// from a manager without ever waiting. Includes the library's header, so it
// is for the .cpp files that drive the library.

#include <drivers/icv/ipsecmb_engine.h>

#include <intel-ipsec-mb.h>

#include <cstdint>
#include <string>

namespace ptpsec::icv {

/// The CPU features intel-ipsec-mb detected (IMB_FEATURE_*), read once.
uint64_t cpu_features() noexcept;

/// True if the CPU has every feature in `flags`.
inline bool cpu_has(uint64_t flags) noexcept {
    return (cpu_features() & flags) == flags;
}

/// A new manager for `arch`, initialised; null, with `why` saying what went
/// wrong, when the CPU cannot run it or the library fails. free_mb_mgr()
/// releases it.
IMB_MGR* new_manager(imb_arch arch, std::string& why) noexcept;

/// Sets the fields every hash-only job needs; the caller adds the
/// algorithm's own (keys, IV) and, if it wants, user_data. `src` must not be
/// null even for an empty message (IMB_ERR_JOB_NULL_SRC).
inline void fill_hash_job(IMB_JOB* job, const uint8_t* src, uint64_t len, uint8_t* tag, uint64_t tag_len,
                          IMB_HASH_ALG alg) noexcept {
    job->cipher_mode = IMB_CIPHER_NULL;
    job->cipher_direction = IMB_DIR_ENCRYPT;
    job->chain_order = IMB_ORDER_HASH_CIPHER;
    job->src = src;
    job->dst = nullptr;
    job->msg_len_to_cipher_in_bytes = 0;
    job->cipher_start_src_offset_in_bytes = 0;
    job->hash_start_src_offset_in_bytes = 0;
    job->msg_len_to_hash_in_bytes = len;
    job->auth_tag_output = tag;
    job->auth_tag_output_len_in_bytes = tag_len;
    job->hash_alg = alg;
}

/// One AES-GMAC, computed at once through the manager's direct GCM call:
/// GMAC is GCM with the whole message as additional authenticated data and
/// no plaintext (NIST SP 800-38D §3, RFC 4543 §3). On the CPUs measured
/// (docs/benchmarks.md) this is several times faster per message than a GMAC
/// job through the queue, alone or in bursts, because it skips the job
/// manager's checks, queueing and flush. `k` must have been expanded by a
/// manager of the same architecture as `m` (the key layout differs between
/// them); `alg` must be a GMAC algorithm. Allocates nothing; no checks that
/// the caller has not made.
inline void gmac_one(IMB_MGR* m, algorithm alg, const gcm_key_data* k, const uint8_t* nonce, const uint8_t* msg,
                     uint64_t len, uint8_t* tag, uint64_t tag_len) noexcept {
    // Non-null pointers for the empty plaintext and for an empty message:
    // the library's parameter checks refuse null ones.
    static uint8_t no_text[1] = {};
    const uint8_t* aad = len != 0 ? msg : no_text;
    gcm_context_data ctx;
    switch (alg) {
    case algorithm::aes_gmac_192:
        IMB_AES192_GCM_ENC(m, k, &ctx, no_text, no_text, 0, nonce, aad, len, tag, tag_len);
        break;
    case algorithm::aes_gmac_256:
        IMB_AES256_GCM_ENC(m, k, &ctx, no_text, no_text, 0, nonce, aad, len, tag, tag_len);
        break;
    default:
        IMB_AES128_GCM_ENC(m, k, &ctx, no_text, no_text, 0, nonce, aad, len, tag, tag_len);
        break;
    }
}

/// Takes `n` jobs (at most IMB_MAX_JOBS) from a manager's queue for one
/// burst. Callers flush before they return, so the queue is empty; should
/// jobs of an earlier call still hold it, they are flushed rather than
/// waited for. False if the manager cannot give n jobs even then.
bool take_job_burst(IMB_MGR* m, uint32_t n, IMB_JOB** jobs) noexcept;

/// Whether intel-ipsec-mb validates every job of a burst before running it
/// (IMB_SUBMIT_BURST) or not (IMB_SUBMIT_BURST_NOCHECK). `off` is for jobs
/// whose every field the caller sets from values it has checked itself: a
/// bad field then is a crash or a wrong MAC, not an error. For AES-CMAC at
/// PTP sizes the checks cost about a fifth of the MAC in bursts
/// (docs/benchmarks.md).
enum class job_checks : uint8_t { on, off };

/// Submits the `n` jobs take_job_burst() gave and the caller filled, then
/// flushes what the manager holds back, so that none stays queued. Returns
/// how many completed (IMB_STATUS_COMPLETED); 0 when the library refused
/// the burst.
uint32_t run_job_burst(IMB_MGR* m, IMB_JOB** jobs, uint32_t n, job_checks checks = job_checks::on) noexcept;

} // namespace ptpsec::icv
