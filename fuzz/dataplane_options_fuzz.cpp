// libFuzzer target for ptpsec-dataplane's --config file (dataplane/app/
// options.h): CLI11's TOML reader under our options and their checks.
// Nothing escapes but a result: a refusal names the file. What is read,
// printed as --print-config prints it, reads back to the same printout; and
// if the checks took the file, they take the printout with the same answer.
//
// Seeds in fuzz/corpus/dataplane_options: the shipped example
// (config/dataplane.toml), the printout of the defaults and the files the
// tests read; fuzz/dataplane_options.dict holds the keys.

#include <dataplane/app/options.h>
#include <fuzz/invariant.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using ptpsec::fuzz::require;

bool same(const ptpsec::checked_options& a, const ptpsec::checked_options& b) {
    return a.inside == b.inside && a.outside == b.outside && a.spp == b.spp && a.key_id == b.key_id &&
           a.initial_key == b.initial_key && a.steering == b.steering && a.event_types == b.event_types;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { // NOLINT(readability-identifier-naming)
    using namespace ptpsec;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    constexpr std::string_view origin = "fuzz.toml";
    const auto parsed = parse_options_text(text, origin);
    if (!parsed.ok()) {
        require(parsed.message().starts_with(origin), "a refusal names the file");
        return 0;
    }
    const auto again = parse_options_text(parsed->printed, origin);
    require(again.ok(), "the printout of what was read reads back");
    require(again->printed == parsed->printed, "the printout reads back to itself");
    const auto checked = check_options(parsed->options);
    const auto checked_again = check_options(again->options);
    require(checked.ok() == checked_again.ok(), "the checks answer the printout as they answered the file");
    if (checked.ok()) {
        require(same(*checked_again, *checked), "the printout checks to the same options");
    }
    return 0;
}
