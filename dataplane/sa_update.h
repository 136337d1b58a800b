#pragma once

// Applying SA updates (dataplane/sa_update_wire.h) to the SA database: each
// update makes a new version of the database that shares every SA and key it
// does not change, so that workers can keep reading the old version until
// they pass a quiescent point. Service-path code: it allocates and expands
// keys; the fast path never calls it.

#include <dataplane/sa.h>
#include <dataplane/sa_update_wire.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec {

/// A key that an update took out of the database (remove_key, remove_sa,
/// flush, or expiry): its replay windows are to be dropped too.
struct retired_key {
    uint8_t spp = 0;
    uint32_t key_id = 0;
};

struct update_result {
    std::unique_ptr<sa_database> next; ///< the new version; null when there is nothing to change
    std::vector<retired_key> retired;
    std::string note; ///< for the acknowledgement of an update that changed nothing
};

/// Now on CLOCK_MONOTONIC, in nanoseconds: the clock of key deadlines
/// (sa_key::expires_ns). Never 0.
uint64_t monotonic_now_ns() noexcept;

/// The new version of `current` after `u`, or why `u` is refused (the
/// message names the field and the value). `current` is not changed. An
/// add_key with a lifetime gets the deadline `now_ns` + lifetime; the first
/// form reads monotonic_now_ns().
result<update_result> apply_update(const sa_database& current, const sa_wire::update& u, icv::engine& eng);
result<update_result> apply_update(const sa_database& current, const sa_wire::update& u, icv::engine& eng,
                                   uint64_t now_ns);

/// The earliest deadline of any key in `db` (CLOCK_MONOTONIC ns), 0 if no
/// key expires. Walks the 256 SPPs and their keys without allocating: cheap
/// enough for every pass of the service loop.
uint64_t next_expiry(const sa_database& db) noexcept;

/// Every key whose deadline is at or before `now_ns` taken out, as remove_key
/// would: the new version, with those keys in `retired` (and in each SA's
/// retired_ids), or nullopt when none has expired (nothing to publish). An
/// SA whose current key expires stops signing (fail closed: sign_burst_current
/// says expired_key) until the control plane names another key; an SA whose
/// last key expires stays, without keys, so that frames still carrying them
/// count as expired_key. `current` is not changed.
std::optional<update_result> expire_keys(const sa_database& current, uint64_t now_ns);

/// The acknowledgement of `u`: applied (with `note`, if any, in the reason
/// field), or rejected with the error's message.
sa_wire::ack make_ack(const sa_wire::update& u, const status& outcome, std::string_view note = {}) noexcept;

/// "add_key", "set_current", ...; "op N" for an unknown number.
std::string op_name(uint8_t operation);

} // namespace ptpsec
