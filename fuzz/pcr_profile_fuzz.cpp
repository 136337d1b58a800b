// libFuzzer target for the PCR profile file (control/verifier/pcr_profile.h)
// that `registrar enrol --expected-pcrs` and `registrar update-profile` read.
// What parses names at least one PCR, each below hsm::pcr_count with 32
// octets, and written back as "INDEX HEX" lines parses to the same profile;
// a refusal names the file.
//
// Seeds in fuzz/corpus/pcr_profile: the forms the tests take (plain, with
// ':' and '=', comments, tpm2_pcrread's output).

#include <control/verifier/pcr_profile.h>
#include <fuzz/invariant.h>

#include <drivers/base/hex.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using ptpsec::fuzz::require;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    using namespace ptpsec;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    constexpr std::string_view origin = "expected PCR file fuzz.txt";
    const auto r = verifier::parse_pcr_profile(text, origin);
    if (!r.ok()) {
        require(r.message().starts_with(origin), "a refusal names the file");
        return 0;
    }
    require(!r->empty(), "an accepted profile names a PCR");
    std::string written;
    for (const auto& [index, value] : *r) {
        require(index < hsm::pcr_count, "an accepted PCR index is in range");
        require(value.size() == 32, "an accepted value is 32 octets");
        written += std::to_string(index) + " " + to_hex(value) + "\n";
    }
    const auto again = verifier::parse_pcr_profile(written, origin);
    require(again.ok() && *again == *r, "a profile written back parses to itself");
    return 0;
}
