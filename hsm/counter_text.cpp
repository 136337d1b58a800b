#include <hsm/counter_text.h>

#include <fmt/format.h>

#include <array>
#include <charconv>

namespace ptpsec::hsm {

namespace {

constexpr std::string_view pkcs11_magic = "ptpsec pkcs11 counter 1";
constexpr std::string_view pkcs11_key_tag = "key-spki-sha256 ";
constexpr std::string_view pkcs11_value_tag = "counter ";

/// 1 to 20 digits, no leading zero but for "0", and no more than 2^64 - 1.
bool parse_decimal(std::string_view digits, uint64_t& value) {
    if (digits.empty() || (digits[0] == '0' && digits.size() != 1)) {
        return false;
    }
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    return ec == std::errc{} && end == digits.data() + digits.size();
}

} // namespace

result<uint64_t> parse_software_counter(std::string_view text) {
    uint64_t value = 0;
    if (text.size() > software_counter_max_size || !text.ends_with('\n') ||
        !parse_decimal(text.substr(0, text.size() - 1), value)) {
        return error{"expected a decimal number and a newline"};
    }
    return value;
}

std::string format_software_counter(uint64_t value) {
    return fmt::format("{}\n", value);
}

result<pkcs11_counter> parse_pkcs11_counter(std::string_view text) {
    if (text.size() > pkcs11_counter_max_size) {
        return error{"it is far longer than a counter file"};
    }
    std::array<std::string_view, 3> lines{};
    for (auto& line : lines) {
        const size_t nl = text.find('\n');
        if (nl == std::string_view::npos) {
            return error{"it is cut short"};
        }
        line = text.substr(0, nl);
        text.remove_prefix(nl + 1);
    }
    if (!text.empty()) {
        return error{"there is more after the counter"};
    }
    if (lines[0] != pkcs11_magic) {
        return error{fmt::format("its first line is not \"{}\"", pkcs11_magic)};
    }
    if (!lines[1].starts_with(pkcs11_key_tag)) {
        return error{"it names no key"};
    }
    const std::string_view key = lines[1].substr(pkcs11_key_tag.size());
    if (key.size() != 64 || key.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
        return error{"its key hash is not 64 hex digits"};
    }
    if (!lines[2].starts_with(pkcs11_value_tag)) {
        return error{"it holds no counter"};
    }
    pkcs11_counter c{std::string(key), 0};
    if (!parse_decimal(lines[2].substr(pkcs11_value_tag.size()), c.value)) {
        return error{"its counter is not a decimal number (digits, no leading zero, at most 18446744073709551615)"};
    }
    return c;
}

std::string format_pkcs11_counter(std::string_view key_hash, uint64_t value) {
    return fmt::format("{}\n{}{}\n{}{}\n", pkcs11_magic, pkcs11_key_tag, key_hash, pkcs11_value_tag, value);
}

} // namespace ptpsec::hsm
