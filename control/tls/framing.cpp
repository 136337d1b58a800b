#include <control/tls/framing.h>

#include <drivers/base/bytes.h>

#include <algorithm>

namespace ptpsec::tls {

message_framer::message_framer(size_t max_message_size) noexcept
    : _max(std::max(max_message_size, record_header_size)) {}

frame_state message_framer::scan(std::span<const uint8_t> buffered) noexcept {
    if (_state != frame_state::incomplete) {
        return _state;
    }
    while (_next + record_header_size <= buffered.size()) {
        const uint8_t* header = buffered.data() + _next;
        // seeds/001 §4, Figure 7: C(1) | Record Type(15) | Body Length(16)
        const uint16_t type = load_be16(header) & 0x7fff;
        const size_t body_length = load_be16(header + 2);
        const size_t end = _next + record_header_size + body_length;
        if (type == 0) {
            // seeds/001 §4.2.4: End of Message has a zero-length body. One
            // with a body cannot end the message and cannot be skipped as an
            // ordinary record either: the stream has no safe boundary left.
            if (body_length != 0) {
                _state = frame_state::malformed;
                return _state;
            }
            _next = end;
            _state = frame_state::complete;
            return _state;
        }
        // Any record but End of Message must be followed by at least one.
        if (end + record_header_size > _max) {
            _state = frame_state::oversize;
            return _state;
        }
        _next = end;
    }
    return _state;
}

void message_framer::reset() noexcept {
    _next = 0;
    _state = frame_state::incomplete;
}

} // namespace ptpsec::tls
