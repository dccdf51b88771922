// JSON Schema (draft 7) for a pipeline's input_schema: compiled once when the
// pipeline is parsed, then checked against the context of every task created.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace tasker::core {

struct pipeline_def;

/// Bounds on a schema and on one check; a schema past them is refused when it
/// is compiled, a check past them fails, so a hostile schema or context costs
/// little.
struct schema_limits {
  static constexpr int max_depth = 64;                     ///< subschemas inside each other
  static constexpr std::size_t max_subschemas = 10000;     ///< in one schema
  static constexpr std::size_t max_pattern_length = 1000;  ///< code points of one pattern
  /// Size of one pattern's automaton, estimated from its text (a repetition
  /// `{n}` counts n times): bounds the regex engine's memory and recursion.
  static constexpr std::size_t max_pattern_size = 2000;
  static constexpr std::size_t max_total_pattern_size = 100000;  ///< of all patterns together
  /// Longest string (code points) a pattern is matched against; a longer one
  /// fails the pattern with a message saying so.
  static constexpr std::size_t max_matched_length = 100000;
  static constexpr std::size_t max_errors = 10;  ///< failures collected per check
  /// Work of one check (a subschema applied to a value is 1; a pattern match
  /// costs the string's length times the pattern's size): past it the check
  /// fails with TK_TOO_LARGE. About a second at worst on this machine.
  static constexpr std::uint64_t max_work = 25'000'000;
};

/// A compiled JSON Schema. Immutable, so one may be shared between threads.
///
/// Implemented, with draft 7's meaning: type, enum, const, multipleOf,
/// minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers, the draft
/// 6+ form), minLength, maxLength (code points), pattern (ECMAScript,
/// unanchored), items (a schema or a list), additionalItems, minItems,
/// maxItems, uniqueItems, contains, required, properties, patternProperties,
/// additionalProperties, minProperties, maxProperties, dependencies (and
/// 2019-09's dependentRequired and dependentSchemas), propertyNames,
/// if/then/else, allOf, anyOf, oneOf, not; boolean schemas. Annotations
/// (title, description, default, examples, format…) are not checked, and
/// `default` is not applied. Keywords that would change the meaning of the
/// schema but are not implemented ($ref, $dynamicRef, $recursiveRef,
/// unevaluatedProperties, unevaluatedItems, prefixItems) are refused; other
/// unknown keywords are ignored, as the specification says.
class json_schema {
public:
  /// Compiles `schema` (an object, true or false). Each problem is appended
  /// to `problems` naming the schema path ("input_schema.properties.amount.
  /// minimum: must be a number, not string"); null when there are any.
  static std::shared_ptr<const json_schema> compile(const nlohmann::json& schema,
                                                    std::vector<std::string>& problems);

  /// The failures of `value`, each naming the path of the failing value
  /// ("$.amount: must be at least 0 (is -5)", "$.customer: is required"), at
  /// most schema_limits::max_errors; empty when it is valid. Throws core_error
  /// TK_TOO_LARGE past schema_limits::max_work.
  std::vector<std::string> check(const nlohmann::json& value) const;

  json_schema();
  ~json_schema();
  json_schema(const json_schema&) = delete;
  json_schema& operator=(const json_schema&) = delete;

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

/// Checks a task's context (a JSON object, already validated as JSON) against
/// its pipeline's input_schema, if it has one. Fails with TK_VALIDATION
/// naming each failing value's path, as many as fit ("pipeline ns/p@1:
/// input_schema: $.amount: must be at least 0 (is -5); $.customer: is
/// required"), or TK_TOO_LARGE when checking takes too much work.
void check_task_context(const pipeline_def& p, std::string_view context_json);

}  // namespace tasker::core
