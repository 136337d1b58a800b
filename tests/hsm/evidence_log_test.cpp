// The evidence log on disk (hsm/evidence_log.h): appends readable with
// hsm::read_log as soon as append() returns, rotation by size that keeps
// every record exactly once and in order and never overwrites a file, a
// torn tail moved aside, corruption refused, one writer at a time, and a
// failed write (a file size limit reached half way through a record) that
// is repaired by rotation, never by truncation.

#include <hsm/evidence_log.h>
#include <hsm/software_signer.h>

#include "../process.h"
#include "file_size_limit.h"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/stat.h>

namespace ptpsec::hsm {
namespace {

namespace fs = std::filesystem;
using test::temp_dir;

std::vector<uint8_t> read_octets(const fs::path& p) {
    const std::string s = test::read_file(p.string());
    return {s.begin(), s.end()};
}

void write_octets(const fs::path& p, std::span<const uint8_t> octets) {
    test::write_file(p.string(), std::string_view(reinterpret_cast<const char*>(octets.data()), octets.size()));
}

event_record make_record(uint64_t i) {
    event_record r{};
    r.version = event_record_version;
    r.direction = i % 2 == 0 ? event_direction::rx : event_direction::tx;
    r.messageType = static_cast<uint8_t>(i % 4);
    r.sdoId = 0x100;
    r.timestamp_ns = 1'700'000'000'000'000'000ULL + i * 1000;
    r.sequenceId = static_cast<uint16_t>(i);
    r.messageLength = 44;
    r.digest[0] = static_cast<uint8_t>(i);
    return r;
}

/// Signed batch records to append: `count` batches of `events` events each,
/// chained, from a software signer of the fixture's own.
class evidence_log_test : public ::testing::Test {
protected:
    void SetUp() override {
        auto s = software_signer::open({_keys.file("key.pem"), _keys.file("counter"), signature_algorithm::eddsa});
        ASSERT_TRUE(s) << s.message();
        _signer = std::move(*s);
    }

    std::vector<std::vector<uint8_t>> make_records(size_t count, size_t events) {
        std::vector<std::vector<uint8_t>> out;
        for (size_t b = 0; b < count; ++b) {
            batch_request req;
            req.signer_id = "log-test";
            req.batch_time_ns = 1'700'000'000'000'000'000ULL + b;
            req.previous_root = _previous;
            for (size_t e = 0; e < events; ++e) {
                req.events.push_back({make_record(_next_index), _next_index});
                ++_next_index;
            }
            auto rec = sign_batch(*_signer, req);
            EXPECT_TRUE(rec) << rec.message();
            _previous = rec->payload.merkle_root;
            auto enc = encode_log_record(*rec);
            EXPECT_TRUE(enc) << enc.message();
            out.push_back(std::move(*enc));
        }
        return out;
    }

    /// Every record of every file of the log, in reading order, checking
    /// that no file has a problem other than those `torn_ok` allows.
    std::vector<std::vector<uint8_t>> read_all(const std::string& base, bool torn_ok = false) {
        std::vector<std::vector<uint8_t>> out;
        auto files = list_log_files(_dir.path(), base);
        EXPECT_TRUE(files) << files.message();
        for (const fs::path& f : *files) {
            const auto octets = read_octets(f);
            const log_contents c = read_log(octets);
            if (c.problem) {
                EXPECT_TRUE(torn_ok && c.problem->truncated) << f << ": " << c.problem->message;
            }
            for (const log_entry& e : c.records) {
                out.emplace_back(octets.begin() + static_cast<ptrdiff_t>(e.offset),
                                 octets.begin() + static_cast<ptrdiff_t>(e.offset + e.length));
            }
        }
        return out;
    }

    temp_dir _keys;
    temp_dir _dir;
    std::unique_ptr<software_signer> _signer;
    digest _previous = first_batch_previous_root;
    uint64_t _next_index = 0;
};

TEST_F(evidence_log_test, each_append_is_in_the_file_when_it_returns_and_reads_back) {
    const auto records = make_records(3, 5);
    auto log = evidence_log::open(_dir.path(), "evidence", 1 << 20);
    ASSERT_TRUE(log) << log.message();
    EXPECT_FALSE((*log)->last_record());
    EXPECT_TRUE((*log)->recovery_note().empty());
    EXPECT_EQ((*log)->current_path(), _dir.path() / "evidence.cbor");
    std::vector<uint8_t> expected;
    for (const auto& r : records) {
        ASSERT_TRUE((*log)->append(r).ok());
        expected.insert(expected.end(), r.begin(), r.end());
        // Read by another descriptor while the writer is still open.
        EXPECT_EQ(read_octets(_dir.path() / "evidence.cbor"), expected);
        EXPECT_EQ((*log)->current_size(), expected.size());
    }
    const log_contents c = read_log(expected);
    ASSERT_FALSE(c.problem);
    ASSERT_EQ(c.records.size(), 3U);
    EXPECT_EQ(c.records[2].record.payload.last_event_index, 14U);

    // Reopened: the last record is found for the chain, appends continue.
    log = error{"closed"};
    auto again = evidence_log::open(_dir.path(), "evidence", 1 << 20);
    ASSERT_TRUE(again) << again.message();
    ASSERT_TRUE((*again)->last_record());
    EXPECT_EQ((*again)->last_record()->payload.merkle_root, _previous);
    const auto more = make_records(1, 2);
    ASSERT_TRUE((*again)->append(more[0]).ok());
    EXPECT_EQ(read_all("evidence").size(), 4U);
    EXPECT_FALSE((*again)->append({}).ok());
}

TEST_F(evidence_log_test, a_record_appended_in_parts_is_the_same_octets_as_appended_whole) {
    const auto records = make_records(2, 6);
    auto log = evidence_log::open(_dir.path(), "evidence", 1 << 20);
    ASSERT_TRUE(log) << log.message();
    const std::vector<uint8_t>& r = records[0];
    // Split anywhere, with empty parts between.
    const std::span<const uint8_t> whole(r);
    const std::span<const uint8_t> parts[] = {whole.first(1), {}, whole.subspan(1, 40), whole.subspan(41), {}};
    ASSERT_TRUE((*log)->append_parts(parts).ok());
    ASSERT_TRUE((*log)->append(records[1]).ok());
    std::vector<uint8_t> expected = records[0];
    expected.insert(expected.end(), records[1].begin(), records[1].end());
    EXPECT_EQ(read_octets(_dir.path() / "evidence.cbor"), expected);
    EXPECT_EQ((*log)->current_size(), expected.size());

    const std::span<const uint8_t> nothing[] = {{}, {}};
    EXPECT_EQ((*log)->append_parts(nothing).message(), "evidence log: refusing to append an empty record");
    std::vector<std::span<const uint8_t>> many(129, whole.first(1));
    EXPECT_EQ((*log)->append_parts(many).message(), "evidence log: a record in 129 parts; at most 128");
    EXPECT_EQ(read_octets(_dir.path() / "evidence.cbor"), expected);
}

TEST_F(evidence_log_test, rotation_by_size_keeps_every_record_once_in_order_and_never_overwrites) {
    const auto records = make_records(20, 3);
    const size_t one = records[0].size();
    // Room for three records of about this size per file.
    const uint64_t limit = 3 * one + one / 2;
    // A stray closed file with a high number: rotation continues after it
    // and never writes over it.
    write_octets(_dir.path() / "evidence.7.cbor", records[0]);
    // Other logs and other names in the same directory are not ours.
    write_octets(_dir.path() / "other.1.cbor", records[0]);
    write_octets(_dir.path() / "evidence.01.cbor", records[0]);
    {
        auto log = evidence_log::open(_dir.path(), "evidence", limit);
        ASSERT_TRUE(log) << log.message();
        for (const auto& r : records) {
            ASSERT_TRUE((*log)->append(r).ok());
            EXPECT_LE((*log)->current_size(), limit);
        }
        EXPECT_GE((*log)->rotations(), 5U);
    }
    auto files = list_log_files(_dir.path(), "evidence");
    ASSERT_TRUE(files) << files.message();
    ASSERT_GE(files->size(), 7U);
    EXPECT_EQ((*files)[0].filename(), "evidence.7.cbor");
    EXPECT_EQ((*files)[1].filename(), "evidence.8.cbor");
    EXPECT_EQ(files->back().filename(), "evidence.cbor");
    for (const fs::path& f : *files) {
        EXPECT_LE(fs::file_size(f), limit) << f;
    }
    EXPECT_EQ(read_octets(_dir.path() / "evidence.7.cbor"), records[0]);
    auto all = read_all("evidence");
    ASSERT_EQ(all.size(), records.size() + 1);
    all.erase(all.begin()); // the stray file
    EXPECT_EQ(all, records);
}

TEST_F(evidence_log_test, a_record_larger_than_the_limit_gets_a_file_of_its_own) {
    const auto records = make_records(3, 4);
    {
        auto log = evidence_log::open(_dir.path(), "big", 10);
        ASSERT_TRUE(log) << log.message();
        for (const auto& r : records) {
            ASSERT_TRUE((*log)->append(r).ok());
        }
    }
    auto files = list_log_files(_dir.path(), "big");
    ASSERT_TRUE(files);
    ASSERT_EQ(files->size(), 3U);
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(read_octets((*files)[i]), records[i]);
    }
}

TEST_F(evidence_log_test, a_torn_tail_is_moved_aside_unchanged_and_a_new_file_started) {
    const auto records = make_records(4, 3);
    std::vector<uint8_t> torn;
    for (size_t i = 0; i < 3; ++i) {
        torn.insert(torn.end(), records[i].begin(), records[i].end());
    }
    // The fourth record cut in the middle, as a crash inside write() leaves it.
    torn.insert(torn.end(), records[3].begin(), records[3].begin() + static_cast<ptrdiff_t>(records[3].size() / 2));
    write_octets(_dir.path() / "evidence.cbor", torn);

    auto log = evidence_log::open(_dir.path(), "evidence", 1 << 20);
    ASSERT_TRUE(log) << log.message();
    const std::string& note = (*log)->recovery_note();
    EXPECT_NE(note.find("torn record"), std::string::npos) << note;
    EXPECT_NE(note.find("evidence.1.cbor"), std::string::npos) << note;
    EXPECT_NE(note.find("3 complete records"), std::string::npos) << note;
    EXPECT_EQ(read_octets(_dir.path() / "evidence.1.cbor"), torn) << "moved aside, not truncated";
    EXPECT_EQ((*log)->current_size(), 0U);
    // The chain continues from the last complete record: the torn batch
    // never reached the log.
    ASSERT_TRUE((*log)->last_record());
    const auto third = decode_log_record(records[2]);
    ASSERT_TRUE(third);
    EXPECT_EQ((*log)->last_record()->payload.merkle_root, third->payload.merkle_root);

    const auto next = make_records(1, 1);
    ASSERT_TRUE((*log)->append(next[0]).ok());
    EXPECT_EQ(read_octets(_dir.path() / "evidence.cbor"), next[0]);
    const auto all = read_all("evidence", true);
    ASSERT_EQ(all.size(), 4U);
    EXPECT_EQ(all[2], records[2]);
    EXPECT_EQ(all[3], next[0]);
}

TEST_F(evidence_log_test, corruption_is_refused_naming_the_file_and_the_offset) {
    auto records = make_records(2, 2);
    std::vector<uint8_t> octets = records[0];
    octets.push_back(0xff); // a break code where a record should start
    octets.insert(octets.end(), records[1].begin(), records[1].end());
    write_octets(_dir.path() / "evidence.cbor", octets);
    auto log = evidence_log::open(_dir.path(), "evidence", 1 << 20);
    ASSERT_FALSE(log);
    EXPECT_NE(log.message().find("evidence.cbor"), std::string::npos) << log.message();
    EXPECT_NE(log.message().find(fmt::format("offset {}", records[0].size())), std::string::npos) << log.message();
    EXPECT_EQ(read_octets(_dir.path() / "evidence.cbor"), octets) << "left alone";

    // In a closed file that holds the last record, too.
    fs::rename(_dir.path() / "evidence.cbor", _dir.path() / "evidence.1.cbor");
    auto again = evidence_log::open(_dir.path(), "evidence", 1 << 20);
    ASSERT_FALSE(again);
    EXPECT_NE(again.message().find("evidence.1.cbor"), std::string::npos) << again.message();
}

TEST_F(evidence_log_test, one_writer_at_a_time_and_bad_arguments_say_why) {
    auto first = evidence_log::open(_dir.path(), "evidence", 1000);
    ASSERT_TRUE(first) << first.message();
    auto second = evidence_log::open(_dir.path(), "evidence", 1000);
    ASSERT_FALSE(second);
    EXPECT_NE(second.message().find("another writer"), std::string::npos) << second.message();
    EXPECT_NE(second.message().find("evidence.lock"), std::string::npos) << second.message();

    auto no_dir = evidence_log::open(_dir.path() / "missing", "evidence", 1000);
    ASSERT_FALSE(no_dir);
    EXPECT_NE(
        no_dir.message().find("directory " + (_dir.path() / "missing").string() + " does not exist (create it first)"),
        std::string::npos)
        << no_dir.message();
    test::write_file((_dir.path() / "plain").string(), "x");
    auto not_dir = evidence_log::open(_dir.path() / "plain", "evidence", 1000);
    ASSERT_FALSE(not_dir);
    EXPECT_NE(not_dir.message().find("plain is not a directory"), std::string::npos) << not_dir.message();
    for (const std::string bad : {"a/b", "", ".", ".."}) {
        auto r = evidence_log::open(_dir.path(), bad, 1000);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.message(), "evidence log: the base name '" + bad + "' is not a plain file name");
    }
    // "evidence.5.cbor" would be file 5 of "evidence" and the current file
    // of "evidence.5".
    auto numbered = evidence_log::open(_dir.path(), "evidence.5", 1000);
    ASSERT_FALSE(numbered);
    EXPECT_NE(numbered.message().find("the base name 'evidence.5' ends in .5, which reads as a rotated file's number "
                                      "of 'evidence'"),
              std::string::npos)
        << numbered.message();
    EXPECT_FALSE(list_log_files(_dir.path(), "evidence.5"));
    EXPECT_TRUE(evidence_log::open(_dir.path(), "evidence.v2", 1000)) << "a dot and more than digits is a name";
    auto empty_files = evidence_log::open(_dir.path(), "other", 0);
    ASSERT_FALSE(empty_files);
    EXPECT_EQ(empty_files.message(), "evidence log: max_file_bytes must be at least 1");
    // A log file that is not a file: a pipe would hold the open until a
    // writer came, and give octets without end; it is refused at once.
    const auto fifo = _dir.path() / "piped.cbor";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    auto piped = evidence_log::open(_dir.path(), "piped", 1000);
    ASSERT_FALSE(piped);
    EXPECT_EQ(piped.message(), "evidence log " + fifo.string() +
                                   ": not a regular file but a pipe, whose reading need not end (give a file: a "
                                   "copy of what it gives)");
    auto unlisted = list_log_files(_dir.path() / "missing", "evidence");
    ASSERT_FALSE(unlisted);
    EXPECT_EQ(unlisted.message().rfind("evidence log: cannot list " + (_dir.path() / "missing").string() + ": ", 0), 0U)
        << unlisted.message();
}

TEST_F(evidence_log_test, a_failed_write_is_repaired_by_rotation_not_truncation) {
    const auto records = make_records(4, 6);
    auto log = evidence_log::open(_dir.path(), "evidence", 1 << 20);
    ASSERT_TRUE(log) << log.message();
    ASSERT_TRUE((*log)->append(records[0]).ok());
    ASSERT_TRUE((*log)->append(records[1]).ok());
    const uint64_t before = (*log)->current_size();
    {
        // The disk "fills" 100 octets into the third record.
        test::file_size_limit limit(before + 100);
        auto failed = (*log)->append(records[2]);
        ASSERT_FALSE(failed);
        EXPECT_NE(failed.message().find("evidence.cbor"), std::string::npos) << failed.message();
        EXPECT_NE(failed.message().find("100 written"), std::string::npos) << failed.message();
    }
    EXPECT_EQ(fs::file_size(_dir.path() / "evidence.cbor"), before + 100);
    // The retry goes to a new file; the damaged one keeps its torn tail.
    ASSERT_TRUE((*log)->append(records[2]).ok());
    ASSERT_TRUE((*log)->append(records[3]).ok());
    EXPECT_EQ(fs::file_size(_dir.path() / "evidence.1.cbor"), before + 100);
    EXPECT_EQ(read_all("evidence", true), records);

    // Reopening finds the last record and nothing to repair in the current
    // file.
    log = error{"closed"};
    auto again = evidence_log::open(_dir.path(), "evidence", 1 << 20);
    ASSERT_TRUE(again) << again.message();
    EXPECT_TRUE((*again)->recovery_note().empty());
    ASSERT_TRUE((*again)->last_record());
    EXPECT_EQ((*again)->last_record()->payload.merkle_root, _previous);
}

} // namespace
} // namespace ptpsec::hsm
