#pragma once

// Test frames for the sign and verify benchmarks: Ethernet + IPv4 + UDP
// (non-zero UDP checksum) carrying one PTP message whose messageLength is
// exactly what the benchmark asks for. 44 octets is a Sync (event port 319);
// longer messages are a Signaling message (general port 320) with one
// ORGANIZATION_EXTENSION TLV sized to make up the length.

#include <dataplane/ptp/frame.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace ptpsec::bench {

/// Room for the largest frame (42 octets of headers, a 256-octet message and
/// the longest AUTHENTICATION TLV, 42 octets for HMAC-SHA256) with space to
/// spare; one cache-line-aligned slot per frame, as a buffer pool would hand
/// them out.
inline constexpr size_t frame_slot_size = 512;

struct alignas(64) frame_slot {
    uint8_t bytes[frame_slot_size];
};

/// Writes the frame for a message of `message_len` octets (44, or an even
/// length of at least 54) into `out`. Returns the frame length, or 0 with
/// `why` set if the length cannot be built or the frame does not parse back.
size_t build_udp4_ptp_frame(uint16_t message_len, uint16_t sequence_id, uint8_t* out, size_t cap, std::string& why);

/// A burst of frames and the unsigned templates they are restored from.
class frame_burst {
public:
    frame_burst(uint16_t message_len, uint16_t burst);

    /// Empty if every frame was built; else why not.
    const std::string& error() const noexcept { return _error; }

    /// The unsigned burst again after sign_burst(): signing rewrites only
    /// the IPv4 total length and header checksum, the UDP length and
    /// checksum and messageLength, and writes the TLV past the template's
    /// end, so those five fields and the frame lengths are put back (the
    /// constructor and same_as_templates() check that this is the whole
    /// difference).
    void restore() noexcept {
        for (size_t i = 0; i < _frames.size(); ++i) {
            uint8_t* f = _slots[i].bytes;
            const uint8_t* t = _templates[i].bytes;
            std::memcpy(f + ip_length_at, t + ip_length_at, 2);
            std::memcpy(f + ip_checksum_at, t + ip_checksum_at, 2);
            std::memcpy(f + udp_length_at, t + udp_length_at, 4); // length and checksum
            std::memcpy(f + message_length_at, t + message_length_at, 2);
            _frames[i].len = _template_len[i];
        }
    }

    /// Copies every template back over its frame in full.
    void copy_templates() noexcept {
        for (size_t i = 0; i < _frames.size(); ++i) {
            std::memcpy(_slots[i].bytes, _templates[i].bytes, _template_len[i]);
            _frames[i].len = _template_len[i];
        }
    }

    /// True if every frame is its template, octet for octet and in length.
    bool same_as_templates() const noexcept {
        for (size_t i = 0; i < _frames.size(); ++i) {
            if (_frames[i].len != _template_len[i] ||
                std::memcmp(_slots[i].bytes, _templates[i].bytes, _template_len[i]) != 0) {
                return false;
            }
        }
        return true;
    }

    ptp::frame_buf* frames() noexcept { return _frames.data(); }
    uint16_t size() const noexcept { return static_cast<uint16_t>(_frames.size()); }
    uint32_t template_length(size_t i) const noexcept { return _template_len[i]; }

private:
    // Ethernet (14) + IPv4 without options (20) + UDP (8), as built above.
    static constexpr size_t ip_length_at = 14 + 2;
    static constexpr size_t ip_checksum_at = 14 + 10;
    static constexpr size_t udp_length_at = 34 + 4;
    static constexpr size_t message_length_at = 42 + 2;

    std::vector<frame_slot> _templates;
    std::vector<frame_slot> _slots;
    std::vector<uint32_t> _template_len;
    std::vector<ptp::frame_buf> _frames;
    std::string _error;
};

} // namespace ptpsec::bench
