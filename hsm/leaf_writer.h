#pragma once

// One event's claims map (docs/attestation.md "Claims") written straight
// into memory the caller sized: the batching signer writes a leaf per event
// and the claims are most of what it does per event. encode_claims() and
// hsm::batch_builder both write through put_claims(), so the leaves a batch
// holds are the octets encode_claims() gives (the tests check this, and
// against cbor::encode of the same map).
//
// Keys in deterministic order (RFC 8949 §4.2.1 sorts by encoded key: 0x01..
// 0x09 before 0x20..0x28): 1-5 from the event, 6-9 the same for every leaf
// of a batch (nonce, monotonic_counter, signer_id, pcr_summary; encoded once
// per batch by encode_batch_claims), then -1..-9 from the event.

#include <dataplane/event_record.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace ptpsec::hsm {

/// What differs from one leaf of a batch to the next.
struct leaf_fields {
    uint64_t version = 0;
    uint64_t event_type = 0;
    uint16_t sequence_id = 0;
    uint64_t phc_timestamp_ns = 0;
    const uint8_t* event_digest = nullptr; ///< 32 octets
    uint8_t domain_number = 0;
    uint16_t sdo_id = 0;
    const uint8_t* source_port_identity = nullptr; ///< 10 octets
    uint16_t port_id = 0;
    int64_t correction_field = 0;
    uint8_t flags = 0;
    uint64_t event_index = 0;
    uint16_t flag_field = 0;
    uint16_t message_length = 0;
};

/// The fields of a checked event record (version, direction and
/// messageType valid): views into `r`, which must outlive them.
leaf_fields leaf_fields_of(const event_record& r, uint64_t event_index) noexcept;

/// Claims 6-9, encoded (keys included) for every leaf of a batch.
std::vector<uint8_t> encode_batch_claims(const std::optional<std::vector<uint8_t>>& nonce, uint64_t counter,
                                         std::string_view signer_id,
                                         const std::optional<std::vector<uint8_t>>& pcr_summary);

/// The most put_claims() writes besides the batch part: the map head, keys
/// 1-4 and -1..-9 with 9-octet values at most (the source port identity a
/// 12-octet byte string), claim 5 a 35-octet byte string.
inline constexpr size_t max_claims_len_besides_batch_part = 1 + 4 * 10 + 35 + 8 * 10 + 12;

/// Writes the claims map at `out`, which has room for
/// max_claims_len_besides_batch_part + batch_part.size() octets; returns the
/// octet after it.
uint8_t* put_claims(uint8_t* out, const leaf_fields& f, std::span<const uint8_t> batch_part) noexcept;

} // namespace ptpsec::hsm
