// The SQLite connection the SQLite store runs on: prepared statements cached
// by slot, transactions, and the fault-injection hook of tk_inject_store_fault.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/sqlite/sqlite_store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace tasker::core {

class sqlite_connection;

/// A prepared statement, owned and cached by its connection.
class sqlite_statement {
public:
  sqlite_statement(sqlite_connection& owner, sqlite3* db, const std::string& sql);
  ~sqlite_statement();
  sqlite_statement(const sqlite_statement&) = delete;
  sqlite_statement& operator=(const sqlite_statement&) = delete;

  void bind(int index, std::int64_t value);  ///< 1-based
  void bind(int index, std::string_view value);
  void bind_null(int index);
  /// Runs or advances the statement: true while a row is available.
  bool step();
  std::int64_t get_int(int column) const;  ///< 0-based
  std::string_view get_text(int column) const;
  bool is_null(int column) const;
  /// Rows changed by the last step of an INSERT/UPDATE/DELETE.
  std::int64_t changes() const;
  /// Makes the statement ready to bind and run again.
  void reset();

  /// Binds a nullable integer (-1 meaning NULL, as rows store absent times).
  void bind_time(int index, std::int64_t value) {
    if (value < 0)
      bind_null(index);
    else
      bind(index, value);
  }
  /// Binds a nullable text (empty meaning NULL).
  void bind_opt(int index, std::string_view value) {
    if (value.empty())
      bind_null(index);
    else
      bind(index, value);
  }
  std::int64_t get_time(int column) const { return is_null(column) ? -1 : get_int(column); }

private:
  sqlite_connection& owner_;
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;

  void check(int rc);
};

/// One database in WAL mode, opened with the store's options.
class sqlite_connection {
public:
  explicit sqlite_connection(const sqlite_options& o);
  ~sqlite_connection();
  sqlite_connection(const sqlite_connection&) = delete;
  sqlite_connection& operator=(const sqlite_connection&) = delete;

  /// The statement prepared for `slot`, or null. Callers reset it before use.
  sqlite_statement* cached(std::size_t slot) {
    return slot < statements_.size() ? statements_[slot].get() : nullptr;
  }
  /// Prepares `sql` and keeps it in `slot` (slots are the caller's numbering).
  sqlite_statement& prepare(std::size_t slot, const std::string& sql);
  void exec(const std::string& sql);
  /// Starts a write transaction (BEGIN IMMEDIATE).
  void begin() { exec("BEGIN IMMEDIATE"); }
  /// Starts a read-only transaction (BEGIN, which takes no write lock).
  void begin_read() { exec("BEGIN"); }
  void commit() { exec("COMMIT"); }
  void rollback() noexcept;

  /// Testing hook: the n-th next statement or exec (0 = the very next) fails
  /// with TK_STORE_ERROR as a real database error would; -1 disables.
  void fail_after(std::int64_t n) { fail_countdown_ = n; }
  /// Counts a statement against fail_after; called before running anything.
  void count_statement();

private:
  sqlite3* db_ = nullptr;
  std::vector<std::unique_ptr<sqlite_statement>> statements_;  // by slot
  std::int64_t fail_countdown_ = -1;
};

/// Commits explicitly, rolls back if left by an exception.
class sqlite_transaction {
public:
  enum kind { write, read };
  explicit sqlite_transaction(sqlite_connection& c, kind k = write) : c_(c) {
    if (k == write)
      c_.begin();
    else
      c_.begin_read();
  }
  sqlite_transaction(const sqlite_transaction&) = delete;
  sqlite_transaction& operator=(const sqlite_transaction&) = delete;
  ~sqlite_transaction() {
    if (!done_)
      c_.rollback();
  }
  void commit() {
    c_.commit();
    done_ = true;
  }

private:
  sqlite_connection& c_;
  bool done_ = false;
};

}  // namespace tasker::core
