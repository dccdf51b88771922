#include <tasker/runtime/logging.hpp>

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <tasker/actors/poller.hpp>

namespace tasker {

void setup_logging(const std::string& level) {
  static std::once_flag once;
  std::call_once(once, [] {
    auto logger = spdlog::stderr_color_mt("tasker");
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ %v");
    spdlog::set_default_logger(logger);
  });
  spdlog::set_level(spdlog::level::from_str(level));
}

void log_step(const actors::step_report& r) {
  if (r.result.succeeded) {
    spdlog::debug("task={} step={} name={} handler={} attempt={}/{} ok in {} us", r.task_id,
                  r.step_id, r.step_name, r.handler, r.attempt, r.max_attempts, r.run_time.count());
    return;
  }
  if (!r.result.wait_signal.empty()) {
    spdlog::info("task={} step={} name={} handler={} attempt={}/{} waits for signal \"{}\" "
                 "(up to {} ms)",
                 r.task_id, r.step_id, r.step_name, r.handler, r.attempt, r.max_attempts,
                 r.result.wait_signal, r.result.wait_timeout_ms);
    return;
  }
  spdlog::warn("task={} step={} name={} handler={} attempt={}/{} failed in {} us: {} ({}{})",
               r.task_id, r.step_id, r.step_name, r.handler, r.attempt, r.max_attempts,
               r.run_time.count(), r.result.error_message, r.result.error_type,
               r.result.retryable ? ", retryable" : "");
}

}  // namespace tasker
