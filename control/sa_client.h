#pragma once

// The control side of the SA channel (dataplane/sa_channel.h): send updates
// to a running ptpsec-dataplane and wait for each acknowledgement. Used by
// `ptpsecctl sa push|current|remove|flush` and, later, by ptpsec-controld.

#include <dataplane/sa.h>
#include <dataplane/sa_update_wire.h>
#include <drivers/base/result.h>

#include <chrono>
#include <span>
#include <string>
#include <vector>

namespace ptpsec::sa_client {

/// What the data plane said about one update.
struct outcome {
    sa_wire::update update; ///< key octets wiped
    bool applied = false;
    std::string reason; ///< why not, when not applied
};

/// The longest lifetime an add_key carries (sa_wire::max_lifetime_ms).
inline constexpr std::chrono::milliseconds max_lifetime{sa_wire::max_lifetime_ms};

/// add_key updates for every key of every SA, in file order, each with
/// `lifetime` (zero: the key never expires by itself; sa_update_wire.h).
/// Refused before anything is sent, naming the SPP and key ID, if a key does
/// not fit the record (sa_wire::max_key_len octets: longer HMAC keys, which
/// SA files allow, cannot be pushed) or the lifetime is negative or longer
/// than max_lifetime. Nothing holding key octets is left behind on refusal.
result<std::vector<sa_wire::update>> updates_for(const std::vector<sa_config>& sas,
                                                 std::chrono::milliseconds lifetime = std::chrono::milliseconds(0));

sa_wire::update set_current(uint8_t spp, uint32_t key_id);

/// A set_ticket update: the TICKET TLV value `ticket` (the NTS Ticket record,
/// padded to even length, as the requester got it from the KE server) for
/// key `key_id` of SA `spp`, which the data plane then puts into the unicast
/// requests it signs with that key (seeds/001 §6). An empty `ticket` takes
/// the key's ticket away. Refused, naming the SPP and key ID, when it is
/// longer than a record carries (sa_wire::max_ticket_len octets) or of odd
/// length (the data plane would refuse it).
result<sa_wire::update> set_ticket(uint8_t spp, uint32_t key_id, std::span<const uint8_t> ticket);

/// An attest_nonce update: the verifier nonce (8-64 octets) the data plane's
/// attestation signer puts into every batch from now on; empty withdraws it.
/// Refused, naming the length, otherwise.
result<sa_wire::update> attest_nonce(std::span<const uint8_t> nonce);

sa_wire::update remove_key(uint8_t spp, uint32_t key_id);
sa_wire::update remove_sa(uint8_t spp);
sa_wire::update flush();

/// Sends the updates one by one to the data plane with EAL file prefix
/// `file_prefix` and waits up to `wait` for each acknowledgement. Stops at
/// the first update that is not acknowledged in time (an error); a rejected
/// update does not stop the rest. The key octets of `updates` are wiped.
/// Each update is stamped with the time it was sent (`sent_ns`), except
/// set_ticket, whose value covers that field.
result<std::vector<outcome>> send(const std::string& file_prefix, std::vector<sa_wire::update>& updates,
                                  std::chrono::milliseconds wait = std::chrono::seconds(5));

} // namespace ptpsec::sa_client
