#pragma once

// Whether this test binary runs under AddressSanitizer: it makes every
// allocation and CBOR item slower, and ends the process on an allocation
// that fails rather than throwing std::bad_alloc.

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

} // namespace ptpsec::test
