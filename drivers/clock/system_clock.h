#pragma once

// The system clock as a timestamp source: CLOCK_TAI, for virtual ports and
// hosts without a PHC. It is read through the vDSO (tens of nanoseconds, no
// system call). CLOCK_TAI equals CLOCK_REALTIME plus the kernel's TAI-UTC
// offset, which stays 0 until something sets it (chrony with leapsectz, or
// adjtimex(ADJ_TAI) by hand); name() says which case holds, so that an
// operator learns that records are stamped 37 s off TAI at start-up rather
// than in an audit.

#include <drivers/clock/source.h>

namespace ptpsec::clock {

class system_clock final : public source {
public:
    static result<std::unique_ptr<system_clock>> open();

    uint64_t now_ns() const noexcept override;

    /// The kernel's TAI-UTC offset in seconds when the clock was opened.
    int tai_offset_s() const noexcept { return _tai_offset_s; }

private:
    system_clock(std::string name, int tai_offset_s)
        : source(source_kind::system_tai, std::move(name)), _tai_offset_s(tai_offset_s) {}

    int _tai_offset_s;
};

} // namespace ptpsec::clock
