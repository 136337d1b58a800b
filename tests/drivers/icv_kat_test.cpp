// Known-answer tests for every ICV engine and every intel-ipsec-mb manager:
// the published vectors of each algorithm of drivers/icv/algorithm.h.
//
// Sources (each vector below names its own):
//   HMAC-SHA256   RFC 4231 §4.2-§4.8, test cases 1-7.
//   AES-CMAC-128  RFC 4493 §4, examples 1-4.
//   AES-CMAC-256  NIST SP 800-38B Appendix D.3, examples 9-12.
//   AES-GMAC      GMAC is GCM with an empty plaintext (NIST SP 800-38D §3,
//                 RFC 4543 §3): McGrew-Viega GCM specification test cases 1,
//                 7 and 13; NIST CAVP gcmEncryptExtIV{128,192,256}.rsp
//                 (IVlen 96, PTlen 0, AADlen 128, Count 0); OpenSSL
//                 test/recipes/30-test_evp_data/evpmac_common.txt "GMAC
//                 Tests" (NIST, and IEEE 802.1AE bn-randall-test-vectors).

#include "eal_session.h"
#include "hex.h"

#include <drivers/icv/cryptodev_engine.h>
#include <drivers/icv/engine.h>
#include <drivers/icv/ipsecmb_engine.h>
#include <drivers/icv/openssl_engine.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::icv {
namespace {

using test::bytes;
using test::from_hex;

bytes from_text(std::string_view text) {
    return bytes(text.begin(), text.end());
}

bytes repeat(uint8_t octet, size_t n) {
    return bytes(n, octet);
}

struct mac_vector {
    std::string source;
    algorithm alg;
    bytes key;
    bytes msg;
    /// GMAC: the 96-bit IV, which is our whole nonce (salt || IV).
    bytes nonce;
    /// Expected ICV; for HMAC-SHA256-128 the published 128-bit truncation.
    bytes icv;
};

std::vector<mac_vector> hmac_vectors() {
    // RFC 4231 §4.2-§4.8. Cases 6 and 7 use a 131-octet key, longer than the
    // SHA-256 block, which HMAC hashes first (RFC 2104 §2).
    const bytes key_4 = from_hex("0102030405060708090a0b0c0d0e0f10111213141516171819");
    return {
        {"RFC 4231 §4.2 test case 1",
         algorithm::hmac_sha256,
         repeat(0x0b, 20),
         from_text("Hi There"),
         {},
         from_hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")},
        {"RFC 4231 §4.3 test case 2",
         algorithm::hmac_sha256,
         from_text("Jefe"),
         from_text("what do ya want for nothing?"),
         {},
         from_hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")},
        {"RFC 4231 §4.4 test case 3",
         algorithm::hmac_sha256,
         repeat(0xaa, 20),
         repeat(0xdd, 50),
         {},
         from_hex("773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe")},
        {"RFC 4231 §4.5 test case 4",
         algorithm::hmac_sha256,
         key_4,
         repeat(0xcd, 50),
         {},
         from_hex("82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b")},
        {"RFC 4231 §4.6 test case 5 (truncated to 128 bits)",
         algorithm::hmac_sha256_128,
         repeat(0x0c, 20),
         from_text("Test With Truncation"),
         {},
         from_hex("a3b6167473100ee06e0c796c2955552b")},
        {"RFC 4231 §4.7 test case 6",
         algorithm::hmac_sha256,
         repeat(0xaa, 131),
         from_text("Test Using Larger Than Block-Size Key - Hash Key First"),
         {},
         from_hex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")},
        {"RFC 4231 §4.8 test case 7",
         algorithm::hmac_sha256,
         repeat(0xaa, 131),
         from_text("This is a test using a larger than block-size key and a larger than block-size data. The key "
                   "needs to be hashed before being used by the HMAC algorithm."),
         {},
         from_hex("9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2")},
    };
}

std::vector<mac_vector> cmac_vectors() {
    // RFC 4493 §4 and NIST SP 800-38B Appendix D.3 use the same 64-octet
    // message and take its first 0, 16, 40 and 64 octets. Length 0 is the
    // case where the last block is the padding alone (RFC 4493 §2.4 step 3).
    const bytes m = from_hex("6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51"
                             "30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710");
    const auto prefix = [&m](size_t n) { return bytes(m.begin(), m.begin() + static_cast<ptrdiff_t>(n)); };
    const bytes k128 = from_hex("2b7e151628aed2a6abf7158809cf4f3c");
    const bytes k256 = from_hex("603deb1015ca71be2b73aef0857d7781 1f352c073b6108d72d9810a30914dff4");
    return {
        {"RFC 4493 §4 example 1 (len 0)",
         algorithm::aes_cmac_128,
         k128,
         prefix(0),
         {},
         from_hex("bb1d6929e95937287fa37d129b756746")},
        {"RFC 4493 §4 example 2 (len 16)",
         algorithm::aes_cmac_128,
         k128,
         prefix(16),
         {},
         from_hex("070a16b46b4d4144f79bdd9dd04a287c")},
        {"RFC 4493 §4 example 3 (len 40)",
         algorithm::aes_cmac_128,
         k128,
         prefix(40),
         {},
         from_hex("dfa66747de9ae63030ca32611497c827")},
        {"RFC 4493 §4 example 4 (len 64)",
         algorithm::aes_cmac_128,
         k128,
         prefix(64),
         {},
         from_hex("51f0bebf7e3b9d92fc49741779363cfe")},
        {"SP 800-38B D.3 example 9 (Mlen 0)",
         algorithm::aes_cmac_256,
         k256,
         prefix(0),
         {},
         from_hex("028962f61b7bf89efc6b551f4667d983")},
        {"SP 800-38B D.3 example 10 (Mlen 128)",
         algorithm::aes_cmac_256,
         k256,
         prefix(16),
         {},
         from_hex("28a7023f452e8f82bd4bf28d8c37c35c")},
        {"SP 800-38B D.3 example 11 (Mlen 320)",
         algorithm::aes_cmac_256,
         k256,
         prefix(40),
         {},
         from_hex("aaf3d8f1de5640c232f5b169b9c911e6")},
        {"SP 800-38B D.3 example 12 (Mlen 512)",
         algorithm::aes_cmac_256,
         k256,
         prefix(64),
         {},
         from_hex("e1992190549f6ed5696a2c056c315410")},
    };
}

std::vector<mac_vector> gmac_vectors() {
    // GMAC authenticates the message as GCM additional data with an empty
    // plaintext (SP 800-38D §3), so a GCM vector with P empty and a 96-bit IV
    // is a GMAC vector with msg = A and ICV = T.
    const bytes zero_iv = repeat(0, 12);
    const bytes ieee_msg_1 = from_hex("D609B1F056637A0D46DF998D88E5222AB2C2846512153524C0895E8108000F10111213"
                                      "1415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F30313233340001");
    const bytes ieee_msg_2 = from_hex("E20106D7CD0DF0761E8DCD3D88E5400076D457ED08000F101112131415161718191A1B"
                                      "1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435363738393A0003");
    const bytes ieee_msg_3 = from_hex("84C5D513D2AAF6E5BBD2727788E523008932D6127CFDE9F9E33724C608000F101112"
                                      "131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F30313233343536"
                                      "3738393A3B3C3D3E3F0005");
    const bytes ieee_msg_4 = from_hex("68F2E77696CE7AE8E2CA4EC588E541002E58495C08000F101112131415161718191A1B"
                                      "1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F"
                                      "404142434445464748494A4B4C4D0007");
    return {
        {"GCM spec test case 1 (AES-128, empty)",
         algorithm::aes_gmac_128,
         repeat(0, 16),
         {},
         zero_iv,
         from_hex("58e2fccefa7e3061367f1d57a4e7455a")},
        {"GCM spec test case 7 (AES-192, empty)",
         algorithm::aes_gmac_192,
         repeat(0, 24),
         {},
         zero_iv,
         from_hex("cd33b28ac773f74ba00ed1f312572435")},
        {"GCM spec test case 13 (AES-256, empty)",
         algorithm::aes_gmac_256,
         repeat(0, 32),
         {},
         zero_iv,
         from_hex("530f8afbc74536b9a963b4f1c4cb738b")},
        {"CAVP gcmEncryptExtIV128 PTlen 0 AADlen 128 Count 0", algorithm::aes_gmac_128,
         from_hex("7d70d23248c47eb3d273df81ed3024bd"), from_hex("7d1d42e89460e944bfa483dbe692f08d"),
         from_hex("ab532333d67651208b8c3485"), from_hex("cf8950a310f5ab8b69d500111a44b096")},
        {"CAVP gcmEncryptExtIV192 PTlen 0 AADlen 128 Count 0", algorithm::aes_gmac_192,
         from_hex("036022fe269adcadb57311a4a0ed2a841834b8b6d8a07f41"), from_hex("adcf4fbba0e06a6370711a57f8dcd0c9"),
         from_hex("8565b2153a3f349a07310679"), from_hex("9021af4ca08d01ef825a42f9be3ab3e9")},
        {"CAVP gcmEncryptExtIV256 PTlen 0 AADlen 128 Count 0", algorithm::aes_gmac_256,
         from_hex("bb1010064fb83523ea9df32bad9f1f2a4fcefc0f2107c0aabad9b756d809219d"),
         from_hex("db98d90d1b695cdb747a343fbbc9f141"), from_hex("2f9ad012adfc127343fbe056"),
         from_hex("ef06d54dfd00021d7527dff26fc9d484")},
        {"OpenSSL evpmac_common GMAC (NIST)", algorithm::aes_gmac_128, from_hex("77BE63708971C4E240D1CB79E8D77FEB"),
         from_hex("7A43EC1D9C0A5A78A0B16533A6213CAB"), from_hex("E0E00F19FED7BA0136A797F3"),
         from_hex("209FCC8D3675ED938E9C7166709DD946")},
        {"IEEE 802.1AE 54-octet frame, AES-128", algorithm::aes_gmac_128, from_hex("AD7A2BD03EAC835A6F620FDCB506B345"),
         ieee_msg_1, from_hex("12153524C0895E81B2C28465"), from_hex("F09478A9B09007D06F46E9B6A1DA25DD")},
        {"IEEE 802.1AE 54-octet frame, AES-256", algorithm::aes_gmac_256,
         from_hex("E3C08A8F06C6E3AD95A70557B23F75483CE33021A9C72B7025666204C69C0B72"), ieee_msg_1,
         from_hex("12153524C0895E81B2C28465"), from_hex("2F0BC5AF409E06D609EA8B7D0FA5EA50")},
        {"IEEE 802.1AE 60-octet frame, AES-128", algorithm::aes_gmac_128, from_hex("071B113B0CA743FECCCF3D051F737382"),
         ieee_msg_2, from_hex("F0761E8DCD3D000176D457ED"), from_hex("0C017BC73B227DFCC9BAFA1C41ACC353")},
        {"IEEE 802.1AE 60-octet frame, AES-256", algorithm::aes_gmac_256,
         from_hex("691D3EE909D7F54167FD1CA0B5D769081F2BDE1AEE655FDBAB80BD5295AE6BE7"), ieee_msg_2,
         from_hex("F0761E8DCD3D000176D457ED"), from_hex("35217C774BBC31B63166BCF9D4ABED07")},
        {"IEEE 802.1AE 65-octet frame, AES-128", algorithm::aes_gmac_128, from_hex("013FE00B5F11BE7F866D0CBBC55A7A90"),
         ieee_msg_3, from_hex("7CFDE9F9E33724C68932D612"), from_hex("217867E50C2DAD74C28C3B50ABDF695A")},
        {"IEEE 802.1AE 65-octet frame, AES-256", algorithm::aes_gmac_256,
         from_hex("83C093B58DE7FFE1C0DA926AC43FB3609AC1C80FEE1B624497EF942E2F79A823"), ieee_msg_3,
         from_hex("7CFDE9F9E33724C68932D612"), from_hex("6EE160E8FAECA4B36C86B234920CA975")},
        {"IEEE 802.1AE 79-octet frame, AES-128", algorithm::aes_gmac_128, from_hex("88EE087FD95DA9FBF6725AA9D757B0CD"),
         ieee_msg_4, from_hex("7AE8E2CA4EC500012E58495C"), from_hex("07922B8EBCF10BB2297588CA4C614523")},
        {"IEEE 802.1AE 79-octet frame, AES-256", algorithm::aes_gmac_256,
         from_hex("4C973DBC7364621674F8B5B89E5C15511FCED9216490FB1C1A2CAA0FFE0407E5"), ieee_msg_4,
         from_hex("7AE8E2CA4EC500012E58495C"), from_hex("00BDA1B7E87608BCBF470F12157F4C07")},
    };
}

std::vector<mac_vector> all_vectors() {
    std::vector<mac_vector> v = hmac_vectors();
    for (auto* more : {cmac_vectors, gmac_vectors}) {
        auto add = more();
        v.insert(v.end(), add.begin(), add.end());
    }
    return v;
}

/// Which engine a test runs on. The uniform plans put every algorithm on one
/// intel-ipsec-mb manager, so each manager's code path meets every vector.
/// The cryptodev engines run on DPDK's software crypto PMDs.
struct engine_config {
    std::string label;
    enum class kind : uint8_t { ipsecmb_default, ipsecmb_uniform, openssl, cryptodev } which;
    imb_arch arch = imb_arch::sse;
    std::string device = {};
};

std::vector<engine_config> engine_configs() {
    std::vector<engine_config> c;
    c.push_back({"ipsecmb_default", engine_config::kind::ipsecmb_default});
    for (auto a : {imb_arch::sse, imb_arch::avx, imb_arch::avx2, imb_arch::avx512}) {
        c.push_back({"ipsecmb_" + std::string(arch_name(a)), engine_config::kind::ipsecmb_uniform, a});
    }
    c.push_back({"openssl", engine_config::kind::openssl});
    c.push_back({"cryptodev_aesni_mb", engine_config::kind::cryptodev, imb_arch::sse, "crypto_aesni_mb0"});
    c.push_back({"cryptodev_openssl", engine_config::kind::cryptodev, imb_arch::sse, "crypto_openssl0"});
    return c;
}

// GoogleTest finds its value printer by this exact name.
void PrintTo(const engine_config& c, std::ostream* os) { // NOLINT(readability-identifier-naming)
    *os << c.label;
}

class icv_kat : public testing::TestWithParam<engine_config> {
protected:
    void SetUp() override {
        const engine_config& c = GetParam();
        switch (c.which) {
        case engine_config::kind::ipsecmb_default:
            _engine = std::make_unique<ipsecmb_engine>();
            break;
        case engine_config::kind::ipsecmb_uniform:
            if (!arch_supported(c.arch)) {
                GTEST_SKIP() << "this CPU cannot run the intel-ipsec-mb " << arch_name(c.arch) << " manager";
            }
            _engine = std::make_unique<ipsecmb_engine>(uniform_arch_plan(c.arch));
            break;
        case engine_config::kind::openssl:
            _engine = std::make_unique<openssl_engine>();
            break;
        case engine_config::kind::cryptodev: {
            const std::string& why = ptpsec::test::eal_session::start();
            ASSERT_TRUE(why.empty()) << why;
            auto dev = crypto_device::open(c.device, {});
            ASSERT_TRUE(dev) << dev.message();
            _device = *dev;
            auto e = cryptodev_engine::create(*dev, 0);
            ASSERT_TRUE(e) << e.message();
            _engine = std::move(e).value();
            break;
        }
        }
    }

    /// True if the engine computes `alg` with this key length. A crypto
    /// device may lack one (crypto_aesni_mb has no AES-CMAC-256): then its
    /// refusal must name the device and what it lacks.
    bool supported(algorithm alg, size_t key_len) {
        if (_device == nullptr || _device->supports(alg, key_len)) {
            return true;
        }
        auto k = _engine->prepare(alg, bytes(key_len, 0x11));
        EXPECT_FALSE(k);
        EXPECT_THAT(k.message(), testing::HasSubstr(_device->name()));
        EXPECT_THAT(k.message(), testing::HasSubstr(std::string(info(alg).name)));
        return false;
    }

    /// Computes one vector's ICV into a buffer with guard octets on both
    /// sides, and checks the engine wrote exactly icv_len octets.
    void check_vector(const mac_vector& v) {
        SCOPED_TRACE(v.source + " on " + std::string(_engine->name()));
        if (!supported(v.alg, v.key.size())) {
            return;
        }
        auto key = _engine->prepare(v.alg, v.key);
        ASSERT_TRUE(key) << key.message();
        const size_t icv_len = icv_length(v.alg);
        ASSERT_LE(v.icv.size(), icv_len);

        constexpr size_t guard = 16;
        constexpr uint8_t fill = 0xa5;
        std::array<uint8_t, guard + max_icv_len + guard> out{};
        out.fill(fill);
        ASSERT_TRUE(_engine->compute_one(**key, v.msg, v.nonce.empty() ? nullptr : v.nonce.data(), out.data() + guard));
        const bytes got(out.begin() + guard, out.begin() + guard + static_cast<ptrdiff_t>(v.icv.size()));
        EXPECT_EQ(got, v.icv);
        for (size_t i = 0; i < guard; ++i) {
            EXPECT_EQ(out[i], fill) << "octet written before the ICV at " << i;
        }
        for (size_t i = guard + icv_len; i < out.size(); ++i) {
            EXPECT_EQ(out[i], fill) << "octet written past the " << icv_len << "-octet ICV at " << i - guard;
        }
    }

    std::unique_ptr<engine> _engine;
    std::shared_ptr<crypto_device> _device; ///< the cryptodev engines' device
};

TEST_P(icv_kat, hmac_sha256_rfc4231) {
    for (const auto& v : hmac_vectors()) {
        check_vector(v);
    }
}

TEST_P(icv_kat, hmac_sha256_128_is_the_truncation_of_every_rfc4231_case) {
    // RFC 4231 §4.6 publishes the 128-bit truncation for case 5 only; RFC
    // 2104 §5 defines truncation as the leftmost octets, so every case's
    // HMAC-SHA256-128 is the first 16 octets of its full result.
    for (auto v : hmac_vectors()) {
        v.alg = algorithm::hmac_sha256_128;
        v.icv.resize(16);
        v.source += " via hmac-sha256-128";
        check_vector(v);
    }
}

TEST_P(icv_kat, aes_cmac_rfc4493_and_sp800_38b) {
    for (const auto& v : cmac_vectors()) {
        check_vector(v);
    }
}

TEST_P(icv_kat, aes_gmac_gcm_vectors_with_empty_plaintext) {
    for (const auto& v : gmac_vectors()) {
        check_vector(v);
    }
}

TEST_P(icv_kat, every_vector_in_one_mixed_burst) {
    // The fast path hands the engine bursts that mix algorithms; the ipsec-mb
    // engine groups them by path, so results must land in the right slots.
    // Two rounds, the second reversed, so each vector sits in both halves.
    auto vectors = all_vectors();
    std::erase_if(vectors, [&](const mac_vector& v) { return !supported(v.alg, v.key.size()); });
    std::vector<key_handle> keys;
    for (const auto& v : vectors) {
        auto k = _engine->prepare(v.alg, v.key);
        ASSERT_TRUE(k) << v.source << ": " << k.message();
        keys.push_back(std::move(k).value());
    }
    for (const bool reversed : {false, true}) {
        std::vector<std::array<uint8_t, max_icv_len>> out(vectors.size());
        std::vector<mac_request> reqs;
        for (size_t j = 0; j < vectors.size(); ++j) {
            const size_t i = reversed ? vectors.size() - 1 - j : j;
            const auto& v = vectors[i];
            reqs.push_back({keys[i].get(), v.msg.data(), static_cast<uint32_t>(v.msg.size()),
                            v.nonce.empty() ? nullptr : v.nonce.data(), out[i].data()});
        }
        ASSERT_EQ(_engine->compute_burst(reqs.data(), static_cast<uint16_t>(reqs.size())), reqs.size());
        for (size_t i = 0; i < vectors.size(); ++i) {
            const bytes got(out[i].begin(), out[i].begin() + static_cast<ptrdiff_t>(vectors[i].icv.size()));
            EXPECT_EQ(got, vectors[i].icv) << vectors[i].source << (reversed ? " (reversed burst)" : "");
        }
    }
}

TEST_P(icv_kat, hmac_keys_up_to_max_key_len_are_accepted_and_longer_rejected) {
    // FIPS 198-1 §4: any key length is valid HMAC; ours is capped so that SA
    // files stay sane. The cap must admit RFC 4231's 131-octet keys.
    static_assert(max_key_len >= 131, "RFC 4231 test cases 6 and 7 use 131-octet keys");
    for (const auto alg : {algorithm::hmac_sha256_128, algorithm::hmac_sha256}) {
        EXPECT_TRUE(_engine->prepare(alg, repeat(0x5c, max_key_len)));
        auto too_long = _engine->prepare(alg, repeat(0x5c, max_key_len + 1));
        ASSERT_FALSE(too_long);
        EXPECT_THAT(too_long.message(), testing::HasSubstr(std::string(info(alg).name)));
        EXPECT_THAT(too_long.message(), testing::HasSubstr(std::to_string(max_key_len)));
    }
}

INSTANTIATE_TEST_SUITE_P(engines, icv_kat, testing::ValuesIn(engine_configs()),
                         [](const testing::TestParamInfo<engine_config>& p) { return p.param.label; });

} // namespace
} // namespace ptpsec::icv
