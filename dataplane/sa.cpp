#include <dataplane/sa.h>

#include <drivers/base/bytes.h>

#include <fmt/format.h>
#include <malloc.h>

namespace ptpsec {

key_bytes::~key_bytes() {
    secure_wipe(_b.data(), _b.size());
}

void keep_freed_key_memory() noexcept {
    // Setting it also stops glibc from moving the mmap threshold, which
    // stays at its default (128 KiB): the large allocations are not ours.
    (void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

size_t sa_database::size() const noexcept {
    size_t n = 0;
    for (const auto& s : _by_spp) {
        n += s != nullptr;
    }
    return n;
}

result<std::shared_ptr<sa_key>> make_sa_key(icv::engine& eng, uint8_t spp, const key_config& kc, size_t gmac_senders) {
    auto k = std::make_shared<sa_key>();
    k->key_id = kc.key_id;
    k->alg = kc.alg;
    k->icv_len = icv::icv_length(kc.alg);
    ptp::auth_params ap;
    ap.spp = spp;
    ap.keyID = kc.key_id;
    ap.icv_len = k->icv_len;
    ap.with_seqno = icv::is_gmac(kc.alg); // the sender's IV (docs/security.md)
    k->tlv = ptp::make_auth_tlv_template(ap);
    if (icv::is_gmac(kc.alg)) {
        auto g = icv::gmac_sender_keys::create(eng, kc.alg, kc.key.span(), gmac_senders);
        if (!g) {
            return error{fmt::format("{}: {}", kc.origin, g.message())};
        }
        k->gmac = std::move(g).value();
    } else {
        auto m = eng.prepare(kc.alg, kc.key.span());
        if (!m) {
            return error{fmt::format("{}: {}", kc.origin, m.message())};
        }
        k->mac = std::move(m).value();
    }
    return k;
}

result<sa_database> sa_database::install(icv::engine& eng, std::span<const sa_config> sas, size_t gmac_senders) {
    sa_database db;
    db._gmac_senders = gmac_senders;
    for (const auto& c : sas) {
        if (db._by_spp[c.spp] != nullptr) {
            return error{fmt::format("{}: spp {} is defined twice", c.origin, c.spp)};
        }
        auto sa = std::make_shared<security_association>();
        sa->spp = c.spp;
        sa->seqid_window = c.seqid_window;
        sa->allow_mutable = c.allow_mutable;
        for (const auto& kc : c.keys) {
            if (sa->find_key(kc.key_id) != nullptr) {
                return error{fmt::format("{}: key id {} is defined twice in spp {}", kc.origin, kc.key_id, c.spp)};
            }
            auto k = make_sa_key(eng, c.spp, kc, gmac_senders);
            if (!k) {
                return k.err();
            }
            sa->keys.push_back(std::move(k).value());
        }
        db._by_spp[c.spp] = std::move(sa);
    }
    return db;
}

} // namespace ptpsec
