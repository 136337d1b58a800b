#pragma once

// Where one NTS message ends in a TLS byte stream, found by walking record
// headers only (the codec that decodes records lives elsewhere).
//
// seeds/001 §4, Figure 7 (RFC 8915 §4): a record is a 4-octet header, the
// critical bit C and a 15-bit Record Type in the first two octets and a
// 16-bit Body Length in the next two, followed by the body. A message is a
// sequence of records ending with End of Message (type 0, body length 0,
// §4.2.4). Container records carry records in their bodies; the walk skips
// bodies, so an End of Message inside a container does not end the message.

#include <cstddef>
#include <cstdint>
#include <span>

namespace ptpsec::tls {

/// Octets of a record header (seeds/001 §4, Figure 7).
inline constexpr size_t record_header_size = 4;
/// The End of Message record with the critical bit set (seeds/001 §4.2.4).
inline constexpr uint8_t end_of_message[record_header_size] = {0x80, 0x00, 0x00, 0x00};

enum class frame_state : uint8_t {
    incomplete, ///< no End of Message yet, and the message still fits
    complete,   ///< message_size() octets form one message, End of Message included
    oversize,   ///< the headers seen already put the message over the limit
    malformed,  ///< a top-level record of type 0 with a non-empty body
};

/// The header walk of one message, resumable: each scan() continues where
/// the last one stopped, so a message that arrives one octet at a time costs
/// one pass over its headers, not one per octet.
class message_framer {
public:
    /// `max_message_size` counts every octet of the message, End of Message
    /// included; values below record_header_size are taken as
    /// record_header_size (the smallest message is a lone End of Message).
    explicit message_framer(size_t max_message_size) noexcept;

    /// Walks `buffered`: the octets received so far, from the first octet of
    /// the message, the same octets as the previous call plus any that have
    /// arrived since (octets after the message are left alone). Oversize is
    /// reported as soon as a header announces a record whose end, plus the
    /// End of Message that must still follow it, would pass the limit; the
    /// body is not waited for. Once complete, oversize or malformed, the
    /// state stays until reset().
    frame_state scan(std::span<const uint8_t> buffered) noexcept;

    frame_state state() const noexcept { return _state; }
    /// The message length when complete(); the octets walked so far otherwise.
    size_t message_size() const noexcept { return _next; }
    size_t max_message_size() const noexcept { return _max; }

    /// Ready for the next message (its first octet at offset 0 of the next scan).
    void reset() noexcept;

private:
    size_t _max;
    size_t _next = 0; ///< offset of the next record header to walk
    frame_state _state = frame_state::incomplete;
};

} // namespace ptpsec::tls
