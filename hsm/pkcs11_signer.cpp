#include <hsm/pkcs11_signer.h>

#include <drivers/base/hex.h>

#include <drivers/base/unique_fd.h>

#include <hsm/counter_text.h>
#include <hsm/signature.h>

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>
#include <utility>

namespace ptpsec::hsm {

std::string pkcs11_return_name(unsigned long rv) {
    struct named {
        CK_RV rv;
        const char* name;
    };
    // PKCS#11 v2.40 §5.1 and 3.0 §5.1: the return values.
    static constexpr named names[] = {
        {CKR_OK, "CKR_OK"},
        {CKR_CANCEL, "CKR_CANCEL"},
        {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
        {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
        {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
        {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
        {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
        {CKR_NO_EVENT, "CKR_NO_EVENT"},
        {CKR_NEED_TO_CREATE_THREADS, "CKR_NEED_TO_CREATE_THREADS"},
        {CKR_CANT_LOCK, "CKR_CANT_LOCK"},
        {CKR_ATTRIBUTE_READ_ONLY, "CKR_ATTRIBUTE_READ_ONLY"},
        {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE"},
        {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
        {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
        {CKR_ACTION_PROHIBITED, "CKR_ACTION_PROHIBITED"},
        {CKR_DATA_INVALID, "CKR_DATA_INVALID"},
        {CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE"},
        {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
        {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
        {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
        {CKR_ENCRYPTED_DATA_INVALID, "CKR_ENCRYPTED_DATA_INVALID"},
        {CKR_ENCRYPTED_DATA_LEN_RANGE, "CKR_ENCRYPTED_DATA_LEN_RANGE"},
        {CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED"},
        {CKR_FUNCTION_NOT_PARALLEL, "CKR_FUNCTION_NOT_PARALLEL"},
        {CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED"},
        {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
        {CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE"},
        {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
        {CKR_KEY_NOT_NEEDED, "CKR_KEY_NOT_NEEDED"},
        {CKR_KEY_CHANGED, "CKR_KEY_CHANGED"},
        {CKR_KEY_NEEDED, "CKR_KEY_NEEDED"},
        {CKR_KEY_INDIGESTIBLE, "CKR_KEY_INDIGESTIBLE"},
        {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
        {CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE"},
        {CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE"},
        {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
        {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
        {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
        {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
        {CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED"},
        {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
        {CKR_PIN_INVALID, "CKR_PIN_INVALID"},
        {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"},
        {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"},
        {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
        {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"},
        {CKR_SESSION_COUNT, "CKR_SESSION_COUNT"},
        {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
        {CKR_SESSION_PARALLEL_NOT_SUPPORTED, "CKR_SESSION_PARALLEL_NOT_SUPPORTED"},
        {CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY"},
        {CKR_SESSION_EXISTS, "CKR_SESSION_EXISTS"},
        {CKR_SESSION_READ_ONLY_EXISTS, "CKR_SESSION_READ_ONLY_EXISTS"},
        {CKR_SESSION_READ_WRITE_SO_EXISTS, "CKR_SESSION_READ_WRITE_SO_EXISTS"},
        {CKR_SIGNATURE_INVALID, "CKR_SIGNATURE_INVALID"},
        {CKR_SIGNATURE_LEN_RANGE, "CKR_SIGNATURE_LEN_RANGE"},
        {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
        {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
        {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
        {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
        {CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED"},
        {CKR_UNWRAPPING_KEY_SIZE_RANGE, "CKR_UNWRAPPING_KEY_SIZE_RANGE"},
        {CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT, "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT"},
        {CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN"},
        {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
        {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
        {CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID"},
        {CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "CKR_USER_ANOTHER_ALREADY_LOGGED_IN"},
        {CKR_USER_TOO_MANY_TYPES, "CKR_USER_TOO_MANY_TYPES"},
        {CKR_WRAPPED_KEY_INVALID, "CKR_WRAPPED_KEY_INVALID"},
        {CKR_WRAPPED_KEY_LEN_RANGE, "CKR_WRAPPED_KEY_LEN_RANGE"},
        {CKR_WRAPPING_KEY_HANDLE_INVALID, "CKR_WRAPPING_KEY_HANDLE_INVALID"},
        {CKR_WRAPPING_KEY_SIZE_RANGE, "CKR_WRAPPING_KEY_SIZE_RANGE"},
        {CKR_WRAPPING_KEY_TYPE_INCONSISTENT, "CKR_WRAPPING_KEY_TYPE_INCONSISTENT"},
        {CKR_RANDOM_SEED_NOT_SUPPORTED, "CKR_RANDOM_SEED_NOT_SUPPORTED"},
        {CKR_RANDOM_NO_RNG, "CKR_RANDOM_NO_RNG"},
        {CKR_DOMAIN_PARAMS_INVALID, "CKR_DOMAIN_PARAMS_INVALID"},
        {CKR_CURVE_NOT_SUPPORTED, "CKR_CURVE_NOT_SUPPORTED"},
        {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
        {CKR_SAVED_STATE_INVALID, "CKR_SAVED_STATE_INVALID"},
        {CKR_INFORMATION_SENSITIVE, "CKR_INFORMATION_SENSITIVE"},
        {CKR_STATE_UNSAVEABLE, "CKR_STATE_UNSAVEABLE"},
        {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
        {CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED"},
        {CKR_MUTEX_BAD, "CKR_MUTEX_BAD"},
        {CKR_MUTEX_NOT_LOCKED, "CKR_MUTEX_NOT_LOCKED"},
        {CKR_NEW_PIN_MODE, "CKR_NEW_PIN_MODE"},
        {CKR_NEXT_OTP, "CKR_NEXT_OTP"},
        {CKR_EXCEEDED_MAX_ITERATIONS, "CKR_EXCEEDED_MAX_ITERATIONS"},
        {CKR_FIPS_SELF_TEST_FAILED, "CKR_FIPS_SELF_TEST_FAILED"},
        {CKR_LIBRARY_LOAD_FAILED, "CKR_LIBRARY_LOAD_FAILED"},
        {CKR_PIN_TOO_WEAK, "CKR_PIN_TOO_WEAK"},
        {CKR_PUBLIC_KEY_INVALID, "CKR_PUBLIC_KEY_INVALID"},
        {CKR_FUNCTION_REJECTED, "CKR_FUNCTION_REJECTED"},
    };
    for (const auto& n : names) {
        if (n.rv == rv) {
            return n.name;
        }
    }
    if (rv >= CKR_VENDOR_DEFINED) {
        return fmt::format("CKR_VENDOR_DEFINED+{:#x}", rv - CKR_VENDOR_DEFINED);
    }
    return fmt::format("CKR {:#x}", rv);
}

namespace {

// A failure, keeping the token's CK_RV (CKR_OK when the failure was ours,
// not the token's) so that a lost session, which one retry cures, can be
// told from a refusal.
struct token_error {
    std::string message;
    CK_RV rv = CKR_OK;
};

template <typename T>
using token_result = result<T, token_error>;
using token_status = result<ok_t, token_error>;

token_error refused(CK_RV rv, std::string_view what) {
    return token_error{fmt::format("{}: {}", what, pkcs11_return_name(rv)), rv};
}

token_error ours(std::string message) {
    return token_error{std::move(message), CKR_OK};
}

// PKCS#11 v2.40 §5.1: these say that the session, its login, the objects
// found through it or the token itself went away, not that the request was
// wrong. A new session (and finding the key again) is the cure, when the
// token is still there.
bool session_lost(CK_RV rv) noexcept {
    switch (rv) {
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_SESSION_CLOSED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_KEY_HANDLE_INVALID:
    case CKR_OBJECT_HANDLE_INVALID:
    case CKR_OPERATION_ACTIVE:
    case CKR_OPERATION_NOT_INITIALIZED:
    case CKR_DEVICE_REMOVED:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
        return true;
    default:
        return false;
    }
}

const char* algorithm_name(signature_algorithm alg) noexcept {
    return alg == signature_algorithm::eddsa ? "eddsa (Ed25519)" : "es256 (ECDSA P-256)";
}

// CKA_EC_PARAMS (PKCS#11 v2.40 curr. mech. §2.3.3): the DER encoding of the
// curve's OID. P-256 is prime256v1, 1.2.840.10045.3.1.7 (RFC 5480 §2.1.1.1).
constexpr std::array<uint8_t, 10> p256_params = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
// PKCS#11 3.0 curr. mech. §2.3.5: for Edwards curves either the OID
// id-Ed25519 1.3.101.112 (RFC 8410 §3) or the printableString
// "edwards25519". We generate with the OID and accept both.
constexpr std::array<uint8_t, 5> ed25519_oid_params = {0x06, 0x03, 0x2b, 0x65, 0x70};
constexpr std::array<uint8_t, 14> ed25519_name_params = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
                                                         'd',  's',  '2', '5', '5', '1', '9'};

constexpr size_t signature_size = 64;
constexpr size_t max_attribute_size = 4096;
constexpr size_t max_objects = 64;

// CK_TOKEN_INFO's text fields are blank padded, not NUL terminated (PKCS#11
// v2.40 §3.2).
template <size_t N>
std::string padded_text(const unsigned char (&field)[N]) {
    return std::string(reinterpret_cast<const char*>(field), p11_kit_space_strlen(field, N));
}

std::string hex(std::span<const uint8_t> b) {
    return to_hex(b);
}

struct pkey_free {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct pkey_ctx_free {
    void operator()(EVP_PKEY_CTX* p) const noexcept { EVP_PKEY_CTX_free(p); }
};

std::string errno_text(int e) {
    return std::strerror(e);
}

result<std::string> read_pin_file(const std::string& path) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return error{fmt::format("PIN file {}: {}", path, errno_text(errno))};
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        return error{fmt::format("PIN file {}: {}", path, errno_text(errno))};
    }
    if ((st.st_mode & (S_IROTH | S_IWOTH)) != 0) {
        return error{fmt::format("PIN file {} can be read or written by anyone (mode {:04o}); allow only its owner "
                                 "and group (chmod o-rw)",
                                 path, st.st_mode & 07777)};
    }
    std::string pin;
    std::array<char, 256> buf{};
    for (;;) {
        const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return error{fmt::format("PIN file {}: {}", path, errno_text(errno))};
        }
        if (n == 0) {
            break;
        }
        pin.append(buf.data(), static_cast<size_t>(n));
        if (pin.size() > 1024) {
            return error{fmt::format("PIN file {} is longer than a PIN can be", path)};
        }
    }
    if (!pin.empty() && pin.back() == '\n') {
        pin.pop_back();
        if (!pin.empty() && pin.back() == '\r') {
            pin.pop_back();
        }
    }
    if (pin.empty()) {
        return error{fmt::format("PIN file {} is empty", path)};
    }
    return pin;
}

// ---------------------------------------------------------------------------
// The module, loaded and initialised through p11-kit (RAII).

class module {
public:
    static result<std::unique_ptr<module>> load(const std::string& path) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) {
            return error{fmt::format("PKCS#11 module {}: {}", path, errno_text(errno))};
        }
        // Managed (flags 0): p11-kit counts C_Initialize/C_Finalize and keeps
        // our sessions apart from other PKCS#11 users in the process
        // (p11-kit "Sharing PKCS#11 modules").
        CK_FUNCTION_LIST* f = p11_kit_module_load(path.c_str(), 0);
        if (f == nullptr) {
            const char* why = p11_kit_message();
            return error{fmt::format("PKCS#11 module {} could not be loaded: {}", path,
                                     why != nullptr ? why : "p11-kit gave no reason")};
        }
        std::unique_ptr<module> m(new module(f, path));
        if (const CK_RV rv = p11_kit_module_initialize(f); rv != CKR_OK) {
            return error{fmt::format("PKCS#11 module {}: C_Initialize: {}", path, pkcs11_return_name(rv))};
        }
        m->_initialized = true;
        return m;
    }

    ~module() {
        if (_initialized) {
            (void)p11_kit_module_finalize(_f);
        }
        p11_kit_module_release(_f);
    }
    module(const module&) = delete;
    module& operator=(const module&) = delete;
    module(module&&) = delete;
    module& operator=(module&&) = delete;

    CK_FUNCTION_LIST* functions() const noexcept { return _f; }
    const std::string& path() const noexcept { return _path; }

    /// After CKR_CRYPTOKI_NOT_INITIALIZED (someone finalised the module under
    /// us): finalise our use and initialise it again.
    token_status reinitialize() {
        if (_initialized) {
            (void)p11_kit_module_finalize(_f);
            _initialized = false;
        }
        if (const CK_RV rv = p11_kit_module_initialize(_f); rv != CKR_OK) {
            return refused(rv, fmt::format("PKCS#11 module {}: C_Initialize", _path));
        }
        _initialized = true;
        return ok_t{};
    }

private:
    module(CK_FUNCTION_LIST* f, std::string path) :_f(f), _path(std::move(path)) {}
    CK_FUNCTION_LIST* _f;
    std::string _path;
    bool _initialized = false;
};

// ---------------------------------------------------------------------------
// A session and its login (RAII). PKCS#11 v2.40 §5.6: the login state
// belongs to the application, not to one session; we log out only when we
// logged in, and closing the application's last session on the token ends
// the login anyway.

class session {
public:
    static token_result<std::unique_ptr<session>> open(CK_FUNCTION_LIST* f, CK_SLOT_ID slot, bool read_write) {
        CK_SESSION_HANDLE h = CK_INVALID_HANDLE;
        // PKCS#11 v2.40 §5.6: CKF_SERIAL_SESSION must always be set.
        const CK_FLAGS flags = CKF_SERIAL_SESSION | (read_write ? CKF_RW_SESSION : 0);
        if (const CK_RV rv = f->C_OpenSession(slot, flags, nullptr, nullptr, &h); rv != CKR_OK) {
            return refused(rv, "C_OpenSession");
        }
        return std::unique_ptr<session>(new session(f, h));
    }

    ~session() {
        if (_logged_in) {
            (void)_f->C_Logout(_h);
        }
        (void)_f->C_CloseSession(_h);
    }
    session(const session&) = delete;
    session& operator=(const session&) = delete;
    session(session&&) = delete;
    session& operator=(session&&) = delete;

    /// `pin` is not changed; PKCS#11 takes it through a non-const pointer.
    token_status login(std::string& pin) {
        const CK_RV rv =
            _f->C_Login(_h, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), static_cast<CK_ULONG>(pin.size()));
        if (rv == CKR_USER_ALREADY_LOGGED_IN) {
            return ok_t{}; // another session of this process logged in; not ours to end
        }
        if (rv != CKR_OK) {
            return refused(rv, "C_Login as user");
        }
        _logged_in = true;
        return ok_t{};
    }

    CK_SESSION_HANDLE handle() const noexcept { return _h; }

private:
    session(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE h) : _f(f), _h(h) {}
    CK_FUNCTION_LIST* _f;
    CK_SESSION_HANDLE _h;
    bool _logged_in = false;
};

// ---------------------------------------------------------------------------
// Objects and their attributes.

token_result<std::vector<CK_OBJECT_HANDLE>> find_objects(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s,
                                                         std::span<CK_ATTRIBUTE> templ) {
    if (const CK_RV rv = f->C_FindObjectsInit(s, templ.data(), static_cast<CK_ULONG>(templ.size())); rv != CKR_OK) {
        return refused(rv, "C_FindObjectsInit");
    }
    std::vector<CK_OBJECT_HANDLE> found;
    std::array<CK_OBJECT_HANDLE, 16> batch{};
    // PKCS#11 v2.40 §5.10 C_FindObjects: a count of 0 means no more objects.
    while (found.size() <= max_objects) {
        CK_ULONG n = 0;
        if (const CK_RV rv = f->C_FindObjects(s, batch.data(), static_cast<CK_ULONG>(batch.size()), &n); rv != CKR_OK) {
            (void)f->C_FindObjectsFinal(s);
            return refused(rv, "C_FindObjects");
        }
        if (n == 0) {
            break;
        }
        found.insert(found.end(), batch.begin(),
                     batch.begin() + static_cast<std::ptrdiff_t>(std::min<CK_ULONG>(n, 16)));
    }
    if (const CK_RV rv = f->C_FindObjectsFinal(s); rv != CKR_OK) {
        return refused(rv, "C_FindObjectsFinal");
    }
    return found;
}

token_result<std::vector<uint8_t>> attribute_bytes(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                                                   CK_ATTRIBUTE_TYPE type, std::string_view name) {
    // PKCS#11 v2.40 §5.7 C_GetAttributeValue: a NULL pValue asks for the length.
    CK_ATTRIBUTE a{type, nullptr, 0};
    if (const CK_RV rv = f->C_GetAttributeValue(s, o, &a, 1); rv != CKR_OK) {
        return refused(rv, fmt::format("reading {}", name));
    }
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > max_attribute_size) {
        return ours(fmt::format("reading {}: the token gives no usable length", name));
    }
    std::vector<uint8_t> value(a.ulValueLen);
    a.pValue = value.data();
    if (const CK_RV rv = f->C_GetAttributeValue(s, o, &a, 1); rv != CKR_OK) {
        return refused(rv, fmt::format("reading {}", name));
    }
    value.resize(std::min<size_t>(a.ulValueLen, value.size()));
    return value;
}

token_result<bool> attribute_bool(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
                                  std::string_view name) {
    CK_BBOOL b = CK_FALSE;
    CK_ATTRIBUTE a{type, &b, sizeof b};
    if (const CK_RV rv = f->C_GetAttributeValue(s, o, &a, 1); rv != CKR_OK) {
        return refused(rv, fmt::format("reading {}", name));
    }
    return b == CK_TRUE;
}

token_result<CK_ULONG> attribute_ulong(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o,
                                       CK_ATTRIBUTE_TYPE type, std::string_view name) {
    CK_ULONG v = 0;
    CK_ATTRIBUTE a{type, &v, sizeof v};
    if (const CK_RV rv = f->C_GetAttributeValue(s, o, &a, 1); rv != CKR_OK) {
        return refused(rv, fmt::format("reading {}", name));
    }
    return v;
}

struct token_found {
    CK_SLOT_ID slot = 0;
    CK_TOKEN_INFO info{};
};

token_result<token_found> find_token(const module& m, const std::string& label) {
    CK_FUNCTION_LIST* f = m.functions();
    CK_ULONG count = 0;
    if (const CK_RV rv = f->C_GetSlotList(CK_TRUE, nullptr, &count); rv != CKR_OK) {
        return refused(rv, fmt::format("PKCS#11 module {}: C_GetSlotList", m.path()));
    }
    std::vector<CK_SLOT_ID> slots(count);
    if (count > 0) {
        if (const CK_RV rv = f->C_GetSlotList(CK_TRUE, slots.data(), &count); rv != CKR_OK) {
            return refused(rv, fmt::format("PKCS#11 module {}: C_GetSlotList", m.path()));
        }
        slots.resize(std::min<size_t>(count, slots.size()));
    }
    std::optional<token_found> match;
    std::string present_list;
    for (const CK_SLOT_ID slot : slots) {
        CK_TOKEN_INFO info{};
        if (f->C_GetTokenInfo(slot, &info) != CKR_OK) {
            continue; // removed meanwhile, or not recognised: not ours either way
        }
        if ((info.flags & CKF_TOKEN_INITIALIZED) == 0) {
            continue;
        }
        const std::string this_label = padded_text(info.label);
        present_list += fmt::format("{}\"{}\"", present_list.empty() ? "" : ", ", this_label);
        if (this_label != label) {
            continue;
        }
        if (match) {
            return ours(fmt::format("PKCS#11 module {}: two tokens are labelled \"{}\" (serials {} and {}); a label "
                                    "must name one token",
                                    m.path(), label, padded_text(match->info.serialNumber),
                                    padded_text(info.serialNumber)));
        }
        match = token_found{slot, info};
    }
    if (!match) {
        return token_error{fmt::format("PKCS#11 module {}: no token labelled \"{}\" (tokens present: {})", m.path(),
                                       label, present_list.empty() ? std::string("none") : present_list),
                           CKR_TOKEN_NOT_PRESENT};
    }
    return *match;
}

token_status require_mechanism(CK_FUNCTION_LIST* f, CK_SLOT_ID slot, CK_MECHANISM_TYPE mech, CK_FLAGS needed,
                               std::string_view mech_name, std::string_view token_label, signature_algorithm alg) {
    // PKCS#11 v2.40 §5.5: C_GetMechanismList is what the token offers;
    // C_GetMechanismInfo then says what for. Some tokens (SoftHSM2 with
    // slots.mechanisms) drop a mechanism from the list but still describe it.
    CK_ULONG count = 0;
    if (const CK_RV rv = f->C_GetMechanismList(slot, nullptr, &count); rv != CKR_OK) {
        return refused(rv, fmt::format("token \"{}\": C_GetMechanismList", token_label));
    }
    std::vector<CK_MECHANISM_TYPE> offered(count);
    if (count > 0) {
        if (const CK_RV rv = f->C_GetMechanismList(slot, offered.data(), &count); rv != CKR_OK) {
            return refused(rv, fmt::format("token \"{}\": C_GetMechanismList", token_label));
        }
        offered.resize(std::min<size_t>(count, offered.size()));
    }
    CK_MECHANISM_INFO info{};
    CK_RV rv = CKR_MECHANISM_INVALID;
    if (std::ranges::find(offered, mech) != offered.end()) {
        rv = f->C_GetMechanismInfo(slot, mech, &info);
    }
    if (rv == CKR_MECHANISM_INVALID || (rv == CKR_OK && (info.flags & needed) != needed)) {
        return token_error{fmt::format("token \"{}\" has no {} mechanism ({}), needed for {}{}", token_label,
                                       mech == CKM_EDDSA || mech == CKM_EC_EDWARDS_KEY_PAIR_GEN ? "Ed25519" : "ECDSA",
                                       mech_name, algorithm_name(alg),
                                       alg == signature_algorithm::eddsa ? "; use es256 with this token" : ""),
                           CKR_MECHANISM_INVALID};
    }
    if (rv != CKR_OK) {
        return refused(rv, fmt::format("token \"{}\": C_GetMechanismInfo({})", token_label, mech_name));
    }
    return ok_t{};
}

// ---------------------------------------------------------------------------
// The public key, from CKA_EC_POINT to a DER SubjectPublicKeyInfo.

// PKCS#11 v2.40 curr. mech. §2.3.3 (and 3.0 §2.3.5 for Edwards keys):
// CKA_EC_POINT is the DER OCTET STRING holding the point (X9.62
// uncompressed for P-256, the 32-octet RFC 8032 encoding for Ed25519). Some
// tokens return the bare point; we take both, and nothing else.
std::optional<std::span<const uint8_t>> unwrap_point(std::span<const uint8_t> v, size_t raw_size) {
    if (v.size() == raw_size) {
        return v;
    }
    if (v.size() == raw_size + 2 && v[0] == 0x04 && v[1] == raw_size) {
        return v.subspan(2);
    }
    return std::nullopt;
}

result<std::vector<uint8_t>> spki_der(EVP_PKEY* key) {
    const int len = i2d_PUBKEY(key, nullptr);
    if (len <= 0) {
        return error{"the public key could not be DER-encoded"};
    }
    std::vector<uint8_t> der(static_cast<size_t>(len));
    unsigned char* p = der.data();
    (void)i2d_PUBKEY(key, &p);
    return der;
}

result<std::vector<uint8_t>> public_key_from_point(signature_algorithm alg, std::span<const uint8_t> ec_point) {
    if (alg == signature_algorithm::eddsa) {
        const auto point = unwrap_point(ec_point, 32);
        if (!point) {
            return error{fmt::format("CKA_EC_POINT of {} octets is not an Ed25519 public key", ec_point.size())};
        }
        std::unique_ptr<EVP_PKEY, pkey_free> key(
            EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, point->data(), point->size()));
        if (!key) {
            return error{"CKA_EC_POINT is not an Ed25519 public key"};
        }
        return spki_der(key.get());
    }
    const auto point = unwrap_point(ec_point, 65);
    if (!point || (*point)[0] != 0x04) {
        return error{fmt::format("CKA_EC_POINT of {} octets is not an uncompressed P-256 point", ec_point.size())};
    }
    std::unique_ptr<EVP_PKEY_CTX, pkey_ctx_free> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    std::array<char, 11> group{"prime256v1"};
    std::vector<uint8_t> octets(point->begin(), point->end());
    std::array<OSSL_PARAM, 3> params{
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group.data(), 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, octets.data(), octets.size()),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY* raw = nullptr;
    // The point is decoded, and checked to lie on the curve, here.
    if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.data()) != 1) {
        return error{"CKA_EC_POINT is not a point on P-256"};
    }
    std::unique_ptr<EVP_PKEY, pkey_free> key(raw);
    return spki_der(key.get());
}

result<std::string> spki_sha256_hex(std::span<const uint8_t> spki) {
    std::array<uint8_t, EVP_MAX_MD_SIZE> md{};
    unsigned int len = 0;
    if (EVP_Digest(spki.data(), spki.size(), md.data(), &len, EVP_sha256(), nullptr) != 1) {
        return error{"SHA-256 failed"};
    }
    return hex(std::span<const uint8_t>(md.data(), len));
}

// ---------------------------------------------------------------------------
// The counter file (its text: hsm/counter_text.h).
//
// The key line binds the file to one key: a file that names another key is
// refused, so that copying another key's (lower) counter file over ours
// cannot roll the counter back.

class counter_file {
public:
    static result<std::unique_ptr<counter_file>> open(const std::string& path, std::string key_hash) {
        const std::filesystem::path p(path);
        std::string dir = p.has_parent_path() ? p.parent_path().string() : std::string(".");
        // One signer per counter file: two would both read N and both issue
        // N + 1. flock is per open file description, so a second signer in
        // this process is kept out too. The lock file stays (unlinking a
        // lock file races with the next locker).
        const std::string lock_path = path + ".lock";
        unique_fd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
        if (!lock) {
            return error{fmt::format("counter lock file {}: {}", lock_path, errno_text(errno))};
        }
        if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) {
                return error{fmt::format("counter file {} is in use by another signer (it holds {})", path, lock_path)};
            }
            return error{fmt::format("counter lock file {}: {}", lock_path, errno_text(errno))};
        }
        std::unique_ptr<counter_file> c(new counter_file(path, std::move(dir), std::move(key_hash), std::move(lock)));
        PTPSEC_TRY(current, c->read());
        c->_last = *current;
        return c;
    }

    /// The stored value; 0 when the file does not exist yet.
    result<uint64_t> read() const {
        unique_fd fd(::open(_path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd) {
            if (errno == ENOENT) {
                return uint64_t{0};
            }
            return error{fmt::format("counter file {}: {}", _path, errno_text(errno))};
        }
        std::string text;
        std::array<char, 512> buf{};
        for (;;) {
            const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                return error{fmt::format("counter file {}: {}", _path, errno_text(errno))};
            }
            if (n == 0) {
                break;
            }
            text.append(buf.data(), static_cast<size_t>(n));
            if (text.size() > pkcs11_counter_max_size) {
                break; // refused unread by parse_pkcs11_counter
            }
        }
        return parse(text);
    }

    /// Durably stores the stored value + 1 and returns it.
    result<uint64_t> advance() {
        PTPSEC_TRY(current, read());
        if (*current < _last) {
            return error{fmt::format("counter file {} went backwards (it holds {}, this signer already issued {}); "
                                     "refusing to issue a counter twice",
                                     _path, *current, _last)};
        }
        if (*current == UINT64_MAX) {
            return error{fmt::format("counter file {} is exhausted", _path)};
        }
        const uint64_t next = *current + 1;
        PTPSEC_TRY(written, write(next));
        _last = next;
        return next;
    }

    const std::string& path() const noexcept { return _path; }

private:
    counter_file(std::string path, std::string dir, std::string key_hash, unique_fd lock)
        : _path(std::move(path)), _tmp_path(_path + ".tmp"), _dir(std::move(dir)), _key_hash(std::move(key_hash)),
          _lock(std::move(lock)) {}

    error corrupt(std::string_view why) const {
        return error{fmt::format("counter file {} is corrupt ({}); refusing to reset the counter: restore the file, "
                                 "or replace it with one holding at least the last counter the Verifier accepted "
                                 "from this signer",
                                 _path, why)};
    }

    result<uint64_t> parse(std::string_view text) const {
        auto c = parse_pkcs11_counter(text);
        if (!c) {
            return corrupt(c.message());
        }
        if (c->key_hash != _key_hash) {
            return error{fmt::format("counter file {} belongs to another key (SubjectPublicKeyInfo SHA-256 {}), not "
                                     "to this one ({}); refusing it, since another key's counter could roll this "
                                     "key's counter back",
                                     _path, c->key_hash, _key_hash)};
        }
        return c->value;
    }

    // Temporary file, fsync, rename over the counter file, fsync of the
    // directory: after a crash the file holds the old value or the new one,
    // never a mix, and the new one is on disk before its first use.
    status write(uint64_t value) const {
        const std::string text = format_pkcs11_counter(_key_hash, value);
        unique_fd fd(::open(_tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!fd) {
            return error{fmt::format("counter file {}: {}", _tmp_path, errno_text(errno))};
        }
        size_t done = 0;
        while (done < text.size()) {
            const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return error{fmt::format("counter file {}: write: {}", _tmp_path, errno_text(errno))};
            }
            done += static_cast<size_t>(n);
        }
        if (::fsync(fd.get()) != 0) {
            return error{fmt::format("counter file {}: fsync: {}", _tmp_path, errno_text(errno))};
        }
        if (fd.close() != 0) {
            return error{fmt::format("counter file {}: close: {}", _tmp_path, errno_text(errno))};
        }
        if (::rename(_tmp_path.c_str(), _path.c_str()) != 0) {
            return error{fmt::format("counter file {}: rename from {}: {}", _path, _tmp_path, errno_text(errno))};
        }
        unique_fd dir(::open(_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dir || ::fsync(dir.get()) != 0) {
            return error{fmt::format("counter file {}: fsync of directory {}: {}", _path, _dir, errno_text(errno))};
        }
        return ok_status();
    }

    std::string _path;
    std::string _tmp_path;
    std::string _dir;
    std::string _key_hash;
    unique_fd _lock;
    uint64_t _last = 0;
};

} // namespace

struct pkcs11_signer::state {
    pkcs11_settings settings;
    std::string pin;
    // Declared before the session, so that the session closes first.
    std::unique_ptr<module> mod;
    std::unique_ptr<session> sess;
    CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
    signer_info info;
    pkcs11_enrolment enrolment;
    std::unique_ptr<counter_file> counter;
    uint64_t reopens = 0;

    state() = default;
    ~state() {
        // The PIN is kept for logging in again after a lost session; it
        // leaves memory with the signer.
        OPENSSL_cleanse(pin.data(), pin.size());
        OPENSSL_cleanse(settings.user_pin.data(), settings.user_pin.size());
    }
    state(const state&) = delete;
    state& operator=(const state&) = delete;
    state(state&&) = delete;
    state& operator=(state&&) = delete;

    /// Finds the token, opens a session, logs in and finds (or, the first
    /// time, generates) the key. The first time it records the public key;
    /// afterwards it refuses a key that differs from it.
    token_status connect(bool first);
    token_result<std::vector<uint8_t>> sign_once(std::span<const uint8_t> message);
    /// Forgets the session after a failure; the next call opens a new one.
    void drop_session(CK_RV why) {
        sess.reset();
        private_key = CK_INVALID_HANDLE;
        if (why == CKR_CRYPTOKI_NOT_INITIALIZED) {
            (void)mod->reinitialize();
        }
    }
    std::string where() const {
        return fmt::format("key \"{}\" on token \"{}\"", settings.key_label, settings.token_label);
    }

private:
    token_result<CK_OBJECT_HANDLE> generate(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s);
};

token_result<CK_OBJECT_HANDLE> pkcs11_signer::state::generate(CK_FUNCTION_LIST* f, CK_SESSION_HANDLE s) {
    const bool ed = settings.algorithm == signature_algorithm::eddsa;
    // CKA_ID ties the two halves together (PKCS#11 v2.40 §4.4, the usual
    // convention for finding a key pair's public half).
    std::array<uint8_t, 16> id{};
    if (RAND_bytes(id.data(), static_cast<int>(id.size())) != 1) {
        return ours("no random octets for the key's CKA_ID");
    }
    std::string label = settings.key_label;
    CK_OBJECT_CLASS pub_class = CKO_PUBLIC_KEY;
    CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;
    CK_KEY_TYPE key_type = ed ? CKK_EC_EDWARDS : CKK_EC;
    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL no = CK_FALSE;
    CK_MECHANISM mech{ed ? CKM_EC_EDWARDS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, nullptr, 0};

    std::vector<std::vector<uint8_t>> param_choices;
    if (ed) {
        param_choices.emplace_back(ed25519_oid_params.begin(), ed25519_oid_params.end());
        param_choices.emplace_back(ed25519_name_params.begin(), ed25519_name_params.end());
    } else {
        param_choices.emplace_back(p256_params.begin(), p256_params.end());
    }
    CK_RV rv = CKR_OK;
    for (auto& params : param_choices) {
        std::array<CK_ATTRIBUTE, 8> pub{{
            {CKA_CLASS, &pub_class, sizeof pub_class},
            {CKA_KEY_TYPE, &key_type, sizeof key_type},
            {CKA_TOKEN, &yes, sizeof yes},
            {CKA_PRIVATE, &no, sizeof no},
            {CKA_VERIFY, &yes, sizeof yes},
            {CKA_EC_PARAMS, params.data(), params.size()},
            {CKA_LABEL, label.data(), label.size()},
            {CKA_ID, id.data(), id.size()},
        }};
        // PKCS#11 v2.40 §4.9 (private key objects): a token object that only
        // a logged-in user sees, that the token never reveals (sensitive) nor
        // lets wrap out (not extractable), and that may only sign.
        std::array<CK_ATTRIBUTE, 10> priv{{
            {CKA_CLASS, &priv_class, sizeof priv_class},
            {CKA_KEY_TYPE, &key_type, sizeof key_type},
            {CKA_TOKEN, &yes, sizeof yes},
            {CKA_PRIVATE, &yes, sizeof yes},
            {CKA_SENSITIVE, &yes, sizeof yes},
            {CKA_EXTRACTABLE, &no, sizeof no},
            {CKA_SIGN, &yes, sizeof yes},
            {CKA_DERIVE, &no, sizeof no},
            {CKA_LABEL, label.data(), label.size()},
            {CKA_ID, id.data(), id.size()},
        }};
        CK_OBJECT_HANDLE pub_handle = CK_INVALID_HANDLE;
        CK_OBJECT_HANDLE priv_handle = CK_INVALID_HANDLE;
        rv = f->C_GenerateKeyPair(s, &mech, pub.data(), static_cast<CK_ULONG>(pub.size()), priv.data(),
                                  static_cast<CK_ULONG>(priv.size()), &pub_handle, &priv_handle);
        if (rv == CKR_OK) {
            return priv_handle;
        }
        // A token that wants the other spelling of the Edwards curve says so
        // with one of these; anything else is final.
        if (rv != CKR_ATTRIBUTE_VALUE_INVALID && rv != CKR_DOMAIN_PARAMS_INVALID && rv != CKR_CURVE_NOT_SUPPORTED &&
            rv != CKR_TEMPLATE_INCONSISTENT) {
            break;
        }
    }
    return refused(rv,
                   fmt::format("generating {} {} (C_GenerateKeyPair)", algorithm_name(settings.algorithm), where()));
}

token_status pkcs11_signer::state::connect(bool first) {
    CK_FUNCTION_LIST* f = mod->functions();
    PTPSEC_TRY(token, find_token(*mod, settings.token_label));
    const CK_SLOT_ID slot = token->slot;
    const bool ed = settings.algorithm == signature_algorithm::eddsa;
    if (first) {
        PTPSEC_TRY(can_sign,
                   require_mechanism(f, slot, ed ? CKM_EDDSA : CKM_ECDSA, CKF_SIGN, ed ? "CKM_EDDSA" : "CKM_ECDSA",
                                     settings.token_label, settings.algorithm));
    }
    const bool may_generate = first && settings.generate_key;
    PTPSEC_TRY(opened, session::open(f, slot, may_generate));
    std::unique_ptr<session> s = std::move(*opened);
    if (auto in = s->login(pin); !in) {
        return token_error{fmt::format("token \"{}\": {}", settings.token_label, in.message()), in.err().rv};
    }
    const CK_SESSION_HANDLE h = s->handle();

    std::string label = settings.key_label;
    CK_OBJECT_CLASS priv_class = CKO_PRIVATE_KEY;
    std::array<CK_ATTRIBUTE, 2> priv_templ{{
        {CKA_CLASS, &priv_class, sizeof priv_class},
        {CKA_LABEL, label.data(), label.size()},
    }};
    PTPSEC_TRY(privs, find_objects(f, h, priv_templ));
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    if (privs->empty()) {
        if (!may_generate) {
            return token_error{fmt::format("no private key labelled \"{}\" on token \"{}\"{}", settings.key_label,
                                           settings.token_label,
                                           first ? " (and generating one is not allowed)" : " any more"),
                               first ? CKR_OK : CKR_KEY_HANDLE_INVALID};
        }
        PTPSEC_TRY(can_generate,
                   require_mechanism(f, slot, ed ? CKM_EC_EDWARDS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN,
                                     CKF_GENERATE_KEY_PAIR, ed ? "CKM_EC_EDWARDS_KEY_PAIR_GEN" : "CKM_EC_KEY_PAIR_GEN",
                                     settings.token_label, settings.algorithm));
        PTPSEC_TRY(made, generate(f, h));
        key = *made;
    } else if (privs->size() > 1) {
        return ours(fmt::format("{} private keys are labelled \"{}\" on token \"{}\"; the label must name one key",
                                privs->size(), settings.key_label, settings.token_label));
    } else {
        key = privs->front();
    }

    // The key must be of the configured algorithm and protected as a
    // hardware-rooted key must be (PKCS#11 v2.40 §4.9).
    PTPSEC_TRY(key_type, attribute_ulong(f, h, key, CKA_KEY_TYPE, "CKA_KEY_TYPE"));
    if (*key_type != (ed ? CKK_EC_EDWARDS : CKK_EC)) {
        return ours(fmt::format("{} is not an {} key (CKA_KEY_TYPE {:#x})", where(),
                                ed ? "Ed25519 (CKK_EC_EDWARDS)" : "ECDSA (CKK_EC)", *key_type));
    }
    PTPSEC_TRY(params, attribute_bytes(f, h, key, CKA_EC_PARAMS, "CKA_EC_PARAMS"));
    const std::span<const uint8_t> p(*params);
    const bool params_ok =
        ed ? (std::ranges::equal(p, ed25519_oid_params) || std::ranges::equal(p, ed25519_name_params))
           : std::ranges::equal(p, p256_params);
    if (!params_ok) {
        return ours(fmt::format("{} is not on {} (CKA_EC_PARAMS {})", where(), ed ? "Ed25519" : "P-256", hex(p)));
    }
    PTPSEC_TRY(sensitive, attribute_bool(f, h, key, CKA_SENSITIVE, "CKA_SENSITIVE"));
    PTPSEC_TRY(extractable, attribute_bool(f, h, key, CKA_EXTRACTABLE, "CKA_EXTRACTABLE"));
    PTPSEC_TRY(can_sign, attribute_bool(f, h, key, CKA_SIGN, "CKA_SIGN"));
    if (*extractable || !*sensitive) {
        return ours(fmt::format("{} is {}{}{}: a key that may leave the token is not a hardware-rooted key; generate a "
                                "new one (CKA_SENSITIVE true, CKA_EXTRACTABLE false)",
                                where(), *extractable ? "extractable" : "", *extractable && !*sensitive ? " and " : "",
                                *sensitive ? "" : "not sensitive"));
    }
    if (!*can_sign) {
        return ours(fmt::format("{} may not sign (CKA_SIGN false)", where()));
    }
    PTPSEC_TRY(always_sensitive, attribute_bool(f, h, key, CKA_ALWAYS_SENSITIVE, "CKA_ALWAYS_SENSITIVE"));
    PTPSEC_TRY(never_extractable, attribute_bool(f, h, key, CKA_NEVER_EXTRACTABLE, "CKA_NEVER_EXTRACTABLE"));
    PTPSEC_TRY(id, attribute_bytes(f, h, key, CKA_ID, "CKA_ID"));

    // The public half: the public key object with the same label (and CKA_ID
    // when there is one); a token that keeps none may still give the point
    // on the private key (PKCS#11 3.0 lets it).
    CK_OBJECT_CLASS pub_class = CKO_PUBLIC_KEY;
    std::vector<CK_ATTRIBUTE> pub_templ{
        {CKA_CLASS, &pub_class, sizeof pub_class},
        {CKA_LABEL, label.data(), label.size()},
    };
    if (!id->empty()) {
        pub_templ.push_back({CKA_ID, id->data(), id->size()});
    }
    PTPSEC_TRY(pubs, find_objects(f, h, pub_templ));
    if (pubs->size() > 1) {
        return ours(
            fmt::format("{} public keys match {}; the label and CKA_ID must name one key pair", pubs->size(), where()));
    }
    auto point = pubs->empty() ? attribute_bytes(f, h, key, CKA_EC_POINT, "CKA_EC_POINT of the private key")
                               : attribute_bytes(f, h, pubs->front(), CKA_EC_POINT, "CKA_EC_POINT");
    if (!point) {
        if (pubs->empty()) {
            return ours(fmt::format("{} has no public key object (CKO_PUBLIC_KEY with the same label and CKA_ID), and "
                                    "the private key gives no CKA_EC_POINT ({})",
                                    where(), pkcs11_return_name(point.err().rv)));
        }
        return point.err();
    }
    auto spki = public_key_from_point(settings.algorithm, *point);
    if (!spki) {
        return ours(fmt::format("{}: {}", where(), spki.message()));
    }

    if (first) {
        const std::string serial = padded_text(token->info.serialNumber);
        const std::string model = padded_text(token->info.model);
        info.kind = backend_kind::pkcs11;
        info.algorithm = settings.algorithm;
        info.public_key_der = *spki;
        info.device = fmt::format("pkcs11 token {} serial {} ({}) key {}", settings.token_label, serial, model,
                                  settings.key_label);
        info.hardware_rooted = true;
        enrolment.signer_id = settings.signer_id;
        enrolment.token_label = settings.token_label;
        enrolment.token_serial = serial;
        enrolment.token_manufacturer = padded_text(token->info.manufacturerID);
        enrolment.token_model = model;
        enrolment.key_label = settings.key_label;
        enrolment.key_id = *id;
        enrolment.algorithm = settings.algorithm;
        enrolment.public_key_der = *spki;
        enrolment.always_sensitive = *always_sensitive;
        enrolment.never_extractable = *never_extractable;
    } else if (*spki != info.public_key_der) {
        // Another token took the label, or the key was replaced: signing with
        // it would produce signatures the Registrar does not expect.
        return token_error{fmt::format("{} is no longer the key this signer opened (its public key changed); "
                                       "refusing to sign with it",
                                       where()),
                           CKR_KEY_CHANGED};
    }
    sess = std::move(s);
    private_key = key;
    return ok_t{};
}

token_result<std::vector<uint8_t>> pkcs11_signer::state::sign_once(std::span<const uint8_t> message) {
    if (!sess) {
        PTPSEC_TRY(reconnected, connect(false));
        ++reopens;
    }
    CK_FUNCTION_LIST* f = mod->functions();
    const CK_SESSION_HANDLE h = sess->handle();
    std::array<uint8_t, 32> digest{};
    std::span<const uint8_t> input = message;
    CK_MECHANISM mech{CKM_EDDSA, nullptr, 0};
    if (settings.algorithm == signature_algorithm::es256) {
        // CKM_ECDSA signs the hash it is given (PKCS#11 v2.40 curr. mech.
        // §2.3.6); hashing here spares the token the message and works with
        // tokens that lack CKM_ECDSA_SHA256.
        unsigned int len = 0;
        if (EVP_Digest(message.data(), message.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1 ||
            len != digest.size()) {
            return ours("SHA-256 of the message failed");
        }
        input = digest;
        mech.mechanism = CKM_ECDSA;
    }
    // CKM_EDDSA without parameters is pure Ed25519 (PKCS#11 3.0 curr. mech.
    // §2.3.14), what COSE's EdDSA is (RFC 9053 §2.2).
    if (const CK_RV rv = f->C_SignInit(h, &mech, private_key); rv != CKR_OK) {
        return refused(rv, "C_SignInit");
    }
    // Room for any signature, so that C_Sign never answers
    // CKR_BUFFER_TOO_SMALL, which would leave the operation active (v2.40
    // §5.2). PKCS#11 does not write through the data pointer.
    // An empty message still gets a valid pointer: tokens answer a null
    // pData with CKR_ARGUMENTS_BAD whatever its length (SoftHSM2 does).
    std::array<uint8_t, 256> out{};
    CK_ULONG out_len = out.size();
    uint8_t empty = 0;
    uint8_t* data = input.empty() ? &empty : const_cast<uint8_t*>(input.data());
    if (const CK_RV rv = f->C_Sign(h, data, static_cast<CK_ULONG>(input.size()), out.data(), &out_len); rv != CKR_OK) {
        return refused(rv, "C_Sign");
    }
    // ECDSA: r || s, each as long as the order (v2.40 curr. mech. §2.3.1),
    // which is COSE's form already; Ed25519: R || S (RFC 8032 §5.1.6).
    if (out_len != signature_size) {
        return ours(fmt::format("the token returned a signature of {} octets, not {}", out_len, signature_size));
    }
    return std::vector<uint8_t>(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(signature_size));
}

pkcs11_signer::pkcs11_signer(std::unique_ptr<state> s) : _state(std::move(s)) {}

pkcs11_signer::~pkcs11_signer() = default;

result<std::unique_ptr<pkcs11_signer>> pkcs11_signer::open(const pkcs11_settings& settings) {
    if (settings.module_path.empty()) {
        return error{"pkcs11 signer: no PKCS#11 module path is set"};
    }
    if (settings.token_label.empty()) {
        return error{"pkcs11 signer: no token label is set"};
    }
    if (settings.key_label.empty()) {
        return error{"pkcs11 signer: no key label is set"};
    }
    if (settings.counter_path.empty()) {
        return error{"pkcs11 signer: no counter file is set"};
    }
    if (settings.algorithm != signature_algorithm::es256 && settings.algorithm != signature_algorithm::eddsa) {
        return error{"pkcs11 signer: the algorithm is neither es256 nor eddsa"};
    }
    if (settings.user_pin.empty() == settings.user_pin_file.empty()) {
        return error{"pkcs11 signer: set exactly one of the user PIN and the user PIN file"};
    }
    auto s = std::make_unique<state>();
    s->settings = settings;
    if (!settings.user_pin_file.empty()) {
        PTPSEC_TRY(pin, read_pin_file(settings.user_pin_file));
        s->pin = std::move(*pin);
    } else {
        s->pin = settings.user_pin;
    }
    PTPSEC_TRY(loaded, module::load(settings.module_path));
    s->mod = std::move(*loaded);
    if (auto connected = s->connect(true); !connected) {
        return error{fmt::format("pkcs11 signer: {}", connected.message())};
    }
    PTPSEC_TRY(key_hash, spki_sha256_hex(s->info.public_key_der));
    PTPSEC_TRY(counter, counter_file::open(settings.counter_path, std::move(*key_hash)));
    s->counter = std::move(*counter);
    return std::unique_ptr<pkcs11_signer>(new pkcs11_signer(std::move(s)));
}

const signer_info& pkcs11_signer::info() const noexcept {
    return _state->info;
}

const pkcs11_enrolment& pkcs11_signer::enrolment() const noexcept {
    return _state->enrolment;
}

uint64_t pkcs11_signer::session_reopens() const noexcept {
    return _state->reopens;
}

result<uint64_t> pkcs11_signer::next_counter() {
    return _state->counter->advance();
}

result<uint64_t> pkcs11_signer::read_counter() {
    return _state->counter->read();
}

result<std::vector<uint8_t>> pkcs11_signer::sign(std::span<const uint8_t> message) {
    state& s = *_state;
    const bool had_session = s.sess != nullptr;
    auto signed_ = s.sign_once(message);
    if (!signed_) {
        const CK_RV rv = signed_.err().rv;
        s.drop_session(rv);
        // A session that was there and got lost is worth one new session at
        // once; a token that is gone fails again in connect, and says so.
        if (!had_session || !session_lost(rv)) {
            return error{fmt::format("signing with {}: {}", s.where(), signed_.message())};
        }
        auto again = s.sign_once(message);
        if (!again) {
            s.drop_session(again.err().rv);
            return error{fmt::format("signing with {}: {}; with a new session: {}", s.where(), signed_.message(),
                                     again.message())};
        }
        signed_ = std::move(again);
    }
    // A token that returns a wrong signature (a fault, a bug, a swapped key)
    // must not put it into a batch token the Verifier will reject.
    if (auto checked = verify_signature(s.info.algorithm, s.info.public_key_der, message, *signed_); !checked) {
        return error{fmt::format("signing with {}: the token's signature does not verify under the key's public key "
                                 "({})",
                                 s.where(), checked.message())};
    }
    return std::move(*signed_);
}

} // namespace ptpsec::hsm
