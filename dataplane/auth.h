#pragma once

// Sign and verify bursts of frames (IEEE 1588-2019 16.14, seeds/001 §7): the
// whole per-frame path - classify, parse, append or locate the
// AUTHENTICATION TLV, compute the ICV for the burst at once, compare in
// constant time, fix lengths and checksums. One signer and one verifier per
// lcore; they own fixed scratch arrays and allocate nothing per call.

#include <dataplane/ptp/frame.h>
#include <dataplane/replay.h>
#include <dataplane/sa.h>
#include <drivers/icv/engine.h>
#include <drivers/icv/gmac.h>

#include <array>
#include <cstdint>

namespace ptpsec {

/// What happened to one frame in sign_burst().
enum class sign_status : uint8_t {
    signed_ok,
    not_ptp,        ///< left untouched
    already_signed, ///< left untouched
    malformed,      ///< see the ptp::error
    no_sa,          ///< the SPP or key ID is not installed
    no_room,        ///< buffer too small for the TLV
    expired_key,    ///< the key (or the SA's current key) was removed or expired: signing stops
    crypto_failed,  ///< the engine refused (a programming error, counted); stays last
};

/// What happened to one frame in verify_burst().
enum class verify_status : uint8_t {
    verified,
    not_ptp,
    malformed,        ///< see the ptp::error
    unsigned_message, ///< no AUTHENTICATION TLV
    unknown_spp,
    unknown_key,
    icv_length_mismatch, ///< the TLV's ICV is not as long as the key's algorithm makes
    iv_mismatch,         ///< GMAC key without sequenceNo, or sequenceNo with a non-GMAC key
    bad_icv,
    replayed,      ///< the ICV is good but the message was accepted before (replay_table)
    too_old,       ///< the ICV is good but the message is behind the replay window
    expired_key,   ///< a key ID its SA retired (removed or expired; security_association::retired_ids)
    crypto_failed, ///< stays last
};

inline constexpr size_t verify_status_count = static_cast<size_t>(verify_status::crypto_failed) + 1;
inline constexpr size_t sign_status_count = static_cast<size_t>(sign_status::crypto_failed) + 1;

std::string_view sign_status_name(sign_status s) noexcept;
std::string_view verify_status_name(verify_status s) noexcept;

struct frame_outcome {
    uint8_t status = 0; ///< sign_status or verify_status
    ptp::error cause = ptp::error::none;
    /// signed_ok: a TICKET TLV went in before the AUTHENTICATION TLV
    /// (signer, seeds/001 §6)
    bool ticket_attached = false;
};

/// The largest burst handled in one pass; longer bursts are taken in parts.
inline constexpr uint16_t auth_max_burst = 64;

class signer {
public:
    /// `iv` is the GMAC IV counter of this data plane (shared by its lcores).
    signer(icv::engine& eng, sa_database& sad, icv::gmac_iv_counter& iv, const ptp::wire_options& opt = {}) noexcept
        : _engine(&eng), _sad(&sad), _iv(&iv), _opt(opt) {}

    /// Signs every PTP frame without an AUTHENTICATION TLV with key `key_id`
    /// of SA `spp`: the TLV is appended as the last TLV, lengths and
    /// checksums are fixed. Frames that are not signed are left as they were
    /// and keep their place; out[i] says why (no_sa, or expired_key for a key
    /// the SA retired). Returns the number signed.
    ///
    /// When the key has a ticket (security_association::tickets), a unicast
    /// request - a Signaling message with a REQUEST_UNICAST_TRANSMISSION TLV
    /// and no TICKET TLV yet - gets a TICKET TLV (wire_options::
    /// ticket_tlv_type) with it before the AUTHENTICATION TLV, so that the
    /// ICV covers it (seeds/001 §6), and out[i].ticket_attached is set. A
    /// frame without room for both TLVs is no_room and left as it was.
    uint16_t sign_burst(ptp::frame_buf* frames, uint16_t n, uint8_t spp, uint32_t key_id, frame_outcome* out) noexcept;

    /// sign_burst() with the SA's current key (security_association::
    /// sign_key_id); no_sa for every frame while the SA has none, expired_key
    /// once that key was removed or expired and no other was made current.
    uint16_t sign_burst_current(ptp::frame_buf* frames, uint16_t n, uint8_t spp, frame_outcome* out) noexcept;

    /// Reads SAs from `sad` from the next call on (a new version of the
    /// database, see dataplane/sa_table.h).
    void use(sa_database& sad) noexcept { _sad = &sad; }

private:
    uint16_t sign_with(ptp::frame_buf* frames, uint16_t n, security_association* sa, sa_key* key, sign_status missing,
                       frame_outcome* out) noexcept;
    uint16_t sign_part(ptp::frame_buf* frames, uint16_t n, security_association& sa, sa_key& key,
                       frame_outcome* out) noexcept;

    icv::engine* _engine;
    sa_database* _sad;
    icv::gmac_iv_counter* _iv;
    ptp::wire_options _opt;

    struct pending {
        ptp::frame_info fi;
        ptp::pending_auth pa;
        uint16_t index;
        uint16_t ticket_at; ///< where the TICKET TLV went in the message; 0: none
        uint8_t saved_correction[ptp::correction_len];
        uint8_t nonce[icv::gmac_nonce_len];
    };
    std::array<pending, auth_max_burst> _pending{};
    std::array<icv::mac_request, auth_max_burst> _reqs{};
};

class verifier {
public:
    /// With a replay table, a frame whose ICV verified is also checked
    /// against (and recorded in) its stream's replay window: a replay is
    /// refused as replayed or too_old.
    explicit verifier(icv::engine& eng, sa_database& sad, const ptp::wire_options& opt = {},
                      replay_table* replay = nullptr) noexcept
        : _engine(&eng), _sad(&sad), _opt(opt), _replay(replay) {}

    /// Verifies the AUTHENTICATION TLV of every frame; frames are not
    /// modified. out[i] holds the verdict. Returns the number verified.
    uint16_t verify_burst(const ptp::frame_buf* frames, uint16_t n, frame_outcome* out) noexcept;

    /// verify_burst(), then every verified frame loses its AUTHENTICATION
    /// TLV (lengths and checksums fixed), for receivers that do not know it.
    /// Frames that do not verify are left as they came.
    uint16_t verify_strip_burst(ptp::frame_buf* frames, uint16_t n, frame_outcome* out) noexcept;

    /// Reads SAs from `sad` from the next call on.
    void use(sa_database& sad) noexcept { _sad = &sad; }

private:
    uint16_t verify_part(const ptp::frame_buf* frames, uint16_t n, frame_outcome* out, ptp::frame_buf* strip) noexcept;

    icv::engine* _engine;
    sa_database* _sad;
    ptp::wire_options _opt;
    replay_table* _replay;

    struct pending {
        ptp::frame_info fi;
        uint16_t auth_offset;
        uint8_t spp;
        uint32_t key_id;
        uint8_t* msg;
        uint16_t index;
        uint16_t icv_len;
        bool zeroed_correction; ///< allow_mutable: correctionField is zeroed, put it back
        const uint8_t* wire_icv;
        /// GMAC: the sender's entry, when not confirmed yet (confirmed if
        /// the frame verifies); otherwise nullptr.
        icv::gmac_sender_keys* gmac_keys;
        const icv::gmac_sender_keys::entry* unconfirmed;
        uint8_t saved_correction[ptp::correction_len];
        uint8_t nonce[icv::gmac_nonce_len];
        alignas(16) uint8_t icv[icv::max_icv_len];
    };
    std::array<pending, auth_max_burst> _pending{};
    std::array<icv::mac_request, auth_max_burst> _reqs{};
};

} // namespace ptpsec
