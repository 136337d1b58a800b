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

/// "  grantor ID: registrations N failed F (next in S s) | ticket keys held
/// K | ...", without a newline, from the node's "grantor" object.
std::string grantor_status_line(const nlohmann::ordered_json& grantor);

} // namespace ptpsec
