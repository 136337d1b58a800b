#pragma once

// Signs batches the way sign_batch() defines them (evidence.h), writing the
// log record straight into buffers kept from one batch to the next: the
// leaves, each a CBOR byte string of encoded claims, lie one after the other
// exactly as the record's leaves array holds them, and the log is written
// from there (evidence_log::append_parts of log_record()), so a leaf is
// written once and never copied. The hash input of a leaf, 0x00 || leaf
// (RFC 9162 §2.1.1), is the same memory with the last octet of the byte
// string's head set to 0x00 while the leaves are hashed and restored after;
// leaves and nodes are hashed in bursts (merkle_root_hasher).
//
// Threads. Writing and hashing the leaves is nearly all the per-event work
// of a signer (docs/benchmarks.md), so a builder may share it out: with T
// threads (the caller and the T - 1 helpers of a helper_pool, its own or one
// shared with builders used in turn), a batch is cut
// into parts of 2^k consecutive leaves (the last may hold fewer), about four
// per thread and at least min_part_leaves each; each part's leaves are
// written into their own region and hashed to the part's root, which is the
// tree's node at level k; the caller finishes the tree from those nodes.
// The record then has one run of leaves per part.
//
// Once the batches stop growing, sign() allocates only what the signer and
// the COSE encoding allocate per batch, nothing per event. sign() from one
// thread at a time.

#include <drivers/base/result.h>
#include <hsm/evidence.h>
#include <hsm/merkle.h>
#include <hsm/signer.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace ptpsec::hsm {

/// CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID).
std::chrono::nanoseconds thread_cpu_time() noexcept;

/// The threads that help a batch_builder write and hash leaves. Builders
/// used by one thread at a time (the batcher's three slots: only the
/// builder thread builds) share one pool instead of keeping helpers each.
class helper_pool {
public:
    /// `helpers` threads (1 or more), waiting for work.
    static result<std::shared_ptr<helper_pool>> create(unsigned helpers);
    /// Stops and joins the helpers.
    ~helper_pool();
    helper_pool(const helper_pool&) = delete;
    helper_pool& operator=(const helper_pool&) = delete;
    helper_pool(helper_pool&&) = delete;
    helper_pool& operator=(helper_pool&&) = delete;

    unsigned helpers() const noexcept { return static_cast<unsigned>(_threads.size()); }
    /// Runs job(ctx, id) on every helper (id 1 to helpers()) and on the
    /// calling thread (id 0), and returns when all have returned. Callers
    /// take turns.
    void run(void (*job)(void* ctx, unsigned id) noexcept, void* ctx);
    /// CPU time the helpers used so far (CLOCK_THREAD_CPUTIME_ID).
    std::chrono::nanoseconds cpu() const noexcept {
        return std::chrono::nanoseconds(_cpu_ns.load(std::memory_order_relaxed));
    }

private:
    helper_pool() = default;
    void helper(unsigned id);

    std::mutex _run_mutex; ///< one run() at a time
    std::mutex _mutex;
    std::condition_variable _work;
    std::condition_variable _done;
    void (*_job)(void*, unsigned) noexcept = nullptr;
    void* _ctx = nullptr;
    uint64_t _generation = 0;
    unsigned _busy = 0;
    bool _quit = false;
    /// Each helper adds what it used since it last did.
    std::atomic<int64_t> _cpu_ns{0};
    std::vector<std::thread> _threads;
};

class batch_builder {
public:
    static constexpr unsigned max_threads = 16;
    /// The smallest part a batch is cut into for several threads.
    static constexpr size_t min_part_leaves = 1024;

    /// `threads`: 1 to max_threads threads write and hash the leaves: the
    /// caller and the threads - 1 helpers of `pool`, or of a pool of its own
    /// when `pool` is null.
    static result<std::unique_ptr<batch_builder>> create(unsigned threads = 1,
                                                         std::shared_ptr<helper_pool> pool = nullptr);

    ~batch_builder();
    batch_builder(const batch_builder&) = delete;
    batch_builder& operator=(const batch_builder&) = delete;
    batch_builder(batch_builder&&) = delete;
    batch_builder& operator=(batch_builder&&) = delete;

    /// sign_batch()'s contract: checks the request, advances the signer's
    /// counter, writes the leaves, hashes the tree, signs the payload. On
    /// success the batch stays here until the next sign() or begin(); on
    /// failure nothing is held. The same as next_counter(), begin(),
    /// finish() and seal().
    status sign(signer& s, const batch_request& req);

    /// A batch built while it grows, in four steps (the batcher builds the
    /// open batch's leaves while the device signs the previous batch):
    ///
    ///   * begin() checks `req`'s signer_id, nonce and pcr_summary, which are
    ///     in every leaf with `counter`, and drops whatever was built before;
    ///   * add() writes and hashes the leaves of `req.events` not added yet,
    ///     in whole parts of part_leaves (a part's root is a node of the tree
    ///     whatever the batch's final size), and leaves the rest;
    ///   * finish() adds the rest, finishes the tree and encodes the payload
    ///     (counter, root, range, previous_root, missed_events, nonce), all
    ///     without the device;
    ///   * seal() has the signer sign the payload: the token and the record.
    ///
    /// Between begin() and finish() `req` only grows at its end and keeps
    /// its signer_id, nonce and pcr_summary. A step that fails leaves
    /// nothing begun or held; seal() may be called again after it failed.
    static constexpr size_t part_leaves = 4096;
    status begin(uint64_t counter, const batch_request& req);
    status add(const batch_request& req);
    status finish(const signer_info& info, const batch_request& req);
    status seal(signer& s);

    /// True from begin() until finish() or a failure.
    bool begun() const noexcept { return _begun; }
    /// The leaves written and hashed since begin().
    size_t leaves_added() const noexcept { return _added; }
    /// The counter given to begin().
    uint64_t counter() const noexcept { return _counter; }
    /// The nonce the leaves were begun with.
    const std::optional<std::vector<uint8_t>>& nonce() const noexcept { return _nonce; }

    /// True between a successful sign() or seal() and the next begin().
    bool holds_batch() const noexcept { return _holds; }
    const batch_payload& payload() const noexcept { return _payload; }
    const cose_sign1& token() const noexcept { return _token; }

    /// The log record (the octets of encode_log_record()) in the order to
    /// write them: the record's head with the token and the leaves array's
    /// head, then the leaves in one run per part (at most 4 per thread).
    std::span<const std::span<const uint8_t>> log_record() const noexcept { return _record_parts; }

    size_t leaf_count() const noexcept { return _leaves.size(); }
    /// Leaf i's encoded claims.
    std::span<const uint8_t> leaf(size_t i) const noexcept;

    /// The batch as a batch_record (copies every leaf).
    batch_record to_record() const;

    unsigned threads() const noexcept { return static_cast<unsigned>(_hashers.size()); }

private:
    batch_builder() = default;

    struct leaf_at {
        size_t head;   ///< where the byte string's head starts in _items
        size_t claims; ///< where the claims start (after the head)
        size_t length; ///< the claims' length
    };
    struct part {
        size_t first = 0; ///< index of its first leaf
        size_t count = 0;
        size_t end = 0; ///< one past its last octet in _items (it starts at first * _room)
        digest root{};
        std::string error;
    };

    /// Checks req.events[from, end) and adds them as parts of `size` leaves
    /// (the last may hold fewer), shared with the helpers.
    status add_parts(const batch_request& req, size_t end, size_t size);
    /// Writes and hashes the parts left, with thread `id`'s hasher.
    void run_parts(unsigned id) noexcept;
    void build_part(part& p, merkle_root_hasher& hasher) noexcept;

    /// One per thread; [0] is the caller's.
    std::vector<std::unique_ptr<merkle_root_hasher>> _hashers;
    /// The leaves array's elements: part j's from _parts[j].first * _room.
    std::vector<uint8_t> _items;
    std::vector<leaf_at> _leaves;
    std::vector<std::span<const uint8_t>> _hash_inputs;
    std::vector<part> _parts;
    std::vector<digest> _part_roots;
    /// The record's head, its token and the leaves array's head.
    std::vector<uint8_t> _record_head;
    std::vector<std::span<const uint8_t>> _record_parts;
    batch_payload _payload;
    std::vector<uint8_t> _payload_octets;
    cose_sign1 _token;
    uint64_t _counter = 0;
    std::optional<std::vector<uint8_t>> _nonce;
    size_t _added = 0;
    bool _begun = false;
    bool _finished = false;
    bool _holds = false;

    // The batch being built, for the helpers: set before _generation moves.
    const batch_request* _req = nullptr;
    std::vector<uint8_t> _batch_part;
    size_t _room = 0;
    std::atomic<size_t> _next_part{0};

    std::shared_ptr<helper_pool> _pool; ///< null with one thread
};

} // namespace ptpsec::hsm
