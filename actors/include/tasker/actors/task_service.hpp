// Task operations (register, create, status, list, cancel, signal, wait) as
// plain calls of the core's thread-safe C ABI, from whatever thread asks: the
// client and the HTTP actor call them directly, so they never queue behind
// the claim loop (River: client.go inserts, producer.go fetches). A task made
// here wakes the poller through the core's wake-up callback. Failures are
// core_errors.
//
// The service owns the core: it opens nothing, but it closes the handle it is
// given, last of all, after which no callback of the core can run. The poller
// and the HTTP actor borrow the core from it, so a worker keeps its service
// alive until every actor is gone.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include <tasker/core.hpp>
#include <tasker/messages/task_request.hpp>

namespace tasker::actors {

class task_service {
public:
  /// Takes the core (an empty handle is allowed: every call then fails).
  explicit task_service(core_handle core);
  /// Closes the core, then forgets the waiters (in this order: the core's
  /// threads may call the task listener until it is closed).
  ~task_service();
  task_service(const task_service&) = delete;
  task_service& operator=(const task_service&) = delete;

  /// The core, borrowed (for the poller); valid while the service lives.
  tk_core* core() const noexcept { return core_.get(); }

  /// Registers a pipeline (core JSON).
  caf::error register_pipeline(const std::string& pipeline_json) const;
  /// Creates a task; `created` (optional) tells whether it is new (false:
  /// its idempotency key named an existing task).
  caf::error create(const task_request& r, std::int64_t& id, bool* created = nullptr) const;
  /// Creates tasks in one store transaction, all or none; ids in order.
  caf::error create_many(const std::vector<task_request>& batch,
                         std::vector<std::int64_t>& ids) const;
  /// The task's status JSON.
  caf::error status(std::int64_t task_id, std::string& out) const;
  caf::error cancel(std::int64_t task_id) const;
  /// Delivers a signal (payload: JSON text; empty: null).
  caf::error signal(const std::string& token, const std::string& payload) const;
  /// Lists tasks (filter JSON; empty: none).
  caf::error list(const std::string& filter, std::string& out) const;
  /// One cheap store call (a one-task list): can the core answer now?
  caf::error ping() const;

  /// Blocks the calling thread until the task ends, then sets `state`
  /// ("complete", "error" or "cancelled"). The core's task listener says
  /// when (installed at the first wait); every `recheck` the task's state is
  /// also read, for an ending no listener reports (another process on a
  /// shared SQLite file). Fails with not_found for an unknown task and with
  /// caf::sec::request_timeout when `timeout` passes first.
  caf::error wait(std::int64_t task_id, std::chrono::milliseconds timeout, std::string& state,
                  std::chrono::milliseconds recheck = std::chrono::seconds{1}) const;

  /// Ends every wait, now and later, with caf::sec::runtime_error ("the
  /// worker stopped before task N ended"); the other calls still work.
  void stop_waits() const;

  struct waiters;

private:
  /// Declared before the core, so it outlives the core's threads.
  std::unique_ptr<waiters> waiters_;
  core_handle core_;
};

}  // namespace tasker::actors
