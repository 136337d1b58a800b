// icv::sha256_burst (drivers/icv/sha256_burst.h): the FIPS 180-4 example
// digests (NIST CSRC "Examples with Intermediate Values", SHA256.pdf and
// SHA2_Additional.pdf), then every length from 0 to 300 octets, in bursts
// longer and shorter than the library's, against OpenSSL, on every
// intel-ipsec-mb manager this CPU runs.

#include "hex.h"

#include <drivers/icv/sha256_burst.h>

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::icv {
namespace {

using test::bytes;
using test::from_hex;

bytes openssl_sha256(const bytes& m) {
    bytes d(sha256_digest_len);
    unsigned int len = 0;
    EXPECT_EQ(EVP_Digest(m.data(), m.size(), d.data(), &len, EVP_sha256(), nullptr), 1);
    return d;
}

std::vector<imb_arch> runnable_archs() {
    std::vector<imb_arch> out;
    for (auto a : {imb_arch::sse, imb_arch::avx, imb_arch::avx2, imb_arch::avx512}) {
        if (arch_supported(a)) {
            out.push_back(a);
        }
    }
    return out;
}

struct fips_example {
    std::string message;
    const char* digest;
};

const fips_example fips_examples[] = {
    {"abc", "ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61 d20638b8 e5c02693 0c3e6039 a33ce459 64ff2167 f6ecedd4 19db06c1"},
    {"", "e3b0c442 98fc1c14 9afbf4c8 996fb924 27ae41e4 649b934c a495991b 7852b855"},
    // SHA2_Additional: 1,000 octets of 0x41 ('A').
    {std::string(1000, 'A'), "c2e68682 3489ced2 017f6059 b8b23931 8b6364f6 dcd835d0 a519105a 1eadd6e4"},
};

TEST(sha256_burst, the_fips_180_examples_on_every_manager) {
    for (const imb_arch arch : runnable_archs()) {
        auto sha = sha256_burst::create(arch);
        ASSERT_TRUE(sha) << sha.message();
        std::vector<bytes> digests(std::size(fips_examples), bytes(sha256_digest_len));
        std::vector<sha256_input> in;
        for (size_t i = 0; i < std::size(fips_examples); ++i) {
            const std::string& m = fips_examples[i].message;
            in.push_back({reinterpret_cast<const uint8_t*>(m.data()), m.size(), digests[i].data()});
        }
        ASSERT_TRUE((*sha)->hash(in)) << arch_name(arch);
        for (size_t i = 0; i < std::size(fips_examples); ++i) {
            EXPECT_EQ(digests[i], from_hex(fips_examples[i].digest)) << arch_name(arch) << " example " << i;
        }
    }
}

TEST(sha256_burst, every_length_to_300_in_bursts_of_every_shape_matches_openssl) {
    bytes data(300);
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<uint8_t>(i * 131 + 7);
    }
    for (const imb_arch arch : runnable_archs()) {
        auto sha = sha256_burst::create(arch);
        ASSERT_TRUE(sha) << sha.message();
        // 301 messages: more than four bursts, the last one short; then the
        // same lengths one call each and 65 at a time (one past a burst).
        for (const size_t per_call : {size_t{301}, size_t{1}, size_t{sha256_burst::burst + 1}}) {
            std::vector<bytes> digests(data.size() + 1, bytes(sha256_digest_len));
            std::vector<sha256_input> in;
            for (size_t len = 0; len <= data.size(); ++len) {
                in.push_back({data.data(), len, digests[len].data()});
            }
            for (size_t at = 0; at < in.size(); at += per_call) {
                const size_t n = std::min(per_call, in.size() - at);
                ASSERT_TRUE((*sha)->hash({in.data() + at, n})) << arch_name(arch);
            }
            for (size_t len = 0; len <= data.size(); ++len) {
                ASSERT_EQ(digests[len], openssl_sha256(bytes(data.begin(), data.begin() + static_cast<ptrdiff_t>(len))))
                    << arch_name(arch) << ", " << len << " octets, " << per_call << " per call";
            }
        }
    }
}

TEST(sha256_burst, the_default_manager_runs_here_and_an_empty_list_is_nothing_to_do) {
    auto sha = sha256_burst::create();
    ASSERT_TRUE(sha) << sha.message();
    EXPECT_TRUE(arch_supported((*sha)->arch()));
    EXPECT_TRUE((*sha)->hash({}));
    const std::string& abc = fips_examples[0].message;
    bytes d(sha256_digest_len);
    const sha256_input one[] = {{reinterpret_cast<const uint8_t*>(abc.data()), abc.size(), d.data()}};
    ASSERT_TRUE((*sha)->hash(one));
    EXPECT_EQ(d, from_hex(fips_examples[0].digest));
}

} // namespace
} // namespace ptpsec::icv
