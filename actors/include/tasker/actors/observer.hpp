// The observer interface: what the poller tells about each step and each
// store call, so that metrics, profiling and tracing plug in from outside
// and no actor calls a metrics library. Plain C++ (no CAF), header only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tasker {
struct step_result;
}  // namespace tasker

namespace tasker::actors {

/// The clock of every timestamp in an event: the poller's actor clock (the
/// steady clock in a worker; virtual time under CAF's test coordinator).
using observer_clock = std::chrono::steady_clock;

/// How a step's run ended, as the poller hands its result to the core.
enum class step_outcome : std::uint8_t {
  succeeded,  ///< the handler answered with a success
  failed,     ///< a failure: the handler's own, or the runtime's (threw, died, not found…)
  timed_out,  ///< the handler did not answer within its timeout (`handler_timeout`)
  waited,     ///< the handler answered tasker::wait_for: the step waits for a signal
  yielded,    ///< the handler answered tasker::checkpoint: the step runs again at once
};

/// A call of the core's C ABI that the poller makes.
enum class core_call : std::uint8_t {
  poll,               ///< tk_poll: claim steps
  complete,           ///< tk_complete: record results
  complete_and_poll,  ///< tk_complete_and_poll: both in one store transaction
};

/// A step was claimed from the core (one event per step of a poll).
struct step_claimed_event {
  std::int64_t task_id;
  std::int64_t step_id;
  std::string_view namespace_name;
  std::string_view step_name;
  std::string_view handler;
  int attempt;  ///< 1 on the first execution
  observer_clock::time_point claimed_at;
};

/// A claimed step was handed to one of its handler's actors.
struct step_started_event {
  std::int64_t task_id;
  std::int64_t step_id;
  std::string_view namespace_name;
  std::string_view step_name;
  std::string_view handler;
  int attempt;
  observer_clock::time_point claimed_at;
  observer_clock::time_point started_at;
  void* cookie;  ///< what on_step_claimed returned for this step
};

/// A step has its result (which goes to the core with the next batch).
struct step_finished_event {
  std::int64_t task_id;
  std::int64_t step_id;
  std::string_view namespace_name;
  std::string_view step_name;
  std::string_view handler;
  int attempt;
  int max_attempts;
  step_outcome outcome;
  std::string_view error_type;  ///< empty on success
  bool started;                 ///< false: it never ran (e.g. no such handler)
  observer_clock::time_point claimed_at;
  observer_clock::time_point started_at;  ///< meaningful when `started`
  observer_clock::time_point finished_at;
  /// CPU time of the handler's thread during the call (function handlers,
  /// when the worker measures it); negative: not measured.
  std::chrono::nanoseconds cpu_time;
  void* cookie;  ///< what on_step_claimed returned for this step
  /// The result that goes to the core (set by the poller; null only in
  /// events a test or benchmark makes up).
  const step_result* result = nullptr;
};

/// A call that claims steps returned.
struct poll_event {
  core_call call;  ///< poll, or complete_and_poll (its duration is reported once, with the batch)
  std::size_t requested;
  std::size_t claimed;
  std::chrono::nanoseconds duration;  ///< of the store call (zero for complete_and_poll)
  bool ok;                            ///< false: the store call failed
};

/// A call that records results returned.
struct complete_batch_event {
  core_call call;  ///< complete, or complete_and_poll
  std::size_t size;
  std::chrono::nanoseconds duration;  ///< of the store call
  bool ok;                            ///< false: the store call failed (the results are kept)
};

/// Told of every step and store call of a poller (a poller may have several:
/// the logger, the profiler…; each gets its own cookies). Every hook runs on
/// the poller's thread, one at a time; per step the order is claimed, started
/// (unless it never ran), finished. Hooks must be quick and must not throw:
/// the poller waits for them. The string views live only during the call.
class observer {
public:
  virtual ~observer() = default;
  /// May return a pointer of the observer's own (e.g. its record for the
  /// step's handler); the poller hands it back in the step's later events.
  virtual void* on_step_claimed(const step_claimed_event&) noexcept { return nullptr; }
  virtual void on_step_started(const step_started_event&) noexcept {}
  virtual void on_step_finished(const step_finished_event&) noexcept {}
  virtual void on_poll(const poll_event&) noexcept {}
  virtual void on_complete_batch(const complete_batch_event&) noexcept {}
};

}  // namespace tasker::actors
