// Three worker processes (tests/runtime/pg_worker.cpp, the real runtime) on one
// PostgreSQL database: every step runs, every task completes, and each
// step's completion is recorded exactly once — also when one worker is
// killed with SIGKILL mid-run, and when the server restarts mid-run.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>

#include <tasker/test/core.hpp>
#include <tasker/test/pg.hpp>

extern char** environ;

using namespace tasker::test;
using namespace std::chrono_literals;

namespace {

constexpr int task_count = 1000;

/// A direct libpq connection, for counting rows; reconnects when the
/// server went away.
class sql {
public:
  explicit sql(std::string url) : url_(std::move(url)) {}
  ~sql() { PQfinish(c_); }
  sql(const sql&) = delete;
  sql& operator=(const sql&) = delete;
  /// The first column of the first row as a number; -1 when the server
  /// cannot answer right now.
  long long number(const std::string& query) {
    if (!c_ || PQstatus(c_) != CONNECTION_OK) {
      PQfinish(c_);
      c_ = PQconnectdb(url_.c_str());
    }
    PGresult* r = PQexec(c_, query.c_str());
    long long out = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
      out = std::atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
  }

private:
  std::string url_;
  PGconn* c_ = nullptr;
};

/// Worker processes, stopped with SIGTERM (and reaped) on destruction.
class workers {
public:
  workers(const std::string& store_url, int count, const std::string& lease_ms,
          const std::string& step_delay_ms) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
      if (std::string_view(*e).rfind("TASKER_", 0) != 0)
        env.emplace_back(*e);
    env.push_back("TASKER_STORE=" + store_url);
    env.push_back("TASKER_LEASE_MS=" + lease_ms);
    env.push_back("TASKER_TEST_STEP_DELAY_MS=" + step_delay_ms);
    env.push_back("TASKER_LOG_LEVEL=warn");
    env.push_back("TASKER_FALLBACK_POLL_MS=500");
    std::vector<char*> envp;
    for (auto& e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    for (int i = 0; i < count; ++i) {
      std::string path = TASKER_PG_WORKER;
      std::string name = "--name=mp-" + std::to_string(i);
      char* argv[] = {path.data(), name.data(), nullptr};
      pid_t pid = 0;
      REQUIRE(::posix_spawn(&pid, path.c_str(), nullptr, nullptr, argv, envp.data()) == 0);
      pids_.push_back(pid);
    }
  }
  ~workers() {
    for (pid_t p : pids_)
      if (p > 0)
        ::kill(p, SIGTERM);
    for (pid_t p : pids_)
      if (p > 0) {
        int status = 0;
        ::waitpid(p, &status, 0);
      }
  }
  workers(const workers&) = delete;
  workers& operator=(const workers&) = delete;

  void kill_one(std::size_t i) {
    REQUIRE(::kill(pids_[i], SIGKILL) == 0);
    int status = 0;
    ::waitpid(pids_[i], &status, 0);
    CHECK(WIFSIGNALED(status));
    pids_[i] = -1;
  }

  /// Stops the rest with SIGTERM; true when each exited by itself with 0.
  bool stop() {
    bool clean = true;
    for (pid_t& p : pids_) {
      if (p <= 0)
        continue;
      ::kill(p, SIGTERM);
      int status = 0;
      ::waitpid(p, &status, 0);
      clean = clean && WIFEXITED(status) && WEXITSTATUS(status) == 0;
      p = -1;
    }
    return clean;
  }

private:
  std::vector<pid_t> pids_;
};

/// Creates the tasks once the workers have registered mp/diamond@1.
std::vector<std::int64_t> create_tasks(tk_core* core) {
  task_args a;
  a.ns = "mp";
  a.name = "diamond";
  a.version = "1";
  std::int64_t id = 0;
  tk_error err{};
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (try_create_task(core, a, id, nullptr, err) == TK_NOT_FOUND) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(50ms);  // a worker process is still starting
  }
  // The rest in one transaction: created one by one, they took longer than
  // the workers took to run them, and the fault a test injects at a third
  // of the tasks could come too late (every task already complete).
  std::vector<tk_task_spec> specs(task_count - 1);
  for (auto& spec : specs) {
    spec.namespace_name = a.ns.c_str();
    spec.name = a.name.c_str();
    spec.version = a.version.c_str();
  }
  std::vector<std::int64_t> ids(task_count);
  ids[0] = id;
  INFO("tk_create_tasks: ", err.message);
  REQUIRE(tk_create_tasks(core, specs.data(), specs.size(), ids.data() + 1, nullptr, &err)
          == TK_OK);
  return ids;
}

/// Waits until every task completed (or the deadline), calling `at_third`
/// once when a third of them did; prints a progress line every few seconds.
void wait_all_complete(sql& db, const std::string& schema, const std::function<void()>& at_third) {
  const auto start = std::chrono::steady_clock::now();
  auto last_print = start;
  bool acted = false;
  const std::string query = "SELECT count(*) FROM " + schema + ".tk_tasks WHERE state = 'complete'";
  for (;;) {
    const auto done = db.number(query);
    if (done == task_count)
      break;
    if (!acted && done >= task_count / 3) {
      acted = true;
      at_third();
    }
    const auto now = std::chrono::steady_clock::now();
    REQUIRE_MESSAGE(now - start < 240s, "only ", done, " of ", task_count, " tasks completed");
    if (now - last_print > 5s) {
      MESSAGE(done, " of ", task_count, " tasks complete");
      last_print = now;
    }
    std::this_thread::sleep_for(10ms);
  }
  CHECK(acted);
}

/// Every step complete, each completion recorded once, and the join step
/// handed all three ancestors' results.
void check_exactly_once(sql& db, const std::string& schema) {
  const auto s = schema + ".";
  CHECK(db.number("SELECT count(*) FROM " + s + "tk_steps") == 4 * task_count);
  CHECK(db.number("SELECT count(*) FROM " + s + "tk_steps WHERE state <> 'complete'") == 0);
  // steps_done counts accepted completions: a second one would push it past 4.
  CHECK(db.number("SELECT count(*) FROM " + s + "tk_tasks WHERE steps_done <> 4") == 0);
  CHECK(db.number("SELECT count(*) FROM " + s
                  + "tk_steps WHERE idx = 3 AND (result::json->>'seen')::int <> 3")
        == 0);
}

std::string schema_of(const std::string& url) {
  return url.substr(url.find("schema=") + 7);
}

}  // namespace

TEST_CASE("three worker processes run 1,000 diamond tasks, each step recorded once"
          * doctest::timeout(300)) {
  const auto url = fresh_pg_url();
  const auto schema = schema_of(url);
  auto core = open_core(url);
  workers procs(url, 3, "30000", "0");
  create_tasks(core);
  sql db(pg_base_url());
  wait_all_complete(db, schema, [] {});
  CHECK(procs.stop());
  check_exactly_once(db, schema);
  CHECK(db.number("SELECT count(*) FROM " + schema + ".tk_steps WHERE attempts <> 1") == 0);
  // The work was shared: every worker ran some steps.
  CHECK(db.number("SELECT count(DISTINCT claimed_by) FROM " + schema + ".tk_steps") == 3);
}

TEST_CASE("a worker killed with SIGKILL mid-run: its leases lapse and every task still completes"
          * doctest::timeout(300)) {
  const auto url = fresh_pg_url();
  const auto schema = schema_of(url);
  auto core = open_core(url);
  workers procs(url, 3, "1000", "3");
  create_tasks(core);
  sql db(pg_base_url());
  wait_all_complete(db, schema, [&] { procs.kill_one(0); });
  CHECK(procs.stop());
  check_exactly_once(db, schema);
  const auto reexecuted = db.number("SELECT sum(attempts) - count(*) FROM " + schema + ".tk_steps");
  const auto expired = db.number("SELECT count(*) FROM " + schema + ".tk_steps WHERE attempts > 1");
  MESSAGE("steps run again after the kill: ", reexecuted, " (", expired,
          " steps had a lapsed lease)");
  CHECK(reexecuted >= 0);
}

TEST_CASE("the server restarts mid-run: the workers reconnect and finish" * doctest::timeout(300)) {
  // A server of its own: restarting the shared one would disturb the other suites.
  temp_dir dir;
  own_pg_server server(TASKER_PG_SERVER_SCRIPT, dir.file("pg"));
  const std::string base = server.url();
  const std::string schema = "restart";
  const auto url = base + "?schema=" + schema;
  auto core = open_core(url);
  workers procs(url, 3, "30000", "3");
  create_tasks(core);
  sql db(base);
  wait_all_complete(db, schema, [&] {
    MESSAGE("restarting the server");
    REQUIRE(server.restart());
  });
  CHECK(procs.stop());
  check_exactly_once(db, schema);
}
