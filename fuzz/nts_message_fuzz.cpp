// libFuzzer target: one input is an NTS message (seeds/001 §3). Every parser
// of control/nts/message.h runs on it. When one accepts the input:
//   - build() of the result parses again, to an equal struct (operator==),
//   - build() of that gives the same bytes as the first build (a fixed point),
//   - the first build is no longer than the input (the builder only drops what
//     the parser skipped) and passes validate(),
//   - find_message_end() finds the message's end at its last octet.
// When one refuses it, the error carries code 0 or 1 (a parser never answers
// with another code) and a message. The error answer for the refusal must
// parse as the error form of the right response.
//
// Seeds in fuzz/corpus/nts: one valid message of each kind and form, the
// bytes of tests/control/nts_message_test.cpp (written with build()).

#include <control/nts/message.h>
#include <fuzz/invariant.h>

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace ptpsec::nts {
namespace {

using ptpsec::fuzz::broken;
using ptpsec::fuzz::require;

template <typename T>
void check_refusal(const parse_result<T>& r, sub_protocol protocol) {
    require(r.code() == error_code::unrecognized_critical_record || r.code() == error_code::bad_request,
            "a parser answers with code 0 or 1");
    require(!r.message().empty(), "a refusal has a message");
    const std::vector<uint8_t> answer = build_error_response(protocol, r.err());
    if (protocol == sub_protocol::nts_ke) {
        auto a = parse_key_response(answer);
        require(a.ok() && a->is_error() && std::get<error_code>(a->outcome) == r.code(), "NTS-KE error answer");
    } else {
        auto a = parse_registration_response(answer);
        require(a.ok() && a->is_error() && std::get<error_code>(a->outcome) == r.code(), "NTS-TSR error answer");
    }
}

template <typename M, typename Parse>
void check_one(std::span<const uint8_t> input, Parse parse, sub_protocol protocol, const char* name) {
    auto first = parse(input);
    if (!first) {
        check_refusal(first, protocol);
        return;
    }
    const M& message = *first;
    const std::vector<uint8_t> built = build(message);
    auto second = parse(built);
    if (!second) {
        broken(name, "build of an accepted message does not parse: " + second.message());
    }
    require(*second == message, "parse(build(parse(x))) == parse(x)");
    require(build(*second) == built, "build(parse(build(m))) == build(m)");
    require(built.size() <= input.size(), "build is no longer than the input");
    if (auto v = validate(message); !v) {
        broken(name, "an accepted message does not validate: " + v.message());
    }
    auto end = find_message_end(input);
    require(end.ok() && end->has_value() && **end == input.size(), "find_message_end of an accepted message");
}

void run_one(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> input(data, size);
    check_one<key_request>(input, parse_key_request, sub_protocol::nts_ke, "PTP Key Request");
    check_one<key_response>(input, parse_key_response, sub_protocol::nts_ke, "PTP Key Response");
    check_one<registration_request>(input, parse_registration_request, sub_protocol::nts_tsr,
                                    "PTP Registration Request");
    check_one<registration_response>(input, parse_registration_response, sub_protocol::nts_tsr,
                                     "PTP Registration Response");
    check_one<registration_revoke>(input, parse_registration_revoke, sub_protocol::nts_tsr, "PTP Registration Revoke");
    check_one<heartbeat>(input, parse_heartbeat, sub_protocol::nts_tsr, "PTP Heartbeat");

    // The dispatcher agrees with the parser of the type it picks.
    auto any = parse_tsr_request(input);
    if (any) {
        std::visit(
            [&](const auto& m) {
                using M = std::decay_t<decltype(m)>;
                if constexpr (std::is_same_v<M, registration_request>) {
                    auto again = parse_registration_request(input);
                    require(again.ok() && *again == m, "dispatch: registration request");
                } else if constexpr (std::is_same_v<M, registration_revoke>) {
                    auto again = parse_registration_revoke(input);
                    require(again.ok() && *again == m, "dispatch: registration revoke");
                } else {
                    auto again = parse_heartbeat(input);
                    require(again.ok() && *again == m, "dispatch: heartbeat");
                }
            },
            *any);
    } else {
        check_refusal(any, sub_protocol::nts_tsr);
    }

    // Stream framing never claims more than it was given.
    auto end = find_message_end(input);
    if (end && end->has_value()) {
        require(**end <= size && **end >= record_header_size, "find_message_end within the input");
    }
}

} // namespace
} // namespace ptpsec::nts

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    ptpsec::nts::run_one(data, size);
    return 0;
}
