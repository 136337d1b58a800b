#pragma once

// The grantor side of ticket-based mode in the node role (seeds/001 §2.4,
// §3.3-§3.6, §6): register with the KE server over NTS-TSR, hold the ticket
// keys it hands out, send heartbeats when asked, and open the tickets that
// requesters send with their unicast requests.
//
//   * register: a PTP Registration Request with this grantor's PTP Time
//     Server record (PortIdentity and addresses), AEAD and MAC algorithms;
//     the response's ticket keys are held with their deadlines on
//     CLOCK_MONOTONIC. Renewed at a random point of the update period, as
//     group keys are, so that the next ticket key is held before it is
//     needed; on failure retried with the node's backoff and jitter.
//   * heartbeat: when the response asked for them, one every half timeout,
//     each (as each registration) on a TLS session of its own, closed after
//     it: minutes apart, a session kept open would have met the server's
//     idle timeout.
//   * tickets: open_request() takes a unicast request the data plane handed
//     over (its TICKET TLV and the frame's sourcePortIdentity), opens the
//     ticket with the ticket key it names, checks that the ticket was issued
//     to that sourcePortIdentity and for the SPP and key ID the frame's
//     AUTHENTICATION TLV names, and refuses a request seen before (the
//     ticket's nonce with the frame's sequenceId, kept until the ticket key's
//     grace period ends: §5.1). What it returns is the unicast SA to install.
//
// The TICKET TLV's value is the NTS Ticket record (seeds/001 §6 Table 29:
// record header and body), followed by one zero octet when the record's
// length is odd, since a PTP TLV's length is even (IEEE 1588-2019 §14.1).

#include <control/ke/group_keys.h>
#include <control/nts/message.h>
#include <control/tls/client.h>
#include <drivers/base/result.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace ptpsec::node {

struct grantor_settings {
    /// PortIdentity first, then the addresses requesters may name it by.
    nts::ptp_time_server time_server;
    std::vector<nts::aead_algorithm> aead_algorithms{nts::all_aead_algorithms.begin(), nts::all_aead_algorithms.end()};
    std::vector<nts::mac_algorithm> mac_algorithms{nts::all_mac_algorithms.begin(), nts::all_mac_algorithms.end()};
    /// When set, the grantor's platform state quoted by its TPM for each
    /// TLS session (the node's [node.attestation], node::
    /// attestation_settings::quote), sent in its PTP Registration Request
    /// for a KE server whose rule asks `attest` of it.
    std::function<result<nts::platform_attestation>(std::span<const uint8_t> session_binding)> quote{};
};

struct ticket_key {
    uint32_t id = 0;
    nts::aead_algorithm aead = nts::aead_algorithm::aes_siv_cmac_256;
    std::vector<uint8_t> key;
    int64_t start_ns = 0;
    int64_t end_ns = 0;
    int64_t retire_ns = 0;
    uint32_t update_period_s = 0;
};

struct grantor_counters {
    uint64_t registrations = 0;
    uint64_t registration_failures = 0;
    uint64_t heartbeats_sent = 0;
    uint64_t tickets_opened = 0;
    uint64_t tickets_refused = 0;  ///< unknown ticket key, bad tag, wrong requester/SPP/key ID
    uint64_t replays_refused = 0;  ///< a request seen before
    uint64_t quotes = 0;           ///< Platform Attestations made for registrations (one per TLS session)
    uint64_t sessions = 0;         ///< TLS sessions with the KE server (one per registration or heartbeat)
    uint64_t sessions_resumed = 0; ///< of those, resumed from the previous one's ticket (seeds/001 §2.1)
};

/// A unicast request as the data plane handed it over.
struct unicast_request {
    std::span<const uint8_t> ticket_tlv_value;
    nts::port_identity source_port_identity;
    uint16_t sequence_id = 0;
    uint8_t spp = 0;     ///< of the AUTHENTICATION TLV
    uint32_t key_id = 0; ///< of the AUTHENTICATION TLV
};

/// The unicast SA a ticket carried, and how long the data plane may keep it.
struct opened_ticket {
    nts::security_association sa;
    int64_t retire_ns = 0; ///< the ticket key's grace period end
};

class grantor {
public:
    grantor(grantor_settings s, std::string server_host, uint16_t server_port, tls::client_config tls,
            std::chrono::milliseconds retry_min, std::chrono::milliseconds retry_max, uint64_t seed);

    /// Registers, renews and sends heartbeats as due at `now_ns`
    /// (CLOCK_MONOTONIC). Returns when it next has something to do.
    int64_t step(int64_t now_ns);

    result<opened_ticket> open_request(const unicast_request& req, int64_t now_ns);

    const std::vector<ticket_key>& keys() const noexcept { return _keys; }
    std::optional<uint16_t> heartbeat_timeout() const noexcept { return _heartbeat_timeout; }
    const grantor_counters& stats() const noexcept { return _stats; }
    /// Accepted unicast requests held against replays (each until its
    /// ticket key's grace period ends).
    size_t requests_remembered() const noexcept { return _seen.size(); }
    const std::string& last_error() const noexcept { return _last_error; }
    int64_t next_registration_ns() const noexcept { return _next_register_ns; }
    const grantor_settings& config() const noexcept { return _s; }

private:
    status register_now(int64_t now);
    void schedule(int64_t now);
    void fail(int64_t now, std::string why);
    status ensure_connected();
    /// Closes the session; keeps its ticket for the next one, or forgets
    /// any ticket (after a failure).
    void end_session(bool keep_ticket);

    grantor_settings _s;
    std::string _host;
    uint16_t _port;
    tls::client_config _tls;
    std::chrono::milliseconds _retry_min;
    std::chrono::milliseconds _retry_max;
    std::mt19937_64 _rng;
    std::optional<tls::client> _client;
    /// The KE server's ticket from the last session, offered on the next.
    tls::session_ticket _ticket;
    std::vector<ticket_key> _keys; ///< in start order
    std::optional<uint16_t> _heartbeat_timeout;
    int64_t _next_register_ns = 0;
    int64_t _next_heartbeat_ns = 0;
    std::chrono::milliseconds _backoff{0};
    std::string _last_error;
    /// Requests accepted: ticket nonce and sequenceId (its two octets after
    /// the nonce) -> when to forget.
    std::map<std::string, int64_t> _seen;
    grantor_counters _stats;
};

/// The TICKET TLV value for a ticket (the NTS record, padded to even length).
std::vector<uint8_t> ticket_tlv_value(const nts::ticket& t);

/// The ticket in a TICKET TLV value: a Ticket record (type 1034, either
/// critical bit), its body exactly as long as its header says, then nothing
/// or, when the record's length is odd, one zero octet. Errors name what is
/// wrong.
result<nts::ticket> parse_ticket_tlv(std::span<const uint8_t> value);

} // namespace ptpsec::node
