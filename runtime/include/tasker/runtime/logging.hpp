// spdlog set-up and the per-step log line (task and step ids on every line).
#pragma once

#include <string>

namespace tasker {

namespace actors {
struct step_report;
}

/// Configures spdlog's default logger once per process (later calls only
/// change the level).
void setup_logging(const std::string& level);

/// Logs one finished step: debug for successes, warn for failures.
void log_step(const actors::step_report& report);

}  // namespace tasker
