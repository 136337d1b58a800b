#pragma once

// A SoftHSM2 token of the test's own: a softhsm2.conf in a temporary
// directory (file object store, tokens under the same directory), pointed to
// by SOFTHSM2_CONF for the life of the object (the previous value comes back
// afterwards), and a token initialised in it with softhsm2-util. Everything
// is removed at the end.
//
// SoftHSM2 reads SOFTHSM2_CONF when it is initialised (C_Initialize), so
// every user of the module in the process must have finalised it before the
// next softhsm_token is made; signers and pkcs11_direct objects that live
// inside the test's scope do.
//
// pkcs11_direct is the test's own way into the same module: loaded a second
// time through p11-kit, unmanaged, so that it reaches SoftHSM's state in this
// process directly (and can, for instance, close every session on the slot,
// the signer's too).

#include "../process.h"

#include <fmt/format.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::test {

inline constexpr const char* softhsm_module = "/usr/lib/softhsm/libsofthsm2.so";

/// The first of `names` that exists, or empty.
inline std::string first_existing(const std::vector<std::string>& names) {
    for (const auto& n : names) {
        if (::access(n.c_str(), X_OK) == 0) {
            return n;
        }
    }
    return {};
}

inline std::string softhsm_util_path() {
    return first_existing({"/usr/bin/softhsm2-util", "/usr/local/bin/softhsm2-util"});
}

/// Whether SoftHSM2 (module and softhsm2-util) is installed.
inline bool softhsm_available() {
    return ::access(softhsm_module, R_OK) == 0 && !softhsm_util_path().empty();
}

class softhsm_token {
public:
    /// `extra_config`: more softhsm2.conf lines (e.g. "slots.mechanisms = ...").
    explicit softhsm_token(std::string label = "ptpsec-test", std::string extra_config = {},
                           std::string user_pin = "4711-user", std::string so_pin = "0815-so")
        : _label(std::move(label)), _user_pin(std::move(user_pin)), _so_pin(std::move(so_pin)) {
        const std::string tokens = _dir.file("tokens");
        if (::mkdir(tokens.c_str(), 0700) != 0) {
            throw std::runtime_error("cannot make the SoftHSM2 token directory");
        }
        _conf = _dir.file("softhsm2.conf");
        write_file(_conf, fmt::format("directories.tokendir = {}\n"
                                      "objectstore.backend = file\n"
                                      "log.level = ERROR\n"
                                      "slots.removable = false\n"
                                      "{}\n",
                                      tokens, extra_config));
        if (const char* old = std::getenv("SOFTHSM2_CONF"); old != nullptr) {
            _previous_conf = old;
        }
        ::setenv("SOFTHSM2_CONF", _conf.c_str(), 1);
        add_token(_label);
    }

    ~softhsm_token() {
        if (_previous_conf) {
            ::setenv("SOFTHSM2_CONF", _previous_conf->c_str(), 1);
        } else {
            ::unsetenv("SOFTHSM2_CONF");
        }
    }
    softhsm_token(const softhsm_token&) = delete;
    softhsm_token& operator=(const softhsm_token&) = delete;
    softhsm_token(softhsm_token&&) = delete;
    softhsm_token& operator=(softhsm_token&&) = delete;

    /// Initialises one more token (softhsm2-util --init-token --free), with
    /// the same PINs. Do it before the module is initialised in-process.
    void add_token(const std::string& label) {
        const std::string util = softhsm_util_path();
        if (util.empty()) {
            throw std::runtime_error("softhsm2-util is not installed");
        }
        const run_result r = run_program(
            _dir, util, {"--init-token", "--free", "--label", label, "--so-pin", _so_pin, "--pin", _user_pin},
            std::chrono::seconds(30));
        if (r.timed_out || r.exit_code != 0) {
            throw std::runtime_error(fmt::format("softhsm2-util --init-token failed ({}): {}{}",
                                                 r.timed_out ? "timed out" : fmt::format("exit {}", r.exit_code), r.out,
                                                 r.err));
        }
    }

    const std::string& label() const noexcept { return _label; }
    const std::string& user_pin() const noexcept { return _user_pin; }
    const std::string& so_pin() const noexcept { return _so_pin; }
    const std::string& conf() const noexcept { return _conf; }
    /// A path in the token's temporary directory (counter files, PIN files).
    std::string file(std::string_view name) const { return _dir.file(name); }
    const temp_dir& dir() const noexcept { return _dir; }

private:
    temp_dir _dir;
    std::string _label;
    std::string _user_pin;
    std::string _so_pin;
    std::string _conf;
    std::optional<std::string> _previous_conf;
};

/// The module loaded once more, unmanaged: its C_ functions go straight to
/// SoftHSM2's in-process state. It initialises the module only if nobody has
/// (and then finalises it at the end); otherwise it shares the
/// initialisation of whoever did.
class pkcs11_direct {
public:
    explicit pkcs11_direct(const std::string& module_path = softhsm_module) {
        _f = p11_kit_module_load(module_path.c_str(), P11_KIT_MODULE_UNMANAGED);
        if (_f == nullptr) {
            throw std::runtime_error(fmt::format("p11_kit_module_load {} failed", module_path));
        }
        const CK_RV rv = _f->C_Initialize(nullptr);
        if (rv == CKR_OK) {
            _owns_initialize = true;
        } else if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
            p11_kit_module_release(_f);
            throw std::runtime_error(fmt::format("C_Initialize: {:#x}", rv));
        }
    }
    ~pkcs11_direct() {
        for (const CK_SESSION_HANDLE s : _sessions) {
            (void)_f->C_CloseSession(s);
        }
        if (_owns_initialize) {
            (void)_f->C_Finalize(nullptr);
        }
        p11_kit_module_release(_f);
    }
    pkcs11_direct(const pkcs11_direct&) = delete;
    pkcs11_direct& operator=(const pkcs11_direct&) = delete;
    pkcs11_direct(pkcs11_direct&&) = delete;
    pkcs11_direct& operator=(pkcs11_direct&&) = delete;

    CK_FUNCTION_LIST* functions() const noexcept { return _f; }

    /// The slot holding the token labelled `label`.
    CK_SLOT_ID slot(const std::string& label) const {
        CK_ULONG n = 0;
        if (_f->C_GetSlotList(CK_TRUE, nullptr, &n) != CKR_OK) {
            throw std::runtime_error("C_GetSlotList failed");
        }
        std::vector<CK_SLOT_ID> slots(n);
        if (n > 0 && _f->C_GetSlotList(CK_TRUE, slots.data(), &n) != CKR_OK) {
            throw std::runtime_error("C_GetSlotList failed");
        }
        for (CK_ULONG i = 0; i < n; ++i) {
            CK_TOKEN_INFO info{};
            if (_f->C_GetTokenInfo(slots[i], &info) != CKR_OK) {
                continue;
            }
            const auto len = p11_kit_space_strlen(info.label, sizeof info.label);
            if (std::string_view(reinterpret_cast<const char*>(info.label), len) == label) {
                return slots[i];
            }
        }
        throw std::runtime_error(fmt::format("no token labelled {}", label));
    }

    /// A read-write session on the token, logged in as user (or already
    /// logged in through another session of the process). Closed at the end.
    CK_SESSION_HANDLE user_session(const std::string& label, std::string pin) {
        CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
        if (_f->C_OpenSession(slot(label), CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s) != CKR_OK) {
            throw std::runtime_error("C_OpenSession failed");
        }
        _sessions.push_back(s);
        const CK_RV rv =
            _f->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), static_cast<CK_ULONG>(pin.size()));
        if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
            throw std::runtime_error(fmt::format("C_Login: {:#x}", rv));
        }
        return s;
    }

    /// Forgets sessions that C_CloseAllSessions ended.
    void forget_sessions() noexcept { _sessions.clear(); }

private:
    CK_FUNCTION_LIST* _f = nullptr;
    bool _owns_initialize = false;
    std::vector<CK_SESSION_HANDLE> _sessions;
};

} // namespace ptpsec::test
