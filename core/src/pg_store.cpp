#include "pg_store.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <map>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <libpq-fe.h>

#include "error.hpp"
#include "transitions.hpp"

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
  pg_result& operator=(pg_result&&) = delete;
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
  std::int64_t affected() const {
    const char* n = PQcmdTuples(r_);
    return n && *n ? std::strtoll(n, nullptr, 10) : 0;
  }

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

class pg_connection {
public:
  pg_connection(std::string conninfo, std::string schema)
    : conninfo_(std::move(conninfo)), schema_(std::move(schema)) {
    connect();
  }
  ~pg_connection() { PQfinish(c_); }
  pg_connection(const pg_connection&) = delete;
  pg_connection& operator=(const pg_connection&) = delete;

  /// The server process of this connection (its notifications carry it).
  int backend_pid() const { return backend_pid_.load(std::memory_order_relaxed); }
  const std::atomic<int>& backend_pid_ref() const { return backend_pid_; }

  pg_result exec(const std::string& sql) {
    count_statement();
    return check(PQexec(c_, sql.c_str()), sql);
  }

  /// Runs the statement of `slot` (prepared on first use per connection).
  pg_result run(std::size_t slot, const std::string& sql, pg_params& p) {
    count_statement();
    if (slot >= prepared_.size())
      prepared_.resize(slot + 1, false);
    const std::string name = "tk" + std::to_string(slot);
    if (!prepared_[slot]) {
      check(PQprepare(c_, name.c_str(), sql.c_str(), p.size(), nullptr), sql);
      prepared_[slot] = true;
    }
    return check(PQexecPrepared(c_, name.c_str(), p.size(), p.pointers(), nullptr, nullptr, 0),
                 sql);
  }

  /// Starts a transaction, reconnecting first if the connection was lost:
  /// nothing has run yet, so a server restart between calls is invisible.
  void begin(bool read_only = false) {
    const char* sql = read_only ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN";
    count_statement();
    if (PQstatus(c_) != CONNECTION_OK)
      connect();
    PGresult* r = PQexec(c_, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQstatus(c_) != CONNECTION_OK) {
      PQclear(r);
      connect();
      r = PQexec(c_, sql);
    }
    check(r, sql);
  }
  void commit() { exec("COMMIT"); }
  void rollback() noexcept {
    if (PQstatus(c_) == CONNECTION_OK && PQtransactionStatus(c_) != PQTRANS_IDLE)
      PQclear(PQexec(c_, "ROLLBACK"));
  }

  void fail_after(std::int64_t n) { fail_countdown_ = n; }

private:
  std::string conninfo_;
  std::string schema_;
  PGconn* c_ = nullptr;
  std::vector<bool> prepared_;  // by slot, per server connection
  std::atomic<int> backend_pid_{0};
  std::int64_t fail_countdown_ = -1;

  void count_statement() {
    if (fail_countdown_ >= 0 && fail_countdown_-- == 0)
      fail(TK_STORE_ERROR, "injected store fault (testing hook)");
  }

  void connect() {
    PQfinish(c_);
    prepared_.clear();
    c_ = PQconnectdb(conninfo_.c_str());
    if (PQstatus(c_) != CONNECTION_OK) {
      std::string msg = c_ ? PQerrorMessage(c_) : "out of memory";
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
        msg.pop_back();
      fail(TK_STORE_ERROR, "postgresql: cannot connect: " + msg);
    }
    PQsetNoticeProcessor(c_, &ignore_notice, nullptr);
    backend_pid_.store(PQbackendPID(c_), std::memory_order_relaxed);
    // Quiet NOTICEs (CREATE ... IF NOT EXISTS), and our tables first.
    PQclear(PQexec(c_, "SET client_min_messages TO warning"));
    check(PQexec(c_, ("SET search_path TO \"" + schema_ + "\"").c_str()), "SET search_path");
  }

  pg_result check(PGresult* r, const std::string& sql) {
    const auto st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
      return pg_result{r};
    const char* code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string msg = r ? PQresultErrorMessage(r) : "";
    if (msg.empty())
      msg = PQerrorMessage(c_);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    std::string state = code ? code : "";
    PQclear(r);
    std::string what = "postgresql: " + msg + " [" + sql.substr(0, 60) + "]";
    if (PQstatus(c_) != CONNECTION_OK)
      fail(TK_STORE_ERROR, "postgresql: connection lost (" + msg + "); the next call reconnects");
    if (state == "40001" || state == "40P01")
      throw pg_conflict(TK_STORE_ERROR, what);
    fail(TK_STORE_ERROR, what);
  }
};

/// Commits explicitly, rolls back if left by an exception.
class pg_transaction {
public:
  explicit pg_transaction(pg_connection& c, bool read_only = false) : c_(c) { c_.begin(read_only); }
  pg_transaction(const pg_transaction&) = delete;
  pg_transaction& operator=(const pg_transaction&) = delete;
  ~pg_transaction() {
    if (!done_)
      c_.rollback();
  }
  void commit() {
    c_.commit();
    done_ = true;
  }

private:
  pg_connection& c_;
  bool done_ = false;
};

// ---------------------------------------------------------------------------
// LISTEN: notifications from other processes become store::watch calls.

class pg_listener {
public:
  pg_listener(std::string conninfo, std::string schema, const std::atomic<int>& own_pid,
              std::function<void(const effects&)> fn)
    : conninfo_(std::move(conninfo)), schema_(std::move(schema)), own_pid_(own_pid),
      fn_(std::move(fn)) {
    if (::pipe(stop_pipe_) != 0)
      fail(TK_STORE_ERROR, "postgresql: cannot create the listener's stop pipe");
    thread_ = std::thread([this] { run(); });
  }
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
  int stop_pipe_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  std::thread thread_;

  // Waits up to `ms` or until stopped; true when stopped.
  bool wait_stop(int fd, int ms) {
    pollfd fds[2] = {{stop_pipe_[0], POLLIN, 0}, {fd, POLLIN, 0}};
    ::poll(fds, fd >= 0 ? 2 : 1, ms);
    return stopping_.load();
  }

  void run() {
    int backoff_ms = 50;
    while (!stopping_.load()) {
      PGconn* c = PQconnectdb(conninfo_.c_str());
      bool listening = PQstatus(c) == CONNECTION_OK;
      if (listening)
        PQsetNoticeProcessor(c, &ignore_notice, nullptr);
      for (const char* what : {"ready", "done"}) {
        if (!listening)
          break;
        PGresult* r = PQexec(c, ("LISTEN \"" + schema_ + "." + what + "\"").c_str());
        listening = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
      }
      if (!listening) {
        PQfinish(c);
        if (wait_stop(-1, backoff_ms))
          return;
        backoff_ms = std::min(backoff_ms * 2, 2000);
        continue;
      }
      backoff_ms = 50;
      // Whatever was notified while we were not listening is lost: look.
      effects fx;
      fx.work_ready = true;
      fn_(fx);
      while (!stopping_.load()) {
        if (wait_stop(PQsocket(c), -1))
          break;
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

constexpr int schema_version = 1;

const char* const step_cols =
    "s.id, s.task_id, s.idx, s.state, s.attempts, s.pending_parents, s.claim_seq, s.due_at, "
    "s.created_at, s.started_at, s.finished_at, s.result, s.last_error, s.claimed_by";
constexpr int step_col_count = 14;
const char* const task_cols =
    "t.id, t.pipeline_id, t.state, t.priority, t.context, t.idempotency_key, t.created_at, "
    "t.updated_at, t.completed_at, t.steps_done";

// Statement slots (each call site prepares its SQL once per connection).
enum slot : std::size_t {
  s_pipeline_insert,
  s_pipeline_find,
  s_pipeline_id,
  s_pipeline_by_id,
  s_idem_find,
  s_task_insert,
  s_steps_insert,
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
  s_ancestors,
  s_start_tasks,
  s_complete_tasks,
  s_complete_steps,
  s_child,
  s_save_steps,
  s_save_tasks,
  s_park,
  s_heartbeat_rows,
  s_heartbeat_extend,
  s_next_due,
  s_notify,
};

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
                                                db_.backend_pid_ref(), std::move(fn));
  }

  void inject_fault(std::int64_t n) override { db_.fail_after(n); }

  pipeline_ptr register_pipeline(std::shared_ptr<pipeline_def> p) override {
    return retrying([&] {
      pg_transaction tx{db_};
      pg_params a;
      a.add(p->namespace_name).add(p->name).add(p->version).add(p->canonical_json);
      auto ins =
          db_.run(s_pipeline_insert,
                  "INSERT INTO tk_pipelines (namespace, name, version, definition) "
                  "VALUES ($1, $2, $3, $4) ON CONFLICT (namespace, name, version) DO NOTHING "
                  "RETURNING id",
                  a);
      if (ins.rows() == 1) {
        p->id = ins.integer(0, 0);
        tx.commit();
        pipeline_ptr shared = p;
        pipelines_[shared->id] = shared;
        return shared;
      }
      pg_params f;
      f.add(p->namespace_name).add(p->name).add(p->version);
      auto found = db_.run(s_pipeline_find,
                           "SELECT id, definition FROM tk_pipelines WHERE namespace = $1 AND "
                           "name = $2 AND version = $3",
                           f);
      if (found.rows() != 1)
        fail(TK_STORE_ERROR, "pipeline " + p->label() + " vanished while being registered");
      if (found.text(0, 1) != p->canonical_json)
        fail(TK_CONFLICT, "pipeline " + p->label()
                              + " is already registered with other steps; publish a new version");
      auto id = found.integer(0, 0);
      tx.commit();
      return pipeline_by_id(id);
    });
  }

  create_outcome create_task(const task_request& r, millis now, effects& fx) override {
    return retrying([&] {
      fx = effects{};
      pg_transaction tx{db_};
      auto out = create_in_transaction(r, now);
      fx.work_ready = out.created;
      notify(fx);
      tx.commit();
      return out;
    });
  }

  void create_tasks(const task_request* r, std::size_t n, millis now, create_outcome* out,
                    effects& fx) override {
    retrying([&] {
      fx = effects{};
      pg_transaction tx{db_};
      for (std::size_t i = 0; i < n; ++i) {
        try {
          out[i] = create_in_transaction(r[i], now);
        } catch (const pg_conflict&) {
          throw;
        } catch (const core_error& e) {
          fail(e.code(),
               "task " + std::to_string(i + 1) + " of " + std::to_string(n) + ": " + e.what());
        }
        fx.work_ready = fx.work_ready || out[i].created;
      }
      notify(fx);
      tx.commit();
    });
  }

  std::string task_status(std::int64_t task_id) override {
    pg_transaction tx{db_, true};  // one snapshot for the task and its steps
    auto t = load_task(task_id, false);
    pg_params a;
    a.add(task_id);
    auto rows = db_.run(s_steps_of_task,
                        std::string("SELECT ") + step_cols
                            + " FROM tk_steps s WHERE s.task_id = $1 ORDER BY s.idx",
                        a);
    std::vector<step_row> steps;
    for (int i = 0; i < rows.rows(); ++i)
      steps.push_back(read_step(rows, i));
    tx.commit();
    return render_status(t, steps.data(), steps.size());
  }

  task_state state_of(std::int64_t task_id) override {
    pg_params a;
    a.add(task_id);
    auto r = db_.run(s_state_of, "SELECT state FROM tk_tasks WHERE id = $1", a);
    if (r.rows() == 0)
      fail(TK_NOT_FOUND, "no task " + std::to_string(task_id));
    task_state st{};
    if (!parse_task_state(r.text(0, 0), st))
      fail(TK_STORE_ERROR, "unknown task state in the database");
    return st;
  }

  void cancel_task(std::int64_t task_id, millis now) override {
    retrying([&] {
      pg_transaction tx{db_};
      // Lock order everywhere: tasks by id, then their steps by id.
      auto t = load_task(task_id, true);
      if (!task_active(t))
        fail(TK_CONFLICT,
             "task " + std::to_string(task_id) + " has already ended (" + to_string(t.state) + ")");
      const auto task_before = t.state;
      pg_params a;
      a.add(task_id);
      auto rows = db_.run(s_steps_of_task_locked,
                          std::string("SELECT ") + step_cols
                              + " FROM tk_steps s WHERE s.task_id = $1 ORDER BY s.id FOR UPDATE",
                          a);
      std::vector<step_row> steps;
      for (int i = 0; i < rows.rows(); ++i)
        steps.push_back(read_step(rows, i));
      auto before = steps;
      cancel(t, steps.data(), steps.size(), now);
      changed_steps_.clear();
      for (std::size_t i = 0; i < steps.size(); ++i)
        if (steps[i].state != before[i].state)
          changed_steps_.push_back(steps[i]);
      save_steps(changed_steps_);
      save_tasks({t});
      effects fx;
      fx.note(t, task_before);
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
    std::string sql = std::string("SELECT ") + task_cols + " FROM tk_tasks t WHERE t.id > $1";
    pg_params a;
    a.add(r.after);
    int n = 2;
    if (!r.state.empty()) {
      sql += " AND t.state = $" + std::to_string(n++);
      a.add(r.state);
    }
    if (!r.namespace_name.empty()) {
      sql += " AND t.namespace = $" + std::to_string(n++);
      a.add(r.namespace_name);
    }
    sql += " ORDER BY t.id LIMIT $" + std::to_string(n);
    a.add(std::int64_t{r.limit} + 1);
    auto rows =
        db_.run(s_list_0 + (r.state.empty() ? 0 : 1) + (r.namespace_name.empty() ? 0 : 2), sql, a);
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

  void claim(const claim_request& r, event_buffer& out, std::mt19937_64&, effects& fx) override {
    retrying([&] {
      out.clear();
      fx = effects{};
      pg_transaction tx{db_};
      claim_in_transaction(r, out, fx);
      notify(fx);
      tx.commit();
    });
  }

  void complete(const tk_step_result* results, std::size_t count, int* outcomes, millis now,
                std::mt19937_64& rng, effects& fx) override {
    const std::vector<int> initial(outcomes, outcomes + count);
    retrying([&] {
      std::copy(initial.begin(), initial.end(), outcomes);
      fx = effects{};
      pg_transaction tx{db_};
      complete_in_transaction(results, count, outcomes, now, rng, fx);
      notify(fx);
      tx.commit();
    });
  }

  void complete_and_claim(const tk_step_result* results, std::size_t count, int* outcomes,
                          const claim_request& r, event_buffer& out, std::mt19937_64& rng,
                          effects& fx) override {
    const std::vector<int> initial(outcomes, outcomes + count);
    retrying([&] {
      std::copy(initial.begin(), initial.end(), outcomes);
      out.clear();
      fx = effects{};
      pg_transaction tx{db_};
      complete_in_transaction(results, count, outcomes, r.now, rng, fx);
      claim_in_transaction(r, out, fx);
      notify(fx);
      tx.commit();
    });
  }

  void heartbeat(const std::int64_t* step_ids, const std::int64_t* tokens, std::size_t count,
                 millis lease_until, int* outcomes) override {
    retrying([&] {
      pg_transaction tx{db_};
      pg_params a;
      a.add(int_array(std::vector<std::int64_t>(step_ids, step_ids + count)));
      auto rows = db_.run(s_heartbeat_rows,
                          std::string("SELECT ") + step_cols + ", " + task_cols
                              + " FROM tk_steps s JOIN tk_tasks t ON t.id = s.task_id"
                                " WHERE s.id = ANY($1::bigint[]) ORDER BY s.id FOR UPDATE OF s",
                          a);
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
        db_.run(s_heartbeat_extend, "UPDATE tk_steps SET due_at = $2 WHERE id = ANY($1::bigint[])",
                u);
      }
      tx.commit();
    });
  }

  millis next_due(const std::vector<std::string>& namespaces, millis now) override {
    const auto ns = namespaces.empty() ? all_namespaces() : namespaces;
    pg_params a;
    a.add(text_array(ns));
    auto r = db_.run(
        s_next_due,
        "SELECT EXISTS (SELECT 1 FROM tk_steps WHERE namespace = ANY($1::text[]) AND "
        "state = 'ready'), (SELECT MIN(due_at) FROM tk_steps WHERE namespace = ANY($1::text[]) "
        "AND state = 'waiting_for_retry'), (SELECT MIN(due_at) FROM tk_steps WHERE "
        "namespace = ANY($1::text[]) AND state = 'running')",
        a);
    if (r.integer(0, 0))
      return now;
    millis due = -1;
    for (int col : {1, 2})
      if (!r.null(0, col)) {
        auto d = r.integer(0, col);
        if (due < 0 || d < due)
          due = d;
      }
    return due;
  }

private:
  pg_options options_;
  pg_connection db_;
  std::string ready_channel_, done_channel_;
  std::unique_ptr<pg_listener> listener_;

  std::unordered_map<std::int64_t, pipeline_ptr> pipelines_;     // immutable once stored
  std::unordered_map<std::string, std::int64_t> pipeline_ids_;   // "ns\nname\nversion" -> id
  std::unordered_map<std::int64_t, std::string> parent_counts_;  // pipeline id -> "{0,1,1}"

  // Per call, reused.
  std::vector<step_row> changed_steps_;
  std::vector<task_row> changed_tasks_;

  /// Runs `f` again when PostgreSQL aborted it as a serialization failure or
  /// deadlock (it rolled back, so nothing of it happened); `f` resets its
  /// outputs first.
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

  /// Queues notifications, sent by PostgreSQL when the transaction commits.
  void notify(const effects& fx) {
    if (fx.work_ready) {
      pg_params a;
      a.add(ready_channel_).add(std::string_view{});
      db_.run(s_notify, "SELECT pg_notify($1, $2)", a);
    }
    std::string payload;
    auto flush = [&] {
      if (payload.empty())
        return;
      pg_params a;
      a.add(done_channel_).add(payload);
      db_.run(s_notify, "SELECT pg_notify($1, $2)", a);
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
      tx.commit();
    });
  }

  void apply_migration(int version) {
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
               "claim_seq BIGINT NOT NULL, due_at BIGINT NOT NULL, created_at BIGINT NOT NULL, "
               "started_at BIGINT, finished_at BIGINT, result TEXT, last_error TEXT, "
               "claimed_by TEXT, UNIQUE (task_id, idx))");
    // Partial indexes, as in SQLite: only rows a claim or a timer looks for.
    db_.exec("CREATE INDEX tk_steps_claim ON tk_steps (namespace, priority DESC, due_at, id) "
             "WHERE state = 'ready'");
    db_.exec("CREATE INDEX tk_steps_retry ON tk_steps (namespace, due_at) "
             "WHERE state = 'waiting_for_retry'");
    db_.exec("CREATE INDEX tk_steps_lease ON tk_steps (namespace, due_at) WHERE state = 'running'");
    // Children waiting for their parents, found by task.
    db_.exec("CREATE INDEX tk_steps_pending ON tk_steps (task_id) WHERE state = 'pending'");
  }

  pipeline_ptr pipeline_by_id(std::int64_t id) {
    if (auto it = pipelines_.find(id); it != pipelines_.end())
      return it->second;
    pg_params a;
    a.add(id);
    auto r = db_.run(s_pipeline_by_id, "SELECT definition FROM tk_pipelines WHERE id = $1", a);
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
    pg_params a;
    a.add(r.namespace_name).add(r.name).add(r.version);
    auto found = db_.run(
        s_pipeline_id,
        "SELECT id FROM tk_pipelines WHERE namespace = $1 AND name = $2 AND version = $3", a);
    if (found.rows() == 0)
      fail(TK_NOT_FOUND, "no pipeline " + std::string(r.namespace_name) + "/" + std::string(r.name)
                             + "@" + std::string(r.version) + " is registered");
    auto id = found.integer(0, 0);
    pipeline_ids_.emplace(std::move(key), id);  // registrations never change
    return id;
  }

  create_outcome existing_task(const task_request& r, const pipeline_def& p) {
    pg_params a;
    a.add(r.idempotency_key);
    auto idem =
        db_.run(s_idem_find, "SELECT id, pipeline_id FROM tk_tasks WHERE idempotency_key = $1", a);
    if (idem.rows() == 0)
      return {0, false};
    auto id = idem.integer(0, 0);
    auto pid = idem.integer(0, 1);
    if (pid != p.id)
      fail(TK_CONFLICT, "idempotency key \"" + std::string(r.idempotency_key)
                            + "\" already names task " + std::to_string(id) + " of pipeline "
                            + pipeline_by_id(pid)->label());
    return {id, false};
  }

  create_outcome create_in_transaction(const task_request& r, millis now) {
    auto p = pipeline_by_id(pipeline_id(r));
    if (!r.idempotency_key.empty())
      if (auto found = existing_task(r, *p); found.task_id != 0)
        return found;
    pg_params a;
    a.add(p->id)
        .add(p->namespace_name)
        .add(std::int64_t{r.priority})
        .add(r.context)
        .add_opt(r.idempotency_key)
        .add(now);
    auto ins = db_.run(s_task_insert,
                       "INSERT INTO tk_tasks (pipeline_id, namespace, state, priority, context, "
                       "idempotency_key, created_at, updated_at, steps_done) "
                       "VALUES ($1, $2, 'pending', $3, $4, $5, $6, $6, 0) "
                       "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                       a);
    if (ins.rows() == 0) {  // another process created it with the same key just now
      auto found = existing_task(r, *p);
      if (found.task_id == 0)
        fail(TK_STORE_ERROR, "a task with idempotency key \"" + std::string(r.idempotency_key)
                                 + "\" conflicted but cannot be found");
      return found;
    }
    const auto task_id = ins.integer(0, 0);
    auto& parents = parent_counts_[p->id];
    if (parents.empty()) {
      std::vector<std::int64_t> counts;
      for (const auto& s : p->steps)
        counts.push_back(static_cast<std::int64_t>(s.parents.size()));
      parents = int_array(counts);
    }
    pg_params s;
    s.add(task_id).add(p->namespace_name).add(std::int64_t{r.priority}).add(now).add(parents);
    db_.run(
        s_steps_insert,
        "INSERT INTO tk_steps (task_id, idx, namespace, priority, state, attempts, "
        "pending_parents, claim_seq, due_at, created_at) "
        "SELECT $1, u.ord - 1, $2, $3, CASE WHEN u.parents = 0 THEN 'ready' ELSE 'pending' "
        "END, 0, u.parents, 0, $4, $4 FROM unnest($5::int[]) WITH ORDINALITY AS u(parents, ord) "
        "ORDER BY u.ord",
        s);
    return {task_id, true};
  }

  std::vector<std::string> all_namespaces() {
    pg_params none;
    auto r = db_.run(s_namespaces, "SELECT DISTINCT namespace FROM tk_pipelines", none);
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i)
      out.emplace_back(r.text(i, 0));
    return out;
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

  task_row load_task(std::int64_t id, bool lock) {
    pg_params a;
    a.add(id);
    auto r =
        lock ? db_.run(
            s_task_locked,
            std::string("SELECT ") + task_cols + " FROM tk_tasks t WHERE t.id = $1 FOR UPDATE", a)
             : db_.run(s_task_by_id,
                       std::string("SELECT ") + task_cols + " FROM tk_tasks t WHERE t.id = $1", a);
    if (r.rows() == 0)
      fail(TK_NOT_FOUND, "no task " + std::to_string(id));
    return read_task(r, 0, 0);
  }

  /// Writes every column of the changed steps in one statement.
  void save_steps(const std::vector<step_row>& steps) {
    if (steps.empty())
      return;
    std::string ids = "{", states = "{", attempts = "{", parents = "{", seqs = "{", due = "{",
                started = "{", finished = "{", results = "{", errors = "{", workers = "{";
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
    }
    pg_params a;
    for (auto* arr : {&ids, &states, &attempts, &parents, &seqs, &due, &started, &finished,
                      &results, &errors, &workers}) {
      *arr += '}';
      a.add(*arr);
    }
    db_.run(
        s_save_steps,
        "UPDATE tk_steps AS s SET state = v.state, attempts = v.attempts, "
        "pending_parents = v.parents, claim_seq = v.seq, due_at = v.due, "
        "started_at = v.started, finished_at = v.finished, result = v.result, "
        "last_error = v.error, claimed_by = v.worker "
        "FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[], $5::bigint[], "
        "$6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[]) "
        "AS v(id, state, attempts, parents, seq, due, started, finished, result, error, worker) "
        "WHERE s.id = v.id",
        a);
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
    db_.run(s_save_tasks,
            "UPDATE tk_tasks AS t SET state = v.state, updated_at = v.updated, "
            "completed_at = v.completed, steps_done = v.done "
            "FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::int[]) "
            "AS v(id, state, updated, completed, done) WHERE t.id = v.id",
            a);
  }

  /// A failed task's ready and waiting steps go back to pending (park_unstarted).
  void park(const std::vector<std::int64_t>& task_ids) {
    if (task_ids.empty())
      return;
    pg_params a;
    a.add(int_array(task_ids));
    db_.run(s_park,
            "UPDATE tk_steps SET state = 'pending' WHERE task_id = ANY($1::bigint[]) "
            "AND state IN ('ready', 'waiting_for_retry')",
            a);
  }

  void complete_in_transaction(const tk_step_result* results, std::size_t count, int* outcomes,
                               millis now, std::mt19937_64& rng, effects& fx) {
    std::vector<std::int64_t> ids;
    for (std::size_t i = 0; i < count; ++i)
      if (outcomes[i] == TK_OK)
        ids.push_back(results[i].step_id);
    if (ids.empty())
      return;
    const auto id_list = int_array(ids);
    // 1. Lock the tasks, in id order (the order every writer takes them in).
    pg_params a;
    a.add(id_list);
    auto trows = db_.run(s_complete_tasks,
                         std::string("SELECT ") + task_cols
                             + " FROM tk_tasks t WHERE t.id IN (SELECT task_id FROM tk_steps "
                               "WHERE id = ANY($1::bigint[])) ORDER BY t.id FOR UPDATE",
                         a);
    std::unordered_map<std::int64_t, std::size_t> task_at;
    std::vector<task_row> tasks;
    std::vector<task_state> tasks_before;
    std::vector<std::int64_t> task_ids;
    for (int i = 0; i < trows.rows(); ++i) {
      tasks.push_back(read_task(trows, i, 0));
      tasks_before.push_back(tasks.back().state);
      task_ids.push_back(tasks.back().id);
      task_at[tasks.back().id] = tasks.size() - 1;
    }
    // 2. Their steps being completed and their waiting children, locked
    //    (read after the task locks: nobody changes them while we hold those).
    pg_params b;
    b.add(int_array(task_ids)).add(id_list);
    auto srows = db_.run(s_complete_steps,
                         std::string("SELECT ") + step_cols
                             + " FROM tk_steps s WHERE s.task_id = ANY($1::bigint[]) AND "
                               "(s.id = ANY($2::bigint[]) OR s.state = 'pending') "
                               "ORDER BY s.id FOR UPDATE",
                         b);
    std::vector<step_row> steps;
    std::unordered_map<std::int64_t, std::size_t> step_at;
    std::map<std::pair<std::int64_t, int>, std::size_t> child_at;  // (task, index) -> position
    auto child_key = [](std::int64_t task, int index) { return std::make_pair(task, index); };
    steps.reserve(static_cast<std::size_t>(srows.rows()));
    for (int i = 0; i < srows.rows(); ++i) {
      steps.push_back(read_step(srows, i));
      step_at[steps.back().id] = steps.size() - 1;
    }
    std::vector<bool> dirty(steps.size(), false);
    std::vector<std::int64_t> parked;
    auto find_child = [&](std::int64_t task, int index) -> step_row* {
      if (child_at.empty())
        for (std::size_t k = 0; k < steps.size(); ++k)
          child_at[child_key(steps[k].task_id, steps[k].index)] = k;
      if (auto it = child_at.find(child_key(task, index)); it != child_at.end()) {
        dirty[it->second] = true;
        return &steps[it->second];
      }
      // Not pending, so not loaded above (a child that is already past
      // waiting): load it on its own.
      pg_params c;
      c.add(task).add(std::int64_t{index});
      auto r = db_.run(s_child,
                       std::string("SELECT ") + step_cols
                           + " FROM tk_steps s WHERE s.task_id = $1 AND s.idx = $2 FOR UPDATE",
                       c);
      if (r.rows() == 0)
        return nullptr;
      steps.push_back(read_step(r, 0));
      dirty.push_back(true);
      child_at[child_key(task, index)] = steps.size() - 1;
      step_at[steps.back().id] = steps.size() - 1;
      return &steps.back();
    };
    for (std::size_t i = 0; i < count; ++i) {
      if (outcomes[i] != TK_OK)
        continue;
      const auto& r = results[i];
      auto sit = step_at.find(r.step_id);
      if (sit == step_at.end()) {
        outcomes[i] = TK_NOT_FOUND;
        continue;
      }
      const auto pos = sit->second;
      auto& t = tasks[task_at.at(steps[pos].task_id)];
      outcomes[i] = check_claim(steps[pos], t, r.fencing_token);
      if (outcomes[i] != TK_OK)
        continue;
      dirty[pos] = true;
      if (r.kind == TK_RESULT_SUCCESS) {
        bool done = apply_success(steps[pos], t, r.result_json ? r.result_json : "null", now);
        if (done)
          continue;
        const auto task_id = steps[pos].task_id;
        const auto index = static_cast<std::size_t>(steps[pos].index);
        for (int c : t.pipeline->steps[index].children) {
          step_row* child = find_child(task_id, c);  // may grow `steps`: no references kept
          if (!child)
            fail(TK_STORE_ERROR, "step " + std::to_string(c) + " of task " + std::to_string(task_id)
                                     + " is missing");
          if (release_parent(*child, t, now))
            fx.work_ready = true;
        }
      } else {
        auto effect = apply_failure(steps[pos], t, r, now, rng);
        if (effect == failure_effect::retry_now)
          fx.work_ready = true;
        else if (effect == failure_effect::failed)
          parked.push_back(t.id);
      }
    }
    changed_steps_.clear();
    for (std::size_t k = 0; k < steps.size(); ++k)
      if (dirty[k])
        changed_steps_.push_back(std::move(steps[k]));
    save_steps(changed_steps_);
    save_tasks(tasks);
    park(parked);
    for (std::size_t k = 0; k < tasks.size(); ++k)
      fx.note(tasks[k], tasks_before[k]);
  }

  void claim_in_transaction(const claim_request& r, event_buffer& out, effects& fx) {
    const auto namespaces = r.namespaces->empty() ? all_namespaces() : *r.namespaces;
    if (namespaces.empty())
      return;
    const auto ns_list = text_array(namespaces);
    // Due retries become ready. SKIP LOCKED: rows another worker is
    // promoting are its business, and nobody waits on anybody.
    {
      pg_params a;
      a.add(ns_list).add(r.now);
      auto u = db_.run(s_promote,
                       "UPDATE tk_steps SET state = 'ready' WHERE id IN (SELECT id FROM tk_steps "
                       "WHERE namespace = ANY($1::text[]) AND state = 'waiting_for_retry' AND "
                       "due_at <= $2 FOR UPDATE SKIP LOCKED)",
                       a);
      if (u.affected() > 0)
        fx.work_ready = true;
    }
    // Expired leases are taken back: the step and its task locked together,
    // skipped if another worker holds either.
    {
      pg_params a;
      a.add(ns_list).add(r.now);
      auto rows = db_.run(s_expired,
                          std::string("SELECT ") + step_cols + ", " + task_cols
                              + " FROM tk_steps s JOIN tk_tasks t ON t.id = s.task_id"
                                " WHERE s.namespace = ANY($1::text[]) AND s.state = 'running' AND "
                                "s.due_at <= $2 ORDER BY s.id LIMIT 1000 FOR UPDATE SKIP LOCKED",
                          a);
      if (rows.rows() > 0) {
        std::vector<task_row> tasks;
        std::vector<task_state> before;
        std::unordered_map<std::int64_t, std::size_t> task_at;
        changed_steps_.clear();
        std::vector<std::int64_t> parked;
        for (int i = 0; i < rows.rows(); ++i) {
          auto s = read_step(rows, i);
          auto [it, fresh] = task_at.emplace(s.task_id, tasks.size());
          if (fresh) {
            tasks.push_back(read_task(rows, i, step_col_count));
            before.push_back(tasks.back().state);
          }
          auto& t = tasks[it->second];
          auto effect = expire_lease(s, t, r.now);
          if (effect == failure_effect::retry_now)
            fx.work_ready = true;
          else if (effect == failure_effect::failed)
            parked.push_back(t.id);
          changed_steps_.push_back(std::move(s));
        }
        save_steps(changed_steps_);
        save_tasks(tasks);
        park(parked);
        for (std::size_t k = 0; k < tasks.size(); ++k)
          fx.note(tasks[k], before[k]);
        if (rows.rows() == 1000)
          fx.work_ready = true;  // more to take back: the next call goes on
      }
    }
    // Candidates per namespace in claim order (each walks the claim index),
    // merged when there are several namespaces.
    struct candidate {
      step_row step;
      std::int64_t priority;
      std::size_t task;
    };
    std::vector<candidate> candidates;
    std::vector<task_row> tasks;
    std::unordered_map<std::int64_t, std::size_t> task_at;
    for (const auto& ns : namespaces) {
      pg_params a;
      a.add(ns).add(static_cast<std::int64_t>(r.max));
      auto rows = db_.run(s_claim,
                          std::string("SELECT ") + step_cols + ", " + task_cols
                              + ", s.priority FROM tk_steps s JOIN tk_tasks t ON t.id = s.task_id"
                                " WHERE s.namespace = $1 AND s.state = 'ready'"
                                " ORDER BY s.priority DESC, s.due_at, s.id LIMIT $2"
                                " FOR UPDATE OF s SKIP LOCKED",
                          a);
      for (int i = 0; i < rows.rows(); ++i) {
        auto s = read_step(rows, i);
        auto [it, fresh] = task_at.emplace(s.task_id, tasks.size());
        if (fresh)
          tasks.push_back(read_task(rows, i, step_col_count));
        candidates.push_back({std::move(s), rows.integer(i, step_col_count + 10), it->second});
      }
    }
    if (namespaces.size() > 1)
      std::sort(candidates.begin(), candidates.end(), [](const candidate& a, const candidate& b) {
        if (a.priority != b.priority)
          return a.priority > b.priority;
        if (a.step.due_at != b.step.due_at)
          return a.step.due_at < b.step.due_at;
        return a.step.id < b.step.id;
      });
    if (candidates.size() > r.max)
      candidates.resize(r.max);  // the rest stay locked until commit, unchanged
    if (candidates.empty())
      return;
    // Results of completed steps, for the candidates whose step has ancestors.
    std::vector<std::int64_t> need;
    for (const auto& c : candidates) {
      const auto& t = tasks[c.task];
      if (!t.pipeline->steps[static_cast<std::size_t>(c.step.index)].ancestors.empty())
        need.push_back(t.id);
    }
    std::unordered_map<std::int64_t, std::vector<std::string>> results;
    if (!need.empty()) {
      std::sort(need.begin(), need.end());
      need.erase(std::unique(need.begin(), need.end()), need.end());
      pg_params a;
      a.add(int_array(need));
      auto rows = db_.run(s_ancestors,
                          "SELECT task_id, idx, result FROM tk_steps WHERE task_id = "
                          "ANY($1::bigint[]) AND state = 'complete'",
                          a);
      for (int i = 0; i < rows.rows(); ++i) {
        auto task_id = rows.integer(i, 0);
        auto& v = results[task_id];
        if (v.empty())
          v.resize(tasks[task_at.at(task_id)].pipeline->steps.size());
        auto idx = static_cast<std::size_t>(rows.integer(i, 1));
        if (idx < v.size())
          v[idx].assign(rows.text(i, 2));
      }
    }
    changed_steps_.clear();
    std::vector<std::int64_t> started;
    static const std::string no_result;
    for (auto& c : candidates) {
      auto& s = c.step;
      auto& t = tasks[c.task];
      if (!task_active(t)) {  // a leftover of a task that ended: not to run
        park_unstarted(s);
        changed_steps_.push_back(s);
        continue;
      }
      if (t.state == task_state::pending)
        started.push_back(t.id);
      claim_step(s, t, r.now, r.lease_ms, r.worker);
      changed_steps_.push_back(s);
      auto rit = results.find(t.id);
      add_event(out, s, t, s.due_at, [&](int index) -> std::string_view {
        if (rit == results.end())
          return no_result;
        return rit->second[static_cast<std::size_t>(index)];
      });
    }
    save_steps(changed_steps_);
    if (!started.empty()) {
      // pending -> running. SKIP LOCKED: a task locked by someone else
      // (being cancelled) keeps its state; the cancel then ends it anyway.
      std::sort(started.begin(), started.end());
      started.erase(std::unique(started.begin(), started.end()), started.end());
      pg_params a;
      a.add(int_array(started)).add(r.now);
      db_.run(s_start_tasks,
              "UPDATE tk_tasks SET state = 'running', updated_at = $2 WHERE id IN (SELECT id "
              "FROM tk_tasks WHERE id = ANY($1::bigint[]) AND state = 'pending' FOR UPDATE "
              "SKIP LOCKED)",
              a);
    }
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
