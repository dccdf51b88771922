// The PostgreSQL store's SQL, grouped by table, with the statement slots
// (each statement is prepared once per connection under its slot). Column
// lists and the fragments several statements share are macros, so every
// statement is one literal, spelled once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace tasker::core {

// ---- The layout every statement relies on.

// Step ids derive from their task's id and their index (schema 3): the id of
// step `idx` of task `t` is t * 2^20 + idx. A task's steps are then one
// range of the primary key, and no second index on (task_id, idx) has to be
// kept up to date by each of the four writes in a step's life. A pipeline
// has at most 2^20 steps here; task ids stay below 2^43 (beyond, the
// database refuses the step's id as out of range).
constexpr int step_index_bits = 20;
constexpr std::int64_t max_steps_per_task = std::int64_t{1} << step_index_bits;
#define TK_STEP_SPAN "1048576"  // 2^20, in SQL
// What schema 3's migration adds to every claim number (v3_claim_offset), in SQL.
#define TK_CLAIM_OFFSET "4294967296"
static_assert(max_steps_per_task == 1048576);
constexpr std::int64_t step_id_of(std::int64_t task_id, std::int64_t index) {
  return task_id * max_steps_per_task + index;
}
constexpr std::int64_t task_of_step(std::int64_t step_id) {
  return step_id >> step_index_bits;
}
// The steps of task T (an expression in SQL): `s.id BETWEEN ... AND ...`.
#define TK_STEPS_OF(T)                                                                             \
  " BETWEEN " T " * " TK_STEP_SPAN " AND " T " * " TK_STEP_SPAN " + " TK_STEP_SPAN " - 1 "

// A row's idx is its slot (schema 4): a pipeline step's index, or, for a
// batch worker instance, a place after them; tmpl then names the step it
// runs, and name and inputs are its own.
#define TK_STEP_COLS                                                                               \
  "s.id, s.task_id, s.idx, s.state, s.attempts, s.pending_parents, s.claim_seq, s.due_at, "        \
  "s.created_at, s.started_at, s.finished_at, s.result, s.last_error, s.claimed_by, "              \
  "s.wait_name, s.signal, s.signal_seq, s.resume, s.tmpl, s.name, s.inputs"
constexpr int step_col_count = 21;
#define TK_TASK_COLS                                                                               \
  "t.id, t.pipeline_id, t.state, t.priority, t.context, t.idempotency_key, t.created_at, "         \
  "t.updated_at, t.completed_at, t.steps_done, t.steps_total"
constexpr int task_col_count = 11;

// Statement slots.
enum slot : std::size_t {
  s_pipeline_insert,
  s_pipeline_find,
  s_pipeline_id,
  s_pipeline_by_id,
  s_idem_find,
  s_create,
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
  s_claim_ids,
  s_claim_both,
  s_tasks_locked,
  s_complete_steps,
  s_pending_steps,
  s_child,
  s_save_steps,
  s_save_tasks,
  s_park,
  s_heartbeat_rows,
  s_heartbeat_extend,
  s_next_due,
  s_notify,
  s_wait_expired,
  s_signal_task,
  s_signal_step,
  s_insert_steps,
};

// ---- tk_pipelines

inline const std::string sql_pipeline_insert =
    "INSERT INTO tk_pipelines (namespace, name, version, definition) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (namespace, name, version) DO NOTHING RETURNING id";
inline const std::string sql_pipeline_find =
    "SELECT id, definition FROM tk_pipelines WHERE namespace = $1 AND name = $2 AND version = $3";
inline const std::string sql_pipeline_id =
    "SELECT id FROM tk_pipelines WHERE namespace = $1 AND name = $2 AND version = $3";
inline const std::string sql_pipeline_by_id = "SELECT definition FROM tk_pipelines WHERE id = $1";
inline const std::string sql_namespaces = "SELECT DISTINCT namespace FROM tk_pipelines";

// ---- tk_tasks (a task is created with its steps)

inline const std::string sql_task_locked =
    "SELECT " TK_TASK_COLS " FROM tk_tasks t WHERE t.id = $1 FOR UPDATE";
inline const std::string sql_task_by_id = "SELECT " TK_TASK_COLS " FROM tk_tasks t WHERE t.id = $1";
inline const std::string sql_state_of = "SELECT state FROM tk_tasks WHERE id = $1";
// A task and its steps in one statement; ON CONFLICT: the idempotency key is
// taken (then no row comes back).
inline const std::string sql_create =
    "WITH t AS (INSERT INTO tk_tasks (pipeline_id, namespace, state, priority, context, "
    "idempotency_key, created_at, updated_at, steps_done, steps_total) "
    "VALUES ($1, $2, 'pending', $3, $4, $5, $6, $6, 0, $9) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id) "
    "INSERT INTO tk_steps (id, task_id, idx, namespace, priority, state, attempts, "
    "pending_parents, parents, claim_seq, due_at, created_at) "
    "SELECT t.id * " TK_STEP_SPAN " + u.ord - 1, t.id, u.ord - 1, $2, $3, u.state, "
    "0, u.parents, u.parents, 0, $6, $6 FROM t, unnest($7::int[], $8::text[]) WITH ORDINALITY "
    "AS u(parents, state, ord) "
    "ORDER BY u.ord RETURNING task_id";
// A batch's worker instances (transitions.hpp: expand), all in one statement.
inline const std::string sql_insert_steps =
    "INSERT INTO tk_steps (id, task_id, idx, tmpl, namespace, priority, state, attempts, "
    "pending_parents, parents, claim_seq, due_at, created_at, started_at, finished_at, result, "
    "name, inputs) SELECT v.id, v.task, v.idx, v.tmpl, v.ns, v.prio, v.state, 0, v.pending, 1, "
    "0, v.due, v.created, v.started, v.finished, v.result, v.name, v.inputs "
    "FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::int[], $5::text[], $6::int[], "
    "$7::text[], $8::int[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], "
    "$13::text[], $14::text[], $15::text[]) AS v(id, task, idx, tmpl, ns, prio, state, pending, "
    "due, created, started, finished, result, name, inputs)";
inline const std::string sql_idem_find =
    "SELECT id, pipeline_id FROM tk_tasks WHERE idempotency_key = $1";
// Lock order everywhere: tasks by id, then their steps by id.
inline const std::string sql_tasks_locked =
    "SELECT " TK_TASK_COLS " FROM tk_tasks t WHERE t.id = ANY($1::bigint[]) ORDER BY t.id "
    "FOR UPDATE";
inline const std::string sql_save_tasks =
    "UPDATE tk_tasks AS t SET state = v.state, updated_at = v.updated, "
    "completed_at = v.completed, steps_done = v.done, steps_total = v.total "
    "FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::int[], $6::int[]) "
    "AS v(id, state, updated, completed, done, total) WHERE t.id = v.id";
/// The list_tasks statement for slot s_list_0 + v: v & 1 filters by state,
/// v & 2 by namespace.
inline const std::string& sql_list_tasks(std::size_t v) {
  static std::string variants[4];
  if (variants[v].empty()) {
    std::string sql = "SELECT " TK_TASK_COLS " FROM tk_tasks t WHERE t.id > $1";
    int n = 2;
    if (v & 1)
      sql += " AND t.state = $" + std::to_string(n++);
    if (v & 2)
      sql += " AND t.namespace = $" + std::to_string(n++);
    sql += " ORDER BY t.id LIMIT $" + std::to_string(n);
    variants[v] = sql;
  }
  return variants[v];
}

// ---- tk_steps

inline const std::string sql_steps_of_task =
    "SELECT " TK_STEP_COLS " FROM tk_steps s WHERE s.id" TK_STEPS_OF("$1::bigint") "ORDER BY s.id";
inline const std::string sql_steps_of_task_locked =
    "SELECT " TK_STEP_COLS
    " FROM tk_steps s WHERE s.id" TK_STEPS_OF("$1::bigint") "ORDER BY s.id FOR UPDATE";
// The steps being completed, locked; and the children they may release, read
// without a row lock: every writer of a pending step holds its task's lock
// (taken by the statement before), so none can change them before this
// transaction ends, and a row lock would only cost a heap write and a WAL
// record per row. The children are named by id ($1) when this store knows
// the completed step's pipeline (it claimed the step), else all pending
// steps of the task are read ($2, task ids).
inline const std::string sql_complete_steps =
    "SELECT " TK_STEP_COLS " FROM tk_steps s WHERE s.id = ANY($1::bigint[]) ORDER BY s.id "
    "FOR UPDATE";
inline const std::string sql_pending_steps =
    "SELECT " TK_STEP_COLS " FROM tk_steps s WHERE s.id = ANY($1::bigint[]) AND "
    "s.state = 'pending' UNION ALL SELECT " TK_STEP_COLS " FROM unnest($2::bigint[]) AS k(task) "
    "JOIN tk_steps s ON s.id" TK_STEPS_OF("k.task") "WHERE s.state = 'pending'";
inline const std::string sql_child =
    "SELECT " TK_STEP_COLS " FROM tk_steps s WHERE s.id = $1 FOR UPDATE";
inline const std::string sql_save_steps =
    "UPDATE tk_steps AS s SET state = v.state, attempts = v.attempts, "
    "pending_parents = v.parents, claim_seq = v.seq, due_at = v.due, "
    "started_at = v.started, finished_at = v.finished, result = v.result, "
    "last_error = v.error, claimed_by = v.worker, wait_name = v.wait_name, signal = v.signal, "
    "signal_seq = v.signal_seq, resume = v.resume, inputs = v.inputs "
    "FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[], $5::bigint[], "
    "$6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[], "
    "$12::text[], $13::text[], $14::bigint[], $15::int[], $16::text[]) "
    "AS v(id, state, attempts, parents, seq, due, started, finished, result, error, worker, "
    "wait_name, signal, signal_seq, resume, inputs) "
    "WHERE s.id = v.id";
inline const std::string sql_park =
    "UPDATE tk_steps s SET state = 'pending' FROM unnest($1::bigint[]) AS k(task) "
    "WHERE s.id" TK_STEPS_OF("k.task") "AND s.state IN ('ready', 'waiting_for_retry', 'waiting')";
// Due retries become ready. SKIP LOCKED: rows another worker is promoting
// are its business, and nobody waits on anybody.
inline const std::string sql_promote =
    "UPDATE tk_steps SET state = 'ready' WHERE id IN (SELECT id FROM tk_steps "
    "WHERE namespace = ANY($1::text[]) AND state = 'waiting_for_retry' AND due_at <= $2 "
    "FOR UPDATE SKIP LOCKED)";
// Expired leases: the step and its task locked together, skipped if another
// worker holds either.
inline const std::string sql_expired =
    "SELECT " TK_STEP_COLS ", " TK_TASK_COLS " FROM tk_steps s JOIN tk_tasks t ON t.id = s.task_id"
    " WHERE s.namespace = ANY($1::text[]) AND s.state = 'running' AND s.due_at <= $2"
    " ORDER BY s.id LIMIT 1000 FOR UPDATE SKIP LOCKED";
// Waits that timed out, likewise.
inline const std::string sql_wait_expired =
    "SELECT " TK_STEP_COLS ", " TK_TASK_COLS " FROM tk_steps s JOIN tk_tasks t ON t.id = s.task_id"
    " WHERE s.namespace = ANY($1::text[]) AND s.state = 'waiting' AND s.due_at <= $2"
    " ORDER BY s.id LIMIT 1000 FOR UPDATE SKIP LOCKED";
// tk_signal: the task, then the step (the lock order), by the token's step
// id ($1) and claim ($2). A token minted before schema 3 (claim below 2^32)
// names its step through tk_step_alias; the step's last column says so.
#define TK_SIGNAL_ALIASED                                                                          \
  "EXISTS (SELECT 1 FROM tk_step_alias WHERE old_id = $1 AND $2::bigint < " TK_CLAIM_OFFSET ")"
#define TK_SIGNAL_STEP_ID                                                                          \
  "COALESCE((SELECT new_id FROM tk_step_alias WHERE old_id = $1 AND $2::bigint < " TK_CLAIM_OFFSET \
  "), $1)"
inline const std::string sql_signal_task =
    "SELECT " TK_TASK_COLS " FROM tk_tasks t WHERE t.id = (SELECT task_id FROM tk_steps "
    "WHERE id = " TK_SIGNAL_STEP_ID ") FOR UPDATE";
inline const std::string sql_signal_step =
    "SELECT " TK_STEP_COLS ", " TK_SIGNAL_ALIASED " FROM tk_steps s WHERE s.id = " TK_SIGNAL_STEP_ID
    " FOR UPDATE";
constexpr std::int64_t v3_claim_offset = std::int64_t{1} << 32;  // see migrate_to_3
static_assert(v3_claim_offset == 4294967296);
inline const std::string sql_heartbeat_rows =
    "SELECT " TK_STEP_COLS ", " TK_TASK_COLS " FROM tk_steps s JOIN tk_tasks t ON t.id = s.task_id"
    " WHERE s.id = ANY($1::bigint[]) ORDER BY s.id FOR UPDATE OF s";
inline const std::string sql_heartbeat_extend =
    "UPDATE tk_steps SET due_at = $2 WHERE id = ANY($1::bigint[]) AND due_at < $2";
// Per namespace, so that each probe is a plain index scan in due order: it
// marks the entries of finished rows dead as it passes them, and the next
// probe skips them (with `namespace = ANY` the planner takes a bitmap scan,
// which visits every dead row again, every time).
inline const std::string sql_next_due =
    "SELECT bool_or(r.ready), min(w.due_at), min(l.due_at), min(x.due_at) "
    "FROM unnest($1::text[]) AS n(ns) "
    "CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM tk_steps s WHERE s.namespace = n.ns AND "
    "s.state = 'ready') AS ready) r "
    "LEFT JOIN LATERAL (SELECT s.due_at FROM tk_steps s WHERE s.namespace = n.ns AND "
    "s.state = 'waiting_for_retry' ORDER BY s.due_at LIMIT 1) w ON true "
    "LEFT JOIN LATERAL (SELECT s.due_at FROM tk_steps s WHERE s.namespace = n.ns AND "
    "s.state = 'running' ORDER BY s.due_at LIMIT 1) l ON true "
    "LEFT JOIN LATERAL (SELECT s.due_at FROM tk_steps s WHERE s.namespace = n.ns AND "
    "s.state = 'waiting' ORDER BY s.due_at LIMIT 1) x ON true";

// ---- Claims (tk_steps, with their tasks)

// A claim is one statement: `pick` chooses the steps, `upd` applies
// claim_step's transition (transitions.cpp defines it: running, attempt
// counted, new fencing token, lease, start time, worker), `started` moves
// their pending tasks to running (SKIP LOCKED: a task being cancelled keeps
// its state, and the cancel ends it anyway), and the rows come back in claim
// order with their task and (for steps with parents) the results of their task's complete steps
// (`idx:length:result`..., encoding 2 of store/encodings.hpp), for the
// dependency results of the events.
// `upd` finds its rows by `s.id = ANY(ARRAY(SELECT id FROM pick))`, so that
// the generic plan expects a handful of rows and probes the primary key for
// each: joined to `pick` instead, it merge-joined `pick` with every row of
// tk_steps' and tk_tasks' primary keys, a scan that grew with the finished
// rows (10 ms instead of 2 for 64 steps among 20,000 tasks), and with both
// conditions some backends' plans probed every id for every row of `pick`
// (64 x 64 probes, 6 ms). The final select joins `pick` back for the order.
// The results of the task's complete pipeline steps (not a batch's
// instances: tmpl is null), for a claimed step with parents.
#define TK_CLAIM_DEPS                                                                              \
  "CASE WHEN upd.parents > 0 THEN (SELECT string_agg(a.idx || ':' || octet_length(a.result) "      \
  "|| ':' || a.result, '' ORDER BY a.idx) FROM tk_steps a WHERE a.state = 'complete' AND "         \
  "a.tmpl IS NULL AND a.id" TK_STEPS_OF("upd.task_id") ") END "
// Moves the claimed steps' pending tasks to running.
#define TK_CLAIM_STARTED(NOW)                                                                      \
  ", started AS (UPDATE tk_tasks SET state = 'running', updated_at = " NOW " WHERE id IN "         \
  "(SELECT x.id FROM (SELECT DISTINCT task_id FROM upd) u CROSS JOIN LATERAL (SELECT t.id "        \
  "FROM tk_tasks t WHERE t.id = u.task_id AND t.state = 'pending' FOR UPDATE SKIP LOCKED) x)) "
#define TK_CLAIM_TAIL(NOW, LEASE, WORKER, STARTED)                                                 \
  "upd AS (UPDATE tk_steps s SET state = 'running', attempts = s.attempts + 1 - s.resume, "        \
  "resume = 0, "                                                                                   \
  "claim_seq = s.claim_seq + 1, pending_parents = 0, due_at = " LEASE ", started_at = " NOW        \
  ", claimed_by = " WORKER " WHERE s.id = ANY(ARRAY(SELECT id FROM pick)) "                        \
  "RETURNING s.id, s.task_id, s.idx, "                                                             \
  "s.state, s.attempts, s.pending_parents, s.claim_seq, s.due_at, s.created_at, s.started_at, "    \
  "s.finished_at, s.result, s.last_error, s.claimed_by, s.wait_name, s.signal, s.signal_seq, "     \
  "s.resume, s.tmpl, s.name, s.inputs, s.parents)" STARTED " "                                     \
  "SELECT upd.id, upd.task_id, upd.idx, upd.state, upd.attempts, upd.pending_parents, "            \
  "upd.claim_seq, upd.due_at, upd.created_at, upd.started_at, upd.finished_at, upd.result, "       \
  "upd.last_error, upd.claimed_by, upd.wait_name, upd.signal, upd.signal_seq, "                    \
  "upd.resume, upd.tmpl, upd.name, upd.inputs, " TK_TASK_COLS ", p.prio, " TK_CLAIM_DEPS           \
  "FROM upd JOIN pick p ON p.id = upd.id JOIN tk_tasks t ON t.id = upd.task_id "                   \
  "ORDER BY p.src, p.prio DESC, p.ready_at, upd.id"
inline const std::string sql_claim =
    "WITH pick AS (SELECT s.id, s.priority AS prio, s.due_at AS ready_at, 0 AS src FROM "
    "tk_steps s "
    "WHERE s.namespace = $1 AND s.state = 'ready' ORDER BY s.priority DESC, s.due_at, s.id "
    "LIMIT $2 FOR UPDATE SKIP LOCKED), " TK_CLAIM_TAIL("$3", "$4", "$5", TK_CLAIM_STARTED("$3"));
// Steps this transaction made ready (hand-off): its lock on their tasks keeps
// them from any other writer. Their tasks are running already (a parent of
// each just completed in them), so `started` has nothing to do.
inline const std::string sql_claim_ids =
    "WITH pick AS (SELECT s.id, s.priority AS prio, s.due_at AS ready_at, 0 AS src FROM tk_steps s "
    "WHERE s.id = ANY($1::bigint[])), " TK_CLAIM_TAIL("$2", "$3", "$4", "");
// Both in one statement, hand-offs first: what a worker serving one
// namespace sends after each completion that released a child (one
// statement less per step on a task's path).
inline const std::string sql_claim_both =
    "WITH handed AS (SELECT s.id, s.priority AS prio, s.due_at AS ready_at, 0 AS src FROM "
    "tk_steps s WHERE s.id = ANY($6::bigint[])), queued AS (SELECT s.id, s.priority AS prio, "
    "s.due_at AS ready_at, 1 AS src FROM tk_steps s WHERE s.namespace = $1 AND s.state = 'ready' "
    "ORDER BY s.priority DESC, s.due_at, s.id LIMIT $2 FOR UPDATE SKIP LOCKED), "
    "pick AS (SELECT * FROM handed UNION ALL SELECT * FROM queued), " TK_CLAIM_TAIL(
        "$3", "$4", "$5", TK_CLAIM_STARTED("$3"));
constexpr int claim_prio_column = step_col_count + task_col_count;
constexpr int claim_done_column = claim_prio_column + 1;

// ---- Notifications

inline const std::string sql_notify = "SELECT pg_notify($1, $2)";

}  // namespace tasker::core
