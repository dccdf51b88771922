// What the HTTP actor's I/O thread hands to its bridge actor.
#pragma once

#include <functional>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>

namespace tasker {

/// One request for the bridge actor to make (to the poller) on behalf of an
/// HTTP connection; `run` also arranges for the answer to go back to the
/// connection. Local only: it holds a function, so it never leaves the process.
struct http_call {
  std::function<void(caf::event_based_actor*)> run;
};

}  // namespace tasker

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(tasker::http_call)
