#pragma once

// Whole numbers on our command lines and in --config files are decimal, or
// hex after 0x.
//
// CLI11 reads an integer option with strtoull/strtoll in base 0: "010" is
// 8 (octal), and for a 64-bit unsigned option "-1" is 2^64 - 1 and a number
// too large for it is that maximum, each without a word. Our SA files and
// --sign read "010" as 10. check_whole_numbers puts a check on every
// integer option of an application, so that such a value is refused by name
// before it is converted; "0x2015" (a tlvType, a TPM handle) stays as
// CLI11 reads it.

#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace ptpsec {

/// Empty when `s` is a decimal number without leading zeros, or hex digits
/// after 0x, with a '-' in front only when `is_signed`, that fits in 64
/// bits; otherwise why not. Narrower types and ranges are left to the
/// option's own conversion and checks.
inline std::string whole_number_problem(std::string_view s, bool is_signed) {
    if (!is_signed && s.starts_with('-')) {
        return fmt::format("{} is negative: the value is 0 or more", s);
    }
    const bool negative = s.starts_with('-');
    std::string_view digits = negative ? s.substr(1) : s;
    const bool hex = digits.starts_with("0x") || digits.starts_with("0X");
    if (hex) {
        digits.remove_prefix(2);
    }
    if (digits.empty() ||
        digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") != std::string_view::npos) {
        return fmt::format("{} is not a whole number (decimal digits, or hex digits after 0x)", s);
    }
    if (!hex && digits.size() > 1 && digits.front() == '0') {
        return fmt::format("{}: write the number without leading zeros (they would read as octal)", s);
    }
    uint64_t magnitude = 0;
    const auto ec = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, hex ? 16 : 10).ec;
    const uint64_t most = !is_signed ? UINT64_MAX : negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
    if (ec != std::errc{} || magnitude > most) {
        return fmt::format("{} is out of range", s);
    }
    return {};
}

/// Adds whole_number_problem as a check to every option of `app` and of its subcommands
/// whose value is an integer (CLI11's type names INT and UINT), before the
/// checks it has: call it once the options are all added.
inline void check_whole_numbers(CLI::App& app) {
    for (CLI::Option* opt : app.get_options()) {
        const std::string type = opt->get_type_name();
        const bool is_signed = type.starts_with("INT");
        if ((!is_signed && !type.starts_with("UINT")) || opt->get_expected_max() == 0) {
            continue; // not a number, or a flag
        }
        // transform: in front of the option's own checks (a range would
        // read "010" as 8 first); it changes nothing.
        opt->transform(CLI::Validator([is_signed](const std::string& s) { return whole_number_problem(s, is_signed); },
                                      std::string()));
    }
    for (CLI::App* sub : app.get_subcommands({})) {
        check_whole_numbers(*sub);
    }
}

} // namespace ptpsec
