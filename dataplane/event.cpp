#include <dataplane/event.h>

#include <drivers/icv/imb_jobs.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <drivers/base/bytes.h>

#include <fmt/format.h>
#include <intel-ipsec-mb.h>

#include <algorithm>
#include <cstring>

namespace ptpsec {

namespace {

static_assert(IMB_SHA256_DIGEST_SIZE_IN_BYTES == event_digest_len);

/// Common header offsets (IEEE 1588-2019 Table 35) the record reads.
constexpr size_t domain_offset = 4;
constexpr size_t minor_sdo_offset = 5;
constexpr size_t flag_field_offset = 6;
constexpr size_t sequence_id_offset = 30;

/// intel-ipsec-mb 1.3 refuses hash jobs over 65534 octets
/// (IMB_ERR_JOB_AUTH_LEN), one short of the longest PTP message.
constexpr uint32_t max_job_len = 65534;

void init_manager(IMB_MGR* m, icv::imb_arch arch) noexcept {
    switch (arch) {
    case icv::imb_arch::sse:
        init_mb_mgr_sse(m);
        break;
    case icv::imb_arch::avx:
        init_mb_mgr_avx(m);
        break;
    case icv::imb_arch::avx2:
        init_mb_mgr_avx2(m);
        break;
    case icv::imb_arch::avx512:
        init_mb_mgr_avx512(m);
        break;
    }
}

/// Marks the requests of finished jobs; returns how many completed.
uint16_t mark_completed(IMB_JOB* const* jobs, uint32_t count) noexcept {
    uint16_t ok = 0;
    for (uint32_t i = 0; i < count; ++i) {
        if (jobs[i]->status == IMB_STATUS_COMPLETED) {
            static_cast<sha256_request*>(jobs[i]->user_data)->done = true;
            ++ok;
        }
    }
    return ok;
}

void fill_record(const event_input& e, event_record& r) noexcept {
    const uint8_t* p = e.msg;
    r = event_record{};
    r.version = event_record_version;
    r.direction = e.direction;
    r.messageType = static_cast<uint8_t>(p[0] & 0x0F);
    r.domainNumber = p[domain_offset];
    r.sdoId = static_cast<uint16_t>(((p[0] >> 4) << 8) | p[minor_sdo_offset]);
    r.port_id = e.port_id;
    r.timestamp_ns = e.timestamp_ns;
    r.correctionField = static_cast<int64_t>(load_be64(p + ptp::correction_offset));
    std::memcpy(r.sourcePortIdentity.data(), p + ptp::source_port_identity_offset, r.sourcePortIdentity.size());
    r.sequenceId = load_be16(p + sequence_id_offset);
    r.messageLength = e.len;
    r.flagField = load_be16(p + flag_field_offset);
    r.flags = e.flags;
}

} // namespace

// ---------------------------------------------------------------------------
// sha256_hasher

void sha256_hasher::manager_deleter::operator()(IMB_MGR* m) const noexcept {
    free_mb_mgr(m);
}

result<sha256_hasher> sha256_hasher::create() {
    // Plain SHA-256 runs on the same code as the inner hash of HMAC-SHA256,
    // so the manager measured best for HMAC is the best one here too.
    return create(icv::default_arch_plan()[static_cast<size_t>(icv::algorithm::hmac_sha256)]);
}

result<sha256_hasher> sha256_hasher::create(icv::imb_arch arch) {
    if (!icv::arch_supported(arch)) {
        return error{fmt::format("intel-ipsec-mb: this CPU cannot run the {} manager", icv::arch_name(arch))};
    }
    IMB_MGR* m = alloc_mb_mgr(0);
    if (m == nullptr) {
        return error{"intel-ipsec-mb: cannot allocate a multi-buffer manager"};
    }
    sha256_hasher h(m, arch);
    init_manager(m, arch);
    if (const int err = imb_get_errno(m); err != 0) {
        return error{fmt::format("intel-ipsec-mb: {} manager: {}", icv::arch_name(arch), imb_get_strerror(err))};
    }
    return h;
}

uint16_t sha256_hasher::hash_burst(sha256_request* reqs, uint16_t n) noexcept {
    uint16_t done = 0;
    for (uint16_t base = 0; base < n; base = static_cast<uint16_t>(base + max_burst)) {
        const auto count = static_cast<uint16_t>(std::min<int>(max_burst, n - base));
        done = static_cast<uint16_t>(done + hash_chunk(reqs + base, count));
    }
    return done;
}

uint16_t sha256_hasher::hash_chunk(sha256_request* reqs, uint16_t n) noexcept {
    // intel-ipsec-mb refuses a null source even for an empty message
    // (IMB_ERR_JOB_NULL_SRC); FIPS 180-4 defines the hash of zero octets.
    static const uint8_t empty_message[1] = {};
    // A job the library would refuse makes it refuse the whole burst; such
    // requests are left out, so that they fail alone.
    IMB_MGR* m = _mgr.get();
    uint16_t valid[max_burst];
    uint16_t count = 0;
    uint16_t ok = 0;
    for (uint16_t i = 0; i < n; ++i) {
        sha256_request& r = reqs[i];
        r.done = false;
        if (r.digest == nullptr || (r.data == nullptr && r.len != 0)) {
            continue;
        }
        if (r.len > max_job_len) {
            // Longer than a job may be: the library's one-shot call has no
            // such limit. Of PTP messages, only one of 65535 octets comes here.
            IMB_SHA256(m, r.data, r.len, r.digest);
            r.done = true;
            ++ok;
            continue;
        }
        valid[count++] = i;
    }
    if (count == 0) {
        return ok;
    }
    IMB_JOB* jobs[max_burst];
    if (!icv::take_job_burst(m, count, jobs)) {
        return ok;
    }
    for (uint16_t i = 0; i < count; ++i) {
        IMB_JOB* job = jobs[i];
        sha256_request& r = reqs[valid[i]];
        icv::fill_hash_job(job, r.data != nullptr ? r.data : empty_message, r.len, r.digest, event_digest_len,
                           IMB_AUTH_SHA_256);
        job->user_data = &r;
    }
    const uint32_t completed = IMB_SUBMIT_BURST(m, count, jobs);
    ok = static_cast<uint16_t>(ok + mark_completed(jobs, completed));
    if (completed == 0 && imb_get_errno(m) != 0) {
        return ok; // refused as a whole: nothing was queued
    }
    const uint32_t flushed = IMB_FLUSH_BURST(m, max_burst, jobs);
    ok = static_cast<uint16_t>(ok + mark_completed(jobs, flushed));
    return ok;
}

// ---------------------------------------------------------------------------
// event_recorder

result<event_recorder> event_recorder::create(event_mask mask) {
    auto h = sha256_hasher::create();
    if (!h) {
        return h.err();
    }
    return event_recorder(std::move(h).value(), mask);
}

result<event_recorder> event_recorder::create(event_mask mask, icv::imb_arch arch) {
    auto h = sha256_hasher::create(arch);
    if (!h) {
        return h.err();
    }
    return event_recorder(std::move(h).value(), mask);
}

uint16_t event_recorder::record_burst(const event_input* in, uint16_t n, event_record* out) noexcept {
    uint16_t written = 0;
    for (uint16_t base = 0; base < n; base = static_cast<uint16_t>(base + max_burst)) {
        const auto count = static_cast<uint16_t>(std::min<int>(max_burst, n - base));
        written = static_cast<uint16_t>(written + record_chunk(in + base, count, out + written));
    }
    return written;
}

uint16_t event_recorder::record_chunk(const event_input* in, uint16_t n, event_record* out) noexcept {
    sha256_request reqs[max_burst];
    uint8_t* msgs[max_burst];
    uint16_t k = 0;
    for (uint16_t i = 0; i < n; ++i) {
        const event_input& e = in[i];
        if (e.msg == nullptr || e.len < ptp::header_len) {
            ++_stats.bad_input;
            continue;
        }
        if (!_mask.selects_value(e.msg[0])) {
            ++_stats.not_selected;
            continue;
        }
        // Every record reads its correctionField before any is zeroed: a
        // message listed twice must not see the zero the first listing left.
        fill_record(e, out[k]);
        msgs[k] = e.msg;
        reqs[k] = sha256_request{.data = e.msg, .digest = out[k].digest.data(), .len = e.len, .done = false};
        ++k;
    }
    if (k == 0) {
        return 0;
    }

    uint64_t saved[max_burst];
    for (uint16_t j = 0; j < k; ++j) {
        std::memcpy(&saved[j], msgs[j] + ptp::correction_offset, ptp::correction_len);
        std::memset(msgs[j] + ptp::correction_offset, 0, ptp::correction_len);
    }
    _hasher.hash_burst(reqs, k);
    // In reverse: for a message listed twice, the first listing saved the
    // original octets and the second saved zeroes, so the first is restored
    // last.
    for (uint16_t j = k; j-- > 0;) {
        std::memcpy(msgs[j] + ptp::correction_offset, &saved[j], ptp::correction_len);
    }

    // Keep only the records whose digest was computed, in order.
    uint16_t w = 0;
    for (uint16_t j = 0; j < k; ++j) {
        if (!reqs[j].done) {
            ++_stats.digest_failed;
            continue;
        }
        if (w != j) {
            out[w] = out[j];
        }
        ++w;
    }
    _stats.recorded += w;
    return w;
}

} // namespace ptpsec
