#include <control/ke/store.h>

#include <drivers/base/bytes.h>

#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <functional>

namespace ptpsec::ke {

namespace {

constexpr const char* schema = R"(
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS groups(name TEXT PRIMARY KEY, spp INTEGER NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS epochs(
  key_id INTEGER PRIMARY KEY,
  group_name TEXT NOT NULL,
  algorithm INTEGER NOT NULL,
  key BLOB NOT NULL,
  start_wall_ns INTEGER NOT NULL,
  lifetime_s INTEGER NOT NULL,
  update_period_s INTEGER NOT NULL,
  grace_period_s INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS grantors(
  port_identity BLOB PRIMARY KEY,
  owner TEXT NOT NULL,
  time_server BLOB NOT NULL,
  aead BLOB NOT NULL,
  macs BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ticket_keys(
  ticket_key_id INTEGER PRIMARY KEY,
  port_identity BLOB NOT NULL,
  aead INTEGER NOT NULL,
  key BLOB NOT NULL,
  start_wall_ns INTEGER NOT NULL,
  lifetime_s INTEGER NOT NULL,
  update_period_s INTEGER NOT NULL,
  grace_period_s INTEGER NOT NULL);
)";

/// A record's body as the codec writes it (its four-octet header dropped):
/// grantors are stored in the wire form their registration used.
template <typename Append>
std::vector<uint8_t> body_of(Append&& append) {
    std::vector<uint8_t> out;
    nts::record_writer w(out);
    append(w);
    out.erase(out.begin(), out.begin() + 4);
    return out;
}

std::span<const uint8_t> blob(sqlite3_stmt* s, int column) {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s, column));
    return {p, static_cast<size_t>(sqlite3_column_bytes(s, column))};
}

/// A prepared statement, finalised on scope exit.
class statement {
public:
    statement(sqlite3* db, const char* sql) { _rc = sqlite3_prepare_v2(db, sql, -1, &_s, nullptr); }
    ~statement() { sqlite3_finalize(_s); }
    statement(const statement&) = delete;
    statement& operator=(const statement&) = delete;
    bool ok() const noexcept { return _rc == SQLITE_OK; }
    sqlite3_stmt* get() const noexcept { return _s; }

private:
    sqlite3_stmt* _s = nullptr;
    int _rc = SQLITE_ERROR;
};

} // namespace

result<std::shared_ptr<sqlite_store>> sqlite_store::open(const std::string& path) {
    sqlite3* db = nullptr;
    // Created 0600: the file holds keys.
    const mode_t old = ::umask(077);
    const int rc =
        sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
    ::umask(old);
    if (rc != SQLITE_OK) {
        std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
        sqlite3_close(db);
        return error{fmt::format("state file {}: {}", path, why)};
    }
    // An existing file keeps 0600 too (SQLite gives its -wal and -shm files
    // the database file's mode).
    if (struct stat st{}; ::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
        if (::chmod(path.c_str(), st.st_mode & 0700) != 0) {
            const int e = errno;
            sqlite3_close(db);
            return error{fmt::format("state file {}: it is readable by others and chmod 0600 failed: {}", path,
                                     std::strerror(e))};
        }
    }
    std::shared_ptr<sqlite_store> s(new sqlite_store(db, path));
    for (const char* sql :
         {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;", "PRAGMA secure_delete=ON;", schema}) {
        if (auto st = s->exec(sql); !st) {
            return st.err();
        }
    }
    return s;
}

sqlite_store::~sqlite_store() {
    sqlite3_close(_db);
}

status sqlite_store::exec(const char* sql) {
    char* msg = nullptr;
    if (sqlite3_exec(_db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
        std::string why = msg != nullptr ? msg : sqlite3_errmsg(_db);
        sqlite3_free(msg);
        return error{fmt::format("state file {}: {}", _path, why)};
    }
    return ok_status();
}

result<state_store::saved> sqlite_store::load() {
    state_store::saved out;
    {
        statement st(_db, "SELECT value FROM meta WHERE name = 'last_key_id';");
        if (!st.ok()) {
            return error{fmt::format("state file {}: {}", _path, sqlite3_errmsg(_db))};
        }
        if (sqlite3_step(st.get()) == SQLITE_ROW) {
            out.last_key_id = static_cast<uint32_t>(sqlite3_column_int64(st.get(), 0));
        }
    }
    {
        statement st(_db, "SELECT name, spp FROM groups;");
        while (st.ok() && sqlite3_step(st.get()) == SQLITE_ROW) {
            const auto* name = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
            out.spp_of_group[name != nullptr ? name : ""] = static_cast<uint8_t>(sqlite3_column_int(st.get(), 1));
        }
    }
    statement st(_db, "SELECT group_name, key_id, algorithm, key, start_wall_ns, lifetime_s, update_period_s, "
                      "grace_period_s FROM epochs ORDER BY start_wall_ns;");
    if (!st.ok()) {
        return error{fmt::format("state file {}: {}", _path, sqlite3_errmsg(_db))};
    }
    while (sqlite3_step(st.get()) == SQLITE_ROW) {
        const auto* name = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
        epoch e;
        e.key_id = static_cast<uint32_t>(sqlite3_column_int64(st.get(), 1));
        const int alg = sqlite3_column_int(st.get(), 2);
        if (alg < 0 || static_cast<size_t>(alg) >= icv::algorithm_count) {
            return error{fmt::format("state file {}: key {} has algorithm number {}, which this release does not "
                                     "know",
                                     _path, e.key_id, alg)};
        }
        e.alg = static_cast<icv::algorithm>(alg);
        const auto* key = static_cast<const uint8_t*>(sqlite3_column_blob(st.get(), 3));
        const int len = sqlite3_column_bytes(st.get(), 3);
        e.key = key_bytes(std::vector<uint8_t>(key, key + len));
        e.start_ns = sqlite3_column_int64(st.get(), 4);
        e.lifetime_s = static_cast<uint32_t>(sqlite3_column_int64(st.get(), 5));
        e.update_period_s = static_cast<uint32_t>(sqlite3_column_int64(st.get(), 6));
        e.grace_period_s = static_cast<uint32_t>(sqlite3_column_int64(st.get(), 7));
        const std::string group = name != nullptr ? name : "";
        if (auto it = out.spp_of_group.find(group); it != out.spp_of_group.end()) {
            e.spp = it->second;
        }
        out.epochs.emplace_back(group, std::move(e));
    }
    return out;
}

status sqlite_store::in_transaction(const std::function<bool()>& body) {
    if (auto st = exec("BEGIN IMMEDIATE;"); !st) {
        return st;
    }
    if (!body()) {
        std::string why = sqlite3_errmsg(_db);
        (void)exec("ROLLBACK;");
        return error{fmt::format("state file {}: {}", _path, why)};
    }
    if (auto st = exec("COMMIT;"); !st) {
        (void)exec("ROLLBACK;");
        return st;
    }
    return ok_status();
}

bool sqlite_store::raise_meta(const char* name, int64_t value) {
    statement st(_db, "INSERT INTO meta(name, value) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET "
                      "value = MAX(value, ?2);");
    return st.ok() && sqlite3_bind_text(st.get(), 1, name, -1, SQLITE_STATIC) == SQLITE_OK &&
           sqlite3_bind_int64(st.get(), 2, value) == SQLITE_OK && sqlite3_step(st.get()) == SQLITE_DONE;
}

status sqlite_store::save_epoch(const std::string& group, uint8_t spp, const epoch& e, uint32_t last_key_id) {
    return in_transaction([&] {
        statement g(_db, "INSERT INTO groups(name, spp) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET spp = ?2;");
        if (!g.ok() || sqlite3_bind_text(g.get(), 1, group.c_str(), -1, SQLITE_TRANSIENT) != SQLITE_OK ||
            sqlite3_bind_int(g.get(), 2, spp) != SQLITE_OK || sqlite3_step(g.get()) != SQLITE_DONE) {
            return false;
        }
        statement st(_db, "INSERT INTO epochs(key_id, group_name, algorithm, key, start_wall_ns, lifetime_s, "
                          "update_period_s, grace_period_s) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8);");
        const auto key = e.key.span();
        return st.ok() && sqlite3_bind_int64(st.get(), 1, e.key_id) == SQLITE_OK &&
               sqlite3_bind_text(st.get(), 2, group.c_str(), -1, SQLITE_TRANSIENT) == SQLITE_OK &&
               sqlite3_bind_int(st.get(), 3, static_cast<int>(e.alg)) == SQLITE_OK &&
               sqlite3_bind_blob(st.get(), 4, key.data(), static_cast<int>(key.size()), SQLITE_TRANSIENT) ==
                   SQLITE_OK &&
               sqlite3_bind_int64(st.get(), 5, e.start_ns) == SQLITE_OK &&
               sqlite3_bind_int64(st.get(), 6, e.lifetime_s) == SQLITE_OK &&
               sqlite3_bind_int64(st.get(), 7, e.update_period_s) == SQLITE_OK &&
               sqlite3_bind_int64(st.get(), 8, e.grace_period_s) == SQLITE_OK &&
               sqlite3_step(st.get()) == SQLITE_DONE && raise_meta("last_key_id", last_key_id);
    });
}

status sqlite_store::save_lifetime(uint32_t key_id, uint32_t lifetime_s) {
    statement st(_db, "UPDATE epochs SET lifetime_s = ?2 WHERE key_id = ?1;");
    if (!st.ok() || sqlite3_bind_int64(st.get(), 1, key_id) != SQLITE_OK ||
        sqlite3_bind_int64(st.get(), 2, lifetime_s) != SQLITE_OK || sqlite3_step(st.get()) != SQLITE_DONE) {
        return error{fmt::format("state file {}: {}", _path, sqlite3_errmsg(_db))};
    }
    if (sqlite3_changes(_db) != 1) {
        return error{fmt::format("state file {}: key {} is not in it", _path, key_id)};
    }
    return ok_status();
}

status sqlite_store::forget_retired(int64_t wall_ns) {
    statement st(_db, "DELETE FROM epochs WHERE start_wall_ns + (lifetime_s + grace_period_s) * 1000000000 < ?1;");
    if (!st.ok() || sqlite3_bind_int64(st.get(), 1, wall_ns) != SQLITE_OK || sqlite3_step(st.get()) != SQLITE_DONE) {
        return error{fmt::format("state file {}: {}", _path, sqlite3_errmsg(_db))};
    }
    return sqlite3_changes(_db) > 0 ? drop_old_pages() : ok_status();
}

status sqlite_store::drop_old_pages() {
    // secure_delete zeroes what a DELETE frees, in the pages it writes to
    // the WAL; the WAL still holds the pages as they were before. A
    // TRUNCATE checkpoint moves the zeroed pages into the database file
    // and empties the WAL, so that retired keys are in neither.
    return exec("PRAGMA wal_checkpoint(TRUNCATE);");
}

status sqlite_store::save_key_id_ceiling(uint32_t ceiling) {
    if (!raise_meta("last_key_id", ceiling)) {
        return error{fmt::format("state file {}: {}", _path, sqlite3_errmsg(_db))};
    }
    return ok_status();
}

status sqlite_store::save_spp(const std::string& name, uint8_t spp) {
    statement st(_db, "INSERT INTO groups(name, spp) VALUES(?1, ?2) ON CONFLICT(name) DO UPDATE SET spp = ?2;");
    if (!st.ok() || sqlite3_bind_text(st.get(), 1, name.c_str(), -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int(st.get(), 2, spp) != SQLITE_OK || sqlite3_step(st.get()) != SQLITE_DONE) {
        return error{fmt::format("state file {}: {}", _path, sqlite3_errmsg(_db))};
    }
    return ok_status();
}

result<grantor_store::saved> sqlite_store::load_grantors() {
    grantor_store::saved out;
    auto broken = [&](const std::string& what) {
        return error{
            fmt::format("state file {}: {} (the file was changed by hand or by a newer release)", _path, what)};
    };
    {
        statement st(_db, "SELECT value FROM meta WHERE name = 'last_ticket_key_id';");
        if (!st.ok()) {
            return error{fmt::format("state file {}: {}", _path, sqlite3_errmsg(_db))};
        }
        if (sqlite3_step(st.get()) == SQLITE_ROW) {
            out.last_ticket_key_id = static_cast<uint32_t>(sqlite3_column_int64(st.get(), 0));
        }
    }
    std::map<port_key, size_t> index;
    {
        statement st(_db, "SELECT port_identity, owner, time_server, aead, macs FROM grantors;");
        if (!st.ok()) {
            return error{fmt::format("state file {}: {}", _path, sqlite3_errmsg(_db))};
        }
        while (sqlite3_step(st.get()) == SQLITE_ROW) {
            grantor_record g;
            auto pid = nts::decode_source_port_identity(blob(st.get(), 0));
            auto ts = nts::decode_ptp_time_server(blob(st.get(), 2));
            auto aead = nts::decode_aead_algorithms(blob(st.get(), 3));
            auto macs = nts::decode_mac_algorithms(blob(st.get(), 4));
            if (!pid || !ts || !aead || !macs) {
                return broken("a grantor row does not decode");
            }
            g.id = *pid;
            const auto* owner = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 1));
            g.owner = owner != nullptr ? owner : "";
            g.time_server = std::move(ts).value();
            g.aead_algorithms = std::move(aead).value();
            g.mac_algorithms = std::move(macs).value();
            index[key_of(g.id)] = out.grantors.size();
            out.grantors.push_back(std::move(g));
        }
    }
    statement st(_db, "SELECT ticket_key_id, port_identity, aead, key, start_wall_ns, lifetime_s, update_period_s, "
                      "grace_period_s FROM ticket_keys ORDER BY start_wall_ns;");
    if (!st.ok()) {
        return error{fmt::format("state file {}: {}", _path, sqlite3_errmsg(_db))};
    }
    while (sqlite3_step(st.get()) == SQLITE_ROW) {
        auto pid = nts::decode_source_port_identity(blob(st.get(), 1));
        if (!pid) {
            return broken("a ticket key row does not decode");
        }
        auto it = index.find(key_of(*pid));
        if (it == index.end()) {
            continue; // its grantor is gone
        }
        ticket_epoch e;
        e.ticket_key_id = static_cast<uint32_t>(sqlite3_column_int64(st.get(), 0));
        e.aead = static_cast<nts::aead_algorithm>(sqlite3_column_int(st.get(), 2));
        const auto key = blob(st.get(), 3);
        e.key = key_bytes(std::vector<uint8_t>(key.begin(), key.end()));
        e.start_ns = sqlite3_column_int64(st.get(), 4);
        e.lifetime_s = static_cast<uint32_t>(sqlite3_column_int64(st.get(), 5));
        e.update_period_s = static_cast<uint32_t>(sqlite3_column_int64(st.get(), 6));
        e.grace_period_s = static_cast<uint32_t>(sqlite3_column_int64(st.get(), 7));
        out.grantors[it->second].epochs.push_back(std::move(e));
    }
    return out;
}

status sqlite_store::save_grantor(const grantor_record& g, uint32_t last_ticket_key_id) {
    const auto pid = body_of([&](nts::record_writer& w) { nts::append_source_port_identity(w, g.id); });
    const auto ts = body_of([&](nts::record_writer& w) { nts::append_ptp_time_server(w, g.time_server); });
    const auto aead = body_of([&](nts::record_writer& w) { nts::append_aead_algorithms(w, g.aead_algorithms); });
    const auto macs = body_of([&](nts::record_writer& w) { nts::append_mac_algorithms(w, g.mac_algorithms); });
    auto bind_blob = [](sqlite3_stmt* s, int i, std::span<const uint8_t> b) {
        return sqlite3_bind_blob(s, i, b.data(), static_cast<int>(b.size()), SQLITE_TRANSIENT) == SQLITE_OK;
    };
    auto saved = in_transaction([&] {
        statement gr(_db, "INSERT INTO grantors(port_identity, owner, time_server, aead, macs) "
                          "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(port_identity) DO UPDATE SET "
                          "owner = ?2, time_server = ?3, aead = ?4, macs = ?5;");
        if (!gr.ok() || !bind_blob(gr.get(), 1, pid) ||
            sqlite3_bind_text(gr.get(), 2, g.owner.c_str(), -1, SQLITE_TRANSIENT) != SQLITE_OK ||
            !bind_blob(gr.get(), 3, ts) || !bind_blob(gr.get(), 4, aead) || !bind_blob(gr.get(), 5, macs) ||
            sqlite3_step(gr.get()) != SQLITE_DONE) {
            return false;
        }
        statement del(_db, "DELETE FROM ticket_keys WHERE port_identity = ?1;");
        if (!del.ok() || !bind_blob(del.get(), 1, pid) || sqlite3_step(del.get()) != SQLITE_DONE) {
            return false;
        }
        for (const auto& e : g.epochs) {
            statement st(_db, "INSERT INTO ticket_keys(ticket_key_id, port_identity, aead, key, start_wall_ns, "
                              "lifetime_s, update_period_s, grace_period_s) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8);");
            if (!st.ok() || sqlite3_bind_int64(st.get(), 1, e.ticket_key_id) != SQLITE_OK ||
                !bind_blob(st.get(), 2, pid) || sqlite3_bind_int(st.get(), 3, static_cast<int>(e.aead)) != SQLITE_OK ||
                !bind_blob(st.get(), 4, e.key.span()) || sqlite3_bind_int64(st.get(), 5, e.start_ns) != SQLITE_OK ||
                sqlite3_bind_int64(st.get(), 6, e.lifetime_s) != SQLITE_OK ||
                sqlite3_bind_int64(st.get(), 7, e.update_period_s) != SQLITE_OK ||
                sqlite3_bind_int64(st.get(), 8, e.grace_period_s) != SQLITE_OK ||
                sqlite3_step(st.get()) != SQLITE_DONE) {
                return false;
            }
        }
        return raise_meta("last_ticket_key_id", last_ticket_key_id);
    });
    return saved ? drop_old_pages() : saved;
}

status sqlite_store::remove_grantor(const nts::port_identity& id) {
    const auto pid = body_of([&](nts::record_writer& w) { nts::append_source_port_identity(w, id); });
    for (const char* sql :
         {"DELETE FROM ticket_keys WHERE port_identity = ?1;", "DELETE FROM grantors WHERE port_identity = ?1;"}) {
        statement st(_db, sql);
        if (!st.ok() ||
            sqlite3_bind_blob(st.get(), 1, pid.data(), static_cast<int>(pid.size()), SQLITE_TRANSIENT) != SQLITE_OK ||
            sqlite3_step(st.get()) != SQLITE_DONE) {
            return error{fmt::format("state file {}: {}", _path, sqlite3_errmsg(_db))};
        }
    }
    return drop_old_pages();
}

} // namespace ptpsec::ke
