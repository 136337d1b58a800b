// libFuzzer target for the evidence decoders (hsm/evidence.h): the input is
// read as an evidence log (every record walked), as one event's evidence,
// and as claims (by the in-place reader and the general decoder, which must
// agree), a batch payload and a COSE_Sign1 on their own. Whatever
// decodes must encode back to exactly the octets it came from (the encoding
// is deterministic and the decoders are strict, so there is one encoding per
// value) and decode again to the same value; checking a decoded evidence
// against a fixed key must fail or succeed without crashing.

#include <fuzz/invariant.h>
#include <hsm/evidence.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

using ptpsec::fuzz::require;

bool same(const std::vector<uint8_t>& a, std::span<const uint8_t> b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

// A fixed P-256 public key to check decoded evidence against.
const std::vector<uint8_t>& fixed_key() {
    static const std::vector<uint8_t> der = [] {
        std::vector<uint8_t> out;
        EVP_PKEY* k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
        const int len = i2d_PUBKEY(k, nullptr);
        out.resize(static_cast<size_t>(len));
        unsigned char* p = out.data();
        i2d_PUBKEY(k, &p);
        EVP_PKEY_free(k);
        return out;
    }();
    return der;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    using namespace ptpsec::hsm;
    const std::span<const uint8_t> in(data, size);

    const log_contents log = read_log(in);
    size_t expected_offset = 0;
    for (const log_entry& e : log.records) {
        require(e.offset == expected_offset, "log records are not contiguous");
        require(e.offset + e.length <= size, "a log record reaches past the input");
        expected_offset += e.length;
        auto enc = encode_log_record(e.record);
        require(enc.ok(), "a decoded log record does not encode");
        require(same(*enc, in.subspan(e.offset, e.length)), "a log record encodes to other octets");
        auto again = decode_log_record(*enc);
        require(again.ok(), "a re-encoded log record does not decode");
        require(again->leaves == e.record.leaves && again->token == e.record.token &&
                    again->payload == e.record.payload,
                "a log record decodes to another value the second time");
        if (!e.record.leaves.empty()) {
            auto ev = derive_event_evidence(e.record, e.record.leaves.size() - 1);
            require(ev.ok(), "a decoded log record yields no event evidence");
            (void)check_batch_record(e.record, signature_algorithm::es256, fixed_key());
        }
    }
    if (log.problem) {
        require(log.problem->offset <= size, "a log problem points past the input");
        require(expected_offset <= log.problem->offset, "a log problem points inside a good record");
    } else {
        require(expected_offset == size, "a log without a problem was not read to its end");
    }

    auto ev = decode_event_evidence(in);
    if (ev) {
        auto enc = encode_event_evidence(*ev);
        require(enc.ok(), "decoded event evidence does not encode");
        require(same(*enc, in), "event evidence encodes to other octets");
        auto again = decode_event_evidence(*enc);
        require(again.ok() && *again == *ev, "event evidence decodes to another value the second time");
        (void)check_event_evidence(*ev, signature_algorithm::es256, fixed_key());
    }

    auto claims = decode_claims(in);
    if (claims) {
        auto enc = encode_claims(*claims);
        require(enc.ok() && same(*enc, in), "claims encode to other octets");
    }
    // The in-place reader of the usual form against the general decoder:
    // never more accepting, never another value.
    const auto general = decode_claims_generally(in);
    if (auto fast = decode_canonical_claims(in)) {
        require(general.ok(), "the in-place claims reader accepts what the general decoder refuses");
        require(*fast == *general, "the in-place claims reader gives other claims than the general decoder");
    }
    require(claims.ok() == general.ok(), "decode_claims and the general decoder disagree");
    auto payload = decode_batch_payload(in);
    if (payload) {
        auto enc = encode_batch_payload(*payload);
        require(enc.ok() && same(*enc, in), "a batch payload encodes to other octets");
    }
    auto token = parse_cose_sign1(in);
    if (token) {
        auto enc = encode_cose_sign1(*token);
        require(enc.ok() && same(*enc, in), "a COSE_Sign1 encodes to other octets");
    }
    return 0;
}
