// Tasker-format task templates (YAML) to pipelines. Everything the engine
// does not support yet is rejected with a message, never ignored: a template
// that loads runs as written.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include <tasker/runtime/pipeline.hpp>

namespace tasker {

namespace {

constexpr double max_timeout_seconds = 7 * 86400.0;  // the core's cap on a step timeout

std::string in_quotes(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

/// Where the loader is: file, pipeline and step, for messages.
struct location {
  std::string origin;
  std::string pipeline;  ///< "pipeline ns/name@version" once known
  std::string step;      ///< "step \"name\"" inside a step

  /// Throws pipeline_error "origin:line:col: pipeline … step …: field: problem".
  [[noreturn]] void fail(const YAML::Node& at, std::string_view field,
                         const std::string& problem) const {
    std::string msg = origin;
    const YAML::Mark mark = at.IsDefined() ? at.Mark() : YAML::Mark::null_mark();
    if (!mark.is_null())
      msg += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
    msg += ": ";
    if (!pipeline.empty())
      msg += pipeline + (step.empty() ? "" : " " + step) + ": ";
    else if (!step.empty())
      msg += step + ": ";
    if (!field.empty())
      msg += std::string(field) + ": ";
    throw pipeline_error(msg + problem);
  }
};

/// A mapping's entries by key, in document order; rejects non-scalar and duplicate keys.
struct mapping {
  struct entry {
    std::string key;
    YAML::Node key_node, value;
  };
  std::vector<entry> entries;

  mapping(const YAML::Node& map, const location& at, std::string_view field) {
    for (const auto& pair : map) {  // by value: yaml-cpp's iterator hands out temporaries
      const YAML::Node key = pair.first;
      if (!key.IsScalar())
        at.fail(key, field, "keys must be plain names");
      for (const auto& e : entries)
        if (e.key == key.Scalar())
          at.fail(key, field, "key " + in_quotes(e.key) + " appears twice");
      entries.push_back(entry{key.Scalar(), key, pair.second});
    }
  }
  const entry* find(std::string_view key) const {
    for (const auto& e : entries)
      if (e.key == key)
        return &e;
    return nullptr;
  }
};

/// True when `s` is a non-empty run of digits of `base` (8, 10 or 16).
bool is_digits(std::string_view s, int base = 10) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [base](char c) {
    if (base == 16)
      return std::isxdigit(static_cast<unsigned char>(c)) != 0;
    return c >= '0' && c < '0' + base;
  });
}

/// YAML 1.2 core schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool is_float(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+'))
    s.remove_prefix(1);
  const auto e = s.find_first_of("eE");
  std::string_view mantissa = s.substr(0, e);
  if (e != std::string_view::npos) {
    std::string_view exponent = s.substr(e + 1);
    if (!exponent.empty() && (exponent[0] == '-' || exponent[0] == '+'))
      exponent.remove_prefix(1);
    if (!is_digits(exponent))
      return false;
  }
  const auto dot = mantissa.find('.');
  if (dot == std::string_view::npos)
    return is_digits(mantissa);
  const std::string_view whole = mantissa.substr(0, dot), fraction = mantissa.substr(dot + 1);
  if (whole.empty())
    return is_digits(fraction);
  return is_digits(whole) && (fraction.empty() || is_digits(fraction));
}

/// One scalar as JSON, resolved by YAML 1.2's core schema: quoted text is a
/// string; plain true/false, integers (decimal, 0x, 0o) and floats are typed.
json scalar_to_json(const YAML::Node& node, const location& at, std::string_view field) {
  const std::string& tag = node.Tag();
  const std::string& s = node.Scalar();
  if (tag == "!" || tag == "tag:yaml.org,2002:str")
    return s;
  if (tag != "?" && tag != "tag:yaml.org,2002:int" && tag != "tag:yaml.org,2002:float"
      && tag != "tag:yaml.org,2002:bool" && tag != "tag:yaml.org,2002:null")
    at.fail(node, field, "the tag " + in_quotes(tag) + " is not supported");

  if (s == "true" || s == "True" || s == "TRUE")
    return true;
  if (s == "false" || s == "False" || s == "FALSE")
    return false;
  if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty())
    return nullptr;

  std::string_view digits = s;
  const bool negative = !digits.empty() && digits[0] == '-';
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+'))
    digits.remove_prefix(1);
  int base = 10;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'o')
      && digits.size() == s.size()) {  // no sign on 0x / 0o in the core schema
    base = digits[1] == 'x' ? 16 : 8;
    digits.remove_prefix(2);
  }
  if (is_digits(digits, base)) {
    std::uint64_t magnitude = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), magnitude, base);
    const std::uint64_t int64_max = static_cast<std::uint64_t>(INT64_MAX);
    if (ec != std::errc{} || end != digits.data() + digits.size()
        || (negative && magnitude > int64_max + 1))
      at.fail(node, field, "the integer " + s + " does not fit in 64 bits");
    if (!negative)
      return magnitude;
    return magnitude == int64_max + 1 ? INT64_MIN : -static_cast<std::int64_t>(magnitude);
  }

  if (is_float(s)) {
    std::string_view text = s;
    if (text[0] == '+')
      text.remove_prefix(1);
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(value))
      at.fail(node, field, "the number " + s + " is out of range");
    return value;
  }
  static const char* non_finite[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf", "+.INF",
                                     "-.inf", "-.Inf", "-.INF", ".nan",  ".NaN",  ".NAN"};
  if (std::find(std::begin(non_finite), std::end(non_finite), s) != std::end(non_finite))
    at.fail(node, field, s + " cannot be represented in JSON");
  return s;  // any other plain scalar is a string
}

/// Any YAML node as JSON; mapping keys become strings.
json to_json(const YAML::Node& node, const location& at, std::string_view field) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: return nullptr;
    case YAML::NodeType::Scalar: return scalar_to_json(node, at, field);
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node)
        out.push_back(to_json(item, at, field));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      const mapping fields(node, at, field);
      for (const auto& e : fields.entries)
        out[e.key] = to_json(e.value, at, std::string(field) + "." + e.key);
      return out;
    }
  }
  return nullptr;
}

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
void optional_text(const mapping::entry& e, const location& at) {
  if (!e.value.IsNull() && !e.value.IsScalar())
    at.fail(e.value, e.key, "must be a string");
}

std::int64_t integer(const YAML::Node& node, const location& at, std::string_view field) {
  const json v = node.IsScalar() ? scalar_to_json(node, at, field) : json();
  if (!v.is_number_integer())
    at.fail(node, field, "must be an integer");
  if (v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
    at.fail(node, field, "is too large");
  return v.get<std::int64_t>();
}

retry_policy parse_retry(const YAML::Node& node, const location& at) {
  retry_policy p;  // Tasker's defaults: 3 attempts, exponential, 1 s base, 30 s cap, ±15 %
  if (node.IsNull())
    return p;
  if (!node.IsMap())
    at.fail(node, "retry", "must be a mapping");
  const mapping fields(node, at, "retry");
  for (const auto& e : fields.entries) {
    const std::string field = "retry." + e.key;
    if (e.key == "retryable") {
      const json v = e.value.IsScalar() ? scalar_to_json(e.value, at, field) : json();
      if (!v.is_boolean())
        at.fail(e.value, field, "must be true or false");
      p.retryable = v.get<bool>();
    } else if (e.key == "max_attempts") {
      const auto n = integer(e.value, at, field);
      if (n < 1 || n > 1000)
        at.fail(e.value, field, "is " + std::to_string(n) + ", must be 1 to 1000");
      p.max_attempts = static_cast<int>(n);
    } else if (e.key == "backoff") {
      const std::string b = e.value.IsScalar() ? e.value.Scalar() : "";
      if (b == "fibonacci")
        at.fail(e.value, field, "backoff \"fibonacci\" is not supported yet");
      if (b != "none" && b != "linear" && b != "exponential")
        at.fail(e.value, field, "must be none, linear or exponential");
      p.backoff = b;
    } else if (e.key == "backoff_base_ms" || e.key == "max_backoff_ms") {
      const auto ms = integer(e.value, at, field);
      if (ms < 0)
        at.fail(e.value, field, "is " + std::to_string(ms) + ", must not be negative");
      (e.key == "backoff_base_ms" ? p.base : p.cap) = std::chrono::milliseconds(ms);
    } else {
      at.fail(e.key_node, "", "unknown field " + in_quotes(field));
    }
  }
  return p;
}

void parse_handler(const YAML::Node& node, const location& at, step_spec& out) {
  if (!node.IsMap())
    at.fail(node, "handler", "must be a mapping with a callable");
  const mapping fields(node, at, "handler");
  out.handler = required_text(fields.find("callable"), node, at, "handler.callable");
  for (const auto& e : fields.entries) {
    if (e.key == "callable")
      continue;
    if (e.key == "method") {
      if (!e.value.IsNull() && !(e.value.IsScalar() && e.value.Scalar() == "call"))
        at.fail(e.value, "handler.method",
                (e.value.IsScalar() ? "method " + in_quotes(e.value.Scalar()) : std::string("it"))
                    + " is not supported yet (only \"call\")");
    } else if (e.key == "initialization") {
      if (e.value.IsNull())
        continue;
      if (!e.value.IsMap())
        at.fail(e.value, "handler.initialization", "must be a mapping");
      out.options.config = to_json(e.value, at, "handler.initialization");
    } else {
      at.fail(e.key_node, "", "unknown field " + in_quotes("handler." + e.key));
    }
  }
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

step_spec parse_step(const YAML::Node& node, std::size_t number, location at) {
  at.step = "step #" + std::to_string(number);
  if (!node.IsMap())
    at.fail(node, "", "must be a mapping");
  if (const YAML::Node name = node["name"];
      name.IsDefined() && name.IsScalar() && !name.Scalar().empty())
    at.step = "step " + in_quotes(name.Scalar());  // early, for the mapping's own errors
  const mapping fields(node, at, "");
  step_spec s;
  s.name = required_text(fields.find("name"), node, at, "name");
  at.step = "step " + in_quotes(s.name);
  if (fields.find("dependencies") && fields.find("depends_on"))
    at.fail(fields.find("depends_on")->key_node, "",
            "\"dependencies\" and its alias \"depends_on\" are both given");
  if (!fields.find("handler"))
    at.fail(node, "handler", "is required");
  for (const auto& e : fields.entries) {
    if (e.key == "name")
      continue;
    if (e.key == "description") {
      optional_text(e, at);
    } else if (e.key == "handler") {
      parse_handler(e.value, at, s);
    } else if (e.key == "dependencies" || e.key == "depends_on") {
      s.options.dependencies = parse_dependencies(e, at);
    } else if (e.key == "retry") {
      s.options.retry_settings = parse_retry(e.value, at);
    } else if (e.key == "timeout_seconds") {
      const json v = e.value.IsScalar() ? scalar_to_json(e.value, at, e.key) : json();
      if (!v.is_number())
        at.fail(e.value, e.key, "must be a number of seconds");
      const double seconds = v.get<double>();
      if (seconds < 0 || seconds > max_timeout_seconds)
        at.fail(e.value, e.key, "is " + v.dump() + ", must be 0 to 604800 (7 days)");
      s.options.time_limit = std::chrono::milliseconds(std::llround(seconds * 1000));
    } else if (e.key == "type") {
      const std::string type = e.value.IsScalar() ? e.value.Scalar() : "";
      if (type == "standard")
        continue;
      if (type == "decision" || type == "deferred_convergence" || type == "batchable"
          || type == "batch_worker")
        at.fail(e.value, "", "step type " + in_quotes(type) + " is not supported yet");
      at.fail(e.value, "type",
              "must be standard, decision, deferred_convergence, batchable or batch_worker");
    } else {
      at.fail(e.key_node, "", "unknown field " + in_quotes(e.key));
    }
  }
  return s;
}

pipeline parse_document(const YAML::Node& root, location at) {
  if (!root.IsMap())
    at.fail(root, "", "a task template must be a mapping (name, namespace_name, version, steps)");
  const mapping fields(root, at, "");
  if (const auto* name = fields.find("name"); name && name->value.IsScalar())
    at.pipeline = "pipeline " + in_quotes(name->value.Scalar());
  const std::string ns = required_text(fields.find("namespace_name"), root, at, "namespace_name");
  const std::string name = required_text(fields.find("name"), root, at, "name");
  const std::string version = required_text(fields.find("version"), root, at, "version");
  at.pipeline = "pipeline " + ns + "/" + name + "@" + version;
  pipeline p(ns, name, version);

  for (const auto& e : fields.entries) {
    if (e.key == "name" || e.key == "namespace_name" || e.key == "version"
        || e.key == "metadata")  // documentation only
      continue;
    if (e.key == "description")
      optional_text(e, at);
    else if (e.key == "input_schema" || e.key == "environments")
      at.fail(e.key_node, "", in_quotes(e.key) + " is not supported yet");
    else if (e.key != "steps")
      at.fail(e.key_node, "", "unknown field " + in_quotes(e.key));
  }

  const auto* steps = fields.find("steps");
  if (!steps || steps->value.IsNull())
    at.fail(root, "steps", "is required");
  if (!steps->value.IsSequence() || steps->value.size() == 0)
    at.fail(steps->value, "steps", "must be a non-empty list");
  std::size_t number = 0;
  for (const auto& item : steps->value) {
    step_spec s = parse_step(item, ++number, at);
    p.step(std::move(s.name), std::move(s.handler), std::move(s.options));
  }

  const auto problems = p.validate();
  if (!problems.empty()) {
    std::string msg;
    for (const auto& problem : problems)
      msg += (msg.empty() ? "" : "\n") + at.origin + ": " + problem;
    throw pipeline_error(msg);
  }
  return p;
}

}  // namespace

pipeline parse_pipeline_yaml(std::string_view yaml_text, std::string_view origin) {
  location at{std::string(origin), {}, {}};
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    std::string msg = at.origin;
    if (!e.mark.is_null())
      msg += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    throw pipeline_error(msg + ": malformed YAML: " + e.msg);
  }
  if (documents.empty() || (documents.size() == 1 && documents[0].IsNull()))
    throw pipeline_error(at.origin + ": the template is empty");
  if (documents.size() > 1)
    throw pipeline_error(at.origin + ": holds " + std::to_string(documents.size())
                         + " YAML documents, one template per file is expected");
  try {
    return parse_document(documents[0], at);
  } catch (
      const YAML::Exception& e) {  // a node access this loader did not guard: still a load error
    throw pipeline_error(at.origin + ": " + e.what());
  }
}

pipeline load_pipeline_yaml(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw pipeline_error("cannot read " + file.string() + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    throw pipeline_error("cannot read " + file.string());
  return parse_pipeline_yaml(text.str(), file.string());
}

std::vector<pipeline> load_pipeline_dir(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw pipeline_error("cannot load templates from " + dir.string() + ": not a directory");
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
    throw pipeline_error("cannot list " + dir.string() + ": " + ec.message());
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });

  std::vector<pipeline> out;
  std::map<std::string, fs::path> seen;  // "ns/name@version" -> file
  for (const auto& file : files) {
    pipeline p = load_pipeline_yaml(file);
    const std::string id = p.namespace_name() + "/" + p.name() + "@" + p.version();
    if (auto [it, fresh] = seen.emplace(id, file); !fresh)
      throw pipeline_error(file.string() + ": pipeline " + id + " is already defined in "
                           + it->second.string());
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace tasker
