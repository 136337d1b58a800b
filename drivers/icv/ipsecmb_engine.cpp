#include <drivers/icv/ipsecmb_engine.h>

#include <drivers/base/bytes.h>
#include <drivers/icv/imb_jobs.h>

#include <fmt/format.h>
#include <intel-ipsec-mb.h>

#include <cstring>
#include <new>
#include <stdexcept>

namespace ptpsec::icv {

namespace {

constexpr size_t sha256_block = 64;

struct hmac_material {
    alignas(16) uint8_t ipad[IMB_SHA256_DIGEST_SIZE_IN_BYTES];
    alignas(16) uint8_t opad[IMB_SHA256_DIGEST_SIZE_IN_BYTES];
    /// HMAC of the empty message: intel-ipsec-mb refuses a zero-length HMAC
    /// job (IMB_ERR_JOB_AUTH_LEN), so it is computed here, once per key.
    uint8_t empty_icv[IMB_SHA256_DIGEST_SIZE_IN_BYTES];
};

struct cmac_material {
    // AES-256 has 15 round keys of 16 octets.
    alignas(16) uint32_t enc_keys[60];
    alignas(16) uint8_t k1[16];
    alignas(16) uint8_t k2[16];
};

/// Key material in the layout intel-ipsec-mb expects. Which member is live
/// follows from the algorithm.
class imb_key final : public prepared_key {
public:
    imb_key(algorithm alg, imb_arch a) noexcept : prepared_key(alg, backend::ipsecmb), arch(a) {}
    ~imb_key() override { secure_wipe(&material, sizeof(material)); }
    imb_key(const imb_key&) = delete;
    imb_key& operator=(const imb_key&) = delete;
    imb_key(imb_key&&) = delete;
    imb_key& operator=(imb_key&&) = delete;

    imb_arch arch;
    union material_t {
        hmac_material hmac;
        cmac_material cmac;
        gcm_key_data gcm;
    };
    alignas(64) material_t material{};
};

IMB_HASH_ALG hash_alg_of(algorithm alg) noexcept {
    switch (alg) {
    case algorithm::hmac_sha256_128:
    case algorithm::hmac_sha256:
        return IMB_AUTH_HMAC_SHA_256;
    case algorithm::aes_cmac_128:
        return IMB_AUTH_AES_CMAC;
    case algorithm::aes_cmac_256:
        return IMB_AUTH_AES_CMAC_256;
    case algorithm::aes_gmac_128:
        return IMB_AUTH_AES_GMAC_128;
    case algorithm::aes_gmac_192:
        return IMB_AUTH_AES_GMAC_192;
    case algorithm::aes_gmac_256:
        return IMB_AUTH_AES_GMAC_256;
    }
    return IMB_AUTH_NULL;
}

void init_manager(IMB_MGR* m, imb_arch arch) {
    switch (arch) {
    case imb_arch::sse:
        init_mb_mgr_sse(m);
        break;
    case imb_arch::avx:
        init_mb_mgr_avx(m);
        break;
    case imb_arch::avx2:
        init_mb_mgr_avx2(m);
        break;
    case imb_arch::avx512:
        init_mb_mgr_avx512(m);
        break;
    }
}

/// Expands `key` into `k` with manager `m`. The caller has checked the length.
void expand(IMB_MGR* m, imb_key& k, std::span<const uint8_t> key) noexcept {
    switch (k.alg()) {
    case algorithm::hmac_sha256_128:
    case algorithm::hmac_sha256: {
        // FIPS 198-1: a key longer than the block is hashed first; the
        // inner and outer states after one block are all a message needs.
        alignas(16) uint8_t block[sha256_block] = {};
        if (key.size() > sha256_block) {
            IMB_SHA256(m, key.data(), key.size(), block);
        } else {
            std::memcpy(block, key.data(), key.size());
        }
        // The pad block, then room for the inner hash of the empty message:
        // RFC 2104 §2, HMAC(K, "") = H(K ^ opad || H(K ^ ipad)).
        alignas(16) uint8_t pad[sha256_block + IMB_SHA256_DIGEST_SIZE_IN_BYTES];
        for (size_t i = 0; i < sha256_block; ++i) {
            pad[i] = static_cast<uint8_t>(block[i] ^ 0x36);
        }
        IMB_SHA256_ONE_BLOCK(m, pad, k.material.hmac.ipad);
        IMB_SHA256(m, pad, sha256_block, pad + sha256_block);
        for (size_t i = 0; i < sha256_block; ++i) {
            pad[i] = static_cast<uint8_t>(block[i] ^ 0x5c);
        }
        IMB_SHA256_ONE_BLOCK(m, pad, k.material.hmac.opad);
        IMB_SHA256(m, pad, sizeof(pad), k.material.hmac.empty_icv);
        secure_wipe(block, sizeof(block));
        secure_wipe(pad, sizeof(pad));
        break;
    }
    case algorithm::aes_cmac_128: {
        alignas(16) uint32_t dec[60];
        IMB_AES_KEYEXP_128(m, key.data(), k.material.cmac.enc_keys, dec);
        IMB_AES_CMAC_SUBKEY_GEN_128(m, k.material.cmac.enc_keys, k.material.cmac.k1, k.material.cmac.k2);
        secure_wipe(dec, sizeof(dec));
        break;
    }
    case algorithm::aes_cmac_256: {
        alignas(16) uint32_t dec[60];
        IMB_AES_KEYEXP_256(m, key.data(), k.material.cmac.enc_keys, dec);
        IMB_AES_CMAC_SUBKEY_GEN_256(m, k.material.cmac.enc_keys, k.material.cmac.k1, k.material.cmac.k2);
        secure_wipe(dec, sizeof(dec));
        break;
    }
    case algorithm::aes_gmac_128:
        IMB_AES128_GCM_PRE(m, key.data(), &k.material.gcm);
        break;
    case algorithm::aes_gmac_192:
        IMB_AES192_GCM_PRE(m, key.data(), &k.material.gcm);
        break;
    case algorithm::aes_gmac_256:
        IMB_AES256_GCM_PRE(m, key.data(), &k.material.gcm);
        break;
    }
}

/// Fills the hash-specific fields of an HMAC or AES-CMAC job from a prepared
/// key.
void fill_job(IMB_JOB* job, const mac_request& r) noexcept {
    const auto& k = static_cast<const imb_key&>(*r.key);
    // intel-ipsec-mb refuses a null source even for an empty message
    // (IMB_ERR_JOB_NULL_SRC), and RFC 4493 example 1 is an empty message.
    static const uint8_t empty_message[1] = {};
    fill_hash_job(job, r.len != 0 ? r.msg : empty_message, r.len, r.icv_out, k.icv_len(), hash_alg_of(k.alg()));
    switch (k.alg()) {
    case algorithm::hmac_sha256_128:
    case algorithm::hmac_sha256:
        job->u.HMAC._hashed_auth_key_xor_ipad = k.material.hmac.ipad;
        job->u.HMAC._hashed_auth_key_xor_opad = k.material.hmac.opad;
        break;
    case algorithm::aes_cmac_128:
    case algorithm::aes_cmac_256:
        job->u.CMAC._key_expanded = k.material.cmac.enc_keys;
        job->u.CMAC._skey1 = k.material.cmac.k1;
        job->u.CMAC._skey2 = k.material.cmac.k2;
        break;
    case algorithm::aes_gmac_128:
    case algorithm::aes_gmac_192:
    case algorithm::aes_gmac_256:
        break; // never queued: gmac_one()
    }
}

} // namespace

struct ipsecmb_engine::job_array {
    IMB_JOB jobs[max_burst];
};

std::string_view arch_name(imb_arch arch) noexcept {
    switch (arch) {
    case imb_arch::sse:
        return "sse";
    case imb_arch::avx:
        return "avx";
    case imb_arch::avx2:
        return "avx2";
    case imb_arch::avx512:
        return "avx512";
    }
    return "?";
}

std::optional<imb_arch> arch_from_name(std::string_view name) noexcept {
    for (auto a : {imb_arch::sse, imb_arch::avx, imb_arch::avx2, imb_arch::avx512}) {
        if (arch_name(a) == name) {
            return a;
        }
    }
    return std::nullopt;
}

uint64_t cpu_features() noexcept {
    static const uint64_t features = [] {
        IMB_MGR* m = alloc_mb_mgr(0);
        if (m == nullptr) {
            return uint64_t{0};
        }
        const uint64_t f = m->features;
        free_mb_mgr(m);
        return f;
    }();
    return features;
}

IMB_MGR* new_manager(imb_arch arch, std::string& why) noexcept {
    if (!arch_supported(arch)) {
        why = fmt::format("this CPU cannot run the {} manager", arch_name(arch));
        return nullptr;
    }
    IMB_MGR* m = alloc_mb_mgr(0);
    if (m == nullptr) {
        why = "out of memory for a manager";
        return nullptr;
    }
    init_manager(m, arch);
    if (const int err = imb_get_errno(m); err != 0) {
        why = fmt::format("{} manager: {}", arch_name(arch), imb_get_strerror(err));
        free_mb_mgr(m);
        return nullptr;
    }
    return m;
}

bool arch_supported(imb_arch arch) noexcept {
    switch (arch) {
    case imb_arch::sse:
        return cpu_has(IMB_CPUFLAGS_SSE);
    case imb_arch::avx:
        return cpu_has(IMB_CPUFLAGS_AVX);
    case imb_arch::avx2:
        return cpu_has(IMB_CPUFLAGS_AVX2);
    case imb_arch::avx512:
        return cpu_has(IMB_CPUFLAGS_AVX512);
    }
    return false;
}

arch_plan uniform_arch_plan(imb_arch arch) noexcept {
    arch_plan p;
    p.fill(arch);
    return p;
}

arch_plan default_arch_plan() noexcept {
    arch_plan p = uniform_arch_plan(imb_arch::sse);
    if (arch_supported(imb_arch::avx512) && cpu_has(IMB_FEATURE_VAES | IMB_FEATURE_VPCLMULQDQ)) {
        for (auto alg : {algorithm::aes_gmac_128, algorithm::aes_gmac_192, algorithm::aes_gmac_256}) {
            p[static_cast<size_t>(alg)] = imb_arch::avx512;
        }
    }
    if (!cpu_has(IMB_FEATURE_SHANI)) {
        const imb_arch wide = arch_supported(imb_arch::avx2) ? imb_arch::avx2 : imb_arch::sse;
        p[static_cast<size_t>(algorithm::hmac_sha256_128)] = wide;
        p[static_cast<size_t>(algorithm::hmac_sha256)] = wide;
    }
    return p;
}

ipsecmb_engine::ipsecmb_engine(const arch_plan& plan) : _plan(plan), _jobs(std::make_unique<job_array>()) {
    std::memset(_jobs->jobs, 0, sizeof(_jobs->jobs));
    for (auto arch : _plan) {
        auto& slot = _mgr[static_cast<size_t>(arch)];
        if (slot != nullptr) {
            continue;
        }
        std::string why;
        slot = new_manager(arch, why);
        if (slot == nullptr) {
            throw std::runtime_error(fmt::format("intel-ipsec-mb: {}", why));
        }
    }
    _name = fmt::format("ipsec-mb {} (hmac:{} cmac:{} gmac:{})", IMB_VERSION_STR,
                        arch_name(arch_for(algorithm::hmac_sha256_128)), arch_name(arch_for(algorithm::aes_cmac_128)),
                        arch_name(arch_for(algorithm::aes_gmac_128)));
}

ipsecmb_engine::~ipsecmb_engine() {
    for (IMB_MGR* m : _mgr) {
        if (m != nullptr) {
            free_mb_mgr(m);
        }
    }
}

IMB_MGR* ipsecmb_engine::manager_for(algorithm alg) const noexcept {
    return _mgr[static_cast<size_t>(arch_for(alg))];
}

result<key_handle> ipsecmb_engine::prepare(algorithm alg, std::span<const uint8_t> key) {
    if (auto st = check_key_length(alg, key.size()); !st) {
        return st.err();
    }
    auto k = std::make_unique<imb_key>(alg, arch_for(alg));
    expand(manager_for(alg), *k, key);
    return key_handle(std::move(k));
}

result<key_handle> ipsecmb_engine::prepare_slot(algorithm alg) {
    return key_handle(std::make_unique<imb_key>(alg, arch_for(alg)));
}

bool ipsecmb_engine::rekey(prepared_key& pk, std::span<const uint8_t> key) noexcept {
    if (pk.made_by() != prepared_key::backend::ipsecmb) {
        return false;
    }
    auto* k = static_cast<imb_key*>(&pk);
    if (k->arch != arch_for(k->alg())) {
        return false;
    }
    if (!key_length_fits(k->alg(), key.size())) {
        return false;
    }
    expand(manager_for(k->alg()), *k, key);
    return true;
}

uint16_t ipsecmb_engine::run_hmac(const mac_request* reqs, const uint16_t* idx, uint16_t n, algorithm alg) noexcept {
    // The synchronous hash-burst API: no lanes to fill, no flush, which is
    // what makes a burst of one cheap on the SHA-NI path.
    IMB_JOB* jobs = _jobs->jobs;
    for (uint16_t i = 0; i < n; ++i) {
        fill_job(&jobs[i], reqs[idx[i]]);
    }
    return static_cast<uint16_t>(IMB_SUBMIT_HASH_BURST(manager_for(alg), jobs, n, hash_alg_of(alg)));
}

bool take_job_burst(IMB_MGR* m, uint32_t n, IMB_JOB** jobs) noexcept {
    if (IMB_GET_NEXT_BURST(m, n, jobs) >= n) {
        return true;
    }
    IMB_JOB* stale[IMB_MAX_JOBS];
    IMB_FLUSH_BURST(m, IMB_MAX_JOBS, stale);
    return IMB_GET_NEXT_BURST(m, n, jobs) >= n;
}

uint32_t run_job_burst(IMB_MGR* m, IMB_JOB** jobs, uint32_t n, job_checks checks) noexcept {
    uint32_t ok = 0;
    const uint32_t completed =
        checks == job_checks::on ? IMB_SUBMIT_BURST(m, n, jobs) : IMB_SUBMIT_BURST_NOCHECK(m, n, jobs);
    for (uint32_t i = 0; i < completed; ++i) {
        ok += jobs[i]->status == IMB_STATUS_COMPLETED ? 1 : 0;
    }
    if (completed == 0 && imb_get_errno(m) != 0) {
        return 0;
    }
    const uint32_t flushed = IMB_FLUSH_BURST(m, n, jobs);
    for (uint32_t i = 0; i < flushed; ++i) {
        ok += jobs[i]->status == IMB_STATUS_COMPLETED ? 1 : 0;
    }
    return ok;
}

uint16_t ipsecmb_engine::run_queued(IMB_MGR* mgr, const mac_request* reqs, const uint16_t* idx, uint16_t n) noexcept {
    IMB_JOB* jobs[max_burst];
    if (!take_job_burst(mgr, n, jobs)) {
        return 0;
    }
    for (uint16_t i = 0; i < n; ++i) {
        fill_job(jobs[i], reqs[idx[i]]);
    }
    // Every field comes from fill_job() and a key prepare() expanded for
    // this manager; the message and ICV pointers are the caller's
    // (mac_request): the library's checks would find nothing.
    return static_cast<uint16_t>(run_job_burst(mgr, jobs, n, job_checks::off));
}

uint16_t ipsecmb_engine::compute_burst(const mac_request* reqs, uint16_t n) noexcept {
    uint16_t done = 0;
    for (uint16_t base = 0; base < n; base = static_cast<uint16_t>(base + max_burst)) {
        const uint16_t count = static_cast<uint16_t>(std::min<int>(max_burst, n - base));
        const mac_request* chunk = reqs + base;

        // Group by path: HMAC-SHA256-128 and HMAC-SHA256 each through the
        // hash-burst API, AES-CMAC through the queued burst API of its
        // manager. A burst of one algorithm (the usual case) stays one
        // group. AES-GMAC needs no group: each is computed here, at once,
        // through the manager's direct GCM call (gmac_one()).
        uint16_t hmac_idx[2][max_burst];
        uint16_t hmac_n[2] = {0, 0};
        uint16_t queued_idx[imb_arch_count][max_burst];
        uint16_t queued_n[imb_arch_count] = {};
        for (uint16_t i = 0; i < count; ++i) {
            if (chunk[i].key == nullptr || chunk[i].key->made_by() != prepared_key::backend::ipsecmb) {
                continue;
            }
            const auto* k = static_cast<const imb_key*>(chunk[i].key);
            if (k->arch != arch_for(k->alg()) || (is_gmac(k->alg()) && chunk[i].nonce == nullptr)) {
                continue; // prepared under another plan, or a GMAC request without a nonce
            }
            const algorithm alg = k->alg();
            if (is_hmac(alg) && chunk[i].len == 0) {
                // One zero-length job would fail the whole hash burst.
                std::memcpy(chunk[i].icv_out, k->material.hmac.empty_icv, k->icv_len());
                ++done;
            } else if (is_hmac(alg)) {
                const int h = alg == algorithm::hmac_sha256 ? 1 : 0;
                hmac_idx[h][hmac_n[h]++] = i;
            } else if (is_gmac(alg)) {
                const mac_request& r = chunk[i];
                gmac_one(_mgr[static_cast<size_t>(k->arch)], alg, &k->material.gcm, r.nonce, r.msg, r.len, r.icv_out,
                         k->icv_len());
                ++done;
            } else {
                const auto a = static_cast<size_t>(k->arch);
                queued_idx[a][queued_n[a]++] = i;
            }
        }
        if (hmac_n[0] != 0) {
            done = static_cast<uint16_t>(done + run_hmac(chunk, hmac_idx[0], hmac_n[0], algorithm::hmac_sha256_128));
        }
        if (hmac_n[1] != 0) {
            done = static_cast<uint16_t>(done + run_hmac(chunk, hmac_idx[1], hmac_n[1], algorithm::hmac_sha256));
        }
        for (size_t a = 0; a < imb_arch_count; ++a) {
            if (queued_n[a] != 0) {
                done = static_cast<uint16_t>(done + run_queued(_mgr[a], chunk, queued_idx[a], queued_n[a]));
            }
        }
    }
    return done;
}

} // namespace ptpsec::icv
