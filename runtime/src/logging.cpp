#include <tasker/runtime/logging.hpp>

#include <chrono>
#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <tasker/messages/step_result.hpp>

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

void step_logger::on_step_finished(const actors::step_finished_event& e) noexcept {
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  const auto run_us =
      e.started ? duration_cast<microseconds>(e.finished_at - e.started_at).count() : 0;
  try {
    const auto& r = *e.result;
    switch (r.kind) {
      case step_kind::success:
        spdlog::debug("task={} step={} name={} handler={} attempt={}/{} ok in {} us", e.task_id,
                      e.step_id, e.step_name, e.handler, e.attempt, e.max_attempts, run_us);
        return;
      case step_kind::wait:
        spdlog::info("task={} step={} name={} handler={} attempt={}/{} waits for signal \"{}\" "
                     "(up to {} ms)",
                     e.task_id, e.step_id, e.step_name, e.handler, e.attempt, e.max_attempts,
                     r.wait_signal, r.wait_timeout_ms);
        return;
      case step_kind::checkpoint:
        spdlog::debug("task={} step={} name={} handler={} attempt={}/{} checkpoint in {} us",
                      e.task_id, e.step_id, e.step_name, e.handler, e.attempt, e.max_attempts,
                      run_us);
        return;
      case step_kind::failure:
        spdlog::warn("task={} step={} name={} handler={} attempt={}/{} failed in {} us: {} ({}{})",
                     e.task_id, e.step_id, e.step_name, e.handler, e.attempt, e.max_attempts,
                     run_us, r.error_message, r.error_type, r.retryable ? ", retryable" : "");
        return;
    }
  } catch (...) {  // a log line is not worth a step
  }
}

}  // namespace tasker
