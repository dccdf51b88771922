#include <tasker/runtime/step_result.hpp>

#include <utility>

namespace tasker {

step_result success(const json& value) {
  step_result r;
  r.succeeded = true;
  r.result_json = value.dump();
  return r;
}

step_result success_raw(std::string json_text) {
  step_result r;
  r.succeeded = true;
  r.result_json = std::move(json_text);
  return r;
}

step_result failure(std::string message, std::string error_type, bool retryable,
                    std::chrono::milliseconds retry_after) {
  step_result r;
  r.succeeded = false;
  r.result_json = "null";
  r.error_message = std::move(message);
  r.error_type = std::move(error_type);
  r.retryable = retryable;
  r.retry_after_ms = retry_after.count() > 0 ? static_cast<std::int64_t>(retry_after.count()) : 0;
  return r;
}

step_result wait_for(std::string signal_name, std::chrono::milliseconds timeout) {
  step_result r;
  r.succeeded = false;
  r.result_json = "null";
  r.wait_signal = std::move(signal_name);
  r.wait_timeout_ms = static_cast<std::int64_t>(timeout.count());
  return r;
}

}  // namespace tasker
