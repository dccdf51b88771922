// Store conformance, pipelines: DAG rules, registration, task creation; the DAG at run time.
#include "conformance.hpp"

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

TEST_CASE_TEMPLATE("a step's event names its handler's method, call when it names none"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  register_pipeline(env.core, R"({"namespace":"test","name":"flow","version":"1","steps":[
      {"name":"charge","handler":"payments"},
      {"name":"refund","handler":"payments","method":"refund","dependencies":["charge"]}]})");
  create_task(env.core);
  worker_handle w(env.core, "w1");
  auto charge = poll_one(w);
  CHECK(charge.handler == "payments");
  CHECK(charge.method == "call");
  CHECK(succeed(w, charge) == TK_OK);
  auto refund = poll_one(w);
  CHECK(refund.handler == "payments");
  CHECK(refund.method == "refund");
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
