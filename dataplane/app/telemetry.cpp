#include <dataplane/app/telemetry.h>

#include <dataplane/app/stats.h>
#include <dataplane/sa_update.h>
#include <drivers/base/hex.h>

#include <fmt/format.h>
#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <utility>

namespace ptpsec {

namespace {

// DPDK 22.11's telemetry callbacks take no argument and cannot be
// unregistered, so the commands find their sources here: set while a
// publication lives and cleared under the lock when it goes, so that no
// callback still reads them once the destructor returns. DPDK runs a thread
// per client; the lock also makes them answer one at a time, so they can
// share one SA table reader ID. Only those threads and start-up/shut-down
// take it, never a worker.
struct published_state {
    std::mutex lock;
    const telemetry_sources* sources = nullptr;
    bool registered = false;
};

published_state& published() {
    static published_state state;
    return state;
}

/// A nested dict; its parent frees it once add_dict() handed it over.
class tel_dict {
public:
    tel_dict() : _d(rte_tel_data_alloc()) {
        if (_d == nullptr) {
            throw std::bad_alloc();
        }
        rte_tel_data_start_dict(_d.get());
    }

    rte_tel_data* get() const noexcept { return _d.get(); }
    rte_tel_data* release() noexcept { return _d.release(); }

private:
    struct tel_data_free {
        void operator()(rte_tel_data* d) const noexcept { rte_tel_data_free(d); }
    };
    std::unique_ptr<rte_tel_data, tel_data_free> _d;
};

/// Dict names may hold only letters, digits, '_' and '/': "inside->outside"
/// becomes "inside_to_outside", anything else not allowed becomes '_'.
std::string dict_name(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (s.substr(i, 2) == "->") {
            out += "_to_";
            ++i;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '/') {
            out += c;
        } else {
            out += '_';
        }
    }
    return out;
}

void add_u64(rte_tel_data* d, std::string_view name, uint64_t v) {
    rte_tel_data_add_dict_u64(d, dict_name(name).c_str(), v);
}

void add_int(rte_tel_data* d, std::string_view name, int v) {
    rte_tel_data_add_dict_int(d, dict_name(name).c_str(), v);
}

static_assert(max_attest_signer_id_len + 1 == RTE_TEL_MAX_STRING_LEN, "the signer_id must fit a telemetry string");

void add_string(rte_tel_data* d, std::string_view name, std::string_view v) {
    rte_tel_data_add_dict_string(d, dict_name(name).c_str(), std::string(v).c_str());
}

void add_dict(rte_tel_data* d, std::string_view name, tel_dict& child) {
    if (rte_tel_data_add_dict_container(d, dict_name(name).c_str(), child.get(), 0) == 0) {
        child.release();
    }
}

/// The members of a counter object (path_json(), worker_json(),
/// replay_json()): strings, unsigned counters and nested objects of the same.
void add_members(rte_tel_data* d, const nlohmann::ordered_json& j) {
    for (const auto& [name, value] : j.items()) {
        if (value.is_string()) {
            add_string(d, name, value.get<std::string>());
        } else if (value.is_number_unsigned()) {
            add_u64(d, name, value.get<uint64_t>());
        } else if (value.is_number_integer()) {
            add_int(d, name, value.get<int>());
        } else if (value.is_object()) {
            tel_dict child;
            add_members(child.get(), value);
            add_dict(d, name, child);
        }
    }
}

/// Without a table (--replay-window 0) every member is there and zero, as
/// in --stats-json; window 0 is what says "off".
void fill_replay(rte_tel_data* d, const replay_table* replay) {
    add_members(d, replay_json(snapshot_replay(replay)));
}

/// {"paths": {"inside_to_outside": {...}, ...}, "replay": {...}}
void fill_stats(const telemetry_sources& src, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    tel_dict paths;
    const std::vector<path_counters> sums = sum_counters(src.workers, src.paths.size());
    for (size_t i = 0; i < src.paths.size(); ++i) {
        tel_dict path;
        // Every reason and cause, zero or not, so that readers see a fixed set.
        add_members(path.get(), path_json(src.paths[i], sums[i], true));
        add_dict(paths.get(), src.paths[i].name, path);
    }
    add_dict(d, "paths", paths);
    // Per worker lcore, what it received and sent over all paths.
    tel_dict workers;
    for (const auto& w : src.workers) {
        tel_dict wd;
        add_members(wd.get(), worker_json(w));
        add_dict(workers.get(), fmt::format("lcore_{}", w.lcore), wd);
    }
    add_dict(d, "workers", workers);
    tel_dict replay;
    fill_replay(replay.get(), src.replay);
    add_dict(d, "replay", replay);
}

void fill_port(rte_tel_data* d, uint16_t port, std::string_view role) {
    add_int(d, "port_id", port);
    std::array<char, RTE_ETH_NAME_MAX_LEN> name{};
    if (rte_eth_dev_get_name_by_port(port, name.data()) == 0) {
        add_string(d, "name", name.data());
    }
    add_string(d, "role", role);
    rte_eth_dev_info info{};
    if (rte_eth_dev_info_get(port, &info) == 0 && info.driver_name != nullptr) {
        add_string(d, "driver", info.driver_name);
    }
    rte_eth_link link{};
    if (rte_eth_link_get_nowait(port, &link) == 0) {
        add_string(d, "link_status", link.link_status == RTE_ETH_LINK_UP ? "up" : "down");
        add_u64(d, "link_speed_mbps", link.link_speed);
    }
    rte_eth_stats st{};
    if (rte_eth_stats_get(port, &st) == 0) {
        add_u64(d, "ipackets", st.ipackets);
        add_u64(d, "opackets", st.opackets);
        add_u64(d, "ibytes", st.ibytes);
        add_u64(d, "obytes", st.obytes);
        add_u64(d, "imissed", st.imissed);
        add_u64(d, "ierrors", st.ierrors);
        add_u64(d, "oerrors", st.oerrors);
        add_u64(d, "rx_nombuf", st.rx_nombuf);
    }
}

/// {"0": {"port_id": 0, "role": "inside", ...}, "1": {...}}
void fill_ports(const telemetry_sources& src, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    const std::array<std::pair<uint16_t, std::string_view>, 2> ports = {{
        {src.inside_port, "inside"},
        {src.outside_port, "outside"},
    }};
    for (const auto& [port, role] : ports) {
        tel_dict p;
        fill_port(p.get(), port, role);
        add_dict(d, std::to_string(port), p);
    }
}

/// A nested array of u64 values; its parent frees it once add_to() handed
/// it over (as tel_dict).
class tel_u64_array {
public:
    tel_u64_array() : _d(rte_tel_data_alloc()) {
        if (_d == nullptr) {
            throw std::bad_alloc();
        }
        rte_tel_data_start_array(_d.get(), RTE_TEL_U64_VAL);
    }

    void add(uint64_t v) noexcept { rte_tel_data_add_array_u64(_d.get(), v); }

    void add_to(rte_tel_data* parent, std::string_view name) {
        if (rte_tel_data_add_dict_container(parent, dict_name(name).c_str(), _d.get(), 0) == 0) {
            (void)_d.release(); // the parent frees it from now on
        }
    }

private:
    struct tel_data_free {
        void operator()(rte_tel_data* d) const noexcept { rte_tel_data_free(d); }
    };
    std::unique_ptr<rte_tel_data, tel_data_free> _d;
};

/// {"2": {"spp": 2, ..., "retired_key_ids": [3, 4], "keys": {"1": {"key_id": 1, "algorithm": ...,
/// "icv_length": 16, "current": 1, "ticket_length": 0, "remaining_lifetime_s": 3600 or "never"}}}}; AES-GMAC
/// keys also "gmac_sender_slots", "gmac_derivations" and "gmac_scratch_derivations".
void fill_sa_version(const sa_database& db, rte_tel_data* d) {
    // The clock of key deadlines (dataplane/sa_update_wire.h).
    const uint64_t now_ns = monotonic_now_ns();
    for (unsigned spp = 0; spp < 256; ++spp) {
        const security_association* sa = db.find(static_cast<uint8_t>(spp));
        if (sa == nullptr) {
            continue;
        }
        tel_dict sad;
        add_int(sad.get(), "spp", sa->spp);
        add_int(sad.get(), "allow_mutable", sa->allow_mutable ? 1 : 0);
        add_int(sad.get(), "seqid_window", sa->seqid_window);
        tel_dict keys;
        for (const auto& key : sa->keys) {
            tel_dict k;
            add_u64(k.get(), "key_id", key->key_id);
            add_string(k.get(), "algorithm", icv::info(key->alg).name);
            add_int(k.get(), "icv_length", key->icv_len);
            // The key this data plane signs with (seeds/001 §2.5.1: current).
            add_int(k.get(), "current", sa->has_sign_key && sa->sign_key_id == key->key_id ? 1 : 0);
            // The TICKET TLV value its unicast requests carry: the length
            // only (0: none), never the octets.
            const key_ticket* ticket = sa->find_ticket(key->key_id);
            add_int(k.get(), "ticket_length", ticket != nullptr ? ticket->length : 0);
            if (key->gmac) {
                // Per-sender subkeys (docs/security.md, "Made-up senders"):
                // derivations that keep rising with a steady set of senders
                // mean made-up senders, or more senders than slots.
                add_u64(k.get(), "gmac_sender_slots", key->gmac->capacity());
                add_u64(k.get(), "gmac_derivations", key->gmac->derivations());
                add_u64(k.get(), "gmac_scratch_derivations", key->gmac->scratch_derivations());
            }
            if (key->expires_ns == 0) {
                add_string(k.get(), "remaining_lifetime_s", "never");
            } else {
                // Rounded up: 0 only once the deadline has passed and the
                // service path is about to take the key out.
                const uint64_t left = key->expires_ns > now_ns ? key->expires_ns - now_ns : 0;
                add_u64(k.get(), "remaining_lifetime_s", (left + 999'999'999) / 1'000'000'000);
            }
            add_dict(keys.get(), std::to_string(key->key_id), k);
        }
        add_dict(sad.get(), "keys", keys);
        // Frames with these key IDs are dropped as expired_key; oldest first.
        tel_u64_array retired;
        for (const uint32_t id : sa->retired_ids.ids()) {
            retired.add(id);
        }
        retired.add_to(sad.get(), "retired_key_ids");
        add_dict(d, std::to_string(spp), sad);
    }
}

/// The SA version current when the command came. The service path frees a
/// version once every reader has passed a quiescent point after it was
/// replaced, so this reader is online only while it reads: it never holds
/// up reclamation between commands.
void fill_sas(const telemetry_sources& src, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    if (src.sat == nullptr) {
        return;
    }
    struct reader_online {
        sa_table& sat;
        unsigned id;
        reader_online(sa_table& t, unsigned i) noexcept : sat(t), id(i) { sat.online(id); }
        ~reader_online() { sat.offline(id); }
        reader_online(const reader_online&) = delete;
        reader_online& operator=(const reader_online&) = delete;
        reader_online(reader_online&&) = delete;
        reader_online& operator=(reader_online&&) = delete;
    };
    const reader_online reading(*src.sat, src.sa_reader);
    const sa_database* db = src.sat->current();
    if (db != nullptr) {
        fill_sa_version(*db, d);
    }
}

void fill_attest(const telemetry_sources& src, rte_tel_data* d) {
    rte_tel_data_start_dict(d);
    if (src.attest == nullptr) {
        return;
    }
    const hsm::batcher_stats s = src.attest->stats();
    add_string(d, "backend", hsm::to_string(src.attest->signer_info().kind));
    add_string(d, "signer_id", src.attest->signer_id());
    add_u64(d, "hardware_rooted", src.attest->signer_info().hardware_rooted ? 1 : 0);
    add_u64(d, "events_submitted", s.events_submitted);
    add_u64(d, "events_signed", s.events_signed);
    add_u64(d, "events_held", s.events_held);
    add_u64(d, "batches_signed", s.batches_signed);
    add_u64(d, "missed_ring", s.missed_ring);
    add_u64(d, "missed_overflow", s.missed_overflow);
    add_u64(d, "sign_failures", s.sign_failures);
    add_u64(d, "log_failures", s.log_failures);
    add_u64(d, "largest_batch", s.largest_batch);
    add_u64(d, "leaves_built_early", s.leaves_built_early);
    add_u64(d, "last_counter", s.last_counter);
    add_u64(d, "latency_p50_us", static_cast<uint64_t>(s.latency_p50.count()));
    add_u64(d, "latency_p99_us", static_cast<uint64_t>(s.latency_p99.count()));
    add_u64(d, "latency_max_us", static_cast<uint64_t>(s.latency_max.count()));
    add_string(d, "last_error", s.last_error);
    const auto nonce = src.attest->nonce();
    add_string(d, "nonce", nonce ? to_hex(*nonce) : "");
    add_u64(d, "nonces_set", src.attest->nonces_set());
}

/// Runs `fill` on the published sources; a command answers null (DPDK's
/// reply to a negative return) when there are none.
template <typename Fill>
int answer(rte_tel_data* d, Fill fill) noexcept {
    published_state& state = published();
    const std::lock_guard guard(state.lock);
    if (state.sources == nullptr) {
        return -ENODEV;
    }
    try {
        fill(*state.sources, d);
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    } catch (...) {
        return -EINVAL;
    }
    return 0;
}

int stats_command(const char* /*cmd*/, const char* /*params*/, rte_tel_data* d) {
    return answer(d, fill_stats);
}

int ports_command(const char* /*cmd*/, const char* /*params*/, rte_tel_data* d) {
    return answer(d, fill_ports);
}

int sa_command(const char* /*cmd*/, const char* /*params*/, rte_tel_data* d) {
    return answer(d, fill_sas);
}

int attest_command(const char* /*cmd*/, const char* /*params*/, rte_tel_data* d) {
    return answer(d, fill_attest);
}

} // namespace

telemetry_publication::telemetry_publication(const telemetry_sources& src) : _src(src) {
    published_state& state = published();
    const std::lock_guard guard(state.lock);
    state.sources = &_src;
}

telemetry_publication::~telemetry_publication() {
    published_state& state = published();
    const std::lock_guard guard(state.lock);
    if (state.sources == &_src) {
        state.sources = nullptr;
    }
}

std::unique_ptr<telemetry_publication> publish_telemetry(const telemetry_sources& src) {
    auto publication = std::make_unique<telemetry_publication>(src);
    published_state& state = published();
    const std::lock_guard guard(state.lock);
    if (!state.registered) {
        state.registered = true;
        struct command {
            const char* name;
            telemetry_cb fn;
            const char* help;
        };
        const std::array<command, 4> commands = {{
            {"/ptpsec/stats", stats_command, "ptpsec-dataplane counters per path and of the replay table"},
            {"/ptpsec/ports", ports_command, "ptpsec-dataplane ports: role, driver, link, ethdev counters"},
            {"/ptpsec/sa", sa_command, "ptpsec-dataplane SAs and their keys (IDs and algorithms, no key bytes)"},
            {"/ptpsec/attest", attest_command, "ptpsec-dataplane attestation: events signed, batches, failures"},
        }};
        for (const auto& c : commands) {
            if (const int rc = rte_telemetry_register_cmd(c.name, c.fn, c.help); rc != 0) {
                fmt::print(stderr, "ptpsec-dataplane: warning: telemetry command {} not registered: {}\n", c.name,
                           std::strerror(-rc));
            }
        }
    }
    return publication;
}

} // namespace ptpsec
