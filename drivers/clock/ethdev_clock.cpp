#include <drivers/clock/ethdev_clock.h>

#include <fmt/format.h>
#include <rte_ethdev.h>

#include <cerrno>
#include <cstring>

namespace ptpsec::clock {

namespace {

/// "ENOTSUP": DPDK returns negative errno values and the operator should see
/// the name the DPDK documentation uses. ENOTSUP and EOPNOTSUPP share a value
/// on Linux; DPDK spells it ENOTSUP.
std::string errno_name(int err) {
    switch (err) {
    case ENOTSUP:
        return "ENOTSUP";
    case ENODEV:
        return "ENODEV";
    case EINVAL:
        return "EINVAL";
    case EIO:
        return "EIO";
    case EPERM:
        return "EPERM";
    case EBUSY:
        return "EBUSY";
    default:
        return fmt::format("errno {}", err);
    }
}

/// "ethdev:0 (net_null0, driver net_null)".
std::string describe_port(uint16_t port_id) {
    char name[RTE_ETH_NAME_MAX_LEN] = {};
    if (rte_eth_dev_get_name_by_port(port_id, name) != 0) {
        name[0] = '\0';
    }
    rte_eth_dev_info info{};
    const char* driver =
        rte_eth_dev_info_get(port_id, &info) == 0 && info.driver_name != nullptr ? info.driver_name : "?";
    return fmt::format("ethdev:{} ({}, driver {})", port_id, name, driver);
}

bool timespec_to_ns(const timespec& ts, uint64_t& ns) noexcept {
    return detail::to_ns(ts.tv_sec, ts.tv_nsec, ns);
}

} // namespace

result<std::unique_ptr<ethdev_clock>> ethdev_clock::open(uint16_t port_id) {
    if (rte_eth_dev_is_valid_port(port_id) == 0) {
        return error{
            fmt::format("ethdev:{}: no such port (EAL not initialised, or no device probed with that id)", port_id)};
    }
    std::string port = describe_port(port_id);
    if (const int rc = rte_eth_timesync_enable(port_id); rc != 0) {
        if (rc == -ENOTSUP) {
            return error{fmt::format("{}: the PMD has no IEEE 1588 timesync support (rte_eth_timesync_enable: "
                                     "-ENOTSUP); use phc:/dev/ptpN or tai",
                                     port)};
        }
        return error{fmt::format("{}: rte_eth_timesync_enable: -{} ({})", port, errno_name(-rc), std::strerror(-rc))};
    }
    timespec ts{};
    if (const int rc = rte_eth_timesync_read_time(port_id, &ts); rc != 0) {
        rte_eth_timesync_disable(port_id);
        return error{fmt::format("{}: timesync enabled but the clock cannot be read (rte_eth_timesync_read_time: "
                                 "-{} ({}))",
                                 port, errno_name(-rc), std::strerror(-rc))};
    }
    return std::unique_ptr<ethdev_clock>(new ethdev_clock(std::move(port), port_id));
}

result<std::unique_ptr<ethdev_clock>> ethdev_clock::open(std::string_view port_name) {
    const std::string n(port_name);
    uint16_t port_id = 0;
    if (n.empty() || rte_eth_dev_get_port_by_name(n.c_str(), &port_id) != 0) {
        return error{fmt::format("ethdev:{}: no port of that name (EAL not initialised, or no such device probed)", n)};
    }
    return open(port_id);
}

ethdev_clock::~ethdev_clock() {
    // The port may be closed already; then there is nothing to disable.
    if (rte_eth_dev_is_valid_port(_port_id) != 0) {
        rte_eth_timesync_disable(_port_id);
    }
}

uint64_t ethdev_clock::now_ns() const noexcept {
    timespec ts{};
    uint64_t ns = 0;
    if (rte_eth_timesync_read_time(_port_id, &ts) != 0 || !timespec_to_ns(ts, ns)) {
        count_read_failure();
        return 0;
    }
    return ns;
}

bool ethdev_clock::read_rx_timestamp(uint32_t flags, uint64_t& ns) const noexcept {
    timespec ts{};
    return rte_eth_timesync_read_rx_timestamp(_port_id, &ts, flags) == 0 && timespec_to_ns(ts, ns);
}

bool ethdev_clock::read_tx_timestamp(uint64_t& ns) const noexcept {
    timespec ts{};
    return rte_eth_timesync_read_tx_timestamp(_port_id, &ts) == 0 && timespec_to_ns(ts, ns);
}

stamp ethdev_clock::rx_stamp(uint32_t flags) noexcept {
    stamp s;
    s.hardware = read_rx_timestamp(flags, s.ns);
    if (!s.hardware) {
        s.ns = now_ns();
    }
    return s;
}

stamp ethdev_clock::tx_stamp() noexcept {
    stamp s;
    s.hardware = read_tx_timestamp(s.ns);
    if (!s.hardware) {
        s.ns = now_ns();
    }
    return s;
}

} // namespace ptpsec::clock
