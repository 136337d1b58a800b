#include <hsm/software_signer.h>

#include <hsm/counter_text.h>
#include <hsm/signature.h>

#include <fmt/format.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <limits>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace ptpsec::hsm {

namespace {

struct pkey_free {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct bio_free {
    void operator()(BIO* p) const noexcept { BIO_free(p); }
};
struct md_ctx_free {
    void operator()(EVP_MD_CTX* p) const noexcept { EVP_MD_CTX_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;

class file_descriptor {
public:
    explicit file_descriptor(int fd) noexcept : _fd(fd) {}
    ~file_descriptor() {
        if (_fd >= 0) {
            ::close(_fd);
        }
    }
    file_descriptor(const file_descriptor&) = delete;
    file_descriptor& operator=(const file_descriptor&) = delete;
    file_descriptor(file_descriptor&&) = delete;
    file_descriptor& operator=(file_descriptor&&) = delete;
    int get() const noexcept { return _fd; }
    /// Closes now and reports whether close() succeeded (it can report a
    /// write error that fsync did not).
    bool close() noexcept {
        const int fd = _fd;
        _fd = -1;
        return ::close(fd) == 0;
    }

private:
    int _fd;
};

std::string errno_text() {
    return std::strerror(errno);
}

std::string openssl_text() {
    const unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) {
        return "no OpenSSL error recorded";
    }
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

status write_all(int fd, std::span<const uint8_t> data, const std::filesystem::path& path) {
    size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return error{fmt::format("cannot write {}: {}", path.string(), errno_text())};
        }
        done += static_cast<size_t>(n);
    }
    return ok_status();
}

// A rename or a new directory entry is durable only once the directory
// itself is fsynced (fsync(2): "an fsync() on a file descriptor for the
// directory is also needed").
status fsync_directory_of(const std::filesystem::path& path) {
    std::filesystem::path dir = path.parent_path();
    if (dir.empty()) {
        dir = ".";
    }
    file_descriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) {
        return error{fmt::format("cannot open directory {}: {}", dir.string(), errno_text())};
    }
    if (::fsync(fd.get()) != 0) {
        return error{fmt::format("cannot fsync directory {}: {}", dir.string(), errno_text())};
    }
    return ok_status();
}

// Writes `data` to a new file `tmp` (mode 0600), fsynced and closed.
status write_new_file(const std::filesystem::path& tmp, std::span<const uint8_t> data) {
    file_descriptor fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (fd.get() < 0) {
        return error{fmt::format("cannot create {}: {}", tmp.string(), errno_text())};
    }
    PTPSEC_TRY(written, write_all(fd.get(), data, tmp));
    if (::fsync(fd.get()) != 0) {
        return error{fmt::format("cannot fsync {}: {}", tmp.string(), errno_text())};
    }
    if (!fd.close()) {
        return error{fmt::format("cannot close {}: {}", tmp.string(), errno_text())};
    }
    return ok_status();
}

const char* algorithm_name(signature_algorithm a) noexcept {
    return a == signature_algorithm::es256 ? "an ECDSA P-256" : "an Ed25519";
}

bool key_fits(EVP_PKEY* key, signature_algorithm alg) {
    if (alg == signature_algorithm::es256) {
        return is_p256_key(key);
    }
    return EVP_PKEY_get_base_id(key) == EVP_PKEY_ED25519;
}

result<pkey_ptr> load_key(const std::filesystem::path& path, signature_algorithm alg) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
        return error{fmt::format("cannot stat key file {}: {}", path.string(), errno_text())};
    }
    if ((st.st_mode & 077) != 0) {
        return error{fmt::format("key file {} can be read by others (mode {:o}); it must be 0600", path.string(),
                                 st.st_mode & 0777)};
    }
    std::unique_ptr<BIO, bio_free> bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) {
        return error{fmt::format("cannot open key file {}: {}", path.string(), openssl_text())};
    }
    pkey_ptr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key) {
        return error{fmt::format("key file {} does not hold a PEM private key: {}", path.string(), openssl_text())};
    }
    if (!key_fits(key.get(), alg)) {
        return error{fmt::format("key file {} does not hold {} key", path.string(), algorithm_name(alg))};
    }
    return key;
}

result<pkey_ptr> create_key(const std::filesystem::path& path, signature_algorithm alg) {
    pkey_ptr key(alg == signature_algorithm::es256 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                                                   : EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    if (!key) {
        return error{fmt::format("cannot generate {} key: {}", algorithm_name(alg), openssl_text())};
    }
    std::unique_ptr<BIO, bio_free> mem(BIO_new(BIO_s_mem()));
    if (!mem || PEM_write_bio_PrivateKey(mem.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        return error{fmt::format("cannot encode the key as PEM: {}", openssl_text())};
    }
    char* pem = nullptr;
    const long pem_len = BIO_get_mem_data(mem.get(), &pem);
    if (pem_len <= 0 || pem == nullptr) {
        return error{"cannot encode the key as PEM"};
    }
    // Written under a temporary name and linked into place: the key file
    // appears whole or not at all, and link() never replaces a key file
    // another process created meanwhile.
    std::filesystem::path tmp = path;
    tmp += fmt::format(".{}.tmp", ::getpid());
    PTPSEC_TRY(written, write_new_file(tmp, {reinterpret_cast<const uint8_t*>(pem), static_cast<size_t>(pem_len)}));
    const int linked = ::link(tmp.c_str(), path.c_str());
    const int link_errno = errno;
    ::unlink(tmp.c_str());
    if (linked != 0) {
        return error{fmt::format("cannot create key file {}: {}", path.string(), std::strerror(link_errno))};
    }
    PTPSEC_TRY(synced, fsync_directory_of(path));
    return key;
}

result<std::vector<uint8_t>> public_key_der(EVP_PKEY* key) {
    const int len = i2d_PUBKEY(key, nullptr);
    if (len <= 0) {
        return error{fmt::format("cannot encode the public key: {}", openssl_text())};
    }
    std::vector<uint8_t> der(static_cast<size_t>(len));
    unsigned char* p = der.data();
    if (i2d_PUBKEY(key, &p) != len) {
        return error{"cannot encode the public key"};
    }
    return der;
}

} // namespace

struct software_signer::key_holder {
    pkey_ptr key;
};

software_signer::software_signer(software_signer_options options, std::unique_ptr<key_holder> key, signer_info info)
    : _options(std::move(options)), _key(std::move(key)), _info(std::move(info)) {}

software_signer::~software_signer() = default;

result<std::unique_ptr<software_signer>> software_signer::open(const software_signer_options& options) {
    if (options.key_file.empty() || options.counter_file.empty()) {
        return error{"the software signer needs a key file and a counter file"};
    }
    std::error_code ec;
    const bool exists = std::filesystem::exists(options.key_file, ec);
    if (ec) {
        return error{fmt::format("cannot look for key file {}: {}", options.key_file.string(), ec.message())};
    }
    auto key = exists ? load_key(options.key_file, options.algorithm) : create_key(options.key_file, options.algorithm);
    if (!key) {
        return key.err();
    }
    signer_info info;
    info.kind = backend_kind::software;
    info.algorithm = options.algorithm;
    info.hardware_rooted = false;
    info.device = options.key_file.string();
    PTPSEC_TRY(der, public_key_der(key->get()));
    info.public_key_der = std::move(*der);
    auto holder = std::make_unique<key_holder>();
    holder->key = std::move(*key);
    std::unique_ptr<software_signer> s(new software_signer(options, std::move(holder), std::move(info)));
    // A counter file that does not parse is found now, not at the first batch.
    PTPSEC_TRY(counter, s->read_counter());
    return s;
}

result<uint64_t> software_signer::read_counter() {
    const std::filesystem::path& path = _options.counter_file;
    file_descriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        if (errno == ENOENT) {
            return uint64_t{0};
        }
        return error{fmt::format("cannot open counter file {}: {}", path.string(), errno_text())};
    }
    // One octet more than a counter file can hold, so that a longer one is
    // refused rather than read in part.
    std::array<char, software_counter_max_size + 1> buf{};
    size_t len = 0;
    while (len < buf.size()) {
        const ssize_t n = ::read(fd.get(), buf.data() + len, buf.size() - len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return error{fmt::format("cannot read counter file {}: {}", path.string(), errno_text())};
        }
        if (n == 0) {
            break;
        }
        len += static_cast<size_t>(n);
    }
    // Damage is refused, and a damaged counter is never reset.
    auto value = parse_software_counter(std::string_view(buf.data(), len));
    if (!value) {
        return error{fmt::format("counter file {} is corrupt ({})", path.string(), value.message())};
    }
    return *value;
}

result<uint64_t> software_signer::next_counter() {
    PTPSEC_TRY(current, read_counter());
    if (*current == std::numeric_limits<uint64_t>::max()) {
        return error{fmt::format("counter file {} is at its maximum", _options.counter_file.string())};
    }
    const uint64_t next = *current + 1;
    const std::string text = format_software_counter(next);
    std::filesystem::path tmp = _options.counter_file;
    tmp += ".tmp";
    PTPSEC_TRY(written, write_new_file(tmp, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
    if (::rename(tmp.c_str(), _options.counter_file.c_str()) != 0) {
        const std::string why = errno_text();
        ::unlink(tmp.c_str());
        return error{fmt::format("cannot rename {} to {}: {}", tmp.string(), _options.counter_file.string(), why)};
    }
    PTPSEC_TRY(synced, fsync_directory_of(_options.counter_file));
    return next;
}

result<std::vector<uint8_t>> software_signer::sign(std::span<const uint8_t> message) {
    std::unique_ptr<EVP_MD_CTX, md_ctx_free> ctx(EVP_MD_CTX_new());
    const bool es256 = _info.algorithm == signature_algorithm::es256;
    // Ed25519 hashes the message itself (RFC 8032 PureEdDSA): no digest.
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, es256 ? EVP_sha256() : nullptr, nullptr, _key->key.get()) != 1) {
        return error{fmt::format("cannot set up signing: {}", openssl_text())};
    }
    size_t len = 0;
    if (EVP_DigestSign(ctx.get(), nullptr, &len, message.data(), message.size()) != 1) {
        return error{fmt::format("signing failed: {}", openssl_text())};
    }
    std::vector<uint8_t> sig(len);
    if (EVP_DigestSign(ctx.get(), sig.data(), &len, message.data(), message.size()) != 1) {
        return error{fmt::format("signing failed: {}", openssl_text())};
    }
    sig.resize(len);
    if (es256) {
        return ecdsa_der_to_raw(sig);
    }
    return sig;
}

} // namespace ptpsec::hsm
