#include "model/transitions.hpp"

#include <string>
#include <vector>

#include "abi/error.hpp"

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
  if (task_active(t) && static_cast<std::size_t>(t.steps_done) == t.pipeline->steps.size()) {
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
  // The parents' states as loaded: a failed parent made ready again is not
  // complete either way.
  std::vector<bool> complete(defs.size(), false);
  for (std::size_t i = 0; i < count; ++i)
    if (static_cast<std::size_t>(steps[i].index) < defs.size())
      complete[static_cast<std::size_t>(steps[i].index)] = steps[i].state == step_state::complete;
  t.state = task_state::running;
  t.completed_at = -1;
  t.updated_at = now;
  std::size_t made_ready = 0;
  for (std::size_t i = 0; i < count; ++i) {
    auto& s = steps[i];
    if (s.state == step_state::error) {
      s.attempts = 0;
      s.finished_at = -1;
    } else if (s.state != step_state::pending) {
      continue;
    }
    std::int32_t waiting = 0;
    for (int p : defs[static_cast<std::size_t>(s.index)].parents)
      if (!complete[static_cast<std::size_t>(p)])
        ++waiting;
    s.pending_parents = waiting;
    if (waiting > 0) {
      s.state = step_state::pending;
      continue;
    }
    s.state = step_state::ready;
    s.due_at = now;
    ++made_ready;
  }
  return made_ready;
}

}  // namespace tasker::core
