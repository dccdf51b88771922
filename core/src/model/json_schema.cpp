// GCC 12 warns, falsely, of an uninitialised std::function inside <regex>'s
// automaton when building with -fsanitize=address (a known GCC issue in
// libstdc++'s headers); the state of this pragma where those headers are
// read is what counts, so it comes before every include.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "model/json_schema.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <regex>
#include <utility>

#include "abi/error.hpp"
#include "model/pipeline.hpp"

namespace tasker::core {

namespace {

using nlohmann::json;

// ---- text -----------------------------------------------------------------------------

/// Code points of valid UTF-8 (the core checked every JSON input).
std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s)
    n += (c & 0xC0) != 0x80;
  return n;
}

/// Valid UTF-8 as UTF-32, for std::wregex (wchar_t holds a code point here),
/// so that `.` and the counted repetitions see characters, not bytes.
std::wstring to_wide(std::string_view s) {
  std::wstring out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const int extra = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
    char32_t cp = extra == 0 ? c : extra == 1 ? (c & 0x1F) : extra == 2 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; k <= extra && i + static_cast<std::size_t>(k) < s.size(); ++k)
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]) & 0x3F);
    out.push_back(static_cast<wchar_t>(cp));
    i += static_cast<std::size_t>(extra) + 1;
  }
  return out;
}

/// A value for a message: its JSON, cut short.
std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  constexpr std::size_t max = 40;
  if (s.size() <= max)
    return s;
  std::size_t cut = max - 3;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80)
    --cut;  // not inside a character
  return s.substr(0, cut) + "...";
}

bool is_identifier(std::string_view key) {
  if (key.empty() || (key[0] >= '0' && key[0] <= '9'))
    return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
           || c == '$';
  });
}

/// A path segment: ".name", or ["any key"] when it is not a plain name.
std::string key_segment(std::string_view key) {
  if (is_identifier(key))
    return "." + std::string(key);
  return "[" + json(std::string(key)).dump(-1, ' ', false, json::error_handler_t::replace) + "]";
}

std::string index_segment(std::size_t i) {
  return "[" + std::to_string(i) + "]";
}

const char* type_name_of(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::object: return "object";
    case json::value_t::array: return "array";
    case json::value_t::string: return "string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    default: return "number";
  }
}

// ---- numbers ----------------------------------------------------------------------------

bool is_integral(const json& v) {
  if (v.is_number_integer())
    return true;
  if (!v.is_number_float())
    return false;
  const double d = v.get<double>();
  return std::isfinite(d) && std::floor(d) == d;
}

/// -1, 0 or 1 as a < b, exactly for integers, else as doubles.
int compare(const json& a, const json& b) {
  if (a.is_number_integer() && b.is_number_integer()) {
    const bool a_neg = !a.is_number_unsigned() && a.get<std::int64_t>() < 0;
    const bool b_neg = !b.is_number_unsigned() && b.get<std::int64_t>() < 0;
    if (a_neg != b_neg)
      return a_neg ? -1 : 1;
    if (a_neg) {
      const auto x = a.get<std::int64_t>(), y = b.get<std::int64_t>();
      return x < y ? -1 : x > y ? 1 : 0;
    }
    const auto x = a.get<std::uint64_t>(), y = b.get<std::uint64_t>();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  const double x = a.get<double>(), y = b.get<double>();
  return x < y ? -1 : x > y ? 1 : 0;
}

std::uint64_t magnitude(const json& v) {
  if (v.is_number_unsigned())
    return v.get<std::uint64_t>();
  const auto x = v.get<std::int64_t>();
  return x < 0 ? static_cast<std::uint64_t>(-(x + 1)) + 1 : static_cast<std::uint64_t>(x);
}

bool is_multiple(const json& v, const json& of) {
  if (v.is_number_integer() && of.is_number_integer())
    return magnitude(v) % magnitude(of) == 0;
  const double q = v.get<double>() / of.get<double>();
  if (!std::isfinite(q))
    return false;
  return std::fabs(q - std::round(q)) <= 1e-9 * std::max(1.0, std::fabs(q));
}

/// A copy in which equal numbers are spelled alike (1.0 as 1), so that equal
/// values dump to equal text.
json normalised(const json& v) {
  switch (v.type()) {
    case json::value_t::number_float: {
      const double d = v.get<double>();
      if (is_integral(v) && d >= -9.2e18 && d <= 9.2e18)
        return static_cast<std::int64_t>(d);
      return v;
    }
    case json::value_t::number_unsigned:
      if (v.get<std::uint64_t>() <= static_cast<std::uint64_t>(INT64_MAX))
        return static_cast<std::int64_t>(v.get<std::uint64_t>());
      return v;
    case json::value_t::array: {
      json out = json::array();
      for (const auto& item : v)
        out.push_back(normalised(item));
      return out;
    }
    case json::value_t::object: {
      json out = json::object();
      for (auto it = v.begin(); it != v.end(); ++it)
        out[it.key()] = normalised(it.value());
      return out;
    }
    default: return v;
  }
}

// ---- patterns ---------------------------------------------------------------------------

/// The automaton size of an ECMAScript pattern, estimated from its text: each
/// atom 1, a group its contents, a quantifier {n,m} multiplies what it
/// repeats by m (or n). Saturates past `cap`.
std::size_t pattern_size(std::u32string_view p, std::size_t cap) {
  struct frame {
    std::size_t total = 0;
  };
  std::vector<frame> frames(1);
  std::size_t last = 0;  // size of the atom a quantifier would repeat
  auto add = [&](std::size_t n) {
    frames.back().total = std::min(cap + 1, frames.back().total + n);
  };
  for (std::size_t i = 0; i < p.size(); ++i) {
    const char32_t c = p[i];
    if (c == '\\') {
      ++i;
      last = 1;
      add(1);
    } else if (c == '[') {
      for (++i; i < p.size() && p[i] != ']'; ++i)
        if (p[i] == '\\')
          ++i;
      last = 1;
      add(1);
    } else if (c == '(') {
      frames.emplace_back();
      if (i + 1 < p.size() && p[i + 1] == '?')
        i += 2;  // (?: (?= (?!
      last = 0;
    } else if (c == ')') {
      if (frames.size() == 1) {
        last = 1;
        add(1);
        continue;
      }
      last = std::min(cap + 1, frames.back().total + 2);
      frames.pop_back();
      add(last);
    } else if (c == '*' || c == '+' || c == '?') {
      add(1);
    } else if (c == '{') {
      std::size_t j = i + 1;
      std::size_t n = 0, m = 0;
      bool digits = false, comma = false, m_digits = false;
      for (; j < p.size() && p[j] >= '0' && p[j] <= '9'; ++j, digits = true)
        n = std::min<std::size_t>(cap + 1, n * 10 + (p[j] - '0'));
      if (j < p.size() && p[j] == ',') {
        comma = true;
        for (++j; j < p.size() && p[j] >= '0' && p[j] <= '9'; ++j, m_digits = true)
          m = std::min<std::size_t>(cap + 1, m * 10 + (p[j] - '0'));
      }
      if (digits && j < p.size() && p[j] == '}') {
        const std::size_t times = comma && m_digits ? std::max(n, m) : n + (comma ? 1 : 0);
        const std::size_t extra = times == 0 ? 0 : times - 1;
        add(last == 0 ? extra : std::min(cap + 1, last * extra + 1));
        i = j;
      } else {
        last = 1;
        add(1);  // a literal brace
      }
    } else if (c == '|') {
      last = 0;
    } else {
      last = 1;
      add(1);
    }
  }
  std::size_t total = 0;
  for (const auto& f : frames)
    total = std::min(cap + 1, total + f.total);
  return total;
}

struct compiled_pattern {
  std::string source;
  std::wregex re;
  std::size_t size = 1;  ///< estimated automaton size, the cost of a match per character
};

#if defined(__GLIBCXX__)
// libstdc++'s breadth-first executor: time linear in the text for a given
// pattern, no backtracking, recursion bounded by the automaton's size (not
// the text's length). It refuses back-references, which we refuse anyway.
constexpr auto regex_flags = std::regex::ECMAScript | std::regex_constants::__polynomial;
#else
constexpr auto regex_flags = std::regex::ECMAScript;
#endif

// ---- the compiled form ----------------------------------------------------------------

enum type_bit : unsigned {
  t_null = 1,
  t_boolean = 2,
  t_object = 4,
  t_array = 8,
  t_number = 16,
  t_integer = 32,
  t_string = 64,
  t_none = 128  ///< no value has it: `type: []`
};

struct type_entry {
  const char* name;
  unsigned bit;
};
constexpr type_entry type_names[] = {
    {"null", t_null},     {"boolean", t_boolean}, {"object", t_object}, {"array", t_array},
    {"number", t_number}, {"integer", t_integer}, {"string", t_string}};

struct dependency {
  std::string property;
  std::vector<std::string> required;  ///< the property requires these…
  int schema = -1;                    ///< …or the object then matches this schema
};

struct node {
  int boolean = -1;    ///< a boolean schema: 0 false, 1 true; -1: an object schema
  unsigned types = 0;  ///< 0: any
  std::string type_text;
  std::optional<json> const_value;
  std::optional<json> enum_values;
  std::optional<json> multiple_of, minimum, maximum, exclusive_minimum, exclusive_maximum;
  std::optional<std::size_t> min_length, max_length, min_items, max_items, min_properties,
      max_properties;
  int pattern = -1;  ///< into impl::patterns
  bool unique_items = false;
  int items = -1;                ///< schema form
  std::vector<int> tuple_items;  ///< list form
  bool items_is_tuple = false;
  int additional_items = -1;
  int contains = -1;
  std::vector<std::string> required;
  std::vector<std::pair<std::string, int>> properties;  ///< sorted by name
  std::vector<std::pair<int, int>> pattern_properties;  ///< pattern, schema
  int additional_properties = -1;
  std::vector<dependency> dependencies;
  int property_names = -1;
  int if_ = -1, then_ = -1, else_ = -1;
  std::vector<int> all_of, any_of, one_of;
  int not_ = -1;
};

}  // namespace

struct json_schema::impl {
  std::vector<node> nodes;  ///< nodes[0] is the root
  std::vector<compiled_pattern> patterns;
};

namespace {

// ---- compiling ------------------------------------------------------------------------

class compiler {
public:
  compiler(json_schema::impl& out, std::vector<std::string>& problems)
    : out_(out), problems_(problems) {}

  int schema(const json& s, const std::string& at, int depth) {
    if (depth > schema_limits::max_depth) {
      problem(at, "subschemas are nested more than " + std::to_string(schema_limits::max_depth)
                      + " deep");
      return -1;
    }
    if (out_.nodes.size() >= schema_limits::max_subschemas) {
      if (!too_many_) {
        problem(at, "the schema has more than " + std::to_string(schema_limits::max_subschemas)
                        + " subschemas");
        too_many_ = true;
      }
      return -1;
    }
    const int index = static_cast<int>(out_.nodes.size());
    out_.nodes.emplace_back();
    if (s.is_boolean()) {
      out_.nodes[static_cast<std::size_t>(index)].boolean = s.get<bool>() ? 1 : 0;
      return index;
    }
    if (!s.is_object()) {
      problem(at, std::string("must be a JSON Schema (an object, true or false), not ")
                      + type_name_of(s));
      return index;
    }
    node n;
    for (auto it = s.begin(); it != s.end(); ++it)
      keyword(n, it.key(), it.value(), at, depth);
    out_.nodes[static_cast<std::size_t>(index)] = std::move(n);
    return index;
  }

private:
  void problem(const std::string& at, const std::string& text) {
    problems_.push_back(at + ": " + text);
  }

  std::optional<json> number(const json& v, const std::string& at, const std::string& key) {
    if (v.is_number())
      return v;
    if (v.is_boolean() && (key == "exclusiveMinimum" || key == "exclusiveMaximum"))
      problem(at, "must be a number (draft 4's true/false form is not supported: write "
                  "exclusiveMinimum: 5 instead of minimum: 5, exclusiveMinimum: true)");
    else
      problem(at, std::string("must be a number, not ") + type_name_of(v));
    return std::nullopt;
  }

  std::optional<std::size_t> count(const json& v, const std::string& at) {
    if (!is_integral(v) || v.get<double>() < 0) {
      problem(at, "must be a non-negative integer, not " + brief(v));
      return std::nullopt;
    }
    if (v.is_number_float() && v.get<double>() > 1e18)
      return std::numeric_limits<std::size_t>::max();
    return static_cast<std::size_t>(magnitude(v));
  }

  int sub(const json& v, const std::string& at, int depth) { return schema(v, at, depth + 1); }

  std::vector<int> schema_list(const json& v, const std::string& at, int depth) {
    std::vector<int> out;
    if (!v.is_array() || v.empty()) {
      problem(at, "must be a non-empty list of schemas");
      return out;
    }
    for (std::size_t i = 0; i < v.size(); ++i)
      out.push_back(sub(v[i], at + index_segment(i), depth));
    return out;
  }

  bool string_list(const json& v, const std::string& at, std::vector<std::string>& out) {
    if (!v.is_array()
        || !std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_string(); })) {
      problem(at, "must be a list of property names");
      return false;
    }
    for (const auto& x : v)
      out.push_back(x.get<std::string>());
    return true;
  }

  int pattern(const json& v, const std::string& at) {
    if (!v.is_string()) {
      problem(at, std::string("must be a string (a regular expression), not ") + type_name_of(v));
      return -1;
    }
    const std::string& text = v.get_ref<const std::string&>();
    const std::wstring wide = to_wide(text);
    if (wide.size() > schema_limits::max_pattern_length) {
      problem(at, "the pattern is " + std::to_string(wide.size()) + " characters long, at most "
                      + std::to_string(schema_limits::max_pattern_length) + " are allowed");
      return -1;
    }
    const std::u32string u32(wide.begin(), wide.end());
    const std::size_t size = pattern_size(u32, schema_limits::max_pattern_size);
    if (size > schema_limits::max_pattern_size) {
      problem(at, "the pattern " + brief(v) + " is too complex (its repetitions expand past "
                      + std::to_string(schema_limits::max_pattern_size) + " states)");
      return -1;
    }
    if (total_pattern_size_ + size > schema_limits::max_total_pattern_size) {
      problem(at, "the schema's patterns are too large together (past "
                      + std::to_string(schema_limits::max_total_pattern_size) + " states)");
      return -1;
    }
    compiled_pattern p;
    p.source = text;
    p.size = std::max<std::size_t>(size, 1);
    try {
      std::wregex alone(wide, regex_flags);  // checked alone: the wrapping could hide errors
      // Unanchored search as one continuous match from the start, so the
      // breadth-first executor runs once over the text, not once per start.
      p.re = std::wregex(L"[\\s\\S]*(?:" + wide + L")", regex_flags);
    } catch (const std::regex_error& e) {
      problem(at, "the pattern " + brief(v) + " is not a valid ECMAScript regular expression ("
                      + (e.code() == std::regex_constants::error_complexity
                             ? std::string("back-references are not supported")
                             : std::string(e.what()))
                      + ")");
      return -1;
    }
    total_pattern_size_ += size;
    out_.patterns.push_back(std::move(p));
    return static_cast<int>(out_.patterns.size()) - 1;
  }

  void keyword(node& n, const std::string& key, const json& v, const std::string& schema_at,
               int depth) {
    const std::string at = schema_at + key_segment(key);
    if (key == "type") {
      std::vector<std::string> names;
      if (v.is_string())
        names.push_back(v.get<std::string>());
      else if (v.is_array()
               && std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_string(); }))
        for (const auto& x : v)
          names.push_back(x.get<std::string>());
      else
        return problem(at, "must be a type name or a list of them, not " + brief(v));
      for (const auto& name : names) {
        const auto* t = std::find_if(std::begin(type_names), std::end(type_names),
                                     [&](const type_entry& e) { return name == e.name; });
        if (t == std::end(type_names))
          return problem(at, "unknown type " + json(name).dump()
                                 + " (null, boolean, object, array, number, integer, string)");
        n.types |= t->bit;
        n.type_text += (n.type_text.empty() ? "" : ", ") + name;
      }
      if (names.size() > 1)
        n.type_text = "one of " + n.type_text;
      else if (names.size() == 1 && names[0] != "null")
        n.type_text =
            (names[0] == "integer" || names[0] == "object" || names[0] == "array" ? "an " : "a ")
            + names[0];
      if (names.empty()) {  // an empty list allows nothing
        n.types = t_none;
        n.type_text = "nothing";
      }
    } else if (key == "enum") {
      if (!v.is_array())
        return problem(at, "must be a list of values");
      n.enum_values = v;
    } else if (key == "const") {
      n.const_value = v;
    } else if (key == "multipleOf") {
      if (auto x = number(v, at, key)) {
        if (compare(*x, json(0)) <= 0)
          return problem(at, "must be greater than 0, not " + brief(v));
        n.multiple_of = x;
      }
    } else if (key == "minimum") {
      n.minimum = number(v, at, key);
    } else if (key == "maximum") {
      n.maximum = number(v, at, key);
    } else if (key == "exclusiveMinimum") {
      n.exclusive_minimum = number(v, at, key);
    } else if (key == "exclusiveMaximum") {
      n.exclusive_maximum = number(v, at, key);
    } else if (key == "minLength") {
      n.min_length = count(v, at);
    } else if (key == "maxLength") {
      n.max_length = count(v, at);
    } else if (key == "minItems") {
      n.min_items = count(v, at);
    } else if (key == "maxItems") {
      n.max_items = count(v, at);
    } else if (key == "minProperties") {
      n.min_properties = count(v, at);
    } else if (key == "maxProperties") {
      n.max_properties = count(v, at);
    } else if (key == "pattern") {
      n.pattern = pattern(v, at);
    } else if (key == "uniqueItems") {
      if (!v.is_boolean())
        return problem(at, "must be true or false");
      n.unique_items = v.get<bool>();
    } else if (key == "items") {
      if (v.is_array()) {
        n.items_is_tuple = true;
        for (std::size_t i = 0; i < v.size(); ++i)
          n.tuple_items.push_back(sub(v[i], at + index_segment(i), depth));
      } else {
        n.items = sub(v, at, depth);
      }
    } else if (key == "additionalItems") {
      n.additional_items = sub(v, at, depth);
    } else if (key == "contains") {
      n.contains = sub(v, at, depth);
    } else if (key == "required") {
      string_list(v, at, n.required);
    } else if (key == "properties") {
      if (!v.is_object())
        return problem(at, "must be an object of schemas");
      for (auto it = v.begin(); it != v.end(); ++it)  // in name order, as json keeps them
        n.properties.emplace_back(it.key(), sub(it.value(), at + key_segment(it.key()), depth));
    } else if (key == "patternProperties") {
      if (!v.is_object())
        return problem(at, "must be an object of schemas");
      for (auto it = v.begin(); it != v.end(); ++it) {
        const std::string item_at = at + key_segment(it.key());
        const int p = pattern(json(it.key()), item_at);
        const int s = sub(it.value(), item_at, depth);
        if (p >= 0)
          n.pattern_properties.emplace_back(p, s);
      }
    } else if (key == "additionalProperties") {
      n.additional_properties = sub(v, at, depth);
    } else if (key == "dependencies" || key == "dependentRequired" || key == "dependentSchemas") {
      if (!v.is_object())
        return problem(at, "must be an object");
      for (auto it = v.begin(); it != v.end(); ++it) {
        const std::string item_at = at + key_segment(it.key());
        dependency d;
        d.property = it.key();
        const bool as_list =
            key == "dependentRequired" || (key == "dependencies" && it.value().is_array());
        if (as_list && !string_list(it.value(), item_at, d.required))
          continue;
        if (!as_list)
          d.schema = sub(it.value(), item_at, depth);
        n.dependencies.push_back(std::move(d));
      }
    } else if (key == "propertyNames") {
      n.property_names = sub(v, at, depth);
    } else if (key == "if") {
      n.if_ = sub(v, at, depth);
    } else if (key == "then") {
      n.then_ = sub(v, at, depth);
    } else if (key == "else") {
      n.else_ = sub(v, at, depth);
    } else if (key == "allOf") {
      n.all_of = schema_list(v, at, depth);
    } else if (key == "anyOf") {
      n.any_of = schema_list(v, at, depth);
    } else if (key == "oneOf") {
      n.one_of = schema_list(v, at, depth);
    } else if (key == "not") {
      n.not_ = sub(v, at, depth);
    } else if (key == "$ref" || key == "$dynamicRef" || key == "$recursiveRef") {
      problem(at,
              json(key).dump() + " is not supported: write the schema it refers to in its place");
    } else if (key == "unevaluatedProperties" || key == "unevaluatedItems") {
      problem(at, json(key).dump()
                      + " is not supported (additionalProperties and "
                        "additionalItems are)");
    } else if (key == "prefixItems") {
      problem(at, "\"prefixItems\" is not supported: this is draft 7, write items as a list");
    }
    // Anything else is an annotation (title, description, default, examples,
    // format, $schema, $id, $comment, definitions…) or unknown: ignored.
  }

  json_schema::impl& out_;
  std::vector<std::string>& problems_;
  std::size_t total_pattern_size_ = 0;
  bool too_many_ = false;
};

// ---- checking --------------------------------------------------------------------------

/// Where a value is: a chain of segments up to the root, rendered on failure.
struct path {
  const path* parent = nullptr;
  const std::string* key = nullptr;  ///< an object member…
  std::size_t index = 0;             ///< …or an array item

  std::string render() const {
    std::vector<const path*> chain;
    for (const path* p = this; p && p->parent; p = p->parent)
      chain.push_back(p);
    std::string out = "$";
    for (auto it = chain.rbegin(); it != chain.rend(); ++it)
      out += (*it)->key ? key_segment(*(*it)->key) : index_segment((*it)->index);
    return out;
  }
};

class checker {
public:
  checker(const json_schema::impl& s, std::vector<std::string>* errors) : s_(s), errors_(errors) {}

  /// Whether `v` matches schema `index`; failures are recorded unless quiet.
  bool check(int index, const json& v, const path& at) {
    spend(1);
    const node& n = s_.nodes[static_cast<std::size_t>(index)];
    if (n.boolean >= 0)
      return n.boolean == 1 || (failed(at, [] { return std::string("is not allowed"); }), false);
    bool ok = true;
    // A failure of `v` or of a value in it: each returns true when checking
    // should stop (quiet, or enough failures collected).
    auto bad = [&](const path& where, auto&& message) {
      ok = false;
      return failed(where, message);
    };
    auto sub = [&](int schema, const json& x, const path& where) {
      if (schema < 0 || check(schema, x, where))
        return false;
      ok = false;
      return stop();
    };
    if (n.types != 0) {
      const unsigned bit = v.is_null()      ? t_null
                           : v.is_boolean() ? t_boolean
                           : v.is_object()  ? t_object
                           : v.is_array()   ? t_array
                           : v.is_string()  ? t_string
                                            : t_number;
      const bool match =
          (n.types & bit) != 0 || (bit == t_number && (n.types & t_integer) && is_integral(v));
      if (!match
          && bad(at, [&] { return "must be " + n.type_text + " (is " + type_name_of(v) + ")"; }))
        return false;
    }
    if (n.const_value && !(v == *n.const_value)
        && bad(at, [&] { return "must be " + brief(*n.const_value) + " (is " + brief(v) + ")"; }))
      return false;
    if (n.enum_values) {
      spend(n.enum_values->size());
      if (std::none_of(n.enum_values->begin(), n.enum_values->end(),
                       [&](const json& e) { return e == v; })
          && bad(at, [&] {
               return "must be one of " + brief(*n.enum_values) + " (is " + brief(v) + ")";
             }))
        return false;
    }
    if (v.is_number() && numeric(n, v, at, bad))
      return false;
    if (v.is_string() && text(n, v, at, bad))
      return false;
    if (v.is_array() && array(n, v, at, bad, sub))
      return false;
    if (v.is_object() && object(n, v, at, bad, sub))
      return false;
    if (combined(n, v, at, bad, sub))
      return false;
    return ok;
  }

private:
  /// Records a failure unless quiet; true when checking should stop.
  template <class Message>
  bool failed(const path& at, Message&& message) {
    if (!errors_)
      return true;
    if (errors_->size() < schema_limits::max_errors)
      errors_->push_back(at.render() + ": " + message());
    return stop();
  }

  bool stop() const { return !errors_ || errors_->size() >= schema_limits::max_errors; }

  void spend(std::uint64_t n) {
    work_ += n;
    if (work_ > schema_limits::max_work)
      fail(TK_TOO_LARGE, "input_schema: checking the context takes too much work (more than "
                             + std::to_string(schema_limits::max_work)
                             + " steps); send a smaller context");
  }

  /// Checks without recording failures (anyOf, oneOf, not, if, contains,
  /// propertyNames): their failures are not the value's.
  bool quietly(int index, const json& v, const path& at) {
    auto* saved = errors_;
    errors_ = nullptr;
    const bool ok = check(index, v, at);
    errors_ = saved;
    return ok;
  }

  // Each returns true when checking should stop.

  template <class Bad>
  bool numeric(const node& n, const json& v, const path& at, Bad& bad) {
    if (n.minimum && compare(v, *n.minimum) < 0 && bad(at, [&] {
          return "must be at least " + brief(*n.minimum) + " (is " + brief(v) + ")";
        }))
      return true;
    if (n.maximum && compare(v, *n.maximum) > 0 && bad(at, [&] {
          return "must be at most " + brief(*n.maximum) + " (is " + brief(v) + ")";
        }))
      return true;
    if (n.exclusive_minimum && compare(v, *n.exclusive_minimum) <= 0 && bad(at, [&] {
          return "must be greater than " + brief(*n.exclusive_minimum) + " (is " + brief(v) + ")";
        }))
      return true;
    if (n.exclusive_maximum && compare(v, *n.exclusive_maximum) >= 0 && bad(at, [&] {
          return "must be less than " + brief(*n.exclusive_maximum) + " (is " + brief(v) + ")";
        }))
      return true;
    return n.multiple_of && !is_multiple(v, *n.multiple_of) && bad(at, [&] {
             return "must be a multiple of " + brief(*n.multiple_of) + " (is " + brief(v) + ")";
           });
  }

  template <class Bad>
  bool text(const node& n, const json& v, const path& at, Bad& bad) {
    const auto& s = v.get_ref<const std::string&>();
    if (n.min_length || n.max_length) {
      const std::size_t len = code_points(s);
      if (n.min_length && len < *n.min_length && bad(at, [&] {
            return "must be at least " + std::to_string(*n.min_length) + " characters long (is "
                   + std::to_string(len) + ")";
          }))
        return true;
      if (n.max_length && len > *n.max_length && bad(at, [&] {
            return "must be at most " + std::to_string(*n.max_length) + " characters long (is "
                   + std::to_string(len) + ")";
          }))
        return true;
    }
    if (n.pattern < 0)
      return false;
    const auto& p = s_.patterns[static_cast<std::size_t>(n.pattern)];
    std::size_t len = 0;
    if (matches(p, s, len))
      return false;
    if (len > schema_limits::max_matched_length)
      return bad(at, [&] {
        return "is " + std::to_string(len) + " characters long, longer than the "
               + std::to_string(schema_limits::max_matched_length)
               + " a pattern is matched against";
      });
    return bad(at, [&] {
      return "must match the pattern " + brief(json(p.source)) + " (is " + brief(v) + ")";
    });
  }

  /// Whether `s` matches `p` anywhere; `len` receives its length. A string
  /// longer than max_matched_length does not match.
  bool matches(const compiled_pattern& p, const std::string& s, std::size_t& len) {
    len = code_points(s);
    if (len > schema_limits::max_matched_length)
      return false;
    spend((len + 1) * p.size);
    return std::regex_search(to_wide(s), p.re, std::regex_constants::match_continuous);
  }

  template <class Bad, class Sub>
  bool array(const node& n, const json& v, const path& at, Bad& bad, Sub& sub) {
    const std::size_t size = v.size();
    if (n.min_items && size < *n.min_items && bad(at, [&] {
          return "must have at least " + std::to_string(*n.min_items) + " items (has "
                 + std::to_string(size) + ")";
        }))
      return true;
    if (n.max_items && size > *n.max_items && bad(at, [&] {
          return "must have at most " + std::to_string(*n.max_items) + " items (has "
                 + std::to_string(size) + ")";
        }))
      return true;
    if (n.unique_items && size > 1) {
      // Sorted by their normalised text: equal items end up side by side.
      std::vector<std::pair<std::string, std::size_t>> keys;
      keys.reserve(size);
      for (std::size_t i = 0; i < size; ++i) {
        keys.emplace_back(normalised(v[i]).dump(), i);
        spend(1 + keys.back().first.size() / 64);
      }
      std::sort(keys.begin(), keys.end());
      for (std::size_t i = 1; i < keys.size(); ++i) {
        if (keys[i].first != keys[i - 1].first)
          continue;
        const auto first = std::min(keys[i].second, keys[i - 1].second);
        const auto second = std::max(keys[i].second, keys[i - 1].second);
        if (bad(at, [&] {
              return "must not hold the same item twice (items " + std::to_string(first) + " and "
                     + std::to_string(second) + " are equal)";
            }))
          return true;
        break;
      }
    }
    for (std::size_t i = 0; i < size; ++i) {
      int schema = n.items;
      if (n.items_is_tuple)
        schema = i < n.tuple_items.size() ? n.tuple_items[i] : n.additional_items;
      if (sub(schema, v[i], path{&at, nullptr, i}))
        return true;
    }
    if (n.contains < 0)
      return false;
    for (std::size_t i = 0; i < size; ++i)
      if (quietly(n.contains, v[i], path{&at, nullptr, i}))
        return false;
    return bad(at, [] { return std::string("must contain an item that matches \"contains\""); });
  }

  template <class Bad, class Sub>
  bool object(const node& n, const json& v, const path& at, Bad& bad, Sub& sub) {
    const std::size_t size = v.size();
    if (n.min_properties && size < *n.min_properties && bad(at, [&] {
          return "must have at least " + std::to_string(*n.min_properties) + " properties (has "
                 + std::to_string(size) + ")";
        }))
      return true;
    if (n.max_properties && size > *n.max_properties && bad(at, [&] {
          return "must have at most " + std::to_string(*n.max_properties) + " properties (has "
                 + std::to_string(size) + ")";
        }))
      return true;
    for (const auto& name : n.required)
      if (!v.contains(name) && bad(path{&at, &name, 0}, [] { return std::string("is required"); }))
        return true;
    for (const auto& d : n.dependencies) {
      if (!v.contains(d.property))
        continue;
      for (const auto& name : d.required)
        if (!v.contains(name) && bad(path{&at, &name, 0}, [&] {
              return "is required when " + json(d.property).dump() + " is present";
            }))
          return true;
      if (sub(d.schema, v, at))
        return true;
    }
    for (auto it = v.begin(); it != v.end(); ++it) {
      const std::string& name = it.key();
      const path member{&at, &name, 0};
      spend(1);
      if (n.property_names >= 0 && !quietly(n.property_names, json(name), member)
          && bad(member, [] { return std::string("this name does not match propertyNames"); }))
        return true;
      bool matched = false;
      const auto p = std::lower_bound(
          n.properties.begin(), n.properties.end(), name,
          [](const std::pair<std::string, int>& e, const std::string& k) { return e.first < k; });
      if (p != n.properties.end() && p->first == name) {
        matched = true;
        if (sub(p->second, it.value(), member))
          return true;
      }
      for (const auto& [pattern, schema] : n.pattern_properties) {
        std::size_t len = 0;
        if (!matches(s_.patterns[static_cast<std::size_t>(pattern)], name, len))
          continue;
        matched = true;
        if (sub(schema, it.value(), member))
          return true;
      }
      if (matched || n.additional_properties < 0)
        continue;
      if (s_.nodes[static_cast<std::size_t>(n.additional_properties)].boolean == 0) {
        if (bad(member,
                [] { return std::string("is not allowed (additionalProperties is false)"); }))
          return true;
      } else if (sub(n.additional_properties, it.value(), member)) {
        return true;
      }
    }
    return false;
  }

  template <class Bad, class Sub>
  bool combined(const node& n, const json& v, const path& at, Bad& bad, Sub& sub) {
    for (int s : n.all_of)
      if (sub(s, v, at))
        return true;
    if (!n.any_of.empty()
        && std::none_of(n.any_of.begin(), n.any_of.end(), [&](int s) { return quietly(s, v, at); })
        && bad(at, [] { return std::string("must match at least one of the anyOf schemas"); }))
      return true;
    if (!n.one_of.empty()) {
      std::vector<std::size_t> matching;
      for (std::size_t i = 0; i < n.one_of.size() && matching.size() < 2; ++i)
        if (quietly(n.one_of[i], v, at))
          matching.push_back(i);
      if (matching.size() != 1 && bad(at, [&] {
            return std::string("must match exactly one of the oneOf schemas (matches ")
                   + (matching.empty() ? std::string("none")
                                       : "#" + std::to_string(matching[0] + 1) + " and #"
                                             + std::to_string(matching[1] + 1))
                   + ")";
          }))
        return true;
    }
    if (n.not_ >= 0 && quietly(n.not_, v, at)
        && bad(at, [] { return std::string("must not match the schema under \"not\""); }))
      return true;
    if (n.if_ >= 0)
      return sub(quietly(n.if_, v, at) ? n.then_ : n.else_, v, at);
    return false;
  }

  const json_schema::impl& s_;
  std::vector<std::string>* errors_;
  std::uint64_t work_ = 0;
};

}  // namespace

json_schema::json_schema() : impl_(std::make_unique<impl>()) {
}

json_schema::~json_schema() = default;

std::shared_ptr<const json_schema> json_schema::compile(const nlohmann::json& schema,
                                                        std::vector<std::string>& problems) {
  auto out = std::make_shared<json_schema>();
  const std::size_t before = problems.size();
  compiler c(*out->impl_, problems);
  c.schema(schema, "input_schema", 0);
  if (problems.size() != before)
    return nullptr;
  return out;
}

std::vector<std::string> json_schema::check(const nlohmann::json& value) const {
  std::vector<std::string> errors;
  checker c(*impl_, &errors);
  const path root;
  if (!c.check(0, value, root) && errors.empty())
    errors.push_back("$: does not match the schema");  // not expected: every failure says why
  return errors;
}

void check_task_context(const pipeline_def& p, std::string_view context_json) {
  if (!p.input_schema)
    return;
  const json context = json::parse(context_json.begin(), context_json.end());
  const auto errors = p.input_schema->check(context);
  if (errors.empty())
    return;
  // Room is left for a "task 3 of 10: " prefix in a tk_error message.
  constexpr std::size_t limit = sizeof(tk_error{}.message) - 1 - 40;
  std::string msg = "pipeline " + p.label() + ": input_schema: ";
  std::size_t shown = 0;
  for (const auto& e : errors) {
    const std::string sep = shown == 0 ? "" : "; ";
    if (msg.size() + sep.size() + e.size() > limit - 20 && shown > 0)
      break;
    msg += sep + e;
    ++shown;
  }
  if (shown < errors.size())
    msg += " (and " + std::to_string(errors.size() - shown) + " more)";
  if (msg.size() > limit)
    msg = msg.substr(0, limit - 3) + "...";
  fail(TK_VALIDATION, msg);
}

}  // namespace tasker::core
