// The PostgreSQL store (libpq): many worker processes on many machines share
// one database. Same semantics as the other stores (transitions.cpp), but
// set-based: a batch of completions or claims is a handful of statements,
// not a handful per step, because every statement is a network round trip.
//
// The driver's parts: connection.hpp (libpq, pipelining, transactions),
// listener.hpp (the LISTEN thread), queries.hpp (the SQL), migrations.hpp
// (the schema), rows.hpp (rows <-> columns), url.hpp (options). The store's
// calls are in pg_store.cpp (tasks and pipelines) and claims.cpp (a
// worker's calls: claim, complete, heartbeat, lapsed leases).
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/transitions.hpp"
#include "store/postgres/connection.hpp"
#include "store/postgres/listener.hpp"
#include "store/postgres/rows.hpp"
#include "store/postgres/url.hpp"
#include "store/store.hpp"

namespace tasker::core {

class pg_store final : public store {
public:
  explicit pg_store(const pg_options& o);
  ~pg_store() override { listener_.reset(); }

  void watch(std::function<void(const effects&)> fn) override;
  void interest(bool work_ready, bool finished) override;
  void inject_fault(std::int64_t n) override { db_.fail_after(n); }
  pipeline_ptr register_pipeline(std::shared_ptr<pipeline_def> p) override;
  create_outcome create_task(const task_request& r, millis now, effects& fx) override;
  void create_tasks(const task_request* r, std::size_t n, millis now, create_outcome* out,
                    effects& fx) override;
  std::string task_status(std::int64_t task_id) override;
  task_state state_of(std::int64_t task_id) override;
  void cancel_task(std::int64_t task_id, millis now) override;
  void retry_task(std::int64_t task_id, millis now, effects& fx) override;
  std::string list_tasks(const list_request& r) override;
  void claim(const claim_request& r, event_buffer& out, std::mt19937_64& rng, effects& fx) override;
  void complete(const tk_step_result* results, std::size_t count, int* outcomes, millis now,
                std::mt19937_64& rng, effects& fx) override;
  void complete_and_claim(const tk_step_result* results, std::size_t count, int* outcomes,
                          const claim_request& r, event_buffer& out, std::mt19937_64& rng,
                          effects& fx) override;
  void heartbeat(const std::int64_t* step_ids, const std::int64_t* tokens, std::size_t count,
                 millis lease_until, int* outcomes) override;
  void signal(std::int64_t step_id, std::int64_t seq, std::string_view payload, millis now,
              effects& fx) override;
  millis next_due(const std::vector<std::string>& namespaces, millis now) override;

private:
  pg_options options_;
  pg_connection db_;
  std::string ready_channel_, done_channel_;
  std::unique_ptr<pg_listener> listener_;

  std::unordered_map<std::int64_t, pipeline_ptr> pipelines_;    // immutable once stored
  std::unordered_map<std::string, std::int64_t> pipeline_ids_;  // "ns\nname\nversion" -> id
  /// Per pipeline id: its steps' parent counts and first states, as arrays
  /// ("{0,1,1}", "{ready,pending,dormant}") for the statement creating a task.
  struct initial_arrays {
    std::string parents, states;
  };
  std::unordered_map<std::int64_t, initial_arrays> initial_;

  due_info next_due_;
  std::vector<std::string> next_due_namespaces_;
  bool next_due_fresh_ = false;
  // What the last claim saw (its batch ends with the next_due query), so a
  // claim runs the statements for due retries and lapsed leases only when
  // one may be due: a statement saved per claim each.
  millis running_due_ = -1;    ///< earliest lease end
  millis waiting_due_ = -1;    ///< earliest retry (also lowered by our own failures)
  millis wait_end_ = -1;       ///< earliest end of a signal wait (also lowered by our own)
  bool check_expired_ = true;  ///< unknown yet, or a lapsed lease was left
  bool check_waiting_ = true;  ///< unknown yet
  int full_claims_ = 0;        ///< claims in a row that took as many steps as they asked for
  millis due_asked_at_ = -1;   ///< when a claim last asked for the next due time
  static constexpr millis due_refresh_ms = 100;
  /// Pipeline of each step this store claimed and has not completed yet
  /// (pipelines_ keeps them): a completion of those reads just the children
  /// it may release, by id.
  struct claimed_as {
    const pipeline_def* pipeline;
    int index;  ///< the step it runs (a batch worker instance's template)
  };
  std::unordered_map<std::int64_t, claimed_as> pipeline_of_;

  std::vector<std::int64_t> handoffs_;  // from complete_in_transaction to claim_in_transaction
  std::vector<std::string> ready_ns_;   ///< namespaces given ready work by this call (NOTIFY)

  // The namespaces this core's claims asked for: the LISTEN thread wakes it
  // only for those (before its first claim, and after a claim of "all": any).
  mutable std::mutex served_mu_;
  std::vector<std::string> served_;
  bool serve_all_ = true;
  bool claimed_yet_ = false;

  std::vector<std::string> namespaces_;  // of every registered pipeline, refreshed each second
  std::chrono::steady_clock::time_point namespaces_at_{};

  // Pipelines, namespaces, rows and notifications (pg_store.cpp).
  bool serves(std::string_view ns) const;
  void note_served(const std::vector<std::string>& namespaces);
  const initial_arrays& initial_rows_of(const pipeline_def& p);
  /// A decision or batchable step succeeded: its outcome applied to the
  /// whole task (transitions.hpp: expand), merged into `steps` (the rows of
  /// this call, `dirty` marks those to save) with new rows in `inserted`.
  /// Returns what expand did.
  expansion expand_task(task_row& t, std::int64_t step_id, std::vector<step_row>& steps,
                        std::vector<bool>& dirty,
                        std::unordered_map<std::int64_t, std::size_t>& step_at,
                        std::vector<std::pair<const task_row*, step_row>>& inserted, millis now);
  /// Queues one statement inserting new rows, each of its task.
  void insert_steps(const std::vector<std::pair<const task_row*, step_row>>& rows);
  void notify(const effects& fx);
  void known_namespace(const std::string& ns);
  const std::vector<std::string>& all_namespaces();
  pipeline_ptr pipeline_by_id(std::int64_t id);
  std::int64_t pipeline_id(const task_request& r);
  task_row lock_task_and_steps(std::int64_t task_id, std::vector<step_row>& steps);
  task_row task_and_steps(const std::vector<pg_result>& r, std::size_t ti, std::size_t si,
                          std::int64_t task_id, std::vector<step_row>& steps);
  task_row read_task(const pg_result& r, int row, int at);
  void save_steps(const std::vector<step_row>& steps);
  void save_tasks(const std::vector<task_row>& tasks);

  // A worker's calls, inside their transaction (claims.cpp).
  void park(const std::vector<std::int64_t>& task_ids);
  void complete_in_transaction(const tk_step_result* results, std::size_t count, int* outcomes,
                               millis now, std::mt19937_64& rng, effects& fx,
                               std::size_t handoff_max = 0);
  void claim_in_transaction(const claim_request& r, event_buffer& out, std::mt19937_64& rng,
                            effects& fx, pg_transaction& tx);
  void take_back_expired(const std::string& ns_list, millis now, std::mt19937_64& rng, effects& fx);
};

}  // namespace tasker::core
