// libFuzzer target: one input is one Ethernet frame. It goes through the
// whole per-frame path the data plane runs on untrusted traffic -
// classify_frame, parse_message, TLV iteration, verify_burst - and, for PTP
// messages, the edits: sign_burst (then the result must parse, carry the TLV
// and verify), strip_auth_tlv (then the result must parse without it).
// Verification runs on intel-ipsec-mb and on OpenSSL and the two verdicts
// must agree (fuzz/invariant.h: a broken invariant aborts).

#include <control/sa_file.h>
#include <dataplane/auth.h>
#include <dataplane/ptp/frame.h>
#include <drivers/base/bytes.h>
#include <drivers/icv/ipsecmb_engine.h>
#include <drivers/icv/openssl_engine.h>
#include <fuzz/invariant.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

namespace ptpsec {
namespace {

using ptpsec::fuzz::broken;
using ptpsec::fuzz::require;

// The SAs every input is checked against. spp 2 is linuxptp's sa.conf (key 1
// signed the capture the corpus comes from) plus the three GMAC types; spp 3
// has allow_mutable. fuzz/make_corpus.py reads this text to sign GMAC seeds.
constexpr std::string_view fuzz_sa_file = R"sa([security_association]
spp 2
seqid_window 3
1 SHA256-128 32 HEX:F8ADC6B8B8E9AA709106BA42481EC9E29607334DE2C3C737A11A12931DB27F8C
2 SHA256 32 HEX:EE91D469B3A8ADC6AC8EB28E21794C706E08FDE48863828A7B0281AFCA81B17D
3 AES128 HEX:FAF48EBA01E7C5966A76CB787AED4E7B
4 AES256 B64:PKTF9VQz94qPaoAzW4eE3JtFoQ8Ov1OTQSojalWyMbs=
5 SHA256-128 ASCII:sixteenbyteskey!
6 AES128-GMAC HEX:000102030405060708090a0b0c0d0e0f
7 AES192-GMAC HEX:000102030405060708090a0b0c0d0e0f1011121314151617
8 AES256-GMAC HEX:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
[security_association]
spp 3
allow_mutable 1
1 SHA256-128 32 HEX:F8ADC6B8B8E9AA709106BA42481EC9E29607334DE2C3C737A11A12931DB27F8C
2 AES256-GMAC HEX:1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100
)sa";

struct sign_key {
    uint8_t spp;
    uint32_t key_id;
};

// Keys sign_burst may use; the last input octet picks one. spp 4 and key 9
// are not installed (no_sa).
constexpr std::array<sign_key, 12> sign_keys = {{
    {2, 1},
    {2, 2},
    {2, 3},
    {2, 4},
    {2, 5},
    {2, 6},
    {2, 7},
    {2, 8},
    {3, 1},
    {3, 2},
    {4, 1},
    {2, 9},
}};

/// Room sign_burst gets beyond the input (the largest TLV is 42 octets).
constexpr uint32_t sign_headroom = 64;

/// Copies of one frame verified as one burst: the verdicts must not depend
/// on the place in the burst.
constexpr size_t verify_copies = 3;

/// Senders in one sign burst (see check_sign_burst): more than the 64 slots
/// of a GMAC subkey table and more than auth_max_burst.
constexpr size_t burst_senders = 80;

template <typename T>
T value_or_broken(result<T> r, const char* what) {
    if (!r) {
        broken(what, r.message());
    }
    return std::move(r).value();
}

/// Engines, SAs, signer and verifiers, made once per process (libFuzzer
/// calls the target millions of times; installing keys each time would
/// fuzz the key schedule instead of the frame path).
struct context {
    icv::ipsecmb_engine mb;
    icv::openssl_engine ossl;
    sa_database sad_mb;
    sa_database sad_ossl;
    // A fixed start keeps runs reproducible; uniqueness is all GMAC needs.
    icv::gmac_iv_counter iv{1};
    signer sign_mb;
    verifier verify_mb;
    verifier verify_ossl;

    explicit context(const std::vector<sa_config>& sas)
        : sad_mb(value_or_broken(sa_database::install(mb, sas), "install (ipsec-mb)")),
          sad_ossl(value_or_broken(sa_database::install(ossl, sas), "install (openssl)")), sign_mb(mb, sad_mb, iv),
          verify_mb(mb, sad_mb), verify_ossl(ossl, sad_ossl) {}
};

context& the_context() {
    static const std::unique_ptr<context> ctx =
        std::make_unique<context>(value_or_broken(parse_sa_file(fuzz_sa_file, "frame_fuzz"), "SA file"));
    return *ctx;
}

/// A frame in a heap buffer of exactly `cap` octets, so that ASan sees any
/// read or write past it.
struct owned_frame {
    std::unique_ptr<uint8_t[]> storage;
    ptp::frame_buf buf;

    owned_frame(const uint8_t* data, size_t len, size_t cap)
        : storage(new uint8_t[cap]), buf{storage.get(), static_cast<uint32_t>(len), static_cast<uint32_t>(cap)} {
        if (len != 0) {
            std::memcpy(storage.get(), data, len);
        }
    }

    bool same_as(const uint8_t* data, size_t len) const noexcept {
        return buf.len == len && (len == 0 || std::memcmp(buf.data, data, len) == 0);
    }
};

uint16_t fold(uint32_t sum) noexcept {
    while ((sum >> 16) != 0) {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    return static_cast<uint16_t>(sum);
}

/// After an edit, lengths and checksums must be right (checksums only where
/// the frame had them in use before).
/// The checksums of a frame as they stand: true where they are right (or
/// not in use).
struct checksum_state {
    bool ip = true;
    bool udp = true;
};

checksum_state checksums_of(const uint8_t* data, const ptp::frame_info& fi, bool udp_ck) {
    checksum_state st;
    if (fi.tp == ptp::transport::udp_ipv4) {
        const uint8_t* ip = data + fi.l3_offset;
        uint32_t sum = 0;
        const size_t ihl = size_t{ip[0] & 0x0Fu} * 4;
        for (size_t i = 0; i < ihl; i += 2) {
            sum += load_be16(ip + i);
        }
        st.ip = fold(sum) == 0xFFFF;
    }
    if (fi.tp != ptp::transport::l2 && udp_ck) {
        st.udp = load_be16(data + fi.l4_offset + 6) == ptp::compute_udp_checksum(data, fi);
    }
    return st;
}

/// After an edit, lengths must be right, and checksums right where `before`
/// says they were right (all of them for a full recompute). A checksum that
/// was wrong before must stay wrong: an edit never makes a corrupted frame
/// look intact.
void check_edited_frame(const ptp::frame_buf& f, const ptp::frame_info& fi, bool udp_ck, const char* what,
                        checksum_state before = {}) {
    ptp::frame_info again;
    require(ptp::classify_frame(f.data, f.len, again) == ptp::error::none, what);
    require(again.ptp_offset == fi.ptp_offset && again.tp == fi.tp, what);
    const uint16_t ml = load_be16(f.data + fi.ptp_offset + 2);
    // The edit dropped any padding: the message ends the frame (L2) or the
    // UDP payload, and the IP packet ends the frame.
    require(f.len == size_t{fi.ptp_offset} + ml, what);
    require(again.ptp_avail == ml, what);
    if (fi.tp == ptp::transport::udp_ipv4) {
        require(size_t{fi.l3_offset} + load_be16(f.data + fi.l3_offset + 2) == f.len, "IPv4 total length");
    } else if (fi.tp == ptp::transport::udp_ipv6) {
        require(size_t{fi.l3_offset} + ptp::ipv6_header_len + load_be16(f.data + fi.l3_offset + 4) == f.len,
                "IPv6 payload length");
    }
    const checksum_state after = checksums_of(f.data, fi, udp_ck);
    require(after.ip == before.ip, "IPv4 header checksum after edit");
    require(after.udp == before.udp, "UDP checksum after edit");
    if (fi.tp == ptp::transport::udp_ipv4 && !udp_ck) {
        require(load_be16(f.data + fi.l4_offset + 6) == 0, "an unused IPv4 UDP checksum stays zero");
    }
}

/// Verifies on both engines; the verdicts must agree and the frame must
/// come back unchanged (allow_mutable zeroes correctionField meanwhile).
frame_outcome verify_both(context& ctx, const ptp::frame_buf& f) {
    const std::vector<uint8_t> before(f.data, f.data + f.len);
    frame_outcome a;
    frame_outcome b;
    const uint16_t na = ctx.verify_mb.verify_burst(&f, 1, &a);
    require(before.empty() || std::memcmp(before.data(), f.data, f.len) == 0, "verify left the frame unchanged");
    const uint16_t nb = ctx.verify_ossl.verify_burst(&f, 1, &b);
    require(before.empty() || std::memcmp(before.data(), f.data, f.len) == 0, "verify left the frame unchanged");
    require(a.status == b.status && a.cause == b.cause && na == nb, "ipsec-mb and OpenSSL verdicts agree");
    require(na == (static_cast<verify_status>(a.status) == verify_status::verified ? 1 : 0), "verify count");
    return a;
}

/// Verifies copies of the frame as one burst; each verdict must be the one
/// the frame got alone.
void check_verify_burst(context& ctx, const uint8_t* data, size_t len, const frame_outcome& alone) {
    std::vector<owned_frame> copies;
    std::vector<ptp::frame_buf> bufs;
    copies.reserve(verify_copies);
    bufs.reserve(verify_copies);
    for (size_t i = 0; i < verify_copies; ++i) {
        copies.emplace_back(data, len, len);
        bufs.push_back(copies.back().buf);
    }
    std::array<frame_outcome, verify_copies> out{};
    ctx.verify_mb.verify_burst(bufs.data(), static_cast<uint16_t>(bufs.size()), out.data());
    for (size_t i = 0; i < verify_copies; ++i) {
        require(out[i].status == alone.status && out[i].cause == alone.cause, "verdict independent of the burst");
        require(copies[i].same_as(data, len), "verify left the frame unchanged");
    }
}

/// Walks the TLVs of a parsed message: parse_message accepted it, so the
/// walk must end cleanly and agree with the view.
void check_tlvs(const ptp::message_view& mv) {
    ptp::tlv_iterator it(mv.data, mv.tlv_begin, mv.hdr.messageLength);
    ptp::tlv_ref t;
    bool done = false;
    uint16_t count = 0;
    uint16_t last_offset = 0;
    uint16_t last_type = 0;
    for (;;) {
        require(it.next(t, done) == ptp::error::none, "TLV walk of a parsed message");
        if (done) {
            break;
        }
        require(t.offset >= mv.tlv_begin, "TLV inside the message");
        require(size_t{t.offset} + ptp::tlv_header_len + t.length <= mv.hdr.messageLength, "TLV inside the message");
        require(t.value == mv.data + t.offset + ptp::tlv_header_len, "TLV value pointer");
        last_offset = t.offset;
        last_type = t.type;
        ++count;
    }
    require(count == mv.tlv_count, "TLV count");
    if (mv.has_auth) {
        require(last_type == ptp::tlv_authentication && last_offset == mv.auth.offset, "AUTHENTICATION TLV last");
        require(size_t{mv.auth.icv_offset} + mv.auth.icv_len == mv.hdr.messageLength, "ICV ends the message");
        require(size_t{mv.auth.offset} + ptp::tlv_header_len + mv.auth.length == mv.hdr.messageLength,
                "AUTHENTICATION TLV ends the message");
        require(mv.auth.icv_len > 0, "ICV not empty");
    }
    if (mv.ticket_offset != 0) {
        require(load_be16(mv.data + mv.ticket_offset) == ptp::default_ticket_tlv_type, "TICKET TLV type");
    }
}

/// Strips a signed message on a copy; the rest of the message must be the
/// octets that were under the TLV. Returns the stripped frame.
owned_frame check_strip(const uint8_t* data, size_t len, const ptp::frame_info& fi, const ptp::message_view& mv) {
    owned_frame c(data, len, len);
    ptp::frame_info sfi = fi;
    ptp::message_view smv = mv;
    smv.data = c.buf.data + fi.ptp_offset;
    const bool udp_ck = ptp::udp_checksum_in_use(c.buf.data, fi);
    require(ptp::strip_auth_tlv(c.buf, sfi, smv) == ptp::error::none, "strip of a parsed signed message");
    require(!smv.has_auth && smv.hdr.messageLength == mv.auth.offset, "strip updated the view");
    check_edited_frame(c.buf, sfi, udp_ck, "frame after strip");
    ptp::message_view again;
    require(ptp::parse_message(c.buf.data + sfi.ptp_offset, sfi.ptp_avail, again) == ptp::error::none,
            "stripped message parses");
    require(!again.has_auth && again.tlv_count == mv.tlv_count - 1, "stripped message has no AUTHENTICATION TLV");
    const uint8_t* before = data + fi.ptp_offset;
    const uint8_t* after = c.buf.data + fi.ptp_offset;
    require(std::memcmp(before, after, 2) == 0 && std::memcmp(before + 4, after + 4, mv.auth.offset - 4) == 0,
            "strip kept the message");
    // Nothing to strip twice.
    require(ptp::strip_auth_tlv(c.buf, sfi, again) == ptp::error::not_signed, "strip of an unsigned message");
    return c;
}

/// Signs an unsigned message on a copy with room for the TLV; the result
/// must parse, carry the TLV, verify, and strip back to the message.
void check_sign(context& ctx, const uint8_t* data, size_t len, const ptp::frame_info& fi, const ptp::message_view& mv,
                sign_key key) {
    owned_frame c(data, len, len + sign_headroom);
    const bool udp_ck = ptp::udp_checksum_in_use(data, fi);
    frame_outcome o;
    const uint16_t n = ctx.sign_mb.sign_burst(&c.buf, 1, key.spp, key.key_id, &o);
    const auto st = static_cast<sign_status>(o.status);
    require(n == (st == sign_status::signed_ok ? 1 : 0), "sign count");
    if (st != sign_status::signed_ok) {
        require(c.same_as(data, len), "a frame that was not signed is unchanged");
        require(st == sign_status::no_sa || (st == sign_status::malformed && o.cause == ptp::error::message_too_long),
                "an unsigned parsed message signs unless the key is missing or it grows too long");
        if (st == sign_status::no_sa) {
            security_association* sa = ctx.sad_mb.find(key.spp);
            require(sa == nullptr || sa->find_key(key.key_id) == nullptr, "no_sa only for a missing key");
        }
        return;
    }
    // The signer updates checksums incrementally unless it sums the UDP
    // checksum again (checksum_plan::full: padding dropped, an odd message
    // length, or an IPv6 UDP checksum of zero), which fixes both.
    checksum_state before = checksums_of(data, fi, udp_ck);
    if (fi.tp != ptp::transport::l2 && udp_ck &&
        (!ptp::ends_with_message(data, fi, mv.hdr.messageLength) || mv.hdr.messageLength % 2 != 0 ||
         ptp::load_udp_checksum(data, fi) == 0)) {
        before = checksum_state{};
    }
    check_edited_frame(c.buf, fi, udp_ck, "frame after sign", before);
    require(c.buf.len <= c.buf.cap, "sign stayed in the buffer");
    ptp::frame_info sfi;
    require(ptp::classify_frame(c.buf.data, c.buf.len, sfi) == ptp::error::none, "signed frame classifies");
    ptp::message_view smv;
    require(ptp::parse_message(c.buf.data + sfi.ptp_offset, sfi.ptp_avail, smv) == ptp::error::none,
            "signed message parses");
    require(smv.has_auth, "signed message has an AUTHENTICATION TLV");
    require(smv.hdr.messageLength == c.buf.len - sfi.ptp_offset, "messageLength is the frame after ptp_offset");
    require(smv.auth.spp == key.spp && smv.auth.keyID == key.key_id, "TLV names the key");
    require(smv.auth.offset == mv.hdr.messageLength, "TLV appended after the old message");
    require(smv.tlv_count == mv.tlv_count + 1, "one TLV more");
    sa_key* k = ctx.sad_mb.find(key.spp)->find_key(key.key_id);
    require(smv.auth.icv_len == k->icv_len && smv.auth.has_seqno == (k->gmac != nullptr), "TLV fits the key");
    check_tlvs(smv);
    const frame_outcome v = verify_both(ctx, c.buf);
    require(static_cast<verify_status>(v.status) == verify_status::verified, "a frame we signed verifies");
    // Signing again does nothing.
    const std::vector<uint8_t> signed_copy(c.buf.data, c.buf.data + c.buf.len);
    frame_outcome o2;
    require(ctx.sign_mb.sign_burst(&c.buf, 1, key.spp, key.key_id, &o2) == 0 &&
                static_cast<sign_status>(o2.status) == sign_status::already_signed,
            "a signed frame is not signed twice");
    require(c.same_as(signed_copy.data(), signed_copy.size()), "already_signed leaves the frame");
    // Strip gives the old message back.
    const std::vector<uint8_t> signed_frame(c.buf.data, c.buf.data + c.buf.len);
    smv.data = signed_frame.data() + sfi.ptp_offset;
    const owned_frame stripped = check_strip(signed_frame.data(), signed_frame.size(), sfi, smv);
    require(std::memcmp(stripped.buf.data + fi.ptp_offset, data + fi.ptp_offset, mv.hdr.messageLength) == 0,
            "sign then strip gives the message back");
}

/// Signs one message as sent by `burst_senders` different ports in one
/// burst, then verifies them as one burst. With a GMAC key every sender
/// needs its own subkey, so the table fills and entries are replaced while
/// requests of the same burst still use them: signer and verifier must
/// compute those first.
void check_sign_burst(context& ctx, const uint8_t* data, size_t len, const ptp::frame_info& fi, sign_key key) {
    std::vector<owned_frame> copies;
    std::vector<ptp::frame_buf> bufs;
    copies.reserve(burst_senders);
    bufs.reserve(burst_senders);
    for (size_t i = 0; i < burst_senders; ++i) {
        copies.emplace_back(data, len, len + sign_headroom);
        // sourcePortIdentity.portNumber (13.3.1): a different sender each.
        store_be16(copies.back().buf.data + fi.ptp_offset + ptp::source_port_identity_offset + 8,
                   static_cast<uint16_t>(0x8000 + i));
        bufs.push_back(copies.back().buf);
    }
    std::array<frame_outcome, burst_senders> out{};
    const uint16_t n =
        ctx.sign_mb.sign_burst(bufs.data(), static_cast<uint16_t>(bufs.size()), key.spp, key.key_id, out.data());
    if (static_cast<sign_status>(out[0].status) != sign_status::signed_ok) {
        require(n == 0, "a burst of one message signs all or none");
        return;
    }
    require(n == burst_senders, "a burst of one message signs all or none");
    std::array<frame_outcome, burst_senders> mb{};
    std::array<frame_outcome, burst_senders> ossl{};
    require(ctx.verify_mb.verify_burst(bufs.data(), static_cast<uint16_t>(bufs.size()), mb.data()) == n,
            "every sender of a signed burst verifies (ipsec-mb)");
    require(ctx.verify_ossl.verify_burst(bufs.data(), static_cast<uint16_t>(bufs.size()), ossl.data()) == n,
            "every sender of a signed burst verifies (OpenSSL)");
}

void run_one(const uint8_t* data, size_t size) {
    context& ctx = the_context();
    owned_frame f(data, size, size);

    ptp::frame_info fi;
    const ptp::error fe = ptp::classify_frame(f.buf.data, f.buf.len, fi);
    // The inline fast path of classify_frame() answers as the general one.
    ptp::frame_info gfi;
    require(ptp::classify_frame_general(f.buf.data, f.buf.len, gfi) == fe, "classify fast path: same verdict");
    require(fe != ptp::error::none ||
                (gfi.tp == fi.tp && gfi.vlan_count == fi.vlan_count && gfi.l3_offset == fi.l3_offset &&
                 gfi.l4_offset == fi.l4_offset && gfi.ptp_offset == fi.ptp_offset && gfi.ptp_avail == fi.ptp_avail),
            "classify fast path: same layout");
    const frame_outcome v = verify_both(ctx, f.buf);
    const auto vs = static_cast<verify_status>(v.status);
    check_verify_burst(ctx, data, size, v);
    const sign_key key = size != 0 ? sign_keys[data[size - 1] % sign_keys.size()] : sign_keys[0];

    if (fe != ptp::error::none) {
        require(vs == (fe == ptp::error::not_ptp ? verify_status::not_ptp : verify_status::malformed) &&
                    (vs == verify_status::not_ptp || v.cause == fe),
                "verify agrees with classify_frame");
        owned_frame c(data, size, size + sign_headroom);
        frame_outcome o;
        require(ctx.sign_mb.sign_burst(&c.buf, 1, key.spp, key.key_id, &o) == 0, "nothing signed");
        const auto ss = static_cast<sign_status>(o.status);
        require(ss == sign_status::no_sa ||
                    ss == (fe == ptp::error::not_ptp ? sign_status::not_ptp : sign_status::malformed),
                "sign agrees with classify_frame");
        require(c.same_as(data, size), "a frame that was not signed is unchanged");
        return;
    }
    require(size_t{fi.ptp_offset} + fi.ptp_avail <= size, "PTP message inside the frame");
    if (fi.tp != ptp::transport::l2) {
        require(fi.l3_offset < fi.l4_offset && size_t{fi.l4_offset} + ptp::udp_header_len == fi.ptp_offset,
                "layers in order");
    }

    ptp::message_view mv;
    const ptp::error me = ptp::parse_message(f.buf.data + fi.ptp_offset, fi.ptp_avail, mv);
    if (me != ptp::error::none) {
        require(vs == verify_status::malformed && v.cause == me, "verify agrees with parse_message");
        return;
    }
    require(mv.hdr.messageLength <= fi.ptp_avail, "messageLength within the frame");
    require(mv.tlv_begin == ptp::header_len + ptp::body_length(mv.hdr.messageType), "TLVs after the body");
    check_tlvs(mv);

    if (mv.has_auth) {
        require(vs != verify_status::unsigned_message && vs != verify_status::malformed &&
                    vs != verify_status::not_ptp && vs != verify_status::crypto_failed,
                "a signed message gets a verdict");
        (void)check_strip(data, size, fi, mv);
        owned_frame c(data, size, size + sign_headroom);
        frame_outcome o;
        require(ctx.sign_mb.sign_burst(&c.buf, 1, 2, 1, &o) == 0 &&
                    static_cast<sign_status>(o.status) == sign_status::already_signed,
                "a signed message is not signed again");
        require(c.same_as(data, size), "already_signed leaves the frame");
    } else {
        require(vs == verify_status::unsigned_message, "an unsigned message is unsigned");
        check_sign(ctx, data, size, fi, mv, key);
        // The burst costs 80 MACs: one input in 16 (chosen by its octets) pays it.
        if (size >= 2 && (data[size - 2] & 0x0F) == 0) {
            check_sign_burst(ctx, data, size, fi, key);
        }
    }
}

} // namespace
} // namespace ptpsec

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    ptpsec::run_one(data, size);
    return 0;
}
