// Retired keys are wiped (docs/security.md, "Key compromise"): every heap
// block freed while the check is armed is searched for the test keys'
// octets, through a replacement of the global operator delete in this test
// program alone. A key whose bytes or AES schedule (its first round key is
// the key itself) reach free() unwiped is found, and so is an SA file's text
// or a key decoded from it. The sanitizer build keeps its own allocator and
// does not build this program.

#include "../process.h"

#include <control/sa_file.h>
#include <dataplane/sa.h>
#include <dataplane/sa_update.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <gtest/gtest.h>

#include <malloc.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <new>
#include <vector>

namespace {

constexpr uint8_t key_octet = 0xA7;
/// The octet of the SA-file tests' ASCII keys ('Q'), which the file's text
/// holds as they are.
constexpr uint8_t text_octet = 0x51;
constexpr size_t run_len = 16; ///< an AES-128 round key, or a key's first 16 octets

std::atomic<bool> armed{false};
std::atomic<size_t> unwiped{0};

void check_block(void* p) noexcept {
    if (p == nullptr || !armed.load(std::memory_order_relaxed)) {
        return;
    }
    const size_t n = malloc_usable_size(p);
    const auto* b = static_cast<const uint8_t*>(p);
    size_t run = 0; // of key_octet or text_octet, whichever b[i] is
    for (size_t i = 0; i < n; ++i) {
        const bool wanted = b[i] == key_octet || b[i] == text_octet;
        run = wanted && (run == 0 || b[i] == b[i - 1]) ? run + 1 : (wanted ? 1 : 0);
        if (run == run_len) {
            unwiped.fetch_add(1, std::memory_order_relaxed);
            return;
        }
    }
}

} // namespace

// The replacements below pair malloc with free whatever form of new and
// delete a caller uses; GCC, seeing them inlined into one caller, takes
// the pairs for mismatched.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

// The replacements: allocation as the default does it, and every free
// scanned first (the aligned forms too: an over-aligned key object comes
// back through them).
void* operator new(std::size_t n) {
    if (void* p = std::malloc(n != 0 ? n : 1)) {
        return p;
    }
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    return operator new(n);
}
void* operator new(std::size_t n, std::align_val_t a) {
    const auto align = static_cast<std::size_t>(a);
    if (void* p = std::aligned_alloc(align, std::max(align, (n + align - 1) / align * align))) {
        return p;
    }
    throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
    return operator new(n, a);
}
void operator delete(void* p) noexcept {
    check_block(p);
    std::free(p);
}
// Every other form frees the same way.
void operator delete[](void* p) noexcept {
    operator delete(p);
}
void operator delete(void* p, std::size_t) noexcept {
    operator delete(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    operator delete(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
    operator delete(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
    operator delete(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    operator delete(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    operator delete(p);
}

namespace ptpsec {
namespace {

/// Counts the blocks freed unwiped while `body` runs.
template <typename F>
size_t unwiped_during(F&& body) {
    unwiped = 0;
    armed = true;
    body();
    armed = false;
    return unwiped.load();
}

key_config test_key(uint32_t id, icv::algorithm alg) {
    key_config kc;
    kc.key_id = id;
    kc.alg = alg;
    kc.key = key_bytes(std::vector<uint8_t>(icv::info(alg).key_len == 0 ? 32 : icv::info(alg).key_len, key_octet));
    kc.origin = "test";
    return kc;
}

TEST(key_wipe, the_check_finds_a_key_freed_unwiped) {
    // Without this, a check that never fires would pass every test below.
    const size_t found = unwiped_during([] {
        auto* plain = new std::vector<uint8_t>(32, key_octet);
        delete plain;
    });
    EXPECT_EQ(found, 1U);
}

TEST(key_wipe, the_check_finds_sa_file_text_freed_unwiped) {
    const size_t found = unwiped_during([] {
        auto* text = new std::string(32, 'Q');
        delete text;
    });
    EXPECT_EQ(found, 1U);
}

TEST(key_wipe, key_bytes_are_wiped_when_they_go) {
    EXPECT_EQ(unwiped_during([] { (void)test_key(1, icv::algorithm::hmac_sha256); }), 0U);
}

TEST(key_wipe, a_removed_key_is_wiped_when_the_last_version_holding_it_goes) {
    // An AES-CMAC schedule holds the key itself as its first round key, so
    // an unwiped one is found here; HMAC pads and AES-GMAC subkeys are
    // functions of the key that this check cannot recognise, and go through
    // the same destructor (icv::key_handle). Each kind is built and retired.
    icv::ipsecmb_engine eng;
    for (const auto alg : {icv::algorithm::hmac_sha256_128, icv::algorithm::aes_cmac_128, icv::algorithm::aes_cmac_256,
                           icv::algorithm::aes_gmac_128, icv::algorithm::aes_gmac_256}) {
        SCOPED_TRACE(std::string(icv::info(alg).name));
        sa_config sa;
        sa.spp = 2;
        sa.keys.push_back(test_key(1, alg));
        sa.keys.push_back(test_key(2, icv::algorithm::hmac_sha256_128));
        auto db = sa_database::install(eng, std::vector<sa_config>{std::move(sa)});
        ASSERT_TRUE(db) << db.message();
        auto current = std::make_unique<sa_database>(std::move(db).value());
        ASSERT_NE(current->find(2)->find_key(1), nullptr);
        if (icv::is_gmac(alg)) {
            std::array<uint8_t, 10> sender{1, 2, 3, 4, 5, 6, 7, 8, 0, 1};
            ASSERT_NE(current->find(2)->find_key(1)->gmac->lookup(eng, sender.data()), nullptr);
        }
        sa_wire::update u;
        u.operation = static_cast<uint8_t>(sa_wire::op::remove_key);
        u.spp = 2;
        u.key_id = 1;
        auto applied = apply_update(*current, u, eng);
        ASSERT_TRUE(applied) << applied.message();
        ASSERT_NE(applied->next, nullptr);
        EXPECT_EQ(applied->next->find(2)->find_key(1), nullptr);
        // What the service path does once no worker can hold the old
        // version: drop it, and with it the last reference to the key.
        const size_t found = unwiped_during([&] { current.reset(); });
        EXPECT_EQ(found, 0U) << "a removed key reached free() unwiped";
        // The key the new version still holds goes the same way.
        EXPECT_EQ(unwiped_during([&] { applied->next.reset(); }), 0U);
    }
}

// A key pushed with a lifetime that runs out (expire_keys, the service
// path's look at deadlines) goes like a removed one.
TEST(key_wipe, an_expired_key_is_wiped_when_the_last_version_holding_it_goes) {
    icv::ipsecmb_engine eng;
    auto current = std::make_unique<sa_database>();
    sa_wire::update u;
    u.operation = static_cast<uint8_t>(sa_wire::op::add_key);
    u.spp = 2;
    u.key_id = 5;
    u.algorithm = static_cast<uint8_t>(icv::algorithm::aes_cmac_128);
    u.key_len = 16;
    std::memset(u.key, key_octet, u.key_len);
    u.lifetime_ms = 1000;
    constexpr uint64_t now_ns = 1'000'000'000;
    auto added = apply_update(*current, u, eng, now_ns);
    ASSERT_TRUE(added) << added.message();
    current = std::move(added->next);
    ASSERT_NE(current->find(2)->find_key(5), nullptr);
    EXPECT_FALSE(expire_keys(*current, now_ns + 999'000'000)) << "not yet";
    auto expired = expire_keys(*current, now_ns + 1'000'000'000);
    ASSERT_TRUE(expired);
    ASSERT_EQ(expired->retired.size(), 1U);
    EXPECT_EQ(expired->next->find(2)->find_key(5), nullptr);
    EXPECT_EQ(unwiped_during([&] { current.reset(); }), 0U) << "an expired key reached free() unwiped";
    EXPECT_EQ(unwiped_during([&] { expired->next.reset(); }), 0U);
}

// load_sa_file reads the file into a buffer it wipes, and wipes what it
// decoded on every error (docs/security.md): a good file, and one per error
// after a key was read, leave nothing behind once the result is gone.
TEST(key_wipe, an_sa_file_s_text_and_keys_are_wiped_after_the_parse_and_on_every_error) {
    const std::string q32(32, 'Q');
    const std::string q16(16, 'Q');
    std::string a7_hex;
    for (int i = 0; i < 32; ++i) {
        a7_hex += "A7";
    }
    // 32 octets of 0xA7 in Base64, with one '=' of padding: EVP_DecodeBlock
    // decodes 33 octets, and the one it counts for the '=' is dropped.
    const std::string a7_b64 = "p6enp6enp6enp6enp6enp6enp6enp6enp6enp6enp6c=";
    const std::string head = "[security_association]\nspp 2\n";
    struct sa_file_case {
        const char* name;
        std::string text;
        bool good;
    };
    const std::vector<sa_file_case> cases = {
        {"good", head + "1 SHA256-128 ASCII:" + q32 + "\n2 AES128 ASCII:" + q16 + "\n3 SHA256 HEX:" + a7_hex + "\n",
         true},
        {"base64 with padding", head + "1 SHA256 B64:" + a7_b64 + "\n", true},
        {"declared length differs", head + "1 SHA256-128 16 ASCII:" + q32 + "\n", false},
        {"wrong length for the algorithm", head + "1 AES128 ASCII:" + q32 + "\n", false},
        {"non-hex digit after the key", head + "1 SHA256 HEX:" + a7_hex.substr(0, 62) + "ZZ\n", false},
        {"an error after a good key", head + "1 SHA256-128 ASCII:" + q32 + "\n1 SHA256-128 ASCII:" + q32 + "\n", false},
    };
    const test::temp_dir dir;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const std::string path = dir.file("sa.conf");
        { std::ofstream(path) << c.text; }
        bool parsed = false;
        std::string why;
        const size_t found = unwiped_during([&] {
            auto r = load_sa_file(path);
            parsed = static_cast<bool>(r);
            if (!r) {
                why = r.message();
            }
        });
        EXPECT_EQ(parsed, c.good) << why;
        EXPECT_EQ(found, 0U) << "a key or the file's text reached free() unwiped";
    }
}

} // namespace
} // namespace ptpsec
