// Tasker-format task templates (YAML) to pipelines. Everything the engine
// does not support yet is rejected with a message, never ignored: a template
// that loads runs as written. Fields that carry no behaviour here are checked
// for their shape and dropped (docs/guide.md, section 5, says which). Every
// problem of a file is reported, each with its line and column, and a file
// is bounded (template_limits).
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include "detail/yaml_reader.hpp"
#include <tasker/runtime/pipeline.hpp>

namespace tasker {

namespace {

using detail::attempt;
using detail::for_each_entry;
using detail::in_quotes;
using detail::location;
using detail::mapping;
using detail::scalar_to_json;

constexpr double max_timeout_seconds = 7 * 86400.0;  // the core's cap on a step timeout

/// A required non-empty scalar, as text (a plain `version: 1.0` stays "1.0").
std::string required_text(const mapping::entry* e, const YAML::Node& parent, const location& at,
                          std::string_view field) {
  if (!e || e->value.IsNull())
    at.fail(e ? e->value : parent, field, "is required");
  if (!e->value.IsScalar())
    at.fail(e->value, field, "must be a string");
  if (e->value.Scalar().empty())
    at.fail(e->value, field, "is empty");
  return e->value.Scalar();
}

/// description and the like: text or nothing.
void optional_text(const YAML::Node& value, const location& at, std::string_view field) {
  if (!value.IsNull() && !value.IsScalar())
    at.fail(value, field, "must be a string");
}

/// One of `allowed`, or nothing (the reader's default).
void one_of(const YAML::Node& value, const location& at, std::string_view field,
            std::initializer_list<const char*> allowed) {
  if (value.IsNull())
    return;
  std::string list;
  for (const char* a : allowed) {
    if (value.IsScalar() && value.Scalar() == a)
      return;
    list += (list.empty() ? "" : ", ") + std::string(a);
  }
  at.fail(value, field, "must be one of " + list);
}

std::int64_t integer(const YAML::Node& node, const location& at, std::string_view field) {
  const json v = node.IsScalar() ? scalar_to_json(node, at, field) : json();
  if (!v.is_number_integer())
    at.fail(node, field, "must be an integer");
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
    at.fail(node, field, "is too large");
  return v.get<std::int64_t>();
}

[[noreturn]] void unknown(const mapping::entry& e, const location& at, const std::string& field) {
  at.fail(e.key_node, "", "unknown field " + in_quotes(field));
}

// ---- fields accepted without behaviour ----------------------------------------------

/// system_dependencies: {primary: NAME, secondary: [NAME…]}, the systems a
/// task talks to. Documentation here, as in Tasker.
void check_system_dependencies(const YAML::Node& node, const location& at) {
  const std::string field = "system_dependencies";
  if (node.IsNull())
    return;
  if (!node.IsMap())
    at.fail(node, field, "must be a mapping (primary, secondary)");
  const mapping fields(node, at, field);
  for_each_entry(fields, [&](const mapping::entry& e) {
    const std::string sub = field + "." + e.key;
    if (e.key == "primary")
      return optional_text(e.value, at, sub);
    if (e.key != "secondary")
      unknown(e, at, sub);
    if (e.value.IsNull())
      return;
    if (!e.value.IsSequence())
      at.fail(e.value, sub, "must be a list of names");
    for (const auto& item : e.value)
      if (!item.IsScalar())
        at.fail(item, sub, "must be a list of names");
  });
}

/// A JSON Schema we keep but do not apply: a mapping, true or false.
void check_schema(const YAML::Node& value, const location& at, const std::string& field) {
  if (value.IsNull() || value.IsMap())
    return;
  const json v = value.IsScalar() ? scalar_to_json(value, at, field) : json();
  if (!v.is_boolean())
    at.fail(value, field, "must be a JSON Schema (a mapping, true or false)");
}

/// An event declaration: domain_events entries (name, description, schema)
/// and, for publishes_events, when and how it would be published.
void check_event(const YAML::Node& node, const location& at, const std::string& field,
                 bool published) {
  if (!node.IsMap())
    at.fail(node, field, "must be a mapping with a name");
  const mapping fields(node, at, field);
  attempt([&] { required_text(fields.find("name"), node, at, field + ".name"); });
  for_each_entry(fields, [&](const mapping::entry& e) {
    const std::string sub = field + "." + e.key;
    if (e.key == "name")
      return;
    if (e.key == "description" || (published && e.key == "publisher"))
      return optional_text(e.value, at, sub);
    if (e.key == "schema")
      return check_schema(e.value, at, sub);
    if (published && e.key == "condition")
      return one_of(e.value, at, sub,
                    {"success", "failure", "retryable_failure", "permanent_failure", "always"});
    if (published && e.key == "delivery_mode")
      return one_of(e.value, at, sub, {"durable", "fast", "broadcast"});
    unknown(e, at, sub);
  });
}

/// domain_events (a task's) or publishes_events (a step's): a list of event
/// declarations. Accepted, not acted on: no event is published yet.
void check_events(const mapping::entry& e, const location& at) {
  if (e.value.IsNull())
    return;
  if (!e.value.IsSequence())
    at.fail(e.value, e.key, "must be a list of event declarations");
  std::size_t number = 0;
  for (const auto& item : e.value)
    attempt([&] {
      check_event(item, at, e.key + " #" + std::to_string(++number), e.key == "publishes_events");
    });
}

/// true or false (or nothing).
void optional_flag(const YAML::Node& value, const location& at, const std::string& field) {
  if (value.IsNull())
    return;
  const json v = value.IsScalar() ? scalar_to_json(value, at, field) : json();
  if (!v.is_boolean())
    at.fail(value, field, "must be true or false");
}

/// lifecycle: Tasker's per-template staleness thresholds (minutes) and what
/// to do past them. Accepted with its shape checked, not enforced yet.
void check_lifecycle(const YAML::Node& node, const location& at) {
  if (node.IsNull())
    return;
  if (!node.IsMap())
    at.fail(node, "lifecycle", "must be a mapping");
  const mapping fields(node, at, "lifecycle");
  for_each_entry(fields, [&](const mapping::entry& e) {
    const std::string field = "lifecycle." + e.key;
    const bool duration = e.key == "max_duration_minutes";
    if (duration || e.key == "max_waiting_for_dependencies_minutes"
        || e.key == "max_waiting_for_retry_minutes" || e.key == "max_steps_in_process_minutes") {
      if (e.value.IsNull())
        return;
      const auto n = integer(e.value, at, field);
      const std::int64_t max = duration ? 43200 : 10080;  // 30 days, 7 days
      if (n < 1 || n > max)
        at.fail(e.value, field,
                "is " + std::to_string(n) + ", must be 1 to " + std::to_string(max) + " minutes");
    } else if (e.key == "staleness_action") {
      one_of(e.value, at, field, {"dlq", "error", "none"});
    } else if (e.key == "auto_fail_on_timeout" || e.key == "auto_dlq_on_timeout") {
      optional_flag(e.value, at, field);
    } else {
      unknown(e, at, field);
    }
  });
}

// ---- steps ------------------------------------------------------------------------------

/// A number of seconds, 0 to `max`, as milliseconds (fractions allowed).
std::chrono::milliseconds read_seconds(const YAML::Node& value, const location& at,
                                       std::string_view field, double max, const char* range) {
  const json v = value.IsScalar() ? scalar_to_json(value, at, field) : json();
  if (!v.is_number())
    at.fail(value, field, "must be a number of seconds");
  const double s = v.get<double>();
  if (!(s >= 0 && s <= max))
    at.fail(value, field, "is " + v.dump() + ", must be " + range);
  return std::chrono::milliseconds(std::llround(s * 1000));
}

constexpr std::int64_t max_base_ms = 86'400'000;       // the core's bounds: a day…
constexpr std::int64_t max_cap_ms = 7 * 86'400'000LL;  // …and a week

/// retry: Tasker's fields. initial_delay and max_delay are seconds, another
/// spelling of backoff_base_ms and max_backoff_ms: both spellings of one
/// value may be given only when they agree.
retry_policy parse_retry(const YAML::Node& node, const location& at) {
  retry_policy p;  // Tasker's defaults: 3 attempts, exponential, 1 s base, 30 s cap, ±15 %
  if (node.IsNull())
    return p;
  if (!node.IsMap())
    at.fail(node, "retry", "must be a mapping");
  const mapping fields(node, at, "retry");
  // Each delay as given under either spelling, to refuse the two disagreeing.
  std::optional<std::chrono::milliseconds> base_ms, initial_delay, cap_ms, max_delay;
  for_each_entry(fields, [&](const mapping::entry& e) {
    const std::string field = "retry." + e.key;
    if (e.key == "retryable") {
      const json v = e.value.IsScalar() ? scalar_to_json(e.value, at, field) : json();
      if (!v.is_boolean())
        at.fail(e.value, field, "must be true or false");
      p.retryable = v.get<bool>();
    } else if (e.key == "max_attempts") {
      const auto n = integer(e.value, at, field);
      if (n < 0 || n > 1000)
        at.fail(e.value, field, "is " + std::to_string(n) + ", must be 0 to 1000");
      // max_attempts counts every execution, the first included; Tasker lets
      // 0 mean what 1 means (the first execution runs, no retry follows).
      p.max_attempts = n == 0 ? 1 : static_cast<int>(n);
    } else if (e.key == "backoff") {
      const std::string b = e.value.IsScalar() ? e.value.Scalar() : "";
      if (b != "none" && b != "linear" && b != "exponential" && b != "fibonacci")
        at.fail(e.value, field, "must be none, linear, exponential or fibonacci");
      p.backoff = b;
    } else if (e.key == "backoff_base_ms" || e.key == "max_backoff_ms") {
      const bool base = e.key == "backoff_base_ms";
      const auto ms = integer(e.value, at, field);
      if (ms < 0 || ms > (base ? max_base_ms : max_cap_ms))
        at.fail(e.value, field,
                "is " + std::to_string(ms) + ", must be 0 to "
                    + std::to_string(base ? max_base_ms : max_cap_ms)
                    + (base ? " (a day)" : " (a week)"));
      (base ? base_ms : cap_ms) = std::chrono::milliseconds(ms);
    } else if (e.key == "initial_delay") {
      initial_delay = read_seconds(e.value, at, field, max_base_ms / 1000.0, "0 to 86400 (a day)");
    } else if (e.key == "max_delay") {
      max_delay = read_seconds(e.value, at, field, max_cap_ms / 1000.0, "0 to 604800 (a week)");
    } else {
      unknown(e, at, field);
    }
  });
  const auto settle = [&](const auto& ms, const auto& secs, const char* ms_key,
                          const char* secs_key, std::chrono::milliseconds& out) {
    if (ms && secs && *ms != *secs)
      at.note(fields.find(secs_key)->key_node, "",
              std::string("retry.") + secs_key + " (" + std::to_string(secs->count())
                  + " ms) and retry." + ms_key + " (" + std::to_string(ms->count())
                  + " ms) disagree; give one of them");
    if (ms)
      out = *ms;
    else if (secs)
      out = *secs;
  };
  settle(base_ms, initial_delay, "backoff_base_ms", "initial_delay", p.base);
  settle(cap_ms, max_delay, "max_backoff_ms", "max_delay", p.cap);
  return p;
}

/// handler.initialization: a mapping, as JSON (null: none).
json initialization(const YAML::Node& value, const location& at) {
  if (value.IsNull())
    return json::object();
  if (!value.IsMap())
    at.fail(value, "handler.initialization", "must be a mapping");
  return detail::to_json(value, at, "handler.initialization");
}

void parse_handler(const YAML::Node& node, const location& at, step_spec& out) {
  if (!node.IsMap())
    at.fail(node, "handler", "must be a mapping with a callable");
  const mapping fields(node, at, "handler");
  attempt(
      [&] { out.handler = required_text(fields.find("callable"), node, at, "handler.callable"); });
  for_each_entry(fields, [&](const mapping::entry& e) {
    if (e.key == "callable")
      return;
    if (e.key == "method") {
      // The handler's entry point: one of the methods its worker registered.
      if (!e.value.IsNull())
        out.options.entry_point = required_text(&e, node, at, "handler.method");
    } else if (e.key == "initialization") {
      out.options.config = initialization(e.value, at);
    } else if (e.key == "resolver") {
      // Handlers are registered by name (worker::handle): Tasker's explicit
      // mapping is the only resolver; class lookups need reflection.
      if (!e.value.IsNull() && !(e.value.IsScalar() && e.value.Scalar() == "explicit_mapping"))
        at.fail(e.value, "handler.resolver",
                (e.value.IsScalar() ? "resolver " + in_quotes(e.value.Scalar()) : std::string("it"))
                    + " is not available: handlers are registered by name, so the only resolver "
                      "is \"explicit_mapping\" (the callable is the registered name)");
    } else {
      unknown(e, at, "handler." + e.key);
    }
  });
}

std::vector<std::string> parse_dependencies(const mapping::entry& e, const location& at) {
  std::vector<std::string> names;
  if (e.value.IsNull())
    return names;
  if (!e.value.IsSequence())
    at.fail(e.value, e.key, "must be a list of step names");
  for (const auto& item : e.value) {
    if (!item.IsScalar() || item.Scalar().empty())
      at.fail(item, e.key, "must be a list of step names");
    names.push_back(item.Scalar());
  }
  return names;
}

/// timeout_seconds, of a step or of an override.
std::chrono::milliseconds step_timeout(const YAML::Node& value, const location& at) {
  return read_seconds(value, at, "timeout_seconds", max_timeout_seconds, "0 to 604800 (7 days)");
}

/// A step as read, with its place in the file.
struct parsed_step {
  step_spec spec;
  YAML::Mark mark;
  /// Name, handler and dependencies were read: the core's checks then make
  /// sense (without them they would only repeat the loader's problems).
  bool complete = false;
};

parsed_step parse_step(const YAML::Node& node, std::size_t number, location at) {
  parsed_step out;
  out.mark = node.Mark();
  at.step = "step #" + std::to_string(number);
  if (!node.IsMap()) {
    at.note(node, "", "must be a mapping");
    return out;
  }
  if (const YAML::Node name = node["name"];
      name.IsDefined() && name.IsScalar() && !name.Scalar().empty())
    at.step = "step " + in_quotes(name.Scalar());  // early, for the mapping's own problems
  const mapping fields(node, at, "");
  step_spec& s = out.spec;
  attempt([&] { s.name = required_text(fields.find("name"), node, at, "name"); });
  if (!s.name.empty())
    at.step = "step " + in_quotes(s.name);
  bool dependencies_read = !(fields.find("dependencies") && fields.find("depends_on"));
  if (!dependencies_read)
    at.note(fields.find("depends_on")->key_node, "",
            "\"dependencies\" and its alias \"depends_on\" are both given");
  if (!fields.find("handler"))
    at.note(node, "handler", "is required");
  for_each_entry(fields, [&](const mapping::entry& e) {
    if (e.key == "name")
      return;
    if (e.key == "description" || e.key == "system_dependency") {
      optional_text(e.value, at, e.key);
    } else if (e.key == "handler") {
      parse_handler(e.value, at, s);
    } else if (e.key == "dependencies" || e.key == "depends_on") {
      const bool read = attempt([&] { s.options.dependencies = parse_dependencies(e, at); });
      dependencies_read = dependencies_read && read;
    } else if (e.key == "retry") {
      s.options.retry_settings = parse_retry(e.value, at);
    } else if (e.key == "timeout_seconds") {
      s.options.time_limit = step_timeout(e.value, at);
    } else if (e.key == "type") {
      const std::string type = e.value.IsScalar() ? e.value.Scalar() : "";
      for (auto t : {step_type::standard, step_type::decision, step_type::deferred_convergence,
                     step_type::batchable, step_type::batch_worker})
        if (type == to_string(t)) {
          s.options.type = t;
          return;
        }
      at.fail(e.value, "type",
              "must be standard, decision, deferred_convergence, batchable or batch_worker");
    } else if (e.key == "publishes_events") {
      check_events(e, at);
    } else if (e.key == "result_schema") {
      check_schema(e.value, at, e.key);
    } else if (e.key == "batch_config") {
      if (e.value.IsNull())
        return;
      if (!e.value.IsMap())
        at.fail(e.value, e.key, "must be a mapping");
      s.options.batch_config = detail::to_json(e.value, at, e.key);
    } else {
      unknown(e, at, e.key);
    }
  });
  out.complete = !s.name.empty() && !s.handler.empty() && dependencies_read;
  return out;
}

// ---- environments -----------------------------------------------------------------------

/// A step override as read, with the place of its step name, checked once
/// the steps are known.
struct parsed_override {
  std::string environment;
  step_override change;
  YAML::Node name;
};

step_override parse_override(const YAML::Node& node, const location& at, YAML::Node& name) {
  step_override o;
  if (!node.IsMap())
    at.fail(node, "", "must be a mapping with the name of the step it overrides");
  const mapping fields(node, at, "");
  o.step = required_text(fields.find("name"), node, at, "name");
  name = fields.find("name")->value;
  for_each_entry(fields, [&](const mapping::entry& e) {
    if (e.key == "name")
      return;
    if (e.key == "timeout_seconds") {
      o.timeout = step_timeout(e.value, at);
    } else if (e.key == "retry") {
      o.retry = parse_retry(e.value, at);
    } else if (e.key == "handler") {
      if (e.value.IsNull())
        return;
      if (!e.value.IsMap())
        at.fail(e.value, "handler", "must be a mapping (initialization)");
      const mapping handler(e.value, at, "handler");
      for_each_entry(handler, [&](const mapping::entry& h) {
        if (h.key != "initialization")
          at.fail(h.key_node, "",
                  "an environment overrides handler.initialization only, not handler." + h.key);
        o.initialization = initialization(h.value, at);
      });
    } else {
      unknown(e, at, e.key);
    }
  });
  return o;
}

/// environments: {NAME: {steps: [override…]}}, every environment read.
std::vector<parsed_override> parse_environments(const YAML::Node& node, location at) {
  std::vector<parsed_override> out;
  if (node.IsNull())
    return out;
  if (!node.IsMap())
    at.fail(node, "environments", "must be a mapping of environment names to their overrides");
  const mapping environments(node, at, "environments");
  for_each_entry(environments, [&](const mapping::entry& env) {
    const std::string where = "environments." + env.key;
    if (env.value.IsNull())
      return;
    if (!env.value.IsMap())
      at.fail(env.value, where, "must be a mapping (steps)");
    const mapping fields(env.value, at, where);
    for_each_entry(fields, [&](const mapping::entry& e) {
      if (e.key != "steps")
        unknown(e, at, where + "." + e.key);
      if (e.value.IsNull())
        return;
      if (!e.value.IsSequence())
        at.fail(e.value, where + ".steps", "must be a list of step overrides");
      std::size_t number = 0;
      for (const auto& item : e.value) {
        location in = at;
        in.step = "environment " + in_quotes(env.key) + " override #" + std::to_string(++number);
        if (item.IsMap())
          if (const YAML::Node n = item["name"]; n.IsDefined() && n.IsScalar())
            in.step = "environment " + in_quotes(env.key) + " override of " + in_quotes(n.Scalar());
        attempt([&] {
          parsed_override o{env.key, {}, {}};
          o.change = parse_override(item, in, o.name);
          out.push_back(std::move(o));
        });
      }
    });
  });
  return out;
}

// ---- the template -----------------------------------------------------------------------

/// Where a problem the core found belongs: the step its message names
/// ("pipeline L step \"a\": …" or "pipeline L step #2: …"), else the steps.
/// `duplicates` counts the "duplicate step name" problems met per name: the
/// core reports each later declaration of a name, in order.
YAML::Mark place_of(const std::string& problem, const std::string& label,
                    const std::vector<parsed_step>& steps, const YAML::Mark& fallback,
                    std::map<std::string, std::size_t>& duplicates) {
  const std::string head = "pipeline " + label + " step ";
  if (problem.rfind(head, 0) != 0)
    return fallback;
  const std::string_view rest = std::string_view(problem).substr(head.size());
  if (!rest.empty() && rest[0] == '#') {
    std::size_t n = 0;
    for (std::size_t i = 1; i < rest.size() && rest[i] >= '0' && rest[i] <= '9'; ++i)
      n = n * 10 + static_cast<std::size_t>(rest[i] - '0');
    return n >= 1 && n <= steps.size() ? steps[n - 1].mark : fallback;
  }
  const parsed_step* named = nullptr;  // the longest name that fits: names may hold quotes
  for (const auto& s : steps)
    if (rest.rfind(in_quotes(s.spec.name) + ":", 0) == 0
        && (!named || s.spec.name.size() > named->spec.name.size()))
      named = &s;
  if (!named)
    return fallback;
  if (problem.find(": duplicate step name", head.size() + named->spec.name.size())
      == std::string::npos)
    return named->mark;
  std::size_t k = ++duplicates[named->spec.name];  // the k-th later declaration
  for (const auto& s : steps)
    if (s.spec.name == named->spec.name && k-- == 0)
      return s.mark;
  return named->mark;
}

/// input_schema: a JSON Schema written in YAML (a mapping, true or false);
/// the core checks it when the pipeline is validated.
json read_input_schema(const YAML::Node& value, const location& at) {
  check_schema(value, at, "input_schema");
  return value.IsNull() ? json() : detail::to_json(value, at, "input_schema");
}

/// Where a problem the core found in the input_schema belongs: the node its
/// schema path names ("pipeline L: input_schema.properties.amount.minimum:
/// …", segments ".name", "[3]" and ["any key"]), as deep as the path leads.
YAML::Mark schema_place(const std::string& problem, const std::string& label,
                        const YAML::Node& schema) {
  const std::string head = "pipeline " + label + ": input_schema";
  std::string_view rest = std::string_view(problem).substr(head.size());
  YAML::Node node = schema;
  auto child = [&](const std::string& key, std::size_t index,
                   bool by_index) -> std::optional<YAML::Node> {
    if (by_index && node.IsSequence() && index < node.size())
      return node[index];
    if (!by_index && node.IsMap())
      for (const auto& kv : node)
        if (kv.first.IsScalar() && kv.first.Scalar() == key)
          return kv.second;
    return std::nullopt;
  };
  while (!rest.empty()) {
    std::string key;
    std::size_t index = 0;
    bool by_index = false;
    if (rest[0] == '.') {
      std::size_t end = 1;
      while (end < rest.size() && rest[end] != '.' && rest[end] != '[' && rest[end] != ':')
        ++end;
      key = std::string(rest.substr(1, end - 1));
      rest.remove_prefix(end);
    } else if (rest.size() > 1 && rest[0] == '[' && rest[1] == '"') {
      std::size_t end = 2;
      while (end < rest.size() && rest[end] != '"')
        end += rest[end] == '\\' ? 2 : 1;
      if (end + 1 >= rest.size() || rest[end + 1] != ']')
        break;
      const json parsed = json::parse(rest.substr(1, end), nullptr, false);
      if (!parsed.is_string())
        break;
      key = parsed.get<std::string>();
      rest.remove_prefix(end + 2);
    } else if (rest[0] == '[') {
      const auto end = rest.find(']');
      if (end == std::string_view::npos)
        break;
      by_index = true;
      for (char c : rest.substr(1, end - 1))
        index = index * 10 + static_cast<std::size_t>(c - '0');
      rest.remove_prefix(end + 1);
    } else {
      break;
    }
    const auto next = child(key, index, by_index);
    if (!next)
      break;
    node.reset(*next);
  }
  return node.Mark();
}

std::optional<pipeline> read_template(const YAML::Node& root, location at) {
  if (!root.IsMap()) {
    at.note(root, "", "a task template must be a mapping (name, namespace_name, version, steps)");
    return std::nullopt;
  }
  if (!detail::within_bounds(root, at))
    return std::nullopt;
  const mapping fields(root, at, "");
  if (const auto* name = fields.find("name"); name && name->value.IsScalar())
    at.pipeline = "pipeline " + in_quotes(name->value.Scalar());
  std::string ns, name, version;
  attempt([&] { ns = required_text(fields.find("namespace_name"), root, at, "namespace_name"); });
  attempt([&] { name = required_text(fields.find("name"), root, at, "name"); });
  attempt([&] { version = required_text(fields.find("version"), root, at, "version"); });
  const std::string label = ns + "/" + name + "@" + version;
  const bool named = !ns.empty() && !name.empty() && !version.empty();
  if (named)
    at.pipeline = "pipeline " + label;
  const mapping::entry* schema_entry = fields.find("input_schema");
  json input_schema;  // null: none

  std::vector<parsed_override> overrides;
  for_each_entry(fields, [&](const mapping::entry& e) {
    if (e.key == "name" || e.key == "namespace_name" || e.key == "version" || e.key == "steps"
        || e.key == "metadata")  // documentation only
      return;
    if (e.key == "description")
      optional_text(e.value, at, e.key);
    else if (e.key == "system_dependencies")
      check_system_dependencies(e.value, at);
    else if (e.key == "domain_events")
      check_events(e, at);
    else if (e.key == "environments")
      overrides = parse_environments(e.value, at);
    else if (e.key == "lifecycle")
      check_lifecycle(e.value, at);
    else if (e.key == "input_schema")
      input_schema = read_input_schema(e.value, at);
    else
      unknown(e, at, e.key);
  });

  std::vector<parsed_step> steps;
  bool complete = named;
  const auto* list = fields.find("steps");
  if (!list || list->value.IsNull()) {
    at.note(root, "steps", "is required");
    complete = false;
  } else if (!list->value.IsSequence() || list->value.size() == 0) {
    at.note(list->value, "steps", "must be a non-empty list");
    complete = false;
  } else if (list->value.size() > template_limits::max_steps) {
    at.note(list->value, "steps",
            "has " + std::to_string(list->value.size()) + " steps, at most "
                + std::to_string(template_limits::max_steps) + " are allowed");
    complete = false;
  } else {
    std::size_t number = 0;
    for (const auto& item : list->value) {
      steps.push_back(parse_step(item, ++number, at));
      complete = complete && steps.back().complete;
    }
  }
  // An override names a step of the template (Tasker skips the others
  // silently; a misspelt name here is a problem).
  const auto is_step = [&](const std::string& n) {
    return std::any_of(steps.begin(), steps.end(),
                       [&](const parsed_step& s) { return s.spec.name == n; });
  };
  const auto unknown_step = [&](const parsed_override& o) {
    if (o.change.step == "ALL" || is_step(o.change.step))
      return false;
    location in = at;
    in.step = "environment " + in_quotes(o.environment);
    in.note(o.name, "",
            "overrides step " + in_quotes(o.change.step)
                + ", which the template does not have (name one of its steps, or ALL)");
    return true;
  };
  if (!steps.empty())  // without steps every name would be unknown
    overrides.erase(std::remove_if(overrides.begin(), overrides.end(), unknown_step),
                    overrides.end());
  if (!complete)
    return std::nullopt;

  pipeline p(ns, name, version);
  for (const auto& s : steps)
    p.step(s.spec.name, s.spec.handler, s.spec.options);
  for (auto& o : overrides)
    p.override_in(o.environment, std::move(o.change));
  p.input_schema(input_schema);
  std::map<std::string, std::size_t> duplicates;
  for (const auto& problem : p.validate())
    at.record(schema_entry && problem.rfind("pipeline " + label + ": input_schema", 0) == 0
                  ? schema_place(problem, label, schema_entry->value)
                  : place_of(problem, label, steps, list->value.Mark(), duplicates),
              problem);
  if (!at.problems->empty())
    return std::nullopt;
  return p;
}

template_error file_error(const std::string& origin, const std::string& problem) {
  return template_error(std::vector<std::string>{origin + ": " + problem});
}

}  // namespace

pipeline parse_pipeline_yaml(std::string_view yaml_text, std::string_view origin) {
  detail::problem_list problems;
  const location at{std::string(origin), {}, {}, &problems};
  if (yaml_text.size() > template_limits::max_bytes)
    throw file_error(at.origin, "is " + std::to_string(yaml_text.size())
                                    + " bytes, more than a template may have ("
                                    + std::to_string(template_limits::max_bytes) + ")");
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(yaml_text));
  } catch (const YAML::DeepRecursion& e) {
    at.record(e.mark, "mappings and lists are nested more than "
                          + std::to_string(template_limits::max_depth) + " deep");
    throw template_error(problems.lines(at.origin));
  } catch (const YAML::Exception& e) {
    at.record(e.mark, "malformed YAML: " + e.msg);
    throw template_error(problems.lines(at.origin));
  }
  if (documents.empty() || (documents.size() == 1 && documents[0].IsNull()))
    throw file_error(at.origin, "the template is empty");
  if (documents.size() > 1)
    throw file_error(at.origin, "holds " + std::to_string(documents.size())
                                    + " YAML documents, one template per file is expected");
  std::optional<pipeline> p;
  try {
    p = read_template(documents[0], at);
  } catch (const YAML::Exception& e) {  // a node access this loader did not guard
    at.record(YAML::Mark::null_mark(), e.what());
  }
  if (!problems.empty() || !p) {
    auto lines = problems.lines(at.origin);
    if (lines.empty())
      lines.push_back(at.origin + ": cannot be loaded");
    throw template_error(std::move(lines));
  }
  return std::move(*p);
}

pipeline load_pipeline_yaml(const std::filesystem::path& file) {
  const std::string name = file.string();
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw file_error(name, "is a directory, not a template file");
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw file_error(name, std::string("cannot be read: ") + std::strerror(errno));
  // One byte past the limit tells a file that is too large, pipes included.
  std::string text(template_limits::max_bytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad())
    throw file_error(name, "cannot be read");
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > template_limits::max_bytes)
    throw file_error(name, "is larger than a template may be ("
                               + std::to_string(template_limits::max_bytes) + " bytes)");
  return parse_pipeline_yaml(text, name);
}

std::vector<template_file> scan_pipeline_files(const std::vector<std::filesystem::path>& files) {
  std::vector<template_file> out;
  std::map<std::string, std::filesystem::path> seen;  // "ns/name@version" -> file
  for (const auto& file : files) {
    template_file& t = out.emplace_back();
    t.path = file;
    try {
      pipeline p = load_pipeline_yaml(file);
      const std::string id = p.namespace_name() + "/" + p.name() + "@" + p.version();
      if (auto [it, fresh] = seen.emplace(id, file); !fresh)
        t.problems.push_back(file.string() + ": pipeline " + id + " is already defined in "
                             + it->second.string());
      else
        t.loaded = std::move(p);
    } catch (const pipeline_error& e) {
      t.problems = e.problems();
    }
  }
  return out;
}

std::vector<std::filesystem::path> list_template_files(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw file_error(dir.string(), "cannot load templates from it: not a directory");
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    const std::string name = path.filename().string();
    const std::string ext = path.extension().string();
    std::error_code type_ec;
    if (name.empty() || name[0] == '.' || (ext != ".yaml" && ext != ".yml")
        || !it->is_regular_file(type_ec))
      continue;  // hidden files (editor swap files…) and anything else are not templates
    files.push_back(path);
  }
  if (ec)
    throw file_error(dir.string(), "cannot be listed: " + ec.message());
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  return files;
}

std::vector<pipeline> load_pipeline_dir(const std::filesystem::path& dir) {
  std::vector<pipeline> pipelines;
  std::vector<std::string> problems;
  for (auto& t : scan_pipeline_files(list_template_files(dir))) {
    if (t.loaded)
      pipelines.push_back(std::move(*t.loaded));
    problems.insert(problems.end(), t.problems.begin(), t.problems.end());
  }
  if (!problems.empty())
    throw template_error(std::move(problems));
  return pipelines;
}

}  // namespace tasker
