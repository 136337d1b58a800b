#pragma once

// A whole file read into memory with read(2), for code off the fast path.

#include <drivers/base/result.h>
#include <drivers/base/unique_fd.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec {

namespace detail {

/// Appends every octet of the file at `path` to `out`, at most `max_octets`.
/// 0, or the errno of the open(2) (`*opened` false) or read(2) (true) that
/// failed, or EFBIG past `max_octets`. Reading a directory fails with EISDIR,
/// where a std::ifstream opens it and then throws from its first read.
inline int read_all(const std::string& path, std::vector<uint8_t>& out, bool* opened, size_t max_octets) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    *opened = static_cast<bool>(fd);
    if (!fd) {
        return errno;
    }
    std::array<uint8_t, 65536> buf{};
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
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

} // namespace detail

/// Every octet of the file at `path`. The error says "cannot open PATH:
/// REASON" or "cannot read PATH: REASON"; callers put what the file is in
/// front of it.
inline result<std::vector<uint8_t>> read_whole_file(const std::string& path) {
    std::vector<uint8_t> out;
    bool opened = false;
    if (const int e = detail::read_all(path, out, &opened, SIZE_MAX); e != 0) {
        return error{fmt::format("cannot {} {}: {}", opened ? "read" : "open", path, std::strerror(e))};
    }
    return out;
}

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
    std::vector<uint8_t> out;
    bool opened = false;
    const int e = detail::read_all(path, out, &opened, max_octets);
    if (e == 0) {
        return out;
    }
    const std::string named = fmt::format("{}{}{}", what, what.empty() ? "" : " ", path);
    if (e == EFBIG && opened) {
        return error{fmt::format("{}: more than {} octets, too large for this file", named, max_octets)};
    }
    return error{fmt::format("{}: cannot read it: {}", named, std::strerror(e))};
}

/// As read_named_file, as text (a configuration or profile file), at most
/// text_file_max octets.
inline result<std::string> read_text_file(std::string_view what, const std::string& path) {
    PTPSEC_TRY(octets, read_named_file(what, path, text_file_max));
    return std::string(octets->begin(), octets->end());
}

} // namespace ptpsec
