#pragma once

// The linuxptp 4.4 capture shipped beside the checkout
// (../shared/testdata/linuxptp/README.md) and what is known of it.

#include <cstddef>

namespace ptpsec::test {

inline constexpr const char* linuxptp_capture = PTPSEC_TESTDATA_DIR "/linuxptp/l2-hmac-sha256-128.pcap";
inline constexpr const char* linuxptp_sa_file = PTPSEC_TESTDATA_DIR "/linuxptp/sa.conf";
inline constexpr size_t linuxptp_capture_frames = 210; // 206 PTP and 4 ICMPv6
inline constexpr size_t linuxptp_capture_ptp_frames = 206;

} // namespace ptpsec::test
