#include <dataplane/sa_update.h>

#include <drivers/base/bytes.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <ctime>

namespace ptpsec {

namespace {

using sa_wire::op;

/// A copy of an SA that the new version may change; its keys stay shared.
std::shared_ptr<security_association> copy_of(const security_association& sa) {
    return std::make_shared<security_association>(sa);
}

/// The database with every SA shared: the starting point of a new version.
std::unique_ptr<sa_database> next_version(const sa_database& current) {
    auto next = std::make_unique<sa_database>();
    next->set_gmac_senders(current.gmac_senders());
    for (unsigned spp = 0; spp < 256; ++spp) {
        next->put(static_cast<uint8_t>(spp), current.shared(static_cast<uint8_t>(spp)));
    }
    return next;
}

/// Names the key an update is about, for a key-expansion error.
std::string where(const sa_wire::update& u) {
    return fmt::format("key {} of spp {}", u.key_id, u.spp);
}

bool expired(const sa_key& k, uint64_t now_ns) noexcept {
    return k.expires_ns != 0 && k.expires_ns <= now_ns;
}

/// Takes key `key_id` out of `sa` (a copy the new version owns) and
/// remembers its ID. Signing with it stops until the control plane names the
/// next key: better than signing with a key receivers are told to forget.
void retire(security_association& sa, uint32_t key_id) {
    std::erase_if(sa.keys, [&](const auto& k) { return k->key_id == key_id; });
    // Its ticket goes with it: it names the key it was issued with.
    std::erase_if(sa.tickets, [&](const key_ticket& t) { return t.key_id == key_id; });
    sa.retired_ids.add(key_id);
    if (sa.has_sign_key && sa.sign_key_id == key_id) {
        sa.has_sign_key = false;
        sa.sign_key_retired = true;
    }
}

/// "spp 2 has no key 9", and why when the SA retired it.
std::string no_such_key(const security_association& sa, uint32_t key_id) {
    return fmt::format("spp {} has no key {}{}", sa.spp, key_id,
                       sa.retired_ids.contains(key_id) ? ": it was removed or expired" : "");
}

result<update_result> add_key(const sa_database& current, const sa_wire::update& u, icv::engine& eng, uint64_t now_ns) {
    if (u.algorithm >= icv::algorithm_count) {
        return error{fmt::format("algorithm {} is not one of 0-{}", u.algorithm, icv::algorithm_count - 1)};
    }
    const auto alg = static_cast<icv::algorithm>(u.algorithm);
    if (u.key_len == 0 || u.key_len > sa_wire::max_key_len) {
        return error{fmt::format("key_len {} is not 1-{}", u.key_len, sa_wire::max_key_len)};
    }
    if (u.seqid_window == 0) {
        return error{"seqid_window 0"};
    }
    if (u.allow_mutable > 1) {
        return error{fmt::format("allow_mutable {} is not 0 or 1", u.allow_mutable)};
    }
    if (u.lifetime_ms > sa_wire::max_lifetime_ms) {
        return error{fmt::format("lifetime_ms {} is above {} (388 days, seeds/001 §2.5.1)", u.lifetime_ms,
                                 sa_wire::max_lifetime_ms)};
    }
    const security_association* sa = current.find(u.spp);
    if (sa != nullptr && sa->find_key(u.key_id) != nullptr) {
        // seeds/001 §5.3: a key ID names one key for the life of the SA.
        return error{fmt::format("key {} of spp {} is installed already; key IDs are not reused", u.key_id, u.spp)};
    }
    if (sa != nullptr && sa->retired_ids.contains(u.key_id)) {
        // Frames signed with the old key may still be in flight, and
        // receivers count them as expired_key: the ID must not name a new key.
        return error{fmt::format("key {} of spp {} was removed or expired; key IDs are not reused (seeds/001 §5.3)",
                                 u.key_id, u.spp)};
    }
    if (sa != nullptr && sa->allow_mutable != (u.allow_mutable != 0)) {
        return error{fmt::format("allow_mutable {} differs from spp {}'s {}; remove the SA first", u.allow_mutable,
                                 u.spp, sa->allow_mutable ? 1 : 0)};
    }
    key_config kc;
    kc.key_id = u.key_id;
    kc.alg = alg;
    kc.key = key_bytes(std::vector<uint8_t>(u.key, u.key + u.key_len));
    kc.origin = where(u);
    auto key = make_sa_key(eng, u.spp, kc, current.gmac_senders());
    if (!key) {
        return key.err();
    }
    // The lifetime counts from now on the monotonic clock (sa_update_wire.h);
    // max_lifetime_ms keeps the sum far from overflowing.
    key.value()->expires_ns = u.lifetime_ms == 0 ? 0 : now_ns + u.lifetime_ms * 1'000'000;
    std::shared_ptr<security_association> changed;
    if (sa != nullptr) {
        changed = copy_of(*sa);
    } else {
        changed = std::make_shared<security_association>();
        changed->spp = u.spp;
        changed->seqid_window = u.seqid_window;
        changed->allow_mutable = u.allow_mutable != 0;
    }
    changed->keys.push_back(std::move(key).value());
    update_result r;
    r.next = next_version(current);
    r.next->put(u.spp, std::move(changed));
    return r;
}

result<update_result> set_current(const sa_database& current, const sa_wire::update& u, uint64_t now_ns) {
    const security_association* sa = current.find(u.spp);
    if (sa == nullptr) {
        return error{fmt::format("no SA with spp {}", u.spp)};
    }
    const sa_key* key = sa->find_key(u.key_id);
    if (key == nullptr && sa->retired_ids.contains(u.key_id)) {
        return error{no_such_key(*sa, u.key_id)};
    }
    if (key == nullptr) {
        return error{fmt::format("spp {} has no key {}; add it first", u.spp, u.key_id)};
    }
    if (expired(*key, now_ns)) {
        // Its deadline passed and the service path has not taken it out yet.
        return error{fmt::format("key {} of spp {} has expired", u.key_id, u.spp)};
    }
    auto changed = copy_of(*sa);
    changed->has_sign_key = true;
    changed->sign_key_retired = false;
    changed->sign_key_id = u.key_id;
    update_result r;
    r.next = next_version(current);
    r.next->put(u.spp, std::move(changed));
    return r;
}

result<update_result> remove_key(const sa_database& current, const sa_wire::update& u) {
    const security_association* sa = current.find(u.spp);
    if (sa == nullptr) {
        return error{fmt::format("no SA with spp {}", u.spp)};
    }
    if (sa->find_key(u.key_id) == nullptr) {
        if (sa->retired_ids.contains(u.key_id)) {
            // Gone already, as asked: its lifetime ended first (a control
            // plane's removal races the data plane's own expiry), or it was
            // removed before. Nothing to publish.
            update_result r;
            r.note = fmt::format("key {} of spp {} was removed or expired already", u.key_id, u.spp);
            return r;
        }
        return error{no_such_key(*sa, u.key_id)};
    }
    auto changed = copy_of(*sa);
    retire(*changed, u.key_id);
    // An SA whose last key goes stays, to remember the IDs it retired.
    update_result r;
    r.next = next_version(current);
    r.next->put(u.spp, std::move(changed));
    r.retired.push_back(retired_key{u.spp, u.key_id});
    return r;
}

/// Attaches (or, with length 0, takes away) the TICKET TLV value of an
/// installed key. Only `spp`, `key_id`, `key_len` and the value are read
/// (sa_update_wire.h).
result<update_result> set_ticket(const sa_database& current, const sa_wire::update& u) {
    const size_t len = u.key_len;
    if (len > sa_wire::max_ticket_len) {
        return error{
            fmt::format("ticket length {} is above {}, the most an update carries", len, sa_wire::max_ticket_len)};
    }
    if (len % 2 != 0) {
        return error{fmt::format("ticket length {} is odd; a TLV value has even length (pad the Ticket record "
                                 "with one zero octet)",
                                 len)};
    }
    const security_association* sa = current.find(u.spp);
    if (sa == nullptr) {
        return error{fmt::format("no SA with spp {}; add its key first", u.spp)};
    }
    if (sa->find_key(u.key_id) == nullptr) {
        return error{sa->retired_ids.contains(u.key_id)
                         ? no_such_key(*sa, u.key_id)
                         : fmt::format("spp {} has no key {}; add it first", u.spp, u.key_id)};
    }
    auto changed = copy_of(*sa);
    std::erase_if(changed->tickets, [&](const key_ticket& t) { return t.key_id == u.key_id; });
    if (len != 0) {
        key_ticket& t = changed->tickets.emplace_back();
        t.key_id = u.key_id;
        t.length = static_cast<uint8_t>(len);
        std::memcpy(t.value.data(), sa_wire::ticket_value(u), len);
    }
    update_result r;
    r.next = next_version(current);
    r.next->put(u.spp, std::move(changed));
    return r;
}

result<update_result> remove_sa(const sa_database& current, const sa_wire::update& u) {
    const security_association* sa = current.find(u.spp);
    if (sa == nullptr) {
        return error{fmt::format("no SA with spp {}", u.spp)};
    }
    update_result r;
    for (const auto& k : sa->keys) {
        r.retired.push_back(retired_key{u.spp, k->key_id});
    }
    r.next = next_version(current);
    r.next->put(u.spp, nullptr);
    return r;
}

/// Forgets the SA with its retired key IDs: a new SA at this SPP starts afresh.
update_result flush(const sa_database& current) {
    update_result r;
    for (unsigned spp = 0; spp < 256; ++spp) {
        if (const security_association* sa = current.find(static_cast<uint8_t>(spp)); sa != nullptr) {
            for (const auto& k : sa->keys) {
                r.retired.push_back(retired_key{sa->spp, k->key_id});
            }
        }
    }
    r.next = std::make_unique<sa_database>();
    r.next->set_gmac_senders(current.gmac_senders());
    return r;
}

} // namespace

std::string op_name(uint8_t operation) {
    switch (static_cast<op>(operation)) {
    case op::add_key:
        return "add_key";
    case op::set_current:
        return "set_current";
    case op::remove_key:
        return "remove_key";
    case op::remove_sa:
        return "remove_sa";
    case op::flush:
        return "flush";
    case op::set_ticket:
        return "set_ticket";
    case op::attest_nonce:
        return "attest_nonce";
    }
    return fmt::format("op {}", operation);
}

uint64_t monotonic_now_ns() noexcept {
    timespec ts{};
    (void)::clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t ns = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
    return std::max<uint64_t>(ns, 1);
}

result<update_result> apply_update(const sa_database& current, const sa_wire::update& u, icv::engine& eng) {
    return apply_update(current, u, eng, monotonic_now_ns());
}

result<update_result> apply_update(const sa_database& current, const sa_wire::update& u, icv::engine& eng,
                                   uint64_t now_ns) {
    if (u.magic != sa_wire::update_magic) {
        return error{
            fmt::format("magic {:#010x} is not {:#010x} (another version of ptpsec?)", u.magic, sa_wire::update_magic)};
    }
    switch (static_cast<op>(u.operation)) {
    case op::add_key:
        return add_key(current, u, eng, now_ns);
    case op::set_current:
        return set_current(current, u, now_ns);
    case op::remove_key:
        return remove_key(current, u);
    case op::remove_sa:
        return remove_sa(current, u);
    case op::flush:
        return flush(current);
    case op::set_ticket:
        return set_ticket(current, u);
    case op::attest_nonce:
        return error{"attest_nonce is not an SA operation: the data plane's attestation takes it"};
    }
    return error{fmt::format("unknown operation {}", u.operation)};
}

uint64_t next_expiry(const sa_database& db) noexcept {
    uint64_t first = 0;
    for (unsigned spp = 0; spp < 256; ++spp) {
        const security_association* sa = db.find(static_cast<uint8_t>(spp));
        if (sa == nullptr) {
            continue;
        }
        for (const auto& k : sa->keys) {
            if (k->expires_ns != 0 && (first == 0 || k->expires_ns < first)) {
                first = k->expires_ns;
            }
        }
    }
    return first;
}

std::optional<update_result> expire_keys(const sa_database& current, uint64_t now_ns) {
    std::optional<update_result> r;
    for (unsigned spp = 0; spp < 256; ++spp) {
        const security_association* sa = current.find(static_cast<uint8_t>(spp));
        if (sa == nullptr ||
            std::none_of(sa->keys.begin(), sa->keys.end(), [&](const auto& k) { return expired(*k, now_ns); })) {
            continue;
        }
        if (!r) {
            r.emplace();
            r->next = next_version(current);
        }
        auto changed = copy_of(*sa);
        for (const auto& k : sa->keys) {
            if (expired(*k, now_ns)) {
                retire(*changed, k->key_id);
                r->retired.push_back(retired_key{sa->spp, k->key_id});
            }
        }
        r->next->put(sa->spp, std::move(changed));
    }
    return r;
}

sa_wire::ack make_ack(const sa_wire::update& u, const status& outcome, std::string_view note) noexcept {
    sa_wire::ack a;
    a.result = static_cast<uint8_t>(outcome ? sa_wire::status::applied : sa_wire::status::rejected);
    a.operation = u.operation;
    a.spp = u.spp;
    a.sequence = u.sequence;
    a.key_id = u.key_id;
    const std::string_view why = outcome ? note : std::string_view(outcome.err().message);
    const size_t n = std::min(why.size(), sa_wire::reason_len - 1);
    if (n != 0) { // an empty view may hold no pointer at all
        std::memcpy(a.reason, why.data(), n);
    }
    a.reason[n] = '\0';
    return a;
}

} // namespace ptpsec
