#pragma once

// The records the control plane and the data plane exchange on the SA
// channel (dataplane/sa_channel.h): fixed-size, no pointers, the same layout
// in both processes. This header is the whole contract; it includes only the
// standard library so that either side can use it.
//
// The control plane drives time (lifetime, update period, grace period,
// seeds/001 §2.5.1); the data plane installs, switches and removes, and on its
// own only forgets a key whose lifetime, given with the key, has run out:
//
//   add_key      install key `key_id` of SA `spp` (the SA is created with
//                `allow_mutable` and `seqid_window` if it does not exist);
//                receivers accept it from then on (the "next" key). With
//                `lifetime_ms` the key also expires by itself (below)
//   set_current  sign with key `key_id` of SA `spp` from now on
//   remove_key   forget a key (the end of its grace period); wiped once no
//                worker can hold it any more
//   remove_sa    forget an SA and all its keys
//   flush        forget every SA (a control plane that starts again pushes
//                everything after it)
//
// Key lifetime. `lifetime_ms` of add_key is how long after the data plane
// applies the update it forgets the key by itself, exactly as if remove_key
// had come then; 0 (what writers that predate the field leave in the
// padding) means never; at most max_lifetime_ms. The control plane sets it to
// the key's remaining lifetime plus its grace period (seeds/001 §2.5.1), so
// that a data plane whose control plane has gone stops accepting, and signing
// with, a key once no receiver may accept it any more: it fails closed. The
// value is relative, so the two sides need no common clock; the data plane
// turns it into a deadline on CLOCK_MONOTONIC when it applies the update,
// because its CLOCK_REALTIME/CLOCK_TAI may be the very clock PTP steers, and
// a deadline must not move when that clock is stepped (§2.5.1 recommends a
// monotonic clock for the countdown).
//
// An SA remembers the last key IDs it retired (removed or expired) and does
// not install them again until the SA itself goes (remove_sa, flush):
// seeds/001 §5.3. An SA whose last key goes stays, without keys, for that.
//
// Every update is answered by one acknowledgement with the same sequence
// number: applied, or rejected with the reason. A rejected update changes
// nothing.

#include <cstddef>
#include <cstdint>

namespace ptpsec::sa_wire {

inline constexpr uint32_t update_magic = 0x50535531; // "PSU1"
inline constexpr uint32_t ack_magic = 0x50534131;    // "PSA1"
inline constexpr size_t max_key_len = 64;
inline constexpr size_t reason_len = 108;
/// 388 days: the longest lifetime seeds/001 §2.5.1 allows (the overflow of
/// its 32-bit sequence numbers at 128 messages/s, §5.1).
inline constexpr uint64_t max_lifetime_ms = uint64_t{388} * 24 * 3600 * 1000;

enum class op : uint8_t {
    add_key = 1,
    set_current = 2,
    remove_key = 3,
    remove_sa = 4,
    flush = 5,
};

/// `algorithm` numbers the MACs as icv::algorithm does (not seeds/001 Table
/// 26, which has no number for AES-CMAC-256): 0 HMAC-SHA256-128,
/// 1 HMAC-SHA256, 2 AES-CMAC-128, 3 AES-CMAC-256 (linuxptp's AES256),
/// 4 AES-GMAC-128, 5 AES-GMAC-192, 6 AES-GMAC-256.
struct update {
    uint32_t magic = update_magic;
    uint8_t operation = 0; ///< op
    uint8_t spp = 0;
    uint8_t algorithm = 0; ///< add_key
    uint8_t key_len = 0;   ///< add_key: octets of `key` used
    uint64_t sequence = 0; ///< echoed in the acknowledgement
    uint32_t key_id = 0;
    uint16_t seqid_window = 3; ///< add_key, new SA only
    uint8_t allow_mutable = 0; ///< add_key, new SA only (must match an existing SA)
    uint8_t reserved = 0;
    uint8_t key[max_key_len] = {};
    /// add_key: the key is forgotten this many ms after the update is
    /// applied; 0: never (see the top of this header).
    uint64_t lifetime_ms = 0;
    /// CLOCK_MONOTONIC nanoseconds when the writer put the update on the
    /// ring; 0: not given. The data plane reports the time from then until
    /// the new SA version was published (its "apply latency").
    uint64_t sent_ns = 0;
    uint8_t padding[24] = {};
};
static_assert(sizeof(update) == 128);
static_assert(offsetof(update, sequence) == 8 && offsetof(update, key_id) == 16 && offsetof(update, key) == 24);
// Carved out of what was padding: writers that predate it send zeros there.
static_assert(offsetof(update, lifetime_ms) == 88 && offsetof(update, sent_ns) == 96 &&
              offsetof(update, padding) == 104);

enum class status : uint8_t {
    applied = 0,
    rejected = 1,
};

struct ack {
    uint32_t magic = ack_magic;
    uint8_t result = 0; ///< status
    uint8_t operation = 0;
    uint8_t spp = 0;
    uint8_t reserved = 0;
    uint64_t sequence = 0;
    uint32_t key_id = 0;
    char reason[reason_len] = {}; ///< NUL-terminated; empty when applied
};
static_assert(sizeof(ack) == 128);

} // namespace ptpsec::sa_wire
