#pragma once

// What the KE server's tests share: clocks the test moves by hand, a group
// policy of one hour, a state store that refuses to write (fault
// injection: a full or broken disk, which a test cannot cause on a real file
// as root), and a search of the state file for key octets.

#include "../process.h"

#include <control/ke/group_keys.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <span>
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

/// Whether `needle` occurs in the file at `path` (absent file: no).
inline bool file_holds(const std::string& path, std::span<const uint8_t> needle) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        return false;
    }
    const std::string bytes = ptpsec::test::read_file(path);
    return std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end(),
                       [](char c, uint8_t u) { return static_cast<uint8_t>(c) == u; }) != bytes.end();
}

/// In the SQLite state file at `path` or in its write-ahead log.
inline bool state_holds(const std::string& path, std::span<const uint8_t> needle) {
    return file_holds(path, needle) || file_holds(path + "-wal", needle);
}

} // namespace ptpsec::ke::test
