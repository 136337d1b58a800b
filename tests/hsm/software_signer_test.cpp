// The software signer (hsm/software_signer.h): key created 0600 and reused,
// signatures that verify, a counter that survives reopening and is never
// reset, and each refusal of a bad key or counter file.

#include <hsm/signature.h>
#include <hsm/software_signer.h>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <sys/stat.h>

namespace ptpsec::hsm {
namespace {

namespace fs = std::filesystem;

class temp_dir {
public:
    temp_dir() {
        std::string tmpl = (fs::temp_directory_path() / "ptpsec-swsigner-XXXXXX").string();
        const char* made = ::mkdtemp(tmpl.data());
        EXPECT_NE(made, nullptr);
        _path = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(_path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    temp_dir(temp_dir&&) = delete;
    temp_dir& operator=(temp_dir&&) = delete;
    const fs::path& path() const { return _path; }

private:
    fs::path _path;
};

void write_file(const fs::path& p, const std::string& text) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << text;
}

std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

software_signer_options options_in(const temp_dir& d, signature_algorithm alg = signature_algorithm::es256) {
    return {d.path() / "signer.pem", d.path() / "signer.counter", alg};
}

const std::vector<uint8_t> message = {'b', 'a', 't', 'c', 'h'};

TEST(software_signer, creates_a_0600_key_says_it_is_software_and_its_signatures_verify) {
    for (const auto alg : {signature_algorithm::es256, signature_algorithm::eddsa}) {
        temp_dir d;
        auto s = software_signer::open(options_in(d, alg));
        ASSERT_TRUE(s) << s.message();
        struct stat st {};
        ASSERT_EQ(::stat((d.path() / "signer.pem").c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0600U);
        const signer_info& info = (*s)->info();
        EXPECT_EQ(info.kind, backend_kind::software);
        EXPECT_FALSE(info.hardware_rooted);
        EXPECT_EQ(info.algorithm, alg);
        EXPECT_EQ(info.device, (d.path() / "signer.pem").string());
        auto sig = (*s)->sign(message);
        ASSERT_TRUE(sig) << sig.message();
        EXPECT_EQ(sig->size(), 64U);
        EXPECT_TRUE(verify_signature(alg, info.public_key_der, message, *sig));
        auto other = message;
        other[0] ^= 1;
        EXPECT_FALSE(verify_signature(alg, info.public_key_der, other, *sig));
        // No temporary file is left beside the key.
        size_t entries = 0;
        for ([[maybe_unused]] const auto& e : fs::directory_iterator(d.path())) {
            ++entries;
        }
        EXPECT_EQ(entries, 1U);
    }
}

TEST(software_signer, reopening_keeps_the_key_and_the_counter) {
    temp_dir d;
    std::vector<uint8_t> first_key;
    {
        auto s = software_signer::open(options_in(d));
        ASSERT_TRUE(s);
        first_key = (*s)->info().public_key_der;
        EXPECT_EQ(*(*s)->read_counter(), 0U);
        EXPECT_EQ(*(*s)->next_counter(), 1U);
        EXPECT_EQ(*(*s)->next_counter(), 2U);
        EXPECT_EQ(*(*s)->next_counter(), 3U);
        EXPECT_EQ(*(*s)->read_counter(), 3U);
    }
    EXPECT_EQ(read_file(d.path() / "signer.counter"), "3\n");
    EXPECT_FALSE(fs::exists(d.path() / "signer.counter.tmp"));
    auto again = software_signer::open(options_in(d));
    ASSERT_TRUE(again) << again.message();
    EXPECT_EQ((*again)->info().public_key_der, first_key);
    EXPECT_EQ(*(*again)->read_counter(), 3U);
    EXPECT_EQ(*(*again)->next_counter(), 4U);
}

TEST(software_signer, a_damaged_counter_file_is_refused_never_reset) {
    for (const char* bad : {"", "\n", "12", "01\n", "1x\n", "-1\n", " 1\n", "18446744073709551616\n",
                            "99999999999999999999\n", "1\n2\n"}) {
        temp_dir d;
        write_file(d.path() / "signer.counter", bad);
        auto s = software_signer::open(options_in(d));
        ASSERT_FALSE(s) << '"' << bad << '"';
        EXPECT_EQ(s.message(), "counter file " + (d.path() / "signer.counter").string() +
                                   " is corrupt (expected a decimal number and a newline)");
        EXPECT_EQ(read_file(d.path() / "signer.counter"), bad);
    }
}

TEST(software_signer, a_counter_at_its_maximum_does_not_wrap) {
    temp_dir d;
    write_file(d.path() / "signer.counter", "18446744073709551615\n");
    auto s = software_signer::open(options_in(d));
    ASSERT_TRUE(s) << s.message();
    EXPECT_EQ(*(*s)->read_counter(), UINT64_MAX);
    auto next = (*s)->next_counter();
    ASSERT_FALSE(next);
    EXPECT_EQ(next.message(), "counter file " + (d.path() / "signer.counter").string() + " is at its maximum");
    // A failed call leaves the signer usable.
    EXPECT_TRUE((*s)->sign(message));
}

TEST(software_signer, a_counter_that_cannot_be_written_is_an_error_and_the_value_is_not_returned) {
    temp_dir d;
    auto opts = options_in(d);
    opts.counter_file = d.path() / "missing-dir" / "signer.counter";
    auto s = software_signer::open(opts);
    ASSERT_TRUE(s) << s.message();
    auto next = (*s)->next_counter();
    ASSERT_FALSE(next);
    EXPECT_NE(next.message().find("cannot create"), std::string::npos) << next.message();
    EXPECT_EQ(*(*s)->read_counter(), 0U);
}

TEST(software_signer, key_files_others_can_read_or_of_the_wrong_type_are_refused) {
    temp_dir d;
    {
        auto s = software_signer::open(options_in(d, signature_algorithm::eddsa));
        ASSERT_TRUE(s);
    }
    const fs::path key = d.path() / "signer.pem";
    auto wrong = software_signer::open(options_in(d, signature_algorithm::es256));
    ASSERT_FALSE(wrong);
    EXPECT_EQ(wrong.message(), "key file " + key.string() + " does not hold an ECDSA P-256 key");

    ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
    auto readable = software_signer::open(options_in(d, signature_algorithm::eddsa));
    ASSERT_FALSE(readable);
    EXPECT_EQ(readable.message(), "key file " + key.string() + " can be read by others (mode 644); it must be 0600");

    ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
    write_file(key, "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n");
    auto garbage = software_signer::open(options_in(d, signature_algorithm::eddsa));
    ASSERT_FALSE(garbage);
    EXPECT_EQ(garbage.message().rfind("key file " + key.string() + " does not hold a PEM private key: ", 0), 0U)
        << garbage.message();

    // 256 bits on another curve: not ES256's key.
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> k1(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp256k1"),
                                                           EVP_PKEY_free);
    ASSERT_NE(k1, nullptr);
    std::unique_ptr<BIO, decltype(&BIO_free)> pem(BIO_new(BIO_s_mem()), BIO_free);
    ASSERT_EQ(PEM_write_bio_PrivateKey(pem.get(), k1.get(), nullptr, nullptr, 0, nullptr, nullptr), 1);
    char* text = nullptr;
    const long len = BIO_get_mem_data(pem.get(), &text);
    write_file(key, std::string(text, static_cast<size_t>(len)));
    auto secp256k1 = software_signer::open(options_in(d, signature_algorithm::es256));
    ASSERT_FALSE(secp256k1);
    EXPECT_EQ(secp256k1.message(), "key file " + key.string() + " does not hold an ECDSA P-256 key");
}

TEST(software_signer, needs_both_paths) {
    EXPECT_EQ(software_signer::open({}).message(), "the software signer needs a key file and a counter file");
    temp_dir d;
    auto opts = options_in(d);
    opts.key_file = d.path() / "no-such-dir" / "k.pem";
    auto s = software_signer::open(opts);
    ASSERT_FALSE(s);
    EXPECT_NE(s.message().find("cannot create"), std::string::npos) << s.message();
}

} // namespace
} // namespace ptpsec::hsm
