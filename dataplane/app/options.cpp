#include <dataplane/app/options.h>

#include <control/sa_file.h>
#include <dataplane/replay.h>
#include <drivers/base/cli_numbers.h>
#include <drivers/base/file.h>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <tuple>

namespace ptpsec {
namespace {

/// CLI11's TOML reader, minus its lists. A value that starts with '[' is a
/// list to CLI11, which reads on across lines until one ends with ']' and
/// joins them (comments and all). Every option of ours takes one value, so
/// a list is refused by name before CLI11 sees the file.
class scalar_config final : public CLI::ConfigTOML {
public:
    std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
        std::string text{std::istreambuf_iterator<char>(input), std::istreambuf_iterator<char>()};
        std::istringstream lines(text);
        for (std::string line; std::getline(lines, line);) {
            CLI::detail::trim(line);
            if (line.empty() || line.front() == '#' || line.front() == ';' || line.front() == '[') {
                continue;
            }
            const size_t eq = line.find('=');
            if (eq == std::string::npos) {
                continue;
            }
            const std::string key = CLI::detail::trim_copy(line.substr(0, eq));
            const std::string value = CLI::detail::trim_copy(line.substr(eq + 1));
            if (value.starts_with('[')) {
                throw CLI::ConfigError(fmt::format("key \"{}\": a list, but every option takes one value", key));
            }
            // CLI11 cuts a line at its first '#', inside quotes too, and
            // keeps what is left of a quoted value with its opening quote:
            // "gm#1" would read as "gm. Refused here, by key.
            if (value.starts_with('"') || value.starts_with('\'')) {
                const size_t close = value.find(value.front(), 1);
                const size_t hash = value.find('#', 1);
                if (hash != std::string::npos && (close == std::string::npos || hash < close)) {
                    throw CLI::ConfigError(fmt::format("key \"{}\": the value holds '#', which this file's reader "
                                                       "takes for the start of a comment, even inside quotes",
                                                       key));
                }
                if (close == std::string::npos) {
                    throw CLI::ConfigError(fmt::format("key \"{}\": the value has no closing {}", key,
                                                       value.front() == '"' ? "double quote" : "quote"));
                }
            }
        }
        std::istringstream again(text);
        return CLI::ConfigTOML::from_config(again);
    }
};

std::optional<steering_mode> steering_from(std::string_view s) {
    for (auto m : {steering_mode::automatic, steering_mode::flow, steering_mode::software}) {
        if (steering_mode_name(m) == s) {
            return m;
        }
    }
    return std::nullopt;
}

/// --event-types: "timing" (event_mask::timing()), "all", or a comma list
/// of messageType names (IEEE 1588-2019 Table 36; any case, "Delay_Req" or
/// "delay-req").
result<event_mask> event_types_from(std::string_view s) {
    if (s == "timing") {
        return event_mask::timing();
    }
    if (s == "all") {
        return event_mask::all();
    }
    auto canonical = [](std::string_view v) {
        std::string out;
        for (char c : v) {
            out += c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        return out;
    };
    event_mask mask;
    size_t at = 0;
    while (at <= s.size()) {
        const size_t comma = std::min(s.find(',', at), s.size());
        const std::string name = canonical(s.substr(at, comma - at));
        bool found = false;
        for (uint8_t v = 0; v < 16 && !found; ++v) {
            const auto t = static_cast<ptp::message_type>(v);
            if (ptp::message_type_name(t) != "Reserved" && canonical(ptp::message_type_name(t)) == name) {
                mask = mask.with(t);
                found = true;
            }
        }
        if (!found) {
            return error{fmt::format("--event-types {}: \"{}\" is not a PTP messageType; use timing, all, or names "
                                     "such as sync,delay_req,pdelay_req,pdelay_resp,follow_up,"
                                     "pdelay_resp_follow_up,delay_resp,announce,signaling,management",
                                     s, name)};
        }
        at = comma + 1;
    }
    return mask;
}

std::optional<ptp_policy> policy_from(std::string_view s) {
    for (auto p : {ptp_policy::pass, ptp_policy::sign, ptp_policy::verify, ptp_policy::verify_strip, ptp_policy::tc}) {
        if (ptp_policy_name(p) == s) {
            return p;
        }
    }
    return std::nullopt;
}

} // namespace

std::optional<std::string> replay_state_excess(const replay_config& rc) {
    const size_t bytes = replay_table::state_bytes(rc);
    if (bytes <= replay_table::max_state_bytes) {
        return std::nullopt;
    }
    return fmt::format("needs {} MiB of replay state, more than the {} MiB a table may take",
                       (bytes + (1 << 20) - 1) >> 20, replay_table::max_state_bytes >> 20);
}

result<checked_options> check_options(const app_options& o) {
    checked_options c;
    auto policy_in = policy_from(o.inside_policy);
    auto policy_out = policy_from(o.outside_policy);
    if (!policy_in ||
        (*policy_in != ptp_policy::pass && *policy_in != ptp_policy::sign && *policy_in != ptp_policy::tc)) {
        return error{fmt::format("--inside-policy {}: use pass, sign or tc", o.inside_policy)};
    }
    if (!policy_out || *policy_out == ptp_policy::sign) {
        return error{fmt::format("--outside-policy {}: use pass, verify, verify-strip or tc", o.outside_policy)};
    }
    c.inside = *policy_in;
    c.outside = *policy_out;
    for (const auto& [option, value, drop] :
         {std::tuple{"--inside-non-ptp", &o.inside_non_ptp, &c.inside_drop_non_ptp},
          std::tuple{"--outside-non-ptp", &o.outside_non_ptp, &c.outside_drop_non_ptp}}) {
        if (*value != "forward" && *value != "drop") {
            return error{fmt::format("{} {}: use forward or drop", option, *value)};
        }
        *drop = *value == "drop";
    }
    if (o.tickets && c.outside != ptp_policy::verify && c.outside != ptp_policy::verify_strip) {
        return error{fmt::format("--tickets needs --outside-policy verify or verify-strip (it is {}): tickets come "
                                 "with requests the outside path verifies",
                                 o.outside_policy)};
    }
    if (c.inside == ptp_policy::sign) {
        if (o.sign.empty()) {
            return error{"--inside-policy sign needs --sign SPP[:KEY_ID] (for example --sign 2:1, or --sign 2 "
                         "to sign with the key the control plane names current)"};
        }
        auto sk = parse_spp_key(o.sign, false);
        if (!sk) {
            return error{fmt::format("--sign {}", sk.message())};
        }
        c.spp = sk->spp;
        c.key_id = sk->key_id;
        c.initial_key = sk->has_key;
        if (c.initial_key && o.sa_file.empty()) {
            return error{fmt::format("--sign {} names a key, which needs --sa-file (or start with --sign {} and "
                                     "push keys with ptpsecctl sa push)",
                                     o.sign, c.spp)};
        }
    }
    if (o.inside == o.outside) {
        return error{fmt::format("--inside and --outside are both port {}", o.inside)};
    }
    if (auto m = steering_from(o.steering)) {
        c.steering = *m;
    } else {
        return error{fmt::format("--steering {}: use auto, flow or software", o.steering)};
    }
    if (o.events == "none") {
        if (!o.event_dump.empty()) {
            return error{"--event-dump needs --events rx, tx or both"};
        }
    } else if (o.events != "rx" && o.events != "tx" && o.events != "both") {
        return error{fmt::format("--events {}: use none, rx, tx or both", o.events)};
    }
    if (o.rx_timestamps == "port-ns" || o.rx_timestamps == "port-us") {
        if (o.events != "rx" && o.events != "both") {
            return error{fmt::format("--rx-timestamps {} stamps RX timing events: it needs --events rx or both",
                                     o.rx_timestamps)};
        }
        c.rx_timestamp_ns_per_unit = o.rx_timestamps == "port-ns" ? 1 : 1000;
    } else if (o.rx_timestamps != "clock") {
        return error{fmt::format("--rx-timestamps {}: use clock, port-ns or port-us", o.rx_timestamps)};
    }
    if (o.gmac_senders < 8 || o.gmac_senders > max_gmac_senders || !std::has_single_bit(o.gmac_senders)) {
        return error{fmt::format("--gmac-senders {}: a power of two from 8 to {}", o.gmac_senders, max_gmac_senders)};
    }
    if (o.ports.mbufs < min_mbufs) {
        return error{fmt::format("--mbufs {}: use at least {} (DPDK's mempool wants one and a half times the {} "
                                 "mbufs each lcore caches)",
                                 o.ports.mbufs, min_mbufs, mbuf_cache)};
    }
    if (o.replay_window != 0) {
        if (const auto excess = replay_state_excess({o.replay_window, o.replay_streams})) {
            return error{fmt::format("--replay-window {} with --replay-streams {} {}: lower one of them",
                                     o.replay_window, o.replay_streams, *excess)};
        }
    }
    const attest_options& at = o.attest;
    if (at.signer_id.size() > max_attest_signer_id_len) {
        return error{fmt::format("--attest-signer-id: {} octets; at most {} (DPDK telemetry's /ptpsec/attest carries "
                                 "it as a string of that size)",
                                 at.signer_id.size(), max_attest_signer_id_len)};
    }
    if (at.log_max_mb < 1 || at.log_max_mb > max_attest_log_mb) {
        return error{fmt::format("--attest-log-max-mb {}: use 1 to {} (a verifier reads a log file whole)",
                                 at.log_max_mb, max_attest_log_mb)};
    }
    if (at.max_held < 1 || at.max_held > max_attest_held) {
        return error{fmt::format("--attest-max-held {}: use 1 to {} (about 100 octets of memory each)", at.max_held,
                                 max_attest_held)};
    }
    if (at.batch_events < 1) {
        return error{"--attest-batch-events 0: a batch closes at 1 event or more"};
    }
    if (at.batch_events > at.max_held) {
        return error{fmt::format("--attest-batch-events {} is more than --attest-max-held {}: a batch must fit in the "
                                 "events held while the signer is busy (lower the first or raise the second)",
                                 at.batch_events, at.max_held)};
    }
    if (at.batch_ms < 1 || at.batch_ms > max_attest_batch_ms) {
        return error{fmt::format("--attest-batch-ms {}: use 1 to {} (an hour)", at.batch_ms, max_attest_batch_ms)};
    }
    PTPSEC_TRY(mask, event_types_from(o.event_types));
    c.event_types = *mask;
    if (o.attest.backend != "none" && !o.event_dump.empty()) {
        return error{"--attest and --event-dump both take the event records: choose one"};
    }
    return c;
}

namespace {

/// rte_ring_create() takes a count that is a power of two (and below 2^31).
CLI::Validator power_of_two() {
    return CLI::Validator(
        [](const std::string& s) -> std::string {
            uint64_t v = 0;
            if (!CLI::detail::lexical_cast(s, v) || v < 2 || v > (uint64_t{1} << 30) || (v & (v - 1)) != 0) {
                return fmt::format("{} is not a power of two from 2 to 2^30", s);
            }
            return {};
        },
        "POWER OF TWO");
}

/// --stats-interval: seconds, fractions too, up to a day.
CLI::Validator interval_seconds() {
    return CLI::Validator(
        [](const std::string& s) -> std::string {
            double v = 0;
            if (!CLI::detail::lexical_cast(s, v) || !(v >= 0 && v <= 86400)) {
                return fmt::format("{} is not a number of seconds from 0 to 86400", s);
            }
            return {};
        },
        "SECONDS");
}

} // namespace

void add_options(CLI::App& cli, app_options& opt) {
    cli.config_formatter(std::make_shared<scalar_config>());
    cli.allow_config_extras(CLI::config_extras_mode::error);
    cli.add_option("--inside", opt.inside, "port ID of the inside (trusted) port")->capture_default_str();
    cli.add_option("--outside", opt.outside, "port ID of the outside (untrusted) port")->capture_default_str();
    cli.add_option("--sa-file", opt.sa_file, "SA file (linuxptp format, plus AES-GMAC types)");
    cli.add_option("--inside-policy", opt.inside_policy,
                   "PTP from inside to outside: pass, sign, or tc (transparent clock: verify, add the residence "
                   "time, sign again)")
        ->capture_default_str();
    cli.add_option("--outside-policy", opt.outside_policy,
                   "PTP from outside to inside: pass, verify, verify-strip or tc")
        ->capture_default_str();
    cli.add_option("--inside-non-ptp", opt.inside_non_ptp,
                   "frames from inside that are not PTP: forward (unchanged) or drop (counted as non_ptp_dropped)")
        ->capture_default_str();
    cli.add_option("--outside-non-ptp", opt.outside_non_ptp,
                   "frames from outside that are not PTP: forward or drop (a port that carries PTP alone)")
        ->capture_default_str();
    cli.add_option("--sign", opt.sign,
                   "SPP[:KEY_ID] to sign with (without a key ID: the key the control plane makes current)");
    cli.add_option("--crypto-dev", opt.crypto_dev,
                   "compute ICVs on this DPDK crypto device (a SmartNIC's or an accelerator's, or a software one: "
                   "--vdev crypto_aesni_mb0) instead of intel-ipsec-mb on the CPU");
    cli.add_option("--burst", opt.burst, "RX burst size (1-64)")->check(CLI::Range(1, 64))->capture_default_str();
    cli.add_option("--tx-retry", opt.tx_retry,
                   "retry a TX burst the port took only in part up to N times, 1 us apart, before dropping the rest "
                   "(links that push back: memif, vhost)")
        ->capture_default_str();
    cli.add_option("--steering", opt.steering,
                   "with several workers, how PTP reaches the first (the PTP worker): auto (rte_flow where the ports "
                   "take it, else software), flow (rte_flow or refuse to start), software (the other workers hand it "
                   "over on a ring)")
        ->capture_default_str();
    cli.add_option("--service-interval", opt.service_interval_us,
                   "microseconds the main lcore sleeps between looks at key lifetimes and the event ring; an SA "
                   "update wakes it at once (0: it polls without sleeping, for a main lcore on a core of its own)")
        ->check(CLI::Range(0U, 1'000'000U))
        ->capture_default_str();
    cli.add_option("--sa-apply", opt.sa_apply,
                   "with workers on other lcores, who applies SA updates: worker (the PTP worker, between two of its "
                   "bursts, as soon as one arrives) or main (the main lcore, when it wakes)")
        ->check(CLI::IsMember({"worker", "main"}))
        ->capture_default_str();
    cli.add_option("--handoff-ring", opt.handoff_ring, "slots of each handoff ring (a power of two)")
        ->check(power_of_two())
        ->capture_default_str();
    cli.add_option("--stats-interval", opt.stats_interval, "print counters every SECONDS (0: only at exit)")
        ->check(interval_seconds())
        ->capture_default_str();
    cli.add_option(
           "--idle-exit", opt.idle_exit_ms,
           "stop once no frame arrived for MS milliseconds after the first (offline runs on net_pcap); 0: never")
        ->capture_default_str();
    cli.add_option("--stats-json", opt.stats_json, "write the counters at exit to FILE as JSON");
    cli.add_option("--events", opt.events,
                   "timing-event records of forwarded PTP frames: none, rx (as they arrive), tx (as they leave) "
                   "or both")
        ->capture_default_str();
    cli.add_option("--clock", opt.clock,
                   "clock of the event timestamps, first that opens: ethdev:PORT, phc:/dev/ptpN, tai")
        ->capture_default_str();
    cli.add_option("--rx-timestamps", opt.rx_timestamps,
                   "time of RX timing events: clock (the --clock, read once per burst), or port-ns / port-us (the "
                   "time the port's PMD stamps on each frame, RTE_ETH_RX_OFFLOAD_TIMESTAMP, in that unit: ns for "
                   "NICs that stamp with their PHC, us for net_pcap replaying a capture; frames without one keep "
                   "the clock's time)")
        ->capture_default_str();
    cli.add_option("--event-types", opt.event_types,
                   "which messageTypes give event records: timing (Sync, Delay_Req, Pdelay_Req, Pdelay_Resp, "
                   "Follow_Up, Pdelay_Resp_Follow_Up), all, or a comma list of names (sync,announce,...)")
        ->capture_default_str();
    cli.add_option("--event-ring", opt.event_ring, "slots of the event ring (a power of two)")
        ->check(power_of_two())
        ->capture_default_str();
    auto& at = opt.attest;
    cli.add_option("--attest", at.backend,
                   "sign the event records in Merkle batches and log the evidence (docs/attestation.md): none, tpm, "
                   "pkcs11, or software (development only: not hardware-rooted)")
        ->capture_default_str();
    cli.add_option("--attest-signer-id", at.signer_id, "this observer's name in the evidence (default: the host name)");
    cli.add_option("--attest-log", at.log_dir, "directory of the evidence log (must exist)");
    cli.add_option("--attest-log-name", at.log_name, "base name of the log files (NAME.cbor, NAME.N.cbor)")
        ->capture_default_str();
    cli.add_option("--attest-log-max-mb", at.log_max_mb, "start a new log file past this size")->capture_default_str();
    cli.add_option("--attest-batch-events", at.batch_events, "a batch closes at this many events ...")
        ->capture_default_str();
    cli.add_option("--attest-batch-ms", at.batch_ms, "... or when its first event is this old")->capture_default_str();
    cli.add_option("--attest-max-held", at.max_held,
                   "events held while the signer is busy (memory: about 100 octets each); more are counted as "
                   "overflow, never dropped silently")
        ->capture_default_str();
    cli.add_option("--attest-threads", at.builder_threads,
                   "threads that write and hash the leaves of a batch (the builder thread and N - 1 helpers)")
        ->check(CLI::Range(1U, 16U))
        ->capture_default_str();
    cli.add_option("--attest-algorithm", at.algorithm, "software and pkcs11: es256 or eddsa")->capture_default_str();
    cli.add_option("--attest-key", at.key_file, "software: the key file (PEM, made when absent)");
    cli.add_option("--attest-counter", at.counter_file, "software and pkcs11: the counter file");
    cli.add_option("--attest-tcti", at.tcti, "tpm: the TCTI (swtpm:host=127.0.0.1,port=2321 for swtpm)")
        ->capture_default_str();
    cli.add_option("--attest-tpm-key-handle", at.tpm_key_handle, "tpm: persistent handle of the signing key")
        ->capture_default_str();
    cli.add_option("--attest-tpm-counter-index", at.tpm_counter_index, "tpm: NV index of the monotonic counter")
        ->capture_default_str();
    cli.add_option("--attest-pkcs11-module", at.pkcs11_module, "pkcs11: the module")->capture_default_str();
    cli.add_option("--attest-pkcs11-token", at.pkcs11_token, "pkcs11: the token's label");
    cli.add_option("--attest-pkcs11-pin-file", at.pkcs11_pin_file, "pkcs11: file holding the user PIN (mode 0600)");
    cli.add_option("--attest-pkcs11-key", at.pkcs11_key, "pkcs11: the key's label (made on the token when absent)")
        ->capture_default_str();
    cli.add_option("--event-dump", opt.event_dump,
                   "write the event records (96 octets each, dataplane/event_record.h) to FILE");
    cli.add_option("--replay-window", opt.replay_window,
                   "replay window in sequenceIds per stream (rounded up to 64-bit blocks; 0: off)")
        ->check(CLI::Range(0U, replay_table::max_window))
        ->capture_default_str();
    cli.add_option("--replay-streams", opt.replay_streams, "streams the replay table holds")
        ->check(CLI::Range(replay_table::min_capacity, replay_table::max_capacity))
        ->capture_default_str();
    cli.add_option("--gmac-senders", opt.gmac_senders,
                   "senders each AES-GMAC key keeps a subkey for (a power of two, 8-1024): at least the GMAC "
                   "senders of one key on the network, or they derive subkeys again and again")
        ->capture_default_str();
    cli.add_option("--rx-desc", opt.ports.rx_desc, "RX descriptors per queue")
        ->check(CLI::Range(1, 0xFFFF))
        ->capture_default_str();
    cli.add_option("--tx-desc", opt.ports.tx_desc, "TX descriptors per queue")
        ->check(CLI::Range(1, 0xFFFF))
        ->capture_default_str();
    cli.add_option("--mbufs", opt.ports.mbufs, "mbufs in the pool")->capture_default_str();
    cli.add_option("--ticket-tlv-type", opt.wire.ticket_tlv_type, "tlvType of the TICKET TLV")
        ->check(CLI::Range(0, 0xFFFF))
        ->capture_default_str();
    cli.add_flag("--tickets", opt.tickets,
                 "grantor: hand Signaling messages with a TICKET TLV whose SA is not installed yet to the control "
                 "plane (/dev/shm/ptpsec-exc.PREFIX), and verify and forward them when it gives them back");
    cli.add_option("--exception-slots", opt.exception_slots,
                   "records each ring of the exception channel holds (--tickets)")
        ->check(CLI::Range(1U, exception_channel::max_slots))
        ->capture_default_str();
    check_whole_numbers(cli);
}

std::string config_file_text(const CLI::App& cli) {
    // CLI11 writes each option as a block: a blank line, its description as
    // comments, KEY=VALUE. The blocks of --config, --print-config and --help
    // go, descriptions and all.
    std::string out = "# ptpsec-dataplane options (--config FILE); EAL options stay on the command line\n";
    const std::string all = cli.config_to_str(true, true);
    auto dropped = [](std::string_view block) {
        size_t key = 0;
        while (key < block.size() && (block[key] == '\n' || block[key] == '#')) {
            key = block[key] == '#' ? block.find('\n', key) : key + 1;
            key = key == std::string_view::npos ? block.size() : key;
        }
        const std::string_view line = block.substr(key);
        return line.starts_with("print-config=") || line.starts_with("config=") || line.starts_with("help=");
    };
    size_t at = 0;
    while (at < all.size()) {
        size_t end = all.find("\n\n", at + 1);
        end = end == std::string::npos ? all.size() : end + 1;
        const std::string_view block(all.data() + at, end - at);
        if (!dropped(block)) {
            out += block;
        }
        at = end;
    }
    return out;
}

status check_option_values(const CLI::App& cli) {
    for (const CLI::Option* opt : cli.get_options()) {
        if (opt == cli.get_config_ptr()) {
            continue; // --config FILE: only ever on a command line
        }
        for (const std::string& value : opt->results()) {
            for (const char c : value) {
                const auto u = static_cast<unsigned char>(c);
                if (u < 0x20 || u == 0x7f) {
                    return error{fmt::format("{}: the value holds a control character (0x{:02x}); a value is one "
                                             "line of text",
                                             opt->get_name(), u)};
                }
                if (c == '#') {
                    return error{fmt::format("{}: the value holds '#', which a --config file reads as the start "
                                             "of a comment",
                                             opt->get_name())};
                }
            }
            // The rest of what CLI11's writer and reader disagree on (space
            // around a value, a stray quote): write the value as
            // --print-config would and read it back.
            std::istringstream line("key=" + CLI::detail::convert_arg_for_ini(value));
            const auto items = CLI::ConfigTOML().from_config(line);
            if (items.size() != 1 || items.front().inputs.size() != 1 || items.front().inputs.front() != value) {
                return error{fmt::format("{}: the value \"{}\" would not read back from a --config file; "
                                         "drop the space or quote around it",
                                         opt->get_name(), value)};
            }
        }
    }
    return ok_status();
}

std::string config_error_text(const CLI::ConfigError& e) {
    constexpr std::string_view extras = "INI was not able to parse ";
    const std::string_view what = e.what();
    if (what.starts_with(extras)) {
        std::string_view key = what.substr(extras.size());
        // A [table] reaches us as TABLE.++ (its start) or TABLE.-- (its end).
        if (key.ends_with(".++") || key.ends_with(".--")) {
            key.remove_suffix(3);
            return fmt::format("table [{}]: the keys are the long option names, with no tables "
                               "(--print-config lists every key)",
                               key);
        }
        if (key.find_first_of(" \t") != std::string_view::npos) {
            return fmt::format("\"{}\" is no KEY = VALUE line", key);
        }
        return fmt::format("unknown key \"{}\" (--print-config lists every key)", key);
    }
    return std::string(what);
}

result<parsed_options> parse_options_text(std::string_view text, std::string_view origin) {
    parsed_options p;
    CLI::App cli{"ptpsec-dataplane"};
    add_options(cli, p.options);
    std::istringstream in{std::string(text)};
    try {
        cli.parse_from_stream(in);
    } catch (const CLI::ConfigError& e) {
        return error{fmt::format("{}: {}", origin, config_error_text(e))};
    } catch (const CLI::ArgumentMismatch& e) {
        // CLI11: "--burst: At Most 1 required but received 2"
        const std::string_view what = e.what();
        const size_t colon = what.find(':');
        if (what.find("At Most 1 required") != std::string_view::npos && colon != std::string_view::npos) {
            return error{fmt::format("{}: {}: given more than once", origin, what.substr(0, colon))};
        }
        return error{fmt::format("{}: {}", origin, what)};
    } catch (const CLI::Error& e) {
        return error{fmt::format("{}: {}", origin, e.what())};
    }
    if (auto values = check_option_values(cli); !values) {
        return error{fmt::format("{}: {}", origin, values.message())};
    }
    p.printed = config_file_text(cli);
    return p;
}

status check_config_file(std::span<char* const> args) {
    constexpr std::string_view flag = "--config";
    std::string path;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string_view a = args[i];
        if (a == flag && i + 1 < args.size()) {
            path = args[i + 1];
        } else if (a.starts_with(flag) && a.size() > flag.size() && a[flag.size()] == '=') {
            path = a.substr(flag.size() + 1);
        }
    }
    if (path.empty()) {
        return ok_status();
    }
    PTPSEC_TRY(text, read_text_file("--config", path));
    if (auto parsed = parse_options_text(*text, fmt::format("--config {}", path)); !parsed) {
        return error{parsed.message()};
    }
    return ok_status();
}

result<read_options> read_options_text(std::string_view text, std::string_view origin) {
    PTPSEC_TRY(parsed, parse_options_text(text, origin));
    auto checked = check_options(parsed->options);
    if (!checked) {
        return error{fmt::format("{}: {}", origin, checked.message())};
    }
    return read_options{std::move(parsed->options), *checked};
}

} // namespace ptpsec
