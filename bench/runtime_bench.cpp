// runtime_bench: the full actor path, client -> poller -> handler actors ->
// poller -> core -> client, on real threads.
//
//   latency     one task at a time, from create to the completion signal,
//               for linear (4), diamond (4), tree (8) and mixed DAG (7 steps)
//   throughput  many 4-step tasks in flight: no-op steps per second
//   overhead    per step, full path minus the core-only loop (same store,
//               same run)
//
//   runtime_bench [--store memory|sqlite|all] [--latency-tasks N]
//                 [--throughput-tasks N] [--concurrency N (handler instances)]
//                 [--no-profile (the worker's metrics off; on by default)]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "args.hpp"
#include "table.hpp"
#include <tasker/core.hpp>
#include <tasker/runtime/worker.hpp>
#include <tasker/test/temp_dir.hpp>

namespace {

using clock_type = std::chrono::steady_clock;
using tasker::json;

struct options {
  std::vector<std::string> stores{"memory", "sqlite"};
  int latency_tasks = 1000;
  int throughput_tasks = 0;     // 0: per store default
  std::size_t concurrency = 0;  // 0: the worker's default
  bool profile = true;          // the worker's default
};

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&] { return bench::flag_value("runtime_bench", argc, argv, i); };
    if (a == "--store") {
      auto v = value();
      o.stores =
          v == "all" ? std::vector<std::string>{"memory", "sqlite"} : std::vector<std::string>{v};
    } else if (a == "--latency-tasks") {
      o.latency_tasks = std::atoi(value().c_str());
    } else if (a == "--concurrency") {
      o.concurrency = static_cast<std::size_t>(std::atoi(value().c_str()));
    } else if (a == "--no-profile") {
      o.profile = false;
    } else if (a == "--throughput-tasks") {
      o.throughput_tasks = std::atoi(value().c_str());
    } else {
      std::fprintf(stderr, "usage: runtime_bench [--store memory|sqlite|all] [--latency-tasks N] "
                           "[--throughput-tasks N] [--concurrency N] [--no-profile]\n");
      std::exit(2);
    }
  }
  return o;
}

std::vector<tasker::pipeline> workflows() {
  using tasker::after;
  tasker::pipeline linear{"bench", "linear", "1"};
  linear.step("s1", "noop")
      .step("s2", "noop", after("s1"))
      .step("s3", "noop", after("s2"))
      .step("s4", "noop", after("s3"));
  tasker::pipeline diamond{"bench", "diamond", "1"};
  diamond.step("start", "noop")
      .step("b", "noop", after("start"))
      .step("c", "noop", after("start"))
      .step("end", "noop", after("b", "c"));
  tasker::pipeline tree{"bench", "tree", "1"};
  tree.step("root", "noop")
      .step("left", "noop", after("root"))
      .step("right", "noop", after("root"))
      .step("d", "noop", after("left"))
      .step("e", "noop", after("left"))
      .step("f", "noop", after("right"))
      .step("g", "noop", after("right"))
      .step("final", "noop", after("d", "e", "f", "g"));
  tasker::pipeline mixed{"bench", "mixed_dag", "1"};
  mixed.step("init", "noop")
      .step("left", "noop", after("init"))
      .step("right", "noop", after("init"))
      .step("validate", "noop", after("left", "right"))
      .step("transform", "noop", after("left"))
      .step("analyze", "noop", after("right"))
      .step("finalize", "noop", after("validate", "transform", "analyze"));
  return {linear, diamond, tree, mixed};
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

/// Steps per second of the core alone (poll 64 -> complete), on a fresh
/// store of the same kind: the baseline of the per-step overhead.
double core_only_rate(const std::string& url, int tasks) {
  tk_error err{};
  auto core = tasker::core_handle::open(url.c_str(), nullptr, err);
  if (!core) {
    std::fprintf(stderr, "runtime_bench: %s\n", err.message);
    std::exit(1);
  }
  const auto linear = workflows()[0].to_core_json();
  tk_register_pipeline(core, linear.c_str(), &err);
  for (int i = 0; i < tasks; ++i) {
    tk_task_spec spec{"bench", "linear", "1", "{}", nullptr, 0};
    std::int64_t id = 0;
    tk_create_task(core, &spec, &id, nullptr, &err);
  }
  tk_worker_options options{};
  options.name = "core-only";
  options.lease_ms = 60000;
  tk_worker* w = tk_worker_open(core, &options, &err);
  std::vector<tk_step_result> results(64);
  long steps = 0;
  const auto start = clock_type::now();
  for (;;) {
    const tk_step_event* ev = nullptr;
    std::size_t n = 0;
    tk_poll(w, 64, &ev, &n, &err);
    if (n == 0)
      break;
    for (std::size_t i = 0; i < n; ++i) {
      results[i] = tk_step_result{};
      results[i].step_id = ev[i].step_id;
      results[i].fencing_token = ev[i].fencing_token;
      results[i].result_json = "{\"value\":1}";
    }
    tk_complete(w, results.data(), n, nullptr, &err);
    steps += static_cast<long>(n);
  }
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  tk_worker_close(w);
  return static_cast<double>(steps) / seconds;
}

struct store_figures {
  double linear_p50_us = 0;
  double throughput = 0;
};

store_figures run_store(const std::string& kind, const options& o,
                        const tasker::test::temp_dir& dir) {
  store_figures figures;
  const auto url =
      kind == "memory" ? std::string("memory:") : "sqlite:" + (dir.path() / "runtime.db").string();
  tasker::worker_config cfg;
  cfg.store = url;
  cfg.log_level = std::getenv("BENCH_LOG") ? std::getenv("BENCH_LOG") : "warn";
  cfg.threads = 2;
  cfg.max_in_flight = 512;
  cfg.batch_size = 64;
  cfg.profile = o.profile;
  tasker::worker w{cfg};
  tasker::handler_options noop_options;
  noop_options.concurrency = o.concurrency;
  w.handle(
      "noop",
      [](tasker::step_context&) {
        return tasker::success({{"value", 1}});
      },
      noop_options);
  const auto flows = workflows();
  for (const auto& p : flows)
    w.register_pipeline(p);
  auto& client = w.client();

  std::printf("%-7s %-10s %6s %10s %10s %10s %10s\n", "store", "workflow", "tasks", "p50_us",
              "p95_us", "p99_us", "mean_us");
  for (const auto& p : flows) {
    for (int i = 0; i < 50; ++i)  // warm-up
      client.wait(client.create(p));
    std::vector<double> us;
    us.reserve(static_cast<std::size_t>(o.latency_tasks));
    for (int i = 0; i < o.latency_tasks; ++i) {
      const auto t0 = clock_type::now();
      const auto id = client.create(p);
      const auto state = client.wait(id);
      us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
      if (state != "complete") {
        std::fprintf(stderr, "runtime_bench: task %lld ended %s\n", static_cast<long long>(id),
                     state.c_str());
        std::exit(1);
      }
    }
    double mean = 0;
    for (double x : us)
      mean += x;
    mean /= static_cast<double>(us.size());
    std::printf("%-7s %-10s %6zu %10.1f %10.1f %10.1f %10.1f\n", kind.c_str(), p.name().c_str(),
                us.size(), percentile(us, 50), percentile(us, 95), percentile(us, 99), mean);
    if (p.name() == "linear")
      figures.linear_p50_us = percentile(us, 50);
  }

  w.stop();

  // Throughput: many linear tasks in flight, through a fresh worker. On
  // SQLite the tasks are created beforehand through another handle on the
  // file (as another process would submit them), so only steps are timed;
  // the memory store cannot be shared, so there creation is included.
  const int tasks = o.throughput_tasks > 0 ? o.throughput_tasks : kind == "memory" ? 100000 : 20000;
  const auto throughput_url = kind == "memory"
                                  ? std::string("memory:")
                                  : "sqlite:" + (dir.path() / "throughput.db").string();
  if (kind != "memory") {
    tk_error err{};
    auto core = tasker::core_handle::open(throughput_url.c_str(), nullptr, err);
    const auto linear = flows[0].to_core_json();
    std::vector<tk_task_spec> specs(static_cast<std::size_t>(tasks),
                                    tk_task_spec{"bench", "linear", "1", "{}", nullptr, 0});
    std::vector<std::int64_t> ids(specs.size());
    if (!core || tk_register_pipeline(core, linear.c_str(), &err) != TK_OK
        || tk_create_tasks(core, specs.data(), specs.size(), ids.data(), nullptr, &err) != TK_OK) {
      std::fprintf(stderr, "runtime_bench: %s\n", err.message);
      std::exit(1);
    }
  }
  tasker::worker_config tcfg;
  tcfg.store = throughput_url;
  tcfg.log_level = cfg.log_level;
  tcfg.threads = cfg.threads;
  tcfg.max_in_flight = cfg.max_in_flight;
  tcfg.batch_size = cfg.batch_size;
  tcfg.profile = cfg.profile;
  tasker::worker tw{tcfg};
  tw.handle(
      "noop",
      [](tasker::step_context&) {
        return tasker::success({{"value", 1}});
      },
      noop_options);
  tw.register_pipeline(flows[0]);
  const auto start = clock_type::now();
  if (kind == "memory") {
    std::vector<json> contexts(1000, json::object());
    for (int created = 0; created < tasks;) {
      const int n = std::min(1000, tasks - created);
      contexts.resize(static_cast<std::size_t>(n));
      tw.client().create_many(flows[0], contexts);
      created += n;
    }
  }
  if (!tw.run_until_idle(std::chrono::minutes(10))) {
    std::fprintf(stderr, "runtime_bench: the throughput run did not become idle\n");
    std::exit(1);
  }
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  const double steps = 4.0 * tasks;
  figures.throughput = steps / seconds;
  tw.stop();

  const double core_rate =
      core_only_rate(kind == "memory" ? std::string("memory:")
                                      : "sqlite:" + (dir.path() / "core-only.db").string(),
                     tasks);
  std::printf("%-7s throughput: %d tasks, %.0f steps in %.3f s = %.0f steps/s (%s)\n", kind.c_str(),
              tasks, steps, seconds, figures.throughput,
              kind == "memory" ? "creation included" : "tasks created beforehand");
  std::printf("%-7s core-only loop: %.0f steps/s; per-step runtime overhead: %.2f us "
              "(full %.2f us - core %.2f us)\n",
              kind.c_str(), core_rate, 1e6 / figures.throughput - 1e6 / core_rate,
              1e6 / figures.throughput, 1e6 / core_rate);
  return figures;
}

}  // namespace

int main(int argc, char** argv) {
  const auto o = parse(argc, argv);
  tasker::test::temp_dir dir;
  for (const auto& kind : o.stores) {
    const auto f = run_store(kind, o, dir);
    const double p50_goal = kind == "memory" ? 250 : 1000;
    const double rate_goal = kind == "memory" ? 200000 : 50000;
    std::printf("target %-7s linear 4-step P50 <= %.0f us: %.1f us %s\n", kind.c_str(), p50_goal,
                f.linear_p50_us, f.linear_p50_us <= p50_goal ? "pass" : "MISS");
    std::printf("target %-7s throughput >= %.0f steps/s: %.0f %s\n", kind.c_str(), rate_goal,
                f.throughput, f.throughput >= rate_goal ? "pass" : "MISS");
    bench::table_row_absolute("runtime " + kind + ": linear 4-step P50", "-",
                              bench::fmt(f.linear_p50_us, "us"),
                              "<= " + bench::fmt(p50_goal, "us", 0), f.linear_p50_us <= p50_goal);
    bench::table_row_absolute(
        "runtime " + kind + ": no-op throughput", "-", bench::fmt(f.throughput, "steps/s", 0),
        ">= " + bench::fmt(rate_goal, "steps/s", 0), f.throughput >= rate_goal);
    std::fflush(stdout);
  }
  return 0;
}
