#pragma once

// The KE server's group keys (seeds/001 §2.5.1, §4.2.2, §4.2.18, §5.3): for
// each configured group, a chain of validity periods ("epochs"), each with
// its SA (SPP, MAC algorithm, key ID, key) and a lifetime. A request is
// answered from the epoch that holds `now` (Current Parameters, with the
// remaining lifetime) and, once the update period of that epoch has begun,
// the one after it (Next Parameters, with its full lifetime). The next epoch
// is made when first needed, so every client that asks during an update
// period gets the same next key.
//
// Rules kept here:
//   * every group has one SPP of its own, never shared with another group
//     (multicast SPPs are unique on the server and in every device's SAD);
//     a group keeps its SPP across epochs and restarts;
//   * key IDs come from one server-wide counter and are never reused, so a
//     key ID names one key in the whole network for the life of the state;
//   * keys come from OpenSSL's private CSPRNG (RAND_priv_bytes), of the
//     algorithm's length (32 octets for HMAC-SHA256);
//   * time runs on CLOCK_MONOTONIC (§2.5.1: no jumps); the state store keeps
//     epoch starts as wall-clock time so that a restarted server continues
//     the same epochs (a wall-clock step while the server is down shifts
//     them by the step).
//
// Service code: it allocates, and returns result<> rather than throwing.

#include <dataplane/sa.h>
#include <drivers/base/result.h>
#include <drivers/icv/algorithm.h>

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ptpsec::ke {

/// A group (seeds/001 §4.2.2 Table 16): domainNumber, sdoId (12 bits) and
/// subGroup (0 when there are no subgroups).
struct group_id {
    uint8_t domain = 0;
    uint16_t sdo_id = 0;
    uint16_t subgroup = 0;
    auto operator<=>(const group_id&) const = default;
};

/// "domain 0 sdoId 0x000 subGroup 0".
std::string to_string(const group_id& g);

/// What the administrator configures for a group.
struct group_policy {
    std::string name;
    group_id id;
    icv::algorithm alg = icv::algorithm::hmac_sha256_128;
    uint32_t lifetime_s = 14400;
    uint32_t update_period_s = 300;
    uint32_t grace_period_s = 3;
};

/// The longest lifetime (seeds/001 §2.5.1, §5.1: 388 days).
inline constexpr uint32_t max_lifetime_s = 388U * 24 * 3600;

/// Why a policy cannot be used (the message names the group and field), or ok:
/// 1 <= update period <= lifetime <= 388 days, grace <= update period,
/// sdoId <= 4095.
status validate(const group_policy& p);

/// One validity period of a group.
struct epoch {
    uint8_t spp = 0;
    uint32_t key_id = 0;
    icv::algorithm alg = icv::algorithm::hmac_sha256_128;
    key_bytes key;
    /// CLOCK_MONOTONIC; signed, since an epoch carried over a reboot may
    /// have started before the clock's zero.
    int64_t start_ns = 0;
    uint32_t lifetime_s = 0;
    /// The policy's update and grace periods when the epoch was made.
    uint32_t update_period_s = 0;
    uint32_t grace_period_s = 0;

    int64_t end_ns() const noexcept { return start_ns + int64_t{lifetime_s} * 1'000'000'000LL; }
    /// The end of its grace period: after it no receiver accepts the key.
    int64_t retire_ns() const noexcept { return end_ns() + int64_t{grace_period_s} * 1'000'000'000LL; }
};

/// A Validity Period record's three values (seeds/001 §4.2.18).
struct validity {
    uint32_t lifetime_s = 0; ///< remaining (current) or full (next)
    uint32_t update_period_s = 0;
    uint32_t grace_period_s = 0;
    bool operator==(const validity&) const = default;
};

/// The answer to a group's PTP Key Request at one moment.
struct group_parameters {
    std::string group; ///< the policy's name
    epoch current;
    validity current_validity;
    std::optional<epoch> next;
    validity next_validity;
};

/// Where epochs and counters survive restarts (store.h has the SQLite one).
class state_store {
public:
    virtual ~state_store() = default;
    /// Everything saved, for start-up. Epoch starts are wall-clock (CLOCK_REALTIME) ns.
    struct saved {
        uint32_t last_key_id = 0;
        std::map<std::string, uint8_t> spp_of_group;       ///< by policy name
        std::vector<std::pair<std::string, epoch>> epochs; ///< by policy name; start_ns wall-clock
    };
    virtual result<saved> load() = 0;
    /// Makes `e` of `group` (start_ns wall-clock) and the key-ID counter
    /// durable before the key is handed out.
    virtual status save_epoch(const std::string& group, uint8_t spp, const epoch& e, uint32_t last_key_id) = 0;
    /// Forgets the epochs whose grace period ended before `wall_ns`.
    virtual status forget_retired(int64_t wall_ns) = 0;
    /// Makes key IDs up to `ceiling` count as used (the stored counter never
    /// goes down: load() returns the highest saved).
    virtual status save_key_id_ceiling(uint32_t ceiling) = 0;
    /// Keeps SPP `spp` for `name` (a group, or "@unicast").
    virtual status save_spp(const std::string& name, uint8_t spp) = 0;
    /// Shortens the saved epoch of key `key_id` to `lifetime_s` (rotate()).
    virtual status save_lifetime(uint32_t key_id, uint32_t lifetime_s) = 0;
};

/// What key_schedule::rotate did to a group.
struct rotation {
    std::string group;
    uint32_t key_id = 0;      ///< the current key, which now ends sooner
    uint32_t old_left_s = 0;  ///< its remaining lifetime before
    uint32_t left_s = 0;      ///< and now
    uint32_t next_key_id = 0; ///< the key that follows it (made now: the update period has begun)
};

/// The clocks a schedule runs on; tests give their own.
struct clocks {
    virtual ~clocks() = default;
    virtual int64_t monotonic_ns() const = 0;
    virtual int64_t wall_ns() const = 0;
};
const clocks& system_clocks();

class key_schedule {
public:
    /// Validates the policies (unique names and group IDs), loads the saved
    /// state and gives each group its SPP (the saved one, else the lowest
    /// free from 1). `store` may be null (nothing survives a restart).
    static result<std::unique_ptr<key_schedule>>
    create(std::vector<group_policy> policies, std::shared_ptr<state_store> store, const clocks& clk = system_clocks());

    /// Current (and, in the update period, next) parameters of a group at
    /// the schedule's now. Makes and saves the epochs it needs; an error if
    /// the group is not configured or the store refuses.
    result<group_parameters> parameters(const group_id& g);
    result<group_parameters> parameters(const std::string& name);

    /// Forgets epochs whose grace period has ended. Returns how many.
    size_t expire();

    /// An early rotation, ordered by the operator (a key that may have
    /// leaked, a member that must go): the current key of group `name` ends
    /// `in_s` seconds from now instead of at the end of its lifetime, and
    /// its update period begins at once, so that every client that asks from
    /// now on gets the next key in Next Parameters and switches to it, as in
    /// a scheduled rotation, without losing a packet (seeds/001 §2.5.1; the
    /// draft has no immediate revocation, §2.5.3). The next key is made and
    /// saved here; the shortened lifetime is saved before this returns.
    /// Refused when the group is already in its update period (its next key
    /// is out, and clients hold its start) or when the key ends within
    /// `in_s` anyway; `in_s` must be at least 1.
    result<rotation> rotate(const std::string& name, uint32_t in_s);

    /// A key ID for a key made outside the schedule (unicast keys), from the
    /// same never-reused counter. IDs are reserved in the store in blocks of
    /// key_id_block, so that not every key costs a disk sync; a restart skips
    /// what was reserved and not used.
    result<uint32_t> allocate_key_id();
    static constexpr uint32_t key_id_block = 256;

    /// The SPP kept for `name` (saved earlier, else the lowest free one),
    /// never one of a group; saved before it is returned.
    result<uint8_t> reserve_spp(const std::string& name);

    /// A key the schedule holds, without the key: for `ptpsecctl sa list`.
    struct key_summary {
        std::string group;
        uint8_t spp = 0;
        uint32_t key_id = 0;
        icv::algorithm alg = icv::algorithm::hmac_sha256_128;
        int64_t start_ns = 0; ///< CLOCK_MONOTONIC
        int64_t end_ns = 0;
        int64_t retire_ns = 0;
    };
    /// Every epoch not yet past its grace period, per group in time order.
    std::vector<key_summary> live_keys() const;

    const std::vector<group_policy>& policies() const noexcept { return _policies; }
    uint8_t spp_of(const std::string& name) const;
    uint32_t last_key_id() const noexcept { return _last_key_id; }

private:
    key_schedule(std::vector<group_policy> p, std::shared_ptr<state_store> s, const clocks& c)
        : _policies(std::move(p)), _store(std::move(s)), _clk(&c) {}

    struct group_state {
        uint8_t spp = 0;
        std::vector<epoch> epochs; ///< in time order
    };

    result<group_parameters> parameters_of(size_t index);
    result<epoch> make_epoch(size_t index, int64_t start_ns);

    std::vector<group_policy> _policies;
    std::vector<group_state> _groups; ///< parallel to _policies
    std::shared_ptr<state_store> _store;
    const clocks* _clk;
    uint32_t _last_key_id = 0;
    uint32_t _reserved_key_id = 0;               ///< key IDs up to here are recorded as used
    std::map<std::string, uint8_t> _spp_by_name; ///< groups and reservations, saved ones included
};

} // namespace ptpsec::ke
