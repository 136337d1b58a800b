#include <dataplane/ptp/message.h>

#include <drivers/base/bytes.h>

#include <cstring>

namespace ptpsec::ptp {

namespace {

// Offsets in the common header (Table 35).
constexpr size_t off_type = 0;
constexpr size_t off_version = 1;
constexpr size_t off_length = 2;
constexpr size_t off_domain = 4;
constexpr size_t off_minor_sdo = 5;
constexpr size_t off_flags = 6;
constexpr size_t off_type_specific = 16;
constexpr size_t off_sequence_id = 30;
constexpr size_t off_control = 32;
constexpr size_t off_log_interval = 33;

void read_port_identity(const uint8_t* in, port_identity& out) noexcept {
    std::memcpy(out.clockIdentity.data(), in, 8);
    out.portNumber = load_be16(in + 8);
}

void write_port_identity(const port_identity& p, uint8_t* out) noexcept {
    std::memcpy(out, p.clockIdentity.data(), 8);
    store_be16(out + 8, p.portNumber);
}

void read_timestamp(const uint8_t* in, timestamp& out) noexcept {
    out.secondsField = load_be48(in);
    out.nanosecondsField = load_be32(in + 6);
}

void write_timestamp(const timestamp& t, uint8_t* out) noexcept {
    store_be48(out, t.secondsField);
    store_be32(out + 6, t.nanosecondsField);
}

/// Bodies of the form timestamp || portIdentity.
template <typename B, timestamp B::*Ts>
void read_ts_port(const uint8_t* in, B& b) noexcept {
    read_timestamp(in, b.*Ts);
    read_port_identity(in + timestamp_len, b.requestingPortIdentity);
}

template <typename B, timestamp B::*Ts>
void write_ts_port(const B& b, uint8_t* out) noexcept {
    write_timestamp(b.*Ts, out);
    write_port_identity(b.requestingPortIdentity, out + timestamp_len);
}

} // namespace

std::string_view message_type_name(message_type t) noexcept {
    switch (t) {
    case message_type::sync:
        return "Sync";
    case message_type::delay_req:
        return "Delay_Req";
    case message_type::pdelay_req:
        return "Pdelay_Req";
    case message_type::pdelay_resp:
        return "Pdelay_Resp";
    case message_type::follow_up:
        return "Follow_Up";
    case message_type::delay_resp:
        return "Delay_Resp";
    case message_type::pdelay_resp_follow_up:
        return "Pdelay_Resp_Follow_Up";
    case message_type::announce:
        return "Announce";
    case message_type::signaling:
        return "Signaling";
    case message_type::management:
        return "Management";
    }
    return "Reserved";
}

bool is_event_message(message_type t) noexcept {
    return static_cast<uint8_t>(t) < 0x8;
}

std::string_view tlv_type_name(uint16_t type, uint16_t ticket_tlv_type) noexcept {
    if (type == ticket_tlv_type) {
        return "TICKET";
    }
    switch (type) {
    case tlv_management:
        return "MANAGEMENT";
    case tlv_management_error_status:
        return "MANAGEMENT_ERROR_STATUS";
    case tlv_organization_extension:
        return "ORGANIZATION_EXTENSION";
    case tlv_request_unicast_transmission:
        return "REQUEST_UNICAST_TRANSMISSION";
    case tlv_grant_unicast_transmission:
        return "GRANT_UNICAST_TRANSMISSION";
    case tlv_cancel_unicast_transmission:
        return "CANCEL_UNICAST_TRANSMISSION";
    case tlv_acknowledge_cancel_unicast_transmission:
        return "ACKNOWLEDGE_CANCEL_UNICAST_TRANSMISSION";
    case tlv_path_trace:
        return "PATH_TRACE";
    case tlv_alternate_time_offset_indicator:
        return "ALTERNATE_TIME_OFFSET_INDICATOR";
    case tlv_authentication:
        return "AUTHENTICATION";
    default:
        return "unknown";
    }
}

message_type type_of(const body& b) noexcept {
    constexpr message_type types[] = {
        message_type::sync,
        message_type::delay_req,
        message_type::pdelay_req,
        message_type::pdelay_resp,
        message_type::follow_up,
        message_type::delay_resp,
        message_type::pdelay_resp_follow_up,
        message_type::announce,
        message_type::signaling,
        message_type::management,
    };
    return types[b.index()];
}

void read_header(const uint8_t* in, header& h) noexcept {
    h.majorSdoId = static_cast<uint8_t>(in[off_type] >> 4);
    h.messageType = static_cast<message_type>(in[off_type] & 0x0F);
    h.minorVersionPTP = static_cast<uint8_t>(in[off_version] >> 4);
    h.versionPTP = static_cast<uint8_t>(in[off_version] & 0x0F);
    h.messageLength = load_be16(in + off_length);
    h.domainNumber = in[off_domain];
    h.minorSdoId = in[off_minor_sdo];
    h.flagField = load_be16(in + off_flags);
    h.correctionField = static_cast<int64_t>(load_be64(in + correction_offset));
    h.messageTypeSpecific = load_be32(in + off_type_specific);
    read_port_identity(in + source_port_identity_offset, h.sourcePortIdentity);
    h.sequenceId = load_be16(in + off_sequence_id);
    h.controlField = in[off_control];
    h.logMessageInterval = static_cast<int8_t>(in[off_log_interval]);
}

void write_header(const header& h, uint8_t* out) noexcept {
    out[off_type] = static_cast<uint8_t>((h.majorSdoId << 4) | (static_cast<uint8_t>(h.messageType) & 0x0F));
    out[off_version] = static_cast<uint8_t>((h.minorVersionPTP << 4) | (h.versionPTP & 0x0F));
    store_be16(out + off_length, h.messageLength);
    out[off_domain] = h.domainNumber;
    out[off_minor_sdo] = h.minorSdoId;
    store_be16(out + off_flags, h.flagField);
    store_be64(out + correction_offset, static_cast<uint64_t>(h.correctionField));
    store_be32(out + off_type_specific, h.messageTypeSpecific);
    write_port_identity(h.sourcePortIdentity, out + source_port_identity_offset);
    store_be16(out + off_sequence_id, h.sequenceId);
    out[off_control] = h.controlField;
    out[off_log_interval] = static_cast<uint8_t>(h.logMessageInterval);
}

void read_body(message_type t, const uint8_t* in, body& out) noexcept {
    switch (t) {
    case message_type::sync: {
        sync_body b;
        read_timestamp(in, b.originTimestamp);
        out = b;
        break;
    }
    case message_type::delay_req: {
        delay_req_body b;
        read_timestamp(in, b.originTimestamp);
        out = b;
        break;
    }
    case message_type::follow_up: {
        follow_up_body b;
        read_timestamp(in, b.preciseOriginTimestamp);
        out = b;
        break;
    }
    case message_type::delay_resp: {
        delay_resp_body b;
        read_ts_port<delay_resp_body, &delay_resp_body::receiveTimestamp>(in, b);
        out = b;
        break;
    }
    case message_type::pdelay_req: {
        pdelay_req_body b;
        read_timestamp(in, b.originTimestamp);
        std::memcpy(b.reserved.data(), in + timestamp_len, b.reserved.size());
        out = b;
        break;
    }
    case message_type::pdelay_resp: {
        pdelay_resp_body b;
        read_ts_port<pdelay_resp_body, &pdelay_resp_body::requestReceiptTimestamp>(in, b);
        out = b;
        break;
    }
    case message_type::pdelay_resp_follow_up: {
        pdelay_resp_follow_up_body b;
        read_ts_port<pdelay_resp_follow_up_body, &pdelay_resp_follow_up_body::responseOriginTimestamp>(in, b);
        out = b;
        break;
    }
    case message_type::announce: {
        announce_body b;
        read_timestamp(in, b.originTimestamp);
        b.currentUtcOffset = static_cast<int16_t>(load_be16(in + 10));
        // in[12] is reserved
        b.grandmasterPriority1 = in[13];
        b.clockClass = in[14];
        b.clockAccuracy = in[15];
        b.offsetScaledLogVariance = load_be16(in + 16);
        b.grandmasterPriority2 = in[18];
        std::memcpy(b.grandmasterIdentity.data(), in + 19, 8);
        b.stepsRemoved = load_be16(in + 27);
        b.timeSource = in[29];
        out = b;
        break;
    }
    case message_type::signaling: {
        signaling_body b;
        read_port_identity(in, b.targetPortIdentity);
        out = b;
        break;
    }
    case message_type::management: {
        management_body b;
        read_port_identity(in, b.targetPortIdentity);
        b.startingBoundaryHops = in[10];
        b.boundaryHops = in[11];
        b.actionField = static_cast<uint8_t>(in[12] & 0x0F);
        out = b;
        break;
    }
    }
}

size_t write_body(const body& b, uint8_t* out) noexcept {
    const message_type t = type_of(b);
    const size_t len = body_length(t);
    std::memset(out, 0, len);
    switch (t) {
    case message_type::sync:
        write_timestamp(std::get<sync_body>(b).originTimestamp, out);
        break;
    case message_type::delay_req:
        write_timestamp(std::get<delay_req_body>(b).originTimestamp, out);
        break;
    case message_type::follow_up:
        write_timestamp(std::get<follow_up_body>(b).preciseOriginTimestamp, out);
        break;
    case message_type::delay_resp:
        write_ts_port<delay_resp_body, &delay_resp_body::receiveTimestamp>(std::get<delay_resp_body>(b), out);
        break;
    case message_type::pdelay_req: {
        const auto& p = std::get<pdelay_req_body>(b);
        write_timestamp(p.originTimestamp, out);
        std::memcpy(out + timestamp_len, p.reserved.data(), p.reserved.size());
        break;
    }
    case message_type::pdelay_resp:
        write_ts_port<pdelay_resp_body, &pdelay_resp_body::requestReceiptTimestamp>(std::get<pdelay_resp_body>(b), out);
        break;
    case message_type::pdelay_resp_follow_up:
        write_ts_port<pdelay_resp_follow_up_body, &pdelay_resp_follow_up_body::responseOriginTimestamp>(
            std::get<pdelay_resp_follow_up_body>(b), out);
        break;
    case message_type::announce: {
        const auto& a = std::get<announce_body>(b);
        write_timestamp(a.originTimestamp, out);
        store_be16(out + 10, static_cast<uint16_t>(a.currentUtcOffset));
        out[13] = a.grandmasterPriority1;
        out[14] = a.clockClass;
        out[15] = a.clockAccuracy;
        store_be16(out + 16, a.offsetScaledLogVariance);
        out[18] = a.grandmasterPriority2;
        std::memcpy(out + 19, a.grandmasterIdentity.data(), 8);
        store_be16(out + 27, a.stepsRemoved);
        out[29] = a.timeSource;
        break;
    }
    case message_type::signaling:
        write_port_identity(std::get<signaling_body>(b).targetPortIdentity, out);
        break;
    case message_type::management: {
        const auto& m = std::get<management_body>(b);
        write_port_identity(m.targetPortIdentity, out);
        out[10] = m.startingBoundaryHops;
        out[11] = m.boundaryHops;
        out[12] = static_cast<uint8_t>(m.actionField & 0x0F);
        break;
    }
    }
    return len;
}

error parse_message(const uint8_t* data, size_t avail, message_view& out, const wire_options& opt) noexcept {
    out.data = data;
    const error e = scan_message(data, avail, out, opt);
    if (avail >= header_len) {
        read_header(data, out.hdr);
    }
    return e;
}

size_t build_message(header h, const body& b, std::span<const std::span<const uint8_t>> tlvs, uint8_t* out,
                     size_t cap) noexcept {
    h.messageType = type_of(b);
    size_t len = header_len + body_length(h.messageType);
    for (const auto& t : tlvs) {
        len += t.size();
    }
    if (len > cap || len > max_message_len) {
        return 0;
    }
    h.messageLength = static_cast<uint16_t>(len);
    write_header(h, out);
    size_t pos = header_len + write_body(b, out + header_len);
    for (const auto& t : tlvs) {
        if (!t.empty()) {
            std::memcpy(out + pos, t.data(), t.size());
        }
        pos += t.size();
    }
    return pos;
}

} // namespace ptpsec::ptp
