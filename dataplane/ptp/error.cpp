#include <dataplane/ptp/error.h>

#include <array>

namespace ptpsec::ptp {

namespace {

struct error_desc {
    std::string_view name;
    std::string_view text;
};

constexpr std::array<error_desc, error_count> descs = {{
    {"none", "no error"},
    {"not_ptp", "not a PTP frame"},
    {"truncated_frame", "a link, IP or UDP header runs past the end of the frame"},
    {"too_many_vlans", "more than two VLAN tags"},
    {"bad_ip_header", "inconsistent IP header (version, header length or total length)"},
    {"ip_fragment", "PTP inside an IP fragment"},
    {"bad_udp_length", "UDP length does not match the IP payload"},
    {"truncated", "message shorter than its common header or than messageLength"},
    {"unknown_version", "versionPTP is not 2"},
    {"unknown_message_type", "reserved messageType"},
    {"length_mismatch", "messageLength is shorter than the header and body of the message type"},
    {"tlv_overrun", "a TLV runs past messageLength"},
    {"tlv_after_auth", "a TLV follows the AUTHENTICATION TLV"},
    {"bad_auth_tlv", "AUTHENTICATION TLV too short for its fields"},
    {"unsupported_sec_param", "secParamIndicator asks for disclosedKey or RES, which are not supported"},
    {"already_signed", "message already carries an AUTHENTICATION TLV"},
    {"not_signed", "message carries no AUTHENTICATION TLV"},
    {"no_room", "no room in the buffer for the longer frame"},
    {"message_too_long", "the message would exceed the largest messageLength or IP length"},
}};

} // namespace

std::string_view error_name(error e) noexcept {
    const auto i = static_cast<size_t>(e);
    return i < descs.size() ? descs[i].name : "invalid";
}

std::string_view error_text(error e) noexcept {
    const auto i = static_cast<size_t>(e);
    return i < descs.size() ? descs[i].text : "invalid error code";
}

} // namespace ptpsec::ptp
