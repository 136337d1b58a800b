#pragma once

// ptpsec-controld's admin interface: a Unix stream socket on which the
// daemon answers what it is doing (`ptpsecctl status`, `ptpsecctl groups`).
// This header is the protocol both sides include; the daemon assembles the
// answers (main.cpp), this server only carries them.
//
// Protocol: one request per connection. The client connects, sends one JSON
// line ({"command":"status"}\n), reads one JSON line back and the server
// closes. A reply is either the command's object or {"error":"..."} with a
// message for the operator. Key bytes never appear in a reply.
//
// Limits, so that a stuck or hostile client cannot hold the interface (one
// connection is served at a time):
//   - a request line longer than max_request_size octets (newline
//     included) is answered with an error as soon as that many have come;
//   - the whole request must arrive within request_timeout of the accept,
//     not extended by arriving octets (a trickling client is cut off);
//   - writing the reply gets the same time; a client that does not read
//     loses it.
//
// The socket file: its directory is made (mode 0700) if missing; the socket
// is mode 0600, so only the daemon's user (root) can ask. A socket file left
// by a daemon that died (connecting is refused) is replaced; one on which a
// daemon still answers makes open() fail, as does a path that is not a
// socket. The file is removed when the server is destroyed, unless another
// process has replaced it meanwhile. Two daemons started at the same instant
// on one path can both find it stale; the later bind wins the name.

#include <drivers/base/result.h>

#include <nlohmann/json.hpp>

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

namespace ptpsec::controld::admin {

/// Where the daemon listens unless its configuration says otherwise
/// ([admin] socket), and where ptpsecctl looks.
inline constexpr std::string_view default_socket = "/run/ptpsec/controld.sock";
/// The longest request line, newline included.
inline constexpr size_t max_request_size = 4096;
/// From accept() to the request's newline; and again for writing the reply.
inline constexpr std::chrono::milliseconds request_timeout{1000};

/// Answers one command ("status", "groups", ...), on the admin thread, with
/// the whole request object for the command's arguments ({"command":
/// "revoke", "grantor": "..."}). Returns the reply object; {"error": "..."}
/// for a command it does not know. An exception it throws becomes an error
/// reply.
using handler = std::function<nlohmann::ordered_json(const std::string& command, const nlohmann::json& request)>;

/// Requests since open(); any thread.
struct counters {
    uint64_t answered = 0; ///< a command reached the handler and its reply was made (then sent)
    /// Not JSON, no "command", longer than max_request_size. A connection
    /// closed without a word (another daemon checking whether this one is
    /// alive) is not counted.
    uint64_t refused = 0;
    uint64_t timeouts = 0; ///< no complete request, or the reply not taken, within request_timeout
};

class server {
public:
    /// Makes the directory, replaces a stale socket file, binds and listens
    /// at `path`; refuses (with what to do) a path on which a daemon still
    /// answers. Nothing is served until start(). Call it before the daemon
    /// starts other threads: it changes the process umask around bind().
    static result<std::unique_ptr<server>> open(const std::string& path);

    /// Serves on a thread of its own until the server is destroyed. Once.
    void start(handler on_command);

    /// Stops and joins the thread, closes the socket and removes its file
    /// (if it is still the one bound by open()).
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;
    server(server&&) = delete;
    server& operator=(server&&) = delete;

    const std::string& path() const noexcept { return _path; }
    counters stats() const noexcept;

private:
    server(std::string path, int listen_fd, int wake_fd, dev_t dev, ino_t ino) noexcept
        : _path(std::move(path)), _listen_fd(listen_fd), _wake_fd(wake_fd), _dev(dev), _ino(ino) {}

    void loop();
    void serve_one(int fd);
    /// Writes `reply` and a newline by `deadline`; false if it could not.
    bool send_line(int fd, const nlohmann::ordered_json& reply, std::chrono::steady_clock::time_point deadline);

    std::string _path;
    int _listen_fd = -1;
    int _wake_fd = -1; ///< eventfd: the destructor wakes the thread
    dev_t _dev = 0;    ///< the socket file bound by open(), to remove only that
    ino_t _ino = 0;
    handler _on_command;
    std::thread _thread;
    std::atomic<uint64_t> _answered{0};
    std::atomic<uint64_t> _refused{0};
    std::atomic<uint64_t> _timeouts{0};
};

} // namespace ptpsec::controld::admin
