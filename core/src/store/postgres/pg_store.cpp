// The PostgreSQL store: registration, task operations, the caches of
// pipelines and namespaces, row reads and writes, notifications. A worker's
// calls are in claims.cpp.
#include "store/postgres/pg_store.hpp"

#include <algorithm>
#include <utility>

#include "abi/error.hpp"
#include "model/json_schema.hpp"
#include "model/transitions.hpp"
#include "store/encodings.hpp"
#include "store/postgres/migrations.hpp"
#include "store/postgres/queries.hpp"

namespace tasker::core {

pg_store::pg_store(const pg_options& o)
  : options_(o), db_(o.conninfo, o.schema), ready_channel_(o.schema + ".ready"),
    done_channel_(o.schema + ".done") {
  migrate(db_, options_.schema, key_);
}

void pg_store::watch(std::function<void(const effects&)> fn) {
  listener_.reset();
  if (fn)
    listener_ = std::make_unique<pg_listener>(options_.conninfo, options_.schema, db_.backend_pid(),
                                              std::move(fn),
                                              [this](std::string_view ns) { return serves(ns); });
}

void pg_store::interest(bool work_ready, bool finished) {
  if (listener_)
    listener_->interest(work_ready, finished);
}

pipeline_ptr pg_store::register_pipeline(std::shared_ptr<pipeline_def> p) {
  next_due_fresh_ = false;  // this call may change it
  ready_ns_.clear();
  if (static_cast<std::int64_t>(p->steps.size()) > max_steps_per_task)
    fail(TK_INVALID_ARGUMENT, "pipeline " + p->label() + " has " + std::to_string(p->steps.size())
                                  + " steps; the PostgreSQL store allows at most 1,048,576");
  return retrying([&] {
    pg_transaction tx{db_};
    pg_params a;
    a.add(p->namespace_name).add(p->name).add(p->version).add(p->canonical_json);
    const auto ins = db_.queue(s_pipeline_insert, sql_pipeline_insert, std::move(a));
    pg_params f;
    f.add(p->namespace_name).add(p->name).add(p->version);
    const auto fnd = db_.queue(s_pipeline_find, sql_pipeline_find, std::move(f));
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

create_outcome pg_store::create_task(const task_request& r, millis now, effects& fx) {
  create_outcome out;
  create_tasks(&r, 1, now, &out, fx);
  return out;
}

// One round trip for the whole batch: BEGIN, one statement per task, the
// NOTIFY and COMMIT. A taken idempotency key shows as no row back.
void pg_store::create_tasks(const task_request* r, std::size_t n, millis now, create_outcome* out,
                            effects& fx) {
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
        check_task_context(*pipelines[i], r[i].context);
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
          .add(initial_rows_of(p).parents)
          .add(initial_rows_of(p).states)
          .add(std::int64_t{p.initial_steps});
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
          fail(TK_STORE_ERROR, "a task with idempotency key \"" + std::string(r[i].idempotency_key)
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

std::string pg_store::task_status(std::int64_t task_id) {
  pg_transaction tx{db_, true};  // one snapshot for the task and its steps
  pg_params a;
  a.add(task_id);
  const auto [ti, si] =
      db_.queue_two(s_task_by_id, sql_task_by_id, s_steps_of_task, sql_steps_of_task, a);
  std::vector<step_row> steps;
  auto t = task_and_steps(tx.commit(), ti, si, task_id, steps);
  return render_status(t, steps.data(), steps.size(), key_);
}

task_state pg_store::state_of(std::int64_t task_id) {
  pg_params a;
  a.add(task_id);
  auto r = db_.run(s_state_of, sql_state_of, std::move(a));
  if (r.rows() == 0)
    fail(TK_NOT_FOUND, "no task " + std::to_string(task_id));
  task_state st{};
  if (!parse_task_state(r.text(0, 0), st))
    fail(TK_STORE_ERROR, "unknown task state in the database");
  return st;
}

void pg_store::cancel_task(std::int64_t task_id, millis now) {
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
void pg_store::retry_task(std::int64_t task_id, millis now, effects& fx) {
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

std::string pg_store::list_tasks(const list_request& r) {
  if (!r.state.empty()) {
    task_state ignored;
    if (!parse_task_state(r.state, ignored))
      fail(TK_VALIDATION, "unknown task state \"" + r.state + "\"");
  }
  const std::size_t v = (r.state.empty() ? 0 : 1) + (r.namespace_name.empty() ? 0 : 2);
  pg_params a;
  a.add(r.after);
  if (!r.state.empty())
    a.add(r.state);
  if (!r.namespace_name.empty())
    a.add(r.namespace_name);
  a.add(std::int64_t{r.limit} + 1);
  auto rows = db_.run(s_list_0 + v, sql_list_tasks(v), std::move(a));
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

void pg_store::signal(std::int64_t step_id, std::int64_t seq, std::string_view payload, millis now,
                      effects& fx) {
  next_due_fresh_ = false;  // this call may change it
  retrying([&] {
    ready_ns_.clear();
    fx = effects{};
    pg_transaction tx{db_};
    pg_params a;
    a.add(step_id).add(seq);
    const auto [ti, si] =
        db_.queue_two(s_signal_task, sql_signal_task, s_signal_step, sql_signal_step, a);
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

millis pg_store::next_due(const std::vector<std::string>& namespaces, millis now) {
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

bool pg_store::serves(std::string_view ns) const {
  std::lock_guard<std::mutex> g{served_mu_};
  return serve_all_ || std::find(served_.begin(), served_.end(), ns) != served_.end();
}

void pg_store::note_served(const std::vector<std::string>& namespaces) {
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

const pg_store::initial_arrays& pg_store::initial_rows_of(const pipeline_def& p) {
  auto& arrays = initial_[p.id];
  if (arrays.parents.empty()) {
    task_row t;
    t.pipeline = pipelines_.at(p.id);
    std::vector<std::int64_t> counts;
    std::vector<std::string> states;
    for (const auto& s : initial_rows(t, 0)) {
      counts.push_back(s.pending_parents);
      states.emplace_back(to_string(s.state));
    }
    arrays.parents = int_array(counts);
    arrays.states = text_array(states);
  }
  return arrays;
}

/// Queues notifications, which PostgreSQL sends when the transaction commits.
void pg_store::notify(const effects& fx) {
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
    append_finished(payload, id, st);
  }
  flush();
}

void pg_store::known_namespace(const std::string& ns) {
  if (std::find(namespaces_.begin(), namespaces_.end(), ns) == namespaces_.end())
    namespaces_.push_back(ns);
}

/// Namespaces of all registered pipelines: read again at most once a
/// second, so a pipeline another process registers is served within one.
const std::vector<std::string>& pg_store::all_namespaces() {
  const auto now = std::chrono::steady_clock::now();
  if (now - namespaces_at_ < std::chrono::seconds(1))
    return namespaces_;
  auto r = db_.run(s_namespaces, sql_namespaces, {});
  namespaces_.clear();
  for (int i = 0; i < r.rows(); ++i)
    namespaces_.emplace_back(r.text(i, 0));
  namespaces_at_ = now;
  return namespaces_;
}

pipeline_ptr pg_store::pipeline_by_id(std::int64_t id) {
  if (auto it = pipelines_.find(id); it != pipelines_.end())
    return it->second;
  pg_params a;
  a.add(id);
  auto r = db_.run(s_pipeline_by_id, sql_pipeline_by_id, std::move(a));
  if (r.rows() == 0)
    fail(TK_STORE_ERROR, "pipeline " + std::to_string(id) + " is missing");
  auto p = parse_pipeline(r.text(0, 0));
  p->id = id;
  pipeline_ptr shared = std::move(p);
  pipelines_[id] = shared;
  return shared;
}

std::int64_t pg_store::pipeline_id(const task_request& r) {
  std::string key;
  key.append(r.namespace_name).append("\n").append(r.name).append("\n").append(r.version);
  if (auto it = pipeline_ids_.find(key); it != pipeline_ids_.end())
    return it->second;
  pg_params a;
  a.add(r.namespace_name).add(r.name).add(r.version);
  auto found = db_.run(s_pipeline_id, sql_pipeline_id, std::move(a));
  if (found.rows() == 0)
    fail(TK_NOT_FOUND, "no pipeline " + std::string(r.namespace_name) + "/" + std::string(r.name)
                           + "@" + std::string(r.version) + " is registered");
  auto id = found.integer(0, 0);
  pipeline_ids_.emplace(std::move(key), id);  // registrations never change
  return id;
}

/// Locks a task row, then its steps by id, in one round trip (the lock
/// order every writer follows); TK_NOT_FOUND for an unknown id.
task_row pg_store::lock_task_and_steps(std::int64_t task_id, std::vector<step_row>& steps) {
  pg_params a;
  a.add(task_id);
  const auto [ti, si] = db_.queue_two(s_task_locked, sql_task_locked, s_steps_of_task_locked,
                                      sql_steps_of_task_locked, a);
  return task_and_steps(db_.send(), ti, si, task_id, steps);
}

/// The task of result `ti` (TK_NOT_FOUND if none) and its steps, result `si`.
task_row pg_store::task_and_steps(const std::vector<pg_result>& r, std::size_t ti, std::size_t si,
                                  std::int64_t task_id, std::vector<step_row>& steps) {
  if (r[ti].rows() == 0)
    fail(TK_NOT_FOUND, "no task " + std::to_string(task_id));
  steps.clear();
  for (int i = 0; i < r[si].rows(); ++i)
    steps.push_back(read_step(r[si], i));
  return read_task(r[ti], 0, 0);
}

task_row pg_store::read_task(const pg_result& r, int row, int at) {
  task_row t = read_task_columns(r, row, at);
  t.pipeline = pipeline_by_id(r.integer(row, at + 1));
  return t;
}

/// Queues one statement writing every column of the changed steps.
void pg_store::save_steps(const std::vector<step_row>& steps) {
  if (steps.empty())
    return;
  db_.queue(s_save_steps, sql_save_steps, save_steps_params(steps));
}

void pg_store::save_tasks(const std::vector<task_row>& tasks) {
  if (tasks.empty())
    return;
  db_.queue(s_save_tasks, sql_save_tasks, save_tasks_params(tasks));
}

std::unique_ptr<store> make_pg_store(const pg_options& options) {
  check_schema_name(options.schema);
  return std::make_unique<pg_store>(options);
}

}  // namespace tasker::core
