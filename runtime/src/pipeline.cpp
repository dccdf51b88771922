#include <tasker/runtime/pipeline.hpp>

#include <algorithm>
#include <cmath>
#include <string_view>
#include <utility>

#include <tasker/core.h>

namespace tasker {

const char* to_string(step_type t) {
  switch (t) {
    case step_type::standard: return "standard";
    case step_type::decision: return "decision";
    case step_type::deferred_convergence: return "deferred_convergence";
    case step_type::batchable: return "batchable";
    case step_type::batch_worker: return "batch_worker";
  }
  return "standard";
}

namespace {

// The core's pipeline JSON. A jitter JSON cannot hold (NaN, infinity) goes
// as its name, so the core reports it instead of reading null as the default.
std::string core_json_of(const pipeline& p, json::error_handler_t on_bad_utf8) {
  json steps = json::array();
  for (const auto& s : p.steps()) {
    const step_options& o = s.options;
    json j = {{"name", s.name},
              {"handler", s.handler},
              {"config", o.config.is_null() ? json::object() : o.config},
              {"dependencies", o.dependencies},
              {"timeout_ms", o.time_limit.count()}};
    if (o.type != step_type::standard)
      j["type"] = to_string(o.type);
    if (!o.batch_config.is_null())
      j["batch_config"] = o.batch_config;
    if (o.entry_point != "call")
      j["method"] = o.entry_point;
    if (const auto& r = o.retry_settings)
      j["retry"] = {
          {"max_attempts", r->max_attempts},
          {"backoff", r->backoff},
          {"base_ms", r->base.count()},
          {"cap_ms", r->cap.count()},
          {"jitter", std::isfinite(r->jitter) ? json(r->jitter) : json(std::to_string(r->jitter))},
          {"retryable", r->retryable}};
    steps.push_back(std::move(j));
  }
  json doc = {{"namespace", p.namespace_name()},
              {"name", p.name()},
              {"version", p.version()},
              {"steps", std::move(steps)}};
  if (!p.input_schema().is_null())
    doc["input_schema"] = p.input_schema();
  return doc.dump(-1, ' ', false, on_bad_utf8);
}

// What the core says of `text`: one problem a line of its message.
std::vector<std::string> core_problems(const std::string& text) {
  tk_error err{};
  if (tk_validate_pipeline(text.c_str(), &err) == TK_OK)
    return {};
  std::vector<std::string> problems;
  std::string_view rest{err.message};
  while (!rest.empty()) {
    const auto end = rest.find('\n');
    problems.emplace_back(rest.substr(0, end));
    if (end == std::string_view::npos)
      break;
    rest.remove_prefix(end + 1);
  }
  return problems;
}

void throw_problems(const std::vector<std::string>& problems) {
  if (!problems.empty())
    throw pipeline_error(problems);
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines)
    out += (out.empty() ? "" : "\n") + line;
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string_view rest{text};
  while (true) {
    const auto end = rest.find('\n');
    lines.emplace_back(rest.substr(0, end));
    if (end == std::string_view::npos)
      return lines;
    rest.remove_prefix(end + 1);
  }
}

}  // namespace

pipeline_error::pipeline_error(const std::string& what)
  : std::runtime_error(what),
    problems_(std::make_shared<const std::vector<std::string>>(split_lines(what))) {
}

pipeline_error::pipeline_error(std::vector<std::string> problems)
  : std::runtime_error(joined(problems)),
    problems_(std::make_shared<const std::vector<std::string>>(std::move(problems))) {
}

pipeline::pipeline(std::string namespace_name, std::string name, std::string version)
  : namespace_(std::move(namespace_name)), name_(std::move(name)), version_(std::move(version)) {
}

pipeline& pipeline::step(std::string name, std::string handler, step_options options) {
  steps_.push_back(step_spec{std::move(name), std::move(handler), std::move(options)});
  return *this;
}

pipeline& pipeline::input_schema(json schema) {
  input_schema_ = std::move(schema);
  return *this;
}

pipeline& pipeline::input_schema_text(std::string_view schema_json) {
  json schema = json::parse(schema_json.begin(), schema_json.end(), nullptr, false);
  if (schema.is_discarded())
    throw pipeline_error("pipeline " + namespace_ + "/" + name_ + "@" + version_
                         + ": input_schema is not valid JSON");
  return input_schema(std::move(schema));
}

const step_spec* pipeline::find(std::string_view name) const {
  for (const auto& s : steps_)
    if (s.name == name)
      return &s;
  return nullptr;
}

pipeline& pipeline::override_in(std::string environment, step_override change) {
  environments_[std::move(environment)].push_back(std::move(change));
  return *this;
}

namespace {

void apply(const step_override& o, step_options& s) {
  if (!o.initialization.empty() && o.initialization.is_object()) {
    if (!s.config.is_object())
      s.config = json::object();
    for (const auto& [key, value] : o.initialization.items())
      s.config[key] = value;
  }
  if (o.timeout)
    s.time_limit = *o.timeout;
  if (o.retry)
    s.retry_settings = o.retry;
}

}  // namespace

pipeline pipeline::for_environment(std::string_view environment) const {
  pipeline out = *this;
  const auto it = environments_.find(std::string(environment));
  if (it == environments_.end())
    return out;
  for (const auto& o : it->second)
    for (auto& s : out.steps_)
      if (o.step == "ALL" || o.step == s.name)
        apply(o, s.options);
  return out;
}

std::vector<std::string> pipeline::validate() const {
  auto problems = core_problems(core_json_of(*this, json::error_handler_t::replace));
  const std::string label = "pipeline " + namespace_ + "/" + name_ + "@" + version_;
  for (const auto& [environment, overrides] : environments_) {
    const std::string where = label + " environment \"" + environment + "\"";
    for (const auto& o : overrides)
      if (o.step != "ALL" && !find(o.step))
        problems.push_back(where + ": overrides step \"" + o.step
                           + "\", which the pipeline does not have");
    const auto base = problems;
    for (auto& p :
         core_problems(core_json_of(for_environment(environment), json::error_handler_t::replace)))
      if (std::find(base.begin(), base.end(), p) == base.end())
        problems.push_back(std::move(p) + " (in environment \"" + environment + "\")");
  }
  return problems;
}

void pipeline::check() const {
  throw_problems(validate());
}

std::string pipeline::to_core_json() const {
  auto text = core_json_of(*this, json::error_handler_t::strict);
  throw_problems(core_problems(text));
  return text;
}

}  // namespace tasker
