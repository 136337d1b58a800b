#pragma once

// Checking a signer's signatures with OpenSSL, and the two ECDSA signature
// encodings: COSE's fixed r || s (RFC 9053 §2.1) and the DER
// ECDSA-Sig-Value (RFC 3279 §2.2.3) that OpenSSL and PKCS#11 tokens speak.
// The Verifier, the Registrar and every backend's tests use these.

#include <hsm/signer.h>

#include <openssl/types.h>

#include <cstdint>
#include <span>
#include <vector>

namespace ptpsec::hsm {

/// ok when `signature` (COSE form) is a valid signature of `message` under
/// the DER SubjectPublicKeyInfo `public_key_der` with `alg`; otherwise says
/// why (a key that does not parse or is not of the algorithm's type, a
/// signature of the wrong length, a signature that does not verify).
status verify_signature(signature_algorithm alg, std::span<const uint8_t> public_key_der,
                        std::span<const uint8_t> message, std::span<const uint8_t> signature);

/// Whether `key` is an EC key on P-256 by name: other 256-bit curves
/// (secp256k1, brainpoolP256r1) are not ES256 (RFC 9053 §2.1).
bool is_p256_key(EVP_PKEY* key) noexcept;

/// DER ECDSA-Sig-Value -> r || s with each half `half` octets (32 for P-256).
result<std::vector<uint8_t>> ecdsa_der_to_raw(std::span<const uint8_t> der, size_t half = 32);

/// r || s -> DER ECDSA-Sig-Value.
result<std::vector<uint8_t>> ecdsa_raw_to_der(std::span<const uint8_t> raw);

} // namespace ptpsec::hsm
