// The node role's retry rule (control/node/node.h): with no KE server to
// reach, each failure doubles the delay up to retry_max, with jitter of half
// to all of it, so that a fleet does not come back at once.

#include "../process.h"
#include "test_pki.h"

#include <control/node/node.h>

#include <gtest/gtest.h>

#include <set>

namespace ptpsec::node {
namespace {

constexpr int64_t ms = 1'000'000LL;

/// A CA and a node certificate, made once.
const test::temp_dir& pki() {
    static const test::temp_dir dir;
    static const bool made = [] {
        const auto ca = test::make_identity({.cn = "CA", .ca = true});
        const auto node = test::make_identity({.cn = "node", .issuer = &ca, .eku = "clientAuth"});
        test::write_pem_file(dir.file("ca.pem"), test::cert_pem(ca));
        test::write_pem_file(dir.file("node.pem"), test::cert_pem(node));
        test::write_pem_file(dir.file("node.key"), test::key_pem(node));
        return true;
    }();
    (void)made;
    return dir;
}

settings unreachable() {
    settings s;
    s.tls.ca_file = pki().file("ca.pem");
    s.tls.cert_file = pki().file("node.pem");
    s.tls.key_file = pki().file("node.key");
    s.server_host = "127.0.0.1";
    s.server_port = 1; // nothing listens there: connect() is refused at once
    s.tls.timeout = std::chrono::milliseconds(500);
    s.groups = {node_group{"plant-a", ke::group_id{0, 0, 0}, std::nullopt}};
    s.dataplane_prefix = "ptpsec-node-test-none";
    s.retry_min = std::chrono::milliseconds(100);
    s.retry_max = std::chrono::milliseconds(1600);
    return s;
}

TEST(node_retry, doubles_with_jitter_up_to_the_limit) {
    node n(unreachable(), 42);
    int64_t now = 1'000'000 * ms;
    int64_t expected = 100;
    for (int attempt = 0; attempt < 8; ++attempt) {
        n.step(now);
        const group_state& g = n.groups()[0];
        const int64_t delay = (g.next_fetch_ns - now) / ms;
        EXPECT_EQ(g.backoff.count(), expected) << "attempt " << attempt;
        EXPECT_GE(delay, expected / 2) << "attempt " << attempt;
        EXPECT_LE(delay, expected) << "attempt " << attempt;
        EXPECT_NE(g.last_error.find("127.0.0.1:1"), std::string::npos) << g.last_error;
        now = g.next_fetch_ns;
        expected = std::min<int64_t>(expected * 2, 1600);
    }
    EXPECT_EQ(n.stats().fetch_failures, 8U);
    EXPECT_EQ(n.stats().keys_received, 0U);
}

TEST(node_retry, nodes_with_different_seeds_spread_out) {
    std::set<int64_t> at;
    for (uint64_t seed = 1; seed <= 16; ++seed) {
        settings s = unreachable();
        s.retry_min = std::chrono::milliseconds(10'000);
        node n(s, seed);
        n.step(0);
        at.insert(n.groups()[0].next_fetch_ns);
    }
    EXPECT_GT(at.size(), 12U) << "sixteen nodes retry at (nearly) as many moments";
}

} // namespace
} // namespace ptpsec::node
