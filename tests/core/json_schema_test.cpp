// White-box tests of the input_schema validator (model/json_schema): each
// keyword, the messages, the refusals and the bounds.
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "abi/error.hpp"
#include "model/json_schema.hpp"
#include "model/pipeline.hpp"

using namespace tasker::core;
using nlohmann::json;

namespace {

std::shared_ptr<const json_schema> compiled(const json& schema) {
  std::vector<std::string> problems;
  auto s = json_schema::compile(schema, problems);
  INFO("schema: ", schema.dump(), " problems: ", problems.empty() ? "" : problems.front());
  REQUIRE(s);
  return s;
}

/// The failures of `value` against `schema`, one a line.
std::string failures(const json& schema, const json& value) {
  std::string out;
  for (const auto& e : compiled(schema)->check(value))
    out += (out.empty() ? "" : "\n") + e;
  return out;
}

bool valid(const json& schema, const json& value) {
  return compiled(schema)->check(value).empty();
}

/// The problems compile() finds, one a line.
std::string refusal(const json& schema) {
  std::vector<std::string> problems;
  auto s = json_schema::compile(schema, problems);
  CHECK_FALSE(s);
  std::string out;
  for (const auto& p : problems)
    out += (out.empty() ? "" : "\n") + p;
  return out;
}

}  // namespace

TEST_CASE("type accepts one name or a list and integer accepts 1.0" * doctest::timeout(10)) {
  CHECK(valid({{"type", "string"}}, "x"));
  CHECK(failures({{"type", "string"}}, 5) == "$: must be a string (is integer)");
  CHECK(valid({{"type", "integer"}}, 1.0));
  CHECK_FALSE(valid({{"type", "integer"}}, 1.5));
  CHECK(valid({{"type", "number"}}, 7));
  CHECK(valid({{"type", json::array({"string", "null"})}}, nullptr));
  CHECK(failures({{"type", json::array({"string", "null"})}}, true)
        == "$: must be one of string, null (is boolean)");
  CHECK_FALSE(valid({{"type", "object"}}, json::array()));
  CHECK_FALSE(valid({{"type", json::array()}}, 1));
}

TEST_CASE("properties and required name the failing path" * doctest::timeout(10)) {
  const json schema = {
      {"type", "object"},
      {"required", {"customer", "amount"}},
      {"properties",
       {{"amount", {{"type", "number"}, {"minimum", 0}}},
        {"customer",
         {{"type", "object"},
          {"properties", {{"email", {{"type", "string"}}}, {"first name", {{"type", "string"}}}}}}},
        {"lines", {{"type", "array"}, {"items", {{"type", "integer"}}}}}}}};
  CHECK(valid(schema, {{"customer", json::object()}, {"amount", 3}}));
  CHECK(failures(schema, {{"amount", -5}})
        == "$.customer: is required\n$.amount: must be at least 0 (is -5)");
  CHECK(failures(schema, {{"amount", 1}, {"customer", {{"email", 1}, {"first name", 2}}}})
        == "$.customer.email: must be a string (is integer)\n"
           "$.customer[\"first name\"]: must be a string (is integer)");
  CHECK(failures(schema, {{"amount", 1}, {"customer", json::object()}, {"lines", {1, 2, "x"}}})
        == "$.lines[2]: must be an integer (is string)");
}

TEST_CASE("enum and const compare JSON values, 1 equal to 1.0" * doctest::timeout(10)) {
  CHECK(valid({{"enum", {"a", 1, nullptr}}}, 1.0));
  CHECK(failures({{"enum", {"a", "b"}}}, "c") == "$: must be one of [\"a\",\"b\"] (is \"c\")");
  CHECK(valid({{"const", {{"a", {1, 2}}}}}, {{"a", {1.0, 2}}}));
  CHECK(failures({{"const", 5}}, 6) == "$: must be 5 (is 6)");
  CHECK_FALSE(valid({{"const", false}}, 0));
}

TEST_CASE("numeric bounds, exclusive bounds and multipleOf" * doctest::timeout(10)) {
  CHECK(failures({{"maximum", 10}}, 11) == "$: must be at most 10 (is 11)");
  CHECK(valid({{"maximum", 10}}, 10));
  CHECK(failures({{"exclusiveMinimum", 0}}, 0) == "$: must be greater than 0 (is 0)");
  CHECK(failures({{"exclusiveMaximum", 1.5}}, 1.5) == "$: must be less than 1.5 (is 1.5)");
  CHECK(valid({{"minimum", -1}}, 18446744073709551615ULL));
  CHECK_FALSE(valid({{"maximum", 9223372036854775807LL}}, 18446744073709551615ULL));
  CHECK(valid({{"multipleOf", 0.01}}, 19.99));
  CHECK(failures({{"multipleOf", 2}}, 3) == "$: must be a multiple of 2 (is 3)");
  CHECK(valid({{"minimum", 5}}, "not a number"));  // keywords apply to their own types only
}

TEST_CASE("lengths count code points and patterns search unanchored" * doctest::timeout(10)) {
  CHECK(valid({{"maxLength", 2}}, "é€"));
  CHECK(failures({{"minLength", 3}}, "ab") == "$: must be at least 3 characters long (is 2)");
  CHECK(failures({{"maxLength", 1}}, "ab") == "$: must be at most 1 characters long (is 2)");
  CHECK(valid({{"pattern", "b+"}}, "abbbc"));
  CHECK(failures({{"pattern", "^pay_[a-zA-Z0-9_]+$"}}, "refund_1")
        == "$: must match the pattern \"^pay_[a-zA-Z0-9_]+$\" (is \"refund_1\")");
  CHECK(valid({{"pattern", "^.$"}}, "€"));  // one character, three bytes
  CHECK(valid({{"pattern", "^(a|b)*$"}}, std::string(50000, 'a')));
  // Catastrophic backtracking for a backtracking engine; linear here.
  CHECK_FALSE(valid({{"pattern", "^(a+)+$"}}, std::string(5000, 'a') + "b"));
  CHECK(failures({{"pattern", "a"}}, std::string(schema_limits::max_matched_length + 1, 'a'))
        == "$: is 100001 characters long, longer than the 100000 a pattern is matched against");
}

TEST_CASE("arrays: items, tuples, additionalItems, sizes, uniqueItems, contains"
          * doctest::timeout(10)) {
  CHECK(failures({{"minItems", 2}}, {1}) == "$: must have at least 2 items (has 1)");
  CHECK(failures({{"maxItems", 1}}, {1, 2}) == "$: must have at most 1 items (has 2)");
  const json tuple = {{"items", {{{"type", "string"}}, {{"type", "integer"}}}},
                      {"additionalItems", false}};
  CHECK(valid(tuple, {"a", 1}));
  CHECK(failures(tuple, {"a", 1, 2}) == "$[2]: is not allowed");
  CHECK(failures({{"uniqueItems", true}}, {1, {{"a", 1}}, 2, {{"a", 1.0}}})
        == "$: must not hold the same item twice (items 1 and 3 are equal)");
  CHECK(valid({{"uniqueItems", true}}, {1, true, "1", json::array({1})}));
  CHECK(valid({{"contains", {{"const", 3}}}}, {1, 3}));
  CHECK_FALSE(valid({{"contains", {{"const", 3}}}}, {1, 2}));
}

TEST_CASE("objects: additionalProperties, patternProperties, sizes, dependencies, names"
          * doctest::timeout(10)) {
  const json closed = {{"properties", {{"a", true}}}, {"additionalProperties", false}};
  CHECK(failures(closed, {{"a", 1}, {"b", 2}})
        == "$.b: is not allowed (additionalProperties is false)");
  const json typed = {{"patternProperties", {{"^x_", {{"type", "integer"}}}}},
                      {"additionalProperties", {{"type", "string"}}}};
  CHECK(valid(typed, {{"x_1", 1}, {"other", "s"}}));
  CHECK(failures(typed, {{"x_1", "s"}, {"other", 1}})
        == "$.other: must be a string (is integer)\n$.x_1: must be an integer (is string)");
  CHECK(failures({{"minProperties", 1}}, json::object())
        == "$: must have at least 1 properties (has 0)");
  CHECK_FALSE(valid({{"maxProperties", 0}}, {{"a", 1}}));
  CHECK(failures({{"dependencies", {{"card", {"billing"}}}}}, {{"card", 1}})
        == "$.billing: is required when \"card\" is present");
  CHECK_FALSE(valid({{"dependentSchemas", {{"a", {{"required", {"b"}}}}}}}, {{"a", 1}}));
  CHECK_FALSE(valid({{"propertyNames", {{"maxLength", 2}}}}, {{"abc", 1}}));
}

TEST_CASE("allOf, anyOf, oneOf, not and if/then/else" * doctest::timeout(10)) {
  CHECK(failures({{"allOf", {{{"minimum", 2}}, {{"maximum", 1}}}}}, 3)
        == "$: must be at most 1 (is 3)");
  CHECK(failures({{"anyOf", {{{"type", "string"}}, {{"minimum", 5}}}}}, 1)
        == "$: must match at least one of the anyOf schemas");
  CHECK(failures({{"oneOf", {{{"minimum", 0}}, {{"maximum", 10}}}}}, 5)
        == "$: must match exactly one of the oneOf schemas (matches #1 and #2)");
  CHECK(valid({{"oneOf", {{{"minimum", 0}}, {{"maximum", 10}}}}}, 50));
  CHECK(failures({{"not", {{"type", "null"}}}}, nullptr)
        == "$: must not match the schema under \"not\"");
  const json conditional = {{"if", {{"properties", {{"kind", {{"const", "card"}}}}}}},
                            {"then", {{"required", {"card_number"}}}},
                            {"else", {{"required", {"iban"}}}}};
  CHECK(failures(conditional, {{"kind", "card"}}) == "$.card_number: is required");
  CHECK(failures(conditional, {{"kind", "bank"}}) == "$.iban: is required");
}

TEST_CASE("boolean schemas and defaults that are not applied" * doctest::timeout(10)) {
  CHECK(valid(true, {{"anything", 1}}));
  CHECK(failures(false, json::object()) == "$: is not allowed");
  CHECK(valid({{"properties", {{"a", {{"type", "integer"}, {"default", 1}}}}},
               {"required", {"b"}},
               {"format", "email"},
               {"title", "t"}},
              {{"b", 0}}));
  CHECK(failures({{"required", {"a"}}, {"properties", {{"a", {{"default", 1}}}}}}, json::object())
        == "$.a: is required");
}

TEST_CASE("failures are collected up to the limit" * doctest::timeout(10)) {
  json required = json::array();
  for (int i = 0; i < 50; ++i)
    required.push_back("k" + std::to_string(i));
  CHECK(compiled({{"required", required}})->check(json::object()).size()
        == schema_limits::max_errors);
}

TEST_CASE("a schema that is invalid or uses what is not implemented is refused, naming the path"
          * doctest::timeout(10)) {
  CHECK(refusal({{"type", 5}})
        == "input_schema.type: must be a type name or a list of them, not 5");
  CHECK(refusal({{"type", "text"}})
        == "input_schema.type: unknown type \"text\" (null, boolean, object, array, number, "
           "integer, string)");
  CHECK(refusal({{"properties", {{"amount", {{"minimum", "x"}}}}}})
        == "input_schema.properties.amount.minimum: must be a number, not string");
  CHECK(refusal({{"properties", {{"a", {{"pattern", "(unclosed"}}}}}})
            .find("input_schema.properties.a.pattern: the pattern \"(unclosed\" is not a valid "
                  "ECMAScript regular expression")
        == 0);
  CHECK(refusal({{"pattern", "(a)\\1"}}).find("back-references are not supported")
        != std::string::npos);
  CHECK(refusal({{"properties", {{"a", {{"$ref", "#/definitions/a"}}}}}})
        == "input_schema.properties.a.$ref: \"$ref\" is not supported: write the schema it "
           "refers to in its place");
  CHECK(refusal({{"unevaluatedProperties", false}}).find("is not supported") != std::string::npos);
  CHECK(refusal({{"prefixItems", json::array()}}).find("is not supported") != std::string::npos);
  CHECK(refusal({{"minimum", 0}, {"exclusiveMinimum", true}}).find("draft 4") != std::string::npos);
  CHECK(refusal({{"minLength", -1}})
        == "input_schema.minLength: must be a non-negative integer, not -1");
  CHECK(refusal({{"multipleOf", 0}}) == "input_schema.multipleOf: must be greater than 0, not 0");
  CHECK(refusal({{"allOf", json::array()}})
        == "input_schema.allOf: must be a non-empty list of schemas");
  CHECK(refusal({{"required", "a"}}) == "input_schema.required: must be a list of property names");
  CHECK(refusal(json::array())
        == "input_schema: must be a JSON Schema (an object, true or false), not array");
  CHECK(refusal({{"anyOf", {1, true}}})
        == "input_schema.anyOf[0]: must be a JSON Schema (an object, true or false), not integer");
  // Inside definitions (never applied without $ref) nothing is looked at.
  CHECK(valid({{"definitions", {{"a", {{"$ref", "#"}}}}}}, 1));
}

TEST_CASE("schemas past the bounds are refused" * doctest::timeout(10)) {
  json deep = true;
  for (int i = 0; i <= schema_limits::max_depth; ++i)
    deep = {{"not", deep}};
  CHECK(refusal(deep).find("nested more than 64 deep") != std::string::npos);

  json wide = json::object();
  for (std::size_t i = 0; i <= schema_limits::max_subschemas; ++i)
    wide["p" + std::to_string(i)] = true;
  CHECK(refusal({{"properties", wide}}).find("more than 10000 subschemas") != std::string::npos);

  CHECK(refusal({{"pattern", std::string(schema_limits::max_pattern_length + 1, 'a')}})
            .find("the pattern is 1001 characters long, at most 1000 are allowed")
        != std::string::npos);
  CHECK(refusal({{"pattern", "(a?){5000}"}}).find("is too complex") != std::string::npos);
  CHECK(refusal({{"pattern", "((a{100}){100}){100}"}}).find("is too complex") != std::string::npos);
  CHECK(valid({{"pattern", "^[a-z]{1,255}$"}}, "abc"));
}

TEST_CASE("a check past its work bound fails with TK_TOO_LARGE" * doctest::timeout(30)) {
  // 1,000 strings of 40,000 characters against a pattern of size ~1000: far
  // past the bound, stopped early.
  const auto s = compiled({{"items", {{"pattern", "^(a|b|c|d|e|f|g|h|i|j){100}"}}}});
  json items = json::array();
  for (int i = 0; i < 1000; ++i)
    items.push_back(std::string(40000, 'a'));
  try {
    s->check(items);
    FAIL("no error");
  } catch (const core_error& e) {
    CHECK(e.code() == TK_TOO_LARGE);
    CHECK(std::string(e.what()).find("takes too much work") != std::string::npos);
  }
}

TEST_CASE("a pipeline's input_schema is compiled, kept canonical and checked against contexts"
          * doctest::timeout(10)) {
  const json def = {{"namespace", "shop"},
                    {"name", "order"},
                    {"version", "1"},
                    {"steps", {{{"name", "a"}, {"handler", "h"}}}},
                    {"input_schema",
                     {{"type", "object"},
                      {"required", {"customer"}},
                      {"properties", {{"amount", {{"minimum", 0}}}}}}}};
  auto p = parse_pipeline(def.dump());
  REQUIRE(p->input_schema);
  CHECK(json::parse(p->canonical_json).at("input_schema") == def.at("input_schema"));
  CHECK(parse_pipeline(p->canonical_json)->canonical_json == p->canonical_json);
  check_task_context(*p, R"({"customer": "c", "amount": 3})");
  try {
    check_task_context(*p, R"({"amount": -5})");
    FAIL("no error");
  } catch (const core_error& e) {
    CHECK(e.code() == TK_VALIDATION);
    CHECK(std::string(e.what())
          == "pipeline shop/order@1: input_schema: $.customer: is required; $.amount: must be at "
             "least 0 (is -5)");
  }

  json without = def;
  without.erase("input_schema");
  auto plain = parse_pipeline(without.dump());
  CHECK_FALSE(plain->input_schema);
  CHECK_FALSE(json::parse(plain->canonical_json).contains("input_schema"));
  without["input_schema"] = nullptr;
  CHECK(parse_pipeline(without.dump())->canonical_json == plain->canonical_json);

  json bad = def;
  bad["input_schema"] = {{"properties", {{"amount", {{"minimum", "x"}}}}}};
  try {
    parse_pipeline(bad.dump());
    FAIL("no error");
  } catch (const core_error& e) {
    CHECK(e.code() == TK_VALIDATION);
    CHECK(std::string(e.what())
          == "pipeline shop/order@1: input_schema.properties.amount.minimum: must be a number, "
             "not string");
  }
}
