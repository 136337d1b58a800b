// Where the per-frame time of sign and verify goes, measured piece by piece
// on the same 90-octet UDPv4 frames at burst 32:
//
//   engine/ALG/90/BURST   ipsecmb_engine::compute_burst on ready requests:
//                         raw plus the engine's grouping and job filling
//   stage/classify/90/32  ptp::classify_frame
//   stage/scan/90/32      ptp::scan_message (frame already classified)
//   stage/append/90/32    restore + ptp::append_auth_tlv (the template made
//                         once per burst, as sign does): the TLV, lengths,
//                         IPv4 header checksum, UDP checksum but the ICV
//                         (subtract restore/90/32)
//   stage/finish/90/32    ptp::finish_auth_tlv: the ICV into the UDP checksum
//   stage/gmac-find/90/32 gmac_sender_keys::find for the frame's sender
//   stage/gmac-derive/90/32  gmac_sender_keys::derive for a sender not in the
//                         table (HKDF-Expand: two HMAC-SHA256; the AES-128
//                         key schedule and GHASH key): what each frame with
//                         a made-up sourcePortIdentity costs a receiver
//   stage/iv-next/90/32   the IVs of a burst as sign takes them: one
//                         gmac_iv_counter::reserve (one atomic add) for the
//                         burst, then each frame's nonce (make_gmac_nonce)
//   stage/icv-compare/90/32  ct_equal of a 16-octet ICV, as verify does per frame
//   stage/replay-accept/90/32  replay_table::accept of each verified frame (one
//                         stream, every sequenceId new: written into the
//                         frame first), what verify adds with replay
//                         protection on (the default; the verify rows run
//                         without it)
//
// The numbers are for finding the cost, not targets; docs/benchmarks.md
// lists them under "Where the time goes".

#include <bench/bench.h>
#include <bench/frames.h>

#include <dataplane/auth.h>
#include <dataplane/replay.h>
#include <dataplane/sa.h>
#include <dataplane/sa_update.h>
#include <drivers/base/bytes.h>
#include <drivers/icv/gmac.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <fmt/format.h>

#include <array>
#include <cstring>
#include <functional>
#include <vector>

namespace ptpsec::bench {

namespace {

constexpr uint16_t stage_burst = 32;

void bm_engine(benchmark::State& state, icv::algorithm alg, uint16_t message_len, uint16_t burst) {
    icv::ipsecmb_engine eng(icv::default_arch_plan());
    run_engine_cell(state, eng, alg, message_len, burst);
}

/// Frames of the stage benchmarks, classified and parsed once.
struct parsed_burst {
    frame_burst frames{arch_message_length, stage_burst};
    std::vector<ptp::frame_info> fi = std::vector<ptp::frame_info>(stage_burst);
    std::vector<ptp::message_view> mv = std::vector<ptp::message_view>(stage_burst);
    std::vector<ptp::pending_auth> pending = std::vector<ptp::pending_auth>(stage_burst);

    bool parse() {
        for (uint16_t i = 0; i < stage_burst; ++i) {
            const ptp::frame_buf& f = frames.frames()[i];
            if (ptp::classify_frame(f.data, f.len, fi[i]) != ptp::error::none ||
                ptp::parse_message(f.data + fi[i].ptp_offset, fi[i].ptp_avail, mv[i]) != ptp::error::none) {
                return false;
            }
        }
        return true;
    }
};

void run_stage(benchmark::State& state, const std::function<bool(parsed_burst&)>& setup,
               const std::function<void(parsed_burst&)>& body) {
    parsed_burst pb;
    if (!pb.frames.error().empty() || !pb.parse() || !setup(pb)) {
        state.SkipWithError("stage set-up failed");
        return;
    }
    for (auto _ : state) {
        body(pb);
        benchmark::ClobberMemory();
    }
    report_per_packet(state, stage_burst, arch_message_length);
}

bool no_setup(parsed_burst&) {
    return true;
}

ptp::auth_params stage_params() {
    ptp::auth_params ap;
    ap.spp = 1;
    ap.keyID = 7;
    ap.icv_len = 16;
    return ap;
}

void register_stage(const char* name, const std::function<bool(parsed_burst&)>& setup,
                    const std::function<void(parsed_burst&)>& body) {
    benchmark::RegisterBenchmark(fmt::format("stage/{}/{}/{}", name, arch_message_length, stage_burst).c_str(),
                                 [=](benchmark::State& s) { run_stage(s, setup, body); })
        ->Unit(benchmark::kNanosecond);
}

} // namespace

void run_engine_cell(benchmark::State& state, icv::engine& eng, icv::algorithm alg, uint16_t message_len,
                     uint16_t burst) {
    auto key = eng.prepare(alg, test_key(alg));
    if (!key) {
        state.SkipWithError(key.message().c_str());
        return;
    }
    const auto len = static_cast<uint32_t>(mac_length(alg, message_len));
    std::vector<frame_slot> msgs(burst);
    std::vector<icv::mac_request> reqs(burst);
    const std::array<uint8_t, icv::gmac_nonce_len> nonce = {1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 1};
    for (uint16_t i = 0; i < burst; ++i) {
        for (uint32_t j = 0; j < len; ++j) {
            msgs[i].bytes[j] = static_cast<uint8_t>(i * 31 + j * 7);
        }
        reqs[i] = icv::mac_request{key->get(), msgs[i].bytes, len, nonce.data(), msgs[i].bytes + len};
    }
    for (auto _ : state) {
        if (eng.compute_burst(reqs.data(), burst) != burst) {
            state.SkipWithError("compute_burst: short count");
            break;
        }
        benchmark::ClobberMemory();
    }
    report_per_packet(state, burst, len);
}

void register_engine(icv::algorithm alg, uint16_t message_len, uint16_t burst) {
    benchmark::RegisterBenchmark(cell_name("engine", alg, message_len, burst).c_str(), [=](benchmark::State& s) {
        bm_engine(s, alg, message_len, burst);
    })->Unit(benchmark::kNanosecond);
}

void register_stage_benchmarks() {
    register_stage("classify", no_setup, [](parsed_burst& pb) {
        for (uint16_t i = 0; i < stage_burst; ++i) {
            const ptp::frame_buf& f = pb.frames.frames()[i];
            benchmark::DoNotOptimize(ptp::classify_frame(f.data, f.len, pb.fi[i]));
        }
    });
    register_stage("scan", no_setup, [](parsed_burst& pb) {
        ptp::message_scan sc;
        for (uint16_t i = 0; i < stage_burst; ++i) {
            const ptp::frame_buf& f = pb.frames.frames()[i];
            benchmark::DoNotOptimize(ptp::scan_message(f.data + pb.fi[i].ptp_offset, pb.fi[i].ptp_avail, sc));
        }
    });
    register_stage("append", no_setup, [](parsed_burst& pb) {
        pb.frames.restore();
        // Made once per burst, as sign does.
        const ptp::auth_tlv_template tlv = ptp::make_auth_tlv_template(stage_params());
        for (uint16_t i = 0; i < stage_burst; ++i) {
            ptp::frame_info fi = pb.fi[i];
            benchmark::DoNotOptimize(
                ptp::append_auth_tlv(pb.frames.frames()[i], fi, pb.mv[i].hdr.messageLength, tlv, 0, pb.pending[i]));
        }
    });
    register_stage(
        "finish",
        [](parsed_burst& pb) {
            // Append once: finish_auth_tlv() completes that checksum (the
            // same result every time, as the ICV does not change).
            const ptp::auth_params ap = stage_params();
            for (uint16_t i = 0; i < stage_burst; ++i) {
                if (ptp::append_auth_tlv(pb.frames.frames()[i], pb.fi[i], pb.mv[i].hdr.messageLength, ap,
                                         pb.pending[i]) != ptp::error::none ||
                    pb.pending[i].plan != ptp::checksum_plan::incremental) {
                    return false;
                }
            }
            return true;
        },
        [](parsed_burst& pb) {
            for (uint16_t i = 0; i < stage_burst; ++i) {
                ptp::finish_auth_tlv(pb.frames.frames()[i].data, pb.fi[i], pb.pending[i]);
            }
        });

    // The sender-key table and IV counter live as long as the process: the
    // lambdas below share them through these statics (benchmark code only).
    static icv::ipsecmb_engine stage_engine(icv::default_arch_plan());
    static std::unique_ptr<icv::gmac_sender_keys> sender_keys;
    static icv::gmac_iv_counter iv_counter(icv::gmac_iv_counter::clock_start());
    static const auto make_sender_keys = [] {
        if (!sender_keys) {
            auto k = icv::gmac_sender_keys::create(stage_engine, icv::algorithm::aes_gmac_128,
                                                   test_key(icv::algorithm::aes_gmac_128));
            if (!k) {
                return false;
            }
            sender_keys = std::move(k).value();
        }
        return true;
    };
    register_stage(
        "gmac-find",
        [](parsed_burst& pb) {
            if (!make_sender_keys()) {
                return false;
            }
            const uint8_t* pid = pb.frames.frames()[0].data + pb.fi[0].ptp_offset + ptp::source_port_identity_offset;
            return sender_keys->lookup(stage_engine, pid) != nullptr;
        },
        [](parsed_burst& pb) {
            for (uint16_t i = 0; i < stage_burst; ++i) {
                const uint8_t* pid =
                    pb.frames.frames()[i].data + pb.fi[i].ptp_offset + ptp::source_port_identity_offset;
                benchmark::DoNotOptimize(sender_keys->find(pid));
            }
        });
    register_stage(
        "gmac-derive", [](parsed_burst&) { return make_sender_keys(); },
        [](parsed_burst&) {
            static uint64_t sender = 0;
            std::array<uint8_t, icv::port_identity_len> pid{};
            for (uint16_t i = 0; i < stage_burst; ++i) {
                ++sender;
                std::memcpy(pid.data(), &sender, sizeof(sender));
                benchmark::DoNotOptimize(sender_keys->derive(stage_engine, pid.data()));
            }
        });
    register_stage("iv-next", no_setup, [](parsed_burst&) {
        static constexpr std::array<uint8_t, icv::gmac_salt_len> salt = {1, 2, 3, 4};
        alignas(16) uint8_t nonce[icv::gmac_nonce_len];
        uint64_t iv = iv_counter.reserve(stage_burst);
        for (uint16_t i = 0; i < stage_burst; ++i) {
            icv::make_gmac_nonce(salt.data(), iv++, nonce);
            benchmark::DoNotOptimize(nonce);
        }
    });
    static replay_table replay(replay_config{});
    register_stage("replay-accept", no_setup, [](parsed_burst& pb) {
        static uint16_t seq = 0;
        for (uint16_t i = 0; i < stage_burst; ++i) {
            uint8_t* msg = pb.frames.frames()[i].data + pb.fi[i].ptp_offset;
            store_be16(msg + 30, seq++); // sequenceId
            benchmark::DoNotOptimize(replay.accept(msg, 1, 7));
        }
    });
    register_stage("icv-compare", no_setup, [](parsed_burst& pb) {
        alignas(16) uint8_t icv[icv::max_icv_len] = {};
        for (uint16_t i = 0; i < stage_burst; ++i) {
            benchmark::DoNotOptimize(ct_equal(icv, pb.frames.frames()[i].data + 60, 16));
        }
    });

    // sa-apply/ALG: one SA update applied as the service path applies it
    // (apply_update: the new SA version and the key's schedule), an add_key
    // of ALG and the remove_key of the same key, so that the database stays
    // as it was; per update. The rest of an update's way (ring, publication,
    // acknowledgement, the worker's next burst) is sa_update_bench.py's.
    // sa-apply/aes-gmac-128/senders:N: with --gmac-senders N, the per-sender
    // subkey table the key comes with.
    struct apply_case {
        icv::algorithm alg;
        size_t gmac_senders;
    };
    for (const auto [alg, gmac_senders] :
         {apply_case{icv::algorithm::hmac_sha256_128, default_gmac_senders},
          apply_case{icv::algorithm::aes_cmac_128, default_gmac_senders},
          apply_case{icv::algorithm::aes_gmac_128, default_gmac_senders}, apply_case{icv::algorithm::aes_gmac_128, 256},
          apply_case{icv::algorithm::aes_gmac_128, max_gmac_senders}}) {
        const std::string name = gmac_senders == default_gmac_senders
                                     ? fmt::format("sa-apply/{}", icv::info(alg).name)
                                     : fmt::format("sa-apply/{}/senders:{}", icv::info(alg).name, gmac_senders);
        benchmark::RegisterBenchmark(name.c_str(), [alg, gmac_senders](benchmark::State& state) {
            icv::ipsecmb_engine eng(icv::default_arch_plan());
            sa_config sa;
            sa.spp = 2;
            sa.keys.push_back(key_config{1, alg, key_bytes(test_key(alg)), "bench"});
            auto installed = sa_database::install(eng, std::vector<sa_config>{sa}, gmac_senders);
            if (!installed) {
                state.SkipWithError(installed.message().c_str());
                return;
            }
            auto current = std::make_unique<sa_database>(std::move(installed).value());
            sa_wire::update add;
            add.operation = static_cast<uint8_t>(sa_wire::op::add_key);
            add.spp = 2;
            add.algorithm = static_cast<uint8_t>(alg);
            const auto key = test_key(alg);
            add.key_len = static_cast<uint8_t>(key.size());
            std::copy(key.begin(), key.end(), add.key);
            sa_wire::update remove;
            remove.operation = static_cast<uint8_t>(sa_wire::op::remove_key);
            remove.spp = 2;
            uint32_t key_id = 2;
            for (auto _ : state) {
                add.key_id = remove.key_id = key_id++;
                for (const sa_wire::update* u : {&add, &remove}) {
                    auto r = apply_update(*current, *u, eng);
                    if (!r || r->next == nullptr) {
                        state.SkipWithError(r ? "nothing changed" : r.message().c_str());
                        return;
                    }
                    current = std::move(r->next);
                }
            }
            state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * 2);
            state.counters["per_update"] = benchmark::Counter(
                static_cast<double>(state.iterations()) * 2, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
        })->Unit(benchmark::kNanosecond);
    }
}

} // namespace ptpsec::bench
