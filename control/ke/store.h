#pragma once

// The KE server's state on disk: SQLite (one file, mode 0600, WAL journal,
// synchronous=FULL, secure_delete on so that forgotten keys are overwritten).
// A key is written, and the write made durable, before any client receives
// it: a server that restarts hands out the same keys for the same epochs, so
// the network keeps working across the restart.
//
// Tables: meta (last_key_id, last_ticket_key_id), groups (name -> SPP; the
// unicast SPP as "@unicast"), epochs (key ID, group, algorithm, key,
// wall-clock start, lifetime, update and grace periods), grantors
// (PortIdentity, owner, PTP Time Server record body, AEAD and MAC lists) and
// ticket_keys (ticket key ID, grantor, AEAD, key, wall-clock start, periods).
// The keys are stored as they are: protect the file (and its -wal) like a
// private key.

#include <control/ke/grantors.h>
#include <control/ke/group_keys.h>

#include <functional>
#include <memory>
#include <string>

struct sqlite3;

namespace ptpsec::ke {

class sqlite_store final : public state_store, public grantor_store {
public:
    /// Opens or creates the database at `path` (its directory must exist).
    static result<std::shared_ptr<sqlite_store>> open(const std::string& path);
    ~sqlite_store() override;
    sqlite_store(const sqlite_store&) = delete;
    sqlite_store& operator=(const sqlite_store&) = delete;

    result<state_store::saved> load() override;
    status save_epoch(const std::string& group, uint8_t spp, const epoch& e, uint32_t last_key_id) override;
    status forget_retired(int64_t wall_ns) override;
    status save_key_id_ceiling(uint32_t ceiling) override;
    status save_spp(const std::string& name, uint8_t spp) override;
    status save_lifetime(uint32_t key_id, uint32_t lifetime_s) override;

    result<grantor_store::saved> load_grantors() override;
    status save_grantor(const grantor_record& g, uint32_t last_ticket_key_id) override;
    status remove_grantor(const nts::port_identity& id) override;

private:
    explicit sqlite_store(sqlite3* db, std::string path) : _db(db), _path(std::move(path)) {}
    status exec(const char* sql);
    /// BEGIN IMMEDIATE, `body`, COMMIT; ROLLBACK and SQLite's message when
    /// `body` returns false.
    status in_transaction(const std::function<bool()>& body);
    /// Checkpoints the WAL into the database file and empties it, after a
    /// DELETE of keys (secure_delete zeroes them in the database only).
    status drop_old_pages();
    /// meta `name` = max(its value, `value`): counters never go down.
    bool raise_meta(const char* name, int64_t value);

    sqlite3* _db;
    std::string _path;
};

} // namespace ptpsec::ke
