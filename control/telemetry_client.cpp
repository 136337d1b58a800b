#include <control/telemetry_client.h>

#include <fmt/format.h>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace ptpsec {

namespace {

/// The socket name of telemetry protocol v2 (DPDK lib/telemetry).
constexpr std::string_view socket_name = "dpdk_telemetry.v2";
/// DPDK 22.11's largest reply; the greeting says what the server uses.
constexpr size_t default_max_output_len = size_t{16} * 1024;
/// Room for a reply larger than announced, so it is seen as too large
/// rather than cut.
constexpr size_t receive_slack = 1024;

std::string runtime_dir() {
    if (const char* d = std::getenv("RUNTIME_DIRECTORY"); d != nullptr && *d != '\0') {
        return d;
    }
    if (::getuid() == 0) {
        return "/var/run";
    }
    if (const char* d = std::getenv("XDG_RUNTIME_DIR"); d != nullptr && *d != '\0') {
        return d;
    }
    return "/tmp";
}

connect_error connect_failure(std::string message, bool no_process = false) {
    connect_error e;
    e.message = std::move(message);
    e.no_process = no_process;
    return e;
}

std::string no_process(std::string_view prefix, const std::string& path) {
    return fmt::format("no ptpsec-dataplane running with file prefix {} (looked for {})", prefix, path);
}

} // namespace

std::string telemetry_socket_path(std::string_view file_prefix) {
    return fmt::format("{}/dpdk/{}/{}", runtime_dir(), file_prefix, socket_name);
}

result<telemetry_client, connect_error> telemetry_client::connect(std::string_view file_prefix,
                                                                  std::chrono::milliseconds timeout) {
    const std::string path = telemetry_socket_path(file_prefix);
    if (file_prefix.empty() || file_prefix.find('/') != std::string_view::npos) {
        return connect_failure(
            fmt::format("file prefix '{}': give the name passed to EAL's --file-prefix", file_prefix));
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof(addr.sun_path)) {
        return connect_failure(fmt::format("{}: path too long for a Unix socket", path));
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);

    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return connect_failure(fmt::format("socket: {}", std::strerror(errno)));
    }
    telemetry_client c(fd, path);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        const int e = errno;
        switch (e) {
        case ENOENT:
        case ENOTDIR:
            return connect_failure(no_process(file_prefix, path), true);
        case ECONNREFUSED:
            return connect_failure(
                fmt::format("{}: nothing listens there: a socket left behind by a process that stopped",
                            no_process(file_prefix, path)),
                true);
        case EACCES:
        case EPERM:
            return connect_failure(fmt::format("{}: permission denied: run as the user that started ptpsec-dataplane "
                                               "(root for /var/run/dpdk)",
                                               path));
        default:
            return connect_failure(fmt::format("connect {}: {}", path, std::strerror(e)));
        }
    }
    auto greeting = c.receive();
    if (!greeting) {
        return connect_failure(greeting.message());
    }
    const auto& g = *greeting;
    if (!g.is_object() || !g.contains("max_output_len")) {
        return connect_failure(fmt::format("{}: not a DPDK telemetry v2 greeting: {}", path, g.dump()));
    }
    c._pid = g.value("pid", 0L);
    c._max_output_len = g.value("max_output_len", default_max_output_len);
    return c;
}

telemetry_client::telemetry_client(telemetry_client&& o) noexcept
    : _fd(std::exchange(o._fd, -1)), _path(std::move(o._path)), _pid(o._pid), _max_output_len(o._max_output_len) {}

telemetry_client& telemetry_client::operator=(telemetry_client&& o) noexcept {
    if (this != &o) {
        if (_fd >= 0) {
            ::close(_fd);
        }
        _fd = std::exchange(o._fd, -1);
        _path = std::move(o._path);
        _pid = o._pid;
        _max_output_len = o._max_output_len;
    }
    return *this;
}

telemetry_client::~telemetry_client() {
    if (_fd >= 0) {
        ::close(_fd);
    }
}

result<nlohmann::ordered_json> telemetry_client::receive() {
    std::vector<char> buf(std::max(_max_output_len, default_max_output_len) + receive_slack);
    ssize_t n = -1;
    do {
        // MSG_TRUNC: the length of the whole message, even if it did not fit.
        n = ::recv(_fd, buf.data(), buf.size(), MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return error{fmt::format("{}: no reply in time", _path)};
        }
        return error{fmt::format("{}: {}", _path, std::strerror(errno))};
    }
    if (n == 0) {
        return error{fmt::format("{}: the process closed the connection (DPDK serves a few telemetry clients at "
                                 "a time; try again)",
                                 _path)};
    }
    if (static_cast<size_t>(n) > buf.size()) {
        return error{fmt::format("{}: a reply of {} octets does not fit {}", _path, n, buf.size())};
    }
    auto j = nlohmann::ordered_json::parse(buf.begin(), buf.begin() + n, nullptr, false);
    if (j.is_discarded()) {
        return error{fmt::format("{}: the reply is not JSON", _path)};
    }
    return j;
}

result<nlohmann::ordered_json> telemetry_client::query(std::string_view command) {
    if (command.empty() || command.front() != '/') {
        return error{fmt::format("telemetry command '{}' must start with '/'", command)};
    }
    ssize_t n = -1;
    do {
        n = ::send(_fd, command.data(), command.size(), MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return error{fmt::format("{}: send {}: {}", _path, command, std::strerror(errno))};
    }
    auto reply = receive();
    if (!reply) {
        return reply;
    }
    auto& r = *reply;
    const std::string key(command);
    if (!r.is_object() || !r.contains(key)) {
        return error{fmt::format("{}: unexpected reply to {}: {}", _path, command, r.dump())};
    }
    if (r[key].is_null()) {
        return error{fmt::format("{} (process {}) does not answer {}: is it ptpsec-dataplane, and still starting?",
                                 _path, _pid, command)};
    }
    return nlohmann::ordered_json(std::move(r[key]));
}

} // namespace ptpsec
