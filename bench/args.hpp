// Command-line flags of the benchmarks (`--name VALUE`).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace bench {

/// The value of flag argv[i], the argument after it (i moves onto it); exits
/// with 2 and "PROGRAM: FLAG needs a value" when there is none.
inline std::string flag_value(const char* program, int argc, char** argv, int& i) {
  if (i + 1 >= argc) {
    std::fprintf(stderr, "%s: %s needs a value\n", program, argv[i]);
    std::exit(2);
  }
  return argv[++i];
}

}  // namespace bench
