// Creating tasks and waiting for them, from any thread that is not an actor
// (main, a test, a benchmark). Task operations call the core's thread-safe
// C ABI directly on the caller's thread (they never queue behind the claim
// loop); a wait blocks its caller until the core's task listener says the
// task ended, never polling on an interval.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tasker {

using json = nlohmann::json;

class pipeline;

/// A request the worker refused (unknown pipeline, bad input…) or a wait
/// that timed out; the message says which.
class client_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

struct create_options {
  std::string idempotency_key;  ///< empty: none; the same key returns the same task
  std::int32_t priority = 0;    ///< higher runs first
};

/// A worker's client. Thread-safe: each call runs on its caller's thread, so a
/// long wait never holds up other calls. Obtained from worker::client().
class client {
public:
  struct impl;
  explicit client(std::unique_ptr<impl> p);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Creates a task of namespace/name/version with `context` (a JSON object).
  std::int64_t create(const std::string& namespace_name, const std::string& name,
                      const std::string& version, const json& context = json::object(),
                      const create_options& options = {});
  /// Creates a task of `p`.
  std::int64_t create(const pipeline& p, const json& context = json::object(),
                      const create_options& options = {});

  /// Creates one task of `p` per context, in one round trip and one store
  /// transaction; ids in order. All or none: on a refusal nothing is created
  /// and the error names the item.
  std::vector<std::int64_t> create_many(const pipeline& p, const std::vector<json>& contexts,
                                        std::int32_t priority = 0);

  /// Blocks until the task ends; returns "complete", "error" or "cancelled".
  /// Throws client_error when `timeout` passes first.
  std::string wait(std::int64_t task_id,
                   std::chrono::milliseconds timeout = std::chrono::minutes{10});

  /// The task's status (see tk_task_status).
  json status(std::int64_t task_id);

  /// Cancels the task: its unfinished steps are cancelled and waiters hear
  /// "cancelled". Throws client_error for an unknown or already finished task.
  void cancel(std::int64_t task_id);

  /// Delivers a signal to the step waiting with `token` (see
  /// tasker::wait_for); `payload` is any JSON value. Throws client_error for
  /// an unknown token or one whose wait is over or was signalled already.
  void signal(const std::string& token, const json& payload = nullptr);

  /// Lists tasks (see tk_list_tasks): `filter` may hold "state", "namespace",
  /// "after" (a task id) and "limit" (1..1000, default 100); the answer is
  /// {"tasks": [...], "next": <id to pass as "after", or null>}.
  json list(const json& filter = json::object());

  /// The result of `step` in the task's status (null when it has none).
  json result(std::int64_t task_id, const std::string& step);

private:
  std::unique_ptr<impl> impl_;
};

}  // namespace tasker
