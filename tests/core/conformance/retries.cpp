// Store conformance, retries: backoff, retry_after, non-retryable failures, exhausted attempts.
#include "conformance.hpp"

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
  SUBCASE("fibonacci up to its cap") {
    retry = retry_policy(7, "fibonacci", 500, 2000);
    expected = {500, 500, 1000, 1500, 2000, 2000};
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
