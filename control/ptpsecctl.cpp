// ptpsecctl: the operator's command line. It carries the offline capture
// tools and reads a running ptpsec-dataplane through DPDK telemetry (stats,
// sa list); daemon commands join as the daemons arrive.

#include <control/pcap_tool.h>
#include <control/sa_client.h>
#include <control/sa_file.h>
#include <control/telemetry_client.h>
#include <dataplane/sa_update.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1; ///< the command ran and found failures
constexpr int exit_error = 2;  ///< the command could not run

int report(const ptpsec::error& e) {
    fmt::print(stderr, "ptpsecctl: {}\n", e.message);
    return exit_error;
}

using ordered_json = nlohmann::ordered_json;

uint64_t count_of(const ordered_json& j, const char* name) {
    return j.value(name, uint64_t{0});
}

/// One line per path, as ptpsec-dataplane prints its own counters.
void print_path(const ordered_json& p) {
    const std::string policy = p.value("policy", "");
    fmt::print("  {} [{}]: rx {} tx {} dropped {} | non-PTP {}", p.value("name", "?"), policy, count_of(p, "rx"),
               count_of(p, "tx"), count_of(p, "dropped"), count_of(p, "non_ptp"));
    if (policy == "pass") {
        fmt::print(" PTP passed {}", count_of(p, "ptp_passed"));
    } else if (policy == "sign") {
        fmt::print(" signed {} already signed {}", count_of(p, "signed"), count_of(p, "already_signed"));
    } else {
        fmt::print(" verified {} stripped {}", count_of(p, "verified"), count_of(p, "stripped"));
    }
    const char* sep = " | dropped: ";
    const ordered_json drops = p.value("drops", ordered_json::object());
    for (const auto& [reason, n] : drops.items()) {
        if (n.get<uint64_t>() != 0) {
            fmt::print("{}{} {}", sep, reason, n.get<uint64_t>());
            sep = ", ";
        }
    }
    const ordered_json malformed = p.value("malformed", ordered_json::object());
    for (const auto& [cause, n] : malformed.items()) {
        if (n.get<uint64_t>() != 0) {
            fmt::print(" [{} {}]", cause, n.get<uint64_t>());
        }
    }
    fmt::print("\n");
}

void print_replay(const ordered_json& r) {
    if (count_of(r, "window") == 0) {
        fmt::print("  replay: off\n");
        return;
    }
    fmt::print("  replay: {} of {} streams, window {} | accepted {} replayed {} too_old {} late {} | opened {} "
               "evicted {} retired {}\n",
               count_of(r, "size"), count_of(r, "capacity"), count_of(r, "window"), count_of(r, "accepted"),
               count_of(r, "replayed"), count_of(r, "too_old"), count_of(r, "late"), count_of(r, "opened"),
               count_of(r, "evicted"), count_of(r, "retired"));
}

void print_port(const ordered_json& p) {
    fmt::print("  port {} {} ({}, {}, link {}): ipackets {} opackets {} imissed {} ierrors {} oerrors {} "
               "rx_nombuf {}\n",
               count_of(p, "port_id"), p.value("name", "?"), p.value("role", "?"), p.value("driver", "?"),
               p.value("link_status", "?"), count_of(p, "ipackets"), count_of(p, "opackets"), count_of(p, "imissed"),
               count_of(p, "ierrors"), count_of(p, "oerrors"), count_of(p, "rx_nombuf"));
}

/// `ptpsecctl stats`: /ptpsec/stats, with /ptpsec/ports under "ports".
int show_stats(const std::string& prefix, bool json) {
    auto client = ptpsec::telemetry_client::connect(prefix);
    if (!client) {
        return report(client.err());
    }
    auto stats = client->query("/ptpsec/stats");
    if (!stats) {
        return report(stats.err());
    }
    auto ports = client->query("/ptpsec/ports");
    if (!ports) {
        return report(ports.err());
    }
    ordered_json& s = *stats;
    s["ports"] = std::move(*ports);
    if (json) {
        fmt::print("{}\n", s.dump());
        return exit_ok;
    }
    fmt::print("counters (ptpsec-dataplane {}, file prefix {}):\n", client->pid(), prefix);
    const ordered_json paths = s.value("paths", ordered_json::object());
    for (const auto& [key, p] : paths.items()) {
        print_path(p);
    }
    print_replay(s.value("replay", ordered_json::object()));
    for (const auto& [key, p] : s["ports"].items()) {
        print_port(p);
    }
    return exit_ok;
}

/// "never", or the seconds left of a key's lifetime ("remaining_lifetime_s").
std::string remaining_lifetime(const ordered_json& k) {
    const auto it = k.find("remaining_lifetime_s");
    if (it == k.end() || !it->is_number_unsigned()) {
        return "never";
    }
    return fmt::format("{} s", it->get<uint64_t>());
}

/// `ptpsecctl sa list`: /ptpsec/sa, one row per key (a row of dashes for an
/// SA whose keys have all gone), then the key IDs each SA retired.
int list_sas(const std::string& prefix, bool json) {
    auto client = ptpsec::telemetry_client::connect(prefix);
    if (!client) {
        return report(client.err());
    }
    auto sas = client->query("/ptpsec/sa");
    if (!sas) {
        return report(sas.err());
    }
    if (json) {
        fmt::print("{}\n", sas->dump());
        return exit_ok;
    }
    if (sas->empty()) {
        fmt::print("no SAs installed (ptpsec-dataplane {}, file prefix {})\n", client->pid(), prefix);
        return exit_ok;
    }
    fmt::print("{:<5} {:<10} {:<16} {:<4} {:<8} {:<13} {:<14} {}\n", "SPP", "KEY", "ALGORITHM", "ICV", "SIGNS",
               "SEQID_WINDOW", "ALLOW_MUTABLE", "LIFETIME_LEFT");
    std::vector<std::string> retired_lines;
    for (const auto& [spp, sa] : sas->items()) {
        const ordered_json keys = sa.value("keys", ordered_json::object());
        const char* allow_mutable = count_of(sa, "allow_mutable") != 0 ? "yes" : "no";
        for (const auto& [id, k] : keys.items()) {
            fmt::print("{:<5} {:<10} {:<16} {:<4} {:<8} {:<13} {:<14} {}\n", count_of(sa, "spp"), count_of(k, "key_id"),
                       k.value("algorithm", "?"), count_of(k, "icv_length"),
                       count_of(k, "current") != 0 ? "current" : "", count_of(sa, "seqid_window"), allow_mutable,
                       remaining_lifetime(k));
        }
        if (keys.empty()) {
            fmt::print("{:<5} {:<10} {:<16} {:<4} {:<8} {:<13} {:<14} {}\n", count_of(sa, "spp"), "-", "-", "-", "",
                       count_of(sa, "seqid_window"), allow_mutable, "-");
        }
        const ordered_json retired = sa.value("retired_key_ids", ordered_json::array());
        if (retired.is_array() && !retired.empty()) {
            std::vector<uint64_t> ids;
            for (const auto& id : retired) {
                ids.push_back(id.get<uint64_t>());
            }
            retired_lines.push_back(fmt::format("spp {}: {}", count_of(sa, "spp"), fmt::join(ids, " ")));
        }
    }
    if (!retired_lines.empty()) {
        // Frames still carrying these are dropped as expired_key; the IDs are
        // not installed again (seeds/001 §5.3).
        fmt::print("retired key IDs (removed or expired, oldest first):\n");
        for (const auto& l : retired_lines) {
            fmt::print("  {}\n", l);
        }
    }
    return exit_ok;
}

/// `ptpsecctl sa push|current|remove|flush`: updates through the SA
/// channel, one line per acknowledgement; exit 1 if any was rejected.
int send_updates(const std::string& prefix, std::vector<ptpsec::sa_wire::update> updates, bool json) {
    auto r = ptpsec::sa_client::send(prefix, updates);
    if (!r) {
        return report(r.err());
    }
    size_t rejected = 0;
    ordered_json out = ordered_json::array();
    for (const auto& o : *r) {
        rejected += o.applied ? 0 : 1;
        if (json) {
            out.push_back({{"operation", ptpsec::op_name(o.update.operation)},
                           {"spp", o.update.spp},
                           {"key_id", o.update.key_id},
                           {"applied", o.applied},
                           {"reason", o.reason}});
        } else if (o.applied) {
            fmt::print("{} spp {} key {}: applied\n", ptpsec::op_name(o.update.operation), o.update.spp,
                       o.update.key_id);
        } else {
            fmt::print("{} spp {} key {}: REJECTED: {}\n", ptpsec::op_name(o.update.operation), o.update.spp,
                       o.update.key_id, o.reason);
        }
    }
    if (json) {
        fmt::print("{}\n", out.dump());
    } else {
        fmt::print("{} applied, {} rejected\n", r->size() - rejected, rejected);
    }
    return rejected == 0 ? exit_ok : exit_failed;
}

/// --lifetime: whole seconds, 0 up to sa_client::max_lifetime.
CLI::Validator lifetime_seconds() {
    const int64_t max = std::chrono::duration_cast<std::chrono::seconds>(ptpsec::sa_client::max_lifetime).count();
    return CLI::Validator(
        [max](std::string& v) -> std::string {
            int64_t n = -1;
            const char* end = v.data() + v.size();
            const auto [p, ec] = std::from_chars(v.data(), end, n);
            if (ec != std::errc{} || p != end || n < 0 || n > max) {
                return fmt::format("{} is not a whole number of seconds from 0 to {} (388 days, seeds/001 §2.5.1)", v,
                                   max);
            }
            return {};
        },
        fmt::format("SECONDS:0-{}", max));
}

int run(int argc, char** argv) {
    CLI::App app{"ptpsecctl: operate ptpsec (offline PTP capture tools, data-plane counters and SAs)"};
    app.require_subcommand(1);

    ptpsec::pcap_tool::options opt;
    std::string in;
    std::string out;
    std::string sa_file;
    int spp = -1;
    uint32_t key_id = 0;

    auto* pcap = app.add_subcommand("pcap", "Show, verify, sign or strip PTP frames in a capture file");
    pcap->require_subcommand(1);
    pcap->add_option("--ticket-tlv-type", opt.wire.ticket_tlv_type,
                     "tlvType of the TICKET TLV (seeds/001 §6; default 0x2015, experimental range)")
        ->capture_default_str();
    pcap->add_option("--engine", opt.engine, "ICV engine: ipsec-mb or openssl")
        ->check(CLI::IsMember({"ipsec-mb", "openssl"}))
        ->capture_default_str();

    auto* show = pcap->add_subcommand("show", "Decode every frame");
    show->fallthrough();
    show->add_option("IN", in, "capture file (pcap or pcapng)")->required();

    auto* verify = pcap->add_subcommand("verify", "Verify the AUTHENTICATION TLV of every PTP frame");
    verify->fallthrough();
    verify->add_option("--sa-file", sa_file, "SA file (linuxptp format)")->required();
    verify->add_option("IN", in, "capture file")->required();

    auto* sign = pcap->add_subcommand("sign", "Add an AUTHENTICATION TLV to every PTP frame that has none");
    sign->fallthrough();
    sign->add_option("--sa-file", sa_file, "SA file (linuxptp format)")->required();
    sign->add_option("--spp", spp, "security parameter pointer of the SA to sign with")
        ->required()
        ->check(CLI::Range(0, 255));
    sign->add_option("--key-id", key_id, "key ID within the SA")->required();
    sign->add_option("IN", in, "capture file")->required();
    sign->add_option("OUT", out, "output pcap file")->required();

    auto* strip = pcap->add_subcommand("strip", "Remove AUTHENTICATION TLVs, fixing lengths and checksums");
    strip->fallthrough();
    strip->add_option("IN", in, "capture file")->required();
    strip->add_option("OUT", out, "output pcap file")->required();

    // Read a running ptpsec-dataplane through DPDK telemetry.
    std::string file_prefix(ptpsec::default_file_prefix);
    bool json = false;
    auto add_telemetry_options = [&](CLI::App* cmd) {
        cmd->add_option("--file-prefix", file_prefix, "EAL --file-prefix of the ptpsec-dataplane to read")
            ->capture_default_str();
        cmd->add_flag("--json", json, "print the reply as JSON");
    };
    auto* stats = app.add_subcommand("stats", "Counters of a running ptpsec-dataplane (per path, replay, ports)");
    add_telemetry_options(stats);
    auto* sa = app.add_subcommand("sa", "Security associations of a running ptpsec-dataplane");
    sa->require_subcommand(1);
    auto* sa_list = sa->add_subcommand("list", "SAs and their keys: IDs and algorithms, never key bytes");
    add_telemetry_options(sa_list);

    // Change the SAs of a running ptpsec-dataplane through its SA channel.
    std::string current;
    int sa_spp = -1;
    int sa_key = -1;
    int64_t lifetime_s = 0;
    auto* sa_push = sa->add_subcommand("push", "Install every key of an SA file (receivers accept them at once)");
    add_telemetry_options(sa_push);
    sa_push->add_option("--sa-file", sa_file, "SA file (linuxptp format)")->required();
    sa_push->add_option("--current", current, "then sign with SPP:KEY_ID");
    sa_push
        ->add_option("--lifetime", lifetime_s,
                     "the data plane forgets each pushed key this many seconds after installing it, as `sa remove` "
                     "would: its remaining lifetime plus grace period (seeds/001 §2.5.1); 0: never")
        ->check(lifetime_seconds());
    auto* sa_current = sa->add_subcommand("current", "Sign with this key of the SA from now on");
    add_telemetry_options(sa_current);
    sa_current->add_option("--spp", sa_spp, "SPP")->required()->check(CLI::Range(0, 255));
    sa_current->add_option("--key-id", sa_key, "key ID")->required()->check(CLI::NonNegativeNumber);
    auto* sa_remove = sa->add_subcommand("remove", "Remove a key (end of its grace period), or the whole SA");
    add_telemetry_options(sa_remove);
    sa_remove->add_option("--spp", sa_spp, "SPP")->required()->check(CLI::Range(0, 255));
    sa_remove->add_option("--key-id", sa_key, "key ID; without it the whole SA")->check(CLI::NonNegativeNumber);
    auto* sa_flush = sa->add_subcommand("flush", "Remove every SA");
    add_telemetry_options(sa_flush);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? exit_ok : exit_error;
    }

    {
        if (show->parsed()) {
            auto r = ptpsec::pcap_tool::show(in, std::cout, opt);
            return r ? exit_ok : report(r.err());
        }
        if (verify->parsed()) {
            auto r = ptpsec::pcap_tool::verify(sa_file, in, std::cout, opt);
            if (!r) {
                return report(r.err());
            }
            return r->failed == 0 ? exit_ok : exit_failed;
        }
        if (sign->parsed()) {
            auto r = ptpsec::pcap_tool::sign(sa_file, static_cast<uint8_t>(spp), key_id, in, out, std::cerr, opt);
            if (!r) {
                return report(r.err());
            }
            fmt::print("{} frames, {} PTP, {} signed, {} not signed -> {}\n", r->frames, r->ptp, r->changed, r->failed,
                       out);
            return r->failed == 0 ? exit_ok : exit_failed;
        }
        if (stats->parsed()) {
            return show_stats(file_prefix, json);
        }
        if (sa_list->parsed()) {
            return list_sas(file_prefix, json);
        }
        if (sa_push->parsed()) {
            auto sas = ptpsec::load_sa_file(sa_file);
            if (!sas) {
                return report(sas.err());
            }
            auto made = ptpsec::sa_client::updates_for(*sas, std::chrono::seconds(lifetime_s));
            if (!made) {
                return report(made.err());
            }
            std::vector<ptpsec::sa_wire::update> updates = std::move(made).value();
            if (!current.empty()) {
                auto sk = ptpsec::parse_spp_key(current, true);
                if (!sk) {
                    return report(ptpsec::error{fmt::format("--current {}", sk.message())});
                }
                updates.push_back(ptpsec::sa_client::set_current(sk->spp, sk->key_id));
            }
            return send_updates(file_prefix, std::move(updates), json);
        }
        if (sa_current->parsed()) {
            return send_updates(
                file_prefix,
                {ptpsec::sa_client::set_current(static_cast<uint8_t>(sa_spp), static_cast<uint32_t>(sa_key))}, json);
        }
        if (sa_remove->parsed()) {
            const auto u =
                sa_key < 0 ? ptpsec::sa_client::remove_sa(static_cast<uint8_t>(sa_spp))
                           : ptpsec::sa_client::remove_key(static_cast<uint8_t>(sa_spp), static_cast<uint32_t>(sa_key));
            return send_updates(file_prefix, {u}, json);
        }
        if (sa_flush->parsed()) {
            return send_updates(file_prefix, {ptpsec::sa_client::flush()}, json);
        }
        if (strip->parsed()) {
            auto r = ptpsec::pcap_tool::strip(in, out, std::cerr, opt);
            if (!r) {
                return report(r.err());
            }
            fmt::print("{} frames, {} PTP, {} stripped, {} not stripped -> {}\n", r->frames, r->ptp, r->changed,
                       r->failed, out);
            return r->failed == 0 ? exit_ok : exit_failed;
        }
    }
    return exit_error;
}

} // namespace

int main(int argc, char** argv) {
    // Exceptions stay at the top of the program: start-up and library
    // failures that throw (allocation, a CPU without the needed instructions)
    // end here with a message.
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fputs("ptpsecctl: ", stderr);
        std::fputs(e.what(), stderr);
        std::fputs("\n", stderr);
    } catch (...) {
        std::fputs("ptpsecctl: unexpected error\n", stderr);
    }
    return exit_error;
}
