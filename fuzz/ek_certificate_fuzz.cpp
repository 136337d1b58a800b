// libFuzzer target for the checks of a TPM's EK certificate
// (control/verifier/ek_certificate.h). The input is what the TPM's NV index
// handed over as its EK certificate; it is checked against the EK and the
// issuers in fuzz/ek_certificate (made by fuzz/make_ek_certificate_corpus.py:
// a vendor CA, its CRL, the EK's SubjectPublicKeyInfo), once with the CRL
// and once without. Nothing escapes but a result:
//   - a refusal is one of the messages check_ek_certificate gives;
//   - what is taken starts with a DER certificate (padding after it is
//     allowed) of exactly the EK's key, which chains to the CA;
//   - taken with the CRL implies taken without it; a certificate refused as
//     revoked has a revocation date in the CRL (the Registrar's revocation
//     pass needs it);
//   - the same input gives the same answer twice, and leaves nothing in
//     OpenSSL's error queue for the next caller.
//
// Seeds in fuzz/corpus/ek_certificate: the EK's certificate (also padded
// as NV reads it), a revoked one, one of another key, one of an untrusted
// CA, and a DER structure that is no certificate.

#include <control/verifier/ek_certificate.h>
#include <fuzz/invariant.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#ifndef PTPSEC_EK_TRUST_DIR
#error "PTPSEC_EK_TRUST_DIR: the folder of ca.pem, crl.pem and ek.spki (fuzz/ek_certificate)"
#endif

namespace {

using ptpsec::fuzz::require;

const std::string trust_dir = PTPSEC_EK_TRUST_DIR;
const ptpsec::verifier::ek_trust with_crl{trust_dir + "/ca.pem", trust_dir + "/crl.pem"};
const ptpsec::verifier::ek_trust without_crl{trust_dir + "/ca.pem", {}};

std::vector<uint8_t> read_ek_spki() {
    std::ifstream in(trust_dir + "/ek.spki", std::ios::binary);
    std::vector<uint8_t> spki{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (spki.empty()) {
        std::fprintf(stderr, "ek_certificate_fuzz: cannot read %s/ek.spki\n", trust_dir.c_str());
        std::abort();
    }
    return spki;
}

const std::vector<uint8_t> ek_spki = read_ek_spki();

bool known_refusal(std::string_view m, const ptpsec::verifier::ek_trust& t) {
    return m == "the TPM's EK certificate is not a DER X.509 certificate" ||
           m == "the TPM's EK certificate is for another key than its EK" ||
           m == "the TPM's EK certificate holds a public key that cannot be read" ||
           m == "setting up the EK certificate check failed" ||
           m == "the TPM holds no certificate of its EK to check against " + t.ca_file ||
           m.starts_with("the TPM's EK certificate does not chain to " + t.ca_file + ": ") ||
           (!t.crl_file.empty() &&
            (m == "the TPM's EK certificate is revoked by its issuer's CRL in " + t.crl_file ||
             m.starts_with("the TPM's EK certificate cannot be checked against the CRLs in " + t.crl_file + ": ")));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    namespace v = ptpsec::verifier;
    const std::span<const uint8_t> der(data, size);
    ERR_clear_error();
    const auto strict = v::check_ek_certificate(der, ek_spki, with_crl);
    require(ERR_peek_error() == 0, "nothing is left in OpenSSL's error queue");
    const auto again = v::check_ek_certificate(der, ek_spki, with_crl);
    require(bool(strict) == bool(again) && (strict || strict.message() == again.message()),
            "the same input gives the same answer");
    const auto lax = v::check_ek_certificate(der, ek_spki, without_crl);
    require(ERR_peek_error() == 0, "nothing is left in OpenSSL's error queue (without CRLs)");

    if (!strict) {
        require(known_refusal(strict.message(), with_crl), "a refusal is one of check_ek_certificate's");
    }
    if (!lax) {
        require(known_refusal(lax.message(), without_crl), "a refusal without CRLs is one of check_ek_certificate's");
    }
    require(!strict || lax, "taken with the CRL implies taken without it");

    if (lax) {
        const v::x509_ptr cert = v::certificate_of(der);
        require(cert != nullptr, "what is taken is a certificate");
        unsigned char* enc = nullptr;
        const int enc_len = i2d_X509(cert.get(), &enc);
        require(enc_len > 0 && static_cast<size_t>(enc_len) <= size && std::equal(enc, enc + enc_len, data),
                "what is taken starts with the certificate's own DER");
        OPENSSL_free(enc);
        unsigned char* key = nullptr;
        const int key_len = i2d_PUBKEY(X509_get0_pubkey(cert.get()), &key);
        require(key_len > 0 && static_cast<size_t>(key_len) == ek_spki.size() &&
                    std::equal(ek_spki.begin(), ek_spki.end(), key),
                "what is taken is a certificate of the EK");
        OPENSSL_free(key);
    }
    if (!strict &&
        strict.message() == "the TPM's EK certificate is revoked by its issuer's CRL in " + with_crl.crl_file) {
        const v::x509_ptr cert = v::certificate_of(der);
        require(cert != nullptr && v::revocation_date(cert.get(), with_crl.crl_file).has_value(),
                "a revoked certificate has a revocation date in the CRL");
    }
    ERR_clear_error();
    return 0;
}
