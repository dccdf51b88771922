// Store conformance, durable waits: signals, timeouts, abandoned waits.
#include "conformance.hpp"

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
