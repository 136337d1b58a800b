#pragma once

// The batching signer (BRIEF "Attestation"): the data plane's drain thread
// hands it the event records it took off the offload ring; threads of its
// own close batches, have each one signed once (the counter, the Merkle
// tree, the COSE_Sign1 of hsm::sign_batch) and append the record to the
// evidence log (hsm/evidence_log.h). A TPM signs tens of times per second;
// batching is what gives every event at line rate a hardware-rooted
// signature.
//
// Three stages, a thread each, each batch in a slot of its own (a
// batch_builder; three slots, taken in turn):
//
//   * the builder thread builds the open batch: it takes the counter, then
//     writes and hashes the leaves in parts of batch_builder::part_leaves as
//     they arrive (the open batch still growing), and when the batch closes
//     builds the last part, the top of the tree and the payload (S_build,
//     short because most leaves are built by then);
//   * the device thread has the signer sign the payload (S_sign: tens of
//     milliseconds for a TPM);
//   * the writer appends the record to the log and fdatasyncs it (S_log).
//
// While the device signs batch k, the builder builds batch k + 1's leaves
// and the writer appends batch k - 1. Records reach the log in the order
// they were built: the device thread and the writer take the slots in the
// same order, and the chain of batch k + 1 names batch k's root, known when
// k was built. The signer is called from one thread at a time: the builder
// thread takes a counter (next_counter) only under _device_mutex, which the
// device thread holds while it signs, and takes the next batch's counter
// while the device is free, just before handing it a batch, whenever events
// are already waiting.
//
// When a batch closes. A batch closes at `max_events` events (N) or when its
// first event is `max_wait` old (T), whichever comes first, but only while
// the device is free. While it is busy signing the previous batch, or
// backing off after a failure, the open batch keeps growing (and its leaves
// are built): no second batch queues behind the first, so the next signature
// covers everything that arrived meanwhile. Hence:
//
//   * Throughput does not depend on the signer's speed: batches grow to
//     about S_sign worth of events, and one signature covers them all. What
//     bounds throughput is the per-event part: writing and hashing the
//     leaves (hsm/batch_builder.h, about 0.2-0.35 us of CPU per event in a
//     release build, shared out over builder_threads threads) in the builder
//     thread and writing them to the log (about 0.15 us more on a disk) in
//     the writer, each of which must stay below the time between events.
//   * Latency is bounded: an event arriving just after a batch went to the
//     device waits for that batch's signature (at most S_sign), then for its
//     own batch to close (at most T from its first event, which overlaps the
//     first wait), then for the rest of its build, its signature and its
//     write: at most max(T, S_sign) + S_build + S_sign + S_log, from submit()
//     to the record being durable in the log, while S_log and S_build are
//     below S_sign; with S the whole of a batch's time after it closes,
//     that is below T + 2 S. When the log is the slower stage, the builder
//     waits for a free slot and the open batch grows instead.
//   * A batch closed by count while the builder waited and the device was
//     free holds exactly N events (submit() splits a burst there); a batch
//     closed after the device was busy holds everything that arrived
//     meanwhile, which may be more.
//
// Memory is bounded by `max_open_events`: the events held (the open batch,
// the one being signed or retried, and those waiting for the log) never
// exceed it. Records that arrive beyond it are counted (missed_overflow) and
// their event indexes skipped, so the gap shows in the next batch's
// missed_events exactly like a drop in the ring (docs/attestation.md, batch
// payload key 12).
//
// Gaps are never silent. submit()'s `missed` (records the ring dropped since
// the previous call) advances the event index by that many before the
// records are numbered; each batch's missed_events is the number of indexes
// skipped since the previous batch, which is what hsm::check_chain checks.
//
// Failures. Each failure is retried after a bounded exponential backoff with
// jitter (retry_min doubling up to retry_max, each wait drawn from [d/2, d]),
// counted, and last_error says what and where.
//
//   * A signature that fails (a TPM that went away, a token that closed its
//     session) is retried with the same payload: the batch keeps its counter,
//     which no other signed batch has. What arrives meanwhile joins the open
//     batch (up to max_open_events), so once the device is back one more
//     signature covers the rest of the outage.
//   * A counter that does not advance, or a batch that cannot be built, is
//     retried by the builder thread; what arrived meanwhile joins the batch.
//   * A log append that fails is retried by the writer with the same signed
//     record (never signed twice, and nothing signed later is written before
//     it); meanwhile the device signs at most two more batches and then the
//     builder waits, the open batch growing.
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
// Threads: the builder, device and writer threads, started by start() and
// joined by stop(); submit() from one producer thread; set_nonce(), stats()
// and stop() from any thread. submit() takes a mutex only to append to the
// open batch (the builder thread moves whole buffers, which keep their
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

#include <algorithm>
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
    /// builder thread and builder_threads - 1 helpers that the three slots
    /// share, 1 to 16.
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
    /// Leaves written and hashed while their batch was still open, the
    /// device signing the batch before (counted again when a nonce set
    /// meanwhile makes them built anew).
    uint64_t leaves_built_early = 0;
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
    /// CPU time the builder, device and writer threads and the builders'
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
    /// starts the threads. `s` and `log` must outlive the batcher and are
    /// used by its threads only.
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
    /// it. A batch carries the nonce that was set when it closed, read with
    /// its batch_time_ns (leaves built before a new nonce are built again);
    /// a batch whose counter or leaves failed takes the newest at its next
    /// attempt, one whose signature failed keeps its own.
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

    /// A batch_builder and the batch built into it. The builder thread
    /// builds its k-th batch into slot k % 3, the device thread seals the
    /// slots in that order and the writer appends them in that order.
    struct slot {
        enum class state : uint8_t {
            free,    ///< the builder thread may build into it
            built,   ///< for the device thread to seal
            sealed,  ///< for the writer to append
            dropped, ///< given up on by the device thread, for the writer to free
        };
        std::unique_ptr<batch_builder> builder;
        /// The batch's events and bursts (for the latency).
        batch_buffer batch;
        /// Under _mutex.
        state st = state::free;
    };

    batcher(signer& s, evidence_log& log, batcher_settings settings);
    void run();
    void run_device();
    void run_writer();
    /// After run() returns: the device thread ends once it has sealed (or
    /// given up on) every built slot; after run_device() returns, the
    /// writer once it has appended (or given up on) every sealed one.
    void end_building();
    void end_sealing();
    /// Under _mutex: the events of the open, closed, building, built and
    /// sealed batches.
    size_t events_held() const noexcept {
        return _open.events.size() + _closed.events.size() + _events_building + _events_sealing + _events_writing;
    }
    /// Under _mutex: a batch is built and not yet sealed (or dropped), so
    /// the device is busy. The builder thread hands it one batch at a time.
    bool device_busy() const noexcept {
        return std::ranges::any_of(_slots, [](const slot& sl) { return sl.st == slot::state::built; });
    }
    /// The signer's next_counter(), under _device_mutex (by the builder
    /// thread, between the device thread's signatures).
    result<uint64_t> take_counter();
    /// Under _mutex, by the device thread or the writer: `sl`'s events are
    /// given up on (stop's deadline passed, _gave_up).
    void abandon_slot(slot& sl, slot::state next);
    /// Under _mutex: moves `from` to the end of `to`.
    static void merge_into(batch_buffer& to, batch_buffer& from);
    /// The wait before attempt `failures` + 1, drawn with `rng_state`.
    std::chrono::milliseconds next_backoff(uint64_t& rng_state, unsigned failures);
    void record_failure(bool log_failure, const std::string& message);
    /// By the device thread or the writer after its `failures`-th failure
    /// in a row: waits on `cv` for the backoff (drawn with `rng_state`) or
    /// until stop's deadline, when it sets _gave_up.
    void back_off(std::condition_variable& cv, uint64_t& rng_state, unsigned failures);

    signer& _signer;
    evidence_log& _log;
    const batcher_settings _settings;
    std::array<slot, 3> _slots;
    std::shared_ptr<helper_pool> _helpers; ///< the builders' helpers (builder_threads - 1), shared; null with one
    // The chain, touched by the builder thread only (set before it starts).
    digest _previous_root = first_batch_previous_root;
    std::optional<uint64_t> _previous_last_index;
    /// The backoff's jitter (splitmix64; no need for more), one per thread.
    uint64_t _rng_state = 0;
    uint64_t _device_rng_state = 0;
    uint64_t _writer_rng_state = 0;
    /// Held around each call into the signer (next_counter by the builder
    /// thread, sign by the device thread): a device is used by one thread at
    /// a time.
    std::mutex _device_mutex;

    // Shared between the producer, the three threads and stop(): _mutex.
    mutable std::mutex _mutex;
    /// The builder thread waits on this for events, for the device to be
    /// free, for a backoff to end or for stop().
    std::condition_variable _wake;
    batch_buffer _open;
    /// A batch the producer closed at N for a waiting builder thread.
    batch_buffer _closed;
    /// Events of the open batch the builder thread already took (to build
    /// their leaves while the device signs): they count towards N.
    size_t _open_taken = 0;
    /// The builder thread waits; `_build_at`: the size of _open at which it
    /// wants to be woken to build a part.
    bool _builder_waiting = false;
    size_t _build_at = 0;
    /// Events in the batch the builder thread is building or retrying, in
    /// built slots and in sealed ones.
    size_t _events_building = 0;
    size_t _events_sealing = 0;
    size_t _events_writing = 0;
    uint64_t _next_index = 0;
    /// One past the index of the last record accepted.
    uint64_t _index_after_last_event = 0;
    /// Set by the threads when they give up at stop.
    uint64_t _events_abandoned = 0;
    /// run() has returned / run_device() has returned.
    bool _building_done = false;
    bool _sealing_done = false;
    /// The device thread or the writer gave up at stop's deadline: later
    /// slots are given up on too, so that the log never holds a batch whose
    /// predecessor is lost.
    bool _gave_up = false;
    std::condition_variable _device_wake;
    std::condition_variable _writer_wake;
    std::condition_variable _slot_free;
    std::optional<std::vector<uint8_t>> _nonce;
    bool _stopping = false;
    std::chrono::steady_clock::time_point _stop_deadline{};
    uint64_t _events_submitted = 0;
    uint64_t _missed_ring = 0;
    uint64_t _missed_overflow = 0;
    uint64_t _events_refused = 0;

    // Results, written by the threads: _stats_mutex.
    mutable std::mutex _stats_mutex;
    batcher_stats _stats;
    latency_histogram _latency;

    std::mutex _stop_mutex;
    std::optional<batcher_stop_report> _stop_report;
    /// CPU time of each thread, as it last saw it.
    std::atomic<int64_t> _builder_cpu_ns{0};
    std::atomic<int64_t> _device_cpu_ns{0};
    std::atomic<int64_t> _writer_cpu_ns{0};
    std::thread _thread;
    std::thread _device;
    std::thread _writer;
};

} // namespace ptpsec::hsm
