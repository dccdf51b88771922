// Task operations (register, create, status, list, cancel, signal) as plain
// calls of the core's thread-safe C ABI, from whatever thread asks: the
// client calls them directly, so they never queue behind the claim loop
// (River: client.go inserts, producer.go fetches). A task made here wakes
// the poller through the core's wake-up callback. Failures are core_errors.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include <tasker/core.h>
#include <tasker/messages/task_request.hpp>

namespace tasker::actors {

class task_service {
public:
  /// Shares the core with the poller (the last owner closes it).
  explicit task_service(std::shared_ptr<tk_core> core) : core_(std::move(core)) {}

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

private:
  std::shared_ptr<tk_core> core_;
};

}  // namespace tasker::actors
