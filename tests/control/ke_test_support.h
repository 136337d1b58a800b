#pragma once

// What the KE server's tests share: clocks the test moves by hand, a group
// policy of one hour, and a state store that refuses to write (fault
// injection: a full or broken disk, which a test cannot cause on a real file
// as root).

#include <control/ke/group_keys.h>

#include <string>

namespace ptpsec::ke::test {

inline constexpr int64_t s = 1'000'000'000LL;

struct test_clocks final : clocks {
    int64_t mono = 1000 * s;
    int64_t wall = 1'800'000'000LL * s;
    int64_t monotonic_ns() const override { return mono; }
    int64_t wall_ns() const override { return wall; }
    void advance(int64_t ns) {
        mono += ns;
        wall += ns;
    }
};

/// Lifetime 3600 s, update period 300 s, grace 3 s, sdoId 0x100.
inline group_policy policy(std::string name, uint8_t domain, icv::algorithm alg = icv::algorithm::hmac_sha256_128) {
    group_policy p;
    p.name = std::move(name);
    p.id = group_id{domain, 0x100, 0};
    p.alg = alg;
    p.lifetime_s = 3600;
    p.update_period_s = 300;
    p.grace_period_s = 3;
    return p;
}

struct refusing_store final : state_store {
    result<saved> load() override { return saved{}; }
    status save_epoch(const std::string&, uint8_t, const epoch&, uint32_t) override { return error{"disk full"}; }
    status forget_retired(int64_t) override { return ok_status(); }
    status save_key_id_ceiling(uint32_t) override { return error{"disk full"}; }
    status save_spp(const std::string&, uint8_t) override { return error{"disk full"}; }
    status save_lifetime(uint32_t, uint32_t) override { return error{"disk full"}; }
};

} // namespace ptpsec::ke::test
