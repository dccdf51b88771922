// Reading YAML values for the template loader: scalars by YAML 1.2's core
// schema, mappings without duplicate keys, JSON from any value, the bounds a
// document must keep, and every problem recorded with its place in the file.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include <tasker/runtime/pipeline.hpp>

namespace tasker::detail {

/// "\"s\"".
std::string in_quotes(std::string_view s);

/// Thrown once a problem is recorded: it abandons the value being read, and
/// whoever reads the enclosing field goes on with the next one. It never
/// leaves the loader.
struct skip_value {};

/// Every problem of one template, with its place.
class problem_list {
public:
  /// `line` and `column` count from 1; 0 is the file as a whole.
  void add(std::size_t line, std::size_t column, std::string text);
  bool empty() const { return list_.empty(); }

  /// The problems in the order of their place in the file, at most
  /// template_limits::max_problems of them, then a line counting the rest.
  std::vector<std::string> lines(const std::string& origin) const;

private:
  struct problem {
    std::size_t line, column;
    std::string text;
  };
  std::vector<problem> list_;  // up to 10 x max_problems, to sort; later ones are counted
  std::size_t dropped_ = 0;
};

/// Where the loader is, for messages: file, pipeline and step.
struct location {
  std::string origin;
  std::string pipeline;  ///< "pipeline ns/name@version" once known
  std::string step;      ///< "step \"name\"" inside a step
  problem_list* problems = nullptr;

  /// Records "origin:line:col: text" (just "origin: text" without a mark).
  void record(const YAML::Mark& mark, const std::string& text) const;
  /// Records "origin:line:col: pipeline … step …: field: problem" and goes on.
  void note(const YAML::Node& at, std::string_view field, const std::string& problem) const;
  /// Records the problem, then abandons the value being read (skip_value).
  [[noreturn]] void fail(const YAML::Node& at, std::string_view field,
                         const std::string& problem) const;
};

/// A mapping's entries by key, in document order. A key that is not a plain
/// name, or appears again, is recorded as a problem and left out.
struct mapping {
  struct entry {
    std::string key;
    YAML::Node key_node, value;
  };
  std::vector<entry> entries;

  mapping(const YAML::Node& map, const location& at, std::string_view field);
  const entry* find(std::string_view key) const;
};

/// Calls `read(entry)` for each entry; a problem in one does not stop the others.
template <class F>
void for_each_entry(const mapping& m, F&& read) {
  for (const auto& e : m.entries) {
    try {
      read(e);
    } catch (const skip_value&) {
    }
  }
}

/// Calls `read()`; false when it gave up on a problem (already recorded).
template <class F>
bool attempt(F&& read) {
  try {
    read();
    return true;
  } catch (const skip_value&) {
    return false;
  }
}

/// Walks the whole document once, before anything is read: nesting deeper
/// than template_limits::max_depth (which also stops an alias that contains
/// itself) or more than max_values values (an alias counted at each use) is
/// recorded, and false returned. Recursion is bounded by max_depth.
bool within_bounds(const YAML::Node& root, const location& at);

/// One scalar as JSON, resolved by YAML 1.2's core schema: quoted text is a
/// string; plain true/false, null, integers (decimal, 0x, 0o) and floats are
/// typed; anything else is a string. Fails on custom tags, .inf/.nan and
/// integers past 64 bits.
json scalar_to_json(const YAML::Node& node, const location& at, std::string_view field);

/// Any YAML value as JSON, mapping keys as strings. Every bad scalar in it is
/// recorded, and reading goes on past it (the value is then partial, and the
/// template rejected anyway).
json to_json(const YAML::Node& node, const location& at, const std::string& field);

}  // namespace tasker::detail
