// RFC 9162 Merkle trees (hsm/merkle.h) against the Certificate Transparency
// reference vectors (google/certificate-transparency,
// cpp/merkletree/merkle_tree_test.cc: kInputs, kSHA256Roots, kSHA256Paths),
// a straightforward recursive MTH, and the inclusion proof of every leaf of
// every tree of 1 to 64 leaves with its alterations; the burst hasher
// (merkle_root_hasher, intel-ipsec-mb) against the level-by-level tree
// (OpenSSL) for every tree of 1 to 300 leaves and some larger.

#include <hsm/merkle.h>

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::hsm {
namespace {

std::vector<uint8_t> from_hex(std::string_view hex) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        out.push_back(static_cast<uint8_t>(std::stoul(std::string(hex.substr(i, 2)), nullptr, 16)));
    }
    return out;
}

digest digest_from_hex(std::string_view hex) {
    const auto b = from_hex(hex);
    digest d{};
    EXPECT_EQ(b.size(), d.size());
    std::copy(b.begin(), b.end(), d.begin());
    return d;
}

// kInputs of the reference tree.
const std::vector<std::vector<uint8_t>> ct_inputs = {
    from_hex(""),
    from_hex("00"),
    from_hex("10"),
    from_hex("2021"),
    from_hex("3031"),
    from_hex("40414243"),
    from_hex("5051525354555657"),
    from_hex("606162636465666768696a6b6c6d6e6f"),
};

// kSHA256Roots: the root after each of the 8 leaves.
const char* const ct_roots[8] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

// kSHA256EmptyTreeHash.
constexpr const char* ct_empty_root = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// kSHA256Paths; the reference numbers leaves from 1, we from 0.
struct ct_path {
    size_t leaf; // 1-based
    size_t tree_size;
    std::vector<const char*> path;
};
const ct_path ct_paths[] = {
    {1, 1, {}},
    {1,
     8,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6,
     8,
     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {3, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {2,
     5,
     {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

std::vector<std::vector<uint8_t>> first(size_t n, const std::vector<std::vector<uint8_t>>& leaves) {
    return {leaves.begin(), leaves.begin() + static_cast<std::ptrdiff_t>(n)};
}

// RFC 9162 §2.1.1 written out literally, to check the level-by-level tree.
digest reference_mth(std::span<const std::vector<uint8_t>> d) {
    if (d.empty()) {
        return *sha256({});
    }
    if (d.size() == 1) {
        return *merkle_leaf_hash(d[0]);
    }
    size_t k = 1;
    while (k * 2 < d.size()) {
        k *= 2;
    }
    return *merkle_node_hash(reference_mth(d.first(k)), reference_mth(d.subspan(k)));
}

TEST(merkle, the_empty_tree_is_the_hash_of_the_empty_string) {
    auto t = merkle_tree::build({});
    ASSERT_TRUE(t);
    EXPECT_EQ(t->size(), 0U);
    EXPECT_EQ(t->root(), digest_from_hex(ct_empty_root));
    EXPECT_EQ(t->inclusion_path(0).message(), "leaf 0 is not in a tree of 0 leaves");
}

TEST(merkle, roots_match_the_certificate_transparency_vectors) {
    for (size_t n = 1; n <= 8; ++n) {
        const auto leaves = first(n, ct_inputs);
        auto root = merkle_tree_hash(leaves);
        ASSERT_TRUE(root);
        EXPECT_EQ(*root, digest_from_hex(ct_roots[n - 1])) << n << " leaves";
    }
}

TEST(merkle, inclusion_paths_match_the_certificate_transparency_vectors_and_verify) {
    for (const ct_path& v : ct_paths) {
        const auto leaves = first(v.tree_size, ct_inputs);
        auto t = merkle_tree::build(leaves);
        ASSERT_TRUE(t);
        auto path = t->inclusion_path(v.leaf - 1);
        ASSERT_TRUE(path) << path.message();
        std::vector<digest> expected;
        for (const char* h : v.path) {
            expected.push_back(digest_from_hex(h));
        }
        EXPECT_EQ(*path, expected) << "leaf " << v.leaf << " of " << v.tree_size;
        const digest root = digest_from_hex(ct_roots[v.tree_size - 1]);
        EXPECT_TRUE(
            verify_inclusion(*merkle_leaf_hash(ct_inputs[v.leaf - 1]), v.leaf - 1, v.tree_size, expected, root));
    }
    auto t = merkle_tree::build(ct_inputs);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->inclusion_path(8).message(), "leaf 8 is not in a tree of 8 leaves");
}

std::vector<std::vector<uint8_t>> numbered_leaves(size_t n) {
    std::vector<std::vector<uint8_t>> leaves;
    for (size_t i = 0; i < n; ++i) {
        leaves.push_back({static_cast<uint8_t>(i), static_cast<uint8_t>(i >> 8), 0x5A});
    }
    return leaves;
}

TEST(merkle, every_leaf_of_every_tree_up_to_64_proves_and_every_alteration_fails) {
    for (size_t n = 1; n <= 64; ++n) {
        const auto leaves = numbered_leaves(n);
        auto t = merkle_tree::build(leaves);
        ASSERT_TRUE(t);
        ASSERT_EQ(t->root(), reference_mth(leaves)) << n;
        const digest& root = t->root();
        for (size_t m = 0; m < n; ++m) {
            const digest leaf = *merkle_leaf_hash(leaves[m]);
            auto path = t->inclusion_path(m);
            ASSERT_TRUE(path);
            ASSERT_TRUE(verify_inclusion(leaf, m, n, *path, root)) << m << " of " << n;

            // Another leaf's hash, or the leaf hashed as a node, at m.
            if (n > 1) {
                EXPECT_FALSE(verify_inclusion(*merkle_leaf_hash(leaves[(m + 1) % n]), m, n, *path, root));
            }
            auto altered_leaf = leaves[m];
            altered_leaf[0] ^= 0x01;
            EXPECT_FALSE(verify_inclusion(*merkle_leaf_hash(altered_leaf), m, n, *path, root));
            // Every octet of every path hash.
            for (size_t j = 0; j < path->size(); ++j) {
                for (size_t b = 0; b < sha256_len; ++b) {
                    auto bad = *path;
                    bad[j][b] ^= 0x80;
                    EXPECT_FALSE(verify_inclusion(leaf, m, n, bad, root)) << m << " of " << n;
                }
            }
            // The root.
            digest bad_root = root;
            bad_root[31] ^= 0x01;
            EXPECT_FALSE(verify_inclusion(leaf, m, n, *path, bad_root));
            // The index (the alterations the reference verifier tests).
            for (const uint64_t other : {uint64_t{m} - 1, uint64_t{m} + 1, uint64_t{m} ^ 2}) {
                if (other != m) {
                    EXPECT_FALSE(verify_inclusion(leaf, other, n, *path, root)) << m << "->" << other << " of " << n;
                }
            }
            // The tree size, doubled and halved.
            EXPECT_FALSE(verify_inclusion(leaf, m, 2 * n, *path, root));
            EXPECT_FALSE(verify_inclusion(leaf, m, n / 2, *path, root));
            // A hash added at either end, one removed.
            auto longer = *path;
            longer.push_back(root);
            EXPECT_FALSE(verify_inclusion(leaf, m, n, longer, root));
            longer = *path;
            longer.insert(longer.begin(), leaf);
            EXPECT_FALSE(verify_inclusion(leaf, m, n, longer, root));
            if (!path->empty()) {
                auto shorter = *path;
                shorter.pop_back();
                EXPECT_FALSE(verify_inclusion(leaf, m, n, shorter, root));
            }
        }
    }
}

TEST(merkle, verification_says_which_rule_failed) {
    const auto leaves = numbered_leaves(5);
    auto t = merkle_tree::build(leaves);
    ASSERT_TRUE(t);
    const digest leaf = *merkle_leaf_hash(leaves[1]);
    auto path = *t->inclusion_path(1);
    EXPECT_EQ(verify_inclusion(leaf, 5, 5, path, t->root()).message(), "leaf index 5 is not below the tree size 5");
    EXPECT_EQ(verify_inclusion(leaf, 0, 0, {}, t->root()).message(), "leaf index 0 is not below the tree size 0");
    auto longer = path;
    longer.push_back(t->root());
    EXPECT_EQ(verify_inclusion(leaf, 1, 5, longer, t->root()).message(),
              "the inclusion path is longer than a tree of 5 leaves needs");
    auto shorter = path;
    shorter.pop_back();
    EXPECT_EQ(verify_inclusion(leaf, 1, 5, shorter, t->root()).message(),
              "the inclusion path is shorter than a tree of 5 leaves needs");
    path[0][0] ^= 1;
    EXPECT_EQ(verify_inclusion(leaf, 1, 5, path, t->root()).message(),
              "the inclusion path does not lead to the signed root");
}

TEST(merkle, leaf_and_node_hashes_are_domain_separated) {
    // A leaf whose octets are a node's input (left || right) must not hash
    // to that node (RFC 9162 §2.1.1, the reason for the prefixes).
    const digest a = *merkle_leaf_hash(from_hex("01"));
    const digest b = *merkle_leaf_hash(from_hex("02"));
    std::vector<uint8_t> concatenated(a.begin(), a.end());
    concatenated.insert(concatenated.end(), b.begin(), b.end());
    EXPECT_NE(*merkle_leaf_hash(concatenated), *merkle_node_hash(a, b));
    EXPECT_NE(*merkle_leaf_hash({}), *sha256({}));
}

TEST(merkle, the_burst_hasher_builds_the_same_roots_one_hasher_for_every_tree) {
    // One hasher for every tree, large before small, so that a buffer kept
    // from a larger tree must not leak into a smaller one.
    auto hasher = merkle_root_hasher::create();
    ASSERT_TRUE(hasher) << hasher.message();
    std::vector<size_t> sizes = {1000, 1};
    for (size_t n = 2; n <= 300; ++n) {
        sizes.push_back(n);
    }
    sizes.insert(sizes.end(), {4096, 4097, 3, 65, 64, 63});
    for (const size_t n : sizes) {
        const auto leaves = numbered_leaves(n);
        auto root = (*hasher)->root(leaves);
        ASSERT_TRUE(root) << root.message();
        auto t = merkle_tree::build(leaves);
        ASSERT_TRUE(t);
        ASSERT_EQ(*root, t->root()) << n << " leaves";
        if (n <= 64) {
            ASSERT_EQ(*root, reference_mth(leaves)) << n << " leaves";
        }
    }
    auto empty = (*hasher)->root({});
    ASSERT_TRUE(empty);
    EXPECT_EQ(*empty, digest_from_hex(ct_empty_root));
}

TEST(merkle, the_burst_hasher_takes_leaves_in_place_and_refuses_one_without_its_prefix) {
    auto hasher = merkle_root_hasher::create();
    ASSERT_TRUE(hasher) << hasher.message();
    // The CT inputs laid out as 0x00 || leaf, one after the other.
    std::vector<uint8_t> laid_out;
    std::vector<size_t> starts;
    for (const auto& leaf : ct_inputs) {
        starts.push_back(laid_out.size());
        laid_out.push_back(0x00);
        laid_out.insert(laid_out.end(), leaf.begin(), leaf.end());
    }
    std::vector<std::span<const uint8_t>> inputs;
    for (size_t i = 0; i < ct_inputs.size(); ++i) {
        inputs.emplace_back(laid_out.data() + starts[i], 1 + ct_inputs[i].size());
    }
    for (size_t n = 1; n <= inputs.size(); ++n) {
        auto root = (*hasher)->root_of_prefixed({inputs.data(), n});
        ASSERT_TRUE(root) << root.message();
        EXPECT_EQ(*root, digest_from_hex(ct_roots[n - 1])) << n << " leaves";
    }
    laid_out[starts[3]] = 0x01;
    EXPECT_EQ((*hasher)->root_of_prefixed(inputs).message(),
              "merkle: a leaf's hash input must start with the leaf prefix 0x00");
    inputs[3] = {};
    EXPECT_EQ((*hasher)->root_of_prefixed(inputs).message(),
              "merkle: a leaf's hash input must start with the leaf prefix 0x00");
}

} // namespace
} // namespace ptpsec::hsm
