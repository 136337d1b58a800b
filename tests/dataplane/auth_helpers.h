#pragma once

// Test helpers for the sign/verify path: engines by name, SAs built from
// sa_config (as the control plane would, without depending on it) and
// printers so that failures show status names instead of raw octets.

#include "frame_builder.h"

#include <dataplane/auth.h>
#include <dataplane/sa.h>
#include <drivers/icv/ipsecmb_engine.h>
#include <drivers/icv/openssl_engine.h>

#include <gtest/gtest.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace ptpsec {

// GoogleTest finds printers by this exact name (ADL), hence the NOLINTs.
inline void PrintTo(sign_status s, std::ostream* os) { // NOLINT(readability-identifier-naming)
    *os << sign_status_name(s);
}

inline void PrintTo(verify_status s, std::ostream* os) { // NOLINT(readability-identifier-naming)
    *os << verify_status_name(s);
}

namespace icv {
inline void PrintTo(algorithm a, std::ostream* os) { // NOLINT(readability-identifier-naming)
    *os << info(a).name;
}
} // namespace icv

namespace test {

enum class engine_kind : uint8_t { ipsecmb, openssl };

inline std::string engine_label(engine_kind k) {
    return k == engine_kind::ipsecmb ? "ipsecmb" : "openssl";
}

inline std::unique_ptr<icv::engine> make_engine(engine_kind k) {
    if (k == engine_kind::ipsecmb) {
        return std::make_unique<icv::ipsecmb_engine>();
    }
    return std::make_unique<icv::openssl_engine>();
}

inline engine_kind other_engine(engine_kind k) {
    return k == engine_kind::ipsecmb ? engine_kind::openssl : engine_kind::ipsecmb;
}

/// A key of the algorithm's length (32 octets for HMAC), made from a seed.
inline key_config make_key(uint32_t key_id, icv::algorithm alg, uint8_t seed) {
    key_config k;
    k.key_id = key_id;
    k.alg = alg;
    const size_t len = icv::info(alg).key_len == 0 ? 32 : icv::info(alg).key_len;
    k.key = key_bytes(pattern(len, seed));
    k.origin = "test key " + std::to_string(key_id);
    return k;
}

inline sa_config make_sa(uint8_t spp, std::vector<key_config> keys, bool allow_mutable = false) {
    sa_config c;
    c.spp = spp;
    c.allow_mutable = allow_mutable;
    c.keys = std::move(keys);
    c.origin = "test spp " + std::to_string(spp);
    return c;
}

/// Installs SAs; nullptr (and a test failure) if the database refuses them.
inline std::unique_ptr<sa_database> install(icv::engine& eng, const std::vector<sa_config>& sas,
                                            size_t gmac_senders = default_gmac_senders) {
    auto r = sa_database::install(eng, sas, gmac_senders);
    if (!r) {
        ADD_FAILURE() << "sa_database::install: " << r.message();
        return nullptr;
    }
    return std::make_unique<sa_database>(std::move(r).value());
}

inline sign_status sign_of(const frame_outcome& o) {
    return static_cast<sign_status>(o.status);
}

inline verify_status verify_of(const frame_outcome& o) {
    return static_cast<verify_status>(o.status);
}

/// Views of a set of frames, for the burst calls.
inline std::vector<ptp::frame_buf> views(std::vector<owned_frame>& frames) {
    std::vector<ptp::frame_buf> v;
    v.reserve(frames.size());
    for (auto& f : frames) {
        v.push_back(f.view());
    }
    return v;
}

/// After sign_burst: copy the new lengths back into the owned frames.
inline void take_lengths(std::vector<owned_frame>& frames, const std::vector<ptp::frame_buf>& v) {
    for (size_t i = 0; i < frames.size(); ++i) {
        frames[i].len = v[i].len;
    }
}

/// The parsed AUTHENTICATION TLV of a frame; has_auth false if none.
inline ptp::message_view parse_signed(const owned_frame& f, ptp::frame_info& fi) {
    ptp::message_view mv;
    EXPECT_EQ(ptp::classify_frame(f.buf.data(), f.len, fi), ptp::error::none);
    EXPECT_EQ(ptp::parse_message(f.buf.data() + fi.ptp_offset, fi.ptp_avail, mv), ptp::error::none);
    return mv;
}

} // namespace test
} // namespace ptpsec
