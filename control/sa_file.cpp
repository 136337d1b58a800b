#include <control/sa_file.h>

#include <drivers/base/bytes.h>

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace ptpsec {

namespace {

constexpr std::array<sa_file_key_type, 7> key_types = {{
    {"SHA256-128", icv::algorithm::hmac_sha256_128},
    {"SHA256", icv::algorithm::hmac_sha256},
    {"AES128", icv::algorithm::aes_cmac_128},
    {"AES256", icv::algorithm::aes_cmac_256},
    {"AES128-GMAC", icv::algorithm::aes_gmac_128},
    {"AES192-GMAC", icv::algorithm::aes_gmac_192},
    {"AES256-GMAC", icv::algorithm::aes_gmac_256},
}};

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        const auto ca = static_cast<unsigned char>(a[i]);
        const auto cb = static_cast<unsigned char>(b[i]);
        if (std::tolower(ca) != std::tolower(cb)) {
            return false;
        }
    }
    return true;
}

bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.front())) {
        s.remove_prefix(1);
    }
    while (!s.empty() && is_space(s.back())) {
        s.remove_suffix(1);
    }
    return s;
}

/// The line without its comment: a '#' that begins a word starts one and
/// runs to the end of the line. linuxptp reads `spp 2  # ...` (sscanf
/// stops after the number) and ignores a key line with a comment; here a
/// comment may end any line. A '#' inside a word (a key) is the key's.
std::string_view strip_comment(std::string_view l) {
    for (size_t i = 0; i < l.size(); ++i) {
        if (l[i] == '#' && (i == 0 || is_space(l[i - 1]))) {
            return l.substr(0, i);
        }
    }
    return l;
}

std::vector<std::string_view> tokens(std::string_view s) {
    std::vector<std::string_view> out;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && is_space(s[i])) {
            ++i;
        }
        const size_t start = i;
        while (i < s.size() && !is_space(s[i])) {
            ++i;
        }
        if (i > start) {
            out.push_back(s.substr(start, i - start));
        }
    }
    return out;
}

template <typename T>
bool parse_number(std::string_view s, T& out) noexcept {
    if (s.empty()) {
        return false;
    }
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

int hex_digit(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

result<std::vector<uint8_t>> decode_key(std::string_view v) {
    if (v.starts_with("HEX:")) {
        v.remove_prefix(4);
        if (v.size() % 2 != 0) {
            return error{fmt::format("hex key has an odd number of digits ({})", v.size())};
        }
        std::vector<uint8_t> out(v.size() / 2);
        for (size_t i = 0; i < out.size(); ++i) {
            const int hi = hex_digit(v[2 * i]);
            const int lo = hex_digit(v[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                secure_wipe(out.data(), out.size()); // the octets decoded so far
                return error{
                    fmt::format("hex key has a non-hex character at position {}", 2 * i + (hi < 0 ? 0 : 1) + 1)};
            }
            out[i] = static_cast<uint8_t>((hi << 4) | lo);
        }
        return out;
    }
    if (v.starts_with("B64:")) {
        v.remove_prefix(4);
        if (v.empty() || v.size() % 4 != 0) {
            return error{"Base64 key must be a non-empty multiple of 4 characters"};
        }
        size_t pad = 0;
        while (pad < 2 && v[v.size() - 1 - pad] == '=') {
            ++pad;
        }
        // EVP_DecodeBlock takes '=' anywhere as zero bits and drops trailing
        // '-' and white space: check the alphabet (RFC 4648 §4) ourselves.
        for (const char c : v.substr(0, v.size() - pad)) {
            const bool in_alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
            if (!in_alphabet && c != '+' && c != '/') {
                return error{"invalid Base64 key"};
            }
        }
        std::vector<uint8_t> out(v.size() / 4 * 3);
        const int n =
            EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(v.data()), static_cast<int>(v.size()));
        if (n < 0) {
            secure_wipe(out.data(), out.size());
            return error{"invalid Base64 key"};
        }
        // EVP_DecodeBlock counts the octets that '=' padding stands for;
        // resize() keeps the dropped ones in memory, so they are wiped first.
        const size_t keep = static_cast<size_t>(n) - pad;
        secure_wipe(out.data() + keep, out.size() - keep);
        out.resize(keep);
        return out;
    }
    if (v.starts_with("ASCII:")) {
        v.remove_prefix(6);
    }
    return std::vector<uint8_t>(v.begin(), v.end());
}

class parser {
public:
    explicit parser(std::string_view origin) : _origin(origin) {}

    status line(std::string_view raw, size_t num);
    result<std::vector<sa_config>> finish();

private:
    error fail(size_t num, std::string_view msg) const { return error{fmt::format("{}:{}: {}", _origin, num, msg)}; }
    status key_line(const std::vector<std::string_view>& tok, size_t num);
    sa_config* current() noexcept { return _in_sa && !_sas.empty() ? &_sas.back() : nullptr; }

    std::string _origin;
    std::vector<sa_config> _sas;
    bool _section = false; ///< inside [security_association]
    bool _in_sa = false;   ///< an spp line opened an SA in this section
};

status parser::line(std::string_view raw, size_t num) {
    const std::string_view l = trim(strip_comment(raw));
    if (l.empty()) {
        return ok_status();
    }
    if (l.front() == '[') {
        if (!iequals(l, "[security_association]")) {
            return fail(num, fmt::format("unknown section {}; only [security_association] is allowed", l));
        }
        _section = true;
        _in_sa = false;
        return ok_status();
    }
    if (!_section) {
        return fail(num, "setting outside a [security_association] section");
    }
    const auto tok = tokens(l);
    const std::string_view word = tok[0];
    const auto one_number = [&](auto& out, long long lo, long long hi) -> status {
        long long v = 0;
        if (tok.size() != 2 || !parse_number(tok[1], v)) {
            return fail(num, fmt::format("'{}' takes one integer", word));
        }
        if (v < lo || v > hi) {
            return fail(num, fmt::format("{} {} is out of range {} to {}", word, tok[1], lo, hi));
        }
        out = static_cast<std::remove_reference_t<decltype(out)>>(v);
        return ok_status();
    };
    if (word == "spp") {
        uint8_t spp = 0;
        if (auto st = one_number(spp, 0, 255); !st) {
            return st;
        }
        for (const auto& s : _sas) {
            if (s.spp == spp) {
                return fail(num, fmt::format("spp {} is already defined at {}", spp, s.origin));
            }
        }
        sa_config c;
        c.spp = spp;
        c.origin = fmt::format("{}:{}", _origin, num);
        _sas.push_back(std::move(c));
        _in_sa = true;
        return ok_status();
    }
    sa_config* sa = current();
    if (sa == nullptr) {
        return fail(num, "no 'spp' line before this one in the section");
    }
    if (word == "seqid_window") {
        return one_number(sa->seqid_window, 0, 0x7FFF);
    }
    if (word == "allow_mutable") {
        int v = 0;
        if (auto st = one_number(v, 0, 1); !st) {
            return fail(num, "allow_mutable must be 0 or 1");
        }
        sa->allow_mutable = v == 1;
        return ok_status();
    }
    if (word == "seqnum_length" || word == "res_length") {
        int v = 0;
        if (auto st = one_number(v, 0, 255); !st) {
            return st;
        }
        if (v != 0) {
            return fail(num, fmt::format("{} must be 0: the optional sequenceNo and RES fields are not used "
                                         "(AES-GMAC keys carry their 8-octet IV in sequenceNo by themselves)",
                                         word));
        }
        return ok_status();
    }
    return key_line(tok, num);
}

status parser::key_line(const std::vector<std::string_view>& tok, size_t num) {
    if (uint32_t id = 0; tok.size() == 2 && parse_number(tok[0], id)) {
        return fail(num, fmt::format("key {}: no value after the type; a key line is 'id type [len] value' ('#' "
                                     "starts a comment, so a value cannot begin with it: give it as HEX: or B64:)",
                                     tok[0]));
    }
    if (tok.size() < 3 || tok.size() > 4) {
        return fail(num, fmt::format("unknown setting '{}'; a key line is 'id type [len] value'", tok[0]));
    }
    uint32_t id = 0;
    if (!parse_number(tok[0], id)) {
        return fail(num,
                    fmt::format("unknown setting '{}'; a key line starts with a key id from 1 to 4294967295", tok[0]));
    }
    if (id == 0) {
        return fail(num, "key id 0 is out of range 1 to 4294967295");
    }
    sa_config& sa = *current();
    for (const auto& k : sa.keys) {
        if (k.key_id == id) {
            return fail(num, fmt::format("key id {} is already defined at {}", id, k.origin));
        }
    }
    const sa_file_key_type* type = nullptr;
    for (const auto& t : key_types) {
        if (iequals(t.name, tok[1])) {
            type = &t;
        }
    }
    if (type == nullptr) {
        std::string names;
        for (const auto& t : key_types) {
            names += names.empty() ? "" : ", ";
            names += t.name;
        }
        return fail(num, fmt::format("unknown key type '{}' (known: {})", tok[1], names));
    }
    size_t declared = 0;
    if (tok.size() == 4 && (!parse_number(tok[2], declared) || declared == 0)) {
        return fail(num, fmt::format("key length '{}' is not a positive integer", tok[2]));
    }
    auto key = decode_key(tok.back());
    if (!key) {
        return fail(num, key.message());
    }
    if (tok.size() == 4 && key->size() != declared) {
        secure_wipe(key->data(), key->size());
        return fail(num, fmt::format("key is {} octets, the line says {}", key->size(), declared));
    }
    if (auto st = icv::check_key_length(type->alg, key->size()); !st) {
        secure_wipe(key->data(), key->size());
        return fail(num, fmt::format("key type {}: {}", type->name, st.message()));
    }
    key_config kc;
    kc.key_id = id;
    kc.alg = type->alg;
    kc.key = key_bytes(std::move(key).value());
    kc.origin = fmt::format("{}:{}", _origin, num);
    sa.keys.push_back(std::move(kc));
    return ok_status();
}

result<std::vector<sa_config>> parser::finish() {
    for (const auto& s : _sas) {
        if (s.keys.empty()) {
            return error{fmt::format("{}: spp {} has no keys", s.origin, s.spp)};
        }
    }
    if (_sas.empty()) {
        return error{
            fmt::format("{}: no security association (expected '[security_association]' and 'spp N')", _origin)};
    }
    return std::move(_sas);
}

} // namespace

std::span<const sa_file_key_type> sa_file_key_types() noexcept {
    return key_types;
}

result<std::vector<sa_config>> parse_sa_file(std::string_view text, std::string_view origin) {
    parser p(origin);
    size_t num = 1;
    while (!text.empty()) {
        const size_t nl = text.find('\n');
        const std::string_view l = text.substr(0, nl);
        if (l.find('\0') != std::string_view::npos) {
            return error{fmt::format("{}:{}: NUL character in the line", origin, num)};
        }
        if (auto st = p.line(l, num); !st) {
            return st.err();
        }
        if (nl == std::string_view::npos) {
            break;
        }
        text.remove_prefix(nl + 1);
        ++num;
    }
    return p.finish();
}

result<std::vector<sa_config>> load_sa_file(const std::string& path) {
    // read(2) into a buffer whose allocator wipes every block it gives back
    // (also when it grows): a stream would leave copies of the key octets
    // in buffers of its own.
    constexpr size_t max_size = size_t{16} << 20;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return error{fmt::format("{}: cannot open: {}", path, std::strerror(errno))};
    }
    struct stat st {};
    const bool sized = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
    std::vector<char, wiping_allocator<char>> text(sized ? std::min(static_cast<size_t>(st.st_size) + 1, max_size)
                                                         : size_t{4096});
    size_t got = 0;
    int read_error = 0;
    for (;;) {
        if (got == text.size()) {
            if (text.size() >= max_size) {
                break;
            }
            text.resize(std::min(text.size() * 2, max_size));
        }
        const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            read_error = errno;
        }
        if (n <= 0) {
            break;
        }
        got += static_cast<size_t>(n);
    }
    ::close(fd);
    if (read_error != 0) {
        return error{fmt::format("{}: cannot read: {}", path, std::strerror(read_error))};
    }
    if (got == max_size) {
        return error{fmt::format("{}: {} MiB or more, not an SA file", path, max_size >> 20)};
    }
    return parse_sa_file(std::string_view(text.data(), got), path);
}

result<spp_key> parse_spp_key(std::string_view text, bool key_required) {
    const std::string_view usage =
        key_required ? "use SPP:KEY_ID, for example 2:1" : "use SPP or SPP:KEY_ID, for example 2:1";
    auto number = [](std::string_view s, uint64_t max, uint64_t& out) {
        const char* end = s.data() + s.size();
        const auto r = std::from_chars(s.data(), end, out);
        return !s.empty() && r.ec == std::errc() && r.ptr == end && out <= max;
    };
    const size_t colon = text.find(':');
    const std::string_view spp_text = text.substr(0, colon);
    uint64_t v = 0;
    if (!number(spp_text, 255, v)) {
        return error{fmt::format("\"{}\": the SPP must be a number from 0 to 255; {}", text, usage)};
    }
    spp_key out;
    out.spp = static_cast<uint8_t>(v);
    if (colon == std::string_view::npos) {
        if (key_required) {
            return error{fmt::format("\"{}\": no key ID; {}", text, usage)};
        }
        return out;
    }
    if (!number(text.substr(colon + 1), UINT32_MAX, v)) {
        return error{fmt::format("\"{}\": the key ID must be a number from 0 to 4294967295; {}", text, usage)};
    }
    out.has_key = true;
    out.key_id = static_cast<uint32_t>(v);
    return out;
}

} // namespace ptpsec
