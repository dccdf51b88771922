// Store conformance, input_schema: a task whose context does not match its
// pipeline's schema is refused and not created, alone or in a batch.
#include "conformance.hpp"

namespace {

/// test/flow@1 with one step and an input_schema.
std::string schema_pipeline(const json& schema) {
  json p = json::parse(pipeline_json("test", "flow", {{"a"}}));
  p["input_schema"] = schema;
  return p.dump();
}

const json order_schema = {
    {"type", "object"},
    {"required", {"customer", "amount"}},
    {"properties",
     {{"customer", {{"type", "string"}, {"minLength", 1}}},
      {"amount", {{"type", "number"}, {"minimum", 0}}},
      {"lines", {{"type", "array"}, {"items", {{"type", "object"}, {"required", {"sku"}}}}}}}}};

task_args with_context(const json& context) {
  task_args a;
  a.context = context.dump();
  return a;
}

}  // namespace

TEST_CASE_TEMPLATE("a context that does not match the input_schema is refused naming the path"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  register_pipeline(env.core, schema_pipeline(order_schema));
  tk_error err{};
  std::int64_t id = 0;
  CHECK(try_create_task(env.core, with_context({{"customer", "c1"}, {"amount", -5}}), id, nullptr,
                        err)
        == TK_VALIDATION);
  CHECK(err.code == TK_VALIDATION);
  CHECK(std::string(err.message)
        == "pipeline test/flow@1: input_schema: $.amount: must be at least 0 (is -5)");

  CHECK(try_create_task(env.core, with_context({{"amount", 1}, {"lines", {{{"qty", 1}}}}}), id,
                        nullptr, err)
        == TK_VALIDATION);
  CHECK(std::string(err.message)
        == "pipeline test/flow@1: input_schema: $.customer: is required; $.lines[0].sku: is "
           "required");

  // Nothing was created: no task is listed, no step is handed out.
  CHECK(list_tasks(env.core, nullptr).at("tasks").empty());
  worker_handle w(env.core, "w1");
  CHECK(poll(w, 10).empty());

  const auto created = create_task(env.core, with_context({{"customer", "c1"}, {"amount", 12.5}}));
  CHECK(task_status(env.core, created).at("context").at("amount") == 12.5);
  CHECK(poll_one(w).task_id == created);
}

TEST_CASE_TEMPLATE("a batch with one context that does not match is refused whole, naming it"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  register_pipeline(env.core, schema_pipeline(order_schema));
  const std::vector<std::string> contexts = {R"({"customer": "a", "amount": 1})",
                                             R"({"customer": "b", "amount": "ten"})",
                                             R"({"customer": "c", "amount": 3})"};
  std::vector<tk_task_spec> specs(contexts.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    specs[i].namespace_name = "test";
    specs[i].name = "flow";
    specs[i].version = "1";
    specs[i].context_json = contexts[i].c_str();
  }
  std::vector<std::int64_t> ids(specs.size());
  tk_error err{};
  CHECK(tk_create_tasks(env.core, specs.data(), specs.size(), ids.data(), nullptr, &err)
        == TK_VALIDATION);
  CHECK(std::string(err.message)
        == "task 2 of 3: pipeline test/flow@1: input_schema: $.amount: must be a number (is "
           "string)");
  CHECK(list_tasks(env.core, nullptr).at("tasks").empty());

  specs.erase(specs.begin() + 1);
  REQUIRE(tk_create_tasks(env.core, specs.data(), specs.size(), ids.data(), nullptr, &err)
          == TK_OK);
  CHECK(list_tasks(env.core, nullptr).at("tasks").size() == 2);
}

TEST_CASE_TEMPLATE("an input_schema is part of the definition and a bad one is refused"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  SUBCASE("$ref is refused at registration, naming the schema path") {
    const auto message = rejected_message(
        env.core,
        schema_pipeline({{"properties", {{"customer", {{"$ref", "#/definitions/customer"}}}}}}),
        TK_VALIDATION);
    CHECK(message
          == "pipeline test/flow@1: input_schema.properties.customer.$ref: \"$ref\" is not "
             "supported: write the schema it refers to in its place");
  }
  SUBCASE("an invalid schema is refused") {
    const auto message = rejected_message(env.core, schema_pipeline({{"type", 5}}), TK_VALIDATION);
    CHECK(message
          == "pipeline test/flow@1: input_schema.type: must be a type name or a list of them, "
             "not 5");
  }
  SUBCASE("the same schema again is a no-op, another one a conflict") {
    register_pipeline(env.core, schema_pipeline(order_schema));
    register_pipeline(env.core, schema_pipeline(order_schema));
    rejected_message(env.core, schema_pipeline({{"type", "object"}}), TK_CONFLICT);
    rejected_message(env.core, pipeline_json("test", "flow", {{"a"}}), TK_CONFLICT);
  }
  SUBCASE("a boolean schema: true accepts every context, false none") {
    register_pipeline(env.core, schema_pipeline(true));
    create_task(env.core, with_context({{"anything", 1}}));
    json p = json::parse(schema_pipeline(false));
    p["name"] = "closed";
    register_pipeline(env.core, p.dump());
    task_args closed;
    closed.name = "closed";
    tk_error err{};
    std::int64_t id = 0;
    CHECK(try_create_task(env.core, closed, id, nullptr, err) == TK_VALIDATION);
    CHECK(std::string(err.message) == "pipeline test/closed@1: input_schema: $: is not allowed");
  }
}

#ifndef TASKER_CONFORMANCE_PG
TEST_CASE("a pipeline registered by another process checks contexts the same way (SQLite)"
          * doctest::timeout(30)) {
  store_env<sqlite_store> env;
  register_pipeline(env.core, schema_pipeline(order_schema));
  // A second core on the same file reads the definition back from the store.
  auto other = open_core(sqlite_store::url(env.dir));
  tk_error err{};
  std::int64_t id = 0;
  CHECK(try_create_task(other, with_context({{"customer", ""}, {"amount", 1}}), id, nullptr, err)
        == TK_VALIDATION);
  CHECK(std::string(err.message)
        == "pipeline test/flow@1: input_schema: $.customer: must be at least 1 characters long "
           "(is 0)");
  create_task(other, with_context({{"customer", "c"}, {"amount", 1}}));
}
#endif
