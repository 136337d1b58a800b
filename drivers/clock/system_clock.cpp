#include <drivers/clock/system_clock.h>

#include <fmt/format.h>

#include <sys/timex.h>

#include <cerrno>
#include <cstring>
#include <ctime>

namespace ptpsec::clock {

result<std::unique_ptr<system_clock>> system_clock::open() {
    timespec ts{};
    if (clock_gettime(CLOCK_TAI, &ts) != 0) {
        return error{fmt::format("tai: clock_gettime(CLOCK_TAI): {}", std::strerror(errno))};
    }
    // adjtimex() with modes 0 only reads; it needs no privilege.
    timex tx{};
    const int offset = adjtimex(&tx) >= 0 ? tx.tai : 0;
    std::string name = offset != 0 ? fmt::format("tai (CLOCK_TAI, TAI-UTC offset {} s)", offset)
                                   : std::string("tai (CLOCK_TAI, TAI-UTC offset not set: reads as UTC)");
    return std::unique_ptr<system_clock>(new system_clock(std::move(name), offset));
}

uint64_t system_clock::now_ns() const noexcept {
    timespec ts{};
    uint64_t ns = 0;
    if (clock_gettime(CLOCK_TAI, &ts) != 0 || !detail::to_ns(ts.tv_sec, ts.tv_nsec, ns)) {
        count_read_failure();
        return 0;
    }
    return ns;
}

} // namespace ptpsec::clock
