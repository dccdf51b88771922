// hello — the smallest worker: one pipeline, one function handler.
//
//   s1 ──▶ s2 ──▶ s3 ──▶ s4        each step squares the value before it
//
// Input {"even_number": 6} gives 36, 1296, 1679616 and 2821109907456 (6^16).
// Run: hello [--store=memory: | --store=sqlite:hello.db]
#include <cstdint>
#include <iostream>

#include <tasker/runtime/run_main.hpp>

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    w.handle("square", [](tasker::step_context& ctx) {
      auto previous = ctx.config_or<std::string>("previous", "");
      auto x = previous.empty() ? ctx.input<std::int64_t>("even_number")
                                : ctx.dependency<std::int64_t>(previous, "value");
      return tasker::success({{"value", x * x}});
    });

    tasker::pipeline linear{"examples", "hello", "1.0.0"};
    linear.step("s1", "square")
        .step("s2", "square", tasker::after("s1").with_config({{"previous", "s1"}}))
        .step("s3", "square", tasker::after("s2").with_config({{"previous", "s2"}}))
        .step("s4", "square", tasker::after("s3").with_config({{"previous", "s3"}}));
    w.register_pipeline(linear);

    auto& client = w.client();
    const auto task = client.create(linear, {{"even_number", 6}});
    const auto state = client.wait(task);
    const auto s4 = client.result(task, "s4").at("value");
    std::cout << "task " << task << " " << state << ": s4 = " << s4 << '\n';
    return state == "complete" && s4 == 2821109907456 ? 0 : 1;
  });
}
