// The clock sources of drivers/clock: the spec grammar, CLOCK_TAI, a Linux
// PHC and the ethdev timesync source.
//
// PHC: the tests use a real PHC when the machine has one or can make one: the
// first /dev/ptpN that opens, else the mock PHC of a netdevsim device
// created here (kernels since 6.7 give every netdevsim port one), else
// ptp_kvm. Whatever is created or loaded here is removed again when the
// suite ends, whether its tests passed or not; without any, those tests are
// skipped with the reason. The error paths (no such file, a character device
// that is not a PHC, not a character device) run everywhere.
//
// ethdev: EAL is initialised in this binary with two virtual ports,
// net_null0 and net_ring0. Neither PMD implements IEEE 1588 timesync, so
// opening either must fail with a message that names the port and -ENOTSUP,
// and the caller must be able to fall back. DPDK 22.11 refuses --in-memory
// together with --no-huge (--no-huge implies legacy memory), so EAL runs with
// --no-shconf, --no-telemetry and a file prefix of its own, which together
// leave nothing shared behind.

#include <drivers/clock/ethdev_clock.h>
#include <drivers/clock/phc_clock.h>
#include <drivers/clock/source.h>
#include <drivers/clock/system_clock.h>

#include "eal_session.h"

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/timex.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace ptpsec::clock {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

constexpr std::string_view grammar = "expected tai, phc:/dev/ptpN or ethdev:PORT";

uint64_t read_ns(clockid_t id) {
    timespec ts{};
    EXPECT_EQ(clock_gettime(id, &ts), 0) << std::strerror(errno);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

/// |a - b| for unsigned nanosecond values.
uint64_t distance(uint64_t a, uint64_t b) {
    return a > b ? a - b : b - a;
}

/// The message of a result that must have failed, or a test failure.
template <typename T>
std::string failure_of(const result<T>& r) {
    EXPECT_FALSE(r.ok()) << "expected an error";
    return r.ok() ? std::string() : r.message();
}

// ---------------------------------------------------------------------------
// The spec grammar.

TEST(clock_spec, an_unknown_source_is_refused_with_the_grammar) {
    for (const std::string_view spec : {"", "TAI", "system", "realtime", "phc", "ptp:/dev/ptp0", "ethdev", "tai:0"}) {
        SCOPED_TRACE(std::string(spec));
        const std::string msg = failure_of(open_clock(spec));
        EXPECT_NE(msg.find(grammar), std::string::npos) << msg;
        EXPECT_NE(msg.find("'" + std::string(spec) + "'"), std::string::npos) << msg;
    }
}

TEST(clock_spec, a_source_without_its_argument_is_refused) {
    EXPECT_NE(failure_of(open_clock("phc:")).find("no device path"), std::string::npos);
    EXPECT_NE(failure_of(open_clock("ethdev:")).find("no port given"), std::string::npos);
    const std::string big = failure_of(open_clock("ethdev:65536"));
    EXPECT_NE(big.find("ethdev:65536"), std::string::npos) << big;
    EXPECT_NE(big.find("out of range"), std::string::npos) << big;
}

TEST(clock_spec, blanks_around_a_spec_are_ignored) {
    auto c = open_clock("  tai\t");
    ASSERT_TRUE(c) << c.message();
    EXPECT_EQ((*c)->kind(), source_kind::system_tai);
}

TEST(clock_spec, kind_names_are_the_spec_prefixes) {
    EXPECT_EQ(kind_name(source_kind::system_tai), "tai");
    EXPECT_EQ(kind_name(source_kind::linux_phc), "phc");
    EXPECT_EQ(kind_name(source_kind::ethdev), "ethdev");
}

TEST(clock_spec, the_first_clock_that_opens_wins) {
    auto r = open_first_clock("phc:/nonexistent/ptp0, bogus ,tai,phc:/dev/null");
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->clock->kind(), source_kind::system_tai);
    ASSERT_EQ(r->skipped.size(), 2U);
    EXPECT_NE(r->skipped[0].find("phc:/nonexistent/ptp0"), std::string::npos) << r->skipped[0];
    EXPECT_NE(r->skipped[1].find("'bogus'"), std::string::npos) << r->skipped[1];
}

TEST(clock_spec, a_list_where_nothing_opens_gives_every_reason) {
    const std::string msg = failure_of(open_first_clock("phc:/nonexistent/ptp0,,phc:/dev/null"));
    EXPECT_NE(msg.find("phc:/nonexistent/ptp0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("empty entry"), std::string::npos) << msg;
    EXPECT_NE(msg.find("phc:/dev/null"), std::string::npos) << msg;
}

// ---------------------------------------------------------------------------
// CLOCK_TAI.

TEST(system_clock, reads_clock_tai) {
    auto c = open_clock("tai");
    ASSERT_TRUE(c) << c.message();
    const source& clk = **c;
    EXPECT_EQ(clk.kind(), source_kind::system_tai);
    EXPECT_TRUE(clk.name().starts_with("tai (CLOCK_TAI")) << clk.name();

    const uint64_t before = read_ns(CLOCK_TAI);
    const uint64_t t1 = clk.now_ns();
    const uint64_t t2 = clk.now_ns();
    const uint64_t after = read_ns(CLOCK_TAI);
    EXPECT_LE(before, t1);
    EXPECT_LE(t1, t2);
    EXPECT_LE(t2, after);
    EXPECT_EQ(clk.read_failures(), 0U);
}

TEST(system_clock, name_reports_the_kernel_tai_offset) {
    auto c = system_clock::open();
    ASSERT_TRUE(c) << c.message();
    timex tx{};
    ASSERT_GE(adjtimex(&tx), 0);
    EXPECT_EQ((*c)->tai_offset_s(), tx.tai);
    const std::string name((*c)->name());
    if (tx.tai == 0) {
        EXPECT_NE(name.find("not set"), std::string::npos) << name;
    } else {
        EXPECT_NE(name.find(std::to_string(tx.tai) + " s"), std::string::npos) << name;
    }
    // CLOCK_TAI is CLOCK_REALTIME plus that offset.
    const uint64_t realtime = read_ns(CLOCK_REALTIME);
    const uint64_t tai = (*c)->now_ns();
    const uint64_t offset_ns = static_cast<uint64_t>(tx.tai) * 1'000'000'000ULL;
    EXPECT_LT(distance(tai, realtime + offset_ns), 50'000'000U);
}

TEST(system_clock, stamps_are_software_reads) {
    auto c = open_clock("tai");
    ASSERT_TRUE(c) << c.message();
    const uint64_t before = read_ns(CLOCK_TAI);
    const stamp rx = (*c)->rx_stamp(0);
    const stamp tx = (*c)->tx_stamp();
    const uint64_t after = read_ns(CLOCK_TAI);
    EXPECT_FALSE(rx.hardware);
    EXPECT_FALSE(tx.hardware);
    EXPECT_LE(before, rx.ns);
    EXPECT_LE(rx.ns, tx.ns);
    EXPECT_LE(tx.ns, after);
    EXPECT_EQ((*c)->latch_port(), -1) << "no port latches frames on the system clock";
}

// ---------------------------------------------------------------------------
// Linux PHC: the errors, on any machine.

TEST(phc_clock, a_missing_device_is_named_with_the_reason) {
    const std::string path = "/dev/ptp-missing-" + std::to_string(getpid());
    const std::string msg = failure_of(open_clock("phc:" + path));
    EXPECT_NE(msg.find("phc:" + path), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::strerror(ENOENT)), std::string::npos) << msg;
}

TEST(phc_clock, a_character_device_that_is_not_a_phc_is_refused) {
    const std::string msg = failure_of(phc_clock::open("/dev/null"));
    EXPECT_NE(msg.find("phc:/dev/null"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not a PTP hardware clock"), std::string::npos) << msg;
    EXPECT_NE(msg.find("PTP_CLOCK_GETCAPS"), std::string::npos) << msg;
}

TEST(phc_clock, a_file_or_directory_is_refused) {
    for (const std::string_view path : {"/proc/self/exe", "/"}) {
        SCOPED_TRACE(std::string(path));
        const std::string msg = failure_of(phc_clock::open(path));
        EXPECT_NE(msg.find("not a character device"), std::string::npos) << msg;
    }
}

// ---------------------------------------------------------------------------
// A real PHC, found or made for the suite.

/// Writes `text` to a sysfs attribute; the kernel's answer comes back from
/// write(2), so the stream library is not used.
bool write_attribute(const std::string& path, const std::string& text, std::string& why) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        why = path + ": " + std::strerror(errno);
        return false;
    }
    const ssize_t n = ::write(fd, text.data(), text.size());
    const int err = errno;
    ::close(fd);
    if (n != static_cast<ssize_t>(text.size())) {
        why = path + " <- '" + text + "': " + std::strerror(err);
        return false;
    }
    return true;
}

std::set<std::string> ptp_class_entries() {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/sys/class/ptp", ec)) {
        out.insert(e.path().filename().string());
    }
    return out;
}

std::optional<std::string> find_modprobe() {
    for (const char* p : {"/usr/sbin/modprobe", "/sbin/modprobe", "/usr/bin/modprobe", "/bin/modprobe"}) {
        if (access(p, X_OK) == 0) {
            return std::string(p);
        }
    }
    return std::nullopt;
}

/// A PHC for the suite, and the clean-up of whatever it took to get one.
class test_phc {
public:
    test_phc() {
        // Each step notes why it did not give a PHC, for the skip message.
        if (!use_existing() && !make_with_netdevsim()) {
            make_with_ptp_kvm();
        }
    }

    ~test_phc() {
        std::string why;
        if (!_node_dir.empty()) {
            std::error_code ec;
            fs::remove_all(_node_dir, ec);
        }
        if (!_netdevsim_id.empty()) {
            write_attribute("/sys/bus/netdevsim/del_device", _netdevsim_id, why);
        }
        if (_unload_netdevsim && _modprobe) {
            run(*_modprobe + " -q -r netdevsim");
        }
        if (_unload_ptp_kvm && _modprobe) {
            run(*_modprobe + " -q -r ptp_kvm");
        }
    }

    test_phc(const test_phc&) = delete;
    test_phc& operator=(const test_phc&) = delete;
    test_phc(test_phc&&) = delete;
    test_phc& operator=(test_phc&&) = delete;

    /// Empty if there is none; then skip_reason() says why.
    const std::string& path() const { return _path; }
    std::string skip_reason() const { return "no PTP hardware clock on this machine: " + _tried; }
    /// How the PHC was obtained, for the test log.
    const std::string& origin() const { return _origin; }

private:
    static int run(const std::string& cmd) {
        // The tests run as root on a machine they may configure (BRIEF "What
        // runs where"); a failed module operation only means "not here".
        return std::system((cmd + " >/dev/null 2>&1").c_str()); // NOLINT(cert-env33-c)
    }

    void note(const std::string& s) { _tried += (_tried.empty() ? "" : "; ") + s; }

    bool accept(const std::string& path, const std::string& origin) {
        auto c = phc_clock::open(path);
        if (!c) {
            note(c.message());
            return false;
        }
        _path = path;
        _origin = origin;
        return true;
    }

    bool use_existing() {
        std::error_code ec;
        for (const auto& e : fs::directory_iterator("/dev", ec)) {
            const std::string name = e.path().filename().string();
            if (name.starts_with("ptp") && name.size() > 3 &&
                name.find_first_not_of("0123456789", 3) == std::string::npos &&
                accept(e.path().string(), "existing " + e.path().string())) {
                return true;
            }
        }
        note("no /dev/ptpN");
        return false;
    }

    /// The node of a new /sys/class/ptp entry: /dev/ptpN, or one made in a
    /// private directory where devtmpfs does not provide it.
    std::string node_for(const std::string& entry) {
        std::string dev = "/dev/" + entry;
        struct stat st {};
        if (stat(dev.c_str(), &st) == 0 && S_ISCHR(st.st_mode)) {
            return dev;
        }
        std::ifstream in("/sys/class/ptp/" + entry + "/dev");
        unsigned int maj = 0;
        unsigned int min = 0;
        char colon = 0;
        if (!(in >> maj >> colon >> min) || colon != ':') {
            note("/sys/class/ptp/" + entry + "/dev unreadable");
            return {};
        }
        std::string dir_template = (fs::temp_directory_path() / "ptpsec-phc-XXXXXX").string();
        if (mkdtemp(dir_template.data()) == nullptr) {
            note("mkdtemp: "s + std::strerror(errno));
            return {};
        }
        _node_dir = dir_template;
        std::string node = _node_dir + "/" + entry;
        if (mknod(node.c_str(), S_IFCHR | 0600, makedev(maj, min)) != 0) {
            note("mknod " + node + ": " + std::strerror(errno));
            return {};
        }
        return node;
    }

    /// Waits briefly for a PHC that was not in `before` to appear.
    std::string wait_for_new_phc(const std::set<std::string>& before) {
        for (int i = 0; i < 50; ++i) {
            for (const auto& e : ptp_class_entries()) {
                if (before.count(e) == 0) {
                    return e;
                }
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return {};
    }

    /// Whether modules can be loaded here; noted once when they cannot.
    bool module_support() {
        if (_module_support) {
            return *_module_support;
        }
        _module_support = false;
        if (access("/proc/modules", F_OK) != 0) {
            note("the kernel has no loadable module support (/proc/modules missing), so neither netdevsim nor "
                 "ptp_kvm can be loaded");
        } else if (_modprobe = find_modprobe(); !_modprobe) {
            note("modprobe not installed");
        } else {
            _module_support = true;
        }
        return *_module_support;
    }

    bool make_with_netdevsim() {
        const std::string bus = "/sys/bus/netdevsim";
        if (access((bus + "/new_device").c_str(), W_OK) != 0) {
            note(bus + " absent");
            if (!module_support()) {
                return false;
            }
            const bool was_loaded = access("/sys/module/netdevsim", F_OK) == 0;
            if (run(*_modprobe + " -q netdevsim") != 0 || access((bus + "/new_device").c_str(), W_OK) != 0) {
                note("netdevsim not available (modprobe netdevsim failed)");
                return false;
            }
            _unload_netdevsim = !was_loaded;
        }
        // An id nobody uses; the device goes away in the destructor.
        unsigned int id = 1588;
        while (access((bus + "/devices/netdevsim" + std::to_string(id)).c_str(), F_OK) == 0) {
            ++id;
        }
        const std::set<std::string> before = ptp_class_entries();
        std::string why;
        if (!write_attribute(bus + "/new_device", std::to_string(id) + " 1", why)) {
            note("netdevsim device not created: " + why);
            return false;
        }
        _netdevsim_id = std::to_string(id);
        const std::string entry = wait_for_new_phc(before);
        if (entry.empty()) {
            note("netdevsim" + _netdevsim_id + " has no PHC (kernel older than 6.7, or PTP_1588_CLOCK_MOCK off)");
            return false;
        }
        const std::string node = node_for(entry);
        return !node.empty() && accept(node, "mock PHC of netdevsim" + _netdevsim_id + " (" + entry + ")");
    }

    bool make_with_ptp_kvm() {
        if (!module_support()) {
            return false;
        }
        const bool was_loaded = access("/sys/module/ptp_kvm", F_OK) == 0;
        const std::set<std::string> before = ptp_class_entries();
        if (run(*_modprobe + " -q ptp_kvm") != 0) {
            note("modprobe ptp_kvm failed (not a KVM guest, or the host offers no PTP clock)");
            return false;
        }
        _unload_ptp_kvm = !was_loaded;
        const std::string entry = wait_for_new_phc(before);
        if (entry.empty()) {
            note("ptp_kvm loaded but registered no PHC");
            return false;
        }
        const std::string node = node_for(entry);
        return !node.empty() && accept(node, "ptp_kvm (" + entry + ")");
    }

    std::string _path;
    std::string _origin;
    std::string _tried;
    std::optional<bool> _module_support;
    std::optional<std::string> _modprobe;
    std::string _netdevsim_id;
    std::string _node_dir;
    bool _unload_netdevsim = false;
    bool _unload_ptp_kvm = false;
};

class real_phc : public testing::Test {
protected:
    static void SetUpTestSuite() { _phc = std::make_unique<test_phc>(); }
    static void TearDownTestSuite() { _phc.reset(); }

    void SetUp() override {
        if (_phc->path().empty()) {
            GTEST_SKIP() << _phc->skip_reason();
        }
        RecordProperty("phc", _phc->origin());
    }

    static const std::string& path() { return _phc->path(); }

    static inline std::unique_ptr<test_phc> _phc;
};

TEST_F(real_phc, reads_the_hardware_clock) {
    auto c = open_clock("phc:" + path());
    ASSERT_TRUE(c) << c.message();
    const auto& phc = dynamic_cast<const phc_clock&>(**c);
    EXPECT_EQ(phc.kind(), source_kind::linux_phc);
    EXPECT_TRUE(phc.name().starts_with("phc:" + path())) << phc.name();
    EXPECT_EQ(phc.path(), path());

    // The clock runs: over 20 ms of CLOCK_MONOTONIC it advances by about as
    // much (a PHC may be steered by a few hundred ppm, not more).
    const uint64_t m0 = read_ns(CLOCK_MONOTONIC);
    const uint64_t p0 = phc.now_ns();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const uint64_t p1 = phc.now_ns();
    const uint64_t m1 = read_ns(CLOCK_MONOTONIC);
    ASSERT_NE(p0, 0U);
    ASSERT_GT(p1, p0);
    EXPECT_LE(p1 - p0, (m1 - m0) + 1'000'000);
    EXPECT_GE(p1 - p0 + 1'000'000, (m1 - m0) - (m1 - m0) / 100);

    // now_ns() is the dynamic clock the descriptor names.
    const uint64_t direct = read_ns(phc.clock_id());
    EXPECT_LT(distance(direct, phc.now_ns()), 10'000'000U);
    EXPECT_EQ(phc.read_failures(), 0U);
}

TEST_F(real_phc, stamps_are_software_reads_of_the_phc) {
    auto c = phc_clock::open(path());
    ASSERT_TRUE(c) << c.message();
    const uint64_t before = (*c)->now_ns();
    const stamp rx = (*c)->rx_stamp(0);
    const stamp tx = (*c)->tx_stamp();
    EXPECT_FALSE(rx.hardware);
    EXPECT_FALSE(tx.hardware);
    EXPECT_LE(before, rx.ns);
    EXPECT_LE(rx.ns, tx.ns);
}

TEST_F(real_phc, is_chosen_after_a_source_that_fails) {
    auto r = open_first_clock("phc:/nonexistent/ptp0,phc:" + path() + ",tai");
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->clock->kind(), source_kind::linux_phc);
    ASSERT_EQ(r->skipped.size(), 1U);
}

// ---------------------------------------------------------------------------
// ethdev timesync on virtual PMDs.

class ethdev_clock_test : public testing::Test {
protected:
    void SetUp() override {
        const std::string& why = test::eal_session::start();
        ASSERT_TRUE(why.empty()) << why;
    }

    static uint16_t port_named(const char* name) {
        uint16_t id = 0;
        EXPECT_EQ(rte_eth_dev_get_port_by_name(name, &id), 0) << name << " was not probed";
        return id;
    }
};

TEST_F(ethdev_clock_test, a_pmd_without_timesync_is_refused_with_enotsup) {
    for (const char* name : {"net_null0", "net_ring0"}) {
        SCOPED_TRACE(name);
        const uint16_t port = port_named(name);
        const std::string msg = failure_of(ethdev_clock::open(port));
        EXPECT_NE(msg.find("ethdev:" + std::to_string(port)), std::string::npos) << msg;
        EXPECT_NE(msg.find(name), std::string::npos) << msg;
        EXPECT_NE(msg.find("-ENOTSUP"), std::string::npos) << msg;
        // The same through the spec, by id and by name.
        EXPECT_EQ(failure_of(open_clock("ethdev:" + std::to_string(port))), msg);
        EXPECT_EQ(failure_of(open_clock("ethdev:"s + name)), msg);
        // A refused open leaves the port as it was: refused again, the same way.
        EXPECT_EQ(failure_of(ethdev_clock::open(port)), msg);
    }
}

TEST_F(ethdev_clock_test, a_port_that_does_not_exist_is_named) {
    const std::string by_id = failure_of(open_clock("ethdev:31"));
    EXPECT_NE(by_id.find("ethdev:31: no such port"), std::string::npos) << by_id;
    const std::string by_name = failure_of(open_clock("ethdev:net_bogus7"));
    EXPECT_NE(by_name.find("ethdev:net_bogus7: no port of that name"), std::string::npos) << by_name;
}

TEST_F(ethdev_clock_test, the_caller_falls_back_to_another_clock) {
    // By hand, as a start-up sequence would.
    auto hw = open_clock("ethdev:net_null0");
    ASSERT_FALSE(hw);
    auto fallback = open_clock("tai");
    ASSERT_TRUE(fallback) << fallback.message();
    EXPECT_NE((*fallback)->now_ns(), 0U);

    // With a list.
    auto r = open_first_clock("ethdev:net_null0,ethdev:net_ring0,tai");
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->clock->kind(), source_kind::system_tai);
    ASSERT_EQ(r->skipped.size(), 2U);
    EXPECT_NE(r->skipped[0].find("net_null0"), std::string::npos) << r->skipped[0];
    EXPECT_NE(r->skipped[0].find("-ENOTSUP"), std::string::npos) << r->skipped[0];
    EXPECT_NE(r->skipped[1].find("net_ring0"), std::string::npos) << r->skipped[1];
    EXPECT_EQ(r->skipped[0], hw.message());
    // The software stamps the data plane uses instead of NIC timestamps.
    EXPECT_FALSE(r->clock->rx_stamp(0).hardware);
}

TEST_F(ethdev_clock_test, a_list_of_refusing_ports_fails_with_each_reason) {
    const std::string msg = failure_of(open_first_clock("ethdev:net_null0,ethdev:net_ring0"));
    EXPECT_NE(msg.find("net_null0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("net_ring0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("-ENOTSUP"), std::string::npos) << msg;
}

} // namespace
} // namespace ptpsec::clock
