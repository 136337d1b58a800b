#pragma once

// A Linux PTP hardware clock, /dev/ptpN (linux Documentation/ptp/ptp.rst).
// The character device is a dynamic POSIX clock: clock_gettime() on the
// clock id made from the open file descriptor reads the hardware, as
// tools/testing/selftests/ptp/testptp.c does. Each read is a system call
// (about a microsecond), so the data plane reads it once per burst.

#include <drivers/clock/source.h>

#include <ctime>

namespace ptpsec::clock {

class phc_clock final : public source {
public:
    /// Opens `path` read-only and checks that it is a PHC: a character
    /// device that answers PTP_CLOCK_GETCAPS and whose clock can be read.
    static result<std::unique_ptr<phc_clock>> open(std::string_view path);

    ~phc_clock() override;
    phc_clock(const phc_clock&) = delete;
    phc_clock& operator=(const phc_clock&) = delete;
    phc_clock(phc_clock&&) = delete;
    phc_clock& operator=(phc_clock&&) = delete;

    uint64_t now_ns() const noexcept override;

    const std::string& path() const noexcept { return _path; }
    /// The dynamic clock id, for callers that want to read it themselves.
    clockid_t clock_id() const noexcept { return _clock_id; }

private:
    phc_clock(std::string name, std::string path, int fd) noexcept;

    std::string _path;
    int _fd;
    clockid_t _clock_id;
};

} // namespace ptpsec::clock
