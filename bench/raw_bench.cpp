// raw/ALG/BYTES/BURST and raw-arch/ALG/ARCH/90/BURST: intel-ipsec-mb called
// directly, without our engine, frames or SAs (jobs are filled with the same
// inline field setter, drivers/icv/imb_jobs.h). This is the ceiling the sign
// and verify paths are measured against. Key schedules are expanded once
// before the loop; inside it every job is filled (as any caller must) and
// submitted through the API the engine uses for that algorithm: the
// synchronous hash-burst API for HMAC, GET_NEXT/SUBMIT_NOCHECK/FLUSH_BURST
// for CMAC (the engine fills every field itself, icv::job_checks),
// the direct GCM call with the message as additional authenticated data for
// GMAC (icv::gmac_one(), the library's fastest GMAC: it needs no job).

#include <bench/bench.h>
#include <bench/frames.h>

#include <drivers/base/bytes.h>
#include <drivers/icv/imb_jobs.h>
#include <drivers/icv/ipsecmb_engine.h>
#include <drivers/icv/openssl_engine.h>

#include <fmt/format.h>
#include <intel-ipsec-mb.h>

#include <array>
#include <cstring>
#include <memory>

namespace ptpsec::bench {

namespace {

constexpr size_t sha256_block = 64;

/// Every kind of key material; the algorithm says which part is used.
struct raw_key {
    alignas(64) gcm_key_data gcm;
    alignas(16) uint8_t ipad[IMB_SHA256_DIGEST_SIZE_IN_BYTES];
    alignas(16) uint8_t opad[IMB_SHA256_DIGEST_SIZE_IN_BYTES];
    alignas(16) uint32_t enc_keys[60];
    alignas(16) uint8_t k1[16];
    alignas(16) uint8_t k2[16];
};

struct manager_deleter {
    void operator()(IMB_MGR* m) const noexcept { free_mb_mgr(m); }
};
using manager_ptr = std::unique_ptr<IMB_MGR, manager_deleter>;

manager_ptr make_manager(icv::imb_arch arch) {
    manager_ptr m(alloc_mb_mgr(0));
    if (!m) {
        return m;
    }
    switch (arch) {
    case icv::imb_arch::sse:
        init_mb_mgr_sse(m.get());
        break;
    case icv::imb_arch::avx:
        init_mb_mgr_avx(m.get());
        break;
    case icv::imb_arch::avx2:
        init_mb_mgr_avx2(m.get());
        break;
    case icv::imb_arch::avx512:
        init_mb_mgr_avx512(m.get());
        break;
    }
    if (imb_get_errno(m.get()) != 0) {
        m.reset();
    }
    return m;
}

IMB_HASH_ALG hash_alg_of(icv::algorithm alg) noexcept {
    switch (alg) {
    case icv::algorithm::hmac_sha256_128:
    case icv::algorithm::hmac_sha256:
        return IMB_AUTH_HMAC_SHA_256;
    case icv::algorithm::aes_cmac_128:
        return IMB_AUTH_AES_CMAC;
    case icv::algorithm::aes_cmac_256:
        return IMB_AUTH_AES_CMAC_256;
    case icv::algorithm::aes_gmac_128:
        return IMB_AUTH_AES_GMAC_128;
    case icv::algorithm::aes_gmac_192:
        return IMB_AUTH_AES_GMAC_192;
    case icv::algorithm::aes_gmac_256:
        return IMB_AUTH_AES_GMAC_256;
    }
    return IMB_AUTH_NULL;
}

void expand_key(IMB_MGR* m, icv::algorithm alg, const std::vector<uint8_t>& key, raw_key& k) {
    switch (alg) {
    case icv::algorithm::hmac_sha256_128:
    case icv::algorithm::hmac_sha256: {
        // FIPS 198-1 with a key no longer than the block: pad it, then keep
        // the states after the ipad and opad blocks.
        alignas(16) uint8_t pad[sha256_block] = {};
        std::memcpy(pad, key.data(), key.size());
        for (auto& b : pad) {
            b ^= 0x36;
        }
        IMB_SHA256_ONE_BLOCK(m, pad, k.ipad);
        for (auto& b : pad) {
            b ^= 0x36 ^ 0x5c;
        }
        IMB_SHA256_ONE_BLOCK(m, pad, k.opad);
        break;
    }
    case icv::algorithm::aes_cmac_128: {
        alignas(16) uint32_t dec[60];
        IMB_AES_KEYEXP_128(m, key.data(), k.enc_keys, dec);
        IMB_AES_CMAC_SUBKEY_GEN_128(m, k.enc_keys, k.k1, k.k2);
        break;
    }
    case icv::algorithm::aes_cmac_256: {
        alignas(16) uint32_t dec[60];
        IMB_AES_KEYEXP_256(m, key.data(), k.enc_keys, dec);
        IMB_AES_CMAC_SUBKEY_GEN_256(m, k.enc_keys, k.k1, k.k2);
        break;
    }
    case icv::algorithm::aes_gmac_128:
        IMB_AES128_GCM_PRE(m, key.data(), &k.gcm);
        break;
    case icv::algorithm::aes_gmac_192:
        IMB_AES192_GCM_PRE(m, key.data(), &k.gcm);
        break;
    case icv::algorithm::aes_gmac_256:
        IMB_AES256_GCM_PRE(m, key.data(), &k.gcm);
        break;
    }
}

/// Everything an HMAC or AES-CMAC job needs; what the library reads for a
/// hash-only job.
void fill_job(IMB_JOB* job, icv::algorithm alg, const raw_key& k, const uint8_t* msg, uint32_t len,
              uint8_t* tag) noexcept {
    icv::fill_hash_job(job, msg, len, tag, icv::icv_length(alg), hash_alg_of(alg));
    if (is_hmac(alg)) {
        job->u.HMAC._hashed_auth_key_xor_ipad = k.ipad;
        job->u.HMAC._hashed_auth_key_xor_opad = k.opad;
    } else {
        job->u.CMAC._key_expanded = k.enc_keys;
        job->u.CMAC._skey1 = k.k1;
        job->u.CMAC._skey2 = k.k2;
    }
}

/// One burst of MACs through the API the engine uses for `alg`. Each ICV
/// goes right after its message in the same slot, where sign puts it in the
/// frame. Returns the number completed.
uint32_t mac_burst(IMB_MGR* m, icv::algorithm alg, const raw_key& k, std::vector<frame_slot>& msgs, uint32_t len,
                   const uint8_t* nonce, IMB_JOB* hash_jobs, uint16_t burst) noexcept {
    if (is_hmac(alg)) {
        for (uint16_t i = 0; i < burst; ++i) {
            fill_job(&hash_jobs[i], alg, k, msgs[i].bytes, len, msgs[i].bytes + len);
        }
        return IMB_SUBMIT_HASH_BURST(m, hash_jobs, burst, IMB_AUTH_HMAC_SHA_256);
    }
    if (icv::is_gmac(alg)) {
        for (uint16_t i = 0; i < burst; ++i) {
            icv::gmac_one(m, alg, &k.gcm, nonce, msgs[i].bytes, len, msgs[i].bytes + len, icv::icv_length(alg));
        }
        return burst;
    }
    IMB_JOB* jobs[icv::ipsecmb_engine::max_burst];
    if (IMB_GET_NEXT_BURST(m, burst, jobs) < burst) {
        return 0;
    }
    for (uint16_t i = 0; i < burst; ++i) {
        fill_job(jobs[i], alg, k, msgs[i].bytes, len, msgs[i].bytes + len);
    }
    uint32_t ok = 0;
    const uint32_t completed = IMB_SUBMIT_BURST_NOCHECK(m, burst, jobs);
    for (uint32_t i = 0; i < completed; ++i) {
        ok += jobs[i]->status == IMB_STATUS_COMPLETED;
    }
    const uint32_t flushed = IMB_FLUSH_BURST(m, burst, jobs);
    for (uint32_t i = 0; i < flushed; ++i) {
        ok += jobs[i]->status == IMB_STATUS_COMPLETED;
    }
    return ok;
}

void bm_raw(benchmark::State& state, icv::algorithm alg, icv::imb_arch arch, uint16_t message_len, uint16_t burst) {
    const manager_ptr mgr = make_manager(arch);
    if (!mgr) {
        state.SkipWithError("cannot create the intel-ipsec-mb manager");
        return;
    }
    const std::vector<uint8_t> key = test_key(alg);
    auto k = std::make_unique<raw_key>();
    expand_key(mgr.get(), alg, key, *k);

    const auto len = static_cast<uint32_t>(mac_length(alg, message_len));
    std::vector<frame_slot> msgs(burst);
    for (uint16_t i = 0; i < burst; ++i) {
        for (uint32_t j = 0; j < len; ++j) {
            msgs[i].bytes[j] = static_cast<uint8_t>(i * 31 + j * 7);
        }
    }
    const std::array<uint8_t, icv::gmac_nonce_len> nonce = {1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 1};
    std::vector<IMB_JOB> hash_jobs(burst);
    std::memset(hash_jobs.data(), 0, hash_jobs.size() * sizeof(IMB_JOB));

    // The ceiling must compute the real MAC: check one against OpenSSL.
    if (mac_burst(mgr.get(), alg, *k, msgs, len, nonce.data(), hash_jobs.data(), burst) != burst) {
        state.SkipWithError(
            fmt::format("intel-ipsec-mb: burst failed: {}", imb_get_strerror(imb_get_errno(mgr.get()))).c_str());
        return;
    }
    icv::openssl_engine reference;
    auto rk = reference.prepare(alg, key);
    std::array<uint8_t, icv::max_icv_len> want{};
    if (!rk ||
        !reference.compute_one(**rk, std::span<const uint8_t>(msgs[burst - 1].bytes, len), nonce.data(), want.data()) ||
        std::memcmp(want.data(), msgs[burst - 1].bytes + len, icv::icv_length(alg)) != 0) {
        state.SkipWithError("raw intel-ipsec-mb MAC differs from OpenSSL");
        return;
    }

    for (auto _ : state) {
        if (mac_burst(mgr.get(), alg, *k, msgs, len, nonce.data(), hash_jobs.data(), burst) != burst) {
            state.SkipWithError("intel-ipsec-mb: burst failed");
            break;
        }
        benchmark::ClobberMemory();
    }
    report_per_packet(state, burst, len);
}

} // namespace

void register_raw(icv::algorithm alg, uint16_t message_len, uint16_t burst) {
    const icv::imb_arch arch = icv::default_arch_plan()[static_cast<size_t>(alg)];
    benchmark::RegisterBenchmark(cell_name("raw", alg, message_len, burst).c_str(), [=](benchmark::State& s) {
        bm_raw(s, alg, arch, message_len, burst);
    })->Unit(benchmark::kNanosecond);
}

void register_raw_arch_benchmarks() {
    for (const auto& ai : icv::all_algorithms()) {
        const icv::algorithm alg = ai.alg;
        for (auto arch : {icv::imb_arch::sse, icv::imb_arch::avx, icv::imb_arch::avx2, icv::imb_arch::avx512}) {
            if (!icv::arch_supported(arch)) {
                continue;
            }
            for (uint16_t burst : arch_bursts) {
                const std::string name =
                    fmt::format("raw-arch/{}/{}/{}/{}", ai.name, icv::arch_name(arch), arch_message_length, burst);
                benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& s) {
                    bm_raw(s, alg, arch, arch_message_length, burst);
                })->Unit(benchmark::kNanosecond);
            }
        }
    }
}

} // namespace ptpsec::bench
