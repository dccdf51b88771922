// A pipeline (task template): a validated DAG of steps, immutable once parsed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/retry.hpp"

namespace tasker::core {

/// What a step does besides running its handler (Tasker's step types).
enum class step_kind {
  standard,
  decision,              ///< its result names which of its children are created
  deferred_convergence,  ///< waits for those of its dependencies that were created
  batchable,             ///< its result asks for instances of its batch worker child
  batch_worker           ///< a template: its instances run, never the step itself
};

const char* to_string(step_kind k);

class json_schema;

/// One step of a pipeline, with its edges precomputed as step indexes.
struct step_def {
  std::string name;
  std::string handler;
  /// The handler's entry point (Tasker's handler.method).
  std::string method = "call";
  std::string config = "{}";  ///< handler config, compact JSON object
  std::vector<std::string> dependencies;
  retry_policy retry;
  millis timeout_ms = 0;       ///< 0: no timeout
  std::vector<int> parents;    ///< direct dependencies
  std::vector<int> children;   ///< direct dependents
  std::vector<int> ancestors;  ///< all transitive dependencies, in index order
  std::string result_key;      ///< `"name":` ready to splice into dependency JSON
  step_kind kind = step_kind::standard;
  std::string batch_config;  ///< batch_worker: its batch_config, compact JSON object
  /// A batch worker whose failed instances do not fail the task
  /// (batch_config.failure_strategy "continue_on_failure").
  bool tolerates_failure = false;
  /// Created with the task: not behind a decision, not a batch worker template.
  bool initially_created = true;
  /// Some ancestor may be skipped or is a batch worker template: its
  /// dependency results depend on the task's rows, not on the pipeline only.
  bool dynamic_dependencies = false;
};

/// A parsed, validated pipeline. Shared read-only between the store and the
/// events it hands out, so its strings outlive every event.
struct pipeline_def {
  std::string namespace_name;
  std::string name;
  std::string version;
  std::vector<step_def> steps;
  std::string canonical_json;  ///< normalised definition: stored, and compared on re-registration
  /// Has decision or batchable steps: its tasks' rows change as they run.
  bool dynamic = false;
  int initial_steps = 0;  ///< steps created with a task (initially_created)
  std::vector<int> topo;  ///< step indexes, parents before children
  std::int64_t id = 0;    ///< assigned by the store
  /// The task context's schema (input_schema); null: any JSON object.
  std::shared_ptr<const json_schema> input_schema;

  /// "namespace/name@version", for messages.
  std::string label() const;
  /// Index of the step called `name`, or -1.
  int index_of(std::string_view step_name) const;
};

using pipeline_ptr = std::shared_ptr<const pipeline_def>;

/// Parses and validates a pipeline definition. Throws core_error:
/// TK_MALFORMED_JSON for bad JSON, TK_VALIDATION (naming the step) for empty
/// or duplicate names, empty handlers, unknown dependencies, cycles and bad
/// retry values, and for an input_schema it refuses (naming the schema path).
std::shared_ptr<pipeline_def> parse_pipeline(std::string_view json);

}  // namespace tasker::core
