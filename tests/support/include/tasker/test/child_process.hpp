// What a test needs to start a child process (posix_spawn) of its own: an
// environment without the test's TASKER_* settings, and argv/envp arrays.
#pragma once

#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

extern char** environ;

namespace tasker::test {

/// This process's environment less the variables starting with any of
/// `drop` (so a developer's TASKER_STORE cannot steer a child), plus `extra`
/// ("NAME=value" each).
inline std::vector<std::string> child_environment(const std::vector<std::string>& extra = {},
                                                  std::initializer_list<std::string_view> drop = {
                                                      "TASKER_"}) {
  std::vector<std::string> out;
  for (char** e = environ; *e; ++e) {
    const std::string_view var{*e};
    bool dropped = false;
    for (auto prefix : drop)
      dropped = dropped || var.substr(0, prefix.size()) == prefix;
    if (!dropped)
      out.emplace_back(var);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

/// A null-terminated array of pointers into `strings` (for argv or envp);
/// valid while `strings` lives unchanged.
inline std::vector<char*> c_strings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace tasker::test
