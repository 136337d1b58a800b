// Differential test: the intel-ipsec-mb engine (the fast path) against the
// OpenSSL engine (the reference) on random keys, nonces and messages, fed in
// random bursts that mix algorithms the way the data plane does.
//
// Reproduce a failure with the seed it prints: PTPSEC_TEST_SEED=<seed>.

#include <drivers/icv/engine.h>
#include <drivers/icv/ipsecmb_engine.h>
#include <drivers/icv/openssl_engine.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

namespace ptpsec::icv {
namespace {

constexpr uint64_t default_seed = 0x7074707365632d31ULL; // "ptpsec-1"

uint64_t test_seed() {
    if (const char* s = std::getenv("PTPSEC_TEST_SEED"); s != nullptr && *s != '\0') {
        return std::strtoull(s, nullptr, 0);
    }
    return default_seed;
}

/// A fresh key every this many messages of an algorithm.
constexpr size_t messages_per_key = 100;
/// PTP messages with an AUTHENTICATION TLV: a 34-octet header plus a body
/// (IEEE 1588-2019 §13.3); 300 covers every message type with its TLVs.
constexpr uint32_t min_ptp_len = 34;
constexpr uint32_t max_ptp_len = 300;
constexpr uint8_t fast_fill = 0x11;
constexpr uint8_t reference_fill = 0xee;

struct sample {
    algorithm alg;
    uint32_t key;
    uint32_t offset;
    uint32_t len;
    uint32_t nonce_offset;
};

struct crosscheck_stats {
    size_t messages = 0;
    size_t bursts = 0;
    size_t mixed_bursts = 0;
    size_t single_algorithm_bursts = 0;
    size_t mismatches = 0;
};

/// Generates every sample, computes each through both engines in random
/// bursts, and reports mismatches (the first few in detail).
class crosscheck {
public:
    crosscheck(engine& fast, engine& reference, uint64_t seed) : _fast(fast), _reference(reference), _rng(seed) {}

    /// Adds `per_length` random messages of every algorithm for each length.
    void add_messages(const std::vector<uint32_t>& lengths, size_t per_length) {
        for (const auto& ai : all_algorithms()) {
            std::vector<uint32_t> order;
            for (const uint32_t len : lengths) {
                order.insert(order.end(), per_length, len);
            }
            std::shuffle(order.begin(), order.end(), _rng);
            auto& keys = _keys[static_cast<size_t>(ai.alg)];
            for (size_t i = 0; i < order.size(); ++i) {
                if (i % messages_per_key == 0) {
                    add_key(ai);
                    if (testing::Test::HasFatalFailure()) {
                        return;
                    }
                }
                sample s{ai.alg, static_cast<uint32_t>(keys.size() - 1), 0, order[i], 0};
                // Random misalignment: frames sit at any offset in an mbuf.
                s.offset = static_cast<uint32_t>(_data.size() + uniform(0, 15));
                s.nonce_offset = s.offset + s.len;
                _data.resize(s.nonce_offset + gmac_nonce_len);
                std::generate(_data.begin() + s.offset, _data.end(), [this] { return random_octet(); });
                _samples.push_back(s);
            }
        }
    }

    crosscheck_stats run() {
        crosscheck_stats st;
        st.messages = _samples.size();
        _fast_icv.assign(_samples.size(), {});
        _reference_icv.assign(_samples.size(), {});
        for (auto& icv : _fast_icv) {
            icv.fill(fast_fill);
        }
        for (auto& icv : _reference_icv) {
            icv.fill(reference_fill);
        }
        const std::vector<size_t> order = interleaved_order();
        compute_in_bursts(_fast, order, _fast_icv, &st);
        compute_in_bursts(_reference, order, _reference_icv, nullptr);
        compare(&st);
        return st;
    }

private:
    size_t uniform(size_t lo, size_t hi) { return std::uniform_int_distribution<size_t>(lo, hi)(_rng); }
    uint8_t random_octet() { return static_cast<uint8_t>(_rng()); }

    void add_key(const algorithm_info& ai) {
        // HMAC keys take any length; cover short, block-sized and hashed
        // (longer than the 64-octet block, FIPS 198-1 §4) keys.
        const size_t len = ai.key_len != 0 ? ai.key_len : uniform(1, max_key_len);
        std::vector<uint8_t> key(len);
        std::generate(key.begin(), key.end(), [this] { return random_octet(); });
        auto fast = _fast.prepare(ai.alg, key);
        auto reference = _reference.prepare(ai.alg, key);
        ASSERT_TRUE(fast) << fast.message();
        ASSERT_TRUE(reference) << reference.message();
        _keys[static_cast<size_t>(ai.alg)].push_back({std::move(fast).value(), std::move(reference).value()});
    }

    /// Runs of one algorithm (1 to 80 messages) in random order: cut into
    /// bursts of 1 to 64, this gives both single-algorithm and mixed bursts.
    std::vector<size_t> interleaved_order() {
        std::array<std::vector<size_t>, algorithm_count> by_alg;
        for (size_t i = 0; i < _samples.size(); ++i) {
            by_alg[static_cast<size_t>(_samples[i].alg)].push_back(i);
        }
        std::array<size_t, algorithm_count> next{};
        std::vector<size_t> order;
        order.reserve(_samples.size());
        while (order.size() < _samples.size()) {
            const size_t a = uniform(0, algorithm_count - 1);
            const size_t run = std::min(uniform(1, 80), by_alg[a].size() - next[a]);
            order.insert(order.end(), by_alg[a].begin() + static_cast<ptrdiff_t>(next[a]),
                         by_alg[a].begin() + static_cast<ptrdiff_t>(next[a] + run));
            next[a] += run;
        }
        return order;
    }

    void compute_in_bursts(engine& eng, const std::vector<size_t>& order,
                           std::vector<std::array<uint8_t, max_icv_len>>& out, crosscheck_stats* st) {
        const bool is_fast = &eng == &_fast;
        std::vector<mac_request> reqs;
        for (size_t base = 0; base < order.size();) {
            const size_t n = std::min(uniform(1, 64), order.size() - base);
            reqs.clear();
            for (size_t j = base; j < base + n; ++j) {
                const sample& s = _samples[order[j]];
                const auto& k = _keys[static_cast<size_t>(s.alg)][s.key];
                reqs.push_back({is_fast ? k.fast.get() : k.reference.get(), _data.data() + s.offset, s.len,
                                _data.data() + s.nonce_offset, out[order[j]].data()});
            }
            // Carry on after a short count: the comparison then says which
            // messages were left out.
            EXPECT_EQ(eng.compute_burst(reqs.data(), static_cast<uint16_t>(n)), n)
                << eng.name() << ": burst of " << n << " at position " << base;
            if (st != nullptr) {
                ++st->bursts;
                const bool mixed = std::any_of(
                    reqs.begin(), reqs.end(), [&](const mac_request& r) { return r.key->alg() != reqs[0].key->alg(); });
                ++(mixed ? st->mixed_bursts : st->single_algorithm_bursts);
            }
            base += n;
        }
    }

    void compare(crosscheck_stats* st) {
        constexpr size_t reported = 10;
        for (size_t i = 0; i < _samples.size(); ++i) {
            const sample& s = _samples[i];
            const size_t icv_len = icv_length(s.alg);
            const bool icv_equal = std::memcmp(_fast_icv[i].data(), _reference_icv[i].data(), icv_len) == 0;
            // Neither engine may write past the ICV.
            const bool tails_intact =
                std::all_of(_fast_icv[i].begin() + static_cast<ptrdiff_t>(icv_len), _fast_icv[i].end(),
                            [](uint8_t b) { return b == fast_fill; }) &&
                std::all_of(_reference_icv[i].begin() + static_cast<ptrdiff_t>(icv_len), _reference_icv[i].end(),
                            [](uint8_t b) { return b == reference_fill; });
            if (icv_equal && tails_intact) {
                continue;
            }
            if (++st->mismatches <= reported) {
                ADD_FAILURE() << info(s.alg).name << " message " << i << " of " << s.len << " octets (key " << s.key
                              << "): " << (icv_equal ? "wrote past the ICV" : "ICVs differ") << " between "
                              << _fast.name() << " and " << _reference.name();
            }
        }
    }

    struct key_pair {
        key_handle fast;
        key_handle reference;
    };

    engine& _fast;
    engine& _reference;
    std::mt19937_64 _rng;
    std::array<std::vector<key_pair>, algorithm_count> _keys;
    std::vector<sample> _samples;
    std::vector<uint8_t> _data;
    std::vector<std::array<uint8_t, max_icv_len>> _fast_icv;
    std::vector<std::array<uint8_t, max_icv_len>> _reference_icv;
};

std::vector<uint32_t> ptp_lengths() {
    std::vector<uint32_t> v;
    for (uint32_t len = min_ptp_len; len <= max_ptp_len; ++len) {
        v.push_back(len);
    }
    return v;
}

/// The default plan is what the data plane runs, so it gets the full sweep:
/// at least 40 messages per length, over 10,000 per algorithm. The uniform
/// plans put every algorithm on one manager (the multi-buffer AVX2/AVX-512
/// HMAC lanes, VAES GMAC...) and get a lighter sweep of the same lengths.
struct plan_param {
    std::string label;
    bool default_plan;
    imb_arch arch;
    size_t per_length;
    /// Mixed into the seed so each plan meets different messages.
    uint64_t seed_offset;
};

// GoogleTest finds its value printer by this exact name.
void PrintTo(const plan_param& p, std::ostream* os) { // NOLINT(readability-identifier-naming)
    *os << p.label;
}

class icv_crosscheck : public testing::TestWithParam<plan_param> {
protected:
    void SetUp() override {
        const plan_param& p = GetParam();
        if (p.default_plan) {
            _fast = std::make_unique<ipsecmb_engine>();
            return;
        }
        if (!arch_supported(p.arch)) {
            GTEST_SKIP() << "this CPU cannot run the intel-ipsec-mb " << arch_name(p.arch) << " manager";
        }
        _fast = std::make_unique<ipsecmb_engine>(uniform_arch_plan(p.arch));
    }

    uint64_t seed() const { return test_seed() ^ GetParam().seed_offset; }
    std::string seed_trace() const { return "PTPSEC_TEST_SEED=" + std::to_string(test_seed()); }

    std::unique_ptr<engine> _fast;
    openssl_engine _reference;
};

TEST_P(icv_crosscheck, ptp_lengths_in_random_mixed_bursts) {
    SCOPED_TRACE(seed_trace());
    crosscheck c(*_fast, _reference, seed());
    const auto lengths = ptp_lengths();
    c.add_messages(lengths, GetParam().per_length);
    ASSERT_FALSE(HasFatalFailure());
    const crosscheck_stats st = c.run();
    EXPECT_EQ(st.mismatches, 0U) << "of " << st.messages << " messages";
    EXPECT_EQ(st.messages, lengths.size() * GetParam().per_length * algorithm_count);
    // The interleaving must really produce both kinds of burst.
    EXPECT_GT(st.mixed_bursts, 0U);
    EXPECT_GT(st.single_algorithm_bursts, 0U);
}

TEST_P(icv_crosscheck, short_and_long_messages) {
    // Lengths outside the PTP range: empty (CMAC's padded-only block, GMAC
    // with no data), every length up to two AES blocks and a SHA-256 block,
    // and block-boundary and jumbo lengths.
    SCOPED_TRACE(seed_trace());
    std::vector<uint32_t> lengths;
    for (uint32_t len = 0; len < min_ptp_len; ++len) {
        lengths.push_back(len);
    }
    for (const uint32_t len : {55U, 56U, 63U, 64U, 65U, 119U, 120U, 511U, 512U, 513U, 1500U, 4096U, 9000U}) {
        lengths.push_back(len);
    }
    crosscheck c(*_fast, _reference, seed() + 1);
    c.add_messages(lengths, 4);
    ASSERT_FALSE(HasFatalFailure());
    const crosscheck_stats st = c.run();
    EXPECT_EQ(st.mismatches, 0U) << "of " << st.messages << " messages";
}

std::vector<plan_param> plan_params() {
    std::vector<plan_param> v{{"default_plan", true, imb_arch::sse, 40, 0}};
    uint64_t offset = 0;
    for (auto a : {imb_arch::sse, imb_arch::avx, imb_arch::avx2, imb_arch::avx512}) {
        v.push_back({"uniform_" + std::string(arch_name(a)), false, a, 5, (++offset) << 32});
    }
    return v;
}

INSTANTIATE_TEST_SUITE_P(plans, icv_crosscheck, testing::ValuesIn(plan_params()),
                         [](const testing::TestParamInfo<plan_param>& p) { return p.param.label; });

} // namespace
} // namespace ptpsec::icv
