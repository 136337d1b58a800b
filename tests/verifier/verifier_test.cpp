// The Verifier on logs made by a real (software) signer: a clean log, and
// each kind of tampering detected with its own check name at the right
// record: flipped bytes (leaf, signature, payload, framing), truncation, a
// dropped, reordered or replayed batch, a whole log replayed to a Verifier
// that saw it, a counter reused, a revoked or unknown signer, a wrong or
// missing or expired nonce; and every prefix of a log read without a crash.

#include "../sanitized.h"
#include "helpers.h"

#include <control/verifier/audit_store.h>
#include <control/verifier/verifier.h>
#include <drivers/base/hex.h>

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>

namespace ptpsec::verifier {
namespace {

using namespace test;

class verifier_test : public ::testing::Test {
protected:
    void SetUp() override {
        _signer = software(_dir, "gm-a");
        ASSERT_NE(_signer, nullptr);
        _registrar = open_registrar(_dir);
        ASSERT_NE(_registrar, nullptr);
        enrol(*_registrar, *_signer, "gm-a");
    }

    std::vector<hsm::batch_record> batches(size_t n, size_t events = 3) {
        chain c(*_signer, "gm-a");
        std::vector<hsm::batch_record> out;
        for (size_t i = 0; i < n; ++i) {
            out.push_back(c.next(events));
        }
        return out;
    }

    verify_report verify(const std::vector<uint8_t>& log, audit_store* store = nullptr, verifier_options options = {}) {
        verifier v(*_registrar, store, std::move(options));
        verify_report r;
        v.verify_log("test.log", log, r);
        return r;
    }

    static std::vector<std::string> checks(const std::vector<finding>& fs) {
        std::vector<std::string> out;
        for (const auto& f : fs) {
            out.push_back(f.check);
        }
        return out;
    }

    temp_dir _dir;
    std::unique_ptr<hsm::software_signer> _signer;
    std::unique_ptr<registrar> _registrar;
};

TEST_F(verifier_test, a_clean_log_verifies_and_a_software_signer_is_flagged_on_every_batch) {
    const auto log = make_log(batches(4));
    const auto r = verify(log.bytes);
    EXPECT_TRUE(r.ok()) << (r.failures.empty() ? "" : r.failures[0].message);
    EXPECT_EQ(r.records, 4U);
    EXPECT_EQ(r.batches_accepted, 4U);
    EXPECT_EQ(r.batches_verified, 4U);
    EXPECT_EQ(r.events, 12U);
    ASSERT_EQ(r.warnings.size(), 4U);
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(r.warnings[i].check, "not hardware-rooted");
        EXPECT_EQ(r.warnings[i].offset, log.offsets[i]);
        EXPECT_EQ(r.warnings[i].counter, i + 1);
    }
}

TEST_F(verifier_test, a_counter_advanced_for_a_batch_that_was_never_signed_is_no_failure) {
    // The counter is advanced before each signature (a TPM NV increment, the
    // counter file fsynced): a crash or a failed signature between the two
    // leaves a counter no batch carries. The chain still holds, so the next
    // batch, two counters on, is accepted without a finding.
    chain c(*_signer, "gm-a");
    std::vector<hsm::batch_record> all{c.next(2)};
    auto lost = _signer->next_counter();
    ASSERT_TRUE(lost) << lost.message();
    all.push_back(c.next(2));
    EXPECT_EQ(all[0].payload.counter, 1U);
    EXPECT_EQ(all[1].payload.counter, 3U);
    const auto r = verify(make_log(all).bytes);
    EXPECT_TRUE(r.ok()) << (r.failures.empty() ? "" : r.failures[0].message);
    EXPECT_EQ(r.batches_accepted, 2U);
    EXPECT_EQ(checks(r.warnings), (std::vector<std::string>{"not hardware-rooted", "not hardware-rooted"}));
}

TEST_F(verifier_test, the_log_files_are_one_stream_in_the_order_given) {
    const auto all = batches(4);
    const auto first = make_log({all[0], all[1]});
    const auto second = make_log({all[2], all[3]});
    write_bytes(_dir.file("a.log"), first.bytes);
    write_bytes(_dir.file("b.log"), second.bytes);
    verifier v(*_registrar, nullptr);
    const std::vector<std::string> in_order{_dir.file("a.log"), _dir.file("b.log")};
    const auto r = v.verify_files(in_order);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.batches_verified, 4U);

    verifier w(*_registrar, nullptr);
    const std::vector<std::string> swapped{_dir.file("b.log"), _dir.file("a.log"), _dir.file("missing.log")};
    const auto bad = w.verify_files(swapped);
    // b.log first: a chain seen from its middle (anchor); then a.log goes
    // backwards; the missing file is named.
    EXPECT_EQ(checks(bad.failures), (std::vector<std::string>{"reordered batch", "reordered batch", "cannot read"}));
    EXPECT_EQ(bad.failures[0].file, _dir.file("a.log"));
    EXPECT_EQ(bad.failures[2].file, _dir.file("missing.log"));
    EXPECT_EQ(bad.failures[2].message,
              "evidence log " + _dir.file("missing.log") + ": cannot read it: No such file or directory");

    // A directory in the list is a file that cannot be read, not an
    // exception, and the files after it are still read.
    verifier d(*_registrar, nullptr);
    const std::vector<std::string> with_directory{_dir.file("a.log"), _dir.path().string(), _dir.file("b.log")};
    const auto dir_report = d.verify_files(with_directory);
    EXPECT_EQ(checks(dir_report.failures), std::vector<std::string>{"cannot read"});
    EXPECT_EQ(dir_report.failures.at(0).message,
              "evidence log " + _dir.path().string() + ": cannot read it: Is a directory");
    EXPECT_EQ(dir_report.batches_verified, 4U);

    // A device is refused before a byte of it is read (/dev/zero would
    // never end), and the files after it are still read.
    verifier z(*_registrar, nullptr);
    const std::vector<std::string> with_device{_dir.file("a.log"), "/dev/zero", _dir.file("b.log")};
    const auto device_report = z.verify_files(with_device);
    EXPECT_EQ(checks(device_report.failures), std::vector<std::string>{"cannot read"});
    EXPECT_EQ(device_report.failures.at(0).message,
              "evidence log /dev/zero: not a regular file but a character device, whose reading need not end (give "
              "a file: a copy of what it gives)");
    EXPECT_EQ(device_report.batches_verified, 4U);

    // A file larger than memory (a sparse one here) is a file that cannot
    // be read, not an exception that ends the run.
    if (ptpsec::test::a_huge_allocation_throws()) {
        const std::string sparse = _dir.file("sparse.log");
        ptpsec::test::write_file(sparse, "");
        if (::truncate(sparse.c_str(), off_t{1} << 40) == 0) {
            verifier m(*_registrar, nullptr);
            const std::vector<std::string> with_sparse{_dir.file("a.log"), sparse, _dir.file("b.log")};
            const auto sparse_report = m.verify_files(with_sparse);
            EXPECT_EQ(checks(sparse_report.failures), std::vector<std::string>{"cannot read"});
            EXPECT_EQ(sparse_report.failures.at(0).message,
                      "evidence log " + sparse + ": cannot read it: Cannot allocate memory");
            EXPECT_EQ(sparse_report.batches_verified, 4U);
        }
    }
}

TEST_F(verifier_test, a_flipped_byte_in_a_leaf_breaks_the_merkle_root_and_the_next_batch_follows_a_gap) {
    auto log = make_log(batches(3));
    // The last octet of batch 2's record is inside its last leaf (the
    // messageLength claim): still decodes, no longer hashes to the root.
    const size_t at = log.offsets[2] - 1;
    log.bytes[at] ^= 0x01;
    const auto r = verify(log.bytes);
    // Batch 2 is refused, so batch 3, which names its root, follows a gap.
    EXPECT_EQ(checks(r.failures), (std::vector<std::string>{"merkle root", "dropped batch"}));
    ASSERT_FALSE(r.failures.empty());
    const finding& f = r.failures[0];
    EXPECT_EQ(f.check, "merkle root");
    EXPECT_EQ(f.offset, log.offsets[1]);
    EXPECT_EQ(f.batch_index, 1U);
    EXPECT_EQ(f.counter, 2U);
    EXPECT_NE(f.message.find("Merkle root"), std::string::npos) << f.message;
    EXPECT_EQ(r.batches_accepted, 2U);
}

TEST_F(verifier_test, a_flipped_byte_in_a_leafs_digest_is_a_merkle_root_failure) {
    const auto all = batches(2);
    auto log = make_log(all);
    const auto& leaf = all[0].leaves[1];
    const auto it = std::search(log.bytes.begin(), log.bytes.end(), leaf.begin(), leaf.end());
    ASSERT_NE(it, log.bytes.end());
    // Claim 5 (event_digest) is 32 octets after "05 58 20".
    const std::array<uint8_t, 3> digest_head{0x05, 0x58, 0x20};
    const auto d = std::search(it, it + static_cast<long>(leaf.size()), digest_head.begin(), digest_head.end());
    ASSERT_NE(d, it + static_cast<long>(leaf.size()));
    *(d + 10) ^= 0x80;
    const auto r = verify(log.bytes);
    ASSERT_FALSE(r.failures.empty());
    EXPECT_EQ(r.failures[0].check, "merkle root");
    EXPECT_EQ(r.failures[0].counter, 1U);
    EXPECT_EQ(r.failures[0].offset, 0U);
}

TEST_F(verifier_test, a_flipped_byte_in_the_signature_or_the_payload_fails_the_signature) {
    const auto all = batches(2);
    {
        auto log = make_log(all);
        const auto& sig = all[1].token.signature;
        auto it = std::search(log.bytes.begin(), log.bytes.end(), sig.begin(), sig.end());
        ASSERT_NE(it, log.bytes.end());
        *(it + 5) ^= 0x04;
        const auto r = verify(log.bytes);
        ASSERT_EQ(r.failures.size(), 1U);
        EXPECT_EQ(r.failures[0].check, "signature");
        EXPECT_EQ(r.failures[0].counter, 2U);
        EXPECT_EQ(r.failures[0].batch_index, 1U);
        EXPECT_EQ(r.failures[0].offset, log.offsets[1]);
    }
    {
        auto log = make_log(all);
        // The payload's batch_time_ns (key 6, "06 1b" then 8 octets).
        const auto& payload = all[0].token.payload;
        auto it = std::search(log.bytes.begin(), log.bytes.end(), payload.begin(), payload.end());
        ASSERT_NE(it, log.bytes.end());
        const std::array<uint8_t, 2> time_head{0x06, 0x1b};
        auto t = std::search(it, it + static_cast<long>(payload.size()), time_head.begin(), time_head.end());
        ASSERT_NE(t, it + static_cast<long>(payload.size()));
        *(t + 9) ^= 0x01;
        const auto r = verify(log.bytes);
        ASSERT_FALSE(r.failures.empty());
        EXPECT_EQ(r.failures[0].check, "signature");
        EXPECT_EQ(r.failures[0].counter, 1U);
        EXPECT_EQ(r.failures[0].offset, 0U);
    }
}

TEST_F(verifier_test, a_flipped_framing_byte_is_a_corrupt_record_at_its_offset_and_the_rest_is_not_read) {
    auto log = make_log(batches(3));
    log.bytes[log.offsets[1]] = 0xff; // the record's map head
    const auto r = verify(log.bytes);
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_EQ(r.failures[0].check, "corrupt record");
    EXPECT_EQ(r.failures[0].offset, log.offsets[1]);
    EXPECT_EQ(r.failures[0].batch_index, 1U);
    EXPECT_EQ(r.batches_accepted, 1U);
}

TEST_F(verifier_test, a_truncated_log_is_reported_at_the_cut_record) {
    auto log = make_log(batches(3));
    log.bytes.resize(log.offsets[2] + 20);
    const auto r = verify(log.bytes);
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_EQ(r.failures[0].check, "truncated record");
    EXPECT_EQ(r.failures[0].offset, log.offsets[2]);
    EXPECT_EQ(r.failures[0].batch_index, 2U);
    EXPECT_NE(r.failures[0].message.find("20 octets after its start"), std::string::npos) << r.failures[0].message;
    EXPECT_EQ(r.batches_verified, 2U);
}

TEST_F(verifier_test, every_prefix_and_every_single_byte_flip_is_reported_without_a_crash) {
    const auto log = make_log(batches(2, 2));
    for (size_t n = 0; n < log.bytes.size(); ++n) {
        const std::vector<uint8_t> prefix(log.bytes.begin(), log.bytes.begin() + static_cast<long>(n));
        const auto r = verify(prefix);
        if (n == 0 || n == log.offsets[1]) {
            EXPECT_TRUE(r.ok()) << n;
            continue;
        }
        ASSERT_EQ(r.failures.size(), 1U) << n;
        EXPECT_EQ(r.failures[0].check, "truncated record") << n;
        EXPECT_EQ(r.failures[0].offset, n < log.offsets[1] ? 0U : log.offsets[1]) << n;
    }
    for (size_t at = 0; at < log.bytes.size(); at += 3) {
        auto flipped = log.bytes;
        flipped[at] ^= 0x20;
        const auto r = verify(flipped);
        EXPECT_FALSE(r.ok()) << "a flip at " << at << " went unnoticed";
    }
}

TEST_F(verifier_test, a_dropped_batch_is_one_failure_and_the_chain_continues_after_it) {
    auto all = batches(4);
    all.erase(all.begin() + 1);
    const auto log = make_log(all);
    const auto r = verify(log.bytes);
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_EQ(r.failures[0].check, "dropped batch");
    EXPECT_EQ(r.failures[0].counter, 3U);
    EXPECT_EQ(r.failures[0].batch_index, 1U);
    EXPECT_NE(r.failures[0].message.find("between counters 1 and 3"), std::string::npos) << r.failures[0].message;
    EXPECT_EQ(r.batches_accepted, 3U);
    EXPECT_EQ(r.batches_verified, 2U);
}

// A batch after a gap cannot be linked to the last accepted one, but its
// event indexes are still checked against it: a signer that numbers events
// again from an earlier index is caught there too.
TEST_F(verifier_test, a_batch_after_a_gap_whose_event_indexes_go_back_fails_the_chain) {
    chain c(*_signer, "gm-a");
    std::vector<hsm::batch_record> all{c.next(3), c.next(3)}; // indexes 0..2, 3..5
    c.set_next_index(1);
    all.push_back(c.next(3)); // 1..3, after 3..5
    all.push_back(c.next(3)); // 4..6: linked to the one before
    all.erase(all.begin() + 1);
    const auto r = verify(make_log(all).bytes);
    EXPECT_EQ(checks(r.failures), (std::vector<std::string>{"dropped batch", "chain"}));
    ASSERT_EQ(r.failures.size(), 2U);
    EXPECT_EQ(r.failures[1].counter, 3U);
    EXPECT_NE(r.failures[1].message.find("starts at event 1, not after 2, the last of batch 1"), std::string::npos)
        << r.failures[1].message;
    EXPECT_EQ(r.batches_accepted, 3U);
    EXPECT_EQ(r.batches_verified, 2U);
}

TEST_F(verifier_test, reordered_batches_show_as_a_gap_then_a_batch_out_of_order) {
    auto all = batches(4);
    std::swap(all[1], all[2]); // 1, 3, 2, 4
    const auto log = make_log(all);
    const auto r = verify(log.bytes);
    ASSERT_EQ(r.failures.size(), 2U);
    EXPECT_EQ(r.failures[0].check, "dropped batch");
    EXPECT_EQ(r.failures[0].counter, 3U);
    EXPECT_EQ(r.failures[1].check, "reordered batch");
    EXPECT_EQ(r.failures[1].counter, 2U);
    EXPECT_EQ(r.failures[1].batch_index, 2U);
    EXPECT_NE(r.failures[1].message.find("after counter 3"), std::string::npos) << r.failures[1].message;
    EXPECT_EQ(r.batches_accepted, 3U); // 1, 3, 4: 4 names 3's root
}

TEST_F(verifier_test, an_old_record_appended_again_is_a_replayed_batch) {
    auto all = batches(3);
    all.push_back(all[0]);
    const auto log = make_log(all);
    const auto r = verify(log.bytes);
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_EQ(r.failures[0].check, "replayed batch");
    EXPECT_EQ(r.failures[0].counter, 1U);
    EXPECT_EQ(r.failures[0].offset, log.offsets[3]);
    EXPECT_NE(r.failures[0].message.find("offset 0"), std::string::npos) << r.failures[0].message;
}

// After a failed write the evidence log rotates and may repeat the last
// record at the start of the next file (hsm/evidence_log.h): a warning, counted
// once. The same repeat anywhere else is a replayed batch.
TEST_F(verifier_test, the_last_record_repeated_at_the_start_of_the_next_file_is_a_duplicate_not_a_replay) {
    const auto all = batches(3);
    write_bytes(_dir.file("evidence.1.cbor"), make_log({all[0], all[1]}).bytes);
    write_bytes(_dir.file("evidence.cbor"), make_log({all[1], all[2]}).bytes);
    verifier v(*_registrar, nullptr);
    const std::vector<std::string> files{_dir.file("evidence.1.cbor"), _dir.file("evidence.cbor")};
    const auto r = v.verify_files(files);
    EXPECT_TRUE(r.ok()) << (r.failures.empty() ? "" : r.failures[0].message);
    EXPECT_EQ(r.batches_accepted, 3U);
    EXPECT_EQ(r.events, 9U) << "the repeated batch is counted once";
    std::vector<std::string> dups;
    for (const auto& w : r.warnings) {
        if (w.check == "duplicate record") {
            dups.push_back(w.file);
        }
    }
    EXPECT_EQ(dups, std::vector<std::string>{_dir.file("evidence.cbor")});

    // Not at a file boundary: a replay.
    verifier w(*_registrar, nullptr);
    verify_report in_one;
    w.verify_log("one.log", make_log({all[0], all[1], all[1], all[2]}).bytes, in_one);
    EXPECT_EQ(checks(in_one.failures), std::vector<std::string>{"replayed batch"});
}

TEST_F(verifier_test, a_whole_log_replayed_to_a_verifier_that_saw_it_is_caught_through_the_audit_store) {
    auto store = audit_store::open("sqlite:" + _dir.file("audit.db"));
    ASSERT_TRUE(store) << store.message();
    const auto log = make_log(batches(3));
    const auto first = verify(log.bytes, store->get());
    EXPECT_TRUE(first.ok());
    // A restarted Verifier on the same store: the state came from the store.
    const auto again = verify(log.bytes, store->get());
    EXPECT_EQ(checks(again.failures), (std::vector<std::string>{"replayed batch", "replayed batch", "replayed batch"}));
    EXPECT_EQ(again.batches_accepted, 0U);
    // And the store reopened, as an online Verifier after a restart.
    store->reset();
    auto reopened = audit_store::open("sqlite:" + _dir.file("audit.db"));
    ASSERT_TRUE(reopened);
    const auto third = verify(log.bytes, reopened->get());
    EXPECT_EQ(third.failures.size(), 3U);
    auto rows = (*reopened)->failures();
    ASSERT_TRUE(rows);
    EXPECT_EQ(std::count_if(rows->begin(), rows->end(), [](const failure_row& f) { return !f.warning; }), 6);
}

TEST_F(verifier_test, a_counter_used_twice_for_different_batches_is_named) {
    chain c(*_signer, "gm-a");
    std::vector<hsm::batch_record> all{c.next(2), c.next(2)};
    // Roll the counter file back: the signer signs counter 2 again, over
    // other events.
    ptpsec::test::write_file(_dir.file("gm-a.counter"), "1\n");
    all.push_back(c.next(2));
    ASSERT_EQ(all[2].payload.counter, 2U);
    const auto r = verify(make_log(all).bytes);
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_EQ(r.failures[0].check, "counter reused");
    EXPECT_EQ(r.failures[0].batch_index, 2U);
}

TEST_F(verifier_test, a_revoked_signer_is_refused_after_its_revocation_and_warned_about_before) {
    const auto all = batches(4);
    // Revoked between batch 2 and batch 3 (the batch times are the signer's).
    const int64_t revoked_at = static_cast<int64_t>(all[1].payload.batch_time_ns + 1);
    ASSERT_TRUE(_registrar->revoke("gm-a", "key compromised", revoked_at));
    const auto log = make_log(all);
    const auto r = verify(log.bytes);
    EXPECT_EQ(checks(r.failures), (std::vector<std::string>{"signer revoked", "signer revoked"}));
    EXPECT_EQ(r.failures[0].counter, 3U);
    EXPECT_NE(r.failures[0].message.find("key compromised"), std::string::npos);
    EXPECT_EQ(r.batches_accepted, 2U);
    EXPECT_EQ(std::count_if(r.warnings.begin(), r.warnings.end(),
                            [](const finding& f) { return f.check == "signed before revocation"; }),
              2);
}

TEST_F(verifier_test, an_unknown_signer_is_refused) {
    auto other = software(_dir, "rogue");
    chain c(*other, "rogue");
    const auto log = make_log({c.next(2), c.next(2)});
    const auto r = verify(log.bytes);
    EXPECT_EQ(checks(r.failures), (std::vector<std::string>{"unknown signer", "unknown signer"}));
    EXPECT_EQ(r.failures[0].signer_id, "rogue");
}

TEST_F(verifier_test, a_key_other_than_the_enrolled_one_fails_the_signature_or_the_algorithm) {
    auto impostor = software(_dir, "impostor");
    chain c(*impostor, "gm-a");
    const auto r = verify(make_log({c.next(2)}).bytes);
    EXPECT_EQ(checks(r.failures), (std::vector<std::string>{"signature"}));

    auto es256 = software(_dir, "impostor-es256", hsm::signature_algorithm::es256);
    chain e(*es256, "gm-a");
    const auto a = verify(make_log({e.next(2)}).bytes);
    EXPECT_EQ(checks(a.failures), (std::vector<std::string>{"algorithm"}));
}

/// MOCK, for a fault the real signers cannot make: the enrolled software
/// key, in a signer that claims to be a TPM (a host passing software keys
/// off as hardware). Everything but info() is the real software signer's.
class disguised_signer final : public hsm::signer {
public:
    explicit disguised_signer(hsm::signer& real) : _real(real), _info(real.info()) {
        _info.kind = hsm::backend_kind::tpm;
        _info.hardware_rooted = true;
    }
    const hsm::signer_info& info() const noexcept override { return _info; }
    result<uint64_t> next_counter() override { return _real.next_counter(); }
    result<uint64_t> read_counter() override { return _real.read_counter(); }
    result<std::vector<uint8_t>> sign(std::span<const uint8_t> message) override { return _real.sign(message); }

private:
    hsm::signer& _real;
    hsm::signer_info _info;
};

TEST_F(verifier_test, a_software_key_whose_batches_claim_a_tpm_fails_the_backend_check) {
    disguised_signer disguised(*_signer);
    chain c(disguised, "gm-a");
    const auto log = make_log({c.next(2), c.next(2)});
    const auto r = verify(log.bytes);
    ASSERT_EQ(checks(r.failures), (std::vector<std::string>{"backend", "backend"}));
    EXPECT_NE(r.failures[0].message.find("the batch says backend tpm (hardware-rooted) but signer \"gm-a\" is "
                                         "enrolled as software"),
              std::string::npos)
        << r.failures[0].message;
    EXPECT_EQ(r.failures[0].offset, log.offsets[0]);
    EXPECT_EQ(r.batches_verified, 0U);
}

TEST_F(verifier_test, a_leaf_that_disagrees_with_its_batch_names_the_event) {
    // A batch whose signed payload and root are right but whose second leaf
    // claims another counter (the signer's own inconsistency).
    chain c(*_signer, "gm-a");
    auto good = c.next(3);
    auto claims = hsm::decode_claims(good.leaves[1]);
    ASSERT_TRUE(claims);
    claims->monotonic_counter = 99;
    good.leaves[1] = *hsm::encode_claims(*claims);
    hsm::batch_payload p = good.payload;
    p.merkle_root = *hsm::merkle_tree_hash(good.leaves);
    const auto payload = *hsm::encode_batch_payload(p);
    const std::vector<uint8_t> kid(p.signer_id.begin(), p.signer_id.end());
    good.token = *hsm::sign_cose_sign1(*_signer, kid, payload);
    good.payload = p;
    const auto r = verify(make_log({good}).bytes);
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_EQ(r.failures[0].check, "claims");
    EXPECT_EQ(r.failures[0].event_index, 1U);
    EXPECT_NE(r.failures[0].message.find("leaf 1"), std::string::npos) << r.failures[0].message;
}

TEST_F(verifier_test, a_chain_seen_from_its_middle_is_anchored_with_a_warning) {
    const auto all = batches(3);
    const auto r = verify(make_log({all[1], all[2]}).bytes);
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.batches_verified, 2U);
    EXPECT_EQ(r.warnings[0].check, "not hardware-rooted");
    EXPECT_EQ(r.warnings[1].check, "chain anchor");
    EXPECT_EQ(r.warnings[1].counter, 2U);
}

TEST_F(verifier_test, a_wrong_or_missing_nonce_is_a_nonce_mismatch) {
    const std::vector<uint8_t> issued(16, 0xa5);
    const std::vector<uint8_t> other(16, 0x5a);
    chain c(*_signer, "gm-a");
    const auto log = make_log({c.next(2, issued), c.next(2, other), c.next(2)});
    verifier_options o;
    o.expected_nonce = issued;
    const auto r = verify(log.bytes, nullptr, o);
    EXPECT_EQ(checks(r.failures), (std::vector<std::string>{"nonce mismatch", "nonce mismatch"}));
    EXPECT_EQ(r.failures[0].counter, 2U);
    EXPECT_NE(r.failures[0].message.find("not the expected"), std::string::npos) << r.failures[0].message;
    EXPECT_EQ(r.failures[1].counter, 3U);
    EXPECT_NE(r.failures[1].message.find("carries no nonce"), std::string::npos) << r.failures[1].message;
    // Freshness failures do not break the chain: all three joined it.
    EXPECT_EQ(r.batches_accepted, 3U);
    EXPECT_EQ(r.batches_verified, 1U);
}

TEST_F(verifier_test, issued_nonces_are_accepted_within_their_lifetime_only) {
    nonce_book book(std::chrono::seconds(10));
    const int64_t t0 = 1'000'000'000'000;
    auto fresh = book.issue(t0);
    ASSERT_TRUE(fresh);
    const std::vector<uint8_t> foreign(16, 0x11);
    chain c(*_signer, "gm-a");
    const auto log = make_log({c.next(2, *fresh), c.next(2, foreign)});
    int64_t now = t0 + 5'000'000'000;
    verifier_options o;
    o.nonces = &book;
    o.now_ns = [&] { return now; };
    const auto r = verify(log.bytes, nullptr, o);
    ASSERT_EQ(r.failures.size(), 1U);
    EXPECT_EQ(r.failures[0].check, "nonce mismatch");
    EXPECT_NE(r.failures[0].message.find("was not issued"), std::string::npos) << r.failures[0].message;

    now = t0 + 11'000'000'000;
    const auto late = verify(make_log({c.next(1, *fresh)}).bytes, nullptr, o);
    ASSERT_FALSE(late.failures.empty());
    EXPECT_NE(late.failures.back().message.find("lifetime"), std::string::npos) << late.failures.back().message;
    book.expire(now);
    EXPECT_FALSE(book.check(*fresh, t0));
}

TEST_F(verifier_test, a_challenged_signer_must_carry_the_nonce_it_was_given_or_a_later_one) {
    // Times in the batches' clock: the chain helper closes batch k at
    // base_time_ns + (1000 + 2k + 2) * 125 ms when each has 2 events.
    nonce_book book(std::chrono::seconds(30));
    const auto at = [](uint64_t ms) { return static_cast<int64_t>(base_time_ns + ms * 1'000'000); };
    auto n1 = book.issue(at(125'000));
    auto n2 = book.issue(at(126'000));
    ASSERT_TRUE(n1 && n2);
    const std::vector<uint8_t> foreign(16, 0x11);
    // n1 delivered to gm-a at 125.3 s, n2 at 126.1 s; gm-b never challenged.
    ASSERT_TRUE(book.delivered("gm-a", *n1, at(125'300)));
    ASSERT_TRUE(book.delivered("gm-a", *n2, at(126'100)));
    EXPECT_FALSE(book.delivered("gm-a", foreign, at(126'200))) << "only nonces issued here are delivered";

    chain a(*_signer, "gm-a");
    std::vector<hsm::batch_record> all;
    all.push_back(a.next(2));                                      // 1: 125.25 s, before any delivery: free
    all.push_back(a.next(2, *n1));                                 // 2: 125.5 s, n1: ok
    all.push_back(a.next(2));                                      // 3: 125.75 s, none though n1 was given
    all.push_back(a.next(2, foreign));                             // 4: 126.0 s, a nonce not issued here
    all.push_back(a.next(2, *n1));                                 // 5: 126.25 s, n1 though n2 was given at 126.1 s
    all.push_back(a.next(2, *n2));                                 // 6: 126.5 s, n2: ok
    all.push_back(a.next(2, *n2, base_time_ns + 157'000'000'000)); // 7: 157 s, n2 31 s old: expired
    const auto signer_b = software(_dir, "gm-b");
    ASSERT_NE(signer_b, nullptr);
    enrol(*_registrar, *signer_b, "gm-b");
    chain b(*signer_b, "gm-b");
    const auto other = b.next(2, foreign); // never challenged: not held to the book

    verifier_options o;
    o.challenges = &book;
    const auto r = verify(make_log(all).bytes, nullptr, o);
    ASSERT_EQ(checks(r.failures), (std::vector<std::string>(4, "nonce mismatch")));
    EXPECT_EQ(r.failures[0].counter, 3U);
    EXPECT_NE(r.failures[0].message.find("carries no nonce, but nonce"), std::string::npos) << r.failures[0].message;
    EXPECT_EQ(r.failures[1].counter, 4U);
    EXPECT_NE(r.failures[1].message.find("which this Verifier did not issue"), std::string::npos)
        << r.failures[1].message;
    EXPECT_EQ(r.failures[2].counter, 5U);
    EXPECT_NE(r.failures[2].message.find("older than the one it should"), std::string::npos) << r.failures[2].message;
    EXPECT_EQ(r.failures[3].counter, 7U);
    EXPECT_NE(r.failures[3].message.find("more than its lifetime"), std::string::npos) << r.failures[3].message;
    EXPECT_EQ(r.batches_accepted, 7U) << "freshness failures do not break the chain";

    const auto unchallenged = verify(make_log({other}).bytes, nullptr, o);
    EXPECT_TRUE(unchallenged.failures.empty()) << checks(unchallenged.failures).front();

    // A batch that claims a time long before its nonce was issued.
    chain c(*_signer, "gm-a");
    const auto backdated = verify(make_log({c.next(2, *n2, base_time_ns + 100'000'000'000)}).bytes, nullptr, o);
    ASSERT_EQ(backdated.failures.size(), 1U);
    EXPECT_NE(backdated.failures[0].message.find("backdated"), std::string::npos) << backdated.failures[0].message;
    // The edge: a batch time up to 1 s before the nonce's issue (clocks a
    // little apart) is taken, more than that is not. n2 was issued at 126 s.
    chain d(*_signer, "gm-a");
    EXPECT_TRUE(verify(make_log({d.next(2, *n2, base_time_ns + 125'100'000'000)}).bytes, nullptr, o).failures.empty())
        << "0.9 s before the issue";
    chain e(*_signer, "gm-a");
    const auto early = verify(make_log({e.next(2, *n2, base_time_ns + 124'900'000'000)}).bytes, nullptr, o);
    ASSERT_EQ(checks(early.failures), (std::vector<std::string>{"nonce mismatch"})) << "1.1 s before the issue";
    EXPECT_NE(early.failures[0].message.find("backdated"), std::string::npos) << early.failures[0].message;
}

TEST_F(verifier_test, a_nonce_given_for_one_signer_that_comes_back_in_another_signers_batch_fails_it) {
    // The data plane challenged as "gm-x" (its telemetry said so, or the
    // configuration did) signs as gm-a: gm-a's batches carry gm-x's nonce.
    nonce_book book(std::chrono::seconds(30));
    const auto at = [](uint64_t ms) { return static_cast<int64_t>(base_time_ns + ms * 1'000'000); };
    auto n = book.issue(at(125'000));
    ASSERT_TRUE(n);
    EXPECT_EQ(book.delivered_to(*n), nullptr) << "issued, not yet delivered";
    ASSERT_TRUE(book.delivered("gm-x", *n, at(125'100)));
    ASSERT_NE(book.delivered_to(*n), nullptr);
    EXPECT_EQ(*book.delivered_to(*n), "gm-x");

    chain a(*_signer, "gm-a");
    verifier_options o;
    o.challenges = &book;
    const auto r = verify(make_log({a.next(2), a.next(2, *n)}).bytes, nullptr, o);
    ASSERT_EQ(checks(r.failures), std::vector<std::string>{"nonce mismatch"});
    EXPECT_EQ(r.failures[0].counter, 2U);
    EXPECT_NE(r.failures[0].message.find("batch 2 of \"gm-a\" carries nonce " + to_hex(*n) +
                                         ", which this Verifier gave to the data plane of \"gm-x\": that data plane "
                                         "signs as \"gm-a\""),
              std::string::npos)
        << r.failures[0].message;
    EXPECT_EQ(r.batches_accepted, 2U);

    // The same nonce in gm-x's own batch passes.
    const auto signer_x = software(_dir, "gm-x");
    ASSERT_NE(signer_x, nullptr);
    enrol(*_registrar, *signer_x, "gm-x");
    chain x(*signer_x, "gm-x");
    const auto own = verify(make_log({x.next(2, *n), x.next(2, *n)}).bytes, nullptr, o);
    EXPECT_TRUE(own.failures.empty()) << checks(own.failures).front();

    // Forgotten with the nonce once it expires.
    book.expire(at(125'000) + std::chrono::nanoseconds(std::chrono::seconds(31)).count());
    EXPECT_EQ(book.delivered_to(*n), nullptr);
}

} // namespace
} // namespace ptpsec::verifier
