// libFuzzer target for the checks of TPM 2.0 structures that come from a
// device or a node (hsm/tpm_signer.h): check_quote, which the KE server and
// the Registrar run on a node's quote (TPMS_ATTEST), and check_key_public,
// which the Registrar runs on a signing key's public area (TPM2B_PUBLIC).
//
// Input: octet 0 is the expected PCR set (bit i: PCR i of the SHA-256 bank,
// each expected to hold 32 zero octets, as PCRs 0-7 of a TPM just started
// do); octet 1 holds flags; the rest is the structure. With flag 1 clear
// the harness signs the rest with its own P-256 key, so that the checks
// past the signature run; with it set, the signature is 64 octets of the
// input before the structure, which must never verify. The rest is also
// read as a public area, checked against the harness's key and against a
// key made from the area's own point, so that the attribute checks run.
//
// When a check accepts, the harness checks independently what it claims:
// a quote unmarshals whole, carries TPM_GENERATED_VALUE, type quote, the
// nonce, exactly the expected selection and the digest of the expected
// values; a public area is a restricted, non-exportable ECDSA/SHA-256 P-256
// signing key of that point, and its name is SHA-256 of its octets.
//
// Seeds in fuzz/corpus/tpm: a quote and a key's public area from swtpm
// (fuzz/make_tpm_corpus.sh).

#include <fuzz/invariant.h>
#include <hsm/signature.h>
#include <hsm/tpm_signer.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <vector>

namespace {

using ptpsec::fuzz::require;

using ptpsec::hsm::pcr_values;

using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

std::vector<uint8_t> spki_of(EVP_PKEY* k) {
    unsigned char* der = nullptr;
    const int len = i2d_PUBKEY(k, &der);
    std::vector<uint8_t> out(der, der + std::max(len, 0));
    OPENSSL_free(der);
    return out;
}

EVP_PKEY* harness_key() {
    static const pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
    return key.get();
}

const std::vector<uint8_t>& harness_spki() {
    static const std::vector<uint8_t> spki = spki_of(harness_key());
    return spki;
}

std::vector<uint8_t> sign(std::span<const uint8_t> message) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    size_t len = 0;
    require(EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, harness_key()) == 1 &&
                EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()) == 1,
            "signing set-up");
    std::vector<uint8_t> der(len);
    require(EVP_DigestSign(ctx.get(), der.data(), &len, message.data(), message.size()) == 1, "signing");
    der.resize(len);
    auto raw = ptpsec::hsm::ecdsa_der_to_raw(der);
    require(raw.ok(), "DER signature to r || s");
    return *raw;
}

std::array<uint8_t, 32> sha256(std::span<const uint8_t> data) {
    std::array<uint8_t, 32> out{};
    unsigned len = 0;
    require(EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) == 1, "SHA-256");
    return out;
}

bool same(std::span<const uint8_t> a, std::span<const uint8_t> b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

/// The SPKI of a P-256 point given as 32-octet coordinates, or nullopt
/// when it is not a point of the curve.
std::optional<std::vector<uint8_t>> p256_spki(const TPMS_ECC_POINT& p) {
    if (p.x.size != 32 || p.y.size != 32) {
        return std::nullopt;
    }
    std::array<uint8_t, 65> encoded{};
    encoded[0] = 0x04;
    std::copy_n(p.x.buffer, 32, encoded.begin() + 1);
    std::copy_n(p.y.buffer, 32, encoded.begin() + 33);
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> bld(OSSL_PARAM_BLD_new(), OSSL_PARAM_BLD_free);
    if (!bld || OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, encoded.data(), encoded.size()) != 1) {
        return std::nullopt;
    }
    std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(OSSL_PARAM_BLD_to_param(bld.get()), OSSL_PARAM_free);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr),
                                                                    EVP_PKEY_CTX_free);
    EVP_PKEY* k = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &k, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        return std::nullopt;
    }
    const pkey_ptr key(k, EVP_PKEY_free);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> check(EVP_PKEY_CTX_new(k, nullptr), EVP_PKEY_CTX_free);
    if (!check || EVP_PKEY_public_check(check.get()) != 1) {
        return std::nullopt;
    }
    return spki_of(k);
}

void check_quote_claims(std::span<const uint8_t> attest, std::span<const uint8_t> nonce, uint8_t mask,
                        const pcr_values& expected) {
    TPMS_ATTEST a{};
    size_t offset = 0;
    require(Tss2_MU_TPMS_ATTEST_Unmarshal(attest.data(), attest.size(), &offset, &a) == TSS2_RC_SUCCESS &&
                offset == attest.size(),
            "an accepted quote unmarshals whole");
    require(a.magic == TPM2_GENERATED_VALUE, "an accepted quote carries TPM_GENERATED_VALUE");
    require(a.type == TPM2_ST_ATTEST_QUOTE, "an accepted attestation is a quote");
    require(same({a.extraData.buffer, a.extraData.size}, nonce), "an accepted quote carries the nonce");
    const auto& sel = a.attested.quote.pcrSelect;
    require(sel.count == 1 && sel.pcrSelections[0].hash == TPM2_ALG_SHA256, "an accepted quote is of one SHA-256 bank");
    for (size_t i = 0; i < sel.pcrSelections[0].sizeofSelect; ++i) {
        const uint8_t want = i == 0 ? mask : 0;
        require(sel.pcrSelections[0].pcrSelect[i] == want, "an accepted quote selects exactly the expected PCRs");
    }
    std::vector<uint8_t> concat;
    for (const auto& [index, value] : expected) {
        concat.insert(concat.end(), value.begin(), value.end());
    }
    const auto digest = sha256(concat);
    require(same({a.attested.quote.pcrDigest.buffer, a.attested.quote.pcrDigest.size}, digest),
            "an accepted quote's pcrDigest is the digest of the expected values");
}

void check_public_claims(std::span<const uint8_t> area, const TPMT_PUBLIC& p, std::span<const uint8_t> name) {
    require(p.type == TPM2_ALG_ECC && p.nameAlg == TPM2_ALG_SHA256 &&
                p.parameters.eccDetail.curveID == TPM2_ECC_NIST_P256,
            "an accepted key is a P-256 key named with SHA-256");
    constexpr TPMA_OBJECT must = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
    require((p.objectAttributes & must) == must && (p.objectAttributes & TPMA_OBJECT_DECRYPT) == 0,
            "an accepted key is a restricted, non-exportable signing key");
    require(p.parameters.eccDetail.scheme.scheme == TPM2_ALG_ECDSA &&
                p.parameters.eccDetail.scheme.details.ecdsa.hashAlg == TPM2_ALG_SHA256,
            "an accepted key signs ECDSA/SHA-256");
    const auto digest = sha256(area.subspan(2));
    require(name.size() == 34 && name[0] == 0x00 && name[1] == 0x0b && same(name.subspan(2), digest),
            "an accepted key's name is SHA-256 of its public area");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    using namespace ptpsec::hsm;
    if (size < 2) {
        return 0;
    }
    const uint8_t mask = data[0];
    const bool given_signature = (data[1] & 0x01) != 0;
    std::span<const uint8_t> rest(data + 2, size - 2);
    std::vector<uint8_t> signature;
    if (given_signature) {
        if (rest.size() < 64) {
            return 0;
        }
        signature.assign(rest.begin(), rest.begin() + 64);
        rest = rest.subspan(64);
    } else {
        signature = sign(rest);
    }
    std::array<uint8_t, 32> nonce{};
    for (size_t i = 0; i < nonce.size(); ++i) {
        nonce[i] = static_cast<uint8_t>(i);
    }
    pcr_values expected;
    for (unsigned i = 0; i < 8; ++i) {
        if ((mask & (1U << i)) != 0) {
            expected[i] = std::vector<uint8_t>(32, 0);
        }
    }
    const auto quote = check_quote(rest, signature, harness_spki(), nonce, expected);
    if (quote.ok()) {
        require(!given_signature, "a signature from the input verifies under the harness's key");
        check_quote_claims(rest, nonce, mask, expected);
    } else {
        require(!quote.message().empty(), "a refused quote says why");
    }

    auto against_harness = check_key_public(rest, harness_spki());
    TPM2B_PUBLIC pub{};
    size_t offset = 0;
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(rest.data(), rest.size(), &offset, &pub) != TSS2_RC_SUCCESS ||
        offset != rest.size()) {
        require(!against_harness.ok(), "a public area that does not unmarshal whole is refused");
        return 0;
    }
    if (against_harness.ok()) {
        check_public_claims(rest, pub.publicArea, *against_harness);
    }
    if (pub.publicArea.type != TPM2_ALG_ECC) {
        require(!against_harness.ok(), "a key that is not ECC is refused");
        return 0;
    }
    const auto own = p256_spki(pub.publicArea.unique.ecc);
    if (!own) {
        return 0;
    }
    const auto against_own = check_key_public(rest, *own);
    if (against_own.ok()) {
        check_public_claims(rest, pub.publicArea, *against_own);
    } else {
        require(!against_own.message().empty(), "a refused public area says why");
    }
    return 0;
}
