#pragma once

// Certificates for tests, made with the OpenSSL 3 API (EC P-256 keys, X.509
// v3 built in code): CAs, server and client certificates with the SANs and
// validity a test asks for, written as PEM files.

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <string>

namespace ptpsec::test {

struct pkey_free {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct x509_free {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
struct bio_free {
    void operator()(BIO* p) const noexcept { BIO_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;
using bio_ptr = std::unique_ptr<BIO, bio_free>;

struct identity {
    pkey_ptr key;
    x509_ptr cert;
};

struct cert_spec {
    std::string cn{};
    const identity* issuer = nullptr; ///< null: self-signed
    bool ca = false;
    std::string san{};                ///< OpenSSL config syntax, e.g. "DNS:localhost,IP:127.0.0.1"
    std::string eku{};                ///< "serverAuth", "clientAuth" or empty
    long not_before = -3600;          ///< seconds from now
    long not_after = 30L * 24 * 3600; ///< seconds from now
};

inline void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
    ASSERT_NE(ext, nullptr) << "extension " << OBJ_nid2sn(nid) << "=" << value;
    EXPECT_EQ(X509_add_ext(cert, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

inline identity make_identity(const cert_spec& spec) {
    static long serial = 1000;
    identity id;
    id.key.reset(EVP_EC_gen("P-256"));
    EXPECT_NE(id.key, nullptr);
    id.cert.reset(X509_new());
    X509* c = id.cert.get();
    X509_set_version(c, 2); // v3
    ASN1_INTEGER_set(X509_get_serialNumber(c), ++serial);
    X509_gmtime_adj(X509_getm_notBefore(c), spec.not_before);
    X509_gmtime_adj(X509_getm_notAfter(c), spec.not_after);
    X509_set_pubkey(c, id.key.get());
    X509_NAME* name = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("ptpsec test"), -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(spec.cn.c_str()), -1,
                               -1, 0);
    X509* issuer = spec.issuer != nullptr ? spec.issuer->cert.get() : c;
    X509_set_issuer_name(c, X509_get_subject_name(issuer));
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, c, nullptr, nullptr, 0);
    add_ext(c, &v3, NID_basic_constraints, spec.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_ext(c, &v3, NID_key_usage, spec.ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
    add_ext(c, &v3, NID_subject_key_identifier, "hash");
    if (spec.issuer != nullptr) {
        add_ext(c, &v3, NID_authority_key_identifier, "keyid:always");
    }
    if (!spec.san.empty()) {
        add_ext(c, &v3, NID_subject_alt_name, spec.san);
    }
    if (!spec.eku.empty()) {
        add_ext(c, &v3, NID_ext_key_usage, spec.eku);
    }
    EVP_PKEY* signer = spec.issuer != nullptr ? spec.issuer->key.get() : id.key.get();
    EXPECT_GT(X509_sign(c, signer, EVP_sha256()), 0);
    return id;
}

/// What `write` puts into a memory BIO, as text.
template <typename Write>
std::string pem_text(Write write) {
    bio_ptr b(BIO_new(BIO_s_mem()));
    write(b.get());
    char* data = nullptr;
    const long n = BIO_get_mem_data(b.get(), &data);
    return {data, static_cast<size_t>(n)};
}

inline std::string cert_pem(const identity& id) {
    return pem_text([&](BIO* b) { PEM_write_bio_X509(b, id.cert.get()); });
}

inline std::string key_pem(const identity& id) {
    return pem_text([&](BIO* b) { PEM_write_bio_PrivateKey(b, id.key.get(), nullptr, nullptr, 0, nullptr, nullptr); });
}

inline std::array<uint8_t, 32> fingerprint(const identity& id) {
    std::array<uint8_t, 32> md{};
    unsigned int len = 0;
    X509_digest(id.cert.get(), EVP_sha256(), md.data(), &len);
    return md;
}

/// A CRL (PEM) of `ca` listing `revoked`, issued `last_update` and next due
/// `next_update` seconds from now (RFC 5280 §5: v2, with the authority key
/// identifier and a CRL number).
inline std::string crl_pem(const identity& ca, std::initializer_list<const identity*> revoked,
                           long next_update = 7L * 24 * 3600, long last_update = -3600) {
    static long number = 0;
    std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(X509_CRL_new(), X509_CRL_free);
    X509_CRL* c = crl.get();
    X509_CRL_set_version(c, 1); // v2
    X509_CRL_set_issuer_name(c, X509_get_subject_name(ca.cert.get()));
    std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> last(X509_gmtime_adj(nullptr, last_update), ASN1_TIME_free);
    std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> next(X509_gmtime_adj(nullptr, next_update), ASN1_TIME_free);
    X509_CRL_set1_lastUpdate(c, last.get());
    X509_CRL_set1_nextUpdate(c, next.get());
    for (const identity* id : revoked) {
        X509_REVOKED* r = X509_REVOKED_new();
        X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(id->cert.get()));
        X509_REVOKED_set_revocationDate(r, last.get());
        X509_CRL_add0_revoked(c, r);
    }
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, ca.cert.get(), nullptr, nullptr, c, 0);
    X509_EXTENSION* aki = X509V3_EXT_conf_nid(nullptr, &v3, NID_authority_key_identifier, "keyid:always");
    EXPECT_NE(aki, nullptr);
    X509_CRL_add_ext(c, aki, -1);
    X509_EXTENSION_free(aki);
    std::unique_ptr<ASN1_INTEGER, decltype(&ASN1_INTEGER_free)> n(ASN1_INTEGER_new(), ASN1_INTEGER_free);
    ASN1_INTEGER_set(n.get(), ++number);
    X509_CRL_add1_ext_i2d(c, NID_crl_number, n.get(), 0, 0);
    X509_CRL_sort(c);
    EXPECT_GT(X509_CRL_sign(c, ca.key.get(), EVP_sha256()), 0);
    return pem_text([&](BIO* b) { PEM_write_bio_X509_CRL(b, c); });
}

/// Writes through a temporary name and a rename, as a certificate renewal would.
inline void write_pem_file(const std::filesystem::path& path, const std::string& content) {
    const std::filesystem::path tmp = path.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << content;
        ASSERT_TRUE(out.good()) << tmp;
    }
    std::filesystem::rename(tmp, path);
}

} // namespace ptpsec::test
