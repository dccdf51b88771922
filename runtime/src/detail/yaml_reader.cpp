#include "yaml_reader.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <system_error>

namespace tasker::detail {

std::string in_quotes(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

// ---- problems -----------------------------------------------------------------

void problem_list::add(std::size_t line, std::size_t column, std::string text) {
  if (list_.size() < 10 * template_limits::max_problems)
    list_.push_back(problem{line, column, std::move(text)});
  else
    ++dropped_;
}

std::vector<std::string> problem_list::lines(const std::string& origin) const {
  std::vector<const problem*> sorted;
  for (const auto& p : list_)
    sorted.push_back(&p);
  std::stable_sort(sorted.begin(), sorted.end(), [](const problem* a, const problem* b) {
    return a->line != b->line ? a->line < b->line : a->column < b->column;
  });
  std::vector<std::string> out;
  for (const auto* p : sorted) {
    if (out.size() == template_limits::max_problems)
      break;
    out.push_back(p->text);
  }
  if (const auto rest = list_.size() - out.size() + dropped_; rest > 0)
    out.push_back(origin + ": (and " + std::to_string(rest) + " more problems)");
  return out;
}

void location::record(const YAML::Mark& mark, const std::string& text) const {
  if (mark.is_null()) {
    problems->add(0, 0, origin + ": " + text);
    return;
  }
  const auto line = static_cast<std::size_t>(mark.line) + 1;
  const auto column = static_cast<std::size_t>(mark.column) + 1;
  problems->add(line, column,
                origin + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + text);
}

void location::note(const YAML::Node& at, std::string_view field,
                    const std::string& problem) const {
  std::string msg;
  if (!pipeline.empty())
    msg += pipeline + (step.empty() ? "" : " " + step) + ": ";
  else if (!step.empty())
    msg += step + ": ";
  if (!field.empty())
    msg += std::string(field) + ": ";
  record(at.IsDefined() ? at.Mark() : YAML::Mark::null_mark(), msg + problem);
}

void location::fail(const YAML::Node& at, std::string_view field,
                    const std::string& problem) const {
  note(at, field, problem);
  throw skip_value{};
}

// ---- mappings and bounds --------------------------------------------------------

mapping::mapping(const YAML::Node& map, const location& at, std::string_view field) {
  for (const auto& pair : map) {  // by value: yaml-cpp's iterator hands out temporaries
    const YAML::Node key = pair.first;
    if (!key.IsScalar()) {
      at.note(key, field, "keys must be plain names");
      continue;
    }
    if (find(key.Scalar())) {
      at.note(key, field, "key " + in_quotes(key.Scalar()) + " appears twice");
      continue;
    }
    entries.push_back(entry{key.Scalar(), key, pair.second});
  }
}

const mapping::entry* mapping::find(std::string_view key) const {
  for (const auto& e : entries)
    if (e.key == key)
      return &e;
  return nullptr;
}

namespace {

bool walk(const YAML::Node& node, int depth, std::size_t& seen, const location& at) {
  if (++seen > template_limits::max_values) {
    at.record(node.Mark(), "holds more than " + std::to_string(template_limits::max_values)
                               + " values (an alias counts each time it is used)");
    return false;
  }
  if (!node.IsMap() && !node.IsSequence())
    return true;
  if (depth > template_limits::max_depth) {
    at.record(node.Mark(), "mappings and lists are nested more than "
                               + std::to_string(template_limits::max_depth)
                               + " deep (or an alias contains itself)");
    return false;
  }
  const bool is_map = node.IsMap();
  for (const auto& item : node) {
    if (is_map) {
      if (!walk(item.first, depth + 1, seen, at) || !walk(item.second, depth + 1, seen, at))
        return false;
    } else if (!walk(item, depth + 1, seen, at)) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool within_bounds(const YAML::Node& root, const location& at) {
  std::size_t seen = 0;
  return walk(root, 1, seen, at);
}

// ---- scalars and JSON -------------------------------------------------------------

namespace {

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

}  // namespace

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

json to_json(const YAML::Node& node, const location& at, const std::string& field) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: return nullptr;
    case YAML::NodeType::Scalar: return scalar_to_json(node, at, field);
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) {
        try {
          out.push_back(to_json(item, at, field));
        } catch (const skip_value&) {
        }
      }
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      const mapping fields(node, at, field);
      for_each_entry(fields, [&](const mapping::entry& e) {
        out[e.key] = to_json(e.value, at, field + "." + e.key);
      });
      return out;
    }
  }
  return nullptr;
}

}  // namespace tasker::detail
