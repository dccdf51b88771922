// The message a handler answers with: how its step ended, the builders that
// make one, and the runtime's own failure vocabulary.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <caf/meta/type_name.hpp>

namespace tasker {

/// How a step's run ended, as its handler (or the runtime) says.
enum class step_kind : std::uint8_t {
  success,  ///< result_json is the step's result
  failure,  ///< the error_* fields say why; the retry policy decides what follows
  wait,     ///< the step parks until a signal named wait_signal arrives
  /// result_json is a checkpoint: the step runs again at once, as the same
  /// attempt, and sees it (step_context::checkpoint())
  checkpoint,
};

/// The name of `k` ("success", "failure", "wait"): for logs, and for CAF's
/// deep_to_string (a test's failure report prints the result's kind).
inline std::string to_string(step_kind k) {
  switch (k) {
    case step_kind::success: return "success";
    case step_kind::failure: return "failure";
    case step_kind::wait: return "wait";
    case step_kind::checkpoint: return "checkpoint";
  }
  return "unknown";
}

/// The failures the runtime itself reports in step_result::error_type (a
/// handler may use any other type of its own).
enum class step_error : std::uint8_t {
  handler_error,      ///< the handler threw, or its actor died or failed (retryable)
  handler_timeout,    ///< the handler did not answer within its timeout (retryable)
  handler_not_found,  ///< no handler of the step's name is registered with the worker (permanent)
  malformed_result,   ///< the core refused the result: bad JSON or over the size limit (permanent)
  validation_error,   ///< the step's input does not fit what the handler reads (permanent)
};

/// The name of `e` as it is stored in the core (e.g. "handler_timeout").
constexpr std::string_view to_string(step_error e) noexcept {
  switch (e) {
    case step_error::handler_error: return "handler_error";
    case step_error::handler_timeout: return "handler_timeout";
    case step_error::handler_not_found: return "handler_not_found";
    case step_error::malformed_result: return "malformed_result";
    case step_error::validation_error: return "validation_error";
  }
  return "handler_error";
}

/// Whether the step's retry policy may retry a failure of type `e`.
constexpr bool retryable(step_error e) noexcept {
  return e == step_error::handler_error || e == step_error::handler_timeout;
}

/// How a step ended, or that it waits for a signal. Build it with
/// success_raw() / failure() / wait_for() below (or tasker::success() of
/// runtime/step_result.hpp for a JSON value) rather than by hand.
struct step_result {
  step_kind kind = step_kind::success;
  std::string result_json = "null";  ///< success: the step's result, a JSON text
  std::string error_message;         ///< failure: what went wrong
  std::string error_type;            ///< failure: e.g. "retryable_error", "permanent_error"
  bool retryable = true;             ///< failure: may the step's retry policy retry it?
  std::int64_t retry_after_ms = 0;   ///< failure: > 0 replaces the policy's backoff
  std::string wait_signal;           ///< wait: the signal the step waits for
  std::int64_t wait_timeout_ms = 0;  ///< wait: how long at most
  /// Set by the runtime, not by handlers: the thread CPU time of a function
  /// handler's call, when the worker profiles; -1: not measured.
  std::int64_t cpu_time_ns = -1;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_result& x) {
  return f(caf::meta::type_name("tasker::step_result"), x.kind, x.result_json, x.error_message,
           x.error_type, x.retryable, x.retry_after_ms, x.wait_signal, x.wait_timeout_ms,
           x.cpu_time_ns);
}

/// A success whose result is an already serialised JSON text. The core
/// validates it; a malformed text turns the step into a permanent
/// `malformed_result` failure.
inline step_result success_raw(std::string json_text) {
  step_result r;
  r.result_json = std::move(json_text);
  return r;
}

/// A failure. `error_type` follows Tasker's vocabulary ("retryable_error",
/// "permanent_error", "validation_error", "timeout", "handler_error"…);
/// `retryable` lets the step's retry policy retry it; a positive
/// `retry_after` replaces the policy's backoff (e.g. an HTTP Retry-After).
inline step_result failure(std::string message, std::string error_type = "handler_error",
                           bool retryable = true,
                           std::chrono::milliseconds retry_after = std::chrono::milliseconds{0}) {
  step_result r;
  r.kind = step_kind::failure;
  r.error_message = std::move(message);
  r.error_type = std::move(error_type);
  r.retryable = retryable;
  r.retry_after_ms = retry_after.count() > 0 ? static_cast<std::int64_t>(retry_after.count()) : 0;
  return r;
}

/// A failure of the runtime's own (a timeout, a dead handler…): retryable
/// as tasker::retryable(type) says.
inline step_result failure(step_error type, std::string message) {
  return failure(std::move(message), std::string(to_string(type)), retryable(type));
}

/// A durable wait: the step parks without holding a worker slot or a lease
/// until a signal for this claim's token (step_context::wait_token()) comes
/// through tk_signal, `tasker signal` or POST /v1/signals/{token}; then the
/// handler runs again, as the same attempt, and step_context::signal() holds
/// the payload. Without a signal within `timeout` (> 0) the step fails as a
/// retryable "timeout" under its retry policy.
inline step_result wait_for(std::string signal_name, std::chrono::milliseconds timeout) {
  step_result r;
  r.kind = step_kind::wait;
  r.wait_signal = std::move(signal_name);
  r.wait_timeout_ms = static_cast<std::int64_t>(timeout.count());
  return r;
}

/// A checkpoint yield, from a serialised JSON text (any JSON; the core
/// validates it): the core keeps it, and the step is handed to its handler
/// again at once, as the same attempt; that run and every later attempt see
/// the last checkpoint (step_context::checkpoint()), so a long step resumes
/// where it was after a yield or a failure. tasker::checkpoint(json) of
/// runtime/step_result.hpp takes a JSON value.
inline step_result checkpoint_raw(std::string json_text) {
  step_result r;
  r.kind = step_kind::checkpoint;
  r.result_json = std::move(json_text);
  return r;
}

}  // namespace tasker
