// The poller's decisions, run deterministically on CAF's test coordinator:
// every actor runs on the test thread when the test says so, and time (CAF's
// and the core's) moves only when the test moves it.
#include <chrono>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <tasker/actors/poller.hpp>
#include <tasker/core.h>
#include <tasker/core.hpp>
#include <tasker/core_testing.h>

using namespace std::chrono_literals;
using nlohmann::json;
using tasker::step_event;
using tasker::step_result;
namespace actors = tasker::actors;

namespace {

/// A handler under the test's control: it records every step it gets and
/// answers only when the test delivers the step's promise.
struct held_step {
  step_event event;
  caf::typed_response_promise<step_result> promise;
};
struct recorder_state {
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

struct fixture {
  /// Owns the core the poller borrows; declared first, so it closes after
  /// the actor system (and the poller in it) is gone.
  tasker::core_handle owner;
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;
  std::int64_t now_ms = 1'700'000'000'000;
  tk_core* core = nullptr;  // owner.get()
  actors::poller_impl poller;

  fixture()
    : sys{cfg.set("scheduler.policy", caf::atom("testing"))},
      sched{dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())} {}

  std::vector<recorder_actor> handlers;  // every recorder, stopped with the fixture

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
  /// a single step "only" run by <handler>), then spawns the poller.
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

  /// Moves both clocks (CAF's and the core's) and runs what became due.
  void advance(std::chrono::milliseconds d) {
    now_ms += d.count();
    sched.advance_time(d);
    sched.run();
  }

  /// Wakes the poller as the core's callback would for work made elsewhere.
  void wake() {
    caf::anon_send(poller, tasker::wake_atom_v);
    sched.run();
  }

  actors::poller_state& state() {
    auto* ptr = caf::actor_cast<caf::abstract_actor*>(poller);
    return dynamic_cast<caf::stateful_actor<actors::poller_state, actors::poller_impl::base>&>(*ptr)
        .state;
  }

  /// Makes handler `a` answer the index-th step it holds with `r`.
  void release(const recorder_actor& a, std::size_t index, step_result r) {
    caf::anon_send(a, release_atom::value, index, std::move(r));
  }

  recorder_state& recorder_of(const recorder_actor& a) {
    auto* ptr = caf::actor_cast<caf::abstract_actor*>(a);
    return dynamic_cast<caf::stateful_actor<recorder_state, recorder_actor::base>&>(*ptr).state;
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
  auto obs = std::make_shared<recording_observer>();
  auto h = spawn_recorder();
  auto pc = config(3, 2);
  pc.observers = {obs};
  start(pc, {{"work", {{h}, 0ms}}}, {"work"});
  std::vector<std::int64_t> tasks;
  for (int i = 0; i < 5; ++i)
    tasks.push_back(create("work"));
  wake();
  // One instance takes one step at a time; the rest wait in the poller,
  // claimed: three claimed in all, two polls (2 + 1).
  CHECK(obs->claimed_by_polls == 3);
  CHECK(recorder_of(h).held.size() == 1);
  int running = 0, ready = 0;
  for (auto t : tasks) {
    auto s = status(t).at("steps")[0].at("state");
    running += s == "running";
    ready += s == "ready";
  }
  CHECK(running == 3);
  CHECK(ready == 2);

  // A result frees one place: it is completed and the next queued step dispatched.
  release(h, 0, ok());
  sched.run();
  CHECK(recorder_of(h).held.size() == 2);
  CHECK(obs->completed_by_batches == 1);
  // One free place is less than a batch, and the handler still has a step
  // queued: no small claim (each claim is a store transaction).
  CHECK(obs->claimed_by_polls == 3);
  release(h, 1, ok());
  sched.run();  // queue empty now: completed at once, and a full batch fits
  CHECK(obs->completed_by_batches == 2);
  CHECK(obs->claimed_by_polls == 5);
  CHECK(recorder_of(h).held.size() == 3);
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
  CHECK(obs->claimed_by_polls == 4);
  const auto batches_before = obs->batches;
  for (auto& a : instances) {
    REQUIRE(recorder_of(a).held.size() == 1);
    release(a, 0, ok({{"n", 1}}));
  }
  sched.run();
  CHECK(obs->batches == batches_before + 1);  // one store call for all four
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
  REQUIRE(recorder_of(a).held.size() == 1);
  REQUIRE(recorder_of(b).held.size() == 1);  // one at a time per instance
  CHECK(recorder_of(a).held[0].event.handler == "alpha");
  CHECK(recorder_of(b).held[0].event.handler == "beta");
  release(b, 0, ok());
  sched.run();
  REQUIRE(recorder_of(b).held.size() == 2);
  CHECK(recorder_of(b).held[1].event.handler == "beta");
}

TEST_CASE_FIXTURE(fixture, "a step of an unknown handler fails for good without running"
                               * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(8, 8), {{"work", {{h}, 0ms}}}, {"work", "missing"});
  auto t = create("missing");
  wake();
  auto st = status(t);
  CHECK(st.at("state") == "error");
  CHECK(st.at("steps")[0].at("attempts") == 1);
  CHECK(st.at("steps")[0].at("last_error").at("type") == "handler_not_found");
  CHECK(recorder_of(h).held.empty());
  CHECK(state().load() == 0);
}

TEST_CASE_FIXTURE(fixture, "a handler that does not answer in time fails the step as retryable"
                               * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(8, 8), {{"work", {{h}, 500ms}}}, {"work"});
  auto t = create("work");
  wake();
  REQUIRE(recorder_of(h).held.size() == 1);
  advance(499ms);
  CHECK(status(t).at("steps")[0].at("state") == "running");
  advance(1ms);
  // The step is retried at once (backoff none) and claimed again, but the
  // only instance is still busy with the first attempt: the retry waits.
  auto step = status(t).at("steps")[0];
  CHECK(step.at("last_error").at("type") == "handler_timeout");
  CHECK(step.at("attempts") == 2);
  CHECK(recorder_of(h).held.size() == 1);
  // The late answer of the first attempt changes nothing, but frees the instance.
  release(h, 0, ok({{"late", true}}));
  sched.run();
  CHECK(status(t).at("steps")[0].at("state") == "running");
  REQUIRE(recorder_of(h).held.size() == 2);
  CHECK(recorder_of(h).held[1].event.attempt == 2);
  release(h, 1, ok({{"late", false}}));
  sched.run();
  CHECK(status(t).at("steps")[0].at("result") == json{{"late", false}});
}

TEST_CASE_FIXTURE(fixture, "a handler instance that dies is replaced" * doctest::timeout(10)) {
  auto h = spawn_recorder();
  actors::handler_route route{{h}, 0ms, {}};
  route.respawn = [this] { return spawn_recorder(); };
  start(config(8, 8), {{"work", route}}, {"work"});
  auto t = create("work");
  wake();
  REQUIRE(recorder_of(h).held.size() == 1);
  caf::anon_send_exit(h, caf::exit_reason::kill);
  sched.run();
  // The lost attempt failed (retryable) and the retry went to the replacement.
  REQUIRE(handlers.size() == 2);
  auto& replacement = recorder_of(handlers.back());
  REQUIRE(replacement.held.size() == 1);
  CHECK(replacement.held[0].event.attempt == 2);
  release(handlers.back(), 0, ok({{"by", "replacement"}}));
  sched.run();
  CHECK(status(t).at("state") == "complete");
}

TEST_CASE_FIXTURE(fixture, "the poller heartbeats the leases of steps that run long"
                               * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(8, 8), {{"work", {{h}, 0ms}}}, {"work"});
  auto t = create("work");
  wake();
  const auto first_lease = status(t).at("steps")[0].at("lease_expires_at").get<std::int64_t>();
  CHECK(first_lease == now_ms + 3000);
  for (int i = 0; i < 5; ++i)
    advance(1000ms);  // five heartbeats, well past the first lease
  CHECK(state().heartbeat_calls >= 5);
  auto step = status(t).at("steps")[0];
  CHECK(step.at("state") == "running");
  CHECK(step.at("attempts") == 1);
  CHECK(step.at("lease_expires_at").get<std::int64_t>() > now_ms);
  release(h, 0, ok());
  sched.run();
  CHECK(status(t).at("state") == "complete");
}

TEST_CASE_FIXTURE(fixture,
                  "a handler actor that dies fails the steps it held" * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(8, 8), {{"work", {{h}, 0ms}}}, {"work"});
  auto t = create("work");
  wake();
  REQUIRE(recorder_of(h).held.size() == 1);
  caf::anon_send_exit(h, caf::exit_reason::kill);
  sched.run();
  auto step = status(t).at("steps")[0];
  CHECK(step.at("last_error").at("type") == "handler_error");
  CHECK(state().load() <= 1);  // the retry may be claimed again and sent to the dead actor
  advance(10ms);
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
  REQUIRE(recorder_of(h).held.size() == 1);
  const auto failed = tasker::failure("flaky", "retryable_error");
  release(h, 0, failed);
  sched.run();
  CHECK(status(t).at("steps")[0].at("state") == "waiting_for_retry");
  advance(249ms);
  CHECK(recorder_of(h).held.size() == 1);
  advance(1ms);  // the timer fires: no fallback poll is needed (it is a minute away)
  CHECK(recorder_of(h).held.size() == 2);
  CHECK(status(t).at("steps")[0].at("attempts") == 2);
}

TEST_CASE_FIXTURE(fixture,
                  "draining finishes running steps and claims nothing new" * doctest::timeout(10)) {
  auto h = spawn_recorder();
  start(config(1, 1), {{"work", {{h}, 0ms}}}, {"work"});
  auto first = create("work");
  auto second = create("work");
  wake();
  REQUIRE(recorder_of(h).held.size() == 1);
  bool drained = false;
  auto client = sys.spawn(
      [&](caf::event_based_actor* self, actors::poller_actor target) {
        self->request(target, caf::infinite, tasker::drain_atom_v, std::int64_t{5000})
            .then([&](bool b) { drained = b; });
      },
      poller);

  sched.run();
  CHECK_FALSE(drained);
  release(h, 0, ok());
  sched.run();
  CHECK(drained);
  CHECK(status(first).at("state") == "complete");
  CHECK(status(second).at("steps")[0].at("state") == "ready");  // never claimed
  CHECK(recorder_of(h).held.size() == 1);
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
  advance(10ms);
  release(h, 0, ok());
  sched.run();
  advance(5ms);
  const auto failed = tasker::failure("", "card_declined", false);
  release(h, 1, failed);
  sched.run();
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
  REQUIRE(obs->log.size() == 2);
  CHECK(obs->log[0].hook == "claimed");
  CHECK(obs->log[1].hook == "finished");
  CHECK(obs->log[1].run_time == -1ms);  // never started
  CHECK(obs->log[1].outcome == tasker::actors::step_outcome::failed);
  CHECK(obs->log[1].error_type == "handler_not_found");
  obs->log.clear();
  create("work");
  wake();
  advance(500ms);
  // claimed, started, finished as timed out; then the retry is claimed and waits.
  REQUIRE(obs->log.size() >= 3);
  CHECK(obs->log[2].hook == "finished");
  CHECK(obs->log[2].outcome == tasker::actors::step_outcome::timed_out);
  CHECK(obs->log[2].error_type == "handler_timeout");
  CHECK(obs->log[2].run_time == 500ms);
  release(h, 0, ok());  // the late answer is not reported: only the retry starts
  sched.run();
  REQUIRE(obs->log.size() == 5);
  CHECK(obs->log[3].hook == "claimed");
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
