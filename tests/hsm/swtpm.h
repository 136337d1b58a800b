#pragma once

// A real TPM 2.0 for tests: swtpm serving the TPM command port and its
// control port on 127.0.0.1, on ports no one else holds (tests run in
// parallel with others on the machine: never a fixed port), with its state
// in a temporary directory. It can be stopped, paused (SIGSTOP: a TPM that
// keeps its connection and never answers) and started again on the same
// state and ports, and it is always stopped, by PID, when the object goes,
// whichever way the test ends.

#include "../process.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace ptpsec::test {

class swtpm {
public:
    /// What the TPM is made with.
    enum class make {
        plain,                   ///< a fresh state: EKs derivable, no EK certificate
        ek_certificates,         ///< manufactured by swtpm_setup: EK certificates from a CA of its own (ek_ca_file())
        ek_certificates_rsa3072, ///< the same with swtpm_setup --rsa-keysize 3072: its RSA EK of template H-6
    };

    /// Starts swtpm on free ports, or throws.
    explicit swtpm(make how = make::plain) {
        const auto exe = find_swtpm();
        if (!exe) {
            throw std::runtime_error("swtpm is not installed (Debian package swtpm)");
        }
        _exe = *exe;
        if (how != make::plain) {
            manufacture(how == make::ek_certificates_rsa3072 ? 3072 : 2048);
        }
        start();
    }
    ~swtpm() { stop(); }
    swtpm(const swtpm&) = delete;
    swtpm& operator=(const swtpm&) = delete;
    swtpm(swtpm&&) = delete;
    swtpm& operator=(swtpm&&) = delete;

    /// Whether swtpm can be run here at all (tests skip otherwise).
    static bool available() { return find_swtpm().has_value(); }

    /// With make::ek_certificates: a PEM file of the CA that issued the EK
    /// certificates (its root and its issuing certificate).
    const std::string& ek_ca_file() const noexcept { return _ek_ca; }
    /// Writes to `path` a PEM CRL of the issuer of the EK certificates (the
    /// swtpm_localca CA of a manufactured TPM, signed with its key) that
    /// lists `revoked` (DER certificates), revoked at `revoked_at` (default:
    /// a minute ago), and whose nextUpdate is `next_update` from now
    /// (negative: already expired).
    void write_ek_crl(const std::string& path, const std::vector<std::vector<uint8_t>>& revoked,
                      std::chrono::seconds next_update, std::optional<time_t> revoked_at = std::nullopt) const {
        const std::string ca = _logs.file("ca");
        const auto fail = [&](const char* what) {
            throw std::runtime_error(fmt::format("making a CRL of the EK issuer in {}: {}", ca, what));
        };
        std::unique_ptr<BIO, decltype(&BIO_free)> key_in(BIO_new_file((ca + "/signkey.pem").c_str(), "r"), BIO_free);
        std::unique_ptr<BIO, decltype(&BIO_free)> cert_in(BIO_new_file((ca + "/issuercert.pem").c_str(), "r"),
                                                          BIO_free);
        if (!key_in || !cert_in) {
            fail("cannot open signkey.pem or issuercert.pem");
        }
        std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
            PEM_read_bio_PrivateKey(key_in.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
        std::unique_ptr<X509, decltype(&X509_free)> issuer(PEM_read_bio_X509(cert_in.get(), nullptr, nullptr, nullptr),
                                                           X509_free);
        std::unique_ptr<X509_CRL, decltype(&X509_CRL_free)> crl(X509_CRL_new(), X509_CRL_free);
        if (!key || !issuer || !crl) {
            fail("cannot read the issuer's key or certificate");
        }
        const time_t now = ::time(nullptr);
        std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> last(ASN1_TIME_set(nullptr, now - 60), ASN1_TIME_free);
        std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> next(ASN1_TIME_set(nullptr, now + next_update.count()),
                                                                   ASN1_TIME_free);
        std::unique_ptr<ASN1_TIME, decltype(&ASN1_TIME_free)> when(
            ASN1_TIME_set(nullptr, revoked_at.value_or(now - 60)), ASN1_TIME_free);
        if (X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2) != 1 ||
            X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer.get())) != 1 ||
            X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1 ||
            X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1) {
            fail("cannot fill the CRL");
        }
        for (const auto& der : revoked) {
            const unsigned char* p = der.data();
            std::unique_ptr<X509, decltype(&X509_free)> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())),
                                                             X509_free);
            X509_REVOKED* r = X509_REVOKED_new();
            if (!cert || r == nullptr || X509_REVOKED_set_serialNumber(r, X509_get_serialNumber(cert.get())) != 1 ||
                X509_REVOKED_set_revocationDate(r, when.get()) != 1 || X509_CRL_add0_revoked(crl.get(), r) != 1) {
                X509_REVOKED_free(r);
                fail("cannot list a revoked certificate");
            }
        }
        if (X509_CRL_sort(crl.get()) != 1 || X509_CRL_sign(crl.get(), key.get(), EVP_sha256()) <= 0) {
            fail("cannot sign the CRL");
        }
        std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new_file(path.c_str(), "w"), BIO_free);
        if (!out || PEM_write_bio_X509_CRL(out.get(), crl.get()) != 1) {
            fail("cannot write the CRL");
        }
    }

    /// The TCTI configuration string for tpm2-tss.
    std::string tcti() const { return fmt::format("swtpm:host=127.0.0.1,port={}", _port); }
    uint16_t port() const noexcept { return _port; }
    pid_t pid() const noexcept { return _pid; }
    bool running() const noexcept { return _pid > 0; }

    /// Starts swtpm (again) on the state directory; the first start picks
    /// the ports, later ones reuse them, so that a TCTI string handed out
    /// before stays valid. Returns once swtpm accepts connections.
    void start() {
        if (_pid > 0) {
            return;
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        const bool pick_ports = _port == 0;
        for (int attempt = 0;; ++attempt) {
            if (pick_ports) {
                _port = free_port_pair();
            }
            spawn();
            if (wait_accepting(std::chrono::seconds(5))) {
                return;
            }
            // Another process took a port between our check and swtpm's
            // bind, or the old listening socket is not gone yet: new ports
            // on a first start, the same ones again on a restart.
            stop();
            if (std::chrono::steady_clock::now() > deadline || attempt > 20) {
                throw std::runtime_error(
                    fmt::format("swtpm did not start on port {}: {}", _port, read_file(_logs.file("swtpm.stderr"))));
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }

    /// SIGTERM, then SIGKILL after two seconds; reaps it. A paused swtpm is
    /// continued first so that it can act on SIGTERM.
    void stop() noexcept {
        if (_pid <= 0) {
            return;
        }
        ::kill(_pid, SIGCONT);
        ::kill(_pid, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        int ws = 0;
        for (;;) {
            const pid_t got = ::waitpid(_pid, &ws, WNOHANG);
            if (got == _pid || (got < 0 && errno != EINTR)) {
                break;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(_pid, SIGKILL);
                while (::waitpid(_pid, &ws, 0) < 0 && errno == EINTR) {
                }
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        _pid = -1;
    }

    /// A TPM that hangs: the process stops, its sockets stay open.
    void pause() noexcept {
        if (_pid > 0) {
            ::kill(_pid, SIGSTOP);
        }
    }
    void resume() noexcept {
        if (_pid > 0) {
            ::kill(_pid, SIGCONT);
        }
    }

private:
    static std::optional<std::string> find_swtpm() {
        const char* path = std::getenv("PATH");
        std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
        size_t begin = 0;
        while (begin <= dirs.size()) {
            const size_t end = std::min(dirs.find(':', begin), dirs.size());
            const auto candidate = std::filesystem::path(dirs.substr(begin, end - begin)) / "swtpm";
            if (::access(candidate.c_str(), X_OK) == 0) {
                return candidate.string();
            }
            begin = end + 1;
        }
        return std::nullopt;
    }

    static int bound_socket(uint16_t port) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            return -1;
        }
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
            ::close(fd);
            return -1;
        }
        return fd;
    }

    /// A port P chosen by the kernel (bind to port 0) whose neighbour P+1
    /// is free too: swtpm's command and control ports.
    static uint16_t free_port_pair() {
        for (int attempt = 0; attempt < 100; ++attempt) {
            const int first = bound_socket(0);
            if (first < 0) {
                continue;
            }
            sockaddr_in addr{};
            socklen_t len = sizeof(addr);
            ::getsockname(first, reinterpret_cast<sockaddr*>(&addr), &len);
            const uint16_t port = ntohs(addr.sin_port);
            const int second = port < 65535 ? bound_socket(static_cast<uint16_t>(port + 1)) : -1;
            ::close(first);
            if (second >= 0) {
                ::close(second);
                return port;
            }
        }
        throw std::runtime_error("no two adjacent free TCP ports on 127.0.0.1");
    }

    /// swtpm_setup with swtpm_localca on a CA in the log directory: EKs
    /// and their certificates in NV, issued by a self-signed CA made with
    /// openssl (ek_ca_file()): ECC P-384 at template H-3, and RSA 2048 at
    /// L-1 or RSA 3072 at H-6 by `rsa_bits`.
    void manufacture(unsigned rsa_bits) {
        const std::string ca = _logs.file("ca");
        std::filesystem::create_directories(ca);
        // The issuer made here rather than by swtpm_localca (which uses an
        // issuer it finds): a CA certificate whose key may sign CRLs too.
        const auto issuer =
            run_program(_logs, "/usr/bin/openssl",
                        {"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca + "/signkey.pem", "-out",
                         ca + "/issuercert.pem", "-subj", "/CN=ptpsec-test TPM vendor CA", "-days", "30", "-addext",
                         "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
        if (issuer.exit_code != 0) {
            throw std::runtime_error(fmt::format("openssl could not make the EK issuer: {}", issuer.err));
        }
        write_file(_logs.file("localca.conf"), fmt::format("statedir = {0}\nsigningkey = {0}/signkey.pem\n"
                                                           "issuercert = {0}/issuercert.pem\ncertserial = "
                                                           "{0}/certserial\n",
                                                           ca));
        write_file(_logs.file("localca.options"), "--platform-manufacturer ptpsec-test\n--platform-version 1\n"
                                                  "--platform-model swtpm\n");
        write_file(_logs.file("setup.conf"),
                   fmt::format("create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = {}\n"
                               "create_certs_tool_options = {}\nactive_pcr_banks = sha256\n",
                               _logs.file("localca.conf"), _logs.file("localca.options")));
        const auto r = run_program(_logs, "/usr/bin/swtpm_setup",
                                   {"--tpm2", "--tpmstate", _state.path().string(), "--create-ek-cert", "--ecc",
                                    "--rsa-keysize", std::to_string(rsa_bits), "--config", _logs.file("setup.conf")});
        if (r.exit_code != 0) {
            throw std::runtime_error(fmt::format("swtpm_setup failed: {}{}", r.out, r.err));
        }
        _ek_ca = _logs.file("ek-ca.pem");
        write_file(_ek_ca, read_file(ca + "/issuercert.pem"));
    }

    void spawn() {
        _pid =
            spawn_program(_exe,
                          {"socket", "--tpm2", "--server", fmt::format("type=tcp,port={},bindaddr=127.0.0.1", _port),
                           "--ctrl", fmt::format("type=tcp,port={},bindaddr=127.0.0.1", _port + 1), "--flags",
                           "not-need-init,startup-clear", "--tpmstate", fmt::format("dir={}", _state.path().string())},
                          _logs.file("swtpm.stdout"), _logs.file("swtpm.stderr"));
    }

    /// Polls the command port until swtpm accepts; false when swtpm exited
    /// (reaped here) or the time ran out.
    bool wait_accepting(std::chrono::milliseconds limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            int ws = 0;
            if (::waitpid(_pid, &ws, WNOHANG) == _pid) {
                _pid = -1;
                return false;
            }
            const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in addr{};
            addr.sin_family = AF_INET;
            addr.sin_port = htons(_port);
            addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            const bool connected =
                fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
            if (fd >= 0) {
                ::close(fd);
            }
            if (connected) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return false;
    }

    temp_dir _state;
    temp_dir _logs;
    std::string _exe;
    std::string _ek_ca;
    uint16_t _port = 0;
    pid_t _pid = -1;
};

} // namespace ptpsec::test
