// The exception channel (dataplane/exception_channel.h): records both ways
// in order across the wrap, a ring that holds exactly its slots and refuses
// more instead of waiting, records of the largest frame intact, attach
// errors that say what is wrong, and the two sides in two processes.

#include <dataplane/exception_channel.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>

namespace ptpsec {
namespace {

using exception_wire::max_frame_len;
using exception_wire::record;

std::string unique_prefix(const char* what) {
    return fmt::format("test-exc-{}-{}", what, ::getpid());
}

/// A record of `len` frame octets, each frame octet derived from `seq`.
std::unique_ptr<record> make_record(uint64_t seq, uint16_t len, uint16_t port = 1) {
    auto r = std::make_unique<record>();
    r->port = port;
    r->frame_len = len;
    r->sequence = seq;
    r->rx_ns = 1000 + seq;
    r->reason = static_cast<uint8_t>(exception_wire::reason::unknown_key);
    r->spp = 3;
    r->key_id = static_cast<uint32_t>(seq * 7);
    for (uint16_t i = 0; i < len; ++i) {
        r->frame[i] = static_cast<uint8_t>(seq + uint64_t{i} * 13);
    }
    return r;
}

testing::AssertionResult same(const record& got, const record& want) {
    if (std::memcmp(&got, &want, sizeof(record)) != 0) {
        return testing::AssertionFailure() << "record " << want.sequence << " changed on the way (got sequence "
                                           << got.sequence << ", frame_len " << got.frame_len << ")";
    }
    return testing::AssertionSuccess();
}

TEST(exception_channel_test, records_round_trip_both_ways_in_order_across_the_wrap) {
    const std::string prefix = unique_prefix("rt");
    auto created = exception_channel::create(prefix, 3);
    ASSERT_TRUE(created) << created.message();
    exception_channel& dp = *created;
    EXPECT_EQ(dp.slots(), 3U);
    EXPECT_EQ(dp.name(), "/ptpsec-exc." + prefix);
    auto attached = exception_channel::attach(prefix);
    ASSERT_TRUE(attached) << attached.message();
    exception_channel& ctl = *attached;
    EXPECT_EQ(ctl.slots(), 3U);

    uint64_t seq = 1;
    auto got = std::make_unique<record>();
    for (int round = 0; round < 10; ++round) {
        // The data plane fills slots in place, as the worker does.
        for (int i = 0; i < 2; ++i, ++seq) {
            const auto want = make_record(seq, static_cast<uint16_t>(60 + seq));
            record* slot = dp.exception_slot();
            ASSERT_NE(slot, nullptr) << "round " << round;
            std::memcpy(slot, want.get(), sizeof(record));
            dp.commit_exception();
        }
        EXPECT_EQ(ctl.exceptions_waiting(), 2U);
        for (uint64_t s = seq - 2; s < seq; ++s) {
            ASSERT_TRUE(ctl.pop_exception(*got));
            EXPECT_TRUE(same(*got, *make_record(s, static_cast<uint16_t>(60 + s))));
            // The control plane gives the record back as it came.
            ASSERT_TRUE(ctl.push_reinject(*got));
        }
        EXPECT_FALSE(ctl.pop_exception(*got));
        EXPECT_TRUE(dp.reinject_waiting());
        for (uint64_t s = seq - 2; s < seq; ++s) {
            const record* r = dp.peek_reinject();
            ASSERT_NE(r, nullptr);
            EXPECT_TRUE(same(*r, *make_record(s, static_cast<uint16_t>(60 + s))));
            dp.release_reinject();
        }
        EXPECT_FALSE(dp.reinject_waiting());
        EXPECT_EQ(dp.peek_reinject(), nullptr);
    }
}

TEST(exception_channel_test, empty_rings_say_so) {
    auto dp = exception_channel::create(unique_prefix("empty"), 4);
    ASSERT_TRUE(dp) << dp.message();
    auto ctl = exception_channel::attach(unique_prefix("empty"));
    ASSERT_TRUE(ctl) << ctl.message();
    auto r = std::make_unique<record>();
    EXPECT_FALSE(ctl->pop_exception(*r));
    EXPECT_EQ(ctl->exceptions_waiting(), 0U);
    EXPECT_FALSE(dp->reinject_waiting());
    EXPECT_EQ(dp->peek_reinject(), nullptr);
    EXPECT_FALSE(dp->pop_reinject(*r));
}

TEST(exception_channel_test, a_ring_holds_exactly_its_slots_and_refuses_more_instead_of_waiting) {
    for (const unsigned slots : {1U, 3U, 4U, 5U}) {
        const std::string prefix = unique_prefix(fmt::format("full{}", slots).c_str());
        auto dp = exception_channel::create(prefix, slots);
        ASSERT_TRUE(dp) << dp.message();
        auto ctl = exception_channel::attach(prefix);
        ASSERT_TRUE(ctl) << ctl.message();
        EXPECT_EQ(dp->slots(), slots);
        for (unsigned i = 0; i < slots; ++i) {
            ASSERT_TRUE(dp->push_exception(*make_record(i + 1, 64))) << slots << " slots, record " << i;
            ASSERT_TRUE(ctl->push_reinject(*make_record(i + 1, 64))) << slots << " slots, record " << i;
        }
        EXPECT_EQ(dp->exception_slot(), nullptr) << slots;
        EXPECT_FALSE(dp->push_exception(*make_record(99, 64))) << slots;
        EXPECT_FALSE(ctl->push_reinject(*make_record(99, 64))) << slots;
        // Taking one makes room for one.
        auto r = std::make_unique<record>();
        ASSERT_TRUE(ctl->pop_exception(*r));
        EXPECT_EQ(r->sequence, 1U);
        EXPECT_TRUE(dp->push_exception(*make_record(100, 64)));
        ASSERT_TRUE(dp->pop_reinject(*r));
        EXPECT_EQ(r->sequence, 1U);
        EXPECT_TRUE(ctl->push_reinject(*make_record(100, 64)));
    }
}

TEST(exception_channel_test, a_cancelled_slot_is_never_seen) {
    auto dp = exception_channel::create(unique_prefix("cancel"), 2);
    ASSERT_TRUE(dp) << dp.message();
    auto ctl = exception_channel::attach(unique_prefix("cancel"));
    ASSERT_TRUE(ctl) << ctl.message();
    record* slot = dp->exception_slot();
    ASSERT_NE(slot, nullptr);
    std::memcpy(slot, make_record(1, 80).get(), sizeof(record));
    dp->cancel_exception();
    EXPECT_EQ(ctl->exceptions_waiting(), 0U);
    ASSERT_TRUE(dp->push_exception(*make_record(2, 80)));
    auto r = std::make_unique<record>();
    ASSERT_TRUE(ctl->pop_exception(*r));
    EXPECT_TRUE(same(*r, *make_record(2, 80)));
}

TEST(exception_channel_test, the_largest_frame_travels_whole) {
    // A 1518-octet frame with two VLAN tags, every octet distinct from its
    // neighbours: nothing cut at either end of the record.
    static_assert(max_frame_len == 1526);
    auto dp = exception_channel::create(unique_prefix("big"), 2);
    ASSERT_TRUE(dp) << dp.message();
    auto ctl = exception_channel::attach(unique_prefix("big"));
    ASSERT_TRUE(ctl) << ctl.message();
    for (uint64_t seq = 1; seq <= 5; ++seq) { // across the wrap of a two-slot ring
        const auto want = make_record(seq, static_cast<uint16_t>(max_frame_len));
        ASSERT_TRUE(dp->push_exception(*want));
        auto got = std::make_unique<record>();
        ASSERT_TRUE(ctl->pop_exception(*got));
        EXPECT_TRUE(same(*got, *want));
        EXPECT_EQ(got->frame[max_frame_len - 1], want->frame[max_frame_len - 1]);
    }
}

TEST(exception_channel_test, create_refuses_a_size_it_cannot_make) {
    auto none = exception_channel::create(unique_prefix("zero"), 0);
    ASSERT_FALSE(none);
    EXPECT_NE(none.message().find("0 slots (1-65536)"), std::string::npos) << none.message();
    auto huge = exception_channel::create(unique_prefix("huge"), exception_channel::max_slots + 1);
    ASSERT_FALSE(huge);
    EXPECT_NE(huge.message().find("65537 slots"), std::string::npos) << huge.message();
}

TEST(exception_channel_test, the_segment_is_roots_alone_and_goes_with_its_creator) {
    const std::string prefix = unique_prefix("mode");
    {
        auto dp = exception_channel::create(prefix, 2);
        ASSERT_TRUE(dp) << dp.message();
        struct stat st {};
        ASSERT_EQ(::stat(("/dev/shm" + exception_channel::segment_name(prefix)).c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 0777, 0600U);
        // A stale segment (a data plane that did not stop cleanly) is replaced.
        auto again = exception_channel::create(prefix, 4);
        ASSERT_TRUE(again) << again.message();
        auto attached = exception_channel::attach(prefix);
        ASSERT_TRUE(attached) << attached.message();
        EXPECT_EQ(attached->slots(), 4U);
    }
    EXPECT_FALSE(exception_channel::attach(prefix));
}

TEST(exception_channel_test, attach_says_what_is_wrong) {
    auto none = exception_channel::attach(unique_prefix("absent"));
    ASSERT_FALSE(none);
    EXPECT_NE(none.message().find("no ptpsec-dataplane with --tickets running with file prefix"), std::string::npos)
        << none.message();

    // A segment of another layout version.
    const std::string prefix = unique_prefix("version");
    {
        auto dp = exception_channel::create(prefix, 4);
        ASSERT_TRUE(dp);
        const int fd = ::shm_open(exception_channel::segment_name(prefix).c_str(), O_RDWR, 0);
        ASSERT_GE(fd, 0);
        auto* p = static_cast<uint32_t*>(::mmap(nullptr, 64, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        ASSERT_NE(p, MAP_FAILED);
        p[1] = 99; // version
        auto other = exception_channel::attach(prefix);
        ASSERT_FALSE(other);
        EXPECT_NE(other.message().find("layout version 99"), std::string::npos) << other.message();
        p[1] = 1;
        p[2] = 1U << 20; // slots: rings larger than the segment
        auto inconsistent = exception_channel::attach(prefix);
        ASSERT_FALSE(inconsistent);
        EXPECT_NE(inconsistent.message().find("inconsistent header"), std::string::npos) << inconsistent.message();
        ::munmap(p, 64);
        ::close(fd);
    }
    // The creator removed it.
    auto gone = exception_channel::attach(prefix);
    ASSERT_FALSE(gone);
    EXPECT_NE(gone.message().find("no ptpsec-dataplane with --tickets running"), std::string::npos);

    // Something else under the name.
    const std::string other = unique_prefix("short");
    const int fd = ::shm_open(exception_channel::segment_name(other).c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 16), 0);
    auto too_short = exception_channel::attach(other);
    ::close(fd);
    ::shm_unlink(exception_channel::segment_name(other).c_str());
    ASSERT_FALSE(too_short);
    EXPECT_NE(too_short.message().find("too short"), std::string::npos) << too_short.message();
}

TEST(exception_channel_test, works_between_two_processes) {
    // The control side in a child process (no EAL there either): it takes
    // 200 exceptions and gives each back; the parent, as the data plane,
    // hands them over and takes them back, through rings of 8.
    const std::string prefix = unique_prefix("fork");
    auto dp = exception_channel::create(prefix, 8);
    ASSERT_TRUE(dp);
    constexpr uint64_t total = 200;
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        auto ctl = exception_channel::attach(prefix);
        if (!ctl) {
            ::_exit(3);
        }
        auto r = std::make_unique<record>();
        for (uint64_t seq = 1; seq <= total; ++seq) {
            while (!ctl->pop_exception(*r)) {
                ::usleep(50);
            }
            if (r->sequence != seq || std::memcmp(r.get(), make_record(seq, 90).get(), sizeof(record)) != 0) {
                ::_exit(4);
            }
            while (!ctl->push_reinject(*r)) {
                ::usleep(50);
            }
        }
        ::_exit(0);
    }
    uint64_t sent = 1;
    uint64_t back = 1;
    auto r = std::make_unique<record>();
    for (int spins = 0; back <= total && spins < 2000000; ++spins) {
        bool busy = false;
        if (sent <= total && dp->push_exception(*make_record(sent, 90))) {
            ++sent;
            busy = true;
        }
        if (dp->pop_reinject(*r)) {
            EXPECT_TRUE(same(*r, *make_record(back, 90)));
            ++back;
            busy = true;
        }
        if (!busy) {
            ::usleep(20);
        }
    }
    int ws = 0;
    ASSERT_EQ(::waitpid(child, &ws, 0), child);
    EXPECT_TRUE(WIFEXITED(ws));
    EXPECT_EQ(WEXITSTATUS(ws), 0);
    EXPECT_EQ(back, total + 1);
}

} // namespace
} // namespace ptpsec
