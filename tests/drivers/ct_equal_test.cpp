// ct_equal (drivers/base/bytes.h) compares a computed ICV with the one a
// frame carries. An early exit would tell an attacker, by time, how many
// leading octets of a forged ICV are right. This program checks that the
// comparison neither branches on nor indexes memory with the octets it
// compares, with memcheck: the octets are marked undefined (their values
// stay), and memcheck reports every conditional jump and every address that
// depends on an undefined value. It runs under valgrind (meson test starts
// it so) and refuses to run otherwise. The check is made on the code the
// normal build compiles; the sanitizer build does not build this program.

#include <drivers/base/bytes.h>

#include <gtest/gtest.h>
#include <valgrind/memcheck.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace {

using compare_fn = bool (*)(const uint8_t*, const uint8_t*, size_t);

/// ct_equal as the data plane compiles it, not inlined here, so that the
/// test's use of the result cannot be merged into the comparison.
[[gnu::noinline]] bool ct(const uint8_t* a, const uint8_t* b, size_t n) {
    return ptpsec::ct_equal(a, b, n);
}

/// What ct_equal must not be: it stops at the first octet that differs.
/// The self-check shows that memcheck catches it.
[[gnu::noinline]] bool early_exit(const uint8_t* a, const uint8_t* b, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        if (a[i] != b[i]) {
            return false;
        }
    }
    return true;
}

struct outcome {
    unsigned long reports = 0; ///< memcheck errors raised by the comparison
    bool equal = false;
};

/// Compares copies of a and b whose octets are undefined for memcheck; the
/// result is made defined again after the count is taken.
outcome compare_secret(compare_fn f, std::vector<uint8_t> a, std::vector<uint8_t> b) {
    (void)VALGRIND_MAKE_MEM_UNDEFINED(a.data(), a.size());
    (void)VALGRIND_MAKE_MEM_UNDEFINED(b.data(), b.size());
    const unsigned long before = VALGRIND_COUNT_ERRORS;
    bool equal = f(a.data(), b.data(), a.size());
    const unsigned long after = VALGRIND_COUNT_ERRORS;
    (void)VALGRIND_MAKE_MEM_DEFINED(&equal, sizeof equal);
    return {after - before, equal};
}

std::vector<uint8_t> pattern(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>(0x5A ^ (i * 37));
    }
    return v;
}

TEST(ct_equal, runs_under_memcheck) {
    ASSERT_TRUE(RUNNING_ON_VALGRIND) << "run this program under valgrind (meson test -C build ct-equal)";
}

TEST(ct_equal, the_check_catches_a_comparison_that_stops_early) {
    if (!RUNNING_ON_VALGRIND) {
        GTEST_SKIP() << "needs valgrind";
    }
    std::vector<uint8_t> a = pattern(16);
    std::vector<uint8_t> b = a;
    b[5] ^= 0x01;
    // memcheck's report that follows is the expected one.
    const outcome o = compare_secret(early_exit, a, b);
    EXPECT_GT(o.reports, 0UL) << "memcheck did not see a branch on the compared octets";
    EXPECT_FALSE(o.equal);
}

// Every length up to 64 octets (the ICVs are 16 and 32; the rest covers the
// tail loop), equal, one bit different at every position (low and high bit),
// and every octet different: the right answer, and no report.
TEST(ct_equal, neither_branches_on_nor_indexes_by_the_octets_it_compares) {
    if (!RUNNING_ON_VALGRIND) {
        GTEST_SKIP() << "needs valgrind";
    }
    size_t compared = 0;
    for (size_t n = 0; n <= 64; ++n) {
        SCOPED_TRACE(n);
        const std::vector<uint8_t> a = pattern(n);
        outcome o = compare_secret(ct, a, a);
        EXPECT_EQ(o.reports, 0UL);
        EXPECT_TRUE(o.equal);
        ++compared;
        for (size_t i = 0; i < n; ++i) {
            for (const uint8_t bit : {uint8_t{0x01}, uint8_t{0x80}}) {
                std::vector<uint8_t> b = a;
                b[i] ^= bit;
                o = compare_secret(ct, a, b);
                EXPECT_EQ(o.reports, 0UL) << "position " << i;
                EXPECT_FALSE(o.equal) << "position " << i;
                ++compared;
            }
        }
        if (n > 0) {
            std::vector<uint8_t> b = a;
            for (uint8_t& x : b) {
                x = static_cast<uint8_t>(~x);
            }
            o = compare_secret(ct, a, b);
            EXPECT_EQ(o.reports, 0UL);
            EXPECT_FALSE(o.equal);
            ++compared;
        }
    }
    EXPECT_EQ(compared, 65U + 64U * 65U + 64U);
}

} // namespace
