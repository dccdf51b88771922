// Store conformance, end to end: whole workflows through poll and complete.
#include "conformance.hpp"

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
