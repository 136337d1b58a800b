#include <control/verifier/audit_store.h>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

namespace ptpsec::verifier {

namespace {

std::string schema(const sql::connection& db) {
    const auto i = db.integer_type();
    const auto b = db.blob_type();
    // One schema for both backends: only the integer and byte-string type
    // names differ, and SQLite keeps the events in their key's order
    // (WITHOUT ROWID) instead of in a table and an index of that key.
    // Unsigned quantities are stored as signed 64-bit integers
    // (sql::unsigned_value refuses what would not fit).
    //
    // The events' B-trees are written where each batch's events fall: by
    // signer and event index (the key), by signer and time, and by what the
    // message was (sequenceId first, so that a batch's events land on a few
    // pages). That last index serves both `seen` and `correlate`: events
    // with one digest are one message, so they share its sequenceId, type
    // and sender. An index of the digest alone (before 2026-11) put every
    // event on a random page and made each batch's commit rewrite most of
    // it; a database that has one loses it when opened.
    return fmt::format(R"(
CREATE TABLE IF NOT EXISTS batches(
  signer_id TEXT NOT NULL,
  counter {0} NOT NULL,
  batch_time_ns {0} NOT NULL,
  merkle_root {1} NOT NULL,
  previous_root {1} NOT NULL,
  event_count {0} NOT NULL,
  first_event_index {0} NOT NULL,
  last_event_index {0} NOT NULL,
  missed_events {0} NOT NULL,
  backend TEXT NOT NULL,
  hardware_rooted {0} NOT NULL,
  nonce {1},
  chain TEXT NOT NULL,
  status TEXT NOT NULL,
  verified_at_ns {0} NOT NULL,
  log_file TEXT NOT NULL,
  log_offset {0} NOT NULL,
  PRIMARY KEY(signer_id, counter));
CREATE TABLE IF NOT EXISTS events(
  signer_id TEXT NOT NULL,
  counter {0} NOT NULL,
  event_index {0} NOT NULL,
  event_type {0} NOT NULL,
  direction {0} NOT NULL,
  message_type {0} NOT NULL,
  sequence_id {0} NOT NULL,
  domain_number {0} NOT NULL,
  sdo_id {0} NOT NULL,
  source_port_identity {1} NOT NULL,
  port_id {0} NOT NULL,
  timestamp_ns {0} NOT NULL,
  correction_field {0} NOT NULL,
  flags {0} NOT NULL,
  event_digest {1} NOT NULL,
  PRIMARY KEY(signer_id, event_index),
  FOREIGN KEY(signer_id, counter) REFERENCES batches(signer_id, counter)){2};
CREATE INDEX IF NOT EXISTS events_by_time ON events(signer_id, timestamp_ns);
DROP INDEX IF EXISTS events_by_sequence;
DROP INDEX IF EXISTS events_by_digest;
CREATE INDEX IF NOT EXISTS events_by_message ON events(sequence_id, message_type, source_port_identity, event_digest);
CREATE TABLE IF NOT EXISTS failures(
  log_file TEXT NOT NULL,
  log_offset {0} NOT NULL,
  batch_index {0},
  signer_id TEXT NOT NULL,
  counter {0},
  event_index {0},
  check_name TEXT NOT NULL,
  message TEXT NOT NULL,
  severity TEXT NOT NULL,
  verified_at_ns {0} NOT NULL);
CREATE TABLE IF NOT EXISTS chain_state(
  signer_id TEXT PRIMARY KEY,
  counter {0} NOT NULL,
  merkle_root {1} NOT NULL,
  last_event_index {0} NOT NULL,
  batch_time_ns {0} NOT NULL);
CREATE TABLE IF NOT EXISTS log_positions(
  file_key TEXT PRIMARY KEY,
  log_file TEXT NOT NULL,
  log_offset {0} NOT NULL,
  records {0} NOT NULL,
  stopped {0} NOT NULL);
)",
                       i, b, db.clustered_table());
}

sql::value u64(uint64_t v) {
    // Callers check with sql::unsigned_value first where a value can be
    // large; the rest (ports, types) always fit.
    return sql::value{static_cast<int64_t>(v)};
}

sql::value optional_u64(const std::optional<uint64_t>& v) {
    return v ? u64(*v) : sql::value{};
}

template <size_t N>
std::array<uint8_t, N> fixed(const std::vector<uint8_t>& v) {
    std::array<uint8_t, N> a{};
    std::copy_n(v.begin(), std::min(N, v.size()), a.begin());
    return a;
}

std::vector<uint8_t> blob(std::span<const uint8_t> s) {
    return {s.begin(), s.end()};
}

hsm::backend_kind backend_of(const std::string& s) {
    for (auto k : {hsm::backend_kind::tpm, hsm::backend_kind::pkcs11, hsm::backend_kind::software}) {
        if (s == hsm::to_string(k)) {
            return k;
        }
    }
    return hsm::backend_kind::software;
}

/// The backend's message already names the store ("sqlite PATH: ...").
error store_error(const std::string& what) {
    return error{fmt::format("audit store {}", what)};
}

/// The columns of `events` record_batch() writes, in its order.
const std::array<sql::named_column, 15> event_columns_written{{{"signer_id", sql::column::text},
                                                               {"counter", sql::column::integer},
                                                               {"event_index", sql::column::integer},
                                                               {"event_type", sql::column::integer},
                                                               {"direction", sql::column::integer},
                                                               {"message_type", sql::column::integer},
                                                               {"sequence_id", sql::column::integer},
                                                               {"domain_number", sql::column::integer},
                                                               {"sdo_id", sql::column::integer},
                                                               {"source_port_identity", sql::column::blob},
                                                               {"port_id", sql::column::integer},
                                                               {"timestamp_ns", sql::column::integer},
                                                               {"correction_field", sql::column::integer},
                                                               {"flags", sql::column::integer},
                                                               {"event_digest", sql::column::blob}}};

constexpr const char* event_columns_sql =
    "e.signer_id, e.counter, e.event_index, e.event_type, e.direction, e.message_type, e.sequence_id, "
    "e.domain_number, e.sdo_id, e.source_port_identity, e.port_id, e.timestamp_ns, e.correction_field, e.flags, "
    "e.event_digest, b.status, b.hardware_rooted, b.verified_at_ns";

constexpr std::array event_columns{
    sql::column::text,    sql::column::integer, sql::column::integer, sql::column::integer, sql::column::integer,
    sql::column::integer, sql::column::integer, sql::column::integer, sql::column::integer, sql::column::blob,
    sql::column::integer, sql::column::integer, sql::column::integer, sql::column::integer, sql::column::blob,
    sql::column::text,    sql::column::integer, sql::column::integer};

event_row event_of(const sql::row& r) {
    event_row e;
    e.signer_id = sql::as_text(r[0]);
    e.counter = static_cast<uint64_t>(sql::as_integer(r[1]));
    e.event_index = static_cast<uint64_t>(sql::as_integer(r[2]));
    e.event_type = static_cast<uint64_t>(sql::as_integer(r[3]));
    e.direction = sql::as_integer(r[4]) != 0 ? event_direction::tx : event_direction::rx;
    e.message_type = static_cast<uint8_t>(sql::as_integer(r[5]));
    e.sequence_id = static_cast<uint16_t>(sql::as_integer(r[6]));
    e.domain_number = static_cast<uint8_t>(sql::as_integer(r[7]));
    e.sdo_id = static_cast<uint16_t>(sql::as_integer(r[8]));
    e.source_port_identity = fixed<10>(sql::as_blob(r[9]));
    e.port_id = static_cast<uint16_t>(sql::as_integer(r[10]));
    e.timestamp_ns = static_cast<uint64_t>(sql::as_integer(r[11]));
    e.correction_field = sql::as_integer(r[12]);
    e.flags = static_cast<uint8_t>(sql::as_integer(r[13]));
    e.event_digest = fixed<32>(sql::as_blob(r[14]));
    e.batch_status = sql::as_text(r[15]);
    e.hardware_rooted = sql::as_integer(r[16]) != 0;
    e.verified_at_ns = sql::as_integer(r[17]);
    return e;
}

} // namespace

event_row event_row_of(const hsm::event_claims& c) {
    event_row e;
    e.signer_id = c.signer_id;
    e.counter = c.monotonic_counter;
    e.event_index = c.event_index;
    e.event_type = hsm::event_type_of(c.direction, c.message_type);
    e.direction = c.direction;
    e.message_type = c.message_type;
    e.sequence_id = c.sequence_id;
    e.domain_number = c.domain_number;
    e.sdo_id = c.sdo_id;
    e.source_port_identity = c.source_port_identity;
    e.port_id = c.port_id;
    e.timestamp_ns = c.phc_timestamp_ns;
    e.correction_field = c.correction_field;
    e.flags = c.flags;
    e.event_digest = c.event_digest;
    return e;
}

std::string port_identity_string(const std::array<uint8_t, 10>& p) {
    std::string s;
    for (size_t i = 0; i < 8; ++i) {
        s += fmt::format("{:02x}", p[i]);
    }
    return fmt::format("{}-{}", s, (unsigned{p[8]} << 8) | p[9]);
}

std::optional<std::array<uint8_t, 10>> parse_port_identity(std::string_view s) {
    std::array<uint8_t, 10> out{};
    auto hex_octets = [](std::string_view h, uint8_t* dst, size_t n) {
        if (h.size() != 2 * n) {
            return false;
        }
        for (size_t i = 0; i < n; ++i) {
            const auto [p, ec] = std::from_chars(h.data() + 2 * i, h.data() + 2 * i + 2, dst[i], 16);
            if (ec != std::errc{} || p != h.data() + 2 * i + 2) {
                return false;
            }
        }
        return true;
    };
    const size_t dash = s.find('-');
    if (dash == std::string_view::npos) {
        return hex_octets(s, out.data(), 10) ? std::optional(out) : std::nullopt;
    }
    if (!hex_octets(s.substr(0, dash), out.data(), 8)) {
        return std::nullopt;
    }
    const std::string_view port = s.substr(dash + 1);
    uint16_t n = 0;
    const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (port.empty() || ec != std::errc{} || p != port.data() + port.size()) {
        return std::nullopt;
    }
    out[8] = static_cast<uint8_t>(n >> 8);
    out[9] = static_cast<uint8_t>(n);
    return out;
}

status audit_store::check_spec(std::string_view spec) {
    if (spec.starts_with("postgresql://") || spec.starts_with("postgres://") ||
        (spec.starts_with("postgresql:") && spec.size() > 11) || (spec.starts_with("sqlite:") && spec.size() > 7)) {
        return ok_status();
    }
    return error{fmt::format("audit store \"{}\": use sqlite:PATH or postgresql:CONNINFO", spec)};
}

result<std::unique_ptr<audit_store>> audit_store::open(std::string_view spec) {
    PTPSEC_TRY(form, check_spec(spec));
    result<std::unique_ptr<sql::connection>> db = error{};
    if (spec.starts_with("postgresql://") || spec.starts_with("postgres://")) {
        db = sql::open_postgresql(std::string(spec));
    } else if (spec.starts_with("postgresql:")) {
        db = sql::open_postgresql(std::string(spec.substr(11)));
    } else {
        db = sql::open_sqlite(std::string(spec.substr(7)), true);
    }
    if (!db) {
        return error{fmt::format("audit store: {}", db.message())};
    }
    return open(std::move(*db));
}

result<std::unique_ptr<audit_store>> audit_store::open(std::unique_ptr<sql::connection> db) {
    if (auto s = db->script(schema(*db)); !s) {
        return error{fmt::format("audit store: {}", s.message())};
    }
    return std::unique_ptr<audit_store>(new audit_store(std::move(db)));
}

status audit_store::record_batch(const batch_row& b, const std::vector<event_row>& events) {
    for (const auto& [v, what] :
         {std::pair{b.counter, "counter"}, std::pair{b.batch_time_ns, "batch_time_ns"},
          std::pair{b.last_event_index, "last_event_index"}, std::pair{b.log_offset, "offset"}}) {
        if (auto ok = sql::unsigned_value(v, what); !ok) {
            return error{
                fmt::format("audit store {}: batch {} of {}: {}", name(), b.counter, b.signer_id, ok.message())};
        }
    }
    for (const event_row& e : events) {
        if (auto ok = sql::unsigned_value(e.timestamp_ns, "timestamp_ns"); !ok) {
            return error{
                fmt::format("audit store {}: event {} of {}: {}", name(), e.event_index, e.signer_id, ok.message())};
        }
    }
    const auto write = [&]() -> status {
        const std::vector<sql::value> bp{b.signer_id,
                                         u64(b.counter),
                                         u64(b.batch_time_ns),
                                         blob(b.merkle_root),
                                         blob(b.previous_root),
                                         u64(b.event_count),
                                         u64(b.first_event_index),
                                         u64(b.last_event_index),
                                         u64(b.missed_events),
                                         std::string(hsm::to_string(b.backend)),
                                         int64_t{b.hardware_rooted ? 1 : 0},
                                         b.nonce ? sql::value{*b.nonce} : sql::value{},
                                         b.chain,
                                         b.status,
                                         b.verified_at_ns,
                                         b.log_file,
                                         u64(b.log_offset)};
        auto r = _db->query("INSERT INTO batches(signer_id, counter, batch_time_ns, merkle_root, previous_root, "
                            "event_count, first_event_index, last_event_index, missed_events, backend, "
                            "hardware_rooted, nonce, chain, status, verified_at_ns, log_file, log_offset) "
                            "VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17);",
                            bp);
        if (!r) {
            return r.err();
        }
        std::vector<sql::value> ev;
        ev.reserve(events.size() * event_columns_written.size());
        for (const event_row& e : events) {
            ev.emplace_back(e.signer_id);
            ev.emplace_back(u64(e.counter));
            ev.emplace_back(u64(e.event_index));
            ev.emplace_back(u64(e.event_type));
            ev.emplace_back(int64_t{static_cast<int>(e.direction)});
            ev.emplace_back(int64_t{e.message_type});
            ev.emplace_back(int64_t{e.sequence_id});
            ev.emplace_back(int64_t{e.domain_number});
            ev.emplace_back(int64_t{e.sdo_id});
            ev.emplace_back(blob(e.source_port_identity));
            ev.emplace_back(int64_t{e.port_id});
            ev.emplace_back(u64(e.timestamp_ns));
            ev.emplace_back(e.correction_field);
            ev.emplace_back(int64_t{e.flags});
            ev.emplace_back(blob(e.event_digest));
        }
        if (auto er = _db->insert_rows("events", event_columns_written, ev); !er) {
            return er.err();
        }
        const std::vector<sql::value> cp{b.signer_id, u64(b.counter), blob(b.merkle_root), u64(b.last_event_index),
                                         u64(b.batch_time_ns)};
        auto cr = _db->query("INSERT INTO chain_state(signer_id, counter, merkle_root, last_event_index, "
                             "batch_time_ns) VALUES($1, $2, $3, $4, $5) ON CONFLICT(signer_id) DO UPDATE SET "
                             "counter = excluded.counter, merkle_root = excluded.merkle_root, last_event_index = "
                             "excluded.last_event_index, batch_time_ns = excluded.batch_time_ns;",
                             cp);
        if (!cr) {
            return cr.err();
        }
        return ok_status();
    };
    // Inside record_with_position() its transaction holds this one's rows.
    auto st = _in_transaction ? write() : sql::in_transaction(*_db, write);
    if (!st) {
        return store_error(st.message());
    }
    return ok_status();
}

status audit_store::save_position(const log_position& p) {
    if (auto st = write_position(p); !st) {
        return store_error(st.message());
    }
    return ok_status();
}

status audit_store::write_position(const log_position& p) {
    const std::vector<sql::value> v{p.file_key, p.log_file, u64(p.offset), u64(p.records), int64_t{p.stopped ? 1 : 0}};
    auto r = _db->query("INSERT INTO log_positions(file_key, log_file, log_offset, records, stopped) VALUES($1, $2, "
                        "$3, $4, $5) ON CONFLICT(file_key) DO UPDATE SET log_file = excluded.log_file, log_offset = "
                        "excluded.log_offset, records = excluded.records, stopped = excluded.stopped;",
                        v);
    if (!r) {
        return r.err();
    }
    return ok_status();
}

result<std::optional<log_position>> audit_store::position_of(std::string_view file_key) {
    const std::vector<sql::value> p{std::string(file_key)};
    auto rows =
        _db->query("SELECT log_file, log_offset, records, stopped FROM log_positions WHERE file_key = $1;", p,
                   std::array{sql::column::text, sql::column::integer, sql::column::integer, sql::column::integer});
    if (!rows) {
        return store_error(rows.message());
    }
    if (rows->empty()) {
        return std::optional<log_position>{};
    }
    const auto& r = rows->front();
    return std::optional<log_position>(
        log_position{std::string(file_key), sql::as_text(r[0]), static_cast<uint64_t>(sql::as_integer(r[1])),
                     static_cast<uint64_t>(sql::as_integer(r[2])), sql::as_integer(r[3]) != 0});
}

status audit_store::record_with_position(const log_position& after, const std::function<status()>& body) {
    // The body's failure comes back as it is (its calls name the store
    // already); the transaction's and the position's are named here.
    status from_body = ok_status();
    auto st = sql::in_transaction(*_db, [&]() -> status {
        _in_transaction = true;
        from_body = body();
        _in_transaction = false;
        if (!from_body) {
            return from_body;
        }
        return write_position(after);
    });
    if (!from_body) {
        return from_body;
    }
    if (!st) {
        return store_error(st.message());
    }
    return ok_status();
}

status audit_store::record_failure(const failure_row& f) {
    const std::vector<sql::value> p{f.log_file,
                                    u64(f.log_offset),
                                    optional_u64(f.batch_index),
                                    f.signer_id,
                                    optional_u64(f.counter),
                                    optional_u64(f.event_index),
                                    f.check,
                                    f.message,
                                    std::string(f.warning ? "warning" : "error"),
                                    f.verified_at_ns};
    auto r = _db->query("INSERT INTO failures(log_file, log_offset, batch_index, signer_id, counter, event_index, "
                        "check_name, message, severity, verified_at_ns) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                        "$10);",
                        p);
    if (!r) {
        return store_error(r.message());
    }
    return ok_status();
}

result<std::optional<chain_state>> audit_store::chain_state_of(std::string_view signer_id) {
    const std::vector<sql::value> p{std::string(signer_id)};
    auto rows =
        _db->query("SELECT counter, merkle_root, last_event_index, batch_time_ns FROM chain_state WHERE "
                   "signer_id = $1;",
                   p, std::array{sql::column::integer, sql::column::blob, sql::column::integer, sql::column::integer});
    if (!rows) {
        return store_error(rows.message());
    }
    if (rows->empty()) {
        return std::optional<chain_state>{};
    }
    const auto& r = rows->front();
    chain_state s;
    s.signer_id = std::string(signer_id);
    s.counter = static_cast<uint64_t>(sql::as_integer(r[0]));
    s.merkle_root = fixed<32>(sql::as_blob(r[1]));
    s.last_event_index = static_cast<uint64_t>(sql::as_integer(r[2]));
    s.batch_time_ns = static_cast<uint64_t>(sql::as_integer(r[3]));
    return std::optional<chain_state>(s);
}

result<std::optional<accepted_batch>> audit_store::find_batch(std::string_view signer_id, uint64_t counter) {
    auto c = sql::unsigned_value(counter, "counter");
    if (!c) {
        return std::optional<accepted_batch>{};
    }
    const std::vector<sql::value> p{std::string(signer_id), *c};
    auto rows =
        _db->query("SELECT merkle_root, log_file, log_offset, verified_at_ns FROM batches WHERE signer_id = "
                   "$1 AND counter = $2;",
                   p, std::array{sql::column::blob, sql::column::text, sql::column::integer, sql::column::integer});
    if (!rows) {
        return store_error(rows.message());
    }
    if (rows->empty()) {
        return std::optional<accepted_batch>{};
    }
    const auto& r = rows->front();
    return std::optional<accepted_batch>(accepted_batch{fixed<32>(sql::as_blob(r[0])), sql::as_text(r[1]),
                                                        static_cast<uint64_t>(sql::as_integer(r[2])),
                                                        sql::as_integer(r[3])});
}

result<std::vector<event_row>> audit_store::event_query(const std::string& where,
                                                        const std::vector<sql::value>& params) {
    auto rows = _db->query(fmt::format("SELECT {} FROM events e JOIN batches b ON b.signer_id = e.signer_id AND "
                                       "b.counter = e.counter WHERE {};",
                                       event_columns_sql, where),
                           params, event_columns);
    if (!rows) {
        return store_error(rows.message());
    }
    std::vector<event_row> out;
    out.reserve(rows->size());
    for (const auto& r : *rows) {
        out.push_back(event_of(r));
    }
    return out;
}

result<std::vector<event_row>> audit_store::events_between(std::string_view signer_id, uint64_t t1_ns, uint64_t t2_ns) {
    const auto cap = [](uint64_t v) {
        return static_cast<int64_t>(std::min<uint64_t>(v, static_cast<uint64_t>(INT64_MAX)));
    };
    return event_query("e.signer_id = $1 AND e.timestamp_ns >= $2 AND e.timestamp_ns <= $3 ORDER BY "
                       "e.timestamp_ns, e.event_index",
                       {std::string(signer_id), cap(t1_ns), cap(t2_ns)});
}

result<std::vector<event_row>> audit_store::seen(uint8_t message_type, uint16_t sequence_id,
                                                 const std::array<uint8_t, 10>& source_port_identity,
                                                 std::optional<std::string_view> observer) {
    std::vector<sql::value> p{int64_t{message_type}, int64_t{sequence_id}, blob(source_port_identity)};
    std::string where = "e.message_type = $1 AND e.sequence_id = $2 AND e.source_port_identity = $3";
    if (observer) {
        where += " AND e.signer_id = $4";
        p.emplace_back(std::string(*observer));
    }
    return event_query(where + " ORDER BY e.signer_id, e.timestamp_ns, e.event_index", p);
}

result<correlation_report> audit_store::correlate(uint64_t bound_ns) {
    // Grouped by the message's sequenceId, type and sender before its
    // digest, in the order of the events_by_message index.
    auto rows = event_query("(e.sequence_id, e.message_type, e.source_port_identity, e.event_digest) IN (SELECT "
                            "sequence_id, message_type, source_port_identity, event_digest FROM events GROUP BY "
                            "sequence_id, message_type, source_port_identity, event_digest HAVING "
                            "COUNT(DISTINCT signer_id) > 1) ORDER BY e.event_digest, e.signer_id, e.timestamp_ns",
                            {});
    if (!rows) {
        return rows.err();
    }
    correlation_report out;
    std::set<std::string> flagged;
    const auto bound = static_cast<int64_t>(std::min<uint64_t>(bound_ns, INT64_MAX));
    size_t i = 0;
    while (i < rows->size()) {
        size_t j = i;
        while (j < rows->size() && (*rows)[j].event_digest == (*rows)[i].event_digest) {
            ++j;
        }
        correlated_event ce;
        const event_row& first = (*rows)[i];
        ce.event_digest = first.event_digest;
        ce.message_type = first.message_type;
        ce.sequence_id = first.sequence_id;
        ce.source_port_identity = first.source_port_identity;
        std::vector<int64_t> times;
        for (size_t k = i; k < j; ++k) {
            const event_row& e = (*rows)[k];
            observation o;
            o.signer_id = e.signer_id;
            o.direction = e.direction;
            o.port_id = e.port_id;
            o.timestamp_ns = e.timestamp_ns;
            o.correction_field = e.correction_field;
            ce.observations.push_back(o);
            times.push_back(static_cast<int64_t>(e.timestamp_ns));
        }
        std::sort(times.begin(), times.end());
        // The lower median: with an even count, an observer is measured
        // against one of the others rather than an average no one saw.
        const int64_t median = times[(times.size() - 1) / 2];
        std::set<std::string> signers;
        for (const auto& o : ce.observations) {
            signers.insert(o.signer_id);
        }
        for (auto& o : ce.observations) {
            o.deviation_ns = static_cast<int64_t>(o.timestamp_ns) - median;
        }
        for (size_t a = 0; a < ce.observations.size(); ++a) {
            for (size_t b = a + 1; b < ce.observations.size(); ++b) {
                const auto& x = ce.observations[a];
                const auto& y = ce.observations[b];
                if (x.signer_id == y.signer_id) {
                    continue;
                }
                const int64_t d = static_cast<int64_t>(y.timestamp_ns) - static_cast<int64_t>(x.timestamp_ns);
                if (d > bound || d < -bound) {
                    ce.pairs.push_back({x.signer_id, y.signer_id, d});
                }
            }
        }
        if (!ce.pairs.empty()) {
            if (signers.size() >= 3) {
                for (auto& o : ce.observations) {
                    if (o.deviation_ns > bound || o.deviation_ns < -bound) {
                        o.flagged = true;
                    }
                }
            } else {
                for (auto& o : ce.observations) {
                    o.flagged = true;
                }
            }
            for (const auto& o : ce.observations) {
                if (o.flagged) {
                    flagged.insert(o.signer_id);
                }
            }
        }
        out.events.push_back(std::move(ce));
        i = j;
    }
    out.flagged_observers.assign(flagged.begin(), flagged.end());
    return out;
}

result<std::vector<failure_row>> audit_store::failures() {
    auto rows = _db->query("SELECT log_file, log_offset, batch_index, signer_id, counter, event_index, check_name, "
                           "message, severity, verified_at_ns FROM failures ORDER BY verified_at_ns, log_file, "
                           "log_offset;",
                           {},
                           std::array{sql::column::text, sql::column::integer, sql::column::integer, sql::column::text,
                                      sql::column::integer, sql::column::integer, sql::column::text, sql::column::text,
                                      sql::column::text, sql::column::integer});
    if (!rows) {
        return store_error(rows.message());
    }
    std::vector<failure_row> out;
    for (const auto& r : *rows) {
        failure_row f;
        f.log_file = sql::as_text(r[0]);
        f.log_offset = static_cast<uint64_t>(sql::as_integer(r[1]));
        if (!sql::is_null(r[2])) {
            f.batch_index = static_cast<uint64_t>(sql::as_integer(r[2]));
        }
        f.signer_id = sql::as_text(r[3]);
        if (!sql::is_null(r[4])) {
            f.counter = static_cast<uint64_t>(sql::as_integer(r[4]));
        }
        if (!sql::is_null(r[5])) {
            f.event_index = static_cast<uint64_t>(sql::as_integer(r[5]));
        }
        f.check = sql::as_text(r[6]);
        f.message = sql::as_text(r[7]);
        f.warning = sql::as_text(r[8]) == "warning";
        f.verified_at_ns = sql::as_integer(r[9]);
        out.push_back(std::move(f));
    }
    return out;
}

result<std::vector<batch_row>> audit_store::batches(std::string_view signer_id) {
    const std::vector<sql::value> p{std::string(signer_id)};
    auto rows = _db->query(
        "SELECT counter, batch_time_ns, merkle_root, previous_root, event_count, first_event_index, "
        "last_event_index, missed_events, backend, hardware_rooted, nonce, chain, status, verified_at_ns, log_file, "
        "log_offset FROM batches WHERE signer_id = $1 ORDER BY counter;",
        p,
        std::array{sql::column::integer, sql::column::integer, sql::column::blob, sql::column::blob,
                   sql::column::integer, sql::column::integer, sql::column::integer, sql::column::integer,
                   sql::column::text, sql::column::integer, sql::column::blob, sql::column::text, sql::column::text,
                   sql::column::integer, sql::column::text, sql::column::integer});
    if (!rows) {
        return store_error(rows.message());
    }
    std::vector<batch_row> out;
    for (const auto& r : *rows) {
        batch_row b;
        b.signer_id = std::string(signer_id);
        b.counter = static_cast<uint64_t>(sql::as_integer(r[0]));
        b.batch_time_ns = static_cast<uint64_t>(sql::as_integer(r[1]));
        b.merkle_root = fixed<32>(sql::as_blob(r[2]));
        b.previous_root = fixed<32>(sql::as_blob(r[3]));
        b.event_count = static_cast<uint64_t>(sql::as_integer(r[4]));
        b.first_event_index = static_cast<uint64_t>(sql::as_integer(r[5]));
        b.last_event_index = static_cast<uint64_t>(sql::as_integer(r[6]));
        b.missed_events = static_cast<uint64_t>(sql::as_integer(r[7]));
        b.backend = backend_of(sql::as_text(r[8]));
        b.hardware_rooted = sql::as_integer(r[9]) != 0;
        if (!sql::is_null(r[10])) {
            b.nonce = sql::as_blob(r[10]);
        }
        b.chain = sql::as_text(r[11]);
        b.status = sql::as_text(r[12]);
        b.verified_at_ns = sql::as_integer(r[13]);
        b.log_file = sql::as_text(r[14]);
        b.log_offset = static_cast<uint64_t>(sql::as_integer(r[15]));
        out.push_back(std::move(b));
    }
    return out;
}

} // namespace ptpsec::verifier
