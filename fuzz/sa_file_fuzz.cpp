// libFuzzer target: one input is the text of an SA file. parse_sa_file must
// either refuse it with "ORIGIN:" or "ORIGIN:LINE:" in front of the reason,
// or return SAs that the data plane installs as they are: every key of a
// length its algorithm takes, no SA without keys, no SPP or key ID twice.

#include <control/sa_file.h>
#include <drivers/icv/openssl_engine.h>
#include <fuzz/invariant.h>

#include <cstdint>
#include <cstdio>
#include <string_view>

namespace ptpsec {
namespace {

using ptpsec::fuzz::broken;
using ptpsec::fuzz::require;

constexpr std::string_view origin = "fuzz.conf";

void run_one(const uint8_t* data, size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto r = parse_sa_file(text, origin);
    if (!r) {
        require(r.message().starts_with("fuzz.conf:"), "message names the origin");
        return;
    }
    require(!r->empty(), "an accepted file has an SA");
    std::array<bool, 256> spp_seen{};
    for (const sa_config& sa : *r) {
        require(!spp_seen[sa.spp], "spp defined once");
        spp_seen[sa.spp] = true;
        require(!sa.keys.empty(), "an SA has keys");
        require(sa.seqid_window <= 0x7FFF, "seqid_window in range");
        require(sa.origin.starts_with("fuzz.conf:"), "SA origin");
        for (size_t i = 0; i < sa.keys.size(); ++i) {
            const key_config& k = sa.keys[i];
            require(k.key_id != 0, "key id not 0");
            if (auto st = icv::check_key_length(k.alg, k.key.size()); !st) {
                broken("key length valid for its algorithm", st.message());
            }
            require(k.origin.starts_with("fuzz.conf:"), "key origin");
            for (size_t j = 0; j < i; ++j) {
                require(sa.keys[j].key_id != k.key_id, "key id defined once per SA");
            }
        }
    }
    // What the parser accepts, the data plane installs.
    static icv::openssl_engine eng;
    auto db = sa_database::install(eng, *r);
    if (!db) {
        broken("an accepted file installs", db.message());
    }
    require(db->size() == r->size(), "every SA installed");
}

} // namespace
} // namespace ptpsec

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    ptpsec::run_one(data, size);
    return 0;
}
