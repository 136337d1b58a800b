#pragma once

// A whole file read into memory with read(2), for code off the fast path.

#include <drivers/base/result.h>
#include <drivers/base/unique_fd.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec {

namespace detail {

/// Appends what is left to read of `fd` to `out`, at most `max_octets` in
/// all: 0, or the errno of the read(2) that failed, or EFBIG past
/// `max_octets`.
inline int read_fd(int fd, std::vector<uint8_t>& out, size_t max_octets) {
    std::array<uint8_t, 65536> buf{};
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno;
        }
        if (n == 0) {
            return 0;
        }
        if (static_cast<size_t>(n) > max_octets - out.size()) {
            return EFBIG;
        }
        out.insert(out.end(), buf.begin(), buf.begin() + n);
    }
}

/// "WHAT PATH", or "PATH" when `what` is empty.
inline std::string file_named(std::string_view what, const std::string& path) {
    return fmt::format("{}{}{}", what, what.empty() ? "" : " ", path);
}

/// What a file that is not a regular one is, for messages.
inline std::string_view file_kind(mode_t mode) {
    if (S_ISCHR(mode)) {
        return "a character device";
    }
    if (S_ISBLK(mode)) {
        return "a block device";
    }
    if (S_ISFIFO(mode)) {
        return "a pipe";
    }
    if (S_ISSOCK(mode)) {
        return "a socket";
    }
    return "of another kind";
}

} // namespace detail

/// "WHAT PATH: cannot read it: REASON" ("PATH: ..." when `what` is empty),
/// the form of every message of ours about a file that cannot be read.
inline error cannot_read_file(std::string_view what, const std::string& path, int errno_value) {
    return error{fmt::format("{}: cannot read it: {}", detail::file_named(what, path), std::strerror(errno_value))};
}

/// Why a file of `mode` that is not a regular one is not read where a
/// regular one is read whole: "WHAT PATH: cannot read it: Is a directory",
/// as read(2) would say, or "WHAT PATH: not a regular file but a pipe, ...".
inline error not_regular_file(std::string_view what, const std::string& path, mode_t mode) {
    if (S_ISDIR(mode)) {
        return cannot_read_file(what, path, EISDIR);
    }
    return error{fmt::format("{}: not a regular file but {}, whose reading need not end (give a file: a copy of what "
                             "it gives)",
                             detail::file_named(what, path), detail::file_kind(mode))};
}

namespace detail {

/// `path` opened for reading, and a regular file, its size in `*size`; else
/// cannot_read_file or not_regular_file. What is not a regular file is
/// never opened: opening a device can do something (a watchdog arms),
/// opening a pipe waits for a writer.
inline result<unique_fd> open_regular(std::string_view what, const std::string& path, size_t* size) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return cannot_read_file(what, path, errno);
    }
    if (!S_ISREG(st.st_mode)) {
        return not_regular_file(what, path, st.st_mode);
    }
    // Replaced by something else since: O_NONBLOCK keeps a pipe from
    // holding the open, and fstat says what was opened.
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd || ::fstat(fd.get(), &st) != 0) {
        return cannot_read_file(what, path, errno);
    }
    if (!S_ISREG(st.st_mode)) {
        return not_regular_file(what, path, st.st_mode);
    }
    if (const int flags = ::fcntl(fd.get(), F_GETFL);
        flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
        return cannot_read_file(what, path, errno);
    }
    *size = static_cast<size_t>(st.st_size);
    return fd;
}

} // namespace detail

/// The most read_text_file reads: more is no file of settings or values.
inline constexpr size_t text_file_max = size_t{16} << 20;

/// Every octet of the file at `path`, at most `max_octets`, the error in the
/// form of our messages about a file an option or a setting names: "WHAT
/// PATH: cannot read it: REASON" ("PATH: ..." when `what` is empty), whether
/// it could not be opened or not read, and "WHAT PATH: more than N octets,
/// too large for this file" past `max_octets` (a device such as /dev/zero
/// included).
inline result<std::vector<uint8_t>> read_named_file(std::string_view what, const std::string& path,
                                                    size_t max_octets = SIZE_MAX) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    std::vector<uint8_t> out;
    const int e = !fd ? errno : detail::read_fd(fd.get(), out, max_octets);
    if (e == 0) {
        return out;
    }
    if (e == EFBIG && fd) {
        return error{fmt::format("{}: more than {} octets, too large for this file", detail::file_named(what, path),
                                 max_octets)};
    }
    return cannot_read_file(what, path, e);
}

/// As read_named_file, as text (a configuration or profile file), at most
/// text_file_max octets.
inline result<std::string> read_text_file(std::string_view what, const std::string& path) {
    PTPSEC_TRY(octets, read_named_file(what, path, text_file_max));
    return std::string(octets->begin(), octets->end());
}

/// Ok when `path` is a regular file this process can open for reading; the
/// errors of read_regular_file otherwise. A check before the work that
/// reads it (an evidence log named on the command line).
inline status check_regular_file(std::string_view what, const std::string& path) {
    size_t size = 0;
    PTPSEC_TRY(fd, detail::open_regular(what, path, &size));
    return ok_status();
}

/// Every octet of the regular file at `path` (an evidence log, read whole,
/// has no size limit of its own): a directory, a device such as /dev/zero
/// or a pipe, whose reading need not end, is refused before a byte is read,
/// in the form of read_named_file ("WHAT PATH: cannot read it: REASON",
/// "WHAT PATH: not a regular file but a pipe, ..."). The buffer is allocated
/// once, at the file's size.
inline result<std::vector<uint8_t>> read_regular_file(std::string_view what, const std::string& path) {
    size_t size = 0;
    PTPSEC_TRY(fd, detail::open_regular(what, path, &size));
    std::vector<uint8_t> out;
    int e = 0;
    try {
        out.reserve(size);
        e = detail::read_fd(fd->get(), out, SIZE_MAX);
    } catch (const std::bad_alloc&) {
        e = ENOMEM; // a file (a sparse one, say) larger than this process can hold
    }
    if (e != 0) {
        return cannot_read_file(what, path, e);
    }
    return out;
}

} // namespace ptpsec
