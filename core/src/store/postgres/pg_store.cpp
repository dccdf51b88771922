#include "store/postgres/pg_store.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <libpq-fe.h>

#include "abi/error.hpp"
#include "model/transitions.hpp"

namespace tasker::core {

namespace {

// ---------------------------------------------------------------------------
// libpq, thinly: results, parameters, one connection.

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
void append_array_text(std::string& out, std::string_view v, bool null) {
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

void append_array_int(std::string& out, std::int64_t v, bool null) {
  if (out.size() > 1)
    out += ',';
  out += null ? std::string("NULL") : std::to_string(v);
}

/// Server notices (and a dying server's last words) are not ours to print:
/// errors reach the caller as tk_error messages.
void ignore_notice(void*, const char*) {
}

/// A schema name goes into SQL text (identifiers cannot be parameters), so
/// only plain lower-case names are accepted.
void check_schema_name(const std::string& s) {
  bool ok = !s.empty() && s.size() <= 48
            && (std::islower(static_cast<unsigned char>(s[0])) || s[0] == '_');
  for (char c : s)
    ok = ok
         && (std::islower(static_cast<unsigned char>(c))
             || std::isdigit(static_cast<unsigned char>(c)) || c == '_');
  if (!ok)
    fail(TK_INVALID_ARGUMENT, "postgresql: schema \"" + s
                                  + "\" must be 1-48 characters of a-z, 0-9 and _, "
                                    "starting with a letter or _");
}

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
  void rollback() noexcept {
    queued_.clear();
    begin_pending_ = false;
    commits_queued_ = false;
    if (!in_tx_)
      return;
    in_tx_ = false;
    if (c_ && PQstatus(c_) == CONNECTION_OK && PQtransactionStatus(c_) != PQTRANS_IDLE)
      PQclear(PQexec(c_, "ROLLBACK"));
    if (forget_prepared_ && c_ && PQstatus(c_) == CONNECTION_OK) {
      PQclear(PQexec(c_, "DEALLOCATE ALL"));
      prepared_.clear();
      forget_prepared_ = false;
    }
  }

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

  void connect() {
    PQfinish(c_);
    prepared_.clear();
    forget_prepared_ = false;
    c_ = PQconnectdb(conninfo_.c_str());
    if (PQstatus(c_) != CONNECTION_OK) {
      std::string msg = c_ ? PQerrorMessage(c_) : "out of memory";
      PQfinish(c_);
      c_ = nullptr;
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
        msg.pop_back();
      fail(TK_STORE_ERROR, "postgresql: cannot connect: " + msg);
    }
    PQsetNoticeProcessor(c_, &ignore_notice, nullptr);
    backend_pid_.store(PQbackendPID(c_), std::memory_order_relaxed);
    // Quiet NOTICEs (CREATE ... IF NOT EXISTS), and our tables first.
    PQclear(PQexec(c_, "SET client_min_messages TO warning"));
    // Every statement is prepared once and written for one plan (index
    // walks in claim or id order): planning it again on each run, as
    // PostgreSQL's default does for its first runs and whenever a custom plan
    // looks cheaper, cost more than running it (a worker's cycle went from
    // about 0.9 ms to 0.5 ms).
    PQclear(PQexec(c_, "SET plan_cache_mode TO force_generic_plan"));
    // A generic plan is made once, often while the tables are still empty,
    // when a sequential scan looks cheapest; every statement here has an
    // index to walk, and with thousands of rows a scan is ruinous (measured:
    // 100 us per updated row instead of 10). Likewise a hash or merge join:
    // on small tables, walking all of tk_tasks' or tk_steps' primary key
    // once looks cheaper than a probe per row, and the plan keeps doing so
    // as the tables grow (seen: every save of steps walked the whole key).
    // Every join here pairs a handful of rows with their rows by key.
    PQclear(PQexec(c_, "SET enable_seqscan TO off"));
    PQclear(PQexec(c_, "SET enable_hashjoin TO off"));
    PQclear(PQexec(c_, "SET enable_mergejoin TO off"));
    check(PQexec(c_, ("SET search_path TO \"" + schema_ + "\"").c_str()), "SET search_path");
  }

  [[noreturn]] void lost(const std::string& why) {
    PQfinish(c_);
    c_ = nullptr;
    prepared_.clear();
    fail(TK_STORE_ERROR, "postgresql: connection lost (" + why + "); the next call reconnects");
  }

  pg_result check(PGresult* r, const std::string& sql) {
    const auto st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
      return pg_result{r};
    std::string msg = r ? PQresultErrorMessage(r) : "";
    if (msg.empty() && c_)
      msg = PQerrorMessage(c_);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    PQclear(r);
    if (!c_ || PQstatus(c_) != CONNECTION_OK)
      lost(msg);
    fail(TK_STORE_ERROR, "postgresql: " + msg + " [" + sql.substr(0, 60) + "]");
  }
};

std::vector<pg_result> pg_connection::send() {
  std::vector<pg_result> results_;
  static const std::string begin_rw = "BEGIN";
  static const std::string begin_ro = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
  const bool with_begin = std::exchange(begin_pending_, false);
  const bool with_commit = std::exchange(commits_queued_, false);
  auto batch = std::move(queued_);
  queued_.clear();
  if (batch.empty() && !with_begin)
    return results_;
  for (std::size_t i = 0; i < batch.size() + (with_begin ? 1 : 0); ++i)
    count_statement();
  if (with_begin || !in_tx_)
    ensure_connected();  // nothing of this transaction ran yet
  else if (!c_ || PQstatus(c_) != CONNECTION_OK)
    lost("closed");
  const bool first_batch = batches_++ == 0;

  if (PQenterPipelineMode(c_) != 1)
    lost("cannot enter pipeline mode");
  std::vector<bool> is_query;  // per expected result: query (kept) or prepare (dropped)
  auto send_failed = [&] {
    std::string msg = PQerrorMessage(c_);
    PQexitPipelineMode(c_);
    lost(msg);
  };
  if (with_begin) {
    const auto& b = read_only_ ? begin_ro : begin_rw;
    if (PQsendQueryParams(c_, b.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) != 1)
      send_failed();
    is_query.push_back(false);
    if (async_commit_) {
      static const char* off = "SET LOCAL synchronous_commit = off";
      if (PQsendQueryParams(c_, off, 0, nullptr, nullptr, nullptr, nullptr, 0) != 1)
        send_failed();
      is_query.push_back(false);
    }
  }
  std::vector<std::size_t> prepared_now;
  for (auto& q : batch) {
    if (q.slot == unnamed) {
      if (PQsendQueryParams(c_, q.sql->c_str(), q.params.size(), nullptr, q.params.pointers(),
                            nullptr, nullptr, 0)
          != 1)
        send_failed();
      is_query.push_back(true);
      continue;
    }
    if (q.slot >= prepared_.size())
      prepared_.resize(q.slot + 1, false);
    const std::string name = "tk" + std::to_string(q.slot);
    if (!prepared_[q.slot]) {
      if (PQsendPrepare(c_, name.c_str(), q.sql->c_str(), q.params.size(), nullptr) != 1)
        send_failed();
      prepared_[q.slot] = true;
      prepared_now.push_back(q.slot);
      is_query.push_back(false);
    }
    if (PQsendQueryPrepared(c_, name.c_str(), q.params.size(), q.params.pointers(), nullptr,
                            nullptr, 0)
        != 1)
      send_failed();
    is_query.push_back(true);
  }
  if (PQpipelineSync(c_) != 1)
    send_failed();

  std::string error, state, failed_sql;
  bool broken = false;
  std::size_t query_index = 0, got = 0, error_at = 0;
  for (std::size_t i = 0; i < is_query.size() && !broken; ++i) {
    PGresult* r = PQgetResult(c_);
    if (!r) {
      broken = true;
      break;
    }
    ++got;
    const auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_PIPELINE_ABORTED
        && error.empty()) {
      error_at = got;
      error = PQresultErrorMessage(r);
      if (const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE))
        state = code;
      if (is_query[i] && query_index < batch.size())
        failed_sql = *batch[query_index].sql;
    }
    if (is_query[i]) {
      results_.emplace_back(r);
      ++query_index;
    } else {
      PQclear(r);
    }
    if (PGresult* end = PQgetResult(c_)) {  // each result ends with a null
      PQclear(end);
      broken = true;
    }
  }
  if (!broken) {
    PGresult* sync = PQgetResult(c_);
    broken = !sync || PQresultStatus(sync) != PGRES_PIPELINE_SYNC;
    PQclear(sync);
  }
  if (broken || PQstatus(c_) != CONNECTION_OK) {
    std::string msg = error.empty() ? std::string(PQerrorMessage(c_)) : error;
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    // The server went away between calls, so nothing of this transaction
    // ran: it runs again on a new connection. Known when no COMMIT was sent,
    // or when the first answer was the server ending the session (SQLSTATE
    // 57P01-57P03: it was shutting down before it read our statements). A
    // server that crashed mid-batch may have committed: that is reported.
    const bool ended_first = error_at == 1 && state.rfind("57P", 0) == 0;
    if (first_batch && with_begin && (!with_commit || ended_first)) {
      PQfinish(c_);
      c_ = nullptr;
      prepared_.clear();
      throw pg_conflict(TK_STORE_ERROR, "postgresql: connection lost (" + msg + ")");
    }
    lost(msg);
  }
  PQexitPipelineMode(c_);
  if (!error.empty()) {
    while (!error.empty() && (error.back() == '\n' || error.back() == ' '))
      error.pop_back();
    if (!prepared_now.empty())
      forget_prepared_ = true;  // which of them exist is unclear: the rollback clears them all
    std::string what = "postgresql: " + error + " [" + failed_sql.substr(0, 60) + "]";
    if (state == "40001" || state == "40P01")
      throw pg_conflict(TK_STORE_ERROR, what);
    fail(TK_STORE_ERROR, what);
  }
  return results_;
}

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

// ---------------------------------------------------------------------------
// LISTEN: notifications from other processes become store::watch calls.
//
// Every NOTIFY costs the server a delivery to each listening connection, and
// the listening process a wake-up, so a core listens only to what it has a
// callback for: "ready" with a wake-up callback, "done" with a task listener
// (store::interest). And a worker that is saturated (its claims come back
// full, and it claims again as each step ends) has no use for "ready": its
// store stops listening (saturated(true)) and listens again when a claim
// finds less than it asked for. Whatever was notified meanwhile is not lost:
// once listening again, the listener reports work ready, so the worker claims
// once more. Measured with three saturated workers: docs/benchmarks.md.

class pg_listener {
public:
  /// `wanted` says whether work made ready in a namespace concerns this core.
  pg_listener(std::string conninfo, std::string schema, const std::atomic<int>& own_pid,
              std::function<void(const effects&)> fn, std::function<bool(std::string_view)> wanted)
    : conninfo_(std::move(conninfo)), schema_(std::move(schema)), own_pid_(own_pid),
      fn_(std::move(fn)), wanted_(std::move(wanted)) {
    if (::pipe(stop_pipe_) != 0)
      fail(TK_STORE_ERROR, "postgresql: cannot create the listener's stop pipe");
    ::fcntl(stop_pipe_[0], F_SETFL, ::fcntl(stop_pipe_[0], F_GETFL) | O_NONBLOCK);
    thread_ = std::thread([this] { run(); });
  }
  /// Which notifications the core has callbacks for. When it asks for more
  /// than before, returns once the LISTEN is in place (or after 5 s, if
  /// the server cannot be reached), so that the caller may look at the
  /// database's state and then rely on hearing of every later change.
  void interest(bool ready, bool done) {
    const bool more = (ready && !interest_ready_.load()) || (done && !interest_done_.load());
    set(interest_ready_, ready);
    set(interest_done_, done);
    if (!more || std::this_thread::get_id() == thread_.get_id())
      return;  // (from a callback on the listening thread itself: it cannot wait for itself)
    std::unique_lock<std::mutex> g{mu_};
    const auto ticket = poked_;
    cv_.wait_for(g, std::chrono::seconds(5), [&] { return reconciled_ >= ticket; });
  }
  /// Whether the worker is saturated, so that "ready" would only wake it.
  void saturated(bool yes) { set(saturated_, yes); }
  ~pg_listener() {
    stopping_.store(true);
    char c = 1;
    [[maybe_unused]] auto n = ::write(stop_pipe_[1], &c, 1);
    thread_.join();
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
  }
  pg_listener(const pg_listener&) = delete;
  pg_listener& operator=(const pg_listener&) = delete;

private:
  std::string conninfo_, schema_;
  const std::atomic<int>& own_pid_;
  std::function<void(const effects&)> fn_;
  std::function<bool(std::string_view)> wanted_;
  int stop_pipe_[2] = {-1, -1};  // also wakes the thread when the wanted LISTENs change
  std::atomic<bool> stopping_{false};
  std::atomic<bool> interest_ready_{false}, interest_done_{false}, saturated_{false};
  std::mutex mu_;  // guards poked_ and reconciled_
  std::condition_variable cv_;
  std::uint64_t poked_ = 0;       ///< changes asked for so far
  std::uint64_t reconciled_ = 0;  ///< of those, the ones the LISTENs match
  std::thread thread_;

  // The listener thread (un)listens to match; a change pokes it.
  void set(std::atomic<bool>& flag, bool yes) {
    if (flag.exchange(yes) == yes)
      return;
    {
      std::lock_guard<std::mutex> g{mu_};
      ++poked_;
    }
    char c = 2;
    [[maybe_unused]] auto n = ::write(stop_pipe_[1], &c, 1);
  }
  bool want_ready() const { return interest_ready_.load() && !saturated_.load(); }

  // Waits up to `ms`, until stopped or poked; true when stopped.
  bool wait_stop(int fd, int ms) {
    pollfd fds[2] = {{stop_pipe_[0], POLLIN, 0}, {fd, POLLIN, 0}};
    ::poll(fds, fd >= 0 ? 2 : 1, ms);
    char buf[64];
    while (::read(stop_pipe_[0], buf, sizeof buf) > 0) {
    }
    return stopping_.load();
  }

  bool exec(PGconn* c, const std::string& sql) {
    PGresult* r = PQexec(c, sql.c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
  }

  void run() {
    int backoff_ms = 50;
    while (!stopping_.load()) {
      // No connection until the core has a callback to serve: a core that
      // only creates tasks or reads their state never listens.
      if (!want_ready() && !interest_done_.load()) {
        wait_stop(-1, -1);
        continue;
      }
      PGconn* c = PQconnectdb(conninfo_.c_str());
      bool listening = PQstatus(c) == CONNECTION_OK;
      if (listening)
        PQsetNoticeProcessor(c, &ignore_notice, nullptr);
      const std::string ready = "\"" + schema_ + ".ready\"", done = "\"" + schema_ + ".done\"";
      bool ready_on = false, done_on = false;
      // (Un)listens as wanted; false when the connection is lost.
      auto reconcile = [&] {
        std::uint64_t ticket = 0;
        {
          std::lock_guard<std::mutex> g{mu_};
          ticket = poked_;
        }
        const bool want_r = want_ready(), want_d = interest_done_.load();
        if (want_d != done_on) {
          if (!exec(c, (want_d ? "LISTEN " : "UNLISTEN ") + done))
            return false;
          done_on = want_d;
        }
        if (want_r != ready_on) {
          if (!exec(c, (want_r ? "LISTEN " : "UNLISTEN ") + ready))
            return false;
          ready_on = want_r;
          if (want_r) {  // what was notified while not listening is lost: look
            effects fx;
            fx.work_ready = true;
            fn_(fx);
          }
        }
        {
          std::lock_guard<std::mutex> g{mu_};
          reconciled_ = std::max(reconciled_, ticket);
        }
        cv_.notify_all();
        return true;
      };
      if (listening)
        listening = reconcile();
      if (!listening) {
        PQfinish(c);
        if (wait_stop(-1, backoff_ms))
          return;
        backoff_ms = std::min(backoff_ms * 2, 2000);
        continue;
      }
      backoff_ms = 50;
      while (!stopping_.load()) {
        if (wait_stop(PQsocket(c), -1))
          break;
        if (!reconcile())
          break;  // connection lost: reconnect
        if (PQconsumeInput(c) == 0)
          break;  // connection lost: reconnect
        effects got;
        while (PGnotify* n = PQnotifies(c)) {
          if (n->be_pid != own_pid_.load(std::memory_order_relaxed))
            parse(n->relname, n->extra, got);
          PQfreemem(n);
        }
        if (got.work_ready || !got.finished.empty())
          fn_(got);
      }
      PQfinish(c);
    }
  }

  void parse(std::string_view channel, std::string_view payload, effects& out) {
    if (channel.size() > 5 && channel.substr(channel.size() - 5) == "ready") {
      // The payload names the namespace ("": unknown, so any).
      if (payload.empty() || wanted_(payload))
        out.work_ready = true;
      return;
    }
    // "id:state id:state ..."
    while (!payload.empty()) {
      auto end = payload.find(' ');
      auto item = payload.substr(0, end);
      payload = end == std::string_view::npos ? std::string_view{} : payload.substr(end + 1);
      auto colon = item.find(':');
      if (colon == std::string_view::npos)
        continue;
      std::int64_t id = 0;
      task_state st{};
      if (std::from_chars(item.data(), item.data() + colon, id).ec == std::errc{}
          && parse_task_state(item.substr(colon + 1), st))
        out.finished.emplace_back(id, st);
    }
  }
};

// ---------------------------------------------------------------------------
// The store.

constexpr int schema_version = 3;

// Step ids derive from their task's id and their index (schema 3): the id of
// step `idx` of task `t` is t * 2^20 + idx. A task's steps are then one
// range of the primary key, and no second index on (task_id, idx) has to be
// kept up to date by each of the four writes in a step's life. A pipeline
// has at most 2^20 steps here; task ids stay below 2^43 (beyond, the
// database refuses the step's id as out of range).
constexpr int step_index_bits = 20;
constexpr std::int64_t max_steps_per_task = std::int64_t{1} << step_index_bits;
#define TK_STEP_SPAN "1048576"  // 2^20, in SQL
// What schema 3's migration adds to every claim number (v3_claim_offset), in SQL.
#define TK_CLAIM_OFFSET "4294967296"
static_assert(max_steps_per_task == 1048576);
constexpr std::int64_t step_id_of(std::int64_t task_id, std::int64_t index) {
  return task_id * max_steps_per_task + index;
}
constexpr std::int64_t task_of_step(std::int64_t step_id) {
  return step_id >> step_index_bits;
}
// The steps of task T (an expression in SQL): `s.id BETWEEN ... AND ...`.
#define TK_STEPS_OF(T)                                                                             \
  " BETWEEN " T " * " TK_STEP_SPAN " AND " T " * " TK_STEP_SPAN " + " TK_STEP_SPAN " - 1 "

#define TK_STEP_COLS                                                                               \
  "s.id, s.task_id, s.idx, s.state, s.attempts, s.pending_parents, s.claim_seq, s.due_at, "        \
  "s.created_at, s.started_at, s.finished_at, s.result, s.last_error, s.claimed_by, "              \
  "s.wait_name, s.signal, s.signal_seq, s.resume"
constexpr int step_col_count = 18;
#define TK_TASK_COLS                                                                               \
  "t.id, t.pipeline_id, t.state, t.priority, t.context, t.idempotency_key, t.created_at, "         \
  "t.updated_at, t.completed_at, t.steps_done"

// Statement slots (each statement is prepared once per connection) and SQL.
enum slot : std::size_t {
  s_pipeline_insert,
  s_pipeline_find,
  s_pipeline_id,
  s_pipeline_by_id,
  s_idem_find,
  s_create,
  s_state_of,
  s_task_by_id,
  s_steps_of_task,
  s_steps_of_task_locked,
  s_task_locked,
  s_list_0,  // s_list_0 + (state? 1) + (namespace? 2)
  s_list_1,
  s_list_2,
  s_list_3,
  s_namespaces,
  s_promote,
  s_expired,
  s_claim,
  s_claim_ids,
  s_claim_both,
  s_tasks_locked,
  s_complete_steps,
  s_pending_steps,
  s_child,
  s_save_steps,
  s_save_tasks,
  s_park,
  s_heartbeat_rows,
  s_heartbeat_extend,
  s_next_due,
  s_notify,
  s_wait_expired,
  s_signal_task,
  s_signal_step,
};

const std::string sql_task_locked =
    "SELECT " TK_TASK_COLS " FROM tk_tasks t WHERE t.id = $1 FOR UPDATE";
const std::string sql_task_by_id = "SELECT " TK_TASK_COLS " FROM tk_tasks t WHERE t.id = $1";
const std::string sql_steps_of_task =
    "SELECT " TK_STEP_COLS " FROM tk_steps s WHERE s.id" TK_STEPS_OF("$1::bigint") "ORDER BY s.id";
const std::string sql_steps_of_task_locked =
    "SELECT " TK_STEP_COLS
    " FROM tk_steps s WHERE s.id" TK_STEPS_OF("$1::bigint") "ORDER BY s.id FOR UPDATE";
const std::string sql_notify = "SELECT pg_notify($1, $2)";
// A task and its steps in one statement; ON CONFLICT: the idempotency key is
// taken (then no row comes back).
const std::string sql_create =
    "WITH t AS (INSERT INTO tk_tasks (pipeline_id, namespace, state, priority, context, "
    "idempotency_key, created_at, updated_at, steps_done) "
    "VALUES ($1, $2, 'pending', $3, $4, $5, $6, $6, 0) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id) "
    "INSERT INTO tk_steps (id, task_id, idx, namespace, priority, state, attempts, "
    "pending_parents, parents, claim_seq, due_at, created_at) "
    "SELECT t.id * " TK_STEP_SPAN " + u.ord - 1, t.id, u.ord - 1, $2, $3, CASE WHEN u.parents = 0 "
    "THEN 'ready' ELSE 'pending' END, "
    "0, u.parents, u.parents, 0, $6, $6 FROM t, unnest($7::int[]) WITH ORDINALITY AS u(parents, "
    "ord) "
    "ORDER BY u.ord RETURNING task_id";
const std::string sql_idem_find = "SELECT id, pipeline_id FROM tk_tasks WHERE idempotency_key = $1";
// Lock order everywhere: tasks by id, then their steps by id.
const std::string sql_tasks_locked =
    "SELECT " TK_TASK_COLS " FROM tk_tasks t WHERE t.id = ANY($1::bigint[]) ORDER BY t.id "
    "FOR UPDATE";
// The steps being completed, locked; and the children they may release, read
// without a row lock: every writer of a pending step holds its task's lock
// (taken by the statement before), so none can change them before this
// transaction ends, and a row lock would only cost a heap write and a WAL
// record per row. The children are named by id ($1) when this store knows
// the completed step's pipeline (it claimed the step), else all pending
// steps of the task are read ($2, task ids).
const std::string sql_complete_steps =
    "SELECT " TK_STEP_COLS " FROM tk_steps s WHERE s.id = ANY($1::bigint[]) ORDER BY s.id "
    "FOR UPDATE";
const std::string sql_pending_steps =
    "SELECT " TK_STEP_COLS " FROM tk_steps s WHERE s.id = ANY($1::bigint[]) AND "
    "s.state = 'pending' UNION ALL SELECT " TK_STEP_COLS " FROM unnest($2::bigint[]) AS k(task) "
    "JOIN tk_steps s ON s.id" TK_STEPS_OF("k.task") "WHERE s.state = 'pending'";
const std::string sql_child = "SELECT " TK_STEP_COLS " FROM tk_steps s WHERE s.id = $1 FOR UPDATE";
const std::string sql_save_steps =
    "UPDATE tk_steps AS s SET state = v.state, attempts = v.attempts, "
    "pending_parents = v.parents, claim_seq = v.seq, due_at = v.due, "
    "started_at = v.started, finished_at = v.finished, result = v.result, "
    "last_error = v.error, claimed_by = v.worker, wait_name = v.wait_name, signal = v.signal, "
    "signal_seq = v.signal_seq, resume = v.resume "
    "FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[], $5::bigint[], "
    "$6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[], "
    "$12::text[], $13::text[], $14::bigint[], $15::int[]) "
    "AS v(id, state, attempts, parents, seq, due, started, finished, result, error, worker, "
    "wait_name, signal, signal_seq, resume) "
    "WHERE s.id = v.id";
const std::string sql_save_tasks =
    "UPDATE tk_tasks AS t SET state = v.state, updated_at = v.updated, "
    "completed_at = v.completed, steps_done = v.done "
    "FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::int[]) "
    "AS v(id, state, updated, completed, done) WHERE t.id = v.id";
const std::string sql_park =
    "UPDATE tk_steps s SET state = 'pending' FROM unnest($1::bigint[]) AS k(task) "
    "WHERE s.id" TK_STEPS_OF("k.task") "AND s.state IN ('ready', 'waiting_for_retry', 'waiting')";
// Due retries become ready. SKIP LOCKED: rows another worker is promoting
// are its business, and nobody waits on anybody.
const std::string sql_promote =
    "UPDATE tk_steps SET state = 'ready' WHERE id IN (SELECT id FROM tk_steps "
    "WHERE namespace = ANY($1::text[]) AND state = 'waiting_for_retry' AND due_at <= $2 "
    "FOR UPDATE SKIP LOCKED)";
// Expired leases: the step and its task locked together, skipped if another
// worker holds either.
const std::string sql_expired =
    "SELECT " TK_STEP_COLS ", " TK_TASK_COLS " FROM tk_steps s JOIN tk_tasks t ON t.id = s.task_id"
    " WHERE s.namespace = ANY($1::text[]) AND s.state = 'running' AND s.due_at <= $2"
    " ORDER BY s.id LIMIT 1000 FOR UPDATE SKIP LOCKED";
// Waits that timed out, likewise.
const std::string sql_wait_expired =
    "SELECT " TK_STEP_COLS ", " TK_TASK_COLS " FROM tk_steps s JOIN tk_tasks t ON t.id = s.task_id"
    " WHERE s.namespace = ANY($1::text[]) AND s.state = 'waiting' AND s.due_at <= $2"
    " ORDER BY s.id LIMIT 1000 FOR UPDATE SKIP LOCKED";
// tk_signal: the task, then the step (the lock order), by the token's step
// id ($1) and claim ($2). A token minted before schema 3 (claim below 2^32)
// names its step through tk_step_alias; the step's last column says so.
#define TK_SIGNAL_ALIASED                                                                          \
  "EXISTS (SELECT 1 FROM tk_step_alias WHERE old_id = $1 AND $2::bigint < " TK_CLAIM_OFFSET ")"
#define TK_SIGNAL_STEP_ID                                                                          \
  "COALESCE((SELECT new_id FROM tk_step_alias WHERE old_id = $1 AND $2::bigint < " TK_CLAIM_OFFSET \
  "), $1)"
const std::string sql_signal_task =
    "SELECT " TK_TASK_COLS " FROM tk_tasks t WHERE t.id = (SELECT task_id FROM tk_steps "
    "WHERE id = " TK_SIGNAL_STEP_ID ") FOR UPDATE";
const std::string sql_signal_step =
    "SELECT " TK_STEP_COLS ", " TK_SIGNAL_ALIASED " FROM tk_steps s WHERE s.id = " TK_SIGNAL_STEP_ID
    " FOR UPDATE";
constexpr std::int64_t v3_claim_offset = std::int64_t{1} << 32;  // see apply_migration(3)
static_assert(v3_claim_offset == 4294967296);

// A claim is one statement: `pick` chooses the steps, `upd` applies
// claim_step's transition (transitions.cpp defines it: running, attempt
// counted, new fencing token, lease, start time, worker), `started` moves
// their pending tasks to running (SKIP LOCKED: a task being cancelled keeps
// its state, and the cancel ends it anyway), and the rows come back in claim
// order with their task and (for steps with parents) the results of their task's complete steps
// (`idx:length:result`...), for the dependency results of the events.
// `upd` finds its rows by `s.id = ANY(ARRAY(SELECT id FROM pick))`, so that
// the generic plan expects a handful of rows and probes the primary key for
// each: joined to `pick` instead, it merge-joined `pick` with every row of
// tk_steps' and tk_tasks' primary keys, a scan that grew with the finished
// rows (10 ms instead of 2 for 64 steps among 20,000 tasks), and with both
// conditions some backends' plans probed every id for every row of `pick`
// (64 x 64 probes, 6 ms). The final select joins `pick` back for the order.
// The results of the task's complete steps, for a claimed step with parents.
#define TK_CLAIM_DEPS                                                                              \
  "CASE WHEN upd.parents > 0 THEN (SELECT string_agg(a.idx || ':' || octet_length(a.result) "      \
  "|| ':' || a.result, '' ORDER BY a.idx) FROM tk_steps a WHERE a.state = 'complete' AND "         \
  "a.id" TK_STEPS_OF("upd.task_id") ") END "
// Moves the claimed steps' pending tasks to running.
#define TK_CLAIM_STARTED(NOW)                                                                      \
  ", started AS (UPDATE tk_tasks SET state = 'running', updated_at = " NOW " WHERE id IN "         \
  "(SELECT x.id FROM (SELECT DISTINCT task_id FROM upd) u CROSS JOIN LATERAL (SELECT t.id "        \
  "FROM tk_tasks t WHERE t.id = u.task_id AND t.state = 'pending' FOR UPDATE SKIP LOCKED) x)) "
#define TK_CLAIM_TAIL(NOW, LEASE, WORKER, STARTED)                                                 \
  "upd AS (UPDATE tk_steps s SET state = 'running', attempts = s.attempts + 1 - s.resume, "        \
  "resume = 0, "                                                                                   \
  "claim_seq = s.claim_seq + 1, pending_parents = 0, due_at = " LEASE ", started_at = " NOW        \
  ", claimed_by = " WORKER " WHERE s.id = ANY(ARRAY(SELECT id FROM pick)) "                        \
  "RETURNING s.id, s.task_id, s.idx, "                                                             \
  "s.state, s.attempts, s.pending_parents, s.claim_seq, s.due_at, s.created_at, s.started_at, "    \
  "s.finished_at, s.result, s.last_error, s.claimed_by, s.wait_name, s.signal, s.signal_seq, "     \
  "s.resume, s.parents)" STARTED " "                                                               \
  "SELECT upd.id, upd.task_id, upd.idx, upd.state, upd.attempts, upd.pending_parents, "            \
  "upd.claim_seq, upd.due_at, upd.created_at, upd.started_at, upd.finished_at, upd.result, "       \
  "upd.last_error, upd.claimed_by, upd.wait_name, upd.signal, upd.signal_seq, "                    \
  "upd.resume, " TK_TASK_COLS ", p.prio, " TK_CLAIM_DEPS                                           \
  "FROM upd JOIN pick p ON p.id = upd.id JOIN tk_tasks t ON t.id = upd.task_id "                   \
  "ORDER BY p.src, p.prio DESC, p.ready_at, upd.id"
const std::string sql_claim =
    "WITH pick AS (SELECT s.id, s.priority AS prio, s.due_at AS ready_at, 0 AS src FROM tk_steps s "
    "WHERE s.namespace = $1 AND s.state = 'ready' ORDER BY s.priority DESC, s.due_at, s.id "
    "LIMIT $2 FOR UPDATE SKIP LOCKED), " TK_CLAIM_TAIL("$3", "$4", "$5", TK_CLAIM_STARTED("$3"));
// Steps this transaction made ready (hand-off): its lock on their tasks keeps
// them from any other writer. Their tasks are running already (a parent of
// each just completed in them), so `started` has nothing to do.
const std::string sql_claim_ids =
    "WITH pick AS (SELECT s.id, s.priority AS prio, s.due_at AS ready_at, 0 AS src FROM tk_steps s "
    "WHERE s.id = ANY($1::bigint[])), " TK_CLAIM_TAIL("$2", "$3", "$4", "");
// Both in one statement, hand-offs first: what a worker serving one
// namespace sends after each completion that released a child (one
// statement less per step on a task's path).
const std::string sql_claim_both =
    "WITH handed AS (SELECT s.id, s.priority AS prio, s.due_at AS ready_at, 0 AS src FROM "
    "tk_steps s WHERE s.id = ANY($6::bigint[])), queued AS (SELECT s.id, s.priority AS prio, "
    "s.due_at AS ready_at, 1 AS src FROM tk_steps s WHERE s.namespace = $1 AND s.state = 'ready' "
    "ORDER BY s.priority DESC, s.due_at, s.id LIMIT $2 FOR UPDATE SKIP LOCKED), "
    "pick AS (SELECT * FROM handed UNION ALL SELECT * FROM queued), " TK_CLAIM_TAIL(
        "$3", "$4", "$5", TK_CLAIM_STARTED("$3"));
constexpr int claim_done_column = step_col_count + 11;
const std::string sql_heartbeat_rows =
    "SELECT " TK_STEP_COLS ", " TK_TASK_COLS " FROM tk_steps s JOIN tk_tasks t ON t.id = s.task_id"
    " WHERE s.id = ANY($1::bigint[]) ORDER BY s.id FOR UPDATE OF s";
const std::string sql_heartbeat_extend =
    "UPDATE tk_steps SET due_at = $2 WHERE id = ANY($1::bigint[]) AND due_at < $2";
// Per namespace, so that each probe is a plain index scan in due order: it
// marks the entries of finished rows dead as it passes them, and the next
// probe skips them (with `namespace = ANY` the planner takes a bitmap scan,
// which visits every dead row again, every time).
const std::string sql_next_due =
    "SELECT bool_or(r.ready), min(w.due_at), min(l.due_at), min(x.due_at) "
    "FROM unnest($1::text[]) AS n(ns) "
    "CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM tk_steps s WHERE s.namespace = n.ns AND "
    "s.state = 'ready') AS ready) r "
    "LEFT JOIN LATERAL (SELECT s.due_at FROM tk_steps s WHERE s.namespace = n.ns AND "
    "s.state = 'waiting_for_retry' ORDER BY s.due_at LIMIT 1) w ON true "
    "LEFT JOIN LATERAL (SELECT s.due_at FROM tk_steps s WHERE s.namespace = n.ns AND "
    "s.state = 'running' ORDER BY s.due_at LIMIT 1) l ON true "
    "LEFT JOIN LATERAL (SELECT s.due_at FROM tk_steps s WHERE s.namespace = n.ns AND "
    "s.state = 'waiting' ORDER BY s.due_at LIMIT 1) x ON true";

class pg_store final : public store {
public:
  explicit pg_store(const pg_options& o)
    : options_(o), db_(o.conninfo, o.schema), ready_channel_(o.schema + ".ready"),
      done_channel_(o.schema + ".done") {
    migrate();
  }
  ~pg_store() override { listener_.reset(); }

  void watch(std::function<void(const effects&)> fn) override {
    listener_.reset();
    if (fn)
      listener_ = std::make_unique<pg_listener>(options_.conninfo, options_.schema,
                                                db_.backend_pid(), std::move(fn),
                                                [this](std::string_view ns) { return serves(ns); });
  }

  void interest(bool work_ready, bool finished) override {
    if (listener_)
      listener_->interest(work_ready, finished);
  }

  void inject_fault(std::int64_t n) override { db_.fail_after(n); }

  pipeline_ptr register_pipeline(std::shared_ptr<pipeline_def> p) override {
    next_due_fresh_ = false;  // this call may change it
    ready_ns_.clear();
    if (static_cast<std::int64_t>(p->steps.size()) > max_steps_per_task)
      fail(TK_INVALID_ARGUMENT, "pipeline " + p->label() + " has " + std::to_string(p->steps.size())
                                    + " steps; the PostgreSQL store allows at most 1,048,576");
    static const std::string insert =
        "INSERT INTO tk_pipelines (namespace, name, version, definition) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (namespace, name, version) DO NOTHING RETURNING id";
    static const std::string find = "SELECT id, definition FROM tk_pipelines WHERE namespace = $1 "
                                    "AND name = $2 AND version = $3";
    return retrying([&] {
      pg_transaction tx{db_};
      pg_params a;
      a.add(p->namespace_name).add(p->name).add(p->version).add(p->canonical_json);
      const auto ins = db_.queue(s_pipeline_insert, insert, std::move(a));
      pg_params f;
      f.add(p->namespace_name).add(p->name).add(p->version);
      const auto fnd = db_.queue(s_pipeline_find, find, std::move(f));
      auto r = db_.send();
      if (r[ins].rows() == 1) {
        p->id = r[ins].integer(0, 0);
        tx.commit();
        pipeline_ptr shared = p;
        pipelines_[shared->id] = shared;
        known_namespace(shared->namespace_name);
        return shared;
      }
      if (r[fnd].rows() != 1)
        fail(TK_STORE_ERROR, "pipeline " + p->label() + " vanished while being registered");
      if (r[fnd].text(0, 1) != p->canonical_json)
        fail(TK_CONFLICT, "pipeline " + p->label()
                              + " is already registered with other steps; publish a new version");
      auto id = r[fnd].integer(0, 0);
      tx.commit();
      return pipeline_by_id(id);
    });
  }

  create_outcome create_task(const task_request& r, millis now, effects& fx) override {
    create_outcome out;
    create_tasks(&r, 1, now, &out, fx);
    return out;
  }

  // One round trip for the whole batch: BEGIN, one statement per task, the
  // NOTIFY and COMMIT. A taken idempotency key shows as no row back.
  void create_tasks(const task_request* r, std::size_t n, millis now, create_outcome* out,
                    effects& fx) override {
    next_due_fresh_ = false;  // this call may change it
    ready_ns_.clear();
    retrying([&] {
      fx = effects{};
      pg_transaction tx{db_};
      std::vector<pipeline_ptr> pipelines(n);
      std::vector<std::size_t> at(n), idem_at(n, pg_connection::unnamed);
      for (std::size_t i = 0; i < n; ++i) {  // first: lookups may run statements
        try {
          pipelines[i] = pipeline_by_id(pipeline_id(r[i]));
        } catch (const pg_conflict&) {
          throw;
        } catch (const core_error& e) {
          if (n == 1)
            throw;
          fail(e.code(),
               "task " + std::to_string(i + 1) + " of " + std::to_string(n) + ": " + e.what());
        }
      }
      for (std::size_t i = 0; i < n; ++i) {
        const auto& p = *pipelines[i];
        if (!r[i].idempotency_key.empty()) {
          pg_params k;
          k.add(r[i].idempotency_key);
          idem_at[i] = db_.queue(s_idem_find, sql_idem_find, std::move(k));
        }
        pg_params a;
        a.add(p.id)
            .add(p.namespace_name)
            .add(std::int64_t{r[i].priority})
            .add(r[i].context)
            .add_opt(r[i].idempotency_key)
            .add(now)
            .add(parent_counts(p));
        at[i] = db_.queue(s_create, sql_create, std::move(a));
      }
      fx.work_ready = n > 0;
      for (const auto& p : pipelines)
        ready_ns_.push_back(p->namespace_name);
      notify(fx);
      auto res = tx.commit();
      for (std::size_t i = 0; i < n; ++i) {
        if (res[at[i]].rows() > 0) {
          out[i] = {res[at[i]].integer(0, 0), true};
          continue;
        }
        // The key names an existing task (found by the lookup queued before,
        // or, if another process created it just now, by a new one).
        std::int64_t id = 0, pid = 0;
        if (idem_at[i] != pg_connection::unnamed && res[idem_at[i]].rows() > 0) {
          id = res[idem_at[i]].integer(0, 0);
          pid = res[idem_at[i]].integer(0, 1);
        } else {
          pg_params k;
          k.add(r[i].idempotency_key);
          auto again = db_.run(s_idem_find, sql_idem_find, std::move(k));
          if (again.rows() == 0)
            fail(TK_STORE_ERROR, "a task with idempotency key \""
                                     + std::string(r[i].idempotency_key)
                                     + "\" conflicted but cannot be found");
          id = again.integer(0, 0);
          pid = again.integer(0, 1);
        }
        if (pid != pipelines[i]->id)
          fail(TK_CONFLICT, "idempotency key \"" + std::string(r[i].idempotency_key)
                                + "\" already names task " + std::to_string(id) + " of pipeline "
                                + pipeline_by_id(pid)->label());
        out[i] = {id, false};
      }
    });
  }

  std::string task_status(std::int64_t task_id) override {
    pg_transaction tx{db_, true};  // one snapshot for the task and its steps
    pg_params a, b;
    a.add(task_id);
    b.add(task_id);
    const auto ti = db_.queue(s_task_by_id, sql_task_by_id, std::move(a));
    const auto si = db_.queue(s_steps_of_task, sql_steps_of_task, std::move(b));
    auto r = tx.commit();
    if (r[ti].rows() == 0)
      fail(TK_NOT_FOUND, "no task " + std::to_string(task_id));
    std::vector<step_row> steps;
    for (int i = 0; i < r[si].rows(); ++i)
      steps.push_back(read_step(r[si], i));
    auto t = read_task(r[ti], 0, 0);
    return render_status(t, steps.data(), steps.size(), key_);
  }

  task_state state_of(std::int64_t task_id) override {
    static const std::string sql = "SELECT state FROM tk_tasks WHERE id = $1";
    pg_params a;
    a.add(task_id);
    auto r = db_.run(s_state_of, sql, std::move(a));
    if (r.rows() == 0)
      fail(TK_NOT_FOUND, "no task " + std::to_string(task_id));
    task_state st{};
    if (!parse_task_state(r.text(0, 0), st))
      fail(TK_STORE_ERROR, "unknown task state in the database");
    return st;
  }

  void cancel_task(std::int64_t task_id, millis now) override {
    next_due_fresh_ = false;  // this call may change it
    ready_ns_.clear();
    retrying([&] {
      pg_transaction tx{db_};
      std::vector<step_row> steps;
      auto t = lock_task_and_steps(task_id, steps);
      if (!task_active(t))
        fail(TK_CONFLICT,
             "task " + std::to_string(task_id) + " has already ended (" + to_string(t.state) + ")");
      const auto task_before = t.state;
      auto before = steps;
      cancel(t, steps.data(), steps.size(), now);
      std::vector<step_row> changed;
      for (std::size_t i = 0; i < steps.size(); ++i)
        if (steps[i].state != before[i].state)
          changed.push_back(steps[i]);
      save_steps(changed);
      save_tasks({t});
      effects fx;
      fx.note(t, task_before);
      notify(fx);
      tx.commit();
    });
  }

  // As cancel_task: the task row, then its steps by id, locked in one round
  // trip; the writes, the NOTIFY and COMMIT in the second.
  void retry_task(std::int64_t task_id, millis now, effects& fx) override {
    next_due_fresh_ = false;  // this call may change it
    ready_ns_.clear();
    retrying([&] {
      fx = effects{};
      pg_transaction tx{db_};
      std::vector<step_row> steps;
      auto t = lock_task_and_steps(task_id, steps);
      check_retryable(t);
      auto before = steps;
      fx.work_ready = retry(t, steps.data(), steps.size(), now) > 0;
      std::vector<step_row> changed;
      for (std::size_t i = 0; i < steps.size(); ++i)
        if (steps[i].state != before[i].state
            || steps[i].pending_parents != before[i].pending_parents)
          changed.push_back(steps[i]);
      save_steps(changed);
      save_tasks({t});
      notify(fx);
      tx.commit();
    });
  }

  std::string list_tasks(const list_request& r) override {
    if (!r.state.empty()) {
      task_state ignored;
      if (!parse_task_state(r.state, ignored))
        fail(TK_VALIDATION, "unknown task state \"" + r.state + "\"");
    }
    static std::string variants[4];
    const std::size_t v = (r.state.empty() ? 0 : 1) + (r.namespace_name.empty() ? 0 : 2);
    if (variants[v].empty()) {
      std::string sql = "SELECT " TK_TASK_COLS " FROM tk_tasks t WHERE t.id > $1";
      int n = 2;
      if (v & 1)
        sql += " AND t.state = $" + std::to_string(n++);
      if (v & 2)
        sql += " AND t.namespace = $" + std::to_string(n++);
      sql += " ORDER BY t.id LIMIT $" + std::to_string(n);
      variants[v] = sql;
    }
    pg_params a;
    a.add(r.after);
    if (!r.state.empty())
      a.add(r.state);
    if (!r.namespace_name.empty())
      a.add(r.namespace_name);
    a.add(std::int64_t{r.limit} + 1);
    auto rows = db_.run(s_list_0 + v, variants[v], std::move(a));
    std::vector<task_row> tasks;
    for (int i = 0; i < rows.rows(); ++i)
      tasks.push_back(read_task(rows, i, 0));
    const bool more = tasks.size() > static_cast<std::size_t>(r.limit);
    if (more)
      tasks.pop_back();
    std::string out = "{\"tasks\":[";
    for (std::size_t k = 0; k < tasks.size(); ++k) {
      if (k)
        out += ',';
      render_list_entry(out, tasks[k]);
    }
    out += "],\"next\":";
    out += more ? std::to_string(tasks.back().id) : "null";
    out += '}';
    return out;
  }

  void claim(const claim_request& r, event_buffer& out, std::mt19937_64& rng,
             effects& fx) override {
    next_due_fresh_ = false;  // this call may change it
    ready_ns_.clear();
    retrying([&] {
      out.clear();
      fx = effects{};
      pg_transaction tx{db_, false, options_.async_worker_commits};
      claim_in_transaction(r, out, rng, fx, tx);
    });
  }

  void complete(const tk_step_result* results, std::size_t count, int* outcomes, millis now,
                std::mt19937_64& rng, effects& fx) override {
    next_due_fresh_ = false;  // this call may change it
    ready_ns_.clear();
    const std::vector<int> initial(outcomes, outcomes + count);
    retrying([&] {
      std::copy(initial.begin(), initial.end(), outcomes);
      fx = effects{};
      pg_transaction tx{db_, false, options_.async_worker_commits};
      complete_in_transaction(results, count, outcomes, now, rng, fx);
      notify(fx);
      tx.commit();
    });
  }

  // Four round trips: lock tasks, lock steps, write and claim, write and commit.
  void complete_and_claim(const tk_step_result* results, std::size_t count, int* outcomes,
                          const claim_request& r, event_buffer& out, std::mt19937_64& rng,
                          effects& fx) override {
    next_due_fresh_ = false;  // this call may change it
    ready_ns_.clear();
    const std::vector<int> initial(outcomes, outcomes + count);
    retrying([&] {
      std::copy(initial.begin(), initial.end(), outcomes);
      out.clear();
      fx = effects{};
      pg_transaction tx{db_, false, options_.async_worker_commits};
      complete_in_transaction(results, count, outcomes, r.now, rng, fx, r.max);
      claim_in_transaction(r, out, rng, fx, tx);
    });
  }

  void heartbeat(const std::int64_t* step_ids, const std::int64_t* tokens, std::size_t count,
                 millis lease_until, int* outcomes) override {
    next_due_fresh_ = false;  // this call may change it
    ready_ns_.clear();
    retrying([&] {
      pg_transaction tx{db_, false, options_.async_worker_commits};
      pg_params a;
      a.add(int_array(std::vector<std::int64_t>(step_ids, step_ids + count)));
      auto rows = db_.run(s_heartbeat_rows, sql_heartbeat_rows, std::move(a));
      std::unordered_map<std::int64_t, int> row_of;
      for (int i = 0; i < rows.rows(); ++i)
        row_of[rows.integer(i, 0)] = i;
      std::vector<std::int64_t> extend;
      for (std::size_t i = 0; i < count; ++i) {
        auto it = row_of.find(step_ids[i]);
        if (it == row_of.end()) {
          outcomes[i] = TK_NOT_FOUND;
          continue;
        }
        auto s = read_step(rows, it->second);
        auto t = read_task(rows, it->second, step_col_count);
        int c = check_claim(s, t, tokens[i]);
        outcomes[i] = c == TK_OK ? TK_OK : TK_STALE;
        if (c == TK_OK && lease_until > s.due_at)
          extend.push_back(s.id);
      }
      if (!extend.empty()) {
        pg_params u;
        u.add(int_array(extend)).add(lease_until);
        db_.queue(s_heartbeat_extend, sql_heartbeat_extend, std::move(u));
      }
      tx.commit();
    });
  }

  void signal(std::int64_t step_id, std::int64_t seq, std::string_view payload, millis now,
              effects& fx) override {
    next_due_fresh_ = false;  // this call may change it
    retrying([&] {
      ready_ns_.clear();
      fx = effects{};
      pg_transaction tx{db_};
      pg_params a, b;
      a.add(step_id).add(seq);
      b.add(step_id).add(seq);
      const auto ti = db_.queue(s_signal_task, sql_signal_task, std::move(a));
      const auto si = db_.queue(s_signal_step, sql_signal_step, std::move(b));
      auto r = db_.send();
      if (r[ti].rows() == 0 || r[si].rows() == 0)
        fail(TK_NOT_FOUND, "no wait has this token");
      auto t = read_task(r[ti], 0, 0);
      std::vector<step_row> s{read_step(r[si], 0)};
      const bool aliased = r[si].text(0, step_col_count) == "t";
      if (apply_signal(s[0], t, aliased ? seq + v3_claim_offset : seq, payload, now)) {
        fx.work_ready = true;
        ready_ns_.push_back(t.pipeline->namespace_name);
      }
      save_steps(s);
      notify(fx);
      tx.commit();
    });
  }

  millis next_due(const std::vector<std::string>& namespaces, millis now) override {
    // A claim answers this question in its own batch; right after one
    // (the poller asks when it has nothing to do) that answer is used.
    if (next_due_fresh_ && next_due_namespaces_ == namespaces) {
      next_due_fresh_ = false;
      return next_due_.ready ? now : next_due_.due;
    }
    pg_params a;
    a.add(namespaces.empty() ? text_array(all_namespaces()) : text_array(namespaces));
    auto r = db_.run(s_next_due, sql_next_due, std::move(a));
    auto d = read_next_due(r);
    return d.ready ? now : d.due;
  }

private:
  pg_options options_;
  pg_connection db_;
  std::string ready_channel_, done_channel_;
  std::unique_ptr<pg_listener> listener_;

  std::unordered_map<std::int64_t, pipeline_ptr> pipelines_;     // immutable once stored
  std::unordered_map<std::string, std::int64_t> pipeline_ids_;   // "ns\nname\nversion" -> id
  std::unordered_map<std::int64_t, std::string> parent_counts_;  // pipeline id -> "{0,1,1}"
  struct due_info {
    bool ready = false;
    millis due = -1;
  };
  due_info next_due_;
  std::vector<std::string> next_due_namespaces_;
  bool next_due_fresh_ = false;
  // What the last claim saw (its batch ends with the next_due query), so a
  // claim runs the statements for due retries and lapsed leases only when
  // one may be due: a statement saved per claim each.
  millis running_due_ = -1;    ///< earliest lease end
  millis waiting_due_ = -1;    ///< earliest retry (also lowered by our own failures)
  millis wait_end_ = -1;       ///< earliest end of a signal wait (also lowered by our own)
  bool check_expired_ = true;  ///< unknown yet, or a lapsed lease was left
  bool check_waiting_ = true;  ///< unknown yet
  int full_claims_ = 0;        ///< claims in a row that took as many steps as they asked for
  millis due_asked_at_ = -1;   ///< when a claim last asked for the next due time
  static constexpr millis due_refresh_ms = 100;
  /// Pipeline of each step this store claimed and has not completed yet
  /// (pipelines_ keeps them): a completion of those reads just the children
  /// it may release, by id.
  std::unordered_map<std::int64_t, const pipeline_def*> pipeline_of_;

  static due_info read_next_due(const pg_result& r) {
    due_info d;
    d.ready = !r.null(0, 0) && r.integer(0, 0) != 0;
    for (int col : {1, 2, 3})
      if (!r.null(0, col)) {
        auto v = r.integer(0, col);
        if (d.due < 0 || v < d.due)
          d.due = v;
      }
    return d;
  }
  std::vector<std::int64_t> handoffs_;  // from complete_in_transaction to claim_in_transaction
  std::vector<std::string>
      ready_ns_;  ///< namespaces given ready work by this call (NOTIFY payloads)
  // The namespaces this core's claims asked for: the LISTEN thread wakes it
  // only for those (before its first claim, and after a claim of "all": any).
  mutable std::mutex served_mu_;
  std::vector<std::string> served_;
  bool serve_all_ = true;
  bool claimed_yet_ = false;

  bool serves(std::string_view ns) const {
    std::lock_guard<std::mutex> g{served_mu_};
    return serve_all_ || std::find(served_.begin(), served_.end(), ns) != served_.end();
  }
  void note_served(const std::vector<std::string>& namespaces) {
    std::lock_guard<std::mutex> g{served_mu_};
    if (namespaces.empty()) {
      serve_all_ = true;
    } else if (!claimed_yet_) {
      serve_all_ = false;
    }
    claimed_yet_ = true;
    for (const auto& n : namespaces)
      if (std::find(served_.begin(), served_.end(), n) == served_.end())
        served_.push_back(n);
  }
  std::vector<std::string> namespaces_;  // of every registered pipeline, refreshed each second
  std::chrono::steady_clock::time_point namespaces_at_{};

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

  static std::string text_array(const std::vector<std::string>& values) {
    std::string out = "{";
    for (const auto& v : values)
      append_array_text(out, v, false);
    out += '}';
    return out;
  }

  const std::string& parent_counts(const pipeline_def& p) {
    auto& parents = parent_counts_[p.id];
    if (parents.empty()) {
      std::vector<std::int64_t> counts;
      for (const auto& s : p.steps)
        counts.push_back(static_cast<std::int64_t>(s.parents.size()));
      parents = int_array(counts);
    }
    return parents;
  }

  /// Queues notifications, which PostgreSQL sends when the transaction commits.
  void notify(const effects& fx) {
    if (fx.work_ready) {
      std::sort(ready_ns_.begin(), ready_ns_.end());
      ready_ns_.erase(std::unique(ready_ns_.begin(), ready_ns_.end()), ready_ns_.end());
      if (ready_ns_.empty())
        ready_ns_.emplace_back();  // "": some namespace
      for (const auto& ns : ready_ns_) {
        pg_params a;
        a.add(ready_channel_).add(ns);
        db_.queue(s_notify, sql_notify, std::move(a));
      }
    }
    ready_ns_.clear();
    std::string payload;
    auto flush = [&] {
      if (payload.empty())
        return;
      pg_params a;
      a.add(done_channel_).add(payload);
      db_.queue(s_notify, sql_notify, std::move(a));
      payload.clear();
    };
    for (const auto& [id, st] : fx.finished) {
      if (payload.size() > 7000)  // a payload must stay under 8000 bytes
        flush();
      if (!payload.empty())
        payload += ' ';
      payload += std::to_string(id) + ':' + to_string(st);
    }
    flush();
  }

  // Versioned migrations, run under an advisory lock so that workers
  // starting together do not race; each is idempotent through tk_schema.
  void migrate() {
    check_schema_name(options_.schema);
    retrying([&] {
      pg_transaction tx{db_};
      db_.exec("SELECT pg_advisory_xact_lock(hashtext('tasker migrate " + options_.schema + "'))");
      db_.exec("CREATE SCHEMA IF NOT EXISTS \"" + options_.schema + "\"");
      db_.exec("CREATE TABLE IF NOT EXISTS tk_schema (version INTEGER NOT NULL)");
      auto v = db_.exec("SELECT version FROM tk_schema");
      int found = v.rows() ? static_cast<int>(v.integer(0, 0)) : 0;
      if (found > schema_version)
        fail(TK_STORE_ERROR, "the database has schema version " + std::to_string(found)
                                 + "; this core knows version " + std::to_string(schema_version));
      for (int next = found + 1; next <= schema_version; ++next)
        apply_migration(next);
      if (found == 0)
        db_.exec("INSERT INTO tk_schema (version) VALUES (" + std::to_string(schema_version) + ")");
      else if (found != schema_version)
        db_.exec("UPDATE tk_schema SET version = " + std::to_string(schema_version));
      auto k = db_.exec("SELECT value FROM tk_meta WHERE key = 'wait_secret'");
      if (k.rows() == 0 || !wait_key::from_hex(k.text(0, 0), key_))
        fail(TK_STORE_ERROR, "the database's wait-token secret is missing or malformed");
      tx.commit();
    });
  }

  void apply_migration(int version) {
    if (version == 3) {
      // Step ids derived from (task id, index): see step_id_of.
      auto big = db_.exec("SELECT count(*) FROM tk_steps WHERE idx >= " TK_STEP_SPAN);
      if (big.integer(0, 0) > 0)
        fail(TK_STORE_ERROR, "schema version 3 allows at most 1,048,576 steps per task, and "
                                 + std::to_string(big.integer(0, 0))
                                 + " steps have a larger index");
      // Tasks created from now on get ids whose steps' ids lie above every
      // step id given out so far, so an old id never names a new step.
      auto m = db_.exec("SELECT COALESCE(max(id), 0) FROM tk_tasks");
      auto n = db_.exec("SELECT COALESCE(max(id), 0) FROM tk_steps");
      const auto next_task = std::max(m.integer(0, 0), task_of_step(n.integer(0, 0))) + 1;
      db_.exec("ALTER TABLE tk_tasks ALTER COLUMN id RESTART WITH " + std::to_string(next_task));
      // Wait tokens name a step by id and claim: those of steps that may
      // still be signalled (running or waiting) stay valid through an
      // alias. Every claim number moves up by 2^32, so that a worker of the
      // older schema, still holding a claim under an old id, is fenced off
      // whatever step that id names now; tokens with a claim number below
      // 2^32 are the old ones (see signal).
      db_.exec("CREATE TABLE tk_step_alias (old_id BIGINT PRIMARY KEY, new_id BIGINT NOT NULL)");
      db_.exec("INSERT INTO tk_step_alias (old_id, new_id) SELECT id, task_id * " TK_STEP_SPAN
               " + idx FROM tk_steps WHERE state IN ('running', 'waiting')");
      db_.exec("ALTER TABLE tk_steps ALTER COLUMN id DROP IDENTITY IF EXISTS");
      db_.exec("UPDATE tk_steps SET id = -id");  // no new id collides with an old one
      db_.exec("UPDATE tk_steps SET id = task_id * " TK_STEP_SPAN " + idx, "
               "claim_seq = claim_seq + " TK_CLAIM_OFFSET ", "
               "signal_seq = CASE WHEN signal_seq > 0 THEN signal_seq + " TK_CLAIM_OFFSET
               " ELSE 0 END");
      db_.exec("ALTER TABLE tk_steps DROP CONSTRAINT tk_steps_task_id_idx_key");
      db_.exec("DROP INDEX tk_steps_pending");
      return;
    }
    if (version == 2) {
      // Durable waits (TK_RESULT_WAIT, tk_signal).
      db_.exec("ALTER TABLE tk_steps ADD COLUMN wait_name TEXT, ADD COLUMN signal TEXT, "
               "ADD COLUMN signal_seq BIGINT NOT NULL DEFAULT 0, "
               "ADD COLUMN resume INTEGER NOT NULL DEFAULT 0");
      db_.exec(
          "CREATE INDEX tk_steps_wait ON tk_steps (namespace, due_at) WHERE state = 'waiting'");
      // Room on each page for a task row's next version: most updates of a
      // task (a step completed: steps_done, updated_at) leave its indexed
      // columns alone and can then be HOT updates, with no index entries.
      db_.exec("ALTER TABLE tk_tasks SET (fillfactor = 70)");
      db_.exec("CREATE TABLE tk_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
      db_.exec("INSERT INTO tk_meta (key, value) VALUES ('wait_secret', '"
               + wait_key::random().to_hex() + "')");
      return;
    }
    if (version != 1)
      fail(TK_STORE_ERROR, "no migration to schema version " + std::to_string(version));
    const std::string id = "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY";
    db_.exec("CREATE TABLE tk_pipelines (" + id
             + ", namespace TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL, "
               "definition TEXT NOT NULL, UNIQUE (namespace, name, version))");
    db_.exec("CREATE TABLE tk_tasks (" + id
             + ", pipeline_id BIGINT NOT NULL REFERENCES tk_pipelines (id), "
               "namespace TEXT NOT NULL, state TEXT NOT NULL, priority INTEGER NOT NULL, "
               "context TEXT NOT NULL, idempotency_key TEXT UNIQUE, created_at BIGINT NOT NULL, "
               "updated_at BIGINT NOT NULL, completed_at BIGINT, steps_done INTEGER NOT NULL)");
    db_.exec("CREATE INDEX tk_tasks_by_state ON tk_tasks (state, id)");
    db_.exec("CREATE TABLE tk_steps (" + id
             + ", task_id BIGINT NOT NULL REFERENCES tk_tasks (id), idx INTEGER NOT NULL, "
               "namespace TEXT NOT NULL, priority INTEGER NOT NULL, state TEXT NOT NULL, "
               "attempts INTEGER NOT NULL, pending_parents INTEGER NOT NULL, "
               "parents INTEGER NOT NULL, "
               "claim_seq BIGINT NOT NULL, due_at BIGINT NOT NULL, created_at BIGINT NOT NULL, "
               "started_at BIGINT, finished_at BIGINT, result TEXT, last_error TEXT, "
               "claimed_by TEXT, UNIQUE (task_id, idx))");
    // Partial indexes, as in SQLite: only rows a claim or a timer looks for.
    db_.exec("CREATE INDEX tk_steps_claim ON tk_steps (namespace, priority DESC, due_at, id) "
             "WHERE state = 'ready'");
    db_.exec("CREATE INDEX tk_steps_retry ON tk_steps (namespace, due_at) "
             "WHERE state = 'waiting_for_retry'");
    db_.exec("CREATE INDEX tk_steps_lease ON tk_steps (namespace, due_at) WHERE state = 'running'");
    // Children waiting for their parents, which a completion locks by task.
    db_.exec("CREATE INDEX tk_steps_pending ON tk_steps (task_id) WHERE state = 'pending'");
  }

  void known_namespace(const std::string& ns) {
    if (std::find(namespaces_.begin(), namespaces_.end(), ns) == namespaces_.end())
      namespaces_.push_back(ns);
  }

  /// Namespaces of all registered pipelines: read again at most once a
  /// second, so a pipeline another process registers is served within one.
  const std::vector<std::string>& all_namespaces() {
    const auto now = std::chrono::steady_clock::now();
    if (now - namespaces_at_ < std::chrono::seconds(1))
      return namespaces_;
    static const std::string sql = "SELECT DISTINCT namespace FROM tk_pipelines";
    auto r = db_.run(s_namespaces, sql, {});
    namespaces_.clear();
    for (int i = 0; i < r.rows(); ++i)
      namespaces_.emplace_back(r.text(i, 0));
    namespaces_at_ = now;
    return namespaces_;
  }

  pipeline_ptr pipeline_by_id(std::int64_t id) {
    if (auto it = pipelines_.find(id); it != pipelines_.end())
      return it->second;
    static const std::string sql = "SELECT definition FROM tk_pipelines WHERE id = $1";
    pg_params a;
    a.add(id);
    auto r = db_.run(s_pipeline_by_id, sql, std::move(a));
    if (r.rows() == 0)
      fail(TK_STORE_ERROR, "pipeline " + std::to_string(id) + " is missing");
    auto p = parse_pipeline(r.text(0, 0));
    p->id = id;
    pipeline_ptr shared = std::move(p);
    pipelines_[id] = shared;
    return shared;
  }

  std::int64_t pipeline_id(const task_request& r) {
    std::string key;
    key.append(r.namespace_name).append("\n").append(r.name).append("\n").append(r.version);
    if (auto it = pipeline_ids_.find(key); it != pipeline_ids_.end())
      return it->second;
    static const std::string sql =
        "SELECT id FROM tk_pipelines WHERE namespace = $1 AND name = $2 AND version = $3";
    pg_params a;
    a.add(r.namespace_name).add(r.name).add(r.version);
    auto found = db_.run(s_pipeline_id, sql, std::move(a));
    if (found.rows() == 0)
      fail(TK_NOT_FOUND, "no pipeline " + std::string(r.namespace_name) + "/" + std::string(r.name)
                             + "@" + std::string(r.version) + " is registered");
    auto id = found.integer(0, 0);
    pipeline_ids_.emplace(std::move(key), id);  // registrations never change
    return id;
  }

  static step_state step_state_of(std::string_view s) {
    step_state out;
    if (!parse_step_state(s, out))
      fail(TK_STORE_ERROR, "unknown step state \"" + std::string(s) + "\" in the database");
    return out;
  }

  static step_row read_step(const pg_result& r, int row) {
    step_row s;
    s.id = r.integer(row, 0);
    s.task_id = r.integer(row, 1);
    s.index = static_cast<std::int32_t>(r.integer(row, 2));
    s.state = step_state_of(r.text(row, 3));
    s.attempts = static_cast<std::int32_t>(r.integer(row, 4));
    s.pending_parents = static_cast<std::int32_t>(r.integer(row, 5));
    s.claim_seq = r.integer(row, 6);
    s.due_at = r.integer(row, 7);
    s.created_at = r.integer(row, 8);
    s.started_at = r.time(row, 9);
    s.finished_at = r.time(row, 10);
    s.result.assign(r.text(row, 11));
    s.last_error.assign(r.text(row, 12));
    s.claimed_by.assign(r.text(row, 13));
    s.wait_name.assign(r.text(row, 14));
    s.signal.assign(r.text(row, 15));
    s.signal_seq = r.integer(row, 16);
    s.resume = r.integer(row, 17) != 0;
    return s;
  }

  task_row read_task(const pg_result& r, int row, int at) {
    task_row t;
    t.id = r.integer(row, at + 0);
    task_state st{};
    if (!parse_task_state(r.text(row, at + 2), st))
      fail(TK_STORE_ERROR, "unknown task state in the database");
    t.state = st;
    t.priority = static_cast<std::int32_t>(r.integer(row, at + 3));
    t.context.assign(r.text(row, at + 4));
    t.idempotency_key.assign(r.text(row, at + 5));
    t.created_at = r.integer(row, at + 6);
    t.updated_at = r.integer(row, at + 7);
    t.completed_at = r.time(row, at + 8);
    t.steps_done = static_cast<std::int32_t>(r.integer(row, at + 9));
    t.pipeline = pipeline_by_id(r.integer(row, at + 1));
    return t;
  }

  /// Locks a task row, then its steps by id, in one round trip (the lock
  /// order every writer follows); TK_NOT_FOUND for an unknown id.
  task_row lock_task_and_steps(std::int64_t task_id, std::vector<step_row>& steps) {
    pg_params a, b;
    a.add(task_id);
    b.add(task_id);
    const auto ti = db_.queue(s_task_locked, sql_task_locked, std::move(a));
    const auto si = db_.queue(s_steps_of_task_locked, sql_steps_of_task_locked, std::move(b));
    auto r = db_.send();
    if (r[ti].rows() == 0)
      fail(TK_NOT_FOUND, "no task " + std::to_string(task_id));
    steps.clear();
    for (int i = 0; i < r[si].rows(); ++i)
      steps.push_back(read_step(r[si], i));
    return read_task(r[ti], 0, 0);
  }

  /// Queues one statement writing every column of the changed steps.
  void save_steps(const std::vector<step_row>& steps) {
    if (steps.empty())
      return;
    std::string ids = "{", states = "{", attempts = "{", parents = "{", seqs = "{", due = "{",
                started = "{", finished = "{", results = "{", errors = "{", workers = "{",
                wait_names = "{", signals = "{", signal_seqs = "{", resumes = "{";
    for (const auto& s : steps) {
      append_array_int(ids, s.id, false);
      append_array_text(states, to_string(s.state), false);
      append_array_int(attempts, s.attempts, false);
      append_array_int(parents, s.pending_parents, false);
      append_array_int(seqs, s.claim_seq, false);
      append_array_int(due, s.due_at, false);
      append_array_int(started, s.started_at, s.started_at < 0);
      append_array_int(finished, s.finished_at, s.finished_at < 0);
      append_array_text(results, s.result, s.result.empty());
      append_array_text(errors, s.last_error, s.last_error.empty());
      append_array_text(workers, s.claimed_by, s.claimed_by.empty());
      append_array_text(wait_names, s.wait_name, s.wait_name.empty());
      append_array_text(signals, s.signal, s.signal.empty());
      append_array_int(signal_seqs, s.signal_seq, false);
      append_array_int(resumes, s.resume ? 1 : 0, false);
    }
    pg_params a;
    for (auto* arr : {&ids, &states, &attempts, &parents, &seqs, &due, &started, &finished,
                      &results, &errors, &workers, &wait_names, &signals, &signal_seqs, &resumes}) {
      *arr += '}';
      a.add(*arr);
    }
    db_.queue(s_save_steps, sql_save_steps, std::move(a));
  }

  void save_tasks(const std::vector<task_row>& tasks) {
    if (tasks.empty())
      return;
    std::string ids = "{", states = "{", updated = "{", completed = "{", done = "{";
    for (const auto& t : tasks) {
      append_array_int(ids, t.id, false);
      append_array_text(states, to_string(t.state), false);
      append_array_int(updated, t.updated_at, false);
      append_array_int(completed, t.completed_at, t.completed_at < 0);
      append_array_int(done, t.steps_done, false);
    }
    pg_params a;
    for (auto* arr : {&ids, &states, &updated, &completed, &done}) {
      *arr += '}';
      a.add(*arr);
    }
    db_.queue(s_save_tasks, sql_save_tasks, std::move(a));
  }

  /// Queues: a failed task's ready and waiting steps go back to pending.
  void park(const std::vector<std::int64_t>& task_ids) {
    if (task_ids.empty())
      return;
    pg_params a;
    a.add(int_array(task_ids));
    db_.queue(s_park, sql_park, std::move(a));
  }

  // Locks and reads in two round trips; the writes are queued for the next.
  // Up to `handoff_max` steps made ready here are kept in handoffs_ rather
  // than saved: the claim that follows in the same transaction takes them
  // straight from pending to running (one row write instead of two).
  void complete_in_transaction(const tk_step_result* results, std::size_t count, int* outcomes,
                               millis now, std::mt19937_64& rng, effects& fx,
                               std::size_t handoff_max = 0) {
    handoffs_.clear();
    std::vector<std::int64_t> ids;
    for (std::size_t i = 0; i < count; ++i)
      if (outcomes[i] == TK_OK)
        ids.push_back(results[i].step_id);
    if (ids.empty())
      return;
    const auto id_list = int_array(ids);
    // Tasks first (the order every writer locks in), then the steps, and the
    // children the successes may release: one round trip. A step's id names
    // its task and index (step_id_of).
    std::vector<std::int64_t> task_ids, children, whole_tasks;
    for (std::size_t i = 0; i < count; ++i) {
      if (outcomes[i] != TK_OK)
        continue;
      const auto id = results[i].step_id;
      const auto task = task_of_step(id);
      task_ids.push_back(task);
      const auto it = pipeline_of_.find(id);
      const pipeline_def* p = it == pipeline_of_.end() ? nullptr : it->second;
      if (it != pipeline_of_.end())
        pipeline_of_.erase(it);
      if (results[i].kind != TK_RESULT_SUCCESS)
        continue;
      const auto index = static_cast<std::size_t>(id - step_id_of(task, 0));
      if (p && index < p->steps.size()) {
        for (int c : p->steps[index].children)
          children.push_back(step_id_of(task, c));
      } else {
        whole_tasks.push_back(task);  // not claimed here: all its pending steps
      }
    }
    for (auto* v : {&task_ids, &whole_tasks}) {
      std::sort(v->begin(), v->end());
      v->erase(std::unique(v->begin(), v->end()), v->end());
    }
    pg_params tp, sp, pp;
    tp.add(int_array(task_ids));
    sp.add(id_list);
    pp.add(int_array(children)).add(int_array(whole_tasks));
    const auto ti = db_.queue(s_tasks_locked, sql_tasks_locked, std::move(tp));
    const auto si = db_.queue(s_complete_steps, sql_complete_steps, std::move(sp));
    const auto pi = db_.queue(s_pending_steps, sql_pending_steps, std::move(pp));
    auto all = db_.send();
    const auto& trows = all[ti];
    const auto& srows = all[si];
    const auto& prows = all[pi];
    std::unordered_map<std::int64_t, std::size_t> task_at;
    std::vector<task_row> tasks;
    std::vector<task_state> tasks_before;
    for (int i = 0; i < trows.rows(); ++i) {
      tasks.push_back(read_task(trows, i, 0));
      tasks_before.push_back(tasks.back().state);
      task_at[tasks.back().id] = tasks.size() - 1;
    }
    std::vector<step_row> steps;
    std::unordered_map<std::int64_t, std::size_t> step_at;
    std::map<std::pair<std::int64_t, int>, std::size_t> child_at;  // (task, index) -> position
    steps.reserve(static_cast<std::size_t>(srows.rows() + prows.rows()));
    for (const pg_result* rows : {&srows, &prows})
      for (int i = 0; i < rows->rows(); ++i) {
        if (rows == &prows && step_at.count(rows->integer(i, 0)))
          continue;  // read already: a child of two steps, or a late result for a step
                     // now pending again (locked above)
        steps.push_back(read_step(*rows, i));
        step_at[steps.back().id] = steps.size() - 1;
        child_at[{steps.back().task_id, steps.back().index}] = steps.size() - 1;
      }
    std::vector<bool> dirty(steps.size(), false);
    std::vector<std::int64_t> parked;
    std::size_t made_ready = 0;  // steps this call made claimable
    std::vector<const std::string*> made_ready_ns;
    auto find_child = [&](std::int64_t task, int index) -> step_row* {
      if (auto it = child_at.find({task, index}); it != child_at.end()) {
        dirty[it->second] = true;
        return &steps[it->second];
      }
      // Not pending, so not loaded above: load it on its own (rare).
      pg_params c;
      c.add(step_id_of(task, index));
      auto row = db_.run(s_child, sql_child, std::move(c));
      if (row.rows() == 0)
        return nullptr;
      steps.push_back(read_step(row, 0));
      dirty.push_back(true);
      child_at[{task, index}] = steps.size() - 1;
      step_at[steps.back().id] = steps.size() - 1;
      return &steps.back();
    };
    for (std::size_t i = 0; i < count; ++i) {
      if (outcomes[i] != TK_OK)
        continue;
      const auto& res = results[i];
      auto sit = step_at.find(res.step_id);
      if (sit == step_at.end()) {
        outcomes[i] = TK_NOT_FOUND;
        continue;
      }
      const auto pos = sit->second;
      auto& t = tasks[task_at.at(steps[pos].task_id)];
      outcomes[i] = check_claim(steps[pos], t, res.fencing_token);
      if (outcomes[i] != TK_OK)
        continue;
      dirty[pos] = true;
      if (res.kind == TK_RESULT_SUCCESS) {
        bool done = apply_success(steps[pos], t, res.result_json ? res.result_json : "null", now);
        if (done)
          continue;
        const auto task_id = steps[pos].task_id;
        const auto index = static_cast<std::size_t>(steps[pos].index);
        for (int c : t.pipeline->steps[index].children) {
          step_row* child = find_child(task_id, c);  // may grow `steps`: no references kept
          if (!child)
            fail(TK_STORE_ERROR, "step " + std::to_string(c) + " of task " + std::to_string(task_id)
                                     + " is missing");
          if (release_parent(*child, t, now)) {
            ++made_ready;
            made_ready_ns.push_back(&t.pipeline->namespace_name);
          }
        }
      } else if (res.kind == TK_RESULT_WAIT) {
        if (apply_wait(steps[pos], t, res.wait_signal, res.wait_timeout_ms, now)) {
          ++made_ready;
          made_ready_ns.push_back(&t.pipeline->namespace_name);
        } else {
          wait_end_ = wait_end_ < 0 ? steps[pos].due_at : std::min(wait_end_, steps[pos].due_at);
        }
      } else {
        auto effect = apply_failure(steps[pos], t, res, now, rng);
        if (effect == failure_effect::retry_later)
          waiting_due_ =
              waiting_due_ < 0 ? steps[pos].due_at : std::min(waiting_due_, steps[pos].due_at);
        if (effect == failure_effect::retry_now) {
          ++made_ready;
          made_ready_ns.push_back(&t.pipeline->namespace_name);
        } else if (effect == failure_effect::failed)
          parked.push_back(t.id);
      }
    }
    std::vector<step_row> changed;
    for (std::size_t k = 0; k < steps.size(); ++k) {
      if (!dirty[k])
        continue;
      if (steps[k].state == step_state::ready && handoffs_.size() < handoff_max) {
        const auto& t = tasks[task_at.at(steps[k].task_id)];
        if (t.state == task_state::running) {  // (sql_claim_ids leaves tasks' states alone)
          // Not saved: the claim's statement writes it (pending -> running).
          handoffs_.push_back(steps[k].id);
          continue;
        }
      }
      changed.push_back(std::move(steps[k]));
    }
    // Work for others (and a NOTIFY) only if some of it is not handed off.
    if (made_ready > handoffs_.size()) {
      fx.work_ready = true;
      for (const auto* ns : made_ready_ns)
        ready_ns_.push_back(*ns);
    }
    save_steps(changed);
    save_tasks(tasks);
    park(parked);
    for (std::size_t k = 0; k < tasks.size(); ++k)
      fx.note(tasks[k], tasks_before[k]);
  }

  // One round trip (with whatever the caller queued): due retries promoted,
  // the claim statements, the next due time for the poller, notifications
  // and COMMIT. When a lease may have run out (the last look said one was
  // due by now, or saw one it could not take), expired leases are taken back
  // first, in the same transaction: one more round trip, only then.
  void claim_in_transaction(const claim_request& r, event_buffer& out, std::mt19937_64& rng,
                            effects& fx, pg_transaction& tx) {
    note_served(*r.namespaces);
    const auto& namespaces = r.namespaces->empty() ? all_namespaces() : *r.namespaces;
    const auto ns_list = text_array(namespaces);
    if (!namespaces.empty()
        && (check_expired_ || (running_due_ >= 0 && r.now >= running_due_)
            || (wait_end_ >= 0 && r.now >= wait_end_)))
      take_back_expired(ns_list, r.now, rng, fx);
    const bool promote = check_waiting_ || (waiting_due_ >= 0 && r.now >= waiting_due_);
    // The next due time costs a statement of four index probes, which walk
    // past the entries of rows finished since the last vacuum. While every
    // claim comes back full it answers no question (the poller claims again
    // at once), so it is asked then at most every due_refresh_ms, and at once
    // when a timer seen last time is due. This store's own leases, retries
    // and waits lower those timers as it makes them; another worker's lapsed
    // lease, retry or ended wait waits at most due_refresh_ms longer for a
    // saturated worker to notice it.
    const bool ask_due = full_claims_ == 0 || r.now - due_asked_at_ >= due_refresh_ms || promote
                         || check_expired_ || (running_due_ >= 0 && r.now >= running_due_)
                         || (wait_end_ >= 0 && r.now >= wait_end_);
    const auto handed = std::min(handoffs_.size(), r.max);
    std::vector<std::int64_t> handoff_ids;
    for (std::size_t k = 0; k < handed; ++k)
      handoff_ids.push_back(handoffs_[k]);
    handoffs_.clear();
    const auto lease_until = r.now + r.lease_ms;
    std::vector<std::size_t> claims;
    const bool both = !handoff_ids.empty() && namespaces.size() == 1 && r.max > handed;
    if (!handoff_ids.empty() && !both) {
      pg_params a;
      a.add(int_array(handoff_ids)).add(r.now).add(lease_until).add(r.worker);
      claims.push_back(db_.queue(s_claim_ids, sql_claim_ids, std::move(a)));
    }
    std::size_t due = pg_connection::unnamed;
    if (!namespaces.empty()) {
      if (promote) {
        pg_params pa;
        pa.add(ns_list).add(r.now);
        db_.queue(s_promote, sql_promote, std::move(pa));
      }
      if (r.max > handed)
        for (const auto& ns : namespaces) {
          pg_params a;
          a.add(ns)
              .add(static_cast<std::int64_t>(r.max - handed))
              .add(r.now)
              .add(lease_until)
              .add(r.worker);
          if (both) {
            a.add(int_array(handoff_ids));
            claims.push_back(db_.queue(s_claim_both, sql_claim_both, std::move(a)));
          } else {
            claims.push_back(db_.queue(s_claim, sql_claim, std::move(a)));
          }
        }
      if (ask_due) {
        pg_params d;
        d.add(ns_list);
        due = db_.queue(s_next_due, sql_next_due, std::move(d));
        due_asked_at_ = r.now;
      }
    }
    notify(fx);
    auto res = tx.commit();

    // Events in claim order: hand-offs first, then each namespace's rows
    // (merged by priority when there are several namespaces).
    struct claimed {
      const pg_result* rows;
      int row;
      std::int64_t priority;
      step_row step;
    };
    std::vector<claimed> got;
    for (std::size_t k = 0; k < claims.size(); ++k) {
      const auto& rows = res[claims[k]];
      for (int i = 0; i < rows.rows(); ++i)
        got.push_back({&rows, i, rows.integer(i, step_col_count + 10), read_step(rows, i)});
    }
    if (namespaces.size() > 1) {
      const auto first = got.begin() + (handoff_ids.empty() ? 0 : res[claims[0]].rows());
      std::stable_sort(first, got.end(), [](const claimed& x, const claimed& y) {
        return x.priority > y.priority;  // each list is in claim order already
      });
    }
    for (auto& c : got) {
      auto t = read_task(*c.rows, c.row, step_col_count);
      t.state = task_state::running;  // as claim_step leaves it
      pipeline_of_[c.step.id] = t.pipeline.get();
      const auto done = c.rows->text(c.row, claim_done_column);
      add_event(out, c.step, t, c.step.due_at, key_,
                [&](int index) { return result_of(done, index); });
    }
    const bool full = r.max > 0 && got.size() >= r.max;
    // Saturated: "ready" notifications would only wake us for nothing (see
    // pg_listener). Two full claims in a row, so that one full batch in a
    // quiet time does not make us deaf and listen again at once.
    full_claims_ = full ? full_claims_ + 1 : 0;
    if (listener_)
      listener_->saturated(full_claims_ >= 2);
    // Without a fresh next due time, the leases just given out are the ones
    // this store knows of (others' are seen at the next ask).
    if (due == pg_connection::unnamed && !got.empty())
      running_due_ = running_due_ < 0 ? lease_until : std::min(running_due_, lease_until);
    if (pipeline_of_.size() > 1'000'000)
      pipeline_of_.clear();  // steps whose leases lapsed: only an optimisation is lost
    if (due != pg_connection::unnamed) {
      const auto& d = res[due];
      next_due_ = read_next_due(d);
      next_due_namespaces_ = *r.namespaces;
      next_due_fresh_ = true;
      running_due_ = d.null(0, 2) ? -1 : d.integer(0, 2);
      waiting_due_ = d.null(0, 1) ? -1 : d.integer(0, 1);
      wait_end_ = d.null(0, 3) ? -1 : d.integer(0, 3);
      check_waiting_ = false;
      // A lease ran out or a wait ended that this call did not take back
      // (locked by another worker, or not expected yet): the next call does, soon.
      check_expired_ =
          (running_due_ >= 0 && running_due_ <= r.now) || (wait_end_ >= 0 && wait_end_ <= r.now);
      if (check_expired_ || (waiting_due_ >= 0 && waiting_due_ <= r.now))
        fx.work_ready = true;
    }
  }

  /// The result of step `index` in a claim row's `idx:length:result`... list
  /// (empty: none).
  static std::string_view result_of(std::string_view done, int index) {
    while (!done.empty()) {
      auto c1 = done.find(':');
      auto c2 = done.find(':', c1 + 1);
      if (c1 == std::string_view::npos || c2 == std::string_view::npos)
        break;
      int idx = -1;
      std::size_t len = 0;
      std::from_chars(done.data(), done.data() + c1, idx);
      std::from_chars(done.data() + c1 + 1, done.data() + c2, len);
      auto value = done.substr(c2 + 1, len);
      if (idx == index)
        return value;
      done = done.substr(std::min(done.size(), c2 + 1 + len));
    }
    return {};
  }

  /// Expired leases are taken back (ready again, or failed for good) and
  /// waits that timed out fail, in the current transaction (one round trip);
  /// their writes are queued.
  void take_back_expired(const std::string& ns_list, millis now, std::mt19937_64& rng,
                         effects& fx) {
    pg_params a, b;
    a.add(ns_list).add(now);
    b.add(ns_list).add(now);
    const auto li = db_.queue(s_expired, sql_expired, std::move(a));
    const auto wi = db_.queue(s_wait_expired, sql_wait_expired, std::move(b));
    auto both = db_.send();
    std::vector<task_row> tasks;
    std::vector<task_state> before;
    std::unordered_map<std::int64_t, std::size_t> task_at;
    std::vector<step_row> changed;
    std::vector<std::int64_t> parked;
    const int leases = both[li].rows();
    for (int i = 0; i < leases + both[wi].rows(); ++i) {
      const auto& rows = i < leases ? both[li] : both[wi];
      const int row = i < leases ? i : i - leases;
      auto s = read_step(rows, row);
      auto [it, fresh] = task_at.emplace(s.task_id, tasks.size());
      if (fresh) {
        tasks.push_back(read_task(rows, row, step_col_count));
        before.push_back(tasks.back().state);
      }
      auto& t = tasks[it->second];
      auto effect = i < leases ? expire_lease(s, t, now) : expire_wait(s, t, now, rng);
      if (effect == failure_effect::retry_later)
        waiting_due_ = waiting_due_ < 0 ? s.due_at : std::min(waiting_due_, s.due_at);
      if (effect == failure_effect::retry_now) {
        fx.work_ready = true;
        ready_ns_.push_back(t.pipeline->namespace_name);
      } else if (effect == failure_effect::failed)
        parked.push_back(t.id);
      pipeline_of_.erase(s.id);
      changed.push_back(std::move(s));
    }
    save_steps(changed);
    save_tasks(tasks);
    park(parked);
    for (std::size_t k = 0; k < tasks.size(); ++k)
      fx.note(tasks[k], before[k]);
  }
};

}  // namespace

pg_options parse_pg_url(const std::string& url) {
  pg_options o;
  auto q = url.find('?');
  if (q == std::string::npos) {
    o.conninfo = url;
    return o;
  }
  std::string kept;
  std::string_view rest = std::string_view(url).substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto item = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (item.rfind("schema=", 0) == 0) {
      o.schema = std::string(item.substr(7));
      continue;
    }
    if (item.rfind("async_worker_commits=", 0) == 0) {
      auto v = item.substr(21);
      if (v != "true" && v != "false" && v != "on" && v != "off" && v != "1" && v != "0")
        fail(TK_INVALID_ARGUMENT, "postgresql: async_worker_commits must be true or false");
      o.async_worker_commits = v == "true" || v == "on" || v == "1";
      continue;
    }
    if (!kept.empty())
      kept += '&';
    kept.append(item);
  }
  o.conninfo = url.substr(0, q) + (kept.empty() ? "" : "?" + kept);
  return o;
}

std::unique_ptr<store> make_pg_store(const pg_options& options) {
  check_schema_name(options.schema);
  return std::make_unique<pg_store>(options);
}

}  // namespace tasker::core
