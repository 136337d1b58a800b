// libFuzzer target for SA updates (dataplane/sa_update.h): the records the
// data plane reads from the shared-memory channel come from another process
// and are parsed like any input. The input is cut into 128-octet records,
// applied in turn on a clock that each record moves forward, with the keys
// whose lifetime ran out expired after each one (as the service loop does);
// after each step the database must be consistent (tickets included: each
// belongs to an installed key and goes with it), a refused record must leave
// it as it was, and nothing may crash or leak.

#include <dataplane/sa_update.h>
#include <drivers/icv/ipsecmb_engine.h>
#include <fuzz/invariant.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace {

using ptpsec::fuzz::require;

using namespace ptpsec;

icv::ipsecmb_engine& engine() {
    static icv::ipsecmb_engine eng(icv::default_arch_plan());
    return eng;
}

/// Every SA has keys with distinct IDs (or, once they all went, the IDs it
/// retired), no installed key carries a retired ID, its current key is one
/// of its keys, and next_expiry() is the earliest deadline.
void check_consistent(const sa_database& db) {
    uint64_t earliest = 0;
    for (unsigned spp = 0; spp < 256; ++spp) {
        const security_association* sa = db.find(static_cast<uint8_t>(spp));
        if (sa == nullptr) {
            continue;
        }
        require(sa->spp == spp, "SA stored under its SPP");
        require(!sa->keys.empty() || !sa->retired_ids.empty(), "an SA without keys stays only for its retired IDs");
        require(sa->retired_ids.size() <= retired_key_ids::capacity, "the retired list is bounded");
        for (size_t i = 0; i < sa->keys.size(); ++i) {
            require(sa->keys[i] != nullptr, "no empty key slot");
            require(sa->keys[i]->mac != nullptr || sa->keys[i]->gmac != nullptr, "a key is expanded");
            require(!sa->retired_ids.contains(sa->keys[i]->key_id), "a retired key ID is not installed again");
            for (size_t j = i + 1; j < sa->keys.size(); ++j) {
                require(sa->keys[i]->key_id != sa->keys[j]->key_id, "key IDs unique in an SA");
            }
            const uint64_t t = sa->keys[i]->expires_ns;
            if (t != 0 && (earliest == 0 || t < earliest)) {
                earliest = t;
            }
        }
        for (size_t i = 0; i < sa->tickets.size(); ++i) {
            const key_ticket& t = sa->tickets[i];
            require(sa->find_key(t.key_id) != nullptr, "a ticket belongs to an installed key");
            require(t.length != 0 && t.length <= sa_wire::max_ticket_len && t.length % 2 == 0,
                    "a ticket has an even length that fits a record");
            for (size_t j = i + 1; j < sa->tickets.size(); ++j) {
                require(t.key_id != sa->tickets[j].key_id, "one ticket per key");
            }
        }
        require(!sa->has_sign_key || sa->find_key(sa->sign_key_id) != nullptr, "the current key is installed");
        require(!(sa->has_sign_key && sa->sign_key_retired), "a current key is not a retired one");
    }
    require(next_expiry(db) == earliest, "next_expiry is the earliest deadline");
}

/// Retired keys are gone from `next` and remembered by their SA.
void check_retired(const update_result& r) {
    for (const auto& k : r.retired) {
        const security_association* sa = r.next->find(k.spp);
        require(sa == nullptr || sa->find_key(k.key_id) == nullptr, "a retired key is gone");
        require(sa == nullptr || sa->find_ticket(k.key_id) == nullptr, "a retired key's ticket is gone");
    }
}

/// What an applied update that made a version must have done.
void apply_checks(const sa_wire::update& u, const update_result& r, uint64_t now) {
    if (u.operation == static_cast<uint8_t>(sa_wire::op::add_key)) {
        const sa_key* k = r.next->find(u.spp)->find_key(u.key_id);
        require(k != nullptr, "an added key is installed");
        require(k->expires_ns == (u.lifetime_ms == 0 ? 0 : now + u.lifetime_ms * 1'000'000),
                "the deadline is the lifetime from now");
    }
    if (u.operation == static_cast<uint8_t>(sa_wire::op::set_ticket)) {
        const security_association* sa = r.next->find(u.spp);
        require(sa != nullptr && sa->find_key(u.key_id) != nullptr, "a ticket is set on an installed key");
        const key_ticket* t = sa->find_ticket(u.key_id);
        if (u.key_len == 0) {
            require(t == nullptr, "length 0 takes the ticket away");
        } else {
            require(t != nullptr && t->length == u.key_len &&
                        std::memcmp(t->value.data(), sa_wire::ticket_value(u), u.key_len) == 0,
                    "the ticket is the record's value");
        }
    }
    check_retired(r);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto db = std::make_unique<sa_database>();
    uint64_t now = 1'000'000'000; // CLOCK_MONOTONIC ns, as the data plane passes it
    for (size_t off = 0; off + 1 <= size; off += sizeof(sa_wire::update)) {
        sa_wire::update u;
        const size_t n = std::min(sizeof(u), size - off);
        std::memcpy(&u, data + off, n);
        // Mostly well-formed records reach the interesting checks; an odd
        // first octet keeps whatever magic the input carries.
        if ((data[off] & 1U) == 0) {
            u.magic = sa_wire::update_magic;
            u.operation = static_cast<uint8_t>(1 + u.operation % 6);
            u.spp = static_cast<uint8_t>(u.spp % 4);
            u.key_id = u.key_id % 8;
            // Lifetimes of up to 4 s (or none), so that keys expire within
            // the few records of one input; odd values stay as they came.
            if ((u.lifetime_ms & 1U) == 0) {
                u.lifetime_ms = u.lifetime_ms % 4096;
            }
            // set_ticket: mostly lengths a record holds (odd ones included,
            // which are refused); a set top bit keeps what came.
            if (u.operation == static_cast<uint8_t>(sa_wire::op::set_ticket) && (u.key_len & 0x80U) == 0) {
                u.key_len = static_cast<uint8_t>(u.key_len % (sa_wire::max_ticket_len + 1));
            }
        }
        // Up to 4 s pass before each record (the sequence number is the
        // input's to choose).
        now += (u.sequence % 4096) * 1'000'000;
        const sa_database* before = db.get();
        const size_t size_before = db->size();
        auto r = apply_update(*db, u, engine(), now);
        const sa_wire::ack a = make_ack(u, r ? ok_status() : status(r.err()));
        require(a.sequence == u.sequence, "ack echoes the sequence");
        require(std::memchr(a.reason, '\0', sizeof(a.reason)) != nullptr, "reason is terminated");
        if (!r) {
            require(db.get() == before && db->size() == size_before, "a refused update changes nothing");
            require(a.reason[0] != '\0', "a refusal says why");
            continue;
        }
        if (r->next == nullptr) {
            // Only a removal of a key the SA retired already changes nothing.
            const security_association* sa = db->find(u.spp);
            require(u.operation == static_cast<uint8_t>(sa_wire::op::remove_key) && sa != nullptr &&
                        sa->find_key(u.key_id) == nullptr && sa->retired_ids.contains(u.key_id),
                    "an applied update without a version removes a retired key");
            require(r->retired.empty() && !r->note.empty(), "it retires nothing and says so");
            const sa_wire::ack noted = make_ack(u, ok_status(), r->note);
            require(noted.result == static_cast<uint8_t>(sa_wire::status::applied) && noted.reason[0] != '\0',
                    "the note is in the acknowledgement");
        } else {
            apply_checks(u, *r, now);
            db = std::move(r->next);
            check_consistent(*db);
        }

        // The service loop's pass: keys whose deadline passed go, once.
        const uint64_t due = next_expiry(*db);
        auto expired = expire_keys(*db, now);
        require(expired.has_value() == (due != 0 && due <= now), "expire_keys acts exactly when a key is due");
        if (expired) {
            require(!expired->retired.empty(), "an expiry retires a key");
            check_retired(*expired);
            for (const auto& k : expired->retired) {
                // The SA remembers it, unless more keys of the SA expired at
                // once than its list holds.
                const auto of_sa = std::count_if(expired->retired.begin(), expired->retired.end(),
                                                 [&](const retired_key& o) { return o.spp == k.spp; });
                require(of_sa > static_cast<long>(retired_key_ids::capacity) ||
                            expired->next->find(k.spp)->retired_ids.contains(k.key_id),
                        "the SA remembers an expired key");
            }
            db = std::move(expired->next);
            check_consistent(*db);
            require(next_expiry(*db) == 0 || next_expiry(*db) > now, "nothing due is left");
            require(!expire_keys(*db, now).has_value(), "a second pass finds nothing");
        }
    }
    return 0;
}
