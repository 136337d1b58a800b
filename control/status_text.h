#pragma once

// Text lines of `ptpsecctl status` that ptpsec-controld also prints in its
// log, made from the same JSON the admin socket serves, so that the two
// never disagree.

#include <nlohmann/json.hpp>

#include <string>

namespace ptpsec {

/// "  grantor ID: registrations N failed F (next in S s) | ticket keys held
/// K | ...", without a newline, from the node's "grantor" object.
std::string grantor_status_line(const nlohmann::ordered_json& grantor);

} // namespace ptpsec
