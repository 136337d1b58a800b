#pragma once

// What the tests of running programs share: EAL's runtime directory of a
// file prefix, removed when the test is done with it.

#include <control/telemetry_client.h>

#include <filesystem>
#include <string>

namespace ptpsec {

/// The EAL runtime directory of a file prefix (where the telemetry socket
/// is), removed when it goes. Declare it before the program that uses it, so
/// that it goes after the program stopped.
class runtime_dir_guard {
public:
    explicit runtime_dir_guard(const std::string& prefix)
        : _path(std::filesystem::path(telemetry_socket_path(prefix)).parent_path()) {}
    ~runtime_dir_guard() {
        std::error_code ec;
        std::filesystem::remove_all(_path, ec);
    }
    runtime_dir_guard(const runtime_dir_guard&) = delete;
    runtime_dir_guard& operator=(const runtime_dir_guard&) = delete;
    runtime_dir_guard(runtime_dir_guard&&) = delete;
    runtime_dir_guard& operator=(runtime_dir_guard&&) = delete;

    const std::filesystem::path& path() const noexcept { return _path; }

private:
    std::filesystem::path _path;
};

} // namespace ptpsec
