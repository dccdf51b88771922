#include <tasker/runtime/worker_config.hpp>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <thread>

#include <unistd.h>

#include <tasker/actors/core_error.hpp>
#include <tasker/runtime/dogstatsd.hpp>

namespace tasker {

worker_config::worker_config() {
  // A failed core call renders as "tk_core: not_found (<message>)".
  add_error_category(caf::atom("tk_core"),
                     [](std::uint8_t code, caf::atom_value, const caf::message& context) {
                       auto text = "tk_core: " + to_string(static_cast<actors::core_errc>(code));
                       if (context.match_elements<std::string>())
                         text += " (" + context.get_as<std::string>(0) + ")";
                       return text;
                     });
  opt_group{custom_options_, "global"}
      .add(store, "store,s",
           "store URL: memory: | sqlite:PATH | postgresql://USER@HOST:PORT/DB[?schema=NAME] (env "
           "TASKER_STORE)")
      .add(namespaces, "namespaces,n", "comma-separated namespaces to serve; empty: all")
      .add(name, "name", "worker name shown in step status; default host:pid")
      .add(max_in_flight, "max-in-flight", "steps claimed and not yet completed, at most")
      .add(batch_size, "batch-size", "steps claimed per poll of the core")
      .add(threads, "threads", "scheduler threads; 0: one per core")
      .add(log_level, "log-level", "trace, debug, info, warn, error or off")
      .add(lease_ms, "lease-ms", "lease of a claimed step, in ms (heartbeated at a third)")
      .add(fallback_poll_ms, "fallback-poll-ms", "safety-net poll interval, in ms")
      .add(drain_ms, "drain-ms", "at shutdown, how long running steps may finish, in ms")
      .add(templates, "templates", "directory of Tasker YAML templates to load")
      .add(environment, "environment",
           "apply this environment's step overrides (a template's environments: NAME); empty: "
           "none (env TASKER_ENV)")
      .add(skip_invalid_templates, "skip-invalid-templates",
           "log the templates that do not load and serve the others; without it every problem "
           "is printed and the worker exits with 2 (env TASKER_SKIP_INVALID_TEMPLATES)")
      .add(http_port, "http-port", "serve the HTTP API on this port; -1: off, 0: any free port")
      .add(http_bind, "http-bind", "address of the HTTP API")
      .add(http_token, "http-token", "bearer token the HTTP API requires; empty: none")
      .add(http_max_body, "http-max-body", "largest HTTP request body, in bytes")
      .add(http_read_timeout_ms, "http-read-timeout-ms",
           "to read a request or write an answer, in ms")
      .add(http_idle_timeout_ms, "http-idle-timeout-ms",
           "idle keep-alive connections close after this, in ms")
      .add(profile, "profile",
           "per-handler metrics (Prometheus text, DogStatsD, summary line); on by default")
      .add(no_profile, "no-profile", "turn per-handler metrics off (INI: profile=false)")
      .add(statsd, "statsd", "send metrics as DogStatsD over UDP to HOST:PORT; empty: off")
      .add(statsd_interval_ms, "statsd-interval-ms", "how often DogStatsD is sent, in ms")
      .add(summary_interval_ms, "summary-interval-ms",
           "how often a metrics summary is logged, in ms; 0: never");
}

namespace {

// The environment variable of a setting: max-in-flight -> TASKER_MAX_IN_FLIGHT.
std::string env_name(const char* key) {
  std::string out = "TASKER_";
  for (const char* p = key; *p; ++p)
    out += *p == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
  return out;
}

bool given_on_command_line(int argc, char** argv, const char* key, char short_flag) {
  const std::string long_flag = std::string("--") + key;
  for (int i = 1; i < argc; ++i) {
    std::string_view a{argv[i]};
    if (a == long_flag || a.rfind(long_flag + "=", 0) == 0)
      return true;
    if (short_flag && a.size() >= 2 && a[0] == '-' && a[1] == short_flag)
      return true;
  }
  return false;
}

template <class T>
void from_env(T& field, const char* key, char short_flag, int argc, char** argv) {
  const auto var = env_name(key);
  const char* value = std::getenv(var.c_str());
  if (!value || given_on_command_line(argc, argv, key, short_flag))
    return;
  if constexpr (std::is_same_v<T, std::string>) {
    field = value;
  } else if constexpr (std::is_same_v<T, bool>) {
    const std::string_view v{value};
    if (v == "1" || v == "true")
      field = true;
    else if (v == "0" || v == "false")
      field = false;
    else
      throw std::invalid_argument(var + " must be true, false, 1 or 0, not \"" + std::string(v)
                                  + "\"");
  } else {
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(value, &end, 10);
    if (*value == '\0' || *end != '\0' || errno != 0 || v < 0)
      throw std::invalid_argument(var + " must be a non-negative integer, not \"" + value + "\"");
    field = static_cast<T>(v);
  }
}

}  // namespace

bool worker_config::parse_args(int argc, char** argv, int* exit_code) {
  *exit_code = 0;
  try {
    if (auto err = parse(argc, argv, "tasker.ini")) {
      std::cerr << "error: " << caf::to_string(err) << " (see --help)\n";
      *exit_code = 2;
      return false;
    }
    if (cli_helptext_printed)
      return false;
    from_env(store, "store", 's', argc, argv);
    from_env(namespaces, "namespaces", 'n', argc, argv);
    from_env(name, "name", 0, argc, argv);
    from_env(max_in_flight, "max-in-flight", 0, argc, argv);
    from_env(batch_size, "batch-size", 0, argc, argv);
    from_env(threads, "threads", 0, argc, argv);
    from_env(log_level, "log-level", 0, argc, argv);
    from_env(lease_ms, "lease-ms", 0, argc, argv);
    from_env(fallback_poll_ms, "fallback-poll-ms", 0, argc, argv);
    from_env(drain_ms, "drain-ms", 0, argc, argv);
    from_env(templates, "templates", 0, argc, argv);
    // Tasker's own variable, not TASKER_ENVIRONMENT: its templates' users set it already.
    if (const char* env = std::getenv("TASKER_ENV");
        env && !given_on_command_line(argc, argv, "environment", 0))
      environment = env;
    from_env(skip_invalid_templates, "skip-invalid-templates", 0, argc, argv);
    from_env(http_port, "http-port", 0, argc, argv);
    from_env(http_bind, "http-bind", 0, argc, argv);
    from_env(http_token, "http-token", 0, argc, argv);
    from_env(http_max_body, "http-max-body", 0, argc, argv);
    from_env(http_read_timeout_ms, "http-read-timeout-ms", 0, argc, argv);
    from_env(http_idle_timeout_ms, "http-idle-timeout-ms", 0, argc, argv);
    if (!given_on_command_line(argc, argv, "no-profile", 0))
      from_env(profile, "profile", 0, argc, argv);
    if (no_profile)
      profile = false;
    from_env(statsd, "statsd", 0, argc, argv);
    from_env(statsd_interval_ms, "statsd-interval-ms", 0, argc, argv);
    from_env(summary_interval_ms, "summary-interval-ms", 0, argc, argv);
    validate();
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: " << e.what() << '\n';
    *exit_code = 2;
    return false;
  }
  return true;
}

std::vector<std::string> worker_config::namespace_list() const {
  std::vector<std::string> out;
  std::string current;
  for (char c : namespaces + ",") {
    if (c == ',') {
      if (!current.empty())
        out.push_back(current);
      current.clear();
    } else if (c != ' ') {
      current += c;
    }
  }
  return out;
}

void worker_config::validate() const {
  auto require = [](bool ok, const std::string& what) {
    if (!ok)
      throw std::invalid_argument(what);
  };
  require(!store.empty(), "store must not be empty (e.g. sqlite:tasker.db or memory:)");
  require(max_in_flight >= 1 && max_in_flight <= 1'000'000,
          "max-in-flight must be from 1 to 1000000");
  require(batch_size >= 1 && batch_size <= 10'000, "batch-size must be from 1 to 10000");
  require(threads <= 1024, "threads must be from 0 (one per core) to 1024");
  require(lease_ms >= 100, "lease-ms must be at least 100");
  require(fallback_poll_ms >= 10, "fallback-poll-ms must be at least 10");
  require(drain_ms >= 0, "drain-ms must not be negative");
  require(http_port >= -1 && http_port <= 65535,
          "http-port must be -1 (off), 0 (any free port) or a port up to 65535");
  require(!http_bind.empty(), "http-bind must not be empty (e.g. 127.0.0.1)");
  require(http_max_body >= 1, "http-max-body must be at least 1");
  require(http_read_timeout_ms >= 1, "http-read-timeout-ms must be at least 1");
  require(http_idle_timeout_ms >= 1, "http-idle-timeout-ms must be at least 1");
  require(statsd.empty() || profile, "statsd needs profile on (it sends the profiler's metrics)");
  if (!statsd.empty())
    split_host_port(statsd);  // throws std::invalid_argument naming the setting
  require(statsd_interval_ms >= 10, "statsd-interval-ms must be at least 10");
  require(summary_interval_ms >= 0, "summary-interval-ms must not be negative");
  static const char* levels[] = {"trace", "debug", "info", "warn", "error", "off"};
  bool known = false;
  for (const char* l : levels)
    known = known || log_level == l;
  require(known,
          "log-level must be trace, debug, info, warn, error or off, not \"" + log_level + "\"");
}

void worker_config::apply_scheduler_settings() {
  const auto cores = std::max(1u, std::thread::hardware_concurrency());
  set("scheduler.max-threads", static_cast<int>(threads == 0 ? cores : threads));
  // Idle workers sleep instead of spinning: less idle CPU and quicker
  // hand-offs from the poller's thread (measured in ../shared/CAF017.md).
  set("work-stealing.moderate-poll-attempts", 0);
}

}  // namespace tasker
