// isolation_bench: the `isolated` handler option. CPU-bound steps (20 ms of
// computation each, several outstanding) share a worker with quick no-op
// steps; a client creates quick tasks one at a time and times each from
// creation to completion. Run twice in one process, the CPU-bound handler on
// the scheduler's threads (baseline) and isolated on threads of its own:
// quick-step P50/P99 while CPU-bound work is left, and CPU-bound steps/s.
//
//   isolation_bench [--cpu-tasks N] [--cpu-ms MS] [--pause-ms MS] [--quick]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "args.hpp"
#include "stats.hpp"
#include "table.hpp"
#include <tasker/runtime/worker.hpp>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct options {
  int cpu_tasks = 200;
  int pause_ms = 2;  ///< between two quick tasks
  int cpu_ms = 20;
};

double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// Burns `ms` of this thread's CPU time; returns a value so nothing is elided.
std::uint64_t burn(int ms) {
  const double until = thread_cpu_ms() + ms;
  std::uint64_t x = 88172645463325252ULL;
  while (thread_cpu_ms() < until)
    for (int i = 0; i < 1000; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
  return x;
}

struct figures {
  double p50_ms = 0, p99_ms = 0, steps_per_s = 0;
};

figures run(bool isolated, const options& o) {
  tasker::worker_config cfg;
  cfg.store = "memory:";
  cfg.log_level = "error";
  cfg.threads = std::max(2u, std::thread::hardware_concurrency());
  tasker::worker w{cfg};
  tasker::handler_options cpu;
  cpu.isolated = isolated;
  cpu.concurrency = cfg.threads;  // as many CPU-bound steps at once as cores, either way
  cpu.timeout = 10min;
  const int cpu_ms = o.cpu_ms;
  w.handle(
      "crunch",
      [cpu_ms](tasker::step_context&) {
        return tasker::success({{"x", burn(cpu_ms) & 0xffff}});
      },
      cpu);
  w.handle("noop", [](tasker::step_context&) { return tasker::success(); });
  tasker::pipeline crunch{"bench", "crunch", "1"};
  crunch.step("work", "crunch");
  tasker::pipeline quick{"bench", "quick", "1"};
  quick.step("run", "noop");
  w.register_pipeline(crunch).register_pipeline(quick);
  auto& c = w.client();

  // The CPU-bound tasks all at once; quick tasks one at a time for as long
  // as CPU-bound work is left, each timed from creation to completion.
  const auto start = clock_type::now();
  std::vector<tasker::json> contexts(static_cast<std::size_t>(o.cpu_tasks), tasker::json::object());
  const auto cpu_ids = c.create_many(crunch, contexts);
  std::atomic<bool> cpu_done{false};
  double cpu_elapsed = 0;
  std::thread waiter([&] {
    for (auto id : cpu_ids)
      if (c.wait(id, 10min) != "complete") {
        std::fprintf(stderr, "isolation_bench: a CPU-bound task did not complete\n");
        std::exit(1);
      }
    cpu_elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
    cpu_done = true;
  });
  std::vector<double> latencies;
  while (!cpu_done.load()) {
    const auto t0 = clock_type::now();
    const auto id = c.create(quick);
    if (c.wait(id, 60s) != "complete") {
      std::fprintf(stderr, "isolation_bench: a quick task did not complete\n");
      std::exit(1);
    }
    latencies.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
    std::this_thread::sleep_for(std::chrono::milliseconds{o.pause_ms});
  }
  waiter.join();
  figures f;
  f.p50_ms = bench::percentile(latencies, 0.50);
  f.p99_ms = bench::percentile(latencies, 0.99);
  f.steps_per_s = o.cpu_tasks / cpu_elapsed;
  std::printf("%-9s quick steps: P50 %.2f ms, P99 %.2f ms (%zu of them); CPU-bound steps: "
              "%.1f/s\n",
              isolated ? "isolated" : "pool", f.p50_ms, f.p99_ms, latencies.size(), f.steps_per_s);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] {
      return std::atoi(bench::flag_value("isolation_bench", argc, argv, i).c_str());
    };
    if (a == "--cpu-tasks")
      o.cpu_tasks = value();
    else if (a == "--pause-ms")
      o.pause_ms = value();
    else if (a == "--cpu-ms")
      o.cpu_ms = value();
    else if (a == "--quick") {
      o.cpu_tasks = 100;
    } else {
      std::fprintf(stderr, "usage: isolation_bench [--cpu-tasks N] [--cpu-ms MS] [--pause-ms MS] "
                           "[--quick]\n");
      return 2;
    }
  }
  std::printf("%d CPU-bound steps of %d ms (as many at once as cores); meanwhile quick steps, "
              "one at a time, %d ms apart\n",
              o.cpu_tasks, o.cpu_ms, o.pause_ms);
  const auto pool = run(false, o);
  const auto isolated = run(true, o);
  bench::table_row("isolated handlers: quick-step P99 under CPU load",
                   bench::fmt(pool.p99_ms, "ms"), bench::fmt(isolated.p99_ms, "ms"),
                   pool.p99_ms / isolated.p99_ms, 1.1);
  bench::table_row("isolated handlers: quick-step P50 under CPU load",
                   bench::fmt(pool.p50_ms, "ms"), bench::fmt(isolated.p50_ms, "ms"),
                   pool.p50_ms / isolated.p50_ms, 1.1);
  std::printf("CPU-bound throughput with isolation: %.2fx of the pool's (%.1f vs %.1f steps/s)\n",
              isolated.steps_per_s / pool.steps_per_s, isolated.steps_per_s, pool.steps_per_s);
  return 0;
}
