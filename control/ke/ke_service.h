#pragma once

// The NTS-KE side of ptpsec-controld (seeds/001 §2.3, §3.1, §3.2): one PTP
// Key Request in, one PTP Key Response out, for the client whose TLS
// certificate the transport verified. Group-based mode: the group's current
// parameters (and, in the update period, the next) from the key schedule, to
// clients an authorization rule allows into the group. Everything refused
// is answered with the Error record of §4.2.5 and counted:
//
//   0 Unrecognized Critical Record, 1 Bad Request   the codec refused the request
//   3 Not Authorized   no rule admits the client to the group, or no such group
//                      is configured (the two look the same from outside, so
//                      that group numbers cannot be probed)
//   2 Internal Server Error   the key could not be made or saved
//   4 Grantor not Registered   a unicast (ticket-based) request: no grantor is
//                      registered with this server
//
// Service code: it allocates; the transport calls it once per message.

#include <control/ke/group_keys.h>
#include <control/nts/types.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ptpsec::ke {

/// Who is asking, from the client certificate the transport verified.
struct client_identity {
    std::string subject;           ///< as the transport prints it ("CN=node1,O=ptpsec")
    std::vector<std::string> sans; ///< "DNS:node1.example", "IP:10.0.0.1", "URI:..."
};

/// One authorization rule (seeds/001 §2.5.5.4): the certificates it matches
/// (by subject, by one subjectAltName, or both) and what they may do.
struct client_rule {
    std::string subject;             ///< exact; empty: any subject
    std::string san;                 ///< one of the certificate's SANs, exactly; empty: any
    std::vector<std::string> groups; ///< group names; "*" for every group
    bool grantor = false;            ///< may register as a grantor (ticket-based mode)
    bool transparent_clock = false;  ///< a transparent clock (§2.5.5.5), admitted to its groups as one
};

/// A rule must name a subject or a SAN and at least one group or the grantor
/// right; the message names the rule by its index.
status validate(const client_rule& r, size_t index);

class ke_service {
public:
    ke_service(key_schedule& keys, std::vector<client_rule> rules) : _keys(&keys), _rules(std::move(rules)) {}

    /// The response to one NTS-KE message.
    std::vector<uint8_t> handle_key_request(const client_identity& who, std::span<const uint8_t> request);

    /// Whether some rule admits `who` to the group named `group`.
    bool admits(const client_identity& who, const std::string& group) const;

    struct counters {
        uint64_t requests = 0;
        uint64_t granted = 0;
        uint64_t granted_with_next = 0;
        std::array<uint64_t, 5> refused{}; ///< by error code 0-4
    };
    const counters& stats() const noexcept { return _stats; }

private:
    std::vector<uint8_t> refuse(nts::error_code code);

    key_schedule* _keys;
    std::vector<client_rule> _rules;
    counters _stats;
};

} // namespace ptpsec::ke
