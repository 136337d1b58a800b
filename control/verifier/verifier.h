#pragma once

// The Verifier (BRIEF "Attestation"; docs/attestation.md "What a verifier
// checks"): checks an evidence log, batch by batch, against the Registrar,
// and records what it accepted and what it found in the audit store.
//
// For each batch record, in log order (hsm::read_log over the files in the
// order given, one stream):
//
//   check name            what fails it
//   ---------------------------------------------------------------------
//   corrupt record        the record does not decode (read_log stops there;
//   truncated record      a CBOR sequence cannot be resynchronised), or the
//                         log ends inside it; the next file is read on
//   unknown signer        signer_id is not enrolled
//   signer revoked        batch_time_ns is after the signer's revocation
//   algorithm             the token names another algorithm than enrolled
//   signature             the signature does not verify under the key
//   merkle root           the leaves do not hash to the signed root
//   claims                a leaf disagrees with the batch (event index set)
//   backend               backend/hardware_rooted differ from the enrolment
//   replayed batch        the counter was accepted before, same root
//   counter reused        the counter was accepted before with another root
//   reordered batch       the counter is at or below the last accepted
//                         one, and was never accepted
//   dropped batch         previous_root is not the last accepted root (a
//                         batch between them is missing, or came out of order)
//   chain                 the other chain rules (event indexes, missed count)
//   nonce mismatch        a nonce was expected and the batch carries another,
//                         none, or one that was not issued or has expired;
//                         with challenges (below), a batch that lacks the
//                         nonce its signer had been given before the batch
//   warnings: "not hardware-rooted" (a software signer's batch), "chain
//   anchor" (a chain first seen in the middle), "signed before revocation".
//
// Revocation: a batch whose signed batch_time_ns is at or before the
// revocation time is checked as usual and accepted with a warning ("signed
// before revocation"): evidence made while the key was trusted stays
// evidence. Its time is the signer's own claim, which a stolen key could
// backdate; what bounds that is the chain: a backdated batch must still carry
// a counter above, and name the root of, the last batch this Verifier accepted,
// so against an online Verifier (which saw the batches as they came) it can
// only be appended after the real ones, and is caught once the real signer
// signs again. Operators who distrust a key's whole past revoke it and read
// the audit rows it left (`batches`, with verified_at_ns).
//
// Continuing after a failure: a batch that is not authentic (unknown or
// revoked signer, signature, contents) or that goes backwards (replayed,
// reused, reordered) is reported and skipped; the chain stays at the last
// accepted batch. A batch that is authentic and moves forward but breaks a
// link (dropped batch, chain) or lacks freshness (nonce mismatch) is reported
// and still becomes the chain's new end (stored with chain "after-gap" or
// its failed checks as status), so that one missing batch is one failure,
// not a failure for every batch after it. A record that does not decode ends
// the file (the rest cannot be framed); the next file is read.
//
// Challenges (the online Verifier, [verifier] challenge): the Verifier
// gives each challenged data plane a fresh nonce every so often (an
// attest_nonce update on its SA channel); the data plane's signer puts the
// nonce it holds into every batch it signs (hsm/batcher.h). Once the data
// plane has acknowledged nonce N for signer S at time A, every batch of S
// with batch_time_ns at or after A was signed with N or a later nonce in it
// (the signer takes the nonce and the batch time together), so it must carry
// N or a nonce issued after N, issued by this Verifier no more than its ttl
// before batch_time_ns and not after it. A batch signed before the first
// delivery to its signer is not held to it (it may carry a nonce of an
// earlier Verifier run, or none). A signer whose data plane was never
// challenged is never held to it: the Verifier learns the signer_id a data
// plane signs under from that data plane's telemetry when it challenges it.
//
// State: the last accepted batch of every signer lives in the audit store
// (chain_state) and is read back on the first batch of that signer, so an
// online Verifier resumes where it stopped and a log replayed to it is caught
// ("replayed batch"). Without an audit store the state lives for one run.
//
// Control-side code: allocates, returns result<>, never throws.

#include <control/verifier/audit_store.h>
#include <control/verifier/registrar.h>
#include <drivers/base/result.h>
#include <hsm/evidence.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ptpsec::verifier {

/// The nonces this Verifier handed out for signers to put in their batches
/// (docs/attestation.md, payload key 13), each valid for `ttl` after it was
/// issued, and which signer's data plane took which nonce when (challenges,
/// above). It keeps the last `history` nonces issued and deliveries per
/// signer: with a nonce every second, over an hour of them.
class nonce_book {
public:
    static constexpr size_t history = 4096;

    /// A nonce a signer's data plane acknowledged.
    struct delivery {
        std::string nonce; ///< its octets
        int64_t issued_at_ns = 0;
        int64_t delivered_at_ns = 0; ///< when the acknowledgement came
    };

    explicit nonce_book(std::chrono::nanoseconds ttl) : _ttl(ttl) {}

    /// A fresh random nonce, recorded as issued at `now_ns`.
    result<std::vector<uint8_t>> issue(int64_t now_ns);
    /// Records a nonce issued elsewhere at `issued_at_ns`.
    void add(std::vector<uint8_t> nonce, int64_t issued_at_ns);
    /// ok when `nonce` was issued and `now_ns` is within its ttl; else why.
    status check(std::span<const uint8_t> nonce, int64_t now_ns) const;
    /// Forgets nonces past their ttl.
    void expire(int64_t now_ns);
    /// When `nonce` was issued; nullopt if it was not (or is forgotten).
    std::optional<int64_t> issued_at(std::span<const uint8_t> nonce) const;

    /// The data plane signing as `signer_id` acknowledged `nonce` (issued
    /// here) at `at_ns`. Refused when the nonce was not issued here.
    status delivered(const std::string& signer_id, std::span<const uint8_t> nonce, int64_t at_ns);
    /// The last nonce delivered to `signer_id` at or before `t_ns`; null if
    /// none.
    const delivery* delivered_before(const std::string& signer_id, int64_t t_ns) const;
    /// The signer `nonce` was delivered to; null when it was not delivered
    /// (or is forgotten).
    const std::string* delivered_to(std::span<const uint8_t> nonce) const;
    std::chrono::nanoseconds ttl() const noexcept { return _ttl; }

private:
    std::chrono::nanoseconds _ttl;
    /// By the nonce's octets as a string: std::vector<uint8_t> keys trip a
    /// GCC 12 -O3 false positive (-Wstringop-overread) in operator<.
    std::map<std::string, int64_t> _issued;
    std::vector<std::string> _issue_order;                    ///< oldest first, for the history bound
    std::map<std::string, std::vector<delivery>> _deliveries; ///< by signer, oldest first
    std::map<std::string, std::string> _delivered_to;         ///< nonce -> signer, for the nonces in _issued
    void remember(std::string nonce, int64_t issued_at_ns);
};

struct verifier_options {
    /// Every batch must carry exactly this nonce (`evidence verify --nonce`).
    std::optional<std::vector<uint8_t>> expected_nonce;
    /// Every batch must carry a nonce from this book that has not expired.
    const nonce_book* nonces = nullptr;
    /// The challenges of the online Verifier (above): batches are held to
    /// the nonces this book delivered to their signer.
    const nonce_book* challenges = nullptr;
    /// The Verifier's clock (CLOCK_REALTIME ns); tests set their own.
    std::function<int64_t()> now_ns;
};

/// One finding.
struct finding {
    std::string file;
    uint64_t offset = 0;                 ///< where the record starts in the file
    std::optional<uint64_t> batch_index; ///< the record's index in the file, 0-based
    std::string signer_id;
    std::optional<uint64_t> counter;
    std::optional<uint64_t> event_index;
    std::string check; ///< one of the names in the table above
    std::string message;
    bool warning = false;
};

/// What a signer's revocation says of one of its batches (the table
/// above): a batch that says it was signed after the revocation fails
/// ("signer revoked"); one signed before it passes with a warning ("signed
/// before revocation"), since its time is the signer's own claim. Nothing
/// for a signer that is not revoked. evidence verify and check-event judge
/// alike with it.
struct revocation_judgement {
    bool fails = false;
    std::string check;
    std::string message;
};
std::optional<revocation_judgement> judge_revocation(const signer_record& signer, uint64_t batch_time_ns);

struct verify_report {
    std::vector<finding> failures;
    std::vector<finding> warnings;
    uint64_t files = 0;
    uint64_t records = 0;          ///< records decoded
    uint64_t batches_accepted = 0; ///< that extended their signer's chain (some with failures)
    uint64_t batches_verified = 0; ///< that passed every check
    uint64_t events = 0;           ///< events in accepted batches
    /// Store errors: the run could not record what it found.
    std::vector<std::string> store_errors;

    bool ok() const noexcept { return failures.empty() && store_errors.empty(); }
};

class verifier {
public:
    /// `store` may be null (offline, state for one run).
    verifier(registrar& reg, audit_store* store, verifier_options options = {});

    /// Reads each file and verifies its records, in order, as one stream.
    /// A file that cannot be read is a finding ("cannot read").
    verify_report verify_files(std::span<const std::string> paths);
    /// One log's octets, `name` for the findings.
    void verify_log(std::string_view name, std::span<const uint8_t> log, verify_report& report);
    /// One record (for a streaming source: the online Verifier).
    void verify_record(std::string_view file, size_t batch_index, const hsm::log_entry& entry, verify_report& report);

private:
    struct signer_state {
        std::optional<signer_record> enrolment;
        bool loaded = false;
        std::optional<chain_state> chain;
        /// Accepted in this run (with a store, the store answers too).
        std::map<uint64_t, accepted_batch> accepted;
    };

    result<signer_state*> state_of(const std::string& signer_id);
    std::optional<accepted_batch> accepted_with_counter(const std::string& signer_id, signer_state& st,
                                                        uint64_t counter, verify_report& report);
    void add(verify_report& report, finding f);
    int64_t now() const;

    registrar& _registrar;
    audit_store* _store;
    verifier_options _options;
    std::map<std::string, signer_state> _signers;
};

} // namespace ptpsec::verifier
