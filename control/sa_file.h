#pragma once

// linuxptp's sa_file format, read exactly, plus AES-GMAC key types:
//
//   [security_association]
//   spp 2
//   seqid_window 3
//   allow_mutable 0
//   1 SHA256-128 32 HEX:F8AD...
//   2 AES128 B64:...
//   3 AES128-GMAC HEX:...
//
// Key lines are `id type [len] value`; value is HEX:, B64: or ASCII: (the
// default). Unlike linuxptp, which drops an SA silently when one of its lines
// is bad, any bad line rejects the whole file with FILE:LINE and the reason.

#include <dataplane/sa.h>
#include <drivers/base/result.h>

#include <string>
#include <string_view>
#include <vector>

namespace ptpsec {

/// Key type names of the SA file and the algorithm each stands for.
struct sa_file_key_type {
    std::string_view name;
    icv::algorithm alg;
};

std::span<const sa_file_key_type> sa_file_key_types() noexcept;

/// Parses SA-file text. `origin` names the source in messages.
result<std::vector<sa_config>> parse_sa_file(std::string_view text, std::string_view origin);

/// Reads and parses a file.
result<std::vector<sa_config>> load_sa_file(const std::string& path);

/// "SPP:KEY_ID" or, where the key is optional, "SPP" (as --sign and
/// --current take them): decimal, SPP 0-255, key ID 0-4294967295, nothing
/// else. The error says what is wrong without the option's name, for the
/// caller to put it in front.
struct spp_key {
    uint8_t spp = 0;
    bool has_key = false;
    uint32_t key_id = 0;
};
result<spp_key> parse_spp_key(std::string_view text, bool key_required);

} // namespace ptpsec
