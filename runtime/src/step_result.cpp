#include <tasker/runtime/step_result.hpp>

namespace tasker {

step_result success(const json& value) {
  return success_raw(value.dump());
}

}  // namespace tasker
