#include "store/sqlite/sqlite_store.hpp"

#include <algorithm>
#include <unordered_map>

#include "abi/error.hpp"
#include "model/json_schema.hpp"
#include "model/transitions.hpp"
#include "store/sqlite/sqlite_connection.hpp"
#include "util/json.hpp"

namespace tasker::core {

namespace {

constexpr int schema_version = 3;

// Column lists shared by every query that loads a whole row; `prefix` names
// the table's alias in a join.
std::string columns(std::initializer_list<const char*> names, const char* prefix = "") {
  std::string out;
  for (const char* n : names) {
    if (!out.empty())
      out += ", ";
    out += prefix;
    out += n;
  }
  return out;
}
std::string step_columns(const char* prefix = "") {
  return columns(
      {"id",         "task_id",    "idx",        "state",      "attempts",    "pending_parents",
       "claim_seq",  "due_at",     "created_at", "started_at", "finished_at", "result",
       "last_error", "claimed_by", "wait_name",  "signal",     "signal_seq",  "resume",
       "tmpl",       "name",       "inputs"},
      prefix);
}
constexpr int step_column_count = 21;
std::string task_columns(const char* prefix = "") {
  return columns({"id", "pipeline_id", "state", "priority", "context", "idempotency_key",
                  "created_at", "updated_at", "completed_at", "steps_done", "steps_total"},
                 prefix);
}

class sqlite_store final : public store {
public:
  explicit sqlite_store(const sqlite_options& o) : db_(o) { create_schema(); }

  pipeline_ptr register_pipeline(std::shared_ptr<pipeline_def> p) override {
    sqlite_transaction tx{db_};
    auto& find = stmt(0, [&] {
      return std::string("SELECT id, definition FROM tk_pipelines WHERE namespace = ? AND name = ? "
                         "AND version = ?");
    });
    find.bind(1, p->namespace_name);
    find.bind(2, p->name);
    find.bind(3, p->version);
    if (find.step()) {
      auto id = find.get_int(0);
      bool same = find.get_text(1) == p->canonical_json;
      find.reset();
      if (!same)
        fail(TK_CONFLICT, "pipeline " + p->label()
                              + " is already registered with other steps; publish a new version");
      tx.commit();
      return pipeline_by_id(id);
    }
    auto& insert = stmt(1, [&] {
      return std::string(
          "INSERT INTO tk_pipelines (namespace, name, version, definition) VALUES (?, ?, ?, ?) "
          "RETURNING id");
    });
    insert.bind(1, p->namespace_name);
    insert.bind(2, p->name);
    insert.bind(3, p->version);
    insert.bind(4, p->canonical_json);
    if (!insert.step())
      fail(TK_STORE_ERROR, "inserting pipeline " + p->label() + " returned no id");
    p->id = insert.get_int(0);
    insert.reset();
    tx.commit();
    pipeline_ptr shared = std::move(p);
    pipelines_[shared->id] = shared;
    return shared;
  }

  create_outcome create_task(const task_request& r, millis now, effects& fx) override {
    sqlite_transaction tx{db_};
    auto out = create_in_transaction(r, now);
    tx.commit();
    fx.work_ready = true;
    return out;
  }

  void create_tasks(const task_request* r, std::size_t n, millis now, create_outcome* out,
                    effects& fx) override {
    sqlite_transaction tx{db_};
    for (std::size_t i = 0; i < n; ++i) {
      try {
        out[i] = create_in_transaction(r[i], now);
      } catch (const core_error& e) {
        fail(e.code(),
             "task " + std::to_string(i + 1) + " of " + std::to_string(n) + ": " + e.what());
      }
    }
    tx.commit();
    fx.work_ready = n > 0;
  }

  create_outcome create_in_transaction(const task_request& r, millis now) {
    auto& find = stmt(2, [&] {
      return std::string(
          "SELECT id FROM tk_pipelines WHERE namespace = ? AND name = ? AND version = ?");
    });
    find.bind(1, r.namespace_name);
    find.bind(2, r.name);
    find.bind(3, r.version);
    if (!find.step())
      fail(TK_NOT_FOUND, "no pipeline " + std::string(r.namespace_name) + "/" + std::string(r.name)
                             + "@" + std::string(r.version) + " is registered");
    auto p = pipeline_by_id(find.get_int(0));
    find.reset();
    check_task_context(*p, r.context);
    if (!r.idempotency_key.empty()) {
      auto& idem = stmt(3, [&] {
        return std::string("SELECT id, pipeline_id FROM tk_tasks WHERE idempotency_key = ?");
      });
      idem.bind(1, r.idempotency_key);
      if (idem.step()) {
        auto id = idem.get_int(0);
        auto pid = idem.get_int(1);
        idem.reset();
        if (pid != p->id)
          fail(TK_CONFLICT, "idempotency key \"" + std::string(r.idempotency_key)
                                + "\" already names task " + std::to_string(id) + " of pipeline "
                                + pipeline_by_id(pid)->label());
        return {id, false};
      }
    }
    auto& insert = stmt(4, [&] {
      return std::string("INSERT INTO tk_tasks (pipeline_id, namespace, state, priority, context, "
                         "idempotency_key, "
                         "created_at, updated_at, steps_done, steps_total) "
                         "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, 0, ?) RETURNING id");
    });
    task_row t;
    t.pipeline = p;
    auto rows = initial_rows(t, now);
    insert.bind(1, p->id);
    insert.bind(2, p->namespace_name);
    insert.bind(3, std::int64_t{r.priority});
    insert.bind(4, r.context);
    insert.bind_opt(5, r.idempotency_key);
    insert.bind(6, now);
    insert.bind(7, now);
    insert.bind(8, std::int64_t{t.steps_total});
    if (!insert.step())
      fail(TK_STORE_ERROR, "inserting a task returned no id");
    auto task_id = insert.get_int(0);
    insert.reset();
    auto& step = stmt(5, [&] {
      return std::string(
          "INSERT INTO tk_steps (task_id, idx, namespace, priority, state, attempts, "
          "pending_parents, "
          "claim_seq, due_at, created_at) VALUES (?, ?, ?, ?, ?, 0, ?, 0, ?, ?)");
    });
    for (const auto& row : rows) {
      step.reset();
      step.bind(1, task_id);
      step.bind(2, std::int64_t{row.slot});
      step.bind(3, p->namespace_name);
      step.bind(4, std::int64_t{r.priority});
      step.bind(5, std::string_view{to_string(row.state)});
      step.bind(6, std::int64_t{row.pending_parents});
      step.bind(7, now);
      step.bind(8, now);
      step.step();
    }
    return {task_id, true};
  }

  std::string task_status(std::int64_t task_id) override {
    sqlite_transaction tx{db_, sqlite_transaction::read};
    auto t = load_task(task_id);
    auto steps = load_steps(task_id);
    tx.commit();
    return render_status(t, steps.data(), steps.size(), key_);
  }

  task_state state_of(std::int64_t task_id) override {
    auto& q = stmt(31, [&] { return std::string("SELECT state FROM tk_tasks WHERE id = ?"); });
    q.bind(1, task_id);
    if (!q.step())
      fail(TK_NOT_FOUND, "no task " + std::to_string(task_id));
    task_state st{};
    if (!parse_task_state(q.get_text(0), st))
      fail(TK_STORE_ERROR, "unknown task state in the database");
    q.reset();
    return st;
  }

  void cancel_task(std::int64_t task_id, millis now) override {
    sqlite_transaction tx{db_};
    auto t = load_task(task_id);
    if (!task_active(t))
      fail(TK_CONFLICT,
           "task " + std::to_string(task_id) + " has already ended (" + to_string(t.state) + ")");
    const auto task_before = t.state;
    auto steps = load_steps(task_id);
    auto before = steps;
    cancel(t, steps.data(), steps.size(), now);
    save_changed(steps, before);
    save_task(t, task_before);
    tx.commit();
  }

  void retry_task(std::int64_t task_id, millis now, effects& fx) override {
    sqlite_transaction tx{db_};
    auto t = load_task(task_id);
    check_retryable(t);
    const auto task_before = t.state;
    auto steps = load_steps(task_id);
    auto before = steps;
    const bool made_ready = retry(t, steps.data(), steps.size(), now) > 0;
    save_changed(steps, before);
    save_task(t, task_before);
    tx.commit();
    fx.work_ready = made_ready;
  }

  std::string list_tasks(const list_request& r) override {
    if (!r.state.empty()) {
      task_state ignored;
      if (!parse_task_state(r.state, ignored))
        fail(TK_VALIDATION, "unknown task state \"" + r.state + "\"");
    }
    std::string sql = "SELECT " + task_columns() + " FROM tk_tasks WHERE id > ?";
    if (!r.state.empty())
      sql += " AND state = ?";
    if (!r.namespace_name.empty())
      sql += " AND namespace = ?";
    sql += " ORDER BY id LIMIT ?";
    sqlite_transaction tx{db_, sqlite_transaction::read};
    auto& q = stmt(26 + (r.state.empty() ? 0 : 1) + (r.namespace_name.empty() ? 0 : 2),
                   [&] { return sql; });
    int i = 1;
    q.bind(i++, r.after);
    if (!r.state.empty())
      q.bind(i++, r.state);
    if (!r.namespace_name.empty())
      q.bind(i++, r.namespace_name);
    q.bind(i, std::int64_t{r.limit} + 1);
    std::vector<task_row> rows;
    while (q.step())
      rows.push_back(read_task(q));
    tx.commit();
    const bool more = rows.size() > static_cast<std::size_t>(r.limit);
    if (more)
      rows.pop_back();
    std::string out = "{\"tasks\":[";
    for (std::size_t k = 0; k < rows.size(); ++k) {
      if (k)
        out += ',';
      render_list_entry(out, rows[k]);
    }
    out += "],\"next\":";
    out += more ? std::to_string(rows.back().id) : "null";
    out += '}';
    return out;
  }

  void claim(const claim_request& r, event_buffer& out, std::mt19937_64& rng,
             effects& fx) override {
    sqlite_transaction tx{db_};
    claim_in_transaction(r, out, rng, fx);
    tx.commit();
  }

  void complete(const tk_step_result* results, std::size_t count, int* outcomes, millis now,
                std::mt19937_64& rng, effects& fx) override {
    sqlite_transaction tx{db_};
    complete_in_transaction(results, count, outcomes, now, rng, fx);
    tx.commit();
  }

  // One transaction, one commit, for a worker's whole cycle.
  void complete_and_claim(const tk_step_result* results, std::size_t count, int* outcomes,
                          const claim_request& r, event_buffer& out, std::mt19937_64& rng,
                          effects& fx) override {
    sqlite_transaction tx{db_};
    complete_in_transaction(results, count, outcomes, r.now, rng, fx);
    claim_in_transaction(r, out, rng, fx);
    tx.commit();
  }

  void claim_in_transaction(const claim_request& r, event_buffer& out, std::mt19937_64& rng,
                            effects& fx) {
    std::vector<std::string> all;  // the worker's own list is used as it is
    const auto& namespaces = r.namespaces->empty() ? (all = all_namespaces()) : *r.namespaces;
    for (const auto& ns : namespaces)
      process_due(ns, r.now, rng, fx);
    // Candidates per namespace in claim order, merged: each namespace's
    // query walks the claim index in order, so no sort of the backlog.
    candidates_.clear();
    task_cache_.clear();
    auto& q = stmt(7, [&] {
      return std::string("SELECT " + step_columns("s.") + ", " + task_columns("t.")
                         + " FROM tk_steps s JOIN tk_tasks t ON t.id = s.task_id"
                           " WHERE s.namespace = ? AND s.state = 'ready'"
                           " ORDER BY s.priority DESC, s.due_at, s.id LIMIT ?");
    });
    for (const auto& ns : namespaces) {
      q.reset();
      q.bind(1, ns);
      q.bind(2, static_cast<std::int64_t>(r.max));
      while (q.step()) {
        candidates_.push_back({read_step(q), q.get_int(step_column_count + 3)});
        auto task_id = candidates_.back().step.task_id;
        if (task_cache_.find(task_id) == task_cache_.end())
          task_cache_.emplace(task_id, cached{read_task(q, step_column_count), false});
      }
    }
    if (namespaces.size() > 1)
      std::sort(candidates_.begin(), candidates_.end(), [](const candidate& a, const candidate& b) {
        if (a.priority != b.priority)
          return a.priority > b.priority;
        if (a.step.due_at != b.step.due_at)
          return a.step.due_at < b.step.due_at;
        return a.step.id < b.step.id;
      });
    if (candidates_.size() > r.max)
      candidates_.resize(r.max);
    for (auto& c : candidates_) {
      auto& s = c.step;
      auto& t = cached_task(s.task_id);
      if (!task_active(t))
        continue;  // cannot happen: a failed or cancelled task keeps no ready step
      if (t.state == task_state::pending)
        mark_dirty(s.task_id);
      claim_step(s, t, r.now, r.lease_ms, r.worker);
      save_step(s);
      const auto& d = t.pipeline->steps[static_cast<std::size_t>(s.index)];
      if (d.dynamic_dependencies) {
        const auto rows = load_steps(s.task_id);
        add_event(out, s, t, s.due_at, key_, [&](event_buffer& o) {
          append_dependencies(o, *t.pipeline, d, rows.data(), rows.size());
        });
        continue;
      }
      ancestor_results_.assign(t.pipeline->steps.size(), std::string{});
      if (!d.ancestors.empty()) {
        // Pipeline steps only (slot = idx below their count): a batch's
        // instances, after them, are no ancestors here.
        auto& a = stmt(8, [&] {
          return std::string("SELECT idx, result FROM tk_steps WHERE task_id = ? AND idx < ? "
                             "AND state = 'complete'");
        });
        a.bind(1, s.task_id);
        a.bind(2, static_cast<std::int64_t>(t.pipeline->steps.size()));
        while (a.step()) {
          auto idx = static_cast<std::size_t>(a.get_int(0));
          if (idx < ancestor_results_.size())
            ancestor_results_[idx].assign(a.get_text(1));
        }
      }
      add_event(out, s, t, s.due_at, key_, [&](event_buffer& o) {
        append_dependencies(o, *t.pipeline, d, [&](int index) -> std::string_view {
          return ancestor_results_[static_cast<std::size_t>(index)];
        });
      });
    }
    for (auto& [id, t] : task_cache_)
      if (t.dirty)
        save_task(t.row, t.loaded_state);
  }

  void complete_in_transaction(const tk_step_result* results, std::size_t count, int* outcomes,
                               millis now, std::mt19937_64& rng, effects& fx) {
    task_cache_.clear();
    for (std::size_t i = 0; i < count; ++i) {
      if (outcomes[i] != TK_OK)
        continue;
      const auto& r = results[i];
      step_row s;
      if (!find_step_and_task(r.step_id, s)) {
        outcomes[i] = TK_NOT_FOUND;
        continue;
      }
      auto& t = cached_task(s.task_id);
      outcomes[i] = check_claim(s, t, r.fencing_token);
      if (outcomes[i] != TK_OK)
        continue;
      mark_dirty(s.task_id);
      if (r.kind == TK_RESULT_SUCCESS) {
        bool done = apply_success(s, t, r.result_json ? r.result_json : "null", now);
        save_step(s);
        if (done)
          continue;
        if (creates_steps(t, s)) {
          expand_task(t, s.id, now, fx);
          continue;
        }
        release_children(s, t, now, fx);
      } else if (r.kind == TK_RESULT_CHECKPOINT) {
        if (apply_checkpoint(s, t, r.result_json, now))
          fx.work_ready = true;
        save_step(s);
      } else if (r.kind == TK_RESULT_WAIT) {
        if (apply_wait(s, t, r.wait_signal, r.wait_timeout_ms, now))
          fx.work_ready = true;
        save_step(s);
      } else {
        auto effect = apply_failure(s, t, r, now, rng);
        save_step(s);
        after_failure(s, t, effect, now, fx);
      }
    }
    for (auto& [id, t] : task_cache_)
      if (t.dirty) {
        save_task(t.row, t.loaded_state);
        fx.note(t.row, t.loaded_state);
      }
  }

  void heartbeat(const std::int64_t* step_ids, const std::int64_t* tokens, std::size_t count,
                 millis lease_until, int* outcomes) override {
    sqlite_transaction tx{db_};
    task_cache_.clear();
    for (std::size_t i = 0; i < count; ++i) {
      step_row s;
      if (!find_step(step_ids[i], s)) {
        outcomes[i] = TK_NOT_FOUND;
        continue;
      }
      int c = check_claim(s, cached_task(s.task_id), tokens[i]);
      outcomes[i] = c == TK_OK ? TK_OK : TK_STALE;
      if (c == TK_OK && lease_until > s.due_at) {
        auto& u =
            stmt(9, [&] { return std::string("UPDATE tk_steps SET due_at = ? WHERE id = ?"); });
        u.bind(1, lease_until);
        u.bind(2, s.id);
        u.step();
      }
    }
    tx.commit();
  }

  void signal(std::int64_t step_id, std::int64_t seq, std::string_view payload, millis now,
              effects& fx) override {
    sqlite_transaction tx{db_};
    task_cache_.clear();
    step_row s;
    if (!find_step_and_task(step_id, s))
      fail(TK_NOT_FOUND, "no wait has this token");
    if (apply_signal(s, cached_task(s.task_id), seq, payload, now))
      fx.work_ready = true;
    save_step(s);
    tx.commit();
  }

  millis next_due(const std::vector<std::string>& namespaces, millis now) override {
    sqlite_transaction tx{db_, sqlite_transaction::read};
    std::vector<std::string> all;
    const auto& ns = namespaces.empty() ? (all = all_namespaces()) : namespaces;
    auto& ready = stmt(10, [&] {
      return std::string("SELECT 1 FROM tk_steps WHERE namespace = ? AND state = 'ready' LIMIT 1");
    });
    for (const auto& n : ns) {
      ready.reset();
      ready.bind(1, n);
      if (ready.step()) {
        ready.reset();
        tx.commit();
        return now;
      }
    }
    millis due = -1;
    static const char* const timed[] = {
        "SELECT MIN(due_at) FROM tk_steps WHERE namespace = ? AND state = 'waiting_for_retry'",
        "SELECT MIN(due_at) FROM tk_steps WHERE namespace = ? AND state = 'running'",
        "SELECT MIN(due_at) FROM tk_steps WHERE namespace = ? AND state = 'waiting'"};
    static const std::size_t slots[] = {11, 30, 32};
    for (std::size_t k = 0; k < 3; ++k) {
      auto& q = stmt(slots[k], [&] { return std::string(timed[k]); });
      for (const auto& n : ns) {
        q.reset();
        q.bind(1, n);
        if (q.step() && !q.is_null(0)) {
          auto d = q.get_int(0);
          if (due < 0 || d < due)
            due = d;
        }
      }
      q.reset();
    }
    tx.commit();
    return due;
  }

  void inject_fault(std::int64_t n) override { db_.fail_after(n); }

private:
  struct candidate {
    step_row step;
    std::int64_t priority;
  };
  struct cached {
    task_row row;
    bool dirty = false;
    task_state loaded_state = row.state;  ///< to skip the state index when unchanged
  };

  sqlite_connection db_;

  // Each call site owns a statement slot (0-35; 26-29 are list_tasks's
  // filter variants): its SQL is built only the first time, so a hot call
  // neither allocates nor hashes its SQL text.
  template <class MakeSql>
  sqlite_statement& stmt(std::size_t slot, MakeSql&& make_sql) {
    if (auto* ready = db_.cached(slot)) {
      ready->reset();
      return *ready;
    }
    return db_.prepare(slot, make_sql());
  }

  std::unordered_map<std::int64_t, pipeline_ptr> pipelines_;  // immutable once stored
  std::unordered_map<std::int64_t, cached> task_cache_;       // per call
  std::vector<candidate> candidates_;
  std::vector<std::string> ancestor_results_;

  // Creates the schema, or migrates an older one, in one transaction; then
  // reads the wait-token secret.
  void create_schema() {
    sqlite_transaction tx{db_};
    db_.exec("CREATE TABLE IF NOT EXISTS tk_schema (version INTEGER NOT NULL)");
    auto& v = stmt(12, [&] { return std::string("SELECT version FROM tk_schema"); });
    std::int64_t found = 0;
    if (v.step())
      found = v.get_int(0);
    v.reset();
    if (found > schema_version)
      fail(TK_STORE_ERROR, "the database has schema version " + std::to_string(found)
                               + "; this core knows versions up to "
                               + std::to_string(schema_version));
    if (found < 1)
      create_version_1();
    if (found < 2)
      migrate_to_2();
    if (found < 3)
      migrate_to_3();
    if (found < schema_version)
      db_.exec("UPDATE tk_schema SET version = " + std::to_string(schema_version));
    auto& k = stmt(
        33, [&] { return std::string("SELECT value FROM tk_meta WHERE key = 'wait_secret'"); });
    if (!k.step() || !wait_key::from_hex(k.get_text(0), key_))
      fail(TK_STORE_ERROR, "the database's wait-token secret is missing or malformed");
    k.reset();
    tx.commit();
  }

  // Version 2: durable waits (TK_RESULT_WAIT, tk_signal).
  void migrate_to_2() {
    for (const char* column :
         {"wait_name TEXT", "signal TEXT", "signal_seq BIGINT NOT NULL DEFAULT 0",
          "resume INTEGER NOT NULL DEFAULT 0"})
      db_.exec(std::string("ALTER TABLE tk_steps ADD COLUMN ") + column);
    db_.exec("CREATE INDEX tk_steps_wait ON tk_steps (namespace, due_at) WHERE state = 'waiting'");
    db_.exec("CREATE TABLE tk_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    db_.exec("INSERT INTO tk_meta (key, value) VALUES ('wait_secret', '"
             + wait_key::random().to_hex() + "')");
  }

  // Version 3: dynamic steps (decisions, batches). A row's idx is its slot;
  // a batch worker instance names the step it runs in tmpl, has a name of
  // its own and inputs (its cursor). Tasks count the steps they created.
  void migrate_to_3() {
    for (const char* column : {"tmpl INTEGER", "name TEXT", "inputs TEXT"})
      db_.exec(std::string("ALTER TABLE tk_steps ADD COLUMN ") + column);
    db_.exec("ALTER TABLE tk_tasks ADD COLUMN steps_total INTEGER NOT NULL DEFAULT 0");
    db_.exec("UPDATE tk_tasks SET steps_total = "
             "(SELECT count(*) FROM tk_steps s WHERE s.task_id = tk_tasks.id)");
  }

  void create_version_1() {
    const std::string id = "id INTEGER PRIMARY KEY";
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
    // Partial indexes: only the rows a claim or a timer looks for are in
    // them, so the many updates of other rows (running -> complete, a child
    // counting its parents) do not touch them.
    // Claim order within a namespace; due_at means "ready since" for ready steps.
    db_.exec("CREATE INDEX tk_steps_claim ON tk_steps (namespace, priority DESC, due_at, id) "
             "WHERE state = 'ready'");
    // Due retries and lease ends. (SQLite uses a partial index only when the
    // query names its condition literally: one index per state.)
    db_.exec("CREATE INDEX tk_steps_retry ON tk_steps (namespace, due_at) "
             "WHERE state = 'waiting_for_retry'");
    db_.exec("CREATE INDEX tk_steps_lease ON tk_steps (namespace, due_at) WHERE state = 'running'");
    db_.exec("INSERT INTO tk_schema (version) VALUES (1)");
  }

  pipeline_ptr pipeline_by_id(std::int64_t id) {
    if (auto it = pipelines_.find(id); it != pipelines_.end())
      return it->second;
    // Registered by another process: load and parse it once.
    auto& q =
        stmt(13, [&] { return std::string("SELECT definition FROM tk_pipelines WHERE id = ?"); });
    q.bind(1, id);
    if (!q.step())
      fail(TK_STORE_ERROR, "pipeline " + std::to_string(id) + " is missing");
    auto p = parse_pipeline(q.get_text(0));
    q.reset();
    p->id = id;
    pipeline_ptr shared = std::move(p);
    pipelines_[id] = shared;
    return shared;
  }

  std::vector<std::string> all_namespaces() {
    std::vector<std::string> out;
    auto& q = stmt(14, [&] { return std::string("SELECT DISTINCT namespace FROM tk_pipelines"); });
    while (q.step())
      out.emplace_back(q.get_text(0));
    return out;
  }

  static step_state state_of(std::string_view s) {
    step_state out;
    if (!parse_step_state(s, out))
      fail(TK_STORE_ERROR, "unknown step state \"" + std::string(s) + "\" in the database");
    return out;
  }

  static step_row read_step(const sqlite_statement& q) {
    step_row s;
    s.id = q.get_int(0);
    s.task_id = q.get_int(1);
    s.index = static_cast<std::int32_t>(q.get_int(2));
    s.state = state_of(q.get_text(3));
    s.attempts = static_cast<std::int32_t>(q.get_int(4));
    s.pending_parents = static_cast<std::int32_t>(q.get_int(5));
    s.claim_seq = q.get_int(6);
    s.due_at = q.get_int(7);
    s.created_at = q.get_int(8);
    s.started_at = q.get_time(9);
    s.finished_at = q.get_time(10);
    s.result.assign(q.get_text(11));
    s.last_error.assign(q.get_text(12));
    s.claimed_by.assign(q.get_text(13));
    s.wait_name.assign(q.get_text(14));
    s.signal.assign(q.get_text(15));
    s.signal_seq = q.get_int(16);
    s.resume = q.get_int(17) != 0;
    s.slot = static_cast<std::int32_t>(s.index);  // idx is the row's slot
    if (!q.is_null(18))
      s.index = static_cast<std::int32_t>(q.get_int(18));
    s.name.assign(q.get_text(19));
    s.inputs.assign(q.get_text(20));
    return s;
  }

  // Reads task columns starting at column `at` (after the step's in a join).
  task_row read_task(const sqlite_statement& q, int at = 0) {
    task_row t;
    t.id = q.get_int(at + 0);
    auto pipeline_id = q.get_int(at + 1);
    task_state st{};
    if (!parse_task_state(q.get_text(at + 2), st))
      fail(TK_STORE_ERROR, "unknown task state in the database");
    t.state = st;
    t.priority = static_cast<std::int32_t>(q.get_int(at + 3));
    t.context.assign(q.get_text(at + 4));
    t.idempotency_key.assign(q.get_text(at + 5));
    t.created_at = q.get_int(at + 6);
    t.updated_at = q.get_int(at + 7);
    t.completed_at = q.get_time(at + 8);
    t.steps_done = static_cast<std::int32_t>(q.get_int(at + 9));
    t.steps_total = static_cast<std::int32_t>(q.get_int(at + 10));
    t.pipeline = pipeline_by_id(pipeline_id);  // may prepare another statement: read columns first
    return t;
  }

  // Loads a step and (unless cached for this call) its task in one query.
  bool find_step_and_task(std::int64_t id, step_row& out) {
    auto& q = stmt(15, [&] {
      return std::string("SELECT " + step_columns("s.") + ", " + task_columns("t.")
                         + " FROM tk_steps s JOIN tk_tasks t ON t.id = s.task_id WHERE s.id = ?");
    });
    q.bind(1, id);
    if (!q.step())
      return false;
    out = read_step(q);
    if (task_cache_.find(out.task_id) == task_cache_.end()) {
      auto t = read_task(q, step_column_count);
      task_cache_.emplace(out.task_id, cached{std::move(t), false});
    }
    q.reset();
    return true;
  }

  task_row load_task(std::int64_t id) {
    auto& q = stmt(16, [&] {
      return std::string("SELECT " + task_columns() + " FROM tk_tasks WHERE id = ?");
    });
    q.bind(1, id);
    if (!q.step())
      fail(TK_NOT_FOUND, "no task " + std::to_string(id));
    auto t = read_task(q);
    q.reset();
    return t;
  }

  task_row& cached_task(std::int64_t id) {
    auto it = task_cache_.find(id);
    if (it == task_cache_.end())
      it = task_cache_.emplace(id, cached{load_task(id), false}).first;
    return it->second.row;
  }

  void mark_dirty(std::int64_t id) { task_cache_[id].dirty = true; }

  std::vector<step_row> load_steps(std::int64_t task_id) {
    auto& q = stmt(17, [&] {
      return std::string("SELECT " + step_columns()
                         + " FROM tk_steps WHERE task_id = ? ORDER BY idx");
    });
    q.bind(1, task_id);
    std::vector<step_row> out;
    while (q.step())
      out.push_back(read_step(q));
    return out;
  }

  bool find_step(std::int64_t id, step_row& out) {
    auto& q = stmt(18, [&] {
      return std::string("SELECT " + step_columns() + " FROM tk_steps WHERE id = ?");
    });
    q.bind(1, id);
    if (!q.step())
      return false;
    out = read_step(q);
    q.reset();
    return true;
  }

  bool find_child(std::int64_t task_id, int index, step_row& out) {
    auto& q = stmt(19, [&] {
      return std::string("SELECT " + step_columns()
                         + " FROM tk_steps WHERE task_id = ? AND idx = ?");
    });
    q.bind(1, task_id);
    q.bind(2, std::int64_t{index});
    if (!q.step())
      return false;
    out = read_step(q);
    q.reset();
    return true;
  }

  void save_step(const step_row& s) {
    auto& u = stmt(20, [&] {
      return std::string(
          "UPDATE tk_steps SET state = ?, attempts = ?, pending_parents = ?, claim_seq = ?, "
          "due_at = ?, started_at = ?, finished_at = ?, result = ?, last_error = ?, claimed_by = "
          "?, "
          "wait_name = ?, signal = ?, signal_seq = ?, resume = ?, inputs = ? WHERE id = ?");
    });
    u.bind(1, std::string_view{to_string(s.state)});
    u.bind(2, std::int64_t{s.attempts});
    u.bind(3, std::int64_t{s.pending_parents});
    u.bind(4, s.claim_seq);
    u.bind(5, s.due_at);
    u.bind_time(6, s.started_at);
    u.bind_time(7, s.finished_at);
    u.bind_opt(8, s.result);
    u.bind_opt(9, s.last_error);
    u.bind_opt(10, s.claimed_by);
    u.bind_opt(11, s.wait_name);
    u.bind_opt(12, s.signal);
    u.bind(13, s.signal_seq);
    u.bind(14, std::int64_t{s.resume ? 1 : 0});
    u.bind_opt(15, s.inputs);
    u.bind(16, s.id);
    u.step();
  }

  void save_task(const task_row& t, task_state before) {
    if (t.state == before) {  // leaves the state index alone
      auto& u = stmt(21, [&] {
        return std::string(
            "UPDATE tk_tasks SET updated_at = ?, steps_done = ?, steps_total = ? WHERE id = ?");
      });
      u.bind(1, t.updated_at);
      u.bind(2, std::int64_t{t.steps_done});
      u.bind(3, std::int64_t{t.steps_total});
      u.bind(4, t.id);
      u.step();
      return;
    }
    auto& u = stmt(22, [&] {
      return std::string(
          "UPDATE tk_tasks SET state = ?, updated_at = ?, completed_at = ?, steps_done = ?, "
          "steps_total = ? WHERE id = ?");
    });
    u.bind(1, std::string_view{to_string(t.state)});
    u.bind(2, t.updated_at);
    u.bind_time(3, t.completed_at);
    u.bind(4, std::int64_t{t.steps_done});
    u.bind(5, std::int64_t{t.steps_total});
    u.bind(6, t.id);
    u.step();
  }

  // What a failed attempt of `s` asks of the other rows.
  void after_failure(const step_row& s, const task_row& t, failure_effect effect, millis now,
                     effects& fx) {
    if (effect == failure_effect::retry_now)
      fx.work_ready = true;
    else if (effect == failure_effect::failed)
      park_task(s.task_id);
    else if (effect == failure_effect::tolerated && task_active(t))
      release_children(s, t, now, fx);
  }

  // A step is done (complete, or failed but tolerated): its children count it.
  void release_children(const step_row& s, const task_row& t, millis now, effects& fx) {
    for (int c : t.pipeline->steps[static_cast<std::size_t>(s.index)].children) {
      step_row child;
      if (!find_child(s.task_id, c, child))
        fail(TK_STORE_ERROR,
             "step " + std::to_string(c) + " of task " + std::to_string(s.task_id) + " is missing");
      if (release_parent(child, t, now))
        fx.work_ready = true;
      save_step(child);
    }
  }

  // A decision or batchable step succeeded (saved): applies its outcome to
  // the whole task (transitions.hpp: expand).
  void expand_task(task_row& t, std::int64_t step_id, millis now, effects& fx) {
    auto rows = load_steps(t.id);
    const auto before = rows;
    std::size_t done = 0;
    while (done < rows.size() && rows[done].id != step_id)
      ++done;
    if (done == rows.size())
      fail(TK_STORE_ERROR, "step " + std::to_string(step_id) + " vanished");
    const auto x = expand(t, rows, done, now);
    for (std::size_t i = before.size(); i < rows.size(); ++i)
      insert_step(t, rows[i]);
    save_changed(rows, before);
    if (x.refused)
      park_task(t.id);
    if (x.made_ready > 0)
      fx.work_ready = true;
  }

  // Saves the rows a whole-task transition (cancel, retry, expand) changed;
  // `before` holds them as loaded, rows after its end are new (not saved here).
  void save_changed(const std::vector<step_row>& rows, const std::vector<step_row>& before) {
    for (std::size_t i = 0; i < before.size(); ++i) {
      const auto& a = rows[i];
      const auto& b = before[i];
      if (a.state != b.state || a.pending_parents != b.pending_parents || a.attempts != b.attempts
          || a.finished_at != b.finished_at || a.last_error != b.last_error)
        save_step(a);
    }
  }

  // A batch worker instance (expand).
  void insert_step(const task_row& t, const step_row& s) {
    auto& q = stmt(35, [&] {
      return std::string(
          "INSERT INTO tk_steps (task_id, idx, tmpl, namespace, priority, state, attempts, "
          "pending_parents, claim_seq, due_at, created_at, started_at, finished_at, result, "
          "name, inputs) VALUES (?, ?, ?, ?, ?, ?, 0, ?, 0, ?, ?, ?, ?, ?, ?, ?)");
    });
    q.bind(1, t.id);
    q.bind(2, std::int64_t{s.slot});
    q.bind(3, std::int64_t{s.index});
    q.bind(4, t.pipeline->namespace_name);
    q.bind(5, std::int64_t{t.priority});
    q.bind(6, std::string_view{to_string(s.state)});
    q.bind(7, std::int64_t{s.pending_parents});
    q.bind(8, s.due_at);
    q.bind(9, s.created_at);
    q.bind_time(10, s.started_at);
    q.bind_time(11, s.finished_at);
    q.bind_opt(12, s.result);
    q.bind(13, s.name);
    q.bind_opt(14, s.inputs);
    q.step();
  }

  // A failed task's ready and waiting steps go back to pending (park_unstarted).
  void park_task(std::int64_t task_id) {
    auto& u = stmt(23, [&] {
      return std::string("UPDATE tk_steps SET state = 'pending' WHERE task_id = ? "
                         "AND state IN ('ready', 'waiting_for_retry', 'waiting')");
    });
    u.bind(1, task_id);
    u.step();
  }

  // Due retries become ready; expired leases are taken back; waits that
  // timed out fail.
  void process_due(const std::string& ns, millis now, std::mt19937_64& rng, effects& fx) {
    auto& retry = stmt(24, [&] {
      return std::string("UPDATE tk_steps SET state = 'ready' WHERE namespace = ? "
                         "AND state = 'waiting_for_retry' AND due_at <= ?");
    });
    retry.bind(1, ns);
    retry.bind(2, now);
    retry.step();
    if (retry.changes() > 0)
      fx.work_ready = true;
    auto& expired = stmt(25, [&] {
      return std::string("SELECT " + step_columns()
                         + " FROM tk_steps WHERE namespace = ? AND state = 'running' "
                           "AND due_at <= ?");
    });
    expired.bind(1, ns);
    expired.bind(2, now);
    std::vector<step_row> rows;
    while (expired.step())
      rows.push_back(read_step(expired));
    auto& timed_out = stmt(34, [&] {
      return std::string("SELECT " + step_columns()
                         + " FROM tk_steps WHERE namespace = ? AND state = 'waiting' "
                           "AND due_at <= ?");
    });
    timed_out.bind(1, ns);
    timed_out.bind(2, now);
    const auto leases = rows.size();
    while (timed_out.step())
      rows.push_back(read_step(timed_out));
    for (std::size_t k = 0; k < rows.size(); ++k) {
      auto& s = rows[k];
      task_cache_.clear();
      auto& t = cached_task(s.task_id);
      const auto task_before = t.state;
      auto effect = k < leases ? expire_lease(s, t, now) : expire_wait(s, t, now, rng);
      save_step(s);
      after_failure(s, t, effect, now, fx);
      save_task(t, task_before);
      fx.note(t, task_before);
    }
  }
};

}  // namespace

std::unique_ptr<store> make_sqlite_store(const sqlite_options& options) {
  return std::make_unique<sqlite_store>(options);
}

}  // namespace tasker::core
