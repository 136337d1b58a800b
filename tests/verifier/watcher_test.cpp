// The online Verifier's watcher (control/verifier/watcher.h): a log directory
// written the way a data plane writes it (hsm::evidence_log: appends,
// rotation by size), polled while it grows. Every batch is verified exactly
// once, a rotated file is not read again, a record still being written waits
// for the next poll, a corrupt one is reported once, and a restarted watcher
// goes on where the last one stopped.

#include "../sanitized.h"
#include "helpers.h"

#include <control/verifier/audit_store.h>
#include <control/verifier/sql.h>
#include <control/verifier/watcher.h>
#include <hsm/evidence_log.h>

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace ptpsec::verifier {
namespace {

using namespace test;

class watcher_test : public testing::Test {
protected:
    void SetUp() override {
        std::filesystem::create_directory(_dir.file("evidence"));
        _signer = software(_dir, "observer");
        ASSERT_TRUE(_signer);
        _registrar = open_registrar(_dir);
        ASSERT_TRUE(_registrar);
        enrol(*_registrar, *_signer, "gm-a");
        auto store = audit_store::open("sqlite:" + _dir.file("audit.db"));
        ASSERT_TRUE(store) << store.message();
        _store = std::move(*store);
    }

    verify_report poll(watcher& w) {
        verify_report r;
        w.poll(r);
        return r;
    }

    std::string log_dir() const { return _dir.file("evidence"); }

    temp_dir _dir;
    std::unique_ptr<hsm::software_signer> _signer;
    std::unique_ptr<registrar> _registrar;
    std::unique_ptr<audit_store> _store;
};

TEST_F(watcher_test, every_batch_is_verified_once_across_appends_and_rotations) {
    // Files of about two records: the log rotates as it grows.
    chain c(*_signer, "gm-a");
    const auto first = c.next(5);
    const uint64_t record_size = hsm::encode_log_record(first)->size();
    auto log = hsm::evidence_log::open(log_dir(), "evidence", 2 * record_size + record_size / 2);
    ASSERT_TRUE(log) << log.message();
    ASSERT_TRUE((*log)->append(*hsm::encode_log_record(first)));
    watcher w(*_registrar, *_store, {{log_dir()}, "evidence"});

    auto r = poll(w);
    EXPECT_TRUE(r.ok()) << (r.failures.empty() ? "" : r.failures[0].message);
    EXPECT_EQ(r.batches_verified, 1U);
    EXPECT_EQ(r.events, 5U);
    EXPECT_EQ(poll(w).records, 0U) << "nothing new, nothing read again";

    uint64_t verified = 1;
    for (int i = 0; i < 6; ++i) {
        ASSERT_TRUE((*log)->append(*hsm::encode_log_record(c.next(5))));
        r = poll(w);
        EXPECT_TRUE(r.ok()) << (r.failures.empty() ? "" : r.failures[0].message);
        EXPECT_EQ(r.batches_verified, 1U) << "append " << i;
        verified += r.batches_verified;
    }
    EXPECT_GE((*log)->rotations(), 2U);
    EXPECT_EQ(verified, 7U);
    // Everything is in the audit store once. A new watcher (a restarted
    // daemon) goes on where the last one stopped, in every file: it reads
    // nothing again, finds nothing, and verifies what comes next.
    EXPECT_EQ(_store->batches("gm-a")->size(), 7U);
    watcher again(*_registrar, *_store, {{log_dir()}, "evidence"});
    const auto restarted = poll(again);
    EXPECT_TRUE(restarted.ok()) << (restarted.failures.empty() ? "" : restarted.failures[0].message);
    EXPECT_EQ(restarted.records, 0U);
    EXPECT_TRUE(restarted.warnings.empty());
    ASSERT_TRUE((*log)->append(*hsm::encode_log_record(c.next(5))));
    r = poll(again);
    EXPECT_TRUE(r.ok()) << (r.failures.empty() ? "" : r.failures[0].message);
    EXPECT_EQ(r.records, 1U);
    EXPECT_EQ(r.batches_verified, 1U);
    EXPECT_EQ(_store->batches("gm-a")->size(), 8U);

    // Without the positions (a store that lost them) the same logs read
    // from their start are what they would then be: batches accepted
    // before, every one refused as a replay.
    auto raw = sql::open_sqlite(_dir.file("audit.db"), false);
    ASSERT_TRUE(raw) << raw.message();
    ASSERT_TRUE((*raw)->script("DELETE FROM log_positions;"));
    watcher forgetful(*_registrar, *_store, {{log_dir()}, "evidence"});
    const auto replayed = poll(forgetful);
    EXPECT_EQ(replayed.batches_accepted, 0U);
    EXPECT_EQ(replayed.failures.size(), 8U);
    for (const auto& f : replayed.failures) {
        EXPECT_EQ(f.check, "replayed batch");
    }
}

TEST_F(watcher_test, a_restarted_watcher_follows_a_file_renamed_while_it_was_down) {
    chain c(*_signer, "gm-a");
    const auto one = *hsm::encode_log_record(c.next(3));
    const auto two = *hsm::encode_log_record(c.next(3));
    const auto three = *hsm::encode_log_record(c.next(3));
    const std::string current = log_dir() + "/evidence.cbor";
    write_bytes(current, one);
    {
        watcher w(*_registrar, *_store, {{log_dir()}, "evidence"});
        EXPECT_EQ(poll(w).batches_verified, 1U);
    }
    // While no watcher runs: the record after it, then rotation, then the
    // next file.
    std::vector<uint8_t> both = one;
    both.insert(both.end(), two.begin(), two.end());
    write_bytes(current, both);
    std::filesystem::rename(current, log_dir() + "/evidence.1.cbor");
    write_bytes(current, three);
    watcher w(*_registrar, *_store, {{log_dir()}, "evidence"});
    const auto r = poll(w);
    EXPECT_TRUE(r.ok()) << (r.failures.empty() ? "" : r.failures[0].message);
    EXPECT_EQ(r.records, 2U) << "the first record of evidence.1.cbor was read under its old name";
    EXPECT_EQ(r.batches_verified, 2U);
    // A record appended again later in the file is still a replay.
    std::vector<uint8_t> again = three;
    again.insert(again.end(), one.begin(), one.end());
    write_bytes(current, again);
    const auto replay = poll(w);
    ASSERT_EQ(replay.failures.size(), 1U);
    EXPECT_EQ(replay.failures[0].check, "replayed batch");
    EXPECT_EQ(replay.failures[0].offset, three.size());
}

// The writer repeats the last record of a file at the start of the next one
// after a failed write (hsm/evidence_log.h); the current file then has the
// same path as the copy the watcher may have read before the rotation.
TEST_F(watcher_test, the_last_record_repeated_under_the_same_path_after_rotation_is_a_duplicate) {
    chain c(*_signer, "gm-a");
    const auto one = *hsm::encode_log_record(c.next(3));
    const auto two = *hsm::encode_log_record(c.next(3));
    const auto three = *hsm::encode_log_record(c.next(3));
    const std::string current = log_dir() + "/evidence.cbor";
    std::vector<uint8_t> first = one;
    first.insert(first.end(), two.begin(), two.end());
    write_bytes(current, first);
    watcher w(*_registrar, *_store, {{log_dir()}, "evidence"});
    EXPECT_EQ(poll(w).batches_verified, 2U);
    std::filesystem::rename(current, log_dir() + "/evidence.1.cbor");
    std::vector<uint8_t> next = two;
    next.insert(next.end(), three.begin(), three.end());
    write_bytes(current, next);
    const auto r = poll(w);
    EXPECT_TRUE(r.ok()) << (r.failures.empty() ? "" : r.failures[0].check + ": " + r.failures[0].message);
    std::vector<finding> duplicates;
    for (const auto& x : r.warnings) {
        if (x.check == "duplicate record") {
            duplicates.push_back(x);
        }
    }
    ASSERT_EQ(duplicates.size(), 1U);
    EXPECT_EQ(duplicates[0].file, current);
    EXPECT_EQ(duplicates[0].offset, 0U);
    EXPECT_EQ(r.batches_verified, 1U);
    EXPECT_EQ(_store->batches("gm-a")->size(), 3U);
}

TEST_F(watcher_test, a_record_being_written_waits_and_a_corrupt_one_is_reported_once) {
    chain c(*_signer, "gm-a");
    const auto one = *hsm::encode_log_record(c.next(3));
    const auto two = *hsm::encode_log_record(c.next(3));
    const std::string current = log_dir() + "/evidence.cbor";
    // The first record and half of the second, as a writer mid-write leaves them.
    std::vector<uint8_t> partial = one;
    partial.insert(partial.end(), two.begin(), two.begin() + static_cast<std::ptrdiff_t>(two.size() / 2));
    write_bytes(current, partial);
    watcher w(*_registrar, *_store, {{log_dir()}, "evidence"});
    auto r = poll(w);
    EXPECT_TRUE(r.ok()) << (r.failures.empty() ? "" : r.failures[0].message);
    EXPECT_EQ(r.batches_verified, 1U);
    // The write completes: the second record is verified at the next poll.
    std::vector<uint8_t> whole = one;
    whole.insert(whole.end(), two.begin(), two.end());
    write_bytes(current, whole);
    r = poll(w);
    EXPECT_TRUE(r.ok()) << (r.failures.empty() ? "" : r.failures[0].message);
    EXPECT_EQ(r.batches_verified, 1U);

    // A closed file with a damaged record: reported once, at its offset.
    const auto three = *hsm::encode_log_record(c.next(3));
    std::vector<uint8_t> bad = three;
    bad[0] = 0xFF; // a break code where a record should start
    write_bytes(log_dir() + "/evidence.1.cbor", bad);
    std::filesystem::rename(current, log_dir() + "/evidence.0.cbor");
    r = poll(w);
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_EQ(r.failures[0].check, "corrupt record");
    EXPECT_EQ(r.failures[0].file, log_dir() + "/evidence.1.cbor");
    EXPECT_EQ(r.failures[0].offset, 0U);
    EXPECT_EQ(r.batches_accepted, 0U) << "evidence.0.cbor was read before it was renamed";
    EXPECT_TRUE(poll(w).failures.empty()) << "reported once";

    // A damaged record after a good first one: reported once, across a
    // restart too (the file is known by its first record).
    const auto four = *hsm::encode_log_record(c.next(3));
    std::vector<uint8_t> good_then_bad = four;
    good_then_bad.push_back(0xFF);
    good_then_bad.insert(good_then_bad.end(), bad.begin(), bad.end());
    write_bytes(log_dir() + "/evidence.2.cbor", good_then_bad);
    r = poll(w);
    // (Its first record follows the damaged batch: dropped batch.)
    ASSERT_EQ(r.failures.size(), 2U);
    EXPECT_EQ(r.failures[0].check, "dropped batch");
    EXPECT_EQ(r.failures[1].check, "corrupt record");
    EXPECT_EQ(r.failures[1].offset, four.size());
    watcher restarted(*_registrar, *_store, {{log_dir()}, "evidence"});
    const auto after = poll(restarted);
    ASSERT_EQ(after.failures.size(), 1U) << "evidence.1.cbor has no first record to be known by: reported again";
    EXPECT_EQ(after.failures[0].file, log_dir() + "/evidence.1.cbor");
    EXPECT_EQ(after.records, 0U);
}

TEST_F(watcher_test, a_log_name_that_is_no_file_is_reported_once_and_never_opened) {
    chain c(*_signer, "gm-a");
    write_bytes(log_dir() + "/evidence.cbor", *hsm::encode_log_record(c.next(3)));
    // A pipe under a rotated file's name: opening it would wait for a writer.
    const std::string fifo = log_dir() + "/evidence.1.cbor";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    watcher w(*_registrar, *_store, {{log_dir()}, "evidence"});
    auto r = poll(w);
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_EQ(r.failures[0].check, "cannot read");
    EXPECT_EQ(r.failures[0].message, "evidence log " + fifo +
                                         ": not a regular file but a pipe, whose reading need not end (give a file: "
                                         "a copy of what it gives)");
    EXPECT_EQ(r.batches_verified, 1U) << "the files beside it are read";
    r = poll(w);
    EXPECT_TRUE(r.failures.empty()) << "reported once";

    // A file larger than memory (sparse) is a file that cannot be read, at
    // every poll, not an exception that ends the Verifier.
    if (ptpsec::test::a_huge_allocation_throws()) {
        const std::string sparse = log_dir() + "/evidence.2.cbor";
        write_bytes(sparse, *hsm::encode_log_record(c.next(3)));
        if (::truncate(sparse.c_str(), off_t{1} << 40) == 0) {
            r = poll(w);
            ASSERT_EQ(r.failures.size(), 1U);
            EXPECT_EQ(r.failures[0].message, "evidence log " + sparse + ": cannot read it: Cannot allocate memory");
        }
    }
}

TEST_F(watcher_test, a_missing_directory_is_named) {
    watcher w(*_registrar, *_store, {{_dir.file("nowhere")}, "evidence"});
    const auto r = poll(w);
    ASSERT_EQ(r.store_errors.size(), 1U);
    EXPECT_NE(r.store_errors[0].find(_dir.file("nowhere")), std::string::npos) << r.store_errors[0];
}

} // namespace
} // namespace ptpsec::verifier
