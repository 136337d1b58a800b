#pragma once

// Security associations (seeds/001 §5.3, IEEE 1588-2019 Annex P): what an SA
// file or the control plane describes (sa_config, plain data shared by both
// sides) and what the fast path uses (security_association, with every key
// schedule expanded at install).

#include <dataplane/ptp/frame.h>
#include <dataplane/sa_update_wire.h>
#include <drivers/base/result.h>
#include <drivers/icv/engine.h>
#include <drivers/icv/gmac.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ptpsec {

/// Key bytes that are wiped when they go.
class key_bytes {
public:
    key_bytes() = default;
    explicit key_bytes(std::vector<uint8_t> b) : _b(std::move(b)) {}
    key_bytes(const key_bytes&) = default;
    key_bytes& operator=(const key_bytes&) = default;
    key_bytes(key_bytes&&) noexcept = default;
    key_bytes& operator=(key_bytes&&) noexcept = default;
    ~key_bytes();

    std::span<const uint8_t> span() const noexcept { return _b; }
    size_t size() const noexcept { return _b.size(); }
    bool operator==(const key_bytes& o) const noexcept { return _b == o._b; }

private:
    std::vector<uint8_t> _b;
};

struct key_config {
    uint32_t key_id = 0;
    icv::algorithm alg = icv::algorithm::hmac_sha256_128;
    key_bytes key;
    /// Where it came from ("sa.conf:5"), for messages.
    std::string origin;
};

struct sa_config {
    uint8_t spp = 0;
    /// linuxptp's sequenceId window (default 3); the replay window of the
    /// data plane uses it as its size.
    uint16_t seqid_window = 3;
    /// ICV computed with correctionField zeroed, so transparent clocks may
    /// change it (linuxptp's allow_mutable).
    bool allow_mutable = false;
    std::vector<key_config> keys;
    std::string origin;
};

/// One key of an SA, ready for the fast path.
struct sa_key {
    uint32_t key_id = 0;
    icv::algorithm alg = icv::algorithm::hmac_sha256_128;
    uint8_t icv_len = 0;
    /// The AUTHENTICATION TLV this key signs with (its SA's spp, this key
    /// ID, a sequenceNo for GMAC), made with the key: a signer writes it as
    /// it is (ptp::append_auth_tlv).
    ptp::auth_tlv_template tlv;
    /// HMAC and CMAC: the expanded key.
    icv::key_handle mac;
    /// GMAC: per-sender subkeys derived from the group key (gmac.h). One
    /// writer: the lcore that signs and verifies (the PTP worker), deriving
    /// with its own engine, not with the service path's that made the key.
    std::unique_ptr<icv::gmac_sender_keys> gmac;
    /// When the key expires, in CLOCK_MONOTONIC nanoseconds; 0: never. Set
    /// at install from the update's lifetime (sa_update_wire.h); the service
    /// path removes the key once it has passed (expire_keys in sa_update.h).
    uint64_t expires_ns = 0;
};

/// The last key IDs an SA retired (removed or expired), oldest first: frames
/// that still carry one are counted as expired_key rather than unknown_key,
/// and the IDs are not installed again (seeds/001 §5.3). Plain data, built on
/// the service path and only read on the fast path; when full, the oldest ID
/// makes room.
class retired_key_ids {
public:
    static constexpr size_t capacity = 16;

    bool contains(uint32_t key_id) const noexcept {
        for (size_t i = 0; i < _count; ++i) {
            if (_ids[i] == key_id) {
                return true;
            }
        }
        return false;
    }

    void add(uint32_t key_id) noexcept {
        if (_count == capacity) {
            std::copy(_ids.begin() + 1, _ids.end(), _ids.begin());
            --_count;
        }
        _ids[_count++] = key_id;
    }

    size_t size() const noexcept { return _count; }
    bool empty() const noexcept { return _count == 0; }
    std::span<const uint32_t> ids() const noexcept { return {_ids.data(), _count}; }

private:
    std::array<uint32_t, capacity> _ids{};
    uint8_t _count = 0;
};

/// A TICKET TLV value attached to one key of an SA (set_ticket,
/// dataplane/sa_update_wire.h): the octets after the TLV's tlvType and
/// lengthField, of even length. Fixed size, so that the fast path copies
/// it into a frame without following a pointer.
struct key_ticket {
    uint32_t key_id = 0;
    uint8_t length = 0; ///< 2 to sa_wire::max_ticket_len, even
    std::array<uint8_t, sa_wire::max_ticket_len> value{};

    std::span<const uint8_t> bytes() const noexcept { return {value.data(), length}; }
};

struct security_association {
    uint8_t spp = 0;
    uint16_t seqid_window = 3;
    bool allow_mutable = false;
    /// The key this data plane signs with (seeds/001 §2.5.1: the current
    /// key); none until set.
    bool has_sign_key = false;
    /// The current key was removed or expired and no other was named since:
    /// signing stops (fail closed) and says expired_key.
    bool sign_key_retired = false;
    uint32_t sign_key_id = 0;
    /// Shared between versions of the database: a key is expanded once and
    /// wiped when the last version holding it is dropped. Empty once every
    /// key was removed or expired: the SA stays, with retired_ids, until
    /// remove_sa or flush.
    std::vector<std::shared_ptr<sa_key>> keys;
    retired_key_ids retired_ids;
    /// The tickets of keys in `keys` (at most one per key): a requester
    /// sends the ticket in the unicast requests it signs with that key
    /// (seeds/001 §6). Kept here, not in sa_key: a key is shared between
    /// versions of the database and never changes once published, while the
    /// SA is copied by every update that changes it, so set_ticket makes a
    /// new version like any other update.
    std::vector<key_ticket> tickets;

    sa_key* find_key(uint32_t key_id) const noexcept {
        for (const auto& k : keys) {
            if (k->key_id == key_id) {
                return k.get();
            }
        }
        return nullptr;
    }

    /// The ticket of key `key_id`; nullptr if it has none. Once per burst on
    /// the signing path.
    const key_ticket* find_ticket(uint32_t key_id) const noexcept {
        for (const auto& t : tickets) {
            if (t.key_id == key_id) {
                return &t;
            }
        }
        return nullptr;
    }
};

/// Slots of an AES-GMAC key's per-sender subkey table (icv::gmac_sender_keys)
/// unless the data plane is told otherwise (--gmac-senders), and the most it
/// can be told: each slot holds room for an expanded key (about 1 KiB),
/// allocated when the key is installed, which costs about 46 us per key at
/// the most (docs/benchmarks.md, "Applying an SA update").
inline constexpr size_t default_gmac_senders = 64;
inline constexpr size_t max_gmac_senders = 1024;

/// Has the C heap keep memory that is freed rather than give it back to the
/// kernel at once (glibc's trim threshold, 64 MiB). A process that installs
/// and retires keys (an AES-GMAC key's subkey table is up to 1.2 MiB) would
/// otherwise take a page fault per 4 KiB of every install: 0.24 ms instead
/// of 0.05 ms for a table of 1024 slots. Call once at start.
void keep_freed_key_memory() noexcept;

/// One key of the SA `spp` expanded by `eng`; an AES-GMAC key gets a subkey
/// table of `gmac_senders` slots. The error names `origin`.
result<std::shared_ptr<sa_key>> make_sa_key(icv::engine& eng, uint8_t spp, const key_config& kc,
                                            size_t gmac_senders = default_gmac_senders);

/// SAs by SPP, each with its keys expanded by one engine. A version of the
/// database is never changed once workers read it: an update makes a new
/// version that shares every SA and key it does not change.
class sa_database {
public:
    /// Expands every key with `eng`. Fails as a whole: nothing is installed
    /// if any key is refused.
    /// AES-GMAC keys get subkey tables of `gmac_senders` slots, here and in
    /// every version made from this one (gmac_senders()).
    static result<sa_database> install(icv::engine& eng, std::span<const sa_config> sas,
                                       size_t gmac_senders = default_gmac_senders);

    security_association* find(uint8_t spp) const noexcept { return _by_spp[spp].get(); }
    size_t size() const noexcept;

    /// For building a new version: the SA at `spp` replaced (nullptr removes it).
    void put(uint8_t spp, std::shared_ptr<security_association> sa) noexcept { _by_spp[spp] = std::move(sa); }
    const std::shared_ptr<security_association>& shared(uint8_t spp) const noexcept { return _by_spp[spp]; }

    /// Slots of the subkey table of an AES-GMAC key added to this version;
    /// a new version built from it takes the same.
    size_t gmac_senders() const noexcept { return _gmac_senders; }
    void set_gmac_senders(size_t n) noexcept { _gmac_senders = n; }

private:
    std::array<std::shared_ptr<security_association>, 256> _by_spp;
    size_t _gmac_senders = default_gmac_senders;
};

} // namespace ptpsec
