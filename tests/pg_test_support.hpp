// The PostgreSQL server of the tests: started by the `pg_server_start` ctest
// fixture (scripts/pg-test-server), which writes its URL to the file named
// by TASKER_TEST_PG_URL_FILE ("none" when no server binary exists).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>

namespace tasker::test {

/// The test server's base URL, or "" when there is none.
inline std::string pg_base_url() {
  if (const char* direct = std::getenv("TASKER_TEST_PG_URL"); direct && *direct)
    return direct;
  const char* file = std::getenv("TASKER_TEST_PG_URL_FILE");
  if (!file || !*file)
    return {};
  std::ifstream in(file);
  std::string url;
  std::getline(in, url);
  return url == "none" ? std::string{} : url;
}

/// A schema name no other test case uses, so cases share one server
/// without seeing each other's rows.
inline std::string fresh_schema() {
  static std::atomic<unsigned> counter{0};
  static const auto salt = std::random_device{}();
  return "t" + std::to_string(salt % 1000000) + "_"
         + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 100000000)
         + "_" + std::to_string(counter++);
}

/// The base URL with a fresh schema.
inline std::string fresh_pg_url() {
  return pg_base_url() + "?schema=" + fresh_schema();
}

}  // namespace tasker::test
