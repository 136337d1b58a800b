#include <drivers/icv/gmac.h>

#include <drivers/base/bytes.h>

#include <bit>
#include <cstring>
#include <ctime>
#include <string_view>

namespace ptpsec::icv {

namespace {

constexpr std::string_view kdf_label = "ptpsec gmac v1";
constexpr size_t sha256_len = 32;
constexpr size_t info_len = kdf_label.size() + 2 + port_identity_len;

} // namespace

result<gmac_kdf> gmac_kdf::create(engine& eng, algorithm gmac_alg, std::span<const uint8_t> group_key) {
    if (!is_gmac(gmac_alg)) {
        return error{"GMAC key derivation asked for a non-GMAC algorithm"};
    }
    if (auto st = check_key_length(gmac_alg, group_key.size()); !st) {
        return st.err();
    }
    // RFC 5869 §2.2: without a salt, HMAC is keyed with HashLen zero octets.
    const uint8_t zero_salt[sha256_len] = {};
    auto extract = eng.prepare(algorithm::hmac_sha256, zero_salt);
    if (!extract) {
        return extract.err();
    }
    uint8_t prk[sha256_len];
    if (!eng.compute_one(**extract, group_key, nullptr, prk)) {
        return error{"GMAC key derivation: HKDF-Extract failed"};
    }
    auto prk_key = eng.prepare(algorithm::hmac_sha256, prk);
    secure_wipe(prk, sizeof(prk));
    if (!prk_key) {
        return prk_key.err();
    }
    return gmac_kdf(gmac_alg, std::move(prk_key).value());
}

bool gmac_kdf::derive(engine& eng, const uint8_t* port_identity, uint8_t* out) const noexcept {
    // HKDF-Expand: T(i) = HMAC(PRK, T(i-1) || info || i). At most 36 octets
    // are needed (AES-256 key and salt), so two blocks.
    uint8_t msg[sha256_len + info_len + 1];
    uint8_t* info_at = msg + sha256_len;
    std::memcpy(info_at, kdf_label.data(), kdf_label.size());
    store_be16(info_at + kdf_label.size(), ptpsec::icv::info(_alg).mac_type);
    std::memcpy(info_at + kdf_label.size() + 2, port_identity, port_identity_len);

    uint8_t t[2][sha256_len];
    info_at[info_len] = 1;
    bool ok = eng.compute_one(*_prk, std::span<const uint8_t>(info_at, info_len + 1), nullptr, t[0]);
    std::memcpy(msg, t[0], sha256_len);
    msg[sha256_len + info_len] = 2;
    ok = ok && eng.compute_one(*_prk, std::span<const uint8_t>(msg, sizeof(msg)), nullptr, t[1]);
    if (ok) {
        std::memcpy(out, t, output_len());
    }
    secure_wipe(t, sizeof(t));
    secure_wipe(msg, sizeof(msg));
    return ok;
}

gmac_sender_keys::gmac_sender_keys(gmac_kdf kdf, size_t capacity)
    : _kdf(std::move(kdf)), _table(capacity), _mask(capacity - 1) {}

result<std::unique_ptr<gmac_sender_keys>>
gmac_sender_keys::create(engine& eng, algorithm gmac_alg, std::span<const uint8_t> group_key, size_t capacity) {
    auto kdf = gmac_kdf::create(eng, gmac_alg, group_key);
    if (!kdf) {
        return kdf.err();
    }
    capacity = std::bit_ceil(std::max<size_t>(capacity, probe_limit));
    std::unique_ptr<gmac_sender_keys> keys(new gmac_sender_keys(std::move(kdf).value(), capacity));
    // Every slot gets room for its key now, so that a lookup only re-keys.
    auto prepare_slot = [&](entry& e) -> status {
        auto k = eng.prepare_slot(gmac_alg);
        if (!k) {
            return k.err();
        }
        e.key = std::move(k).value();
        return ok_status();
    };
    for (auto& e : keys->_table) {
        if (auto st = prepare_slot(e); !st) {
            return st.err();
        }
    }
    if (auto st = prepare_slot(keys->_scratch); !st) {
        return st.err();
    }
    return keys;
}

const gmac_sender_keys::entry* gmac_sender_keys::derive(engine& eng, const uint8_t* port_identity) noexcept {
    const size_t home = hash_port_identity(port_identity) & _mask;
    entry* free_slot = nullptr;
    entry* unconfirmed = nullptr;
    for (size_t i = 0; i < probe_limit && free_slot == nullptr; ++i) {
        entry& e = _table[(home + i) & _mask];
        if (!e.used || std::memcmp(e.port_identity.data(), port_identity, port_identity_len) == 0) {
            free_slot = &e;
        } else if (!e.confirmed && unconfirmed == nullptr) {
            unconfirmed = &e;
        }
    }
    entry* slot = free_slot != nullptr ? free_slot : unconfirmed;
    if (slot == nullptr) {
        slot = &_scratch;
        bump(_scratch_derivations);
    }
    uint8_t okm[32 + gmac_salt_len];
    const size_t key_len = info(_kdf.alg()).key_len;
    slot->used = false;
    slot->confirmed = false;
    if (!_kdf.derive(eng, port_identity, okm) || !eng.rekey(*slot->key, std::span<const uint8_t>(okm, key_len))) {
        secure_wipe(okm, sizeof(okm));
        return nullptr;
    }
    std::memcpy(slot->salt.data(), okm + key_len, gmac_salt_len);
    std::memcpy(slot->port_identity.data(), port_identity, port_identity_len);
    slot->used = true;
    secure_wipe(okm, sizeof(okm));
    bump(_derivations);
    return slot;
}

const gmac_sender_keys::entry* gmac_sender_keys::confirm(const entry* e, const uint8_t* port_identity) noexcept {
    if (e == nullptr || !e->used || std::memcmp(e->port_identity.data(), port_identity, port_identity_len) != 0) {
        return nullptr;
    }
    if (e != &_scratch) {
        // Entries are handed out const; the table owns them.
        const_cast<entry*>(e)->confirmed = true;
        return e;
    }
    entry& home = _table[hash_port_identity(port_identity) & _mask];
    std::swap(home, _scratch); // the prepared keys change places: no allocation
    home.confirmed = true;
    _scratch.used = false;
    _scratch.confirmed = false;
    return &home;
}

uint64_t gmac_iv_counter::clock_start() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_TAI, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

void make_gmac_nonce(const uint8_t* salt, uint64_t iv, uint8_t* nonce) noexcept {
    std::memcpy(nonce, salt, gmac_salt_len);
    store_be64(nonce + gmac_salt_len, iv);
}

} // namespace ptpsec::icv
