// Store conformance, steps created as a task runs: decision points, deferred
// convergence, batch workers.
#include "conformance.hpp"

namespace {

/// validate -> route (decision) -> auto | manager | finance -> finalize
/// (deferred convergence), declared in Tasker's order (finalize before its
/// dependencies).
std::vector<step_spec> approval_steps() {
  std::vector<step_spec> s = {
      {"validate"},        {"route", {"validate"}}, {"finalize", {"auto", "manager", "finance"}},
      {"auto", {"route"}}, {"manager", {"route"}},  {"finance", {"route"}}};
  s[1].type = "decision";
  s[2].type = "deferred_convergence";
  return s;
}

/// analyze (batchable) -> work (batch_worker) -> total (deferred convergence)
std::vector<step_spec> batch_steps(const char* failure_strategy = "fail_fast",
                                   json retry = nullptr) {
  std::vector<step_spec> s = {{"analyze"}, {"work", {"analyze"}, retry}, {"total", {"work"}}};
  s[0].type = "batchable";
  s[1].type = "batch_worker";
  s[1].batch_config = {{"batch_size", 2}, {"failure_strategy", failure_strategy}};
  s[2].type = "deferred_convergence";
  return s;
}

std::string decision(const std::vector<std::string>& names) {
  return json{{"decision_point_outcome", {{"type", "create_steps"}, {"step_names", names}}}}.dump();
}

std::string batches(int n) {
  json cursors = json::array();
  for (int i = 0; i < n; ++i)
    cursors.push_back({{"start_cursor", i * 2}, {"end_cursor", i * 2 + 2}, {"batch_size", 2}});
  return json{{"batch_processing_outcome",
               {{"type", "create_batches"}, {"worker_count", n}, {"cursor_configs", cursors}}}}
      .dump();
}

/// Runs every claimable step to the end, answering each with `answer`;
/// returns the names of the steps that ran, in order.
template <class Answer>
std::vector<std::string> run_all(tk_worker* w, Answer&& answer) {
  std::vector<std::string> ran;
  for (int rounds = 0; rounds < 100; ++rounds) {
    auto got = poll(w, 10);
    if (got.empty())
      break;
    for (const auto& s : got) {
      ran.push_back(s.step_name);
      CHECK(succeed(w, s, answer(s).c_str()) == TK_OK);
    }
  }
  return ran;
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

// ---- decisions ---------------------------------------------------------------------

TEST_CASE_TEMPLATE("a decision creates only the branches it names; the convergence step waits "
                   "for them and sees only theirs"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  struct route {
    std::vector<std::string> chosen;
    std::size_t steps_run;
  };
  const route routes[] = {{{"auto"}, 4}, {{"manager"}, 4}, {{"manager", "finance"}, 5}};
  for (const auto& r : routes) {
    CAPTURE(r.chosen.size());
    store_env<Store> env;
    env.register_flow(approval_steps());
    const auto id = create_task(env.core);
    worker_handle w(env.core, "w1");
    json finalize_deps;
    auto ran = run_all(w, [&](const claimed_step& s) -> std::string {
      if (s.step_name == "route") {
        CHECK(s.dependency_results == json{{"validate", {{"ok", true}}}});
        return decision(r.chosen);
      }
      if (s.step_name == "finalize")
        finalize_deps = s.dependency_results;
      return json{{"ok", true}}.dump();
    });
    CHECK(ran.size() == r.steps_run);
    CHECK(ran.back() == "finalize");
    // Only the chosen branches ran, and finalize saw exactly them (and the
    // steps above the decision).
    std::vector<std::string> seen;
    for (const auto& [name, _] : finalize_deps.items())
      seen.push_back(name);
    std::vector<std::string> expected = r.chosen;
    expected.insert(expected.end(), {"route", "validate"});
    CHECK(sorted(seen) == sorted(expected));
    auto status = task_status(env.core, id);
    CHECK(status.at("state") == "complete");
    CHECK(status.at("steps_total") == r.steps_run);
    CHECK(status.at("steps_done") == r.steps_run);
    for (const char* branch : {"auto", "manager", "finance"}) {
      const bool chosen = std::find(r.chosen.begin(), r.chosen.end(), branch) != r.chosen.end();
      CHECK(step_status(status, branch).at("state") == (chosen ? "complete" : "skipped"));
    }
    CHECK(step_status(status, "route").at("type") == "decision");
  }
}

TEST_CASE_TEMPLATE("branches stay dormant until the decision completes, and no_branches skips "
                   "them all"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow(approval_steps());
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  REQUIRE(succeed(w, poll_one(w)) == TK_OK);
  auto route = poll_one(w);
  REQUIRE(route.step_name == "route");
  auto status = task_status(env.core, id);
  for (const char* s : {"auto", "manager", "finance", "finalize"})
    CHECK(step_status(status, s).at("state") == "dormant");
  CHECK(status.at("steps_total") == 2);
  CHECK(poll(w, 10).empty());
  const std::string none = json{{"decision_point_outcome", {{"type", "no_branches"}}}}.dump();
  CHECK(succeed(w, route, none.c_str()) == TK_OK);
  status = task_status(env.core, id);
  CHECK(status.at("state") == "complete");
  for (const char* s : {"auto", "manager", "finance", "finalize"})
    CHECK(step_status(status, s).at("state") == "skipped");
  CHECK(poll(w, 10).empty());
}

TEST_CASE_TEMPLATE("a decision that names a step it may not create fails, and its task with it"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  const std::pair<std::string, std::string> bad[] = {
      {decision({"validate"}), "not a step that depends on \"route\""},
      {decision({"nowhere"}), "its choices: auto, manager, finance"},
      {R"({"chosen":["auto"]})", "must hold \"decision_point_outcome\""},
      {R"({"decision_point_outcome":{"type":"maybe"}})", "must be \"create_steps\""},
      {R"({"decision_point_outcome":{"type":"create_steps","step_names":"auto"}})",
       "needs \"step_names\""}};
  for (const auto& [result, message] : bad) {
    CAPTURE(result);
    store_env<Store> env;
    env.register_flow(approval_steps());
    const auto id = create_task(env.core);
    worker_handle w(env.core, "w1");
    REQUIRE(succeed(w, poll_one(w)) == TK_OK);
    auto route = poll_one(w);
    CHECK(succeed(w, route, result.c_str()) == TK_OK);
    auto status = task_status(env.core, id);
    CHECK(status.at("state") == "error");
    const json step = step_status(status, "route");
    CHECK(step.at("state") == "error");
    CHECK(step.at("last_error").at("type") == "invalid_outcome");
    CHECK(step.at("last_error").at("retryable") == false);
    CHECK(contains(step.at("last_error").at("message").get<std::string>(), message));
    CHECK(poll(w, 10).empty());
    // Retried, the decision runs again and may answer well this time.
    tk_error err{};
    REQUIRE(tk_retry_task(env.core, id, &err) == TK_OK);
    auto again = poll_one(w);
    CHECK(again.step_name == "route");
    CHECK(succeed(w, again, decision({"auto"}).c_str()) == TK_OK);
    auto ran = run_all(w, [](const claimed_step&) { return std::string("{}"); });
    CHECK(ran == std::vector<std::string>{"auto", "finalize"});
    CHECK(task_state(env.core, id) == "complete");
  }
}

TEST_CASE_TEMPLATE("a standard step below two branches is skipped when either is"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  // route -> a, b; both -> join (standard: it needs both)
  std::vector<step_spec> steps = {
      {"route"}, {"a", {"route"}}, {"b", {"route"}}, {"join", {"a", "b"}}, {"after", {"join"}}};
  steps[0].type = "decision";
  for (bool both : {false, true}) {
    store_env<Store> env;
    env.register_flow(steps);
    const auto id = create_task(env.core);
    worker_handle w(env.core, "w1");
    auto ran = run_all(w, [&](const claimed_step& s) -> std::string {
      if (s.step_name == "route")
        return both ? decision({"a", "b"}) : decision({"a"});
      return "{}";
    });
    auto status = task_status(env.core, id);
    CHECK(status.at("state") == "complete");
    if (both) {
      CHECK(sorted(ran) == sorted({"route", "a", "b", "join", "after"}));
    } else {
      CHECK(sorted(ran) == sorted({"route", "a"}));
      CHECK(step_status(status, "join").at("state") == "skipped");
      CHECK(step_status(status, "after").at("state") == "skipped");
    }
  }
}

// ---- batches -----------------------------------------------------------------------

TEST_CASE_TEMPLATE("a batchable step creates its workers at once; each sees its cursor and the "
                   "convergence step gets every result"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow(batch_steps());
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto analyze = poll_one(w);
  CHECK(analyze.step_inputs == json::object());
  auto status = task_status(env.core, id);
  CHECK(status.at("steps").size() == 2);  // the worker template is not a step of its own
  CHECK(step_status(status, "total").at("state") == "pending");
  CHECK(succeed(w, analyze, batches(5).c_str()) == TK_OK);

  status = task_status(env.core, id);
  CHECK(status.at("steps_total") == 7);
  auto workers = poll(w, 10);
  REQUIRE(workers.size() == 5);
  std::vector<std::string> names;
  for (const auto& s : workers) {
    names.push_back(s.step_name);
    CHECK(s.handler == "noop");
    const auto& cursor = s.step_inputs.at("cursor");
    const int n = std::stoi(s.step_name.substr(5));
    CHECK(cursor.at("batch_id") == s.step_name.substr(5));
    CHECK(cursor.at("start_cursor") == (n - 1) * 2);
    CHECK(cursor.at("end_cursor") == n * 2);
    CHECK(s.step_inputs.at("batch_config").at("batch_size") == 2);
    CHECK(s.step_inputs.at("batch_metadata").at("failure_strategy") == "fail_fast");
    CHECK(s.step_inputs.at("is_no_op") == false);
    CHECK(s.dependency_results.contains("analyze"));
  }
  CHECK(sorted(names)
        == std::vector<std::string>{"work_001", "work_002", "work_003", "work_004", "work_005"});
  CHECK(step_status(task_status(env.core, id), "work_003")
            .at("inputs")
            .at("cursor")
            .at("start_cursor")
        == 4);
  for (std::size_t i = 0; i + 1 < workers.size(); ++i)
    CHECK(succeed(w, workers[i], json{{"sum", i + 1}}.dump().c_str()) == TK_OK);
  CHECK(poll(w, 10).empty());  // one worker still runs
  CHECK(succeed(w, workers.back(), json{{"sum", workers.size()}}.dump().c_str()) == TK_OK);
  auto total = poll_one(w);
  CHECK(total.step_name == "total");
  int sum = 0;
  for (const auto& [name, result] : total.dependency_results.items())
    if (name.rfind("work_", 0) == 0)
      sum += result.at("sum").template get<int>();
  CHECK(sum == 15);
  CHECK(total.dependency_results.size() == 6);  // analyze and the five workers
  CHECK(succeed(w, total) == TK_OK);
  status = task_status(env.core, id);
  CHECK(status.at("state") == "complete");
  CHECK(status.at("steps_done") == 7);
}

TEST_CASE_TEMPLATE("no_batches creates one placeholder worker, done at once, and the DAG goes on"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  for (const char* outcome :
       {R"({"batch_processing_outcome":{"type":"no_batches"}})",
        R"({"batch_processing_outcome":"no_batches"})",
        R"({"batch_processing_outcome":{"type":"create_batches","cursor_configs":[]}})"}) {
    CAPTURE(outcome);
    store_env<Store> env;
    env.register_flow(batch_steps());
    const auto id = create_task(env.core);
    worker_handle w(env.core, "w1");
    CHECK(succeed(w, poll_one(w), outcome) == TK_OK);
    auto total = poll_one(w);
    CHECK(total.step_name == "total");
    CHECK(total.dependency_results.at("work_000") == json{{"is_no_op", true}});
    CHECK(succeed(w, total) == TK_OK);
    auto status = task_status(env.core, id);
    CHECK(status.at("state") == "complete");
    const auto placeholder = step_status(status, "work_000");
    CHECK(placeholder.at("state") == "complete");
    CHECK(placeholder.at("inputs").at("is_no_op") == true);
  }
}

TEST_CASE_TEMPLATE("a failed batch worker fails the task under fail_fast, and the convergence "
                   "step sees it under continue_on_failure"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  for (const char* strategy : {"fail_fast", "continue_on_failure"}) {
    CAPTURE(strategy);
    store_env<Store> env;
    env.register_flow(batch_steps(strategy, retry_policy(2)));
    const auto id = create_task(env.core);
    worker_handle w(env.core, "w1");
    CHECK(succeed(w, poll_one(w), batches(3).c_str()) == TK_OK);
    auto workers = poll(w, 10);
    REQUIRE(workers.size() == 3);
    CHECK(succeed(w, workers[0], R"({"n":1})") == TK_OK);
    CHECK(succeed(w, workers[2], R"({"n":3})") == TK_OK);
    // The middle one fails, is retried (its retry policy), and fails again.
    CHECK(fail(w, workers[1], true) == TK_OK);
    auto again = poll_one(w);
    CHECK(again.step_name == workers[1].step_name);
    CHECK(again.attempt == 2);
    CHECK(again.step_inputs == workers[1].step_inputs);
    CHECK(fail(w, again, true) == TK_OK);
    if (std::string(strategy) == "fail_fast") {
      CHECK(task_state(env.core, id) == "error");
      CHECK(poll(w, 10).empty());
      continue;
    }
    auto total = poll_one(w);
    CHECK(total.step_name == "total");
    CHECK(total.dependency_results.at("work_001") == json{{"n", 1}});
    CHECK(total.dependency_results.at("work_003") == json{{"n", 3}});
    CHECK(total.dependency_results.at("work_002").at("error").at("message") == "boom");
    CHECK(succeed(w, total) == TK_OK);
    auto status = task_status(env.core, id);
    CHECK(status.at("state") == "complete");
    CHECK(step_status(status, "work_002").at("state") == "error");
  }
}

TEST_CASE_TEMPLATE("a task failed by a batch worker is retried from that worker"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow(batch_steps());
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  CHECK(succeed(w, poll_one(w), batches(2).c_str()) == TK_OK);
  auto workers = poll(w, 10);
  REQUIRE(workers.size() == 2);
  CHECK(succeed(w, workers[0]) == TK_OK);
  CHECK(fail(w, workers[1], false) == TK_OK);
  CHECK(task_state(env.core, id) == "error");
  tk_error err{};
  REQUIRE(tk_retry_task(env.core, id, &err) == TK_OK);
  auto again = poll_one(w);
  CHECK(again.step_name == "work_002");
  CHECK(again.attempt == 1);
  CHECK(succeed(w, again) == TK_OK);
  CHECK(poll_one(w).step_name == "total");
}

TEST_CASE_TEMPLATE("a malformed batch outcome fails the batchable step" * doctest::timeout(30),
                   Store, TASKER_STORES) {
  const std::pair<std::string, std::string> bad[] = {
      {R"({"rows":10})", "must hold \"batch_processing_outcome\""},
      {R"({"batch_processing_outcome":{"type":"create_batches"}})", "needs \"cursor_configs\""},
      {R"({"batch_processing_outcome":{"type":"create_batches","worker_count":3,"cursor_configs":[{}]}})",
       "worker_count is 3 but cursor_configs has 1"},
      {R"({"batch_processing_outcome":{"type":"create_batches","cursor_configs":[1]}})",
       "must be an object"},
      {R"({"batch_processing_outcome":{"type":"create_batches","worker_template_name":"total","cursor_configs":[{}]}})",
       "is not a batch_worker step"}};
  for (const auto& [result, message] : bad) {
    CAPTURE(result);
    store_env<Store> env;
    env.register_flow(batch_steps());
    const auto id = create_task(env.core);
    worker_handle w(env.core, "w1");
    CHECK(succeed(w, poll_one(w), result.c_str()) == TK_OK);
    auto status = task_status(env.core, id);
    CHECK(status.at("state") == "error");
    const json step = step_status(status, "analyze");
    CHECK(step.at("last_error").at("type") == "invalid_outcome");
    CHECK(contains(step.at("last_error").at("message").get<std::string>(), message));
    CHECK(status.at("steps").size() == 2);  // no worker was created
    CHECK(poll(w, 10).empty());
  }
}

TEST_CASE_TEMPLATE("a decision can choose a batch: decisions and batches together"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  // start -> route (decision) -> {evens (batchable) -> even_work -> even_total,
  //                               odds (batchable) -> odd_work -> odd_total}
  std::vector<step_spec> steps = {{"start"},
                                  {"route", {"start"}},
                                  {"evens", {"route"}},
                                  {"even_work", {"evens"}},
                                  {"even_total", {"even_work"}},
                                  {"odds", {"route"}},
                                  {"odd_work", {"odds"}},
                                  {"odd_total", {"odd_work"}}};
  steps[1].type = "decision";
  steps[2].type = steps[5].type = "batchable";
  steps[3].type = steps[6].type = "batch_worker";
  steps[4].type = steps[7].type = "deferred_convergence";
  store_env<Store> env;
  env.register_flow(steps);
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto ran = run_all(w, [](const claimed_step& s) -> std::string {
    if (s.step_name == "route")
      return decision({"evens"});
    if (s.step_name == "evens")
      return batches(3);
    return "{}";
  });
  CHECK(sorted(ran)
        == sorted({"start", "route", "evens", "even_work_001", "even_work_002", "even_work_003",
                   "even_total"}));
  auto status = task_status(env.core, id);
  CHECK(status.at("state") == "complete");
  for (const char* s : {"odds", "odd_total"})
    CHECK(step_status(status, s).at("state") == "skipped");
}

// ---- definitions -------------------------------------------------------------------

TEST_CASE_TEMPLATE("step types are checked when a pipeline is registered" * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  auto with = [](std::vector<step_spec> s) { return pipeline_json("test", "bad", s); };
  std::vector<step_spec> lone_worker = {{"a"}, {"w", {"a"}}};
  lone_worker[1].type = "batch_worker";
  CHECK(contains(rejected_message(env.core, with(lone_worker), TK_VALIDATION),
                 "a batch_worker must depend on exactly one step, a batchable one"));
  std::vector<step_spec> no_worker = {{"a"}, {"b", {"a"}}};
  no_worker[0].type = "batchable";
  CHECK(contains(rejected_message(env.core, with(no_worker), TK_VALIDATION),
                 "needs a batch_worker step that depends on it"));
  std::vector<step_spec> rootless = {{"a"}};
  rootless[0].type = "deferred_convergence";
  CHECK(contains(rejected_message(env.core, with(rootless), TK_VALIDATION), "needs dependencies"));
  std::vector<step_spec> unknown = {{"a"}};
  unknown[0].type = "parallel";
  CHECK(contains(rejected_message(env.core, with(unknown), TK_VALIDATION),
                 "type is \"parallel\", must be standard, decision"));
  auto bad_config = batch_steps();
  bad_config[1].batch_config = {{"failure_strategy", "retry_forever"}, {"size", 3}};
  const auto message = rejected_message(env.core, with(bad_config), TK_VALIDATION);
  CHECK(contains(message, "unknown field \"size\""));
  CHECK(contains(message, "failure_strategy is \"retry_forever\""));
  auto misplaced = batch_steps();
  misplaced[2].batch_config = {{"batch_size", 3}};
  CHECK(contains(rejected_message(env.core, with(misplaced), TK_VALIDATION),
                 "batch_config belongs to batch_worker steps"));
  // Registering the same definition again is a no-op; a changed type is a conflict.
  env.register_flow(batch_steps());
  env.register_flow(batch_steps());
  auto changed = batch_steps();
  changed[2].type = "";
  CHECK(contains(rejected_message(env.core, pipeline_json("test", "flow", changed), TK_CONFLICT),
                 "already registered"));
}

// ---- checkpoints -------------------------------------------------------------------

namespace {

int checkpoint(tk_worker* w, const claimed_step& s, const char* state) {
  tk_step_result r = success_result(s, state);
  r.kind = TK_RESULT_CHECKPOINT;
  return complete(w, {r}).front();
}

}  // namespace

TEST_CASE_TEMPLATE("a checkpoint hands the step out again as the same attempt, and a retry "
                   "resumes from the last one"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"long", {}, retry_policy(3)}, {"after", {"long"}}});
  const auto id = create_task(env.core);
  worker_handle w(env.core, "w1");
  auto first = poll_one(w);
  CHECK(first.step_inputs == json::object());
  CHECK(checkpoint(w, first, R"({"cursor":25})") == TK_OK);
  auto step = step_status(task_status(env.core, id), "long");
  CHECK(step.at("state") == "ready");
  CHECK(step.at("inputs").at("checkpoint") == json{{"cursor", 25}});

  auto second = poll_one(w);
  CHECK(second.step_id == first.step_id);
  CHECK(second.attempt == 1);
  CHECK(second.step_inputs.at("checkpoint") == json{{"cursor", 25}});
  CHECK(succeed(w, first, "{}") == TK_STALE);  // the first run's claim is over
  CHECK(checkpoint(w, second, R"({"cursor":50})") == TK_OK);
  auto third = poll_one(w);
  CHECK(third.attempt == 1);
  CHECK(third.step_inputs.at("checkpoint") == json{{"cursor", 50}});
  // A failure: the retry (a new attempt) starts from the last checkpoint.
  CHECK(fail(w, third, true) == TK_OK);
  env.clock.advance(1000);
  auto retried = poll_one(w);
  CHECK(retried.step_id == first.step_id);
  CHECK(retried.attempt == 2);
  CHECK(retried.step_inputs.at("checkpoint") == json{{"cursor", 50}});
  CHECK(succeed(w, retried, R"({"items":100})") == TK_OK);
  CHECK(poll_one(w).step_name == "after");

  // A checkpoint must be JSON.
  store_env<Store> env2;
  env2.register_flow({{"long"}});
  create_task(env2.core);
  worker_handle w2(env2.core, "w2");
  auto s = poll_one(w2);
  CHECK(checkpoint(w2, s, "{not json") == TK_MALFORMED_JSON);
  tk_step_result none = success_result(s, nullptr);
  none.kind = TK_RESULT_CHECKPOINT;
  CHECK(complete(w2, {none}).front() == TK_INVALID_ARGUMENT);
}

TEST_CASE_TEMPLATE("a batch worker's checkpoint keeps its cursor beside it" * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow(batch_steps());
  create_task(env.core);
  worker_handle w(env.core, "w1");
  CHECK(succeed(w, poll_one(w), batches(1).c_str()) == TK_OK);
  auto worker = poll_one(w);
  CHECK(checkpoint(w, worker, R"({"done":1})") == TK_OK);
  auto again = poll_one(w);
  CHECK(again.step_name == "work_001");
  CHECK(again.step_inputs.at("cursor") == worker.step_inputs.at("cursor"));
  CHECK(again.step_inputs.at("checkpoint") == json{{"done", 1}});
}

TEST_CASE_TEMPLATE("a checkpoint answered in the call that also claims comes back as the same "
                   "attempt with its checkpoint"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  // tk_complete_and_poll: on PostgreSQL the step made ready goes straight to
  // the claim in the same transaction (a hand-off); it must keep its checkpoint.
  store_env<Store> env;
  env.register_flow({{"long", {}, retry_policy(3)}});
  create_task(env.core);
  worker_handle w(env.core, "w1");
  auto s = poll_one(w);
  for (int k = 1; k <= 3; ++k) {
    tk_step_result r = success_result(s, json{{"next", k * 10}}.dump().c_str());
    const std::string state = json{{"next", k * 10}}.dump();
    r.result_json = state.c_str();
    r.kind = TK_RESULT_CHECKPOINT;
    std::vector<int> outcomes;
    auto got = complete_and_poll(w, {r}, outcomes, 5);
    CHECK(outcomes.front() == TK_OK);
    REQUIRE(got.size() == 1);
    CHECK(got[0].step_id == s.step_id);
    CHECK(got[0].attempt == 1);
    CHECK(got[0].step_inputs.at("checkpoint") == json{{"next", k * 10}});
    s = got[0];
  }
}
