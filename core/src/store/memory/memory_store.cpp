#include "store/memory/memory_store.hpp"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <tuple>
#include <unordered_map>

#include "abi/error.hpp"
#include "model/json_schema.hpp"
#include "model/transitions.hpp"
#include "util/json.hpp"

namespace tasker::core {

namespace {

// Heap entry of a ready step: higher priority first, then ready longest,
// then lowest id. Entries are validated when popped (lazy deletion).
struct ready_entry {
  std::int32_t priority;
  millis ready_at;
  std::int64_t step_id;
  bool operator<(const ready_entry& o) const {  // "less" = served later
    if (priority != o.priority)
      return priority < o.priority;
    if (ready_at != o.ready_at)
      return ready_at > o.ready_at;
    return step_id > o.step_id;
  }
};

// Heap entry of a timed event (retry due, lease end), valid while the step
// still has the same claim and due time.
struct timed_entry {
  millis due;
  std::int64_t step_id;
  std::int64_t claim_seq;
  bool operator>(const timed_entry& o) const {
    return std::tie(due, step_id) > std::tie(o.due, o.step_id);
  }
};

using ready_heap = std::priority_queue<ready_entry>;
using timed_heap = std::priority_queue<timed_entry, std::vector<timed_entry>, std::greater<>>;

class memory_store final : public store {
public:
  memory_store() { key_ = wait_key::random(); }

  pipeline_ptr register_pipeline(std::shared_ptr<pipeline_def> p) override {
    auto key = std::make_tuple(p->namespace_name, p->name, p->version);
    if (auto it = pipelines_.find(key); it != pipelines_.end()) {
      if (it->second->canonical_json != p->canonical_json)
        fail(TK_CONFLICT, "pipeline " + p->label()
                              + " is already registered with other steps; publish a new version");
      return it->second;
    }
    p->id = static_cast<std::int64_t>(pipelines_.size()) + 1;
    pipeline_ptr shared = std::move(p);
    pipelines_.emplace(std::move(key), shared);
    return shared;
  }

  create_outcome create_task(const task_request& r, millis now, effects& fx) override {
    return create(r, now, fx, true);
  }

  create_outcome create(const task_request& r, millis now, effects& fx, bool check_context) {
    auto it = pipelines_.find(std::make_tuple(std::string(r.namespace_name), std::string(r.name),
                                              std::string(r.version)));
    if (it == pipelines_.end())
      fail(TK_NOT_FOUND, "no pipeline " + std::string(r.namespace_name) + "/" + std::string(r.name)
                             + "@" + std::string(r.version) + " is registered");
    const auto& p = it->second;
    if (check_context)
      check_task_context(*p, r.context);
    if (!r.idempotency_key.empty()) {
      auto found = idempotency_.find(std::string(r.idempotency_key));
      if (found != idempotency_.end()) {
        const auto& existing = tasks_[static_cast<std::size_t>(found->second - 1)];
        if (existing.pipeline != p)
          fail(TK_CONFLICT, "idempotency key \"" + std::string(r.idempotency_key)
                                + "\" already names task " + std::to_string(found->second)
                                + " of pipeline " + existing.pipeline->label());
        return {found->second, false};
      }
    }
    task_row t;
    t.id = static_cast<std::int64_t>(tasks_.size()) + 1;
    t.pipeline = p;
    t.priority = r.priority;
    t.context.assign(r.context.data(), r.context.size());
    t.idempotency_key.assign(r.idempotency_key.data(), r.idempotency_key.size());
    t.created_at = t.updated_at = now;
    auto& q = namespaces_[p->namespace_name];
    task_queues_.push_back(&q);
    task_rows_.emplace_back();
    for (auto& s : initial_rows(t, now)) {
      s.id = static_cast<std::int64_t>(steps_.size()) + 1;
      if (s.state == step_state::ready)
        q.ready.push({t.priority, now, s.id});
      task_rows_.back().push_back(s.id);
      steps_.push_back(std::move(s));
    }
    if (!r.idempotency_key.empty())
      idempotency_.emplace(t.idempotency_key, t.id);
    tasks_.push_back(std::move(t));
    fx.work_ready = true;
    return {tasks_.back().id, true};
  }

  void create_tasks(const task_request* r, std::size_t n, millis now, create_outcome* out,
                    effects& fx) override {
    // Check everything first: once creating starts, nothing can fail.
    std::unordered_map<std::string, pipeline_ptr> keys_in_batch;
    for (std::size_t i = 0; i < n; ++i) {
      const auto where = "task " + std::to_string(i + 1) + " of " + std::to_string(n) + ": ";
      auto it = pipelines_.find(std::make_tuple(std::string(r[i].namespace_name),
                                                std::string(r[i].name), std::string(r[i].version)));
      if (it == pipelines_.end())
        fail(TK_NOT_FOUND, where + "no pipeline " + std::string(r[i].namespace_name) + "/"
                               + std::string(r[i].name) + "@" + std::string(r[i].version)
                               + " is registered");
      try {
        check_task_context(*it->second, r[i].context);
      } catch (const core_error& e) {
        fail(e.code(), where + e.what());
      }
      if (r[i].idempotency_key.empty())
        continue;
      const std::string key{r[i].idempotency_key};
      pipeline_ptr owner;
      if (auto found = idempotency_.find(key); found != idempotency_.end())
        owner = tasks_[static_cast<std::size_t>(found->second - 1)].pipeline;
      else if (auto earlier = keys_in_batch.find(key); earlier != keys_in_batch.end())
        owner = earlier->second;
      if (owner && owner != it->second)
        fail(TK_CONFLICT, where + "idempotency key \"" + key
                              + "\" already names a task of pipeline " + owner->label());
      keys_in_batch.emplace(key, it->second);
    }
    for (std::size_t i = 0; i < n; ++i)
      out[i] = create(r[i], now, fx, false);  // checked above
  }

  std::string task_status(std::int64_t task_id) override {
    const auto& t = task(task_id);
    const auto rows = rows_of(task_id);
    return render_status(t, rows.data(), rows.size(), key_);
  }

  task_state state_of(std::int64_t task_id) override { return task(task_id).state; }

  void cancel_task(std::int64_t task_id, millis now) override {
    auto& t = task(task_id);
    if (!task_active(t))
      fail(TK_CONFLICT,
           "task " + std::to_string(task_id) + " has already ended (" + to_string(t.state) + ")");
    auto rows = rows_of(task_id);
    cancel(t, rows.data(), rows.size(), now);
    store_rows(rows);
  }

  void retry_task(std::int64_t task_id, millis now, effects& fx) override {
    auto& t = task(task_id);
    check_retryable(t);
    auto rows = rows_of(task_id);
    retry(t, rows.data(), rows.size(), now);
    store_rows(rows, &fx);
  }

  std::string list_tasks(const list_request& r) override {
    task_state wanted{};
    const bool by_state = !r.state.empty();
    if (by_state && !parse_task_state(r.state, wanted))
      fail(TK_VALIDATION, "unknown task state \"" + r.state + "\"");
    std::string out = "{\"tasks\":[";
    int n = 0;
    std::int64_t last = 0;
    bool more = false;
    for (auto i = static_cast<std::size_t>(std::max<std::int64_t>(r.after, 0)); i < tasks_.size();
         ++i) {
      const auto& t = tasks_[i];
      if (by_state && t.state != wanted)
        continue;
      if (!r.namespace_name.empty() && t.pipeline->namespace_name != r.namespace_name)
        continue;
      if (n == r.limit) {
        more = true;
        break;
      }
      if (n++)
        out += ',';
      render_list_entry(out, t);
      last = t.id;
    }
    out += "],\"next\":";
    out += more ? std::to_string(last) : "null";
    out += '}';
    return out;
  }

  void claim(const claim_request& r, event_buffer& out, std::mt19937_64& rng,
             effects& fx) override {
    select(*r.namespaces, selected_);
    for (auto* q : selected_)
      process_due(*q, r.now, rng, fx);
    while (out.size() < r.max) {
      ready_heap* best = nullptr;
      for (auto* q : selected_) {
        drop_invalid(q->ready);
        if (!q->ready.empty() && (best == nullptr || best->top() < q->ready.top()))
          best = &q->ready;
      }
      if (best == nullptr)
        break;
      auto& s = step(best->top().step_id);
      best->pop();
      auto& t = tasks_[static_cast<std::size_t>(s.task_id - 1)];
      claim_step(s, t, r.now, r.lease_ms, r.worker);
      queues_of(s.task_id).leases.push({s.due_at, s.id, s.claim_seq});
      const auto& d = t.pipeline->steps[static_cast<std::size_t>(s.index)];
      const auto& ids = task_rows_[static_cast<std::size_t>(s.task_id - 1)];
      if (d.dynamic_dependencies) {
        const auto rows = rows_of(s.task_id);
        add_event(out, s, t, s.due_at, key_, [&](event_buffer& o) {
          append_dependencies(o, *t.pipeline, d, rows.data(), rows.size());
        });
      } else {
        add_event(out, s, t, s.due_at, key_, [&](event_buffer& o) {
          append_dependencies(o, *t.pipeline, d, [&](int index) -> std::string_view {
            return step(ids[static_cast<std::size_t>(index)]).result;
          });
        });
      }
    }
  }

  void complete(const tk_step_result* results, std::size_t count, int* outcomes, millis now,
                std::mt19937_64& rng, effects& fx) override {
    for (std::size_t i = 0; i < count; ++i) {
      if (outcomes[i] != TK_OK)
        continue;
      const auto& r = results[i];
      if (!known_step(r.step_id)) {
        outcomes[i] = TK_NOT_FOUND;
        continue;
      }
      auto& s = step(r.step_id);
      auto& t = tasks_[static_cast<std::size_t>(s.task_id - 1)];
      outcomes[i] = check_claim(s, t, r.fencing_token);
      if (outcomes[i] != TK_OK)
        continue;
      const auto before = t.state;
      if (r.kind == TK_RESULT_SUCCESS) {
        if (apply_success(s, t, r.result_json ? r.result_json : "null", now)) {
          fx.note(t, before);
          continue;
        }
        if (creates_steps(t, s)) {
          auto rows = rows_of(s.task_id);
          const auto done = static_cast<std::size_t>(
              std::find_if(rows.begin(), rows.end(),
                           [&](const step_row& row) { return row.id == s.id; })
              - rows.begin());
          const bool refused = expand(t, rows, done, now).refused;
          store_rows(rows, &fx);
          if (refused)
            park_task(t.id);
          fx.note(t, before);
          continue;
        }
        release_children(s, t, now, fx);
      } else if (r.kind == TK_RESULT_CHECKPOINT) {
        if (apply_checkpoint(s, t, r.result_json, now)) {
          queues_of(s.task_id).ready.push({t.priority, now, s.id});
          fx.work_ready = true;
        }
      } else if (r.kind == TK_RESULT_WAIT) {
        if (apply_wait(s, t, r.wait_signal, r.wait_timeout_ms, now)) {
          queues_of(s.task_id).ready.push({t.priority, now, s.id});
          fx.work_ready = true;
        } else {
          queues_of(s.task_id).waits.push({s.due_at, s.id, s.claim_seq});
        }
      } else {
        after_failure(queues_of(s.task_id), s, t, apply_failure(s, t, r, now, rng), before, now,
                      fx);
      }
    }
  }

  void heartbeat(const std::int64_t* step_ids, const std::int64_t* tokens, std::size_t count,
                 millis lease_until, int* outcomes) override {
    for (std::size_t i = 0; i < count; ++i) {
      if (!known_step(step_ids[i])) {
        outcomes[i] = TK_NOT_FOUND;
        continue;
      }
      auto& s = step(step_ids[i]);
      int c = check_claim(s, tasks_[static_cast<std::size_t>(s.task_id - 1)], tokens[i]);
      outcomes[i] = c == TK_OK ? TK_OK : TK_STALE;
      if (c == TK_OK && lease_until > s.due_at) {
        s.due_at = lease_until;
        queues_of(s.task_id).leases.push({s.due_at, s.id, s.claim_seq});
      }
    }
  }

  void signal(std::int64_t step_id, std::int64_t seq, std::string_view payload, millis now,
              effects& fx) override {
    if (!known_step(step_id))
      fail(TK_NOT_FOUND, "no wait has this token");
    auto& s = step(step_id);
    auto& t = tasks_[static_cast<std::size_t>(s.task_id - 1)];
    if (apply_signal(s, t, seq, payload, now)) {
      queues_of(s.task_id).ready.push({t.priority, now, s.id});
      fx.work_ready = true;
    }
  }

  millis next_due(const std::vector<std::string>& names, millis now) override {
    select(names, selected_);
    millis due = -1;
    for (auto* q : selected_) {
      drop_invalid(q->ready);
      if (!q->ready.empty())
        return now;
      drop_stale(q->retries, step_state::waiting_for_retry);
      drop_stale(q->leases, step_state::running);
      drop_stale(q->waits, step_state::waiting);
      for (auto* h : {&q->retries, &q->leases, &q->waits})
        if (!h->empty() && (due < 0 || h->top().due < due))
          due = h->top().due;
    }
    return due;
  }

private:
  std::map<std::tuple<std::string, std::string, std::string>, pipeline_ptr> pipelines_;
  std::vector<task_row> tasks_;                       // id = index + 1
  std::vector<std::vector<std::int64_t>> task_rows_;  // per task: its steps' ids, by slot
  std::vector<step_row> steps_;                       // id = index + 1
  std::unordered_map<std::string, std::int64_t> idempotency_;
  // Per namespace: ready steps, waiting retries, running leases. Map nodes
  // are stable, so each task keeps a pointer to its namespace's queues.
  struct queues {
    ready_heap ready;
    timed_heap retries;
    timed_heap leases;
    timed_heap waits;
  };
  std::unordered_map<std::string, queues> namespaces_;
  std::vector<queues*> task_queues_;  // per task

  queues& queues_of(std::int64_t task_id) {
    return *task_queues_[static_cast<std::size_t>(task_id - 1)];
  }

  // The queues of the requested namespaces (all when none is named).
  void select(const std::vector<std::string>& names, std::vector<queues*>& out) {
    out.clear();
    if (names.empty()) {
      for (auto& [_, q] : namespaces_)
        out.push_back(&q);
      return;
    }
    for (const auto& n : names)
      if (auto it = namespaces_.find(n); it != namespaces_.end())
        out.push_back(&it->second);
  }
  std::vector<queues*> selected_;

  bool known_step(std::int64_t id) const {
    return id >= 1 && static_cast<std::size_t>(id) <= steps_.size();
  }
  step_row& step(std::int64_t id) { return steps_[static_cast<std::size_t>(id - 1)]; }
  /// Copies of a task's rows, by slot (for the whole-task transitions).
  std::vector<step_row> rows_of(std::int64_t task_id) {
    std::vector<step_row> rows;
    for (auto id : task_rows_[static_cast<std::size_t>(task_id - 1)])
      rows.push_back(step(id));
    return rows;
  }

  /// Writes back rows_of's copies: new rows (id 0) get ids, steps that
  /// became ready are queued (and noted in `fx` when given).
  void store_rows(std::vector<step_row>& rows, effects* fx = nullptr) {
    for (auto& r : rows) {
      const auto& t = tasks_[static_cast<std::size_t>(r.task_id - 1)];
      bool was_ready = false;
      if (r.id == 0) {
        r.id = static_cast<std::int64_t>(steps_.size()) + 1;
        task_rows_[static_cast<std::size_t>(r.task_id - 1)].push_back(r.id);
        steps_.push_back(r);
      } else {
        was_ready = step(r.id).state == step_state::ready;
        step(r.id) = r;
      }
      if (r.state == step_state::ready && !was_ready && task_active(t)) {
        queues_of(r.task_id).ready.push({t.priority, r.due_at, r.id});
        if (fx)
          fx->work_ready = true;
      }
    }
  }

  /// A step is done (complete, or failed but tolerated): its children may be ready.
  void release_children(const step_row& s, const task_row& t, millis now, effects& fx) {
    const auto& ids = task_rows_[static_cast<std::size_t>(s.task_id - 1)];
    for (int c : t.pipeline->steps[static_cast<std::size_t>(s.index)].children) {
      auto& child = step(ids[static_cast<std::size_t>(c)]);
      if (release_parent(child, t, now)) {
        queues_of(s.task_id).ready.push({t.priority, now, child.id});
        fx.work_ready = true;
      }
    }
  }
  task_row& task(std::int64_t id) {
    if (id < 1 || static_cast<std::size_t>(id) > tasks_.size())
      fail(TK_NOT_FOUND, "no task " + std::to_string(id));
    return tasks_[static_cast<std::size_t>(id - 1)];
  }

  void park_task(std::int64_t task_id) {
    for (auto id : task_rows_[static_cast<std::size_t>(task_id - 1)])
      park_unstarted(step(id));
  }

  // Pops heap tops that are no longer claimable (task ended or cancelled).
  void drop_invalid(ready_heap& h) {
    while (!h.empty()) {
      const auto& s = step(h.top().step_id);
      if (s.state == step_state::ready
          && task_active(tasks_[static_cast<std::size_t>(s.task_id - 1)]))
        return;
      h.pop();
    }
  }

  void drop_stale(timed_heap& h, step_state expected) {
    while (!h.empty()) {
      const auto& e = h.top();
      const auto& s = step(e.step_id);
      if (s.state == expected && s.claim_seq == e.claim_seq && s.due_at == e.due)
        return;
      h.pop();
    }
  }

  // Queues what a failed attempt (a failure, a lapsed lease, a wait that
  // timed out) did to step `s` of task `t` (`before`: the task's state).
  void after_failure(queues& q, const step_row& s, const task_row& t, failure_effect effect,
                     task_state before, millis now, effects& fx) {
    switch (effect) {
      case failure_effect::tolerated:
        if (task_active(t))
          release_children(s, t, now, fx);
        fx.note(t, before);
        break;
      case failure_effect::retry_now:
        q.ready.push({t.priority, now, s.id});
        fx.work_ready = true;
        break;
      case failure_effect::retry_later: q.retries.push({s.due_at, s.id, s.claim_seq}); break;
      case failure_effect::failed:
        park_task(s.task_id);
        fx.note(t, before);
        break;
    }
  }

  // Due retries become ready; expired leases are taken back; waits that
  // timed out fail.
  void process_due(queues& q, millis now, std::mt19937_64& rng, effects& fx) {
    while (true) {
      drop_stale(q.retries, step_state::waiting_for_retry);
      if (q.retries.empty() || q.retries.top().due > now)
        break;
      auto& s = step(q.retries.top().step_id);
      q.retries.pop();
      retry_due(s);
      q.ready.push({tasks_[static_cast<std::size_t>(s.task_id - 1)].priority, s.due_at, s.id});
      fx.work_ready = true;
    }
    while (true) {
      drop_stale(q.leases, step_state::running);
      if (q.leases.empty() || q.leases.top().due > now)
        break;
      auto& s = step(q.leases.top().step_id);
      q.leases.pop();
      auto& t = tasks_[static_cast<std::size_t>(s.task_id - 1)];
      const auto before = t.state;
      after_failure(q, s, t, expire_lease(s, t, now), before, now, fx);
    }
    while (true) {
      drop_stale(q.waits, step_state::waiting);
      if (q.waits.empty() || q.waits.top().due > now)
        break;
      auto& s = step(q.waits.top().step_id);
      q.waits.pop();
      auto& t = tasks_[static_cast<std::size_t>(s.task_id - 1)];
      const auto before = t.state;
      after_failure(q, s, t, expire_wait(s, t, now, rng), before, now, fx);
    }
  }
};

}  // namespace

std::unique_ptr<store> make_memory_store() {
  return std::make_unique<memory_store>();
}

}  // namespace tasker::core
