#include "store/postgres/migrations.hpp"

#include <algorithm>

#include "abi/error.hpp"
#include "store/postgres/queries.hpp"
#include "store/postgres/url.hpp"

namespace tasker::core {

namespace {

// Schema 1: pipelines, tasks and steps.
void migrate_to_1(pg_connection& db) {
  const std::string id = "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY";
  db.exec("CREATE TABLE tk_pipelines (" + id
          + ", namespace TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL, "
            "definition TEXT NOT NULL, UNIQUE (namespace, name, version))");
  db.exec("CREATE TABLE tk_tasks (" + id
          + ", pipeline_id BIGINT NOT NULL REFERENCES tk_pipelines (id), "
            "namespace TEXT NOT NULL, state TEXT NOT NULL, priority INTEGER NOT NULL, "
            "context TEXT NOT NULL, idempotency_key TEXT UNIQUE, created_at BIGINT NOT NULL, "
            "updated_at BIGINT NOT NULL, completed_at BIGINT, steps_done INTEGER NOT NULL)");
  db.exec("CREATE INDEX tk_tasks_by_state ON tk_tasks (state, id)");
  db.exec("CREATE TABLE tk_steps (" + id
          + ", task_id BIGINT NOT NULL REFERENCES tk_tasks (id), idx INTEGER NOT NULL, "
            "namespace TEXT NOT NULL, priority INTEGER NOT NULL, state TEXT NOT NULL, "
            "attempts INTEGER NOT NULL, pending_parents INTEGER NOT NULL, "
            "parents INTEGER NOT NULL, "
            "claim_seq BIGINT NOT NULL, due_at BIGINT NOT NULL, created_at BIGINT NOT NULL, "
            "started_at BIGINT, finished_at BIGINT, result TEXT, last_error TEXT, "
            "claimed_by TEXT, UNIQUE (task_id, idx))");
  // Partial indexes, as in SQLite: only rows a claim or a timer looks for.
  db.exec("CREATE INDEX tk_steps_claim ON tk_steps (namespace, priority DESC, due_at, id) "
          "WHERE state = 'ready'");
  db.exec("CREATE INDEX tk_steps_retry ON tk_steps (namespace, due_at) "
          "WHERE state = 'waiting_for_retry'");
  db.exec("CREATE INDEX tk_steps_lease ON tk_steps (namespace, due_at) WHERE state = 'running'");
  // Children waiting for their parents, which a completion locks by task.
  db.exec("CREATE INDEX tk_steps_pending ON tk_steps (task_id) WHERE state = 'pending'");
}

// Schema 2: durable waits (TK_RESULT_WAIT, tk_signal) and the wait-token secret.
void migrate_to_2(pg_connection& db) {
  db.exec("ALTER TABLE tk_steps ADD COLUMN wait_name TEXT, ADD COLUMN signal TEXT, "
          "ADD COLUMN signal_seq BIGINT NOT NULL DEFAULT 0, "
          "ADD COLUMN resume INTEGER NOT NULL DEFAULT 0");
  db.exec("CREATE INDEX tk_steps_wait ON tk_steps (namespace, due_at) WHERE state = 'waiting'");
  // Room on each page for a task row's next version: most updates of a
  // task (a step completed: steps_done, updated_at) leave its indexed
  // columns alone and can then be HOT updates, with no index entries.
  db.exec("ALTER TABLE tk_tasks SET (fillfactor = 70)");
  db.exec("CREATE TABLE tk_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  db.exec("INSERT INTO tk_meta (key, value) VALUES ('wait_secret', '" + wait_key::random().to_hex()
          + "')");
}

// Schema 3: step ids derived from (task id, index): see step_id_of.
void migrate_to_3(pg_connection& db) {
  auto big = db.exec("SELECT count(*) FROM tk_steps WHERE idx >= " TK_STEP_SPAN);
  if (big.integer(0, 0) > 0)
    fail(TK_STORE_ERROR, "schema version 3 allows at most 1,048,576 steps per task, and "
                             + std::to_string(big.integer(0, 0)) + " steps have a larger index");
  // Tasks created from now on get ids whose steps' ids lie above every
  // step id given out so far, so an old id never names a new step.
  auto m = db.exec("SELECT COALESCE(max(id), 0) FROM tk_tasks");
  auto n = db.exec("SELECT COALESCE(max(id), 0) FROM tk_steps");
  const auto next_task = std::max(m.integer(0, 0), task_of_step(n.integer(0, 0))) + 1;
  db.exec("ALTER TABLE tk_tasks ALTER COLUMN id RESTART WITH " + std::to_string(next_task));
  // Wait tokens name a step by id and claim: those of steps that may
  // still be signalled (running or waiting) stay valid through an
  // alias. Every claim number moves up by 2^32, so that a worker of the
  // older schema, still holding a claim under an old id, is fenced off
  // whatever step that id names now; tokens with a claim number below
  // 2^32 are the old ones (see pg_store::signal).
  db.exec("CREATE TABLE tk_step_alias (old_id BIGINT PRIMARY KEY, new_id BIGINT NOT NULL)");
  db.exec("INSERT INTO tk_step_alias (old_id, new_id) SELECT id, task_id * " TK_STEP_SPAN
          " + idx FROM tk_steps WHERE state IN ('running', 'waiting')");
  db.exec("ALTER TABLE tk_steps ALTER COLUMN id DROP IDENTITY IF EXISTS");
  db.exec("UPDATE tk_steps SET id = -id");  // no new id collides with an old one
  db.exec("UPDATE tk_steps SET id = task_id * " TK_STEP_SPAN " + idx, "
          "claim_seq = claim_seq + " TK_CLAIM_OFFSET ", "
          "signal_seq = CASE WHEN signal_seq > 0 THEN signal_seq + " TK_CLAIM_OFFSET " ELSE 0 END");
  db.exec("ALTER TABLE tk_steps DROP CONSTRAINT tk_steps_task_id_idx_key");
  db.exec("DROP INDEX tk_steps_pending");
}

// Schema 4: steps created as a task runs (decisions, batches). idx stays
// the row's slot; a batch worker instance names the step it runs in tmpl
// and has a name and inputs (its cursor) of its own. Tasks count the steps
// they created.
void migrate_to_4(pg_connection& db) {
  db.exec("ALTER TABLE tk_steps ADD COLUMN tmpl INTEGER, ADD COLUMN name TEXT, "
          "ADD COLUMN inputs TEXT");
  db.exec("ALTER TABLE tk_tasks ADD COLUMN steps_total INTEGER NOT NULL DEFAULT 0");
  db.exec(
      "UPDATE tk_tasks t SET steps_total = (SELECT count(*) FROM tk_steps s WHERE s.id" TK_STEPS_OF(
          "t.id") ")");
}

void apply_migration(pg_connection& db, int version) {
  switch (version) {
    case 1: return migrate_to_1(db);
    case 2: return migrate_to_2(db);
    case 3: return migrate_to_3(db);
    case 4: return migrate_to_4(db);
  }
  fail(TK_STORE_ERROR, "no migration to schema version " + std::to_string(version));
}

}  // namespace

void migrate(pg_connection& db, const std::string& schema, wait_key& key) {
  check_schema_name(schema);
  retrying([&] {
    pg_transaction tx{db};
    db.exec("SELECT pg_advisory_xact_lock(hashtext('tasker migrate " + schema + "'))");
    db.exec("CREATE SCHEMA IF NOT EXISTS \"" + schema + "\"");
    db.exec("CREATE TABLE IF NOT EXISTS tk_schema (version INTEGER NOT NULL)");
    auto v = db.exec("SELECT version FROM tk_schema");
    int found = v.rows() ? static_cast<int>(v.integer(0, 0)) : 0;
    if (found > schema_version)
      fail(TK_STORE_ERROR, "the database has schema version " + std::to_string(found)
                               + "; this core knows version " + std::to_string(schema_version));
    for (int next = found + 1; next <= schema_version; ++next)
      apply_migration(db, next);
    if (found == 0)
      db.exec("INSERT INTO tk_schema (version) VALUES (" + std::to_string(schema_version) + ")");
    else if (found != schema_version)
      db.exec("UPDATE tk_schema SET version = " + std::to_string(schema_version));
    auto k = db.exec("SELECT value FROM tk_meta WHERE key = 'wait_secret'");
    if (k.rows() == 0 || !wait_key::from_hex(k.text(0, 0), key))
      fail(TK_STORE_ERROR, "the database's wait-token secret is missing or malformed");
    tx.commit();
  });
}

}  // namespace tasker::core
