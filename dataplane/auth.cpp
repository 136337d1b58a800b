#include <dataplane/auth.h>

#include <drivers/base/bytes.h>

#include <rte_prefetch.h>

#include <algorithm>
#include <cstring>

namespace ptpsec {

namespace {

// Names are unique across both lists too: drop_reasons() (worker.h) lists
// sign and verify drops under these names in one set of counters, hence
// "expired_key_unsigned" for signing (as "malformed_unsigned" there).
constexpr std::string_view sign_names[sign_status_count] = {
    "signed", "not_ptp", "already_signed", "malformed", "no_sa", "no_room", "expired_key_unsigned", "crypto_failed",
};

constexpr std::string_view verify_names[verify_status_count] = {
    "verified",    "not_ptp", "malformed", "unsigned", "unknown_spp", "unknown_key",   "icv_length_mismatch",
    "iv_mismatch", "bad_icv", "replayed",  "too_old",  "expired_key", "crypto_failed",
};

template <typename S>
void set(frame_outcome& o, S s, ptp::error cause = ptp::error::none) noexcept {
    o.status = static_cast<uint8_t>(s);
    o.cause = cause;
    o.ticket_attached = false;
}

/// seeds/001 §6: the ticket travels with the requester's unicast
/// negotiation request, a Signaling message carrying REQUEST_UNICAST_
/// TRANSMISSION (16.1.4.1), unless it carries a TICKET TLV already.
bool wants_ticket(const uint8_t* msg, const ptp::message_scan& sc) noexcept {
    return static_cast<ptp::message_type>(msg[0] & 0x0F) == ptp::message_type::signaling && sc.ticket_offset == 0 &&
           ptp::has_tlv(msg, sc, ptp::tlv_request_unicast_transmission);
}

/// Frames ahead of the one being worked on whose first octets are fetched
/// into the cache meanwhile (DPDK's usual practice on an rx burst).
constexpr uint16_t prefetch_ahead = 3;
/// Octets of a frame to fetch: the headers, the PTP header and, for the
/// short messages PTP mostly sends, the TLVs.
constexpr uint32_t prefetch_octets = 192;
constexpr uint32_t cache_line = 64;

void prefetch_frame(const ptp::frame_buf& f) noexcept {
    const uint32_t end = std::min(f.len, prefetch_octets);
    for (uint32_t off = 0; off < end; off += cache_line) {
        rte_prefetch0(f.data + off);
    }
}

/// Prefetches the first frames of a burst; the loops then keep
/// prefetch_ahead frames ahead.
void prefetch_first(const ptp::frame_buf* frames, uint16_t n) noexcept {
    for (uint16_t i = 0; i < std::min(n, prefetch_ahead); ++i) {
        prefetch_frame(frames[i]);
    }
}

/// Zeroes correctionField (allow_mutable) and keeps the old value to put back.
void zero_correction(uint8_t* msg, uint8_t* saved) noexcept {
    std::memcpy(saved, msg + ptp::correction_offset, ptp::correction_len);
    std::memset(msg + ptp::correction_offset, 0, ptp::correction_len);
}

void restore_correction(uint8_t* msg, const uint8_t* saved) noexcept {
    std::memcpy(msg + ptp::correction_offset, saved, ptp::correction_len);
}

/// Hands the requests queued since `computed` to the engine.
void compute_queued(icv::engine& eng, const icv::mac_request* reqs, uint16_t m, uint16_t& computed) noexcept {
    computed =
        static_cast<uint16_t>(computed + eng.compute_burst(reqs + computed, static_cast<uint16_t>(m - computed)));
}

/// The GMAC subkey of the sender whose message starts at `msg`. Deriving may
/// replace a table entry that queued requests use, so those are computed
/// first. nullptr if the engine refuses the derived key.
const icv::gmac_sender_keys::entry* sender_key(icv::gmac_sender_keys& keys, const uint8_t* msg, icv::engine& eng,
                                               const icv::mac_request* reqs, uint16_t m, uint16_t& computed) noexcept {
    const uint8_t* pid = msg + ptp::source_port_identity_offset;
    if (const auto* e = keys.find(pid); e != nullptr) {
        return e;
    }
    compute_queued(eng, reqs, m, computed);
    return keys.derive(eng, pid);
}

} // namespace

std::string_view sign_status_name(sign_status s) noexcept {
    const auto i = static_cast<size_t>(s);
    return i < sign_status_count ? sign_names[i] : "invalid";
}

std::string_view verify_status_name(verify_status s) noexcept {
    const auto i = static_cast<size_t>(s);
    return i < verify_status_count ? verify_names[i] : "invalid";
}

uint16_t signer::sign_burst(ptp::frame_buf* frames, uint16_t n, uint8_t spp, uint32_t key_id,
                            frame_outcome* out) noexcept {
    security_association* sa = _sad->find(spp);
    sa_key* key = sa != nullptr ? sa->find_key(key_id) : nullptr;
    const bool retired = key == nullptr && sa != nullptr && sa->retired_ids.contains(key_id);
    return sign_with(frames, n, sa, key, retired ? sign_status::expired_key : sign_status::no_sa, out);
}

uint16_t signer::sign_burst_current(ptp::frame_buf* frames, uint16_t n, uint8_t spp, frame_outcome* out) noexcept {
    security_association* sa = _sad->find(spp);
    sa_key* key = sa != nullptr && sa->has_sign_key ? sa->find_key(sa->sign_key_id) : nullptr;
    const bool retired = key == nullptr && sa != nullptr && sa->sign_key_retired;
    return sign_with(frames, n, sa, key, retired ? sign_status::expired_key : sign_status::no_sa, out);
}

uint16_t signer::sign_with(ptp::frame_buf* frames, uint16_t n, security_association* sa, sa_key* key,
                           sign_status missing, frame_outcome* out) noexcept {
    uint16_t done = 0;
    for (uint16_t base = 0; base < n; base = static_cast<uint16_t>(base + auth_max_burst)) {
        const auto count = static_cast<uint16_t>(std::min<int>(auth_max_burst, n - base));
        if (key == nullptr) {
            // What is not PTP is not the path's to sign: it still goes
            // through (the worker forwards not_ptp), key or no key.
            ptp::frame_info fi;
            for (uint16_t i = 0; i < count; ++i) {
                const ptp::frame_buf& f = frames[base + i];
                set(out[base + i],
                    ptp::classify_frame(f.data, f.len, fi) == ptp::error::not_ptp ? sign_status::not_ptp : missing);
            }
            continue;
        }
        done = static_cast<uint16_t>(done + sign_part(frames + base, count, *sa, *key, out + base));
    }
    return done;
}

uint16_t signer::sign_part(ptp::frame_buf* frames, uint16_t n, security_association& sa, sa_key& key,
                           frame_outcome* out) noexcept {
    const bool gmac = key.gmac != nullptr;
    // Looked up once per burst; rare (a requester's unicast key).
    const key_ticket* ticket = sa.find_ticket(key.key_id);
    uint64_t next_iv = gmac ? _iv->reserve(n) : 0;
    const ptp::auth_tlv_template& tlv = key.tlv;
    uint16_t m = 0;        // requests prepared
    uint16_t computed = 0; // requests already handed to the engine

    // Pass 1: find the message, append the TLV, queue its ICV.
    ptp::message_scan sc; // reused: scan_message sets what it needs
    prefetch_first(frames, n);
    for (uint16_t i = 0; i < n; ++i) {
        if (i + prefetch_ahead < n) {
            prefetch_frame(frames[i + prefetch_ahead]);
        }
        ptp::frame_buf& f = frames[i];
        pending& p = _pending[m];
        if (const ptp::error e = ptp::classify_frame(f.data, f.len, p.fi); e != ptp::error::none) {
            set(out[i], e == ptp::error::not_ptp ? sign_status::not_ptp : sign_status::malformed, e);
            continue;
        }
        uint8_t* msg = f.data + p.fi.ptp_offset;
        if (const ptp::error e = ptp::scan_message(msg, p.fi.ptp_avail, sc, _opt); e != ptp::error::none) {
            set(out[i], sign_status::malformed, e);
            continue;
        }
        if (sc.has_auth) {
            set(out[i], sign_status::already_signed);
            continue;
        }
        const uint8_t* salt = nullptr;
        const icv::prepared_key* pk = key.mac.get();
        if (gmac) {
            const auto* e = sender_key(*key.gmac, msg, *_engine, _reqs.data(), m, computed);
            if (e != nullptr && !e->confirmed) {
                // Our own sourcePortIdentity: it stays in the table.
                e = key.gmac->confirm(e, msg + ptp::source_port_identity_offset);
            }
            if (e == nullptr) {
                set(out[i], sign_status::crypto_failed);
                continue;
            }
            salt = e->salt.data();
            pk = e->key.get();
        }
        uint16_t ml = sc.messageLength;
        p.ticket_at = 0;
        if (ticket != nullptr && wants_ticket(msg, sc)) {
            // Room for both TLVs, or neither goes in.
            if (size_t{p.fi.ptp_offset} + ml + ptp::tlv_header_len + ticket->length + tlv.add > f.cap) {
                set(out[i], sign_status::no_room, ptp::error::no_room);
                continue;
            }
            if (const ptp::error e = ptp::append_tlv(f, p.fi, ml, _opt.ticket_tlv_type, ticket->bytes());
                e != ptp::error::none) {
                set(out[i], e == ptp::error::no_room ? sign_status::no_room : sign_status::malformed, e);
                continue;
            }
            p.ticket_at = ml;
            ml = p.fi.ptp_avail;
        }
        if (const ptp::error e = ptp::append_auth_tlv(f, p.fi, ml, tlv, gmac ? next_iv : 0, p.pa);
            e != ptp::error::none) {
            if (p.ticket_at != 0) {
                // Too long with both: the TICKET TLV goes again (the frame
                // is not signed, and is dropped).
                (void)ptp::strip_auth_tlv(f, p.fi, p.ticket_at);
            }
            set(out[i], e == ptp::error::no_room ? sign_status::no_room : sign_status::malformed, e);
            continue;
        }
        if (gmac) {
            icv::make_gmac_nonce(salt, next_iv++, p.nonce);
        }
        if (sa.allow_mutable) {
            zero_correction(msg, p.saved_correction);
        }
        p.index = i;
        _reqs[m] = icv::mac_request{pk, msg, p.pa.icv_offset, gmac ? p.nonce : nullptr, msg + p.pa.icv_offset};
        ++m;
    }

    // Pass 2: every ICV of the burst in one engine call.
    compute_queued(*_engine, _reqs.data(), m, computed);

    // Pass 3: put correctionField back, then the UDP checksum over the ICV.
    if (computed == m) {
        for (uint16_t r = 0; r < m; ++r) {
            const pending& p = _pending[r];
            uint8_t* frame = frames[p.index].data;
            if (sa.allow_mutable) {
                restore_correction(frame + p.fi.ptp_offset, p.saved_correction);
            }
            ptp::finish_auth_tlv(frame, p.fi, p.pa);
            set(out[p.index], sign_status::signed_ok);
            out[p.index].ticket_attached = p.ticket_at != 0;
        }
        return m;
    }
    // The engine refused a request: nothing identifies which, so the burst
    // is reported as failed rather than risk a wrong ICV passing. Frames
    // that are not signed leave as they came: take the TLV out.
    ptp::message_view mv;
    for (uint16_t r = 0; r < m; ++r) {
        const pending& p = _pending[r];
        ptp::frame_buf& f = frames[p.index];
        if (sa.allow_mutable) {
            restore_correction(f.data + p.fi.ptp_offset, p.saved_correction);
        }
        ptp::frame_info fi = p.fi;
        if (p.ticket_at != 0) {
            // The TICKET TLV goes too: the message ends where it started.
            (void)ptp::strip_auth_tlv(f, fi, p.ticket_at);
        } else if (ptp::parse_message(f.data + fi.ptp_offset, fi.ptp_avail, mv, _opt) == ptp::error::none) {
            (void)ptp::strip_auth_tlv(f, fi, mv);
        }
        set(out[p.index], sign_status::crypto_failed);
    }
    return 0;
}

uint16_t verifier::verify_burst(const ptp::frame_buf* frames, uint16_t n, frame_outcome* out) noexcept {
    uint16_t done = 0;
    for (uint16_t base = 0; base < n; base = static_cast<uint16_t>(base + auth_max_burst)) {
        const auto count = static_cast<uint16_t>(std::min<int>(auth_max_burst, n - base));
        done = static_cast<uint16_t>(done + verify_part(frames + base, count, out + base, nullptr));
    }
    return done;
}

uint16_t verifier::verify_strip_burst(ptp::frame_buf* frames, uint16_t n, frame_outcome* out) noexcept {
    uint16_t done = 0;
    for (uint16_t base = 0; base < n; base = static_cast<uint16_t>(base + auth_max_burst)) {
        const auto count = static_cast<uint16_t>(std::min<int>(auth_max_burst, n - base));
        done = static_cast<uint16_t>(done + verify_part(frames + base, count, out + base, frames + base));
    }
    return done;
}

uint16_t verifier::verify_part(const ptp::frame_buf* frames, uint16_t n, frame_outcome* out,
                               ptp::frame_buf* strip) noexcept {
    uint16_t m = 0;
    uint16_t computed = 0;
    uint16_t ok = 0;

    ptp::frame_info fi;
    ptp::message_scan mv; // reused: scan_message sets what it needs
    security_association* sa = nullptr;
    sa_key* key = nullptr; // the last key found, with its SA
    prefetch_first(frames, n);
    for (uint16_t i = 0; i < n; ++i) {
        if (i + prefetch_ahead < n) {
            prefetch_frame(frames[i + prefetch_ahead]);
        }
        const ptp::frame_buf& f = frames[i];
        if (const ptp::error e = ptp::classify_frame(f.data, f.len, fi); e != ptp::error::none) {
            set(out[i], e == ptp::error::not_ptp ? verify_status::not_ptp : verify_status::malformed, e);
            continue;
        }
        uint8_t* msg = f.data + fi.ptp_offset;
        if (const ptp::error e = ptp::scan_message(msg, fi.ptp_avail, mv, _opt); e != ptp::error::none) {
            set(out[i], verify_status::malformed, e);
            continue;
        }
        if (!mv.has_auth) {
            set(out[i], verify_status::unsigned_message);
            continue;
        }
        // A burst mostly carries one SA and key: look up only on a change.
        if (key == nullptr || mv.auth.spp != sa->spp || mv.auth.keyID != key->key_id) {
            sa = _sad->find(mv.auth.spp);
            if (sa == nullptr) {
                key = nullptr;
                set(out[i], verify_status::unknown_spp);
                continue;
            }
            key = sa->find_key(mv.auth.keyID);
            if (key == nullptr) {
                // A key the SA retired is told apart from one it never had:
                // a late frame or a peer still on an old key, not a stranger.
                set(out[i],
                    sa->retired_ids.contains(mv.auth.keyID) ? verify_status::expired_key : verify_status::unknown_key);
                continue;
            }
        }
        if (mv.auth.icv_len != key->icv_len) {
            set(out[i], verify_status::icv_length_mismatch);
            continue;
        }
        const bool gmac = key->gmac != nullptr;
        if (gmac != mv.auth.has_seqno) {
            set(out[i], verify_status::iv_mismatch);
            continue;
        }
        pending& p = _pending[m];
        const icv::prepared_key* pk = key->mac.get();
        p.unconfirmed = nullptr;
        if (gmac) {
            const auto* e = sender_key(*key->gmac, msg, *_engine, _reqs.data(), m, computed);
            if (e == nullptr) {
                set(out[i], verify_status::crypto_failed);
                continue;
            }
            icv::make_gmac_nonce(e->salt.data(), mv.auth.sequenceNo, p.nonce);
            pk = e->key.get();
            if (!e->confirmed) {
                p.gmac_keys = key->gmac.get();
                p.unconfirmed = e;
            }
        }
        p.fi = fi;
        p.auth_offset = mv.auth.offset;
        p.spp = mv.auth.spp;
        p.key_id = mv.auth.keyID;
        p.msg = msg;
        p.index = i;
        p.icv_len = mv.auth.icv_len;
        p.wire_icv = msg + mv.auth.icv_offset;
        p.zeroed_correction = sa->allow_mutable;
        if (p.zeroed_correction) {
            zero_correction(msg, p.saved_correction);
        }
        _reqs[m] = icv::mac_request{pk, msg, mv.auth.icv_offset, gmac ? p.nonce : nullptr, p.icv};
        ++m;
    }

    compute_queued(*_engine, _reqs.data(), m, computed);
    const bool engine_ok = computed == m;

    for (uint16_t r = 0; r < m; ++r) {
        pending& p = _pending[r];
        if (p.zeroed_correction) {
            restore_correction(p.msg, p.saved_correction);
        }
        if (!engine_ok) {
            set(out[p.index], verify_status::crypto_failed);
        } else if (!ct_equal(p.icv, p.wire_icv, p.icv_len)) {
            set(out[p.index], verify_status::bad_icv);
        } else if (const replay_verdict rv =
                       _replay != nullptr ? _replay->accept(p.msg, p.spp, p.key_id) : replay_verdict::accepted;
                   rv != replay_verdict::accepted) {
            set(out[p.index], rv == replay_verdict::replayed ? verify_status::replayed : verify_status::too_old);
        } else {
            set(out[p.index], verify_status::verified);
            ++ok;
            if (p.unconfirmed != nullptr) {
                // The sender proved itself: its subkey stays in the table.
                (void)p.gmac_keys->confirm(p.unconfirmed, p.msg + ptp::source_port_identity_offset);
            }
            if (strip != nullptr) {
                // Cannot fail: the shorter lengths fit where the longer did.
                (void)ptp::strip_auth_tlv(strip[p.index], p.fi, p.auth_offset);
            }
        }
    }
    return ok;
}

} // namespace ptpsec
