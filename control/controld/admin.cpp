#include <control/controld/admin.h>

#include <control/controld/admin_request.h>

#include <control/tls/openssl_support.h>
#include <drivers/base/thread_name.h>

#include <fmt/format.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>
#include <vector>

namespace ptpsec::controld::admin {

namespace {

using tls::detail::unique_fd;
using json = nlohmann::ordered_json;
using steady = std::chrono::steady_clock;

std::string errno_text(int e) {
    return std::system_category().message(e);
}

result<sockaddr_un> address_of(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(a.sun_path)) {
        return error{fmt::format("admin socket \"{}\": a Unix socket path has 1 to {} characters", path,
                                 sizeof(a.sun_path) - 1)};
    }
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
}

/// Makes the socket's directory and any missing parent, each mode 0700:
/// whoever can enter it could otherwise race us for the name.
status make_directory_for(const std::string& path) {
    std::vector<std::filesystem::path> missing;
    std::error_code ec;
    for (auto dir = std::filesystem::path(path).parent_path(); !dir.empty() && !std::filesystem::exists(dir, ec);
         dir = dir.parent_path()) {
        missing.push_back(dir);
        if (dir == dir.parent_path()) {
            break;
        }
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        if (::mkdir(it->c_str(), 0700) != 0 && errno != EEXIST) {
            return error{fmt::format("admin socket {}: cannot make the directory {}: {}", path, it->string(),
                                     errno_text(errno))};
        }
    }
    return ok_status();
}

/// A file already at `path`: stale (removed), or a reason to stop.
status clear_stale(const std::string& path, const sockaddr_un& addr) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) {
            return ok_status();
        }
        return error{fmt::format("admin socket {}: {}", path, errno_text(errno))};
    }
    if (!S_ISSOCK(st.st_mode)) {
        return error{fmt::format("admin socket {}: the file exists and is not a socket; remove it, or set [admin] "
                                 "socket to another path",
                                 path)};
    }
    // Non-blocking, so that a daemon whose backlog is full is seen as live
    // (EAGAIN) rather than waited for.
    const unique_fd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!probe) {
        return error{fmt::format("admin socket {}: socket: {}", path, errno_text(errno))};
    }
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 || errno == EAGAIN ||
        errno == EINPROGRESS) {
        return error{fmt::format("admin socket {}: another ptpsec-controld answers there; stop it first, or give this "
                                 "one its own [admin] socket",
                                 path)};
    }
    if (errno != ECONNREFUSED) {
        return error{
            fmt::format("admin socket {}: cannot tell whether a daemon answers there: {}", path, errno_text(errno))};
    }
    // Nothing listens: left behind by a daemon that did not exit cleanly.
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        return error{fmt::format("admin socket {}: cannot remove the stale socket: {}", path, errno_text(errno))};
    }
    return ok_status();
}

/// Milliseconds left until `deadline`, for poll(); 0 once it has passed.
int ms_until(steady::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
    return static_cast<int>(std::clamp<int64_t>(left + 1, 0, std::numeric_limits<int>::max()));
}

json error_reply(std::string message) {
    return json{{"error", std::move(message)}};
}

} // namespace

result<std::unique_ptr<server>> server::open(const std::string& path) {
    auto addr = address_of(path);
    if (!addr) {
        return addr.err();
    }
    if (auto st = make_directory_for(path); !st) {
        return st.err();
    }
    if (auto st = clear_stale(path, *addr); !st) {
        return st.err();
    }
    unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        return error{fmt::format("admin socket {}: socket: {}", path, errno_text(errno))};
    }
    // bind() makes the file with the umask's mode: 0600 from the start, not
    // after a window in which others could connect.
    const mode_t old_mask = ::umask(0177);
    const int bound = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
    const int bind_errno = errno;
    ::umask(old_mask);
    if (bound != 0) {
        return error{fmt::format("admin socket {}: bind: {}", path, errno_text(bind_errno))};
    }
    struct stat st {};
    if (::chmod(path.c_str(), 0600) != 0 || ::stat(path.c_str(), &st) != 0) {
        const int e = errno;
        ::unlink(path.c_str());
        return error{fmt::format("admin socket {}: {}", path, errno_text(e))};
    }
    if (::listen(fd.get(), 8) != 0) {
        const int e = errno;
        ::unlink(path.c_str());
        return error{fmt::format("admin socket {}: listen: {}", path, errno_text(e))};
    }
    unique_fd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake) {
        const int e = errno;
        ::unlink(path.c_str());
        return error{fmt::format("admin socket {}: eventfd: {}", path, errno_text(e))};
    }
    return std::unique_ptr<server>(new server(path, fd.release(), wake.release(), st.st_dev, st.st_ino));
}

void server::start(handler on_command) {
    if (_thread.joinable()) {
        return;
    }
    _on_command = std::move(on_command);
    _thread = std::thread([this] { loop(); });
    name_thread(_thread, "ctld-admin");
}

server::~server() {
    if (_thread.joinable()) {
        const uint64_t one = 1;
        (void)!::write(_wake_fd, &one, sizeof(one));
        _thread.join();
    }
    ::close(_listen_fd);
    ::close(_wake_fd);
    // Only our own file: a daemon started after us with the same path may
    // have replaced it (it found ours stale, or we were stopping).
    struct stat st {};
    if (::lstat(_path.c_str(), &st) == 0 && st.st_dev == _dev && st.st_ino == _ino) {
        ::unlink(_path.c_str());
    }
}

counters server::stats() const noexcept {
    return counters{_answered.load(std::memory_order_relaxed), _refused.load(std::memory_order_relaxed),
                    _timeouts.load(std::memory_order_relaxed)};
}

void server::loop() {
    for (;;) {
        std::array<pollfd, 2> p{pollfd{_listen_fd, POLLIN, 0}, pollfd{_wake_fd, POLLIN, 0}};
        if (::poll(p.data(), p.size(), -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return;
        }
        if (p[1].revents != 0) {
            return;
        }
        if ((p[0].revents & POLLIN) == 0) {
            continue;
        }
        const unique_fd conn(::accept4(_listen_fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!conn) {
            continue;
        }
        try {
            serve_one(conn.get());
        } catch (const std::exception&) {
            // Out of memory for one request: that client gets no reply; the
            // interface goes on.
        }
    }
}

void server::serve_one(int fd) {
    const auto deadline = steady::now() + request_timeout;
    std::string line;
    std::array<char, 1024> buf{};
    for (;;) {
        if (const size_t nl = line.find('\n'); nl != std::string::npos && nl < max_request_size) {
            line.resize(nl);
            break;
        }
        if (line.size() >= max_request_size) {
            _refused.fetch_add(1, std::memory_order_relaxed);
            (void)send_line(fd,
                            error_reply(fmt::format("a request is one line of at most {} octets", max_request_size)),
                            steady::now() + request_timeout);
            return;
        }
        std::array<pollfd, 2> p{pollfd{fd, POLLIN, 0}, pollfd{_wake_fd, POLLIN, 0}};
        const int ready = ::poll(p.data(), p.size(), ms_until(deadline));
        if (ready < 0 && errno == EINTR) {
            continue;
        }
        if (p[1].revents != 0) {
            return; // stopping
        }
        if (ready <= 0) {
            _timeouts.fetch_add(1, std::memory_order_relaxed);
            (void)send_line(fd,
                            error_reply(fmt::format("no complete request line within {} ms",
                                                    std::chrono::milliseconds(request_timeout).count())),
                            steady::now() + request_timeout);
            return;
        }
        const size_t room = max_request_size - line.size();
        const ssize_t n = ::recv(fd, buf.data(), std::min(buf.size(), room), 0);
        if (n > 0) {
            line.append(buf.data(), static_cast<size_t>(n));
        } else if (n == 0) {
            if (line.empty()) {
                return; // closed without asking: a daemon checking whether we are alive
            }
            break; // the client half-closed: what came is the request
        } else if (errno != EAGAIN && errno != EINTR) {
            return;
        }
    }
    const auto request = parse_request(line);
    if (!request) {
        _refused.fetch_add(1, std::memory_order_relaxed);
        (void)send_line(fd, error_reply(request.message()), steady::now() + request_timeout);
        return;
    }
    json reply;
    try {
        reply = _on_command(request->command, request->object);
    } catch (const std::exception& e) {
        reply = error_reply(fmt::format("internal error: {}", e.what()));
    }
    // Counted before it goes, like a refusal: a client that has read the
    // reply sees it counted.
    _answered.fetch_add(1, std::memory_order_relaxed);
    (void)send_line(fd, reply, steady::now() + request_timeout);
}

bool server::send_line(int fd, const json& reply, steady::time_point deadline) {
    std::string out = reply.dump(-1, ' ', false, json::error_handler_t::replace);
    out += '\n';
    size_t sent = 0;
    while (sent < out.size()) {
        const ssize_t n = ::send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno != EAGAIN) {
            return false;
        }
        std::array<pollfd, 2> p{pollfd{fd, POLLOUT, 0}, pollfd{_wake_fd, POLLIN, 0}};
        const int ready = ::poll(p.data(), p.size(), ms_until(deadline));
        if (p[1].revents != 0) {
            return false;
        }
        if (ready == 0) {
            _timeouts.fetch_add(1, std::memory_order_relaxed);
            return false;
        }
    }
    return true;
}

} // namespace ptpsec::controld::admin
