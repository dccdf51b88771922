// How the PostgreSQL store's rows map to step_row and task_row: reading the
// column lists of queries.hpp, and the array parameters of the statements
// that save rows.
#pragma once

#include <vector>

#include "store/postgres/connection.hpp"
#include "store/store.hpp"

namespace tasker::core {

/// What sql_next_due found.
struct due_info {
  bool ready = false;
  millis due = -1;
};

/// Reads sql_next_due's one row: ready somewhere, and the earliest due time.
due_info read_next_due(const pg_result& r);

/// Reads the TK_STEP_COLS of `row`.
step_row read_step(const pg_result& r, int row);

/// Reads the TK_TASK_COLS of `row` from column `at`, all but the pipeline
/// (column at + 1 holds its id), which the caller resolves.
task_row read_task_columns(const pg_result& r, int row, int at);

/// The parameters of sql_save_steps: one array per column.
pg_params save_steps_params(const std::vector<step_row>& steps);

/// The parameters of sql_save_tasks: one array per column.
pg_params save_tasks_params(const std::vector<task_row>& tasks);

}  // namespace tasker::core
