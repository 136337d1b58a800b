#pragma once

// The expected PCR values of a TPM signer (its PCR profile), as the operator
// writes them for `ptpsecctl registrar enrol --expected-pcrs` and
// `registrar update-profile`: one PCR per line, "INDEX SHA256-HEX",
// "INDEX: HEX" or "INDEX=HEX", so that tpm2_pcrread's output ("sha256:" then
// "  0 : 0x...") is taken as it is. '#' starts a comment; a line with an
// index and no value (a bank name such as "sha256:") is skipped.

#include <drivers/base/result.h>
#include <hsm/tpm_signer.h>

#include <string>
#include <string_view>

namespace ptpsec::verifier {

/// Parses a PCR profile. `origin` names it in errors ("expected PCR file
/// F"), each of which gives the line: an index that is not a number below
/// hsm::pcr_count, a value that is not 32 octets of hex, a PCR given twice;
/// a profile that names no PCR is refused too.
result<hsm::pcr_values> parse_pcr_profile(std::string_view text, std::string_view origin);

/// parse_pcr_profile() of the file at `path`.
result<hsm::pcr_values> read_pcr_profile(const std::string& path);

} // namespace ptpsec::verifier
