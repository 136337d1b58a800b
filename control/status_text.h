#pragma once

// Text lines of `ptpsecctl status` that ptpsec-controld also prints in its
// log, made from the same JSON the admin socket serves, so that the two
// never disagree.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

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

/// "  grantor ID: registrations N failed F (next in S s) | ticket keys held
/// K | ...", without a newline, from the node's "grantor" object.
std::string grantor_status_line(const nlohmann::ordered_json& grantor);

} // namespace ptpsec
