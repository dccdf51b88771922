// Store conformance, cancelling a task.
#include "conformance.hpp"

// ---- cancelling ---------------------------------------------------------------------------

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
