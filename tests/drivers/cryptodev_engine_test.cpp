// The ICV engine on DPDK crypto devices (drivers/icv/cryptodev_engine.h),
// run on DPDK's software PMDs: crypto_aesni_mb (intel-ipsec-mb behind the
// cryptodev API) and crypto_openssl, and crypto_null, which has none of our
// algorithms. Known answers are in icv_kat_test.cpp; here: the same ICVs as
// the intel-ipsec-mb engine on random bursts, the device's limits named,
// requests the engine cannot take left alone, and a dropped key's session
// wiped.

#include "eal_session.h"

#include <drivers/icv/cryptodev_engine.h>
#include <drivers/icv/engine.h>
#include <drivers/icv/gmac.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <intel-ipsec-mb.h>
#include <rte_memory.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace ptpsec::icv {
namespace {

using bytes = std::vector<uint8_t>;
using testing::HasSubstr;

class cryptodev_engine_test : public testing::Test {
protected:
    void SetUp() override {
        const std::string& why = ptpsec::test::eal_session::start();
        ASSERT_TRUE(why.empty()) << why;
    }

    static std::shared_ptr<crypto_device> open(const char* name, uint16_t queue_pairs = 1) {
        crypto_device::options o;
        o.queue_pairs = queue_pairs;
        auto d = crypto_device::open(name, o);
        EXPECT_TRUE(d) << d.message();
        return d ? *d : nullptr;
    }

    static std::unique_ptr<cryptodev_engine> engine_on(const std::shared_ptr<crypto_device>& d, uint16_t qp = 0) {
        auto e = cryptodev_engine::create(d, qp);
        EXPECT_TRUE(e) << e.message();
        return e ? std::move(e).value() : nullptr;
    }
};

bytes random_bytes(std::mt19937_64& rng, size_t n) {
    bytes b(n);
    for (auto& o : b) {
        o = static_cast<uint8_t>(rng());
    }
    return b;
}

size_t key_len_of(algorithm alg, std::mt19937_64& rng) {
    const uint8_t fixed = info(alg).key_len;
    return fixed != 0 ? fixed : 1 + rng() % 100; // HMAC: short and longer than the block
}

TEST_F(cryptodev_engine_test, computes_what_intel_ipsec_mb_computes_in_random_bursts) {
    std::mt19937_64 rng(0x63727970746f6465ULL); // "cryptode"
    ipsecmb_engine reference;
    for (const char* name : {"crypto_aesni_mb0", "crypto_openssl0"}) {
        SCOPED_TRACE(name);
        auto dev = open(name);
        ASSERT_NE(dev, nullptr);
        auto eng = engine_on(dev);
        ASSERT_NE(eng, nullptr);
        size_t checked = 0;
        for (const auto& ai : all_algorithms()) {
            SCOPED_TRACE(std::string(ai.name));
            const bytes key = random_bytes(rng, key_len_of(ai.alg, rng));
            if (!dev->supports(ai.alg, key.size())) {
                continue; // named by icv_kat's refusal check
            }
            auto k = eng->prepare(ai.alg, key);
            ASSERT_TRUE(k) << k.message();
            auto rk = reference.prepare(ai.alg, key);
            ASSERT_TRUE(rk) << rk.message();
            // Bursts of 1 to 100 (past max_burst, so split), messages of 34
            // to 300 octets.
            for (const uint16_t n : std::array<uint16_t, 6>{1, 2, 31, 64, 65, 100}) {
                std::vector<bytes> msgs;
                std::vector<std::array<uint8_t, gmac_nonce_len>> nonces(n);
                std::vector<std::array<uint8_t, max_icv_len>> got(n);
                std::vector<std::array<uint8_t, max_icv_len>> want(n);
                std::vector<mac_request> reqs;
                std::vector<mac_request> refs;
                for (uint16_t i = 0; i < n; ++i) {
                    msgs.push_back(random_bytes(rng, 34 + rng() % 267));
                    for (auto& o : nonces[i]) {
                        o = static_cast<uint8_t>(rng());
                    }
                    const uint8_t* nonce = ai.needs_iv ? nonces[i].data() : nullptr;
                    const auto len = static_cast<uint32_t>(msgs[i].size());
                    reqs.push_back({k->get(), msgs[i].data(), len, nonce, got[i].data()});
                    refs.push_back({rk->get(), msgs[i].data(), len, nonce, want[i].data()});
                }
                ASSERT_EQ(eng->compute_burst(reqs.data(), n), n);
                ASSERT_EQ(reference.compute_burst(refs.data(), n), n);
                for (uint16_t i = 0; i < n; ++i) {
                    ASSERT_EQ(bytes(got[i].begin(), got[i].begin() + ai.icv_len),
                              bytes(want[i].begin(), want[i].begin() + ai.icv_len))
                        << "message " << i << " of a burst of " << n << ", " << msgs[i].size() << " octets";
                }
                checked += n;
            }
        }
        EXPECT_GE(checked, 6U * 263U) << "every algorithm but at most one ran";
        EXPECT_EQ(eng->device_errors(), 0U);
        EXPECT_THAT(std::string(eng->name()), HasSubstr(name));
    }
}

TEST_F(cryptodev_engine_test, a_device_that_is_not_there_is_named_with_how_to_make_one) {
    auto d = crypto_device::open("crypto_nosuch0", {});
    ASSERT_FALSE(d);
    EXPECT_THAT(d.message(), HasSubstr("no crypto device named crypto_nosuch0"));
    EXPECT_THAT(d.message(), HasSubstr("--vdev"));
}

TEST_F(cryptodev_engine_test, queue_pairs_beyond_the_device_are_refused) {
    crypto_device::options o;
    o.queue_pairs = 200;
    auto d = crypto_device::open("crypto_openssl0", o);
    ASSERT_FALSE(d);
    EXPECT_THAT(d.message(), HasSubstr("crypto_openssl0 (crypto_openssl) has 8 queue pair(s); 200 are needed"));
    auto dev = open("crypto_openssl0", 2);
    ASSERT_NE(dev, nullptr);
    auto e = cryptodev_engine::create(dev, 2);
    ASSERT_FALSE(e);
    EXPECT_THAT(e.message(), HasSubstr("queue pairs 0 to 1, not 2"));
    // One engine per queue pair, both working.
    auto e0 = engine_on(dev, 0);
    auto e1 = engine_on(dev, 1);
    ASSERT_TRUE(e0 && e1);
    const bytes key(16, 0x2b);
    auto k = e0->prepare(algorithm::aes_cmac_128, key);
    ASSERT_TRUE(k) << k.message();
    const bytes msg(90, 0x5a);
    std::array<uint8_t, 16> a{};
    std::array<uint8_t, 16> b{};
    ASSERT_TRUE(e0->compute_one(**k, msg, nullptr, a.data()));
    ASSERT_TRUE(e1->compute_one(**k, msg, nullptr, b.data())) << "a key serves every queue pair of its device";
    EXPECT_EQ(a, b);
}

TEST_F(cryptodev_engine_test, an_algorithm_the_device_lacks_is_refused_by_name) {
    auto null_dev = open("crypto_null0");
    ASSERT_NE(null_dev, nullptr);
    auto e = engine_on(null_dev);
    ASSERT_NE(e, nullptr);
    auto k = e->prepare(algorithm::hmac_sha256_128, bytes(32, 1));
    ASSERT_FALSE(k);
    EXPECT_THAT(k.message(), HasSubstr("crypto device crypto_null0 (crypto_null) does not do SHA256_HMAC"));

    auto mb = open("crypto_aesni_mb0");
    ASSERT_NE(mb, nullptr);
    auto me = engine_on(mb);
    ASSERT_NE(me, nullptr);
    auto cmac256 = me->prepare(algorithm::aes_cmac_256, bytes(32, 1));
    ASSERT_FALSE(cmac256);
    EXPECT_THAT(cmac256.message(), HasSubstr("does not do aes-cmac-256 with a 32-octet key"));
    EXPECT_THAT(cmac256.message(), HasSubstr("keys of 16 to 16 octets"));
    // The key length is checked first, as by every engine.
    auto short_key = me->prepare(algorithm::aes_gmac_128, bytes(15, 1));
    ASSERT_FALSE(short_key);
    EXPECT_THAT(short_key.message(), HasSubstr("key must be 16 octets, got 15"));
}

TEST_F(cryptodev_engine_test, rekey_replaces_the_key_and_a_refused_one_keeps_the_old) {
    auto dev = open("crypto_aesni_mb0");
    ASSERT_NE(dev, nullptr);
    auto eng = engine_on(dev);
    ASSERT_NE(eng, nullptr);
    ipsecmb_engine reference;
    const bytes k1(16, 0x01);
    const bytes k2(16, 0x02);
    auto k = eng->prepare(algorithm::aes_gmac_128, k1);
    ASSERT_TRUE(k) << k.message();
    const bytes msg(70, 0x33);
    const std::array<uint8_t, gmac_nonce_len> nonce{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    auto icv_of = [&](engine& e, const prepared_key& pk) {
        std::array<uint8_t, 16> out{};
        EXPECT_TRUE(e.compute_one(pk, msg, nonce.data(), out.data()));
        return out;
    };
    auto r1 = reference.prepare(algorithm::aes_gmac_128, k1);
    auto r2 = reference.prepare(algorithm::aes_gmac_128, k2);
    ASSERT_TRUE(r1 && r2);
    EXPECT_EQ(icv_of(*eng, **k), icv_of(reference, **r1));
    ASSERT_TRUE(eng->rekey(**k, k2));
    EXPECT_EQ(icv_of(*eng, **k), icv_of(reference, **r2));
    EXPECT_FALSE(eng->rekey(**k, bytes(24, 0x03))) << "a 192-bit key for AES-GMAC-128";
    EXPECT_EQ(icv_of(*eng, **k), icv_of(reference, **r2)) << "the refused key left the old one in place";
    EXPECT_FALSE(eng->rekey(**r1, k1)) << "a key another engine made";
}

TEST_F(cryptodev_engine_test, gmac_sender_subkeys_are_sessions_that_sign_as_on_the_cpu) {
    // drivers/icv/gmac.h on a crypto device: HKDF through the device's HMAC,
    // each sender's subkey a session made on first sight (rekey).
    auto dev = open("crypto_aesni_mb0");
    ASSERT_NE(dev, nullptr);
    auto eng = engine_on(dev);
    ASSERT_NE(eng, nullptr);
    ipsecmb_engine cpu;
    const bytes group_key(32, 0x5e);
    auto on_dev = gmac_sender_keys::create(*eng, algorithm::aes_gmac_256, group_key, 4);
    auto on_cpu = gmac_sender_keys::create(cpu, algorithm::aes_gmac_256, group_key, 4);
    ASSERT_TRUE(on_dev && on_cpu) << (on_dev ? on_cpu.message() : on_dev.message());
    const bytes msg(100, 0x21);
    // More senders than slots: entries are derived again over earlier ones.
    for (uint8_t sender = 1; sender <= 12; ++sender) {
        SCOPED_TRACE(static_cast<int>(sender));
        std::array<uint8_t, port_identity_len> pid{};
        pid[7] = sender;
        pid[9] = 1;
        const auto* d = (*on_dev)->lookup(*eng, pid.data());
        ASSERT_NE(d, nullptr);
        std::array<uint8_t, gmac_nonce_len> nonce{};
        std::copy(d->salt.begin(), d->salt.end(), nonce.begin());
        nonce[11] = sender;
        std::array<uint8_t, 16> a{};
        ASSERT_TRUE(eng->compute_one(*d->key, msg, nonce.data(), a.data()));
        const auto* c = (*on_cpu)->lookup(cpu, pid.data());
        ASSERT_NE(c, nullptr);
        EXPECT_EQ(d->salt, c->salt);
        std::array<uint8_t, 16> b{};
        ASSERT_TRUE(cpu.compute_one(*c->key, msg, nonce.data(), b.data()));
        EXPECT_EQ(a, b);
    }
    EXPECT_EQ((*on_dev)->derivations(), (*on_cpu)->derivations());
    EXPECT_EQ(eng->device_errors(), 0U);
}

TEST_F(cryptodev_engine_test, requests_it_cannot_take_are_left_alone_and_the_rest_computed) {
    auto dev = open("crypto_openssl0");
    ASSERT_NE(dev, nullptr);
    auto eng = engine_on(dev);
    ASSERT_NE(eng, nullptr);
    ipsecmb_engine other;
    auto mine = eng->prepare(algorithm::aes_gmac_256, bytes(32, 7));
    auto theirs = other.prepare(algorithm::aes_gmac_256, bytes(32, 7));
    ASSERT_TRUE(mine && theirs);
    const bytes msg(90, 0x44);
    const bytes huge(cryptodev_engine::max_message + 1, 0x44);
    const std::array<uint8_t, gmac_nonce_len> nonce{};
    std::array<std::array<uint8_t, 16>, 5> out{};
    for (auto& o : out) {
        o.fill(0xee);
    }
    const std::array<mac_request, 5> reqs{{
        {mine->get(), msg.data(), 90, nonce.data(), out[0].data()},
        {theirs->get(), msg.data(), 90, nonce.data(), out[1].data()}, // another engine's key
        {mine->get(), msg.data(), 90, nullptr, out[2].data()},        // GMAC without a nonce
        {mine->get(), huge.data(), static_cast<uint32_t>(huge.size()), nonce.data(), out[3].data()}, // too long
        {mine->get(), msg.data(), 90, nonce.data(), out[4].data()},
    }};
    EXPECT_EQ(eng->compute_burst(reqs.data(), 5), 2);
    std::array<uint8_t, 16> untouched{};
    untouched.fill(0xee);
    EXPECT_NE(out[0], untouched);
    EXPECT_EQ(out[0], out[4]);
    EXPECT_EQ(out[1], untouched);
    EXPECT_EQ(out[2], untouched);
    EXPECT_EQ(out[3], untouched);
    EXPECT_EQ(eng->device_errors(), 0U) << "refused requests are not device errors";
}

/// How many times `needle` occurs in DPDK's memory (every mapped segment:
/// the session pools, rte_malloc's heap, the mbuf pools).
size_t dpdk_memory_holds(std::span<const uint8_t> needle) {
    struct search {
        std::span<const uint8_t> needle;
        size_t hits = 0;
    } state{needle};
    rte_memseg_contig_walk(
        [](const rte_memseg_list*, const rte_memseg* ms, size_t len, void* arg) {
            auto* s = static_cast<search*>(arg);
            const auto* p = static_cast<const uint8_t*>(ms->addr);
            const auto* end = p + len;
            while ((p = std::search(p, end, s->needle.begin(), s->needle.end())) != end) {
                ++s->hits;
                ++p;
            }
            return 0;
        },
        &state);
    return state.hits;
}

/// What crypto_aesni_mb keeps of an HMAC-SHA256 key (the key itself it
/// does not keep): the inner state after the block key ^ ipad, as
/// intel-ipsec-mb's own set-up computes it. For AES keys, the expanded
/// schedule starts with the key itself.
bytes hmac_inner_state(std::span<const uint8_t> key) {
    std::array<uint8_t, 64> pad{};
    std::copy(key.begin(), key.end(), pad.begin()); // keys of at most one block here
    for (auto& o : pad) {
        o = static_cast<uint8_t>(o ^ 0x36);
    }
    IMB_MGR* m = alloc_mb_mgr(0);
    if (m == nullptr) {
        return {};
    }
    init_mb_mgr_sse(m);
    bytes state(32);
    IMB_SHA256_ONE_BLOCK(m, pad.data(), state.data());
    free_mb_mgr(m);
    return state;
}

TEST_F(cryptodev_engine_test, a_dropped_or_replaced_key_leaves_nothing_of_itself_in_the_device_memory) {
    // crypto_aesni_mb keeps its sessions in the engine's session pool,
    // in DPDK memory, which this test can search. (crypto_openssl keeps
    // OpenSSL objects on the C heap instead: not searched here.)
    auto dev = open("crypto_aesni_mb0");
    ASSERT_NE(dev, nullptr);
    auto eng = engine_on(dev);
    ASSERT_NE(eng, nullptr);
    std::mt19937_64 rng(0x77697065ULL); // "wipe"
    size_t checked = 0;
    for (const auto& ai : all_algorithms()) {
        SCOPED_TRACE(std::string(ai.name));
        const size_t len = info(ai.alg).key_len != 0 ? info(ai.alg).key_len : 32;
        if (!dev->supports(ai.alg, len)) {
            continue;
        }
        const bytes first = random_bytes(rng, len);
        const bytes second = random_bytes(rng, len);
        // What the session holds of each key.
        const bytes held_first = is_hmac(ai.alg) ? hmac_inner_state(first) : first;
        const bytes held_second = is_hmac(ai.alg) ? hmac_inner_state(second) : second;
        ASSERT_EQ(held_first.size(), is_hmac(ai.alg) ? 32U : len);
        ASSERT_EQ(dpdk_memory_holds(held_first), 0U);
        {
            auto k = eng->prepare(ai.alg, first);
            ASSERT_TRUE(k) << k.message();
            // The search finds a live key: else its silence below would
            // prove nothing.
            EXPECT_GE(dpdk_memory_holds(held_first), 1U) << "the session of a live key is not where it is searched";
            ASSERT_TRUE(eng->rekey(**k, second));
            EXPECT_EQ(dpdk_memory_holds(held_first), 0U) << "a replaced key's session still holds it";
            EXPECT_GE(dpdk_memory_holds(held_second), 1U);
        }
        EXPECT_EQ(dpdk_memory_holds(held_second), 0U) << "a dropped key's session still holds it";
        ++checked;
    }
    EXPECT_GE(checked, 4U) << "HMAC-SHA256(-128), AES-CMAC-128 and AES-GMAC at least";
}

} // namespace
} // namespace ptpsec::icv
