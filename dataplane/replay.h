#pragma once

// Replay protection for authenticated PTP messages (seeds/001 §5.1, IEEE
// 1588-2019 16.14): one RFC 6479 sliding window per stream of sequenceIds,
// with the 16-bit sequenceId extended to 64 bits as IPsec extends its
// sequence numbers (RFC 4303 appendix A), and the state bound to the key that
// authenticated it.
//
// Streams. 1588-2019 7.3.7 gives each PTP Port a sequenceId pool per message
// type, so a window belongs to
//
//     (sourcePortIdentity, messageType, domainNumber, sdoId, SPP, key ID)
//
// and, for the messages that answer a request, also to the requester:
//
//   * Delay_Resp, Pdelay_Resp and Pdelay_Resp_Follow_Up carry the sequenceId
//     of the Delay_Req or Pdelay_Req they answer (clause 11). A master
//     that answers many slaves sends one interleaved sequence per slave, so a
//     single window per master would refuse legitimate responses. The
//     requestingPortIdentity of the body is part of their stream.
//   * A Management RESPONSE or ACKNOWLEDGE copies the request's sequenceId
//     and names the requester in targetPortIdentity (clause 15): the same rule,
//     keyed by targetPortIdentity for those two actionField values only.
//   * Delay_Req and Pdelay_Req come from the requester's own pool and need
//     nothing more; neither do Sync, Follow_Up, Announce and Signaling.
//
// domainNumber and sdoId are in the key because pools belong to a PTP
// Instance: two instances of one node that share a clockIdentity in
// different domains must not meet in one window. SPP is in the key because
// key IDs are only unique within an SA (the SAD is keyed by SPP and key ID).
// Every field of the key is covered by the ICV, so a replayed message always
// lands in the window of its original: a finer key never lets a replay
// through, it only costs table slots.
//
// Extended sequence numbers. Each window keeps the highest accepted value as
// a 64-bit ESN. A sequenceId is extended to the candidate closest to it: up
// to 2^15 - 1 ahead is new (any number of lost messages below that is
// accepted, across the 0xFFFF -> 0 wrap too); anything else is behind, and
// too old if it is behind the window. The wrap therefore never reopens the
// window. What the ESN cannot do
// here, unlike in IPsec, is authenticate the high bits: the ICV covers only
// the 16-bit sequenceId. Once a stream has advanced 2^15 + 1 messages past a
// recorded message under the same key, that message looks new again. This
// is the weakness seeds/001 §5.1 points out in the two-octet sequenceId; the
// defence is a key lifetime below 2^15 messages per stream (about 4 minutes
// of Sync at 128 per second, 68 minutes at 8 per second), which rotation
// enforces, since a new key ID starts fresh windows.
//
// A stream's first message opens its window at whatever value it carries
// (the "startup problem" of seeds/003): only authenticated messages may do
// so. accept() must therefore run after the ICV verified; check() may run
// before it as a cheap pre-filter, and changes nothing.
//
// A sender that restarts its sequenceIds under the same key is refused as
// too_old until it passes its old value or gets 2^15 ahead of it; rotation
// or retire_key() ends that sooner.
//
// The table. A fixed set-associative table, allocated once at construction:
// every stream hashes to two buckets of eight slots, and its window sits in a
// bitmap beside the slots. When both buckets are full, the least recently
// accepted of their sixteen streams is replaced and counted as evicted: a
// sender that went silent gives its slot up to a live one instead of keeping
// it forever. The evicted stream loses its window, so a replay of its recent
// messages would open a fresh one and be accepted: size the table for the
// streams of the network and watch the evicted counter. A table of sixteen
// slots has exactly two buckets, so there the rule is a true LRU.
//
// One table per lcore, single writer, no atomics. A replay meets the window
// of its original only if every message of a stream reaches the same table:
// steer PTP so that a sender stays on one lcore.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace ptpsec {

/// What replay protection says of one message.
enum class replay_verdict : uint8_t {
    accepted, ///< new: accept() recorded it (check(): would record it)
    replayed, ///< inside the window and accepted before
    too_old,  ///< behind the window: it cannot be told from a replay
};

inline constexpr size_t replay_verdict_count = static_cast<size_t>(replay_verdict::too_old) + 1;

/// "accepted", "replayed", "too_old"; "invalid" otherwise.
std::string_view replay_verdict_name(replay_verdict v) noexcept;

struct replay_config {
    /// Requested window in sequence numbers, rounded up as RFC 6479 does
    /// (replay_table::effective_window).
    uint32_t window = 64;
    /// Streams the table holds; rounded up to a power of two number of
    /// buckets of eight, at least sixteen and at most 2^20. Memory: about
    /// capacity * (52 + 8 * (window / 64 + 1)) octets, 68 KiB by default.
    size_t capacity = 1024;
};

/// Counted by accept() and accept_burst() only (check() counts nothing).
/// One writer: the lcore that owns the table; readers sum over lcores.
struct alignas(64) replay_counters {
    /// Indexed by replay_verdict.
    std::array<uint64_t, replay_verdict_count> verdicts{};
    /// Accepted below the highest accepted value (reordered on the way).
    uint64_t late = 0;
    /// Windows opened by the first message of a stream.
    uint64_t opened = 0;
    /// Windows replaced because both buckets were full.
    uint64_t evicted = 0;
    /// Windows dropped by retire_key().
    uint64_t retired = 0;
};

/// One message for accept_burst().
struct replay_input {
    const uint8_t* msg = nullptr; ///< the PTP message; see replay_table::accept()
    uint8_t spp = 0;
    uint32_t key_id = 0;
};

/// The replay windows of one lcore.
class replay_table {
public:
    /// Bits of a bitmap block (RFC 6479 uses the machine word).
    static constexpr uint32_t block_bits = 64;
    static constexpr uint32_t min_window = 64;
    /// The largest window whose bitmap (512 blocks) keeps it below 2^15, the
    /// distance the ESN rule can look back.
    static constexpr uint32_t max_window = 32704;
    static constexpr size_t ways = 8;
    static constexpr size_t min_capacity = 2 * ways;
    static constexpr size_t max_capacity = size_t{1} << 20;

    /// The most memory a table may take: a window and a stream count that
    /// need more are refused by name (check_options, and the data plane's
    /// start for an SA file's seqid_window) rather than allocated.
    static constexpr size_t max_state_bytes = size_t{1} << 30;

    /// Allocates every slot and bitmap; nothing is allocated afterwards.
    explicit replay_table(const replay_config& cfg = {});

    /// The octets of slots and bitmaps a table made with `cfg` allocates.
    static size_t state_bytes(const replay_config& cfg) noexcept;

    /// RFC 6479 rounding: the bitmap is a power of two number of blocks and
    /// one block more than the window needs, so that the block being reused
    /// never holds a live bit; the window is the bitmap minus that block.
    /// 64 -> 64, 65..192 -> 192, 193..448 -> 448, ... 4096 -> 8128. Values
    /// below min_window or above max_window are taken as those.
    static uint32_t effective_window(uint32_t requested) noexcept;

    /// The verdict accept() would give, without changing any state or
    /// counter: a pre-filter that may run before the ICV is checked.
    /// `msg` as for accept().
    replay_verdict check(const uint8_t* msg, uint8_t spp, uint32_t key_id) const noexcept;

    /// Checks the message against its stream's window and records it if it
    /// is new; the verdict is counted. Call only for messages whose ICV
    /// verified with key `key_id` of SA `spp`. `msg` is the start of a PTP
    /// message that ptp::parse_message() accepted: the header and the fixed
    /// body of its type are there. The message is only read.
    replay_verdict accept(const uint8_t* msg, uint8_t spp, uint32_t key_id) noexcept;

    /// accept() for n messages in order (a duplicate later in the burst is
    /// judged against the earlier one); out[i] is the verdict of in[i].
    /// Returns the number accepted. Messages are only read: the caller keeps
    /// every one and drops those whose verdict is not accepted.
    uint16_t accept_burst(const replay_input* in, uint16_t n, replay_verdict* out) noexcept;

    /// Drops every window of key `key_id` of SA `spp` once the key is
    /// retired (seeds/001 §2.5.1: after the grace period). Walks the whole
    /// table: a service-path call, not a per-packet one. Returns the number
    /// of windows dropped.
    size_t retire_key(uint8_t spp, uint32_t key_id) noexcept;

    uint32_t window() const noexcept { return _window; }
    size_t capacity() const noexcept { return _entries.size(); }
    /// Windows in use.
    size_t size() const noexcept { return _live; }
    const replay_counters& counters() const noexcept { return _counters; }

private:
    /// The stream identity, compared and hashed as four words.
    static constexpr size_t key_words = 4;
    using stream_key = std::array<uint64_t, key_words>;

    struct entry {
        stream_key key{};
        uint64_t top = 0;   ///< highest accepted ESN
        uint64_t stamp = 0; ///< _clock when last accepted
    };

    /// The 32-bit tags of a bucket's slots, so a lookup reads one line
    /// before it compares a key; 0 marks a free slot.
    struct alignas(32) bucket {
        std::array<uint32_t, ways> tag{};
    };

    struct located {
        size_t slot;
        bool found;
    };

    struct prepared {
        stream_key key;
        uint64_t hash;
        uint16_t sequence_id;
    };

    static prepared prepare(const uint8_t* msg, uint8_t spp, uint32_t key_id) noexcept;
    void buckets_of(uint64_t hash, size_t& first, size_t& second) const noexcept;
    located find(const prepared& p) const noexcept;
    replay_verdict judge(size_t slot, uint64_t esn) const noexcept;
    replay_verdict accept_prepared(const prepared& p) noexcept;
    size_t open_slot(const prepared& p) noexcept;
    uint64_t* bitmap_of(size_t slot) noexcept { return &_bitmaps[slot * _blocks]; }
    const uint64_t* bitmap_of(size_t slot) const noexcept { return &_bitmaps[slot * _blocks]; }

    uint32_t _window;
    uint32_t _blocks;
    uint64_t _block_mask;
    size_t _bucket_mask;
    std::vector<bucket> _buckets;
    std::vector<entry> _entries;
    std::vector<uint64_t> _bitmaps;
    size_t _live = 0;
    uint64_t _clock = 0;
    replay_counters _counters;
};

} // namespace ptpsec
