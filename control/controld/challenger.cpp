#include <control/controld/challenger.h>

#include <control/sa_client.h>
#include <control/telemetry_client.h>
#include <drivers/base/hex.h>

#include <fmt/format.h>

#include <ctime>

namespace ptpsec::controld {

namespace {

int64_t realtime_now_ns() {
    timespec ts{};
    (void)::clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

} // namespace

challenger::challenger(std::vector<std::string> prefixes, const std::map<std::string, std::string>& signers,
                       std::chrono::seconds interval, verifier::nonce_book& book)
    : _interval(interval), _book(book) {
    for (auto& p : prefixes) {
        target& t = _targets.emplace_back();
        if (const auto it = signers.find(p); it != signers.end()) {
            t.configured_signer = it->second;
        }
        t.prefix = std::move(p);
    }
}

void challenger::step() {
    const int64_t now_ns = realtime_now_ns();
    if (now_ns < _next_ns) {
        return;
    }
    for (target& t : _targets) {
        challenge(t);
    }
    _next_ns = now_ns + _interval.count();
}

void challenger::challenge(target& t) {
    auto fail = [&](std::string why) {
        ++t.failed;
        t.last_error = std::move(why);
    };
    // Which signer the data plane signs as: the deliveries are that signer's.
    // Its telemetry says so, unsigned; a configured signer overrides it.
    auto tel = telemetry_client::connect(t.prefix, std::chrono::seconds(1));
    if (!tel) {
        if (tel.err().no_process) {
            ++t.not_running;
            t.last_error = tel.message();
            return;
        }
        return fail(tel.message());
    }
    auto attest = tel->query("/ptpsec/attest");
    if (!attest) {
        return fail(attest.message());
    }
    const std::string signer = attest->value("signer_id", std::string());
    if (signer.empty()) {
        return fail(fmt::format("the data plane with file prefix {} does not attest (no signer_id on /ptpsec/attest)",
                                t.prefix));
    }
    t.signer_id = signer;
    std::string mismatch;
    if (!t.configured_signer.empty() && signer != t.configured_signer) {
        ++t.signer_mismatches;
        mismatch = fmt::format("the data plane with file prefix {} says it signs as \"{}\", but is configured as "
                               "\"{}\" (challenge-signers); challenged for \"{}\"",
                               t.prefix, signer, t.configured_signer, t.configured_signer);
    }
    const std::string& held = t.configured_signer.empty() ? signer : t.configured_signer;
    auto nonce = _book.issue(realtime_now_ns());
    if (!nonce) {
        return fail(nonce.message());
    }
    ++t.given;
    auto u = sa_client::attest_nonce(*nonce);
    if (!u) {
        return fail(u.message());
    }
    std::vector<sa_wire::update> updates{*u};
    auto sent = sa_client::send(t.prefix, updates, std::chrono::seconds(2));
    if (!sent) {
        return fail(sent.message());
    }
    if (!sent->at(0).applied) {
        return fail(fmt::format("the data plane refused the nonce: {}", sent->at(0).reason));
    }
    // Acknowledged now: batches the signer takes from here on carry it.
    if (auto d = _book.delivered(held, *nonce, realtime_now_ns()); !d) {
        return fail(d.message());
    }
    ++t.acknowledged;
    t.last_nonce = to_hex(*nonce);
    t.last_error = std::move(mismatch);
}

nlohmann::ordered_json challenger::to_json() const {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const target& t : _targets) {
        out.push_back({{"dataplane", t.prefix},
                       {"signer_id", t.signer_id},
                       {"configured_signer_id", t.configured_signer},
                       {"signer_mismatches", t.signer_mismatches},
                       {"nonces_given", t.given},
                       {"nonces_acknowledged", t.acknowledged},
                       {"failures", t.failed},
                       {"rounds_not_running", t.not_running},
                       {"last_nonce", t.last_nonce},
                       {"last_error", t.last_error}});
    }
    return out;
}

std::string challenger::summary() const {
    uint64_t given = 0;
    uint64_t acked = 0;
    uint64_t failed = 0;
    uint64_t mismatched = 0;
    uint64_t not_running = 0;
    for (const target& t : _targets) {
        given += t.given;
        acked += t.acknowledged;
        failed += t.failed;
        mismatched += t.signer_mismatches;
        not_running += t.not_running;
    }
    return fmt::format(
        "challenges: {} nonces given, {} acknowledged, {} failed{}{}", given, acked, failed,
        not_running == 0 ? std::string() : fmt::format(", {} round(s) with no data plane running", not_running),
        mismatched == 0 ? std::string()
                        : fmt::format(", {} signer mismatches (telemetry against challenge-signers)", mismatched));
}

} // namespace ptpsec::controld
