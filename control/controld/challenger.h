#pragma once

// The online Verifier's challenges ([verifier] challenge): every
// nonce-interval seconds, a fresh nonce from the Verifier's nonce book to
// each data plane named by its EAL file prefix, as an attest_nonce update on
// its SA channel (dataplane/sa_update_wire.h). The data plane's telemetry
// (/ptpsec/attest) says which signer_id it signs as; its acknowledgement is
// recorded in the book as a delivery to that signer, and the Verifier holds
// that signer's later batches to it (control/verifier/verifier.h,
// "Challenges").
//
// A data plane that is not running, or does not attest, is counted and
// tried again at the next interval; nothing else waits for it.

#include <control/verifier/verifier.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace ptpsec::controld {

class challenger {
public:
    challenger(std::vector<std::string> prefixes, std::chrono::seconds interval, verifier::nonce_book& book);

    /// Challenges every data plane if an interval has passed since the last
    /// round (the first round at once).
    void step();

    /// For `ptpsecctl status`: per data plane, the signer, the nonces given
    /// and acknowledged, the last error.
    nlohmann::ordered_json to_json() const;
    /// "challenges: N given, M acknowledged, F failed".
    std::string summary() const;

private:
    struct target {
        std::string prefix;
        std::string signer_id; ///< from its telemetry, at the last round
        uint64_t given = 0;
        uint64_t acknowledged = 0;
        uint64_t failed = 0;
        std::string last_nonce; ///< hex
        std::string last_error;
    };
    void challenge(target& t);

    std::vector<target> _targets;
    std::chrono::nanoseconds _interval;
    verifier::nonce_book& _book;
    int64_t _next_ns = 0;
};

} // namespace ptpsec::controld
