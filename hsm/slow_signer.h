#pragma once

// A test and benchmark aid, not a backend: wraps a real signer and makes
// every sign() take at least `minimum_sign_time` (it signs with the wrapped
// signer, then sleeps for what is left). It models a slow device, "a signer
// slowed to 70 ms per signature" (BRIEF "Attestation": a TPM signs tens of
// times per second), on top of a fast one, so that the batching signer's
// behaviour under a slow device can be measured with any backend. Counters,
// the key and info() are the wrapped signer's, unchanged: the tokens it
// produces verify like the wrapped signer's.
//
// Header-only; used from one thread, like the signer it wraps.

#include <hsm/signer.h>

#include <chrono>
#include <thread>

namespace ptpsec::hsm {

class slow_signer final : public signer {
public:
    slow_signer(signer& wrapped, std::chrono::microseconds minimum_sign_time) noexcept
        : _wrapped(wrapped), _minimum_sign_time(minimum_sign_time) {}

    const signer_info& info() const noexcept override { return _wrapped.info(); }
    result<uint64_t> next_counter() override { return _wrapped.next_counter(); }
    result<uint64_t> read_counter() override { return _wrapped.read_counter(); }

    result<std::vector<uint8_t>> sign(std::span<const uint8_t> message) override {
        const auto until = std::chrono::steady_clock::now() + _minimum_sign_time;
        auto signature = _wrapped.sign(message);
        std::this_thread::sleep_until(until);
        return signature;
    }

    std::chrono::microseconds minimum_sign_time() const noexcept { return _minimum_sign_time; }

private:
    signer& _wrapped;
    std::chrono::microseconds _minimum_sign_time;
};

} // namespace ptpsec::hsm
