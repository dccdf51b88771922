// The PostgreSQL server of the tests: started by the `pg_server_start` ctest
// fixture (scripts/pg-test-server), which writes its URL to the file named
// by TASKER_TEST_PG_URL_FILE ("none" when no server binary exists).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
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

/// A PostgreSQL server of a test's own (for tests that restart it, which
/// would disturb the other suites on the shared one), in `dir`, stopped and
/// removed on destruction. Needs the script's path (TASKER_PG_SERVER_SCRIPT).
class own_pg_server {
public:
  own_pg_server(std::string script, std::string dir)
    : script_(std::move(script)), dir_(std::move(dir)) {
    if (std::system((script_ + " start " + dir_ + " >/dev/null").c_str()) != 0)
      throw std::runtime_error("cannot start a PostgreSQL server in " + dir_);
    std::ifstream in(dir_ + "/url");
    std::getline(in, url_);
    if (url_.empty() || url_ == "none")
      throw std::runtime_error("no PostgreSQL server binary");
  }
  ~own_pg_server() { [[maybe_unused]] int rc = std::system((script_ + " stop " + dir_).c_str()); }
  own_pg_server(const own_pg_server&) = delete;
  own_pg_server& operator=(const own_pg_server&) = delete;

  /// Its base URL (no schema).
  const std::string& url() const { return url_; }
  /// Restarts it (same port, same data); false when that failed.
  bool restart() { return std::system((script_ + " restart " + dir_).c_str()) == 0; }

private:
  std::string script_, dir_, url_;
};

}  // namespace tasker::test
