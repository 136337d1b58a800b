#pragma once

// EAL for the drivers test binary, started once by the first test that needs
// it (rte_eal_init cannot run twice in a process) and cleaned up at exit. Its
// virtual devices: two ethdev PMDs without timesync for the clock tests, and
// three software crypto devices for the cryptodev engine tests.

#include <drivers/base/embedded_eal.h>

#include <string>

namespace ptpsec::test {

/// EAL for this process, started once (see the top of this file).
class eal_session {
public:
    /// Empty on success, else why EAL did not start.
    static const std::string& start() {
        return start_embedded_eal(
            {.program = "ptpsec-test-drivers",
             .vdevs = {"net_null0", "net_ring0", "crypto_aesni_mb0", "crypto_openssl0", "crypto_null0"},
             .extra = {}});
    }
};

} // namespace ptpsec::test
