#pragma once

// Text lines of `ptpsecctl status` that ptpsec-controld also prints in its
// log, made from the same JSON the admin socket serves, so that the two
// never disagree.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace ptpsec {

/// A counter of a status object: `name`'s value, 0 when it is absent.
inline uint64_t count_of(const nlohmann::ordered_json& j, const char* name) {
    return j.value(name, uint64_t{0});
}

/// "window W, S of C streams | accepted A (late L) replayed R too_old T |
/// opened O evicted E retired R", or "off" (window 0), from the data plane's
/// "replay" object (/ptpsec/stats, --stats-json): the replay line of
/// ptpsec-dataplane's counters and of `ptpsecctl stats`.
std::string replay_line(const nlohmann::ordered_json& replay);

/// "NAME [POLICY]: rx R tx T dropped D | non-PTP N ..., | dropped: REASON
/// COUNT, ... [CAUSE COUNT]", from a path object of the data plane's
/// counters (/ptpsec/stats, --stats-json): the path lines of
/// ptpsec-dataplane's counters and of `ptpsecctl stats`. Reasons and causes
/// that are zero are left out.
std::string path_line(const nlohmann::ordered_json& path);

/// "worker lcore LCORE: rx R tx T handed to the PTP worker H dropped D",
/// from a worker object of the same counters.
std::string worker_line(std::string_view lcore, const nlohmann::ordered_json& worker);

/// "  grantor ID: registrations N failed F (next in S s) | ticket keys held
/// K | ...", without a newline, from the node's "grantor" object.
std::string grantor_status_line(const nlohmann::ordered_json& grantor);

} // namespace ptpsec
