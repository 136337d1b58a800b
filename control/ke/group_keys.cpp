#include <control/ke/group_keys.h>

#include <fmt/format.h>
#include <openssl/rand.h>

#include <algorithm>
#include <ctime>
#include <set>

namespace ptpsec::ke {

namespace {

constexpr int64_t ns_per_s = 1'000'000'000LL;

struct system_clocks_t final : clocks {
    int64_t monotonic_ns() const override { return read(CLOCK_MONOTONIC); }
    int64_t wall_ns() const override { return read(CLOCK_REALTIME); }

    static int64_t read(clockid_t id) {
        timespec ts{};
        clock_gettime(id, &ts);
        return int64_t{ts.tv_sec} * ns_per_s + ts.tv_nsec;
    }
};

/// Seconds left until `end`, rounded up (a client never believes a key lives
/// longer than it does by more than a second, and never sees 0 while it lives).
uint32_t seconds_until(int64_t end, int64_t now) {
    const int64_t left = end - now;
    return left <= 0 ? 0 : static_cast<uint32_t>((left + ns_per_s - 1) / ns_per_s);
}

} // namespace

const clocks& system_clocks() {
    static const system_clocks_t c;
    return c;
}

std::string to_string(const group_id& g) {
    return fmt::format("domain {} sdoId 0x{:03x} subGroup {}", g.domain, g.sdo_id, g.subgroup);
}

status validate(const group_policy& p) {
    auto bad = [&](std::string_view what) { return error{fmt::format("group {}: {}", p.name, what)}; };
    if (p.name.empty()) {
        return error{fmt::format("group {}: no name", to_string(p.id))};
    }
    if (p.id.sdo_id > 0x0FFF) {
        return bad(fmt::format("sdoId 0x{:x} is more than 12 bits", p.id.sdo_id));
    }
    if (p.lifetime_s == 0 || p.lifetime_s > max_lifetime_s) {
        return bad(fmt::format("lifetime {} s: use 1 s to {} s (388 days)", p.lifetime_s, max_lifetime_s));
    }
    if (p.update_period_s == 0 || p.update_period_s > p.lifetime_s) {
        return bad(fmt::format("update period {} s: at least 1 s and not more than the lifetime ({} s)",
                               p.update_period_s, p.lifetime_s));
    }
    if (p.grace_period_s > p.update_period_s) {
        return bad(fmt::format("grace period {} s is more than the update period ({} s)", p.grace_period_s,
                               p.update_period_s));
    }
    return ok_status();
}

result<std::unique_ptr<key_schedule>> key_schedule::create(std::vector<group_policy> policies,
                                                           std::shared_ptr<state_store> store, const clocks& clk) {
    std::set<std::string> names;
    std::set<group_id> ids;
    for (const auto& p : policies) {
        if (auto st = validate(p); !st) {
            return st.err();
        }
        if (!names.insert(p.name).second) {
            return error{fmt::format("group {}: the name is used twice", p.name)};
        }
        if (!ids.insert(p.id).second) {
            return error{fmt::format("group {}: {} is configured twice", p.name, to_string(p.id))};
        }
    }
    std::unique_ptr<key_schedule> ks(new key_schedule(std::move(policies), std::move(store), clk));
    ks->_groups.resize(ks->_policies.size());
    state_store::saved saved;
    if (ks->_store) {
        auto loaded = ks->_store->load();
        if (!loaded) {
            return loaded.err();
        }
        saved = std::move(loaded).value();
    }
    ks->_last_key_id = saved.last_key_id;
    ks->_reserved_key_id = saved.last_key_id;
    ks->_spp_by_name = saved.spp_of_group;
    // SPPs: the saved ones first (also of groups no longer configured, whose
    // keys may still be in use), then the lowest free for new groups.
    std::set<uint8_t> taken;
    for (const auto& [name, spp] : saved.spp_of_group) {
        taken.insert(spp);
    }
    const int64_t mono = clk.monotonic_ns();
    const int64_t wall = clk.wall_ns();
    for (size_t i = 0; i < ks->_policies.size(); ++i) {
        const std::string& name = ks->_policies[i].name;
        group_state& g = ks->_groups[i];
        if (auto it = saved.spp_of_group.find(name); it != saved.spp_of_group.end()) {
            g.spp = it->second;
        } else {
            unsigned spp = 1;
            while (spp <= 255 && taken.contains(static_cast<uint8_t>(spp))) {
                ++spp;
            }
            if (spp > 255) {
                return error{fmt::format("group {}: no SPP left (1-255 are all taken)", name)};
            }
            g.spp = static_cast<uint8_t>(spp);
            taken.insert(g.spp);
        }
        ks->_spp_by_name[name] = g.spp;
        for (auto& [group, e] : saved.epochs) {
            if (group != name) {
                continue;
            }
            epoch moved = e;
            moved.start_ns = mono - (wall - e.start_ns); // wall-clock start to the monotonic clock
            if (moved.retire_ns() > mono) {
                g.epochs.push_back(std::move(moved));
            }
        }
        std::sort(g.epochs.begin(), g.epochs.end(),
                  [](const epoch& a, const epoch& b) { return a.start_ns < b.start_ns; });
    }
    return ks;
}

uint8_t key_schedule::spp_of(const std::string& name) const {
    for (size_t i = 0; i < _policies.size(); ++i) {
        if (_policies[i].name == name) {
            return _groups[i].spp;
        }
    }
    return 0;
}

result<group_parameters> key_schedule::parameters(const group_id& g) {
    for (size_t i = 0; i < _policies.size(); ++i) {
        if (_policies[i].id == g) {
            return parameters_of(i);
        }
    }
    return error{fmt::format("no group {} is configured", to_string(g))};
}

result<group_parameters> key_schedule::parameters(const std::string& name) {
    for (size_t i = 0; i < _policies.size(); ++i) {
        if (_policies[i].name == name) {
            return parameters_of(i);
        }
    }
    return error{fmt::format("no group named {} is configured", name)};
}

result<epoch> key_schedule::make_epoch(size_t index, int64_t start_ns) {
    const group_policy& p = _policies[index];
    if (_last_key_id == UINT32_MAX) {
        return error{"every key ID is used up (key IDs are never reused); start a new server state"};
    }
    epoch e;
    e.spp = _groups[index].spp;
    e.key_id = _last_key_id + 1;
    e.alg = p.alg;
    e.start_ns = start_ns;
    e.lifetime_s = p.lifetime_s;
    e.update_period_s = p.update_period_s;
    e.grace_period_s = p.grace_period_s;
    const size_t len = icv::info(p.alg).key_len != 0 ? icv::info(p.alg).key_len : 32;
    std::vector<uint8_t> key(len);
    if (RAND_priv_bytes(key.data(), static_cast<int>(len)) != 1) {
        return error{fmt::format("group {}: the CSPRNG failed to make a key", p.name)};
    }
    e.key = key_bytes(std::move(key));
    if (_store) {
        epoch saved = e;
        saved.start_ns = _clk->wall_ns() + (start_ns - _clk->monotonic_ns());
        if (auto st = _store->save_epoch(p.name, e.spp, saved, e.key_id); !st) {
            return error{
                fmt::format("group {}: the new key was not saved, so it is not handed out: {}", p.name, st.message())};
        }
    }
    _last_key_id = e.key_id;
    _reserved_key_id = std::max(_reserved_key_id, _last_key_id);
    return e;
}

result<uint32_t> key_schedule::allocate_key_id() {
    if (_last_key_id == UINT32_MAX) {
        return error{"every key ID is used up (key IDs are never reused); start a new server state"};
    }
    if (_last_key_id >= _reserved_key_id) {
        const uint32_t ceiling = _last_key_id + std::min(key_id_block, UINT32_MAX - _last_key_id);
        if (_store) {
            if (auto st = _store->save_key_id_ceiling(ceiling); !st) {
                return error{fmt::format("key IDs could not be reserved, so no key is handed out: {}", st.message())};
            }
        }
        _reserved_key_id = ceiling;
    }
    return ++_last_key_id;
}

result<uint8_t> key_schedule::reserve_spp(const std::string& name) {
    if (auto it = _spp_by_name.find(name); it != _spp_by_name.end()) {
        return it->second;
    }
    std::set<uint8_t> taken;
    for (const auto& [n, spp] : _spp_by_name) {
        taken.insert(spp);
    }
    unsigned spp = 1;
    while (spp <= 255 && taken.contains(static_cast<uint8_t>(spp))) {
        ++spp;
    }
    if (spp > 255) {
        return error{fmt::format("{}: no SPP left (1-255 are all taken)", name)};
    }
    if (_store) {
        if (auto st = _store->save_spp(name, static_cast<uint8_t>(spp)); !st) {
            return st.err();
        }
    }
    _spp_by_name[name] = static_cast<uint8_t>(spp);
    return static_cast<uint8_t>(spp);
}

result<group_parameters> key_schedule::parameters_of(size_t index) {
    const group_policy& p = _policies[index];
    group_state& g = _groups[index];
    const int64_t now = _clk->monotonic_ns();
    std::erase_if(g.epochs, [&](const epoch& e) { return e.retire_ns() <= now; });

    auto covering = [&](int64_t t) -> epoch* {
        for (auto it = g.epochs.rbegin(); it != g.epochs.rend(); ++it) {
            if (it->start_ns <= t && t < it->end_ns()) {
                return &*it;
            }
        }
        return nullptr;
    };
    epoch* cur = covering(now);
    if (cur == nullptr) {
        // First request, or the server was down across a whole epoch: a new
        // chain starts now.
        auto made = make_epoch(index, now);
        if (!made) {
            return made.err();
        }
        g.epochs.push_back(std::move(made).value());
        cur = &g.epochs.back();
    }
    group_parameters out;
    out.group = p.name;
    out.current = *cur;
    out.current_validity = {seconds_until(cur->end_ns(), now), cur->update_period_s, cur->grace_period_s};
    if (now >= cur->end_ns() - int64_t{cur->update_period_s} * ns_per_s) {
        const int64_t next_start = cur->end_ns();
        epoch* next = nullptr;
        for (auto& e : g.epochs) {
            if (e.start_ns == next_start) {
                next = &e;
            }
        }
        if (next == nullptr) {
            auto made = make_epoch(index, next_start);
            if (!made) {
                return made.err();
            }
            g.epochs.push_back(std::move(made).value());
            next = &g.epochs.back();
        }
        out.next = *next;
        out.next_validity = {next->lifetime_s, next->update_period_s, next->grace_period_s};
    }
    return out;
}

result<rotation> key_schedule::rotate(const std::string& name, uint32_t in_s) {
    size_t index = _policies.size();
    for (size_t i = 0; i < _policies.size(); ++i) {
        if (_policies[i].name == name) {
            index = i;
        }
    }
    if (index == _policies.size()) {
        return error{fmt::format("no group named {} is configured", name)};
    }
    if (in_s == 0) {
        return error{"a rotation needs at least 1 s: clients must have time to fetch the next key"};
    }
    // The current epoch as a request now would see it (made if there is none).
    PTPSEC_TRY(before, parameters_of(index));
    if (before->next) {
        return error{fmt::format("group {} is rotating already: key {} ends in {} s and key {} follows it", name,
                                 before->current.key_id, before->current_validity.lifetime_s, before->next->key_id)};
    }
    if (in_s >= before->current_validity.lifetime_s) {
        return error{fmt::format("group {}: key {} ends in {} s anyway, no later than the {} s asked for", name,
                                 before->current.key_id, before->current_validity.lifetime_s, in_s)};
    }
    const int64_t now = _clk->monotonic_ns();
    epoch* cur = nullptr;
    for (auto& e : _groups[index].epochs) {
        if (e.key_id == before->current.key_id) {
            cur = &e;
        }
    }
    if (cur == nullptr) {
        return error{fmt::format("group {}: key {} went while rotating", name, before->current.key_id)};
    }
    // Whole seconds from the epoch's start, rounded down: ends `in_s` from
    // now at the latest, so that with `in_s` up to the update period that
    // period has begun.
    const int64_t end = now + int64_t{in_s} * ns_per_s;
    const auto lifetime = static_cast<uint32_t>(std::max<int64_t>(1, (end - cur->start_ns) / ns_per_s));
    if (_store) {
        if (auto st = _store->save_lifetime(cur->key_id, lifetime); !st) {
            return error{fmt::format("group {}: the shorter lifetime of key {} was not saved, so nothing changed: {}",
                                     name, cur->key_id, st.message())};
        }
    }
    cur->lifetime_s = lifetime;
    rotation out;
    out.group = name;
    out.key_id = cur->key_id;
    out.old_left_s = before->current_validity.lifetime_s;
    PTPSEC_TRY(after, parameters_of(index));
    out.left_s = after->current_validity.lifetime_s;
    out.next_key_id = after->next ? after->next->key_id : 0;
    return out;
}

std::vector<key_schedule::key_summary> key_schedule::live_keys() const {
    const int64_t now = _clk->monotonic_ns();
    std::vector<key_summary> out;
    for (size_t i = 0; i < _policies.size(); ++i) {
        for (const epoch& e : _groups[i].epochs) {
            if (e.retire_ns() > now) {
                out.push_back({_policies[i].name, e.spp, e.key_id, e.alg, e.start_ns, e.end_ns(), e.retire_ns()});
            }
        }
    }
    return out;
}

size_t key_schedule::expire() {
    const int64_t now = _clk->monotonic_ns();
    size_t gone = 0;
    for (auto& g : _groups) {
        gone += std::erase_if(g.epochs, [&](const epoch& e) { return e.retire_ns() <= now; });
    }
    if (_store) {
        (void)_store->forget_retired(_clk->wall_ns());
    }
    return gone;
}

} // namespace ptpsec::ke
