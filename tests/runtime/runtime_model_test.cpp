// The runtime model without an actor system: pipelines built in code and
// loaded from Tasker YAML, their validation and core JSON, the step context
// handlers read, and the step results they return.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <tasker/core.h>
#include <tasker/runtime/pipeline.hpp>
#include <tasker/runtime/step_context.hpp>
#include <tasker/runtime/step_result.hpp>
#include <tasker/test/core.hpp>

using namespace std::chrono_literals;
using tasker::json;

namespace {

const std::filesystem::path templates_dir = TASKER_TEMPLATES_DIR;

/// True when `text` contains `part`; on failure doctest prints both.
bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// The message validate() gives, all problems joined, for CHECK(contains(…)).
std::string problems_of(const tasker::pipeline& p) {
  std::string all;
  for (const auto& problem : p.validate())
    all += problem + "\n";
  return all;
}

/// The message of the pipeline_error parsing `yaml` throws ("" when none).
std::string yaml_error(const std::string& yaml, const char* origin = "t.yaml") {
  try {
    tasker::parse_pipeline_yaml(yaml, origin);
  } catch (const tasker::pipeline_error& e) {
    return e.what();
  }
  return "";
}

/// The message of the step_input_error `f` throws ("" when none).
template <class F>
std::string input_error(F&& f) {
  try {
    f();
  } catch (const tasker::step_input_error& e) {
    return e.what();
  }
  return "";
}

using tasker::test::temp_dir;

/// A template with one step `s` whose extra YAML lines are `step_lines`.
std::string one_step(const std::string& step_lines) {
  return "name: p\nnamespace_name: ns\nversion: '1'\nsteps:\n"
         "  - name: s\n    handler: {callable: h}\n"
         + step_lines;
}

/// A template with one step `s` whose handler is `handler` (YAML).
std::string one_handler(const std::string& handler) {
  return "name: p\nnamespace_name: ns\nversion: '1'\nsteps:\n  - name: s\n    handler: " + handler
         + "\n";
}

/// An event as the poller would fill it.
tasker::step_event make_event(std::string context = "{}", std::string config = "{}",
                              std::string dependencies = "{}") {
  tasker::step_event e;
  e.task_id = 7;
  e.step_id = 42;
  e.namespace_name = "ns";
  e.step_name = "s3";
  e.handler = "h";
  e.task_context = std::move(context);
  e.handler_config = std::move(config);
  e.dependency_results = std::move(dependencies);
  e.attempt = 1;
  e.max_attempts = 3;
  return e;
}

}  // namespace

// ---- pipelines built in code ---------------------------------------------

TEST_CASE("a pipeline built in code serialises to exactly the core's JSON" * doctest::timeout(10)) {
  tasker::retry_policy policy;
  policy.max_attempts = 5;
  policy.backoff = "linear";
  policy.base = 250ms;
  policy.cap = 4s;
  policy.jitter = 0.0;
  policy.retryable = false;
  tasker::pipeline p("shop", "orders", "2.1");
  p.step("validate", "validate_order")
      .step("reserve", "reserve_inventory", tasker::after("validate").with_config({{"rate", 3}}))
      .step("pay", "process_payment",
            tasker::after("validate", "reserve").retry(policy).timeout(30s));

  CHECK(p.validate().empty());
  CHECK_NOTHROW(p.check());
  REQUIRE(p.find("pay") != nullptr);
  CHECK(p.find("pay")->handler == "process_payment");
  CHECK(p.find("nope") == nullptr);

  const json doc = json::parse(p.to_core_json());
  CHECK(doc.size() == 4);
  CHECK(doc["namespace"] == "shop");
  CHECK(doc["name"] == "orders");
  CHECK(doc["version"] == "2.1");
  REQUIRE(doc["steps"].size() == 3);

  const json& validate = doc["steps"][0];
  CHECK(validate
        == json{{"name", "validate"},
                {"handler", "validate_order"},
                {"config", json::object()},
                {"dependencies", json::array()},
                {"timeout_ms", 0}});
  const json& reserve = doc["steps"][1];
  CHECK(reserve["config"] == json{{"rate", 3}});
  CHECK(reserve["dependencies"] == json{"validate"});
  CHECK_FALSE(reserve.contains("retry"));

  const json& pay = doc["steps"][2];
  CHECK(pay["dependencies"] == json{"validate", "reserve"});
  CHECK(pay["timeout_ms"] == 30000);
  CHECK(pay["retry"]
        == json{{"max_attempts", 5},
                {"backoff", "linear"},
                {"base_ms", 250},
                {"cap_ms", 4000},
                {"jitter", 0.0},
                {"retryable", false}});
}

TEST_CASE("the core accepts a pipeline built in code" * doctest::timeout(10)) {
  tasker::pipeline p("shop", "orders", "1");
  p.step("a", "h").step("b", "h", tasker::after("a").retry({}).timeout(1500ms));
  auto core = tasker::test::open_core("memory:");
  tk_error err{};
  CHECK_MESSAGE(tk_register_pipeline(core, p.to_core_json().c_str(), &err) == TK_OK, err.message);
}

TEST_CASE("empty namespace, name and version are each reported" * doctest::timeout(10)) {
  tasker::pipeline p("", "", "");
  p.step("a", "h");
  const auto problems = p.validate();
  REQUIRE(problems.size() == 3);
  CHECK(contains(problems[0], "namespace is empty"));
  CHECK(contains(problems[1], "name is empty"));
  CHECK(contains(problems[2], "version is empty"));
}

TEST_CASE("a pipeline without steps is invalid" * doctest::timeout(10)) {
  tasker::pipeline p("ns", "p", "1");
  CHECK(contains(problems_of(p), "pipeline ns/p@1: has no steps"));
  CHECK_THROWS_AS(p.to_core_json(), tasker::pipeline_error);
}

TEST_CASE("a step with an empty name or handler is reported by position or name"
          * doctest::timeout(10)) {
  tasker::pipeline p("ns", "p", "1");
  p.step("", "h").step("b", "");
  const auto problems = p.validate();
  REQUIRE(problems.size() == 2);
  CHECK(problems[0] == "pipeline ns/p@1 step #1: name is empty");
  CHECK(problems[1] == "pipeline ns/p@1 step \"b\": handler is empty");
}

TEST_CASE("a duplicate step name is reported at its second declaration" * doctest::timeout(10)) {
  tasker::pipeline p("ns", "p", "1");
  p.step("a", "h").step("b", "h").step("a", "h");
  const auto problems = p.validate();
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] == "pipeline ns/p@1 step \"a\": duplicate step name (also step #1)");
}

TEST_CASE("an unknown dependency is reported naming the step and the dependency"
          * doctest::timeout(10)) {
  tasker::pipeline p("ns", "p", "1");
  p.step("a", "h").step("b", "h", tasker::after("a", "ghost"));
  const auto problems = p.validate();
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] == "pipeline ns/p@1 step \"b\": unknown dependency \"ghost\"");
}

TEST_CASE("a dependency listed twice is reported once" * doctest::timeout(10)) {
  tasker::pipeline p("ns", "p", "1");
  p.step("a", "h").step("b", "h", tasker::after("a", "a", "a"));
  const auto problems = p.validate();
  REQUIRE(problems.size() == 2);  // the second and the third mention
  CHECK(problems[0] == "pipeline ns/p@1 step \"b\": dependency \"a\" is listed twice");
}

TEST_CASE("a step that depends on itself is reported, not as a cycle" * doctest::timeout(10)) {
  tasker::pipeline p("ns", "p", "1");
  p.step("a", "h", tasker::after("a"));
  const auto problems = p.validate();
  REQUIRE(problems.size() == 1);
  CHECK(problems[0] == "pipeline ns/p@1 step \"a\": depends on itself");
}

TEST_CASE("a dependency cycle is reported once, naming a step on it and the path"
          * doctest::timeout(10)) {
  // root <- a <- c <- b <- a is a cycle; d hangs below it and is not on it.
  tasker::pipeline p("ns", "p", "1");
  p.step("root", "h")
      .step("a", "h", tasker::after("root", "b"))
      .step("b", "h", tasker::after("c"))
      .step("c", "h", tasker::after("a"))
      .step("d", "h", tasker::after("c"));
  const auto problems = p.validate();
  REQUIRE(problems.size() == 1);
  CHECK(problems[0]
        == "pipeline ns/p@1 step \"a\": is on a dependency cycle: a -> b -> c -> a "
           "(each step depends on the next)");
}

TEST_CASE("two separate cycles are two problems" * doctest::timeout(10)) {
  tasker::pipeline p("ns", "p", "1");
  p.step("a", "h", tasker::after("b"))
      .step("b", "h", tasker::after("a"))
      .step("x", "h", tasker::after("y"))
      .step("y", "h", tasker::after("x"));
  const auto problems = p.validate();
  REQUIRE(problems.size() == 2);
  CHECK(contains(problems[0], "step \"a\": is on a dependency cycle: a -> b -> a"));
  CHECK(contains(problems[1], "step \"x\": is on a dependency cycle: x -> y -> x"));
}

TEST_CASE("a long chain validates without deep recursion" * doctest::timeout(10)) {
  tasker::pipeline p("ns", "chain", "1");
  p.step("s0", "h");
  for (int i = 1; i < 10000; ++i)
    p.step("s" + std::to_string(i), "h", tasker::after("s" + std::to_string(i - 1)));
  CHECK(p.validate().empty());
  // Closing it into a ring makes every step part of one cycle: still one problem.
  tasker::pipeline ring("ns", "ring", "1");
  ring.step("s0", "h", tasker::after("s9999"));
  for (int i = 1; i < 10000; ++i)
    ring.step("s" + std::to_string(i), "h", tasker::after("s" + std::to_string(i - 1)));
  const auto problems = ring.validate();
  REQUIRE(problems.size() == 1);
  CHECK(contains(problems[0], "step \"s0\": is on a dependency cycle: s0 -> s9999 -> s9998"));
}

TEST_CASE("out-of-range retry and timeout values are reported, each naming the step"
          * doctest::timeout(10)) {
  auto with = [](auto change) {
    tasker::retry_policy r;
    change(r);
    tasker::pipeline p("ns", "p", "1");
    p.step("s", "h", tasker::step_options{}.retry(r));
    return problems_of(p);
  };
  const std::string at = "pipeline ns/p@1 step \"s\": ";
  CHECK(with([](auto&) {}).empty());
  CHECK(contains(with([](auto& r) { r.max_attempts = 0; }),
                 at + "retry max_attempts is 0, must be 1 to 1000"));
  CHECK(contains(with([](auto& r) { r.max_attempts = 1001; }), at + "retry max_attempts is 1001"));
  CHECK(with([](auto& r) { r.max_attempts = 1000; }).empty());
  CHECK(with([](auto& r) { r.backoff = "fibonacci"; }).empty());
  CHECK(contains(with([](auto& r) { r.backoff = "golden"; }),
                 at
                     + "retry backoff is \"golden\", must be \"none\", \"linear\", "
                       "\"exponential\" or \"fibonacci\""));
  CHECK(contains(with([](auto& r) { r.base = -1ms; }), at + "retry base is -1 ms"));
  CHECK(contains(with([](auto& r) { r.cap = -1ms; }), at + "retry cap is -1 ms"));
  CHECK(contains(with([](auto& r) { r.jitter = 1.5; }), at + "retry jitter is 1.5"));
  CHECK(contains(with([](auto& r) { r.jitter = -0.1; }), at + "retry jitter is"));
  CHECK(contains(with([](auto& r) { r.jitter = std::nan(""); }), at + "retry jitter is"));
  CHECK(with([](auto& r) {
          r.jitter = 1.0;
          r.base = 0ms;
          r.cap = 0ms;
        }).empty());

  tasker::pipeline p("ns", "p", "1");
  p.step("s", "h", tasker::step_options{}.timeout(-5ms));
  CHECK(contains(problems_of(p), at + "timeout is -5 ms"));
}

TEST_CASE("a config that is not a JSON object is reported" * doctest::timeout(10)) {
  tasker::pipeline p("ns", "p", "1");
  p.step("s", "h", tasker::step_options{}.with_config(json::array({1, 2})));
  CHECK(contains(problems_of(p), "step \"s\": config must be a JSON object, not array"));
}

TEST_CASE("check() throws every problem at once" * doctest::timeout(10)) {
  tasker::pipeline p("ns", "p", "1");
  p.step("a", "").step("b", "h", tasker::after("zz"));
  try {
    p.check();
    FAIL("check() did not throw");
  } catch (const tasker::pipeline_error& e) {
    CHECK(std::string(e.what())
          == "pipeline ns/p@1 step \"a\": handler is empty\n"
             "pipeline ns/p@1 step \"b\": unknown dependency \"zz\"");
  }
}

// ---- the step context -----------------------------------------------------

TEST_CASE("a step context exposes the event and its place in the retries" * doctest::timeout(10)) {
  auto e = make_event();
  tasker::step_context ctx(e);
  CHECK(ctx.task_id() == 7);
  CHECK(ctx.step_id() == 42);
  CHECK(ctx.step_name() == "s3");
  CHECK(ctx.handler_name() == "h");
  CHECK(ctx.namespace_name() == "ns");
  CHECK(&ctx.event() == &e);
  CHECK(ctx.attempt() == 1);
  CHECK(ctx.max_attempts() == 3);
  CHECK_FALSE(ctx.is_retry());
  CHECK_FALSE(ctx.is_last_retry());
  e.attempt = 2;
  CHECK(ctx.is_retry());
  CHECK_FALSE(ctx.is_last_retry());
  e.attempt = 3;
  CHECK(ctx.is_retry());
  CHECK(ctx.is_last_retry());
  e.attempt = 1;
  e.max_attempts = 1;  // a single attempt is the first and the last
  CHECK_FALSE(ctx.is_retry());
  CHECK(ctx.is_last_retry());
}

TEST_CASE("typed inputs come back as the requested type" * doctest::timeout(10)) {
  const auto e = make_event(R"({"n": 6, "neg": -3, "big": 18446744073709551615, "x": 2.5,
                                "name": "six", "on": true, "list": [1, 2], "nothing": null})");
  tasker::step_context ctx(e);
  CHECK(ctx.input<int>("n") == 6);
  CHECK(ctx.input<std::int64_t>("neg") == -3);
  CHECK(ctx.input<std::uint64_t>("big") == std::numeric_limits<std::uint64_t>::max());
  CHECK(ctx.input<double>("x") == 2.5);
  CHECK(ctx.input<double>("n") == 6.0);  // a floating-point T takes any number
  CHECK(ctx.input<float>("x") == 2.5f);
  CHECK(ctx.input<std::string>("name") == "six");
  CHECK(ctx.input<bool>("on") == true);
  CHECK(ctx.input<json>("list") == json{1, 2});
  CHECK(ctx.input<json>("nothing").is_null());
  CHECK(ctx.input<std::vector<int>>("list") == std::vector<int>{1, 2});  // via from_json
  CHECK(ctx.context().size() == 8);
}

TEST_CASE("an integer input rejects fractions, strings, booleans and out-of-range values"
          * doctest::timeout(10)) {
  const auto e = make_event(R"({"f": 3.5, "whole": 3.0, "s": "3", "b": true, "big": 300,
                                "neg": -1, "huge": 18446744073709551615, "nothing": null})");
  tasker::step_context ctx(e);
  CHECK(input_error([&] { ctx.input<int>("f"); })
        == "input \"f\" is a floating-point number (3.5), expected an integer");
  CHECK(input_error([&] { ctx.input<int>("whole"); })
        == "input \"whole\" is a floating-point number (3.0), expected an integer");
  CHECK(input_error([&] { ctx.input<int>("s"); })
        == "input \"s\" is a string, expected an integer");
  CHECK(input_error([&] { ctx.input<int>("b"); })
        == "input \"b\" is a boolean, expected an integer");
  CHECK(input_error([&] { ctx.input<int>("nothing"); })
        == "input \"nothing\" is null, expected an integer");
  CHECK(input_error([&] { ctx.input<std::int8_t>("big"); })
        == "input \"big\" is 300, out of range for the requested integer type (-128 to 127)");
  CHECK(input_error([&] { ctx.input<unsigned>("neg"); })
        == "input \"neg\" is -1, out of range for the requested integer type (0 to 4294967295)");
  CHECK(contains(input_error([&] { ctx.input<std::int64_t>("huge"); }), "out of range"));
  CHECK(ctx.input<std::int16_t>("big") == 300);
  CHECK(contains(input_error([&] { ctx.input<std::uint8_t>("big"); }), "(0 to 255)"));
}

TEST_CASE("string and boolean inputs are strict about their type" * doctest::timeout(10)) {
  const auto e = make_event(R"({"n": 1, "s": "true", "o": {"a": 1}, "l": []})");
  tasker::step_context ctx(e);
  CHECK(input_error([&] { ctx.input<std::string>("n"); })
        == "input \"n\" is an integer, expected a string");
  CHECK(input_error([&] { ctx.input<bool>("s"); })
        == "input \"s\" is a string, expected a boolean");
  CHECK(input_error([&] { ctx.input<bool>("n"); })
        == "input \"n\" is an integer, expected a boolean");
  CHECK(input_error([&] { ctx.input<double>("o"); })
        == "input \"o\" is an object, expected a number");
  CHECK(input_error([&] { ctx.input<std::string>("l"); })
        == "input \"l\" is an array, expected a string");
}

TEST_CASE("a missing input names the key and what is there" * doctest::timeout(10)) {
  const auto e = make_event(R"({"a": 1, "b": 2})");
  tasker::step_context ctx(e);
  CHECK(input_error([&] { ctx.input<int>("even_number"); })
        == "input \"even_number\" is missing (present: a, b)");
  const auto empty = make_event();
  tasker::step_context none(empty);
  CHECK(input_error([&] { none.input<int>("n"); }) == "input \"n\" is missing (there are none)");
}

TEST_CASE("input_or falls back only when the input is absent or null" * doctest::timeout(10)) {
  const auto e = make_event(R"({"n": 4, "s": "x", "nothing": null})");
  tasker::step_context ctx(e);
  CHECK(ctx.input_or("n", 9) == 4);
  CHECK(ctx.input_or("absent", 9) == 9);
  CHECK(ctx.input_or("nothing", 9) == 9);
  CHECK(ctx.input_or("s", "fallback") == "x");
  CHECK(ctx.input_or("absent", "fallback") == "fallback");
  CHECK(ctx.input_or<std::string>("absent", "y") == "y");
  CHECK(input_error([&] { ctx.input_or("s", 1); })
        == "input \"s\" is a string, expected an integer");
}

TEST_CASE("config accessors read the handler's initialization" * doctest::timeout(10)) {
  const auto e = make_event("{}", R"({"rate": 3, "mode": "fast", "sources": ["s1", "s2"]})");
  tasker::step_context ctx(e);
  CHECK(ctx.config<int>("rate") == 3);
  CHECK(ctx.config<std::string>("mode") == "fast");
  CHECK(ctx.config<json>("sources") == json{"s1", "s2"});
  CHECK(ctx.config_or("absent", 1.5) == 1.5);
  CHECK(ctx.config_or("absent", "slow") == "slow");
  CHECK(input_error([&] { ctx.config<int>("mode"); })
        == "config \"mode\" is a string, expected an integer");
  CHECK(input_error([&] { ctx.config<int>("limit"); })
        == "config \"limit\" is missing (present: mode, rate, sources)");
}

TEST_CASE("malformed event JSON raises step_input_error when first read" * doctest::timeout(10)) {
  const auto bad_context = make_event("{\"n\": ");
  tasker::step_context c1(bad_context);
  CHECK(contains(input_error([&] { c1.input<int>("n"); }), "the task context is not valid JSON"));

  const auto bad_config = make_event("{}", "[1, 2]");
  tasker::step_context c2(bad_config);
  CHECK(input_error([&] { c2.config(); }) == "the handler config is array, expected a JSON object");
  CHECK(c2.context().empty());  // the other parts are unaffected

  const auto bad_deps = make_event("{}", "{}", "not json");
  tasker::step_context c3(bad_deps);
  CHECK(contains(input_error([&] { c3.dependency_result("s1"); }),
                 "the dependency results is not valid JSON"));
  CHECK(contains(input_error([&] { c3.dependency_field("s1", "value"); }), "not valid JSON"));

  const auto null_config = make_event("{}", "null");
  tasker::step_context c4(null_config);
  CHECK(c4.config() == json::object());
}

TEST_CASE("dependency_result returns an ancestor's result or names the ancestors"
          * doctest::timeout(10)) {
  const auto e = make_event("{}", "{}", R"({"s1": {"value": 36}, "s2": {"value": 1296}})");
  tasker::step_context ctx(e);
  CHECK(ctx.dependency_result("s1") == json{{"value", 36}});
  CHECK(ctx.dependency_results().size() == 2);
  CHECK(input_error([&] { ctx.dependency_result("s9"); })
        == "no dependency result for step \"s9\": the ancestors of step \"s3\" are s1, s2");
  const auto root = make_event();
  tasker::step_context first(root);
  CHECK(input_error([&] { first.dependency_result("s1"); })
        == "no dependency result for step \"s1\": step \"s3\" has no ancestors");
}

TEST_CASE("dependency_field follows keys and indexes and is null when anything is absent"
          * doctest::timeout(10)) {
  const auto e = make_event(
      "{}", "{}",
      R"({"fetch": {"orders": [{"id": 1, "lines": [{"sku": "a"}, {"sku": "b"}]}], "count": 1},
        "flag": true})");
  tasker::step_context ctx(e);
  const std::string orders = "orders";
  CHECK(ctx.dependency_field("fetch", "count") == 1);
  CHECK(ctx.dependency_field("fetch", orders, 0, "id") == 1);
  CHECK(ctx.dependency_field("fetch", "orders", 0, "lines", 1, "sku") == "b");
  CHECK(
      ctx.dependency_field("fetch", std::string_view("orders"), std::size_t{0}, "lines", 1L, "sku")
      == "b");
  CHECK(ctx.dependency_field("fetch") == ctx.dependency_result("fetch"));
  CHECK(ctx.dependency_field("flag") == true);
  CHECK(ctx.dependency_field("fetch", "orders", 5).is_null());     // index past the end
  CHECK(ctx.dependency_field("fetch", "orders", -1).is_null());    // negative index
  CHECK(ctx.dependency_field("fetch", "orders", "id").is_null());  // key into an array
  CHECK(ctx.dependency_field("fetch", "count", 0).is_null());      // index into a number
  CHECK(ctx.dependency_field("fetch", "missing", "deeper").is_null());
  CHECK(ctx.dependency_field("nobody", "x").is_null());  // not an ancestor: null
}

TEST_CASE("all_dependency_results keeps the ancestors whose name has the prefix"
          * doctest::timeout(10)) {
  const auto e = make_event(
      "{}", "{}", R"({"batch_001": 1, "batch_002": 2, "analyze": 0, "batch": 9, "xbatch_1": 5})");
  tasker::step_context ctx(e);
  CHECK(ctx.all_dependency_results("batch_") == json{{"batch_001", 1}, {"batch_002", 2}});
  CHECK(ctx.all_dependency_results("batch").size() == 3);
  CHECK(ctx.all_dependency_results().size() == 5);
  CHECK(ctx.all_dependency_results("zzz").empty());
  CHECK(ctx.all_dependency_results("zzz").is_object());
}

// ---- step results ---------------------------------------------------------

TEST_CASE("success and failure build the step result the core expects" * doctest::timeout(10)) {
  const auto ok = tasker::success({{"value", 36}});
  CHECK(ok.kind == tasker::step_kind::success);
  CHECK(json::parse(ok.result_json) == json{{"value", 36}});
  CHECK(tasker::success().result_json == "{}");
  CHECK(tasker::success(nullptr).result_json == "null");

  const auto raw = tasker::success_raw(R"({"already":"text"})");
  CHECK(raw.kind == tasker::step_kind::success);
  CHECK(raw.result_json == R"({"already":"text"})");

  const auto plain = tasker::failure("boom");
  CHECK(plain.kind == tasker::step_kind::failure);
  CHECK(plain.error_message == "boom");
  CHECK(plain.error_type == "handler_error");
  CHECK(plain.retryable);
  CHECK(plain.retry_after_ms == 0);

  const auto later = tasker::failure("slow down", "retryable_error", true, 2s);
  CHECK(later.error_type == "retryable_error");
  CHECK(later.retry_after_ms == 2000);
  const auto permanent = tasker::failure("declined", "permanent_error", false, -5ms);
  CHECK_FALSE(permanent.retryable);
  CHECK(permanent.retry_after_ms == 0);  // a negative hint is no hint

  const auto parked = tasker::wait_for("approval", 5s);
  CHECK(parked.kind == tasker::step_kind::wait);
  CHECK(parked.wait_signal == "approval");
  CHECK(parked.wait_timeout_ms == 5000);
}

TEST_CASE("the runtime's own failures are one enum with names and retry rules"
          * doctest::timeout(10)) {
  using tasker::step_error;
  CHECK(tasker::to_string(step_error::handler_error) == "handler_error");
  CHECK(tasker::to_string(step_error::handler_timeout) == "handler_timeout");
  CHECK(tasker::to_string(step_error::handler_not_found) == "handler_not_found");
  CHECK(tasker::to_string(step_error::malformed_result) == "malformed_result");
  CHECK(tasker::to_string(step_error::validation_error) == "validation_error");
  const auto timeout = tasker::failure(step_error::handler_timeout, "late");
  CHECK(timeout.kind == tasker::step_kind::failure);
  CHECK(timeout.error_type == "handler_timeout");
  CHECK(timeout.retryable);
  const auto missing = tasker::failure(step_error::handler_not_found, "who?");
  CHECK(missing.error_type == "handler_not_found");
  CHECK_FALSE(missing.retryable);
}

// ---- YAML templates -------------------------------------------------------

TEST_CASE("the linear template loads as a four-step chain with retry and timeout"
          * doctest::timeout(10)) {
  const auto p = tasker::load_pipeline_yaml(templates_dir / "linear_math.yaml");
  CHECK(p.namespace_name() == "examples");
  CHECK(p.name() == "linear_math");
  CHECK(p.version() == "1.0.0");
  REQUIRE(p.steps().size() == 4);
  const char* names[] = {"s1", "s2", "s3", "s4"};
  for (std::size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(p.steps()[i].name == names[i]);
    CHECK(p.steps()[i].handler == "square");
    if (i == 0)
      CHECK(p.steps()[i].options.dependencies.empty());
    else
      CHECK(p.steps()[i].options.dependencies == std::vector<std::string>{names[i - 1]});
  }
  const auto& s2 = p.steps()[1].options;
  CHECK(s2.config == json{{"previous", "s1"}});
  REQUIRE(s2.retry_settings.has_value());
  CHECK(s2.retry_settings->retryable);
  CHECK(s2.retry_settings->max_attempts == 3);
  CHECK(s2.retry_settings->backoff == "exponential");
  CHECK(s2.retry_settings->base == 100ms);
  CHECK(s2.retry_settings->cap == 2000ms);
  CHECK(s2.retry_settings->jitter == doctest::Approx(0.15));
  CHECK(s2.time_limit == 5s);
  CHECK_FALSE(p.steps()[0].options.retry_settings.has_value());
  CHECK(p.steps()[0].options.config == json::object());
  CHECK(p.steps()[0].options.time_limit == 0ms);
}

TEST_CASE("the diamond template declares its dependencies with depends_on" * doctest::timeout(10)) {
  const auto p = tasker::load_pipeline_yaml(templates_dir / "diamond_math.yaml");
  CHECK(p.name() == "diamond_math");
  REQUIRE(p.find("end") != nullptr);
  CHECK(p.find("end")->options.dependencies == std::vector<std::string>{"b", "c"});
  CHECK(p.find("b")->options.dependencies == std::vector<std::string>{"start"});
  CHECK(p.find("end")->handler == "square");
  CHECK(p.find("end")->options.config == json{{"sources", {"b", "c"}}});
  CHECK(p.find("b")->options.config == json{{"previous", "start"}});
}

TEST_CASE("retry defaults follow Tasker when a field is left out" * doctest::timeout(10)) {
  const auto p = tasker::parse_pipeline_yaml(one_step("    retry: {max_attempts: 2}\n"));
  const auto& r = p.steps()[0].options.retry_settings;
  REQUIRE(r.has_value());
  CHECK(r->max_attempts == 2);
  CHECK(r->retryable);
  CHECK(r->backoff == "exponential");
  CHECK(r->base == 1000ms);
  CHECK(r->cap == 30000ms);
  CHECK(r->jitter == doctest::Approx(0.15));
  const auto q = tasker::parse_pipeline_yaml(one_step("    retry:\n"));
  CHECK(q.steps()[0].options.retry_settings.has_value());
}

TEST_CASE("initialization keeps the types YAML gives its scalars" * doctest::timeout(10)) {
  const auto p = tasker::parse_pipeline_yaml(one_handler(R"(
      callable: h
      initialization:
        int: 42
        negative: -7
        plus: +5
        hex: 0x1F
        octal: 0o17
        big: 18446744073709551615
        float: 2.5
        exponent: 1e3
        dot: .5
        yes_bool: true
        no_bool: False
        quoted_int: "42"
        single_quoted: 'true'
        word: hello
        yes_word: yes
        version_like: 1.2.3
        tilde: ~
        empty:
        null_word: null
        str_tag: !!str 17
        list: [1, two, 3.0, [false]]
        nested: {a: {b: [x, {c: 1}]}}
        block: |
          two
          lines
)"));
  const json& c = p.steps()[0].options.config;
  CHECK(c["int"] == 42);
  CHECK(c["int"].is_number_integer());
  CHECK(c["negative"] == -7);
  CHECK(c["plus"] == 5);
  CHECK(c["hex"] == 31);
  CHECK(c["octal"] == 15);
  CHECK(c["big"] == std::numeric_limits<std::uint64_t>::max());
  CHECK(c["float"] == 2.5);
  CHECK(c["float"].is_number_float());
  CHECK(c["exponent"] == 1000.0);
  CHECK(c["exponent"].is_number_float());
  CHECK(c["dot"] == 0.5);
  CHECK(c["yes_bool"] == true);
  CHECK(c["no_bool"] == false);
  CHECK(c["quoted_int"] == "42");
  CHECK(c["single_quoted"] == "true");
  CHECK(c["word"] == "hello");
  CHECK(c["yes_word"] == "yes");  // YAML 1.2: only true/false are booleans
  CHECK(c["version_like"] == "1.2.3");
  CHECK(c["tilde"].is_null());
  CHECK(c["empty"].is_null());
  CHECK(c["null_word"].is_null());
  CHECK(c["str_tag"] == "17");
  CHECK(c["list"] == json{1, "two", 3.0, {false}});
  CHECK(c["nested"] == json::parse(R"({"a": {"b": ["x", {"c": 1}]}})"));
  CHECK(c["block"] == "two\nlines\n");
}

TEST_CASE("top-level scalars are kept as written" * doctest::timeout(10)) {
  const auto p = tasker::parse_pipeline_yaml(
      "name: 123\nnamespace_name: ns\nversion: 1.0\ndescription: d\nmetadata: {owner: me}\n"
      "steps:\n  - {name: 1, handler: {callable: h, method: call}, description: first}\n");
  CHECK(p.name() == "123");
  CHECK(p.version() == "1.0");
  CHECK(p.steps()[0].name == "1");
}

TEST_CASE("fractional timeout_seconds become milliseconds" * doctest::timeout(10)) {
  CHECK(tasker::parse_pipeline_yaml(one_step("    timeout_seconds: 1.5\n"))
            .steps()[0]
            .options.time_limit
        == 1500ms);
  CHECK(tasker::parse_pipeline_yaml(one_step("    timeout_seconds: 0\n"))
            .steps()[0]
            .options.time_limit
        == 0ms);
  CHECK(tasker::parse_pipeline_yaml(one_step("    timeout_seconds: 0.0004\n"))
            .steps()[0]
            .options.time_limit
        == 0ms);
}

TEST_CASE("a standard step type is accepted" * doctest::timeout(10)) {
  CHECK(yaml_error(one_step("    type: standard\n")).empty());
}

TEST_CASE("dependencies and depends_on together are rejected" * doctest::timeout(10)) {
  const std::string yaml = "name: p\nnamespace_name: ns\nversion: '1'\nsteps:\n"
                           "  - {name: a, handler: {callable: h}}\n"
                           "  - name: b\n    handler: {callable: h}\n"
                           "    dependencies: [a]\n    depends_on: [a]\n";
  CHECK(yaml_error(yaml)
        == "t.yaml:9:5: pipeline ns/p@1 step \"b\": \"dependencies\" and its alias "
           "\"depends_on\" are both given");
}

TEST_CASE("step types load, and what each needs of the graph is checked at its step"
          * doctest::timeout(10)) {
  const std::pair<const char*, const char*> alone[] = {
      {"deferred_convergence", "a deferred_convergence step needs dependencies"},
      {"batchable", "a batchable step needs a batch_worker step that depends on it"},
      {"batch_worker", "a batch_worker must depend on exactly one step, a batchable one"}};
  for (const auto& [type, problem] : alone) {
    CAPTURE(type);
    CHECK(yaml_error(one_step(std::string("    type: ") + type + "\n"))
          == std::string("t.yaml:5:5: pipeline ns/p@1 step \"s\": ") + problem);
  }
  CHECK_NOTHROW(tasker::parse_pipeline_yaml(one_step("    type: decision\n"), "t.yaml"));
  CHECK(contains(yaml_error(one_step("    type: magic\n")),
                 "step \"s\": type: must be standard, decision"));
  CHECK(contains(yaml_error(one_step("    batch_config: [1]\n")),
                 "t.yaml:7:19: pipeline ns/p@1 step \"s\": batch_config: must be a mapping"));

  const auto p = tasker::parse_pipeline_yaml(R"(name: p
namespace_name: ns
version: '1'
steps:
  - {name: plan, type: batchable, handler: {callable: h}}
  - name: work
    type: batch_worker
    dependencies: [plan]
    handler: {callable: h}
    batch_config: {batch_size: 200, failure_strategy: continue_on_failure}
  - {name: sum, type: deferred_convergence, dependencies: [work], handler: {callable: h}}
)",
                                             "t.yaml");
  CHECK(p.find("plan")->options.type == tasker::step_type::batchable);
  CHECK(p.find("work")->options.batch_config.at("batch_size") == 200);
  CHECK(p.find("sum")->options.type == tasker::step_type::deferred_convergence);
  CHECK(contains(yaml_error(R"(name: p
namespace_name: ns
version: '1'
steps:
  - {name: plan, type: batchable, handler: {callable: h}}
  - name: work
    type: batch_worker
    dependencies: [plan]
    handler: {callable: h}
    batch_config: {batch_size: 0, failure_strategy: sometimes}
)"),
                 "batch_config failure_strategy is \"sometimes\""));
}

TEST_CASE("every unsupported or unknown field is rejected with a message" * doctest::timeout(10)) {
  struct example {
    std::string yaml;
    std::string message;
  };
  const std::string head = "name: p\nnamespace_name: ns\nversion: '1'\n";
  const std::string steps = "steps:\n  - {name: s, handler: {callable: h}}\n";
  const std::vector<example> examples = {
      {head + "colour: blue\n" + steps, "t.yaml:4:1: pipeline ns/p@1: unknown field \"colour\""},
      {one_step("    colour: blue\n"),
       "t.yaml:7:5: pipeline ns/p@1 step \"s\": unknown field \"colour\""},
      {one_handler("{callable: h, method: ''}"), "step \"s\": handler.method: is empty"},
      {one_handler("{callable: h, class: X}"), "step \"s\": unknown field \"handler.class\""},
      {one_handler("{initialization: {}}"), "step \"s\": handler.callable: is required"},
      {one_handler("h"), "step \"s\": handler: must be a mapping with a callable"},
      {one_handler("{callable: h, initialization: [1]}"),
       "step \"s\": handler.initialization: must be a mapping"},
      {one_step("    retry: {backoff: quadratic}\n"),
       "t.yaml:7:22: pipeline ns/p@1 step \"s\": retry.backoff: must be none, linear, "
       "exponential or fibonacci"},
      {one_step("    retry: {max_attempts: -1}\n"), "retry.max_attempts: is -1, must be 0 to 1000"},
      {one_step("    retry: {max_attempts: 1001}\n"),
       "retry.max_attempts: is 1001, must be 0 to 1000"},
      {one_step("    retry: {max_attempts: 2.5}\n"), "retry.max_attempts: must be an integer"},
      {one_step("    retry: {max_attempts: '3'}\n"), "retry.max_attempts: must be an integer"},
      {one_step("    retry: {retryable: yes}\n"), "retry.retryable: must be true or false"},
      {one_step("    retry: {backoff_base_ms: -1}\n"),
       "retry.backoff_base_ms: is -1, must be 0 to 86400000 (a day)"},
      {one_step("    retry: {max_backoff_ms: x}\n"), "retry.max_backoff_ms: must be an integer"},
      {one_step("    retry: {jitter: 0.1}\n"), "step \"s\": unknown field \"retry.jitter\""},
      {one_step("    retry: 3\n"), "step \"s\": retry: must be a mapping"},
      {one_step("    timeout_seconds: -1\n"), "timeout_seconds: is -1, must be 0 to 604800"},
      {one_step("    timeout_seconds: '10'\n"), "timeout_seconds: must be a number of seconds"},
      {one_step("    timeout_seconds: 1e12\n"), "timeout_seconds: is 1000000000000.0, must be"},
      {one_step("    dependencies: a\n"), "step \"s\": dependencies: must be a list of step names"},
      {one_step("    depends_on: [[a]]\n"), "step \"s\": depends_on: must be a list of step names"},
      {one_step("    description: [a]\n"), "step \"s\": description: must be a string"},
      {one_handler("{callable: h, initialization: {x: .inf}}"),
       "handler.initialization.x: .inf cannot be represented in JSON"},
      {one_handler("{callable: h, initialization: {x: 99999999999999999999}}"),
       "handler.initialization.x: the integer 99999999999999999999 does not fit in 64 bits"},
      {one_handler("{callable: h, initialization: {x: !custom 1}}"),
       "handler.initialization.x: the tag \"!custom\" is not supported"},
      {head + "steps:\n  - handler: {callable: h}\n",
       "t.yaml:5:5: pipeline ns/p@1 step #1: name: is required"},
      {head + "steps:\n  - {name: s}\n", "step \"s\": handler: is required"},
      {head + "steps:\n  - just a string\n",
       "t.yaml:5:5: pipeline ns/p@1 step #1: must be a mapping"},
      {head, "t.yaml:1:1: pipeline ns/p@1: steps: is required"},
      {head + "steps: []\n", "pipeline ns/p@1: steps: must be a non-empty list"},
      {head + "steps: {a: 1}\n", "pipeline ns/p@1: steps: must be a non-empty list"},
      {"namespace_name: ns\nversion: 1\n" + steps, "t.yaml:1:1: name: is required"},
      {"name: p\nversion: 1\n" + steps, "t.yaml:1:1: pipeline \"p\": namespace_name: is required"},
      {"name: p\nnamespace_name: ns\n" + steps, "pipeline \"p\": version: is required"},
      {"name: p\nnamespace_name: ns\nversion:\n" + steps, "pipeline \"p\": version: is required"},
      {"name: p\nnamespace_name: [ns]\nversion: 1\n" + steps,
       "pipeline \"p\": namespace_name: must be a string"},
      {"name: ''\nnamespace_name: ns\nversion: 1\n" + steps,
       "t.yaml:1:7: pipeline \"\": name: is empty"},
      {"- a\n- b\n", "t.yaml:1:1: a task template must be a mapping"},
      {"", "t.yaml: the template is empty"},
      {head + steps + "---\n" + head + steps, "t.yaml: holds 2 YAML documents"},
  };
  for (const auto& ex : examples) {
    CAPTURE(ex.yaml);
    const std::string message = yaml_error(ex.yaml);
    CAPTURE(message);
    CHECK(contains(message, ex.message));
    CHECK(message.rfind("t.yaml", 0) == 0);  // every message starts with the origin
  }
}

TEST_CASE("duplicate keys are rejected, not silently overwritten" * doctest::timeout(10)) {
  CHECK(yaml_error(one_step("    name: again\n"))
        == "t.yaml:7:5: pipeline ns/p@1 step \"s\": key \"name\" appears twice");
  CHECK(contains(yaml_error(one_handler("{callable: h, initialization: {a: 1, a: 2}}")),
                 "handler.initialization: key \"a\" appears twice"));
}

TEST_CASE("malformed YAML is reported with the file, line and column" * doctest::timeout(10)) {
  const std::string message =
      yaml_error("name: p\nnamespace_name: ns\nsteps:\n  - name: [unclosed\n", "bad.yaml");
  CHECK(message.rfind("bad.yaml:", 0) == 0);
  CHECK(contains(message, "malformed YAML"));
  CHECK(contains(yaml_error("a: b: c\n", "bad.yaml"), "bad.yaml:1:5: malformed YAML"));
}

TEST_CASE("a template's validation problems name the file, pipeline and step"
          * doctest::timeout(10)) {
  const std::string yaml = "name: p\nnamespace_name: ns\nversion: '1'\nsteps:\n"
                           "  - {name: a, handler: {callable: h}, depends_on: [b]}\n"
                           "  - {name: b, handler: {callable: h}, depends_on: [a, ghost]}\n";
  // The core finds these; the loader places each at the step it names.
  CHECK(yaml_error(yaml, "loop.yaml")
        == "loop.yaml:5:5: pipeline ns/p@1 step \"a\": is on a dependency cycle: a -> b -> a "
           "(each step depends on the next)\n"
           "loop.yaml:6:5: pipeline ns/p@1 step \"b\": unknown dependency \"ghost\"");
}

TEST_CASE("a missing template file is reported by name" * doctest::timeout(10)) {
  try {
    tasker::load_pipeline_yaml("/nonexistent/dir/x.yaml");
    FAIL("no exception");
  } catch (const tasker::pipeline_error& e) {
    CHECK(contains(e.what(), "/nonexistent/dir/x.yaml: cannot be read"));
  }
  CHECK_THROWS_AS(tasker::load_pipeline_dir("/nonexistent/dir"), tasker::pipeline_error);
}

TEST_CASE("load_pipeline_dir loads yaml and yml files in name order and skips the rest"
          * doctest::timeout(10)) {
  temp_dir dir;
  auto tmpl = [](const std::string& name) {
    return "name: " + name + "\nnamespace_name: ns\nversion: '1'\n"
           + "steps:\n  - {name: s, handler: {callable: h}}\n";
  };
  dir.write("b.yml", tmpl("second"));
  dir.write("a.yaml", tmpl("first"));
  dir.write("c.yaml", tmpl("third"));
  dir.write("notes.txt", "not: a template");
  dir.write("d.yaml.bak", "{{{");
  dir.write(".hidden.yaml", "{{{");
  std::filesystem::create_directory(dir.path() / "sub.yaml");
  dir.write("sub.yaml/inner.yaml", "{{{");

  const auto pipelines = tasker::load_pipeline_dir(dir.path());
  REQUIRE(pipelines.size() == 3);
  CHECK(pipelines[0].name() == "first");
  CHECK(pipelines[1].name() == "second");
  CHECK(pipelines[2].name() == "third");

  dir.write("e.yaml", tmpl("first"));
  CHECK_THROWS_WITH_AS(tasker::load_pipeline_dir(dir.path()),
                       doctest::Contains("pipeline ns/first@1 is already defined in"),
                       tasker::pipeline_error);
  dir.write("e.yaml", "name: [\n");
  CHECK_THROWS_WITH_AS(tasker::load_pipeline_dir(dir.path()), doctest::Contains("e.yaml:"),
                       tasker::pipeline_error);
}

// ---- with the real core ---------------------------------------------------

TEST_CASE("the core accepts every example template" * doctest::timeout(10)) {
  const auto pipelines = tasker::load_pipeline_dir(templates_dir);
  REQUIRE(pipelines.size() >= 2);
  auto core = tasker::test::open_core("memory:");
  for (const auto& p : pipelines) {
    CAPTURE(p.name());
    tk_error err{};
    CHECK_MESSAGE(tk_register_pipeline(core, p.to_core_json().c_str(), &err) == TK_OK, err.message);
    // Registering the same template again is a no-op, so the JSON is stable.
    CHECK(tk_register_pipeline(core, p.to_core_json().c_str(), &err) == TK_OK);
  }
}

TEST_CASE("the example templates compute 6^16 through the core and step contexts"
          * doctest::timeout(10)) {
  // The handler the templates describe (examples/math.hpp has the exact,
  // big-integer one), written against step_context: it squares the product
  // of the values of `previous` / `sources`, or the input's even_number.
  auto square = [](const tasker::step_context& ctx) {
    auto sources = ctx.config_or<std::vector<std::string>>("sources", {});
    if (const auto previous = ctx.config_or("previous", ""); !previous.empty())
      sources.push_back(previous);
    std::int64_t x = 1;
    if (sources.empty())
      x = ctx.input<std::int64_t>("even_number");
    for (const auto& step : sources)
      x *= ctx.dependency_field(step, "value").get<std::int64_t>();
    return tasker::success({{"value", x * x}});
  };

  for (const char* file : {"linear_math.yaml", "diamond_math.yaml"}) {
    CAPTURE(file);
    const auto p = tasker::load_pipeline_yaml(templates_dir / file);
    auto core = tasker::test::open_core("memory:");
    tk_error err{};
    REQUIRE(tk_register_pipeline(core, p.to_core_json().c_str(), &err) == TK_OK);
    tk_task_spec spec{};
    spec.namespace_name = p.namespace_name().c_str();
    spec.name = p.name().c_str();
    spec.version = p.version().c_str();
    spec.context_json = R"({"even_number": 6})";
    std::int64_t task_id = 0;
    REQUIRE(tk_create_task(core, &spec, &task_id, nullptr, &err) == TK_OK);

    tk_worker_options options{};
    options.name = "model-test";
    tk_worker* worker = tk_worker_open(core, &options, &err);
    REQUIRE(worker != nullptr);
    for (int round = 0; round < 10; ++round) {
      const tk_step_event* events = nullptr;
      std::size_t count = 0;
      REQUIRE(tk_poll(worker, 16, &events, &count, &err) == TK_OK);
      if (count == 0)
        break;
      std::vector<tasker::step_result> answers;
      for (std::size_t i = 0; i < count; ++i) {
        tasker::step_event e;
        e.task_id = events[i].task_id;
        e.step_id = events[i].step_id;
        e.step_name.assign(events[i].step_name, events[i].step_name_len);
        e.handler.assign(events[i].handler, events[i].handler_len);
        e.handler_config.assign(events[i].handler_config, events[i].handler_config_len);
        e.task_context.assign(events[i].task_context, events[i].task_context_len);
        e.dependency_results.assign(events[i].dependency_results, events[i].dependency_results_len);
        e.attempt = events[i].attempt;
        e.max_attempts = events[i].max_attempts;
        const tasker::step_context ctx(e);
        REQUIRE(e.handler == "square");
        answers.push_back(square(ctx));
      }
      std::vector<tk_step_result> results(count);
      for (std::size_t i = 0; i < count; ++i) {
        results[i].step_id = events[i].step_id;
        results[i].fencing_token = events[i].fencing_token;
        results[i].kind = TK_RESULT_SUCCESS;
        results[i].result_json = answers[i].result_json.c_str();
      }
      std::vector<int> outcomes(count);
      REQUIRE(tk_complete(worker, results.data(), count, outcomes.data(), &err) == TK_OK);
      for (int outcome : outcomes)
        CHECK(outcome == TK_OK);
    }
    tk_worker_close(worker);

    char* status = nullptr;
    REQUIRE(tk_task_status(core, task_id, &status, &err) == TK_OK);
    const json doc = json::parse(status);
    tk_free(status);
    CAPTURE(doc.dump());
    CHECK(doc["state"] == "complete");
    std::map<std::string, json> values;
    for (const auto& step : doc["steps"])
      values[step["name"].get<std::string>()] = step["result"]["value"];
    if (p.name() == "linear_math")
      CHECK(values
            == std::map<std::string, json>{
                {"s1", 36}, {"s2", 1296}, {"s3", 1679616}, {"s4", 2821109907456}});
    else
      CHECK(values
            == std::map<std::string, json>{
                {"start", 36}, {"b", 1296}, {"c", 1296}, {"end", 2821109907456}});
  }
}

TEST_CASE("a typed dependency read names the step when the value is missing or of another type"
          * doctest::timeout(10)) {
  tasker::step_event e;
  e.dependency_results = R"({"s1": {"value": 36, "items": [{"sku": "a"}]}, "s2": {"value": "x"}})";
  const tasker::step_context ctx{e};
  CHECK(ctx.dependency<std::int64_t>("s1", "value") == 36);
  CHECK(ctx.dependency<std::string>("s1", "items", 0, "sku") == "a");
  CHECK_THROWS_WITH_AS(ctx.dependency<std::int64_t>("s2", "value"),
                       "the result of step \"s2\" is a string, expected an integer",
                       tasker::step_input_error);
  CHECK_THROWS_WITH_AS(ctx.dependency<std::int64_t>("s1", "missing"),
                       "the result of step \"s1\" has nothing at the requested path",
                       tasker::step_input_error);
  CHECK_THROWS_AS(ctx.dependency<std::int64_t>("s9", "value"), tasker::step_input_error);
}
