#include <control/controld/admin_request.h>

#include <control/ke/group_keys.h>

#include <fmt/format.h>

namespace ptpsec::controld::admin {

result<request> parse_request(std::string_view line) {
    if (line.ends_with('\r')) {
        line.remove_suffix(1);
    }
    nlohmann::json object = nlohmann::json::parse(line, nullptr, false);
    // A line that is no JSON parses to "discarded", which is no object.
    if (!object.is_object() || !object.contains("command") || !object.at("command").is_string()) {
        return error{R"(a request is one JSON line such as {"command":"status"})"};
    }
    std::string name = object.at("command").get<std::string>();
    return request{std::move(name), std::move(object)};
}

result<rotate_arguments> parse_rotate(const nlohmann::json& request) {
    rotate_arguments out;
    if (const auto it = request.find("group"); it != request.end()) {
        if (!it->is_string()) {
            return error{"rotate: \"group\" is a group's name (`ptpsecctl groups` lists them)"};
        }
        out.group = it->get<std::string>();
        // An empty name would read as no name: every group.
        if (out.group.empty()) {
            return error{"rotate: \"group\" is empty; name a group (`ptpsecctl groups` lists them), or leave "
                         "\"group\" out to rotate every group"};
        }
    }
    if (const auto it = request.find("in_s"); it != request.end()) {
        // Parsed JSON holds 30 as unsigned; a json built in C++ may hold it signed.
        const bool whole = it->is_number_unsigned() || (it->is_number_integer() && it->get<int64_t>() >= 0);
        const uint64_t s = whole ? it->get<uint64_t>() : 0;
        if (s == 0 || s > ke::max_lifetime_s) {
            return error{fmt::format("rotate: \"in_s\" is whole seconds from 1 to {}", ke::max_lifetime_s)};
        }
        out.in_s = static_cast<uint32_t>(s);
    }
    return out;
}

result<std::string> parse_revoke(const nlohmann::json& request) {
    const auto it = request.find("grantor");
    if (it == request.end() || !it->is_string()) {
        return error{"revoke needs the grantor's PortIdentity (\"001b21fffe000001-1\")"};
    }
    return it->get<std::string>();
}

} // namespace ptpsec::controld::admin
