#pragma once

// Timing-event records for attestation (BRIEF "Attestation"): for each PTP
// message whose type is selected, a fixed-size record (dataplane/event_record.h)
// with the SHA-256 of the message, computed for the whole burst at once with
// intel-ipsec-mb. One recorder per lcore, created before the loop; it owns
// its multi-buffer manager and allocates nothing per call.

#include <dataplane/event_record.h>
#include <dataplane/ptp/message.h>
#include <drivers/base/result.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <cstdint>
#include <memory>

struct IMB_MGR;

namespace ptpsec {

/// Which messageType values (IEEE 1588-2019 Table 36) produce records: one
/// bit per value of the 4-bit field.
class event_mask {
public:
    /// Selects nothing.
    constexpr event_mask() noexcept = default;

    /// The default: the event messages, whose timestamps are taken at the
    /// wire (Sync, Delay_Req, Pdelay_Req, Pdelay_Resp), and the two general
    /// messages that carry the precise timestamps of two-step clocks
    /// (Follow_Up, Pdelay_Resp_Follow_Up). Delay_Resp, Announce, Signaling
    /// and Management carry no time of their own event.
    static constexpr event_mask timing() noexcept {
        using ptp::message_type;
        return event_mask()
            .with(message_type::sync)
            .with(message_type::delay_req)
            .with(message_type::pdelay_req)
            .with(message_type::pdelay_resp)
            .with(message_type::follow_up)
            .with(message_type::pdelay_resp_follow_up);
    }
    static constexpr event_mask all() noexcept { return from_bits(0xFFFF); }
    static constexpr event_mask from_bits(uint16_t bits) noexcept {
        event_mask m;
        m._bits = bits;
        return m;
    }

    constexpr event_mask with(ptp::message_type t) const noexcept {
        return from_bits(static_cast<uint16_t>(_bits | bit(static_cast<uint8_t>(t))));
    }
    constexpr event_mask without(ptp::message_type t) const noexcept {
        return from_bits(static_cast<uint16_t>(_bits & ~bit(static_cast<uint8_t>(t))));
    }
    constexpr bool selects(ptp::message_type t) const noexcept { return selects_value(static_cast<uint8_t>(t)); }
    /// `value` is the messageType nibble; higher bits are ignored.
    constexpr bool selects_value(uint8_t value) const noexcept { return (_bits & bit(value)) != 0; }
    constexpr uint16_t bits() const noexcept { return _bits; }

    constexpr bool operator==(const event_mask&) const noexcept = default;

private:
    static constexpr uint16_t bit(uint8_t value) noexcept { return static_cast<uint16_t>(1U << (value & 0x0F)); }

    uint16_t _bits = 0;
};

/// One message to record. The message was validated by ptp::parse_message
/// (so messageLength octets are there); the rest is what the data plane knows
/// about the frame.
struct event_input {
    /// First octet of the PTP common header. Not const: record_burst()
    /// zeroes correctionField while it hashes and puts it back.
    uint8_t* msg = nullptr;
    uint64_t timestamp_ns = 0;
    /// messageLength.
    uint16_t len = 0;
    uint16_t port_id = 0;
    event_direction direction = event_direction::rx;
    /// event_flag_hw_timestamp if timestamp_ns came from the NIC.
    uint8_t flags = 0;
};

/// One SHA-256 for sha256_hasher::hash_burst().
struct sha256_request {
    const uint8_t* data = nullptr;
    /// event_digest_len octets out.
    uint8_t* digest = nullptr;
    uint32_t len = 0;
    /// Set by hash_burst(): the digest was written.
    bool done = false;
};

/// SHA-256 (FIPS 180-4) of bursts of messages through intel-ipsec-mb's job
/// API (IMB_AUTH_SHA_256: its synchronous hash-burst call takes only HMAC in
/// version 1.3). One per lcore: the manager is not thread-safe.
class sha256_hasher {
public:
    /// Longest burst handed to the library at once; longer ones are split.
    static constexpr uint16_t max_burst = 64;

    /// On the manager the ICV engine uses for HMAC-SHA256 on this CPU
    /// (icv::default_arch_plan: SHA-NI single-buffer code where the CPU has
    /// it, which wins at small bursts, multi-lane AVX2 otherwise).
    static result<sha256_hasher> create();
    static result<sha256_hasher> create(icv::imb_arch arch);

    /// Hashes every request and sets its `done`. Returns how many were
    /// hashed: n unless a request was invalid (a null digest, or a null data
    /// pointer with a non-zero length: a programming error), which is left
    /// out with `done` false while the others are hashed. No allocation.
    uint16_t hash_burst(sha256_request* reqs, uint16_t n) noexcept;

    icv::imb_arch arch() const noexcept { return _arch; }

private:
    struct manager_deleter {
        void operator()(IMB_MGR* m) const noexcept;
    };

    sha256_hasher(IMB_MGR* m, icv::imb_arch arch) noexcept : _mgr(m), _arch(arch) {}
    uint16_t hash_chunk(sha256_request* reqs, uint16_t n) noexcept;

    std::unique_ptr<IMB_MGR, manager_deleter> _mgr;
    icv::imb_arch _arch;
};

/// Per-lcore counters of record_burst(): single writer, summed on read.
struct alignas(64) event_stats {
    uint64_t recorded = 0;
    /// The mask did not select the messageType.
    uint64_t not_selected = 0;
    /// A null message or one shorter than the common header: a caller bug.
    uint64_t bad_input = 0;
    /// intel-ipsec-mb refused the job: a library or caller bug.
    uint64_t digest_failed = 0;
};

class event_recorder {
public:
    static constexpr uint16_t max_burst = sha256_hasher::max_burst;

    static result<event_recorder> create(event_mask mask = event_mask::timing());
    static result<event_recorder> create(event_mask mask, icv::imb_arch arch);

    /// Writes one record per input whose messageType the mask selects, in
    /// input order, to `out` (room for n records); returns how many it
    /// wrote. An input that is not selected, or is not a message at all
    /// (null, shorter than the 34-octet header), gives no record and is
    /// counted in stats(). The digest covers messageLength octets with
    /// correctionField (octets 8-15) taken as zero: the call zeroes it in
    /// place for the hash and restores it, so when it returns every message
    /// is octet for octet what it was. The caller owns the message octets
    /// for the duration (no TX queue or other lcore reads them meanwhile);
    /// one message may appear in several inputs (rx and tx of one frame).
    /// The mbufs stay the caller's in every case. No allocation, no lock.
    uint16_t record_burst(const event_input* in, uint16_t n, event_record* out) noexcept;

    event_mask mask() const noexcept { return _mask; }
    /// Between bursts, from the lcore that owns the recorder.
    void set_mask(event_mask m) noexcept { _mask = m; }
    const event_stats& stats() const noexcept { return _stats; }
    icv::imb_arch arch() const noexcept { return _hasher.arch(); }

private:
    event_recorder(sha256_hasher hasher, event_mask mask) noexcept : _hasher(std::move(hasher)), _mask(mask) {}
    uint16_t record_chunk(const event_input* in, uint16_t n, event_record* out) noexcept;

    sha256_hasher _hasher;
    event_mask _mask;
    event_stats _stats;
};

} // namespace ptpsec
