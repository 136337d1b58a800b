#pragma once

// The development-only signer backend (hsm/signer.h): an OpenSSL key in a
// PEM file and a counter in a file. It is never hardware-rooted and says so
// in info() and therefore in every batch payload it signs.
//
//   * The key (ECDSA P-256 for ES256, Ed25519 for EdDSA) is a PKCS#8 PEM
//     file, created with mode 0600 when absent; an existing file that others
//     can read, or that holds a key of the other algorithm, is refused.
//   * The counter is a decimal number and a newline in its own file. Each
//     next_counter() writes the new value to a temporary file beside it,
//     fsyncs it, renames it over the counter file and fsyncs the directory
//     before returning, so a value once returned is never returned again
//     after a crash or a power loss. An absent file is counter 0; a file
//     that does not parse is refused, never reset.
//
// One thread at a time (the batching signer's).

#include <hsm/signer.h>

#include <filesystem>
#include <memory>

namespace ptpsec::hsm {

struct software_signer_options {
    std::filesystem::path key_file;
    std::filesystem::path counter_file;
    signature_algorithm algorithm = signature_algorithm::es256;
};

class software_signer final : public signer {
public:
    /// Loads the key (or creates it) and checks the counter file.
    static result<std::unique_ptr<software_signer>> open(const software_signer_options& options);

    ~software_signer() override;
    software_signer(const software_signer&) = delete;
    software_signer& operator=(const software_signer&) = delete;
    software_signer(software_signer&&) = delete;
    software_signer& operator=(software_signer&&) = delete;

    const signer_info& info() const noexcept override { return _info; }
    result<uint64_t> next_counter() override;
    result<uint64_t> read_counter() override;
    result<std::vector<uint8_t>> sign(std::span<const uint8_t> message) override;

private:
    struct key_holder;
    software_signer(software_signer_options options, std::unique_ptr<key_holder> key, signer_info info);

    software_signer_options _options;
    std::unique_ptr<key_holder> _key;
    signer_info _info;
};

} // namespace ptpsec::hsm
