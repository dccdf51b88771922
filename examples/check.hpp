// How the examples check their own results: every failed check is printed
// with what was expected and what came, and the example exits non-zero.
#pragma once

#include <iostream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace examples {

/// Counts failed checks; exit_code() is 0 only when there were none.
class checker {
public:
  /// Checks that `got` equals `expected`.
  template <class Got, class Expected>
  bool equal(std::string_view what, const Got& got, const Expected& expected) {
    if (got == expected)
      return true;
    ++failures_;
    std::cerr << "FAILED " << what << ": expected " << expected << ", got " << got << '\n';
    return false;
  }

  /// Checks a condition; `detail` says what was seen instead.
  bool that(bool ok, std::string_view what, const nlohmann::json& detail = nullptr) {
    if (ok)
      return true;
    ++failures_;
    std::cerr << "FAILED " << what;
    if (!detail.is_null())
      std::cerr << ": got " << detail;
    std::cerr << '\n';
    return false;
  }

  int failures() const { return failures_; }
  int exit_code() const { return failures_ == 0 ? 0 : 1; }

private:
  int failures_ = 0;
};

/// The member `key` of `object`; null when `object` is not an object or lacks it.
inline nlohmann::json field(const nlohmann::json& object, const std::string& key) {
  if (!object.is_object())
    return nullptr;
  const auto it = object.find(key);
  return it == object.end() ? nlohmann::json() : *it;
}

/// A JSON value for people: strings without quotes, anything else as JSON.
inline std::string show(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

/// The entry of `step` in a task status (client::status), or null.
inline nlohmann::json step_status(const nlohmann::json& status, std::string_view step) {
  for (const auto& s : status.value("steps", nlohmann::json::array()))
    if (s.value("name", "") == step)
      return s;
  return nullptr;
}

}  // namespace examples
