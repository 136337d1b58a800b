// libFuzzer target for the endorsement key a TPM hands the Registrar at
// enrolment (hsm/tpm_credential.h): the input is the EK's DER
// SubjectPublicKeyInfo, read by endorsement_key_profile_of and sealed to by
// make_credential. Nothing escapes but a result; a key whose profile is
// refused is refused by make_credential too. For a key that is taken:
//   - the profile is one of the TCG EK templates (key type, nameAlg, AES
//     key length belong together);
//   - the credential blob has the sizes TPM2_ActivateCredential expects:
//     id_object = TPM2B_DIGEST(outerHMAC) || encIdentity (2 + 32 octets
//     here), encrypted_secret = the RSA-OAEP ciphertext (the modulus' octets)
//     or the ephemeral TPMS_ECC_POINT (two TPM2B of the field size).
//
// Seeds in fuzz/corpus/ek_spki: RSA 2048, 3072 and 4096 and NIST P-256,
// P-384 and P-521 keys (the six EK key types), and keys no template has
// (RSA 1024, secp256k1, Ed25519), and P-256 as explicit parameters (which
// OpenSSL names P-256 again; mutations of it reach curves no name stands for).

#include <fuzz/invariant.h>
#include <hsm/tpm_credential.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

namespace {

using ptpsec::fuzz::require;

struct expected {
    std::string_view kind;
    std::string_view digest;
    size_t digest_len;
    size_t sym_key_len;
    size_t secret_len; ///< RSA: the modulus' octets; ECC: 2 + field + 2 + field
};

constexpr std::array<expected, 6> templates{{
    {"RSA 2048", "SHA256", 32, 16, 256},
    {"RSA 3072", "SHA384", 48, 32, 384},
    {"RSA 4096", "SHA384", 48, 32, 512},
    {"ECC NIST P-256", "SHA256", 32, 16, 2 + 32 + 2 + 32},
    {"ECC NIST P-384", "SHA384", 48, 32, 2 + 48 + 2 + 48},
    {"ECC NIST P-521", "SHA512", 64, 32, 2 + 66 + 2 + 66},
}};

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    using namespace ptpsec;
    const std::span<const uint8_t> spki(data, size);
    std::array<uint8_t, 34> name{0x00, 0x0B};
    name[2] = 0x5A;
    std::array<uint8_t, hsm::max_credential_len> credential{};
    credential.fill(0xC3);

    const auto profile = hsm::endorsement_key_profile_of(spki);
    const auto blob = hsm::make_credential(spki, name, credential);
    if (!profile) {
        require(!profile.message().empty(), "a refusal says why");
        require(!blob, "a key without a profile is not sealed to");
        return 0;
    }
    const expected* t = nullptr;
    for (const auto& e : templates) {
        if (e.kind == profile->kind) {
            t = &e;
        }
    }
    require(t != nullptr, "the profile is a TCG EK template");
    require(profile->digest == t->digest && profile->digest_len == t->digest_len &&
                profile->sym_key_len == t->sym_key_len,
            "the template's nameAlg and AES key go with its key type");
    if (!blob) {
        // A key OpenSSL decodes but cannot encrypt to or agree with.
        require(!blob.message().empty(), "a refusal says why");
        return 0;
    }
    require(blob->id_object.size() == 2 + t->digest_len + 2 + credential.size(),
            "id_object is TPM2B_DIGEST(outerHMAC) || encIdentity");
    require(blob->id_object[0] == 0 && blob->id_object[1] == t->digest_len, "outerHMAC is one digest long");
    require(blob->encrypted_secret.size() == t->secret_len, "the encrypted secret has the key type's size");
    if (t->kind.starts_with("ECC")) {
        const size_t field = (t->secret_len - 4) / 2;
        const auto& s = blob->encrypted_secret;
        require(s[0] == field >> 8 && s[1] == (field & 0xFF) && s[2 + field] == field >> 8 &&
                    s[3 + field] == (field & 0xFF),
                "the ephemeral point is two TPM2B of the field size");
    }
    return 0;
}
