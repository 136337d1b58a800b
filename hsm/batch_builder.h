#pragma once

// Signs batches the way sign_batch() defines them (evidence.h), writing the
// log record straight into buffers kept from one batch to the next: the
// leaves, each a CBOR byte string of encoded claims, lie one after the other
// exactly as the record's leaves array holds them, and the log is written
// from there (evidence_log::append of the record's parts), so a leaf is
// written once and never copied. The hash input of leaf i, 0x00 || leaf
// (RFC 9162 §2.1.1), is the same memory with the last octet of the byte
// string's head set to 0x00 while the tree is hashed and restored after;
// the leaves and nodes are hashed in bursts (merkle_root_hasher).
//
// Once the batches stop growing, sign() allocates only what the signer and
// the COSE encoding allocate per batch, nothing per event. One instance per
// thread (the batcher's signer thread).

#include <drivers/base/result.h>
#include <hsm/evidence.h>
#include <hsm/merkle.h>
#include <hsm/signer.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace ptpsec::hsm {

class batch_builder {
public:
    static result<std::unique_ptr<batch_builder>> create();

    /// sign_batch()'s contract: checks the request, advances the signer's
    /// counter, writes the leaves, hashes the tree, signs the payload. On
    /// success the batch stays here until the next sign(); on failure
    /// nothing is held.
    status sign(signer& s, const batch_request& req);

    /// True between a successful sign() and the next one.
    bool holds_batch() const noexcept { return _holds; }
    const batch_payload& payload() const noexcept { return _payload; }
    const cose_sign1& token() const noexcept { return _token; }

    /// The log record (the octets of encode_log_record()) in the order to
    /// write them: the record's head with the token and the leaves array's
    /// head, then the leaves.
    std::array<std::span<const uint8_t>, 2> log_record() const noexcept;

    size_t leaf_count() const noexcept { return _leaves.size(); }
    /// Leaf i's encoded claims.
    std::span<const uint8_t> leaf(size_t i) const noexcept;

    /// The batch as a batch_record (copies every leaf).
    batch_record to_record() const;

private:
    explicit batch_builder(std::unique_ptr<merkle_root_hasher> tree) noexcept : _tree(std::move(tree)) {}

    struct leaf_at {
        size_t head;   ///< where the byte string's head starts in _items
        size_t claims; ///< where the claims start (after the head)
        size_t length; ///< the claims' length
    };

    std::unique_ptr<merkle_root_hasher> _tree;
    /// The leaves array's elements, one after the other.
    std::vector<uint8_t> _items;
    size_t _items_len = 0;
    std::vector<leaf_at> _leaves;
    std::vector<std::span<const uint8_t>> _hash_inputs;
    /// The record's head, its token and the leaves array's head.
    std::vector<uint8_t> _record_head;
    batch_payload _payload;
    cose_sign1 _token;
    bool _holds = false;
};

} // namespace ptpsec::hsm
