#pragma once

// Merkle trees as RFC 9162 §2.1 defines them (the Certificate Transparency
// tree, SHA-256): the batching signer builds one over a batch's event claims
// and signs its root; an event's evidence carries the inclusion path from its
// leaf to that root.
//
//   MTH({})        = SHA-256()
//   MTH({d0})      = SHA-256(0x00 || d0)                    leaf hash
//   MTH(D[n])      = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
//                    k the largest power of two smaller than n
//
// The distinct leaf and node prefixes (§2.1.1) keep a leaf from being passed
// off as an inner node (second-preimage attacks on the tree).

#include <drivers/base/result.h>
#include <drivers/icv/sha256_burst.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace ptpsec::hsm {

inline constexpr size_t sha256_len = 32;
using digest = std::array<uint8_t, sha256_len>;

/// SHA-256 (FIPS 180-4) through OpenSSL.
result<digest> sha256(std::span<const uint8_t> data);

/// RFC 9162 §2.1.1: SHA-256(0x00 || leaf).
result<digest> merkle_leaf_hash(std::span<const uint8_t> leaf);

/// RFC 9162 §2.1.1: SHA-256(0x01 || left || right).
result<digest> merkle_node_hash(const digest& left, const digest& right);

/// A tree over a list of leaves, kept as the hashes of every level so that
/// the root and each leaf's inclusion path are read off without rehashing.
class merkle_tree {
public:
    /// Hashes the leaves (each a byte string; here the encoded claims).
    static result<merkle_tree> build(std::span<const std::vector<uint8_t>> leaves);

    size_t size() const noexcept { return _levels.empty() ? 0 : _levels[0].size(); }

    /// MTH of the leaves; SHA-256 of the empty string for an empty tree.
    const digest& root() const noexcept { return _root; }

    /// RFC 9162 §2.1.3.1 PATH(m, D[n]): the sibling hashes from leaf m up
    /// to the root, nearest first. Fails when m is not below size().
    result<std::vector<digest>> inclusion_path(size_t index) const;

private:
    merkle_tree() = default;

    // _levels[0] are the leaf hashes; _levels[j + 1][i] hashes
    // _levels[j][2i] and _levels[j][2i + 1], and a last node without a right
    // sibling is carried up unchanged. This is the same tree as §2.1.1's
    // split at the largest power of two: the left subtree is always
    // complete, and only the rightmost node of a level can lack a sibling.
    std::vector<std::vector<digest>> _levels;
    digest _root{};
};

/// Merkle roots computed a burst of hashes at a time (icv::sha256_burst on
/// intel-ipsec-mb) instead of one OpenSSL call per leaf and node: the
/// batching signer hashes a leaf and, on average, one inner node per event.
/// The tree is the one merkle_tree builds (the tests check both against
/// each other and RFC 9162's definition); only the root is kept. Buffers
/// are kept between trees, so one tree per batch allocates nothing once the
/// batches stop growing. One instance per thread.
class merkle_root_hasher {
public:
    static result<std::unique_ptr<merkle_root_hasher>> create();

    /// MTH over the leaves whose hash inputs are given: `leaf_inputs[i]` is
    /// 0x00 || leaf i (RFC 9162 §2.1.1), laid out by the caller so that no
    /// leaf is copied.
    result<digest> root_of_prefixed(std::span<const std::span<const uint8_t>> leaf_inputs);

    /// MTH over `leaves` (each copied once behind its prefix).
    result<digest> root(std::span<const std::vector<uint8_t>> leaves);

    /// The root above `nodes`, the nodes of one level of a tree, in order:
    /// the roots of consecutive subtrees of 2^k leaves each (the last one may
    /// hold fewer), as hashed by root_of_prefixed. This is how a tree built
    /// in parts by several threads is finished: each part's root is the
    /// tree's node at level k.
    result<digest> root_of_nodes(std::span<const digest> nodes);

private:
    explicit merkle_root_hasher(std::unique_ptr<icv::sha256_burst> sha) noexcept : _sha(std::move(sha)) {}
    /// From `count` nodes laid out in `level` (one of _levels) up to the root.
    result<digest> hash_levels(std::vector<uint8_t>& level, size_t count);

    std::unique_ptr<icv::sha256_burst> _sha;
    std::vector<icv::sha256_input> _jobs;
    /// One level's nodes as the next level's hash inputs: pair k at octet
    /// 65 k is 0x01 || node 2k || node 2k+1. Two levels, used in turn.
    std::array<std::vector<uint8_t>, 2> _levels;
    std::vector<uint8_t> _prefixed;
    std::vector<std::span<const uint8_t>> _inputs;
};

/// The root of the tree over `leaves` (MTH, RFC 9162 §2.1.1), through a
/// merkle_root_hasher of the calling thread.
result<digest> merkle_tree_hash(std::span<const std::vector<uint8_t>> leaves);

/// RFC 9162 §2.1.3.2: ok when `path` proves that the leaf with hash
/// `leaf_hash` sits at `leaf_index` of the tree of `tree_size` leaves whose
/// root is `root`; otherwise says which check failed.
status verify_inclusion(const digest& leaf_hash, uint64_t leaf_index, uint64_t tree_size, std::span<const digest> path,
                        const digest& root);

} // namespace ptpsec::hsm
