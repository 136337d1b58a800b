// The audit store, one suite run against both backends: SQLite (a file in a
// temporary directory) and PostgreSQL (a private cluster, postgres.h). Rows
// come from the Verifier checking logs of several observers that saw the
// same grandmaster's Syncs, one of them late (a delay attack, seeds/003):
// the three queries, the chain state that catches a replayed log across
// Verifier runs, and the failure rows.

#include "helpers.h"
#include "postgres.h"

#include <control/verifier/audit_store.h>
#include <control/verifier/verifier.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace ptpsec::verifier {
namespace {

using namespace test;

ptpsec::test::postgres_cluster* cluster = nullptr;

class audit_store_test : public ::testing::TestWithParam<std::string> {
public:
    static void SetUpTestSuite() {}
    static void TearDownTestSuite() {
        delete cluster;
        cluster = nullptr;
    }

protected:
    void SetUp() override {
        if (GetParam() == "sqlite") {
            auto s = audit_store::open("sqlite:" + _dir.file("audit.db"));
            ASSERT_TRUE(s) << s.message();
            _store = std::move(*s);
        } else {
            if (!ptpsec::test::postgres_cluster::available()) {
                GTEST_FAIL() << "PostgreSQL is not installed (Debian postgresql)";
            }
            if (cluster == nullptr) {
                cluster = new ptpsec::test::postgres_cluster();
            }
            // Each test starts from empty tables.
            auto db = sql::open_postgresql(cluster->conninfo());
            ASSERT_TRUE(db) << db.message();
            ASSERT_TRUE(
                (*db)->script("DROP TABLE IF EXISTS events, batches, failures, chain_state, log_positions CASCADE;"));
            auto s = audit_store::open("postgresql:" + cluster->conninfo());
            ASSERT_TRUE(s) << s.message();
            _store = std::move(*s);
        }
        _registrar = open_registrar(_dir);
        ASSERT_NE(_registrar, nullptr);
    }

    /// Observer `name` saw `batches` batches of two Syncs each, its
    /// timestamps late by `delay_ns`; its log is verified into the store.
    void observe(const std::string& name, int64_t delay_ns, size_t batches = 2) {
        auto s = software(_dir, name);
        ASSERT_NE(s, nullptr);
        enrol(*_registrar, *s, name);
        chain c(*s, name);
        std::vector<hsm::batch_record> records;
        for (size_t i = 0; i < batches; ++i) {
            records.push_back(c.next(2, std::nullopt, std::nullopt, delay_ns));
        }
        _logs[name] = make_log(records).bytes;
        verifier v(*_registrar, _store.get());
        verify_report r;
        v.verify_log(name + ".log", _logs[name], r);
        EXPECT_TRUE(r.ok()) << (r.failures.empty() ? r.store_errors.front() : r.failures[0].message);
        _signers.push_back(std::move(s));
    }

    temp_dir _dir;
    std::unique_ptr<audit_store> _store;
    std::unique_ptr<registrar> _registrar;
    std::vector<std::unique_ptr<hsm::software_signer>> _signers;
    std::map<std::string, std::vector<uint8_t>> _logs;
};

TEST_P(audit_store_test, events_of_a_signer_between_two_times) {
    observe("observer-a", 0);
    observe("observer-b", 20);
    const uint64_t t1 = make_record(1001).timestamp_ns;
    const uint64_t t2 = make_record(1002).timestamp_ns;
    auto rows = _store->events_between("observer-a", t1, t2);
    ASSERT_TRUE(rows) << rows.message();
    ASSERT_EQ(rows->size(), 2U);
    EXPECT_EQ((*rows)[0].sequence_id, 1001);
    EXPECT_EQ((*rows)[1].sequence_id, 1002);
    EXPECT_EQ((*rows)[0].signer_id, "observer-a");
    EXPECT_EQ((*rows)[0].timestamp_ns, t1);
    EXPECT_EQ((*rows)[0].counter, 1U);
    EXPECT_EQ((*rows)[1].counter, 2U);
    EXPECT_EQ((*rows)[0].event_index, 1U);
    EXPECT_EQ((*rows)[0].source_port_identity, gm_port);
    EXPECT_EQ((*rows)[0].domain_number, 24);
    EXPECT_EQ((*rows)[0].sdo_id, 0x100);
    EXPECT_EQ((*rows)[0].correction_field, int64_t{1001} << 16);
    EXPECT_EQ((*rows)[0].event_digest, make_record(1001).digest);
    EXPECT_EQ((*rows)[0].batch_status, "verified");
    EXPECT_FALSE((*rows)[0].hardware_rooted);
    EXPECT_GT((*rows)[0].verified_at_ns, 0);

    auto none = _store->events_between("observer-a", t2 + 1, t2 + 2);
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->empty());
    auto all = _store->events_between("observer-b", 0, UINT64_MAX);
    ASSERT_TRUE(all) << all.message();
    EXPECT_EQ(all->size(), 4U);
}

TEST_P(audit_store_test, whether_a_sync_from_the_grandmaster_was_seen_by_an_observer_and_when) {
    observe("observer-a", 0);
    observe("observer-b", 30);
    auto everyone = _store->seen(0, 1002, gm_port, std::nullopt);
    ASSERT_TRUE(everyone) << everyone.message();
    ASSERT_EQ(everyone->size(), 2U);
    EXPECT_EQ((*everyone)[0].signer_id, "observer-a");
    EXPECT_EQ((*everyone)[1].signer_id, "observer-b");
    EXPECT_EQ((*everyone)[1].timestamp_ns, make_record(1002).timestamp_ns + 30);

    auto by_b = _store->seen(0, 1002, gm_port, std::string_view("observer-b"));
    ASSERT_TRUE(by_b);
    ASSERT_EQ(by_b->size(), 1U);
    EXPECT_EQ((*by_b)[0].direction, event_direction::rx);
    EXPECT_EQ((*by_b)[0].port_id, 1);

    auto not_seen = _store->seen(0, 4000, gm_port, std::nullopt);
    ASSERT_TRUE(not_seen);
    EXPECT_TRUE(not_seen->empty());
    auto other_gm = gm_port;
    other_gm[9] = 2;
    auto other = _store->seen(0, 1002, other_gm, std::nullopt);
    ASSERT_TRUE(other);
    EXPECT_TRUE(other->empty());
    auto follow_up = _store->seen(8, 1002, gm_port, std::nullopt);
    ASSERT_TRUE(follow_up);
    EXPECT_TRUE(follow_up->empty());
    auto unknown_observer = _store->seen(0, 1002, gm_port, std::string_view("observer-z"));
    ASSERT_TRUE(unknown_observer);
    EXPECT_TRUE(unknown_observer->empty());
}

TEST_P(audit_store_test, an_observer_whose_timestamps_disagree_beyond_the_bound_is_flagged) {
    observe("observer-a", 0);
    observe("observer-b", 200);
    observe("observer-c", 50'000); // its Syncs held back 50 us
    auto r = _store->correlate(1'000);
    ASSERT_TRUE(r) << r.message();
    ASSERT_EQ(r->events.size(), 4U);
    EXPECT_EQ(r->flagged_observers, std::vector<std::string>{"observer-c"});
    for (const auto& e : r->events) {
        ASSERT_EQ(e.observations.size(), 3U);
        EXPECT_EQ(e.source_port_identity, gm_port);
        EXPECT_EQ(e.message_type, 0);
        ASSERT_EQ(e.pairs.size(), 2U);
        EXPECT_EQ(e.pairs[0].first, "observer-a");
        EXPECT_EQ(e.pairs[0].second, "observer-c");
        EXPECT_EQ(e.pairs[0].difference_ns, 50'000);
        EXPECT_EQ(e.pairs[1].first, "observer-b");
        EXPECT_EQ(e.pairs[1].difference_ns, 49'800);
        EXPECT_FALSE(e.observations[0].flagged);
        EXPECT_FALSE(e.observations[1].flagged);
        EXPECT_TRUE(e.observations[2].flagged);
        EXPECT_EQ(e.observations[2].deviation_ns, 49'800);
    }
    auto loose = _store->correlate(100'000);
    ASSERT_TRUE(loose);
    EXPECT_EQ(loose->events.size(), 4U);
    EXPECT_TRUE(loose->flagged_observers.empty());
}

TEST_P(audit_store_test, two_observers_that_disagree_are_both_flagged) {
    observe("observer-a", 0, 1);
    observe("observer-b", 5'000, 1);
    auto r = _store->correlate(1'000);
    ASSERT_TRUE(r) << r.message();
    ASSERT_EQ(r->events.size(), 2U);
    EXPECT_EQ(r->flagged_observers, (std::vector<std::string>{"observer-a", "observer-b"}));
    EXPECT_EQ(r->events[0].pairs.size(), 1U);
}

TEST_P(audit_store_test, the_chain_state_survives_the_verifier_and_a_replayed_log_is_caught) {
    observe("observer-a", 0, 3);
    auto state = _store->chain_state_of("observer-a");
    ASSERT_TRUE(state) << state.message();
    ASSERT_TRUE(*state);
    EXPECT_EQ((*state)->counter, 3U);
    EXPECT_EQ((*state)->last_event_index, 5U);
    auto none = _store->chain_state_of("observer-z");
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
    auto found = _store->find_batch("observer-a", 2);
    ASSERT_TRUE(found && *found);
    EXPECT_EQ((*found)->log_file, "observer-a.log");

    verifier v(*_registrar, _store.get());
    verify_report r;
    v.verify_log("replayed.log", _logs["observer-a"], r);
    ASSERT_EQ(r.failures.size(), 3U);
    for (const auto& f : r.failures) {
        EXPECT_EQ(f.check, "replayed batch");
    }
    auto failures = _store->failures();
    ASSERT_TRUE(failures) << failures.message();
    const auto errors = std::count_if(failures->begin(), failures->end(), [](const failure_row& f) {
        return !f.warning && f.check == "replayed batch" && f.log_file == "replayed.log";
    });
    EXPECT_EQ(errors, 3);
    const auto warnings = std::count_if(failures->begin(), failures->end(), [](const failure_row& f) {
        return f.warning && f.check == "not hardware-rooted";
    });
    EXPECT_EQ(warnings, 3);
    auto batches = _store->batches("observer-a");
    ASSERT_TRUE(batches) << batches.message();
    ASSERT_EQ(batches->size(), 3U);
    EXPECT_EQ((*batches)[0].chain, "first");
    EXPECT_EQ((*batches)[1].chain, "linked");
    EXPECT_EQ((*batches)[1].previous_root, (*batches)[0].merkle_root);
    EXPECT_GT((*batches)[2].log_offset, (*batches)[1].log_offset);
    EXPECT_EQ((*batches)[2].event_count, 2U);
}

/// Batch 1 of signer "x", one event, by hand.
batch_row first_batch_of_x() {
    batch_row b;
    b.signer_id = "x";
    b.counter = 1;
    b.event_count = 1;
    b.chain = "first";
    b.status = "verified";
    b.log_file = "x.log";
    return b;
}

event_row its_event(const batch_row& b) {
    event_row e;
    e.signer_id = b.signer_id;
    e.counter = b.counter;
    return e;
}

TEST_P(audit_store_test, a_batch_stored_twice_is_refused_whole) {
    batch_row b = first_batch_of_x();
    const event_row e = its_event(b);
    ASSERT_TRUE(_store->record_batch(b, {e}));
    const auto again = _store->record_batch(b, {e});
    EXPECT_FALSE(again);
    auto rows = _store->batches("x");
    ASSERT_TRUE(rows);
    EXPECT_EQ(rows->size(), 1U);
    b.counter = uint64_t{1} << 63;
    const auto huge = _store->record_batch(b, {});
    ASSERT_FALSE(huge);
    EXPECT_NE(huge.message().find("does not fit"), std::string::npos) << huge.message();
}

// The online Verifier's place in each log file: kept, replaced, and stored
// with a record's findings or not at all.
TEST_P(audit_store_test, a_log_position_is_stored_with_what_its_record_found_or_not_at_all) {
    EXPECT_FALSE(*_store->position_of("k1"));
    ASSERT_TRUE(_store->save_position({"k1", "/l/evidence.cbor", 100, 1, false}));
    ASSERT_TRUE(_store->save_position({"k1", "/l/evidence.3.cbor", 250, 2, true}));
    auto p = _store->position_of("k1");
    ASSERT_TRUE(p && *p) << p.message();
    EXPECT_EQ((*p)->log_file, "/l/evidence.3.cbor");
    EXPECT_EQ((*p)->offset, 250U);
    EXPECT_EQ((*p)->records, 2U);
    EXPECT_TRUE((*p)->stopped);

    batch_row b = first_batch_of_x();
    const event_row e = its_event(b);
    // The body fails after the batch was written: neither it nor the
    // position is kept.
    const auto failed = _store->record_with_position({"k2", "x.log", 80, 1, false}, [&]() -> status {
        EXPECT_TRUE(_store->record_batch(b, {e}));
        EXPECT_TRUE(_store->record_failure({"x.log", 0, 0, "x", 1, std::nullopt, "nonce mismatch", "m", false, 1}));
        return error{"not recorded"};
    });
    EXPECT_FALSE(failed);
    EXPECT_TRUE(_store->batches("x")->empty());
    EXPECT_TRUE(_store->failures()->empty());
    EXPECT_FALSE(*_store->position_of("k2"));
    // It succeeds: all three are kept.
    ASSERT_TRUE(_store->record_with_position({"k2", "x.log", 80, 1, false}, [&]() -> status {
        EXPECT_TRUE(_store->record_batch(b, {e}));
        EXPECT_TRUE(_store->record_failure({"x.log", 0, 0, "x", 1, std::nullopt, "nonce mismatch", "m", false, 1}));
        return ok_status();
    }));
    EXPECT_EQ(_store->batches("x")->size(), 1U);
    EXPECT_EQ(_store->failures()->size(), 1U);
    p = _store->position_of("k2");
    ASSERT_TRUE(p && *p);
    EXPECT_EQ((*p)->offset, 80U);
    // A batch the store refuses inside (stored twice) fails the whole.
    const auto twice = _store->record_with_position({"k3", "x.log", 160, 2, false},
                                                    [&]() -> status { return _store->record_batch(b, {e}); });
    EXPECT_FALSE(twice);
    EXPECT_FALSE(*_store->position_of("k3"));
    EXPECT_EQ(_store->batches("x")->size(), 1U);
}

/// The names of the indexes on `events`, from the backend's catalogue.
std::vector<std::string> event_indexes(sql::connection& db, bool sqlite) {
    auto rows = db.query(sqlite ? "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND "
                                  "sql IS NOT NULL ORDER BY name;"
                                : "SELECT indexname FROM pg_indexes WHERE tablename = 'events' AND indexname NOT "
                                  "LIKE '%pkey' ORDER BY indexname;",
                         {}, std::array{sql::column::text});
    EXPECT_TRUE(rows) << rows.message();
    std::vector<std::string> out;
    for (const auto& r : rows ? *rows : std::vector<sql::row>{}) {
        out.push_back(sql::as_text(r[0]));
    }
    return out;
}

TEST_P(audit_store_test, a_store_made_with_the_digest_index_loses_it_when_opened_and_still_answers) {
    observe("observer-a", 0);
    const bool sqlite = GetParam() == "sqlite";
    const std::string spec = sqlite ? "sqlite:" + _dir.file("audit.db") : "postgresql:" + cluster->conninfo();
    auto db = sqlite ? sql::open_sqlite(_dir.file("audit.db"), true) : sql::open_postgresql(cluster->conninfo());
    ASSERT_TRUE(db) << db.message();
    EXPECT_EQ(event_indexes(**db, sqlite), (std::vector<std::string>{"events_by_message", "events_by_time"}));
    // The indexes a store had before events_by_message.
    ASSERT_TRUE((*db)->script("DROP INDEX events_by_message; CREATE INDEX events_by_sequence ON events(sequence_id, "
                              "message_type); CREATE INDEX events_by_digest ON events(event_digest);"));
    _store.reset();
    auto reopened = audit_store::open(spec);
    ASSERT_TRUE(reopened) << reopened.message();
    _store = std::move(*reopened);
    EXPECT_EQ(event_indexes(**db, sqlite), (std::vector<std::string>{"events_by_message", "events_by_time"}));
    observe("observer-b", 5'000'000);
    auto seen = _store->seen(0, 1000, gm_port, std::nullopt);
    ASSERT_TRUE(seen) << seen.message();
    EXPECT_EQ(seen->size(), 2U);
    auto c = _store->correlate(1'000'000);
    ASSERT_TRUE(c) << c.message();
    EXPECT_EQ(c->events.size(), 4U);
}

/// A scratch connection of the test's backend, with a table of every kind
/// of column.
std::unique_ptr<sql::connection> scratch(const std::string& backend, const temp_dir& dir) {
    auto db = backend == "sqlite" ? sql::open_sqlite(dir.file("scratch.db"), true)
                                  : sql::open_postgresql(cluster->conninfo());
    EXPECT_TRUE(db) << db.message();
    if (!db) {
        return nullptr;
    }
    const std::string b((*db)->blob_type());
    const std::string i((*db)->integer_type());
    EXPECT_TRUE((*db)->script(fmt::format(
        "DROP TABLE IF EXISTS scratch; CREATE TABLE scratch(k {0} PRIMARY KEY, t TEXT, b {1}, n {0});", i, b)));
    return std::move(*db);
}

TEST_P(audit_store_test, rows_inserted_together_come_back_octet_for_octet) {
    auto db = scratch(GetParam(), _dir);
    ASSERT_NE(db, nullptr);
    const std::array<sql::named_column, 4> cols{
        {{"k", sql::column::integer}, {"t", sql::column::text}, {"b", sql::column::blob}, {"n", sql::column::integer}}};
    // Text and octets that an array literal, bytea's text form or a
    // statement would have to escape; NULL in each nullable column.
    const std::vector<std::string> texts{
        "", "NULL", "\"quoted\"", "back\\slash", "{braces},comma", "tab\tnew\nline", "\\x00", "ünïcode €", " padded "};
    std::vector<sql::value> values;
    for (size_t r = 0; r < 40; ++r) {
        values.emplace_back(int64_t{static_cast<int64_t>(r)});
        if (r % 10 == 9) {
            values.emplace_back(std::monostate{});
        } else {
            values.emplace_back(texts[r % texts.size()]);
        }
        if (r % 10 == 8) {
            values.emplace_back(std::monostate{});
        } else {
            std::vector<uint8_t> octets(r % 7);
            for (size_t k = 0; k < octets.size(); ++k) {
                octets[k] = static_cast<uint8_t>(std::array{0x00, 0x5c, 0x22, 0x2c, 0x7b, 0xff, 0x4e}[(r + k) % 7]);
            }
            values.emplace_back(std::move(octets));
        }
        if (r % 10 == 7) {
            values.emplace_back(std::monostate{});
        } else {
            values.emplace_back(r % 2 == 0 ? INT64_MIN + static_cast<int64_t>(r) : INT64_MAX - static_cast<int64_t>(r));
        }
    }
    ASSERT_TRUE(db->begin());
    const auto st = db->insert_rows("scratch", cols, values);
    ASSERT_TRUE(st) << st.message();
    ASSERT_TRUE(db->commit());
    auto rows = db->query("SELECT k, t, b, n FROM scratch ORDER BY k;", {},
                          std::array{sql::column::integer, sql::column::text, sql::column::blob, sql::column::integer});
    ASSERT_TRUE(rows) << rows.message();
    ASSERT_EQ(rows->size(), 40U);
    for (size_t r = 0; r < rows->size(); ++r) {
        for (size_t c = 0; c < 4; ++c) {
            EXPECT_EQ((*rows)[r][c], values[r * 4 + c]) << "row " << r << " column " << cols[c].name;
        }
    }
}

TEST_P(audit_store_test, rows_inserted_together_are_refused_whole) {
    auto db = scratch(GetParam(), _dir);
    ASSERT_NE(db, nullptr);
    const std::array<sql::named_column, 2> cols{{{"k", sql::column::integer}, {"t", sql::column::text}}};
    const std::vector<sql::value> uneven{int64_t{1}, std::string("a"), int64_t{2}};
    const auto bad = db->insert_rows("scratch", cols, uneven);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.message().find("3 values do not make rows of 2 columns of scratch"), std::string::npos)
        << bad.message();
    // A key used twice: in a transaction, nothing of the call stays.
    const std::vector<sql::value> twice{int64_t{1},       std::string("a"), int64_t{2},
                                        std::string("b"), int64_t{1},       std::string("c")};
    ASSERT_TRUE(db->begin());
    const auto dup = db->insert_rows("scratch", cols, twice);
    EXPECT_FALSE(dup);
    db->rollback();
    auto rows = db->query("SELECT k FROM scratch;", {}, std::array{sql::column::integer});
    ASSERT_TRUE(rows) << rows.message();
    EXPECT_TRUE(rows->empty());
    // No rows is nothing to do.
    EXPECT_TRUE(db->insert_rows("scratch", cols, {}));
}

INSTANTIATE_TEST_SUITE_P(backends, audit_store_test, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

} // namespace
} // namespace ptpsec::verifier
