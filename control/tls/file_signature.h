#pragma once

// What identifies the content of a file without reading it (device, inode,
// size, modification time): the server's certificate watch and the
// client's rule for offering a session both compare these.

#include <sys/stat.h>

#include <cstdint>
#include <string>

namespace ptpsec::tls::detail {

struct file_signature {
    bool exists = false;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const file_signature&) const = default;
};

/// The signature of the file at `path`; `exists` false when there is none
/// (or the path is empty).
inline file_signature signature_of(const std::string& path) {
    struct stat st {};
    if (path.empty() || ::stat(path.c_str(), &st) != 0) {
        return {};
    }
    return {true, st.st_dev, st.st_ino, st.st_size, int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec};
}

} // namespace ptpsec::tls::detail
