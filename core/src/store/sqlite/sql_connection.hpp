// A minimal SQL driver interface, enough for sql_store. Statements use `?`
// placeholders; a driver whose database numbers them ($1…) rewrites them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "abi/error.hpp"

namespace tasker::core {

/// A prepared statement, owned and cached by its connection.
class sql_statement {
public:
  virtual ~sql_statement() = default;
  virtual void bind(int index, std::int64_t value) = 0;  ///< 1-based
  virtual void bind(int index, std::string_view value) = 0;
  virtual void bind_null(int index) = 0;
  /// Runs or advances the statement: true while a row is available.
  virtual bool step() = 0;
  virtual std::int64_t get_int(int column) const = 0;  ///< 0-based
  virtual std::string_view get_text(int column) const = 0;
  virtual bool is_null(int column) const = 0;
  /// Rows changed by the last step of an INSERT/UPDATE/DELETE.
  virtual std::int64_t changes() const = 0;
  /// Makes the statement ready to bind and run again.
  virtual void reset() = 0;

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
};

/// Which SQL spelling a database wants where standard SQL leaves it open.
struct sql_dialect {
  const char* id_column;  ///< auto-increment primary key column definition
};

class sql_connection {
public:
  virtual ~sql_connection() = default;
  /// The statement prepared for `slot`, or null. Callers reset it before use.
  virtual sql_statement* cached(std::size_t slot) = 0;
  /// Prepares `sql` and keeps it in `slot` (slots are the caller's numbering).
  virtual sql_statement& prepare(std::size_t slot, const std::string& sql) = 0;
  virtual void exec(const std::string& sql) = 0;
  /// Starts a write transaction (SQLite: BEGIN IMMEDIATE).
  virtual void begin() = 0;
  /// Starts a read-only transaction (SQLite: BEGIN, which takes no write lock).
  virtual void begin_read() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;
  virtual const sql_dialect& dialect() const = 0;

  /// Testing hook: the n-th next statement or exec (0 = the very next) fails
  /// with TK_STORE_ERROR as a real database error would; -1 disables.
  void fail_after(std::int64_t n) { fail_countdown_ = n; }

protected:
  /// Drivers call this before running anything.
  void count_statement() {
    if (fail_countdown_ >= 0 && fail_countdown_-- == 0)
      fail(TK_STORE_ERROR, "injected store fault (testing hook)");
  }

private:
  std::int64_t fail_countdown_ = -1;
};

/// Commits explicitly, rolls back if left by an exception.
class sql_transaction {
public:
  enum kind { write, read };
  explicit sql_transaction(sql_connection& c, kind k = write) : c_(c) {
    if (k == write)
      c_.begin();
    else
      c_.begin_read();
  }
  sql_transaction(const sql_transaction&) = delete;
  sql_transaction& operator=(const sql_transaction&) = delete;
  ~sql_transaction() {
    if (!done_)
      c_.rollback();
  }
  void commit() {
    c_.commit();
    done_ = true;
  }

private:
  sql_connection& c_;
  bool done_ = false;
};

}  // namespace tasker::core
