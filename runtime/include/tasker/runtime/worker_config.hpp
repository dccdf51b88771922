// A worker's settings, on CAF's actor_system_config: from defaults, an INI
// file, TASKER_* environment variables and the command line.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor_system_config.hpp>

namespace tasker {

/// Settings of a worker. Precedence: command line > TASKER_* environment >
/// INI file (`--config-file=PATH`, default ./tasker.ini when present) > defaults.
/// CAF's own settings (scheduler.*, logger.*) are accepted too.
struct worker_config : caf::actor_system_config {
  std::string store = "sqlite:tasker.db";  ///< memory: | sqlite:PATH | postgresql://…
  std::string namespaces;                  ///< comma-separated; empty: all
  std::string name;                        ///< in step status; default host:pid
  std::size_t max_in_flight = 128;         ///< steps claimed and not yet completed
  std::size_t batch_size = 64;             ///< steps per poll of the core
  std::size_t threads = 0;                 ///< scheduler threads; 0: one per core
  std::string log_level = "info";          ///< trace|debug|info|warn|error|off
  std::int64_t lease_ms = 30000;           ///< lease per claim, heartbeated at a third of it
  std::int64_t fallback_poll_ms = 1000;    ///< safety-net poll interval
  std::int64_t drain_ms = 10000;           ///< shutdown: how long running steps may finish
  std::string templates;                   ///< a directory of YAML templates to load at start
  /// The environment whose overrides pipelines run with (Tasker's
  /// `environments`; env TASKER_ENV, as in Tasker). Empty: none. A pipeline
  /// that does not define it runs as written.
  std::string environment;
  /// A template of `templates` that does not load is logged and left out, and
  /// the worker serves the others; without it, the worker does not start.
  bool skip_invalid_templates = false;
  // The HTTP API (off unless http-port is set; docs/guide.md, "HTTP API").
  std::int64_t http_port = -1;                ///< -1: no HTTP server; 0: an ephemeral port
  std::string http_bind = "127.0.0.1";        ///< address the HTTP server listens on
  std::string http_token;                     ///< bearer token; empty: no authentication
  std::size_t http_max_body = 1 << 20;        ///< request bodies up to this many bytes
  std::int64_t http_read_timeout_ms = 10000;  ///< to read a request or write an answer
  std::int64_t http_idle_timeout_ms = 30000;  ///< an idle keep-alive connection closes then
  /// Per-handler metrics (counts, queue/run/CPU-time histograms) for
  /// worker::metrics_text(), DogStatsD and the summary line. On by default:
  /// recording costs well under a microsecond per step (docs/benchmarks.md).
  bool profile = true;
  /// The `--no-profile` flag (CAF 0.17 takes no value after a boolean flag,
  /// so `--profile=false` cannot be spelled); parse_args applies it to `profile`.
  bool no_profile = false;
  std::string statsd;                        ///< DogStatsD "host:port" over UDP; empty: off
  std::int64_t statsd_interval_ms = 10000;   ///< how often DogStatsD is sent
  std::int64_t summary_interval_ms = 60000;  ///< metrics summary log line; 0: off

  worker_config();

  /// Reads the INI file, the environment and the command line, then checks
  /// the values. Returns false when the program should exit: `--help` was
  /// printed (*exit_code 0) or a value is wrong (message printed, *exit_code 2).
  bool parse_args(int argc, char** argv, int* exit_code);

  /// The namespaces as a list.
  std::vector<std::string> namespace_list() const;

  /// Checks every value; throws std::invalid_argument naming the setting.
  void validate() const;

  /// Applies `threads` (and the scheduler tuning) to CAF's settings; called
  /// by the worker before it creates its actor system.
  void apply_scheduler_settings();
};

}  // namespace tasker
