#pragma once

// A whole file read into memory with read(2), for code off the fast path.

#include <drivers/base/result.h>
#include <drivers/base/unique_fd.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace ptpsec {

/// Every octet of the file at `path`. The error says "cannot open PATH:
/// REASON" or "cannot read PATH: REASON"; callers put what the file is in
/// front of it.
inline result<std::vector<uint8_t>> read_whole_file(const std::string& path) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return error{fmt::format("cannot open {}: {}", path, std::strerror(errno))};
    }
    std::vector<uint8_t> out;
    std::array<uint8_t, 65536> buf{};
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return error{fmt::format("cannot read {}: {}", path, std::strerror(errno))};
        }
        if (n == 0) {
            return out;
        }
        out.insert(out.end(), buf.begin(), buf.begin() + n);
    }
}

} // namespace ptpsec
