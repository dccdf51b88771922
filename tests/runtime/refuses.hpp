// worker_config's refusals, checked the same way by the runtime suites.
#pragma once

#include <cstdlib>
#include <initializer_list>
#include <vector>

#include <tasker/runtime/worker_config.hpp>

namespace tasker::test {

/// True when a fresh worker_config refuses `args` (argv, program name first)
/// with exit code 2, as a bad flag or value must be. With `env`, that
/// variable is `value` during the parse and unset afterwards.
inline bool refuses(std::initializer_list<const char*> args, const char* env = nullptr,
                    const char* value = nullptr) {
  if (env)
    ::setenv(env, value, 1);
  std::vector<const char*> argv(args);
  tasker::worker_config cfg;
  int code = -1;
  const bool accepted =
      cfg.parse_args(static_cast<int>(argv.size()), const_cast<char**>(argv.data()), &code);
  if (env)
    ::unsetenv(env);
  return !accepted && code == 2;
}

}  // namespace tasker::test
