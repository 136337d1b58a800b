#pragma once

// The request handlers of ptpsec-controld's KE server role, for the client
// whose TLS certificate the transport verified (seeds/001 §2.3, §2.4, §3):
//
// NTS-KE (ntske/1): one PTP Key Request in, one PTP Key Response out.
//   Group-based mode: the group's current parameters (and, in the update
//   period, the next) from the key schedule, to clients a rule admits to the
//   group. Ticket-based mode: a unicast key and ticket for a registered
//   grantor (grantors.h), to clients a rule gives `unicast`.
// NTS-TSR (ntstsr/1): Registration Request -> Registration Response, for
//   clients a rule gives `grantor`; Registration Revoke and Heartbeat, which
//   have no response of their own (§3.5, §3.6) unless refused.
//
// Everything refused is answered with the Error record of §4.2.5 (then the
// connection closes) and counted:
//
//   0 Unrecognized Critical Record, 1 Bad Request   the codec refused the
//                      request, or no MAC/AEAD algorithm is common
//   3 Not Authorized   no rule admits the client to the group, or no such group
//                      is configured (the two look the same from outside, so
//                      that group numbers cannot be probed); no rule gives the
//                      grantor or unicast right; a revoke of another
//                      certificate's registration
//   2 Internal Server Error   the key could not be made or saved
//   4 Grantor not Registered   a unicast request naming no registered
//                      grantor (or ticket-based mode is off); a heartbeat or
//                      revoke from a certificate that registered nothing
//
// Service code: it allocates; the transport calls it once per message.

#include <control/ke/grantors.h>
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
    bool unicast = false;            ///< may ask for unicast keys and tickets (ticket-based mode)
};

/// A rule must name a subject or a SAN and at least one group, the grantor
/// right or the unicast right; a transparent clock is not a time source, so
/// it never has the grantor right. The message names the rule by its index.
status validate(const client_rule& r, size_t index);

/// What to send back for one message, and whether to close afterwards.
struct answer {
    std::vector<uint8_t> message; ///< empty: nothing
    bool close = false;
};

class ke_service {
public:
    /// `grantors` null: ticket-based mode is off.
    ke_service(key_schedule& keys, std::vector<client_rule> rules, grantor_registry* grantors = nullptr)
        : _keys(&keys), _rules(std::move(rules)), _grantors(grantors) {}

    /// The response to one NTS-KE message.
    std::vector<uint8_t> handle_key_request(const client_identity& who, std::span<const uint8_t> request);

    /// The answer to one NTS-TSR message.
    answer handle_tsr(const client_identity& who, std::span<const uint8_t> request);

    /// Whether some rule admits `who` to the group named `group`.
    bool admits(const client_identity& who, const std::string& group) const;
    /// Whether some rule matching `who` sets `right` (&client_rule::grantor, ::unicast).
    bool allows(const client_identity& who, bool client_rule::*right) const;

    struct counters {
        uint64_t requests = 0;
        uint64_t granted = 0;
        uint64_t granted_with_next = 0;
        uint64_t granted_to_transparent_clocks = 0; ///< of `granted`: to certificates of transparent-clock rules
        uint64_t unicast_granted = 0;
        uint64_t tsr_requests = 0;
        uint64_t registrations = 0;
        uint64_t revokes = 0;
        uint64_t heartbeats = 0;
        uint64_t heartbeats_discarded = 0;
        std::array<uint64_t, 5> refused{}; ///< by error code 0-4, both protocols
    };
    const counters& stats() const noexcept { return _stats; }

private:
    std::vector<uint8_t> refuse(nts::error_code code, nts::sub_protocol protocol = nts::sub_protocol::nts_ke);
    std::vector<uint8_t> unicast(const client_identity& who, const nts::key_request& req);

    key_schedule* _keys;
    std::vector<client_rule> _rules;
    grantor_registry* _grantors;
    counters _stats;
};

} // namespace ptpsec::ke
