// Store conformance, retrying a failed task.
#include "conformance.hpp"

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
