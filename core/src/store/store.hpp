// The store interface: one implementation per backend (memory, SQLite,
// PostgreSQL). Every store implements the same
// semantics, checked by one conformance suite (tests/core/conformance/).
//
// A store is not thread-safe: the core serialises calls on one store object.
// Stores shared between processes (SQLite, PostgreSQL) make each call one
// database transaction, so several cores on one database stay consistent.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "abi/event_buffer.hpp"
#include "model/pipeline.hpp"
#include "model/wait_token.hpp"
#include <tasker/core.h>

namespace tasker::core {

/// Step states, stored by name.
enum class step_state {
  pending,            ///< waiting for its parents
  ready,              ///< claimable
  running,            ///< claimed, under a lease
  waiting_for_retry,  ///< failed, retryable; claimable again at due_at
  complete,           ///< finished with a result
  error,              ///< failed for good
  cancelled,          ///< its task was cancelled before it finished
  waiting,            ///< waits for a signal (TK_RESULT_WAIT) until due_at; no lease
  dormant,            ///< not created yet: behind a decision, or a batch worker template
  skipped             ///< never created: its decision chose otherwise; a batch worker
                      ///< template whose instances were created (hidden)
};

/// Task states, stored by name.
enum class task_state {
  pending,   ///< created, no step claimed yet
  running,   ///< some step was claimed
  complete,  ///< every step complete
  error,     ///< a step failed for good; nothing more is handed out
  cancelled  ///< cancelled by a client
};

const char* to_string(step_state s);
const char* to_string(task_state s);
bool parse_task_state(std::string_view name, task_state& out);
bool parse_step_state(std::string_view name, step_state& out);

/// Arguments of create_task (already validated by the core).
struct task_request {
  std::string_view namespace_name, name, version;
  std::string_view context;          ///< a JSON object
  std::string_view idempotency_key;  ///< empty: none
  std::int32_t priority = 0;
};

struct create_outcome {
  std::int64_t task_id = 0;
  bool created = false;
};

struct list_request {
  std::string state;           ///< empty: any
  std::string namespace_name;  ///< empty: any
  std::int64_t after = 0;      ///< task ids greater than this
  int limit = 100;
};

/// A worker's claim: the namespaces, lease and name are the worker's, set once
/// when it opens (tk_worker_open); each poll sets `max` and `now`.
struct claim_request {
  const std::vector<std::string>* namespaces = nullptr;  ///< empty: all
  std::size_t max = 0;
  millis lease_ms = 0;
  millis now = 0;
  std::string_view worker;
};

struct task_row;

/// Collected effects of a call: what the core tells its callbacks once the
/// call (and its transaction) succeeded.
struct effects {
  bool work_ready = false;  ///< some step became claimable now
  /// Tasks that reached a final state in this call.
  std::vector<std::pair<std::int64_t, task_state>> finished;

  /// Records `t` if it left the active states during the call.
  void note(const task_row& t, task_state before);
};

class store {
public:
  virtual ~store() = default;

  /// Registers a validated pipeline (sets its id). Same definition again: a
  /// no-op returning the stored one; a different one under the same
  /// namespace/name/version: TK_CONFLICT.
  virtual pipeline_ptr register_pipeline(std::shared_ptr<pipeline_def> p) = 0;

  virtual create_outcome create_task(const task_request& r, millis now, effects& fx) = 0;
  /// Creates `n` tasks atomically: all or none. A failure names the request
  /// ("task 3 of 10: ...").
  virtual void create_tasks(const task_request* r, std::size_t n, millis now, create_outcome* out,
                            effects& fx) = 0;
  virtual std::string task_status(std::int64_t task_id) = 0;
  /// Just the task's state (cheap); TK_NOT_FOUND for an unknown id.
  virtual task_state state_of(std::int64_t task_id) = 0;
  virtual void cancel_task(std::int64_t task_id, millis now) = 0;
  /// Runs a failed task again (transitions.hpp: check_retryable, retry):
  /// TK_NOT_FOUND for an unknown id, TK_CONFLICT unless the task is in
  /// `error`. Sets fx.work_ready when a step became ready.
  virtual void retry_task(std::int64_t task_id, millis now, effects& fx) = 0;
  virtual std::string list_tasks(const list_request& r) = 0;

  /// Claims up to r.max steps into `out` (which the caller cleared). Due
  /// retries and expired leases are processed first.
  virtual void claim(const claim_request& r, event_buffer& out, std::mt19937_64& rng,
                     effects& fx) = 0;

  /// Applies results; `outcomes[i]` is pre-set to an error for inputs the
  /// core rejected (those are skipped) and TK_OK for the rest, which the store
  /// turns into TK_OK / TK_DUPLICATE / TK_STALE / TK_NOT_FOUND.
  virtual void complete(const tk_step_result* results, std::size_t count, int* outcomes, millis now,
                        std::mt19937_64& rng, effects& fx) = 0;

  /// complete() then claim(), atomically where the store has transactions
  /// (one commit instead of two).
  virtual void complete_and_claim(const tk_step_result* results, std::size_t count, int* outcomes,
                                  const claim_request& r, event_buffer& out, std::mt19937_64& rng,
                                  effects& fx) {
    complete(results, count, outcomes, r.now, rng, fx);
    claim(r, out, rng, fx);
  }

  /// tk_signal for claim `seq` of step `step_id` (its token is checked):
  /// TK_NOT_FOUND for an unknown step, else apply_signal's rules. Sets
  /// fx.work_ready when the step became ready.
  virtual void signal(std::int64_t step_id, std::int64_t seq, std::string_view payload, millis now,
                      effects& fx) = 0;

  /// The secret behind wait tokens, the same for every process on the store.
  const wait_key& key() const { return key_; }

  virtual void heartbeat(const std::int64_t* step_ids, const std::int64_t* tokens,
                         std::size_t count, millis lease_until, int* outcomes) = 0;

  /// Earliest due_at of waiting or running steps in the namespaces (all if
  /// empty), now if a step is ready, or -1.
  virtual millis next_due(const std::vector<std::string>& namespaces, millis now) = 0;

  /// Testing hook (tk_inject_store_fault): fail the n-th next database
  /// statement. Stores without a database answer TK_UNSUPPORTED.
  virtual void inject_fault(std::int64_t n);

  /// Stores shared between processes call `fn`, from a thread of their own,
  /// when another process made work ready or finished tasks, so a worker
  /// wakes without polling. The store stops calling it before it is destroyed.
  virtual void watch(std::function<void(const effects&)> fn) { (void)fn; }

  /// Which of watch's news the core has callbacks for (a wake-up callback:
  /// work made ready; a task listener: finished tasks), so that such a store
  /// listens for no more than that. When asked for more than before, it
  /// returns once it hears of every later change. Callable from any thread,
  /// never while holding a lock the watch callback takes.
  virtual void interest(bool work_ready, bool finished) {
    (void)work_ready;
    (void)finished;
  }

protected:
  wait_key key_;  ///< set by the store when it opens
};

/// A task as every store records it; the memory store keeps these directly.
struct task_row {
  std::int64_t id = 0;
  pipeline_ptr pipeline;
  task_state state = task_state::pending;
  std::int32_t priority = 0;
  std::string context;
  std::string idempotency_key;  ///< empty: none
  millis created_at = 0, updated_at = 0;
  millis completed_at = -1;      ///< -1: not finished
  std::int32_t steps_done = 0;   ///< steps complete (and batch instances failed but tolerated)
  std::int32_t steps_total = 0;  ///< steps created, which must all be done
};

/// A step as every store records it.
struct step_row {
  std::int64_t id = 0;
  std::int64_t task_id = 0;
  std::int32_t index = 0;  ///< into pipeline->steps: the step it runs
  /// Its place among the task's rows: a pipeline step's is its index; batch
  /// worker instances come after them, in the order they were created.
  std::int32_t slot = 0;
  step_state state = step_state::pending;
  std::int32_t attempts = 0;
  std::int32_t pending_parents = 0;  ///< parents not complete yet
  std::int64_t claim_seq = 0;        ///< the fencing token of the current/last claim
  /// ready: since when; running: lease end; waiting_for_retry: retry time;
  /// waiting: when the wait times out.
  millis due_at = 0;
  millis created_at = 0;
  millis started_at = -1, finished_at = -1;
  std::string result;      ///< JSON; empty: none
  std::string last_error;  ///< JSON; empty: none
  std::string claimed_by;
  std::string wait_name;        ///< the last wait's signal name; empty: never waited
  std::string signal;           ///< the last signal's payload (JSON); empty: none
  std::int64_t signal_seq = 0;  ///< the claim (fencing token) that signal answered
  bool resume = false;          ///< the next claim resumes a wait: no attempt counted
  std::string name;             ///< a batch worker instance's ("<template>_001"); empty: the step's
  std::string inputs;           ///< the step's own inputs (JSON object); empty: none
};

/// Renders tk_task_status JSON; a waiting step shows its wait's token.
std::string render_status(const task_row& task, const step_row* steps, std::size_t count,
                          const wait_key& key);
/// Appends one tk_list_tasks entry.
void render_list_entry(std::string& out, const task_row& task);

/// Builds the JSON stored as a step's last error.
std::string make_error_json(std::string_view message, std::string_view type, bool retryable,
                            int attempt, millis at);

}  // namespace tasker::core
