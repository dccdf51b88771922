#include "store/sqlite/sqlite_connection.hpp"

#include <vector>

#include <sqlite3.h>

#include "abi/error.hpp"

namespace tasker::core {

namespace {

[[noreturn]] void sqlite_fail(sqlite3* db, const std::string& what) {
  fail(TK_STORE_ERROR, "sqlite: " + what + ": " + (db ? sqlite3_errmsg(db) : "cannot allocate"));
}

class sqlite_connection;

class sqlite_statement final : public sql_statement {
public:
  sqlite_statement(sqlite_connection& owner, sqlite3* db, const std::string& sql)
    : owner_(owner), db_(db) {
    if (sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                           &stmt_, nullptr)
        != SQLITE_OK)
      sqlite_fail(db, "prepare \"" + sql.substr(0, 80) + "\"");
  }
  ~sqlite_statement() override { sqlite3_finalize(stmt_); }
  sqlite_statement(const sqlite_statement&) = delete;
  sqlite_statement& operator=(const sqlite_statement&) = delete;

  void bind(int index, std::int64_t value) override {
    check(sqlite3_bind_int64(stmt_, index, value));
  }
  void bind(int index, std::string_view value) override {
    check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                            SQLITE_TRANSIENT));
  }
  void bind_null(int index) override { check(sqlite3_bind_null(stmt_, index)); }
  bool step() override;
  bool step_now() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW)
      return true;
    if (rc == SQLITE_DONE)
      return false;
    sqlite_fail(db_, "step");
  }
  std::int64_t get_int(int column) const override { return sqlite3_column_int64(stmt_, column); }
  std::string_view get_text(int column) const override {
    auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    if (!p)
      return {};
    return {p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
  }
  bool is_null(int column) const override {
    return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
  }
  std::int64_t changes() const override { return sqlite3_changes64(db_); }
  void reset() override {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

private:
  sqlite_connection& owner_;
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;

  void check(int rc) {
    if (rc != SQLITE_OK)
      sqlite_fail(db_, "bind");
  }
};

class sqlite_connection final : public sql_connection {
public:
  explicit sqlite_connection(const sqlite_options& o) {
    int rc =
        sqlite3_open_v2(o.path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      std::string msg = "cannot open \"" + o.path + "\"";
      auto copy = db_ ? std::string(sqlite3_errmsg(db_)) : std::string("out of memory");
      sqlite3_close(db_);
      db_ = nullptr;
      fail(TK_STORE_ERROR, "sqlite: " + msg + ": " + copy);
    }
    sqlite3_busy_timeout(db_, o.busy_timeout_ms);
    try {
      exec("PRAGMA journal_mode=WAL");
      exec("PRAGMA synchronous=" + o.synchronous);
      exec("PRAGMA foreign_keys=ON");
      exec("PRAGMA temp_store=MEMORY");
      exec("PRAGMA cache_size=-65536");  // 64 MiB of page cache
    } catch (...) {
      sqlite3_close(db_);
      throw;
    }
  }
  ~sqlite_connection() override {
    statements_.clear();
    sqlite3_close(db_);
  }
  sqlite_connection(const sqlite_connection&) = delete;
  sqlite_connection& operator=(const sqlite_connection&) = delete;

  sql_statement* cached(std::size_t slot) override {
    return slot < statements_.size() ? statements_[slot].get() : nullptr;
  }

  sql_statement& prepare(std::size_t slot, const std::string& sql) override {
    if (slot >= statements_.size())
      statements_.resize(slot + 1);
    statements_[slot] = std::make_unique<sqlite_statement>(*this, db_, sql);
    return *statements_[slot];
  }

  void exec(const std::string& sql) override {
    count_statement();
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string text = msg ? msg : "unknown error";
      sqlite3_free(msg);
      fail(TK_STORE_ERROR, "sqlite: " + sql.substr(0, 60) + ": " + text);
    }
  }

  void begin() override { exec("BEGIN IMMEDIATE"); }
  void begin_read() override { exec("BEGIN"); }
  void commit() override { exec("COMMIT"); }
  void rollback() noexcept override { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }

  const sql_dialect& dialect() const override {
    static const sql_dialect d{"id INTEGER PRIMARY KEY"};
    return d;
  }

  using sql_connection::count_statement;

private:
  sqlite3* db_ = nullptr;
  std::vector<std::unique_ptr<sqlite_statement>> statements_;  // by slot
};

bool sqlite_statement::step() {
  owner_.count_statement();
  return step_now();
}

}  // namespace

std::unique_ptr<sql_connection> open_sqlite(const sqlite_options& options) {
  return std::make_unique<sqlite_connection>(options);
}

}  // namespace tasker::core
