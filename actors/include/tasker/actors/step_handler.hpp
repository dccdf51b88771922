// The handler protocol, written once: a step_event in, a step_result out.
// Function hosts, actor handlers and the poller's routes all use this alias,
// so a handler that answers anything else is a compile error. Light on
// purpose (forward declarations only): the worker's public header needs it.
#pragma once

#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>

#include <tasker/messages/step_event.hpp>
#include <tasker/messages/step_result.hpp>

namespace caf {
template <class...>
class typed_behavior;
}  // namespace caf

namespace tasker::actors {

/// The one signature of every handler.
using step_handler_signature = caf::replies_to<step_event>::with<step_result>;

/// A handler actor: answers each step_event with its step_result (directly,
/// or later through a response promise).
using step_handler_actor = caf::typed_actor<step_handler_signature>;

/// What a handler actor's function returns, and the self it gets.
using step_handler_behavior = caf::typed_behavior<step_handler_signature>;
using step_handler_pointer = caf::typed_event_based_actor<step_handler_signature>*;

}  // namespace tasker::actors
