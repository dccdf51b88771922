// The `tasker` command, run as a child process (the built binary,
// TASKER_CLI) against an SQLite file that each case prepares through the C
// ABI: pipelines registered, tasks created and driven to their states with
// tk_poll/tk_complete. Checks stdout, stderr and exit codes.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include <tasker/test/child_process.hpp>
#include <tasker/test/core.hpp>

using namespace tasker::test;

namespace {

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

std::size_t code_points(const std::string& s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

/// What a finished run of the command left behind.
struct run_result {
  int code = -1;  ///< exit code, or 128 + signal
  std::string out, err;
};

/// One `tasker` process: stdout through a pipe (read as it comes), stderr
/// into a file, stdin from /dev/null, and the environment of this test
/// without TASKER_* variables, plus `env`.
class tasker_process {
public:
  tasker_process(const temp_dir& dir, const std::vector<std::string>& args,
                 const std::vector<std::string>& env)
    : err_path_(dir.file("stderr-" + std::to_string(++runs_))) {
    std::vector<std::string> argv_s{TASKER_CLI};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    auto env_s = tasker::test::child_environment(env, {"TASKER_", "COLUMNS="});
    auto argv_p = tasker::test::c_strings(argv_s);
    auto env_p = tasker::test::c_strings(env_s);

    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int rc = ::posix_spawn(&pid_, argv_p[0], &fa, nullptr, argv_p.data(), env_p.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    out_fd_ = fds[0];
    INFO("spawning ", TASKER_CLI, ": ", std::strerror(rc));
    REQUIRE(rc == 0);
  }
  ~tasker_process() {
    if (pid_ > 0) {  // a failed check left it running
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0)
      ::close(out_fd_);
  }
  tasker_process(const tasker_process&) = delete;
  tasker_process& operator=(const tasker_process&) = delete;

  /// The next line of stdout (without '\n'); "" at EOF or after `limit`.
  std::string read_line(std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (true) {
      if (auto nl = out_.find('\n', taken_); nl != std::string::npos) {
        auto line = out_.substr(taken_, nl - taken_);
        taken_ = nl + 1;
        return line;
      }
      if (!read_some(deadline))
        return {};
    }
  }

  /// Reads stdout to its end and reaps the process; kills it after `limit`.
  run_result finish(std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (read_some(deadline)) {
    }
    run_result r;
    if (std::chrono::steady_clock::now() >= deadline) {
      FAIL_CHECK("tasker did not finish in time; killed");
      ::kill(pid_, SIGKILL);
    }
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, 0) == pid_);
    pid_ = -1;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = out_;
    std::ifstream in(err_path_);
    r.err.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return r;
  }

private:
  static inline int runs_ = 0;
  std::string err_path_;
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string out_;
  std::size_t taken_ = 0;

  // Appends what stdout has by the deadline; false at EOF or past it.
  bool read_some(std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return false;
    pollfd p{out_fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      return false;
    char buf[4096];
    const auto n = ::read(out_fd_, buf, sizeof buf);
    if (n <= 0)
      return false;
    out_.append(buf, static_cast<std::size_t>(n));
    return true;
  }
};

/// Prints what a run left, for failed checks.
std::string describe(const run_result& r) {
  return "exit " + std::to_string(r.code) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

/// A fresh SQLite store with pipeline shop/order@1.0.0 (validate -> charge;
/// charge may run twice), opened by the test through the C ABI.
struct cli_env {
  temp_dir dir;
  std::string url = "sqlite:" + dir.file("tasker.db");
  core_handle core = open_core(url);
  worker_handle worker{core, "test-worker"};

  cli_env() {
    register_pipeline(core, pipeline_json("shop", "order",
                                          {{"validate"}, {"charge", {"validate"}, retry_policy(2)}},
                                          "1.0.0"));
  }

  /// Starts `tasker ARGS --store URL`.
  std::unique_ptr<tasker_process> start(std::vector<std::string> args,
                                        std::vector<std::string> env = {}) {
    args.push_back("--store");
    args.push_back(url);
    return std::make_unique<tasker_process>(dir, args, env);
  }
  /// Runs `tasker ARGS --store URL` to its end.
  run_result run(std::vector<std::string> args, std::vector<std::string> env = {}) {
    return start(std::move(args), std::move(env))->finish();
  }
  /// Runs `tasker ARGS` without adding a store.
  run_result run_bare(const std::vector<std::string>& args, std::vector<std::string> env = {}) {
    return tasker_process(dir, args, env).finish();
  }

  std::int64_t new_task(const std::string& context = "{}") {
    task_args a;
    a.ns = "shop";
    a.name = "order";
    a.version = "1.0.0";
    a.context = context;
    return tasker::test::create_task(core, a);
  }
  /// A task whose validate step is running.
  std::int64_t running_task() {
    const auto id = new_task();
    REQUIRE(poll_one(worker).task_id == id);
    return id;
  }
  /// A task whose validate step completed and whose charge failed for good.
  std::int64_t failed_task(const std::string& message = "card declined") {
    const auto id = new_task();
    auto validate = poll_one(worker);
    REQUIRE(validate.task_id == id);
    CHECK(succeed(worker, validate, R"({"ok":true})") == TK_OK);
    auto charge = poll_one(worker);
    REQUIRE(charge.step_name == "charge");
    CHECK(fail(worker, charge, false, 0, message.c_str(), "permanent_error") == TK_OK);
    REQUIRE(task_state(core, id) == "error");
    return id;
  }
  /// A task whose two steps completed.
  std::int64_t complete_task() {
    const auto id = new_task();
    CHECK(succeed(worker, poll_one(worker)) == TK_OK);
    CHECK(succeed(worker, poll_one(worker)) == TK_OK);
    REQUIRE(task_state(core, id) == "complete");
    return id;
  }
};

std::int64_t parse_id(const std::string& line) {
  INFO("line: ", line);
  REQUIRE(!line.empty());
  REQUIRE(std::all_of(line.begin(), line.end(), [](char c) { return c >= '0' && c <= '9'; }));
  return std::stoll(line);
}

}  // namespace

TEST_CASE("tasker --help lists the subcommands and the exit codes" * doctest::timeout(60)) {
  temp_dir dir;
  auto r = tasker_process(dir, {"--help"}, {}).finish();
  INFO(describe(r));
  CHECK(r.code == 0);
  for (const char* part : {"submit", "status", "list", "cancel", "retry", "validate", "Exit codes",
                           "3  not found", "5  store unreachable", "8  --timeout"})
    CHECK(contains(r.out, part));
  auto sub = tasker_process(dir, {"retry", "--help"}, {}).finish();
  CHECK(sub.code == 0);
  CHECK(contains(sub.out, "TASK_ID"));
  CHECK(contains(sub.out, "--json"));
  auto none = tasker_process(dir, {}, {}).finish();
  CHECK(none.code == 2);
  CHECK(contains(none.err, "subcommand"));
}

TEST_CASE("tasker submit prints the id of a task that then exists" * doctest::timeout(60)) {
  cli_env env;
  auto r = env.run(
      {"submit", "shop/order@1.0.0", "--context", R"({"order_id":"A-1"})", "--priority", "7"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 1);
  const auto id = parse_id(lines[0]);
  auto status = task_status(env.core, id);
  CHECK(status.at("state") == "pending");
  CHECK(status.at("context") == json{{"order_id", "A-1"}});
  CHECK(status.at("priority") == 7);
  CHECK(r.err.empty());

  SUBCASE("with --json, a context file and an idempotency key") {
    const auto file = env.dir.file("context.json");
    std::ofstream(file) << R"({"order_id":"B-2"})";
    auto first = env.run({"submit", "shop/order@1.0.0", "--context-file", file, "--idempotency-key",
                          "order-B-2", "--json"});
    INFO(describe(first));
    REQUIRE(first.code == 0);
    const auto made = json::parse(first.out);
    CHECK(made.at("created") == true);
    const auto made_id = made.at("id").get<std::int64_t>();
    CHECK(made_id != id);
    CHECK(task_status(env.core, made_id).at("context") == json{{"order_id", "B-2"}});
    auto again =
        env.run({"submit", "shop/order@1.0.0", "--idempotency-key", "order-B-2", "--json"});
    CHECK(again.code == 0);
    CHECK(json::parse(again.out) == json{{"id", made_id}, {"created", false}});
  }
  SUBCASE("the store from TASKER_STORE") {
    auto from_env = env.run_bare({"submit", "shop/order@1.0.0"}, {"TASKER_STORE=" + env.url});
    INFO(describe(from_env));
    CHECK(from_env.code == 0);
    CHECK(parse_id(lines_of(from_env.out).at(0)) == id + 1);
  }
}

TEST_CASE("tasker submit refuses bad input with exit 2 naming it and an unknown pipeline with 3"
          * doctest::timeout(60)) {
  cli_env env;
  SUBCASE("JSON that does not parse") {
    auto r = env.run({"submit", "shop/order@1.0.0", "--context", R"({"order_id": )"});
    INFO(describe(r));
    CHECK(r.code == 2);
    CHECK(contains(r.err, "--context"));
    CHECK(contains(r.err, "not valid JSON"));
    CHECK(r.out.empty());
  }
  SUBCASE("JSON that is not an object") {
    auto r = env.run({"submit", "shop/order@1.0.0", "--context", "[1,2]"});
    INFO(describe(r));
    CHECK(r.code == 2);
    CHECK(contains(r.err, "--context must be a JSON object"));
  }
  SUBCASE("a context file that is not JSON") {
    const auto file = env.dir.file("bad.json");
    std::ofstream(file) << "order: 1";
    auto r = env.run({"submit", "shop/order@1.0.0", "--context-file", file});
    INFO(describe(r));
    CHECK(r.code == 2);
    CHECK(contains(r.err, "--context-file " + file));
  }
  SUBCASE("no version") {
    auto r = env.run({"submit", "shop/order"});
    INFO(describe(r));
    CHECK(r.code == 2);
    CHECK(contains(r.err, "shop/order@VERSION"));
  }
  SUBCASE("an unknown pipeline") {
    auto r = env.run({"submit", "shop/order@9.9"});
    INFO(describe(r));
    CHECK(r.code == 3);
    CHECK(contains(r.err, "shop/order@9.9"));
  }
  CHECK(list_tasks(env.core, nullptr).at("tasks").empty());  // nothing was created
}

TEST_CASE("tasker status shows the task line and one row per step, cut to the terminal"
          * doctest::timeout(60)) {
  cli_env env;
  const std::string long_message = "card declined: " + std::string(200, 'x') + " END";
  const auto id = env.failed_task(long_message);

  auto r = env.run({"status", std::to_string(id)}, {"COLUMNS=80"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 5);  // task line, blank, header, two steps
  CHECK(lines[0].rfind("task " + std::to_string(id) + "  shop/order@1.0.0  error  created ", 0)
        == 0);
  CHECK(contains(lines[0], "duration "));
  CHECK(lines[1].empty());
  for (const char* column : {"STEP", "STATE", "ATTEMPTS", "DURATION", "ERROR"})
    CHECK(contains(lines[2], column));
  CHECK(lines[3].rfind("validate", 0) == 0);
  CHECK(contains(lines[3], "complete"));
  CHECK(contains(lines[3], "1/3"));
  CHECK(lines[4].rfind("charge", 0) == 0);
  CHECK(contains(lines[4], "error"));
  CHECK(contains(lines[4], "1/2"));
  CHECK(contains(lines[4], "permanent_error: card declined: xxx"));
  CHECK(lines[4].size() >= 3);
  CHECK(lines[4].substr(lines[4].size() - 3) == "...");
  CHECK_FALSE(contains(r.out, " END"));
  for (const auto& line : lines)
    CHECK(code_points(line) <= 80);

  auto full = env.run({"status", std::to_string(id), "--json"});
  INFO(describe(full));
  REQUIRE(full.code == 0);
  const auto parsed = json::parse(full.out, nullptr, false);
  REQUIRE_FALSE(parsed.is_discarded());
  CHECK(parsed == task_status(env.core, id));
  CHECK(step_status(parsed, "charge").at("last_error").at("message") == long_message);
}

TEST_CASE("tasker list filters by state and follows the cursor with --all" * doctest::timeout(60)) {
  cli_env env;
  const auto failed = env.failed_task();
  const auto running = env.running_task();
  const auto pending = env.new_task();

  auto r = env.run({"list", "--state", "error"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(contains(lines[0], "ID"));
  CHECK(lines[1].rfind(std::to_string(failed) + " ", 0) == 0);
  CHECK(contains(lines[1], "  shop/order@1.0.0  error  0  "));

  auto as_json = env.run({"list", "--state", "running", "--json"});
  REQUIRE(as_json.code == 0);
  auto page = json::parse(as_json.out);
  REQUIRE(page.at("tasks").size() == 1);
  CHECK(page.at("tasks").at(0).at("id") == running);
  CHECK(page.at("next").is_null());

  auto one = env.run({"list", "--limit", "1"});
  INFO(describe(one));
  CHECK(one.code == 0);
  CHECK(lines_of(one.out).size() == 2);
  CHECK(contains(one.err, "--after " + std::to_string(failed)));

  auto all = env.run({"list", "--limit", "1", "--all", "--json"});
  INFO(describe(all));
  REQUIRE(all.code == 0);
  const auto every = json::parse(all.out);
  std::vector<std::int64_t> ids;
  for (const auto& t : every.at("tasks"))
    ids.push_back(t.at("id").get<std::int64_t>());
  CHECK(ids == std::vector<std::int64_t>{failed, running, pending});

  auto none = env.run({"list", "--state", "cancelled"});
  CHECK(none.code == 0);
  CHECK(none.out == "no tasks\n");
  auto bad = env.run({"list", "--state", "sleeping"});
  CHECK(bad.code == 2);
  CHECK(contains(bad.err, "--state"));
}

TEST_CASE("tasker cancel cancels a running task and refuses an ended one with 4"
          * doctest::timeout(60)) {
  cli_env env;
  const auto id = env.running_task();
  auto r = env.run({"cancel", std::to_string(id)});
  INFO(describe(r));
  CHECK(r.code == 0);
  CHECK(r.out == "task " + std::to_string(id) + " cancelled\n");
  CHECK(task_state(env.core, id) == "cancelled");

  auto again = env.run({"cancel", std::to_string(id), "--json"});
  INFO(describe(again));
  CHECK(again.code == 4);
  CHECK(again.out.empty());
  CHECK(contains(again.err, "tasker cancel: task " + std::to_string(id) + " has already ended"));
}

TEST_CASE("tasker retry runs a failed task again and refuses one that did not fail"
          * doctest::timeout(60)) {
  cli_env env;
  const auto id = env.failed_task();
  auto r = env.run({"retry", std::to_string(id), "--json"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(json::parse(r.out) == json{{"id", id}, {"state", "running"}});
  CHECK(task_state(env.core, id) == "running");
  auto again = poll_one(env.worker);
  CHECK(again.task_id == id);
  CHECK(again.step_name == "charge");
  CHECK(again.attempt == 1);
  CHECK(again.dependency_results == json::parse(R"({"validate":{"ok":true}})"));

  auto running = env.run({"retry", std::to_string(id)});
  INFO(describe(running));
  CHECK(running.code == 4);
  CHECK(contains(running.err, "is running"));
  const auto done = env.complete_task();
  CHECK(env.run({"retry", std::to_string(done)}).code == 4);
}

TEST_CASE("an unknown task id exits with 3" * doctest::timeout(60)) {
  cli_env env;
  for (const char* command : {"status", "cancel", "retry"}) {
    auto r = env.run({command, "4242"});
    INFO(command, ": ", describe(r));
    CHECK(r.code == 3);
    CHECK(contains(r.err, "no task 4242"));
    CHECK(r.out.empty());
  }
}

TEST_CASE("a store that cannot be reached exits with 5" * doctest::timeout(60)) {
  cli_env env;
  auto pg = env.run_bare({"list", "--store", "postgresql://nobody:hunter2@127.0.0.1:1/none"});
  INFO(describe(pg));
  CHECK(pg.code == 5);
  CHECK(contains(pg.err, "postgresql://nobody:***@127.0.0.1:1/none"));
  CHECK_FALSE(contains(pg.err, "hunter2"));

  const auto missing = env.dir.file("missing.db");
  auto sqlite = env.run_bare({"--store", "sqlite:" + missing, "status", "1"});
  INFO(describe(sqlite));
  CHECK(sqlite.code == 5);
  CHECK(contains(sqlite.err, "no such SQLite database"));
  CHECK_FALSE(std::filesystem::exists(missing));  // not created by looking

  auto scheme = env.run_bare({"list", "--store", "mysql://localhost/db"});
  CHECK(scheme.code == 2);
  CHECK(contains(scheme.err, "--store"));
}

TEST_CASE("tasker submit --wait exits by how the task ended" * doctest::timeout(60)) {
  cli_env env;
  SUBCASE("nobody runs it: timed out") {
    auto r = env.run({"submit", "shop/order@1.0.0", "--wait", "--timeout", "0.3"});
    INFO(describe(r));
    CHECK(r.code == 8);
    CHECK(contains(r.err, "still pending"));
    parse_id(lines_of(r.out).at(0));
  }
  SUBCASE("complete, error or cancelled") {
    auto child = env.start({"submit", "shop/order@1.0.0", "--wait", "--timeout", "30"});
    const auto id = parse_id(child->read_line());  // printed before it waits
    auto validate = poll_one(env.worker);
    REQUIRE(validate.task_id == id);
    int expected = 0;
    std::string said;
    SUBCASE("complete") {
      CHECK(succeed(env.worker, validate) == TK_OK);
      CHECK(succeed(env.worker, poll_one(env.worker)) == TK_OK);
    }
    SUBCASE("error") {
      CHECK(fail(env.worker, validate, false, 0, "no such order", "permanent_error") == TK_OK);
      expected = 6;
      said = "ended error: step validate: no such order";
    }
    SUBCASE("cancelled") {
      tk_error err{};
      REQUIRE(tk_cancel_task(env.core, id, &err) == TK_OK);
      expected = 7;
      said = "ended cancelled";
    }
    auto r = child->finish();
    INFO(describe(r));
    CHECK(r.code == expected);
    CHECK(lines_of(r.out).size() == 1);
    CHECK(contains(r.err, said));
  }
}

TEST_CASE("tasker signal resumes a waiting step, and refuses a used or unknown token"
          * doctest::timeout(60)) {
  cli_env env;
  const auto id = env.new_task();
  auto validate = poll_one(env.worker);
  REQUIRE(validate.task_id == id);
  REQUIRE(wait_for(env.worker, validate, "approval", 3'600'000) == TK_OK);

  auto status = env.run({"status", std::to_string(id)});
  INFO(describe(status));
  CHECK(status.code == 0);
  CHECK(contains(status.out, "waits for signal \"approval\""));
  CHECK(contains(status.out, "tasker signal " + validate.wait_token));

  auto bad = env.run({"signal", validate.wait_token, "--payload", "{\"ok\":"});
  INFO(describe(bad));
  CHECK(bad.code == 2);

  auto r = env.run({"signal", validate.wait_token, "--payload", R"({"approved":true})", "--json"});
  INFO(describe(r));
  REQUIRE(r.code == 0);
  CHECK(json::parse(r.out) == json{{"signalled", true}});
  auto resumed = poll_one(env.worker);
  CHECK(resumed.step_id == validate.step_id);
  CHECK(resumed.signal_payload == json::parse(R"({"approved":true})"));

  auto again = env.run({"signal", validate.wait_token});
  INFO(describe(again));
  CHECK(again.code == 4);
  CHECK(contains(again.err, "tasker signal: this token was signalled already"));

  auto unknown = env.run({"signal", "7-1-0123456789abcdef0123456789abcdef"});
  INFO(describe(unknown));
  CHECK(unknown.code == 3);
}

TEST_CASE("tasker validate lists every problem of every template and exits 2 unless all are valid"
          * doctest::timeout(60)) {
  temp_dir dir;
  dir.write("good.yaml", "name: good\nnamespace_name: shop\nversion: 1.0.0\n"
                         "system_dependencies: {primary: default, secondary: []}\n"
                         "steps:\n"
                         "  - {name: a, handler: {callable: h}, publishes_events: []}\n"
                         "  - {name: b, handler: {callable: h}, dependencies: [a]}\n");
  dir.write("bad.yaml", "name: bad\nnamespace_name: shop\nversion: 1.0.0\n"
                        "lifecycle: {max_duration_minutes: 0}\n"
                        "steps:\n"
                        "  - {name: a, handler: {callable: h}, dependencies: [ghost]}\n");
  const auto good = dir.file("good.yaml"), bad = dir.file("bad.yaml");

  auto ok = tasker_process(dir, {"validate", good}, {}).finish();
  INFO(describe(ok));
  CHECK(ok.code == 0);
  CHECK(ok.out == good + ": valid: pipeline shop/good@1.0.0, 2 steps\n");
  CHECK(ok.err.empty());

  // No store is opened, so a store that is not there does not matter.
  auto mixed =
      tasker_process(dir, {"validate", good, bad}, {"TASKER_STORE=sqlite:/nonexistent/x.db"})
          .finish();
  INFO(describe(mixed));
  CHECK(mixed.code == 2);
  CHECK(mixed.out == good + ": valid: pipeline shop/good@1.0.0, 2 steps\n");
  CHECK(mixed.err
        == bad
               + ":4:35: pipeline shop/bad@1.0.0: lifecycle.max_duration_minutes: is 0, must be 1 "
                 "to 43200 minutes\n"
               + bad + ":6:5: pipeline shop/bad@1.0.0 step \"a\": unknown dependency \"ghost\"\n"
               + "tasker validate: 1 of 2 templates are invalid\n");

  // A directory stands for its templates; the same version twice rejects the later.
  std::filesystem::create_directory(dir.path() / "templates");
  dir.write("templates/a.yaml", "name: good\nnamespace_name: shop\nversion: 1.0.0\n"
                                "steps:\n  - {name: a, handler: {callable: h}}\n");
  auto twice =
      tasker_process(dir, {"validate", good, (dir.path() / "templates").string()}, {}).finish();
  INFO(describe(twice));
  CHECK(twice.code == 2);
  CHECK(contains(twice.err, dir.file("templates/a.yaml")
                                + ": pipeline shop/good@1.0.0 is already defined in " + good));

  auto as_json =
      tasker_process(dir, {"validate", "--json", good, bad, dir.file("none.yaml")}, {}).finish();
  INFO(describe(as_json));
  CHECK(as_json.code == 2);
  const auto report = json::parse(as_json.out);
  CHECK(report.at("valid") == false);
  REQUIRE(report.at("files").size() == 3);
  CHECK(report["files"][0]
        == json{{"file", good}, {"valid", true}, {"pipeline", "shop/good@1.0.0"}, {"steps", 2}});
  CHECK(report["files"][1].at("problems").size() == 2);
  CHECK(report["files"][2].at("problems")
        == json::array({dir.file("none.yaml") + ": cannot be read: No such file or directory"}));

  // A template's bytes need not be UTF-8; the JSON report still is.
  dir.write("latin1.yaml", "name: p\nnamespace_name: ns\nversion: 1\nsteps:\n"
                           "  - {name: s, handler: {callable: h}, \"\xff\": 1}\n");
  auto latin1 = tasker_process(dir, {"validate", "--json", dir.file("latin1.yaml")}, {}).finish();
  INFO(describe(latin1));
  CHECK(latin1.code == 2);
  CHECK(json::accept(latin1.out));

  auto none = tasker_process(dir, {"validate"}, {}).finish();
  CHECK(none.code == 2);
}

TEST_CASE("tasker validate checks every environment and says which one a worker would apply"
          * doctest::timeout(60)) {
  temp_dir dir;
  dir.write("envs.yaml", "name: envs\nnamespace_name: shop\nversion: 1.0.0\n"
                         "steps:\n  - {name: a, handler: {callable: h}}\n"
                         "environments:\n"
                         "  test: {steps: [{name: a, timeout_seconds: 5}]}\n"
                         "  development: {steps: [{name: ALL, retry: {max_attempts: 1}}]}\n");
  dir.write("typo.yaml", "name: typo\nnamespace_name: shop\nversion: 1.0.0\n"
                         "steps:\n  - {name: a, handler: {callable: h}}\n"
                         "environments:\n  test: {steps: [{name: b, timeout_seconds: 5}]}\n");
  const auto envs = dir.file("envs.yaml"), typo = dir.file("typo.yaml");

  auto plain = tasker_process(dir, {"validate", envs}, {}).finish();
  INFO(describe(plain));
  CHECK(plain.code == 0);
  CHECK(plain.out
        == envs + ": valid: pipeline shop/envs@1.0.0, 1 step; environments: development, test\n");

  auto test = tasker_process(dir, {"validate", "--environment", "test", envs}, {}).finish();
  INFO(describe(test));
  CHECK(test.out
        == envs
               + ": valid: pipeline shop/envs@1.0.0, 1 step; environments: development, test; "
                 "environment test applies\n");
  auto prod =
      tasker_process(dir, {"validate", "--environment=production", "--json", envs}, {}).finish();
  INFO(describe(prod));
  const auto report = json::parse(prod.out);
  CHECK(report["files"][0].at("environments") == json{"development", "test"});
  CHECK(report["files"][0].at("environment_applies") == false);

  auto bad = tasker_process(dir, {"validate", typo}, {}).finish();
  INFO(describe(bad));
  CHECK(bad.code == 2);
  CHECK(contains(bad.err, typo
                              + ":7:25: pipeline shop/typo@1.0.0 environment \"test\": overrides "
                                "step \"b\", which the template does not have"));
}
