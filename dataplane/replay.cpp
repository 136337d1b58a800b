#include <dataplane/replay.h>

#include <dataplane/ptp/message.h>
#include <drivers/base/bytes.h>

#include <algorithm>
#include <bit>
#include <cstring>

namespace ptpsec {

namespace {

constexpr std::string_view verdict_names[replay_verdict_count] = {"accepted", "replayed", "too_old"};

// Common header (1588-2019 13.3.1): octet 0 is majorSdoId (high nibble) and
// messageType (low nibble), then the offsets of domainNumber, minorSdoId and
// sequenceId.
constexpr size_t domain_number_offset = 4;
constexpr size_t minor_sdo_id_offset = 5;
constexpr size_t sequence_id_offset = 30;

// Delay_Resp, Pdelay_Resp and Pdelay_Resp_Follow_Up (13.8, 13.10, 13.11):
// a timestamp, then requestingPortIdentity.
constexpr size_t requesting_port_identity_offset = ptp::header_len + ptp::timestamp_len;

// Management (15.4.1): targetPortIdentity, startingBoundaryHops,
// boundaryHops, then actionField in the low nibble.
constexpr size_t target_port_identity_offset = ptp::header_len;
constexpr size_t action_field_offset = ptp::header_len + ptp::port_identity_len + 2;
constexpr uint8_t action_response = 2;
constexpr uint8_t action_acknowledge = 4;

// Layout of the stream key, four words:
//   0  sourcePortIdentity octets 0-7
//   1  sourcePortIdentity octets 8-9, then the peer's PortIdentity octets
//      0-5 (requestingPortIdentity or targetPortIdentity; zero for others)
//   2  the peer's octets 6-9, then kind (messageType, or a Management
//      response), domainNumber, majorSdoId, minorSdoId
//   3  SPP and key ID (key_tail)
// Each field has bits of its own, so distinct streams have distinct keys.

/// Set in the kind octet for a Management RESPONSE or ACKNOWLEDGE, so their
/// streams never meet the responder's own requests.
constexpr uint8_t kind_management_response = 0x10;

/// Windows open at this ESN plus the first sequenceId, so that looking 2^15
/// back never goes below zero.
constexpr uint64_t esn_origin = uint64_t{1} << 16;

/// The last key word: SPP in the low octet, key ID in the high half. Built
/// the same way for lookups and for retire_key().
uint64_t key_tail(uint8_t spp, uint32_t key_id) noexcept {
    return uint64_t{spp} | (uint64_t{key_id} << 32);
}

/// Word by word, inline: std::array's operator== calls memcmp.
bool same_key(const std::array<uint64_t, 4>& a, const std::array<uint64_t, 4>& b) noexcept {
    return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3])) == 0;
}

/// Each word multiplied by its own odd constant (four independent
/// multiplies, not a chain), summed, then splitmix64's finaliser spreads the
/// high bits over the low ones, which pick the buckets. The hash is not
/// keyed: only authenticated messages create entries, so only key holders
/// choose keys.
uint64_t hash_words(const std::array<uint64_t, 4>& words) noexcept {
    uint64_t h = (words[0] * 0x9E3779B97F4A7C15ULL) + (words[1] * 0xC2B2AE3D27D4EB4FULL) +
                 (words[2] * 0x165667B19E3779F9ULL) + (words[3] * 0xD6E8FEB86659FD93ULL);
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBULL;
    h ^= h >> 31;
    return h;
}

uint32_t tag_of(uint64_t hash) noexcept {
    const auto t = static_cast<uint32_t>(hash >> 32);
    return t != 0 ? t : 1;
}

/// RFC 4303 appendix A, in the form of "the candidate closest to the highest
/// accepted value": up to 2^15 - 1 ahead, else up to 2^15 behind.
uint64_t extend(uint64_t top, uint16_t sequence_id) noexcept {
    const auto diff = static_cast<int16_t>(static_cast<uint16_t>(sequence_id - static_cast<uint16_t>(top)));
    return top + static_cast<uint64_t>(int64_t{diff});
}

} // namespace

std::string_view replay_verdict_name(replay_verdict v) noexcept {
    const auto i = static_cast<size_t>(v);
    return i < replay_verdict_count ? verdict_names[i] : "invalid";
}

uint32_t replay_table::effective_window(uint32_t requested) noexcept {
    const uint32_t w = std::clamp(requested, min_window, max_window);
    // RFC 6479 section 2: one redundant block on top of the window, and the
    // bitmap a power of two blocks so that a block index is a mask.
    const uint32_t blocks = std::bit_ceil((w + block_bits - 1) / block_bits + 1);
    return (blocks - 1) * block_bits;
}

namespace {

size_t bucket_count(size_t capacity) noexcept {
    return std::bit_ceil(
        (std::clamp(capacity, replay_table::min_capacity, replay_table::max_capacity) + replay_table::ways - 1) /
        replay_table::ways);
}

} // namespace

replay_table::replay_table(const replay_config& cfg)
    : _window(effective_window(cfg.window)), _blocks(_window / block_bits + 1), _block_mask(_blocks - 1),
      _bucket_mask(bucket_count(cfg.capacity) - 1), _buckets(_bucket_mask + 1), _entries((_bucket_mask + 1) * ways),
      _bitmaps(_entries.size() * _blocks) {}

size_t replay_table::state_bytes(const replay_config& cfg) noexcept {
    const size_t buckets = bucket_count(cfg.capacity);
    const size_t blocks = effective_window(cfg.window) / block_bits + 1;
    return buckets * sizeof(bucket) + buckets * ways * (sizeof(entry) + blocks * sizeof(uint64_t));
}

replay_table::prepared replay_table::prepare(const uint8_t* msg, uint8_t spp, uint32_t key_id) noexcept {
    const uint8_t* peer = nullptr;
    auto kind = static_cast<uint8_t>(msg[0] & 0x0F);
    switch (static_cast<ptp::message_type>(kind)) {
    case ptp::message_type::delay_resp:
    case ptp::message_type::pdelay_resp:
    case ptp::message_type::pdelay_resp_follow_up:
        peer = msg + requesting_port_identity_offset;
        break;
    case ptp::message_type::management: {
        const auto action = static_cast<uint8_t>(msg[action_field_offset] & 0x0F);
        if (action == action_response || action == action_acknowledge) {
            peer = msg + target_port_identity_offset;
            kind |= kind_management_response;
        }
        break;
    }
    default:
        break;
    }
    // The key's words are put together in registers (see "Layout of the
    // stream key" above): octets stored one by one into a buffer and read
    // back as words cannot be forwarded from the stores, and those stalls
    // were most of what a lookup cost.
    const uint8_t* src = msg + ptp::source_port_identity_offset;
    uint64_t src_lo = 0;
    uint16_t src_hi = 0;
    std::memcpy(&src_lo, src, sizeof(src_lo));
    std::memcpy(&src_hi, src + sizeof(src_lo), sizeof(src_hi));
    uint64_t peer_lo = 0;
    uint16_t peer_hi = 0;
    if (peer != nullptr) {
        std::memcpy(&peer_lo, peer, sizeof(peer_lo));
        std::memcpy(&peer_hi, peer + sizeof(peer_lo), sizeof(peer_hi));
    }
    prepared p{};
    p.key[0] = src_lo;
    p.key[1] = uint64_t{src_hi} | (peer_lo << 16);
    p.key[2] = (peer_lo >> 48) | (uint64_t{peer_hi} << 16) | (uint64_t{kind} << 32) |
               (uint64_t{msg[domain_number_offset]} << 40) | (uint64_t{static_cast<uint8_t>(msg[0] >> 4)} << 48) |
               (uint64_t{msg[minor_sdo_id_offset]} << 56);
    p.key[3] = key_tail(spp, key_id);
    p.hash = hash_words(p.key);
    p.sequence_id = load_be16(msg + sequence_id_offset);
    return p;
}

void replay_table::buckets_of(uint64_t hash, size_t& first, size_t& second) const noexcept {
    first = static_cast<size_t>(hash) & _bucket_mask;
    second = static_cast<size_t>(hash >> 20) & _bucket_mask;
    if (second == first) {
        // Two distinct buckets always: the table has at least two.
        second = first ^ 1;
    }
}

replay_table::located replay_table::find(const prepared& p) const noexcept {
    const uint32_t tag = tag_of(p.hash);
    size_t b[2] = {};
    buckets_of(p.hash, b[0], b[1]);
    for (const size_t bi : b) {
        const bucket& bk = _buckets[bi];
        for (size_t w = 0; w < ways; ++w) {
            const size_t slot = bi * ways + w;
            if (bk.tag[w] == tag && same_key(_entries[slot].key, p.key)) {
                return {slot, true};
            }
        }
    }
    return {0, false};
}

size_t replay_table::open_slot(const prepared& p) noexcept {
    size_t b[2] = {};
    buckets_of(p.hash, b[0], b[1]);
    // The emptier bucket takes the stream (two choices keep buckets even);
    // with both full, the least recently accepted of the sixteen goes.
    size_t free_slot[2] = {};
    size_t free_count[2] = {};
    size_t victim = b[0] * ways;
    for (size_t i = 0; i < 2; ++i) {
        for (size_t w = 0; w < ways; ++w) {
            const size_t slot = b[i] * ways + w;
            if (_buckets[b[i]].tag[w] == 0) {
                if (free_count[i] == 0) {
                    free_slot[i] = slot;
                }
                ++free_count[i];
            } else if (_entries[slot].stamp < _entries[victim].stamp) {
                victim = slot;
            }
        }
    }
    size_t slot = victim;
    if (free_count[0] != 0 || free_count[1] != 0) {
        slot = free_count[0] >= free_count[1] ? free_slot[0] : free_slot[1];
        ++_live;
    } else {
        ++_counters.evicted;
    }
    _buckets[slot / ways].tag[slot % ways] = tag_of(p.hash);
    _entries[slot].key = p.key;
    return slot;
}

replay_verdict replay_table::judge(size_t slot, uint64_t esn) const noexcept {
    const entry& e = _entries[slot];
    if (esn > e.top) {
        return replay_verdict::accepted;
    }
    if (esn + _window < e.top) {
        return replay_verdict::too_old;
    }
    const uint64_t block = bitmap_of(slot)[(esn / block_bits) & _block_mask];
    return ((block >> (esn % block_bits)) & 1) != 0 ? replay_verdict::replayed : replay_verdict::accepted;
}

replay_verdict replay_table::check(const uint8_t* msg, uint8_t spp, uint32_t key_id) const noexcept {
    const prepared p = prepare(msg, spp, key_id);
    const located at = find(p);
    if (!at.found) {
        return replay_verdict::accepted;
    }
    return judge(at.slot, extend(_entries[at.slot].top, p.sequence_id));
}

replay_verdict replay_table::accept_prepared(const prepared& p) noexcept {
    const located at = find(p);
    replay_verdict v = replay_verdict::accepted;
    if (!at.found) {
        const size_t slot = open_slot(p);
        entry& e = _entries[slot];
        e.top = esn_origin + p.sequence_id;
        uint64_t* bitmap = bitmap_of(slot);
        std::fill_n(bitmap, _blocks, uint64_t{0});
        bitmap[(e.top / block_bits) & _block_mask] = uint64_t{1} << (e.top % block_bits);
        e.stamp = ++_clock;
        ++_counters.opened;
    } else {
        entry& e = _entries[at.slot];
        const uint64_t esn = extend(e.top, p.sequence_id);
        v = judge(at.slot, esn);
        if (v == replay_verdict::accepted) {
            uint64_t* bitmap = bitmap_of(at.slot);
            if (esn > e.top) {
                // RFC 6479: clear the blocks the window slides over, at most
                // the whole bitmap, instead of shifting bits.
                const uint64_t from = e.top / block_bits;
                const uint64_t steps = std::min<uint64_t>(esn / block_bits - from, _blocks);
                for (uint64_t i = 1; i <= steps; ++i) {
                    bitmap[(from + i) & _block_mask] = 0;
                }
                e.top = esn;
            } else {
                ++_counters.late;
            }
            bitmap[(esn / block_bits) & _block_mask] |= uint64_t{1} << (esn % block_bits);
            e.stamp = ++_clock;
        }
    }
    ++_counters.verdicts[static_cast<size_t>(v)];
    return v;
}

replay_verdict replay_table::accept(const uint8_t* msg, uint8_t spp, uint32_t key_id) noexcept {
    return accept_prepared(prepare(msg, spp, key_id));
}

uint16_t replay_table::accept_burst(const replay_input* in, uint16_t n, replay_verdict* out) noexcept {
    // Keys and hashes for a part of the burst first, with their buckets
    // prefetched, so the lookups that follow do not wait on memory one by one.
    constexpr uint16_t part = 16;
    std::array<prepared, part> ps{};
    uint16_t accepted = 0;
    for (uint16_t base = 0; base < n; base = static_cast<uint16_t>(base + part)) {
        const auto count = static_cast<uint16_t>(std::min<int>(part, n - base));
        for (uint16_t i = 0; i < count; ++i) {
            const replay_input& r = in[base + i];
            ps[i] = prepare(r.msg, r.spp, r.key_id);
            size_t first = 0;
            size_t second = 0;
            buckets_of(ps[i].hash, first, second);
            __builtin_prefetch(&_buckets[first]);
            __builtin_prefetch(&_buckets[second]);
        }
        for (uint16_t i = 0; i < count; ++i) {
            const replay_verdict v = accept_prepared(ps[i]);
            out[base + i] = v;
            accepted = static_cast<uint16_t>(accepted + (v == replay_verdict::accepted));
        }
    }
    return accepted;
}

size_t replay_table::retire_key(uint8_t spp, uint32_t key_id) noexcept {
    const uint64_t tail = key_tail(spp, key_id);
    size_t dropped = 0;
    for (size_t slot = 0; slot < _entries.size(); ++slot) {
        uint32_t& tag = _buckets[slot / ways].tag[slot % ways];
        if (tag != 0 && _entries[slot].key[key_words - 1] == tail) {
            tag = 0;
            ++dropped;
        }
    }
    _live -= dropped;
    _counters.retired += dropped;
    return dropped;
}

} // namespace ptpsec
