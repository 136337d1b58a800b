// libFuzzer target for ptpsec-controld's configuration file
// (control/controld/config.h, TOML). Nothing escapes parse_config but a
// result: a refusal names the file, and what is accepted keeps the rules
// the daemon relies on:
//   - every [[group]] passes ke::validate and has a name no other has;
//   - every [[client]] passes ke::validate and names defined groups or "*";
//   - the node's groups are defined groups with their IDs, and the node has
//     groups, a grantor or unicast targets; retry-min <= retry-max;
//   - [unicast] comes with [server], and a server serves something;
//   - a client with attest = comes with a Registrar on the server;
//   - relative file names were taken relative to the base directory.
// A second parse of the same text gives the same answer.
//
// Seeds in fuzz/corpus/controld_config: the files the tests read (server,
// ticket-based mode, node, grantor, requester, Verifier, attestation), with
// fuzz/controld_config.dict for the keys and table names.

#include <control/controld/config.h>
#include <fuzz/invariant.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

namespace {

using ptpsec::fuzz::require;

constexpr std::string_view base_dir = "/etc/ptpsec";

/// A file name as parse_config leaves it: empty, or absolute.
bool resolved(const std::string& file) {
    return file.empty() || file.starts_with('/');
}

void check(const ptpsec::controld::config& c) {
    using namespace ptpsec;
    std::set<std::string> names;
    for (const auto& g : c.groups) {
        require(ke::validate(g).ok(), "an accepted group is valid");
        require(names.insert(g.name).second, "group names are unique");
    }
    for (size_t i = 0; i < c.clients.size(); ++i) {
        const auto& cl = c.clients[i];
        require(ke::validate(cl, i).ok(), "an accepted client rule is valid");
        for (const auto& g : cl.groups) {
            require(g == "*" || names.contains(g), "a client names defined groups");
        }
        require(cl.attest.empty() || (c.server && !c.server->registrar.empty()),
                "a client with attest comes with a Registrar");
    }
    if (c.server) {
        require(!c.groups.empty() || (c.unicast && c.unicast->enabled), "a server serves something");
        require(resolved(c.server->tls.cert_file) && resolved(c.server->tls.key_file) &&
                    resolved(c.server->tls.ca_file) && resolved(c.server->state_file),
                "the server's files are resolved");
    }
    require(!c.unicast || c.server, "[unicast] comes with [server]");
    if (c.node) {
        const auto& n = *c.node;
        require(!n.server_host.empty(), "a node names its server");
        require(!n.groups.empty() || n.grantor, "a node has groups, a grantor or unicast targets");
        require(n.retry_min <= n.retry_max, "retry-min-ms <= retry-max-ms");
        require(resolved(n.tls.cert_file) && resolved(n.tls.key_file) && resolved(n.tls.ca_file),
                "the node's files are resolved");
        for (const auto& g : n.groups) {
            if (g.unicast) {
                continue; // a [[node.unicast]] target, not a [[group]]
            }
            auto it = std::find_if(c.groups.begin(), c.groups.end(), [&](const auto& d) { return d.name == g.name; });
            require(it != c.groups.end() && it->id == g.id, "a node's group is a defined group with its ID");
        }
    }
    if (c.node_attestation) {
        const auto& p = c.node_attestation->pcrs;
        require(!p.empty() && std::is_sorted(p.begin(), p.end()) && std::adjacent_find(p.begin(), p.end()) == p.end() &&
                    p.back() < hsm::pcr_count,
                "the node's PCR profile is sorted, distinct and in range");
    }
    if (c.admin.enabled) {
        require(!c.admin.socket.empty() && c.admin.socket.size() <= 107, "the admin socket path fits sun_path");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    using namespace ptpsec;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    constexpr std::string_view origin = "fuzz.toml";
    const auto r = controld::parse_config(text, origin, std::string(base_dir));
    const auto again = controld::parse_config(text, origin, std::string(base_dir));
    require(r.ok() == again.ok(), "a second parse gives the same answer");
    if (!r.ok()) {
        require(r.message().starts_with(origin), "a refusal names the file");
        require(r.message() == again.message(), "a second parse gives the same refusal");
        return 0;
    }
    check(*r);
    return 0;
}
