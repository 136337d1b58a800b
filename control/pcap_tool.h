#pragma once

// `ptpsecctl pcap ...`: offline show / verify / sign / strip of capture
// files (pcap, and pcapng where libpcap reads it). Output files are pcap with
// the input's link type, snapshot length and timestamps.

#include <dataplane/ptp/message.h>
#include <drivers/base/result.h>

#include <cstdint>
#include <iosfwd>
#include <string>

namespace ptpsec::pcap_tool {

struct options {
    ptp::wire_options wire;
    /// "ipsec-mb" (default) or "openssl".
    std::string engine = "ipsec-mb";
};

struct verify_summary {
    uint64_t verified = 0;
    uint64_t failed = 0;
    uint64_t unsigned_frames = 0;
};

struct edit_summary {
    uint64_t frames = 0;  ///< all frames read
    uint64_t changed = 0; ///< signed or stripped
    uint64_t ptp = 0;
    uint64_t failed = 0; ///< PTP frames that could not be changed (malformed, no room)
    /// PTP frames copied as they were: signed already (sign), or without an
    /// AUTHENTICATION TLV (strip).
    uint64_t unchanged = 0;
};

/// One block of text per frame to `out`.
result<uint64_t> show(const std::string& in, std::ostream& out, const options& opt);

/// One verdict line per PTP frame, then "N verified, M failed, K unsigned".
result<verify_summary> verify(const std::string& sa_file, const std::string& in, std::ostream& out, const options& opt);

/// Adds an AUTHENTICATION TLV (key `key_id` of SA `spp`) to every PTP frame
/// that has none; other frames are copied unchanged.
result<edit_summary> sign(const std::string& sa_file, uint8_t spp, uint32_t key_id, const std::string& in,
                          const std::string& out_path, std::ostream& log, const options& opt);

/// Removes AUTHENTICATION TLVs, fixing lengths and checksums.
result<edit_summary> strip(const std::string& in, const std::string& out_path, std::ostream& log, const options& opt);

} // namespace ptpsec::pcap_tool
