// Building a handler's answer.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "messages/step_result.hpp"

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

}  // namespace tasker
