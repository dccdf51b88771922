// The client's insides, shared by client.cpp and worker.cpp (which makes
// the client when it starts the poller). Private to the runtime.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include <tasker/actors/poller.hpp>
#include <tasker/runtime/client.hpp>

namespace tasker {

namespace detail {

/// The readable part of an error a poller sent (its context string), or CAF's rendering.
std::string describe(caf::actor_system& sys, const caf::error& e);

}  // namespace detail

struct client::impl {
  caf::actor_system& sys;
  actors::poller_actor poller;
  std::mutex mu;  // one request at a time through the scoped actor
  caf::scoped_actor self;

  impl(caf::actor_system& s, actors::poller_actor p) : sys(s), poller(std::move(p)), self(s) {}

  template <class T, class... Ts>
  T ask(std::chrono::milliseconds timeout, Ts&&... xs) {
    std::lock_guard<std::mutex> g{mu};
    T out{};
    caf::error failed;
    self->request(poller, timeout, std::forward<Ts>(xs)...)
        .receive([&](T& value) { out = std::move(value); },
                 [&](caf::error& e) { failed = std::move(e); });
    if (failed)
      throw client_error(detail::describe(sys, failed));
    return out;
  }
};

}  // namespace tasker
