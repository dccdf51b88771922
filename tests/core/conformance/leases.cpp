// Store conformance, leases and completions: expiry, stale tokens, heartbeats, duplicates.
#include "conformance.hpp"

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
