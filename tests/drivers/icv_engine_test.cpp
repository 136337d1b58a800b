// The engine contract of drivers/icv/engine.h, on both engines: key length
// checks with messages that name the algorithm, rekey() without side effects
// on failure, and compute_burst() computing every valid request, leaving the
// ICV of an invalid one untouched and counting only what it computed.

#include <drivers/icv/algorithm.h>
#include <drivers/icv/engine.h>
#include <drivers/icv/ipsecmb_engine.h>
#include <drivers/icv/openssl_engine.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ptpsec::icv {
namespace {

using bytes = std::vector<uint8_t>;
using icv_buffer = std::array<uint8_t, max_icv_len>;

constexpr uint8_t untouched = 0xa5;

icv_buffer fresh_icv() {
    icv_buffer b;
    b.fill(untouched);
    return b;
}

bool is_untouched(const icv_buffer& b) {
    return std::all_of(b.begin(), b.end(), [](uint8_t x) { return x == untouched; });
}

/// A valid key for an algorithm, from a seed: `fill` in every octet.
bytes key_for(algorithm alg, uint8_t fill) {
    const size_t len = info(alg).key_len != 0 ? info(alg).key_len : 32;
    return bytes(len, fill);
}

/// Key lengths that do not suit an AES algorithm: every length up to 40
/// octets but the right one, and lengths near max_key_len.
std::vector<size_t> wrong_aes_key_lengths(algorithm alg) {
    std::vector<size_t> v;
    for (size_t len = 0; len <= 40; ++len) {
        if (len != info(alg).key_len) {
            v.push_back(len);
        }
    }
    v.push_back(64);
    v.push_back(max_key_len);
    v.push_back(max_key_len + 1);
    return v;
}

bool is_aes(algorithm alg) {
    return info(alg).key_len != 0;
}

const uint8_t* test_nonce() {
    static const std::array<uint8_t, gmac_nonce_len> nonce = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    return nonce.data();
}

bytes test_message(size_t len, uint8_t seed) {
    bytes m(len);
    for (size_t i = 0; i < len; ++i) {
        m[i] = static_cast<uint8_t>(seed + 7 * i);
    }
    return m;
}

icv_buffer compute(engine& eng, const prepared_key& key, const bytes& msg) {
    icv_buffer out = fresh_icv();
    EXPECT_TRUE(eng.compute_one(key, msg, test_nonce(), out.data())) << info(key.alg()).name;
    return out;
}

enum class engine_kind : uint8_t { ipsecmb, openssl };

// GoogleTest finds its value printer by this exact name.
void PrintTo(engine_kind k, std::ostream* os) { // NOLINT(readability-identifier-naming)
    *os << (k == engine_kind::ipsecmb ? "ipsecmb" : "openssl");
}

std::unique_ptr<engine> make_engine(engine_kind k) {
    if (k == engine_kind::ipsecmb) {
        return std::make_unique<ipsecmb_engine>();
    }
    return std::make_unique<openssl_engine>();
}

class icv_engine_api : public testing::TestWithParam<engine_kind> {
protected:
    void SetUp() override {
        _engine = make_engine(GetParam());
        // The other engine makes the foreign keys of the mismatch tests.
        _other = make_engine(GetParam() == engine_kind::ipsecmb ? engine_kind::openssl : engine_kind::ipsecmb);
    }

    key_handle prepare(engine& eng, algorithm alg, uint8_t fill) {
        auto k = eng.prepare(alg, key_for(alg, fill));
        EXPECT_TRUE(k) << k.message();
        return k ? std::move(k).value() : nullptr;
    }

    std::unique_ptr<engine> _engine;
    std::unique_ptr<engine> _other;
};

TEST_P(icv_engine_api, prepare_rejects_wrong_aes_key_lengths_naming_the_algorithm) {
    for (const auto& ai : all_algorithms()) {
        if (!is_aes(ai.alg)) {
            continue;
        }
        for (const size_t len : wrong_aes_key_lengths(ai.alg)) {
            auto k = _engine->prepare(ai.alg, bytes(len, 0x42));
            ASSERT_FALSE(k) << ai.name << " accepted a key of " << len << " octets";
            EXPECT_THAT(k.message(), testing::HasSubstr(std::string(ai.name))) << len << " octets";
        }
        EXPECT_TRUE(_engine->prepare(ai.alg, bytes(ai.key_len, 0x42))) << ai.name;
    }
}

TEST_P(icv_engine_api, prepare_rejects_an_empty_hmac_key) {
    for (const auto alg : {algorithm::hmac_sha256_128, algorithm::hmac_sha256}) {
        auto k = _engine->prepare(alg, {});
        ASSERT_FALSE(k);
        EXPECT_THAT(k.message(), testing::HasSubstr(std::string(info(alg).name)));
        EXPECT_THAT(k.message(), testing::HasSubstr("empty"));
        EXPECT_TRUE(_engine->prepare(alg, bytes(1, 0x42))) << "a one-octet HMAC key is valid (FIPS 198-1 §4)";
    }
}

TEST_P(icv_engine_api, rekey_with_a_wrong_length_returns_false_and_keeps_the_key) {
    const bytes msg = test_message(90, 3);
    for (const auto& ai : all_algorithms()) {
        SCOPED_TRACE(std::string(ai.name));
        key_handle k = prepare(*_engine, ai.alg, 0x01);
        ASSERT_NE(k, nullptr);
        const icv_buffer before = compute(*_engine, *k, msg);
        std::vector<size_t> wrong = is_aes(ai.alg) ? wrong_aes_key_lengths(ai.alg) : std::vector<size_t>{0};
        wrong.push_back(max_key_len + 1);
        for (const size_t len : wrong) {
            EXPECT_FALSE(_engine->rekey(*k, bytes(len, 0x02))) << len << " octets";
        }
        // rekey() is what derives per-sender GMAC keys on the fast path: a
        // refused one must leave the old key working, not a half-set one.
        EXPECT_EQ(compute(*_engine, *k, msg), before);
    }
}

TEST_P(icv_engine_api, rekey_replaces_the_key) {
    const bytes msg = test_message(90, 5);
    for (const auto& ai : all_algorithms()) {
        SCOPED_TRACE(std::string(ai.name));
        key_handle k = prepare(*_engine, ai.alg, 0x01);
        key_handle expected = prepare(*_engine, ai.alg, 0x02);
        ASSERT_NE(k, nullptr);
        ASSERT_NE(expected, nullptr);
        const icv_buffer old_icv = compute(*_engine, *k, msg);
        ASSERT_TRUE(_engine->rekey(*k, key_for(ai.alg, 0x02)));
        const icv_buffer new_icv = compute(*_engine, *k, msg);
        EXPECT_EQ(new_icv, compute(*_engine, *expected, msg));
        EXPECT_NE(new_icv, old_icv);
    }
}

TEST_P(icv_engine_api, rekey_refuses_a_key_made_by_the_other_engine) {
    for (const auto& ai : all_algorithms()) {
        key_handle foreign = prepare(*_other, ai.alg, 0x01);
        ASSERT_NE(foreign, nullptr);
        EXPECT_FALSE(_engine->rekey(*foreign, key_for(ai.alg, 0x02))) << ai.name;
    }
}

TEST_P(icv_engine_api, a_key_from_the_other_engine_is_not_computed) {
    const bytes msg = test_message(64, 9);
    for (const auto& ai : all_algorithms()) {
        SCOPED_TRACE(std::string(ai.name));
        key_handle own = prepare(*_engine, ai.alg, 0x01);
        key_handle foreign = prepare(*_other, ai.alg, 0x01);
        ASSERT_NE(own, nullptr);
        ASSERT_NE(foreign, nullptr);
        std::array<icv_buffer, 3> out = {fresh_icv(), fresh_icv(), fresh_icv()};
        const std::array<mac_request, 3> reqs = {{
            {own.get(), msg.data(), static_cast<uint32_t>(msg.size()), test_nonce(), out[0].data()},
            {foreign.get(), msg.data(), static_cast<uint32_t>(msg.size()), test_nonce(), out[1].data()},
            {own.get(), msg.data(), static_cast<uint32_t>(msg.size()), test_nonce(), out[2].data()},
        }};
        EXPECT_EQ(_engine->compute_burst(reqs.data(), 3), 2);
        EXPECT_TRUE(is_untouched(out[1]));
        const icv_buffer expected = compute(*_engine, *own, msg);
        EXPECT_EQ(out[0], expected);
        EXPECT_EQ(out[2], expected);
    }
}

TEST_P(icv_engine_api, a_gmac_request_without_a_nonce_is_not_computed) {
    const bytes msg = test_message(64, 11);
    for (const auto alg : {algorithm::aes_gmac_128, algorithm::aes_gmac_192, algorithm::aes_gmac_256}) {
        SCOPED_TRACE(std::string(info(alg).name));
        key_handle k = prepare(*_engine, alg, 0x01);
        ASSERT_NE(k, nullptr);
        std::array<icv_buffer, 3> out = {fresh_icv(), fresh_icv(), fresh_icv()};
        const std::array<mac_request, 3> reqs = {{
            {k.get(), msg.data(), static_cast<uint32_t>(msg.size()), test_nonce(), out[0].data()},
            {k.get(), msg.data(), static_cast<uint32_t>(msg.size()), nullptr, out[1].data()},
            {k.get(), msg.data(), static_cast<uint32_t>(msg.size()), test_nonce(), out[2].data()},
        }};
        EXPECT_EQ(_engine->compute_burst(reqs.data(), 3), 2);
        EXPECT_TRUE(is_untouched(out[1]));
        EXPECT_FALSE(is_untouched(out[0]));
        EXPECT_EQ(out[0], out[2]);
        icv_buffer single = fresh_icv();
        EXPECT_FALSE(_engine->compute_one(*k, msg, nullptr, single.data()));
        EXPECT_TRUE(is_untouched(single));
    }
}

TEST_P(icv_engine_api, non_gmac_requests_ignore_the_nonce) {
    // engine.h: the nonce is "GMAC only ... ignored otherwise".
    const bytes msg = test_message(64, 13);
    for (const auto& ai : all_algorithms()) {
        if (ai.needs_iv) {
            continue;
        }
        key_handle k = prepare(*_engine, ai.alg, 0x01);
        ASSERT_NE(k, nullptr);
        icv_buffer without = fresh_icv();
        ASSERT_TRUE(_engine->compute_one(*k, msg, nullptr, without.data())) << ai.name;
        EXPECT_EQ(without, compute(*_engine, *k, msg)) << ai.name;
    }
}

TEST_P(icv_engine_api, a_request_without_a_key_is_not_computed) {
    const bytes msg = test_message(64, 15);
    key_handle k = prepare(*_engine, algorithm::hmac_sha256, 0x01);
    ASSERT_NE(k, nullptr);
    std::array<icv_buffer, 2> out = {fresh_icv(), fresh_icv()};
    const std::array<mac_request, 2> reqs = {{
        {nullptr, msg.data(), static_cast<uint32_t>(msg.size()), nullptr, out[0].data()},
        {k.get(), msg.data(), static_cast<uint32_t>(msg.size()), nullptr, out[1].data()},
    }};
    EXPECT_EQ(_engine->compute_burst(reqs.data(), 2), 1);
    EXPECT_TRUE(is_untouched(out[0]));
    EXPECT_EQ(out[1], compute(*_engine, *k, msg));
}

TEST_P(icv_engine_api, an_empty_burst_computes_nothing) {
    EXPECT_EQ(_engine->compute_burst(nullptr, 0), 0);
}

TEST_P(icv_engine_api, bursts_longer_than_max_burst_are_all_computed) {
    // ipsecmb_engine splits at max_burst; sizes around each split point, and
    // a burst of 200 with every algorithm in it.
    std::vector<key_handle> keys;
    for (const auto& ai : all_algorithms()) {
        keys.push_back(prepare(*_engine, ai.alg, static_cast<uint8_t>(0x10 + keys.size())));
        ASSERT_NE(keys.back(), nullptr);
    }
    constexpr uint16_t max = ipsecmb_engine::max_burst;
    for (const uint16_t n : {uint16_t{max - 1}, max, uint16_t{max + 1}, uint16_t{2 * max}, uint16_t{2 * max + 1},
                             uint16_t{200}, uint16_t{1000}}) {
        SCOPED_TRACE("burst of " + std::to_string(n));
        std::vector<bytes> msgs;
        std::vector<icv_buffer> out(n, fresh_icv());
        std::vector<mac_request> reqs;
        for (uint16_t i = 0; i < n; ++i) {
            msgs.push_back(test_message(34 + i % 200, static_cast<uint8_t>(i)));
        }
        for (uint16_t i = 0; i < n; ++i) {
            reqs.push_back({keys[i % keys.size()].get(), msgs[i].data(), static_cast<uint32_t>(msgs[i].size()),
                            test_nonce(), out[i].data()});
        }
        ASSERT_EQ(_engine->compute_burst(reqs.data(), n), n);
        for (uint16_t i = 0; i < n; ++i) {
            ASSERT_EQ(out[i], compute(*_engine, *reqs[i].key, msgs[i])) << "request " << i;
        }
    }
}

TEST_P(icv_engine_api, an_invalid_request_past_max_burst_costs_only_itself) {
    // The bad request sits in the third internal chunk of the ipsec-mb
    // engine: the count says one is missing and the other ICVs are right.
    constexpr uint16_t n = 200;
    constexpr uint16_t bad = 150;
    key_handle k = prepare(*_engine, algorithm::aes_gmac_128, 0x01);
    ASSERT_NE(k, nullptr);
    const bytes msg = test_message(80, 1);
    std::vector<icv_buffer> out(n, fresh_icv());
    std::vector<mac_request> reqs;
    for (uint16_t i = 0; i < n; ++i) {
        reqs.push_back(
            {k.get(), msg.data(), static_cast<uint32_t>(msg.size()), i == bad ? nullptr : test_nonce(), out[i].data()});
    }
    EXPECT_EQ(_engine->compute_burst(reqs.data(), n), n - 1);
    const icv_buffer expected = compute(*_engine, *k, msg);
    for (uint16_t i = 0; i < n; ++i) {
        if (i == bad) {
            EXPECT_TRUE(is_untouched(out[i]));
        } else {
            EXPECT_EQ(out[i], expected) << "request " << i;
        }
    }
}

TEST(icv_engines, empty_messages_are_computed_and_agree) {
    // An empty message is valid input for every algorithm (RFC 4493 example
    // 1 is one), given as a null pointer or not. intel-ipsec-mb refuses both
    // a null source and a zero-length HMAC job; one such job must not cost
    // the other requests of its burst either.
    ipsecmb_engine fast;
    openssl_engine reference;
    const bytes msg = test_message(64, 19);
    const uint8_t some_octet = 0;
    for (const auto& ai : all_algorithms()) {
        SCOPED_TRACE(std::string(ai.name));
        auto k = fast.prepare(ai.alg, key_for(ai.alg, 0x07));
        auto r = reference.prepare(ai.alg, key_for(ai.alg, 0x07));
        ASSERT_TRUE(k && r);
        const icv_buffer expected_empty = compute(reference, **r, {});
        const icv_buffer expected_msg = compute(reference, **r, msg);
        std::array<icv_buffer, 4> out = {fresh_icv(), fresh_icv(), fresh_icv(), fresh_icv()};
        const std::array<mac_request, 4> reqs = {{
            {k->get(), msg.data(), static_cast<uint32_t>(msg.size()), test_nonce(), out[0].data()},
            {k->get(), nullptr, 0, test_nonce(), out[1].data()},
            {k->get(), &some_octet, 0, test_nonce(), out[2].data()},
            {k->get(), msg.data(), static_cast<uint32_t>(msg.size()), test_nonce(), out[3].data()},
        }};
        EXPECT_EQ(fast.compute_burst(reqs.data(), 4), 4);
        EXPECT_EQ(out[0], expected_msg);
        EXPECT_EQ(out[1], expected_empty);
        EXPECT_EQ(out[2], expected_empty);
        EXPECT_EQ(out[3], expected_msg);
    }
}

TEST_P(icv_engine_api, has_a_name) {
    EXPECT_FALSE(_engine->name().empty());
}

INSTANTIATE_TEST_SUITE_P(engines, icv_engine_api, testing::Values(engine_kind::ipsecmb, engine_kind::openssl),
                         [](const testing::TestParamInfo<engine_kind>& p) {
                             return p.param == engine_kind::ipsecmb ? "ipsecmb" : "openssl";
                         });

/// The first arch that this CPU runs and that the default plan does not use
/// for `alg`, if any.
std::optional<imb_arch> other_supported_arch(algorithm alg) {
    const imb_arch used = default_arch_plan()[static_cast<size_t>(alg)];
    for (auto a : {imb_arch::sse, imb_arch::avx, imb_arch::avx2, imb_arch::avx512}) {
        if (a != used && arch_supported(a)) {
            return a;
        }
    }
    return std::nullopt;
}

TEST(ipsecmb_engine_plan, a_key_prepared_under_another_plan_is_refused) {
    // Key material is laid out for the manager that expanded it (GHASH
    // tables differ between SSE and VAES code), so an engine must refuse a
    // key made for another manager rather than compute a wrong ICV.
    ipsecmb_engine eng;
    const bytes msg = test_message(64, 17);
    size_t checked = 0;
    for (const auto& ai : all_algorithms()) {
        const auto arch = other_supported_arch(ai.alg);
        if (!arch) {
            continue;
        }
        SCOPED_TRACE(std::string(ai.name) + " prepared on " + std::string(arch_name(*arch)));
        ipsecmb_engine other(uniform_arch_plan(*arch));
        auto k = other.prepare(ai.alg, key_for(ai.alg, 0x01));
        ASSERT_TRUE(k) << k.message();
        icv_buffer out = fresh_icv();
        EXPECT_FALSE(eng.compute_one(**k, msg, test_nonce(), out.data()));
        EXPECT_TRUE(is_untouched(out));
        EXPECT_FALSE(eng.rekey(**k, key_for(ai.alg, 0x02)));
        ++checked;
    }
    if (checked == 0) {
        GTEST_SKIP() << "this CPU runs no intel-ipsec-mb manager besides the default plan's";
    }
}

TEST(ipsecmb_engine_plan, an_unsupported_manager_is_refused_at_construction) {
    for (auto a : {imb_arch::sse, imb_arch::avx, imb_arch::avx2, imb_arch::avx512}) {
        if (!arch_supported(a)) {
            EXPECT_THROW(ipsecmb_engine(uniform_arch_plan(a)), std::runtime_error) << arch_name(a);
            return;
        }
    }
    GTEST_SKIP() << "this CPU runs every intel-ipsec-mb manager";
}

TEST(ipsecmb_engine_plan, arch_for_follows_the_plan) {
    for (auto a : {imb_arch::sse, imb_arch::avx, imb_arch::avx2, imb_arch::avx512}) {
        if (!arch_supported(a)) {
            continue;
        }
        const ipsecmb_engine eng(uniform_arch_plan(a));
        for (const auto& ai : all_algorithms()) {
            EXPECT_EQ(eng.arch_for(ai.alg), a);
        }
        EXPECT_THAT(std::string(eng.name()), testing::HasSubstr(std::string(arch_name(a))));
    }
}

TEST(imb_arch_names, round_trip) {
    for (auto a : {imb_arch::sse, imb_arch::avx, imb_arch::avx2, imb_arch::avx512}) {
        EXPECT_EQ(arch_from_name(arch_name(a)), a);
    }
    EXPECT_EQ(arch_from_name("avx1024"), std::nullopt);
    EXPECT_EQ(arch_from_name(""), std::nullopt);
}

TEST(algorithm_table, is_indexed_by_the_enum) {
    const auto table = all_algorithms();
    ASSERT_EQ(table.size(), algorithm_count);
    for (size_t i = 0; i < table.size(); ++i) {
        EXPECT_EQ(static_cast<size_t>(table[i].alg), i);
        EXPECT_EQ(&info(table[i].alg), &table[i]);
        EXPECT_LE(table[i].icv_len, max_icv_len);
        EXPECT_LE(table[i].key_len, max_key_len);
        EXPECT_EQ(from_name(table[i].name), table[i].alg);
    }
    EXPECT_EQ(from_name("aes-gmac-512"), std::nullopt);
}

TEST(algorithm_table, gmac_variants_need_an_iv_and_carry_16_octets) {
    // RFC 4543 §3.2 / SP 800-38D §5.2.1.2: the GMAC tag is at most 128 bits,
    // whatever the AES key size.
    for (const auto& ai : all_algorithms()) {
        EXPECT_EQ(is_gmac(ai.alg), ai.needs_iv);
        if (ai.needs_iv) {
            EXPECT_EQ(ai.icv_len, 16) << ai.name;
        }
    }
}

TEST(algorithm_table, from_mac_type_selects_cmac_by_key_length) {
    // seeds/001 Table 26 has one AES-CMAC entry (type 2).
    EXPECT_EQ(from_mac_type(2, 16), algorithm::aes_cmac_128);
    EXPECT_EQ(from_mac_type(2, 32), algorithm::aes_cmac_256);
    EXPECT_EQ(from_mac_type(2, 24), std::nullopt);
    EXPECT_EQ(from_mac_type(6, 16), std::nullopt);
    for (const auto& ai : all_algorithms()) {
        EXPECT_EQ(from_mac_type(ai.mac_type, ai.key_len != 0 ? ai.key_len : 32), ai.alg) << ai.name;
    }
}

} // namespace
} // namespace ptpsec::icv
