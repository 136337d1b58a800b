// Interoperability with linuxptp: a capture between two ptp4l 4.4 instances
// with HMAC-SHA256-128 AUTHENTICATION TLVs (testdata/linuxptp/README.md).
// Every PTP frame must verify, and stripping then signing each frame again
// must give back linuxptp's octets exactly.

#include "auth_helpers.h"
#include "frame_builder.h"

#include <dataplane/auth.h>

#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace ptpsec::test {
namespace {

using icv::algorithm;

std::string capture_file(std::string_view name) {
    return std::string(PTPSEC_TESTDATA_DIR) + "/linuxptp/" + std::string(name);
}

// sa.conf: "spp 2", key "1 SHA256-128 32 HEX:F8AD...". Hard-coded here;
// the test checks that the file still says so.
constexpr uint8_t capture_spp = 2;
constexpr uint32_t capture_key_id = 1;
constexpr std::string_view capture_key_hex = "F8ADC6B8B8E9AA709106BA42481EC9E29607334DE2C3C737A11A12931DB27F8C";
constexpr size_t capture_ptp_frames = 206;
constexpr size_t capture_other_frames = 4;
/// 4 (TLV header) + 6 (spp, secParamIndicator, keyID) + 16 (ICV).
constexpr size_t capture_tlv_len = 26;

bytes from_hex(std::string_view hex) {
    bytes b;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        b.push_back(static_cast<uint8_t>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    }
    return b;
}

std::vector<sa_config> capture_sas(bool allow_mutable = false) {
    key_config k;
    k.key_id = capture_key_id;
    k.alg = algorithm::hmac_sha256_128;
    k.key = key_bytes(from_hex(capture_key_hex));
    k.origin = "sa.conf:4";
    return {make_sa(capture_spp, {k}, allow_mutable)};
}

struct pcap_closer {
    void operator()(pcap_t* p) const noexcept { pcap_close(p); }
};

/// Every frame of the capture, each in an owned buffer with headroom.
std::vector<bytes> read_capture(const std::string& path) {
    std::vector<bytes> frames;
    char err[PCAP_ERRBUF_SIZE] = {};
    std::unique_ptr<pcap_t, pcap_closer> p(pcap_open_offline(path.c_str(), err));
    if (!p) {
        ADD_FAILURE() << path << ": " << err;
        return frames;
    }
    EXPECT_EQ(pcap_datalink(p.get()), DLT_EN10MB);
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    int rc = 0;
    while ((rc = pcap_next_ex(p.get(), &h, &data)) == 1) {
        EXPECT_EQ(h->caplen, h->len) << "frame " << frames.size() << " was cut by the snap length";
        frames.emplace_back(data, data + h->caplen);
    }
    EXPECT_EQ(rc, PCAP_ERROR_BREAK) << pcap_geterr(p.get());
    return frames;
}

class capture : public ::testing::TestWithParam<engine_kind> {
protected:
    static void SetUpTestSuite() {
        _frames = new std::vector<bytes>(read_capture(capture_file("l2-hmac-sha256-128.pcap")));
    }
    static void TearDownTestSuite() {
        delete _frames;
        _frames = nullptr;
    }

    static std::vector<owned_frame> owned(size_t headroom) {
        std::vector<owned_frame> v;
        for (const auto& f : *_frames) {
            v.emplace_back(f, headroom);
        }
        return v;
    }

    static std::vector<bytes>* _frames;
};

std::vector<bytes>* capture::_frames = nullptr;

TEST(capture_data, sa_conf_holds_the_hard_coded_key) {
    std::ifstream in(capture_file("sa.conf"));
    ASSERT_TRUE(in) << capture_file("sa.conf");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    EXPECT_NE(text.find("spp 2"), std::string::npos);
    EXPECT_NE(text.find("1 SHA256-128 32 HEX:" + std::string(capture_key_hex)), std::string::npos);
}

TEST_P(capture, every_ptp_frame_verifies) {
    ASSERT_EQ(_frames->size(), capture_ptp_frames + capture_other_frames);
    auto eng = make_engine(GetParam());
    auto sad = install(*eng, capture_sas());
    ASSERT_NE(sad, nullptr);
    verifier ver(*eng, *sad);
    std::vector<owned_frame> frames = owned(0);
    auto v = views(frames);
    std::vector<frame_outcome> out(v.size());
    // The whole capture in one call: it is taken in parts of 64.
    const uint16_t n = ver.verify_burst(v.data(), static_cast<uint16_t>(v.size()), out.data());
    EXPECT_EQ(n, capture_ptp_frames);
    size_t ptp_frames = 0;
    size_t others = 0;
    std::map<ptp::message_type, size_t> by_type;
    for (size_t i = 0; i < out.size(); ++i) {
        if (verify_of(out[i]) == verify_status::not_ptp) {
            ++others;
            continue;
        }
        ++ptp_frames;
        EXPECT_EQ(verify_of(out[i]), verify_status::verified)
            << "frame " << i + 1 << " cause " << ptp::error_name(out[i].cause);
        by_type[static_cast<ptp::message_type>((*_frames)[i][14] & 0x0F)]++;
        // Verifying does not change the frame.
        EXPECT_TRUE(std::equal((*_frames)[i].begin(), (*_frames)[i].end(), frames[i].buf.begin()));
    }
    EXPECT_EQ(ptp_frames, capture_ptp_frames);
    EXPECT_EQ(others, capture_other_frames);
    // README: Sync, Follow_Up, Announce, Delay_Req and Delay_Resp are signed.
    EXPECT_EQ(by_type.size(), 5u);
    for (const auto t : {ptp::message_type::sync, ptp::message_type::follow_up, ptp::message_type::announce,
                         ptp::message_type::delay_req, ptp::message_type::delay_resp}) {
        EXPECT_GT(by_type[t], 0u) << ptp::message_type_name(t);
    }
}

TEST_P(capture, a_wrong_key_fails_every_frame) {
    // Negative control: the same key ID with sa.conf's key 5 value.
    auto eng = make_engine(GetParam());
    std::vector<sa_config> sas = capture_sas();
    const std::string_view ascii = "sixteenbyteskey!";
    sas[0].keys[0].key = key_bytes(bytes(ascii.begin(), ascii.end()));
    auto sad = install(*eng, sas);
    ASSERT_NE(sad, nullptr);
    verifier ver(*eng, *sad);
    std::vector<owned_frame> frames = owned(0);
    auto v = views(frames);
    std::vector<frame_outcome> out(v.size());
    EXPECT_EQ(ver.verify_burst(v.data(), static_cast<uint16_t>(v.size()), out.data()), 0);
    for (const auto& o : out) {
        EXPECT_TRUE(verify_of(o) == verify_status::bad_icv || verify_of(o) == verify_status::not_ptp);
    }
}

TEST_P(capture, strip_then_sign_gives_linuxptps_octets) {
    auto eng = make_engine(GetParam());
    auto sad = install(*eng, capture_sas());
    ASSERT_NE(sad, nullptr);
    icv::gmac_iv_counter iv(1);
    signer sgn(*eng, *sad, iv);

    std::vector<owned_frame> frames = owned(capture_tlv_len);
    std::vector<size_t> ptp_index;
    for (size_t i = 0; i < frames.size(); ++i) {
        ptp::frame_buf fb = frames[i].view();
        ptp::frame_info fi;
        const ptp::error fe = ptp::classify_frame(fb.data, fb.len, fi);
        if (fe == ptp::error::not_ptp) {
            continue;
        }
        ASSERT_EQ(fe, ptp::error::none) << "frame " << i + 1;
        ptp::message_view mv;
        ASSERT_EQ(ptp::parse_message(fb.data + fi.ptp_offset, fi.ptp_avail, mv), ptp::error::none);
        ASSERT_TRUE(mv.has_auth);
        EXPECT_EQ(mv.auth.spp, capture_spp);
        EXPECT_EQ(mv.auth.keyID, capture_key_id);
        EXPECT_EQ(mv.auth.icv_len, 16);
        const size_t signed_ml = mv.hdr.messageLength;
        ASSERT_EQ(ptp::strip_auth_tlv(fb, fi, mv), ptp::error::none);
        EXPECT_EQ(fb.len, (*_frames)[i].size() - capture_tlv_len) << "frame " << i + 1;
        frames[i].len = fb.len;
        // The stripped frame is a well-formed unsigned message.
        ptp::message_view plain;
        ASSERT_EQ(ptp::parse_message(fb.data + fi.ptp_offset, fi.ptp_avail, plain), ptp::error::none);
        EXPECT_FALSE(plain.has_auth);
        EXPECT_EQ(plain.hdr.messageLength, signed_ml - capture_tlv_len);
        ptp_index.push_back(i);
    }
    ASSERT_EQ(ptp_index.size(), capture_ptp_frames);

    auto v = views(frames);
    std::vector<frame_outcome> out(v.size());
    EXPECT_EQ(sgn.sign_burst(v.data(), static_cast<uint16_t>(v.size()), capture_spp, capture_key_id, out.data()),
              capture_ptp_frames);
    take_lengths(frames, v);
    for (size_t i = 0; i < frames.size(); ++i) {
        const auto& orig = (*_frames)[i];
        EXPECT_EQ(frames[i].copy(), orig) << "frame " << i + 1 << " " << sign_status_name(sign_of(out[i]));
    }
}

INSTANTIATE_TEST_SUITE_P(engines, capture, ::testing::Values(engine_kind::ipsecmb, engine_kind::openssl),
                         [](const ::testing::TestParamInfo<engine_kind>& i) { return engine_label(i.param); });

} // namespace
} // namespace ptpsec::test
