// sign/ALG/BYTES/BURST and verify/ALG/BYTES/BURST: the whole per-frame path
// through ptpsec::signer::sign_burst and ptpsec::verifier::verify_burst on
// UDPv4 frames, with an ipsecmb_engine on the default plan and an SA
// database holding one SA with one key.

#include <bench/bench.h>
#include <bench/frames.h>

#include <dataplane/auth.h>
#include <dataplane/sa.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <fmt/format.h>

#include <memory>
#include <optional>
#include <vector>

namespace ptpsec::bench {

namespace {

constexpr uint8_t bench_spp = 1;
constexpr uint32_t bench_key_id = 7;

/// The engine of this (single) lcore, made once: creating managers is
/// start-up work, not part of any cell.
icv::ipsecmb_engine& lcore_engine() {
    static icv::ipsecmb_engine eng(icv::default_arch_plan());
    return eng;
}

std::optional<sa_database> install_one(icv::engine& eng, icv::algorithm alg, std::string& why) {
    sa_config sa;
    sa.spp = bench_spp;
    key_config kc;
    kc.key_id = bench_key_id;
    kc.alg = alg;
    kc.key = key_bytes(test_key(alg));
    kc.origin = "bench";
    sa.keys.push_back(std::move(kc));
    sa.origin = "bench";
    const std::array<sa_config, 1> sas = {std::move(sa)};
    auto db = sa_database::install(eng, sas);
    if (!db) {
        why = db.message();
        return std::nullopt;
    }
    return std::move(db).value();
}

/// The first sign_status other than signed_ok, as text.
std::string sign_failure(const std::vector<frame_outcome>& out) {
    for (const auto& o : out) {
        if (o.status != static_cast<uint8_t>(sign_status::signed_ok)) {
            return fmt::format("sign_burst: {} ({})", sign_status_name(static_cast<sign_status>(o.status)),
                               ptp::error_name(o.cause));
        }
    }
    return "sign_burst: short count";
}

std::string verify_failure(const std::vector<frame_outcome>& out) {
    for (const auto& o : out) {
        if (o.status != static_cast<uint8_t>(verify_status::verified)) {
            return fmt::format("verify_burst: {} ({})", verify_status_name(static_cast<verify_status>(o.status)),
                               ptp::error_name(o.cause));
        }
    }
    return "verify_burst: short count";
}

/// What sign and verify cells share: one SA for signing and one for
/// verifying (each lcore has its own), a signer, a verifier and a burst of
/// frames, signed once and verified once before timing. That warm-up also
/// derives the GMAC sender subkey (HKDF), which a running data plane does
/// once per sender.
struct path_setup {
    path_setup(icv::algorithm alg, uint16_t message_len, uint16_t burst)
        : iv(icv::gmac_iv_counter::clock_start()), frames(message_len, burst), out(burst) {
        icv::ipsecmb_engine& eng = lcore_engine();
        sign_sad = install_one(eng, alg, error);
        verify_sad = install_one(eng, alg, error);
        if (!sign_sad || !verify_sad) {
            return;
        }
        if (!frames.error().empty()) {
            error = frames.error();
            return;
        }
        sig.emplace(eng, *sign_sad, iv);
        ver.emplace(eng, *verify_sad);
        if (sig->sign_burst(frames.frames(), burst, bench_spp, bench_key_id, out.data()) != burst) {
            error = sign_failure(out);
            return;
        }
        if (ver->verify_burst(frames.frames(), burst, out.data()) != burst) {
            error = verify_failure(out);
            return;
        }
        // The sign cells put the unsigned frames back with restore(); it
        // must give exactly the templates, or they would time something else.
        frames.restore();
        if (!frames.same_as_templates()) {
            error = "restore() after sign_burst does not give the unsigned frames back";
            return;
        }
        if (sig->sign_burst(frames.frames(), burst, bench_spp, bench_key_id, out.data()) != burst) {
            error = sign_failure(out);
        }
    }

    std::string error;
    std::optional<sa_database> sign_sad;
    std::optional<sa_database> verify_sad;
    icv::gmac_iv_counter iv;
    std::optional<signer> sig;
    std::optional<verifier> ver;
    frame_burst frames;
    std::vector<frame_outcome> out;
};

void bm_sign(benchmark::State& state, icv::algorithm alg, uint16_t message_len, uint16_t burst) {
    auto ps = std::make_unique<path_setup>(alg, message_len, burst);
    if (!ps->error.empty()) {
        state.SkipWithError(ps->error.c_str());
        return;
    }
    for (auto _ : state) {
        // The unsigned frames again (five fields per frame). Part of the
        // measured cost; restore/BYTES/BURST measures it alone.
        ps->frames.restore();
        if (ps->sig->sign_burst(ps->frames.frames(), burst, bench_spp, bench_key_id, ps->out.data()) != burst) {
            state.SkipWithError(sign_failure(ps->out).c_str());
            break;
        }
        benchmark::ClobberMemory();
    }
    report_per_packet(state, burst, mac_length(alg, message_len));
}

void bm_verify(benchmark::State& state, icv::algorithm alg, uint16_t message_len, uint16_t burst) {
    auto ps = std::make_unique<path_setup>(alg, message_len, burst);
    if (!ps->error.empty()) {
        state.SkipWithError(ps->error.c_str());
        return;
    }
    for (auto _ : state) {
        if (ps->ver->verify_burst(ps->frames.frames(), burst, ps->out.data()) != burst) {
            state.SkipWithError(verify_failure(ps->out).c_str());
            break;
        }
        benchmark::ClobberMemory();
    }
    report_per_packet(state, burst, mac_length(alg, message_len));
}

/// restore/BYTES/BURST: putting the unsigned frames back, alone.
void bm_restore(benchmark::State& state, uint16_t message_len, uint16_t burst) {
    frame_burst frames(message_len, burst);
    if (!frames.error().empty()) {
        state.SkipWithError(frames.error().c_str());
        return;
    }
    for (auto _ : state) {
        frames.restore();
        benchmark::ClobberMemory();
    }
    report_per_packet(state, burst, message_len);
}

} // namespace

void register_sign(icv::algorithm alg, uint16_t message_len, uint16_t burst) {
    benchmark::RegisterBenchmark(cell_name("sign", alg, message_len, burst).c_str(), [=](benchmark::State& s) {
        bm_sign(s, alg, message_len, burst);
    })->Unit(benchmark::kNanosecond);
}

void register_verify(icv::algorithm alg, uint16_t message_len, uint16_t burst) {
    benchmark::RegisterBenchmark(cell_name("verify", alg, message_len, burst).c_str(), [=](benchmark::State& s) {
        bm_verify(s, alg, message_len, burst);
    })->Unit(benchmark::kNanosecond);
}

void register_restore_benchmarks() {
    for (uint16_t ml : message_lengths) {
        for (uint16_t burst : bursts) {
            benchmark::RegisterBenchmark(fmt::format("restore/{}/{}", ml, burst).c_str(), [=](benchmark::State& s) {
                bm_restore(s, ml, burst);
            })->Unit(benchmark::kNanosecond);
        }
    }
}

} // namespace ptpsec::bench
