// libFuzzer target for ptpsec-controld's admin request line
// (control/controld/admin_request.h): a line as the admin socket hands it
// over (at most admin::max_request_size octets), read as the daemon reads
// it. Nothing escapes but a result:
//   - a refused line gets the one message that shows what a request is;
//   - an accepted one is a JSON object whose "command" is the command, and
//     it dumps and parses back to itself;
//   - rotate's arguments, when taken, are the request's "group" and an
//     "in_s" from 1 to 388 days; revoke's is the request's "grantor"; each
//     refusal is the message for its argument.
//
// Seeds in fuzz/corpus/admin_request: what ptpsecctl sends for each command
// and a few refusals; fuzz/admin_request.dict holds the names.

#include <control/controld/admin_request.h>
#include <control/ke/group_keys.h>
#include <fuzz/invariant.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using ptpsec::fuzz::require;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    namespace admin = ptpsec::controld::admin;
    using json = nlohmann::json;
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    const auto r = admin::parse_request(line);
    if (!r) {
        require(r.message() == R"(a request is one JSON line such as {"command":"status"})",
                "a refusal shows what a request is");
        return 0;
    }
    require(r->object.is_object(), "a request is an object");
    require(r->object.at("command") == r->command, "the command is the request's \"command\"");
    require(json::parse(r->object.dump(), nullptr, false) == r->object, "a request dumps and parses back to itself");

    const auto rot = admin::parse_rotate(r->object);
    if (rot) {
        const auto group = r->object.find("group");
        require(group == r->object.end() ? rot->group.empty() : *group == rot->group, "the group is \"group\"");
        require(!rot->in_s || (*rot->in_s >= 1 && *rot->in_s <= ptpsec::ke::max_lifetime_s),
                "in_s is from 1 s to 388 days");
        require(rot->in_s.has_value() == r->object.contains("in_s"), "in_s is there when the request has it");
    } else {
        require(rot.message().starts_with("rotate: \"group\"") || rot.message().starts_with("rotate: \"in_s\""),
                "a rotate refusal names its argument");
    }
    const auto rev = admin::parse_revoke(r->object);
    if (rev) {
        require(r->object.at("grantor") == *rev, "the grantor is \"grantor\"");
    } else {
        require(rev.message().starts_with("revoke needs the grantor's PortIdentity"),
                "a revoke refusal says what it needs");
    }
    return 0;
}
