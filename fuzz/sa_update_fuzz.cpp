// libFuzzer target for SA updates (dataplane/sa_update.h): the records the
// data plane reads from the shared-memory channel come from another process
// and are parsed like any input. The input is cut into 128-octet records,
// applied in turn; after each one the database must be consistent, a refused
// record must leave it as it was, and nothing may crash or leak.

#include <dataplane/sa_update.h>
#include <drivers/icv/ipsecmb_engine.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace {

using namespace ptpsec;

void require(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "sa_update_fuzz: %s\n", what);
        std::abort();
    }
}

icv::ipsecmb_engine& engine() {
    static icv::ipsecmb_engine eng(icv::default_arch_plan());
    return eng;
}

/// Every SA has keys with distinct IDs, and its current key is one of them.
void check_consistent(const sa_database& db) {
    for (unsigned spp = 0; spp < 256; ++spp) {
        const security_association* sa = db.find(static_cast<uint8_t>(spp));
        if (sa == nullptr) {
            continue;
        }
        require(sa->spp == spp, "SA stored under its SPP");
        require(!sa->keys.empty(), "an SA has keys");
        for (size_t i = 0; i < sa->keys.size(); ++i) {
            require(sa->keys[i] != nullptr, "no empty key slot");
            require(sa->keys[i]->mac != nullptr || sa->keys[i]->gmac != nullptr, "a key is expanded");
            for (size_t j = i + 1; j < sa->keys.size(); ++j) {
                require(sa->keys[i]->key_id != sa->keys[j]->key_id, "key IDs unique in an SA");
            }
        }
        require(!sa->has_sign_key || sa->find_key(sa->sign_key_id) != nullptr, "the current key is installed");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto db = std::make_unique<sa_database>();
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
        }
        const sa_database* before = db.get();
        const size_t size_before = db->size();
        auto r = apply_update(*db, u, engine());
        const sa_wire::ack a = make_ack(u, r ? ok_status() : status(r.err()));
        require(a.sequence == u.sequence, "ack echoes the sequence");
        require(std::memchr(a.reason, '\0', sizeof(a.reason)) != nullptr, "reason is terminated");
        if (!r) {
            require(db.get() == before && db->size() == size_before, "a refused update changes nothing");
            require(a.reason[0] != '\0', "a refusal says why");
            continue;
        }
        require(r->next != nullptr, "an applied update makes a version");
        for (const auto& k : r->retired) {
            const security_association* sa = r->next->find(k.spp);
            require(sa == nullptr || sa->find_key(k.key_id) == nullptr, "a retired key is gone");
        }
        db = std::move(r->next);
        check_consistent(*db);
    }
    return 0;
}
