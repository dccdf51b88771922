// worker::run() and SIGTERM, in a real child process: the worker stops
// claiming, lets the running step finish, completes it, and exits 0. Its own
// executable, so the fork happens before any thread exists.
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tasker/runtime/worker.hpp>
#include <tasker/test/core.hpp>
#include <tasker/test/temp_dir.hpp>

using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// The child: a worker on `url` whose handler says on `ready_fd` that it
// started, then takes 300 ms; it creates two one-step tasks (only one can run
// at a time) and runs until a signal.
[[noreturn]] void run_worker(const std::string& url, int ready_fd) {
  tasker::worker_config cfg;
  cfg.store = url;
  cfg.log_level = "warn";
  cfg.max_in_flight = 1;
  cfg.drain_ms = 5000;
  int code = 1;
  {
    tasker::worker w{cfg};
    tasker::handler_options one;
    one.concurrency = 1;
    w.handle(
        "slow",
        [ready_fd](tasker::step_context&) {
          const char started = '1';
          (void)!::write(ready_fd, &started, 1);
          std::this_thread::sleep_for(300ms);  // the work the signal must not cut short
          return tasker::success({{"finished", true}});
        },
        one);
    tasker::pipeline p{"signals", "slow", "1"};
    p.step("only", "slow");
    w.register_pipeline(p);
    w.client().create(p);
    w.client().create(p);
    code = w.run();
  }
  std::_Exit(code);
}

}  // namespace

TEST_CASE("SIGTERM stops a running worker after its running step finishes" * doctest::timeout(60)) {
  tasker::test::temp_dir dir{"tasker-signal"};
  const std::string url = "sqlite:" + dir.file("w.db");

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    run_worker(url, fds[1]);
  }
  ::close(fds[1]);

  // Wait (bounded) for the child's handler to start the first step.
  pollfd pfd{fds[0], POLLIN, 0};
  REQUIRE(::poll(&pfd, 1, 20000) == 1);
  char started = 0;
  REQUIRE(::read(fds[0], &started, 1) == 1);
  ::close(fds[0]);
  REQUIRE(::kill(pid, SIGTERM) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // drained within the deadline

  auto core = tasker::test::open_core(url);
  auto first = tasker::test::task_status(core, 1);
  CHECK(first.at("state") == "complete");  // the running step finished and was recorded
  CHECK(first.at("steps")[0].at("result") == json{{"finished", true}});
  auto second = tasker::test::task_status(core, 2);
  CHECK(second.at("steps")[0].at("state") == "ready");  // never claimed after the signal
}
