// libFuzzer target for the TICKET TLV (control/node/grantor.h): the value
// arrives from the wire in a requester's unicast request and the grantor's
// node parses it and opens the ticket. Whatever parses must build back to
// the same octets (the record's critical bit and padding aside), and opening it under a
// fixed ticket key must fail or succeed without crashing or leaking; a
// ticket sealed under that key from the input's SA octets must open back to
// the same SA.

#include <control/ke/ticket_crypto.h>
#include <control/node/grantor.h>
#include <fuzz/invariant.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

using ptpsec::fuzz::require;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    using namespace ptpsec;
    static const std::vector<uint8_t> key(32, 0x5A);
    const std::span<const uint8_t> in(data, size);
    auto t = node::parse_ticket_tlv(in);
    if (t) {
        std::vector<uint8_t> back = node::ticket_tlv_value(*t);
        // An unpadded odd-length record is accepted; it builds padded.
        if (back.size() == size + 1) {
            require(back.back() == 0, "the padding octet is not zero");
            back.pop_back();
        }
        require(back.size() == size, "a parsed TICKET TLV builds to another length");
        back[0] = static_cast<uint8_t>((back[0] & 0x7F) | (data[0] & 0x80));
        require(std::equal(back.begin(), back.end(), data), "a parsed TICKET TLV builds to other octets");
        (void)ke::open_ticket(*t, nts::aead_algorithm::aes_siv_cmac_256, key);
    }
    // The input's first octets as a Security Association body: sealed and
    // opened again, it must come back as it went in.
    auto sa = nts::decode_security_association(in.first(std::min<size_t>(size, 9 + 64)));
    if (sa) {
        nts::port_identity who{};
        auto sealed = ke::seal_ticket(7, who, nts::aead_algorithm::aes_siv_cmac_256, key, *sa);
        require(static_cast<bool>(sealed), "a Security Association did not seal");
        auto opened = ke::open_ticket(*sealed, nts::aead_algorithm::aes_siv_cmac_256, key);
        require(opened && *opened == *sa, "a sealed Security Association did not open to itself");
    }
    return 0;
}
