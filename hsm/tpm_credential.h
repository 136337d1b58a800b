#pragma once

// TPM2_MakeCredential in software (TPM 2.0 Part 1 §24 "Credential
// Protection", Part 3 §12.6), for the Registrar: a secret sealed to a TPM's
// endorsement key and bound to the Name of one object, which only that TPM
// can recover, and only with that object loaded (TPM2_ActivateCredential,
// hsm::tpm_signer::activate_credential). Recovering it proves that the
// signing key lives in the TPM whose EK the Registrar records.
//
// It must run in the Registrar, not in the TPM under test: TPM2_MakeCredential
// takes the secret in the clear, so a device asked to make its own challenge
// learns the answer.
//
// The EK is made from one of the TCG EK templates (EK Credential Profile
// 2.x, appendix B), whose key type fixes its nameAlg H and its symmetric
// algorithm AES-b-CFB: RSA 2048 and ECC NIST P-256 (L-1, L-2, H-1, H-2)
// SHA-256 and AES-128; ECC NIST P-384 (H-3), RSA 3072 (H-6) and RSA 4096
// (H-7) SHA-384 and AES-256; ECC NIST P-521 (H-4) SHA-512 and AES-256. The seed (|H| octets) is sealed to it by
// RSA-OAEP (H, label "IDENTITY") or by one-pass ECDH with KDFe (Part 1 §11.4.10.3); then symKey = KDFa(H, seed,
// "STORAGE", Name, "", b), encIdentity = AES-b-CFB(symKey, IV 0, TPM2B_DIGEST(credential)), HMACkey = KDFa(H, seed,
// "INTEGRITY", "", "", |H| * 8) and outerHMAC = HMAC-H(HMACkey, encIdentity || Name).
//
// Control-side code: allocates, returns result<>, never throws.

#include <drivers/base/result.h>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace ptpsec::hsm {

/// What TPM2_ActivateCredential takes: the buffers of a TPM2B_ID_OBJECT and
/// of a TPM2B_ENCRYPTED_SECRET (without their size fields).
struct tpm_credential_blob {
    /// TPM2B_DIGEST(outerHMAC) || encIdentity.
    std::vector<uint8_t> id_object;
    /// The seed under the EK: RSA-OAEP ciphertext, or the marshalled
    /// ephemeral TPMS_ECC_POINT.
    std::vector<uint8_t> encrypted_secret;
};

/// The most octets a credential may have: a SHA-256 digest.
inline constexpr size_t max_credential_len = 32;

/// What an EK's key type fixes under the TCG EK templates (see above).
struct endorsement_key_profile {
    /// "RSA 2048", "ECC NIST P-384", ...
    std::string_view kind;
    /// The EK's nameAlg as OpenSSL names it ("SHA256", "SHA384", "SHA512").
    std::string_view digest;
    /// Octets of that digest.
    size_t digest_len = 0;
    /// Octets of the EK's AES key (16 or 32).
    size_t sym_key_len = 0;
};

/// The profile of the EK `ek_spki_der` (DER SubjectPublicKeyInfo); an error
/// naming the key when no TCG EK template has that key type.
result<endorsement_key_profile> endorsement_key_profile_of(std::span<const uint8_t> ek_spki_der);

/// Seals `credential` (1-32 octets) to the EK `ek_spki_der` (DER
/// SubjectPublicKeyInfo, of a key type endorsement_key_profile_of knows) for the object named
/// `object_name` (nameAlg || digest, as TPM2 Names are).
result<tpm_credential_blob> make_credential(std::span<const uint8_t> ek_spki_der, std::span<const uint8_t> object_name,
                                            std::span<const uint8_t> credential);

} // namespace ptpsec::hsm
