#include <control/verifier/ek_certificate.h>

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <ctime>

namespace ptpsec::verifier {

x509_ptr certificate_of(std::span<const uint8_t> der) {
    const unsigned char* p = der.data();
    x509_ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free);
    if (cert == nullptr) {
        ERR_clear_error(); // the refusal says why; nothing is left for the next caller to report
    }
    return cert;
}

result<x509_store_ptr> load_ek_store(const ek_trust& trust) {
    x509_store_ptr store(X509_STORE_new(), X509_STORE_free);
    if (store == nullptr || X509_STORE_load_file(store.get(), trust.ca_file.c_str()) != 1) {
        ERR_clear_error();
        return error{
            fmt::format("cannot read trusted EK issuers from {} (a PEM file of CA certificates)", trust.ca_file)};
    }
    if (!trust.crl_file.empty()) {
        // X509_STORE_load_file takes the CRLs of a PEM file as well; with
        // CRL_CHECK the EK certificate's issuer must have one.
        if (X509_STORE_load_file(store.get(), trust.crl_file.c_str()) != 1) {
            ERR_clear_error();
            return error{fmt::format("cannot read EK certificate revocation lists from {} (a PEM file of CRLs)",
                                     trust.crl_file)};
        }
        X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
    }
    return store;
}

ek_verdict judge_ek_certificate(const result<x509_store_ptr>& store, X509* cert, const ek_trust& trust) {
    if (!store) {
        return {ek_verdict::kind::failed, store.message()};
    }
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
    if (ctx == nullptr || X509_STORE_CTX_init(ctx.get(), store->get(), cert, nullptr) != 1) {
        return {ek_verdict::kind::failed, "setting up the EK certificate check failed"};
    }
    if (X509_verify_cert(ctx.get()) == 1) {
        return {ek_verdict::kind::valid, {}};
    }
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error(); // the verdict below says why
    if (err == X509_V_ERR_CERT_REVOKED) {
        return {ek_verdict::kind::revoked,
                fmt::format("the TPM's EK certificate is revoked by its issuer's CRL in {}", trust.crl_file)};
    }
    const bool crl = err == X509_V_ERR_UNABLE_TO_GET_CRL || err == X509_V_ERR_CRL_HAS_EXPIRED ||
                     err == X509_V_ERR_CRL_NOT_YET_VALID || err == X509_V_ERR_CRL_SIGNATURE_FAILURE ||
                     err == X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE || err == X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER;
    if (crl) {
        return {ek_verdict::kind::failed,
                fmt::format("the TPM's EK certificate cannot be checked against the CRLs in {}: {}", trust.crl_file,
                            X509_verify_cert_error_string(err))};
    }
    return {ek_verdict::kind::failed, fmt::format("the TPM's EK certificate does not chain to {}: {}", trust.ca_file,
                                                  X509_verify_cert_error_string(err))};
}

std::string serial_of(X509* cert) {
    std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr), BN_free);
    char* h = bn != nullptr ? BN_bn2hex(bn.get()) : nullptr;
    std::string out = h != nullptr ? h : "?";
    OPENSSL_free(h);
    return out;
}

std::optional<int64_t> revocation_date(X509* cert, const std::string& crl_file) {
    std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_file(crl_file.c_str(), "r"), BIO_free);
    if (in == nullptr) {
        return std::nullopt;
    }
    for (;;) {
        std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(
            PEM_read_bio_X509_CRL(in.get(), nullptr, nullptr, nullptr), X509_CRL_free);
        if (crl == nullptr) {
            ERR_clear_error(); // the end of the file, or something that is not a CRL
            return std::nullopt;
        }
        X509_REVOKED* entry = nullptr;
        if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_issuer_name(cert)) == 0 &&
            X509_CRL_get0_by_cert(crl.get(), &entry, cert) == 1 && entry != nullptr) {
            std::tm tm{};
            if (ASN1_TIME_to_tm(X509_REVOKED_get0_revocationDate(entry), &tm) != 1) {
                return std::nullopt;
            }
            return static_cast<int64_t>(timegm(&tm)) * 1'000'000'000;
        }
    }
}

status check_ek_certificate(std::span<const uint8_t> certificate_der, std::span<const uint8_t> ek_spki_der,
                            const ek_trust& trust) {
    if (certificate_der.empty()) {
        return error{fmt::format("the TPM holds no certificate of its EK to check against {}", trust.ca_file)};
    }
    const x509_ptr cert = certificate_of(certificate_der);
    if (cert == nullptr) {
        return error{"the TPM's EK certificate is not a DER X.509 certificate"};
    }
    EVP_PKEY* key = X509_get0_pubkey(cert.get());
    if (key == nullptr) {
        ERR_clear_error();
        return error{"the TPM's EK certificate holds a public key that cannot be read"};
    }
    unsigned char* der = nullptr;
    const int len = i2d_PUBKEY(key, &der);
    const bool same = len > 0 && static_cast<size_t>(len) == ek_spki_der.size() &&
                      std::equal(ek_spki_der.begin(), ek_spki_der.end(), der);
    OPENSSL_free(der);
    if (!same) {
        return error{"the TPM's EK certificate is for another key than its EK"};
    }
    const ek_verdict v = judge_ek_certificate(load_ek_store(trust), cert.get(), trust);
    if (v.what != ek_verdict::kind::valid) {
        return error{v.message};
    }
    return ok_status();
}

} // namespace ptpsec::verifier
