#include <drivers/base/embedded_eal.h>

#include <rte_eal.h>
#include <rte_errno.h>

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace ptpsec {

namespace {

constexpr const char* dpdk_run_dir = "/var/run/dpdk";

struct eal_files {
    std::string runtime_dir;     ///< EAL's, removed at exit
    bool run_dir_existed = true; ///< dpdk_run_dir was there before EAL
};

eal_files& files() {
    static eal_files f;
    return f;
}

void stop_eal() {
    rte_eal_cleanup();
    std::error_code ec;
    namespace fs = std::filesystem;
    if (!files().runtime_dir.empty()) {
        fs::remove_all(files().runtime_dir, ec);
    }
    if (!files().run_dir_existed) {
        fs::remove(dpdk_run_dir, ec); // only if empty: another process may use it now
    }
}

std::string start(const embedded_eal_options& o) {
    cpu_set_t mask;
    CPU_ZERO(&mask);
    if (sched_getaffinity(0, sizeof(mask), &mask) != 0) {
        return std::string("sched_getaffinity: ") + std::strerror(errno);
    }
    int first_cpu = 0;
    while (first_cpu < CPU_SETSIZE && !CPU_ISSET(first_cpu, &mask)) {
        ++first_cpu;
    }
    files().run_dir_existed = ::access(dpdk_run_dir, F_OK) == 0;
    std::vector<std::string> args = {o.program,
                                     "--no-huge",
                                     "--no-pci",
                                     "--no-shconf",
                                     "--no-telemetry",
                                     "--file-prefix=" + o.program + "-" + std::to_string(::getpid()),
                                     "-l",
                                     std::to_string(first_cpu),
                                     "--log-level=error"};
    for (const auto& v : o.vdevs) {
        args.push_back("--vdev=" + v);
    }
    args.insert(args.end(), o.extra.begin(), o.extra.end());
    std::vector<char*> argv;
    argv.reserve(args.size() + 1);
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    const int rc = rte_eal_init(static_cast<int>(args.size()), argv.data());
    sched_setaffinity(0, sizeof(mask), &mask);
    if (rc < 0) {
        return std::string("rte_eal_init: ") + rte_strerror(rte_errno);
    }
    files().runtime_dir = rte_eal_get_runtime_dir();
    std::atexit(stop_eal);
    return {};
}

} // namespace

const std::string& start_embedded_eal(const embedded_eal_options& options) {
    static const std::string failure = start(options);
    return failure;
}

} // namespace ptpsec
