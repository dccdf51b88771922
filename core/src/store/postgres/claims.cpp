// The PostgreSQL store's worker calls: claim, complete (with its hand-offs
// to the claim that follows), heartbeat, and the take-back of lapsed leases
// and ended waits.
#include "store/postgres/pg_store.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include "abi/error.hpp"
#include "model/transitions.hpp"
#include "store/encodings.hpp"
#include "store/postgres/queries.hpp"

namespace tasker::core {

void pg_store::claim(const claim_request& r, event_buffer& out, std::mt19937_64& rng, effects& fx) {
  next_due_fresh_ = false;  // this call may change it
  ready_ns_.clear();
  retrying([&] {
    out.clear();
    fx = effects{};
    pg_transaction tx{db_, false, options_.async_worker_commits};
    claim_in_transaction(r, out, rng, fx, tx);
  });
}

void pg_store::complete(const tk_step_result* results, std::size_t count, int* outcomes, millis now,
                        std::mt19937_64& rng, effects& fx) {
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
void pg_store::complete_and_claim(const tk_step_result* results, std::size_t count, int* outcomes,
                                  const claim_request& r, event_buffer& out, std::mt19937_64& rng,
                                  effects& fx) {
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

void pg_store::heartbeat(const std::int64_t* step_ids, const std::int64_t* tokens,
                         std::size_t count, millis lease_until, int* outcomes) {
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

/// Queues: a failed task's ready and waiting steps go back to pending.
void pg_store::park(const std::vector<std::int64_t>& task_ids) {
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
void pg_store::complete_in_transaction(const tk_step_result* results, std::size_t count,
                                       int* outcomes, millis now, std::mt19937_64& rng, effects& fx,
                                       std::size_t handoff_max) {
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
    const pipeline_def* p = it == pipeline_of_.end() ? nullptr : it->second.pipeline;
    const auto index =
        it == pipeline_of_.end() ? std::size_t{0} : static_cast<std::size_t>(it->second.index);
    if (it != pipeline_of_.end())
      pipeline_of_.erase(it);
    // A success releases children; so may a failure of a batch worker
    // instance whose failures are tolerated.
    const bool known = p && index < p->steps.size();
    if (results[i].kind == TK_RESULT_WAIT || results[i].kind == TK_RESULT_CHECKPOINT
        || (results[i].kind == TK_RESULT_FAILURE && !(known && p->steps[index].tolerates_failure)))
      continue;
    if (known) {
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
  // (task, slot) -> position; children are pipeline steps, whose slot is their index.
  std::map<std::pair<std::int64_t, int>, std::size_t> child_at;
  steps.reserve(static_cast<std::size_t>(srows.rows() + prows.rows()));
  for (const pg_result* rows : {&srows, &prows})
    for (int i = 0; i < rows->rows(); ++i) {
      if (rows == &prows && step_at.count(rows->integer(i, 0)))
        continue;  // read already: a child of two steps, or a late result for a step
                   // now pending again (locked above)
      steps.push_back(read_step(*rows, i));
      step_at[steps.back().id] = steps.size() - 1;
      child_at[{steps.back().task_id, steps.back().slot}] = steps.size() - 1;
    }
  std::vector<bool> dirty(steps.size(), false);
  std::vector<std::int64_t> parked;
  std::vector<std::pair<const task_row*, step_row>> inserted;  // batch worker instances
  std::size_t made_ready = 0;                                  // steps this call made claimable
  std::vector<const std::string*> made_ready_ns;
  auto find_child = [&](std::int64_t task, int index) -> step_row* {
    if (auto it = child_at.find({task, index}); it != child_at.end()) {
      if (it->second >= dirty.size())
        dirty.resize(steps.size(), false);
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
    dirty.resize(steps.size(), false);
    dirty.back() = true;
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
    // Its children count one parent less (may grow `steps`: no references kept).
    auto release_children = [&](std::size_t at) {
      const auto task_id = steps[at].task_id;
      const auto index = static_cast<std::size_t>(steps[at].index);
      for (int c : t.pipeline->steps[index].children) {
        step_row* child = find_child(task_id, c);
        if (!child)
          fail(TK_STORE_ERROR,
               "step " + std::to_string(c) + " of task " + std::to_string(task_id) + " is missing");
        if (release_parent(*child, t, now)) {
          ++made_ready;
          made_ready_ns.push_back(&t.pipeline->namespace_name);
        }
      }
    };
    if (res.kind == TK_RESULT_SUCCESS) {
      bool done = apply_success(steps[pos], t, res.result_json ? res.result_json : "null", now);
      if (done)
        continue;
      if (creates_steps(t, steps[pos])) {
        dirty.resize(steps.size(), false);
        const auto x = expand_task(t, res.step_id, steps, dirty, step_at, inserted, now);
        for (const auto& s : steps)  // rows loaded there may be children later in this call
          child_at.emplace(std::make_pair(s.task_id, s.slot), step_at.at(s.id));
        if (x.refused)
          parked.push_back(t.id);
        made_ready += x.made_ready;
        if (x.made_ready > 0)
          made_ready_ns.push_back(&t.pipeline->namespace_name);
        continue;
      }
      release_children(pos);
    } else if (res.kind == TK_RESULT_CHECKPOINT) {
      if (apply_checkpoint(steps[pos], t, res.result_json, now)) {
        ++made_ready;
        made_ready_ns.push_back(&t.pipeline->namespace_name);
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
      } else if (effect == failure_effect::failed) {
        parked.push_back(t.id);
      } else if (effect == failure_effect::tolerated && task_active(t)) {
        release_children(pos);
      }
    }
  }
  dirty.resize(steps.size(), false);
  insert_steps(inserted);  // first: saved rows may be their children
  std::vector<step_row> changed;
  for (std::size_t k = 0; k < steps.size(); ++k) {
    if (!dirty[k])
      continue;
    // A step resumed as the same attempt (a checkpoint, a signalled wait)
    // is saved as it is: the claim statement counts the attempt from the
    // saved row, and a checkpoint lives in the row's inputs.
    if (steps[k].state == step_state::ready && !steps[k].resume && handoffs_.size() < handoff_max) {
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
void pg_store::claim_in_transaction(const claim_request& r, event_buffer& out, std::mt19937_64& rng,
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
      got.push_back({&rows, i, rows.integer(i, claim_prio_column), read_step(rows, i)});
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
    pipeline_of_[c.step.id] = {t.pipeline.get(), c.step.index};
    const auto& d = t.pipeline->steps[static_cast<std::size_t>(c.step.index)];
    if (d.dynamic_dependencies) {  // from all the task's rows (rare: below a decision or batch)
      pg_params a;
      a.add(t.id);
      auto all = db_.run(s_steps_of_task, sql_steps_of_task, std::move(a));
      std::vector<step_row> rows;
      for (int k = 0; k < all.rows(); ++k)
        rows.push_back(read_step(all, k));
      add_event(out, c.step, t, c.step.due_at, key_, [&](event_buffer& o) {
        append_dependencies(o, *t.pipeline, d, rows.data(), rows.size());
      });
      continue;
    }
    const auto done = c.rows->text(c.row, claim_done_column);
    add_event(out, c.step, t, c.step.due_at, key_, [&](event_buffer& o) {
      append_dependencies(o, *t.pipeline, d,
                          [&](int index) { return ancestor_result(done, index); });
    });
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

/// Expired leases are taken back (ready again, or failed for good) and
/// waits that timed out fail, in the current transaction (one round trip);
/// their writes are queued.
void pg_store::take_back_expired(const std::string& ns_list, millis now, std::mt19937_64& rng,
                                 effects& fx) {
  pg_params a;
  a.add(ns_list).add(now);
  const auto [li, wi] = db_.queue_two(s_expired, sql_expired, s_wait_expired, sql_wait_expired, a);
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
    } else if (effect == failure_effect::failed) {
      parked.push_back(t.id);
    } else if (effect == failure_effect::tolerated && task_active(t)) {
      // A batch worker instance that counts as done: its children count it.
      for (int c : t.pipeline->steps[static_cast<std::size_t>(s.index)].children) {
        const auto id = step_id_of(t.id, c);
        auto at = std::find_if(changed.begin(), changed.end(),
                               [&](const step_row& x) { return x.id == id; });
        if (at == changed.end()) {
          pg_params q;
          q.add(id);
          auto found = db_.run(s_child, sql_child, std::move(q));
          if (found.rows() == 0)
            fail(TK_STORE_ERROR,
                 "step " + std::to_string(c) + " of task " + std::to_string(t.id) + " is missing");
          changed.push_back(read_step(found, 0));
          at = changed.end() - 1;
        }
        if (release_parent(*at, t, now)) {
          fx.work_ready = true;
          ready_ns_.push_back(t.pipeline->namespace_name);
        }
      }
    }
    pipeline_of_.erase(s.id);
    changed.push_back(std::move(s));
  }
  save_steps(changed);
  save_tasks(tasks);
  park(parked);
  for (std::size_t k = 0; k < tasks.size(); ++k)
    fx.note(tasks[k], before[k]);
}

expansion pg_store::expand_task(task_row& t, std::int64_t step_id, std::vector<step_row>& steps,
                                std::vector<bool>& dirty,
                                std::unordered_map<std::int64_t, std::size_t>& step_at,
                                std::vector<std::pair<const task_row*, step_row>>& inserted,
                                millis now) {
  // Every row of the task, locked (its task is locked already: the lock
  // order holds), with this call's own versions of those it changed.
  pg_params a;
  a.add(t.id);
  auto all = db_.run(s_steps_of_task_locked, sql_steps_of_task_locked, std::move(a));
  std::vector<step_row> rows;
  for (int k = 0; k < all.rows(); ++k) {
    rows.push_back(read_step(all, k));
    if (auto it = step_at.find(rows.back().id); it != step_at.end())
      rows.back() = steps[it->second];
  }
  for (const auto& [task, row] : inserted)  // instances created earlier in this call
    if (row.task_id == t.id)
      rows.push_back(row);
  const auto known = rows.size();
  std::size_t done = 0;
  while (done < rows.size() && rows[done].id != step_id)
    ++done;
  if (done == rows.size())
    fail(TK_STORE_ERROR, "step " + std::to_string(step_id) + " vanished");
  const auto before = rows;
  const auto x = expand(t, rows, done, now);
  for (std::size_t k = 0; k < rows.size(); ++k) {
    if (k >= known) {  // new: the id its slot gives it
      rows[k].id = step_id_of(t.id, rows[k].slot);
      inserted.emplace_back(&t, rows[k]);
      continue;
    }
    if (rows[k].id == 0 || before[k].id == 0)
      continue;  // inserted earlier in this call, unchanged since (expand only appends)
    auto it = step_at.find(rows[k].id);
    if (it != step_at.end()) {
      steps[it->second] = rows[k];
      dirty[it->second] = true;
    } else if (rows[k].state != before[k].state
               || rows[k].pending_parents != before[k].pending_parents
               || rows[k].last_error != before[k].last_error) {
      steps.push_back(rows[k]);
      dirty.push_back(true);
      step_at[rows[k].id] = steps.size() - 1;
    }
  }
  return x;
}

void pg_store::insert_steps(const std::vector<std::pair<const task_row*, step_row>>& rows) {
  if (rows.empty())
    return;
  std::string ids = "{", tasks = "{", slots = "{", tmpls = "{", ns = "{", prios = "{", states = "{",
              pending = "{", due = "{", created = "{", started = "{", finished = "{", results = "{",
              names = "{", inputs = "{";
  for (const auto& [t, s] : rows) {
    append_array_int(ids, s.id, false);
    append_array_int(tasks, s.task_id, false);
    append_array_int(slots, s.slot, false);
    append_array_int(tmpls, s.index, false);
    append_array_text(ns, t->pipeline->namespace_name, false);
    append_array_int(prios, t->priority, false);
    append_array_text(states, to_string(s.state), false);
    append_array_int(pending, s.pending_parents, false);
    append_array_int(due, s.due_at, false);
    append_array_int(created, s.created_at, false);
    append_array_int(started, s.started_at, s.started_at < 0);
    append_array_int(finished, s.finished_at, s.finished_at < 0);
    append_array_text(results, s.result, s.result.empty());
    append_array_text(names, s.name, false);
    append_array_text(inputs, s.inputs, s.inputs.empty());
  }
  pg_params a;
  for (auto* arr : {&ids, &tasks, &slots, &tmpls, &ns, &prios, &states, &pending, &due, &created,
                    &started, &finished, &results, &names, &inputs}) {
    *arr += '}';
    a.add(*arr);
  }
  db_.queue(s_insert_steps, sql_insert_steps, std::move(a));
}

}  // namespace tasker::core
