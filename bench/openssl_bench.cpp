// openssl/ALG/BYTES: the OpenSSL 3 reference engine, one message at a time
// (engine::compute_one), over the same octets raw/ALG/BYTES/* MACs. This is
// the baseline a software signer without intel-ipsec-mb would get.

#include <bench/bench.h>
#include <bench/frames.h>

#include <drivers/icv/openssl_engine.h>

#include <fmt/format.h>

#include <array>

namespace ptpsec::bench {

namespace {

void bm_openssl(benchmark::State& state, icv::algorithm alg, uint16_t message_len) {
    icv::openssl_engine eng;
    auto key = eng.prepare(alg, test_key(alg));
    if (!key) {
        state.SkipWithError(key.message().c_str());
        return;
    }
    const size_t len = mac_length(alg, message_len);
    frame_slot msg{};
    for (size_t j = 0; j < len; ++j) {
        msg.bytes[j] = static_cast<uint8_t>(j * 7);
    }
    const std::array<uint8_t, icv::gmac_nonce_len> nonce = {1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 1};
    alignas(16) std::array<uint8_t, icv::max_icv_len> icv{};
    const std::span<const uint8_t> m(msg.bytes, len);
    for (auto _ : state) {
        if (!eng.compute_one(**key, m, nonce.data(), icv.data())) {
            state.SkipWithError("OpenSSL: MAC failed");
            break;
        }
        benchmark::ClobberMemory();
    }
    report_per_packet(state, 1, len);
}

} // namespace

void register_openssl(icv::algorithm alg, uint16_t message_len) {
    benchmark::RegisterBenchmark(fmt::format("openssl/{}/{}", icv::info(alg).name, message_len).c_str(),
                                 [=](benchmark::State& s) { bm_openssl(s, alg, message_len); })
        ->Unit(benchmark::kNanosecond);
}

} // namespace ptpsec::bench
