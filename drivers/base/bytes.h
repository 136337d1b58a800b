#pragma once

// Big-endian field access for wire formats. The compiler turns these into a
// load plus bswap; they never read or write past the bytes they are given.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

namespace ptpsec {

inline uint16_t load_be16(const uint8_t* p) noexcept {
    return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

inline uint32_t load_be32(const uint8_t* p) noexcept {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

inline uint64_t load_be48(const uint8_t* p) noexcept {
    return (uint64_t{load_be16(p)} << 32) | load_be32(p + 2);
}

inline uint64_t load_be64(const uint8_t* p) noexcept {
    return (uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}

inline void store_be16(uint8_t* p, uint16_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

inline void store_be32(uint8_t* p, uint32_t v) noexcept {
    p[0] = static_cast<uint8_t>(v >> 24);
    p[1] = static_cast<uint8_t>(v >> 16);
    p[2] = static_cast<uint8_t>(v >> 8);
    p[3] = static_cast<uint8_t>(v);
}

inline void store_be48(uint8_t* p, uint64_t v) noexcept {
    store_be16(p, static_cast<uint16_t>(v >> 32));
    store_be32(p + 2, static_cast<uint32_t>(v));
}

inline void store_be64(uint8_t* p, uint64_t v) noexcept {
    store_be32(p, static_cast<uint32_t>(v >> 32));
    store_be32(p + 4, static_cast<uint32_t>(v));
}

/// Compares two byte strings in time that depends only on their length.
/// Used for ICVs, where an early exit would leak how many bytes matched.
inline bool ct_equal(const uint8_t* a, const uint8_t* b, size_t n) noexcept {
    // Eight octets at a time (ICVs are 16 or 32 octets), then the rest.
    uint64_t diff = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x = 0;
        uint64_t y = 0;
        std::memcpy(&x, a + i, 8);
        std::memcpy(&y, b + i, 8);
        diff |= x ^ y;
    }
    for (; i < n; ++i) {
        diff |= static_cast<uint64_t>(a[i] ^ b[i]);
    }
    // Keep the compiler from turning the loop into an early-exit memcmp.
    asm volatile("" : "+r"(diff));
    return diff == 0;
}

/// Overwrites memory in a way the optimiser may not drop (retired keys).
inline void secure_wipe(void* p, size_t n) noexcept {
    if (n == 0) {
        return; // p may be null (an empty vector), which memset does not allow
    }
    std::memset(p, 0, n);
    // The barrier tells the compiler the zeroes are read: the memset stays.
    asm volatile("" : : "r"(p) : "memory");
}

/// An allocator that overwrites memory before giving it back, so that keys
/// (the NTS codec's, an SA file's text) do not outlive their container in
/// freed heap memory, also when a vector grows.
template <typename T>
struct wiping_allocator {
    using value_type = T;

    wiping_allocator() noexcept = default;
    template <typename U>
    wiping_allocator(const wiping_allocator<U>& /*other*/) noexcept {}

    T* allocate(size_t n) { return std::allocator<T>{}.allocate(n); }
    void deallocate(T* p, size_t n) noexcept {
        secure_wipe(p, n * sizeof(T));
        std::allocator<T>{}.deallocate(p, n);
    }

    template <typename U>
    bool operator==(const wiping_allocator<U>& /*other*/) const noexcept {
        return true;
    }
};

} // namespace ptpsec
