#pragma once

// A private PostgreSQL cluster for tests: initdb into a temporary directory
// (as the postgres system user when the tests run as root, since initdb
// refuses root), the server listening only on a Unix socket in that
// directory (listen_addresses '', so no TCP port at all), stopped with
// pg_ctl and removed when the object goes. A guard process started beside
// it stops the server and removes the directory if the test process dies
// without running destructors (an abort, a sanitizer report).

#include "../process.h"

#include <fmt/format.h>

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

namespace ptpsec::test {

class postgres_cluster {
public:
    /// The directory of PostgreSQL's programs, or empty when none is installed.
    static std::string bin_dir() {
        const std::filesystem::path root("/usr/lib/postgresql");
        std::error_code ec;
        if (std::filesystem::exists(root / "15" / "bin" / "initdb", ec)) {
            return (root / "15" / "bin").string();
        }
        std::string best;
        for (const auto& e : std::filesystem::directory_iterator(root, ec)) {
            if (std::filesystem::exists(e.path() / "bin" / "initdb", ec)) {
                best = std::max(best, (e.path() / "bin").string());
            }
        }
        return best;
    }
    static bool available() { return !bin_dir().empty() && (::geteuid() != 0 || ::getpwnam("postgres") != nullptr); }

    /// `durable`: the server fsyncs as in production (benchmarks); tests
    /// run with fsync off.
    explicit postgres_cluster(bool durable = false) : _bin(bin_dir()) {
        if (_bin.empty()) {
            throw std::runtime_error("PostgreSQL is not installed (Debian postgresql)");
        }
        _data = _dir.file("data");
        _socket_dir = _dir.path().string();
        // The socket's name carries the port; the directory is private,
        // so any number will do. Vary it anyway.
        _port = 20000 + static_cast<int>(::getpid() % 20000);
        if (::geteuid() == 0) {
            const passwd* pw = ::getpwnam("postgres");
            if (pw == nullptr) {
                throw std::runtime_error("no postgres system user");
            }
            _uid = pw->pw_uid;
            _gid = pw->pw_gid;
            if (::chown(_socket_dir.c_str(), _uid, _gid) != 0) {
                throw std::runtime_error("cannot hand the cluster directory to postgres");
            }
        }
        run_checked({_bin + "/initdb", "-D", _data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"});
        run_checked(
            {_bin + "/pg_ctl", "-D", _data, "-l", _dir.file("server.log"), "-w", "-t", "30", "-o",
             fmt::format("-k {} -p {} -c listen_addresses='' -c fsync={}", _socket_dir, _port, durable ? "on" : "off"),
             "start"});
        _started = true;
        start_guard();
    }

    ~postgres_cluster() {
        if (_started) {
            try {
                run_as_owner({_bin + "/pg_ctl", "-D", _data, "-m", "immediate", "-w", "-t", "30", "stop"});
            } catch (...) {
                // The guard below still stops it.
            }
        }
        if (_guard > 0) {
            ::kill(_guard, SIGKILL);
            int ws = 0;
            ::waitpid(_guard, &ws, 0);
        }
        if (_started) {
            // If pg_ctl failed, the server's PID is in postmaster.pid.
            const std::string pid_file = read_file(_data + "/postmaster.pid");
            if (!pid_file.empty()) {
                const pid_t pid = static_cast<pid_t>(std::atoi(pid_file.c_str()));
                if (pid > 0) {
                    ::kill(pid, SIGQUIT);
                }
            }
        }
    }
    postgres_cluster(const postgres_cluster&) = delete;
    postgres_cluster& operator=(const postgres_cluster&) = delete;
    postgres_cluster(postgres_cluster&&) = delete;
    postgres_cluster& operator=(postgres_cluster&&) = delete;

    /// A libpq connection string for database `db`.
    std::string conninfo(const std::string& db = "postgres") const {
        return fmt::format("host={} port={} dbname={} user=postgres", _socket_dir, _port, db);
    }

private:
    /// argv run as the cluster's owner, to its end.
    run_result run_as_owner(std::vector<std::string> argv) {
        std::vector<std::string> args;
        std::string exe = argv.front();
        if (::geteuid() == 0) {
            args = {"-u", "postgres", "--"};
            args.insert(args.end(), argv.begin(), argv.end());
            exe = "/usr/sbin/runuser";
            if (::access(exe.c_str(), X_OK) != 0) {
                exe = "/sbin/runuser";
            }
        } else {
            args.assign(argv.begin() + 1, argv.end());
        }
        return run_program(_logs, exe, args, std::chrono::seconds(60));
    }

    void run_checked(std::vector<std::string> argv) {
        const std::string what = argv.front();
        const run_result r = run_as_owner(std::move(argv));
        if (r.timed_out || r.exit_code != 0) {
            throw std::runtime_error(fmt::format("{} failed ({}): {}{}{}", what,
                                                 r.timed_out ? "timed out" : fmt::format("exit {}", r.exit_code), r.out,
                                                 r.err, read_file(_dir.file("server.log"))));
        }
    }

    /// A shell that waits for this process to end, then stops the server
    /// and removes the directory: the clean-up of last resort.
    void start_guard() {
        const std::string stop =
            ::geteuid() == 0 ? fmt::format("runuser -u postgres -- {}/pg_ctl -D {} -m immediate stop", _bin, _data)
                             : fmt::format("{}/pg_ctl -D {} -m immediate stop", _bin, _data);
        const std::string script =
            fmt::format("while kill -0 {} 2>/dev/null; do sleep 0.2; done; {} >/dev/null 2>&1; rm -rf '{}'", ::getpid(),
                        stop, _dir.path().string());
        _guard = spawn_program("/bin/sh", {"-c", script}, "/dev/null", "/dev/null");
    }

    temp_dir _logs;
    temp_dir _dir;
    std::string _bin;
    std::string _data;
    std::string _socket_dir;
    int _port = 0;
    uid_t _uid = 0;
    gid_t _gid = 0;
    bool _started = false;
    pid_t _guard = -1;
};

} // namespace ptpsec::test
