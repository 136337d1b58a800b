#include <bench/bench.h>

#include <dataplane/ptp/frame.h>

#include <fmt/format.h>

#include <algorithm>

namespace ptpsec::bench {

size_t mac_length(icv::algorithm alg, size_t message_len) noexcept {
    // Figure 48: the ICV covers the message up to the ICV field itself.
    return message_len + ptp::tlv_header_len + ptp::auth_fixed_len + (icv::is_gmac(alg) ? ptp::auth_seqno_len : 0);
}

std::vector<uint8_t> test_key(icv::algorithm alg) {
    const size_t len = icv::info(alg).key_len != 0 ? icv::info(alg).key_len : 32;
    std::vector<uint8_t> key(len);
    for (size_t i = 0; i < len; ++i) {
        key[i] = static_cast<uint8_t>(0xA0 + i * 3);
    }
    return key;
}

void report_per_packet(benchmark::State& state, uint16_t burst, size_t mac_len) {
    const auto packets = static_cast<int64_t>(state.iterations()) * burst;
    state.SetItemsProcessed(packets);
    state.SetBytesProcessed(packets * static_cast<int64_t>(mac_len));
    // Packets per second, inverted: seconds per packet.
    state.counters["per_pkt"] =
        benchmark::Counter(burst, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
    state.counters["mac_len"] = benchmark::Counter(static_cast<double>(mac_len));
}

std::string cell_name(std::string_view family, icv::algorithm alg, uint16_t message_len, uint16_t burst) {
    return fmt::format("{}/{}/{}/{}", family, icv::info(alg).name, message_len, burst);
}

void register_all() {
    for (const auto& ai : icv::all_algorithms()) {
        for (uint16_t ml : message_lengths) {
            for (uint16_t burst : bursts) {
                register_raw(ai.alg, ml, burst);
                if (ml == arch_message_length &&
                    std::find(arch_bursts.begin(), arch_bursts.end(), burst) != arch_bursts.end()) {
                    register_engine(ai.alg, ml, burst);
                }
                register_sign(ai.alg, ml, burst);
                register_verify(ai.alg, ml, burst);
            }
            register_openssl(ai.alg, ml);
        }
    }
    register_raw_arch_benchmarks();
    register_restore_benchmarks();
    register_stage_benchmarks();
    register_cryptodev_benchmarks();
}

} // namespace ptpsec::bench
