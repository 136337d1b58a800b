#include <control/controld/config.h>

#include <control/verifier/audit_store.h>
#include <drivers/base/file.h>
#include <hsm/evidence_log.h>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <set>

namespace ptpsec::controld {

namespace {

/// Reads one table's keys, remembering which were used so that the rest can
/// be refused by name.
class table_reader {
public:
    table_reader(const toml::table& t, std::string where, std::string_view origin)
        : _t(t), _where(std::move(where)), _origin(origin) {}

    std::string at(const toml::node& n) const { return fmt::format("{}:{}", _origin, n.source().begin.line); }
    std::string at_table() const { return fmt::format("{}:{}", _origin, _t.source().begin.line); }
    const std::string& where() const noexcept { return _where; }

    template <typename T>
    result<std::optional<T>> get(std::string_view key) {
        _used.insert(std::string(key));
        const toml::node* n = _t.get(key);
        if (n == nullptr) {
            return std::optional<T>{};
        }
        if constexpr (std::is_same_v<T, bool>) {
            if (const auto* v = n->as_boolean()) {
                return std::optional<T>{v->get()};
            }
            return error{fmt::format("{}: {}.{}: expected true or false", at(*n), _where, key)};
        } else if constexpr (std::is_same_v<T, std::string>) {
            if (const auto* v = n->as_string()) {
                return std::optional<T>{v->get()};
            }
            return error{fmt::format("{}: {}.{}: expected a string", at(*n), _where, key)};
        } else {
            if (const auto* v = n->as_integer()) {
                return std::optional<T>{static_cast<T>(v->get())};
            }
            return error{fmt::format("{}: {}.{}: expected a number", at(*n), _where, key)};
        }
    }

    /// An integer in [lo, hi].
    result<std::optional<int64_t>> number(std::string_view key, int64_t lo, int64_t hi) {
        auto v = get<int64_t>(key);
        if (!v || !*v) {
            return v;
        }
        if (**v < lo || **v > hi) {
            return error{fmt::format("{}: {}.{} = {}: use {} to {}", at(*_t.get(key)), _where, key, **v, lo, hi)};
        }
        return v;
    }

    result<std::vector<std::string>> strings(std::string_view key) {
        _used.insert(std::string(key));
        std::vector<std::string> out;
        const toml::node* n = _t.get(key);
        if (n == nullptr) {
            return out;
        }
        const toml::array* a = n->as_array();
        if (a == nullptr) {
            return error{fmt::format("{}: {}.{}: expected a list of strings", at(*n), _where, key)};
        }
        for (const auto& e : *a) {
            const auto* str = e.as_string();
            if (str == nullptr) {
                return error{fmt::format("{}: {}.{}: expected a list of strings", at(e), _where, key)};
            }
            out.push_back(str->get());
        }
        return out;
    }

    /// The key's node, for values the other readers do not cover; null when absent.
    const toml::node* raw(std::string_view key) {
        _used.insert(std::string(key));
        return _t.get(key);
    }

    /// A sub-table ([node.grantor]); null when absent; an error when not a table.
    result<const toml::table*> table(std::string_view key) {
        _used.insert(std::string(key));
        const toml::node* n = _t.get(key);
        if (n == nullptr) {
            return static_cast<const toml::table*>(nullptr);
        }
        if (const toml::table* t = n->as_table()) {
            return t;
        }
        return error{fmt::format("{}: {}.{}: expected a table ([{}.{}])", at(*n), _where, key, _where, key)};
    }

    /// An array of tables ([[node.unicast]]); empty when absent.
    result<std::vector<const toml::table*>> tables(std::string_view key) {
        _used.insert(std::string(key));
        std::vector<const toml::table*> out;
        const toml::node* n = _t.get(key);
        if (n == nullptr) {
            return out;
        }
        const toml::array* a = n->as_array();
        if (a == nullptr || !a->is_array_of_tables()) {
            return error{fmt::format("{}: {}.{}: expected tables ([[{}.{}]])", at(*n), _where, key, _where, key)};
        }
        for (const auto& e : *a) {
            out.push_back(e.as_table());
        }
        return out;
    }

    /// Every key that was not asked for is an error.
    status unknown_keys() const {
        for (const auto& [k, v] : _t) {
            if (!_used.contains(std::string(k.str()))) {
                return error{fmt::format("{}: {}: unknown key \"{}\"", at(v), _where, k.str())};
            }
        }
        return ok_status();
    }

private:
    const toml::table& _t;
    std::string _where;
    std::string_view _origin;
    std::set<std::string> _used;
};

std::string resolve(const std::string& base_dir, const std::string& file) {
    if (file.empty() || base_dir.empty() || std::filesystem::path(file).is_absolute()) {
        return file;
    }
    return (std::filesystem::path(base_dir) / file).string();
}

const std::pair<const char*, nts::aead_algorithm> aead_names[] = {
    {"aes-siv-cmac-256", nts::aead_algorithm::aes_siv_cmac_256},
    {"aes-siv-cmac-384", nts::aead_algorithm::aes_siv_cmac_384},
    {"aes-siv-cmac-512", nts::aead_algorithm::aes_siv_cmac_512}};
const std::pair<const char*, nts::mac_algorithm> mac_names[] = {
    {"hmac-sha256-128", nts::mac_algorithm::hmac_sha256_128},
    {"hmac-sha256", nts::mac_algorithm::hmac_sha256},
    {"aes-cmac", nts::mac_algorithm::aes_cmac},
    {"aes-gmac-128", nts::mac_algorithm::aes_gmac_128},
    {"aes-gmac-192", nts::mac_algorithm::aes_gmac_192},
    {"aes-gmac-256", nts::mac_algorithm::aes_gmac_256}};

/// A list of algorithm names into their numbers; absent or empty: `into` stays.
template <typename Names, typename Into>
status pick_names(table_reader& r, const toml::table& t, std::string_view key, const Names& names, Into& into) {
    auto list = r.strings(key);
    if (!list) {
        return list.err();
    }
    if (list->empty()) {
        return ok_status();
    }
    into.clear();
    for (const auto& name : *list) {
        auto it = std::find_if(std::begin(names), std::end(names), [&](const auto& n) { return name == n.first; });
        if (it == std::end(names)) {
            std::string all;
            for (const auto& n : names) {
                all += fmt::format("{}{}", all.empty() ? "" : ", ", n.first);
            }
            return error{fmt::format("{}: {}.{}: \"{}\": use {}", r.at(*t.get(key)), r.where(), key, name, all)};
        }
        into.push_back(it->second);
    }
    return ok_status();
}

/// "001b21fffe000001-1": clockIdentity in hex, '-', portNumber.
std::optional<nts::port_identity> parse_port_identity(const std::string& s) {
    const auto dash = s.find('-');
    if (dash != 16) {
        return std::nullopt;
    }
    nts::port_identity p;
    for (size_t i = 0; i < 8; ++i) {
        unsigned v = 0;
        if (std::sscanf(s.substr(2 * i, 2).c_str(), "%2x", &v) != 1 || !std::isxdigit(s[2 * i]) ||
            !std::isxdigit(s[2 * i + 1])) {
            return std::nullopt;
        }
        p.clock_identity[i] = static_cast<uint8_t>(v);
    }
    const std::string port = s.substr(dash + 1);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) ||
        std::stoul(port) > 65535) {
        return std::nullopt;
    }
    p.port_number = static_cast<uint16_t>(std::stoul(port));
    return p;
}

/// An IPv4 or IPv6 address or a MAC address ("02:00:00:00:00:01").
std::optional<nts::association_value> parse_address(const std::string& s) {
    nts::ipv4_address v4;
    if (::inet_pton(AF_INET, s.c_str(), v4.octets.data()) == 1) {
        return v4;
    }
    nts::ipv6_address v6;
    if (::inet_pton(AF_INET6, s.c_str(), v6.octets.data()) == 1) {
        return v6;
    }
    // Six pairs of hex digits between colons, nothing else (sscanf's %2x
    // would take "-1" or " 1" for a pair).
    nts::mac_address mac;
    if (s.size() != 17) {
        return std::nullopt;
    }
    for (size_t k = 0; k < mac.octets.size(); ++k) {
        const char* pair = s.data() + 3 * k;
        const auto [end, ec] = std::from_chars(pair, pair + 2, mac.octets[k], 16);
        if (ec != std::errc{} || end != pair + 2 || (k + 1 < mac.octets.size() && pair[2] != ':')) {
            return std::nullopt;
        }
    }
    return mac;
}

/// [[node.unicast]]: a unicast key and ticket for one grantor.
result<node::node_group> parse_unicast_target(const toml::table& t, size_t index, std::string_view origin) {
    table_reader r(t, fmt::format("node.unicast[{}]", index + 1), origin);
    node::unicast_target u;
    PTPSEC_TRY(grantor, r.get<std::string>("grantor"));
    if (!*grantor) {
        return error{fmt::format("{}: [[node.unicast]] needs grantor = \"ADDRESS\" (IPv4, IPv6, MAC or PortIdentity)",
                                 r.at_table())};
    }
    if (auto pid = parse_port_identity(**grantor)) {
        u.grantor = *pid;
    } else if (auto a = parse_address(**grantor)) {
        u.grantor = *a;
    } else {
        return error{fmt::format("{}: {}.grantor = \"{}\": give an IPv4, IPv6 or MAC address or a PortIdentity "
                                 "(\"001b21fffe000001-1\")",
                                 r.at(*t.get("grantor")), r.where(), **grantor)};
    }
    PTPSEC_TRY(me, r.get<std::string>("port-identity"));
    if (!*me) {
        return error{fmt::format("{}: [[node.unicast]] needs port-identity = \"CLOCKIDENTITY-PORT\" (this "
                                 "requester's PortIdentity: the ticket is issued to it)",
                                 r.at_table())};
    }
    auto pid = parse_port_identity(**me);
    if (!pid) {
        return error{fmt::format("{}: {}.port-identity = \"{}\": write 16 hex digits, '-', the port number",
                                 r.at(*t.get("port-identity")), r.where(), **me)};
    }
    u.me = *pid;
    std::vector<nts::mac_algorithm> macs;
    if (auto st = pick_names(r, t, "mac-algorithms", mac_names, macs); !st) {
        return st.err();
    }
    if (!macs.empty()) {
        if (std::find(macs.begin(), macs.end(), nts::mac_algorithm::hmac_sha256_128) == macs.end()) {
            return error{fmt::format("{}: {}.mac-algorithms must include hmac-sha256-128 (seeds/001 §4.2.14)",
                                     r.at_table(), r.where())};
        }
        u.mac_algorithms = std::move(macs);
    }
    if (auto st = r.unknown_keys(); !st) {
        return st.err();
    }
    node::node_group g;
    g.name = fmt::format("unicast to {}", **grantor);
    g.unicast = std::move(u);
    return g;
}

/// [node.grantor]: this node registers as a grantor.
result<node::grantor_settings> parse_grantor(const toml::table& t, std::string_view origin) {
    table_reader r(t, "node.grantor", origin);
    node::grantor_settings g;
    PTPSEC_TRY(pid, r.get<std::string>("port-identity"));
    if (!*pid) {
        return error{fmt::format("{}: [node.grantor] needs port-identity = \"CLOCKIDENTITY-PORT\" (e.g. "
                                 "\"001b21fffe000001-1\")",
                                 r.at_table())};
    }
    auto p = parse_port_identity(**pid);
    if (!p) {
        return error{fmt::format("{}: node.grantor.port-identity = \"{}\": write 16 hex digits, '-', the port "
                                 "number (e.g. \"001b21fffe000001-1\")",
                                 r.at(*t.get("port-identity")), **pid)};
    }
    g.time_server.addresses.push_back(*p);
    PTPSEC_TRY(addresses, r.strings("addresses"));
    std::set<size_t> kinds{4};
    for (const auto& a : *addresses) {
        auto v = parse_address(a);
        if (!v) {
            return error{fmt::format("{}: node.grantor.addresses: \"{}\" is no IPv4, IPv6 or MAC address",
                                     r.at(*t.get("addresses")), a)};
        }
        if (!kinds.insert(v->index()).second) {
            return error{fmt::format("{}: node.grantor.addresses: \"{}\": one address of each kind (IPv4, IPv6, "
                                     "MAC; seeds/001 §4.2.10)",
                                     r.at(*t.get("addresses")), a)};
        }
        g.time_server.addresses.push_back(*v);
    }
    if (auto st = pick_names(r, t, "aead-algorithms", aead_names, g.aead_algorithms); !st) {
        return st.err();
    }
    if (auto st = pick_names(r, t, "mac-algorithms", mac_names, g.mac_algorithms); !st) {
        return st.err();
    }
    if (std::find(g.aead_algorithms.begin(), g.aead_algorithms.end(), nts::aead_algorithm::aes_siv_cmac_256) ==
        g.aead_algorithms.end()) {
        return error{fmt::format("{}: node.grantor.aead-algorithms must include aes-siv-cmac-256 (seeds/001 §4.2.1)",
                                 r.at_table())};
    }
    if (std::find(g.mac_algorithms.begin(), g.mac_algorithms.end(), nts::mac_algorithm::hmac_sha256_128) ==
        g.mac_algorithms.end()) {
        return error{fmt::format("{}: node.grantor.mac-algorithms must include hmac-sha256-128 (seeds/001 §4.2.14)",
                                 r.at_table())};
    }
    if (auto st = r.unknown_keys(); !st) {
        return st.err();
    }
    return g;
}

/// The optional `crl` key of [`section`]: the file of the CRLs of the CAs
/// that issue the `whose` the section's TLS verifies; empty when not given.
result<std::string> crl_file(table_reader& r, const toml::table& t, std::string_view section, std::string_view whose,
                             const std::string& base_dir) {
    PTPSEC_TRY(crl, r.get<std::string>("crl"));
    if (!*crl) {
        return std::string{};
    }
    if ((*crl)->empty()) {
        return error{
            fmt::format("{}: {}.crl: give the file of the CRLs of the CAs that issue {} (or leave the key out)",
                        r.at(*t.get("crl")), section, whose)};
    }
    return resolve(base_dir, **crl);
}

result<server_settings> parse_server(const toml::table& t, std::string_view origin, const std::string& base_dir) {
    table_reader r(t, "server", origin);
    server_settings s;
    PTPSEC_TRY(listen, r.strings("listen"));
    s.tls.listen_addresses = *listen;
    PTPSEC_TRY(port, r.number("port", 0, 65535));
    if (*port) {
        s.tls.port = static_cast<uint16_t>(**port);
    }
    struct file_key {
        const char* key;
        std::string* into;
    };
    for (const file_key f : {file_key{"certificate", &s.tls.cert_file}, file_key{"private-key", &s.tls.key_file},
                             file_key{"ca", &s.tls.ca_file}, file_key{"state", &s.state_file}}) {
        PTPSEC_TRY(v, r.get<std::string>(f.key));
        if (!*v || (*v)->empty()) {
            return error{fmt::format("{}: [server] needs {} = \"FILE\"", r.at_table(), f.key)};
        }
        *f.into = resolve(base_dir, **v);
    }
    // Optional: the CRLs of the CAs that issue client certificates.
    PTPSEC_TRY(crl, crl_file(r, t, "server", "client certificates", base_dir));
    s.tls.crl_file = *crl;
    struct ms_key {
        const char* key;
        std::chrono::milliseconds* into;
        int64_t least; ///< a timeout of 0 would drop every connection; watching every 0 ms is off
    };
    for (const ms_key m : {ms_key{"handshake-timeout-ms", &s.tls.handshake_timeout, 1},
                           ms_key{"idle-timeout-ms", &s.tls.idle_timeout, 1},
                           ms_key{"watch-certificates-ms", &s.tls.watch_interval, 0}}) {
        PTPSEC_TRY(v, r.number(m.key, m.least, 3'600'000));
        if (*v) {
            *m.into = std::chrono::milliseconds(**v);
        }
    }
    // seeds/001 §2.1: resumption, with a session lifetime of at most 24 hours.
    PTPSEC_TRY(lifetime, r.number("session-lifetime-s", 0, tls::max_session_lifetime.count()));
    if (*lifetime) {
        s.tls.session_lifetime = std::chrono::seconds(**lifetime);
    }
    PTPSEC_TRY(maxc, r.number("max-connections", 1, 1'000'000));
    if (*maxc) {
        s.tls.max_connections = static_cast<size_t>(**maxc);
    }
    PTPSEC_TRY(rate, r.number("connections-per-second", 0, 1'000'000));
    if (*rate) {
        s.tls.rate.per_second = static_cast<double>(**rate);
    }
    PTPSEC_TRY(burst, r.number("connection-burst", 1, 1'000'000));
    if (*burst) {
        s.tls.rate.burst = static_cast<double>(**burst);
    }
    PTPSEC_TRY(size, r.number("max-message-size", 64, 1 << 20));
    if (*size) {
        s.tls.max_message_size = static_cast<size_t>(**size);
    }
    PTPSEC_TRY(registrar, r.get<std::string>("registrar"));
    if (*registrar) {
        if ((*registrar)->empty()) {
            return error{
                fmt::format("{}: server.registrar: give the Registrar's database file", r.at(*t.get("registrar")))};
        }
        s.registrar = resolve(base_dir, **registrar);
    }
    if (auto st = r.unknown_keys(); !st) {
        return st.err();
    }
    return s;
}

/// [node.attestation]: the TPM signer the node quotes its platform with.
result<node_attestation_settings> parse_node_attestation(const toml::table& t, std::string_view origin) {
    table_reader r(t, "node.attestation", origin);
    node_attestation_settings a;
    PTPSEC_TRY(id, r.get<std::string>("signer-id"));
    if (!*id || (*id)->empty() || (*id)->size() > nts::max_attestation_signer_id) {
        return error{fmt::format("{}: [node.attestation] needs signer-id = \"ID\" (1 to {} characters: the TPM "
                                 "signer enrolled in the Registrar)",
                                 r.at_table(), nts::max_attestation_signer_id)};
    }
    a.tpm.signer_id = **id;
    PTPSEC_TRY(tcti, r.get<std::string>("tcti"));
    a.tpm.tcti = tcti->value_or(a.tpm.tcti);
    // The owner ranges of the TCG handle registry (tpm_settings).
    PTPSEC_TRY(key, r.number("key-handle", 0x81000000, 0x817FFFFF));
    a.tpm.key_handle = static_cast<uint32_t>(key->value_or(a.tpm.key_handle));
    PTPSEC_TRY(counter, r.number("counter-index", 0x01000000, 0x01BFFFFF));
    a.tpm.counter_index = static_cast<uint32_t>(counter->value_or(a.tpm.counter_index));
    const toml::node* pcrs = r.raw("pcrs");
    const toml::array* list = pcrs == nullptr ? nullptr : pcrs->as_array();
    if (list == nullptr || list->empty()) {
        return error{fmt::format("{}: [node.attestation] needs pcrs = [N, ...] (the PCR profile the signer was "
                                 "enrolled with, e.g. [0, 7])",
                                 pcrs == nullptr ? r.at_table() : r.at(*pcrs))};
    }
    for (const auto& e : *list) {
        const auto* v = e.as_integer();
        if (v == nullptr || v->get() < 0 || v->get() >= hsm::pcr_count) {
            return error{
                fmt::format("{}: node.attestation.pcrs: PCR indices are 0 to {}", r.at(e), hsm::pcr_count - 1)};
        }
        const auto index = static_cast<unsigned>(v->get());
        if (std::find(a.pcrs.begin(), a.pcrs.end(), index) != a.pcrs.end()) {
            return error{fmt::format("{}: node.attestation.pcrs: PCR {} is listed twice", r.at(e), index)};
        }
        a.pcrs.push_back(index);
    }
    std::sort(a.pcrs.begin(), a.pcrs.end());
    if (auto st = r.unknown_keys(); !st) {
        return st.err();
    }
    return a;
}

/// [node]; its groups are names, resolved against [[group]] by the caller.
/// [node.attestation], when there, goes to `attest`.
result<std::pair<node::settings, std::vector<std::string>>>
parse_node(const toml::table& t, std::string_view origin, const std::string& base_dir,
           std::optional<node_attestation_settings>& attest) {
    table_reader r(t, "node", origin);
    node::settings n;
    PTPSEC_TRY(server, r.get<std::string>("server"));
    if (!*server || (*server)->empty()) {
        return error{fmt::format("{}: [node] needs server = \"HOST\" (the KE server)", r.at_table())};
    }
    n.server_host = **server;
    PTPSEC_TRY(port, r.number("port", 1, 65535));
    n.server_port = static_cast<uint16_t>(port->value_or(n.server_port));
    PTPSEC_TRY(name, r.get<std::string>("server-name"));
    n.tls.server_name = name->value_or(n.server_host);
    struct file_key {
        const char* key;
        std::string* into;
    };
    for (const file_key f : {file_key{"certificate", &n.tls.cert_file}, file_key{"private-key", &n.tls.key_file},
                             file_key{"ca", &n.tls.ca_file}}) {
        PTPSEC_TRY(v, r.get<std::string>(f.key));
        if (!*v || (*v)->empty()) {
            return error{fmt::format("{}: [node] needs {} = \"FILE\"", r.at_table(), f.key)};
        }
        *f.into = resolve(base_dir, **v);
    }
    // Optional: the CRLs of the CAs that issue the KE server's certificate.
    PTPSEC_TRY(crl, crl_file(r, t, "node", "the KE server's certificate", base_dir));
    n.tls.crl_file = *crl;
    PTPSEC_TRY(groups, r.strings("groups"));
    PTPSEC_TRY(grantor, r.table("grantor"));
    if (*grantor != nullptr) {
        PTPSEC_TRY(g, parse_grantor(**grantor, origin));
        n.grantor = std::move(g).value();
    }
    PTPSEC_TRY(attestation, r.table("attestation"));
    if (*attestation != nullptr) {
        PTPSEC_TRY(a, parse_node_attestation(**attestation, origin));
        attest = std::move(a).value();
    }
    PTPSEC_TRY(unicast, r.tables("unicast"));
    for (size_t i = 0; i < unicast->size(); ++i) {
        PTPSEC_TRY(target, parse_unicast_target(*(*unicast)[i], i, origin));
        n.groups.push_back(std::move(target).value());
    }
    if (groups->empty() && !n.grantor && n.groups.empty()) {
        return error{fmt::format("{}: [node] needs groups = [\"NAME\", ...] (names of [[group]] tables), a "
                                 "[node.grantor] table or [[node.unicast]] tables",
                                 r.at_table())};
    }
    PTPSEC_TRY(prefix, r.get<std::string>("dataplane-prefix"));
    n.dataplane_prefix = prefix->value_or(n.dataplane_prefix);
    PTPSEC_TRY(rmin, r.number("retry-min-ms", 10, 3'600'000));
    PTPSEC_TRY(rmax, r.number("retry-max-ms", 10, 86'400'000));
    n.retry_min = std::chrono::milliseconds(rmin->value_or(n.retry_min.count()));
    n.retry_max = std::chrono::milliseconds(rmax->value_or(n.retry_max.count()));
    if (n.retry_max < n.retry_min) {
        return error{fmt::format("{}: [node] retry-max-ms ({}) is below retry-min-ms ({})", r.at_table(),
                                 n.retry_max.count(), n.retry_min.count())};
    }
    PTPSEC_TRY(refresh, r.number("refresh-interval", 0, 86'400));
    n.refresh_interval = std::chrono::seconds(refresh->value_or(0));
    if (auto st = r.unknown_keys(); !st) {
        return st.err();
    }
    return std::pair{std::move(n), std::move(groups).value()};
}

result<ke::group_policy> parse_group(const toml::table& t, size_t index, std::string_view origin) {
    table_reader r(t, fmt::format("group[{}]", index + 1), origin);
    ke::group_policy p;
    PTPSEC_TRY(name, r.get<std::string>("name"));
    if (!*name || (*name)->empty()) {
        return error{fmt::format("{}: group[{}] needs name = \"...\"", r.at_table(), index + 1)};
    }
    p.name = **name;
    PTPSEC_TRY(domain, r.number("domain", 0, 255));
    PTPSEC_TRY(sdo, r.number("sdo-id", 0, 0x0FFF));
    PTPSEC_TRY(sub, r.number("subgroup", 0, 65535));
    p.id = ke::group_id{static_cast<uint8_t>(domain->value_or(0)), static_cast<uint16_t>(sdo->value_or(0)),
                        static_cast<uint16_t>(sub->value_or(0))};
    PTPSEC_TRY(alg, r.get<std::string>("algorithm"));
    if (*alg) {
        auto a = icv::from_name(**alg);
        if (!a) {
            std::string names;
            for (const auto& i : icv::all_algorithms()) {
                names += fmt::format("{}{}", names.empty() ? "" : ", ", i.name);
            }
            return error{fmt::format("{}: group {}: algorithm \"{}\": use one of {}", r.at(*t.get("algorithm")), p.name,
                                     **alg, names)};
        }
        p.alg = *a;
    }
    PTPSEC_TRY(life, r.number("lifetime", 1, ke::max_lifetime_s));
    PTPSEC_TRY(upd, r.number("update-period", 1, ke::max_lifetime_s));
    PTPSEC_TRY(grace, r.number("grace-period", 0, ke::max_lifetime_s));
    p.lifetime_s = static_cast<uint32_t>(life->value_or(p.lifetime_s));
    p.update_period_s = static_cast<uint32_t>(upd->value_or(p.update_period_s));
    p.grace_period_s = static_cast<uint32_t>(grace->value_or(p.grace_period_s));
    if (auto st = r.unknown_keys(); !st) {
        return st.err();
    }
    if (auto st = ke::validate(p); !st) {
        return error{fmt::format("{}: {}", r.at_table(), st.message())};
    }
    return p;
}

result<ke::client_rule> parse_client(const toml::table& t, size_t index, std::string_view origin) {
    table_reader r(t, fmt::format("client[{}]", index + 1), origin);
    ke::client_rule c;
    PTPSEC_TRY(subject, r.get<std::string>("subject"));
    PTPSEC_TRY(san, r.get<std::string>("san"));
    PTPSEC_TRY(groups, r.strings("groups"));
    PTPSEC_TRY(grantor, r.get<bool>("grantor"));
    PTPSEC_TRY(tc, r.get<bool>("transparent-clock"));
    PTPSEC_TRY(unicast, r.get<bool>("unicast"));
    PTPSEC_TRY(attest, r.get<std::string>("attest"));
    if (*attest && (*attest)->empty()) {
        return error{fmt::format("{}: client[{}].attest: give the signer_id of the client's TPM signer",
                                 r.at(*t.get("attest")), index + 1)};
    }
    c.attest = attest->value_or("");
    c.unicast = unicast->value_or(false);
    c.subject = subject->value_or("");
    c.san = san->value_or("");
    c.groups = *groups;
    c.grantor = grantor->value_or(false);
    c.transparent_clock = tc->value_or(false);
    if (auto st = r.unknown_keys(); !st) {
        return st.err();
    }
    if (auto st = ke::validate(c, index); !st) {
        return error{fmt::format("{}: {}", r.at_table(), st.message())};
    }
    return c;
}

/// [unicast]: ticket-based mode on the server.
result<ke::unicast_policy> parse_unicast(const toml::table& t, std::string_view origin) {
    table_reader r(t, "unicast", origin);
    ke::unicast_policy p;
    p.enabled = true;
    PTPSEC_TRY(enabled, r.get<bool>("enabled"));
    p.enabled = enabled->value_or(true);
    PTPSEC_TRY(life, r.number("lifetime", 1, ke::max_lifetime_s));
    PTPSEC_TRY(upd, r.number("update-period", 1, ke::max_lifetime_s));
    PTPSEC_TRY(grace, r.number("grace-period", 0, ke::max_lifetime_s));
    PTPSEC_TRY(hb, r.number("heartbeat-timeout", 0, 65535));
    PTPSEC_TRY(missed, r.number("missed-heartbeats", 1, 1000));
    p.lifetime_s = static_cast<uint32_t>(life->value_or(p.lifetime_s));
    p.update_period_s = static_cast<uint32_t>(upd->value_or(p.update_period_s));
    p.grace_period_s = static_cast<uint32_t>(grace->value_or(p.grace_period_s));
    p.heartbeat_timeout_s = static_cast<uint16_t>(hb->value_or(p.heartbeat_timeout_s));
    p.missed_heartbeats = static_cast<uint32_t>(missed->value_or(p.missed_heartbeats));
    auto pick = [&](std::string_view key, const auto& names, auto& into) { return pick_names(r, t, key, names, into); };
    if (auto st = pick("aead-algorithms", aead_names, p.aead_algorithms); !st) {
        return st.err();
    }
    if (auto st = pick("mac-algorithms", mac_names, p.mac_algorithms); !st) {
        return st.err();
    }
    if (auto st = r.unknown_keys(); !st) {
        return st.err();
    }
    if (auto st = ke::validate(p); !st) {
        return error{fmt::format("{}: {}", r.at_table(), st.message())};
    }
    return p;
}

result<verifier_settings> parse_verifier(const toml::table& t, std::string_view origin, const std::string& base_dir) {
    table_reader r(t, "verifier", origin);
    verifier_settings v;
    PTPSEC_TRY(registrar, r.get<std::string>("registrar"));
    if (!*registrar || (*registrar)->empty()) {
        return error{fmt::format("{}: [verifier] needs registrar = \"FILE\" (the Registrar's database, made with "
                                 "ptpsecctl registrar enrol)",
                                 r.at_table())};
    }
    v.registrar = resolve(base_dir, **registrar);
    PTPSEC_TRY(audit, r.get<std::string>("audit"));
    if (!*audit || (*audit)->empty()) {
        return error{fmt::format("{}: [verifier] needs audit = \"sqlite:FILE\" or \"postgresql:CONNINFO\" (where "
                                 "verified batches and each signer's chain are kept)",
                                 r.at_table())};
    }
    v.audit = **audit;
    if (auto form = verifier::audit_store::check_spec(v.audit); !form) {
        return error{fmt::format("{}: verifier.audit: {}", r.at(*t.get("audit")), form.message())};
    }
    if (v.audit.starts_with("sqlite:")) {
        v.audit = "sqlite:" + resolve(base_dir, v.audit.substr(7));
    }
    PTPSEC_TRY(logs, r.strings("logs"));
    if (logs->empty()) {
        return error{fmt::format("{}: [verifier] needs logs = [\"DIR\", ...] (the data planes' --attest-log "
                                 "directories)",
                                 r.at_table())};
    }
    for (const auto& l : *logs) {
        v.logs.push_back(resolve(base_dir, l));
    }
    PTPSEC_TRY(name, r.get<std::string>("log-name"));
    v.log_name = name->value_or(v.log_name);
    if (auto st = hsm::check_log_base_name(v.log_name); !st) {
        return error{fmt::format("{}: [verifier] log-name: {}", r.at_table(), st.message())};
    }
    PTPSEC_TRY(poll, r.number("poll-ms", 10, 60'000));
    v.poll_ms = static_cast<uint32_t>(poll->value_or(v.poll_ms));
    PTPSEC_TRY(challenge, r.strings("challenge"));
    v.challenge = std::move(*challenge);
    PTPSEC_TRY(signers, r.table("challenge-signers"));
    if (*signers != nullptr) {
        for (const auto& [prefix, node] : **signers) {
            const auto* signer = node.as_string();
            const std::string key(prefix.str());
            if (signer == nullptr || signer->get().empty()) {
                return error{fmt::format("{}: verifier.challenge-signers.{}: expected the signer_id that data plane "
                                         "signs as (a string)",
                                         r.at(node), key)};
            }
            if (std::find(v.challenge.begin(), v.challenge.end(), key) == v.challenge.end()) {
                return error{fmt::format("{}: verifier.challenge-signers.{}: no data plane with that file prefix is "
                                         "in challenge = [...]",
                                         r.at(node), key)};
            }
            v.challenge_signers[key] = signer->get();
        }
    }
    PTPSEC_TRY(interval, r.number("nonce-interval", 1, 3600));
    v.nonce_interval_s = static_cast<uint32_t>(interval->value_or(v.nonce_interval_s));
    PTPSEC_TRY(ttl, r.number("nonce-ttl", 1, 3 * 3600));
    v.nonce_ttl_s = static_cast<uint32_t>(ttl->value_or(3 * v.nonce_interval_s));
    if (v.nonce_ttl_s <= v.nonce_interval_s) {
        return error{fmt::format("{}: [verifier] nonce-ttl = {} must be longer than nonce-interval = {}: a nonce "
                                 "must stay valid until the next one is in the data plane",
                                 r.at_table(), v.nonce_ttl_s, v.nonce_interval_s)};
    }
    PTPSEC_TRY(ek_ca, r.get<std::string>("ek-ca"));
    PTPSEC_TRY(ek_crl, r.get<std::string>("ek-crl"));
    if (ek_ca->has_value() != ek_crl->has_value() || (*ek_ca && ((*ek_ca)->empty() || (*ek_crl)->empty()))) {
        return error{fmt::format("{}: [verifier] ek-ca = \"FILE\" and ek-crl = \"FILE\" go together (the TPM vendors' "
                                 "CAs and their CRLs, to check the enrolled TPM signers' EK certificates)",
                                 r.at_table())};
    }
    if (*ek_ca) {
        v.ek_ca = resolve(base_dir, **ek_ca);
        v.ek_crl = resolve(base_dir, **ek_crl);
    }
    PTPSEC_TRY(ek_interval, r.number("ek-check-interval", 60, 86'400));
    v.ek_check_interval_s = static_cast<uint32_t>(ek_interval->value_or(v.ek_check_interval_s));
    if (auto st = r.unknown_keys(); !st) {
        return st.err();
    }
    return v;
}

result<admin_settings> parse_admin(const toml::table& t, std::string_view origin, const std::string& base_dir) {
    table_reader r(t, "admin", origin);
    admin_settings a;
    PTPSEC_TRY(enabled, r.get<bool>("enabled"));
    a.enabled = enabled->value_or(true);
    PTPSEC_TRY(socket, r.get<std::string>("socket"));
    if (*socket) {
        const toml::node& at = *t.get("socket");
        if ((*socket)->empty()) {
            return error{
                fmt::format("{}: admin.socket: give a path (enabled = false turns the admin socket off)", r.at(at))};
        }
        a.socket = resolve(base_dir, **socket);
        a.configured = true;
        // sockaddr_un.sun_path: 108 octets with the terminating NUL.
        if (constexpr size_t max_path = 107; a.socket.size() > max_path) {
            return error{fmt::format("{}: admin.socket: {} has {} characters; a Unix socket path has at most {}",
                                     r.at(at), a.socket, a.socket.size(), max_path)};
        }
    }
    if (auto st = r.unknown_keys(); !st) {
        return st.err();
    }
    return a;
}

} // namespace

result<config> parse_config(std::string_view text, std::string_view origin, const std::string& base_dir) {
    toml::table root;
    try {
        root = toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
        return error{
            fmt::format("{}:{}:{}: {}", origin, e.source().begin.line, e.source().begin.column, e.description())};
    }
    config c;
    std::vector<std::string> node_groups;
    std::string node_at;
    std::string unicast_at;
    for (const auto& [k, v] : root) {
        const std::string key(k.str());
        const std::string at = fmt::format("{}:{}", origin, v.source().begin.line);
        if (key == "server") {
            const toml::table* t = v.as_table();
            if (t == nullptr) {
                return error{fmt::format("{}: server: expected a table ([server])", at)};
            }
            PTPSEC_TRY(s, parse_server(*t, origin, base_dir));
            c.server = std::move(s).value();
        } else if (key == "node") {
            const toml::table* t = v.as_table();
            if (t == nullptr) {
                return error{fmt::format("{}: node: expected a table ([node])", at)};
            }
            PTPSEC_TRY(n, parse_node(*t, origin, base_dir, c.node_attestation));
            c.node = std::move(n->first);
            node_groups = std::move(n->second);
            node_at = at;
        } else if (key == "verifier") {
            const toml::table* t = v.as_table();
            if (t == nullptr) {
                return error{fmt::format("{}: verifier: expected a table ([verifier])", at)};
            }
            PTPSEC_TRY(ver, parse_verifier(*t, origin, base_dir));
            c.verifier = std::move(ver).value();
        } else if (key == "admin") {
            const toml::table* t = v.as_table();
            if (t == nullptr) {
                return error{fmt::format("{}: admin: expected a table ([admin])", at)};
            }
            PTPSEC_TRY(a, parse_admin(*t, origin, base_dir));
            c.admin = std::move(a).value();
        } else if (key == "unicast") {
            const toml::table* t = v.as_table();
            if (t == nullptr) {
                return error{fmt::format("{}: unicast: expected a table ([unicast])", at)};
            }
            PTPSEC_TRY(u, parse_unicast(*t, origin));
            c.unicast = std::move(u).value();
            unicast_at = at;
        } else if (key == "group" || key == "client") {
            const toml::array* a = v.as_array();
            if (a == nullptr || !a->is_array_of_tables()) {
                return error{fmt::format("{}: {}: expected tables ([[{}]])", at, key, key)};
            }
            for (size_t i = 0; i < a->size(); ++i) {
                const toml::table& t = *a->get(i)->as_table();
                if (key == "group") {
                    PTPSEC_TRY(g, parse_group(t, i, origin));
                    c.groups.push_back(std::move(g).value());
                } else {
                    PTPSEC_TRY(cl, parse_client(t, i, origin));
                    c.clients.push_back(std::move(cl).value());
                }
            }
        } else if (key == "admin-socket") {
            return error{fmt::format("{}: admin-socket: write it as socket = \"PATH\" in an [admin] table", at)};
        } else {
            return error{fmt::format(
                "{}: unknown key \"{}\" (use [server], [unicast], [node], [verifier], [admin], [[group]] and "
                "[[client]])",
                at, key)};
        }
    }
    std::set<std::string> names;
    for (const auto& g : c.groups) {
        if (!names.insert(g.name).second) {
            return error{fmt::format("{}: group {} is defined twice", origin, g.name)};
        }
    }
    for (size_t i = 0; i < c.clients.size(); ++i) {
        for (const auto& g : c.clients[i].groups) {
            if (g != "*" && !names.contains(g)) {
                return error{
                    fmt::format("{}: client[{}]: group \"{}\" is not defined by any [[group]]", origin, i + 1, g)};
            }
        }
    }
    for (const auto& name : node_groups) {
        auto it = std::find_if(c.groups.begin(), c.groups.end(), [&](const auto& g) { return g.name == name; });
        if (it == c.groups.end()) {
            return error{fmt::format("{}: node: group \"{}\" is not defined by any [[group]]", node_at, name)};
        }
        c.node->groups.push_back(node::node_group{it->name, it->id, std::nullopt});
    }
    for (size_t i = 0; i < c.clients.size(); ++i) {
        if (!c.clients[i].attest.empty() && (!c.server || c.server->registrar.empty())) {
            return error{fmt::format("{}: client[{}] has attest = \"{}\": the KE server checks Platform "
                                     "Attestations against the Registrar: add registrar = \"FILE\" to [server]",
                                     origin, i + 1, c.clients[i].attest)};
        }
    }
    if (c.unicast && !c.server) {
        return error{
            fmt::format("{}: [unicast] configures the KE server's ticket-based mode: it needs [server]", unicast_at)};
    }
    if (c.server && c.groups.empty() && !(c.unicast && c.unicast->enabled)) {
        return error{fmt::format("{}: [server] without any [[group]] or [unicast]: there is nothing to serve", origin)};
    }
    return c;
}

result<config> load_config(const std::string& path) {
    PTPSEC_TRY(text, read_text_file("", path));
    return parse_config(*text, path, std::filesystem::path(path).parent_path().string());
}

} // namespace ptpsec::controld
