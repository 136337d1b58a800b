#pragma once

// The SQL the Registrar and the audit store speak, over SQLite (the
// embedded default) or PostgreSQL through libpqxx (when several hosts
// report to one Verifier, BRIEF "Attestation"). One statement text serves
// both: parameters are written $1..$n (PostgreSQL's form; SQLite takes
// "$1" as a named parameter and they are bound by that name), values are
// 64-bit integers, text, byte strings or NULL, and the schema differs only
// in the type names integer_type() and blob_type() supply and in how a table
// is kept in its key's order (clustered_table()).
//
// libpqxx reports errors by throwing: every call into it is wrapped here,
// and errors leave this interface as result<>/status naming the store.
//
// Control-side code: allocates, returns result<>, never throws.

#include <drivers/base/result.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace ptpsec::verifier::sql {

/// NULL, an integer, text, or a byte string.
using value = std::variant<std::monostate, int64_t, std::string, std::vector<uint8_t>>;
using row = std::vector<value>;

/// What a result column holds, so that each backend converts it the same way.
enum class column : uint8_t {
    integer,
    text,
    blob,
};

/// A column of a table, for insert_rows().
struct named_column {
    std::string name;
    column kind;
};

class connection {
public:
    virtual ~connection() = default;
    connection() = default;
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    /// Runs one statement with parameters $1..$n and returns its rows, each
    /// with the columns `columns` says (a NULL is std::monostate).
    virtual result<std::vector<row>> query(const std::string& statement, std::span<const value> params,
                                           std::span<const column> columns = {}) = 0;
    /// Runs statements without parameters or results (the schema).
    virtual status script(const std::string& statements) = 0;
    /// Inserts rows into `table`: `values` holds them one after another,
    /// each with one value per entry of `columns` (name and kind), in that
    /// order. Runs in the open transaction, if any. This one runs a prepared
    /// INSERT per row (SQLite: no round trips); PostgreSQL's sends all rows
    /// in one statement, a column to an array.
    virtual status insert_rows(const std::string& table, std::span<const named_column> columns,
                               std::span<const value> values);

    virtual status begin() = 0;
    virtual status commit() = 0;
    virtual void rollback() noexcept = 0;

    /// "sqlite PATH" or "postgresql", for messages.
    virtual const std::string& name() const noexcept = 0;
    virtual std::string_view integer_type() const noexcept = 0;
    virtual std::string_view blob_type() const noexcept = 0;
    /// What follows a CREATE TABLE's column list for a table stored in its
    /// primary key's order (SQLite's WITHOUT ROWID; PostgreSQL: nothing).
    virtual std::string_view clustered_table() const noexcept = 0;
};

/// Opens (creating) an SQLite database. With `private_file`, a new file is
/// created with mode 0600 and an existing one that its group or others can
/// read or write is refused.
result<std::unique_ptr<connection>> open_sqlite(const std::string& path, bool private_file);

/// Connects to PostgreSQL: `conninfo` is a libpq connection string
/// ("host=/run/postgresql dbname=audit") or URI ("postgresql://...").
result<std::unique_ptr<connection>> open_postgresql(const std::string& conninfo);

/// Runs `body` (returning status) between begin() and commit(); rolls back
/// when it fails.
template <typename Body>
status in_transaction(connection& c, Body&& body) {
    if (auto st = c.begin(); !st) {
        return st;
    }
    if (auto st = body(); !st) {
        c.rollback();
        return st;
    }
    if (auto st = c.commit(); !st) {
        c.rollback();
        return st;
    }
    return ok_status();
}

inline int64_t as_integer(const value& v) {
    const auto* i = std::get_if<int64_t>(&v);
    return i != nullptr ? *i : 0;
}
inline std::string as_text(const value& v) {
    const auto* s = std::get_if<std::string>(&v);
    return s != nullptr ? *s : std::string();
}
inline std::vector<uint8_t> as_blob(const value& v) {
    const auto* b = std::get_if<std::vector<uint8_t>>(&v);
    return b != nullptr ? *b : std::vector<uint8_t>();
}
inline bool is_null(const value& v) {
    return std::holds_alternative<std::monostate>(v);
}

/// A value for an unsigned quantity (counter, timestamp, index): SQL
/// integers are signed 64-bit, so values above 2^63 - 1 are refused rather
/// than stored wrapped (they would sort wrongly).
result<value> unsigned_value(uint64_t v, std::string_view what);

} // namespace ptpsec::verifier::sql
