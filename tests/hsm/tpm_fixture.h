#pragma once

// A TPM signer on a test swtpm (swtpm.h), and the values its PCRs hold now:
// what tests that enrol a TPM in a Registrar, quote a platform or sign with
// it need first. Failures are gtest failures, and the caller gets nothing.

#include "swtpm.h"

#include <hsm/tpm_signer.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace ptpsec::test {

/// The signer named `signer_id` on `tpm` (its default key handle and
/// counter index), or null.
inline std::unique_ptr<hsm::tpm_signer> open_tpm_signer(const swtpm& tpm, const std::string& signer_id,
                                                        hsm::ek_template ek = hsm::ek_template::automatic) {
    hsm::tpm_settings s;
    s.tcti = tpm.tcti();
    s.signer_id = signer_id;
    s.ek = ek;
    auto signer = hsm::tpm_signer::open(s);
    EXPECT_TRUE(signer) << signer.message();
    return signer ? std::move(*signer) : nullptr;
}

/// The values `pcrs` hold on `signer`'s TPM now, as quoted: the profile an
/// operator writes down at enrolment. Empty when the quote fails.
inline hsm::pcr_values current_pcrs(hsm::tpm_signer& signer, const std::vector<unsigned>& pcrs) {
    const std::vector<uint8_t> nonce(16, 0x42);
    auto q = signer.quote(nonce, pcrs);
    EXPECT_TRUE(q) << q.message();
    return q ? q->pcrs : hsm::pcr_values{};
}

} // namespace ptpsec::test
