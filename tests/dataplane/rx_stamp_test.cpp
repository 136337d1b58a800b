// Which time an RX timing event gets (dataplane/rx_stamp.h): the port's
// per-frame timestamp in the PMD's unit, else the IEEE 1588 timestamp the
// NIC latched for the frame on the --clock ethdev port, else none (the
// worker keeps the clock's reading of the burst). The worker's use of it on
// net_pcap, whose frames carry their capture time, is in
// tests/app/dataplane_app_test.cpp.

#include <dataplane/rx_stamp.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ptpsec {
namespace {

/// Stands in for a NIC's IEEE 1588 RX timestamp registers, which no virtual
/// PMD has: rx_stamp() answers `base` plus the register index while
/// `latched`, and a software reading otherwise, as ethdev_clock does when
/// the NIC latched nothing. Records the indices it was asked for.
class latch_stand_in final : public clock::source {
public:
    latch_stand_in() : source(clock::source_kind::ethdev, "ethdev:3 (stand-in)") {}
    uint64_t now_ns() const noexcept override { return 5; }
    clock::stamp rx_stamp(uint32_t flags) noexcept override {
        asked.push_back(flags);
        return latched ? clock::stamp{base + flags, true} : clock::stamp{now_ns(), false};
    }
    int latch_port() const noexcept override { return 3; }

    bool latched = true;
    uint64_t base = 1'700'000'000'000'000'000ULL;
    std::vector<uint32_t> asked;
};

// A place in the mbuf's dynamic-field area, aligned for a uint64_t as a
// registered field would be; registering one needs EAL, which these tests
// do without.
constexpr size_t field_at = (offsetof(rte_mbuf, dynfield1) + 7) / 8 * 8;
static_assert(field_at + sizeof(uint64_t) <= offsetof(rte_mbuf, dynfield1) + sizeof(rte_mbuf::dynfield1));
constexpr int field_offset = static_cast<int>(field_at);
constexpr uint64_t field_flag = uint64_t{1} << 40;

void set_field(rte_mbuf& m, uint64_t value) {
    *RTE_MBUF_DYNFIELD(&m, field_offset, uint64_t*) = value;
}

TEST(rx_stamp, nothing_configured_gives_nothing) {
    rte_mbuf m{};
    m.ol_flags = field_flag | RTE_MBUF_F_RX_IEEE1588_TMST;
    uint64_t ns = 7;
    EXPECT_FALSE(port_rx_time(port_rx_stamps{}, &m, 0, ns));
    EXPECT_EQ(ns, 7U);
    EXPECT_FALSE(port_rx_stamps{}.any());
}

TEST(rx_stamp, a_per_frame_timestamp_is_read_in_its_unit_where_flagged) {
    port_rx_stamps s;
    s.dynfield_offset = field_offset;
    s.dynflag = field_flag;
    s.ns_per_unit = 1000; // port-us
    ASSERT_TRUE(s.any());
    rte_mbuf m{};
    set_field(m, 1'795'238'662'144'092ULL);
    uint64_t ns = 0;
    EXPECT_FALSE(port_rx_time(s, &m, 0, ns)) << "the flag says whether the field holds a time";
    m.ol_flags = field_flag;
    ASSERT_TRUE(port_rx_time(s, &m, 0, ns));
    EXPECT_EQ(ns, 1'795'238'662'144'092'000ULL);
    s.ns_per_unit = 1; // port-ns
    ASSERT_TRUE(port_rx_time(s, &m, 9, ns));
    EXPECT_EQ(ns, 1'795'238'662'144'092ULL);
}

TEST(rx_stamp, the_latch_is_read_for_flagged_frames_of_its_port_only) {
    latch_stand_in latch;
    port_rx_stamps s;
    s.latched = &latch;
    s.latched_port = static_cast<uint16_t>(latch.latch_port());
    rte_mbuf m{};
    m.timesync = 2;
    uint64_t ns = 0;
    EXPECT_FALSE(port_rx_time(s, &m, 3, ns)) << "a frame the NIC did not stamp";
    m.ol_flags = RTE_MBUF_F_RX_IEEE1588_TMST;
    EXPECT_FALSE(port_rx_time(s, &m, 4, ns)) << "another port's frame";
    EXPECT_TRUE(latch.asked.empty()) << "the latch is read only for a frame it holds the time of";
    ASSERT_TRUE(port_rx_time(s, &m, 3, ns));
    EXPECT_EQ(ns, latch.base + 2);
    EXPECT_EQ(latch.asked, std::vector<uint32_t>{2}) << "the register the PMD named";
    latch.latched = false;
    ns = 0;
    EXPECT_FALSE(port_rx_time(s, &m, 3, ns)) << "nothing latched: the software reading is not the port's";
    EXPECT_EQ(ns, 0U);
}

TEST(rx_stamp, the_per_frame_timestamp_wins_over_the_latch) {
    latch_stand_in latch;
    port_rx_stamps s;
    s.dynfield_offset = field_offset;
    s.dynflag = field_flag;
    s.latched = &latch;
    s.latched_port = 3;
    rte_mbuf m{};
    m.ol_flags = field_flag | RTE_MBUF_F_RX_IEEE1588_TMST;
    set_field(m, 42);
    uint64_t ns = 0;
    ASSERT_TRUE(port_rx_time(s, &m, 3, ns));
    EXPECT_EQ(ns, 42U);
    EXPECT_TRUE(latch.asked.empty()) << "the latch is left for the frame it belongs to";
    m.ol_flags = RTE_MBUF_F_RX_IEEE1588_TMST;
    ASSERT_TRUE(port_rx_time(s, &m, 3, ns));
    EXPECT_EQ(ns, latch.base);
}

} // namespace
} // namespace ptpsec
