// SQLite-only behaviour: what survives closing the core, and what survives a
// worker process killed while it holds leases.
#include <chrono>
#include <csignal>
#include <string>
#include <vector>

#include <poll.h>
#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tasker/test/core.hpp>

using namespace tasker::test;

namespace {

std::string sqlite_url(const temp_dir& dir) {
  return "sqlite:" + dir.file("tasker.db");
}

std::int64_t system_now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

/// Kills and reaps a child process unless the test already reaped it.
class child_guard {
public:
  explicit child_guard(pid_t pid) : pid_(pid) {}
  ~child_guard() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  child_guard(const child_guard&) = delete;
  child_guard& operator=(const child_guard&) = delete;

  /// Kills the child with SIGKILL and waits for it; returns its wait status.
  int kill_and_reap() {
    REQUIRE(::kill(pid_, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, 0) == pid_);
    pid_ = -1;
    return status;
  }

private:
  pid_t pid_;
};

/// Closes a file descriptor on scope exit.
struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// The forked child: opens its own core, claims `expected` steps, reports on
/// the pipe and waits to be killed. Never returns.
[[noreturn]] void run_doomed_worker(const std::string& url, int report_fd, std::size_t expected) {
  tk_core* core = tk_open(url.c_str(), nullptr, nullptr);
  if (core == nullptr)
    ::_exit(2);
  tk_worker_options options{};
  options.name = "doomed";
  options.lease_ms = 60000;
  tk_worker* worker = tk_worker_open(core, &options, nullptr);
  if (worker == nullptr)
    ::_exit(3);
  const tk_step_event* events = nullptr;
  std::size_t count = 0;
  if (tk_poll(worker, 16, &events, &count, nullptr) != TK_OK || count != expected)
    ::_exit(4);
  const char done = '1';
  if (::write(report_fd, &done, 1) != 1)
    ::_exit(5);
  for (;;)
    ::pause();
}

}  // namespace

TEST_CASE("closing and reopening a sqlite store mid-workflow loses nothing"
          * doctest::timeout(30)) {
  temp_dir dir;
  manual_clock clock;
  const auto url = sqlite_url(dir);
  const auto pipeline = pipeline_json(
      "test", "flow",
      {{"a", {}, retry_policy(3)}, {"b", {"a"}, retry_policy(3)}, {"c", {"b"}, retry_policy(3)}});
  task_args args;
  args.context = R"({"customer":"ada","total":12.5})";
  args.idempotency_key = "order-1";
  args.priority = 2;
  task_args elsewhere;
  elsewhere.ns = "other";

  std::int64_t id = 0;
  std::int64_t other_id = 0;
  claimed_step b;
  json before;
  json other_before;
  {
    auto core = open_core(url);
    use_clock(core, clock);
    register_pipeline(core, pipeline);
    register_pipeline(core, pipeline_json("other", "flow", {{"a"}}));
    id = create_task(core, args);
    other_id = create_task(core, elsewhere);
    worker_handle w(core, "before-restart", 0, {"test"});
    worker_handle long_lease(core, "before-restart", 10000, {"test"});
    auto a = poll(w, 1);
    REQUIRE(a.size() == 1);
    clock.advance(10);
    CHECK(succeed(w, a[0], R"({"n":1})") == TK_OK);
    clock.advance(10);
    auto claimed = poll(long_lease, 1);
    REQUIRE(claimed.size() == 1);
    b = claimed[0];
    CHECK(b.step_name == "b");
    before = task_status(core, id);
    other_before = task_status(core, other_id);
  }

  auto core = open_core(url);
  use_clock(core, clock);
  CHECK(task_status(core, id) == before);
  CHECK(task_status(core, other_id) == other_before);
  auto step_b = step_status(task_status(core, id), "b");
  CHECK(step_b.at("state") == "running");
  CHECK(step_b.at("claimed_by") == "before-restart");

  // The pipelines are still there.
  register_pipeline(core, pipeline);
  tk_error err{};
  CHECK(tk_register_pipeline(core, pipeline_json("test", "flow", {{"a"}}).c_str(), &err)
        == TK_CONFLICT);
  // So is the idempotency key.
  std::int64_t again = 0;
  int created = -1;
  REQUIRE(try_create_task(core, args, again, &created, err) == TK_OK);
  CHECK(again == id);
  CHECK(created == 0);

  // b keeps its lease until it runs out.
  worker_handle w(core, "after-restart", 0, {"test"});
  clock.now_ms = b.lease_expires_at_ms - 1;
  CHECK(poll(w, 10).empty());
  clock.now_ms = b.lease_expires_at_ms + 1;
  auto b2 = poll(w, 10);
  REQUIRE(b2.size() == 1);
  CHECK(b2[0].step_name == "b");
  CHECK(b2[0].attempt == 2);
  CHECK(b2[0].dependency_results == json::parse(R"({"a":{"n":1}})"));
  CHECK(b2[0].context == json::parse(args.context));
  CHECK(succeed(w, b, R"({"n":"stale"})") == TK_STALE);
  CHECK(succeed(w, b2[0], R"({"n":2})") == TK_OK);

  auto c = poll(w, 10);
  REQUIRE(c.size() == 1);
  CHECK(c[0].dependency_results == json::parse(R"({"a":{"n":1},"b":{"n":2}})"));
  CHECK(succeed(w, c[0], R"({"n":3})") == TK_OK);
  auto status = task_status(core, id);
  CHECK(status.at("state") == "complete");
  CHECK(status.at("priority") == 2);
  CHECK(step_status(status, "b").at("attempts") == 2);
}

TEST_CASE("steps claimed by a killed worker process are finished once by another"
          * doctest::timeout(60)) {
  temp_dir dir;
  const auto url = sqlite_url(dir);
  // Set up, then close everything before forking: the child opens its own core.
  std::vector<std::int64_t> tasks;
  {
    auto core = open_core(url);
    register_pipeline(
        core,
        pipeline_json("test", "flow",
                      {{"a", {}, retry_policy(3)}, {"b", {}, retry_policy(3)}, {"c", {"a", "b"}}}));
    tasks.push_back(create_task(core));
    tasks.push_back(create_task(core));
  }

  int fds[2] = {-1, -1};
  REQUIRE(::pipe(fds) == 0);
  fd_guard read_end{fds[0]};
  fd_guard write_end{fds[1]};
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    run_doomed_worker(url, fds[1], 4);
  }
  child_guard child(pid);
  ::close(write_end.fd);
  write_end.fd = -1;

  // Wait (bounded) for the child to say it holds its claims.
  pollfd pfd{read_end.fd, POLLIN, 0};
  REQUIRE(::poll(&pfd, 1, 20000) == 1);
  char report = 0;
  REQUIRE(::read(read_end.fd, &report, 1) == 1);  // 0 bytes: the child exited early
  REQUIRE(report == '1');

  manual_clock clock;
  clock.now_ms = system_now_ms();
  auto core = open_core(url);
  use_clock(core, clock);
  worker_handle w(core, "survivor");
  for (auto id : tasks) {
    auto status = task_status(core, id);
    CHECK(status.at("state") == "running");
    for (const char* name : {"a", "b"}) {
      auto step = step_status(status, name);
      CHECK(step.at("state") == "running");
      CHECK(step.at("claimed_by") == "doomed");
      CHECK(step.at("attempts") == 1);
    }
  }
  CHECK(poll(w, 10).empty());  // the child's leases still hold

  const int wait_status = child.kill_and_reap();
  CHECK(WIFSIGNALED(wait_status));
  CHECK(WTERMSIG(wait_status) == SIGKILL);

  clock.now_ms = system_now_ms() + 120000;  // past the child's 60 s leases
  auto reclaimed = poll(w, 10);
  CHECK(reclaimed.size() == 4);
  std::vector<std::string> payloads;
  payloads.reserve(reclaimed.size());
  for (const auto& s : reclaimed) {
    CHECK(s.attempt == 2);
    payloads.push_back(json{{"task", s.task_id}, {"step", s.step_name}}.dump());
  }
  std::vector<tk_step_result> results;
  for (std::size_t i = 0; i < reclaimed.size(); ++i)
    results.push_back(success_result(reclaimed[i], payloads[i].c_str()));
  for (int outcome : complete(w, results))
    CHECK(outcome == TK_OK);

  auto joins = poll(w, 10);
  CHECK(joins.size() == 2);
  for (const auto& s : joins) {
    CHECK(s.step_name == "c");
    CHECK(s.attempt == 1);
    CHECK(s.dependency_results.size() == 2);
    CHECK(s.dependency_results.at("a").at("task") == s.task_id);
    CHECK(s.dependency_results.at("b").at("step") == "b");
    CHECK(succeed(w, s) == TK_OK);
  }
  CHECK(poll(w, 10).empty());

  for (auto id : tasks) {
    auto status = task_status(core, id);
    CHECK(status.at("state") == "complete");
    for (const char* name : {"a", "b"}) {
      auto step = step_status(status, name);
      CHECK(step.at("state") == "complete");
      CHECK(step.at("attempts") == 2);
      CHECK(step.at("claimed_by") == "survivor");
      CHECK(step.at("result") == json{{"task", id}, {"step", name}});
    }
  }
  auto listed = list_tasks(core, R"({"state":"complete"})");
  CHECK(listed.at("tasks").size() == 2);
}

TEST_CASE("a version 1 database is migrated in place and its running work can wait"
          * doctest::timeout(30)) {
  temp_dir dir;
  manual_clock clock;
  const auto url = sqlite_url(dir);
  std::int64_t id = 0;
  {
    auto core = open_core(url);
    use_clock(core, clock);
    register_pipeline(core, pipeline_json("test", "flow", {{"a"}, {"b", {"a"}}}));
    id = create_task(core);
  }
  // Turn the file back into what version 1 of the schema wrote.
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(dir.file("tasker.db").c_str(), &db) == SQLITE_OK);
    const char* downgrade =
        "DROP INDEX tk_steps_wait; ALTER TABLE tk_steps DROP COLUMN wait_name; "
        "ALTER TABLE tk_steps DROP COLUMN signal; ALTER TABLE tk_steps DROP COLUMN signal_seq; "
        "ALTER TABLE tk_steps DROP COLUMN resume; DROP TABLE tk_meta; "
        "ALTER TABLE tk_steps DROP COLUMN tmpl; ALTER TABLE tk_steps DROP COLUMN name; "
        "ALTER TABLE tk_steps DROP COLUMN inputs; ALTER TABLE tk_tasks DROP COLUMN steps_total; "
        "UPDATE tk_schema SET version = 1;";
    char* message = nullptr;
    const int rc = sqlite3_exec(db, downgrade, nullptr, nullptr, &message);
    INFO((message ? message : ""));
    CHECK(rc == SQLITE_OK);
    sqlite3_free(message);
    sqlite3_close(db);
  }
  auto core = open_core(url);
  use_clock(core, clock);
  CHECK(task_state(core, id) == "pending");
  worker_handle w(core, "after-migration");
  auto a = poll_one(w);
  REQUIRE(wait_for(w, a, "approval", 60000) == TK_OK);
  tk_error err{};
  REQUIRE(signal(core, a.wait_token, R"({"ok":true})", err) == TK_OK);
  auto resumed = poll_one(w);
  CHECK(resumed.signal_payload == json::parse(R"({"ok":true})"));
  CHECK(succeed(w, resumed) == TK_OK);
  CHECK(succeed(w, poll_one(w)) == TK_OK);
  CHECK(task_state(core, id) == "complete");

  // A second core on the same file mints and checks the same tokens.
  auto other = open_core(url);
  auto id2 = create_task(core);
  auto s = poll_one(w);
  REQUIRE(wait_for(w, s, "approval", 60000) == TK_OK);
  CHECK(signal(other, s.wait_token, nullptr, err) == TK_OK);
  CHECK(step_status(task_status(core, id2), "a").at("state") == "ready");
}
