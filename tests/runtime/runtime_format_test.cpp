// The rest of Tasker's template format, loaded and turned into pipelines:
// handler.method and handler.resolver, retry delays in seconds and
// fibonacci backoff, lifecycle (accepted, not enforced) and environments
// (pipeline::for_environment). No actor system.
#include <chrono>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <tasker/runtime/pipeline.hpp>

using namespace std::chrono_literals;
using tasker::json;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> problems_of(const std::string& yaml) {
  try {
    tasker::parse_pipeline_yaml(yaml, "t.yaml");
  } catch (const tasker::template_error& e) {
    return e.problems();
  }
  return {};
}

/// The one problem of `yaml` (fails the test when there is not exactly one).
std::string problem_of(const std::string& yaml) {
  const auto problems = problems_of(yaml);
  CAPTURE(yaml);
  REQUIRE(problems.size() == 1);
  return problems[0];
}

const std::string head = "name: p\nnamespace_name: ns\nversion: '1'\n";

std::string one_step(const std::string& step_lines) {
  return head + "steps:\n  - name: s\n    handler: {callable: h}\n" + step_lines;
}

tasker::retry_policy retry_of(const std::string& retry_yaml) {
  const auto p = tasker::parse_pipeline_yaml(one_step("    retry: " + retry_yaml + "\n"));
  REQUIRE(p.steps()[0].options.retry_settings.has_value());
  return *p.steps()[0].options.retry_settings;
}

/// Two steps and two environments, as Tasker's fixtures write them.
const std::string with_environments = head + R"(steps:
  - name: charge
    handler: {callable: payments, initialization: {gateway: live, currency: EUR, limits: {a: 1}}}
    timeout_seconds: 30
    retry: {max_attempts: 5, backoff: linear, backoff_base_ms: 200}
  - name: notify
    handler: {callable: mailer}
    dependencies: [charge]
environments:
  test:
    steps:
      - name: charge
        timeout_seconds: 5
        handler:
          initialization: {gateway: mock, limits: {b: 2}}
        retry: {max_attempts: 1}
      - name: ALL
        handler: {initialization: {debug_mode: true}}
  development:
    steps:
      - name: notify
        timeout_seconds: 60
)";

}  // namespace

TEST_CASE("handler.method names the step's entry point, call when absent" * doctest::timeout(10)) {
  const auto p = tasker::parse_pipeline_yaml(
      head + "steps:\n  - {name: a, handler: {callable: pay, method: refund}}\n"
      + "  - {name: b, handler: {callable: pay, method: call}}\n"
      + "  - {name: c, handler: {callable: pay, method: null}}\n"
      + "  - {name: d, handler: {callable: pay}}\n");
  CHECK(p.steps()[0].options.entry_point == "refund");
  CHECK(p.steps()[1].options.entry_point == "call");
  CHECK(p.steps()[2].options.entry_point == "call");
  CHECK(p.steps()[3].options.entry_point == "call");
  const auto core = json::parse(p.to_core_json());
  CHECK(core["steps"][0]["method"] == "refund");
  CHECK_FALSE(core["steps"][1].contains("method"));  // "call" is the core's default

  CHECK(contains(problem_of(head + "steps:\n  - {name: a, handler: {callable: h, method: [x]}}\n"),
                 "t.yaml:5:46: pipeline ns/p@1 step \"a\": handler.method: must be a string"));
  tasker::pipeline code("ns", "p", "1");
  code.step("a", "h", tasker::step_options{}.method(""));
  CHECK(contains(code.validate().at(0), "step \"a\": method is empty"));
}

TEST_CASE("handler.resolver is explicit_mapping or nothing" * doctest::timeout(10)) {
  CHECK(problems_of(head
                    + "steps:\n  - {name: a, handler: {callable: h, resolver: "
                      "explicit_mapping}}\n")
            .empty());
  CHECK(problems_of(head + "steps:\n  - {name: a, handler: {callable: h, resolver: null}}\n")
            .empty());
  CHECK(
      problem_of(head + "steps:\n  - {name: a, handler: {callable: h, resolver: class_constant}}\n")
      == "t.yaml:5:48: pipeline ns/p@1 step \"a\": handler.resolver: resolver \"class_constant\" "
         "is not available: handlers are registered by name, so the only resolver is "
         "\"explicit_mapping\" (the callable is the registered name)");
}

TEST_CASE("retry.initial_delay and max_delay are seconds, another spelling of the ms fields"
          * doctest::timeout(10)) {
  const auto r = retry_of("{initial_delay: 0.25, max_delay: 10}");
  CHECK(r.base == 250ms);
  CHECK(r.cap == 10000ms);
  const auto agreeing = retry_of("{initial_delay: 2, backoff_base_ms: 2000, max_backoff_ms: 9000}");
  CHECK(agreeing.base == 2000ms);
  CHECK(agreeing.cap == 9000ms);
  CHECK(problem_of(one_step("    retry: {initial_delay: 1, backoff_base_ms: 500}\n"))
        == "t.yaml:7:13: pipeline ns/p@1 step \"s\": retry.initial_delay (1000 ms) and "
           "retry.backoff_base_ms (500 ms) disagree; give one of them");
  CHECK(contains(problem_of(one_step("    retry: {max_backoff_ms: 1000, max_delay: 2}\n")),
                 "retry.max_delay (2000 ms) and retry.max_backoff_ms (1000 ms) disagree"));
  CHECK(contains(problem_of(one_step("    retry: {initial_delay: -1}\n")),
                 "retry.initial_delay: is -1, must be 0 to 86400 (a day)"));
  CHECK(contains(problem_of(one_step("    retry: {max_delay: 1e9}\n")),
                 "retry.max_delay: is 1000000000.0, must be 0 to 604800 (a week)"));
  CHECK(contains(problem_of(one_step("    retry: {initial_delay: soon}\n")),
                 "retry.initial_delay: must be a number of seconds"));
  CHECK(contains(problem_of(one_step("    retry: {max_backoff_ms: 604800001}\n")),
                 "retry.max_backoff_ms: is 604800001, must be 0 to 604800000 (a week)"));
}

TEST_CASE("backoff: fibonacci reaches the core" * doctest::timeout(10)) {
  const auto r = retry_of("{backoff: fibonacci, backoff_base_ms: 100, max_backoff_ms: 800}");
  CHECK(r.backoff == "fibonacci");
  tasker::pipeline p("ns", "p", "1");
  p.step("s", "h", tasker::step_options{}.retry(r));
  CHECK(json::parse(p.to_core_json())["steps"][0]["retry"]["backoff"] == "fibonacci");
}

TEST_CASE("lifecycle is accepted with its shape checked, and changes nothing"
          * doctest::timeout(10)) {
  const std::string steps = "steps:\n  - {name: s, handler: {callable: h}}\n";
  const auto p = tasker::parse_pipeline_yaml(head + R"(lifecycle:
  max_duration_minutes: 30
  max_waiting_for_dependencies_minutes: 2
  max_waiting_for_retry_minutes: 2
  max_steps_in_process_minutes: 2
  staleness_action: dlq
  auto_fail_on_timeout: true
  auto_dlq_on_timeout: false
)" + steps);
  CHECK(p.to_core_json() == tasker::parse_pipeline_yaml(head + steps, "plain.yaml").to_core_json());
  CHECK(problems_of(head + "lifecycle: {}\n" + steps).empty());
  CHECK(problems_of(head + "lifecycle:\n" + steps).empty());
  struct example {
    std::string lifecycle, message;
  };
  const std::vector<example> examples = {
      {"{max_duration_minutes: 0}",
       "t.yaml:4:35: pipeline ns/p@1: lifecycle.max_duration_minutes: is 0, must be 1 to 43200 "
       "minutes"},
      {"{max_steps_in_process_minutes: 10081}",
       "lifecycle.max_steps_in_process_minutes: is 10081, must be 1 to 10080 minutes"},
      {"{max_waiting_for_retry_minutes: 1.5}",
       "lifecycle.max_waiting_for_retry_minutes: must be an integer"},
      {"{staleness_action: retry}", "lifecycle.staleness_action: must be one of dlq, error, none"},
      {"{auto_dlq_on_timeout: maybe}", "lifecycle.auto_dlq_on_timeout: must be true or false"},
      {"{max_staleness_minutes: 3}",
       "t.yaml:4:13: pipeline ns/p@1: unknown field \"lifecycle.max_staleness_minutes\""},
      {"5", "t.yaml:4:12: pipeline ns/p@1: lifecycle: must be a mapping"},
  };
  for (const auto& ex : examples) {
    CAPTURE(ex.lifecycle);
    CHECK(contains(problem_of(head + "lifecycle: " + ex.lifecycle + "\n" + steps), ex.message));
  }
}

TEST_CASE("environments are read, and an environment's overrides apply as Tasker applies them"
          * doctest::timeout(10)) {
  const auto p = tasker::parse_pipeline_yaml(with_environments);
  REQUIRE(p.environments().size() == 2);
  CHECK(p.environments().at("test").size() == 2);

  // As written, in no environment and in one the template does not define.
  for (const char* env : {"", "production"}) {
    CAPTURE(env);
    const auto same = p.for_environment(env);
    CHECK(same.to_core_json() == p.to_core_json());
  }

  const auto test = p.for_environment("test");
  const auto& charge = test.steps()[0].options;
  // initialization merges key by key; a key given replaces the whole value.
  CHECK(
      charge.config
      == json{
          {"gateway", "mock"}, {"currency", "EUR"}, {"limits", {{"b", 2}}}, {"debug_mode", true}});
  CHECK(charge.time_limit == 5000ms);
  // retry is replaced whole: what the override leaves out takes the defaults.
  REQUIRE(charge.retry_settings.has_value());
  CHECK(charge.retry_settings->max_attempts == 1);
  CHECK(charge.retry_settings->backoff == "exponential");
  CHECK(charge.retry_settings->base == 1000ms);
  const auto& notify = test.steps()[1].options;  // only the ALL override
  CHECK(notify.config == json{{"debug_mode", true}});
  CHECK(notify.time_limit == 0ms);
  CHECK_FALSE(notify.retry_settings.has_value());

  const auto dev = p.for_environment("development");
  CHECK(dev.steps()[0].options.config == p.steps()[0].options.config);
  CHECK(dev.steps()[1].options.time_limit == 60000ms);
}

TEST_CASE("every environment's overrides are checked, each problem at its place"
          * doctest::timeout(10)) {
  const std::string steps = "steps:\n  - {name: s, handler: {callable: h}}\n";
  struct example {
    std::string environments, message;
  };
  const std::vector<example> examples = {
      {"{test: {steps: [{name: ghost}]}}",
       "t.yaml:4:38: pipeline ns/p@1 environment \"test\": overrides step \"ghost\", which the "
       "template does not have (name one of its steps, or ALL)"},
      {"{test: {steps: [{name: s, retry: {max_attempts: -2}}]}}",
       "t.yaml:4:63: pipeline ns/p@1 environment \"test\" override of \"s\": retry.max_attempts: "
       "is -2, must be 0 to 1000"},
      {"{test: {steps: [{name: s, timeout_seconds: -1}]}}",
       "environment \"test\" override of \"s\": timeout_seconds: is -1, must be 0 to 604800"},
      {"{test: {steps: [{name: s, handler: {callable: other}}]}}",
       "environment \"test\" override of \"s\": an environment overrides handler.initialization "
       "only, not handler.callable"},
      {"{test: {steps: [{name: s, handler: {initialization: 3}}]}}",
       "handler.initialization: must be a mapping"},
      {"{test: {steps: [{name: s, colour: red}]}}",
       "environment \"test\" override of \"s\": unknown field \"colour\""},
      {"{test: {steps: [{timeout_seconds: 3}]}}",
       "environment \"test\" override #1: name: is required"},
      {"{test: {tasks: []}}", "unknown field \"environments.test.tasks\""},
      {"{test: {steps: {name: s}}}", "environments.test.steps: must be a list of step overrides"},
      {"{test: [s]}", "environments.test: must be a mapping (steps)"},
      {"[test]", "environments: must be a mapping of environment names to their overrides"},
  };
  for (const auto& ex : examples) {
    CAPTURE(ex.environments);
    CHECK(
        contains(problem_of(head + "environments: " + ex.environments + "\n" + steps), ex.message));
  }
  CHECK(problems_of(head + "environments: {test: {}, dev: , ci: {steps: []}}\n" + steps).empty());
}

TEST_CASE("a pipeline built in code has environments too, checked by validate"
          * doctest::timeout(10)) {
  tasker::pipeline p("ns", "p", "1");
  p.step("a", "h", tasker::step_options{}.with_config({{"rate", 1}}));
  tasker::retry_policy bad;
  bad.max_attempts = 0;  // the core's range is 1 to 1000
  p.override_in("test", {"a", {{"rate", 2}}, 2s, std::nullopt})
      .override_in("broken", {"a", json::object(), std::nullopt, bad})
      .override_in("broken", {"b", json::object(), std::nullopt, std::nullopt});
  CHECK(p.for_environment("test").steps()[0].options.config == json{{"rate", 2}});
  CHECK(p.for_environment("test").steps()[0].options.time_limit == 2000ms);
  const auto problems = p.validate();
  REQUIRE(problems.size() == 2);
  CHECK(problems[0]
        == "pipeline ns/p@1 environment \"broken\": overrides step \"b\", which the pipeline "
           "does not have");
  CHECK(problems[1]
        == "pipeline ns/p@1 step \"a\": retry max_attempts is 0, must be 1 to 1000 (in "
           "environment \"broken\")");
  CHECK_NOTHROW(p.to_core_json());  // as written it is valid
  CHECK_THROWS_AS(p.for_environment("broken").to_core_json(), tasker::pipeline_error);
}
