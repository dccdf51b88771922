// ffi_bench: two runtime optimizations at the FFI boundary, each against its
// baseline in the same run (docs/optimizations.md).
//
//   wakeup    the core's wake-up callback (and a timer for its next due
//             event) vs polling the core every 10 ms, as Tasker's TypeScript
//             worker does: latency of a linear 4-step task, one at a time.
//   overload  capacity-gated claiming vs claim-then-drop: a burst of tasks
//             far beyond max_in_flight; lost steps (failed for good after
//             their dropped claims lapsed), late steps (run again after a
//             lapse) and P50/P99 of the time until each task ended.
//
// The optimized side is a tasker::worker; each baseline is a naive worker
// over the same C ABI (naive_worker.hpp), so the runtime keeps no benchmark
// mode in its claim path.
//
//   ffi_bench [--store memory|sqlite] [--tasks N] [--burst N] [--quick]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "args.hpp"
#include "naive_worker.hpp"
#include "stats.hpp"
#include "table.hpp"
#include <tasker/runtime/worker.hpp>
#include <tasker/test/temp_dir.hpp>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using tasker::json;

struct options {
  std::string store = "sqlite";
  int tasks = 200;   ///< wakeup: linear tasks, one at a time
  int burst = 2000;  ///< overload: tasks created at once
};

tasker::worker_config base_config(const std::string& store, const tasker::test::temp_dir& dir,
                                  const char* file) {
  tasker::worker_config cfg;
  cfg.store = store == "memory" ? "memory:" : "sqlite:" + (dir.path() / file).string();
  cfg.log_level = "error";
  cfg.threads = std::max(2u, std::thread::hardware_concurrency());
  cfg.summary_interval_ms = 0;
  return cfg;
}

struct latency {
  double p50_ms = 0, p99_ms = 0;
};

// The linear 4-step pipeline both sides run (the naive worker takes its core
// JSON, pipeline::to_core_json).
tasker::pipeline linear_pipeline() {
  tasker::pipeline linear{"bench", "linear", "1"};
  linear.step("a", "noop")
      .step("b", "noop", tasker::after("a"))
      .step("c", "noop", tasker::after("b"))
      .step("d", "noop", tasker::after("c"));
  return linear;
}

// The one-step pipeline of the overload run: two attempts, no backoff.
tasker::pipeline one_step_pipeline() {
  tasker::pipeline one{"bench", "one", "1"};
  tasker::retry_policy retry;
  retry.max_attempts = 2;
  retry.backoff = "none";
  one.step("work", "work", tasker::step_options{}.retry(retry));
  return one;
}

std::string store_url(const std::string& store, const tasker::test::temp_dir& dir,
                      const char* file) {
  return store == "memory" ? "memory:" : "sqlite:" + (dir.path() / file).string();
}

// Runs `o.tasks` linear tasks one at a time (after 5 to warm up): create
// returns a task id, wait its final state.
template <class Create, class Wait>
latency linear_latency(const char* label, const options& o, Create create, Wait wait) {
  std::vector<double> ms;
  for (int i = 0; i < o.tasks + 5; ++i) {  // the first 5 warm up
    const auto t0 = clock_type::now();
    if (wait(create()) != "complete") {
      std::fprintf(stderr, "ffi_bench: a linear task did not complete\n");
      std::exit(1);
    }
    if (i >= 5)
      ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
  }
  latency l{bench::percentile(ms, 0.5), bench::percentile(ms, 0.99)};
  std::printf("wakeup %-9s linear 4-step: P50 %7.2f ms  P99 %7.2f ms  (%d tasks, %s)\n", label,
              l.p50_ms, l.p99_ms, o.tasks, o.store.c_str());
  return l;
}

latency wakeup_run(bool callback, const options& o, const tasker::test::temp_dir& dir) {
  if (!callback) {  // the baseline: a worker that polls every 10 ms
    bench::naive_options no;
    no.how = bench::naive_options::mode::interval;
    no.interval = 10ms;
    bench::naive_worker naive{store_url(o.store, dir, "wake-interval.db"),
                              linear_pipeline().to_core_json(), no};
    return linear_latency(
        "10ms-poll", o, [&] { return naive.create("bench", "linear", "1", 1).at(0); },
        [&](std::int64_t id) { return naive.wait(id, 60s); });
  }
  auto cfg = base_config(o.store, dir, "wake-callback.db");
  tasker::worker w{cfg};
  w.handle("noop", [](tasker::step_context&) { return tasker::success(); });
  const auto linear = linear_pipeline();
  w.register_pipeline(linear);
  auto& c = w.client();
  return linear_latency(
      "callback", o, [&] { return c.create(linear); },
      [&](std::int64_t id) { return c.wait(id, 60s); });
}

struct overload_figures {
  int lost = 0;       ///< tasks in error
  int late = 0;       ///< steps that ran more than once
  double p50_ms = 0;  ///< creation to the task's end (complete or error), core clock
  double p99_ms = 0;
  double seconds = 0;  ///< until every task ended
};

// What every step of the overload run does: a quick I/O-bound step.
void quick_step() {
  std::this_thread::sleep_for(1ms);
}

// Waits for every task of the burst and reads what became of it.
template <class Wait, class Status>
overload_figures burst_figures(const char* label, const options& o,
                               const std::vector<std::int64_t>& ids, clock_type::time_point start,
                               Wait wait, Status status_of) {
  overload_figures f;
  std::vector<double> ms;
  for (auto id : ids) {
    const auto state = wait(id);
    const json status = status_of(id);
    if (state != "complete")
      ++f.lost;
    const auto& step = status.at("steps")[0];
    if (step.at("attempts").get<int>() > 1)
      ++f.late;
    // Until the task ended, however it ended (a lost task ends in error).
    ms.push_back(static_cast<double>(status.at("completed_at").get<std::int64_t>()
                                     - status.at("created_at").get<std::int64_t>()));
  }
  f.seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  f.p50_ms = bench::percentile(ms, 0.5);
  f.p99_ms = bench::percentile(ms, 0.99);
  std::printf("overload %-9s %d tasks, 16 in flight: lost %d, late %d, P50 %.0f ms, P99 %.0f ms, "
              "all ended in %.2f s (%s)\n",
              label, o.burst, f.lost, f.late, f.p50_ms, f.p99_ms, f.seconds, o.store.c_str());
  return f;
}

overload_figures overload_run(bool gated, const options& o, const tasker::test::temp_dir& dir) {
  const auto burst = static_cast<std::size_t>(o.burst);
  if (!gated) {  // the baseline: claim whole batches, drop what does not fit
    bench::naive_options no;
    no.how = bench::naive_options::mode::drop;
    no.interval = 10ms;
    no.max_in_flight = 16;
    no.batch = 64;
    no.threads = 8;
    no.lease_ms = 500;  // dropped claims lapse soon
    no.work = quick_step;
    bench::naive_worker naive{store_url(o.store, dir, "drop.db"),
                              one_step_pipeline().to_core_json(), no};
    const auto start = clock_type::now();
    const auto ids = naive.create("bench", "one", "1", burst);
    return burst_figures(
        "drop", o, ids, start, [&](std::int64_t id) { return naive.wait(id, 5min); },
        [&](std::int64_t id) { return naive.status(id); });
  }
  auto cfg = base_config(o.store, dir, "gated.db");
  cfg.max_in_flight = 16;
  cfg.batch_size = 64;
  cfg.lease_ms = 500;
  tasker::worker w{cfg};
  tasker::handler_options ho;
  ho.concurrency = 8;
  w.handle(
      "work",
      [](tasker::step_context&) {
        quick_step();
        return tasker::success();
      },
      ho);
  const auto one = one_step_pipeline();
  w.register_pipeline(one);
  auto& c = w.client();
  const auto start = clock_type::now();
  const auto ids = c.create_many(one, std::vector<json>(burst, json::object()));
  return burst_figures(
      "gated", o, ids, start, [&](std::int64_t id) { return c.wait(id, 5min); },
      [&](std::int64_t id) { return c.status(id); });
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] { return bench::flag_value("ffi_bench", argc, argv, i); };
    if (a == "--store")
      o.store = value();
    else if (a == "--tasks")
      o.tasks = std::atoi(value().c_str());
    else if (a == "--burst")
      o.burst = std::atoi(value().c_str());
    else if (a == "--quick") {
      o.tasks = 100;
      o.burst = 1000;
    } else {
      std::fprintf(stderr, "usage: ffi_bench [--store memory|sqlite] [--tasks N] [--burst N] "
                           "[--quick]\n");
      return 2;
    }
  }
  if (o.store != "memory" && o.store != "sqlite") {
    std::fprintf(stderr, "ffi_bench: --store memory or sqlite\n");
    return 2;
  }
  tasker::test::temp_dir dir;
  const auto polled = wakeup_run(false, o, dir);
  const auto woken = wakeup_run(true, o, dir);
  bench::table_row("wake-up callback vs 10 ms polling: linear 4-step P50 (" + o.store + ")",
                   bench::fmt(polled.p50_ms, "ms", 2), bench::fmt(woken.p50_ms, "ms", 2),
                   polled.p50_ms / woken.p50_ms, 1.1);
  const auto dropped = overload_run(false, o, dir);
  const auto gated = overload_run(true, o, dir);
  // What the optimization is for: every step runs, once, under overload. A
  // lost task never completes, so its latency is infinite: the baseline's
  // P99 is finite only while under 1 % of its tasks are lost.
  const double done_dropped = (o.burst - dropped.lost) / dropped.seconds;
  const double done_gated = (o.burst - gated.lost) / gated.seconds;
  bench::table_row("capacity-gated claims vs claim-then-drop: tasks completed per second, overload",
                   bench::fmt(done_dropped, "tasks/s", 0), bench::fmt(done_gated, "tasks/s", 0),
                   done_gated / done_dropped, 1.1);
  const bool dropped_p99_finite = dropped.lost * 100 < o.burst;
  bench::table_row_absolute(
      "capacity-gated claims vs claim-then-drop: task P99 under overload (lost = never)",
      dropped_p99_finite
          ? bench::fmt(dropped.p99_ms, "ms", 0)
          : "never (" + std::to_string(dropped.lost) + " of " + std::to_string(o.burst) + " lost)",
      bench::fmt(gated.p99_ms, "ms", 0), "finite, 0 lost",
      gated.lost == 0 && (!dropped_p99_finite || gated.p99_ms * 1.1 <= dropped.p99_ms));
  bench::table_row_info(
      "capacity-gated claims vs claim-then-drop: lost / late steps",
      std::to_string(dropped.lost) + " lost, " + std::to_string(dropped.late) + " late",
      std::to_string(gated.lost) + " lost, " + std::to_string(gated.late) + " late", 0);
  return gated.lost == 0 ? 0 : 1;
}
