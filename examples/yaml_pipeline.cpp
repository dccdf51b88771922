// yaml_pipeline — a pipeline loaded from a Tasker-format YAML template
// instead of built in code; the handler is the same C++ function.
//
//   s1 ──▶ s2 ──▶ s3 ──▶ s4        templates/linear_math.yaml: each step
//                                   squares the value of the step before it
//
// Input {"even_number": 6} gives 36, 1296, 1679616 and 2821109907456 (6^16).
// Run: yaml_pipeline [--store=memory: | --store=sqlite:yaml.db]
#include <iostream>

#include "math.hpp"
#include <tasker/runtime/run_main.hpp>

#ifndef TASKER_EXAMPLES_DIR
#error "TASKER_EXAMPLES_DIR (the examples source directory) must be defined by CMake"
#endif

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    w.handle("square", examples::square);

    const auto linear = tasker::load_pipeline_yaml(std::filesystem::path{TASKER_EXAMPLES_DIR}
                                                   / "templates" / "linear_math.yaml");
    w.register_pipeline(linear);

    auto& client = w.client();
    const auto task = client.create(linear, {{"even_number", 6}});
    const auto state = client.wait(task);
    std::cout << linear.namespace_name() << "/" << linear.name() << " " << linear.version() << " ("
              << linear.steps().size() << " steps from YAML), task " << task << " " << state
              << ": s4 = " << examples::step_value(client, task, "s4") << '\n';

    examples::checker check;
    check.equal("task state", state, "complete");
    examples::check_values(check, client, task,
                           {{"s1", 36}, {"s2", 1296}, {"s3", 1679616}, {"s4", 2821109907456}});
    return check.exit_code();
  });
}
