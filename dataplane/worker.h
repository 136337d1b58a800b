#pragma once

// The per-lcore poll loop of ptpsec-dataplane: receive a burst on a path's
// RX queue, apply the path's PTP policy (sign, verify, verify and strip, or
// pass), and send what is left on the path's TX queue. Frames that are not
// PTP are forwarded unchanged; every dropped frame is counted by reason.
// Nothing here allocates, locks, throws or logs per packet (a frame the
// control plane gives back with --tickets takes an mbuf from the ports'
// pool, as a received one does).

#include <dataplane/auth.h>
#include <dataplane/event.h>
#include <dataplane/rx_stamp.h>
#include <dataplane/sa_table.h>
#include <drivers/clock/source.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <span>
#include <string_view>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

namespace ptpsec {

class exception_channel;

/// What a path does to the PTP frames it carries (frames that are not PTP are
/// forwarded unchanged, or dropped where path_config::drop_non_ptp says so).
enum class ptp_policy : uint8_t {
    pass,         ///< forward PTP unchanged
    sign,         ///< add an AUTHENTICATION TLV; frames that cannot be signed are dropped
    verify,       ///< forward only PTP that verifies, TLV kept
    verify_strip, ///< forward only PTP that verifies, TLV removed (for stacks that do not know it)
    /// transparent clock (IEEE 1588-2019 10.2): forward only PTP that
    /// verifies; add the residence time to the correctionField of event
    /// messages and sign them again with the SA and key they carried
    tc,
};

std::string_view ptp_policy_name(ptp_policy p) noexcept;

/// One direction of traffic: frames received on (rx_port, rx_queue) leave
/// on (tx_port, tx_queue).
///
/// With several workers, one of them (the PTP worker) applies the policy to
/// every PTP frame of the path: the others forward what is not PTP and hand
/// PTP over on `handoff`, which the PTP worker drains as `handin`. Replay
/// windows, AES-GMAC subkey tables and the event ring then keep one writer,
/// and a replayed frame cannot slip past its window by arriving on another
/// queue. NICs that steer PTP to the PTP worker's queue (rte_flow) leave
/// the ring nearly idle.
struct path_config {
    std::string_view name; ///< "inside->outside", for counters
    uint16_t rx_port = 0;
    uint16_t rx_queue = 0;
    uint16_t tx_port = 0;
    uint16_t tx_queue = 0;
    ptp_policy policy = ptp_policy::pass;
    uint8_t spp = 0; ///< sign: the SA
    /// sign: with the SA's current key (set by the SA file's --sign or by
    /// the control plane), else with key_id
    bool sign_current = true;
    uint32_t key_id = 0;
    /// Not null: PTP received here goes to the PTP worker on this ring
    /// (rte_mbuf pointers, many producers); the policy is not applied here.
    rte_ring* handoff = nullptr;
    /// Not null: this worker is the path's PTP worker and also takes the
    /// frames other workers handed over on this ring.
    rte_ring* handin = nullptr;
    /// Frames that are not PTP are dropped and counted (non_ptp_dropped)
    /// instead of forwarded: a port meant for PTP alone.
    bool drop_non_ptp = false;
};

/// Counters of one path on one lcore: single writer (the lcore), read by
/// the main lcore for display with relaxed loads, summed over lcores on read.
struct alignas(64) path_counters {
    uint64_t rx = 0;
    uint64_t tx = 0;
    uint64_t tx_full = 0;         ///< the TX queue refused them: dropped
    uint64_t non_ptp = 0;         ///< forwarded unchanged
    uint64_t non_ptp_dropped = 0; ///< not PTP, and the path drops what is not PTP (drop_non_ptp)
    uint64_t ptp_passed = 0;      ///< PTP forwarded under policy pass
    uint64_t not_editable = 0;    ///< PTP in a chained, indirect or shared mbuf: not edited in place, dropped
    uint64_t signed_ok = 0;
    uint64_t already_signed = 0; ///< sign policy, frame carried a TLV already: forwarded unchanged
    /// Of signed_ok, unicast requests that got the key's TICKET TLV too
    /// (a requester in ticket-based mode, seeds/001 §6; signer::sign_burst)
    uint64_t tickets_attached = 0;
    uint64_t verified = 0;
    uint64_t stripped = 0;
    std::array<uint64_t, sign_status_count> sign{};     ///< by sign_status (signed_ok included)
    std::array<uint64_t, verify_status_count> verify{}; ///< by verify_status (verified included)
    std::array<uint64_t, ptp::error_count> malformed{}; ///< malformed PTP by cause
    uint64_t tc_corrected = 0;                          ///< tc: event messages whose residence time was added
    uint64_t tc_resigned = 0;      ///< tc: of those, signed again (the SA does not exclude correctionField)
    uint64_t tc_uncorrected = 0;   ///< tc: forwarded without correction (AES-GMAC SA without allow_mutable)
    uint64_t events = 0;           ///< timing-event records put on the event ring
    uint64_t events_ring_full = 0; ///< records the full event ring refused (never waited on)
    /// Of events, RX records with the time the port gave the frame
    /// (worker_options::rx_stamps) rather than the clock's
    uint64_t events_port_stamped = 0;
    uint64_t handed_off = 0;   ///< PTP handed to the PTP worker (counted there from then on)
    uint64_t handoff_full = 0; ///< PTP the full handoff ring refused: dropped
    // --tickets (worker_options::tickets). A received frame ends as one of
    // tx, a drop or ticket_exceptions (or handed_off); a frame the control
    // plane gives back is counted once more, in reinjected, and ends as tx
    // or a drop, unless it never got that far (reinject_nombuf,
    // reinject_invalid).
    uint64_t ticket_exceptions = 0;  ///< ticket requests without an SA yet, handed to the control plane (no drop)
    uint64_t exception_full = 0;     ///< of those, refused by the full exception ring: dropped
    uint64_t exception_too_long = 0; ///< of those, longer than a record holds: dropped
    uint64_t reinjected = 0;         ///< frames the control plane gave back, processed as if received on this path
    uint64_t reinject_nombuf = 0;    ///< frames given back for which no mbuf was free: dropped
    /// Records given back that name no verifying path's port or hold no
    /// frame (wrong magic, length 0 or over the maximum): dropped, counted
    /// on the first verifying path
    uint64_t reinject_invalid = 0;

    /// Frames dropped, whatever the reason.
    uint64_t dropped() const noexcept;
};

/// The scalar counters of path_counters by the name programs read them under
/// (JSON, telemetry). `exported` is false for the two that are shown among
/// the drop reasons instead (drop_reasons()).
struct path_counter_field {
    std::string_view name;
    uint64_t path_counters::*member;
    bool exported;
};

inline constexpr std::array<path_counter_field, 26> path_counter_fields = {{
    {"rx", &path_counters::rx, true},
    {"tx", &path_counters::tx, true},
    {"tx_full", &path_counters::tx_full, false},
    {"non_ptp", &path_counters::non_ptp, true},
    {"non_ptp_dropped", &path_counters::non_ptp_dropped, false},
    {"ptp_passed", &path_counters::ptp_passed, true},
    {"not_editable", &path_counters::not_editable, false},
    {"signed", &path_counters::signed_ok, true},
    {"already_signed", &path_counters::already_signed, true},
    {"tickets_attached", &path_counters::tickets_attached, true},
    {"verified", &path_counters::verified, true},
    {"stripped", &path_counters::stripped, true},
    {"tc_corrected", &path_counters::tc_corrected, true},
    {"tc_resigned", &path_counters::tc_resigned, true},
    {"tc_uncorrected", &path_counters::tc_uncorrected, true},
    {"events", &path_counters::events, true},
    {"events_ring_full", &path_counters::events_ring_full, true},
    {"events_port_stamped", &path_counters::events_port_stamped, true},
    {"handed_off", &path_counters::handed_off, true},
    {"handoff_full", &path_counters::handoff_full, false},
    {"ticket_exceptions", &path_counters::ticket_exceptions, true},
    {"reinjected", &path_counters::reinjected, true},
    {"exception_full", &path_counters::exception_full, false},
    {"exception_too_long", &path_counters::exception_too_long, false},
    {"reinject_nombuf", &path_counters::reinject_nombuf, false},
    {"reinject_invalid", &path_counters::reinject_invalid, false},
}};

/// Why a frame was dropped, as counter names ("bad_icv", "no_sa", ...):
/// the non-zero ones, in a fixed order, for display.
struct drop_reason {
    std::string_view name;
    uint64_t count;
};
/// Fills `out` (room for every reason) and returns how many are non-zero.
size_t drop_reasons(const path_counters& c, std::span<drop_reason> out) noexcept;
inline constexpr size_t max_drop_reasons = sign_status_count + verify_status_count + 8;

/// Where a worker sends timing-event records (dataplane/event.h): for each
/// PTP frame of a selected messageType that a path forwards, a record of it
/// as it arrived (rx, on the RX port, stamped when the burst was received)
/// and/or as it leaves (tx, on the TX port, stamped just before the burst is
/// handed to the port). The clock is read once per burst.
struct event_sink {
    rte_ring* ring = nullptr; ///< event_record elements, one producer (this worker)
    event_recorder* recorder = nullptr;
    clock::source* clock = nullptr;
    bool rx = false;
    bool tx = false;
};

/// The largest RX burst.
inline constexpr uint16_t max_rx_burst = 64;

struct worker_options {
    uint16_t burst = 32; ///< RX burst (1 to max_rx_burst)
    /// When the TX queue takes only part of a burst, try the rest again up
    /// to this many times, 1 us apart, before counting it as tx_full. For
    /// links that push back (memif, vhost); 0 on NICs at line rate.
    uint16_t tx_retry = 0;
    /// Offset of the mbuf dynamic field (uint64_t) that carries the TSC of a
    /// handed-over frame's arrival, so that the PTP worker measures the
    /// transparent clock's residence time and stamps RX events from when the
    /// frame arrived, not from when it left the ring. -1: none registered.
    int rx_tsc_offset = -1;
    /// Where ports give the time of a received frame (rx_stamp.h): a frame
    /// with one gets its RX event stamped with it, marked
    /// event_flag_hw_timestamp; the others keep the clock's time.
    port_rx_stamps rx_stamps;
    /// Keys the SA table retired (retired_key_ring_entry elements, one
    /// producer: the service path): the worker drops their replay windows
    /// between bursts, so that a key's windows never outlive it. Null: the
    /// windows age out of the table instead.
    rte_ring* retired_keys = nullptr;
    /// --tickets (the PTP worker only; null: off). On a verifying path
    /// (verify, verify-strip), a frame refused as unknown_spp or unknown_key
    /// that is a ticket-bearing request (seeds/001 §6: a Signaling message
    /// with a TICKET TLV before its AUTHENTICATION TLV) is copied onto the
    /// channel's exceptions ring instead of being dropped, and its mbuf
    /// freed. Between bursts the worker takes the frames the control plane
    /// gives back, before it loads the SA version of the poll, and runs them
    /// through the path whose RX port they name as if they had arrived
    /// there; those are never handed over again.
    exception_channel* tickets = nullptr;
    /// Where the mbufs of frames given back come from (the ports' pool);
    /// needed with `tickets`.
    rte_mempool* reinject_pool = nullptr;
    ptp::wire_options wire;
    /// Not null: run() calls it with `between_bursts_ctx` after every poll,
    /// after the quiescent point. For the PTP worker that applies SA updates
    /// as soon as they arrive (ptpsec-dataplane --sa-apply worker). It must
    /// return at once when it has nothing to do, and never wait.
    void (*between_bursts)(void* ctx) noexcept = nullptr;
    void* between_bursts_ctx = nullptr;
};

/// An element of worker_options::retired_keys.
struct retired_key_ring_entry {
    uint32_t key_id;
    uint8_t spp;
    uint8_t pad[3];
};
static_assert(sizeof(retired_key_ring_entry) == 8);

class worker {
public:
    /// `paths` must outlive the worker. The engine, SA database and IV
    /// counter are this lcore's (the IV counter may be shared).
    /// `replay` (may be null: no replay protection) is this lcore's
    /// table of replay windows, checked by the verifying paths. The worker
    /// reads SAs from `sat` as its reader `reader_id`.
    worker(icv::engine& eng, sa_table& sat, unsigned reader_id, icv::gmac_iv_counter& iv,
           std::span<const path_config> paths, const worker_options& opt = {}, replay_table* replay = nullptr,
           const event_sink& events = {}) noexcept;

    /// One RX burst per path, with the SA version current at its start; then
    /// a quiescent point. Call between online() and offline() of the SA
    /// table (run() does). Returns the number of frames received.
    uint32_t poll_once() noexcept;

    /// Polls until `stop` is set, on the calling thread (reader online
    /// meanwhile).
    void run(const std::atomic<bool>& stop) noexcept;

    unsigned reader_id() const noexcept { return _reader; }

    std::span<const path_counters> counters() const noexcept { return {_counters.data(), _paths.size()}; }

    static constexpr size_t max_paths = 8;

private:
    /// Where the frames of a process() call come from.
    enum class frame_source : uint8_t {
        port,     ///< the path's RX queue
        handoff,  ///< another worker (handin ring)
        reinject, ///< the control plane gave them back (options::tickets)
    };

    /// Applies the path's policy to pkts[0..n) and sends what is left.
    /// Frames from the port arrived at `rx_tsc`; handed-over ones carry
    /// their arrival in the mbuf (options::rx_tsc_offset).
    void process(const path_config& p, path_counters& c, rte_mbuf** pkts, uint16_t n, frame_source src,
                 uint64_t rx_tsc) noexcept;
    /// --tickets: whether `f`, refused as `s` (unknown_spp or unknown_key),
    /// is a ticket-bearing request; if so it is copied onto the exceptions
    /// ring, or dropped when the ring is full or the frame too long (each
    /// counted), and true is returned: the caller frees the mbuf. `now_ns`
    /// is the burst's CLOCK_MONOTONIC time, read on the first call that
    /// needs it (0 until then).
    bool hand_over_ticket(const path_config& p, path_counters& c, const ptp::frame_buf& f, verify_status s,
                          uint64_t& now_ns) noexcept;
    /// --tickets: up to a burst of the frames the control plane gave back,
    /// copied into mbufs (_back, with their path in _back_path); returns
    /// how many.
    uint16_t take_reinjected() noexcept;
    /// A worker that is not the path's PTP worker: forwards what is not PTP,
    /// hands the rest over.
    void hand_off(const path_config& p, path_counters& c, rte_mbuf** pkts, uint16_t n) noexcept;
    /// Sends tx[0..n) on the path's TX queue (with the retries of
    /// options::tx_retry) and returns how many left; the rest are freed and
    /// counted as tx_full.
    uint16_t send(const path_config& p, path_counters& c, rte_mbuf** tx, uint16_t n) noexcept;
    /// Records of the selected PTP frames among pkts[0..n) into `out`, with
    /// in `index` the index in pkts of each record's frame; frame i is
    /// stamped ns_each[i], or `ns` when ns_each is null. Returns how many.
    uint16_t record_events(rte_mbuf* const* pkts, uint16_t n, event_direction dir, uint16_t port, uint64_t ns,
                           const uint64_t* ns_each, event_record* out, uint16_t* index) noexcept;
    /// tc: the verified frames among _frames[0..n) get their residence time
    /// (since _work_tsc[i]) added and are signed again; a frame that cannot
    /// be signed again has its outcome set to crypto_failed (dropped).
    void transparent_clock(path_counters& c, uint16_t n) noexcept;
    /// Puts records on the event ring; what does not fit is counted.
    void publish_events(path_counters& c, const event_record* recs, uint16_t n) noexcept;

    sa_table* _sat;
    sa_database* _db;
    unsigned _reader;
    signer _signer;
    verifier _verifier;
    replay_table* _replay;
    std::span<const path_config> _paths;
    worker_options _opt;
    uint64_t _tsc_hz;
    std::array<path_counters, max_paths> _counters{};
    std::array<ptp::frame_buf, max_rx_burst> _frames{};
    std::array<frame_outcome, max_rx_burst> _out{};
    struct resign_entry {
        uint16_t at; ///< index in _frames
        uint8_t spp;
        uint32_t key_id;
    };
    std::array<resign_entry, max_rx_burst> _resign{};
    std::array<ptp::frame_buf, max_rx_burst> _resign_frames{};
    std::array<frame_outcome, max_rx_burst> _resign_out{};
    event_sink _events;
    std::array<event_input, max_rx_burst> _event_in{};
    std::array<event_record, max_rx_burst> _rx_records{};
    std::array<uint16_t, max_rx_burst> _rx_record_of{};
    std::array<event_record, max_rx_burst> _tx_records{};
    std::array<uint16_t, max_rx_burst> _tx_record_of{};
    std::array<uint64_t, max_rx_burst> _rx_ns{};    ///< arrival of handed-over pkts[i] (event clock)
    std::array<uint64_t, max_rx_burst> _work_tsc{}; ///< arrival of _frames[i] (TSC), for tc
    size_t _first_verifying_path = 0;               ///< counts reinject_invalid (options::tickets)
    uint64_t _ticket_requests = 0;                  ///< numbers exception records (exception_wire::record::sequence)
    std::array<rte_mbuf*, max_rx_burst> _back{};    ///< frames given back, this poll
    std::array<uint8_t, max_rx_burst> _back_path{}; ///< index in _paths of _back[i]
};

} // namespace ptpsec
