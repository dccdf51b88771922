// Fault sweeps: every SQLite-backed (or, built with TASKER_FAULT_PG,
// PostgreSQL-backed) call is made to fail at its 0th, 1st,
// 2nd… database statement, until it gets through. Each failed attempt must
// report TK_STORE_ERROR and leave the store exactly as it was (atomicity);
// the attempt that gets through must then behave normally.
#include <functional>
#include <string>
#include <vector>

#include <tasker/test/core.hpp>
#include <tasker/test/pg.hpp>

using namespace tasker::test;

namespace {

/// Everything a client can observe: every task's full status, in id order.
json snapshot(tk_core* core) {
  json all = json::array();
  auto page = list_tasks(core, R"({"limit":1000})");
  for (const auto& t : page.at("tasks"))
    all.push_back(task_status(core, t.at("id").get<std::int64_t>()));
  return all;
}

void inject(tk_core* core, std::int64_t n) {
  tk_error err{};
  REQUIRE(tk_inject_store_fault(core, n, &err) == TK_OK);
}

/// Runs `op` with a fault at statement 0, 1, 2… until it succeeds; returns
/// how many faulty runs were swept. `op` must be repeatable after a failure.
int sweep(tk_core* core, const char* what, const std::function<tk_status()>& op) {
  for (int n = 0; n < 200; ++n) {
    const json before = snapshot(core);
    inject(core, n);
    const tk_status status = op();
    inject(core, -1);
    if (status == TK_OK)
      return n;
    INFO(what, " with a fault at statement ", n);
    REQUIRE(status == TK_STORE_ERROR);
    CHECK(snapshot(core) == before);
  }
  FAIL(what, " never succeeded");
  return -1;
}

#ifdef TASKER_FAULT_PG
#define TASKER_FAULT_STORE "PostgreSQL"
std::string fault_url(const temp_dir&) {
  return fresh_pg_url();
}
#else
#define TASKER_FAULT_STORE "SQLite"
std::string fault_url(const temp_dir& dir) {
  return "sqlite:" + dir.file("fault.db");
}
#endif

}  // namespace

TEST_CASE("a store failure at any statement leaves the " TASKER_FAULT_STORE " store as it was"
          * doctest::timeout(120)) {
  temp_dir dir;
  auto core = open_core(fault_url(dir));
  manual_clock clock;
  use_clock(core, clock);
  worker_handle w(core, "sweeper", 1000);
  tk_error err{};

  const auto pipeline =
      pipeline_json("test", "flow", diamond_steps(retry_policy(3, "linear", 100)));
  CHECK(sweep(core, "register", [&] { return tk_register_pipeline(core, pipeline.c_str(), &err); })
        > 0);

  std::vector<std::int64_t> tasks;
  for (int i = 0; i < 3; ++i) {
    std::int64_t id = 0;
    CHECK(
        sweep(core, "create", [&] { return try_create_task(core, task_args{}, id, nullptr, err); })
        > 0);
    tasks.push_back(id);
  }

  // Claim the three roots in one poll.
  const tk_step_event* events = nullptr;
  std::size_t count = 0;
  CHECK(sweep(core, "poll", [&] { return tk_poll(w, 3, &events, &count, &err); }) > 0);
  REQUIRE(count == 3);
  std::vector<claimed_step> roots;
  for (std::size_t i = 0; i < count; ++i)
    roots.push_back(copy_event(events[i]));

  // One batch: two successes (each releases two children) and one failure
  // the policy retries.
  std::vector<tk_step_result> batch{success_result(roots[0], R"({"n":1})"),
                                    success_result(roots[1], R"({"n":2})"),
                                    failure_result(roots[2], "flaky", "retryable_error", true)};
  std::vector<int> outcomes(batch.size(), -1);
  CHECK(sweep(core, "complete",
              [&] { return tk_complete(w, batch.data(), batch.size(), outcomes.data(), &err); })
        > 3);
  CHECK(outcomes == std::vector<int>{TK_OK, TK_OK, TK_OK});
  CHECK(step_status(task_status(core, roots[2].task_id), "a").at("state") == "waiting_for_retry");

  // Heartbeat nothing-yet-claimed children is stale; claim them, heartbeat them.
  std::vector<claimed_step> children = poll(w, 10);
  REQUIRE(children.size() == 4);
  std::vector<std::int64_t> ids, tokens;
  for (const auto& c : children) {
    ids.push_back(c.step_id);
    tokens.push_back(c.fencing_token);
  }
  std::vector<int> beats(ids.size(), -1);
  CHECK(sweep(core, "heartbeat",
              [&] {
                return tk_heartbeat(w, ids.data(), tokens.data(), ids.size(), beats.data(), &err);
              })
        > 0);
  CHECK(beats == std::vector<int>(ids.size(), TK_OK));

  // Time passes: the retry becomes due and a lease is taken back, in one poll.
  clock.advance(100);
  CHECK(sweep(core, "poll with due retry", [&] { return tk_poll(w, 10, &events, &count, &err); })
        > 0);
  REQUIRE(count == 1);
  CHECK(events[0].step_id == roots[2].step_id);
  CHECK(events[0].attempt == 2);
  clock.advance(10000);  // every lease runs out
  CHECK(sweep(core, "poll after leases ran out",
              [&] { return tk_poll(w, 10, &events, &count, &err); })
        > 0);
  CHECK(count == 5);

  // A whole cycle in one call: complete two running steps, claim what is ready.
  std::vector<claimed_step> now_running;
  for (std::size_t i = 0; i < count; ++i)
    now_running.push_back(copy_event(events[i]));
  std::vector<tk_step_result> cycle{success_result(now_running[0], "{}"),
                                    success_result(now_running[1], "{}")};
  std::vector<int> cycle_outcomes(2, -1);
  CHECK(sweep(core, "complete and poll",
              [&] {
                return tk_complete_and_poll(w, cycle.data(), cycle.size(), cycle_outcomes.data(),
                                            10, &events, &count, &err);
              })
        > 2);
  CHECK(cycle_outcomes == std::vector<int>{TK_OK, TK_OK});

  CHECK(sweep(core, "cancel", [&] { return tk_cancel_task(core, tasks[0], &err); }) > 0);
  CHECK(task_state(core, tasks[0]) == "cancelled");
}

TEST_CASE("a store failure during a retry leaves the failed " TASKER_FAULT_STORE " task as it was"
          * doctest::timeout(120)) {
  temp_dir dir;
  auto core = open_core(fault_url(dir));
  worker_handle w(core, "sweeper");
  register_pipeline(core, pipeline_json("test", "flow", diamond_steps(retry_policy(1))));
  const auto id = create_task(core);
  CHECK(succeed(w, poll_one(w), R"({"n":1})") == TK_OK);
  auto bc = poll(w, 10);
  REQUIRE(bc.size() == 2);
  CHECK(fail(w, bc[0], false) == TK_OK);
  CHECK(succeed(w, bc[1]) == TK_OK);
  REQUIRE(task_state(core, id) == "error");

  tk_error err{};
  CHECK(sweep(core, "retry", [&] { return tk_retry_task(core, id, &err); }) > 0);
  CHECK(task_state(core, id) == "running");
  auto again = poll(w, 10);
  REQUIRE(again.size() == 1);
  CHECK(again[0].step_id == bc[0].step_id);
  CHECK(again[0].attempt == 1);
}

TEST_CASE(
    "a store failure during a wait, a signal or a wait's timeout leaves the " TASKER_FAULT_STORE
    " store as it was"
    * doctest::timeout(120)) {
  temp_dir dir;
  manual_clock clock;
  auto core = open_core(fault_url(dir));
  use_clock(core, clock);
  worker_handle w(core, "sweeper", 1000);
  register_pipeline(core, pipeline_json("test", "flow", {{"ask", {}, retry_policy(2)}}));
  const auto first = create_task(core);
  const auto second = create_task(core);
  auto asks = poll(w, 2);
  REQUIRE(asks.size() == 2);
  std::vector<tk_step_result> waits{wait_result(asks[0], "approval", 1000),
                                    wait_result(asks[1], "approval", 5000)};
  std::vector<int> outcomes(2);
  tk_error err{};
  CHECK(sweep(core, "wait",
              [&] { return tk_complete(w, waits.data(), waits.size(), outcomes.data(), &err); })
        > 0);
  CHECK(outcomes == std::vector<int>{TK_OK, TK_OK});
  const auto& token = asks[1].wait_token;
  CHECK(sweep(core, "signal", [&] { return tk_signal(core, token.c_str(), "{}", &err); }) > 0);
  clock.advance(1000);  // the first wait times out: retried at once
  const tk_step_event* events = nullptr;
  std::size_t count = 0;
  CHECK(sweep(core, "poll after a wait timed out",
              [&] { return tk_poll(w, 10, &events, &count, &err); })
        > 0);
  CHECK(count == 2);
  auto ask = step_status(task_status(core, first), "ask");
  CHECK(ask.at("attempts") == 2);
  CHECK(ask.at("last_error").at("type") == "timeout");
  CHECK(step_status(task_status(core, second), "ask").at("attempts") == 1);
}

#ifndef TASKER_FAULT_PG
TEST_CASE("the memory store has no database to inject faults into" * doctest::timeout(10)) {
  auto core = open_core("memory:");
  tk_error err{};
  CHECK(tk_inject_store_fault(core, 0, &err) == TK_UNSUPPORTED);
  CHECK(tk_inject_store_fault(nullptr, 0, &err) == TK_INVALID_ARGUMENT);
}
#endif
