// control/tls/rate_limiter: new connections per source, a token bucket each,
// on explicit time points (no sleeps).

#include <control/tls/rate_limiter.h>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

namespace ptpsec::tls {
namespace {

using namespace std::chrono_literals;
using clock = rate_limiter::clock;

sockaddr_storage address(const std::string& text, uint16_t port = 40000) {
    sockaddr_storage ss{};
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
    } else {
        EXPECT_EQ(::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr), 1) << text;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
    }
    return ss;
}

TEST(tls_rate_limiter, a_burst_then_refusals_then_refill) {
    rate_limiter rl({.per_second = 2.0, .burst = 3.0});
    const auto t0 = clock::now();
    const auto a = address("192.0.2.1");
    EXPECT_TRUE(rl.admit(a, t0));
    EXPECT_TRUE(rl.admit(a, t0));
    EXPECT_TRUE(rl.admit(a, t0));
    EXPECT_FALSE(rl.admit(a, t0)) << "burst of 3 used up";
    EXPECT_FALSE(rl.admit(a, t0 + 400ms)) << "0.8 tokens back";
    EXPECT_TRUE(rl.admit(a, t0 + 500ms)) << "1 token back at 2/s";
    EXPECT_FALSE(rl.admit(a, t0 + 500ms));
    EXPECT_TRUE(rl.admit(a, t0 + 1h));
    EXPECT_TRUE(rl.admit(a, t0 + 1h));
    EXPECT_TRUE(rl.admit(a, t0 + 1h));
    EXPECT_FALSE(rl.admit(a, t0 + 1h)) << "a long pause refills to the burst, not beyond";
}

TEST(tls_rate_limiter, sources_have_their_own_buckets_whatever_the_port) {
    rate_limiter rl({.per_second = 1.0, .burst = 1.0});
    const auto t0 = clock::now();
    EXPECT_TRUE(rl.admit(address("192.0.2.1", 1000), t0));
    EXPECT_FALSE(rl.admit(address("192.0.2.1", 1001), t0)) << "another source port, the same host";
    EXPECT_TRUE(rl.admit(address("192.0.2.2"), t0));
    EXPECT_EQ(rl.sources(), 2U);
}

TEST(tls_rate_limiter, ipv6_counts_per_64_and_mapped_ipv4_as_ipv4) {
    rate_limiter rl({.per_second = 1.0, .burst = 1.0});
    const auto t0 = clock::now();
    EXPECT_TRUE(rl.admit(address("2001:db8:1:2::1"), t0));
    EXPECT_FALSE(rl.admit(address("2001:db8:1:2:ffff::9"), t0)) << "same /64";
    EXPECT_TRUE(rl.admit(address("2001:db8:1:3::1"), t0)) << "another /64";

    EXPECT_TRUE(rl.admit(address("198.51.100.7"), t0));
    EXPECT_FALSE(rl.admit(address("::ffff:198.51.100.7"), t0)) << "what a dual-stack socket reports";
    EXPECT_TRUE(rl.admit(address("::ffff:198.51.100.8"), t0)) << "mapped IPv4 is not grouped by /64";
}

TEST(tls_rate_limiter, a_full_table_drops_refilled_buckets_and_otherwise_refuses_new_sources) {
    rate_limiter rl({.per_second = 1.0, .burst = 2.0, .max_sources = 2});
    const auto t0 = clock::now();
    EXPECT_TRUE(rl.admit(address("192.0.2.1"), t0));
    EXPECT_TRUE(rl.admit(address("192.0.2.2"), t0));
    EXPECT_FALSE(rl.admit(address("192.0.2.3"), t0)) << "table full, no bucket has refilled";
    EXPECT_TRUE(rl.admit(address("192.0.2.1"), t0)) << "known sources keep their buckets";
    EXPECT_EQ(rl.sources(), 2U);

    // 192.0.2.2 is back at its burst after a second; 192.0.2.1 is not (it took two).
    EXPECT_TRUE(rl.admit(address("192.0.2.3"), t0 + 1100ms));
    EXPECT_EQ(rl.sources(), 2U);
    EXPECT_TRUE(rl.admit(address("192.0.2.1"), t0 + 1100ms)) << "1.1 tokens: kept, not reset";
    EXPECT_FALSE(rl.admit(address("192.0.2.1"), t0 + 1100ms)) << "0.1 tokens left";
}

TEST(tls_rate_limiter, zero_rate_disables_the_limit) {
    rate_limiter rl({.per_second = 0.0, .burst = 0.0});
    const auto t0 = clock::now();
    for (int i = 0; i < 1000; ++i) {
        ASSERT_TRUE(rl.admit(address("192.0.2.1"), t0));
    }
    EXPECT_EQ(rl.sources(), 0U);
}

} // namespace
} // namespace ptpsec::tls
