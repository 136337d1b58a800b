#pragma once

// The seam between the fast path and the crypto libraries. An engine turns a
// key into a prepared key once (at SA install) and then computes ICVs for
// bursts of messages. One virtual call per burst, none per message.

#include <drivers/base/result.h>
#include <drivers/icv/algorithm.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace ptpsec::icv {

/// Key material expanded by one engine: HMAC inner/outer states, AES round
/// keys and CMAC subkeys, GHASH tables. Only the engine that made it may use
/// it. Wiped on destruction.
class prepared_key {
public:
    /// Which engine family made a key; checked with one compare per message
    /// instead of a dynamic_cast.
    enum class backend : uint8_t { ipsecmb, openssl, cryptodev };

    prepared_key(algorithm alg, backend b) noexcept : _alg(alg), _backend(b) {}
    virtual ~prepared_key() = default;
    prepared_key(const prepared_key&) = delete;
    prepared_key& operator=(const prepared_key&) = delete;
    prepared_key(prepared_key&&) = delete;
    prepared_key& operator=(prepared_key&&) = delete;

    algorithm alg() const noexcept { return _alg; }
    uint8_t icv_len() const noexcept { return icv_length(_alg); }
    backend made_by() const noexcept { return _backend; }

private:
    algorithm _alg;
    backend _backend;
};

using key_handle = std::unique_ptr<prepared_key>;

/// One MAC to compute. The engine writes icv_len() octets to icv_out. `msg`
/// points at `len` readable octets (it may be null only when len is 0) and
/// `icv_out` at icv_len() writable ones: engines do not check these (the
/// intel-ipsec-mb engine hands them to the library without its job checks).
struct mac_request {
    const prepared_key* key;
    const uint8_t* msg;
    uint32_t len;
    /// GMAC only: the 12-octet nonce (salt || IV); ignored otherwise.
    const uint8_t* nonce;
    uint8_t* icv_out;
};

class engine {
public:
    engine() = default;
    virtual ~engine() = default;
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;
    engine(engine&&) = delete;
    engine& operator=(engine&&) = delete;

    virtual std::string_view name() const noexcept = 0;

    /// Expands a key. Not for the fast path: it allocates. The key length is
    /// checked against the algorithm (AES keys 16/24/32 octets, HMAC keys
    /// any non-zero length).
    virtual result<key_handle> prepare(algorithm alg, std::span<const uint8_t> key) = 0;

    /// Replaces the key inside an existing prepared key of the same algorithm,
    /// without allocating (per-sender GMAC subkeys are derived this way).
    /// Returns false if the key length does not suit the algorithm.
    virtual bool rekey(prepared_key& pk, std::span<const uint8_t> key) noexcept = 0;

    /// Room for a key of `alg` that rekey() fills later (the slots of a
    /// GMAC subkey table): it holds no usable key before that. Not for the
    /// fast path: it allocates. By default a key of zeros is prepared;
    /// engines that can skip that expansion do.
    virtual result<key_handle> prepare_slot(algorithm alg) {
        const std::array<uint8_t, max_key_len> zeros{};
        const uint8_t len = info(alg).key_len;
        return prepare(alg, std::span<const uint8_t>(zeros.data(), len != 0 ? len : 32));
    }

    /// Computes the ICV of every request. Returns the number computed, which
    /// is n unless a request was invalid (a programming error, not a packet
    /// error); the ICVs of such requests are left untouched.
    virtual uint16_t compute_burst(const mac_request* reqs, uint16_t n) noexcept = 0;

    /// Convenience for code outside the fast path: one message.
    bool compute_one(const prepared_key& key, std::span<const uint8_t> msg, const uint8_t* nonce,
                     uint8_t* icv_out) noexcept {
        const mac_request r{&key, msg.data(), static_cast<uint32_t>(msg.size()), nonce, icv_out};
        return compute_burst(&r, 1) == 1;
    }
};

/// Checks a key length against an algorithm; the message names the problem.
status check_key_length(algorithm alg, size_t key_len);

/// The same check without a message, for rekey() on the fast path: AES keys
/// of their length, HMAC keys of 1 to max_key_len octets.
inline bool key_length_fits(algorithm alg, size_t key_len) noexcept {
    const uint8_t fixed = info(alg).key_len;
    return key_len != 0 && key_len <= max_key_len && (fixed == 0 || key_len == fixed);
}

} // namespace ptpsec::icv
