// The store conformance suite: every case runs against every store, through
// the C ABI only. A store is done when this suite passes.
#include <algorithm>
#include <string>
#include <vector>

#include "core_test_support.hpp"
#include "pg_test_support.hpp"

using namespace tasker::test;

namespace {

struct memory_store {
  static std::string url(const temp_dir&) { return "memory:"; }
};

struct sqlite_store {
  static std::string url(const temp_dir& dir) { return "sqlite:" + dir.file("tasker.db"); }
};

// The same suite, built a second time with TASKER_CONFORMANCE_PG, runs against
// PostgreSQL (a fresh schema per case on the test server).
struct pg_store {
  static std::string url(const temp_dir&) { return fresh_pg_url(); }
};

}  // namespace

TYPE_TO_STRING(memory_store);
TYPE_TO_STRING(sqlite_store);
TYPE_TO_STRING(pg_store);

#ifdef TASKER_CONFORMANCE_PG
#define TASKER_STORES pg_store
#else
#define TASKER_STORES memory_store, sqlite_store
#endif

namespace {

/// A core on a fresh store of kind Store, driven by a manual clock.
template <class Store>
struct store_env {
  temp_dir dir;
  manual_clock clock;
  core_handle core;

  explicit store_env(const char* options = nullptr) {
    core.open(Store::url(dir), options);
    core.use_clock(clock);
  }

  /// Registers `steps` as test/flow@1.
  void register_flow(const std::vector<step_spec>& steps, std::string_view ns = "test",
                     std::string_view name = "flow") {
    register_pipeline(core, pipeline_json(ns, name, steps));
  }
};

/// Registers a pipeline that must be rejected; returns the error message.
std::string rejected_message(tk_core* core, const std::string& pipeline, tk_status expected) {
  tk_error err{};
  INFO("pipeline: ", pipeline);
  CHECK(tk_register_pipeline(core, pipeline.c_str(), &err) == expected);
  CHECK(err.code == expected);
  CHECK(std::strlen(err.message) > 0);
  return err.message;
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> names_of(const std::vector<claimed_step>& steps) {
  std::vector<std::string> out;
  for (const auto& s : steps)
    out.push_back(s.step_name);
  std::sort(out.begin(), out.end());
  return out;
}

struct wakeup_counter {
  int calls = 0;
  static void on_wakeup(void* self) { ++static_cast<wakeup_counter*>(self)->calls; }
};

/// Records every (task, final state) the task listener reports.
struct finished_log {
  std::vector<std::pair<std::int64_t, std::string>> seen;
  static void on_finished(void* self, std::int64_t task_id, const char* state) {
    static_cast<finished_log*>(self)->seen.emplace_back(task_id, state);
  }
};

}  // namespace

// ---- pipelines ---------------------------------------------------------------

TEST_CASE_TEMPLATE("a pipeline that breaks a DAG rule is rejected naming the offending step"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  std::string message;
  SUBCASE("a cycle") {
    message = rejected_message(
        env.core,
        pipeline_json(
            "test", "flow",
            {{"root"}, {"alpha", {"root", "gamma"}}, {"beta", {"alpha"}}, {"gamma", {"beta"}}}),
        TK_VALIDATION);
    INFO(message);
    CHECK((contains(message, "alpha") || contains(message, "beta") || contains(message, "gamma")));
  }
  SUBCASE("an unknown dependency") {
    message = rejected_message(
        env.core, pipeline_json("test", "flow", {{"first"}, {"second", {"ghost"}}}), TK_VALIDATION);
    INFO(message);
    CHECK(contains(message, "second"));
    CHECK(contains(message, "ghost"));
  }
  SUBCASE("a duplicate step name") {
    message = rejected_message(
        env.core, pipeline_json("test", "flow", {{"first"}, {"twin"}, {"twin"}}), TK_VALIDATION);
    INFO(message);
    CHECK(contains(message, "twin"));
  }
  SUBCASE("an empty step name") {
    message =
        rejected_message(env.core, pipeline_json("test", "flow", {{"first"}, {""}}), TK_VALIDATION);
    INFO(message);
    CHECK(contains(message, "name"));
  }
  SUBCASE("an empty handler") {
    message = rejected_message(
        env.core, pipeline_json("test", "flow", {{"first"}, {"lonely", {}, nullptr, ""}}),
        TK_VALIDATION);
    INFO(message);
    CHECK(contains(message, "lonely"));
  }
  // Nothing of a rejected pipeline was stored.
  tk_error err{};
  std::int64_t id = 0;
  CHECK(try_create_task(env.core, {}, id, nullptr, err) == TK_NOT_FOUND);
}

TEST_CASE_TEMPLATE("a pipeline with an unknown field is rejected" * doctest::timeout(30), Store,
                   TASKER_STORES) {
  store_env<Store> env;
  json p = json::parse(pipeline_json("test", "flow", {{"a"}}));
  SUBCASE("at the top level") {
    p["colour"] = "blue";
  }
  SUBCASE("in a step") {
    p["steps"][0]["colour"] = "blue";
  }
  SUBCASE("in a retry policy") {
    p["steps"][0]["retry"] = retry_policy(2);
    p["steps"][0]["retry"]["colour"] = "blue";
  }
  rejected_message(env.core, p.dump(), TK_VALIDATION);
}

TEST_CASE_TEMPLATE("registering the same pipeline again is a no-op and changing it is a conflict"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  const auto original = pipeline_json("test", "flow", linear_steps());
  register_pipeline(env.core, original);
  register_pipeline(env.core, original);
  rejected_message(env.core, pipeline_json("test", "flow", diamond_steps()), TK_CONFLICT);
  // A new version of it is a new pipeline.
  register_pipeline(env.core, pipeline_json("test", "flow", diamond_steps(), "2"));
}

TEST_CASE_TEMPLATE("creating a task needs a known pipeline and an object context"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow(linear_steps());
  tk_error err{};
  std::int64_t id = 0;
  task_args unknown;
  unknown.name = "nope";
  CHECK(try_create_task(env.core, unknown, id, nullptr, err) == TK_NOT_FOUND);
  CHECK(err.code == TK_NOT_FOUND);
  for (const char* context : {"[1,2]", "42", "\"text\"", "null"}) {
    INFO("context ", std::string(context));
    task_args bad;
    bad.context = context;
    CHECK(try_create_task(env.core, bad, id, nullptr, err) == TK_VALIDATION);
    CHECK(err.code == TK_VALIDATION);
  }
  // A NULL context is {}.
  tk_task_spec spec{};
  spec.namespace_name = "test";
  spec.name = "flow";
  spec.version = "1";
  REQUIRE(tk_create_task(env.core, &spec, &id, nullptr, &err) == TK_OK);
  CHECK(task_status(env.core, id).at("context") == json::object());
  task_args with_context;
  with_context.context = R"({"order":{"id":7,"lines":[1,2]}})";
  const auto id2 = create_task(env.core, with_context);
  CHECK(task_status(env.core, id2).at("context") == json::parse(with_context.context));
}

// ---- the DAG at run time ------------------------------------------------------

TEST_CASE_TEMPLATE("a diamond join is released only after both parents complete"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow(diamond_steps());
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");

  auto a = poll(w, 10);
  REQUIRE(names_of(a) == std::vector<std::string>{"a"});
  CHECK(succeed(w, a[0], R"({"from":"a"})") == TK_OK);

  auto bc = poll(w, 10);
  REQUIRE(names_of(bc) == std::vector<std::string>{"b", "c"});
  CHECK(step_status(task_status(env.core, id), "d").at("state") == "pending");
  const auto& b = bc[0].step_name == "b" ? bc[0] : bc[1];
  const auto& c = bc[0].step_name == "b" ? bc[1] : bc[0];

  CHECK(succeed(w, b, R"({"from":"b"})") == TK_OK);
  CHECK(poll(w, 10).empty());
  auto status = task_status(env.core, id);
  CHECK(step_status(status, "d").at("state") == "pending");
  CHECK(status.at("state") == "running");

  CHECK(succeed(w, c, R"({"from":"c"})") == TK_OK);
  auto d = poll(w, 10);
  REQUIRE(names_of(d) == std::vector<std::string>{"d"});
  CHECK(d[0].dependency_results
        == json::parse(R"({"a":{"from":"a"},"b":{"from":"b"},"c":{"from":"c"}})"));
  CHECK(succeed(w, d[0]) == TK_OK);
  CHECK(task_state(env.core, id) == "complete");
  CHECK(poll(w, 10).empty());
}

TEST_CASE_TEMPLATE("the results of all ancestors reach a grandchild keyed by step name"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}, {"b", {"a"}}, {"c", {"b"}}});
  create_task(env.core);
  worker_handle w(env.core, "w1");

  auto a = poll_one(w);
  CHECK(a.dependency_results == json::object());
  CHECK(succeed(w, a, R"({"x":1,"s":"é"})") == TK_OK);
  auto b = poll_one(w);
  CHECK(b.dependency_results == json::parse(R"({"a":{"x":1,"s":"é"}})"));
  CHECK(succeed(w, b, "[1,2.5,null]") == TK_OK);
  auto c = poll_one(w);
  CHECK(c.step_name == "c");
  CHECK(c.dependency_results == json::parse(R"({"a":{"x":1,"s":"é"},"b":[1,2.5,null]})"));
}

TEST_CASE_TEMPLATE("a null or scalar result is stored and passed on as is" * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}, {"b"}, {"c", {"a", "b"}}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto ab = poll(w, 10);
  REQUIRE(ab.size() == 2);
  const auto& a = ab[0].step_name == "a" ? ab[0] : ab[1];
  const auto& b = ab[0].step_name == "a" ? ab[1] : ab[0];
  CHECK(complete(w, {success_result(a, nullptr), success_result(b, "\"done\"")})
        == std::vector<int>{TK_OK, TK_OK});
  auto c = poll_one(w);
  CHECK(c.dependency_results == json::parse(R"({"a":null,"b":"done"})"));
  auto status = task_status(env.core, id);
  CHECK(step_status(status, "a").at("result").is_null());
  CHECK(step_status(status, "b").at("result") == "done");
}

TEST_CASE_TEMPLATE("results and contexts with quotes, backslashes, braces and unicode survive"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}, {"b", {"a"}}});
  task_args args;
  args.context = R"({"path":"C:\\tmp\\{x}","quote":"say \"hi\"","nl":"a\nb","u":"\u00e9\u4e2d"})";
  const auto id = create_task(env.core, args);
  worker_handle w(env.core, "w1");
  auto a = poll_one(w);
  CHECK(a.context == json::parse(args.context));
  const char* result =
      R"({"s":"back\\slash \"q\" {brace} ,comma NULL","e":"\u00e9","n":[1,{"k":null}]})";
  CHECK(succeed(w, a, result) == TK_OK);
  auto b = poll_one(w);
  CHECK(b.dependency_results == json{{"a", json::parse(result)}});
  CHECK(step_status(task_status(env.core, id), "a").at("result") == json::parse(result));
}

// ---- retries --------------------------------------------------------------------

TEST_CASE_TEMPLATE("a failed step is retried after its backoff and then succeeds"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a", {}, retry_policy(3, "exponential", 1000, 30000)}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");

  auto first = poll_one(w);
  CHECK(first.attempt == 1);
  CHECK(first.max_attempts == 3);
  const auto failed_at = env.clock.now_ms;
  CHECK(fail(w, first, true, 0, "flaky upstream", "retryable_error") == TK_OK);

  auto step = step_status(task_status(env.core, id), "a");
  CHECK(step.at("state") == "waiting_for_retry");
  CHECK(step.at("attempts") == 1);
  CHECK(step.at("next_attempt_at") == failed_at + 1000);
  CHECK(step.at("result").is_null());
  const auto& last_error = step.at("last_error");
  CHECK(last_error.at("message") == "flaky upstream");
  CHECK(last_error.at("type") == "retryable_error");
  CHECK(last_error.at("retryable") == true);
  CHECK(last_error.at("attempt") == 1);
  CHECK(last_error.at("at") == failed_at);
  CHECK(task_state(env.core, id) == "running");

  CHECK(next_due(env.core) == 1000);
  CHECK(poll(w, 10).empty());
  env.clock.advance(999);
  CHECK(next_due(env.core) == 1);
  CHECK(poll(w, 10).empty());
  env.clock.advance(1);
  CHECK(next_due(env.core) == 0);

  auto second = poll_one(w);
  CHECK(second.attempt == 2);
  CHECK(second.fencing_token != first.fencing_token);
  CHECK(step_status(task_status(env.core, id), "a").at("next_attempt_at").is_null());
  CHECK(fail(w, second, true) == TK_OK);
  // The second delay doubles.
  CHECK(step_status(task_status(env.core, id), "a").at("next_attempt_at")
        == env.clock.now_ms + 2000);
  env.clock.advance(1999);
  CHECK(poll(w, 10).empty());
  env.clock.advance(1);

  auto third = poll_one(w);
  CHECK(third.attempt == 3);
  CHECK(succeed(w, third, R"({"ok":true})") == TK_OK);
  auto status = task_status(env.core, id);
  CHECK(status.at("state") == "complete");
  CHECK(status.at("completed_at") == env.clock.now_ms);
  step = step_status(status, "a");
  CHECK(step.at("state") == "complete");
  CHECK(step.at("attempts") == 3);
  CHECK(step.at("result") == json::parse(R"({"ok":true})"));
  CHECK(next_due(env.core) == -1);
}

TEST_CASE_TEMPLATE("backoff delays follow the step's policy" * doctest::timeout(30), Store,
                   TASKER_STORES) {
  store_env<Store> env;
  json retry;
  std::vector<std::int64_t> expected;
  SUBCASE("exponential up to its cap") {
    retry = retry_policy(5, "exponential", 1000, 3000);
    expected = {1000, 2000, 3000, 3000};
  }
  SUBCASE("linear") {
    retry = retry_policy(4, "linear", 700, 30000);
    expected = {700, 1400, 2100};
  }
  SUBCASE("none") {
    retry = retry_policy(3, "none", 1000, 30000);
    expected = {0, 0};
  }
  env.register_flow({{"a", {}, retry}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("failed attempt ", i + 1);
    auto s = poll_one(w);
    CHECK(s.attempt == static_cast<std::int32_t>(i + 1));
    CHECK(fail(w, s, true) == TK_OK);
    auto step = step_status(task_status(env.core, id), "a");
    if (expected[i] == 0 && step.at("state") == "ready") {
      // No delay: the step may skip waiting_for_retry.
      CHECK(step.at("next_attempt_at").is_null());
    } else {
      CHECK(step.at("state") == "waiting_for_retry");
      CHECK(step.at("next_attempt_at") == env.clock.now_ms + expected[i]);
    }
    CHECK(next_due(env.core) == expected[i]);
    env.clock.advance(expected[i]);
  }
}

TEST_CASE_TEMPLATE("a handler's retry_after replaces the backoff exactly" * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a", {}, retry_policy(3, "exponential", 1000, 2000, 0.5)}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto s = poll_one(w);
  CHECK(fail(w, s, true, 5000, "rate limited", "rate_limited") == TK_OK);
  CHECK(step_status(task_status(env.core, id), "a").at("next_attempt_at")
        == env.clock.now_ms + 5000);
  CHECK(next_due(env.core) == 5000);
  env.clock.advance(4999);
  CHECK(poll(w, 10).empty());
  env.clock.advance(1);
  CHECK(poll_one(w).attempt == 2);
}

TEST_CASE_TEMPLATE("a non-retryable failure ends the task in error and nothing more of it runs"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  bool handler_says_retryable = false;
  SUBCASE("the handler says it cannot be retried") {
    env.register_flow({{"x", {}, retry_policy(3)}, {"y", {}, retry_policy(3)}, {"z", {"x"}}});
  }
  SUBCASE("the policy forbids retries") {
    auto never = retry_policy(3, "none", 1000, 30000, 0.0, false);
    env.register_flow({{"x", {}, never}, {"y", {}, never}, {"z", {"x"}}});
    handler_says_retryable = true;
  }
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto s = poll_one(w);
  CHECK(fail(w, s, handler_says_retryable, 0, "bad input", "permanent_error") == TK_OK);

  auto status = task_status(env.core, id);
  CHECK(status.at("state") == "error");
  auto step = step_status(status, s.step_name);
  CHECK(step.at("state") == "error");
  CHECK(step.at("attempts") == 1);
  CHECK(step.at("next_attempt_at").is_null());
  CHECK(step.at("last_error").at("message") == "bad input");
  CHECK(step.at("last_error").at("type") == "permanent_error");
  if (!handler_says_retryable)
    CHECK(step.at("last_error").at("retryable") == false);
  CHECK(step_status(status, "z").at("state") != "running");

  CHECK(poll(w, 10).empty());
  CHECK(next_due(env.core) == -1);
  // Other tasks are unaffected.
  const auto other = create_task(env.core);
  auto next = poll(w, 10);
  REQUIRE(next.size() == 2);
  for (const auto& n : next)
    CHECK(n.task_id == other);
}

TEST_CASE_TEMPLATE("a step that exhausts its attempts ends the task in error"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a", {}, retry_policy(3, "none")}, {"b", {"a"}}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  for (int attempt = 1; attempt <= 3; ++attempt) {
    INFO("attempt ", attempt);
    auto s = poll_one(w);
    CHECK(s.step_name == "a");
    CHECK(s.attempt == attempt);
    CHECK(fail(w, s, true) == TK_OK);
  }
  auto status = task_status(env.core, id);
  CHECK(status.at("state") == "error");
  auto a = step_status(status, "a");
  CHECK(a.at("state") == "error");
  CHECK(a.at("attempts") == 3);
  CHECK(a.at("last_error").at("attempt") == 3);
  CHECK(step_status(status, "b").at("state") != "running");
  CHECK(poll(w, 10).empty());
}

// ---- leases ----------------------------------------------------------------------

TEST_CASE_TEMPLATE("an expired lease lets another worker claim the step and the old token is stale"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a", {}, retry_policy(3)}});
  const auto id = create_task(env.core);
  worker_handle w1(env.core, "w1", 5000);
  worker_handle w2(env.core, "w2", 5000);

  auto first = poll_one(w1);
  CHECK(first.attempt == 1);
  CHECK(first.lease_expires_at_ms == env.clock.now_ms + 5000);
  auto step = step_status(task_status(env.core, id), "a");
  CHECK(step.at("state") == "running");
  CHECK(step.at("claimed_by") == "w1");
  CHECK(step.at("started_at") == env.clock.now_ms);

  env.clock.advance(4999);
  CHECK(next_due(env.core) == 1);
  CHECK(poll(w2, 10).empty());
  env.clock.advance(2);
  CHECK(next_due(env.core) == 0);

  auto second = poll_one(w2);
  CHECK(second.step_id == first.step_id);
  CHECK(second.attempt == 2);
  CHECK(second.fencing_token != first.fencing_token);
  step = step_status(task_status(env.core, id), "a");
  CHECK(step.at("claimed_by") == "w2");
  CHECK(step.at("attempts") == 2);

  CHECK(succeed(w1, first, R"({"by":"w1"})") == TK_STALE);
  CHECK(heartbeat(w1, first.step_id, first.fencing_token) == TK_STALE);
  step = step_status(task_status(env.core, id), "a");
  CHECK(step.at("state") == "running");
  CHECK(step.at("result").is_null());

  CHECK(succeed(w2, second, R"({"by":"w2"})") == TK_OK);
  step = step_status(task_status(env.core, id), "a");
  CHECK(step.at("state") == "complete");
  CHECK(step.at("result") == json::parse(R"({"by":"w2"})"));
  CHECK(task_state(env.core, id) == "complete");
}

TEST_CASE_TEMPLATE("a completion after the lease ran out is accepted while nobody re-claimed"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a", {}, retry_policy(3)}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1", 1000);
  auto s = poll_one(w);
  env.clock.advance(5000);
  CHECK(succeed(w, s) == TK_OK);
  CHECK(task_state(env.core, id) == "complete");
}

TEST_CASE_TEMPLATE("a lease that runs out on the last attempt ends the step in error"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a", {}, retry_policy(1)}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1", 1000);
  auto s = poll_one(w);
  env.clock.advance(1001);
  CHECK(poll(w, 10).empty());
  auto status = task_status(env.core, id);
  CHECK(status.at("state") == "error");
  auto step = step_status(status, "a");
  CHECK(step.at("state") == "error");
  CHECK(step.at("last_error").at("type") == "lease_expired");
  CHECK(succeed(w, s) == TK_STALE);
}

TEST_CASE_TEMPLATE("a heartbeat extends a lease" * doctest::timeout(30), Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}});
  create_task(env.core);
  worker_handle w1(env.core, "w1", 5000);
  worker_handle w2(env.core, "w2");
  const auto claimed_at = env.clock.now_ms;
  auto s = poll_one(w1);

  env.clock.advance(4000);
  CHECK(heartbeat(w1, s.step_id, s.fencing_token) == TK_OK);
  CHECK(heartbeat(w1, s.step_id, s.fencing_token + 1000) == TK_STALE);
  CHECK(heartbeat(w1, s.step_id + 100000, s.fencing_token) == TK_NOT_FOUND);

  env.clock.now_ms = claimed_at + 6000;  // past the original lease
  CHECK(poll(w2, 10).empty());
  CHECK(next_due(env.core) == 3000);

  env.clock.now_ms = claimed_at + 9001;  // past the extended one
  auto again = poll_one(w2);
  CHECK(again.attempt == 2);
}

// ---- completions ---------------------------------------------------------------------

TEST_CASE_TEMPLATE("a duplicate completion is reported and changes nothing" * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a", {}, retry_policy(3, "exponential", 1000)}, {"b", {"a"}}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");

  SUBCASE("of a success") {
    auto a = poll_one(w);
    CHECK(succeed(w, a, R"({"v":1})") == TK_OK);
    const auto before = task_status(env.core, id);
    env.clock.advance(10);
    CHECK(succeed(w, a, R"({"v":2})") == TK_DUPLICATE);
    CHECK(fail(w, a, true) == TK_DUPLICATE);
    CHECK(task_status(env.core, id) == before);
    auto b = poll(w, 10);
    REQUIRE(b.size() == 1);
    CHECK(b[0].dependency_results == json::parse(R"({"a":{"v":1}})"));
  }
  SUBCASE("of a failure") {
    auto a = poll_one(w);
    CHECK(fail(w, a, true) == TK_OK);
    const auto before = task_status(env.core, id);
    env.clock.advance(10);
    CHECK(fail(w, a, true) == TK_DUPLICATE);
    CHECK(task_status(env.core, id) == before);
  }
}

TEST_CASE_TEMPLATE("a completion of an unknown step is not found and the rest of the batch applies"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto a = poll_one(w);
  auto ghost = a;
  ghost.step_id += 100000;
  CHECK(complete(w, {success_result(ghost, "{}"), success_result(a, "1")})
        == std::vector<int>{TK_NOT_FOUND, TK_OK});
  CHECK(task_state(env.core, id) == "complete");
}

// ---- tasks ------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("an idempotency key returns the task it created" * doctest::timeout(30), Store,
                   TASKER_STORES) {
  store_env<Store> env;
  env.register_flow(linear_steps());
  env.register_flow(linear_steps(), "elsewhere", "other");
  task_args args;
  args.idempotency_key = "order-17";
  tk_error err{};
  std::int64_t first = 0;
  std::int64_t second = 0;
  int created = -1;
  REQUIRE(try_create_task(env.core, args, first, &created, err) == TK_OK);
  CHECK(created == 1);
  REQUIRE(try_create_task(env.core, args, second, &created, err) == TK_OK);
  CHECK(created == 0);
  CHECK(second == first);

  task_args other;
  other.ns = "elsewhere";
  other.name = "other";
  other.idempotency_key = "order-17";
  std::int64_t third = 0;
  CHECK(try_create_task(env.core, other, third, &created, err) == TK_CONFLICT);
  CHECK(err.code == TK_CONFLICT);

  CHECK(task_status(env.core, first).at("idempotency_key") == "order-17");
  CHECK(list_tasks(env.core, nullptr).at("tasks").size() == 1);
  const auto plain = create_task(env.core);
  CHECK(plain != first);
  CHECK(task_status(env.core, plain).at("idempotency_key").is_null());
}

TEST_CASE_TEMPLATE("a cancelled task hands out nothing and rejects late completions"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}, {"b"}, {"c", {"a", "b"}}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto a = poll_one(w);  // the other root stays ready

  tk_error err{};
  REQUIRE(tk_cancel_task(env.core, id, &err) == TK_OK);
  auto status = task_status(env.core, id);
  CHECK(status.at("state") == "cancelled");
  for (const auto& step : status.at("steps")) {
    INFO(step.dump());
    CHECK(step.at("state") == "cancelled");
  }
  CHECK(poll(w, 10).empty());
  CHECK(succeed(w, a) == TK_STALE);
  CHECK(heartbeat(w, a.step_id, a.fencing_token) == TK_STALE);
  CHECK(task_state(env.core, id) == "cancelled");

  CHECK(tk_cancel_task(env.core, id, &err) == TK_CONFLICT);
  CHECK(err.code == TK_CONFLICT);
}

TEST_CASE_TEMPLATE("cancelling a finished task is a conflict" * doctest::timeout(30), Store,
                   TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  CHECK(succeed(w, poll_one(w)) == TK_OK);
  tk_error err{};
  CHECK(tk_cancel_task(env.core, id, &err) == TK_CONFLICT);
  CHECK(task_state(env.core, id) == "complete");
}

// ---- retrying a failed task --------------------------------------------------------------

TEST_CASE_TEMPLATE("a retried task runs its failed step again and completes with earlier results"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}, {"b", {"a"}, retry_policy(2, "none")}, {"c", {"b"}}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  CHECK(succeed(w, poll_one(w), R"({"from":"a"})") == TK_OK);
  claimed_step last_b;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    last_b = poll_one(w);
    CHECK(last_b.step_name == "b");
    CHECK(last_b.attempt == attempt);
    CHECK(fail(w, last_b, true, 0, "upstream down", "retryable_error") == TK_OK);
  }
  auto status = task_status(env.core, id);
  REQUIRE(status.at("state") == "error");
  CHECK(step_status(status, "b").at("attempts") == 2);
  CHECK(poll(w, 10).empty());

  wakeup_counter counter;
  finished_log log;
  tk_error err{};
  REQUIRE(tk_set_wakeup(env.core, &wakeup_counter::on_wakeup, &counter, &err) == TK_OK);
  REQUIRE(tk_set_task_listener(env.core, &finished_log::on_finished, &log, &err) == TK_OK);
  env.clock.advance(100);
  REQUIRE(tk_retry_task(env.core, id, &err) == TK_OK);
  CHECK(err.code == TK_OK);
  CHECK(counter.calls >= 1);
  CHECK(log.seen.empty());

  status = task_status(env.core, id);
  CHECK(status.at("state") == "running");
  CHECK(status.at("completed_at").is_null());
  CHECK(status.at("updated_at") == env.clock.now_ms);
  auto a = step_status(status, "a");
  CHECK(a.at("state") == "complete");
  CHECK(a.at("attempts") == 1);
  CHECK(a.at("result") == json{{"from", "a"}});
  auto b = step_status(status, "b");
  CHECK(b.at("state") == "ready");
  CHECK(b.at("attempts") == 0);  // a fresh budget
  CHECK(b.at("finished_at").is_null());
  CHECK(b.at("last_error").at("message") == "upstream down");  // kept until it runs
  CHECK(step_status(status, "c").at("state") == "pending");
  CHECK(next_due(env.core) == 0);

  auto again = poll_one(w);
  CHECK(again.step_name == "b");
  CHECK(again.attempt == 1);
  CHECK(again.max_attempts == 2);
  CHECK(again.fencing_token != last_b.fencing_token);
  CHECK(again.dependency_results == json::parse(R"({"a":{"from":"a"}})"));
  CHECK(succeed(w, last_b) == TK_STALE);  // the failed attempt's claim is over
  CHECK(succeed(w, again, R"({"from":"b"})") == TK_OK);
  auto c = poll_one(w);
  CHECK(c.step_name == "c");
  CHECK(c.dependency_results == json::parse(R"({"a":{"from":"a"},"b":{"from":"b"}})"));
  CHECK(succeed(w, c) == TK_OK);

  status = task_status(env.core, id);
  CHECK(status.at("state") == "complete");
  CHECK(status.at("completed_at") == env.clock.now_ms);
  CHECK(step_status(status, "a").at("result") == json{{"from", "a"}});
  CHECK(step_status(status, "b").at("attempts") == 1);
  REQUIRE(log.seen.size() == 1);
  CHECK(log.seen[0] == std::make_pair(id, std::string("complete")));
}

TEST_CASE_TEMPLATE("retrying a task that has not failed is a conflict and an unknown one not found"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}, {"b", {"a"}}});
  worker_handle w(env.core, "w1");
  tk_error err{};
  std::string expected;
  std::int64_t id = 0;
  SUBCASE("pending") {
    id = create_task(env.core);
    expected = "pending";
  }
  SUBCASE("running") {
    id = create_task(env.core);
    poll_one(w);
    expected = "running";
  }
  SUBCASE("complete") {
    id = create_task(env.core);
    CHECK(succeed(w, poll_one(w)) == TK_OK);
    CHECK(succeed(w, poll_one(w)) == TK_OK);
    expected = "complete";
  }
  SUBCASE("cancelled") {
    id = create_task(env.core);
    REQUIRE(tk_cancel_task(env.core, id, &err) == TK_OK);
    expected = "cancelled";
  }
  const auto before = task_status(env.core, id);
  REQUIRE(before.at("state") == expected);
  CHECK(tk_retry_task(env.core, id, &err) == TK_CONFLICT);
  CHECK(err.code == TK_CONFLICT);
  INFO(err.message);
  CHECK(contains(err.message, expected));
  CHECK(task_status(env.core, id) == before);

  CHECK(tk_retry_task(env.core, id + 1000, &err) == TK_NOT_FOUND);
  CHECK(err.code == TK_NOT_FOUND);
  CHECK(tk_retry_task(nullptr, id, &err) == TK_INVALID_ARGUMENT);
}

TEST_CASE_TEMPLATE("after a retry a diamond join runs once both branches are complete"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow(diamond_steps(retry_policy(1)));
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  CHECK(succeed(w, poll_one(w), R"({"from":"a"})") == TK_OK);
  auto bc = poll(w, 10);
  REQUIRE(names_of(bc) == std::vector<std::string>{"b", "c"});
  const auto b = bc[0].step_name == "b" ? bc[0] : bc[1];
  const auto c = bc[0].step_name == "b" ? bc[1] : bc[0];
  CHECK(fail(w, b, false, 0, "bad branch", "permanent_error") == TK_OK);
  REQUIRE(task_state(env.core, id) == "error");
  tk_error err{};

  SUBCASE("the other branch completed before the retry") {
    CHECK(succeed(w, c, R"({"from":"c"})") == TK_OK);  // recorded, releases nothing
    CHECK(task_state(env.core, id) == "error");
    CHECK(poll(w, 10).empty());
    REQUIRE(tk_retry_task(env.core, id, &err) == TK_OK);
    auto status = task_status(env.core, id);
    CHECK(step_status(status, "b").at("state") == "ready");
    CHECK(step_status(status, "c").at("state") == "complete");
    CHECK(step_status(status, "d").at("state") == "pending");
    auto retried = poll(w, 10);
    REQUIRE(names_of(retried) == std::vector<std::string>{"b"});
    CHECK(step_status(task_status(env.core, id), "d").at("state") == "pending");
    CHECK(succeed(w, retried[0], R"({"from":"b"})") == TK_OK);
  }
  SUBCASE("the other branch was still running at the retry") {
    REQUIRE(tk_retry_task(env.core, id, &err) == TK_OK);
    auto status = task_status(env.core, id);
    CHECK(step_status(status, "c").at("state") == "running");
    CHECK(step_status(status, "d").at("state") == "pending");
    auto retried = poll(w, 10);
    REQUIRE(names_of(retried) == std::vector<std::string>{"b"});
    CHECK(succeed(w, retried[0], R"({"from":"b"})") == TK_OK);
    CHECK(poll(w, 10).empty());  // d still waits for c
    CHECK(step_status(task_status(env.core, id), "d").at("state") == "pending");
    CHECK(succeed(w, c, R"({"from":"c"})") == TK_OK);
  }
  auto d = poll(w, 10);
  REQUIRE(names_of(d) == std::vector<std::string>{"d"});
  CHECK(d[0].dependency_results
        == json::parse(R"({"a":{"from":"a"},"b":{"from":"b"},"c":{"from":"c"}})"));
  CHECK(succeed(w, d[0]) == TK_OK);
  CHECK(poll(w, 10).empty());
  auto status = task_status(env.core, id);
  CHECK(status.at("state") == "complete");
  for (const auto& step : status.at("steps")) {
    INFO(step.dump());
    CHECK(step.at("state") == "complete");
    CHECK(step.at("attempts") == 1);
  }
}

TEST_CASE_TEMPLATE("a step the failure parked before it started runs after a retry"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a", {}, retry_policy(1)}, {"b"}, {"c", {"b"}}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto a = poll_one(w);  // b stays ready, then is parked
  REQUIRE(a.step_name == "a");
  CHECK(fail(w, a, false) == TK_OK);
  auto status = task_status(env.core, id);
  REQUIRE(status.at("state") == "error");
  CHECK(step_status(status, "b").at("state") == "pending");

  tk_error err{};
  REQUIRE(tk_retry_task(env.core, id, &err) == TK_OK);
  status = task_status(env.core, id);
  CHECK(step_status(status, "a").at("state") == "ready");
  CHECK(step_status(status, "b").at("state") == "ready");
  CHECK(step_status(status, "c").at("state") == "pending");
  auto ab = poll(w, 10);
  REQUIRE(names_of(ab) == std::vector<std::string>{"a", "b"});
  for (const auto& s : ab) {
    CHECK(s.attempt == 1);
    CHECK(succeed(w, s) == TK_OK);
  }
  CHECK(succeed(w, poll_one(w)) == TK_OK);
  CHECK(task_state(env.core, id) == "complete");
}

TEST_CASE_TEMPLATE("steps of higher priority tasks are handed out first then older ones"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}});
  auto create_at = [&](std::int32_t priority) {
    task_args args;
    args.priority = priority;
    env.clock.advance(10);
    return create_task(env.core, args);
  };
  const auto low_old = create_at(0);
  const auto high_old = create_at(5);
  const auto high_new = create_at(5);
  const auto low_new = create_at(0);
  const auto negative = create_at(-3);
  CHECK(task_status(env.core, high_old).at("priority") == 5);
  env.clock.advance(10);

  worker_handle w(env.core, "w1");
  std::vector<std::int64_t> order;
  for (int i = 0; i < 5; ++i)
    order.push_back(poll_one(w).task_id);
  CHECK(order == std::vector<std::int64_t>{high_old, high_new, low_old, low_new, negative});
  CHECK(poll(w, 10).empty());
}

TEST_CASE_TEMPLATE("tasks are listed by state and namespace one page at a time"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}, {"b", {"a"}}}, "alpha", "flow");
  env.register_flow({{"a"}}, "beta", "flow");
  std::vector<std::int64_t> alpha;
  std::vector<std::int64_t> beta;
  task_args in_alpha;
  in_alpha.ns = "alpha";
  task_args in_beta;
  in_beta.ns = "beta";
  for (int i = 0; i < 5; ++i) {
    alpha.push_back(create_task(env.core, in_alpha));
    if (i < 3)
      beta.push_back(create_task(env.core, in_beta));
  }
  worker_handle w(env.core, "w1", 0, {"alpha"});
  auto first = poll(w, 1);
  REQUIRE(first.size() == 1);
  CHECK(first[0].task_id == alpha[0]);
  CHECK(first[0].ns == "alpha");

  auto ids_of = [](const json& list) {
    std::vector<std::int64_t> ids;
    for (const auto& t : list.at("tasks"))
      ids.push_back(t.at("id").get<std::int64_t>());
    return ids;
  };

  auto all = list_tasks(env.core, nullptr);
  auto ids = ids_of(all);
  CHECK(ids.size() == 8);
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  CHECK(all.at("next").is_null());
  const auto& entry = all.at("tasks").at(0);
  CHECK(entry.at("id") == alpha[0]);
  CHECK(entry.at("namespace") == "alpha");
  CHECK(entry.at("name") == "flow");
  CHECK(entry.at("version") == "1");
  CHECK(entry.at("state") == "running");
  CHECK(entry.at("priority") == 0);
  CHECK(entry.at("created_at") == env.clock.now_ms);
  CHECK(entry.at("updated_at") == env.clock.now_ms);

  CHECK(ids_of(list_tasks(env.core, R"({"namespace":"beta"})")) == beta);
  CHECK(ids_of(list_tasks(env.core, R"({"state":"running"})"))
        == std::vector<std::int64_t>{alpha[0]});
  CHECK(ids_of(list_tasks(env.core, R"({"state":"pending","namespace":"alpha"})"))
        == std::vector<std::int64_t>(alpha.begin() + 1, alpha.end()));
  CHECK(ids_of(list_tasks(env.core, R"({"state":"complete"})")).empty());

  // Paging through alpha two at a time.
  std::vector<std::int64_t> paged;
  json after = nullptr;
  int pages = 0;
  while (pages < 10) {
    json filter{{"namespace", "alpha"}, {"limit", 2}};
    if (!after.is_null())
      filter["after"] = after;
    auto page = list_tasks(env.core, filter.dump().c_str());
    ++pages;
    auto page_ids = ids_of(page);
    CHECK(page_ids.size() <= 2);
    paged.insert(paged.end(), page_ids.begin(), page_ids.end());
    after = page.at("next");
    if (after.is_null())
      break;
    CHECK(after == page_ids.back());
  }
  CHECK(pages == 3);
  CHECK(paged == alpha);

  tk_error err{};
  char* text = nullptr;
  CHECK(tk_list_tasks(env.core, R"({"limit":0})", &text, &err) != TK_OK);
  CHECK(tk_list_tasks(env.core, R"({"limit":1001})", &text, &err) != TK_OK);
  CHECK(tk_list_tasks(env.core, R"({"state":"sleeping"})", &text, &err) != TK_OK);
  CHECK(text == nullptr);
}

// ---- waking pollers ---------------------------------------------------------------------

TEST_CASE_TEMPLATE("the wake-up callback fires on task creation and when a child is released"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}, {"b", {"a"}}});
  wakeup_counter counter;
  tk_error err{};
  REQUIRE(tk_set_wakeup(env.core, &wakeup_counter::on_wakeup, &counter, &err) == TK_OK);

  const auto id = create_task(env.core);
  CHECK(counter.calls >= 1);

  worker_handle w(env.core, "w1");
  auto a = poll_one(w);
  const int before_release = counter.calls;
  CHECK(succeed(w, a) == TK_OK);
  CHECK(counter.calls > before_release);

  REQUIRE(tk_set_wakeup(env.core, nullptr, nullptr, &err) == TK_OK);
  const int after_removal = counter.calls;
  create_task(env.core);
  CHECK(counter.calls == after_removal);
  CHECK(task_state(env.core, id) == "running");
}

TEST_CASE_TEMPLATE("one call completes steps and claims the children they released"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}, {"b", {"a"}}, {"c", {"a"}}});
  const auto task = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto a = poll_one(w);
  auto done = success_result(a, R"({"v":1})");
  std::vector<int> outcomes;
  auto children = complete_and_poll(w, {done}, outcomes);
  CHECK(outcomes == std::vector<int>{TK_OK});
  REQUIRE(children.size() == 2);  // b and c, released by a's completion in the same call
  CHECK(names_of(children) == std::vector<std::string>{"b", "c"});
  CHECK(children[0].dependency_results.at("a") == json{{"v", 1}});

  // Completing the last two with nothing left to claim; a duplicate is still a no-op.
  std::vector<tk_step_result> last{success_result(children[0], "{}"),
                                   success_result(children[1], "{}"), done};
  CHECK(complete_and_poll(w, last, outcomes).empty());
  CHECK(outcomes == std::vector<int>{TK_OK, TK_OK, TK_DUPLICATE});
  CHECK(task_state(env.core, task) == "complete");
}

TEST_CASE_TEMPLATE("tasks created in one batch are created all or none" * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}});
  auto spec = [](const char* name, const char* key) {
    tk_task_spec s{};
    s.namespace_name = "test";
    s.name = name;
    s.version = "1";
    s.context_json = "{}";
    s.idempotency_key = key;
    return s;
  };
  tk_error err{};
  std::vector<tk_task_spec> bad{spec("flow", nullptr), spec("flow", nullptr),
                                spec("missing", nullptr)};
  std::vector<std::int64_t> ids(3, -1);
  std::vector<int> created(3, -1);
  CHECK(tk_create_tasks(env.core, bad.data(), bad.size(), ids.data(), created.data(), &err)
        == TK_NOT_FOUND);
  CHECK(contains(err.message, "task 3 of 3"));
  CHECK(list_tasks(env.core, nullptr).at("tasks").empty());  // none created

  std::vector<tk_task_spec> good{spec("flow", nullptr), spec("flow", "k1"), spec("flow", "k1")};
  REQUIRE(tk_create_tasks(env.core, good.data(), good.size(), ids.data(), created.data(), &err)
          == TK_OK);
  CHECK(ids[0] < ids[1]);
  CHECK(ids[2] == ids[1]);  // the key named the task made just before
  CHECK(created == std::vector<int>{1, 1, 0});
  CHECK(list_tasks(env.core, nullptr).at("tasks").size() == 2);
  worker_handle w(env.core, "w1");
  CHECK(poll(w, 10).size() == 2);
}

TEST_CASE_TEMPLATE("the task listener hears once of every task that ends and how it ended"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a", {}, retry_policy(2)}, {"b", {"a"}, retry_policy(2)}});
  finished_log log;
  tk_error err{};
  REQUIRE(tk_set_task_listener(env.core, &finished_log::on_finished, &log, &err) == TK_OK);
  worker_handle w(env.core, "w1", 1000);

  const auto done = create_task(env.core);
  CHECK(succeed(w, poll_one(w)) == TK_OK);
  CHECK(log.seen.empty());  // one step left
  CHECK(succeed(w, poll_one(w)) == TK_OK);
  REQUIRE(log.seen.size() == 1);
  CHECK(log.seen[0] == std::make_pair(done, std::string("complete")));
  const char* state = nullptr;
  REQUIRE(tk_task_state(env.core, done, &state, &err) == TK_OK);
  CHECK(std::string(state) == "complete");
  CHECK(tk_task_state(env.core, 999999, &state, &err) == TK_NOT_FOUND);

  const auto failed = create_task(env.core);
  CHECK(fail(w, poll_one(w), false) == TK_OK);
  REQUIRE(log.seen.size() == 2);
  CHECK(log.seen[1] == std::make_pair(failed, std::string("error")));

  // A lease that runs out on the last attempt ends the task too (in a poll).
  const auto lapsed = create_task(env.core);
  auto first = poll_one(w);
  CHECK(fail(w, first, true) == TK_OK);  // attempt 1 of 2, retried at once
  poll_one(w);                           // attempt 2, then the worker vanishes
  env.clock.advance(1001);
  CHECK(poll(w, 10).empty());
  REQUIRE(log.seen.size() == 3);
  CHECK(log.seen[2] == std::make_pair(lapsed, std::string("error")));

  const auto cancelled = create_task(env.core);
  REQUIRE(tk_cancel_task(env.core, cancelled, &err) == TK_OK);
  REQUIRE(log.seen.size() == 4);
  CHECK(log.seen[3] == std::make_pair(cancelled, std::string("cancelled")));

  // Nothing is reported twice: cancelling again is refused and silent.
  CHECK(tk_cancel_task(env.core, cancelled, &err) == TK_CONFLICT);
  CHECK(log.seen.size() == 4);
}

TEST_CASE_TEMPLATE("next due is zero for ready work and minus one when nothing is scheduled"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  CHECK(next_due(env.core) == -1);
  env.register_flow({{"a"}});
  create_task(env.core);
  CHECK(next_due(env.core) == 0);
  CHECK(next_due(env.core, {"test"}) == 0);
  CHECK(next_due(env.core, {"other"}) == -1);
  worker_handle w(env.core, "w1", 7000);
  auto a = poll_one(w);
  CHECK(next_due(env.core) == 7000);
  CHECK(next_due(env.core, {"test"}) == 7000);
  CHECK(succeed(w, a) == TK_OK);
  CHECK(next_due(env.core) == -1);
}

TEST_CASE_TEMPLATE("next due ignores the leases and retries of other namespaces"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a", {}, retry_policy(3, "linear", 4000)}, {"b"}});
  create_task(env.core);
  worker_handle w(env.core, "w1", 7000);
  auto claimed = poll(w, 2);
  REQUIRE(claimed.size() == 2);
  CHECK(next_due(env.core, {"other"}) == -1);  // a lease of "test" runs
  const auto& a = claimed[0].step_name == "a" ? claimed[0] : claimed[1];
  CHECK(fail(w, a, true) == TK_OK);
  CHECK(next_due(env.core, {"test"}) == 4000);
  CHECK(next_due(env.core, {"other"}) == -1);  // a retry of "test" waits
}

// ---- end to end ---------------------------------------------------------------------------

TEST_CASE_TEMPLATE("a linear four step workflow squares its input four times"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  // square_1 -> square_2 -> square_3 -> square_4; each squares its source.
  std::vector<step_spec> steps;
  for (int i = 1; i <= 4; ++i) {
    step_spec s{"square_" + std::to_string(i)};
    s.handler = "square";
    if (i > 1) {
      s.dependencies = {"square_" + std::to_string(i - 1)};
      s.config = json{{"source", s.dependencies.front()}};
    }
    steps.push_back(s);
  }
  env.register_flow(steps, "math", "squares");
  task_args args;
  args.ns = "math";
  args.name = "squares";
  args.context = R"({"even_number":6})";
  const auto id = create_task(env.core, args);
  worker_handle w(env.core, "calculator", 0, {"math"});

  std::vector<std::string> order;
  for (int round = 0; round < 10 && task_state(env.core, id) != "complete"; ++round) {
    env.clock.advance(5);
    auto claimed = poll(w, 8);
    std::vector<std::string> payloads;
    payloads.reserve(claimed.size());
    for (const auto& s : claimed) {
      CHECK(s.handler == "square");
      CHECK(s.attempt == 1);
      CHECK(s.context == json::parse(args.context));
      std::int64_t input = 0;
      if (s.config.contains("source"))
        input = s.dependency_results.at(s.config.at("source").get<std::string>())
                    .at("value")
                    .get<std::int64_t>();
      else
        input = s.context.at("even_number").get<std::int64_t>();
      payloads.push_back(json{{"value", input * input}}.dump());
      order.push_back(s.step_name);
    }
    std::vector<tk_step_result> results;
    for (std::size_t i = 0; i < claimed.size(); ++i)
      results.push_back(success_result(claimed[i], payloads[i].c_str()));
    for (int outcome : complete(w, results))
      CHECK(outcome == TK_OK);
  }
  CHECK(order == std::vector<std::string>{"square_1", "square_2", "square_3", "square_4"});

  auto status = task_status(env.core, id);
  CHECK(status.at("id") == id);
  CHECK(status.at("namespace") == "math");
  CHECK(status.at("name") == "squares");
  CHECK(status.at("version") == "1");
  CHECK(status.at("state") == "complete");
  CHECK(status.at("priority") == 0);
  CHECK(status.at("created_at") == clock_start_ms);
  CHECK(status.at("completed_at") == env.clock.now_ms);
  CHECK(status.at("updated_at") == env.clock.now_ms);
  const std::vector<std::int64_t> expected{36, 1296, 1679616, 2821109907456};
  REQUIRE(status.at("steps").size() == 4);
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& step = status.at("steps").at(i);
    INFO(step.dump());
    CHECK(step.at("name") == "square_" + std::to_string(i + 1));  // declaration order
    CHECK(step.at("handler") == "square");
    CHECK(step.at("state") == "complete");
    CHECK(step.at("attempts") == 1);
    CHECK(step.at("max_attempts") == 3);
    CHECK(step.at("result").at("value") == expected[i]);
    CHECK(step.at("last_error").is_null());
    CHECK(step.at("claimed_by") == "calculator");
    CHECK(step.at("next_attempt_at").is_null());
    CHECK(step.at("created_at") == clock_start_ms);
    const std::int64_t started = step.at("started_at");
    CHECK(started == clock_start_ms + 5 * static_cast<std::int64_t>(i + 1));
    CHECK(step.at("finished_at") == started);
  }
}

// ---- durable waits ----------------------------------------------------------------

TEST_CASE_TEMPLATE("a waiting step holds no lease and resumes with its signal as the same attempt"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"ask", {}, retry_policy(3)}, {"after", {"ask"}}});
  wakeup_counter wakes;
  tk_error err{};
  REQUIRE(tk_set_wakeup(env.core, &wakeup_counter::on_wakeup, &wakes, &err) == TK_OK);
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1", 5000);

  auto first = poll_one(w);
  CHECK(first.attempt == 1);
  CHECK(first.wait_token.size() >= 36);
  CHECK_FALSE(first.signalled);
  const auto waited_at = env.clock.now_ms;
  CHECK(wait_for(w, first, "approval", 60000) == TK_OK);

  auto step = step_status(task_status(env.core, id), "ask");
  CHECK(step.at("state") == "waiting");
  CHECK(step.at("attempts") == 1);
  CHECK(step.at("lease_expires_at").is_null());
  CHECK(step.at("wait").at("signal") == "approval");
  CHECK(step.at("wait").at("token") == first.wait_token);
  CHECK(step.at("wait").at("timeout_at") == waited_at + 60000);
  CHECK(step.at("signal").is_null());
  CHECK(task_state(env.core, id) == "running");
  // No lease: nothing lapses, nothing is claimable, the timer is the timeout.
  env.clock.advance(10000);
  CHECK(poll(w, 10).empty());
  CHECK(next_due(env.core) == 50000);
  CHECK(heartbeat(w, first.step_id, first.fencing_token) == TK_STALE);

  const int wakes_before = wakes.calls;
  REQUIRE(signal(env.core, first.wait_token, R"({"approved":true,"by":"ana"})", err) == TK_OK);
  CHECK(wakes.calls == wakes_before + 1);
  step = step_status(task_status(env.core, id), "ask");
  CHECK(step.at("state") == "ready");
  CHECK(step.at("wait").is_null());
  CHECK(next_due(env.core) == 0);

  auto resumed = poll_one(w);
  CHECK(resumed.step_id == first.step_id);
  CHECK(resumed.attempt == 1);  // the same attempt goes on
  CHECK(resumed.fencing_token != first.fencing_token);
  CHECK(resumed.wait_token != first.wait_token);
  REQUIRE(resumed.signalled);
  CHECK(resumed.signal_name == "approval");
  CHECK(resumed.signal_payload == json::parse(R"({"approved":true,"by":"ana"})"));
  // The old claim is over: its completion is stale.
  CHECK(succeed(w, first, "{}") == TK_STALE);
  CHECK(succeed(w, resumed, R"({"approved":true})") == TK_OK);

  auto after = poll_one(w);
  CHECK(after.step_name == "after");
  CHECK(after.dependency_results.at("ask") == json::parse(R"({"approved":true})"));
  CHECK_FALSE(after.signalled);
  CHECK(succeed(w, after) == TK_OK);
  auto status = task_status(env.core, id);
  CHECK(status.at("state") == "complete");
  step = step_status(status, "ask");
  CHECK(step.at("attempts") == 1);
  CHECK(step.at("signal").at("name") == "approval");
  CHECK(step.at("signal").at("payload") == json::parse(R"({"approved":true,"by":"ana"})"));
}

TEST_CASE_TEMPLATE("a second signal, a forged token and a malformed payload are rejected"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"ask"}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto first = poll_one(w);
  REQUIRE(wait_for(w, first, "approval", 60000) == TK_OK);
  tk_error err{};

  auto forged = first.wait_token;
  forged.back() = forged.back() == '0' ? '1' : '0';
  CHECK(signal(env.core, forged, nullptr, err) == TK_NOT_FOUND);
  CHECK(err.code == TK_NOT_FOUND);
  CHECK(signal(env.core, "12-1-00000000000000000000000000000000", nullptr, err) == TK_NOT_FOUND);
  CHECK(signal(env.core, "not a token", nullptr, err) == TK_NOT_FOUND);
  CHECK(signal(env.core, "", nullptr, err) == TK_NOT_FOUND);
  CHECK(tk_signal(env.core, nullptr, nullptr, &err) == TK_INVALID_ARGUMENT);
  CHECK(signal(env.core, first.wait_token, "{\"approved\":", err) == TK_MALFORMED_JSON);
  CHECK(step_status(task_status(env.core, id), "ask").at("state") == "waiting");

  REQUIRE(signal(env.core, first.wait_token, nullptr, err) == TK_OK);
  CHECK(signal(env.core, first.wait_token, "true", err) == TK_CONFLICT);
  CHECK(err.code == TK_CONFLICT);
  CHECK(contains(err.message, "signalled already"));

  auto resumed = poll_one(w);
  REQUIRE(resumed.signalled);
  CHECK(resumed.signal_payload.is_null());
  CHECK(succeed(w, resumed) == TK_OK);
  CHECK(signal(env.core, first.wait_token, "true", err) == TK_CONFLICT);
  CHECK(task_state(env.core, id) == "complete");
}

TEST_CASE_TEMPLATE("a wait that times out fails as a retryable timeout under the retry policy"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"ask", {}, retry_policy(2)}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  tk_error err{};

  auto first = poll_one(w);
  REQUIRE(wait_for(w, first, "approval", 1000) == TK_OK);
  env.clock.advance(999);
  CHECK(poll(w, 10).empty());
  CHECK(next_due(env.core) == 1);
  env.clock.advance(1);
  // The timeout fails the attempt; the policy retries at once ("none").
  auto second = poll_one(w);
  CHECK(second.step_id == first.step_id);
  CHECK(second.attempt == 2);
  CHECK(second.wait_token != first.wait_token);
  CHECK_FALSE(second.signalled);
  auto step = step_status(task_status(env.core, id), "ask");
  CHECK(step.at("last_error").at("type") == "timeout");
  CHECK(step.at("last_error").at("retryable") == true);
  CHECK(contains(step.at("last_error").at("message").dump(), "approval"));
  // The first wait's token is refused: its wait is over.
  CHECK(signal(env.core, first.wait_token, nullptr, err) == TK_CONFLICT);
  CHECK(contains(err.message, "over"));

  REQUIRE(wait_for(w, second, "approval", 500) == TK_OK);
  env.clock.advance(500);
  CHECK(poll(w, 10).empty());  // the last attempt timed out: the task failed
  auto status = task_status(env.core, id);
  CHECK(status.at("state") == "error");
  step = step_status(status, "ask");
  CHECK(step.at("state") == "error");
  CHECK(step.at("last_error").at("type") == "timeout");
  CHECK(signal(env.core, second.wait_token, nullptr, err) == TK_CONFLICT);
  CHECK(next_due(env.core) == -1);
}

TEST_CASE_TEMPLATE("a signal that comes while the step still runs resumes it as soon as it waits"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"hook"}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  tk_error err{};
  auto first = poll_one(w);
  // The handler handed its token out and the answer came back first.
  REQUIRE(signal(env.core, first.wait_token, R"({"paid":42})", err) == TK_OK);
  CHECK(step_status(task_status(env.core, id), "hook").at("state") == "running");
  CHECK(signal(env.core, first.wait_token, R"({"paid":43})", err) == TK_CONFLICT);

  REQUIRE(wait_for(w, first, "payment", 60000) == TK_OK);
  CHECK(step_status(task_status(env.core, id), "hook").at("state") == "ready");
  auto resumed = poll_one(w);
  CHECK(resumed.attempt == 1);
  REQUIRE(resumed.signalled);
  CHECK(resumed.signal_name == "payment");
  CHECK(resumed.signal_payload == json::parse(R"({"paid":42})"));
  CHECK(succeed(w, resumed) == TK_OK);
  CHECK(task_state(env.core, id) == "complete");
}

TEST_CASE_TEMPLATE("a wait needs a signal name and a positive timeout" * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"ask"}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto s = poll_one(w);
  CHECK(wait_for(w, s, "approval", 0) == TK_INVALID_ARGUMENT);
  CHECK(wait_for(w, s, "approval", -5) == TK_INVALID_ARGUMENT);
  CHECK(wait_for(w, s, "", 1000) == TK_INVALID_ARGUMENT);
  CHECK(complete(w, {wait_result(s, nullptr, 1000)}).front() == TK_INVALID_ARGUMENT);
  const std::string long_name(256, 'x');
  CHECK(wait_for(w, s, long_name.c_str(), 1000) == TK_INVALID_ARGUMENT);
  CHECK(step_status(task_status(env.core, id), "ask").at("state") == "running");
  CHECK(wait_for(w, s, "approval", 1000) == TK_OK);
  CHECK(wait_for(w, s, "approval", 1000) == TK_DUPLICATE);
}

TEST_CASE_TEMPLATE("cancelling or failing a task abandons its waits and refuses their tokens"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  tk_error err{};
  SUBCASE("cancelled") {
    env.register_flow({{"ask"}});
    const auto id = create_task(env.core);
    worker_handle w(env.core, "w1");
    auto s = poll_one(w);
    REQUIRE(wait_for(w, s, "approval", 60000) == TK_OK);
    REQUIRE(tk_cancel_task(env.core, id, &err) == TK_OK);
    CHECK(step_status(task_status(env.core, id), "ask").at("state") == "cancelled");
    CHECK(signal(env.core, s.wait_token, nullptr, err) == TK_CONFLICT);
    CHECK(next_due(env.core) == -1);
  }
  SUBCASE("failed, then retried") {
    env.register_flow({{"ask"}, {"check"}});
    const auto id = create_task(env.core);
    worker_handle w(env.core, "w1");
    auto both = poll(w, 2);
    REQUIRE(both.size() == 2);
    const auto& ask = both[0].step_name == "ask" ? both[0] : both[1];
    const auto& check = both[0].step_name == "ask" ? both[1] : both[0];
    REQUIRE(wait_for(w, ask, "approval", 60000) == TK_OK);
    REQUIRE(fail(w, check, false) == TK_OK);
    auto status = task_status(env.core, id);
    CHECK(status.at("state") == "error");
    CHECK(step_status(status, "ask").at("state") == "pending");
    CHECK(signal(env.core, ask.wait_token, nullptr, err) == TK_CONFLICT);
    CHECK(next_due(env.core) == -1);

    REQUIRE(tk_retry_task(env.core, id, &err) == TK_OK);
    auto again = poll(w, 2);
    REQUIRE(again.size() == 2);
    // A step that answers wait after its task failed is parked, not waiting.
    const auto& again_check = again[0].step_name == "check" ? again[0] : again[1];
    const auto& again_ask = again[0].step_name == "ask" ? again[0] : again[1];
    REQUIRE(fail(w, again_check, false) == TK_OK);
    REQUIRE(task_state(env.core, id) == "error");
    CHECK(wait_for(w, again_ask, "approval", 60000) == TK_OK);
    CHECK(step_status(task_status(env.core, id), "ask").at("state") == "pending");
    CHECK(signal(env.core, again_ask.wait_token, nullptr, err) == TK_CONFLICT);
    CHECK(next_due(env.core) == -1);
    REQUIRE(tk_retry_task(env.core, id, &err) == TK_OK);
    again = poll(w, 2);
    REQUIRE(again.size() == 2);
    for (const auto& s : again) {
      CHECK_FALSE(s.signalled);
      CHECK(succeed(w, s) == TK_OK);
    }
    CHECK(task_state(env.core, id) == "complete");
  }
}
