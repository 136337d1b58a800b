// ptpsec-bench: registers every family (raw, raw-arch, sign, verify,
// openssl, restore, engine, stage) and records in the JSON context what the
// report needs to describe the machine and reproduce the run.

#include <bench/bench.h>
#include <dataplane/sa.h>

#include <drivers/icv/ipsecmb_engine.h>

#include <fmt/format.h>
#include <intel-ipsec-mb.h>
#include <openssl/crypto.h>
#include <sys/utsname.h>

#include <fstream>
#include <string>

namespace {

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            const auto colon = line.find(':');
            return colon == std::string::npos ? line : line.substr(line.find_first_not_of(' ', colon + 1));
        }
    }
    return "unknown";
}

std::string kernel() {
    utsname u{};
    if (uname(&u) != 0) {
        return "unknown";
    }
    return fmt::format("{} {} {}", u.sysname, u.release, u.machine);
}

/// The CPU features intel-ipsec-mb detects that decide the arch plan.
std::string imb_features() {
    IMB_MGR* m = alloc_mb_mgr(0);
    if (m == nullptr) {
        return "unknown";
    }
    const uint64_t f = m->features;
    free_mb_mgr(m);
    std::string s;
    const auto add = [&](uint64_t flag, const char* name) {
        if ((f & flag) == flag) {
            s += s.empty() ? "" : " ";
            s += name;
        }
    };
    add(IMB_FEATURE_SSE4_2, "sse4.2");
    add(IMB_FEATURE_AESNI, "aesni");
    add(IMB_FEATURE_PCLMULQDQ, "pclmulqdq");
    add(IMB_FEATURE_AVX, "avx");
    add(IMB_FEATURE_AVX2, "avx2");
    add(IMB_FEATURE_AVX512_SKX, "avx512");
    add(IMB_FEATURE_SHANI, "sha-ni");
    add(IMB_FEATURE_VAES, "vaes");
    add(IMB_FEATURE_VPCLMULQDQ, "vpclmulqdq");
    add(IMB_FEATURE_GFNI, "gfni");
    return s;
}

std::string plan_text() {
    const auto plan = ptpsec::icv::default_arch_plan();
    std::string s;
    for (const auto& ai : ptpsec::icv::all_algorithms()) {
        s += fmt::format("{}{}:{}", s.empty() ? "" : " ", ai.name,
                         ptpsec::icv::arch_name(plan[static_cast<size_t>(ai.alg)]));
    }
    return s;
}

} // namespace

int main(int argc, char** argv) {
    std::string command;
    for (int i = 0; i < argc; ++i) {
        command += fmt::format("{}{}", i == 0 ? "" : " ", argv[i]);
    }
    benchmark::AddCustomContext("ptpsec_command", command);
    benchmark::AddCustomContext("ptpsec_cpu_model", cpu_model());
    benchmark::AddCustomContext("ptpsec_kernel", kernel());
    benchmark::AddCustomContext("ptpsec_ipsec_mb_version", imb_get_version_str());
    benchmark::AddCustomContext("ptpsec_openssl_version", OpenSSL_version(OPENSSL_VERSION));
    benchmark::AddCustomContext("ptpsec_imb_features", imb_features());
    benchmark::AddCustomContext("ptpsec_default_arch_plan", plan_text());

    // As ptpsec-dataplane does, so that sa-apply measures what it costs there.
    ptpsec::keep_freed_key_memory();
    ptpsec::bench::register_all();

    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
