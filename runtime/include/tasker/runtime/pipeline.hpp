// A pipeline (Tasker's task template) as a value: built in code or loaded
// from Tasker-format YAML, validated without any actor system, and turned
// into the core's JSON when a worker registers it.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace tasker {

using json = nlohmann::json;

/// Thrown when a pipeline is invalid or a template cannot be loaded; the
/// message names the pipeline, the step and the field, one problem a line.
class pipeline_error : public std::runtime_error {
public:
  /// One problem, or several one a line.
  explicit pipeline_error(const std::string& what);
  /// Every problem; what() holds them one a line.
  explicit pipeline_error(std::vector<std::string> problems);

  /// Every problem, in the order of what()'s lines.
  const std::vector<std::string>& problems() const noexcept { return *problems_; }

private:
  std::shared_ptr<const std::vector<std::string>> problems_;  // shared: copies must not throw
};

/// Thrown when a YAML template cannot be loaded: the input is wrong, not the
/// program. Each problem starts with the file (and, when it has one, the line
/// and column): "order.yaml:8:5: pipeline shop/order@1 step "a": …".
/// tasker::run_main prints them and exits 2.
class template_error : public pipeline_error {
public:
  using pipeline_error::pipeline_error;
};

/// Bounds on one template; past any of them the template is rejected with a
/// message naming the bound, so a hostile or broken file costs little.
struct template_limits {
  static constexpr std::size_t max_bytes = 1 << 20;  ///< size of a file (1 MiB)
  /// Mappings and lists inside each other (an alias that contains itself
  /// never ends, and is caught here).
  static constexpr int max_depth = 64;
  /// Values read, an alias counting every time it is used (so a small file
  /// of aliases of aliases cannot expand to gigabytes).
  static constexpr std::size_t max_values = 1'000'000;
  static constexpr std::size_t max_steps = 10'000;  ///< the core's own limit
  static constexpr std::size_t max_problems =
      100;  ///< listed per file; a last line counts the rest
};

/// How a step is retried. Defaults follow Tasker.
struct retry_policy {
  int max_attempts = 3;  ///< executions in all, the first included
  /// "none" | "linear" (base x n after the n-th failure) | "exponential"
  /// (base x 2^(n-1)) | "fibonacci" (base x fib(n): base, base, 2 base, 3 base, 5 base…)
  std::string backoff = "exponential";
  std::chrono::milliseconds base{1000};  ///< first delay
  std::chrono::milliseconds cap{30000};  ///< no delay exceeds it (before jitter)
  double jitter = 0.15;                  ///< delay scaled by a factor in [1-j, 1+j]
  bool retryable = true;                 ///< false: every failure is final
};

/// What a step does besides running its handler (Tasker's step `type`).
enum class step_type {
  standard,
  /// Its result (tasker::decide / no_branches) names which of the steps that
  /// depend on it are created; the others are skipped.
  decision,
  /// Waits for those of its dependencies that were created (a decision's
  /// chosen branches, a batch's instances), and sees only their results.
  deferred_convergence,
  /// Its result (tasker::create_batches / no_batches) creates instances of
  /// the batch_worker step that depends on it.
  batchable,
  /// A template: its instances run, one per cursor, never the step itself.
  batch_worker
};

/// The name Tasker's templates use ("deferred_convergence"…).
const char* to_string(step_type t);

/// Everything about a step but its name and handler. Chainable:
/// `tasker::after("a", "b").retry(policy).timeout(30s).with_config({{"rate", 3}})`.
struct step_options {
  std::vector<std::string> dependencies;
  json config = json::object();                ///< handed to the handler (Tasker's initialization)
  std::optional<retry_policy> retry_settings;  ///< empty: the core's default policy
  std::chrono::milliseconds time_limit{0};     ///< 0: the handler's default timeout
  step_type type = step_type::standard;
  /// batch_worker only: batch_size, parallelism, cursor_field,
  /// worker_template, failure_strategy ("fail_fast" or "continue_on_failure").
  json batch_config;
  /// The handler's entry point the step runs (Tasker's handler.method):
  /// one of the methods its handler registered (worker::handle).
  std::string entry_point = "call";

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
  step_options& as(step_type t) {
    type = t;
    return *this;
  }
  /// A batch_worker step with this batch_config.
  step_options& batch(json c) {
    type = step_type::batch_worker;
    batch_config = std::move(c);
    return *this;
  }
  /// Runs the handler's method `m` instead of "call".
  step_options& method(std::string m) {
    entry_point = std::move(m);
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

/// What one environment changes in a step (Tasker's `environments: NAME:
/// steps:` entries); pipeline::for_environment applies it as Tasker does.
struct step_override {
  std::string step;  ///< the step's name, or "ALL" for every step
  /// Merged into the step's config key by key: a key given here replaces
  /// the step's value of it (whole, not merged deeper); other keys stay.
  json initialization = json::object();
  std::optional<std::chrono::milliseconds> timeout;  ///< replaces the step's timeout
  /// Replaces the step's whole retry policy: a field the override does not
  /// give takes its default, not the step's value.
  std::optional<retry_policy> retry;
};

/// A pipeline: namespace, name, version and its steps, in declaration order.
class pipeline {
public:
  pipeline(std::string namespace_name, std::string name, std::string version);

  /// Appends a step; chainable. Validation happens in validate()/check().
  pipeline& step(std::string name, std::string handler, step_options options = {});

  /// Adds an override to `environment` (its overrides apply in the order
  /// added); chainable. A worker started with that environment runs the
  /// pipeline with its overrides (for_environment).
  pipeline& override_in(std::string environment, step_override change);
  /// Every environment's overrides, by environment name.
  const std::map<std::string, std::vector<step_override>>& environments() const {
    return environments_;
  }
  /// The pipeline as it runs in `environment`: that environment's overrides
  /// applied to its steps. An environment it does not define (and "") leaves
  /// it as it is, as in Tasker.
  pipeline for_environment(std::string_view environment) const;
  /// Sets the JSON Schema (draft 7) every task's context must match; chainable.
  /// A task whose context does not match is refused at creation, naming the
  /// path of each failing value. The schema itself is checked by
  /// validate()/check() ($ref and invalid schemas are refused); null removes
  /// it. docs/guide.md (section 5) lists the supported keywords.
  pipeline& input_schema(json schema);
  /// The same from JSON text; throws pipeline_error when it does not parse.
  pipeline& input_schema_text(std::string_view schema_json);
  /// The input schema; null when there is none.
  const json& input_schema() const { return input_schema_; }

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
  /// then counting the rest. Each environment is checked too: an override
  /// of a step the pipeline lacks, and what the core finds in the pipeline
  /// with that environment's overrides and not without.
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
  std::map<std::string, std::vector<step_override>> environments_;
  json input_schema_;  ///< null: none
};

/// Parses one Tasker-format task template (YAML). `origin` names the source
/// in messages (a file name). Throws template_error listing every problem:
/// malformed YAML, missing required fields, fields or values this engine does
/// not support yet (they are rejected, never ignored), bounds passed
/// (template_limits) and what the core's validation finds.
pipeline parse_pipeline_yaml(std::string_view yaml_text, std::string_view origin = "<string>");

/// Loads one template file; throws template_error.
pipeline load_pipeline_yaml(const std::filesystem::path& file);

/// One template file as loaded: its pipeline, or every problem found in it.
struct template_file {
  std::filesystem::path path;
  std::optional<pipeline> loaded;     ///< empty when the file was rejected
  std::vector<std::string> problems;  ///< when rejected: one a line, each starting with the file
};

/// Loads each file, going on past the bad ones; the results are in the
/// order of `files`. The same namespace/name/version in two files rejects
/// the later one. Never throws for a file.
std::vector<template_file> scan_pipeline_files(const std::vector<std::filesystem::path>& files);

/// The *.yaml / *.yml files of a directory (not recursive, hidden files
/// skipped), in name order. Throws template_error when it cannot be listed.
std::vector<std::filesystem::path> list_template_files(const std::filesystem::path& dir);

/// Loads every template of a directory (list_template_files, then
/// scan_pipeline_files); throws template_error listing every problem of every
/// rejected file, if any.
std::vector<pipeline> load_pipeline_dir(const std::filesystem::path& dir);

}  // namespace tasker
