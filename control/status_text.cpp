#include <control/status_text.h>

#include <fmt/format.h>

#include <iterator>

namespace ptpsec {

std::string replay_line(const nlohmann::ordered_json& r) {
    if (count_of(r, "window") == 0) {
        return "off";
    }
    return fmt::format("window {}, {} of {} streams | accepted {} (late {}) replayed {} too_old {} | opened {} evicted "
                       "{} retired {}",
                       count_of(r, "window"), count_of(r, "size"), count_of(r, "capacity"), count_of(r, "accepted"),
                       count_of(r, "late"), count_of(r, "replayed"), count_of(r, "too_old"), count_of(r, "opened"),
                       count_of(r, "evicted"), count_of(r, "retired"));
}

std::string path_line(const nlohmann::ordered_json& p) {
    const std::string policy = p.value("policy", "");
    std::string line =
        fmt::format("{} [{}]: rx {} tx {} dropped {} | non-PTP {}", p.value("name", "?"), policy, count_of(p, "rx"),
                    count_of(p, "tx"), count_of(p, "dropped"), count_of(p, "non_ptp"));
    auto out = std::back_inserter(line);
    if (policy == "pass") {
        fmt::format_to(out, " PTP passed {}", count_of(p, "ptp_passed"));
    } else if (policy == "sign") {
        fmt::format_to(out, " signed {} already signed {}", count_of(p, "signed"), count_of(p, "already_signed"));
    } else if (policy == "tc") {
        fmt::format_to(out, " verified {} corrected {} signed again {} not corrected {}", count_of(p, "verified"),
                       count_of(p, "tc_corrected"), count_of(p, "tc_resigned"), count_of(p, "tc_uncorrected"));
    } else {
        fmt::format_to(out, " verified {} stripped {}", count_of(p, "verified"), count_of(p, "stripped"));
    }
    if (count_of(p, "events") != 0 || count_of(p, "events_ring_full") != 0) {
        fmt::format_to(out, " | events {} ring full {}", count_of(p, "events"), count_of(p, "events_ring_full"));
        if (count_of(p, "events_port_stamped") != 0) {
            fmt::format_to(out, " port-stamped {}", count_of(p, "events_port_stamped"));
        }
    }
    if (count_of(p, "ticket_exceptions") != 0 || count_of(p, "reinjected") != 0) {
        fmt::format_to(out, " | tickets: handed over {} reinjected {}", count_of(p, "ticket_exceptions"),
                       count_of(p, "reinjected"));
    }
    if (count_of(p, "tickets_attached") != 0) {
        fmt::format_to(out, " | tickets attached {}", count_of(p, "tickets_attached"));
    }
    const char* sep = " | dropped: ";
    const nlohmann::ordered_json drops = p.value("drops", nlohmann::ordered_json::object());
    for (const auto& [reason, n] : drops.items()) {
        if (n.get<uint64_t>() != 0) {
            fmt::format_to(out, "{}{} {}", sep, reason, n.get<uint64_t>());
            sep = ", ";
        }
    }
    const nlohmann::ordered_json malformed = p.value("malformed", nlohmann::ordered_json::object());
    for (const auto& [cause, n] : malformed.items()) {
        if (n.get<uint64_t>() != 0) {
            fmt::format_to(out, " [{} {}]", cause, n.get<uint64_t>());
        }
    }
    return line;
}

std::string worker_line(std::string_view lcore, const nlohmann::ordered_json& w) {
    return fmt::format("worker lcore {}: rx {} tx {} handed to the PTP worker {} dropped {}", lcore, count_of(w, "rx"),
                       count_of(w, "tx"), count_of(w, "handed_off"), count_of(w, "dropped"));
}

std::string grantor_status_line(const nlohmann::ordered_json& g) {
    const nlohmann::ordered_json gc = g.value("counters", nlohmann::ordered_json::object());
    const std::string error = g.value("last_error", "");
    const std::string refusal = g.value("last_ticket_error", "");
    return fmt::format(
        "  grantor {}: registrations {} failed {} (next in {} s) | ticket keys held {} | heartbeats sent {} | TLS "
        "sessions {} (resumed {}) | requests handed over {}: tickets opened {} refused {} replays refused {} | "
        "unicast SAs installed {} failed {}{}{}{}{}{}",
        g.value("port_identity", "?"), count_of(gc, "registrations"), count_of(gc, "registration_failures"),
        count_of(g, "next_registration_in_s"), g.value("ticket_keys", nlohmann::ordered_json::array()).size(),
        count_of(gc, "heartbeats_sent"), count_of(gc, "sessions"), count_of(gc, "sessions_resumed"),
        count_of(gc, "requests_handed_over"), count_of(gc, "tickets_opened"), count_of(gc, "tickets_refused"),
        count_of(gc, "replays_refused"), count_of(gc, "unicast_sas_installed"), count_of(gc, "requests_failed"),
        count_of(gc, "quotes") == 0 ? "" : fmt::format(" | platform quotes {}", count_of(gc, "quotes")),
        error.empty() ? "" : " | last error: ", error, refusal.empty() ? "" : " | last refusal: ", refusal);
}

} // namespace ptpsec
