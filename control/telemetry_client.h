#pragma once

// A client of DPDK's telemetry socket (protocol v2), for reading a running
// ptpsec-dataplane without EAL: a SOCK_SEQPACKET Unix socket at
// <runtime dir>/dpdk/<file-prefix>/dpdk_telemetry.v2. The server greets with
// {"version": ..., "pid": ..., "max_output_len": ...}; each command ("/ptpsec/stats")
// is answered with {"<command>": <value>}, the value null when the command
// is unknown or failed.

#include <drivers/base/result.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace ptpsec {

/// DPDK's default file prefix (EAL --file-prefix).
inline constexpr std::string_view default_file_prefix = "rte";

/// Where a DPDK primary process started with --file-prefix `prefix` serves
/// telemetry, found as EAL finds its runtime directory: $RUNTIME_DIRECTORY,
/// else /var/run for root, else $XDG_RUNTIME_DIR or /tmp; then
/// dpdk/<prefix>/dpdk_telemetry.v2.
std::string telemetry_socket_path(std::string_view file_prefix);

/// Why telemetry_client::connect() failed, for the operator; `no_process`
/// when no data plane runs with that file prefix (no socket, or one left
/// behind that nobody listens on), as opposed to one that runs but cannot
/// be read (permission, a wrong greeting, a timeout).
struct connect_error : error {
    bool no_process = false;
};

class telemetry_client {
public:
    /// Connects to the data plane with that file prefix. The errors say
    /// what to do: no such process, no permission, a socket left behind.
    static result<telemetry_client, connect_error> connect(std::string_view file_prefix,
                                                           std::chrono::milliseconds timeout = std::chrono::seconds(5));

    telemetry_client(telemetry_client&& o) noexcept;
    telemetry_client& operator=(telemetry_client&& o) noexcept;
    telemetry_client(const telemetry_client&) = delete;
    telemetry_client& operator=(const telemetry_client&) = delete;
    ~telemetry_client();

    /// Sends `command` and returns the value of the reply, in the order the
    /// server wrote it. A null value (the command is not there, or it
    /// failed) is an error that names the command and the process.
    result<nlohmann::ordered_json> query(std::string_view command);

    /// The process at the other end (from the greeting).
    long pid() const noexcept { return _pid; }

private:
    telemetry_client(int fd, std::string path) noexcept : _fd(fd), _path(std::move(path)) {}
    result<nlohmann::ordered_json> receive();

    int _fd = -1;
    std::string _path;
    long _pid = 0;
    size_t _max_output_len = 0;
};

} // namespace ptpsec
