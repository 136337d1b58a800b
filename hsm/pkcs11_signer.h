#pragma once

// The PKCS#11 backend of hsm::signer (signer.h): a key that lives on a
// PKCS#11 token (an HSM, a smart card, SoftHSM2 in the tests), reached
// through the token's module loaded with p11-kit.
//
//   * Key: found on the token by label (CKO_PRIVATE_KEY with CKA_LABEL), or
//     generated there when absent (ECDSA P-256 or Ed25519). The private key
//     is a token object, private, sensitive and not extractable (PKCS#11
//     v2.40 §4.9 "Private key objects"), so it never leaves the token; an
//     existing key that is extractable or not sensitive is refused.
//   * Signatures: ES256 hashes with SHA-256 in software and has the token
//     sign the digest with CKM_ECDSA (v2.40 curr. mech. §2.3.6); EdDSA has
//     the token sign the message itself with CKM_EDDSA (PKCS#11 3.0 curr.
//     mech. §2.3.14). Every signature is checked against the public key
//     before it is returned, so a faulty token cannot hand out a signature
//     the Verifier would reject.
//   * Counter: the token has no monotonic counter, so the counter is a file,
//     bound to the key (it records the SHA-256 of the key's
//     SubjectPublicKeyInfo and refuses another key's file), advanced by
//     writing a temporary file, fsync, rename, fsync of the directory. It is
//     only as monotonic as that file system: someone who can replace the
//     file with an older copy of it can roll the counter back. The batch
//     hash chain (every batch token names the previous root) is what makes
//     such a rollback visible to the Verifier. An exclusive lock on
//     "<counter file>.lock" keeps two signers from sharing one counter.
//   * Faults: a token that fails or goes away (session closed, device
//     removed, user logged out) makes sign() return an error naming the
//     PKCS#11 return value (CKR_...); nothing crashes. The signer then drops
//     its session, and the next call (or a single retry inside the same
//     call, when the session was merely lost) finds the token by label,
//     opens a session, logs in and finds the key again. It refuses a token
//     that now holds a different key under the label.
//
// Threads: one pkcs11_signer is used from one thread at a time (the
// batcher's builder and device threads take turns under a mutex); it does
// no locking of its own. Other PKCS#11 users in the same process are
// fine: the module is loaded "managed" by p11-kit, which counts
// C_Initialize/C_Finalize and keeps each user's sessions apart.
//
// Control-side code: allocates, returns result<>, never throws.

#include <drivers/base/result.h>
#include <hsm/signer.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace ptpsec::hsm {

struct pkcs11_settings {
    /// The token's PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    std::string module_path;
    /// CK_TOKEN_INFO.label of the token to use (PKCS#11 v2.40 §3.2: up to 32
    /// octets, blank padded; compared without the padding).
    std::string token_label;
    /// The user PIN. Leave empty and set user_pin_file to keep it out of the
    /// configuration.
    std::string user_pin;
    /// A file whose contents (one trailing newline removed) are the user
    /// PIN. Refused when anyone but its owner and group can read it.
    std::string user_pin_file;
    /// CKA_LABEL of the key pair (both halves carry it).
    std::string key_label;
    signature_algorithm algorithm = signature_algorithm::es256;
    /// Generate the key pair on the token when no key has key_label. When
    /// false a missing key is an error (a provisioned token is expected).
    bool generate_key = true;
    /// The counter file. Its directory must exist; the file is created on
    /// the first next_counter().
    std::string counter_path;
    /// The identity the Registrar binds to this key (BRIEF "Attestation").
    std::string signer_id;
};

/// What the Registrar records when it enrols this signer: which token,
/// which key, and the key's protection as the token reports it.
struct pkcs11_enrolment {
    std::string signer_id;
    /// CK_TOKEN_INFO (PKCS#11 v2.40 §3.2), padding removed.
    std::string token_label;
    std::string token_serial;
    std::string token_manufacturer;
    std::string token_model;
    std::string key_label;
    /// CKA_ID of the key pair.
    std::vector<uint8_t> key_id;
    signature_algorithm algorithm = signature_algorithm::es256;
    /// DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
    std::vector<uint8_t> public_key_der;
    /// CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE: true when the key was
    /// generated on the token and never left it in the clear (v2.40 §4.9).
    bool always_sensitive = false;
    bool never_extractable = false;
};

/// The name of a PKCS#11 return value ("CKR_PIN_INCORRECT"), or its value
/// in hex when it is not one we know.
std::string pkcs11_return_name(unsigned long rv);

class pkcs11_signer final : public signer {
public:
    /// Loads the module, finds the token by label, logs in, finds or
    /// generates the key and checks the counter file (bound to this key).
    /// Every failure says what was wrong (module, token, PIN, key, counter
    /// file), with the CKR_ name where the token refused.
    static result<std::unique_ptr<pkcs11_signer>> open(const pkcs11_settings& settings);

    ~pkcs11_signer() override;
    pkcs11_signer(const pkcs11_signer&) = delete;
    pkcs11_signer& operator=(const pkcs11_signer&) = delete;
    pkcs11_signer(pkcs11_signer&&) = delete;
    pkcs11_signer& operator=(pkcs11_signer&&) = delete;

    const signer_info& info() const noexcept override;
    /// Writes counter + 1 to the counter file durably, then returns it. Does
    /// not touch the token.
    result<uint64_t> next_counter() override;
    result<uint64_t> read_counter() override;
    result<std::vector<uint8_t>> sign(std::span<const uint8_t> message) override;

    const pkcs11_enrolment& enrolment() const noexcept;
    /// How many times the session was lost and opened again.
    uint64_t session_reopens() const noexcept;

private:
    struct state;
    explicit pkcs11_signer(std::unique_ptr<state> s);
    std::unique_ptr<state> _state;
};

} // namespace ptpsec::hsm
