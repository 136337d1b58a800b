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
    TSS2_TCTI_CONTEXT* _tcti = nullptr;
    ESYS_CONTEXT* _esys = nullptr;
};

} // namespace ptpsec::test
