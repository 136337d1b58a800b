#pragma once

// Running our programs from tests: a temporary directory that is removed
// whatever happens, and a child process whose output goes to files and
// which is killed (by PID) if it outlives its time limit or the test, run
// to its end (run_program) or left running while the test talks to it
// (background_program). A background program that ends with a failed test
// leaves the end of its output in the test log.

#include <fmt/format.h>
#include <gtest/gtest.h>

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
#include <map>
#include <optional>
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

/// The names of a process's threads (/proc/PID/task/TID/comm), by thread
/// id; a thread that ends while they are read is left out.
inline std::map<std::string, std::string> thread_names(pid_t pid) {
    std::map<std::string, std::string> names;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
        std::ifstream comm(task.path() / "comm");
        std::string name;
        if (std::getline(comm, name)) {
            names.emplace(task.path().filename().string(), std::move(name));
        }
    }
    return names;
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

/// Starts `exe` with `args`, its stdout and stderr going to the files
/// `out_path` and `err_path`, and its stdin read from `in_path` (inherited
/// when empty). Returns its PID.
inline pid_t spawn_program(const std::string& exe, const std::vector<std::string>& args, const std::string& out_path,
                           const std::string& err_path, const std::string& in_path = {}) {
    spawn_actions fa;
    if (!in_path.empty()) {
        ::posix_spawn_file_actions_addopen(fa.get(), STDIN_FILENO, in_path.c_str(), O_RDONLY, 0);
    }
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
    return pid;
}

/// Waits for `pid` to end. A child still running after `limit` gets
/// `first` (SIGTERM unless told), then SIGKILL a second later; `timed_out`
/// says whether the limit was reached. Returns the exit code, -1 when it
/// ended by a signal.
inline int wait_program(pid_t pid, std::chrono::milliseconds limit, bool& timed_out, int first = SIGTERM) {
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
            timed_out = true;
            ::kill(pid, first);
            terminated = true;
        } else if (now >= deadline + std::chrono::seconds(1)) {
            ::kill(pid, SIGKILL);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/// Runs `exe` with `args`; stdout and stderr go to files in `dir` (no
/// pipes, so neither can fill up and stall the child). A child still
/// running after `limit` gets SIGTERM, then SIGKILL a second later; the
/// result says so. With `input`, stdin comes from a file holding it.
inline run_result run_program(const temp_dir& dir, const std::string& exe, const std::vector<std::string>& args,
                              std::chrono::milliseconds limit = std::chrono::minutes(2),
                              const std::optional<std::string>& input = std::nullopt) {
    static int runs = 0;
    ++runs;
    const std::string out_path = dir.file(fmt::format("stdout.{}", runs));
    const std::string err_path = dir.file(fmt::format("stderr.{}", runs));
    std::string in_path;
    if (input) {
        in_path = dir.file(fmt::format("stdin.{}", runs));
        write_file(in_path, *input);
    }
    const pid_t pid = spawn_program(exe, args, out_path, err_path, in_path);
    run_result r;
    r.exit_code = wait_program(pid, limit, r.timed_out);
    r.out = read_file(out_path);
    r.err = read_file(err_path);
    return r;
}

/// A program left running while the test talks to it, its output going to
/// files in `dir`. Whichever way the test ends, the destructor stops it by
/// PID (SIGINT, then SIGKILL if it is still there after the grace time) and
/// reaps it.
class background_program {
public:
    background_program(const temp_dir& dir, const std::string& exe, const std::vector<std::string>& args,
                       std::chrono::milliseconds grace = std::chrono::seconds(10))
        : _exe(std::filesystem::path(exe).filename().string()), _grace(grace) {
        static int runs = 0;
        ++runs;
        _out_path = dir.file(fmt::format("background.{}.stdout", runs));
        _err_path = dir.file(fmt::format("background.{}.stderr", runs));
        _pid = spawn_program(exe, args, _out_path, _err_path);
    }
    ~background_program() {
        try {
            stop();
        } catch (...) {
            // waitpid failed: the child was killed and cannot be reaped.
        }
        if (testing::Test::HasFailure()) {
            constexpr size_t tail = 4096;
            for (const auto& [what, text] : {std::pair{"stdout", out()}, std::pair{"stderr", err()}}) {
                if (!text.empty()) {
                    fmt::print(stderr, "--- {} (pid {}, exit {}) {}, last {} octets:\n{}\n", _exe, _pid, _exit_code,
                               what, tail, text.size() > tail ? text.substr(text.size() - tail) : text);
                }
            }
        }
    }
    background_program(const background_program&) = delete;
    background_program& operator=(const background_program&) = delete;
    background_program(background_program&&) = delete;
    background_program& operator=(background_program&&) = delete;

    pid_t pid() const noexcept { return _pid; }

    /// Whether it still runs; reaps it (keeping its exit code) if it ended.
    bool running() {
        if (_stopped) {
            return false;
        }
        int ws = 0;
        const pid_t got = ::waitpid(_pid, &ws, WNOHANG);
        if (got == _pid) {
            _stopped = true;
            _exit_code = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
            return false;
        }
        return true;
    }

    /// Sends SIGINT (the program's clean stop; or `sig`) and waits; SIGKILL
    /// after the grace time. Returns the exit code, -1 if it ended by a
    /// signal. Further calls return the same.
    int stop(int sig = SIGINT) {
        if (running()) {
            ::kill(_pid, sig);
            bool killed = false;
            _exit_code = wait_program(_pid, _grace, killed, SIGKILL);
            _stopped = true;
        }
        return _exit_code;
    }

    std::string out() const { return read_file(_out_path); }
    std::string err() const { return read_file(_err_path); }

private:
    std::string _exe;
    pid_t _pid = -1;
    std::chrono::milliseconds _grace;
    std::string _out_path;
    std::string _err_path;
    bool _stopped = false;
    int _exit_code = -1;
};

} // namespace ptpsec::test
