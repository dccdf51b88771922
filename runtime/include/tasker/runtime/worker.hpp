// The worker: handlers in, pipelines in, steps run. One per process is the
// usual shape; it owns the actor system, the core and the poller.
//
//   tasker::worker_config cfg;
//   if (!cfg.parse_args(argc, argv, &code)) return code;
//   tasker::worker w{cfg};
//   w.handle("square", [](tasker::step_context& ctx) { ... });
//   w.register_pipeline(p);
//   return w.run();            // until SIGINT/SIGTERM; or w.run_until_idle()
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include <tasker/actors/step_handler.hpp>
#include <tasker/runtime/client.hpp>
#include <tasker/runtime/pipeline.hpp>
#include <tasker/runtime/step_context.hpp>
#include <tasker/runtime/step_result.hpp>
#include <tasker/runtime/worker_config.hpp>

namespace tasker {

class profiler;

/// Per-handler settings.
struct handler_options {
  /// Steps of this handler dispatched at once, each to its own actor
  /// instance; 0: max(16, 4 x scheduler threads). More instances than threads
  /// keep quick handlers busy while the poller round-trips (see
  /// docs/benchmarks.md); a dispatched step may wait for a thread, and that
  /// wait counts against its timeout.
  std::size_t concurrency = 0;
  /// A step with no timeout of its own fails as retryable `handler_timeout`
  /// when its handler has not answered by then; 0: no timeout.
  std::chrono::milliseconds timeout{30000};
  /// Opt-in: run this handler's instances detached, each on a thread of its
  /// own, instead of on the scheduler's threads. For CPU-heavy handlers: their
  /// steps then cannot take the threads that quick handlers and the poller
  /// need (see docs/optimizations.md for the measured gain and the cost). The
  /// threads live as long as the worker; with concurrency 0 there is one per
  /// core. Not for quick handlers: a message to a detached actor costs a
  /// thread wake-up, 10-100 us instead of about 1 us.
  bool isolated = false;
  /// A run longer than this logs a warning with the step's ids (when the
  /// worker profiles); 0: never.
  std::chrono::milliseconds slow_threshold{0};
};

/// A function handler.
using handler_fn = std::function<step_result(step_context&)>;

/// The entry points of one handler, by method name (Tasker's handler.method):
/// a step runs the one its pipeline names, "call" when it names none.
using handler_methods = std::map<std::string, handler_fn>;

/// The handler protocol (step_event → step_result) as a typed actor; a
/// behavior that answers anything else does not compile.
using step_handler_actor = actors::step_handler_actor;
using step_handler_behavior = actors::step_handler_behavior;
using step_handler_pointer = actors::step_handler_pointer;

/// Makes one instance of an actor handler: a typed behavior that answers a
/// tasker::step_event with a tasker::step_result (directly, or later through
/// a response promise). Include <caf/typed_event_based_actor.hpp> to write one.
using actor_factory = std::function<step_handler_behavior(step_handler_pointer)>;

class worker {
public:
  /// Opens the store and creates the actor system. `config` must outlive the
  /// worker (CAF keeps references into it). Throws std::invalid_argument for a
  /// wrong setting and std::runtime_error when the store cannot be opened.
  explicit worker(worker_config& config);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  /// Registers a function handler under `name`, as its method "call".
  /// Before start() only; a name already registered throws std::logic_error.
  worker& handle(std::string name, handler_fn fn, handler_options options = {});
  /// Registers a handler with several entry points under `name`
  /// (`{{"call", charge}, {"refund", refund}}`): a step runs the method its
  /// pipeline names (step_options::method, YAML handler.method), and a step
  /// naming a method not given here fails as a permanent handler_not_found.
  /// The methods share the handler's actors and options. Throws
  /// std::logic_error as handle() does, and for no method or an empty name.
  worker& handle(std::string name, handler_methods methods, handler_options options = {});
  /// Registers an actor handler under `name`, for steps that run its method
  /// "call". Before start() only; a name already registered throws
  /// std::logic_error.
  worker& handle_actor(std::string name, actor_factory factory, handler_options options = {});
  /// Registers an actor handler that answers the steps of each of `methods`
  /// (it reads step_event::method to tell them apart); steps naming another
  /// method fail as a permanent handler_not_found.
  worker& handle_actor(std::string name, std::vector<std::string> methods, actor_factory factory,
                       handler_options options = {});

  /// Validates and registers a pipeline (any time), with the overrides of
  /// the config's `environment` applied (pipeline::for_environment). Throws
  /// pipeline_error.
  worker& register_pipeline(const pipeline& p);
  /// Loads and registers every YAML template of a directory. When any file
  /// does not load, registers none of them and throws template_error listing
  /// every problem of every file (the core refusing a pipeline, such as
  /// another definition of its version, counts as a problem of its file).
  worker& load_templates(const std::filesystem::path& dir);

  /// Spawns the handlers and the poller; steps start flowing. Idempotent.
  /// First loads the `templates` directory of the config, if any, like
  /// load_templates; with `skip_invalid_templates`, the files that do not
  /// load are logged and the others served.
  void start();

  /// Creating tasks and waiting for them (starts the worker if needed).
  tasker::client& client();

  /// Runs until no step is running, queued or due (retries included), or
  /// until `timeout` (0: none) passes; true when idle was reached. For tests
  /// and batch jobs.
  bool run_until_idle(std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

  /// Runs until SIGINT or SIGTERM, then stops gracefully; returns the exit
  /// code (0 when every running step finished within the drain deadline).
  int run();

  /// Stops claiming, lets running steps finish for up to the drain deadline,
  /// completes what finished, and stops the poller; threads still waiting
  /// for a task (client::wait) hear that the worker stopped. Steps still
  /// running keep their leases until they lapse; the store closes when the
  /// worker is destroyed. True when nothing was left running. Called by the
  /// destructor if needed.
  bool stop();

  /// The port the HTTP API listens on (after start(); 0 when it is off).
  std::uint16_t http_port() const;

  /// The actor system, e.g. for spawning actors that handlers talk to.
  caf::actor_system& system();

  /// The Prometheus text exposition of the worker's metrics (for an HTTP
  /// `/metrics`); only a comment line when `profile` is off or before
  /// start(). Any thread.
  std::string metrics_text() const;
  /// The profiler (null when `profile` is off, or before start()), e.g. for
  /// snapshot(). It outlives stop().
  const tasker::profiler* metrics() const;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

}  // namespace tasker
