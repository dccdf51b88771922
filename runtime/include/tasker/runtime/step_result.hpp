// Building a handler's answer: the builders of messages/step_result.hpp,
// plus a success from a JSON value.
#pragma once

#include <nlohmann/json.hpp>

#include <tasker/messages/step_result.hpp>

namespace tasker {

using json = nlohmann::json;

/// A success whose result is `value` (any JSON; an object by convention).
step_result success(const json& value = json::object());

}  // namespace tasker
