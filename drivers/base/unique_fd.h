#pragma once

// A file descriptor closed on every exit path (RAII), movable, never copied.

#include <unistd.h>

#include <utility>

namespace ptpsec {

class unique_fd {
public:
    unique_fd() noexcept = default;
    explicit unique_fd(int fd) noexcept : _fd(fd) {}
    unique_fd(unique_fd&& o) noexcept : _fd(o.release()) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        if (this != &o) {
            reset(o.release());
        }
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    int get() const noexcept { return _fd; }
    explicit operator bool() const noexcept { return _fd >= 0; }
    /// Gives the descriptor up without closing it.
    int release() noexcept { return std::exchange(_fd, -1); }
    /// Closes the one held (if any) and holds `fd`.
    void reset(int fd = -1) noexcept {
        if (_fd >= 0) {
            ::close(_fd);
        }
        _fd = fd;
    }
    /// Closes now and says whether close(2) failed, for a written file
    /// (NFS reports write errors at close).
    int close() noexcept { return _fd >= 0 ? ::close(std::exchange(_fd, -1)) : 0; }

private:
    int _fd = -1;
};

} // namespace ptpsec
