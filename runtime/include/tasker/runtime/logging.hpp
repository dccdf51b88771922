// spdlog set-up and the per-step log line (task and step ids on every line),
// written by an observer of the poller like any other.
#pragma once

#include <string>

#include <tasker/actors/observer.hpp>

namespace tasker {

/// Configures spdlog's default logger once per process (later calls only
/// change the level).
void setup_logging(const std::string& level);

/// Logs each finished step: debug for successes, info for waits, warn for
/// failures. Every worker has one among its poller's observers.
class step_logger : public actors::observer {
public:
  void on_step_finished(const actors::step_finished_event& e) noexcept override;
};

}  // namespace tasker
