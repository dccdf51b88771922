// The message a handler answers with: how its step ended.
#pragma once

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>

namespace tasker {

/// How a step ended, or that it waits for a signal. Build it with
/// tasker::success() / failure() / wait_for() (runtime/step_result.hpp)
/// rather than by hand.
struct step_result {
  bool succeeded = true;
  std::string result_json = "null";  ///< success: the step's result, a JSON text
  std::string error_message;         ///< failure: what went wrong
  std::string error_type;            ///< failure: e.g. "retryable_error", "permanent_error"
  bool retryable = true;             ///< failure: may the step's retry policy retry it?
  std::int64_t retry_after_ms = 0;   ///< failure: > 0 replaces the policy's backoff
  std::string wait_signal;           ///< non-empty: the step waits for this signal
  std::int64_t wait_timeout_ms = 0;  ///< wait: how long at most
  /// Set by the runtime, not by handlers: the thread CPU time of a function
  /// handler's call, when the worker profiles; -1: not measured.
  std::int64_t cpu_time_ns = -1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_result& x) {
  return f(caf::meta::type_name("tasker::step_result"), x.succeeded, x.result_json, x.error_message,
           x.error_type, x.retryable, x.retry_after_ms, x.wait_signal, x.wait_timeout_ms,
           x.cpu_time_ns);
}

}  // namespace tasker
