// Building a handler's answer.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include <tasker/messages/step_result.hpp>

namespace tasker {

using json = nlohmann::json;

/// A success whose result is `value` (any JSON; an object by convention).
step_result success(const json& value = json::object());

/// A success whose result is an already serialised JSON text. The core
/// validates it; a malformed text turns the step into a permanent
/// `malformed_result` failure.
step_result success_raw(std::string json_text);

/// A failure. `error_type` follows Tasker's vocabulary ("retryable_error",
/// "permanent_error", "validation_error", "timeout", "handler_error"…);
/// `retryable` lets the step's retry policy retry it; a positive
/// `retry_after` replaces the policy's backoff (e.g. an HTTP Retry-After).
step_result failure(std::string message, std::string error_type = "handler_error",
                    bool retryable = true,
                    std::chrono::milliseconds retry_after = std::chrono::milliseconds{0});

/// A durable wait: the step parks without holding a worker slot or a lease
/// until a signal for this claim's token (step_context::wait_token()) comes
/// through tk_signal, `tasker signal` or POST /v1/signals/{token}; then the
/// handler runs again, as the same attempt, and step_context::signal() holds
/// the payload. Without a signal within `timeout` (> 0) the step fails as a
/// retryable "timeout" under its retry policy.
step_result wait_for(std::string signal_name, std::chrono::milliseconds timeout);

}  // namespace tasker
