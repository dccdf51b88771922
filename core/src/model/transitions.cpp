#include "model/transitions.hpp"

#include <algorithm>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "abi/error.hpp"
#include "util/json.hpp"

namespace tasker::core {

void claim_step(step_row& s, task_row& t, millis now, millis lease_ms, std::string_view worker) {
  s.state = step_state::running;
  if (s.resume)
    s.resume = false;  // the attempt that waited goes on
  else
    s.attempts += 1;
  s.claim_seq += 1;
  s.due_at = now + lease_ms;
  s.started_at = now;
  s.claimed_by.assign(worker.data(), worker.size());
  if (t.state == task_state::pending) {
    t.state = task_state::running;
    t.updated_at = now;
  }
}

int check_claim(const step_row& s, const task_row& t, std::int64_t token) {
  if (s.claim_seq != token || s.state == step_state::cancelled || t.state == task_state::cancelled)
    return TK_STALE;
  if (s.state != step_state::running)
    return TK_DUPLICATE;
  return TK_OK;
}

bool apply_success(step_row& s, task_row& t, std::string_view result_json, millis now) {
  s.state = step_state::complete;
  s.result.assign(result_json.data(), result_json.size());
  s.finished_at = now;
  t.steps_done += 1;
  t.updated_at = now;
  if (creates_steps(t, s))
    return false;  // expand decides
  if (task_active(t) && t.steps_done >= t.steps_total) {
    t.state = task_state::complete;
    t.completed_at = now;
    return true;
  }
  return false;
}

bool release_parent(step_row& child, const task_row& t, millis now) {
  if (child.pending_parents > 0)
    child.pending_parents -= 1;
  if (child.pending_parents == 0 && child.state == step_state::pending && task_active(t)) {
    child.state = step_state::ready;
    child.due_at = now;
    return true;
  }
  return false;
}

namespace {

failure_effect fail_for_good(step_row& s, task_row& t, millis now) {
  s.state = step_state::error;
  s.finished_at = now;
  t.updated_at = now;
  if (t.pipeline->steps[static_cast<std::size_t>(s.index)].tolerates_failure) {
    // A batch worker instance under continue_on_failure: done, though failed.
    t.steps_done += 1;
    if (task_active(t) && t.steps_done >= t.steps_total) {
      t.state = task_state::complete;
      t.completed_at = now;
    }
    return failure_effect::tolerated;
  }
  if (task_active(t)) {
    t.state = task_state::error;
    t.completed_at = now;
  }
  return failure_effect::failed;
}

}  // namespace

failure_effect apply_failure(step_row& s, task_row& t, const tk_step_result& r, millis now,
                             std::mt19937_64& rng) {
  const auto& policy = t.pipeline->steps[static_cast<std::size_t>(s.index)].retry;
  const bool retryable = r.retryable != 0;
  auto decision = decide_failure(policy, s.attempts, retryable, r.retry_after_ms, now, rng);
  s.last_error = make_error_json(r.error_message ? r.error_message : "",
                                 r.error_type && *r.error_type ? r.error_type
                                 : retryable                   ? "retryable_error"
                                                               : "permanent_error",
                                 retryable && policy.retryable, s.attempts, now);
  if (!decision.retry || !task_active(t))
    return fail_for_good(s, t, now);
  t.updated_at = now;
  if (decision.ready_at <= now) {
    s.state = step_state::ready;
    s.due_at = now;
    return failure_effect::retry_now;
  }
  s.state = step_state::waiting_for_retry;
  s.due_at = decision.ready_at;
  return failure_effect::retry_later;
}

failure_effect expire_lease(step_row& s, task_row& t, millis now) {
  const auto& policy = t.pipeline->steps[static_cast<std::size_t>(s.index)].retry;
  s.last_error =
      make_error_json("the lease of " + s.claimed_by + " ran out before it completed",
                      "lease_expired", s.attempts < policy.max_attempts, s.attempts, now);
  s.claim_seq += 1;  // fence off the worker that lost the lease
  if (s.attempts >= policy.max_attempts || !task_active(t))
    return fail_for_good(s, t, now);
  s.state = step_state::ready;
  s.due_at = now;
  t.updated_at = now;
  return failure_effect::retry_now;
}

bool park_unstarted(step_row& s) {
  if (s.state != step_state::ready && s.state != step_state::waiting_for_retry
      && s.state != step_state::waiting)
    return false;
  s.state = step_state::pending;
  return true;
}

bool apply_wait(step_row& s, task_row& t, std::string_view name, millis timeout_ms, millis now) {
  t.updated_at = now;
  s.wait_name.assign(name.data(), name.size());
  if (!s.signal.empty() && s.signal_seq == s.claim_seq) {
    s.state = step_state::ready;  // signalled while it ran
    s.due_at = now;
    s.resume = true;
    return true;
  }
  s.signal.clear();
  s.signal_seq = 0;
  if (!task_active(t)) {  // the task failed while the step ran: nothing to wait for
    s.state = step_state::pending;
    return false;
  }
  s.state = step_state::waiting;
  s.due_at = now + timeout_ms;
  return false;
}

bool apply_checkpoint(step_row& s, task_row& t, std::string_view checkpoint_json, millis now) {
  nlohmann::json inputs =
      s.inputs.empty() ? nlohmann::json::object() : nlohmann::json::parse(s.inputs, nullptr, false);
  if (!inputs.is_object())
    inputs = nlohmann::json::object();
  // The core checked the text already (validate_results).
  inputs["checkpoint"] = nlohmann::json::parse(checkpoint_json.begin(), checkpoint_json.end());
  s.inputs = inputs.dump();
  t.updated_at = now;
  if (!task_active(t)) {  // the task failed while the step ran
    s.state = step_state::pending;
    return false;
  }
  s.state = step_state::ready;
  s.due_at = now;
  s.resume = true;  // the same attempt goes on
  return true;
}

bool apply_signal(step_row& s, const task_row& t, std::int64_t seq, std::string_view payload,
                  millis now) {
  const std::string step = "step " + std::to_string(s.id);
  if (!s.signal.empty() && s.signal_seq == seq)
    fail(TK_CONFLICT,
         "this token was signalled already (" + step + " is " + to_string(s.state) + ")");
  if (seq != s.claim_seq || (s.state != step_state::waiting && s.state != step_state::running)
      || !task_active(t))
    fail(TK_CONFLICT, "the wait of this token is over: " + step + " is " + to_string(s.state)
                          + (task_active(t) ? "" : std::string(", its task ") + to_string(t.state))
                          + (seq != s.claim_seq ? " with a later claim" : ""));
  s.signal.assign(payload.data(), payload.size());
  s.signal_seq = seq;
  if (s.state != step_state::waiting)
    return false;  // still running: its wait resumes at once
  s.state = step_state::ready;
  s.due_at = now;
  s.resume = true;
  return true;
}

failure_effect expire_wait(step_row& s, task_row& t, millis now, std::mt19937_64& rng) {
  const std::string message = "no signal \"" + s.wait_name + "\" came before the wait timed out";
  tk_step_result r{};
  r.step_id = s.id;
  r.kind = TK_RESULT_FAILURE;
  r.error_message = message.c_str();
  r.error_type = "timeout";
  r.retryable = 1;
  return apply_failure(s, t, r, now, rng);
}

void retry_due(step_row& s) {
  s.state = step_state::ready;
}

void cancel(task_row& t, step_row* steps, std::size_t count, millis now) {
  t.state = task_state::cancelled;
  t.updated_at = now;
  t.completed_at = now;
  for (std::size_t i = 0; i < count; ++i)
    if (!step_finished(steps[i].state)) {
      steps[i].state = step_state::cancelled;
      steps[i].finished_at = now;
    }
}

void check_retryable(const task_row& t) {
  if (t.state != task_state::error)
    fail(TK_CONFLICT, "task " + std::to_string(t.id) + " is " + to_string(t.state)
                          + "; only a task in state error can be retried");
}

std::size_t retry(task_row& t, step_row* steps, std::size_t count, millis now) {
  const auto& defs = t.pipeline->steps;
  t.state = task_state::running;
  t.completed_at = -1;
  t.updated_at = now;
  for (std::size_t i = 0; i < count; ++i) {
    auto& s = steps[i];
    if (s.state != step_state::error)
      continue;
    if (defs[static_cast<std::size_t>(s.index)].tolerates_failure)
      t.steps_done -= 1;  // it counted as done
    s.attempts = 0;
    s.finished_at = -1;
    s.state = step_state::pending;
  }
  return recount(t, steps, count, now);
}

namespace {

/// A task's rows by slot (pipeline steps first), and each batch worker
/// template's instances, in slot order.
struct row_index {
  std::vector<step_row*> by_slot;
  std::unordered_map<int, std::vector<step_row*>> instances;  // by template index

  row_index(step_row* rows, std::size_t count, std::size_t steps) : by_slot(steps, nullptr) {
    for (std::size_t i = 0; i < count; ++i) {
      auto& r = rows[i];
      if (r.name.empty() && static_cast<std::size_t>(r.slot) < steps)
        by_slot[static_cast<std::size_t>(r.slot)] = &r;
      else
        instances[r.index].push_back(&r);
    }
    for (auto& [_, list] : instances)
      std::sort(list.begin(), list.end(),
                [](const step_row* a, const step_row* b) { return a->slot < b->slot; });
  }
};

bool instance_done(const task_row& t, const step_row& r) {
  return r.state == step_state::complete
         || (r.state == step_state::error
             && t.pipeline->steps[static_cast<std::size_t>(r.index)].tolerates_failure);
}

}  // namespace

std::size_t recount(const task_row& t, step_row* steps, std::size_t count, millis now) {
  const auto& defs = t.pipeline->steps;
  row_index rows(steps, count, defs.size());
  // Whether each parent is done, as loaded (a row made ready here is not).
  auto waiting_on = [&](int p) -> std::int32_t {
    const auto& pd = defs[static_cast<std::size_t>(p)];
    const step_row* row = rows.by_slot[static_cast<std::size_t>(p)];
    if (pd.kind == step_kind::batch_worker) {
      auto it = rows.instances.find(p);
      if (it == rows.instances.end() || it->second.empty())
        return row && row->state == step_state::skipped ? 0 : 1;
      std::int32_t n = 0;
      for (const step_row* r : it->second)
        n += instance_done(t, *r) ? 0 : 1;
      return n;
    }
    if (!row)
      return 1;
    return row->state == step_state::complete || row->state == step_state::skipped ? 0 : 1;
  };
  std::vector<step_row*> now_ready;
  for (std::size_t i = 0; i < count; ++i) {
    auto& s = steps[i];
    if (s.state != step_state::pending)
      continue;
    std::int32_t waiting = 0;
    for (int p : defs[static_cast<std::size_t>(s.index)].parents)
      waiting += waiting_on(p);
    s.pending_parents = waiting;
    if (waiting == 0 && task_active(t))
      now_ready.push_back(&s);
  }
  for (step_row* s : now_ready) {
    s->state = step_state::ready;
    s->due_at = now;
  }
  return now_ready.size();
}

std::vector<step_row> initial_rows(task_row& t, millis now) {
  const auto& p = *t.pipeline;
  std::vector<step_row> rows(p.steps.size());
  for (std::size_t i = 0; i < p.steps.size(); ++i) {
    auto& s = rows[i];
    s.task_id = t.id;
    s.index = s.slot = static_cast<std::int32_t>(i);
    s.created_at = now;
    s.pending_parents = static_cast<std::int32_t>(p.steps[i].parents.size());
    if (!p.steps[i].initially_created) {
      s.state = step_state::dormant;
    } else if (s.pending_parents == 0) {
      s.state = step_state::ready;
      s.due_at = now;
    }
  }
  t.steps_total = p.initial_steps;
  return rows;
}

namespace {

using nlohmann::json;

struct refusal {
  std::string message;
};

std::string json_quoted(std::string_view s) {
  std::string out;
  append_json_string(out, s);
  return out;
}

/// The names a decision's result chooses, checked against its children.
std::vector<int> chosen_children(const pipeline_def& p, int decision, const std::string& result) {
  const auto& d = p.steps[static_cast<std::size_t>(decision)];
  const json doc = json::parse(result, nullptr, false);
  const json* outcome = nullptr;
  if (doc.is_object())
    if (auto it = doc.find("decision_point_outcome"); it != doc.end())
      outcome = &*it;
  if (!outcome)
    throw refusal{"a decision step's result must hold \"decision_point_outcome\": "
                  "{\"type\": \"create_steps\", \"step_names\": [...]} or {\"type\": "
                  "\"no_branches\"}"};
  const json* type =
      outcome->is_object() && outcome->contains("type") ? &(*outcome)["type"] : outcome;
  if (type->is_string() && type->get<std::string>() == "no_branches")
    return {};
  if (!type->is_string() || type->get<std::string>() != "create_steps")
    throw refusal{"decision_point_outcome type must be \"create_steps\" or \"no_branches\", "
                  "not "
                  + type->dump().substr(0, 100)};
  auto names = outcome->find("step_names");
  if (names == outcome->end() || !names->is_array())
    throw refusal{"decision_point_outcome \"create_steps\" needs \"step_names\": a list of "
                  "step names"};
  std::vector<int> out;
  for (const auto& n : *names) {
    if (!n.is_string())
      throw refusal{"decision_point_outcome step_names must be strings, not "
                    + n.dump().substr(0, 100)};
    const auto name = n.get<std::string>();
    int found = -1;
    for (int c : d.children)
      if (p.steps[static_cast<std::size_t>(c)].name == name)
        found = c;
    if (found < 0) {
      std::string choices;
      for (int c : d.children)
        choices += (choices.empty() ? "" : ", ") + p.steps[static_cast<std::size_t>(c)].name;
      throw refusal{"decision_point_outcome names " + json_quoted(name.substr(0, 200))
                    + ", which is not a step that depends on " + json_quoted(d.name)
                    + " (its choices: " + (choices.empty() ? "none" : choices) + ")"};
    }
    if (std::find(out.begin(), out.end(), found) == out.end())
      out.push_back(found);
  }
  return out;
}

std::string instance_name(const std::string& base, std::size_t number) {
  char digits[24];
  std::snprintf(digits, sizeof digits, "_%03zu", number);
  return base + digits;
}

/// A batchable step's outcome: the instances it creates, appended to `rows`.
void create_batches(task_row& t, std::vector<step_row>& rows, const step_row& done,
                    step_row*& template_row, millis now) {
  const auto& p = *t.pipeline;
  const auto& b = p.steps[static_cast<std::size_t>(done.index)];
  const json doc = json::parse(done.result, nullptr, false);
  const json* outcome = nullptr;
  if (doc.is_object())
    if (auto it = doc.find("batch_processing_outcome"); it != doc.end())
      outcome = &*it;
  if (!outcome)
    throw refusal{"a batchable step's result must hold \"batch_processing_outcome\": "
                  "{\"type\": \"create_batches\", \"cursor_configs\": [...]} or {\"type\": "
                  "\"no_batches\"}"};
  const json* type =
      outcome->is_object() && outcome->contains("type") ? &(*outcome)["type"] : outcome;
  const bool none = type->is_string() && type->get<std::string>() == "no_batches";
  if (!none && !(type->is_string() && type->get<std::string>() == "create_batches"))
    throw refusal{"batch_processing_outcome type must be \"create_batches\" or "
                  "\"no_batches\", not "
                  + type->dump().substr(0, 100)};
  // The worker template: named, or the batchable step's only one.
  std::vector<int> workers;
  for (int c : b.children)
    if (p.steps[static_cast<std::size_t>(c)].kind == step_kind::batch_worker)
      workers.push_back(c);
  int w = -1;
  if (auto n = outcome->is_object() ? outcome->find("worker_template_name") : outcome->end();
      outcome->is_object() && n != outcome->end() && !n->is_null()) {
    for (int c : workers)
      if (n->is_string() && p.steps[static_cast<std::size_t>(c)].name == n->get<std::string>())
        w = c;
    if (w < 0)
      throw refusal{"batch_processing_outcome worker_template_name " + n->dump().substr(0, 200)
                    + " is not a batch_worker step that depends on " + json_quoted(b.name)};
  } else if (workers.size() == 1) {
    w = workers[0];
  } else {
    throw refusal{"batch_processing_outcome must name its worker_template_name: "
                  + json_quoted(b.name) + " has several batch_worker steps"};
  }
  const auto& wd = p.steps[static_cast<std::size_t>(w)];
  const json* configs = nullptr;
  if (!none) {
    auto c = outcome->find("cursor_configs");
    if (c == outcome->end() || !c->is_array())
      throw refusal{"batch_processing_outcome \"create_batches\" needs \"cursor_configs\": a "
                    "list of cursors"};
    configs = &*c;
    if (auto n = outcome->find("worker_count");
        n != outcome->end() && !n->is_null()
        && !(n->is_number_integer() && n->get<std::int64_t>() >= 0
             && static_cast<std::size_t>(n->get<std::int64_t>()) == c->size()))
      throw refusal{"batch_processing_outcome worker_count is " + n->dump().substr(0, 40)
                    + " but cursor_configs has " + std::to_string(c->size()) + " entries"};
    if (c->size() > max_batch_workers)
      throw refusal{"batch_processing_outcome asks for " + std::to_string(c->size())
                    + " workers, at most " + std::to_string(max_batch_workers)
                    + " are allowed per batchable step"};
    if (rows.size() + c->size() > max_task_rows)
      throw refusal{"batch_processing_outcome asks for " + std::to_string(c->size())
                    + " workers, which would give the task more than "
                    + std::to_string(max_task_rows) + " steps"};
  }
  template_row = nullptr;
  for (auto& r : rows)
    if (r.name.empty() && r.slot == w)
      template_row = &r;
  if (!template_row || template_row->state != step_state::dormant)
    throw refusal{"the batch worker template " + json_quoted(wd.name)
                  + " was expanded already or is missing"};
  json config = wd.batch_config.empty() ? json::object() : json::parse(wd.batch_config);
  json metadata = json::object();
  for (const char* k : {"cursor_field", "failure_strategy"})
    if (config.contains(k))
      metadata[k] = config[k];
  std::int32_t slot = 0;
  for (const auto& r : rows)
    slot = std::max(slot, r.slot + 1);
  auto add = [&](std::size_t number, json cursor, bool no_op) -> step_row& {
    step_row& s = rows.emplace_back();
    s.task_id = t.id;
    s.index = w;
    s.slot = slot++;
    s.created_at = now;
    s.name = instance_name(wd.name, number);
    json inputs = {{"cursor", std::move(cursor)},
                   {"batch_metadata", metadata},
                   {"batch_config", config},
                   {"is_no_op", no_op}};
    s.inputs = inputs.dump();
    t.steps_total += 1;
    return s;
  };
  template_row->state = step_state::skipped;  // rows after it: keep no pointer past here
  const std::size_t n = configs ? configs->size() : 0;
  if (n == 0) {  // one placeholder, done at once: the DAG keeps its shape
    step_row& s = add(0, nullptr, true);
    s.state = step_state::complete;
    s.result = "{\"is_no_op\":true}";
    s.started_at = s.finished_at = now;
    t.steps_done += 1;
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    json cursor = (*configs)[i];
    if (!cursor.is_object())
      throw refusal{"batch_processing_outcome cursor_configs entry " + std::to_string(i + 1)
                    + " must be an object, not " + cursor.dump().substr(0, 100)};
    char id[24];
    std::snprintf(id, sizeof id, "%03zu", i + 1);
    if (!cursor.contains("batch_id"))
      cursor["batch_id"] = id;
    step_row& s = add(i + 1, std::move(cursor), false);
    s.state = step_state::pending;
    s.pending_parents = 1;  // recount: its batchable step is complete
  }
}

enum class fate { created, dormant, skipped };

fate fate_of_row(const step_row* r) {
  if (!r || r->state == step_state::dormant)
    return fate::dormant;
  return r->state == step_state::skipped ? fate::skipped : fate::created;
}

/// Creates or skips every dormant pipeline step whose fate is known now.
void resolve(task_row& t, std::vector<step_row>& rows, millis now) {
  const auto& p = *t.pipeline;
  row_index index(rows.data(), rows.size(), p.steps.size());
  std::unordered_map<int, std::vector<int>> choices;  // per complete decision
  for (int i : p.topo) {
    step_row* row = index.by_slot[static_cast<std::size_t>(i)];
    if (!row || row->state != step_state::dormant)
      continue;
    const auto& d = p.steps[static_cast<std::size_t>(i)];
    if (d.kind == step_kind::batch_worker) {  // expanded by its batchable step
      if (fate_of_row(index.by_slot[static_cast<std::size_t>(d.parents[0])]) == fate::skipped)
        row->state = step_state::skipped;
      continue;
    }
    bool any_created = false, any_dormant = false, any_skipped = false;
    for (int parent : d.parents) {
      const auto& pd = p.steps[static_cast<std::size_t>(parent)];
      const step_row* prow = index.by_slot[static_cast<std::size_t>(parent)];
      fate f = fate_of_row(prow);
      if (pd.kind == step_kind::batch_worker) {
        f = fate_of_row(index.by_slot[static_cast<std::size_t>(pd.parents[0])]);
      } else if (pd.kind == step_kind::decision && f == fate::created) {
        if (prow->state != step_state::complete) {
          f = fate::dormant;  // undecided
        } else {
          auto it = choices.find(parent);
          if (it == choices.end())
            it = choices.emplace(parent, chosen_children(p, parent, prow->result)).first;
          f = std::find(it->second.begin(), it->second.end(), i) != it->second.end()
                  ? fate::created
                  : fate::skipped;
        }
      }
      any_created |= f == fate::created;
      any_dormant |= f == fate::dormant;
      any_skipped |= f == fate::skipped;
    }
    fate mine;
    if (d.kind == step_kind::deferred_convergence)
      mine = any_dormant ? fate::dormant : any_created ? fate::created : fate::skipped;
    else
      mine = any_skipped ? fate::skipped : any_dormant ? fate::dormant : fate::created;
    if (mine == fate::created) {
      row->state = step_state::pending;
      row->created_at = now;
      t.steps_total += 1;
    } else if (mine == fate::skipped) {
      row->state = step_state::skipped;
    }
  }
}

}  // namespace

expansion expand(task_row& t, std::vector<step_row>& rows, std::size_t done, millis now) {
  expansion out;
  const auto& d = t.pipeline->steps[static_cast<std::size_t>(rows[done].index)];
  try {
    if (d.kind == step_kind::decision) {
      chosen_children(*t.pipeline, rows[done].index, rows[done].result);  // checks it
    } else if (d.kind == step_kind::batchable) {
      step_row* template_row = nullptr;
      create_batches(t, rows, rows[done], template_row, now);
    }
  } catch (const refusal& r) {
    // The rows appended before the refusal are dropped; the template stays dormant.
    rows.erase(std::remove_if(rows.begin(), rows.end(),
                              [](const step_row& s) { return !s.name.empty() && s.id == 0; }),
               rows.end());
    for (auto& s : rows)
      if (s.state == step_state::skipped && s.name.empty()
          && t.pipeline->steps[static_cast<std::size_t>(s.index)].kind == step_kind::batch_worker
          && t.pipeline->steps[static_cast<std::size_t>(s.index)].parents[0] == rows[done].index)
        s.state = step_state::dormant;
    t.steps_total = 0;
    for (const auto& s : rows)
      t.steps_total += s.state != step_state::dormant && s.state != step_state::skipped;
    auto& s = rows[done];
    s.state = step_state::error;
    s.last_error =
        make_error_json(d.name + ": " + r.message, "invalid_outcome", false, s.attempts, now);
    t.steps_done -= 1;  // apply_success counted it
    t.updated_at = now;
    if (task_active(t)) {
      t.state = task_state::error;
      t.completed_at = now;
    }
    out.refused = true;
    return out;
  }
  resolve(t, rows, now);
  out.made_ready = recount(t, rows.data(), rows.size(), now);
  if (task_active(t) && t.steps_done >= t.steps_total) {
    t.state = task_state::complete;
    t.completed_at = now;
  }
  return out;
}

void append_dependencies(event_buffer& out, const pipeline_def& p, const step_def& d,
                         const step_row* rows, std::size_t count) {
  // row_index takes mutable rows; nothing is changed through it here.
  row_index index(const_cast<step_row*>(rows), count, p.steps.size());
  out.append('{');
  bool first = true;
  auto entry = [&](std::string_view key, std::string_view value) {
    if (!first)
      out.append(',');
    first = false;
    out.append(key);
    out.append(value.empty() ? std::string_view{"null"} : value);
  };
  std::string key;
  for (int a : d.ancestors) {
    const auto& ad = p.steps[static_cast<std::size_t>(a)];
    if (ad.kind == step_kind::batch_worker) {
      auto it = index.instances.find(a);
      if (it == index.instances.end())
        continue;
      for (const step_row* r : it->second) {
        key.clear();
        append_json_string(key, r->name);
        key += ':';
        if (r->state == step_state::complete)
          entry(key, r->result);
        else if (r->state == step_state::error)
          entry(key, "{\"error\":" + (r->last_error.empty() ? "null" : r->last_error) + "}");
      }
      continue;
    }
    const step_row* r = index.by_slot[static_cast<std::size_t>(a)];
    if (!r || r->state == step_state::skipped || r->state == step_state::dormant)
      continue;
    entry(ad.result_key, r->state == step_state::complete ? std::string_view{r->result} : "");
  }
  out.append('}');
}

}  // namespace tasker::core
