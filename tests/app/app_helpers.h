#pragma once

// What the tests of running programs share: EAL's runtime directory of a
// file prefix, removed when the test is done with it; a pcap stream into a
// FIFO, for frames that must arrive while a data plane runs; the data
// plane's shared-memory segments removed; waiting for a condition; the
// command line of a data plane under test.

#include "../pcap_files.h"

#include <control/telemetry_client.h>
#include <dataplane/exception_channel.h>
#include <dataplane/ptp/frame.h>
#include <dataplane/ptp/message.h>
#include <dataplane/sa_channel.h>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <pcap/pcap.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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

/// A pcap stream into a FIFO that net_pcap reads as its rx_pcap: frames
/// written while the data plane runs arrive then, and close() ends the
/// stream, after which the port receives nothing (and the data plane can
/// stop: a read of the FIFO waits until then).
class pcap_fifo {
public:
    explicit pcap_fifo(std::string path) : _path(std::move(path)) {
        if (::mkfifo(_path.c_str(), 0600) != 0) {
            throw std::runtime_error("mkfifo " + _path);
        }
        // Opened for reading and writing, so that neither this open nor the
        // data plane's waits for the other side.
        const int fd = ::open(_path.c_str(), O_RDWR | O_CLOEXEC);
        FILE* f = fd < 0 ? nullptr : ::fdopen(fd, "w");
        if (f == nullptr) {
            if (fd >= 0) {
                ::close(fd);
            }
            throw std::runtime_error("open " + _path);
        }
        _dead.reset(pcap_open_dead(DLT_EN10MB, 65535));
        _dumper.reset(pcap_dump_fopen(_dead.get(), f));
        if (!_dumper) {
            std::fclose(f);
            throw std::runtime_error(pcap_geterr(_dead.get()));
        }
        (void)pcap_dump_flush(_dumper.get()); // the file header: the data plane's open reads it
    }
    ~pcap_fifo() {
        close();
        ::unlink(_path.c_str());
    }
    pcap_fifo(const pcap_fifo&) = delete;
    pcap_fifo& operator=(const pcap_fifo&) = delete;
    pcap_fifo(pcap_fifo&&) = delete;
    pcap_fifo& operator=(pcap_fifo&&) = delete;

    const std::string& path() const noexcept { return _path; }

    void write(const std::vector<uint8_t>& frame) {
        pcap_pkthdr h{};
        h.caplen = h.len = static_cast<uint32_t>(frame.size());
        pcap_dump(reinterpret_cast<u_char*>(_dumper.get()), &h, frame.data());
        (void)pcap_dump_flush(_dumper.get());
    }

    void close() { _dumper.reset(); }

private:
    std::string _path;
    pcap_ptr _dead;
    dumper_ptr _dumper;
};

/// Closes the FIFO when it goes: declared after the data plane, it goes
/// first, so that a test that fails early still stops the data plane at once.
class close_on_exit {
public:
    explicit close_on_exit(pcap_fifo& fifo) : _fifo(fifo) {}
    ~close_on_exit() { _fifo.close(); }
    close_on_exit(const close_on_exit&) = delete;
    close_on_exit& operator=(const close_on_exit&) = delete;
    close_on_exit(close_on_exit&&) = delete;
    close_on_exit& operator=(close_on_exit&&) = delete;

private:
    pcap_fifo& _fifo;
};

/// Removes the data plane's shared-memory segments of a prefix when the
/// test ends, should the data plane not have (killed).
class shm_guard {
public:
    explicit shm_guard(std::string prefix) : _prefix(std::move(prefix)) {}
    ~shm_guard() {
        ::shm_unlink(sa_channel::segment_name(_prefix).c_str());
        ::shm_unlink(exception_channel::segment_name(_prefix).c_str());
    }
    shm_guard(const shm_guard&) = delete;
    shm_guard& operator=(const shm_guard&) = delete;
    shm_guard(shm_guard&&) = delete;
    shm_guard& operator=(shm_guard&&) = delete;

private:
    std::string _prefix;
};

/// A data plane's command line in these tests: EAL without hugepages (256
/// MB), PCI or a shared config, on `cores` (one argument: "-l0",
/// "--lcores=0@(0-1),1@(0-1)"), with its own file `prefix`, then `devices`
/// (the --vdev arguments, and any other EAL argument); then "--" and
/// `options`, ours.
inline std::vector<std::string> dataplane_command(const std::string& cores, const std::string& prefix,
                                                  const std::vector<std::string>& devices,
                                                  const std::vector<std::string>& options = {}) {
    std::vector<std::string> args = {
        "--no-huge", "-m", "256", "--no-pci", "--no-shconf", cores, "--file-prefix=" + prefix};
    args.insert(args.end(), devices.begin(), devices.end());
    args.emplace_back("--");
    args.insert(args.end(), options.begin(), options.end());
    return args;
}

/// Where a signed PTP frame's message and AUTHENTICATION TLV are; both 0
/// for a frame that is not PTP or carries no such TLV.
struct located {
    size_t ptp = 0;
    size_t auth = 0; ///< frame offset of the TLV
};

inline located locate(const std::vector<uint8_t>& frame) {
    ptp::frame_info fi;
    ptp::message_view mv;
    located l;
    if (ptp::classify_frame(frame.data(), frame.size(), fi) == ptp::error::none &&
        ptp::parse_message(frame.data() + fi.ptp_offset, fi.ptp_avail, mv) == ptp::error::none && mv.has_auth) {
        l.ptp = fi.ptp_offset;
        l.auth = fi.ptp_offset + mv.auth.offset;
    }
    return l;
}

inline testing::AssertionResult wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit,
                                           const std::string& what) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return testing::AssertionFailure() << "timed out waiting for " << what;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return testing::AssertionSuccess();
}

} // namespace ptpsec
