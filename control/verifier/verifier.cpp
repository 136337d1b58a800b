#include <control/verifier/verifier.h>

#include <drivers/base/file.h>
#include <drivers/base/hex.h>

#include <hsm/cose.h>
#include <hsm/merkle.h>

#include <fmt/format.h>
#include <openssl/rand.h>

namespace ptpsec::verifier {

namespace {

std::string hex(std::span<const uint8_t> b) {
    return to_hex(b);
}

/// A short form of a root for messages: its first eight octets.
std::string short_hex(std::span<const uint8_t> b) {
    return hex(b.first(std::min<size_t>(8, b.size())));
}

/// The first leaf that disagrees with the payload (the checks of
/// docs/attestation.md step 7 and the batch's index rules), so that a
/// finding can name its event; nullopt when every leaf agrees.
std::optional<uint64_t> first_inconsistent_event(const hsm::batch_record& r) {
    const hsm::batch_payload& p = r.payload;
    uint64_t previous = 0;
    for (size_t i = 0; i < r.leaves.size(); ++i) {
        auto c = hsm::decode_claims(r.leaves[i]);
        if (!c) {
            return std::nullopt;
        }
        const bool bad = c->version != hsm::evidence_version || c->monotonic_counter != p.counter ||
                         c->signer_id != p.signer_id || c->nonce != p.nonce || c->event_index < p.first_event_index ||
                         c->event_index > p.last_event_index || (i == 0 && c->event_index != p.first_event_index) ||
                         (i > 0 && c->event_index <= previous) ||
                         (i + 1 == r.leaves.size() && c->event_index != p.last_event_index);
        if (bad) {
            return c->event_index;
        }
        previous = c->event_index;
    }
    return std::nullopt;
}

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) {
        if (!s.empty()) {
            s += ", ";
        }
        s += x;
    }
    return s;
}

/// The challenge rule of the header: what `p` must carry given what the
/// book delivered to its signer before its batch time.
status check_challenge(const nonce_book& book, const hsm::batch_payload& p) {
    const auto t = static_cast<int64_t>(p.batch_time_ns);
    const nonce_book::delivery* given = book.delivered_before(p.signer_id, t);
    const auto given_text = [&] {
        return fmt::format("nonce {} was in the data plane of \"{}\" from {} ms before the batch's time",
                           hex(std::span(reinterpret_cast<const uint8_t*>(given->nonce.data()), given->nonce.size())),
                           p.signer_id, (t - given->delivered_at_ns) / 1'000'000);
    };
    if (!p.nonce) {
        if (given == nullptr) {
            return ok_status(); // signed before this Verifier challenged its signer
        }
        return error{fmt::format("batch {} carries no nonce, but {}", p.counter, given_text())};
    }
    const auto issued = book.issued_at(*p.nonce);
    if (!issued) {
        if (given == nullptr) {
            return ok_status(); // a nonce of another Verifier (run), before this one challenged the signer
        }
        return error{fmt::format("batch {} carries nonce {}, which this Verifier did not issue, but {}", p.counter,
                                 hex(*p.nonce), given_text())};
    }
    constexpr int64_t clock_slack_ns = 1'000'000'000; // the signer's clock against ours
    if (t + clock_slack_ns < *issued) {
        return error{fmt::format("batch {} claims a time {} ms before its nonce {} was issued (backdated?)", p.counter,
                                 (*issued - t) / 1'000'000, hex(*p.nonce))};
    }
    if (auto s = book.check(*p.nonce, t); !s) {
        return error{fmt::format("batch {}: {} at the batch's time", p.counter, s.message())};
    }
    // Each nonce goes to one data plane, for the signer it signs as: the
    // nonce in another signer's batch shows that data plane signs as that
    // other signer.
    if (const std::string* to = book.delivered_to(*p.nonce); to != nullptr && *to != p.signer_id) {
        return error{fmt::format("batch {} of \"{}\" carries nonce {}, which this Verifier gave to the data plane of "
                                 "\"{}\": that data plane signs as \"{}\" (its telemetry or challenge-signers "
                                 "names the wrong signer)",
                                 p.counter, p.signer_id, hex(*p.nonce), *to, p.signer_id)};
    }
    if (given != nullptr && *issued < given->issued_at_ns) {
        return error{fmt::format("batch {} carries nonce {}, older than the one it should: {}", p.counter,
                                 hex(*p.nonce), given_text())};
    }
    return ok_status();
}

} // namespace

// ---------------------------------------------------------------------------
// nonce_book

void nonce_book::remember(std::string nonce, int64_t issued_at_ns) {
    if (_issued.insert_or_assign(nonce, issued_at_ns).second) {
        _issue_order.push_back(std::move(nonce));
    }
    if (_issue_order.size() > history) {
        _issued.erase(_issue_order.front());
        _delivered_to.erase(_issue_order.front());
        _issue_order.erase(_issue_order.begin());
    }
}

result<std::vector<uint8_t>> nonce_book::issue(int64_t now_ns) {
    std::vector<uint8_t> n(32);
    if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1) {
        return error{"the random generator failed to make a nonce"};
    }
    remember(std::string(n.begin(), n.end()), now_ns);
    return n;
}

void nonce_book::add(std::vector<uint8_t> nonce, int64_t issued_at_ns) {
    remember(std::string(nonce.begin(), nonce.end()), issued_at_ns);
}

status nonce_book::check(std::span<const uint8_t> nonce, int64_t now_ns) const {
    const auto it = _issued.find(std::string(nonce.begin(), nonce.end()));
    if (it == _issued.end()) {
        return error{fmt::format("nonce {} was not issued by this Verifier", hex(nonce))};
    }
    const int64_t age = now_ns - it->second;
    if (age > _ttl.count()) {
        return error{fmt::format("nonce {} was issued {} ms ago, more than its lifetime of {} ms", hex(nonce),
                                 age / 1'000'000, _ttl.count() / 1'000'000)};
    }
    return ok_status();
}

void nonce_book::expire(int64_t now_ns) {
    std::erase_if(_issued, [&](const auto& kv) { return now_ns - kv.second > _ttl.count(); });
    std::erase_if(_delivered_to, [&](const auto& kv) { return !_issued.contains(kv.first); });
    std::erase_if(_issue_order, [&](const std::string& n) { return !_issued.contains(n); });
}

std::optional<int64_t> nonce_book::issued_at(std::span<const uint8_t> nonce) const {
    const auto it = _issued.find(std::string(nonce.begin(), nonce.end()));
    return it == _issued.end() ? std::nullopt : std::optional<int64_t>(it->second);
}

status nonce_book::delivered(const std::string& signer_id, std::span<const uint8_t> nonce, int64_t at_ns) {
    const auto issued = issued_at(nonce);
    if (!issued) {
        return error{fmt::format("nonce {} was not issued by this Verifier", hex(nonce))};
    }
    auto& list = _deliveries[signer_id];
    list.push_back({std::string(nonce.begin(), nonce.end()), *issued, at_ns});
    _delivered_to[list.back().nonce] = signer_id;
    if (list.size() > history) {
        list.erase(list.begin());
    }
    return ok_status();
}

const std::string* nonce_book::delivered_to(std::span<const uint8_t> nonce) const {
    const auto it = _delivered_to.find(std::string(nonce.begin(), nonce.end()));
    return it == _delivered_to.end() ? nullptr : &it->second;
}

const nonce_book::delivery* nonce_book::delivered_before(const std::string& signer_id, int64_t t_ns) const {
    const auto it = _deliveries.find(signer_id);
    if (it == _deliveries.end()) {
        return nullptr;
    }
    const delivery* last = nullptr;
    for (const delivery& d : it->second) {
        if (d.delivered_at_ns > t_ns) {
            break;
        }
        last = &d;
    }
    return last;
}

// ---------------------------------------------------------------------------
// verifier

verifier::verifier(registrar& reg, audit_store* store, verifier_options options)
    : _registrar(reg), _store(store), _options(std::move(options)) {}

int64_t verifier::now() const {
    if (_options.now_ns) {
        return _options.now_ns();
    }
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void verifier::add(verify_report& report, finding f) {
    if (_store != nullptr) {
        failure_row row{f.file,        f.offset, f.batch_index, f.signer_id, f.counter,
                        f.event_index, f.check,  f.message,     f.warning,   now()};
        if (auto s = _store->record_failure(row); !s) {
            report.store_errors.push_back(s.message());
        }
    }
    (f.warning ? report.warnings : report.failures).push_back(std::move(f));
}

result<verifier::signer_state*> verifier::state_of(const std::string& signer_id) {
    signer_state& st = _signers[signer_id];
    if (!st.loaded) {
        PTPSEC_TRY(enrolment, _registrar.lookup(signer_id));
        st.enrolment = std::move(*enrolment);
        if (_store != nullptr) {
            PTPSEC_TRY(chain, _store->chain_state_of(signer_id));
            st.chain = std::move(*chain);
        }
        st.loaded = true;
    }
    return &st;
}

std::optional<accepted_batch> verifier::accepted_with_counter(const std::string& signer_id, signer_state& st,
                                                              uint64_t counter, verify_report& report) {
    if (const auto it = st.accepted.find(counter); it != st.accepted.end()) {
        return it->second;
    }
    if (_store != nullptr) {
        auto found = _store->find_batch(signer_id, counter);
        if (!found) {
            report.store_errors.push_back(found.message());
            return std::nullopt;
        }
        return *found;
    }
    return std::nullopt;
}

std::optional<revocation_judgement> judge_revocation(const signer_record& signer, uint64_t batch_time_ns) {
    if (!signer.revoked_at_ns) {
        return std::nullopt;
    }
    if (batch_time_ns > static_cast<uint64_t>(std::max<int64_t>(0, *signer.revoked_at_ns))) {
        return revocation_judgement{true, "signer revoked",
                                    fmt::format("signer \"{}\" was revoked at {} ns ({}); this batch was signed at {} "
                                                "ns, after that",
                                                signer.signer_id, *signer.revoked_at_ns, signer.revocation_reason,
                                                batch_time_ns)};
    }
    return revocation_judgement{false, "signed before revocation",
                                fmt::format("signer \"{}\" was revoked at {} ns ({}); this batch says it was signed "
                                            "at {} ns, before that (the signer's own clock)",
                                            signer.signer_id, *signer.revoked_at_ns, signer.revocation_reason,
                                            batch_time_ns)};
}

verify_report verifier::verify_files(std::span<const std::string> paths) {
    verify_report report;
    for (const std::string& path : paths) {
        ++report.files;
        auto bytes = read_regular_file("evidence log", path);
        if (!bytes) {
            add(report,
                finding{path, 0, std::nullopt, {}, std::nullopt, std::nullopt, "cannot read", bytes.message(), false});
            continue;
        }
        verify_log(path, *bytes, report);
    }
    return report;
}

void verifier::verify_log(std::string_view name, std::span<const uint8_t> log, verify_report& report) {
    const hsm::log_contents contents = hsm::read_log(log);
    for (size_t i = 0; i < contents.records.size(); ++i) {
        ++report.records;
        verify_record(name, i, contents.records[i], report);
    }
    if (contents.problem) {
        const auto& p = *contents.problem;
        const uint64_t start =
            contents.records.empty() ? 0 : contents.records.back().offset + contents.records.back().length;
        finding f;
        f.file = std::string(name);
        f.offset = start;
        f.batch_index = contents.records.size();
        f.check = p.truncated ? "truncated record" : "corrupt record";
        f.message = p.truncated ? fmt::format("{} (the log ends inside this record, {} octets after its start: a "
                                              "write that did not finish, or a cut log)",
                                              p.message, log.size() - start)
                                : fmt::format("{}; the rest of this file ({} octets) cannot be framed and is not "
                                              "checked",
                                              p.message, log.size() - start);
        add(report, std::move(f));
    }
}

void verifier::verify_record(std::string_view file, size_t batch_index, const hsm::log_entry& entry,
                             verify_report& report) {
    const hsm::batch_record& rec = entry.record;
    const hsm::batch_payload& p = rec.payload;
    auto make = [&](std::string check, std::string message, std::optional<uint64_t> event_index = std::nullopt,
                    bool warning = false) {
        return finding{std::string(file), entry.offset,     batch_index,        p.signer_id, p.counter,
                       event_index,       std::move(check), std::move(message), warning};
    };
    auto fail = [&](std::string check, std::string message, std::optional<uint64_t> event_index = std::nullopt) {
        add(report, make(std::move(check), std::move(message), event_index));
    };
    auto warn = [&](std::string check, std::string message) {
        add(report, make(std::move(check), std::move(message), std::nullopt, true));
    };

    auto state = state_of(p.signer_id);
    if (!state) {
        report.store_errors.push_back(state.message());
        return;
    }
    signer_state& st = **state;

    // 8. Registered, not revoked, the registered key and algorithm.
    if (!st.enrolment) {
        fail("unknown signer", fmt::format("signer \"{}\" is not enrolled in the registrar", p.signer_id));
        return;
    }
    const signer_record& reg = *st.enrolment;
    const auto revocation = judge_revocation(reg, p.batch_time_ns);
    if (revocation && revocation->fails) {
        fail(revocation->check, revocation->message);
        return;
    }
    if (rec.token.algorithm != reg.algorithm) {
        fail("algorithm", fmt::format("the token names {} but signer \"{}\" is enrolled with {}",
                                      algorithm_name(rec.token.algorithm), p.signer_id, algorithm_name(reg.algorithm)));
        return;
    }
    if (auto s = hsm::verify_cose_sign1(rec.token, reg.algorithm, reg.public_key_der); !s) {
        fail("signature", fmt::format("the batch token does not verify under the enrolled key of \"{}\": {}",
                                      p.signer_id, s.message()));
        return;
    }
    // The signature verified over the token whose payload is p.
    auto claims = hsm::check_batch_leaves(rec, p);
    if (!claims) {
        auto root = hsm::merkle_tree_hash(rec.leaves);
        if (!root || *root != p.merkle_root) {
            fail("merkle root", claims.message());
        } else {
            fail("claims", claims.message(), first_inconsistent_event(rec));
        }
        return;
    }
    if (p.backend != reg.backend || p.hardware_rooted != reg.hardware_rooted) {
        fail("backend",
             fmt::format("the batch says backend {}{} but signer \"{}\" is enrolled as {}{}", hsm::to_string(p.backend),
                         p.hardware_rooted ? " (hardware-rooted)" : "", p.signer_id, hsm::to_string(reg.backend),
                         reg.hardware_rooted ? " (hardware-rooted)" : ""));
        return;
    }

    // 9, 10. The chain.
    std::vector<std::string> failed;
    std::string chain;
    if (st.chain && p.counter <= st.chain->counter) {
        const auto before = accepted_with_counter(p.signer_id, st, p.counter, report);
        // Another place: another path, or the same path at another offset
        // (the current file, started again after the rotation that moved
        // the copy read before to NAME.N.cbor).
        if (before && before->merkle_root == p.merkle_root && p.counter == st.chain->counter && batch_index == 0 &&
            (before->log_file != file || before->log_offset != entry.offset)) {
            // The log repeats the last record of a file at the start of the
            // next when a write or fdatasync failed after the record may
            // already have been on disk (hsm/evidence_log.h): the same
            // batch, byte for byte; counted once.
            warn("duplicate record", fmt::format("counter {} of \"{}\" is the last batch of {} again, at the start of "
                                                 "the next file (the log repeated it after a failed write)",
                                                 p.counter, p.signer_id, before->log_file));
            return;
        }
        if (before && before->merkle_root == p.merkle_root) {
            fail("replayed batch", fmt::format("counter {} of \"{}\" was accepted before ({} offset {}); this is "
                                               "the same batch again",
                                               p.counter, p.signer_id, before->log_file, before->log_offset));
        } else if (before) {
            fail("counter reused",
                 fmt::format("counter {} of \"{}\" was accepted before with Merkle root {}, this batch has {}: "
                             "two different batches under one counter",
                             p.counter, p.signer_id, short_hex(before->merkle_root), short_hex(p.merkle_root)));
        } else {
            fail("reordered batch", fmt::format("counter {} of \"{}\" comes after counter {}, the last accepted: "
                                                "out of order",
                                                p.counter, p.signer_id, st.chain->counter));
        }
        return;
    }
    // Warnings only for batches that go on: a replayed copy is one failure.
    if (revocation) {
        warn(revocation->check, revocation->message);
    }
    if (!p.hardware_rooted) {
        warn("not hardware-rooted", fmt::format("signer \"{}\" signs with a {} key: its batches are not "
                                                "hardware-rooted",
                                                p.signer_id, hsm::to_string(p.backend)));
    }
    if (!st.chain) {
        if (p.previous_root == hsm::first_batch_previous_root) {
            chain = "first";
            if (auto s = hsm::check_chain(nullptr, p); !s) {
                fail("chain", s.message());
                failed.emplace_back("chain");
            }
        } else {
            chain = "anchor";
            warn("chain anchor", fmt::format("the first batch of \"{}\" this Verifier sees is counter {}, which "
                                             "continues an earlier chain: the batches before it were not checked "
                                             "here",
                                             p.signer_id, p.counter));
        }
    } else {
        hsm::batch_payload previous;
        previous.signer_id = p.signer_id;
        previous.counter = st.chain->counter;
        previous.merkle_root = st.chain->merkle_root;
        previous.last_event_index = st.chain->last_event_index;
        if (p.previous_root != st.chain->merkle_root) {
            chain = "after-gap";
            fail("dropped batch",
                 fmt::format("batch {} of \"{}\" names previous root {}, not {} of batch {} (the last accepted): a "
                             "batch between counters {} and {} is missing, or batches are out of order",
                             p.counter, p.signer_id, short_hex(p.previous_root), short_hex(st.chain->merkle_root),
                             st.chain->counter, st.chain->counter, p.counter));
            failed.emplace_back("dropped batch");
            if (auto s = hsm::check_chain_after_gap(previous, p); !s) {
                fail("chain", s.message());
                failed.emplace_back("chain");
            }
        } else {
            chain = "linked";
            if (auto s = hsm::check_chain(&previous, p); !s) {
                fail("chain", s.message());
                failed.emplace_back("chain");
            }
        }
    }

    // Freshness: the nonce the Verifier gave (payload key 13).
    const int64_t verified_at = now();
    if (_options.expected_nonce) {
        if (!p.nonce) {
            fail("nonce mismatch",
                 fmt::format("batch {} carries no nonce; expected {}", p.counter, hex(*_options.expected_nonce)));
            failed.emplace_back("nonce mismatch");
        } else if (*p.nonce != *_options.expected_nonce) {
            fail("nonce mismatch", fmt::format("batch {} carries nonce {}, not the expected {}", p.counter,
                                               hex(*p.nonce), hex(*_options.expected_nonce)));
            failed.emplace_back("nonce mismatch");
        }
    } else if (_options.nonces != nullptr) {
        if (!p.nonce) {
            fail("nonce mismatch",
                 fmt::format("batch {} carries no nonce; one issued by this Verifier is required", p.counter));
            failed.emplace_back("nonce mismatch");
        } else if (auto s = _options.nonces->check(*p.nonce, verified_at); !s) {
            fail("nonce mismatch", fmt::format("batch {}: {}", p.counter, s.message()));
            failed.emplace_back("nonce mismatch");
        }
    } else if (_options.challenges != nullptr) {
        if (auto s = check_challenge(*_options.challenges, p); !s) {
            fail("nonce mismatch", s.message());
            failed.emplace_back("nonce mismatch");
        }
    }

    // Accepted: the chain moves on to it.
    batch_row row;
    row.signer_id = p.signer_id;
    row.counter = p.counter;
    row.batch_time_ns = p.batch_time_ns;
    row.merkle_root = p.merkle_root;
    row.previous_root = p.previous_root;
    row.event_count = p.event_count;
    row.first_event_index = p.first_event_index;
    row.last_event_index = p.last_event_index;
    row.missed_events = p.missed_events;
    row.backend = p.backend;
    row.hardware_rooted = p.hardware_rooted;
    row.nonce = p.nonce;
    row.chain = chain;
    row.status = failed.empty() ? "verified" : join(failed);
    row.verified_at_ns = verified_at;
    row.log_file = std::string(file);
    row.log_offset = entry.offset;
    if (_store != nullptr) {
        std::vector<event_row> events;
        events.reserve(claims->size());
        for (const auto& c : *claims) {
            events.push_back(event_row_of(c));
        }
        if (auto s = _store->record_batch(row, events); !s) {
            report.store_errors.push_back(s.message());
        }
    }
    st.chain = chain_state{p.signer_id, p.counter, p.merkle_root, p.last_event_index, p.batch_time_ns};
    st.accepted[p.counter] = accepted_batch{p.merkle_root, std::string(file), entry.offset, verified_at};
    ++report.batches_accepted;
    if (failed.empty()) {
        ++report.batches_verified;
    }
    report.events += p.event_count;
}

} // namespace ptpsec::verifier
