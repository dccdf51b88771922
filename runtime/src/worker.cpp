#include <tasker/runtime/worker.hpp>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <tasker/actors/core_error.hpp>
#include <tasker/actors/function_host.hpp>
#include <tasker/actors/http_actor.hpp>
#include <tasker/actors/poller.hpp>
#include <tasker/runtime/logging.hpp>
#include <tasker/runtime/profiler.hpp>

#include "detail/client_impl.hpp"

namespace tasker {

namespace {

using std::chrono::milliseconds;

// SIGINT and SIGTERM are blocked in every thread the runtime creates, so
// that only run()'s sigwait (or the default action in the main thread)
// sees them.
class signals_blocked {
public:
  signals_blocked() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &saved_);
  }
  ~signals_blocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  signals_blocked(const signals_blocked&) = delete;
  signals_blocked& operator=(const signals_blocked&) = delete;

private:
  sigset_t saved_;
};

std::string default_worker_name() {
  char host[256] = "host";
  gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(getpid());
}

worker_config& prepared(worker_config& cfg) {
  cfg.validate();
  cfg.apply_scheduler_settings();
  return cfg;
}

}  // namespace

struct worker::impl {
  struct handler_entry {
    std::string name;
    actors::step_function fn;  // set for function handlers
    actor_factory factory;     // set for actor handlers
    handler_options options;
    std::vector<std::string> methods{"call"};  // the entry points it answers
  };

  /// A step of a registered pipeline that runs a method other than "call",
  /// to warn when its handler is registered without it.
  struct method_use {
    std::string pipeline, step, handler, method;
  };

  worker_config& cfg;
  /// Owns the core. Declared before the actor system, so the core closes
  /// only after every actor (the poller, the HTTP bridge) is gone.
  actors::task_service tasks;
  signals_blocked no_signals_in_caf_threads;
  caf::actor_system sys;
  std::vector<handler_entry> handlers;
  std::vector<method_use> method_uses;  // of the pipelines registered
  std::vector<step_handler_actor> instances;
  std::shared_ptr<tasker::profiler> prof;  // when cfg.profile
  actors::poller_actor poller;
  std::unique_ptr<tasker::client> client_;
  std::unique_ptr<actors::http_server> http;  // when http_port >= 0
  bool started = false;
  bool stopped = false;

  explicit impl(worker_config& c) : cfg(prepared(c)), tasks(open_core(c)), sys(c) {
    if (cfg.name.empty())
      cfg.name = default_worker_name();
  }

  static core_handle open_core(const worker_config& c) {
    setup_logging(c.log_level);
    tk_error err{};
    auto core = core_handle::open(c.store.c_str(), err);
    if (!core)
      throw std::runtime_error("cannot open store " + c.store + ": " + err.message);
    return core;
  }

  std::size_t default_concurrency() {
    return std::max<std::size_t>(16, 4 * sys.scheduler().num_workers());
  }

  /// Registers `p` with the core, in the config's environment; the core's
  /// refusal as its error.
  caf::error register_in_core(const pipeline& p);
  /// Logs a warning for each step of `uses` whose handler is registered here
  /// without the method it runs: this worker would fail it.
  void warn_unregistered_methods(const std::vector<method_use>& uses) const;
  /// Loads the templates of `dir` and registers what loaded (see start()).
  void serve_templates(const std::filesystem::path& dir, bool skip_invalid);
};

namespace {

// One instance of a handler. An actor handler's factory travels as a spawn
// argument: CAF 0.17.6 binds a reference to a null argument tuple when a
// function actor is spawned with none, which UBSan reports.
step_handler_actor spawn_instance(caf::actor_system& sys, const worker::impl::handler_entry& h,
                                  bool measure_cpu) {
  auto from_factory = [](step_handler_pointer self, const actor_factory& make) {
    return make(self);
  };
  if (h.options.isolated) {  // a thread of its own, for as long as the worker runs
    if (h.fn)
      return sys.spawn<caf::detached>(actors::function_host, h.fn, measure_cpu);
    return sys.spawn<caf::detached>(from_factory, h.factory);
  }
  if (h.fn)
    return sys.spawn(actors::function_host, h.fn, measure_cpu);
  return sys.spawn(from_factory, h.factory);
}

}  // namespace

worker::worker(worker_config& config) : impl_(std::make_unique<impl>(config)) {
}

worker::~worker() {
  try {
    stop();
  } catch (const std::exception& e) {
    spdlog::error("worker: stopping failed: {}", e.what());
  }
}

namespace {

// A handler name is registered once; found at the call, not at start() with
// half the worker running.
void require_new_handler(const std::vector<worker::impl::handler_entry>& handlers,
                         const std::string& name) {
  for (const auto& h : handlers)
    if (h.name == name)
      throw std::logic_error("worker: two handlers named \"" + name + "\"");
}

}  // namespace

worker& worker::handle(std::string name, handler_fn fn, handler_options options) {
  handler_methods methods;
  methods.emplace("call", std::move(fn));
  return handle(std::move(name), std::move(methods), options);
}

namespace {

void require_methods(const std::string& name, const std::vector<std::string>& methods) {
  if (methods.empty())
    throw std::logic_error("worker: handler \"" + name + "\" has no method");
  for (const auto& m : methods)
    if (m.empty())
      throw std::logic_error("worker: handler \"" + name + "\" has a method with an empty name");
}

}  // namespace

worker& worker::handle(std::string name, handler_methods methods, handler_options options) {
  if (impl_->started)
    throw std::logic_error("worker: handle(\"" + name + "\") after start()");
  require_new_handler(impl_->handlers, name);
  std::vector<std::string> names;
  for (const auto& [method, fn] : methods) {
    names.push_back(method);
    if (!fn)
      throw std::logic_error("worker: handler \"" + name + "\" method \"" + method
                             + "\" has no function");
  }
  require_methods(name, names);
  auto run = [](const handler_fn& fn, const step_event& event) -> step_result {
    step_context ctx{event};
    try {
      return fn(ctx);
    } catch (const step_input_error& e) {
      return failure(step_error::validation_error, e.what());
    }
  };
  actors::step_function wrapped;
  if (methods.size() == 1 && methods.count("call")) {  // the usual case: no lookup per step
    wrapped = [run, fn = std::move(methods.begin()->second)](const step_event& event) {
      return run(fn, event);
    };
  } else {
    // The poller sends only the methods registered; the lookup cannot miss.
    wrapped = [run, methods = std::move(methods)](const step_event& event) -> step_result {
      const auto it = methods.find(event.method);
      if (it == methods.end())
        return failure(step_error::handler_not_found,
                       "handler \"" + event.handler + "\" has no method \"" + event.method + "\"");
      return run(it->second, event);
    };
  }
  impl_->handlers.push_back({std::move(name), std::move(wrapped), nullptr, options, names});
  return *this;
}

worker& worker::handle_actor(std::string name, actor_factory factory, handler_options options) {
  return handle_actor(std::move(name), {"call"}, std::move(factory), options);
}

worker& worker::handle_actor(std::string name, std::vector<std::string> methods,
                             actor_factory factory, handler_options options) {
  if (impl_->started)
    throw std::logic_error("worker: handle_actor(\"" + name + "\") after start()");
  require_new_handler(impl_->handlers, name);
  require_methods(name, methods);
  impl_->handlers.push_back(
      {std::move(name), nullptr, std::move(factory), options, std::move(methods)});
  return *this;
}

caf::error worker::impl::register_in_core(const pipeline& p) {
  const auto text = p.for_environment(cfg.environment).to_core_json();  // validates
  if (stopped)
    throw pipeline_error("worker: register_pipeline after stop()");
  if (auto failed = tasks.register_pipeline(text))
    return failed;
  std::string environment;
  if (!cfg.environment.empty() && !p.environments().empty())
    environment = p.environments().count(cfg.environment)
                      ? ", environment " + cfg.environment
                      : ", which has no environment " + cfg.environment + ": no overrides";
  spdlog::info("registered pipeline {}/{}@{} ({} steps{})", p.namespace_name(), p.name(),
               p.version(), p.steps().size(), environment);
  std::vector<method_use> uses;
  for (const auto& s : p.steps())
    if (s.options.entry_point != "call")
      uses.push_back({p.namespace_name() + "/" + p.name() + "@" + p.version(), s.name, s.handler,
                      s.options.entry_point});
  if (started)
    warn_unregistered_methods(uses);
  method_uses.insert(method_uses.end(), uses.begin(), uses.end());
  return {};
}

void worker::impl::warn_unregistered_methods(const std::vector<method_use>& uses) const {
  for (const auto& use : uses)
    for (const auto& h : handlers)
      if (h.name == use.handler
          && std::find(h.methods.begin(), h.methods.end(), use.method) == h.methods.end())
        spdlog::warn("pipeline {} step \"{}\" runs method \"{}\" of handler \"{}\", which this "
                     "worker registered without it: such steps fail here as handler_not_found",
                     use.pipeline, use.step, use.method, use.handler);
}

void worker::impl::serve_templates(const std::filesystem::path& dir, bool skip_invalid) {
  auto files = scan_pipeline_files(list_template_files(dir));  // template_error: not a directory
  const auto rejected = [&] {
    return static_cast<std::size_t>(std::count_if(
        files.begin(), files.end(), [](const template_file& t) { return !t.loaded; }));
  };
  if (rejected() == 0 || skip_invalid) {
    for (auto& t : files) {
      if (!t.loaded)
        continue;
      auto failed = register_in_core(*t.loaded);
      if (!failed)
        continue;
      // The core refusing the pipeline (another definition of this version
      // is registered) is a problem of the file; a store that fails is not.
      const auto status = actors::core_status(failed);
      if (status != TK_CONFLICT && status != TK_VALIDATION && status != TK_TOO_LARGE)
        throw pipeline_error(detail::describe(sys, failed));
      t.loaded.reset();
      t.problems.push_back(t.path.string() + ": " + detail::describe(sys, failed));
    }
  }
  const auto bad = rejected();
  if (bad == 0)
    return;
  if (skip_invalid) {
    for (const auto& t : files) {
      if (t.loaded)
        continue;
      spdlog::error("template {} is not served (--skip-invalid-templates):", t.path.string());
      for (const auto& problem : t.problems)
        spdlog::error("  {}", problem);
    }
    spdlog::warn("{} of {} templates in {} are not served", bad, files.size(), dir.string());
    return;
  }
  std::vector<std::string> problems;
  for (const auto& t : files)
    problems.insert(problems.end(), t.problems.begin(), t.problems.end());
  problems.push_back(dir.string() + ": " + std::to_string(bad) + " of "
                     + std::to_string(files.size()) + " templates rejected"
                     + (bad == files.size() ? "" : ", so none is served")
                     + " (--skip-invalid-templates serves the valid ones)");
  throw template_error(std::move(problems));
}

worker& worker::register_pipeline(const pipeline& p) {
  if (auto failed = impl_->register_in_core(p))
    throw pipeline_error(detail::describe(impl_->sys, failed));
  return *this;
}

worker& worker::load_templates(const std::filesystem::path& dir) {
  impl_->serve_templates(dir, false);
  return *this;
}

void worker::start() {
  auto& d = *impl_;
  if (d.started)
    return;
  if (d.stopped)
    throw std::logic_error("worker: start() after stop()");
  if (!d.cfg.templates.empty())
    d.serve_templates(d.cfg.templates, d.cfg.skip_invalid_templates);
  signals_blocked no_signals;  // threads spawned below inherit the mask
  if (d.cfg.profile) {
    profiler_options po;
    po.statsd_address = d.cfg.statsd;
    po.statsd_interval = milliseconds{d.cfg.statsd_interval_ms};
    po.summary_interval = milliseconds{d.cfg.summary_interval_ms};
    for (const auto& h : d.handlers)
      if (h.options.slow_threshold.count() > 0)
        po.slow_thresholds[h.name] = h.options.slow_threshold;
    d.prof = std::make_shared<tasker::profiler>(std::move(po));
    d.prof->start_reporting();
  }
  const bool measure_cpu = d.prof != nullptr;
  std::unordered_map<std::string, actors::handler_route> routes;
  for (auto& h : d.handlers) {
    auto& route = routes[h.name];  // one per name: handle() refused a second
    route.timeout = h.options.timeout;
    route.methods = h.methods;
    route.respawn = [sys = &d.sys, h, measure_cpu]() {
      return spawn_instance(*sys, h, measure_cpu);
    };
    const auto n = h.options.concurrency ? h.options.concurrency
                   : h.options.isolated
                       ? std::max<std::size_t>(1, std::thread::hardware_concurrency())
                       : d.default_concurrency();
    for (std::size_t i = 0; i < n; ++i) {
      auto a = spawn_instance(d.sys, h, measure_cpu);
      route.instances.push_back(a);
      d.instances.push_back(a);
    }
  }
  actors::poller_config pc;
  pc.worker_name = d.cfg.name;
  pc.namespaces = d.cfg.namespace_list();
  pc.max_in_flight = d.cfg.max_in_flight;
  pc.batch_size = d.cfg.batch_size;
  pc.lease = milliseconds{d.cfg.lease_ms};
  pc.heartbeat_interval = milliseconds{std::max<std::int64_t>(d.cfg.lease_ms / 3, 1)};
  pc.fallback_poll = milliseconds{d.cfg.fallback_poll_ms};
  pc.observers.push_back(std::make_shared<step_logger>());
  if (d.prof)
    pc.observers.push_back(d.prof);
  d.poller = d.sys.spawn<caf::detached>(actors::poller, actors::core_ref{d.tasks.core()},
                                        std::move(pc), std::move(routes));
  d.client_ = std::make_unique<tasker::client>(std::make_unique<client::impl>(d.sys, d.tasks));
  if (d.cfg.http_port >= 0) {
    actors::http_config hc;
    hc.bind = d.cfg.http_bind;
    hc.port = static_cast<std::uint16_t>(d.cfg.http_port);
    hc.token = d.cfg.http_token;
    hc.max_body_bytes = d.cfg.http_max_body;
    hc.read_timeout = milliseconds{d.cfg.http_read_timeout_ms};
    hc.idle_timeout = milliseconds{d.cfg.http_idle_timeout_ms};
    // The profiler's text (when the worker profiles); the server adds its own counters.
    if (d.prof)
      hc.metrics = [prof = d.prof] { return prof->prometheus_text(); };
    try {
      d.http = std::make_unique<actors::http_server>(d.sys, d.tasks, d.poller, std::move(hc));
    } catch (const std::exception&) {
      d.started = true;
      stop();  // the poller and handlers are running: stop them before failing
      throw;
    }
  }
  d.started = true;
  d.warn_unregistered_methods(d.method_uses);
  spdlog::info("worker {} started: store {}, {} handler(s), up to {} steps in flight", d.cfg.name,
               d.cfg.store, d.handlers.size(), d.cfg.max_in_flight);
}

client& worker::client() {
  start();
  return *impl_->client_;
}

bool worker::run_until_idle(milliseconds timeout) {
  start();
  caf::scoped_actor self{impl_->sys};
  bool idle = false;
  self->request(impl_->poller, timeout.count() > 0 ? timeout : milliseconds{365LL * 86400000},
                idle_atom_v)
      .receive([&](bool b) { idle = b; }, [&](caf::error&) { idle = false; });
  return idle;
}

int worker::run() {
  start();
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigset_t saved;
  pthread_sigmask(SIG_BLOCK, &set, &saved);
  spdlog::info("worker {} running; SIGINT or SIGTERM stops it", impl_->cfg.name);
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("{}: stopping; running steps have {} ms to finish (signal again to stop at once)",
               sig == SIGINT ? "SIGINT" : "SIGTERM", impl_->cfg.drain_ms);
  std::thread([set]() mutable {
    int again = 0;
    sigwait(&set, &again);
    std::_Exit(130);
  }).detach();
  const bool clean = stop();
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  return clean ? 0 : 1;
}

bool worker::stop() {
  auto& d = *impl_;
  if (!d.started || d.stopped) {
    d.stopped = true;
    return true;
  }
  d.stopped = true;
  if (d.http) {
    // Before the drain: it stops taking requests that would make work.
    d.http->stop(milliseconds{std::min<std::int64_t>(d.cfg.drain_ms, 5000)});
    d.http.reset();
  }
  bool clean = false;
  {
    caf::scoped_actor self{d.sys};
    self->request(d.poller, milliseconds{d.cfg.drain_ms + 60000}, drain_atom_v, d.cfg.drain_ms)
        .receive([&](bool b) { clean = b; },
                 [&](caf::error& e) {
                   spdlog::error("worker {}: drain failed: {}", d.cfg.name,
                                 detail::describe(d.sys, e));
                 });
  }
  // A thread still in client().wait hears that the worker stopped. (The
  // client itself lives on with the worker: such a thread may still be in
  // its call.)
  d.tasks.stop_waits();
  {
    // Waits for the poller to end (it closes its worker handle and logs its
    // counts as it goes), so nothing of it runs or logs after stop() returns.
    caf::scoped_actor self{d.sys};
    self->send_exit(d.poller, caf::exit_reason::user_shutdown);
    self->wait_for(d.poller);
  }
  for (auto& a : d.instances)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  d.instances.clear();
  if (d.prof)
    d.prof->stop_reporting();  // one last DogStatsD flush
  spdlog::info("worker {} stopped{}", d.cfg.name,
               clean ? "" : " (some steps were still running; their leases will lapse)");
  return clean;
}

std::uint16_t worker::http_port() const {
  return impl_->http ? impl_->http->port() : 0;
}

caf::actor_system& worker::system() {
  return impl_->sys;
}

std::string worker::metrics_text() const {
  if (!impl_->prof)
    return "# tasker: no metrics (profile is off, or the worker has not started)\n";
  return impl_->prof->prometheus_text();
}

const tasker::profiler* worker::metrics() const {
  return impl_->prof.get();
}

}  // namespace tasker
