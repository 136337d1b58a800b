#pragma once

// The Registrar (BRIEF "Attestation"; seeds/000 "Registrar: PKI/registry
// service binding signer_id to device identity, PCR profile, and revocation
// state"): which key signs for which signer_id, on what device, in what
// platform state, and whether it is still trusted. One SQLite file, mode
// 0600.
//
// Enrolment checks the device before it binds the key:
//
//   * tpm: the signing key's public area must be a non-exportable TPM key
//     whose point is the signer's key (hsm::check_key_public); the TPM must
//     recover a credential the Registrar sealed to the EK it presents for
//     that key's Name (hsm::make_credential, TPM2_ActivateCredential): only
//     the TPM holding that EK opens it, and only with that key loaded, so the
//     key is shown to live in the TPM the EK names; and a quote made by that
//     key over the PCR profile, with a nonce the Registrar drew, must match
//     the expected PCR values (hsm::check_quote). enrol_tpm() does the round
//     trip. The EK public key is recorded as the device's identity. With a
//     file of trusted EK issuers (the TPM vendors' CAs, `--ek-ca`), the EK
//     certificate the TPM holds must be for that EK and chain to them: the
//     EK is a genuine TPM's; with the issuers' CRLs too (`--ek-crl`), it
//     must not be revoked. Without issuers, what the EK is is not checked.
//   * pkcs11: the token's report of the key (hsm::pkcs11_signer::
//     enrolment()) must say always_sensitive and never_extractable: the key
//     was made on the token and never left it in the clear.
//   * software: only when the operator allows it explicitly; recorded as not
//     hardware-rooted, and the Verifier warns on every batch it signs.
//
// A signer_id is bound to one key for life: enrolling it again with the same
// key changes nothing, with another key is refused (revoke first), and a
// revoked signer_id is never enrolled again (evidence already issued under
// it must keep meaning the revoked key). One key is bound to one signer_id.
// A TPM signer's PCR profile can be replaced (a firmware update), only with
// values its key quotes for a fresh nonce; the profile it had is kept.
//
// Control-side code: allocates, returns result<>, never throws.

#include <control/verifier/ek_certificate.h>
#include <control/verifier/sql.h>
#include <drivers/base/result.h>
#include <hsm/pkcs11_signer.h>
#include <hsm/signer.h>
#include <hsm/tpm_signer.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::verifier {

/// What binds a TPM signing key to its TPM.
struct tpm_identity {
    std::vector<uint8_t> ek_public_der;   ///< the endorsement key, DER SubjectPublicKeyInfo
    std::vector<uint8_t> key_name;        ///< the signing key's TPM name (nameAlg || SHA-256(TPMT_PUBLIC))
    std::vector<uint8_t> key_public_area; ///< its TPM2B_PUBLIC, marshalled
    /// The EK certificate the TPM held at enrolment (DER); empty when it
    /// held none (or the signer was enrolled before it was recorded).
    std::vector<uint8_t> ek_certificate_der;
};

/// Which token holds a PKCS#11 key (hsm::pkcs11_enrolment).
struct pkcs11_identity {
    std::string token_label;
    std::string token_serial;
    std::string token_manufacturer;
    std::string token_model;
    std::string key_label;
    std::vector<uint8_t> key_id;
};

/// A PCR profile a signer had before registrar::update_profile replaced it.
struct profile_change {
    int64_t replaced_at_ns = 0; ///< CLOCK_REALTIME
    std::string reason;         ///< the operator's, as given
    hsm::pcr_values previous;   ///< the profile replaced then
};

struct signer_record {
    std::string signer_id;
    hsm::signature_algorithm algorithm = hsm::signature_algorithm::es256;
    std::vector<uint8_t> public_key_der; ///< DER SubjectPublicKeyInfo
    hsm::backend_kind backend = hsm::backend_kind::software;
    bool hardware_rooted = false;
    tpm_identity tpm;                            ///< backend tpm
    pkcs11_identity pkcs11;                      ///< backend pkcs11
    std::string key_file;                        ///< backend software
    hsm::pcr_values expected_pcrs;               ///< backend tpm: the PCR profile, SHA-256 bank
    std::vector<profile_change> profile_changes; ///< backend tpm: the profiles it replaced, oldest first
    int64_t enrolled_at_ns = 0;                  ///< CLOCK_REALTIME
    std::optional<int64_t> revoked_at_ns;
    std::string revocation_reason;

    /// "tpm EK sha256:... key name ...", "pkcs11 token LABEL serial ...", "software key FILE".
    std::string device() const;
};

/// Everything a TPM signer shows the Registrar.
struct tpm_enrolment {
    std::string signer_id;
    std::vector<uint8_t> public_key_der; ///< the signer's key (signer_info::public_key_der)
    std::vector<uint8_t> key_public_area;
    std::vector<uint8_t> ek_public_der;
    hsm::tpm_quote quote; ///< over expected_pcrs' indices, qualifyingData = the Registrar's nonce
    hsm::pcr_values expected_pcrs;
    /// What TPM2_ActivateCredential recovered from the Registrar's
    /// credential, sealed to ek_public_der for the signing key's Name.
    std::vector<uint8_t> activated_credential;
    /// The EK certificate the TPM holds (DER); empty when it holds none.
    std::vector<uint8_t> ek_certificate_der;
};

/// What check_ek_revocations() found for one TPM signer.
struct ek_revocation_check {
    enum class outcome : uint8_t {
        valid,          ///< chains to the issuers, and a current CRL of its issuer does not list it
        revoked,        ///< listed: the signer is revoked from the CRL's revocation date
        cannot_check,   ///< the CRLs or issuers do not allow a verdict (detail says why); nothing changes
        no_certificate, ///< no EK certificate recorded for this signer; nothing changes
    };
    std::string signer_id;
    outcome result = outcome::cannot_check;
    std::string detail;
    std::optional<int64_t> revoked_at_ns; ///< revoked: the revocation date the CRL gives (CLOCK_REALTIME)
};

const char* to_string(ek_revocation_check::outcome o) noexcept;

/// A fresh 32-octet nonce from the OS's random generator, for a quote.
result<std::vector<uint8_t>> make_nonce();

class registrar {
public:
    /// Opens (creating, mode 0600) the registry file.
    static result<std::unique_ptr<registrar>> open(const std::string& path);

    /// Checks the material (see the header comment) against the quote's
    /// `issued_nonce` and the `issued_credential` sealed to the EK, and
    /// enrols; every refusal says which check failed.
    /// With trusted EK issuers (`ek.ca_file`), the EK certificate is checked
    /// too (check_ek_certificate); without, it is not.
    status enrol_tpm(const tpm_enrolment& e, std::span<const uint8_t> issued_nonce,
                     std::span<const uint8_t> issued_credential, const ek_trust& ek = {});
    /// Refuses a key the token does not report as always_sensitive and
    /// never_extractable.
    status enrol_pkcs11(const hsm::pkcs11_enrolment& e);
    /// Refused unless `allow_software`: a key in a file is not
    /// hardware-rooted.
    status enrol_software(std::string_view signer_id, hsm::signature_algorithm alg,
                          std::span<const uint8_t> public_key_der, std::string_view key_file, bool allow_software);

    /// Checks the EK certificate recorded for every TPM signer not revoked
    /// yet against `trust` (issuers and CRLs, both needed): a vendor's later
    /// revocation of a TPM reaches the signers enrolled before it. A signer
    /// whose certificate a current CRL of its issuer lists is revoked from
    /// the revocation date that CRL gives, with a reason naming the
    /// certificate's serial and the CRL file, so that its batches from then
    /// on are refused. Anything that prevents a verdict (an expired CRL, none
    /// for the issuer, a certificate that no longer chains) is reported and
    /// changes nothing. One row per TPM signer not revoked before, by
    /// signer_id.
    result<std::vector<ek_revocation_check>> check_ek_revocations(const ek_trust& trust);

    /// Checks a TPM quote a node shows the KE server before it releases keys
    /// (nts::platform_attestation): `signer_id` is enrolled, a TPM signer,
    /// not revoked, and `attest`/`signature` is a quote by its enrolled key
    /// of exactly its enrolled PCR profile, with `binding` (the TLS
    /// session's exporter value) as qualifyingData (hsm::check_quote). Each
    /// refusal names the signer and the check.
    status check_platform(std::string_view signer_id, std::span<const uint8_t> attest,
                          std::span<const uint8_t> signature, std::span<const uint8_t> binding);
    /// Replaces a TPM signer's PCR profile, after a firmware update or a
    /// changed boot configuration, once the platform shows it is in the new
    /// state: `quote` must be by the enrolled key, over exactly `expected`'s
    /// PCRs, with `issued_nonce`, and match `expected` (hsm::check_quote).
    /// The signer keeps its signer_id, its key and its evidence; the profile
    /// it had is kept with the time and `reason` (profile_changes). Refused
    /// for a signer that is unknown, not a TPM signer or revoked, and
    /// without a reason. True when the profile was replaced, false when it
    /// already was `expected`.
    result<bool> update_profile(std::string_view signer_id, const hsm::tpm_quote& quote,
                                std::span<const uint8_t> issued_nonce, const hsm::pcr_values& expected,
                                std::string_view reason);
    /// Marks the signer revoked at `at_ns` (CLOCK_REALTIME) for `reason`.
    /// Refused for an unknown or already revoked signer.
    status revoke(std::string_view signer_id, std::string_view reason, int64_t at_ns);

    /// The signer, or nullopt when it was never enrolled.
    result<std::optional<signer_record>> lookup(std::string_view signer_id);
    /// Every signer, by signer_id.
    result<std::vector<signer_record>> list();

    const std::string& path() const noexcept { return _path; }

private:
    registrar(std::unique_ptr<sql::connection> db, std::string path);
    status enrol(const signer_record& r);

    std::unique_ptr<sql::connection> _db;
    std::string _path;
};

/// The whole TPM enrolment against a running signer: reads the EK and the
/// key's public area, seals a fresh credential to that EK for the key's Name
/// and has the TPM activate it, draws a nonce and has the TPM quote
/// `expected_pcrs`' indices with it, and enrols `signer_id` if every check
/// passes.
status enrol_tpm(registrar& reg, hsm::tpm_signer& signer, std::string_view signer_id,
                 const hsm::pcr_values& expected_pcrs, const ek_trust& ek = {});

/// The whole profile update against the signer's TPM: checks that `signer`
/// holds the key enrolled for `signer_id`, draws a nonce, has the TPM quote
/// `expected`'s indices with it, and registrar::update_profile().
result<bool> update_profile_tpm(registrar& reg, hsm::tpm_signer& signer, std::string_view signer_id,
                                const hsm::pcr_values& expected, std::string_view reason);

/// "es256" / "eddsa".
const char* algorithm_name(hsm::signature_algorithm alg) noexcept;

} // namespace ptpsec::verifier
