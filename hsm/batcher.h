#pragma once

// The batching signer (BRIEF "Attestation"): the data plane's drain thread
// hands it the event records it took off the offload ring; a thread of its
// own closes batches, has each one signed once (hsm::sign_batch: counter,
// Merkle tree, COSE_Sign1) and appends the record to the evidence log
// (hsm/evidence_log.h). A TPM signs tens of times per second; batching is
// what gives every event at line rate a hardware-rooted signature.
//
// When a batch closes. A batch closes at `max_events` events (N) or when its
// first event is `max_wait` old (T), whichever comes first, but only while
// the signer thread is free. While it is busy signing the previous batch, or
// backing off after a failure, the open batch keeps growing: no second batch
// queues behind the first, so the next signature covers everything that
// arrived meanwhile.
//
// Two stages. The signer thread builds and signs a batch (the leaves, the
// Merkle tree, the counter, the device's signature: S_sign) and hands it to
// a writer thread, which appends the record to the log and fdatasyncs it
// (S_log) while the signer thread takes and signs the next batch. Each has
// its own batch_builder, so two batches are held at most: the one being
// written and the one being signed. The signer thread takes a batch only
// when the writer is done with the builder it will sign into, so when the
// log is the slower stage the open batch grows instead. Records reach the
// log in the order they were signed (one writer; the chain of batch k + 1
// names batch k's root, known when k was signed). Hence:
//
//   * Throughput does not depend on the signer's speed: batches grow to
//     about S_sign worth of events (or S_log, the longer), and one signature
//     covers them all. What bounds throughput is the per-event part: writing
//     and hashing the leaves (hsm/batch_builder.h, about 0.2 us of CPU per
//     event in a release build, shared out over builder_threads threads) in
//     the signer thread and writing them to the log (about 0.15 us more on
//     a disk) in the writer, each of which must stay below the time between
//     events.
//   * Latency is bounded: an event arriving just after a batch was taken
//     waits for that batch's signature (at most S_sign), then for its own
//     batch to close (at most T from its first event, which overlaps the
//     first wait), then for its own batch to be signed (S_sign) and written
//     (S_log): at most max(T, S_sign) + S_sign + S_log, from submit() to the
//     record being durable in the log, while S_log <= S_sign; with S the
//     whole of a batch's time, S_sign + S_log, that is below T + 2 S. When
//     S_log is the longer, S_sign takes its place in the first two terms.
//   * A batch closed by count while the signer was idle holds exactly N
//     events (submit() splits a burst there); a batch taken after the signer
//     was busy holds everything that arrived meanwhile, which may be more.
//
// Memory is bounded by `max_open_events`: the events held (the batch being
// written, the one being signed or retried, and the open one) never exceed
// it. Records that arrive beyond it are counted (missed_overflow) and their
// event indexes skipped, so the gap shows in the next batch's missed_events
// exactly like a drop in the ring (docs/attestation.md, batch payload key
// 12).
//
// Gaps are never silent. submit()'s `missed` (records the ring dropped since
// the previous call) advances the event index by that many before the
// records are numbered; each batch's missed_events is the number of indexes
// skipped since the previous batch, which is what hsm::check_chain checks.
//
// Failures. A signer that fails (next_counter or sign: a TPM that went away,
// a token that closed its session) is retried after a bounded exponential
// backoff with jitter (retry_min doubling up to retry_max, each wait drawn
// from [d/2, d]); the batch is kept, and what arrived meanwhile joins it at
// the next attempt (up to max_open_events), so one signature covers the
// whole outage once the signer is back. A log append that fails is retried
// by the writer the same way with the same signed record (never signed
// twice, and nothing signed later is written before it); meanwhile the
// signer thread signs at most one more batch and then waits, the open batch
// growing. Each failure is counted and last_error says what and where.
//
// The chain across restarts. The batcher continues the chain of the log it
// is given: previous_root is the last complete record's merkle_root and the
// event index continues after its last_event_index, so the log stays one
// chain per key from the key's first batch (previous_root all zero) on, and
// hsm::check_chain runs across restarts unchanged. A batch removed from the
// log then always breaks the previous_root link and a replayed or reordered
// one the counter rule; a chain restarted at every start would instead let
// a removed batch pass as "a restart" wherever a restart could have been.
// start() refuses a log whose last record is not this signer's (signer_id,
// signature under its key) or whose counter is ahead of the signer's (a
// rolled-back or replaced counter); use another log for another key. What a
// restart cannot show is the events that were in memory when the process
// died (the ring and the open batch); a verifier sees a restart as a jump in
// batch_time_ns and, when the process died between signing and logging, a
// gap in the counter.
//
// Threads: the signer thread and the writer thread, started by start() and
// joined by stop(); submit() from one producer thread; set_nonce(), stats()
// and stop() from any thread. submit() takes a mutex only to append to the
// open batch (the signer thread swaps whole buffers, which keep their
// capacity, so steady state allocates nothing); it never signs, never waits
// for the signer, and is not for the fast path itself (which writes the
// ring).
//
// Control-side code: allocates, returns result<>, never throws.

#include <dataplane/event_record.h>
#include <drivers/base/result.h>
#include <hsm/batch_builder.h>
#include <hsm/evidence.h>
#include <hsm/evidence_log.h>
#include <hsm/signer.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace ptpsec::hsm {

struct batcher_settings {
    /// N: a batch closes at this many events (when the signer is free).
    size_t max_events = 4096;
    /// T: a batch closes when its first event is this old (signer free).
    std::chrono::milliseconds max_wait{100};
    /// Events held at most (the batch being written, the one being signed or
    /// retried, and the open one); beyond it records are counted as
    /// missed_overflow.
    size_t max_open_events = size_t{1} << 20;
    /// The signer's identity in every claim and payload (1-255 octets).
    std::string signer_id;
    /// Claim 9: a digest of the platform state, 1-64 octets, or none.
    std::optional<std::vector<uint8_t>> pcr_summary;
    /// Backoff after a failed signature or log append.
    std::chrono::milliseconds retry_min{50};
    std::chrono::milliseconds retry_max{5000};
    /// Threads that write and hash a batch's leaves (batch_builder): the
    /// signer thread and builder_threads - 1 helpers, 1 to 16.
    unsigned builder_threads = 1;
    /// How long stop() keeps retrying a failing signer or log before it
    /// gives up on the events it still holds (and reports them).
    std::chrono::milliseconds stop_timeout{10000};
};

/// A snapshot of the counters; every field is since start().
struct batcher_stats {
    uint64_t events_submitted = 0; ///< records given to submit(), overflow included
    uint64_t events_signed = 0;    ///< in a batch appended to the log
    uint64_t missed_ring = 0;      ///< sum of submit()'s `missed`
    uint64_t missed_overflow = 0;  ///< records refused at max_open_events
    uint64_t events_refused = 0;   ///< records submitted after stop()
    uint64_t events_held = 0;      ///< accepted, not yet in the log
    uint64_t batches_signed = 0;
    uint64_t sign_failures = 0; ///< next_counter or sign failed
    uint64_t log_failures = 0;  ///< the log append failed
    uint64_t largest_batch = 0;
    uint64_t last_counter = 0;     ///< the counter of the last batch logged
    uint64_t next_event_index = 0; ///< the index the next record would get
    std::string last_error;        ///< the latest failure, empty if none
    /// Event-to-token latency: from the submit() call that brought an event
    /// to its batch's record being durable in the log. Percentiles come
    /// from a log-linear histogram (bucket upper bounds, <= 1/32 above the
    /// true value); max is exact.
    std::chrono::microseconds latency_p50{0};
    std::chrono::microseconds latency_p99{0};
    std::chrono::microseconds latency_max{0};
    /// CPU time the signer thread, the writer thread and the builders'
    /// helpers used (CLOCK_THREAD_CPUTIME_ID), for the per-event cost of
    /// building, signing and logging batches.
    std::chrono::nanoseconds signer_cpu{0};
};

/// What stop() could not do.
struct batcher_stop_report {
    /// Events accepted but not in the log: the signer or the log kept
    /// failing until stop_timeout. Zero on a clean stop.
    uint64_t events_unsigned = 0;
    /// Indexes skipped after the last signed event (ring drops or overflow
    /// reported after it): no later batch shows them, so they are reported
    /// here.
    uint64_t trailing_missed = 0;
    std::string last_error;
};

/// A log-linear histogram of microsecond values: 32 sub-buckets per power
/// of two (relative error below 1/32), values up to 2^41 us (25 days).
class latency_histogram {
public:
    void add(uint64_t value_us, uint64_t count) noexcept;
    /// The smallest bucket upper bound below which at least `q` (0..1) of
    /// the values fall; 0 when empty.
    uint64_t quantile(double q) const noexcept;
    uint64_t max() const noexcept { return _max; }
    uint64_t count() const noexcept { return _count; }

private:
    static constexpr unsigned sub_bits = 5;
    static constexpr unsigned max_bits = 41;
    static constexpr size_t buckets = size_t{max_bits + 1 - sub_bits} << sub_bits;
    static size_t bucket_of(uint64_t v) noexcept;
    static uint64_t upper_bound_of(size_t bucket) noexcept;
    std::array<uint64_t, buckets> _counts{};
    uint64_t _count = 0;
    uint64_t _max = 0;
};

class batcher {
public:
    /// Checks the settings, continues the chain of `log` (see above) and
    /// starts the signer thread. `s` and `log` must outlive the batcher and
    /// are used by its thread only.
    static result<std::unique_ptr<batcher>> start(signer& s, evidence_log& log, batcher_settings settings);

    /// Stops (see stop()).
    ~batcher();
    batcher(const batcher&) = delete;
    batcher& operator=(const batcher&) = delete;
    batcher(batcher&&) = delete;
    batcher& operator=(batcher&&) = delete;

    /// Appends `records` to the open batch, numbering them after skipping
    /// `missed` indexes (what the ring dropped before them). Returns how many
    /// were accepted: the others (beyond max_open_events, or all of them
    /// after stop()) are counted, and their indexes skipped while running.
    /// One producer thread only.
    size_t submit(std::span<const event_record> records, uint64_t missed = 0);

    /// The verifier nonce (8-64 octets) for every batch the signer takes
    /// from now on, until the next set_nonce; an empty optional withdraws
    /// it. A batch carries the nonce that was set when the signer took it
    /// (a batch held after a failure and not yet signed takes the newest).
    status set_nonce(std::optional<std::vector<uint8_t>> nonce);
    /// The nonce batches are given now.
    std::optional<std::vector<uint8_t>> nonce() const;

    batcher_stats stats() const;

    /// Closes and signs what is open, retrying a failing signer or log up to
    /// stop_timeout, then joins the threads. Later calls return the first
    /// report; later submit()s are refused.
    batcher_stop_report stop();

private:
    struct burst_mark {
        size_t count;
        std::chrono::steady_clock::time_point submitted;
    };
    struct batch_buffer {
        std::vector<batch_event> events;
        std::vector<burst_mark> bursts;
        std::chrono::steady_clock::time_point first_submit{};
        void clear() noexcept {
            events.clear();
            bursts.clear();
        }
        bool empty() const noexcept { return events.empty(); }
    };

    /// A batch_builder and the batch signed into it, handed by the signer
    /// thread to the writer: the signer thread signs into slot k % 2 for
    /// its k-th batch and the writer appends them in that order.
    struct slot {
        std::unique_ptr<batch_builder> builder;
        /// The signed batch's events and bursts (for the latency).
        batch_buffer batch;
        /// Under _mutex: signed, not yet appended (or given up on).
        bool pending = false;
    };

    batcher(signer& s, evidence_log& log, batcher_settings settings);
    void run();
    /// After run() returns: the writer ends once it has written (or given
    /// up on) every slot.
    void end_signing();
    void run_writer();
    /// Under _mutex: the open, closed, signing and written batches' events.
    size_t events_held() const noexcept {
        return _open.events.size() + _closed.events.size() + _events_signing + _events_writing;
    }
    /// Under _mutex, by the writer: `sl`'s events are given up on (stop's
    /// deadline passed, _writer_gave_up) and the slot is free again.
    void abandon_slot(slot& sl);
    /// Under _mutex: moves `from` to the end of `to`.
    static void merge_into(batch_buffer& to, batch_buffer& from);
    /// The wait before attempt `failures` + 1, drawn with `rng_state`.
    std::chrono::milliseconds next_backoff(uint64_t& rng_state, unsigned failures);
    void record_failure(bool log_failure, const std::string& message);

    signer& _signer;
    evidence_log& _log;
    const batcher_settings _settings;
    std::array<slot, 2> _slots;

    // The chain, touched by the signer thread only (set before it starts).
    digest _previous_root = first_batch_previous_root;
    std::optional<uint64_t> _previous_last_index;
    /// The backoff's jitter (splitmix64; no need for more), one per thread.
    uint64_t _rng_state = 0;
    uint64_t _writer_rng_state = 0;

    // Shared between the producer, the signer thread, the writer and stop():
    // _mutex.
    mutable std::mutex _mutex;
    std::condition_variable _wake;
    batch_buffer _open;
    /// A batch the producer closed at N for an idle signer thread.
    batch_buffer _closed;
    /// The signer thread waits for a batch (not signing, not backing off).
    bool _signer_waiting = false;
    /// Events in the batch the signer thread is signing or retrying.
    size_t _events_signing = 0;
    /// Events in the slots handed to the writer.
    size_t _events_writing = 0;
    uint64_t _next_index = 0;
    /// One past the index of the last record accepted.
    uint64_t _index_after_last_event = 0;
    /// Set by the signer thread and the writer when they give up at stop.
    uint64_t _events_abandoned = 0;
    /// The signer thread has returned: the writer ends when it has no slot.
    bool _signer_done = false;
    /// The writer gave up at stop's deadline: later slots are given up on
    /// too, so that the log never holds a batch whose predecessor is lost.
    bool _writer_gave_up = false;
    /// The writer waits on this for a slot; the signer thread for a free one.
    std::condition_variable _writer_wake;
    std::condition_variable _slot_free;
    std::optional<std::vector<uint8_t>> _nonce;
    bool _stopping = false;
    std::chrono::steady_clock::time_point _stop_deadline{};
    uint64_t _events_submitted = 0;
    uint64_t _missed_ring = 0;
    uint64_t _missed_overflow = 0;
    uint64_t _events_refused = 0;

    // Results, written by the signer thread and the writer: _stats_mutex.
    mutable std::mutex _stats_mutex;
    batcher_stats _stats;
    latency_histogram _latency;

    std::mutex _stop_mutex;
    std::optional<batcher_stop_report> _stop_report;
    /// CPU time of the signer thread and of the writer, as each last saw it.
    std::atomic<int64_t> _signer_cpu_ns{0};
    std::atomic<int64_t> _writer_cpu_ns{0};
    std::thread _thread;
    std::thread _writer;
};

} // namespace ptpsec::hsm
