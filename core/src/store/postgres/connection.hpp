// libpq, thinly: results, text-format parameters (arrays as PostgreSQL
// array literals), one pipelined connection and its transactions.
#pragma once

#include <atomic>
#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <libpq-fe.h>

#include "abi/error.hpp"

namespace tasker::core {

/// A serialization failure or deadlock: PostgreSQL rolled the transaction
/// back, and running it again is the documented remedy.
class pg_conflict : public core_error {
public:
  using core_error::core_error;
};

class pg_result {
public:
  explicit pg_result(PGresult* r) : r_(r) {}
  pg_result(pg_result&& o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  pg_result& operator=(pg_result&& o) noexcept {
    if (this != &o) {
      PQclear(r_);
      r_ = std::exchange(o.r_, nullptr);
    }
    return *this;
  }
  pg_result(const pg_result&) = delete;
  ~pg_result() { PQclear(r_); }

  int rows() const { return PQntuples(r_); }
  bool null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::string_view text(int row, int col) const {
    return {PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col))};
  }
  std::int64_t integer(int row, int col) const {
    auto t = text(row, col);
    std::int64_t v = 0;
    if (t == "t")
      return 1;
    if (t == "f")
      return 0;
    if (std::from_chars(t.data(), t.data() + t.size(), v).ec != std::errc{})
      fail(TK_STORE_ERROR, "postgresql: \"" + std::string(t) + "\" is not an integer");
    return v;
  }
  std::int64_t time(int row, int col) const { return null(row, col) ? -1 : integer(row, col); }

private:
  PGresult* r_;
};

/// Text-format parameters of one statement; arrays are PostgreSQL array
/// literals built by the helpers below.
class pg_params {
public:
  pg_params& add(std::int64_t v) {
    values_.push_back(std::to_string(v));
    nulls_.push_back(false);
    return *this;
  }
  pg_params& add(std::string_view v) {
    values_.emplace_back(v);
    nulls_.push_back(false);
    return *this;
  }
  pg_params& add_null() {
    values_.emplace_back();
    nulls_.push_back(true);
    return *this;
  }
  pg_params& add_time(std::int64_t v) { return v < 0 ? add_null() : add(v); }
  pg_params& add_opt(std::string_view v) { return v.empty() ? add_null() : add(v); }

  int size() const { return static_cast<int>(values_.size()); }
  const char* const* pointers() {
    ptrs_.clear();
    for (std::size_t i = 0; i < values_.size(); ++i)
      ptrs_.push_back(nulls_[i] ? nullptr : values_[i].c_str());
    return ptrs_.data();
  }

private:
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
  std::vector<const char*> ptrs_;
};

/// `{1,2,3}`
template <class Ints>
std::string int_array(const Ints& values) {
  std::string out = "{";
  for (auto v : values) {
    if (out.size() > 1)
      out += ',';
    out += std::to_string(v);
  }
  out += '}';
  return out;
}

/// Appends one element of a text array literal: quoted, or NULL when
/// `null` (an empty optional column).
inline void append_array_text(std::string& out, std::string_view v, bool null) {
  if (out.size() > 1)
    out += ',';
  if (null) {
    out += "NULL";
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  out += '"';
}

inline void append_array_int(std::string& out, std::int64_t v, bool null) {
  if (out.size() > 1)
    out += ',';
  out += null ? std::string("NULL") : std::to_string(v);
}

/// `{"a","b"}`
inline std::string text_array(const std::vector<std::string>& values) {
  std::string out = "{";
  for (const auto& v : values)
    append_array_text(out, v, false);
  out += '}';
  return out;
}

/// Server notices (and a dying server's last words) are not ours to print:
/// errors reach the caller as tk_error messages.
void ignore_notice(void*, const char*);

/// One connection, used in pipeline mode: statements are queued and sent
/// together, so a call costs a few network round trips rather than one per
/// statement. A transaction's BEGIN goes out with its first batch and its
/// COMMIT with its last.
class pg_connection {
public:
  static constexpr std::size_t unnamed = static_cast<std::size_t>(-1);

  pg_connection(std::string conninfo, std::string schema)
    : conninfo_(std::move(conninfo)), schema_(std::move(schema)) {
    connect();
  }
  ~pg_connection() { PQfinish(c_); }
  pg_connection(const pg_connection&) = delete;
  pg_connection& operator=(const pg_connection&) = delete;

  /// The server process of this connection (its notifications carry it).
  const std::atomic<int>& backend_pid() const { return backend_pid_; }

  /// Queues the statement of `slot` (prepared on first use per connection);
  /// returns the index of its result after send().
  std::size_t queue(std::size_t slot, const std::string& sql, pg_params p) {
    queued_.push_back({slot, &sql, std::move(p)});
    return queued_.size() - 1;
  }

  /// Queues two statements that take the same parameters; returns the
  /// indexes of their results.
  std::pair<std::size_t, std::size_t> queue_two(std::size_t slot1, const std::string& sql1,
                                                std::size_t slot2, const std::string& sql2,
                                                const pg_params& p) {
    const auto first = queue(slot1, sql1, p);
    return {first, queue(slot2, sql2, p)};
  }

  /// Sends what is queued in one round trip; results by queue() index.
  /// Throws on the first error (the transaction is then aborted).
  std::vector<pg_result> send();

  /// queue() + send() for one statement.
  pg_result run(std::size_t slot, const std::string& sql, pg_params p) {
    auto i = queue(slot, sql, std::move(p));
    return std::move(send()[i]);
  }

  /// A plain statement outside the pipeline (schema set-up).
  pg_result exec(const std::string& sql) {
    if (begin_pending_)
      send();  // sends the BEGIN
    count_statement();
    ensure_connected();
    return check(PQexec(c_, sql.c_str()), sql);
  }

  /// Starts a transaction: its BEGIN goes out with the first batch, after a
  /// reconnect if the connection was lost (nothing has run yet).
  void begin(bool read_only = false, bool async_commit = false) {
    in_tx_ = true;
    begin_pending_ = true;
    read_only_ = read_only;
    async_commit_ = async_commit;
    batches_ = 0;
  }
  /// Queues COMMIT and sends the last batch; returns its results.
  std::vector<pg_result> commit() {
    static const std::string sql = "COMMIT";
    queue(unnamed, sql, {});
    commits_queued_ = true;
    auto out = send();
    in_tx_ = false;
    return out;
  }
  void rollback() noexcept;

  void fail_after(std::int64_t n) { fail_countdown_ = n; }

private:
  struct queued {
    std::size_t slot;
    const std::string* sql;
    pg_params params;
  };

  std::string conninfo_;
  std::string schema_;
  PGconn* c_ = nullptr;
  std::vector<bool> prepared_;  // by slot, per server connection
  std::atomic<int> backend_pid_{0};
  std::int64_t fail_countdown_ = -1;
  std::vector<queued> queued_;
  bool in_tx_ = false, begin_pending_ = false, read_only_ = false, commits_queued_ = false;
  bool async_commit_ = false;
  bool forget_prepared_ = false;  // an error hit a batch that prepared statements
  int batches_ = 0;               // sent in the current transaction

  void count_statement() {
    if (fail_countdown_ >= 0 && fail_countdown_-- == 0)
      fail(TK_STORE_ERROR, "injected store fault (testing hook)");
  }

  void ensure_connected() {
    if (!c_ || PQstatus(c_) != CONNECTION_OK)
      connect();
  }

  void connect();
  [[noreturn]] void lost(const std::string& why);
  pg_result check(PGresult* r, const std::string& sql);
};

/// Commits explicitly, rolls back if left by an exception.
class pg_transaction {
public:
  explicit pg_transaction(pg_connection& c, bool read_only = false, bool async_commit = false)
    : c_(c) {
    c_.begin(read_only, async_commit);
  }
  pg_transaction(const pg_transaction&) = delete;
  pg_transaction& operator=(const pg_transaction&) = delete;
  ~pg_transaction() {
    if (!done_)
      c_.rollback();
  }
  /// Sends what is queued with the COMMIT; returns the results of that batch.
  std::vector<pg_result> commit() {
    auto out = c_.commit();
    done_ = true;
    return out;
  }

private:
  pg_connection& c_;
  bool done_ = false;
};

/// Runs `f` again when PostgreSQL aborted it as a serialization failure or
/// deadlock, or the connection was found dead before anything of it ran
/// (nothing of it happened); `f` resets its outputs first.
template <class F>
auto retrying(F&& f) -> decltype(f()) {
  for (int attempt = 1;; ++attempt) {
    try {
      return f();
    } catch (const pg_conflict&) {
      if (attempt == 5)
        throw;
    }
  }
}

}  // namespace tasker::core
