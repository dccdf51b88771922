#include <tasker/runtime/step_context.hpp>

#include <string>

namespace tasker {

namespace {

/// Parses one JSON text of the event that must hold an object (null counts as {}).
json parse_object(const std::string& text, const char* what) {
  json v;
  try {
    v = json::parse(text);
  } catch (const json::parse_error& e) {
    throw step_input_error(std::string(what) + " is not valid JSON: " + e.what());
  }
  if (v.is_null())
    return json::object();
  if (!v.is_object())
    throw step_input_error(std::string(what) + " is " + std::string(v.type_name())
                           + ", expected a JSON object");
  return v;
}

/// How a value reads in a message: "a string", "an integer", "null"…
std::string describe(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a floating-point number (" + v.dump() + ")";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a " + std::string(v.type_name());
  }
}

/// "a, b, c" of an object's keys, cut short after a few.
std::string key_list(const json& object) {
  std::string out;
  std::size_t n = 0;
  for (auto it = object.begin(); it != object.end(); ++it, ++n) {
    if (n == 20) {
      out += ", ...";
      break;
    }
    if (n > 0)
      out += ", ";
    out += it.key();
  }
  return out;
}

}  // namespace

step_context::step_context(const step_event& event) : event_(event) {
}

json step_context::signal() const {
  if (!event_.signalled)
    return json();
  return json::parse(event_.signal_payload);  // the core checked it
}

const json& step_context::context() const {
  if (!context_parsed_) {
    context_ = parse_object(event_.task_context, "the task context");
    context_parsed_ = true;
  }
  return context_;
}

const json& step_context::config() const {
  if (!config_parsed_) {
    config_ = parse_object(event_.handler_config, "the handler config");
    config_parsed_ = true;
  }
  return config_;
}

const json& step_context::dependency_results() const {
  if (!dependencies_parsed_) {
    dependencies_ = parse_object(event_.dependency_results, "the dependency results");
    dependencies_parsed_ = true;
  }
  return dependencies_;
}

const json& step_context::dependency_result(std::string_view step) const {
  const json& all = dependency_results();
  if (const json* v = find(all, step))
    return *v;
  std::string msg = "no dependency result for step \"" + std::string(step) + "\": ";
  if (all.empty())
    msg += "step \"" + event_.step_name + "\" has no ancestors";
  else
    msg += "the ancestors of step \"" + event_.step_name + "\" are " + key_list(all);
  throw step_input_error(msg);
}

json step_context::all_dependency_results(std::string_view prefix) const {
  json out = json::object();
  for (const auto& [name, result] : dependency_results().items())
    if (std::string_view(name).substr(0, prefix.size()) == prefix)
      out[name] = result;
  return out;
}

const json& step_context::step_inputs() const {
  if (!inputs_parsed_) {
    inputs_ = parse_object(event_.step_inputs, "the step's inputs");
    inputs_parsed_ = true;
  }
  return inputs_;
}

const json& step_context::batch_cursor() const {
  const json* cursor = find(step_inputs(), "cursor");
  if (!cursor || !cursor->is_object())
    throw step_input_error("step \"" + event_.step_name
                           + "\" has no batch cursor: it is no batch worker instance");
  return *cursor;
}

json step_context::checkpoint() const {
  const json* c = find(step_inputs(), "checkpoint");
  return c ? *c : json();
}

json step_context::batch_config() const {
  const json* c = find(step_inputs(), "batch_config");
  return c && c->is_object() ? *c : json::object();
}

const json* step_context::find(const json& object, std::string_view key) {
  if (!object.is_object())
    return nullptr;
  auto it = object.find(std::string(key));  // nlohmann < 3.11 has no heterogeneous find
  return it == object.end() ? nullptr : &*it;
}

const json& step_context::lookup(const json& object, std::string_view key, const char* what) {
  if (const json* v = find(object, key))
    return *v;
  std::string msg = std::string(what) + " \"" + std::string(key) + "\" is missing";
  msg += object.empty() ? " (there are none)" : " (present: " + key_list(object) + ")";
  throw step_input_error(msg);
}

const json* step_context::descend_key(const json& at, std::string_view key) {
  return find(at, key);
}

const json* step_context::descend_index(const json& at, long long index) {
  if (!at.is_array() || index < 0 || static_cast<unsigned long long>(index) >= at.size())
    return nullptr;
  return &at[static_cast<std::size_t>(index)];
}

void step_context::wrong_type(std::string_view key, const char* what, const char* wanted,
                              const json& got) {
  throw step_input_error(std::string(what) + " \"" + std::string(key) + "\" is " + describe(got)
                         + ", expected " + wanted);
}

void step_context::out_of_range(std::string_view key, const char* what, const json& got,
                                const std::string& min, const std::string& max) {
  throw step_input_error(std::string(what) + " \"" + std::string(key) + "\" is " + got.dump()
                         + ", out of range for the requested integer type (" + min + " to " + max
                         + ")");
}

}  // namespace tasker
