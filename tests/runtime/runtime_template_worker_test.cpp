// A worker process (template_worker, TASKER_TEMPLATE_WORKER) started on a
// --templates directory that holds a bad and a good template: it lists every
// problem and exits 2, or with --skip-invalid-templates serves the good one.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <tasker/test/child_process.hpp>
#include <tasker/test/temp_dir.hpp>

namespace {

using tasker::test::temp_dir;

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

struct run_result {
  int code = -1;  ///< exit code, or 128 + signal
  std::string out, err;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Runs the test worker with `args` and the environment of this test without
/// its TASKER_* variables, plus `env`; killed after 60 s.
run_result run_worker(const temp_dir& dir, const std::vector<std::string>& args,
                      const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv_s{TASKER_TEMPLATE_WORKER, "--store=memory:", "--log-level=warn"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  auto env_s = tasker::test::child_environment(env);
  auto argv_p = tasker::test::c_strings(argv_s);
  auto env_p = tasker::test::c_strings(env_s);

  const auto out_path = dir.file("stdout"), err_path = dir.file("stderr");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, argv_p[0], &fa, nullptr, argv_p.data(), env_p.data());
  posix_spawn_file_actions_destroy(&fa);
  INFO("spawning ", TASKER_TEMPLATE_WORKER, ": ", std::strerror(rc));
  REQUIRE(rc == 0);

  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      FAIL_CHECK("the worker did not exit in time; killed");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  run_result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

std::string describe(const run_result& r) {
  return "exit " + std::to_string(r.code) + "\n--- stdout\n" + r.out + "--- stderr\n" + r.err;
}

/// A templates directory: bad.yaml with two problems (lines 4 and 7), and
/// good.yaml, a two-step pipeline tests/good@1 of the `echo` handler.
struct templates {
  temp_dir dir{"tasker-templates"};
  std::filesystem::path path = dir.path() / "templates";
  std::string bad = (path / "bad.yaml").string();

  templates() {
    std::filesystem::create_directory(path);
    std::ofstream(path / "bad.yaml") << "name: bad\n"
                                        "namespace_name: tests\n"
                                        "version: '1'\n"
                                        "input_schema: 5\n"
                                        "steps:\n"
                                        "  - name: a\n"
                                        "    colour: red\n"
                                        "    handler: {callable: echo}\n";
    std::ofstream(path / "good.yaml") << "name: good\n"
                                         "namespace_name: tests\n"
                                         "version: '1'\n"
                                         "system_dependencies: {primary: default, secondary: []}\n"
                                         "domain_events: []\n"
                                         "steps:\n"
                                         "  - name: a\n"
                                         "    handler: {callable: echo}\n"
                                         "    system_dependency:\n"
                                         "    publishes_events: []\n"
                                         "  - name: b\n"
                                         "    handler: {callable: echo}\n"
                                         "    dependencies: [a]\n";
  }
};

}  // namespace

TEST_CASE("a worker whose templates include a bad file lists every problem and exits 2"
          * doctest::timeout(90)) {
  templates t;
  const auto r = run_worker(t.dir, {"--templates=" + t.path.string()});
  INFO(describe(r));
  CHECK(r.code == 2);
  CHECK(contains(r.err, t.bad
                            + ":4:15: pipeline tests/bad@1: input_schema: must be a JSON Schema "
                              "(a mapping, true or false)\n"));
  CHECK(contains(r.err, t.bad
                            + ":7:5: pipeline tests/bad@1 step \"a\": unknown field "
                              "\"colour\"\n"));
  CHECK(contains(r.err, t.path.string()
                            + ": 1 of 2 templates rejected, so none is served "
                              "(--skip-invalid-templates serves the valid ones)"));
  CHECK(r.out.empty());

  // A directory that is not there is a bad setting too.
  const auto missing = run_worker(t.dir, {"--templates=" + t.dir.file("missing")});
  INFO(describe(missing));
  CHECK(missing.code == 2);
  CHECK(contains(missing.err, "missing: cannot load templates from it: not a directory"));
}

TEST_CASE("with --skip-invalid-templates a worker logs the bad template and runs the good one"
          * doctest::timeout(90)) {
  templates t;
  const auto r = run_worker(t.dir, {"--templates=" + t.path.string(), "--skip-invalid-templates"},
                            {"TASKER_TEST_RUN=tests/good@1"});
  INFO(describe(r));
  CHECK(r.code == 0);
  CHECK(r.out == "tests/good@1: complete\n");
  CHECK(contains(r.err, "template " + t.bad + " is not served (--skip-invalid-templates)"));
  CHECK(contains(r.err, t.bad + ":4:15: pipeline tests/bad@1: input_schema: must be a JSON"));
  CHECK(contains(r.err, t.bad + ":7:5: pipeline tests/bad@1 step \"a\": unknown field"));
  CHECK(contains(r.err, "1 of 2 templates in " + t.path.string() + " are not served"));

  // The same from the environment.
  const auto env =
      run_worker(t.dir, {},
                 {"TASKER_TEMPLATES=" + t.path.string(), "TASKER_SKIP_INVALID_TEMPLATES=true",
                  "TASKER_TEST_RUN=tests/good@1"});
  INFO(describe(env));
  CHECK(env.code == 0);
  CHECK(env.out == "tests/good@1: complete\n");
}
