#pragma once

// A direct ESAPI connection to a test TPM (swtpm.h), for what tests do to
// the TPM behind a signer's back: extend a PCR, put other objects in the
// way. swtpm serves one connection at a time: open it only while no signer
// is open.

#include <gtest/gtest.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

namespace ptpsec::test {

class direct_tpm {
public:
    explicit direct_tpm(const std::string& tcti) {
        if (Tss2_TctiLdr_Initialize(tcti.c_str(), &_tcti) != TSS2_RC_SUCCESS ||
            Esys_Initialize(&_esys, _tcti, nullptr) != TSS2_RC_SUCCESS) {
            throw std::runtime_error("cannot connect to " + tcti);
        }
    }
    ~direct_tpm() {
        Esys_Finalize(&_esys);
        Tss2_TctiLdr_Finalize(&_tcti);
    }
    direct_tpm(const direct_tpm&) = delete;
    direct_tpm& operator=(const direct_tpm&) = delete;
    direct_tpm(direct_tpm&&) = delete;
    direct_tpm& operator=(direct_tpm&&) = delete;

    /// TPM2_PCR_Extend of the SHA-256 bank (Part 3 §22.2).
    void extend(unsigned pcr, std::span<const uint8_t> digest) {
        TPML_DIGEST_VALUES values{};
        values.count = 1;
        values.digests[0].hashAlg = TPM2_ALG_SHA256;
        std::copy(digest.begin(), digest.end(), values.digests[0].digest.sha256);
        ASSERT_EQ(Esys_PCR_Extend(_esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &values),
                  TSS2_RC_SUCCESS);
    }

    /// Puts an ECC decryption (storage) key at `handle`: an object that is
    /// not a signing key.
    void persist_storage_key(uint32_t handle) {
        TPM2B_PUBLIC tmpl{};
        tmpl.publicArea.type = TPM2_ALG_ECC;
        tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
        tmpl.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                           TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                           TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
        tmpl.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
        tmpl.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
        tmpl.publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
        tmpl.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
        tmpl.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
        tmpl.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        persist_primary(tmpl, handle);
    }

    /// Puts at `handle` an ECDSA P-256 signing key like the signer's in
    /// every attribute but restricted: one the TPM signs any digest with.
    void persist_unrestricted_signing_key(uint32_t handle) {
        TPM2B_PUBLIC tmpl{};
        tmpl.publicArea.type = TPM2_ALG_ECC;
        tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
        tmpl.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                           TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                           TPMA_OBJECT_NODA | TPMA_OBJECT_SIGN_ENCRYPT;
        tmpl.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
        tmpl.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
        tmpl.publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
        tmpl.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
        tmpl.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        persist_primary(tmpl, handle);
    }

    /// What any program that reaches the TPM can try with the key at
    /// `handle` (empty authValue): TPM2_Sign of `digest` (32 octets) with a
    /// NULL ticket (Part 3 §20.2). The TPM's response code.
    TSS2_RC sign_digest(uint32_t handle, std::span<const uint8_t> digest) {
        TPMT_TK_HASHCHECK ticket{};
        ticket.tag = TPM2_ST_HASHCHECK;
        ticket.hierarchy = TPM2_RH_NULL;
        TPM2B_DIGEST d{};
        d.size = static_cast<UINT16>(digest.size());
        std::copy(digest.begin(), digest.end(), d.buffer);
        return sign_with(handle, d, ticket);
    }

    /// The same with the ticket of the TPM's own hash of `data` (TPM2_Hash,
    /// Part 3 §15.4, for the owner hierarchy): the path a restricted key
    /// signs outside data by. The TPM's response code.
    TSS2_RC hash_and_sign(uint32_t handle, std::span<const uint8_t> data) {
        TPM2B_MAX_BUFFER in{};
        in.size = static_cast<UINT16>(data.size());
        std::copy(data.begin(), data.end(), in.buffer);
        TPM2B_DIGEST* digest = nullptr;
        TPMT_TK_HASHCHECK* ticket = nullptr;
        const TSS2_RC rc = Esys_Hash(_esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &in, TPM2_ALG_SHA256,
                                     ESYS_TR_RH_OWNER, &digest, &ticket);
        if (rc != TSS2_RC_SUCCESS) {
            return rc;
        }
        const TSS2_RC signed_rc = sign_with(handle, *digest, *ticket);
        Esys_Free(digest);
        Esys_Free(ticket);
        return signed_rc;
    }

    /// Takes the persistent object at `handle` out of the TPM
    /// (TPM2_EvictControl, Part 3 §28.5).
    void evict(uint32_t handle) {
        ESYS_TR object = ESYS_TR_NONE;
        ASSERT_EQ(Esys_TR_FromTPMPublic(_esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &object),
                  TSS2_RC_SUCCESS);
        ESYS_TR gone = ESYS_TR_NONE;
        ASSERT_EQ(Esys_EvictControl(_esys, ESYS_TR_RH_OWNER, object, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                    handle, &gone),
                  TSS2_RC_SUCCESS);
    }

    /// Defines an ordinary 8-octet NV index at `index`: not a counter.
    void define_ordinary_index(uint32_t index) {
        TPM2B_NV_PUBLIC pub{};
        pub.nvPublic.nvIndex = index;
        pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
        pub.nvPublic.attributes = TPMA_NV_OWNERWRITE | TPMA_NV_OWNERREAD;
        pub.nvPublic.dataSize = 8;
        const TPM2B_AUTH auth{};
        ESYS_TR handle = ESYS_TR_NONE;
        ASSERT_EQ(Esys_NV_DefineSpace(_esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &auth,
                                      &pub, &handle),
                  TSS2_RC_SUCCESS);
    }

private:
    void persist_primary(const TPM2B_PUBLIC& tmpl, uint32_t handle) {
        const TPM2B_SENSITIVE_CREATE sensitive{};
        const TPM2B_DATA outside{};
        const TPML_PCR_SELECTION pcrs{};
        ESYS_TR primary = ESYS_TR_NONE;
        ASSERT_EQ(Esys_CreatePrimary(_esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sensitive,
                                     &tmpl, &outside, &pcrs, &primary, nullptr, nullptr, nullptr, nullptr),
                  TSS2_RC_SUCCESS);
        ESYS_TR persistent = ESYS_TR_NONE;
        ASSERT_EQ(Esys_EvictControl(_esys, ESYS_TR_RH_OWNER, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                    handle, &persistent),
                  TSS2_RC_SUCCESS);
        Esys_FlushContext(_esys, primary);
    }

    TSS2_RC sign_with(uint32_t handle, const TPM2B_DIGEST& digest, const TPMT_TK_HASHCHECK& ticket) {
        ESYS_TR key = ESYS_TR_NONE;
        if (const TSS2_RC rc = Esys_TR_FromTPMPublic(_esys, handle, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &key);
            rc != TSS2_RC_SUCCESS) {
            return rc;
        }
        TPMT_SIG_SCHEME scheme{};
        scheme.scheme = TPM2_ALG_ECDSA;
        scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
        TPMT_SIGNATURE* sig = nullptr;
        const TSS2_RC rc =
            Esys_Sign(_esys, key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &digest, &scheme, &ticket, &sig);
        Esys_Free(sig);
        return rc;
    }

    TSS2_TCTI_CONTEXT* _tcti = nullptr;
    ESYS_CONTEXT* _esys = nullptr;
};

} // namespace ptpsec::test
