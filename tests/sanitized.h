#pragma once

// Whether this test binary runs under AddressSanitizer: it makes every
// allocation and CBOR item slower, and ends the process on an allocation
// that fails rather than throwing std::bad_alloc.

#include <fstream>
#include <string>

namespace ptpsec::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif
#else
inline constexpr bool sanitized = false;
#endif

/// Whether an allocation of 1 TiB throws std::bad_alloc here, as a test of
/// a file larger than memory (a sparse one) needs: not under ASan, which
/// ends the process instead, nor on a kernel that always overcommits
/// (vm.overcommit_memory 1), which hands the memory out; the default
/// heuristic (0) and never (2) refuse it.
inline bool a_huge_allocation_throws() {
    std::ifstream in("/proc/sys/vm/overcommit_memory");
    std::string mode;
    in >> mode;
    return !sanitized && mode != "1";
}

} // namespace ptpsec::test
