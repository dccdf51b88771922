// A client's request to create a task.
#pragma once

#include <cstdint>
#include <string>

#include <caf/meta/type_name.hpp>

namespace tasker {

/// What to run: a pipeline by namespace/name/version, with an input.
struct task_request {
  std::string namespace_name;
  std::string name;
  std::string version;
  std::string context_json = "{}";  ///< a JSON object
  std::string idempotency_key;      ///< empty: none
  std::int32_t priority = 0;        ///< higher runs first
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, task_request& x) {
  return f(caf::meta::type_name("tasker::task_request"), x.namespace_name, x.name, x.version,
           x.context_json, x.idempotency_key, x.priority);
}

}  // namespace tasker
