// The message a handler receives: one claimed step.
#pragma once

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>

namespace tasker {

/// One claimed step, as a handler receives it. A plain value: the poller
/// fills it from the core's pooled event and moves it into a CAF message,
/// which is shared read-only from there (copy-on-write), never mutated by
/// two actors.
struct step_event {
  std::int64_t task_id = 0;
  std::int64_t step_id = 0;
  std::string namespace_name;
  std::string step_name;
  std::string handler;
  std::string handler_config = "{}";      ///< JSON object
  std::string task_context = "{}";        ///< JSON object
  std::string dependency_results = "{}";  ///< JSON object: every ancestor's result by step name
  std::int32_t attempt = 0;               ///< 1 on the first execution
  std::int32_t max_attempts = 0;
  std::int64_t fencing_token = 0;
  std::int64_t timeout_ms = 0;  ///< the step's own timeout (0: the handler's default)
  std::string wait_token;       ///< this claim's token, for tasker::wait_for (tk_signal)
  bool signalled = false;       ///< a signal reached this step (see signal_payload)
  std::string signal_name;      ///< the wait the last signal answered
  std::string signal_payload;   ///< its JSON payload
  /// The step's own inputs, a JSON object: a batch worker instance's cursor
  /// (tk_step_event::step_inputs).
  std::string step_inputs = "{}";
  std::string method = "call";  ///< the handler's entry point the step runs
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, step_event& x) {
  return f(caf::meta::type_name("tasker::step_event"), x.task_id, x.step_id, x.namespace_name,
           x.step_name, x.handler, x.handler_config, x.task_context, x.dependency_results,
           x.attempt, x.max_attempts, x.fencing_token, x.timeout_ms, x.wait_token, x.signalled,
           x.signal_name, x.signal_payload, x.step_inputs, x.method);
}

}  // namespace tasker
