#pragma once

// AES-GMAC IVs that never repeat under one key, for a group key shared by many
// senders that restart (seeds/001 §4.2.14 asks for the property and leaves the
// transport open). The scheme, documented in docs/security.md:
//
//   * Each sender signs with its own subkey, derived from the group key and
//     its sourcePortIdentity with HKDF-SHA256 (RFC 5869):
//       OKM = HKDF(salt = none, IKM = group key,
//                  info = "ptpsec gmac v1" || MAC type (2) || sourcePortIdentity (10),
//                  L = key length + 4)
//     The first key-length octets are the AES key, the last 4 the RFC 4543
//     salt. Two senders never share a subkey, so their IVs cannot collide.
//   * Within a sender the 8-octet IV is a 64-bit counter that starts at the
//     CLOCK_TAI time in nanoseconds when the signer starts and grows by one
//     per message. A restarted signer starts above every IV it used before,
//     as long as it signed fewer than 10^9 messages per second per key and
//     its clock did not step back across the restart.
//   * The IV travels in the AUTHENTICATION TLV's sequenceNo field (8 octets,
//     secParamIndicator bit 1 set); the nonce is salt || IV.

#include <drivers/icv/engine.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace ptpsec::icv {

inline constexpr size_t port_identity_len = 10;

/// HKDF-SHA256 of the group key, with the pseudo-random key expanded once.
class gmac_kdf {
public:
    /// Install time: runs HKDF-Extract and prepares the PRK as an HMAC key.
    static result<gmac_kdf> create(engine& eng, algorithm gmac_alg, std::span<const uint8_t> group_key);

    /// HKDF-Expand for one sender on `eng` (the caller's own engine: an
    /// engine is not shared between threads, and the PRK is plain key
    /// material any engine of the same plan or device takes); writes
    /// key_len + 4 octets to out. No allocation.
    bool derive(engine& eng, const uint8_t* port_identity, uint8_t* out) const noexcept;

    size_t output_len() const noexcept { return size_t{info(_alg).key_len} + gmac_salt_len; }
    algorithm alg() const noexcept { return _alg; }

private:
    gmac_kdf(algorithm alg, key_handle prk) : _alg(alg), _prk(std::move(prk)) {}

    algorithm _alg;
    key_handle _prk;
};

/// The per-sender GMAC keys of one group key, derived on first use and kept
/// in a fixed table allocated at install time: a lookup never allocates.
///
/// A receiver derives a sender's subkey before it can check the frame's ICV,
/// so anyone can make it derive, naming made-up sourcePortIdentities. Such
/// derivations must not push out the senders that proved themselves: an
/// entry is confirmed once a frame verified with it (or this node signs with
/// it), and an unconfirmed derivation takes only a free or unconfirmed slot
/// near its hash, or else a scratch entry outside the table. confirm()
/// moves a sender that verified from the scratch entry into the table.
/// One writer: the thread that signs or verifies with the key. It derives
/// with its own engine, passed in, never with the engine that made the table
/// (in the data plane the service path's, busy on another lcore).
class gmac_sender_keys {
public:
    struct entry {
        std::array<uint8_t, port_identity_len> port_identity{};
        std::array<uint8_t, gmac_salt_len> salt{};
        key_handle key;
        bool used = false;
        bool confirmed = false; ///< a frame verified with it, or we sign with it
    };

    /// capacity is rounded up to a power of two.
    static result<std::unique_ptr<gmac_sender_keys>> create(engine& eng, algorithm gmac_alg,
                                                            std::span<const uint8_t> group_key, size_t capacity = 64);

    /// The subkey of a sender if it is in the table, else nullptr. Inline:
    /// it runs once per GMAC frame.
    const entry* find(const uint8_t* port_identity) const noexcept {
        const size_t home = hash_port_identity(port_identity) & _mask;
        for (size_t i = 0; i < probe_limit; ++i) {
            const entry& e = _table[(home + i) & _mask];
            if (e.used && std::memcmp(e.port_identity.data(), port_identity, port_identity_len) == 0) {
                return &e;
            }
        }
        if (_scratch.used && std::memcmp(_scratch.port_identity.data(), port_identity, port_identity_len) == 0) {
            return &_scratch;
        }
        return nullptr;
    }

    /// Derives the subkey of a sender with `eng`, unconfirmed, into a free or
    /// unconfirmed slot near its hash, else into the scratch entry: an entry
    /// returned earlier may change, so callers finish using earlier entries
    /// first. Returns nullptr only if the engine rejects the derived key.
    const entry* derive(engine& eng, const uint8_t* port_identity) noexcept;

    /// A frame of `port_identity` verified with `e` (or this node signs as
    /// it): marks the entry confirmed, moving it from the scratch entry into
    /// the sender's home slot (whose sender is then derived again when it
    /// next sends). Returns where the sender's entry now is; nullptr, and
    /// nothing changed, if `e` no longer holds that sender.
    const entry* confirm(const entry* e, const uint8_t* port_identity) noexcept;

    /// find(), else derive().
    const entry* lookup(engine& eng, const uint8_t* port_identity) noexcept {
        const entry* e = find(port_identity);
        return e != nullptr ? e : derive(eng, port_identity);
    }

    /// Read from any thread (telemetry); written by the one writer.
    uint64_t derivations() const noexcept { return _derivations.load(std::memory_order_relaxed); }
    /// Derivations that found no free or unconfirmed slot near their hash.
    uint64_t scratch_derivations() const noexcept { return _scratch_derivations.load(std::memory_order_relaxed); }
    /// Slots of the table (a power of two).
    size_t capacity() const noexcept { return _table.size(); }
    algorithm alg() const noexcept { return _kdf.alg(); }

private:
    gmac_sender_keys(gmac_kdf kdf, size_t capacity);

    /// Two loads and a multiply. The table is small and a collision costs
    /// one derivation, counted, so a keyed hash is not needed.
    static size_t hash_port_identity(const uint8_t* pid) noexcept {
        uint64_t clock = 0;
        uint16_t port = 0;
        std::memcpy(&clock, pid, sizeof(clock));
        std::memcpy(&port, pid + sizeof(clock), sizeof(port));
        const uint64_t h = (clock ^ (uint64_t{port} << 48) ^ port) * 0x9E3779B97F4A7C15ULL;
        return static_cast<size_t>(h ^ (h >> 29));
    }

    static constexpr size_t probe_limit = 8;

    gmac_kdf _kdf;
    std::vector<entry> _table;
    entry _scratch;
    size_t _mask;
    // One writer: a relaxed load and store, no locked add.
    static void bump(std::atomic<uint64_t>& c) noexcept {
        c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    std::atomic<uint64_t> _derivations{0};
    std::atomic<uint64_t> _scratch_derivations{0};
};

/// The IV counter of one signer. Lock-free: lcores sharing a key draw from
/// one counter with an atomic add.
class gmac_iv_counter {
public:
    explicit gmac_iv_counter(uint64_t start) noexcept : _next(start) {}

    /// CLOCK_TAI now, in nanoseconds since the epoch.
    static uint64_t clock_start() noexcept;

    uint64_t next() noexcept { return _next.fetch_add(1, std::memory_order_relaxed); }

    /// Reserves n consecutive IVs with one atomic add and returns the first:
    /// a burst pays for one add, and IVs it leaves unused are simply skipped.
    uint64_t reserve(uint64_t n) noexcept { return _next.fetch_add(n, std::memory_order_relaxed); }
    uint64_t peek() const noexcept { return _next.load(std::memory_order_relaxed); }

private:
    alignas(64) std::atomic<uint64_t> _next;
};

/// nonce = salt (4) || IV (8, big endian).
void make_gmac_nonce(const uint8_t* salt, uint64_t iv, uint8_t* nonce) noexcept;

} // namespace ptpsec::icv
