// The client's insides, shared by client.cpp and worker.cpp (which makes
// the client when it starts the poller). Private to the runtime.
#pragma once

#include <chrono>
#include <string>
#include <utility>

#include <caf/actor_system.hpp>

#include <tasker/actors/task_service.hpp>
#include <tasker/runtime/client.hpp>

namespace tasker {

namespace detail {

/// The readable part of an error a poller sent (its context string), or CAF's rendering.
std::string describe(caf::actor_system& sys, const caf::error& e);

}  // namespace detail

/// Task operations, waits included, call the core directly through `tasks`
/// (on the caller's thread).
struct client::impl {
  caf::actor_system& sys;
  const actors::task_service& tasks;  ///< the worker's; outlives the client

  impl(caf::actor_system& s, const actors::task_service& t) : sys(s), tasks(t) {}

  /// Throws the client_error for a failed task operation.
  void check(const caf::error& e) const {
    if (e)
      throw client_error(detail::describe(sys, e));
  }
};

}  // namespace tasker
