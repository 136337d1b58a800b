#include <control/sa_client.h>

#include <dataplane/sa_channel.h>
#include <dataplane/sa_update.h>
#include <drivers/base/bytes.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <random>
#include <thread>

namespace ptpsec::sa_client {

namespace {

sa_wire::update simple(sa_wire::op o, uint8_t spp, uint32_t key_id) {
    sa_wire::update u;
    u.operation = static_cast<uint8_t>(o);
    u.spp = spp;
    u.key_id = key_id;
    return u;
}

/// A sequence number unlikely to repeat one an earlier writer used, so that
/// a stale acknowledgement left in the ring is never taken for ours.
uint64_t first_sequence() {
    std::random_device rd;
    return (uint64_t{rd()} << 32) ^ static_cast<uint64_t>(std::time(nullptr)) << 8;
}

} // namespace

result<std::vector<sa_wire::update>> updates_for(const std::vector<sa_config>& sas,
                                                 std::chrono::milliseconds lifetime) {
    if (lifetime.count() < 0 || lifetime > max_lifetime) {
        return error{fmt::format("lifetime {} ms is not 0-{} ms (388 days, seeds/001 §2.5.1)", lifetime.count(),
                                 max_lifetime.count())};
    }
    // Every key is checked before any octet is copied: a refusal leaves no
    // key material behind.
    size_t keys = 0;
    for (const auto& sa : sas) {
        for (const auto& k : sa.keys) {
            ++keys;
            if (k.key.size() > sa_wire::max_key_len) {
                return error{fmt::format("{}{}spp {} key {}: the key is {} octets; an SA update carries at most {} "
                                         "octets (shorten the HMAC key)",
                                         k.origin, k.origin.empty() ? "" : ": ", sa.spp, k.key_id, k.key.size(),
                                         sa_wire::max_key_len)};
            }
        }
    }
    std::vector<sa_wire::update> out;
    out.reserve(keys); // no reallocation leaves copies of keys in freed memory
    for (const auto& sa : sas) {
        for (const auto& k : sa.keys) {
            sa_wire::update u = simple(sa_wire::op::add_key, sa.spp, k.key_id);
            u.algorithm = static_cast<uint8_t>(k.alg);
            u.key_len = static_cast<uint8_t>(k.key.size());
            std::memcpy(u.key, k.key.span().data(), k.key.size());
            u.seqid_window = sa.seqid_window;
            u.allow_mutable = sa.allow_mutable ? 1 : 0;
            u.lifetime_ms = static_cast<uint64_t>(lifetime.count());
            out.push_back(u);
            secure_wipe(u.key, sizeof(u.key));
        }
    }
    return out;
}

sa_wire::update set_current(uint8_t spp, uint32_t key_id) {
    return simple(sa_wire::op::set_current, spp, key_id);
}

result<sa_wire::update> set_ticket(uint8_t spp, uint32_t key_id, std::span<const uint8_t> ticket) {
    if (ticket.size() > sa_wire::max_ticket_len) {
        return error{fmt::format("spp {} key {}: the ticket is {} octets; an SA update carries at most {}", spp, key_id,
                                 ticket.size(), sa_wire::max_ticket_len)};
    }
    if (ticket.size() % 2 != 0) {
        return error{fmt::format("spp {} key {}: the ticket is {} octets, an odd length; a TLV value has even length "
                                 "(pad the Ticket record with one zero octet)",
                                 spp, key_id, ticket.size())};
    }
    sa_wire::update u = simple(sa_wire::op::set_ticket, spp, key_id);
    sa_wire::put_ticket_value(u, ticket.data(), ticket.size());
    return u;
}

result<sa_wire::update> attest_nonce(std::span<const uint8_t> nonce) {
    if (!nonce.empty() && (nonce.size() < sa_wire::min_nonce_len || nonce.size() > sa_wire::max_nonce_len)) {
        return error{fmt::format("a verifier nonce is {} to {} octets, not {}", sa_wire::min_nonce_len,
                                 sa_wire::max_nonce_len, nonce.size())};
    }
    sa_wire::update u = simple(sa_wire::op::attest_nonce, 0, 0);
    u.key_len = static_cast<uint8_t>(nonce.size());
    std::copy(nonce.begin(), nonce.end(), u.key);
    return u;
}

sa_wire::update remove_key(uint8_t spp, uint32_t key_id) {
    return simple(sa_wire::op::remove_key, spp, key_id);
}

sa_wire::update remove_sa(uint8_t spp) {
    return simple(sa_wire::op::remove_sa, spp, 0);
}

sa_wire::update flush() {
    return simple(sa_wire::op::flush, 0, 0);
}

result<std::vector<outcome>> send(const std::string& file_prefix, std::vector<sa_wire::update>& updates,
                                  std::chrono::milliseconds wait) {
    auto wipe_all = [&] {
        for (auto& u : updates) {
            secure_wipe(u.key, sizeof(u.key));
        }
    };
    auto ch = sa_channel::attach(file_prefix);
    if (!ch) {
        wipe_all();
        return ch.err();
    }
    sa_channel::writer_lock lock(*ch);
    // Acknowledgements left by a writer that gave up are not ours.
    sa_wire::ack stale;
    while (ch->pop_ack(stale)) {
    }
    std::vector<outcome> done;
    uint64_t seq = first_sequence();
    for (auto& u : updates) {
        u.sequence = ++seq;
        if (u.operation != static_cast<uint8_t>(sa_wire::op::set_ticket)) {
            // The data plane measures its apply latency from here (not for
            // set_ticket, whose value covers the field).
            u.sent_ns = monotonic_now_ns();
        }
        const auto deadline = std::chrono::steady_clock::now() + wait;
        while (!ch->push_update(u)) {
            if (std::chrono::steady_clock::now() >= deadline) {
                wipe_all();
                return error{fmt::format("the SA channel of file prefix {} stays full: is ptpsec-dataplane "
                                         "running and polling?",
                                         file_prefix)};
            }
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
        secure_wipe(u.key, sizeof(u.key));
        sa_wire::ack a;
        bool got = false;
        while (!got) {
            if (ch->pop_ack(a)) {
                got = a.magic == sa_wire::ack_magic && a.sequence == u.sequence;
                continue;
            }
            if (std::chrono::steady_clock::now() >= deadline) {
                wipe_all();
                return error{fmt::format("no acknowledgement of {} (spp {} key {}) within {} ms: is "
                                         "ptpsec-dataplane with file prefix {} still running?",
                                         op_name(u.operation), u.spp, u.key_id, wait.count(), file_prefix)};
            }
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        outcome o;
        o.update = u;
        o.applied = a.result == static_cast<uint8_t>(sa_wire::status::applied);
        o.reason = std::string(a.reason, strnlen(a.reason, sizeof(a.reason)));
        done.push_back(std::move(o));
    }
    return done;
}

} // namespace ptpsec::sa_client
