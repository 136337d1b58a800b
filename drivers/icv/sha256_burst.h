#pragma once

// Many SHA-256 digests at once through intel-ipsec-mb's burst API: the
// attestation signer hashes two messages per event (its leaf and, on
// average, one inner node of the Merkle tree), and one call per message
// through OpenSSL's EVP interface costs more in set-up than in hashing.
// Measured on the AMD EPYC of docs/benchmarks.md: a 151-octet leaf 90 ns and
// a 65-octet node 72 ns in bursts of 64 on the SSE manager (SHA-NI), against
// 156 ns and 126 ns through EVP_DigestInit/Update/Final with one context.
//
// One instance per thread (it owns its manager, which is not thread-safe).
// Control-side code: created with a result; hash() is noexcept and
// allocates nothing.

#include <drivers/base/result.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

struct IMB_MGR;

namespace ptpsec::icv {

inline constexpr size_t sha256_digest_len = 32;

/// One message to hash and where its digest goes (32 octets).
struct sha256_input {
    const uint8_t* data = nullptr;
    uint64_t len = 0;
    uint8_t* digest = nullptr;
};

class sha256_burst {
public:
    /// Messages handed to the library per call; longer lists are split.
    static constexpr uint32_t burst = 64;

    /// On the SSE manager where the CPU has SHA-NI (its one-lane SHA-NI
    /// code is as fast per message as the 8-lane AVX2 code and faster than
    /// the 16-lane AVX-512 code, measured), otherwise on the widest manager
    /// the CPU runs. `arch` forces one (tests, benchmarks).
    static result<std::unique_ptr<sha256_burst>> create(std::optional<imb_arch> arch = std::nullopt);

    ~sha256_burst();
    sha256_burst(const sha256_burst&) = delete;
    sha256_burst& operator=(const sha256_burst&) = delete;
    sha256_burst(sha256_burst&&) = delete;
    sha256_burst& operator=(sha256_burst&&) = delete;

    /// Writes SHA-256(data[0..len)) to each input's digest. False when the
    /// library refused or failed a job; the digests are then unspecified.
    /// A message may be empty but its data pointer must not be null.
    bool hash(std::span<const sha256_input> inputs) noexcept;

    imb_arch arch() const noexcept { return _arch; }

private:
    sha256_burst(IMB_MGR* m, imb_arch arch) noexcept : _mgr(m), _arch(arch) {}
    IMB_MGR* _mgr;
    imb_arch _arch;
};

} // namespace ptpsec::icv
