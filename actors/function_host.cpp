#include "actors/function_host.hpp"

#include <exception>
#include <string>

#include <caf/event_based_actor.hpp>

#include "actors/poller.hpp"

namespace tasker::actors {

caf::behavior function_host(caf::event_based_actor*, step_function fn) {
  return {
      [fn = std::move(fn)](const step_event& event) -> step_result {
        try {
          return fn(event);
        } catch (const std::exception& e) {
          return runtime_failure(std::string("the handler threw: ") + e.what(), "handler_error",
                                 true);
        } catch (...) {
          return runtime_failure("the handler threw a non-standard exception", "handler_error",
                                 true);
        }
      },
  };
}

}  // namespace tasker::actors
