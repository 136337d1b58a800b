#include <control/status_text.h>

#include <fmt/format.h>

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
