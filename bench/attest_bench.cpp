// ptpsec-attest-bench: events per second attested end to end by the
// batching signer (hsm/batcher.h), and the latency from event to signed
// batch, per signer backend:
//
//   software  the OpenSSL key in a file (hsm/software_signer.h)
//   pkcs11    a SoftHSM2 token made for the run (hsm/pkcs11_signer.h)
//   tpm       a swtpm started for the run (hsm/tpm_signer.h)
//   slow      the software signer slowed to --slow-ms per signature
//             (hsm/slow_signer.h): a stand-in for a slow TPM
//
// One producer thread plays the data plane's drain thread: it submits
// synthetic event records (every field varies) in bursts of --burst, either
// at --rate events per second (one burst per millisecond, as a ring drained
// on a timer delivers them) or, with --rate 0, as fast as the batcher takes
// them (the producer waits while more than --backlog events are held, so
// nothing overflows and the number is the signer side's ceiling). After
// --duration seconds it stops the batcher, which signs what is open; the
// rates are over the whole run, drain included. Every run appends to an
// evidence log in a temporary directory (fdatasync per batch, as in
// production).
//
// Reported per backend: events/s signed, batches/s, mean and largest
// batch, p50/p99/max event-to-token latency (submit to the batch's record
// durable in the log), the batcher's CPU time per event (its builder,
// device and writer threads: claims, Merkle tree, signature, log record,
// append), leaves built while their batch was open, the producer's time in
// submit() per event, and failures/overflow. --json prints one JSON object.
//
// The swtpm and SoftHSM2 set-up is the tests' own (tests/hsm/swtpm.h,
// tests/hsm/softhsm.h, included as they are): swtpm on free loopback ports
// with its state in a temporary directory, stopped by PID at the end; a
// SoftHSM2 configuration and token in a temporary directory, removed at the
// end.

#include <hsm/batcher.h>
#include <hsm/evidence_log.h>
#include <hsm/pkcs11_signer.h>
#include <hsm/slow_signer.h>
#include <hsm/software_signer.h>
#include <hsm/tpm_signer.h>

#include <tests/hsm/softhsm.h>
#include <tests/hsm/swtpm.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace ptpsec;
using namespace ptpsec::hsm;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

struct options {
    std::vector<std::string> backends{"software", "pkcs11", "tpm", "slow"};
    double duration_s = 3.0;
    uint64_t rate = 0;
    size_t burst = 256;
    size_t backlog = 1 << 16;
    size_t max_events = 4096;
    unsigned max_wait_ms = 100;
    unsigned slow_ms = 70;
    unsigned threads = 1;
    std::string algorithm = "es256";
    bool json_output = false;
};

struct run_result {
    std::string backend;
    double seconds = 0;
    batcher_stats stats;
    batcher_stop_report stop;
    double submit_ns_per_event = 0;
};

std::vector<event_record> synthetic_records(size_t n) {
    std::vector<event_record> out(n);
    for (size_t i = 0; i < n; ++i) {
        event_record& r = out[i];
        r.version = event_record_version;
        r.direction = i % 2 == 0 ? event_direction::rx : event_direction::tx;
        r.messageType = static_cast<uint8_t>(i % 4 == 3 ? 8 : i % 4);
        r.domainNumber = static_cast<uint8_t>(i % 2);
        r.port_id = static_cast<uint16_t>(i % 4);
        r.timestamp_ns = 1'700'000'000'000'000'000ULL + i * 7'812'500ULL;
        r.correctionField = static_cast<int64_t>(i * 13) - 5000;
        r.sourcePortIdentity = {
            0x00, 0x1b, 0x21, 0xff, 0xfe, 0x8a, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i), 0x00, 0x01};
        r.sequenceId = static_cast<uint16_t>(i);
        r.messageLength = 44;
        r.flagField = 0x0200;
        r.flags = event_flag_hw_timestamp;
        for (size_t b = 0; b < r.digest.size(); ++b) {
            r.digest[b] = static_cast<uint8_t>(i * 31 + b);
        }
    }
    return out;
}

/// Drives one batcher over `s` for the run and returns what it measured.
run_result drive(const std::string& name, signer& s, const options& opt) {
    test::temp_dir dir;
    auto log = evidence_log::open(dir.path(), "evidence", 256ULL << 20);
    if (!log) {
        throw std::runtime_error(log.message());
    }
    batcher_settings settings;
    settings.signer_id = "bench-observer.example";
    settings.max_events = opt.max_events;
    settings.max_wait = std::chrono::milliseconds(opt.max_wait_ms);
    settings.builder_threads = opt.threads;
    settings.stop_timeout = 30s;
    auto started = batcher::start(s, **log, settings);
    if (!started) {
        throw std::runtime_error(started.message());
    }
    batcher& b = **started;

    const std::vector<event_record> records = synthetic_records(1 << 16);
    size_t cursor = 0;
    std::chrono::nanoseconds in_submit{0};
    uint64_t submitted = 0;
    auto submit_burst = [&](size_t n) {
        while (n > 0) {
            const size_t take = std::min(n, records.size() - cursor);
            const auto t0 = clock_type::now();
            b.submit({records.data() + cursor, take});
            in_submit += clock_type::now() - t0;
            submitted += take;
            cursor = (cursor + take) % records.size();
            n -= take;
        }
    };

    const auto duration =
        std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(opt.duration_s));
    const auto start = clock_type::now();
    if (opt.rate == 0) {
        while (clock_type::now() - start < duration) {
            if (b.stats().events_held > opt.backlog) {
                std::this_thread::sleep_for(200us);
                continue;
            }
            submit_burst(opt.burst);
        }
    } else {
        for (auto now = start; now - start < duration; now = clock_type::now()) {
            const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - start).count();
            const uint64_t due = opt.rate * static_cast<uint64_t>(us) / 1'000'000;
            if (due > submitted) {
                submit_burst(due - submitted);
            }
            std::this_thread::sleep_until(now + 1ms);
        }
    }
    run_result r;
    r.backend = name;
    r.stop = b.stop();
    r.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    r.stats = b.stats();
    r.submit_ns_per_event =
        submitted == 0 ? 0.0 : static_cast<double>(in_submit.count()) / static_cast<double>(submitted);
    return r;
}

run_result run_backend(const std::string& name, const options& opt) {
    const signature_algorithm alg = opt.algorithm == "eddsa" ? signature_algorithm::eddsa : signature_algorithm::es256;
    if (name == "software" || name == "slow") {
        test::temp_dir keys;
        auto s = software_signer::open({keys.file("key.pem"), keys.file("counter"), alg});
        if (!s) {
            throw std::runtime_error(s.message());
        }
        if (name == "software") {
            return drive(name, **s, opt);
        }
        slow_signer slow(**s, std::chrono::milliseconds(opt.slow_ms));
        return drive(fmt::format("slow ({} ms)", opt.slow_ms), slow, opt);
    }
    if (name == "pkcs11") {
        if (!test::softhsm_available()) {
            throw std::runtime_error("SoftHSM2 is not installed");
        }
        test::softhsm_token token("ptpsec-bench");
        pkcs11_settings ps;
        ps.module_path = test::softhsm_module;
        ps.token_label = token.label();
        ps.user_pin = token.user_pin();
        ps.key_label = "bench-signer";
        ps.algorithm = alg;
        ps.counter_path = token.file("bench-signer.counter");
        ps.signer_id = "bench-observer.example";
        auto s = pkcs11_signer::open(ps);
        if (!s) {
            throw std::runtime_error(s.message());
        }
        return drive("pkcs11 (SoftHSM2)", **s, opt);
    }
    if (name == "tpm") {
        if (alg != signature_algorithm::es256) {
            throw std::runtime_error("the TPM signer signs ES256 only");
        }
        test::swtpm tpm;
        tpm_settings ts;
        ts.tcti = tpm.tcti();
        ts.signer_id = "bench-observer.example";
        auto s = tpm_signer::open(ts);
        if (!s) {
            throw std::runtime_error(s.message());
        }
        run_result r = drive("tpm (swtpm)", **s, opt);
        s = error{"closed"}; // disconnect before swtpm is stopped
        return r;
    }
    throw std::runtime_error(fmt::format("unknown backend '{}'", name));
}

double per_second(uint64_t n, double seconds) {
    return seconds > 0 ? static_cast<double>(n) / seconds : 0.0;
}

json to_json(const run_result& r) {
    const batcher_stats& s = r.stats;
    json j;
    j["backend"] = r.backend;
    j["seconds"] = r.seconds;
    j["events_signed"] = s.events_signed;
    j["events_per_s"] = per_second(s.events_signed, r.seconds);
    j["batches"] = s.batches_signed;
    j["batches_per_s"] = per_second(s.batches_signed, r.seconds);
    j["mean_batch"] =
        s.batches_signed == 0 ? 0.0 : static_cast<double>(s.events_signed) / static_cast<double>(s.batches_signed);
    j["largest_batch"] = s.largest_batch;
    j["leaves_built_early"] = s.leaves_built_early;
    j["latency_p50_ms"] = static_cast<double>(s.latency_p50.count()) / 1000.0;
    j["latency_p99_ms"] = static_cast<double>(s.latency_p99.count()) / 1000.0;
    j["latency_max_ms"] = static_cast<double>(s.latency_max.count()) / 1000.0;
    j["signer_cpu_ns_per_event"] =
        s.events_signed == 0 ? 0.0 : static_cast<double>(s.signer_cpu.count()) / static_cast<double>(s.events_signed);
    j["submit_ns_per_event"] = r.submit_ns_per_event;
    j["sign_failures"] = s.sign_failures;
    j["log_failures"] = s.log_failures;
    j["missed_overflow"] = s.missed_overflow;
    j["events_unsigned"] = r.stop.events_unsigned;
    return j;
}

int run(int argc, char** argv) {
    options opt;
    CLI::App cli{"ptpsec-attest-bench: events per second attested end to end by the batching signer, per backend"};
    cli.add_option("--backend", opt.backends, "software, pkcs11, tpm, slow (repeatable; default all four)")
        ->check(CLI::IsMember({"software", "pkcs11", "tpm", "slow"}));
    cli.add_option("--duration", opt.duration_s, "seconds of submitting per backend")->check(CLI::Range(0.1, 3600.0));
    cli.add_option("--rate", opt.rate, "offered events per second; 0: as fast as the batcher takes them");
    cli.add_option("--burst", opt.burst, "records per submit() with --rate 0")->check(CLI::Range(1, 1 << 20));
    cli.add_option("--backlog", opt.backlog, "with --rate 0, events held before the producer waits");
    cli.add_option("--max-events", opt.max_events, "N: a batch closes at this many events")
        ->check(CLI::Range(1, 1 << 20));
    cli.add_option("--max-wait-ms", opt.max_wait_ms, "T: a batch closes when its first event is this old")
        ->check(CLI::Range(1U, 60000U));
    cli.add_option("--threads", opt.threads, "threads that write and hash a batch's leaves")
        ->check(CLI::Range(1U, 16U));
    cli.add_option("--slow-ms", opt.slow_ms, "signature time of the slow backend")->check(CLI::Range(1U, 10000U));
    cli.add_option("--algorithm", opt.algorithm, "es256 or eddsa (software and pkcs11)")
        ->check(CLI::IsMember({"es256", "eddsa"}));
    cli.add_flag("--json", opt.json_output, "print one JSON object instead of the table");
    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return cli.exit(e);
    }

    json results = json::array();
    int status = 0;
    if (!opt.json_output) {
        fmt::print("{:<18} {:>11} {:>9} {:>10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>8}\n", "backend", "events/s",
                   "batches/s", "mean batch", "p50 ms", "p99 ms", "max ms", "signer ns", "submit ns", "failures");
    }
    for (const std::string& name : opt.backends) {
        try {
            const run_result r = run_backend(name, opt);
            const json j = to_json(r);
            results.push_back(j);
            if (!opt.json_output) {
                fmt::print("{:<18} {:>11.0f} {:>9.1f} {:>10.0f} {:>9.1f} {:>9.1f} {:>9.1f} {:>10.0f} {:>10.1f} {:>8}\n",
                           r.backend, j["events_per_s"].get<double>(), j["batches_per_s"].get<double>(),
                           j["mean_batch"].get<double>(), j["latency_p50_ms"].get<double>(),
                           j["latency_p99_ms"].get<double>(), j["latency_max_ms"].get<double>(),
                           j["signer_cpu_ns_per_event"].get<double>(), r.submit_ns_per_event,
                           r.stats.sign_failures + r.stats.log_failures);
                std::fflush(stdout);
            }
            if (r.stop.events_unsigned > 0 || r.stats.missed_overflow > 0) {
                status = 1;
            }
        } catch (const std::exception& e) {
            fmt::print(stderr, "ptpsec-attest-bench: {}: {}\n", name, e.what());
            status = 1;
        }
    }
    if (opt.json_output) {
        json out;
        out["rate"] = opt.rate;
        out["duration_s"] = opt.duration_s;
        out["max_events"] = opt.max_events;
        out["max_wait_ms"] = opt.max_wait_ms;
        out["builder_threads"] = opt.threads;
        out["algorithm"] = opt.algorithm;
        out["hardware_threads"] = std::thread::hardware_concurrency();
        out["results"] = results;
        fmt::print("{}\n", out.dump(2));
    }
    return status;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        fmt::print(stderr, "ptpsec-attest-bench: {}\n", e.what());
        return 2;
    }
}
