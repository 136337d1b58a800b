#pragma once

// Running our programs from tests: a temporary directory that is removed
// whatever happens, and a child process whose output goes to files and
// which is killed (by PID) if it outlives its time limit or the test.

#include <fmt/format.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ; // NOLINT(readability-redundant-declaration)

namespace ptpsec::test {

/// A directory under $TMPDIR (or /tmp), removed with everything in it when
/// the test ends, whichever way it ends.
class temp_dir {
public:
    temp_dir() {
        const char* base = std::getenv("TMPDIR");
        std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/ptpsec-test-XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        _path = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(_path, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    temp_dir(temp_dir&&) = delete;
    temp_dir& operator=(temp_dir&&) = delete;

    std::string file(std::string_view name) const { return (_path / name).string(); }
    const std::filesystem::path& path() const noexcept { return _path; }

private:
    std::filesystem::path _path;
};

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_file(const std::string& path, std::string_view text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
}

class spawn_actions {
public:
    spawn_actions() { ::posix_spawn_file_actions_init(&_fa); }
    ~spawn_actions() { ::posix_spawn_file_actions_destroy(&_fa); }
    spawn_actions(const spawn_actions&) = delete;
    spawn_actions& operator=(const spawn_actions&) = delete;
    spawn_actions(spawn_actions&&) = delete;
    spawn_actions& operator=(spawn_actions&&) = delete;
    posix_spawn_file_actions_t* get() noexcept { return &_fa; }

private:
    posix_spawn_file_actions_t _fa;
};

struct run_result {
    int exit_code = -1; ///< -1: did not exit normally (signal)
    bool timed_out = false;
    std::string out;
    std::string err;
};

/// The path of one of our programs, from the environment variable meson
/// test sets (PTPSECCTL, PTPSEC_DATAPLANE).
inline std::string program_from_env(const char* var) {
    const char* exe = std::getenv(var);
    if (exe == nullptr) {
        throw std::runtime_error(fmt::format("{} is not set (run the tests with meson test)", var));
    }
    return exe;
}

/// Runs `exe` with `args`; stdout and stderr go to files in `dir` (no
/// pipes, so neither can fill up and stall the child). A child still
/// running after `limit` gets SIGTERM, then SIGKILL a second later; the
/// result says so.
inline run_result run_program(const temp_dir& dir, const std::string& exe, const std::vector<std::string>& args,
                              std::chrono::milliseconds limit = std::chrono::minutes(2)) {
    static int runs = 0;
    ++runs;
    const std::string out_path = dir.file(fmt::format("stdout.{}", runs));
    const std::string err_path = dir.file(fmt::format("stderr.{}", runs));
    spawn_actions fa;
    ::posix_spawn_file_actions_addopen(fa.get(), STDOUT_FILENO, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::posix_spawn_file_actions_addopen(fa.get(), STDERR_FILENO, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<std::string> argv_store;
    argv_store.push_back(exe);
    argv_store.insert(argv_store.end(), args.begin(), args.end());
    std::vector<char*> argv;
    argv.reserve(argv_store.size() + 1);
    for (auto& a : argv_store) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (const int rc = ::posix_spawn(&pid, exe.c_str(), fa.get(), nullptr, argv.data(), environ); rc != 0) {
        throw std::runtime_error(fmt::format("posix_spawn {}: {}", exe, std::strerror(rc)));
    }
    run_result r;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    bool terminated = false;
    int ws = 0;
    for (;;) {
        const pid_t got = ::waitpid(pid, &ws, WNOHANG);
        if (got == pid) {
            break;
        }
        if (got < 0 && errno != EINTR) {
            ::kill(pid, SIGKILL);
            throw std::runtime_error("waitpid failed");
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline && !terminated) {
            r.timed_out = true;
            ::kill(pid, SIGTERM);
            terminated = true;
        } else if (now >= deadline + std::chrono::seconds(1)) {
            ::kill(pid, SIGKILL);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    r.exit_code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    r.out = read_file(out_path);
    r.err = read_file(err_path);
    return r;
}

} // namespace ptpsec::test
