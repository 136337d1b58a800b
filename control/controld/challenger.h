#pragma once

// The online Verifier's challenges ([verifier] challenge): every
// nonce-interval seconds, a fresh nonce from the Verifier's nonce book to
// each data plane named by its EAL file prefix, as an attest_nonce update on
// its SA channel (dataplane/sa_update_wire.h). Its acknowledgement is
// recorded in the book as a delivery to the signer that data plane signs as,
// and the Verifier holds that signer's later batches to it
// (control/verifier/verifier.h, "Challenges"). Which signer: the one
// configured for the prefix ([verifier.challenge-signers]) when there is
// one, else the one its telemetry names (/ptpsec/attest). Telemetry is not
// signed: a data plane whose telemetry names another signer than the
// configured one is reported as a mismatch (and still challenged for the
// configured one), and a nonce that comes back in another signer's batch
// fails that batch (nonce_book::delivered_to).
//
// A data plane that is not running is counted apart (rounds_not_running):
// the challenge did not fail, there was nobody to give it to. One that runs
// but cannot be read, does not attest or refuses the nonce is a failed
// challenge. Either way it is tried again at the next interval; nothing
// else waits for it.

#include <control/verifier/verifier.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ptpsec::controld {

class challenger {
public:
    /// `signers`: prefix -> the signer_id its data plane is known to sign
    /// as; prefixes not in it are taken at their telemetry's word.
    challenger(std::vector<std::string> prefixes, const std::map<std::string, std::string>& signers,
               std::chrono::seconds interval, verifier::nonce_book& book);

    /// Challenges every data plane if an interval has passed since the last
    /// round (the first round at once).
    void step();

    /// For `ptpsecctl status`: per data plane, the signer, the nonces given
    /// and acknowledged, the last error.
    nlohmann::ordered_json to_json() const;
    /// "challenges: N nonces given, M acknowledged, F failed" (and the
    /// rounds without a data plane running, when there were any).
    std::string summary() const;

private:
    struct target {
        std::string prefix;
        std::string configured_signer; ///< empty: its telemetry's
        std::string signer_id;         ///< from its telemetry, at the last round
        uint64_t given = 0;
        uint64_t signer_mismatches = 0; ///< rounds whose telemetry named another signer than the configured one
        uint64_t acknowledged = 0;
        uint64_t failed = 0;
        uint64_t not_running = 0; ///< rounds when no data plane ran with the prefix
        std::string last_nonce;   ///< hex
        std::string last_error;
    };
    void challenge(target& t);

    std::vector<target> _targets;
    std::chrono::nanoseconds _interval;
    verifier::nonce_book& _book;
    int64_t _next_ns = 0;
};

} // namespace ptpsec::controld
