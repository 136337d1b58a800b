#pragma once

// New-connection rate limit per source address: a token bucket each, so a
// single client (or a single IPv6 /64) cannot take the handshake capacity of
// the server, the flooding seeds/001 §2.5.4 warns about.

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <unordered_map>

namespace ptpsec::tls {

struct rate_limit {
    /// Tokens per second per source; 0 disables the limit.
    double per_second = 10.0;
    /// Bucket size: connections a quiet source may open at once.
    double burst = 20.0;
    /// Sources tracked at most. Buckets that have filled up again carry no
    /// state and are dropped when the table is full (at most once a second);
    /// if it is still full, new sources are refused until room is made. A
    /// flood from more sources than this within a refill time (burst /
    /// per_second) is then refused as a whole: the server stays up.
    size_t max_sources = 16384;
};

class rate_limiter {
public:
    using clock = std::chrono::steady_clock;

    explicit rate_limiter(const rate_limit& limit);

    /// Takes a token from the bucket of `source`'s key: the IPv4 address, or
    /// the /64 prefix of an IPv6 address (one host usually holds a whole
    /// /64). IPv4-mapped IPv6 addresses count as IPv4. False: refuse.
    bool admit(const sockaddr_storage& source, clock::time_point now);

    size_t sources() const noexcept { return _buckets.size(); }

private:
    using key = std::array<uint8_t, 16>;
    struct key_hash {
        uint64_t seed;
        size_t operator()(const key& k) const noexcept;
    };
    struct bucket {
        double tokens;
        clock::time_point last;
    };

    double refilled(const bucket& b, clock::time_point now) const noexcept;
    void prune(clock::time_point now);

    rate_limit _limit;
    std::unordered_map<key, bucket, key_hash> _buckets;
    clock::time_point _next_prune{};
};

} // namespace ptpsec::tls
