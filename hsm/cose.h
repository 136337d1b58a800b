#pragma once

// COSE_Sign1 (RFC 9052 §4.2) as the evidence uses it: the batch token that
// carries a batch's payload and the signer's signature over it.
//
//   COSE_Sign1 = #6.18([                 ; tag 18, RFC 9052 §2
//       protected   : bstr .cbor {1: alg},  ; alg -7 (ES256) or -8 (EdDSA)
//       unprotected : {4: kid},             ; kid: the signer_id's UTF-8 octets
//       payload     : bstr,
//       signature   : bstr,                 ; 64 octets (r || s, or Ed25519)
//   ])
//
// The signature covers the Sig_structure of RFC 9052 §4.4:
//   ["Signature1", body_protected, external_aad, payload]
// with the protected bstr exactly as it appears in the message, and
// external_aad empty for the evidence.
//
// Parsing is strict to this profile: the algorithm must be in the protected
// header (so it is signed), the unprotected header holds the kid and nothing
// else, the payload is attached. A message outside the profile is refused
// with a reason.

#include <drivers/base/result.h>
#include <hsm/deterministic_cbor.h>
#include <hsm/signer.h>

#include <cstdint>
#include <span>
#include <vector>

namespace ptpsec::hsm {

inline constexpr uint64_t cose_sign1_tag = 18;   // RFC 9052 §2, Table 1
inline constexpr int64_t cose_header_alg = 1;    // RFC 9052 §3.1, Table 2
inline constexpr int64_t cose_header_kid = 4;    // RFC 9052 §3.1, Table 2
inline constexpr size_t cose_signature_len = 64; // ES256 r || s; Ed25519

struct cose_sign1 {
    signature_algorithm algorithm = signature_algorithm::es256;
    /// The contents of the protected bstr, as signed.
    std::vector<uint8_t> protected_header;
    std::vector<uint8_t> kid;
    std::vector<uint8_t> payload;
    std::vector<uint8_t> signature;

    bool operator==(const cose_sign1&) const = default;
};

/// RFC 9052 §4.4: the encoded ["Signature1", body_protected, external_aad,
/// payload], the octets a signer signs.
result<std::vector<uint8_t>> sig_structure(std::span<const uint8_t> body_protected,
                                           std::span<const uint8_t> external_aad, std::span<const uint8_t> payload);

/// Signs `payload` with `s` (one call to s.sign()); the protected header
/// names s.info().algorithm and the unprotected header carries `kid`.
result<cose_sign1> sign_cose_sign1(signer& s, std::span<const uint8_t> kid, std::span<const uint8_t> payload);

/// The tagged COSE_Sign1 as a CBOR item / as its encoding.
cbor::item to_item(const cose_sign1& msg);
result<std::vector<uint8_t>> encode_cose_sign1(const cose_sign1& msg);

/// Strict parse of a tagged COSE_Sign1 in this profile.
result<cose_sign1> parse_cose_sign1(const cbor::item& it);
result<cose_sign1> parse_cose_sign1(std::span<const uint8_t> encoded);

/// ok when `msg` names `expected` as its algorithm and its signature over
/// the Sig_structure verifies under the DER SubjectPublicKeyInfo
/// `public_key_der`. The algorithm is compared first so that a message can
/// never choose how it is checked.
status verify_cose_sign1(const cose_sign1& msg, signature_algorithm expected, std::span<const uint8_t> public_key_der,
                         std::span<const uint8_t> external_aad = {});

} // namespace ptpsec::hsm
