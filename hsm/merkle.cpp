#include <hsm/merkle.h>

#include <fmt/format.h>
#include <openssl/evp.h>

#include <cstring>
#include <memory>

namespace ptpsec::hsm {

namespace {

struct md_ctx_free {
    void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};

/// SHA-256 fetched from the provider once: OpenSSL 3 looks an algorithm up
/// on every EVP_sha256() init otherwise, which costs more than hashing a
/// 150-octet leaf. EVP_MD objects may be shared between threads.
const EVP_MD* sha256_md() {
    static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md;
}

/// One context for many hashes (a tree of a million leaves).
class hasher {
public:
    hasher() : _ctx(EVP_MD_CTX_new()) {}
    /// SHA-256 over the concatenation of `parts`.
    result<digest> hash(std::initializer_list<std::span<const uint8_t>> parts) {
        if (!_ctx || sha256_md() == nullptr || EVP_DigestInit_ex2(_ctx.get(), sha256_md(), nullptr) != 1) {
            return error{"OpenSSL could not set up SHA-256"};
        }
        for (const auto& p : parts) {
            if (EVP_DigestUpdate(_ctx.get(), p.data(), p.size()) != 1) {
                return error{"OpenSSL SHA-256 failed"};
            }
        }
        digest d{};
        unsigned int len = 0;
        if (EVP_DigestFinal_ex(_ctx.get(), d.data(), &len) != 1 || len != d.size()) {
            return error{"OpenSSL SHA-256 failed"};
        }
        return d;
    }

private:
    std::unique_ptr<EVP_MD_CTX, md_ctx_free> _ctx;
};

// SHA-256 over the concatenation of `parts`.
result<digest> sha256_parts(std::initializer_list<std::span<const uint8_t>> parts) {
    hasher h;
    return h.hash(parts);
}

constexpr uint8_t leaf_prefix[1] = {0x00}; // RFC 9162 §2.1.1
constexpr uint8_t node_prefix[1] = {0x01};

} // namespace

result<digest> sha256(std::span<const uint8_t> data) {
    return sha256_parts({data});
}

result<digest> merkle_leaf_hash(std::span<const uint8_t> leaf) {
    return sha256_parts({leaf_prefix, leaf});
}

result<digest> merkle_node_hash(const digest& left, const digest& right) {
    return sha256_parts({node_prefix, left, right});
}

result<merkle_tree> merkle_tree::build(std::span<const std::vector<uint8_t>> leaves) {
    merkle_tree t;
    if (leaves.empty()) {
        PTPSEC_TRY(empty, sha256({}));
        t._root = *empty;
        return t;
    }
    hasher sha;
    std::vector<digest> level;
    level.reserve(leaves.size());
    for (const auto& leaf : leaves) {
        PTPSEC_TRY(h, sha.hash({leaf_prefix, leaf}));
        level.push_back(*h);
    }
    t._levels.push_back(std::move(level));
    while (t._levels.back().size() > 1) {
        const std::vector<digest>& below = t._levels.back();
        std::vector<digest> above;
        above.reserve((below.size() + 1) / 2);
        for (size_t i = 0; i + 1 < below.size(); i += 2) {
            PTPSEC_TRY(h, sha.hash({node_prefix, below[i], below[i + 1]}));
            above.push_back(*h);
        }
        if (below.size() % 2 == 1) {
            above.push_back(below.back());
        }
        t._levels.push_back(std::move(above));
    }
    t._root = t._levels.back()[0];
    return t;
}

result<std::vector<digest>> merkle_tree::inclusion_path(size_t index) const {
    if (index >= size()) {
        return error{fmt::format("leaf {} is not in a tree of {} leaves", index, size())};
    }
    std::vector<digest> path;
    size_t i = index;
    for (size_t level = 0; level + 1 < _levels.size(); ++level) {
        const size_t sibling = i ^ 1U;
        // A node without a sibling is carried up and adds nothing to PATH.
        if (sibling < _levels[level].size()) {
            path.push_back(_levels[level][sibling]);
        }
        i >>= 1;
    }
    return path;
}

namespace {

constexpr size_t node_input_len = 1 + 2 * sha256_len; // 0x01 || left || right

/// Where node i of a level lies in the pair layout of merkle_root_hasher.
constexpr size_t node_at(size_t i) noexcept {
    return (i / 2) * node_input_len + 1 + (i % 2) * sha256_len;
}

/// Sizes `level` for `nodes` nodes and writes the node prefix of each pair.
void lay_out_level(std::vector<uint8_t>& level, size_t nodes) {
    const size_t pairs = (nodes + 1) / 2;
    if (level.size() < pairs * node_input_len) {
        level.resize(pairs * node_input_len);
    }
    for (size_t k = 0; k < pairs; ++k) {
        level[k * node_input_len] = node_prefix[0];
    }
}

} // namespace

result<std::unique_ptr<merkle_root_hasher>> merkle_root_hasher::create() {
    PTPSEC_TRY(sha, icv::sha256_burst::create());
    return std::unique_ptr<merkle_root_hasher>(new merkle_root_hasher(std::move(*sha)));
}

result<digest> merkle_root_hasher::root_of_prefixed(std::span<const std::span<const uint8_t>> leaf_inputs) {
    const size_t count = leaf_inputs.size();
    if (count == 0) {
        return sha256({});
    }
    for (const auto& in : leaf_inputs) {
        if (in.empty() || in[0] != leaf_prefix[0]) {
            return error{"merkle: a leaf's hash input must start with the leaf prefix 0x00"};
        }
    }
    if (_jobs.size() < count) {
        _jobs.resize(count);
    }
    // The leaf hashes land straight in the pair layout of the level above.
    std::vector<uint8_t>& level = _levels[0];
    lay_out_level(level, count);
    for (size_t i = 0; i < count; ++i) {
        _jobs[i] = icv::sha256_input{leaf_inputs[i].data(), leaf_inputs[i].size(), level.data() + node_at(i)};
    }
    if (!_sha->hash({_jobs.data(), count})) {
        return error{"merkle: intel-ipsec-mb failed to hash the leaves"};
    }
    return hash_levels(level, count);
}

result<digest> merkle_root_hasher::root_of_nodes(std::span<const digest> nodes) {
    if (nodes.empty()) {
        return error{"merkle: no nodes to finish a tree from"};
    }
    std::vector<uint8_t>& below = _levels[0];
    lay_out_level(below, nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i) {
        std::memcpy(below.data() + node_at(i), nodes[i].data(), sha256_len);
    }
    return hash_levels(below, nodes.size());
}

result<digest> merkle_root_hasher::hash_levels(std::vector<uint8_t>& level, size_t count) {
    std::vector<uint8_t>* below = &level;
    if (_jobs.size() < count / 2) {
        _jobs.resize(count / 2);
    }
    // Each level: pair k of `below` hashes into node k of `above`; a last
    // node without a sibling is carried up unchanged (merkle_tree's rule).
    while (count > 1) {
        std::vector<uint8_t>* above = below == &_levels[0] ? &_levels[1] : &_levels[0];
        const size_t pairs = count / 2;
        const size_t next = (count + 1) / 2;
        lay_out_level(*above, next);
        for (size_t k = 0; k < pairs; ++k) {
            _jobs[k] =
                icv::sha256_input{below->data() + k * node_input_len, node_input_len, above->data() + node_at(k)};
        }
        if (count % 2 == 1) {
            std::memcpy(above->data() + node_at(pairs), below->data() + node_at(count - 1), sha256_len);
        }
        if (!_sha->hash({_jobs.data(), pairs})) {
            return error{"merkle: intel-ipsec-mb failed to hash a level of the tree"};
        }
        below = above;
        count = next;
    }
    digest root{};
    std::memcpy(root.data(), below->data() + node_at(0), sha256_len);
    return root;
}

result<digest> merkle_root_hasher::root(std::span<const std::vector<uint8_t>> leaves) {
    size_t total = 0;
    for (const auto& leaf : leaves) {
        total += 1 + leaf.size();
    }
    _prefixed.resize(total);
    _inputs.clear();
    _inputs.reserve(leaves.size());
    size_t at = 0;
    for (const auto& leaf : leaves) {
        _prefixed[at] = leaf_prefix[0];
        if (!leaf.empty()) {
            std::memcpy(_prefixed.data() + at + 1, leaf.data(), leaf.size());
        }
        _inputs.emplace_back(_prefixed.data() + at, 1 + leaf.size());
        at += 1 + leaf.size();
    }
    return root_of_prefixed(_inputs);
}

result<digest> merkle_tree_hash(std::span<const std::vector<uint8_t>> leaves) {
    thread_local std::unique_ptr<merkle_root_hasher> hasher;
    if (!hasher) {
        PTPSEC_TRY(made, merkle_root_hasher::create());
        hasher = std::move(*made);
    }
    return hasher->root(leaves);
}

status verify_inclusion(const digest& leaf_hash, uint64_t leaf_index, uint64_t tree_size, std::span<const digest> path,
                        const digest& root) {
    // RFC 9162 §2.1.3.2, step by step.
    if (leaf_index >= tree_size) {
        return error{fmt::format("leaf index {} is not below the tree size {}", leaf_index, tree_size)};
    }
    uint64_t fn = leaf_index;
    uint64_t sn = tree_size - 1;
    digest r = leaf_hash;
    for (const digest& p : path) {
        if (sn == 0) {
            return error{fmt::format("the inclusion path is longer than a tree of {} leaves needs", tree_size)};
        }
        if ((fn & 1U) != 0 || fn == sn) {
            PTPSEC_TRY(h, merkle_node_hash(p, r));
            r = *h;
            if ((fn & 1U) == 0) {
                while ((fn & 1U) == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            PTPSEC_TRY(h, merkle_node_hash(r, p));
            r = *h;
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0) {
        return error{fmt::format("the inclusion path is shorter than a tree of {} leaves needs", tree_size)};
    }
    if (r != root) {
        return error{"the inclusion path does not lead to the signed root"};
    }
    return ok_status();
}

} // namespace ptpsec::hsm
