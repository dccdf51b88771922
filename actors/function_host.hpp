// The actors that run function handlers: each answers a step_event with the
// step_result of one function call, one step at a time.
#pragma once

#include <functional>

#include <caf/fwd.hpp>

#include "messages/step_event.hpp"
#include "messages/step_result.hpp"

namespace tasker::actors {

/// A type-erased handler: the runtime wraps user functions (which take a
/// step_context) into this.
using step_function = std::function<step_result(const step_event&)>;

/// The behavior of one instance of a function handler. An exception the
/// function lets escape becomes a retryable `handler_error` failure.
caf::behavior function_host(caf::event_based_actor* self, step_function fn);

}  // namespace tasker::actors
