#pragma once

// Applying SA updates (dataplane/sa_update_wire.h) to the SA database: each
// update makes a new version of the database that shares every SA and key it
// does not change, so that workers can keep reading the old version until
// they pass a quiescent point. Service-path code: it allocates and expands
// keys; the fast path never calls it.

#include <dataplane/sa.h>
#include <dataplane/sa_update_wire.h>

#include <memory>
#include <string>
#include <vector>

namespace ptpsec {

/// A key that an update took out of the database (remove_key, remove_sa,
/// flush): its replay windows are to be dropped too.
struct retired_key {
    uint8_t spp = 0;
    uint32_t key_id = 0;
};

struct update_result {
    std::unique_ptr<sa_database> next; ///< the new version
    std::vector<retired_key> retired;
};

/// The new version of `current` after `u`, or why `u` is refused (the
/// message names the field and the value). `current` is not changed.
result<update_result> apply_update(const sa_database& current, const sa_wire::update& u, icv::engine& eng);

/// The acknowledgement of `u`: applied, or rejected with `why`.
sa_wire::ack make_ack(const sa_wire::update& u, const status& outcome) noexcept;

/// "add_key", "set_current", ...; "op N" for an unknown number.
std::string op_name(uint8_t operation);

} // namespace ptpsec
