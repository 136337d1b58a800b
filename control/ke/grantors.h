#pragma once

// The KE server's ticket-based mode (seeds/001 §2.4, §3.3-§3.6, §4.2.1,
// §4.2.6, §4.2.14, §4.2.15): the registry of grantors, their ticket keys, and
// the unicast keys and tickets handed to requesters.
//
// A grantor registers (PTP Registration Request) with its PTP Time Server
// record (its PortIdentity and addresses), the AEAD algorithms it can open
// tickets with and the MAC algorithms it runs. It gets a ticket key for the
// current validity period, and, once that period's update period has begun,
// one for the next (Registration Response, Current/Next Parameters). A grantor
// renews by registering again inside the update period; one that does not is
// forgotten when its last ticket key's grace period ends.
//
// Validity periods: each grantor has its own chain, started at its first
// registration, with the lifetime, update period and grace period of the
// [unicast] policy. A unicast key lives exactly as long as the ticket key
// that seals it, and the registration as long as its ticket keys (§4.2.18:
// "MUST be identical").
//
// A requester's PTP Key Request names the grantor by IPv4, IPv6, 802.3 address
// or PortIdentity (§4.2.2). The answer carries, for the grantor's current
// period (and its next one when the grantor holds it):
//   * a fresh unicast key, its key ID from the server-wide key-ID counter (so
//     a key ID names one key in the whole network), on the server's one
//     unicast SPP (kept apart from every group's SPP, §5.3);
//   * the MAC algorithm: the first of the requester's list (HMAC-SHA256-128
//     when it sends none, §4.2.14) that the grantor runs and the policy allows;
//   * the grantor's PTP Time Server record;
//   * a ticket: that SA sealed under the grantor's ticket key (ticket_crypto.h)
//     for the requester's PortIdentity.
// Every request gets a new key: a requester that restarts starts afresh, with
// no replay window at the grantor left over from its previous life.
//
// Heartbeats (§4.2.6): with heartbeat-timeout set, the Registration Response
// asks for them; a heartbeat from a certificate that owns registrations
// restarts their countdown; heartbeats closer together than a quarter of the
// timeout are discarded, as are heartbeats nobody asked for; a grantor with no
// heartbeat for `missed_heartbeats` timeouts is dropped and must register
// again. A heartbeat from a certificate that owns no registration is answered
// with Grantor not Registered.
//
// Revoke (§3.5): the owner of a registration may end it; requesters then get
// Grantor not Registered for it.
//
// Persistence: registrations and ticket keys are written (and synced) before
// the response leaves, so a restarted server still opens nothing new but
// keeps sealing tickets the grantors can open. Unicast keys are not stored:
// a ticket carries its key to the grantor.
//
// Service code: it allocates and returns results; the caller serialises calls.

#include <control/ke/group_keys.h>
#include <control/nts/message.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ptpsec::ke {

/// What the administrator configures for ticket-based mode ([unicast]).
struct unicast_policy {
    bool enabled = false;
    uint32_t lifetime_s = 3600;
    uint32_t update_period_s = 300;
    uint32_t grace_period_s = 3;
    /// Heartbeat Timeout to ask for (§4.2.6); 0: none.
    uint16_t heartbeat_timeout_s = 0;
    /// Timeouts without a heartbeat before a grantor is dropped.
    uint32_t missed_heartbeats = 3;
    /// AEAD algorithms offered for ticket keys, in the server's preference.
    std::vector<nts::aead_algorithm> aead_algorithms{nts::all_aead_algorithms.begin(), nts::all_aead_algorithms.end()};
    /// MAC algorithms unicast keys may use (Table 26 numbers).
    std::vector<nts::mac_algorithm> mac_algorithms{nts::all_mac_algorithms.begin(), nts::all_mac_algorithms.end()};
};

/// Periods as for groups (1 <= update <= lifetime <= 388 days, grace <=
/// update), AES-SIV-CMAC-256 and HMAC-SHA256-128 among the algorithms (both
/// mandatory), no algorithm we cannot run, missed_heartbeats >= 1.
status validate(const unicast_policy& p);

/// One validity period of a grantor: its ticket key.
struct ticket_epoch {
    uint32_t ticket_key_id = 0;
    nts::aead_algorithm aead = nts::aead_algorithm::aes_siv_cmac_256;
    key_bytes key;
    int64_t start_ns = 0; ///< CLOCK_MONOTONIC (wall-clock in the store)
    uint32_t lifetime_s = 0;
    uint32_t update_period_s = 0;
    uint32_t grace_period_s = 0;

    int64_t end_ns() const noexcept { return start_ns + int64_t{lifetime_s} * 1'000'000'000LL; }
    int64_t retire_ns() const noexcept { return end_ns() + int64_t{grace_period_s} * 1'000'000'000LL; }
};

/// A PortIdentity as a map key.
using port_key = std::array<uint8_t, nts::port_identity_size>;
port_key key_of(const nts::port_identity& p) noexcept;
/// "0102030405060708-9".
std::string to_string(const nts::port_identity& p);

struct grantor_record {
    nts::port_identity id; ///< the PortIdentity of its PTP Time Server record
    std::string owner;     ///< subject of the certificate that registered it
    nts::ptp_time_server time_server;
    std::vector<nts::aead_algorithm> aead_algorithms; ///< the grantor's offer
    std::vector<nts::mac_algorithm> mac_algorithms;   ///< what it runs
    std::vector<ticket_epoch> epochs;                 ///< in time order
    int64_t heartbeat_ns = 0;                         ///< monotonic: registration or last accepted heartbeat
    uint64_t heartbeats = 0;                          ///< accepted since this server started
};

/// Where registrations survive restarts (store.h has the SQLite one).
class grantor_store {
public:
    virtual ~grantor_store() = default;
    struct saved {
        uint32_t last_ticket_key_id = 0;
        std::vector<grantor_record> grantors; ///< epoch starts wall-clock ns
    };
    virtual result<saved> load_grantors() = 0;
    /// The whole record (epoch starts wall-clock), replacing an earlier one,
    /// and the ticket-key-ID counter, durable before the response leaves.
    virtual status save_grantor(const grantor_record& g, uint32_t last_ticket_key_id) = 0;
    virtual status remove_grantor(const nts::port_identity& id) = 0;
};

/// The NTS error and, for the log, why.
using unicast_result = result<nts::key_grant, nts::parse_error>;
using registration_result = result<nts::registration_grant, nts::parse_error>;

class grantor_registry {
public:
    /// `keys` hands out key IDs and the unicast SPP; `store` may be null.
    static result<std::unique_ptr<grantor_registry>> create(unicast_policy policy, key_schedule& keys,
                                                            std::shared_ptr<grantor_store> store,
                                                            const clocks& clk = system_clocks());

    /// A PTP Registration Request from the certificate `owner` (already
    /// authorised as a grantor). Not Authorized when another certificate
    /// registered that PortIdentity or one of its addresses; Bad Request when
    /// no AEAD algorithm is common; Internal Server Error when the store fails.
    registration_result register_grantor(const std::string& owner, const nts::registration_request& req);

    enum class heartbeat_outcome { accepted, not_requested, too_frequent, not_registered };
    heartbeat_outcome heartbeat(const std::string& owner);

    enum class revoke_outcome { revoked, not_registered, not_owner };
    revoke_outcome revoke(const std::string& owner, const nts::port_identity& id);

    /// A unicast PTP Key Request (already authorised): Grantor not Registered
    /// when no registered grantor has that address; Bad Request when no MAC
    /// algorithm is common or the requester is the grantor itself.
    unicast_result grant(const nts::key_request& req);

    /// Drops grantors whose heartbeats stopped or whose last ticket key
    /// retired. Returns how many.
    size_t expire();

    uint8_t spp() const noexcept { return _spp; }
    const unicast_policy& policy() const noexcept { return _policy; }
    /// Live registrations, for the admin socket (expire() first).
    std::vector<const grantor_record*> grantors() const;
    const clocks& clock() const noexcept { return *_clk; }

    struct counters {
        uint64_t registrations = 0;
        uint64_t renewals = 0;
        uint64_t revoked = 0;
        uint64_t dropped_heartbeat = 0; ///< heartbeats stopped
        uint64_t dropped_expired = 0;   ///< not renewed
        uint64_t heartbeats = 0;
        uint64_t heartbeats_discarded = 0; ///< not requested or too frequent
        uint64_t unicast_keys = 0;
        uint64_t unicast_keys_with_next = 0;
    };
    const counters& stats() const noexcept { return _stats; }

private:
    grantor_registry(unicast_policy p, key_schedule& k, std::shared_ptr<grantor_store> s, const clocks& c)
        : _policy(std::move(p)), _keys(&k), _store(std::move(s)), _clk(&c) {}

    grantor_record* find(const nts::association_value& address);
    result<ticket_epoch> make_epoch(nts::aead_algorithm aead, int64_t start_ns);
    status save(const grantor_record& g);
    /// Current and, in the update period, next epoch; with `extend_with`
    /// (a registration) makes the ones missing under that AEAD algorithm.
    /// The caller saves.
    result<std::pair<const ticket_epoch*, const ticket_epoch*>>
    epochs_of(grantor_record& g, std::optional<nts::aead_algorithm> extend_with);
    void drop(std::map<port_key, grantor_record>::iterator it);

    unicast_policy _policy;
    key_schedule* _keys;
    std::shared_ptr<grantor_store> _store;
    const clocks* _clk;
    uint8_t _spp = 0;
    uint32_t _last_ticket_key_id = 0;
    std::map<port_key, grantor_record> _grantors;
    counters _stats;
};

} // namespace ptpsec::ke
