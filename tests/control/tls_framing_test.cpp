// control/tls/framing: where an NTS message ends, from record headers alone
// (seeds/001 §4, Figure 7; §4.2.4 End of Message).

#include <control/tls/framing.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <vector>

namespace ptpsec::tls {
namespace {

void append_record(std::vector<uint8_t>& out, uint16_t type, const std::vector<uint8_t>& body, bool critical = true) {
    const uint16_t t = static_cast<uint16_t>(type | (critical ? 0x8000 : 0));
    out.push_back(static_cast<uint8_t>(t >> 8));
    out.push_back(static_cast<uint8_t>(t));
    out.push_back(static_cast<uint8_t>(body.size() >> 8));
    out.push_back(static_cast<uint8_t>(body.size()));
    out.insert(out.end(), body.begin(), body.end());
}

std::vector<uint8_t> end_of_message_record() {
    return {end_of_message, end_of_message + record_header_size};
}

TEST(tls_framing, a_lone_end_of_message_is_a_message) {
    message_framer f(64);
    const auto m = end_of_message_record();
    EXPECT_EQ(f.scan(m), frame_state::complete);
    EXPECT_EQ(f.message_size(), 4U);
}

TEST(tls_framing, records_then_end_of_message) {
    std::vector<uint8_t> m;
    append_record(m, 1, {0x00, 0x01});       // NTS Next Protocol Negotiation: PTPv2.1
    append_record(m, 1024, {1, 2, 3, 4, 5}); // Association Mode
    append_record(m, 0, {});
    message_framer f(1024);
    EXPECT_EQ(f.scan(m), frame_state::complete);
    EXPECT_EQ(f.message_size(), m.size());
}

TEST(tls_framing, end_of_message_without_the_critical_bit_still_ends_it) {
    // Framing looks at the type; whether C is set is the codec's to judge.
    std::vector<uint8_t> m;
    append_record(m, 0, {}, false);
    message_framer f(16);
    EXPECT_EQ(f.scan(m), frame_state::complete);
}

TEST(tls_framing, octet_by_octet_and_octets_after_the_message_left_alone) {
    std::vector<uint8_t> m;
    append_record(m, 1028, {0x00, 0x03});
    append_record(m, 0, {});
    const size_t message_size = m.size();
    append_record(m, 1028, {0x00, 0x03}); // the start of the next message, pipelined
    message_framer f(1024);
    for (size_t n = 0; n < message_size; ++n) {
        EXPECT_EQ(f.scan(std::span(m).first(n)), frame_state::incomplete) << n << " octets";
    }
    EXPECT_EQ(f.scan(m), frame_state::complete);
    EXPECT_EQ(f.message_size(), message_size);
    EXPECT_EQ(f.scan(m), frame_state::complete) << "the state stays until reset()";

    f.reset();
    const std::vector<uint8_t> rest(m.begin() + static_cast<std::ptrdiff_t>(message_size), m.end());
    EXPECT_EQ(f.scan(rest), frame_state::incomplete);
}

TEST(tls_framing, end_of_message_inside_a_container_body_does_not_end_it) {
    // seeds/001 §4: container records carry records; §4.2.4 says an End of
    // Message inside one is ignored.
    std::vector<uint8_t> inner;
    append_record(inner, 1033, {0x00, 0x00});
    append_record(inner, 0, {});
    std::vector<uint8_t> m;
    append_record(m, 1025, inner); // Current Parameters container
    message_framer f(1024);
    EXPECT_EQ(f.scan(m), frame_state::incomplete);
    append_record(m, 0, {});
    EXPECT_EQ(f.scan(m), frame_state::complete);
    EXPECT_EQ(f.message_size(), m.size());
}

TEST(tls_framing, oversize_is_seen_from_the_header_before_the_body) {
    // A record of 56 octets of body needs 4 + 56 + 4 (End of Message) = 64.
    std::vector<uint8_t> fits;
    append_record(fits, 1034, std::vector<uint8_t>(56));
    append_record(fits, 0, {});
    message_framer ok(64);
    EXPECT_EQ(ok.scan(fits), frame_state::complete);
    EXPECT_EQ(ok.message_size(), 64U);

    const std::vector<uint8_t> header = {0x04, 0x0a, 0x00, 57}; // body of 57: 65 octets at least
    message_framer over(64);
    EXPECT_EQ(over.scan(header), frame_state::oversize) << "only the header has arrived";
    EXPECT_EQ(over.scan(fits), frame_state::oversize) << "the state stays until reset()";
}

TEST(tls_framing, many_small_records_over_the_limit) {
    std::vector<uint8_t> m;
    for (int i = 0; i < 20; ++i) {
        append_record(m, 1031, std::vector<uint8_t>(10)); // 14 octets each
    }
    message_framer f(100);
    EXPECT_EQ(f.scan(m), frame_state::oversize);
    EXPECT_LE(f.message_size(), 100U);
}

TEST(tls_framing, the_largest_record_body_against_the_default_limit) {
    // A 16-bit Body Length allows 65535 octets: 4 + 65535 + 4 > 64 KiB.
    const std::vector<uint8_t> header = {0x80, 0x01, 0xff, 0xff};
    message_framer f(size_t{64} * 1024);
    EXPECT_EQ(f.scan(header), frame_state::oversize);
}

TEST(tls_framing, end_of_message_with_a_body_is_malformed) {
    std::vector<uint8_t> m;
    append_record(m, 0, {0x00});
    message_framer f(64);
    EXPECT_EQ(f.scan(m), frame_state::malformed);
    f.reset();
    EXPECT_EQ(f.scan(end_of_message_record()), frame_state::complete);
}

TEST(tls_framing, a_limit_below_one_record_header_is_raised_to_it) {
    message_framer f(0);
    EXPECT_EQ(f.max_message_size(), record_header_size);
    EXPECT_EQ(f.scan(end_of_message_record()), frame_state::complete);
}

} // namespace
} // namespace ptpsec::tls
