#include <hsm/leaf_writer.h>

#include <hsm/deterministic_cbor.h>
#include <hsm/evidence.h>

#include <cstring>

namespace ptpsec::hsm {

namespace {

constexpr uint8_t major_unsigned = 0;
constexpr uint8_t major_bytes = 2;
constexpr uint8_t major_map = 5;
constexpr size_t claims_in_map = 18;

uint8_t* put_uint(uint8_t* p, int64_t key, uint64_t v) noexcept {
    return cbor::put_head(cbor::put_integer(p, key), major_unsigned, v);
}

uint8_t* put_bytes(uint8_t* p, int64_t key, const uint8_t* data, size_t len) noexcept {
    p = cbor::put_head(cbor::put_integer(p, key), major_bytes, len);
    std::memcpy(p, data, len);
    return p + len;
}

} // namespace

leaf_fields leaf_fields_of(const event_record& r, uint64_t event_index) noexcept {
    leaf_fields f;
    f.version = evidence_version;
    f.event_type = event_type_of(r.direction, r.messageType);
    f.sequence_id = r.sequenceId;
    f.phc_timestamp_ns = r.timestamp_ns;
    f.event_digest = r.digest.data();
    f.domain_number = r.domainNumber;
    f.sdo_id = r.sdoId;
    f.source_port_identity = r.sourcePortIdentity.data();
    f.port_id = r.port_id;
    f.correction_field = r.correctionField;
    f.flags = r.flags;
    f.event_index = event_index;
    f.flag_field = r.flagField;
    f.message_length = r.messageLength;
    return f;
}

std::vector<uint8_t> encode_batch_claims(const std::optional<std::vector<uint8_t>>& nonce, uint64_t counter,
                                         std::string_view signer_id,
                                         const std::optional<std::vector<uint8_t>>& pcr_summary) {
    std::vector<uint8_t> out;
    cbor::writer w(out);
    w.uint(claim_key::nonce);
    if (nonce) {
        w.bytes(*nonce);
    } else {
        w.null();
    }
    w.uint(claim_key::monotonic_counter);
    w.uint(counter);
    w.uint(claim_key::signer_id);
    w.text(signer_id);
    w.uint(claim_key::pcr_summary);
    if (pcr_summary) {
        w.bytes(*pcr_summary);
    } else {
        w.null();
    }
    return out;
}

uint8_t* put_claims(uint8_t* p, const leaf_fields& f, std::span<const uint8_t> batch_part) noexcept {
    p = cbor::put_head(p, major_map, claims_in_map);
    p = put_uint(p, claim_key::version, f.version);
    p = put_uint(p, claim_key::event_type, f.event_type);
    p = put_uint(p, claim_key::ptp_seq, f.sequence_id);
    p = put_uint(p, claim_key::phc_timestamp_ns, f.phc_timestamp_ns);
    p = put_bytes(p, claim_key::event_digest, f.event_digest, event_digest_len);
    std::memcpy(p, batch_part.data(), batch_part.size());
    p += batch_part.size();
    p = put_uint(p, claim_key::domain_number, f.domain_number);
    p = put_uint(p, claim_key::sdo_id, f.sdo_id);
    p = put_bytes(p, claim_key::source_port_identity, f.source_port_identity, 10);
    p = put_uint(p, claim_key::port_id, f.port_id);
    p = cbor::put_integer(cbor::put_integer(p, claim_key::correction_field), f.correction_field);
    p = put_uint(p, claim_key::flags, f.flags);
    p = put_uint(p, claim_key::event_index, f.event_index);
    p = put_uint(p, claim_key::flag_field, f.flag_field);
    p = put_uint(p, claim_key::message_length, f.message_length);
    return p;
}

} // namespace ptpsec::hsm
