#include <hsm/cose.h>

#include <hsm/signature.h>

#include <fmt/format.h>

#include <string_view>

namespace ptpsec::hsm {

namespace {

constexpr std::string_view sig1_context = "Signature1"; // RFC 9052 §4.4

const char* algorithm_name(signature_algorithm a) noexcept {
    return a == signature_algorithm::es256 ? "ES256 (-7)" : "EdDSA (-8)";
}

result<signature_algorithm> parse_protected(std::span<const uint8_t> protected_header) {
    auto decoded = cbor::decode(protected_header);
    if (!decoded) {
        return error{fmt::format("COSE_Sign1: the protected header is not deterministic CBOR: {}", decoded.message())};
    }
    const cbor::item& m = *decoded;
    if (m.kind != cbor::type::map) {
        return error{fmt::format("COSE_Sign1: the protected header is {}, not a map", cbor::to_string(m.kind))};
    }
    const cbor::item* alg = m.find(cose_header_alg);
    if (alg == nullptr) {
        return error{"COSE_Sign1: the protected header has no algorithm (label 1)"};
    }
    if (m.map_size() != 1) {
        return error{"COSE_Sign1: the protected header holds more than the algorithm (label 1)"};
    }
    const auto value = alg->as_int64();
    if (!alg->is_integer() || !value) {
        return error{fmt::format("COSE_Sign1: the algorithm is {}, not an integer", cbor::to_string(alg->kind))};
    }
    if (*value == static_cast<int64_t>(signature_algorithm::es256)) {
        return signature_algorithm::es256;
    }
    if (*value == static_cast<int64_t>(signature_algorithm::eddsa)) {
        return signature_algorithm::eddsa;
    }
    return error{fmt::format("COSE_Sign1: algorithm {} is not ES256 (-7) or EdDSA (-8)", *value)};
}

} // namespace

result<std::vector<uint8_t>> sig_structure(std::span<const uint8_t> body_protected,
                                           std::span<const uint8_t> external_aad, std::span<const uint8_t> payload) {
    return cbor::encode(cbor::item::array({cbor::item::tstr(sig1_context), cbor::item::bstr(body_protected),
                                           cbor::item::bstr(external_aad), cbor::item::bstr(payload)}));
}

result<cose_sign1> sign_cose_sign1(signer& s, std::span<const uint8_t> kid, std::span<const uint8_t> payload) {
    cose_sign1 msg;
    msg.algorithm = s.info().algorithm;
    cbor::item header = cbor::item::map();
    header.put(cose_header_alg, cbor::item::integer(static_cast<int64_t>(msg.algorithm)));
    PTPSEC_TRY(protected_header, cbor::encode(header));
    msg.protected_header = std::move(*protected_header);
    msg.kid.assign(kid.begin(), kid.end());
    msg.payload.assign(payload.begin(), payload.end());
    PTPSEC_TRY(tbs, sig_structure(msg.protected_header, {}, msg.payload));
    auto sig = s.sign(*tbs);
    if (!sig) {
        return error{fmt::format("COSE_Sign1: the signer failed: {}", sig.message())};
    }
    if (sig->size() != cose_signature_len) {
        return error{fmt::format("COSE_Sign1: the signer returned {} octets, not {}", sig->size(), cose_signature_len)};
    }
    msg.signature = std::move(*sig);
    return msg;
}

cbor::item to_item(const cose_sign1& msg) {
    cbor::item unprotected = cbor::item::map();
    unprotected.put(cose_header_kid, cbor::item::bstr(msg.kid));
    return cbor::item::tagged(cose_sign1_tag,
                              cbor::item::array({cbor::item::bstr(msg.protected_header), std::move(unprotected),
                                                 cbor::item::bstr(msg.payload), cbor::item::bstr(msg.signature)}));
}

result<std::vector<uint8_t>> encode_cose_sign1(const cose_sign1& msg) {
    return cbor::encode(to_item(msg));
}

result<cose_sign1> parse_cose_sign1(const cbor::item& it) {
    if (it.kind != cbor::type::tag || it.number != cose_sign1_tag) {
        return error{fmt::format("COSE_Sign1: expected tag 18 at offset {}, found {}", it.offset,
                                 it.kind == cbor::type::tag ? fmt::format("tag {}", it.number)
                                                            : std::string(cbor::to_string(it.kind)))};
    }
    const cbor::item& body = it.elements.at(0);
    if (body.kind != cbor::type::array || body.elements.size() != 4) {
        return error{fmt::format("COSE_Sign1: the tagged item at offset {} is not an array of 4", body.offset)};
    }
    const cbor::item& prot = body.elements[0];
    const cbor::item& unprot = body.elements[1];
    const cbor::item& payload = body.elements[2];
    const cbor::item& sig = body.elements[3];
    if (prot.kind != cbor::type::byte_string) {
        return error{fmt::format("COSE_Sign1: the protected header at offset {} is {}, not a byte string", prot.offset,
                                 cbor::to_string(prot.kind))};
    }
    cose_sign1 msg;
    PTPSEC_TRY(alg, parse_protected(prot.bytes));
    msg.algorithm = *alg;
    msg.protected_header = prot.bytes;
    if (unprot.kind != cbor::type::map) {
        return error{fmt::format("COSE_Sign1: the unprotected header at offset {} is {}, not a map", unprot.offset,
                                 cbor::to_string(unprot.kind))};
    }
    const cbor::item* kid = unprot.find(cose_header_kid);
    if (kid == nullptr || kid->kind != cbor::type::byte_string) {
        return error{fmt::format("COSE_Sign1: the unprotected header at offset {} has no kid (label 4) byte string",
                                 unprot.offset)};
    }
    if (unprot.map_size() != 1) {
        return error{
            fmt::format("COSE_Sign1: the unprotected header at offset {} holds more than the kid", unprot.offset)};
    }
    msg.kid = kid->bytes;
    if (payload.kind != cbor::type::byte_string) {
        return error{fmt::format("COSE_Sign1: the payload at offset {} is {}, not an attached byte string",
                                 payload.offset, cbor::to_string(payload.kind))};
    }
    msg.payload = payload.bytes;
    if (sig.kind != cbor::type::byte_string || sig.bytes.size() != cose_signature_len) {
        return error{fmt::format("COSE_Sign1: the signature at offset {} is not a byte string of {} octets", sig.offset,
                                 cose_signature_len)};
    }
    msg.signature = sig.bytes;
    return msg;
}

result<cose_sign1> parse_cose_sign1(std::span<const uint8_t> encoded) {
    auto it = cbor::decode(encoded);
    if (!it) {
        return error{fmt::format("COSE_Sign1: {}", it.message())};
    }
    return parse_cose_sign1(*it);
}

status verify_cose_sign1(const cose_sign1& msg, signature_algorithm expected, std::span<const uint8_t> public_key_der,
                         std::span<const uint8_t> external_aad) {
    if (msg.algorithm != expected) {
        return error{fmt::format("COSE_Sign1: the message names {} but the key is registered for {}",
                                 algorithm_name(msg.algorithm), algorithm_name(expected))};
    }
    PTPSEC_TRY(tbs, sig_structure(msg.protected_header, external_aad, msg.payload));
    auto ok = verify_signature(expected, public_key_der, *tbs, msg.signature);
    if (!ok) {
        return error{fmt::format("COSE_Sign1: {}", ok.message())};
    }
    return ok_status();
}

} // namespace ptpsec::hsm
