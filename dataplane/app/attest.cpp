#include <dataplane/app/attest.h>

#include <dataplane/sa_update_wire.h>
#include <drivers/base/thread_name.h>
#include <hsm/pkcs11_signer.h>
#include <hsm/software_signer.h>
#include <hsm/tpm_signer.h>

#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <chrono>

namespace ptpsec {

namespace {

result<uint32_t> handle_from(std::string_view option, std::string_view text) {
    std::string_view digits = text;
    int base = 10;
    if (digits.starts_with("0x") || digits.starts_with("0X")) {
        digits.remove_prefix(2);
        base = 16;
    }
    uint32_t v = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size()) {
        return error{fmt::format("{} {}: not a TPM handle (0x81000100, for example)", option, text)};
    }
    return v;
}

result<hsm::signature_algorithm> algorithm_from(std::string_view text) {
    if (text == "es256") {
        return hsm::signature_algorithm::es256;
    }
    if (text == "eddsa") {
        return hsm::signature_algorithm::eddsa;
    }
    return error{fmt::format("--attest-algorithm {}: use es256 or eddsa", text)};
}

std::string host_name() {
    std::array<char, 256> name{};
    if (::gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') {
        return "ptpsec-dataplane";
    }
    return name.data();
}

result<std::unique_ptr<hsm::signer>> open_signer(const attest_options& o, const std::string& signer_id) {
    if (o.backend == "software") {
        if (o.key_file.empty() || o.counter_file.empty()) {
            return error{"--attest software needs --attest-key FILE and --attest-counter FILE"};
        }
        PTPSEC_TRY(alg, algorithm_from(o.algorithm));
        auto s = hsm::software_signer::open({o.key_file, o.counter_file, *alg});
        if (!s) {
            return error{fmt::format("--attest software: {}", s.message())};
        }
        return std::unique_ptr<hsm::signer>(std::move(s).value());
    }
    if (o.backend == "tpm") {
        hsm::tpm_settings t;
        t.tcti = o.tcti;
        PTPSEC_TRY(key, handle_from("--attest-tpm-key-handle", o.tpm_key_handle));
        PTPSEC_TRY(counter, handle_from("--attest-tpm-counter-index", o.tpm_counter_index));
        t.key_handle = *key;
        t.counter_index = *counter;
        t.signer_id = signer_id;
        auto s = hsm::tpm_signer::open(t);
        if (!s) {
            return error{fmt::format("--attest tpm: {}", s.message())};
        }
        return std::unique_ptr<hsm::signer>(std::move(s).value());
    }
    if (o.backend == "pkcs11") {
        if (o.pkcs11_token.empty() || o.pkcs11_pin_file.empty() || o.counter_file.empty()) {
            return error{"--attest pkcs11 needs --attest-pkcs11-token LABEL, --attest-pkcs11-pin-file FILE and "
                         "--attest-counter FILE"};
        }
        hsm::pkcs11_settings p;
        p.module_path = o.pkcs11_module;
        p.token_label = o.pkcs11_token;
        p.user_pin_file = o.pkcs11_pin_file;
        p.key_label = o.pkcs11_key;
        PTPSEC_TRY(alg, algorithm_from(o.algorithm));
        p.algorithm = *alg;
        p.counter_path = o.counter_file;
        p.signer_id = signer_id;
        auto s = hsm::pkcs11_signer::open(p);
        if (!s) {
            return error{fmt::format("--attest pkcs11: {}", s.message())};
        }
        return std::unique_ptr<hsm::signer>(std::move(s).value());
    }
    return error{fmt::format("--attest {}: use none, tpm, pkcs11 or software", o.backend)};
}

} // namespace

result<std::unique_ptr<attestation>> attestation::start(const attest_options& opt, rte_ring* ring,
                                                        std::span<const worker_counters> workers) {
    if (ring == nullptr) {
        return error{"--attest needs timing events: add --events rx, tx or both"};
    }
    if (opt.log_dir.empty()) {
        return error{"--attest needs --attest-log DIR (where the evidence log goes)"};
    }
    std::unique_ptr<attestation> a(new attestation());
    a->_signer_id = opt.signer_id.empty() ? host_name() : opt.signer_id;
    PTPSEC_TRY(s, open_signer(opt, a->_signer_id));
    a->_signer = std::move(s).value();
    auto log = hsm::evidence_log::open(opt.log_dir, opt.log_name, opt.log_max_mb * 1024 * 1024);
    if (!log) {
        return error{fmt::format("--attest-log {}: {}", opt.log_dir, log.message())};
    }
    a->_log = std::move(log).value();
    hsm::batcher_settings b;
    b.max_events = opt.batch_events;
    b.max_wait = std::chrono::milliseconds(opt.batch_ms);
    b.builder_threads = opt.builder_threads;
    b.max_open_events = opt.max_held;
    b.signer_id = a->_signer_id;
    auto started = hsm::batcher::start(*a->_signer, *a->_log, b);
    if (!started) {
        return error{fmt::format("attestation: {}", started.message())};
    }
    // The chain continues from the log (hsm/batcher.h): a key that signed
    // before, on an empty log, starts it again, which a verifier that saw
    // the earlier batches reports as a dropped batch. Said once, here.
    if (!a->_log->last_record()) {
        if (auto counter = a->_signer->read_counter(); counter && *counter > 0) {
            fmt::print(stderr,
                       "ptpsec-dataplane: attestation: the evidence log in {} is empty, but signer \"{}\" has signed "
                       "{} batch(es) before: its chain starts again here, and a verifier that saw the earlier "
                       "batches reports this break as a dropped batch (keep one log directory per key, and keep its "
                       "files)\n",
                       opt.log_dir, a->_signer_id, *counter);
        }
    }
    a->_batcher = std::move(started).value();
    a->_ring = ring;
    a->_workers = workers;
    a->_ring_full_seen = total_events_ring_full(workers);
    a->_drain = std::thread([p = a.get()] { p->drain(); });
    name_thread(a->_drain, "attest-drain");
    return a;
}

attestation::~attestation() {
    (void)stop();
}

size_t attestation::drain_once() {
    std::array<event_record, 512> recs;
    const unsigned n = rte_ring_dequeue_burst_elem(_ring, recs.data(), sizeof(event_record),
                                                   static_cast<unsigned>(recs.size()), nullptr);
    // Records the ring refused since the last look: they would have come
    // before the ones taken now (or among them; the count is what matters).
    const uint64_t full = total_events_ring_full(_workers);
    const uint64_t missed = full - _ring_full_seen;
    _ring_full_seen = full;
    if (n != 0 || missed != 0) {
        (void)_batcher->submit(std::span<const event_record>(recs.data(), n), missed);
    }
    return n;
}

void attestation::drain() {
    while (!_stop.load(std::memory_order_relaxed)) {
        if (drain_once() == 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
}

hsm::batcher_stop_report attestation::stop() {
    if (_stopped || !_batcher) {
        return {}; // stopped already, or start() failed before the batcher ran
    }
    _stopped = true;
    _stop.store(true, std::memory_order_relaxed);
    if (_drain.joinable()) {
        _drain.join();
    }
    while (drain_once() != 0) {
    }
    return _batcher->stop();
}

status attestation::set_nonce(std::span<const uint8_t> nonce) {
    static_assert(sa_wire::min_nonce_len == hsm::min_nonce_len && sa_wire::max_nonce_len == hsm::max_nonce_len);
    auto s = _batcher->set_nonce(
        nonce.empty() ? std::nullopt : std::optional<std::vector<uint8_t>>(std::in_place, nonce.begin(), nonce.end()));
    if (s) {
        _nonces_set.fetch_add(1, std::memory_order_relaxed);
    }
    return s;
}

void attestation::print(std::FILE* out, std::string_view label) const {
    const hsm::batcher_stats s = _batcher->stats();
    const auto ms = [](std::chrono::microseconds us) { return static_cast<double>(us.count()) / 1000.0; };
    fmt::print(out,
               "attestation ({}): {} signer {} | events signed {} of {} in {} batches (largest {}), held {} | missed: "
               "ring {} overflow {} | sign failures {} log failures {} | event-to-token p50 {} ms p99 {} ms max {} "
               "ms{}{}\n",
               label, hsm::to_string(_signer->info().kind), _signer_id, s.events_signed, s.events_submitted,
               s.batches_signed, s.largest_batch, s.events_held, s.missed_ring, s.missed_overflow, s.sign_failures,
               s.log_failures, ms(s.latency_p50), ms(s.latency_p99), ms(s.latency_max),
               s.last_error.empty() ? "" : " | last error: ", s.last_error);
}

} // namespace ptpsec
