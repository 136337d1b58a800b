// ptpsec-verifier-bench: events per second the Verifier checks from an
// evidence log, alone and while it records every batch and event in the
// audit store (SQLite, or PostgreSQL with --postgres).
//
// The log is made for the run: --events synthetic events from --sources
// grandmasters (every message type, both directions, a random digest per
// event, as SHA-256 outputs are) in batches of --batch, signed with a
// software ES256 key (hsm/software_signer.h) and written as the data plane's
// log files of --slice events each (evidence.0.cbor, evidence.1.cbor, ...),
// in a temporary directory ($TMPDIR or /tmp), removed at the end. The key is
// enrolled in a registrar there.
//
// Each mode verifies the files in order with one ptpsec::verifier::verifier,
// as the online Verifier reads a rotating log: `none` keeps the chain state
// in memory (`ptpsecctl evidence verify` without --audit), `sqlite` records
// into a new database file beside the log (`--audit sqlite:PATH`),
// `postgresql` into a private PostgreSQL cluster started for the run
// (tests/verifier/postgres.h, Unix socket only, fsync on, stopped by PID at
// the end), or into the database --postgres names, emptied first (its audit
// tables are dropped: give it a database of its own). Reported per mode: events/s
// and µs per event over the whole log and for each slice (an audit store
// slows as its B-trees outgrow the page cache), and the database's size per
// event. A failure in any mode is an error: the numbers are of logs that
// verify (the warning that the software key is not hardware-rooted is
// expected).

#include <control/verifier/audit_store.h>
#include <control/verifier/registrar.h>
#include <control/verifier/sql.h>
#include <control/verifier/verifier.h>
#include <hsm/evidence.h>
#include <hsm/software_signer.h>

#include <tests/process.h>
#include <tests/verifier/postgres.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace ptpsec;
using clock_type = std::chrono::steady_clock;
using json = nlohmann::ordered_json;

struct options {
    size_t events = 1'000'000;
    size_t batch = 4096;
    size_t slice = 250'000;
    unsigned sources = 8;
    std::vector<std::string> modes{"none", "sqlite"};
    std::string postgres;
    bool json_output = false;
};

constexpr uint64_t base_time_ns = 1'700'000'000'000'000'000ULL;
constexpr const char* signer_id = "bench-observer.example";

/// Event `i` of the stream: Sync, Delay_Req, Follow_Up, Delay_Resp in turn
/// from `sources` grandmasters, received and sent, 16 events per
/// millisecond; the digest is random, as a SHA-256 output is.
event_record synthetic_event(uint64_t i, unsigned sources, std::mt19937_64& rng) {
    static constexpr uint8_t types[] = {0x0, 0x1, 0x8, 0x9};
    event_record r{};
    r.version = event_record_version;
    r.direction = i % 2 == 0 ? event_direction::rx : event_direction::tx;
    r.messageType = types[(i / 2) % 4];
    r.domainNumber = 0;
    r.port_id = static_cast<uint16_t>(1 + i % 2);
    r.timestamp_ns = base_time_ns + i * 62'500ULL;
    r.correctionField = static_cast<int64_t>(i % 1000) << 16;
    const auto source = static_cast<uint8_t>((i / 8) % sources);
    r.sourcePortIdentity = {0x00, 0x1b, 0x21, 0xff, 0xfe, 0x8a, 0x00, source, 0x00, 0x01};
    r.sequenceId = static_cast<uint16_t>(i / (8ULL * sources));
    r.messageLength = 44;
    r.flagField = 0x0200;
    r.flags = event_flag_hw_timestamp;
    for (size_t b = 0; b < r.digest.size(); b += 8) {
        const uint64_t v = rng();
        std::memcpy(r.digest.data() + b, &v, 8);
    }
    return r;
}

/// Signs the stream into log files of `opt.slice` events; returns their paths.
std::vector<std::string> make_logs(hsm::signer& s, const options& opt, const std::filesystem::path& dir) {
    std::mt19937_64 rng(0x5eed);
    std::vector<std::string> files;
    std::ofstream out;
    size_t in_file = opt.slice; // open the first file at once
    hsm::digest previous = hsm::first_batch_previous_root;
    for (uint64_t first = 0; first < opt.events;) {
        if (in_file >= opt.slice) {
            files.push_back((dir / fmt::format("evidence.{}.cbor", files.size())).string());
            out = std::ofstream(files.back(), std::ios::binary | std::ios::trunc);
            in_file = 0;
        }
        const size_t n = std::min({opt.batch, opt.events - first, opt.slice - in_file});
        hsm::batch_request req;
        req.signer_id = signer_id;
        req.previous_root = previous;
        req.events.reserve(n);
        for (size_t k = 0; k < n; ++k) {
            req.events.push_back({synthetic_event(first + k, opt.sources, rng), first + k});
        }
        req.batch_time_ns = req.events.back().record.timestamp_ns + 1'000'000;
        auto rec = hsm::sign_batch(s, req);
        if (!rec) {
            throw std::runtime_error(rec.message());
        }
        auto enc = hsm::encode_log_record(*rec);
        if (!enc) {
            throw std::runtime_error(enc.message());
        }
        out.write(reinterpret_cast<const char*>(enc->data()), static_cast<std::streamsize>(enc->size()));
        if (!out) {
            throw std::runtime_error("cannot write " + files.back());
        }
        previous = rec->payload.merkle_root;
        first += n;
        in_file += n;
    }
    return files;
}

struct mode_result {
    std::string mode;
    double seconds = 0;
    uint64_t events = 0;
    std::vector<double> slice_events_per_s;
    double store_octets_per_event = 0;
};

uint64_t file_size_or_zero(const std::filesystem::path& p) {
    std::error_code ec;
    const auto n = std::filesystem::file_size(p, ec);
    return ec ? 0 : n;
}

/// An empty PostgreSQL audit store: the tables a run before left are dropped.
std::unique_ptr<verifier::audit_store> fresh_postgres(const std::string& conninfo) {
    auto db = verifier::sql::open_postgresql(conninfo);
    if (!db) {
        throw std::runtime_error(db.message());
    }
    if (auto st = (*db)->script("DROP TABLE IF EXISTS events, batches, failures, chain_state CASCADE;"); !st) {
        throw std::runtime_error(st.message());
    }
    auto store = verifier::audit_store::open(std::move(*db));
    if (!store) {
        throw std::runtime_error(store.message());
    }
    return std::move(*store);
}

/// Verifies the files in order into `store` (null: none), which is closed
/// before this returns; `db_path`, when given, is the SQLite file to weigh.
mode_result verify_into(const std::string& mode, verifier::registrar& reg, const std::vector<std::string>& files,
                        const options& opt, std::unique_ptr<verifier::audit_store> store,
                        const std::filesystem::path& db_path = {}) {
    verifier::verifier v(reg, store.get());
    mode_result out;
    out.mode = mode;
    for (const std::string& f : files) {
        const auto t0 = clock_type::now();
        const std::vector<std::string> one{f};
        const verifier::verify_report rep = v.verify_files(one);
        const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
        if (!rep.ok()) {
            const std::string why = !rep.failures.empty() ? rep.failures.front().message : rep.store_errors.front();
            throw std::runtime_error(fmt::format("{}: {} does not verify: {}", mode, f, why));
        }
        out.seconds += s;
        out.events += rep.events;
        out.slice_events_per_s.push_back(static_cast<double>(rep.events) / s);
    }
    store.reset(); // closed: SQLite folds its WAL into the file
    if (!db_path.empty()) {
        const uint64_t octets = file_size_or_zero(db_path) + file_size_or_zero(db_path.string() + "-wal");
        out.store_octets_per_event = static_cast<double>(octets) / static_cast<double>(out.events);
    }
    if (out.events != opt.events) {
        throw std::runtime_error(fmt::format("{}: {} events verified of {}", mode, out.events, opt.events));
    }
    return out;
}

mode_result run_mode(const std::string& mode, verifier::registrar& reg, const std::vector<std::string>& files,
                     const options& opt, const std::filesystem::path& dir) {
    if (mode == "sqlite") {
        const auto db_path = dir / "audit.db";
        auto s = verifier::audit_store::open("sqlite:" + db_path.string());
        if (!s) {
            throw std::runtime_error(s.message());
        }
        return verify_into(mode, reg, files, opt, std::move(*s), db_path);
    }
    if (mode == "postgresql") {
        std::optional<test::postgres_cluster> cluster; // stopped after the store is closed
        if (opt.postgres.empty()) {
            cluster.emplace(true);
        }
        return verify_into(mode, reg, files, opt, fresh_postgres(cluster ? cluster->conninfo() : opt.postgres));
    }
    return verify_into(mode, reg, files, opt, nullptr);
}

json to_json(const mode_result& r) {
    json j;
    j["mode"] = r.mode;
    j["events"] = r.events;
    j["seconds"] = r.seconds;
    j["events_per_s"] = static_cast<double>(r.events) / r.seconds;
    j["us_per_event"] = r.seconds * 1e6 / static_cast<double>(r.events);
    j["slice_events_per_s"] = r.slice_events_per_s;
    if (r.store_octets_per_event > 0) {
        j["store_octets_per_event"] = r.store_octets_per_event;
    }
    return j;
}

int run(int argc, char** argv) {
    options opt;
    CLI::App cli{"ptpsec-verifier-bench: events per second the Verifier checks from an evidence log, with and "
                 "without the audit store"};
    cli.add_option("--events", opt.events, "events in the log")->check(CLI::Range(size_t{1}, size_t{1} << 30));
    cli.add_option("--batch", opt.batch, "events per batch")->check(CLI::Range(1, 1 << 20));
    cli.add_option("--slice", opt.slice, "events per log file (timed one by one)")
        ->check(CLI::Range(size_t{1}, size_t{1} << 30));
    cli.add_option("--sources", opt.sources, "grandmasters the events come from")->check(CLI::Range(1U, 255U));
    cli.add_option("--mode", opt.modes, "none, sqlite, postgresql (repeatable; default none and sqlite)")
        ->check(CLI::IsMember({"none", "sqlite", "postgresql"}));
    cli.add_option("--postgres", opt.postgres,
                   "libpq conninfo of a database of its own for the postgresql mode (its audit tables are dropped "
                   "first; default: a private cluster started for the run); adds the mode");
    cli.add_flag("--json", opt.json_output, "print one JSON object instead of the table");
    try {
        cli.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return cli.exit(e);
    }
    if (!opt.postgres.empty() && std::find(opt.modes.begin(), opt.modes.end(), "postgresql") == opt.modes.end()) {
        opt.modes.emplace_back("postgresql");
    }

    test::temp_dir dir;
    auto s =
        hsm::software_signer::open({dir.file("bench.pem"), dir.file("bench.counter"), hsm::signature_algorithm::es256});
    if (!s) {
        throw std::runtime_error(s.message());
    }
    auto reg = verifier::registrar::open(dir.file("registrar.db"));
    if (!reg) {
        throw std::runtime_error(reg.message());
    }
    if (auto st = (*reg)->enrol_software(signer_id, (*s)->info().algorithm, (*s)->info().public_key_der,
                                         dir.file("bench.pem"), true);
        !st) {
        throw std::runtime_error(st.message());
    }
    const auto t0 = clock_type::now();
    const std::vector<std::string> files = make_logs(**s, opt, dir.path());
    const double make_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    uint64_t log_octets = 0;
    for (const auto& f : files) {
        log_octets += file_size_or_zero(f);
    }
    if (!opt.json_output) {
        std::printf("log: %zu events in %zu batches of %zu, %zu files, %.1f octets per event (made in %.1f s)\n",
                    opt.events, (opt.events + opt.batch - 1) / opt.batch, opt.batch, files.size(),
                    static_cast<double>(log_octets) / static_cast<double>(opt.events), make_s);
        std::printf("%-11s %12s %12s %14s  %s\n", "mode", "events/s", "us/event", "store B/event",
                    "events/s per file, in order");
    }
    json results = json::array();
    for (const std::string& mode : opt.modes) {
        const mode_result r = run_mode(mode, **reg, files, opt, dir.path());
        results.push_back(to_json(r));
        if (!opt.json_output) {
            std::string slices;
            for (double v : r.slice_events_per_s) {
                slices += fmt::format("{}{:.0f}", slices.empty() ? "" : " ", v);
            }
            std::printf("%-11s %12.0f %12.2f %14s  %s\n", r.mode.c_str(), static_cast<double>(r.events) / r.seconds,
                        r.seconds * 1e6 / static_cast<double>(r.events),
                        r.store_octets_per_event > 0 ? fmt::format("{:.0f}", r.store_octets_per_event).c_str() : "-",
                        slices.c_str());
        }
    }
    if (opt.json_output) {
        json out;
        out["events"] = opt.events;
        out["batch"] = opt.batch;
        out["files"] = files.size();
        out["log_octets_per_event"] = static_cast<double>(log_octets) / static_cast<double>(opt.events);
        out["results"] = results;
        std::printf("%s\n", out.dump(2).c_str());
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "ptpsec-verifier-bench: %s\n", e.what());
        return 1;
    }
}
