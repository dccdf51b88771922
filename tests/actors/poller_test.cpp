// The poller's decisions, run deterministically on CAF's test coordinator:
// every actor runs on the test thread when the test says so, and time (CAF's
// and the core's) moves only when the test moves it. The cases say which
// messages flow (CAF's test DSL: expect, allow, disallow) between the poller,
// its handler actors and its own timers, and read what the core did through
// the C ABI; no case looks into the poller's state.
#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <tasker/actors/poller.hpp>
#include <tasker/core.h>
#include <tasker/core.hpp>
#include <tasker/core_testing.h>
#include <tasker/test/caf_dsl.hpp>  // last: it defines expect, allow, disallow

using namespace std::chrono_literals;
using nlohmann::json;
using tasker::step_event;
using tasker::step_result;
using tasker::test::where;
namespace actors = tasker::actors;

namespace {

/// A handler under the test's control: it keeps every step it gets and
/// answers only when the test tells it to.
struct held_step {
  step_event event;
  caf::typed_response_promise<step_result> promise;
};
struct recorder_state {
  static inline const char* name = "test.recorder";
  std::vector<held_step> held;
};
using release_atom = caf::atom_constant<caf::atom("release")>;
/// A handler (the step protocol) that the test can also tell to answer.
using recorder_actor =
    actors::step_handler_actor::extend<caf::reacts_to<release_atom, std::size_t, step_result>>;
// (The unused name is a spawn argument: CAF 0.17.6 dereferences a null
// argument tuple for actors spawned with none, which UBSan reports.)
recorder_actor::behavior_type recorder(recorder_actor::stateful_pointer<recorder_state> self,
                                       const std::string&) {
  return {
      [self](step_event& e) -> caf::result<step_result> {
        auto rp = self->make_response_promise<step_result>();
        self->state.held.push_back({e, rp});
        return rp;
      },
      // A promise is delivered from its actor's own context.
      [self](release_atom, std::size_t index, step_result& r) {
        self->state.held.at(index).promise.deliver(std::move(r));
      },
  };
}

step_result ok(json value = json::object()) {
  step_result r;
  r.result_json = value.dump();
  return r;
}

// Conditions on what flows, for expect(…).with(…).
auto attempt_is(std::int32_t n) {
  return where("attempt == " + std::to_string(n),
               [n](const step_event& e) { return e.attempt == n; });
}
auto handler_is(std::string name) {
  return where("handler == " + name, [name](const step_event& e) { return e.handler == name; });
}
auto step_is(std::int64_t id) {
  return where("step_id == " + std::to_string(id),
               [id](const step_event& e) { return e.step_id == id; });
}
auto result_is(json value) {
  return where("a success with " + value.dump(), [value](const step_result& r) {
    return r.kind == tasker::step_kind::success && json::parse(r.result_json) == value;
  });
}
auto failure_of(std::string type) {
  return where("a failure of type " + type, [type](const step_result& r) {
    return r.kind == tasker::step_kind::failure && r.error_type == type;
  });
}

struct fixture {
  /// Owns the core the poller borrows; declared first, so it closes after
  /// the actor system (and the poller in it) is gone.
  tasker::core_handle owner;
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  /// Asks the poller what the worker asks it (idle, drain) and takes its
  /// answers (a blocking actor: answers wait in its mailbox for expect()).
  caf::scoped_actor client;
  std::int64_t now_ms = 1'700'000'000'000;
  tk_core* core = nullptr;  // owner.get()
  actors::poller_impl poller;
  std::vector<recorder_actor> handlers;  // every recorder, stopped with the fixture

  fixture()
    : sys{cfg.set("scheduler.policy", caf::atom("testing"))},
      sched{dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())}, client{sys, true} {}

  ~fixture() {
    if (poller)
      caf::anon_send_exit(poller, caf::exit_reason::user_shutdown);
    for (auto& h : handlers)
      caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
    sched.run();
  }

  recorder_actor spawn_recorder() {
    handlers.push_back(sys.spawn(recorder, std::string("recorder")));
    return handlers.back();
  }

  static std::int64_t read_clock(void* self) { return static_cast<fixture*>(self)->now_ms; }

  /// Opens a memory core with one pipeline per handler name ("ns"/<handler>@1,
  /// a single step "only" run by <handler>), then spawns the poller and runs
  /// every actor's start (the poller's first wake finds no work).
  void start(actors::poller_config pc,
             std::unordered_map<std::string, actors::handler_route> routes,
             const std::vector<std::string>& pipelines) {
    tk_error err{};
    owner = tasker::core_handle::open("memory:", R"({"seed":1})", err);
    core = owner.get();
    REQUIRE(core != nullptr);
    REQUIRE(tk_set_clock(core, &fixture::read_clock, this, &err) == TK_OK);
    for (const auto& handler : pipelines) {
      json p{{"namespace", "ns"},
             {"name", handler},
             {"version", "1"},
             {"steps",
              {{{"name", "only"},
                {"handler", handler},
                {"retry", {{"max_attempts", 2}, {"backoff", "none"}}}}}}};
      REQUIRE(tk_register_pipeline(core, p.dump().c_str(), &err) == TK_OK);
    }
    poller = sys.spawn(actors::poller, actors::core_ref{core}, std::move(pc), std::move(routes));
    sched.run();
  }

  std::int64_t create(const std::string& pipeline) {
    tk_task_spec spec{};
    spec.namespace_name = "ns";
    spec.name = pipeline.c_str();
    spec.version = "1";
    std::int64_t id = 0;
    tk_error err{};
    REQUIRE(tk_create_task(core, &spec, &id, nullptr, &err) == TK_OK);
    return id;
  }

  json status(std::int64_t task) {
    char* text = nullptr;
    tk_error err{};
    REQUIRE(tk_task_status(core, task, &text, &err) == TK_OK);
    auto j = json::parse(text);
    tk_free(text);
    return j;
  }

  /// The state of task `task`'s one step, as the core has it.
  json step(std::int64_t task) { return status(task).at("steps")[0]; }

  /// How many of `tasks` have their step in `state`.
  int count(const std::vector<std::int64_t>& tasks, const std::string& state) {
    int n = 0;
    for (auto t : tasks)
      n += step(t).at("state") == state;
    return n;
  }

  /// Moves both clocks (CAF's and the core's). What falls due is put in its
  /// receiver's mailbox, for the test to expect.
  void advance(std::chrono::milliseconds d) {
    now_ms += d.count();
    sched.advance_time(d);
  }

  /// No actor has a message waiting.
  bool quiet() const { return !sched.has_job(); }

  /// Wakes the poller as the core's callback would for work made elsewhere
  /// (here the core calls back on the poller's own thread, the test's, which
  /// only sets a flag), and runs that wake-up.
  void wake() {
    caf::anon_send(poller, tasker::wake_atom_v);
    expect((tasker::wake_atom), from(_).to(poller));
  }

  /// Makes handler `h` answer the index-th step it holds with `r`: `h` runs
  /// the test's message and sends its step_result (for the test to expect).
  void release(const recorder_actor& h, std::size_t index, step_result r) {
    caf::anon_send(h, release_atom::value, index, std::move(r));
    expect((release_atom, std::size_t, step_result), from(_).to(h));
  }
};

actors::poller_config config(std::size_t max_in_flight, std::size_t batch) {
  actors::poller_config pc;
  pc.worker_name = "test";
  pc.max_in_flight = max_in_flight;
  pc.batch_size = batch;
  pc.lease = 3000ms;
  pc.heartbeat_interval = 1000ms;
  pc.fallback_poll = 60000ms;
  return pc;
}

}  // namespace

namespace {

/// Writes down every observer call, in order.
struct recording_observer : tasker::actors::observer {
  struct entry {
    std::string hook;  // claimed, started, finished
    std::int64_t step_id = 0;
    std::string handler;
    std::string namespace_name;
    std::chrono::milliseconds queue_wait{-1};  // started, finished (when started)
    std::chrono::milliseconds run_time{-1};    // finished, when started
    tasker::actors::step_outcome outcome{};
    std::string error_type;
    bool cookie_ok = false;
  };
  std::vector<entry> log;
  static entry make(const char* hook, std::int64_t step_id, std::string_view handler,
                    std::string_view namespace_name) {
    entry x;
    x.hook = hook;
    x.step_id = step_id;
    x.handler = handler;
    x.namespace_name = namespace_name;
    return x;
  }
  std::size_t polls = 0, claimed_by_polls = 0, batches = 0, completed_by_batches = 0;
  int cookie_target = 0;

  void* on_step_claimed(const tasker::actors::step_claimed_event& e) noexcept override {
    log.push_back(make("claimed", e.step_id, e.handler, e.namespace_name));
    return &cookie_target;
  }
  void on_step_started(const tasker::actors::step_started_event& e) noexcept override {
    auto x = make("started", e.step_id, e.handler, e.namespace_name);
    x.queue_wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(e.started_at - e.claimed_at);
    x.cookie_ok = e.cookie == &cookie_target;
    log.push_back(x);
  }
  void on_step_finished(const tasker::actors::step_finished_event& e) noexcept override {
    auto x = make("finished", e.step_id, e.handler, e.namespace_name);
    if (e.started)
      x.run_time =
          std::chrono::duration_cast<std::chrono::milliseconds>(e.finished_at - e.started_at);
    x.outcome = e.outcome;
    x.error_type = std::string(e.error_type);
    x.cookie_ok = e.cookie == &cookie_target;
    log.push_back(x);
  }
  void on_poll(const tasker::actors::poll_event& e) noexcept override {
    ++polls;
    claimed_by_polls += e.claimed;
  }
  void on_complete_batch(const tasker::actors::complete_batch_event& e) noexcept override {
    ++batches;
    if (e.ok)
      completed_by_batches += e.size;
  }
};

}  // namespace

TEST_CASE_FIXTURE(fixture,
                  "the poller claims no more steps than it has room for" * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(3, 2), {{"work", {{h}, 0ms}}}, {"work"});
  std::vector<std::int64_t> tasks;
  for (int i = 0; i < 5; ++i)
    tasks.push_back(create("work"));
  wake();
  // Three claimed, as many as fit, and the one instance takes one step at a
  // time: the other two wait in the poller, claimed.
  expect((step_event), from(poller).to(h));
  CHECK(quiet());
  CHECK(count(tasks, "running") == 3);
  CHECK(count(tasks, "ready") == 2);

  // A result frees one place: the next queued step goes to the instance
  // and the result is completed.
  release(h, 0, ok());
  expect((step_result), from(h).to(poller));
  expect((step_event), from(poller).to(h));
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(quiet());
  CHECK(count(tasks, "complete") == 1);
  // One free place is less than a batch, and the handler still has a step
  // queued: no small claim (each claim is a store transaction).
  CHECK(count(tasks, "running") == 2);
  CHECK(count(tasks, "ready") == 2);

  release(h, 1, ok());
  expect((step_result), from(h).to(poller));
  expect((step_event), from(poller).to(h));  // the last queued step
  // Queue empty now: the flush completes and claims a full batch in one call.
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(quiet());
  CHECK(count(tasks, "complete") == 2);
  CHECK(count(tasks, "running") == 3);
  CHECK(count(tasks, "ready") == 0);
}

TEST_CASE_FIXTURE(fixture,
                  "results that arrive together are completed in one call" * doctest::timeout(10)) {
  std::vector<recorder_actor> instances;
  for (int i = 0; i < 4; ++i)
    instances.push_back(spawn_recorder());
  auto obs = std::make_shared<recording_observer>();
  auto pc = config(16, 16);
  pc.observers = {obs};
  start(pc, {{"work", {{instances.begin(), instances.end()}, 0ms}}}, {"work"});
  std::vector<std::int64_t> tasks;
  for (int i = 0; i < 4; ++i)
    tasks.push_back(create("work"));
  wake();
  for (auto& a : instances)
    expect((step_event), from(poller).to(a));
  const auto batches_before = obs->batches;
  for (auto& a : instances)
    release(a, 0, ok({{"n", 1}}));
  // Four results wait in the poller's mailbox; the first asks for a flush,
  // which comes after all four: one flush, one store call for all of them.
  for (auto& a : instances)
    expect((step_result), from(a).to(poller).with(result_is({{"n", 1}})));
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(quiet());
  CHECK(obs->batches == batches_before + 1);
  CHECK(obs->completed_by_batches == 4);
  for (auto t : tasks)
    CHECK(status(t).at("state") == "complete");
}

TEST_CASE_FIXTURE(fixture, "steps go to the actors of their own handler" * doctest::timeout(10)) {
  auto a = spawn_recorder();
  auto b = spawn_recorder();
  start(config(8, 8), {{"alpha", {{a}, 0ms}}, {"beta", {{b}, 0ms}}}, {"alpha", "beta"});
  create("alpha");
  create("beta");
  create("beta");
  wake();
  expect((step_event), from(poller).to(a).with(handler_is("alpha")));
  expect((step_event), from(poller).to(b).with(handler_is("beta")));
  CHECK(quiet());  // one at a time per instance: the second beta step waits
  release(b, 0, ok());
  expect((step_result), from(b).to(poller));
  expect((step_event), from(poller).to(b).with(handler_is("beta")));
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(quiet());
}

TEST_CASE_FIXTURE(fixture, "a step of an unknown handler fails for good without running"
                               * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(8, 8), {{"work", {{h}, 0ms}}}, {"work", "missing"});
  auto t = create("missing");
  wake();  // claims it, fails it and completes the failure, all in this wake-up
  auto st = status(t);
  CHECK(st.at("state") == "error");
  CHECK(st.at("steps")[0].at("attempts") == 1);
  CHECK(st.at("steps")[0].at("last_error").at("type") == "handler_not_found");
  // The flush the failure asked for finds nothing left; no handler got anything.
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(quiet());
  // Nothing of the step is left in the poller: it answers "idle" at once.
  client->request(poller, caf::infinite, tasker::idle_atom_v);
  expect((tasker::idle_atom), from(client).to(poller));
  expect((bool), from(poller).to(client).with(true));
}

TEST_CASE_FIXTURE(fixture, "a handler that does not answer in time fails the step as retryable"
                               * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(8, 8), {{"work", {{h}, 500ms}}}, {"work"});
  auto t = create("work");
  wake();
  expect((step_event), from(poller).to(h).with(attempt_is(1)));
  advance(499ms);
  CHECK(quiet());
  CHECK(step(t).at("state") == "running");
  advance(1ms);
  // The poller's deadline fails the step, completes the failure and claims
  // the retry (backoff none), all in that one message.
  expect((tasker::deadline_atom), from(poller).to(poller));
  CHECK(step(t).at("last_error").at("type") == "handler_timeout");
  CHECK(step(t).at("attempts") == 2);
  expect((tasker::flush_atom), from(poller).to(poller));  // nothing left for it
  // The only instance is still busy with the first attempt: the retry waits.
  CHECK(quiet());
  // The late answer of the first attempt changes nothing (no flush), but
  // frees the instance, which gets the retry.
  release(h, 0, ok({{"late", true}}));
  expect((step_result), from(h).to(poller));
  expect((step_event), from(poller).to(h).with(attempt_is(2)));
  CHECK(quiet());
  CHECK(step(t).at("state") == "running");
  release(h, 1, ok({{"late", false}}));
  expect((step_result), from(h).to(poller));
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(step(t).at("result") == json{{"late", false}});
}

TEST_CASE_FIXTURE(fixture, "a handler instance that dies is replaced" * doctest::timeout(10)) {
  auto h = spawn_recorder();
  actors::handler_route route{{h}, 0ms, {}};
  route.respawn = [this] { return spawn_recorder(); };
  start(config(8, 8), {{"work", route}}, {"work"});
  auto t = create("work");
  wake();
  expect((step_event), from(poller).to(h).with(attempt_is(1)));
  caf::anon_send_exit(h, caf::exit_reason::kill);
  expect((caf::exit_msg), from(_).to(h));
  // The poller hears of it, makes a replacement and fails the lost attempt
  // (retryable); the flush completes the failure and claims the retry, which
  // goes to the replacement.
  expect((caf::down_msg), from(h).to(poller));
  REQUIRE(handlers.size() == 2);
  auto replacement = handlers.back();
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(step(t).at("last_error").at("type") == "handler_error");
  expect((step_event), from(poller).to(replacement).with(attempt_is(2)));
  CHECK(quiet());
  release(replacement, 0, ok({{"by", "replacement"}}));
  expect((step_result), from(replacement).to(poller));
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(status(t).at("state") == "complete");
}

TEST_CASE_FIXTURE(fixture, "the poller heartbeats the leases of steps that run long"
                               * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(8, 8), {{"work", {{h}, 0ms}}}, {"work"});
  auto t = create("work");
  wake();
  expect((step_event), from(poller).to(h));
  CHECK(step(t).at("lease_expires_at").get<std::int64_t>() == now_ms + 3000);
  for (int i = 0; i < 5; ++i) {  // five heartbeats, well past the first lease
    advance(1000ms);
    // The poller's one timer is set for the core's next due event, the
    // lease's end as it was then: it may come first and find nothing to do.
    allow((tasker::tick_atom, std::uint64_t), from(poller).to(poller));
    expect((tasker::heartbeat_atom), from(poller).to(poller));
    CHECK(quiet());
    CHECK(step(t).at("lease_expires_at").get<std::int64_t>() == now_ms + 3000);  // from now
  }
  CHECK(step(t).at("state") == "running");
  CHECK(step(t).at("attempts") == 1);
  release(h, 0, ok());
  expect((step_result), from(h).to(poller));
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(status(t).at("state") == "complete");
}

TEST_CASE_FIXTURE(fixture,
                  "a handler actor that dies fails the steps it held" * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(8, 8), {{"work", {{h}, 0ms}}}, {"work"});
  auto t = create("work");
  wake();
  expect((step_event), from(poller).to(h));
  caf::anon_send_exit(h, caf::exit_reason::kill);
  expect((caf::exit_msg), from(_).to(h));
  // The step fails (retryable); the flush completes that and claims the
  // retry, which goes to the same instance (none replaces it) ...
  expect((caf::down_msg), from(h).to(poller));
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(step(t).at("last_error").at("type") == "handler_error");
  CHECK(step(t).at("attempts") == 2);
  // ... and comes back at once: the actor is down. The second attempt fails too.
  expect((caf::error), from(_).to(poller).with(caf::sec::request_receiver_down));
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(quiet());
  CHECK(status(t).at("state") == "error");  // both attempts failed
}

TEST_CASE_FIXTURE(fixture, "a retry due later wakes the poller through its one timer"
                               * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(8, 8), {{"work", {{h}, 0ms}}}, {});
  tk_error err{};
  json p{{"namespace", "ns"},
         {"name", "work"},
         {"version", "1"},
         {"steps",
          {{{"name", "only"},
            {"handler", "work"},
            {"retry",
             {{"max_attempts", 2}, {"backoff", "linear"}, {"base_ms", 250}, {"jitter", 0}}}}}}};
  REQUIRE(tk_register_pipeline(core, p.dump().c_str(), &err) == TK_OK);
  auto t = create("work");
  wake();
  expect((step_event), from(poller).to(h).with(attempt_is(1)));
  release(h, 0, tasker::failure("flaky", "retryable_error"));
  expect((step_result), from(h).to(poller).with(failure_of("retryable_error")));
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(step(t).at("state") == "waiting_for_retry");
  advance(249ms);
  CHECK(quiet());
  advance(1ms);
  // The timer fires: no fallback poll is needed (it is a minute away).
  expect((tasker::tick_atom, std::uint64_t), from(poller).to(poller));
  expect((step_event), from(poller).to(h).with(attempt_is(2)));
  CHECK(quiet());
  CHECK(step(t).at("attempts") == 2);
}

TEST_CASE_FIXTURE(fixture,
                  "draining finishes running steps and claims nothing new" * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(1, 1), {{"work", {{h}, 0ms}}}, {"work"});
  auto first = create("work");
  auto second = create("work");
  wake();
  expect((step_event), from(poller).to(h));
  client->request(poller, caf::infinite, tasker::drain_atom_v, std::int64_t{5000});
  expect((tasker::drain_atom, std::int64_t), from(client).to(poller));
  disallow((bool), from(poller).to(client));  // a step still runs: no answer yet
  CHECK(quiet());
  release(h, 0, ok());
  expect((step_result), from(h).to(poller));
  expect((tasker::flush_atom), from(poller).to(poller));
  expect((bool), from(poller).to(client).with(true));  // drained
  CHECK(quiet());                                      // and nothing more went to the handler
  CHECK(status(first).at("state") == "complete");
  CHECK(step(second).at("state") == "ready");  // never claimed
}

TEST_CASE_FIXTURE(fixture, "the observer hears of each step's claim, start and finish in order"
                               * doctest::timeout(10)) {
  auto obs = std::make_shared<recording_observer>();
  auto h = spawn_recorder();
  auto pc = config(8, 8);
  pc.observers = {obs};
  start(pc, {{"work", {{h}, 0ms}}}, {"work"});
  create("work");
  create("work");
  wake();
  // Both claimed, one dispatched: the other waits for the one instance.
  REQUIRE(obs->log.size() == 3);
  CHECK(obs->log[0].hook == "claimed");
  CHECK(obs->log[1].hook == "claimed");
  CHECK(obs->log[2].hook == "started");
  CHECK(obs->log[2].queue_wait == 0ms);
  CHECK(obs->log[2].cookie_ok);
  CHECK(obs->log[2].namespace_name == "ns");
  const auto first = obs->log[2].step_id;
  const auto second = obs->log[0].step_id == first ? obs->log[1].step_id : obs->log[0].step_id;
  expect((step_event), from(poller).to(h).with(step_is(first)));
  advance(10ms);
  release(h, 0, ok());
  expect((step_result), from(h).to(poller));
  expect((step_event), from(poller).to(h).with(step_is(second)));
  expect((tasker::flush_atom), from(poller).to(poller));
  advance(5ms);
  release(h, 1, tasker::failure("", "card_declined", false));
  expect((step_result), from(h).to(poller));
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(quiet());
  REQUIRE(obs->log.size() == 6);
  // The freed instance takes the queued step before the first's result is
  // recorded: order is kept per step, not across steps.
  CHECK(obs->log[3].hook == "started");
  CHECK(obs->log[3].step_id == second);
  CHECK(obs->log[3].queue_wait == 10ms);  // claimed together, started when the instance freed
  CHECK(obs->log[4].hook == "finished");
  CHECK(obs->log[4].step_id == first);
  CHECK(obs->log[4].run_time == 10ms);
  CHECK(obs->log[4].outcome == tasker::actors::step_outcome::succeeded);
  CHECK(obs->log[4].error_type.empty());
  CHECK(obs->log[5].hook == "finished");
  CHECK(obs->log[5].run_time == 5ms);
  CHECK(obs->log[5].outcome == tasker::actors::step_outcome::failed);
  CHECK(obs->log[5].error_type == "card_declined");
  CHECK(obs->log[5].cookie_ok);
  CHECK(obs->claimed_by_polls == 2);
  CHECK(obs->completed_by_batches == 2);
  CHECK(obs->batches >= 1);
}

TEST_CASE_FIXTURE(fixture, "the observer hears of timeouts and of steps that never ran"
                               * doctest::timeout(10)) {
  auto obs = std::make_shared<recording_observer>();
  auto h = spawn_recorder();
  auto pc = config(8, 8);
  pc.observers = {obs};
  start(pc, {{"work", {{h}, 500ms}}}, {"work", "missing"});
  create("missing");
  wake();
  expect((tasker::flush_atom), from(poller).to(poller));
  CHECK(quiet());  // it never went to a handler
  REQUIRE(obs->log.size() == 2);
  CHECK(obs->log[0].hook == "claimed");
  CHECK(obs->log[1].hook == "finished");
  CHECK(obs->log[1].run_time == -1ms);  // never started
  CHECK(obs->log[1].outcome == tasker::actors::step_outcome::failed);
  CHECK(obs->log[1].error_type == "handler_not_found");
  obs->log.clear();
  create("work");
  wake();
  expect((step_event), from(poller).to(h));
  advance(500ms);
  expect((tasker::deadline_atom), from(poller).to(poller));
  expect((tasker::flush_atom), from(poller).to(poller));
  // claimed, started, finished as timed out; then the retry is claimed and waits.
  REQUIRE(obs->log.size() == 4);
  CHECK(obs->log[2].hook == "finished");
  CHECK(obs->log[2].outcome == tasker::actors::step_outcome::timed_out);
  CHECK(obs->log[2].error_type == "handler_timeout");
  CHECK(obs->log[2].run_time == 500ms);
  CHECK(obs->log[3].hook == "claimed");
  release(h, 0, ok());  // the late answer is not reported: only the retry starts
  expect((step_result), from(h).to(poller));
  expect((step_event), from(poller).to(h).with(attempt_is(2)));
  CHECK(quiet());
  REQUIRE(obs->log.size() == 5);
  CHECK(obs->log[4].hook == "started");
  CHECK(obs->log[4].queue_wait == 0ms);
}

// ---- the dispatcher and the completion batch: plain values, no actors -----

TEST_CASE("the dispatcher gives each instance one step and queues the rest"
          * doctest::timeout(10)) {
  actors::dispatcher d{8, 4};
  auto& lane = d.add("work", 2);
  CHECK(d.find("work") == &lane);
  CHECK(d.find("missing") == nullptr);
  for (std::int64_t id : {1, 2, 3})
    lane.queued.push_back(id);
  auto a = actors::dispatcher::next(lane);
  auto b = actors::dispatcher::next(lane);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->step_id == 1);
  CHECK(b->step_id == 2);
  CHECK(a->instance != b->instance);
  CHECK_FALSE(actors::dispatcher::next(lane));  // both busy: step 3 waits
  CHECK(lane.queued.size() == 1);
  CHECK(actors::dispatcher::release(lane, a->instance, a->generation));
  auto c = actors::dispatcher::next(lane);
  REQUIRE(c);
  CHECK(c->step_id == 3);
  CHECK(c->instance == a->instance);
}

TEST_CASE("a reply of a replaced instance does not free its successor" * doctest::timeout(10)) {
  actors::dispatcher d{8, 4};
  auto& lane = d.add("work", 1);
  lane.queued.push_back(1);
  auto a = actors::dispatcher::next(lane);
  REQUIRE(a);
  actors::dispatcher::replace(lane, a->instance);  // it died; a new one took its place
  lane.queued.push_back(2);
  auto b = actors::dispatcher::next(lane);
  REQUIRE(b);
  CHECK(b->generation != a->generation);
  CHECK_FALSE(actors::dispatcher::release(lane, a->instance, a->generation));  // the old reply
  CHECK(lane.active[b->instance] == 1);
  CHECK(actors::dispatcher::release(lane, b->instance, b->generation));
}

TEST_CASE("the dispatcher claims a whole batch, or less only for an idle instance"
          * doctest::timeout(10)) {
  actors::dispatcher d{10, 4};
  CHECK(d.claim_size(0) == 4);  // no handlers at all: claim (the steps fail as not found)
  auto& lane = d.add("work", 1);
  CHECK(d.capacity(7) == 3);
  CHECK(d.capacity(12) == 0);
  CHECK(d.claim_size(10) == 0);     // full
  CHECK(d.claim_size(10, 2) == 2);  // two results about to complete, and the instance idles
  lane.active[0] = 1;               // the instance is busy
  CHECK(d.claim_size(8) == 0);      // two places: less than a batch, nobody idles
  CHECK(d.claim_size(6) == 4);      // a batch fits
  CHECK(d.claim_size(8, 2) == 4);   // ... once the pending results complete
}

TEST_CASE("the completion batch hands the core one entry per result, of its kind"
          * doctest::timeout(10)) {
  actors::completion_batch batch;
  batch.add(1, 11, tasker::success_raw(R"({"v":1})"));
  batch.add(2, 12, tasker::failure("boom", "card_declined", false, 5ms));
  batch.add(3, 13, tasker::wait_for("approval", 1000ms));
  const auto* r = batch.build();
  REQUIRE(batch.size() == 3);
  CHECK(r[0].kind == TK_RESULT_SUCCESS);
  CHECK(r[0].step_id == 1);
  CHECK(r[0].fencing_token == 11);
  CHECK(std::string(r[0].result_json) == R"({"v":1})");
  CHECK(r[1].kind == TK_RESULT_FAILURE);
  CHECK(std::string(r[1].error_type) == "card_declined");
  CHECK(r[1].retryable == 0);
  CHECK(r[1].retry_after_ms == 5);
  CHECK(r[2].kind == TK_RESULT_WAIT);
  CHECK(std::string(r[2].wait_signal) == "approval");
  CHECK(r[2].wait_timeout_ms == 1000);
  CHECK(batch.outcomes()[0] == TK_OK);
}

TEST_CASE("a result the core refuses as malformed becomes a permanent failure, once"
          * doctest::timeout(10)) {
  actors::completion_batch batch;
  batch.add(1, 11, tasker::success_raw("{not json"));
  batch.add(2, 12, tasker::success_raw("{}"));
  batch.add(3, 13, tasker::success_raw("{}"));
  batch.build();
  batch.outcomes()[0] = TK_MALFORMED_JSON;
  batch.outcomes()[2] = TK_STALE;
  std::vector<std::pair<std::int64_t, int>> done;
  batch.settle([&](std::int64_t id, int outcome) { done.emplace_back(id, outcome); });
  CHECK(done == std::vector<std::pair<std::int64_t, int>>{{2, TK_OK}, {3, TK_STALE}});
  REQUIRE(batch.size() == 1);  // step 1 still needs its one result
  const auto& redo = batch.pending()[0];
  CHECK(redo.step_id == 1);
  CHECK(redo.token == 11);
  CHECK(redo.result.kind == tasker::step_kind::failure);
  CHECK(redo.result.error_type == "malformed_result");
  CHECK_FALSE(redo.result.retryable);
  batch.build();
  batch.settle([&](std::int64_t id, int outcome) { done.emplace_back(id, outcome); });
  CHECK(batch.empty());
  CHECK(done.back() == std::pair<std::int64_t, int>{1, TK_OK});
}
