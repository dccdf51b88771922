#include "store/sqlite/sqlite_connection.hpp"

#include <sqlite3.h>

#include "abi/error.hpp"

namespace tasker::core {

namespace {

[[noreturn]] void sqlite_fail(sqlite3* db, const std::string& what) {
  fail(TK_STORE_ERROR, "sqlite: " + what + ": " + (db ? sqlite3_errmsg(db) : "cannot allocate"));
}

}  // namespace

sqlite_statement::sqlite_statement(sqlite_connection& owner, sqlite3* db, const std::string& sql)
  : owner_(owner), db_(db) {
  if (sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                         &stmt_, nullptr)
      != SQLITE_OK)
    sqlite_fail(db, "prepare \"" + sql.substr(0, 80) + "\"");
}

sqlite_statement::~sqlite_statement() {
  sqlite3_finalize(stmt_);
}

void sqlite_statement::bind(int index, std::int64_t value) {
  check(sqlite3_bind_int64(stmt_, index, value));
}

void sqlite_statement::bind(int index, std::string_view value) {
  check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                          SQLITE_TRANSIENT));
}

void sqlite_statement::bind_null(int index) {
  check(sqlite3_bind_null(stmt_, index));
}

bool sqlite_statement::step() {
  owner_.count_statement();
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW)
    return true;
  if (rc == SQLITE_DONE)
    return false;
  sqlite_fail(db_, "step");
}

std::int64_t sqlite_statement::get_int(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::string_view sqlite_statement::get_text(int column) const {
  auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
  if (!p)
    return {};
  return {p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
}

bool sqlite_statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::int64_t sqlite_statement::changes() const {
  return sqlite3_changes64(db_);
}

void sqlite_statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void sqlite_statement::check(int rc) {
  if (rc != SQLITE_OK)
    sqlite_fail(db_, "bind");
}

sqlite_connection::sqlite_connection(const sqlite_options& o) {
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

sqlite_connection::~sqlite_connection() {
  statements_.clear();
  sqlite3_close(db_);
}

sqlite_statement& sqlite_connection::prepare(std::size_t slot, const std::string& sql) {
  if (slot >= statements_.size())
    statements_.resize(slot + 1);
  statements_[slot] = std::make_unique<sqlite_statement>(*this, db_, sql);
  return *statements_[slot];
}

void sqlite_connection::exec(const std::string& sql) {
  count_statement();
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string text = msg ? msg : "unknown error";
    sqlite3_free(msg);
    fail(TK_STORE_ERROR, "sqlite: " + sql.substr(0, 60) + ": " + text);
  }
}

void sqlite_connection::rollback() noexcept {
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void sqlite_connection::count_statement() {
  if (fail_countdown_ >= 0 && fail_countdown_-- == 0)
    fail(TK_STORE_ERROR, "injected store fault (testing hook)");
}

}  // namespace tasker::core
