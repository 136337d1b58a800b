#pragma once

// Steering PTP to the PTP worker's queue with rte_flow, on NICs that can:
// ethertype 0x88F7 (untagged and under one VLAN tag) and UDP to ports 319
// and 320 over IPv4 and IPv6 go to one RX queue; everything else is spread
// by RSS. Where the PMD refuses a rule (every virtual PMD does), the other
// workers hand PTP over in software instead (dataplane/worker.h): the result
// is the same, at the cost of a ring.

#include <drivers/base/result.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec {

enum class steering_mode : uint8_t {
    automatic, ///< rte_flow where every port accepts the rules, software otherwise
    flow,      ///< rte_flow on every port, or refuse to start
    software,  ///< no rules: workers hand PTP over on rings
};

std::string_view steering_mode_name(steering_mode m) noexcept;

/// How PTP reaches the PTP worker on each port.
struct steering_outcome {
    bool flow = false;              ///< rules installed on every port
    std::vector<std::string> notes; ///< why a port fell back to software, for the banner
};

/// Installs the rules on every port (started), sending PTP to `queue`. With
/// `automatic`, a port that refuses any rule keeps none and the outcome says
/// why; with `flow` that is an error naming the port, the rule and the PMD's
/// reason. Nothing is installed with `software`.
result<steering_outcome> steer_ptp(const std::vector<uint16_t>& ports, uint16_t queue, steering_mode mode);

/// Removes the rules steer_ptp() installed (rte_flow_flush), before the ports stop.
void unsteer_ptp(const std::vector<uint16_t>& ports) noexcept;

} // namespace ptpsec
