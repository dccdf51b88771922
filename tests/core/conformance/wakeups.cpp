// Store conformance, waking pollers: the wake-up callback, batches, the task listener, next due.
#include "conformance.hpp"

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
