// The AES-GMAC IV scheme of drivers/icv/gmac.h: per-sender subkeys derived
// with HKDF-SHA256 (RFC 5869), the table that caches them, and the IV
// counter that starts at CLOCK_TAI so that an IV never repeats under a key,
// across senders and across restarts (seeds/001 §4.2.14).

#include "hex.h"
#include <drivers/base/bytes.h>

#include <drivers/icv/gmac.h>
#include <drivers/icv/ipsecmb_engine.h>
#include <drivers/icv/openssl_engine.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <ostream>
#include <random>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ptpsec::icv {
namespace {

using test::bytes;
using test::from_hex;
using port_identity = std::array<uint8_t, port_identity_len>;

constexpr std::array<algorithm, 3> gmac_algorithms = {algorithm::aes_gmac_128, algorithm::aes_gmac_192,
                                                      algorithm::aes_gmac_256};

bytes random_bytes(std::mt19937_64& rng, size_t n) {
    bytes b(n);
    std::generate(b.begin(), b.end(), [&rng] { return static_cast<uint8_t>(rng()); });
    return b;
}

/// Distinct sourcePortIdentity values: a random clockIdentity (IEEE
/// 1588-2019 §7.5.2.2) and the index as portNumber.
std::vector<port_identity> distinct_port_identities(std::mt19937_64& rng, size_t n) {
    std::vector<port_identity> v(n);
    for (size_t i = 0; i < n; ++i) {
        const bytes clock = random_bytes(rng, 8);
        std::copy(clock.begin(), clock.end(), v[i].begin());
        store_be16(v[i].data() + 8, static_cast<uint16_t>(i));
    }
    return v;
}

/// HKDF-SHA256 through OpenSSL's own KDF, independent of our engines.
bytes openssl_hkdf(std::span<const uint8_t> ikm, std::span<const uint8_t> info_bytes, size_t len) {
    std::unique_ptr<EVP_KDF, decltype(&EVP_KDF_free)> kdf(EVP_KDF_fetch(nullptr, "HKDF", nullptr), EVP_KDF_free);
    EXPECT_NE(kdf, nullptr);
    if (kdf == nullptr) {
        return {};
    }
    std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf.get()), EVP_KDF_CTX_free);
    // No salt parameter: RFC 5869 §2.2 then uses HashLen zero octets.
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()), ikm.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info_bytes.data()),
                                          info_bytes.size()),
        OSSL_PARAM_construct_end(),
    };
    bytes out(len);
    EXPECT_EQ(EVP_KDF_derive(ctx.get(), out.data(), out.size(), params), 1);
    return out;
}

/// info = "ptpsec gmac v1" || MAC type (2, big endian) || sourcePortIdentity,
/// as gmac.h documents it.
bytes gmac_kdf_info(algorithm alg, const port_identity& pid) {
    const std::string_view label = "ptpsec gmac v1";
    bytes i(label.begin(), label.end());
    i.push_back(static_cast<uint8_t>(info(alg).mac_type >> 8));
    i.push_back(static_cast<uint8_t>(info(alg).mac_type));
    i.insert(i.end(), pid.begin(), pid.end());
    return i;
}

bytes derive(engine& eng, const gmac_kdf& kdf, const port_identity& pid) {
    bytes out(kdf.output_len());
    EXPECT_TRUE(kdf.derive(eng, pid.data(), out.data()));
    return out;
}

enum class engine_kind : uint8_t { ipsecmb, openssl };

std::unique_ptr<engine> make_engine(engine_kind k) {
    if (k == engine_kind::ipsecmb) {
        return std::make_unique<ipsecmb_engine>();
    }
    return std::make_unique<openssl_engine>();
}

// GoogleTest finds its value printer by this exact name.
void PrintTo(engine_kind k, std::ostream* os) { // NOLINT(readability-identifier-naming)
    *os << (k == engine_kind::ipsecmb ? "ipsecmb" : "openssl");
}

std::string engine_label(const testing::TestParamInfo<engine_kind>& p) {
    return p.param == engine_kind::ipsecmb ? "ipsecmb" : "openssl";
}

class gmac_kdf_test : public testing::TestWithParam<engine_kind> {
protected:
    void SetUp() override { _engine = make_engine(GetParam()); }
    std::unique_ptr<engine> _engine;
    std::mt19937_64 _rng{0x676d61632d6b6466ULL};
};

TEST_P(gmac_kdf_test, matches_openssl_hkdf_sha256) {
    for (const auto alg : gmac_algorithms) {
        SCOPED_TRACE(std::string(info(alg).name));
        for (int round = 0; round < 8; ++round) {
            const bytes group_key = random_bytes(_rng, info(alg).key_len);
            auto kdf = gmac_kdf::create(*_engine, alg, group_key);
            ASSERT_TRUE(kdf) << kdf.message();
            EXPECT_EQ(kdf->alg(), alg);
            EXPECT_EQ(kdf->output_len(), info(alg).key_len + gmac_salt_len);
            for (const auto& pid : distinct_port_identities(_rng, 8)) {
                EXPECT_EQ(derive(*_engine, *kdf, pid),
                          openssl_hkdf(group_key, gmac_kdf_info(alg, pid), kdf->output_len()));
            }
        }
    }
}

TEST_P(gmac_kdf_test, hmac_building_block_gives_rfc5869_test_case_3) {
    // gmac_kdf's info is fixed, so the RFC's vectors cannot go through it;
    // this runs the same construction on the engine's HMAC-SHA256. RFC 5869
    // §A.3: IKM = 0x0b * 22, salt and info empty, L = 42. An absent salt is
    // HashLen zero octets (§2.2), which is also how gmac_kdf extracts.
    const bytes ikm(22, 0x0b);
    auto extract = _engine->prepare(algorithm::hmac_sha256, bytes(32, 0));
    ASSERT_TRUE(extract) << extract.message();
    bytes prk(32);
    ASSERT_TRUE(_engine->compute_one(**extract, ikm, nullptr, prk.data()));
    EXPECT_EQ(prk, from_hex("19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"));

    // §2.3: T(1) = HMAC(PRK, info || 0x01), T(2) = HMAC(PRK, T(1) || info || 0x02).
    auto expand = _engine->prepare(algorithm::hmac_sha256, prk);
    ASSERT_TRUE(expand) << expand.message();
    bytes okm(64);
    const uint8_t one = 1;
    ASSERT_TRUE(_engine->compute_one(**expand, std::span<const uint8_t>(&one, 1), nullptr, okm.data()));
    bytes t2_input(okm.begin(), okm.begin() + 32);
    t2_input.push_back(2);
    ASSERT_TRUE(_engine->compute_one(**expand, t2_input, nullptr, okm.data() + 32));
    okm.resize(42);
    EXPECT_EQ(okm, from_hex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"));
}

TEST_P(gmac_kdf_test, each_port_identity_octet_changes_key_and_salt) {
    // Two senders must never share a subkey (their IV counters may overlap),
    // nor a salt; flip every bit of sourcePortIdentity in turn.
    for (const auto alg : gmac_algorithms) {
        SCOPED_TRACE(std::string(info(alg).name));
        const bytes group_key = random_bytes(_rng, info(alg).key_len);
        auto kdf = gmac_kdf::create(*_engine, alg, group_key);
        ASSERT_TRUE(kdf) << kdf.message();
        const port_identity base = distinct_port_identities(_rng, 1)[0];
        const bytes base_okm = derive(*_engine, *kdf, base);
        const size_t key_len = info(alg).key_len;
        std::set<bytes> keys{bytes(base_okm.begin(), base_okm.begin() + static_cast<ptrdiff_t>(key_len))};
        std::set<bytes> salts{bytes(base_okm.begin() + static_cast<ptrdiff_t>(key_len), base_okm.end())};
        for (size_t bit = 0; bit < 8 * port_identity_len; ++bit) {
            port_identity pid = base;
            pid[bit / 8] = static_cast<uint8_t>(pid[bit / 8] ^ (1U << (bit % 8)));
            const bytes okm = derive(*_engine, *kdf, pid);
            EXPECT_TRUE(keys.insert(bytes(okm.begin(), okm.begin() + static_cast<ptrdiff_t>(key_len))).second)
                << "bit " << bit;
            EXPECT_TRUE(salts.insert(bytes(okm.begin() + static_cast<ptrdiff_t>(key_len), okm.end())).second)
                << "bit " << bit;
        }
        // Deterministic: the same sender gets the same octets again.
        EXPECT_EQ(derive(*_engine, *kdf, base), base_okm);
    }
}

TEST_P(gmac_kdf_test, different_group_keys_give_different_subkeys) {
    const port_identity pid = distinct_port_identities(_rng, 1)[0];
    for (const auto alg : gmac_algorithms) {
        auto a = gmac_kdf::create(*_engine, alg, random_bytes(_rng, info(alg).key_len));
        auto b = gmac_kdf::create(*_engine, alg, random_bytes(_rng, info(alg).key_len));
        ASSERT_TRUE(a && b);
        EXPECT_NE(derive(*_engine, *a, pid), derive(*_engine, *b, pid)) << info(alg).name;
    }
}

TEST_P(gmac_kdf_test, create_rejects_non_gmac_algorithms_and_wrong_key_lengths) {
    for (const auto& ai : all_algorithms()) {
        if (ai.needs_iv) {
            continue;
        }
        auto kdf = gmac_kdf::create(*_engine, ai.alg, bytes(32, 1));
        ASSERT_FALSE(kdf) << ai.name;
        EXPECT_THAT(kdf.message(), testing::HasSubstr("GMAC"));
    }
    for (const auto alg : gmac_algorithms) {
        const size_t key_len = info(alg).key_len;
        for (const size_t len : {size_t{0}, key_len - 1, key_len + 1}) {
            auto kdf = gmac_kdf::create(*_engine, alg, bytes(len, 1));
            ASSERT_FALSE(kdf) << info(alg).name << " with a " << len << "-octet group key";
            EXPECT_THAT(kdf.message(), testing::HasSubstr(std::string(info(alg).name)));
            EXPECT_FALSE(gmac_sender_keys::create(*_engine, alg, bytes(len, 1)));
        }
    }
}

INSTANTIATE_TEST_SUITE_P(engines, gmac_kdf_test, testing::Values(engine_kind::ipsecmb, engine_kind::openssl),
                         engine_label);

/// What a receiver would compute for a sender from scratch: a fresh gmac_kdf
/// derivation keyed into OpenSSL's GMAC.
class reference_sender_keys {
public:
    reference_sender_keys(algorithm alg, const bytes& group_key) : _alg(alg) {
        auto kdf = gmac_kdf::create(_engine, alg, group_key);
        EXPECT_TRUE(kdf) << kdf.message();
        if (kdf) {
            _kdf = std::make_unique<gmac_kdf>(std::move(kdf).value());
        }
    }

    struct expected {
        std::array<uint8_t, gmac_salt_len> salt;
        std::array<uint8_t, 16> icv;
    };

    /// Salt and ICV of `msg` signed with IV `iv` by sender `pid`.
    expected sign(const port_identity& pid, const bytes& msg, uint64_t iv) {
        expected e{};
        const bytes okm = derive(_engine, *_kdf, pid);
        const size_t key_len = info(_alg).key_len;
        std::copy(okm.begin() + static_cast<ptrdiff_t>(key_len), okm.end(), e.salt.begin());
        auto key = _engine.prepare(_alg, std::span<const uint8_t>(okm.data(), key_len));
        EXPECT_TRUE(key) << key.message();
        std::array<uint8_t, gmac_nonce_len> nonce{};
        make_gmac_nonce(e.salt.data(), iv, nonce.data());
        EXPECT_TRUE(_engine.compute_one(**key, msg, nonce.data(), e.icv.data()));
        return e;
    }

private:
    algorithm _alg;
    openssl_engine _engine;
    std::unique_ptr<gmac_kdf> _kdf;
};

/// ICV of `msg` under a table entry, with nonce = entry salt || iv.
std::array<uint8_t, 16> sign_with(engine& eng, const gmac_sender_keys::entry& e, const bytes& msg, uint64_t iv) {
    std::array<uint8_t, gmac_nonce_len> nonce{};
    make_gmac_nonce(e.salt.data(), iv, nonce.data());
    std::array<uint8_t, 16> icv{};
    EXPECT_TRUE(eng.compute_one(*e.key, msg, nonce.data(), icv.data()));
    return icv;
}

class gmac_sender_keys_test : public testing::TestWithParam<engine_kind> {
protected:
    void SetUp() override { _engine = make_engine(GetParam()); }
    std::unique_ptr<engine> _engine;
    std::mt19937_64 _rng{0x73656e6465727321ULL};
    const bytes _msg = bytes(90, 0x3c);
};

TEST_P(gmac_sender_keys_test, find_misses_before_derive_and_hits_after) {
    const bytes group_key = random_bytes(_rng, 32);
    auto keys = gmac_sender_keys::create(*_engine, algorithm::aes_gmac_256, group_key);
    ASSERT_TRUE(keys) << keys.message();
    auto& table = **keys;
    EXPECT_EQ(table.alg(), algorithm::aes_gmac_256);
    const auto pids = distinct_port_identities(_rng, 3);

    EXPECT_EQ(table.find(pids[0].data()), nullptr);
    EXPECT_EQ(table.derivations(), 0U);
    const auto* e = table.derive(*_engine, pids[0].data());
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(table.derivations(), 1U);
    EXPECT_EQ(e->port_identity, pids[0]);
    EXPECT_TRUE(e->used);
    EXPECT_EQ(table.find(pids[0].data()), e);
    EXPECT_EQ(table.find(pids[1].data()), nullptr) << "another sender must not hit";

    // lookup() finds without deriving, and derives a newcomer once.
    EXPECT_EQ(table.lookup(*_engine, pids[0].data()), e);
    EXPECT_EQ(table.derivations(), 1U);
    const auto* e1 = table.lookup(*_engine, pids[1].data());
    ASSERT_NE(e1, nullptr);
    EXPECT_EQ(e1->port_identity, pids[1]);
    EXPECT_EQ(table.derivations(), 2U);
    EXPECT_EQ(table.lookup(*_engine, pids[1].data()), e1);
    EXPECT_EQ(table.derivations(), 2U);

    reference_sender_keys reference(algorithm::aes_gmac_256, group_key);
    for (const auto* entry : {e, e1}) {
        const auto expected = reference.sign(entry->port_identity, _msg, 42);
        EXPECT_EQ(entry->salt, expected.salt);
        EXPECT_EQ(sign_with(*_engine, *entry, _msg, 42), expected.icv);
    }
}

TEST_P(gmac_sender_keys_test, same_sender_same_key_across_tables_and_engines) {
    // A receiver rebuilds the sender's subkey on its own engine: both tables
    // must agree, whichever engine each runs on.
    const bytes group_key = random_bytes(_rng, 16);
    auto mine = gmac_sender_keys::create(*_engine, algorithm::aes_gmac_128, group_key);
    ipsecmb_engine other_engine;
    auto theirs = gmac_sender_keys::create(other_engine, algorithm::aes_gmac_128, group_key, 16);
    ASSERT_TRUE(mine && theirs);
    const auto pids = distinct_port_identities(_rng, 2);
    const auto* a = (*mine)->lookup(*_engine, pids[0].data());
    const auto* b = (*theirs)->lookup(other_engine, pids[0].data());
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(a->salt, b->salt);
    EXPECT_EQ(sign_with(*_engine, *a, _msg, 7), sign_with(other_engine, *b, _msg, 7));

    const auto* c = (*theirs)->lookup(other_engine, pids[1].data());
    ASSERT_NE(c, nullptr);
    EXPECT_NE(c->salt, a->salt);
    EXPECT_NE(sign_with(other_engine, *c, _msg, 7), sign_with(*_engine, *a, _msg, 7));
}

TEST_P(gmac_sender_keys_test, derives_with_the_callers_engine_not_the_one_that_made_it) {
    // In the data plane the service path makes a key's table with its own
    // engine and the PTP worker derives subkeys on another lcore. The table
    // must use the worker's engine: here the maker is gone before the first
    // derivation (the sanitizer build reports any use of it), and the
    // subkeys must still be the senders' own.
    const bytes group_key = random_bytes(_rng, 32);
    auto maker = make_engine(GetParam());
    auto keys = gmac_sender_keys::create(*maker, algorithm::aes_gmac_256, group_key, 8);
    ASSERT_TRUE(keys) << keys.message();
    maker.reset();
    reference_sender_keys reference(algorithm::aes_gmac_256, group_key);
    for (const auto& pid : distinct_port_identities(_rng, 20)) {
        const auto* e = (*keys)->lookup(*_engine, pid.data());
        ASSERT_NE(e, nullptr);
        const auto expected = reference.sign(pid, _msg, 9);
        EXPECT_EQ(e->salt, expected.salt);
        EXPECT_EQ(sign_with(*_engine, *e, _msg, 9), expected.icv);
    }
    EXPECT_EQ((*keys)->derivations(), 20U);
}

TEST_P(gmac_sender_keys_test, derives_right_while_the_maker_engine_is_busy_on_another_thread) {
    // The race this guards against: the service lcore installs keys with its
    // engine (HKDF-Extract, key expansion) while the worker derives the
    // subkeys of new senders. Each thread uses only its own engine, so every
    // subkey comes out right however the two interleave.
    const bytes group_key = random_bytes(_rng, 16);
    auto maker = make_engine(GetParam());
    auto keys = gmac_sender_keys::create(*maker, algorithm::aes_gmac_128, group_key, 16);
    ASSERT_TRUE(keys) << keys.message();
    const auto pids = distinct_port_identities(_rng, 400);
    reference_sender_keys reference(algorithm::aes_gmac_128, group_key);
    std::vector<reference_sender_keys::expected> expected;
    expected.reserve(pids.size());
    for (const auto& pid : pids) {
        expected.push_back(reference.sign(pid, _msg, 3));
    }
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> installs{0};
    std::thread service([&] {
        std::mt19937_64 rng(7);
        while (!stop.load(std::memory_order_relaxed)) {
            // What apply_update does for a GMAC key pushed live.
            auto other = gmac_sender_keys::create(*maker, algorithm::aes_gmac_256, random_bytes(rng, 32), 8);
            if (other) {
                installs.fetch_add(1, std::memory_order_relaxed);
            }
        }
    });
    // Derive only once the other thread is installing, and until it has
    // installed a few keys meanwhile (at least five rounds of 400 senders
    // through 16 slots, every lookup a derivation), however the scheduler
    // or a sanitizer paces the two.
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         installs.load() == 0 && std::chrono::steady_clock::now() < deadline;) {
        std::this_thread::yield();
    }
    const uint64_t before = installs.load();
    size_t wrong = 0;
    for (int round = 0; before != 0 && round < 100000 && (round < 5 || installs.load() < before + 3); ++round) {
        for (size_t i = 0; i < pids.size(); ++i) {
            const auto* e = (*keys)->lookup(*_engine, pids[i].data());
            if (e == nullptr || e->salt != expected[i].salt || sign_with(*_engine, *e, _msg, 3) != expected[i].icv) {
                ++wrong;
            }
        }
    }
    const uint64_t during = installs.load() - before;
    stop.store(true);
    service.join();
    EXPECT_EQ(wrong, 0U) << "subkeys derived wrong while the maker engine was in use";
    EXPECT_GE(during, 3U) << "the other thread did not install keys while subkeys were derived";
}

TEST_P(gmac_sender_keys_test, unconfirmed_derivations_never_replace_confirmed_senders) {
    // Capacity 8 is one probe window: the whole table. Eight confirmed
    // senders fill it; a thousand unconfirmed newcomers go to the scratch
    // entry one after another, and the eight are still found, unchanged.
    const bytes group_key = random_bytes(_rng, 16);
    auto keys = gmac_sender_keys::create(*_engine, algorithm::aes_gmac_128, group_key, 8);
    ASSERT_TRUE(keys) << keys.message();
    auto& table = **keys;
    const auto pids = distinct_port_identities(_rng, 1008);
    for (size_t i = 0; i < 8; ++i) {
        const auto* e = table.lookup(*_engine, pids[i].data());
        ASSERT_NE(e, nullptr);
        EXPECT_FALSE(e->confirmed);
        const auto* c = table.confirm(e, pids[i].data());
        ASSERT_EQ(c, e) << "a table entry is confirmed where it is";
        EXPECT_TRUE(c->confirmed);
    }
    for (size_t i = 8; i < pids.size(); ++i) {
        const auto* e = table.lookup(*_engine, pids[i].data());
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(e->port_identity, pids[i]);
        EXPECT_FALSE(e->confirmed);
        EXPECT_EQ(table.find(pids[i].data()), e) << "the scratch entry is found until the next derivation";
    }
    EXPECT_EQ(table.scratch_derivations(), 1000U);
    reference_sender_keys reference(algorithm::aes_gmac_128, group_key);
    for (size_t i = 0; i < 8; ++i) {
        const auto* e = table.find(pids[i].data());
        ASSERT_NE(e, nullptr) << "confirmed sender " << i << " was pushed out";
        EXPECT_TRUE(e->confirmed);
        EXPECT_EQ(sign_with(*_engine, *e, _msg, 5), reference.sign(pids[i], _msg, 5).icv);
    }
    EXPECT_EQ(table.find(pids[8].data()), nullptr) << "the scratch entry holds only the last one";
}

TEST_P(gmac_sender_keys_test, a_confirmed_newcomer_moves_into_the_table_and_unconfirmed_go_first) {
    const bytes group_key = random_bytes(_rng, 32);
    auto keys = gmac_sender_keys::create(*_engine, algorithm::aes_gmac_256, group_key, 8);
    ASSERT_TRUE(keys) << keys.message();
    auto& table = **keys;
    const auto pids = distinct_port_identities(_rng, 10);
    // Seven confirmed, one not.
    for (size_t i = 0; i < 8; ++i) {
        const auto* e = table.lookup(*_engine, pids[i].data());
        ASSERT_NE(e, nullptr);
        if (i != 3) {
            ASSERT_NE(table.confirm(e, pids[i].data()), nullptr);
        }
    }
    // A newcomer takes the unconfirmed slot, not the scratch entry.
    const auto* n8 = table.lookup(*_engine, pids[8].data());
    ASSERT_NE(n8, nullptr);
    EXPECT_EQ(table.scratch_derivations(), 0U);
    EXPECT_EQ(table.find(pids[3].data()), nullptr) << "the unconfirmed sender made room";
    ASSERT_NE(table.confirm(n8, pids[8].data()), nullptr);
    // The table is all confirmed now: the next one goes to scratch ...
    const auto* n9 = table.lookup(*_engine, pids[9].data());
    ASSERT_NE(n9, nullptr);
    EXPECT_EQ(table.scratch_derivations(), 1U);
    // ... and confirming it with another sender's identity changes nothing.
    EXPECT_EQ(table.confirm(n9, pids[0].data()), nullptr);
    // Confirmed, it moves into the table, in place of one earlier sender.
    const auto* moved = table.confirm(n9, pids[9].data());
    ASSERT_NE(moved, nullptr);
    EXPECT_NE(moved, n9);
    EXPECT_TRUE(moved->confirmed);
    EXPECT_EQ(table.find(pids[9].data()), moved);
    size_t still_there = 0;
    for (size_t i = 0; i < 9; ++i) {
        still_there += i != 3 && table.find(pids[i].data()) != nullptr ? 1 : 0;
    }
    EXPECT_EQ(still_there, 7U) << "exactly one earlier sender made room";
    reference_sender_keys reference(algorithm::aes_gmac_256, group_key);
    const auto expected = reference.sign(pids[9], _msg, 11);
    EXPECT_EQ(moved->salt, expected.salt);
    EXPECT_EQ(sign_with(*_engine, *moved, _msg, 11), expected.icv);
    // The evicted sender is simply derived again.
    for (size_t i = 0; i < 9; ++i) {
        const auto* e = table.lookup(*_engine, pids[i].data());
        ASSERT_NE(e, nullptr);
        EXPECT_EQ(sign_with(*_engine, *e, _msg, 11), reference.sign(pids[i], _msg, 11).icv) << i;
    }
}

TEST_P(gmac_sender_keys_test, a_thousand_senders_through_small_and_large_tables) {
    // Far more senders than slots evicts constantly; a table larger than the
    // population mostly fits. Either way every lookup must give the sender's
    // own key, and derivations() must count exactly the misses.
    constexpr size_t senders = 1000;
    constexpr uint64_t iv = 0x0102030405060708ULL;
    const auto pids = distinct_port_identities(_rng, senders);
    for (const auto alg : gmac_algorithms) {
        const bytes group_key = random_bytes(_rng, info(alg).key_len);
        reference_sender_keys reference(alg, group_key);
        std::vector<reference_sender_keys::expected> expected;
        expected.reserve(senders);
        for (const auto& pid : pids) {
            expected.push_back(reference.sign(pid, _msg, iv));
        }
        for (const size_t capacity : {size_t{64}, size_t{2048}}) {
            SCOPED_TRACE(std::string(info(alg).name) + ", capacity " + std::to_string(capacity));
            auto keys = gmac_sender_keys::create(*_engine, alg, group_key, capacity);
            ASSERT_TRUE(keys) << keys.message();
            auto& table = **keys;
            uint64_t misses = 0;
            std::vector<size_t> order(senders);
            for (int round = 0; round < 3; ++round) {
                std::iota(order.begin(), order.end(), 0);
                std::shuffle(order.begin(), order.end(), _rng);
                for (const size_t i : order) {
                    const auto* found = table.find(pids[i].data());
                    if (found != nullptr) {
                        ASSERT_EQ(found->port_identity, pids[i]) << "find() returned another sender's entry";
                    } else {
                        ++misses;
                    }
                    const auto* e = table.lookup(*_engine, pids[i].data());
                    ASSERT_NE(e, nullptr);
                    ASSERT_EQ(e->port_identity, pids[i]);
                    ASSERT_EQ(e->salt, expected[i].salt) << "sender " << i;
                    ASSERT_EQ(sign_with(*_engine, *e, _msg, iv), expected[i].icv) << "sender " << i;
                    ASSERT_EQ(table.derivations(), misses);
                }
            }
            EXPECT_GE(misses, senders);
            if (capacity == 64) {
                EXPECT_GT(misses, senders) << "64 slots cannot hold 1000 senders";
            }
        }
    }
}

INSTANTIATE_TEST_SUITE_P(engines, gmac_sender_keys_test, testing::Values(engine_kind::ipsecmb, engine_kind::openssl),
                         engine_label);

TEST(gmac_nonce, is_salt_then_big_endian_iv) {
    // RFC 4543 §3.1 (and RFC 4106 §4): nonce = salt (4) || IV (8); our IV
    // travels big endian in sequenceNo.
    const std::array<uint8_t, gmac_salt_len> salt = {0xde, 0xad, 0xbe, 0xef};
    std::array<uint8_t, gmac_nonce_len> nonce{};
    make_gmac_nonce(salt.data(), 0x0102030405060708ULL, nonce.data());
    EXPECT_EQ(nonce, (std::array<uint8_t, gmac_nonce_len>{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8}));
    EXPECT_EQ(load_be64(nonce.data() + gmac_salt_len), 0x0102030405060708ULL);
}

TEST(gmac_iv_counter, counts_up_from_its_start) {
    gmac_iv_counter c(1000);
    EXPECT_EQ(c.peek(), 1000U);
    EXPECT_EQ(c.next(), 1000U);
    EXPECT_EQ(c.next(), 1001U);
    EXPECT_EQ(c.peek(), 1002U);
}

TEST(gmac_iv_counter, clock_start_is_nanoseconds_and_moves) {
    // CLOCK_TAI in ns: after 2020-01-01 (1.5e18 ns) and strictly increasing
    // between two calls that a restart separates.
    const uint64_t a = gmac_iv_counter::clock_start();
    EXPECT_GT(a, 1577836800ULL * 1000000000ULL);
    uint64_t b = gmac_iv_counter::clock_start();
    for (int i = 0; i < 1000 && b == a; ++i) {
        b = gmac_iv_counter::clock_start();
    }
    EXPECT_GT(b, a);
}

TEST(gmac_iv_scheme, no_iv_repeats_under_a_key_across_senders_and_restarts) {
    // 50 senders share one group key; each restarts 3 times, immediately,
    // and signs a burst of messages per instance. A (subkey, salt, IV)
    // triple must never repeat, and a restarted counter must start above
    // the last IV of the instance before it.
    constexpr size_t senders = 50;
    constexpr int restarts = 3;
    constexpr size_t per_instance = 512;
    constexpr uint16_t burst = 32;
    std::mt19937_64 rng(0x72657374617274ULL);
    ipsecmb_engine eng;
    const bytes msg(64, 0x5a);
    for (const auto alg : gmac_algorithms) {
        SCOPED_TRACE(std::string(info(alg).name));
        const bytes group_key = random_bytes(rng, info(alg).key_len);
        auto kdf = gmac_kdf::create(eng, alg, group_key);
        auto keys = gmac_sender_keys::create(eng, alg, group_key, senders);
        ASSERT_TRUE(kdf && keys);
        // Subkey || salt || IV, one per signed message.
        std::vector<bytes> used;
        for (const auto& pid : distinct_port_identities(rng, senders)) {
            const bytes subkey = derive(eng, *kdf, pid);
            uint64_t last_iv = 0;
            for (int r = 0; r < restarts; ++r) {
                gmac_iv_counter counter(gmac_iv_counter::clock_start());
                const auto* e = (*keys)->lookup(eng, pid.data());
                ASSERT_NE(e, nullptr);
                // The record names the subkey the table really signs with.
                ASSERT_TRUE(std::equal(e->salt.begin(), e->salt.end(), subkey.end() - gmac_salt_len));
                std::array<std::array<uint8_t, gmac_nonce_len>, burst> nonces{};
                std::array<std::array<uint8_t, 16>, burst> icvs{};
                std::array<mac_request, burst> reqs{};
                for (size_t signed_count = 0; signed_count < per_instance; signed_count += burst) {
                    for (uint16_t j = 0; j < burst; ++j) {
                        const uint64_t iv = counter.next();
                        if (signed_count == 0 && j == 0 && r > 0) {
                            EXPECT_GT(iv, last_iv) << "restart " << r << " reused the IV range of the one before";
                        }
                        last_iv = iv;
                        make_gmac_nonce(e->salt.data(), iv, nonces[j].data());
                        reqs[j] = {e->key.get(), msg.data(), static_cast<uint32_t>(msg.size()), nonces[j].data(),
                                   icvs[j].data()};
                        bytes record = subkey;
                        record.insert(record.end(), nonces[j].begin() + gmac_salt_len, nonces[j].end());
                        used.push_back(std::move(record));
                    }
                    ASSERT_EQ(eng.compute_burst(reqs.data(), burst), burst);
                }
            }
        }
        ASSERT_EQ(used.size(), senders * restarts * per_instance);
        std::sort(used.begin(), used.end());
        const auto dup = std::adjacent_find(used.begin(), used.end());
        EXPECT_EQ(dup, used.end()) << "an IV repeated under one subkey";
    }
}

TEST(gmac_iv_counter, two_threads_never_draw_the_same_iv) {
    // Lcores sharing a key draw from one counter (gmac.h): 2 x 200,000 draws
    // at once must be 400,000 distinct IVs, exactly the range consumed.
    constexpr size_t draws = 200000;
    const uint64_t start = gmac_iv_counter::clock_start();
    gmac_iv_counter counter(start);
    std::array<std::vector<uint64_t>, 2> got;
    std::atomic<int> ready{0};
    auto draw = [&](std::vector<uint64_t>& out) {
        out.reserve(draws);
        ready.fetch_add(1);
        while (ready.load() < 2) {
            // Start together so the draws interleave.
        }
        for (size_t i = 0; i < draws; ++i) {
            out.push_back(counter.next());
        }
    };
    std::thread t0(draw, std::ref(got[0]));
    std::thread t1(draw, std::ref(got[1]));
    t0.join();
    t1.join();
    std::vector<uint64_t> all = got[0];
    all.insert(all.end(), got[1].begin(), got[1].end());
    std::sort(all.begin(), all.end());
    EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end()) << "an IV was drawn twice";
    EXPECT_EQ(all.front(), start);
    EXPECT_EQ(all.back(), start + 2 * draws - 1);
    EXPECT_EQ(counter.peek(), start + 2 * draws);
    // Each thread sees its own draws in increasing order.
    for (const auto& g : got) {
        EXPECT_TRUE(std::is_sorted(g.begin(), g.end()));
    }
}

} // namespace
} // namespace ptpsec::icv
