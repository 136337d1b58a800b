// Replay protection (seeds/001 §5.1, RFC 6479 windows, RFC 4303 appendix A
// extended sequence numbers): window rounding and its boundaries, duplicates
// and reordering, the 16-bit wrap with and without loss, loss patterns that
// wedge a forward-only window, the stream key (type, source, domain, sdoId,
// requester of responses, SPP and key ID), key retirement, a restarted
// sender, the full-table rule, the burst call, and a randomized comparison
// with a reference model written from the window rule alone.

#include "frame_builder.h"

#include <dataplane/ptp/message.h>
#include <dataplane/replay.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace ptpsec {

// GoogleTest finds printers by this exact name (ADL).
inline void PrintTo(replay_verdict v, std::ostream* os) { // NOLINT(readability-identifier-naming)
    *os << replay_verdict_name(v);
}

namespace test {
namespace {

using ptp::message_type;
using verdict = replay_verdict;

constexpr uint8_t spp_a = 3;
constexpr uint8_t spp_b = 4;
constexpr uint32_t key_a = 7;
constexpr uint32_t key_b = 8;
/// 1588-2019 13.3.1: sequenceId is octets 30-31 of the common header.
constexpr size_t sequence_id_offset = 30;

constexpr uint8_t action_get = 0;
constexpr uint8_t action_response = 2;
constexpr uint8_t action_acknowledge = 4;

/// A PTP message built once; its sequenceId is set in place before each use.
class wire_message {
public:
    wire_message(const ptp::header& h, const ptp::body& b) : _b(build(h, b)) {
        ptp::message_view mv;
        EXPECT_EQ(ptp::parse_message(_b.data(), _b.size(), mv), ptp::error::none);
    }

    const uint8_t* with_seq(uint16_t sequence_id) {
        store_be16(_b.data() + sequence_id_offset, sequence_id);
        return _b.data();
    }

    const bytes& octets() const { return _b; }

private:
    bytes _b;
};

ptp::header header_from(const ptp::port_identity& source) {
    ptp::header h = sample_header(0);
    h.sourcePortIdentity = source;
    return h;
}

ptp::port_identity source_port(uint8_t seed, uint16_t port = 1) {
    return make_port_identity(seed, port);
}

wire_message message_of(message_type t, const ptp::port_identity& source = source_port(0x10)) {
    return {header_from(source), sample_body(t)};
}

/// A Delay_Resp, Pdelay_Resp or Pdelay_Resp_Follow_Up from `source` that
/// answers `requester`.
wire_message response_of(message_type t, const ptp::port_identity& source, const ptp::port_identity& requester) {
    ptp::body b = sample_body(t);
    switch (t) {
    case message_type::delay_resp:
        std::get<ptp::delay_resp_body>(b).requestingPortIdentity = requester;
        break;
    case message_type::pdelay_resp:
        std::get<ptp::pdelay_resp_body>(b).requestingPortIdentity = requester;
        break;
    case message_type::pdelay_resp_follow_up:
        std::get<ptp::pdelay_resp_follow_up_body>(b).requestingPortIdentity = requester;
        break;
    default:
        ADD_FAILURE() << "not a response type";
        break;
    }
    return {header_from(source), b};
}

wire_message management_of(const ptp::port_identity& source, const ptp::port_identity& target, uint8_t action) {
    ptp::management_body b;
    b.targetPortIdentity = target;
    b.startingBoundaryHops = 1;
    b.boundaryHops = 1;
    b.actionField = action;
    return {header_from(source), b};
}

verdict feed(replay_table& t, wire_message& m, uint16_t sequence_id, uint32_t key_id = key_a, uint8_t spp = spp_a) {
    return t.accept(m.with_seq(sequence_id), spp, key_id);
}

replay_table table_of(uint32_t window, size_t capacity = 1024) {
    return replay_table(replay_config{window, capacity});
}

uint64_t count_of(const replay_table& t, verdict v) {
    return t.counters().verdicts[static_cast<size_t>(v)];
}

std::string requested_name(const ::testing::TestParamInfo<uint32_t>& p) {
    return "requested_" + std::to_string(p.param);
}

std::string window_name(const ::testing::TestParamInfo<uint32_t>& p) {
    return "window_" + std::to_string(p.param);
}

std::string type_name(const ::testing::TestParamInfo<message_type>& p) {
    return std::string(ptp::message_type_name(p.param));
}

// ---------------------------------------------------------------------------
// Names, rounding, sizes.

TEST(replay_names, every_verdict_has_a_distinct_name) {
    EXPECT_EQ(replay_verdict_name(verdict::accepted), "accepted");
    EXPECT_EQ(replay_verdict_name(verdict::replayed), "replayed");
    EXPECT_EQ(replay_verdict_name(verdict::too_old), "too_old");
    EXPECT_EQ(replay_verdict_name(static_cast<verdict>(replay_verdict_count)), "invalid");
}

TEST(replay_window_rounding, follows_rfc6479_one_redundant_block_and_a_power_of_two_bitmap) {
    // (requested, effective): the bitmap is 2, 4, 8, ... 512 blocks of 64
    // and the window one block less.
    const std::vector<std::pair<uint32_t, uint32_t>> cases = {
        {0, 64},        {1, 64},        {3, 64},        {64, 64},
        {65, 192},      {192, 192},     {193, 448},     {448, 448},
        {449, 960},     {4096, 8128},   {8128, 8128},   {8129, 16320},
        {32704, 32704}, {32705, 32704}, {65535, 32704}, {0xFFFFFFFF, 32704},
    };
    for (const auto& [requested, effective] : cases) {
        EXPECT_EQ(replay_table::effective_window(requested), effective) << "requested " << requested;
        EXPECT_EQ(table_of(requested, 16).window(), effective) << "requested " << requested;
    }
}

TEST(replay_table_size, capacity_is_rounded_up_to_whole_buckets_and_clamped) {
    EXPECT_EQ(table_of(64, 0).capacity(), replay_table::min_capacity);
    EXPECT_EQ(table_of(64, 1).capacity(), 16U);
    EXPECT_EQ(table_of(64, 17).capacity(), 32U);
    EXPECT_EQ(table_of(64, 100).capacity(), 128U);
    EXPECT_EQ(table_of(64, 1024).capacity(), 1024U);
    EXPECT_EQ(table_of(64, 1025).capacity(), 2048U);
    const replay_table t = table_of(64);
    EXPECT_EQ(t.size(), 0U);
}

TEST(replay_message, the_helper_sets_the_header_sequence_id) {
    wire_message m = message_of(message_type::sync);
    m.with_seq(0xBEEF);
    ptp::header h;
    ptp::read_header(m.octets().data(), h);
    EXPECT_EQ(h.sequenceId, 0xBEEF);
}

// ---------------------------------------------------------------------------
// Order, duplicates, the window edge.

TEST(replay_basic, in_order_messages_are_all_accepted) {
    replay_table t = table_of(64);
    wire_message m = message_of(message_type::sync);
    for (uint16_t s = 100; s < 3100; ++s) {
        ASSERT_EQ(feed(t, m, s), verdict::accepted) << s;
    }
    EXPECT_EQ(count_of(t, verdict::accepted), 3000U);
    EXPECT_EQ(count_of(t, verdict::replayed), 0U);
    EXPECT_EQ(count_of(t, verdict::too_old), 0U);
    EXPECT_EQ(t.counters().late, 0U);
    EXPECT_EQ(t.counters().opened, 1U);
    EXPECT_EQ(t.size(), 1U);
}

TEST(replay_basic, exact_duplicates_are_replayed) {
    replay_table t = table_of(64);
    wire_message m = message_of(message_type::sync);
    EXPECT_EQ(feed(t, m, 10), verdict::accepted);
    // The very first message of a stream is recorded too.
    EXPECT_EQ(feed(t, m, 10), verdict::replayed);
    EXPECT_EQ(feed(t, m, 11), verdict::accepted);
    EXPECT_EQ(feed(t, m, 11), verdict::replayed);
    EXPECT_EQ(feed(t, m, 10), verdict::replayed);
    for (uint16_t s = 12; s < 60; ++s) {
        ASSERT_EQ(feed(t, m, s), verdict::accepted);
    }
    // Older duplicates that are still inside the window.
    for (uint16_t s = 10; s < 60; ++s) {
        EXPECT_EQ(feed(t, m, s), verdict::replayed) << s;
    }
    EXPECT_EQ(count_of(t, verdict::replayed), 3U + 50U);
    EXPECT_EQ(count_of(t, verdict::accepted), 50U);
}

TEST(replay_basic, reordered_messages_inside_the_window_are_accepted_once) {
    replay_table t = table_of(64);
    wire_message m = message_of(message_type::follow_up);
    EXPECT_EQ(feed(t, m, 1000), verdict::accepted);
    EXPECT_EQ(feed(t, m, 1040), verdict::accepted);
    // Everything between arrives late, in a scrambled order.
    std::vector<uint16_t> late(39);
    std::iota(late.begin(), late.end(), uint16_t{1001});
    std::mt19937_64 rng(11);
    std::shuffle(late.begin(), late.end(), rng);
    for (const uint16_t s : late) {
        EXPECT_EQ(feed(t, m, s), verdict::accepted) << s;
    }
    for (const uint16_t s : late) {
        EXPECT_EQ(feed(t, m, s), verdict::replayed) << s;
    }
    EXPECT_EQ(t.counters().late, 39U);
    EXPECT_EQ(feed(t, m, 1041), verdict::accepted);
}

TEST(replay_basic, older_than_the_window_is_too_old) {
    replay_table t = table_of(64);
    wire_message m = message_of(message_type::sync);
    EXPECT_EQ(feed(t, m, 1000), verdict::accepted);
    EXPECT_EQ(feed(t, m, 1100), verdict::accepted);
    // top 1100, window 64: 1036 is the oldest value still judged.
    EXPECT_EQ(feed(t, m, 1035), verdict::too_old);
    EXPECT_EQ(feed(t, m, 1000), verdict::too_old); // seen, but beyond the window
    EXPECT_EQ(feed(t, m, 1036), verdict::accepted);
    EXPECT_EQ(feed(t, m, 1036), verdict::replayed);
    EXPECT_EQ(count_of(t, verdict::too_old), 2U);
}

class replay_window_edges : public ::testing::TestWithParam<uint32_t> {};

TEST_P(replay_window_edges, the_last_value_in_the_window_counts_and_the_next_older_does_not) {
    replay_table t = table_of(GetParam());
    const uint32_t w = t.window();
    wire_message m = message_of(message_type::sync);
    // Start just below the wrap, so the window spans 0xFFFF -> 0.
    const uint16_t start = 0xFF00;
    const auto top = static_cast<uint16_t>(start + w + 5);
    EXPECT_EQ(feed(t, m, start), verdict::accepted);
    EXPECT_EQ(feed(t, m, top), verdict::accepted);
    EXPECT_EQ(feed(t, m, static_cast<uint16_t>(top - w - 1)), verdict::too_old);
    EXPECT_EQ(feed(t, m, static_cast<uint16_t>(top - w)), verdict::accepted);
    EXPECT_EQ(feed(t, m, static_cast<uint16_t>(top - w)), verdict::replayed);
    EXPECT_EQ(feed(t, m, top), verdict::replayed);
    EXPECT_EQ(feed(t, m, start), verdict::too_old);
    EXPECT_EQ(feed(t, m, static_cast<uint16_t>(top + 1)), verdict::accepted);
}

TEST_P(replay_window_edges, every_value_of_a_full_window_is_tracked_without_aliasing) {
    replay_table t = table_of(GetParam());
    const uint32_t w = t.window();
    wire_message m = message_of(message_type::announce);
    const uint16_t start = 0xFFF0;
    const auto top = static_cast<uint16_t>(start + w);
    EXPECT_EQ(feed(t, m, start), verdict::accepted);
    EXPECT_EQ(feed(t, m, top), verdict::accepted);
    std::vector<uint16_t> inside(w - 1);
    for (uint32_t i = 0; i < w - 1; ++i) {
        inside[i] = static_cast<uint16_t>(start + 1 + i);
    }
    std::mt19937_64 rng(w);
    std::shuffle(inside.begin(), inside.end(), rng);
    size_t accepted = 0;
    for (const uint16_t s : inside) {
        accepted += feed(t, m, s) == verdict::accepted;
    }
    EXPECT_EQ(accepted, w - 1);
    size_t replayed = 0;
    for (uint32_t i = 0; i <= w; ++i) {
        replayed += feed(t, m, static_cast<uint16_t>(start + i)) == verdict::replayed;
    }
    EXPECT_EQ(replayed, w + 1);
    EXPECT_EQ(feed(t, m, static_cast<uint16_t>(start - 1)), verdict::too_old);
}

INSTANTIATE_TEST_SUITE_P(windows, replay_window_edges,
                         ::testing::Values(64U, 65U, 192U, 448U, 1000U, 4096U, replay_table::max_window),
                         requested_name);

// ---------------------------------------------------------------------------
// Extended sequence numbers and the wrap.

TEST(replay_esn, the_closest_candidate_wins_up_to_half_the_sequence_space) {
    replay_table t = table_of(64);
    wire_message a = message_of(message_type::sync, source_port(0x20));
    wire_message b = message_of(message_type::sync, source_port(0x21));
    EXPECT_EQ(feed(t, a, 100), verdict::accepted);
    EXPECT_EQ(feed(t, a, 100 + 32767), verdict::accepted); // 2^15 - 1 ahead: new
    EXPECT_EQ(feed(t, b, 100), verdict::accepted);
    EXPECT_EQ(feed(t, b, 100 + 32768), verdict::too_old); // 2^15 away: behind
    EXPECT_EQ(feed(t, b, 101), verdict::accepted);
    // Looking back from a's new top, 100 is 2^15 - 1 behind: too old.
    EXPECT_EQ(feed(t, a, 100), verdict::too_old);
}

TEST(replay_esn, a_message_recorded_more_than_2_15_messages_ago_looks_new) {
    // The limit docs/security.md states ("cannot stop" with a 16-bit
    // sequenceId): once the stream has moved 2^15 + 1 past a recorded
    // message, its sequenceId is nearest a value ahead and it is accepted.
    replay_table t = table_of(64);
    wire_message m = message_of(message_type::sync);
    EXPECT_EQ(feed(t, m, 100), verdict::accepted);
    for (uint32_t step = 1; step <= 3; ++step) { // forward in jumps below 2^15
        EXPECT_EQ(feed(t, m, static_cast<uint16_t>(100 + step * 10000)), verdict::accepted);
    }
    EXPECT_EQ(feed(t, m, static_cast<uint16_t>(100 + 32769)), verdict::accepted);
    EXPECT_EQ(feed(t, m, 100), verdict::accepted) << "the recorded message, 2^15 + 1 behind";
    EXPECT_EQ(feed(t, m, 100), verdict::replayed) << "and then it is in the window";
}

TEST(replay_esn, the_wrap_without_loss_is_seamless) {
    replay_table t = table_of(64);
    wire_message m = message_of(message_type::sync);
    uint16_t s = 65000;
    for (int i = 0; i < 1600; ++i, ++s) {
        ASSERT_EQ(feed(t, m, s), verdict::accepted) << s;
    }
    EXPECT_EQ(s, 1064);
    EXPECT_EQ(t.counters().late, 0U);
    // Values from before the wrap are old, not "greater than 1063".
    EXPECT_EQ(feed(t, m, 65530), verdict::too_old);
    EXPECT_EQ(feed(t, m, 65535), verdict::too_old);
    EXPECT_EQ(feed(t, m, 1063), verdict::replayed);
}

TEST(replay_esn, values_just_before_the_wrap_stay_replays_after_it) {
    replay_table t = table_of(4096);
    wire_message m = message_of(message_type::sync);
    for (uint16_t s = 65000; s != 10; ++s) {
        ASSERT_EQ(feed(t, m, s), verdict::accepted) << s;
    }
    // A plain 16-bit "newer than the last" would take these for new.
    for (uint16_t s = 65000; s != 10; ++s) {
        EXPECT_EQ(feed(t, m, s), verdict::replayed) << s;
    }
    EXPECT_EQ(feed(t, m, 10), verdict::accepted);
}

TEST(replay_esn, the_wrap_with_loss_is_accepted_and_the_gap_can_still_fill) {
    replay_table t = table_of(64);
    wire_message m = message_of(message_type::sync);
    EXPECT_EQ(feed(t, m, 65530), verdict::accepted);
    EXPECT_EQ(feed(t, m, 3), verdict::accepted); // 65531..2 lost or late
    EXPECT_EQ(feed(t, m, 65533), verdict::accepted);
    EXPECT_EQ(feed(t, m, 0), verdict::accepted);
    EXPECT_EQ(feed(t, m, 65533), verdict::replayed);
    EXPECT_EQ(feed(t, m, 0), verdict::replayed);
    EXPECT_EQ(feed(t, m, 65530), verdict::replayed);
    EXPECT_EQ(feed(t, m, 4), verdict::accepted);
    EXPECT_EQ(t.counters().late, 2U);
    // A burst of loss that itself spans the wrap.
    replay_table u = table_of(64);
    EXPECT_EQ(feed(u, m, 40000), verdict::accepted);
    EXPECT_EQ(feed(u, m, static_cast<uint16_t>(40000 + 32000)), verdict::accepted); // 6464 after the wrap
    EXPECT_EQ(feed(u, m, static_cast<uint16_t>(40000 + 64000)), verdict::accepted); // 38464
    EXPECT_EQ(feed(u, m, 6464), verdict::too_old);
    EXPECT_EQ(feed(u, m, 38463), verdict::accepted);
}

// ---------------------------------------------------------------------------
// Loss never wedges the window.

TEST(replay_loss, three_lost_syncs_in_a_row_keep_being_accepted) {
    // A window that only admits forward steps up to seqid_window (3 in
    // linuxptp's sa_file) refuses the message after three lost ones and
    // every later one. Here: send one, lose three, again and again, over
    // three wraps of the 16-bit sequenceId.
    replay_table t = table_of(3);
    wire_message m = message_of(message_type::sync);
    uint16_t s = 0xFF00;
    uint64_t sent = 0;
    for (int i = 0; i < 50000; ++i) {
        ASSERT_EQ(feed(t, m, s), verdict::accepted) << "i " << i << " seq " << s;
        ++sent;
        s = static_cast<uint16_t>(s + 4);
    }
    EXPECT_EQ(count_of(t, verdict::accepted), sent);
    EXPECT_EQ(count_of(t, verdict::too_old), 0U);
    EXPECT_EQ(count_of(t, verdict::replayed), 0U);
}

TEST(replay_loss, the_three_loss_pattern_inside_normal_traffic_is_accepted) {
    replay_table t = table_of(3);
    wire_message m = message_of(message_type::sync);
    uint16_t s = 60000;
    for (int round = 0; round < 20000; ++round) {
        for (int i = 0; i < 5; ++i, ++s) {
            ASSERT_EQ(feed(t, m, s), verdict::accepted) << s;
        }
        s = static_cast<uint16_t>(s + 3); // three lost
    }
    EXPECT_EQ(count_of(t, verdict::accepted), 100000U);
    EXPECT_EQ(count_of(t, verdict::too_old) + count_of(t, verdict::replayed), 0U);
}

class replay_long_loss : public ::testing::TestWithParam<uint32_t> {};

TEST_P(replay_long_loss, bursts_of_loss_below_half_the_space_are_accepted) {
    replay_table t = table_of(GetParam());
    wire_message m = message_of(message_type::sync);
    // Gap = sequenceId step; gap - 1 messages are lost.
    const std::vector<uint16_t> gaps = {2, 4, 5, 64, 65, 100, 1000, 4096, 8129, 20000, 32766, 32767};
    uint16_t s = 0xFFF0;
    uint64_t sent = 0;
    for (int repeat = 0; repeat < 6; ++repeat) {
        for (const uint16_t gap : gaps) {
            for (int i = 0; i < 10; ++i, ++s, ++sent) {
                ASSERT_EQ(feed(t, m, s), verdict::accepted) << s;
            }
            s = static_cast<uint16_t>(s - 1 + gap);
        }
    }
    EXPECT_EQ(count_of(t, verdict::accepted), sent);
    EXPECT_EQ(count_of(t, verdict::too_old) + count_of(t, verdict::replayed), 0U);
}

INSTANTIATE_TEST_SUITE_P(windows, replay_long_loss, ::testing::Values(64U, 8128U, replay_table::max_window),
                         window_name);

// ---------------------------------------------------------------------------
// What makes a stream.

TEST(replay_streams, each_message_type_has_its_own_window) {
    replay_table t = table_of(64);
    std::vector<wire_message> ms;
    ms.reserve(all_message_types.size());
    for (const message_type mt : all_message_types) {
        ms.push_back(message_of(mt));
    }
    for (auto& m : ms) {
        EXPECT_EQ(feed(t, m, 5000), verdict::accepted);
    }
    for (auto& m : ms) {
        EXPECT_EQ(feed(t, m, 5000), verdict::replayed);
        EXPECT_EQ(feed(t, m, 100), verdict::too_old);
    }
    EXPECT_EQ(t.size(), all_message_types.size());
}

TEST(replay_streams, each_source_port_identity_has_its_own_window) {
    replay_table t = table_of(64);
    const ptp::port_identity a = source_port(0x30, 1);
    ptp::port_identity other_port = a;
    other_port.portNumber = 2;
    ptp::port_identity other_clock = a;
    other_clock.clockIdentity[7] ^= 0x01;
    ptp::port_identity first_octet = a;
    first_octet.clockIdentity[0] ^= 0x80;
    std::vector<wire_message> ms;
    for (const auto& p : {a, other_port, other_clock, first_octet}) {
        ms.push_back(message_of(message_type::sync, p));
    }
    EXPECT_EQ(feed(t, ms[0], 9000), verdict::accepted);
    for (size_t i = 1; i < ms.size(); ++i) {
        EXPECT_EQ(feed(t, ms[i], 5), verdict::accepted) << i;
    }
    EXPECT_EQ(feed(t, ms[0], 5), verdict::too_old);
    for (size_t i = 1; i < ms.size(); ++i) {
        EXPECT_EQ(feed(t, ms[i], 5), verdict::replayed) << i;
    }
}

TEST(replay_streams, every_bit_of_every_key_field_separates_streams) {
    // The stream key is packed from the message's octets; a packing that
    // dropped or overlapped any bit would merge two streams. Flip each bit
    // of sourcePortIdentity, requestingPortIdentity (of a Delay_Resp),
    // domainNumber, minorSdoId and majorSdoId in turn, and of the SPP and key
    // ID: each variant must open a window of its own.
    const wire_message base_msg =
        response_of(message_type::delay_resp, source_port(0x21, 0x0102), source_port(0x43, 0x0304));
    const bytes base = base_msg.octets();
    auto with_seq = [](bytes b, uint16_t seq) {
        store_be16(b.data() + sequence_id_offset, seq);
        return b;
    };
    std::vector<std::pair<size_t, uint8_t>> flips; // octet, bit mask
    const size_t requester = ptp::header_len + ptp::timestamp_len;
    for (size_t o = 0; o < ptp::port_identity_len; ++o) {
        for (int bit = 0; bit < 8; ++bit) {
            flips.emplace_back(ptp::source_port_identity_offset + o, static_cast<uint8_t>(1U << bit));
            flips.emplace_back(requester + o, static_cast<uint8_t>(1U << bit));
        }
    }
    for (int bit = 0; bit < 8; ++bit) {
        flips.emplace_back(4, static_cast<uint8_t>(1U << bit)); // domainNumber
        flips.emplace_back(5, static_cast<uint8_t>(1U << bit)); // minorSdoId
    }
    for (int bit = 4; bit < 8; ++bit) {
        flips.emplace_back(0, static_cast<uint8_t>(1U << bit)); // majorSdoId
    }
    for (const auto& [octet, mask] : flips) {
        SCOPED_TRACE(testing::Message() << "octet " << octet << " mask 0x" << std::hex << int{mask});
        replay_table t = table_of(64);
        const bytes a = with_seq(base, 9000);
        ASSERT_EQ(t.accept(a.data(), spp_a, key_a), verdict::accepted);
        bytes b = with_seq(base, 5);
        b[octet] ^= mask;
        EXPECT_EQ(t.accept(b.data(), spp_a, key_a), verdict::accepted) << "merged with the base stream";
        EXPECT_EQ(t.size(), 2U);
        const bytes old = with_seq(base, 5);
        EXPECT_EQ(t.accept(old.data(), spp_a, key_a), verdict::too_old) << "the base stream kept its window";
    }
    for (int bit = 0; bit < 8; ++bit) {
        replay_table t = table_of(64);
        const bytes a = with_seq(base, 9000);
        const bytes b = with_seq(base, 5);
        ASSERT_EQ(t.accept(a.data(), spp_a, key_a), verdict::accepted);
        EXPECT_EQ(t.accept(b.data(), static_cast<uint8_t>(spp_a ^ (1U << bit)), key_a), verdict::accepted) << bit;
    }
    for (int bit = 0; bit < 32; ++bit) {
        replay_table t = table_of(64);
        const bytes a = with_seq(base, 9000);
        const bytes b = with_seq(base, 5);
        ASSERT_EQ(t.accept(a.data(), spp_a, key_a), verdict::accepted);
        EXPECT_EQ(t.accept(b.data(), spp_a, key_a ^ (1U << bit)), verdict::accepted) << bit;
    }
}

TEST(replay_streams, domain_and_sdo_id_separate_ptp_instances) {
    replay_table t = table_of(64);
    ptp::header h = header_from(source_port(0x40));
    ptp::header other_domain = h;
    other_domain.domainNumber = static_cast<uint8_t>(h.domainNumber + 1);
    ptp::header other_major = h;
    other_major.majorSdoId = 1;
    ptp::header other_minor = h;
    other_minor.minorSdoId = 0x21;
    std::vector<wire_message> ms;
    for (const auto& hh : {h, other_domain, other_major, other_minor}) {
        ms.emplace_back(hh, sample_body(message_type::sync));
    }
    for (auto& m : ms) {
        EXPECT_EQ(feed(t, m, 77), verdict::accepted);
    }
    for (auto& m : ms) {
        EXPECT_EQ(feed(t, m, 77), verdict::replayed);
    }
    EXPECT_EQ(t.size(), 4U);
}

TEST(replay_streams, the_body_of_other_types_is_not_part_of_the_stream) {
    // Octets 44-53 hold requestingPortIdentity only in responses; an
    // Announce with other values there is the same stream.
    replay_table t = table_of(64);
    ptp::announce_body b1 = std::get<ptp::announce_body>(sample_body(message_type::announce));
    ptp::announce_body b2 = b1;
    b2.grandmasterIdentity[3] ^= 0xFF;
    b2.stepsRemoved = 9;
    b2.clockClass = 7;
    const ptp::header h = header_from(source_port(0x50));
    wire_message m1(h, b1);
    wire_message m2(h, b2);
    EXPECT_EQ(feed(t, m1, 300), verdict::accepted);
    EXPECT_EQ(feed(t, m2, 300), verdict::replayed);
    EXPECT_EQ(t.size(), 1U);
}

class replay_responses : public ::testing::TestWithParam<message_type> {};

TEST_P(replay_responses, one_master_answering_many_requesters_is_accepted) {
    const message_type mt = GetParam();
    replay_table t = table_of(64);
    const ptp::port_identity master = source_port(0x60);
    constexpr size_t n = 8;
    std::vector<wire_message> ms;
    std::vector<uint16_t> first(n);
    for (size_t i = 0; i < n; ++i) {
        ms.push_back(response_of(mt, master, source_port(static_cast<uint8_t>(0x70 + i), static_cast<uint16_t>(i))));
        // Each requester's own sequenceIds: spread out, one about to wrap.
        first[i] = i == 3 ? uint16_t{65500} : static_cast<uint16_t>(i * 7919);
    }
    for (uint16_t round = 0; round < 300; ++round) {
        for (size_t i = 0; i < n; ++i) {
            ASSERT_EQ(feed(t, ms[i], static_cast<uint16_t>(first[i] + round)), verdict::accepted)
                << "requester " << i << " round " << round;
        }
    }
    EXPECT_EQ(t.size(), n);
    // A replayed response is caught in its requester's window.
    EXPECT_EQ(feed(t, ms[3], static_cast<uint16_t>(first[3] + 299)), verdict::replayed);
    EXPECT_EQ(feed(t, ms[3], static_cast<uint16_t>(first[3] + 250)), verdict::replayed);
    EXPECT_EQ(feed(t, ms[5], static_cast<uint16_t>(first[5] + 10)), verdict::too_old);
    EXPECT_EQ(feed(t, ms[5], static_cast<uint16_t>(first[5] + 300)), verdict::accepted);
}

TEST_P(replay_responses, without_the_requester_in_the_key_interleaving_would_collide) {
    // The same interleaved sequenceIds sent to a single requester must hit
    // one window, which shows that the body field is what separates them.
    const message_type mt = GetParam();
    replay_table t = table_of(64);
    wire_message m = response_of(mt, source_port(0x60), source_port(0x70, 0));
    EXPECT_EQ(feed(t, m, 1000), verdict::accepted);
    EXPECT_EQ(feed(t, m, 9000), verdict::accepted);
    EXPECT_EQ(feed(t, m, 1001), verdict::too_old);
    EXPECT_EQ(t.size(), 1U);
}

INSTANTIATE_TEST_SUITE_P(types, replay_responses,
                         ::testing::Values(message_type::delay_resp, message_type::pdelay_resp,
                                           message_type::pdelay_resp_follow_up),
                         type_name);

TEST(replay_streams, management_responses_follow_their_requester) {
    replay_table t = table_of(64);
    const ptp::port_identity responder = source_port(0x80);
    const ptp::port_identity q1 = source_port(0x90);
    const ptp::port_identity q2 = source_port(0xA0);
    wire_message to_q1 = management_of(responder, q1, action_response);
    wire_message to_q2 = management_of(responder, q2, action_acknowledge);
    for (uint16_t i = 0; i < 100; ++i) {
        ASSERT_EQ(feed(t, to_q1, static_cast<uint16_t>(20000 + i)), verdict::accepted);
        ASSERT_EQ(feed(t, to_q2, static_cast<uint16_t>(3 + i)), verdict::accepted);
    }
    EXPECT_EQ(feed(t, to_q1, 20099), verdict::replayed);
    EXPECT_EQ(feed(t, to_q2, 102), verdict::replayed);
    // The responder's own requests draw from its own pool: one window
    // whatever their target, and apart from its responses.
    wire_message get_q1 = management_of(responder, q1, action_get);
    wire_message get_q2 = management_of(responder, q2, action_get);
    EXPECT_EQ(feed(t, get_q1, 20099), verdict::accepted);
    EXPECT_EQ(feed(t, get_q2, 20099), verdict::replayed);
    EXPECT_EQ(t.size(), 3U);
    // Even a requester whose portIdentity is all zero, as in a request's
    // stream, keeps its responses apart from the responder's requests.
    wire_message to_zero = management_of(responder, ptp::port_identity{}, action_response);
    EXPECT_EQ(feed(t, to_zero, 20099), verdict::accepted);
    EXPECT_EQ(t.size(), 4U);
}

// ---------------------------------------------------------------------------
// Keys.

TEST(replay_keys, a_new_key_id_starts_a_fresh_window) {
    replay_table t = table_of(64);
    wire_message m = message_of(message_type::sync);
    EXPECT_EQ(feed(t, m, 1000, key_a), verdict::accepted);
    EXPECT_EQ(feed(t, m, 5, key_b), verdict::accepted);
    EXPECT_EQ(feed(t, m, 5, key_a), verdict::too_old);
    EXPECT_EQ(feed(t, m, 5, key_b), verdict::replayed);
    // The same key ID in another SA is another key.
    EXPECT_EQ(feed(t, m, 5, key_a, spp_b), verdict::accepted);
    EXPECT_EQ(feed(t, m, 5, key_a, spp_b), verdict::replayed);
    EXPECT_EQ(t.size(), 3U);
    EXPECT_EQ(t.counters().opened, 3U);
}

TEST(replay_keys, retiring_a_key_drops_its_windows_and_only_those) {
    replay_table t = table_of(64);
    std::vector<wire_message> ms;
    for (uint8_t i = 0; i < 5; ++i) {
        ms.push_back(message_of(message_type::sync, source_port(static_cast<uint8_t>(0xB0 + i))));
    }
    for (auto& m : ms) {
        EXPECT_EQ(feed(t, m, 1000, key_a), verdict::accepted);
        EXPECT_EQ(feed(t, m, 2000, key_b), verdict::accepted);
    }
    EXPECT_EQ(feed(t, ms[0], 1000, key_a, spp_b), verdict::accepted);
    EXPECT_EQ(t.size(), 11U);

    EXPECT_EQ(t.retire_key(spp_a, key_a), 5U);
    EXPECT_EQ(t.size(), 6U);
    EXPECT_EQ(t.counters().retired, 5U);
    EXPECT_EQ(t.retire_key(spp_a, key_a), 0U);
    // key_b and the other SA keep their state.
    for (auto& m : ms) {
        EXPECT_EQ(feed(t, m, 2000, key_b), verdict::replayed);
    }
    EXPECT_EQ(feed(t, ms[0], 1000, key_a, spp_b), verdict::replayed);
    // Messages under the retired key (which the verifier no longer accepts)
    // would start from nothing: its state is gone.
    EXPECT_EQ(feed(t, ms[1], 1000, key_a), verdict::accepted);
    EXPECT_EQ(t.size(), 7U);
}

// A sender that starts its sequenceIds again under the same key
// (docs/security.md, "A restarted sender"): everything up to its old value is
// refused, too_old below the window and replayed inside it, and it is
// accepted again from the first value past it; a restart more than 2^15
// behind is nearest a value ahead and accepted at once; a new key ends it.
TEST(replay_restart, a_restarted_sender_is_refused_until_it_passes_its_old_value) {
    replay_table t = table_of(64);
    const uint32_t w = t.window();
    wire_message m = message_of(message_type::sync);
    for (uint32_t s = 4000; s <= 5000; ++s) {
        ASSERT_EQ(feed(t, m, static_cast<uint16_t>(s)), verdict::accepted) << s;
    }
    uint64_t too_old = 0;
    uint64_t replayed = 0;
    for (uint32_t s = 0; s <= 5000; ++s) { // restarted at 0
        const verdict v = feed(t, m, static_cast<uint16_t>(s));
        too_old += v == verdict::too_old ? 1 : 0;
        replayed += v == verdict::replayed ? 1 : 0;
        EXPECT_NE(v, verdict::accepted) << s;
    }
    EXPECT_EQ(replayed, w + 1U) << "the values inside the window";
    EXPECT_EQ(too_old, 5001U - (w + 1U));
    EXPECT_EQ(feed(t, m, 5001), verdict::accepted);
    EXPECT_EQ(feed(t, m, 5002), verdict::accepted);

    // Far ahead before the restart: 0 is more than 2^15 behind 40000, so
    // it is taken as the next cycle's 0, ahead, and accepted.
    wire_message far = message_of(message_type::sync, source_port(0x21));
    EXPECT_EQ(feed(t, far, 40000), verdict::accepted);
    EXPECT_EQ(feed(t, far, 0), verdict::accepted);
    EXPECT_EQ(feed(t, far, 1), verdict::accepted);
    EXPECT_EQ(feed(t, far, 40000), verdict::too_old) << "now behind the window";

    // Rotation ends it: under the next key the restarted stream starts afresh.
    EXPECT_EQ(feed(t, m, 7, key_b), verdict::accepted);
    EXPECT_EQ(feed(t, m, 8, key_b), verdict::accepted);
}

// ---------------------------------------------------------------------------
// A full table.

TEST(replay_full_table, the_least_recently_accepted_window_is_replaced_and_counted) {
    // Sixteen slots are two buckets: every stream may use every slot, so
    // the rule is an exact LRU.
    replay_table t = table_of(64, 16);
    ASSERT_EQ(t.capacity(), 16U);
    std::vector<wire_message> ms;
    for (uint16_t i = 0; i < 17; ++i) {
        ms.push_back(message_of(message_type::sync, source_port(0xC0, static_cast<uint16_t>(i + 1))));
    }
    for (size_t i = 0; i < 16; ++i) {
        ASSERT_EQ(feed(t, ms[i], 100), verdict::accepted);
    }
    EXPECT_EQ(t.size(), 16U);
    EXPECT_EQ(t.counters().evicted, 0U);
    // Everyone but stream 3 is heard again: stream 3 is the dead sender.
    for (size_t i = 0; i < 16; ++i) {
        if (i != 3) {
            ASSERT_EQ(feed(t, ms[i], 101), verdict::accepted);
        }
    }
    // Rejections do not refresh a window: a flood of replays of stream 3's
    // message does not keep its slot.
    EXPECT_EQ(feed(t, ms[3], 100), verdict::replayed);
    EXPECT_EQ(feed(t, ms[16], 100), verdict::accepted);
    EXPECT_EQ(t.counters().evicted, 1U);
    EXPECT_EQ(t.size(), 16U);
    // Stream 3 lost its window (the documented cost): its old message opens
    // a new one, which replaces the next least recent, stream 0.
    EXPECT_EQ(feed(t, ms[3], 100), verdict::accepted);
    EXPECT_EQ(t.counters().evicted, 2U);
    for (size_t i = 1; i < 17; ++i) {
        if (i != 3) {
            EXPECT_EQ(feed(t, ms[i], 100), verdict::replayed) << i;
            EXPECT_EQ(t.check(ms[i].with_seq(101), spp_a, key_a), i == 16 ? verdict::accepted : verdict::replayed) << i;
        }
    }
    EXPECT_EQ(t.check(ms[0].with_seq(101), spp_a, key_a), verdict::accepted); // gone
    EXPECT_EQ(t.counters().evicted, 2U);
    EXPECT_EQ(t.counters().opened, 18U);
}

TEST(replay_full_table, a_larger_table_keeps_every_stream_while_it_has_room) {
    replay_table t = table_of(64, 1024);
    std::vector<wire_message> ms;
    for (uint16_t i = 0; i < 512; ++i) {
        ms.push_back(message_of(message_type::sync, source_port(static_cast<uint8_t>(i), i)));
    }
    for (auto& m : ms) {
        ASSERT_EQ(feed(t, m, 42), verdict::accepted);
    }
    EXPECT_EQ(t.counters().evicted, 0U);
    EXPECT_EQ(t.size(), 512U);
    for (auto& m : ms) {
        EXPECT_EQ(feed(t, m, 42), verdict::replayed);
    }
}

// ---------------------------------------------------------------------------
// check() and accept_burst().

TEST(replay_check, check_changes_nothing_and_agrees_with_accept) {
    replay_table t = table_of(64);
    wire_message m = message_of(message_type::delay_req);
    EXPECT_EQ(t.check(m.with_seq(50), spp_a, key_a), verdict::accepted);
    EXPECT_EQ(t.check(m.with_seq(50), spp_a, key_a), verdict::accepted);
    EXPECT_EQ(t.size(), 0U);
    EXPECT_EQ(t.counters().opened, 0U);
    EXPECT_EQ(feed(t, m, 50), verdict::accepted);
    EXPECT_EQ(t.check(m.with_seq(50), spp_a, key_a), verdict::replayed);
    EXPECT_EQ(t.check(m.with_seq(51), spp_a, key_a), verdict::accepted);
    EXPECT_EQ(t.check(m.with_seq(60000), spp_a, key_a), verdict::too_old);
    EXPECT_EQ(count_of(t, verdict::accepted), 1U);
    EXPECT_EQ(count_of(t, verdict::replayed) + count_of(t, verdict::too_old), 0U);
    EXPECT_EQ(feed(t, m, 51), verdict::accepted);
}

TEST(replay_burst, a_burst_gives_the_verdicts_of_one_by_one_calls) {
    replay_table burst = table_of(64);
    replay_table single = table_of(64);
    std::vector<wire_message> ms;
    for (uint8_t i = 0; i < 6; ++i) {
        ms.push_back(message_of(all_message_types[i], source_port(static_cast<uint8_t>(0xD0 + i))));
    }
    // Each input needs its own octets: build a copy per message of the burst.
    std::mt19937_64 rng(5);
    std::vector<bytes> copies;
    std::vector<replay_input> in;
    constexpr uint16_t n = 70; // more than one internal part
    for (uint16_t i = 0; i < n; ++i) {
        wire_message& m = ms[rng() % ms.size()];
        m.with_seq(static_cast<uint16_t>(1000 + rng() % 80));
        copies.push_back(m.octets());
    }
    for (uint16_t i = 0; i < n; ++i) {
        in.push_back({copies[i].data(), spp_a, i % 5 == 0 ? key_b : key_a});
    }
    std::vector<verdict> out(n, verdict::too_old);
    const uint16_t got = burst.accept_burst(in.data(), n, out.data());
    uint16_t want = 0;
    for (uint16_t i = 0; i < n; ++i) {
        const verdict v = single.accept(in[i].msg, in[i].spp, in[i].key_id);
        EXPECT_EQ(out[i], v) << i;
        want = static_cast<uint16_t>(want + (v == verdict::accepted));
    }
    EXPECT_EQ(got, want);
    EXPECT_LT(got, n); // the draw repeats values: some were replays
    EXPECT_EQ(burst.counters().verdicts, single.counters().verdicts);
    EXPECT_EQ(burst.accept_burst(in.data(), 0, out.data()), 0U);
}

TEST(replay_burst, a_duplicate_later_in_the_same_burst_is_replayed) {
    replay_table t = table_of(64);
    wire_message m = message_of(message_type::sync);
    const bytes first = bytes(m.with_seq(9), m.with_seq(9) + m.octets().size());
    const bytes second = bytes(m.with_seq(10), m.with_seq(10) + m.octets().size());
    const std::vector<replay_input> in = {
        {first.data(), spp_a, key_a}, {second.data(), spp_a, key_a}, {first.data(), spp_a, key_a}};
    std::vector<verdict> out(in.size());
    EXPECT_EQ(t.accept_burst(in.data(), static_cast<uint16_t>(in.size()), out.data()), 2U);
    EXPECT_EQ(out, (std::vector<verdict>{verdict::accepted, verdict::accepted, verdict::replayed}));
}

// ---------------------------------------------------------------------------
// Randomized comparison with a reference model.

/// The window rule written plainly: the set of accepted ESNs of a stream,
/// the candidate nearest to the highest one, and the window behind it.
class reference_window {
public:
    verdict judge(uint16_t sequence_id, uint32_t window, uint64_t& esn) const {
        if (!_open) {
            esn = (uint64_t{1} << 40) + sequence_id;
            return verdict::accepted;
        }
        // The three candidates around the top; the nearest wins, and a tie
        // (exactly 2^15 away) goes to the older one.
        const uint64_t base = (_top & ~uint64_t{0xFFFF}) + sequence_id;
        esn = base;
        for (const uint64_t c : {base - 0x10000, base, base + 0x10000}) {
            const uint64_t d = c > _top ? c - _top : _top - c;
            const uint64_t best = esn > _top ? esn - _top : _top - esn;
            if (d < best || (d == best && c < esn)) {
                esn = c;
            }
        }
        if (esn > _top) {
            return verdict::accepted;
        }
        if (_top - esn > window) {
            return verdict::too_old;
        }
        return _seen.count(esn) != 0 ? verdict::replayed : verdict::accepted;
    }

    /// Returns whether the accepted value is below the top (late).
    bool record(uint64_t esn, uint32_t window) {
        if (!_open) {
            _open = true;
            _top = esn;
            _seen = {esn};
            return false;
        }
        const bool late = esn < _top;
        _seen.insert(esn);
        _top = std::max(_top, esn);
        // Values this far behind are too old whatever the set says.
        _seen.erase(_seen.begin(), _seen.lower_bound(_top - window));
        return late;
    }

    void drop() {
        _open = false;
        _seen.clear();
    }

    bool open() const { return _open; }
    uint16_t top16() const { return static_cast<uint16_t>(_top); }

private:
    bool _open = false;
    uint64_t _top = 0;
    std::set<uint64_t> _seen;
};

struct model_stream {
    wire_message msg;
    uint32_t key_id;
    uint8_t spp;
    reference_window ref;
};

class replay_differential : public ::testing::TestWithParam<uint32_t> {};

TEST_P(replay_differential, matches_the_reference_model_over_many_random_operations) {
    replay_table t = table_of(GetParam(), 1024);
    const uint32_t w = t.window();
    std::mt19937_64 rng(0x5EED + w);
    const auto below = [&rng](uint64_t n) { return rng() % n; };

    // Streams: several sources and types, responses to several requesters
    // from one master, Management responses, each under two keys and two SAs.
    std::vector<model_stream> streams;
    const std::vector<std::pair<uint8_t, uint32_t>> keys = {{spp_a, key_a}, {spp_a, key_b}, {spp_b, key_a}};
    for (const auto& [spp, key_id] : keys) {
        for (uint8_t src = 0; src < 3; ++src) {
            for (const message_type mt : {message_type::sync, message_type::follow_up, message_type::announce,
                                          message_type::delay_req, message_type::signaling}) {
                streams.push_back({message_of(mt, source_port(static_cast<uint8_t>(0x11 * (src + 1)))), key_id, spp,
                                   reference_window{}});
            }
        }
        for (const message_type mt :
             {message_type::delay_resp, message_type::pdelay_resp, message_type::pdelay_resp_follow_up}) {
            for (uint8_t req = 0; req < 3; ++req) {
                streams.push_back({response_of(mt, source_port(0xEE), source_port(static_cast<uint8_t>(0x40 + req))),
                                   key_id, spp, reference_window{}});
            }
        }
        for (uint8_t req = 0; req < 2; ++req) {
            streams.push_back(
                {management_of(source_port(0xEE), source_port(static_cast<uint8_t>(0x40 + req)), action_response),
                 key_id, spp, reference_window{}});
        }
    }

    std::array<uint64_t, replay_verdict_count> model_counts{};
    uint64_t model_late = 0;
    uint64_t model_retired = 0;
    std::vector<uint16_t> last(streams.size(), 0);

    const auto next_seq = [&](size_t i) -> uint16_t {
        const model_stream& st = streams[i];
        const uint16_t top = st.ref.open() ? st.ref.top16() : last[i];
        uint16_t s = 0;
        const uint64_t r = below(100);
        if (r < 40) {
            s = static_cast<uint16_t>(last[i] + 1); // the sender's next
        } else if (r < 50) {
            s = static_cast<uint16_t>(last[i] + 2 + below(5)); // a few lost
        } else if (r < 55) {
            s = static_cast<uint16_t>(top + below(40000)); // long loss, some beyond 2^15
        } else if (r < 75) {
            s = static_cast<uint16_t>(top - below(2 * uint64_t{w} + 2)); // reorder or replay
        } else if (r < 85) {
            s = static_cast<uint16_t>(top - w - 2 + below(5)); // the window edge
        } else if (r < 90) {
            s = last[i]; // exact duplicate
        } else {
            s = static_cast<uint16_t>(rng()); // anything
        }
        if (static_cast<uint16_t>(s - last[i]) < 0x8000) {
            last[i] = s;
        }
        return s;
    };

    const auto model_accept = [&](size_t i, uint16_t s) {
        uint64_t esn = 0;
        const verdict v = streams[i].ref.judge(s, w, esn);
        if (v == verdict::accepted) {
            model_late += streams[i].ref.record(esn, w) ? 1 : 0;
        }
        ++model_counts[static_cast<size_t>(v)];
        return v;
    };

    constexpr int operations = 300000;
    int retire_ops = 0;
    std::vector<bytes> burst_octets;
    std::vector<replay_input> burst_in;
    std::vector<size_t> burst_stream;
    std::vector<uint16_t> burst_seq;
    std::vector<verdict> burst_out;
    int op = 0;
    while (op < operations) {
        const uint64_t kind = below(1000);
        if (kind == 0) {
            // Retire one key: the model forgets its streams.
            const auto& [spp, key_id] = keys[below(keys.size())];
            size_t open = 0;
            for (auto& st : streams) {
                if (st.spp == spp && st.key_id == key_id && st.ref.open()) {
                    ++open;
                    st.ref.drop();
                }
            }
            ASSERT_EQ(t.retire_key(spp, key_id), open) << "op " << op;
            model_retired += open;
            ++retire_ops;
            ++op;
        } else if (kind < 50) {
            // A burst of up to 40 messages, some of the same stream.
            const auto n = static_cast<uint16_t>(1 + below(40));
            burst_octets.clear();
            burst_in.clear();
            burst_stream.clear();
            burst_seq.clear();
            for (uint16_t j = 0; j < n; ++j) {
                const size_t i = below(streams.size());
                const uint16_t s = next_seq(i);
                burst_stream.push_back(i);
                burst_seq.push_back(s);
                burst_octets.push_back(
                    bytes(streams[i].msg.with_seq(s), streams[i].msg.with_seq(s) + streams[i].msg.octets().size()));
            }
            for (uint16_t j = 0; j < n; ++j) {
                const model_stream& st = streams[burst_stream[j]];
                burst_in.push_back({burst_octets[j].data(), st.spp, st.key_id});
            }
            burst_out.assign(n, verdict::too_old);
            const uint16_t got = t.accept_burst(burst_in.data(), n, burst_out.data());
            uint16_t want = 0;
            for (uint16_t j = 0; j < n; ++j) {
                const verdict v = model_accept(burst_stream[j], burst_seq[j]);
                ASSERT_EQ(burst_out[j], v) << "op " << op << " burst index " << j << " seq " << burst_seq[j];
                want = static_cast<uint16_t>(want + (v == verdict::accepted));
            }
            ASSERT_EQ(got, want);
            op += n;
        } else {
            const size_t i = below(streams.size());
            model_stream& st = streams[i];
            const uint16_t s = next_seq(i);
            const uint8_t* msg = st.msg.with_seq(s);
            const verdict peek = t.check(msg, st.spp, st.key_id);
            const verdict v = model_accept(i, s);
            ASSERT_EQ(peek, v) << "op " << op << " stream " << i << " seq " << s;
            ASSERT_EQ(t.accept(msg, st.spp, st.key_id), v) << "op " << op << " stream " << i << " seq " << s;
            ++op;
        }
    }
    EXPECT_EQ(std::accumulate(model_counts.begin(), model_counts.end(), uint64_t{0}),
              static_cast<uint64_t>(op - retire_ops));
    EXPECT_EQ(t.counters().verdicts, model_counts);
    EXPECT_EQ(t.counters().late, model_late);
    EXPECT_EQ(t.counters().retired, model_retired);
    EXPECT_EQ(t.counters().evicted, 0U);
    size_t open = 0;
    for (const auto& st : streams) {
        open += st.ref.open() ? 1 : 0;
    }
    EXPECT_EQ(t.size(), open);
    // Every verdict and path was exercised.
    for (const uint64_t c : model_counts) {
        EXPECT_GT(c, 1000U);
    }
    EXPECT_GT(model_late, 1000U);
    EXPECT_GT(model_retired, 0U);
}

INSTANTIATE_TEST_SUITE_P(windows, replay_differential, ::testing::Values(64U, 448U, 4032U), window_name);

} // namespace
} // namespace test
} // namespace ptpsec
