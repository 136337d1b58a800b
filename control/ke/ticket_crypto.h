#pragma once

// Tickets (seeds/001 §4.2.15, §5.2): the NTS-KE server encrypts the Security
// Association record body of a unicast key under the grantor's ticket key;
// the grantor, which alone shares that key with the server, decrypts it.
//
//   C = AEAD(A, N, K, P)   A empty, N 16 random octets (RAND_bytes),
//                          K the ticket key, P the Security Association body;
//                          C = tag (16) || ciphertext (|P|)
//
// The AEAD algorithms are those of Table 13, AES-SIV (RFC 5297) in its AEAD
// form (RFC 5297 §6): S2V over the components (A, N, P), the associated data
// a component even when empty, exactly as RFC 8915 implementations do (chrony
// through Nettle; tests/control/ticket_crypto_test.cpp compares with Nettle).
// OpenSSL's "AES-128-SIV", "AES-192-SIV" and "AES-256-SIV" do the work.
//
// Service code: it allocates and returns result<>; a ticket that does not
// open says why ("authentication failed" for anything tampered with or sealed
// under another key, without telling which).

#include <control/nts/record.h>
#include <drivers/base/result.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace ptpsec::ke {

inline constexpr size_t ticket_nonce_len = 16;
inline constexpr size_t siv_tag_len = 16;

/// Key octets of a Table 13 algorithm (32, 48, 64); 0 for one we do not run.
size_t aead_key_len(nts::aead_algorithm alg) noexcept;
inline bool aead_supported(nts::aead_algorithm alg) noexcept {
    return aead_key_len(alg) != 0;
}
/// "AEAD_AES_SIV_CMAC_256", or the number for an unknown one.
std::string aead_name(nts::aead_algorithm alg);

/// AES-SIV (RFC 5297 §2.6) over any list of S2V components before the
/// plaintext: tag || ciphertext. RFC 5297's own vectors run through this.
/// The plaintext must not be empty (OpenSSL's SIV needs data for its tag).
result<std::vector<uint8_t>> siv_seal(nts::aead_algorithm alg, std::span<const uint8_t> key,
                                      std::span<const std::span<const uint8_t>> components,
                                      std::span<const uint8_t> plaintext);
/// The plaintext, or an error if the tag does not verify.
result<nts::secret_bytes> siv_open(nts::aead_algorithm alg, std::span<const uint8_t> key,
                                   std::span<const std::span<const uint8_t>> components,
                                   std::span<const uint8_t> ciphertext);

/// AEAD(A, N, K, P) with the associated data `ad` (one component, possibly
/// empty). The key must have aead_key_len(alg) octets.
result<std::vector<uint8_t>> aead_seal(nts::aead_algorithm alg, std::span<const uint8_t> key,
                                       std::span<const uint8_t> nonce, std::span<const uint8_t> plaintext,
                                       std::span<const uint8_t> ad = {});
/// The plaintext, or an error if the tag does not verify.
result<nts::secret_bytes> aead_open(nts::aead_algorithm alg, std::span<const uint8_t> key,
                                    std::span<const uint8_t> nonce, std::span<const uint8_t> ciphertext,
                                    std::span<const uint8_t> ad = {});

/// A fresh ticket for `requester`: `sa` sealed under ticket key `ticket_key_id`.
result<nts::ticket> seal_ticket(uint32_t ticket_key_id, const nts::port_identity& requester, nts::aead_algorithm alg,
                                std::span<const uint8_t> ticket_key, const nts::security_association& sa);

/// The Security Association inside a ticket. The caller picks the key by
/// t.ticket_key_id and checks t.source_port_identity against the frame's
/// sender (§6); this checks the tag and the SA body's own structure.
result<nts::security_association> open_ticket(const nts::ticket& t, nts::aead_algorithm alg,
                                              std::span<const uint8_t> ticket_key);

} // namespace ptpsec::ke
