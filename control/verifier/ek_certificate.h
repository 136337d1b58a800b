#pragma once

// The checks of a TPM's EK certificate (docs/architecture.md,
// "Attestation"): that it is a certificate of the EK the TPM presented, that
// it chains to the trusted EK issuers (the TPM vendors' CAs) and, with their
// CRLs, that it is not revoked. The certificate comes from the TPM's NV
// index, so it is untrusted input: fuzz/ek_certificate_fuzz.cpp reads any
// octets through check_ek_certificate. The Registrar calls these at
// enrolment (check_ek_certificate) and in its revocation pass
// (registrar::check_ek_revocations, through the pieces below).

#include <drivers/base/result.h>

#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

namespace ptpsec::verifier {

/// What an EK certificate is checked against.
struct ek_trust {
    /// PEM file of trusted EK issuers (the TPM vendors' CA certificates);
    /// empty: the EK certificate is not checked.
    std::string ca_file;
    /// PEM file of CRLs; when set, the EK certificate's issuer must have a
    /// current CRL here, signed by it, that does not list the certificate.
    std::string crl_file;
};

/// Checks that `certificate_der` is a certificate of the key `ek_spki_der`
/// that chains to the certificates in trust.ca_file and, with
/// trust.crl_file, is not revoked. Each refusal says why.
status check_ek_certificate(std::span<const uint8_t> certificate_der, std::span<const uint8_t> ek_spki_der,
                            const ek_trust& trust);

using x509_ptr = std::unique_ptr<X509, decltype(&X509_free)>;
using x509_store_ptr = std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)>;

/// The certificate at the start of `der`; what follows it is not read (NV
/// indices larger than the certificate read back with padding). Null when
/// `der` does not start with a DER X.509 certificate.
x509_ptr certificate_of(std::span<const uint8_t> der);

/// How an EK certificate fared against the issuers and CRLs.
struct ek_verdict {
    /// failed: it does not chain, or the issuers or CRLs allow no verdict
    enum class kind : uint8_t { valid, revoked, failed } what = kind::failed;
    std::string message; ///< why, unless valid
};

/// The trusted EK issuers of `trust` and, when it names them, their CRLs,
/// read once for every certificate judged against them.
result<x509_store_ptr> load_ek_store(const ek_trust& trust);

/// `cert` against `store` (load_ek_store of `trust`, or why it could not
/// be read).
ek_verdict judge_ek_certificate(const result<x509_store_ptr>& store, X509* cert, const ek_trust& trust);

/// The certificate's serial number, in hex.
std::string serial_of(X509* cert);

/// The revocation date (CLOCK_REALTIME ns) of `cert` in a CRL of its issuer
/// in `crl_file` that lists it, when one does.
std::optional<int64_t> revocation_date(X509* cert, const std::string& crl_file);

} // namespace ptpsec::verifier
