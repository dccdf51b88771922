#include "store/postgres/rows.hpp"

#include <string>

#include "abi/error.hpp"

namespace tasker::core {

namespace {

step_state step_state_of(std::string_view s) {
  step_state out;
  if (!parse_step_state(s, out))
    fail(TK_STORE_ERROR, "unknown step state \"" + std::string(s) + "\" in the database");
  return out;
}

}  // namespace

due_info read_next_due(const pg_result& r) {
  due_info d;
  d.ready = !r.null(0, 0) && r.integer(0, 0) != 0;
  for (int col : {1, 2, 3})
    if (!r.null(0, col)) {
      auto v = r.integer(0, col);
      if (d.due < 0 || v < d.due)
        d.due = v;
    }
  return d;
}

step_row read_step(const pg_result& r, int row) {
  step_row s;
  s.id = r.integer(row, 0);
  s.task_id = r.integer(row, 1);
  s.index = static_cast<std::int32_t>(r.integer(row, 2));
  s.state = step_state_of(r.text(row, 3));
  s.attempts = static_cast<std::int32_t>(r.integer(row, 4));
  s.pending_parents = static_cast<std::int32_t>(r.integer(row, 5));
  s.claim_seq = r.integer(row, 6);
  s.due_at = r.integer(row, 7);
  s.created_at = r.integer(row, 8);
  s.started_at = r.time(row, 9);
  s.finished_at = r.time(row, 10);
  s.result.assign(r.text(row, 11));
  s.last_error.assign(r.text(row, 12));
  s.claimed_by.assign(r.text(row, 13));
  s.wait_name.assign(r.text(row, 14));
  s.signal.assign(r.text(row, 15));
  s.signal_seq = r.integer(row, 16);
  s.resume = r.integer(row, 17) != 0;
  s.slot = s.index;  // idx is the row's slot
  if (!r.null(row, 18))
    s.index = static_cast<std::int32_t>(r.integer(row, 18));
  s.name.assign(r.text(row, 19));
  s.inputs.assign(r.text(row, 20));
  return s;
}

task_row read_task_columns(const pg_result& r, int row, int at) {
  task_row t;
  t.id = r.integer(row, at + 0);
  task_state st{};
  if (!parse_task_state(r.text(row, at + 2), st))
    fail(TK_STORE_ERROR, "unknown task state in the database");
  t.state = st;
  t.priority = static_cast<std::int32_t>(r.integer(row, at + 3));
  t.context.assign(r.text(row, at + 4));
  t.idempotency_key.assign(r.text(row, at + 5));
  t.created_at = r.integer(row, at + 6);
  t.updated_at = r.integer(row, at + 7);
  t.completed_at = r.time(row, at + 8);
  t.steps_done = static_cast<std::int32_t>(r.integer(row, at + 9));
  t.steps_total = static_cast<std::int32_t>(r.integer(row, at + 10));
  return t;
}

pg_params save_steps_params(const std::vector<step_row>& steps) {
  std::string ids = "{", states = "{", attempts = "{", parents = "{", seqs = "{", due = "{",
              started = "{", finished = "{", results = "{", errors = "{", workers = "{",
              wait_names = "{", signals = "{", signal_seqs = "{", resumes = "{", inputs = "{";
  for (const auto& s : steps) {
    append_array_int(ids, s.id, false);
    append_array_text(states, to_string(s.state), false);
    append_array_int(attempts, s.attempts, false);
    append_array_int(parents, s.pending_parents, false);
    append_array_int(seqs, s.claim_seq, false);
    append_array_int(due, s.due_at, false);
    append_array_int(started, s.started_at, s.started_at < 0);
    append_array_int(finished, s.finished_at, s.finished_at < 0);
    append_array_text(results, s.result, s.result.empty());
    append_array_text(errors, s.last_error, s.last_error.empty());
    append_array_text(workers, s.claimed_by, s.claimed_by.empty());
    append_array_text(wait_names, s.wait_name, s.wait_name.empty());
    append_array_text(signals, s.signal, s.signal.empty());
    append_array_int(signal_seqs, s.signal_seq, false);
    append_array_int(resumes, s.resume ? 1 : 0, false);
    append_array_text(inputs, s.inputs, s.inputs.empty());
  }
  pg_params a;
  for (auto* arr : {&ids, &states, &attempts, &parents, &seqs, &due, &started, &finished, &results,
                    &errors, &workers, &wait_names, &signals, &signal_seqs, &resumes, &inputs}) {
    *arr += '}';
    a.add(*arr);
  }
  return a;
}

pg_params save_tasks_params(const std::vector<task_row>& tasks) {
  std::string ids = "{", states = "{", updated = "{", completed = "{", done = "{", total = "{";
  for (const auto& t : tasks) {
    append_array_int(ids, t.id, false);
    append_array_text(states, to_string(t.state), false);
    append_array_int(updated, t.updated_at, false);
    append_array_int(completed, t.completed_at, t.completed_at < 0);
    append_array_int(done, t.steps_done, false);
    append_array_int(total, t.steps_total, false);
  }
  pg_params a;
  for (auto* arr : {&ids, &states, &updated, &completed, &done, &total}) {
    *arr += '}';
    a.add(*arr);
  }
  return a;
}

}  // namespace tasker::core
