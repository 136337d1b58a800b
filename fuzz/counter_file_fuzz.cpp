// libFuzzer target for the signers' counter files (hsm/counter_text.h): the
// input is read as a software signer's counter file and as a PKCS#11
// signer's. Nothing escapes but a result:
//   - what a reader accepts is exactly what its format function writes for
//     the value it read (one spelling per value; a counter that reads back
//     differently could move);
//   - a refusal is one of the reasons the signer puts in its message;
//   - the first octets of the input taken as a counter (and a key hash)
//     format to a text that reads back to them.
//
// Seeds in fuzz/corpus/counter_file: files of both kinds, at 0 and at the
// largest counter, and damaged ones.

#include <fuzz/invariant.h>
#include <hsm/counter_text.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace {

using ptpsec::fuzz::require;

bool known_pkcs11_refusal(std::string_view why) {
    for (const std::string_view known : {
             "it is far longer than a counter file",
             "it is cut short",
             "there is more after the counter",
             "its first line is not \"ptpsec pkcs11 counter 1\"",
             "it names no key",
             "its key hash is not 64 hex digits",
             "it holds no counter",
             "its counter is not a decimal number (digits, no leading zero, at most 18446744073709551615)",
         }) {
        if (why == known) {
            return true;
        }
    }
    return false;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    namespace hsm = ptpsec::hsm;
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    const auto sw = hsm::parse_software_counter(text);
    if (sw) {
        require(hsm::format_software_counter(*sw) == text, "a software counter file reads as it is written");
    } else {
        require(sw.message() == "expected a decimal number and a newline", "a software refusal says what is expected");
    }

    const auto p = hsm::parse_pkcs11_counter(text);
    if (p) {
        require(hsm::format_pkcs11_counter(p->key_hash, p->value) == text,
                "a PKCS#11 counter file reads as it is written");
    } else {
        require(known_pkcs11_refusal(p.message()), "a PKCS#11 refusal is one of the known reasons");
    }

    if (size >= sizeof(uint64_t)) {
        uint64_t v = 0;
        std::memcpy(&v, data, sizeof v);
        const auto back = hsm::parse_software_counter(hsm::format_software_counter(v));
        require(back && *back == v, "every software counter value reads back");
        static constexpr char hex_digits[] = "0123456789abcdef";
        std::string key(64, '0');
        for (size_t i = 0; i < key.size(); ++i) {
            const unsigned octet = data[(sizeof v + i / 2) % size];
            key[i] = hex_digits[(octet >> ((i & 1U) != 0 ? 0U : 4U)) & 0xFU];
        }
        const auto pb = hsm::parse_pkcs11_counter(hsm::format_pkcs11_counter(key, v));
        require(pb && pb->key_hash == key && pb->value == v, "every PKCS#11 counter value and key hash reads back");
    }
    return 0;
}
