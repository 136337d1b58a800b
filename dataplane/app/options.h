#pragma once

// ptpsec-dataplane's own options: those after `--` on the command line, or
// the keys of a --config file (TOML, the long option names as keys), and
// every check of them that needs neither EAL nor a port. main.cpp reads them
// from the command line; parse_options_text() and read_options_text() read a
// file's text the same way, for the tests and the fuzz target
// (fuzz/dataplane_options_fuzz.cpp).

#include <dataplane/app/attest.h>
#include <dataplane/app/ports.h>
#include <dataplane/app/steering.h>
#include <dataplane/event.h>
#include <dataplane/exception_channel.h>
#include <dataplane/ptp/message.h>
#include <dataplane/replay.h>
#include <dataplane/worker.h>
#include <drivers/base/result.h>

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace ptpsec {

struct app_options {
    uint16_t inside = 0;
    uint16_t outside = 1;
    std::string sa_file;
    std::string sign;       ///< "SPP:KEY"
    std::string crypto_dev; ///< ICVs on this DPDK crypto device instead of intel-ipsec-mb
    std::string inside_policy = "sign";
    std::string outside_policy = "verify";
    std::string inside_non_ptp = "forward";  ///< frames from inside that are not PTP: forward, drop
    std::string outside_non_ptp = "forward"; ///< the same from outside
    uint16_t burst = 32;
    uint16_t tx_retry = 0;
    uint32_t service_interval_us = 200;
    std::string sa_apply = "worker"; ///< with worker lcores: who applies SA updates (worker, main)
    std::string steering = "auto";
    unsigned handoff_ring = 4096;
    double stats_interval = 0;
    uint32_t idle_exit_ms = 0;
    std::string events = "none"; ///< none, rx, tx, both
    std::string event_types = "timing";
    std::string clock = "tai";
    std::string rx_timestamps = "clock"; ///< clock, port-ns, port-us
    unsigned event_ring = 65536;
    std::string event_dump;
    uint32_t replay_window = 64; ///< 0: no replay protection
    size_t replay_streams = 1024;
    uint32_t gmac_senders = default_gmac_senders; ///< slots of each AES-GMAC key's sender subkey table
    std::string stats_json;
    bool tickets = false;
    unsigned exception_slots = exception_channel::default_slots;
    port_options ports;
    ptp::wire_options wire;
    attest_options attest;
};

/// What the options say, checked and in the types the app uses.
struct checked_options {
    ptp_policy inside = ptp_policy::sign;
    ptp_policy outside = ptp_policy::verify;
    bool inside_drop_non_ptp = false;  ///< --inside-non-ptp drop
    bool outside_drop_non_ptp = false; ///< --outside-non-ptp drop
    uint8_t spp = 0;                   ///< --sign
    uint32_t key_id = 0;               ///< --sign SPP:KEY_ID
    bool initial_key = false;          ///< --sign named a key
    steering_mode steering = steering_mode::automatic;
    event_mask event_types;
    /// --rx-timestamps port-ns or port-us: nanoseconds per unit of the PMD's
    /// per-frame RX timestamp (1 or 1000); 0: the clock's time (clock).
    uint32_t rx_timestamp_ns_per_unit = 0;
};

/// Every check of the options that needs neither EAL nor a port, so that a
/// wrong value is refused before EAL starts (and says nothing about it).
result<checked_options> check_options(const app_options& o);

/// "needs N MiB of replay state, more than the M MiB a table may take" when
/// a replay table made with `rc` would pass replay_table::max_state_bytes;
/// nothing when it fits. check_options asks it of the options, the start of
/// the data plane of the window an SA file raises them to.
std::optional<std::string> replay_state_excess(const replay_config& rc);

/// Declares the options on `cli`, bound to `opt` (not --config and
/// --print-config, which only a command line has), and how a --config file
/// is read: CLI11's reader without lists, a key that is no option an error.
void add_options(CLI::App& cli, app_options& opt);

/// The options in effect as a --config file, without the two options that
/// only make sense on a command line.
std::string config_file_text(const CLI::App& cli);

/// Every value given (on the command line or in a --config file) is one
/// line of text a --config file can carry: no control character and no '#',
/// which CLI11's reader takes for the start of a comment wherever it stands.
/// A refusal names the option; --print-config prints only what reads back.
status check_option_values(const CLI::App& cli);

/// What a --config file did wrong, in our words: CLI11 says "INI was not
/// able to parse KEY" for a key that is no option.
std::string config_error_text(const CLI::ConfigError& e);

struct parsed_options {
    app_options options;
    std::string printed; ///< what --print-config would print after reading them
};

/// Reads the text of a --config file as ptpsec-dataplane reads the file,
/// before check_options; a refusal starts with `origin`.
result<parsed_options> parse_options_text(std::string_view text, std::string_view origin);

/// The --config file named among a command line's arguments (`--config
/// FILE` or `--config=FILE`; `args` without the program's name), read on
/// its own before the command line is parsed with it, so that a value CLI11
/// cannot convert or a key given twice is reported with the file's name
/// (CLI11 names only the option). No --config: nothing to check.
status check_config_file(std::span<char* const> args);

struct read_options {
    app_options options;
    checked_options checked;
};

/// parse_options_text, then check_options; a refusal starts with `origin`.
result<read_options> read_options_text(std::string_view text, std::string_view origin);

} // namespace ptpsec
