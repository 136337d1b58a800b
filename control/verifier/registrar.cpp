#include <control/verifier/registrar.h>

#include <hsm/tpm_credential.h>

#include <drivers/base/hex.h>

#include <hsm/signature.h>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>

namespace ptpsec::verifier {

namespace {

constexpr size_t max_signer_id_len = 255; // hsm::max_signer_id_len: the claims' limit

std::string schema(const sql::connection& db) {
    const auto i = db.integer_type();
    const auto b = db.blob_type();
    return fmt::format(R"(
CREATE TABLE IF NOT EXISTS signers(
  signer_id TEXT PRIMARY KEY,
  algorithm {0} NOT NULL,
  public_key {1} NOT NULL UNIQUE,
  backend TEXT NOT NULL,
  hardware_rooted {0} NOT NULL,
  ek_public {1},
  key_name {1},
  key_public_area {1},
  token_label TEXT,
  token_serial TEXT,
  token_manufacturer TEXT,
  token_model TEXT,
  key_label TEXT,
  key_id {1},
  key_file TEXT,
  enrolled_at_ns {0} NOT NULL,
  revoked_at_ns {0},
  revocation_reason TEXT,
  ek_certificate {1});
CREATE TABLE IF NOT EXISTS expected_pcrs(
  signer_id TEXT NOT NULL REFERENCES signers(signer_id),
  pcr {0} NOT NULL,
  value {1} NOT NULL,
  PRIMARY KEY(signer_id, pcr));
CREATE TABLE IF NOT EXISTS replaced_pcrs(
  signer_id TEXT NOT NULL REFERENCES signers(signer_id),
  replaced_at_ns {0} NOT NULL,
  reason TEXT NOT NULL,
  pcr {0} NOT NULL,
  value {1} NOT NULL,
  PRIMARY KEY(signer_id, replaced_at_ns, pcr));
)",
                       i, b);
}

constexpr const char* select_signer =
    "SELECT signer_id, algorithm, public_key, backend, hardware_rooted, ek_public, key_name, key_public_area, "
    "token_label, token_serial, token_manufacturer, token_model, key_label, key_id, key_file, enrolled_at_ns, "
    "revoked_at_ns, revocation_reason, ek_certificate FROM signers";

constexpr std::array signer_columns{sql::column::text,    sql::column::integer, sql::column::blob, sql::column::text,
                                    sql::column::integer, sql::column::blob,    sql::column::blob, sql::column::blob,
                                    sql::column::text,    sql::column::text,    sql::column::text, sql::column::text,
                                    sql::column::text,    sql::column::blob,    sql::column::text, sql::column::integer,
                                    sql::column::integer, sql::column::text,    sql::column::blob};

int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string hex(std::span<const uint8_t> b) {
    return to_hex(b);
}

result<hsm::backend_kind> backend_of(const std::string& s) {
    for (auto k : {hsm::backend_kind::tpm, hsm::backend_kind::pkcs11, hsm::backend_kind::software}) {
        if (s == hsm::to_string(k)) {
            return k;
        }
    }
    return error{fmt::format("backend \"{}\" is not tpm, pkcs11 or software", s)};
}

/// "; PCR 7 reads ..., the profile expects ..." for each PCR whose value
/// read beside `q` differs from `expected`: those values are not signed,
/// but when the signed digest disagrees they name the PCRs that differ.
std::string differing_pcrs(const hsm::tpm_quote& q, const hsm::pcr_values& expected) {
    std::string detail;
    for (const auto& [pcr, want] : expected) {
        const auto got = q.pcrs.find(pcr);
        if (got != q.pcrs.end() && got->second != want) {
            detail += fmt::format("; PCR {} reads {}, the profile expects {}", pcr, hex(got->second), hex(want));
        }
    }
    return detail;
}

/// Refuses an empty profile and a value that is not a SHA-256 digest.
status check_profile(const hsm::pcr_values& expected) {
    if (expected.empty()) {
        return error{"no expected PCR values (the PCR profile is what the quote proves)"};
    }
    for (const auto& [pcr, value] : expected) {
        if (value.size() != 32) {
            return error{fmt::format("the expected SHA-256 value of PCR {} has {} octets, not 32", pcr, value.size())};
        }
    }
    return ok_status();
}

/// What a profile update needs before anything is asked of the TPM.
status check_profile_update(const hsm::pcr_values& expected, std::string_view reason) {
    if (reason.empty()) {
        return error{"no reason given (it is recorded with the profile it replaces)"};
    }
    return check_profile(expected);
}

/// The profile's rows of `signer_id` (inside the caller's transaction).
status insert_expected_pcrs(sql::connection& db, const std::string& signer_id, const hsm::pcr_values& profile) {
    for (const auto& [pcr, value] : profile) {
        const std::array<sql::value, 3> p{signer_id, int64_t{pcr}, value};
        if (auto r = db.query("INSERT INTO expected_pcrs(signer_id, pcr, value) VALUES($1, $2, $3);", p); !r) {
            return r.err();
        }
    }
    return ok_status();
}

status check_signer_id(std::string_view id) {
    if (id.empty() || id.size() > max_signer_id_len) {
        return error{fmt::format("a signer_id is 1 to {} octets, not {}", max_signer_id_len, id.size())};
    }
    return ok_status();
}

/// The key must be a DER SubjectPublicKeyInfo of the algorithm's type: a
/// P-256 point for ES256, an Ed25519 key for EdDSA (RFC 9053 §2.1, §2.2).
status check_spki(hsm::signature_algorithm alg, std::span<const uint8_t> der) {
    const unsigned char* p = der.data();
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())),
                                                            EVP_PKEY_free);
    if (!key || p != der.data() + der.size()) {
        return error{"the public key is not a DER SubjectPublicKeyInfo"};
    }
    if (alg == hsm::signature_algorithm::eddsa) {
        if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_ED25519) {
            return error{"the public key is not an Ed25519 key (the algorithm is EdDSA)"};
        }
        return ok_status();
    }
    if (!hsm::is_p256_key(key.get())) {
        return error{"the public key is not a P-256 key (the algorithm is ES256)"};
    }
    return ok_status();
}

signer_record record_of(const sql::row& r) {
    signer_record s;
    s.signer_id = sql::as_text(r[0]);
    s.algorithm = static_cast<hsm::signature_algorithm>(sql::as_integer(r[1]));
    s.public_key_der = sql::as_blob(r[2]);
    auto kind = backend_of(sql::as_text(r[3]));
    s.backend = kind ? *kind : hsm::backend_kind::software;
    s.hardware_rooted = sql::as_integer(r[4]) != 0 && kind.ok();
    s.tpm.ek_public_der = sql::as_blob(r[5]);
    s.tpm.key_name = sql::as_blob(r[6]);
    s.tpm.key_public_area = sql::as_blob(r[7]);
    s.pkcs11.token_label = sql::as_text(r[8]);
    s.pkcs11.token_serial = sql::as_text(r[9]);
    s.pkcs11.token_manufacturer = sql::as_text(r[10]);
    s.pkcs11.token_model = sql::as_text(r[11]);
    s.pkcs11.key_label = sql::as_text(r[12]);
    s.pkcs11.key_id = sql::as_blob(r[13]);
    s.key_file = sql::as_text(r[14]);
    s.enrolled_at_ns = sql::as_integer(r[15]);
    if (!sql::is_null(r[16])) {
        s.revoked_at_ns = sql::as_integer(r[16]);
    }
    s.revocation_reason = sql::as_text(r[17]);
    s.tpm.ek_certificate_der = sql::as_blob(r[18]);
    return s;
}

sql::value optional_blob(const std::vector<uint8_t>& b, bool present) {
    return present ? sql::value{b} : sql::value{};
}

sql::value optional_text(const std::string& s, bool present) {
    return present ? sql::value{s} : sql::value{};
}

} // namespace

const char* algorithm_name(hsm::signature_algorithm alg) noexcept {
    return alg == hsm::signature_algorithm::eddsa ? "eddsa" : "es256";
}

std::string signer_record::device() const {
    switch (backend) {
    case hsm::backend_kind::tpm: {
        std::array<uint8_t, SHA256_DIGEST_LENGTH> ek{};
        SHA256(tpm.ek_public_der.data(), tpm.ek_public_der.size(), ek.data());
        return fmt::format("tpm EK sha256:{} key name {}", hex(ek), hex(tpm.key_name));
    }
    case hsm::backend_kind::pkcs11:
        return fmt::format("pkcs11 token {} serial {} ({} {}) key {}", pkcs11.token_label, pkcs11.token_serial,
                           pkcs11.token_manufacturer, pkcs11.token_model, pkcs11.key_label);
    case hsm::backend_kind::software:
        break;
    }
    return fmt::format("software key {}", key_file);
}

result<std::vector<uint8_t>> make_nonce() {
    std::vector<uint8_t> n(32);
    if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1) {
        return error{"the random generator failed to make a nonce"};
    }
    return n;
}

registrar::registrar(std::unique_ptr<sql::connection> db, std::string path)
    : _db(std::move(db)), _path(std::move(path)) {}

result<std::unique_ptr<registrar>> registrar::open(const std::string& path) {
    auto db = sql::open_sqlite(path, true);
    if (!db) {
        return error{fmt::format("registrar: {}", db.message())};
    }
    if (auto s = (*db)->script(schema(**db)); !s) {
        return error{fmt::format("registrar: {}", s.message())};
    }
    // A registry made before the EK certificate was recorded gets the
    // column (empty for the signers already in it).
    auto has = (*db)->query("SELECT COUNT(*) FROM pragma_table_info('signers') WHERE name = 'ek_certificate';", {},
                            std::array{sql::column::integer});
    if (!has) {
        return error{fmt::format("registrar: {}", has.message())};
    }
    if (sql::as_integer(has->front()[0]) == 0) {
        if (auto s =
                (*db)->script(fmt::format("ALTER TABLE signers ADD COLUMN ek_certificate {};", (*db)->blob_type()));
            !s) {
            return error{fmt::format("registrar: {}", s.message())};
        }
    }
    return std::unique_ptr<registrar>(new registrar(std::move(*db), path));
}

namespace {

/// Whether a quote by the TPM signer `s` can be taken for its TPM's: its
/// recorded public area must still pass the enrolment check's attributes,
/// restricted included (hsm::check_key_attributes; its point was matched to
/// the key at enrolment, and check_quote verifies under that key). A signer
/// enrolled with an unrestricted key (its host could have had the key sign a
/// TPMS_ATTEST of its own) must be enrolled again with the key a ptpsec
/// signer makes now.
status quotes_trusted(const signer_record& s) {
    if (auto st = hsm::check_key_attributes(s.tpm.key_public_area); !st) {
        return error{fmt::format("its quotes cannot be trusted: the enrolled key's public area: {}; revoke the "
                                 "signer, evict its key from the TPM (tpm2_evictcontrol) and enrol the TPM under a "
                                 "new signer_id",
                                 st.message())};
    }
    return ok_status();
}

} // namespace

status registrar::check_platform(std::string_view signer_id, std::span<const uint8_t> attest,
                                 std::span<const uint8_t> signature, std::span<const uint8_t> binding) {
    auto found = lookup(signer_id);
    if (!found) {
        return found.err();
    }
    if (!found->has_value()) {
        return error{fmt::format("signer \"{}\" is not enrolled in the Registrar {}", signer_id, _path)};
    }
    const signer_record& s = **found;
    if (s.backend != hsm::backend_kind::tpm) {
        return error{fmt::format("signer \"{}\" is a {} signer: only a TPM signer quotes its platform state", signer_id,
                                 hsm::to_string(s.backend))};
    }
    if (s.revoked_at_ns) {
        return error{fmt::format("signer \"{}\" is revoked ({})", signer_id, s.revocation_reason)};
    }
    if (status st = quotes_trusted(s); !st) {
        return error{fmt::format("signer \"{}\": {}", signer_id, st.message())};
    }
    if (status st = hsm::check_quote(attest, signature, s.public_key_der, binding, s.expected_pcrs); !st) {
        return error{fmt::format("signer \"{}\": {}", signer_id, st.message())};
    }
    return ok_status();
}

result<std::optional<signer_record>> registrar::lookup(std::string_view signer_id) {
    const std::array<sql::value, 1> params{sql::value{std::string(signer_id)}};
    auto rows = _db->query(fmt::format("{} WHERE signer_id = $1;", select_signer), params, signer_columns);
    if (!rows) {
        return error{fmt::format("registrar: {}", rows.message())};
    }
    if (rows->empty()) {
        return std::optional<signer_record>{};
    }
    signer_record s = record_of(rows->front());
    auto pcrs = _db->query("SELECT pcr, value FROM expected_pcrs WHERE signer_id = $1 ORDER BY pcr;", params,
                           std::array{sql::column::integer, sql::column::blob});
    if (!pcrs) {
        return error{fmt::format("registrar: {}", pcrs.message())};
    }
    for (const auto& r : *pcrs) {
        s.expected_pcrs[static_cast<unsigned>(sql::as_integer(r[0]))] = sql::as_blob(r[1]);
    }
    auto replaced = _db->query(
        "SELECT replaced_at_ns, reason, pcr, value FROM replaced_pcrs WHERE signer_id = $1 ORDER BY replaced_at_ns, "
        "pcr;",
        params, std::array{sql::column::integer, sql::column::text, sql::column::integer, sql::column::blob});
    if (!replaced) {
        return error{fmt::format("registrar: {}", replaced.message())};
    }
    for (const auto& r : *replaced) {
        const int64_t at = sql::as_integer(r[0]);
        if (s.profile_changes.empty() || s.profile_changes.back().replaced_at_ns != at) {
            s.profile_changes.push_back(profile_change{at, sql::as_text(r[1]), {}});
        }
        s.profile_changes.back().previous[static_cast<unsigned>(sql::as_integer(r[2]))] = sql::as_blob(r[3]);
    }
    return std::optional<signer_record>(std::move(s));
}

result<std::vector<signer_record>> registrar::list() {
    auto ids = _db->query("SELECT signer_id FROM signers ORDER BY signer_id;", {}, std::array{sql::column::text});
    if (!ids) {
        return error{fmt::format("registrar: {}", ids.message())};
    }
    std::vector<signer_record> out;
    for (const auto& r : *ids) {
        PTPSEC_TRY(s, lookup(sql::as_text(r[0])));
        if (*s) {
            out.push_back(std::move(**s));
        }
    }
    return out;
}

status registrar::enrol(const signer_record& r) {
    const std::string who = fmt::format("enrolment of signer \"{}\" refused", r.signer_id);
    if (auto s = check_signer_id(r.signer_id); !s) {
        return error{fmt::format("{}: {}", who, s.message())};
    }
    if (auto s = check_spki(r.algorithm, r.public_key_der); !s) {
        return error{fmt::format("{}: {}", who, s.message())};
    }
    PTPSEC_TRY(existing, lookup(r.signer_id));
    if (*existing) {
        const signer_record& e = **existing;
        if (e.revoked_at_ns) {
            return error{fmt::format("{}: it was revoked ({}); a revoked signer_id is never enrolled again, so "
                                     "that evidence issued under it keeps meaning the revoked key",
                                     who, e.revocation_reason)};
        }
        if (e.public_key_der != r.public_key_der || e.algorithm != r.algorithm || e.backend != r.backend) {
            return error{fmt::format("{}: it is enrolled with another key ({}); revoke it first", who, e.device())};
        }
        return ok_status(); // the same key again: nothing changes
    }
    const std::array<sql::value, 1> key{sql::value{r.public_key_der}};
    auto other = _db->query("SELECT signer_id FROM signers WHERE public_key = $1;", key, std::array{sql::column::text});
    if (!other) {
        return error{fmt::format("registrar: {}", other.message())};
    }
    if (!other->empty()) {
        return error{
            fmt::format("{}: this key is already enrolled as signer \"{}\"", who, sql::as_text(other->front()[0]))};
    }
    const bool tpm = r.backend == hsm::backend_kind::tpm;
    const bool pkcs11 = r.backend == hsm::backend_kind::pkcs11;
    const std::vector<sql::value> params{
        r.signer_id,
        int64_t{static_cast<int>(r.algorithm)},
        r.public_key_der,
        std::string(hsm::to_string(r.backend)),
        int64_t{r.hardware_rooted ? 1 : 0},
        optional_blob(r.tpm.ek_public_der, tpm),
        optional_blob(r.tpm.key_name, tpm),
        optional_blob(r.tpm.key_public_area, tpm),
        optional_text(r.pkcs11.token_label, pkcs11),
        optional_text(r.pkcs11.token_serial, pkcs11),
        optional_text(r.pkcs11.token_manufacturer, pkcs11),
        optional_text(r.pkcs11.token_model, pkcs11),
        optional_text(r.pkcs11.key_label, pkcs11),
        optional_blob(r.pkcs11.key_id, pkcs11),
        optional_text(r.key_file, r.backend == hsm::backend_kind::software),
        r.enrolled_at_ns,
        optional_blob(r.tpm.ek_certificate_der, tpm && !r.tpm.ek_certificate_der.empty()),
    };
    auto st = sql::in_transaction(*_db, [&]() -> status {
        auto ins = _db->query("INSERT INTO signers(signer_id, algorithm, public_key, backend, hardware_rooted, "
                              "ek_public, key_name, key_public_area, token_label, token_serial, token_manufacturer, "
                              "token_model, key_label, key_id, key_file, enrolled_at_ns, ek_certificate) VALUES($1, "
                              "$2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17);",
                              params);
        if (!ins) {
            return ins.err();
        }
        return insert_expected_pcrs(*_db, r.signer_id, r.expected_pcrs);
    });
    if (!st) {
        return error{fmt::format("registrar: {}", st.message())};
    }
    return ok_status();
}

const char* to_string(ek_revocation_check::outcome o) noexcept {
    switch (o) {
    case ek_revocation_check::outcome::valid:
        return "valid";
    case ek_revocation_check::outcome::revoked:
        return "revoked";
    case ek_revocation_check::outcome::cannot_check:
        return "cannot_check";
    case ek_revocation_check::outcome::no_certificate:
        return "no_certificate";
    }
    return "?";
}

result<std::vector<ek_revocation_check>> registrar::check_ek_revocations(const ek_trust& trust) {
    if (trust.ca_file.empty() || trust.crl_file.empty()) {
        return error{"checking EK certificates for revocation needs the trusted EK issuers (--ek-ca) and their CRLs "
                     "(--ek-crl)"};
    }
    PTPSEC_TRY(signers, list());
    const auto store = load_ek_store(trust);
    std::vector<ek_revocation_check> out;
    for (const signer_record& s : *signers) {
        if (s.backend != hsm::backend_kind::tpm || s.revoked_at_ns) {
            continue;
        }
        ek_revocation_check c;
        c.signer_id = s.signer_id;
        const x509_ptr cert =
            s.tpm.ek_certificate_der.empty() ? x509_ptr(nullptr, X509_free) : certificate_of(s.tpm.ek_certificate_der);
        if (cert == nullptr) {
            c.result = ek_revocation_check::outcome::no_certificate;
            c.detail = s.tpm.ek_certificate_der.empty()
                           ? "no EK certificate is recorded for it (its TPM held none at enrolment, or it was "
                             "enrolled before certificates were recorded)"
                           : "its recorded EK certificate is not a DER X.509 certificate";
            out.push_back(std::move(c));
            continue;
        }
        const std::string serial = serial_of(cert.get());
        const ek_verdict v = judge_ek_certificate(store, cert.get(), trust);
        switch (v.what) {
        case ek_verdict::kind::valid:
            c.result = ek_revocation_check::outcome::valid;
            c.detail = fmt::format("EK certificate serial {} is not revoked (CRLs in {})", serial, trust.crl_file);
            break;
        case ek_verdict::kind::revoked: {
            const auto at = revocation_date(cert.get(), trust.crl_file);
            if (!at) {
                c.result = ek_revocation_check::outcome::cannot_check;
                c.detail = fmt::format("EK certificate serial {} is revoked, but its revocation date cannot be read "
                                       "from {}; nothing changed",
                                       serial, trust.crl_file);
                break;
            }
            const std::string reason =
                fmt::format("EK certificate serial {} revoked by its issuer's CRL in {}", serial, trust.crl_file);
            if (auto st = revoke(s.signer_id, reason, *at); !st) {
                return st.err();
            }
            c.result = ek_revocation_check::outcome::revoked;
            c.revoked_at_ns = *at;
            c.detail = reason;
            break;
        }
        case ek_verdict::kind::failed:
            c.result = ek_revocation_check::outcome::cannot_check;
            c.detail = fmt::format("EK certificate serial {}: {}; nothing changed", serial, v.message);
            break;
        }
        out.push_back(std::move(c));
    }
    return out;
}

status registrar::enrol_tpm(const tpm_enrolment& e, std::span<const uint8_t> issued_nonce,
                            std::span<const uint8_t> issued_credential, const ek_trust& ek) {
    const std::string who = fmt::format("TPM enrolment of signer \"{}\" refused", e.signer_id);
    if (auto s = check_profile(e.expected_pcrs); !s) {
        return error{fmt::format("{}: {}", who, s.message())};
    }
    // The key must be a TPM key that cannot leave the TPM, and the one the
    // signer signs with (TPM 2.0 Part 1 §27: fixedTPM, sensitiveDataOrigin).
    auto name = hsm::check_key_public(e.key_public_area, e.public_key_der);
    if (!name) {
        return error{fmt::format("{}: the signing key's public area: {}", who, name.message())};
    }
    if (auto profile = hsm::endorsement_key_profile_of(e.ek_public_der); !profile) {
        return error{fmt::format("{}: {}", who, profile.message())};
    }
    if (!ek.ca_file.empty()) {
        if (auto s = check_ek_certificate(e.ek_certificate_der, e.ek_public_der, ek); !s) {
            return error{fmt::format("{}: {}", who, s.message())};
        }
    }
    // The key lives in the TPM of that EK: that TPM, and no other, opened
    // the credential sealed to the EK for the key's Name.
    if (issued_credential.empty()) {
        return error{fmt::format("{}: no credential was sealed to the endorsement key", who)};
    }
    if (e.activated_credential.size() != issued_credential.size() ||
        CRYPTO_memcmp(e.activated_credential.data(), issued_credential.data(), issued_credential.size()) != 0) {
        return error{fmt::format("{}: the credential sealed to the endorsement key for the signing key's Name came "
                                 "back wrong: the key is not shown to be in the TPM of that EK",
                                 who)};
    }
    if (issued_nonce.empty()) {
        return error{fmt::format("{}: no nonce was issued for the quote", who)};
    }
    if (auto s = hsm::check_quote(e.quote.attest, e.quote.signature, e.public_key_der, issued_nonce, e.expected_pcrs);
        !s) {
        return error{fmt::format("{}: the quote: {}{}", who, s.message(), differing_pcrs(e.quote, e.expected_pcrs))};
    }
    signer_record r;
    r.signer_id = e.signer_id;
    r.algorithm = hsm::signature_algorithm::es256;
    r.public_key_der = e.public_key_der;
    r.backend = hsm::backend_kind::tpm;
    r.hardware_rooted = true;
    r.tpm.ek_public_der = e.ek_public_der;
    r.tpm.key_name = std::move(*name);
    r.tpm.key_public_area = e.key_public_area;
    r.tpm.ek_certificate_der = e.ek_certificate_der;
    r.expected_pcrs = e.expected_pcrs;
    r.enrolled_at_ns = now_ns();
    return enrol(r);
}

status registrar::enrol_pkcs11(const hsm::pkcs11_enrolment& e) {
    const std::string who = fmt::format("PKCS#11 enrolment of signer \"{}\" refused", e.signer_id);
    // PKCS#11 v2.40 §4.9: CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE say
    // the key was generated on the token and never left it in the clear.
    if (!e.always_sensitive) {
        return error{fmt::format("{}: key \"{}\" on token {} is not always_sensitive (CKA_ALWAYS_SENSITIVE false): "
                                 "it may have existed outside the token",
                                 who, e.key_label, e.token_serial)};
    }
    if (!e.never_extractable) {
        return error{fmt::format("{}: key \"{}\" on token {} is not never_extractable (CKA_NEVER_EXTRACTABLE "
                                 "false): it may have left the token",
                                 who, e.key_label, e.token_serial)};
    }
    if (e.token_serial.empty()) {
        return error{fmt::format("{}: the token reports no serial number", who)};
    }
    signer_record r;
    r.signer_id = e.signer_id;
    r.algorithm = e.algorithm;
    r.public_key_der = e.public_key_der;
    r.backend = hsm::backend_kind::pkcs11;
    r.hardware_rooted = true;
    r.pkcs11 = {e.token_label, e.token_serial, e.token_manufacturer, e.token_model, e.key_label, e.key_id};
    r.enrolled_at_ns = now_ns();
    return enrol(r);
}

status registrar::enrol_software(std::string_view signer_id, hsm::signature_algorithm alg,
                                 std::span<const uint8_t> public_key_der, std::string_view key_file,
                                 bool allow_software) {
    if (!allow_software) {
        return error{fmt::format("software enrolment of signer \"{}\" refused: a key in a file is not "
                                 "hardware-rooted; enrol one only when that is allowed explicitly (development)",
                                 signer_id)};
    }
    signer_record r;
    r.signer_id = std::string(signer_id);
    r.algorithm = alg;
    r.public_key_der.assign(public_key_der.begin(), public_key_der.end());
    r.backend = hsm::backend_kind::software;
    r.hardware_rooted = false;
    r.key_file = std::string(key_file);
    r.enrolled_at_ns = now_ns();
    return enrol(r);
}

result<bool> registrar::update_profile(std::string_view signer_id, const hsm::tpm_quote& quote,
                                       std::span<const uint8_t> issued_nonce, const hsm::pcr_values& expected,
                                       std::string_view reason) {
    const std::string who = fmt::format("PCR profile update of signer \"{}\" refused", signer_id);
    if (auto s = check_profile_update(expected, reason); !s) {
        return error{fmt::format("{}: {}", who, s.message())};
    }
    PTPSEC_TRY(found, lookup(signer_id));
    if (!*found) {
        return error{fmt::format("{}: it is not enrolled in the Registrar {}", who, _path)};
    }
    const signer_record& e = **found;
    if (e.backend != hsm::backend_kind::tpm) {
        return error{
            fmt::format("{}: it is a {} signer; only a TPM signer has a PCR profile", who, hsm::to_string(e.backend))};
    }
    if (e.revoked_at_ns) {
        return error{fmt::format("{}: it is revoked ({})", who, e.revocation_reason)};
    }
    if (auto s = quotes_trusted(e); !s) {
        return error{fmt::format("{}: {}", who, s.message())};
    }
    if (issued_nonce.empty()) {
        return error{fmt::format("{}: no nonce was issued for the quote", who)};
    }
    if (auto s = hsm::check_quote(quote.attest, quote.signature, e.public_key_der, issued_nonce, expected); !s) {
        return error{fmt::format("{}: the quote: {}{}", who, s.message(), differing_pcrs(quote, expected))};
    }
    if (e.expected_pcrs == expected) {
        return false;
    }
    const int64_t at = now_ns();
    const std::string id(signer_id);
    auto st = sql::in_transaction(*_db, [&]() -> status {
        for (const auto& [pcr, value] : e.expected_pcrs) {
            const std::array<sql::value, 5> p{id, at, std::string(reason), int64_t{pcr}, value};
            auto r = _db->query(
                "INSERT INTO replaced_pcrs(signer_id, replaced_at_ns, reason, pcr, value) VALUES($1, $2, $3, $4, $5);",
                p);
            if (!r) {
                return r.err();
            }
        }
        const std::array<sql::value, 1> who_id{id};
        if (auto r = _db->query("DELETE FROM expected_pcrs WHERE signer_id = $1;", who_id); !r) {
            return r.err();
        }
        return insert_expected_pcrs(*_db, id, expected);
    });
    if (!st) {
        return error{fmt::format("registrar: {}", st.message())};
    }
    return true;
}

status registrar::revoke(std::string_view signer_id, std::string_view reason, int64_t at_ns) {
    PTPSEC_TRY(existing, lookup(signer_id));
    if (!*existing) {
        return error{fmt::format("revocation refused: signer \"{}\" is not enrolled", signer_id)};
    }
    if ((*existing)->revoked_at_ns) {
        return error{fmt::format("revocation refused: signer \"{}\" is already revoked ({})", signer_id,
                                 (*existing)->revocation_reason)};
    }
    const std::array<sql::value, 3> params{std::string(signer_id), at_ns, std::string(reason)};
    auto r = _db->query("UPDATE signers SET revoked_at_ns = $2, revocation_reason = $3 WHERE signer_id = $1;", params);
    if (!r) {
        return error{fmt::format("registrar: {}", r.message())};
    }
    return ok_status();
}

status enrol_tpm(registrar& reg, hsm::tpm_signer& signer, std::string_view signer_id,
                 const hsm::pcr_values& expected_pcrs, const ek_trust& trust) {
    const std::string who = fmt::format("TPM enrolment of signer \"{}\"", signer_id);
    const std::vector<unsigned> pcrs = hsm::pcr_indices(expected_pcrs);
    if (pcrs.empty()) {
        return error{fmt::format("{} refused: no expected PCR values", who)};
    }
    auto ek = signer.endorsement_key_der();
    if (!ek) {
        return error{fmt::format("{}: the TPM did not give its endorsement key: {}", who, ek.message())};
    }
    tpm_enrolment e;
    e.signer_id = std::string(signer_id);
    e.public_key_der = signer.info().public_key_der;
    e.key_public_area = signer.key_public().public_area;
    e.ek_public_der = std::move(*ek);
    e.expected_pcrs = expected_pcrs;
    auto cert = signer.endorsement_certificate_der();
    if (!cert) {
        return error{fmt::format("{}: reading the TPM's EK certificate: {}", who, cert.message())};
    }
    e.ek_certificate_der = std::move(*cert);
    if (e.ek_certificate_der.empty() && !trust.ca_file.empty()) {
        const hsm::ek_template used = signer.endorsement_template();
        return error{fmt::format("{} refused: the TPM holds no certificate of its EK (template {}, {}; NV index "
                                 "0x{:08x}) to check against {}",
                                 who, hsm::ek_template_name(used), hsm::ek_template_kind(used),
                                 hsm::ek_certificate_index(used), trust.ca_file)};
    }
    // The Name comes from the public area as the Registrar checks it, not
    // from what the TPM says it is.
    auto name = hsm::check_key_public(e.key_public_area, e.public_key_der);
    if (!name) {
        return error{fmt::format("{} refused: the signing key's public area: {}", who, name.message())};
    }
    PTPSEC_TRY(credential, make_nonce());
    auto blob = hsm::make_credential(e.ek_public_der, *name, *credential);
    if (!blob) {
        return error{fmt::format("{}: sealing a credential to the endorsement key: {}", who, blob.message())};
    }
    auto opened = signer.activate_credential(*blob);
    if (!opened) {
        return error{fmt::format("{} refused: the TPM did not open the credential sealed to its endorsement key for "
                                 "the signing key (is the key in another TPM?): {}",
                                 who, opened.message())};
    }
    e.activated_credential = std::move(*opened);
    PTPSEC_TRY(nonce, make_nonce());
    auto quote = signer.quote(*nonce, pcrs);
    if (!quote) {
        return error{fmt::format("{}: the TPM did not quote: {}", who, quote.message())};
    }
    e.quote = std::move(*quote);
    return reg.enrol_tpm(e, *nonce, *credential, trust);
}

result<bool> update_profile_tpm(registrar& reg, hsm::tpm_signer& signer, std::string_view signer_id,
                                const hsm::pcr_values& expected, std::string_view reason) {
    const std::string who = fmt::format("PCR profile update of signer \"{}\"", signer_id);
    if (auto s = check_profile_update(expected, reason); !s) {
        return error{fmt::format("{} refused: {}", who, s.message())};
    }
    PTPSEC_TRY(found, reg.lookup(signer_id));
    if (*found && (*found)->backend == hsm::backend_kind::tpm &&
        (*found)->public_key_der != signer.info().public_key_der) {
        return error{fmt::format("{} refused: the TPM's key at handle 0x{:08x} is not the key enrolled for it", who,
                                 signer.settings().key_handle)};
    }
    PTPSEC_TRY(nonce, make_nonce());
    auto quote = signer.quote(*nonce, hsm::pcr_indices(expected));
    if (!quote) {
        return error{fmt::format("{}: the TPM did not quote: {}", who, quote.message())};
    }
    return reg.update_profile(signer_id, *quote, *nonce, expected, reason);
}

} // namespace ptpsec::verifier
