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
// The EK is one of the TCG default EK templates (EK Credential Profile 2.x,
// L-1 RSA 2048 or L-2 ECC NIST P-256): nameAlg SHA-256 and AES-128-CFB as
// its symmetric algorithm. The seed is sealed to it by RSA-OAEP (SHA-256,
// label "IDENTITY") or by one-pass ECDH with KDFe (Part 1 §11.4.10.3); then
// symKey = KDFa(SHA-256, seed, "STORAGE", Name, "", 128),
// encIdentity = AES-128-CFB(symKey, IV 0, TPM2B_DIGEST(credential)),
// HMACkey = KDFa(SHA-256, seed, "INTEGRITY", "", "", 256) and
// outerHMAC = HMAC-SHA256(HMACkey, encIdentity || Name).
//
// Control-side code: allocates, returns result<>, never throws.

#include <drivers/base/result.h>

#include <cstdint>
#include <span>
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

/// Seals `credential` (1-32 octets) to the EK `ek_spki_der` (DER
/// SubjectPublicKeyInfo, RSA 2048 or P-256) for the object named
/// `object_name` (nameAlg || digest, as TPM2 Names are).
result<tpm_credential_blob> make_credential(std::span<const uint8_t> ek_spki_der, std::span<const uint8_t> object_name,
                                            std::span<const uint8_t> credential);

} // namespace ptpsec::hsm
