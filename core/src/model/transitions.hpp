// The state machine of steps and tasks, written once and used by every
// store: a store loads rows, applies these transitions, and persists what
// changed. This is what keeps the stores' behaviour identical.
#pragma once

#include <random>
#include <string_view>
#include <vector>

#include "store/store.hpp"

namespace tasker::core {

/// True when steps of the task may still be handed out.
inline bool task_active(const task_row& t) {
  return t.state == task_state::pending || t.state == task_state::running;
}

/// True when the state is final for a step.
inline bool step_finished(step_state s) {
  return s == step_state::complete || s == step_state::error || s == step_state::cancelled
         || s == step_state::skipped;
}

/// Limits on what one outcome may create (a clear failure past them).
constexpr std::size_t max_batch_workers = 10000;  ///< instances per batchable outcome
constexpr std::size_t max_task_rows = 1000000;    ///< rows of one task, instances included

/// Marks a ready step claimed: attempt counted (unless it resumes a wait),
/// new fencing token, lease set.
void claim_step(step_row& s, task_row& t, millis now, millis lease_ms, std::string_view worker);

/// Whether a completion or heartbeat with `token` applies to the step's
/// current claim: TK_OK, TK_DUPLICATE (this claim already ended) or TK_STALE.
int check_claim(const step_row& s, const task_row& t, std::int64_t token);

/// Records a success. Returns true when the task thereby completed. The
/// caller releases the children (release_parent) unless the task completed,
/// or, for a decision or batchable step (creates_steps), calls expand.
bool apply_success(step_row& s, task_row& t, std::string_view result_json, millis now);

/// A decision or batchable step: its success goes through expand.
inline bool creates_steps(const task_row& t, const step_row& s) {
  const auto k = t.pipeline->steps[static_cast<std::size_t>(s.index)].kind;
  return k == step_kind::decision || k == step_kind::batchable;
}

/// What expand did.
struct expansion {
  bool refused = false;        ///< the outcome was invalid: the step and the task failed
  std::size_t made_ready = 0;  ///< steps that became ready
};

/// A decision or batchable step, rows[done], just succeeded (apply_success).
/// `rows` holds every row of its task, in any order. Applies the outcome its
/// result names, all on these rows: a decision's chosen children become
/// pending (the others skipped), a batchable step's instances are appended
/// to `rows` (slot after the last, state ready, inputs holding the cursor);
/// then every dormant step whose fate is now known is created or skipped,
/// pending counts are recomputed and the task completes if nothing is left.
/// An invalid outcome (unknown step names, malformed, past the limits)
/// fails the step (type "invalid_outcome") and the task; the store then
/// parks the unstarted steps.
expansion expand(task_row& t, std::vector<step_row>& rows, std::size_t done, millis now);

/// The rows of a new task, one per pipeline step: created steps pending or
/// ready, the others dormant. Sets t.steps_total.
std::vector<step_row> initial_rows(task_row& t, millis now);

/// One parent of `child` completed; true when the child became ready (only
/// while the task is active).
bool release_parent(step_row& child, const task_row& t, millis now);

/// What a failed attempt did to the step.
enum class failure_effect {
  retry_now,    ///< ready again immediately
  retry_later,  ///< waiting_for_retry until s.due_at
  failed,       ///< step error, task error: the store then parks the task's
                ///< unstarted steps (park_unstarted)
  tolerated     ///< a batch worker instance failed for good under
                ///< "continue_on_failure": the step is in error but counts as
                ///< done; the caller releases its children as for a success
                ///< (unless the task thereby completed: task_active is false)
};

/// After a task failed: a ready, retry-waiting or signal-waiting step goes
/// back to pending, since it will not run (a wait is abandoned: its token is
/// refused). True when the step changed.
bool park_unstarted(step_row& s);

/// Records a failure under the step's retry policy.
failure_effect apply_failure(step_row& s, task_row& t, const tk_step_result& r, millis now,
                             std::mt19937_64& rng);

/// A running step's lease ran out (s.due_at <= now): ready again with its
/// token invalidated if attempts remain, else error (type lease_expired).
failure_effect expire_lease(step_row& s, task_row& t, millis now);

/// The handler answered TK_RESULT_WAIT (checked: a name, a timeout > 0).
/// If a signal for this claim came while it ran, the step is ready at once
/// (to resume) and this returns true; otherwise it waits (state waiting,
/// due_at = now + timeout) and an earlier signal is forgotten. In a task
/// that failed meanwhile the step is parked (pending) instead, as
/// park_unstarted does for the others.
bool apply_wait(step_row& s, task_row& t, std::string_view name, millis timeout_ms, millis now);

/// The handler answered TK_RESULT_CHECKPOINT: the checkpoint is kept in the
/// step's inputs ("checkpoint") and the step is ready again as the same
/// attempt (returns true), or pending when its task failed meanwhile.
bool apply_checkpoint(step_row& s, task_row& t, std::string_view checkpoint_json, millis now);

/// tk_signal for claim `seq` of the step. Throws TK_CONFLICT when that claim
/// is over (a later claim exists, the step ended or was parked) or was
/// signalled already. A waiting step becomes ready (returns true); a running
/// one keeps the signal for when it waits.
bool apply_signal(step_row& s, const task_row& t, std::int64_t seq, std::string_view payload,
                  millis now);

/// A waiting step's timeout passed (s.due_at <= now): a retryable "timeout"
/// failure under its retry policy.
failure_effect expire_wait(step_row& s, task_row& t, millis now, std::mt19937_64& rng);

/// A due retry becomes ready.
void retry_due(step_row& s);

/// Cancels the task and every unfinished step in [steps, steps+count).
void cancel(task_row& t, step_row* steps, std::size_t count, millis now);

/// Throws TK_CONFLICT, naming the task's state, unless the task is in
/// `error`: only a failed task can be retried (tk_retry_task).
void check_retryable(const task_row& t);

/// Retries a failed task; [steps, steps+count) must be all its steps (any
/// order). The task is running again (completed_at cleared). A step in
/// `error` gets a fresh attempt budget (attempts 0, finished_at cleared,
/// last_error kept). Every step in `error` or `pending` then counts its
/// parents that are not done (pending_parents, see recount) and is `ready`
/// when none is left, else `pending`, released by its parents as usual.
/// Complete and running steps are left as they are. Returns how many steps
/// became ready.
std::size_t retry(task_row& t, step_row* steps, std::size_t count, millis now);

/// Sets pending_parents of every pending row from the others: a parent
/// counts while it is not complete and not skipped; a batch worker template
/// counts as its instances not done (1 while it has none yet). A pending row
/// with none left becomes ready if the task is active. Returns how many did.
std::size_t recount(const task_row& t, step_row* steps, std::size_t count, millis now);

/// Appends the dependency results of a step whose ancestors are all
/// pipeline steps created with the task (not dynamic_dependencies):
/// `ancestor_result(i)` returns the stored result JSON of step index i
/// (empty: null).
template <class AncestorResult>
void append_dependencies(event_buffer& out, const pipeline_def& p, const step_def& d,
                         AncestorResult&& ancestor_result) {
  out.append('{');
  bool first = true;
  for (int a : d.ancestors) {
    if (!first)
      out.append(',');
    first = false;
    out.append(p.steps[static_cast<std::size_t>(a)].result_key);
    std::string_view r = ancestor_result(a);
    out.append(r.empty() ? std::string_view{"null"} : r);
  }
  out.append('}');
}

/// Appends the dependency results of step `d` from all rows of its task
/// (any order): each ancestor's result by name, a batch worker template's
/// instances each by its own name (a tolerated failure as {"error": …}),
/// skipped and dormant ancestors left out.
void append_dependencies(event_buffer& out, const pipeline_def& p, const step_def& d,
                         const step_row* rows, std::size_t count);

/// Appends the event for a just-claimed step to `out`; `dependencies(out)`
/// appends its dependency results (one of the append_dependencies).
template <class Dependencies>
void add_event(event_buffer& out, const step_row& s, const task_row& t, millis lease_until,
               const wait_key& key, Dependencies&& dependencies) {
  const auto& p = *t.pipeline;
  const auto& d = p.steps[static_cast<std::size_t>(s.index)];
  auto& e = out.add();
  e.task_id = s.task_id;
  e.step_id = s.id;
  e.namespace_name = p.namespace_name.c_str();
  e.step_name = d.name.c_str();
  e.step_name_len = d.name.size();
  e.handler = d.handler.c_str();
  e.handler_len = d.handler.size();
  e.method = d.method.c_str();
  e.method_len = d.method.size();
  e.handler_config = d.config.c_str();
  e.handler_config_len = d.config.size();
  e.attempt = s.attempts;
  e.max_attempts = d.retry.max_attempts;
  e.fencing_token = s.claim_seq;
  e.lease_expires_at_ms = lease_until;
  e.timeout_ms = d.timeout_ms;
  out.begin_string();
  out.append(t.context);
  out.end_context();
  out.begin_string();
  dependencies(out);
  out.end_dependency_results();
  out.begin_string();
  out.append_wait_token(key, s.id, s.claim_seq);
  out.end_string(event_buffer::wait_token);
  if (!s.signal.empty()) {
    out.begin_string();
    out.append(s.wait_name);
    out.end_string(event_buffer::signal_name);
    out.begin_string();
    out.append(s.signal);
    out.end_string(event_buffer::signal_payload);
  }
  if (!s.name.empty()) {
    out.begin_string();
    out.append(s.name);
    out.end_string(event_buffer::step_name);
  }
  if (!s.inputs.empty()) {
    out.begin_string();
    out.append(s.inputs);
    out.end_string(event_buffer::step_inputs);
  }
}

}  // namespace tasker::core
