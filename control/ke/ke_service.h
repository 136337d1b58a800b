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
// Platform attestation (BRIEF "Attestation", seeds/004): a rule with
// `attest = S` admits its certificates only when their PTP Key Request (or,
// for the grantor right, PTP Registration Request over NTS-TSR) carries a
// Platform Attestation record (nts/record.h) of TPM signer S that
// the configured platform_check accepts for this TLS session: a quote, made
// by the key the Registrar enrolled for S, of the PCR profile enrolled with
// it, whose qualifyingData is the session's exporter value. Keys then go
// only to a node whose platform is in the state it was enrolled in, over
// the session the quote was made for. Without it the request is Not
// Authorized, counted, and the reason kept (last_attestation_refusal).
// The quote is checked only for a client that such a rule matches.
//
// Service code: it allocates; the transport calls it once per message.

#include <control/ke/grantors.h>
#include <control/ke/group_keys.h>
#include <control/nts/record.h>
#include <control/nts/types.h>
#include <drivers/base/result.h>

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::ke {

/// Who is asking, from the client certificate the transport verified.
struct client_identity {
    std::string subject;           ///< as the transport prints it ("CN=node1,O=ptpsec")
    std::vector<std::string> sans; ///< "DNS:node1.example", "IP:10.0.0.1", "URI:..."
    /// The TLS session's exporter value (tls::peer::session_binding): what a
    /// Platform Attestation's quote must carry as qualifyingData.
    std::array<uint8_t, 32> session_binding{};
};

/// One authorization rule (seeds/001 §2.5.5.4): the certificates it matches
/// (by subject, by one subjectAltName, or both) and what they may do.
struct client_rule {
    std::string subject{};             ///< exact; empty: any subject
    std::string san{};                 ///< one of the certificate's SANs, exactly; empty: any
    std::vector<std::string> groups{}; ///< group names; "*" for every group
    bool grantor = false;              ///< may register as a grantor (ticket-based mode)
    bool transparent_clock = false;    ///< a transparent clock (§2.5.5.5), admitted to its groups as one
    bool unicast = false;              ///< may ask for unicast keys and tickets (ticket-based mode)
    /// Not empty: the rule admits only with a Platform Attestation of this
    /// TPM signer that platform_check accepts for the session (in the PTP
    /// Key Request, or the Registration Request for the grantor right).
    std::string attest{};
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

/// Checks a Platform Attestation for a session: that its quote is of the
/// Registrar's enrolled state for its signer, made by that signer's key, over
/// `session_binding`. The error says which check failed.
using platform_check =
    std::function<status(const nts::platform_attestation& a, std::span<const uint8_t> session_binding)>;

class ke_service {
public:
    /// `grantors` null: ticket-based mode is off.
    ke_service(key_schedule& keys, std::vector<client_rule> rules, grantor_registry* grantors = nullptr)
        : _keys(&keys), _rules(std::move(rules)), _grantors(grantors) {}

    /// Needed by rules with `attest` (validated by the caller): without it
    /// such rules admit nobody.
    void set_platform_check(platform_check check) { _platform_check = std::move(check); }

    /// The answer to one NTS-KE message: a PTP Key Response, the session
    /// kept open for the next request; or the Error record, after which the
    /// connection closes.
    answer handle_key_request(const client_identity& who, std::span<const uint8_t> request);

    /// The answer to one NTS-TSR message.
    answer handle_tsr(const client_identity& who, std::span<const uint8_t> request);

    /// Whether some rule admits `who` to the group named `group`; rules with
    /// `attest` only when `attested` (the signer whose Platform Attestation
    /// was accepted for the session) is theirs.
    bool admits(const client_identity& who, const std::string& group, std::string_view attested = {}) const;
    /// Whether some rule matching `who` sets `right` (&client_rule::grantor, ::unicast).
    bool allows(const client_identity& who, bool client_rule::*right, std::string_view attested = {}) const;
    /// Whether some rule whose certificate part matches `who` sets `right`,
    /// whatever its `attest`: what a Registration Revoke and a Heartbeat
    /// need, which carry no Platform Attestation (the registration they
    /// refer to was attested when the rule asks for it).
    bool certificate_allows(const client_identity& who, bool client_rule::*right) const;

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
        std::array<uint64_t, 5> refused{};  ///< by error code 0-4, both protocols
        uint64_t attestations_verified = 0; ///< Platform Attestations platform_check accepted
        uint64_t attestations_failed = 0;   ///< ... and refused
        /// Of refused[3]: requests a rule with `attest` would have admitted
        /// with a valid Platform Attestation of its signer.
        uint64_t refused_unattested = 0;
    };
    const counters& stats() const noexcept { return _stats; }
    /// Why the last refused_unattested request was refused: the client, the
    /// rule's signer, and what was missing or which check failed.
    const std::string& last_attestation_refusal() const noexcept { return _last_attestation_refusal; }

private:
    std::vector<uint8_t> key_response(const client_identity& who, std::span<const uint8_t> request);
    std::vector<uint8_t> refuse(nts::error_code code, nts::sub_protocol protocol = nts::sub_protocol::nts_ke);
    std::vector<uint8_t> unicast(const client_identity& who, const nts::key_request& req);
    /// The signer whose Platform Attestation `shown` platform_check accepts
    /// for `who`'s session ("" when none, or none was asked for), and why not.
    struct attestation_outcome {
        std::string signer;
        std::string problem;
    };
    attestation_outcome check_attestation(const client_identity& who,
                                          const std::optional<nts::platform_attestation>& shown);
    /// Not Authorized (in `protocol`); counted as refused_unattested, with
    /// its reason, when a rule with `attest` matching `who` would have given
    /// `may`.
    std::vector<uint8_t> refuse_unauthorized(const client_identity& who,
                                             const std::optional<nts::platform_attestation>& shown,
                                             const attestation_outcome& a,
                                             const std::function<bool(const client_rule&)>& may,
                                             nts::sub_protocol protocol = nts::sub_protocol::nts_ke);

    key_schedule* _keys;
    std::vector<client_rule> _rules;
    grantor_registry* _grantors;
    platform_check _platform_check;
    counters _stats;
    std::string _last_attestation_refusal;
};

} // namespace ptpsec::ke
