#pragma once

// The Verifier's audit record (BRIEF "Attestation": "Records audit evidence:
// SQLite as the embedded default, PostgreSQL when several hosts report"):
// the batches it accepted, their events, the failures it found, and the
// last accepted batch of every signer (the chain state an online Verifier
// resumes from, so that a log replayed to it later is caught). One schema
// on both backends (sql.h), and the auditor's three questions:
//
//   * the events of signer X between T1 and T2;
//   * whether messageType M sequenceId N from sourcePortIdentity Y (a
//     grandmaster's Sync) was seen by observer Z, and when;
//   * multi-observer correlation: the same event (same event_digest, which
//     leaves correctionField out: dataplane/event_record.h) seen by several
//     signers, their timestamps, and the observers that disagree beyond a
//     bound: how a delay attack becomes visible (seeds/003, "Delay attacks").
//
// Control-side code: allocates, returns result<>, never throws.

#include <control/verifier/sql.h>
#include <dataplane/event_record.h>
#include <drivers/base/result.h>
#include <hsm/evidence.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::verifier {

/// One accepted batch (a row of `batches`).
struct batch_row {
    std::string signer_id;
    uint64_t counter = 0;
    uint64_t batch_time_ns = 0;
    hsm::digest merkle_root{};
    hsm::digest previous_root{};
    uint64_t event_count = 0;
    uint64_t first_event_index = 0;
    uint64_t last_event_index = 0;
    uint64_t missed_events = 0;
    hsm::backend_kind backend = hsm::backend_kind::software;
    bool hardware_rooted = false;
    std::optional<std::vector<uint8_t>> nonce;
    /// How it joins the signer's chain: "first" (previous_root zero),
    /// "linked" (names the previous accepted root), "anchor" (the first this
    /// Verifier saw of a chain begun earlier), "after-gap" (a batch is
    /// missing before it).
    std::string chain;
    /// "verified", or the checks it failed that did not stop it from
    /// extending the chain ("nonce mismatch", "dropped batch", ...).
    std::string status;
    int64_t verified_at_ns = 0;
    std::string log_file;
    uint64_t log_offset = 0;
};

/// One event of an accepted batch (a row of `events`).
struct event_row {
    std::string signer_id;
    uint64_t counter = 0;
    uint64_t event_index = 0;
    uint64_t event_type = 0; ///< claim 2: messageType + 16 x direction
    event_direction direction = event_direction::rx;
    uint8_t message_type = 0;
    uint16_t sequence_id = 0;
    uint8_t domain_number = 0;
    uint16_t sdo_id = 0;
    std::array<uint8_t, 10> source_port_identity{};
    uint16_t port_id = 0;
    uint64_t timestamp_ns = 0;
    int64_t correction_field = 0;
    uint8_t flags = 0;
    hsm::digest event_digest{};
    // From the batch, filled by the queries:
    std::string batch_status;
    bool hardware_rooted = false;
    int64_t verified_at_ns = 0;
};

event_row event_row_of(const hsm::event_claims& c);

/// One finding (a row of `failures`): an error, or a warning such as a
/// software signer's batch.
struct failure_row {
    std::string log_file;
    uint64_t log_offset = 0;
    std::optional<uint64_t> batch_index; ///< the record's index in its log file
    std::string signer_id;               ///< empty when the record could not be read
    std::optional<uint64_t> counter;
    std::optional<uint64_t> event_index;
    std::string check;
    std::string message;
    bool warning = false;
    int64_t verified_at_ns = 0;
};

/// The last batch the Verifier accepted from a signer: what the next one
/// must chain to.
struct chain_state {
    std::string signer_id;
    uint64_t counter = 0;
    hsm::digest merkle_root{};
    uint64_t last_event_index = 0;
    uint64_t batch_time_ns = 0;
};

/// How far the online Verifier has read one log file (a row of
/// `log_positions`), so that a restarted Verifier goes on from there. A
/// file is named by the SHA-256 of its first record, which stays the same
/// when rotation renames the file (two files share one only when the
/// writer repeated a file's only record at the start of the next:
/// watcher.h).
struct log_position {
    std::string file_key; ///< the first record's SHA-256, hex
    std::string log_file; ///< the path it was last read under
    uint64_t offset = 0;  ///< octets read (whole records)
    uint64_t records = 0; ///< records read
    bool stopped = false; ///< a cut or corrupt record: the file is not read further
};

/// An accepted batch found by counter (replay detection).
struct accepted_batch {
    hsm::digest merkle_root{};
    std::string log_file;
    uint64_t log_offset = 0;
    int64_t verified_at_ns = 0;
};

struct observation {
    std::string signer_id;
    event_direction direction = event_direction::rx;
    uint16_t port_id = 0;
    uint64_t timestamp_ns = 0;
    int64_t correction_field = 0;
    /// timestamp_ns minus the median of the event's observations.
    int64_t deviation_ns = 0;
    bool flagged = false;
};

struct disagreement {
    std::string first;
    std::string second;
    int64_t difference_ns = 0; ///< second's timestamp minus first's
};

/// One event seen by more than one signer.
struct correlated_event {
    hsm::digest event_digest{};
    uint8_t message_type = 0;
    uint16_t sequence_id = 0;
    std::array<uint8_t, 10> source_port_identity{};
    std::vector<observation> observations; ///< by signer_id, then time
    /// Pairs of different signers whose timestamps differ by more than the
    /// bound.
    std::vector<disagreement> pairs;
};

struct correlation_report {
    std::vector<correlated_event> events;
    /// Signers flagged at least once: with three or more observers, the
    /// ones further than the bound from the median; with two, both of a
    /// disagreeing pair (two observers alone cannot say which one is wrong).
    std::vector<std::string> flagged_observers;
};

class audit_store {
public:
    /// "sqlite:PATH" or "postgresql:CONNINFO" (a libpq connection string,
    /// or a postgresql:// URI with or without the prefix). Creates the
    /// schema (and an SQLite file that is not there yet).
    static result<std::unique_ptr<audit_store>> open(std::string_view spec);
    /// Whether `spec` has one of open()'s forms; nothing is opened. A plain
    /// path or a mistyped prefix is refused rather than taken for an SQLite
    /// file that open() would create.
    static status check_spec(std::string_view spec);
    static result<std::unique_ptr<audit_store>> open(std::unique_ptr<sql::connection> db);

    /// Records an accepted batch, its events and the signer's new chain
    /// state, all or nothing.
    status record_batch(const batch_row& b, const std::vector<event_row>& events);
    status record_failure(const failure_row& f);

    /// Runs `body`, whose record_batch() and record_failure() calls then
    /// share one transaction with saving `after`: a record's findings and
    /// the position past it are stored together or not at all. Nothing is
    /// stored when `body` fails.
    status record_with_position(const log_position& after, const std::function<status()>& body);
    status save_position(const log_position& p);
    result<std::optional<log_position>> position_of(std::string_view file_key);

    result<std::optional<chain_state>> chain_state_of(std::string_view signer_id);
    result<std::optional<accepted_batch>> find_batch(std::string_view signer_id, uint64_t counter);

    /// Events of `signer_id` with t1 <= timestamp_ns <= t2, by time.
    result<std::vector<event_row>> events_between(std::string_view signer_id, uint64_t t1_ns, uint64_t t2_ns);
    /// Every observation of messageType `message_type`, sequenceId
    /// `sequence_id` from `source_port_identity`, by `observer` only when
    /// given, by signer then time.
    result<std::vector<event_row>> seen(uint8_t message_type, uint16_t sequence_id,
                                        const std::array<uint8_t, 10>& source_port_identity,
                                        std::optional<std::string_view> observer);
    /// Events seen by more than one signer, flagged against `bound_ns`.
    result<correlation_report> correlate(uint64_t bound_ns);

    result<std::vector<failure_row>> failures();
    result<std::vector<batch_row>> batches(std::string_view signer_id);

    const std::string& name() const noexcept { return _db->name(); }

private:
    explicit audit_store(std::unique_ptr<sql::connection> db) : _db(std::move(db)) {}
    result<std::vector<event_row>> event_query(const std::string& where, const std::vector<sql::value>& params);
    /// save_position()'s statement, its error the backend's own.
    status write_position(const log_position& p);

    std::unique_ptr<sql::connection> _db;
    bool _in_transaction = false; ///< inside record_with_position()
};

/// "001b21fffe010203-1" (clockIdentity in hex, portNumber in decimal), as
/// `ptpsecctl grantors` writes a PortIdentity.
std::string port_identity_string(const std::array<uint8_t, 10>& p);
/// That form, or 20 hex digits.
std::optional<std::array<uint8_t, 10>> parse_port_identity(std::string_view s);

} // namespace ptpsec::verifier
