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
//   set_ticket   attach a TICKET TLV value to key `key_id` of SA `spp` (a
//                requester in ticket-based mode, seeds/001 §6): the data
//                plane puts it, as a TICKET TLV, into every unicast request
//                it signs with that key. Layout below
//   attest_nonce not an SA operation: the verifier nonce the data plane's
//                attestation signer puts into every batch it signs from now
//                on (docs/attestation.md, payload key 13), until the next
//                attest_nonce. `key_len` octets of `key`, 8-64; 0 withdraws
//                the nonce. `spp`, `key_id` and the rest are not read.
//                Rejected ("attestation is off") by a data plane that does
//                not attest
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
// set_ticket. The value is what the TICKET TLV carries after its tlvType and
// lengthField: the NTS Ticket record (seeds/001 §4.2.15), record header
// included, padded with one zero octet to even length. It is not secret (the
// SA inside is sealed with the grantor's ticket key) and it is longer than a
// key, so it takes the record from `key` to the end (max_ticket_len, 104
// octets):
//
//   octets   field(s)                     for set_ticket
//   0-3      magic                        update_magic
//   4        operation                    6
//   5        spp                          the SA
//   6        algorithm                    not read
//   7        key_len                      the value's length: 1-104, and even
//                                         (odd is refused); 0 removes the
//                                         key's ticket
//   8-15     sequence                     echoed in the acknowledgement
//   16-19    key_id                       the key
//   20-23    seqid_window, allow_mutable, not read
//            reserved
//   24-127   key, lifetime_ms, sent_ns,   the value: key_len octets from
//            padding                      octet 24; the rest is not read
//
// The KE server's tickets (16-octet nonce, AES-SIV) fit: 80 octets with a
// 16-octet unicast key, 96 with a 32-octet one.
//
// So `lifetime_ms` and `sent_ns` are not read for set_ticket either (their
// octets are the value's, and there is no apply latency for it). The key must
// be installed already. PTP TLVs have even length (IEEE 1588-2019 clause 14),
// hence the refusal of an odd one rather than a TLV the grantor cannot parse.
// The ticket goes with its key (remove_key, expiry, remove_sa, flush); a
// second set_ticket replaces it.
//
// An SA remembers the last key IDs it retired (removed or expired) and does
// not install them again until the SA itself goes (remove_sa, flush):
// seeds/001 §5.3. An SA whose last key goes stays, without keys, for that.
//
// Every update is answered by one acknowledgement with the same sequence
// number: applied, or rejected with the reason. A rejected update changes
// nothing. Removing a key the SA removed or expired already is applied and
// changes nothing (the reason field says so): the control plane's removal
// of a key at the end of its life races the data plane's own expiry of it.

#include <cstddef>
#include <cstdint>
#include <cstring>

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
    set_ticket = 6,
    attest_nonce = 7,
};

/// attest_nonce: the lengths a nonce may have (docs/attestation.md).
inline constexpr size_t min_nonce_len = 8;
inline constexpr size_t max_nonce_len = 64;
static_assert(max_nonce_len <= max_key_len);

/// `algorithm` numbers the MACs as icv::algorithm does (not seeds/001 Table
/// 26, which has no number for AES-CMAC-256): 0 HMAC-SHA256-128,
/// 1 HMAC-SHA256, 2 AES-CMAC-128, 3 AES-CMAC-256 (linuxptp's AES256),
/// 4 AES-GMAC-128, 5 AES-GMAC-192, 6 AES-GMAC-256.
struct update {
    uint32_t magic = update_magic;
    uint8_t operation = 0; ///< op
    uint8_t spp = 0;
    uint8_t algorithm = 0; ///< add_key
    uint8_t key_len = 0;   ///< add_key, attest_nonce: octets of `key` used; set_ticket: octets of the value
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

/// set_ticket: where the value starts, and the most it holds (from there to
/// the end of the record).
inline constexpr size_t ticket_offset = offsetof(update, key);
inline constexpr size_t max_ticket_len = sizeof(update) - ticket_offset;
static_assert(ticket_offset == 24 && max_ticket_len == 104);
static_assert(max_ticket_len <= UINT8_MAX, "key_len holds the length");
// The value covers these fields (the record has no gap in between).
static_assert(offsetof(update, lifetime_ms) == ticket_offset + max_key_len &&
              offsetof(update, padding) + sizeof(update::padding) == sizeof(update));

/// set_ticket: the value's first octet (key_len octets from there). Read
/// through the record's object representation, which the offsets above pin.
inline const uint8_t* ticket_value(const update& u) noexcept {
    return reinterpret_cast<const uint8_t*>(&u) + ticket_offset;
}

/// set_ticket: writes `len` octets (at most max_ticket_len; the caller
/// checks) at ticket_offset and sets key_len; the octets after them are
/// zeroed.
inline void put_ticket_value(update& u, const uint8_t* value, size_t len) noexcept {
    auto* at = reinterpret_cast<uint8_t*>(&u) + ticket_offset;
    std::memset(at, 0, max_ticket_len);
    if (len != 0) {
        std::memcpy(at, value, len);
    }
    u.key_len = static_cast<uint8_t>(len);
}

/// The writer's `sent_ns`, or 0 for set_ticket, whose value covers the field.
inline uint64_t sent_ns_of(const update& u) noexcept {
    return u.operation == static_cast<uint8_t>(op::set_ticket) ? 0 : u.sent_ns;
}

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
    char reason[reason_len] = {}; ///< NUL-terminated; when applied, empty or a note
};
static_assert(sizeof(ack) == 128);

} // namespace ptpsec::sa_wire
