// Attestation with the whole data plane: ptpsec-dataplane verifies and
// strips the linuxptp capture (net_pcap), records every forwarded timing
// message as it arrived and as it left, and signs the records in Merkle
// batches with a real TPM (swtpm), a real PKCS#11 token (SoftHSM2) or a
// software key. The test then reads the evidence log with its own reader and
// checks every batch's signature, the chain from batch to batch, and that
// the events in the log are exactly the messages the data plane forwarded
// (their digests computed here from the capture).

#include "../hsm/softhsm.h"
#include "../hsm/tpm_fixture.h"
#include "../linuxptp_capture.h"
#include "../pcap_files.h"
#include "../process.h"
#include "app_helpers.h"

#include <control/telemetry_client.h>
#include <dataplane/event.h>
#include <drivers/base/hex.h>
#include <hsm/evidence.h>
#include <hsm/evidence_log.h>
#include <hsm/pkcs11_signer.h>
#include <hsm/software_signer.h>
#include <hsm/tpm_signer.h>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <thread>

namespace ptpsec {
namespace {

using json = nlohmann::json;
using digest = std::array<uint8_t, event_digest_len>;

/// SHA-256 of a PTP message with correctionField (octets 8-15) as zero.
digest event_digest_of(const uint8_t* msg, size_t len) {
    std::vector<uint8_t> m(msg, msg + len);
    std::fill(m.begin() + 8, m.begin() + 16, 0);
    digest d{};
    SHA256(m.data(), m.size(), d.data());
    return d;
}

/// The capture written into a FIFO again and again at about 4,000 frames a
/// second, for a data plane's rx_pcap: a steady stream at a pace this
/// machine attests (and verifies online) as it comes, unlike a net_pcap
/// replay at full speed.
class paced_feed {
public:
    paced_feed(std::string path, const std::vector<test::packet>& frames) : _fifo(std::move(path)) {
        _writer = std::thread([this, &frames] {
            while (_feeding.load()) {
                for (size_t i = 0; i < frames.size() && _feeding.load(); ++i) {
                    _fifo.write(frames[i].data);
                    if (i % 20 == 19) {
                        std::this_thread::sleep_for(std::chrono::milliseconds(5));
                    }
                }
            }
        });
    }
    ~paced_feed() { finish(); }
    paced_feed(const paced_feed&) = delete;
    paced_feed& operator=(const paced_feed&) = delete;
    paced_feed(paced_feed&&) = delete;
    paced_feed& operator=(paced_feed&&) = delete;

    const std::string& path() const noexcept { return _fifo.path(); }
    /// End of input: the writer stops and the FIFO closes, so the data
    /// plane's reader sees the end (and can then be stopped).
    void finish() {
        _feeding = false;
        if (_writer.joinable()) {
            _writer.join();
        }
        _fifo.close();
    }

private:
    pcap_fifo _fifo;
    std::atomic<bool> _feeding{true};
    std::thread _writer;
};

class attest_app : public testing::Test {
protected:
    void SetUp() override {
        _exe = test::program_from_env("PTPSEC_DATAPLANE");
        _ctl = test::program_from_env("PTPSECCTL");
        _capture = test::read_packets(test::linuxptp_capture);
        test::write_packets(_dir.file("empty.pcap"), DLT_EN10MB, {});
        std::filesystem::create_directory(_dir.file("evidence"));
        // The digests of every signed timing message of the capture, as it
        // arrives (with its AUTHENTICATION TLV) and as it leaves stripped.
        const auto stripped =
            test::run_program(_dir, _ctl, {"pcap", "strip", test::linuxptp_capture, _dir.file("stripped.pcap")});
        ASSERT_EQ(stripped.exit_code, 0) << stripped.err;
        const auto out = test::read_packets(_dir.file("stripped.pcap"));
        ASSERT_EQ(out.size(), _capture.size());
        for (size_t i = 0; i < _capture.size(); ++i) {
            const auto& a = _capture[i].data;
            const auto& b = out[i].data;
            const located l = locate(a);
            const size_t at = l.ptp;
            if (l.auth == 0 || !event_mask::timing().selects_value(a[at] & 0x0F)) {
                continue; // not a signed timing message: not forwarded by verify-strip, or not recorded
            }
            ++_want[{event_direction::rx, event_digest_of(a.data() + at, a.size() - at)}];
            ++_want[{event_direction::tx, event_digest_of(b.data() + at, b.size() - at)}];
        }
        ASSERT_GT(_want.size(), 100U);
    }

    /// ptpsec-dataplane's arguments: one lcore without hugepages, the inside
    /// port reading nothing and writing to `inside_tx`, the outside port
    /// `outside` (net_pcap arguments); PTP passed inside-to-outside and
    /// verified and stripped outside-to-inside, events recorded both ways
    /// and attested as "observer-1" into the evidence directory; then
    /// `options`.
    std::vector<std::string> dataplane_args(const std::string& prefix, const std::string& inside_tx,
                                            const std::string& outside, const std::vector<std::string>& options) {
        auto args = dataplane_command(
            "-l0", prefix,
            {fmt::format("--vdev=net_pcap0,rx_pcap={},tx_pcap={}", _dir.file("empty.pcap"), inside_tx),
             fmt::format("--vdev=net_pcap1,{}", outside)},
            {"--sa-file", test::linuxptp_sa_file, "--inside-policy", "pass", "--outside-policy", "verify-strip",
             "--events", "both", "--attest-log", _dir.file("evidence"), "--attest-signer-id", "observer-1"});
        args.insert(args.end(), options.begin(), options.end());
        return args;
    }

    /// The data plane over the capture once, verifying and stripping,
    /// attesting with `attest_options`.
    test::run_result run_dataplane(const std::vector<std::string>& attest_options) {
        static int runs = 0;
        ++runs;
        const std::string prefix = fmt::format("ptpsec-attest-{}-{}", ::getpid(), runs);
        runtime_dir_guard runtime(prefix);
        std::vector<std::string> options = {
            "--idle-exit",       "300", "--stats-json",          _dir.file("stats.json"),
            "--attest-batch-ms", "20",  "--attest-batch-events", "64"};
        options.insert(options.end(), attest_options.begin(), attest_options.end());
        return test::run_program(
            _dir, _exe,
            dataplane_args(prefix, _dir.file("in_out.pcap"),
                           fmt::format("rx_pcap={},tx_pcap={}", test::linuxptp_capture, _dir.file("out_out.pcap")),
                           options),
            std::chrono::seconds(90));
    }

    /// The data plane running on `feed` (outside port), verifying and
    /// stripping, recording events both ways, attesting with `attest_options`.
    std::unique_ptr<test::background_program> attest_on(const std::string& prefix, const paced_feed& feed,
                                                        const std::vector<std::string>& attest_options) {
        std::vector<std::string> options = {"--replay-window", "0"};
        options.insert(options.end(), attest_options.begin(), attest_options.end());
        return std::make_unique<test::background_program>(
            _dir, _exe,
            dataplane_args(prefix, "/dev/null", fmt::format("rx_pcap={},tx_pcap=/dev/null", feed.path()), options));
    }

    /// A software key made beforehand (mode 0600), enrolled in the
    /// registrar as "observer-1" for development use; returns its path.
    std::string enrol_software_key(const std::string& registrar) {
        const std::string key = _dir.file("observer.pem");
        const auto made =
            test::run_program(_dir, "/usr/bin/openssl",
                              {"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key});
        EXPECT_EQ(made.exit_code, 0) << made.err;
        ::chmod(key.c_str(), 0600);
        const auto enrolled = test::run_program(_dir, _ctl,
                                                {"registrar", "enrol", "--db", registrar, "--signer-id", "observer-1",
                                                 "--software", key, "--allow-software"});
        EXPECT_EQ(enrolled.exit_code, 0) << enrolled.out << enrolled.err;
        return key;
    }

    /// The data plane on `feed`, signing as "observer-1" with an enrolled
    /// software key in 50 ms batches, once it has signed its first batch.
    std::unique_ptr<test::background_program> software_attested(const std::string& prefix, const paced_feed& feed) {
        const std::string key = enrol_software_key(_dir.file("registrar.db"));
        auto dp = attest_on(prefix, feed,
                            {"--attest", "software", "--attest-key", key, "--attest-counter", _dir.file("counter"),
                             "--attest-batch-ms", "50", "--attest-max-held", "65536"});
        wait_attest(*dp, prefix, [](const json& t) { return t.value("batches_signed", 0U) >= 1; });
        return dp;
    }

    /// /ptpsec/attest of the data plane with `prefix`; empty while it does
    /// not answer.
    static json attest_telemetry(const std::string& prefix) {
        auto c = telemetry_client::connect(prefix);
        if (!c) {
            return json::object();
        }
        auto r = c->query("/ptpsec/attest");
        return r ? json::parse(r->dump()) : json::object();
    }

    /// Waits up to 30 s for `done(/ptpsec/attest)` while the data plane runs.
    template <typename Done>
    json wait_attest(test::background_program& dp, const std::string& prefix, Done done) {
        json t;
        for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
             dp.running() && std::chrono::steady_clock::now() < deadline;) {
            t = attest_telemetry(prefix);
            if (!t.empty() && done(t)) {
                return t;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        ADD_FAILURE() << "the data plane's attestation did not get there: " << t.dump();
        return t;
    }

    /// ptpsec-controld as the online Verifier of the evidence directory
    /// (registrar.db, audit in sqlite:audit.db, a look every 100 ms, admin
    /// socket verifier.sock), with the [verifier] lines `more`.
    std::unique_ptr<test::background_program> start_verifier(const std::string& more = {}) {
        test::write_file(_dir.file("verifier.toml"), fmt::format(R"([verifier]
registrar = "registrar.db"
audit = "sqlite:audit.db"
logs = ["evidence"]
poll-ms = 100
{}
[admin]
socket = "verifier.sock"
)",
                                                                 more));
        return std::make_unique<test::background_program>(
            _dir, test::program_from_env("PTPSEC_CONTROLD"),
            std::vector<std::string>{"--config", _dir.file("verifier.toml")});
    }

    /// The verifier role's part of `ptpsecctl status`.
    json verifier_status() {
        const auto r =
            test::run_program(_dir, _ctl, {"status", "--controld-socket", _dir.file("verifier.sock"), "--json"});
        return r.exit_code == 0 ? json::parse(r.out).value("verifier", json::object()) : json::object();
    }

    /// A batch of the evidence log with its payload, checked.
    struct checked_batch {
        hsm::batch_record record;
        hsm::batch_payload payload;
    };

    /// Every batch of the evidence log, oldest first, each checked against
    /// `public_key` and chained to the one before; a bad record, signature
    /// or link fails the test.
    std::vector<checked_batch> read_evidence(hsm::signature_algorithm alg, const std::vector<uint8_t>& public_key) {
        std::vector<checked_batch> out;
        auto files = hsm::list_log_files(_dir.file("evidence"), "evidence");
        EXPECT_TRUE(files) << files.message();
        if (!files) {
            return out;
        }
        for (const auto& f : *files) {
            const std::string bytes = test::read_file(f.string());
            const auto log = hsm::read_log(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
            EXPECT_FALSE(log.problem) << f << ": " << log.problem->message << " at " << log.problem->offset;
            for (const auto& e : log.records) {
                auto payload = hsm::check_batch_record(e.record, alg, public_key);
                EXPECT_TRUE(payload) << f << " at " << e.offset << ": " << payload.message();
                if (!payload) {
                    return out;
                }
                const auto chained = hsm::check_chain(out.empty() ? nullptr : &out.back().payload, *payload);
                EXPECT_TRUE(chained) << f << " at " << e.offset << ": " << chained.message();
                out.push_back({e.record, std::move(*payload)});
            }
        }
        return out;
    }

    /// Reads the whole log and checks it against `public_key`: every batch
    /// signed, chained, with no gap; its events exactly the forwarded ones.
    void check_log(const std::vector<uint8_t>& public_key, hsm::signature_algorithm alg, hsm::backend_kind kind) {
        const auto batches = read_evidence(alg, public_key);
        ASSERT_FALSE(batches.empty());
        std::map<std::pair<event_direction, digest>, int> seen;
        uint64_t events = 0;
        for (const auto& [record, payload] : batches) {
            EXPECT_EQ(payload.signer_id, "observer-1");
            EXPECT_EQ(payload.backend, kind);
            EXPECT_EQ(payload.hardware_rooted, kind != hsm::backend_kind::software);
            EXPECT_EQ(payload.missed_events, 0U) << "the ring of 65536 never filled";
            for (const auto& leaf : record.leaves) {
                auto c = hsm::decode_claims(leaf);
                ASSERT_TRUE(c) << c.message();
                ++seen[{c->direction, c->event_digest}];
                ++events;
            }
            // One event's evidence on its own, as an auditor would get it.
            auto one = hsm::derive_event_evidence(record, record.leaves.size() / 2);
            ASSERT_TRUE(one) << one.message();
            EXPECT_TRUE(hsm::check_event_evidence(*one, alg, public_key));
        }
        EXPECT_EQ(seen, _want) << "every forwarded timing message, as it arrived and as it left, once";
        const json stats = json::parse(test::read_file(_dir.file("stats.json")));
        uint64_t recorded = 0;
        for (const auto& p : stats.at("paths")) {
            recorded += p.at("events").get<uint64_t>();
        }
        EXPECT_EQ(events, recorded);
    }

    /// The Verifier against the Registrar, as an auditor runs it: every
    /// batch of the log accepted, no warning (hardware-rooted, enrolled, not
    /// revoked), every forwarded timing event counted.
    void verify_against(const std::string& registrar) {
        auto files = hsm::list_log_files(_dir.file("evidence"), "evidence");
        ASSERT_TRUE(files);
        std::vector<std::string> args = {
            "evidence", "verify", "--registrar", registrar, "--audit", "sqlite:" + _dir.file("audit.db"), "--json"};
        for (const auto& f : *files) {
            args.push_back(f.string());
        }
        const auto verified = test::run_program(_dir, _ctl, args);
        ASSERT_EQ(verified.exit_code, 0) << verified.out << verified.err;
        const json report = json::parse(verified.out);
        EXPECT_EQ(report.at("ok"), true);
        EXPECT_EQ(report.at("failures"), json::array());
        EXPECT_EQ(report.at("warnings"), json::array()) << "hardware-rooted, enrolled, not revoked";
        uint64_t want = 0;
        for (const auto& [event, n] : _want) {
            want += static_cast<uint64_t>(n);
        }
        EXPECT_EQ(report.at("events"), want);
        EXPECT_EQ(report.at("batches_accepted"), report.at("records"));
        // One event's evidence out of the logs, checked on its own.
        const std::string one = _dir.file("event.cbor");
        std::vector<std::string> extract = {"evidence", "extract", "--event-index", "0", "--out", one};
        for (const auto& f : *files) {
            extract.push_back(f.string());
        }
        const auto extracted = test::run_program(_dir, _ctl, extract);
        ASSERT_EQ(extracted.exit_code, 0) << extracted.out << extracted.err;
        EXPECT_NE(extracted.out.find("event 0 of \"observer-1\": "), std::string::npos) << extracted.out;
        const auto checked =
            test::run_program(_dir, _ctl, {"evidence", "check-event", one, "--registrar", registrar, "--json"});
        ASSERT_EQ(checked.exit_code, 0) << checked.out << checked.err;
        const json event = json::parse(checked.out);
        EXPECT_EQ(event.at("ok"), true);
        EXPECT_EQ(event.at("hardware_rooted"), true);
        EXPECT_EQ(event.at("event_index"), 0);
    }

    test::temp_dir _dir;
    std::string _exe;
    std::string _ctl;
    std::vector<test::packet> _capture;
    std::map<std::pair<event_direction, digest>, int> _want;
};

TEST_F(attest_app, every_forwarded_timing_event_gets_tpm_evidence_from_swtpm) {
    // A TPM with EK certificates from a CA of its own, the TPM vendor here.
    test::swtpm tpm(test::swtpm::make::ek_certificates);
    // Enrol first, with the TPM's ECC P-384 EK (template H-3): the
    // Registrar checks its certificate against the vendor's CA and its CRL,
    // that the key is in the TPM of that EK, and a quote of PCRs 0-7 (all
    // zero on a freshly started TPM) made with the signing key, with its own
    // nonce.
    std::string profile;
    for (int pcr = 0; pcr < 8; ++pcr) {
        profile += fmt::format("{} {}\n", pcr, std::string(64, '0'));
    }
    test::write_file(_dir.file("pcrs.txt"), profile);
    const std::string registrar = _dir.file("registrar.db");
    tpm.write_ek_crl(_dir.file("vendor.crl"), {}, std::chrono::hours(24));
    const auto enrolled = test::run_program(_dir, _ctl,
                                            {"registrar", "enrol", "--db", registrar, "--signer-id", "observer-1",
                                             "--tpm", tpm.tcti(), "--expected-pcrs", _dir.file("pcrs.txt"), "--ek",
                                             "H-3", "--ek-ca", tpm.ek_ca_file(), "--ek-crl", _dir.file("vendor.crl")});
    ASSERT_EQ(enrolled.exit_code, 0) << enrolled.out << enrolled.err;
    EXPECT_NE(enrolled.out.find(fmt::format("(key in the TPM of that EK, its certificate chained to {} and not revoked "
                                            "in {}, PCR quote; EK template H-3, ECC NIST P-384)",
                                            tpm.ek_ca_file(), _dir.file("vendor.crl"))),
              std::string::npos)
        << enrolled.out;
    // The same TPM enrolled (in Registrars of their own) without the vendor's
    // CA, and without its CRLs: the line says what was not checked.
    const std::vector<std::pair<std::vector<std::string>, std::string>> partly = {
        {{}, "; the EK certificate not checked: --ek-ca; EK template H-3"},
        {{"--ek-ca", tpm.ek_ca_file()},
         fmt::format(", its certificate chained to {}, PCR quote; revocation not "
                     "checked: --ek-crl; EK template H-3",
                     tpm.ek_ca_file())},
    };
    for (size_t i = 0; i < partly.size(); ++i) {
        std::vector<std::string> args = {"registrar",
                                         "enrol",
                                         "--db",
                                         _dir.file(fmt::format("registrar-{}.db", i)),
                                         "--signer-id",
                                         "observer-1",
                                         "--tpm",
                                         tpm.tcti(),
                                         "--expected-pcrs",
                                         _dir.file("pcrs.txt"),
                                         "--ek",
                                         "H-3"};
        args.insert(args.end(), partly[i].first.begin(), partly[i].first.end());
        const auto r = test::run_program(_dir, _ctl, args);
        ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
        EXPECT_NE(r.out.find(partly[i].second), std::string::npos) << r.out;
    }
    // Later, the vendor's CRLs again: still valid (exit 0); a CRL that has
    // expired gives no verdict (exit 1) and changes nothing.
    const auto checked = test::run_program(
        _dir, _ctl,
        {"registrar", "check-ek", "--db", registrar, "--ek-ca", tpm.ek_ca_file(), "--ek-crl", _dir.file("vendor.crl")});
    ASSERT_EQ(checked.exit_code, 0) << checked.out << checked.err;
    EXPECT_NE(checked.out.find("observer-1: valid: EK certificate serial "), std::string::npos) << checked.out;
    tpm.write_ek_crl(_dir.file("expired.crl"), {}, -std::chrono::hours(1));
    const auto unchecked = test::run_program(_dir, _ctl,
                                             {"registrar", "check-ek", "--db", registrar, "--ek-ca", tpm.ek_ca_file(),
                                              "--ek-crl", _dir.file("expired.crl"), "--json"});
    ASSERT_EQ(unchecked.exit_code, 1) << unchecked.out << unchecked.err;
    const auto j = json::parse(unchecked.out);
    ASSERT_EQ(j.size(), 1U) << unchecked.out;
    EXPECT_EQ(j[0]["signer_id"], "observer-1");
    EXPECT_EQ(j[0]["result"], "cannot_check");
    EXPECT_TRUE(j[0]["revoked_at"].is_null());
    const auto r = run_dataplane({"--attest", "tpm", "--attest-tcti", tpm.tcti()});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("attestation: tpm signer observer-1, batches of up to 64 events or 20 ms"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("attestation (at exit): tpm signer observer-1 | events signed"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("could not be signed"), std::string::npos) << r.out;
    // The key the data plane signed with, read from the same TPM.
    // The EK enrolled is H-3's, whose certificate the vendor revokes below.
    const auto s = test::open_tpm_signer(tpm, "observer-1", hsm::ek_template::h3);
    ASSERT_NE(s, nullptr);
    check_log(s->info().public_key_der, hsm::signature_algorithm::es256, hsm::backend_kind::tpm);
    ASSERT_NO_FATAL_FAILURE(verify_against(registrar));

    // The vendor revokes the EK certificate from now on: the online
    // Verifier's check of the CRLs revokes the signer from that date, and
    // status says so.
    auto cert = s->endorsement_certificate_der();
    ASSERT_TRUE(cert && !cert->empty());
    tpm.write_ek_crl(_dir.file("vendor.crl"), {*cert}, std::chrono::hours(24), ::time(nullptr));
    auto verifier = start_verifier(fmt::format("ek-ca = \"{}\"\nek-crl = \"vendor.crl\"\n", tpm.ek_ca_file()));
    json ek;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
         std::chrono::steady_clock::now() < deadline;) {
        ASSERT_TRUE(verifier->running()) << verifier->err() << verifier->out();
        ek = verifier_status().value("ek_check", json());
        if (ek.is_object()) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(ek.is_object()) << verifier->out();
    EXPECT_EQ(ek.value("revoked", 0U), 1U) << ek.dump();
    EXPECT_EQ(ek.at("signers").at(0).at("signer_id"), "observer-1") << ek.dump();
    const auto plain = test::run_program(_dir, _ctl, {"status", "--controld-socket", _dir.file("verifier.sock")});
    EXPECT_NE(plain.out.find(fmt::format("EK certificates against {} at ", _dir.file("vendor.crl"))), std::string::npos)
        << plain.out;
    EXPECT_NE(plain.out.find(": valid 0 revoked 1 cannot check 0 no certificate 0"), std::string::npos) << plain.out;
    EXPECT_NE(plain.out.find("    observer-1: revoked: EK certificate serial "), std::string::npos) << plain.out;
    ASSERT_EQ(verifier->stop(), 0) << verifier->err();
    EXPECT_NE(verifier->out().find("signer \"observer-1\" REVOKED from "), std::string::npos) << verifier->out();
    const auto listed = test::run_program(_dir, _ctl, {"registrar", "list", "--db", registrar, "--json"});
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    const json signers = json::parse(listed.out);
    ASSERT_EQ(signers.size(), 1U);
    EXPECT_NE(signers[0].at("revocation_reason").get<std::string>().find("revoked by its issuer's CRL in"),
              std::string::npos)
        << listed.out;
}

TEST_F(attest_app, a_pkcs11_token_signs_the_same_way) {
    test::softhsm_token token("ptpsec-attest");
    token.add_token("ptpsec-other"); // for the key of another token, below
    const std::string pin = _dir.file("pin");
    test::write_file(pin, token.user_pin());
    ::chmod(pin.c_str(), 0600);
    const std::string counter = _dir.file("counter");
    const auto r = run_dataplane({"--attest", "pkcs11", "--attest-pkcs11-token", "ptpsec-attest",
                                  "--attest-pkcs11-pin-file", pin, "--attest-counter", counter});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    hsm::pkcs11_settings p;
    p.module_path = test::softhsm_module;
    p.token_label = "ptpsec-attest";
    p.user_pin_file = pin;
    p.key_label = "ptpsec-attest";
    p.counter_path = counter;
    p.generate_key = false;
    p.signer_id = "observer-1";
    {
        auto s = hsm::pkcs11_signer::open(p);
        ASSERT_TRUE(s) << s.message();
        check_log((*s)->info().public_key_der, hsm::signature_algorithm::es256, hsm::backend_kind::pkcs11);
    }

    // Enrolled from the token itself, then the Verifier as for a TPM.
    const std::string registrar = _dir.file("registrar.db");
    const auto enrolled =
        test::run_program(_dir, _ctl,
                          {"registrar", "enrol", "--db", registrar, "--signer-id", "observer-1", "--pkcs11",
                           test::softhsm_module, "--token-label", "ptpsec-attest", "--key-label", "ptpsec-attest",
                           "--pin-file", pin, "--counter-file", counter});
    ASSERT_EQ(enrolled.exit_code, 0) << enrolled.out << enrolled.err;
    const auto listed = test::run_program(_dir, _ctl, {"registrar", "list", "--db", registrar, "--json"});
    ASSERT_EQ(listed.exit_code, 0) << listed.err;
    const json signers = json::parse(listed.out);
    ASSERT_EQ(signers.size(), 1U) << listed.out;
    EXPECT_EQ(signers[0].at("backend"), "pkcs11") << listed.out;
    ASSERT_NO_FATAL_FAILURE(verify_against(registrar));
    // Another token's key under the same signer_id: every batch fails.
    hsm::pkcs11_settings q = p;
    q.token_label = "ptpsec-other";
    q.key_label = "ptpsec-other";
    q.counter_path = _dir.file("other-counter");
    q.generate_key = true;
    {
        auto made = hsm::pkcs11_signer::open(q);
        ASSERT_TRUE(made) << made.message();
    }
    const std::string wrong = _dir.file("wrong.db");
    const auto enrolled_other =
        test::run_program(_dir, _ctl,
                          {"registrar", "enrol", "--db", wrong, "--signer-id", "observer-1", "--pkcs11",
                           test::softhsm_module, "--token-label", "ptpsec-other", "--key-label", "ptpsec-other",
                           "--pin-file", pin, "--counter-file", q.counter_path});
    ASSERT_EQ(enrolled_other.exit_code, 0) << enrolled_other.out << enrolled_other.err;
    // The --attest-log directory stands for its files in order.
    const auto refused =
        test::run_program(_dir, _ctl, {"evidence", "verify", "--registrar", wrong, "--json", _dir.file("evidence")});
    EXPECT_EQ(refused.exit_code, 1) << refused.out << refused.err;
    const json report = json::parse(refused.out);
    EXPECT_EQ(report.at("ok"), false);
    EXPECT_EQ(report.at("batches_accepted"), 0) << refused.out;
}

TEST_F(attest_app, a_software_key_works_and_says_it_is_not_hardware_rooted) {
    const std::string key = _dir.file("attest.pem");
    const std::string counter = _dir.file("counter");
    const auto r = run_dataplane(
        {"--attest", "software", "--attest-key", key, "--attest-counter", counter, "--attest-algorithm", "eddsa"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("(software key: NOT hardware-rooted)"), std::string::npos) << r.out;
    EXPECT_EQ(r.err.find("chain starts again"), std::string::npos) << r.err;
    auto s = hsm::software_signer::open({key, counter, hsm::signature_algorithm::eddsa});
    ASSERT_TRUE(s) << s.message();
    check_log((*s)->info().public_key_der, hsm::signature_algorithm::eddsa, hsm::backend_kind::software);
    s->reset();
    // The same key on an empty log directory: the chain starts again, and the start says so.
    std::filesystem::rename(_dir.file("evidence"), _dir.file("evidence.old"));
    std::filesystem::create_directory(_dir.file("evidence"));
    const auto again = run_dataplane(
        {"--attest", "software", "--attest-key", key, "--attest-counter", counter, "--attest-algorithm", "eddsa"});
    ASSERT_EQ(again.exit_code, 0) << again.err << again.out;
    EXPECT_NE(again.err.find("attestation: the evidence log in " + _dir.file("evidence") +
                             " is empty, but signer \"observer-1\" has signed "),
              std::string::npos)
        << again.err;
    EXPECT_NE(again.err.find("reports this break as a dropped batch"), std::string::npos) << again.err;
}

TEST_F(attest_app, events_the_full_ring_refused_are_counted_into_the_signed_evidence) {
    // An event ring of 16 slots, smaller than one burst's events: the fast
    // path counts what it refuses (events_ring_full), never waits, and the
    // signer carries the count in the next batch's missed_events.
    const std::string key = _dir.file("attest.pem");
    const std::string counter = _dir.file("counter");
    const auto r = run_dataplane({"--event-ring", "16", "--attest", "software", "--attest-key", key, "--attest-counter",
                                  counter, "--attest-algorithm", "eddsa"});
    ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
    const json stats = json::parse(test::read_file(_dir.file("stats.json")));
    uint64_t ring_full = 0;
    uint64_t recorded = 0;
    for (const auto& p : stats.at("paths")) {
        ring_full += p.at("events_ring_full").get<uint64_t>();
        recorded += p.at("events").get<uint64_t>();
    }
    ASSERT_GT(ring_full, 0U) << "the ring must have filled for this test to mean anything";
    const std::regex at_exit("events signed ([0-9]+) of ([0-9]+) in [0-9]+ batches \\(largest [0-9]+\\), held "
                             "[0-9]+ \\| missed: ring ([0-9]+) overflow ([0-9]+)");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, at_exit)) << r.out;
    EXPECT_EQ(std::stoull(m[3]), ring_full) << "every refusal reached the signer";
    auto s = hsm::software_signer::open({key, counter, hsm::signature_algorithm::eddsa});
    ASSERT_TRUE(s) << s.message();
    const auto batches = read_evidence(hsm::signature_algorithm::eddsa, (*s)->info().public_key_der);
    ASSERT_FALSE(batches.empty());
    uint64_t leaves = 0;
    uint64_t missed = 0;
    for (const auto& [record, payload] : batches) {
        leaves += record.leaves.size();
        missed += payload.missed_events;
    }
    EXPECT_EQ(leaves, std::stoull(m[1]));
    EXPECT_EQ(missed, ring_full + std::stoull(m[4])) << "the refused events are in the signed evidence";
    // Every event index is accounted for: signed, or counted as missed.
    EXPECT_EQ(batches.back().payload.last_event_index + 1, leaves + missed);
    EXPECT_EQ(leaves, recorded) << "what the ring took is all signed";
}

TEST_F(attest_app, live_counters_are_on_telemetry_and_every_event_is_signed_at_the_stop) {
    // The capture replayed without end: events keep coming while the test
    // reads /ptpsec/attest; at SIGINT everything taken off the ring is signed.
    const std::string prefix = fmt::format("ptpsec-attest-live-{}", ::getpid());
    runtime_dir_guard runtime(prefix);
    test::background_program dp(
        _dir, _exe,
        dataplane_args(prefix, "/dev/null",
                       fmt::format("rx_pcap={},infinite_rx=1,tx_pcap=/dev/null", test::linuxptp_capture),
                       {"--replay-window", "0", "--attest", "software", "--attest-key", _dir.file("k.pem"),
                        "--attest-counter", _dir.file("c"), "--attest-batch-ms", "50"}));
    const json live = wait_attest(dp, prefix, [](const json& t) { return t.value("batches_signed", 0U) >= 3; });
    ASSERT_GE(live.value("batches_signed", 0U), 3U) << dp.out();
    EXPECT_EQ(live.at("backend"), "software");
    EXPECT_EQ(live.at("signer_id"), "observer-1");
    EXPECT_EQ(live.at("hardware_rooted"), 0);
    EXPECT_GT(live.at("events_signed").get<uint64_t>(), 0U);
    EXPECT_EQ(live.at("sign_failures"), 0);
    EXPECT_LE(live.at("latency_p99_us").get<uint64_t>(), live.at("latency_max_us").get<uint64_t>());
    // Each attestation thread is named for what it does (top -H, ps -L).
    std::set<std::string> names;
    for (const auto& [tid, name] : test::thread_names(dp.pid())) {
        names.insert(name);
    }
    for (const char* name : {"attest-drain", "attest-build", "attest-sign", "attest-log"}) {
        EXPECT_TRUE(names.contains(name)) << name << " among " << fmt::format("{}", fmt::join(names, ", "));
    }
    ASSERT_EQ(dp.stop(), 0) << dp.err();
    const std::string out = dp.out();
    // Every event the drain thread took is accounted for: signed, or counted
    // as overflow when it came faster than this machine signs (never silent).
    const std::regex at_exit("events signed ([0-9]+) of ([0-9]+) in [0-9]+ batches \\(largest [0-9]+\\), held ([0-9]+) "
                             "\\| missed: ring ([0-9]+) overflow ([0-9]+)");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(out, m, at_exit)) << out;
    const uint64_t signed_events = std::stoull(m[1]);
    const uint64_t submitted = std::stoull(m[2]);
    EXPECT_GT(signed_events, 0U);
    EXPECT_EQ(std::stoull(m[3]), 0U) << "nothing held after the stop";
    EXPECT_EQ(signed_events + std::stoull(m[5]), submitted) << out;
    // Events may be missed after the last batch (reported); none may be left unsigned.
    if (out.find("could not be signed") != std::string::npos) {
        EXPECT_NE(out.find("attestation: 0 event(s) could not be signed"), std::string::npos) << out;
    }
}

TEST_F(attest_app, the_online_verifier_checks_the_batches_while_the_data_plane_writes_them) {
    const std::string key = enrol_software_key(_dir.file("registrar.db"));
    ASSERT_FALSE(HasFailure());
    auto verifier = start_verifier();
    const std::string prefix = fmt::format("ptpsec-attest-online-{}", ::getpid());
    runtime_dir_guard runtime(prefix);
    // The capture again and again at about 4,000 frames a second: a steady
    // stream the online Verifier keeps up with.
    paced_feed feed(_dir.file("outside.fifo"), _capture);
    auto dp = attest_on(prefix, feed,
                        {"--attest", "software", "--attest-key", key, "--attest-counter", _dir.file("counter"),
                         "--attest-batch-ms", "50", "--attest-max-held", "65536"});
    // Verified while the data plane is still writing.
    json live;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
         std::chrono::steady_clock::now() < deadline;) {
        ASSERT_TRUE(dp->running()) << dp->err() << dp->out();
        ASSERT_TRUE(verifier->running()) << verifier->err() << verifier->out();
        live = verifier_status();
        if (live.value("batches_accepted", 0U) >= 3) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_GE(live.value("batches_accepted", 0U), 3U) << live.dump() << verifier->out();
    EXPECT_TRUE(dp->running()) << "verified while the data plane runs";
    EXPECT_EQ(live.at("failures"), 0) << live.dump();
    // End of input: the data plane's reader of the FIFO sees it, then stops.
    feed.finish();
    ASSERT_EQ(dp->stop(), 0) << dp->err();
    // The last batches (signed at the stop) are verified too.
    const std::regex at_exit("in ([0-9]+) batches");
    std::smatch m;
    const std::string dp_out = dp->out();
    ASSERT_TRUE(std::regex_search(dp_out, m, at_exit)) << dp_out;
    const uint64_t written = std::stoull(m[1]);
    json done;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
         std::chrono::steady_clock::now() < deadline;) {
        done = verifier_status();
        if (done.value("batches_accepted", 0U) >= written) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_EQ(done.value("batches_accepted", 0U), written) << done.dump();
    EXPECT_EQ(done.value("batches_verified", 0U), written);
    EXPECT_EQ(done.at("failures"), 0) << done.dump();
    EXPECT_EQ(done.at("warnings"), written) << "each software batch is flagged not hardware-rooted";
    ASSERT_EQ(verifier->stop(), 0) << verifier->err();
    EXPECT_NE(verifier->out().find(fmt::format("ptpsec-controld verifier (at exit): batches accepted {} (verified {})",
                                               written, written)),
              std::string::npos)
        << verifier->out();

    // Started again on the same audit store, it goes on where it stopped:
    // nothing of the logs it read before is read again (or refused as a
    // replay of what it accepted).
    auto again = start_verifier();
    json restarted;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
         std::chrono::steady_clock::now() < deadline && restarted.empty();) {
        ASSERT_TRUE(again->running()) << again->err() << again->out();
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        restarted = verifier_status();
    }
    std::this_thread::sleep_for(std::chrono::seconds(1)); // ten looks at the logs
    restarted = verifier_status();
    EXPECT_EQ(restarted.value("failures", 1U), 0U) << restarted.dump() << again->out();
    EXPECT_EQ(restarted.value("batches_accepted", 1U), 0U) << restarted.dump();
    ASSERT_EQ(again->stop(), 0) << again->err();
    EXPECT_EQ(again->out().find("FAILED"), std::string::npos) << again->out();
}

TEST_F(attest_app, a_nonce_given_by_hand_is_in_every_later_batch_until_cleared) {
    const std::string prefix = fmt::format("ptpsec-attest-nonce-{}", ::getpid());
    runtime_dir_guard runtime(prefix);
    paced_feed feed(_dir.file("outside.fifo"), _capture);
    const std::string key = _dir.file("k.pem");
    const std::string counter = _dir.file("c");
    auto dp = attest_on(
        prefix, feed,
        {"--attest", "software", "--attest-key", key, "--attest-counter", counter, "--attest-batch-ms", "50"});
    auto ctl = [&](std::vector<std::string> args) {
        args.insert(args.end(), {"--file-prefix", prefix});
        return test::run_program(_dir, _ctl, args);
    };
    const json before = wait_attest(*dp, prefix, [](const json& t) { return t.value("batches_signed", 0U) >= 2; });
    EXPECT_EQ(before.value("nonce", "?"), "") << "no nonce yet";

    // Refused before anything is sent, naming what is wrong.
    const auto short_nonce = ctl({"attest", "nonce", "01020304"});
    EXPECT_EQ(short_nonce.exit_code, 2);
    EXPECT_NE(short_nonce.err.find("NONCE 01020304: a verifier nonce is 8 to 64 octets, not 4"), std::string::npos)
        << short_nonce.err;
    const auto not_hex = ctl({"attest", "nonce", "0102030405060708zz"});
    EXPECT_EQ(not_hex.exit_code, 2);
    EXPECT_NE(not_hex.err.find("not hex digits"), std::string::npos) << not_hex.err;

    // Drawn by ptpsecctl, printed, and in the signer at once.
    const auto given = ctl({"attest", "nonce", "--json"});
    ASSERT_EQ(given.exit_code, 0) << given.out << given.err;
    const json g = json::parse(given.out);
    EXPECT_EQ(g.at("applied"), true);
    const std::string nonce = g.at("nonce");
    EXPECT_EQ(nonce.size(), 64U);
    // Four batches signed from now on: the first may have been taken before.
    const uint64_t signed_at_given = attest_telemetry(prefix).value("batches_signed", 0U);
    const json with =
        wait_attest(*dp, prefix, [&](const json& t) { return t.value("batches_signed", 0U) >= signed_at_given + 4; });
    EXPECT_EQ(with.value("nonce", ""), nonce);
    EXPECT_EQ(with.value("nonces_set", 0U), 1U);

    const auto cleared = ctl({"attest", "nonce", "--clear"});
    ASSERT_EQ(cleared.exit_code, 0) << cleared.out << cleared.err;
    EXPECT_NE(cleared.out.find("batches carry no nonce from now on"), std::string::npos) << cleared.out;
    const uint64_t signed_at_clear = attest_telemetry(prefix).value("batches_signed", 0U);
    const json after =
        wait_attest(*dp, prefix, [&](const json& t) { return t.value("batches_signed", 0U) >= signed_at_clear + 2; });
    EXPECT_EQ(after.value("nonce", "?"), "");
    feed.finish();
    ASSERT_EQ(dp->stop(), 0) << dp->err();

    // In the log: batches without, then with that nonce in the payload and
    // in every event's claims, then without again.
    auto s = hsm::software_signer::open({key, counter, hsm::signature_algorithm::es256});
    ASSERT_TRUE(s) << s.message();
    std::string pattern;
    for (const auto& [record, payload] : read_evidence(hsm::signature_algorithm::es256, (*s)->info().public_key_der)) {
        if (!payload.nonce) {
            pattern += '-';
            continue;
        }
        EXPECT_EQ(to_hex(*payload.nonce), nonce);
        pattern += 'n';
        for (const auto& leaf : record.leaves) {
            auto c = hsm::decode_claims(leaf);
            ASSERT_TRUE(c) << c.message();
            EXPECT_EQ(c->nonce, payload.nonce);
        }
    }
    EXPECT_TRUE(std::regex_match(pattern, std::regex("-{2,}n{3,}-{1,}"))) << pattern;
    // Offline, --nonce holds every batch to it: those before and after fail.
    const auto enrolled = test::run_program(_dir, _ctl,
                                            {"registrar", "enrol", "--db", _dir.file("registrar.db"), "--signer-id",
                                             "observer-1", "--software", key, "--allow-software"});
    ASSERT_EQ(enrolled.exit_code, 0) << enrolled.out << enrolled.err;
    const auto offline = test::run_program(_dir, _ctl,
                                           {"evidence", "verify", _dir.file("evidence"), "--registrar",
                                            _dir.file("registrar.db"), "--nonce", nonce, "--json"});
    EXPECT_EQ(offline.exit_code, 1) << offline.out << offline.err;
    const json report = json::parse(offline.out);
    EXPECT_EQ(report.at("failures").size(), static_cast<size_t>(std::count(pattern.begin(), pattern.end(), '-')))
        << offline.out;
    for (const auto& f : report.at("failures")) {
        EXPECT_EQ(f.at("check"), "nonce mismatch") << f.dump();
    }
}

TEST_F(attest_app, the_online_verifier_challenges_the_data_plane_and_catches_a_nonce_it_did_not_give) {
    const std::string prefix = fmt::format("ptpsec-attest-challenge-{}", ::getpid());
    runtime_dir_guard runtime(prefix);
    paced_feed feed(_dir.file("outside.fifo"), _capture);
    auto dp = software_attested(prefix, feed);
    ASSERT_FALSE(HasFailure());
    auto verifier = start_verifier(fmt::format("challenge = [\"{}\"]\nnonce-interval = 2\n", prefix));
    // Until two nonces are in and batches carrying them were accepted.
    auto challenge_of = [](const json& v) {
        const json list = v.value("challenges", json::array());
        return list.empty() ? json::object() : list.at(0);
    };
    json live;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
         std::chrono::steady_clock::now() < deadline;) {
        ASSERT_TRUE(verifier->running()) << verifier->err() << verifier->out();
        live = verifier_status();
        if (challenge_of(live).value("nonces_acknowledged", 0U) >= 2 && live.value("batches_accepted", 0U) >= 30) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const json ch = challenge_of(live);
    ASSERT_GE(ch.value("nonces_acknowledged", 0U), 2U) << live.dump();
    EXPECT_EQ(ch.at("dataplane"), prefix);
    EXPECT_EQ(ch.at("signer_id"), "observer-1");
    EXPECT_EQ(ch.at("failures"), 0) << ch.dump();
    EXPECT_EQ(live.at("failures"), 0) << live.dump();
    EXPECT_EQ(attest_telemetry(prefix).value("nonce", ""), ch.at("last_nonce"));
    const auto plain = test::run_program(_dir, _ctl, {"status", "--controld-socket", _dir.file("verifier.sock")});
    EXPECT_NE(plain.out.find(fmt::format("challenges to data plane {} (signer observer-1): nonces given", prefix)),
              std::string::npos)
        << plain.out;

    // Right after the Verifier's next nonce, another goes in by hand: the
    // batches that carry it are caught until the Verifier's next nonce.
    const uint64_t acked = ch.value("nonces_acknowledged", 0U);
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         challenge_of(verifier_status()).value("nonces_acknowledged", 0U) == acked &&
         std::chrono::steady_clock::now() < deadline;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto foreign = test::run_program(_dir, _ctl, {"attest", "nonce", "--file-prefix", prefix});
    ASSERT_EQ(foreign.exit_code, 0) << foreign.out << foreign.err;
    json caught;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
         std::chrono::steady_clock::now() < deadline;) {
        caught = verifier_status();
        if (caught.value("failures", 0U) > 0) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_GT(caught.value("failures", 0U), 0U) << caught.dump();
    const std::string first = caught.at("recent_failures").at(0);
    EXPECT_NE(first.find("nonce mismatch"), std::string::npos) << first;
    EXPECT_NE(first.find("which this Verifier did not issue"), std::string::npos) << first;
    // The Verifier's next nonce ends it: later batches pass again.
    const uint64_t failures_then = caught.at("failures");
    const uint64_t acked_then = challenge_of(caught).value("nonces_acknowledged", 0U);
    json healed;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
         std::chrono::steady_clock::now() < deadline;) {
        healed = verifier_status();
        if (challenge_of(healed).value("nonces_acknowledged", 0U) >= acked_then + 2) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const uint64_t failures_later = healed.value("failures", 0U);
    EXPECT_GE(challenge_of(healed).value("nonces_acknowledged", 0U), acked_then + 2) << healed.dump();
    EXPECT_LE(failures_later - failures_then, 45U) << "about the batches of one interval (2 s of 50 ms batches)";
    feed.finish();
    ASSERT_EQ(dp->stop(), 0) << dp->err();

    // With the data plane gone, a round finds nobody to challenge: counted
    // as such, not as a failed challenge.
    json gone;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
         std::chrono::steady_clock::now() < deadline;) {
        gone = verifier_status();
        if (challenge_of(gone).value("rounds_not_running", 0U) >= 1) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const json ch_gone = challenge_of(gone);
    EXPECT_GE(ch_gone.value("rounds_not_running", 0U), 1U) << gone.dump();
    EXPECT_EQ(ch_gone.at("failures"), 0) << ch_gone.dump();
    EXPECT_NE(
        ch_gone.value("last_error", "").find(fmt::format("no ptpsec-dataplane running with file prefix {}", prefix)),
        std::string::npos)
        << ch_gone.dump();
    const auto gone_text = test::run_program(_dir, _ctl, {"status", "--controld-socket", _dir.file("verifier.sock")});
    EXPECT_NE(gone_text.out.find("failures 0 not running "), std::string::npos) << gone_text.out;
    ASSERT_EQ(verifier->stop(), 0) << verifier->err();
    EXPECT_NE(verifier->out().find("nonces given"), std::string::npos) << verifier->out();
    EXPECT_NE(verifier->out().find("round(s) with no data plane running"), std::string::npos) << verifier->out();
}

TEST_F(attest_app, a_data_plane_that_signs_as_another_signer_than_configured_is_reported_and_its_batches_caught) {
    // challenge-signers says the data plane signs as observer-2; it signs
    // as observer-1 (and says so). The Verifier reports the mismatch, holds
    // observer-2 to the nonces, and observer-1's batches that carry them
    // fail: the nonce shows which signer that data plane really is.
    const std::string prefix = fmt::format("ptpsec-attest-bound-{}", ::getpid());
    runtime_dir_guard runtime(prefix);
    paced_feed feed(_dir.file("outside.fifo"), _capture);
    auto dp = software_attested(prefix, feed);
    ASSERT_FALSE(HasFailure());
    auto verifier = start_verifier(fmt::format(
        "challenge = [\"{0}\"]\nnonce-interval = 2\n[verifier.challenge-signers]\n\"{0}\" = \"observer-2\"\n", prefix));
    json live;
    json ch;
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
         std::chrono::steady_clock::now() < deadline;) {
        ASSERT_TRUE(verifier->running()) << verifier->err() << verifier->out();
        live = verifier_status();
        const json list = live.value("challenges", json::array());
        ch = list.empty() ? json::object() : list.at(0);
        if (ch.value("nonces_acknowledged", 0U) >= 1 && live.value("failures", 0U) >= 1) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(ch.value("signer_id", ""), "observer-1") << ch.dump();
    EXPECT_EQ(ch.value("configured_signer_id", ""), "observer-2") << ch.dump();
    EXPECT_GE(ch.value("signer_mismatches", 0U), 1U) << ch.dump();
    EXPECT_NE(ch.value("last_error", "").find("says it signs as \"observer-1\", but is configured as \"observer-2\""),
              std::string::npos)
        << ch.dump();
    ASSERT_GE(live.value("failures", 0U), 1U) << live.dump();
    const std::string first = live.at("recent_failures").at(0);
    EXPECT_NE(first.find("nonce mismatch"), std::string::npos) << first;
    EXPECT_NE(first.find("which this Verifier gave to the data plane of \"observer-2\": that data plane signs as "
                         "\"observer-1\""),
              std::string::npos)
        << first;
    const auto plain = test::run_program(_dir, _ctl, {"status", "--controld-socket", _dir.file("verifier.sock")});
    EXPECT_NE(
        plain.out.find(fmt::format("challenges to data plane {} (signer observer-1, configured observer-2)", prefix)),
        std::string::npos)
        << plain.out;
    EXPECT_NE(plain.out.find("signer mismatches "), std::string::npos) << plain.out;
    feed.finish();
    ASSERT_EQ(dp->stop(), 0) << dp->err();
    ASSERT_EQ(verifier->stop(), 0) << verifier->err();
}

TEST_F(attest_app, a_tpm_stopped_and_restarted_mid_run_loses_no_event_and_breaks_no_chain) {
    test::swtpm tpm;
    const std::string prefix = fmt::format("ptpsec-attest-outage-{}", ::getpid());
    runtime_dir_guard runtime(prefix);
    paced_feed feed(_dir.file("outside.fifo"), _capture);
    auto dp = attest_on(prefix, feed, {"--attest", "tpm", "--attest-tcti", tpm.tcti(), "--attest-batch-ms", "50"});
    // Signing, then the TPM goes away for a second and a half, then comes back.
    auto files_size = [&] {
        uint64_t n = 0;
        for (const auto& f : std::filesystem::directory_iterator(_dir.file("evidence"))) {
            n += f.path().extension() == ".cbor" ? f.file_size() : 0;
        }
        return n;
    };
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
         files_size() == 0 && std::chrono::steady_clock::now() < deadline;) {
        ASSERT_TRUE(dp->running()) << dp->err() << dp->out();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_GT(files_size(), 0U) << dp->out();
    tpm.stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    tpm.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    feed.finish();
    ASSERT_EQ(dp->stop(), 0) << dp->err();
    const std::string out = dp->out();
    const std::regex at_exit("events signed ([0-9]+) of ([0-9]+) in ([0-9]+) batches \\(largest [0-9]+\\), held 0 \\| "
                             "missed: ring 0 overflow 0 \\| sign failures ([0-9]+)");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(out, m, at_exit)) << out;
    EXPECT_EQ(m[1], m[2]) << "every event signed in the end";
    EXPECT_GT(std::stoull(m[4]), 0U) << "the outage was seen and counted";
    EXPECT_EQ(out.find("could not be signed"), std::string::npos) << out;
    // The whole log: one unbroken chain, no gap, every event once.
    const auto s = test::open_tpm_signer(tpm, "observer-1", hsm::ek_template::h3);
    ASSERT_NE(s, nullptr);
    uint64_t events = 0;
    for (const auto& b : read_evidence(hsm::signature_algorithm::es256, s->info().public_key_der)) {
        EXPECT_EQ(b.payload.missed_events, 0U);
        events += b.payload.event_count;
    }
    EXPECT_EQ(events, std::stoull(m[1]));
}

TEST_F(attest_app, refuses_to_start_attesting_without_what_it_needs) {
    struct bad_start {
        std::vector<std::string> options;
        std::string says;
    };
    const std::vector<bad_start> cases = {
        {{"--attest", "software", "--attest-counter", _dir.file("c")}, "--attest software needs --attest-key FILE"},
        {{"--attest", "magic"}, "--attest magic: use none, tpm, pkcs11 or software"},
        {{"--attest", "tpm", "--attest-tcti", "swtpm:host=127.0.0.1,port=1"}, "--attest tpm:"},
        {{"--attest", "tpm", "--attest-tpm-key-handle", "handle"}, "--attest-tpm-key-handle handle: not a TPM handle"},
        {{"--attest", "pkcs11"}, "--attest pkcs11 needs --attest-pkcs11-token LABEL"},
        {{"--attest", "software", "--attest-key", _dir.file("k.pem"), "--attest-counter", _dir.file("c"),
          "--attest-algorithm", "rsa"},
         "--attest-algorithm rsa: use es256 or eddsa"},
    };
    for (const auto& c : cases) {
        const auto r = run_dataplane(c.options);
        EXPECT_EQ(r.exit_code, 2) << c.says << "\n" << r.out;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << "stderr: " << r.err;
    }
    // Without timing events there is nothing to attest.
    static int runs = 0;
    const std::string prefix = fmt::format("ptpsec-attest-none-{}-{}", ::getpid(), ++runs);
    runtime_dir_guard runtime(prefix);
    const auto r = test::run_program(
        _dir, _exe,
        dataplane_command("-l0", prefix,
                          {fmt::format("--vdev=net_pcap0,rx_pcap={},tx_pcap=/dev/null", _dir.file("empty.pcap")),
                           fmt::format("--vdev=net_pcap1,rx_pcap={},tx_pcap=/dev/null", _dir.file("empty.pcap"))},
                          {"--sa-file", test::linuxptp_sa_file, "--inside-policy", "pass", "--attest", "software",
                           "--attest-log", _dir.file("evidence"), "--attest-key", _dir.file("k.pem"),
                           "--attest-counter", _dir.file("c")}),
        std::chrono::seconds(30));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("--attest needs timing events: add --events rx, tx or both"), std::string::npos) << r.err;
}

} // namespace
} // namespace ptpsec
