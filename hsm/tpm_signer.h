#pragma once

// The TPM 2.0 backend of hsm::signer (BRIEF "Attestation"), through tpm2-tss
// ESAPI: an ECDSA P-256 key made inside the TPM that never leaves it, and a
// TPM NV counter as the monotonic counter. swtpm in the tests
// (`swtpm:host=127.0.0.1,port=P`), the kernel resource manager in
// production (`device:/dev/tpmrm0`).
//
// Also here, for the Registrar: the enrolment material (the endorsement key,
// the signing key's public area and name, PCR quotes made with the signing
// key) and the pure-software checks of that material (check_key_public,
// check_quote), which need no TPM.
//
// Every TPM command runs on one worker thread owned by the signer and is
// bounded by `command_timeout`: a TPM that stops answering (a hung swtpm, a
// wedged bus) yields an error, never a caller blocked forever. A TPM that
// went away (swtpm killed or restarted, TCTI error) is reconnected on the
// next call: a fresh TCTI and ESYS context, the persistent key found again
// and checked to be the same key.
//
// Control-side code: allocates, returns result<>, never throws.

#include <hsm/signer.h>
#include <hsm/tpm_credential.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace ptpsec::hsm {

/// The TCG EK templates (EK Credential Profile 2.x, appendix B) the signer
/// derives its endorsement key from: the low-range L-1 (RSA 2048) and L-2
/// (ECC NIST P-256), the high-range H-1 (RSA 2048), H-2 (ECC NIST P-256),
/// H-3 (ECC NIST P-384), H-4 (ECC NIST P-521), H-6 (RSA 3072) and H-7 (RSA
/// 4096). H-5 (ECC SM2 P-256, SM3 and SM4) is not offered.
enum class ek_template : uint8_t { automatic, l1, l2, h1, h2, h3, h4, h6, h7 };

/// "auto", "L-1", "L-2", "H-1", ... as the CLI takes them.
std::string_view ek_template_name(ek_template t) noexcept;
/// What the template makes: "RSA 2048", "ECC NIST P-384", ...
std::string_view ek_template_kind(ek_template t) noexcept;
/// The NV index of the template's EK certificate (§2.2.1.5); 0 for automatic.
uint32_t ek_certificate_index(ek_template t) noexcept;
/// Parses a name of ek_template_name(); the error lists the names.
result<ek_template> parse_ek_template(std::string_view name);

struct tpm_settings {
    /// Passed to Tss2_TctiLdr_Initialize: `device:/dev/tpmrm0`,
    /// `swtpm:host=127.0.0.1,port=2321`, ...
    std::string tcti = "device:/dev/tpmrm0";
    /// Persistent handle of the signing key (owner range 0x81000000 -
    /// 0x817FFFFF of the TCG handle registry). Created there when absent.
    uint32_t key_handle = 0x81000100;
    /// NV index of the monotonic counter (owner range 0x01000000 -
    /// 0x013FFFFF or 0x01500000 - 0x01BFFFFF of the TCG handle registry).
    /// Defined when absent.
    uint32_t counter_index = 0x01500100;
    /// Owner hierarchy authorization: needed to create the key and define
    /// the counter, not to sign or count.
    std::string owner_auth;
    /// Endorsement hierarchy authorization: needed to derive the EK.
    std::string endorsement_auth;
    /// The EK used for enrolment. automatic: the first of L-2, L-1, H-2,
    /// H-3, H-4, H-1, H-6, H-7 whose certificate the TPM holds; L-2 (L-1 on
    /// a TPM without ECC) when it holds none.
    ek_template ek = ek_template::automatic;
    /// The signer's identity in the batch tokens (seeds/000 claim 8).
    std::string signer_id;
    /// Upper bound on one call into the TPM (both attempts when a lost
    /// connection is retried). Real TPMs answer a signature in tens of
    /// milliseconds; key derivation on a slow TPM takes seconds.
    std::chrono::milliseconds command_timeout{std::chrono::seconds(20)};
};

/// PCRs a quote may name: 0 to pcr_count - 1 (PC Client platforms
/// implement PCRs 0-23).
inline constexpr unsigned pcr_count = 24;

/// SHA-256 PCR values by PCR index, in ascending order: the order in which a
/// quote's pcrDigest concatenates them (TPM 2.0 Part 3 §18.4).
using pcr_values = std::map<unsigned, std::vector<uint8_t>>;

/// The PCR indices of `v`, ascending: the selection a quote of `v` names.
inline std::vector<unsigned> pcr_indices(const pcr_values& v) {
    std::vector<unsigned> out;
    out.reserve(v.size());
    for (const auto& [pcr, value] : v) {
        out.push_back(pcr);
    }
    return out;
}

/// The signing key's public half as the TPM holds it.
struct tpm_key_public {
    /// TPM2B_PUBLIC, marshalled (Part 2 §12.2.5): what check_key_public takes.
    std::vector<uint8_t> public_area;
    /// The key's TPM name: nameAlg (2 octets) || SHA-256(TPMT_PUBLIC)
    /// (Part 1 §16).
    std::vector<uint8_t> name;
};

/// A TPM2_Quote made with the signing key.
struct tpm_quote {
    /// TPMS_ATTEST, marshalled (Part 2 §10.12.12): the signed bytes.
    std::vector<uint8_t> attest;
    /// ECDSA over SHA-256(attest), r || s (64 octets).
    std::vector<uint8_t> signature;
    /// The quoted PCRs' values, read with TPM2_PCR_Read; their SHA-256 over
    /// the concatenation matches the quote's pcrDigest.
    pcr_values pcrs;
};

class tpm_worker;

class tpm_signer final : public signer {
public:
    /// Connects to the TPM, finds the signing key at `key_handle` (creating
    /// and persisting it when the handle is empty, refusing when it holds
    /// something else) and the counter at `counter_index` (defining it when
    /// absent, refusing when it is not an 8-octet counter).
    static result<std::unique_ptr<tpm_signer>> open(tpm_settings settings);

    ~tpm_signer() override;
    tpm_signer(const tpm_signer&) = delete;
    tpm_signer& operator=(const tpm_signer&) = delete;
    tpm_signer(tpm_signer&&) = delete;
    tpm_signer& operator=(tpm_signer&&) = delete;

    const signer_info& info() const noexcept override { return _info; }
    const tpm_settings& settings() const noexcept { return _settings; }

    /// TPM2_NV_Increment then TPM2_NV_Read (Part 3 §31.8, §31.13).
    result<uint64_t> next_counter() override;
    /// TPM2_NV_Read; 0 for a counter never incremented (such an index
    /// cannot be read, TPM_RC_NV_UNINITIALIZED, and its first increment
    /// yields a value of at least 1).
    result<uint64_t> read_counter() override;
    /// SHA-256 in software, then TPM2_Sign (Part 3 §20.2); r || s.
    result<std::vector<uint8_t>> sign(std::span<const uint8_t> message) override;

    /// The signing key's public area and name (read once at open).
    const tpm_key_public& key_public() const noexcept { return _key_public; }

    /// The endorsement key's public key as a DER SubjectPublicKeyInfo: the
    /// EK of tpm_settings::ek (for automatic, the template chosen as it
    /// says), derived under the endorsement hierarchy and flushed again.
    result<std::vector<uint8_t>> endorsement_key_der();

    /// The template of the EK endorsement_key_der last derived; automatic
    /// before it has.
    ek_template endorsement_template() const noexcept;

    /// The certificate of that EK as the TPM holds it (DER, from the
    /// template's NV index); empty when the TPM holds none.
    result<std::vector<uint8_t>> endorsement_certificate_der();

    /// TPM2_ActivateCredential (Part 3 §12.5) with the signing key as the
    /// object and the EK (as endorsement_key_der derives it) as the key that
    /// opens `blob` (made by hsm::make_credential): the credential, which
    /// the TPM gives only if `blob` was sealed to its EK for the signing
    /// key's Name. A low-range EK needs the endorsement authorization (its
    /// policy is PolicySecret(TPM_RH_ENDORSEMENT)); a high-range one its own
    /// (empty) authValue, which its userWithAuth allows.
    result<std::vector<uint8_t>> activate_credential(const tpm_credential_blob& blob);

    /// TPM2_Quote (Part 3 §18.4) over the SHA-256 bank's `pcrs` with
    /// `nonce` as qualifyingData (at most 64 octets), signed by the signing
    /// key, with the PCR values read alongside.
    result<tpm_quote> quote(std::span<const uint8_t> nonce, std::span<const unsigned> pcrs);

private:
    explicit tpm_signer(tpm_settings settings);

    tpm_settings _settings;
    std::unique_ptr<tpm_worker> _worker;
    signer_info _info;
    tpm_key_public _key_public;
    /// One caller at a time talks to the worker.
    mutable std::mutex _call_mutex;
    ek_template _ek_template = ek_template::automatic;
};

/// Checks, without a TPM, that `public_area` (a marshalled TPM2B_PUBLIC) is
/// a non-exportable ECDSA P-256 signing key made in a TPM (fixedTPM,
/// fixedParent, sensitiveDataOrigin, sign and restricted set, decrypt
/// clear, scheme ECDSA/SHA-256, nameAlg SHA-256) whose point is the one in
/// `expected_spki_der`. Returns the key's TPM name, or says what is wrong.
/// Restricted: only then does a TPMS_ATTEST signed by the key come from the
/// TPM (check_quote); the TPM signs any digest with an unrestricted key.
result<std::vector<uint8_t>> check_key_public(std::span<const uint8_t> public_area,
                                              std::span<const uint8_t> expected_spki_der);

/// The part of check_key_public() that needs no expected key: the area
/// unmarshals whole and is a restricted, non-exportable ECDSA/SHA-256 P-256
/// signing key. Cheap (no key decoding): for a public area that
/// check_key_public() accepted once, checked again against today's rules.
status check_key_attributes(std::span<const uint8_t> public_area);

/// Checks, without a TPM, a quote made by the key `key_spki_der`: the
/// signature over `attest`, that `attest` is a TPM-generated quote
/// (magic, type), that it carries `nonce`, that it covers exactly the
/// SHA-256 PCRs of `expected`, and that its pcrDigest is SHA-256 of
/// `expected`'s values in index order. Each failure says which.
status check_quote(std::span<const uint8_t> attest, std::span<const uint8_t> signature,
                   std::span<const uint8_t> key_spki_der, std::span<const uint8_t> nonce, const pcr_values& expected);

} // namespace ptpsec::hsm
