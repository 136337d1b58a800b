// The `evidence` and `registrar` subcommands, run in-process on a CLI11 app
// the way ptpsecctl runs them: exit codes (0 ok, 1 failed or refused, 2
// usage or cannot open), one line per failure naming the batch and the
// check, the summary line, --json, and the queries.

#include "helpers.h"

#include <control/verifier/audit_store.h>
#include <control/verifier/cli.h>
#include <drivers/base/cli_numbers.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <filesystem>

namespace ptpsec::verifier {
namespace {

using namespace test;

struct cli_result {
    int code = -1;
    std::string out;
    std::string err;
};

cli_result run_cli(std::vector<std::string> args) {
    CLI::App app{"test"};
    app.require_subcommand(1);
    cli_commands commands(app);
    check_whole_numbers(app); // as ptpsecctl does
    args.insert(args.begin(), "ptpsecctl");
    std::vector<char*> argv;
    for (auto& a : args) {
        argv.push_back(a.data());
    }
    cli_result r;
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    try {
        app.parse(static_cast<int>(argv.size()), argv.data());
        const auto rc = commands.run();
        r.code = rc ? *rc : -1;
    } catch (const CLI::ParseError& e) {
        r.code = app.exit(e) == 0 ? 0 : 2;
    }
    std::fflush(stdout);
    r.out = ::testing::internal::GetCapturedStdout();
    r.err = ::testing::internal::GetCapturedStderr();
    return r;
}

class cli_test : public ::testing::Test {
protected:
    void SetUp() override {
        _signer = software(_dir, "gm-a");
        ASSERT_NE(_signer, nullptr);
        _db = _dir.file("registrar.db");
        _audit = "sqlite:" + _dir.file("audit.db");
    }

    /// `ptpsecctl registrar enrol` of a software signer: `signer_id` with the
    /// key of software(_dir, `key`), in the Registrar `db` (default: _db).
    void enrol_cli(const std::string& signer_id = "gm-a", const std::string& key = "gm-a", std::string db = {}) {
        const auto r = run_cli({"registrar", "enrol", "--db", db.empty() ? _db : db, "--signer-id", signer_id,
                                "--software", _dir.file(key + ".pem"), "--allow-software"});
        ASSERT_EQ(r.code, 0) << r.out << r.err;
    }

    temp_dir _dir;
    std::unique_ptr<hsm::software_signer> _signer;
    std::string _db;
    std::string _audit;
};

TEST_F(cli_test, registrar_enrol_list_revoke) {
    auto refused =
        run_cli({"registrar", "enrol", "--db", _db, "--signer-id", "gm-a", "--software", _dir.file("gm-a.pem")});
    EXPECT_EQ(refused.code, 1);
    EXPECT_NE(refused.err.find("not hardware-rooted"), std::string::npos) << refused.err;
    enrol_cli();

    auto list = run_cli({"registrar", "list", "--db", _db});
    EXPECT_EQ(list.code, 0);
    EXPECT_NE(list.out.find("gm-a"), std::string::npos) << list.out;
    EXPECT_NE(list.out.find("active"), std::string::npos) << list.out;

    auto revoke = run_cli({"registrar", "revoke", "--db", _db, "gm-a", "--reason", "decommissioned"});
    EXPECT_EQ(revoke.code, 0) << revoke.err;
    auto again = run_cli({"registrar", "revoke", "--db", _db, "gm-a", "--reason", "twice"});
    EXPECT_EQ(again.code, 1);

    auto json = run_cli({"registrar", "list", "--db", _db, "--json"});
    ASSERT_EQ(json.code, 0);
    const auto j = nlohmann::json::parse(json.out);
    ASSERT_EQ(j.size(), 1U);
    EXPECT_EQ(j[0]["signer_id"], "gm-a");
    EXPECT_EQ(j[0]["backend"], "software");
    EXPECT_EQ(j[0]["hardware_rooted"], false);
    EXPECT_EQ(j[0]["revocation_reason"], "decommissioned");

    auto missing = run_cli({"registrar", "list", "--db", _dir.file("nothing.db")});
    EXPECT_EQ(missing.code, 2);
    auto usage = run_cli({"registrar", "enrol", "--db", _db});
    EXPECT_EQ(usage.code, 2);
    auto pcrs_without_tpm = run_cli({"registrar", "enrol", "--db", _db, "--signer-id", "x", "--expected-pcrs", "f"});
    EXPECT_EQ(pcrs_without_tpm.code, 2);
    auto unknown_ek = run_cli({"registrar", "enrol", "--db", _db, "--signer-id", "x", "--tpm", "device:/dev/null",
                               "--expected-pcrs", "f", "--ek", "P-384"});
    EXPECT_EQ(unknown_ek.code, 2);
    EXPECT_NE(unknown_ek.err.find("--ek: 'P-384' is not an EK template; one of auto, L-1 (RSA 2048), L-2 (ECC NIST "
                                  "P-256), H-1 (RSA 2048), H-2 (ECC NIST P-256), H-3 (ECC NIST P-384), H-4 (ECC NIST "
                                  "P-521), H-6 (RSA 3072), H-7 (RSA 4096)"),
              std::string::npos)
        << unknown_ek.err;
}

TEST_F(cli_test, evidence_verify_reports_each_failure_on_a_line_and_a_summary) {
    enrol_cli();
    chain c(*_signer, "gm-a");
    std::vector<hsm::batch_record> all{c.next(2), c.next(2), c.next(2)};
    write_bytes(_dir.file("good.log"), make_log(all).bytes);
    auto good = run_cli({"evidence", "verify", _dir.file("good.log"), "--registrar", _db, "--audit", _audit});
    EXPECT_EQ(good.code, 0) << good.out << good.err;
    EXPECT_NE(good.out.find("OK: 1 file(s), 3 record(s), 3 batch(es) accepted (3 verified), 6 event(s); 0 failure(s), "
                            "3 warning(s)"),
              std::string::npos)
        << good.out;
    EXPECT_NE(good.out.find("WARN"), std::string::npos);

    all.erase(all.begin() + 1);
    write_bytes(_dir.file("dropped.log"), make_log(all).bytes);
    auto dropped = run_cli({"evidence", "verify", _dir.file("dropped.log"), "--registrar", _db});
    EXPECT_EQ(dropped.code, 1);
    EXPECT_NE(dropped.out.find("FAIL " + _dir.file("dropped.log")), std::string::npos) << dropped.out;
    EXPECT_NE(dropped.out.find("batch 3 of \"gm-a\": dropped batch:"), std::string::npos) << dropped.out;
    EXPECT_NE(dropped.out.find("FAILED: 1 file(s)"), std::string::npos) << dropped.out;

    auto json = run_cli({"evidence", "verify", _dir.file("dropped.log"), "--registrar", _db, "--json", "--nonce",
                         "00112233445566778899"});
    EXPECT_EQ(json.code, 1);
    const auto j = nlohmann::json::parse(json.out);
    EXPECT_EQ(j["ok"], false);
    ASSERT_EQ(j["failures"].size(), 3U);
    EXPECT_EQ(j["failures"][0]["check"], "nonce mismatch");
    EXPECT_EQ(j["failures"][1]["check"], "dropped batch");
    EXPECT_EQ(j["failures"][1]["counter"], 3);
    EXPECT_EQ(j["failures"][1]["batch_index"], 1);

    // The replay of the good log to the audit store that saw it.
    auto replay = run_cli({"evidence", "verify", _dir.file("good.log"), "--registrar", _db, "--audit", _audit});
    EXPECT_EQ(replay.code, 1);
    EXPECT_NE(replay.out.find("replayed batch"), std::string::npos) << replay.out;

    EXPECT_EQ(run_cli({"evidence", "verify", _dir.file("good.log"), "--registrar", _dir.file("none.db")}).code, 2);
    EXPECT_EQ(run_cli({"evidence", "verify", _dir.file("good.log"), "--registrar", _db, "--nonce", "zz"}).code, 2);
    // A directory of logs under another base name (the data plane's --attest-log-name).
    std::filesystem::create_directory(_dir.file("named"));
    std::filesystem::copy_file(_dir.file("good.log"), _dir.file("named/gm.cbor"));
    const auto unnamed = run_cli({"evidence", "verify", _dir.file("named"), "--registrar", _db});
    EXPECT_EQ(unnamed.code, 2);
    EXPECT_NE(unnamed.err.find("no evidence log in it (evidence.cbor, evidence.N.cbor; --log-name names another)"),
              std::string::npos)
        << unnamed.err;
    const auto named = run_cli({"evidence", "verify", _dir.file("named"), "--log-name", "gm", "--registrar", _db});
    EXPECT_EQ(named.code, 0) << named.out << named.err;
    EXPECT_NE(named.out.find("OK: 1 file(s), 3 record(s)"), std::string::npos) << named.out;
    // A log that cannot be read is the caller's mistake (2), not evidence that fails (1).
    const auto missing = run_cli({"evidence", "verify", _dir.file("missing.log"), "--registrar", _db});
    EXPECT_EQ(missing.code, 2);
    EXPECT_NE(missing.err.find("evidence log " + _dir.file("missing.log") + ": cannot read it: No such file"),
              std::string::npos)
        << missing.err;
    // So is a device, refused before a byte of it is read.
    for (const std::vector<std::string>& cmd :
         {std::vector<std::string>{"evidence", "verify", "/dev/zero", "--registrar", _db},
          std::vector<std::string>{"evidence", "extract", "/dev/zero", "--event-index", "1", "--out",
                                   _dir.file("ev.cbor")},
          std::vector<std::string>{"evidence", "check-event", "/dev/zero", "--registrar", _db}}) {
        const auto device = run_cli(cmd);
        EXPECT_EQ(device.code, 2) << cmd[1];
        EXPECT_NE(device.err.find(" /dev/zero: not a regular file but a character device, whose reading need not "
                                  "end"),
                  std::string::npos)
            << cmd[1] << ": " << device.err;
    }
    // An audit store without its form is refused, never created as a file of that name.
    for (const std::string bad : {"foo:bar", "postgres:dbname=x", "plain.db"}) {
        const auto r = run_cli({"evidence", "verify", _dir.file("good.log"), "--registrar", _db, "--audit", bad});
        EXPECT_EQ(r.code, 2) << bad;
        EXPECT_NE(r.err.find("audit store \"" + bad + "\": use sqlite:PATH or postgresql:CONNINFO"), std::string::npos)
            << r.err;
        const auto q =
            run_cli({"evidence", "query", "seen", "--gm", "22d81afffebc61ed-1", "--seq", "5", "--audit", bad});
        EXPECT_EQ(q.code, 2) << bad;
        EXPECT_FALSE(std::filesystem::exists(bad)) << bad;
        EXPECT_FALSE(std::filesystem::exists(_dir.file(bad))) << bad;
    }
}

TEST_F(cli_test, a_failed_first_enrolment_leaves_no_registrar_and_check_ek_needs_its_files) {
    const std::string fresh = _dir.file("fresh.db");
    auto no_tpm = run_cli({"registrar", "enrol", "--db", fresh, "--signer-id", "x", "--tpm",
                           "swtpm:host=127.0.0.1,port=1", "--expected-pcrs", _dir.file("none.pcrs")});
    EXPECT_EQ(no_tpm.code, 2) << no_tpm.out;
    auto no_key = run_cli({"registrar", "enrol", "--db", fresh, "--signer-id", "x", "--software", _dir.file("none.pem"),
                           "--allow-software"});
    EXPECT_EQ(no_key.code, 2) << no_key.out;
    EXPECT_FALSE(std::filesystem::exists(fresh));
    EXPECT_FALSE(std::filesystem::exists(fresh + "-journal"));
    // One that goes through keeps the file; a later failure leaves it as it was.
    enrol_cli();
    auto twice = run_cli({"registrar", "enrol", "--db", _db, "--signer-id", "gm-a", "--software", _dir.file("none.pem"),
                          "--allow-software"});
    EXPECT_EQ(twice.code, 2);
    ASSERT_TRUE(std::filesystem::exists(_db));
    EXPECT_NE(run_cli({"registrar", "list", "--db", _db}).out.find("gm-a"), std::string::npos);

    auto check = run_cli({"registrar", "check-ek", "--db", _db, "--ek-ca", _dir.file("vendors.pem"), "--ek-crl",
                          _dir.file("vendors.crl")});
    EXPECT_EQ(check.code, 2) << check.out;
    EXPECT_NE(check.err.find("--ek-ca " + _dir.file("vendors.pem") + ": cannot read it: No such file"),
              std::string::npos)
        << check.err;
}

TEST_F(cli_test, one_events_evidence_is_extracted_and_checked_on_its_own) {
    enrol_cli();
    chain c(*_signer, "gm-a");
    write_bytes(_dir.file("a.log"), make_log({c.next(2), c.next(2), c.next(2)}).bytes);
    const std::string ev = _dir.file("event3.cbor");
    auto extracted = run_cli({"evidence", "extract", _dir.file("a.log"), "--event-index", "3", "--out", ev});
    ASSERT_EQ(extracted.code, 0) << extracted.out << extracted.err;
    EXPECT_NE(extracted.out.find("event 3 of \"gm-a\": received Sync seq 1003 from 001b21fffe010203-1 at "),
              std::string::npos)
        << extracted.out;
    EXPECT_NE(extracted.out.find("batch counter 2 (leaf 1 of 2, "), std::string::npos) << extracted.out;

    // The file is the documented event evidence, and proves what it says.
    const std::string raw = ptpsec::test::read_file(ev);
    auto decoded = hsm::decode_event_evidence(std::span(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
    ASSERT_TRUE(decoded) << decoded.message();
    EXPECT_EQ(decoded->leaf_index, 1U);
    EXPECT_EQ(decoded->tree_size, 2U);
    auto checked = run_cli({"evidence", "check-event", ev, "--registrar", _db});
    EXPECT_EQ(checked.code, 0) << checked.out << checked.err;
    EXPECT_NE(checked.out.find("OK: event 3 of \"gm-a\": received Sync seq 1003"), std::string::npos) << checked.out;
    EXPECT_NE(checked.out.find("software signer (NOT hardware-rooted), signature, inclusion proof and claims verified"),
              std::string::npos)
        << checked.out;
    auto as_json = run_cli({"evidence", "check-event", ev, "--registrar", _db, "--json"});
    ASSERT_EQ(as_json.code, 0) << as_json.err;
    const auto j = nlohmann::json::parse(as_json.out);
    EXPECT_EQ(j["ok"], true);
    EXPECT_EQ(j["event_index"], 3);
    EXPECT_EQ(j["sequence_id"], 1003);
    EXPECT_EQ(j["counter"], 2);

    // One sibling hash changed: the proof no longer leads to the signed root.
    hsm::event_evidence bent = *decoded;
    ASSERT_FALSE(bent.inclusion_path.empty());
    bent.inclusion_path[0][0] ^= 0x01;
    auto bent_bytes = hsm::encode_event_evidence(bent);
    ASSERT_TRUE(bent_bytes);
    write_bytes(_dir.file("bent.cbor"), *bent_bytes);
    auto refused = run_cli({"evidence", "check-event", _dir.file("bent.cbor"), "--registrar", _db});
    EXPECT_EQ(refused.code, 1) << refused.out << refused.err;
    EXPECT_TRUE(refused.out.starts_with("FAILED evidence: ")) << refused.out;
    // Not evidence at all.
    write_bytes(_dir.file("junk.cbor"), {0xa1, 0x01});
    auto junk = run_cli({"evidence", "check-event", _dir.file("junk.cbor"), "--registrar", _db});
    EXPECT_EQ(junk.code, 1);
    EXPECT_TRUE(junk.out.starts_with("FAILED decode: ")) << junk.out;
    // A registrar that does not know the signer.
    auto other = software(_dir, "observer-b");
    const std::string other_db = _dir.file("other.db");
    ASSERT_NO_FATAL_FAILURE(enrol_cli("observer-b", "observer-b", other_db));
    auto unknown = run_cli({"evidence", "check-event", ev, "--registrar", other_db});
    EXPECT_EQ(unknown.code, 1);
    EXPECT_EQ(unknown.out, "FAILED unknown signer: signer \"gm-a\" is not enrolled in the registrar\n");
    // The same signer_id enrolled with another key.
    const std::string impostor_db = _dir.file("impostor.db");
    ASSERT_NO_FATAL_FAILURE(enrol_cli("gm-a", "observer-b", impostor_db));
    auto wrong_key = run_cli({"evidence", "check-event", ev, "--registrar", impostor_db});
    EXPECT_EQ(wrong_key.code, 1);
    EXPECT_TRUE(wrong_key.out.starts_with("FAILED evidence: ")) << wrong_key.out;

    // An index that is not a number (CLI11 alone would read 010 as 8).
    auto octal = run_cli({"evidence", "extract", _dir.file("a.log"), "--event-index", "010", "--out", ev});
    EXPECT_EQ(octal.code, 2);
    EXPECT_NE(octal.err.find("--event-index: 010: write the number without leading zeros"), std::string::npos)
        << octal.err;
    // An index no batch holds; a file that cannot be read.
    auto absent = run_cli({"evidence", "extract", _dir.file("a.log"), "--event-index", "99", "--out", ev});
    EXPECT_EQ(absent.code, 1);
    EXPECT_NE(absent.err.find("event index 99 is in none of the batches read: the logs hold events 0 to 5"),
              std::string::npos)
        << absent.err;
    auto missing = run_cli({"evidence", "check-event", _dir.file("none.cbor"), "--registrar", _db});
    EXPECT_EQ(missing.code, 2);
    EXPECT_NE(
        missing.err.find("evidence file " + _dir.file("none.cbor") + ": cannot read it: No such file or directory"),
        std::string::npos)
        << missing.err;
    EXPECT_TRUE(j["warnings"].empty()) << as_json.out;

    // The signer revoked now: its batch, signed before, passes with the
    // warning evidence verify gives.
    auto revoked = run_cli({"registrar", "revoke", "--db", _db, "gm-a", "--reason", "key leaked"});
    ASSERT_EQ(revoked.code, 0) << revoked.err;
    auto warned = run_cli({"evidence", "check-event", ev, "--registrar", _db});
    EXPECT_EQ(warned.code, 0) << warned.out << warned.err;
    EXPECT_TRUE(warned.out.starts_with("OK: event 3 of \"gm-a\"")) << warned.out;
    EXPECT_NE(warned.out.find("\nWARNING signed before revocation: signer \"gm-a\" was revoked at "), std::string::npos)
        << warned.out;
    EXPECT_NE(warned.out.find("(key leaked); this batch says it was signed at "), std::string::npos) << warned.out;
    auto warned_json = run_cli({"evidence", "check-event", ev, "--registrar", _db, "--json"});
    ASSERT_EQ(warned_json.code, 0) << warned_json.err;
    const auto w = nlohmann::json::parse(warned_json.out);
    ASSERT_EQ(w["warnings"].size(), 1U) << warned_json.out;
    EXPECT_EQ(w["warnings"][0]["check"], "signed before revocation");
}

TEST_F(cli_test, evidence_queries) {
    enrol_cli();
    chain c(*_signer, "gm-a");
    write_bytes(_dir.file("a.log"), make_log({c.next(2), c.next(2)}).bytes);
    auto other = software(_dir, "observer-b");
    ASSERT_NO_FATAL_FAILURE(enrol_cli("observer-b", "observer-b"));
    chain b(*other, "observer-b");
    write_bytes(_dir.file("b.log"), make_log({b.next(2, std::nullopt, std::nullopt, 80'000)}).bytes);
    ASSERT_EQ(run_cli({"evidence", "verify", _dir.file("a.log"), "--registrar", _db, "--audit", _audit}).code, 0);
    ASSERT_EQ(run_cli({"evidence", "verify", _dir.file("b.log"), "--registrar", _db, "--audit", _audit}).code, 0);

    const std::string gm = port_identity_string(gm_port);
    EXPECT_EQ(gm, "001b21fffe010203-1");
    auto seen = run_cli({"evidence", "query", "seen", "--gm", gm, "--seq", "1001", "--audit", _audit});
    EXPECT_EQ(seen.code, 0) << seen.err;
    EXPECT_NE(seen.out.find("Sync sequenceId 1001 from 001b21fffe010203-1 seen 2 time(s)"), std::string::npos)
        << seen.out;
    auto seen_b = run_cli({"evidence", "query", "seen", "--gm", gm, "--seq", "1001", "--observer", "observer-b",
                           "--audit", _audit, "--json"});
    ASSERT_EQ(seen_b.code, 0);
    const auto j = nlohmann::json::parse(seen_b.out);
    ASSERT_EQ(j.size(), 1U);
    EXPECT_EQ(j[0]["timestamp_ns"], make_record(1001).timestamp_ns + 80'000);
    auto not_seen = run_cli(
        {"evidence", "query", "seen", "--gm", gm, "--seq", "1003", "--observer", "observer-b", "--audit", _audit});
    EXPECT_EQ(not_seen.code, 1);
    EXPECT_EQ(run_cli({"evidence", "query", "seen", "--gm", "nonsense", "--seq", "1", "--audit", _audit}).code, 2);

    auto events = run_cli({"evidence", "query", "events", "--signer", "gm-a", "--from", "2023-11-14T22:13:20Z", "--to",
                           std::to_string(make_record(1002).timestamp_ns), "--audit", _audit});
    EXPECT_EQ(events.code, 0) << events.err;
    EXPECT_NE(events.out.find("3 event(s) of \"gm-a\""), std::string::npos) << events.out;
    // A time that is not one, or that no date has, is refused by name,
    // never taken for another: timegm alone would read February 30 as
    // March 1, and 2600 would wrap past 64 bits of ns to 2015.
    const std::vector<std::pair<std::vector<std::string>, std::string>> bad_times = {
        {{"--from", "yesterday"},
         "--from yesterday: not ns since the epoch or an RFC 3339 UTC time such as 2023-11-14T22:13:20Z"},
        {{"--from", "-5"}, "--from -5: not ns since the epoch"},
        {{"--from", "2023-11-14T22:13:20"}, "--from 2023-11-14T22:13:20: not ns since the epoch"},
        {{"--from", "2023-11-14T22:13:20.1234567890Z"}, "not ns since the epoch"},
        {{"--from", "2024-02-30T00:00:00Z"}, "--from 2024-02-30T00:00:00Z: no such date or time"},
        {{"--from", "2023-11-14T24:00:00Z"}, "--from 2023-11-14T24:00:00Z: no such date or time"},
        {{"--from", "1969-12-31T23:59:59Z"},
         "--from 1969-12-31T23:59:59Z: before 1970-01-01T00:00:00Z, where the time in ns begins"},
        {{"--to", "2600-01-01T00:00:00Z"},
         "--to 2600-01-01T00:00:00Z: later than 2262-04-11T23:47:16.854775807Z, the last time the audit store "
         "holds"},
        {{"--to", "2262-04-11T23:47:16.854775808Z"}, "later than 2262-04-11T23:47:16.854775807Z"},
        {{"--to", "9223372036854775808"}, "--to 9223372036854775808: later than 2262-04-11T23:47:16.854775807Z"},
        // each field its digits, where sscanf's %2d would take a sign or a space
        {{"--from", "2023-11-14T22:13:-0Z"}, "--from 2023-11-14T22:13:-0Z: not ns since the epoch"},
        {{"--from", "2023-11-14T 2:+3:20Z"}, "not ns since the epoch"},
        {{"--from", "2023-1-14T22:13:20Z"}, "not ns since the epoch"},
        {{"--from", "2023-11-14t22:13:20Z"}, "not ns since the epoch"},
        // a leap second ends a day, UTC
        {{"--from", "2016-12-31T12:00:60Z"}, "--from 2016-12-31T12:00:60Z: no such date or time"},
    };
    for (const auto& [times, says] : bad_times) {
        std::vector<std::string> args{"evidence", "query", "events", "--signer", "gm-a", "--audit", _audit};
        if (times[0] == "--from") {
            args.insert(args.end(), {"--to", "2023-11-14T22:13:20Z"});
        } else {
            args.insert(args.end(), {"--from", "2023-11-14T22:13:20Z"});
        }
        args.insert(args.end(), times.begin(), times.end());
        const auto r = run_cli(args);
        EXPECT_EQ(r.code, 2) << says;
        EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
    }
    // The last time that holds, a leap day and a leap second (the start of
    // the next day) are times.
    auto last = run_cli({"evidence", "query", "events", "--signer", "gm-a", "--from", "2024-02-29T00:00:00Z", "--to",
                         "2262-04-11T23:47:16.854775807Z", "--audit", _audit});
    EXPECT_EQ(last.code, 0) << last.err;
    EXPECT_NE(last.out.find("0 event(s) of \"gm-a\" from 2024-02-29T00:00:00.000000000Z to "
                            "2262-04-11T23:47:16.854775807Z"),
              std::string::npos)
        << last.out;
    auto leap = run_cli({"evidence", "query", "events", "--signer", "gm-a", "--from", "2016-12-31T23:59:60.5Z", "--to",
                         "9223372036854775807", "--audit", _audit});
    EXPECT_EQ(leap.code, 0) << leap.err;
    EXPECT_NE(leap.out.find("from 2017-01-01T00:00:00.500000000Z to 2262-04-11T23:47:16.854775807Z"), std::string::npos)
        << leap.out;

    auto correlate = run_cli({"evidence", "query", "correlate", "--bound-ns", "1000", "--audit", _audit});
    EXPECT_EQ(correlate.code, 1);
    EXPECT_NE(correlate.out.find("2 event(s) seen by several observers; 2 observer(s) flagged"), std::string::npos)
        << correlate.out;
    auto loose = run_cli({"evidence", "query", "correlate", "--bound-ns", "100000", "--audit", _audit});
    EXPECT_EQ(loose.code, 0) << loose.out;

    EXPECT_EQ(run_cli({"evidence", "query", "correlate", "--audit", "sqlite:" + _dir.file("none.db")}).code, 2);
}

} // namespace
} // namespace ptpsec::verifier
