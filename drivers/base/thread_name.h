#pragma once

// Names a thread, so that `top -H`, `ps -L`, perf and gdb show what each of a
// process's threads is for. Called by the thread's creator right after it
// starts, so the name is there as soon as the creating call returns. Linux
// keeps at most 15 characters; a longer name is cut there rather than
// refused.

#include <pthread.h>

#include <algorithm>
#include <array>
#include <string_view>
#include <thread>

namespace ptpsec {

inline void name_thread(std::thread& t, std::string_view name) noexcept {
    std::array<char, 16> buf{};
    const size_t n = std::min(name.size(), buf.size() - 1);
    std::copy_n(name.data(), n, buf.data());
    (void)pthread_setname_np(t.native_handle(), buf.data());
}

} // namespace ptpsec
