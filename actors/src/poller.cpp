#include <tasker/actors/poller.hpp>

#include <algorithm>
#include <cstdio>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <spdlog/spdlog.h>

namespace tasker::actors {

namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// How a result counts for the observer, derived once from its kind.
step_outcome outcome_of(step_kind kind, bool timed_out) {
  switch (kind) {
    case step_kind::success: return step_outcome::succeeded;
    case step_kind::wait: return step_outcome::waited;
    case step_kind::checkpoint: return step_outcome::yielded;
    case step_kind::failure: break;
  }
  return timed_out ? step_outcome::timed_out : step_outcome::failed;
}

}  // namespace

poller_state::~poller_state() {
  if (worker)
    spdlog::info("worker {}: {} steps claimed in {} polls, {} completed in {} calls, {} heartbeats",
                 config.worker_name, steps_claimed, poll_calls, steps_completed, complete_calls,
                 heartbeat_calls);
  if (core)
    tk_set_wakeup(core, nullptr, nullptr, nullptr);
  tk_worker_close(worker);  // before the core's owner closes it
}

void poller_state::init(poller_impl::stateful_pointer<poller_state> self_ptr,
                        tk_core* borrowed_core, poller_config cfg,
                        std::unordered_map<std::string, handler_route> handler_routes) {
  self = self_ptr;
  core = borrowed_core;
  config = std::move(cfg);
  if (config.observers.size() > poller_config::max_observers)
    throw std::invalid_argument("poller: more than " + std::to_string(poller_config::max_observers)
                                + " observers");
  for (const auto& o : config.observers)
    if (o)
      obs.push_back(o.get());
  routing = dispatcher{config.max_in_flight, config.batch_size};
  for (auto& [handler, route] : handler_routes) {
    route_state rs;
    rs.lane = &routing.add(handler, route.instances.size());  // map nodes are stable
    rs.route = std::move(route);
    routes.emplace(handler, std::move(rs));
  }
  // The core keeps its own copy of the namespaces: these pointers serve the open only.
  std::vector<const char*> namespace_ptrs;
  for (const auto& ns : config.namespaces)
    namespace_ptrs.push_back(ns.c_str());
  tk_error err{};
  tk_worker_options wo{};
  wo.name = config.worker_name.c_str();
  wo.namespaces = namespace_ptrs.empty() ? nullptr : namespace_ptrs.data();
  wo.namespace_count = namespace_ptrs.size();
  wo.lease_ms = config.lease.count();
  worker = tk_worker_open(core, &wo, &err);
  if (!worker)
    throw std::runtime_error(std::string("poller: ") + err.message);
  // The callback runs on this actor's thread during its own store calls, or
  // on another thread: the store's when another process made work
  // (PostgreSQL), a client's when it made a task.
  callbacks = std::make_unique<callback_target>();
  callbacks->state = this;
  callbacks->owner = std::this_thread::get_id();
  callbacks->addr = self->address();
  tk_set_wakeup(
      core,
      [](void* user) {
        auto* t = static_cast<callback_target*>(user);
        if (std::this_thread::get_id() == t->owner)
          t->state->wake_flag = true;
        else
          t->remote();
      },
      callbacks.get(), nullptr);
}

std::size_t poller_state::claim_size(std::size_t freed) const {
  return routing.claim_size(load(), freed);
}

void poller_state::pump() {
  // Steps that end without running (unknown handler) complete right away
  // and free capacity: go round a few times, but leave the mailbox a chance.
  // After a store error nothing is tried before the backoff ends.
  for (int round = 0; round < 8 && !store_paused(); ++round) {
    wake_flag = false;
    // Completing and claiming together costs one store transaction.
    const bool draining = mode == poller_mode::draining;
    const bool combined =
        !completions.empty() && !draining && claim_size(completions.size()) > 0 && cycle();
    if (!combined)
      flush();
    const bool exhausted = draining || (combined && core_dry) || claim_size(0) == 0 || claim();
    if (completions.empty() && (exhausted || !wake_flag))
      break;
  }
  if (!drain_waiters.empty() && running.empty() && completions.empty()) {
    for (auto& p : drain_waiters)
      p.deliver(true);
    drain_waiters.clear();
  } else if (!drain_waiters.empty() && now() >= drain_deadline) {
    flush();  // what finished is kept; the rest's leases lapse
    spdlog::warn("worker {}: drain deadline passed with {} step(s) still running; their leases "
                 "will lapse and another worker will retry them",
                 config.worker_name, running.size());
    for (auto& p : drain_waiters)
      p.deliver(false);
    drain_waiters.clear();
  }
  if (!idle_waiters.empty() && idle()) {
    for (auto& p : idle_waiters)
      p.deliver(true);
    idle_waiters.clear();
  }
  arm_timer();
}

bool poller_state::claim() {
  while (capacity() > 0) {
    const std::size_t want = std::min(config.batch_size, capacity());
    const tk_step_event* events = nullptr;
    std::size_t count = 0;
    tk_error err{};
    ++poll_calls;
    const auto t0 = !obs.empty() ? steady::now() : steady::time_point{};
    const auto status = tk_poll(worker, want, &events, &count, &err);
    for (auto* o : obs)
      o->on_poll({core_call::poll, want, count, steady::now() - t0, status == TK_OK});
    if (status != TK_OK) {
      store_failed("claiming steps", err.message);
      return true;
    }
    store_ok();
    accept(events, count, want);
    if (core_dry)
      return true;
  }
  return false;
}

void poller_state::accept(const tk_step_event* events, std::size_t count, std::size_t wanted) {
  steps_claimed += count;
  core_dry = count < wanted;
  for (std::size_t i = 0; i < count; ++i) {
    const auto& e = events[i];
    auto [it, _] = running.emplace(e.step_id, in_flight{});
    auto& f = it->second;
    auto& ev = f.event;
    ev.task_id = e.task_id;
    ev.step_id = e.step_id;
    ev.namespace_name = e.namespace_name;
    ev.step_name.assign(e.step_name, e.step_name_len);
    ev.handler.assign(e.handler, e.handler_len);
    if (e.method)
      ev.method.assign(e.method, e.method_len);
    ev.attempt = e.attempt;
    ev.max_attempts = e.max_attempts;
    ev.fencing_token = e.fencing_token;
    ev.timeout_ms = e.timeout_ms;
    if (!obs.empty())
      observe_claimed(e.step_id, f);
    auto route = routes.find(ev.handler);
    if (route == routes.end()) {
      on_result(e.step_id, ev.fencing_token,
                failure(step_error::handler_not_found, "no handler named \"" + ev.handler
                                                           + "\" is registered with worker "
                                                           + config.worker_name));
      continue;
    }
    if (const auto& methods = route->second.route.methods;
        std::find(methods.begin(), methods.end(), ev.method) == methods.end()) {
      std::string known;
      for (const auto& m : methods)
        known += (known.empty() ? "" : ", ") + m;
      on_result(e.step_id, ev.fencing_token,
                failure(step_error::handler_not_found,
                        "handler \"" + ev.handler + "\" has no method \"" + ev.method
                            + "\" registered with worker " + config.worker_name
                            + " (it has: " + known + ")"));
      continue;
    }
    ev.handler_config.assign(e.handler_config, e.handler_config_len);
    ev.task_context.assign(e.task_context, e.task_context_len);
    ev.dependency_results.assign(e.dependency_results, e.dependency_results_len);
    ev.wait_token.assign(e.wait_token, e.wait_token_len);
    if (e.step_inputs)  // the core always sets it; events made by hand may not
      ev.step_inputs.assign(e.step_inputs, e.step_inputs_len);
    ev.signalled = e.signal_payload != nullptr;
    if (ev.signalled) {
      ev.signal_name.assign(e.signal_name, e.signal_name_len);
      ev.signal_payload.assign(e.signal_payload, e.signal_payload_len);
    }
    route->second.lane->queued.push_back(e.step_id);
  }
  for (auto& [_, route] : routes)
    if (!route.lane->queued.empty())
      dispatch(route);
}

namespace {

// The handler's copy of a claimed step: its payloads move, its ids and names
// (short) are copied, so the poller's event keeps what the observers read.
step_event take_for_handler(step_event& e) {
  step_event out;
  out.task_id = e.task_id;
  out.step_id = e.step_id;
  out.namespace_name = e.namespace_name;
  out.step_name = e.step_name;
  out.handler = e.handler;
  out.method = e.method;
  out.handler_config = std::move(e.handler_config);
  out.task_context = std::move(e.task_context);
  out.dependency_results = std::move(e.dependency_results);
  out.attempt = e.attempt;
  out.max_attempts = e.max_attempts;
  out.fencing_token = e.fencing_token;
  out.timeout_ms = e.timeout_ms;
  out.wait_token = std::move(e.wait_token);
  out.signalled = e.signalled;
  out.signal_name = std::move(e.signal_name);
  out.signal_payload = std::move(e.signal_payload);
  out.step_inputs = std::move(e.step_inputs);
  return out;
}

}  // namespace

void poller_state::dispatch(route_state& route) {
  while (auto a = dispatcher::next(*route.lane)) {
    const auto step_id = a->step_id;
    auto it = running.find(step_id);
    if (it == running.end()) {
      dispatcher::release(*route.lane, a->instance, a->generation);
      continue;
    }
    auto& f = it->second;
    f.instance = a->instance;
    f.dispatched = true;
    f.started = now();
    if (!obs.empty())
      observe_started(step_id, f);
    const milliseconds timeout =
        f.event.timeout_ms > 0 ? milliseconds{f.event.timeout_ms} : route.route.timeout;
    const auto token = f.event.fencing_token;
    if (timeout.count() > 0) {
      deadlines.push({f.started + timeout, step_id, token, timeout});
      arm_deadline(f.started + timeout);
    }
    auto* me = self;
    auto* rs = &route;  // map nodes are stable
    const auto instance = a->instance;
    const auto generation = a->generation;
    me->request(route.route.instances[instance], caf::infinite, take_for_handler(f.event))
        .then(
            [me, rs, instance, generation, step_id, token](step_result& r) {
              me->state.release_instance(*rs, instance, generation);
              me->state.on_result(step_id, token, std::move(r));
            },
            [me, rs, instance, generation, step_id, token](caf::error& e) {
              me->state.release_instance(*rs, instance, generation);
              me->state.on_result(step_id, token,
                                  failure(step_error::handler_error,
                                          e == caf::sec::request_receiver_down
                                              ? std::string("the handler's actor is down")
                                              : "the handler failed: " + me->system().render(e)));
            });
  }
}

void poller_state::release_instance(route_state& route, std::size_t i, std::uint64_t generation) {
  if (dispatcher::release(*route.lane, i, generation))  // else: replaced since
    dispatch(route);
}

void poller_state::arm_deadline(steady::time_point at) {
  if (deadline_armed && deadline_armed_at <= at)
    return;
  deadline_armed = true;
  deadline_armed_at = at;
  const auto delay = std::chrono::ceil<milliseconds>(at - now());
  self->delayed_send(self, std::max(delay, milliseconds{1}), deadline_atom_v);
}

void poller_state::expire_deadlines() {
  deadline_armed = false;
  const auto current = now();
  while (!deadlines.empty()) {
    const auto d = deadlines.top();
    auto it = running.find(d.step_id);
    const bool live =
        it != running.end() && it->second.event.fencing_token == d.token && !it->second.finished;
    if (live && d.at > current) {
      arm_deadline(d.at);
      return;
    }
    deadlines.pop();
    if (live)
      on_result(
          d.step_id, d.token,
          failure(step_error::handler_timeout,
                  "the handler did not answer within " + std::to_string(d.timeout.count()) + " ms"),
          true);
  }
}

void poller_state::on_result(std::int64_t step_id, std::int64_t token, step_result result,
                             bool timed_out) {
  auto it = running.find(step_id);
  if (it == running.end() || it->second.event.fencing_token != token || it->second.finished)
    return;
  auto& f = it->second;
  f.finished = true;
  if (!obs.empty())
    observe_finished(step_id, f, result, outcome_of(result.kind, timed_out));
  completions.add(step_id, token, std::move(result));
  schedule_flush();
}

void poller_state::schedule_flush() {
  // One message, however many results arrive before it: those already in
  // the mailbox join the batch. (Holding results back for more company was
  // measured and did not pay: docs/benchmarks.md.)
  if (!flush_scheduled) {
    flush_scheduled = true;
    self->send(self, flush_atom_v);
  }
}

void poller_state::completed() {
  completions.settle([this](std::int64_t step_id, int outcome) {
    switch (outcome) {
      case TK_OK:
      case TK_DUPLICATE: break;
      case TK_STALE:
        spdlog::warn("worker {}: step {} lost its lease before completing; its result was "
                     "discarded (the step runs again elsewhere)",
                     config.worker_name, step_id);
        break;
      default:
        spdlog::error("worker {}: completing step {} was refused ({})", config.worker_name, step_id,
                      outcome);
        break;
    }
    running.erase(step_id);
    ++steps_completed;
  });
}

void poller_state::flush() {
  while (!completions.empty() && !store_paused()) {
    const auto* batch = completions.build();
    const auto size = completions.size();
    tk_error err{};
    ++complete_calls;
    const auto t0 = !obs.empty() ? steady::now() : steady::time_point{};
    const auto status = tk_complete(worker, batch, size, completions.outcomes(), &err);
    for (auto* o : obs)
      o->on_complete_batch({core_call::complete, size, steady::now() - t0, status == TK_OK});
    if (status != TK_OK) {
      // Keep the results: the pump after the backoff tries again while the
      // leases still hold (and if they lapse, the core answers "stale").
      store_failed("completing " + std::to_string(size) + " step(s)", err.message);
      return;
    }
    store_ok();
    completed();
  }
}

bool poller_state::cycle() {
  const std::size_t want = claim_size(completions.size());
  const auto* batch = completions.build();
  const auto size = completions.size();
  const tk_step_event* events = nullptr;
  std::size_t count = 0;
  tk_error err{};
  ++complete_calls;
  ++poll_calls;
  const auto t0 = !obs.empty() ? steady::now() : steady::time_point{};
  const auto status = tk_complete_and_poll(worker, batch, size, completions.outcomes(), want,
                                           &events, &count, &err);
  for (auto* o : obs) {
    const bool ok = status == TK_OK;
    o->on_complete_batch({core_call::complete_and_poll, size, steady::now() - t0, ok});
    o->on_poll({core_call::complete_and_poll, want, count, std::chrono::nanoseconds{0}, ok});
  }
  if (status != TK_OK) {
    store_failed("completing " + std::to_string(size) + " step(s)", err.message);
    return false;
  }
  store_ok();
  completed();
  accept(events, count, want);
  flush();  // only results the core refused as malformed, now failures
  return true;
}

void poller_state::heartbeat() {
  std::vector<std::int64_t> ids, tokens;
  for (const auto& [id, f] : running)
    if (!f.finished) {
      ids.push_back(id);
      tokens.push_back(f.event.fencing_token);
    }
  if (ids.empty())
    return;
  std::vector<int> beat(ids.size(), TK_OK);
  tk_error err{};
  ++heartbeat_calls;
  if (tk_heartbeat(worker, ids.data(), tokens.data(), ids.size(), beat.data(), &err) != TK_OK) {
    spdlog::error("worker {}: heartbeat failed: {}", config.worker_name, err.message);
    return;
  }
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (beat[i] != TK_OK)
      spdlog::warn("worker {}: step {} is no longer ours (lease lost or task cancelled)",
                   config.worker_name, ids[i]);
}

void poller_state::callback_target::remote() {
  if (!wake_sent.exchange(true))
    if (auto a = caf::actor_cast<caf::actor>(addr))
      caf::anon_send(a, wake_atom_v);
}

void poller_state::take_remote() {
  if (callbacks)
    callbacks->wake_sent = false;  // the pump that follows claims what there is
}

bool poller_state::store_paused() const {
  return store_backoff.count() > 0 && now() < store_retry_at;
}

void poller_state::store_failed(const std::string& what, const char* message) {
  using namespace std::chrono;
  store_backoff = std::clamp(store_backoff * 2, milliseconds{100}, milliseconds{5000});
  store_retry_at = now() + store_backoff;
  if (mode == poller_mode::running)
    mode = poller_mode::backing_off;
  spdlog::error("worker {}: {} failed, retrying in {} ms: {}", config.worker_name, what,
                store_backoff.count(), message);
  self->delayed_send(self, store_backoff, wake_atom_v);
}

void poller_state::store_ok() {
  if (store_backoff.count() == 0)
    return;
  spdlog::info("worker {}: the store answers again", config.worker_name);
  store_backoff = std::chrono::milliseconds{0};
  if (mode == poller_mode::backing_off)
    mode = poller_mode::running;
}

void poller_state::arm_timer() {
  if (mode == poller_mode::draining) {
    if (!drain_waiters.empty()) {
      auto left = duration_cast<milliseconds>(drain_deadline - now());
      self->delayed_send(self, std::max(left, milliseconds{1}), wake_atom_v);
    }
    return;
  }
  if (capacity() == 0 || !core_dry)
    return;  // a result will wake us, and the core still had ready steps
  std::int64_t delay = -1;
  if (tk_next_due(worker, &delay, nullptr) != TK_OK || delay < 0)
    return;
  const auto due = now() + milliseconds{delay};
  if (timer_armed && timer_due <= due + milliseconds{1})
    return;  // the armed timer comes first anyway
  timer_armed = true;
  timer_due = due;
  self->delayed_send(self, milliseconds{std::max<std::int64_t>(delay, 1)}, tick_atom_v,
                     ++timer_generation);
}

bool poller_state::idle() const {
  if (!running.empty() || !completions.empty())
    return false;
  std::int64_t delay = -1;
  return tk_next_due(worker, &delay, nullptr) == TK_OK && delay < 0;
}

tk_status poller_state::ping(tk_error& err) {
  auto refuse = [&err](tk_status status, const char* why) {
    err.code = status;
    std::snprintf(err.message, sizeof err.message, "%s", why);
    return status;
  };
  if (mode == poller_mode::draining)
    return refuse(TK_UNSUPPORTED, "the worker is stopping");
  if (store_paused())
    return refuse(TK_STORE_ERROR, "the store failed recently; the worker waits before it retries");
  char* text = nullptr;
  const auto status = tk_list_tasks(core, "{\"limit\":1}", &text, &err);
  tk_free(text);
  return status;
}

void poller_state::instance_down(const caf::down_msg& dm) {
  for (auto& [handler, route] : routes)
    for (std::size_t i = 0; i < route.route.instances.size(); ++i) {
      if (route.route.instances[i].address() != dm.source)
        continue;
      std::vector<std::pair<std::int64_t, std::int64_t>> lost;
      for (const auto& [id, f] : running)
        if (f.dispatched && !f.finished && f.event.handler == handler && f.instance == i)
          lost.emplace_back(id, f.event.fencing_token);
      dispatcher::replace(*route.lane, i);  // its outstanding replies no longer count
      if (route.route.respawn) {
        route.route.instances[i] = route.route.respawn();
        self->monitor(route.route.instances[i]);
        spdlog::warn("worker {}: an instance of handler {} died ({}); replaced it",
                     config.worker_name, handler, self->system().render(dm.reason));
      }
      for (const auto& [id, token] : lost)
        on_result(id, token,
                  failure(step_error::handler_error,
                          "the handler's actor died (" + self->system().render(dm.reason) + ")"));
      dispatch(route);
    }
}

void poller_state::drain(milliseconds within, caf::typed_response_promise<bool> promise) {
  mode = poller_mode::draining;
  drain_deadline = now() + within;
  drain_waiters.push_back(std::move(promise));
  pump();
}

void poller_state::observe_claimed(std::int64_t step_id, in_flight& f) {
  f.claimed_at = now();
  const auto& e = f.event;
  for (std::size_t i = 0; i < obs.size(); ++i)
    f.cookies[i] = obs[i]->on_step_claimed(
        {e.task_id, step_id, e.namespace_name, e.step_name, e.handler, e.attempt, f.claimed_at});
}

void poller_state::observe_started(std::int64_t step_id, const in_flight& f) {
  const auto& e = f.event;
  for (std::size_t i = 0; i < obs.size(); ++i)
    obs[i]->on_step_started({e.task_id, step_id, e.namespace_name, e.step_name, e.handler,
                             e.attempt, f.claimed_at, f.started, f.cookies[i]});
}

void poller_state::observe_finished(std::int64_t step_id, const in_flight& f, const step_result& r,
                                    step_outcome outcome) {
  const bool failed = r.kind == step_kind::failure;
  const auto finished_at = now();
  const auto& e = f.event;
  for (std::size_t i = 0; i < obs.size(); ++i)
    obs[i]->on_step_finished({e.task_id, step_id, e.namespace_name, e.step_name, e.handler,
                              e.attempt, e.max_attempts, outcome,
                              failed ? std::string_view{r.error_type} : std::string_view{},
                              f.dispatched, f.claimed_at, f.started, finished_at,
                              std::chrono::nanoseconds{r.cpu_time_ns}, f.cookies[i], &r});
}

poller_impl::behavior_type poller(poller_impl::stateful_pointer<poller_state> self, core_ref core,
                                  poller_config config,
                                  std::unordered_map<std::string, handler_route> routes) {
  auto& st = self->state;
  st.init(self, core.core, std::move(config), std::move(routes));
  // A handler actor that dies takes its steps' replies with it: fail those
  // steps now instead of waiting for their timeouts.
  for (auto& [_, route] : st.routes)
    for (auto& instance : route.route.instances)
      self->monitor(instance);
  self->set_down_handler([self](caf::down_msg& dm) { self->state.instance_down(dm); });
  self->send(self, wake_atom_v);
  self->delayed_send(self, st.config.heartbeat_interval, heartbeat_atom_v);
  self->delayed_send(self, st.config.fallback_poll, fallback_atom_v);
  return {
      [self](wake_atom) {
        self->state.take_remote();
        self->state.pump();
      },
      [self](deadline_atom) {
        self->state.expire_deadlines();
        self->state.pump();
      },
      [self](flush_atom) {
        self->state.flush_scheduled = false;
        self->state.pump();
      },
      [self](tick_atom, std::uint64_t generation) {
        if (generation != self->state.timer_generation)
          return;  // superseded by a sooner timer
        self->state.timer_armed = false;
        self->state.pump();
      },
      [self](fallback_atom) {
        self->state.pump();
        self->delayed_send(self, self->state.config.fallback_poll, fallback_atom_v);
      },
      [self](heartbeat_atom) {
        self->state.heartbeat();
        self->delayed_send(self, self->state.config.heartbeat_interval, heartbeat_atom_v);
      },
      [self](ping_atom) -> caf::result<bool> {
        tk_error err{};
        if (self->state.ping(err) != TK_OK)
          return core_error(err);
        return true;
      },
      [self](idle_atom) -> caf::result<bool> {
        if (self->state.idle())
          return true;
        auto promise = self->make_response_promise<bool>();
        self->state.idle_waiters.push_back(promise);
        return promise;
      },
      [self](drain_atom, std::int64_t deadline_ms) -> caf::result<bool> {
        auto promise = self->make_response_promise<bool>();
        self->state.drain(milliseconds{deadline_ms}, promise);
        return promise;
      },
  };
}

}  // namespace tasker::actors
