// A worker process for the template tests: it serves the `echo` handler and
// the templates of --templates (TASKER_TEMPLATES), and starts. With
// TASKER_TEST_RUN=NAMESPACE/NAME@VERSION it then runs one task of that
// pipeline, prints "NAMESPACE/NAME@VERSION: STATE" and exits 0 when the task
// completed; without it, it exits 0 once started.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include <tasker/runtime/run_main.hpp>

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    w.handle("echo", [](tasker::step_context& ctx) {
      return tasker::success({{"step", ctx.step_name()}});
    });
    auto& client = w.client();  // starts the worker: the templates load here
    const char* run = std::getenv("TASKER_TEST_RUN");
    if (!run)
      return 0;
    const std::string id = run;
    const auto slash = id.find('/'), at = id.find('@');
    if (slash == std::string::npos || at == std::string::npos || at < slash) {
      std::cerr << "TASKER_TEST_RUN must be NAMESPACE/NAME@VERSION\n";
      return 1;
    }
    const auto task =
        client.create(id.substr(0, slash), id.substr(slash + 1, at - slash - 1), id.substr(at + 1));
    const auto state = client.wait(task, std::chrono::seconds(20));
    std::cout << id << ": " << state << std::endl;
    return state == "complete" ? 0 : 1;
  });
}
