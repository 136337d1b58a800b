#pragma once

// What an admin request line says (admin.h has the protocol): the command
// and the arguments of the commands that take some. Read here, apart from
// the socket, so that the tests and a fuzz target
// (fuzz/admin_request_fuzz.cpp) reach every refusal; a refusal's message is
// the {"error": ...} reply the operator sees.

#include <drivers/base/result.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ptpsec::controld::admin {

/// One request: its command, and the whole object for the arguments.
struct request {
    std::string command;
    nlohmann::json object;
};

/// A request line without its newline (a CR before it is dropped here): one
/// JSON object with a string "command".
result<request> parse_request(std::string_view line);

/// `rotate`: "group" (a group's name; every group when absent) and "in_s"
/// (whole seconds from 1 to ke::max_lifetime_s: when the current key ends;
/// the group's update period when absent).
struct rotate_arguments {
    std::string group;
    std::optional<uint32_t> in_s;
};
result<rotate_arguments> parse_rotate(const nlohmann::json& request);

/// `revoke`: "grantor", the grantor's PortIdentity as `ptpsecctl grantors`
/// shows it ("001b21fffe000001-1").
result<std::string> parse_revoke(const nlohmann::json& request);

} // namespace ptpsec::controld::admin
