#pragma once

// The attestation signer (BRIEF "Attestation", seeds/000): one interface,
// three backends.
//
//   * tpm (tpm_signer.h): a TPM 2.0 through tpm2-tss ESAPI; the key is made
//     in the TPM and never leaves it; the counter is a TPM NV counter.
//   * pkcs11 (pkcs11_signer.h): any PKCS#11 token (SoftHSM2 in the tests);
//     the key is generated on the token, sensitive and not extractable; the
//     counter is a file written and fsynced before each signature.
//   * software (software_signer.h): an OpenSSL key in a file, for
//     development only. It is never hardware-rooted, and says so.
//
// The batching signer calls next_counter() once per batch and then sign()
// once over the batch's COSE Sig_structure. A call that fails leaves the
// signer usable: the caller retries later and counts the failure. Neither
// call is made on the fast path: a signer runs on its own thread and may
// block (a TPM takes tens of milliseconds per signature).
//
// Control-side code: allocates, returns result<>, never throws.

#include <drivers/base/result.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ptpsec::hsm {

enum class backend_kind : uint8_t {
    tpm = 1,
    pkcs11 = 2,
    software = 3,
};

/// "tpm", "pkcs11", "software".
const char* to_string(backend_kind k) noexcept;

/// The COSE algorithm a signer signs with (RFC 9053 §2.1, RFC 8152 §8.2).
enum class signature_algorithm : int {
    es256 = -7, ///< ECDSA P-256 over SHA-256; signature r || s, 32 octets each
    eddsa = -8, ///< Ed25519 (RFC 8032) over the message itself; 64 octets
};

struct signer_info {
    backend_kind kind = backend_kind::software;
    signature_algorithm algorithm = signature_algorithm::es256;
    /// The public key as a DER SubjectPublicKeyInfo (RFC 5280), what the
    /// Registrar stores and the Verifier checks signatures with.
    std::vector<uint8_t> public_key_der;
    /// Where the key lives, for the operator and the Registrar: the TPM
    /// key's name (hex) and handle, or the token's label and serial, or the
    /// key file.
    std::string device;
    /// False only for the software backend.
    bool hardware_rooted = false;
};

class signer {
public:
    virtual ~signer() = default;
    signer() = default;
    signer(const signer&) = delete;
    signer& operator=(const signer&) = delete;

    virtual const signer_info& info() const noexcept = 0;

    /// Advances the monotonic counter by one, durably (a TPM NV counter, an
    /// fsynced file), and returns its new value. Strictly increasing over the
    /// life of the key, across restarts of the process and of the device.
    virtual result<uint64_t> next_counter() = 0;

    /// The counter's current value without advancing it.
    virtual result<uint64_t> read_counter() = 0;

    /// Signs `message` with the non-exportable key. ES256: ECDSA over
    /// SHA-256(message), returned as r || s (64 octets, RFC 9053 §2.1);
    /// EdDSA: Ed25519 over the message (64 octets).
    virtual result<std::vector<uint8_t>> sign(std::span<const uint8_t> message) = 0;
};

} // namespace ptpsec::hsm
