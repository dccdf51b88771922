// A pipeline (Tasker's task template) as a value: built in code or loaded
// from Tasker-format YAML, validated without any actor system, and turned
// into the core's JSON when a worker registers it.
#pragma once

#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace tasker {

using json = nlohmann::json;

/// Thrown when a pipeline is invalid or a template cannot be loaded; the
/// message names the pipeline, the step and the field.
class pipeline_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// How a step is retried. Defaults follow Tasker.
struct retry_policy {
  int max_attempts = 3;                  ///< executions in all, the first included
  std::string backoff = "exponential";   ///< "none" | "linear" | "exponential"
  std::chrono::milliseconds base{1000};  ///< first delay
  std::chrono::milliseconds cap{30000};  ///< no delay exceeds it (before jitter)
  double jitter = 0.15;                  ///< delay scaled by a factor in [1-j, 1+j]
  bool retryable = true;                 ///< false: every failure is final
};

/// Everything about a step but its name and handler. Chainable:
/// `tasker::after("a", "b").retry(policy).timeout(30s).with_config({{"rate", 3}})`.
struct step_options {
  std::vector<std::string> dependencies;
  json config = json::object();                ///< handed to the handler (Tasker's initialization)
  std::optional<retry_policy> retry_settings;  ///< empty: the core's default policy
  std::chrono::milliseconds time_limit{0};     ///< 0: the handler's default timeout

  step_options& with_config(json c) {
    config = std::move(c);
    return *this;
  }
  step_options& retry(retry_policy p) {
    retry_settings = std::move(p);
    return *this;
  }
  step_options& timeout(std::chrono::milliseconds t) {
    time_limit = t;
    return *this;
  }
};

/// Options with the given dependencies: `after("left", "right")`.
template <class... Names>
step_options after(Names&&... names) {
  step_options o;
  (o.dependencies.emplace_back(std::forward<Names>(names)), ...);
  return o;
}

/// One step of a pipeline.
struct step_spec {
  std::string name;
  std::string handler;
  step_options options;
};

/// A pipeline: namespace, name, version and its steps, in declaration order.
class pipeline {
public:
  pipeline(std::string namespace_name, std::string name, std::string version);

  /// Appends a step; chainable. Validation happens in validate()/check().
  pipeline& step(std::string name, std::string handler, step_options options = {});

  const std::string& namespace_name() const { return namespace_; }
  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }
  const std::vector<step_spec>& steps() const { return steps_; }
  /// The step called `name`, or null.
  const step_spec* find(std::string_view name) const;

  /// Every problem the core finds (tk_validate_pipeline: empty names, empty
  /// handlers, duplicate names, unknown dependencies, cycles, out-of-range
  /// retry values), each naming the pipeline and the step; empty when the
  /// pipeline is valid. As many as fit in one core message, the last line
  /// then counting the rest.
  std::vector<std::string> validate() const;
  /// Throws pipeline_error listing every problem, if any.
  void check() const;

  /// The core's pipeline JSON (tk_register_pipeline); calls check() first.
  std::string to_core_json() const;

private:
  std::string namespace_;
  std::string name_;
  std::string version_;
  std::vector<step_spec> steps_;
};

/// Parses one Tasker-format task template (YAML). `origin` names the source
/// in messages (a file name). Throws pipeline_error for malformed YAML,
/// missing required fields, and fields or values this engine does not
/// support yet (they are rejected, never ignored).
pipeline parse_pipeline_yaml(std::string_view yaml_text, std::string_view origin = "<string>");

/// Loads one template file.
pipeline load_pipeline_yaml(const std::filesystem::path& file);

/// Loads every *.yaml / *.yml file of a directory (not recursive), in name order.
std::vector<pipeline> load_pipeline_dir(const std::filesystem::path& dir);

}  // namespace tasker
