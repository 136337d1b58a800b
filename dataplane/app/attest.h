#pragma once

// Attestation in ptpsec-dataplane (BRIEF "Attestation", docs/attestation.md):
// a drain thread takes the timing-event records off the event ring the PTP
// worker fills and hands them to the batching signer (hsm/batcher.h), which
// signs them in Merkle batches with the configured signer (TPM, PKCS#11
// token, or software for development) and appends them to the evidence log.
//
// The worker never waits for any of this: a full ring is counted by the
// worker (events_ring_full), and the drain thread passes that count on to
// the batcher as missed events, so the gap shows in the next batch.
//
// Not the fast path: a plain thread (not an EAL lcore), which sleeps a
// millisecond when the ring is empty.

#include <dataplane/app/stats.h>
#include <drivers/base/result.h>
#include <hsm/batcher.h>
#include <hsm/evidence_log.h>
#include <hsm/signer.h>

#include <rte_ring.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <thread>

namespace ptpsec {

/// Bounds of the attestation options (check_options). A log file is read
/// whole by a verifier; an event held costs about 100 octets.
inline constexpr uint64_t max_attest_log_mb = 4096;
inline constexpr size_t max_attest_held = size_t{1} << 24;
inline constexpr uint32_t max_attest_batch_ms = 3'600'000;
/// The longest --attest-signer-id: /ptpsec/attest carries it as a DPDK
/// telemetry string (RTE_TEL_MAX_STRING_LEN, 128 with its NUL), where a
/// Verifier's challenger reads it; a longer one would arrive cut short.
inline constexpr size_t max_attest_signer_id_len = 127;

struct attest_options {
    std::string backend = "none"; ///< none, software, tpm, pkcs11
    std::string signer_id;        ///< default: the host name
    std::string log_dir;
    std::string log_name = "evidence";
    uint64_t log_max_mb = 64;
    size_t batch_events = 4096;
    uint32_t batch_ms = 100;
    size_t max_held = size_t{1} << 20; ///< events held while the signer is busy; beyond: counted as overflow
    unsigned builder_threads = 1;      ///< threads that write and hash a batch's leaves
    std::string algorithm = "es256";   ///< software and pkcs11: es256 or eddsa
    std::string key_file;              ///< software
    std::string counter_file;          ///< software, pkcs11
    std::string tcti = "device:/dev/tpmrm0";
    std::string tpm_key_handle = "0x81000100";
    std::string tpm_counter_index = "0x01500100";
    std::string pkcs11_module = "/usr/lib/softhsm/libsofthsm2.so";
    std::string pkcs11_token;
    std::string pkcs11_pin_file;
    std::string pkcs11_key = "ptpsec-attest";
};

class attestation {
public:
    /// Opens the signer and the log, starts the batcher and the drain thread
    /// on `ring` (event_record elements, single consumer: this thread).
    /// `workers` is read for the events_ring_full counters.
    static result<std::unique_ptr<attestation>> start(const attest_options& opt, rte_ring* ring,
                                                      std::span<const worker_counters> workers);
    ~attestation();
    attestation(const attestation&) = delete;
    attestation& operator=(const attestation&) = delete;
    attestation(attestation&&) = delete;
    attestation& operator=(attestation&&) = delete;

    /// After the workers stopped: drains what is left on the ring, has it
    /// signed and logged, stops. Returns what stop could not do.
    hsm::batcher_stop_report stop();

    hsm::batcher_stats stats() const { return _batcher->stats(); }
    /// An attest_nonce from the SA channel: `nonce` goes into every batch
    /// from now on; empty withdraws it. Refused (with why) when its length
    /// is not 8-64 octets.
    status set_nonce(std::span<const uint8_t> nonce);
    /// The nonce batches are given now, and how many times it was set.
    std::optional<std::vector<uint8_t>> nonce() const { return _batcher->nonce(); }
    uint64_t nonces_set() const noexcept { return _nonces_set.load(std::memory_order_relaxed); }
    const hsm::signer_info& signer_info() const noexcept { return _signer->info(); }
    const std::string& signer_id() const noexcept { return _signer_id; }
    std::string log_path() const { return _log->current_path().string(); }
    const std::string& recovery_note() const noexcept { return _log->recovery_note(); }

    /// "attestation (LABEL): events signed N in B batches ..."
    void print(std::FILE* out, std::string_view label) const;

private:
    attestation() = default;
    void drain();
    /// Takes what is on the ring now and submits it; returns how many.
    size_t drain_once();

    std::string _signer_id;
    std::unique_ptr<hsm::signer> _signer;
    std::unique_ptr<hsm::evidence_log> _log;
    std::unique_ptr<hsm::batcher> _batcher;
    rte_ring* _ring = nullptr;
    std::span<const worker_counters> _workers;
    uint64_t _ring_full_seen = 0;
    std::atomic<bool> _stop{false};
    std::atomic<uint64_t> _nonces_set{0};
    std::thread _drain;
    bool _stopped = false;
};

} // namespace ptpsec
