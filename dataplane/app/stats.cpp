#include <dataplane/app/stats.h>

#include <control/status_text.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>

namespace ptpsec {

namespace {

uint64_t load(const uint64_t& v) noexcept {
    return __atomic_load_n(&v, __ATOMIC_RELAXED);
}

} // namespace

path_counters snapshot(const path_counters& c) noexcept {
    path_counters s;
    for (const auto& f : path_counter_fields) {
        s.*f.member = load(c.*f.member);
    }
    for (size_t i = 0; i < s.sign.size(); ++i) {
        s.sign[i] = load(c.sign[i]);
    }
    for (size_t i = 0; i < s.verify.size(); ++i) {
        s.verify[i] = load(c.verify[i]);
    }
    for (size_t i = 0; i < s.malformed.size(); ++i) {
        s.malformed[i] = load(c.malformed[i]);
    }
    return s;
}

std::vector<path_counters> sum_counters(std::span<const worker_counters> workers, size_t npaths) {
    std::vector<path_counters> sum(npaths);
    for (const auto& w : workers) {
        for (size_t i = 0; i < npaths && i < w.paths.size(); ++i) {
            const path_counters c = snapshot(w.paths[i]);
            path_counters& s = sum[i];
            for (const auto& f : path_counter_fields) {
                s.*f.member += c.*f.member;
            }
            for (size_t k = 0; k < s.sign.size(); ++k) {
                s.sign[k] += c.sign[k];
            }
            for (size_t k = 0; k < s.verify.size(); ++k) {
                s.verify[k] += c.verify[k];
            }
            for (size_t k = 0; k < s.malformed.size(); ++k) {
                s.malformed[k] += c.malformed[k];
            }
        }
    }
    return sum;
}

uint64_t total_rx(std::span<const worker_counters> workers) noexcept {
    uint64_t rx = 0;
    for (const auto& w : workers) {
        for (const auto& c : w.paths) {
            rx += load(c.rx);
        }
    }
    return rx;
}

uint64_t total_events_ring_full(std::span<const worker_counters> workers) noexcept {
    uint64_t n = 0;
    for (const auto& w : workers) {
        for (const auto& c : w.paths) {
            n += load(c.events_ring_full);
        }
    }
    return n;
}

namespace {

/// Every name drop_reasons() can report, in its order: it reports the
/// non-zero counters, so ask it about counters that are all non-zero.
std::array<std::string_view, max_drop_reasons> all_drop_reason_names(size_t& n) noexcept {
    path_counters ones;
    ones.tx_full = ones.not_editable = ones.handoff_full = ones.non_ptp_dropped = 1;
    ones.exception_full = ones.exception_too_long = ones.reinject_nombuf = ones.reinject_invalid = 1;
    ones.sign.fill(1);
    ones.verify.fill(1);
    std::array<drop_reason, max_drop_reasons> reasons{};
    n = drop_reasons(ones, reasons);
    std::array<std::string_view, max_drop_reasons> names{};
    for (size_t i = 0; i < n; ++i) {
        names[i] = reasons[i].name;
    }
    return names;
}

} // namespace

nlohmann::ordered_json path_json(const path_config& p, const path_counters& c, bool every_reason) {
    nlohmann::ordered_json j = {
        {"name", p.name},         {"policy", ptp_policy_name(p.policy)}, {"rx_port", p.rx_port}, {"tx_port", p.tx_port},
        {"dropped", c.dropped()},
    };
    for (const auto& f : path_counter_fields) {
        if (f.exported) {
            j[std::string(f.name)] = c.*f.member;
        }
    }
    nlohmann::ordered_json drops = nlohmann::ordered_json::object();
    if (every_reason) {
        size_t count = 0;
        const auto names = all_drop_reason_names(count);
        for (size_t i = 0; i < count; ++i) {
            drops[std::string(names[i])] = uint64_t{0};
        }
    }
    std::array<drop_reason, max_drop_reasons> reasons{};
    const size_t n = drop_reasons(c, reasons);
    for (size_t r = 0; r < n; ++r) {
        drops[std::string(reasons[r].name)] = reasons[r].count;
    }
    j["drops"] = std::move(drops);
    nlohmann::ordered_json malformed = nlohmann::ordered_json::object();
    for (size_t e = 0; e < c.malformed.size(); ++e) {
        const auto cause = static_cast<ptp::error>(e);
        // Neither is a reason to refuse a frame: never counted.
        if (cause != ptp::error::none && cause != ptp::error::not_ptp && (every_reason || c.malformed[e] != 0)) {
            malformed[std::string(ptp::error_name(cause))] = c.malformed[e];
        }
    }
    j["malformed"] = std::move(malformed);
    return j;
}

nlohmann::ordered_json worker_json(const worker_counters& w) {
    uint64_t rx = 0;
    uint64_t tx = 0;
    uint64_t handed_off = 0;
    uint64_t dropped = 0;
    for (const auto& live : w.paths) {
        const path_counters c = snapshot(live);
        rx += c.rx;
        tx += c.tx;
        handed_off += c.handed_off;
        dropped += c.dropped();
    }
    return {{"rx", rx}, {"tx", tx}, {"handed_off", handed_off}, {"dropped", dropped}};
}

void print_stats(std::FILE* out, std::span<const path_config> paths, std::span<const worker_counters> workers,
                 std::string_view label) {
    fmt::print(out, "counters ({}):\n", label);
    const std::vector<path_counters> sums = sum_counters(workers, paths.size());
    for (size_t i = 0; i < paths.size(); ++i) {
        fmt::print(out, "  {}\n", path_line(path_json(paths[i], sums[i], false)));
    }
    if (workers.size() > 1) {
        for (const auto& w : workers) {
            fmt::print(out, "  {}\n", worker_line(std::to_string(w.lcore), worker_json(w)));
        }
    }
    std::fflush(out);
}

void latency_histogram::add(uint64_t ns) noexcept {
    const uint64_t us = (ns + 999) / 1000;
    ++_buckets[us < limit_us ? us : limit_us];
    ++_count;
    _sum_ns += ns;
    _max_ns = std::max(_max_ns, ns);
}

uint64_t latency_histogram::quantile_us(double q) const noexcept {
    if (_count == 0) {
        return 0;
    }
    const auto want = static_cast<uint64_t>(std::ceil(q * static_cast<double>(_count)));
    uint64_t seen = 0;
    for (size_t us = 0; us < _buckets.size(); ++us) {
        seen += _buckets[us];
        if (seen >= want && seen != 0) {
            return us < limit_us ? us : (_max_ns + 999) / 1000;
        }
    }
    return (_max_ns + 999) / 1000;
}

void print_service_stats(std::FILE* out, const service_stats& s, std::string_view label) {
    fmt::print(out, "  SA updates ({}): applied {}", label, s.applied);
    if (s.applied_by_worker != 0 || s.applied_by_main_for_worker != 0) {
        fmt::print(out, " ({} by the PTP worker, {} by the main lcore for it)", s.applied_by_worker,
                   s.applied_by_main_for_worker);
    }
    fmt::print(out, " rejected {} acks dropped {} | keys expired {} | SA version {}", s.rejected, s.acks_dropped,
               s.keys_expired, s.generation);
    if (s.retire_ring_full != 0) {
        fmt::print(out, " | retired keys not passed to the PTP worker {}", s.retire_ring_full);
    }
    const latency_histogram& h = s.apply_latency;
    if (h.count() != 0) {
        fmt::print(out, " | apply latency p50 {} p99 {} max {} us", h.quantile_us(0.5), h.quantile_us(0.99),
                   (h.max_ns() + 999) / 1000);
    }
    fmt::print(out, "\n");
    if (!s.last_rejected.empty()) {
        fmt::print(out, "    last rejected: {}\n", s.last_rejected);
    }
    std::fflush(out);
}

replay_snapshot snapshot_replay(const replay_table* table) noexcept {
    replay_snapshot r;
    if (table == nullptr) {
        return r;
    }
    const replay_counters& rc = table->counters();
    // Windows in use, from counters only (size() is the worker's plain
    // variable): every window is opened once and leaves by eviction or
    // retirement. Those two are read first, so that the difference cannot go
    // below zero however the worker moves on meanwhile.
    r.evicted = load(rc.evicted);
    r.retired = load(rc.retired);
    r.opened = load(rc.opened);
    r.late = load(rc.late);
    for (size_t v = 0; v < replay_verdict_count; ++v) {
        r.verdicts[v] = load(rc.verdicts[v]);
    }
    r.window = table->window();
    r.capacity = table->capacity();
    r.size = r.opened >= r.evicted + r.retired ? r.opened - r.evicted - r.retired : 0;
    return r;
}

nlohmann::ordered_json replay_json(const replay_snapshot& r) {
    nlohmann::ordered_json j = {{"window", r.window}, {"capacity", r.capacity}, {"size", r.size}};
    for (size_t v = 0; v < replay_verdict_count; ++v) {
        j[std::string(replay_verdict_name(static_cast<replay_verdict>(v)))] = r.verdicts[v];
    }
    j["late"] = r.late;
    j["opened"] = r.opened;
    j["evicted"] = r.evicted;
    j["retired"] = r.retired;
    return j;
}

void print_replay_stats(std::FILE* out, const replay_snapshot& r, std::string_view label) {
    fmt::print(out, "  replay ({}): {}\n", label, replay_line(replay_json(r)));
    std::fflush(out);
}

std::string stats_json(std::span<const path_config> paths, std::span<const worker_counters> workers,
                       const replay_snapshot& replay, const service_stats* svc) {
    nlohmann::ordered_json j;
    j["paths"] = nlohmann::ordered_json::array();
    const std::vector<path_counters> sums = sum_counters(workers, paths.size());
    for (size_t i = 0; i < paths.size(); ++i) {
        j["paths"].push_back(path_json(paths[i], sums[i], false));
    }
    j["workers"] = nlohmann::ordered_json::array();
    for (const auto& w : workers) {
        nlohmann::ordered_json jw = {{"lcore", w.lcore}};
        jw.update(worker_json(w));
        j["workers"].push_back(std::move(jw));
    }
    j["replay"] = replay_json(replay);
    if (svc != nullptr) {
        const latency_histogram& h = svc->apply_latency;
        j["sa_updates"] = {{"applied", svc->applied},
                           {"applied_by_worker", svc->applied_by_worker},
                           {"applied_by_main_for_worker", svc->applied_by_main_for_worker},
                           {"rejected", svc->rejected},
                           {"acks_dropped", svc->acks_dropped},
                           {"keys_expired", svc->keys_expired},
                           {"retire_ring_full", svc->retire_ring_full},
                           {"last_rejected", svc->last_rejected},
                           {"generation", svc->generation},
                           {"apply_latency_us",
                            {{"samples", h.count()},
                             {"p50", h.quantile_us(0.5)},
                             {"p99", h.quantile_us(0.99)},
                             {"max", (h.max_ns() + 999) / 1000},
                             {"mean", static_cast<double>(h.mean_ns()) / 1000.0}}}};
    }
    return j.dump();
}

} // namespace ptpsec
