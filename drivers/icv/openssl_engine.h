#pragma once

// Reference ICV engine on OpenSSL 3 EVP_MAC, one message at a time. It exists
// to cross-check the intel-ipsec-mb engine and as the benchmark baseline; the
// fast path does not use it.

#include <drivers/icv/engine.h>

namespace ptpsec::icv {

class openssl_engine final : public engine {
public:
    openssl_engine();
    ~openssl_engine() override;
    openssl_engine(const openssl_engine&) = delete;
    openssl_engine& operator=(const openssl_engine&) = delete;
    openssl_engine(openssl_engine&&) = delete;
    openssl_engine& operator=(openssl_engine&&) = delete;

    std::string_view name() const noexcept override;
    result<key_handle> prepare(algorithm alg, std::span<const uint8_t> key) override;
    bool rekey(prepared_key& pk, std::span<const uint8_t> key) noexcept override;
    uint16_t compute_burst(const mac_request* reqs, uint16_t n) noexcept override;

private:
    struct macs;
    std::unique_ptr<macs> _macs;
};

} // namespace ptpsec::icv
