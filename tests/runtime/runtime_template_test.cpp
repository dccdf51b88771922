// The YAML template loader on Tasker's format: the fields that carry no
// behaviour here are accepted and change nothing, the ones that need the core
// stay errors, every problem of a file is listed with its place, and a file
// past a bound is rejected cheaply. No actor system.
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <tasker/runtime/pipeline.hpp>
#include <tasker/test/temp_dir.hpp>

namespace {

using tasker::template_limits;
using tasker::test::temp_dir;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// Every problem parsing `yaml` reports (empty when it loads).
std::vector<std::string> problems_of(const std::string& yaml, const char* origin = "t.yaml") {
  try {
    tasker::parse_pipeline_yaml(yaml, origin);
  } catch (const tasker::template_error& e) {
    return e.problems();
  }
  return {};
}

/// The problems joined, for CHECK(contains(…)).
std::string error_of(const std::string& yaml) {
  std::string all;
  for (const auto& p : problems_of(yaml))
    all += p + "\n";
  return all;
}

const std::string head = "name: p\nnamespace_name: ns\nversion: '1'\n";

/// A template with one step `s` whose extra YAML lines are `step_lines`.
std::string one_step(const std::string& step_lines) {
  return head + "steps:\n  - name: s\n    handler: {callable: h}\n" + step_lines;
}

/// `levels` mappings inside each other, as flow YAML: {a: {a: … 1}}.
std::string nested(int levels) {
  std::string out;
  for (int i = 0; i < levels; ++i)
    out += "{a: ";
  out += "1";
  for (int i = 0; i < levels; ++i)
    out += "}";
  return out;
}

}  // namespace

TEST_CASE("the fields that carry no behaviour are accepted and change nothing"
          * doctest::timeout(10)) {
  // As in Tasker's own templates (tests/fixtures/task_templates/rust/).
  const std::string with = head + R"(system_dependencies:
  primary: default
  secondary: []
domain_events:
  - name: order.placed
    description: An order was placed
    schema: {type: object, required: [order_id]}
steps:
  - name: a
    handler: {callable: h}
    system_dependency:
    publishes_events: []
  - name: b
    handler: {callable: h}
    dependencies: [a]
    system_dependency: payments_api
    result_schema: {type: object}
    publishes_events:
      - name: payment.processed
        description: Payment processed
        condition: success
        schema:
          type: object
          properties: {amount: {type: number, minimum: 0}}
        delivery_mode: durable
        publisher: PaymentEventPublisher
      - name: payment.failed
        condition: permanent_failure
        delivery_mode: fast
        schema: true
)";
  const std::string without = head + R"(steps:
  - name: a
    handler: {callable: h}
  - name: b
    handler: {callable: h}
    dependencies: [a]
)";
  INFO(error_of(with));
  const auto p = tasker::parse_pipeline_yaml(with, "with.yaml");
  CHECK(p.to_core_json() == tasker::parse_pipeline_yaml(without).to_core_json());

  for (const char* empty : {"system_dependencies:\n", "system_dependencies: {}\n",
                            "domain_events: []\n", "domain_events:\n"}) {
    CAPTURE(empty);
    CHECK(problems_of(head + empty + "steps:\n  - {name: s, handler: {callable: h}}\n").empty());
  }
  for (const char* empty :
       {"    system_dependency: ''\n", "    publishes_events:\n", "    result_schema:\n"}) {
    CAPTURE(empty);
    CHECK(problems_of(one_step(empty)).empty());
  }
}

TEST_CASE("the shape of the fields without behaviour is still checked" * doctest::timeout(10)) {
  const std::string steps = "steps:\n  - {name: s, handler: {callable: h}}\n";
  struct example {
    std::string yaml, message;
  };
  const std::vector<example> examples = {
      {head + "system_dependencies: default\n" + steps,
       "t.yaml:4:22: pipeline ns/p@1: system_dependencies: must be a mapping (primary, secondary)"},
      {head + "system_dependencies: {primary: default, tertiary: x}\n" + steps,
       "t.yaml:4:41: pipeline ns/p@1: unknown field \"system_dependencies.tertiary\""},
      {head + "system_dependencies: {secondary: db}\n" + steps,
       "system_dependencies.secondary: must be a list of names"},
      {head + "domain_events: {name: x}\n" + steps,
       "t.yaml:4:16: pipeline ns/p@1: domain_events: must be a list of event declarations"},
      {head + "domain_events: [{description: x}]\n" + steps,
       "pipeline ns/p@1: domain_events #1.name: is required"},
      {head + "domain_events: [{name: a.b, condition: success}]\n" + steps,
       "unknown field \"domain_events #1.condition\""},  // a step's declaration has it
      {one_step("    publishes_events: [{name: a.b, condition: sometimes}]\n"),
       "step \"s\": publishes_events #1.condition: must be one of success, failure, "
       "retryable_failure, permanent_failure, always"},
      {one_step("    publishes_events: [{name: a.b, delivery_mode: slow}]\n"),
       "publishes_events #1.delivery_mode: must be one of durable, fast, broadcast"},
      {one_step("    publishes_events: [{name: a.b}, {name: c.d, colour: red}]\n"),
       "step \"s\": unknown field \"publishes_events #2.colour\""},
      {one_step("    publishes_events: [{name: a.b, schema: 3}]\n"),
       "publishes_events #1.schema: must be a JSON Schema (a mapping, true or false)"},
      {one_step("    system_dependency: [a]\n"), "step \"s\": system_dependency: must be a string"},
      {one_step("    result_schema: object\n"), "step \"s\": result_schema: must be a JSON Schema"},
  };
  for (const auto& ex : examples) {
    CAPTURE(ex.yaml);
    const auto message = error_of(ex.yaml);
    CAPTURE(message);
    CHECK(contains(message, ex.message));
  }
}

TEST_CASE("the fields that need the core stay errors naming the field and its place"
          * doctest::timeout(10)) {
  const std::string steps = "steps:\n  - {name: s, handler: {callable: h}}\n";
  struct example {
    std::string yaml, message;
  };
  const std::vector<example> examples = {
      {one_step("    retry: {max_attempts: -1}\n"),
       "t.yaml:7:27: pipeline ns/p@1 step \"s\": retry.max_attempts: is -1, must be 0 to 1000"},
      {one_step("    step_types: decision\n"),
       "t.yaml:7:5: pipeline ns/p@1 step \"s\": unknown field \"step_types\""},
  };
  for (const auto& ex : examples) {
    CAPTURE(ex.yaml);
    const auto problems = problems_of(ex.yaml);
    REQUIRE(problems.size() == 1);
    CHECK(contains(problems[0], ex.message));
  }
}

TEST_CASE("every problem of a template is listed, in the order of the file, each with its line"
          * doctest::timeout(10)) {
  const std::string yaml = head + R"(colour: blue
input_schema: [object]
steps:
  - name: a
    handler: {callable: h, resolver: x}
    retry: {max_attempts: 0, backoff: golden}
  - name: b
    type: batchable
    handler: {callable: h, initialization: {x: .inf, y: !custom 1}}
environments: {test: {steps: [{name: ghost}]}}
)";
  const auto problems = problems_of(yaml, "many.yaml");
  const std::vector<std::string> expected = {
      "many.yaml:4:1: pipeline ns/p@1: unknown field \"colour\"",
      "many.yaml:5:15: pipeline ns/p@1: input_schema: must be a JSON Schema (a mapping, true or "
      "false)",
      "many.yaml:8:38: pipeline ns/p@1 step \"a\": handler.resolver: resolver \"x\" is not "
      "available: handlers are registered by name, so the only resolver is \"explicit_mapping\" "
      "(the callable is the registered name)",
      "many.yaml:9:39: pipeline ns/p@1 step \"a\": retry.backoff: must be none, linear, "
      "exponential or fibonacci",
      "many.yaml:10:5: pipeline ns/p@1 step \"b\": a batchable step needs a batch_worker step "
      "that depends on it",
      "many.yaml:12:48: pipeline ns/p@1 step \"b\": handler.initialization.x: .inf cannot be "
      "represented in JSON",
      "many.yaml:12:57: pipeline ns/p@1 step \"b\": handler.initialization.y: the tag "
      "\"!custom\" is not supported",
      "many.yaml:13:38: pipeline ns/p@1 environment \"test\": overrides step \"ghost\", which the "
      "template does not have (name one of its steps, or ALL)",
  };
  CHECK(problems == expected);

  // The core's checks run too once the steps are whole, each placed at its step.
  const auto both = problems_of(one_step("    colour: red\n    dependencies: [ghost]\n"));
  REQUIRE(both.size() == 2);
  CHECK(both[0] == "t.yaml:5:5: pipeline ns/p@1 step \"s\": unknown dependency \"ghost\"");
  CHECK(both[1] == "t.yaml:7:5: pipeline ns/p@1 step \"s\": unknown field \"colour\"");
}

TEST_CASE("past a hundred problems the rest are counted" * doctest::timeout(10)) {
  std::string yaml = head + "steps:\n";
  for (int i = 0; i < 150; ++i)
    yaml += "  - {name: s" + std::to_string(i) + ", handler: {callable: h}, colour: red}\n";
  const auto problems = problems_of(yaml);
  REQUIRE(problems.size() == template_limits::max_problems + 1);
  CHECK(contains(problems[0], "t.yaml:5:40: pipeline ns/p@1 step \"s0\": unknown field"));
  CHECK(problems.back() == "t.yaml: (and 50 more problems)");
}

TEST_CASE("a template past a bound is rejected, naming the bound" * doctest::timeout(20)) {
  const std::string steps_head = head + "steps:\n  - name: s\n    handler:\n      callable: h\n";

  // Nesting: the root, steps, the step and handler are 4 levels, then
  // initialization and the mappings in it.
  CHECK(problems_of(steps_head + "      initialization: " + nested(60) + "\n").empty());
  CHECK(problems_of(steps_head + "      initialization: " + nested(61) + "\n")
        == std::vector<std::string>{
            "t.yaml:8:263: mappings and lists are nested more than 64 deep (or an alias contains "
            "itself)"});
  // Past yaml-cpp's own guard (2000 levels): a parse error, not a stack overflow.
  CHECK(contains(error_of(steps_head + "      initialization: " + nested(5000) + "\n"),
                 "mappings and lists are nested more than 64 deep"));

  // An alias that contains itself would be walked for ever.
  CHECK(contains(error_of(steps_head + "      initialization: &x {k: *x}\n"), "t.yaml:8:"));
  CHECK(contains(error_of(steps_head + "      initialization: &x {k: *x}\n"),
                 "nested more than 64 deep (or an alias contains itself)"));

  // Aliases of aliases: 20 bytes a line, 10^9 values once expanded.
  std::string bomb =
      steps_head + "      initialization:\n        a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i <= 8; ++i) {
    const auto prev = "*a" + std::to_string(i - 1);
    bomb += "        a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j)
      bomb += (j ? ", " : "") + prev;
    bomb += "]\n";
  }
  CHECK(contains(error_of(bomb), "holds more than 1000000 values (an alias counts each time"));

  // Steps: the core's limit, said at the steps.
  std::string many = head + "steps:\n";
  for (std::size_t i = 0; i <= template_limits::max_steps; ++i)
    many += "- {name: s" + std::to_string(i) + ", handler: {callable: h}}\n";
  CHECK(problems_of(many)
        == std::vector<std::string>{"t.yaml:5:1: pipeline ns/p@1: steps: has 10001 steps, at most "
                                    "10000 are allowed"});

  // Size: the text, and a file (read no further than one byte past the bound).
  const std::string big =
      one_step("    description: '" + std::string(template_limits::max_bytes, 'x') + "'\n");
  CHECK(problems_of(big)
        == std::vector<std::string>{"t.yaml: is " + std::to_string(big.size())
                                    + " bytes, more than a template may have (1048576)"});
  temp_dir dir;
  dir.write("big.yaml", big);
  CHECK_THROWS_WITH_AS(tasker::load_pipeline_yaml(dir.path() / "big.yaml"),
                       doctest::Contains("big.yaml: is larger than a template may be (1048576 "
                                         "bytes)"),
                       tasker::template_error);
}

TEST_CASE("a directory with a bad and a good template: each file loads or lists its problems"
          * doctest::timeout(10)) {
  temp_dir dir;
  dir.write("a_bad.yaml", head
                              + "input_schema: []\nsteps:\n  - {name: s, handler: {callable: h}, "
                                "colour: red}\n");
  dir.write("b_good.yaml", "name: good\nnamespace_name: ns\nversion: '1'\n"
                           "steps:\n  - {name: s, handler: {callable: h}}\n");
  dir.write("c_again.yaml", "name: good\nnamespace_name: ns\nversion: '1'\n"
                            "steps:\n  - {name: s, handler: {callable: h}}\n");

  const auto files = tasker::list_template_files(dir.path());
  REQUIRE(files.size() == 3);
  const auto scan = tasker::scan_pipeline_files(files);
  REQUIRE(scan.size() == 3);
  const std::string bad = (dir.path() / "a_bad.yaml").string();
  CHECK_FALSE(scan[0].loaded);
  CHECK(scan[0].problems
        == std::vector<std::string>{bad
                                        + ":4:15: pipeline ns/p@1: input_schema: must be a "
                                          "JSON Schema (a mapping, true or false)",
                                    bad
                                        + ":6:39: pipeline ns/p@1 step \"s\": unknown field "
                                          "\"colour\""});
  REQUIRE(scan[1].loaded);
  CHECK(scan[1].loaded->name() == "good");
  CHECK(scan[1].problems.empty());
  CHECK_FALSE(scan[2].loaded);  // the same pipeline version again
  CHECK(scan[2].problems
        == std::vector<std::string>{(dir.path() / "c_again.yaml").string()
                                    + ": pipeline ns/good@1 is already defined in "
                                    + (dir.path() / "b_good.yaml").string()});

  // All at once: every problem of every file.
  try {
    tasker::load_pipeline_dir(dir.path());
    FAIL("no exception");
  } catch (const tasker::template_error& e) {
    CHECK(e.problems().size() == 3);
  }
  CHECK_THROWS_AS(tasker::list_template_files(dir.path() / "missing"), tasker::template_error);
}

TEST_CASE("retry.max_attempts: 0 is Tasker's 'the first execution runs, no retry follows'"
          * doctest::timeout(10)) {
  const auto zero = tasker::parse_pipeline_yaml(one_step("    retry: {max_attempts: 0}\n"), "z");
  const auto one = tasker::parse_pipeline_yaml(one_step("    retry: {max_attempts: 1}\n"), "o");
  const auto core_zero = nlohmann::json::parse(zero.to_core_json());
  CHECK(core_zero.at("steps")[0].at("retry").at("max_attempts") == 1);
  CHECK(zero.to_core_json() == one.to_core_json());
}

TEST_CASE("input_schema loads into the pipeline and reaches the core's JSON"
          * doctest::timeout(10)) {
  const auto p = tasker::parse_pipeline_yaml(head + R"(input_schema:
  type: object
  required: [customer]
  properties:
    customer: {type: string, format: email}
    amount: {type: number, minimum: 0, default: 10}
steps:
  - {name: s, handler: {callable: h}}
)",
                                             "t.yaml");
  const nlohmann::json expected = {
      {"type", "object"},
      {"required", {"customer"}},
      {"properties",
       {{"customer", {{"type", "string"}, {"format", "email"}}},
        {"amount", {{"type", "number"}, {"minimum", 0}, {"default", 10}}}}}};
  CHECK(p.input_schema() == expected);
  CHECK(nlohmann::json::parse(p.to_core_json()).at("input_schema") == expected);

  CHECK(problems_of(head + "input_schema: true\nsteps:\n  - {name: s, handler: {callable: h}}\n")
            .empty());
  CHECK(
      problems_of(head + "input_schema:\nsteps:\n  - {name: s, handler: {callable: h}}\n").empty());
  CHECK(error_of(head + "input_schema: object\nsteps:\n  - {name: s, handler: {callable: h}}\n")
        == "t.yaml:4:15: pipeline ns/p@1: input_schema: must be a JSON Schema (a mapping, true or "
           "false)\n");
}

TEST_CASE("a schema the core refuses is a template problem at the line of the offending value"
          * doctest::timeout(10)) {
  const auto problems = problems_of(head + R"(input_schema:
  type: object
  properties:
    amount:
      type: number
      minimum: ten
    "odd key":
      items:
        - {type: string}
        - {$ref: '#/definitions/x'}
steps:
  - {name: s, handler: {callable: h}}
)");
  const std::vector<std::string> expected = {
      "t.yaml:9:16: pipeline ns/p@1: input_schema.properties.amount.minimum: must be a number, "
      "not string",
      "t.yaml:13:18: pipeline ns/p@1: input_schema.properties[\"odd key\"].items[1].$ref: "
      "\"$ref\" is not supported: write the schema it refers to in its place",
  };
  CHECK(problems == expected);
}

TEST_CASE("the pipeline builder sets an input_schema from JSON or from text"
          * doctest::timeout(10)) {
  tasker::pipeline p{"shop", "order", "1"};
  p.step("s", "h").input_schema({{"type", "object"}, {"required", {"customer"}}});
  CHECK(nlohmann::json::parse(p.to_core_json()).at("input_schema").at("required")[0] == "customer");
  p.input_schema_text(R"({"type": "object", "properties": {"n": {"type": "integer"}}})");
  CHECK(p.input_schema().at("properties").at("n").at("type") == "integer");
  CHECK_THROWS_AS(p.input_schema_text("{not json"), tasker::pipeline_error);

  p.input_schema({{"properties", {{"n", {{"pattern", "("}}}}}});
  const auto problems = p.validate();
  REQUIRE(problems.size() == 1);
  CHECK(contains(problems[0], "pipeline shop/order@1: input_schema.properties.n.pattern: the "
                              "pattern \"(\" is not a valid ECMAScript regular expression"));
  CHECK_THROWS_AS(p.to_core_json(), tasker::pipeline_error);

  p.input_schema(nullptr);
  CHECK_FALSE(nlohmann::json::parse(p.to_core_json()).contains("input_schema"));
}
