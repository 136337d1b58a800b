#pragma once

// Shared pieces of ptpsec-bench: the grid every family runs over, the key
// material, and the per-packet counters. Every benchmark is registered by
// name ("sign/aes-gmac-128/90/32") so that one cell reruns with
// --benchmark_filter; docs/benchmarks.md explains the families.

#include <drivers/icv/algorithm.h>
#include <drivers/icv/engine.h>

#include <benchmark/benchmark.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ptpsec::bench {

/// messageLength of the PTP message before signing (44 is a Sync).
inline constexpr std::array<uint16_t, 5> message_lengths = {44, 64, 90, 128, 256};
inline constexpr std::array<uint16_t, 4> bursts = {1, 8, 32, 64};
/// The size and bursts the raw-arch family compares managers at.
inline constexpr uint16_t arch_message_length = 90;
inline constexpr std::array<uint16_t, 2> arch_bursts = {1, 32};

/// Octets the ICV covers when a message of `message_len` octets is signed:
/// the message and the AUTHENTICATION TLV up to its ICV field (tlvType,
/// lengthField, spp, secParamIndicator, keyID and, for GMAC, sequenceNo).
/// raw and openssl MAC exactly this many octets so that their ratio to sign
/// and verify measures the path, not a longer message.
size_t mac_length(icv::algorithm alg, size_t message_len) noexcept;

/// A fixed key of the algorithm's length (32 octets for HMAC).
std::vector<uint8_t> test_key(icv::algorithm alg);

/// Sets items (packets), bytes (MAC'd octets) and the counters every
/// benchmark reports: per_pkt (seconds per packet, shown with an SI prefix)
/// and mac_len. Call after the timing loop.
void report_per_packet(benchmark::State& state, uint16_t burst, size_t mac_len);

/// "family/alg/bytes/burst".
std::string cell_name(std::string_view family, icv::algorithm alg, uint16_t message_len, uint16_t burst);

/// One engine cell: compute_burst of `burst` ready requests of a message of
/// `message_len` octets (mac_length of it), per packet.
void run_engine_cell(benchmark::State& state, icv::engine& eng, icv::algorithm alg, uint16_t message_len,
                     uint16_t burst);

// One cell each; register_all() decides the order.
void register_raw(icv::algorithm alg, uint16_t message_len, uint16_t burst);
void register_engine(icv::algorithm alg, uint16_t message_len, uint16_t burst);
void register_sign(icv::algorithm alg, uint16_t message_len, uint16_t burst);
void register_verify(icv::algorithm alg, uint16_t message_len, uint16_t burst);
void register_openssl(icv::algorithm alg, uint16_t message_len);
// Whole families.
void register_raw_arch_benchmarks();
void register_restore_benchmarks();
void register_stage_benchmarks();
void register_cryptodev_benchmarks();

/// Every benchmark. For each algorithm, size and burst the raw, engine,
/// sign and verify cells are registered back to back, then OpenSSL for that
/// size: run in order, the cells a ratio compares run within a second of
/// each other. `make bench` adds --benchmark_enable_random_interleaving, which
/// spreads the repetitions of each cell over the whole run instead, so that
/// a burst of load from elsewhere moves one repetition, not the median.
void register_all();

} // namespace ptpsec::bench
