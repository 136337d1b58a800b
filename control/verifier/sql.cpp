#include <control/verifier/sql.h>

#include <drivers/base/hex.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pqxx/pqxx>
#include <sqlite3.h>
#include <sys/stat.h>

#include <charconv>
#include <limits>
#include <memory>
#include <unordered_map>

namespace ptpsec::verifier::sql {

result<value> unsigned_value(uint64_t v, std::string_view what) {
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return error{fmt::format("{} {} does not fit a signed 64-bit SQL integer", what, v)};
    }
    return value{static_cast<int64_t>(v)};
}

namespace {

/// Refuses values that do not make whole rows.
status check_rows(const std::string& store, const std::string& table, std::span<const named_column> columns,
                  std::span<const value> values) {
    if (columns.empty() || values.size() % columns.size() != 0) {
        return error{fmt::format("{}: {} values do not make rows of {} columns of {}", store, values.size(),
                                 columns.size(), table)};
    }
    return ok_status();
}

/// "table(name, ...)".
std::string table_and_columns(const std::string& table, std::span<const named_column> columns) {
    std::string text = table + "(";
    for (size_t c = 0; c < columns.size(); ++c) {
        text += (c == 0 ? "" : ", ") + columns[c].name;
    }
    return text + ")";
}

// ---------------------------------------------------------------------------
// SQLite

/// A prepared statement, finalised on scope exit (as in control/ke/store.cpp),
/// with the place of each of its parameters $1..$n, looked up once.
class statement {
public:
    statement(sqlite3* db, const std::string& text) {
        _rc = sqlite3_prepare_v2(db, text.c_str(), static_cast<int>(text.size()), &_s, nullptr);
        if (ok()) {
            const int n = sqlite3_bind_parameter_count(_s);
            for (int k = 1; k <= n; ++k) {
                const std::string name = fmt::format("${}", k);
                _at.push_back(sqlite3_bind_parameter_index(_s, name.c_str()));
            }
        }
    }
    ~statement() { sqlite3_finalize(_s); }
    statement(const statement&) = delete;
    statement& operator=(const statement&) = delete;
    statement(statement&&) = delete;
    statement& operator=(statement&&) = delete;
    bool ok() const noexcept { return _rc == SQLITE_OK && _s != nullptr; }
    sqlite3_stmt* get() const noexcept { return _s; }
    /// Where $k (1-based) is bound; 0 when the statement has no $k.
    int place_of(size_t k) const noexcept { return k >= 1 && k <= _at.size() ? _at[k - 1] : 0; }

private:
    sqlite3_stmt* _s = nullptr;
    int _rc = SQLITE_ERROR;
    std::vector<int> _at;
};

class sqlite_connection final : public connection {
public:
    sqlite_connection(sqlite3* db, std::string path) : _db(db), _name(fmt::format("sqlite {}", path)) {}
    ~sqlite_connection() override {
        _prepared.clear(); // finalised before the database closes
        sqlite3_close(_db);
    }
    sqlite_connection(const sqlite_connection&) = delete;
    sqlite_connection& operator=(const sqlite_connection&) = delete;
    sqlite_connection(sqlite_connection&&) = delete;
    sqlite_connection& operator=(sqlite_connection&&) = delete;

    result<std::vector<row>> query(const std::string& text, std::span<const value> params,
                                   std::span<const column> columns) override {
        // Statements are prepared once and kept: the audit store runs the
        // same few for every event of every batch.
        auto found = _prepared.find(text);
        if (found == _prepared.end()) {
            auto made = std::make_unique<statement>(_db, text);
            if (!made->ok()) {
                return failed();
            }
            found = _prepared.emplace(text, std::move(made)).first;
        }
        statement& st = *found->second;
        struct reset_on_exit {
            sqlite3_stmt* s;
            ~reset_on_exit() {
                sqlite3_reset(s);
                sqlite3_clear_bindings(s);
            }
        } const reset{st.get()};
        for (size_t i = 0; i < params.size(); ++i) {
            const int at = st.place_of(i + 1);
            if (at == 0) {
                return error{fmt::format("{}: the statement has no parameter ${}", _name, i + 1)};
            }
            // SQLITE_STATIC: `params` outlives every step below, and the
            // bindings are cleared before this returns.
            int rc = SQLITE_OK;
            const value& v = params[i];
            if (const auto* n = std::get_if<int64_t>(&v)) {
                rc = sqlite3_bind_int64(st.get(), at, *n);
            } else if (const auto* s = std::get_if<std::string>(&v)) {
                rc = sqlite3_bind_text(st.get(), at, s->data(), static_cast<int>(s->size()), SQLITE_STATIC);
            } else if (const auto* b = std::get_if<std::vector<uint8_t>>(&v)) {
                // A zero-length blob is bound as one, not as NULL.
                rc = sqlite3_bind_blob64(st.get(), at, b->empty() ? "" : static_cast<const void*>(b->data()), b->size(),
                                         SQLITE_STATIC);
            } else {
                rc = sqlite3_bind_null(st.get(), at);
            }
            if (rc != SQLITE_OK) {
                return failed();
            }
        }
        std::vector<row> rows;
        for (;;) {
            const int rc = sqlite3_step(st.get());
            if (rc == SQLITE_DONE) {
                break;
            }
            if (rc != SQLITE_ROW) {
                return failed();
            }
            row r;
            r.reserve(columns.size());
            for (size_t c = 0; c < columns.size(); ++c) {
                const int at = static_cast<int>(c);
                if (sqlite3_column_type(st.get(), at) == SQLITE_NULL) {
                    r.emplace_back(std::monostate{});
                    continue;
                }
                switch (columns[c]) {
                case column::integer:
                    r.emplace_back(static_cast<int64_t>(sqlite3_column_int64(st.get(), at)));
                    break;
                case column::text: {
                    const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), at));
                    r.emplace_back(
                        std::string(t != nullptr ? t : "", static_cast<size_t>(sqlite3_column_bytes(st.get(), at))));
                    break;
                }
                case column::blob: {
                    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(st.get(), at));
                    const auto n = static_cast<size_t>(sqlite3_column_bytes(st.get(), at));
                    r.emplace_back(p != nullptr ? std::vector<uint8_t>(p, p + n) : std::vector<uint8_t>());
                    break;
                }
                }
            }
            rows.push_back(std::move(r));
        }
        return rows;
    }

    status script(const std::string& statements) override {
        char* msg = nullptr;
        if (sqlite3_exec(_db, statements.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
            std::string why = msg != nullptr ? msg : sqlite3_errmsg(_db);
            sqlite3_free(msg);
            return error{fmt::format("{}: {}", _name, why)};
        }
        return ok_status();
    }

    // IMMEDIATE: take the write lock at once, so that two writers (an online
    // verifier and a CLI) wait for each other (busy timeout) instead of
    // failing half-way.
    status begin() override { return script("BEGIN IMMEDIATE;"); }
    status commit() override { return script("COMMIT;"); }
    void rollback() noexcept override { (void)sqlite3_exec(_db, "ROLLBACK;", nullptr, nullptr, nullptr); }

    const std::string& name() const noexcept override { return _name; }
    std::string_view integer_type() const noexcept override { return "INTEGER"; }
    std::string_view blob_type() const noexcept override { return "BLOB"; }
    std::string_view clustered_table() const noexcept override { return " WITHOUT ROWID"; }

private:
    std::unordered_map<std::string, std::unique_ptr<statement>> _prepared;
    error failed() const { return error{fmt::format("{}: {}", _name, sqlite3_errmsg(_db))}; }

    sqlite3* _db;
    std::string _name;
};

// ---------------------------------------------------------------------------
// PostgreSQL (libpqxx 6.4)

std::string hex_of(std::span<const uint8_t> b) {
    std::string s;
    s.reserve(2 + 2 * b.size());
    s += "\\x"; // bytea hex input format (PostgreSQL manual §8.4.1)
    s += to_hex(b);
    return s;
}

result<std::vector<uint8_t>> bytea_of(std::string_view text) {
    if (!text.starts_with("\\x") || text.size() % 2 != 0) {
        return error{"a bytea value is not in hex output format"};
    }
    std::vector<uint8_t> out;
    out.reserve((text.size() - 2) / 2);
    for (size_t i = 2; i < text.size(); i += 2) {
        uint8_t b = 0;
        const auto [p, ec] = std::from_chars(text.data() + i, text.data() + i + 2, b, 16);
        if (ec != std::errc{} || p != text.data() + i + 2) {
            return error{"a bytea value is not in hex output format"};
        }
        out.push_back(b);
    }
    return out;
}

/// A value as PostgreSQL's text input reads it, kept in `storage`; null
/// for NULL.
const char* text_of(const value& v, std::string& storage) {
    if (const auto* n = std::get_if<int64_t>(&v)) {
        storage = fmt::format("{}", *n);
    } else if (const auto* s = std::get_if<std::string>(&v)) {
        storage = *s;
    } else if (const auto* b = std::get_if<std::vector<uint8_t>>(&v)) {
        storage = hex_of(*b);
    } else {
        return nullptr;
    }
    return storage.c_str();
}

/// A value as an element of a PostgreSQL array literal (PostgreSQL manual
/// §8.15.6): NULL bare, anything else its text input (text_of) quoted, with
/// backslash and double quote escaped.
void append_array_element(std::string& a, const value& v) {
    std::string storage;
    const char* text = text_of(v, storage);
    if (text == nullptr) {
        a += "NULL";
        return;
    }
    a += '"';
    for (const char ch : storage) {
        if (ch == '"' || ch == '\\') {
            a += '\\';
        }
        a += ch;
    }
    a += '"';
}

class postgresql_connection final : public connection {
public:
    explicit postgresql_connection(std::unique_ptr<pqxx::connection> c) : _conn(std::move(c)), _name("postgresql") {}
    ~postgresql_connection() override {
        rollback();
        try {
            _conn.reset();
        } catch (...) {
            // Closing a connection that already broke.
        }
    }
    postgresql_connection(const postgresql_connection&) = delete;
    postgresql_connection& operator=(const postgresql_connection&) = delete;
    postgresql_connection(postgresql_connection&&) = delete;
    postgresql_connection& operator=(postgresql_connection&&) = delete;

    result<std::vector<row>> query(const std::string& text, std::span<const value> params,
                                   std::span<const column> columns) override {
        // Every parameter goes as text (NULL as a null pointer); PostgreSQL
        // infers each one's type from the statement.
        std::vector<std::string> storage(params.size());
        std::vector<const char*> pointers(params.size());
        for (size_t i = 0; i < params.size(); ++i) {
            pointers[i] = text_of(params[i], storage[i]);
        }
        try {
            pqxx::result r;
            if (_tx) {
                r = _tx->exec_params(text, pqxx::prepare::make_dynamic_params(pointers));
            } else {
                pqxx::nontransaction n(*_conn);
                r = n.exec_params(text, pqxx::prepare::make_dynamic_params(pointers));
                n.commit();
            }
            std::vector<row> rows;
            rows.reserve(r.size());
            for (const auto& pr : r) {
                row out;
                out.reserve(columns.size());
                for (size_t c = 0; c < columns.size(); ++c) {
                    const pqxx::field f = pr[static_cast<pqxx::row::size_type>(c)];
                    if (f.is_null()) {
                        out.emplace_back(std::monostate{});
                        continue;
                    }
                    const std::string_view t(f.c_str(), f.size());
                    switch (columns[c]) {
                    case column::integer: {
                        int64_t n = 0;
                        const auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
                        if (ec != std::errc{} || p != t.data() + t.size()) {
                            return error{fmt::format("{}: column {} is not an integer: {}", _name, c, t)};
                        }
                        out.emplace_back(n);
                        break;
                    }
                    case column::text:
                        out.emplace_back(std::string(t));
                        break;
                    case column::blob: {
                        auto b = bytea_of(t);
                        if (!b) {
                            return error{fmt::format("{}: column {}: {}", _name, c, b.message())};
                        }
                        out.emplace_back(std::move(*b));
                        break;
                    }
                    }
                }
                rows.push_back(std::move(out));
            }
            return rows;
        } catch (const std::exception& e) {
            return error{fmt::format("{}: {}", _name, trimmed(e.what()))};
        }
    }

    status insert_rows(const std::string& table, std::span<const named_column> columns,
                       std::span<const value> values) override {
        if (auto bad = check_rows(_name, table, columns, values); !bad) {
            return bad;
        }
        if (values.empty()) {
            return ok_status();
        }
        // One statement for every row, each column one array parameter:
        // INSERT ... SELECT * FROM unnest($1::bigint[], $2::text[], ...).
        // A statement per row would wait for the server each time, and a
        // VALUES list of thousands of rows costs the server more to parse
        // and plan than the rows cost to insert.
        std::string text = fmt::format("INSERT INTO {} SELECT * FROM unnest(", table_and_columns(table, columns));
        std::vector<value> arrays;
        arrays.reserve(columns.size());
        for (size_t c = 0; c < columns.size(); ++c) {
            const char* type = columns[c].kind == column::integer ? "bigint"
                               : columns[c].kind == column::text  ? "text"
                                                                  : "bytea";
            text += fmt::format("{}${}::{}[]", c == 0 ? "" : ", ", c + 1, type);
            std::string a = "{";
            for (size_t at = c; at < values.size(); at += columns.size()) {
                if (at != c) {
                    a += ',';
                }
                append_array_element(a, values[at]);
            }
            a += '}';
            arrays.emplace_back(std::move(a));
        }
        text += ");";
        if (auto r = query(text, arrays, {}); !r) {
            return r.err();
        }
        return ok_status();
    }

    status script(const std::string& statements) override {
        try {
            if (_tx) {
                _tx->exec(statements);
            } else {
                pqxx::nontransaction n(*_conn);
                n.exec(statements);
                n.commit();
            }
            return ok_status();
        } catch (const std::exception& e) {
            return error{fmt::format("{}: {}", _name, trimmed(e.what()))};
        }
    }

    status begin() override {
        try {
            _tx = std::make_unique<pqxx::work>(*_conn);
            return ok_status();
        } catch (const std::exception& e) {
            return error{fmt::format("{}: {}", _name, trimmed(e.what()))};
        }
    }
    status commit() override {
        if (!_tx) {
            return error{fmt::format("{}: commit without a transaction", _name)};
        }
        try {
            _tx->commit();
            _tx.reset();
            return ok_status();
        } catch (const std::exception& e) {
            _tx.reset();
            return error{fmt::format("{}: {}", _name, trimmed(e.what()))};
        }
    }
    void rollback() noexcept override {
        try {
            if (_tx) {
                _tx->abort();
            }
        } catch (...) {
            // The transaction is gone with the connection.
        }
        _tx.reset();
    }

    const std::string& name() const noexcept override { return _name; }
    std::string_view integer_type() const noexcept override { return "BIGINT"; }
    std::string_view blob_type() const noexcept override { return "BYTEA"; }
    std::string_view clustered_table() const noexcept override { return ""; }

private:
    static std::string trimmed(std::string s) {
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
            s.pop_back();
        }
        return s;
    }

    std::unique_ptr<pqxx::connection> _conn;
    std::unique_ptr<pqxx::work> _tx;
    std::string _name;
};

} // namespace

status connection::insert_rows(const std::string& table, std::span<const named_column> columns,
                               std::span<const value> values) {
    if (auto bad = check_rows(name(), table, columns, values); !bad) {
        return bad;
    }
    std::string text = fmt::format("INSERT INTO {} VALUES(", table_and_columns(table, columns));
    for (size_t k = 1; k <= columns.size(); ++k) {
        text += fmt::format("{}${}", k == 1 ? "" : ", ", k);
    }
    text += ");";
    for (size_t at = 0; at < values.size(); at += columns.size()) {
        if (auto r = query(text, values.subspan(at, columns.size())); !r) {
            return r.err();
        }
    }
    return ok_status();
}

result<std::unique_ptr<connection>> open_sqlite(const std::string& path, bool private_file) {
    sqlite3* db = nullptr;
    const mode_t old = private_file ? ::umask(077) : ::umask(022);
    const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    ::umask(old);
    if (rc != SQLITE_OK) {
        std::string why = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
        sqlite3_close(db);
        return error{fmt::format("sqlite {}: {}", path, why)};
    }
    auto c = std::make_unique<sqlite_connection>(db, path);
    if (private_file) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) {
            return error{fmt::format("sqlite {}: cannot stat it", path)};
        }
        if ((st.st_mode & 077) != 0) {
            return error{fmt::format("sqlite {}: mode {:04o} lets others read or change it; chmod 600 it", path,
                                     st.st_mode & 07777)};
        }
    }
    sqlite3_busy_timeout(db, 10'000);
    // WAL: readers (queries from the CLI) do not block the online verifier's
    // writes. A rollback journal and WAL files get the database's mode.
    // A 64 MiB page cache (the default is 2 MiB): the pages of the audit
    // store's B-trees that consecutive batches write stay in memory instead
    // of being read back for every batch.
    for (const char* pragma : {"PRAGMA journal_mode=WAL;", "PRAGMA synchronous=FULL;", "PRAGMA foreign_keys=ON;",
                               "PRAGMA cache_size=-65536;"}) {
        if (auto s = c->script(pragma); !s) {
            return s.err();
        }
    }
    return std::unique_ptr<connection>(std::move(c));
}

result<std::unique_ptr<connection>> open_postgresql(const std::string& conninfo) {
    try {
        auto c = std::make_unique<pqxx::connection>(conninfo);
        auto pc = std::make_unique<postgresql_connection>(std::move(c));
        // "relation already exists, skipping" notices would go to stderr.
        if (auto s = pc->script("SET client_min_messages = warning; SET bytea_output = 'hex';"); !s) {
            return s.err();
        }
        return std::unique_ptr<connection>(std::move(pc));
    } catch (const std::exception& e) {
        std::string why = e.what();
        while (!why.empty() && why.back() == '\n') {
            why.pop_back();
        }
        return error{fmt::format("postgresql: cannot connect: {}", why)};
    }
}

} // namespace ptpsec::verifier::sql
