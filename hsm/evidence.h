#pragma once

// The attestation evidence (BRIEF "Attestation"; docs/attestation.md is the
// normative description): what the batching signer produces from the data
// plane's event records, what the evidence log holds and what a Verifier
// checks. Four encodings, all deterministic CBOR (hsm/deterministic_cbor.h):
//
//   * event claims: one map per event; its encoding is a Merkle leaf.
//   * batch payload: one map per batch, signed as a COSE_Sign1 (the batch
//     token): signer, counter, time, Merkle root, event range, the previous
//     batch's root (a hash chain), missed events, the verifier nonce.
//   * event evidence: one event's claims, leaf index, tree size, inclusion
//     path and its batch token; checkable on its own with the signer's key.
//   * log record: a batch token and all its leaves; the evidence log is an
//     RFC 8742 CBOR sequence of log records.
//
// Every decoder is strict (exact key sets, types, sizes) and says what is
// wrong and where. Control-side code: allocates, returns result<>, never
// throws.

#include <dataplane/event_record.h>
#include <drivers/base/result.h>
#include <hsm/cose.h>
#include <hsm/deterministic_cbor.h>
#include <hsm/merkle.h>
#include <hsm/signer.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ptpsec::hsm {

/// Version of the claims, batch payload, event evidence and log record
/// encodings below.
inline constexpr uint64_t evidence_version = 1;

/// Per-event claims keys. 1-9 follow
/// draft-ramki-ptp-hardware-rooted-attestation-00; -1 to -16 are ptpsec's
/// own (negative so that they can never collide with the draft's numbering
/// and still encode in one octet); -10 to -16 are reserved.
namespace claim_key {
inline constexpr int64_t version = 1;
inline constexpr int64_t event_type = 2;
inline constexpr int64_t ptp_seq = 3;
inline constexpr int64_t phc_timestamp_ns = 4;
inline constexpr int64_t event_digest = 5;
inline constexpr int64_t nonce = 6;
inline constexpr int64_t monotonic_counter = 7;
inline constexpr int64_t signer_id = 8;
inline constexpr int64_t pcr_summary = 9;
inline constexpr int64_t domain_number = -1;
inline constexpr int64_t sdo_id = -2;
inline constexpr int64_t source_port_identity = -3;
inline constexpr int64_t port_id = -4;
inline constexpr int64_t correction_field = -5;
inline constexpr int64_t flags = -6;
inline constexpr int64_t event_index = -7;
inline constexpr int64_t flag_field = -8;
inline constexpr int64_t message_length = -9;
} // namespace claim_key

/// Batch payload keys.
namespace payload_key {
inline constexpr int64_t version = 1;
inline constexpr int64_t signer_id = 2;
inline constexpr int64_t backend = 3;
inline constexpr int64_t hardware_rooted = 4;
inline constexpr int64_t counter = 5;
inline constexpr int64_t batch_time_ns = 6;
inline constexpr int64_t merkle_root = 7;
inline constexpr int64_t event_count = 8;
inline constexpr int64_t first_event_index = 9;
inline constexpr int64_t last_event_index = 10;
inline constexpr int64_t previous_root = 11;
inline constexpr int64_t missed_events = 12;
inline constexpr int64_t nonce = 13;
} // namespace payload_key

/// Event evidence keys.
namespace evidence_key {
inline constexpr int64_t claims = 1;
inline constexpr int64_t leaf_index = 2;
inline constexpr int64_t tree_size = 3;
inline constexpr int64_t inclusion_path = 4;
inline constexpr int64_t token = 5;
} // namespace evidence_key

/// Log record keys and record types.
namespace record_key {
inline constexpr int64_t type = 1;
inline constexpr int64_t token = 2;
inline constexpr int64_t leaves = 3;
} // namespace record_key
inline constexpr uint64_t record_type_batch = 1;

/// The previous_root of a key's first batch: 32 zero octets (no SHA-256
/// output is known to be all zero, so it cannot be mistaken for a root).
inline constexpr digest first_batch_previous_root{};

/// Limits the decoders enforce.
inline constexpr size_t max_signer_id_len = 255;
inline constexpr size_t min_nonce_len = 8; // RFC 9711 §4.1: an EAT nonce is 8 to 64 octets
inline constexpr size_t max_nonce_len = 64;
inline constexpr size_t max_pcr_summary_len = 64;
inline constexpr size_t max_inclusion_path_len = 64; // a tree of at most 2^64 leaves

/// Claim 2: the PTP messageType (IEEE 1588-2019 Table 36, 0-15) plus 16
/// for a sent message: 0-15 received, 16-31 sent.
constexpr uint64_t event_type_of(event_direction d, uint8_t message_type) noexcept {
    return static_cast<uint64_t>(message_type) + 16U * static_cast<uint64_t>(d);
}

/// Ok for no nonce or one of min_nonce_len..max_nonce_len octets; the
/// error names `what`.
status check_nonce_length(const std::optional<std::vector<uint8_t>>& nonce, std::string_view what);

struct event_claims {
    uint64_t version = evidence_version;
    event_direction direction = event_direction::rx; ///< claim 2, with message_type
    uint8_t message_type = 0;
    uint16_t sequence_id = 0;                        ///< claim 3, PTP sequenceId
    uint64_t phc_timestamp_ns = 0;                   ///< claim 4
    digest event_digest{};                           ///< claim 5, event_record::digest
    std::optional<std::vector<uint8_t>> nonce;       ///< claim 6, the batch's verifier nonce, else null
    uint64_t monotonic_counter = 0;                  ///< claim 7, the batch's counter
    std::string signer_id;                           ///< claim 8
    std::optional<std::vector<uint8_t>> pcr_summary; ///< claim 9, else null
    uint8_t domain_number = 0;                       ///< -1, PTP domainNumber
    uint16_t sdo_id = 0;                             ///< -2, majorSdoId << 8 | minorSdoId
    std::array<uint8_t, 10> source_port_identity{};  ///< -3, wire order
    uint16_t port_id = 0;                            ///< -4, the DPDK port
    int64_t correction_field = 0;                    ///< -5, scaled ns as seen on the wire
    uint8_t flags = 0;                               ///< -6, event_record::flags (event_flag_*)
    uint64_t event_index = 0;                        ///< -7, 0-based over the signer's whole sequence
    uint16_t flag_field = 0;                         ///< -8, PTP flagField
    uint16_t message_length = 0;                     ///< -9, PTP messageLength (octets the digest covers)

    bool operator==(const event_claims&) const = default;
};

/// The claims for one record of a batch; fails for a record of another
/// version, an unknown direction or a messageType above 15.
result<event_claims> claims_from_record(const event_record& rec, uint64_t event_index, uint64_t counter,
                                        std::string_view signer_id, const std::optional<std::vector<uint8_t>>& nonce,
                                        const std::optional<std::vector<uint8_t>>& pcr_summary);

result<std::vector<uint8_t>> encode_claims(const event_claims& c);
result<event_claims> decode_claims(std::span<const uint8_t> encoded);
/// decode_claims() for claims in the form put_claims() writes them (the
/// one deterministic encoding, with a signer_id of printable ASCII), read
/// in place without a CBOR item tree; nullopt for any other input, which
/// decode_claims() then reads the general way. It accepts nothing that the
/// general way refuses, and gives the same claims (fuzz/fuzz_evidence.cpp
/// checks both).
std::optional<event_claims> decode_canonical_claims(std::span<const uint8_t> encoded);
/// decode_claims() through the CBOR item tree alone (the fuzz target's
/// reference for decode_canonical_claims()).
result<event_claims> decode_claims_generally(std::span<const uint8_t> encoded);

struct batch_payload {
    uint64_t version = evidence_version;
    std::string signer_id;
    backend_kind backend = backend_kind::software;
    /// False for the software backend, always (the decoder refuses "true").
    bool hardware_rooted = false;
    uint64_t counter = 0;       ///< the signer's monotonic counter for this batch
    uint64_t batch_time_ns = 0; ///< when the batch was closed, ns since the epoch of the host clock (CLOCK_REALTIME)
    digest merkle_root{};
    uint64_t event_count = 0; ///< leaves in the tree, >= 1
    uint64_t first_event_index = 0;
    uint64_t last_event_index = 0;
    digest previous_root = first_batch_previous_root;
    uint64_t missed_events = 0; ///< events the ring dropped since the previous batch
    std::optional<std::vector<uint8_t>> nonce;

    bool operator==(const batch_payload&) const = default;
};

result<std::vector<uint8_t>> encode_batch_payload(const batch_payload& p);
result<batch_payload> decode_batch_payload(std::span<const uint8_t> encoded);

/// A batch as the log holds it: the signed token and every leaf (encoded
/// claims) in tree order. `payload` is the token's payload decoded (filled
/// by sign_batch and the decoders; the encoder writes the token only).
struct batch_record {
    cose_sign1 token;
    batch_payload payload;
    std::vector<std::vector<uint8_t>> leaves;
};

cbor::item to_item(const batch_record& r);
result<std::vector<uint8_t>> encode_log_record(const batch_record& r);
/// Appends what comes before a log record's leaves (keys 1 and 2, the
/// encoded token, key 3 and the head of an array of `leaves` leaves).
void write_log_record_head(std::vector<uint8_t>& out, std::span<const uint8_t> token, size_t leaves);
/// Strict: the record map, the token's structure, the payload and every
/// leaf's claims must decode, and there must be event_count leaves.
result<batch_record> decode_log_record(const cbor::item& it);
result<batch_record> decode_log_record(std::span<const uint8_t> encoded);

struct event_evidence {
    std::vector<uint8_t> claims; ///< the leaf: encoded claims, as hashed
    uint64_t leaf_index = 0;
    uint64_t tree_size = 0;
    std::vector<digest> inclusion_path;
    cose_sign1 token;

    bool operator==(const event_evidence&) const = default;
};

result<std::vector<uint8_t>> encode_event_evidence(const event_evidence& e);
/// Strict: the map, the path, the token's structure, the claims and the
/// token's payload must decode; leaf_index must be below tree_size.
result<event_evidence> decode_event_evidence(std::span<const uint8_t> encoded);

struct verified_event {
    event_claims claims;
    batch_payload batch;
};

/// Everything one event's evidence can prove by itself, in this order: the
/// token's signature under `public_key_der` with `alg`; the payload; kid ==
/// signer_id; tree_size == event_count; the inclusion path to the signed
/// root; the claims agree with the payload (version, counter, signer_id,
/// nonce, event index within first..last). What needs state across
/// batches (counter increasing, the chain, revocation) is the Verifier's:
/// see check_chain().
result<verified_event> check_event_evidence(const event_evidence& e, signature_algorithm alg,
                                            std::span<const uint8_t> public_key_der);

/// A whole batch record: the signature, the root rebuilt from the leaves,
/// every leaf's claims against the payload, event indexes strictly
/// increasing from first_event_index to last_event_index.
result<batch_payload> check_batch_record(const batch_record& r, signature_algorithm alg,
                                         std::span<const uint8_t> public_key_der);

/// What check_batch_record() checks after the signature and the payload's
/// decoding, for a caller that has done those (`payload` decoded from
/// r.token.payload, whose signature verified): kid == signer_id, the root
/// rebuilt from the leaves, every leaf's claims against `payload`, the event
/// indexes. The leaves' claims, in order, when all of that holds.
result<std::vector<event_claims>> check_batch_leaves(const batch_record& r, const batch_payload& payload);

/// The evidence of leaf `leaf_index` of a batch record.
result<event_evidence> derive_event_evidence(const batch_record& r, size_t leaf_index);

/// The rules between consecutive batches of one signer. With `previous`
/// null, `current` must be the key's first batch: previous_root all zero,
/// and missed_events == last_event_index + 1 - event_count. Otherwise:
/// same signer_id, counter strictly greater, previous_root == the
/// previous merkle_root, first_event_index > the previous last, and
/// missed_events == last_event_index - previous last - event_count.
status check_chain(const batch_payload* previous, const batch_payload& current);

/// What still holds when batches are missing between `previous` (the last
/// accepted) and `current`, which does not name its root: the event indexes
/// go forward (first_event_index > the previous last), and the indexes
/// between the two batches hold at least current's missed events
/// (missed_events <= last_event_index - previous last - event_count); the
/// rest were the missing batches' events and misses.
status check_chain_after_gap(const batch_payload& previous, const batch_payload& current);

/// One event of a batch and its index in the signer's whole sequence
/// (counting events the ring dropped, so that drops show as gaps).
struct batch_event {
    event_record record;
    uint64_t event_index = 0;
};

struct batch_request {
    std::string signer_id;
    uint64_t batch_time_ns = 0;
    std::vector<batch_event> events; ///< in event_index order, strictly increasing
    digest previous_root = first_batch_previous_root;
    uint64_t missed_events = 0;
    std::optional<std::vector<uint8_t>> nonce;
    std::optional<std::vector<uint8_t>> pcr_summary;
};

/// Makes a batch: advances the signer's counter (next_counter), builds the
/// claims and the tree, signs the payload (sign, once). A failure after the
/// counter advanced leaves a gap in the counter, which the chain rules
/// allow (the counter is strictly increasing, not contiguous).
result<batch_record> sign_batch(signer& s, const batch_request& req);

/// Where reading the log stopped. `truncated` means the log ends inside a
/// record (a write that did not finish); otherwise the octets at `offset`
/// are corrupt.
struct log_problem {
    size_t offset = 0;
    bool truncated = false;
    std::string message;
};

struct log_entry {
    size_t offset = 0; ///< where the record starts in the log
    size_t length = 0; ///< its encoded length
    batch_record record;
};

struct log_contents {
    std::vector<log_entry> records; ///< every record before the problem, if any
    std::optional<log_problem> problem;
};

/// Walks an evidence log (RFC 8742 CBOR sequence of log records) and
/// decodes each record strictly; stops at the first record that does not
/// decode (a CBOR sequence cannot be resynchronised) and says where and why.
/// Never reads past `log`.
log_contents read_log(std::span<const uint8_t> log);

} // namespace ptpsec::hsm
