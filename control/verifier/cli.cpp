#include <control/verifier/cli.h>

#include <drivers/base/file.h>
#include <drivers/base/hex.h>

#include <control/verifier/audit_store.h>
#include <control/verifier/pcr_profile.h>
#include <control/verifier/registrar.h>
#include <control/verifier/verifier.h>
#include <hsm/evidence_log.h>
#include <hsm/pkcs11_signer.h>
#include <hsm/tpm_signer.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace ptpsec::verifier {

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1;
constexpr int exit_error = 2;

using ordered_json = nlohmann::ordered_json;

int report(const std::string& message) {
    fmt::print(stderr, "ptpsecctl: {}\n", message);
    return exit_error;
}

int refused(const std::string& message) {
    fmt::print(stderr, "ptpsecctl: {}\n", message);
    return exit_failed;
}

std::string hex(std::span<const uint8_t> b) {
    return to_hex(b);
}

/// "2023-11-14T22:13:20.000000001Z" from ns since the epoch.
std::string format_time(int64_t ns) {
    const int64_t s = ns >= 0 ? ns / 1'000'000'000 : (ns - 999'999'999) / 1'000'000'000;
    const int64_t frac = ns - s * 1'000'000'000;
    const std::time_t t = static_cast<std::time_t>(s);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/// ns since the epoch, or RFC 3339 in UTC ("2023-11-14T22:13:20Z", with an
/// optional fraction of up to 9 digits; second 60, a leap second, is the
/// start of the next), given to `option`, at most INT64_MAX (the audit store
/// keeps ns in 63 bits); the error names the option and says what is wrong.
result<uint64_t> parse_time(std::string_view option, std::string_view s) {
    const auto refused = [&](std::string_view why) { return error{fmt::format("{} {}: {}", option, s, why)}; };
    const auto too_late = [&] {
        return refused(fmt::format("later than {}, the last time the audit store holds", format_time(INT64_MAX)));
    };
    const auto not_a_time = [&] {
        return refused("not ns since the epoch or an RFC 3339 UTC time such as 2023-11-14T22:13:20Z");
    };
    const auto digits_at = [&](size_t at, size_t count, int& into) {
        const char* first = s.data() + at;
        const auto [end, ec] = std::from_chars(first, first + count, into);
        return ec == std::errc{} && end == first + count && std::isdigit(static_cast<unsigned char>(*first)) != 0;
    };
    uint64_t n = 0;
    if (const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        ec == std::errc{} && p == s.data() + s.size()) {
        if (n > static_cast<uint64_t>(INT64_MAX)) {
            return too_late();
        }
        return n;
    }
    // YYYY-MM-DDTHH:MM:SS, each field its digits and nothing else.
    std::tm tm{};
    if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        !digits_at(0, 4, tm.tm_year) || !digits_at(5, 2, tm.tm_mon) || !digits_at(8, 2, tm.tm_mday) ||
        !digits_at(11, 2, tm.tm_hour) || !digits_at(14, 2, tm.tm_min) || !digits_at(17, 2, tm.tm_sec)) {
        return not_a_time();
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    std::string_view rest = s.substr(19);
    uint64_t frac = 0;
    if (rest.starts_with('.')) {
        rest.remove_prefix(1);
        size_t digits = 0;
        while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
            ++digits;
        }
        if (digits == 0 || digits > 9) {
            return not_a_time();
        }
        std::from_chars(rest.data(), rest.data() + digits, frac);
        for (size_t i = digits; i < 9; ++i) {
            frac *= 10;
        }
        rest.remove_prefix(digits);
    }
    if (rest != "Z") {
        return not_a_time();
    }
    // timegm takes February 30 for March 1 and 25:00 for the next day:
    // a field out of its range is a mistake here, not a sum.
    const bool leap_second = tm.tm_sec == 60;
    tm.tm_sec -= leap_second ? 1 : 0;
    const std::tm asked = tm;
    const std::time_t t = ::timegm(&tm);
    if (tm.tm_year != asked.tm_year || tm.tm_mon != asked.tm_mon || tm.tm_mday != asked.tm_mday ||
        tm.tm_hour != asked.tm_hour || tm.tm_min != asked.tm_min || tm.tm_sec != asked.tm_sec ||
        (leap_second && (tm.tm_hour != 23 || tm.tm_min != 59))) {
        return refused("no such date or time");
    }
    if (t < 0) {
        return refused("before 1970-01-01T00:00:00Z, where the time in ns begins");
    }
    const uint64_t seconds = static_cast<uint64_t>(t) + (leap_second ? 1 : 0);
    if (seconds > static_cast<uint64_t>(INT64_MAX) / 1'000'000'000ULL ||
        seconds * 1'000'000'000ULL + frac > static_cast<uint64_t>(INT64_MAX)) {
        return too_late();
    }
    return seconds * 1'000'000'000ULL + frac;
}

/// IEEE 1588-2019 Table 36.
std::optional<uint8_t> parse_message_type(std::string_view s) {
    static constexpr std::pair<std::string_view, uint8_t> names[] = {{"sync", 0},
                                                                     {"delay_req", 1},
                                                                     {"pdelay_req", 2},
                                                                     {"pdelay_resp", 3},
                                                                     {"follow_up", 8},
                                                                     {"delay_resp", 9},
                                                                     {"pdelay_resp_follow_up", 10},
                                                                     {"announce", 11},
                                                                     {"signaling", 12},
                                                                     {"management", 13}};
    for (const auto& [name, value] : names) {
        if (s == name) {
            return value;
        }
    }
    uint8_t n = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec == std::errc{} && p == s.data() + s.size() && n <= 15) {
        return n;
    }
    return std::nullopt;
}

const char* message_type_name(uint8_t t) {
    switch (t) {
    case 0:
        return "Sync";
    case 1:
        return "Delay_Req";
    case 2:
        return "Pdelay_Req";
    case 3:
        return "Pdelay_Resp";
    case 8:
        return "Follow_Up";
    case 9:
        return "Delay_Resp";
    case 10:
        return "Pdelay_Resp_Follow_Up";
    case 11:
        return "Announce";
    case 12:
        return "Signaling";
    case 13:
        return "Management";
    default:
        return "reserved";
    }
}

struct software_key {
    hsm::signature_algorithm algorithm = hsm::signature_algorithm::es256;
    std::vector<uint8_t> public_key_der;
};

/// The public key of a PEM file holding a public or a private key.
result<software_key> read_software_key(const std::string& path) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(path.c_str(), "r"), BIO_free);
    if (!bio) {
        return error{fmt::format("key file {} cannot be opened", path)};
    }
    EVP_PKEY* raw = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
    if (raw == nullptr) {
        (void)BIO_reset(bio.get());
        raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
    }
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(raw, EVP_PKEY_free);
    if (!key) {
        return error{fmt::format("key file {} holds no PEM public or private key", path)};
    }
    software_key out;
    out.algorithm = EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_ED25519 ? hsm::signature_algorithm::eddsa
                                                                        : hsm::signature_algorithm::es256;
    const int len = i2d_PUBKEY(key.get(), nullptr);
    if (len <= 0) {
        return error{fmt::format("key file {}: the public key cannot be encoded", path)};
    }
    out.public_key_der.resize(static_cast<size_t>(len));
    unsigned char* p = out.public_key_der.data();
    i2d_PUBKEY(key.get(), &p);
    return out;
}

ordered_json finding_json(const finding& f) {
    ordered_json j{{"file", f.file}, {"offset", f.offset}};
    j["batch_index"] = f.batch_index ? ordered_json(*f.batch_index) : ordered_json(nullptr);
    j["signer_id"] = f.signer_id;
    j["counter"] = f.counter ? ordered_json(*f.counter) : ordered_json(nullptr);
    j["event_index"] = f.event_index ? ordered_json(*f.event_index) : ordered_json(nullptr);
    j["check"] = f.check;
    j["message"] = f.message;
    return j;
}

std::string finding_line(const finding& f) {
    std::string where = fmt::format("{} offset {}", f.file, f.offset);
    if (f.batch_index) {
        where += fmt::format(" record {}", *f.batch_index);
    }
    if (f.counter) {
        where += fmt::format(" batch {}", *f.counter);
    }
    if (!f.signer_id.empty()) {
        where += fmt::format(" of \"{}\"", f.signer_id);
    }
    if (f.event_index) {
        where += fmt::format(" event {}", *f.event_index);
    }
    return fmt::format("{} {}: {}: {}", f.warning ? "WARN" : "FAIL", where, f.check, f.message);
}

ordered_json event_json(const event_row& e) {
    return ordered_json{{"signer_id", e.signer_id},
                        {"counter", e.counter},
                        {"event_index", e.event_index},
                        {"direction", e.direction == event_direction::tx ? "tx" : "rx"},
                        {"message_type", e.message_type},
                        {"sequence_id", e.sequence_id},
                        {"domain", e.domain_number},
                        {"sdo_id", e.sdo_id},
                        {"source_port_identity", port_identity_string(e.source_port_identity)},
                        {"port", e.port_id},
                        {"timestamp_ns", e.timestamp_ns},
                        {"time", format_time(static_cast<int64_t>(e.timestamp_ns))},
                        {"correction_field", e.correction_field},
                        {"event_digest", hex(e.event_digest)},
                        {"batch_status", e.batch_status},
                        {"hardware_rooted", e.hardware_rooted},
                        {"verified_at", format_time(e.verified_at_ns)}};
}

std::string event_line(const event_row& e) {
    return fmt::format("{} {} {} {} seq {} from {} domain {} port {} at {} ({} ns) correction {} batch {} [{}{}]",
                       e.signer_id, e.event_index, e.direction == event_direction::tx ? "sent" : "received",
                       message_type_name(e.message_type), e.sequence_id, port_identity_string(e.source_port_identity),
                       e.domain_number, e.port_id, format_time(static_cast<int64_t>(e.timestamp_ns)), e.timestamp_ns,
                       e.correction_field, e.counter, e.batch_status, e.hardware_rooted ? "" : ", not hardware-rooted");
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

/// A file an option names, readable, or what is wrong with it.
status readable(std::string_view option, const std::string& path) {
    if (std::ifstream in(path); !in) {
        return error{fmt::format("{} {}: cannot read it: {}", option, path, std::strerror(errno))};
    }
    return ok_status();
}

/// Removes a Registrar database that enrol created, with SQLite's side
/// files, unless the enrolment went through: a failed first enrolment
/// leaves no empty Registrar behind. Declared before the Registrar is
/// opened, so that the database is closed before the files go.
class created_registrar {
public:
    explicit created_registrar(std::string path) : _path(file_exists(path) ? std::string() : std::move(path)) {}
    created_registrar(const created_registrar&) = delete;
    created_registrar& operator=(const created_registrar&) = delete;
    ~created_registrar() {
        if (!_path.empty()) {
            for (const char* suffix : {"", "-journal", "-wal", "-shm"}) {
                std::error_code ec;
                std::filesystem::remove(_path + suffix, ec);
            }
        }
    }
    void keep() { _path.clear(); }

private:
    std::string _path;
};

} // namespace

struct cli_commands::state {
    CLI::App* evidence = nullptr;
    CLI::App* verify = nullptr;
    CLI::App* query_events = nullptr;
    CLI::App* query_seen = nullptr;
    CLI::App* query_correlate = nullptr;
    CLI::App* extract = nullptr;
    CLI::App* check_event = nullptr;
    CLI::App* registrar_cmd = nullptr;
    CLI::App* enrol = nullptr;
    CLI::App* revoke = nullptr;
    CLI::App* update_profile = nullptr;
    CLI::App* check_ek = nullptr;
    CLI::App* list = nullptr;

    std::vector<std::string> logs;
    std::string log_name = "evidence";
    std::string registrar_db = "/var/lib/ptpsec/registrar.db";
    std::string audit;
    std::string nonce_hex;
    bool json = false;
    uint64_t event_index = 0;
    std::string out_file;
    std::string evidence_file;

    std::string signer;
    std::string from;
    std::string to;
    std::string gm;
    uint32_t seq = 0;
    std::string type = "sync";
    std::string observer;
    uint64_t bound_ns = 1000;

    std::string signer_id;
    std::string tpm_tcti;
    uint32_t key_handle = 0x81000100;
    uint32_t counter_index = 0x01500100;
    std::string ek = "auto";
    std::vector<unsigned> pcrs;
    std::string expected_pcrs_file;
    std::string ek_ca_file;
    std::string ek_crl_file;
    std::string pkcs11_module;
    std::string token_label;
    std::string key_label;
    std::string pin_file;
    std::string counter_file;
    std::string software_key_file;
    bool allow_software = false;
    std::string reason;

    result<std::vector<std::string>> log_files() const;
    int run_verify();
    int run_extract();
    int run_check_event();
    int run_query_events();
    int run_query_seen();
    int run_query_correlate();
    int run_enrol();
    int run_revoke();
    int run_update_profile();
    result<std::unique_ptr<hsm::tpm_signer>> open_tpm(hsm::ek_template ek_template) const;
    int run_check_ek();
    int run_list();
    result<std::unique_ptr<audit_store>> open_audit() const;
    result<std::unique_ptr<registrar>> open_registrar(bool create) const;
};

cli_commands::cli_commands(CLI::App& app) : _s(std::make_unique<state>()) {
    state& s = *_s;
    const std::string default_audit = "sqlite:/var/lib/ptpsec/audit.db";
    s.audit = default_audit;

    s.evidence = app.add_subcommand("evidence", "Verify attestation evidence logs and query the audit record");
    s.evidence->require_subcommand(1);
    s.verify = s.evidence->add_subcommand(
        "verify", "Check evidence logs (one signer stream, files in order) against the registrar: signatures, "
                  "Merkle roots, counters, the hash chain, revocation, nonces");
    s.verify
        ->add_option("LOG", s.logs,
                     "evidence log files, oldest first, or the data plane's --attest-log directory (its "
                     "evidence.N.cbor files in order, then evidence.cbor)")
        ->required();
    s.verify->add_option("--registrar", s.registrar_db, "registrar database")->capture_default_str();
    s.verify->add_option("--audit", s.audit,
                         "record accepted batches, events and failures, and keep the chain state, in "
                         "sqlite:PATH or postgresql:CONNINFO (default: nothing is recorded)");
    s.verify->add_option("--nonce", s.nonce_hex, "every batch must carry this verifier nonce (hex, 8-64 octets)");
    s.verify
        ->add_option("--log-name", s.log_name,
                     "base name of the log files in a directory given (the data plane's --attest-log-name)")
        ->capture_default_str();
    s.verify->add_flag("--json", s.json, "print the report as JSON");

    s.extract = s.evidence->add_subcommand(
        "extract", "Write one event's evidence (its claims, inclusion proof and batch token; docs/attestation.md, "
                   "\"Event evidence\") to a file, for an auditor to check on its own");
    s.extract->add_option("LOG", s.logs, "evidence log files of one signer, oldest first, or an --attest-log directory")
        ->required();
    s.extract->add_option("--event-index", s.event_index, "the event's index (claim -7, as queries show it)")
        ->required();
    s.extract->add_option("--out", s.out_file, "the file to write (CBOR)")->required();
    s.extract->add_option("--log-name", s.log_name, "base name of the log files in a directory given")
        ->capture_default_str();

    s.check_event = s.evidence->add_subcommand(
        "check-event", "Check one event's evidence (from evidence extract) against the registrar: the batch "
                       "signature, the inclusion proof, the claims against the batch, the signer's enrolment");
    s.check_event->add_option("EVIDENCE", s.evidence_file, "the event evidence file")->required();
    s.check_event->add_option("--registrar", s.registrar_db, "registrar database")->capture_default_str();
    s.check_event->add_flag("--json", s.json, "print the result as JSON");

    auto* query = s.evidence->add_subcommand("query", "Ask the audit record");
    query->require_subcommand(1);
    auto add_audit = [&](CLI::App* cmd) {
        cmd->add_option("--audit", s.audit, "audit record: sqlite:PATH or postgresql:CONNINFO")->capture_default_str();
        cmd->add_flag("--json", s.json, "print the rows as JSON");
    };
    s.query_events = query->add_subcommand("events", "Events of one signer between two times");
    s.query_events->add_option("--signer", s.signer, "signer_id")->required();
    s.query_events->add_option("--from", s.from, "PHC time, ns since the epoch or RFC 3339 UTC")->required();
    s.query_events->add_option("--to", s.to, "PHC time, ns since the epoch or RFC 3339 UTC")->required();
    add_audit(s.query_events);
    s.query_seen = query->add_subcommand(
        "seen", "Whether a message (by default a Sync) from a port (the grandmaster) was seen, by whom and when");
    s.query_seen->add_option("--gm", s.gm, "sourcePortIdentity: CLOCKIDHEX-PORT (as `ptpsecctl grantors` shows)")
        ->required();
    s.query_seen->add_option("--seq", s.seq, "sequenceId")->required()->check(CLI::Range(0, 65535));
    s.query_seen->add_option("--type", s.type, "messageType: sync, follow_up, delay_req, announce, ... or 0-15")
        ->capture_default_str();
    s.query_seen->add_option("--observer", s.observer, "only this signer_id");
    add_audit(s.query_seen);
    s.query_correlate = query->add_subcommand(
        "correlate", "Events seen by several observers; flag those whose timestamps disagree beyond a bound");
    s.query_correlate->add_option("--bound-ns", s.bound_ns, "largest acceptable difference, ns")->capture_default_str();
    add_audit(s.query_correlate);

    s.registrar_cmd = app.add_subcommand("registrar", "Enrol, revoke and list attestation signers");
    s.registrar_cmd->require_subcommand(1);
    s.enrol = s.registrar_cmd->add_subcommand("enrol", "Bind a signer_id to a key after checking its device");
    s.enrol->add_option("--db", s.registrar_db, "registrar database (created 0600)")->capture_default_str();
    s.enrol->add_option("--signer-id", s.signer_id, "the signer's identity in its batches")->required();
    auto* tpm = s.enrol->add_option("--tpm", s.tpm_tcti, "TPM TCTI (device:/dev/tpmrm0, swtpm:host=...,port=...)");
    s.enrol->add_option("--key-handle", s.key_handle, "persistent handle of the signing key")
        ->needs(tpm)
        ->capture_default_str();
    s.enrol->add_option("--counter-index", s.counter_index, "NV index of the signer's counter")
        ->needs(tpm)
        ->capture_default_str();
    s.enrol
        ->add_option("--ek", s.ek,
                     "TCG EK template of the EK to use: auto (the first certified of L-2, L-1, H-2, H-3, H-4, H-1, "
                     "H-6, H-7), L-1 or H-1 (RSA 2048), L-2 or H-2 (ECC P-256), H-3 (ECC P-384), H-4 (ECC P-521), "
                     "H-6 (RSA 3072), H-7 (RSA 4096)")
        ->needs(tpm)
        ->capture_default_str();
    s.enrol->add_option("--pcrs", s.pcrs, "PCRs to quote (default: those of --expected-pcrs)")
        ->delimiter(',')
        ->needs(tpm);
    auto* expected =
        s.enrol->add_option("--expected-pcrs", s.expected_pcrs_file, "file of \"INDEX SHA256-HEX\" lines")->needs(tpm);
    s.enrol
        ->add_option("--ek-ca", s.ek_ca_file,
                     "PEM file of trusted EK issuers (the TPM vendors' CAs): the TPM's EK certificate must chain to "
                     "them")
        ->needs(tpm);
    s.enrol
        ->add_option("--ek-crl", s.ek_crl_file,
                     "PEM file of the EK issuers' CRLs: the EK certificate's issuer must have a current one here and "
                     "it must not list the certificate")
        ->needs("--ek-ca");
    tpm->needs(expected);
    auto* pkcs11 = s.enrol->add_option("--pkcs11", s.pkcs11_module, "PKCS#11 module of the token");
    s.enrol->add_option("--token-label", s.token_label, "token label")->needs(pkcs11);
    s.enrol->add_option("--key-label", s.key_label, "CKA_LABEL of the key")->needs(pkcs11);
    s.enrol->add_option("--pin-file", s.pin_file, "file holding the user PIN")->needs(pkcs11);
    s.enrol->add_option("--counter-file", s.counter_file, "the signer's counter file")->needs(pkcs11);
    auto* software =
        s.enrol->add_option("--software", s.software_key_file, "PEM key file (public or private) of a software signer");
    s.enrol->add_flag("--allow-software", s.allow_software, "allow a signer that is not hardware-rooted");
    tpm->excludes(pkcs11)->excludes(software);
    pkcs11->excludes(software);

    s.revoke = s.registrar_cmd->add_subcommand("revoke", "Revoke a signer: its later batches are refused");
    s.revoke->add_option("--db", s.registrar_db, "registrar database")->capture_default_str();
    s.revoke->add_option("SIGNER_ID", s.signer_id, "signer_id")->required();
    s.revoke->add_option("--reason", s.reason, "why (recorded, shown with every refusal)")->required();

    s.update_profile = s.registrar_cmd->add_subcommand(
        "update-profile", "Replace a TPM signer's expected PCR profile (after a firmware update or a changed boot "
                          "configuration) once its TPM quotes the new values; the old profile is kept");
    s.update_profile->add_option("--db", s.registrar_db, "registrar database")->capture_default_str();
    s.update_profile->add_option("--signer-id", s.signer_id, "the enrolled TPM signer")->required();
    s.update_profile->add_option("--tpm", s.tpm_tcti, "TPM TCTI of the signer's TPM")->required();
    s.update_profile->add_option("--key-handle", s.key_handle, "persistent handle of the signing key")
        ->capture_default_str();
    s.update_profile->add_option("--counter-index", s.counter_index, "NV index of the signer's counter")
        ->capture_default_str();
    s.update_profile
        ->add_option("--expected-pcrs", s.expected_pcrs_file, "the new profile: file of \"INDEX SHA256-HEX\" lines")
        ->required();
    s.update_profile->add_option("--reason", s.reason, "why (recorded with the profile it replaces)")->required();

    s.check_ek = s.registrar_cmd->add_subcommand(
        "check-ek", "Check the EK certificates of the enrolled TPM signers against their issuers' current CRLs, and "
                    "revoke each signer whose certificate a CRL lists, from its revocation date");
    s.check_ek->add_option("--db", s.registrar_db, "registrar database")->capture_default_str();
    s.check_ek->add_option("--ek-ca", s.ek_ca_file, "PEM file of trusted EK issuers (the TPM vendors' CAs)")
        ->required();
    s.check_ek->add_option("--ek-crl", s.ek_crl_file, "PEM file of the EK issuers' current CRLs")->required();
    s.check_ek->add_flag("--json", s.json, "print one object per TPM signer as JSON");

    s.list = s.registrar_cmd->add_subcommand("list", "Enrolled signers");
    s.list->add_option("--db", s.registrar_db, "registrar database")->capture_default_str();
    s.list->add_flag("--json", s.json, "print the signers as JSON");
}

cli_commands::~cli_commands() = default;

std::optional<int> cli_commands::run() {
    state& s = *_s;
    if (s.verify->parsed()) {
        return s.run_verify();
    }
    if (s.extract->parsed()) {
        return s.run_extract();
    }
    if (s.check_event->parsed()) {
        return s.run_check_event();
    }
    if (s.query_events->parsed()) {
        return s.run_query_events();
    }
    if (s.query_seen->parsed()) {
        return s.run_query_seen();
    }
    if (s.query_correlate->parsed()) {
        return s.run_query_correlate();
    }
    if (s.enrol->parsed()) {
        return s.run_enrol();
    }
    if (s.revoke->parsed()) {
        return s.run_revoke();
    }
    if (s.update_profile->parsed()) {
        return s.run_update_profile();
    }
    if (s.check_ek->parsed()) {
        return s.run_check_ek();
    }
    if (s.list->parsed()) {
        return s.run_list();
    }
    return std::nullopt;
}

result<std::unique_ptr<audit_store>> cli_commands::state::open_audit() const {
    // A query of an SQLite file that does not exist would create an empty
    // one and answer "nothing": say so instead.
    if (audit.starts_with("sqlite:") && !file_exists(audit.substr(7))) {
        return error{fmt::format("audit store {} does not exist", audit.substr(7))};
    }
    return audit_store::open(audit);
}

result<std::unique_ptr<registrar>> cli_commands::state::open_registrar(bool create) const {
    if (!create && !file_exists(registrar_db)) {
        return error{fmt::format("registrar {} does not exist", registrar_db)};
    }
    return registrar::open(registrar_db);
}

result<std::vector<std::string>> cli_commands::state::log_files() const {
    // A directory stands for the log files in it, in reading order.
    std::vector<std::string> files;
    for (const auto& l : logs) {
        std::error_code ec;
        if (!std::filesystem::is_directory(l, ec)) {
            // A path that cannot be read is the caller's mistake (2), not
            // evidence that fails (1).
            PTPSEC_TRY(ok, check_regular_file("evidence log", l));
            files.push_back(l);
            continue;
        }
        PTPSEC_TRY(listed, hsm::list_log_files(l, log_name));
        if (listed->empty()) {
            return error{fmt::format("{}: no evidence log in it ({}.cbor, {}.N.cbor; --log-name names another)", l,
                                     log_name, log_name)};
        }
        for (const auto& f : *listed) {
            files.push_back(f.string());
        }
    }
    return files;
}

int cli_commands::state::run_verify() {
    verifier_options options;
    if (!nonce_hex.empty()) {
        auto n = from_hex(nonce_hex);
        if (!n || n->size() < hsm::min_nonce_len || n->size() > hsm::max_nonce_len) {
            return report(fmt::format("--nonce {}: not {} to {} octets of hex", nonce_hex, hsm::min_nonce_len,
                                      hsm::max_nonce_len));
        }
        options.expected_nonce = std::move(*n);
    }
    auto reg = open_registrar(false);
    if (!reg) {
        return report(reg.message());
    }
    std::unique_ptr<audit_store> store;
    if (verify->count("--audit") > 0) {
        // verify creates an SQLite audit file; the queries do not.
        auto opened = audit_store::open(audit);
        if (!opened) {
            return report(opened.message());
        }
        store = std::move(*opened);
    }
    auto files = log_files();
    if (!files) {
        return report(files.message());
    }
    verifier v(**reg, store.get(), std::move(options));
    const verify_report r = v.verify_files(*files);
    if (json) {
        ordered_json j{{"ok", r.ok()},
                       {"files", r.files},
                       {"records", r.records},
                       {"batches_accepted", r.batches_accepted},
                       {"batches_verified", r.batches_verified},
                       {"events", r.events}};
        j["failures"] = ordered_json::array();
        for (const auto& f : r.failures) {
            j["failures"].push_back(finding_json(f));
        }
        j["warnings"] = ordered_json::array();
        for (const auto& f : r.warnings) {
            j["warnings"].push_back(finding_json(f));
        }
        j["store_errors"] = r.store_errors;
        fmt::print("{}\n", j.dump());
    } else {
        for (const auto& f : r.failures) {
            fmt::print("{}\n", finding_line(f));
        }
        for (const auto& f : r.warnings) {
            fmt::print("{}\n", finding_line(f));
        }
        for (const auto& e : r.store_errors) {
            fmt::print(stderr, "ptpsecctl: {}\n", e);
        }
        fmt::print("{}: {} file(s), {} record(s), {} batch(es) accepted ({} verified), {} event(s); {} failure(s), "
                   "{} warning(s)\n",
                   r.ok() ? "OK" : "FAILED", r.files, r.records, r.batches_accepted, r.batches_verified, r.events,
                   r.failures.size(), r.warnings.size());
    }
    if (!r.store_errors.empty()) {
        return exit_error;
    }
    return r.ok() ? exit_ok : exit_failed;
}

std::string evidence_summary(const hsm::event_claims& c, const hsm::batch_payload& b) {
    return fmt::format("event {} of \"{}\": {} {} seq {} from {} at {} ({} ns), batch counter {}", c.event_index,
                       c.signer_id, c.direction == event_direction::tx ? "sent" : "received",
                       message_type_name(c.message_type), c.sequence_id, port_identity_string(c.source_port_identity),
                       format_time(static_cast<int64_t>(c.phc_timestamp_ns)), c.phc_timestamp_ns, b.counter);
}

int cli_commands::state::run_extract() {
    auto files = log_files();
    if (!files) {
        return report(files.message());
    }
    std::optional<uint64_t> lowest;
    std::optional<uint64_t> highest;
    std::vector<std::string> problems;
    for (const auto& f : *files) {
        auto bytes = read_regular_file("evidence log", f);
        if (!bytes) {
            return report(bytes.message());
        }
        const hsm::log_contents log = hsm::read_log(*bytes);
        if (log.problem) {
            problems.push_back(fmt::format("{} offset {}: {}", f, log.problem->offset, log.problem->message));
        }
        for (const auto& entry : log.records) {
            const hsm::batch_payload& p = entry.record.payload;
            lowest = std::min(lowest.value_or(p.first_event_index), p.first_event_index);
            highest = std::max(highest.value_or(p.last_event_index), p.last_event_index);
            if (event_index < p.first_event_index || event_index > p.last_event_index) {
                continue;
            }
            for (size_t leaf = 0; leaf < entry.record.leaves.size(); ++leaf) {
                auto claims = hsm::decode_claims(entry.record.leaves[leaf]);
                if (!claims || claims->event_index != event_index) {
                    continue;
                }
                auto ev = hsm::derive_event_evidence(entry.record, leaf);
                if (!ev) {
                    return refused(fmt::format("{} offset {}: {}", f, entry.offset, ev.message()));
                }
                auto encoded = hsm::encode_event_evidence(*ev);
                if (!encoded) {
                    return refused(encoded.message());
                }
                std::ofstream out(out_file, std::ios::binary | std::ios::trunc);
                out.write(reinterpret_cast<const char*>(encoded->data()),
                          static_cast<std::streamsize>(encoded->size()));
                out.close();
                if (!out) {
                    return report(fmt::format("--out {}: cannot write it: {}", out_file, std::strerror(errno)));
                }
                fmt::print("{} (leaf {} of {}, {} offset {}) -> {}\n", evidence_summary(*claims, p), leaf,
                           entry.record.leaves.size(), f, entry.offset, out_file);
                return exit_ok;
            }
            // Inside the batch's range but not one of its leaves: the ring
            // dropped it (a gap the next batches count as missed events).
            return refused(fmt::format("event index {} is not in the batch with counter {} ({} offset {}), whose "
                                       "events run from {} to {}: it was missed (missed_events counts it)",
                                       event_index, p.counter, f, entry.offset, p.first_event_index,
                                       p.last_event_index));
        }
    }
    std::string held = lowest ? fmt::format("the logs hold events {} to {}", *lowest, *highest)
                              : std::string("the logs hold no complete record");
    if (!problems.empty()) {
        held += fmt::format("; reading stopped early in {}", fmt::join(problems, ", "));
    }
    return refused(fmt::format("event index {} is in none of the batches read: {}", event_index, held));
}

int cli_commands::state::run_check_event() {
    auto bytes = read_regular_file("evidence file", evidence_file);
    if (!bytes) {
        return report(bytes.message());
    }
    auto reg = open_registrar(false);
    if (!reg) {
        return report(reg.message());
    }
    auto fail = [&](const std::string& check, const std::string& message) {
        if (json) {
            fmt::print("{}\n", ordered_json{{"ok", false}, {"check", check}, {"message", message}}.dump());
        } else {
            fmt::print("FAILED {}: {}\n", check, message);
        }
        return exit_failed;
    };
    auto ev = hsm::decode_event_evidence(*bytes);
    if (!ev) {
        return fail("decode", ev.message());
    }
    // Only to find the key: nothing in the payload is trusted before the
    // signature under that key verified.
    auto unverified = hsm::decode_batch_payload(ev->token.payload);
    if (!unverified) {
        return fail("decode", unverified.message());
    }
    auto found = (*reg)->lookup(unverified->signer_id);
    if (!found) {
        return report(found.message());
    }
    if (!*found) {
        return fail("unknown signer",
                    fmt::format("signer \"{}\" is not enrolled in the registrar", unverified->signer_id));
    }
    const signer_record& enrolled = **found;
    if (ev->token.algorithm != enrolled.algorithm) {
        return fail("algorithm", fmt::format("the token names {} but signer \"{}\" is enrolled with {}",
                                             algorithm_name(ev->token.algorithm), enrolled.signer_id,
                                             algorithm_name(enrolled.algorithm)));
    }
    auto verified = hsm::check_event_evidence(*ev, enrolled.algorithm, enrolled.public_key_der);
    if (!verified) {
        return fail("evidence", verified.message());
    }
    const hsm::batch_payload& b = verified->batch;
    const auto revocation = judge_revocation(enrolled, b.batch_time_ns);
    if (revocation && revocation->fails) {
        return fail(revocation->check, revocation->message);
    }
    if (b.backend != enrolled.backend || b.hardware_rooted != enrolled.hardware_rooted) {
        return fail("backend",
                    fmt::format("the batch says backend {} but signer \"{}\" is enrolled as {}",
                                hsm::to_string(b.backend), enrolled.signer_id, hsm::to_string(enrolled.backend)));
    }
    const std::string rooted = b.hardware_rooted ? "hardware-rooted" : "NOT hardware-rooted";
    // As evidence verify warns: the batch passes, but its time is the
    // revoked signer's own claim.
    ordered_json warnings = ordered_json::array();
    if (revocation) {
        warnings.push_back({{"check", revocation->check}, {"message", revocation->message}});
    }
    if (json) {
        const hsm::event_claims& c = verified->claims;
        fmt::print("{}\n", ordered_json{{"ok", true},
                                        {"signer_id", c.signer_id},
                                        {"backend", hsm::to_string(b.backend)},
                                        {"hardware_rooted", b.hardware_rooted},
                                        {"event_index", c.event_index},
                                        {"direction", c.direction == event_direction::tx ? "tx" : "rx"},
                                        {"message_type", c.message_type},
                                        {"sequence_id", c.sequence_id},
                                        {"source_port_identity", port_identity_string(c.source_port_identity)},
                                        {"phc_timestamp_ns", c.phc_timestamp_ns},
                                        {"event_digest", hex(c.event_digest)},
                                        {"counter", b.counter},
                                        {"batch_time_ns", b.batch_time_ns},
                                        {"merkle_root", hex(b.merkle_root)},
                                        {"warnings", warnings}}
                               .dump());
    } else {
        fmt::print("OK: {}; {} signer ({}), signature, inclusion proof and claims verified\n",
                   evidence_summary(verified->claims, b), hsm::to_string(b.backend), rooted);
        for (const auto& w : warnings) {
            fmt::print("WARNING {}: {}\n", w["check"].get<std::string>(), w["message"].get<std::string>());
        }
    }
    return exit_ok;
}

int cli_commands::state::run_query_events() {
    const auto t1 = parse_time("--from", from);
    if (!t1) {
        return report(t1.message());
    }
    const auto t2 = parse_time("--to", to);
    if (!t2) {
        return report(t2.message());
    }
    auto store = open_audit();
    if (!store) {
        return report(store.message());
    }
    auto rows = (*store)->events_between(signer, *t1, *t2);
    if (!rows) {
        return report(rows.message());
    }
    if (json) {
        ordered_json j = ordered_json::array();
        for (const auto& e : *rows) {
            j.push_back(event_json(e));
        }
        fmt::print("{}\n", j.dump());
        return exit_ok;
    }
    for (const auto& e : *rows) {
        fmt::print("{}\n", event_line(e));
    }
    fmt::print("{} event(s) of \"{}\" from {} to {}\n", rows->size(), signer, format_time(static_cast<int64_t>(*t1)),
               format_time(static_cast<int64_t>(*t2)));
    return exit_ok;
}

int cli_commands::state::run_query_seen() {
    const auto port = parse_port_identity(gm);
    if (!port) {
        return report(fmt::format("--gm {}: not a PortIdentity (CLOCKIDHEX-PORT or 20 hex digits)", gm));
    }
    const auto mt = parse_message_type(type);
    if (!mt) {
        return report(fmt::format("--type {}: not a PTP messageType", type));
    }
    auto store = open_audit();
    if (!store) {
        return report(store.message());
    }
    std::optional<std::string_view> who;
    if (!observer.empty()) {
        who = observer;
    }
    auto rows = (*store)->seen(*mt, static_cast<uint16_t>(seq), *port, who);
    if (!rows) {
        return report(rows.message());
    }
    if (json) {
        ordered_json j = ordered_json::array();
        for (const auto& e : *rows) {
            j.push_back(event_json(e));
        }
        fmt::print("{}\n", j.dump());
    } else {
        for (const auto& e : *rows) {
            fmt::print("{}\n", event_line(e));
        }
        fmt::print("{} sequenceId {} from {} seen {} time(s){}\n", message_type_name(*mt), seq,
                   port_identity_string(*port), rows->size(),
                   observer.empty() ? std::string() : fmt::format(" by \"{}\"", observer));
    }
    return rows->empty() ? exit_failed : exit_ok;
}

int cli_commands::state::run_query_correlate() {
    auto store = open_audit();
    if (!store) {
        return report(store.message());
    }
    auto r = (*store)->correlate(bound_ns);
    if (!r) {
        return report(r.message());
    }
    if (json) {
        ordered_json j{{"bound_ns", bound_ns}, {"flagged_observers", r->flagged_observers}};
        j["events"] = ordered_json::array();
        for (const auto& ev : r->events) {
            ordered_json e{{"event_digest", hex(ev.event_digest)},
                           {"message_type", ev.message_type},
                           {"sequence_id", ev.sequence_id},
                           {"source_port_identity", port_identity_string(ev.source_port_identity)}};
            e["observations"] = ordered_json::array();
            for (const auto& o : ev.observations) {
                e["observations"].push_back({{"signer_id", o.signer_id},
                                             {"direction", o.direction == event_direction::tx ? "tx" : "rx"},
                                             {"port", o.port_id},
                                             {"timestamp_ns", o.timestamp_ns},
                                             {"correction_field", o.correction_field},
                                             {"deviation_ns", o.deviation_ns},
                                             {"flagged", o.flagged}});
            }
            e["pairs"] = ordered_json::array();
            for (const auto& p : ev.pairs) {
                e["pairs"].push_back({{"first", p.first}, {"second", p.second}, {"difference_ns", p.difference_ns}});
            }
            j["events"].push_back(std::move(e));
        }
        fmt::print("{}\n", j.dump());
    } else {
        for (const auto& ev : r->events) {
            fmt::print("{} seq {} from {} (digest {}):\n", message_type_name(ev.message_type), ev.sequence_id,
                       port_identity_string(ev.source_port_identity), hex(ev.event_digest).substr(0, 16));
            for (const auto& o : ev.observations) {
                fmt::print("  {} {} port {} at {} ns ({:+} ns from the median){}\n", o.signer_id,
                           o.direction == event_direction::tx ? "sent" : "received", o.port_id, o.timestamp_ns,
                           o.deviation_ns, o.flagged ? "  FLAGGED" : "");
            }
            for (const auto& p : ev.pairs) {
                fmt::print("  {} and {} differ by {} ns, more than {} ns\n", p.first, p.second, p.difference_ns,
                           bound_ns);
            }
        }
        fmt::print("{} event(s) seen by several observers; {} observer(s) flagged{}{}\n", r->events.size(),
                   r->flagged_observers.size(), r->flagged_observers.empty() ? "" : ": ",
                   fmt::format("{}", fmt::join(r->flagged_observers, ", ")));
    }
    return r->flagged_observers.empty() ? exit_ok : exit_failed;
}

int cli_commands::state::run_enrol() {
    const int chosen =
        (tpm_tcti.empty() ? 0 : 1) + (pkcs11_module.empty() ? 0 : 1) + (software_key_file.empty() ? 0 : 1);
    if (chosen != 1) {
        return report("registrar enrol: give exactly one of --tpm, --pkcs11, --software");
    }
    created_registrar made(registrar_db);
    auto reg = open_registrar(true);
    if (!reg) {
        return report(reg.message());
    }
    status st = ok_status();
    std::string device;
    std::string checked;
    if (!tpm_tcti.empty()) {
        auto template_id = hsm::parse_ek_template(ek);
        if (!template_id) {
            return report(fmt::format("--ek: {}", template_id.message()));
        }
        auto expected = read_pcr_profile(expected_pcrs_file);
        if (!expected) {
            return report(expected.message());
        }
        if (!pcrs.empty()) {
            const std::set<unsigned> want(pcrs.begin(), pcrs.end());
            if (!std::ranges::equal(want, hsm::pcr_indices(*expected))) {
                return report(
                    fmt::format("--pcrs {} is not the set of PCRs in {}", fmt::join(pcrs, ","), expected_pcrs_file));
            }
        }
        auto tpm = open_tpm(*template_id);
        if (!tpm) {
            return report(tpm.message());
        }
        st = enrol_tpm(**reg, **tpm, signer_id, *expected, ek_trust{ek_ca_file, ek_crl_file});
        if (st) {
            // What was shown of the EK's certificate, and what was not.
            std::string certificate;
            std::string unchecked;
            if (ek_ca_file.empty()) {
                unchecked = "; the EK certificate not checked: --ek-ca";
            } else if (ek_crl_file.empty()) {
                certificate = fmt::format(", its certificate chained to {}", ek_ca_file);
                unchecked = "; revocation not checked: --ek-crl";
            } else {
                certificate =
                    fmt::format(", its certificate chained to {} and not revoked in {}", ek_ca_file, ek_crl_file);
            }
            const hsm::ek_template used = (*tpm)->endorsement_template();
            checked = fmt::format(" (key in the TPM of that EK{}, PCR quote{}; EK template {}, {})", certificate,
                                  unchecked, hsm::ek_template_name(used), hsm::ek_template_kind(used));
        }
    } else if (!pkcs11_module.empty()) {
        if (token_label.empty() || key_label.empty() || pin_file.empty() || counter_file.empty()) {
            return report("registrar enrol --pkcs11 needs --token-label, --key-label, --pin-file and --counter-file");
        }
        hsm::pkcs11_settings settings;
        settings.module_path = pkcs11_module;
        settings.token_label = token_label;
        settings.user_pin_file = pin_file;
        settings.key_label = key_label;
        settings.generate_key = false; // enrol what is there: a provisioned key
        settings.counter_path = counter_file;
        settings.signer_id = signer_id;
        auto token = hsm::pkcs11_signer::open(settings);
        if (!token) {
            return report(fmt::format("PKCS#11 token {}: {}", token_label, token.message()));
        }
        hsm::pkcs11_enrolment e = (*token)->enrolment();
        e.signer_id = signer_id;
        st = (*reg)->enrol_pkcs11(e);
    } else {
        auto key = read_software_key(software_key_file);
        if (!key) {
            return report(key.message());
        }
        st = (*reg)->enrol_software(signer_id, key->algorithm, key->public_key_der, software_key_file, allow_software);
    }
    if (!st) {
        return refused(st.message());
    }
    auto enrolled = (*reg)->lookup(signer_id);
    if (enrolled && *enrolled) {
        device = (*enrolled)->device();
    }
    made.keep();
    fmt::print("signer \"{}\" enrolled: {}{}\n", signer_id, device, checked);
    return exit_ok;
}

int cli_commands::state::run_revoke() {
    auto reg = open_registrar(false);
    if (!reg) {
        return report(reg.message());
    }
    const int64_t now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    if (auto st = (*reg)->revoke(signer_id, reason, now); !st) {
        return refused(st.message());
    }
    fmt::print("signer \"{}\" revoked at {}: batches it signed after that are refused\n", signer_id, format_time(now));
    return exit_ok;
}

result<std::unique_ptr<hsm::tpm_signer>> cli_commands::state::open_tpm(hsm::ek_template ek_template) const {
    hsm::tpm_settings settings;
    settings.tcti = tpm_tcti;
    settings.key_handle = key_handle;
    settings.counter_index = counter_index;
    settings.signer_id = signer_id;
    settings.ek = ek_template;
    auto tpm = hsm::tpm_signer::open(settings);
    if (!tpm) {
        return error{fmt::format("TPM {}: {}", tpm_tcti, tpm.message())};
    }
    return tpm;
}

int cli_commands::state::run_update_profile() {
    auto expected = read_pcr_profile(expected_pcrs_file);
    if (!expected) {
        return report(expected.message());
    }
    auto reg = open_registrar(false);
    if (!reg) {
        return report(reg.message());
    }
    auto tpm = open_tpm(hsm::ek_template::automatic);
    if (!tpm) {
        return report(tpm.message());
    }
    auto changed = update_profile_tpm(**reg, **tpm, signer_id, *expected, reason);
    if (!changed) {
        return refused(changed.message());
    }
    const std::vector<unsigned> idx = hsm::pcr_indices(*expected);
    if (!*changed) {
        fmt::print("signer \"{}\": its PCR profile ({}) already holds these values; nothing changed\n", signer_id,
                   fmt::join(idx, ","));
    } else {
        fmt::print("signer \"{}\": PCR profile replaced by the values of {} (PCRs {}), which its TPM quoted; the "
                   "profile it had is kept in {} with the reason\n",
                   signer_id, expected_pcrs_file, fmt::join(idx, ","), registrar_db);
    }
    return exit_ok;
}

int cli_commands::state::run_check_ek() {
    for (const auto& [option, path] : {std::pair{"--ek-ca", &ek_ca_file}, std::pair{"--ek-crl", &ek_crl_file}}) {
        if (auto st = readable(option, *path); !st) {
            return report(st.message());
        }
    }
    auto reg = open_registrar(false);
    if (!reg) {
        return report(reg.message());
    }
    auto checks = (*reg)->check_ek_revocations(ek_trust{ek_ca_file, ek_crl_file});
    if (!checks) {
        return report(checks.message());
    }
    bool all_valid = true;
    ordered_json j = ordered_json::array();
    for (const auto& c : *checks) {
        all_valid = all_valid && c.result == ek_revocation_check::outcome::valid;
        if (json) {
            ordered_json o{{"signer_id", c.signer_id}, {"result", to_string(c.result)}, {"detail", c.detail}};
            o["revoked_at"] = c.revoked_at_ns ? ordered_json(format_time(*c.revoked_at_ns)) : ordered_json(nullptr);
            j.push_back(std::move(o));
        } else if (c.result == ek_revocation_check::outcome::revoked) {
            fmt::print("{}: REVOKED from {}: {}; its batches signed after that are refused\n", c.signer_id,
                       format_time(*c.revoked_at_ns), c.detail);
        } else {
            fmt::print("{}: {}: {}\n", c.signer_id, to_string(c.result), c.detail);
        }
    }
    if (json) {
        fmt::print("{}\n", j.dump());
    } else if (checks->empty()) {
        fmt::print("no TPM signers to check in {} (revoked ones are not checked again)\n", registrar_db);
    }
    // 0: every TPM signer checked and valid; 1: one was revoked now, or
    // could not be checked.
    return all_valid ? exit_ok : exit_failed;
}

int cli_commands::state::run_list() {
    auto reg = open_registrar(false);
    if (!reg) {
        return report(reg.message());
    }
    auto signers = (*reg)->list();
    if (!signers) {
        return report(signers.message());
    }
    if (json) {
        ordered_json j = ordered_json::array();
        for (const auto& s : *signers) {
            ordered_json o{{"signer_id", s.signer_id},
                           {"backend", hsm::to_string(s.backend)},
                           {"algorithm", algorithm_name(s.algorithm)},
                           {"hardware_rooted", s.hardware_rooted},
                           {"public_key", hex(s.public_key_der)},
                           {"device", s.device()},
                           {"enrolled_at", format_time(s.enrolled_at_ns)}};
            o["revoked_at"] = s.revoked_at_ns ? ordered_json(format_time(*s.revoked_at_ns)) : ordered_json(nullptr);
            o["revocation_reason"] = s.revoked_at_ns ? ordered_json(s.revocation_reason) : ordered_json(nullptr);
            // {"INDEX": "SHA256-HEX", ...}
            const auto profile_json = [](const hsm::pcr_values& profile) {
                ordered_json out = ordered_json::object();
                for (const auto& [i, v] : profile) {
                    out[std::to_string(i)] = hex(v);
                }
                return out;
            };
            o["expected_pcrs"] = profile_json(s.expected_pcrs);
            ordered_json changes = ordered_json::array();
            for (const auto& c : s.profile_changes) {
                changes.push_back({{"replaced_at", format_time(c.replaced_at_ns)},
                                   {"reason", c.reason},
                                   {"previous", profile_json(c.previous)}});
            }
            o["profile_changes"] = std::move(changes);
            j.push_back(std::move(o));
        }
        fmt::print("{}\n", j.dump());
        return exit_ok;
    }
    if (signers->empty()) {
        fmt::print("no signers enrolled in {}\n", registrar_db);
        return exit_ok;
    }
    fmt::print("{:<24} {:<9} {:<6} {:<9} {:<31} {}\n", "SIGNER", "BACKEND", "ALG", "HARDWARE", "ENROLLED", "STATE");
    for (const auto& s : *signers) {
        fmt::print("{:<24} {:<9} {:<6} {:<9} {:<31} {}\n", s.signer_id, hsm::to_string(s.backend),
                   algorithm_name(s.algorithm), s.hardware_rooted ? "yes" : "no", format_time(s.enrolled_at_ns),
                   s.revoked_at_ns ? fmt::format("revoked {} ({})", format_time(*s.revoked_at_ns), s.revocation_reason)
                                   : std::string("active"));
        fmt::print("    {}\n", s.device());
        if (!s.expected_pcrs.empty()) {
            const std::vector<unsigned> idx = hsm::pcr_indices(s.expected_pcrs);
            if (s.profile_changes.empty()) {
                fmt::print("    PCR profile: {}\n", fmt::join(idx, ","));
            } else {
                const profile_change& last = s.profile_changes.back();
                fmt::print("    PCR profile: {} (updated {} time(s), last {}: {})\n", fmt::join(idx, ","),
                           s.profile_changes.size(), format_time(last.replaced_at_ns), last.reason);
            }
        }
    }
    return exit_ok;
}

} // namespace ptpsec::verifier
