#include <drivers/clock/source.h>

#include <drivers/clock/ethdev_clock.h>
#include <drivers/clock/phc_clock.h>
#include <drivers/clock/system_clock.h>

#include <fmt/format.h>

#include <charconv>

namespace ptpsec::clock {

namespace {

constexpr std::string_view phc_prefix = "phc:";
constexpr std::string_view ethdev_prefix = "ethdev:";
constexpr std::string_view spec_grammar = "expected tai, phc:/dev/ptpN or ethdev:PORT";

std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

template <typename T>
result<source_ptr> widen(result<std::unique_ptr<T>> r) {
    if (!r) {
        return r.err();
    }
    return source_ptr(std::move(r).value());
}

result<source_ptr> open_ethdev(std::string_view port) {
    if (port.empty()) {
        return error{"ethdev: no port given (expected ethdev:PORT_ID or ethdev:NAME)"};
    }
    if (port.find_first_not_of("0123456789") != std::string_view::npos) {
        return widen(ethdev_clock::open(port));
    }
    uint16_t id = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), id);
    if (ec != std::errc{} || end != port.data() + port.size()) {
        return error{fmt::format("ethdev:{}: port id out of range (0-65535)", port)};
    }
    return widen(ethdev_clock::open(id));
}

} // namespace

std::string_view kind_name(source_kind k) noexcept {
    switch (k) {
    case source_kind::system_tai:
        return "tai";
    case source_kind::linux_phc:
        return "phc";
    case source_kind::ethdev:
        return "ethdev";
    }
    return "?";
}

stamp source::rx_stamp(uint32_t /*flags*/) noexcept {
    return stamp{now_ns(), false};
}

stamp source::tx_stamp() noexcept {
    return stamp{now_ns(), false};
}

result<source_ptr> open_clock(std::string_view spec) {
    spec = trim(spec);
    if (spec == "tai") {
        return widen(system_clock::open());
    }
    if (spec.starts_with(phc_prefix)) {
        return widen(phc_clock::open(spec.substr(phc_prefix.size())));
    }
    if (spec.starts_with(ethdev_prefix)) {
        return open_ethdev(spec.substr(ethdev_prefix.size()));
    }
    return error{fmt::format("clock '{}': unknown clock source ({})", spec, spec_grammar)};
}

result<opened_clock> open_first_clock(std::string_view spec_list) {
    opened_clock out;
    std::string_view rest = spec_list;
    while (true) {
        const size_t comma = rest.find(',');
        const std::string_view spec = trim(rest.substr(0, comma));
        if (spec.empty()) {
            out.skipped.emplace_back(fmt::format("clock list '{}': empty entry ({})", spec_list, spec_grammar));
        } else if (auto c = open_clock(spec); c) {
            out.clock = std::move(c).value();
            return out;
        } else {
            out.skipped.push_back(c.message());
        }
        if (comma == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(comma + 1);
    }
    return error{fmt::format("no clock of '{}' could be opened: {}", spec_list, fmt::join(out.skipped, "; "))};
}

} // namespace ptpsec::clock
