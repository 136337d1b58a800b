#include <control/verifier/pcr_profile.h>

#include <drivers/base/file.h>
#include <drivers/base/hex.h>

#include <fmt/format.h>

#include <charconv>

namespace ptpsec::verifier {

namespace {

bool is_separator(char c) {
    return c == ' ' || c == '\t' || c == ':' || c == '=' || c == '\r';
}

/// The next field of `line` from `at`: a run of octets that are not
/// separators. Empty when none is left.
std::string_view next_field(std::string_view line, size_t& at) {
    while (at < line.size() && is_separator(line[at])) {
        ++at;
    }
    const size_t start = at;
    while (at < line.size() && !is_separator(line[at])) {
        ++at;
    }
    return line.substr(start, at - start);
}

} // namespace

result<hsm::pcr_values> parse_pcr_profile(std::string_view text, std::string_view origin) {
    hsm::pcr_values out;
    size_t line_start = 0;
    for (int number = 1; line_start < text.size(); ++number) {
        size_t line_end = text.find('\n', line_start);
        if (line_end == std::string_view::npos) {
            line_end = text.size();
        }
        std::string_view line = text.substr(line_start, line_end - line_start);
        line_start = line_end + 1;
        if (const size_t hash = line.find('#'); hash != std::string_view::npos) {
            line = line.substr(0, hash);
        }
        size_t at = 0;
        const std::string_view index_text = next_field(line, at);
        const std::string_view value_text = next_field(line, at);
        if (index_text.empty() || value_text.empty()) {
            continue; // blank, a comment, or a bank name ("sha256:")
        }
        const auto bad_line = [&](std::string_view what) {
            return error{fmt::format("{} line {}: {}; each line is \"INDEX SHA256-HEX\" with an index 0-{} and 32 "
                                     "octets",
                                     origin, number, what, hsm::pcr_count - 1)};
        };
        if (!next_field(line, at).empty()) {
            return bad_line("more than an index and a value");
        }
        unsigned index = 0;
        const auto [end, ec] = std::from_chars(index_text.data(), index_text.data() + index_text.size(), index);
        if (ec != std::errc{} || end != index_text.data() + index_text.size()) {
            return bad_line(fmt::format("the index '{}' is not a number", index_text));
        }
        if (index >= hsm::pcr_count) {
            return bad_line(fmt::format("PCR {} is out of range", index));
        }
        auto value = from_hex(value_text);
        if (!value) {
            return bad_line(fmt::format("the value of PCR {} is not hex", index));
        }
        if (value->size() != 32) {
            return bad_line(fmt::format("the value of PCR {} has {} octets, not 32 (SHA-256)", index, value->size()));
        }
        if (!out.emplace(index, std::move(*value)).second) {
            return error{fmt::format("{} line {}: PCR {} is given twice", origin, number, index)};
        }
    }
    if (out.empty()) {
        return error{fmt::format("{} names no PCR", origin)};
    }
    return out;
}

result<hsm::pcr_values> read_pcr_profile(const std::string& path) {
    PTPSEC_TRY(text, read_text_file("expected PCR file", path));
    return parse_pcr_profile(*text, fmt::format("expected PCR file {}", path));
}

} // namespace ptpsec::verifier
