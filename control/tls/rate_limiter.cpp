#include <control/tls/rate_limiter.h>

#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <random>

namespace ptpsec::tls {

namespace {

/// A per-process random seed: a client choosing its source addresses cannot
/// aim them at one hash bucket of the table.
uint64_t random_seed() {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ rd();
}

uint64_t mix(uint64_t x) noexcept {
    // splitmix64 finalizer
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

} // namespace

size_t rate_limiter::key_hash::operator()(const key& k) const noexcept {
    uint64_t hi = 0;
    uint64_t lo = 0;
    std::memcpy(&hi, k.data(), 8);
    std::memcpy(&lo, k.data() + 8, 8);
    return static_cast<size_t>(mix(hi ^ seed) ^ mix(lo + seed));
}

rate_limiter::rate_limiter(const rate_limit& limit) : _limit(limit), _buckets(16, key_hash{random_seed()}) {}

double rate_limiter::refilled(const bucket& b, clock::time_point now) const noexcept {
    const double elapsed = std::chrono::duration<double>(now - b.last).count();
    return std::min(_limit.burst, b.tokens + std::max(elapsed, 0.0) * _limit.per_second);
}

void rate_limiter::prune(clock::time_point now) {
    _next_prune = now + std::chrono::seconds(1);
    std::erase_if(_buckets, [&](const auto& entry) { return refilled(entry.second, now) >= _limit.burst; });
}

bool rate_limiter::admit(const sockaddr_storage& source, clock::time_point now) {
    if (_limit.per_second <= 0) {
        return true;
    }
    key k{};
    if (source.ss_family == AF_INET) {
        // As ::ffff:a.b.c.d, the same key a dual-stack socket reports.
        const auto& a = reinterpret_cast<const sockaddr_in&>(source);
        k[10] = 0xff;
        k[11] = 0xff;
        std::memcpy(k.data() + 12, &a.sin_addr, 4);
    } else if (source.ss_family == AF_INET6) {
        const auto& a = reinterpret_cast<const sockaddr_in6&>(source);
        std::memcpy(k.data(), &a.sin6_addr, 16);
        if (!IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) {
            std::fill(k.begin() + 8, k.end(), uint8_t{0});
        }
    }
    auto it = _buckets.find(k);
    if (it == _buckets.end()) {
        if (_buckets.size() >= _limit.max_sources && now >= _next_prune) {
            prune(now);
        }
        if (_buckets.size() >= _limit.max_sources) {
            return false;
        }
        it = _buckets.emplace(k, bucket{_limit.burst, now}).first;
    }
    bucket& b = it->second;
    b.tokens = refilled(b, now);
    b.last = now;
    if (b.tokens < 1.0) {
        return false;
    }
    b.tokens -= 1.0;
    return true;
}

} // namespace ptpsec::tls
