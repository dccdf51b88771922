/* tasker/core.h — the C interface of the tasker orchestration core.
 *
 * The core owns all durable state of a workflow engine: pipelines (DAGs of
 * steps), tasks (runs of a pipeline), step states, leases, retries and
 * results. Workers drive it through this interface: they poll ready steps in
 * batches, run them, and complete them in batches. Any language with a C FFI
 * can be a worker; the C++ runtime of this project is one.
 *
 * Names
 * - Everything is prefixed: functions and types `tk_`, macros and enum
 *   constants `TK_`.
 * - Types are nouns: `tk_<noun>` (tk_core, tk_step_event); callbacks
 *   `tk_<noun>_fn`; structs of settings `tk_<noun>_options`.
 * - A function that does something is `tk_<verb>[_<object>]`; the handle it
 *   acts on is its first parameter and is not named again (tk_create_task,
 *   tk_set_wakeup, tk_poll(worker, ...), tk_heartbeat(worker, ...)).
 * - A handle's life: tk_open / tk_close for the core, the root handle;
 *   `tk_<handle>_open` / `tk_<handle>_close` for the others (tk_worker_open).
 * - A function that only reads is named after what it returns: `tk_<noun>`
 *   (tk_version, tk_now_ms, tk_next_due, tk_task_state, tk_status_name).
 * - Status codes are `TK_<NAME>` (TK_OK, TK_NOT_FOUND); the values of other
 *   enums carry the enum's name: `TK_<ENUM>_<NAME>` (TK_RESULT_WAIT).
 * - Parameters: the handle first, then inputs, then outputs, `tk_error* err`
 *   last. A pointer is followed by its count; JSON text ends in `_json`,
 *   durations and times in `_ms`, lengths in `_len`.
 *
 * Conventions
 * - Every function that can fail returns a tk_status and, when `err` is not
 *   NULL, fills it with the same code and a readable message. No exception
 *   ever crosses this interface.
 * - All functions are thread-safe. A tk_worker handle (poll/complete) is meant
 *   to be used by one thread at a time, since the events of a poll live in it.
 * - Strings are UTF-8 and NUL-terminated. JSON passed in is validated
 *   strictly (RFC 8259) and its size is capped (option "max_json_bytes").
 * - Times are milliseconds since the Unix epoch, read from the core's clock
 *   (the system clock; tests may install another, see core_testing.h).
 * - Memory returned as `char*` is the caller's: free it with tk_free().
 *   A `const char*` returned is static or lives in the handle, as documented.
 */
#ifndef TASKER_CORE_H
#define TASKER_CORE_H

#include <stddef.h>
#include <stdint.h>

#include <tasker/version.h> /* TK_VERSION_NUMBER, TK_VERSION_STRING */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TK_API __attribute__((visibility("default")))
#else
#define TK_API
#endif

/** Status codes; every value is documented because scripts and other
 *  languages switch on them. */
typedef enum tk_status {
  TK_OK = 0,               /**< success */
  TK_INVALID_ARGUMENT = 1, /**< a null pointer, an empty name, a bad value */
  TK_MALFORMED_JSON = 2,   /**< a JSON input does not parse */
  /** well-formed input that breaks a rule (cycle, unknown dependency…) */
  TK_VALIDATION = 3,
  TK_NOT_FOUND = 4, /**< unknown task, step or pipeline */
  /** the request contradicts stored state (e.g. an idempotency key of another pipeline) */
  TK_CONFLICT = 5,
  TK_TOO_LARGE = 6,   /**< an input exceeds the configured size cap */
  TK_STORE_ERROR = 7, /**< the store failed (I/O, corrupt file, lock timeout) */
  TK_UNSUPPORTED = 8, /**< unknown store URL scheme or option */
  TK_INTERNAL = 9,    /**< a bug or an out-of-memory condition inside the core */
  /* Per-item outcomes of tk_complete and tk_heartbeat (never returned as a
   * call's status): */
  /** the fencing token is not the step's current claim: rejected, nothing changed */
  TK_STALE = 20,
  TK_DUPLICATE = 21 /**< this claim was already completed: a no-op */
} tk_status;

/** Error details. `message` is always NUL-terminated. */
typedef struct tk_error {
  tk_status code;    /**< the status the call returned */
  char message[512]; /**< what went wrong, naming the offending item */
} tk_error;

/** An opened store with its engine. */
typedef struct tk_core tk_core;
/** A worker's claim handle: its identity and the pooled memory of its events. */
typedef struct tk_worker tk_worker;

/** Opens a core on a store.
 *  url: "memory:" (nothing persists), "sqlite:PATH" (embedded, the default for
 *       workers; WAL mode, safe for several processes on one machine), or
 *       "postgresql://USER@HOST:PORT/DB[?schema=NAME&libpq parameters]" (many
 *       worker processes on many machines; tables in schema NAME, default
 *       "tasker", created or migrated on open; other processes' new work and
 *       finished tasks reach tk_set_wakeup and tk_set_task_listener through
 *       LISTEN/NOTIFY).
 *  options_json: NULL or a JSON object with any of
 *       "max_json_bytes"  (default 4194304) cap on every JSON input,
 *       "default_lease_ms" (default 30000) lease of a worker opened with 0,
 *       "busy_timeout_ms" (default 5000) SQLite lock wait,
 *       "synchronous"     ("normal" default, "full", "off") SQLite durability,
 *       "seed"            (default: random) seed of the retry jitter,
 *       "schema"          PostgreSQL schema (overrides the URL's schema=),
 *       "async_worker_commits" (default false) PostgreSQL: claims and
 *                         completions commit without waiting for the WAL
 *                         flush; a server crash may then lose the last moments
 *                         of progress, which runs again. Creation stays durable.
 *       "pooled_events"   (default true) a worker's events live in memory it
 *                         keeps from poll to poll; false frees it at every
 *                         poll and gives each event's strings a heap block of
 *                         their own (the baseline of bench/core_loop).
 *  Returns NULL on failure with `err` filled. */
TK_API tk_core* tk_open(const char* url, const char* options_json, tk_error* err);
/** Closes the core; a NULL core is ignored. Workers of it must be closed first. */
TK_API void tk_close(tk_core* core);
/** Frees memory returned by the core. */
TK_API void tk_free(void* p);
/** The library's version, e.g. "0.1.0": TK_VERSION_STRING of the build
 *  that made it (which may differ from the header a program compiled with). */
TK_API const char* tk_version(void);
/** The library's TK_VERSION_NUMBER (major * 10000 + minor * 100 + patch). */
TK_API int tk_version_number(void);
/** The name of a status, e.g. "TK_NOT_FOUND": a static string; "unknown"
 *  for a value that is not a tk_status. */
TK_API const char* tk_status_name(tk_status status);

/* ---- time and wake-up ----------------------------------------------- */

/** Reads the core's clock. */
TK_API int64_t tk_now_ms(tk_core* core);

/** Called when new work may be ready: a task was created, a step was
 *  released, a failed step is ready to retry now, a failed task was retried
 *  (tk_retry_task), a waiting step was signalled (tk_signal). (A cancel
 *  makes no work ready: the task listener hears of it.) It is
 *  called from the thread that made the change, after the core dropped its
 *  locks, so it may call back into the core; keep it cheap (signal, don't work). */
typedef void (*tk_wakeup_fn)(void* user);
/** Installs (or with NULL removes) the wake-up callback. When it returns, no
 *  call of the callback it replaced runs on another thread, so the old `user`
 *  may be freed (called from inside a callback of this core, it cannot wait
 *  for that call). On a PostgreSQL store the core listens for other
 *  processes' new work only while one is installed; installing one returns
 *  once it does (or after 5 s if the server cannot be reached). */
TK_API tk_status tk_set_wakeup(tk_core* core, tk_wakeup_fn fn, void* user, tk_error* err);
/** Called when a task reaches a final state ("complete", "error",
 *  "cancelled") through this core, after the change is committed, from the
 *  thread that made it and outside the core's locks. On a PostgreSQL store a
 *  task another process ended is reported too, from the core's listening
 *  thread; on SQLite it is not. */
typedef void (*tk_task_listener_fn)(void* user, int64_t task_id, const char* state);
/** Installs (or with NULL removes) the task listener; like tk_set_wakeup,
 *  it returns once no call of the replaced listener runs on another thread.
 *  On a PostgreSQL store the core listens for tasks other processes end only
 *  while one is installed; installing one returns once it does (or after 5 s if the
 *  server cannot be reached), so a task state read afterwards misses no
 *  ending. */
TK_API tk_status tk_set_task_listener(tk_core* core, tk_task_listener_fn fn, void* user,
                                      tk_error* err);

/* ---- pipelines and tasks --------------------------------------------- */

/** Registers a pipeline (task template). JSON:
 *  {"namespace": "...", "name": "...", "version": "...",
 *   "steps": [{"name": "...", "handler": "...", "method": "call", "config": {...},
 *              "dependencies": ["..."],
 *              "retry": {"max_attempts": 3,
 *                        "backoff": "none|linear|exponential|fibonacci",
 *                        "base_ms": 1000, "cap_ms": 30000, "jitter": 0.15,
 *                        "retryable": true},
 *              "timeout_ms": 0}],
 *   "input_schema": {...}}
 *  input_schema (optional) is a JSON Schema (draft 7; an object, true or
 *  false) every task's context must match: see tk_create_task. A schema using
 *  $ref (or another keyword that is not implemented and would change its
 *  meaning), an invalid one and one past the bounds are TK_VALIDATION naming
 *  the schema path ("pipeline ns/p@1: input_schema.properties.amount.minimum:
 *  must be a number, not string"). docs/guide.md lists the keywords.
 *  Registering the same namespace/name/version again with the same steps is a
 *  no-op; with different steps it is TK_CONFLICT (publish a new version).
 *  An invalid definition is TK_VALIDATION, as for tk_validate_pipeline. */
TK_API tk_status tk_register_pipeline(tk_core* core, const char* pipeline_json, tk_error* err);

/** Checks a pipeline definition exactly as tk_register_pipeline does, without
 *  a core or a store (the size cap is the default "max_json_bytes"): TK_OK
 *  when it is valid, else TK_MALFORMED_JSON, TK_TOO_LARGE, or TK_VALIDATION
 *  with every problem in `err->message`, one a line, each naming the
 *  pipeline and the step ("pipeline ns/p@1 step \"b\": unknown dependency
 *  \"x\""); when they do not all fit, the last line says how many more
 *  there are. Whether the store holds another definition under the same
 *  version (TK_CONFLICT at registration) is not checked. */
TK_API tk_status tk_validate_pipeline(const char* pipeline_json, tk_error* err);

/** What to run. */
typedef struct tk_task_spec {
  const char* namespace_name;  /**< pipeline namespace */
  const char* name;            /**< pipeline name */
  const char* version;         /**< pipeline version */
  const char* context_json;    /**< a JSON object: the task's input; NULL means {} */
  const char* idempotency_key; /**< NULL or a key: the same key returns the same task */
  int32_t priority;            /**< higher runs first; default 0 */
} tk_task_spec;

/** Creates a task; `*task_id` receives its id and `*created` (if not NULL) 1,
 *  or 0 when the idempotency key named an existing task, which is returned.
 *  A context that does not match the pipeline's input_schema is TK_VALIDATION
 *  and no task is created; the message names the path of each failing value,
 *  as many as fit ("pipeline ns/p@1: input_schema: $.amount: must be at least
 *  0 (is -5); $.customer: is required"). A context too large to check against
 *  its schema within the core's bound is TK_TOO_LARGE. */
TK_API tk_status tk_create_task(tk_core* core, const tk_task_spec* spec, int64_t* task_id,
                                int* created, tk_error* err);

/** Creates `count` tasks in one transaction: all or none (much faster than
 *  one call each on SQLite). task_ids[i] and created[i] (if not NULL) as for
 *  tk_create_task; on failure nothing is created and the message names the
 *  failing spec ("task 3 of 10: ..."). */
TK_API tk_status tk_create_tasks(tk_core* core, const tk_task_spec* specs, size_t count,
                                 int64_t* task_ids, int* created, tk_error* err);

/** The task's status as JSON (caller frees with tk_free): its state, priority,
 *  context, timestamps and every step's state, attempts, result, last error
 *  and timestamps; a step in state "waiting" has "wait": {"signal", "token",
 *  "timeout_at"}, and a step a signal reached has "signal": {"name",
 *  "payload"} (both null otherwise). */
TK_API tk_status tk_task_status(tk_core* core, int64_t task_id, char** status_json, tk_error* err);

/** The task's state alone ("pending", "running", "complete", "error",
 *  "cancelled"): cheaper than tk_task_status. `*state` is a static string. */
TK_API tk_status tk_task_state(tk_core* core, int64_t task_id, const char** state, tk_error* err);

/** Cancels a task: its unfinished steps become `cancelled`, none is handed out
 *  again, and completions of steps still running are rejected as TK_STALE.
 *  Cancelling a finished task is TK_CONFLICT. */
TK_API tk_status tk_cancel_task(tk_core* core, int64_t task_id, tk_error* err);

/** Runs a failed task again, in one transaction. Only a task in state
 *  "error" can be retried: any other state is TK_CONFLICT (the message names
 *  it), an unknown id TK_NOT_FOUND. The task is "running" again and its
 *  completed_at is cleared. Every step in "error" gets a fresh attempt
 *  budget: its attempts are reset to 0 (the next claim is attempt 1 of
 *  max_attempts again), its last_error is kept until it runs. A failed step
 *  and a step parked in "pending" become "ready" when all their parents are
 *  complete; the others stay "pending" and are released by their parents as
 *  usual. A parked step keeps its attempt count (it had not failed for good).
 *  Complete steps keep their results, which the steps run again receive as
 *  dependency results; steps still running go on. The wake-up callback fires
 *  (work is ready); the task listener hears of the task again when it ends. */
TK_API tk_status tk_retry_task(tk_core* core, int64_t task_id, tk_error* err);

/** Lists tasks, newest id last. filter_json: NULL or
 *  {"state": "running", "namespace": "...", "after": <task id>, "limit": 100}
 *  (limit 1..1000, default 100). Result: {"tasks": [{"id", "namespace", "name",
 *  "version", "state", "priority", "created_at", "updated_at"}...],
 *  "next": <id to pass as "after", or null when this was the last page>}. */
TK_API tk_status tk_list_tasks(tk_core* core, const char* filter_json, char** list_json,
                               tk_error* err);

/* ---- the worker interface -------------------------------------------- */

/** One claimed step. All pointers stay valid until the next tk_poll on the
 *  same worker or tk_worker_close; the strings are NUL-terminated and their
 *  lengths are given. */
typedef struct tk_step_event {
  int64_t task_id;
  int64_t step_id;
  const char* namespace_name;
  const char* step_name; /**< a batch worker's is its instance's: "<template>_001" */
  const char* handler;
  const char* handler_config;     /**< JSON object ({} when none) */
  const char* task_context;       /**< JSON object */
  const char* dependency_results; /**< JSON object: every ancestor's result keyed by step name */
  size_t step_name_len, handler_len, handler_config_len, task_context_len, dependency_results_len;
  int32_t attempt; /**< 1 on the first execution */
  int32_t max_attempts;
  int64_t fencing_token;       /**< pass back in tk_step_result */
  int64_t lease_expires_at_ms; /**< heartbeat before this, or the step is claimable again */
  int64_t timeout_ms;          /**< the step's timeout, 0 = none */
  /** This claim's wait token (see TK_RESULT_WAIT): unguessable, URL-safe.
   *  Valid only while this claim is current; give it to whoever will signal
   *  before answering TK_RESULT_WAIT if they may be quick. */
  const char* wait_token;
  /** The last signal this step received (tk_signal), or NULL: the name of the
   *  wait it answered and its JSON payload. A resumed step sees it, and so
   *  does any later attempt of the step, until the step waits again. */
  const char* signal_name;
  const char* signal_payload;
  size_t wait_token_len, signal_name_len, signal_payload_len;
  /** The step's own inputs, a JSON object ({} when none). A batch worker's
   *  holds its cursor: {"cursor": {"batch_id", "start_cursor", "end_cursor",
   *  "batch_size"}, "batch_metadata": {...}, "batch_config": {...},
   *  "is_no_op": false}. */
  const char* step_inputs;
  size_t step_inputs_len;
  /** The handler's entry point the step runs (its pipeline step's "method"):
   *  "call" when the step names none, never NULL. A worker that registered
   *  the handler without that method fails the step as handler_not_found. */
  const char* method;
  size_t method_len;
} tk_step_event;

/** What a worker claims and for how long: given once, when it opens; the
 *  worker keeps its own copies. Zero-initialise it (`tk_worker_options o =
 *  {0};` in C, `tk_worker_options o{};` in C++) and set what you need: every
 *  field's zero is its default. */
typedef struct tk_worker_options {
  /** Required, 1 to 255 bytes: identifies the worker in step status
   *  (claimed_by) and in lease-expiry errors. */
  const char* name;
  /** The namespaces it claims from and watches (tk_next_due); none (a
   *  count of 0): every namespace. */
  const char* const* namespaces;
  size_t namespace_count;
  /** The lease of every claim and heartbeat, > 0; 0: the core's option
   *  "default_lease_ms". */
  int64_t lease_ms;
} tk_worker_options;

/** Opens a worker handle. Returns NULL on failure with `err` filled. */
TK_API tk_worker* tk_worker_open(tk_core* core, const tk_worker_options* options, tk_error* err);
/** Closes a worker handle; its steps keep their leases until they run out. */
TK_API void tk_worker_close(tk_worker* worker);

/** Claims up to `max_events` ready steps of the worker's namespaces,
 *  highest task priority first, then those ready longest. Each claim counts
 *  an attempt and holds the worker's lease. `*events` points into the
 *  worker's pooled memory. Before claiming, the poll makes due retries of
 *  those namespaces ready and takes back steps whose lease ran out (ready
 *  again if attempts remain, else error "lease_expired"). */
TK_API tk_status tk_poll(tk_worker* worker, size_t max_events, const tk_step_event** events,
                         size_t* event_count, tk_error* err);

/** Milliseconds until the next timed event of the worker's namespaces (a
 *  retry backoff or a lease running out): 0 if something is claimable now,
 *  -1 if nothing is scheduled. A poller sets one timer for it instead of
 *  polling. */
TK_API tk_status tk_next_due(tk_worker* worker, int64_t* delay_ms, tk_error* err);

/** How a step ended. */
typedef enum tk_result_kind {
  TK_RESULT_SUCCESS = 0, /**< result_json holds the step's result */
  TK_RESULT_FAILURE = 1, /**< error_* fields say why */
  /** A durable wait: the step parks in state "waiting" (no lease, no worker
   *  slot) until tk_signal() delivers its event's wait_token, for at most
   *  wait_timeout_ms (required, > 0). A signal makes it "ready": it is handed
   *  to its handler again as the same attempt (not counted again), with the
   *  payload in the event's signal_payload. A signal that arrives while the
   *  step still runs is kept, and the wait then resumes at once. When the
   *  timeout passes first, the step fails as a retryable "timeout" under its
   *  retry policy; a retried attempt has a new token. */
  TK_RESULT_WAIT = 2,
  /** A checkpoint (Tasker's checkpoint yield): result_json (required, any
   *  JSON) is saved as the step's checkpoint and the step is "ready" again at
   *  once, handed out as the same attempt (not counted again). That run and
   *  every later attempt of the step see it in step_inputs' "checkpoint", so
   *  a long step resumes from its last checkpoint after a yield or a failure. */
  TK_RESULT_CHECKPOINT = 3
} tk_result_kind;

/** One step's result. */
typedef struct tk_step_result {
  int64_t step_id;
  int64_t fencing_token; /**< from the event */
  tk_result_kind kind;
  const char* result_json;   /**< success: any JSON value; NULL means null */
  const char* error_message; /**< failure: readable message */
  const char* error_type;    /**< failure: e.g. "retryable_error", "permanent_error" */
  int retryable;             /**< failure: nonzero lets the step's retry policy retry it */
  int64_t retry_after_ms;    /**< failure: > 0 overrides the policy's backoff */
  const char* wait_signal;   /**< wait: what it waits for, e.g. "approval" (1-255 bytes) */
  int64_t wait_timeout_ms;   /**< wait: > 0; then it fails as retryable "timeout" */
} tk_step_result;

/** Completes steps, each atomically with the release of its children. A
 *  failure the policy retries waits in `waiting_for_retry` for its backoff
 *  (or is `ready` at once when the delay is 0). For
 *  each result, `outcomes[i]` (if not NULL) receives TK_OK, TK_DUPLICATE
 *  (already completed by this claim: no-op), TK_STALE (not the current claim:
 *  rejected), TK_NOT_FOUND, or an input error code (malformed result JSON,
 *  too large) — one bad result does not stop the others. The call's status
 *  is TK_OK unless the call itself failed. */
TK_API tk_status tk_complete(tk_worker* worker, const tk_step_result* results, size_t count,
                             int* outcomes, tk_error* err);

/** tk_complete, then tk_poll, in one store transaction (one commit instead
 *  of two on SQLite): a worker's whole cycle in one call. `results` may be
 *  empty (count 0) and `max_events` 0. Outcomes and events as for the two
 *  calls; the claim sees the children the completions released. If the call
 *  fails, neither part happened. */
TK_API tk_status tk_complete_and_poll(tk_worker* worker, const tk_step_result* results,
                                      size_t count, int* outcomes, size_t max_events,
                                      const tk_step_event** events, size_t* event_count,
                                      tk_error* err);

/** Delivers a signal to a waiting step (see TK_RESULT_WAIT). `token` is the
 *  wait_token of the claim that waits; `payload_json` any JSON value (NULL
 *  means null). The step becomes ready and the wake-up callback fires; a
 *  signal that arrives while the claim still runs is kept until it waits.
 *  TK_NOT_FOUND: no claim has this token (malformed, forged, or its step is
 *  gone). TK_CONFLICT: the token was signalled already, or its wait ended
 *  (timed out, the step completed without waiting, the task failed or was
 *  cancelled); the message says which. */
TK_API tk_status tk_signal(tk_core* core, const char* token, const char* payload_json,
                           tk_error* err);

/** Extends the leases of running steps to now + the worker's lease.
 *  outcomes[i] as for tk_complete (TK_STALE when the claim is no longer
 *  current). */
TK_API tk_status tk_heartbeat(tk_worker* worker, const int64_t* step_ids,
                              const int64_t* fencing_tokens, size_t count, int* outcomes,
                              tk_error* err);

#ifdef __cplusplus
}
#endif

#endif /* TASKER_CORE_H */
