#include <drivers/clock/phc_clock.h>

#include <drivers/base/unique_fd.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <linux/ptp_clock.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace ptpsec::clock {

namespace {

// include/uapi/linux/posix-timers.h keeps these to the kernel; testptp.c
// defines them the same way. A file descriptor becomes a clock id by
// inverting it and tagging the low three bits with CLOCKFD.
constexpr clockid_t clockfd = 3;

constexpr clockid_t fd_to_clockid(int fd) noexcept {
    return static_cast<clockid_t>((~static_cast<unsigned int>(fd) << 3) | clockfd);
}

/// The driver's name for the clock ("ptp_kvm", "netdevsim", "ice-0000:3b:00.0-clk"),
/// from sysfs; empty if sysfs does not say.
std::string clock_name_of(const struct stat& st) {
    std::ifstream in(fmt::format("/sys/dev/char/{}:{}/clock_name", major(st.st_rdev), minor(st.st_rdev)));
    std::string name;
    std::getline(in, name);
    return name;
}

} // namespace

result<std::unique_ptr<phc_clock>> phc_clock::open(std::string_view path) {
    if (path.empty()) {
        return error{"phc: no device path given (expected phc:/dev/ptpN)"};
    }
    const std::string p(path);
    unique_fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        return error{fmt::format("phc:{}: cannot open: {}", p, std::strerror(errno))};
    }
    struct stat st {};
    if (fstat(fd.get(), &st) != 0) {
        return error{fmt::format("phc:{}: fstat: {}", p, std::strerror(errno))};
    }
    if (!S_ISCHR(st.st_mode)) {
        return error{fmt::format("phc:{}: not a PTP hardware clock (not a character device)", p)};
    }
    // Every PHC driver answers PTP_CLOCK_GETCAPS (Documentation/ptp); any
    // other character device refuses it, typically with ENOTTY.
    ptp_clock_caps caps{};
    if (ioctl(fd.get(), PTP_CLOCK_GETCAPS, &caps) != 0) {
        return error{fmt::format("phc:{}: not a PTP hardware clock (PTP_CLOCK_GETCAPS: {})", p, std::strerror(errno))};
    }
    timespec ts{};
    if (clock_gettime(fd_to_clockid(fd.get()), &ts) != 0) {
        return error{fmt::format("phc:{}: cannot read the clock (clock_gettime: {})", p, std::strerror(errno))};
    }
    const std::string driver = clock_name_of(st);
    std::string name = driver.empty() ? fmt::format("phc:{}", p) : fmt::format("phc:{} ({})", p, driver);
    return std::unique_ptr<phc_clock>(new phc_clock(std::move(name), p, fd.release()));
}

phc_clock::phc_clock(std::string name, std::string path, int fd) noexcept
    : source(source_kind::linux_phc, std::move(name)), _path(std::move(path)), _fd(fd), _clock_id(fd_to_clockid(fd)) {}

phc_clock::~phc_clock() {
    ::close(_fd);
}

uint64_t phc_clock::now_ns() const noexcept {
    timespec ts{};
    uint64_t ns = 0;
    if (clock_gettime(_clock_id, &ts) != 0 || !detail::to_ns(ts.tv_sec, ts.tv_nsec, ns)) {
        count_read_failure();
        return 0;
    }
    return ns;
}

} // namespace ptpsec::clock
